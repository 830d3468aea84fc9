//! The encrypted API's adapters: a chat request (`POST /api/chat`) is a
//! turn of the conversation use case ([`Gateway::ask`]) in the device's
//! channel, its reply sealed chunk by chunk; an assistant API request
//! (`POST /api/assistant`) is the assistant's answer (deliveries for
//! household messaging, a member's memory, reminders and documents),
//! sealed the same way. Admission (decryption, freshness, the device's
//! rate) is [`Gateway::admit_checked`]'s.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use hearth_e2ee::{ChatPayload, ChunkSealer, ErrorCode, ReplyEvent};
use hearth_llm::Message;

use crate::caller::Caller;
use crate::gateway::{Admitted, Ask, Gateway, Refused, Session, SlotGuard, failure};

/// An admitted chat request, read: what it asks, and the reply slot it
/// took before its answer's head went out (a busy gateway says so with
/// 503, as before decryption).
pub struct ChatTurn {
    payload: Result<ChatPayload, ()>,
    admitted: Admitted,
    slot: Option<SlotGuard>,
}

/// Reads an admitted chat request and takes its reply slot (the fair
/// share of the member it asks for): `Err` only when the gateway is busy.
pub fn read_chat(
    gateway: &Arc<Gateway>,
    caller: &Caller,
    admitted: Admitted,
) -> Result<ChatTurn, Refused> {
    let payload = serde_json::from_slice::<ChatPayload>(&admitted.plaintext).map_err(|error| {
        tracing::debug!(%error, "an admitted request's plaintext is not a chat request");
    });
    let slot = match &payload {
        Ok(payload) => gateway.slot_for(caller, payload.on_behalf_of.as_ref())?,
        Err(()) => None,
    };
    Ok(ChatTurn {
        payload,
        admitted,
        slot,
    })
}

/// The sealed reply to `turn`, as SSE lines. The model is asked, and its
/// first token awaited, before this returns; the rest is pulled through
/// by the response body as the client reads it, so a client that goes
/// away drops the backend request with it.
pub async fn chat(
    gateway: &Arc<Gateway>,
    turn: ChatTurn,
    caller: Caller,
) -> BoxStream<'static, Bytes> {
    let ChatTurn {
        payload,
        admitted,
        slot,
    } = turn;
    let Admitted {
        plaintext,
        peer,
        sealer,
        arrived,
    } = admitted;
    drop(plaintext);
    let events = match payload {
        Ok(payload) => chat_events(gateway, payload, peer, arrived, caller, slot).await,
        Err(()) => {
            gateway.metrics().outcome("chat", "bad_request");
            single(failure(ErrorCode::BadRequest))
        }
    };
    sealed(events, sealer)
}

async fn chat_events(
    gateway: &Arc<Gateway>,
    payload: ChatPayload,
    peer: String,
    arrived: std::time::Instant,
    caller: Caller,
    slot: Option<SlotGuard>,
) -> BoxStream<'static, ReplyEvent> {
    let channel = payload.channel.clone().unwrap_or_else(|| "default".into());
    if channel.is_empty() || channel.len() > 200 {
        gateway.metrics().outcome("chat", "bad_request");
        return single(ReplyEvent::Error {
            code: ErrorCode::BadRequest,
            message: "channel must be 1 to 200 characters".into(),
        });
    }
    // A chat command of the encrypted API: a new session in this channel.
    if payload.message.trim() == "/new" {
        let session = gateway.new_session(&channel, &peer);
        gateway.metrics().outcome("chat", "new_session");
        let events = [
            ReplyEvent::Notice {
                text: format!("New session {session} started."),
            },
            ReplyEvent::Done {
                finish_reason: "new_session".into(),
                usage: None,
            },
        ];
        return futures_util::stream::iter(events).boxed();
    }
    let mut user = Message::new("user", payload.message);
    user.images = payload.images;
    let ask = Ask {
        on_behalf_of: payload.on_behalf_of,
        session: Some(Session {
            channel,
            owner: peer,
        }),
        max_tokens: payload.max_tokens,
        temperature: payload.temperature,
        arrived,
        ..Ask::new(caller, vec![user], "chat")
    };
    match gateway.ask_holding(ask, slot).await {
        Ok(events) => events,
        Err(refused) => single(ReplyEvent::Error {
            code: refused.code,
            message: refused.message,
        }),
    }
}

/// An admitted assistant API request, read, with its reply slot.
pub struct AssistantCall {
    request: Result<hearth_assistant::api::Request, serde_json::Error>,
    admitted: Admitted,
    _slot: Option<SlotGuard>,
}

/// Reads an admitted assistant API request and takes its slot: `Err` only
/// when the gateway is busy.
pub fn read_assistant(
    gateway: &Arc<Gateway>,
    caller: &Caller,
    admitted: Admitted,
) -> Result<AssistantCall, Refused> {
    let request = serde_json::from_slice::<hearth_assistant::api::Request>(&admitted.plaintext);
    let slot = match &request {
        Ok(request) => gateway.slot_for(caller, request.asker.as_ref())?,
        Err(_) => None,
    };
    Ok(AssistantCall {
        request,
        admitted,
        _slot: slot,
    })
}

