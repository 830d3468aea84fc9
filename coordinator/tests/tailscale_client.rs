//! The official Tailscale client (tailscaled 1.96.4, userspace networking,
//! logs off) against the coordinator in a network namespace: it fetches
//! `/key`, completes the ts2021 Noise handshake, and speaks HTTP/2 inside
//! the session up to its registration request, which this coordinator does
//! not serve yet. Needs root (namespaces) and the cached client
//! (scripts/tailscale-client.sh); outside CI the test skips without them.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use hearth_testkit::llama::tailscale_client;
use hearth_testkit::{Lab, wait_until};

#[test]
fn the_official_client_completes_the_ts2021_handshake_and_speaks_http2_inside() {
    let Some(mut lab) = Lab::new() else { return };
    let Some(client) = tailscale_client() else {
        return;
    };
    let hub = lab.host("hub");
    let phone = lab.host("phone");
    let coordinator = lab.start_coordinator(&hub);
    let certificate = coordinator.state.join("tls/server.crt");
    let state = lab.dir.path().join("phone-tailscale");
    std::fs::create_dir_all(&state).unwrap();
    let socket = state.join("tailscaled.sock");

    let mut daemon = lab.command(&phone, client.join("tailscaled"));
    daemon
        .args([
            "--tun=userspace-networking",
            "--no-logs-no-support",
            "--port",
            "0",
        ])
        .arg("--statedir")
        .arg(&state)
        .arg("--socket")
        .arg(&socket)
        .env("TS_NO_LOGS_NO_SUPPORT", "1")
        .env("SSL_CERT_FILE", &certificate);
    let mut daemon = lab.spawn(&phone, "tailscaled", daemon);
    wait_until(Duration::from_secs(20), || socket.exists()).expect("tailscaled started");

    let login = format!("https://{}", coordinator.address);
    let up = lab
        .command(&phone, client.join("tailscale"))
        .arg("--socket")
        .arg(&socket)
        .args([
            "up",
            "--login-server",
            &login,
            "--authkey",
            "not-served-yet",
            "--timeout",
            "15s",
        ])
        .env("SSL_CERT_FILE", &certificate)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&up.stderr).into_owned();

    let log = coordinator.process.log_text();
    let opened = wait_until(Duration::from_secs(5), || {
        coordinator
            .process
            .log_text()
            .contains("ts2021 session open")
    });
    assert!(
        opened.is_some(),
        "no ts2021 session:\n{log}\ntailscale up: {said}\ntailscaled:\n{}",
        daemon.log_text()
    );
    let log = coordinator.process.log_text();
    for line in log.lines().filter(|line| line.contains("ts2021")) {
        eprintln!("{line}");
    }
    assert!(
        log.contains("path=/machine/register"),
        "no registration request inside the session:\n{log}"
    );
    daemon.kill();
}
