//! The Korean reading of the everyday requests (mixed Korean and English
//! too: "내일 7pm에 dentist 알려줘").
//!
//! Korean attaches particles and endings to the word ("9시에", "보일러를",
//! "전화하라고"), so a message is first cut into lexemes (numbers, Hangul
//! runs, Latin runs, punctuation) and words are matched with the particles
//! they may carry. The request is read from the verb at the end ("알려 줘",
//! "추가해 주세요", "취소해", "잊어버려"), or at the start for "기억해 줘: …",
//! and from what the message is about (a list, a reminder, a memory).
//!
//! Times understood: relative (`30분 후에`, `20분 뒤`, `2시간 후`, `한 시간 반
//! 후`, `1시간 30분 뒤`, `3일 후`, `이틀 뒤`, `일주일 후`); clock times (`9시`,
//! `9시 30분`, `9시 반`, `19시`, `19:00`, `7pm`, `오전/오후/아침/점심/낮/저녁/밤/
//! 새벽 N시`, `정오`, `자정`); days (`오늘`, `내일`, `모레`, `글피`, `오늘 밤`,
//! `내일 아침`, `금요일에`, `이번 주 금요일`, `다음 주 월요일`, `12월 3일`,
//! `2026년 12월 3일`, `2026-12-03`, `3일 후 오전 9시`); recurring (`매일`,
//! `날마다`, `평일마다`, `주말마다`, `매주 월요일`, `매주 월·목`, `매주 월요일과
//! 목요일`, `월요일마다`, `매일 아침`, `아침마다`, `매시간`, `30분마다`, `2시간마다`,
//! `매달 1일`). Audience: the member (`나에게`, or no one named) or the room
//! (`우리 가족에게`, `가족 모두에게`, `모두에게`, `다들한테`).
//!
//! Requests: `기억해 줘: …`, `… 기억해 둬`; `3번 잊어 줘`, `… 잊어버려`, `… 기억
//! 지워 줘`; `… 하라고 알려 줘` (a reminder: the quoted `하라고` becomes `하기`),
//! `내일 9시에 치과 알려 줘`, `… 알림 설정해 줘`, `내일 아침 7시에 깨워 줘`;
//! recurring without a quoted action is a scheduled question (`매일 아침 7시에
//! 오늘 날씨 알려 줘`); `알림 목록 보여 줘`, `내 알림 뭐 있어?`; `3번 알림 취소해
//! 줘`, `치과 알림 취소해 줘`; `장보기 목록에 우유랑 계란 추가해 줘`, `장보기 목록
//! 보여 줘`, `장보기 목록에 뭐 있어?`, `장보기 목록에서 우유 빼 줘`. A day alone
//! with 알려 줘 is a question for the model ("내일 날씨 알려 줘"), not a reminder.

use jiff::civil::Weekday;
use jiff::{SignedDuration, Timestamp};

use super::english;
use super::{
    AFTERNOON, ALL_DAYS, Action, Audience, Clock, Day, EVENING, Every, Intent, ListRequest,
    MORNING, Missing, NIGHT, PhraseError, Scheduled, WEEKDAYS, WEEKEND, When, Which, day_bit,
    resolve, set,
};
use crate::language::{has_final_consonant, is_hangul};
use crate::schedule::zone;

/// What kind of thing a lexeme is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Number,
    Hangul,
    Latin,
    Punct,
}

/// A piece of the message: its lower-cased text, where it is, and whether
/// a space came before it.
#[derive(Clone, Debug)]
struct Lexeme {
    kind: Kind,
    norm: String,
    start: usize,
    end: usize,
    spaced: bool,
}

/// Separators written inside Hangul runs: the middle dots of "월·목".
fn is_separator(c: char) -> bool {
    matches!(
        c,
        '\u{00B7}' | '\u{318D}' | '\u{30FB}' | '\u{2027}' | '\u{2022}'
    )
}

