//! Where the hub's parts live: one table of paths and unit names, so that
//! setup, status, backup and the packages agree. Paths hang under a root
//! (`/` on a hub; a temporary directory in tests).

use std::path::{Path, PathBuf};

/// The user the containers run as (the images' `USER`).
pub const CONTAINER_USER: u32 = 65_532;

/// The group whose members may use the model's and the agent's sockets
/// (the sysusers file creates it; the containers run with it).
pub const SOCKET_GROUP: &str = "hearth-inference";

/// The Tailscale Services the hub hosts: the chat, and the assistant's API
/// when members' apps may use it.
pub fn hub_services(apps: bool) -> Vec<&'static str> {
    let mut services = vec![CHAT_SERVICE];
    if apps {
        services.push(ASSISTANT_SERVICE);
    }
    services
}

/// The household's chat as a Tailscale Service.
pub const CHAT_SERVICE: &str = "svc:chat";
/// The assistant's API (OpenAI's and Ollama's) as a Tailscale Service.
pub const ASSISTANT_SERVICE: &str = "svc:assistant";

/// Where the hub in Podman alone finds the machine's own Ollama.
pub const OLLAMA_FROM_PODMAN: &str = "host.containers.internal:11434";

/// The search model's id as the gateway and messaging name it (its kind,
/// E5, is read from it: they add the prefixes the model needs).
pub const SEARCH_MODEL: &str = "multilingual-e5-small";

/// The speech model's name (the gateway lists it as `speech/whisper-base`).
pub const SPEECH_MODEL: &str = "whisper-base";

/// The tag the hub's own node carries.
pub const HUB_TAG: &str = "tag:hub";

/// The pod's name (and its containers' prefix).
pub const POD: &str = "hearth";

/// The messaging service's port on the hub's mesh address.
pub const MESSAGING_PORT: u16 = 18_790;

/// The gateway's port on the pod's loopback.
pub const GATEWAY_PORT: u16 = 18_789;

/// The systemd units of the hub, in the order they start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// The coordinator.
    Coordinator,
    /// The hub's own agent.
    Agent,
    /// The model's socket (starts the proxy on first use).
    InferenceSocket,
    /// llama-server behind the socket.
    LlamaServer,
    /// The proxy from the socket to llama-server.
    LlamaProxy,
    /// The proxy from the socket to an Ollama on this machine.
    OllamaProxy,
    /// The search model's socket (starts its proxy on first use).
    EmbeddingsSocket,
    /// The embedding llama-server behind it.
    EmbeddingsServer,
    /// The proxy from that socket to the embedding llama-server.
    EmbeddingsProxy,
    /// The speech model's socket (starts its proxy on first use).
    SpeechSocket,
    /// whisper-server behind it.
    SpeechServer,
    /// The proxy from that socket to whisper-server.
    SpeechProxy,
    /// The gateway and messaging pod.
    Pod,
}

impl Unit {
    /// Every unit.
    pub const ALL: [Unit; 13] = [
        Unit::Coordinator,
        Unit::Agent,
        Unit::InferenceSocket,
        Unit::LlamaServer,
        Unit::LlamaProxy,
        Unit::OllamaProxy,
        Unit::EmbeddingsSocket,
        Unit::EmbeddingsServer,
        Unit::EmbeddingsProxy,
        Unit::SpeechSocket,
        Unit::SpeechServer,
        Unit::SpeechProxy,
        Unit::Pod,
    ];

    /// Its systemd name.
    pub fn name(self) -> &'static str {
        match self {
            Unit::Coordinator => "hearth-coordinator.service",
            Unit::Agent => "hearth-agent.service",
            Unit::InferenceSocket => "hearth-inference.socket",
            Unit::LlamaServer => "hearth-llama-server.service",
            Unit::LlamaProxy => "hearth-llama-proxy.service",
            Unit::OllamaProxy => "hearth-ollama-proxy.service",
            Unit::EmbeddingsSocket => "hearth-embeddings.socket",
            Unit::EmbeddingsServer => "hearth-embeddings.service",
            Unit::EmbeddingsProxy => "hearth-embeddings-proxy.service",
            Unit::SpeechSocket => "hearth-speech.socket",
            Unit::SpeechServer => "hearth-speech.service",
            Unit::SpeechProxy => "hearth-speech-proxy.service",
            Unit::Pod => "hearth-pod.service",
        }
    }

    /// Whether it runs all the time once enabled (the model's services
    /// start on the socket's first connection and stop when idle), under
    /// systemd; in Podman alone (`podman`) the models' servers are
    /// containers of the pod, always running when they are there.
    pub fn always_on(self, podman: bool) -> bool {
        match self {
            Unit::Coordinator
            | Unit::Agent
            | Unit::InferenceSocket
            | Unit::EmbeddingsSocket
            | Unit::SpeechSocket
            | Unit::Pod => true,
            Unit::LlamaServer | Unit::EmbeddingsServer => podman,
            Unit::LlamaProxy
            | Unit::OllamaProxy
            | Unit::EmbeddingsProxy
            | Unit::SpeechServer
            | Unit::SpeechProxy => false,
        }
    }
}

