//! The assistant's own sentences, in English and Korean: what it says when
//! it has done something itself (remembered, scheduled, listed, cancelled,
//! forgotten), refused it, delivers a reminder, cites its sources or
//! answers a chat command. The model's words are the model's; these are
//! the ones the assistant writes. Pure.

use crate::api::{Answer, Target};
use crate::language::Language;
use crate::lists::{self, ListError};
use crate::memory::{MAX_ENTRIES, MAX_ENTRY_CHARS, MemoryError};
use crate::phrases::{Missing, PhraseError};

/// Why a document was not read, in `language`: the reason as the gateway
/// stored it (an [`ExtractError`](crate::extract::ExtractError) or the
/// folder's own, in English), said again in Korean; one it does not know
/// (a PDF reader's own words) is kept as it is after a Korean lead.
pub fn document_refusal(language: Language, reason: &str) -> String {
    use crate::extract::{LINK_REFUSAL, MAX_PAGES, MAX_TEXT_CHARS, UNREADABLE};
    if language == Language::English {
        return reason.to_owned();
    }
    let between = |before: &str, after: &str| -> Option<String> {
        Some(reason.strip_prefix(before)?.strip_suffix(after)?.to_owned())
    };
    if let Some(sizes) = between("it is ", " a document may have")
        && let Some((bytes, max)) = sizes.split_once(" bytes, over the ")
    {
        return format!("{bytes}바이트로, 문서 하나의 한도({max}바이트)를 넘어요");
    }
    if let Some(offset) = between("it is not UTF-8 text (invalid byte at offset ", ")") {
        return format!("UTF-8 글이 아니에요 ({offset}번째 바이트가 잘못됐어요)");
    }
    if let Some(offset) = between("it holds binary data (a NUL byte at offset ", ")") {
        return format!("글이 아닌 데이터가 들어 있어요 ({offset}번째 바이트가 NUL이에요)");
    }
    if let Some(why) = reason.strip_prefix("the PDF cannot be read: ") {
        return format!("PDF를 읽을 수 없어요: {why}");
    }
    if reason == crate::extract::ExtractError::Empty.to_string() {
        return "글이 없어요 (스캔한 PDF는 먼저 글자 인식이 필요해요)".into();
    }
    if reason == format!("it holds more than {MAX_TEXT_CHARS} characters of text") {
        return format!("글이 {MAX_TEXT_CHARS}자를 넘어요");
    }
    if reason == format!("it has more than {MAX_PAGES} pages") {
        return format!("{MAX_PAGES}쪽을 넘어요");
    }
    if reason == LINK_REFUSAL {
        return "심볼릭 링크예요. 링크는 따라가지 않으니 문서 자체를 폴더에 넣어 주세요".into();
    }
    if reason == UNREADABLE {
        return "파일을 읽을 수 없어요".into();
    }
    if let Some(why) = reason.strip_prefix(&format!("{UNREADABLE}: ")) {
        return format!("파일을 읽을 수 없어요: {why}");
    }
    format!("읽지 못했어요: {reason}")
}

/// After "remember that …": in the member's own conversation, or in a room.
pub fn remembered(language: Language, in_room: bool) -> &'static str {
    match (language, in_room) {
        (Language::English, false) => "I'll remember that.",
        (Language::English, true) => "I'll remember that for everyone in this room.",
        (Language::Korean, false) => "기억해 둘게요.",
        (Language::Korean, true) => "이 방의 모두를 위해 기억해 둘게요.",
    }
}

/// After "remember that …" of what is already remembered (kept once).
pub fn already_remembered(language: Language) -> &'static str {
    match language {
        Language::English => "I already remember that.",
        Language::Korean => "이미 기억하고 있어요.",
    }
}

/// After "remember that …" of something new about a person or thing the
/// member's memory already holds other facts about (`kept`, newest first):
/// both are kept, and the member sees what else is kept.
pub fn remembered_beside(language: Language, in_room: bool, kept: &[String]) -> String {
    let list = kept.join(" / ");
    let first = remembered(language, in_room);
    match language {
        Language::English => format!("{first} I kept what I already knew about that too: {list}."),
        Language::Korean => format!("{first} 전에 기억한 것도 그대로 두었어요: {list}."),
    }
}

