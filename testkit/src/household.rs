//! A household between network namespaces, as the messaging tests and the
//! `hearth-household` demo use it: a coordinator and a hub node (agent, a real
//! llama-server with the tiny model, the AI gateway, the messaging service), a
//! laptop (user ada) and a phone (user ben); for the tests also a guest whose
//! node the policy keeps away from the messaging port and a stranger outside
//! the mesh.

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use serde_json::json;

use crate::lab::{Agent, Host, Lab, LabCoordinator, Process, binary, wait_until};
use crate::llama::{e5_model, embedding_model, instruct_model, llama_server_binary, tiny_model};

/// One second.
pub const SECOND: Duration = Duration::from_secs(1);

/// The id the gateway gives the instruct model.
pub const INSTRUCT_MODEL: &str = "SmolLM2-135M-Instruct";

/// The messaging service's port on the hub.
pub const MESSAGING_PORT: u16 = 18790;

/// What to build.
#[derive(Clone, Debug)]
pub struct Options {
    /// Add the guest (in the mesh, kept off the messaging port by the
    /// policy) and the stranger (outside the mesh).
    pub outsiders: bool,
    /// Rooms that exist from the start.
    pub rooms: Vec<String>,
    /// Most tokens per assistant answer.
    pub max_tokens: u32,
    /// Start the gateway and the messaging service as processes on the hub
    /// (otherwise the test brings them, e.g. in a pod).
    pub services: bool,
    /// For services in containers: the group that may use llama-server's
    /// socket (then at `inference/inference.sock` in the lab dir instead of
    /// TCP) and the hub agent's whois-only socket (`whois/whois.sock`).
    pub container_group: Option<u32>,
    /// Replies the gateway streams at once (`hearth.limits.maxConcurrentStreams`).
    pub gateway_streams: usize,
    /// Answer with the small real instruct model (SmolLM2-135M-Instruct,
    /// [`instruct_model`]) rather than the tiny random one.
    pub instruct: bool,
    /// The household assistant's folders, clock and embeddings.
    pub assistant: AssistantSetup,
    /// The gateway also serves the mesh (OpenClaw's clients on members'
    /// devices): it listens on every address and names callers through the
    /// hub's agent.
    pub gateway_on_mesh: bool,
    /// OpenClaw's Control UI (an installed package's `dist/control-ui`)
    /// served by the gateway.
    pub control_ui: Option<PathBuf>,
    /// Serve the messaging service over HTTPS at the hub's MagicDNS name
    /// ([`HUB_NAME`]) with a certificate the hub's agent gets from the
    /// coordinator's ACME CA (Pebble in a host of its own), valid for this
    /// many seconds (`Some(0)`: Pebble's own default, years).
    pub https: Option<u64>,
}

/// The MagicDNS domain of a household served over HTTPS.
pub const MAGIC_DOMAIN: &str = "ts.home.example";
/// The hub's MagicDNS name there.
pub const HUB_NAME: &str = "hub.ts.home.example";

/// The household's certificate authority (with [`Options::https`]).
pub struct Authority {
    /// Its host.
    pub host: Host,
    /// Pebble.
    pub pebble: crate::acme_ca::Pebble,
    /// The root it issues from (PEM), for members' devices to trust, as
    /// they trust Let's Encrypt's.
    pub root: PathBuf,
}

/// What the household assistant is given in a test.
#[derive(Clone, Debug, Default)]
pub struct AssistantSetup {
    /// A folder of household documents (everyone's).
    pub documents: Option<PathBuf>,
    /// A clock file the gateway goes by (`HEARTH_TEST_CLOCK`).
    pub clock: Option<PathBuf>,
    /// Serve embeddings by this model (a second llama-server on the hub's
    /// port 18091) and search memory and documents by them.
    pub embeddings: Option<Embeddings>,
    /// The household's language (`hearth.assistant.language`, as `hearth
    /// setup --lang` writes it).
    pub language: Option<&'static str>,
    /// Hear recordings: whisper.cpp's server with Whisper base on the
    /// hub's port [`SPEECH_PORT`] (`hearth.speech`).
    pub speech: bool,
}

/// Where the hub's speech recognition listens, with [`AssistantSetup::speech`].
pub const SPEECH_PORT: u16 = 18178;

