//! The Podman service's API (libpod's REST API on its UNIX socket), as the
//! hub in Podman alone uses it from its own container: play the hub's pod
//! from its kube file, start, stop and restart its containers, ask how
//! they are and what they said. No `podman` program is needed in the
//! container (the image holds none), and on a Mac the socket is the one
//! inside `podman machine`'s VM, where the containers run.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::probe::{self, Target};

/// Where the API is asked (its version in every path).
const API: &str = "/v4.0.0/libpod";
/// How long playing a pod may take (containers created and started).
const PLAY_DEADLINE: Duration = Duration::from_secs(300);
/// How long other calls may take (a stop waits for the container).
const CALL_DEADLINE: Duration = Duration::from_secs(60);

/// The Podman service at a socket.
#[derive(Clone, Debug)]
pub struct Podman {
    socket: PathBuf,
}

/// How a container is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerState {
    /// Podman's word: `running`, `exited`, `created`, `stopped`…
    pub status: String,
    /// Its last exit code.
    pub exit_code: i64,
}

impl ContainerState {
    /// As systemd says a unit is: `active`, `failed` (exited with an
    /// error), `inactive`.
    pub fn as_unit_state(&self) -> &'static str {
        match self.status.as_str() {
            "running" => "active",
            "exited" | "stopped" if self.exit_code != 0 => "failed",
            "created" | "initialized" => "activating",
            _ => "inactive",
        }
    }
}

impl Podman {
    /// The service at `socket`.
    pub fn at(socket: PathBuf) -> Podman {
        Podman { socket }
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
        deadline: Duration,
    ) -> anyhow::Result<probe::Answer> {
        probe::request(
            &Target::Unix(self.socket.clone()),
            method,
            &format!("{API}{path}"),
            body,
            deadline,
        )
        .with_context(|| {
            format!(
                "the Podman service at {} does not answer (is the socket mounted, and \
                 `podman machine` rootful on a Mac?)",
                self.socket.display()
            )
        })
    }

    fn ok(&self, method: &str, path: &str, answer: &probe::Answer) -> anyhow::Result<()> {
        if (200..300).contains(&answer.status) || answer.status == 304 {
            return Ok(());
        }
        bail!(
            "Podman refused {method} {path} ({}): {}",
            answer.status,
            api_message(&answer.body)
        )
    }

    /// Whether the service answers.
    pub fn ping(&self) -> anyhow::Result<()> {
        let answer = self.call("GET", "/_ping", None, CALL_DEADLINE)?;
        self.ok("GET", "/_ping", &answer)
    }

    /// Plays the kube file `yaml` on `network`: its pod and containers
    /// are made and started, its named volumes made when missing.
    pub fn play(&self, yaml: &str, network: &str) -> anyhow::Result<()> {
        let path = format!("/play/kube?network={}&start=true", query(network));
        let answer = self.call(
            "POST",
            &path,
            Some(("application/x-yaml", yaml.as_bytes())),
            PLAY_DEADLINE,
        )?;
        self.ok("POST", "/play/kube", &answer)
    }

    /// The names of pod `pod`'s containers (its infra container among
    /// them), or `None` when there is no such pod.
    pub fn pod_containers(&self, pod: &str) -> anyhow::Result<Option<Vec<String>>> {
        let answer = self.call(
            "GET",
            &format!("/pods/{}/json", query(pod)),
            None,
            CALL_DEADLINE,
        )?;
        if answer.status == 404 {
            return Ok(None);
        }
        self.ok("GET", "/pods/…/json", &answer)?;
        pod_members(&answer.body).map(Some)
    }

