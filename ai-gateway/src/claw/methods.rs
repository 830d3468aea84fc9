//! The methods of OpenClaw's protocol a household uses, on Hearth: health
//! and status, models, the agent and chat (the member's assistant answers,
//! streamed as `agent` and `chat` events), sessions, automations (the
//! assistant's reminders and scheduled questions), configuration (read,
//! secrets redacted). Any other method is answered with a clear error.

use std::sync::Arc;

use futures_util::StreamExt;
use hearth_e2ee::chat::ReplyEvent;
use hearth_llm::Message;
use serde_json::{Value, json};

use super::wire::{self, Code, ErrorShape, Request};
use super::{Connection, now_ms};
use crate::gateway::Gateway;

/// Each method and the scope it needs.
const METHODS: [(&str, &str); 51] = [
    ("health", "operator.read"),
    ("status", "operator.read"),
    ("models.list", "operator.read"),
    ("agents.list", "operator.read"),
    ("agent", "operator.write"),
    ("agent.wait", "operator.write"),
    ("chat.send", "operator.write"),
    ("chat.history", "operator.read"),
    ("chat.abort", "operator.write"),
    ("sessions.list", "operator.read"),
    ("sessions.reset", "operator.write"),
    ("cron.list", "operator.read"),
    ("cron.status", "operator.read"),
    ("cron.add", "operator.write"),
    ("cron.remove", "operator.write"),
    ("cron.run", "operator.write"),
    ("config.get", "operator.admin"),
    ("system-presence", "operator.read"),
    ("last-heartbeat", "operator.read"),
    ("sessions.subscribe", "operator.read"),
    ("sessions.describe", "operator.read"),
    ("commands.list", "operator.read"),
    ("question.list", "operator.read"),
    ("plugin.approval.list", "operator.read"),
    ("taskSuggestions.list", "operator.read"),
    ("chat.startup", "operator.read"),
    ("chat.metadata", "operator.read"),
    ("sessions.messages.subscribe", "operator.read"),
    ("sessions.messages.unsubscribe", "operator.read"),
    ("sessions.unsubscribe", "operator.read"),
    ("sessions.branches.list", "operator.read"),
    ("sessions.companion.state", "operator.read"),
    ("sessions.observer.visibility", "operator.read"),
    ("agent.identity.get", "operator.read"),
    ("models.authStatus", "operator.read"),
    ("tasks.list", "operator.read"),
    ("exec.approval.list", "operator.read"),
    ("openclaw.approval.list", "operator.read"),
    ("progressCard.get", "operator.read"),
    ("update.status", "operator.read"),
    ("memory.search", "operator.read"),
    ("device.pair.list", "operator.pairing"),
    ("device.pair.approve", "operator.pairing"),
    ("device.pair.reject", "operator.pairing"),
    ("device.pair.remove", "operator.pairing"),
    ("tts.status", "operator.read"),
    ("tts.speak", "operator.write"),
    ("talk.config", "operator.read"),
    ("talk.catalog", "operator.read"),
    ("talk.session.create", "operator.write"),
    ("talk.speak", "operator.write"),
];

/// What this gateway's answers promise beyond the methods: `models.list`
/// gives the published catalog (`openclaw models list` requires it).
const CAPABILITIES: [&str; 1] = ["published-model-catalog"];

/// The events this gateway sends.
const EVENTS: [&str; 5] = ["connect.challenge", "agent", "chat", "tick", "health"];

/// The `hello-ok` payload.
pub(crate) fn hello(gateway: &Gateway, principal: &super::Principal, auth: Value) -> Value {
    let agent = gateway.agents().default_id().to_owned();
    json!({
        "type": "hello-ok",
        "protocol": wire::PROTOCOL,
        "server": {"version": concat!("hearth-", env!("CARGO_PKG_VERSION")), "connId": super::pairing::uuid_like()},
        "features": {"methods": METHODS.iter().map(|(name, _)| *name).collect::<Vec<_>>(), "events": EVENTS,
                     "capabilities": CAPABILITIES},
        "snapshot": {
            "presence": [],
            "health": health(gateway),
            "stateVersion": {"presence": 0, "health": 0},
            "uptimeMs": 0,
            "sessionDefaults": {
                "defaultAgentId": agent, "mainKey": "main", "mainSessionKey": format!("agent:{agent}:main"),
                "scope": "per-sender", "modelConfigured": true, "selectionRequired": false,
            },
        },
        "auth": auth,
        "policy": {
            "maxPayload": wire::MAX_PAYLOAD_BYTES,
            "maxBufferedBytes": wire::MAX_BUFFERED_BYTES,
            "tickIntervalMs": wire::TICK_MS,
        },
        "member": principal.member,
    })
}

