//! Mesh address allocation.
//!
//! IPv4 addresses come from 100.64.0.0/10 (the CGNAT range Tailscale also
//! uses), lowest free first, skipping the network and broadcast addresses,
//! 100.100.100.100 (Tailscale's service address, kept free for compatibility)
//! and 100.115.92.0/23 (which ChromeOS claims). Each node's IPv6 address is its
//! IPv4 address embedded in fd7a:115c:a1e0::/48, so the pair is always unique.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

/// First and last usable IPv4 addresses (as integers).
const FIRST: u32 = u32::from_be_bytes([100, 64, 0, 1]);
const LAST: u32 = u32::from_be_bytes([100, 127, 255, 254]);
const RESERVED_SINGLE: u32 = u32::from_be_bytes([100, 100, 100, 100]);
const CHROMEOS_FIRST: u32 = u32::from_be_bytes([100, 115, 92, 0]);
const CHROMEOS_LAST: u32 = u32::from_be_bytes([100, 115, 93, 255]);

/// The IPv6 /48 mesh prefix.
pub const IPV6_PREFIX: [u16; 3] = [0xfd7a, 0x115c, 0xa1e0];

/// Tracks addresses in use and hands out free ones.
#[derive(Clone, Debug, Default)]
pub struct AddressPool {
    used: BTreeSet<u32>,
}

/// The pool is exhausted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no free address is left in 100.64.0.0/10")]
pub struct Exhausted;

fn reserved(address: u32) -> bool {
    address == RESERVED_SINGLE || (CHROMEOS_FIRST..=CHROMEOS_LAST).contains(&address)
}

impl AddressPool {
    /// An empty pool.
    pub fn new() -> AddressPool {
        AddressPool::default()
    }

    /// Marks an address as taken (when loading existing nodes).
    pub fn mark_used(&mut self, address: Ipv4Addr) {
        self.used.insert(u32::from(address));
    }

    /// Returns an address to the pool.
    pub fn release(&mut self, address: Ipv4Addr) {
        self.used.remove(&u32::from(address));
    }

    /// The lowest free address, now marked as used, with its IPv6 twin.
    pub fn allocate(&mut self) -> Result<(Ipv4Addr, Ipv6Addr), Exhausted> {
        let candidate = self.first_free_from(FIRST)?;
        self.used.insert(candidate);
        let ipv4 = Ipv4Addr::from(candidate);
        Ok((ipv4, ipv6_for(ipv4)))
    }

    /// The lowest free, unreserved address at or above `start`.
    fn first_free_from(&self, start: u32) -> Result<u32, Exhausted> {
        // Walk the used set in order; the first gap is the answer. Allocation
        // is rare (registrations), so O(used) is fine and keeps the pool simple.
        let mut candidate = start;
        for used in self.used.range(start..=LAST) {
            while reserved(candidate) {
                candidate += 1;
            }
            if candidate < *used {
                break;
            }
            candidate = candidate.max(used + 1);
        }
        while reserved(candidate) {
            candidate += 1;
        }
        if candidate > LAST {
            return Err(Exhausted);
        }
        Ok(candidate)
    }
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

    #[test]
    fn allocation_starts_at_the_bottom_and_fills_gaps() {
        let mut pool = AddressPool::new();
        let (first, first_v6) = pool.allocate().unwrap();
        assert_eq!(first, Ipv4Addr::new(100, 64, 0, 1));
        assert_eq!(
            first_v6,
            "fd7a:115c:a1e0::6440:1".parse::<Ipv6Addr>().unwrap()
        );
        let (second, _) = pool.allocate().unwrap();
        assert_eq!(second, Ipv4Addr::new(100, 64, 0, 2));
        pool.release(first);
        assert_eq!(pool.allocate().unwrap().0, first);
        assert_eq!(pool.allocate().unwrap().0, Ipv4Addr::new(100, 64, 0, 3));
    }

    #[test]
    fn reserved_addresses_are_never_handed_out() {
        let mut pool = AddressPool::new();
        pool.used.insert(RESERVED_SINGLE - 1);
        assert_eq!(
            pool.first_free_from(RESERVED_SINGLE - 1),
            Ok(RESERVED_SINGLE + 1)
        );
        pool.used.insert(CHROMEOS_FIRST - 1);
        assert_eq!(
            pool.first_free_from(CHROMEOS_FIRST - 1),
            Ok(CHROMEOS_LAST + 1)
        );
        assert_eq!(
            pool.first_free_from(CHROMEOS_FIRST + 5),
            Ok(CHROMEOS_LAST + 1)
        );
    }

    #[test]
    fn a_full_pool_says_so() {
        let mut pool = AddressPool::new();
        pool.used.extend(LAST - 3..=LAST);
        assert_eq!(pool.first_free_from(LAST - 3), Err(Exhausted));
        assert_eq!(pool.first_free_from(LAST - 4), Ok(LAST - 4));
    }

    #[test]
    fn loaded_addresses_are_skipped() {
        let mut pool = AddressPool::new();
        pool.mark_used(Ipv4Addr::new(100, 64, 0, 1));
        pool.mark_used(Ipv4Addr::new(100, 64, 0, 3));
        assert_eq!(pool.allocate().unwrap().0, Ipv4Addr::new(100, 64, 0, 2));
        assert_eq!(pool.allocate().unwrap().0, Ipv4Addr::new(100, 64, 0, 4));
    }
}
