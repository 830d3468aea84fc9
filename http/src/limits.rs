//! How many connections a server holds, in all and per source address; how
//! long a client may take before its first request head is complete, stay
//! idle, or take to send a body; and how many bytes of unfinished request
//! bodies one source may make the server hold.
//!
//! Without these, a client that opens connections and sends nothing, half a
//! header (slowloris), or half a body holds a file descriptor (and memory)
//! each forever, and a few of them starve every other client. With them,
//! one source can hold at most its share, and a connection that does not
//! make progress in time is closed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// File descriptors kept back from connections (database, logs, sockets to
/// backends, the agent...).
const RESERVED_DESCRIPTORS: u64 = 64;

/// The limits of one listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections held at once, from everyone.
    pub max_connections: usize,
    /// Connections held at once from one source address.
    pub max_per_source: usize,
    /// Time from accepting a connection to its first whole request head
    /// (TLS handshake and HTTP/2 preface included); for HTTP/1 also the
    /// time to send each later head.
    pub header_timeout: Duration,
    /// Time to finish a TLS handshake, where there is one.
    pub handshake_timeout: Duration,
    /// A connection with no request in flight for this long is closed
    /// (HTTP/1 keep-alive and HTTP/2 alike, whatever PINGs it answers).
    pub idle_timeout: Duration,
    /// Time from a request's head to the end of its body.
    pub body_timeout: Duration,
    /// Bytes of request bodies still arriving that one source may have
    /// the server hold at once.
    pub body_bytes_per_source: usize,
    /// The same, from everyone.
    pub body_bytes: usize,
}

/// The default time to send a request head (and, from accept, the first).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The default idle time after which a connection is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The default time to send a request body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// The default bytes of unfinished bodies per source (four of the largest
/// body any Hearth server takes).
pub const BODY_BYTES_PER_SOURCE: usize = 16 << 20;
/// The default bytes of unfinished bodies in all.
pub const BODY_BYTES: usize = 256 << 20;

/// What a listener serves, which sets how many connections it may hold:
/// the one table every Hearth server's listener is sized from (timeouts and
/// body budgets are the same for all: [`HEADER_TIMEOUT`], [`IDLE_TIMEOUT`],
/// [`BODY_TIMEOUT`], [`BODY_BYTES_PER_SOURCE`], [`BODY_BYTES`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// The coordinator and its relays: a stream from every device of the
    /// tailnet, many devices behind one NAT. 16,384 in all, 1,024 per
    /// source (`serve --max-connections`, `--max-connections-per-source`).
    ControlPlane,
    /// A household service the members' devices call (the AI gateway,
    /// messaging, the private-compute config server): 4,096 in all, 256
    /// per source.
    Household,
    /// A service called by a few trusted peers, each carrying many
    /// requests (a compute node behind the router, the OHTTP gateway
    /// behind its relay): `total` in all, all of them from one source if
    /// need be.
    Backend {
        /// Connections in all.
        total: usize,
    },
    /// In front of many clients that may share addresses (the private
    /// compute router, the OHTTP relay): `total` in all, `per_source` each.
    Front {
        /// Connections in all.
        total: usize,
        /// Connections from one source address.
        per_source: usize,
    },
}

impl Scale {
    /// The compute node's: as many as the router may open.
    pub const COMPUTE_NODE: Scale = Scale::Backend { total: 4_096 };
    /// The OHTTP gateway's: every relayed request.
    pub const OHTTP_GATEWAY: Scale = Scale::Backend { total: 8_192 };

    /// Connections in all and per source address, before fitting them to
    /// the process's file descriptors.
    pub const fn connections(self) -> (usize, usize) {
        match self {
            Scale::ControlPlane => (16_384, 1_024),
            Scale::Household => (4_096, 256),
            Scale::Backend { total } => (total, total),
            Scale::Front { total, per_source } => (total, per_source),
        }
    }
}

impl Limits {
    /// The limits of a listener serving at `scale`, fitted to this
    /// process's descriptor limit ([`Limits::for_this_process`]).
    pub fn for_scale(scale: Scale) -> Limits {
        let (total, per_source) = scale.connections();
        Limits::for_this_process(total, per_source)
    }

    /// `max_connections` in all and `max_per_source` per address, each
    /// lowered to fit the file descriptors `descriptors` allows (the soft
    /// `RLIMIT_NOFILE`): a quarter of the total per source at most.
    pub fn fitted(max_connections: usize, max_per_source: usize, descriptors: u64) -> Limits {
        let fit = usize::try_from(descriptors.saturating_sub(RESERVED_DESCRIPTORS))
            .unwrap_or(usize::MAX)
            .max(4);
        let max_connections = max_connections.clamp(1, fit);
        let max_per_source = max_per_source.clamp(1, (max_connections / 4).max(1));
        Limits {
            max_connections,
            max_per_source,
            header_timeout: HEADER_TIMEOUT,
            handshake_timeout: HEADER_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            body_timeout: BODY_TIMEOUT,
            body_bytes_per_source: BODY_BYTES_PER_SOURCE,
            body_bytes: BODY_BYTES,
        }
    }

