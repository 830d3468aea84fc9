//! What the assistant remembers, in OpenClaw's two layers: long-term memory
//! (`MEMORY.md`: facts, preferences, decisions) and daily notes
//! (`memory/YYYY-MM-DD.md`: running context). Entries are written when a
//! member says "remember that …" (long-term), when the model calls
//! `memory_write`, and before old turns are trimmed from a conversation
//! (a daily note of them, so nothing said is lost to the context window).
//! The gateway keeps entries in SQLite (sealed at rest when a key is set);
//! this module is their shape, their Markdown in OpenClaw's layout (what
//! members read, what `memory export` writes) and the import of an
//! existing OpenClaw workspace.

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::scope::Owner;

/// Longest entry, in characters.
pub const MAX_ENTRY_CHARS: usize = 2_000;
/// Most entries one owner keeps (the oldest daily notes go first past it).
pub const MAX_ENTRIES: usize = 5_000;

/// Which layer an entry is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    /// `MEMORY.md`: kept until deleted, never fades in search.
    LongTerm,
    /// `memory/YYYY-MM-DD.md`: fades in search with a 30-day half-life.
    Daily(Date),
}

impl Layer {
    /// Its file in OpenClaw's workspace layout.
    pub fn path(&self) -> String {
        match self {
            Layer::LongTerm => "MEMORY.md".to_owned(),
            Layer::Daily(date) => format!("memory/{date}.md"),
        }
    }

    /// The layer of an OpenClaw workspace file: `MEMORY.md`,
    /// `memory/YYYY-MM-DD.md` or `memory/YYYY-MM-DD-slug.md`.
    pub fn of_path(path: &str) -> Option<Layer> {
        let path = path.trim_start_matches("./");
        if path.eq_ignore_ascii_case("MEMORY.md") {
            return Some(Layer::LongTerm);
        }
        let name = path.strip_prefix("memory/")?.strip_suffix(".md")?;
        let date = name.get(..10)?;
        if name.len() > 10 && !name[10..].starts_with('-') {
            return None;
        }
        date.parse().ok().map(Layer::Daily)
    }

    /// The day an entry's relevance fades from, if it fades.
    pub fn dated(&self) -> Option<Date> {
        match self {
            Layer::LongTerm => None,
            Layer::Daily(date) => Some(*date),
        }
    }
}

/// Why an entry was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The member said "remember that …".
    Asked,
    /// The model called `memory_write`.
    Model,
    /// Turns trimmed from a conversation.
    Trimmed,
    /// Imported from an OpenClaw workspace.
    Imported,
}

impl Source {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Asked => "asked",
            Source::Model => "model",
            Source::Trimmed => "trimmed",
            Source::Imported => "imported",
        }
    }

    /// The source stored as `text`.
    pub fn parse(text: &str) -> Option<Source> {
        [
            Source::Asked,
            Source::Model,
            Source::Trimmed,
            Source::Imported,
        ]
        .into_iter()
        .find(|source| source.as_str() == text)
    }
}

/// One remembered thing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Its id (what `/forget` takes).
    pub id: i64,
    /// Whose it is.
    pub owner: Owner,
    /// Its layer.
    pub layer: Layer,
    /// What is remembered.
    pub text: String,
    /// When it was written.
    pub written_at: Timestamp,
    /// Why.
    pub source: Source,
}

/// Why an entry was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MemoryError {
    /// Nothing to remember.
    #[error("there is nothing to remember")]
    Empty,
    /// Over [`MAX_ENTRY_CHARS`].
    #[error("a memory may be at most {MAX_ENTRY_CHARS} characters")]
    TooLong,
    /// A file that is not in OpenClaw's memory layout.
    #[error("{0} is not MEMORY.md or memory/YYYY-MM-DD.md")]
    NotMemory(String),
    /// The owner keeps [`MAX_ENTRIES`] long-term entries already.
    #[error("this memory is full ({MAX_ENTRIES} entries kept for good); forget some first")]
    Full,
}

/// Whether `a` and `b` say the same thing as memory entries: equal once
/// letter case, runs of white space and the sentence's closing marks are
/// set aside ("The bike code is 4711." and "the bike code is  4711").
/// Remembering it again keeps the one entry.
pub fn same_fact(a: &str, b: &str) -> bool {
    plain_words(a).eq(plain_words(b))
}

