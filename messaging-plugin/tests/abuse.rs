//! Attacks on messaging from the adversarial review, performed in the
//! household between network namespaces (real agents, WireGuard, gateway and
//! llama-server) and shown to fail: a web page reading and posting as a
//! member (cross-site WebSocket and API, DNS rebinding), a local user on the
//! hub passing as the hub's user, one member flooding rooms, messages and
//! the assistant, and an old connection keeping a deleted device's identity.
//! Needs root; outside CI it skips without.
#![allow(clippy::unwrap_used)]

use hearth_testkit::Host;
use hearth_testkit::household::{Household, Options};
use hearth_testkit::household::{SECOND, assistant_answer};
use hearth_testkit::wait_until;
use serde_json::{Value, json};

/// `curl` from `host` with `args`; the HTTP status and the body.
fn curl(household: &Household, host: &Host, args: &[&str]) -> (u16, String) {
    let output = household
        .lab
        .command(host, "curl")
        .args(["-s", "-m", "5", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.trim().parse().unwrap_or(0), body.to_owned())
}

fn post_json(
    household: &Household,
    host: &Host,
    path: &str,
    body: &Value,
    extra: &[&str],
) -> (u16, String) {
    let url = format!("{}{path}", household.url());
    let body = body.to_string();
    let mut args = vec![
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "--data",
        &body,
    ];
    args.extend_from_slice(extra);
    args.push(&url);
    curl(household, host, &args)
}

#[test]
fn web_pages_local_users_and_floods_do_not_get_through() {
    let Some(household) = Household::start(Options::default()) else {
        return;
    };
    let (laptop, phone, hub) = (
        household.laptop.clone(),
        household.phone.clone(),
        household.hub.clone(),
    );
    household.cli_ok(&laptop, &["send", "--dm", "ben", "the code is 4711"]);

    // A WebSocket handshake from a page of another site, on ada's laptop:
    // before the fix it got 101 and replayed ada's DMs.
    let ws = format!("{}/ws?since=0", household.url());
    let handshake = |origin: &str| {
        curl(
            &household,
            &laptop,
            &[
                "-o",
                "/dev/null",
                "-H",
                "Connection: Upgrade",
                "-H",
                "Upgrade: websocket",
                "-H",
                "Sec-WebSocket-Version: 13",
                "-H",
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                "-H",
                &format!("Origin: {origin}"),
                &ws,
            ],
        )
        .0
    };
    assert_eq!(handshake("https://evil.example"), 403);
    assert_eq!(handshake("null"), 403);
    // (The service's own origin is upgraded: curl then waits for frames and
    // times out, which is a status of 101.)
    assert_eq!(handshake(&household.url()), 101);

    // DNS rebinding: the attacker's name, resolving to the hub.
    let (status, body) = curl(
        &household,
        &laptop,
        &[
            "-H",
            "Host: rebind.evil.example:18790",
            &format!("{}/api/me", household.url()),
        ],
    );
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains("ada"), "{body}");

    // A cross-site POST (what a form on any page can send) does not post as ada.
    let (status, _) = post_json(
        &household,
        &laptop,
        "/api/rooms/household/messages",
        &json!({"body": "sent by a web page"}),
        &["-H", "Origin: https://evil.example"],
    );
    assert_eq!(status, 403);
    let history = household.history(&phone, "household", 50);
    assert!(!history.contains("sent by a web page"), "{history}");

    // A local user on the hub connecting to the hub's own mesh address:
    // before the fix it was `home`, and read home's DMs.
    let output = household
        .lab
        .command(&hub, "runuser")
        .args(["-u", "nobody", "--", "curl", "-s", "-m", "5"])
        .arg(format!("{}/api/me", household.url()))
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&output.stdout);
    assert!(answer.contains("callers on the hub itself"), "{answer}");
    assert!(!answer.contains("\"user\""), "{answer}");

    // One member creating rooms without end: twenty, then no more.
    let mut statuses = Vec::new();
    for number in 0..22 {
        let (status, _) = post_json(
            &household,
            &phone,
            "/api/rooms",
            &json!({"name": format!("spam-{number}")}),
            &[],
        );
        statuses.push(status);
    }
    assert_eq!(
        statuses.iter().filter(|status| **status == 201).count(),
        20,
        "{statuses:?}"
    );
    assert_eq!(statuses[20..], [429, 429]);
    // Posting into a new room name creates it, and counts the same.
    let (status, _) = post_json(
        &household,
        &phone,
        "/api/rooms/spam-99/messages",
        &json!({"body": "a room by posting"}),
        &[],
    );
    assert_eq!(status, 429);

    // Rooms go away by their creator (or an admin), not by others.
    let delete = |host: &Host, room: &str| {
        curl(
            &household,
            host,
            &[
                "-o",
                "/dev/null",
                "-X",
                "DELETE",
                &format!("{}/api/rooms/{room}", household.url()),
            ],
        )
        .0
    };
    assert_eq!(delete(&laptop, "spam-0"), 403, "ada did not make it");
    assert_eq!(delete(&phone, "spam-0"), 204);
    assert_eq!(
        delete(&phone, "household"),
        403,
        "the hub's rooms need an admin"
    );
    assert_eq!(delete(&phone, "dm:ada,ben"), 403);

    // Another's conversation is refused on every assistant endpoint, and
    // before a request's fields are read (a wrong field answered 422 there).
    let others = "dm%3Aben%2Ccy";
    for path in [
        format!("/api/assistant/reminders?room={others}"),
        format!("/api/assistant/memory?room={others}"),
        format!("/api/assistant/documents?room={others}"),
        format!("/api/assistant/documents?room={others}&wrong=1"),
        format!("/api/rooms/{others}/messages?wrong=1"),
    ] {
        let (status, body) = curl(
            &household,
            &laptop,
            &[&format!("{}{path}", household.url())],
        );
        assert_eq!(status, 403, "{path}: {body}");
    }
    for (path, body) in [
        (
            format!("/api/rooms/{others}/messages"),
            json!({"wrong": "field"}),
        ),
        (
            format!("/api/rooms/{others}/read"),
            json!({"id": "not a number"}),
        ),
    ] {
        let (status, answer) = post_json(&household, &laptop, &path, &body, &[]);
        assert_eq!(status, 403, "{path}: {answer}");
    }
    let (status, body) = curl(
        &household,
        &laptop,
        &[
            "-X",
            "DELETE",
            &format!(
                "{}/api/assistant/reminders/1?room={others}",
                household.url()
            ),
        ],
    );
    assert_eq!(status, 403, "{body}");
    let (_, rooms) = curl(
        &household,
        &laptop,
        &[&format!("{}/api/rooms", household.url())],
    );
    assert!(!rooms.contains("\"spam-0\""), "{rooms}");

    // A burst of large messages: the first twenty, then the rest refused.
    let big = "x".repeat(7_000);
    let mut posted = 0;
    let mut refused = 0;
    for _ in 0..40 {
        match post_json(
            &household,
            &laptop,
            "/api/rooms/garden/messages",
            &json!({"body": big}),
            &[],
        )
        .0
        {
            201 => posted += 1,
            429 => refused += 1,
            other => panic!("status {other}"),
        }
    }
    assert!(
        (20..=25).contains(&posted) && posted + refused == 40,
        "{posted} posted, {refused} refused"
    );
}

