//! Mesh callers are known by their tunnel address: the gateway asks its
//! node's agent `whois`. Between network namespaces: a real coordinator, real
//! agents with userspace WireGuard, a real llama-server beside the gateway.
//! Needs root; outside CI it skips without.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use hearth_testkit::llama::{llama_server_binary, tiny_model};
use hearth_testkit::{Lab, wait_until};
use serde_json::json;

#[test]
fn mesh_nodes_are_let_in_by_tunnel_address_and_strangers_are_not() {
    let Some(mut lab) = Lab::new() else { return };
    let (Some(llama), Some(model)) = (llama_server_binary(), tiny_model()) else {
        return;
    };
    let (hub, home, phone, stranger) = (
        lab.host("hub"),
        lab.host("home"),
        lab.host("phone"),
        lab.host("stranger"),
    );
    let coordinator = lab.start_coordinator(&hub);
    coordinator.cli_ok(&["users", "create", "family"]);
    let token = coordinator.token_file(
        lab.dir.path(),
        "family.token",
        &["--user", "family", "--reusable", "--pre-approved"],
    );
    let home_agent = lab.start_agent(&home, &token, &["--backend", "userspace"]);
    let phone_agent = lab.start_agent(&phone, &token, &["--backend", "userspace"]);
    let home_mesh = home_agent.wait_mesh_ipv4(Duration::from_secs(15));
    phone_agent.wait_mesh_ipv4(Duration::from_secs(15));
    assert!(
        wait_until(Duration::from_secs(10), || lab.ping(
            &phone,
            home_mesh.into(),
            Duration::from_secs(1)
        ))
        .is_some()
    );

    // The model and the gateway run on `home`; the gateway listens on every
    // interface but lets in only callers its agent can name.
    let mut command = lab.command(&home, &llama);
    command.arg("-m").arg(&model).args([
        "--host",
        "127.0.0.1",
        "--port",
        "18090",
        "-c",
        "1024",
        "-t",
        "1",
        "--no-webui",
    ]);
    let _llama = lab.spawn(&home, "llama-server", command);
    let config = json!({
        "gateway": {"bind": "lan", "port": 18789, "http": {"endpoints": {"chatCompletions": {"enabled": true}}}},
        "models": {"providers": {"local": {"baseUrl": "http://127.0.0.1:18090/v1", "api": "openai-completions",
                                           "models": [{"id": "tiny", "contextWindow": 1024, "maxTokens": 16}]}}},
        "agents": {"defaults": {"model": {"primary": "local/tiny"}}},
        "hearth": {"dataDir": lab.dir.path().join("gateway-data"), "agentSocket": home_agent.state.join("agent.sock")},
    });
    let config_path = lab.dir.path().join("gateway.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let mut command = lab.command(&home, env!("CARGO_BIN_EXE_hearth-gateway"));
    command
        .args(["serve", "--config"])
        .arg(&config_path)
        .env("HEARTH_LOG", "debug");
    let gateway = lab.spawn(&home, "gateway", command);

    let chat = |host: &hearth_testkit::Host, address: String| {
        let key = lab.dir.path().join(format!("{}-device.key", host.name));
        lab.command(host, env!("CARGO_BIN_EXE_hearth-gateway"))
            .args([
                "chat",
                "--url",
                &format!("http://{address}:18789"),
                "--max-tokens",
                "4",
                "--device-key",
            ])
            .arg(key)
            // Identified by the mesh: no token (and none of this machine's).
            .arg("--token-file")
            .arg(lab.dir.path().join("no-token"))
            .arg("hello")
            .output()
            .unwrap()
    };
    let mut answered = None;
    let ready = wait_until(Duration::from_secs(20), || {
        let output = chat(&phone, home_mesh.to_string());
        let ok = output.status.success();
        answered = Some(output);
        ok
    });
    let output = answered.unwrap();
    assert!(
        ready.is_some(),
        "a mesh node is let in: {}\ngateway log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        gateway.log_text()
    );
    assert!(!String::from_utf8_lossy(&output.stdout).trim().is_empty());

    // The same phone over the underlay, and a host outside the mesh: refused.
    for (host, why) in [
        (&phone, "a mesh node outside its tunnel"),
        (&stranger, "a host outside the mesh"),
    ] {
        let output = chat(host, home.address.to_string());
        assert!(!output.status.success(), "{why} got in");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("401") && stderr.contains("unauthenticated"),
            "{why}: {stderr}"
        );
    }

    // A local user on the gateway's own host, through its own mesh address:
    // the agent names that address as the host itself, which is anyone local.
    let status = hearth_testkit::http_status_as(
        lab.command(&home, "runuser"),
        "nobody",
        &format!("http://{home_mesh}:18789/v1/models"),
    );
    assert_eq!(status, "401", "a local user is not the hub's user");
}