/// Answers one request.
pub(crate) async fn call(connection: &Arc<Connection>, request: Request) {
    tracing::debug!(method = %request.method, "OpenClaw method");
    let Some((_, scope)) = METHODS.iter().find(|(name, _)| *name == request.method) else {
        connection.send(wire::error(
            &request.id,
            &ErrorShape::unknown_method(&request.method),
        ));
        return;
    };
    if !connection.has(scope) {
        connection.send(wire::error(&request.id, &ErrorShape::missing_scope(scope)));
        return;
    }
    let id = request.id.clone();
    let answer = match request.method.as_str() {
        "health" => Ok(health(&connection.gateway)),
        "status" => Ok(status(connection)),
        "models.list" => Ok(models(connection)),
        "agents.list" => Ok(agents(&connection.gateway)),
        "agent" => return agent(connection, request).await,
        "agent.wait" => Ok(json!({"status": "ok"})),
        "chat.send" => return chat_send(connection, request).await,
        "chat.history" => chat_history(connection, &request.params).await,
        "chat.abort" => chat_abort(connection, &request.params),
        "sessions.list" => Ok(sessions_list(connection)),
        "sessions.reset" => sessions_reset(connection, &request.params),
        "cron.list" => cron_list(connection, &request.params).await,
        "cron.status" => cron_status(connection).await,
        "cron.add" => cron_add(connection, &request.params).await,
        "cron.remove" => cron_remove(connection, &request.params).await,
        "cron.run" => cron_run(connection, &request.params).await,
        "config.get" => Ok(config_get(&connection.gateway)),
        "system-presence" => Ok(json!([])),
        "last-heartbeat" => Ok(Value::Null),
        // The session list is read again on each change a client sees;
        // Hearth pushes no session events, so there is nothing to join.
        "sessions.subscribe" => Ok(json!({"subscribed": true})),
        "sessions.describe" => sessions_describe(connection, &request.params),
        "commands.list" => Ok(commands()),
        // Hearth's assistant asks no questions of its operators and has no
        // plugin approvals or task suggestions: the lists are empty.
        "question.list" => Ok(json!({"questions": []})),
        "plugin.approval.list" => Ok(json!([])),
        "taskSuggestions.list" => Ok(json!({"suggestions": []})),
        "chat.startup" => chat_history(connection, &request.params).await,
        "chat.metadata" => {
            Ok(json!({"models": models(connection)["models"], "commands": commands()["commands"]}))
        }
        "sessions.messages.subscribe" => {
            Ok(json!({"subscribed": true, "key": request.params["key"]}))
        }
        "sessions.messages.unsubscribe" | "sessions.unsubscribe" => {
            Ok(json!({"subscribed": false}))
        }
        "sessions.branches.list" => Ok(json!({"branches": []})),
        "sessions.companion.state" => Ok(json!({"exchanges": []})),
        "sessions.observer.visibility" => Ok(json!({"ok": true})),
        "agent.identity.get" => Ok(identity(
            &connection.gateway,
            request.params["agentId"].as_str(),
        )),
        "models.authStatus" => Ok(auth_status(&connection.gateway)),
        // Runs are not kept as tasks, nothing waits for approval, there
        // are no progress cards, and Hearth is updated by its packages.
        "tasks.list" => Ok(json!({"tasks": []})),
        "exec.approval.list" | "openclaw.approval.list" => Ok(json!([])),
        "progressCard.get" => Ok(json!({"card": null})),
        "memory.search" => memory_search(connection, &request.params).await,
        "device.pair.list" => super::devices::list(&connection.claw).await,
        "device.pair.approve" => super::devices::approve(&connection.claw, &request.params).await,
        "device.pair.reject" => super::devices::reject(&connection.claw, &request.params).await,
        "device.pair.remove" => super::devices::remove(&connection.claw, &request.params).await,
        "tts.status" => Ok(tts_status()),
        "talk.config" => Ok(json!({"config": {}})),
        "tts.speak" | "talk.speak" => Err(ErrorShape::new(Code::Unavailable, NO_SPEECH_OUT)),
        "talk.catalog" | "talk.session.create" => {
            Err(ErrorShape::new(Code::Unavailable, NO_REALTIME_VOICE))
        }
        "update.status" => Ok(
            json!({"sentinel": null, "updateAvailable": null, "effectiveChannel": "stable",
                                     "schedule": {"channel": "stable", "autoEnabled": false}}),
        ),
        other => Err(ErrorShape::unknown_method(other)),
    };
    connection.send(match answer {
        Ok(payload) => wire::ok(&id, payload),
        Err(error) => wire::error(&id, &error),
    });
}

