//! The policy's own `tests` block (production code, not this crate's
//! tests): assertions that a source can (`accept`) or cannot (`deny`)
//! reach `destination:port`. A policy whose assertions fail is refused.
//!
//! As in Tailscale, a test names one port (not `*`, a list or a range), and its
//! destinations are nodes or single addresses, not prefixes. Users, tags,
//! groups and hosts must exist. A test without `proto` probes TCP.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::{Names, PolicyError, Topology, invalid, normalize_login, protocols};
use crate::alias::{Alias, AutoGroup, parse_ports, split_destination};
use crate::compiled::{CompiledPolicy, Principal, Rule, SshRule};
use crate::document::{PolicyTest, SshTest};
use crate::filter::{Source, proto};

/// One concrete sender or receiver a test is evaluated for.
#[derive(Clone, Debug)]
struct Probe {
    /// Owning user when untagged.
    user: Option<String>,
    tags: BTreeSet<String>,
    addresses: Vec<IpAddr>,
}

impl Probe {
    fn tagged(&self) -> bool {
        !self.tags.is_empty()
    }

    fn named_by(&self, source: &Source) -> bool {
        match source {
            Source::Any | Source::All => true,
            Source::Prefix(prefix) => self
                .addresses
                .iter()
                .any(|address| prefix.contains(address)),
            // A bare address is no one: only `*` and prefixes name it.
            _ if self.user.is_none() && !self.tagged() => false,
            _ => source.names(self.user.as_deref().unwrap_or_default(), &self.tags),
        }
    }
}

fn shape_error(index: usize, message: impl std::fmt::Display) -> PolicyError {
    PolicyError::TestsFailed(vec![format!("tests[{index}]: {message}")])
}

/// A test destination: its alias and its single port.
fn destination(entry: &str) -> Result<(Alias, u16), PolicyError> {
    let (alias, ports) = split_destination(entry).map_err(|error| invalid(error.to_string()))?;
    let ports = parse_ports(ports).map_err(|error| invalid(error.to_string()))?;
    let [port] = ports.as_slice() else {
        return Err(invalid(format!(
            "{entry:?}: a test names one port, not a list"
        )));
    };
    if port.first != port.last {
        return Err(invalid(format!(
            "{entry:?}: a test names one port, not a range or *"
        )));
    }
    let alias = Alias::parse(alias).map_err(|error| invalid(format!("{entry:?}: {error}")))?;
    match &alias {
        Alias::Wildcard => Err(invalid(format!(
            "{entry:?}: a test destination cannot be *"
        ))),
        Alias::AutoGroup(AutoGroup::SelfDevices | AutoGroup::Internet | AutoGroup::DangerAll) => {
            Err(invalid(format!(
                "{entry:?}: this autogroup cannot be a test destination"
            )))
        }
        Alias::Prefix(_) if alias_text(entry).contains('/') => Err(invalid(format!(
            "{entry:?}: a test destination is an address, not a prefix"
        ))),
        _ => Ok((alias, port.first)),
    }
}

fn alias_text(entry: &str) -> &str {
    split_destination(entry)
        .map(|(alias, _)| alias)
        .unwrap_or(entry)
}

/// Checks the shape of every test (everything that does not need a topology).
pub(crate) fn validate(tests: &[PolicyTest], names: &Names) -> Result<(), PolicyError> {
    for (index, test) in tests.iter().enumerate() {
        let Some(src) = test.src.as_deref().filter(|src| !src.is_empty()) else {
            return Err(shape_error(index, "src is required"));
        };
        let alias = Alias::parse(src)
            .map_err(|error| shape_error(index, format!("src={src:?}: {error}")))?;
        if matches!(
            alias,
            Alias::Wildcard | Alias::AutoGroup(AutoGroup::SelfDevices | AutoGroup::Internet)
        ) {
            return Err(shape_error(
                index,
                format!("src={src:?} cannot be a test source"),
            ));
        }
        names
            .resolve_source(&alias)
            .map_err(|error| shape_error(index, format!("src={src:?}: {error}")))?;
        if test.accept.is_empty() && test.deny.is_empty() {
            return Err(shape_error(index, "a test needs accept or deny entries"));
        }
        protocols(test.proto.as_ref()).map_err(|error| shape_error(index, error))?;
        for entry in test.accept.iter().chain(&test.deny) {
            let (alias, _) = destination(entry).map_err(|error| shape_error(index, error))?;
            let resolved = names
                .resolve_destination(&alias)
                .map_err(|error| shape_error(index, format!("{entry:?}: {error}")))?;
            if resolved
                .iter()
                .any(|principal| matches!(principal, Principal::Named(Source::Prefix(prefix)) if prefix.prefix_len() != prefix.max_prefix_len()))
            {
                return Err(shape_error(index, format!("{entry:?}: names a prefix, not an address")));
            }
        }
    }
    Ok(())
}