/// After "remember that …" of a new value for something remembered: the
/// old entry is replaced, and what it said is shown once more.
pub fn updated(language: Language, was: &str) -> String {
    match language {
        Language::English => format!("I've updated that (it was: {was})."),
        Language::Korean => format!("기억을 고쳤어요 (전에는: {was})."),
    }
}

/// When the assistant's store failed (logged where it failed).
pub fn unavailable(language: Language) -> &'static str {
    match language {
        Language::English => "the assistant's memory could not be used just now",
        Language::Korean => "지금은 어시스턴트의 기억을 쓸 수 없어요",
    }
}

/// After entry `id` was forgotten.
pub fn forgotten(language: Language, id: i64) -> String {
    match language {
        Language::English => format!("Forgotten (#{id})."),
        Language::Korean => format!("잊었어요 (#{id})."),
    }
}

/// When there is no entry `id` here.
pub fn no_memory(language: Language, id: i64) -> String {
    match language {
        Language::English => format!("There is no memory #{id} here."),
        Language::Korean => format!("여기에는 {id}번 기억이 없어요."),
    }
}

/// When nothing remembered here says what the member named.
pub fn nothing_remembered_like(language: Language, text: &str) -> String {
    match language {
        Language::English => {
            format!(
                "I remember nothing here about \u{201c}{text}\u{201d}. /memory lists what I do."
            )
        }
        Language::Korean => format!(
            "\u{201c}{text}\u{201d}에 대해 기억하는 것이 없어요. /memory 로 기억하는 것을 볼 수 있어요."
        ),
    }
}

/// When several entries (or reminders) say it: which one, by number.
pub fn which_one(language: Language, found: &[(i64, String)], command: &str) -> String {
    let mut text = match language {
        Language::English => "Which one? Say its number:".to_owned(),
        Language::Korean => "어느 것인가요? 번호로 말해 주세요:".to_owned(),
    };
    for (id, said) in found {
        text.push_str(&format!("\n#{id} {said}"));
    }
    text.push_str(&match language {
        Language::English => format!("\n(/{command} N)"),
        Language::Korean => format!("\n(/{command} 번호)"),
    });
    text
}

/// After a reminder was made: `to_room` when it goes to everyone here,
/// `when` as [`crate::phrases::describe`] says it, `recurs` when it repeats.
pub fn reminder_made(
    language: Language,
    to_room: bool,
    when: &str,
    recurs: bool,
    text: &str,
) -> String {
    match language {
        Language::English => {
            let to_whom = if to_room { "everyone here" } else { "you" };
            let when = if recurs {
                when.to_owned()
            } else {
                format!("on {when}")
            };
            format!("I'll remind {to_whom} {when}: {text}")
        }
        Language::Korean => {
            let to_whom = if to_room {
                "이 방의 모두에게 "
            } else {
                ""
            };
            format!("{}{to_whom}알려 드릴게요: {text}", korean_when(when))
        }
    }
}

/// After a scheduled question was made.
pub fn question_made(language: Language, when: &str, recurs: bool, text: &str) -> String {
    match language {
        Language::English => {
            let when = if recurs {
                when.to_owned()
            } else {
                format!("on {when}")
            };
            format!("I'll answer this {when}: {text}")
        }
        Language::Korean => format!("{}답해 드릴게요: {text}", korean_when(when)),
    }
}

/// A Korean time followed by what happens then: "매주 월요일 오전 8시에 ",
/// "30분마다 ".
fn korean_when(when: &str) -> String {
    if when.ends_with("마다") || when == "매시간" || when == "매분" {
        format!("{when} ")
    } else {
        format!("{when}에 ")
    }
}

/// A reminder as delivered.
pub fn reminder(language: Language, text: &str) -> String {
    match language {
        Language::English => format!("\u{23f0} Reminder: {text}"),
        Language::Korean => format!("\u{23f0} 알림: {text}"),
    }
}

/// What is delivered when a scheduled question found no answer.
pub fn question_unanswered(language: Language, question: &str, why: &str) -> String {
    match language {
        Language::English => {
            format!("I could not answer the scheduled question \u{201c}{question}\u{201d}: {why}")
        }
        Language::Korean => {
            format!("예약된 질문 \u{201c}{question}\u{201d}에 답하지 못했어요: {why}")
        }
    }
}

