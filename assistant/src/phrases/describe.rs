//! How a schedule reads to people, in English or Korean.

use crate::language::Language;
use crate::schedule::{Schedule, zone};

const ENGLISH_DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

const KOREAN_DAYS: [&str; 7] = [
    "일요일",
    "월요일",
    "화요일",
    "수요일",
    "목요일",
    "금요일",
    "토요일",
];

/// How `schedule` reads to people in time zone `tz`, in `language`:
/// "Tuesday 24 November 2026 at 19:00", "every Monday at 08:00", "every 30
/// minutes"; "2026년 11월 24일 화요일 오후 7시", "매주 월요일 오전 8시", "30분마다".
pub fn describe(schedule: &Schedule, tz: &str, language: Language) -> String {
    match schedule {
        Schedule::At { at } => match zone(tz) {
            Ok(zone) => {
                let local = at.to_zoned_datetime(zone);
                match language {
                    Language::English => local.strftime("%A %-d %B %Y at %H:%M").to_string(),
                    Language::Korean => format!(
                        "{}년 {}월 {}일 {} {}",
                        local.year(),
                        local.month(),
                        local.day(),
                        KOREAN_DAYS[usize::try_from(local.weekday().to_sunday_zero_offset())
                            .unwrap_or_default()],
                        korean_clock(local.hour(), local.minute())
                    ),
                }
            }
            Err(_) => at.to_string(),
        },
        Schedule::Every { every_ms, .. } => {
            let minutes = every_ms / 60_000;
            match (language, minutes) {
                (Language::English, 60) => "every hour".into(),
                (Language::English, minutes) if minutes % 60 == 0 => {
                    format!("every {} hours", minutes / 60)
                }
                (Language::English, 1) => "every minute".into(),
                (Language::English, minutes) => format!("every {minutes} minutes"),
                (Language::Korean, 60) => "매시간".into(),
                (Language::Korean, minutes) if minutes % 60 == 0 => {
                    format!("{}시간마다", minutes / 60)
                }
                (Language::Korean, 1) => "매분".into(),
                (Language::Korean, minutes) => format!("{minutes}분마다"),
            }
        }
        Schedule::Cron { expr, .. } => describe_cron(expr, language),
    }
}

/// A time of day as Korean says it: 오전 7시, 오후 7시 30분, 정오, 자정.
fn korean_clock(hour: i8, minute: i8) -> String {
    let (half, shown) = match hour {
        0 if minute == 0 => return "자정".into(),
        12 if minute == 0 => return "정오".into(),
        0 => ("오전", 12),
        1..=11 => ("오전", hour),
        12 => ("오후", 12),
        _ => ("오후", hour - 12),
    };
    if minute == 0 {
        format!("{half} {shown}시")
    } else {
        format!("{half} {shown}시 {minute}분")
    }
}

fn describe_cron(expr: &str, language: Language) -> String {
    let unreadable = || match language {
        Language::English => format!("on the cron schedule `{expr}`"),
        Language::Korean => format!("cron 일정 `{expr}`"),
    };
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let [minute, hour, month_day, "*", days] = fields.as_slice() else {
        return unreadable();
    };
    let (Ok(minute), Ok(hour)) = (minute.parse::<i8>(), hour.parse::<i8>()) else {
        return unreadable();
    };
    if !(0..=59).contains(&minute) || !(0..=23).contains(&hour) {
        return unreadable();
    }
    let on = match (*month_day, *days) {
        ("*", "*") => match language {
            Language::English => "every day".to_owned(),
            Language::Korean => "매일".to_owned(),
        },
        ("*", "1,2,3,4,5") => match language {
            Language::English => "every weekday".to_owned(),
            Language::Korean => "평일".to_owned(),
        },
        ("*", "0,6") => match language {
            Language::English => "every weekend day".to_owned(),
            Language::Korean => "주말".to_owned(),
        },
        ("*", list) => {
            let days: Vec<usize> = list
                .split(',')
                .filter_map(|day| day.parse::<usize>().ok())
                .filter(|day| *day < 7)
                .collect();
            if days.is_empty() || days.len() != list.split(',').count() {
                return unreadable();
            }
            match language {
                Language::English => {
                    let names: Vec<&str> = days.iter().map(|day| ENGLISH_DAYS[*day]).collect();
                    match names.as_slice() {
                        [one] => format!("every {one}"),
                        [rest @ .., last] => format!("every {} and {last}", rest.join(", ")),
                        [] => return unreadable(),
                    }
                }
                Language::Korean => {
                    let names: Vec<&str> = days.iter().map(|day| KOREAN_DAYS[*day]).collect();
                    format!("매주 {}", names.join("·"))
                }
            }
        }
        ("L", "*") => match language {
            Language::English => "every month on the last day".to_owned(),
            Language::Korean => "매달 말일".to_owned(),
        },
        (month_day, "*") => {
            let Ok(day) = month_day.parse::<u8>() else {
                return unreadable();
            };
            if !(1..=31).contains(&day) {
                return unreadable();
            }
            let at = match language {
                Language::English => format!(
                    "every month on the {} at {hour:02}:{minute:02}",
                    ordinal(day)
                ),
                Language::Korean => format!("매달 {day}일 {}", korean_clock(hour, minute)),
            };
            return match skipped_months(day, language) {
                Some(skipped) => format!("{at} {skipped}"),
                None => at,
            };
        }
        _ => return unreadable(),
    };
    match language {
        Language::English => format!("{on} at {hour:02}:{minute:02}"),
        Language::Korean => format!("{on} {}", korean_clock(hour, minute)),
    }
}

