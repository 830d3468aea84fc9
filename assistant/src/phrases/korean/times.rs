//! Korean time phrases: relative amounts (30분 후), clock times (오후 3시,
//! 9시 반), days (내일, 금요일, 12월 3일), recurrence (매주 월요일, 30분마다),
//! and who a reminder is for (나에게, 가족 모두에게).

use super::*;

/// What a relative amount of time is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Marker {
    /// After it (후, 뒤).
    After,
    /// Every time it passes (마다).
    Every,
}

pub(super) fn marker(word: &str) -> Option<Marker> {
    match word {
        "후" | "후에" | "뒤" | "뒤에" | "후에는" | "뒤에는" | "있다가" | "지나서" | "지나면" => {
            Some(Marker::After)
        }
        "마다" | "에한번" => Some(Marker::Every),
        _ => None,
    }
}

// Time words.

pub(super) const DAY_WORDS: [(&str, Day); 6] = [
    ("내일모레", Day::InDays(2)),
    ("오늘", Day::Today),
    ("내일", Day::Tomorrow),
    ("낼", Day::Tomorrow),
    ("모레", Day::InDays(2)),
    ("글피", Day::InDays(3)),
];

pub(super) const RELATIVE_DAYS: [(&str, i64); 6] = [
    ("하루", 1),
    ("이틀", 2),
    ("사흘", 3),
    ("나흘", 4),
    ("닷새", 5),
    ("일주일", 7),
];

