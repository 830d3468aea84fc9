//! The everyday requests the assistant carries out itself, without the
//! model ("remember that …", "remind me at 7 pm to …", "장보기 목록에 우유
//! 추가해 줘", "3번 알림 취소해 줘"), and the shared lists, which the model's
//! tools use too. What a message asks is `hearth_assistant::phrases`'s
//! reading; what the assistant says back is `hearth_assistant::say`'s, in
//! the member's language.

use hearth_assistant::api::Answer;
use hearth_assistant::language::Language;
use hearth_assistant::lists::{self, ListError};
use hearth_assistant::memory::{Layer, Source};
use hearth_assistant::phrases::{self, Intent, ListRequest, Which};
use hearth_assistant::say;
use hearth_assistant::scope::Asker;
use hearth_assistant::search;
use jiff::Timestamp;

use super::memories::{NotRemembered, Remembered};
use super::{Assistant, Said};

/// What a list request came to.
pub enum ListOutcome {
    /// Items added.
    Added {
        /// The list.
        name: String,
        /// How many.
        added: usize,
    },
    /// The list as it is.
    Shown {
        /// The list.
        name: String,
        /// Its items.
        items: Vec<String>,
    },
    /// Items taken off.
    Removed {
        /// The list.
        name: String,
        /// How many were.
        removed: usize,
        /// How many were asked for.
        asked: usize,
    },
    /// Refused.
    Refused(ListError),
    /// The store failed (logged where it failed).
    Unavailable,
}

impl ListOutcome {
    /// As the member is told, in `language`.
    pub fn say(&self, language: Language) -> String {
        match self {
            ListOutcome::Added { name, added } => say::list_added(language, *added, name),
            ListOutcome::Shown { name, items } => say::list(language, name, items),
            ListOutcome::Removed {
                name,
                removed,
                asked,
            } => say::list_removed(language, *removed, *asked, name),
            ListOutcome::Refused(error) => say::list_error(language, error),
            ListOutcome::Unavailable => say::unavailable(language).into(),
        }
    }

    /// As the model is told (a tool's result: English, refusals marked).
    pub fn for_model(&self) -> String {
        match self {
            ListOutcome::Refused(_) | ListOutcome::Unavailable => {
                format!("error: {}", self.say(Language::English))
            }
            _ => self.say(Language::English),
        }
    }
}

impl Assistant {
    /// Carries out `message` if it is one of the everyday requests, for
    /// `asker`; what it says back, in their language.
    pub async fn intent(&self, asker: &Asker, message: &str) -> Option<Said> {
        let now = self.now();
        let language = self.language_for(asker, message);
        let recognized = phrases::recognize(message, now, &self.settings.timezone)?;
        let said = |tool: Option<&'static str>, text: String| Said { tool, text };
        Some(match recognized {
            Err(error) => said(None, say::phrase_error(language, &error)),
            Ok(Intent::Remember { text }) => match self
                .memories
                .remember(&asker.owner(), Layer::LongTerm, &text, Source::Asked, now)
                .await
            {
                Ok(Remembered::New(_)) => said(
                    Some("memory_write"),
                    say::remembered(language, !asker.is_private()).into(),
                ),
                Ok(Remembered::Already(_)) => said(
                    Some("memory_write"),
                    say::already_remembered(language).into(),
                ),
                Ok(Remembered::Updated { was, .. }) => {
                    said(Some("memory_write"), say::updated(language, &was))
                }
                Ok(Remembered::Beside { kept, .. }) => said(
                    Some("memory_write"),
                    say::remembered_beside(language, !asker.is_private(), &kept),
                ),
                Err(NotRemembered::Refused(error)) => {
                    said(None, say::memory_error(language, &error))
                }
                Err(NotRemembered::Store(_)) => said(None, say::unavailable(language).into()),
            },
            Ok(Intent::Forget(which)) => self.forget(asker, which, language).await,
            Ok(Intent::Schedule(scheduled)) => {
                match self.scheduler.create(asker, scheduled, language).await {
                    Ok(text) => said(Some("reminder_create"), text),
                    Err(why) => said(None, why.say(language)),
                }
            }
            Ok(Intent::Reminders) => {
                match self.scheduler.reminders(&asker.member, language).await {
                    Ok(reminders) => said(
                        Some("reminder_list"),
                        say::answer(
                            language,
                            &Answer::Reminders {
                                reminders,
                                language,
                            },
                        ),
                    ),
                    Err(error) => {
                        error.logged();
                        said(None, say::unavailable(language).into())
                    }
                }
            }
            Ok(Intent::Cancel(which)) => self.cancel(asker, which, language).await,
            Ok(Intent::List(request)) => {
                let tool = match &request {
                    ListRequest::Add { .. } => "list_add",
                    ListRequest::Show { .. } => "list_show",
                    ListRequest::Remove { .. } => "list_remove",
                };
                let outcome = self.list(asker, request, now).await;
                let tool = (!matches!(outcome, ListOutcome::Refused(_) | ListOutcome::Unavailable))
                    .then_some(tool);
                said(tool, outcome.say(language))
            }
        })
    }

