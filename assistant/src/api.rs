//! The assistant API that household messaging and the gateway speak, sealed
//! like an encrypted chat request (`POST /api/assistant`): messaging asks
//! for the deliveries that came due (reminders, scheduled answers) and, on
//! behalf of a member it identified, lists and deletes what the assistant
//! remembers of them, lists and cancels their reminders, and lists the
//! documents they can read. Both ends use these types, so the operation
//! names and answer shapes cannot drift apart.

use serde::{Deserialize, Serialize};

use crate::language::Language;

use crate::scope::Asker;

/// A request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// For whom (absent for deliveries, which are the service's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asker: Option<Asker>,
    /// What.
    pub op: Op,
}

/// What is asked. Operations without arguments are empty structs, so
/// that an argument smuggled into them is refused like any other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// The deliveries after `after` (those up to it were delivered and are
    /// forgotten), waiting up to `wait_ms` for one to come due.
    Deliveries {
        /// The last delivery id handled.
        after: i64,
        /// How long to wait when none is due (at most [`MAX_WAIT_MS`]).
        #[serde(default)]
        wait_ms: u64,
    },
    /// What the assistant remembers in the asker's conversation.
    MemoryList {},
    /// Forget one entry of the asker's conversation.
    MemoryForget {
        /// Its id.
        id: i64,
    },
    /// The asker's reminders.
    ReminderList {},
    /// Cancel one of the asker's reminders.
    ReminderCancel {
        /// Its id.
        id: i64,
    },
    /// The documents the asker's conversation can read, and those refused.
    DocumentList {},
    /// Keep a document the asker shared with the assistant among their own
    /// documents (read only in their conversations), replacing one of the
    /// same name; `Done` once indexed, `Refused` with why otherwise.
    DocumentAdd {
        /// Its file name (`.pdf`, `.txt`, `.md`), without folders.
        file_name: String,
        /// Its bytes, base64 (standard alphabet).
        content: String,
    },
    /// What a recording the asker made says (heard by the hub's speech
    /// recognition, under their policy and daily seconds): `Heard`, or
    /// the gateway's error with why. The words are not kept.
    Transcribe {
        /// The recording as the app made it (WebM/Opus, Ogg, M4A, MP3,
        /// WAV), base64 (standard alphabet).
        audio: String,
        /// The language spoken (ISO 639-1, as `ko`), when the member's is known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        language: Option<String>,
    },
}

/// The longest a deliveries request is held.
pub const MAX_WAIT_MS: u64 = 30_000;

/// An answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Answer {
    /// Deliveries to post, oldest first.
    Deliveries {
        /// Them.
        deliveries: Vec<Delivery>,
    },
    /// Remembered entries, oldest first.
    Memory {
        /// Them.
        entries: Vec<MemoryItem>,
        /// The language the list is said in (the member's, else the
        /// household's: `Language::for_member`).
        #[serde(default)]
        language: Language,
    },
    /// Reminders, soonest first.
    Reminders {
        /// Them (their times written in `language`).
        reminders: Vec<ReminderItem>,
        /// The language the list is said in.
        #[serde(default)]
        language: Language,
    },
    /// Documents.
    Documents {
        /// Indexed and readable here.
        documents: Vec<DocumentItem>,
        /// Refused, with why.
        refused: Vec<RefusedDocument>,
        /// The language the list is said in.
        #[serde(default)]
        language: Language,
    },
    /// Done, with a sentence for the member.
    Done {
        /// The sentence.
        message: String,
    },
    /// What a recording said.
    Heard {
        /// The words.
        text: String,
        /// The language heard (`korean`, `english`), when the model says.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        language: Option<String>,
        /// The recording's length, in milliseconds.
        duration_ms: u64,
    },
    /// Not done, with why.
    Refused {
        /// Why.
        message: String,
    },
}

/// Where a delivery goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum Target {
    /// The member's conversation with the assistant.
    Member(String),
    /// A room.
    Room(String),
}

/// A message the assistant posts on its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Increasing; what the next request's `after` names.
    pub id: i64,
    /// Where.
    pub target: Target,
    /// The text.
    pub text: String,
}

/// A remembered entry as a member sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryItem {
    /// Its id.
    pub id: i64,
    /// Its file in OpenClaw's layout (`MEMORY.md`, `memory/2026-11-24.md`).
    pub file: String,
    /// What is remembered.
    pub text: String,
    /// When it was written (RFC 3339).
    pub written_at: String,
    /// Why (`asked`, `model`, `trimmed`, `imported`).
    pub source: String,
}

/// A reminder as a member sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReminderItem {
    /// Its id.
    pub id: i64,
    /// What it says, or what the assistant will be asked.
    pub text: String,
    /// When, for people ("every Monday at 08:00").
    pub when: String,
    /// Its next firing (RFC 3339).
    pub next: Option<String>,
    /// Where it goes.
    pub target: Target,
}

/// A document the conversation can read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentItem {
    /// Its folder.
    pub folder: String,
    /// Its path within the folder.
    pub path: String,
    /// How many passages it was cut into.
    pub passages: usize,
}

/// A document that was not indexed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedDocument {
    /// Its folder.
    pub folder: String,
    /// Its path within the folder.
    pub path: String,
    /// Why.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_answers_travel_as_tagged_json() {
        let request = Request {
            asker: None,
            op: Op::Deliveries {
                after: 7,
                wait_ms: 25_000,
            },
        };
        let text = serde_json::to_string(&request).unwrap();
        assert_eq!(
            text,
            r#"{"op":{"name":"deliveries","after":7,"wait_ms":25000}}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), request);
        let forget: Request = serde_json::from_str(
            r#"{"asker":{"member":"ada"},"op":{"name":"memory_forget","id":3}}"#,
        )
        .unwrap();
        assert_eq!(forget.op, Op::MemoryForget { id: 3 });
        assert!(serde_json::from_str::<Request>(r#"{"op":{"name":"shell"}}"#).is_err());
        assert!(
            serde_json::from_str::<Request>(r#"{"op":{"name":"memory_list","member":"ben"}}"#)
                .is_err()
        );
        let answer = Answer::Deliveries {
            deliveries: vec![Delivery {
                id: 8,
                target: Target::Member("ada".into()),
                text: "Reminder: call Grandma".into(),
            }],
        };
        assert_eq!(
            serde_json::to_value(&answer).unwrap(),
            serde_json::json!({"type": "deliveries", "deliveries": [
                {"id": 8, "target": {"kind": "member", "name": "ada"}, "text": "Reminder: call Grandma"}]})
        );
        // A recording, and what it said: the shapes the app's words travel in.
        let spoken: Request = serde_json::from_str(
            r#"{"asker":{"member":"ada"},"op":{"name":"transcribe","audio":"UklGRg==","language":"ko"}}"#,
        )
        .unwrap();
        assert_eq!(
            spoken.op,
            Op::Transcribe {
                audio: "UklGRg==".into(),
                language: Some("ko".into())
            }
        );
        assert!(
            serde_json::from_str::<Request>(
                r#"{"op":{"name":"transcribe","audio":"","model":"other"}}"#
            )
            .is_err(),
            "no field beyond the recording and its language"
        );
        let heard = Answer::Heard {
            text: "내일 아침 7시에 깨워 줘".into(),
            language: Some("korean".into()),
            duration_ms: 2100,
        };
        assert_eq!(
            serde_json::to_value(&heard).unwrap(),
            serde_json::json!({"type": "heard", "text": "내일 아침 7시에 깨워 줘", "language": "korean", "duration_ms": 2100})
        );
    }
}
