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

mod capture;
mod measure;
mod models;
mod nat;
mod nodes;
mod tailscale;
pub use capture::*;
pub use nat::*;
pub use nodes::*;
pub use tailscale::*;

static COUNTER: AtomicU32 = AtomicU32::new(0);
static BUILD: Mutex<()> = Mutex::new(());

pub use hearth_testdata::{in_ci, skip};

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
        // What `cargo test` set for this test's package would make some
        // build scripts rerun, and most of the tree compile again.
        for (variable, _) in std::env::vars_os() {
            let variable = variable.to_string_lossy().into_owned();
            if variable.starts_with("CARGO_PKG_")
                || variable.starts_with("CARGO_MANIFEST_")
                || variable == "CARGO_CRATE_NAME"
                || variable == "CARGO_PRIMARY_PACKAGE"
            {
                command.env_remove(variable);
            }
        }
        if release {
            command.arg("--release");
        }
        let status = command.status().expect("cargo runs");
        assert!(status.success(), "building {name} failed");
    }
    path
}

/// Runs `operation` again for as long as a signal interrupts it. A socket
/// read with a timeout is not restarted after a signal handler runs (even
/// one installed with `SA_RESTART`), nor after the process was stopped and
/// continued, as the machine running the tests may do: it fails with
/// `EINTR` (signal(7)), which is no answer. (One of CI's runs lost a
/// browser test to it.)
pub fn through_signals<T>(mut operation: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    loop {
        match operation() {
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            done => return done,
        }
    }
}

/// Copies until EOF or an error, passing each read on at once. (Not
/// `std::io::copy`: its splice fast path between a socket and a pipe held
/// data back in testing.)
fn pump(from: &mut impl std::io::Read, to: &mut impl std::io::Write) {
    let mut buffer = [0u8; 65536];
    while let Ok(read) = through_signals(|| from.read(&mut buffer)) {
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

impl Host {
    /// Writes a self-signed certificate for this host's address, and its
    /// key, into `dir` as `NAME.crt` and `NAME.key`, for a server a test
    /// runs here over HTTPS; returns their paths (certificate, key).
    pub fn self_signed_certificate(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let certified = rcgen::generate_simple_self_signed(vec![self.address.to_string()])
            .expect("a self-signed certificate");
        let certificate = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&certificate, certified.cert.pem()).expect("the certificate");
        std::fs::write(&key, certified.signing_key.serialize_pem()).expect("the key");
        (certificate, key)
    }
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
    /// Namespaces of hosts behind NAT routers ([`Lab::site_host`]).
    extra: Vec<String>,
    /// A temporary directory for state and logs, removed with the lab.
    pub dir: tempfile::TempDir,
    /// The hosts file every program in the lab sees (see [`Lab::name_hosts`]).
    hosts_file: Option<PathBuf>,
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
            extra: Vec::new(),
            dir: tempfile::tempdir().expect("a temporary directory"),
            hosts_file: None,
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
        // Its IPv6 link-local address is usable at once, not tentative for
        // a second or two: a browser in the host sees the address settle as
        // its network changing and aborts the page it is loading
        // (ERR_NETWORK_CHANGED). The setting is the namespace's own.
        self.exec(
            &host,
            &[
                "sh",
                "-c",
                "dad=/proc/sys/net/ipv6/conf/eth0/accept_dad; [ ! -e $dad ] || echo 0 > $dad",
            ],
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
        command.args(["netns", "exec", &host.namespace]);
        if let Some(hosts) = &self.hosts_file {
            // The lab's names, in a mount namespace of the program's own:
            // /etc/hosts itself is never touched. Every step execs, so the
            // process started is the program (stopped by its id).
            command
                .args(["unshare", "--mount", "--propagation", "private", "--"])
                .args(["sh", "-c", "mount --bind \"$0\" /etc/hosts && exec \"$@\""])
                .arg(hosts);
        }
        command.arg(program);
        command
    }

    /// Gives every program started in the lab from now on these names
    /// (`name`, address), as public DNS would (a hosts file of the lab's,
    /// bound over /etc/hosts in each program's own mount namespace).
    pub fn name_hosts(&mut self, names: &[(&str, std::net::Ipv4Addr)]) {
        let path = self.dir.path().join("hosts");
        let mut text = String::from("127.0.0.1 localhost\n::1 localhost\n");
        for (name, address) in names {
            text.push_str(&format!("{address} {name}\n"));
        }
        std::fs::write(&path, text).expect("the lab's hosts file");
        self.hosts_file = Some(path);
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

    /// Every log of the lab's processes, each under its file name.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        let mut paths: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .map(|entries| {
                entries
                    .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                    .collect()
            })
            .unwrap_or_default();
        paths.sort();
        for path in paths
            .iter()
            .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let body = std::fs::read_to_string(path).unwrap_or_default();
            text.push_str(&format!("--- {name}\n{body}\n"));
        }
        text
    }

    /// Every namespace of the lab: hosts behind NATs, then hosts, then the switch.
    fn namespaces(&self) -> Vec<String> {
        let mut all: Vec<String> = self.extra.clone();
        all.extend(self.hosts.iter().map(|host| host.namespace.clone()));
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

/// The HTTP status another local `user` gets for `url`, asked with curl
/// through `runuser` (`runuser` as given: here, or inside a lab host).
pub fn http_status_as(mut runuser: Command, user: &str, url: &str) -> String {
    let output = runuser
        .args(["-u", user, "--", "curl", "-s", "-m", "5", "-o", "/dev/null"])
        .args(["-w", "%{http_code}", url])
        .output()
        .expect("runuser runs");
    String::from_utf8_lossy(&output.stdout).into_owned()
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