const OLLAMA_APP: &str = r#"
import os, ollama
client = ollama.Client(host=os.environ["OLLAMA"])
try:
    print("models:", " ".join(model.model for model in client.list().models))
    asked = [(False, os.environ["SAY"]), (True, "hello"), (False, os.environ["SAY"]), (False, os.environ.get("UPDATE"))]
    for stream, text in [(stream, text) for stream, text in asked if text]:
        if stream:
            said = "".join(part.message.content for part in client.chat(model="openclaw", stream=True,
                messages=[{"role": "user", "content": text}], options={"num_predict": 4}))
        else:
            said = client.chat(model="openclaw", messages=[{"role": "user", "content": text}],
                options={"num_predict": 4}).message.content
        print("said:" if said else "said nothing", said)
except ollama.ResponseError as error:
    print("refused:", error.status_code, error.error)
except Exception as error:
    print("failed:", type(error).__name__, error)
"#;

const OPENAI_APP: &str = r#"
import os, openai
headers = {"X-OpenWebUI-User-Name": os.environ["AS"]} if os.environ.get("AS") else {}
client = openai.OpenAI(base_url=os.environ["GATEWAY"], api_key="none", default_headers=headers, max_retries=0)
try:
    said = client.chat.completions.create(model="openclaw", max_tokens=4,
        messages=[{"role": "user", "content": "hello"}]).choices[0].message.content
    print("chat:", said)
    answer = client.responses.create(model="openclaw", input="hello", max_output_tokens=4)
    print("responses:", answer.output_text)
except openai.APIStatusError as error:
    print("refused:", error.status_code, error.body)
"#;

