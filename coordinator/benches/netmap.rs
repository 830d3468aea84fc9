//! Network map benchmark: 10,000 nodes.
//!
//! Measures building the network, one node's full map (computed and
//! serialized, as sent on connect), and one-node deltas (computed and
//! serialized once per distinct message). The peer it is compared with is what
//! Headscale does on a change: recompute every node's peer list. Both run here,
//! on the same data, in the same process.
//!
//! It also encodes the same node's map as an official Tailscale client
//! gets it (Tailscale's JSON in a zstd frame) next to `hearth-agent`'s JSON
//! line: full map and one endpoint delta.
//!
//! Run: `cargo bench -p hearth-coordinator --bench netmap`

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hearth_acl::filter::proto;
use hearth_acl::{CompiledPolicy, PortRange, Principal, Rule, RuleDestination, Source};
use hearth_control::compression::Encoding;
use hearth_control::tailcfg;
use hearth_control::wire::MapMessage;
use hearth_coordinator::netmap::{Network, NodeRecord};
use hearth_coordinator::streams::encode_line;
use hearth_coordinator::tsmap::{DEFAULT_BASE_DOMAIN, SelfKeys, TsMapView};

mod common;
use common::{NODES, TAGGED, TAGS, median, record, serialize, timed};

/// 50 rules of the shapes households and small teams write: user to user,
/// groups to tags on ports, tags to tags, self access, a few open ports.
fn fifty_rules() -> CompiledPolicy {
    let mut rules = Vec::new();
    let rule = |src: Vec<Source>, dst: Principal, ports: Vec<PortRange>| {
        Rule::network(
            src,
            vec![RuleDestination {
                principal: dst,
                ports,
            }],
            proto::DEFAULT.to_vec(),
        )
    };
    for index in 0..20 {
        let users = (0..10)
            .map(|k| Source::User(format!("user{}", index * 10 + k)))
            .collect();
        rules.push(rule(
            users,
            Principal::Named(Source::Tag(format!("tag:t{index}"))),
            vec![PortRange::single(443), PortRange::single(22)],
        ));
    }
    for index in 0..20 {
        rules.push(rule(
            vec![Source::Tag(format!("tag:t{index}"))],
            Principal::Named(Source::Tag(format!("tag:t{}", (index + 1) % 20))),
            vec![PortRange {
                first: 8000,
                last: 8999,
            }],
        ));
    }
    rules.push(rule(
        vec![Source::Member],
        Principal::SelfDevices,
        vec![PortRange::ALL],
    ));
    for index in 0..9 {
        rules.push(rule(
            vec![Source::User(format!("user{}", 500 + index))],
            Principal::Named(Source::User(format!("user{}", 600 + index))),
            vec![PortRange::ALL],
        ));
    }
    assert_eq!(rules.len(), 50);
    CompiledPolicy {
        rules,
        ..CompiledPolicy::default()
    }
}

