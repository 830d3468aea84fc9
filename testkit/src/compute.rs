//! Private compute between namespaces: a router and compute nodes in dev
//! evidence mode, each node with its own llama-server on a UNIX socket
//! (inside its trust boundary), and the policy that trusts their image.
// A test harness: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hearth_attest::policy::{Image, Policy};

use crate::lab::{Forward, Host, Lab, Process, binary, wait_until};

/// The router's port in the lab.
pub const ROUTER_PORT: u16 = 3600;
/// A compute node's port in the lab.
pub const NODE_PORT: u16 = 7000;
/// The image label honest nodes state (PCR2 of their dev evidence).
pub const IMAGE: &str = "hearth-enclave";

/// A running router.
pub struct Router {
    /// Its host.
    pub host: Host,
    /// The process.
    pub process: Process,
    /// The router's node key, which node credentials are made from.
    pub token_file: PathBuf,
    /// `http://ADDRESS:3600`, as seen inside the lab.
    pub url: String,
    /// Its state directory (the key, the nodes' credentials).
    pub state: PathBuf,
}

/// Makes node `node`'s credential from the router key in `key_file` with
/// `hearth-router node-token`, as an admin does, into `dir` (0600); its path.
pub fn node_credential_file(key_file: &Path, dir: &Path, node: &str) -> PathBuf {
    let path = dir.join(format!("{node}.credential"));
    if !path.exists() {
        let output = std::process::Command::new(binary("hearth-router"))
            .args(["node-token", node, "--node-token-file"])
            .arg(key_file)
            .arg("--output")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "node-token {node}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    path
}

impl Router {
    /// Node `node`'s credential file (made on first use).
    pub fn credential_file(&self, node: &str) -> PathBuf {
        node_credential_file(&self.token_file, &self.state, node)
    }
}

/// A running compute node.
pub struct Node {
    /// Its id.
    pub id: String,
    /// Its host.
    pub host: Host,
    /// The process.
    pub process: Process,
}

impl Lab {
    /// Starts `hearth-router` in `host` with short heartbeats (1 s) and a
    /// short timeout (3 s), so tests see nodes come and go quickly.
    pub fn start_router(&mut self, host: &Host) -> Router {
        let state = self.dir.path().join(format!("{}-router", host.name));
        let token_file = state.join("node.token");
        let listen = format!("{}:{ROUTER_PORT}", host.address);
        let mut command = self.command(host, binary("hearth-router"));
        command
            .args([
                "serve",
                "--listen",
                &listen,
                "--heartbeat-seconds",
                "1",
                "--node-timeout-seconds",
                "3",
            ])
            .arg("--node-token-file")
            .arg(&token_file)
            .env("HEARTH_LOG", "debug");
        let process = self.spawn(host, &format!("{}-router", host.name), command);
        let url = format!("http://{listen}");
        wait_until(Duration::from_secs(20), || {
            token_file.exists() && process.log_text().contains("router serving")
        })
        .unwrap_or_else(|| panic!("the router did not start: {}", process.log_text()));
        Router {
            host: host.clone(),
            process,
            token_file,
            url,
            state,
        }
    }

    /// Starts a compute node `id` in `host` with dev evidence stating
    /// `image` as its PCR2 label, answering from the llama-server at
    /// `backend` (`unix:/path`), model `tiny`.
    pub fn start_node(
        &mut self,
        host: &Host,
        id: &str,
        image: &str,
        router: &Router,
        backend: &str,
    ) -> Node {
        let listen = format!("{}:{NODE_PORT}", host.address);
        let mut command = self.command(host, binary("hearth-enclave"));
        command
            .args([
                "serve",
                "--node-id",
                id,
                "--listen",
                &listen,
                "--router",
                &router.url,
            ])
            .arg("--router-token-file")
            .arg(router.credential_file(id))
            .args([
                "--evidence",
                "dev",
                "--dev-image-label",
                image,
                "--backend",
                backend,
            ])
            .args(["--model", "tiny", "--timeout-seconds", "10"])
            .env("HEARTH_LOG", "debug");
        let process = self.spawn(host, id, command);
        Node {
            id: id.to_owned(),
            host: host.clone(),
            process,
        }
    }
}

/// The policy that trusts dev evidence of this build's `hearth-enclave`
/// stating `image`, written to `dir/name`.
pub fn dev_policy(dir: &Path, name: &str, image: &str) -> PathBuf {
    dev_policy_for(&binary("hearth-enclave"), dir, name, image)
}

/// The policy that trusts dev evidence of the `hearth-enclave` at
/// `executable` stating `image`, written to `dir/name`.
pub fn dev_policy_for(executable: &Path, dir: &Path, name: &str, image: &str) -> PathBuf {
    let executable = std::fs::read(executable).unwrap();
    let pcrs = hearth_attest::evidence::dev_pcrs(&executable, image);
    let policy = Policy {
        images: vec![Image {
            name: format!("{image} (this build)"),
            pcrs: pcrs
                .iter()
                .map(|(index, value)| (*index, hex(value)))
                .collect(),
        }],
        allow_dev_evidence: true,
        ..Policy::default()
    };
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(&policy).unwrap()).unwrap();
    path
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// `GET path` on a loopback port (a [`Forward`] into the lab): the status
/// and body, or `None`.
pub fn get(forward: Forward, path: &str) -> Option<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", forward.port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: router\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response);
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    // The router answers small bodies chunked or whole; take the JSON.
    let json = body.find('{').map_or(body, |start| &body[start..]);
    let json = json.rfind('}').map_or(json, |end| &json[..=end]);
    Some((status, json.to_owned()))
}

