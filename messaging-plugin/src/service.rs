//! The messaging use cases, shared by the HTTP API and the WebSocket:
//! posting (and calling the assistant), typing, reading, deleting rooms,
//! within each person's limits.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::assistant::Assistant;
use crate::hub::Hub;
use crate::identity::Caller;
use crate::protocol::{
    ASSISTANT, DecodeError, Message, MessageStatus, ServerEvent, calls_assistant, check_body,
    check_room, may_access, question_for_assistant,
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
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

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
            posts: Mutex::default(),
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
        let allowed =
            hearth_runtime::lock(&self.posts).allow(&caller.user, Instant::now(), &self.limits);
        if !allowed {
            return Err(ServiceError::TooFast);
        }
        self.open_room(caller, room).await?;
        let message = self
            .store
            .post(room, &caller.user, body, MessageStatus::Sent, client_id)
            .await?;
        self.hub.publish(
            room,
            &ServerEvent::Message {
                message: message.clone(),
            },
        );
        if calls_assistant(room, &caller.user, body) {
            let refusal = match &self.assistant {
                Some(assistant) => assistant
                    .ask(
                        Arc::clone(self),
                        room.to_owned(),
                        caller,
                        question_for_assistant(body),
                    )
                    .err()
                    .map(|too_many| {
                        format!(
                            "The assistant is still on {} earlier questions of yours; ask again once they are answered.",
                            too_many.waiting
                        )
                    }),
                None => Some("No assistant is set up on this hub.".to_owned()),
            };
            if let Some(notice) = refusal {
                let notice = self
                    .store
                    .post(room, ASSISTANT, &notice, MessageStatus::Error, None)
                    .await?;
                self.hub
                    .publish(room, &ServerEvent::Message { message: notice });
            }
        }
        Ok(message)
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