/// For a monthly day that some months lack (29 to 31): which months it
/// skips, and how to have the month's last day instead.
fn skipped_months(day: u8, language: Language) -> Option<String> {
    const ENGLISH_MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let lengths = [31u8, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let months: Vec<usize> = (0..12).filter(|month| lengths[*month] < day).collect();
    if months.is_empty() {
        return None;
    }
    let leap = day == 29;
    Some(match language {
        Language::English => {
            let names: Vec<&str> = months.iter().map(|month| ENGLISH_MONTHS[*month]).collect();
            let names = match names.as_slice() {
                [one] => (*one).to_owned(),
                [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
                [] => String::new(),
            };
            let except = if leap { " (except in leap years)" } else { "" };
            format!(
                "(skipping {names}{except}, which have no {}; say \"every month on the last day\" to have it on each month's last day)",
                ordinal(day)
            )
        }
        Language::Korean => {
            let names: Vec<String> = months
                .iter()
                .map(|month| format!("{}월", month + 1))
                .collect();
            let except = if leap { "(윤년 제외)" } else { "" };
            format!(
                "({day}일이 없는 {}{except}은 건너뜁니다. 매달 마지막 날에 받으려면 \"매달 말일\"이라고 해 주세요)",
                names.join("·")
            )
        }
    })
}

/// `1st`, `2nd`, `3rd`, `11th`, `21st`.
fn ordinal(day: u8) -> String {
    let suffix = match (day % 10, day % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{day}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phrases::tests::{LONDON, at};
    use jiff::Timestamp;

    fn cron(expr: &str) -> Schedule {
        Schedule::Cron {
            expr: expr.into(),
            tz: LONDON.into(),
        }
    }

    #[test]
    fn schedules_read_as_sentences() {
        let english = |schedule: &Schedule| describe(schedule, LONDON, Language::English);
        assert_eq!(
            english(&at("2026-11-24T19:00:00Z")),
            "Tuesday 24 November 2026 at 19:00"
        );
        assert_eq!(english(&cron("0 8 * * 1")), "every Monday at 08:00");
        assert_eq!(
            english(&cron("30 7 * * 1,2,3,4,5")),
            "every weekday at 07:30"
        );
        assert_eq!(
            english(&cron("0 18 * * 1,4")),
            "every Monday and Thursday at 18:00"
        );
        assert_eq!(
            english(&cron("0 9 1 * *")),
            "every month on the 1st at 09:00"
        );
        assert_eq!(
            english(&Schedule::Every {
                every_ms: 7_200_000,
                anchor: Timestamp::UNIX_EPOCH
            }),
            "every 2 hours"
        );
        assert_eq!(
            english(&cron("30 7 31 * *")),
            "every month on the 31st at 07:30 (skipping February, April, June, September \
             and November, which have no 31st; say \"every month on the last day\" to have \
             it on each month's last day)"
        );
        assert_eq!(
            english(&cron("0 9 L * *")),
            "every month on the last day at 09:00"
        );
        assert_eq!(
            english(&cron("0 8 * 1 1")),
            "on the cron schedule `0 8 * 1 1`"
        );
    }

    #[test]
    fn schedules_read_as_korean_sentences() {
        let korean = |schedule: &Schedule| describe(schedule, LONDON, Language::Korean);
        assert_eq!(
            korean(&at("2026-11-24T19:00:00Z")),
            "2026년 11월 24일 화요일 오후 7시"
        );
        assert_eq!(
            korean(&at("2026-11-25T08:30:00Z")),
            "2026년 11월 25일 수요일 오전 8시 30분"
        );
        assert_eq!(
            korean(&at("2026-11-25T12:00:00Z")),
            "2026년 11월 25일 수요일 정오"
        );
        assert_eq!(korean(&cron("0 8 * * 1")), "매주 월요일 오전 8시");
        assert_eq!(korean(&cron("0 18 * * 1,4")), "매주 월요일·목요일 오후 6시");
        assert_eq!(korean(&cron("30 7 * * 1,2,3,4,5")), "평일 오전 7시 30분");
        assert_eq!(korean(&cron("0 0 * * *")), "매일 자정");
        assert_eq!(korean(&cron("0 9 15 * *")), "매달 15일 오전 9시");
        assert_eq!(korean(&cron("0 9 L * *")), "매달 말일 오전 9시");
        assert_eq!(
            korean(&cron("0 9 31 * *")),
            "매달 31일 오전 9시 (31일이 없는 2월·4월·6월·9월·11월은 건너뜁니다. \
             매달 마지막 날에 받으려면 \"매달 말일\"이라고 해 주세요)"
        );
        assert_eq!(
            korean(&cron("0 9 29 * *")),
            "매달 29일 오전 9시 (29일이 없는 2월(윤년 제외)은 건너뜁니다. \
             매달 마지막 날에 받으려면 \"매달 말일\"이라고 해 주세요)"
        );
        let every = |minutes: u64| Schedule::Every {
            every_ms: minutes * 60_000,
            anchor: Timestamp::UNIX_EPOCH,
        };
        assert_eq!(korean(&every(30)), "30분마다");
        assert_eq!(korean(&every(60)), "매시간");
        assert_eq!(korean(&every(120)), "2시간마다");
    }
}
