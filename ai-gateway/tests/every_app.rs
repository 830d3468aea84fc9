//! The member's assistant from the apps they already use, driven by the
//! official clients no one here wrote: PyPI's `ollama` (against Hearth's
//! Ollama API), `openai` (chat completions and responses) and the `llm`
//! CLI. The caller is known by its address, as through the mesh: the
//! node agent's local API is a stand-in here (`AgentStandIn`, naming the
//! loopback address ada's, ben's or a front end's device in turn; the
//! real agents' `whois` is tested in `mesh_identity.rs`). The model is the
//! tool-calling stand-in (a real small model cannot be made to call a
//! given tool); embeddings come from a real llama-server.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use hearth_testkit::gateway_process::GatewayProcess;
use hearth_testkit::household::Embeddings;

const EMBEDDING_MODEL: &str = Embeddings::MiniLm.id();
use hearth_testkit::llama::{LlamaServer, python};
use hearth_testkit::skip;
use hearth_testkit::standins::{AgentStandIn, Turn, messages_of, tool_model_stand_in};
use serde_json::{Value, json};

/// What the model does: the weather question calls the household's clock
/// and then the app's own weather tool, then answers with what the tool
/// said; anything else is answered from what it was told is remembered.
fn decide(request: &Value) -> Turn {
    let messages = messages_of(request);
    let last = messages.last().cloned().unwrap_or_default();
    let called = |name: &str| {
        messages.iter().any(|message| {
            message["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|call| call["function"]["name"] == name)
        })
    };
    let asked = messages
        .iter()
        .rev()
        .find(|message| message["role"] == "user")
        .and_then(|message| message["content"].as_str())
        .map(|content| {
            hearth_gateway::context::split_context(content).map_or(content, |(_, said)| said)
        })
        .unwrap_or("");
    if asked.contains("weather") {
        if last["role"] == "tool" && called("weather") {
            return Turn::Say(format!(
                "In Oslo it is {}",
                last["content"].as_str().unwrap_or("")
            ));
        }
        if !called("current_time") {
            return Turn::Call(vec![("current_time".into(), json!({}))]);
        }
        return Turn::Call(vec![("weather".into(), json!({"city": "Oslo"}))]);
    }
    // What the assistant's context gave it (with the member's message).
    let system: String = messages
        .iter()
        .filter_map(|message| message["content"].as_str())
        .filter_map(|content| {
            hearth_gateway::context::split_context(content).map(|(context, _)| context)
        })
        .collect();
    match system.split("tulip-").nth(1) {
        Some(rest) => Turn::Say(format!(
            "The wifi password is tulip-{}",
            rest.split_whitespace().next().unwrap_or("")
        )),
        None => Turn::Say("I do not know that".into()),
    }
}

struct Apps {
    gateway: GatewayProcess,
    agent: AgentStandIn,
    ollama_url: String,
    dir: tempfile::TempDir,
    // Live as long as the test and stop with it (the embedding server is a
    // process: forgotten, it outlived the test).
    model: hearth_testkit::standins::ScriptedServer,
    _embeddings: LlamaServer,
}

impl Apps {
    /// The loopback address is now `who`'s device.
    fn device_of(&self, who: Value) {
        self.agent.set("127.0.0.1", Some(who));
    }

    /// Runs `script` with the official clients installed; its output.
    fn python(&self, script: &str, env: &[(&str, &str)]) -> (bool, String) {
        let output = Command::new(python())
            .args(["-c", script])
            .env("GATEWAY", format!("{}/v1", self.gateway.url))
            .env("ROOT", &self.gateway.url)
            .env("OLLAMA", &self.ollama_url)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            output.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    }

    /// The `llm` CLI with `model` configured as an OpenAI-compatible model
    /// of the gateway (`responses`: over `/v1/responses`), sending
    /// `headers`; its output.
    fn llm(&self, prompt: &str, responses: bool, headers: &[(&str, &str)]) -> (bool, String) {
        let home = self
            .dir
            .path()
            .join(format!("llm-{responses}-{}", headers.len()));
        std::fs::create_dir_all(&home).unwrap();
        let headers: serde_json::Map<String, Value> = headers
            .iter()
            .map(|(name, value)| ((*name).to_owned(), json!(value)))
            .collect();
        let models = json!([{"model_id": "hearth", "model_name": "openclaw",
            "api_base": format!("{}/v1", self.gateway.url), "responses": responses,
            "headers": headers}]);
        // YAML is a superset of JSON.
        std::fs::write(home.join("extra-openai-models.yaml"), models.to_string()).unwrap();
        let llm = python().with_file_name("llm");
        let output = Command::new(llm)
            .args(["-m", "hearth", "--no-log", prompt])
            .env("LLM_USER_PATH", &home)
            .output()
            .unwrap();
        (
            output.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    }
}

fn start() -> Option<Apps> {
    start_with(|_, _| {})
}

/// [`start`], with `tweak` changing the gateway's configuration (given a
/// folder of the test's own).
fn start_with(tweak: impl FnOnce(&mut Value, &std::path::Path)) -> Option<Apps> {
    let check = Command::new(python())
        .args(["-c", "import ollama, openai, llm"])
        .output();
    if !check.is_ok_and(|output| output.status.success()) {
        return skip(
            "the ollama, openai and llm clients are not installed: run scripts/python-env.sh",
        );
    }
    let embeddings = LlamaServer::start_embeddings()?;
    let model = tool_model_stand_in(decide);
    let agent = AgentStandIn::start();
    let mut config = hearth_testkit::gateway_process::config(&[(
        "standin",
        "openai-completions",
        &format!("{}/v1", model.url()),
    )]);
    config["gateway"]["http"]["endpoints"]["responses"] = json!({"enabled": true});
    config["hearth"]["limits"] =
        json!({"requestsPerMinutePerDevice": 100_000, "requestsPerMinutePerIp": 100_000});
    config["hearth"]["assistant"] = json!({"timezone": "Europe/London"});
    // A second model no agent uses: listed and answering when named.
    config["models"]["providers"]["standin"]["models"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "second", "contextWindow": 2048, "maxTokens": 64}));
    config["models"]["providers"]["vectors"] = json!({"baseUrl": embeddings.base_url,
        "api": "openai-completions", "models": [{"id": EMBEDDING_MODEL}]});
    config["memory"] = json!({"search": {"provider": "vectors", "model": EMBEDDING_MODEL}});
    let dir = tempfile::tempdir().unwrap();
    tweak(&mut config, dir.path());
    let (gateway, ollama_url) = GatewayProcess::start_for_apps(config, &agent.socket);
    Some(Apps {
        gateway,
        agent,
        ollama_url,
        dir,
        model,
        _embeddings: embeddings,
    })
}

