//! OpenClaw's gateway protocol on Hearth's gateway, spoken by a client of
//! the test's own so that each attack can be made exactly: an unpaired
//! device, a forged signature, a replayed challenge, a cross-site
//! WebSocket, a copied key, oversized frames, a flood, a scope not granted.
//! The mesh's `whois` is a stand-in (the loopback address is made ada's or
//! ben's in turn) and so is the model (it says one fixed sentence, streamed
//! in pieces), each named here; the real clients and mesh are in
//! `openclaw_clients.rs`.
// A test: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::{SinkExt, StreamExt};
use hearth_gateway::claw::device::{Connect, device_id, signed_text};
use hearth_testkit::gateway_process::GatewayProcess;
use hearth_testkit::standins::{AgentStandIn, Turn, tool_model_stand_in};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const ANSWER: &str = "The bins go out on Tuesday.";

struct Client {
    socket: Socket,
    nonce: String,
    ts: u64,
}

/// Each member's device has an address of its own on loopback (what the
/// agent stand-in names).
fn address_of(member: &str) -> &'static str {
    match member {
        "ada" => "127.0.0.1",
        "ben" => "127.0.0.2",
        _ => "127.0.0.3",
    }
}

impl Client {
    async fn open(url: &str, origin: Option<&str>) -> Result<Client, String> {
        Client::open_from(url, origin, "127.0.0.1").await
    }

    /// A connection from `local` (a member's device's address).
    async fn open_from(url: &str, origin: Option<&str>, local: &str) -> Result<Client, String> {
        let mut request = url.into_client_request().unwrap();
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().unwrap());
        }
        let server = request.uri().authority().unwrap().as_str().to_owned();
        let tcp = tokio::net::TcpSocket::new_v4().unwrap();
        tcp.bind(format!("{local}:0").parse().unwrap()).unwrap();
        let stream = tcp
            .connect(server.parse().unwrap())
            .await
            .map_err(|error| error.to_string())?;
        let (mut socket, _) = tokio_tungstenite::client_async(
            request,
            tokio_tungstenite::MaybeTlsStream::Plain(stream),
        )
        .await
        .map_err(|error| error.to_string())?;
        let challenge = next_json(&mut socket)
            .await
            .ok_or("closed before the challenge")?;
        assert_eq!(challenge["event"], "connect.challenge");
        Ok(Client {
            nonce: challenge["payload"]["nonce"].as_str().unwrap().to_owned(),
            ts: challenge["payload"]["ts"].as_u64().unwrap(),
            socket,
        })
    }

    async fn send(&mut self, frame: &Value) {
        self.socket
            .send(Message::text(frame.to_string()))
            .await
            .unwrap();
    }

    /// The response to request `id` (events before it are kept in `events`).
    async fn response(&mut self, id: &str, events: &mut Vec<Value>) -> Option<Value> {
        loop {
            let frame = next_json(&mut self.socket).await?;
            if frame["type"] == "res" && frame["id"] == id {
                return Some(frame);
            }
            events.push(frame);
        }
    }

    async fn call(&mut self, id: &str, method: &str, params: Value) -> Value {
        self.send(&json!({"type": "req", "id": id, "method": method, "params": params}))
            .await;
        self.response(id, &mut Vec::new()).await.expect("an answer")
    }
}