    /// [`Limits::fitted`] to this process's descriptor limit, after raising
    /// the soft limit to the hard one (as Go's runtime does at start).
    pub fn for_this_process(max_connections: usize, max_per_source: usize) -> Limits {
        Limits::fitted(max_connections, max_per_source, raise_descriptor_limit())
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the soft limit
/// now in force.
pub fn raise_descriptor_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(error) => {
            tracing::debug!(%error, "cannot raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .map(|(soft, _)| soft)
                .unwrap_or(1024)
        }
    }
}

/// Why a connection was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Full {
    /// Every connection slot is taken.
    #[error("the server holds its maximum of {0} connections")]
    Total(usize),
    /// This source holds its share.
    #[error("this address holds its maximum of {0} connections")]
    Source(usize),
}

/// Counts connections. Pure: the shell ([`Gate`]) holds it under a lock.
#[derive(Debug, Default)]
pub struct Count {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

impl Count {
    /// Takes a slot for `source` within `limits`, or says which limit is reached.
    pub fn admit(&mut self, source: IpAddr, limits: &Limits) -> Result<(), Full> {
        if self.total >= limits.max_connections {
            return Err(Full::Total(limits.max_connections));
        }
        let held = self.by_source.entry(source).or_default();
        if *held >= limits.max_per_source {
            return Err(Full::Source(limits.max_per_source));
        }
        *held += 1;
        self.total += 1;
        Ok(())
    }

    /// Gives back a slot of `source`.
    pub fn release(&mut self, source: IpAddr) {
        if let Some(held) = self.by_source.get_mut(&source) {
            *held -= 1;
            if *held == 0 {
                self.by_source.remove(&source);
            }
            self.total -= 1;
        }
    }

    /// Connections held now.
    pub fn total(&self) -> usize {
        self.total
    }
}

/// Why a request body was refused part-way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BodyFull {
    /// Bodies in progress from everyone fill the server's budget.
    #[error(
        "the server holds its maximum of {0} bytes of unfinished request bodies; retry shortly"
    )]
    Total(usize),
    /// This source's bodies in progress fill its share.
    #[error("this address has {0} bytes of unfinished request bodies; finish those first")]
    Source(usize),
}

/// Bytes of request bodies still arriving, in all and per source. Pure:
/// the shell ([`Gate`]) holds it under a lock.
#[derive(Debug, Default)]
pub struct BodyBytes {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

impl BodyBytes {
    /// Takes `bytes` more for `source` within `limits`, or says which
    /// budget they would exceed (and takes nothing).
    pub fn take(&mut self, source: IpAddr, bytes: usize, limits: &Limits) -> Result<(), BodyFull> {
        if self.total.saturating_add(bytes) > limits.body_bytes {
            return Err(BodyFull::Total(limits.body_bytes));
        }
        let held = self.by_source.entry(source).or_default();
        if held.saturating_add(bytes) > limits.body_bytes_per_source {
            if *held == 0 {
                self.by_source.remove(&source);
            }
            return Err(BodyFull::Source(limits.body_bytes_per_source));
        }
        *held += bytes;
        self.total += bytes;
        Ok(())
    }

    /// Gives back `bytes` of `source` (at most what it holds).
    pub fn give_back(&mut self, source: IpAddr, bytes: usize) {
        let Some(held) = self.by_source.get_mut(&source) else {
            return;
        };
        let bytes = bytes.min(*held);
        *held -= bytes;
        self.total -= bytes;
        if *held == 0 {
            self.by_source.remove(&source);
        }
    }

    /// Bytes held now, in all.
    pub fn total(&self) -> usize {
        self.total
    }
}

/// The connection slots and body budget of one listener.
#[derive(Clone, Debug)]
pub struct Gate {
    limits: Limits,
    count: Arc<Mutex<Count>>,
    bodies: Arc<Mutex<BodyBytes>>,
}

/// What one request body holds of its source's budget; dropping it gives
/// the bytes back.
#[derive(Debug)]
pub struct BodyCharge {
    source: IpAddr,
    held: usize,
    limits: Limits,
    bodies: Arc<Mutex<BodyBytes>>,
}

impl BodyCharge {
    /// Takes `bytes` more, or says why not.
    pub fn take(&mut self, bytes: usize) -> Result<(), BodyFull> {
        hearth_runtime::lock(&self.bodies).take(self.source, bytes, &self.limits)?;
        self.held += bytes;
        Ok(())
    }

    /// Gives back everything taken (the body is whole).
    pub fn release(&mut self) {
        if self.held > 0 {
            hearth_runtime::lock(&self.bodies).give_back(self.source, self.held);
            self.held = 0;
        }
    }
}

impl Drop for BodyCharge {
    fn drop(&mut self) {
        self.release();
    }
}

/// A taken slot; dropping it gives the slot back.
#[derive(Debug)]
pub struct Ticket {
    source: IpAddr,
    count: Arc<Mutex<Count>>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        hearth_runtime::lock(&self.count).release(self.source);
    }
}

