//! Mesh address allocation.
//!
//! IPv4 addresses come from 100.64.0.0/10 (the CGNAT range Tailscale also
//! uses), skipping the network and broadcast addresses, 100.100.100.100
//! (Tailscale's service address, kept free for compatibility) and
//! 100.115.92.0/23 (which ChromeOS claims) and 100.100.0.0/24 (the
//! addresses of Tailscale Services, [`service_address`]). Each node's IPv6 address is its
//! IPv4 address embedded in fd7a:115c:a1e0::/48, so the pair is always unique.
//!
//! An address is a node's identity to the services on the mesh (`whois`),
//! and they remember it for a while (caches, open WebSockets). So a freed
//! address is not handed to the next node: new nodes get addresses above
//! the highest ever handed out, and only once that runs out (after about
//! four million registrations) does allocation go back to freed addresses,
//! and then only to those freed more than [`QUARANTINE_SECONDS`] ago.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};

/// First and last usable IPv4 addresses (as integers).
const FIRST: u32 = u32::from_be_bytes([100, 64, 0, 1]);
const LAST: u32 = u32::from_be_bytes([100, 127, 255, 254]);
const RESERVED_SINGLE: u32 = u32::from_be_bytes([100, 100, 100, 100]);
const CHROMEOS_FIRST: u32 = u32::from_be_bytes([100, 115, 92, 0]);
const CHROMEOS_LAST: u32 = u32::from_be_bytes([100, 115, 93, 255]);
/// The block services take their addresses from (never a node's).
const SERVICES_FIRST: u32 = u32::from_be_bytes([100, 100, 0, 1]);
const SERVICES_LAST: u32 = u32::from_be_bytes([100, 100, 0, 254]);

/// How long a freed address rests before another node may get it.
pub const QUARANTINE_SECONDS: i64 = 24 * 60 * 60;

/// The IPv6 /48 mesh prefix.
pub const IPV6_PREFIX: [u16; 3] = [0xfd7a, 0x115c, 0xa1e0];

/// The mesh's own prefixes (IPv4 and IPv6): no node may claim a route inside them.
pub fn mesh_prefixes() -> [ipnet::IpNet; 2] {
    [
        ipnet::IpNet::V4(
            ipnet::Ipv4Net::new(Ipv4Addr::new(100, 64, 0, 0), 10).expect("a valid prefix"),
        ),
        ipnet::IpNet::V6(
            ipnet::Ipv6Net::new(
                Ipv6Addr::new(
                    IPV6_PREFIX[0],
                    IPV6_PREFIX[1],
                    IPV6_PREFIX[2],
                    0,
                    0,
                    0,
                    0,
                    0,
                ),
                48,
            )
            .expect("a valid prefix"),
        ),
    ]
}

/// Tracks addresses in use and hands out free ones. Pure: the caller passes the time.
#[derive(Clone, Debug, Default)]
pub struct AddressPool {
    used: BTreeSet<u32>,
    /// Freed addresses and when they were freed.
    released: BTreeMap<u32, i64>,
    /// The highest address ever handed out (0: none yet).
    high_water: u32,
}

/// The pool is exhausted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no free address is left in 100.64.0.0/10")]
pub struct Exhausted;

fn reserved(address: u32) -> bool {
    address == RESERVED_SINGLE
        || (CHROMEOS_FIRST..=CHROMEOS_LAST).contains(&address)
        || (SERVICES_FIRST - 1..=SERVICES_LAST + 1).contains(&address)
}

impl AddressPool {
    /// An empty pool.
    pub fn new() -> AddressPool {
        AddressPool::default()
    }

    /// Marks an address as taken (when loading existing nodes).
    pub fn mark_used(&mut self, address: Ipv4Addr) {
        let address = u32::from(address);
        self.used.insert(address);
        self.high_water = self.high_water.max(address);
    }

    /// Records that `address` was freed at `when` (when loading history).
    pub fn mark_released(&mut self, address: Ipv4Addr, when: i64) {
        let address = u32::from(address);
        self.released.insert(address, when);
        self.high_water = self.high_water.max(address);
    }

    /// Returns an address to the pool at time `now`; it rests before reuse.
    pub fn release(&mut self, address: Ipv4Addr, now: i64) {
        let address = u32::from(address);
        if self.used.remove(&address) {
            self.released.insert(address, now);
        }
    }

    /// Gives back an address that was allocated but never used (a
    /// registration that failed before it was stored): no node held it, so
    /// it needs no rest.
    pub fn unallocate(&mut self, address: Ipv4Addr) {
        self.used.remove(&u32::from(address));
    }

    /// A free address at time `now`, now marked as used, with its IPv6 twin.
    pub fn allocate(&mut self, now: i64) -> Result<(Ipv4Addr, Ipv6Addr), Exhausted> {
        let candidate = match self.fresh() {
            Some(fresh) => fresh,
            None => self.rested(now)?,
        };
        self.used.insert(candidate);
        self.released.remove(&candidate);
        self.high_water = self.high_water.max(candidate);
        let ipv4 = Ipv4Addr::from(candidate);
        Ok((ipv4, ipv6_for(ipv4)))
    }

    /// The next address above every address ever handed out.
    fn fresh(&self) -> Option<u32> {
        let mut candidate = self.high_water.max(FIRST - 1).checked_add(1)?;
        while reserved(candidate) || self.used.contains(&candidate) {
            candidate += 1;
        }
        (candidate <= LAST).then_some(candidate)
    }

