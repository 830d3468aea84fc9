//! The transparency log on loopback: the operator keeps a log
//! (`hearth-pcc log init`, `add-keys`, `add-images`), the config server
//! serves its checkpoint and proofs (`hearth-pcc-auth --log`), and a
//! device (`hearth-pcc chat --config`) whose policy pins the log's key
//! uses only what the log proves. With everything logged the question
//! goes device -> relay -> OHTTP gateway -> router -> compute node (dev
//! evidence) -> llama-server and is answered; a config server publishing
//! a key the log does not hold, a policy whose image the log does not
//! hold, or a log that forked from the one the device saw before, and the
//! device sends nothing: the relay forwards no request. `hearth-pcc log
//! audit` checks every entry and catches the fork too. Needs the cached
//! llama-server; outside CI the test skips without it.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use hearth_testkit::binary;
use hearth_testkit::compute::{IMAGE, LoopbackRouter, dev_policy};
use hearth_testkit::llama::LlamaServer;
use hearth_testkit::oblivious::{LoopbackServer, seeds_json};

const HOUR: Duration = Duration::from_secs(3600);
const ORIGIN: &str = "hearth.test/private-compute-log";

fn pcc(args: &[&str]) -> Output {
    Command::new(binary("hearth-pcc"))
        .args(args)
        .output()
        .unwrap()
}

fn pcc_ok(args: &[&str]) -> String {
    let output = pcc(args);
    assert!(
        output.status.success(),
        "hearth-pcc {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// How many requests the relay at `url` has forwarded.
fn relayed(url: &str) -> u64 {
    let health: serde_json::Value = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async { reqwest::get(format!("{url}/health")).await?.json().await })
        .unwrap();
    health["relayed"].as_u64().unwrap()
}

/// `policy_file` with the log named in it, written to `to`.
fn with_log(policy_file: &Path, log_key: &str, to: PathBuf) -> PathBuf {
    let mut policy: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(policy_file).unwrap()).unwrap();
    policy["transparency"] = serde_json::json!({"origin": ORIGIN, "log_key": log_key});
    std::fs::write(&to, policy.to_string()).unwrap();
    to
}

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
}