/// Why `tts.speak` makes no audio: replies are read aloud on the device.
const NO_SPEECH_OUT: &str = "the hub makes no speech: replies are read aloud by the device's own voices \
     (the household app's read-aloud, Web Speech synthesis on the phone), so no reply is turned into audio \
     on the hub or sent to a voice service";

/// Why the talk mode's realtime session is not offered.
const NO_REALTIME_VOICE: &str = "Hearth has no realtime voice session: members hold to talk in the household \
     app, the hub hears the recording (POST /v1/audio/transcriptions, whisper.cpp on the hub) and the \
     device reads the reply aloud";

/// `tts.status` as OpenClaw gives it, with the one provider there is: the
/// device's own voices.
fn tts_status() -> Value {
    json!({
        "enabled": false, "auto": "off", "provider": "device", "persona": null, "personas": [],
        "fallbackProvider": null, "fallbackProviders": [], "prefsPath": null,
        "providerStates": [{"id": "device", "label": "The device's own voices (Web Speech; read aloud on the device)", "configured": true}],
    })
}

fn health(gateway: &Gateway) -> Value {
    let default = gateway.agents().default_id();
    let agents: Vec<Value> = gateway
        .agents()
        .ids()
        .map(|id| json!({"agentId": id, "isDefault": id == default, "heartbeat": {"enabled": false}, "sessions": {"path": "sessions.db", "count": 0, "recent": []}}))
        .collect();
    json!({
        "ok": gateway.router().ready(),
        "ts": now_ms(), "durationMs": 0,
        "plugins": {"loaded": [], "errors": [], "unavailable": []},
        "channels": {}, "channelOrder": [], "channelLabels": {},
        "heartbeatSeconds": 0, "defaultAgentId": default, "agents": agents,
        "sessions": {"path": "hearth", "count": 0, "recent": []},
    })
}

fn status(connection: &Connection) -> Value {
    json!({
        "ok": true,
        "server": concat!("hearth-", env!("CARGO_PKG_VERSION")),
        "member": connection.principal.member,
        "models": connection.gateway.permitted_model_ids(&connection.caller),
    })
}

fn models(connection: &Connection) -> Value {
    let models: Vec<Value> = connection
        .gateway
        .models()
        .iter()
        .filter(|model| {
            connection
                .caller
                .access()
                .permits(&crate::access::Target::Model(model.to_string()))
        })
        .enumerate()
        .map(|(index, model)| {
            let gateway = &connection.gateway;
            let settings = gateway.config().model(&model.provider, &model.model);
            let name = settings
                .and_then(|settings| settings.name.clone())
                .unwrap_or_else(|| model.model.clone());
            let context = settings.map(|settings| settings.context_window);
            // Private compute's nodes answer from elsewhere.
            let local = gateway
                .config()
                .models
                .providers
                .get(&model.provider)
                .is_none_or(|provider| provider.api != hearth_llm::Api::HearthEnclave);
            let capabilities = gateway.capabilities(&model.to_string());
            let input = if capabilities.contains(&"vision") {
                json!(["text", "image"])
            } else {
                json!(["text"])
            };
            // The published catalog (`openclaw models list`): each chat
            // model the member may use.
            json!({"id": model.model, "name": name, "provider": model.provider, "reasoning": false,
                   "input": input, "contextWindow": context, "local": local, "available": true,
                   "tags": if index == 0 { json!(["default"]) } else { json!([]) },
                   "thinkingLevels": [{"id": "off", "label": "off"}], "thinkingDefault": "off"})
        })
        .collect();
    json!({"models": models})
}

/// An agent's name as the clients show it (its persona's file name is not
/// a name; the household calls it the assistant).
fn identity(gateway: &Gateway, agent: Option<&str>) -> Value {
    let agent = agent.unwrap_or_else(|| gateway.agents().default_id());
    json!({"agentId": agent, "name": "Assistant", "nameSource": "default", "avatar": "A"})
}

/// The providers' sign-in state: Hearth's come from its configuration.
fn auth_status(gateway: &Gateway) -> Value {
    let providers: Vec<Value> = gateway
        .config()
        .models
        .providers
        .keys()
        .map(|id| json!({"provider": id, "authProvider": id, "displayName": id, "status": "static", "profiles": [],
                          "apiKey": {"source": "config"}}))
        .collect();
    json!({"ts": now_ms(), "providers": providers, "providerCapabilities": []})
}

