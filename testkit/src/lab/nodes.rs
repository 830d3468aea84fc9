//! Hearth's programs running in lab hosts: a coordinator and agents (with
//! their CLIs), a TCP probe, and ways into a host from the test's own
//! namespace.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::{Forward, Host, Lab, Process, binary, pump, wait_until};

static INTERFACES: AtomicU32 = AtomicU32::new(0);

/// A mesh interface name unique on this machine (WireGuard control sockets
/// live in the shared /var/run/wireguard).
pub fn unique_interface() -> String {
    format!(
        "hs{}x{}",
        std::process::id() % 100_000,
        INTERFACES.fetch_add(1, Ordering::SeqCst)
    )
}

/// A coordinator running in a lab host.
pub struct LabCoordinator {
    /// Its host.
    pub host: Host,
    /// Its state directory.
    pub state: PathBuf,
    /// Its HTTPS address.
    pub address: std::net::SocketAddr,
    /// The process.
    pub process: Process,
}

impl LabCoordinator {
    /// Runs the admin CLI against it (from the root namespace: the admin
    /// socket is a file).
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(binary("hearth-coordinator"))
            .arg("--state-dir")
            .arg(&self.state)
            .args(args)
            .output()
            .expect("the CLI runs")
    }

    /// Runs the admin CLI and returns stdout, failing the test on error.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let output = self.cli(args);
        assert!(
            output.status.success(),
            "`hearth-coordinator {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `nodes list --output json`, parsed.
    pub fn nodes(&self) -> Vec<serde_json::Value> {
        serde_json::from_str(&self.cli_ok(&["nodes", "list", "--output", "json"]))
            .expect("nodes list is JSON")
    }

    /// The id of the node called `name`.
    pub fn node_id(&self, name: &str) -> Option<u64> {
        self.nodes()
            .iter()
            .find(|node| node["name"] == name)
            .and_then(|node| node["id"].as_u64())
    }

    /// Creates a key and writes its token to a file; returns the file.
    pub fn token_file(&self, dir: &Path, name: &str, args: &[&str]) -> PathBuf {
        let mut all = vec!["preauthkeys", "create"];
        all.extend_from_slice(args);
        let token = self.cli_ok(&all);
        let path = dir.join(name);
        std::fs::write(&path, token.trim()).expect("token file");
        path
    }
}

/// An agent running in a lab host.
pub struct Agent {
    /// Its host.
    pub host: Host,
    /// Its state directory.
    pub state: PathBuf,
    /// Its mesh interface.
    pub interface: String,
    /// The process.
    pub process: Process,
}

impl Agent {
    /// `hearth-agent status --output json`, if the agent answers.
    pub fn status(&self) -> Option<serde_json::Value> {
        let output = Command::new(binary("hearth-agent"))
            .arg("--state-dir")
            .arg(&self.state)
            .args(["status", "--output", "json"])
            .output()
            .ok()?;
        serde_json::from_slice(&output.stdout).ok()
    }

    /// The kernel offloads its userspace data plane reports ("none" on
    /// the fallback path).
    pub fn offloads(&self) -> Option<String> {
        Some(self.status()?["offloads"].as_str()?.to_owned())
    }

    /// The path `status` reports to the peer called `peer` (`{"kind":
    /// "direct", "endpoint": ...}` or `{"kind": "relay", ...}`).
    pub fn path(&self, peer: &str) -> Option<serde_json::Value> {
        let status = self.status()?;
        status["peers"]
            .as_array()?
            .iter()
            .find(|entry| entry["name"] == peer)
            .map(|entry| entry["path"].clone())
    }

    /// The kind of [`Agent::path`]: `relay` or `direct`.
    pub fn path_kind(&self, peer: &str) -> Option<String> {
        Some(self.path(peer)?["kind"].as_str()?.to_owned())
    }

