//! The policy file as written: Tailscale's policy format, field by field.
//!
//! This is only the shape; what the names mean is checked in `compile`.
//! Unknown keys are refused with their name and position.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::hujson;

/// A parsed policy document.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Document {
    /// Access rules.
    #[serde(default)]
    pub acls: Vec<AclRule>,
    /// Grants (the newer rule syntax): network capabilities (`ip`) filter
    /// packets, application capabilities (`app`) go to the destinations.
    #[serde(default)]
    pub grants: Vec<Grant>,
    /// `group:name` -> user logins.
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
    /// Host alias -> IP address or prefix.
    #[serde(default)]
    pub hosts: BTreeMap<String, String>,
    /// `tag:name` -> who may apply it (users, groups, tags).
    #[serde(default)]
    pub tag_owners: BTreeMap<String, Vec<String>>,
    /// Who may have routes approved without an admin.
    #[serde(default)]
    pub auto_approvers: AutoApprovers,
    /// Assertions the policy must satisfy to be accepted.
    #[serde(default)]
    pub tests: Vec<PolicyTest>,
    /// Tailscale SSH rules: who may log in to which nodes as which users.
    #[serde(default)]
    pub ssh: Vec<SshEntry>,
    /// Assertions about the `ssh` rules the policy must satisfy.
    #[serde(default)]
    pub ssh_tests: Vec<SshTest>,
    /// Node attributes: the nodes a target names get the attributes
    /// (their Tailscale clients read them as node capabilities).
    #[serde(default)]
    pub node_attrs: Vec<NodeAttrEntry>,
}

/// One entry of `ssh`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SshEntry {
    /// `accept`, or `check` (the user confirms who they are first).
    pub action: String,
    /// Who connects: users, groups, tags, autogroups.
    pub src: Vec<String>,
    /// Which nodes: tags, users, `autogroup:self`, ...
    pub dst: Vec<String>,
    /// Local users: names, `root`, `autogroup:nonroot`, `*`.
    pub users: Vec<String>,
    /// How long a `check` stays good (`12h`, `30m`); Tailscale's default 12h.
    #[serde(default)]
    pub check_period: Option<String>,
    /// Environment variables a client may send.
    #[serde(default)]
    pub accept_env: Vec<String>,
}

/// One entry of `nodeAttrs`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeAttrEntry {
    /// The nodes: users, groups, tags, autogroups, `*`, addresses.
    pub target: Vec<String>,
    /// Attribute names (`drive:share`, `magicdns-aaaa`, ...).
    #[serde(default)]
    pub attr: Vec<String>,
    /// Application capabilities for the nodes (app connectors): refused.
    #[serde(default)]
    pub app: Option<serde_json::Map<String, serde_json::Value>>,
}

/// One entry of `acls`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclRule {
    /// Only `accept` exists.
    pub action: String,
    /// Protocol name or IANA number; absent means TCP, UDP and ICMP.
    #[serde(default)]
    pub proto: Option<Protocol>,
    /// Sources.
    pub src: Vec<String>,
    /// Destinations, `alias:ports`.
    pub dst: Vec<String>,
}

/// One entry of `grants`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// Sources.
    pub src: Vec<String>,
    /// Destinations (aliases without ports).
    pub dst: Vec<String>,
    /// Network capabilities: `*`, `PORTS`, `PROTO:PORTS`.
    #[serde(default)]
    pub ip: Vec<String>,
    /// Application capabilities: capability name -> list of JSON values,
    /// delivered to the destination nodes for their services to read.
    #[serde(default)]
    pub app: Option<serde_json::Map<String, serde_json::Value>>,
    /// Route steering: the destination's routes are taken only through
    /// routers (or exit nodes) with one of these tags.
    #[serde(default)]
    pub via: Vec<String>,
}

/// A protocol as written: a name (`"tcp"`) or number (`"6"` or `6`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Protocol {
    /// A name or a number in a string.
    Text(String),
    /// A number.
    Number(u64),
}