/// The model an agent starts with (`provider/model`).
fn primary_model(gateway: &Gateway, agent: &str) -> Option<String> {
    gateway
        .agents()
        .get(agent)
        .and_then(|found| found.model.as_ref().map(ToString::to_string))
        .or_else(|| gateway.models().first().map(ToString::to_string))
}

fn agents(gateway: &Gateway) -> Value {
    let default = gateway.agents().default_id();
    let agents: Vec<Value> = gateway
        .agents()
        .ids()
        .map(|id| {
            let name = gateway
                .agents()
                .get(id)
                .and_then(|agent| agent.name.clone())
                .unwrap_or_else(|| id.to_owned());
            json!({"id": id, "kind": "agent", "name": name, "default": id == default,
                   "model": {"primary": primary_model(gateway, id)}})
        })
        .collect();
    json!({"defaultId": default, "mainKey": "main", "scope": "per-sender", "ownership": "sole",
           "selectionRequired": false, "agents": agents})
}

/// `agent:<id>:<rest>` (or a bare key, which is the default agent's), with
/// `main` meaning the agent's main session.
fn session_of(
    gateway: &Gateway,
    key: Option<&str>,
    agent: Option<&str>,
) -> Result<(String, String), ErrorShape> {
    let default = gateway.agents().default_id().to_owned();
    let key = key.map(str::trim).filter(|key| !key.is_empty());
    let (agent, rest) = match key.and_then(|key| key.strip_prefix("agent:")) {
        Some(scoped) => {
            let (agent, rest) = scoped
                .split_once(':')
                .ok_or_else(|| ErrorShape::invalid("a session key reads agent:<agentId>:<key>"))?;
            (agent.to_owned(), rest.to_owned())
        }
        None => (
            agent.map_or(default, str::to_owned),
            key.unwrap_or("main").to_owned(),
        ),
    };
    if gateway.agents().get(&agent).is_none() {
        return Err(ErrorShape::invalid(format!("no agent is called {agent:?}")));
    }
    if rest.is_empty() || rest.len() > 200 || rest.chars().any(char::is_control) {
        return Err(ErrorShape::invalid(
            "a session key has 1 to 200 printable characters",
        ));
    }
    Ok((agent.clone(), format!("agent:{agent}:{rest}")))
}

fn text_param(params: &Value, name: &str) -> Result<String, ErrorShape> {
    params[name]
        .as_str()
        .filter(|text| !text.trim().is_empty())
        .map(str::to_owned)
        .ok_or_else(|| ErrorShape::invalid(format!("{name} must be non-empty text")))
}

fn run_id(params: &Value) -> String {
    params["idempotencyKey"]
        .as_str()
        .filter(|key| !key.is_empty() && key.len() <= 128)
        .map_or_else(super::pairing::uuid_like, str::to_owned)
}

/// What a run ended with.
struct Ended {
    text: String,
    stop_reason: String,
    error: Option<ErrorShape>,
    aborted: bool,
}