    /// Runs an agent CLI verb.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(binary("hearth-agent"))
            .arg("--state-dir")
            .arg(&self.state)
            .args(args)
            .output()
            .expect("the agent CLI runs")
    }

    /// Its mesh IPv4 address, once the first map arrived.
    pub fn mesh_ipv4(&self) -> Option<std::net::Ipv4Addr> {
        self.status()?["node"]["ipv4"].as_str()?.parse().ok()
    }

    /// Waits for its first map (up to `limit`) and returns its mesh IPv4 address.
    pub fn wait_mesh_ipv4(&self, limit: Duration) -> std::net::Ipv4Addr {
        let mut address = None;
        wait_until(limit, || {
            address = self.mesh_ipv4();
            address.is_some()
        })
        .unwrap_or_else(|| {
            panic!(
                "agent {} got no map within {limit:?}; log:\n{}",
                self.host.name,
                self.process.log_text()
            )
        });
        address.expect("set when the wait succeeded")
    }

    /// Names of its current peers.
    pub fn peer_names(&self) -> Vec<String> {
        self.status()
            .and_then(|status| {
                status["peers"].as_array().map(|peers| {
                    peers
                        .iter()
                        .filter_map(|peer| peer["name"].as_str().map(str::to_owned))
                        .collect()
                })
            })
            .unwrap_or_default()
    }
}

impl Lab {
    /// A coordinator on a new "internet" host (the bridge every NAT site's
    /// outside is on) with user alice, and the file of a reusable key for
    /// her pre-approved devices.
    pub fn start_internet_coordinator(&mut self) -> (LabCoordinator, PathBuf) {
        let internet = self.host("internet");
        let coordinator = self.start_coordinator(&internet);
        coordinator.cli_ok(&["users", "create", "alice"]);
        let key = coordinator.token_file(
            self.dir.path(),
            "key.token",
            &["--user", "alice", "--reusable", "--pre-approved"],
        );
        (coordinator, key)
    }

    /// Starts a coordinator in `host`, listening on the host's underlay address.
    pub fn start_coordinator(&mut self, host: &Host) -> LabCoordinator {
        self.start_coordinator_with(host, &[])
    }

    /// Starts a coordinator in `host` with `extra` arguments to `serve`.
    pub fn start_coordinator_with(&mut self, host: &Host, extra: &[&str]) -> LabCoordinator {
        let state = self.dir.path().join(format!("{}-coordinator", host.name));
        let address = std::net::SocketAddr::from((host.address, 8443));
        let mut command = self.command(host, binary("hearth-coordinator"));
        command
            .arg("--state-dir")
            .arg(&state)
            .args([
                "serve",
                "--listen",
                &address.to_string(),
                "--stun-listen",
                &format!("{}:3478", host.address),
            ])
            .args(["--keepalive", "2s"])
            .args(crate::control_plane::database_args(&state, extra))
            .args(extra)
            .env("HEARTH_LOG", "debug");
        let process = self.spawn(host, &format!("{}-coordinator", host.name), command);
        let coordinator = LabCoordinator {
            host: host.clone(),
            state,
            address,
            process,
        };
        let socket = coordinator.state.join("admin.sock");
        // A killed coordinator's socket file stays behind: ready means it answers.
        wait_until(Duration::from_secs(30), || {
            std::os::unix::net::UnixStream::connect(&socket).is_ok()
        })
        .unwrap_or_else(|| {
            panic!(
                "coordinator did not start; log:\n{}",
                coordinator.process.log_text()
            )
        });
        coordinator
    }

    /// Restarts a stopped coordinator on the same state and address.
    pub fn restart_coordinator(&mut self, mut old: LabCoordinator) -> LabCoordinator {
        let host = old.host.clone();
        old.process.kill();
        self.start_coordinator(&host)
    }

    /// Starts `hearth-agent up` in `host` with the token in `token_file`.
    pub fn start_agent(&mut self, host: &Host, token_file: &Path, extra: &[&str]) -> Agent {
        self.start_agent_with_env(host, token_file, extra, &[])
    }