/// An embedding model a test household searches with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Embeddings {
    /// all-MiniLM-L6-v2 (English).
    MiniLm,
    /// multilingual-e5-small (Korean, English and more; the hub's).
    E5,
}

impl Embeddings {
    /// The id the gateway gives it (its kind is read from it).
    pub const fn id(self) -> &'static str {
        match self {
            Embeddings::MiniLm => "all-MiniLM-L6-v2",
            Embeddings::E5 => "multilingual-e5-small",
        }
    }

    /// Its GGUF, fetched and converted into the cache if missing.
    pub fn model(self) -> Option<PathBuf> {
        match self {
            Embeddings::MiniLm => embedding_model(),
            Embeddings::E5 => e5_model(),
        }
    }
}

impl Default for Options {
    fn default() -> Options {
        Options {
            outsiders: true,
            rooms: vec!["household".into(), "garden".into()],
            max_tokens: 24,
            services: true,
            container_group: None,
            gateway_streams: 64,
            instruct: false,
            assistant: AssistantSetup::default(),
            gateway_on_mesh: false,
            control_ui: None,
            https: None,
        }
    }
}

/// A running household; everything stops and the namespaces go on drop.
pub struct Household {
    /// The network (dropped last: fields drop in order).
    pub hub: Host,
    /// ada's laptop.
    pub laptop: Host,
    /// ben's phone.
    pub phone: Host,
    /// The guest (with [`Options::outsiders`]).
    pub guest: Option<Host>,
    /// The stranger (with [`Options::outsiders`]).
    pub stranger: Option<Host>,
    /// The coordinator (on the hub's namespace).
    pub coordinator: LabCoordinator,
    /// The hub's mesh address.
    pub hub_mesh: Ipv4Addr,
    /// The hub's agent.
    pub hub_agent: Agent,
    /// The messaging service, when running.
    pub messaging: Option<Process>,
    /// llama-server, when running.
    pub llama: Option<Process>,
    /// The embedding llama-server, with [`AssistantSetup::embeddings`].
    pub embeddings: Option<Process>,
    /// whisper-server, with [`AssistantSetup::speech`].
    pub speech: Option<Process>,
    /// The AI gateway (with [`Options::services`]).
    pub gateway: Option<Process>,
    /// Its configuration (with [`Options::services`]).
    gateway_config: Option<PathBuf>,
    /// The other agents.
    pub agents: Vec<Agent>,
    /// With [`Options::container_group`]: the directory of llama-server's socket.
    pub inference_dir: Option<PathBuf>,
    /// With [`Options::container_group`]: the directory of the hub agent's whois-only socket.
    pub whois_dir: Option<PathBuf>,
    /// The options it was built with.
    pub options: Options,
    /// The certificate authority, with [`Options::https`].
    pub authority: Option<Authority>,
    /// The lab (last, so the processes above stop before it tears down).
    pub lab: Lab,
}

/// The policy: the family reaches everything; the guest only the hub's SSH.
const POLICY: &str = r#"{"groups": {"group:family": ["ada@", "ben@", "home@"]},
    "acls": [{"action": "accept", "src": ["group:family"], "dst": ["*:*"]},
             {"action": "accept", "src": ["guest@"], "dst": ["home@:22"]}]}"#;