/// Runs one turn of `agent` in `session_key` for the connection's member,
/// streaming `agent` and `chat` events.
async fn run(
    connection: &Arc<Connection>,
    run_id: &str,
    agent: &str,
    session_key: &str,
    message: String,
) -> Ended {
    let gateway = &connection.gateway;
    let stop = connection
        .claw
        .start_run(run_id, &connection.key, session_key, connection.id);
    let base = json!({"runId": run_id, "sessionKey": session_key, "agentId": agent});
    let with = |extra: Value| {
        let mut event = base.clone();
        if let (Some(event), Some(extra)) = (event.as_object_mut(), extra.as_object()) {
            event.extend(extra.clone());
        }
        event
    };
    connection.event("agent", with(json!({"stream": "lifecycle", "data": {"phase": "start", "startedAt": now_ms()}, "ts": now_ms()})));
    let ask = crate::gateway::Ask {
        model: Some(format!("openclaw/{agent}")),
        session: Some(crate::gateway::Session {
            channel: format!("openai:{session_key}"),
            owner: connection.caller.session_owner(),
        }),
        ..crate::gateway::Ask::new(
            connection.caller.clone(),
            vec![Message::new("user", message)],
            "openclaw",
        )
    };
    let opened = gateway.ask(ask).await;
    let mut events = match opened {
        Ok(events) => events,
        Err(refused) => {
            connection.claw.end_run(run_id);
            let shape = ErrorShape::new(
                if refused.code == hearth_e2ee::ErrorCode::NotPermitted {
                    Code::Forbidden
                } else {
                    Code::Unavailable
                },
                refused.message,
            )
            .with_details(json!({"code": refused.code.as_str()}));
            connection.event("agent", with(json!({"stream": "lifecycle", "data": {"phase": "error", "error": shape.message}, "ts": now_ms()})));
            connection.event(
                "chat",
                with(json!({"state": "error", "errorMessage": shape.message})),
            );
            return Ended {
                text: String::new(),
                stop_reason: "error".into(),
                error: Some(shape),
                aborted: false,
            };
        }
    };
    let mut text = String::new();
    let mut ended = Ended {
        text: String::new(),
        stop_reason: "stop".into(),
        error: None,
        aborted: false,
    };
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => { ended.aborted = true; ended.stop_reason = "aborted".into(); break }
            event = events.next() => event,
        };
        match event {
            Some(ReplyEvent::Delta { text: delta }) => {
                text.push_str(&delta);
                connection.event("agent", with(json!({"stream": "assistant", "data": {"text": text, "delta": delta}, "ts": now_ms()})));
                connection.event("chat", with(json!({"state": "delta", "deltaText": delta,
                    "message": {"role": "assistant", "content": [{"type": "text", "text": text}], "timestamp": now_ms()}})));
            }
            Some(ReplyEvent::Tool { name }) => {
                connection.event("agent", with(json!({"stream": "tool", "data": {"phase": "start", "name": name}, "ts": now_ms()})));
            }
            Some(ReplyEvent::Notice { text: notice }) => {
                text.push_str(&notice);
                connection.event("chat", with(json!({"state": "delta", "deltaText": notice,
                    "message": {"role": "assistant", "content": [{"type": "text", "text": text}], "timestamp": now_ms()}})));
            }
            Some(ReplyEvent::Done {
                finish_reason,
                usage,
            }) => {
                ended.stop_reason = finish_reason;
                if let Some(usage) = usage {
                    connection.event("agent", with(json!({"stream": "usage", "data": {"inputTokens": usage.prompt_tokens, "outputTokens": usage.completion_tokens}, "ts": now_ms()})));
                }
                break;
            }
            Some(ReplyEvent::Error { code, message }) => {
                ended.error = Some(
                    ErrorShape::new(Code::Unavailable, message)
                        .with_details(json!({"code": code.as_str()})),
                );
                ended.stop_reason = "error".into();
                break;
            }
            Some(_) => {}
            None => break,
        }
    }
    connection.claw.end_run(run_id);
    ended.text = text.clone();
    let state = if ended.aborted {
        "aborted"
    } else if ended.error.is_some() {
        "error"
    } else {
        "final"
    };
    connection.event("agent", with(json!({"stream": "lifecycle", "data": {"phase": "end", "stopReason": ended.stop_reason, "aborted": ended.aborted, "endedAt": now_ms()}, "ts": now_ms()})));
    let mut chat = with(json!({"state": state, "stopReason": ended.stop_reason,
        "message": {"role": "assistant", "content": [{"type": "text", "text": text}], "timestamp": now_ms()}}));
    if let Some(error) = &ended.error {
        chat["errorMessage"] = json!(error.message);
    }
    connection.event("chat", chat);
    ended
}

/// `agent`: accepted at once, then the final result under the same id.
async fn agent(connection: &Arc<Connection>, request: Request) {
    let params = &request.params;
    let opened = text_param(params, "message").and_then(|message| {
        session_of(
            &connection.gateway,
            params["sessionKey"].as_str(),
            params["agentId"].as_str(),
        )
        .map(|(agent, key)| (message, agent, key))
    });
    let (message, agent, session_key) = match opened {
        Ok(opened) => opened,
        Err(error) => return connection.send(wire::error(&request.id, &error)),
    };
    let run_id = run_id(params);
    connection.send(wire::ok(&request.id, json!({"runId": run_id, "sessionKey": session_key, "agentId": agent, "status": "accepted", "acceptedAt": now_ms()})));
    let ended = run(connection, &run_id, &agent, &session_key, message).await;
    let frame = match ended.error {
        Some(error) => wire::error(&request.id, &error),
        None => wire::ok(
            &request.id,
            json!({
                "runId": run_id, "status": if ended.aborted { "aborted" } else { "ok" }, "summary": "completed",
                "result": {"payloads": [{"text": ended.text, "mediaUrl": null}], "meta": {"stopReason": ended.stop_reason, "agentId": agent, "sessionKey": session_key}},
            }),
        ),
    };
    connection.send(frame);
}

