//! The official Tailscale client (`tailscaled` in userspace-networking
//! mode, logs off) running in a lab host against a lab coordinator.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use super::{Host, Lab, LabCoordinator, Process, wait_until};

/// A `tailscaled` in a lab host, and its CLI.
pub struct TailscaleNode {
    /// Its host.
    pub host: Host,
    /// Its state directory (also holds its socket).
    pub state: PathBuf,
    /// Where `tailscaled` and `tailscale` are.
    pub client: PathBuf,
    /// The coordinator's certificate, trusted through `SSL_CERT_FILE`;
    /// `None`: the device trusts only the system's authorities (as a phone
    /// that cannot install a certificate).
    pub certificate: Option<PathBuf>,
    /// The daemon.
    pub daemon: Process,
}

impl TailscaleNode {
    /// Its control socket.
    pub fn socket(&self) -> PathBuf {
        self.state.join("tailscaled.sock")
    }

    /// A `tailscale` command against this daemon, run in its host.
    pub fn command(&self, lab: &Lab, args: &[&str]) -> std::process::Command {
        let mut command = lab.command(&self.host, self.client.join("tailscale"));
        command
            .arg("--socket")
            .arg(self.socket())
            .args(args)
            .env("TS_NO_LOGS_NO_SUPPORT", "1")
            // `tailscale ssh` writes its known_hosts under the user's
            // configuration directory: the device's own, here.
            .env("XDG_CONFIG_HOME", &self.state);
        if let Some(certificate) = &self.certificate {
            command.env("SSL_CERT_FILE", certificate);
        }
        command
    }

    /// Runs `tailscale ARGS` and returns its output.
    pub fn cli(&self, lab: &Lab, args: &[&str]) -> Output {
        self.command(lab, args).output().expect("tailscale runs")
    }

    /// `tailscale up --login-server URL --authkey KEY --hostname NAME` with
    /// `extra` arguments.
    pub fn up(&self, lab: &Lab, coordinator: &LabCoordinator, key: &str, extra: &[&str]) -> Output {
        self.up_at(lab, &format!("https://{}", coordinator.address), key, extra)
    }

    /// `tailscale up` against the login server at `login`.
    pub fn up_at(&self, lab: &Lab, login: &str, key: &str, extra: &[&str]) -> Output {
        self.up_as(lab, login, key, &self.host.name, extra)
    }

    /// [`TailscaleNode::up_at`] asking to be called `hostname`.
    pub fn up_as(
        &self,
        lab: &Lab,
        login: &str,
        key: &str,
        hostname: &str,
        extra: &[&str],
    ) -> Output {
        let mut args = vec![
            "up",
            "--login-server",
            login,
            "--authkey",
            key,
            "--hostname",
            hostname,
        ];
        args.extend_from_slice(extra);
        self.cli(lab, &args)
    }

    /// `tailscale status --json`, parsed, if it answers.
    pub fn status(&self, lab: &Lab) -> Option<serde_json::Value> {
        let output = self.cli(lab, &["status", "--json"]);
        serde_json::from_slice(&output.stdout).ok()
    }