impl Household {
    /// Builds and starts everything; `None` when it cannot run here (a skip
    /// outside CI: no root, or llama-server or the model generator missing).
    pub fn start(options: Options) -> Option<Household> {
        let mut lab = Lab::new()?;
        llama_server_binary()?;
        if options.instruct {
            instruct_model()?;
        } else {
            tiny_model()?;
        }
        if let Some(embeddings) = options.assistant.embeddings {
            embeddings.model()?;
        }
        let speech = if options.assistant.speech {
            Some((
                crate::speech::whisper_server()?,
                crate::speech::whisper_model()?,
            ))
        } else {
            None
        };
        let hub = lab.host("hub");
        let laptop = lab.host("laptop");
        let phone = lab.host("phone");
        let (guest, stranger) = if options.outsiders {
            (Some(lab.host("guest")), Some(lab.host("stranger")))
        } else {
            (None, None)
        };
        let dir = lab.dir.path().to_owned();
        let (coordinator, authority) = match options.https {
            None => (lab.start_coordinator(&hub), None),
            Some(validity) => {
                let (coordinator, authority) = with_authority(&mut lab, &hub, validity)?;
                (coordinator, Some(authority))
            }
        };
        let policy = dir.join("policy.json");
        std::fs::write(&policy, POLICY).expect("policy file");
        coordinator.cli_ok(&["policy", "set", &policy.to_string_lossy()]);
        let mut members = vec![("home", &hub), ("ada", &laptop), ("ben", &phone)];
        if let Some(guest) = &guest {
            members.push(("guest", guest));
        }
        // Sockets for services in containers, in directories of their group.
        let (inference_dir, whois_dir) = match options.container_group {
            Some(group) => (
                Some(group_dir(&dir.join("inference"), group)),
                Some(group_dir(&dir.join("whois"), group)),
            ),
            None => (None, None),
        };
        let whois_args = whois_dir
            .as_ref()
            .zip(options.container_group)
            .map(|(whois, group)| {
                vec![
                    "--whois-socket".to_owned(),
                    whois.join("whois.sock").to_string_lossy().into_owned(),
                    "--whois-group".to_owned(),
                    group.to_string(),
                ]
            });
        let mut agents = Vec::new();
        for (user, host) in members {
            coordinator.cli_ok(&["users", "create", user]);
            let token = coordinator.token_file(
                &dir,
                &format!("{user}.token"),
                &["--user", user, "--pre-approved"],
            );
            let mut extra = vec!["--backend".to_owned(), "userspace".to_owned()];
            if user == "home" {
                extra.extend(whois_args.iter().flatten().cloned());
            }
            let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
            agents.push(lab.start_agent(host, &token, &extra));
        }
        let hub_agent = agents.remove(0);
        let hub_mesh = hub_agent.wait_mesh_ipv4(15 * SECOND);
        for agent in &agents {
            agent.wait_mesh_ipv4(15 * SECOND);
        }
        if authority.is_some() {
            // The hub's agent gets its certificate; programs started from
            // now on find the hub by its name (as MagicDNS answers it).
            let output = lab
                .command(&hub, binary("hearth-agent"))
                .arg("--state-dir")
                .arg(&hub_agent.state)
                .arg("cert")
                .output()
                .expect("hearth-agent cert runs");
            assert!(
                output.status.success(),
                "hearth-agent cert: {}\n{}",
                String::from_utf8_lossy(&output.stderr),
                coordinator.process.log_text()
            );
            lab.name_hosts(&[(HUB_NAME, hub_mesh)]);
        }

        // The model and the gateway, on the hub's loopback.
        let model_id = if options.instruct {
            INSTRUCT_MODEL
        } else {
            "tiny"
        };
        let gateway_config = dir.join("gateway.json");
        // The first token may take a while: on one thread llama-server reads
        // about 140 tokens a second here, and a Korean question with its
        // passages is a thousand tokens (SmolLM2's tokenizer gives Hangul
        // two or three a syllable).
        let mut config = json!({
            "models": {"providers": {"local": {"baseUrl": "http://127.0.0.1:18090/v1", "api": "openai-completions", "timeoutSeconds": 30,
                                               "models": [{"id": model_id, "contextWindow": 2048, "maxTokens": 256}]}}},
            "agents": {"defaults": {"model": {"primary": format!("local/{model_id}")}, "userTimezone": "Europe/London"}},
            "hearth": {"dataDir": dir.join("gateway-data"), "connectTimeoutSeconds": 1, "healthCheckSeconds": 1,
                       "limits": {"maxConcurrentStreams": options.gateway_streams},
                       "assistant": {"rescanSeconds": 1}},
        });
        if let Some(control_ui) = &options.control_ui {
            config["hearth"]["controlUi"] = json!(control_ui);
        }
        if options.gateway_on_mesh {
            config["gateway"] = json!({"bind": "lan"});
            config["hearth"]["agentSocket"] = json!(hub_agent.state.join("agent.sock"));
        }
        if let Some(language) = options.assistant.language {
            config["hearth"]["assistant"]["language"] = json!(language);
        }
        if let Some(documents) = &options.assistant.documents {
            config["hearth"]["assistant"]["documents"] =
                json!([{"name": "house", "path": documents}]);
        }
        if let Some(embeddings) = options.assistant.embeddings {
            config["models"]["providers"]["vectors"] = json!({
                "baseUrl": "http://127.0.0.1:18091/v1", "api": "openai-completions", "timeoutSeconds": 10,
                "models": [{"id": embeddings.id()}]});
            config["memory"] = json!({"search": {"provider": "vectors", "model": embeddings.id()}});
        }
        let speech = speech.map(|(server, model)| {
            config["hearth"]["speech"] = json!({"url": format!("http://127.0.0.1:{SPEECH_PORT}")});
            lab.start_whisper_server(&hub, &server, &model, ("127.0.0.1", SPEECH_PORT))
        });
        std::fs::write(&gateway_config, config.to_string()).expect("gateway config");
        let gateway_env: Vec<(String, PathBuf)> = options
            .assistant
            .clock
            .iter()
            .map(|clock| ("HEARTH_TEST_CLOCK".to_owned(), clock.clone()))
            .collect();
        let gateway = options.services.then(|| {
            let mut command = lab.command(&hub, binary("hearth-gateway"));
            command
                .args(["serve", "--config"])
                .arg(&gateway_config)
                .envs(gateway_env.iter().map(|(key, value)| (key, value)));
            lab.spawn(&hub, "gateway", command)
        });
        let gateway_config = options.services.then_some(gateway_config);
        let mut household = Household {
            hub,
            laptop,
            phone,
            guest,
            stranger,
            coordinator,
            hub_mesh,
            hub_agent,
            messaging: None,
            llama: None,
            embeddings: None,
            speech,
            gateway,
            gateway_config,
            agents,
            inference_dir,
            whois_dir,
            options,
            authority,
            lab,
        };
        household.start_llama();
        if household.options.assistant.embeddings.is_some() {
            household.start_embeddings();
        }
        if household.speech.is_some() {
            let hub = household.hub.clone();
            let url = format!("http://127.0.0.1:{SPEECH_PORT}/");
            let up = wait_until(60 * SECOND, || {
                household
                    .lab
                    .try_exec(&hub, &["curl", "-sf", "-o", "/dev/null", &url])
                    .status
                    .success()
            });
            assert!(up.is_some(), "whisper-server did not come up");
        }
        if household.options.services {
            household.start_messaging();
        }
        Some(household)
    }

