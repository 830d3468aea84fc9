//! Podman for the deployment tests: the project's containers.conf (runc,
//! cgroupfs, events to a file: what works without systemd as PID 1), image
//! builds through the shipped script, the static sandbox probe, and a guard
//! that removes everything a test created.

use std::path::PathBuf;
use std::process::Command;

use crate::lab::{require_tools, run, skip};
use crate::llama::workspace_root;

/// The musl target the images are built for.
pub const MUSL: &str = "x86_64-unknown-linux-musl";

/// `podman` with the project's containers.conf unless one is set.
pub fn podman() -> Command {
    let mut command = Command::new("podman");
    if std::env::var_os("CONTAINERS_CONF").is_none() {
        command.env(
            "CONTAINERS_CONF",
            workspace_root().join("podman/test/containers.conf"),
        );
    }
    command
}

/// Runs podman with `args`, failing the test with its stderr unless it succeeds.
pub fn podman_ok(args: &[&str]) -> String {
    String::from_utf8_lossy(&run(podman().args(args)).stdout).into_owned()
}

/// Whether podman, root, the musl target and musl-gcc are here (a skip, or
/// in CI a failure, otherwise).
pub fn available() -> Option<()> {
    require_tools(&["podman", "musl-gcc", "rustup", "objcopy", "file"])?;
    let targets = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .ok()?;
    if !String::from_utf8_lossy(&targets.stdout)
        .lines()
        .any(|line| line == MUSL)
    {
        return skip(&format!(
            "the Rust target {MUSL} is not installed (rustup target add {MUSL})"
        ));
    }
    Some(())
}

/// Builds the images of `components` with podman/build-images.sh.
pub fn build_images(components: &[&str]) {
    build_images_with(components, &[]);
}

/// Builds the images of `components` with podman/build-images.sh and
/// `env` added to its environment (`HEARTH_COMPUTE_MODEL` for `compute`).
pub fn build_images_with(components: &[&str], env: &[(&str, &std::path::Path)]) {
    let _guard = crate::lab::build_lock();
    let conf = std::env::var_os("CONTAINERS_CONF")
        .unwrap_or_else(|| workspace_root().join("podman/test/containers.conf").into());
    run(
        Command::new(workspace_root().join("podman/build-images.sh"))
            .args(components)
            .env("CONTAINERS_CONF", conf)
            .envs(env.iter().copied())
            .current_dir(workspace_root()),
    );
}

/// The sandbox probe, built static so it runs in a `FROM scratch` image:
/// by podman/build-images.sh, with the images' binaries (one build for all).
pub fn static_probe() -> PathBuf {
    let _guard = crate::lab::build_lock();
    run(
        Command::new(workspace_root().join("podman/build-images.sh"))
            .arg("--binaries")
            .current_dir(workspace_root()),
    );
    // target/<profile>/ for the tests; the static build is beside it.
    let target = crate::lab::target_dir();
    target
        .parent()
        .expect("target/<profile>")
        .join(format!("{MUSL}/release/hearth-sandbox-probe"))
}

/// Removes, when dropped, the podman objects a test created.
#[derive(Default)]
pub struct Cleanup {
    /// `podman kube down` these files first.
    pub kube: Vec<PathBuf>,
    /// Containers (removed with `--force`).
    pub containers: Vec<String>,
    /// Pods.
    pub pods: Vec<String>,
    /// Volumes.
    pub volumes: Vec<String>,
    /// Networks.
    pub networks: Vec<String>,
    /// Secrets.
    pub secrets: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for file in &self.kube {
            let _ = podman().args(["kube", "down"]).arg(file).output();
        }
        for (kind, names) in [
            ("container", &self.containers),
            ("pod", &self.pods),
            ("volume", &self.volumes),
            ("network", &self.networks),
        ] {
            for name in names {
                let _ = podman().args([kind, "rm", "--force", name]).output();
            }
        }
        for name in &self.secrets {
            let _ = podman().args(["secret", "rm", name]).output();
        }
    }
}