/// The probes an alias stands for in `topology`.
fn probes(alias: &Alias, names: &Names, topology: &Topology) -> Result<Vec<Probe>, PolicyError> {
    let node_probe = |node: &crate::node::NodeIdentity| Probe {
        user: Some(node.user.clone()),
        tags: node.tags.clone(),
        addresses: node.addresses.clone(),
    };
    let user_probes = |login: &str| -> Result<Vec<Probe>, PolicyError> {
        if !topology
            .users
            .iter()
            .any(|user| normalize_login(user) == login)
        {
            return Err(invalid(format!("user not found: {login:?}")));
        }
        let mut found: Vec<Probe> = topology
            .nodes
            .iter()
            .filter(|node| !node.is_tagged() && node.user == login)
            .map(node_probe)
            .collect();
        if found.is_empty() {
            found.push(Probe {
                user: Some(login.to_owned()),
                tags: BTreeSet::new(),
                addresses: Vec::new(),
            });
        }
        Ok(found)
    };
    let address_probe = |address: IpAddr| {
        topology
            .nodes
            .iter()
            .find(|node| node.addresses.contains(&address))
            .map(node_probe)
            .unwrap_or(Probe {
                user: None,
                tags: BTreeSet::new(),
                addresses: vec![address],
            })
    };
    Ok(match alias {
        Alias::User(login) => user_probes(&normalize_login(login))?,
        Alias::Group(group) => {
            let mut all = Vec::new();
            for login in names.groups.get(group).into_iter().flatten() {
                all.extend(user_probes(login)?);
            }
            all
        }
        Alias::Tag(tag) => {
            let mut found: Vec<Probe> = topology
                .nodes
                .iter()
                .filter(|node| node.tags.contains(tag))
                .map(node_probe)
                .collect();
            if found.is_empty() {
                found.push(Probe {
                    user: None,
                    tags: BTreeSet::from([tag.clone()]),
                    addresses: Vec::new(),
                });
            }
            found
        }
        Alias::AutoGroup(AutoGroup::Member) => topology
            .nodes
            .iter()
            .filter(|node| !node.is_tagged())
            .map(node_probe)
            .collect(),
        Alias::AutoGroup(AutoGroup::Tagged) => topology
            .nodes
            .iter()
            .filter(|node| node.is_tagged())
            .map(node_probe)
            .collect(),
        Alias::Host(host) => {
            let prefix = names
                .hosts
                .get(host)
                .ok_or_else(|| invalid(format!("host not found: {host:?}")))?;
            vec![address_probe(prefix.addr())]
        }
        Alias::Prefix(prefix) => vec![address_probe(prefix.addr())],
        Alias::Wildcard | Alias::AutoGroup(_) | Alias::Service(_) => {
            return Err(invalid("cannot be used in a test"));
        }
    })
}

/// The probes the alias `text` stands for in `topology`.
fn probes_of(text: &str, names: &Names, topology: &Topology) -> Result<Vec<Probe>, PolicyError> {
    Alias::parse(text)
        .map_err(|error| invalid(error.to_string()))
        .and_then(|alias| probes(&alias, names, topology))
}

/// Whether a rule's destination names `target` for `source`
/// (`autogroup:self`: the source's own user's untagged devices).
fn destination_names(destination: &Principal, source: &Probe, target: &Probe) -> bool {
    match destination {
        Principal::SelfDevices => {
            !target.tagged()
                && !source.tagged()
                && target.user.is_some()
                && target.user == source.user
        }
        Principal::Named(named) => target.named_by(named),
        Principal::Internet | Principal::Service(_) => false,
    }
}

/// Whether some rule lets `source` reach `target` on `port` over `protocol`.
fn allowed(rules: &[Rule], source: &Probe, target: &Probe, port: u16, protocol: u8) -> bool {
    rules.iter().any(|rule| {
        rule.protocols.contains(&protocol)
            && rule.src.iter().any(|principal| source.named_by(principal))
            && rule.dst.iter().any(|destination| {
                let port_open = !proto::has_ports(protocol)
                    || destination.ports.iter().any(|range| range.contains(port));
                let named = destination_names(&destination.principal, source, target);
                port_open && named
            })
    })
}

