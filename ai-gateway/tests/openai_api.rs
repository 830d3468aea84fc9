#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! The OpenAI-style API as OpenClaw's gateway serves it, against Hearth's
//! gateway: agents as model targets, tool calls passed through both ways,
//! sessions by `user`, `/v1/responses` (whole and streamed),
//! `/v1/embeddings`, `/v1/models/{id}`, `/healthz` and `/readyz`, password
//! auth, and the endpoints off unless enabled.
//!
//! Two model servers: the real llama-server (tiny random model) where a
//! real answer is enough, and a stand-in (`ScriptedServer`, named so) that
//! records what the gateway sent and answers with scripted tool-call
//! fragments, since no small model calls tools on demand.

use std::time::Duration;

use hearth_testkit::gateway_process::GatewayProcess;
use hearth_testkit::llama::LlamaServer;
use hearth_testkit::standins::{Ending, Request, Script, ScriptedServer};
use serde_json::{Value, json};

/// The stand-in: `GET /v1/models` answers (health), a chat offering tools
/// gets a call to the first tool in three fragments, any other chat gets
/// "echo: <last message>" in two pieces.
fn stand_in() -> ScriptedServer {
    ScriptedServer::start(|request: &Request| {
        if request.method == "GET" {
            return Script::json(200, &json!({"object": "list", "data": [{"id": "m"}]}));
        }
        let body = request.json();
        let sse = |chunks: Vec<Value>| {
            let mut lines: Vec<Vec<u8>> = chunks
                .into_iter()
                .map(|chunk| format!("data: {chunk}\n\n").into_bytes())
                .collect();
            lines.push(b"data: [DONE]\n\n".to_vec());
            Script::stream("text/event-stream", lines, Duration::ZERO, Ending::Complete)
        };
        let choice = |delta: Value, finish: Value| json!({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        if let Some(tool) = body["tools"][0]["function"]["name"].as_str() {
            return sse(vec![
                choice(
                    json!({"tool_calls": [{"index": 0, "id": "call_w", "type": "function", "function": {"name": tool, "arguments": ""}}]}),
                    Value::Null,
                ),
                choice(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
                    Value::Null,
                ),
                choice(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Oslo\"}"}}]}),
                    Value::Null,
                ),
                choice(json!({}), json!("tool_calls")),
            ]);
        }
        let last = body["messages"]
            .as_array()
            .and_then(|messages| messages.last())
            .map_or(String::new(), |message| {
                message["content"].as_str().unwrap_or("").to_owned()
            });
        sse(vec![
            choice(json!({"content": "echo: "}), Value::Null),
            choice(json!({"content": last}), Value::Null),
            choice(json!({}), json!("stop")),
            json!({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}),
        ])
    })
}

/// The chats the stand-in received, as JSON.
fn chats(server: &ScriptedServer) -> Vec<Value> {
    server
        .requests()
        .iter()
        .filter(|request| request.method == "POST")
        .map(Request::json)
        .collect()
}

fn workspace(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("SOUL.md"), text).unwrap();
    dir
}

fn config(
    stand_in: &ScriptedServer,
    llama: &str,
    kitchen: &std::path::Path,
    homework: &std::path::Path,
) -> Value {
    json!({
        "gateway": {"bind": "loopback", "http": {"endpoints": {"chatCompletions": {"enabled": true}, "responses": {"enabled": true}}}},
        "models": {"providers": {
            "standin": {"baseUrl": format!("{}/v1", stand_in.url()), "models": [{"id": "m"}]},
            "llamacpp": {"baseUrl": llama, "api": "openai-completions", "models": [{"id": "tiny", "contextWindow": 2048, "maxTokens": 16}]},
        }},
        "agents": {
            "defaults": {"model": {"primary": "standin/m", "fallbacks": ["llamacpp/tiny"]}},
            "entries": {
                "kitchen": {"default": true, "workspace": kitchen},
                "homework": {"workspace": homework, "model": "llamacpp/tiny"},
            },
        },
        "hearth": {"connectTimeoutSeconds": 1, "healthCheckSeconds": 1},
    })
}

