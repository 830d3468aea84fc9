//! The incremental engine must agree with a from-scratch evaluation after any
//! sequence of changes, and the deltas it reports must turn each node's old
//! view into its new one. Random sequences from a fixed seed.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use hearth_acl::{CompiledPolicy, Engine, NodeIdentity, Policy};

/// xorshift64*: deterministic, dependency-free.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const USERS: [&str; 4] = ["alice", "bob", "carol", "dave"];
const TAGS: [&str; 4] = ["tag:a", "tag:b", "tag:c", "tag:d"];
const ROUTES: [&str; 4] = ["192.168.1.0/24", "10.0.0.0/8", "10.1.0.0/16", "0.0.0.0/0"];
const SOURCES: [&str; 10] = [
    "*",
    "alice@",
    "bob@",
    "group:kids",
    "tag:a",
    "tag:b",
    "autogroup:member",
    "autogroup:tagged",
    "100.64.0.0/28",
    "10.0.0.0/8",
];
const DESTINATIONS: [&str; 12] = [
    "*:*",
    "alice@:22",
    "carol@:80,443",
    "group:kids:*",
    "tag:a:22",
    "tag:c:1-100",
    "autogroup:member:*",
    "autogroup:tagged:8080",
    "100.64.0.3:*",
    "192.168.1.0/24:631",
    "10.1.2.3:22",
    "autogroup:internet:*",
];

fn random_node(random: &mut Random, id: u64) -> NodeIdentity {
    let tags: BTreeSet<String> = if random.below(3) == 0 {
        (0..=random.below(2))
            .map(|_| random.pick(&TAGS).to_string())
            .collect()
    } else {
        BTreeSet::new()
    };
    let routes: Vec<ipnet::IpNet> = if random.below(4) == 0 {
        vec![random.pick(&ROUTES).parse().unwrap()]
    } else {
        Vec::new()
    };
    NodeIdentity {
        id,
        user: random.pick(&USERS).to_string(),
        tags,
        addresses: vec![
            format!("100.64.0.{id}").parse().unwrap(),
            format!("fd7a:115c:a1e0::{id}").parse().unwrap(),
        ],
        advertised_routes: routes.clone(),
        approved_routes: if random.below(2) == 0 {
            routes
        } else {
            Vec::new()
        },
        services: Vec::new(),
    }
}

fn random_policy(random: &mut Random) -> Arc<CompiledPolicy> {
    let rules: Vec<String> = (0..1 + random.below(5))
        .map(|_| {
            let src: Vec<String> = (0..1 + random.below(2))
                .map(|_| format!("{:?}", random.pick(&SOURCES)))
                .collect();
            let dst: Vec<String> = (0..1 + random.below(2))
                .map(|_| format!("{:?}", random.pick(&DESTINATIONS)))
                .collect();
            format!(
                r#"{{"action": "accept", "src": [{}], "dst": [{}]}}"#,
                src.join(","),
                dst.join(",")
            )
        })
        .collect();
    let mut rules = rules;
    if random.below(4) == 0 {
        rules.push(
            r#"{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]}"#
                .into(),
        );
    }
    let text = format!(
        r#"{{"groups": {{"group:kids": ["carol@", "dave@"]}},
            "tagOwners": {{"tag:a": [], "tag:b": [], "tag:c": [], "tag:d": []}},
            "acls": [{}]}}"#,
        rules.join(",")
    );
    Arc::new(
        Policy::parse(&text)
            .unwrap_or_else(|error| panic!("{error}\n{text}"))
            .compiled,
    )
}

/// Each node's view as a subscriber would track it from the deltas.
#[derive(Default)]
struct Views(BTreeMap<u64, BTreeSet<u64>>);

impl Views {
    fn add(&mut self, node: u64, peers: &[u64]) {
        self.0.entry(node).or_default().extend(peers);
    }

    fn remove(&mut self, node: u64, peers: &[u64]) {
        let view = self.0.entry(node).or_default();
        for peer in peers {
            view.remove(peer);
        }
    }
}

fn check(engine: &Engine, nodes: &BTreeMap<u64, NodeIdentity>, views: &Views, step: usize) {
    let mut fresh = Engine::new(Arc::clone(engine.policy()));
    fresh.load(nodes.values().cloned());
    for id in nodes.keys() {
        let peers = engine.peers_of(*id);
        assert_eq!(
            peers,
            fresh.peers_of(*id),
            "step {step}: peers of {id} differ from a fresh evaluation"
        );
        assert_eq!(
            engine.filter_of(*id),
            fresh.filter_of(*id),
            "step {step}: filter of {id} differs"
        );
        let tracked: Vec<u64> = views
            .0
            .get(id)
            .map(|view| view.iter().copied().collect())
            .unwrap_or_default();
        assert_eq!(
            tracked, peers,
            "step {step}: deltas did not lead node {id} to its peers"
        );
        for peer in &peers {
            assert!(
                engine.are_peers(*id, *peer) && engine.are_peers(*peer, *id),
                "step {step}: visibility is symmetric"
            );
        }
    }
}

#[test]
fn incremental_changes_match_a_fresh_evaluation() {
    for seed in 1..=40u64 {
        let mut random = Random(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut engine = Engine::new(random_policy(&mut random));
        let mut nodes: BTreeMap<u64, NodeIdentity> = BTreeMap::new();
        let mut views = Views::default();
        let mut next_id = 1;
        for step in 0..60 {
            match random.below(10) {
                0..=4 => {
                    let identity = random_node(&mut random, next_id);
                    next_id += 1;
                    let change = engine.upsert(identity.clone());
                    views.add(identity.id, &change.peers_added);
                    for peer in &change.peers_added {
                        views.add(*peer, &[identity.id]);
                    }
                    nodes.insert(identity.id, identity);
                }
                5 | 6 if !nodes.is_empty() => {
                    let id = *random.pick(&nodes.keys().copied().collect::<Vec<_>>());
                    let mut identity = random_node(&mut random, id);
                    identity.addresses = nodes[&id].addresses.clone();
                    let change = engine.upsert(identity.clone());
                    views.add(id, &change.peers_added);
                    views.remove(id, &change.peers_removed);
                    for peer in &change.peers_added {
                        views.add(*peer, &[id]);
                    }
                    for peer in &change.peers_removed {
                        views.remove(*peer, &[id]);
                    }
                    nodes.insert(id, identity);
                }
                7 if !nodes.is_empty() => {
                    let id = *random.pick(&nodes.keys().copied().collect::<Vec<_>>());
                    for peer in engine.remove(id) {
                        views.remove(peer, &[id]);
                    }
                    views.0.remove(&id);
                    nodes.remove(&id);
                }
                _ => {
                    for update in engine.set_policy(random_policy(&mut random)) {
                        views.add(update.node, &update.peers_added);
                        views.remove(update.node, &update.peers_removed);
                    }
                }
            }
            check(&engine, &nodes, &views, step);
        }
    }
}
