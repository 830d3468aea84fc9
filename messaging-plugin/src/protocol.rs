//! What travels over the WebSocket and the HTTP API: client messages
//! (decoded and validated here, from untrusted text) and server events.
//! Pure: no IO.

use serde::{Deserialize, Serialize};

/// Longest message body, in characters.
pub const MAX_BODY: usize = 8_000;
/// Longest WebSocket frame accepted, in bytes.
pub const MAX_FRAME: usize = 64 * 1024;
pub use hearth_roster::{ASSISTANT, RoomId, valid_member};

/// Where a message stands: every person's message is `sent`; the
/// assistant's reply is `streaming` while it grows, then `done` or `error`,
/// or `interrupted` when the service stopped before it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Posted (and final).
    Sent,
    /// The assistant's reply, still growing.
    Streaming,
    /// The assistant's reply, complete.
    Done,
    /// The assistant's reply, ended by a failure (its text says which).
    Error,
    /// The assistant's reply, cut off: the service stopped while it was
    /// being written (a restart, a crash, a backup taken mid-answer). A
    /// reply is stored whole when it ends, so an interrupted one is empty;
    /// the member may ask again.
    Interrupted,
    /// Deleted by its writer (the text is gone).
    Deleted,
}

impl MessageStatus {
    /// As stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Sent => "sent",
            MessageStatus::Streaming => "streaming",
            MessageStatus::Done => "done",
            MessageStatus::Error => "error",
            MessageStatus::Interrupted => "interrupted",
            MessageStatus::Deleted => "deleted",
        }
    }

    /// The status stored as `text`.
    pub fn parse(text: &str) -> Option<MessageStatus> {
        [
            MessageStatus::Sent,
            MessageStatus::Streaming,
            MessageStatus::Done,
            MessageStatus::Error,
            MessageStatus::Interrupted,
            MessageStatus::Deleted,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

/// A status compares equal to the string it travels as.
impl PartialEq<&str> for MessageStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A message as clients see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Increasing across all rooms; the cursor of history and sync.
    pub id: i64,
    /// The room.
    pub room: String,
    /// Who wrote it (a user name, or `assistant`).
    pub sender: String,
    /// The text.
    pub body: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// `sent`; for the assistant's replies `streaming`, then `done` or `error`.
    pub status: MessageStatus,
    /// The sender's own id for it, echoed so the sender can match its copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// When its writer last changed (or deleted) it, Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<i64>,
    /// The file it shares (its bytes at `GET /api/files/{id}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<Attachment>,
}

/// A file shared into a room.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// Its file name as shared.
    pub name: String,
    /// What it is, as found in its bytes (not as the sharer said).
    #[serde(rename = "type")]
    pub media_type: String,
    /// Its size in bytes.
    pub size: u64,
}

/// Largest file shared into a room: the largest document the assistant reads.
pub const MAX_ATTACHMENT_BYTES: u64 = hearth_assistant::extract::MAX_FILE_BYTES;
/// Longest file name of a shared file, in bytes.
pub const MAX_ATTACHMENT_NAME: usize = hearth_assistant::extract::MAX_SHARED_NAME;

/// What a shared file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A document the assistant reads (PDF, text, Markdown).
    Document,
    /// A picture (PNG, JPEG, WebP, GIF).
    Picture,
}

/// Why a file is not taken.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FileRefusal {
    /// Empty or too large.
    #[error("a shared file has 1 byte to {} MiB", MAX_ATTACHMENT_BYTES / (1024 * 1024))]
    Size,
    /// A name that is no file name.
    #[error(
        "a shared file needs a name of 1 to {MAX_ATTACHMENT_NAME} bytes: no folders, no control characters"
    )]
    Name,
    /// Neither a document nor a picture.
    #[error("{0} is neither a document (PDF, text, Markdown) nor a picture (PNG, JPEG, WebP, GIF)")]
    Kind(String),
}

/// `text` percent-encoded for a `filename*=UTF-8''…` parameter (RFC 8187):
/// every byte but letters, digits and `!#$&+-.^_`|~` is escaped.
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
                char::from(byte).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