const OLLAMA_LIST_CHAT_EMBED: &str = r#"
import os, sys, ollama
client = ollama.Client(host=os.environ["OLLAMA"])
names = [model.model for model in client.list().models]
print("models:", " ".join(names))
said = client.chat(model="openclaw", messages=[{"role": "user", "content": sys.argv[1] if len(sys.argv) > 1 else os.environ["SAY"]}])
print("said:", said.message.content)
streamed = "".join(part.message.content for part in client.chat(model="openclaw:latest", stream=True,
    messages=[{"role": "user", "content": "what is the wifi password?"}]))
print("streamed:", streamed)
vectors = client.embed(model=os.environ["EMBEDDER"], input=["a cat", "a dog"]).embeddings
print("embedded:", len(vectors), len(vectors[0]))
"#;

const OLLAMA_THINK: &str = r#"
import os, json, urllib.request, ollama
client = ollama.Client(host=os.environ["OLLAMA"])
said = client.chat(model="standin/tiny", think="high", messages=[{"role": "user", "content": "why is the sky blue?"}])
print("thought:", said.message.content)
try:
    client.chat(model="standin/tiny", think="extreme", messages=[{"role": "user", "content": "hi"}])
except ollama.ResponseError as error:
    print("refused:", error.status_code, error.error)
