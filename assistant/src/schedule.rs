//! When a reminder or a scheduled job fires: once at an instant, every fixed
//! interval, or on a cron expression read in the household's time zone, as
//! OpenClaw's scheduler does (`at`, `every`, `cron` with `tz`). Pure: every
//! answer takes the time it is asked at.
//!
//! Cron expressions have five fields (minute, hour, day of month, month, day
//! of week) or six (seconds first); each field takes `*`, numbers, ranges
//! `a-b`, lists `a,b`, steps `*/n` and `a-b/n`, and months and weekdays by
//! name (`JAN`, `MON`); the day of month also takes `L`, the month's last
//! day (as OpenClaw's croner reads it). Day of month and day of week combine with OR when
//! both are restricted, as in Vixie cron and OpenClaw. A wall-clock time that
//! a daylight-saving change skips fires at the first instant after the gap;
//! one that happens twice fires once, the first time.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// Why a schedule was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The cron expression cannot be read.
    #[error("cron expression `{expression}`: {why}")]
    Cron {
        /// The expression as given.
        expression: String,
        /// What is wrong with it.
        why: String,
    },
    /// The time zone is not in the database.
    #[error("`{0}` is not a time zone (use an IANA name such as Europe/London)")]
    TimeZone(String),
    /// An interval of zero or under a minute.
    #[error("an interval must be at least one minute")]
    Interval,
}

/// When something fires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Schedule {
    /// Once, at this instant.
    At {
        /// The instant (RFC 3339).
        at: Timestamp,
    },
    /// Every `every_ms` milliseconds from `anchor`.
    Every {
        /// The interval.
        #[serde(rename = "everyMs")]
        every_ms: u64,
        /// The first firing.
        anchor: Timestamp,
    },
    /// On a cron expression in a time zone.
    Cron {
        /// The expression.
        expr: String,
        /// The IANA time zone it is read in.
        tz: String,
    },
}

/// The shortest interval an `every` schedule may have.
pub const MIN_INTERVAL_MS: u64 = 60_000;

impl Schedule {
    /// Checks that the schedule can be used: the expression parses, the
    /// time zone exists, the interval is at least a minute.
    pub fn check(&self) -> Result<(), ScheduleError> {
        match self {
            Schedule::At { .. } => Ok(()),
            Schedule::Every { every_ms, .. } => {
                if *every_ms < MIN_INTERVAL_MS {
                    return Err(ScheduleError::Interval);
                }
                Ok(())
            }
            Schedule::Cron { expr, tz } => {
                Cron::parse(expr)?;
                zone(tz)?;
                Ok(())
            }
        }
    }

    /// Whether it fires more than once.
    pub fn recurs(&self) -> bool {
        !matches!(self, Schedule::At { .. })
    }

    /// The first firing strictly after `after`; `None` when there is none
    /// (a one-off in the past, or a schedule that cannot be read).
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        match self {
            Schedule::At { at } => (*at > after).then_some(*at),
            Schedule::Every { every_ms, anchor } => {
                let every = i64::try_from(*every_ms).ok().filter(|every| *every > 0)?;
                let anchor_ms = anchor.as_millisecond();
                let after_ms = after.as_millisecond();
                if anchor_ms > after_ms {
                    return Some(*anchor);
                }
                let steps = (after_ms - anchor_ms) / every + 1;
                Timestamp::from_millisecond(anchor_ms.checked_add(steps.checked_mul(every)?)?).ok()
            }
            Schedule::Cron { expr, tz } => {
                let cron = Cron::parse(expr).ok()?;
                cron.next_after(after, &zone(tz).ok()?)
            }
        }
    }
}

/// The time zone named `name`.
pub fn zone(name: &str) -> Result<TimeZone, ScheduleError> {
    TimeZone::get(name).map_err(|_| ScheduleError::TimeZone(name.to_owned()))
}

/// What to do with a job whose next firing was stored as `next`, at `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Due {
    /// Whether it fires now.
    pub fire: bool,
    /// When it fires next after this (`None`: never again).
    pub next: Option<Timestamp>,
}