/// `autoApprovers`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AutoApprovers {
    /// Prefix -> who may have routes inside it approved automatically.
    #[serde(default)]
    pub routes: BTreeMap<String, Vec<String>>,
    /// Who may become an exit node automatically.
    #[serde(default)]
    pub exit_node: Vec<String>,
    /// Service (`svc:name`) -> whose devices that advertise it may host it
    /// without the admin choosing them.
    #[serde(default)]
    pub services: BTreeMap<String, Vec<String>>,
}

/// One entry of `tests`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyTest {
    /// Who sends.
    #[serde(default)]
    pub src: Option<String>,
    /// Protocol of the probes.
    #[serde(default)]
    pub proto: Option<Protocol>,
    /// Destinations (`alias:port`) that must be reachable.
    #[serde(default)]
    pub accept: Vec<String>,
    /// Destinations that must not be reachable.
    #[serde(default)]
    pub deny: Vec<String>,
}

/// One entry of `sshTests`: as `src`, logging in to each of `dst` as each
/// user of `accept` is let in, of `check` is checked first, of `deny` is
/// refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshTest {
    /// Who connects (a user, a tag, a host).
    pub src: String,
    /// The nodes (users, tags, hosts, addresses).
    pub dst: Vec<String>,
    /// Local users let in.
    #[serde(default)]
    pub accept: Vec<String>,
    /// Local users let in after a check.
    #[serde(default)]
    pub check: Vec<String>,
    /// Local users refused.
    #[serde(default)]
    pub deny: Vec<String>,
}

/// Why a policy document could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not HuJSON at all.
    #[error(transparent)]
    Syntax(#[from] hujson::HujsonError),
    /// JSON, but not a policy (unknown key, wrong type...).
    #[error("line {line} column {column}: {message}")]
    Shape {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// serde's explanation, naming the key.
        message: String,
    },
}

impl Document {
    /// Parses HuJSON policy text.
    pub fn parse(text: &str) -> Result<Document, ParseError> {
        let json = hujson::standardize(text)?;
        serde_json::from_str(&json).map_err(|error| {
            let message = error.to_string();
            // serde_json appends " at line L column C"; keep the position in front only.
            let message = match message.rfind(" at line ") {
                Some(cut) => message[..cut].to_owned(),
                None => message,
            };
            ParseError::Shape {
                line: error.line(),
                column: error.column(),
                message,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commented_policy_with_trailing_commas_parses() {
        let document = Document::parse(
            r#"{
                // the family
                "groups": {"group:family": ["alice@", "bob@"],},
                "acls": [
                    {"action": "accept", "src": ["group:family"], "dst": ["*:*"]}, /* all */
                ],
            }"#,
        )
        .unwrap();
        assert_eq!(document.groups["group:family"], ["alice@", "bob@"]);
        assert_eq!(document.acls[0].dst, ["*:*"]);
    }

    #[test]
    fn unknown_keys_are_named_with_their_position() {
        let error = Document::parse("{\n  \"acls\": [],\n  \"aclz\": []\n}").unwrap_err();
        let ParseError::Shape { line, message, .. } = &error else {
            panic!("{error:?}")
        };
        assert_eq!(*line, 3);
        assert!(message.contains("unknown field `aclz`"), "{message}");
        let error =
            Document::parse(r#"{"acls": [{"action": "accept", "src": [], "dst": [], "port": 1}]}"#)
                .unwrap_err();
        assert!(
            error.to_string().contains("unknown field `port`"),
            "{error}"
        );
    }

    #[test]
    fn protocols_may_be_names_or_numbers() {
        let document = Document::parse(
            r#"{"acls": [{"action": "accept", "proto": 6, "src": ["*"], "dst": ["*:*"]},
                        {"action": "accept", "proto": "udp", "src": ["*"], "dst": ["*:*"]}]}"#,
        )
        .unwrap();
        assert_eq!(document.acls[0].proto, Some(Protocol::Number(6)));
        assert_eq!(document.acls[1].proto, Some(Protocol::Text("udp".into())));
    }

    #[test]
    fn wrong_types_are_reported() {
        let error = Document::parse(r#"{"groups": {"group:a": "alice@"}}"#).unwrap_err();
        assert!(error.to_string().contains("invalid type"), "{error}");
    }
}