/// Why a scheduled question found no answer: no model answered.
pub fn no_model(language: Language) -> &'static str {
    match language {
        Language::English => "no model answered.",
        Language::Korean => "답할 수 있는 모델이 없었어요.",
    }
}

/// After reminder `id` was cancelled.
pub fn cancelled(language: Language, id: i64) -> String {
    match language {
        Language::English => format!("Reminder #{id} is cancelled."),
        Language::Korean => format!("{id}번 알림을 취소했어요."),
    }
}

/// When the member has no reminder `id`.
pub fn no_reminder(language: Language, id: i64) -> String {
    match language {
        Language::English => format!("There is no reminder #{id} of yours."),
        Language::Korean => format!("{id}번 알림은 없어요."),
    }
}

/// When none of the member's reminders says what they named.
pub fn no_reminder_like(language: Language, text: &str) -> String {
    match language {
        Language::English => {
            format!("You have no reminder about \u{201c}{text}\u{201d}. /reminders lists them.")
        }
        Language::Korean => format!(
            "\u{201c}{text}\u{201d}에 대한 알림은 없어요. /reminders 로 알림을 볼 수 있어요."
        ),
    }
}

/// When reminders are off on this hub.
pub fn reminders_off(language: Language) -> &'static str {
    match language {
        Language::English => "Reminders are turned off on this hub (cron.enabled).",
        Language::Korean => "이 허브에서는 알림이 꺼져 있어요 (cron.enabled).",
    }
}

/// When the member keeps `most` reminders already.
pub fn too_many_reminders(language: Language, most: i64) -> String {
    match language {
        Language::English => format!("You already have {most} reminders; cancel some first."),
        Language::Korean => format!("알림이 이미 {most}개 있어요. 먼저 몇 개를 취소해 주세요."),
    }
}

/// After items were added to a list.
pub fn list_added(language: Language, added: usize, list: &str) -> String {
    match language {
        Language::English => format!("Added {added} to the {list} list."),
        Language::Korean => format!("{list} 목록에 {added}개를 추가했어요."),
    }
}

/// After items were taken off a list.
pub fn list_removed(language: Language, removed: usize, asked: usize, list: &str) -> String {
    match language {
        Language::English => format!("Removed {removed} of {asked} from the {list} list."),
        Language::Korean => format!("{list} 목록에서 {asked}개 중 {removed}개를 뺐어요."),
    }
}

/// A list for people to read.
pub fn list(language: Language, name: &str, items: &[String]) -> String {
    match language {
        Language::English => lists::render(name, items),
        Language::Korean => lists::render_as(
            &format!("{name} 목록:"),
            &format!("{name} 목록이 비어 있어요."),
            items,
        ),
    }
}

/// Why a list or item was refused.
pub fn list_error(language: Language, error: &ListError) -> String {
    match language {
        Language::English => error.to_string(),
        Language::Korean => match error {
            ListError::Empty => "목록 이름과 항목에는 글자가 있어야 해요".into(),
            ListError::TooLong => {
                format!("목록 이름이나 항목은 {}자까지예요", lists::MAX_ITEM_CHARS)
            }
            ListError::Full => format!("목록에 이미 {}개가 있어요", lists::MAX_ITEMS),
            ListError::TooMany => format!("목록이 이미 {}개 있어요", lists::MAX_LISTS),
        },
    }
}

/// Why a memory could not be written.
pub fn memory_error(language: Language, error: &MemoryError) -> String {
    match language {
        Language::English => error.to_string(),
        Language::Korean => match error {
            MemoryError::Empty => "기억할 내용이 없어요".into(),
            MemoryError::TooLong => format!("기억은 {MAX_ENTRY_CHARS}자까지예요"),
            MemoryError::NotMemory(path) => {
                format!("{path}는 MEMORY.md나 memory/YYYY-MM-DD.md가 아니에요")
            }
            MemoryError::Full => format!(
                "기억이 가득 찼어요 (오래 기억하는 항목 {MAX_ENTRIES}개). 먼저 몇 개를 잊게 해 주세요"
            ),
        },
    }
}