/// `chat.send`: started at once; the reply comes as `chat` events.
async fn chat_send(connection: &Arc<Connection>, request: Request) {
    let params = &request.params;
    let opened = text_param(params, "message").and_then(|message| {
        session_of(&connection.gateway, params["sessionKey"].as_str(), None)
            .map(|(agent, key)| (message, agent, key))
    });
    let (message, agent, session_key) = match opened {
        Ok(opened) => opened,
        Err(error) => return connection.send(wire::error(&request.id, &error)),
    };
    if params["attachments"]
        .as_array()
        .is_some_and(|list| !list.is_empty())
    {
        return connection.send(wire::error(
            &request.id,
            &ErrorShape::invalid(
                "attachments are not taken here yet: share a document into your documents folder",
            ),
        ));
    }
    let run_id = run_id(params);
    connection.send(wire::ok(
        &request.id,
        json!({"runId": run_id, "status": "started"}),
    ));
    run(connection, &run_id, &agent, &session_key, message).await;
}

async fn chat_history(connection: &Connection, params: &Value) -> Result<Value, ErrorShape> {
    let (_, key) = session_of(&connection.gateway, params["sessionKey"].as_str(), None)?;
    let (session, history) = connection
        .gateway
        .history(&format!("openai:{key}"), &connection.caller.session_owner())
        .await
        .map_err(|_| ErrorShape::new(Code::Unavailable, "the session store failed"))?;
    let limit = params["limit"].as_u64().map_or(200, |limit| {
        usize::try_from(limit).unwrap_or(200).clamp(1, 1000)
    });
    let skip = history.len().saturating_sub(limit);
    let messages: Vec<Value> = history
        .iter()
        .skip(skip)
        .map(|message| {
            if message.role == "user" {
                json!({"role": "user", "content": message.content})
            } else {
                json!({"role": message.role, "content": [{"type": "text", "text": message.content}]})
            }
        })
        .collect();
    Ok(
        json!({"sessionKey": key, "sessionId": session, "messages": messages, "thinkingLevel": "off"}),
    )
}

fn chat_abort(connection: &Connection, params: &Value) -> Result<Value, ErrorShape> {
    let (_, key) = session_of(&connection.gateway, params["sessionKey"].as_str(), None)?;
    let runs = connection
        .claw
        .abort(&connection.key, &key, params["runId"].as_str());
    Ok(json!({"ok": true, "aborted": !runs.is_empty(), "runIds": runs}))
}

fn sessions_list(connection: &Connection) -> Value {
    let owner = connection.caller.session_owner();
    let sessions: Vec<Value> = connection
        .gateway
        .session_channels(&owner, "openai:agent:")
        .into_iter()
        .map(|(channel, session)| {
            let key = channel.trim_start_matches("openai:").to_owned();
            let agent = key.split(':').nth(1).unwrap_or("main").to_owned();
            session_entry(&key, &session, &agent)
        })
        .collect();
    json!({"ts": now_ms(), "path": "hearth", "count": sessions.len(), "totalCount": sessions.len(), "hasMore": false,
           "nextOffset": null, "sessions": sessions, "defaults": session_defaults(&connection.gateway)})
}

fn session_entry(key: &str, session: &str, agent: &str) -> Value {
    json!({"key": key, "kind": "direct", "chatType": "direct", "agentId": agent, "sessionId": session,
           "displayName": key, "isMain": key.ends_with(":main"), "classification": if key.ends_with(":main") { "main" } else { "direct" },
           "archived": false, "pinned": false, "unread": false, "visibility": "shared"})
}

fn sessions_describe(connection: &Connection, params: &Value) -> Result<Value, ErrorShape> {
    let (agent, key) = session_of(
        &connection.gateway,
        params["key"].as_str().or(params["sessionKey"].as_str()),
        None,
    )?;
    let session = connection
        .gateway
        .session_channels(&connection.caller.session_owner(), &format!("openai:{key}"))
        .into_iter()
        .find(|(channel, _)| channel == &format!("openai:{key}"))
        .map(|(_, session)| session)
        .unwrap_or_default();
    Ok(json!({"session": session_entry(&key, &session, &agent)}))
}

/// The slash commands Hearth's assistant understands in a chat.
fn commands() -> Value {
    json!({"commands": [
        {"name": "new", "nativeName": "new", "textAliases": ["/new"], "description": "Start a new session.",
         "category": "session", "source": "native", "scope": "both", "acceptsArgs": false},
    ]})
}

