//! A small network of Linux network namespaces.
//!
//! A [`Lab`] owns a "switch" namespace holding a bridge, and one namespace per
//! host, each joined to the bridge by a veth pair and addressed in
//! `10.77.0.0/24` (the underlay). Only addresses inside these namespaces are
//! used; the root namespace is never touched beyond creating them. Dropping the
//! lab kills every process it started and deletes every namespace, also when
//! the test panicked.
//!
//! Tests that need root or a tool call [`Lab::new`] (or [`require_tools`]),
//! which skips with a printed reason outside CI and fails under `CI=true`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);
static BUILD: Mutex<()> = Mutex::new(());

/// Whether this run is CI (where every skip is a failure).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true" || value == "1")
}

/// Skips (outside CI) or fails (in CI) with `reason`; returns `None` to the test.
pub fn skip<T>(reason: &str) -> Option<T> {
    assert!(!in_ci(), "CI=true and this test cannot run: {reason}");
    eprintln!("SKIPPED: {reason}");
    None
}

/// Whether we run as root.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find(|line| line.starts_with("Uid:"))
            .and_then(|line| line.split_whitespace().nth(2))
            == Some("0")
    })
}

/// Whether `tool` is on PATH.
pub fn has_tool(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

/// Checks root and tools; `None` (after skipping) when something is missing.
pub fn require_tools(tools: &[&str]) -> Option<()> {
    if !is_root() {
        return skip("needs root (network namespaces)");
    }
    for tool in tools {
        if !has_tool(tool) {
            return skip(&format!(
                "needs `{tool}` (scripts/install-test-deps.sh installs it)"
            ));
        }
    }
    Some(())
}

/// The workspace's target directory for the profile tests run under.
pub fn target_dir() -> PathBuf {
    // Tests live in target/<profile>/deps/; binaries (and the tools built
    // from this crate, like hearth-household) in target/<profile>/.
    let exe = std::env::current_exe().expect("a program knows its own path");
    let dir = exe.parent().expect("an executable sits in a directory");
    if dir.ends_with("deps") {
        dir.parent()
            .map(Path::to_owned)
            .expect("target/<profile>/deps")
    } else {
        dir.to_owned()
    }
}

/// Held while a test runs cargo, so that tests of one binary do not build at once.
pub fn build_lock() -> std::sync::MutexGuard<'static, ()> {
    BUILD
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The path of a workspace binary, building it first if needed.
pub fn binary(name: &str) -> PathBuf {
    let path = target_dir().join(name);
    let _guard = BUILD
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if !path.exists() {
        let release = target_dir().ends_with("release");
        let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        command.args(["build", "--workspace", "--bin", name]);
        if release {
            command.arg("--release");
        }
        let status = command.status().expect("cargo runs");
        assert!(status.success(), "building {name} failed");
    }
    path
}

/// Copies until EOF or an error, passing each read on at once. (Not
/// `std::io::copy`: its splice fast path between a socket and a pipe held
/// data back in testing.)
fn pump(from: &mut impl std::io::Read, to: &mut impl std::io::Write) {
    let mut buffer = [0u8; 65536];
    while let Ok(read) = from.read(&mut buffer) {
        if read == 0
            || to
                .write_all(&buffer[..read])
                .and_then(|()| to.flush())
                .is_err()
        {
            break;
        }
    }
}

/// Runs `command`, failing the test with what it printed unless it succeeds.
pub(crate) fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// One host of the lab.
#[derive(Clone, Debug)]
pub struct Host {
    /// Its name in the test.
    pub name: String,
    /// Its network namespace.
    pub namespace: String,
    /// Its underlay address.
    pub address: std::net::Ipv4Addr,
    /// Its underlay interface (inside its namespace).
    pub interface: String,
}

/// A started process; killed when the lab is dropped (or by [`Process::kill`]).
pub struct Process {
    /// The child (the program itself: `ip netns exec` execs into it).
    pub child: Child,
    /// Where its stderr and stdout go.
    pub log: PathBuf,
}

impl Process {
    /// Its combined output so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits up to `limit` for the exit.
    pub fn terminate(&mut self, limit: Duration) -> Option<ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.wait(limit)
    }

    /// Kills with SIGKILL.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `limit` for the exit.
    pub fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// A loopback port of the test's namespace leading into a lab host.
#[derive(Clone, Copy, Debug)]
pub struct Forward {
    /// The port on 127.0.0.1.
    pub port: u16,
}

/// A network of namespaces around one bridge.
pub struct Lab {
    prefix: String,
    switch: String,
    hosts: Vec<Host>,
    /// A temporary directory for state and logs, removed with the lab.
    pub dir: tempfile::TempDir,
}

impl Lab {
    /// A new, empty lab; `None` (skipped) without root or the `ip` tool.
    pub fn new() -> Option<Lab> {
        require_tools(&["ip"])?;
        let number = COUNTER.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("hl{}x{number}", std::process::id() % 100_000);
        let switch = format!("{prefix}-sw");
        let lab = Lab {
            prefix,
            switch,
            hosts: Vec::new(),
            dir: tempfile::tempdir().expect("a temporary directory"),
        };
        run(Command::new("ip").args(["netns", "add", &lab.switch]));
        lab.in_switch(&["ip", "link", "add", "br0", "type", "bridge"]);
        lab.in_switch(&["ip", "link", "set", "br0", "up"]);
        lab.in_switch(&["ip", "link", "set", "lo", "up"]);
        Some(lab)
    }

    fn in_switch(&self, args: &[&str]) -> Output {
        run(Command::new("ip")
            .args(["netns", "exec", &self.switch])
            .args(args))
    }

    /// The namespace holding the bridge (for captures).
    pub fn switch(&self) -> &str {
        &self.switch
    }

    /// Adds a host joined to the bridge.
    pub fn host(&mut self, name: &str) -> Host {
        let index = self.hosts.len() + 1;
        let namespace = format!("{}-{name}", self.prefix);
        run(Command::new("ip").args(["netns", "add", &namespace]));
        let port = format!("p{index}");
        run(Command::new("ip").args([
            "link",
            "add",
            "name",
            "eth0",
            "netns",
            &namespace,
            "type",
            "veth",
            "peer",
            "name",
            &port,
            "netns",
            &self.switch,
        ]));
        self.in_switch(&["ip", "link", "set", &port, "master", "br0"]);
        self.in_switch(&["ip", "link", "set", &port, "up"]);
        let address = std::net::Ipv4Addr::new(10, 77, 0, index as u8 + 1);
        let host = Host {
            name: name.to_owned(),
            namespace,
            address,
            interface: "eth0".into(),
        };
        self.exec(&host, &["ip", "link", "set", "lo", "up"]);
        self.exec(
            &host,
            &["ip", "addr", "add", &format!("{address}/24"), "dev", "eth0"],
        );
        self.exec(&host, &["ip", "link", "set", "eth0", "up"]);
        self.hosts.push(host.clone());
        host
    }

    /// The switch port (in the switch namespace) a host is plugged into.
    pub fn port_of(&self, host: &Host) -> String {
        let index = self
            .hosts
            .iter()
            .position(|known| known.namespace == host.namespace)
            .expect("a host of this lab");
        format!("p{}", index + 1)
    }

    /// A command that runs `program` inside `host`'s namespace.
    pub fn command(&self, host: &Host, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &host.namespace])
            .arg(program);
        command
    }

    /// Runs a command in `host` and returns its output (failing the test on error).
    pub fn exec(&self, host: &Host, args: &[&str]) -> Output {
        let mut command = self.command(host, args[0]);
        command.args(&args[1..]);
        run(&mut command)
    }

    /// Runs a command in `host` and returns its output, whatever its status.
    pub fn try_exec(&self, host: &Host, args: &[&str]) -> Output {
        let mut command = self.command(host, args[0]);
        command.args(&args[1..]);
        command.output().expect("ip netns exec runs")
    }

    /// Starts a long-running process in `host`, logging to a file in the lab dir.
    pub fn spawn(&mut self, host: &Host, label: &str, mut command: Command) -> Process {
        let log = self.dir.path().join(format!("{label}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {label} in {}: {error}", host.name));
        Process { child, log }
    }

    /// Every namespace of the lab, hosts first.
    fn namespaces(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .hosts
            .iter()
            .map(|host| host.namespace.clone())
            .collect();
        all.push(self.switch.clone());
        all
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Whatever still runs inside a namespace (our processes and anything
        // they started) is killed, then the namespaces go, taking their
        // interfaces with them.
        for namespace in self.namespaces() {
            if let Ok(output) = Command::new("ip")
                .args(["netns", "pids", &namespace])
                .output()
            {
                for pid in String::from_utf8_lossy(&output.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", pid]).status();
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
        for namespace in self.namespaces() {
            let _ = Command::new("ip")
                .args(["netns", "del", &namespace])
                .status();
        }
    }
}

/// Polls `condition` every 50 ms until it holds; returns how long it took, or
/// `None` after `limit`.
pub fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if condition() {
            return Some(start.elapsed());
        }
        if start.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

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
pub struct Coordinator {
    /// Its host.
    pub host: Host,
    /// Its state directory.
    pub state: PathBuf,
    /// Its HTTPS address.
    pub address: std::net::SocketAddr,
    /// The process.
    pub process: Process,
}

impl Coordinator {
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
    /// Starts a coordinator in `host`, listening on the host's underlay address.
    pub fn start_coordinator(&mut self, host: &Host) -> Coordinator {
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
            .env("HEARTH_LOG", "debug");
        let process = self.spawn(host, &format!("{}-coordinator", host.name), command);
        let coordinator = Coordinator {
            host: host.clone(),
            state,
            address,
            process,
        };
        let socket = coordinator.state.join("admin.sock");
        wait_until(Duration::from_secs(30), || socket.exists()).unwrap_or_else(|| {
            panic!(
                "coordinator did not start; log:\n{}",
                coordinator.process.log_text()
            )
        });
        coordinator
    }

    /// Restarts a stopped coordinator on the same state and address.
    pub fn restart_coordinator(&mut self, mut old: Coordinator) -> Coordinator {
        let host = old.host.clone();
        old.process.kill();
        self.start_coordinator(&host)
    }

    /// Starts `hearth-agent up` in `host` with the token in `token_file`.
    pub fn start_agent(&mut self, host: &Host, token_file: &Path, extra: &[&str]) -> Agent {
        let state = self.dir.path().join(format!("{}-agent", host.name));
        let interface = unique_interface();
        let mut command = self.command(host, binary("hearth-agent"));
        command
            .arg("--state-dir")
            .arg(&state)
            .args([
                "up",
                "--hostname",
                &host.name,
                "--interface",
                &interface,
                "--token-file",
            ])
            .arg(token_file)
            .args(extra)
            .env("HEARTH_LOG", "debug");
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