/// A fact's words as [`same_fact`] compares them.
fn plain_words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.trim_end_matches(|c: char| c.is_whitespace() || matches!(c, '.' | '!' | '~' | '。' | '…'))
        .split_whitespace()
        .map(str::to_lowercase)
}

/// What a fact is about, when it says so plainly: the words before its
/// first "is"/"are"/"was"/"were" (English, a leading "the", "our" or "my"
/// set aside), or up to the first word ending in the topic particle 은/는
/// (Korean), in lower case. None for a fact about "it", "this", "that" or
/// "there", or one without such a verb: those are never taken for an
/// update of another.
pub fn subject(fact: &str) -> Option<String> {
    let words: Vec<String> = fact.split_whitespace().map(str::to_lowercase).collect();
    let english = words
        .iter()
        .position(|word| matches!(word.as_str(), "is" | "are" | "was" | "were"))
        .map(|at| {
            let start = usize::from(
                words
                    .first()
                    .is_some_and(|first| matches!(first.as_str(), "the" | "our" | "my")),
            );
            words[start.min(at)..at].to_vec()
        });
    let korean = || {
        let at = words
            .iter()
            .position(|word| word.chars().count() > 1 && word.ends_with(['은', '는']))?;
        let mut said = words[..=at].to_vec();
        let last = said.last_mut()?;
        last.pop();
        Some(said)
    };
    let said = english.or_else(korean)?;
    let vague = [
        "it", "this", "that", "there", "he", "she", "they", "we", "i", "you", "저", "나", "제",
        "우리", "그", "그녀", "이것", "그것", "저것", "여기", "거기",
    ];
    match said.as_slice() {
        [] => None,
        [only] if vague.contains(&only.as_str()) => None,
        _ => Some(said.join(" ")),
    }
}

/// How a new entry stands to one kept before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relation {
    /// It says the same ([`same_fact`]): keep the one entry.
    Same,
    /// A new value of the same attribute ("the wifi password is rose-7"
    /// after "The wifi password is tulip-42."): it replaces the old one.
    Replaces,
    /// About the same person or thing but not plainly the same attribute
    /// ("Ben is at soccer practice until 5" beside "Ben is allergic to
    /// peanuts"), or the old one is about health or safety: both are kept,
    /// and the member is told what else is kept.
    Beside,
    /// About something else.
    Unrelated,
}

/// How `new` stands to `old`. A replacement needs more than the same
/// grammatical subject: the subject must name an attribute (a code, a
/// password, a time, an address…, [`names_an_attribute`]), and the old
/// entry must not be about health or safety ([`about_health_or_safety`]),
/// which is never given up for another entry.
pub fn relation(old: &str, new: &str) -> Relation {
    NewFact::read(new).relation_to(old)
}

/// A new entry read once, to be set beside each entry kept before
/// ([`relation`] for many: an owner may keep [`MAX_ENTRIES`]).
pub struct NewFact {
    plain: Vec<String>,
    subject: Option<String>,
}

impl NewFact {
    /// `new`, read.
    pub fn read(new: &str) -> NewFact {
        NewFact {
            plain: plain_words(new).collect(),
            subject: subject(new),
        }
    }

    /// How it stands to `old` ([`relation`]).
    pub fn relation_to(&self, old: &str) -> Relation {
        if plain_words(old).eq(self.plain.iter().cloned()) {
            return Relation::Same;
        }
        let Some(new_about) = &self.subject else {
            return Relation::Unrelated;
        };
        let Some(about) = subject(old) else {
            return Relation::Unrelated;
        };
        if about != *new_about {
            return Relation::Unrelated;
        }
        if names_an_attribute(&about) && !about_health_or_safety(old) {
            Relation::Replaces
        } else {
            Relation::Beside
        }
    }
}

/// Whether `new` replaces `old` ([`relation`] says [`Relation::Replaces`]).
pub fn updates(old: &str, new: &str) -> bool {
    relation(old, new) == Relation::Replaces
}

