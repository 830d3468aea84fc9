//! The admin's everyday tasks with people and devices: `hearth members`,
//! `hearth invite` and `hearth devices`. A thin shell over the
//! coordinator's admin command (its admin socket, as root), speaking the
//! household's language and handing keys over the way setup does.

use anyhow::{Context, bail};
use hearth_assistant::language::Language;

use crate::layout::Layout;
use crate::record::read_record;
use crate::system;
use crate::words::Invitation;

/// How long a key from `hearth members add` or `hearth invite` is valid.
pub const KEY_LIFETIME: &str = "7d";

/// What `hearth devices` does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceAction {
    /// List them (waiting ones say `pending`).
    List {
        /// As JSON.
        json: bool,
    },
    /// Let a waiting device in.
    Approve(u64),
    /// Take a device out of the household for good.
    Remove(u64),
    /// Give a device another name.
    Rename(u64, String),
    /// Take a device out of the mesh until it is approved again.
    Expire(u64),
}

impl DeviceAction {
    /// The coordinator's words for it.
    fn arguments(&self) -> Vec<String> {
        let id = |id: &u64| id.to_string();
        match self {
            DeviceAction::List { json: true } => {
                vec!["list".into(), "--output".into(), "json".into()]
            }
            DeviceAction::List { json: false } => vec!["list".into()],
            DeviceAction::Approve(device) => vec!["approve".into(), id(device)],
            DeviceAction::Remove(device) => vec!["delete".into(), id(device)],
            DeviceAction::Rename(device, name) => vec!["rename".into(), id(device), name.clone()],
            DeviceAction::Expire(device) => vec!["expire".into(), id(device)],
        }
    }
}

/// The household's language and login URL, as setup recorded them.
fn household(layout: &Layout) -> anyhow::Result<(Language, String)> {
    let record = read_record(layout)?.with_context(|| match crate::steps::language() {
        Language::English => "this hub is not set up yet: run `hearth setup` first",
        Language::Korean => "이 허브는 아직 설정되지 않았어요: 먼저 `hearth setup`을 실행하세요",
    })?;
    Ok((record.answers.language, record.answers.login_url()))
}

/// `hearth members`: the household's people, one a line.
pub fn list(layout: &Layout) -> anyhow::Result<String> {
    household(layout)?;
    let names = member_names(layout)?;
    Ok(names.iter().map(|name| format!("{name}\n")).collect())
}

fn member_names(layout: &Layout) -> anyhow::Result<Vec<String>> {
    let users: serde_json::Value = serde_json::from_str(&system::run(
        system::coordinator(layout).args(["users", "list", "--output", "json"]),
    )?)?;
    Ok(users
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|user| user["name"].as_str().map(str::to_owned))
        .collect())
}

/// `hearth members add NAME`: a new member and a key for their first
/// device (pre-approved unless `needs_approval`); the text to print.
pub fn add(layout: &Layout, name: &str, needs_approval: bool) -> anyhow::Result<String> {
    let (language, login) = household(layout)?;
    // The coordinator says whether `name` is a name it takes.
    if member_names(layout)?.iter().any(|known| known == name) {
        bail!(match language {
            Language::English => format!(
                "{name} is already a member: `hearth invite {name}` makes a key for another device"
            ),
            Language::Korean => format!(
                "{name}은(는) 이미 가족 구성원이에요: 다른 기기의 키는 `hearth invite {name}`로 만들어요"
            ),
        });
    }
    system::run(system::coordinator(layout).args(["users", "create", name]))?;
    key_for(layout, language, &login, name, needs_approval)
}

/// `hearth invite NAME`: a key for one more device of a member; the text
/// to print.
pub fn invite(layout: &Layout, name: &str, needs_approval: bool) -> anyhow::Result<String> {
    let (language, login) = household(layout)?;
    if !member_names(layout)?.iter().any(|known| known == name) {
        bail!(match language {
            Language::English =>
                format!("{name} is not a member: `hearth members add {name}` first"),
            Language::Korean => format!(
                "{name}은(는) 가족 구성원이 아니에요: 먼저 `hearth members add {name}`을 하세요"
            ),
        });
    }
    key_for(layout, language, &login, name, needs_approval)
}