#[test]
fn a_device_uses_only_what_the_log_proves_and_catches_a_forked_log() {
    let Some(llama) = LlamaServer::start_unix() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let router = LoopbackRouter::start(&["--heartbeat-seconds", "1"]);
    let mut node = router.start_node("node-a", &llama.base_url);

    let now = hearth_runtime::clock::since_epoch();
    // The gateway knows two keys; the operator logs only the first.
    let both = seeds_json(&[(1, now - HOUR, now + HOUR), (2, now - HOUR, now + HOUR)]);
    let first = seeds_json(&[(1, now - HOUR, now + HOUR)]);
    let second = seeds_json(&[(2, now - HOUR, now + HOUR)]);
    write_private(&path("seeds-1.json"), &first);
    let (gateway, relay) = LoopbackServer::gateway_and_relay(&router.url, &both, &[]);

    // The log: the first key and the policy's image.
    let log = path("log");
    let log_key = pcc_ok(&[
        "log",
        "init",
        "--dir",
        log.to_str().unwrap(),
        "--origin",
        ORIGIN,
    ])
    .trim()
    .to_owned();
    let plain_policy = dev_policy(dir.path(), "dev-policy.json", IMAGE);
    let policy = with_log(&plain_policy, &log_key, path("policy.json"));
    pcc_ok(&[
        "log",
        "add-keys",
        "--dir",
        log.to_str().unwrap(),
        "--seeds-file",
        path("seeds-1.json").to_str().unwrap(),
    ]);
    // A copy of the log as it is now, to fork later.
    let fork = path("fork");
    Command::new("cp")
        .arg("-a")
        .arg(&log)
        .arg(&fork)
        .status()
        .unwrap();
    pcc_ok(&[
        "log",
        "add-images",
        "--dir",
        log.to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
    ]);

    let relay_url = format!("{}/", relay.url);
    let auth_with = |seeds: &str, log: &Path, policy: &Path| {
        LoopbackServer::start(
            "hearth-pcc-auth",
            &[
                "--relay-url",
                &relay_url,
                "--gateway-url",
                &gateway.url,
                "--router-url",
                &router.url,
                "--policy",
                policy.to_str().unwrap(),
                "--log",
                log.to_str().unwrap(),
            ],
            seeds,
        )
    };
    let auth = |seeds: &str, log: &Path| auth_with(seeds, log, &policy);
    let state = path("device-checkpoint");
    let chat = |config: &str, policy: &Path| {
        pcc(&[
            "chat",
            "--config",
            config,
            "--policy",
            policy.to_str().unwrap(),
            "--model",
            "tiny",
            "--max-tokens",
            "4",
            "--log-state",
            state.to_str().unwrap(),
            "What is for dinner?",
        ])
    };

    // Everything logged: answered, through the relay.
    let honest = auth(&first, &log);
    let answered = chat(&honest.url, &policy);
    assert!(
        answered.status.success(),
        "{}\nconfig server:\n{}",
        String::from_utf8_lossy(&answered.stderr),
        honest.log_text()
    );
    let sent = relayed(&relay.url);
    assert!(
        sent >= 2,
        "the node list and the question went through the relay: {sent}"
    );
    assert!(
        std::fs::read_to_string(&state)
            .unwrap()
            .starts_with(&format!("{ORIGIN}\n2\n")),
        "the device keeps the checkpoint it accepted"
    );
    // The auditor keeps the checkpoint of its last good audit.
    let auditor_state = path("auditor-checkpoint");
    let audit = |config: &str| {
        pcc(&[
            "log",
            "audit",
            "--config",
            config,
            "--log-key",
            &log_key,
            "--origin",
            ORIGIN,
            "--state",
            auditor_state.to_str().unwrap(),
        ])
    };
    let audited = audit(&honest.url);
    assert!(audited.status.success(), "{audited:?}");
    let said = String::from_utf8_lossy(&audited.stdout);
    assert!(said.contains("every entry checked"), "{said}");
    assert!(said.contains("no earlier checkpoint kept"), "{said}");
    assert!(
        said.contains(r#""type":"ohttp-key""#) && said.contains(r#""type":"image""#),
        "{said}"
    );

    let refused = |output: &Output, why: &str| {
        let said = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(!output.status.success(), "sent anyway: {said}");
        assert!(said.contains(why), "{said}");
        assert_eq!(
            relayed(&relay.url),
            sent,
            "nothing went through the relay ({why})"
        );
    };

    // A config server publishing the second key, which the log does not hold.
    let unlogged_key = auth(&second, &log);
    refused(
        &chat(&unlogged_key.url, &policy),
        "no OHTTP key active now is in the transparency log",
    );

    // A policy whose image the log does not hold (another image's).
    let other_policy = with_log(
        &dev_policy(dir.path(), "other-dev.json", "another image"),
        &log_key,
        path("other-policy.json"),
    );
    let other_auth = auth_with(&first, &log, &other_policy);
    refused(
        &chat(&other_auth.url, &other_policy),
        "no image this policy trusts is in the transparency log",
    );

    // A fork: the copy made before the image was logged grows another way
    // (another image first, then the real one), signed with the same key.
    // It holds everything this device needs, but not the history it saw.
    pcc_ok(&[
        "log",
        "add-images",
        "--dir",
        fork.to_str().unwrap(),
        "--policy",
        other_policy.to_str().unwrap(),
    ]);
    pcc_ok(&[
        "log",
        "add-images",
        "--dir",
        fork.to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
    ]);
    let forked = auth(&first, &fork);
    refused(&chat(&forked.url, &policy), "forked");
    // A device that never saw the other branch would follow this one; the
    // auditor who did catches it.
    let audited = audit(&forked.url);
    assert!(!audited.status.success());
    assert!(String::from_utf8_lossy(&audited.stdout).contains("forked"));

    // The honest log, grown by a key, is followed from what was kept.
    write_private(&path("seeds-2.json"), &second);
    pcc_ok(&[
        "log",
        "add-keys",
        "--dir",
        log.to_str().unwrap(),
        "--seeds-file",
        path("seeds-2.json").to_str().unwrap(),
    ]);
    let answered = chat(&honest.url, &policy);
    assert!(
        answered.status.success(),
        "{}",
        String::from_utf8_lossy(&answered.stderr)
    );
    assert!(
        std::fs::read_to_string(&state)
            .unwrap()
            .starts_with(&format!("{ORIGIN}\n3\n"))
    );
    // The auditor follows it too, from the checkpoint it kept before the
    // fork was shown to it.
    let audited = audit(&honest.url);
    assert!(audited.status.success(), "{audited:?}");
    let said = String::from_utf8_lossy(&audited.stdout);
    assert!(
        said.contains("at 3 entries") && said.contains("consistent with the checkpoint kept"),
        "{said}"
    );
    let _ = node.kill();
    let _ = node.wait();
}
