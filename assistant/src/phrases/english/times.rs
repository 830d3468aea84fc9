//! English time phrases: clock times (`at 7pm`, `at noon`), days
//! (`tomorrow`, `next Friday`, `on 3 December`, `on 2026-12-03`), amounts
//! (`in 20 minutes`), parts of the day and recurrence (`every Monday`,
//! `every 30 minutes`, `every month on the 1st`).

use super::*;

/// A part of the day without a clock time.
pub(in crate::phrases) const PARTS_OF_DAY: [(&str, i8); 5] = [
    ("morning", MORNING),
    ("afternoon", AFTERNOON),
    ("evening", EVENING),
    ("tonight", NIGHT),
    ("night", NIGHT),
];

/// Reads a time phrase at the start of `words` into `when`; how many words it took.
pub(in crate::phrases) fn time_phrase(
    words: &[Word],
    when: &mut When,
) -> Result<usize, PhraseError> {
    let norm = |index: usize| words.get(index).map(|word| word.norm.as_str());
    match norm(0) {
        Some("at") => {
            if let Some((clock, used)) = clock(&words[1..]) {
                set(&mut when.clock, clock)?;
                return Ok(1 + used);
            }
            Ok(0)
        }
        Some("noon" | "midday") => {
            set(&mut when.clock, Clock::noon())?;
            Ok(1)
        }
        Some("midnight") => {
            set(&mut when.clock, Clock::midnight())?;
            Ok(1)
        }
        Some("today") => {
            set(&mut when.day, Day::Today)?;
            Ok(1)
        }
        Some("tonight") => {
            set(&mut when.day, Day::Today)?;
            set(&mut when.part_of_day, NIGHT)?;
            Ok(1)
        }
        Some("tomorrow") => {
            set(&mut when.day, Day::Tomorrow)?;
            if let Some(hour) = norm(1).and_then(part_of_day) {
                set(&mut when.part_of_day, hour)?;
                return Ok(2);
            }
            Ok(1)
        }
        Some("this") => match norm(1).and_then(part_of_day) {
            Some(hour) => {
                set(&mut when.day, Day::Today)?;
                set(&mut when.part_of_day, hour)?;
                Ok(2)
            }
            None => Ok(0),
        },
        Some("in") => {
            if let Some((duration, used)) = relative(&words[1..]) {
                set(&mut when.after, duration)?;
                return Ok(1 + used);
            }
            Ok(0)
        }
        Some("on" | "next") => {
            if let Some((day, used)) = day(&words[1..])? {
                set(&mut when.day, day)?;
                return Ok(1 + used);
            }
            Ok(0)
        }
        Some("every" | "each") => {
            if let Some((every, part, used)) = every(&words[1..]) {
                set(&mut when.every, every)?;
                if let Some(hour) = part {
                    set(&mut when.part_of_day, hour)?;
                }
                return Ok(1 + used);
            }
            Ok(0)
        }
        Some("daily") => {
            set(&mut when.every, Every::Days(ALL_DAYS))?;
            Ok(1)
        }
        Some("weekdays") => {
            set(&mut when.every, Every::Days(WEEKDAYS))?;
            Ok(1)
        }
        Some(other) => {
            // A bare weekday only before a time ("Friday at 6"), so that
            // "buy the Sunday roast" stays words.
            if let Some(weekday) = weekday(other)
                && norm(1).is_some_and(|next| next == "at" || part_of_day(next).is_some())
            {
                set(&mut when.day, Day::Weekday(weekday))?;
                return Ok(1);
            }
            // "7pm" or "19:00" without "at", when it cannot be anything else.
            if (other.contains(':') || other.ends_with("am") || other.ends_with("pm"))
                && let Some((clock, used)) = clock(words)
            {
                set(&mut when.clock, clock)?;
                return Ok(used);
            }
            Ok(0)
        }
        None => Ok(0),
    }
}

pub(in crate::phrases) fn part_of_day(word: &str) -> Option<i8> {
    PARTS_OF_DAY
        .iter()
        .find(|(name, _)| *name == word)
        .map(|(_, hour)| *hour)
}

/// `7`, `7pm`, `7 pm`, `7:30`, `7.30am`, `19:00`, `noon`, `midnight`.
pub(in crate::phrases) fn clock(words: &[Word]) -> Option<(Clock, usize)> {
    let first = words.first()?.norm.as_str();
    match first {
        "noon" | "midday" => return Some((Clock::noon(), 1)),
        "midnight" => return Some((Clock::midnight(), 1)),
        _ => {}
    }
    let next = words.get(1).map(|word| word.norm.as_str());
    let (clock, used) = clock_word(first, next)?;
    Some((clock, used))
}