    /// Its backend state (`Running`, `NeedsMachineAuth`, ...).
    pub fn backend_state(&self, lab: &Lab) -> String {
        self.status(lab)
            .and_then(|status| status["BackendState"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// The MagicDNS names (`name.domain.`) of its peers.
    pub fn peer_dns_names(&self, lab: &Lab) -> Vec<String> {
        let Some(status) = self.status(lab) else {
            return Vec::new();
        };
        let mut names: Vec<String> = status["Peer"]
            .as_object()
            .map(|peers| {
                peers
                    .values()
                    .filter_map(|peer| peer["DNSName"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Its own mesh IPv4 address, once it has one.
    pub fn ipv4(&self, lab: &Lab) -> Option<std::net::Ipv4Addr> {
        let output = self.cli(lab, &["ip", "-4"]);
        String::from_utf8_lossy(&output.stdout).trim().parse().ok()
    }
}

impl Lab {
    /// Three official clients joined with `key` (a file): "relay" on the
    /// internet side, "alpha" and "beta" behind symmetric NATs (so they
    /// cannot meet directly), under a policy that lets anyone reach anyone
    /// and relay for anyone (`tailscale.com/cap/relay`). The relay's port
    /// is left closed (`tailscale set --relay-server-port=40000` opens it).
    pub fn official_clients_around_a_peer_relay(
        &mut self,
        coordinator: &LabCoordinator,
        client: &Path,
        key: &Path,
    ) -> [TailscaleNode; 3] {
        let policy = self.dir.path().join("relay-policy.json");
        std::fs::write(
            &policy,
            r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
                "grants": [{"src": ["*"], "dst": ["*"], "app": {"tailscale.com/cap/relay": []}}]}"#,
        )
        .expect("the policy file");
        coordinator.cli_ok(&["policy", "set", &policy.to_string_lossy()]);
        let token = std::fs::read_to_string(key).expect("the key file");
        let one = self.nat_site("mobile", 2, super::Nat::Symmetric);
        let two = self.nat_site("cafe", 3, super::Nat::Symmetric);
        let hosts = [
            self.host("relay"),
            self.site_host(&one, "alpha"),
            self.site_host(&two, "beta"),
        ];
        hosts.map(|host| {
            let node = self.start_tailscaled(&host, coordinator, client);
            let up = node.up(self, coordinator, token.trim(), &["--timeout", "30s"]);
            assert!(
                up.status.success(),
                "tailscale up on {}: {}",
                host.name,
                String::from_utf8_lossy(&up.stderr)
            );
            node
        })
    }

    /// An official client in `host` joined with the pre-approved key in
    /// `key_file` and serving as a peer relay on UDP `port` (`tailscale
    /// set --relay-server-port`).
    pub fn start_tailscale_relay(
        &mut self,
        host: &Host,
        coordinator: &LabCoordinator,
        client: &Path,
        key_file: &Path,
        port: u16,
    ) -> TailscaleNode {
        let relay = self.start_tailscaled(host, coordinator, client);
        let token = std::fs::read_to_string(key_file).expect("the key file");
        let up = relay.up(self, coordinator, token.trim(), &["--timeout", "30s"]);
        assert!(
            up.status.success(),
            "{}",
            String::from_utf8_lossy(&up.stderr)
        );
        let set = relay.cli(self, &["set", &format!("--relay-server-port={port}")]);
        assert!(
            set.status.success(),
            "{}",
            String::from_utf8_lossy(&set.stderr)
        );
        relay
    }

    /// Starts `tailscaled` (userspace networking, logs off) in `host`,
    /// trusting `coordinator`'s certificate; `client` is the directory
    /// holding the official binaries.
    pub fn start_tailscaled(
        &mut self,
        host: &Host,
        coordinator: &LabCoordinator,
        client: &Path,
    ) -> TailscaleNode {
        let certificate = coordinator.state.join("tls/server.crt");
        self.start_tailscaled_trusting(host, Some(certificate), client)
    }

    /// Starts `tailscaled` in `host` trusting `certificate` besides the
    /// system's authorities (`None`: only those, like a phone).
    pub fn start_tailscaled_trusting(
        &mut self,
        host: &Host,
        certificate: Option<PathBuf>,
        client: &Path,
    ) -> TailscaleNode {
        self.start_tailscaled_with(host, certificate, client, &[], &[])
    }

    /// [`Lab::start_tailscaled_trusting`] with `extra` arguments and
    /// environment `env` for the daemon.
    pub fn start_tailscaled_with(
        &mut self,
        host: &Host,
        certificate: Option<PathBuf>,
        client: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> TailscaleNode {
        let state = self.dir.path().join(format!("{}-tailscale", host.name));
        std::fs::create_dir_all(&state).expect("tailscale state dir");
        let mut command = self.command(host, client.join("tailscaled"));
        command
            .args([
                "--tun=userspace-networking",
                "--no-logs-no-support",
                "--port",
                "41641",
            ])
            .arg("--statedir")
            .arg(&state)
            .arg("--socket")
            .arg(state.join("tailscaled.sock"))
            .env("TS_NO_LOGS_NO_SUPPORT", "1")
            // Its log configuration goes here, not to /var/lib/tailscale.
            .env("TS_LOGS_DIR", &state)
            .args(extra)
            .envs(env.iter().copied());
        if let Some(certificate) = &certificate {
            command.env("SSL_CERT_FILE", certificate);
        }
        let daemon = self.spawn(host, &format!("{}-tailscaled", host.name), command);
        let node = TailscaleNode {
            host: host.clone(),
            state,
            client: client.to_owned(),
            certificate,
            daemon,
        };
        wait_until(Duration::from_secs(20), || node.socket().exists())
            .unwrap_or_else(|| panic!("tailscaled did not start:\n{}", node.daemon.log_text()));
        node
    }
}
