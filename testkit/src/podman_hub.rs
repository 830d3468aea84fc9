//! A machine with Podman and no systemd (a Mac's `podman machine`, a NAS),
//! for the hub in Podman alone: Podman's service in a lab host's network
//! namespace (its pods' bridges and published ports are the namespace's),
//! `podman/hearth-podman` run against it, and a model server on the
//! machine outside the pod, reached from the pod at
//! `host.containers.internal` as a Mac's own Ollama is.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::appliance::{HubLogs, well_reported};
use crate::lab::{Host, Lab, Process};
use crate::llama::workspace_root;
use crate::{podman, wait_until};

/// The port of the model server on the machine.
pub const MODEL_PORT: u16 = 18080;

/// The hub's volumes, by what follows the pod's name.
pub const VOLUMES: [&str; 17] = [
    "etc",
    "etc-gateway",
    "etc-messaging",
    "coordinator",
    "agent",
    "gateway",
    "messaging",
    "hub",
    "workspace",
    "documents",
    "whois",
    "llama",
    "inference",
    "tmp-coordinator",
    "tmp-agent",
    "tmp-gateway",
    "tmp-messaging",
];

/// The machine: Podman's service in a lab host's namespace, and
/// everything made through it, removed when dropped.
pub struct PodmanMachine {
    /// The service's socket.
    pub socket: PathBuf,
    /// The pod's name (its containers' and volumes' prefix).
    pub pod: String,
    /// Where `hearth-podman` runs (backups are written there).
    pub dir: PathBuf,
}

impl PodmanMachine {
    /// `podman` talking to the machine's service.
    pub fn podman(&self) -> Command {
        let mut command = podman::podman();
        command
            .arg("--url")
            .arg(format!("unix://{}", self.socket.display()));
        command
    }

    /// `podman ARGS` on the machine, which must succeed; its output.
    pub fn podman_ok(&self, args: &[&str]) -> String {
        let output = self.podman().args(args).output().expect("podman runs");
        assert!(
            output.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `podman/hearth-podman ARGS` on the machine, from the lab's folder.
    pub fn hearth(&self, args: &[&str]) -> std::process::Output {
        Command::new(workspace_root().join("podman/hearth-podman"))
            .args(args)
            .env(
                "PODMAN",
                format!("podman --url unix://{}", self.socket.display()),
            )
            .env("HEARTH_POD", &self.pod)
            .env("HEARTH_PODMAN_SOCKET", &self.socket)
            .current_dir(&self.dir)
            .output()
            .expect("hearth-podman runs")
    }

    /// `hearth status` once all is well (or only this machine's own disk is
    /// full): its report.
    pub fn all_well(&self) -> serde_json::Value {
        well_reported(
            || self.hearth(&["status", "--output", "json"]),
            || self.service_logs(),
        )
    }

    /// [`PodmanMachine::hearth`], which must succeed; what it printed.
    pub fn hearth_ok(&self, args: &[&str]) -> String {
        let output = self.hearth(args);
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success(),
            "hearth-podman {args:?}: {said}\n{}",
            self.service_logs()
        );
        said
    }

    /// Removes the pod and the hub's volumes (what a lost machine loses);
    /// panics when they are still there after a minute of trying (Podman
    /// 4.3 refuses to remove a container that is between running and
    /// exited, and says so by leaving the pod).
    pub fn wipe(&self) {
        let gone = wait_until(Duration::from_secs(60), || {
            self.remove_all();
            let pod = self.podman().args(["pod", "exists", &self.pod]).status();
            let volumes = self
                .podman_ok(&["volume", "ls", "--quiet"])
                .lines()
                .any(|volume| volume.starts_with(&format!("{}-", self.pod)));
            pod.is_ok_and(|status| !status.success()) && !volumes
        });
        assert!(
            gone.is_some(),
            "the pod {} or its volumes are still there: {}",
            self.pod,
            self.podman_ok(&["pod", "ps", "--all"])
        );
    }

    /// One try at removing the pod and the hub's volumes.
    fn remove_all(&self) {
        let _ = self
            .podman()
            .args(["pod", "rm", "--force", &self.pod])
            .output();
        for volume in VOLUMES {
            let _ = self
                .podman()
                .args(["volume", "rm", "--force", &format!("{}-{volume}", self.pod)])
                .output();
        }
    }
}

impl HubLogs for PodmanMachine {
    fn container_logs(&self, name: &str) -> String {
        let name = name.replace("hearth-", &format!("{}-", self.pod));
        let output = self.podman().args(["logs", "--tail", "30", &name]).output();
        output
            .map(|output| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                )
            })
            .unwrap_or_default()
    }

    fn service_logs(&self) -> String {
        ["coordinator", "agent", "gateway", "messaging"]
            .iter()
            .map(|name| {
                format!(
                    "--- {name}\n{}",
                    self.container_logs(&format!("hearth-{name}"))
                )
            })
            .collect()
    }
}