/// A clock time written as `word` (`7`, `7pm`, `7:30`, `19:00`), with
/// `next` saying am or pm when it does; the clock, and 1 or 2 words used.
pub(in crate::phrases) fn clock_word(word: &str, next: Option<&str>) -> Option<(Clock, usize)> {
    let (digits, mut pm) = if let Some(digits) = word.strip_suffix("pm") {
        (digits, Some(true))
    } else if let Some(digits) = word.strip_suffix("am") {
        (digits, Some(false))
    } else {
        (word, None)
    };
    let mut used = 1;
    if pm.is_none() {
        match next {
            Some("pm" | "p.m") => {
                pm = Some(true);
                used = 2;
            }
            Some("am" | "a.m") => {
                pm = Some(false);
                used = 2;
            }
            _ => {}
        }
    }
    let (hour, minute) = match digits.split_once([':', '.']) {
        Some((hour, minute)) if minute.len() == 2 => (hour.parse().ok()?, minute.parse().ok()?),
        Some(_) => return None,
        None => (digits.parse().ok()?, 0),
    };
    let valid = match pm {
        Some(_) => (1..=12).contains(&hour),
        None => (0..=23).contains(&hour),
    };
    if !valid || !(0..=59).contains(&minute) {
        return None;
    }
    Some((Clock { hour, minute, pm }, used))
}

/// `20 minutes`, `an hour`, `half an hour`, `3 days`, `2 weeks`.
pub(in crate::phrases) fn relative(words: &[Word]) -> Option<(SignedDuration, usize)> {
    let norms: Vec<&str> = words
        .iter()
        .take(3)
        .map(|word| word.norm.as_str())
        .collect();
    if let ["half", "an", "hour", ..] = norms.as_slice() {
        return Some((SignedDuration::from_mins(30), 3));
    }
    let count: i64 = match norms.first()? {
        &"a" | &"an" => 1,
        number => number
            .parse()
            .ok()
            .filter(|count| (1..=10_000).contains(count))?,
    };
    let unit = unit(norms.get(1)?)?;
    Some((unit.checked_mul(i32::try_from(count).ok()?)?, 2))
}

pub(in crate::phrases) fn unit(word: &str) -> Option<SignedDuration> {
    Some(match word {
        "minute" | "minutes" | "min" | "mins" => SignedDuration::from_mins(1),
        "hour" | "hours" | "hr" | "hrs" => SignedDuration::from_hours(1),
        "day" | "days" => SignedDuration::from_hours(24),
        "week" | "weeks" => SignedDuration::from_hours(24 * 7),
        _ => return None,
    })
}

pub(in crate::phrases) fn weekday(word: &str) -> Option<Weekday> {
    let word = word.strip_suffix('s').unwrap_or(word);
    Some(match word {
        "monday" | "mon" => Weekday::Monday,
        "tuesday" | "tue" | "tues" => Weekday::Tuesday,
        "wednesday" | "wed" => Weekday::Wednesday,
        "thursday" | "thu" | "thurs" => Weekday::Thursday,
        "friday" | "fri" => Weekday::Friday,
        "saturday" | "sat" => Weekday::Saturday,
        "sunday" | "sun" => Weekday::Sunday,
        _ => return None,
    })
}

pub(in crate::phrases) const MONTH_NAMES: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

pub(in crate::phrases) fn month(word: &str) -> Option<i8> {
    MONTH_NAMES
        .iter()
        .position(|name| *name == word || (word.len() >= 3 && name.starts_with(word)))
        .and_then(|index| i8::try_from(index + 1).ok())
}

pub(in crate::phrases) fn day_number(word: &str) -> Option<i8> {
    let digits = word.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &word[digits.len()..];
    if !matches!(suffix, "" | "st" | "nd" | "rd" | "th") {
        return None;
    }
    digits.parse().ok().filter(|day| (1..=31).contains(day))
}

