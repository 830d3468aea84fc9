//! The messaging use cases, shared by the HTTP API and the WebSocket:
//! posting (and calling the assistant), typing, reading.

use std::sync::Arc;

use crate::assistant::Assistant;
use crate::hub::Hub;
use crate::identity::Caller;
use crate::protocol::{
    ASSISTANT, DecodeError, Message, ServerEvent, calls_assistant, check_body, check_room,
    may_access, question_for_assistant,
};
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
}

impl Messaging {
    /// Checks that `caller` may use `room`.
    pub fn check_access(caller: &Caller, room: &str) -> Result<(), ServiceError> {
        check_room(room)?;
        if may_access(&caller.user, room) {
            Ok(())
        } else {
            Err(ServiceError::NotYours(room.to_owned()))
        }
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
        let message = self
            .store
            .post(room, &caller.user, body, "sent", client_id)
            .await?;
        self.hub.publish(
            room,
            &ServerEvent::Message {
                message: message.clone(),
            },
        );
        if calls_assistant(room, &caller.user, body) {
            match &self.assistant {
                Some(assistant) => {
                    let question = question_for_assistant(body);
                    tokio::spawn(assistant.clone().answer(
                        Arc::clone(self),
                        room.to_owned(),
                        caller.user.clone(),
                        question,
                    ));
                }
                None => {
                    let notice = self
                        .store
                        .post(
                            room,
                            ASSISTANT,
                            "No assistant is set up on this hub.",
                            "error",
                            None,
                        )
                        .await?;
                    self.hub
                        .publish(room, &ServerEvent::Message { message: notice });
                }
            }
        }
        Ok(message)
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
