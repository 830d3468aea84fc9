//! Attacks on the gateway from the adversarial review, each performed as
//! described and shown to fail: a web page posting to the OpenAI API across
//! sites or through a rebinding name, a local user who is not the gateway's,
//! the OpenAI API used to get past the stream limit, and a backend whose
//! error quotes the request (persona included). The model backends are the
//! test kit's scripted stand-ins (an Ollama stand-in that echoes slowly, a
//! server that quotes its request in errors).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use hearth_e2ee::{KeyPair, ReplyEvent};
use hearth_testkit::gateway_process::{GatewayProcess, ask, config};
use hearth_testkit::standins::{Script, ScriptedServer, ollama_stand_in};
use serde_json::{Value, json};

fn completion_body() -> String {
    json!({"messages": [{"role": "user", "content": "read me the family's secrets"}]}).to_string()
}

#[tokio::test]
async fn a_web_page_cannot_use_the_gateway_across_sites() {
    let backend = ollama_stand_in(&["tiny"], Duration::ZERO);
    let gateway = GatewayProcess::start(config(&[("home", "ollama", &backend.url())]));
    let anonymous = reqwest::Client::new();
    let url = format!("{}/v1/chat/completions", gateway.url);

    // The classic: a form-like `text/plain` POST from another site, which
    // needs no CORS preflight. Before the fix a loopback gateway answered it.
    let cross_site = anonymous
        .post(&url)
        .header("content-type", "text/plain")
        .header("origin", "https://evil.example")
        .body(completion_body())
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403);
    assert_eq!(
        cross_site.json::<Value>().await.unwrap()["error"]["code"],
        "cross_site"
    );

    // A page that rebinds its own name to this machine: same origin to the
    // browser, but the Host is the attacker's name.
    let rebound = anonymous
        .post(&url)
        .header("host", format!("rebind.evil.example:{}", gateway.port))
        .header("content-type", "application/json")
        .body(completion_body())
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 403);

    // Even with the token, a request from another origin is refused, and a
    // body that is not declared JSON is never taken.
    let with_token = gateway
        .http()
        .post(&url)
        .header("content-type", "application/json")
        .header("origin", "http://127.0.0.1:9")
        .body(completion_body())
        .send()
        .await
        .unwrap();
    assert_eq!(with_token.status(), 403);
    let plain = gateway
        .http()
        .post(&url)
        .header("content-type", "text/plain")
        .body(completion_body())
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 415);
    assert_eq!(backend.count("/api/chat"), 0, "nothing reached the model");

    // The gateway's own page origin and names still work.
    let own = gateway
        .http()
        .post(&url)
        .header("content-type", "application/json")
        .header("origin", &gateway.url)
        .body(completion_body())
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    for path in ["/nowhere", "/v1/chat/completions"] {
        let answer = gateway
            .http()
            .get(format!("{}{path}", gateway.url))
            .send()
            .await
            .unwrap();
        assert!(matches!(answer.status().as_u16(), 404 | 405), "{path}");
        let body: Value = answer.json().await.unwrap();
        assert!(body["error"]["code"].is_string(), "{path}: {body}");
    }
}

#[tokio::test]
async fn a_local_user_without_the_token_is_refused() {
    if !hearth_testkit::is_root() || !hearth_testkit::has_tool("runuser") {
        hearth_testkit::skip::<()>("needs root and runuser to act as another local user");
        return;
    }
    let backend = ollama_stand_in(&["tiny"], Duration::ZERO);
    let gateway = GatewayProcess::start(config(&[("home", "ollama", &backend.url())]));
    // `nobody` runs curl against the loopback gateway, as in the review.
    let status = hearth_testkit::http_status_as(
        std::process::Command::new("runuser"),
        "nobody",
        &format!("{}/v1/models", gateway.url),
    );
    assert_eq!(status, "401");
    // Nor can it read the token.
    let read = std::process::Command::new("runuser")
        .args(["-u", "nobody", "--", "cat"])
        .arg(gateway.data_dir.join("gateway.token"))
        .output()
        .unwrap();
    assert!(!read.status.success());
    // The gateway's own user (here root) holds the token and is served.
    let models = gateway
        .http()
        .get(format!("{}/v1/models", gateway.url))
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 200);
}

#[tokio::test]
async fn the_openai_api_takes_the_same_stream_slots() {
    // Each token takes 100 ms: a reply streams for about a second.
    let backend = ollama_stand_in(&["tiny"], Duration::from_millis(100));
    let mut settings = config(&[("home", "ollama", &backend.url())]);
    settings["hearth"]["limits"] = json!({"maxConcurrentStreams": 4});
    let gateway = GatewayProcess::start(settings);
    let body = json!({"stream": true, "messages": [{"role": "user", "content": "one two three four five six seven eight nine ten"}]});
    let mut requests = Vec::new();
    for _ in 0..12 {
        let http = gateway.http();
        let url = format!("{}/v1/chat/completions", gateway.url);
        let body = body.clone();
        requests.push(tokio::spawn(async move {
            let response = http.post(url).json(&body).send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            (status, text)
        }));
    }
    let mut statuses = Vec::new();
    for request in requests {
        let (status, text) = request.await.unwrap();
        if status != 200 {
            let body: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(body["error"]["code"], "busy", "{text}");
        }
        statuses.push(status);
    }
    let served = statuses.iter().filter(|status| **status == 200).count();
    assert_eq!(served, 4, "{statuses:?}");
    assert_eq!(
        backend.count("/api/chat"),
        4,
        "only four reached the backend"
    );
}