/// The model new sessions use, as `sessions.list` reports it.
fn session_defaults(gateway: &Gateway) -> Value {
    let primary = primary_model(gateway, gateway.agents().default_id()).unwrap_or_default();
    let (provider, model) = primary.split_once('/').unwrap_or(("", primary.as_str()));
    json!({"modelProvider": provider, "model": model, "contextTokens": null})
}

fn sessions_reset(connection: &Connection, params: &Value) -> Result<Value, ErrorShape> {
    let key = params["key"].as_str().or(params["sessionKey"].as_str());
    let (_, key) = session_of(&connection.gateway, key, None)?;
    let session = connection
        .gateway
        .new_session(&format!("openai:{key}"), &connection.caller.session_owner());
    Ok(json!({"ok": true, "key": key, "entry": {"sessionId": session}}))
}

/// The assistant and the member a `cron.*` or `memory.search` call acts for.
fn scheduler_for(
    connection: &Connection,
) -> Result<(&crate::assistant::Assistant, hearth_roster::Asker), ErrorShape> {
    let assistant = connection
        .gateway
        .assistant()
        .map(|assistant| assistant.as_ref())
        .ok_or_else(|| {
            ErrorShape::new(
                Code::Unavailable,
                "the household assistant is off on this hub",
            )
        })?;
    match connection.caller.asker(None) {
        Ok(Some(asker)) => Ok((assistant, asker)),
        _ => Err(ErrorShape::new(
            Code::Forbidden,
            "automations and memory belong to a member: connect from a member's paired device",
        )),
    }
}

/// `memory.search`: what the member's assistant remembers for them that
/// best answers `query` (OpenClaw's `maxResults`, 1 to 50, default 20).
async fn memory_search(connection: &Connection, params: &Value) -> Result<Value, ErrorShape> {
    let query = params["query"]
        .as_str()
        .map(str::trim)
        .filter(|query| !query.is_empty())
        .ok_or_else(|| ErrorShape::invalid("query must be a non-empty string"))?;
    let limit = match &params["maxResults"] {
        Value::Null => 20,
        value => value
            .as_f64()
            .filter(|limit| limit.is_finite())
            .ok_or_else(|| ErrorShape::invalid("maxResults must be a finite number when provided"))?
            .clamp(1.0, 50.0) as usize,
    };
    let (assistant, asker) = scheduler_for(connection)?;
    let found = assistant.search_memory(&asker, query, limit).await;
    let results: Vec<Value> = found
        .iter()
        .map(|text| json!({"path": "memory", "source": "memory", "snippet": text}))
        .collect();
    Ok(
        json!({"agentId": connection.gateway.agents().default_id(), "provider": "hearth", "searchMode": "hybrid", "results": results}),
    )
}

fn store_failed<E>(_: E) -> ErrorShape {
    ErrorShape::new(Code::Unavailable, "the assistant's store failed")
}

/// The member's automations, with the assistant keeping them.
async fn member_jobs(
    connection: &Connection,
) -> Result<
    (
        &crate::assistant::Assistant,
        Vec<crate::assistant::store::Job>,
    ),
    ErrorShape,
> {
    let (assistant, asker) = scheduler_for(connection)?;
    let jobs = assistant
        .scheduler()
        .jobs(&asker.member)
        .await
        .map_err(store_failed)?;
    Ok((assistant, jobs))
}

/// A page of the member's automations, as OpenClaw's clients check it
/// (the offset and limit asked for, a snapshot revision, `nextOffset`).
async fn cron_list(connection: &Connection, params: &Value) -> Result<Value, ErrorShape> {
    let (_, jobs) = member_jobs(connection).await?;
    let offset = params["offset"]
        .as_u64()
        .map_or(0, |offset| usize::try_from(offset).unwrap_or(usize::MAX));
    let limit = params["limit"].as_u64().map_or(200, |limit| {
        usize::try_from(limit).unwrap_or(200).clamp(1, 200)
    });
    let listed: Vec<Value> = jobs
        .iter()
        .skip(offset)
        .take(limit)
        .map(super::cron::job)
        .collect();
    let next = offset.saturating_add(listed.len());
    let has_more = next < jobs.len();
    let revision = {
        use sha2::Digest;
        let mut hash = sha2::Sha256::new();
        for job in &jobs {
            hash.update(format!("{}:{};", job.id, job.next_at));
        }
        let digest = hash.finalize();
        format!(
            "hearth:{}",
            digest
                .iter()
                .take(8)
                .map(|byte| format!("{byte:02x}"))
                .collect::<String>()
        )
    };
    Ok(
        json!({"jobs": listed, "total": jobs.len(), "offset": offset, "limit": limit, "hasMore": has_more,
              "nextOffset": if has_more { json!(next) } else { Value::Null }, "snapshotRevision": revision, "scope": "caller"}),
    )
}