    /// Removes pod `pod` and its containers (never its volumes): stopped
    /// first, then removed, again for a while when a container is still
    /// between running and exited (Podman 4.3 refuses to remove one then).
    pub fn remove_pod(&self, pod: &str) -> anyhow::Result<()> {
        let stop = format!("/pods/{}/stop?t=10", query(pod));
        let stopped = self.call("POST", &stop, None, CALL_DEADLINE)?;
        if stopped.status == 404 {
            return Ok(());
        }
        let path = format!("/pods/{}?force=true", query(pod));
        let mut tries = 0;
        loop {
            let answer = self.call("DELETE", &path, None, CALL_DEADLINE)?;
            if answer.status == 404 {
                return Ok(());
            }
            tries += 1;
            match self.ok("DELETE", &path, &answer) {
                Ok(()) => return Ok(()),
                Err(error) if tries >= 20 => return Err(error),
                Err(_) => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }

    /// How container `name` is, if it exists.
    pub fn state(&self, name: &str) -> anyhow::Result<Option<ContainerState>> {
        let answer = self.call(
            "GET",
            &format!("/containers/{}/json", query(name)),
            None,
            CALL_DEADLINE,
        )?;
        if answer.status == 404 {
            return Ok(None);
        }
        self.ok("GET", "/containers/…/json", &answer)?;
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Inspected {
            state: Inner,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Inner {
            status: String,
            #[serde(default)]
            exit_code: i64,
        }
        let inspected: Inspected = serde_json::from_slice(&answer.body)
            .context("Podman's answer about a container does not read")?;
        Ok(Some(ContainerState {
            status: inspected.state.status,
            exit_code: inspected.state.exit_code,
        }))
    }

    /// `start`, `stop` or `restart` container `name`.
    pub fn act(&self, name: &str, action: &str) -> anyhow::Result<()> {
        let path = format!("/containers/{}/{action}", query(name));
        let answer = self.call("POST", &path, None, CALL_DEADLINE)?;
        self.ok("POST", &path, &answer)
    }

    /// The last lines container `name` wrote (standard output and error).
    pub fn logs(&self, name: &str) -> String {
        let path = format!(
            "/containers/{}/logs?stdout=true&stderr=true&tail=25",
            query(name)
        );
        match self.call("GET", &path, None, CALL_DEADLINE) {
            Ok(answer) if answer.status == 200 => demultiplex(&answer.body),
            Ok(answer) => api_message(&answer.body),
            Err(error) => format!("{error:#}"),
        }
    }
}

/// `text` as a URL path segment or query value (names of pods, networks
/// and containers are letters, digits, `-`, `_` and `.`; anything else is
/// escaped).
fn query(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-_.".contains(&byte) {
                char::from(byte).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

/// The names of the containers in Podman's answer about a pod
/// (`{"Containers": [{"Name": …}, …], …}`; a pod without containers may
/// leave the list out or null).
fn pod_members(body: &[u8]) -> anyhow::Result<Vec<String>> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Inspected {
        #[serde(default)]
        containers: Option<Vec<Member>>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Member {
        name: String,
    }
    let inspected: Inspected =
        serde_json::from_slice(body).context("Podman's answer about a pod does not read")?;
    Ok(inspected
        .containers
        .unwrap_or_default()
        .into_iter()
        .map(|member| member.name)
        .collect())
}

/// The message of a Podman error answer (`{"message": …}`), or its text.
fn api_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|value| value["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned())
}

/// A container's log stream as text: Docker's multiplexed frames (a byte
/// for the stream, three zero bytes, a big-endian length, the data), or
/// the bytes as they are when they are not framed so.
pub fn demultiplex(body: &[u8]) -> String {
    let mut text = Vec::new();
    let mut rest = body;
    while let [stream, 0, 0, 0, a, b, c, d, after @ ..] = rest {
        if *stream > 2 {
            break;
        }
        let length = u32::from_be_bytes([*a, *b, *c, *d]) as usize;
        let Some(data) = after.get(..length) else {
            break;
        };
        text.extend_from_slice(data);
        rest = &after[length..];
    }
    if text.is_empty() && !rest.is_empty() {
        return String::from_utf8_lossy(body).into_owned();
    }
    String::from_utf8_lossy(&text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pods_containers_are_read_from_its_inspection() {
        let body = br#"{"Id":"4f1c","Name":"hth7","State":"Degraded","Containers":[
            {"Id":"aa","Name":"4f1c5d2e-infra","State":"running"},
            {"Id":"bb","Name":"hth7-agent","State":"running"}]}"#;
        assert_eq!(pod_members(body).unwrap(), ["4f1c5d2e-infra", "hth7-agent"]);
        assert!(
            pod_members(br#"{"Name":"hth7","Containers":null}"#)
                .unwrap()
                .is_empty()
        );
        assert!(pod_members(b"<html>").is_err());
    }

    #[test]
    fn a_containers_state_reads_as_a_units() {
        let state = |status: &str, exit_code| ContainerState {
            status: status.into(),
            exit_code,
        };
        assert_eq!(state("running", 0).as_unit_state(), "active");
        assert_eq!(state("exited", 1).as_unit_state(), "failed");
        assert_eq!(state("exited", 0).as_unit_state(), "inactive");
        assert_eq!(state("created", 0).as_unit_state(), "activating");
    }

    #[test]
    fn logs_are_read_out_of_their_frames() {
        let mut framed = vec![1, 0, 0, 0, 0, 0, 0, 6];
        framed.extend_from_slice(b"hello\n");
        framed.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 4]);
        framed.extend_from_slice(b"err\n");
        assert_eq!(demultiplex(&framed), "hello\nerr\n");
        assert_eq!(demultiplex(b"plain text\n"), "plain text\n");
        assert_eq!(query("hearth-hub"), "hearth-hub");
        assert_eq!(query("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn the_api_is_spoken_over_its_socket() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("podman.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let server = std::thread::spawn(move || {
            use std::io::{Read as _, Write as _};
            let mut seen = Vec::new();
            for answer in [
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
                "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 23\r\n\r\n{\"message\":\"no image\"}\n",
            ] {
                let (mut stream, _) = listener.accept().unwrap();
                let mut request = vec![0u8; 4096];
                let read = stream.read(&mut request).unwrap();
                seen.push(String::from_utf8_lossy(&request[..read]).into_owned());
                stream.write_all(answer.as_bytes()).unwrap();
            }
            seen
        });
        let podman = Podman::at(socket);
        podman.play("kind: Pod\n", "hearth").unwrap();
        assert_eq!(podman.state("hearth-agent").unwrap(), None);
        let refused = podman.act("hearth-agent", "start").unwrap_err().to_string();
        assert!(refused.contains("no image"), "{refused}");
        let seen = server.join().unwrap();
        assert!(
            seen[0].starts_with("POST /v4.0.0/libpod/play/kube?network=hearth&start=true HTTP/1.0")
        );
        assert!(seen[0].ends_with("\r\n\r\nkind: Pod\n"), "{}", seen[0]);
        assert!(seen[1].starts_with("GET /v4.0.0/libpod/containers/hearth-agent/json"));
    }
}