/// Parts of the day: the hour they mean alone, and whether an hour after
/// them is in the afternoon (`Some(true)`), the morning, or depends on it.
pub(super) const PARTS: [(&str, i8, Part); 8] = [
    ("오전", MORNING, Part::Am),
    ("오후", AFTERNOON, Part::Pm),
    ("아침", MORNING, Part::Am),
    ("새벽", 6, Part::Am),
    ("점심", 12, Part::Midday),
    ("낮", 12, Part::Midday),
    ("저녁", EVENING, Part::Pm),
    ("밤", NIGHT, Part::Night),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Part {
    Am,
    Pm,
    /// 12 is noon, 1 to 6 afternoon hours, 7 to 11 morning ones.
    Midday,
    /// 12 is midnight, 1 to 4 small hours, the rest evening ones.
    Night,
}

impl Part {
    /// Whether `hour` said after this part is pm.
    pub(super) fn pm(self, hour: i8) -> Option<bool> {
        if hour == 0 || hour > 12 {
            return None;
        }
        Some(match self {
            Part::Am => false,
            Part::Pm => true,
            Part::Midday => hour == 12 || hour <= 6,
            Part::Night => !(hour == 12 || hour <= 4),
        })
    }
}

pub(super) const WEEKDAY_NAMES: [(&str, Weekday); 7] = [
    ("월", Weekday::Monday),
    ("화", Weekday::Tuesday),
    ("수", Weekday::Wednesday),
    ("목", Weekday::Thursday),
    ("금", Weekday::Friday),
    ("토", Weekday::Saturday),
    ("일", Weekday::Sunday),
];

/// "월요일에" → Monday and "에".
pub(super) fn weekday_word(word: &str) -> Option<(Weekday, &str)> {
    WEEKDAY_NAMES.iter().find_map(|(name, weekday)| {
        word.strip_prefix(name)?
            .strip_prefix("요일")
            .map(|rest| (*weekday, rest))
    })
}

/// Weekdays after 매주: "월요일", "월요일과 목요일", "월·목", "월, 수, 금",
/// "월수금"; their mask and how many lexemes.
pub(super) fn weekday_list(lexemes: &[Lexeme], at: usize) -> (u8, usize) {
    let mut mask = 0u8;
    let mut used = 0;
    for lexeme in &lexemes[at..] {
        match lexeme.kind {
            Kind::Punct if mask != 0 && matches!(lexeme.norm.as_str(), "," | "/" | "、") => {}
            Kind::Punct if mask != 0 && lexeme.norm.chars().all(is_separator) => {}
            Kind::Hangul if mask != 0 && matches!(lexeme.norm.as_str(), "그리고" | "및") => {}
            Kind::Hangul => {
                let Some(found) = weekdays_in(&lexeme.norm) else {
                    break;
                };
                mask |= found;
            }
            _ => break,
        }
        used += 1;
    }
    // A trailing separator is not part of the list.
    while used > 0 && lexemes[at + used - 1].kind != Kind::Hangul {
        used -= 1;
    }
    (mask, used)
}

/// The weekdays one word names: "월요일과", "월", "월수금", "목요일마다".
pub(super) fn weekdays_in(word: &str) -> Option<u8> {
    const AFTER: [&str; 12] = [
        "",
        "과",
        "와",
        "이랑",
        "랑",
        "하고",
        "에",
        "에는",
        "엔",
        "마다",
        "요일",
        "요일마다",
    ];
    let mut mask = 0u8;
    let mut rest = word;
    loop {
        if AFTER.contains(&rest) && mask != 0 {
            return Some(mask);
        }
        if let Some((weekday, after)) = weekday_word(rest) {
            mask |= day_bit(weekday);
            rest = after;
            continue;
        }
        let first = rest.chars().next()?;
        let (_, weekday) = WEEKDAY_NAMES
            .iter()
            .find(|(name, _)| name.starts_with(first))?;
        mask |= day_bit(*weekday);
        rest = &rest[first.len_utf8()..];
    }
}

/// What the time reading keeps between lexemes.
#[derive(Default)]
pub(super) struct Reading {
    pub(super) when: When,
    /// Days of a "3일 후": a day when a clock time is given too.
    pub(super) after_days: Option<i32>,
}

impl Reading {
    /// Reads a time phrase at `at` into the reading; how many lexemes it took.
    pub(super) fn phrase(&mut self, lexemes: &[Lexeme], at: usize) -> Result<usize, PhraseError> {
        if let Some(found) = quantity(lexemes, at) {
            return self.quantity(lexemes, at, found);
        }
        let lexeme = &lexemes[at];
        match lexeme.kind {
            Kind::Number => self.number(lexemes, at),
            Kind::Hangul => self.word(lexemes, at),
            Kind::Latin | Kind::Punct => Ok(0),
        }
    }

    /// Whether a day word is a day here: not once a recurrence is read
    /// ("매일 아침 7시에 오늘 날씨 알려줘": 오늘 is part of the question).
    pub(super) fn takes_days(&self) -> bool {
        self.when.every.is_none()
    }

    pub(super) fn number(&mut self, lexemes: &[Lexeme], at: usize) -> Result<usize, PhraseError> {
        let word = lexemes[at].norm.as_str();
        if let Some(day) = english::iso_date(word) {
            if !self.takes_days() {
                return Ok(0);
            }
            set(&mut self.when.day, day?)?;
            return Ok(1 + particle_after(lexemes, at + 1));
        }
        let next = lexemes
            .get(at + 1)
            .filter(|lexeme| lexeme.kind == Kind::Latin)
            .map(|lexeme| lexeme.norm.as_str());
        let ampm = next.is_some_and(|next| next == "am" || next == "pm");
        if (word.contains(':') || ampm)
            && let Some((clock, used)) = english::clock_word(word, next)
        {
            set(&mut self.when.clock, clock)?;
            return Ok(used + particle_after(lexemes, at + used));
        }
        Ok(0)
    }

    pub(super) fn quantity(
        &mut self,
        lexemes: &[Lexeme],
        at: usize,
        found: Quantity,
    ) -> Result<usize, PhraseError> {
        let Quantity {
            value,
            unit,
            mut rest,
            mut used,
        } = found;
        match unit {
            Unit::Clock => {
                if !(0..=24).contains(&value) {
                    return Ok(0);
                }
                let mut minute = 0;
                if let Some(after) = rest.strip_prefix('반') {
                    minute = 30;
                    rest = after.to_owned();
                } else if rest.is_empty() {
                    if let Some(next) = lexemes.get(at + used)
                        && let Some(after) = next.norm.strip_prefix('반')
                        && TIME_PARTICLES.contains(&after)
                    {
                        minute = 30;
                        used += 1;
                    } else if let Some(minutes) = quantity(lexemes, at + used)
                        && minutes.unit == Unit::Minutes
                        && (0..=59).contains(&minutes.value)
                        && TIME_PARTICLES.contains(&minutes.rest.as_str())
                    {
                        minute = minutes.value;
                        used += minutes.used;
                    }
                }
                if !TIME_PARTICLES.contains(&rest.as_str()) {
                    return Ok(0);
                }
                // 24시 is midnight, 24시 30분 the half hour after it.
                let clock = if value == 24 || value == 0 {
                    Clock {
                        minute: i8::try_from(minute).unwrap_or_default(),
                        ..Clock::midnight()
                    }
                } else {
                    Clock {
                        hour: i8::try_from(value).unwrap_or_default(),
                        minute: i8::try_from(minute).unwrap_or_default(),
                        pm: None,
                    }
                };
                set(&mut self.when.clock, clock)?;
                Ok(used + particle_after(lexemes, at + used))
            }
            Unit::Hours | Unit::Minutes | Unit::Days | Unit::Weeks => {
                if !(1..=10_000).contains(&value) {
                    return Ok(0);
                }
                let count = i32::try_from(value).unwrap_or_default();
                let mut amount = match unit {
                    Unit::Hours => SignedDuration::from_hours(1),
                    Unit::Minutes => SignedDuration::from_mins(1),
                    Unit::Days => SignedDuration::from_hours(24),
                    _ => SignedDuration::from_hours(24 * 7),
                }
                .checked_mul(count)
                .ok_or_else(|| PhraseError::BadTime(format!("{value}")))?;
                if unit == Unit::Hours {
                    // "1시간 반", "1시간 30분"
                    if let Some(after) = rest.strip_prefix('반') {
                        amount += SignedDuration::from_mins(30);
                        rest = after.to_owned();
                    } else if rest.is_empty() {
                        if let Some(next) = lexemes.get(at + used)
                            && let Some(after) = next.norm.strip_prefix('반')
                            && (after.is_empty() || marker(after).is_some())
                        {
                            amount += SignedDuration::from_mins(30);
                            rest = after.to_owned();
                            used += 1;
                        } else if let Some(minutes) = quantity(lexemes, at + used)
                            && minutes.unit == Unit::Minutes
                            && (1..=59).contains(&minutes.value)
                        {
                            amount += SignedDuration::from_mins(minutes.value);
                            rest = minutes.rest;
                            used += minutes.used;
                        }
                    }
                }
                let found = match marker(&rest) {
                    Some(found) => Some(found),
                    None if rest.is_empty() => {
                        let next = lexemes.get(at + used).and_then(|next| marker(&next.norm));
                        if next.is_some() {
                            used += 1;
                        }
                        next
                    }
                    None => None,
                };
                match found {
                    Some(Marker::After) => {
                        set(&mut self.when.after, amount)?;
                        if matches!(unit, Unit::Days | Unit::Weeks) {
                            let days = amount.as_hours() / 24;
                            self.after_days = i32::try_from(days).ok();
                        }
                        Ok(used)
                    }
                    Some(Marker::Every) => {
                        set(&mut self.when.every, Every::Interval(amount))?;
                        Ok(used)
                    }
                    None => Ok(0),
                }
            }
            Unit::Month | Unit::Year => {
                if !self.takes_days() {
                    return Ok(0);
                }
                let (year, month_at) = if unit == Unit::Year {
                    match quantity(lexemes, at + used) {
                        Some(month) if month.unit == Unit::Month && month.rest.is_empty() => {
                            (Some(value), at + used)
                        }
                        _ => return Ok(0),
                    }
                } else {
                    if !rest.is_empty() {
                        return Ok(0);
                    }
                    (None, at)
                };
                let Some(month) = quantity(lexemes, month_at) else {
                    return Ok(0);
                };
                let Some(day) = quantity(lexemes, month_at + month.used) else {
                    return Ok(0);
                };
                if month.unit != Unit::Month
                    || day.unit != Unit::Days
                    || !TIME_PARTICLES.contains(&day.rest.as_str())
                {
                    return Ok(0);
                }
                let bad = || PhraseError::BadTime(format!("{}월 {}일", month.value, day.value));
                let date = Day::Date {
                    month: i8::try_from(month.value)
                        .ok()
                        .filter(|m| (1..=12).contains(m))
                        .ok_or_else(bad)?,
                    day: i8::try_from(day.value)
                        .ok()
                        .filter(|d| (1..=31).contains(d))
                        .ok_or_else(bad)?,
                    year: year.and_then(|year| i16::try_from(year).ok()),
                };
                set(&mut self.when.day, date)?;
                let used = month_at + month.used + day.used - at;
                Ok(used + particle_after(lexemes, at + used))
            }
            Unit::Count => Ok(0),
        }
    }

    pub(super) fn word(&mut self, lexemes: &[Lexeme], at: usize) -> Result<usize, PhraseError> {
        let word = lexemes[at].norm.as_str();
        // 오늘, 내일, 모레; joined to a part of the day: 오늘밤, 내일아침.
        for (name, day) in DAY_WORDS {
            let Some(rest) = word.strip_prefix(name) else {
                continue;
            };
            if !self.takes_days() {
                return Ok(0);
            }
            if TIME_PARTICLES.contains(&rest) {
                set(&mut self.when.day, day)?;
                return Ok(1);
            }
            if let Some((_, _, _)) = part_of(rest) {
                set(&mut self.when.day, day)?;
                return self.part(lexemes, at, rest);
            }
            return Ok(0);
        }
        // 하루 뒤, 이틀 후, 일주일 뒤, 일주일마다
        for (name, days) in RELATIVE_DAYS {
            let Some(rest) = word.strip_prefix(name) else {
                continue;
            };
            let amount = SignedDuration::from_hours(24 * days);
            let (found, used) = match marker(rest) {
                Some(found) => (Some(found), 1),
                None if rest.is_empty() => {
                    (lexemes.get(at + 1).and_then(|next| marker(&next.norm)), 2)
                }
                None => (None, 0),
            };
            return match found {
                Some(Marker::After) => {
                    set(&mut self.when.after, amount)?;
                    self.after_days = i32::try_from(days).ok();
                    Ok(used)
                }
                Some(Marker::Every) => {
                    set(&mut self.when.every, Every::Interval(amount))?;
                    Ok(used)
                }
                None => Ok(0),
            };
        }
        if is_word(word, "정오", &TIME_PARTICLES) {
            set(&mut self.when.clock, Clock::noon())?;
            return Ok(1);
        }
        if is_word(word, "자정", &TIME_PARTICLES) {
            set(&mut self.when.clock, Clock::midnight())?;
            return Ok(1);
        }
        if part_of(word).is_some() {
            return self.part(lexemes, at, word);
        }
        // 매일, 날마다; 평일(마다), 주말(마다), 주중
        if is_word(word, "매일", &["", "매일"]) || word == "날마다" {
            set(&mut self.when.every, Every::Days(ALL_DAYS))?;
            return Ok(1);
        }
        for (name, mask) in [("평일", WEEKDAYS), ("주중", WEEKDAYS), ("주말", WEEKEND)] {
            if is_word(word, name, &["", "마다", "에", "에는", "엔", "에만"]) {
                set(&mut self.when.every, Every::Days(mask))?;
                return Ok(1);
            }
        }
        // 매주 월요일, 매주 월·목
        if word == "매주" {
            let (mask, used) = weekday_list(lexemes, at + 1);
            if mask == 0 {
                return Ok(0);
            }
            set(&mut self.when.every, Every::Days(mask))?;
            return Ok(1 + used);
        }
        // 월요일에, 월요일마다
        if let Some((weekday, rest)) = weekday_word(word) {
            if rest == "마다" {
                set(&mut self.when.every, Every::Days(day_bit(weekday)))?;
                return Ok(1);
            }
            // A bare weekday only with a particle or before a time
            // ("금요일 회의" stays words).
            let before_time = lexemes.get(at + 1).is_some_and(|next| {
                part_of(&next.norm).is_some()
                    || next.kind == Kind::Number
                    || quantity(lexemes, at + 1).is_some_and(|found| found.unit == Unit::Clock)
            });
            if !self.takes_days()
                || !TIME_PARTICLES.contains(&rest)
                || (rest.is_empty() && !before_time)
            {
                return Ok(0);
            }
            set(&mut self.when.day, Day::Weekday(weekday))?;
            return Ok(1);
        }
        // 이번 주 금요일, 다음 주 월요일, 다음주 월요일에
        for (name, weeks) in [
            ("이번", 0),
            ("이번주", 0),
            ("다음", 1),
            ("다음주", 1),
            ("담주", 1),
            ("다다음", 2),
            ("다다음주", 2),
        ] {
            if word != name {
                continue;
            }
            let mut next = at + 1;
            if !name.ends_with('주') {
                if lexemes.get(next).is_none_or(|lexeme| lexeme.norm != "주") {
                    return Ok(0);
                }
                next += 1;
            }
            let Some((weekday, rest)) = lexemes.get(next).and_then(|l| weekday_word(&l.norm))
            else {
                return Ok(0);
            };
            if !self.takes_days() || !TIME_PARTICLES.contains(&rest) {
                return Ok(0);
            }
            set(&mut self.when.day, Day::InWeek { weeks, weekday })?;
            return Ok(next + 1 - at);
        }
        // 매시간, 매 시간, 매분
        if word == "매시간" || word == "매시" {
            set(
                &mut self.when.every,
                Every::Interval(SignedDuration::from_hours(1)),
            )?;
            return Ok(1);
        }
        if word == "매분" {
            set(
                &mut self.when.every,
                Every::Interval(SignedDuration::from_mins(1)),
            )?;
            return Ok(1);
        }
        if word == "매" && lexemes.get(at + 1).is_some_and(|next| next.norm == "시간") {
            set(
                &mut self.when.every,
                Every::Interval(SignedDuration::from_hours(1)),
            )?;
            return Ok(2);
        }
        // 반 시간 후
        if word == "반시간"
            || (word == "반" && lexemes.get(at + 1).is_some_and(|n| n.norm == "시간"))
        {
            let used = if word == "반" { 2 } else { 1 };
            if let Some(found) = lexemes.get(at + used).and_then(|next| marker(&next.norm)) {
                let half = SignedDuration::from_mins(30);
                match found {
                    Marker::After => set(&mut self.when.after, half)?,
                    Marker::Every => set(&mut self.when.every, Every::Interval(half))?,
                }
                return Ok(used + 1);
            }
            return Ok(0);
        }
        // 매달 1일, 매월 15일에; 매달 말일, 매달 마지막 날
        if word == "매달" || word == "매월" {
            if let Some(next) = lexemes.get(at + 1)
                && is_word(&next.norm, "말일", &TIME_PARTICLES)
            {
                set(&mut self.when.every, Every::LastDayOfMonth)?;
                return Ok(2);
            }
            if lexemes
                .get(at + 1)
                .is_some_and(|next| next.norm == "마지막")
                && let Some(day) = lexemes.get(at + 2)
                && is_word(&day.norm, "날", &TIME_PARTICLES)
            {
                set(&mut self.when.every, Every::LastDayOfMonth)?;
                return Ok(3);
            }
            if let Some(day) = quantity(lexemes, at + 1)
                && day.unit == Unit::Days
                && (1..=31).contains(&day.value)
                && TIME_PARTICLES.contains(&day.rest.as_str())
            {
                set(
                    &mut self.when.every,
                    Every::MonthDay(i8::try_from(day.value).unwrap_or(1)),
                )?;
                return Ok(1 + day.used);
            }
            return Ok(0);
        }
        Ok(0)
    }

    /// A part of the day at `at` (written `word`, maybe after a day word):
    /// with a clock time after it, that time's am or pm; alone, its hour.
    pub(super) fn part(
        &mut self,
        lexemes: &[Lexeme],
        at: usize,
        word: &str,
    ) -> Result<usize, PhraseError> {
        let Some((hour, part, rest)) = part_of(word) else {
            return Ok(0);
        };
        if rest == "마다" {
            set(&mut self.when.every, Every::Days(ALL_DAYS))?;
        }
        let had_clock = self.when.clock.is_some();
        let used = if rest.is_empty() && at + 1 < lexemes.len() {
            self.phrase(lexemes, at + 1)?
        } else {
            0
        };
        // "7시에 저녁 준비하라고": once a time is read, a part of the day
        // without a clock after it is a word ("저녁", dinner).
        if used == 0 && rest != "마다" && (had_clock || self.when.part_of_day.is_some()) {
            return Ok(0);
        }
        match self.when.clock {
            Some(mut clock) if !had_clock && used > 0 => {
                if clock.pm.is_none() {
                    clock.pm = part.pm(clock.hour);
                }
                self.when.clock = Some(clock);
            }
            _ => set(&mut self.when.part_of_day, hour)?,
        }
        Ok(1 + used)
    }
}

/// A part of the day that `word` starts with: its hour, its kind, and
/// the particle after it; `None` when more follows.
pub(super) fn part_of(word: &str) -> Option<(i8, Part, &str)> {
    PARTS.iter().find_map(|(name, hour, part)| {
        let rest = word.strip_prefix(name)?;
        (TIME_PARTICLES.contains(&rest) || rest == "마다").then_some((*hour, *part, rest))
    })
}

/// Who a scheduled message is for, at `at`: the room ("우리 가족에게",
/// "가족 모두에게", "모두에게", "다들한테") or the member ("나에게", "저한테").
pub(super) fn audience_at(lexemes: &[Lexeme], at: usize) -> Option<(Audience, usize)> {
    const TO: [&str; 6] = ["에게", "한테", "께", "에게도", "한테도", "에게는"];
    const ROOM: [&str; 11] = [
        "가족",
        "가족들",
        "식구",
        "식구들",
        "모두",
        "모두들",
        "다들",
        "우리",
        "우리들",
        "여러분",
        "온가족",
    ];
    let word = lexemes.get(at)?.norm.as_str();
    if matches!(word, "우리" | "온" | "가족")
        && let Some(next) = lexemes.get(at + 1)
        && ROOM.iter().any(|name| is_word(&next.norm, name, &TO))
    {
        return Some((Audience::Room, 2));
    }
    if ROOM.iter().any(|name| is_word(word, name, &TO)) || is_word(word, "가족방", &["에", "에다"])
    {
        return Some((Audience::Room, 1));
    }
    if ["나", "저"]
        .iter()
        .any(|name| is_word(word, name, &["에게", "한테"]))
        || matches!(word, "내게" | "제게")
    {
        return Some((Audience::Me, 1));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekdays_parts_of_the_day_and_amounts_of_time_are_read_from_words() {
        assert_eq!(weekday_word("금요일에"), Some((Weekday::Friday, "에")));
        assert_eq!(weekday_word("금요"), None);
        assert_eq!(
            weekdays_in("월수금"),
            Some(day_bit(Weekday::Monday) | day_bit(Weekday::Wednesday) | day_bit(Weekday::Friday))
        );
        assert!(matches!(part_of("오후에"), Some((_, _, "에"))));
        // "오후반": more follows, not a part of the day.
        assert_eq!(part_of("오후반"), None);
        assert_eq!(marker("뒤에"), Some(Marker::After));
        assert_eq!(marker("마다"), Some(Marker::Every));
        assert_eq!(marker("전에"), None);
    }

    #[test]
    fn the_audience_is_the_room_or_the_member() {
        let audience = |text: &str| audience_at(&lex(text), 0).map(|(audience, _)| audience);
        assert_eq!(audience("가족 모두에게 알려 줘"), Some(Audience::Room));
        assert_eq!(audience("우리 가족에게 알려 줘"), Some(Audience::Room));
        assert_eq!(audience("나에게 알려 줘"), Some(Audience::Me));
        assert_eq!(audience("치과 알려 줘"), None);
    }
}
