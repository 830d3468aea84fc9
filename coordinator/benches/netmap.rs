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

use std::collections::BTreeSet;
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_acl::filter::proto;
use hearth_acl::{CompiledPolicy, PortRange, Principal, Rule, RuleDestination};
use hearth_control::tailcfg;
use hearth_control::wire::{MapMessage, NodeState, WireGuardKey};
use hearth_coordinator::ipam::ipv6_for;
use hearth_coordinator::netmap::{Delivery, Network, NodeRecord};
use hearth_coordinator::streams::encode_line;
use hearth_coordinator::tsmap::{DEFAULT_BASE_DOMAIN, SelfKeys, TsMapView, relay_map};

const NODES: u64 = 10_000;
const USERS: u64 = 1_000;
const TAGGED: u64 = 2_000;
const TAGS: u64 = 20;

fn record(id: u64) -> NodeRecord {
    let ipv4 = Ipv4Addr::from(u32::from(Ipv4Addr::new(100, 64, 0, 0)) + id as u32);
    let mut tags = BTreeSet::new();
    if id <= TAGGED {
        tags.insert(format!("tag:t{}", id % TAGS));
    }
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&id.to_le_bytes());
    NodeRecord {
        id,
        user_id: (id % USERS) as i64,
        user: format!("user{}", id % USERS),
        name: format!("node{id}"),
        hostname: format!("node{id}"),
        os: "linux".into(),
        wireguard_key: WireGuardKey(key),
        state: NodeState::Approved,
        ipv4,
        ipv6: ipv6_for(ipv4),
        tags,
        ephemeral: false,
        static_device: false,
        cert_fingerprint: None,
        machine_key: None,
        disco_key: None,
        client: String::new(),
        endpoints: vec![SocketAddr::from(([192, 0, 2, (id % 250) as u8], 41641))],
        advertised_routes: Vec::new(),
        approved_routes: Vec::new(),
        created_at: 0,
        last_seen: None,
    }
}

/// 50 rules of the shapes households and small teams write: user to user,
/// groups to tags on ports, tags to tags, self access, a few open ports.
fn fifty_rules() -> CompiledPolicy {
    let mut rules = Vec::new();
    let rule = |src: Vec<Principal>, dst: Principal, ports: Vec<PortRange>| Rule {
        src,
        dst: vec![RuleDestination {
            principal: dst,
            ports,
        }],
        protocols: proto::DEFAULT.to_vec(),
    };
    for index in 0..20 {
        let users = (0..10)
            .map(|k| Principal::User(format!("user{}", index * 10 + k)))
            .collect();
        rules.push(rule(
            users,
            Principal::Tag(format!("tag:t{index}")),
            vec![PortRange::single(443), PortRange::single(22)],
        ));
    }
    for index in 0..20 {
        rules.push(rule(
            vec![Principal::Tag(format!("tag:t{index}"))],
            Principal::Tag(format!("tag:t{}", (index + 1) % 20)),
            vec![PortRange {
                first: 8000,
                last: 8999,
            }],
        ));
    }
    rules.push(rule(
        vec![Principal::Member],
        Principal::SelfDevices,
        vec![PortRange::ALL],
    ));
    for index in 0..9 {
        rules.push(rule(
            vec![Principal::User(format!("user{}", 500 + index))],
            Principal::User(format!("user{}", 600 + index)),
            vec![PortRange::ALL],
        ));
    }
    assert_eq!(rules.len(), 50);
    CompiledPolicy { rules }
}

fn serialize(deliveries: &[Delivery]) -> usize {
    deliveries
        .iter()
        .map(|delivery| encode_line(&delivery.message).len())
        .sum()
}

/// Median of `runs` timings of `work`.
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

fn report(policy_name: &str, policy: CompiledPolicy) {
    let policy = Arc::new(policy);
    let records: Vec<NodeRecord> = (1..=NODES).map(record).collect();

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
            black_box(encode_line(&hearth_control::wire::MapMessage::Full { map }));
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
            relay_map("https://10.0.0.1:8443", Some(3478), "00"),
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
            sizes.0 = black_box(encode_line(&MapMessage::Full { map })).len();
        })
    });
    let tailscale_full = median(11, || {
        timed(|| {
            let map = network.full_map(subject).expect("admitted");
            let response = view().apply(MapMessage::Full { map }).expect("a full map");
            (sizes.1, sizes.2) = black_box(encode(&response));
        })
    });

    // One endpoint change of a peer, as the subject receives it.
    let peer = network.peers_of(subject)[0];
    let mut recipient = view();
    recipient.apply(MapMessage::Full {
        map: network.full_map(subject).expect("admitted"),
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
    report("no policy (allow all)", CompiledPolicy::allow_all());
    report("50 rules", fifty_rules());
}
