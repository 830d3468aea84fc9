//! How many connections a server holds, in all and per source address, and
//! how long a client may take before its request head is complete.
//!
//! Without these, a client that opens connections and sends half a header
//! (slowloris) holds a file descriptor each forever, and a few thousand of
//! them starve every other client. With them, one source can hold at most
//! its share, and a connection that does not send a whole request head in
//! time is closed.

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
    /// Time to send a whole request head (also the longest idle time
    /// between two requests on a kept-alive HTTP/1 connection).
    pub header_timeout: Duration,
    /// Time to finish a TLS handshake, where there is one.
    pub handshake_timeout: Duration,
}

impl Limits {
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
            header_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
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

/// The connection slots of one listener.
#[derive(Clone, Debug)]
pub struct Gate {
    limits: Limits,
    count: Arc<Mutex<Count>>,
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_source: usize) -> Limits {
        Limits {
            max_connections: total,
            max_per_source: per_source,
            header_timeout: Duration::from_secs(1),
            handshake_timeout: Duration::from_secs(1),
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
