//! Structured outputs through every API, with the official clients no one
//! here wrote: the `openai` SDK's `response_format` (a JSON schema, and
//! `json_object`) on chat completions and the Responses API's
//! `text.format`, the `ollama` client's `format` (a schema, and "json"),
//! and LangChain's `with_structured_output` over Ollama's API. The model
//! server is a real llama-server (the tiny random model: only the schema's
//! grammar makes its reply JSON, so a format the gateway dropped shows as
//! prose). Asked of a model, and of the member's assistant (the agent,
//! which then offers none of the household's tools). The caller is known
//! by its address as through the mesh (the node agent's API is a stand-in
//! here, `AgentStandIn`; the real agents' `whois` is tested in
//! `mesh_identity.rs`).
#![allow(clippy::unwrap_used)]

use std::process::Command;

use hearth_testkit::gateway_process::{GatewayProcess, config};
use hearth_testkit::llama::{LlamaServer, python};
use hearth_testkit::skip;
use hearth_testkit::standins::AgentStandIn;
use serde_json::json;

/// Each client asks for a house's state as JSON matching SCHEMA (and for
/// any JSON object), from MODEL; prints each reply on its own line.
const CLIENTS: &str = r#"
import json, os, openai, ollama
schema = json.loads(os.environ["SCHEMA"])
model = os.environ["MODEL"]
question = [{"role": "user", "content": "is the house open, and how many rooms?"}]
client = openai.OpenAI(base_url=os.environ["GATEWAY"], api_key="the mesh says who I am")
said = client.chat.completions.create(model=model, messages=question, max_tokens=48,
    response_format={"type": "json_schema", "json_schema": {"name": "house", "schema": schema, "strict": True}})
print("openai schema:", said.choices[0].message.content)
said = client.chat.completions.create(model=model, messages=question, max_tokens=48,
    response_format={"type": "json_object"})
print("openai object:", said.choices[0].message.content.replace("\n", " "))
said = client.responses.create(model=model, input=question[0]["content"], max_output_tokens=48,
    text={"format": {"type": "json_schema", "name": "house", "schema": schema, "strict": True}})
print("responses schema:", said.output_text)
ollama_client = ollama.Client(host=os.environ["OLLAMA"])
said = ollama_client.chat(model=model, messages=question, format=schema, options={"num_predict": 48})
print("ollama schema:", said.message.content)
said = ollama_client.generate(model=model, prompt=question[0]["content"], format=schema,
    options={"num_predict": 48})
print("ollama generate:", said.response)
from langchain_ollama import ChatOllama
from pydantic import BaseModel, ConfigDict, Field
class House(BaseModel):
    model_config = ConfigDict(extra="forbid")
    open: bool
    rooms: int = Field(ge=0, le=9)
chat = ChatOllama(model=model, base_url=os.environ["OLLAMA"], num_predict=48)
print("langchain:", chat.with_structured_output(House).invoke(question[0]["content"]).model_dump_json())
"#;

const SCHEMA: &str = r#"{"type": "object",
  "properties": {"open": {"type": "boolean"}, "rooms": {"type": "integer", "minimum": 0, "maximum": 9}},
  "required": ["open", "rooms"], "additionalProperties": false}"#;

/// The reply after `label` in `out`, as JSON matching SCHEMA.
fn house(out: &str, label: &str) {
    let line = out
        .lines()
        .find_map(|line| line.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label} line: {out}"));
    let reply: serde_json::Value = serde_json::from_str(line.trim())
        .unwrap_or_else(|error| panic!("{label} is not JSON ({error}): {line:?}\n{out}"));
    let object = reply
        .as_object()
        .unwrap_or_else(|| panic!("{label} {reply}"));
    assert!(object["open"].is_boolean(), "{label} {reply}");
    assert!(
        (0..=9).contains(&object["rooms"].as_i64().unwrap()),
        "{label} {reply}"
    );
    assert_eq!(object.len(), 2, "{label} {reply}");
}