    /// [`Lab::start_agent`] with extra environment variables for the agent.
    pub fn start_agent_with_env(
        &mut self,
        host: &Host,
        token_file: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Agent {
        self.start_agent_program(&binary("hearth-agent"), host, token_file, extra, env)
    }

    /// [`Lab::start_agent`] running `program` (a packaged build of the
    /// agent, say) instead of the workspace's.
    pub fn start_agent_program(
        &mut self,
        program: &Path,
        host: &Host,
        token_file: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Agent {
        let state = self.dir.path().join(format!("{}-agent", host.name));
        let interface = unique_interface();
        let mut command = self.command(host, program);
        command
            .arg("--state-dir")
            .arg(&state)
            .args([
                "up",
                "--hostname",
                &host.name,
                "--interface",
                &interface,
                // The host's systemd-resolved, where one runs, serves the
                // host's namespace: a lab agent must not reconfigure it.
                "--leave-system-resolver",
                "--token-file",
            ])
            .arg(token_file)
            .args(extra)
            .env("HEARTH_LOG", "debug")
            .envs(env.iter().copied());
        let process = self.spawn(host, &format!("{}-agent", host.name), command);
        Agent {
            host: host.clone(),
            state,
            interface,
            process,
        }
    }

    /// Restarts an agent (same state dir and interface name).
    pub fn restart_agent(&mut self, mut old: Agent, token_file: &Path) -> Agent {
        old.process.terminate(Duration::from_secs(10));
        let mut command = self.command(&old.host, binary("hearth-agent"));
        command
            .arg("--state-dir")
            .arg(&old.state)
            .args([
                "up",
                "--hostname",
                &old.host.name,
                "--interface",
                &old.interface,
                "--leave-system-resolver",
                "--token-file",
            ])
            .arg(token_file)
            .env("HEARTH_LOG", "debug");
        let process = self.spawn(
            &old.host,
            &format!("{}-agent-again", old.host.name),
            command,
        );
        Agent { process, ..old }
    }

    /// Starts `hearth-probe serve PORT` in `host`.
    pub fn serve_tcp(&mut self, host: &Host, port: u16) -> Process {
        let mut command = self.command(host, binary("hearth-probe"));
        command.args(["serve", &port.to_string()]);
        let process = self.spawn(host, &format!("{}-probe-{port}", host.name), command);
        std::thread::sleep(Duration::from_millis(100));
        process
    }

    /// Sends `bytes` over TCP from `host` to `address:port`; the byte count the
    /// server confirmed, or the error.
    pub fn send_tcp(
        &self,
        host: &Host,
        address: std::net::IpAddr,
        port: u16,
        bytes: u64,
        timeout: Duration,
    ) -> Result<u64, String> {
        let output = self
            .command(host, binary("hearth-probe"))
            .args([
                "send",
                &address.to_string(),
                &port.to_string(),
                &bytes.to_string(),
                &timeout.as_millis().to_string(),
            ])
            .output()
            .expect("the probe runs");
        if output.status.success() {
            String::from_utf8_lossy(&output.stdout)
                .trim()
                .parse()
                .map_err(|_| "bad probe output".into())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
        }
    }

    /// Makes `target` as seen from inside `host` reachable at a loopback port
    /// of the test's own namespace: each connection to the returned port is
    /// carried by `hearth-probe pipe` running in `host`. (How a browser or a
    /// person at this machine reaches a service through a node of the lab.)
    pub fn forward(&self, host: &Host, target: std::net::SocketAddr) -> Forward {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().expect("bound").port();
        let namespace = host.namespace.clone();
        let probe = binary("hearth-probe");
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let _ = client.set_nodelay(true);
                let child = Command::new("ip")
                    .args(["netns", "exec", &namespace])
                    .arg(&probe)
                    .args(["pipe", &target.ip().to_string(), &target.port().to_string()])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn();
                let Ok(mut child) = child else { continue };
                let (Some(mut to_child), Some(mut from_child)) =
                    (child.stdin.take(), child.stdout.take())
                else {
                    continue;
                };
                let Ok(mut reader) = client.try_clone() else {
                    continue;
                };
                let mut writer = client;
                std::thread::spawn(move || {
                    pump(&mut reader, &mut to_child);
                });
                std::thread::spawn(move || {
                    pump(&mut from_child, &mut writer);
                    let _ = writer.shutdown(std::net::Shutdown::Both);
                    let _ = child.kill();
                    let _ = child.wait();
                });
            }
        });
        Forward { port }
    }

    /// Whether one ping from `host` to `address` is answered within `timeout`.
    pub fn ping(&self, host: &Host, address: std::net::IpAddr, timeout: Duration) -> bool {
        let seconds = timeout.as_secs_f64().max(0.2).to_string();
        self.command(host, "ping")
            .args(["-c", "1", "-W", &seconds, &address.to_string()])
            .output()
            .is_ok_and(|output| output.status.success())
    }
}
