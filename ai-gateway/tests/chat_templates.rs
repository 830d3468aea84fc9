//! The assistant's prompt (persona, what is remembered and what the
//! documents say, the household's tools, history) renders under the real
//! chat templates of the common model families, as llama-server `--jinja`
//! renders them: each template is carried in the tiny generated model's
//! metadata (the templates are llama.cpp's own copies, from the sources of
//! the llama-server build). Before, the assistant's context went in a
//! system message of its own after the history, which Gemma's and
//! Mistral's templates refuse. The member is known by address (the node
//! agent's local API stood in for).
#![allow(clippy::unwrap_used)]

use hearth_testkit::gateway_process::GatewayProcess;
use hearth_testkit::llama::{
    LlamaServer, chat_templates, instruct_model, tiny_model_with_template,
};
use hearth_testkit::standins::{AgentStandIn, Ending, Script, ScriptedServer};
use serde_json::{Value, json};

/// Agent id and template file (in llama.cpp's `models/templates`).
const FAMILIES: [(&str, &str); 10] = [
    ("llama31", "meta-llama-Llama-3.1-8B-Instruct"),
    ("llama32", "meta-llama-Llama-3.2-3B-Instruct"),
    ("qwen25", "Qwen-Qwen2.5-7B-Instruct"),
    ("qwen3", "Qwen-Qwen3-0.6B"),
    ("gemma2", "google-gemma-2-2b-it"),
    ("mistral-nemo", "mistralai-Mistral-Nemo-Instruct-2407"),
    ("mistral-small", "Mistral-Small-3.2-24B-Instruct-2506"),
    ("phi35", "microsoft-Phi-3.5-mini-instruct"),
    ("deepseek-r1", "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B"),
    ("deepseek-v31", "deepseek-ai-DeepSeek-V3.1"),
];

