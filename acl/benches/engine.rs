//! Policy engine benchmark: 10,000 nodes, a 50-rule policy.
//!
//! Measures parsing and compiling the policy text, the full evaluation
//! (every node placed, every class's filter and visibility computed) and a
//! one-node update (a node joins; a node's tags change). The peer it is
//! compared with is a full re-evaluation after each change, which is what an
//! engine without identity classes and incremental updates must do; both run
//! here on the same data.
//!
//! Run: `cargo bench -p hearth-acl --bench engine`

use std::collections::BTreeSet;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_acl::{Engine, NodeIdentity, Policy};

const NODES: u64 = 10_000;
const USERS: u64 = 1_000;
const TAGGED: u64 = 2_000;
const TAGS: u64 = 20;

fn node(id: u64) -> NodeIdentity {
    let octets = (id as u32 + (100 << 24 | 64 << 16)).to_be_bytes();
    let mut tags = BTreeSet::new();
    if id <= TAGGED {
        tags.insert(format!("tag:t{}", id % TAGS));
    }
    NodeIdentity {
        id,
        user: format!("user{}", id % USERS),
        tags,
        addresses: vec![
            std::net::Ipv4Addr::from(octets).into(),
            format!("fd7a:115c:a1e0::{:x}", id).parse().expect("valid"),
        ],
        advertised_routes: Vec::new(),
        approved_routes: Vec::new(),
        services: Vec::new(),
    }
}

/// Fifty rules of the shapes households and small teams write.
fn policy_text() -> String {
    let mut groups = Vec::new();
    let mut rules = Vec::new();
    for index in 0..20 {
        let members: Vec<String> = (0..10)
            .map(|k| format!("\"user{}@\"", index * 10 + k))
            .collect();
        groups.push(format!("\"group:g{index}\": [{}]", members.join(",")));
        rules.push(format!(
            r#"{{"action": "accept", "src": ["group:g{index}"], "dst": ["tag:t{index}:22,443"]}}"#
        ));
    }
    for index in 0..20 {
        rules.push(format!(
            r#"{{"action": "accept", "src": ["tag:t{index}"], "dst": ["tag:t{}:8000-8999"]}}"#,
            (index + 1) % 20
        ));
    }
    rules.push(
        r#"{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]}"#.into(),
    );
    for index in 0..9 {
        rules.push(format!(
            r#"{{"action": "accept", "src": ["user{}@"], "dst": ["user{}@:*"]}}"#,
            500 + index,
            600 + index
        ));
    }
    let owners: Vec<String> = (0..TAGS)
        .map(|index| format!("\"tag:t{index}\": []"))
        .collect();
    format!(
        "{{\"groups\": {{{}}}, \"tagOwners\": {{{}}}, \"acls\": [{}]}}",
        groups.join(","),
        owners.join(","),
        rules.join(",\n")
    )
}

fn median(runs: usize, mut work: impl FnMut() -> Duration) -> Duration {
    let mut times: Vec<Duration> = (0..runs).map(|_| work()).collect();
    times.sort();
    times[runs / 2]
}

fn timed(work: impl FnOnce()) -> Duration {
    let start = Instant::now();
    work();
    start.elapsed()
}

fn main() {
    let text = policy_text();
    let nodes: Vec<NodeIdentity> = (1..=NODES).map(node).collect();

    let parse = median(21, || {
        timed(|| {
            black_box(Policy::parse(&text).expect("the benchmark policy is valid"));
        })
    });
    let compiled = Arc::new(Policy::parse(&text).expect("valid").compiled);
    assert_eq!(compiled.rules.len(), 50);

    let full = median(7, || {
        let nodes = nodes.clone();
        timed(|| {
            let mut engine = Engine::new(Arc::clone(&compiled));
            engine.load(nodes);
            black_box(engine.filter_of(1));
        })
    });

    let mut engine = Engine::new(Arc::clone(&compiled));
    engine.load(nodes.clone());
    let mut next = NODES + 1;
    let join = median(201, || {
        let joining = node(next);
        let duration = timed(|| {
            black_box(engine.upsert(joining));
        });
        engine.remove(next);
        next += 1;
        duration
    });
    let subject = TAGGED + 7;
    let retag = median(201, || {
        let mut changed = node(subject);
        changed.tags.insert("tag:t3".into());
        let duration = timed(|| {
            black_box(engine.upsert(changed));
        });
        engine.upsert(node(subject));
        duration
    });

    println!(
        "policy engine: {NODES} nodes, 50 rules, {} identity classes",
        engine.class_count()
    );
    println!(
        "  parse + validate + compile the policy text {:>10.3} ms",
        parse.as_secs_f64() * 1e3
    );
    println!(
        "  full evaluation of {NODES} nodes           {:>10.2} ms",
        full.as_secs_f64() * 1e3
    );
    println!(
        "  one-node update: a node joins              {:>10.4} ms",
        join.as_secs_f64() * 1e3
    );
    println!(
        "  one-node update: a node's tags change      {:>10.4} ms",
        retag.as_secs_f64() * 1e3
    );
    println!(
        "  peer: full re-evaluation per change is {:.0}x a join and {:.0}x a retag",
        full.as_secs_f64() / join.as_secs_f64(),
        full.as_secs_f64() / retag.as_secs_f64()
    );
}