/// The decision for a job stored to fire at `next` when the clock reads
/// `now`. A one-off that came due while the gateway was down fires late
/// (OpenClaw catches up one-shot jobs too). A recurring job that missed
/// slots fires once for all of them, or not at all when `skip_missed`
/// (OpenClaw's `cron.skipMissedJobs`) and the slot is not the current one;
/// either way its next firing is the first one after `now`.
pub fn due(schedule: &Schedule, next: Timestamp, now: Timestamp, skip_missed: bool) -> Due {
    if next > now {
        return Due {
            fire: false,
            next: Some(next),
        };
    }
    let following = schedule.next_after(now);
    if !schedule.recurs() {
        return Due {
            fire: true,
            next: None,
        };
    }
    // Late by more than a minute means the slot was missed, not merely
    // reached between two checks.
    let missed = now.duration_since(next) > SignedDuration::from_secs(60);
    Due {
        fire: !(skip_missed && missed),
        next: following,
    }
}

/// A parsed cron expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cron {
    seconds: u64,
    minutes: u64,
    hours: u32,
    days: u32,
    /// The month's last day (`L` in the day of month).
    last_day: bool,
    months: u16,
    weekdays: u8,
    days_restricted: bool,
    weekdays_restricted: bool,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Longest expression read (a bound for untrusted input).
const MAX_EXPRESSION: usize = 256;

impl Cron {
    /// Parses a five- or six-field expression.
    pub fn parse(expression: &str) -> Result<Cron, ScheduleError> {
        let fail = |why: String| ScheduleError::Cron {
            expression: expression.chars().take(MAX_EXPRESSION).collect(),
            why,
        };
        if expression.len() > MAX_EXPRESSION {
            return Err(fail(format!("longer than {MAX_EXPRESSION} characters")));
        }
        let fields: Vec<&str> = expression.split_whitespace().collect();
        let (seconds, rest) = match fields.len() {
            5 => ("0", &fields[..]),
            6 => (fields[0], &fields[1..]),
            count => {
                return Err(fail(format!(
                    "{count} fields; a cron expression has 5 (minute hour day month weekday) or 6 (seconds first)"
                )));
            }
        };
        let field = |text: &str, name: &str, low: u32, high: u32, names: &[&str]| {
            bits(text, low, high, names).map_err(|why| fail(format!("{name} `{text}`: {why}")))
        };
        let seconds_bits = field(seconds, "seconds", 0, 59, &[])?;
        let minutes = field(rest[0], "minute", 0, 59, &[])?;
        let hours = field(rest[1], "hour", 0, 23, &[])?;
        // `L` (the month's last day) among the days of the month.
        let last_day = rest[2]
            .split(',')
            .any(|part| part.eq_ignore_ascii_case("L"));
        let other_days: Vec<&str> = rest[2]
            .split(',')
            .filter(|part| !part.eq_ignore_ascii_case("L"))
            .collect();
        let days = if other_days.is_empty() {
            0
        } else {
            field(&other_days.join(","), "day of month", 1, 31, &[])?
        };
        let months = field(rest[3], "month", 1, 12, &MONTHS)?;
        // 7 is Sunday too.
        let mut weekdays = field(rest[4], "day of week", 0, 7, &WEEKDAYS)?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays & !(1 << 7)) | 1;
        }
        Ok(Cron {
            seconds: seconds_bits,
            minutes,
            hours: u32::try_from(hours).expect("hours are 0-23"),
            days: u32::try_from(days).expect("days are 1-31"),
            last_day,
            months: u16::try_from(months).expect("months are 1-12"),
            weekdays: u8::try_from(weekdays).expect("weekdays are 0-6 here"),
            days_restricted: !is_star(rest[2]),
            weekdays_restricted: !is_star(rest[4]),
        })
    }

    fn day_matches(&self, date: Date) -> bool {
        let day = self.days & (1 << date.day()) != 0
            || (self.last_day && date.day() == date.days_in_month());
        let weekday = self.weekdays & (1 << date.weekday().to_sunday_zero_offset()) != 0;
        match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => day || weekday,
            (true, false) => day,
            (false, true) => weekday,
            (false, false) => true,
        }
    }

    /// The first matching instant strictly after `after`, read in `tz`;
    /// searched up to eight years ahead (enough for `0 0 29 2 MON`).
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let start = after.to_zoned_datetime(tz.clone()).date();
        let mut date = start;
        for _ in 0..366 * 8 {
            if self.months & (1 << date.month()) != 0
                && self.day_matches(date)
                && let Some(found) = self.first_in_day(date, after, tz)
            {
                return Some(found);
            }
            date = date.tomorrow().ok()?;
        }
        None
    }

    fn first_in_day(&self, date: Date, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        for hour in ones(u64::from(self.hours)) {
            for minute in ones(self.minutes) {
                for second in ones(self.seconds) {
                    let time = Time::new(
                        i8::try_from(hour).ok()?,
                        i8::try_from(minute).ok()?,
                        i8::try_from(second).ok()?,
                        0,
                    )
                    .ok()?;
                    let civil = DateTime::from_parts(date, time);
                    let Ok(instant) = tz.to_ambiguous_zoned_datetime(civil).compatible() else {
                        continue;
                    };
                    let instant = instant.timestamp();
                    // A wall-clock time skipped by a daylight-saving change
                    // lands after the gap, possibly on the next hour's slot:
                    // still the first instant after `after` for this time.
                    if instant > after {
                        return Some(instant);
                    }
                }
            }
        }
        None
    }
}