print("status:", json.load(urllib.request.urlopen(os.environ["OLLAMA"] + "/api/status")))
"#;

const OPENAI_ASK: &str = r#"
import os, openai
client = openai.OpenAI(base_url=os.environ["GATEWAY"], api_key="no key: the mesh says who I am")
said = client.chat.completions.create(model=os.environ.get("MODEL", "openclaw"),
    messages=[{"role": "user", "content": os.environ["SAY"]}])
print("said:", said.choices[0].message.content)
"#;

const OPENAI_MODELS: &str = r#"
import os, openai
client = openai.OpenAI(base_url=os.environ["GATEWAY"], api_key="none", max_retries=0)
for model in client.models.list().data:
    print("listed:", model.id, model.type, ",".join(model.capabilities))
said = client.chat.completions.create(model="standin/second", messages=[{"role": "user", "content": "hello"}])
print("second said:", said.model, said.choices[0].message.content)
try:
    client.chat.completions.create(model=os.environ["EMBEDDER"], messages=[{"role": "user", "content": "hello"}])
    print("embedder chatted")
except openai.BadRequestError as error:
    print("embedder refused:", error.status_code, error)
vectors = client.embeddings.create(model="openclaw", input=["a cat"]).data
print("agent embedded:", len(vectors[0].embedding))
"#;

const ANTHROPIC_APP: &str = r#"
import os, json, anthropic
client = anthropic.Anthropic(base_url=os.environ["BASE"], api_key="no key: the mesh says who I am", max_retries=0)
ask = [{"role": "user", "content": "what is the wifi password?"}]
said = client.messages.create(model="openclaw", max_tokens=64, messages=ask)
print("said:", said.content[0].text, said.stop_reason)
with client.messages.stream(model="openclaw", max_tokens=64, messages=ask) as stream:
    print("streamed:", "".join(stream.text_stream))
tools = [{"name": "weather", "description": "The weather in a city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
messages = [{"role": "user", "content": "what is the weather like?"}]
first = client.messages.create(model="openclaw", max_tokens=64, messages=messages, tools=tools)
use = [block for block in first.content if block.type == "tool_use"][0]
print("called:", use.name, json.dumps(use.input), first.stop_reason)
messages.append({"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]})
messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny and 21 degrees"}]})
second = client.messages.create(model="openclaw", max_tokens=64, messages=messages, tools=tools)
print("answered:", second.content[0].text)
with client.messages.stream(model="openclaw", max_tokens=64, messages=messages[:1], tools=tools) as stream:
    final = stream.get_final_message()
print("streamed called:", [(block.name, block.input) for block in final.content if block.type == "tool_use"])
try:
    client.messages.create(model="nobody/nothing", max_tokens=8, messages=ask)
except anthropic.NotFoundError as error:
    print("unknown model:", error.status_code, error.body["error"]["type"])
"#;

const OPENAI_TOOLS: &str = r#"
import os, json, openai
client = openai.OpenAI(base_url=os.environ["GATEWAY"], api_key="none")
tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object",
          "properties": {"city": {"type": "string"}}}}}]
messages = [{"role": "user", "content": "what is the weather like?"}]
first = client.chat.completions.create(model="openclaw", messages=messages, tools=tools)
call = first.choices[0].message.tool_calls[0]
print("called:", call.function.name, call.function.arguments)
messages.append(first.choices[0].message.model_dump(exclude_none=True))
messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny and 21 degrees"})
second = client.chat.completions.create(model="openclaw", messages=messages, tools=tools)
print("said:", second.choices[0].message.content)
# The same over the Responses API, streamed, as the SDK reads it.
rtools = [{"type": "function", "name": "weather", "parameters": tools[0]["function"]["parameters"]}]
with client.responses.stream(model="openclaw", input="what is the weather like?", tools=rtools) as stream:
    final = stream.get_final_response()
