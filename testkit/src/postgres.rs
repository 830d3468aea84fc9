//! A real PostgreSQL server from Debian's packages, started by the tests in
//! a temporary directory: one cluster per test process, reached only through
//! a UNIX socket in that directory (no TCP port), gone when the process
//! ends.
//!
//! `HEARTH_TEST_DATABASE=postgres` runs the coordinator's tests on it: every
//! coordinator [`crate::control_plane::Server`] starts gets a database of its
//! own, named after its state directory (a restart finds it again).
// A test harness: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Whether the tests were asked to keep the coordinator's state in
/// PostgreSQL (`HEARTH_TEST_DATABASE=postgres`) rather than SQLite.
pub fn selected() -> bool {
    std::env::var("HEARTH_TEST_DATABASE").is_ok_and(|value| value == "postgres")
}

/// The directory of Debian's PostgreSQL programs (the newest version).
pub fn binaries() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// The running cluster.
pub struct Cluster {
    /// Holds the data directory and the socket.
    root: PathBuf,
    /// The postmaster's process id.
    pid: u32,
    bin: PathBuf,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

/// This process's cluster, started on first use. Panics with what to
/// install when PostgreSQL is missing (the tests that call this need it).
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(Cluster::start)
}

/// This process's cluster, or `None` after a printed skip (a failure under
/// `CI=true`) when PostgreSQL cannot run here.
pub fn available() -> Option<&'static Cluster> {
    if binaries().is_none() {
        return crate::lab::skip("PostgreSQL is not installed (Debian's `postgresql`)");
    }
    if !crate::lab::is_root() {
        return crate::lab::skip("PostgreSQL runs as its own user, which needs root");
    }
    Some(cluster())
}

impl Cluster {
    fn start() -> Cluster {
        let bin = binaries().expect(
            "PostgreSQL is not installed (scripts/install-test-deps.sh installs Debian's `postgresql`)",
        );
        // Removed if the cluster cannot be made (a full disk, say); kept
        // once it runs, and removed at exit by `stop_at_exit`.
        let directory = tempfile::Builder::new()
            .prefix("hearth-postgres-")
            .tempdir()
            .unwrap();
        let root = directory.path().to_path_buf();
        let data = root.join("data");
        let socket = root.join("socket");
        std::fs::create_dir(&socket).unwrap();
        // PostgreSQL refuses to run as root: the cluster belongs to Debian's
        // `postgres` user, in a directory only it (and root) can enter.
        run(Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&root));
        run(Command::new("chmod").arg("0700").arg(&root));
        run(as_postgres(&bin.join("initdb"))
            .args([
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--no-instructions",
            ])
            .arg("-D")
            .arg(&data));
        let root = directory.keep();
        // Started from a thread that lives as long as the process: the
        // parent-death signal (fast shutdown) fires when the process ends,
        // however it ends, and not when the test that started it does.
        let (sender, receiver) = std::sync::mpsc::channel();
        let postgres = bin.join("postgres");
        let log = root.join("postgres.log");
        std::thread::Builder::new()
            .name("postgres".into())
            .spawn(move || {
                let log = std::fs::File::create(&log).unwrap();
                let child = Command::new("setpriv")
                    .args([
                        "--reuid=postgres",
                        "--regid=postgres",
                        "--init-groups",
                        "--pdeathsig=INT",
                        "--",
                    ])
                    .arg(postgres)
                    .arg("-D")
                    .arg(&data)
                    .arg("-k")
                    .arg(&socket)
                    .args(["-c", "listen_addresses=", "-c", "max_connections=400"])
                    .args(["-c", "fsync=on", "-c", "synchronous_commit=on"])
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .unwrap();
                sender.send(child.id()).unwrap();
                // Keep the child (and this thread, its parent) alive.
                let _child = child;
                loop {
                    std::thread::park();
                }
            })
            .unwrap();
        let pid = receiver.recv().unwrap();
        let cluster = Cluster { root, pid, bin };
        register_stop_at_exit();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(cluster.bin.join("pg_isready"))
                .arg("-h")
                .arg(cluster.socket())
                .arg("-q")
                .status()
                .is_ok_and(|status| status.success());
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start; log:\n{}",
                std::fs::read_to_string(cluster.root.join("postgres.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        cluster
    }

    /// The directory of its socket.
    pub fn socket(&self) -> PathBuf {
        self.root.join("socket")
    }

    /// The URL of database `name` (which may not exist yet).
    pub fn url(&self, name: &str) -> String {
        format!(
            "postgres://postgres@localhost/{name}?host={}",
            self.socket().display()
        )
    }

    /// Runs `sql` in database `name`, failing the test on an error; its output.
    pub fn psql(&self, name: &str, sql: &str) -> String {
        let output = Command::new(self.bin.join("psql"))
            .arg("-h")
            .arg(self.socket())
            .args([
                "-U",
                "postgres",
                "-d",
                name,
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
            ])
            .args(["-c", sql])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "psql `{sql}`: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Creates database `name` unless it exists; its URL.
    pub fn database(&self, name: &str) -> String {
        let exists = self.psql(
            "postgres",
            &format!("SELECT 1 FROM pg_database WHERE datname = '{name}'"),
        );
        if exists.trim() != "1" {
            self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
        }
        self.url(name)
    }

    /// A new, empty database with a name not used before; its URL.
    pub fn fresh_database(&self) -> String {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let number = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.database(&format!("fresh_{}_{number}", std::process::id()))
    }
}

/// The database a coordinator on state directory `state` keeps its state
/// in under `HEARTH_TEST_DATABASE=postgres` (created on first use).
pub fn database_for_state(state: &Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    state.hash(&mut hasher);
    cluster().database(&format!("state_{:016x}", hasher.finish()))
}

/// Stops the cluster (fast shutdown) and removes its directory.
extern "C" fn stop_at_exit() {
    let Some(cluster) = CLUSTER.get() else {
        return;
    };
    let pid = cluster.pid;
    let _ = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && Path::new(&format!("/proc/{pid}")).exists() {
        // A zombie (exited, not yet reaped) has no `stat` state other than Z.
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        });
        if zombie {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_dir_all(&cluster.root);
}

#[allow(unsafe_code)] // libc's atexit: no safe wrapper in std
fn register_stop_at_exit() {
    // SAFETY: registers a plain `extern "C"` function with no arguments,
    // which touches only a `OnceLock` that is set by then.
    unsafe {
        libc::atexit(stop_at_exit);
    }
}

fn as_postgres(program: &Path) -> Command {
    let mut command = Command::new("setpriv");
    command
        .args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ])
        .arg(program);
    command
}

fn run(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
