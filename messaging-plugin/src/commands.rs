//! What members type to see and change what the assistant keeps about
//! them: `/memory`, `/forget N`, `/reminders`, `/cancel N`, `/documents`
//! (in a DM with the assistant, or after `@assistant` in a room, where they
//! show that room's memory). Pure: parsing, and the answers as chat text.

use hearth_assistant::api::{Answer, Op};
use hearth_assistant::language::Language;
use hearth_assistant::phrases::Missing;
use hearth_assistant::say;

/// What the assistant says instead of doing a command: the help, or how
/// to use a command used wrongly.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotDone {
    /// `/help`.
    #[error("{}", say::help(Language::English))]
    Help,
    /// A command that needs the number of what it acts on.
    #[error("{}", say::which_number(Language::English, *what, command))]
    WhichOne {
        /// What it acts on: an entry ([`Missing::Which`]) or a reminder.
        what: Missing,
        /// The command as typed, lower-cased.
        command: String,
    },
}

impl NotDone {
    /// As the member is told, in `language`.
    pub fn say(&self, language: Language) -> String {
        match self {
            NotDone::Help => say::help(language).into(),
            NotDone::WhichOne { what, command } => say::which_number(language, *what, command),
        }
    }
}

/// The assistant API request a message asks for, if it is a command;
/// [`NotDone`] when it is `/help` or a command used wrongly.
pub fn command(text: &str) -> Option<Result<Op, NotDone>> {
    let text = text.trim();
    let rest = text.strip_prefix('/')?;
    let mut words = rest.split_whitespace();
    let name = words.next()?.to_lowercase();
    let argument = words.next();
    let number = |what: Missing| -> Result<i64, NotDone> {
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
        "forget" => number(Missing::Which).map(|id| Op::MemoryForget { id }),
        "reminders" => Ok(Op::ReminderList {}),
        "cancel" => number(Missing::Remind).map(|id| Op::ReminderCancel { id }),
        "documents" | "docs" => Ok(Op::DocumentList {}),
        "help" => Err(NotDone::Help),
        // `/new` and anything else go to the assistant as they are.
        _ => return None,
    })
}

/// An answer as the assistant says it in the chat, in `language`.
pub fn render(answer: &Answer, language: Language) -> String {
    say::answer(language, answer)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(
            matches!(command("/help"), Some(Err(help)) if help.to_string() == say::help(Language::English))
        );
        assert!(
            matches!(command("/forget"), Some(Err(why)) if why.say(Language::Korean).contains("/forget 3"))
        );
        assert_eq!(command("/new"), None);
        assert_eq!(command("what is a hearth?"), None);
    }
}