/// The sealed answer to an assistant API request: deliveries for household
/// messaging, and for a member (established as for chat) their memory,
/// reminders and documents.
pub async fn assistant(
    gateway: &Arc<Gateway>,
    call: AssistantCall,
    caller: &Caller,
) -> BoxStream<'static, Bytes> {
    use hearth_assistant::api::{Answer, MAX_WAIT_MS, Op};
    let AssistantCall {
        request,
        admitted,
        _slot,
    } = call;
    let Admitted {
        plaintext, sealer, ..
    } = admitted;
    drop(plaintext);
    let refused = |message: &str| Answer::Refused {
        message: message.to_owned(),
    };
    if let Ok(hearth_assistant::api::Request {
        asker,
        op: Op::Transcribe { audio, language },
    }) = &request
    {
        // The speech use case takes the member's reply slot itself.
        drop(_slot);
        let outcome = match caller.asker(asker.as_ref()) {
            Ok(Some(asker)) => transcribe(gateway, caller, &asker, audio, language.clone()).await,
            Ok(None) => Err(Refused::new(
                ErrorCode::InvalidRequestError,
                "name the member this is for",
            )),
            Err(why) => Err(Refused::new(ErrorCode::NotPermitted, why)),
        };
        // A refusal is the reply's final chunk, as a chat's is.
        let events = match outcome {
            Ok(answer) => vec![
                ReplyEvent::Data {
                    data: serde_json::to_value(&answer).unwrap_or_default(),
                },
                ReplyEvent::Done {
                    finish_reason: "stop".into(),
                    usage: None,
                },
            ],
            Err(refused) => vec![ReplyEvent::Error {
                code: refused.code,
                message: refused.message,
            }],
        };
        return sealed(futures_util::stream::iter(events).boxed(), sealer);
    }
    let answer = match (gateway.assistant(), request) {
        (None, _) => {
            refused("the household assistant is off on this gateway (hearth.assistant.enabled)")
        }
        (_, Err(error)) => Answer::Refused {
            message: format!("not an assistant request: {error}"),
        },
        (Some(assistant), Ok(request)) => match request.op {
            Op::Deliveries { after, wait_ms } => {
                if caller.speaks_for_members {
                    let wait = Duration::from_millis(wait_ms.min(MAX_WAIT_MS));
                    assistant.deliveries(after, wait).await
                } else {
                    refused("only household messaging collects the assistant's deliveries")
                }
            }
            op => match caller.asker(request.asker.as_ref()) {
                Ok(Some(asker)) => assistant.answer(&asker, op).await,
                Ok(None) => refused("name the member this is for"),
                Err(why) => refused(why),
            },
        },
    };
    drop(_slot);
    gateway.metrics().outcome("assistant", "ok");
    let events = [
        ReplyEvent::Data {
            data: serde_json::to_value(&answer).unwrap_or_default(),
        },
        ReplyEvent::Done {
            finish_reason: "stop".into(),
            usage: None,
        },
    ];
    sealed(futures_util::stream::iter(events).boxed(), sealer)
}

/// What `asker`'s recording (`audio`, base64) says, for household
/// messaging's app: the speech use case's answer as the assistant API's.
async fn transcribe(
    gateway: &Arc<Gateway>,
    caller: &Caller,
    asker: &hearth_assistant::scope::Asker,
    audio: &str,
    language: Option<String>,
) -> Result<hearth_assistant::api::Answer, Refused> {
    use base64::Engine as _;
    let audio = base64::engine::general_purpose::STANDARD
        .decode(audio)
        .map_err(|_| Refused::new(ErrorCode::InvalidRequestError, "the audio is not base64"))?;
    let hearing = crate::gateway::Hearing {
        model: None,
        hints: hearth_speech::whisper::Hints {
            language,
            ..Default::default()
        },
    };
    let heard = gateway
        .transcribe(caller, Some(asker), Bytes::from(audio), hearing)
        .await?;
    Ok(hearth_assistant::api::Answer::Heard {
        text: heard.transcript.text,
        language: Some(heard.transcript.language).filter(|language| !language.is_empty()),
        duration_ms: (heard.seconds * 1000.0).round() as u64,
    })
}

/// `events` sealed for the device, each an SSE line.
fn sealed(
    events: BoxStream<'static, ReplyEvent>,
    mut sealer: ChunkSealer,
) -> BoxStream<'static, Bytes> {
    events
        .map(move |event| Bytes::from(hearth_e2ee::chunks::sse_chunk(&mut sealer, &event)))
        .boxed()
}

fn single(event: ReplyEvent) -> BoxStream<'static, ReplyEvent> {
    futures_util::stream::once(async move { event }).boxed()
}