/// Runs every test; returns one line per failure.
pub(crate) fn run(
    tests: &[PolicyTest],
    names: &Names,
    compiled: &CompiledPolicy,
    topology: &Topology,
) -> Vec<String> {
    let mut failures = Vec::new();
    for (index, test) in tests.iter().enumerate() {
        let src = test.src.as_deref().unwrap_or_default();
        let sources = match probes_of(src, names, topology) {
            Ok(sources) => sources,
            Err(error) => {
                failures.push(format!("tests[{index}]: src={src:?}: {error}"));
                continue;
            }
        };
        let protocol = match &test.proto {
            None => proto::TCP,
            Some(_) => protocols(test.proto.as_ref())
                .ok()
                .and_then(|list| list.first().copied())
                .unwrap_or(proto::TCP),
        };
        for (entry, expect) in test
            .accept
            .iter()
            .map(|entry| (entry, true))
            .chain(test.deny.iter().map(|entry| (entry, false)))
        {
            let targets = match destination(entry)
                .and_then(|(alias, port)| Ok((probes(&alias, names, topology)?, port)))
            {
                Ok(targets) => targets,
                Err(error) => {
                    failures.push(format!("tests[{index}]: {entry:?}: {error}"));
                    continue;
                }
            };
            let (targets, port) = targets;
            let pairs = sources
                .iter()
                .flat_map(|source| targets.iter().map(move |target| (source, target)));
            let outcome: Vec<bool> = pairs
                .map(|(source, target)| allowed(&compiled.rules, source, target, port, protocol))
                .collect();
            let passed = if expect {
                outcome.iter().all(|allowed| *allowed)
            } else {
                outcome.iter().all(|allowed| !*allowed)
            };
            if !passed {
                let verb = if expect { "cannot reach" } else { "can reach" };
                failures.push(format!(
                    "tests[{index}]: {src} {verb} {entry} (expected {})",
                    if expect { "accept" } else { "deny" }
                ));
            }
        }
    }
    failures
}

fn ssh_shape_error(index: usize, message: impl std::fmt::Display) -> PolicyError {
    PolicyError::TestsFailed(vec![format!("sshTests[{index}]: {message}")])
}

/// Checks the shape of every `sshTests` entry.
pub(crate) fn validate_ssh(tests: &[SshTest], names: &Names) -> Result<(), PolicyError> {
    for (index, test) in tests.iter().enumerate() {
        let alias = Alias::parse(&test.src)
            .map_err(|error| ssh_shape_error(index, format!("src={:?}: {error}", test.src)))?;
        if matches!(alias, Alias::Wildcard | Alias::AutoGroup(_)) {
            return Err(ssh_shape_error(
                index,
                format!("src={:?} cannot be a test source", test.src),
            ));
        }
        names
            .resolve_source(&alias)
            .map_err(|error| ssh_shape_error(index, format!("src={:?}: {error}", test.src)))?;
        if test.dst.is_empty() {
            return Err(ssh_shape_error(index, "dst names no node"));
        }
        for dst in &test.dst {
            let alias = Alias::parse(dst)
                .map_err(|error| ssh_shape_error(index, format!("dst={dst:?}: {error}")))?;
            names
                .resolve_destination(&alias)
                .map_err(|error| ssh_shape_error(index, format!("dst={dst:?}: {error}")))?;
        }
        if test.accept.is_empty() && test.check.is_empty() && test.deny.is_empty() {
            return Err(ssh_shape_error(
                index,
                "a test needs accept, check or deny users",
            ));
        }
    }
    Ok(())
}

/// What the first `ssh` rule that matches says, as tailscaled's server
/// decides: `Some(false)` accept, `Some(true)` check, `None` refused.
fn ssh_outcome(rules: &[SshRule], source: &Probe, target: &Probe, user: &str) -> Option<bool> {
    rules.iter().find_map(|rule| {
        let from = rule.sources.iter().any(|src| {
            src.names(source.user.as_deref().unwrap_or_default(), &source.tags)
                && (source.user.is_some() || source.tagged())
                || source
                    .addresses
                    .iter()
                    .any(|address| src.matches_address(*address))
        });
        let to = rule
            .destinations
            .iter()
            .any(|destination| destination_names(destination, source, target));
        let as_user = rule.grant.users.iter().any(|allowed| {
            allowed == user || allowed == "*" || (allowed == "autogroup:nonroot" && user != "root")
        });
        (from && to && as_user).then_some(rule.grant.check_period.is_some())
    })
}

/// Runs every `sshTests` entry; one line per failure.
pub(crate) fn run_ssh(
    tests: &[SshTest],
    names: &Names,
    compiled: &CompiledPolicy,
    topology: &Topology,
) -> Vec<String> {
    let mut failures = Vec::new();
    for (index, test) in tests.iter().enumerate() {
        let sources = match probes_of(&test.src, names, topology) {
            Ok(sources) => sources,
            Err(error) => {
                failures.push(format!("sshTests[{index}]: src={:?}: {error}", test.src));
                continue;
            }
        };
        for dst in &test.dst {
            let targets = match probes_of(dst, names, topology) {
                Ok(targets) => targets,
                Err(error) => {
                    failures.push(format!("sshTests[{index}]: dst={dst:?}: {error}"));
                    continue;
                }
            };
            let expected = test
                .accept
                .iter()
                .map(|user| (user, Some(false), "accept"))
                .chain(test.check.iter().map(|user| (user, Some(true), "check")))
                .chain(test.deny.iter().map(|user| (user, None, "deny")));
            for (user, want, word) in expected {
                let wrong = sources.iter().any(|source| {
                    targets
                        .iter()
                        .any(|target| ssh_outcome(&compiled.ssh, source, target, user) != want)
                });
                if wrong {
                    failures.push(format!(
                        "sshTests[{index}]: {} logging in to {dst} as {user:?} is not {word}",
                        test.src
                    ));
                }
            }
        }
    }
    failures
}
