//! What a member's message asks of the assistant when it is one of the
//! household's everyday requests, in English or Korean: "remember that …",
//! "remind me at 7 pm to …", "every Monday at 8 tell the household …",
//! "add milk to the shopping list", "cancel reminder 3", "forget #2";
//! "기억해 줘: …", "내일 오전 9시에 할머니께 전화하라고 알려줘", "매주 월요일
//! 아침 8시에 …", "장보기 목록에 우유 추가해 줘", "3번 알림 취소해 줘".
//! Recognised without the model, so they work the same with any model
//! (and with none); anything else goes to the model, which can still call
//! the same tools. Pure: the time and the household's time zone are inputs.
//!
//! The English reading is [`english`], the Korean one [`korean`]; both fill
//! the same [`When`], resolved here by the same rules, so an ambiguous hour
//! means the same in either language: a clock hour without am/pm (오전/오후)
//! and without a day is the next time it comes round (`at 7`, `7시` at 3 pm
//! is 7 pm); with a day, 1 to 6 are afternoon hours and 7 to 11 morning
//! ones; a day without a time is at 9. docs/assistant.md has both tables.

mod describe;
mod english;
mod korean;

use jiff::civil::{Date, Time, Weekday};
use jiff::{SignedDuration, Timestamp};

use crate::language::Language;
use crate::schedule::{Schedule, ScheduleError, zone};

pub use describe::describe;

/// A request the assistant carries out without the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Intent {
    /// Write this into the member's memory.
    Remember {
        /// What to remember, as they said it.
        text: String,
    },
    /// Take this out of the member's memory.
    Forget(Which),
    /// Schedule something.
    Schedule(Scheduled),
    /// List the member's reminders and scheduled questions.
    Reminders,
    /// Cancel one of them.
    Cancel(Which),
    /// Do this to one of the conversation's lists.
    List(ListRequest),
}

/// Which memory entry or reminder a request means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Which {
    /// By the number the assistant shows beside it.
    Number(i64),
    /// By what it says.
    Text(String),
}

/// A request about a shared list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListRequest {
    /// Add these items.
    Add {
        /// The list, as named.
        list: String,
        /// The items.
        items: Vec<String>,
    },
    /// Show the list.
    Show {
        /// The list, as named.
        list: String,
    },
    /// Take these items off.
    Remove {
        /// The list, as named.
        list: String,
        /// The items.
        items: Vec<String>,
    },
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

/// What a request left out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missing {
    /// What to remember.
    Remember,
    /// What to remind of.
    Remind,
    /// What to do (a scheduled question without its question).
    Do,
    /// Which items.
    Items,
    /// Which entry or reminder.
    Which,
}

/// Why a request that looked like one could not be carried out. Its
/// `Display` is English; [`crate::say::phrase_error`] says it in Korean.
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
    /// Something the request needs was not said.
    #[error("I could not tell {}.", missing_english(*.0))]
    Empty(Missing),
    /// A time that does not exist (31 February, 25:00).
    #[error("{0} is not a time or date I know.")]
    BadTime(String),
    /// The household's time zone is wrong.
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
}

fn missing_english(missing: Missing) -> &'static str {
    match missing {
        Missing::Remember => "what to remember",
        Missing::Remind => "what to remind you of",
        Missing::Do => "what to do then",
        Missing::Items => "which items",
        Missing::Which => "which one; say its number",
    }
}

/// Longest message looked at (longer ones go to the model as they are).
const MAX_MESSAGE: usize = 2_000;

/// The request in `message`, if it is one of the everyday ones (in English
/// or Korean), read at `now` in the household's time zone `tz`. `None`:
/// not one of them.
pub fn recognize(message: &str, now: Timestamp, tz: &str) -> Option<Result<Intent, PhraseError>> {
    if message.len() > MAX_MESSAGE {
        return None;
    }
    if let Some(found) = english::recognize(message, now, tz) {
        return Some(found);
    }
    if Language::of_text(message) == Language::Korean {
        return korean::recognize(message, now, tz);
    }
    None
}

/// The schedule a time given on its own describes (the `when` of the
/// `reminder_create` tool): a phrase such as "tomorrow at 8:30", "every
/// Monday at 8" or "내일 오전 8시 반", or an ISO 8601 time (with an offset,
/// or read in `tz`).
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
    let when = if Language::of_text(trimmed) == Language::Korean {
        korean::time_only(trimmed)?
    } else {
        english::time_only(trimmed)?
    };
    let Some(when) = when else {
        return Err(PhraseError::BadTime(text.chars().take(80).collect()));
    };
    resolve(&when, now, &zone, tz)
}

/// A part of the day without a clock time, as an hour.
const MORNING: i8 = 9;
const AFTERNOON: i8 = 15;
const EVENING: i8 = 18;
const NIGHT: i8 = 20;

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

