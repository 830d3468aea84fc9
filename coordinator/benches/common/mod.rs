//! What the coordinator's benchmarks share: the 10,000-node network they
//! measure and how they time it.
#![allow(dead_code)] // each bench uses part of it

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use hearth_control::wire::{NodeState, WireGuardKey};
use hearth_coordinator::ipam::ipv6_for;
use hearth_coordinator::netmap::{Delivery, NodeRecord};
use hearth_coordinator::streams::encode_line;

pub mod load;

/// Nodes in the network.
pub const NODES: u64 = 10_000;
/// Users owning them (node `id` belongs to user `id % USERS`).
pub const USERS: u64 = 1_000;
/// Nodes `1..=TAGGED` carry one tag.
pub const TAGGED: u64 = 2_000;
/// Distinct tags.
pub const TAGS: u64 = 20;

/// Node `id`: approved, one endpoint, tagged when `id <= TAGGED`.
pub fn record(id: u64) -> NodeRecord {
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
        home_relay: None,
        client: String::new(),
        capability_version: 0,
        endpoints: vec![SocketAddr::from(([192, 0, 2, (id % 250) as u8], 41641))],
        advertised_routes: Vec::new(),
        approved_routes: Vec::new(),
        created_at: 0,
        last_seen: None,
        key_expiry: None,
        key_lifetime: None,
        services: Vec::new(),
        ssh_host_keys: Vec::new(),
        service_ads: Default::default(),
        hosted: Vec::new(),
    }
}

/// The bytes of every distinct message in `deliveries`, serialized once.
pub fn serialize(deliveries: &[Delivery]) -> usize {
    deliveries
        .iter()
        .map(|delivery| encode_line(&delivery.message).len())
        .sum()
}

/// Median of `runs` timings of `work`.
pub fn median(runs: usize, mut work: impl FnMut() -> Duration) -> Duration {
    let mut times: Vec<Duration> = (0..runs).map(|_| work()).collect();
    times.sort();
    times[runs / 2]
}

pub fn timed(work: impl FnOnce()) -> Duration {
    let start = Instant::now();
    work();
    start.elapsed()
}