/// After `on` or `next`: a weekday, `3 December`, `December 3rd`,
/// `the 3rd of December`, `2026-12-03`.
pub(in crate::phrases) fn day(words: &[Word]) -> Result<Option<(Day, usize)>, PhraseError> {
    let norms: Vec<&str> = words
        .iter()
        .take(4)
        .map(|word| word.norm.as_str())
        .collect();
    let Some(first) = norms.first() else {
        return Ok(None);
    };
    if let Some(weekday) = weekday(first) {
        return Ok(Some((Day::Weekday(weekday), 1)));
    }
    if let Some(date) = iso_date(first) {
        return date.map(|day| Some((day, 1)));
    }
    let (offset, norms) = match norms.first() {
        Some(&"the") => (1, &norms[1..]),
        _ => (0, &norms[..]),
    };
    let date = |month: i8, day: i8| Day::Date {
        month,
        day,
        year: None,
    };
    match norms {
        [day, "of", name, ..] => {
            if let (Some(day), Some(month)) = (day_number(day), month(name)) {
                return Ok(Some((date(month, day), offset + 3)));
            }
        }
        [first, second, ..] => {
            if let (Some(day), Some(month)) = (day_number(first), month(second)) {
                return Ok(Some((date(month, day), offset + 2)));
            }
            if let (Some(month), Some(day)) = (month(first), day_number(second)) {
                return Ok(Some((date(month, day), offset + 2)));
            }
        }
        _ => {}
    }
    Ok(None)
}

/// `2026-12-03` as a day (an error when it looks like one but is not).
pub(in crate::phrases) fn iso_date(word: &str) -> Option<Result<Day, PhraseError>> {
    let mut parts = word.split('-');
    let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || year.len() != 4 {
        return None;
    }
    let (Ok(year), Ok(month), Ok(day)) = (year.parse(), month.parse(), day.parse()) else {
        return Some(Err(PhraseError::BadTime(word.to_owned())));
    };
    Some(Ok(Day::Date {
        month,
        day,
        year: Some(year),
    }))
}

/// After `every`: `day`, `weekday`, `weekend`, `Monday`, `Monday and
/// Thursday`, `morning`, `hour`, `30 minutes`, `2 hours`, `month on the 1st`.
pub(in crate::phrases) fn every(words: &[Word]) -> Option<(Every, Option<i8>, usize)> {
    let norms: Vec<&str> = words
        .iter()
        .take(8)
        .map(|word| word.norm.as_str())
        .collect();
    let first = *norms.first()?;
    match first {
        "day" => return Some((Every::Days(ALL_DAYS), None, 1)),
        "weekday" | "weekdays" => return Some((Every::Days(WEEKDAYS), None, 1)),
        "weekend" | "weekends" => return Some((Every::Days(WEEKEND), None, 1)),
        "minute" => return Some((Every::Interval(SignedDuration::from_mins(1)), None, 1)),
        "hour" => return Some((Every::Interval(SignedDuration::from_hours(1)), None, 1)),
        "month" => {
            // "every month on the 1st", "every month on the last day"
            return match norms.get(1..5) {
                Some(["on", "the", "last", "day"]) => Some((Every::LastDayOfMonth, None, 5)),
                _ => match norms.get(1..4) {
                    Some(["on", "the", day, ..]) => {
                        day_number(day).map(|day| (Every::MonthDay(day), None, 4))
                    }
                    _ => match norms.get(1..3) {
                        Some(["on", day]) => {
                            day_number(day).map(|day| (Every::MonthDay(day), None, 3))
                        }
                        _ => None,
                    },
                },
            };
        }
        _ => {}
    }
    if let Some(hour) = part_of_day(first) {
        return Some((Every::Days(ALL_DAYS), Some(hour), 1));
    }
    if let Ok(count) = first.parse::<i32>()
        && (1..=10_000).contains(&count)
        && let Some(unit) = norms.get(1).and_then(|word| unit(word))
    {
        return Some((Every::Interval(unit.checked_mul(count)?), None, 2));
    }
    // Weekdays joined by "and" or commas.
    let mut mask = 0u8;
    let mut used = 0usize;
    for norm in &norms {
        if let Some(day) = weekday(norm) {
            mask |= day_bit(day);
            used += 1;
        } else if *norm == "and" && mask != 0 {
            used += 1;
        } else {
            break;
        }
    }
    if used > 0 && norms.get(used - 1) == Some(&"and") {
        used -= 1;
    }
    (mask != 0).then_some((Every::Days(mask), None, used))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_weekdays_and_days_of_the_month_are_read_from_words() {
        assert_eq!(month("december"), Some(12));
        assert_eq!(month("dec"), Some(12));
        assert_eq!(month("decimal"), None);
        assert_eq!(weekday("friday"), Some(Weekday::Friday));
        assert_eq!(weekday("fri"), Some(Weekday::Friday));
        assert_eq!(day_number("3rd"), Some(3));
        assert_eq!(day_number("32nd"), None);
        assert!(clock_word("7pm", None).is_some());
        assert!(clock_word("19:00", None).is_some());
        assert!(clock_word("seven", None).is_none());
        assert!(matches!(iso_date("2026-12-03"), Some(Ok(_))));
        assert!(matches!(iso_date("2026-1x-03"), Some(Err(_))));
        assert!(iso_date("26-12-03").is_none());
    }
}