/// What the file `name` with `bytes` is, judged by its bytes (a picture or
/// a PDF by its signature, text by being UTF-8 and named `.txt` or `.md`),
/// and the attachment it becomes; or why it is refused.
pub fn check_file(name: &str, bytes: &[u8]) -> Result<(FileKind, Attachment), FileRefusal> {
    let name = hearth_assistant::extract::shared_file_name(name).ok_or(FileRefusal::Name)?;
    let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if size == 0 || size > MAX_ATTACHMENT_BYTES {
        return Err(FileRefusal::Size);
    }
    let extension = name
        .rsplit_once('.')
        .map(|(_, extension)| extension.to_ascii_lowercase())
        .unwrap_or_default();
    let (kind, media_type) = if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        (FileKind::Picture, "image/png")
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        (FileKind::Picture, "image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        (FileKind::Picture, "image/gif")
    } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
        (FileKind::Picture, "image/webp")
    } else if bytes.starts_with(b"%PDF-") && extension == "pdf" {
        (FileKind::Document, "application/pdf")
    } else if std::str::from_utf8(bytes).is_ok() && ["txt", "text"].contains(&extension.as_str()) {
        (FileKind::Document, "text/plain; charset=utf-8")
    } else if std::str::from_utf8(bytes).is_ok() && ["md", "markdown"].contains(&extension.as_str())
    {
        (FileKind::Document, "text/markdown; charset=utf-8")
    } else {
        return Err(FileRefusal::Kind(name.to_owned()));
    };
    Ok((
        kind,
        Attachment {
            name: name.to_owned(),
            media_type: media_type.to_owned(),
            size,
        },
    ))
}

/// What a client sends on the WebSocket.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Post a message.
    Send {
        /// The room.
        room: String,
        /// The text.
        body: String,
        /// The client's id for it.
        #[serde(default)]
        client_id: Option<String>,
    },
    /// The user is typing in a room.
    Typing {
        /// The room.
        room: String,
    },
    /// The user has read a room up to a message.
    Read {
        /// The room.
        room: String,
        /// The last message read.
        id: i64,
    },
    /// Send every message after `since` (after a reconnect).
    Sync {
        /// The last message id the client has.
        since: i64,
    },
}

/// What the server sends on the WebSocket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerEvent {
    /// First event of a connection.
    Hello {
        /// Who the server knows the caller as.
        user: String,
        /// The caller's node.
        node: String,
        /// The latest message id.
        last_id: i64,
    },
    /// A new message.
    Message {
        /// The message.
        message: Message,
    },
    /// A message changed (the assistant's streaming reply, or its writer
    /// edited or deleted it).
    Update {
        /// Its id.
        id: i64,
        /// Its room.
        room: String,
        /// The whole text so far.
        body: String,
        /// Its status.
        status: MessageStatus,
        /// When its writer changed it (an edit or a deletion).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        edited_at: Option<i64>,
    },
    /// Someone is typing (or stopped).
    Typing {
        /// The room.
        room: String,
        /// Who.
        user: String,
        /// Whether they are typing now.
        active: bool,
    },
    /// Someone read a room up to a message.
    Read {
        /// The room.
        room: String,
        /// Who.
        user: String,
        /// Up to which message.
        id: i64,
    },
    /// A room was deleted.
    RoomDeleted {
        /// The room.
        room: String,
    },
    /// A request of this client failed.
    Error {
        /// Why.
        message: String,
    },
}

/// Why a client message was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Too large.
    #[error("a message may be at most {MAX_FRAME} bytes")]
    TooLarge,
    /// Not one of the messages above.
    #[error("not a valid message: {0}")]
    Invalid(String),
    /// A room name that cannot exist.
    #[error("`{0}` is not a room name")]
    BadRoom(String),
    /// A body that is empty or too long.
    #[error("a message must have 1 to {MAX_BODY} characters")]
    BadBody,
}

/// Decodes and validates one WebSocket text frame.
pub fn decode(text: &str) -> Result<ClientMessage, DecodeError> {
    if text.len() > MAX_FRAME {
        return Err(DecodeError::TooLarge);
    }
    let message: ClientMessage =
        serde_json::from_str(text).map_err(|error| DecodeError::Invalid(error.to_string()))?;
    match &message {
        ClientMessage::Send {
            room,
            body,
            client_id,
        } => {
            check_room(room)?;
            check_body(body)?;
            if client_id.as_ref().is_some_and(|id| id.len() > 64) {
                return Err(DecodeError::Invalid(
                    "client_id is longer than 64 bytes".into(),
                ));
            }
        }
        ClientMessage::Typing { room } | ClientMessage::Read { room, .. } => {
            check_room(room)?;
        }
        ClientMessage::Sync { .. } => {}
    }
    Ok(message)
}

/// Checks a body: 1 to [`MAX_BODY`] characters, not only whitespace.
pub fn check_body(body: &str) -> Result<(), DecodeError> {
    let length = body.chars().count();
    if body.trim().is_empty() || length > MAX_BODY {
        return Err(DecodeError::BadBody);
    }
    Ok(())
}

/// Checks a room id ([`RoomId`]: a named room or the DM of two members).
pub fn check_room(room: &str) -> Result<RoomId, DecodeError> {
    RoomId::parse(room).map_err(|error| DecodeError::BadRoom(error.0))
}