impl Clock {
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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Day {
    Today,
    Tomorrow,
    /// This many days from today (모레: 2).
    InDays(i32),
    /// The next such weekday (today counts if the time is still ahead).
    Weekday(Weekday),
    /// That weekday of this week (0) or a later one, weeks starting on
    /// Monday (이번 주 금요일, 다음 주 월요일).
    InWeek {
        weeks: i8,
        weekday: Weekday,
    },
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
    /// On this day of every month (months without it are skipped).
    MonthDay(i8),
    /// On the last day of every month.
    LastDayOfMonth,
    /// At this interval.
    Interval(SignedDuration),
}

const ALL_DAYS: u8 = 0b111_1111;
const WEEKDAYS: u8 = 0b011_1110;
const WEEKEND: u8 = 0b100_0001;

/// Puts `value` in `slot`, unless the message already gave one.
fn set<T>(slot: &mut Option<T>, value: T) -> Result<(), PhraseError> {
    if slot.is_some() {
        return Err(PhraseError::TwoTimes);
    }
    *slot = Some(value);
    Ok(())
}

/// The bit of `weekday` in an [`Every::Days`] mask.
fn day_bit(weekday: Weekday) -> u8 {
    1 << weekday.to_sunday_zero_offset()
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
        let time_of_day = || match (when.clock, when.part_of_day) {
            (Some(clock), part) => Ok((day_hour(clock, part), clock.minute)),
            (None, Some(hour)) => Ok((hour, 0)),
            (None, None) => Err(PhraseError::NoTime),
        };
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
            Every::MonthDay(day) => {
                let (hour, minute) = time_of_day()?;
                Ok(Schedule::Cron {
                    expr: format!("{minute} {hour} {day} * *"),
                    tz: tz.to_owned(),
                })
            }
            Every::LastDayOfMonth => {
                let (hour, minute) = time_of_day()?;
                Ok(Schedule::Cron {
                    expr: format!("{minute} {hour} L * *"),
                    tz: tz.to_owned(),
                })
            }
            Every::Days(mask) => {
                let (hour, minute) = time_of_day()?;
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
    let days_later = |date: Date, days: i64| {
        date.checked_add(jiff::Span::new().days(days))
            .map_err(|_| PhraseError::Past)
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
        for date in [today, days_later(today, 1)?] {
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
        (None, None) => (MORNING, 0),
    };
    let date = match day {
        Day::Today => today,
        Day::Tomorrow => days_later(today, 1)?,
        Day::InDays(days) => days_later(today, i64::from(days))?,
        Day::Weekday(weekday) => {
            let ahead = (weekday.to_sunday_zero_offset() - today.weekday().to_sunday_zero_offset())
                .rem_euclid(7);
            let date = days_later(today, i64::from(ahead))?;
            if at(date, hour, minute)? <= now {
                days_later(date, 7)?
            } else {
                date
            }
        }
        Day::InWeek { weeks, weekday } => {
            let monday = days_later(today, -i64::from(today.weekday().to_monday_zero_offset()))?;
            days_later(
                monday,
                i64::from(weeks) * 7 + i64::from(weekday.to_monday_zero_offset()),
            )?
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
            Some(part) if part >= AFTERNOON && clock.hour < 12 => clock.hour + 12,
            Some(_) => clock.hour,
            None if (1..=6).contains(&clock.hour) => clock.hour + 12,
            None => clock.hour,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tuesday 24 November 2026, 15:00 in London (GMT).
    pub(super) fn now() -> Timestamp {
        "2026-11-24T15:00:00Z".parse().unwrap()
    }

    pub(super) const LONDON: &str = "Europe/London";

    pub(super) fn at(text: &str) -> Schedule {
        Schedule::At {
            at: text.parse().unwrap(),
        }
    }

    #[test]
    fn a_time_on_its_own_is_read_as_a_phrase_or_iso_8601() {
        assert_eq!(
            time("tomorrow at 8:30", now(), LONDON),
            Ok(at("2026-11-25T08:30:00Z"))
        );
        assert_eq!(
            time("내일 오전 8시 반", now(), LONDON),
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
            time("매주 월요일 8시", now(), LONDON),
            Ok(Schedule::Cron { .. })
        ));
        assert!(matches!(
            time("whenever you like", now(), LONDON),
            Err(PhraseError::BadTime(_))
        ));
        assert!(matches!(
            time("아무 때나", now(), LONDON),
            Err(PhraseError::BadTime(_))
        ));
    }

    #[test]
    fn the_same_hour_means_the_same_in_both_languages() {
        // (English, Korean) pairs read at Tuesday 15:00.
        for (english, korean) in [
            ("remind me at 7 to x", "7시에 x 하라고 알려줘"),
            ("remind me at 4 to x", "4시에 x 하라고 알려줘"),
            ("remind me at 2 to x", "2시에 x 하라고 알려줘"),
            ("remind me tomorrow at 5 to x", "내일 5시에 x 하라고 알려줘"),
            ("remind me tomorrow at 8 to x", "내일 8시에 x 하라고 알려줘"),
            ("remind me on Friday to x", "금요일에 x 하라고 알려줘"),
            ("remind me at noon to x", "정오에 x 하라고 알려줘"),
            ("remind me in 20 minutes to x", "20분 후에 x 하라고 알려줘"),
            (
                "remind me every day at 7:30 to x",
                "매일 7시 30분에 x 하라고 알려줘",
            ),
        ] {
            let schedule = |message: &str| match recognize(message, now(), LONDON) {
                Some(Ok(Intent::Schedule(scheduled))) => scheduled.schedule,
                other => panic!("{message:?}: {other:?}"),
            };
            assert_eq!(schedule(english), schedule(korean), "{korean}");
        }
    }
}