    /// The messaging service's URL as mesh devices reach it: its mesh
    /// address, or with [`Options::https`] the hub's name.
    pub fn url(&self) -> String {
        match self.authority {
            None => format!("http://{}:{MESSAGING_PORT}", self.hub_mesh),
            Some(_) => format!("https://{HUB_NAME}:{MESSAGING_PORT}"),
        }
    }

    /// `curl` on a member's device trusting the household's CA (with
    /// [`Options::https`]).
    pub fn curl(&self, host: &Host) -> std::process::Command {
        let mut command = self.lab.command(host, "curl");
        command.args(["-sS", "--max-time", "30"]);
        if let Some(authority) = &self.authority {
            command.arg("--cacert").arg(&authority.root);
        }
        command
    }

    /// The hub agent's certificate files for its name (with [`Options::https`]).
    pub fn hub_certificate(&self) -> (PathBuf, PathBuf) {
        let certs = self.hub_agent.state.join("certs");
        (
            certs.join(format!("{HUB_NAME}.crt")),
            certs.join(format!("{HUB_NAME}.key")),
        )
    }

    /// The messaging service's log so far.
    pub fn messaging_log(&self) -> String {
        self.messaging
            .as_ref()
            .map(Process::log_text)
            .unwrap_or_default()
    }

    /// Runs `hearth-messaging ARGS` on `host` against the hub.
    pub fn cli(&self, host: &Host, args: &[&str]) -> Output {
        self.cli_in(host, "C.UTF-8", args)
    }