calls = [item for item in final.output if item.type == "function_call"]
print("responses called:", calls[0].name)
"#;

#[test]
fn the_members_assistant_answers_in_every_app_and_only_them() {
    let Some(apps) = start() else { return };
    let ada = AgentStandIn::member("ada", "127.0.0.1", json!({}));
    apps.device_of(ada.clone());

    // Ada tells the assistant a fact through an Ollama app…
    let (ok, out) = apps.python(
        OLLAMA_LIST_CHAT_EMBED,
        &[
            ("SAY", "remember that the wifi password is tulip-42"),
            ("EMBEDDER", EMBEDDING_MODEL),
        ],
    );
    assert!(ok, "{out}\n{}", apps.gateway.log_text());
    assert!(
        out.contains(&format!(
            "models: openclaw openclaw/default openclaw/main standin/second standin/tiny vectors/{EMBEDDING_MODEL}"
        )),
        "{out}"
    );
    assert!(out.contains("said: I'll remember that."), "{out}");
    // …and it recalls it there, streamed…
    assert!(
        out.contains("streamed: The wifi password is tulip-42"),
        "{out}"
    );
    assert!(out.contains("embedded: 2 384"), "{out}");
    // …and through the OpenAI SDK and the llm CLI.
    let (ok, out) = apps.python(OPENAI_ASK, &[("SAY", "what is the wifi password?")]);
    assert!(
        ok && out.contains("said: The wifi password is tulip-42"),
        "{out}"
    );
    let (ok, out) = apps.llm("what is the wifi password?", true, &[]);
    assert!(ok && out.contains("tulip-42"), "{out}");
    // A plain model stays a plain gateway: no assistant, no memory.
    let (ok, out) = apps.python(
        OPENAI_ASK,
        &[
            ("SAY", "what is the wifi password?"),
            ("MODEL", "standin/tiny"),
        ],
    );
    assert!(ok && out.contains("said: I do not know that"), "{out}");
    let (ok, out) = apps.llm("what is the wifi password?", false, &[]);
    assert!(ok && out.contains("tulip-42"), "{out}");

    // Every configured model is listed for what it is: a second chat model
    // answers when named; the embedding model is refused for chat in one
    // sentence, and gives the agent's embeddings.
    let (ok, out) = apps.python(OPENAI_MODELS, &[("EMBEDDER", EMBEDDING_MODEL)]);
    assert!(ok, "{out}\n{}", apps.gateway.log_text());
    assert!(
        out.contains("listed: standin/second chat completion,tools"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "listed: vectors/{EMBEDDING_MODEL} embedding embedding"
        )),
        "{out}"
    );
    assert!(
        out.contains("second said: standin/second I do not know that"),
        "{out}"
    );
    let asked_second = apps
        .model
        .requests()
        .iter()
        .any(|request| request.json()["model"] == "second");
    assert!(asked_second, "standin/second was not the model asked");
    assert!(
        out.contains("embedder refused: 400")
            && out.contains(&format!(
                "vectors/{EMBEDDING_MODEL} is an embedding model: it gives embeddings (/v1/embeddings"
            )),
        "{out}"
    );
    assert!(out.contains("agent embedded: 384"), "{out}");

    // A household tool and the app's own tool in one conversation.
    let (ok, out) = apps.python(OPENAI_TOOLS, &[]);
    assert!(ok, "{out}\n{}", apps.gateway.log_text());
    assert!(out.contains("called: weather {\"city\":\"Oslo\"}"), "{out}");
    assert!(
        out.contains("said: In Oslo it is sunny and 21 degrees"),
        "{out}"
    );
    assert!(out.contains("responses called: weather"), "{out}");

    // Ollama's think levels reach the model server (llama-server's template
    // switch and effort); an unknown level is refused; /api/status says
    // no cloud model is used.
    let (ok, out) = apps.python(OLLAMA_THINK, &[]);
    assert!(ok, "{out}");
    assert!(out.contains("thought: I do not know that"), "{out}");
    assert!(
        out.contains("refused: 400 invalid think value \"extreme\""),
        "{out}"
    );
    assert!(
        out.contains("status: {'cloud': {'disabled': True, 'source': 'config'}}"),
        "{out}"
    );
    let thought = apps
        .model
        .requests()
        .into_iter()
        .map(|request| request.json())
        .find(|body| body["reasoning_effort"] == "high")
        .expect("the think level reached the model server");
    assert_eq!(thought["chat_template_kwargs"]["enable_thinking"], true);

    // Anthropic's SDK, on the gateway's port and on Ollama's (which serves
    // the Messages API too): her assistant, streamed or not, and a tool of
    // the app's own called and answered.
    for base in [apps.gateway.url.clone(), apps.ollama_url.clone()] {
        let (ok, out) = apps.python(ANTHROPIC_APP, &[("BASE", &base)]);
        assert!(ok, "{base}: {out}\n{}", apps.gateway.log_text());
        assert!(
            out.contains("said: The wifi password is tulip-42") && out.contains("end_turn"),
            "{out}"
        );
        assert!(
            out.contains("streamed: The wifi password is tulip-42"),
            "{out}"
        );
        assert!(
            out.contains("called: weather {\"city\": \"Oslo\"} tool_use"),
            "{out}"
        );
        assert!(
            out.contains("answered: In Oslo it is sunny and 21 degrees"),
            "{out}"
        );
        assert!(
            out.contains("streamed called: [('weather', {'city': 'Oslo'})]"),
            "{out}"
        );
        assert!(out.contains("unknown model: 404 not_found_error"), "{out}");
    }

    // Ben gets nothing of it, through any app.
    apps.device_of(AgentStandIn::member("ben", "127.0.0.1", json!({})));
    let (ok, out) = apps.python(OPENAI_ASK, &[("SAY", "what is the wifi password?")]);
    assert!(ok && out.contains("said: I do not know that"), "{out}");
    let (ok, out) = apps.llm("what is the wifi password?", true, &[]);
    assert!(ok && !out.contains("tulip"), "{out}");

    // A front end on one device names the people it serves, as Open WebUI
    // does, only under the policy's grant and only for whom it names.
    let grant = json!({"hearth.example/cap/ai": [{"actFor": ["ada", "ben"]}]});
    apps.device_of(AgentStandIn::tagged(
        "webui",
        "127.0.0.1",
        &["tag:webui"],
        grant,
    ));
    let (ok, out) = apps.llm(
        "what is the wifi password?",
        false,
        &[("X-OpenWebUI-User-Name", "ada")],
    );
    assert!(ok && out.contains("tulip-42"), "{out}");
    let (ok, out) = apps.llm(
        "what is the wifi password?",
        false,
        &[("X-OpenWebUI-User-Name", "ben")],
    );
    assert!(ok && out.contains("I do not know that"), "{out}");
    let (ok, out) = apps.llm(
        "what is the wifi password?",
        false,
        &[("X-OpenWebUI-User-Name", "cy")],
    );
    assert!(
        !ok && out.contains("may not name whom it acts for"),
        "{out}"
    );
    // The tagged device itself is nobody's: no one's memory.
    let (ok, out) = apps.llm("what is the wifi password?", false, &[]);
    assert!(ok && out.contains("I do not know that"), "{out}");
    apps.device_of(AgentStandIn::tagged(
        "other",
        "127.0.0.1",
        &["tag:other"],
        json!({}),
    ));
    let (ok, out) = apps.llm(
        "what is the wifi password?",
        false,
        &[("X-OpenWebUI-User-Name", "ada")],
    );
    assert!(
        !ok && out.contains("may not name whom it acts for"),
        "{out}"
    );

    // The policy's models and budget: a member granted the assistant with
    // a small daily budget is refused the plain model, then told when the
    // budget is spent.
    let budget = json!({"hearth.example/cap/ai": [{"models": ["assistant"], "dailyTokens": 3}]});
    apps.device_of(AgentStandIn::member("cy", "127.0.0.1", budget));
    let (_, out) = apps.python(
        r#"
import os, ollama
client = ollama.Client(host=os.environ["OLLAMA"])
print("models:", " ".join(model.model for model in client.list().models))
for model in ["standin/tiny", "openclaw", "openclaw"]:
    try:
        said = client.chat(model=model, messages=[{"role": "user", "content": "hello there"}])
        print(model, "said:", said.message.content)
    except ollama.ResponseError as error:
        print(model, "refused:", error.status_code, error.error)
"#,
        &[],
    );
    assert!(
        out.contains("models: openclaw openclaw/default openclaw/main\n"),
        "{out}"
    );
    assert!(
        out.contains("standin/tiny refused: 403 cy may not use standin/tiny"),
        "{out}"
    );
    assert!(out.contains("openclaw said: I do not know that"), "{out}");
    assert!(
        out.contains("openclaw refused: 429 cy has used ") && out.contains(" of 3 tokens today"),
        "{out}"
    );
    // The same budget on Hearth's own encrypted API (its CLI, the web page).
    let sealed = Command::new(env!("CARGO_BIN_EXE_hearth-gateway"))
        .args(["chat", "--url", &apps.gateway.url, "--device-key"])
        .arg(apps.dir.path().join("cy.key"))
        .arg("--token-file")
        .arg(apps.dir.path().join("no-token"))
        .arg("hello")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&sealed.stderr);
    assert!(
        !sealed.status.success() && said.contains("budget_exhausted: cy has used "),
        "{said}"
    );

    // Each member lists their own usage; the token's holder everyone's.
    let usage = |token: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hearth-gateway"));
        command
            .args(["usage", "--url", &apps.gateway.url, "--token-file"])
            .arg(apps.dir.path().join("no-token"));
        if let Some(token) = token {
            command.env("HEARTH_GATEWAY_TOKEN", token);
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let own = usage(None);
    assert!(own.contains(" cy ") && !own.contains(" ada "), "{own}");
    let everyone = usage(Some(&apps.gateway.token()));
    assert!(
        everyone.contains(" cy ") && everyone.contains(" ada ") && everyone.contains(" ben "),
        "{everyone}"
    );
    // Never a word of what was said.
    assert!(
        !std::fs::read(apps.gateway.data_dir.join("sessions.db"))
            .unwrap()
            .windows(5)
            .any(|window| window == b"tulip")
    );

    // Models are the admin's: Ollama's management endpoints are refused.
    let (_, out) = apps.python(
        r#"
import os, ollama
try:
    ollama.Client(host=os.environ["OLLAMA"]).pull("llama3")
except ollama.ResponseError as error:
    print("refused:", error.status_code, error.error)
"#,
        &[],
    );
    assert!(
        out.contains("refused: 403 models are managed by the household's admin"),
        "{out}"
    );
    let _ = ada;
}