/// Why an everyday request could not be carried out.
pub fn phrase_error(language: Language, error: &PhraseError) -> String {
    match language {
        Language::English => error.to_string(),
        Language::Korean => match error {
            PhraseError::NoTime => "언제인지 모르겠어요. \u{201c}오후 7시에\u{201d}, \u{201c}내일 8시 반에\u{201d}, \u{201c}20분 후에\u{201d}, \u{201c}매주 월요일 8시에\u{201d}처럼 말해 주세요.".into(),
            PhraseError::TwoTimes => "시간이 두 개 있어요. 하나만 말해 주세요.".into(),
            PhraseError::Past => "이미 지난 시간이에요.".into(),
            PhraseError::Empty(missing) => match missing {
                Missing::Remember => "무엇을 기억할지 모르겠어요.",
                Missing::Remind => "무엇을 알려 드릴지 모르겠어요.",
                Missing::Do => "그때 무엇을 할지 모르겠어요.",
                Missing::Items => "어떤 항목인지 모르겠어요.",
                Missing::Which => "어느 것인지 모르겠어요. 번호로 말해 주세요.",
            }
            .into(),
            PhraseError::BadTime(what) => format!("{what}은(는) 제가 아는 시간이나 날짜가 아니에요."),
            PhraseError::Schedule(error) => error.to_string(),
        },
    }
}

/// The footer naming the documents an answer came from.
pub fn sources(language: Language, citations: &[&str]) -> String {
    let label = match language {
        Language::English => "Sources",
        Language::Korean => "출처",
    };
    format!("\n\n{label}: {}", citations.join("; "))
}

/// What the member is told once a document they shared is read.
pub fn shared_read(language: Language, name: &str, passages: usize) -> String {
    match language {
        Language::English => {
            let parts = if passages == 1 { "part" } else { "parts" };
            format!(
                "I have read {name} ({passages} {parts}) and keep it with your documents: ask me about it. \
                 Only your own conversations with me read it."
            )
        }
        Language::Korean => format!(
            "{name}을(를) 읽었어요 ({passages}부분). 회원님의 문서와 함께 두었으니 물어보세요. \
             저와 회원님의 대화에서만 읽어요."
        ),
    }
}

/// The chat commands, with what they do.
pub fn help(language: Language) -> &'static str {
    match language {
        Language::English => {
            "/memory lists what I remember here, /forget N forgets entry N, \
/reminders lists your reminders, /cancel N cancels reminder N, /documents lists the documents I can read here."
        }
        Language::Korean => {
            "/memory 여기서 기억하는 것, /forget 번호 그 기억 잊기, \
/reminders 내 알림, /cancel 번호 그 알림 취소, /documents 여기서 읽을 수 있는 문서. \
그냥 말해도 돼요: \u{201c}기억해 줘: …\u{201d}, \u{201c}내일 오전 9시에 … 하라고 알려 줘\u{201d}, \u{201c}장보기 목록에 우유 추가해 줘\u{201d}."
        }
    }
}

/// How to use a command that needs a number.
pub fn which_number(language: Language, what: Missing, command: &str) -> String {
    let korean = match what {
        Missing::Which => "항목",
        _ => "알림",
    };
    match language {
        Language::English => {
            let what = match what {
                Missing::Which => "entry",
                _ => "reminder",
            };
            format!("Say which {what} by its number, e.g. /{command} 3.")
        }
        Language::Korean => format!("어느 {korean}인지 번호로 말해 주세요. 예: /{command} 3"),
    }
}

