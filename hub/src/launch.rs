//! `hearth service NAME`: how a container of the hub in Podman alone starts
//! one of the hub's services as its systemd unit would on a Debian hub: the
//! same settings files read first (`EnvironmentFile=`), the same wait for
//! what it needs (`ConditionPathExists=`), the same command line. One
//! source for each service's command, whoever runs it.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::layout::Layout;

/// The port the coordinator listens on inside the hub's pod in Podman
/// alone (the pod publishes it at the setup URL's port).
pub const COORDINATOR_PORT_IN_POD: u16 = 8443;

/// The group the pod's services run as: the agent's whois socket is theirs.
pub const POD_GROUP: u32 = crate::layout::CONTAINER_USER;

/// A service a container of the Podman hub runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Service {
    /// `hearth-coordinator serve`, with `setup.env` and `coordinator.env`.
    Coordinator,
    /// `hearth-agent up`, with `agent.env`, once a join key or the node's
    /// identity is there.
    Agent,
    /// llama-server on the model's socket, once setup placed the model.
    Llama,
    /// llama-server serving the search model's embeddings on its socket
    /// (the image carries the model).
    Embeddings,
}

/// Where the hub's image keeps llama-server (where the
/// hearth-llama-server package puts it on a Debian hub).
pub const LLAMA_SERVER: &str = "/usr/lib/hearth/llama-server";

/// What a service is started with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    /// The files whose `KEY=VALUE` lines are its environment, in order
    /// (later ones win); a missing file is skipped.
    pub environment: Vec<PathBuf>,
    /// It waits until one of these exists (none: it starts at once).
    pub needs_one_of: Vec<PathBuf>,
    /// The program.
    pub program: &'static str,
    /// Its arguments.
    pub arguments: Vec<String>,
    /// A socket the last run left, removed first (a volume keeps it; the
    /// program cannot bind over it).
    pub stale_socket: Option<PathBuf>,
}

/// How `service` is started on `layout`'s hub (the same as its unit's
/// `ExecStart=` on a Debian hub, with the whois socket given to the pod's
/// group, MagicDNS left off (nothing in the pod resolves mesh names), and
/// the userspace data plane: the pod gives the agent `/dev/net/tun` and
/// network administration, no kernel module).
pub fn launch(layout: &Layout, service: Service) -> Launch {
    let path = |path: PathBuf| path.display().to_string();
    match service {
        Service::Coordinator => Launch {
            environment: vec![
                layout.setup_env(),
                layout.config_dir().join("coordinator.env"),
            ],
            needs_one_of: Vec::new(),
            program: "hearth-coordinator",
            arguments: vec![
                "--state-dir".into(),
                path(layout.coordinator_state()),
                "serve".into(),
            ],
            stale_socket: None,
        },
        Service::Agent => Launch {
            environment: vec![layout.agent_env()],
            needs_one_of: vec![
                layout.join_token(),
                layout.agent_state().join("identity.json"),
            ],
            program: "hearth-agent",
            arguments: vec![
                "--state-dir".into(),
                path(layout.agent_state()),
                "up".into(),
                "--token-file".into(),
                path(layout.join_token()),
                "--whois-socket".into(),
                path(layout.whois_dir().join("whois.sock")),
                "--whois-group".into(),
                POD_GROUP.to_string(),
                "--no-magic-dns".into(),
                "--backend".into(),
                "userspace".into(),
                // The coordinator shares the pod: its published address
                // does not lead back in (nor does STUN to it).
                "--coordinator-address".into(),
                format!("127.0.0.1:{COORDINATOR_PORT_IN_POD}"),
                "--stun".into(),
                "off".into(),
            ],
            stale_socket: None,
        },
        // As `hearth-llama-server.service` runs it, but listening on the
        // model's socket itself (no socket unit to hand it over) and with
        // every core the machine gives the pod.
        Service::Llama => Launch {
            environment: Vec::new(),
            needs_one_of: vec![layout.model_file()],
            program: LLAMA_SERVER,
            arguments: vec![
                "--model".into(),
                path(layout.model_file()),
                "--host".into(),
                path(layout.inference_socket()),
                "--ctx-size".into(),
                crate::render::LLAMA_CONTEXT.to_string(),
                "--no-webui".into(),
            ],
            stale_socket: Some(layout.inference_socket()),
        },
        // As `hearth-embeddings.service` runs it, on the search model's
        // socket itself.
        Service::Embeddings => Launch {
            environment: Vec::new(),
            needs_one_of: vec![layout.embedding_model()],
            program: LLAMA_SERVER,
            arguments: [
                "--model",
                &path(layout.embedding_model()),
                "--embeddings",
                "--pooling",
                "mean",
                "--host",
                &path(layout.embeddings_socket()),
                "--threads",
                "1",
                "--ctx-size",
                "2048",
                "--parallel",
                "4",
                "--batch-size",
                "512",
                "--ubatch-size",
                "512",
                "--no-webui",
            ]
            .map(str::to_owned)
            .to_vec(),
            stale_socket: Some(layout.embeddings_socket()),
        },
    }
}