const OPENAI_SIGNED: &str = r#"
import os, openai
headers = {"X-OpenWebUI-User-Jwt": os.environ["JWT"]} if os.environ.get("JWT") else {"X-OpenWebUI-User-Name": os.environ["AS"]}
client = openai.OpenAI(base_url=os.environ["GATEWAY"], api_key="none", default_headers=headers, max_retries=0)
try:
    said = client.chat.completions.create(model="openclaw", messages=[{"role": "user", "content": os.environ["SAY"]}])
    print("said:", said.choices[0].message.content)
except openai.APIStatusError as error:
    print("refused:", error.status_code, error.body)
"#;

/// An HS256 token as Open WebUI mints it for its account `account`
/// (`sub`; email `ACCOUNT@home.test`) whose profile's name is `name`,
/// signed with `secret`, issued at `issued` (Unix seconds), valid five
/// minutes.
fn open_webui_token(secret: &[u8], account: &str, name: &str, issued: i64) -> String {
    use base64::Engine as _;
    use hmac::Mac as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let claims = json!({"sub": format!("id-{account}"), "email": format!("{account}@home.test"), "name": name,
                        "role": "user", "iss": "open-webui", "iat": issued, "exp": issued + 300});
    let signed = format!(
        "{}.{}",
        b64(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(signed.as_bytes());
    format!("{signed}.{}", b64(&mac.finalize().into_bytes()))
}

#[test]
fn open_webuis_signed_user_header_names_the_member_and_a_forged_one_is_refused() {
    const SECRET: &str = "open-webui-and-the-hub-share-this-one";
    let Some(apps) = start_with(|config, dir| {
        let file = dir.join("openwebui-user-jwt.secret");
        hearth_files::private::write_private(&file, SECRET.as_bytes()).unwrap();
        // Ada's account by its id, ben's by its email.
        config["hearth"]["openWebUi"] = json!({"userJwtSecretFile": file,
            "members": {"id-ada": "ada", "Ben@home.test": "ben"}});
    }) else {
        return;
    };
    // Open WebUI's device, granted to act for ada only.
    apps.device_of(AgentStandIn::tagged(
        "webui",
        "127.0.0.1",
        &["tag:webui"],
        json!({"hearth.example/cap/ai": [{"actFor": ["ada"]}]}),
    ));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .cast_signed();
    let ask = |jwt: &str, say: &str| {
        let (ok, out) = apps.python(OPENAI_SIGNED, &[("JWT", jwt), ("SAY", say)]);
        assert!(ok, "{out}");
        out
    };
    let ada = open_webui_token(SECRET.as_bytes(), "ada", "Ada", now);
    let out = ask(&ada, "remember that the wifi password is tulip-99");
    assert!(out.contains("said: I'll remember that."), "{out}");
    let out = ask(&ada, "what is the wifi password?");
    assert!(out.contains("said: The wifi password is tulip-99"), "{out}");
    // Attack (hardening round five, finding 4): ben names himself "ada" on
    // his Open WebUI profile; Open WebUI signs his token correctly. It is
    // still ben's account: refused (the grant names ada only), and never
    // given ada's memory.
    let ben_as_ada = open_webui_token(SECRET.as_bytes(), "ben", "ada", now);
    let out = ask(&ben_as_ada, "what is the wifi password?");
    assert!(
        out.contains("refused: 403") && out.contains("may not name whom it acts for"),
        "{out}"
    );
    assert!(!out.contains("tulip-99"), "{out}");
    // An account no member is mapped to: refused, saying how to map it.
    let stranger = open_webui_token(SECRET.as_bytes(), "cy", "ada", now);
    let out = ask(&stranger, "what is the wifi password?");
    assert!(
        out.contains("refused: 403") && out.contains("hearth.openWebUi.members"),
        "{out}"
    );
    // Signed for someone the grant does not name: refused as before.
    let ben = open_webui_token(SECRET.as_bytes(), "ben", "Ben", now);
    let out = ask(&ben, "what is the wifi password?");
    assert!(
        out.contains("refused: 403") && out.contains("may not name whom it acts for"),
        "{out}"
    );
    // Forged (another secret), expired, or the plain name header: refused.
    let forged = open_webui_token(b"not-the-secret-open-webui-has", "ada", "Ada", now);
    let out = ask(&forged, "what is the wifi password?");
    assert!(
        out.contains("refused: 403") && out.contains("not signed with this gateway's secret"),
        "{out}"
    );
    assert!(!out.contains("tulip-99"), "{out}");
    let expired = open_webui_token(SECRET.as_bytes(), "ada", "Ada", now - 3600);
    let out = ask(&expired, "what is the wifi password?");
    assert!(
        out.contains("refused: 403") && out.contains("has expired"),
        "{out}"
    );
    let (ok, out) = apps.python(
        OPENAI_SIGNED,
        &[("AS", "ada"), ("SAY", "what is the wifi password?")],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("refused: 400") && out.contains("is not taken here"),
        "{out}"
    );
}