/// SmolLM2's template, read from the real SmolLM2-135M-Instruct's metadata.
fn smollm2_template(dir: &std::path::Path) -> Option<std::path::PathBuf> {
    let model = instruct_model()?;
    let path = dir.join("smollm2.jinja");
    let output = std::process::Command::new(hearth_testkit::llama::python())
        .args([
            "-c",
            "import gguf, sys\n\
             field = gguf.GGUFReader(sys.argv[1]).fields['tokenizer.chat_template']\n\
             open(sys.argv[2], 'wb').write(bytes(field.parts[field.data[0]]))",
        ])
        .arg(&model)
        .arg(&path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    Some(path)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_assistants_prompt_renders_under_every_common_chat_template() {
    let Some(templates) = chat_templates() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let Some(smollm2) = smollm2_template(work.path()) else {
        return;
    };
    let mut families: Vec<(String, std::path::PathBuf)> = FAMILIES
        .iter()
        .map(|(id, file)| ((*id).to_owned(), templates.join(format!("{file}.jinja"))))
        .collect();
    families.push(("smollm2".into(), smollm2));
    let mut servers = Vec::new();
    let mut providers = serde_json::Map::new();
    let mut agents = serde_json::Map::new();
    for (id, template) in &families {
        let Some(model) = tiny_model_with_template(template) else {
            return;
        };
        let server =
            LlamaServer::start_model(&model, &["--jinja", "-c", "16384", "-np", "1", "-t", "1"])
                .unwrap();
        providers.insert(
            id.clone(),
            json!({"baseUrl": server.base_url, "api": "openai-completions",
                   "models": [{"id": "tiny", "contextWindow": 16384, "maxTokens": 8}]}),
        );
        agents.insert(
            id.clone(),
            json!({"model": {"primary": format!("{id}/tiny")}}),
        );
        servers.push(server);
    }
    let agent = AgentStandIn::start();
    agent.set(
        "127.0.0.1",
        Some(AgentStandIn::member("ada", "127.0.0.1", json!({}))),
    );
    let config = json!({
        "gateway": {"bind": "loopback", "auth": {"mode": "token"},
                    "http": {"endpoints": {"chatCompletions": {"enabled": true}}}},
        "models": {"providers": providers},
        "agents": {"defaults": {"model": {"primary": "llama31/tiny"}}, "entries": agents},
        "hearth": {"agentSocket": agent.socket, "assistant": {"timezone": "Europe/London"},
                   "healthCheckSeconds": 1},
    });
    let gateway = GatewayProcess::start(config);
    let http = reqwest::Client::new();
    let ask = |model: String, messages: Value| {
        let http = http.clone();
        let url = format!("{}/v1/chat/completions", gateway.url);
        async move {
            let response = http
                .post(url)
                .json(&json!({"model": model, "max_tokens": 4, "messages": messages}))
                .send()
                .await
                .unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    // Something remembered, so that the context carries memory.
    let (status, said) = ask(
        "openclaw".into(),
        json!([{"role": "user", "content": "remember that tea is at four"}]),
    )
    .await;
    assert_eq!(status, 200, "{said}");
    let history = json!([
        {"role": "system", "content": "You are the household's helper."},
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "when is tea?"},
    ]);
    let mut failed = Vec::new();
    for (id, _) in &families {
        // Each twice: the first may come before the gateway has asked the
        // server what its template renders (then tools go too).
        for _ in 0..2 {
            let (status, said) = ask(format!("openclaw/{id}"), history.clone()).await;
            // Answered by that model itself, not another one failed over to.
            if status != 200
                || said["model"] != format!("{id}/tiny")
                || !said["choices"][0]["message"]["content"].is_string()
            {
                failed.push(format!("{id}: {status} {said}"));
            }
        }
    }
    assert!(failed.is_empty(), "{failed:#?}\n{}", gateway.log_text());

    // What each model can do is what its llama-server says of its template:
    // SmolLM2's renders no tools, Qwen 2.5's does.
    let listed: Value = gateway.get_json("/v1/models").await;
    let capabilities = |id: &str| capabilities_of(&listed, id);
    assert_eq!(capabilities("smollm2/tiny"), json!(["completion"]));
    assert_eq!(capabilities("openclaw/smollm2"), json!(["completion"]));
    assert_eq!(capabilities("qwen25/tiny"), json!(["completion", "tools"]));
}

/// A llama-server stand-in whose `/props` says its template renders tools
/// (or not), recording what it is asked: what the gateway sends a model is
/// not visible from a real llama-server.
fn server_saying_tools(tools: bool) -> ScriptedServer {
    server_saying(tools, false)
}

/// [`server_saying_tools`], saying too whether it reads images.
fn server_saying(tools: bool, vision: bool) -> ScriptedServer {
    ScriptedServer::start(move |request| {
        match request.path.as_str() {
        "/props" => Script::json(200, &json!({"chat_template_caps": {"supports_tools": tools, "supports_system_role": true},
                                              "modalities": {"vision": vision}})),
        "/v1/models" => Script::json(200, &json!({"object": "list", "data": [{"id": "tiny"}]})),
        _ => Script::stream(
            "text/event-stream",
            vec![
                format!("data: {}\n\n", json!({"choices": [{"index": 0, "delta": {"content": "fine"}, "finish_reason": null}]})).into_bytes(),
                format!("data: {}\n\n", json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})).into_bytes(),
                b"data: [DONE]\n\n".to_vec(),
            ],
            std::time::Duration::ZERO,
            Ending::Complete,
        ),
    }
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn household_tools_go_only_to_a_model_whose_template_renders_them() {
    let (with, without) = (server_saying_tools(true), server_saying_tools(false));
    let agent = AgentStandIn::start();
    agent.set(
        "127.0.0.1",
        Some(AgentStandIn::member("ada", "127.0.0.1", json!({}))),
    );
    let provider = |server: &ScriptedServer| {
        json!({"baseUrl": format!("{}/v1", server.url()), "api": "openai-completions",
               "models": [{"id": "tiny", "contextWindow": 8192, "maxTokens": 8}]})
    };
    let gateway = GatewayProcess::start(json!({
        "gateway": {"bind": "loopback", "auth": {"mode": "token"},
                    "http": {"endpoints": {"chatCompletions": {"enabled": true}}}},
        "models": {"providers": {"with": provider(&with), "without": provider(&without)}},
        "agents": {"defaults": {"model": {"primary": "with/tiny"}},
                   "entries": {"tools": {"model": {"primary": "with/tiny"}},
                               "plain": {"model": {"primary": "without/tiny"}}}},
        "hearth": {"agentSocket": agent.socket, "healthCheckSeconds": 1},
    }));
    // Ready when the gateway has asked both what their templates render.
    let asked = hearth_testkit::wait_until(std::time::Duration::from_secs(10), || {
        with.count("/props") > 0 && without.count("/props") > 0
    });
    assert!(asked.is_some(), "{}", gateway.log_text());
    let http = reqwest::Client::new();
    for model in ["openclaw/tools", "openclaw/plain"] {
        let response = http
            .post(format!("{}/v1/chat/completions", gateway.url))
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "hello"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }
    let sent = |server: &ScriptedServer| {
        server
            .requests()
            .into_iter()
            .find(|request| request.path == "/v1/chat/completions")
            .map(|request| request.json())
            .unwrap()
    };
    assert!(
        sent(&with)["tools"]
            .as_array()
            .is_some_and(|tools| !tools.is_empty())
    );
    assert!(
        sent(&without).get("tools").is_none_or(Value::is_null),
        "{}",
        sent(&without)
    );
}

/// A 1×1 PNG, base64.
const PIXEL: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

#[tokio::test(flavor = "multi_thread")]
async fn images_go_only_to_a_model_that_reads_them() {
    // A model with a multimodal projector cannot be had here (no model
    // hub): stand-ins say in /props whether they read images.
    let (eyes, blind) = (server_saying(false, true), server_saying(false, false));
    let provider = |server: &ScriptedServer| {
        json!({"baseUrl": format!("{}/v1", server.url()), "api": "openai-completions",
               "models": [{"id": "tiny", "contextWindow": 8192, "maxTokens": 8}]})
    };
    let ollama_port = hearth_testkit::llama::free_port();
    let gateway = GatewayProcess::start(json!({
        "gateway": {"bind": "loopback", "http": {"endpoints": {"chatCompletions": {"enabled": true}}}},
        "models": {"providers": {"eyes": provider(&eyes), "blind": provider(&blind)}},
        "agents": {"defaults": {"model": {"primary": "eyes/tiny", "fallbacks": ["blind/tiny"]}}},
        "hearth": {"healthCheckSeconds": 1, "ollama": {"enabled": true, "port": ollama_port}},
    }));
    let asked = hearth_testkit::wait_until(std::time::Duration::from_secs(10), || {
        eyes.count("/props") > 0
            && blind.count("/props") > 0
            && hearth_testkit::llama::port_answers(("127.0.0.1", ollama_port))
    });
    assert!(asked.is_some(), "{}", gateway.log_text());
    let http = gateway.http();
    let url = format!("data:image/png;base64,{PIXEL}");
    let chat = |model: &str| {
        json!({"model": model, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": url}}]}]})
    };
    let response = http
        .post(format!("{}/v1/chat/completions", gateway.url))
        .json(&chat("eyes/tiny"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let response = http
        .post(format!("http://127.0.0.1:{ollama_port}/api/chat"))
        .json(&json!({"model": "eyes/tiny", "stream": false,
                      "messages": [{"role": "user", "content": "and this?", "images": [PIXEL]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let seen: Vec<Value> = eyes
        .requests()
        .into_iter()
        .filter(|request| request.path == "/v1/chat/completions")
        .map(|request| request.json()["messages"][0]["content"].clone())
        .collect();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for content in &seen {
        assert_eq!(content[1]["image_url"]["url"], url.as_str(), "{content}");
    }
    assert_eq!(seen[1][0]["text"], "and this?");

    // A model that does not read images is not sent them, and says why.
    let response = http
        .post(format!("{}/v1/chat/completions", gateway.url))
        .json(&chat("blind/tiny"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let said: Value = response.json().await.unwrap();
    assert!(
        said["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not read images"),
        "{said}"
    );
    assert_eq!(blind.count("/v1/chat/completions"), 0);
    // Nothing is fetched: an image by address is refused.
    let response = http
        .post(format!("{}/v1/chat/completions", gateway.url))
        .json(
            &json!({"model": "eyes/tiny", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "http://127.0.0.1:9/cat.png"}}]}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    // The encrypted chat (household messaging's, with a picture shared in
    // a member's conversation with the assistant): to the chain's first
    // model, which reads images.
    let before = eyes.count("/v1/chat/completions");
    let client = gateway.client(hearth_e2ee::KeyPair::generate());
    let payload = |images: Vec<String>| hearth_e2ee::ChatPayload {
        message: "What is in this picture?".into(),
        channel: Some("pictures".into()),
        max_tokens: Some(8),
        temperature: None,
        images,
        on_behalf_of: None,
    };
    let mut events = Vec::new();
    client
        .chat(&payload(vec![url.clone()]), |event| {
            events.push(event.clone())
        })
        .await
        .unwrap();
    assert_eq!(hearth_testkit::gateway_process::text_of(&events), "fine");
    assert_eq!(eyes.count("/v1/chat/completions"), before + 1);
    let sent = eyes.requests().pop().unwrap().json();
    let last = sent["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last["content"][1]["image_url"]["url"],
        url.as_str(),
        "{last}"
    );
    // Something else called a picture is refused before any model sees it.
    let refusal = |events: &[hearth_e2ee::ReplyEvent]| {
        events.iter().find_map(|event| match event {
            hearth_e2ee::ReplyEvent::Error { code, message } => Some((*code, message.clone())),
            _ => None,
        })
    };
    let mut events = Vec::new();
    client
        .chat(
            &payload(vec!["data:text/html;base64,PHNjcmlwdD4=".into()]),
            |event| events.push(event.clone()),
        )
        .await
        .unwrap();
    let (code, message) = refusal(&events).expect("refused");
    assert_eq!(code, hearth_e2ee::ErrorCode::UnsupportedMediaType);
    assert!(message.contains("data:image/"), "{message}");
    assert_eq!(eyes.count("/v1/chat/completions"), before + 1);

    // A chain starting with a model that does not read images: refused
    // with why, and nothing sent.
    let blind_first = GatewayProcess::start(json!({
        "models": {"providers": {"eyes": provider(&eyes), "blind": provider(&blind)}},
        "agents": {"defaults": {"model": {"primary": "blind/tiny", "fallbacks": ["eyes/tiny"]}}},
        "hearth": {"healthCheckSeconds": 1},
    }));
    let asked = hearth_testkit::wait_until(std::time::Duration::from_secs(10), || {
        blind.count("/props") > 1
    });
    assert!(asked.is_some(), "{}", blind_first.log_text());
    let mut events = Vec::new();
    blind_first
        .client(hearth_e2ee::KeyPair::generate())
        .chat(&payload(vec![url.clone()]), |event| {
            events.push(event.clone())
        })
        .await
        .unwrap();
    let (code, message) = refusal(&events).expect("refused");
    assert_eq!(code, hearth_e2ee::ErrorCode::UnsupportedMediaType);
    assert!(message.contains("can look at pictures"), "{message}");
    assert_eq!(blind.count("/v1/chat/completions"), 0);
}

/// What `/v1/models` (its answer `listed`) says model `id` can do.
fn capabilities_of(listed: &Value, id: &str) -> Value {
    listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|model| model["id"] == id)
        .map(|model| model["capabilities"].clone())
        .unwrap_or_else(|| panic!("{id} is not listed: {listed}"))
}

/// An Ollama stand-in whose `/api/show` says what each model can do
/// (no real Ollama runs here).
fn ollama_saying(capabilities: Value) -> ScriptedServer {
    ScriptedServer::start(move |request| match request.path.as_str() {
        "/api/tags" => Script::json(200, &json!({"models": []})),
        "/api/show" => Script::json(200, &json!({"capabilities": capabilities})),
        _ => Script::json(404, &json!({"error": "not here"})),
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn what_an_ollama_model_can_do_is_what_ollama_says() {
    let thinker = ollama_saying(json!(["completion", "vision", "thinking"]));
    let plain = ollama_saying(json!(["completion"]));
    let agent = AgentStandIn::start();
    let provider = |server: &ScriptedServer, model: &str| {
        json!({"baseUrl": server.url(), "api": "ollama",
               "models": [{"id": model, "contextWindow": 8192, "maxTokens": 8}]})
    };
    let gateway = GatewayProcess::start(json!({
        "gateway": {"bind": "loopback", "auth": {"mode": "token"},
                    "http": {"endpoints": {"chatCompletions": {"enabled": true}}}},
        "models": {"providers": {"thinker": provider(&thinker, "qwen3-vl"), "plain": provider(&plain, "llama3.2")}},
        "agents": {"defaults": {"model": {"primary": "thinker/qwen3-vl"}}},
        "hearth": {"agentSocket": agent.socket, "healthCheckSeconds": 1},
    }));
    let asked = hearth_testkit::wait_until(std::time::Duration::from_secs(10), || {
        thinker.count("/api/show") > 0 && plain.count("/api/show") > 0
    });
    assert!(asked.is_some(), "{}", gateway.log_text());
    let shown = thinker
        .requests()
        .into_iter()
        .find(|request| request.path == "/api/show")
        .unwrap();
    assert_eq!(
        shown.json()["model"],
        "qwen3-vl",
        "asked about its own model"
    );
    let listed: Value = gateway.get_json("/v1/models").await;
    let capabilities = |id: &str| capabilities_of(&listed, id);
    assert_eq!(
        capabilities("thinker/qwen3-vl"),
        json!(["completion", "vision", "thinking"])
    );
    // The other model says no tools: none are claimed for it.
    assert_eq!(capabilities("plain/llama3.2"), json!(["completion"]));
}
