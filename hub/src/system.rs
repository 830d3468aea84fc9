//! The machine, as setup, status and backup touch it: programs run with
//! their errors kept, files written whole with their mode and owner,
//! systemd's units, the coordinator's and the agent's command lines.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::layout::{Layout, Unit};

/// Runs `command`; its stdout if it exits 0, else an error with its stderr.
pub fn run(command: &mut Command) -> anyhow::Result<String> {
    let output = output(command)?;
    if !output.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            describe(command),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs `command` and returns what it did, whatever its exit status.
pub fn output(command: &mut Command) -> anyhow::Result<Output> {
    command
        .output()
        .with_context(|| format!("cannot run `{}`", describe(command)))
}

fn describe(command: &Command) -> String {
    let mut words = vec![command.get_program().to_string_lossy().into_owned()];
    words.extend(
        command
            .get_args()
            .map(|argument| argument.to_string_lossy().into_owned()),
    );
    words.join(" ")
}

/// `hearth-coordinator` against the hub's coordinator.
pub fn coordinator(layout: &Layout) -> Command {
    let mut command = Command::new("hearth-coordinator");
    command.arg("--state-dir").arg(layout.coordinator_state());
    command
}

/// `hearth-agent` against the hub's agent.
pub fn agent(layout: &Layout) -> Command {
    let mut command = Command::new("hearth-agent");
    command.arg("--state-dir").arg(layout.agent_state());
    command
}

/// The hub agent's status, if it answers.
pub fn agent_status(layout: &Layout) -> Option<serde_json::Value> {
    let output = output(agent(layout).args(["status", "--output", "json"])).ok()?;
    if !output.status.success() {
        return None;
    }
    serde_json::from_slice(&output.stdout).ok()
}

/// `systemctl ARGS`.
pub fn systemctl(args: &[&str]) -> anyhow::Result<String> {
    run(Command::new("systemctl").args(args))
}

/// A unit's state (`active`, `failed`, ...) and whether it is enabled.
pub fn unit_state(unit: Unit) -> (String, bool) {
    let shown = output(Command::new("systemctl").args([
        "show",
        "--property=ActiveState",
        "--property=UnitFileState",
        unit.name(),
    ]));
    let text = shown
        .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
        .unwrap_or_default();
    let mut state = "unknown".to_owned();
    let mut enabled = false;
    for line in text.lines() {
        if let Some(value) = line.strip_prefix("ActiveState=") {
            state = value.to_owned();
        }
        if let Some(value) = line.strip_prefix("UnitFileState=") {
            enabled = value == "enabled";
        }
    }
    (state, enabled)
}

/// The last lines a unit logged, for an error message.
pub fn journal(unit: Unit) -> String {
    output(Command::new("journalctl").args(["--no-pager", "-n", "25", "-u", unit.name()]))
        .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
        .unwrap_or_default()
}

/// Who owns a file written by [`write_file`].
#[derive(Clone, Copy, Debug)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

impl Owner {
    /// root.
    pub const ROOT: Owner = Owner { uid: 0, gid: 0 };
}

/// Writes `contents` to `path` whole or not at all (a new file beside it,
/// synced, then renamed over), with `mode` and `owner` from its first byte.
pub fn write_file(path: &Path, contents: &[u8], mode: u32, owner: Owner) -> anyhow::Result<()> {
    let dir = path.parent().context("a file has a folder")?;
    let temporary = dir.join(format!(
        ".{}.{:016x}.partial",
        path.file_name().unwrap_or_default().to_string_lossy(),
        rand::random::<u64>()
    ));
    let result = (|| -> anyhow::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode & 0o700)
            .open(&temporary)
            .with_context(|| format!("cannot write in {}", dir.display()))?;
        std::os::unix::fs::fchown(&file, Some(owner.uid), Some(owner.gid))
            .with_context(|| format!("cannot give {} its owner", path.display()))?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
            .with_context(|| format!("cannot put {} in place", path.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

/// Makes the folder `path` (and its parents) with `mode` and `owner`.
pub fn make_folder(path: &Path, mode: u32, owner: Owner) -> anyhow::Result<()> {
    std::fs::create_dir_all(path).with_context(|| format!("cannot make {}", path.display()))?;
    std::os::unix::fs::chown(path, Some(owner.uid), Some(owner.gid))
        .with_context(|| format!("cannot give {} its owner", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// A file's text, if it exists.
pub fn read_optional(path: &Path) -> anyhow::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The id of the group `name`.
pub fn group(layout: &Layout, name: &str) -> anyhow::Result<u32> {
    let text = std::fs::read_to_string(layout.etc("group"))?;
    group_id(&text, name).with_context(|| {
        format!("there is no group {name}: is the hearth package installed (systemd-sysusers)?")
    })
}

/// The id of the user `name`.
pub fn user(layout: &Layout, name: &str) -> anyhow::Result<u32> {
    let text = std::fs::read_to_string(layout.etc("passwd"))?;
    user_id(&text, name).with_context(|| {
        format!("there is no user {name}: is the hearth package installed (systemd-sysusers)?")
    })
}

/// Waits until `ready` holds, saying what it waits for; the last thing
/// `ready` saw when it gives up after `limit`.
pub fn wait_for(
    what: crate::steps::Awaited,
    limit: Duration,
    mut ready: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut said = false;
    loop {
        let last = match ready() {
            Ok(()) => {
                if said {
                    crate::steps::announce(crate::steps::Step::Ready(start.elapsed().as_secs()));
                }
                return Ok(());
            }
            Err(last) => last,
        };
        if start.elapsed() > limit {
            if said {
                eprintln!();
            }
            bail!(
                "{}",
                what.not_ready(
                    crate::steps::language(),
                    limit.as_secs(),
                    &format!("{last:#}")
                )
            );
        }
        if !said && start.elapsed() > Duration::from_secs(1) {
            eprint!(
                "{}",
                crate::steps::Step::Waiting(what).say(crate::steps::language())
            );
            said = true;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The group id of `name` in `/etc/group`'s text.
pub fn group_id(etc_group: &str, name: &str) -> Option<u32> {
    etc_group.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name)
            .then(|| fields.nth(1)?.parse().ok())
            .flatten()
    })
}

/// The user id of `name` in `/etc/passwd`'s text.
pub fn user_id(etc_passwd: &str, name: &str) -> Option<u32> {
    group_id(etc_passwd, name)
}

/// This node's own mesh address in `hearth-agent status --output json`.
pub fn agent_address(status: &serde_json::Value) -> Option<std::net::Ipv4Addr> {
    status["node"]["ipv4"].as_str()?.parse().ok()
}

/// Waits up to `limit` for the hub's agent to have a mesh address; its
/// status (`hearth-agent status --output json`) then.
pub fn wait_for_agent(layout: &Layout, limit: Duration) -> anyhow::Result<serde_json::Value> {
    let mut status = None;
    wait_for(crate::steps::Awaited::MeshAddress, limit, || {
        status = agent_status(layout).filter(|status| agent_address(status).is_some());
        status
            .as_ref()
            .map(drop)
            .context("hearth-agent has no address yet")
    })?;
    status.context("the agent has an address")
}

/// The IPv4 address of Tailscale Service `name` (`svc:chat`) when this
/// node hosts it, in `hearth-agent status --output json`.
pub fn hosted_address(status: &serde_json::Value, name: &str) -> Option<std::net::Ipv4Addr> {
    status["node"]["hosted"]
        .as_array()?
        .iter()
        .find(|service| service["name"] == name)?["addresses"]
        .as_array()?
        .iter()
        .filter_map(|address| address.as_str()?.parse().ok())
        .next()
}

/// The MagicDNS names of the hub (its node) and of the services it hosts,
/// from its agent's `status`: `hub.<tailnet>`, `chat.<tailnet>`…; none
/// before the coordinator gave a domain.
pub fn magic_dns_names(status: &serde_json::Value) -> Vec<String> {
    let Some(domain) = status["dns_domain"]
        .as_str()
        .filter(|domain| !domain.is_empty())
    else {
        return Vec::new();
    };
    let node = status["node"]["name"].as_str();
    let services = status["node"]["hosted"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|service| service["name"].as_str()?.strip_prefix("svc:"));
    node.into_iter()
        .chain(services)
        .map(|label| format!("{label}.{domain}"))
        .collect()
}

/// Whether this machine answers at `address` (an interface carries it).
pub fn has_address(address: std::net::Ipv4Addr) -> bool {
    output(Command::new("ip").args(["-o", "-4", "addr", "show"]))
        .map(|shown| {
            String::from_utf8_lossy(&shown.stdout)
                .split_whitespace()
                .any(|word| word.split('/').next() == Some(&address.to_string()))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hosted_services_address_is_read_from_the_agents_status() {
        let status = serde_json::json!({"node": {"ipv4": "100.64.0.1", "hosted": [
            {"name": "svc:chat", "addresses": ["100.100.0.1", "fd7a:115c:a1e0::6464:1"]},
            {"name": "svc:assistant", "addresses": ["fd7a:115c:a1e0::6464:2", "100.100.0.2"]}
        ]}});
        assert_eq!(
            hosted_address(&status, "svc:chat"),
            Some(std::net::Ipv4Addr::new(100, 100, 0, 1))
        );
        assert_eq!(
            hosted_address(&status, "svc:assistant"),
            Some(std::net::Ipv4Addr::new(100, 100, 0, 2))
        );
        assert_eq!(hosted_address(&status, "svc:files"), None);
        assert_eq!(
            hosted_address(&serde_json::json!({"node": {}}), "svc:chat"),
            None
        );
    }

    /// Hardening round five, finding 15: the names setup prints are the
    /// ones the gateway and messaging answer to; the pod gives them.
    #[test]
    fn the_hubs_and_its_services_names_come_from_the_agents_status() {
        let status = serde_json::json!({"dns_domain": "hearth.internal", "node": {"name": "hub",
            "hosted": [{"name": "svc:chat", "addresses": []}, {"name": "svc:assistant", "addresses": []}]}});
        assert_eq!(
            magic_dns_names(&status),
            [
                "hub.hearth.internal",
                "chat.hearth.internal",
                "assistant.hearth.internal"
            ]
        );
        assert!(magic_dns_names(&serde_json::json!({"node": {"name": "hub"}})).is_empty());
        assert!(magic_dns_names(&serde_json::Value::Null).is_empty());
    }

    #[test]
    fn ids_are_read_from_the_account_files() {
        let group = "root:x:0:\nhearth-inference:x:996:hearth-llama\nhearth:x:997:\n";
        assert_eq!(group_id(group, "hearth-inference"), Some(996));
        assert_eq!(group_id(group, "hearth"), Some(997));
        assert_eq!(group_id(group, "hearth-inf"), None);
        let passwd = "root:x:0:0:root:/root:/bin/bash\nhearth-coordinator:x:998:998::/var/lib/hearth:/usr/sbin/nologin\n";
        assert_eq!(user_id(passwd, "hearth-coordinator"), Some(998));
    }

    #[test]
    fn the_agents_own_address_is_its_nodes() {
        let status = serde_json::json!({"node": {"ipv4": "100.64.0.7", "name": "hub"},
            "peers": [{"ipv4": "100.64.0.9"}]});
        assert_eq!(
            agent_address(&status),
            Some(std::net::Ipv4Addr::new(100, 64, 0, 7))
        );
        assert_eq!(agent_address(&serde_json::json!({"node": null})), None);
    }
}