impl Drop for PodmanMachine {
    fn drop(&mut self) {
        if std::env::var_os("HEARTH_TEST_KEEP_POD").is_some() {
            eprintln!("kept: pod {} at {}", self.pod, self.socket.display());
            return;
        }
        self.remove_all();
        let _ = self
            .podman()
            .args(["network", "rm", "--force", &self.pod])
            .output();
    }
}

impl PodmanMachine {
    /// Starts Podman's service in `host`'s namespace and waits until it
    /// answers; the pod will be named after this process.
    pub fn start(lab: &mut Lab, host: &Host) -> (PodmanMachine, Process) {
        let socket = lab.dir.path().join(format!("podman-{}.sock", host.name));
        // `ip netns exec` would mount a /sys of its own, and with it lose the
        // cgroup file system the runtime needs: only the network is entered.
        let mut service = Command::new("nsenter");
        service
            .arg(format!("--net=/run/netns/{}", host.namespace))
            .arg("podman")
            .env(
                "CONTAINERS_CONF",
                workspace_root().join("podman/test/containers.conf"),
            )
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()));
        let service = lab.spawn(host, &format!("podman-service-{}", host.name), service);
        let machine = PodmanMachine {
            socket,
            pod: format!("hth{}", std::process::id() % 100_000),
            dir: lab.dir.path().to_owned(),
        };
        wait_until(Duration::from_secs(30), || {
            machine
                .podman()
                .args(["info"])
                .output()
                .is_ok_and(|out| out.status.success())
        })
        .unwrap_or_else(|| panic!("Podman's service did not answer: {}", service.log_text()));
        (machine, service)
    }

    /// The process ids of the pod's `container` (`coordinator`, `agent`,
    /// `gateway`, `messaging`) and of the conmon that watches it.
    pub fn pids(&self, container: &str) -> (u32, u32) {
        self.pids_of(&format!("{}-{container}", self.pod))
    }

    /// The process ids of the container `name` (or id) and of its conmon.
    pub fn pids_of(&self, name: &str) -> (u32, u32) {
        let output = self
            .podman()
            .args([
                "container",
                "inspect",
                "--format",
                "{{.State.Pid}} {{.State.ConmonPid}}",
                name,
            ])
            .output()
            .expect("podman runs");
        let text = String::from_utf8_lossy(&output.stdout);
        let mut numbers = text.split_whitespace().map(|n| n.parse().unwrap_or(0));
        (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0))
    }
}

/// llama-server serving `model` on `host` (0.0.0.0:[`MODEL_PORT`], outside
/// any pod), once it answers.
pub fn model_server(
    lab: &mut Lab,
    host: &Host,
    llama: &std::path::Path,
    model: &std::path::Path,
) -> Process {
    let mut server = lab.command(host, llama);
    server.arg("-m").arg(model).args([
        "--host",
        "0.0.0.0",
        "--port",
        &MODEL_PORT.to_string(),
        "-c",
        "8192",
        "--parallel",
        "1",
    ]);
    let server = lab.spawn(host, &format!("llama-server-{}", host.name), server);
    let health = format!("http://127.0.0.1:{MODEL_PORT}/health");
    wait_until(Duration::from_secs(60), || {
        lab.try_exec(host, &["curl", "-sf", &health])
            .status
            .success()
    })
    .unwrap_or_else(|| panic!("llama-server: {}", server.log_text()));
    server
}