#[test]
fn one_member_cannot_hold_the_assistant_and_a_deleted_device_is_let_go() {
    let options = Options {
        gateway_streams: 4,
        ..Options::default()
    };
    let Some(mut household) = Household::start(options) else {
        return;
    };
    let (laptop, phone, stranger) = (
        household.laptop.clone(),
        household.phone.clone(),
        household.stranger.clone().unwrap(),
    );

    // ada asks a dozen questions at once; then ben asks one.
    std::thread::scope(|scope| {
        for number in 0..12 {
            let (household, laptop) = (&household, &laptop);
            scope.spawn(move || {
                household.cli_ok(
                    laptop,
                    &[
                        "send",
                        "--room",
                        "garden",
                        &format!("@assistant tell me fact number {number}"),
                    ],
                );
            });
        }
    });
    household.cli_ok(
        &phone,
        &["send", "--dm", "assistant", "what should we cook?"],
    );
    let answer = assistant_answer(&household, &phone, &["--dm", "assistant"], 0);
    assert!(
        !answer.contains("could not answer"),
        "ben was served: {answer}"
    );
    let garden = household.history(&laptop, "garden", 50);
    assert!(
        garden.contains("earlier questions of yours; ask again once they are answered"),
        "ada is told to wait: {garden}"
    );

    // ada's laptop holds a live connection; the admin deletes the laptop.
    let laptop_address = household.agents[0].mesh_ipv4().unwrap();
    let mut live = household.spawn_cli(
        &laptop,
        "ada-live",
        &["tail", "--room", "household", "--count", "1000"],
    );
    std::thread::sleep(SECOND);
    assert!(live.running());
    let id = household.coordinator.node_id("laptop").unwrap();
    household
        .coordinator
        .cli_ok(&["nodes", "delete", &id.to_string()]);
    let closed = wait_until(3 * SECOND, || {
        household
            .messaging_log()
            .contains("the device behind a connection changed; closing it")
    });
    assert!(
        closed.is_some(),
        "the deleted device's connection was let go: {}",
        household.messaging_log()
    );

    // A new device registered right after gets a different address, and is itself.
    // (ben's second device: a member the policy lets reach messaging.)
    let dir = household.lab.dir.path().to_owned();
    let token =
        household
            .coordinator
            .token_file(&dir, "ben-2.token", &["--user", "ben", "--pre-approved"]);
    let agent = household
        .lab
        .start_agent(&stranger, &token, &["--backend", "userspace"]);
    let address = agent.wait_mesh_ipv4(15 * SECOND);
    assert_ne!(address, laptop_address, "a freed address rests");
    let mut me = Value::Null;
    wait_until(10 * SECOND, || {
        let (status, body) = curl(
            &household,
            &stranger,
            &[&format!("{}/api/me", household.url())],
        );
        me = serde_json::from_str(&body).unwrap_or(Value::Null);
        status == 200
    });
    assert_eq!(
        (me["user"].as_str(), me["node"].as_str()),
        (Some("ben"), Some("stranger")),
        "{me}"
    );
    live.kill();
}