async fn next_json(socket: &mut Socket) -> Option<Value> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .expect("the gateway answers")?;
        match message {
            Ok(Message::Text(text)) => return Some(serde_json::from_str(&text).unwrap()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// `connect` as OpenClaw's CLI builds it, signed by `key` over `nonce`.
fn connect(key: &Ed25519KeyPair, nonce: &str, at: u64, scopes: &[&str]) -> Value {
    let raw: [u8; 32] = key.public_key().as_ref().try_into().unwrap();
    let id = device_id(&raw);
    let mut params = json!({
        "minProtocol": 4, "maxProtocol": 4,
        "client": {"id": "cli", "mode": "cli", "version": "2026.9.6", "platform": "linux", "deviceFamily": "Linux"},
        "role": "operator", "scopes": scopes,
        "device": {"id": id, "publicKey": URL_SAFE_NO_PAD.encode(raw), "signature": "", "signedAt": at, "nonce": nonce},
    });
    let parsed = Connect::parse(&params).unwrap();
    let text = signed_text(&parsed, &id, at, nonce, true);
    params["device"]["signature"] =
        json!(URL_SAFE_NO_PAD.encode(key.sign(text.as_bytes()).as_ref()));
    json!({"type": "req", "id": "c", "method": "connect", "params": params})
}

struct Setup {
    gateway: GatewayProcess,
    agent: AgentStandIn,
    _model: hearth_testkit::standins::ScriptedServer,
    ws: String,
    /// The address connections open from.
    from: std::sync::Mutex<&'static str>,
}

fn start(per_minute: u32) -> Setup {
    // Stand-in model: one fixed answer (a real small model cannot be made
    // to say a given sentence).
    let model = tool_model_stand_in(|_| Turn::Say(ANSWER.into()));
    let url = format!("{}/v1", model.url());
    start_with(model, "openai-completions", &url, per_minute)
}

fn start_with(
    model: hearth_testkit::standins::ScriptedServer,
    api: &str,
    url: &str,
    per_minute: u32,
) -> Setup {
    let agent = AgentStandIn::start();
    let mut config = hearth_testkit::gateway_process::config(&[("standin", api, url)]);
    config["gateway"]["auth"] = json!({"mode": "token"});
    config["hearth"]["agentSocket"] = json!(agent.socket);
    config["hearth"]["limits"] =
        json!({"requestsPerMinutePerDevice": per_minute, "requestsPerMinutePerIp": 100_000});
    let gateway = GatewayProcess::start(config);
    let ws = gateway.url.replace("http://", "ws://");
    Setup {
        gateway,
        agent,
        _model: model,
        ws,
        from: std::sync::Mutex::new("127.0.0.1"),
    }
}

impl Setup {
    /// `member`'s device is at its address (and connections open from there).
    fn as_member(&self, member: &str) {
        let address = address_of(member);
        self.agent.set(
            address,
            Some(AgentStandIn::member(member, address, json!({}))),
        );
        *self.from.lock().unwrap() = address;
    }

    /// A connection from the current member's device.
    async fn open(&self) -> Result<Client, String> {
        let from = *self.from.lock().unwrap();
        Client::open_from(&self.ws, None, from).await
    }

    async fn approve(&self, request_id: &str) {
        let response = reqwest::Client::new()
            .post(format!("{}/v1/devices/approve", self.gateway.url))
            .bearer_auth(self.gateway.token())
            .json(&json!({"requestId": request_id}))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{}",
            response.text().await.unwrap()
        );
    }

    /// Pairs `key` as the member the loopback address is now; its hello.
    async fn paired(&self, key: &Ed25519KeyPair, scopes: &[&str]) -> (Client, Value) {
        let mut client = self.open().await.unwrap();
        client
            .send(&connect(key, &client.nonce.clone(), client.ts, scopes))
            .await;
        let refused = client.response("c", &mut Vec::new()).await.unwrap();
        assert_eq!(refused["error"]["code"], "NOT_PAIRED", "{refused}");
        self.approve(refused["error"]["details"]["requestId"].as_str().unwrap())
            .await;
        let mut client = self.open().await.unwrap();
        client
            .send(&connect(key, &client.nonce.clone(), client.ts, scopes))
            .await;
        let hello = client.response("c", &mut Vec::new()).await.unwrap();
        assert_eq!(hello["ok"], true, "{hello}");
        (client, hello)
    }
}

fn key(seed: u8) -> Ed25519KeyPair {
    Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap()
}

#[tokio::test]
async fn an_unpaired_device_a_forged_signature_and_a_replayed_challenge_are_refused() {
    let setup = start(10_000);
    setup.as_member("ada");
    let ada = key(1);

    // Unpaired: refused with the request to approve, and the socket closes.
    let mut client = setup.open().await.unwrap();
    let first = connect(&ada, &client.nonce.clone(), client.ts, &["operator.read"]);
    client.send(&first).await;
    let refused = client.response("c", &mut Vec::new()).await.unwrap();
    assert_eq!(refused["error"]["code"], "NOT_PAIRED");
    assert_eq!(refused["error"]["details"]["code"], "PAIRING_REQUIRED");
    client
        .send(&json!({"type": "req", "id": "h", "method": "health"}))
        .await;
    assert!(
        client.response("h", &mut Vec::new()).await.is_none(),
        "the socket stays closed"
    );
    let request_id = refused["error"]["details"]["requestId"]
        .as_str()
        .unwrap()
        .to_owned();

    // Only the admin approves.
    let by_ada = reqwest::Client::new()
        .post(format!("{}/v1/devices/approve", setup.gateway.url))
        .json(&json!({"requestId": request_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(by_ada.status(), 403);
    setup.approve(&request_id).await;

    // A replay of the first connect (its old nonce) on a new connection.
    let mut replay = setup.open().await.unwrap();
    replay.send(&first).await;
    let refused = replay.response("c", &mut Vec::new()).await.unwrap();
    assert_eq!(
        refused["error"]["details"]["code"], "DEVICE_AUTH_NONCE_MISMATCH",
        "{refused}"
    );

    // Ada's device id and key with another key's signature.
    let mut forged = setup.open().await.unwrap();
    let mut frame = connect(&ada, &forged.nonce.clone(), forged.ts, &["operator.read"]);
    frame["params"]["device"]["signature"] = connect(
        &key(9),
        &forged.nonce.clone(),
        forged.ts,
        &["operator.read"],
    )["params"]["device"]["signature"]
        .clone();
    forged.send(&frame).await;
    let refused = forged.response("c", &mut Vec::new()).await.unwrap();
    assert_eq!(
        refused["error"]["details"]["code"], "DEVICE_AUTH_SIGNATURE_INVALID",
        "{refused}"
    );

    // Signed over other scopes than those claimed.
    let mut widened = setup.open().await.unwrap();
    let mut frame = connect(&ada, &widened.nonce.clone(), widened.ts, &["operator.read"]);
    frame["params"]["scopes"] = json!(["operator.admin"]);
    widened.send(&frame).await;
    let refused = widened.response("c", &mut Vec::new()).await.unwrap();
    assert_eq!(
        refused["error"]["details"]["code"],
        "DEVICE_AUTH_SIGNATURE_INVALID"
    );

    // No device at all, and no token.
    let mut bare = setup.open().await.unwrap();
    let mut frame = connect(&ada, &bare.nonce.clone(), bare.ts, &["operator.read"]);
    frame["params"].as_object_mut().unwrap().remove("device");
    bare.send(&frame).await;
    let refused = bare.response("c", &mut Vec::new()).await.unwrap();
    assert_eq!(
        refused["error"]["details"]["code"],
        "DEVICE_IDENTITY_REQUIRED"
    );

    // Approved, the genuine one is ada.
    let mut client = setup.open().await.unwrap();
    client
        .send(&connect(
            &ada,
            &client.nonce.clone(),
            client.ts,
            &["operator.read"],
        ))
        .await;
    let hello = client.response("c", &mut Vec::new()).await.unwrap();
    assert_eq!(hello["payload"]["member"], "ada", "{hello}");
    assert!(
        hello["payload"]["auth"]["deviceToken"]
            .as_str()
            .is_some_and(|token| token.len() >= 32)
    );

    // The same key from ben's device is not ada.
    setup.as_member("ben");
    let mut stolen = setup.open().await.unwrap();
    stolen
        .send(&connect(
            &ada,
            &stolen.nonce.clone(),
            stolen.ts,
            &["operator.read"],
        ))
        .await;
    let refused = stolen.response("c", &mut Vec::new()).await.unwrap();
    assert_eq!(refused["error"]["code"], "FORBIDDEN", "{refused}");
}

#[tokio::test]
async fn a_web_page_of_another_site_cannot_open_the_socket() {
    let setup = start(10_000);
    let refused = Client::open(&setup.ws, Some("http://evil.example")).await;
    let error = refused.err().expect("refused");
    assert!(error.contains("403"), "{error}");
    // Its own origin is let in (to the challenge).
    let port = setup.gateway.port;
    assert!(
        Client::open(&setup.ws, Some(&format!("http://127.0.0.1:{port}")))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_member_chats_streamed_keeps_history_and_is_held_to_her_scopes_and_rate() {
    let setup = start(40);
    setup.as_member("ada");
    let (mut client, hello) = setup
        .paired(
            &key(3),
            &["operator.read", "operator.write", "operator.admin"],
        )
        .await;
    assert_eq!(
        hello["payload"]["auth"]["scopes"],
        json!(["operator.read", "operator.write"])
    );
    assert!(
        hello["payload"]["features"]["methods"]
            .as_array()
            .unwrap()
            .contains(&json!("chat.send"))
    );

    // chat.send: started at once, the reply as chat events, pieces first.
    client
        .send(&json!({"type": "req", "id": "s", "method": "chat.send",
                      "params": {"sessionKey": "agent:main:main", "message": "When do the bins go out?", "idempotencyKey": "run-1"}}))
        .await;
    let mut events = Vec::new();
    let started = client.response("s", &mut events).await.unwrap();
    assert_eq!(started["payload"]["status"], "started");
    let mut deltas = 0;
    let last = loop {
        let frame = next_json(&mut client.socket).await.unwrap();
        if frame["event"] == "chat" && frame["payload"]["state"] == "delta" {
            deltas += 1;
        }
        if frame["event"] == "chat" && frame["payload"]["state"] == "final" {
            break frame;
        }
    };
    assert!(deltas >= 1, "streamed in pieces");
    assert_eq!(last["payload"]["message"]["content"][0]["text"], ANSWER);
    assert_eq!(last["payload"]["runId"], "run-1");
    let history = client
        .call(
            "h",
            "chat.history",
            json!({"sessionKey": "agent:main:main"}),
        )
        .await;
    let messages = history["payload"]["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{history}");
    assert_eq!(messages[0]["content"], "When do the bins go out?");

    // What her assistant remembers, searched through the protocol.
    let told = client
        .call("m", "agent", json!({"message": "Remember that the spare key is under the blue pot.", "idempotencyKey": "run-2"}))
        .await;
    assert_eq!(told["payload"]["status"], "accepted", "{told}");
    let mut events = Vec::new();
    let done = client.response("m", &mut events).await.unwrap();
    assert_eq!(done["payload"]["status"], "ok", "{done}");
    let found = client
        .call(
            "q",
            "memory.search",
            json!({"query": "where is the spare key"}),
        )
        .await;
    let results = found["payload"]["results"].as_array().unwrap();
    assert!(
        results
            .iter()
            .any(|hit| hit["snippet"].as_str().unwrap_or("").contains("blue pot")),
        "{found}"
    );

    // Ben sees none of ada's history or memory.
    setup.as_member("ben");
    let (mut ben, _) = setup.paired(&key(4), &["operator.read"]).await;
    let theirs = ben
        .call(
            "h",
            "chat.history",
            json!({"sessionKey": "agent:main:main"}),
        )
        .await;
    assert_eq!(theirs["payload"]["messages"], json!([]), "{theirs}");
    let theirs = ben
        .call(
            "q",
            "memory.search",
            json!({"query": "where is the spare key"}),
        )
        .await;
    assert_eq!(theirs["payload"]["results"], json!([]), "{theirs}");
    setup.as_member("ada");

    // What she was not granted, and what is not served.
    let config = client.call("g", "config.get", json!({})).await;
    assert_eq!(config["error"]["code"], "FORBIDDEN");
    assert_eq!(config["error"]["details"]["missingScope"], "operator.admin");
    let unknown = client.call("n", "node.invoke", json!({})).await;
    assert_eq!(unknown["error"]["code"], "INVALID_REQUEST");
    assert!(
        unknown["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("unknown method: node.invoke")
    );

    // A flood from one device is slowed (40 a minute here).
    let mut limited = None;
    for index in 0..60 {
        let answer = client.call(&format!("f{index}"), "health", json!({})).await;
        if answer["ok"] == false {
            limited = Some(answer);
            break;
        }
    }
    let limited = limited.expect("a flood is limited");
    assert_eq!(limited["error"]["code"], "UNAVAILABLE");
    assert_eq!(limited["error"]["retryable"], true);

    // A frame over the limit ends the connection.
    let huge = json!({"type": "req", "id": "x", "method": "health", "params": {"pad": "a".repeat(3 * 1024 * 1024)}});
    let _ = client.socket.send(Message::text(huge.to_string())).await;
    assert!(
        next_json(&mut client.socket).await.is_none()
            || next_json(&mut client.socket).await.is_none()
    );
}

#[tokio::test]
async fn before_connect_only_a_small_connect_is_taken() {
    let setup = start(10_000);
    let mut client = setup.open().await.unwrap();
    client
        .send(&json!({"type": "req", "id": "h", "method": "health"}))
        .await;
    let refused = client.response("h", &mut Vec::new()).await.unwrap();
    assert_eq!(refused["ok"], false);
    assert!(client.response("x", &mut Vec::new()).await.is_none());
    let mut client = setup.open().await.unwrap();
    let big = json!({"type": "req", "id": "c", "method": "connect", "params": {"pad": "a".repeat(70 * 1024)}});
    let _ = client.socket.send(Message::text(big.to_string())).await;
    assert!(
        client.response("c", &mut Vec::new()).await.is_none(),
        "closed without an answer"
    );
}

#[tokio::test]
async fn a_run_in_progress_is_stopped_and_a_session_starts_afresh() {
    // Stand-in model: Ollama's API echoing the question a word every
    // 300 ms, slow enough to be stopped midway.
    let model = hearth_testkit::standins::ollama_stand_in(&["tiny"], Duration::from_millis(300));
    let url = model.url();
    let setup = start_with(model, "ollama", &url, 10_000);
    setup.as_member("ada");
    let (mut client, _) = setup
        .paired(&key(5), &["operator.read", "operator.write"])
        .await;
    let question = "one two three four five six seven eight nine ten eleven twelve";
    client
        .send(&json!({"type": "req", "id": "s", "method": "chat.send",
                      "params": {"sessionKey": "main", "message": question, "idempotencyKey": "slow-1"}}))
        .await;
    client.response("s", &mut Vec::new()).await.unwrap();
    // The first piece arrives, then the run is stopped.
    loop {
        let frame = next_json(&mut client.socket).await.unwrap();
        if frame["event"] == "chat" && frame["payload"]["state"] == "delta" {
            break;
        }
    }
    client
        .send(&json!({"type": "req", "id": "a", "method": "chat.abort", "params": {"sessionKey": "main"}}))
        .await;
    let mut events = Vec::new();
    let aborted = client.response("a", &mut events).await.unwrap();
    assert_eq!(aborted["payload"]["aborted"], true, "{aborted}");
    assert_eq!(aborted["payload"]["runIds"], json!(["slow-1"]));
    let last = loop {
        if let Some(frame) = events
            .pop()
            .filter(|frame| frame["event"] == "chat" && frame["payload"]["state"] != "delta")
        {
            break frame;
        }
        let frame = next_json(&mut client.socket).await.unwrap();
        if frame["event"] == "chat" && frame["payload"]["state"] != "delta" {
            break frame;
        }
    };
    assert_eq!(last["payload"]["state"], "aborted", "{last}");
    let text = last["payload"]["message"]["content"][0]["text"]
        .as_str()
        .unwrap();
    assert!(text.len() < question.len(), "stopped midway: {text}");

    // A new session: the history starts empty, under a new id.
    let before = client
        .call("h", "chat.history", json!({"sessionKey": "main"}))
        .await;
    let reset = client
        .call("r", "sessions.reset", json!({"key": "main"}))
        .await;
    assert_eq!(reset["payload"]["ok"], true);
    assert_ne!(
        reset["payload"]["entry"]["sessionId"],
        before["payload"]["sessionId"]
    );
    let after = client
        .call(
            "h2",
            "chat.history",
            json!({"sessionKey": "agent:main:main"}),
        )
        .await;
    assert_eq!(after["payload"]["messages"], json!([]), "{after}");
}

/// The frame that ends a connection, or its end without one; the test
/// fails when the connection is still open (ticks and all) after 20 s.
async fn closed_with(socket: &mut Socket) -> Option<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .expect("the gateway ends the connection");
        match message {
            Some(Ok(Message::Close(frame))) => {
                return Some(
                    frame
                        .map(|frame| frame.reason.to_string())
                        .unwrap_or_default(),
                );
            }
            None | Some(Err(_)) => return None,
            Some(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn a_socket_ends_with_its_device_removed_or_no_longer_named_by_the_mesh() {
    let setup = start(10_000);
    setup.as_member("ada");
    let (mut ada, _) = setup
        .paired(&key(21), &["operator.read", "operator.write"])
        .await;
    let found = ada
        .call("m", "memory.search", json!({"query": "spare key"}))
        .await;
    assert_eq!(found["ok"], true, "{found}");
    let devices = setup.gateway.get_json("/v1/devices").await;
    let id = devices["paired"][0]["deviceId"]
        .as_str()
        .unwrap()
        .to_owned();

    // The admin removes the device: its open socket ends, nothing more is
    // answered on it.
    let removed = setup
        .gateway
        .http()
        .post(format!("{}/v1/devices/remove", setup.gateway.url))
        .json(&json!({"id": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 200);
    let reason = closed_with(&mut ada.socket).await;
    assert!(
        reason.as_deref().unwrap_or_default().contains("removed"),
        "{reason:?}"
    );

    // Ben's device, paired and connected; then the mesh no longer names it
    // at that address (the node removed, expired, or the address another's).
    setup.as_member("ben");
    let (mut ben, _) = setup
        .paired(&key(22), &["operator.read", "operator.write"])
        .await;
    setup.agent.set(address_of("ben"), None);
    let reason = closed_with(&mut ben.socket).await;
    assert!(
        reason.as_deref().unwrap_or_default().contains("mesh"),
        "{reason:?}"
    );
    // And a new connection from there is not ben's.
    let mut again = setup.open().await.unwrap();
    again
        .send(&connect(
            &key(22),
            &again.nonce.clone(),
            again.ts,
            &["operator.read"],
        ))
        .await;
    let refused = again.response("c", &mut Vec::new()).await.unwrap();
    assert_eq!(refused["ok"], false, "{refused}");
}

#[tokio::test]
async fn strangers_cannot_fill_the_pairing_queue_or_push_out_a_members_request() {
    let setup = start(10_000);
    // Not a device of the mesh: refused, and nothing is kept.
    let mut stranger = setup.open().await.unwrap();
    stranger
        .send(&connect(
            &key(31),
            &stranger.nonce.clone(),
            stranger.ts,
            &["operator.read"],
        ))
        .await;
    let refused = stranger.response("c", &mut Vec::new()).await.unwrap();
    assert_eq!(refused["error"]["code"], "FORBIDDEN", "{refused}");
    let devices = setup.gateway.get_json("/v1/devices").await;
    assert_eq!(devices["pending"], json!([]), "{devices}");

    // Ada's device asks to pair; then a flood of new keys from one address.
    setup.as_member("ada");
    let mut ada = setup.open().await.unwrap();
    ada.send(&connect(
        &key(32),
        &ada.nonce.clone(),
        ada.ts,
        &["operator.read"],
    ))
    .await;
    let waiting = ada.response("c", &mut Vec::new()).await.unwrap();
    let request_id = waiting["error"]["details"]["requestId"]
        .as_str()
        .unwrap()
        .to_owned();
    for seed in 0..150u8 {
        let Ok(mut flood) = setup.open().await else {
            continue;
        };
        let mut seed_bytes = [7u8; 32];
        seed_bytes[0] = seed;
        let frame = connect(
            &Ed25519KeyPair::from_seed_unchecked(&seed_bytes).unwrap(),
            &flood.nonce.clone(),
            flood.ts,
            &["operator.read"],
        );
        flood.send(&frame).await;
        let _ = flood.response("c", &mut Vec::new()).await;
    }
    let devices = setup.gateway.get_json("/v1/devices").await;
    let pending = devices["pending"].as_array().unwrap();
    assert!(pending.len() <= 4, "{} waiting", pending.len());
    assert_eq!(
        pending[0]["requestId"],
        request_id.as_str(),
        "first in line still"
    );
    setup.approve(&request_id).await;
}

#[tokio::test]
async fn a_devices_chosen_name_reaches_the_admins_terminal_escaped() {
    let setup = start(10_000);
    setup.as_member("ada");
    let mut client = setup.open().await.unwrap();
    let mut frame = connect(
        &key(41),
        &client.nonce.clone(),
        client.ts,
        &["operator.read"],
    );
    // OSC 52 (writes the clipboard) and a cursor move, as the client's id.
    let hostile = "cli\u{1b}]52;c;aGVsbG8=\u{7}\u{1b}[2A\u{9b}31m";
    frame["params"]["client"]["id"] = json!(hostile);
    frame["params"]["client"]["platform"] = json!("linux\u{1b}[1K");
    // The proof covers the client's id: sign again over the changed text.
    let parsed = Connect::parse(&frame["params"]).unwrap();
    let raw: [u8; 32] = key(41).public_key().as_ref().try_into().unwrap();
    let text = signed_text(&parsed, &device_id(&raw), client.ts, &client.nonce, true);
    frame["params"]["device"]["signature"] =
        json!(URL_SAFE_NO_PAD.encode(key(41).sign(text.as_bytes()).as_ref()));
    client.send(&frame).await;
    let waiting = client.response("c", &mut Vec::new()).await.unwrap();
    assert_eq!(waiting["error"]["code"], "NOT_PAIRED", "{waiting}");
    let token_file = setup.gateway.data_dir.join("gateway.token");
    let output = std::process::Command::new(hearth_testkit::lab::binary("hearth-gateway"))
        .args([
            "devices",
            "list",
            "--url",
            &setup.gateway.url,
            "--token-file",
        ])
        .arg(&token_file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(
        !printed.chars().any(|c| c.is_control() && c != '\n'),
        "control characters reach the terminal: {printed:?}"
    );
    assert!(
        printed.contains("cli\\u{1b}]52;c;aGVsbG8=\\u{7}"),
        "{printed}"
    );
}

#[tokio::test]
async fn strangers_stalled_before_connect_cannot_make_the_gateway_hold_their_frames() {
    use tokio::io::AsyncWriteExt as _;
    let setup = start(10_000);
    let resident = || hearth_testkit::bench::tree_rss_mib(setup.gateway.pid());
    let before = resident();
    // Each opens the socket and starts one 2 MiB frame before any connect,
    // sends 1 MiB of it and stalls.
    let mut held = Vec::new();
    let payload = vec![b'a'; 64 * 1024];
    for _ in 0..40 {
        let Ok(client) = setup.open().await else {
            continue;
        };
        let mut socket = client.socket;
        let stream = match socket.get_mut() {
            tokio_tungstenite::MaybeTlsStream::Plain(stream) => stream,
            _ => unreachable!("plain TCP"),
        };
        let mut head = vec![0x81, 0xFF];
        head.extend_from_slice(&(2u64 * 1024 * 1024).to_be_bytes());
        head.extend_from_slice(&[0, 0, 0, 0]); // a zero mask leaves the bytes as they are
        let _ = stream.write_all(&head).await;
        for _ in 0..16 {
            if tokio::time::timeout(Duration::from_secs(2), stream.write_all(&payload))
                .await
                .map_or(true, |written| written.is_err())
            {
                break;
            }
        }
        held.push(socket);
    }
    let grown_mib = resident() - before;
    assert!(
        grown_mib < 16.0,
        "40 stalled connections made the gateway hold {grown_mib:.1} MiB more"
    );
    drop(held);
}

/// The admin's connection: the gateway's token, no device (as `openclaw
/// devices …` on the hub may connect).
async fn admin(setup: &Setup) -> Client {
    let mut admin = Client::open(&setup.ws, None).await.unwrap();
    admin
        .send(
            &json!({"type": "req", "id": "c", "method": "connect", "params": {
            "minProtocol": 4, "maxProtocol": 4,
            "client": {"id": "cli", "mode": "cli", "version": "2026.9.6", "platform": "linux"},
            "role": "operator", "scopes": ["operator.pairing", "operator.read"],
            "auth": {"token": setup.gateway.token()}}}),
        )
        .await;
    let hello = admin.response("c", &mut Vec::new()).await.unwrap();
    assert_eq!(hello["ok"], true, "{hello}");
    admin
}

#[tokio::test]
async fn the_admin_pairs_devices_with_openclaws_own_methods_and_a_member_cannot() {
    let setup = start(10_000);
    // A member's paired device may not manage pairing.
    setup.as_member("ada");
    let (mut ada, hello) = setup
        .paired(&key(41), &["operator.read", "operator.write"])
        .await;
    assert!(
        hello["payload"]["features"]["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("published-model-catalog")),
        "{hello}"
    );
    for (method, params) in [
        ("device.pair.list", json!({})),
        ("device.pair.approve", json!({"requestId": "x"})),
        ("device.pair.remove", json!({"deviceId": "x"})),
    ] {
        let refused = ada.call("p", method, params).await;
        assert_eq!(refused["error"]["code"], "FORBIDDEN", "{method}: {refused}");
        assert!(
            refused["error"]["message"]
                .as_str()
                .unwrap()
                .contains("operator.pairing"),
            "{refused}"
        );
    }

    // Ben's device waits; the admin lists, approves it, and it acts as ben.
    setup.as_member("ben");
    let ask = |seed: u8| {
        let setup = &setup;
        async move {
            let mut ben = setup.open().await.unwrap();
            ben.send(&connect(
                &key(seed),
                &ben.nonce.clone(),
                ben.ts,
                &["operator.read", "operator.write"],
            ))
            .await;
            let answer = ben.response("c", &mut Vec::new()).await.unwrap();
            (ben, answer)
        }
    };
    let (_, waiting) = ask(42).await;
    assert_eq!(waiting["error"]["code"], "NOT_PAIRED", "{waiting}");
    let request = waiting["error"]["details"]["requestId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        waiting["error"]["details"]["remediationHint"]
            .as_str()
            .unwrap()
            .contains(&format!("openclaw devices approve {request}")),
        "{waiting}"
    );
    let mut admin = admin(&setup).await;
    let listed = admin.call("l", "device.pair.list", json!({})).await;
    let pending = &listed["payload"]["pending"];
    assert_eq!(pending[0]["requestId"], request.as_str(), "{listed}");
    assert_eq!(pending[0]["member"], "ben", "{listed}");
    assert_eq!(pending[0]["remoteIp"], address_of("ben"), "{listed}");
    let approved = admin
        .call("a", "device.pair.approve", json!({"requestId": request}))
        .await;
    assert_eq!(approved["ok"], true, "{approved}");
    assert_eq!(approved["payload"]["device"]["member"], "ben");
    let (mut ben, hello) = ask(42).await;
    assert_eq!(hello["ok"], true, "{hello}");
    assert_eq!(hello["payload"]["member"], "ben");

    // Another request is rejected: gone from the list, not approvable.
    let (_, waiting) = ask(43).await;
    let other = waiting["error"]["details"]["requestId"]
        .as_str()
        .unwrap()
        .to_owned();
    let rejected = admin
        .call("r", "device.pair.reject", json!({"requestId": other}))
        .await;
    assert_eq!(rejected["ok"], true, "{rejected}");
    let listed = admin.call("l2", "device.pair.list", json!({})).await;
    assert_eq!(listed["payload"]["pending"], json!([]), "{listed}");
    let late = admin
        .call("a2", "device.pair.approve", json!({"requestId": other}))
        .await;
    assert!(
        late["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown requestId"),
        "{late}"
    );

    // Removing ben's device ends his connection.
    let device = approved["payload"]["device"]["deviceId"]
        .as_str()
        .unwrap()
        .to_owned();
    let removed = admin
        .call("x", "device.pair.remove", json!({"deviceId": device}))
        .await;
    assert_eq!(removed["ok"], true, "{removed}");
    let reason = closed_with(&mut ben.socket).await;
    assert!(
        reason.as_deref().unwrap_or_default().contains("removed"),
        "{reason:?}"
    );
}

/// OpenClaw's voice methods answer honestly: `tts.status` names the one
/// voice there is (the device's own), `tts.speak` and the talk mode's
/// realtime session are refused with why, never a silent empty audio.
#[tokio::test]
async fn openclaws_voice_methods_say_the_device_reads_aloud_and_the_hub_only_hears() {
    let setup = start(40);
    setup.as_member("ada");
    let (mut client, hello) = setup
        .paired(&key(7), &["operator.read", "operator.write"])
        .await;
    let methods = hello["payload"]["features"]["methods"].as_array().unwrap();
    assert!(methods.contains(&json!("tts.speak")) && methods.contains(&json!("talk.config")));
    let status = client.call("t", "tts.status", json!({})).await;
    assert_eq!(status["ok"], true, "{status}");
    assert_eq!(status["payload"]["provider"], "device");
    assert_eq!(status["payload"]["enabled"], false);
    let spoken = client
        .call(
            "s",
            "tts.speak",
            json!({"text": "The bins go out on Tuesday."}),
        )
        .await;
    assert_eq!(spoken["ok"], false, "{spoken}");
    assert_eq!(spoken["error"]["code"], "UNAVAILABLE", "{spoken}");
    let why = spoken["error"]["message"].as_str().unwrap();
    assert!(
        why.contains("read aloud by the device's own voices"),
        "{why}"
    );
    let talk = client.call("k", "talk.config", json!({})).await;
    assert_eq!(talk["payload"], json!({"config": {}}), "{talk}");
    let session = client.call("r", "talk.session.create", json!({})).await;
    assert_eq!(session["ok"], false, "{session}");
    assert!(
        session["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/v1/audio/transcriptions"),
        "{session}"
    );
}