/// The hub's paths under one root.
#[derive(Clone, Debug)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The machine's own paths.
    pub fn system() -> Layout {
        Layout::under(Path::new("/"))
    }

    /// The same paths beneath `root`.
    pub fn under(root: &Path) -> Layout {
        Layout {
            root: root.to_owned(),
        }
    }

    fn at(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// `relative` (a path without its leading `/`) under the root.
    pub fn beneath(&self, relative: &str) -> PathBuf {
        self.at(relative)
    }

    /// The system D-Bus's socket (Podman's systemd cgroup manager talks
    /// to systemd over it).
    pub fn system_bus(&self) -> PathBuf {
        self.at("/run/dbus/system_bus_socket")
    }

    /// A file of the machine's `/etc` (`group`, `passwd`, `timezone`).
    pub fn etc(&self, name: &str) -> PathBuf {
        self.at("/etc").join(name)
    }

    /// `/etc/hearth`: the configuration.
    pub fn config_dir(&self) -> PathBuf {
        self.at("/etc/hearth")
    }

    /// What setup was told (household, URL, admin, model).
    pub fn setup_file(&self) -> PathBuf {
        self.at("/etc/hearth/setup.json")
    }

    /// The coordinator's settings setup chose (its public URL and port).
    pub fn setup_env(&self) -> PathBuf {
        self.at("/etc/hearth/setup.env")
    }

    /// The hub agent's settings (its name in the mesh).
    pub fn agent_env(&self) -> PathBuf {
        self.at("/etc/hearth/agent.env")
    }

    /// The hub agent's join token (0600, root).
    pub fn join_token(&self) -> PathBuf {
        self.at("/etc/hearth/join-token")
    }

    /// The gateway's configuration folder (read-only in its container).
    pub fn gateway_config(&self) -> PathBuf {
        self.at("/etc/hearth/gateway")
    }

    /// The messaging service's configuration folder.
    pub fn messaging_config(&self) -> PathBuf {
        self.at("/etc/hearth/messaging")
    }

    /// The coordinator's state.
    pub fn coordinator_state(&self) -> PathBuf {
        self.at("/var/lib/hearth")
    }

    /// The hub agent's state.
    pub fn agent_state(&self) -> PathBuf {
        self.at("/var/lib/hearth-agent")
    }

    /// llama-server's state (the model file).
    pub fn llama_state(&self) -> PathBuf {
        self.at("/var/lib/hearth-llama")
    }

    /// The gateway's data (keys, sessions, memory, reminders).
    pub fn gateway_data(&self) -> PathBuf {
        self.at("/var/lib/hearth-gateway")
    }

    /// The messaging service's data (history).
    pub fn messaging_data(&self) -> PathBuf {
        self.at("/var/lib/hearth-messaging")
    }

    /// The hub's own records and the assistant's folders.
    pub fn hub_state(&self) -> PathBuf {
        self.at("/var/lib/hearth-hub")
    }

    /// The assistant's persona files (read-only in the pod).
    pub fn workspace(&self) -> PathBuf {
        self.at("/var/lib/hearth-hub/workspace")
    }

    /// The household's documents (read-only in the pod).
    pub fn documents(&self) -> PathBuf {
        self.at("/var/lib/hearth-hub/documents")
    }

    /// The first member's join token, kept to be shown again (0600).
    pub fn first_member_token(&self) -> PathBuf {
        self.at("/var/lib/hearth-hub/first-member.token")
    }

    /// The record of the last backup.
    pub fn last_backup(&self) -> PathBuf {
        self.at("/var/lib/hearth-hub/last-backup.json")
    }

    /// The key that authenticates this hub's backups (0600, root; never
    /// inside a backup).
    pub fn backup_key(&self) -> PathBuf {
        self.at("/var/lib/hearth-hub/backup.key")
    }

    /// What the packages ship beside the binaries.
    pub fn share(&self) -> PathBuf {
        self.at("/usr/share/hearth")
    }

    /// Which images the installed package loaded (`images.json`).
    pub fn images_manifest(&self) -> PathBuf {
        self.at("/usr/share/hearth/images/images.json")
    }

    /// The pod's template.
    pub fn pod_template(&self) -> PathBuf {
        self.at("/usr/share/hearth/hearth-pod.yaml")
    }

    /// Where the model package puts the small default model.
    pub fn default_models(&self) -> PathBuf {
        self.at("/usr/share/hearth/models")
    }

    /// The packaged llama-server.
    pub fn llama_server(&self) -> PathBuf {
        self.at("/usr/lib/hearth/llama-server")
    }

    /// The model file llama-server serves.
    pub fn model_file(&self) -> PathBuf {
        self.at("/var/lib/hearth-llama/model.gguf")
    }

    /// The search model the hearth-model-e5 package installs (the hub's
    /// image carries it at the same path).
    pub fn embedding_model(&self) -> PathBuf {
        self.at("/usr/share/hearth/embeddings/multilingual-e5-small.q4_0.gguf")
    }

    /// The search model's id when it is there: installed by its package on
    /// a Debian hub, carried by the hub's image in Podman alone.
    pub fn search_model(&self) -> Option<&'static str> {
        self.embedding_model().exists().then_some(SEARCH_MODEL)
    }

    /// The speech model the hearth-model-whisper-base package installs.
    pub fn speech_model_file(&self) -> PathBuf {
        self.at("/usr/share/hearth/speech/ggml-base.bin")
    }

    /// The speech model's name when it is there and whisper-server with it
    /// (the hearth-speech package): a Debian hub's only.
    pub fn speech_model(&self) -> Option<&'static str> {
        (self.speech_model_file().exists() && self.at("/usr/lib/hearth/whisper-server").exists())
            .then_some(SPEECH_MODEL)
    }

    /// The speech model's socket (beside the others, in the folder the
    /// pod mounts).
    pub fn speech_socket(&self) -> PathBuf {
        self.at("/run/hearth-inference/speech.sock")
    }

    /// The search model's socket (beside the model's, in the folder the
    /// pod mounts).
    pub fn embeddings_socket(&self) -> PathBuf {
        self.at("/run/hearth-inference/embeddings.sock")
    }

    /// The model's socket's folder.
    pub fn inference_dir(&self) -> PathBuf {
        self.at("/run/hearth-inference")
    }

    /// The model's socket.
    pub fn inference_socket(&self) -> PathBuf {
        self.at("/run/hearth-inference/inference.sock")
    }

    /// The agent's whois-only socket's folder.
    pub fn whois_dir(&self) -> PathBuf {
        self.at("/run/hearth-whois")
    }

    /// The pod as rendered for this hub.
    pub fn pod_rendered(&self) -> PathBuf {
        self.at("/run/hearth/hearth-pod.yaml")
    }

    /// The drop-in that points the model's socket at Ollama.
    pub fn ollama_dropin(&self) -> PathBuf {
        self.at("/etc/systemd/system/hearth-inference.socket.d/ollama.conf")
    }

    /// The folders of the machine where the hub keeps state (for disk use).
    pub fn state_dirs(&self) -> Vec<PathBuf> {
        vec![
            self.coordinator_state(),
            self.agent_state(),
            self.llama_state(),
            self.gateway_data(),
            self.messaging_data(),
            self.hub_state(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model's server stopped is a problem in Podman alone, where it is
    /// a container that always runs; under systemd it starts on its
    /// socket's first connection and stops when idle.
    #[test]
    fn the_models_servers_are_always_on_in_podman_alone_only() {
        for unit in [Unit::LlamaServer, Unit::EmbeddingsServer] {
            assert!(unit.always_on(true) && !unit.always_on(false), "{unit:?}");
        }
        for unit in [Unit::Coordinator, Unit::EmbeddingsSocket, Unit::Pod] {
            assert!(unit.always_on(false), "{unit:?}");
        }
        assert!(!Unit::EmbeddingsProxy.always_on(true));
    }

    #[test]
    fn paths_hang_under_the_root() {
        let layout = Layout::under(Path::new("/tmp/x"));
        assert_eq!(
            layout.join_token(),
            Path::new("/tmp/x/etc/hearth/join-token")
        );
        assert_eq!(
            Layout::system().model_file(),
            Path::new("/var/lib/hearth-llama/model.gguf")
        );
    }
}
