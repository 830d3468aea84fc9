//! The assistant as a member of the household's chat: a message for it goes
//! to the gateway through the encrypted API (as OpenClaw's channel plugins
//! do), one gateway session per (room, user); the answer streams into the
//! room as one message that grows, with a typing indicator, and a failure
//! shows as a short readable message instead of silence. Questions wait
//! their turn in a fair queue ([`hearth_assistant::turns`]): one person cannot
//! keep the others from the assistant.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_assistant::api::{Answer, Op, Request, Target};
use hearth_assistant::language::Language;
use hearth_assistant::scope::Asker;
use hearth_chat_client::{ChatClient, ClientError};
use hearth_e2ee::{ChatPayload, ErrorCode, ReplyEvent};

use crate::chat::Chat;
use crate::identity::Caller;
use crate::protocol::{
    ASSISTANT, Attachment, FileKind, Message, MessageStatus, RoomId, ServerEvent,
};
use hearth_assistant::turns::{FairQueue, Limits, TooMany};

/// A question waiting for the assistant.
#[derive(Debug)]
struct Question {
    room: String,
    text: String,
    capabilities: std::collections::BTreeMap<String, serde_json::Value>,
    device: std::net::IpAddr,
    language: Option<String>,
    /// Pictures shown with it (data URLs).
    images: Vec<String>,
}

/// What the assistant is asked about a picture shared with it.
pub const PICTURE_QUESTION: &str = "What is in this picture?";

/// How often a growing answer is sent to the room.
const UPDATE_EVERY: Duration = Duration::from_millis(50);
/// How long a question waits for a gateway that is not answering yet (it
/// restarts, or its container is still starting) before the room is told.
pub const GATEWAY_WAIT: Duration = Duration::from_secs(60);
/// How long the gateway holds a request for deliveries when none is due.
const DELIVERY_WAIT: Duration = Duration::from_secs(25);
/// Where the last delivery posted is kept (the store's meta table).
const DELIVERED: &str = "assistant-delivered";

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

/// Why a recording was not heard: the status the app is answered with,
/// and the gateway's sentence.
#[derive(Debug, PartialEq, Eq)]
pub struct NotHeard {
    /// The HTTP status.
    pub status: u16,
    /// Why, for the member.
    pub message: String,
}