/// Words that name an attribute of someone or something, which has one
/// value at a time: the last word of a subject that is one of these (or,
/// in Korean, ends in one) is about a value that a new one replaces.
const ATTRIBUTES: &[&str] = &[
    "code",
    "codes",
    "password",
    "passcode",
    "passphrase",
    "pin",
    "combination",
    "number",
    "phone",
    "email",
    "address",
    "time",
    "date",
    "day",
    "birthday",
    "anniversary",
    "appointment",
    "name",
    "username",
    "login",
    "size",
    "spot",
    "location",
    "colour",
    "color",
    "plate",
    "model",
    "height",
    "weight",
    "price",
    "deadline",
    "schedule",
    "ssid",
    "비밀번호",
    "비번",
    "암호",
    "번호",
    "코드",
    "시간",
    "날짜",
    "주소",
    "생일",
    "이름",
];

/// More Korean attribute words (a subject's last word ending in one).
const KOREAN_ATTRIBUTES: &[&str] = &[
    "시각",
    "요일",
    "기념일",
    "아이디",
    "이메일",
    "위치",
    "자리",
    "사이즈",
    "치수",
    "색깔",
    "약속",
    "예약",
];

/// Whether `subject` (as [`subject`] gives it) names an attribute: its
/// last word, without a possessive `'s`, is an attribute word ("wifi
/// password", "ben's bike code", "우리 집 와이파이 비밀번호", "현관비번").
pub fn names_an_attribute(subject: &str) -> bool {
    let Some(last) = subject.split_whitespace().last() else {
        return false;
    };
    let last = last.trim_end_matches("'s").trim_end_matches('\'');
    ATTRIBUTES.contains(&last)
        || ATTRIBUTES
            .iter()
            .chain(KOREAN_ATTRIBUTES.iter())
            .filter(|word| !word.is_ascii())
            .any(|word| last.ends_with(word))
}

/// Whether `fact` is about someone's health or safety (an allergy, a
/// medicine, a condition, what to do in an emergency), in English or
/// Korean: such an entry is never replaced by another.
pub fn about_health_or_safety(fact: &str) -> bool {
    const ENGLISH: &[&str] = &[
        "allerg",
        "anaphyla",
        "asthma",
        "diabet",
        "epipen",
        "epi-pen",
        "inhaler",
        "insulin",
        "medication",
        "medicine",
        "meds",
        "pill",
        "dose",
        "seizure",
        "epilep",
        "blood type",
        "pacemaker",
        "emergency",
        "poison",
        "intoleran",
        "heart condition",
        "celiac",
    ];
    const KOREAN: &[&str] = &[
        "알레르기",
        "알러지",
        "천식",
        "당뇨",
        "인슐린",
        "에피펜",
        "복용",
        "발작",
        "응급",
        "혈액형",
        "처방",
        "지병",
        "심장",
        "독성",
    ];
    let lower = fact.to_lowercase();
    if ENGLISH
        .iter()
        .chain(KOREAN.iter())
        .any(|word| lower.contains(word))
    {
        return true;
    }
    // 약 (medicine) as a word of its own, with or without a particle; not
    // the first syllable of 약속 (an appointment).
    lower.split_whitespace().any(|word| {
        word.strip_prefix('약').is_some_and(|rest| {
            ["", "을", "은", "이", "도", "만", "는", "과", "하고"].contains(&rest)
        })
    })
}

/// The entries that give way so one more fits where `kept` (each entry's
/// layer and id) are an owner's, at most `limit`: none while there is room;
/// else the oldest daily notes (they fade anyway); [`MemoryError::Full`]
/// when only long-term entries are left to give way.
pub fn making_room(kept: &[(Layer, i64)], limit: usize) -> Result<Vec<i64>, MemoryError> {
    let over = (kept.len() + 1).saturating_sub(limit);
    if over == 0 {
        return Ok(Vec::new());
    }
    let mut daily: Vec<(Date, i64)> = kept
        .iter()
        .filter_map(|(layer, id)| match layer {
            Layer::Daily(date) => Some((*date, *id)),
            Layer::LongTerm => None,
        })
        .collect();
    if daily.len() < over {
        return Err(MemoryError::Full);
    }
    daily.sort_unstable();
    Ok(daily.into_iter().take(over).map(|(_, id)| id).collect())
}

