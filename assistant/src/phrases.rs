//! What a member's message asks of the assistant when it is one of the
//! household's everyday requests: "remember that …", "remind me at 7 pm to
//! …", "every Monday at 8 tell the household …". Recognised without the
//! model, so they work the same with any model (and with none); anything
//! else goes to the model, which can still call the same tools. Pure: the
//! time and the household's time zone are inputs.
//!
//! Times understood: `at 7`, `at 7pm`, `at 7:30 am`, `at 19:00`, `at noon`,
//! `at midnight`; `today`, `tonight`, `tomorrow`, `this evening`, `tomorrow
//! morning`; `on Friday`, `next Friday`, `on 3 December`, `on December 3rd`,
//! `on 2026-12-03`; `in 20 minutes`, `in an hour`, `in half an hour`, `in 3
//! days`; and, recurring, `every day`, `every weekday`, `every weekend`,
//! `every Monday`, `every Monday and Thursday`, `every morning`, `every
//! hour`, `every 30 minutes`. A clock hour without am/pm and without a day
//! is the next time it comes round (`at 7` at 3 pm is 7 pm); with a day,
//! 1 to 6 are afternoon hours and 7 to 11 morning ones.

use jiff::civil::{Date, Time, Weekday};
use jiff::{SignedDuration, Timestamp};

use crate::schedule::{Schedule, ScheduleError, zone};

/// A request the assistant carries out without the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Intent {
    /// Write this into the member's memory.
    Remember {
        /// What to remember, as they said it.
        text: String,
    },
    /// Schedule something.
    Schedule(Scheduled),
}

/// Something to do later.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scheduled {
    /// When.
    pub schedule: Schedule,
    /// What happens then.
    pub action: Action,
    /// Who hears it.
    pub audience: Audience,
}

/// What a scheduled job does when it fires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Deliver this reminder, as written.
    Remind(String),
    /// Ask the assistant this, and deliver its answer (OpenClaw's agent turn).
    Ask(String),
}

/// Who a scheduled message goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    /// The member who asked, in their conversation with the assistant.
    Me,
    /// The room it was asked in (the household's room when asked in a DM).
    Room,
}

/// Why a request that looked like one could not be carried out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PhraseError {
    /// No time could be read.
    #[error(
        "I could not tell when. Say a time such as \"at 7 pm\", \"tomorrow at 8:30\", \"in 20 minutes\" or \"every Monday at 8\"."
    )]
    NoTime,
    /// Two times were given.
    #[error("I read two different times in that; say just one.")]
    TwoTimes,
    /// The time has passed.
    #[error("That time has already passed.")]
    Past,
    /// Nothing to remind about, or nothing to remember.
    #[error("I could not tell what to {0}.")]
    Empty(&'static str),
    /// A time that does not exist (31 February, 25:00).
    #[error("{0} is not a time or date I know.")]
    BadTime(String),
    /// The household's time zone is wrong.
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
}

/// Longest message looked at (longer ones go to the model as they are).
const MAX_MESSAGE: usize = 2_000;

/// The request in `message`, if it is one of the everyday ones, read at
/// `now` in the household's time zone `tz`. `None`: not one of them.
pub fn recognize(message: &str, now: Timestamp, tz: &str) -> Option<Result<Intent, PhraseError>> {
    if message.len() > MAX_MESSAGE {
        return None;
    }
    let words = words(message);
    let start = skip_preamble(&words);
    let words = &words[start..];
    let first = words.first()?;
    match first.norm.as_str() {
        "remember" => Some(remember(message, &words[1..])),
        "remind" => {
            let (audience, used) = audience(&words[1..])?;
            Some(schedule(
                message,
                &words[1 + used..],
                Verb::Remind,
                audience,
                now,
                tz,
            ))
        }
        "every" | "each" | "daily" | "weekdays" => {
            // "every Monday at 8 tell the household the week's plan"
            let verb_at = words
                .iter()
                .position(|word| VERBS.contains(&word.norm.as_str()))?;
            let (audience, used) = audience(&words[verb_at + 1..])?;
            if words[verb_at].norm == "remind" {
                let mut rest: Vec<Word> = words[..verb_at].to_vec();
                rest.extend_from_slice(&words[verb_at + 1 + used..]);
                Some(schedule(message, &rest, Verb::Remind, audience, now, tz))
            } else {
                // The instruction itself is what the assistant is asked then.
                Some(schedule(message, words, Verb::Ask, audience, now, tz))
            }
        }
        _ => None,
    }
}