/// Whether `tag` looks like a BCP 47 language tag an app would send: a
/// language of 2 or 3 letters, then subtags of letters and digits, at most
/// 35 characters in all.
pub fn valid_language(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let language = parts.next().unwrap_or_default();
    tag.len() <= 35
        && (2..=3).contains(&language.len())
        && language.bytes().all(|byte| byte.is_ascii_alphabetic())
        && parts.all(|part| {
            (1..=8).contains(&part.len()) && part.bytes().all(|byte| byte.is_ascii_alphanumeric())
        })
}

/// Longest search, in characters.
pub const MAX_QUERY: usize = 200;

/// The words of a search `query` (lower case; a Korean word without its
/// particle or ending, so "보일러를" finds "보일러는"): a message matches when
/// it holds every one. `None` for a query with no word or too long.
pub fn query_words(query: &str) -> Option<Vec<String>> {
    if query.chars().count() > MAX_QUERY {
        return None;
    }
    let words: Vec<String> = query
        .split_whitespace()
        .map(|word| {
            let word = word.to_lowercase();
            if word.chars().all(hearth_assistant::language::is_syllable) {
                hearth_assistant::search::korean_stem(&word).to_owned()
            } else {
                word
            }
        })
        .collect();
    (!words.is_empty()).then_some(words)
}

/// Whether `body` holds every one of `words` ([`query_words`]), ignoring
/// case: Korean and English alike (a word is found inside longer ones, as
/// Korean particles attach to the word before them).
pub fn matches_words(body: &str, words: &[String]) -> bool {
    let body = body.to_lowercase();
    words.iter().all(|word| body.contains(word.as_str()))
}

/// Whether `user` may see and post in `room`: named rooms are the
/// household's; a DM belongs to its two members; an id that is no room is
/// no one's.
pub fn may_access(user: &str, room: &str) -> bool {
    RoomId::parse(room).is_ok_and(|room| room.admits(user))
}

/// Whether a message calls the assistant: any message in a DM with it, or
/// `@assistant` as a word in a room.
pub fn calls_assistant(room: &str, sender: &str, body: &str) -> bool {
    if sender == ASSISTANT {
        return false;
    }
    match RoomId::parse(room) {
        Ok(room) if room.is_dm() => room.with_assistant(),
        _ => mentions_assistant(body),
    }
}

fn mentions_assistant(body: &str) -> bool {
    let lower = body.to_lowercase();
    let mention = format!("@{ASSISTANT}");
    lower.match_indices(&mention).any(|(start, _)| {
        let before = lower[..start].chars().next_back();
        let after = lower[start + mention.len()..].chars().next();
        let boundary =
            |c: Option<char>| c.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '-'));
        boundary(before) && boundary(after)
    })
}