/// The text to store for `text`: trimmed, control characters other than
/// line ends removed, within the limit.
pub fn check(text: &str) -> Result<String, MemoryError> {
    let cleaned: String = text
        .trim()
        .chars()
        .filter(|c| *c == '\n' || !c.is_control())
        .collect();
    if cleaned.is_empty() {
        return Err(MemoryError::Empty);
    }
    if cleaned.chars().count() > MAX_ENTRY_CHARS {
        return Err(MemoryError::TooLong);
    }
    Ok(cleaned)
}

/// One layer's entries as the Markdown file OpenClaw keeps: a title, then
/// one list item per entry (later lines indented under it).
pub fn render(layer: &Layer, entries: &[&Entry]) -> String {
    let mut text = match layer {
        Layer::LongTerm => "# Memory\n\n".to_owned(),
        Layer::Daily(date) => format!("# {date}\n\n"),
    };
    for entry in entries {
        let mut lines = entry.text.lines();
        text.push_str("- ");
        text.push_str(lines.next().unwrap_or(""));
        text.push('\n');
        for line in lines {
            text.push_str("  ");
            text.push_str(line);
            text.push('\n');
        }
    }
    text
}

/// The entries of an OpenClaw memory file at `path` (relative to its
/// workspace): list items, or paragraphs where there is no list; headings
/// are not entries.
pub fn import(path: &str, content: &str) -> Result<Vec<(Layer, String)>, MemoryError> {
    let layer = Layer::of_path(path).ok_or_else(|| MemoryError::NotMemory(path.to_owned()))?;
    let mut entries: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    let finish = |current: &mut Option<String>, entries: &mut Vec<String>| {
        if let Some(text) = current.take()
            && let Ok(text) = check(&text)
        {
            entries.push(text);
        }
    };
    for line in content.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            finish(&mut current, &mut entries);
            continue;
        }
        if let Some(item) = list_item(trimmed)
            && !line.starts_with("  ")
        {
            finish(&mut current, &mut entries);
            current = Some(item.to_owned());
            continue;
        }
        match &mut current {
            Some(text) => {
                text.push('\n');
                text.push_str(trimmed);
            }
            None => current = Some(trimmed.to_owned()),
        }
    }
    finish(&mut current, &mut entries);
    Ok(entries.into_iter().map(|text| (layer, text)).collect())
}

/// The text of a Markdown list item (`- x`, `* x`, `1. x`).
fn list_item(line: &str) -> Option<&str> {
    if let Some(rest) = line.strip_prefix("- ").or_else(|| line.strip_prefix("* ")) {
        return Some(rest.trim());
    }
    let digits = line.chars().take_while(char::is_ascii_digit).count();
    if digits > 0 {
        let rest = &line[digits..];
        if let Some(rest) = rest.strip_prefix(". ").or_else(|| rest.strip_prefix(") ")) {
            return Some(rest.trim());
        }
    }
    None
}