/// A line of an environment file that is not a variable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvironmentError {
    /// No `=` on the line.
    #[error("line {line}: not KEY=VALUE")]
    NotAssignment {
        /// Its number, from 1.
        line: usize,
    },
    /// What stands before the `=` is not a variable's name.
    #[error("line {line}: {key:?} is not a variable name")]
    BadName {
        /// Its number, from 1.
        line: usize,
        /// What stood there.
        key: String,
    },
}

/// The variables of an environment file as systemd reads one: `KEY=VALUE`
/// lines, `#` and `;` comments, blank lines, a value in single or double
/// quotes taken without them. A line that is none of these is an error
/// naming it.
pub fn environment_file(text: &str) -> Result<Vec<(String, String)>, EnvironmentError> {
    let mut variables = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(EnvironmentError::NotAssignment { line: index + 1 });
        };
        let key = key.trim();
        let valid = key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(EnvironmentError::BadName {
                line: index + 1,
                key: key.to_owned(),
            });
        }
        let value = value.trim();
        let unquoted = ['"', '\'']
            .iter()
            .find_map(|quote| {
                value
                    .strip_prefix(*quote)
                    .and_then(|rest| rest.strip_suffix(*quote))
            })
            .unwrap_or(value);
        variables.push((key.to_owned(), unquoted.to_owned()));
    }
    Ok(variables)
}

/// Starts `service` in this process's place (never returns but on error).
pub fn run(layout: &Layout, service: Service) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt as _;
    let launch = launch(layout, service);
    if !launch.needs_one_of.is_empty() {
        wait_for_any(&launch.needs_one_of);
    }
    if let Some(socket) = &launch.stale_socket {
        use std::os::unix::fs::FileTypeExt as _;
        if std::fs::symlink_metadata(socket).is_ok_and(|meta| meta.file_type().is_socket()) {
            std::fs::remove_file(socket)
                .with_context(|| format!("cannot remove the old {}", socket.display()))?;
        }
    }
    let mut command = std::process::Command::new(launch.program);
    command.args(&launch.arguments);
    for file in &launch.environment {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => {
                return Err(error).with_context(|| format!("cannot read {}", file.display()));
            }
        };
        let variables =
            environment_file(&text).map_err(|why| anyhow::anyhow!("{}: {why}", file.display()))?;
        command.envs(variables);
    }
    let error = command.exec();
    bail!("cannot start {}: {error}", launch.program)
}

