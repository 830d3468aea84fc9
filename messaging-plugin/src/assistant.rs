//! The assistant as a member of the household's chat: a message for it goes
//! to the gateway through the encrypted API (as OpenClaw's channel plugins
//! do), one gateway session per (room, user); the answer streams into the
//! room as one message that grows, with a typing indicator, and a failure
//! shows as a short readable message instead of silence. Questions wait
//! their turn in a fair queue ([`crate::questions`]): one person cannot
//! keep the others from the assistant.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_chat_client::{ChatClient, ClientError};
use hearth_e2ee::{ChatPayload, ErrorCode, ReplyEvent};

use crate::protocol::{ASSISTANT, Message, MessageStatus, ServerEvent};
use crate::questions::{FairQueue, Limits, TooMany};
use crate::service::Messaging;

/// A question waiting for the assistant.
#[derive(Debug)]
struct Question {
    room: String,
    text: String,
}

/// How often a growing answer is sent to the room.
const UPDATE_EVERY: Duration = Duration::from_millis(50);
/// How long a question waits for a gateway that is not answering yet (it
/// restarts, or its container is still starting) before the room is told.
pub const GATEWAY_WAIT: Duration = Duration::from_secs(60);

/// The assistant's link to the gateway.
#[derive(Clone)]
pub struct Assistant {
    client: ChatClient,
    max_tokens: Option<u32>,
    queue: Arc<Mutex<FairQueue<Question>>>,
}

/// The gateway session of `user` in `room`.
pub fn channel_of(room: &str, user: &str) -> String {
    format!("messaging:{room}:{user}")
}

/// Why the assistant could not answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The gateway answered with this code.
    Gateway(ErrorCode),
    /// The gateway could not be reached.
    Unreachable,
    /// Nothing answered where the gateway should, for [`GATEWAY_WAIT`].
    NotUp,
    /// The reply was cut short or altered on the way.
    CutShort,
    /// Something else than the protocol came back.
    Protocol,
}

impl From<&ClientError> for Failure {
    fn from(error: &ClientError) -> Failure {
        match error {
            ClientError::Transport(_) => Failure::Unreachable,
            ClientError::Unreachable(_) => Failure::NotUp,
            ClientError::Refused { code, .. } => Failure::Gateway(*code),
            ClientError::Chunk(_) => Failure::CutShort,
            ClientError::NoKey | ClientError::Protocol(_) => Failure::Protocol,
        }
    }
}

/// What the room sees when the gateway could not answer.
pub fn failure_text(failure: Failure) -> String {
    let why = match failure {
        Failure::Gateway(ErrorCode::NoModel) => "no model is answering right now",
        Failure::Gateway(ErrorCode::ContextOverflow) => {
            "this conversation is too long for the model; send /new to start afresh"
        }
        Failure::Gateway(ErrorCode::RateLimited | ErrorCode::Busy) => {
            "too many questions at once; try again in a minute"
        }
        Failure::Unreachable => "the gateway cannot be reached",
        Failure::NotUp => "the gateway did not come up within a minute; is it running?",
        Failure::CutShort => "the answer was cut short",
        Failure::Gateway(_) | Failure::Protocol => "something went wrong",
    };
    format!("The assistant could not answer: {why}.")
}

