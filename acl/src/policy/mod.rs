//! A validated policy: the document, its names resolved, compiled to rules.
//!
//! Validation follows what Tailscale's control plane refuses: `deny` rules,
//! tags missing from `tagOwners`, unknown groups and hosts, named ports,
//! `autogroup:self` as a source or with sources other than users and groups,
//! and a failing `tests` block (checked against a topology, see
//! [`Policy::check_tests`]).

mod assertions;
mod grants;

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;

use crate::alias::{Alias, AutoGroup, parse_ports, parse_prefix, split_destination};
use crate::compiled::{CompiledPolicy, Principal, Rule, RuleDestination};
use crate::document::{Document, ParseError, Protocol};
use crate::filter::{Source, proto};
use crate::node::NodeIdentity;

/// Why a policy was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The text is not a policy document.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The document means something Hearth (and Tailscale) refuses.
    #[error("{0}")]
    Invalid(String),
    /// Entries of the `tests` block failed.
    #[error("test(s) failed:\n  {}", .0.join("\n  "))]
    TestsFailed(Vec<String>),
}

pub(crate) fn invalid(message: impl Into<String>) -> PolicyError {
    PolicyError::Invalid(message.into())
}

/// Group name (without `group:`) -> the users an identity provider says
/// are in it.
pub type ProviderGroups = BTreeMap<String, BTreeSet<String>>;

/// The nodes and users a policy's `tests` are checked against.
#[derive(Clone, Debug, Default)]
pub struct Topology {
    /// Logins of every user.
    pub users: Vec<String>,
    /// Every node.
    pub nodes: Vec<NodeIdentity>,
}

/// A validated policy.
#[derive(Clone, Debug)]
pub struct Policy {
    /// The document as written.
    pub document: Document,
    /// What the engine evaluates.
    pub compiled: CompiledPolicy,
    names: Names,
}

/// The policy's own names, resolved.
#[derive(Clone, Debug, Default)]
pub(crate) struct Names {
    /// Group -> normalized user logins.
    pub groups: BTreeMap<String, Vec<String>>,
    /// Host alias -> prefix.
    pub hosts: BTreeMap<String, IpNet>,
    /// Tags declared in `tagOwners`.
    pub tags: BTreeSet<String>,
}

/// A user login as the engine compares it: `alice@` (Headscale's form for a
/// user without a domain) means the user named `alice`.
pub fn normalize_login(login: &str) -> String {
    login.strip_suffix('@').unwrap_or(login).to_owned()
}

impl Names {
    fn from_document(document: &Document) -> Result<Names, PolicyError> {
        let mut names = Names::default();
        for tag in document.tag_owners.keys() {
            if !tag.starts_with("tag:") || tag.len() == 4 {
                return Err(invalid(format!(
                    "tagOwners: {tag:?} is not a tag (tags look like tag:name)"
                )));
            }
            names.tags.insert(tag.clone());
        }
        for (group, members) in &document.groups {
            if !group.starts_with("group:") || group.len() == 6 {
                return Err(invalid(format!(
                    "groups: {group:?} is not a group name (groups look like group:name)"
                )));
            }
            let mut logins = Vec::new();
            for member in members {
                match Alias::parse(member) {
                    Ok(Alias::User(login)) => logins.push(normalize_login(&login)),
                    _ => {
                        return Err(invalid(format!(
                            "groups: {group}: {member:?} is not a user login (groups hold users like alice@example.com or alice@)"
                        )));
                    }
                }
            }
            names.groups.insert(group.clone(), logins);
        }
        for (host, address) in &document.hosts {
            if host.is_empty() || host.contains('@') || host.contains(':') || host == "*" {
                return Err(invalid(format!("hosts: {host:?} cannot be a host name")));
            }
            let prefix = parse_prefix(address).ok().flatten().ok_or_else(|| {
                invalid(format!(
                    "hosts: {host}: {address:?} is not an IP address or prefix"
                ))
            })?;
            names.hosts.insert(host.clone(), prefix);
        }
        for (tag, owners) in &document.tag_owners {
            for owner in owners {
                names
                    .check_owner(owner)
                    .map_err(|reason| invalid(format!("tagOwners: {tag}: {reason}")))?;
            }
        }
        Ok(names)
    }

