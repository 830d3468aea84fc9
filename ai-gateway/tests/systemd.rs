//! The shipped units run for real under systemd as PID 1: a privileged
//! Podman container whose root is an overlay of this machine's own Debian
//! system (`--rootfs /:O`, no image to download) boots systemd, with the
//! units, Hearth's binaries, llama-server and the tiny model mounted in, and
//! no network but loopback. The machine's own state is masked (empty
//! `/var/lib` and `/etc/systemd/system`), so what ran here before does not
//! change the outcome. The gateway answers an encrypted chat through
//! llama-server, which systemd starts on the first connection to the 0660
//! inference socket. Then the probe runs under each unit's own sandbox
//! (the unit with only its command swapped) and shows that writes outside
//! its paths, W+X memory and netlink sockets are denied. Needs root and
//! podman; outside CI it skips without them.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use hearth_testkit::llama::{llama_server_binary, tiny_model, workspace_root};
use hearth_testkit::podman::{self, Cleanup};
use hearth_testkit::{binary, require_tools, wait_until};
use serde_json::Value;

struct Machine {
    name: String,
}

impl Machine {
    fn exec(&self, args: &[&str]) -> Output {
        podman::podman()
            .arg("exec")
            .arg(&self.name)
            .args(args)
            .output()
            .unwrap()
    }