/// Every API knows a member by their device through the real agents, and
/// the policy's grants (through the real coordinator) decide models,
/// budgets and which front end may name whom; the official `ollama` and
/// `openai` clients run on the members' devices.
#[test]
fn every_api_knows_the_member_by_their_device_and_the_policy_decides() {
    let Some(mut lab) = Lab::new() else { return };
    let (Some(llama), Some(model)) = (llama_server_binary(), tiny_model()) else {
        return;
    };
    if hearth_testkit::llama::official_clients().is_none() {
        return;
    }
    let hosts: Vec<_> = ["hub", "laptop", "phone", "webui", "other", "stranger"]
        .iter()
        .map(|name| lab.host(name))
        .collect();
    let [hub, laptop, phone, webui, other, stranger] = <[_; 6]>::try_from(hosts).ok().unwrap();
    let coordinator = lab.start_coordinator(&hub);
    let policy = lab.dir.path().join("policy.json");
    std::fs::write(
        &policy,
        json!({
            "tagOwners": {"tag:webui": ["admin@"], "tag:other": ["admin@"]},
            "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
            "grants": [
                {"src": ["tag:webui"], "dst": ["home@"], "app": {"hearth.example/cap/ai": [{"actFor": ["ada"]}]}},
                {"src": ["ben@"], "dst": ["home@"], "app": {"hearth.example/cap/ai": [{"models": ["assistant"], "dailyTokens": 1}]}},
            ],
        })
        .to_string(),
    )
    .unwrap();
    coordinator.cli_ok(&["policy", "set", &policy.to_string_lossy()]);
    let mut agents = Vec::new();
    for (user, host, tags) in [
        ("home", &hub, None),
        ("ada", &laptop, None),
        ("ben", &phone, None),
        ("admin", &webui, Some("tag:webui")),
        ("admin", &other, Some("tag:other")),
    ] {
        let _ = coordinator.cli(&["users", "create", user]);
        let mut args = vec!["--user", user, "--pre-approved"];
        if let Some(tags) = tags {
            args.extend(["--tags", tags]);
        }
        let token = coordinator.token_file(lab.dir.path(), &format!("{}.token", host.name), &args);
        agents.push(lab.start_agent(host, &token, &["--backend", "userspace"]));
    }
    let hub_mesh = agents[0].wait_mesh_ipv4(Duration::from_secs(15));
    for agent in &agents[1..] {
        agent.wait_mesh_ipv4(Duration::from_secs(15));
    }

    let mut command = lab.command(&hub, &llama);
    command.arg("-m").arg(&model).args([
        "--host",
        "127.0.0.1",
        "--port",
        "18090",
        "-c",
        "1024",
        "-t",
        "1",
        "--no-webui",
    ]);
    let _llama = lab.spawn(&hub, "llama-server", command);
    let config = json!({
        "gateway": {"bind": "lan", "port": 18789, "http": {"endpoints": {"chatCompletions": {"enabled": true}, "responses": {"enabled": true}}}},
        "models": {"providers": {"local": {"baseUrl": "http://127.0.0.1:18090/v1", "api": "openai-completions",
                                           "models": [{"id": "tiny", "contextWindow": 1024, "maxTokens": 16}]}}},
        "agents": {"defaults": {"model": {"primary": "local/tiny"}}},
        "hearth": {"dataDir": lab.dir.path().join("gateway-data"), "agentSocket": agents[0].state.join("agent.sock"),
                   "ollama": {"enabled": true}},
    });
    let config_path = lab.dir.path().join("gateway.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let mut command = lab.command(&hub, env!("CARGO_BIN_EXE_hearth-gateway"));
    command.args(["serve", "--config"]).arg(&config_path);
    let gateway = lab.spawn(&hub, "gateway", command);

    let ollama = format!("http://{hub_mesh}:11434");
    let openai = format!("http://{hub_mesh}:18789/v1");
    // Ada's laptop: every model, the assistant remembering what she says.
    let mut out = String::new();
    let ready = wait_until(Duration::from_secs(30), || {
        out = lab.python_on(
            &laptop,
            OLLAMA_APP,
            &[
                ("OLLAMA", &ollama),
                ("SAY", "remember that the code is 7"),
                ("UPDATE", "remember that the code is 8"),
            ],
        );
        out.contains("models:")
    });
    assert!(ready.is_some(), "{out}\n{}", gateway.log_text());
    assert!(
        out.contains("models: openclaw openclaw/default openclaw/main local/tiny"),
        "{out}"
    );
    // Said twice: remembered once, the repeat acknowledged.
    assert_eq!(out.matches("said: I'll remember that.").count(), 1, "{out}");
    assert_eq!(
        out.matches("said: I already remember that.").count(),
        1,
        "{out}"
    );
    // A new value for the same thing replaces it, and says what it was.
    assert_eq!(
        out.matches("said: I've updated that (it was: the code is 7).")
            .count(),
        1,
        "{out}"
    );
    assert!(!out.contains("said nothing"), "{out}");
    let out = lab.python_on(&laptop, OPENAI_APP, &[("GATEWAY", &openai)]);
    assert!(
        out.contains("chat: ") && out.contains("responses: ") && !out.contains("refused"),
        "{out}"
    );
    // The llm CLI on her laptop, over the Responses API, streamed.
    let home = lab.dir.path().join("llm");
    std::fs::create_dir_all(&home).unwrap();
    let models = json!([{"model_id": "hearth", "model_name": "openclaw", "api_base": openai, "responses": true}]);
    std::fs::write(home.join("extra-openai-models.yaml"), models.to_string()).unwrap();
    let output = lab
        .command(
            &laptop,
            hearth_testkit::llama::python().with_file_name("llm"),
        )
        .args(["-m", "hearth", "--no-log", "hello"])
        .env("LLM_USER_PATH", &home)
        .output()
        .unwrap();
    assert!(
        output.status.success() && !output.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // Ben's phone: the assistant only, within a budget of one token.
    let out = lab.python_on(&phone, OLLAMA_APP, &[("OLLAMA", &ollama), ("SAY", "hello")]);
    assert!(
        out.contains("models: openclaw openclaw/default openclaw/main\n"),
        "{out}"
    );
    assert!(
        out.contains("refused: 429 ben has used ") && out.contains(" of 1 tokens today"),
        "{out}"
    );

    // The front end names ada (granted), not ben; an ungranted one nobody.
    let out = lab.python_on(&webui, OPENAI_APP, &[("GATEWAY", &openai), ("AS", "ada")]);
    assert!(out.contains("chat: ") && !out.contains("refused"), "{out}");
    let out = lab.python_on(&webui, OPENAI_APP, &[("GATEWAY", &openai), ("AS", "ben")]);
    assert!(
        out.contains("refused: 403") && out.contains("may not name whom it acts for"),
        "{out}"
    );
    let out = lab.python_on(&other, OPENAI_APP, &[("GATEWAY", &openai), ("AS", "ada")]);
    assert!(out.contains("refused: 403"), "{out}");
    let out = lab.python_on(&other, OPENAI_APP, &[("GATEWAY", &openai)]);
    assert!(
        out.contains("chat: "),
        "a tagged device is served as its tags: {out}"
    );

    // Usage: each device sees its own account's; the front end's use
    // counted as ada's, the tagged device's as its tag's.
    let usage = |host: &hearth_testkit::Host| {
        let output = lab
            .command(host, env!("CARGO_BIN_EXE_hearth-gateway"))
            .args([
                "usage",
                "--url",
                &format!("http://{hub_mesh}:18789"),
                "--token-file",
            ])
            .arg(lab.dir.path().join("no-token"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let ada = usage(&laptop);
    assert!(
        ada.contains(" ada ") && !ada.contains(" ben ") && !ada.contains("tag:"),
        "{ada}"
    );
    assert!(usage(&phone).contains(" ben "));
    assert!(usage(&other).contains(" tag:other "));

    // Outside the mesh, and a member's device over the LAN: nobody.
    for (host, why) in [
        (&stranger, "a host outside the mesh"),
        (&laptop, "a mesh device over the LAN"),
    ] {
        let out = lab.python_on(
            host,
            OLLAMA_APP,
            &[
                ("OLLAMA", &format!("http://{}:11434", hub.address)),
                ("SAY", "hi"),
            ],
        );
        assert!(out.contains("refused: 401"), "{why}: {out}");
    }
}