    /// Checks a tag owner or auto-approver: a user, a group, a tag.
    fn check_owner(&self, owner: &str) -> Result<(), PolicyError> {
        match Alias::parse(owner) {
            Ok(Alias::User(_)) => Ok(()),
            Ok(Alias::Group(group)) if self.groups.contains_key(&group) => Ok(()),
            Ok(Alias::Group(group)) => Err(invalid(format!("group not found: {group:?}"))),
            Ok(Alias::Tag(tag)) if self.tags.contains(&tag) => Ok(()),
            Ok(Alias::Tag(tag)) => Err(invalid(format!("tag not found: {tag:?}"))),
            Ok(Alias::AutoGroup(AutoGroup::Member | AutoGroup::Tagged)) => Ok(()),
            _ => Err(invalid(format!(
                "{owner:?} must be a user, a group or a tag"
            ))),
        }
    }

    /// Resolves an alias on a rule's source side to the sources it names.
    pub(crate) fn resolve_source(&self, alias: &Alias) -> Result<Vec<Source>, PolicyError> {
        Ok(match alias {
            Alias::Wildcard => vec![Source::Any],
            Alias::User(login) => match login.strip_prefix("*@") {
                Some(domain) if !domain.is_empty() => vec![Source::Domain(domain.to_owned())],
                Some(_) => return Err(invalid(format!("{login:?} names no domain"))),
                None => vec![Source::User(normalize_login(login))],
            },
            Alias::Group(group) => self
                .groups
                .get(group)
                .ok_or_else(|| invalid(format!("group not found: {group:?}")))?
                .iter()
                .map(|login| Source::User(login.clone()))
                .collect(),
            Alias::Tag(tag) if self.tags.contains(tag) => vec![Source::Tag(tag.clone())],
            Alias::Tag(tag) => {
                return Err(invalid(format!(
                    "tag not found: {tag:?} (declare it in tagOwners)"
                )));
            }
            Alias::Host(host) => {
                vec![Source::Prefix(*self.hosts.get(host).ok_or_else(|| {
                    invalid(format!("host not found: {host:?} (declare it in hosts)"))
                })?)]
            }
            Alias::Prefix(prefix) => vec![Source::Prefix(*prefix)],
            Alias::AutoGroup(AutoGroup::Member) => vec![Source::Member],
            Alias::AutoGroup(AutoGroup::Tagged) => vec![Source::Tagged],
            Alias::AutoGroup(AutoGroup::DangerAll) => vec![Source::All],
            Alias::Service(name) => {
                return Err(invalid(format!(
                    "{name:?} not valid on the src side of a rule (a service is only a destination)"
                )));
            }
            Alias::AutoGroup(AutoGroup::SelfDevices) => {
                return Err(invalid(
                    "\"autogroup:self\" not valid on the src side of a rule",
                ));
            }
            Alias::AutoGroup(AutoGroup::Internet) => {
                return Err(invalid(
                    "\"autogroup:internet\" not valid on the src side of a rule",
                ));
            }
        })
    }

    /// Resolves an alias on a rule's destination side to what it names:
    /// what a source names too, or what only a destination can.
    pub(crate) fn resolve_destination(&self, alias: &Alias) -> Result<Vec<Principal>, PolicyError> {
        Ok(match alias {
            Alias::Service(name) => vec![Principal::Service(name.clone())],
            Alias::AutoGroup(AutoGroup::DangerAll) => vec![Principal::Named(Source::Any)],
            Alias::AutoGroup(AutoGroup::SelfDevices) => vec![Principal::SelfDevices],
            Alias::AutoGroup(AutoGroup::Internet) => vec![Principal::Internet],
            _ => self
                .resolve_source(alias)?
                .into_iter()
                .map(Principal::Named)
                .collect(),
        })
    }
}