/// 50 grants of the same shapes, with application capabilities and `via`
/// route steering: 20 network grants from users to tags, 10 capability
/// grants (a capability to use the assistant), 10 `via` grants steering a
/// subnet to one of the two routers (of different tags) that offer it, 9
/// tag-to-tag grants, and self access.
fn fifty_grants() -> CompiledPolicy {
    let users = |first: u64| -> String {
        (0..10)
            .map(|k| format!("\"user{}@\"", first + k))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut grants = Vec::new();
    for index in 0..20 {
        grants.push(format!(
            r#"{{"src": [{}], "dst": ["tag:t{index}"], "ip": ["tcp:443", "tcp:22"]}}"#,
            users(index * 10)
        ));
    }
    for index in 0..10 {
        grants.push(format!(
            r#"{{"src": [{}], "dst": ["tag:t{index}"], "app": {{"hearth.example/cap/assistant": [{{"models": ["*"]}}]}}}}"#,
            users(200 + index * 10)
        ));
    }
    for index in 0..10 {
        grants.push(format!(
            r#"{{"src": [{}], "dst": ["10.{index}.0.0/16"], "ip": ["*"], "via": ["tag:t{index}"]}}"#,
            users(300 + index * 10)
        ));
    }
    for index in 0..9 {
        grants.push(format!(
            r#"{{"src": ["tag:t{index}"], "dst": ["tag:t{}"], "ip": ["tcp:8000-8999"]}}"#,
            index + 1
        ));
    }
    grants.push(r#"{"src": ["autogroup:member"], "dst": ["autogroup:self"], "ip": ["*"]}"#.into());
    assert_eq!(grants.len(), 50);
    let owners: Vec<String> = (0..TAGS)
        .map(|index| format!(r#""tag:t{index}": ["user0@"]"#))
        .collect();
    let text = format!(
        r#"{{"tagOwners": {{{}}}, "grants": [{}]}}"#,
        owners.join(","),
        grants.join(",")
    );
    hearth_acl::compile_text(&text).expect("the benchmark's policy is valid")
}

/// The nodes, with routers: node `id` ≤ 40 offers (approved)
/// 10.(id % 10).0.0/16, so each subnet has routers of two tags.
fn records_with_routers() -> Vec<NodeRecord> {
    (1..=NODES)
        .map(|id| {
            let mut record = record(id);
            if id <= 40 {
                let route = format!("10.{}.0.0/16", id % 10).parse().expect("a prefix");
                record.advertised_routes = vec![route];
                record.approved_routes = vec![route];
            }
            record
        })
        .collect()
}

fn report(policy_name: &str, policy: CompiledPolicy, records: Vec<NodeRecord>) {
    let policy = Arc::new(policy);

    let build = median(5, || {
        let records = records.clone();
        timed(|| {
            black_box(Network::with_nodes(Arc::clone(&policy), records));
        })
    });
    let mut network = Network::with_nodes(Arc::clone(&policy), records.clone());
    let subject = TAGGED + 7; // a user-owned node
    let peers = network.peers_of(subject).len();

    let full_map = median(21, || {
        timed(|| {
            let map = network.full_map(subject).expect("admitted");
            black_box(encode_line(&hearth_control::wire::MapMessage::Full {
                map: Box::new(map),
            }));
        })
    });

    // What a connecting node costs: the same line assembled from each
    // peer's kept JSON, when it is the first of its policy class to connect
    // since the network last changed (re-storing a node drops the class
    // maps), and when another member already has (the class's map shared).
    let full_line = median(21, || {
        network.upsert(records[(subject - 1) as usize].clone());
        timed(|| {
            black_box(
                network
                    .full_map_line(subject, Encoding::Identity)
                    .expect("admitted"),
            );
        })
    });
    let shared_line = median(21, || {
        timed(|| {
            black_box(
                network
                    .full_map_line(subject, Encoding::Identity)
                    .expect("admitted"),
            );
        })
    });

    let mut port = 1u16;
    let endpoint_delta = median(201, || {
        let mut moved = records[(subject - 1) as usize].clone();
        port = port.wrapping_add(1);
        moved.endpoints = vec![SocketAddr::from(([198, 51, 100, 1], port))];
        timed(|| {
            black_box(serialize(&network.upsert(moved)));
        })
    });

    let mut next_id = NODES + 1;
    let approve_delta = median(201, || {
        let joining = record(next_id);
        let duration = timed(|| {
            black_box(serialize(&network.upsert(joining)));
        });
        network.remove(next_id);
        next_id += 1;
        duration
    });

    let retag_delta = median(101, || {
        let mut retagged = records[(subject - 1) as usize].clone();
        retagged.tags.insert("tag:t3".into());
        let restored = records[(subject - 1) as usize].clone();
        let duration = timed(|| {
            black_box(serialize(&network.upsert(retagged)));
        });
        network.upsert(restored);
        duration
    });

    // The peer: recompute every node's peer list after a change, as Headscale does.
    let recompute_all = median(3, || {
        timed(|| {
            let total: usize = (1..=NODES).map(|node| network.peers_of(node).len()).sum();
            black_box(total);
        })
    });

    let tailscale = tailscale_encoding(&mut network, &records, subject);

    let ratio = |slow: Duration, fast: Duration| slow.as_secs_f64() / fast.as_secs_f64().max(1e-9);
    println!(
        "policy: {policy_name} ({} identity classes; the measured node has {peers} peers)",
        network.engine().class_count()
    );
    println!(
        "  build network from {NODES} nodes        {:>10.2} ms",
        build.as_secs_f64() * 1e3
    );
    println!(
        "  full map of one node (with JSON)        {:>10.2} ms   target < 100 ms",
        full_map.as_secs_f64() * 1e3
    );
    println!(
        "  the same line assembled (on connect)    {:>10.2} ms   {:.1}x faster",
        full_line.as_secs_f64() * 1e3,
        ratio(full_map, full_line)
    );
    println!(
        "  ... its class's map shared (on connect) {:>10.3} ms   {:.1}x faster",
        shared_line.as_secs_f64() * 1e3,
        ratio(full_map, shared_line)
    );
    println!(
        "  delta: endpoint change                  {:>10.3} ms   target < 5 ms",
        endpoint_delta.as_secs_f64() * 1e3
    );
    println!(
        "  delta: a node is approved               {:>10.3} ms   target < 5 ms",
        approve_delta.as_secs_f64() * 1e3
    );
    println!(
        "  delta: a node's tags change             {:>10.3} ms   target < 5 ms",
        retag_delta.as_secs_f64() * 1e3
    );
    println!(
        "  peer: recompute all {NODES} peer lists {:>10.2} ms",
        recompute_all.as_secs_f64() * 1e3
    );
    println!(
        "  ratio recompute-all / delta: endpoint {:.0}x, approval {:.0}x, retag {:.0}x",
        ratio(recompute_all, endpoint_delta),
        ratio(recompute_all, approve_delta),
        ratio(recompute_all, retag_delta)
    );
    tailscale.print();
}

/// The same node's map for an official Tailscale client (Tailscale's JSON,
/// zstd-framed) against `hearth-agent`'s (a JSON line): full map and one
/// endpoint delta, time and bytes, in the same run.
struct TailscaleEncoding {
    hearth_full: (Duration, usize),
    tailscale_full: (Duration, usize, usize),
    hearth_delta: (Duration, usize),
    tailscale_delta: (Duration, usize, usize),
}

fn tailscale_encoding(
    network: &mut Network,
    records: &[NodeRecord],
    subject: u64,
) -> TailscaleEncoding {
    let view = || {
        TsMapView::new(
            DEFAULT_BASE_DOMAIN,
            vec![hearth_coordinator::relays::embedded(
                "https://10.0.0.1:8443",
                Some(3478),
                "00",
            )],
            SelfKeys::default(),
        )
    };
    let encode = |response: &hearth_control::tailcfg::MapResponse| {
        let json = serde_json::to_vec(response).expect("serializes");
        let framed = tailcfg::frame(&json, true).expect("fits a frame");
        (json.len(), framed.len())
    };
    let mut sizes = (0, 0, 0);
    let hearth_full = median(11, || {
        timed(|| {
            let map = network.full_map(subject).expect("admitted");
            sizes.0 = black_box(encode_line(&MapMessage::Full { map: Box::new(map) })).len();
        })
    });
    let tailscale_full = median(11, || {
        timed(|| {
            let map = network.full_map(subject).expect("admitted");
            let response = view()
                .apply(MapMessage::Full { map: Box::new(map) })
                .expect("a full map");
            (sizes.1, sizes.2) = black_box(encode(&response));
        })
    });

    // One endpoint change of a peer, as the subject receives it.
    let peer = network.peers_of(subject)[0];
    let mut recipient = view();
    recipient.apply(MapMessage::Full {
        map: Box::new(network.full_map(subject).expect("admitted")),
    });
    let mut delta_sizes = (0, 0, 0);
    let mut port = 1u16;
    let mut hearth_delta = Vec::new();
    let mut tailscale_delta = Vec::new();
    for _ in 0..201 {
        let mut moved = records[(peer - 1) as usize].clone();
        port = port.wrapping_add(1);
        moved.endpoints = vec![SocketAddr::from(([198, 51, 100, 2], port))];
        let deliveries = network.upsert(moved);
        let message = deliveries
            .iter()
            .find(|delivery| delivery.recipients.contains(&subject))
            .expect("the subject sees its peer move")
            .message
            .clone();
        hearth_delta.push(timed(|| {
            delta_sizes.0 = black_box(encode_line(&message)).len();
        }));
        tailscale_delta.push(timed(|| {
            let response = recipient.apply(message).expect("a delta");
            (delta_sizes.1, delta_sizes.2) = black_box(encode(&response));
        }));
    }
    hearth_delta.sort();
    tailscale_delta.sort();
    TailscaleEncoding {
        hearth_full: (hearth_full, sizes.0),
        tailscale_full: (tailscale_full, sizes.1, sizes.2),
        hearth_delta: (hearth_delta[100], delta_sizes.0),
        tailscale_delta: (tailscale_delta[100], delta_sizes.1, delta_sizes.2),
    }
}

impl TailscaleEncoding {
    fn print(&self) {
        let ms = |duration: Duration| duration.as_secs_f64() * 1e3;
        println!(
            "  full map, hearth-agent JSON line        {:>10.2} ms {:>10} bytes",
            ms(self.hearth_full.0),
            self.hearth_full.1
        );
        println!(
            "  full map, Tailscale JSON + zstd frame   {:>10.2} ms {:>10} bytes ({} bytes JSON)",
            ms(self.tailscale_full.0),
            self.tailscale_full.2,
            self.tailscale_full.1
        );
        println!(
            "  delta, hearth-agent JSON line           {:>10.3} ms {:>10} bytes",
            ms(self.hearth_delta.0),
            self.hearth_delta.1
        );
        println!(
            "  delta, Tailscale JSON + zstd frame      {:>10.3} ms {:>10} bytes ({} bytes JSON)",
            ms(self.tailscale_delta.0),
            self.tailscale_delta.2,
            self.tailscale_delta.1
        );
        println!(
            "  ratio Tailscale / hearth-agent: full map time {:.2}x bytes {:.2}x; delta time {:.2}x bytes {:.2}x",
            self.tailscale_full.0.as_secs_f64() / self.hearth_full.0.as_secs_f64().max(1e-9),
            self.tailscale_full.2 as f64 / self.hearth_full.1 as f64,
            self.tailscale_delta.0.as_secs_f64() / self.hearth_delta.0.as_secs_f64().max(1e-9),
            self.tailscale_delta.2 as f64 / self.hearth_delta.1 as f64,
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing else useful.
    let plain: Vec<NodeRecord> = (1..=NODES).map(record).collect();
    report(
        "no policy (allow all)",
        CompiledPolicy::allow_all(),
        plain.clone(),
    );
    report("50 rules", fifty_rules(), plain);
    report(
        "50 grants (app capabilities, via; 40 subnet routers)",
        fifty_grants(),
        records_with_routers(),
    );
}