fn is_star(field: &str) -> bool {
    field == "*" || field == "?"
}

/// The set bits of `mask`, lowest first.
fn ones(mask: u64) -> impl Iterator<Item = u32> {
    (0..64).filter(move |bit| mask & (1u64 << bit) != 0)
}

/// What is wrong with one field of a cron expression.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// Neither a number nor a name the field takes.
    #[error("`{0}` is not a number")]
    NotANumber(String),
    /// A number outside the field's range.
    #[error("{number} is outside {low}-{high}")]
    Outside {
        /// The number.
        number: u32,
        /// The field's least.
        low: u32,
        /// The field's greatest.
        high: u32,
    },
    /// A step of zero or not a number.
    #[error("step `{0}` is not a positive number")]
    Step(String),
    /// A range whose end is before its start.
    #[error("range {0}-{1} runs backwards")]
    Backwards(u32, u32),
    /// Nothing at all.
    #[error("names no value")]
    Empty,
}

/// The values one cron field names, as bits.
fn bits(field: &str, low: u32, high: u32, names: &[&str]) -> Result<u64, FieldError> {
    let value = |text: &str| -> Result<u32, FieldError> {
        if let Some(index) = names
            .iter()
            .position(|name| name.eq_ignore_ascii_case(text))
        {
            // Months are named from 1, weekdays from 0.
            return Ok(u32::try_from(index).expect("a short table") + low);
        }
        let number: u32 = text
            .parse()
            .map_err(|_| FieldError::NotANumber(text.to_owned()))?;
        if number < low || number > high {
            return Err(FieldError::Outside { number, low, high });
        }
        Ok(number)
    };
    let mut mask = 0u64;
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step
                    .parse()
                    .ok()
                    .filter(|step| *step > 0)
                    .ok_or_else(|| FieldError::Step(step.to_owned()))?;
                (range, step)
            }
            None => (part, 1),
        };
        let (first, last) = if is_star(range) {
            (low, high)
        } else if let Some((first, last)) = range.split_once('-') {
            let (first, last) = (value(first)?, value(last)?);
            if first > last {
                return Err(FieldError::Backwards(first, last));
            }
            (first, last)
        } else {
            let first = value(range)?;
            // `5/15` means from 5 to the end by 15.
            (first, if step > 1 { high } else { first })
        };
        let mut at = first;
        while at <= last {
            mask |= 1u64 << at;
            at += step;
        }
    }
    if mask == 0 {
        return Err(FieldError::Empty);
    }
    Ok(mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn cron(expr: &str, tz: &str) -> Schedule {
        Schedule::Cron {
            expr: expr.into(),
            tz: tz.into(),
        }
    }

    #[test]
    fn the_last_day_of_the_month_is_l() {
        let last = cron("0 9 L * *", "Asia/Seoul");
        // 2026-11-28 in Seoul: the 30th of November, then the 31st of
        // December, the 31st of January, the 28th of February.
        let mut fired = Vec::new();
        let mut after = at("2026-11-28T00:00:00Z");
        for _ in 0..4 {
            after = last.next_after(after).unwrap();
            fired.push(
                after
                    .to_zoned_datetime(zone("Asia/Seoul").unwrap())
                    .date()
                    .to_string(),
            );
        }
        assert_eq!(
            fired,
            ["2026-11-30", "2026-12-31", "2027-01-31", "2027-02-28"]
        );
        assert!(Cron::parse("0 9 15,L * *").is_ok());
        assert!(Cron::parse("0 9 LL * *").is_err());
        assert!(Cron::parse("0 L * * *").is_err(), "only the day of month");
    }

    #[test]
    fn monday_at_eight_in_london_is_found_across_the_clock_change() {
        let weekly = cron("0 8 * * MON", "Europe/London");
        // Friday 24 October 2025; the clocks go back on Sunday 26 October.
        let first = weekly.next_after(at("2025-10-24T12:00:00Z")).unwrap();
        assert_eq!(first, at("2025-10-27T08:00:00Z"), "GMT: 08:00 is 08:00 UTC");
        let summer = weekly.next_after(at("2025-10-17T12:00:00Z")).unwrap();
        assert_eq!(
            summer,
            at("2025-10-20T07:00:00Z"),
            "BST: 08:00 is 07:00 UTC"
        );
        assert_eq!(
            weekly.next_after(first).unwrap(),
            at("2025-11-03T08:00:00Z")
        );
    }

    #[test]
    fn a_time_the_clocks_skip_fires_after_the_gap_and_a_repeated_one_once() {
        // 30 March 2025: London goes from 01:00 to 02:00.
        let skipped = cron("30 1 * * *", "Europe/London");
        assert_eq!(
            skipped.next_after(at("2025-03-29T12:00:00Z")).unwrap(),
            at("2025-03-30T01:30:00Z"),
            "01:30 does not exist; it fires at 02:30 BST"
        );
        // 26 October 2025: 01:30 happens twice.
        let twice = cron("30 1 * * *", "Europe/London");
        let first = twice.next_after(at("2025-10-25T12:00:00Z")).unwrap();
        assert_eq!(first, at("2025-10-26T00:30:00Z"), "the first 01:30 (BST)");
        assert_eq!(
            twice.next_after(first).unwrap(),
            at("2025-10-27T01:30:00Z"),
            "not again an hour later"
        );
    }

    #[test]
    fn fields_take_lists_ranges_steps_and_names() {
        let parsed = Cron::parse("*/15 9-17 * JAN,jul mon-fri").unwrap();
        assert_eq!(parsed.minutes, 1 | 1 << 15 | 1 << 30 | 1 << 45);
        assert_eq!(parsed.hours, (9..=17).map(|hour| 1u32 << hour).sum::<u32>());
        assert_eq!(parsed.months, 1 << 1 | 1 << 7);
        assert_eq!(parsed.weekdays, 0b0111110);
        assert_eq!(Cron::parse("0 0 * * 7").unwrap().weekdays, 1, "7 is Sunday");
        assert_eq!(
            Cron::parse("5/20 * * * *").unwrap().minutes,
            1 << 5 | 1 << 25 | 1 << 45
        );
        let seconds = Cron::parse("30 0 12 * * *").unwrap();
        assert_eq!(seconds.seconds, 1 << 30);
    }

    #[test]
    fn day_of_month_and_weekday_combine_with_or() {
        // The 13th, and every Friday.
        let either = cron("0 9 13 * FRI", "UTC");
        // Wednesday 1 January 2025: Friday the 3rd comes first, then the 10th, then Monday the 13th.
        let mut now = at("2025-01-01T00:00:00Z");
        let mut seen = Vec::new();
        for _ in 0..4 {
            now = either.next_after(now).unwrap();
            seen.push(now.to_zoned_datetime(TimeZone::UTC).day());
        }
        assert_eq!(seen, [3, 10, 13, 17]);
    }

    #[test]
    fn bad_expressions_say_which_field_is_wrong() {
        let why = |expr: &str| Cron::parse(expr).unwrap_err().to_string();
        assert!(why("0 8 * *").contains("4 fields"));
        assert!(why("61 * * * *").contains("minute `61`: 61 is outside 0-59"));
        assert!(why("0 8 * * FUNDAY").contains("day of week `FUNDAY`"));
        assert!(why("0 10-2 * * *").contains("runs backwards"));
        assert!(why("*/0 * * * *").contains("step"));
        assert!(why(&"1,".repeat(200)).contains("longer than"));
        assert_eq!(
            cron("0 8 * * *", "Mars/Olympus").check(),
            Err(ScheduleError::TimeZone("Mars/Olympus".into()))
        );
    }

    #[test]
    fn a_leap_day_is_years_away_and_still_found() {
        let rare = Cron::parse("0 0 29 2 MON").unwrap();
        // With OR logic this is 29 February and every Monday of February.
        let next = rare
            .next_after(at("2025-03-01T00:00:00Z"), &TimeZone::UTC)
            .unwrap();
        assert_eq!(next, at("2026-02-02T00:00:00Z"));
        let only_leap = Cron::parse("0 0 29 2 *").unwrap();
        assert_eq!(
            only_leap
                .next_after(at("2025-03-01T00:00:00Z"), &TimeZone::UTC)
                .unwrap(),
            at("2028-02-29T00:00:00Z")
        );
    }

    #[test]
    fn intervals_count_from_their_anchor() {
        let hourly = Schedule::Every {
            every_ms: 3_600_000,
            anchor: at("2025-01-01T00:10:00Z"),
        };
        assert_eq!(
            hourly.next_after(at("2025-01-01T05:00:00Z")),
            Some(at("2025-01-01T05:10:00Z"))
        );
        assert_eq!(
            hourly.next_after(at("2025-01-01T05:10:00Z")),
            Some(at("2025-01-01T06:10:00Z")),
            "strictly after"
        );
        assert_eq!(
            hourly.next_after(at("2024-12-31T00:00:00Z")),
            Some(at("2025-01-01T00:10:00Z"))
        );
        let fast = Schedule::Every {
            every_ms: 1_000,
            anchor: at("2025-01-01T00:00:00Z"),
        };
        assert_eq!(fast.check(), Err(ScheduleError::Interval));
    }

    #[test]
    fn missed_firings_catch_up_once_or_are_skipped_when_asked() {
        let daily = cron("0 7 * * *", "UTC");
        let slot = at("2025-06-01T07:00:00Z");
        let now = at("2025-06-03T12:00:00Z");
        assert_eq!(
            due(&daily, slot, now, false),
            Due {
                fire: true,
                next: Some(at("2025-06-04T07:00:00Z"))
            },
            "three missed days fire once"
        );
        assert_eq!(
            due(&daily, slot, now, true),
            Due {
                fire: false,
                next: Some(at("2025-06-04T07:00:00Z"))
            }
        );
        // Reached a moment late between two checks: not a missed slot.
        assert!(due(&daily, slot, at("2025-06-01T07:00:00.300Z"), true).fire);
        // One-offs always catch up, then are done.
        let once = Schedule::At {
            at: at("2025-06-01T19:00:00Z"),
        };
        assert_eq!(
            due(&once, at("2025-06-01T19:00:00Z"), now, true),
            Due {
                fire: true,
                next: None
            }
        );
        assert!(
            !due(
                &once,
                at("2025-06-01T19:00:00Z"),
                at("2025-06-01T18:00:00Z"),
                true
            )
            .fire
        );
    }

    #[test]
    fn schedules_travel_as_openclaw_writes_them() {
        let json = serde_json::to_value(cron("0 8 * * 1", "Europe/London")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "cron", "expr": "0 8 * * 1", "tz": "Europe/London"})
        );
        let back: Schedule =
            serde_json::from_str(r#"{"kind":"at","at":"2026-11-24T19:00:00Z"}"#).unwrap();
        assert_eq!(
            back,
            Schedule::At {
                at: at("2026-11-24T19:00:00Z")
            }
        );
        let every: Schedule = serde_json::from_str(
            r#"{"kind":"every","everyMs":600000,"anchor":"2026-11-24T19:00:00Z"}"#,
        )
        .unwrap();
        assert!(every.recurs());
        assert!(serde_json::from_str::<Schedule>(r#"{"kind":"at","at":"x","extra":1}"#).is_err());
    }
}