/// The HTTP status for a recording the gateway refused with `code`. Pure.
pub fn not_heard_status(code: ErrorCode) -> u16 {
    match code {
        ErrorCode::NotPermitted => 403,
        ErrorCode::BudgetExhausted | ErrorCode::RateLimited | ErrorCode::Busy => 429,
        ErrorCode::InvalidRequestError | ErrorCode::BadRequest => 400,
        ErrorCode::NoModel | ErrorCode::ModelNotFound => 503,
        _ => 502,
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
        Failure::Gateway(ErrorCode::NotPermitted) => {
            "the household's policy does not let you use the assistant"
        }
        Failure::Gateway(ErrorCode::UnsupportedMediaType) => {
            "none of the household's models can look at pictures (a model that reads images is needed)"
        }
        Failure::Gateway(ErrorCode::BudgetExhausted) => {
            "you have used today's share of the assistant; it renews at midnight UTC"
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

    /// Queues `question` of `caller` in `room`; it is answered in its turn,
    /// in `language` when the member chose one.
    pub fn ask(
        &self,
        chat: Chat,
        room: String,
        caller: &Caller,
        question: String,
        language: Option<String>,
    ) -> Result<(), TooMany> {
        if let Some(command) = crate::commands::command(&question) {
            // What the assistant keeps is listed and changed at once, without the model.
            // Lists come in the language the gateway chose (the household's
            // when neither the app nor the words say); messaging's own
            // lines follow the app or the words.
            let speaks = Language::for_member(language.as_deref(), &question, Language::English);
            match command {
                Ok(op) => {
                    let asker = asker_of(caller, &room, language);
                    self.manage_then_post(chat, room, asker, op, speaks);
                }
                Err(not_done) => {
                    tokio::spawn(async move {
                        post_as_assistant(&chat, &room, &not_done.say(speaks)).await;
                    });
                }
            }
            return Ok(());
        }
        self.queue_question(&chat, caller, room, question, language, Vec::new())
    }

    /// Queues `text` of `caller` in `room` (with `images`) and starts the
    /// turns that have come.
    fn queue_question(
        &self,
        chat: &Chat,
        caller: &Caller,
        room: String,
        text: String,
        language: Option<String>,
        images: Vec<String>,
    ) -> Result<(), TooMany> {
        self.queue().push(
            &caller.user,
            Question {
                room,
                text,
                capabilities: caller.capabilities.clone(),
                device: caller.address,
                language,
                images,
            },
        )?;
        self.start_turns(chat);
        Ok(())
    }

    /// Asks the gateway's assistant API `op` for `asker`, then posts what
    /// it answers (or why it could not) in `room`, in the background.
    fn manage_then_post(&self, chat: Chat, room: String, asker: Asker, op: Op, language: Language) {
        let assistant = self.clone();
        tokio::spawn(async move {
            let text = match assistant.manage(asker, op).await {
                Ok(answer) => crate::commands::render(&answer, language),
                Err(failure) => failure_text(failure),
            };
            post_as_assistant(&chat, &room, &text).await;
        });
    }

    /// Takes a file `caller` shared in their conversation with the
    /// assistant in `room`: a document is kept among their documents (the
    /// assistant says so, or why not), a picture is a question in its turn.
    pub fn take_file(
        &self,
        chat: Chat,
        room: String,
        caller: &Caller,
        (kind, attachment, bytes): (FileKind, &Attachment, &[u8]),
        language: Option<String>,
    ) -> Result<(), TooMany> {
        use base64::Engine as _;
        let content = base64::engine::general_purpose::STANDARD.encode(bytes);
        match kind {
            FileKind::Document => {
                let op = Op::DocumentAdd {
                    file_name: attachment.name.clone(),
                    content,
                };
                let speaks =
                    Language::for_member(language.as_deref(), &attachment.name, Language::English);
                let asker = asker_of(caller, &room, language);
                self.manage_then_post(chat, room, asker, op, speaks);
                Ok(())
            }
            FileKind::Picture => {
                let picture = format!("data:{};base64,{content}", attachment.media_type);
                self.queue_question(
                    &chat,
                    caller,
                    room,
                    PICTURE_QUESTION.into(),
                    language,
                    vec![picture],
                )
            }
        }
    }

    /// Starts answering every question whose turn has come.
    fn start_turns(&self, chat: &Chat) {
        loop {
            let Some((user, question)) = self.queue().take_turn() else {
                return;
            };
            let assistant = self.clone();
            let chat = chat.clone();
            tokio::spawn(async move {
                let asker = Asker {
                    member: user.clone(),
                    room: RoomId::parse(&question.room).ok(),
                    capabilities: question.capabilities,
                    device: Some(question.device),
                    language: question.language,
                };
                assistant
                    .clone()
                    .answer(chat.clone(), asker, question.text, question.images)
                    .await;
                assistant.queue().done(&user);
                assistant.start_turns(&chat);
            });
        }
    }

    /// Asks the gateway's assistant API for `asker` (their memory,
    /// reminders, documents).
    pub async fn manage(&self, asker: Asker, op: Op) -> Result<Answer, Failure> {
        let request = Request {
            asker: Some(asker),
            op,
        };
        let value = self
            .client
            .assistant(&request)
            .await
            .map_err(|error| Failure::from(&error))?;
        serde_json::from_value(value).map_err(|_| Failure::Protocol)
    }

    /// What `caller`'s recording `audio` says, in `language` when given:
    /// heard by the hub (the gateway's speech recognition, under the
    /// member's policy and daily seconds, asked from their conversation
    /// with the assistant), given back to the app only.
    pub async fn transcribe(
        &self,
        caller: &Caller,
        audio: &[u8],
        language: Option<String>,
    ) -> Result<Answer, NotHeard> {
        use base64::Engine as _;
        let room = RoomId::assistant_dm(&caller.user)
            .map(|room| room.to_string())
            .unwrap_or_default();
        let request = Request {
            asker: Some(asker_of(caller, &room, language.clone())),
            op: Op::Transcribe {
                audio: base64::engine::general_purpose::STANDARD.encode(audio),
                language,
            },
        };
        match self.client.assistant(&request).await {
            Ok(value) => match serde_json::from_value(value) {
                Ok(heard @ Answer::Heard { .. }) => Ok(heard),
                Ok(Answer::Refused { message }) => Err(NotHeard {
                    status: 502,
                    message,
                }),
                Ok(_) | Err(_) => Err(NotHeard {
                    status: 502,
                    message: failure_text(Failure::Protocol),
                }),
            },
            Err(ClientError::Refused { code, message, .. }) => Err(NotHeard {
                status: not_heard_status(code),
                message,
            }),
            Err(error) => Err(NotHeard {
                status: 502,
                message: failure_text(Failure::from(&error)),
            }),
        }
    }

    /// Posts what the gateway's assistant delivers (reminders, scheduled
    /// answers) as they come due, into the member's conversation with it
    /// or the room; runs until the service stops. Each delivery is posted
    /// before the next is asked for, and the last one posted is kept, so a
    /// restart of either side loses none.
    pub async fn deliver(self, chat: Chat) {
        loop {
            let after = match chat.store.meta_number(DELIVERED).await {
                Ok(after) => after.unwrap_or(0),
                Err(error) => {
                    tracing::error!(%error, "cannot read the assistant's deliveries cursor");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
            };
            let request = Request {
                asker: None,
                op: Op::Deliveries {
                    after,
                    wait_ms: u64::try_from(DELIVERY_WAIT.as_millis()).unwrap_or(25_000),
                },
            };
            let answer = match self.client.assistant(&request).await {
                Ok(value) => serde_json::from_value::<Answer>(value),
                Err(ClientError::Unreachable(_)) => {
                    self.client.wait_until_up(GATEWAY_WAIT).await;
                    continue;
                }
                Err(error) => {
                    tracing::warn!(failure = ?Failure::from(&error), "cannot collect the assistant's deliveries");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    continue;
                }
            };
            match answer {
                Ok(Answer::Deliveries { deliveries }) => {
                    for delivery in deliveries {
                        let room = match &delivery.target {
                            Target::Member(member) => match RoomId::assistant_dm(member) {
                                Ok(room) => room.to_string(),
                                Err(error) => {
                                    tracing::warn!(%error, "a delivery for no member is dropped");
                                    continue;
                                }
                            },
                            Target::Room(room) => room.clone(),
                        };
                        let exists = chat.store.room_creator(&room).await.ok().flatten();
                        if exists.is_none() && matches!(delivery.target, Target::Room(_)) {
                            tracing::info!(
                                "a delivery for a room that no longer exists is dropped"
                            );
                        } else {
                            post_as_assistant(&chat, &room, &delivery.text).await;
                        }
                        if let Err(error) = chat.store.set_meta_number(DELIVERED, delivery.id).await
                        {
                            tracing::error!(%error, "cannot record a delivery");
                        }
                    }
                }
                Ok(Answer::Refused { .. }) | Ok(_) | Err(_) => {
                    tracing::warn!("the gateway refused to give the assistant's deliveries");
                    tokio::time::sleep(Duration::from_secs(10)).await;
                }
            }
        }
    }

    /// Answers `question` of a member in a room (`asker`): the gateway
    /// is told for whom it answers, so it uses their memory, documents and
    /// reminders and no one else's.
    pub async fn answer(self, chat: Chat, asker: Asker, question: String, images: Vec<String>) {
        let Some(room) = asker.room.as_ref().map(RoomId::to_string) else {
            tracing::warn!("a question asked in no room is not answered");
            return;
        };
        let mut message = match chat
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
        let hub = &chat.hub;
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
            channel: Some(channel_of(&room, &asker.member)),
            max_tokens: self.max_tokens,
            temperature: None,
            images,
            on_behalf_of: Some(asker),
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
            ReplyEvent::Tool { name } => {
                message.body.push_str(&tool_line(name));
                last_sent = Some(Instant::now());
                hub.publish(&room, &update(&message));
            }
            ReplyEvent::Error { code, .. } => failure = Some(Failure::Gateway(*code)),
            ReplyEvent::Meta { .. }
            | ReplyEvent::Done { .. }
            | ReplyEvent::ToolCalls { .. }
            | ReplyEvent::Data { .. } => {}
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
        if let Err(error) = chat.store.update(&message).await {
            tracing::error!(%error, "cannot store the assistant's answer");
        }
        hub.publish(&room, &update(&message));
        hub.publish(&room, &typing(false));
    }
}

/// Who asks: `caller`, in `room`, reading `language`.
fn asker_of(caller: &Caller, room: &str, language: Option<String>) -> Asker {
    Asker {
        member: caller.user.clone(),
        room: RoomId::parse(room).ok(),
        capabilities: caller.capabilities.clone(),
        device: Some(caller.address),
        language,
    }
}

/// Posts `text` as the assistant in `room` (made if it is a DM not yet opened).
async fn post_as_assistant(chat: &Chat, room: &str, text: &str) {
    if let Err(error) = chat.store.ensure_room(room, ASSISTANT).await {
        tracing::error!(%error, "cannot open a room for the assistant");
        return;
    }
    match chat
        .store
        .post(room, ASSISTANT, text, MessageStatus::Done, None)
        .await
    {
        Ok(message) => chat.hub.publish(room, &ServerEvent::Message { message }),
        Err(error) => tracing::error!(%error, "cannot store the assistant's message"),
    }
}

/// How the chat shows that the assistant ran a tool: a line of its own
/// in the answer, before what the assistant then says.
pub fn tool_line(name: &str) -> String {
    format!("\u{1f527} {name}\n")
}

fn update(message: &Message) -> ServerEvent {
    ServerEvent::Update {
        id: message.id,
        room: message.room.clone(),
        body: message.body.clone(),
        status: message.status,
        edited_at: message.edited_at,
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

    #[test]
    fn a_refused_recording_answers_the_app_with_its_kind_of_status() {
        assert_eq!(not_heard_status(ErrorCode::NotPermitted), 403);
        assert_eq!(not_heard_status(ErrorCode::BudgetExhausted), 429);
        assert_eq!(not_heard_status(ErrorCode::InvalidRequestError), 400);
        assert_eq!(not_heard_status(ErrorCode::NoModel), 503);
        assert_eq!(not_heard_status(ErrorCode::BackendFailed), 502);
    }
}
