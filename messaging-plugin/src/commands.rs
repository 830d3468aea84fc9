//! What members type to see and change what the assistant keeps about
//! them: `/memory`, `/forget N`, `/reminders`, `/cancel N`, `/documents`
//! (in a DM with the assistant, or after `@assistant` in a room, where they
//! show that room's memory). Pure: parsing, and the answers as chat text.

use hearth_assistant::api::{Answer, Op, Target};

/// The commands, with what they do.
pub const HELP: &str = "/memory lists what I remember here, /forget N forgets entry N, \
/reminders lists your reminders, /cancel N cancels reminder N, /documents lists the documents I can read here.";

/// What the assistant says instead of doing a command: the help, or how
/// to use a command used wrongly.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotDone {
    /// `/help`: [`HELP`].
    #[error("{HELP}")]
    Help,
    /// A command that needs the number of what it acts on.
    #[error("Say which {what} by its number, e.g. /{command} 3.")]
    WhichOne {
        /// What it acts on (entry, reminder).
        what: &'static str,
        /// The command as typed, lower-cased.
        command: String,
    },
}

/// The assistant API request a message asks for, if it is a command;
/// [`NotDone`] when it is `/help` or a command used wrongly.
pub fn command(text: &str) -> Option<Result<Op, NotDone>> {
    let text = text.trim();
    let rest = text.strip_prefix('/')?;
    let mut words = rest.split_whitespace();
    let name = words.next()?.to_lowercase();
    let argument = words.next();
    let number = |what: &'static str| -> Result<i64, NotDone> {
        argument
            .and_then(|word| word.trim_start_matches('#').parse::<i64>().ok())
            .filter(|id| *id > 0)
            .ok_or_else(|| NotDone::WhichOne {
                what,
                command: name.clone(),
            })
    };
    Some(match name.as_str() {
        "memory" | "memories" => Ok(Op::MemoryList {}),
        "forget" => number("entry").map(|id| Op::MemoryForget { id }),
        "reminders" => Ok(Op::ReminderList {}),
        "cancel" => number("reminder").map(|id| Op::ReminderCancel { id }),
        "documents" | "docs" => Ok(Op::DocumentList {}),
        "help" => Err(NotDone::Help),
        // `/new` and anything else go to the assistant as they are.
        _ => return None,
    })
}

/// An answer as the assistant says it in the chat.
pub fn render(answer: &Answer) -> String {
    match answer {
        Answer::Memory { entries } if entries.is_empty() => {
            "I remember nothing here yet. Say \u{201c}remember that \u{2026}\u{201d} to change that.".into()
        }
        Answer::Memory { entries } => {
            let mut text = String::from("What I remember here:");
            for entry in entries {
                text.push_str(&format!("\n#{} {}: {}", entry.id, entry.file, entry.text));
            }
            text.push_str("\n(/forget N forgets one.)");
            text
        }
        Answer::Reminders { reminders } if reminders.is_empty() => "You have no reminders.".into(),
        Answer::Reminders { reminders } => {
            let mut text = String::from("Your reminders:");
            for reminder in reminders {
                let place = match &reminder.target {
                    Target::Member(_) => "to you".to_owned(),
                    Target::Room(room) => format!("in {room}"),
                };
                text.push_str(&format!(
                    "\n#{} {} ({}, {place})",
                    reminder.id, reminder.text, reminder.when
                ));
            }
            text.push_str("\n(/cancel N cancels one.)");
            text
        }
        Answer::Documents { documents, refused } => {
            if documents.is_empty() && refused.is_empty() {
                return "There are no documents I can read here.".into();
            }
            let mut text = String::new();
            if !documents.is_empty() {
                text.push_str("Documents I can read here:");
                for document in documents {
                    text.push_str(&format!(
                        "\n{}/{} ({} passages)",
                        document.folder, document.path, document.passages
                    ));
                }
            }
            if !refused.is_empty() {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str("Not read:");
                for document in refused {
                    text.push_str(&format!(
                        "\n{}/{}: {}",
                        document.folder, document.path, document.reason
                    ));
                }
            }
            text
        }
        Answer::Deliveries { .. } => "Nothing to show.".into(),
        Answer::Done { message } | Answer::Refused { message } => message.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_assistant::api::{MemoryItem, RefusedDocument};

    #[test]
    fn commands_are_read_and_misused_ones_say_how() {
        assert_eq!(command("/memory"), Some(Ok(Op::MemoryList {})));
        assert_eq!(
            command(" /forget #3 "),
            Some(Ok(Op::MemoryForget { id: 3 }))
        );
        assert_eq!(
            command("/cancel 12"),
            Some(Ok(Op::ReminderCancel { id: 12 }))
        );
        assert_eq!(command("/Documents"), Some(Ok(Op::DocumentList {})));
        assert!(
            matches!(command("/forget"), Some(Err(why)) if why.to_string().contains("/forget 3"))
        );
        assert!(matches!(command("/cancel x"), Some(Err(_))));
        assert!(matches!(command("/help"), Some(Err(help)) if help.to_string() == HELP));
        assert_eq!(command("/new"), None);
        assert_eq!(command("what is a hearth?"), None);
    }

    #[test]
    fn answers_read_as_sentences() {
        let memory = Answer::Memory {
            entries: vec![MemoryItem {
                id: 4,
                file: "MEMORY.md".into(),
                text: "Ben is allergic to peanuts".into(),
                written_at: "2026-11-24T15:00:00Z".into(),
                source: "asked".into(),
            }],
        };
        assert_eq!(
            render(&memory),
            "What I remember here:\n#4 MEMORY.md: Ben is allergic to peanuts\n(/forget N forgets one.)"
        );
        let documents = Answer::Documents {
            documents: vec![],
            refused: vec![RefusedDocument {
                folder: "house".into(),
                path: "scan.pdf".into(),
                reason: "it has no text".into(),
            }],
        };
        assert_eq!(
            render(&documents),
            "Not read:\nhouse/scan.pdf: it has no text"
        );
    }
}