/// A new key for one device of `name`'s, handed over as text.
fn key_for(
    layout: &Layout,
    language: Language,
    login: &str,
    name: &str,
    needs_approval: bool,
) -> anyhow::Result<String> {
    let mut command = system::coordinator(layout);
    command.args([
        "preauthkeys",
        "create",
        "--user",
        name,
        "--expiration",
        KEY_LIFETIME,
    ]);
    if !needs_approval {
        command.arg("--pre-approved");
    }
    command.args(["--output", "json"]);
    let created: serde_json::Value = serde_json::from_str(&system::run(&mut command)?)?;
    let key = zeroize::Zeroizing::new(
        created["token"]
            .as_str()
            .context("the coordinator's key has no token")?
            .to_owned(),
    );
    let qr = hearth_runtime::terminal::qr(login).unwrap_or_default();
    Ok(Invitation {
        member: name,
        key: &key,
        login,
        qr: &qr,
        pre_approved: !needs_approval,
    }
    .say(language))
}

/// `hearth devices …`: what the coordinator says back; when it refuses,
/// its reason in the hub's words and what to do next (never the
/// coordinator's command line).
pub fn devices(layout: &Layout, action: &DeviceAction) -> anyhow::Result<String> {
    let (language, _) = household(layout)?;
    let output = system::output(
        system::coordinator(layout)
            .arg("nodes")
            .args(action.arguments()),
    )?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    bail!(
        "{}",
        refused(language, action, &String::from_utf8_lossy(&output.stderr))
    )
}

/// What the admin is told when the coordinator refuses `action` with
/// `stderr`: its reason (a device where it says node), and the next step.
fn refused(language: Language, action: &DeviceAction, stderr: &str) -> String {
    let korean = language == Language::Korean;
    let reason = stderr
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or(if korean {
            "코디네이터가 거절했어요"
        } else {
            "the coordinator refused it"
        });
    let reason = reason.strip_prefix("error: ").unwrap_or(reason);
    let device = match action {
        DeviceAction::Approve(id)
        | DeviceAction::Remove(id)
        | DeviceAction::Rename(id, _)
        | DeviceAction::Expire(id) => Some(*id),
        DeviceAction::List { .. } => None,
    };
    let listed = if korean {
        "`hearth devices`가 가족의 기기를 번호와 함께 보여 줘요"
    } else {
        "`hearth devices` lists the household's devices with their numbers"
    };
    match device {
        Some(id) if reason.contains("not found") && korean => {
            format!("이 가족에는 {id}번 기기가 없어요: {listed}")
        }
        Some(id) if reason.contains("not found") => {
            format!("there is no device {id} in this household: {listed}")
        }
        // The coordinator's own reason stays as it said it (in English).
        _ => format!("{}: {listed}", reason.replace("node ", "device ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hardening round five, finding 19: ``hearth: `hearth-coordinator
    /// --state-dir /var/lib/hearth nodes approve 9` failed (exit status:
    /// 1): error: node 9 not found``. Now: the reason in the hub's words,
    /// and where to look next.
    #[test]
    fn a_refusal_says_why_and_what_next_without_the_internal_command() {
        let said = refused(
            Language::English,
            &DeviceAction::Approve(9),
            "error: node 9 not found\n",
        );
        assert_eq!(
            said,
            "there is no device 9 in this household: `hearth devices` lists the household's \
             devices with their numbers"
        );
        let said = refused(
            Language::English,
            &DeviceAction::Rename(3, "chat".into()),
            "error: `chat` is the name of the household's service svc:chat\n",
        );
        assert!(
            said.starts_with("`chat` is the name of the household's service"),
            "{said}"
        );
        let korean = refused(
            Language::Korean,
            &DeviceAction::Approve(9),
            "error: node 9 not found\n",
        );
        assert_eq!(
            korean,
            "이 가족에는 9번 기기가 없어요: `hearth devices`가 가족의 기기를 번호와 함께 보여 줘요"
        );
        for said in [
            said,
            korean,
            refused(Language::English, &DeviceAction::Remove(4), ""),
        ] {
            assert!(
                !said.contains("hearth-coordinator") && !said.contains("--state-dir"),
                "{said}"
            );
        }
    }

    #[test]
    fn each_device_action_is_the_coordinators_nodes_command() {
        assert_eq!(DeviceAction::Approve(3).arguments(), ["approve", "3"]);
        assert_eq!(DeviceAction::Remove(3).arguments(), ["delete", "3"]);
        assert_eq!(
            DeviceAction::Rename(3, "bens-phone".into()).arguments(),
            ["rename", "3", "bens-phone"]
        );
        assert_eq!(DeviceAction::Expire(4).arguments(), ["expire", "4"]);
        assert_eq!(
            DeviceAction::List { json: true }.arguments(),
            ["list", "--output", "json"]
        );
    }
}
