//! A real `hearth-coordinator` process on loopback with its state in a
//! temporary directory, the real CLI, and devices registering through the
//! agent's client library: the coordinator's integration tests.
// A test harness: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use hearth_control::tls::{ClientIdentity, generate_key_request};
use hearth_control::wire::{
    MapChange, MapMessage, RegisterRequest, RegisterResponse, WireGuardKey, encode_der,
};
use hearth_control::{ClientError, ControlClient, JoinToken, MessageStream, SecretString};

/// The coordinator binary (built if missing).
pub fn coordinator_binary() -> PathBuf {
    crate::lab::binary("hearth-coordinator")
}

/// A free loopback TCP port (bound then released).
pub fn free_port() -> u16 {
    crate::llama::free_port()
}

/// A free loopback UDP port (bound then released).
pub fn free_udp_port() -> u16 {
    crate::llama::free_udp_port()
}

enum Ready {
    Yes,
    AddressInUse,
}

/// The coordinator's log in its folder.
const LOG: &str = "coordinator.log";

/// A running coordinator process.
pub struct Server {
    /// Its state directory.
    pub state: PathBuf,
    /// Its HTTPS address.
    pub address: SocketAddr,
    /// Its STUN address.
    pub stun: SocketAddr,
    /// The process.
    pub child: Child,
    /// The folder its stderr goes to ([`LOG`]), a restart's too (never
    /// beside the state: a state that is itself a temporary folder would
    /// leave its log in the machine's `/tmp`).
    logs: std::sync::Arc<tempfile::TempDir>,
    /// The extra arguments it was started with (a restart keeps them).
    extra: Vec<String>,
}

/// A coordinator to start, with extra flags.
pub struct ServerBuilder {
    state: PathBuf,
    extra: Vec<String>,
    address: Option<SocketAddr>,
    descriptors: Option<u64>,
}

impl ServerBuilder {
    /// Listen on `address` (to restart a server where its tokens point).
    pub fn address(mut self, address: SocketAddr) -> Self {
        self.address = Some(address);
        self
    }

    /// Passes one more argument to `serve`.
    pub fn arg(mut self, arg: &str) -> Self {
        self.extra.push(arg.to_owned());
        self
    }

    /// Run with this open-file limit (soft and hard), through `prlimit`.
    pub fn descriptor_limit(mut self, limit: u64) -> Self {
        self.descriptors = Some(limit);
        self
    }

    /// Starts it (on fresh ports unless [`ServerBuilder::address`] fixed one).
    pub fn start(self) -> Server {
        Server::launch_limited(
            &self.state,
            &self.extra,
            self.address,
            self.descriptors,
            None,
        )
    }
}

impl Server {
    /// A builder for a coordinator on `state`.
    pub fn builder(state: &Path) -> ServerBuilder {
        ServerBuilder {
            state: state.to_owned(),
            extra: Vec::new(),
            address: None,
            descriptors: None,
        }
    }

    /// Starts a coordinator on `state` with the defaults.
    pub fn start(state: &Path) -> Server {
        Server::start_with(state, &[])
    }

    /// Starts again on the same state dir and address, after this one has
    /// stopped (a running one would answer in its place).
    pub fn restart(&mut self) -> Server {
        assert!(
            matches!(self.child.try_wait(), Ok(Some(_))),
            "restart only a coordinator that has stopped (sigterm or kill9 first)"
        );
        Server::launch_limited(
            &self.state,
            &self.extra,
            Some(self.address),
            None,
            Some(std::sync::Arc::clone(&self.logs)),
        )
    }

    /// Starts a coordinator on `state` with `extra` arguments to `serve`.
    pub fn start_with(state: &Path, extra: &[String]) -> Server {
        Server::launch_limited(state, extra, None, None, None)
    }