async fn cron_status(connection: &Connection) -> Result<Value, ErrorShape> {
    let (assistant, jobs) = member_jobs(connection).await?;
    Ok(
        json!({"enabled": assistant.scheduler().enabled(), "storage": "hearth", "jobs": jobs.len(),
              "nextWakeAtMs": jobs.iter().map(|job| job.next_at).min()}),
    )
}

async fn cron_add(connection: &Connection, params: &Value) -> Result<Value, ErrorShape> {
    let (assistant, asker) = scheduler_for(connection)?;
    let scheduler = assistant.scheduler();
    let scheduled = super::cron::scheduled(params, jiff::Timestamp::now(), scheduler.timezone())?;
    let language = assistant.language_for(&asker, "");
    let (added, _) = scheduler
        .schedule(&asker, scheduled, language)
        .await
        .map_err(|refused| ErrorShape::invalid(refused.say(language)))?;
    Ok(super::cron::job(&added))
}

async fn cron_remove(connection: &Connection, params: &Value) -> Result<Value, ErrorShape> {
    let (assistant, asker) = scheduler_for(connection)?;
    let id = super::cron::job_id(params)?;
    let removed = assistant
        .scheduler()
        .cancel(&asker.member, id)
        .await
        .map_err(store_failed)?;
    Ok(json!({"ok": true, "removed": removed}))
}

async fn cron_run(connection: &Connection, params: &Value) -> Result<Value, ErrorShape> {
    let (assistant, asker) = scheduler_for(connection)?;
    let id = super::cron::job_id(params)?;
    if !assistant
        .scheduler()
        .run_now(&asker.member, id)
        .await
        .map_err(store_failed)?
    {
        return Err(ErrorShape::invalid(format!(
            "there is no automation {id} of yours"
        )));
    }
    Ok(json!({"ok": true, "enqueued": true, "runId": format!("manual:{id}:{}", now_ms())}))
}

/// The configuration as the gateway runs it: where it listens, its
/// providers and agents; secrets are never in it (and any key naming one
/// is redacted besides).
fn config_get(gateway: &Gateway) -> Value {
    let config = &gateway.config();
    let providers: serde_json::Map<String, Value> = config
        .models
        .providers
        .iter()
        .map(|(id, provider)| {
            let urls: Vec<String> = provider.base_url.list().iter().map(ToString::to_string).collect();
            (id.clone(), json!({"baseUrl": urls.first(), "baseUrls": urls, "api": format!("{:?}", provider.api)}))
        })
        .collect();
    let mut view = json!({
        "gateway": {"mode": "local", "port": config.gateway.port, "bind": format!("{:?}", config.gateway.bind).to_lowercase(),
                    "auth": {"mode": if config.token_source() == crate::config::TokenSource::Off { "none" } else { "token" }}},
        "models": {"providers": providers},
        "agents": {"defaults": {"model": {"primary": config.chain().first()}}, "list": gateway.agents().ids().collect::<Vec<_>>()},
    });
    redact(&mut view);
    json!({"exists": true, "valid": true, "config": view, "issues": []})
}

/// Replaces every value whose key names a secret.
pub fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                let lower = key.to_ascii_lowercase();
                if ["token", "password", "secret", "apikey", "api_key", "key"]
                    .iter()
                    .any(|word| lower == *word || lower.ends_with(word))
                    && !inner.is_object()
                    && !inner.is_null()
                {
                    *inner = json!("__OPENCLAW_REDACTED__");
                } else {
                    redact(inner);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_the_configuration_are_redacted_wherever_they_sit() {
        let mut config = json!({"gateway": {"auth": {"mode": "token", "token": "s3cret"}},
            "models": {"providers": {"x": {"apiKey": "sk-1", "baseUrl": "http://127.0.0.1"}}},
            "list": [{"password": "p"}], "hearth": {"tokenFile": null}});
        redact(&mut config);
        let text = config.to_string();
        for secret in ["s3cret", "sk-1", "\"p\""] {
            assert!(!text.contains(secret), "{text}");
        }
        assert_eq!(config["gateway"]["auth"]["mode"], "token");
        assert_eq!(
            config["models"]["providers"]["x"]["baseUrl"],
            "http://127.0.0.1"
        );
    }

    #[test]
    fn every_method_listed_has_a_scope_of_the_closed_set() {
        for (method, scope) in METHODS {
            assert!(super::super::pairing::SCOPES.contains(&scope), "{method}");
        }
    }
}