#[test]
fn every_api_holds_the_reply_to_the_format_asked_of_a_model_and_of_the_assistant() {
    let check = Command::new(python())
        .args(["-c", "import ollama, openai, langchain_ollama"])
        .output();
    if !check.is_ok_and(|output| output.status.success()) {
        skip::<()>(
            "the ollama, openai and langchain-ollama clients are not installed: run scripts/python-env.sh",
        );
        return;
    }
    let Some(llama) = LlamaServer::start_tcp() else {
        return;
    };
    let agent = AgentStandIn::start();
    agent.set(
        "127.0.0.1",
        Some(AgentStandIn::member("ada", "127.0.0.1", json!({}))),
    );
    let mut config = config(&[("local", "openai-completions", &llama.base_url)]);
    config["gateway"]["http"]["endpoints"]["responses"] = json!({"enabled": true});
    // The member's assistant answers the agent (memory, the household's tools).
    config["hearth"]["assistant"] = json!({"timezone": "Europe/London"});
    let (gateway, ollama) = GatewayProcess::start_for_apps(config, &agent.socket);
    for model in ["local/tiny", "openclaw"] {
        let output = Command::new(python())
            .args(["-c", CLIENTS])
            .env("GATEWAY", format!("{}/v1", gateway.url))
            .env("OLLAMA", &ollama)
            .env("MODEL", model)
            .env("SCHEMA", SCHEMA)
            .output()
            .unwrap();
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success(),
            "{model}: {out}\n{}",
            gateway.log_text()
        );
        for label in [
            "openai schema:",
            "responses schema:",
            "ollama schema:",
            "ollama generate:",
            "langchain:",
        ] {
            house(&out, label);
        }
        // Any JSON object: llama.cpp's grammar holds it to one (the tiny
        // model may run out of tokens inside it, so only its start is sure).
        let object = out
            .lines()
            .find_map(|line| line.strip_prefix("openai object:"))
            .unwrap_or_else(|| panic!("{out}"));
        assert!(object.trim_start().starts_with('{'), "{model}: {out}");
    }
}

/// Attack (hardening round five, finding 3): a member's schema of
/// thousands of optional properties was forwarded to llama-server, whose
/// conversion to a grammar then ran for tens of seconds (charged to no
/// one) only to end in an error. Such a schema gets a 400 naming the limit
/// on every API, in the gateway's words (it is refused where the request
/// is read, before any model is chosen); a schema at the limit
/// still holds a real llama-server's reply, and its size counts against
/// the member's day.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_past_the_limits_is_refused_before_the_model_server_sees_it() {
    let Some(llama) = LlamaServer::start_tcp() else {
        return;
    };
    let agent = AgentStandIn::start();
    agent.set(
        "127.0.0.1",
        Some(AgentStandIn::member("ada", "127.0.0.1", json!({}))),
    );
    let mut config = config(&[("local", "openai-completions", &llama.base_url)]);
    config["gateway"]["http"]["endpoints"]["responses"] = json!({"enabled": true});
    let (gateway, ollama) = GatewayProcess::start_for_apps(config, &agent.socket);
    let schema = |count: usize| {
        let properties: serde_json::Map<String, serde_json::Value> = (0..count)
            .map(|index| (format!("field_{index}"), json!({"type": "string"})))
            .collect();
        json!({"type": "object", "properties": properties})
    };
    let question = json!([{"role": "user", "content": "describe the house"}]);
    let huge = schema(3_000);
    let client = reqwest::Client::new();
    let asked = [
        (
            format!("{}/v1/chat/completions", gateway.url),
            json!({"model": "local/tiny", "messages": question, "max_tokens": 8,
                   "response_format": {"type": "json_schema",
                                       "json_schema": {"name": "house", "schema": huge}}}),
        ),
        (
            format!("{}/v1/responses", gateway.url),
            json!({"model": "local/tiny", "input": "describe the house", "max_output_tokens": 8,
                   "text": {"format": {"type": "json_schema", "name": "house", "schema": huge}}}),
        ),
        (
            format!("{ollama}/api/chat"),
            json!({"model": "local/tiny", "messages": question, "stream": false,
                   "format": huge, "options": {"num_predict": 8}}),
        ),
    ];
    for (url, body) in &asked {
        let response = client.post(url).json(body).send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(status, 400, "{url}: {text}");
        assert!(
            text.contains("3000 properties") && text.contains("at most 256"),
            "{url}: {text}"
        );
    }
    // At the limit: taken, and the real model server's reply holds to it.
    let at_limit = json!({"model": "local/tiny", "messages": question, "max_tokens": 8,
        "response_format": {"type": "json_schema",
                            "json_schema": {"name": "house", "schema": schema(256)}}});
    let response = client
        .post(format!("{}/v1/chat/completions", gateway.url))
        .json(&at_limit)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let reply: serde_json::Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{reply}");
    let content = reply["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(content.trim_start().starts_with('{'), "{content}");
    // What the schema weighs is counted: far more than the question alone.
    let ada = gateway.prompt_tokens("ada").await;
    let weighed = schema(256).to_string().len() as u64 / 3;
    assert!(
        ada >= weighed,
        "{ada} prompt tokens for a schema of ~{weighed}"
    );
}
