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

mod lexer;
mod numbers;
mod times;

use lexer::*;
use numbers::*;
use times::*;

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
