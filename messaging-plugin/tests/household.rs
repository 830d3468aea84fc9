//! The household end to end, between network namespaces (see
//! `common/mod.rs`). Needs root; outside CI it skips without.
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use hearth_testkit::household::{SECOND, assistant_answer, household, lines};
use hearth_testkit::wait_until;
use serde_json::{Value, json};

#[test]
fn a_household_chats_with_each_other_and_the_assistant_over_the_mesh() {
    let Some(mut household) = household() else {
        return;
    };
    let (laptop, phone) = (household.laptop.clone(), household.phone.clone());

    // A room: ada writes, ben reads (history), and live.
    household.cli_ok(&laptop, &["send", "--room", "household", "hello from ada"]);
    let seen = household.cli_ok(&phone, &["tail", "--room", "household", "--count", "0"]);
    assert!(seen.contains("ada: hello from ada"), "{seen}");
    let live = household.spawn_cli(
        &phone,
        "ben-live",
        &["tail", "--room", "household", "--count", "1"],
    );
    std::thread::sleep(SECOND / 2);
    household.cli_ok(&laptop, &["send", "--room", "household", "dinner at seven"]);
    let mut live = live;
    assert!(
        live.wait(10 * SECOND)
            .is_some_and(|status| status.success()),
        "{}",
        live.log_text()
    );
    assert!(
        live.log_text().contains("ada: dinner at seven"),
        "{}",
        live.log_text()
    );

    // A DM between the two, private to them.
    household.cli_ok(
        &laptop,
        &["send", "--dm", "ben", "psst, the cake is in the oven"],
    );
    let dm = household.cli_ok(&phone, &["tail", "--dm", "ada", "--count", "0"]);
    assert!(dm.contains("ada: psst, the cake is in the oven"), "{dm}");
    let other = household.cli(&laptop, &["tail", "--room", "dm:ben,zed", "--count", "0"]);
    assert!(!other.status.success());
    assert!(
        String::from_utf8_lossy(&other.stderr).contains("403"),
        "{}",
        String::from_utf8_lossy(&other.stderr)
    );

    // The assistant in a DM, streaming its answer from llama-server.
    let events = household.spawn_cli(
        &laptop,
        "ada-assistant-events",
        &["tail", "--dm", "assistant", "--count", "2", "--events"],
    );
    std::thread::sleep(SECOND / 2);
    household.cli_ok(
        &laptop,
        &["send", "--dm", "assistant", "hello, who are you?"],
    );
    let answer = assistant_answer(&household, &laptop, &["--dm", "assistant"], 0);
    assert!(!answer.contains("could not answer"), "{answer}");
    let mut events = events;
    assert!(events.wait(30 * SECOND).is_some(), "{}", events.log_text());
    let log = events.log_text();
    let streaming = log
        .lines()
        .filter(|line| {
            line.contains(r#""type":"update""#) && line.contains(r#""status":"streaming""#)
        })
        .count();
    assert!(
        log.contains(r#""type":"typing""#) && log.contains(r#""user":"assistant""#),
        "a typing indicator: {log}"
    );
    assert!(log.contains(r#""status":"done""#), "{log}");
    assert!(
        streaming >= 1,
        "the answer grew in place before it was done: {log}"
    );

    // The assistant called by name in a room.
    household.cli_ok(
        &phone,
        &[
            "send",
            "--room",
            "household",
            "@assistant what is for dinner?",
        ],
    );
    let answer = assistant_answer(&household, &phone, &["--room", "household"], 0);
    assert!(!answer.contains("could not answer"), "{answer}");

    // A message for a device that is away arrives when it comes back.
    let first = household.spawn_cli(
        &phone,
        "ben-missed-1",
        &["tail", "--room", "garden", "--missed", "--count", "1"],
    );
    std::thread::sleep(SECOND / 2);
    household.cli_ok(&laptop, &["send", "--room", "garden", "the roses are out"]);
    let mut first = first;
    assert!(
        first
            .wait(10 * SECOND)
            .is_some_and(|status| status.success()),
        "{}",
        first.log_text()
    );
    std::thread::sleep(SECOND / 2); // the phone is away now
    household.cli_ok(&laptop, &["send", "--room", "garden", "and the tomatoes"]);
    household.cli_ok(&laptop, &["send", "--room", "garden", "water them please"]);
    let back = household.cli_ok(
        &phone,
        &["tail", "--room", "garden", "--missed", "--count", "2"],
    );
    assert_eq!(
        lines(&back)
            .iter()
            .map(|line| line.split_once("] ").unwrap().1)
            .collect::<Vec<_>>(),
        ["ada: and the tomatoes", "ada: water them please"],
        "exactly what was missed"
    );

    // `ask` prints the answer as it streams, and it is the answer the room keeps.
    let streamed = household.cli_ok(
        &phone,
        &["ask", "--room", "garden", "when do we plant beans?"],
    );
    let kept = household.history(&laptop, "garden", 2);
    let kept_answer = kept
        .lines()
        .find_map(|line| line.split_once("] assistant: ").map(|(_, body)| body))
        .unwrap_or_else(|| panic!("no answer in the garden: {kept}"));
    assert!(!kept_answer.trim().is_empty(), "{kept}");
    assert_eq!(
        streamed.trim_end(),
        kept_answer.trim_end(),
        "what `ask` printed is the final answer"
    );
    assert!(
        kept.contains("ben: @assistant when do we plant beans?"),
        "{kept}"
    );

    // A question asked while the gateway is down (restarting, or its
    // container still starting: the fresh-machine CI run asked 70 ms before
    // it listened) waits for it instead of failing, and is answered.
    household.stop_gateway();
    let mut waiting = household.spawn_cli(
        &phone,
        "ben-asks-early",
        &["ask", "--room", "garden", "is the gateway up?"],
    );
    wait_until(20 * SECOND, || {
        household
            .messaging_log()
            .contains("the question waits for it")
    })
    .unwrap_or_else(|| panic!("the question did not wait: {}", household.messaging_log()));
    household.start_gateway();
    assert!(
        waiting
            .wait(60 * SECOND)
            .is_some_and(|status| status.success()),
        "ask failed: {}\n{}",
        waiting.log_text(),
        household.messaging_log()
    );
    assert!(
        !waiting.log_text().contains("could not answer") && !waiting.log_text().trim().is_empty(),
        "{}",
        waiting.log_text()
    );

    // A gateway failure reads as a sentence in the chat, and `ask` fails with it.
    household.llama.as_mut().unwrap().kill();
    household.cli_ok(&laptop, &["send", "--dm", "assistant", "are you there?"]);
    let failure = assistant_answer(&household, &laptop, &["--dm", "assistant"], 1);
    assert!(
        failure.contains("The assistant could not answer: no model is answering right now."),
        "{failure}"
    );
    let refused = household.cli(&phone, &["ask", "are you there?"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("could not answer"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // A restart keeps everything.
    household
        .messaging
        .as_mut()
        .unwrap()
        .terminate(10 * SECOND)
        .expect("SIGTERM stops the service");
    household.start_messaging();
    let after = household.history(&phone, "household", 50);
    assert!(
        after.contains("ada: hello from ada")
            && after.contains("ben: @assistant what is for dinner?"),
        "{after}"
    );

    // A crash while an answer is being written (here: while it waits for
    // the gateway) leaves the reply interrupted after the restart, never
    // `streaming` for ever; the member can ask again.
    household.stop_gateway();
    household.cli_ok(&laptop, &["send", "--dm", "assistant", "still there?"]);
    wait_until(20 * SECOND, || {
        household
            .messaging_log()
            .matches("the question waits for it")
            .count()
            >= 2
    })
    .unwrap_or_else(|| panic!("the question did not wait: {}", household.messaging_log()));
    household.messaging.as_mut().unwrap().kill();
    household.start_messaging();
    assert!(
        household.messaging_log().contains("marked interrupted"),
        "{}",
        household.messaging_log()
    );
    let dm = household.cli_ok(
        &laptop,
        &[
            "tail",
            "--count",
            "0",
            "--history",
            "5",
            "--dm",
            "assistant",
        ],
    );
    let last = dm.lines().last().unwrap_or_default();
    assert!(
        last.contains(
            "assistant: (interrupted: the service stopped before the answer ended; ask again)"
        ),
        "{dm}"
    );
}

#[test]
fn callers_outside_the_mesh_or_the_policy_are_refused() {
    let Some(mut household) = household() else {
        return;
    };
    let (guest, stranger, laptop) = (
        household.guest.clone().unwrap(),
        household.stranger.clone().unwrap(),
        household.laptop.clone(),
    );

    // The guest's node is in the mesh, but the policy lets it reach only
    // port 22 of the hub: its packets to the messaging port are dropped.
    let started = Instant::now();
    let refused = household.cli(&guest, &["send", "--room", "household", "let me in"]);
    assert!(!refused.status.success(), "the guest got in");
    assert!(started.elapsed() < 20 * SECOND);

    // A second instance listening on every address: a host outside the mesh
    // reaches it over the LAN and is told why it may not chat.
    let dir = household.lab.dir.path().to_owned();
    let config = dir.join("open.json");
    std::fs::write(
        &config,
        json!({"listen": "0.0.0.0", "port": 18791, "agentSocket": household.hub_agent.state.join("agent.sock"),
               "dataDir": dir.join("open-data")})
        .to_string(),
    )
    .unwrap();
    let mut command = household
        .lab
        .command(&household.hub, env!("CARGO_BIN_EXE_hearth-messaging"));
    command.args(["serve", "--config"]).arg(&config);
    let hub = household.hub.clone();
    let _open = household.lab.spawn(&hub, "messaging-open", command);
    let lan_url = format!("http://{}:18791", household.hub.address);
    let mesh_url = format!("http://{}:18791", household.hub_mesh);
    let mut answer = Value::Null;
    let up = wait_until(10 * SECOND, || {
        let output = household
            .lab
            .command(&stranger, "curl")
            .args(["-s", &format!("{lan_url}/api/me")])
            .output()
            .unwrap();
        answer = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        !answer.is_null()
    });
    assert!(up.is_some());
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("is not a device of this household's network"),
        "{answer}"
    );
    // The laptop over the LAN is a stranger too: identity is the tunnel address.
    let output = household
        .lab
        .command(&laptop, "curl")
        .args(["-s", &format!("{lan_url}/api/me")])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("is not a device"),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    // Over the mesh it is ada.
    let output = household
        .lab
        .command(&laptop, "curl")
        .args(["-s", &format!("{mesh_url}/api/me")])
        .output()
        .unwrap();
    let me: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        (me["user"].as_str(), me["node"].as_str()),
        (Some("ada"), Some("laptop"))
    );
}

#[test]
fn the_household_demo_answers_in_english_with_a_real_model() {
    if !hearth_testkit::is_root() {
        hearth_testkit::lab::skip::<()>("the household demo needs root (network namespaces)");
        return;
    }
    let output = std::process::Command::new(hearth_testkit::lab::binary("hearth-household"))
        .args(["--once", "What should we cook tonight?"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{shown}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer = shown
        .split("assistant: ")
        .nth(1)
        .and_then(|rest| rest.split("(answered by").next())
        .unwrap_or_else(|| panic!("no answer in: {shown}"));
    assert!(
        hearth_testkit::household::looks_english(answer),
        "not an English answer: {answer}"
    );
    assert!(
        shown.contains("answered by SmolLM2-135M-Instruct"),
        "{shown}"
    );
}
