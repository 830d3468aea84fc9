//! A whole Debian machine for the appliance's tests: systemd as PID 1 in a
//! privileged Podman container whose root is an overlay of a Debian system:
//! a clean server's made by debootstrap (`debian_root`, what the appliance
//! test installs on), or this machine's own (no download; Hearth's own
//! paths of this machine, a hub that ran here, hidden from it). The
//! overlay's upper layer is the test's own folder, so everything the
//! machine writes can be listed (what a package left behind) and survives a
//! restart, and the system beneath is never written; Podman inside gets
//! storage of its own. It may live in a lab host's network namespace.
//! Dropping it removes the container and unmounts the overlay.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::lab::{run, skip};
use crate::llama::workspace_root;
use crate::podman::{self, podman_ok};
use crate::wait_until;

/// A clean Debian bookworm server's root (debootstrap's minimal system with
/// systemd, and in apt's cache what the hub's packages install), made once
/// by `scripts/debian-root.sh` into the cache; a skip when it cannot be
/// made (a failure under `CI=true`).
pub fn debian_root() -> Option<PathBuf> {
    let output = Command::new(workspace_root().join("scripts/debian-root.sh"))
        .stderr(std::process::Stdio::inherit())
        .output();
    match output {
        Ok(output) if output.status.success() => Some(PathBuf::from(
            String::from_utf8_lossy(&output.stdout).trim(),
        )),
        Ok(_) => skip("scripts/debian-root.sh could not make a Debian root"),
        Err(error) => skip(&format!("scripts/debian-root.sh cannot run: {error}")),
    }
}

/// Paths of this machine a test machine must not see (they would be
/// there if Hearth was ever installed here).
const HIDDEN: [&str; 13] = [
    "etc/hearth",
    "etc/systemd/system",
    "var/lib/hearth",
    "var/lib/hearth-agent",
    "var/lib/hearth-gateway",
    "var/lib/hearth-messaging",
    "var/lib/hearth-hub",
    "var/lib/hearth-llama",
    "usr/share/hearth",
    "usr/lib/hearth",
    "usr/bin/hearth",
    "usr/bin/hearth-coordinator",
    "usr/bin/hearth-agent",
];

/// A booted machine.
pub struct Machine {
    /// The container's name.
    pub name: String,
    /// The overlay's upper layer: everything the machine wrote.
    pub upper: PathBuf,
    root: PathBuf,
}

impl Machine {
    /// Boots a machine over this machine's own system, named `name` in
    /// `dir`, in the network namespace `namespace` (none: loopback only),
    /// with `mounts` (host path, machine path) read-only.
    pub fn boot(
        dir: &Path,
        name: &str,
        namespace: Option<&str>,
        mounts: &[(&Path, &str)],
    ) -> Machine {
        Machine::boot_on(Path::new("/"), dir, name, namespace, mounts)
    }

    /// Boots a machine over the Debian system at `system` (`/`, or a root
    /// from `debian_root`), as `boot` does.
    pub fn boot_on(
        system: &Path,
        dir: &Path,
        name: &str,
        namespace: Option<&str>,
        mounts: &[(&Path, &str)],
    ) -> Machine {
        let upper = dir.join("upper");
        let work = dir.join("work");
        let root = dir.join("root");
        let storage = dir.join("containers");
        for made in [&upper, &work, &root, &storage] {
            std::fs::create_dir_all(made).expect("the machine's folders");
        }
        // Over this machine's system, whiteouts (character devices 0/0)
        // hide this machine's Hearth, and the machine gets its own Podman
        // settings: systemd manages its cgroups (it is the machine's init,
        // in a cgroup namespace of its own); runc, and events in a file, as
        // on this project's machines. A clean server keeps Debian's own.
        if system == Path::new("/") {
            for hidden in HIDDEN {
                let path = upper.join(hidden);
                std::fs::create_dir_all(path.parent().expect("a parent")).expect("a folder");
                run(Command::new("mknod").arg(&path).args(["c", "0", "0"]));
            }
            std::fs::create_dir_all(upper.join("etc/containers")).expect("a folder");
            std::fs::write(
                upper.join("etc/containers/containers.conf"),
                "[containers]\ndefault_ulimits=[\"nofile=20000:20000\",\"nproc=4096:4096\"]\n\
                 [engine]\nruntime=\"runc\"\ncgroup_manager=\"systemd\"\nevents_logger=\"file\"\n",
            )
            .expect("containers.conf");
        }
        run(Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(format!(
                "lowerdir={},upperdir={},workdir={}",
                system.display(),
                upper.display(),
                work.display()
            ))
            .arg(&root));
        let machine = Machine {
            name: name.to_owned(),
            upper,
            root,
        };
        let mut command = podman::podman();
        command.args([
            "run",
            "--detach",
            "--name",
            name,
            "--hostname",
            name,
            "--privileged",
        ]);
        // A cgroup namespace of its own: systemd inside sees its cgroups as
        // its whole tree, and the machine's Podman nests under it.
        command.arg("--cgroupns=private");
        match namespace {
            Some(namespace) => command.args(["--network", &format!("ns:/run/netns/{namespace}")]),
            None => command.args(["--network", "none"]),
        };
        command.args([
            "--tmpfs",
            "/tmp:rw,notmpcopyup",
            "--tmpfs",
            "/run:rw,notmpcopyup",
            "--tmpfs",
            "/var/tmp:rw,notmpcopyup",
        ]);
        command
            .arg("--volume")
            .arg(format!("{}:/var/lib/containers", storage.display()));
        for (from, to) in mounts {
            command
                .arg("--volume")
                .arg(format!("{}:{to}:ro", from.display()));
        }
        command
            .arg("--rootfs")
            .arg(&machine.root)
            .arg("/lib/systemd/systemd");
        let started = command.output().expect("podman runs");
        assert!(
            started.status.success(),
            "podman run: {}",
            String::from_utf8_lossy(&started.stderr)
        );
        machine.wait_booted();
        machine
    }