/// The question for the assistant: the body without the `@assistant` mention.
pub fn question_for_assistant(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    let mention = format!("@{ASSISTANT}");
    let find = |text: &str| {
        text.as_bytes()
            .windows(mention.len())
            .position(|window| window.eq_ignore_ascii_case(mention.as_bytes()))
    };
    while let Some(start) = find(rest) {
        out.push_str(&rest[..start]);
        rest = &rest[start + mention.len()..];
        rest = rest.strip_prefix([',', ':']).unwrap_or(rest);
    }
    out.push_str(rest);
    let question = out.split_whitespace().collect::<Vec<_>>().join(" ");
    if question.is_empty() {
        body.trim().to_owned()
    } else {
        question
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_decode_and_are_validated() {
        assert_eq!(
            decode(r#"{"type":"send","room":"household","body":"hi","client_id":"c1"}"#),
            Ok(ClientMessage::Send {
                room: "household".into(),
                body: "hi".into(),
                client_id: Some("c1".into())
            })
        );
        assert_eq!(
            decode(r#"{"type":"sync","since":5}"#),
            Ok(ClientMessage::Sync { since: 5 })
        );
        assert!(matches!(
            decode(r#"{"type":"send","room":"Household","body":"hi"}"#),
            Err(DecodeError::BadRoom(_))
        ));
        assert!(matches!(
            decode(r#"{"type":"send","room":"x","body":"   "}"#),
            Err(DecodeError::BadBody)
        ));
        assert!(matches!(
            decode(r#"{"type":"send","room":"x","body":"hi","admin":true}"#),
            Err(DecodeError::Invalid(_))
        ));
        assert!(matches!(
            decode(r#"{"type":"shout"}"#),
            Err(DecodeError::Invalid(_))
        ));
        assert!(matches!(
            decode(&"x".repeat(MAX_FRAME + 1)),
            Err(DecodeError::TooLarge)
        ));
        let long = format!(
            r#"{{"type":"send","room":"x","body":"{}"}}"#,
            "\u{e9}".repeat(MAX_BODY + 1)
        );
        assert!(matches!(decode(&long), Err(DecodeError::BadBody)));
    }

    #[test]
    fn rooms_and_dms() {
        assert_eq!(RoomId::dm("ben", "ada").unwrap().to_string(), "dm:ada,ben");
        assert!(check_room("dm:ada,ben").is_ok());
        assert!(check_room("dm:ben,ada").is_err(), "DM names are sorted");
        assert!(check_room("dm:ada,ada").is_err());
        assert!(
            may_access("ada", "dm:ada,ben")
                && !may_access("cy", "dm:ada,ben")
                && may_access("cy", "household")
        );
    }

    #[test]
    fn the_assistant_is_called_by_dm_or_mention() {
        assert!(calls_assistant("dm:ada,assistant", "ada", "hello"));
        assert!(!calls_assistant("dm:ada,assistant", ASSISTANT, "hello"));
        assert!(calls_assistant(
            "household",
            "ada",
            "@assistant what is for dinner?"
        ));
        assert!(calls_assistant("household", "ada", "hey @Assistant, help"));
        assert!(!calls_assistant(
            "household",
            "ada",
            "mail me at x@assistants.org"
        ));
        assert!(!calls_assistant("household", "ada", "no mention"));
        assert_eq!(
            question_for_assistant("@assistant, what is for dinner?"),
            "what is for dinner?"
        );
        assert_eq!(question_for_assistant("hey @Assistant: help"), "hey help");
    }

    #[test]
    fn a_search_finds_messages_holding_every_word_in_either_language() {
        let words = query_words("  Milk  빵 ").unwrap();
        assert_eq!(words, ["milk", "빵"]);
        assert!(matches_words("Buy MILK and 빵을 please", &words));
        assert!(!matches_words("Buy milk", &words));
        // A Korean word is found whatever particle it carries.
        let words = query_words("보일러를 초기화하려면").unwrap();
        assert_eq!(words, ["보일러", "초기화"]);
        assert!(matches_words("보일러는 리셋 버튼으로 초기화해요", &words));
        assert!(query_words("   ").is_none());
        assert!(query_words(&"a".repeat(MAX_QUERY + 1)).is_none());
    }

    #[test]
    fn a_language_is_a_short_tag() {
        for good in ["en", "ko", "ko-KR", "zh-Hant-TW", "yue"] {
            assert!(valid_language(good), "{good}");
        }
        for bad in [
            "",
            "k",
            "korean",
            "ko_KR",
            "ko-",
            "ko-KR<script>",
            &"en-".repeat(20),
        ] {
            assert!(!valid_language(bad), "{bad}");
        }
    }

    #[test]
    fn a_shared_file_is_what_its_bytes_say() {
        let kind = |name: &str, bytes: &[u8]| {
            check_file(name, bytes).map(|(kind, about)| (kind, about.media_type))
        };
        let picture = |media: &str| Ok((FileKind::Picture, media.to_owned()));
        let document = |media: &str| Ok((FileKind::Document, media.to_owned()));
        assert_eq!(
            kind("a.png", b"\x89PNG\r\n\x1a\n...."),
            picture("image/png")
        );
        // A picture is a picture whatever it is called.
        assert_eq!(
            kind("photo", &[0xff, 0xd8, 0xff, 0xe0]),
            picture("image/jpeg")
        );
        assert_eq!(kind("a.gif", b"GIF89a..."), picture("image/gif"));
        assert_eq!(
            kind("a.webp", b"RIFF\x10\0\0\0WEBPVP8 "),
            picture("image/webp")
        );
        assert_eq!(
            kind("Boiler.PDF", b"%PDF-1.4 ..."),
            document("application/pdf")
        );
        assert_eq!(
            kind("notes.md", "# 메모".as_bytes()),
            document("text/markdown; charset=utf-8")
        );
        assert_eq!(
            kind("notes.txt", b"milk"),
            document("text/plain; charset=utf-8")
        );
        // A page or a program calling itself a picture or a document is neither.
        assert_eq!(
            kind("page.html", b"<script>alert(1)</script>"),
            Err(FileRefusal::Kind("page.html".into()))
        );
        assert!(matches!(
            kind("fake.pdf", b"<html>"),
            Err(FileRefusal::Kind(_))
        ));
        assert!(matches!(
            kind("bin.txt", &[0xc3, 0x28]),
            Err(FileRefusal::Kind(_))
        ));
        for name in ["", " ", "a/b.txt", "a\\b.txt", ".hidden.txt", "a\nb.txt"] {
            assert_eq!(kind(name, b"x"), Err(FileRefusal::Name), "{name:?}");
        }
        assert_eq!(kind("empty.txt", b""), Err(FileRefusal::Size));
        assert_eq!(
            percent_encode("보일러 1.pdf"),
            "%EB%B3%B4%EC%9D%BC%EB%9F%AC%201.pdf"
        );
        assert_eq!(percent_encode("a\"b;c.txt"), "a%22b%3Bc.txt");
    }
}