    /// Forgets the entry `which` names in `asker`'s conversation.
    async fn forget(&self, asker: &Asker, which: Which, language: Language) -> Said {
        let owner = asker.owner();
        let id = match which {
            Which::Number(id) => id,
            Which::Text(asked) => {
                let found: Vec<(i64, String)> = self
                    .memories
                    .entries_of(&owner)
                    .into_iter()
                    .filter(|entry| search::says_all(&entry.text, &asked))
                    .map(|entry| (entry.id, entry.text))
                    .collect();
                match the_one(found, "forget", language) {
                    Some(Ok(id)) => id,
                    Some(Err(which)) => return which,
                    None => return said_text(say::nothing_remembered_like(language, &asked)),
                }
            }
        };
        match self.memories.forget(&owner, id).await {
            Ok(true) => Said {
                tool: Some("memory_forget"),
                text: say::forgotten(language, id),
            },
            Ok(false) => said_text(say::no_memory(language, id)),
            Err(error) => {
                error.logged();
                said_text(say::unavailable(language).into())
            }
        }
    }

    /// Cancels the reminder `which` names, of `asker`'s.
    async fn cancel(&self, asker: &Asker, which: Which, language: Language) -> Said {
        let id = match which {
            Which::Number(id) => id,
            Which::Text(asked) => {
                let reminders = match self.scheduler.reminders(&asker.member, language).await {
                    Ok(reminders) => reminders,
                    Err(error) => {
                        error.logged();
                        return said_text(say::unavailable(language).into());
                    }
                };
                let found: Vec<(i64, String)> = reminders
                    .into_iter()
                    .filter(|reminder| search::says_all(&reminder.text, &asked))
                    .map(|reminder| {
                        (
                            reminder.id,
                            format!("{} ({})", reminder.text, reminder.when),
                        )
                    })
                    .collect();
                match the_one(found, "cancel", language) {
                    Some(Ok(id)) => id,
                    Some(Err(which)) => return which,
                    None => return said_text(say::no_reminder_like(language, &asked)),
                }
            }
        };
        match self.scheduler.cancel(&asker.member, id).await {
            Ok(true) => Said {
                tool: Some("reminder_cancel"),
                text: say::cancelled(language, id),
            },
            Ok(false) => said_text(say::no_reminder(language, id)),
            Err(error) => {
                error.logged();
                said_text(say::unavailable(language).into())
            }
        }
    }

    /// Does `request` to one of the lists of `asker`'s conversation.
    pub(super) async fn list(
        &self,
        asker: &Asker,
        request: ListRequest,
        now: Timestamp,
    ) -> ListOutcome {
        let owner = asker.owner();
        let named = match &request {
            ListRequest::Add { list, .. }
            | ListRequest::Show { list }
            | ListRequest::Remove { list, .. } => lists::name(list),
        };
        let name = match named {
            Ok(name) => name,
            Err(error) => return ListOutcome::Refused(error),
        };
        let stored = match self.lists.list(&owner, &name).await {
            Ok(stored) => stored,
            Err(error) => {
                error.logged();
                return ListOutcome::Unavailable;
            }
        };
        match request {
            ListRequest::Show { .. } => ListOutcome::Shown {
                name,
                items: stored.into_iter().map(|(_, item)| item).collect(),
            },
            ListRequest::Remove { items, .. } => {
                let mut removed = 0;
                for asked in &items {
                    if let Some((id, _)) = stored
                        .iter()
                        .find(|(_, item)| lists::same_item(item, asked))
                        && self.lists.remove_item(&owner, *id).await.is_ok()
                    {
                        removed += 1;
                    }
                }
                ListOutcome::Removed {
                    name,
                    removed,
                    asked: items.len(),
                }
            }
            ListRequest::Add { items, .. } => {
                if stored.is_empty()
                    && self.lists.list_count(&owner).await.unwrap_or(0)
                        >= i64::try_from(lists::MAX_LISTS).unwrap_or(i64::MAX)
                {
                    return ListOutcome::Refused(ListError::TooMany);
                }
                let mut added = 0;
                for item in &items {
                    if stored.len() + added >= lists::MAX_ITEMS {
                        return ListOutcome::Refused(ListError::Full);
                    }
                    let item = match lists::item(item) {
                        Ok(item) => item,
                        Err(error) => return ListOutcome::Refused(error),
                    };
                    if self
                        .lists
                        .add_item(&owner, &name, &item, &asker.member, now.as_millisecond())
                        .await
                        .is_ok()
                    {
                        added += 1;
                    }
                }
                ListOutcome::Added { name, added }
            }
        }
    }
}

/// The one of `found` (each id and what it says) a member meant: its id;
/// when there are several, the question which (by number, for `command`);
/// `None` when there is none.
fn the_one(
    found: Vec<(i64, String)>,
    command: &str,
    language: Language,
) -> Option<Result<i64, Said>> {
    match found.as_slice() {
        [] => None,
        [(id, _)] => Some(Ok(*id)),
        _ => Some(Err(said_text(say::which_one(language, &found, command)))),
    }
}

fn said_text(text: String) -> Said {
    Said { tool: None, text }
}