/// `entries` (the policy's `field`) as the sources a node matches others
/// against (users, groups, tags, autogroups, addresses).
fn filter_sources(
    names: &Names,
    field: &str,
    entries: &[String],
) -> Result<Vec<crate::filter::Source>, PolicyError> {
    let mut sources = Vec::new();
    for entry in entries {
        let alias =
            Alias::parse(entry).map_err(|error| invalid(format!("{field}={entry:?}: {error}")))?;
        sources.extend(
            names
                .resolve_source(&alias)
                .map_err(|error| invalid(format!("{field}={entry:?}: {error}")))?,
        );
    }
    Ok(sources)
}

/// One `ssh` entry: its names resolved, its action and users checked.
fn ssh_rule(
    names: &Names,
    entry: &crate::document::SshEntry,
) -> Result<crate::compiled::SshRule, PolicyError> {
    let check_period = match entry.action.as_str() {
        "accept" if entry.check_period.is_some() => {
            return Err(invalid("checkPeriod: only a `check` rule has one"));
        }
        "accept" => None,
        "check" => Some(match &entry.check_period {
            None => 12 * 3600,
            Some(text) => parse_period(text).ok_or_else(|| {
                invalid(format!(
                    "checkPeriod={text:?} is not a duration like 12h or 30m"
                ))
            })?,
        }),
        other => {
            return Err(invalid(format!(
                "action={other:?} is not supported (\"accept\" or \"check\")"
            )));
        }
    };
    if entry.users.is_empty() {
        return Err(invalid("users: names no local user"));
    }
    for user in &entry.users {
        let valid = user == "*"
            || user == "autogroup:nonroot"
            || (!user.is_empty()
                && !user.contains(':')
                && user
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || b"._-$".contains(&byte)));
        if !valid {
            return Err(invalid(format!("users: {user:?} is not a local user name")));
        }
    }
    let sources = filter_sources(names, "src", &entry.src)?;
    let mut destinations = Vec::new();
    for dst in &entry.dst {
        let alias = Alias::parse(dst).map_err(|error| invalid(format!("dst={dst:?}: {error}")))?;
        if matches!(alias, Alias::Wildcard) {
            return Err(invalid(
                "dst=\"*\": name the nodes (tags, users, autogroup:self)",
            ));
        }
        destinations.extend(
            names
                .resolve_destination(&alias)
                .map_err(|error| invalid(format!("dst={dst:?}: {error}")))?,
        );
    }
    if sources.is_empty() || destinations.is_empty() {
        return Err(invalid("names nobody on one side"));
    }
    Ok(crate::compiled::SshRule {
        sources: sources.clone(),
        destinations,
        grant: crate::compiled::NodeSshRule {
            sources,
            same_user: false,
            users: entry.users.clone(),
            check_period,
            accept_env: entry.accept_env.clone(),
        },
    })
}

/// `12h`, `30m`, `90s`, `1d`: seconds.
fn parse_period(text: &str) -> Option<u64> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    number.checked_mul(scale).filter(|seconds| *seconds > 0)
}

/// Attributes a self-hosted coordinator cannot honour, and why.
const REFUSED_ATTRS: &[(&str, &str)] = &[(
    "funnel",
    "Funnel publishes a device on the internet through Tailscale's own servers, which a self-hosted coordinator does not have",
)];

