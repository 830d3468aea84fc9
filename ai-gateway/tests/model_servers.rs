//! The household's other computers lend their models: model servers found
//! on the mesh by their tag, answering while they are awake. Between
//! network namespaces: a real coordinator and real agents (userspace
//! WireGuard), a real llama-server on `gpu`, and on `mac` the Ollama
//! stand-in of `hearth_testkit::standins` (Ollama itself cannot be
//! installed here); the official `openai` and `ollama` clients on the
//! members' devices. Needs root; outside CI it skips without.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use hearth_testkit::llama::{llama_server_binary, tiny_model};
use hearth_testkit::{Host, Lab, wait_until};
use serde_json::json;

/// Lists the models (OpenAI's and Ollama's APIs), then asks `MODEL` (if
/// set) once: prints `listed:`, `ollama:`, `answered: MODEL-THAT-ANSWERED
/// SECONDS` or `refused: STATUS ...`.
const APP: &str = r#"
import json, os, time, openai, ollama
client = openai.OpenAI(base_url=os.environ["GATEWAY"], api_key="none", max_retries=0, timeout=120)
print("listed:", json.dumps(sorted(model.id for model in client.models.list().data)))
print("ollama:", json.dumps(sorted(model.model for model in ollama.Client(host=os.environ["OLLAMA"]).list().models)))
if os.environ.get("MODEL"):
    started = time.monotonic()
    try:
        answer = client.chat.completions.create(model=os.environ["MODEL"], max_tokens=4,
            messages=[{"role": "user", "content": "hello there"}])
        print("answered:", answer.model, round(time.monotonic() - started, 3))
    except openai.APIStatusError as error:
        print("refused:", error.status_code, json.dumps(error.body))
"#;

/// Asserts that `asked` was answered by `model`.
fn assert_answered_by(asked: &Asked, model: &str) {
    assert_eq!(
        asked
            .answered
            .as_ref()
            .map(|(answered, _)| answered.as_str()),
        Some(model),
        "{}",
        asked.text
    );
}

struct Asked {
    listed: Vec<String>,
    ollama: Vec<String>,
    answered: Option<(String, f64)>,
    text: String,
}

fn ask(lab: &Lab, host: &Host, hub_mesh: &str, model: &str) -> Asked {
    let text = lab.python_on(
        host,
        APP,
        &[
            ("GATEWAY", &format!("http://{hub_mesh}:18789/v1")),
            ("OLLAMA", &format!("http://{hub_mesh}:11434")),
            ("MODEL", model),
        ],
    );
    let line = |prefix: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(prefix))
            .map(str::trim)
            .map(str::to_owned)
    };
    let list = |prefix: &str| -> Vec<String> {
        line(prefix)
            .and_then(|json| serde_json::from_str(&json).ok())
            .unwrap_or_default()
    };
    let answered = line("answered:").map(|rest| {
        let (model, seconds) = rest.rsplit_once(' ').unwrap();
        (model.to_owned(), seconds.parse().unwrap())
    });
    Asked {
        listed: list("listed:"),
        ollama: list("ollama:"),
        answered,
        text,
    }
}