    /// Like [`Household::cli`], at a terminal whose locale is `locale`
    /// (`ko_KR.UTF-8`: the client's own lines in Korean).
    pub fn cli_in(&self, host: &Host, locale: &str, args: &[&str]) -> Output {
        let mut command = self.lab.command(host, binary("hearth-messaging"));
        command
            .args(args)
            .env("HEARTH_MESSAGING_URL", self.url())
            .env_remove("LC_ALL")
            .env_remove("LC_MESSAGES")
            .env("LANG", locale);
        if let Some(authority) = &self.authority {
            command.env("SSL_CERT_FILE", &authority.root);
        }
        command.output().expect("hearth-messaging runs")
    }

    /// Like [`Household::cli`], failing (with the service's log) unless it succeeds; its stdout.
    pub fn cli_ok(&self, host: &Host, args: &[&str]) -> String {
        let output = self.cli(host, args);
        assert!(
            output.status.success(),
            "hearth-messaging {} on {} failed: {}\nmessaging log:\n{}",
            args.join(" "),
            host.name,
            String::from_utf8_lossy(&output.stderr),
            self.messaging_log()
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Asks the assistant as the device on `host`, in `room` (its DM with
    /// the assistant when `None`); the whole answer, once it is complete.
    pub fn ask(&self, host: &Host, room: Option<&str>, text: &str) -> String {
        let mut args = vec!["ask", "--timeout", "120"];
        if let Some(room) = room {
            args.extend_from_slice(&["--room", room]);
        }
        args.push(text);
        self.cli_ok(host, &args)
    }

    /// The last 50 messages of the member's DM with the assistant as
    /// `host` sees them, one a line.
    pub fn assistant_dm(&self, host: &Host) -> String {
        self.cli_ok(
            host,
            &[
                "tail",
                "--count",
                "0",
                "--history",
                "50",
                "--dm",
                "assistant",
            ],
        )
    }

    /// The last `count` messages of `room` as `host` sees them, one a line.
    pub fn history(&self, host: &Host, room: &str, count: u32) -> String {
        self.cli_ok(
            host,
            &[
                "tail",
                "--room",
                room,
                "--count",
                "0",
                "--history",
                &count.to_string(),
            ],
        )
    }

    /// Starts `hearth-messaging ARGS` on `host` in the background, logging to the lab.
    pub fn spawn_cli(&mut self, host: &Host, label: &str, args: &[&str]) -> Process {
        let mut command = self.lab.command(host, binary("hearth-messaging"));
        command.args(args).env("HEARTH_MESSAGING_URL", self.url());
        if let Some(authority) = &self.authority {
            command.env("SSL_CERT_FILE", &authority.root);
        }
        let host = host.clone();
        self.lab.spawn(&host, label, command)
    }

    /// Stops the gateway (SIGTERM, then waits for it to exit).
    pub fn stop_gateway(&mut self) {
        if let Some(mut gateway) = self.gateway.take() {
            gateway.terminate(10 * SECOND);
        }
    }

    /// Starts the gateway again (after [`Household::stop_gateway`]) and
    /// waits until it serves.
    pub fn start_gateway(&mut self) {
        let config = self
            .gateway_config
            .clone()
            .expect("the household runs its services");
        let mut command = self.lab.command(&self.hub, binary("hearth-gateway"));
        command.args(["serve", "--config"]).arg(&config);
        if let Some(clock) = &self.options.assistant.clock {
            command.env("HEARTH_TEST_CLOCK", clock);
        }
        let hub = self.hub.clone();
        let gateway = self.lab.spawn(&hub, "gateway-again", command);
        let serving = wait_until(20 * SECOND, || {
            gateway.log_text().contains("gateway serving")
        });
        assert!(
            serving.is_some(),
            "the gateway did not start: {}",
            gateway.log_text()
        );
        self.gateway = Some(gateway);
    }

    /// Starts the messaging service on the hub and waits until the laptop reaches it.
    pub fn start_messaging(&mut self) {
        let dir = self.lab.dir.path();
        let mut config = json!({
            "agentSocket": self.hub_agent.state.join("agent.sock"),
            "dataDir": dir.join("messaging-data"),
            "rooms": self.options.rooms,
            "assistant": {"gatewayUrl": "http://127.0.0.1:18789", "maxTokens": self.options.max_tokens,
                          "gatewayTokenFile": dir.join("gateway-data/gateway.token")},
        });
        if let Some(embeddings) = self.options.assistant.embeddings {
            config["search"] =
                json!({"embeddings": "http://127.0.0.1:18091/v1", "model": embeddings.id()});
        }
        if self.authority.is_some() {
            let (cert_file, key_file) = self.hub_certificate();
            config["tls"] = json!({"certFile": cert_file, "keyFile": key_file});
            config["allowedHosts"] = json!([HUB_NAME]);
        }
        // The gateway writes its token on its first start.
        let token = dir.join("gateway-data/gateway.token");
        let written = wait_until(10 * SECOND, || token.exists());
        assert!(written.is_some(), "the gateway wrote no token");
        let path = dir.join("messaging.json");
        std::fs::write(&path, config.to_string()).expect("messaging config");
        let mut command = self.lab.command(&self.hub, binary("hearth-messaging"));
        command
            .args(["serve", "--config"])
            .arg(&path)
            .env("HEARTH_LOG", "debug");
        let hub = self.hub.clone();
        self.messaging = Some(self.lab.spawn(&hub, "messaging", command));
        let url = format!("{}/api/me", self.url());
        let laptop = self.laptop.clone();
        let ready = wait_until(10 * SECOND, || {
            self.curl(&laptop)
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &url])
                .output()
                .is_ok_and(|output| output.stdout == b"200")
        });
        assert!(
            ready.is_some(),
            "messaging did not come up: {}",
            self.messaging_log()
        );
    }

    /// Starts the embedding llama-server on the hub's loopback, port 18091.
    pub fn start_embeddings(&mut self) {
        let model = self
            .options
            .assistant
            .embeddings
            .and_then(Embeddings::model);
        let (Some(llama), Some(model)) = (llama_server_binary(), model) else {
            panic!("llama-server and the embedding model were checked at the start")
        };
        let mut command = self.lab.command(&self.hub, &llama);
        command.arg("-m").arg(&model).args([
            "--embeddings",
            "--pooling",
            "mean",
            "--host",
            "127.0.0.1",
            "--port",
            "18091",
            "-c",
            "2048",
            "-b",
            "512",
            "-ub",
            "512",
            "-t",
            "1",
            "--no-webui",
        ]);
        let hub = self.hub.clone();
        let embeddings = self.lab.spawn(&hub, "embeddings", command);
        let loaded = wait_until(60 * SECOND, || {
            embeddings.log_text().contains("model loaded")
        });
        assert!(
            loaded.is_some(),
            "the embedding llama-server did not load: {}",
            embeddings.log_text()
        );
        self.embeddings = Some(embeddings);
    }

    /// Starts llama-server with the model on the hub's loopback, port 18090.
    pub fn start_llama(&mut self) {
        let model = if self.options.instruct {
            instruct_model()
        } else {
            tiny_model()
        };
        let (Some(llama), Some(model)) = (llama_server_binary(), model) else {
            panic!("llama-server and the model were checked at the start")
        };
        let mut command = self.lab.command(&self.hub, &llama);
        command.arg("-m").arg(&model);
        let socket = self
            .inference_dir
            .as_ref()
            .map(|dir| dir.join("inference.sock"));
        match &socket {
            Some(socket) => command.arg("--host").arg(socket),
            None => command.args(["--host", "127.0.0.1", "--port", "18090"]),
        };
        command.args(["-c", "2048", "-t", "1", "--no-webui"]);
        if self.options.instruct {
            // The same question gets the same answer.
            command.args(["--temp", "0"]);
        }
        let hub = self.hub.clone();
        let llama = self.lab.spawn(&hub, "llama-server", command);
        // Ready once it says so: a real model takes a moment to load.
        let loaded = wait_until(60 * SECOND, || llama.log_text().contains("model loaded"));
        assert!(
            loaded.is_some(),
            "llama-server did not load its model: {}",
            llama.log_text()
        );
        self.llama = Some(llama);
        if let (Some(socket), Some(group)) = (socket, self.options.container_group) {
            let made = wait_until(30 * SECOND, || socket.exists());
            assert!(
                made.is_some(),
                "llama-server made no socket: {}",
                self.llama
                    .as_ref()
                    .map(Process::log_text)
                    .unwrap_or_default()
            );
            std::os::unix::fs::chown(&socket, Some(0), Some(group)).expect("socket group");
            std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o660))
                .expect("socket mode");
        }
    }
}