    /// The lowest address that is free and was freed long enough ago (or never used).
    fn rested(&self, now: i64) -> Result<u32, Exhausted> {
        (FIRST..=LAST)
            .filter(|candidate| !reserved(*candidate) && !self.used.contains(candidate))
            .find(|candidate| {
                self.released
                    .get(candidate)
                    .is_none_or(|freed| now.saturating_sub(*freed) >= QUARANTINE_SECONDS)
            })
            .ok_or(Exhausted)
    }
}

/// The lowest service address (100.100.0.1 to 100.100.0.254) not in
/// `taken`, with its IPv6 twin; `None` when all 254 are taken.
pub fn service_address(taken: &BTreeSet<Ipv4Addr>) -> Option<(Ipv4Addr, Ipv6Addr)> {
    (SERVICES_FIRST..=SERVICES_LAST)
        .map(Ipv4Addr::from)
        .find(|address| !taken.contains(address))
        .map(|address| (address, ipv6_for(address)))
}

/// The IPv6 mesh address paired with an IPv4 mesh address.
pub fn ipv6_for(ipv4: Ipv4Addr) -> Ipv6Addr {
    let [a, b, c, d] = ipv4.octets();
    Ipv6Addr::new(
        IPV6_PREFIX[0],
        IPV6_PREFIX[1],
        IPV6_PREFIX[2],
        0,
        0,
        0,
        u16::from_be_bytes([a, b]),
        u16::from_be_bytes([c, d]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn allocation_starts_at_the_bottom_and_moves_up() {
        let mut pool = AddressPool::new();
        let (first, first_v6) = pool.allocate(NOW).unwrap();
        assert_eq!(first, Ipv4Addr::new(100, 64, 0, 1));
        assert_eq!(
            first_v6,
            "fd7a:115c:a1e0::6440:1".parse::<Ipv6Addr>().unwrap()
        );
        let (second, _) = pool.allocate(NOW).unwrap();
        assert_eq!(second, Ipv4Addr::new(100, 64, 0, 2));
    }

    #[test]
    fn a_freed_address_is_not_handed_to_the_next_node() {
        let mut pool = AddressPool::new();
        let (first, _) = pool.allocate(NOW).unwrap();
        pool.release(first, NOW);
        assert_eq!(pool.allocate(NOW).unwrap().0, Ipv4Addr::new(100, 64, 0, 2));
        let mut reloaded = AddressPool::new();
        reloaded.mark_released(first, NOW);
        assert_eq!(
            reloaded.allocate(NOW).unwrap().0,
            Ipv4Addr::new(100, 64, 0, 2),
            "the history survives a restart"
        );
    }

    #[test]
    fn freed_addresses_come_back_only_after_the_quarantine_once_the_top_is_reached() {
        let mut pool = AddressPool::new();
        pool.mark_used(Ipv4Addr::from(LAST));
        pool.mark_used(Ipv4Addr::from(FIRST));
        for taken in FIRST + 1..=FIRST + 3 {
            pool.mark_used(Ipv4Addr::from(taken));
        }
        pool.release(Ipv4Addr::from(FIRST), NOW);
        assert_eq!(
            pool.allocate(NOW + 10).unwrap().0,
            Ipv4Addr::from(FIRST + 4),
            "past the top: the lowest address no node rests on"
        );
        assert_eq!(
            pool.rested(NOW + QUARANTINE_SECONDS - 1),
            Ok(FIRST + 5),
            "the freed one still rests"
        );
        assert_eq!(
            pool.allocate(NOW + QUARANTINE_SECONDS).unwrap().0,
            Ipv4Addr::from(FIRST)
        );
    }

    #[test]
    fn reserved_addresses_are_never_handed_out() {
        let mut pool = AddressPool::new();
        pool.high_water = RESERVED_SINGLE - 1;
        assert_eq!(pool.fresh(), Some(RESERVED_SINGLE + 1));
        pool.high_water = CHROMEOS_FIRST - 1;
        assert_eq!(pool.fresh(), Some(CHROMEOS_LAST + 1));
    }

    #[test]
    fn an_unused_allocation_returns_without_rest() {
        let mut pool = AddressPool::new();
        let (first, _) = pool.allocate(NOW).unwrap();
        pool.unallocate(first);
        pool.high_water = LAST;
        assert_eq!(pool.allocate(NOW).unwrap().0, first);
    }

    #[test]
    fn loaded_addresses_are_skipped() {
        let mut pool = AddressPool::new();
        pool.mark_used(Ipv4Addr::new(100, 64, 0, 1));
        pool.mark_used(Ipv4Addr::new(100, 64, 0, 3));
        assert_eq!(pool.allocate(NOW).unwrap().0, Ipv4Addr::new(100, 64, 0, 4));
    }

    #[test]
    fn the_mesh_prefixes_hold_every_address() {
        let mut pool = AddressPool::new();
        let (v4, v6) = pool.allocate(NOW).unwrap();
        let [mesh4, mesh6] = mesh_prefixes();
        assert!(mesh4.contains(&std::net::IpAddr::V4(v4)));
        assert!(mesh6.contains(&std::net::IpAddr::V6(v6)));
    }
}