impl Gate {
    /// Slots for `limits`.
    pub fn new(limits: Limits) -> Gate {
        Gate {
            limits,
            count: Arc::default(),
            bodies: Arc::default(),
        }
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A slot for a connection from `source`, or why there is none.
    pub fn admit(&self, source: IpAddr) -> Result<Ticket, Full> {
        hearth_runtime::lock(&self.count).admit(source.to_canonical(), &self.limits)?;
        Ok(Ticket {
            source: source.to_canonical(),
            count: Arc::clone(&self.count),
        })
    }

    /// Connections held now.
    pub fn held(&self) -> usize {
        hearth_runtime::lock(&self.count).total()
    }

    /// A charge against `source`'s body budget, empty to begin with.
    pub fn body_charge(&self, source: IpAddr) -> BodyCharge {
        BodyCharge {
            source: source.to_canonical(),
            held: 0,
            limits: self.limits,
            bodies: Arc::clone(&self.bodies),
        }
    }

    /// Bytes of unfinished request bodies held now.
    pub fn body_bytes_held(&self) -> usize {
        hearth_runtime::lock(&self.bodies).total()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_source: usize) -> Limits {
        Limits {
            max_connections: total,
            max_per_source: per_source,
            ..Limits::fitted(total, per_source, 1 << 20)
        }
    }

    #[test]
    fn one_source_cannot_take_every_slot() {
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let limits = limits(5, 3);
        let mut count = Count::default();
        for _ in 0..3 {
            assert_eq!(count.admit(a, &limits), Ok(()));
        }
        assert_eq!(count.admit(a, &limits), Err(Full::Source(3)));
        assert_eq!(count.admit(b, &limits), Ok(()));
        assert_eq!(count.admit(b, &limits), Ok(()));
        assert_eq!(count.admit(b, &limits), Err(Full::Total(5)));
        count.release(a);
        assert_eq!(count.admit(b, &limits), Ok(()));
        assert_eq!(count.total(), 5);
    }

    #[test]
    fn releasing_an_unknown_source_changes_nothing() {
        let mut count = Count::default();
        count.release("10.0.0.9".parse().unwrap());
        assert_eq!(count.total(), 0);
    }

    #[test]
    fn limits_fit_the_descriptor_limit() {
        let fitted = Limits::fitted(16_384, 1_024, 1_024);
        assert_eq!(fitted.max_connections, 960);
        assert_eq!(fitted.max_per_source, 240, "a quarter of the total at most");
        let roomy = Limits::fitted(16_384, 1_024, 1 << 20);
        assert_eq!(
            (roomy.max_connections, roomy.max_per_source),
            (16_384, 1_024)
        );
        let tiny = Limits::fitted(10, 10, 0);
        assert!(tiny.max_connections >= 1 && tiny.max_per_source >= 1);
    }

    #[test]
    fn one_source_cannot_hold_more_than_its_share_of_unfinished_bodies() {
        let limits = Limits {
            body_bytes_per_source: 100,
            body_bytes: 150,
            ..limits(4, 4)
        };
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let mut bytes = BodyBytes::default();
        assert_eq!(bytes.take(a, 60, &limits), Ok(()));
        assert_eq!(bytes.take(a, 41, &limits), Err(BodyFull::Source(100)));
        assert_eq!(bytes.take(a, 40, &limits), Ok(()));
        assert_eq!(bytes.take(b, 51, &limits), Err(BodyFull::Total(150)));
        assert_eq!(bytes.take(b, 50, &limits), Ok(()));
        bytes.give_back(a, 1_000);
        assert_eq!(bytes.total(), 50, "no more than it held comes back");
        bytes.give_back("10.0.0.9".parse().unwrap(), 10);
        assert_eq!(bytes.total(), 50);
    }

    #[test]
    fn body_charges_give_their_bytes_back() {
        let gate = Gate::new(Limits {
            body_bytes_per_source: 10,
            ..limits(4, 4)
        });
        let source: IpAddr = "10.0.0.1".parse().unwrap();
        let mut first = gate.body_charge(source);
        first.take(6).unwrap();
        let mut second = gate.body_charge("::ffff:10.0.0.1".parse().unwrap());
        assert_eq!(second.take(5), Err(BodyFull::Source(10)));
        second.take(4).unwrap();
        first.release();
        assert_eq!(gate.body_bytes_held(), 4);
        drop(second);
        assert_eq!(gate.body_bytes_held(), 0);
    }

    #[test]
    fn tickets_give_their_slot_back() {
        let gate = Gate::new(limits(2, 2));
        let source: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let first = gate.admit(source).unwrap();
        let _second = gate.admit("10.0.0.1".parse().unwrap()).unwrap();
        assert!(
            gate.admit(source).is_err(),
            "mapped and plain IPv4 are one source"
        );
        drop(first);
        assert_eq!(gate.held(), 1);
        assert!(gate.admit(source).is_ok());
    }
}
