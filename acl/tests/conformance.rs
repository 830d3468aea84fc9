//! Conformance with Tailscale's own answers.
//!
//! Each case in `../shared/conformance/tailscale-policy` (override with
//! `HEARTH_CONFORMANCE_DIR`) is a policy, an 8-node topology and what
//! Tailscale's hosted control plane gave each node: its packet filter and its
//! peers, or the rejection of the policy. For every node this test compares
//! the set of (source, destination, port, protocol) our filter accepts with
//! the set Tailscale's accepts, the application capabilities granted
//! (`CapGrant`: per capability, value and destination, the sources), and
//! the peer lists by name.
//!
//! Our side is what the coordinator sends an official client: the filter in
//! Tailscale's form made by `hearth_acl::tailscale::packet_filter` (which
//! writes a `*` source as Tailscale does: the tailnet's ranges, minus
//! 100.115.92.0/23, plus every approved route but exit routes), read back
//! with the same parser as Tailscale's answers.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use hearth_acl::tailscale::Member;
use hearth_acl::{Engine, Filter, NodeIdentity, Policy, Topology};
use ipnet::IpNet;
use serde_json::Value;

/// An inclusive address range within one family (4 or 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Range {
    family: u8,
    first: u128,
    last: u128,
}

fn address_value(address: IpAddr) -> (u8, u128) {
    match address {
        IpAddr::V4(v4) => (4, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (6, u128::from(v6)),
    }
}

fn prefix_range(prefix: IpNet) -> Range {
    let (family, first) = address_value(prefix.network());
    let (_, last) = address_value(prefix.broadcast());
    Range {
        family,
        first,
        last,
    }
}

fn everything() -> Vec<Range> {
    vec![
        Range {
            family: 4,
            first: 0,
            last: u128::from(u32::MAX),
        },
        Range {
            family: 6,
            first: 0,
            last: u128::MAX,
        },
    ]
}

/// Parses Tailscale's address notation: `*`, an address, a prefix or `a-b`.
fn parse_ranges(text: &str) -> Vec<Range> {
    if text == "*" {
        return everything();
    }
    if let Some((first, last)) = text.split_once('-') {
        let (family, first) = address_value(first.parse().unwrap());
        let (_, last) = address_value(last.parse().unwrap());
        return vec![Range {
            family,
            first,
            last,
        }];
    }
    if let Ok(address) = text.parse::<IpAddr>() {
        return vec![prefix_range(IpNet::from(address))];
    }
    vec![prefix_range(text.parse().unwrap())]
}

/// A filter rule flattened to ranges.
#[derive(Clone, Debug)]
struct FlatRule {
    src: Vec<Range>,
    dst: Vec<(Range, u16, u16)>,
    protocols: Vec<u8>,
}

const DEFAULT_PROTOCOLS: [u8; 4] = [6, 17, 1, 58];

fn expected_rules(value: &Value) -> Vec<FlatRule> {
    let Some(rules) = value.as_array() else {
        return Vec::new();
    };
    rules
        .iter()
        .filter(|rule| rule.get("DstPorts").is_some())
        .map(|rule| FlatRule {
            src: rule["SrcIPs"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|ip| parse_ranges(ip.as_str().unwrap()))
                .collect(),
            dst: rule["DstPorts"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|dst| {
                    let first = dst["Ports"]["First"].as_u64().unwrap() as u16;
                    let last = dst["Ports"]["Last"].as_u64().unwrap() as u16;
                    parse_ranges(dst["IP"].as_str().unwrap())
                        .into_iter()
                        .map(move |range| (range, first, last))
                })
                .collect(),
            protocols: match rule.get("IPProto").and_then(Value::as_array) {
                Some(list) if !list.is_empty() => {
                    list.iter().map(|p| p.as_u64().unwrap() as u8).collect()
                }
                _ => DEFAULT_PROTOCOLS.to_vec(),
            },
        })
        .collect()
}

/// One capability grant flattened: who, to which destination, which
/// capability with which values (as JSON text).
type CapCells = BTreeMap<(String, String, Range), Vec<Range>>;

fn add_cap(cells: &mut CapCells, src: &[Range], dst: Range, name: &str, values: &Value) {
    let entry = cells
        .entry((name.to_owned(), values.to_string(), dst))
        .or_default();
    entry.extend(src.iter().copied());
}

fn finish_caps(mut cells: CapCells) -> CapCells {
    for sources in cells.values_mut() {
        *sources = normalize(std::mem::take(sources));
    }
    cells
}

fn expected_caps(value: &Value) -> CapCells {
    let mut cells = CapCells::new();
    for rule in value.as_array().into_iter().flatten() {
        let Some(grants) = rule.get("CapGrant").and_then(Value::as_array) else {
            continue;
        };
        let src: Vec<Range> = rule["SrcIPs"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|ip| parse_ranges(ip.as_str().unwrap()))
            .collect();
        for grant in grants {
            for dst in grant["Dsts"].as_array().unwrap() {
                for range in parse_ranges(dst.as_str().unwrap()) {
                    for (name, values) in grant["CapMap"].as_object().unwrap() {
                        add_cap(&mut cells, &src, range, name, values);
                    }
                }
            }
        }
    }
    finish_caps(cells)
}

/// Our filter for `own` in Tailscale's form, made by the translation the
/// coordinator sends official clients ([`hearth_acl::tailscale`]), as JSON:
/// the captures then check that translation, not a copy of it.
fn translated(filter: &Filter, own: &NodeIdentity, nodes: &[NodeIdentity]) -> Value {
    let members: Vec<Member<'_>> = nodes
        .iter()
        .map(|node| Member {
            user: &node.user,
            tags: &node.tags,
            addresses: &node.addresses,
            routes: &node.approved_routes,
        })
        .collect();
    serde_json::to_value(hearth_acl::tailscale::packet_filter(
        filter,
        &own.addresses,
        &members,
    ))
    .unwrap()
}

/// Sorted, merged ranges.
fn normalize(mut ranges: Vec<Range>) -> Vec<Range> {
    ranges.sort();
    let mut merged: Vec<Range> = Vec::new();
    for range in ranges {
        if let Some(last) = merged.last_mut()
            && last.family == range.family
            && range.first <= last.last.saturating_add(1)
        {
            last.last = last.last.max(range.last);
            continue;
        }
        merged.push(range);
    }
    merged
}

/// The accepted set as a map from (protocol, destination cell, port cell) to
/// the normalized sources; cells come from both filters' boundaries.
type Canonical = BTreeMap<(u8, u8, u128, u16), Vec<Range>>;

fn canonical(rules: &[FlatRule], others: &[FlatRule]) -> Canonical {
    let mut destination_points: BTreeSet<(u8, u128)> = BTreeSet::new();
    let mut port_points: BTreeSet<u16> = BTreeSet::new();
    let mut protocols: BTreeSet<u8> = BTreeSet::new();
    for rule in rules.iter().chain(others) {
        protocols.extend(&rule.protocols);
        for (range, first, last) in &rule.dst {
            destination_points.insert((range.family, range.first));
            if let Some(next) = range.last.checked_add(1) {
                destination_points.insert((range.family, next));
            }
            port_points.insert(*first);
            if let Some(next) = last.checked_add(1) {
                port_points.insert(next);
            }
        }
    }
    let mut cells = Canonical::new();
    for protocol in &protocols {
        for (family, point) in &destination_points {
            for port in &port_points {
                let sources: Vec<Range> = rules
                    .iter()
                    .filter(|rule| rule.protocols.contains(protocol))
                    .filter(|rule| {
                        rule.dst.iter().any(|(range, first, last)| {
                            range.family == *family
                                && range.first <= *point
                                && *point <= range.last
                                && first <= port
                                && port <= last
                        })
                    })
                    .flat_map(|rule| rule.src.iter().copied())
                    .collect();
                let sources = normalize(sources);
                if !sources.is_empty() {
                    cells.insert((*protocol, *family, *point, *port), sources);
                }
            }
        }
    }
    cells
}

fn conformance_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("HEARTH_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../shared/conformance/tailscale-policy")
        });
    if dir.is_dir() {
        return Some(dir);
    }
    let message = format!(
        "conformance captures not found at {} (set HEARTH_CONFORMANCE_DIR)",
        dir.display()
    );
    if std::env::var("CI").is_ok_and(|value| value == "true") {
        panic!("{message}");
    }
    eprintln!("SKIPPED: {message}");
    None
}