/// One `nodeAttrs` entry: its targets resolved, its attributes checked.
fn node_attrs(
    names: &Names,
    entry: &crate::document::NodeAttrEntry,
) -> Result<crate::compiled::NodeAttrs, PolicyError> {
    if entry.app.as_ref().is_some_and(|app| !app.is_empty()) {
        return Err(invalid(
            "app: application capabilities in nodeAttrs (app connectors) are not supported",
        ));
    }
    if entry.target.is_empty() {
        return Err(invalid("target: names no node"));
    }
    let targets = filter_sources(names, "target", &entry.target)?;
    let mut attrs = std::collections::BTreeSet::new();
    for attr in &entry.attr {
        if let Some((_, why)) = REFUSED_ATTRS.iter().find(|(name, _)| name == attr) {
            return Err(invalid(format!("attr={attr:?} is not offered: {why}")));
        }
        if attr.is_empty() || attr.chars().any(char::is_whitespace) {
            return Err(invalid(format!("attr={attr:?} is not an attribute name")));
        }
        attrs.insert(attr.clone());
    }
    Ok(crate::compiled::NodeAttrs { targets, attrs })
}

/// Resolves a protocol name or number to IANA numbers.
pub(crate) fn protocols(protocol: Option<&Protocol>) -> Result<Vec<u8>, PolicyError> {
    let Some(protocol) = protocol else {
        return Ok(proto::DEFAULT.to_vec());
    };
    let text = match protocol {
        Protocol::Number(number) => number.to_string(),
        Protocol::Text(text) => text.to_ascii_lowercase(),
    };
    let number = match text.as_str() {
        "icmp" => proto::ICMP,
        "igmp" => proto::IGMP,
        "ipv4" | "ip-in-ip" => 4,
        "tcp" => proto::TCP,
        "egp" => 8,
        "igp" => 9,
        "udp" => proto::UDP,
        "gre" => 47,
        "esp" => 50,
        "ah" => 51,
        "ipv6-icmp" | "icmpv6" => proto::ICMPV6,
        "sctp" => proto::SCTP,
        number => number.parse::<u8>().map_err(|_| {
            invalid(format!(
                "proto {text:?} is not a protocol name or a number from 0 to 255"
            ))
        })?,
    };
    Ok(vec![number])
}