    /// Waits until systemd says the machine is up (running or degraded).
    pub fn wait_booted(&self) {
        let booted = wait_until(Duration::from_secs(120), || {
            let state = self.exec(&["systemctl", "is-system-running"]);
            let state = String::from_utf8_lossy(&state.stdout);
            state.starts_with("running") || state.starts_with("degraded")
        });
        assert!(
            booted.is_some(),
            "systemd did not boot: {}",
            String::from_utf8_lossy(&self.exec(&["systemctl", "--failed", "--no-pager"]).stdout)
        );
    }

    /// Runs `args` in the machine.
    pub fn exec(&self, args: &[&str]) -> Output {
        podman::podman()
            .arg("exec")
            .arg(&self.name)
            .args(args)
            .output()
            .expect("podman exec runs")
    }

    /// Runs `args` in the machine, failing with its output unless it succeeds; its stdout.
    pub fn exec_ok(&self, args: &[&str]) -> String {
        let output = self.exec(args);
        assert!(
            output.status.success(),
            "{} failed in the machine ({}):\n{}{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `bash -c script` in the machine.
    pub fn shell(&self, script: &str) -> Output {
        self.exec(&["bash", "-c", script])
    }

    /// The last lines the units matching `pattern` logged.
    pub fn journal(&self, pattern: &str) -> String {
        String::from_utf8_lossy(
            &self
                .exec(&["journalctl", "--no-pager", "-n", "80", "-u", pattern])
                .stdout,
        )
        .into_owned()
    }

    /// Stops the machine (systemd shuts down) and starts it again.
    pub fn restart(&self) {
        podman_ok(&["stop", "--time", "60", &self.name]);
        podman_ok(&["start", &self.name]);
        self.wait_booted();
    }

    /// Copies `from` in the machine to `to` on the host.
    pub fn copy_out(&self, from: &str, to: &Path) {
        podman_ok(&[
            "cp",
            &format!("{}:{from}", self.name),
            &to.to_string_lossy(),
        ]);
    }

    /// Copies `from` on the host to `to` in the machine.
    pub fn copy_in(&self, from: &Path, to: &str) {
        podman_ok(&[
            "cp",
            &from.to_string_lossy(),
            &format!("{}:{to}", self.name),
        ]);
    }

    /// What the machine wrote whose path names Hearth, or that belongs to
    /// one of `owners` (user ids): what a removed package left behind.
    /// Whiteouts (the overlay's record of a deletion, and the hidden
    /// paths) are not things left.
    pub fn written(&self, owners: &[u32]) -> Vec<String> {
        use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
        let mut found = Vec::new();
        let mut stack = vec![self.upper.clone()];
        while let Some(path) = stack.pop() {
            let Ok(metadata) = path.symlink_metadata() else {
                continue;
            };
            let relative = path
                .strip_prefix(&self.upper)
                .expect("beneath the upper layer")
                .to_string_lossy()
                .into_owned();
            let whiteout = metadata.file_type().is_char_device() && metadata.rdev() == 0;
            if !relative.is_empty()
                && !whiteout
                && (relative.to_lowercase().contains("hearth") || owners.contains(&metadata.uid()))
            {
                found.push(relative);
            }
            if metadata.is_dir()
                && let Ok(entries) = std::fs::read_dir(&path)
            {
                stack.extend(entries.filter_map(Result::ok).map(|entry| entry.path()));
            }
        }
        found.sort();
        found
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        let _ = podman::podman()
            .args(["rm", "--force", "--time", "10", &self.name])
            .output();
        let _ = Command::new("umount").arg(&self.root).output();
    }
}