#[test]
fn models_of_the_households_other_computers_answer_while_they_are_awake() {
    let Some(mut lab) = Lab::new() else { return };
    let (Some(llama), Some(model)) = (llama_server_binary(), tiny_model()) else {
        return;
    };
    if hearth_testkit::llama::official_clients().is_none() {
        return;
    }
    let hosts: Vec<_> = ["hub", "gpu", "mac", "laptop", "phone"]
        .iter()
        .map(|name| lab.host(name))
        .collect();
    let [hub, gpu, mac, laptop, phone] = <[_; 5]>::try_from(hosts).ok().unwrap();
    let coordinator = lab.start_coordinator(&hub);
    let policy = lab.dir.path().join("policy.json");
    // Members reach the hub; only the hub reaches the model servers, and
    // only on their model ports. Ada may use the gpu's models and the
    // pool, Ben the hub's own model only.
    std::fs::write(
        &policy,
        json!({
            "tagOwners": {"tag:models": ["admin@"]},
            "acls": [
                {"action": "accept", "src": ["ada@", "ben@"], "dst": ["home@:*"]},
                {"action": "accept", "src": ["home@"], "dst": ["tag:models:8080,11434"]},
            ],
            "grants": [
                {"src": ["ada@"], "dst": ["home@"], "app": {"hearth.example/cap/ai": [{"models": ["assistant", "gpu/*", "models/*", "local/tiny"]}]}},
                {"src": ["ben@"], "dst": ["home@"], "app": {"hearth.example/cap/ai": [{"models": ["assistant", "local/tiny"]}]}},
            ],
        })
        .to_string(),
    )
    .unwrap();
    coordinator.cli_ok(&["policy", "set", &policy.to_string_lossy()]);
    let mut tokens = Vec::new();
    let mut agents = Vec::new();
    for (user, host, tags) in [
        ("home", &hub, None),
        ("admin", &gpu, Some("tag:models")),
        ("admin", &mac, Some("tag:models")),
        ("ada", &laptop, None),
        ("ben", &phone, None),
    ] {
        let _ = coordinator.cli(&["users", "create", user]);
        let mut args = vec!["--user", user, "--pre-approved", "--reusable"];
        if let Some(tags) = tags {
            args.extend(["--tags", tags]);
        }
        let token = coordinator.token_file(lab.dir.path(), &format!("{}.token", host.name), &args);
        agents.push(lab.start_agent(host, &token, &["--backend", "userspace"]));
        tokens.push(token);
    }
    let hub_mesh = agents[0]
        .wait_mesh_ipv4(Duration::from_secs(15))
        .to_string();
    let gpu_mesh = agents[1].wait_mesh_ipv4(Duration::from_secs(15));
    for agent in &agents[2..] {
        agent.wait_mesh_ipv4(Duration::from_secs(15));
    }

    // The model servers: llama-server on the gpu (every interface, as a
    // model server on a household's LAN listens), the Ollama stand-in on
    // the mac, both serving "smollm".
    let _gpu_model =
        lab.start_llama_server(&gpu, &llama, &model, ("0.0.0.0", 8080), "smollm", 1024);
    let mut stand_in = lab.command(&mac, hearth_testkit::lab::binary("hearth-probe"));
    stand_in.args(["ollama", "0.0.0.0:11434", "smollm"]);
    let _mac_model = lab.spawn(&mac, "mac-ollama-stand-in", stand_in);
    // The hub's own small model, the fallback.
    let _hub_model =
        lab.start_llama_server(&hub, &llama, &model, ("127.0.0.1", 18090), "tiny", 1024);

    // The gpu may be woken: its LAN card's address, the LAN's broadcast.
    let mac = lab
        .command(&gpu, "cat")
        .arg(format!("/sys/class/net/{}/address", gpu.interface))
        .output()
        .unwrap();
    let mac = String::from_utf8_lossy(&mac.stdout).trim().to_owned();
    let octets = gpu.address.octets();
    let broadcast = format!("{}.{}.{}.255:9", octets[0], octets[1], octets[2]);
    let config = json!({
        "gateway": {"bind": "lan", "port": 18789, "http": {"endpoints": {"chatCompletions": {"enabled": true}}}},
        "models": {"providers": {"local": {"baseUrl": "http://127.0.0.1:18090/v1", "api": "openai-completions",
                                           "models": [{"id": "tiny", "contextWindow": 1024, "maxTokens": 16}]}}},
        // The household's assistant starts on the gpu; the hub's model is its fallback.
        "agents": {"defaults": {"model": {"primary": "gpu/smollm", "fallbacks": ["local/tiny"]}}},
        "hearth": {"dataDir": lab.dir.path().join("gateway-data"), "agentSocket": agents[0].state.join("agent.sock"),
                   "ollama": {"enabled": true}, "modelServers": {"tag": "tag:models", "wake": {"gpu": mac}, "wakeAddress": broadcast},
                   "connectTimeoutSeconds": 20},
    });
    let gateway = lab.serve_gateway(&hub, env!("CARGO_BIN_EXE_hearth-gateway"), &config);

    // Both servers are found and their models listed, by device and pooled,
    // in OpenAI's and Ollama's lists: those Ada is granted (the gpu's and
    // the pool, not the mac's by name).
    let found = ["gpu/smollm", "models/smollm"];
    let mut asked = None;
    let listed = wait_until(Duration::from_secs(60), || {
        let now = ask(&lab, &laptop, &hub_mesh, "");
        let ok = found
            .iter()
            .all(|id| now.listed.contains(&(*id).to_owned()));
        asked = Some(now);
        ok
    });
    let asked = asked.unwrap();
    assert!(
        listed.is_some(),
        "{}\ngateway:\n{}",
        asked.text,
        gateway.log_text()
    );
    for id in found.iter().chain(&["local/tiny"]) {
        assert!(
            asked.ollama.contains(&(*id).to_owned()),
            "{id}: {}",
            asked.text
        );
    }
    assert!(
        !asked.listed.contains(&"mac/smollm".to_owned()),
        "{}",
        asked.text
    );
    // Both joined (the pool has two servers): the gateway says so.
    assert!(
        wait_until(Duration::from_secs(30), || gateway
            .log_text()
            .contains("a model server joined device=mac"))
        .is_some()
    );

    // Asked by name, the gpu answers; the pool takes turns between the two.
    let answer = ask(&lab, &laptop, &hub_mesh, "gpu/smollm");
    assert_answered_by(&answer, "gpu/smollm");
    let pooled: Vec<String> = (0..2)
        .map(|_| {
            let answer = ask(&lab, &laptop, &hub_mesh, "models/smollm");
            answer.answered.expect(&answer.text).0
        })
        .collect();
    let mut devices = pooled.clone();
    devices.sort();
    assert_eq!(
        devices,
        ["gpu/smollm", "mac/smollm"],
        "one after another, the pool's two servers take turns: {pooled:?}"
    );
    // The assistant starts on the gpu while it is awake.
    let answer = ask(&lab, &laptop, &hub_mesh, "openclaw");
    assert_answered_by(&answer, "gpu/smollm");

    // Ben is not granted the gpu: not listed, refused by name, and the
    // mesh does not let his phone reach it either.
    let ben = ask(&lab, &phone, &hub_mesh, "gpu/smollm");
    assert!(
        !ben.listed.iter().any(|id| id.starts_with("gpu/")),
        "{}",
        ben.text
    );
    assert!(
        ben.text.contains("refused: 403") && ben.text.contains("may not use gpu/smollm"),
        "{}",
        ben.text
    );
    let output = lab
        .command(&phone, hearth_testkit::llama::python())
        .args([
            "-c",
            "import socket, sys\ntry:\n    socket.create_connection((sys.argv[1], 8080), timeout=3)\n    print('connected')\nexcept OSError as error:\n    print('unreachable', error)\n",
            &gpu_mesh.to_string(),
        ])
        .output()
        .unwrap();
    let direct = String::from_utf8_lossy(&output.stdout);
    assert!(direct.starts_with("unreachable"), "{direct}");

    // The gpu goes to sleep (its agent down): it leaves the lists, and the
    // assistant is answered by its fallback with no wait on the gpu, which
    // the hub wakes; asked by name, it says it is waking; the pool is
    // answered by the mac. Its LAN card listens for the magic packet.
    let mut listener = lab.command(&gpu, hearth_testkit::llama::python());
    listener.args([
        "-u",
        "-c",
        "import socket, sys\nmac = bytes.fromhex(sys.argv[1].replace(':', ''))\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('0.0.0.0', 9))\nprint('listening')\n\
         while True:\n    data, sender = s.recvfrom(2048)\n    if data == b'\\xff' * 6 + mac * 16:\n        print('woken by', sender[0])\n",
        &mac,
    ]);
    let wol = lab.spawn(&gpu, "gpu-wake-on-lan", listener);
    assert!(
        wait_until(Duration::from_secs(10), || wol
            .log_text()
            .contains("listening"))
        .is_some()
    );
    let mut gpu_agent = agents.remove(1);
    gpu_agent.process.terminate(Duration::from_secs(10));
    let gone = Instant::now();
    let left = wait_until(Duration::from_secs(30), || {
        !ask(&lab, &laptop, &hub_mesh, "")
            .listed
            .contains(&"gpu/smollm".to_owned())
    });
    assert!(left.is_some(), "{}", gateway.log_text());
    eprintln!(
        "the gpu left the lists within {:.2} s",
        gone.elapsed().as_secs_f64()
    );
    let answer = ask(&lab, &laptop, &hub_mesh, "openclaw");
    let (answered_by, seconds) = answer.answered.clone().expect(&answer.text);
    assert_eq!(answered_by, "local/tiny", "{}", answer.text);
    assert!(
        seconds < 10.0,
        "answered by the fallback without waiting out the gpu's connection (20 s): {seconds} s"
    );
    let answer = ask(&lab, &laptop, &hub_mesh, "models/smollm");
    assert_answered_by(&answer, "mac/smollm");
    let asleep = ask(&lab, &laptop, &hub_mesh, "gpu/smollm");
    assert!(
        asleep.text.contains("refused: 503")
            && asleep.text.contains("gpu is asleep: the hub is waking it"),
        "{}",
        asleep.text
    );
    let ben = ask(&lab, &phone, &hub_mesh, "gpu/smollm");
    assert!(
        ben.text.contains("refused: 404"),
        "not granted the gpu: not told of it: {}",
        ben.text
    );
    let hub_address = hub.address.to_string();
    assert!(
        wait_until(Duration::from_secs(10), || wol
            .log_text()
            .contains(&format!("woken by {hub_address}")))
        .is_some(),
        "no magic packet from the hub: {}\n{}",
        wol.log_text(),
        gateway.log_text()
    );
    assert_eq!(
        gateway.log_text().matches("waking a model server").count(),
        1,
        "asked three times, woken once"
    );

    // It wakes: listed again, and answering.
    let gpu_agent = lab.restart_agent(gpu_agent, &tokens[1]);
    let back = wait_until(Duration::from_secs(60), || {
        ask(&lab, &laptop, &hub_mesh, "")
            .listed
            .contains(&"gpu/smollm".to_owned())
    });
    assert!(back.is_some(), "{}", gateway.log_text());
    let answer = ask(&lab, &laptop, &hub_mesh, "gpu/smollm");
    assert_answered_by(&answer, "gpu/smollm");
    drop(gpu_agent);
}