/// The daily note written for turns trimmed from a conversation: each
/// question and answer, shortened, so they stay findable.
pub fn trimmed_note(turns: &[(String, String)]) -> Option<String> {
    const EACH: usize = 300;
    let shorten = |text: &str| -> String {
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if flat.chars().count() <= EACH {
            flat
        } else {
            flat.chars().take(EACH).collect::<String>() + "…"
        }
    };
    let mut note = String::from("Earlier in a conversation:");
    for (question, answer) in turns {
        let line = format!("\nQ: {}\nA: {}", shorten(question), shorten(answer));
        if note.chars().count() + line.chars().count() > MAX_ENTRY_CHARS {
            break;
        }
        note.push_str(&line);
    }
    (note.contains("\nQ: ")).then_some(note)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_value_for_the_same_thing_updates_it() {
        assert!(updates(
            "The wifi password is tulip-42.",
            "the wifi password is rose-7"
        ));
        assert!(updates(
            "our wifi password is tulip-42",
            "The WiFi password was rose-7"
        ));
        assert!(updates(
            "와이파이 비밀번호는 tulip-42야",
            "와이파이 비밀번호는 rose-7이야"
        ));
        assert_eq!(
            subject("우리 집 와이파이 비밀번호는 tulip-42야").as_deref(),
            Some("우리 집 와이파이 비밀번호")
        );
        // The same fact is not an update; another thing is not either.
        assert!(!updates("the code is 4711", "The code is 4711."));
        assert!(!updates(
            "the bike lock code is 4711",
            "the gate code is 2580"
        ));
        // Nothing said plainly about one thing: never an update.
        assert!(!updates("it is raining", "it is sunny"));
        assert_eq!(
            relation("저는 채식주의자예요", "저는 7시에 퇴근해요"),
            Relation::Unrelated
        );
        assert!(!updates("ben likes tea", "ben likes coffee"));
        assert_eq!(subject("is it raining"), None);
        assert_eq!(subject("는"), None);
    }

    /// Hardening round five, finding 5: "Ben is at soccer practice until
    /// 5" replaced "Ben is allergic to peanuts", and three facts about "the
    /// car is …" collapsed into the last. The same subject is not enough:
    /// the subject must name an attribute, and health or safety facts are
    /// never replaced.
    #[test]
    fn a_new_fact_about_someone_keeps_the_others() {
        for (old, new) in [
            (
                "Ben is allergic to peanuts",
                "Ben is at soccer practice until 5",
            ),
            ("Mom is diabetic", "Mom is visiting on Sunday"),
            (
                "The car is in the garage",
                "The car is due for a service in May",
            ),
            ("the car is blue", "The car is in the garage"),
            ("벤은 땅콩 알레르기가 있어", "벤은 5시까지 축구 연습이야"),
            ("엄마는 매일 아침 혈압약을 드셔", "엄마는 일요일에 오셔"),
        ] {
            assert_eq!(relation(old, new), Relation::Beside, "{old} / {new}");
            assert!(!updates(old, new), "{old} / {new}");
        }
        // A vague subject relates nothing.
        for (old, new) in [
            ("저는 땅콩 알레르기가 있어요", "저는 7시에 퇴근해요"),
            ("I am allergic to shellfish", "I am at the office until 6"),
        ] {
            assert_eq!(relation(old, new), Relation::Unrelated, "{old} / {new}");
        }
        // An attribute's new value still replaces it...
        for (old, new) in [
            ("Ben's bike code is 4711", "ben's bike code is 2580"),
            ("The garage code is 1234", "the garage code is 9876"),
            (
                "The dentist appointment is on Monday",
                "the dentist appointment is on Friday",
            ),
            ("현관 비밀번호는 1234야", "현관 비밀번호는 5678이야"),
            ("현관비번은 1234야", "현관비번은 5678이야"),
            ("치과 예약은 월요일이야", "치과 예약은 금요일이야"),
        ] {
            assert_eq!(relation(old, new), Relation::Replaces, "{old} / {new}");
        }
        // ...unless the old one is about health or safety.
        for (old, new) in [
            (
                "Ben's allergy medicine time is 8 am",
                "ben's allergy medicine time is 9 am",
            ),
            (
                "Mia's inhaler spot is the kitchen drawer",
                "Mia's inhaler spot is her backpack",
            ),
            ("할머니 약 시간은 8시야", "할머니 약 시간은 9시야"),
        ] {
            assert_eq!(relation(old, new), Relation::Beside, "{old} / {new}");
        }
        assert!(about_health_or_safety("벤은 약을 먹어야 해"));
        assert!(
            !about_health_or_safety("치과 약속은 월요일이야"),
            "약속 is no medicine"
        );
    }

    #[test]
    fn the_same_fact_is_the_same_whatever_its_case_spaces_and_full_stop() {
        assert!(same_fact(
            "The bike lock code is 4711.",
            "the bike lock code is  4711"
        ));
        assert!(same_fact(
            "사물함 비밀번호는 4711이야~",
            "사물함  비밀번호는 4711이야"
        ));
        assert!(!same_fact(
            "the bike lock code is 4711",
            "the bike lock code is 4712"
        ));
        assert!(!same_fact("the code is 4711", "is the code 4711?"));
    }

    fn entry(text: &str, layer: Layer) -> Entry {
        Entry {
            id: 1,
            owner: Owner::Member("ada".into()),
            layer,
            text: text.into(),
            written_at: Timestamp::UNIX_EPOCH,
            source: Source::Asked,
        }
    }

    #[test]
    fn layers_are_openclaw_s_files() {
        let day: Date = "2026-11-24".parse().unwrap();
        assert_eq!(Layer::LongTerm.path(), "MEMORY.md");
        assert_eq!(Layer::Daily(day).path(), "memory/2026-11-24.md");
        assert_eq!(
            Layer::of_path("memory/2026-11-24.md"),
            Some(Layer::Daily(day))
        );
        assert_eq!(
            Layer::of_path("memory/2026-11-24-session-flush.md"),
            Some(Layer::Daily(day))
        );
        assert_eq!(Layer::of_path("./MEMORY.md"), Some(Layer::LongTerm));
        assert_eq!(Layer::of_path("memory/2026-11-24x.md"), None);
        assert_eq!(Layer::of_path("SOUL.md"), None);
        assert_eq!(Layer::of_path("memory/../../etc/passwd.md"), None);
    }

    #[test]
    fn rendered_memory_reads_back_the_same() {
        let entries = [
            entry("Ben is allergic to peanuts", Layer::LongTerm),
            entry(
                "The bike lock code is 4711\n(the blue bike)",
                Layer::LongTerm,
            ),
        ];
        let refs: Vec<&Entry> = entries.iter().collect();
        let text = render(&Layer::LongTerm, &refs);
        assert_eq!(
            text,
            "# Memory\n\n- Ben is allergic to peanuts\n- The bike lock code is 4711\n  (the blue bike)\n"
        );
        let back = import("MEMORY.md", &text).unwrap();
        let texts: Vec<&str> = back.iter().map(|(_, text)| text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "Ben is allergic to peanuts",
                "The bike lock code is 4711\n(the blue bike)"
            ]
        );
    }

    #[test]
    fn an_openclaw_workspace_file_imports_items_and_paragraphs() {
        let memory = "# Memory\n\n## People\n\n* Ada likes tea\n1. Ben walks the dog\n\nWe moved in\nin 2019.\n";
        let items = import("MEMORY.md", memory).unwrap();
        assert_eq!(
            items
                .iter()
                .map(|(_, text)| text.as_str())
                .collect::<Vec<_>>(),
            [
                "Ada likes tea",
                "Ben walks the dog",
                "We moved in\nin 2019."
            ]
        );
        assert!(matches!(
            import("notes/todo.md", "x"),
            Err(MemoryError::NotMemory(_))
        ));
    }

    #[test]
    fn entries_are_cleaned_and_bounded() {
        assert_eq!(
            check("  tea\u{7}, not coffee \n"),
            Ok("tea, not coffee".into())
        );
        assert_eq!(check(" \n "), Err(MemoryError::Empty));
        assert_eq!(
            check(&"x".repeat(MAX_ENTRY_CHARS + 1)),
            Err(MemoryError::TooLong)
        );
    }

    #[test]
    fn trimmed_turns_become_one_bounded_note() {
        let turns = vec![
            (
                "What is the wifi password?".to_owned(),
                "It is on the router.".to_owned(),
            ),
            ("x".repeat(1_000), "y".repeat(1_000)),
        ];
        let note = trimmed_note(&turns).unwrap();
        assert!(note.starts_with(
            "Earlier in a conversation:\nQ: What is the wifi password?\nA: It is on the router."
        ));
        assert!(note.chars().count() <= MAX_ENTRY_CHARS);
        assert!(note.contains("…"));
        assert_eq!(trimmed_note(&[]), None);
    }

    #[test]
    fn a_full_memory_gives_way_with_its_oldest_daily_notes_only() {
        let day = |text: &str| Layer::Daily(text.parse().unwrap());
        assert_eq!(making_room(&[(Layer::LongTerm, 1)], 3), Ok(vec![]));
        let kept = [
            (Layer::LongTerm, 1),
            (day("2026-11-20"), 2),
            (day("2026-11-01"), 3),
        ];
        assert_eq!(making_room(&kept, 3), Ok(vec![3]), "the oldest note goes");
        assert_eq!(
            making_room(&kept, 2),
            Ok(vec![3, 2]),
            "back under the limit"
        );
        assert_eq!(
            making_room(&[(Layer::LongTerm, 1), (Layer::LongTerm, 2)], 2),
            Err(MemoryError::Full),
            "long-term entries never go by themselves"
        );
    }
}