/// `dir`, created if needed, owned by root and `group`, mode 0750.
fn group_dir(dir: &std::path::Path, group: u32) -> PathBuf {
    std::fs::create_dir_all(dir).expect("socket directory");
    std::os::unix::fs::chown(dir, Some(0), Some(group)).expect("socket directory group");
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))
        .expect("socket directory mode");
    dir.to_owned()
}

/// A coordinator on `hub` whose devices get certificates from an ACME CA
/// (Pebble on a host of its own, issuing for `validity` seconds; 0: its
/// default) for their names under [`MAGIC_DOMAIN`]: it answers the CA's
/// DNS-01 challenges on the hub's port 53, to which the household would
/// delegate the domain.
fn with_authority(lab: &mut Lab, hub: &Host, validity: u64) -> Option<(LabCoordinator, Authority)> {
    let host = lab.host("ca");
    let dns = std::net::SocketAddr::from((hub.address, 53));
    let pebble =
        crate::acme_ca::start_with_validity(lab, &host, dns, (validity > 0).then_some(validity))?;
    let dir = lab.dir.path().to_owned();
    let config = dir.join("acme.json");
    std::fs::write(
        &config,
        json!({
            "directory": pebble.directory,
            "terms_of_service_agreed": true,
            "contact": ["mailto:admin@home.example"],
            "device_certificates": true,
            "dns_listen": [dns.to_string()],
            "ca_file": pebble.tls_certificate,
        })
        .to_string(),
    )
    .expect("ACME configuration");
    let coordinator = lab.start_coordinator_with(
        hub,
        &[
            "--base-domain",
            MAGIC_DOMAIN,
            "--acme-config",
            config.to_str().expect("a UTF-8 path"),
        ],
    );
    let root = dir.join("household-ca.pem");
    std::fs::write(&root, pebble.root(lab, &host)).expect("the CA's root");
    Some((coordinator, Authority { host, pebble, root }))
}

