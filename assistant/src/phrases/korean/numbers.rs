//! Korean numbers: native (한, 두, 일곱) and Sino-Korean (일, 이, 십), with
//! the units of time they count (분, 시간, 일, 주).

use super::*;

/// Native Korean numbers, as said before 시 and 시간 ("한 시간", "일곱 시").
pub(super) const NATIVE: [(&str, i64); 12] = [
    ("열한", 11),
    ("열두", 12),
    ("다섯", 5),
    ("여섯", 6),
    ("일곱", 7),
    ("여덟", 8),
    ("아홉", 9),
    ("한", 1),
    ("두", 2),
    ("세", 3),
    ("네", 4),
    ("열", 10),
];

/// A Sino-Korean number up to 99 ("삼십", "십오", "이십오"), as said before 분.
pub(super) fn sino(word: &str) -> Option<i64> {
    let digit = |c: char| {
        "영일이삼사오육칠팔구"
            .chars()
            .position(|d| d == c)
            .map(|d| d as i64)
    };
    let chars: Vec<char> = word.chars().collect();
    match chars.as_slice() {
        [] => None,
        ['십'] => Some(10),
        ['십', one] => Some(10 + digit(*one)?),
        [tens, '십'] => Some(digit(*tens)? * 10),
        [tens, '십', one] => Some(digit(*tens)? * 10 + digit(*one)?),
        [one] => digit(*one),
        _ => None,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Unit {
    Hours,
    Clock,
    Minutes,
    Days,
    Weeks,
    Month,
    Year,
    Count,
}

pub(super) const UNITS: [(&str, Unit); 8] = [
    ("시간", Unit::Hours),
    ("시", Unit::Clock),
    ("분", Unit::Minutes),
    ("일", Unit::Days),
    ("주", Unit::Weeks),
    ("월", Unit::Month),
    ("년", Unit::Year),
    ("번", Unit::Count),
];

pub(super) fn split_unit(word: &str) -> Option<(Unit, &str)> {
    UNITS
        .iter()
        .find_map(|(name, unit)| word.strip_prefix(name).map(|rest| (*unit, rest)))
}

/// A number and its unit: "30분", "9시에", "한 시간", "두시", "삼십 분".
pub(super) struct Quantity {
    pub(super) value: i64,
    pub(super) unit: Unit,
    /// What follows the unit in its word ("에", "후에", "반").
    pub(super) rest: String,
    pub(super) used: usize,
}

pub(super) fn quantity(lexemes: &[Lexeme], at: usize) -> Option<Quantity> {
    let first = lexemes.get(at)?;
    let unit_word = |index: usize| {
        lexemes
            .get(index)
            .filter(|lexeme| lexeme.kind == Kind::Hangul)
            .and_then(|lexeme| split_unit(&lexeme.norm))
    };
    match first.kind {
        Kind::Number => {
            let value: i64 = first.norm.parse().ok()?;
            let (unit, rest) = unit_word(at + 1)?;
            Some(Quantity {
                value,
                unit,
                rest: rest.to_owned(),
                used: 2,
            })
        }
        Kind::Hangul => {
            let word = first.norm.as_str();
            // A native number before 시 or 시간, joined or spaced.
            for (name, value) in NATIVE {
                let Some(rest) = word.strip_prefix(name) else {
                    continue;
                };
                let (unit, rest, used) = if rest.is_empty() {
                    let (unit, rest) = unit_word(at + 1)?;
                    (unit, rest, 2)
                } else {
                    let (unit, rest) = split_unit(rest)?;
                    (unit, rest, 1)
                };
                if matches!(unit, Unit::Hours | Unit::Clock) {
                    return Some(Quantity {
                        value,
                        unit,
                        rest: rest.to_owned(),
                        used,
                    });
                }
                return None;
            }
            // A Sino-Korean number before 분, joined or spaced.
            let (digits, rest, used) = match word.find('분') {
                Some(split) => (&word[..split], &word[split + '분'.len_utf8()..], 1),
                None => {
                    let next = lexemes.get(at + 1)?;
                    let rest = next.norm.strip_prefix('분')?;
                    (word, rest, 2)
                }
            };
            Some(Quantity {
                value: sino(digits)?,
                unit: Unit::Minutes,
                rest: rest.to_owned(),
                used,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sino_korean_numbers_are_read_up_to_ninety_nine() {
        assert_eq!(sino("삼십"), Some(30));
        assert_eq!(sino("십오"), Some(15));
        assert_eq!(sino("이십오"), Some(25));
        assert_eq!(sino("구십구"), Some(99));
        assert_eq!(sino("시계"), None);
    }

    #[test]
    fn a_quantity_is_a_number_and_its_unit_in_digits_or_words() {
        let read = |text: &str| {
            let lexemes = lex(text);
            quantity(&lexemes, 0).map(|found| (found.value, found.unit, found.rest, found.used))
        };
        assert_eq!(
            read("30분 후에"),
            Some((30, Unit::Minutes, String::new(), 2))
        );
        assert_eq!(read("한 시간 반"), Some((1, Unit::Hours, String::new(), 2)));
        assert_eq!(read("이틀 뒤"), None);
    }
}
