//! The Korean message cut into lexemes (numbers, Hangul runs, Latin runs,
//! punctuation), and the particles a word may carry.

use super::*;

/// What kind of thing a lexeme is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Number,
    Hangul,
    Latin,
    Punct,
}

/// A piece of the message: its lower-cased text, where it is, and whether
/// a space came before it.
#[derive(Clone, Debug)]
pub(super) struct Lexeme {
    pub(super) kind: Kind,
    pub(super) norm: String,
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) spaced: bool,
}

/// Separators written inside Hangul runs: the middle dots of "월·목".
pub(super) fn is_separator(c: char) -> bool {
    matches!(
        c,
        '\u{00B7}' | '\u{318D}' | '\u{30FB}' | '\u{2027}' | '\u{2022}'
    )
}

pub(super) fn lex(message: &str) -> Vec<Lexeme> {
    let chars: Vec<(usize, char)> = message.char_indices().collect();
    let mut lexemes = Vec::new();
    let mut spaced = true;
    let mut index = 0;
    while index < chars.len() {
        let (start, c) = chars[index];
        if c.is_whitespace() {
            spaced = true;
            index += 1;
            continue;
        }
        let kind = if c.is_ascii_digit() {
            Kind::Number
        } else if is_hangul(c) && !is_separator(c) {
            Kind::Hangul
        } else if c.is_ascii_alphabetic() {
            Kind::Latin
        } else {
            Kind::Punct
        };
        let mut next = index + 1;
        match kind {
            Kind::Number => {
                while let Some((_, d)) = chars.get(next) {
                    if d.is_ascii_digit() {
                        next += 1;
                    } else if matches!(d, ':' | '-' | '.')
                        && chars.get(next + 1).is_some_and(|(_, n)| n.is_ascii_digit())
                    {
                        next += 2;
                    } else {
                        break;
                    }
                }
            }
            Kind::Hangul => {
                while chars
                    .get(next)
                    .is_some_and(|(_, d)| is_hangul(*d) && !is_separator(*d))
                {
                    next += 1;
                }
            }
            Kind::Latin => {
                while chars
                    .get(next)
                    .is_some_and(|(_, d)| d.is_ascii_alphabetic())
                {
                    next += 1;
                }
            }
            Kind::Punct => {}
        }
        let end = chars.get(next).map_or(message.len(), |(at, _)| *at);
        lexemes.push(Lexeme {
            kind,
            norm: message[start..end].to_lowercase(),
            start,
            end,
            spaced,
        });
        spaced = false;
        index = next;
    }
    lexemes
}

/// The text of `message` the lexemes cover, spaced as written.
pub(super) fn text_of(message: &str, lexemes: &[&Lexeme]) -> String {
    let mut text = String::new();
    for (index, lexeme) in lexemes.iter().enumerate() {
        if index > 0 && lexeme.spaced {
            text.push(' ');
        }
        text.push_str(&message[lexeme.start..lexeme.end]);
    }
    text.trim_matches(|c: char| c.is_whitespace() || matches!(c, ',' | ':' | '.' | '-'))
        .to_owned()
}

/// Whether `word` is `keyword` with one of `particles` after it ("" for none).
pub(super) fn is_word(word: &str, keyword: &str, particles: &[&str]) -> bool {
    word.strip_prefix(keyword)
        .is_some_and(|rest| particles.contains(&rest))
}

/// What may follow a time word.
pub(super) const TIME_PARTICLES: [&str; 14] = [
    "", "에", "에는", "엔", "부터", "쯤", "쯤에", "경", "경에", "에도", "도", "은", "는", "까지",
];

/// `word` without a final particle that fits its last syllable (을 after a
/// consonant, 를 after a vowel; the same for 은/는, 이/가, 과/와, 이랑/랑),
/// or 도, 만, 좀, 요, 하고. Kept whole when nothing would be left.
pub(super) fn without_particle(word: &str) -> &str {
    const PAIRS: [(&str, bool); 12] = [
        ("이랑", true),
        ("랑", false),
        ("을", true),
        ("를", false),
        ("은", true),
        ("는", false),
        ("이", true),
        ("가", false),
        ("과", true),
        ("와", false),
        ("으로", true),
        ("로", false),
    ];
    for (particle, after_consonant) in PAIRS {
        if let Some(stem) = word.strip_suffix(particle)
            && let Some(last) = stem.chars().last()
            && has_final_consonant(last) == Some(after_consonant)
        {
            return stem;
        }
    }
    for particle in ["하고", "에다가", "에다", "에서", "에게", "한테", "도", "만"] {
        if let Some(stem) = word.strip_suffix(particle)
            && !stem.is_empty()
        {
            return stem;
        }
    }
    word
}

/// A lexeme right after `at` (unspaced) that is only a particle ("에"):
/// 1 to take it with the word before, else 0.
pub(super) fn particle_after(lexemes: &[Lexeme], at: usize) -> usize {
    match lexemes.get(at) {
        Some(lexeme)
            if lexeme.kind == Kind::Hangul
                && !lexeme.spaced
                && TIME_PARTICLES.contains(&lexeme.norm.as_str()) =>
        {
            1
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_cut_into_numbers_hangul_latin_and_punctuation() {
        let seen: Vec<(Kind, String, bool)> = lex("내일 7pm에 Dentist!")
            .into_iter()
            .map(|lexeme| (lexeme.kind, lexeme.norm, lexeme.spaced))
            .collect();
        let expected = [
            (Kind::Hangul, "내일", true),
            (Kind::Number, "7", true),
            (Kind::Latin, "pm", false),
            (Kind::Hangul, "에", false),
            (Kind::Latin, "dentist", true),
            (Kind::Punct, "!", false),
        ];
        assert_eq!(
            seen,
            expected.map(|(kind, norm, spaced)| (kind, norm.to_owned(), spaced))
        );
        // "월·목": the middle dot stands between two days.
        let days: Vec<String> = lex("월·목").into_iter().map(|lexeme| lexeme.norm).collect();
        assert_eq!(days, ["월", "·", "목"]);
    }

    #[test]
    fn a_particle_comes_off_only_where_it_fits_the_last_syllable() {
        assert_eq!(without_particle("보일러를"), "보일러");
        assert_eq!(without_particle("우유랑"), "우유");
        assert_eq!(without_particle("계란이랑"), "계란");
        // 을 follows a consonant only: "우유을" is not 우유 + 을.
        assert_eq!(without_particle("우유을"), "우유을");
        // Nothing left: kept whole.
        assert_eq!(without_particle("를"), "를");
        assert!(is_word("알림을", "알림", &["", "을"]));
        assert!(!is_word("알림장", "알림", &["", "을"]));
    }
}