fn lex(message: &str) -> Vec<Lexeme> {
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
fn text_of(message: &str, lexemes: &[&Lexeme]) -> String {
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

// Verbs.

/// What a verb can ask for (a set: "지워 줘" cancels a reminder, takes an
/// item off a list or forgets an entry, as the rest of the message says).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Kinds(u8);

impl Kinds {
    const REMEMBER: u8 = 1;
    const FORGET: u8 = 2;
    const REMIND: u8 = 4;
    const ASK: u8 = 8;
    const CANCEL: u8 = 16;
    const ADD: u8 = 32;
    const REMOVE: u8 = 64;
    const SHOW: u8 = 128;

    fn has(self, kind: u8) -> bool {
        self.0 & kind != 0
    }
}

/// Verb stems, as written before a request ending ("알려" + "줘").
const STEMS: [(&str, u8); 42] = [
    ("기억해", Kinds::REMEMBER),
    ("잊어", Kinds::FORGET),
    ("잊어버려", Kinds::FORGET),
    ("잊어버리", Kinds::FORGET),
    ("알려", Kinds::REMIND | Kinds::SHOW | Kinds::ASK),
    ("알림해", Kinds::REMIND),
    ("알림설정해", Kinds::REMIND),
    ("알람설정해", Kinds::REMIND),
    ("알람맞춰", Kinds::REMIND),
    ("리마인드해", Kinds::REMIND),
    ("상기시켜", Kinds::REMIND),
    ("깨워", Kinds::REMIND),
    ("말해", Kinds::REMIND | Kinds::ASK | Kinds::SHOW),
    ("얘기해", Kinds::REMIND | Kinds::ASK),
    ("이야기해", Kinds::REMIND | Kinds::ASK),
    ("전해", Kinds::REMIND | Kinds::ASK),
    ("정리해", Kinds::ASK),
    ("요약해", Kinds::ASK),
    ("보내", Kinds::ASK),
    ("추천해", Kinds::ASK),
    ("찾아", Kinds::ASK),
    ("확인해", Kinds::ASK),
    ("취소해", Kinds::CANCEL),
    ("취소", Kinds::CANCEL),
    ("꺼", Kinds::CANCEL),
    ("그만해", Kinds::CANCEL),
    ("지워", Kinds::CANCEL | Kinds::REMOVE | Kinds::FORGET),
    ("삭제해", Kinds::CANCEL | Kinds::REMOVE | Kinds::FORGET),
    ("삭제", Kinds::CANCEL | Kinds::REMOVE | Kinds::FORGET),
    ("없애", Kinds::CANCEL | Kinds::REMOVE | Kinds::FORGET),
    ("제거해", Kinds::CANCEL | Kinds::REMOVE | Kinds::FORGET),
    ("제거", Kinds::CANCEL | Kinds::REMOVE | Kinds::FORGET),
    ("빼", Kinds::REMOVE | Kinds::CANCEL),
    ("추가해", Kinds::ADD),
    ("추가", Kinds::ADD),
    ("넣어", Kinds::ADD),
    ("적어", Kinds::ADD),
    ("담아", Kinds::ADD),
    ("올려", Kinds::ADD),
    ("보여", Kinds::SHOW),
    ("읽어", Kinds::SHOW),
    ("알려주", Kinds::REMIND | Kinds::SHOW | Kinds::ASK),
];

/// Request endings after a stem, longest first ("" for a bare stem:
/// "잊어버려", "취소").
const ENDINGS: [&str; 17] = [
    "주시겠어요",
    "주실래요",
    "주세요",
    "줄래요",
    "줄래",
    "줘요",
    "줘라",
    "주라",
    "줘봐",
    "놓아줘",
    "두세요",
    "줘",
    "둬요",
    "둬",
    "놔",
    "라",
    "",
];

/// "What is on it?" as a whole, asking to be shown.
const SHOW_QUESTIONS: [&str; 12] = [
    "뭐있어",
    "뭐있어요",
    "뭐가있어",
    "뭐가있어요",
    "뭐있지",
    "뭐가있지",
    "뭐있니",
    "뭐가있니",
    "뭐있나",
    "뭐가있나",
    "뭐야",
    "뭐지",
];

fn verb_kinds(joined: &str) -> Option<Kinds> {
    if SHOW_QUESTIONS.contains(&joined) {
        return Some(Kinds(Kinds::SHOW));
    }
    for ending in ENDINGS {
        if let Some(stem) = joined.strip_suffix(ending)
            && let Some((_, kinds)) = STEMS.iter().find(|(known, _)| *known == stem)
        {
            return Some(Kinds(*kinds));
        }
    }
    None
}

/// The verb that ends `body`: what it asks for, and where it starts.
fn verb_at_end(body: &[Lexeme]) -> Option<(Kinds, usize)> {
    for count in (1..=3).rev() {
        let Some(from) = body.len().checked_sub(count) else {
            continue;
        };
        if body[from..]
            .iter()
            .any(|lexeme| lexeme.kind != Kind::Hangul)
        {
            continue;
        }
        let joined: String = body[from..]
            .iter()
            .map(|lexeme| lexeme.norm.as_str())
            .collect();
        if let Some(kinds) = verb_kinds(&joined) {
            return Some((kinds, from));
        }
    }
    None
}

/// "기억해 줘: …" at the start of `body`: how many lexemes it takes.
fn remember_at_start(body: &[Lexeme]) -> Option<usize> {
    for count in (1..=2).rev() {
        if body.len() < count || body[..count].iter().any(|l| l.kind != Kind::Hangul) {
            continue;
        }
        let joined: String = body[..count].iter().map(|l| l.norm.as_str()).collect();
        if verb_kinds(&joined).is_some_and(|kinds| kinds.has(Kinds::REMEMBER)) {
            return Some(count);
        }
    }
    None
}

// Particles.

/// Whether `word` is `keyword` with one of `particles` after it ("" for none).
fn is_word(word: &str, keyword: &str, particles: &[&str]) -> bool {
    word.strip_prefix(keyword)
        .is_some_and(|rest| particles.contains(&rest))
}

/// What may follow a time word.
const TIME_PARTICLES: [&str; 14] = [
    "", "에", "에는", "엔", "부터", "쯤", "쯤에", "경", "경에", "에도", "도", "은", "는", "까지",
];

/// `word` without a final particle that fits its last syllable (을 after a
/// consonant, 를 after a vowel; the same for 은/는, 이/가, 과/와, 이랑/랑),
/// or 도, 만, 좀, 요, 하고. Kept whole when nothing would be left.
fn without_particle(word: &str) -> &str {
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

// Numbers.

/// Native Korean numbers, as said before 시 and 시간 ("한 시간", "일곱 시").
const NATIVE: [(&str, i64); 12] = [
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
fn sino(word: &str) -> Option<i64> {
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
enum Unit {
    Hours,
    Clock,
    Minutes,
    Days,
    Weeks,
    Month,
    Year,
    Count,
}

const UNITS: [(&str, Unit); 8] = [
    ("시간", Unit::Hours),
    ("시", Unit::Clock),
    ("분", Unit::Minutes),
    ("일", Unit::Days),
    ("주", Unit::Weeks),
    ("월", Unit::Month),
    ("년", Unit::Year),
    ("번", Unit::Count),
];

fn split_unit(word: &str) -> Option<(Unit, &str)> {
    UNITS
        .iter()
        .find_map(|(name, unit)| word.strip_prefix(name).map(|rest| (*unit, rest)))
}

/// A number and its unit: "30분", "9시에", "한 시간", "두시", "삼십 분".
struct Quantity {
    value: i64,
    unit: Unit,
    /// What follows the unit in its word ("에", "후에", "반").
    rest: String,
    used: usize,
}

fn quantity(lexemes: &[Lexeme], at: usize) -> Option<Quantity> {
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

/// What a relative amount of time is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Marker {
    /// After it (후, 뒤).
    After,
    /// Every time it passes (마다).
    Every,
}

fn marker(word: &str) -> Option<Marker> {
    match word {
        "후" | "후에" | "뒤" | "뒤에" | "후에는" | "뒤에는" | "있다가" | "지나서" | "지나면" => {
            Some(Marker::After)
        }
        "마다" | "에한번" => Some(Marker::Every),
        _ => None,
    }
}

// Time words.

const DAY_WORDS: [(&str, Day); 6] = [
    ("내일모레", Day::InDays(2)),
    ("오늘", Day::Today),
    ("내일", Day::Tomorrow),
    ("낼", Day::Tomorrow),
    ("모레", Day::InDays(2)),
    ("글피", Day::InDays(3)),
];

const RELATIVE_DAYS: [(&str, i64); 6] = [
    ("하루", 1),
    ("이틀", 2),
    ("사흘", 3),
    ("나흘", 4),
    ("닷새", 5),
    ("일주일", 7),
];

/// Parts of the day: the hour they mean alone, and whether an hour after
/// them is in the afternoon (`Some(true)`), the morning, or depends on it.
const PARTS: [(&str, i8, Part); 8] = [
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
enum Part {
    Am,
    Pm,
    /// 12 is noon, 1 to 6 afternoon hours, 7 to 11 morning ones.
    Midday,
    /// 12 is midnight, 1 to 4 small hours, the rest evening ones.
    Night,
}

impl Part {
    /// Whether `hour` said after this part is pm.
    fn pm(self, hour: i8) -> Option<bool> {
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

const WEEKDAY_NAMES: [(&str, Weekday); 7] = [
    ("월", Weekday::Monday),
    ("화", Weekday::Tuesday),
    ("수", Weekday::Wednesday),
    ("목", Weekday::Thursday),
    ("금", Weekday::Friday),
    ("토", Weekday::Saturday),
    ("일", Weekday::Sunday),
];

/// "월요일에" → Monday and "에".
fn weekday_word(word: &str) -> Option<(Weekday, &str)> {
    WEEKDAY_NAMES.iter().find_map(|(name, weekday)| {
        word.strip_prefix(name)?
            .strip_prefix("요일")
            .map(|rest| (*weekday, rest))
    })
}

/// Weekdays after 매주: "월요일", "월요일과 목요일", "월·목", "월, 수, 금",
/// "월수금"; their mask and how many lexemes.
fn weekday_list(lexemes: &[Lexeme], at: usize) -> (u8, usize) {
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
fn weekdays_in(word: &str) -> Option<u8> {
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

/// A lexeme right after `at` (unspaced) that is only a particle ("에"):
/// 1 to take it with the word before, else 0.
fn particle_after(lexemes: &[Lexeme], at: usize) -> usize {
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

/// What the time reading keeps between lexemes.
#[derive(Default)]
struct Reading {
    when: When,
    /// Days of a "3일 후": a day when a clock time is given too.
    after_days: Option<i32>,
}

impl Reading {
    /// Reads a time phrase at `at` into the reading; how many lexemes it took.
    fn phrase(&mut self, lexemes: &[Lexeme], at: usize) -> Result<usize, PhraseError> {
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
    fn takes_days(&self) -> bool {
        self.when.every.is_none()
    }

    fn number(&mut self, lexemes: &[Lexeme], at: usize) -> Result<usize, PhraseError> {
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

    fn quantity(
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

    fn word(&mut self, lexemes: &[Lexeme], at: usize) -> Result<usize, PhraseError> {
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
    fn part(&mut self, lexemes: &[Lexeme], at: usize, word: &str) -> Result<usize, PhraseError> {
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
fn part_of(word: &str) -> Option<(i8, Part, &str)> {
    PARTS.iter().find_map(|(name, hour, part)| {
        let rest = word.strip_prefix(name)?;
        (TIME_PARTICLES.contains(&rest) || rest == "마다").then_some((*hour, *part, rest))
    })
}

/// Who a scheduled message is for, at `at`: the room ("우리 가족에게",
/// "가족 모두에게", "모두에게", "다들한테") or the member ("나에게", "저한테").
fn audience_at(lexemes: &[Lexeme], at: usize) -> Option<(Audience, usize)> {
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

/// Words said around a request that are not part of it.
const FILLER: [&str; 9] = [
    "꼭",
    "좀",
    "제발",
    "잊지",
    "말고",
    "잊지말고",
    "부탁해",
    "부탁해요",
    "부탁",
];

/// Where the request starts: after a mention of the assistant or a greeting.
fn skip_preamble(lexemes: &[Lexeme]) -> usize {
    let mut at = 0;
    while let Some(lexeme) = lexemes.get(at) {
        let word = lexeme.norm.as_str();
        if lexeme.kind == Kind::Punct && word == "@" {
            at += 2;
            continue;
        }
        let filler = matches!(
            word,
            "assistant"
                | "hey"
                | "hi"
                | "어시스턴트"
                | "어시스턴트야"
                | "비서"
                | "비서야"
                | "저기"
                | "저기요"
                | "혹시"
                | "안녕"
                | "안녕하세요"
                | "제발"
        ) || (lexeme.kind == Kind::Punct && at > 0 && matches!(word, "," | "!" | "~"));
        if !filler {
            break;
        }
        at += 1;
    }
    at.min(lexemes.len())
}

/// The Korean request in `message`, if it is one.
pub(super) fn recognize(
    message: &str,
    now: Timestamp,
    tz: &str,
) -> Option<Result<Intent, PhraseError>> {
    let lexemes = lex(message);
    let start = skip_preamble(&lexemes);
    let mut end = lexemes.len();
    while end > start
        && lexemes[end - 1].kind == Kind::Punct
        && matches!(lexemes[end - 1].norm.as_str(), "." | "!" | "?" | "~" | "…")
    {
        end -= 1;
    }
    let question = message.trim_end().ends_with('?');
    let body = &lexemes[start..end];
    if body.is_empty() {
        return None;
    }
    if let Some(used) = remember_at_start(body)
        && !question
    {
        let rest: Vec<&Lexeme> = body[used..].iter().collect();
        let text = text_of(message, &rest);
        return Some(if text.is_empty() {
            Err(PhraseError::Empty(Missing::Remember))
        } else {
            Ok(Intent::Remember { text })
        });
    }
    let (kinds, verb_at) = verb_at_end(body)?;
    let before = &body[..verb_at];
    let mentions = |words: &[&str]| {
        before.iter().any(|lexeme| {
            words
                .iter()
                .any(|word| is_word(&lexeme.norm, word, &PARTICLES))
        })
    };
    let about_reminders = mentions(&["알림", "리마인더", "알람", "예약", "리마인드"]);
    let about_memory = mentions(&["기억", "메모리"]);
    if kinds.has(Kinds::REMEMBER) {
        if question {
            return None;
        }
        return Some(remember_before(message, before));
    }
    if let Some(found) = list_request(message, before, kinds) {
        return Some(found);
    }
    if about_reminders && kinds.has(Kinds::CANCEL) {
        return Some(which(message, before, &REMINDER_WORDS).map(Intent::Cancel));
    }
    if kinds.has(Kinds::FORGET) && (about_memory || kinds == Kinds(Kinds::FORGET)) {
        return Some(which(message, before, &MEMORY_WORDS).map(Intent::Forget));
    }
    if about_reminders
        && kinds.has(Kinds::SHOW)
        && !before.iter().any(|lexeme| lexeme.kind == Kind::Number)
        && (mentions(&["목록", "리스트"]) || before.len() <= 2)
    {
        return Some(Ok(Intent::Reminders));
    }
    if kinds.has(Kinds::REMIND) || kinds.has(Kinds::ASK) {
        return schedule(message, before, &body[verb_at..], kinds, now, tz);
    }
    None
}

/// Every particle a keyword may carry when it is only mentioned.
const PARTICLES: [&str; 22] = [
    "",
    "을",
    "를",
    "은",
    "는",
    "이",
    "가",
    "에",
    "에서",
    "도",
    "들",
    "들을",
    "목록",
    "목록을",
    "목록에",
    "좀",
    "의",
    "만",
    "에는",
    "으로",
    "로",
    "과",
];

/// Words that name a reminder, not which one.
const REMINDER_WORDS: [&str; 5] = ["알림", "리마인더", "알람", "예약", "리마인드"];
/// Words that name a memory, not which one.
const MEMORY_WORDS: [&str; 4] = ["기억", "메모리", "내용", "것"];

/// "기억해 줘" at the end: what comes before, without its quotation.
fn remember_before(message: &str, before: &[Lexeme]) -> Result<Intent, PhraseError> {
    let kept: Vec<&Lexeme> = before
        .iter()
        .filter(|lexeme| !FILLER.contains(&lexeme.norm.as_str()))
        .collect();
    let text = unquote(&text_of(message, &kept));
    if text.is_empty() {
        return Err(PhraseError::Empty(Missing::Remember));
    }
    Ok(Intent::Remember { text })
}

/// A statement without the quotation that reports it: "4711이라고" → "4711",
/// "있다고" → "있다", "4711이라는 거" → "4711".
fn unquote(text: &str) -> String {
    let mut text = text.trim().to_owned();
    for ending in [" 것을", " 거를", " 것", " 거", " 걸"] {
        if let Some(stem) = text.strip_suffix(ending)
            && !stem.trim().is_empty()
        {
            text = stem.trim_end().to_owned();
            break;
        }
    }
    for (ending, replace) in [
        ("이라는", ""),
        ("라는", ""),
        ("다는", "다"),
        ("이라고", ""),
        ("라고", ""),
        ("다고", "다"),
    ] {
        if let Some(stem) = text.strip_suffix(ending)
            && !stem.trim().is_empty()
        {
            return format!("{stem}{replace}");
        }
    }
    text
}

/// Which entry or reminder: its number ("3번", "#3"), or what it says
/// (the words left once those that name the kind are gone).
fn which(message: &str, before: &[Lexeme], kind_words: &[&str]) -> Result<Which, PhraseError> {
    for (index, lexeme) in before.iter().enumerate() {
        let numbered = lexeme.kind == Kind::Number
            && before
                .get(index + 1)
                .is_some_and(|next| next.norm.starts_with('번'));
        let hashed = lexeme.norm == "#"
            && before
                .get(index + 1)
                .is_some_and(|next| next.kind == Kind::Number);
        let digits = if hashed {
            &before[index + 1].norm
        } else {
            &lexeme.norm
        };
        if (numbered || hashed)
            && let Ok(id) = digits.parse::<i64>()
            && id > 0
        {
            return Ok(Which::Number(id));
        }
    }
    let kept: Vec<&Lexeme> = before
        .iter()
        .filter(|lexeme| {
            !kind_words
                .iter()
                .any(|word| is_word(&lexeme.norm, word, &PARTICLES))
                && !FILLER.contains(&lexeme.norm.as_str())
                && !matches!(lexeme.norm.as_str(), "내" | "제" | "그" | "그거" | "저거")
        })
        .collect();
    let text = text_of(message, &kept);
    let text = match text.rsplit_once(' ') {
        Some((head, last)) => format!("{head} {}", without_particle(last)),
        None => without_particle(&text).to_owned(),
    };
    if text.trim().is_empty() {
        return Err(PhraseError::Empty(Missing::Which));
    }
    Ok(Which::Text(text.trim().to_owned()))
}

/// "장보기 목록에 우유 추가해 줘": the list, what to do, and the items.
fn list_request(
    message: &str,
    before: &[Lexeme],
    kinds: Kinds,
) -> Option<Result<Intent, PhraseError>> {
    const LIST_PARTICLES: [&str; 12] = [
        "",
        "에",
        "에서",
        "에다",
        "에다가",
        "을",
        "를",
        "은",
        "는",
        "에는",
        "엔",
        "에서는",
    ];
    let (at, prefix, particle) = before.iter().enumerate().find_map(|(index, lexeme)| {
        ["목록", "리스트"].iter().find_map(|word| {
            let split = lexeme.norm.find(word)?;
            let rest = &lexeme.norm[split + word.len()..];
            LIST_PARTICLES
                .contains(&rest)
                .then(|| (index, lexeme.norm[..split].to_owned(), rest.to_owned()))
        })
    })?;
    let (name, name_at) = if prefix.is_empty() {
        let name_at = at.checked_sub(1)?;
        let lexeme = &before[name_at];
        if lexeme.kind == Kind::Punct
            || REMINDER_WORDS.contains(&lexeme.norm.as_str())
            || MEMORY_WORDS.contains(&lexeme.norm.as_str())
        {
            return None;
        }
        (message[lexeme.start..lexeme.end].to_owned(), Some(name_at))
    } else {
        (prefix, None)
    };
    let items: Vec<&Lexeme> = before
        .iter()
        .enumerate()
        .filter(|(index, lexeme)| {
            *index != at && Some(*index) != name_at && !FILLER.contains(&lexeme.norm.as_str())
        })
        .map(|(_, lexeme)| lexeme)
        .collect();
    let items = korean_items(message, &items);
    let need_items = |items: Vec<String>| {
        if items.is_empty() {
            Err(PhraseError::Empty(Missing::Items))
        } else {
            Ok(items)
        }
    };
    let request = if kinds.has(Kinds::ADD) {
        need_items(items).map(|items| ListRequest::Add { list: name, items })
    } else if kinds.has(Kinds::REMOVE) && (particle.starts_with("에서") || !items.is_empty()) {
        need_items(items).map(|items| ListRequest::Remove { list: name, items })
    } else if kinds.has(Kinds::SHOW) && items.is_empty() {
        Ok(ListRequest::Show { list: name })
    } else {
        return None;
    };
    Some(request.map(Intent::List))
}

/// Items as a member lists them in Korean: "우유랑 계란", "우유, 계란 그리고
/// 빵", "우유와 두부 한 모를": cut at commas, 그리고/하고/및, and the joining
/// particles (이랑/랑, 과/와, 하고) that fit the word they follow.
fn korean_items(message: &str, lexemes: &[&Lexeme]) -> Vec<String> {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut close = |current: &mut String| {
        let item = current.trim();
        if !item.is_empty() {
            let item = match item.rsplit_once(' ') {
                Some((head, last)) => format!("{head} {}", without_particle(last)),
                None => without_particle(item).to_owned(),
            };
            items.push(item);
        }
        current.clear();
    };
    for lexeme in lexemes {
        let text = &message[lexeme.start..lexeme.end];
        match lexeme.kind {
            Kind::Punct
                if matches!(lexeme.norm.as_str(), "," | "/" | "、" | "+")
                    || lexeme.norm.chars().all(is_separator) =>
            {
                close(&mut current);
                continue;
            }
            Kind::Hangul if matches!(lexeme.norm.as_str(), "그리고" | "하고" | "및" | "또") =>
            {
                close(&mut current);
                continue;
            }
            _ => {}
        }
        if !current.is_empty() && lexeme.spaced {
            current.push(' ');
        }
        let joined = joining_particle(text);
        current.push_str(joined.unwrap_or(text));
        if joined.is_some() {
            close(&mut current);
        }
    }
    close(&mut current);
    items
}

/// `word` without a particle that joins it to the next item (이랑/랑,
/// 과/와, 하고), when it has one that fits.
fn joining_particle(word: &str) -> Option<&str> {
    for (particle, after_consonant) in [("이랑", true), ("랑", false), ("과", true), ("와", false)]
    {
        if let Some(stem) = word.strip_suffix(particle)
            && let Some(last) = stem.chars().last()
            && has_final_consonant(last) == Some(after_consonant)
        {
            return Some(stem);
        }
    }
    word.strip_suffix("하고").filter(|stem| !stem.is_empty())
}

/// Whether `text` reports an action to be told ("전화하라고", "있다고").
fn is_quoted(text: &str) -> bool {
    let last = text.split_whitespace().last().unwrap_or_default();
    ["라고", "다고", "자고", "냐고"]
        .iter()
        .any(|ending| last.ends_with(ending))
}

/// The action a reminder reports, as a note: "할머니께 전화하라고" →
/// "할머니께 전화하기", "약 먹으라고" → "약 먹기", "약속이라고" → "약속".
fn reminder_text(text: &str) -> String {
    let (head, last) = match text.rsplit_once(' ') {
        Some((head, last)) => (format!("{head} "), last),
        None => (String::new(), text),
    };
    let note = if let Some(stem) = last.strip_suffix("으라고") {
        format!("{stem}기")
    } else if let Some(stem) = last.strip_suffix("이라고")
        && stem
            .chars()
            .last()
            .is_some_and(|c| has_final_consonant(c) == Some(true))
    {
        stem.to_owned()
    } else if let Some(stem) = last.strip_suffix("라고") {
        format!("{stem}기")
    } else if let Some(stem) = last.strip_suffix("다고") {
        format!("{stem}다")
    } else if let Some(stem) = last.strip_suffix("자고") {
        format!("{stem}자")
    } else {
        without_particle(last).to_owned()
    };
    format!("{head}{note}").trim().to_owned()
}

fn schedule(
    message: &str,
    before: &[Lexeme],
    verb: &[Lexeme],
    kinds: Kinds,
    now: Timestamp,
    tz: &str,
) -> Option<Result<Intent, PhraseError>> {
    let zone = match zone(tz) {
        Ok(zone) => zone,
        Err(error) => return Some(Err(error.into())),
    };
    let mut reading = Reading::default();
    let mut audience = Audience::Me;
    let mut kept: Vec<&Lexeme> = Vec::new();
    let mut at = 0;
    while at < before.len() {
        if let Some((found, used)) = audience_at(before, at) {
            audience = found;
            at += used;
            continue;
        }
        match reading.phrase(before, at) {
            Err(error) => return Some(Err(error)),
            Ok(0) => {
                kept.push(&before[at]);
                at += 1;
            }
            Ok(used) => at += used,
        }
    }
    let Reading {
        mut when,
        after_days,
    } = reading;
    if let Some(days) = after_days
        && (when.clock.is_some() || when.part_of_day.is_some())
        && when.day.is_none()
    {
        when.after = None;
        when.day = Some(Day::InDays(days));
    }
    kept.retain(|lexeme| !FILLER.contains(&lexeme.norm.as_str()));
    let content = text_of(message, &kept);
    let quoted = is_quoted(&content);
    let named_reminder = verb.iter().any(|lexeme| {
        ["알림", "리마인드", "알람", "깨워", "상기"]
            .iter()
            .any(|word| lexeme.norm.starts_with(word))
    });
    let timed = when.clock.is_some()
        || when.after.is_some()
        || when.every.is_some()
        || when.part_of_day.is_some();
    if !timed && !((quoted || named_reminder) && when.day.is_some()) {
        // "할머니께 전화하라고 알려줘" without a time: a reminder, but when?
        return (kinds.has(Kinds::REMIND) && (quoted || named_reminder))
            .then_some(Err(PhraseError::NoTime));
    }
    let action = if when.every.is_some() && !quoted && !named_reminder && kinds.has(Kinds::ASK) {
        let mut question = kept.clone();
        question.extend(verb.iter());
        let text = text_of(message, &question);
        if content.is_empty() {
            return Some(Err(PhraseError::Empty(Missing::Do)));
        }
        Action::Ask(english::ask_text(&text))
    } else if kinds.has(Kinds::REMIND) {
        let text = reminder_text(&content);
        let text = if text.is_empty() && verb.iter().any(|l| l.norm.starts_with("깨워")) {
            "일어날 시간".to_owned()
        } else {
            text
        };
        if text.is_empty() {
            return Some(Err(PhraseError::Empty(Missing::Remind)));
        }
        Action::Remind(text)
    } else {
        return None;
    };
    Some(resolve(&when, now, &zone, tz).map(|schedule| {
        Intent::Schedule(Scheduled {
            schedule,
            action,
            audience,
        })
    }))
}

/// The time pieces of `text`, when it is nothing but a Korean time phrase.
pub(super) fn time_only(text: &str) -> Result<Option<When>, PhraseError> {
    let lexemes = lex(text);
    let mut reading = Reading::default();
    let mut at = 0;
    while at < lexemes.len() {
        match reading.phrase(&lexemes, at)? {
            0 if lexemes[at].kind == Kind::Punct => at += 1,
            0 => return Ok(None),
            used => at += used,
        }
    }
    let mut when = reading.when;
    if let Some(days) = reading.after_days
        && (when.clock.is_some() || when.part_of_day.is_some())
        && when.day.is_none()
    {
        when.after = None;
        when.day = Some(Day::InDays(days));
    }
    Ok(Some(when))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phrases::recognize;
    use crate::phrases::tests::{LONDON, at, now};
    use crate::schedule::Schedule;

    fn intent(message: &str) -> Intent {
        match recognize(message, now(), LONDON) {
            Some(Ok(intent)) => intent,
            other => panic!("{message:?}: {other:?}"),
        }
    }

    fn scheduled(message: &str) -> Scheduled {
        match intent(message) {
            Intent::Schedule(scheduled) => scheduled,
            other => panic!("{message:?}: {other:?}"),
        }
    }

    fn when(message: &str) -> Schedule {
        scheduled(message).schedule
    }

    fn cron(message: &str) -> String {
        match when(message) {
            Schedule::Cron { expr, .. } => expr,
            other => panic!("{message:?}: {other:?}"),
        }
    }

    fn remind(text: &str) -> Action {
        Action::Remind(text.into())
    }

    #[test]
    fn remember_in_korean_keeps_what_was_said() {
        for (message, text) in [
            (
                "기억해 줘: 내 사물함 비밀번호는 4711이야",
                "내 사물함 비밀번호는 4711이야",
            ),
            (
                "기억해줘 벤은 땅콩 알레르기가 있어",
                "벤은 땅콩 알레르기가 있어",
            ),
            ("내 생일은 5월 3일이라고 기억해 줘", "내 생일은 5월 3일"),
            (
                "벤이 땅콩 알레르기가 있다고 기억해 둬",
                "벤이 땅콩 알레르기가 있다",
            ),
            (
                "@assistant 와이파이 비밀번호는 hearth123이라는 거 기억해",
                "와이파이 비밀번호는 hearth123",
            ),
            (
                "우리 집 현관 비번 2580 꼭 기억해 주세요.",
                "우리 집 현관 비번 2580",
            ),
        ] {
            assert_eq!(
                intent(message),
                Intent::Remember { text: text.into() },
                "{message}"
            );
        }
        assert_eq!(
            recognize("기억해 줘", now(), LONDON),
            Some(Err(PhraseError::Empty(Missing::Remember)))
        );
        // Asking whether it remembers is a question for the model.
        assert_eq!(recognize("내 사물함 번호 기억해?", now(), LONDON), None);
    }

    #[test]
    fn reminders_in_korean_land_at_the_right_time() {
        // Now: Tuesday 24 November 2026, 15:00 in London.
        let reminder = scheduled("내일 오전 9시에 할머니께 전화하라고 알려줘");
        assert_eq!(reminder.schedule, at("2026-11-25T09:00:00Z"));
        assert_eq!(reminder.action, remind("할머니께 전화하기"));
        assert_eq!(reminder.audience, Audience::Me);
        for (message, expected, text) in [
            (
                "30분 후에 빨래 꺼내라고 알려줘",
                "2026-11-24T15:30:00Z",
                "빨래 꺼내기",
            ),
            (
                "20분 뒤에 오븐 확인하라고 알려 줘",
                "2026-11-24T15:20:00Z",
                "오븐 확인하기",
            ),
            (
                "2시간 후에 약 먹으라고 알려줘",
                "2026-11-24T17:00:00Z",
                "약 먹기",
            ),
            (
                "한 시간 반 후에 빨래 널라고 알려줘",
                "2026-11-24T16:30:00Z",
                "빨래 널기",
            ),
            (
                "1시간 30분 뒤에 전화하라고 알려줘",
                "2026-11-24T16:30:00Z",
                "전화하기",
            ),
            (
                "오후 7시에 쓰레기 버리라고 알려줘",
                "2026-11-24T19:00:00Z",
                "쓰레기 버리기",
            ),
            (
                "저녁 7시 30분에 약 먹으라고 알려 주세요",
                "2026-11-24T19:30:00Z",
                "약 먹기",
            ),
            (
                "밤 10시에 문 잠그라고 알려줘",
                "2026-11-24T22:00:00Z",
                "문 잠그기",
            ),
            (
                "오늘 밤 9시 반에 빨래 걷으라고 알려줘",
                "2026-11-24T21:30:00Z",
                "빨래 걷기",
            ),
            (
                "7시에 저녁 준비하라고 알려줘",
                "2026-11-24T19:00:00Z",
                "저녁 준비하기",
            ),
            (
                "19:00에 회의 있다고 알려줘",
                "2026-11-24T19:00:00Z",
                "회의 있다",
            ),
            (
                "19시에 화분에 물 주라고 알려줘",
                "2026-11-24T19:00:00Z",
                "화분에 물 주기",
            ),
            (
                "내일 아침 8시에 우유 사라고 알려줘",
                "2026-11-25T08:00:00Z",
                "우유 사기",
            ),
            (
                "내일 정오에 점심 약속이라고 알려줘",
                "2026-11-25T12:00:00Z",
                "점심 약속",
            ),
            (
                "내일 7pm에 dentist 예약 알려줘",
                "2026-11-25T19:00:00Z",
                "dentist 예약",
            ),
            (
                "모레 오후 3시에 택배 찾으라고 알려줘",
                "2026-11-26T15:00:00Z",
                "택배 찾기",
            ),
            (
                "금요일 오후 6시에 장 보라고 알려줘",
                "2026-11-27T18:00:00Z",
                "장 보기",
            ),
            (
                "금요일에 세차하라고 알려줘",
                "2026-11-27T09:00:00Z",
                "세차하기",
            ),
            (
                "이번 주 금요일 저녁 7시에 외식하자고 알려줘",
                "2026-11-27T19:00:00Z",
                "외식하자",
            ),
            (
                "다음 주 월요일 오전 10시에 병원 가라고 알려줘",
                "2026-11-30T10:00:00Z",
                "병원 가기",
            ),
            (
                "12월 3일 오전 10시에 세금 내라고 알려줘",
                "2026-12-03T10:00:00Z",
                "세금 내기",
            ),
            (
                "2027년 1월 5일에 보험 갱신하라고 알려줘",
                "2027-01-05T09:00:00Z",
                "보험 갱신하기",
            ),
            (
                "2027-06-01 12:30에 점심 약속 알려줘",
                "2027-06-01T11:30:00Z",
                "점심 약속",
            ),
            (
                "3일 후 오전 9시에 분리수거하라고 알려줘",
                "2026-11-27T09:00:00Z",
                "분리수거하기",
            ),
            (
                "이틀 뒤에 화분에 물 주라고 알려줘",
                "2026-11-26T15:00:00Z",
                "화분에 물 주기",
            ),
            (
                "내일 9시에 치과 알림 설정해 줘",
                "2026-11-25T09:00:00Z",
                "치과",
            ),
            (
                "내일 아침 7시에 깨워 줘",
                "2026-11-25T07:00:00Z",
                "일어날 시간",
            ),
            (
                "삼십 분 후에 불 끄라고 알려줘",
                "2026-11-24T15:30:00Z",
                "불 끄기",
            ),
            (
                "자정에 문 잠그라고 알려줘",
                "2026-11-25T00:00:00Z",
                "문 잠그기",
            ),
        ] {
            let reminder = scheduled(message);
            assert_eq!(reminder.schedule, at(expected), "{message}");
            assert_eq!(reminder.action, remind(text), "{message}");
        }
    }

    #[test]
    fn recurring_requests_in_korean_become_cron() {
        let weekly = scheduled("매주 월요일 아침 8시에 분리수거 내놓으라고 알려줘");
        assert_eq!(
            weekly.schedule,
            Schedule::Cron {
                expr: "0 8 * * 1".into(),
                tz: LONDON.into()
            }
        );
        assert_eq!(weekly.action, remind("분리수거 내놓기"));
        for (message, expr) in [
            ("매일 오전 7시 30분에 스트레칭하라고 알려줘", "30 7 * * *"),
            ("매일 아침에 물 마시라고 알려줘", "0 9 * * *"),
            ("아침마다 비타민 먹으라고 알려줘", "0 9 * * *"),
            (
                "평일마다 아침 7시에 도시락 싸라고 알려줘",
                "0 7 * * 1,2,3,4,5",
            ),
            ("주말마다 오전 10시에 청소하라고 알려줘", "0 10 * * 0,6"),
            ("매주 월·목 오후 6시에 운동하라고 알려줘", "0 18 * * 1,4"),
            (
                "매주 월요일과 목요일 저녁 6시에 운동하라고 알려줘",
                "0 18 * * 1,4",
            ),
            ("매주 월, 수, 금 7시에 수영 가라고 알려줘", "0 7 * * 1,3,5"),
            (
                "매주 월수금 저녁 8시에 기타 연습하라고 알려줘",
                "0 20 * * 1,3,5",
            ),
            ("금요일마다 저녁 6시에 장 보라고 알려줘", "0 18 * * 5"),
            ("매달 1일 오전 9시에 관리비 내라고 알려줘", "0 9 1 * *"),
            ("매월 25일 10시에 카드값 확인하라고 알려줘", "0 10 25 * *"),
            ("매일 밤 10시에 약 먹으라고 알려줘", "0 22 * * *"),
        ] {
            assert_eq!(cron(message), expr, "{message}");
        }
        let every = |message: &str| match when(message) {
            Schedule::Every { every_ms, .. } => every_ms / 60_000,
            other => panic!("{message}: {other:?}"),
        };
        assert_eq!(every("매시간 물 마시라고 알려줘"), 60);
        assert_eq!(every("30분마다 스트레칭하라고 알려줘"), 30);
        assert_eq!(every("2시간마다 환기하라고 알려줘"), 120);
        assert_eq!(every("한 시간마다 자세 바로 하라고 알려줘"), 60);
    }

    /// Hardening round five, finding 14: `24시 30분` fired at midnight,
    /// `128일 후 3시` was read as two times (the day count overflowed), and
    /// `매달 31일` was taken without a word about the months that have no
    /// 31st. Now: 00:30; day 128 at 3; the months it skips are said, and
    /// `매달 말일` fires on each month's last day.
    #[test]
    fn korean_times_past_midnight_far_days_and_month_ends() {
        // Now: Tuesday 24 November 2026, 15:00 in London.
        assert_eq!(
            when("24시 30분에 불 끄라고 알려줘"),
            at("2026-11-25T00:30:00Z")
        );
        assert_eq!(
            when("0시 30분에 불 끄라고 알려줘"),
            at("2026-11-25T00:30:00Z")
        );
        assert_eq!(when("24시에 불 끄라고 알려줘"), at("2026-11-25T00:00:00Z"));
        assert_eq!(
            when("127일 후 3시에 검진 받으라고 알려줘"),
            at("2027-03-31T14:00:00Z")
        );
        assert_eq!(
            when("128일 후 3시에 검진 받으라고 알려줘"),
            at("2027-04-01T14:00:00Z"),
            "15:00 in London, summer time"
        );
        assert_eq!(
            when("1000일 후 오전 9시에 기념일 챙기라고 알려줘"),
            at("2029-08-20T08:00:00Z")
        );
        assert_eq!(
            cron("매달 31일 오전 9시에 관리비 내라고 알려줘"),
            "0 9 31 * *"
        );
        let said = crate::phrases::describe(
            &when("매달 31일 오전 9시에 관리비 내라고 알려줘"),
            LONDON,
            crate::language::Language::Korean,
        );
        assert!(said.contains("2월·4월·6월·9월·11월은 건너뜁니다"), "{said}");
        assert!(said.contains("매달 말일"), "{said}");
        for message in [
            "매달 말일 오전 9시에 관리비 내라고 알려줘",
            "매월 말일에 9시 관리비 내라고 알려줘",
            "매달 마지막 날 오전 9시에 관리비 내라고 알려줘",
        ] {
            assert_eq!(cron(message), "0 9 L * *", "{message}");
        }
    }

    #[test]
    fn a_recurring_request_without_a_quoted_action_is_a_scheduled_question() {
        let weekly = scheduled("매주 월요일 아침 8시에 우리 가족에게 이번 주 일정 정리해서 알려줘");
        assert_eq!(
            weekly.action,
            Action::Ask("이번 주 일정 정리해서 알려줘.".into())
        );
        assert_eq!(weekly.audience, Audience::Room);
        let daily = scheduled("매일 아침 7시에 오늘 날씨 알려줘");
        assert_eq!(daily.action, Action::Ask("오늘 날씨 알려줘.".into()));
        assert_eq!(daily.audience, Audience::Me);
        // The household's room, however it is named.
        for message in [
            "가족 모두에게 매일 저녁 6시에 저녁 먹으라고 알려줘",
            "모두에게 내일 8시에 소풍 간다고 알려줘",
            "다들한테 30분 후에 출발한다고 알려줘",
        ] {
            assert_eq!(scheduled(message).audience, Audience::Room, "{message}");
        }
        assert_eq!(
            scheduled("나한테 10분 후에 확인하라고 알려줘").audience,
            Audience::Me
        );
    }

    #[test]
    fn lists_cancelling_forgetting_in_korean() {
        let add = |list: &str, items: &[&str]| {
            Intent::List(ListRequest::Add {
                list: list.into(),
                items: items.iter().map(|item| (*item).to_owned()).collect(),
            })
        };
        assert_eq!(
            intent("장보기 목록에 우유 추가해 줘"),
            add("장보기", &["우유"])
        );
        assert_eq!(
            intent("장보기 목록에 우유랑 계란 추가해줘"),
            add("장보기", &["우유", "계란"])
        );
        assert_eq!(
            intent("장보기 리스트에 우유, 계란 그리고 빵 넣어 줘"),
            add("장보기", &["우유", "계란", "빵"])
        );
        assert_eq!(
            intent("사과와 배를 장보기 목록에 추가해 주세요"),
            add("장보기", &["사과", "배"])
        );
        assert_eq!(
            intent("장보기목록에 두부 한 모 적어줘"),
            add("장보기", &["두부 한 모"])
        );
        let show = Intent::List(ListRequest::Show {
            list: "장보기".into(),
        });
        assert_eq!(intent("장보기 목록 보여줘"), show);
        assert_eq!(intent("장보기 목록에 뭐 있어?"), show);
        assert_eq!(intent("장보기 목록 알려 줘"), show);
        assert_eq!(
            intent("장보기 목록에서 우유 빼 줘"),
            Intent::List(ListRequest::Remove {
                list: "장보기".into(),
                items: vec!["우유".into()]
            })
        );
        assert_eq!(
            intent("장보기 목록에서 계란이랑 빵 지워줘"),
            Intent::List(ListRequest::Remove {
                list: "장보기".into(),
                items: vec!["계란".into(), "빵".into()]
            })
        );
        assert_eq!(
            recognize("장보기 목록에 추가해 줘", now(), LONDON),
            Some(Err(PhraseError::Empty(Missing::Items)))
        );
        assert_eq!(intent("알림 목록 보여줘"), Intent::Reminders);
        assert_eq!(intent("내 알림 뭐 있어?"), Intent::Reminders);
        assert_eq!(
            intent("3번 알림 취소해 줘"),
            Intent::Cancel(Which::Number(3))
        );
        assert_eq!(intent("알림 #4 취소"), Intent::Cancel(Which::Number(4)));
        assert_eq!(
            intent("할머니 전화 알림 취소해줘"),
            Intent::Cancel(Which::Text("할머니 전화".into()))
        );
        assert_eq!(intent("2번 잊어 줘"), Intent::Forget(Which::Number(2)));
        assert_eq!(intent("기억 5번 지워 줘"), Intent::Forget(Which::Number(5)));
        assert_eq!(
            intent("내 사물함 비밀번호는 잊어버려"),
            Intent::Forget(Which::Text("사물함 비밀번호".into()))
        );
        assert_eq!(
            recognize("잊어 줘", now(), LONDON),
            Some(Err(PhraseError::Empty(Missing::Which)))
        );
    }

    #[test]
    fn other_korean_messages_are_for_the_model() {
        for message in [
            "보일러는 어떻게 초기화해?",
            "내일 날씨 알려줘",
            "오늘 저녁 메뉴 추천해 줘",
            "금요일 회의 내용 정리해 줘",
            "안녕하세요",
            "사과가 몇 개 남았지?",
            "매일 운동하는 게 좋을까?",
            "",
        ] {
            assert_eq!(recognize(message, now(), LONDON), None, "{message:?}");
        }
    }

    #[test]
    fn unclear_korean_requests_say_what_is_missing() {
        let error = |message: &str| match recognize(message, now(), LONDON) {
            Some(Err(error)) => error,
            other => panic!("{message:?}: {other:?}"),
        };
        assert_eq!(error("할머니께 전화하라고 알려줘"), PhraseError::NoTime);
        assert_eq!(
            error("오늘 오전 9시에 약 먹으라고 알려줘"),
            PhraseError::Past
        );
        assert_eq!(
            error("오후 7시에 내일 8시에 전화하라고 알려줘"),
            PhraseError::TwoTimes
        );
        assert!(matches!(
            error("2월 30일에 전화하라고 알려줘"),
            PhraseError::BadTime(_)
        ));
        assert_eq!(
            error("내일 9시에 알려줘"),
            PhraseError::Empty(Missing::Remind)
        );
    }

    #[test]
    fn particles_are_taken_only_where_they_fit() {
        assert_eq!(without_particle("사과를"), "사과");
        assert_eq!(without_particle("빵을"), "빵");
        assert_eq!(without_particle("사과"), "사과");
        assert_eq!(
            joining_particle("사과"),
            None,
            "과 after a vowel is the word"
        );
        assert_eq!(joining_particle("빵과"), Some("빵"));
        assert_eq!(joining_particle("우유랑"), Some("우유"));
        assert_eq!(sino("삼십"), Some(30));
        assert_eq!(sino("십오"), Some(15));
        assert_eq!(sino("이십오"), Some(25));
        assert_eq!(reminder_text("할머니께 전화하라고"), "할머니께 전화하기");
        assert_eq!(reminder_text("약 먹으라고"), "약 먹기");
        assert_eq!(reminder_text("회의를"), "회의");
    }
}