/// Waits (saying so once) until one of `paths` exists.
fn wait_for_any(paths: &[PathBuf]) {
    let there = |paths: &[PathBuf]| paths.iter().any(|path| Path::exists(path));
    if there(paths) {
        return;
    }
    eprintln!(
        "hearth: waiting for {} (setup writes it)",
        paths
            .iter()
            .map(|path| path.display().to_string())
            .collect::<Vec<_>>()
            .join(" or ")
    );
    while !there(paths) {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_environment_file_reads_as_systemd_reads_it() {
        let text = "# written by setup\nHEARTH_PUBLIC_URL=https://hub.home:443\n\n; a note\n\
                    HEARTH_LISTEN = \"[::]:8443\"\nEMPTY=\nQUOTED='a b'\n";
        assert_eq!(
            environment_file(text).unwrap(),
            [
                (
                    "HEARTH_PUBLIC_URL".to_owned(),
                    "https://hub.home:443".to_owned()
                ),
                ("HEARTH_LISTEN".to_owned(), "[::]:8443".to_owned()),
                ("EMPTY".to_owned(), String::new()),
                ("QUOTED".to_owned(), "a b".to_owned()),
            ]
        );
        assert_eq!(
            environment_file("just words\n").unwrap_err().to_string(),
            "line 1: not KEY=VALUE"
        );
        assert_eq!(
            environment_file("A=1\n1BAD=x"),
            Err(EnvironmentError::BadName {
                line: 2,
                key: "1BAD".into()
            })
        );
    }

    #[test]
    fn each_service_starts_as_its_unit_does() {
        let layout = Layout::system();
        let coordinator = launch(&layout, Service::Coordinator);
        assert_eq!(coordinator.program, "hearth-coordinator");
        assert_eq!(
            coordinator.arguments,
            ["--state-dir", "/var/lib/hearth", "serve"]
        );
        assert_eq!(
            coordinator.environment,
            [
                PathBuf::from("/etc/hearth/setup.env"),
                PathBuf::from("/etc/hearth/coordinator.env")
            ]
        );
        // The systemd unit's command line, word for word, then the pod's
        // socket group and no MagicDNS.
        let unit = include_str!("../../systemd/hearth-agent.service.d/hub.conf");
        let exec = unit
            .lines()
            .filter_map(|line| line.strip_prefix("ExecStart=/usr/bin/hearth-agent "))
            .next()
            .unwrap();
        let agent = launch(&layout, Service::Agent);
        let words: Vec<&str> = exec.split_whitespace().collect();
        assert_eq!(&agent.arguments[..8], &words[..8]);
        assert_eq!(words[8], "hearth-inference");
        assert_eq!(
            agent.arguments[8..],
            [
                "65532",
                "--no-magic-dns",
                "--backend",
                "userspace",
                "--coordinator-address",
                "127.0.0.1:8443",
                "--stun",
                "off"
            ]
        );
        assert!(
            agent
                .needs_one_of
                .contains(&PathBuf::from("/etc/hearth/join-token"))
        );
        // llama-server: the unit's program, model and context, on the
        // model's socket itself (the stale one removed first), with the
        // pod's cores.
        let exec_start = |unit: &'static str| -> Vec<&'static str> {
            unit.lines()
                .find_map(|line| line.strip_prefix("ExecStart="))
                .unwrap()
                .split_whitespace()
                .collect()
        };
        let exec = exec_start(include_str!("../../systemd/hearth-llama-server.service"));
        let llama = launch(&layout, Service::Llama);
        assert_eq!(llama.program, exec[0]);
        let value_of = |words: &[&str], flag: &str| {
            words
                .iter()
                .position(|word| *word == flag)
                .map(|at| words[at + 1].to_owned())
        };
        let arguments: Vec<&str> = llama.arguments.iter().map(String::as_str).collect();
        for flag in ["--model", "--ctx-size"] {
            assert_eq!(value_of(&arguments, flag), value_of(&exec, flag), "{flag}");
        }
        assert!(exec.contains(&"--no-webui") && arguments.contains(&"--no-webui"));
        assert_eq!(
            value_of(&arguments, "--host").as_deref(),
            Some("/run/hearth-inference/inference.sock")
        );
        assert_eq!(
            llama.stale_socket.as_deref(),
            Some(Path::new("/run/hearth-inference/inference.sock"))
        );
        assert_eq!(
            llama.needs_one_of,
            [PathBuf::from("/var/lib/hearth-llama/model.gguf")]
        );
        // The search model: the unit's command but for the socket, which
        // it listens on itself.
        let exec = exec_start(include_str!("../../systemd/hearth-embeddings.service"));
        let embeddings = launch(&layout, Service::Embeddings);
        let arguments: Vec<&str> = embeddings.arguments.iter().map(String::as_str).collect();
        let host = |words: &[&str]| -> Vec<String> {
            let mut words: Vec<String> = words.iter().map(|word| (*word).to_owned()).collect();
            let at = words.iter().position(|word| word == "--host").unwrap();
            words.drain(at..=at + 1);
            words
        };
        assert_eq!(embeddings.program, exec[0]);
        assert_eq!(host(&arguments), host(&exec[1..]));
        assert_eq!(
            value_of(&arguments, "--host").as_deref(),
            Some("/run/hearth-inference/embeddings.sock")
        );
        assert_eq!(
            embeddings.stale_socket.as_deref(),
            Some(Path::new("/run/hearth-inference/embeddings.sock"))
        );
    }
}
