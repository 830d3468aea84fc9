//! The messaging use cases, shared by the HTTP API and the WebSocket:
//! posting (and calling the assistant), typing, reading, deleting rooms,
//! within each person's limits.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::assistant::Assistant;
use crate::hub::Hub;
use crate::identity::Caller;
use crate::protocol::{
    ASSISTANT, DecodeError, Message, MessageStatus, RoomId, ServerEvent, calls_assistant,
    check_body, check_room, may_access, question_for_assistant,
};
use crate::quota::{Limits, PostBudget};
use crate::store::{Store, StoreError};

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Bad input.
    #[error(transparent)]
    Invalid(#[from] DecodeError),
    /// A DM of other people.
    #[error("{0} is a conversation between other people")]
    NotYours(String),
    /// Too many messages from this person.
    #[error("you are posting too fast; wait a moment")]
    TooFast,
    /// This person created as many rooms as they may.
    #[error("you have created {0} rooms, the most one person may; delete one first")]
    TooManyRooms(i64),
    /// The room does not exist.
    #[error("there is no room {0}")]
    NoSuchRoom(String),
    /// Only the room's creator or an admin may delete it.
    #[error("only whoever created {0} (or an admin) may delete it")]
    NotCreator(String),
    /// No such message in the room.
    #[error("there is no message {0} in this room")]
    NoSuchMessage(i64),
    /// Only its writer may change or delete a message, and only a sent one.
    #[error("only its writer may change or delete a message")]
    NotWriter,
    /// A search with no word, or too long.
    #[error("a search has 1 to {} characters", crate::protocol::MAX_QUERY)]
    BadQuery,
    /// A shared file that is not taken.
    #[error(transparent)]
    File(#[from] crate::protocol::FileRefusal),
    /// A shared file's message is not edited.
    #[error("a shared file is not edited: delete it and share it again")]
    FileNotEdited,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the assistant's place says when no assistant is set up.
const NO_ASSISTANT: &str = "No assistant is set up on this hub.";

/// Most messages a search returns.
pub const SEARCH_RESULTS: usize = 50;
/// Most messages a search reads (the newest first).
pub const SEARCH_SCAN: usize = 20_000;

/// The messaging service.
pub struct Messaging {
    /// Messages and rooms.
    pub store: Store,
    /// Live fan-out.
    pub hub: Hub,
    /// The assistant, when configured.
    pub assistant: Option<Assistant>,
    /// Per-person limits.
    pub limits: Limits,
    /// Users who may delete any room.
    pub admins: Vec<String>,
    /// Search by meaning, when an embedding model is configured.
    pub meaning: Option<Arc<crate::meaning::Meaning>>,
    posts: Mutex<PostBudget>,
}

impl Messaging {
    /// The service over `store`.
    pub fn new(
        store: Store,
        assistant: Option<Assistant>,
        limits: Limits,
        admins: Vec<String>,
    ) -> Messaging {
        Messaging {
            store,
            hub: Hub::default(),
            assistant,
            limits,
            admins,
            meaning: None,
            posts: Mutex::default(),
        }
    }

    /// The service searching by meaning with `meaning` (by words alone
    /// without).
    pub fn with_meaning(mut self, meaning: Option<Arc<crate::meaning::Meaning>>) -> Messaging {
        self.meaning = meaning;
        self
    }

    /// The store and the fan-out, as the assistant writes through them.
    pub fn chat(&self) -> crate::chat::Chat {
        crate::chat::Chat {
            store: self.store.clone(),
            hub: self.hub.clone(),
        }
    }

    /// Checks that `caller` may use `room`.
    pub fn check_access(caller: &Caller, room: &str) -> Result<(), ServiceError> {
        check_room(room)?;
        if may_access(&caller.user, room) {
            Ok(())
        } else {
            Err(ServiceError::NotYours(room.to_owned()))
        }
    }

    /// Makes `room` exist for `caller`: a new room counts against the
    /// rooms they may create (direct conversations do not).
    pub async fn open_room(&self, caller: &Caller, room: &str) -> Result<(), ServiceError> {
        Messaging::check_access(caller, room)?;
        if self.store.room_creator(room).await?.is_some() {
            return Ok(());
        }
        if !check_room(room)?.is_dm() {
            let created = self.store.rooms_created_by(&caller.user).await?;
            if created >= i64::from(self.limits.rooms_per_user) {
                return Err(ServiceError::TooManyRooms(created));
            }
        }
        self.store.ensure_room(room, &caller.user).await?;
        Ok(())
    }

    /// Posts `body` to `room` as `caller`; calls the assistant when the
    /// message is for it.
    pub async fn post(
        self: &Arc<Self>,
        caller: &Caller,
        room: &str,
        body: &str,
        client_id: Option<&str>,
    ) -> Result<Message, ServiceError> {
        Messaging::check_access(caller, room)?;
        check_body(body)?;
        if client_id.is_some_and(|id| id.is_empty() || id.len() > 64) {
            return Err(DecodeError::Invalid("client_id has 1 to 64 bytes".into()).into());
        }
        self.admit_post(caller, room).await?;
        let message = match client_id {
            Some(client_id) => {
                let (message, fresh) = self
                    .store
                    .post_once(room, &caller.user, body, client_id)
                    .await?;
                if !fresh {
                    // Sent before (a retry after a lost reply): the same
                    // message, posted and answered once.
                    return Ok(message);
                }
                message
            }
            None => {
                self.store
                    .post(room, &caller.user, body, MessageStatus::Sent, None)
                    .await?
            }
        };
        self.hub.publish(
            room,
            &ServerEvent::Message {
                message: message.clone(),
            },
        );
        if calls_assistant(room, &caller.user, body) {
            let language = self.store.language(&caller.user).await?;
            let refusal = match &self.assistant {
                Some(assistant) => assistant
                    .ask(
                        self.chat(),
                        room.to_owned(),
                        caller,
                        question_for_assistant(body),
                        language,
                    )
                    .err()
                    .map(|too_many| {
                        format!(
                            "The assistant is still on {} earlier questions of yours; ask again once they are answered.",
                            too_many.waiting
                        )
                    }),
                None => Some(NO_ASSISTANT.to_owned()),
            };
            if let Some(notice) = refusal {
                self.assistant_notice(room, &notice).await?;
            }
        }
        Ok(message)
    }

    /// `caller` shares the file `name` (`bytes`) into `room`: kept with
    /// the room's history (sealed as bodies are). Shared with the
    /// assistant (its conversation with the caller), a document goes to
    /// the caller's documents and a picture is looked at.
    pub async fn share_file(
        self: &Arc<Self>,
        caller: &Caller,
        room: &str,
        name: &str,
        bytes: &[u8],
    ) -> Result<Message, ServiceError> {
        Messaging::check_access(caller, room)?;
        let (kind, attachment) = crate::protocol::check_file(name, bytes)?;
        self.admit_post(caller, room).await?;
        let message = self
            .store
            .post_file(room, &caller.user, &attachment, bytes)
            .await?;
        self.hub.publish(
            room,
            &ServerEvent::Message {
                message: message.clone(),
            },
        );
        let with_assistant = RoomId::parse(room).is_ok_and(|id| id.is_dm() && id.with_assistant());
        if with_assistant {
            let language = self.store.language(&caller.user).await?;
            let refusal = match &self.assistant {
                Some(assistant) => assistant
                    .take_file(
                        self.chat(),
                        room.to_owned(),
                        caller,
                        (kind, &attachment, bytes),
                        language,
                    )
                    .err()
                    .map(|too_many| {
                        format!(
                            "The assistant is still on {} earlier questions of yours; share it again once they are answered.",
                            too_many.waiting
                        )
                    }),
                None => Some(NO_ASSISTANT.to_owned()),
            };
            if let Some(notice) = refusal {
                self.assistant_notice(room, &notice).await?;
            }
        }
        Ok(message)
    }

    /// Lets `caller` post in `room` (within their posting rate; a new room
    /// made theirs).
    async fn admit_post(&self, caller: &Caller, room: &str) -> Result<(), ServiceError> {
        let allowed =
            hearth_runtime::lock(&self.posts).allow(&caller.user, Instant::now(), &self.limits);
        if !allowed {
            return Err(ServiceError::TooFast);
        }
        self.open_room(caller, room).await
    }

    /// Why the assistant does not answer, posted in `room` as its message.
    async fn assistant_notice(&self, room: &str, notice: &str) -> Result<(), ServiceError> {
        let message = self
            .store
            .post(room, ASSISTANT, notice, MessageStatus::Error, None)
            .await?;
        self.hub.publish(room, &ServerEvent::Message { message });
        Ok(())
    }

    /// The message `id` and its file's bytes, for `caller` (who may read
    /// its room).
    pub async fn file(
        &self,
        caller: &Caller,
        id: i64,
    ) -> Result<(Message, zeroize::Zeroizing<Vec<u8>>), ServiceError> {
        let message = self
            .store
            .message(id)
            .await?
            .ok_or(ServiceError::NoSuchMessage(id))?;
        // Another's conversation answers as a missing file does: nothing
        // says a message of that number exists (and nothing is opened).
        Messaging::check_access(caller, &message.room)
            .map_err(|_| ServiceError::NoSuchMessage(id))?;
        let content = self
            .store
            .file(&message)
            .await?
            .ok_or(ServiceError::NoSuchMessage(id))?;
        Ok((message, content))
    }

    /// The message `id` of `room` that `caller` wrote and may still change.
    async fn own_message(
        &self,
        caller: &Caller,
        room: &str,
        id: i64,
    ) -> Result<Message, ServiceError> {
        Messaging::check_access(caller, room)?;
        let message = self
            .store
            .message(id)
            .await?
            .filter(|message| message.room == room)
            .ok_or(ServiceError::NoSuchMessage(id))?;
        if message.sender != caller.user || message.status != MessageStatus::Sent {
            return Err(ServiceError::NotWriter);
        }
        Ok(message)
    }

    /// `caller` changes their message `id` in `room` to `body`.
    pub async fn edit(
        &self,
        caller: &Caller,
        room: &str,
        id: i64,
        body: &str,
    ) -> Result<Message, ServiceError> {
        check_body(body)?;
        let mut message = self.own_message(caller, room, id).await?;
        if message.attachment.is_some() {
            return Err(ServiceError::FileNotEdited);
        }
        message.body = body.to_owned();
        self.change(message).await
    }

    /// `caller` deletes their message `id` in `room` (its text is gone; the
    /// room shows that a message was deleted).
    pub async fn delete_message(
        &self,
        caller: &Caller,
        room: &str,
        id: i64,
    ) -> Result<Message, ServiceError> {
        let mut message = self.own_message(caller, room, id).await?;
        message.body = String::new();
        message.status = MessageStatus::Deleted;
        message.attachment = None;
        self.change(message).await
    }

    async fn change(&self, mut message: Message) -> Result<Message, ServiceError> {
        let now = hearth_runtime::clock::unix_millis();
        message.edited_at = Some(now);
        self.store.edit(&message, now).await?;
        self.hub.publish(
            &message.room,
            &ServerEvent::Update {
                id: message.id,
                room: message.room.clone(),
                body: message.body.clone(),
                status: message.status,
                edited_at: message.edited_at,
            },
        );
        Ok(message)
    }

    /// The messages `caller` may see that answer `query`: with a search
    /// model, the recent ones closest in meaning first (best first), then
    /// the newest holding every word of it; without, those alone.
    pub async fn search(&self, caller: &Caller, query: &str) -> Result<Vec<Message>, ServiceError> {
        let words = crate::protocol::query_words(query).ok_or(ServiceError::BadQuery)?;
        let mut found: Vec<Message> = Vec::new();
        if let Some(meaning) = &self.meaning {
            let ids = meaning.search(&caller.user, query, SEARCH_RESULTS).await;
            // Read again: what the index holds may have changed since.
            found = self.store.messages(&ids).await?;
            found.retain(|message| {
                message.status != MessageStatus::Deleted && may_access(&caller.user, &message.room)
            });
        }
        let by_words = self
            .store
            .search(&caller.user, &words, SEARCH_RESULTS, SEARCH_SCAN)
            .await?;
        for message in by_words {
            if found.len() >= SEARCH_RESULTS {
                break;
            }
            if !found.iter().any(|known| known.id == message.id) {
                found.push(message);
            }
        }
        Ok(found)
    }

    /// Deletes `room`, if `caller` created it or is an admin.
    pub async fn delete_room(&self, caller: &Caller, room: &str) -> Result<(), ServiceError> {
        if check_room(room)?.is_dm() {
            return Err(ServiceError::NotCreator(room.to_owned()));
        }
        let creator = self
            .store
            .room_creator(room)
            .await?
            .ok_or_else(|| ServiceError::NoSuchRoom(room.to_owned()))?;
        if creator != caller.user && !self.admins.contains(&caller.user) {
            return Err(ServiceError::NotCreator(room.to_owned()));
        }
        if self.store.delete_room(room).await? {
            self.hub.publish(
                room,
                &ServerEvent::RoomDeleted {
                    room: room.to_owned(),
                },
            );
        }
        Ok(())
    }

    /// `caller` is typing in `room`.
    pub fn typing(&self, caller: &Caller, room: &str) -> Result<(), ServiceError> {
        Messaging::check_access(caller, room)?;
        self.hub.publish(
            room,
            &ServerEvent::Typing {
                room: room.to_owned(),
                user: caller.user.clone(),
                active: true,
            },
        );
        Ok(())
    }

    /// `caller` has read `room` up to `id`.
    pub async fn read(&self, caller: &Caller, room: &str, id: i64) -> Result<(), ServiceError> {
        Messaging::check_access(caller, room)?;
        self.store.mark_read(room, &caller.user, id).await?;
        self.hub.publish(
            room,
            &ServerEvent::Read {
                room: room.to_owned(),
                user: caller.user.clone(),
                id,
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(user: &str) -> Caller {
        Caller {
            user: user.into(),
            node: format!("{user}-phone"),
            node_id: 1,
            address: std::net::IpAddr::from([100, 64, 0, 9]),
            capabilities: Default::default(),
        }
    }

    async fn service(dir: &std::path::Path) -> Arc<Messaging> {
        let key = crate::atrest::AtRestKey::new(&[7; 32]);
        let store = Store::open(dir, Some(key)).await.unwrap();
        store.ensure_room("household", "hearth").await.unwrap();
        Arc::new(Messaging::new(store, None, Limits::default(), Vec::new()))
    }

    #[tokio::test]
    async fn a_message_sent_again_with_its_id_is_posted_once() {
        let dir = tempfile::tempdir().unwrap();
        let messaging = service(dir.path()).await;
        let mut live = messaging.hub.subscribe();
        let ada = caller("ada");
        let first = messaging
            .post(&ada, "household", "buy milk", Some("c-1"))
            .await
            .unwrap();
        // The offline queue retries after a lost reply.
        let again = messaging
            .post(&ada, "household", "buy milk", Some("c-1"))
            .await
            .unwrap();
        assert_eq!(again.id, first.id);
        let (page, _) = messaging
            .store
            .history("household", None, 10)
            .await
            .unwrap();
        assert_eq!(page.len(), 1);
        assert!(live.try_recv().is_ok(), "the first is published");
        assert!(live.try_recv().is_err(), "the retry is not");
        // Another member's id of the same text is another message.
        let ben = messaging
            .post(&caller("ben"), "household", "buy milk", Some("c-1"))
            .await
            .unwrap();
        assert_ne!(ben.id, first.id);
        assert!(
            messaging
                .post(&ada, "household", "x", Some(&"a".repeat(65)))
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn only_its_writer_edits_or_deletes_a_message_and_search_sees_the_change() {
        let dir = tempfile::tempdir().unwrap();
        let messaging = service(dir.path()).await;
        let (ada, ben) = (caller("ada"), caller("ben"));
        let message = messaging
            .post(&ada, "household", "dinner at 6", None)
            .await
            .unwrap();
        let secret = messaging
            .post(&ada, "dm:ada,ben", "우유 사기 dinner", None)
            .await
            .unwrap();
        assert!(matches!(
            messaging
                .edit(&ben, "household", message.id, "mine now")
                .await,
            Err(ServiceError::NotWriter)
        ));
        assert!(matches!(
            messaging
                .delete_message(&ben, "household", message.id)
                .await,
            Err(ServiceError::NotWriter)
        ));
        // Named with another room, the message is not found there.
        assert!(matches!(
            messaging.edit(&ada, "garden", message.id, "x").await,
            Err(ServiceError::NoSuchMessage(_))
        ));
        let edited = messaging
            .edit(&ada, "household", message.id, "dinner at 7")
            .await
            .unwrap();
        assert!(edited.edited_at.is_some());
        let stored = messaging.store.message(message.id).await.unwrap().unwrap();
        assert_eq!(stored.body, "dinner at 7");

        // Search: the member's rooms only, every word, sealed bodies read.
        let found = |user: &str, query: &str| {
            let messaging = Arc::clone(&messaging);
            let caller = caller(user);
            let query = query.to_owned();
            async move {
                messaging
                    .search(&caller, &query)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|message| message.id)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(found("ben", "DINNER").await, [secret.id, message.id]);
        assert_eq!(
            found("cy", "dinner").await,
            [message.id],
            "not another's DM"
        );
        assert_eq!(found("ada", "우유").await, [secret.id]);
        assert!(
            found("ada", "at 6").await.is_empty(),
            "the old text is gone"
        );

        let deleted = messaging
            .delete_message(&ada, "household", message.id)
            .await
            .unwrap();
        assert_eq!(deleted.status, MessageStatus::Deleted);
        assert!(found("ben", "dinner at").await.is_empty());
        assert!(matches!(
            messaging.edit(&ada, "household", message.id, "back").await,
            Err(ServiceError::NotWriter)
        ));
        assert!(matches!(
            messaging.search(&ada, " ").await,
            Err(ServiceError::BadQuery)
        ));
    }

    #[tokio::test]
    async fn a_shared_file_is_sealed_read_by_the_room_alone_and_goes_with_its_message() {
        let dir = tempfile::tempdir().unwrap();
        let messaging = service(dir.path()).await;
        let (ada, ben, cy) = (caller("ada"), caller("ben"), caller("cy"));
        let pdf = b"%PDF-1.7\n the spare key is under the blue pot";
        let message = messaging
            .share_file(&ada, "dm:ada,ben", "key.pdf", pdf)
            .await
            .unwrap();
        let about = message.attachment.clone().unwrap();
        assert_eq!(
            (about.name.as_str(), about.media_type.as_str(), about.size),
            ("key.pdf", "application/pdf", pdf.len() as u64)
        );
        // History shows the file; ben (in the conversation) reads it, cy
        // (not in it) is told there is no such message.
        let (page, _) = messaging
            .store
            .history("dm:ada,ben", None, 10)
            .await
            .unwrap();
        assert_eq!(page[0].attachment.as_ref(), Some(&about));
        let (_, bytes) = messaging.file(&ben, message.id).await.unwrap();
        assert_eq!(bytes.as_slice(), pdf);
        assert!(matches!(
            messaging.file(&cy, message.id).await,
            Err(ServiceError::NoSuchMessage(_))
        ));
        // Sealed at rest: neither the name nor the bytes are in the file.
        drop(page);
        messaging.store.close().await;
        let raw: Vec<u8> = ["messages.db", "messages.db-wal"]
            .iter()
            .flat_map(|name| std::fs::read(dir.path().join(name)).unwrap_or_default())
            .collect();
        let holds = |needle: &[u8]| raw.windows(needle.len()).any(|window| window == needle);
        assert!(
            holds(b"dm:ada,ben"),
            "the room's name is stored as it is: the file is read"
        );
        assert!(!holds(b"spare key") && !holds(b"key.pdf"), "sealed at rest");

        let messaging = service(dir.path()).await;
        assert!(matches!(
            messaging
                .edit(&ada, "dm:ada,ben", message.id, "renamed")
                .await,
            Err(ServiceError::FileNotEdited)
        ));
        messaging
            .delete_message(&ada, "dm:ada,ben", message.id)
            .await
            .unwrap();
        assert!(matches!(
            messaging.file(&ada, message.id).await,
            Err(ServiceError::NoSuchMessage(_))
        ));
        let (page, _) = messaging
            .store
            .history("dm:ada,ben", None, 10)
            .await
            .unwrap();
        assert_eq!(page[0].attachment, None);

        // What is not taken: another kind, a disguised one, too large, no name.
        for (name, bytes) in [
            ("tool.exe", &b"MZ\x90\x00"[..]),
            ("notes.pdf", &b"plain text calling itself a PDF"[..]),
            ("", &b"hello"[..]),
            ("../up.txt", &b"hello"[..]),
        ] {
            assert!(
                matches!(
                    messaging.share_file(&ada, "household", name, bytes).await,
                    Err(ServiceError::File(_))
                ),
                "{name}"
            );
        }
        let large = vec![b'a'; usize::try_from(crate::protocol::MAX_ATTACHMENT_BYTES).unwrap() + 1];
        assert!(matches!(
            messaging
                .share_file(&ada, "household", "big.txt", &large)
                .await,
            Err(ServiceError::File(crate::protocol::FileRefusal::Size))
        ));
        assert!(matches!(
            messaging
                .share_file(&cy, "dm:ada,ben", "a.txt", b"hi")
                .await,
            Err(ServiceError::NotYours(_))
        ));
    }
}
