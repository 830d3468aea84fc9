//! The oblivious path in a lab or on loopback: an OHTTP gateway, a relay
//! and a config server, with seeds made for the test.

use std::path::Path;
use std::time::Duration;

use crate::lab::{Host, Lab, Process, binary, wait_until};

/// The OHTTP gateway's port.
pub const GATEWAY_PORT: u16 = 3200;
/// The relay's port.
pub const RELAY_PORT: u16 = 3100;
/// The config server's port.
pub const AUTH_PORT: u16 = 8080;

/// Seeds JSON for `(key_id, active_from, active_until)` (times since the
/// Unix epoch); each key's seed is 32 bytes of its id, so two processes
/// given the same list derive the same keys.
pub fn seeds_json(keys: &[(u8, Duration, Duration)]) -> String {
    let time = |at: Duration| hearth_attest::report::rfc3339(Duration::from_secs(at.as_secs()));
    let list: Vec<serde_json::Value> = keys
        .iter()
        .map(|(key_id, from, until)| {
            serde_json::json!({
                "key_id": key_id,
                "seed_hex": format!("{key_id:02x}").repeat(32),
                "active_from": time(*from),
                "active_until": time(*until),
            })
        })
        .collect();
    serde_json::to_string(&list).unwrap_or_default()
}

fn started(process: &Process, what: &str) {
    wait_until(Duration::from_secs(20), || {
        process.log_text().contains("serving")
    })
    .unwrap_or_else(|| panic!("{what} did not start: {}", process.log_text()));
}

impl Lab {
    /// `hearth-ohttp-gateway` in `host` on port 3200 with `seeds`, allowed
    /// to forward to `allow` (`http://ADDRESS:PORT/PREFIX`).
    pub fn start_ohttp_gateway(&mut self, host: &Host, seeds: &str, allow: &str) -> Process {
        let mut command = self.command(host, binary("hearth-ohttp-gateway"));
        command
            .args([
                "serve",
                "--listen",
                &format!("{}:{GATEWAY_PORT}", host.address),
                "--allow",
                allow,
            ])
            .env("OHTTP_SEEDS_JSON", seeds);
        let process = self.spawn(host, "ohttp-gateway", command);
        started(&process, "the OHTTP gateway");
        process
    }

    /// `hearth-ohttp-relay` in `host` on port 3100, forwarding to `gateway`.
    pub fn start_relay(&mut self, host: &Host, gateway: &str) -> Process {
        let mut command = self.command(host, binary("hearth-ohttp-relay"));
        command.args([
            "serve",
            "--listen",
            &format!("{}:{RELAY_PORT}", host.address),
            "--gateway",
            gateway,
        ]);
        let process = self.spawn(host, "relay", command);
        started(&process, "the relay");
        process
    }

    /// `hearth-pcc-auth` in `host` on port 8080.
    pub fn start_auth(
        &mut self,
        host: &Host,
        seeds: &str,
        urls: [&str; 3],
        policy: &Path,
    ) -> Process {
        let [relay, gateway, router] = urls;
        let mut command = self.command(host, binary("hearth-pcc-auth"));
        command
            .args([
                "serve",
                "--listen",
                &format!("{}:{AUTH_PORT}", host.address),
            ])
            .args([
                "--relay-url",
                relay,
                "--gateway-url",
                gateway,
                "--router-url",
                router,
            ])
            .arg("--policy")
            .arg(policy)
            .env("OHTTP_SEEDS_JSON", seeds);
        let process = self.spawn(host, "auth", command);
        started(&process, "the config server");
        process
    }
}

/// One of the oblivious servers on a loopback port, its output in a temp
/// file; killed on drop.
pub struct LoopbackServer {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    log: tempfile::NamedTempFile,
}

impl LoopbackServer {
    /// Starts binary `name` with `serve --listen 127.0.0.1:0`, `args`,
    /// and `OHTTP_SEEDS_JSON=seeds`; waits until it says where it listens.
    /// The server picks its own port: a port chosen here and bound there
    /// later could be taken in between by another test's listener (CI saw
    /// a gateway lose its port so, and the test talk to someone else).
    pub fn start(name: &str, args: &[&str], seeds: &str) -> LoopbackServer {
        let log =
            tempfile::NamedTempFile::new().unwrap_or_else(|error| panic!("a log file: {error}"));
        let output = log
            .reopen()
            .unwrap_or_else(|error| panic!("a log file: {error}"));
        let child = std::process::Command::new(binary(name))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .env("OHTTP_SEEDS_JSON", seeds)
            .stdin(std::process::Stdio::null())
            .stdout(
                output
                    .try_clone()
                    .unwrap_or_else(|error| panic!("a log file: {error}")),
            )
            .stderr(output)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {name}: {error}"));
        let mut server = LoopbackServer {
            child,
            url: String::new(),
            log,
        };
        let mut address = None;
        wait_until(Duration::from_secs(20), || {
            address = serving_address(&server.log_text());
            address.is_some()
        });
        let address =
            address.unwrap_or_else(|| panic!("{name} did not start: {}", server.log_text()));
        server.url = format!("http://{address}");
        server
    }

    /// An OHTTP gateway with the keys of `seeds` that forwards to the
    /// router at `router_url`, and a relay in front of it (given
    /// `relay_args` besides `--gateway`): (gateway, relay).
    pub fn gateway_and_relay(
        router_url: &str,
        seeds: &str,
        relay_args: &[&str],
    ) -> (LoopbackServer, LoopbackServer) {
        let gateway = LoopbackServer::start(
            "hearth-ohttp-gateway",
            &["--allow", &format!("{router_url}/v1/")],
            seeds,
        );
        let gateway_url = format!("{}/gateway", gateway.url);
        let mut args = vec!["--gateway", gateway_url.as_str()];
        args.extend_from_slice(relay_args);
        let relay = LoopbackServer::start("hearth-ohttp-relay", &args, "");
        (gateway, relay)
    }

    /// Its output so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// The address in a server's "… serving address=ADDRESS …" log line.
fn serving_address(log: &str) -> Option<std::net::SocketAddr> {
    log.lines()
        .filter(|line| line.contains("serving"))
        .find_map(|line| {
            line.split_once("address=")?
                .1
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