/// An assistant API answer as the assistant says it in a chat: a list in
/// the language it was made in (its dates are written in it), anything
/// else in `language`.
pub fn answer(language: Language, answer: &Answer) -> String {
    let language = match answer {
        Answer::Memory { language, .. }
        | Answer::Reminders { language, .. }
        | Answer::Documents { language, .. } => *language,
        _ => language,
    };
    let korean = language == Language::Korean;
    match answer {
        Answer::Memory { entries, .. } if entries.is_empty() => if korean {
            "여기서는 아직 기억하는 것이 없어요. \u{201c}기억해 줘: …\u{201d}라고 말해 보세요."
        } else {
            "I remember nothing here yet. Say \u{201c}remember that \u{2026}\u{201d} to change that."
        }
        .into(),
        Answer::Memory { entries, .. } => {
            let mut text = String::from(if korean {
                "여기서 기억하는 것:"
            } else {
                "What I remember here:"
            });
            for entry in entries {
                text.push_str(&format!("\n#{} {}: {}", entry.id, entry.file, entry.text));
            }
            text.push_str(if korean {
                "\n(/forget 번호 로 하나를 잊어요.)"
            } else {
                "\n(/forget N forgets one.)"
            });
            text
        }
        Answer::Reminders { reminders, .. } if reminders.is_empty() => if korean {
            "알림이 없어요."
        } else {
            "You have no reminders."
        }
        .into(),
        Answer::Reminders { reminders, .. } => {
            let mut text = String::from(if korean { "내 알림:" } else { "Your reminders:" });
            for reminder in reminders {
                let place = match (&reminder.target, korean) {
                    (Target::Member(_), false) => "to you".to_owned(),
                    (Target::Room(room), false) => format!("in {room}"),
                    (Target::Member(_), true) => "나에게".to_owned(),
                    (Target::Room(room), true) => format!("{room} 방에"),
                };
                text.push_str(&format!(
                    "\n#{} {} ({}, {place})",
                    reminder.id, reminder.text, reminder.when
                ));
            }
            text.push_str(if korean {
                "\n(/cancel 번호 로 하나를 취소해요.)"
            } else {
                "\n(/cancel N cancels one.)"
            });
            text
        }
        Answer::Documents {
            documents, refused, ..
        } => {
            if documents.is_empty() && refused.is_empty() {
                return if korean {
                    "여기서 읽을 수 있는 문서가 없어요."
                } else {
                    "There are no documents I can read here."
                }
                .into();
            }
            let mut text = String::new();
            if !documents.is_empty() {
                text.push_str(if korean {
                    "여기서 읽을 수 있는 문서:"
                } else {
                    "Documents I can read here:"
                });
                for document in documents {
                    let passages = if korean { "부분" } else { " passages" };
                    text.push_str(&format!(
                        "\n{}/{} ({}{passages})",
                        document.folder, document.path, document.passages
                    ));
                }
            }
            if !refused.is_empty() {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(if korean { "읽지 못한 문서:" } else { "Not read:" });
                for document in refused {
                    text.push_str(&format!(
                        "\n{}/{}: {}",
                        document.folder,
                        document.path,
                        document_refusal(language, &document.reason)
                    ));
                }
            }
            text
        }
        Answer::Deliveries { .. } => if korean {
            "보여 드릴 것이 없어요."
        } else {
            "Nothing to show."
        }
        .into(),
        Answer::Heard { text, .. } => text.trim().to_owned(),
        Answer::Done { message } | Answer::Refused { message } => message.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{MemoryItem, RefusedDocument, ReminderItem};

    /// Issue 67's item 4: every reason a document is not read, as the
    /// gateway stores it, is said in Korean with its numbers.
    #[test]
    fn each_documents_refusal_is_said_in_korean() {
        use crate::extract::{ExtractError, LINK_REFUSAL, MAX_PAGES, MAX_TEXT_CHARS, UNREADABLE};
        let reasons = [
            (
                ExtractError::TooLarge {
                    bytes: 12_000_000,
                    max: 10_485_760,
                }
                .to_string(),
                vec!["12000000".to_owned(), "10485760".to_owned()],
            ),
            (ExtractError::NotUtf8(17).to_string(), vec!["17".to_owned()]),
            (ExtractError::Binary(4).to_string(), vec!["4".to_owned()]),
            (
                ExtractError::Pdf("xref damaged".into()).to_string(),
                vec!["xref damaged".to_owned()],
            ),
            (ExtractError::Empty.to_string(), Vec::new()),
            (
                ExtractError::TooMuchText.to_string(),
                vec![MAX_TEXT_CHARS.to_string()],
            ),
            (
                ExtractError::TooManyPages.to_string(),
                vec![MAX_PAGES.to_string()],
            ),
            (LINK_REFUSAL.to_owned(), Vec::new()),
            (UNREADABLE.to_owned(), Vec::new()),
            (
                format!("{UNREADABLE}: Permission denied"),
                vec!["Permission denied".to_owned()],
            ),
        ];
        for (reason, facts) in reasons {
            assert_eq!(document_refusal(Language::English, &reason), reason);
            let korean = document_refusal(Language::Korean, &reason);
            assert!(korean.chars().any(crate::language::is_hangul), "{korean}");
            assert!(
                !korean.contains("it "),
                "{reason} was not said again: {korean}"
            );
            for fact in facts {
                assert!(korean.contains(&fact), "{fact} in {korean}");
            }
        }
        // A reason it does not know is kept, after a Korean lead.
        assert_eq!(
            document_refusal(Language::Korean, "pdftotext: broken"),
            "읽지 못했어요: pdftotext: broken"
        );
    }

    #[test]
    fn acknowledgements_read_naturally_in_both_languages() {
        assert_eq!(
            reminder_made(
                Language::English,
                false,
                "Tuesday 24 November 2026 at 19:00",
                false,
                "call Grandma"
            ),
            "I'll remind you on Tuesday 24 November 2026 at 19:00: call Grandma"
        );
        assert_eq!(
            reminder_made(Language::Korean, false, "매일 오전 8시", true, "약 먹기"),
            "매일 오전 8시에 알려 드릴게요: 약 먹기"
        );
        assert_eq!(
            reminder_made(Language::Korean, true, "30분마다", true, "환기하기"),
            "30분마다 이 방의 모두에게 알려 드릴게요: 환기하기"
        );
        assert_eq!(
            question_made(
                Language::Korean,
                "매주 월요일 오전 8시",
                true,
                "일정 알려줘."
            ),
            "매주 월요일 오전 8시에 답해 드릴게요: 일정 알려줘."
        );
        assert_eq!(
            reminder(Language::Korean, "약 먹기"),
            "\u{23f0} 알림: 약 먹기"
        );
        assert_eq!(
            sources(Language::Korean, &["house/boiler.md#2"]),
            "\n\n출처: house/boiler.md#2"
        );
        assert_eq!(
            list(Language::Korean, "장보기", &["우유".into(), "계란".into()]),
            "장보기 목록:\n- 우유\n- 계란"
        );
        assert_eq!(
            list(Language::Korean, "장보기", &[]),
            "장보기 목록이 비어 있어요."
        );
        assert_eq!(
            phrase_error(Language::Korean, &PhraseError::Past),
            "이미 지난 시간이에요."
        );
        assert_eq!(
            phrase_error(Language::English, &PhraseError::Empty(Missing::Remember)),
            "I could not tell what to remember."
        );
    }

    #[test]
    fn answers_read_as_sentences() {
        let memory = |language| Answer::Memory {
            entries: vec![MemoryItem {
                id: 4,
                file: "MEMORY.md".into(),
                text: "Ben is allergic to peanuts".into(),
                written_at: "2026-11-24T15:00:00Z".into(),
                source: "asked".into(),
            }],
            language,
        };
        assert_eq!(
            answer(Language::English, &memory(Language::English)),
            "What I remember here:\n#4 MEMORY.md: Ben is allergic to peanuts\n(/forget N forgets one.)"
        );
        // A list is said in the language it was made in, whatever the
        // caller would speak.
        assert_eq!(
            answer(Language::English, &memory(Language::Korean)),
            "여기서 기억하는 것:\n#4 MEMORY.md: Ben is allergic to peanuts\n(/forget 번호 로 하나를 잊어요.)"
        );
        let documents = Answer::Documents {
            documents: vec![],
            refused: vec![RefusedDocument {
                folder: "house".into(),
                path: "scan.pdf".into(),
                reason: "it has no text".into(),
            }],
            language: Language::English,
        };
        assert_eq!(
            answer(Language::Korean, &documents),
            "Not read:\nhouse/scan.pdf: it has no text"
        );
        let reminders = Answer::Reminders {
            reminders: vec![ReminderItem {
                id: 7,
                text: "약 먹기".into(),
                when: "매일 오후 10시".into(),
                next: None,
                target: Target::Member("지수".into()),
            }],
            language: Language::Korean,
        };
        assert_eq!(
            answer(Language::Korean, &reminders),
            "내 알림:\n#7 약 먹기 (매일 오후 10시, 나에게)\n(/cancel 번호 로 하나를 취소해요.)"
        );
        assert_eq!(
            answer(
                Language::Korean,
                &Answer::Done {
                    message: "done".into()
                }
            ),
            "done"
        );
    }
}