impl Assistant {
    /// An assistant asking the gateway at `client`, taking questions in turn within `limits`.
    pub fn new(client: ChatClient, max_tokens: Option<u32>, limits: Limits) -> Assistant {
        Assistant {
            client,
            max_tokens,
            queue: Arc::new(Mutex::new(FairQueue::new(limits))),
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, FairQueue<Question>> {
        hearth_runtime::lock(&self.queue)
    }

    /// Queues `question` of `user` in `room`; it is answered in its turn.
    pub fn ask(
        &self,
        messaging: Arc<Messaging>,
        room: String,
        user: String,
        question: String,
    ) -> Result<(), TooMany> {
        self.queue().push(
            &user,
            Question {
                room,
                text: question,
            },
        )?;
        self.start_turns(&messaging);
        Ok(())
    }

    /// Starts answering every question whose turn has come.
    fn start_turns(&self, messaging: &Arc<Messaging>) {
        loop {
            let Some((user, question)) = self.queue().take_turn() else {
                return;
            };
            let assistant = self.clone();
            let messaging = Arc::clone(messaging);
            tokio::spawn(async move {
                assistant
                    .clone()
                    .answer(
                        Arc::clone(&messaging),
                        question.room,
                        user.clone(),
                        question.text,
                    )
                    .await;
                assistant.queue().done(&user);
                assistant.start_turns(&messaging);
            });
        }
    }

    /// Answers `question` of `user` in `room`.
    pub async fn answer(
        self,
        messaging: Arc<Messaging>,
        room: String,
        user: String,
        question: String,
    ) {
        let mut message = match messaging
            .store
            .post(&room, ASSISTANT, "", MessageStatus::Streaming, None)
            .await
        {
            Ok(message) => message,
            Err(error) => {
                tracing::error!(%error, "cannot store the assistant's answer");
                return;
            }
        };
        let hub = &messaging.hub;
        hub.publish(
            &room,
            &ServerEvent::Message {
                message: message.clone(),
            },
        );
        let typing = |active: bool| ServerEvent::Typing {
            room: room.clone(),
            user: ASSISTANT.into(),
            active,
        };
        hub.publish(&room, &typing(true));
        let payload = ChatPayload {
            message: question,
            channel: Some(channel_of(&room, &user)),
            max_tokens: self.max_tokens,
            temperature: None,
        };
        let mut failure: Option<Failure> = None;
        // The first words show at once; after that, updates come at most every UPDATE_EVERY.
        let mut last_sent: Option<Instant> = None;
        let mut on_event = |event: &ReplyEvent| match event {
            ReplyEvent::Delta { text } | ReplyEvent::Notice { text } => {
                message.body.push_str(text);
                if last_sent.is_none_or(|sent| sent.elapsed() >= UPDATE_EVERY) {
                    last_sent = Some(Instant::now());
                    hub.publish(&room, &update(&message));
                }
            }
            ReplyEvent::Error { code, .. } => failure = Some(Failure::Gateway(*code)),
            ReplyEvent::Meta { .. } | ReplyEvent::Done { .. } | ReplyEvent::ToolCalls { .. } => {}
        };
        let mut outcome = self.client.chat(&payload, &mut on_event).await;
        if matches!(outcome, Err(ClientError::Unreachable(_))) {
            // Nothing was sent: the gateway is not up yet (a restart, a pod
            // starting). The question waits for it, the room sees typing.
            tracing::info!(
                "the gateway is not answering yet; the question waits for it (at most {GATEWAY_WAIT:?})"
            );
            if self.client.wait_until_up(GATEWAY_WAIT).await {
                tracing::info!("the gateway answers; asking it");
                outcome = self.client.chat(&payload, &mut on_event).await;
            }
        }
        if let Err(error) = &outcome {
            let class = Failure::from(error);
            tracing::warn!(failure = ?class, "the gateway could not answer");
            failure.get_or_insert(class);
        }
        match failure {
            Some(code) => {
                if !message.body.is_empty() {
                    message.body.push_str("\n\n");
                }
                message.body.push_str(&failure_text(code));
                message.status = MessageStatus::Error;
            }
            None => message.status = MessageStatus::Done,
        }
        if let Err(error) = messaging.store.update(&message).await {
            tracing::error!(%error, "cannot store the assistant's answer");
        }
        hub.publish(&room, &update(&message));
        hub.publish(&room, &typing(false));
    }
}

fn update(message: &Message) -> ServerEvent {
    ServerEvent::Update {
        id: message.id,
        room: message.room.clone(),
        body: message.body.clone(),
        status: message.status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_read_as_sentences() {
        assert_eq!(
            failure_text(Failure::Gateway(ErrorCode::NoModel)),
            "The assistant could not answer: no model is answering right now."
        );
        assert!(
            failure_text(Failure::Gateway(ErrorCode::Unknown)).ends_with("something went wrong.")
        );
        assert_eq!(channel_of("household", "ada"), "messaging:household:ada");
        assert!(failure_text(Failure::NotUp).contains("did not come up"));
    }
}
