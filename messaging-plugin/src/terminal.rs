//! What the command-line client says of its own (not what members or the
//! assistant wrote), in the terminal's language: Korean where the locale
//! is Korean (`LANG=ko_KR.UTF-8`), else English. Pure.

use hearth_assistant::language::Language;

/// A line of the client's own.
#[derive(Clone, Copy, Debug)]
pub enum Said<'a> {
    /// A message was sent.
    Sent {
        /// Its number.
        id: i64,
        /// Where.
        room: &'a str,
    },
    /// A file was shared.
    Shared {
        /// The file's name.
        name: &'a str,
        /// The message's number.
        id: i64,
        /// Where.
        room: &'a str,
    },
    /// Shown for a deleted message.
    Deleted,
    /// Added to a reply the service stopped writing.
    Interrupted,
    /// Added to an edited message.
    Edited,
    /// The service cannot be reached.
    CannotReach(&'a str),
    /// The service refused (its status and reason).
    Refused {
        /// The HTTP status.
        status: u16,
        /// Its reason.
        message: &'a str,
    },
    /// The live connection ended.
    Closed,
    /// No whole answer came in time.
    NoAnswerWithin(u64),
    /// A file too big to share.
    TooBig {
        /// The file.
        file: &'a str,
        /// Its size.
        size: u64,
        /// The most a shared file may have.
        limit: u64,
    },
    /// A file that cannot be read.
    CannotRead(&'a str),
    /// Neither a room nor a DM was named.
    RoomOrDm,
}

impl Said<'_> {
    /// The line in `language`.
    pub fn say(&self, language: Language) -> String {
        let korean = language == Language::Korean;
        match *self {
            Said::Sent { id, room } if korean => format!("{room}에 #{id} 보냈어요"),
            Said::Sent { id, room } => format!("sent #{id} to {room}"),
            Said::Shared { name, id, room } if korean => {
                format!("{room}에 {name}을(를) #{id}(으)로 공유했어요")
            }
            Said::Shared { name, id, room } => format!("shared {name} as #{id} in {room}"),
            Said::Deleted if korean => "(삭제됨)".into(),
            Said::Deleted => "(deleted)".into(),
            Said::Interrupted if korean => {
                "(중단됨: 답이 끝나기 전에 서비스가 멈췄어요. 다시 물어보세요)".into()
            }
            Said::Interrupted => {
                "(interrupted: the service stopped before the answer ended; ask again)".into()
            }
            Said::Edited if korean => "(수정됨)".into(),
            Said::Edited => "(edited)".into(),
            Said::CannotReach(url) if korean => format!("{url}에 연결할 수 없어요"),
            Said::CannotReach(url) => format!("cannot reach {url}"),
            Said::Refused { status, message } if korean => {
                format!("메시징 서비스가 거절했어요 ({status}): {message}")
            }
            Said::Refused { status, message } => {
                format!("the messaging service refused ({status}): {message}")
            }
            Said::Closed if korean => "서비스가 연결을 끊었어요".into(),
            Said::Closed => "the service closed the connection".into(),
            Said::NoAnswerWithin(seconds) if korean => {
                format!("{seconds}초 안에 답이 끝나지 않았어요")
            }
            Said::NoAnswerWithin(seconds) => format!("no complete answer within {seconds} s"),
            Said::TooBig { file, size, limit } if korean => {
                format!("{file}은(는) {size}바이트예요. 공유하는 파일은 {limit}바이트까지예요")
            }
            Said::TooBig { file, size, limit } => {
                format!("{file} has {size} bytes; a shared file has at most {limit}")
            }
            Said::CannotRead(file) if korean => format!("{file}을(를) 읽을 수 없어요"),
            Said::CannotRead(file) => format!("cannot read {file}"),
            Said::RoomOrDm if korean => "--room 또는 --dm 을 주세요".into(),
            Said::RoomOrDm => "--room or --dm".into(),
        }
    }
}

/// The terminal's language, from its locale (`ko_KR.UTF-8`): Korean for
/// Korean, else English.
pub fn language_of(locale: Option<&str>) -> Language {
    locale.map_or(Language::English, Language::from_tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 67's item 4: a member whose terminal speaks Korean is told in
    /// Korean what the client did, with the same numbers and names.
    #[test]
    fn each_line_is_said_in_the_terminals_language_with_the_same_facts() {
        let lines = [
            Said::Sent {
                id: 42,
                room: "household",
            },
            Said::Shared {
                name: "boiler.md",
                id: 43,
                room: "household",
            },
            Said::Deleted,
            Said::Interrupted,
            Said::Edited,
            Said::CannotReach("http://hub:8790"),
            Said::Refused {
                status: 403,
                message: "not yours",
            },
            Said::Closed,
            Said::NoAnswerWithin(120),
            Said::TooBig {
                file: "boiler.md",
                size: 99,
                limit: 42,
            },
            Said::CannotRead("boiler.md"),
            Said::RoomOrDm,
        ];
        for line in lines {
            let (english, korean) = (line.say(Language::English), line.say(Language::Korean));
            assert!(
                korean.chars().any(hearth_assistant::language::is_hangul),
                "{korean}"
            );
            for fact in [
                "42",
                "43",
                "household",
                "boiler.md",
                "http://hub:8790",
                "403",
                "not yours",
                "120",
                "99",
                "--room",
            ] {
                assert_eq!(english.contains(fact), korean.contains(fact), "{fact}");
            }
        }
        assert_eq!(language_of(Some("ko_KR.UTF-8")), Language::Korean);
        assert_eq!(language_of(Some("en_GB.UTF-8")), Language::English);
        assert_eq!(language_of(Some("C")), Language::English);
        assert_eq!(language_of(None), Language::English);
    }
}
