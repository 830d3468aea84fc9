//! The compute node's link out of an enclave. vsock itself: the node
//! listens on a real vsock port where the kernel allows one (this machine
//! is a VM with a vsock device, but no host-side peer and no loopback
//! transport to connect through). The rest over UNIX sockets, the stand-in
//! of the same framing: the router's connections reach the node through
//! `hearth-enclave proxy` (each begun with a PROXY v2 header naming the
//! client), and the node's heartbeats reach the router through the
//! parent's proxy (`--router-via`: the node forwards a loopback port of its
//! own to a socket, the proxy the socket to the router's TCP), as they
//! would through vsock; a question sealed on this device is answered
//! through all of it, and a connection straight to the node's socket,
//! without the proxy's header, gets nothing. Needs the cached llama-server;
//! outside CI the test skips without it.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hearth_testkit::compute::{IMAGE, LoopbackRouter, dev_policy};
use hearth_testkit::llama::{LlamaServer, free_port};
use hearth_testkit::{binary, wait_until};

/// A child whose output goes to `log`; killed on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(args: &[&str], log: &Path) -> Running {
    let mut command = Command::new(binary("hearth-enclave"));
    command.args(args);
    run(command, log)
}

/// Runs `command` logging to `log`.
fn run(mut command: Command, log: &Path) -> Running {
    let output = std::fs::File::create(log).unwrap();
    Running(
        command
            .env("HEARTH_LOG", "info")
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .spawn()
            .unwrap(),
    )
}

#[test]
fn the_node_listens_on_vsock_where_the_kernel_allows_it() {
    let dir = tempfile::tempdir().unwrap();
    let router = LoopbackRouter::start(&[]);
    let log = dir.path().join("node.log");
    // Any free vsock port (the kernel picks; some are reserved by the host).
    let listen = format!("vsock:{}", u32::MAX);
    let advertise = format!("http://127.0.0.1:{}", free_port());
    let mut node = run(
        router.node_command_at(
            "node-v",
            &listen,
            &[
                "--advertise",
                &advertise,
                "--backend",
                "http://127.0.0.1:9/v1",
            ],
        ),
        &log,
    );
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    let served = wait_until(Duration::from_secs(20), || {
        text().contains("compute node serving") || node.0.try_wait().unwrap().is_some()
    });
    assert!(served.is_some(), "{}", text());
    let said = text();
    if said.contains("compute node serving") {
        let line = said
            .lines()
            .find(|line| line.contains("compute node serving"))
            .unwrap();
        assert!(line.contains("address=vsock:"), "{line}");
        assert!(
            !line.contains(&listen),
            "the port the kernel gave is logged: {line}"
        );
        assert!(node.0.try_wait().unwrap().is_none(), "it keeps listening");
    } else {
        // A kernel without vsock: the node says so, it does not fall back.
        assert!(said.contains("is vsock here?"), "{said}");
    }
}

#[test]
fn a_question_is_answered_through_the_proxies_and_only_proxied_connections_are_served() {
    let Some(llama) = LlamaServer::start_unix() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let router = LoopbackRouter::start(&["--heartbeat-seconds", "1"]);
    let router_address = router.url.trim_start_matches("http://").to_owned();
    let node_socket = path("node.sock");
    let out_socket = path("out.sock");
    let inbound = free_port();
    let endpoint = |socket: &Path| format!("unix:{}", socket.display());

    // The parent's proxy out to the router, the node, and the parent's
    // proxy in to the node.
    let _out_parent = start(
        &[
            "proxy",
            "--listen",
            &endpoint(&out_socket),
            "--to",
            &format!("tcp:{router_address}"),
        ],
        &path("out-parent.log"),
    );
    wait_until(Duration::from_secs(20), || out_socket.exists())
        .expect("the parent's proxy listens");
    let listen = endpoint(&node_socket);
    // A name only (nothing listens there): the node reaches the router
    // through the parent's proxy (--router-via), as from inside an enclave.
    let inside_router = "http://hearth-router.invalid:3600".to_owned();
    let via = endpoint(&out_socket);
    let advertise = format!("http://127.0.0.1:{inbound}");
    let _node = run(
        router.node_command_at(
            "node-v",
            &listen,
            &[
                "--router",
                &inside_router,
                "--router-via",
                &via,
                "--advertise",
                &advertise,
                "--backend",
                &llama.base_url,
                "--timeout-seconds",
                "10",
            ],
        ),
        &path("node.log"),
    );
    let _in_parent = start(
        &[
            "proxy",
            "--listen",
            &format!("tcp:127.0.0.1:{inbound}"),
            "--to",
            &listen,
            "--proxy-header",
        ],
        &path("in-parent.log"),
    );
    wait_until(Duration::from_secs(30), || {
        router.log_text().contains("node-v")
    })
    .unwrap_or_else(|| {
        panic!(
            "the node never registered through the proxies:\nrouter:\n{}\nnode:\n{}",
            router.log_text(),
            std::fs::read_to_string(path("node.log")).unwrap_or_default()
        )
    });

    let policy = dev_policy(dir.path(), "policy.json", IMAGE);
    let chat = || {
        Command::new(binary("hearth-pcc"))
            .args(["chat", "--router", &router.url, "--policy"])
            .arg(&policy)
            .args([
                "--model",
                "tiny",
                "--max-tokens",
                "4",
                "What is for dinner?",
            ])
            .output()
            .unwrap()
    };
    // The router may list the node a moment before its first heartbeat
    // carries evidence: ask until it is verified.
    let mut last = None;
    let answered = wait_until(Duration::from_secs(30), || {
        let output = chat();
        let ok = output.status.success();
        last = Some(output);
        ok
    });
    let output = last.unwrap();
    assert!(
        answered.is_some(),
        "{}\nnode:\n{}",
        String::from_utf8_lossy(&output.stderr),
        std::fs::read_to_string(path("node.log")).unwrap_or_default()
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("[node node-v]"));

    // Straight to the node's socket, without the proxy's header: nothing.
    let mut bare = std::os::unix::net::UnixStream::connect(&node_socket).unwrap();
    bare.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    bare.write_all(b"GET /health HTTP/1.1\r\nHost: node\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = bare.read_to_end(&mut answer);
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
}