#[tokio::test]
async fn a_backends_error_text_never_reaches_the_client() {
    let persona_canary = format!(
        "PERSONA-{}",
        hearth_e2ee::envelope::b64(&rand::random::<[u8; 9]>())
    );
    let workspace = tempfile::tempdir().unwrap();
    std::fs::write(
        workspace.path().join("SOUL.md"),
        format!("You are the household's assistant. {persona_canary}\n"),
    )
    .unwrap();
    // The only backend refuses every request, quoting it (persona included).
    let quoting = ScriptedServer::start(|request| {
        let body = String::from_utf8_lossy(&request.body).replace('"', "'");
        Script::json(
            500,
            &json!({"error": {"message": format!("cannot answer: {body}")}}),
        )
    });
    let mut settings = config(&[(
        "quoting",
        "openai-completions",
        &format!("{}/v1", quoting.url()),
    )]);
    settings["agents"]["defaults"]["workspace"] = json!(workspace.path());
    let gateway = GatewayProcess::start(settings);
    let events = ask(&gateway.client(KeyPair::generate()), "c", "hello").await;
    let Some(ReplyEvent::Error { code, message }) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(code, "no_model");
    assert!(
        !message.contains(&persona_canary) && !message.contains("cannot answer"),
        "{message}"
    );
    let openai = gateway
        .http()
        .post(format!("{}/v1/chat/completions", gateway.url))
        .json(&json!({"messages": [{"role": "user", "content": "hello"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(openai.status(), 503);
    let text = openai.text().await.unwrap();
    assert!(
        !text.contains(&persona_canary) && !text.contains("cannot answer"),
        "{text}"
    );
    assert!(
        quoting.count("/v1/chat/completions") >= 2,
        "the backend was asked"
    );

    // Unauthenticated health says whether, not where.
    let health: Value = reqwest::get(format!("{}/health", gateway.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!health.to_string().contains(&quoting.url()), "{health}");
}

#[tokio::test]
async fn the_openai_api_answers_only_for_models_it_serves() {
    let backend = ollama_stand_in(&["tiny"], Duration::ZERO);
    let gateway = GatewayProcess::start(config(&[("home", "ollama", &backend.url())]));
    let ask_model = |model: &'static str| {
        let http = gateway.http();
        let url = format!("{}/v1/chat/completions", gateway.url);
        async move {
            http.post(url)
                .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
                .send()
                .await
                .unwrap()
        }
    };
    let unknown = ask_model("gpt-4o").await;
    assert_eq!(unknown.status(), 404);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_not_found");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("home/tiny")
    );
    for known in ["home/tiny", "tiny"] {
        assert_eq!(ask_model(known).await.status(), 200, "{known}");
    }
}

/// `hearth-gateway config validate FILE` in a new process: its exit, and
/// what it printed; fails if it has not ended within 30 s.
fn validate(file: &std::path::Path) -> (bool, String) {
    let mut child = std::process::Command::new(hearth_testkit::binary("hearth-gateway"))
        .args(["config", "validate"])
        .arg(file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let ended = hearth_testkit::wait_until(Duration::from_secs(30), || {
        child.try_wait().unwrap().is_some()
    });
    if ended.is_none() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("config validate of {} did not end", file.display());
    }
    let output = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), said)
}

/// Issue 41's review: `config validate` followed an `$include` to a FIFO
/// (and waited forever) or to `/dev/zero` (and ran out of memory), and its
/// errors quoted an included file's text. Only regular files beneath the
/// configuration's folder are read, never through a link; a mistake is
/// placed by line and column, never quoted.
#[test]
fn config_validate_reads_only_regular_files_and_quotes_none() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path();
    let fifo = folder.join("fifo.json5");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    std::os::unix::fs::symlink("/dev/zero", folder.join("zero.json5")).unwrap();
    std::fs::write(folder.join("secrets.env"), "API_KEY=CANARY-SECRET-TEXT\n").unwrap();
    for (include, why) in [
        ("./fifo.json5", "not a regular file"),
        ("./zero.json5", "symbolic link"),
        ("./secrets.env", "not JSON5 (line 1"),
    ] {
        let file = folder.join(format!("openclaw-{}.json5", why.len()));
        std::fs::write(&file, format!("{{ agents: {{ $include: '{include}' }} }}")).unwrap();
        let (valid, said) = validate(&file);
        assert!(!valid, "{include}: {said}");
        assert!(said.contains(why), "{include}: {said}");
        assert!(
            !said.contains("CANARY-SECRET-TEXT"),
            "{include} was quoted: {said}"
        );
    }
    // The configuration itself, a FIFO: refused too.
    let (valid, said) = validate(&fifo);
    assert!(!valid && said.contains("not a regular file"), "{said}");
}