/// Verbs that start the action of a recurring request.
const VERBS: [&str; 7] = [
    "remind",
    "tell",
    "give",
    "send",
    "share",
    "post",
    "summarize",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verb {
    Remind,
    Ask,
}

/// One word of the message: its lower-cased form without surrounding
/// punctuation, and where it is in the message.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Word {
    norm: String,
    start: usize,
    end: usize,
}

fn words(message: &str) -> Vec<Word> {
    let mut words = Vec::new();
    let mut offset = 0;
    for piece in message.split_inclusive(char::is_whitespace) {
        let trimmed = piece.trim_end();
        let lead = trimmed.len() - trimmed.trim_start_matches(is_edge).len();
        let core = trimmed.trim_matches(is_edge);
        if !core.is_empty() {
            let start = offset + lead;
            words.push(Word {
                norm: core.to_lowercase(),
                start,
                end: start + core.len(),
            });
        }
        offset += piece.len();
    }
    words
}

fn is_edge(c: char) -> bool {
    matches!(
        c,
        ',' | '.' | '!' | '?' | ';' | ':' | '"' | '\'' | '(' | ')' | '\u{201c}' | '\u{201d}'
    )
}

/// Words before the request itself: a mention of the assistant, greetings, "please".
fn skip_preamble(words: &[Word]) -> usize {
    let filler = [
        "@assistant",
        "assistant",
        "hey",
        "hi",
        "please",
        "pls",
        "could",
        "can",
        "would",
        "you",
    ];
    words
        .iter()
        .take_while(|word| filler.contains(&word.norm.as_str()))
        .count()
}

/// The text of `message` from the first to the last of `words`.
fn text_of(message: &str, words: &[Word]) -> String {
    match (words.first(), words.last()) {
        (Some(first), Some(last)) => message[first.start..last.end].trim().to_owned(),
        _ => String::new(),
    }
}

fn remember(message: &str, rest: &[Word]) -> Result<Intent, PhraseError> {
    let mut rest = rest;
    if rest
        .first()
        .is_some_and(|word| word.norm == "that" || word.norm == ":")
    {
        rest = &rest[1..];
    }
    let text = text_of(message, rest);
    let text = text.trim_start_matches(':').trim().to_owned();
    if text.is_empty() {
        return Err(PhraseError::Empty("remember"));
    }
    Ok(Intent::Remember { text })
}

/// Who a reminder is for, and how many words said so.
fn audience(words: &[Word]) -> Option<(Audience, usize)> {
    let norms: Vec<&str> = words
        .iter()
        .take(2)
        .map(|word| word.norm.as_str())
        .collect();
    match norms.as_slice() {
        ["me", ..] => Some((Audience::Me, 1)),
        ["us" | "everyone" | "everybody" | "all", ..] => Some((Audience::Room, 1)),
        ["the", "household" | "family" | "house" | "room" | "group"] => Some((Audience::Room, 2)),
        _ => None,
    }
}

/// A part of the day without a clock time.
const PARTS_OF_DAY: [(&str, i8); 5] = [
    ("morning", 9),
    ("afternoon", 15),
    ("evening", 18),
    ("tonight", 20),
    ("night", 20),
];