/// Sending a request and reading its answer, in one step.
trait Ask {
    async fn status_code(self) -> reqwest::StatusCode;
    async fn answer(self) -> Value;
}

impl Ask for reqwest::RequestBuilder {
    async fn status_code(self) -> reqwest::StatusCode {
        self.send().await.unwrap().status()
    }

    async fn answer(self) -> Value {
        self.send().await.unwrap().json().await.unwrap()
    }
}

fn sse_data(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_api_answers_as_openclaws_does() {
    let Some(llama) = LlamaServer::start_tcp() else {
        return;
    };
    let model = stand_in();
    let kitchen = workspace("You are the kitchen helper.");
    let homework = workspace("You help with homework.");
    let gateway = GatewayProcess::start(config(
        &model,
        &llama.base_url,
        kitchen.path(),
        homework.path(),
    ));
    let http = gateway.http();
    let url = &gateway.url;

    // Agents are listed as OpenClaw lists them, then the backend models.
    let listed: Value = http.get(format!("{url}/v1/models")).answer().await;
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|model| model["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "openclaw",
            "openclaw/default",
            "openclaw/homework",
            "openclaw/kitchen",
            "llamacpp/tiny",
            "standin/m"
        ]
    );
    let one = http
        .get(format!("{url}/v1/models/openclaw%2Fdefault"))
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), 200);
    assert_eq!(one.json::<Value>().await.unwrap()["id"], "openclaw/default");
    assert_eq!(
        http.get(format!("{url}/v1/models/openclaw/homework"))
            .status_code()
            .await,
        200
    );
    assert_eq!(
        http.get(format!("{url}/v1/models/nope"))
            .status_code()
            .await,
        404
    );

    // The default agent's persona goes first; the stand-in is the chain's primary.
    let answer: Value = http
        .post(format!("{url}/v1/chat/completions"))
        .json(&json!({"model": "openclaw/default", "messages": [{"role": "user", "content": "hello"}]}))
        .answer().await;
    assert_eq!(answer["choices"][0]["message"]["content"], "echo: hello");
    assert_eq!(answer["model"], "standin/m");
    let sent = chats(&model).pop().unwrap();
    assert_eq!(
        sent["messages"][0]["content"],
        "# SOUL.md\n\nYou are the kitchen helper."
    );

    // An agent with a model of its own starts with it: the real llama-server answers.
    let answer: Value = http
        .post(format!("{url}/v1/chat/completions"))
        .json(&json!({"model": "openclaw/homework", "max_tokens": 4, "messages": [{"role": "user", "content": "2+2?"}]}))
        .answer().await;
    assert_eq!(answer["model"], "llamacpp/tiny", "{answer}");
    // …unless `x-openclaw-model` says otherwise; and the agent header picks the persona.
    let answer: Value = http
        .post(format!("{url}/v1/chat/completions"))
        .header("x-openclaw-model", "standin/m")
        .header("x-openclaw-agent-id", "homework")
        .json(&json!({"messages": [{"role": "user", "content": "sums"}]}))
        .answer()
        .await;
    assert_eq!(answer["model"], "standin/m");
    assert_eq!(
        chats(&model).pop().unwrap()["messages"][0]["content"],
        "# SOUL.md\n\nYou help with homework."
    );
    let unknown = http
        .post(format!("{url}/v1/chat/completions"))
        .json(&json!({"model": "openclaw/garage", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    // Tools go to the model with the sampling settings; the call comes back whole…
    let tools = json!([{"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let answer: Value = http
        .post(format!("{url}/v1/chat/completions"))
        .json(&json!({"messages": [{"role": "user", "content": "Weather in Oslo?"}], "tools": tools, "tool_choice": "auto", "top_p": 0.5, "stop": ["\n\n"], "seed": 7}))
        .answer().await;
    let sent = chats(&model).pop().unwrap();
    assert_eq!(sent["tools"], tools);
    assert_eq!(
        (
            sent["tool_choice"].clone(),
            sent["top_p"].clone(),
            sent["stop"].clone(),
            sent["seed"].clone()
        ),
        (json!("auto"), json!(0.5), json!(["\n\n"]), json!(7))
    );
    assert_eq!(answer["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        answer["choices"][0]["message"]["tool_calls"],
        json!([{"id": "call_w", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}])
    );
    assert_eq!(answer["choices"][0]["message"]["content"], Value::Null);
    // …or in fragments when streamed.
    let streamed = http
        .post(format!("{url}/v1/chat/completions"))
        .json(&json!({"stream": true, "messages": [{"role": "user", "content": "Weather?"}], "tools": tools}))
        .send().await.unwrap().text().await.unwrap();
    let fragments: Vec<Value> = sse_data(&streamed)
        .iter()
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .filter_map(|chunk| chunk["choices"][0]["delta"].get("tool_calls").cloned())
        .collect();
    assert_eq!(fragments.len(), 3, "{streamed}");
    assert_eq!(
        sse_data(&streamed).last().map(String::as_str),
        Some("[DONE]")
    );
    // The follow-up with the tool's answer reaches the model as sent.
    http.post(format!("{url}/v1/chat/completions"))
        .json(&json!({"messages": [
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "content": null, "tool_calls": answer["choices"][0]["message"]["tool_calls"]},
            {"role": "tool", "tool_call_id": "call_w", "content": "sunny"},
        ]}))
        .send().await.unwrap().error_for_status().unwrap();
    let sent = chats(&model).pop().unwrap();
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(
        messages[messages.len() - 2]["tool_calls"][0]["id"],
        "call_w"
    );
    assert_eq!(
        messages[messages.len() - 1],
        json!({"role": "tool", "content": "sunny", "tool_call_id": "call_w"})
    );
    let bad = http
        .post(format!("{url}/v1/chat/completions"))
        .json(&json!({"messages": [{"role": "user", "content": "x"}], "tools": tools, "tool_choice": {"type": "function", "function": {"name": "mail"}}}))
        .send().await.unwrap();
    assert_eq!(bad.status(), 400);

    // `user` keeps a session: the second turn brings the first.
    for question in ["my name is Ada", "what is my name?"] {
        http.post(format!("{url}/v1/chat/completions"))
            .json(&json!({"user": "conv:1", "messages": [{"role": "user", "content": question}]}))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
    }
    let sent = chats(&model).pop().unwrap();
    let contents: Vec<&str> = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|message| message["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        contents[1..],
        ["my name is Ada", "echo: my name is Ada", "what is my name?"]
    );
    let reserved = http
        .post(format!("{url}/v1/chat/completions"))
        .header("x-openclaw-session-key", "cron:nightly")
        .json(&json!({"messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(reserved.status(), 400);

    // /v1/responses, whole: instructions join the persona; the output is text.
    let response: Value = http
        .post(format!("{url}/v1/responses"))
        .json(&json!({"model": "openclaw", "instructions": "Be brief.", "input": "hi there"}))
        .answer()
        .await;
    assert_eq!(response["object"], "response");
    assert_eq!(response["status"], "completed");
    assert_eq!(
        response["output"][0]["content"][0]["text"],
        "echo: hi there"
    );
    assert_eq!(response["usage"]["total_tokens"], 7);
    assert_eq!(
        chats(&model).pop().unwrap()["messages"][0]["content"],
        "# SOUL.md\n\nYou are the kitchen helper.\n\nBe brief."
    );
    // …streamed, with a function call.
    let streamed = http
        .post(format!("{url}/v1/responses"))
        .json(&json!({"stream": true, "input": [{"role": "user", "content": "Weather?"}],
                      "tools": [{"type": "function", "name": "weather", "parameters": {"type": "object"}}]}))
        .send().await.unwrap().text().await.unwrap();
    let events: Vec<&str> = streamed
        .lines()
        .filter_map(|line| line.strip_prefix("event: "))
        .collect();
    assert_eq!(events.first(), Some(&"response.created"));
    assert_eq!(events.last(), Some(&"response.completed"));
    assert!(
        events.contains(&"response.function_call_arguments.delta"),
        "{events:?}"
    );
    let completed: Value = serde_json::from_str(sse_data(&streamed).last().unwrap()).unwrap();
    assert_eq!(completed["response"]["output"][0]["type"], "function_call");
    assert_eq!(
        completed["response"]["output"][0]["arguments"],
        "{\"city\":\"Oslo\"}"
    );

    // Probes: live always, ready while a backend answers.
    let live: Value = reqwest::get(format!("{url}/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(live, json!({"ok": true, "status": "live"}));
    assert_eq!(
        reqwest::get(format!("{url}/readyz"))
            .await
            .unwrap()
            .status(),
        200
    );
    drop(model);
    drop(llama);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let status = reqwest::get(format!("{url}/readyz"))
            .await
            .unwrap()
            .status();
        if status == 503 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "readyz still {status} with no backend"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_come_from_a_real_llama_server() {
    let Some(llama) = LlamaServer::start_tcp_with(&["--embeddings", "--pooling", "mean"]) else {
        return;
    };
    let gateway = GatewayProcess::start(json!({
        "gateway": {"bind": "loopback", "http": {"endpoints": {"responses": {"enabled": true}}}},
        "models": {"providers": {"llamacpp": {"baseUrl": llama.base_url, "models": [{"id": "tiny"}]}}},
        "agents": {"defaults": {"model": "llamacpp/tiny"}},
    }));
    let http = gateway.http();
    let answer: Value = http
        .post(format!("{}/v1/embeddings", gateway.url))
        .json(&json!({"model": "openclaw/default", "input": ["alpha", "beta"]}))
        .answer()
        .await;
    let data = answer["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"));
    assert_eq!(data.len(), 2, "{answer}");
    let first = data[0]["embedding"].as_array().unwrap();
    assert!(!first.is_empty() && first.iter().all(Value::is_f64));
    assert_eq!(answer["model"], "llamacpp/tiny");
    let one: Value = http
        .post(format!("{}/v1/embeddings", gateway.url))
        .json(&json!({"input": "alpha"}))
        .answer()
        .await;
    let vector = |value: &Value| -> Vec<f64> {
        value
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let cosine = |a: &[f64], b: &[f64]| {
        let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
        dot / (norm(a) * norm(b))
    };
    let alone = vector(&one["data"][0]["embedding"]);
    let batched = vector(&data[0]["embedding"]);
    assert!(
        cosine(&alone, &batched) > 0.999,
        "the same text, the same vector (up to batching's rounding)"
    );
    assert!(
        cosine(&batched, &vector(&data[1]["embedding"])) < 0.999,
        "different texts, different vectors"
    );
    let chat = http
        .post(format!("{}/v1/chat/completions", gateway.url))
        .json(&json!({"messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        chat.status(),
        404,
        "chat completions stay off unless enabled"
    );
    assert!(
        chat.text()
            .await
            .unwrap()
            .contains("chatCompletions.enabled")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_from_the_environment_is_the_bearer_secret() {
    let model = stand_in();
    let mut gateway = GatewayProcess::prepare(json!({
        "gateway": {"bind": "loopback", "auth": {"mode": "password", "password": {"source": "env", "provider": "default", "id": "HOUSE_PASSWORD"}},
                    "http": {"endpoints": {"chatCompletions": {"enabled": true}}}},
        "models": {"providers": {"standin": {"baseUrl": format!("{}/v1", model.url()), "models": [{"id": "m"}]}}},
    }));
    gateway.env.push((
        "HOUSE_PASSWORD".into(),
        "correct horse battery staple".into(),
    ));
    gateway.launch();
    let client = reqwest::Client::new();
    let ask = |secret: &'static str| {
        client
            .get(format!("{}/v1/models", gateway.url))
            .bearer_auth(secret)
            .send()
    };
    assert_eq!(
        ask("correct horse battery staple").await.unwrap().status(),
        200
    );
    assert_eq!(
        ask("wrong horse battery staple").await.unwrap().status(),
        401
    );
    assert!(
        !gateway.log_text().contains("correct horse"),
        "the secret is never logged"
    );
}

/// Issue 41's review: a mesh member called `operator` sending
/// `user: kitchen-notes` got the token holder's session of that name (the
/// history was kept per name, and the token holder's name was
/// `operator`). A session is its caller's: the same key from another
/// caller is another session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_key_never_opens_another_callers_history() {
    use hearth_testkit::standins::AgentStandIn;
    let model = stand_in();
    let kitchen = workspace("You are the kitchen helper.");
    let homework = workspace("You help with homework.");
    let agent = AgentStandIn::start();
    agent.set(
        "127.0.0.1",
        Some(AgentStandIn::member("operator", "127.0.0.1", json!({}))),
    );
    let mut settings = config(
        &model,
        "http://127.0.0.1:9/v1",
        kitchen.path(),
        homework.path(),
    );
    settings["hearth"]["agentSocket"] = json!(agent.socket);
    let gateway = GatewayProcess::start(settings);
    let url = &gateway.url;
    // One turn of session `kitchen-notes` from `client`.
    let say = |client: reqwest::Client, content: &'static str| {
        let url = format!("{url}/v1/chat/completions");
        async move {
            client
                .post(url)
                .json(&json!({"user": "kitchen-notes", "messages": [{"role": "user", "content": content}]}))
                .send()
                .await
                .unwrap()
                .error_for_status()
                .unwrap();
        }
    };

    // The token holder keeps notes in its session.
    say(gateway.http(), "the safe code is CANARY-OPERATOR-NOTE").await;
    // A mesh device whose member is called `operator`, no token.
    say(reqwest::Client::new(), "what is the safe code?").await;
    let sent = chats(&model).pop().unwrap();
    assert!(
        !sent.to_string().contains("CANARY-OPERATOR-NOTE"),
        "the member got the token holder's history: {sent}"
    );
    // Each caller keeps its own.
    say(gateway.http(), "and again?").await;
    let sent = chats(&model).pop().unwrap();
    assert!(sent.to_string().contains("CANARY-OPERATOR-NOTE"), "{sent}");
    assert!(
        !sent.to_string().contains("what is the safe code?"),
        "{sent}"
    );
}

/// Anthropic's Messages API where the docs say it is (hardening round
/// five: docs/gateway.md said it followed the OpenAI API's switches, and on
/// Ollama's port it answered with them off). On the gateway's port it is
/// off with them; on Ollama's port it is there whenever Ollama's API is
/// (Ollama serves it too). The caller is a member's device by its address
/// (the agent's API is the `AgentStandIn` stand-in).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_messages_api_is_off_with_the_openai_switches_and_on_with_ollamas_port() {
    let model = stand_in();
    let agent = hearth_testkit::standins::AgentStandIn::start();
    agent.set(
        "127.0.0.1",
        Some(hearth_testkit::standins::AgentStandIn::member(
            "ada",
            "127.0.0.1",
            json!({}),
        )),
    );
    let config = json!({
        "gateway": {"bind": "loopback"},
        "models": {"providers": {"standin": {"baseUrl": format!("{}/v1", model.url()), "models": [{"id": "m"}]}}},
        "agents": {"defaults": {"model": "standin/m"}},
    });
    let (gateway, ollama) = GatewayProcess::start_for_apps(config, &agent.socket);
    let ask = json!({"model": "standin/m", "max_tokens": 16,
                     "messages": [{"role": "user", "content": "hello"}]});
    let client = reqwest::Client::new();
    let off = client
        .post(format!("{}/v1/messages", gateway.url))
        .json(&ask)
        .send()
        .await
        .unwrap();
    assert_eq!(off.status(), 404);
    assert!(
        off.text()
            .await
            .unwrap()
            .contains("chatCompletions.enabled")
    );
    let on: Value = client
        .post(format!("{ollama}/v1/messages"))
        .json(&ask)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(on["type"], "message", "{on}");
    assert_eq!(on["content"][0]["text"], "echo: hello", "{on}");
}