    fn exec_ok(&self, args: &[&str]) -> String {
        let output = self.exec(args);
        assert!(
            output.status.success(),
            "{} failed: {}{}\njournal:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.journal()
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn journal(&self) -> String {
        let output = self.exec(&[
            "journalctl",
            "--no-pager",
            "-n",
            "60",
            "-u",
            "hearth-gateway",
            "-u",
            "hearth-llama-server",
            "-u",
            "hearth-llama-proxy",
            "-u",
            "hearth-inference.socket",
        ]);
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn active(&self, unit: &str) -> bool {
        self.exec(&["systemctl", "is-active", "--quiet", unit])
            .status
            .success()
    }
}

/// `unit`'s text with its command replaced by the probe, run once, its
/// report written by systemd (outside the sandbox) to `report`.
fn probe_unit(unit: &str, probe_args: &str, report: &str) -> String {
    let mut out = String::new();
    for line in unit.lines() {
        let key = line.split('=').next().unwrap_or("");
        match key {
            "ExecStart" => out.push_str(&format!(
                "ExecStart=/usr/bin/hearth-sandbox-probe {probe_args}\n"
            )),
            "Type" => out.push_str("Type=oneshot\n"),
            "Restart" | "RestartSec" | "StandardOutput" | "StopWhenUnneeded" => {}
            "[Install]" => break,
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
        if line == "[Service]" {
            out.push_str(&format!("StandardOutput=truncate:{report}\n"));
        }
    }
    out
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn the_gateway_and_llama_server_units_run_under_systemd() {
    if require_tools(&["podman"]).is_none() {
        return;
    }
    let (Some(llama), Some(model)) = (llama_server_binary(), tiny_model()) else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path();
    // Binaries where the units name them (the packages' paths): each of
    // /usr/bin's mounted alone, llama-server's folder whole.
    let bin = root.join("bin");
    let lib = root.join("lib");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&lib).unwrap();
    for name in ["hearth-gateway", "hearth-sandbox-probe"] {
        std::fs::copy(binary(name), bin.join(name)).unwrap();
    }
    std::fs::copy(&llama, lib.join("llama-server")).unwrap();
    // The units, and the probe units made from them.
    let units = root.join("units");
    let shipped = workspace_root().join("systemd");
    for name in [
        "hearth-gateway.service",
        "hearth-llama-server.service",
        "hearth-inference.socket",
        "hearth-llama-proxy.service",
    ] {
        std::fs::create_dir_all(&units).unwrap();
        std::fs::copy(shipped.join(name), units.join(name)).unwrap();
    }
    let gateway_unit = std::fs::read_to_string(shipped.join("hearth-gateway.service")).unwrap();
    let llama_unit = std::fs::read_to_string(shipped.join("hearth-llama-server.service")).unwrap();
    let probes = [
        (
            "probe-gateway.service",
            &gateway_unit,
            "/var/lib/hearth-gateway",
        ),
        ("probe-llama.service", &llama_unit, "/var/lib/hearth-llama"),
    ];
    for (name, unit, own) in probes {
        let args = format!(
            "--write {own} --write /tmp --write /etc --write /etc/hearth/gateway --write /usr/lib/hearth --write /var/lib --write /root"
        );
        write(
            &units.join(name),
            &probe_unit(unit, &args, &format!("/run/{name}.json")),
        );
    }
    // The gateway's configuration: loopback, the model through the socket.
    write(
        &root.join("config/gateway.json5"),
        r#"{ gateway: { port: 18789, bind: "loopback" },
  models: { providers: { llamacpp: { baseUrl: "unix:/run/hearth-inference/inference.sock", api: "openai-completions",
    timeoutSeconds: 30, models: [{ id: "tiny", contextWindow: 2048, maxTokens: 24 }] } } },
  agents: { defaults: { model: { primary: "llamacpp/tiny" } } },
  hearth: { dataDir: "/var/lib/hearth-gateway" } }"#,
    );
    std::fs::create_dir_all(root.join("model")).unwrap();
    std::fs::copy(&model, root.join("model/model.gguf")).unwrap();

    let name = format!("hearth-test-systemd-{}", std::process::id());
    let mut cleanup = Cleanup::default();
    cleanup.containers.push(name.clone());
    let mount = |from: &Path, to: &str| format!("{}:{to}:ro", from.display());
    let mut run = podman::podman();
    run.args([
        "run",
        "--detach",
        "--name",
        &name,
        "--privileged",
        "--network",
        "none",
    ])
    .args([
        "--tmpfs",
        "/tmp:rw,notmpcopyup",
        "--tmpfs",
        "/run:rw,notmpcopyup",
        "--tmpfs",
        "/var/tmp:rw,notmpcopyup",
        // Hermetic: none of this machine's own state (a /var/lib/hearth-gateway
        // left by a gateway that ran here, units it has installed and enabled)
        // is seen inside; only what the test mounts.
        "--tmpfs",
        "/var/lib:rw,notmpcopyup",
        "--tmpfs",
        "/etc/systemd/system:rw,notmpcopyup",
    ])
    .args([
        "--volume",
        &mount(&bin.join("hearth-gateway"), "/usr/bin/hearth-gateway"),
    ])
    .args([
        "--volume",
        &mount(
            &bin.join("hearth-sandbox-probe"),
            "/usr/bin/hearth-sandbox-probe",
        ),
    ])
    .args(["--volume", &mount(&lib, "/usr/lib/hearth")])
    .args([
        "--volume",
        &mount(&root.join("config"), "/etc/hearth/gateway"),
    ])
    .args(["--volume", &mount(&root.join("model"), "/srv/hearth-model")])
    .args([
        "--volume",
        &mount(
            &workspace_root().join("systemd/hearth.sysusers.conf"),
            "/etc/sysusers.d/hearth.conf",
        ),
    ]);
    for entry in std::fs::read_dir(&units).unwrap() {
        let path = entry.unwrap().path();
        let target = format!(
            "/etc/systemd/system/{}",
            path.file_name().unwrap().to_str().unwrap()
        );
        run.args(["--volume", &mount(&path, &target)]);
    }
    run.args(["--rootfs", "/:O", "/lib/systemd/systemd"]);
    let started = run.output().unwrap();
    assert!(
        started.status.success(),
        "podman run: {}",
        String::from_utf8_lossy(&started.stderr)
    );
    let machine = Machine { name: name.clone() };
    let booted = wait_until(Duration::from_secs(60), || {
        let state = machine.exec(&["systemctl", "is-system-running"]);
        let state = String::from_utf8_lossy(&state.stdout);
        state.starts_with("running") || state.starts_with("degraded")
    });
    assert!(booted.is_some(), "systemd did not boot");
    assert_eq!(
        machine.exec_ok(&["cat", "/proc/1/comm"]).trim(),
        "systemd",
        "systemd is PID 1"
    );

    // Users from the shipped sysusers file; the model in llama-server's state directory.
    machine.exec_ok(&["systemd-sysusers"]);
    machine.exec_ok(&[
        "install",
        "-d",
        "-o",
        "hearth-llama",
        "-g",
        "hearth-llama",
        "-m",
        "0750",
        "/var/lib/hearth-llama",
    ]);
    machine.exec_ok(&[
        "install",
        "-o",
        "hearth-llama",
        "-g",
        "hearth-llama",
        "-m",
        "0640",
        "/srv/hearth-model/model.gguf",
        "/var/lib/hearth-llama/model.gguf",
    ]);
    machine.exec_ok(&["systemctl", "daemon-reload"]);
    machine.exec_ok(&["systemctl", "start", "hearth-inference.socket"]);
    let socket = machine.exec_ok(&[
        "stat",
        "-c",
        "%a %U %G",
        "/run/hearth-inference/inference.sock",
    ]);
    assert_eq!(socket.trim(), "660 root hearth-inference");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !machine.active("hearth-llama-server.service"),
        "llama-server waits for its first connection"
    );

    // The gateway's first call to the model (its health probe) starts llama-server.
    machine.exec_ok(&["systemctl", "start", "hearth-gateway.service"]);
    assert!(
        machine.active("hearth-gateway.service"),
        "{}",
        machine.journal()
    );
    let up = wait_until(Duration::from_secs(10), || {
        machine
            .exec(&["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/18789"])
            .status
            .success()
    });
    assert!(
        up.is_some(),
        "the gateway does not listen: {}",
        machine.journal()
    );
    let answer = machine.exec_ok(&[
        "env",
        "HOME=/tmp",
        "/usr/bin/hearth-gateway",
        "chat",
        "--url",
        "http://127.0.0.1:18789",
        "What should we cook tonight?",
    ]);
    assert!(!answer.trim().is_empty(), "an answer from the model");
    assert!(
        machine.active("hearth-llama-server.service"),
        "socket activation started llama-server: {}",
        machine.journal()
    );
    let owner = machine.exec_ok(&["ps", "-o", "user=", "-C", "llama-server"]);
    assert_eq!(
        owner.trim(),
        "hearth-llama",
        "llama-server runs as its own user"
    );

    // Each sandbox, probed.
    for (unit, _, own) in probes {
        machine.exec_ok(&["systemctl", "start", unit]);
        let report: Value =
            serde_json::from_str(&machine.exec_ok(&["cat", &format!("/run/{unit}.json")])).unwrap();
        println!("{unit}: {report}");
        assert_eq!(
            report["writes"][own], "ok",
            "{unit} writes its state: {report}"
        );
        assert_eq!(
            report["writes"]["/tmp"], "ok",
            "{unit} has a private /tmp: {report}"
        );
        for denied in [
            "/etc",
            "/etc/hearth/gateway",
            "/usr/lib/hearth",
            "/var/lib",
            "/root",
        ] {
            assert_ne!(
                report["writes"][denied], "ok",
                "{unit} must not write {denied}: {report}"
            );
        }
        assert_ne!(
            report["wx_memory"], "ok",
            "{unit}: W+X memory must be denied: {report}"
        );
        assert_ne!(
            report["netlink"], "ok",
            "{unit}: netlink must be denied: {report}"
        );
        assert_eq!(report["no_new_privs"], "1", "{unit}: {report}");
        assert_eq!(report["cap_eff"], "0000000000000000", "{unit}: {report}");
    }
    drop(cleanup);
}