/// The time pieces read from a message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct When {
    clock: Option<Clock>,
    day: Option<Day>,
    part_of_day: Option<i8>,
    after: Option<SignedDuration>,
    every: Option<Every>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Clock {
    hour: i8,
    minute: i8,
    /// `Some(true)` for pm, `Some(false)` for am, `None` when not said.
    pm: Option<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Day {
    Today,
    Tomorrow,
    /// The next such weekday (today counts if the time is still ahead).
    Weekday(Weekday),
    /// A calendar date; the year when given.
    Date {
        month: i8,
        day: i8,
        year: Option<i16>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Every {
    /// On these weekdays (bits, Sunday = 0).
    Days(u8),
    /// At this interval.
    Interval(SignedDuration),
}

const ALL_DAYS: u8 = 0b111_1111;
const WEEKDAYS: u8 = 0b011_1110;
const WEEKEND: u8 = 0b100_0001;

fn schedule(
    message: &str,
    words: &[Word],
    verb: Verb,
    audience: Audience,
    now: Timestamp,
    tz: &str,
) -> Result<Intent, PhraseError> {
    let zone = zone(tz)?;
    let mut when = When::default();
    let mut kept: Vec<Word> = Vec::new();
    let mut index = 0;
    while index < words.len() {
        match time_phrase(&words[index..], &mut when)? {
            0 => {
                kept.push(words[index].clone());
                index += 1;
            }
            used => index += used,
        }
    }
    // "remind me every Monday at 8 to …": the action starts at its connective.
    let mut kept = kept.as_slice();
    if verb == Verb::Remind
        && kept
            .first()
            .is_some_and(|word| matches!(word.norm.as_str(), "to" | "that" | "about" | "of"))
    {
        kept = &kept[1..];
    }
    let text = text_of(message, kept);
    if text.is_empty() {
        return Err(PhraseError::Empty(match verb {
            Verb::Remind => "remind you of",
            Verb::Ask => "do then",
        }));
    }
    let action = match verb {
        Verb::Remind => Action::Remind(text),
        Verb::Ask => Action::Ask(ask_text(&text)),
    };
    let schedule = resolve(&when, now, &zone, tz)?;
    Ok(Intent::Schedule(Scheduled {
        schedule,
        action,
        audience,
    }))
}

/// The schedule a time given on its own describes (the `when` of the
/// `reminder_create` tool): a phrase such as "tomorrow at 8:30" or "every
/// Monday at 8", or an ISO 8601 time (with an offset, or read in `tz`).
pub fn time(text: &str, now: Timestamp, tz: &str) -> Result<Schedule, PhraseError> {
    let zone = zone(tz)?;
    let trimmed = text.trim();
    if let Ok(at) = trimmed.parse::<Timestamp>() {
        return if at > now {
            Ok(Schedule::At { at })
        } else {
            Err(PhraseError::Past)
        };
    }
    if let Ok(civil) = trimmed
        .replacen(' ', "T", 1)
        .parse::<jiff::civil::DateTime>()
    {
        let at = zone
            .to_ambiguous_zoned_datetime(civil)
            .compatible()
            .map_err(|_| PhraseError::BadTime(trimmed.to_owned()))?
            .timestamp();
        return if at > now {
            Ok(Schedule::At { at })
        } else {
            Err(PhraseError::Past)
        };
    }
    let words = words(trimmed);
    let mut when = When::default();
    let mut index = 0;
    while index < words.len() {
        match time_phrase(&words[index..], &mut when)? {
            0 => return Err(PhraseError::BadTime(text.chars().take(80).collect())),
            used => index += used,
        }
    }
    resolve(&when, now, &zone, tz)
}

/// What the assistant is asked when an "every Monday, tell the household
/// the week's plan" fires: the request without its time, as a sentence.
fn ask_text(rest: &str) -> String {
    let mut text = rest.to_owned();
    if let Some(first) = text.get(..1) {
        text = first.to_uppercase() + &text[1..];
    }
    if !text.ends_with(['.', '!', '?']) {
        text.push('.');
    }
    text
}

/// Puts `value` in `slot`, unless the message already gave one.
fn set<T>(slot: &mut Option<T>, value: T) -> Result<(), PhraseError> {
    if slot.is_some() {
        return Err(PhraseError::TwoTimes);
    }
    *slot = Some(value);
    Ok(())
}

/// Reads a time phrase at the start of `words` into `when`; how many words it took.
fn time_phrase(words: &[Word], when: &mut When) -> Result<usize, PhraseError> {
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
            set(&mut when.clock, noon())?;
            Ok(1)
        }
        Some("midnight") => {
            set(&mut when.clock, midnight())?;
            Ok(1)
        }
        Some("today") => {
            set(&mut when.day, Day::Today)?;
            Ok(1)
        }
        Some("tonight") => {
            set(&mut when.day, Day::Today)?;
            set(&mut when.part_of_day, 20)?;
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

fn noon() -> Clock {
    Clock {
        hour: 12,
        minute: 0,
        pm: Some(true),
    }
}

fn midnight() -> Clock {
    Clock {
        hour: 0,
        minute: 0,
        pm: Some(false),
    }
}

fn part_of_day(word: &str) -> Option<i8> {
    PARTS_OF_DAY
        .iter()
        .find(|(name, _)| *name == word)
        .map(|(_, hour)| *hour)
}

/// `7`, `7pm`, `7 pm`, `7:30`, `7.30am`, `19:00`, `noon`, `midnight`.
fn clock(words: &[Word]) -> Option<(Clock, usize)> {
    let first = words.first()?.norm.as_str();
    match first {
        "noon" | "midday" => return Some((noon(), 1)),
        "midnight" => return Some((midnight(), 1)),
        _ => {}
    }
    let (digits, mut pm) = if let Some(digits) = first.strip_suffix("pm") {
        (digits, Some(true))
    } else if let Some(digits) = first.strip_suffix("am") {
        (digits, Some(false))
    } else {
        (first, None)
    };
    let mut used = 1;
    if pm.is_none() {
        match words.get(1).map(|word| word.norm.as_str()) {
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
fn relative(words: &[Word]) -> Option<(SignedDuration, usize)> {
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

fn unit(word: &str) -> Option<SignedDuration> {
    Some(match word {
        "minute" | "minutes" | "min" | "mins" => SignedDuration::from_mins(1),
        "hour" | "hours" | "hr" | "hrs" => SignedDuration::from_hours(1),
        "day" | "days" => SignedDuration::from_hours(24),
        "week" | "weeks" => SignedDuration::from_hours(24 * 7),
        _ => return None,
    })
}

fn weekday(word: &str) -> Option<Weekday> {
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

const MONTH_NAMES: [&str; 12] = [
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

fn month(word: &str) -> Option<i8> {
    MONTH_NAMES
        .iter()
        .position(|name| *name == word || (word.len() >= 3 && name.starts_with(word)))
        .and_then(|index| i8::try_from(index + 1).ok())
}

fn day_number(word: &str) -> Option<i8> {
    let digits = word.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &word[digits.len()..];
    if !matches!(suffix, "" | "st" | "nd" | "rd" | "th") {
        return None;
    }
    digits.parse().ok().filter(|day| (1..=31).contains(day))
}

/// After `on` or `next`: a weekday, `3 December`, `December 3rd`,
/// `the 3rd of December`, `2026-12-03`.
fn day(words: &[Word]) -> Result<Option<(Day, usize)>, PhraseError> {
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

fn iso_date(word: &str) -> Option<Result<Day, PhraseError>> {
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
/// Thursday`, `morning`, `hour`, `30 minutes`, `2 hours`.
fn every(words: &[Word]) -> Option<(Every, Option<i8>, usize)> {
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
            mask |= 1 << day.to_sunday_zero_offset();
            used += 1;
        } else if *norm == "and" && mask != 0 {
            used += 1;
        } else {
            break;
        }
    }
    if norms.get(used.saturating_sub(1)) == Some(&"and") {
        used -= 1;
    }
    (mask != 0).then_some((Every::Days(mask), None, used))
}

/// The schedule `when` describes, at `now` in `zone` (named `tz`).
fn resolve(
    when: &When,
    now: Timestamp,
    zone: &jiff::tz::TimeZone,
    tz: &str,
) -> Result<Schedule, PhraseError> {
    let local = now.to_zoned_datetime(zone.clone());
    if let Some(after) = when.after {
        if when.clock.is_some() || when.day.is_some() || when.every.is_some() {
            return Err(PhraseError::TwoTimes);
        }
        let at = now
            .checked_add(after)
            .map_err(|_| PhraseError::BadTime("that".into()))?;
        return Ok(Schedule::At { at });
    }
    if let Some(every) = when.every {
        if when.day.is_some() {
            return Err(PhraseError::TwoTimes);
        }
        return match every {
            Every::Interval(interval) => {
                if when.clock.is_some() {
                    return Err(PhraseError::TwoTimes);
                }
                let every_ms = u64::try_from(interval.as_millis())
                    .map_err(|_| PhraseError::BadTime("that interval".into()))?;
                let anchor = now
                    .checked_add(interval)
                    .map_err(|_| PhraseError::BadTime("that interval".into()))?;
                let schedule = Schedule::Every { every_ms, anchor };
                schedule.check()?;
                Ok(schedule)
            }
            Every::Days(mask) => {
                let (hour, minute) = match (when.clock, when.part_of_day) {
                    (Some(clock), part) => (day_hour(clock, part), clock.minute),
                    (None, Some(hour)) => (hour, 0),
                    (None, None) => return Err(PhraseError::NoTime),
                };
                let days = if mask == ALL_DAYS {
                    "*".to_owned()
                } else {
                    (0..7)
                        .filter(|day| mask & (1 << day) != 0)
                        .map(|day| day.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                };
                Ok(Schedule::Cron {
                    expr: format!("{minute} {hour} * * {days}"),
                    tz: tz.to_owned(),
                })
            }
        };
    }
    let today = local.date();
    let at = |date: Date, hour: i8, minute: i8| -> Result<Timestamp, PhraseError> {
        let time = Time::new(hour, minute, 0, 0)
            .map_err(|_| PhraseError::BadTime(format!("{hour}:{minute:02}")))?;
        zone.to_ambiguous_zoned_datetime(date.to_datetime(time))
            .compatible()
            .map(|zoned| zoned.timestamp())
            .map_err(|_| PhraseError::BadTime(format!("{date} {hour}:{minute:02}")))
    };
    let Some(day) = when.day else {
        // A clock time alone: the next time it comes round.
        let Some(clock) = when.clock else {
            return match when.part_of_day {
                Some(hour) => {
                    let at = at(today, hour, 0)?;
                    if at <= now {
                        return Err(PhraseError::Past);
                    }
                    Ok(Schedule::At { at })
                }
                None => Err(PhraseError::NoTime),
            };
        };
        let mut hours = vec![day_hour(clock, when.part_of_day)];
        if clock.pm.is_none() && when.part_of_day.is_none() && (1..=11).contains(&clock.hour) {
            hours = vec![clock.hour, clock.hour + 12];
        }
        for date in [today, today.tomorrow().map_err(|_| PhraseError::Past)?] {
            for hour in &hours {
                let candidate = at(date, *hour, clock.minute)?;
                if candidate > now {
                    return Ok(Schedule::At { at: candidate });
                }
            }
        }
        return Err(PhraseError::Past);
    };
    let (hour, minute) = match (when.clock, when.part_of_day) {
        (Some(clock), part) => (day_hour(clock, part), clock.minute),
        (None, Some(hour)) => (hour, 0),
        (None, None) => (9, 0),
    };
    let date = match day {
        Day::Today => today,
        Day::Tomorrow => today.tomorrow().map_err(|_| PhraseError::Past)?,
        Day::Weekday(weekday) => {
            let ahead = (weekday.to_sunday_zero_offset() - today.weekday().to_sunday_zero_offset())
                .rem_euclid(7);
            let mut date = today
                .checked_add(jiff::Span::new().days(i64::from(ahead)))
                .map_err(|_| PhraseError::Past)?;
            if at(date, hour, minute)? <= now {
                date = date
                    .checked_add(jiff::Span::new().days(7))
                    .map_err(|_| PhraseError::Past)?;
            }
            date
        }
        Day::Date { month, day, year } => {
            let given = year;
            let year = year.unwrap_or(today.year());
            let date = Date::new(year, month, day)
                .map_err(|_| PhraseError::BadTime(format!("{year}-{month:02}-{day:02}")))?;
            // "on 3 January" said in December is next year's.
            if given.is_none() && at(date, hour, minute)? <= now {
                Date::new(year + 1, month, day)
                    .map_err(|_| PhraseError::BadTime(format!("{month}/{day}")))?
            } else {
                date
            }
        }
    };
    let instant = at(date, hour, minute)?;
    if instant <= now {
        return Err(PhraseError::Past);
    }
    Ok(Schedule::At { at: instant })
}

/// The 24-hour hour of `clock`: am/pm when said, else afternoon for 1 to 6
/// (and in the evening or at night for any hour under 12).
fn day_hour(clock: Clock, part: Option<i8>) -> i8 {
    match clock.pm {
        Some(true) if clock.hour < 12 => clock.hour + 12,
        Some(false) if clock.hour == 12 => 0,
        Some(_) => clock.hour,
        None => match part {
            Some(part) if part >= 15 && clock.hour < 12 => clock.hour + 12,
            Some(_) => clock.hour,
            None if (1..=6).contains(&clock.hour) => clock.hour + 12,
            None => clock.hour,
        },
    }
}

/// How a schedule reads to people in time zone `tz`: "Tuesday 24 November
/// at 19:00", "every Monday at 08:00", "every 30 minutes".
pub fn describe(schedule: &Schedule, tz: &str) -> String {
    match schedule {
        Schedule::At { at } => match zone(tz) {
            Ok(zone) => at
                .to_zoned_datetime(zone)
                .strftime("%A %-d %B %Y at %H:%M")
                .to_string(),
            Err(_) => at.to_string(),
        },
        Schedule::Every { every_ms, .. } => {
            let minutes = every_ms / 60_000;
            match minutes {
                60 => "every hour".into(),
                minutes if minutes % 60 == 0 => format!("every {} hours", minutes / 60),
                1 => "every minute".into(),
                minutes => format!("every {minutes} minutes"),
            }
        }
        Schedule::Cron { expr, .. } => describe_cron(expr),
    }
}

fn describe_cron(expr: &str) -> String {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let [minute, hour, "*", "*", days] = fields.as_slice() else {
        return format!("on the cron schedule `{expr}`");
    };
    let (Ok(minute), Ok(hour)) = (minute.parse::<u8>(), hour.parse::<u8>()) else {
        return format!("on the cron schedule `{expr}`");
    };
    const NAMES: [&str; 7] = [
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
    ];
    let on = match *days {
        "*" => "every day".to_owned(),
        "1,2,3,4,5" => "every weekday".to_owned(),
        "0,6" => "every weekend day".to_owned(),
        list => {
            let names: Vec<&str> = list
                .split(',')
                .filter_map(|day| day.parse::<usize>().ok())
                .filter_map(|day| NAMES.get(day).copied())
                .collect();
            match names.as_slice() {
                [] => return format!("on the cron schedule `{expr}`"),
                [one] => format!("every {one}"),
                [rest @ .., last] => format!("every {} and {last}", rest.join(", ")),
            }
        }
    };
    format!("{on} at {hour:02}:{minute:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONDON: &str = "Europe/London";

    /// Tuesday 24 November 2026, 15:00 in London (GMT).
    fn now() -> Timestamp {
        "2026-11-24T15:00:00Z".parse().unwrap()
    }

    fn at(text: &str) -> Schedule {
        Schedule::At {
            at: text.parse().unwrap(),
        }
    }

    fn scheduled(message: &str) -> Scheduled {
        match recognize(message, now(), LONDON) {
            Some(Ok(Intent::Schedule(scheduled))) => scheduled,
            other => panic!("{message:?}: {other:?}"),
        }
    }

    fn when(message: &str) -> Schedule {
        scheduled(message).schedule
    }

    #[test]
    fn remind_me_at_seven_pm_is_tonight_and_keeps_the_words() {
        let reminder = scheduled("Remind me at 7 pm to call Grandma about Sunday.");
        assert_eq!(reminder.schedule, at("2026-11-24T19:00:00Z"));
        assert_eq!(
            reminder.action,
            Action::Remind("call Grandma about Sunday".into())
        );
        assert_eq!(reminder.audience, Audience::Me);
        // The time may come last, and the wording varies.
        assert_eq!(
            scheduled("remind me to take the bins out at 7pm").action,
            Action::Remind("take the bins out".into())
        );
        assert_eq!(
            when("@assistant please remind me at 19:00 to x"),
            at("2026-11-24T19:00:00Z")
        );
    }

    #[test]
    fn a_bare_hour_is_the_next_time_it_comes_round() {
        // 15:00 now: 7 is this evening's, 4 this afternoon's, 2 tomorrow's.
        assert_eq!(when("remind me at 7 to x"), at("2026-11-24T19:00:00Z"));
        assert_eq!(when("remind me at 4 to x"), at("2026-11-24T16:00:00Z"));
        assert_eq!(when("remind me at 2 to x"), at("2026-11-25T02:00:00Z"));
        assert_eq!(
            when("remind me at 8:30 am to x"),
            at("2026-11-25T08:30:00Z")
        );
        assert_eq!(when("remind me at noon to x"), at("2026-11-25T12:00:00Z"));
    }

    #[test]
    fn days_dates_and_parts_of_the_day() {
        assert_eq!(
            when("remind me tomorrow at 8 to x"),
            at("2026-11-25T08:00:00Z")
        );
        assert_eq!(
            when("remind me tomorrow at 5 to x"),
            at("2026-11-25T17:00:00Z")
        );
        assert_eq!(
            when("remind me tomorrow morning to x"),
            at("2026-11-25T09:00:00Z")
        );
        assert_eq!(when("remind me tonight to x"), at("2026-11-24T20:00:00Z"));
        assert_eq!(
            when("remind me this evening at 7 to x"),
            at("2026-11-24T19:00:00Z")
        );
        // Tuesday today: "on Tuesday" at 9 has passed, so next week's.
        assert_eq!(
            when("remind me on Tuesday to x"),
            at("2026-12-01T09:00:00Z")
        );
        assert_eq!(
            when("remind me on Friday at 6 pm to x"),
            at("2026-11-27T18:00:00Z")
        );
        assert_eq!(
            when("remind me Friday at 6 pm to x"),
            at("2026-11-27T18:00:00Z")
        );
        assert_eq!(
            scheduled("remind me to buy the Sunday roast at 7").action,
            Action::Remind("buy the Sunday roast".into())
        );
        assert_eq!(
            when("remind me next friday to x"),
            at("2026-11-27T09:00:00Z")
        );
        assert_eq!(
            when("remind me on 3 December at 10 to x"),
            at("2026-12-03T10:00:00Z")
        );
        assert_eq!(
            when("remind me on December 3rd to x"),
            at("2026-12-03T09:00:00Z")
        );
        assert_eq!(
            when("remind me on the 3rd of January to x"),
            at("2027-01-03T09:00:00Z")
        );
        assert_eq!(
            when("remind me on 2027-06-01 at 12:30 to x"),
            at("2027-06-01T11:30:00Z")
        );
    }

    #[test]
    fn relative_times_count_from_now() {
        assert_eq!(
            when("remind me in 20 minutes to x"),
            at("2026-11-24T15:20:00Z")
        );
        assert_eq!(
            when("remind me in an hour to x"),
            at("2026-11-24T16:00:00Z")
        );
        assert_eq!(
            when("remind me in half an hour to x"),
            at("2026-11-24T15:30:00Z")
        );
        assert_eq!(when("remind me to x in 3 days"), at("2026-11-27T15:00:00Z"));
    }

    #[test]
    fn recurring_requests_become_cron_in_the_household_s_zone() {
        let weekly = scheduled("every Monday at 8 tell the household the week's plan");
        assert_eq!(
            weekly.schedule,
            Schedule::Cron {
                expr: "0 8 * * 1".into(),
                tz: LONDON.into()
            }
        );
        assert_eq!(
            weekly.action,
            Action::Ask("Tell the household the week's plan.".into())
        );
        assert_eq!(weekly.audience, Audience::Room);
        let cron = |message: &str| match when(message) {
            Schedule::Cron { expr, .. } => expr,
            other => panic!("{other:?}"),
        };
        assert_eq!(cron("remind me every day at 7:30 to stretch"), "30 7 * * *");
        assert_eq!(
            cron("remind us every weekday at 7 to pack lunches"),
            "0 7 * * 1,2,3,4,5"
        );
        assert_eq!(
            cron("remind me every Monday and Thursday at 6 pm to x"),
            "0 18 * * 1,4"
        );
        assert_eq!(cron("remind me every morning to x"), "0 9 * * *");
        assert_eq!(
            when("remind me every 30 minutes to drink water"),
            Schedule::Every {
                every_ms: 30 * 60_000,
                anchor: "2026-11-24T15:30:00Z".parse().unwrap()
            }
        );
        assert_eq!(
            scheduled("every weekday at 7 remind us to pack lunches").action,
            Action::Remind("pack lunches".into())
        );
    }

    #[test]
    fn remember_takes_the_rest_of_the_sentence() {
        assert_eq!(
            recognize("Remember that the bike lock code is 4711.", now(), LONDON),
            Some(Ok(Intent::Remember {
                text: "the bike lock code is 4711".into()
            }))
        );
        assert_eq!(
            recognize(
                "@assistant remember: Ben is allergic to peanuts",
                now(),
                LONDON
            ),
            Some(Ok(Intent::Remember {
                text: "Ben is allergic to peanuts".into()
            }))
        );
        assert_eq!(
            recognize("remember", now(), LONDON),
            Some(Err(PhraseError::Empty("remember")))
        );
    }

    #[test]
    fn other_messages_are_for_the_model() {
        for message in [
            "What is a hearth?",
            "do you remember what Ben likes?",
            "remind Ben to call me",
            "every so often I wonder",
            "",
        ] {
            assert_eq!(recognize(message, now(), LONDON), None, "{message:?}");
        }
        assert_eq!(recognize(&"remind me ".repeat(300), now(), LONDON), None);
    }

    #[test]
    fn unclear_requests_say_what_is_missing() {
        let error = |message: &str| match recognize(message, now(), LONDON) {
            Some(Err(error)) => error,
            other => panic!("{message:?}: {other:?}"),
        };
        assert_eq!(error("remind me to call Dan"), PhraseError::NoTime);
        assert_eq!(error("remind me today at 9 am to x"), PhraseError::Past);
        assert_eq!(
            error("remind me at 7 pm tomorrow at 8 to x"),
            PhraseError::TwoTimes
        );
        assert_eq!(
            error("remind me in 5 minutes at 7 to x"),
            PhraseError::TwoTimes
        );
        assert_eq!(
            error("remind me at 7 pm"),
            PhraseError::Empty("remind you of")
        );
        assert!(matches!(
            error("remind me on 2027-02-30 to x"),
            PhraseError::BadTime(_)
        ));
        assert!(matches!(
            recognize("remind me at 7 to x", now(), "Nowhere/Else"),
            Some(Err(PhraseError::Schedule(ScheduleError::TimeZone(_))))
        ));
    }

    #[test]
    fn a_time_on_its_own_is_read_as_a_phrase_or_iso_8601() {
        assert_eq!(
            time("tomorrow at 8:30", now(), LONDON),
            Ok(at("2026-11-25T08:30:00Z"))
        );
        assert_eq!(
            time("2026-11-24T19:00", now(), LONDON),
            Ok(at("2026-11-24T19:00:00Z"))
        );
        assert_eq!(
            time("2026-11-24 19:00", now(), LONDON),
            Ok(at("2026-11-24T19:00:00Z"))
        );
        assert_eq!(
            time("2026-11-24T19:00:00+01:00", now(), LONDON),
            Ok(at("2026-11-24T18:00:00Z"))
        );
        assert_eq!(
            time("2020-01-01T00:00:00Z", now(), LONDON),
            Err(PhraseError::Past)
        );
        assert!(matches!(
            time("every Monday at 8", now(), LONDON),
            Ok(Schedule::Cron { .. })
        ));
        assert!(matches!(
            time("whenever you like", now(), LONDON),
            Err(PhraseError::BadTime(_))
        ));
    }

    #[test]
    fn schedules_read_as_sentences() {
        assert_eq!(
            describe(&at("2026-11-24T19:00:00Z"), LONDON),
            "Tuesday 24 November 2026 at 19:00"
        );
        assert_eq!(
            describe(
                &Schedule::Cron {
                    expr: "0 8 * * 1".into(),
                    tz: LONDON.into()
                },
                LONDON
            ),
            "every Monday at 08:00"
        );
        assert_eq!(
            describe(
                &Schedule::Cron {
                    expr: "30 7 * * 1,2,3,4,5".into(),
                    tz: LONDON.into()
                },
                LONDON
            ),
            "every weekday at 07:30"
        );
        assert_eq!(
            describe(
                &Schedule::Cron {
                    expr: "0 18 * * 1,4".into(),
                    tz: LONDON.into()
                },
                LONDON
            ),
            "every Monday and Thursday at 18:00"
        );
        assert_eq!(
            describe(
                &Schedule::Every {
                    every_ms: 7_200_000,
                    anchor: Timestamp::UNIX_EPOCH
                },
                LONDON
            ),
            "every 2 hours"
        );
    }
}