impl Policy {
    /// Parses and validates policy text (the `tests` block is checked separately,
    /// against a topology, by [`Policy::check_tests`]).
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        Policy::from_document(Document::parse(text)?)
    }

    /// Parses `text` with the members an identity provider gives its groups:
    /// `provider_groups` maps a provider's group name (`family`) to the users
    /// it holds, and each group the policy declares (`group:family`) holds
    /// them as well as those it lists. A provider group the policy does not
    /// declare names no one: a misspelt group stays an error.
    pub fn parse_with_provider_groups(
        text: &str,
        provider_groups: &ProviderGroups,
    ) -> Result<Policy, PolicyError> {
        let document = Document::parse(text)?;
        let mut names = Names::from_document(&document)?;
        for (group, members) in &mut names.groups {
            let Some(from_provider) = group
                .strip_prefix("group:")
                .and_then(|name| provider_groups.get(name))
            else {
                continue;
            };
            for login in from_provider {
                let login = normalize_login(login);
                if !members.contains(&login) {
                    members.push(login);
                }
            }
        }
        Policy::compile(document, names)
    }

    /// Validates a parsed document.
    pub fn from_document(document: Document) -> Result<Policy, PolicyError> {
        let names = Names::from_document(&document)?;
        Policy::compile(document, names)
    }

    fn compile(document: Document, names: Names) -> Result<Policy, PolicyError> {
        let mut rules = Vec::new();
        for (index, acl) in document.acls.iter().enumerate() {
            let context =
                |message: &dyn std::fmt::Display| invalid(format!("acls[{index}]: {message}"));
            if acl.action != "accept" {
                return Err(context(&format!(
                    "action={:?} is not supported (only \"accept\")",
                    acl.action
                )));
            }
            let protocols = protocols(acl.proto.as_ref()).map_err(|error| context(&error))?;
            let (src, src_aliases) = sources(&names, &acl.src).map_err(|error| context(&error))?;
            let mut dst = Vec::new();
            for entry in &acl.dst {
                let (alias, ports) = split_destination(entry)
                    .map_err(|error| context(&format!("dst={entry:?}: {error}")))?;
                let ports = parse_ports(ports)
                    .map_err(|error| context(&format!("dst={entry:?}: {error}")))?;
                let alias = Alias::parse(alias)
                    .map_err(|error| context(&format!("dst={entry:?}: {error}")))?;
                for principal in names.resolve_destination(&alias).map_err(|error| {
                    context(&format!("dst={alias_text:?}: {error}", alias_text = entry))
                })? {
                    dst.push(RuleDestination {
                        principal,
                        ports: ports.clone(),
                    });
                }
            }
            check_self_sources(&dst, &src_aliases, true).map_err(|error| context(&error))?;
            rules.push(Rule::network(src, dst, protocols));
        }
        for (index, grant) in document.grants.iter().enumerate() {
            rules.extend(
                grants::compile(&names, grant)
                    .map_err(|message| invalid(format!("grants[{index}]: {message}")))?,
            );
        }
        for (prefix, approvers) in &document.auto_approvers.routes {
            if parse_prefix(prefix).ok().flatten().is_none() {
                return Err(invalid(format!(
                    "autoApprovers.routes: {prefix:?} is not an IP prefix"
                )));
            }
            for approver in approvers {
                names.check_owner(approver).map_err(|reason| {
                    invalid(format!("autoApprovers.routes[{prefix}]: {reason}"))
                })?;
            }
        }
        for approver in &document.auto_approvers.exit_node {
            names
                .check_owner(approver)
                .map_err(|reason| invalid(format!("autoApprovers.exitNode: {reason}")))?;
        }
        for (service, approvers) in &document.auto_approvers.services {
            crate::alias::service_name(service)
                .map_err(|error| invalid(format!("autoApprovers.services: {error}")))?;
            for approver in approvers {
                names.check_owner(approver).map_err(|reason| {
                    invalid(format!("autoApprovers.services[{service}]: {reason}"))
                })?;
            }
        }
        let node_attrs = document
            .node_attrs
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                node_attrs(&names, entry)
                    .map_err(|message| invalid(format!("nodeAttrs[{index}]: {message}")))
            })
            .collect::<Result<_, _>>()?;
        let ssh = document
            .ssh
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                ssh_rule(&names, entry)
                    .map_err(|message| invalid(format!("ssh[{index}]: {message}")))
            })
            .collect::<Result<_, _>>()?;
        assertions::validate(&document.tests, &names)?;
        assertions::validate_ssh(&document.ssh_tests, &names)?;
        Ok(Policy {
            document,
            compiled: CompiledPolicy {
                rules,
                node_attrs,
                ssh,
            },
            names,
        })
    }

    /// Runs the policy's `tests` block against `topology`.
    pub fn check_tests(&self, topology: &Topology) -> Result<(), PolicyError> {
        let mut failures =
            assertions::run(&self.document.tests, &self.names, &self.compiled, topology);
        failures.extend(assertions::run_ssh(
            &self.document.ssh_tests,
            &self.names,
            &self.compiled,
            topology,
        ));
        if failures.is_empty() {
            Ok(())
        } else {
            Err(PolicyError::TestsFailed(failures))
        }
    }

    /// Which of `advertised` routes `autoApprovers` approves for a node with
    /// this user and these tags (exit routes `0.0.0.0/0` and `::/0` through `exitNode`).
    pub fn auto_approved_routes(
        &self,
        user: &str,
        tags: &BTreeSet<String>,
        advertised: &[IpNet],
    ) -> Vec<IpNet> {
        let approvers = &self.document.auto_approvers;
        let names_node = |approver: &String| self.approver_names(approver, user, tags);
        advertised
            .iter()
            .copied()
            .filter(|route| {
                if route.prefix_len() == 0 {
                    approvers.exit_node.iter().any(names_node)
                        || approvers.routes.iter().any(|(prefix, list)| {
                            parse_prefix(prefix).ok().flatten() == Some(*route)
                                && list.iter().any(names_node)
                        })
                } else {
                    approvers.routes.iter().any(|(prefix, list)| {
                        parse_prefix(prefix)
                            .ok()
                            .flatten()
                            .is_some_and(|prefix| prefix.contains(route))
                            && list.iter().any(names_node)
                    })
                }
            })
            .collect()
    }

    /// The services (`svc:name`) the policy names: as destinations of
    /// `acls` and `grants`, and in `autoApprovers.services`. The
    /// coordinator gives each an address.
    pub fn service_names(&self) -> BTreeSet<String> {
        let rules = self.compiled.rules.iter().flat_map(|rule| &rule.dst);
        rules
            .filter_map(|destination| match &destination.principal {
                Principal::Service(name) => Some(name.clone()),
                _ => None,
            })
            .chain(self.document.auto_approvers.services.keys().cloned())
            .collect()
    }

    /// Whether `autoApprovers.services` lets a device owned by `user` with
    /// `tags` host `service` when it advertises it.
    pub fn may_host(&self, service: &str, user: &str, tags: &BTreeSet<String>) -> bool {
        self.document
            .auto_approvers
            .services
            .get(service)
            .is_some_and(|approvers| {
                approvers
                    .iter()
                    .any(|approver| self.approver_names(approver, user, tags))
            })
    }

    fn approver_names(&self, approver: &str, user: &str, tags: &BTreeSet<String>) -> bool {
        let tagged = !tags.is_empty();
        match Alias::parse(approver) {
            Ok(Alias::User(login)) => !tagged && normalize_login(&login) == user,
            Ok(Alias::Group(group)) => {
                !tagged
                    && self
                        .names
                        .groups
                        .get(&group)
                        .is_some_and(|members| members.iter().any(|member| member == user))
            }
            Ok(Alias::Tag(tag)) => tags.contains(&tag),
            Ok(Alias::AutoGroup(AutoGroup::Member)) => !tagged,
            Ok(Alias::AutoGroup(AutoGroup::Tagged)) => tagged,
            _ => false,
        }
    }
}