/// The nodes the router lists (through `forward`), by id, with their load.
pub fn listed_nodes(forward: Forward) -> Vec<(String, u64)> {
    let Some((200, body)) = get(forward, "/v1/nodes") else {
        return Vec::new();
    };
    let list: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    list["nodes"]
        .as_array()
        .map(|nodes| {
            nodes
                .iter()
                .map(|node| {
                    (
                        node["node"].as_str().unwrap_or("").to_owned(),
                        node["load"]["active"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until the router lists exactly `ids` (in any order).
pub fn wait_for_nodes(lab: &Lab, forward: Forward, ids: &[&str], limit: Duration) {
    let mut wanted: Vec<String> = ids.iter().map(|id| (*id).to_owned()).collect();
    wanted.sort();
    wait_until(limit, || {
        let mut listed: Vec<String> = listed_nodes(forward)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        listed.sort();
        listed == wanted
    })
    .unwrap_or_else(|| {
        panic!(
            "the router did not list {ids:?} (it lists {:?}); the logs:\n{}",
            listed_nodes(forward),
            lab.logs()
        )
    });
}

/// A router on a loopback port (no lab), its output in its temp dir;
/// killed on drop.
pub struct LoopbackRouter {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its node key (what node credentials are made from; no credential
    /// itself).
    pub token: String,
    /// Where it wrote the key (0600).
    pub token_file: PathBuf,
    log: PathBuf,
    dir: tempfile::TempDir,
}

impl LoopbackRouter {
    /// Starts `hearth-router serve` with `args` added (and nodes allowed on
    /// loopback unless `args` give `--node-networks`), waits until it
    /// listens and has written its node key.
    pub fn start(args: &[&str]) -> LoopbackRouter {
        let dir = tempfile::tempdir().unwrap();
        let port = crate::llama::free_port();
        let token_file = dir.path().join("node.token");
        let log = dir.path().join("router.log");
        let output = std::fs::File::create(&log).unwrap();
        let child = std::process::Command::new(binary("hearth-router"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            // Its nodes run on loopback too, unless the test says otherwise.
            .args(if args.contains(&"--node-networks") {
                &[][..]
            } else {
                &["--node-networks", "127.0.0.0/8"][..]
            })
            .args(args)
            .arg("--node-token-file")
            .arg(&token_file)
            .env("HEARTH_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .spawn()
            .unwrap();
        let mut router = LoopbackRouter {
            child,
            url: format!("http://127.0.0.1:{port}"),
            token: String::new(),
            token_file,
            log,
            dir,
        };
        wait_until(Duration::from_secs(20), || {
            crate::llama::port_answers(("127.0.0.1", port))
        })
        .unwrap_or_else(|| panic!("the router did not start: {}", router.log_text()));
        router.token = std::fs::read_to_string(&router.token_file)
            .unwrap()
            .trim()
            .to_owned();
        router
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its output so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Node `node`'s credential file (made on first use).
    pub fn credential_file(&self, node: &str) -> PathBuf {
        node_credential_file(&self.token_file, self.dir.path(), node)
    }

    /// Node `node`'s credential.
    pub fn credential(&self, node: &str) -> String {
        std::fs::read_to_string(self.credential_file(node))
            .unwrap()
            .trim()
            .to_owned()
    }
}

impl LoopbackRouter {
    /// `hearth-enclave serve` for a node `id` on loopback `port` that
    /// registers here, with dev evidence stating [`IMAGE`] and model `tiny`;
    /// the caller adds the backend (`--backend` or `--llama-server`).
    pub fn node_command(&self, id: &str, port: u16) -> std::process::Command {
        self.node_command_at(id, &format!("127.0.0.1:{port}"), &[])
    }

    /// [`LoopbackRouter::node_command`] listening on `listen` (an address,
    /// `vsock:PORT` or `unix:PATH`), with `reach` for how the router and
    /// the node reach each other (`--advertise`, `--router-via`) and, when
    /// it does not name `--router`, this router's URL.
    pub fn node_command_at(&self, id: &str, listen: &str, reach: &[&str]) -> std::process::Command {
        let mut command = std::process::Command::new(binary("hearth-enclave"));
        command.args(["serve", "--node-id", id, "--listen", listen]);
        if !reach.contains(&"--router") {
            command.args(["--router", &self.url]);
        }
        command
            .args(reach)
            .arg("--router-token-file")
            .arg(self.credential_file(id))
            .args([
                "--evidence",
                "dev",
                "--dev-image-label",
                IMAGE,
                "--model",
                "tiny",
            ])
            .stdin(std::process::Stdio::null());
        command
    }

    /// Starts node `id` on a free loopback port, answering from the
    /// llama-server at `backend`, and waits until it has registered; the
    /// caller stops it.
    pub fn start_node(&self, id: &str, backend: &str) -> std::process::Child {
        let node = self
            .node_command(id, crate::llama::free_port())
            .args(["--backend", backend, "--timeout-seconds", "10"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        wait_until(Duration::from_secs(30), || self.log_text().contains(id))
            .unwrap_or_else(|| panic!("node {id} never registered:\n{}", self.log_text()));
        node
    }
}

impl Drop for LoopbackRouter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A heartbeat for a stand-in node `node` at `url` taking `capacity`
/// replies, with a bundle of the right shape whose document is no evidence
/// (what the router's own tests and benchmark register: the router does not
/// verify evidence, clients do).
pub fn stand_in_heartbeat(node: &str, url: &str, capacity: u32) -> hearth_pcc::protocol::Heartbeat {
    hearth_pcc::protocol::Heartbeat {
        url: url.into(),
        models: vec!["tiny".into()],
        load: hearth_pcc::protocol::Load {
            active: 0,
            capacity,
        },
        bundle: hearth_attest::EvidenceBundle::new(node, &[9; 32], "hearth-dev", b"a document"),
    }
}

/// `hearth-pcc chat QUESTION` through the router at `router` under
/// `policy`, model `tiny`, at most 8 tokens, as a device would run it.
pub fn pcc_chat(router: &str, policy: &Path, question: &str) -> std::process::Output {
    std::process::Command::new(binary("hearth-pcc"))
        .args([
            "chat",
            question,
            "--router",
            router,
            "--model",
            "tiny",
            "--max-tokens",
            "8",
        ])
        .arg("--policy")
        .arg(policy)
        .output()
        .unwrap()
}