/// Deviations we keep on purpose, by case id, with the reason documented in docs/acl.md.
const DOCUMENTED_DEVIATIONS: &[(&str, &str)] = &[(
    "policytest-allpass-grants-only-tag-src-ipv6-literal-dst",
    "Tailscale ignores a grant whose destination is a bare IPv6 address; Hearth applies it",
)];

fn check_case(case: &Value) -> Result<(), String> {
    let users: Vec<(String, String)> = case["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|user| {
            (
                user["name"].as_str().unwrap().to_owned(),
                user["email"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let login_of = |name: &str| {
        users
            .iter()
            .find(|(user, _)| user == name)
            .map(|(_, email)| email.clone())
    };
    let mut names = BTreeMap::new();
    let mut nodes = Vec::new();
    for (index, (name, node)) in case["nodes"].as_object().unwrap().iter().enumerate() {
        let id = index as u64 + 1;
        names.insert(id, name.clone());
        let strings = |key: &str| -> Vec<String> {
            node[key]
                .as_array()
                .map(|list| {
                    list.iter()
                        .map(|item| item.as_str().unwrap().to_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        nodes.push(NodeIdentity {
            id,
            user: node["user"].as_str().and_then(login_of).unwrap_or_default(),
            tags: strings("tags").into_iter().collect(),
            addresses: vec![
                node["ipv4"].as_str().unwrap().parse().unwrap(),
                node["ipv6"].as_str().unwrap().parse().unwrap(),
            ],
            advertised_routes: strings("routable_ips")
                .iter()
                .map(|route| route.parse().unwrap())
                .collect(),
            approved_routes: strings("approved_routes")
                .iter()
                .map(|route| route.parse().unwrap())
                .collect(),
            services: Vec::new(),
        });
    }
    let topology = Topology {
        users: users.iter().map(|(_, email)| email.clone()).collect(),
        nodes: nodes.clone(),
    };
    let text = serde_json::to_string(&case["policy"]).unwrap();
    let outcome =
        Policy::parse(&text).and_then(|policy| policy.check_tests(&topology).map(|()| policy));
    let expect_error = case["expect_error"].as_bool().unwrap();
    let policy = match (outcome, expect_error) {
        (Ok(_), true) => {
            return Err(format!(
                "accepted a policy Tailscale rejects ({})",
                case["error_message"]
            ));
        }
        (Err(_), true) => return Ok(()),
        (Err(error), false) => return Err(format!("rejected a policy Tailscale accepts: {error}")),
        (Ok(policy), false) => policy,
    };
    let mut engine = Engine::new(Arc::new(policy.compiled));
    engine.load(nodes.clone());
    let mut problems = Vec::new();
    for node in &nodes {
        let name = &names[&node.id];
        let expected = &case["expected"][name];
        if expected.is_null() {
            // Two captures lack one node's answer; there is nothing to compare.
            continue;
        }
        let want_peers: BTreeSet<String> = expected["peers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|peer| peer.as_str().unwrap().to_owned())
            .collect();
        let got_peers: BTreeSet<String> = engine
            .peers_of(node.id)
            .iter()
            .map(|id| names[id].clone())
            .collect();
        if want_peers != got_peers {
            problems.push(format!(
                "{name}: peers differ: missing {:?}, extra {:?}",
                want_peers.difference(&got_peers).collect::<Vec<_>>(),
                got_peers.difference(&want_peers).collect::<Vec<_>>()
            ));
        }
        let filter = engine.filter_of(node.id).unwrap();
        let ours = translated(&filter, node, &nodes);
        let want = expected_rules(&expected["filter_rules"]);
        let got = expected_rules(&ours);
        let (want_cells, got_cells) = (canonical(&want, &got), canonical(&got, &want));
        if want_cells != got_cells {
            let first = want_cells
                .iter()
                .find(|(cell, sources)| got_cells.get(*cell) != Some(*sources))
                .map(|(cell, sources)| {
                    format!("{cell:?}: want {sources:?}, got {:?}", got_cells.get(cell))
                })
                .or_else(|| {
                    got_cells
                        .iter()
                        .find(|(cell, _)| !want_cells.contains_key(*cell))
                        .map(|(cell, sources)| format!("{cell:?}: want nothing, got {sources:?}"))
                });
            problems.push(format!(
                "{name}: filter differs: {}",
                first.unwrap_or_default()
            ));
        }
        let (want_caps, got_caps) = (
            expected_caps(&expected["filter_rules"]),
            expected_caps(&ours),
        );
        if want_caps != got_caps {
            let first = want_caps
                .iter()
                .find(|(cell, sources)| got_caps.get(*cell) != Some(*sources))
                .map(|(cell, sources)| {
                    format!("{cell:?}: want {sources:?}, got {:?}", got_caps.get(cell))
                })
                .or_else(|| {
                    got_caps
                        .iter()
                        .find(|(cell, _)| !want_caps.contains_key(*cell))
                        .map(|(cell, sources)| format!("{cell:?}: want nothing, got {sources:?}"))
                });
            problems.push(format!(
                "{name}: capability grants differ: {}",
                first.unwrap_or_default()
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n    "))
    }
}

#[test]
fn every_tailscale_capture_is_reproduced() {
    let Some(dir) = conformance_dir() else { return };
    let mut failures = Vec::new();
    // Every folder of captures.
    let folders: Vec<PathBuf> = ["acl", "policytest", "routes", "grants"]
        .iter()
        .map(|folder| dir.join(folder))
        .collect();
    let mut total = 0;
    for folder in folders {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        let (mut passed, mut cases) = (0, 0);
        for file in files
            .iter()
            .filter(|file| file.extension().is_some_and(|ext| ext == "json"))
        {
            cases += 1;
            let case: Value =
                serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
            let id = case["id"].as_str().unwrap().to_owned();
            match check_case(&case) {
                Ok(()) => passed += 1,
                Err(problem) if DOCUMENTED_DEVIATIONS.iter().any(|(known, _)| *known == id) => {
                    println!("  documented deviation {id}: {problem}");
                    passed += 1;
                }
                Err(problem) => failures.push(format!("{id}: {problem}")),
            }
        }
        total += cases;
        println!(
            "{}: {passed}/{cases} cases pass",
            folder.file_name().unwrap().to_string_lossy()
        );
    }
    assert!(total > 0, "no cases found in {}", dir.display());
    assert!(
        failures.is_empty(),
        "{} case(s) deviate:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}