/// Builds the household with the guest and the stranger; `None` when it
/// cannot run here (skipped outside CI).
pub fn household() -> Option<Household> {
    Household::start(Options::default())
}

/// `text`'s lines.
pub fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

/// Polls `room`'s history on `host` until a message from the assistant that
/// is no longer streaming appears after `after`; returns it.
pub fn assistant_answer(
    household: &Household,
    host: &Host,
    room_args: &[&str],
    after: usize,
) -> String {
    let mut answer = String::new();
    let found = wait_until(30 * SECOND, || {
        let mut args = vec!["tail", "--count", "0", "--history", "50"];
        args.extend_from_slice(room_args);
        let output = household.cli_ok(host, &args);
        let replies: Vec<String> = output
            .lines()
            .filter(|line| line.contains("] assistant: "))
            .map(str::to_owned)
            .collect();
        if replies.len() > after {
            answer = replies[after].clone();
            true
        } else {
            false
        }
    });
    assert!(
        found.is_some(),
        "no answer from the assistant; messaging log:\n{}",
        household.messaging_log()
    );
    answer
}

/// Whether `text` reads as English prose rather than a random model's
/// noise: at least ten words, mostly different, with at least four
/// different common English function words among them.
pub fn looks_english(text: &str) -> bool {
    const COMMON: [&str; 24] = [
        "the", "a", "an", "and", "or", "of", "to", "in", "for", "with", "you", "your", "is", "are",
        "it", "this", "that", "on", "can", "be", "we", "our", "as", "from",
    ];
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphabetic() && c != '\'')
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
        .collect();
    let distinct: std::collections::BTreeSet<&str> = words.iter().map(String::as_str).collect();
    let common = COMMON
        .iter()
        .filter(|word| distinct.contains(*word))
        .count();
    words.len() >= 10 && distinct.len() * 3 >= words.len() && common >= 4
}

#[cfg(test)]
mod tests {
    use super::looks_english;

    #[test]
    fn english_is_told_from_a_random_models_noise() {
        assert!(looks_english(
            "The perfect night's gathering for a culinary journey. You can choose from the comfort of your own kitchen."
        ));
        assert!(!looks_english(
            "3 homee home home home home homee home rain3 home home home home home home rain home home"
        ));
        assert!(!looks_english("Yes."));
    }
}