    /// Starts a coordinator. Ports are picked free just before the launch, so
    /// another process can still take one in between; when the server exits
    /// because an address is in use, it is launched again on fresh ports
    /// (the HTTPS address stays fixed when the caller chose it). Its log
    /// goes on in `logs` (a restart's) or starts in a folder of its own.
    fn launch_limited(
        state: &Path,
        extra: &[String],
        address: Option<SocketAddr>,
        descriptors: Option<u64>,
        logs: Option<std::sync::Arc<tempfile::TempDir>>,
    ) -> Server {
        std::fs::create_dir_all(state).unwrap();
        let logs = logs.unwrap_or_else(|| {
            std::sync::Arc::new(tempfile::tempdir().expect("a folder for the log"))
        });
        let log = logs.path().join(LOG);
        for _attempt in 0..5 {
            let listen =
                address.unwrap_or_else(|| format!("127.0.0.1:{}", free_port()).parse().unwrap());
            let stun: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
            // Where this attempt's lines start in the shared log.
            let log_start = std::fs::metadata(&log).map_or(0, |meta| meta.len() as usize);
            let log_file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .unwrap();
            let mut command = match descriptors {
                Some(limit) => {
                    let mut command = Command::new("prlimit");
                    command
                        .arg(format!("--nofile={limit}:{limit}"))
                        .arg(coordinator_binary());
                    command
                }
                None => Command::new(coordinator_binary()),
            };
            let child = command
                .arg("--state-dir")
                .arg(state)
                .arg("serve")
                .arg("--listen")
                .arg(listen.to_string())
                .arg("--stun-listen")
                .arg(stun.to_string())
                .args(database_args(state, extra))
                .args(extra)
                .env("HEARTH_LOG", "debug")
                .stdout(Stdio::null())
                .stderr(log_file)
                .spawn()
                .expect("coordinator starts");
            let mut server = Server {
                state: state.to_owned(),
                address: listen,
                stun,
                child,
                logs: std::sync::Arc::clone(&logs),
                extra: extra.to_vec(),
            };
            match server.wait_ready(log_start) {
                Ready::Yes => {
                    let postgres = !database_args(state, extra).is_empty()
                        || extra.iter().any(|arg| arg.starts_with("postgres"));
                    if postgres {
                        assert!(
                            server.log_text()[log_start..].contains("state kept in PostgreSQL"),
                            "the coordinator was meant to run on PostgreSQL"
                        );
                    }
                    return server;
                }
                Ready::AddressInUse => continue,
            }
        }
        panic!(
            "coordinator found no free port in five attempts; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Waits until the server answers; `log_start` is where this launch's
    /// lines begin in the log.
    fn wait_ready(&mut self, log_start: usize) -> Ready {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            // The socket file of a killed server stays behind: ready means it answers.
            let admin_ready =
                std::os::unix::net::UnixStream::connect(self.state.join("admin.sock")).is_ok();
            if admin_ready && crate::llama::port_answers(self.address) {
                return Ready::Yes;
            }
            if let Ok(Some(_status)) = self.child.try_wait() {
                if self
                    .log_text()
                    .get(log_start..)
                    .is_some_and(|lines| lines.contains("Address already in use"))
                {
                    return Ready::AddressInUse;
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "coordinator did not become ready; log:\n{}",
            self.log_text()
        );
    }

    /// Everything it logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.logs.path().join(LOG)).unwrap_or_default()
    }

    /// Runs the CLI against this server's state dir.
    pub fn cli(&self, args: &[&str]) -> Output {
        cli(&self.state, args)
    }

    /// Runs the CLI and returns stdout, failing the test on a non-zero exit.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let output = self.cli(args);
        assert!(
            output.status.success(),
            "`hearth-coordinator {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Creates a key with the CLI and returns its join token.
    pub fn token(&self, args: &[&str]) -> JoinToken {
        let mut all = vec!["preauthkeys", "create"];
        all.extend_from_slice(args);
        JoinToken::decode(self.cli_ok(&all).trim()).unwrap()
    }

    /// `nodes list --output json`, parsed.
    pub fn nodes_json(&self) -> Vec<serde_json::Value> {
        serde_json::from_str(&self.cli_ok(&["nodes", "list", "--output", "json"])).unwrap()
    }

    /// `preauthkeys list --output json`, parsed.
    pub fn keys_json(&self) -> Vec<serde_json::Value> {
        serde_json::from_str(&self.cli_ok(&["preauthkeys", "list", "--output", "json"])).unwrap()
    }

    /// SIGTERM, and its exit status.
    pub fn sigterm(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.wait_exit(Duration::from_secs(20))
    }

    /// SIGKILL.
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Waits up to `limit` for the exit.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "coordinator did not exit; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the CLI against the state dir `state`.
pub fn cli(state: &Path, args: &[&str]) -> Output {
    Command::new(coordinator_binary())
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .output()
        .expect("CLI runs")
}

/// A fresh X25519 public key.
pub fn wireguard_key() -> WireGuardKey {
    let secret = x25519_dalek::StaticSecret::random();
    WireGuardKey(x25519_dalek::PublicKey::from(&secret).to_bytes())
}

/// A device registered through the agent's client library.
pub struct Device {
    /// What the coordinator answered.
    pub response: RegisterResponse,
    /// A client with the certificate it issued.
    pub client: ControlClient,
}

impl Device {
    /// Its node id.
    pub fn id(&self) -> u64 {
        self.response.node.id
    }
}

/// A registration request for `hostname` with `token`, and the key of its certificate request.
pub fn request(token: &JoinToken, hostname: &str) -> (RegisterRequest, SecretString) {
    let key_request = generate_key_request(hostname).unwrap();
    let request = RegisterRequest {
        auth_key: token.key.clone(),
        wireguard_key: wireguard_key(),
        hostname: hostname.into(),
        os: "linux".into(),
        csr_der: encode_der(&key_request.csr_der),
    };
    (request, key_request.key_pem)
}

/// Registers `hostname` with `token`; the device, or why not.
pub async fn try_register(token: &JoinToken, hostname: &str) -> Result<Device, ClientError> {
    let anonymous = ControlClient::new(&token.url, token.fingerprint, None)?;
    let (request, key_pem) = request(token, hostname);
    let response = anonymous.register(&request).await?;
    let identity = ClientIdentity {
        certificate_pem: response.client_certificate_pem.clone(),
        key_pem,
    };
    let client = ControlClient::new(&token.url, token.fingerprint, Some(&identity))?;
    Ok(Device { response, client })
}

/// Registers a node whose WireGuard (node) secret the caller holds, as a
/// relay client logs in with it; failing the test if refused.
pub async fn register_node_key(token: &JoinToken, hostname: &str) -> zeroize::Zeroizing<[u8; 32]> {
    let secret = zeroize::Zeroizing::new(rand::random::<[u8; 32]>());
    let (mut request, _) = request(token, hostname);
    request.wireguard_key = WireGuardKey(
        x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(*secret)).to_bytes(),
    );
    ControlClient::new(&token.url, token.fingerprint, None)
        .expect("a client")
        .register(&request)
        .await
        .expect("registration succeeds");
    secret
}

/// Registers `hostname` with `token`, failing the test if refused.
pub async fn register(token: &JoinToken, hostname: &str) -> Device {
    try_register(token, hostname)
        .await
        .expect("registration succeeds")
}

/// A node's view, kept up to date from its map stream.
pub struct MapView {
    /// The stream.
    pub stream: MessageStream<MapMessage>,
    /// Peers by id and name.
    pub peers: Vec<(u64, String)>,
    /// Peers by id.
    pub details: std::collections::BTreeMap<u64, hearth_control::wire::Peer>,
    /// The inbound filter.
    pub filter: hearth_acl::Filter,
    /// How many filter changes arrived.
    pub filter_changes: usize,
    /// Whether the node was told it lost admission.
    pub revoked: bool,
    /// The relay regions.
    pub relays: Vec<hearth_control::wire::RelayRegion>,
    /// Whether each peer is connected to the coordinator, as it said.
    pub online: std::collections::BTreeMap<u64, bool>,
}

impl MapView {
    /// Opens `device`'s map stream and reads its first (full) map and the
    /// line after it (which of its peers are connected).
    pub async fn open(device: &Device) -> MapView {
        let stream = device.client.map_stream().await.expect("map stream opens");
        let mut view = MapView {
            stream,
            peers: Vec::new(),
            details: Default::default(),
            filter: Default::default(),
            filter_changes: 0,
            revoked: false,
            relays: Vec::new(),
            online: Default::default(),
        };
        view.next().await;
        view.next().await;
        view
    }

    /// Applies the next message; false when the stream ended.
    pub async fn next(&mut self) -> bool {
        let Some(message) = self.stream.next().await else {
            return false;
        };
        match message.expect("well-formed map message") {
            MapMessage::Full { map } => {
                self.peers = map
                    .peers
                    .iter()
                    .map(|peer| (peer.id, peer.name.clone()))
                    .collect();
                self.details = map.peers.into_iter().map(|peer| (peer.id, peer)).collect();
                self.filter = map.filter;
                self.relays = map.relays;
            }
            MapMessage::Delta { changes } => {
                for change in changes {
                    match change {
                        MapChange::PeerAdded { peer } => {
                            self.peers.push((peer.id, peer.name.clone()));
                            self.details.insert(peer.id, peer);
                        }
                        MapChange::PeerRemoved { id } => {
                            self.peers.retain(|(peer, _)| *peer != id);
                            self.details.remove(&id);
                        }
                        MapChange::PeerChanged { peer } => {
                            self.details.insert(peer.id, peer);
                        }
                        MapChange::SelfChanged { .. } => {}
                        MapChange::RelaysChanged { relays } => self.relays = relays,
                        MapChange::Presence { online, offline } => {
                            self.online.extend(online.into_iter().map(|id| (id, true)));
                            self.online
                                .extend(offline.into_iter().map(|id| (id, false)));
                        }
                        MapChange::FilterChanged { filter } => {
                            self.filter = filter;
                            self.filter_changes += 1;
                        }
                    }
                }
            }
            MapMessage::KeepAlive => {}
            MapMessage::Revoked { .. } => self.revoked = true,
        }
        true
    }

    /// Whether peer `id` is in the view.
    pub fn has_peer(&self, id: u64) -> bool {
        self.peers.iter().any(|(peer, _)| *peer == id)
    }

    /// Reads messages until `done(self)` holds; fails after `limit`.
    pub async fn wait_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&MapView) -> bool,
    ) -> Duration {
        let start = Instant::now();
        let deadline = tokio::time::Instant::now() + limit;
        while !done(self) {
            let more = tokio::time::timeout_at(deadline, self.next())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "condition not reached within {limit:?}; peers: {:?}",
                        self.peers
                    )
                });
            assert!(more || done(self), "map stream ended early");
            if !more {
                break;
            }
        }
        start.elapsed()
    }
}

/// `--database` for a coordinator on `state` when the tests run on
/// PostgreSQL (`HEARTH_TEST_DATABASE=postgres`) and `extra` names none.
pub fn database_args(state: &Path, extra: &[impl AsRef<str>]) -> Vec<String> {
    let chosen = extra
        .iter()
        .any(|arg| arg.as_ref().starts_with("--database"));
    if crate::postgres::selected() && !chosen {
        vec![
            "--database".into(),
            crate::postgres::database_for_state(state),
        ]
    } else {
        Vec::new()
    }
}