/// Resolves a rule's sources; also returns the aliases (for the `autogroup:self` check).
pub(crate) fn sources(
    names: &Names,
    entries: &[String],
) -> Result<(Vec<Source>, Vec<Alias>), PolicyError> {
    let mut principals = Vec::new();
    let mut aliases = Vec::new();
    for entry in entries {
        let alias =
            Alias::parse(entry).map_err(|error| invalid(format!("src={entry:?}: {error}")))?;
        principals.extend(
            names
                .resolve_source(&alias)
                .map_err(|error| invalid(format!("src={entry:?}: {error}")))?,
        );
        aliases.push(alias);
    }
    Ok((principals, aliases))
}

/// `autogroup:self` means "the source user's own devices", so every source of
/// such a rule must be a user: users, groups, `autogroup:member`, and in
/// `acls` (not in grants, as Tailscale has it) `*`.
pub(crate) fn check_self_sources(
    dst: &[RuleDestination],
    sources: &[Alias],
    wildcard_allowed: bool,
) -> Result<(), PolicyError> {
    let has_self = dst
        .iter()
        .any(|destination| destination.principal == Principal::SelfDevices);
    let user_like = |alias: &Alias| {
        matches!(
            alias,
            Alias::User(_) | Alias::Group(_) | Alias::AutoGroup(AutoGroup::Member)
        ) || (wildcard_allowed && *alias == Alias::Wildcard)
    };
    if has_self && !sources.iter().all(user_like) {
        return Err(invalid(
            "autogroup:self can only be used with users, groups, or supported autogroups",
        ));
    }
    Ok(())
}
