//! One peer's paths through peer relays: the endpoints relays made for the
//! two of us (asked for by us, or named by the peer in a call-me-maybe-via),
//! the bind handshake with each relay, and pings to the peer through them.
//! Pure, like [`crate::paths`], which asks it for the path and decides.
//!
//! The exchange, as Tailscale's clients run it: while the peer is in use
//! and no direct path works, every relay the policy offers us is asked
//! through DERP for an endpoint for our two disco keys; the answer is told
//! to the peer (call-me-maybe-via), and both bind: a bind to each of the
//! relay's addresses, the relay's challenge, our answer, and at once a
//! ping to the peer through the relay. The peer's pong through it makes the
//! endpoint a path, for as long as pongs keep coming.

use std::net::SocketAddr;
use std::time::Duration;

use hearth_control::disco::{Bind, RelayEndpoint, TxId};

/// How often the relays are asked again while only DERP works.
pub const ALLOCATE_EVERY: Duration = Duration::from_secs(10);
/// How often a bind goes again until the relay challenges it, and how
/// often a bound endpoint is pinged.
pub const BIND_EVERY: Duration = Duration::from_secs(1);
/// How long a ping waits for its pong.
const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest an endpoint is tried without a pong through it.
const TRY_FOR: Duration = Duration::from_secs(30);
/// Endpoints held for one peer, at most (one per relay).
const MAX_HELD: usize = 4;
/// Pings waiting for a pong, at most.
const MAX_PENDING: usize = 16;
/// Addresses of one relay bound to, at most: a peer names the endpoint in
/// its call-me-maybe-via, and is not to make us send binds to many.
const MAX_BIND_ADDRESSES: usize = 4;

/// Something to send for a peer relay path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayAction {
    /// Ask every relay offered to us (through DERP) for an endpoint.
    Allocate {
        /// Echoed in the answers.
        generation: u32,
    },
    /// Tell the peer (through DERP) to meet us at this endpoint.
    CallMeMaybeVia(RelayEndpoint),
    /// A bind to the relay `server` at `to`, for endpoint `vni` (the
    /// other client's key is the peer's disco key).
    Bind {
        /// The relay's disco key, which the bind is sealed to.
        server: [u8; 32],
        /// One of the relay's addresses.
        to: SocketAddr,
        /// The endpoint.
        vni: u32,
        /// This handshake's generation.
        generation: u32,
    },
    /// The answer to the relay's challenge.
    Answer {
        /// The relay's disco key.
        server: [u8; 32],
        /// Where the challenge came from.
        to: SocketAddr,
        /// The challenge, echoed.
        bind: Bind,
    },
    /// A disco ping to the peer through the relay at `to`.
    Ping {
        /// The relay's address.
        to: SocketAddr,
        /// The endpoint.
        vni: u32,
        /// Its transaction id.
        tx: TxId,
    },
}

/// An endpoint that carried a pong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proven {
    /// The relay's address.
    pub address: SocketAddr,
    /// The endpoint.
    pub vni: u32,
    /// The round trip of the last pong.
    pub rtt: Duration,
    /// When it came.
    pub confirmed: Duration,
}

#[derive(Clone, Debug)]
struct Held {
    endpoint: RelayEndpoint,
    since: Duration,
    generation: u32,
    last_bind: Option<Duration>,
    /// The relay address that challenged our bind: we are bound there.
    bound: Option<SocketAddr>,
    last_ping: Option<Duration>,
    proven: Option<Proven>,
}

/// A ping through a relay waiting for its pong: its id, the relay's
/// address, the endpoint, and when it went.
type Pending = (TxId, SocketAddr, u32, Duration);

/// A relay passed over, and until when.
#[derive(Clone, Copy, Debug)]
struct Distrusted {
    server: [u8; 32],
    until: Duration,
}

/// The peer relay paths to one peer.
#[derive(Clone, Debug, Default)]
pub struct RelayPaths {
    held: Vec<Held>,
    /// The endpoint in use, by relay key and VNI.
    chosen: Option<([u8; 32], u32)>,
    allocation: u32,
    last_allocate: Option<Duration>,
    binds: u32,
    pending: Vec<Pending>,
    distrusted: Vec<Distrusted>,
    /// WireGuard through the chosen relay: the counts last seen, since when
    /// data went unanswered, and when data last went.
    counts: (u64, u64),
    unanswered_since: Option<Duration>,
    last_sent: Option<Duration>,
}

fn due(last: Option<Duration>, every: Duration, now: Duration) -> bool {
    last.is_none_or(|last| now.saturating_sub(last) >= every)
}

/// The next nonzero generation after `current`.
fn next_generation(current: &mut u32) -> u32 {
    *current = current.wrapping_add(1).max(1);
    *current
}

impl RelayPaths {
    /// The endpoint in use, with its last pong (whether that is recent
    /// enough is [`crate::paths::Paths`]'s call).
    pub fn chosen(&self) -> Option<Proven> {
        let (server, vni) = self.chosen?;
        self.held
            .iter()
            .find(|held| held.endpoint.server == server && held.endpoint.vni == vni)
            .and_then(|held| held.proven)
    }

    /// What to send at `now`. `allocate`: only DERP works, so the relays
    /// are asked for endpoints; `try_paths`: the peer is in use without a
    /// direct path, so endpoints held are bound and pinged.
    pub fn tick(
        &mut self,
        now: Duration,
        allocate: bool,
        try_paths: bool,
        mut next_tx: impl FnMut() -> TxId,
    ) -> Vec<RelayAction> {
        self.pending
            .retain(|(.., sent)| now.saturating_sub(*sent) < PING_TIMEOUT);
        self.distrusted.retain(|entry| now < entry.until);
        let steady = |held: &Held| held.endpoint.steady_lifetime.max(TRY_FOR);
        self.held.retain(|held| match held.proven {
            Some(proven) => now.saturating_sub(proven.confirmed) < steady(held),
            None => now.saturating_sub(held.since) < TRY_FOR,
        });
        if self.chosen().is_none() {
            self.chosen = None;
        }
        let mut actions = Vec::new();
        if allocate && due(self.last_allocate, ALLOCATE_EVERY, now) {
            self.last_allocate = Some(now);
            actions.push(RelayAction::Allocate {
                generation: next_generation(&mut self.allocation),
            });
        }
        if !try_paths {
            return actions;
        }
        for held in &mut self.held {
            match held.bound {
                None if due(held.last_bind, BIND_EVERY, now) => {
                    held.last_bind = Some(now);
                    actions.extend(bind_actions(held));
                }
                Some(to) if due(held.last_ping, BIND_EVERY, now) => {
                    actions.push(ping(held, to, &mut self.pending, now, next_tx()));
                }
                _ => {}
            }
        }
        actions
    }

    /// A relay answered our request `generation` with `endpoint` (the
    /// caller checked that it is for the peer and us): tell the peer, and
    /// bind.
    pub fn on_allocated(
        &mut self,
        generation: u32,
        endpoint: RelayEndpoint,
        now: Duration,
    ) -> Vec<RelayAction> {
        if generation != self.allocation {
            return Vec::new();
        }
        let mut actions = vec![RelayAction::CallMeMaybeVia(endpoint.clone())];
        actions.extend(self.on_endpoint(endpoint, now));
        actions
    }

    /// An endpoint for the peer and us (from our relay's answer or the
    /// peer's call-me-maybe-via): bind to it, unless it is the one already
    /// working.
    pub fn on_endpoint(&mut self, endpoint: RelayEndpoint, now: Duration) -> Vec<RelayAction> {
        if self
            .distrusted
            .iter()
            .any(|entry| entry.server == endpoint.server && now < entry.until)
        {
            return Vec::new();
        }
        let position = self
            .held
            .iter()
            .position(|held| held.endpoint.server == endpoint.server);
        if let Some(index) = position {
            let held = &self.held[index];
            let same =
                held.endpoint.vni == endpoint.vni && held.endpoint.lamport == endpoint.lamport;
            let working = held
                .proven
                .is_some_and(|proven| now.saturating_sub(proven.confirmed) < BIND_EVERY * 3);
            if (same && working) || endpoint.lamport < held.endpoint.lamport {
                return Vec::new();
            }
            self.held.remove(index);
        } else if self.held.len() == MAX_HELD {
            // Make room: the oldest endpoint that is not in use goes.
            let chosen = self.chosen;
            let Some(index) = self
                .held
                .iter()
                .position(|held| Some((held.endpoint.server, held.endpoint.vni)) != chosen)
            else {
                return Vec::new();
            };
            self.held.remove(index);
        }
        let held = Held {
            endpoint,
            since: now,
            generation: next_generation(&mut self.binds),
            last_bind: Some(now),
            bound: None,
            last_ping: None,
            proven: None,
        };
        let actions = bind_actions(&held);
        self.held.push(held);
        actions
    }

    /// Relay `server` challenged our bind from `from`: answer, and ping the
    /// peer through it at once.
    pub fn on_challenge(
        &mut self,
        server: [u8; 32],
        from: SocketAddr,
        bind: Bind,
        now: Duration,
        mut next_tx: impl FnMut() -> TxId,
    ) -> Vec<RelayAction> {
        let Some(held) = self.held.iter_mut().find(|held| {
            held.endpoint.server == server
                && held.endpoint.vni == bind.vni
                && held.generation == bind.generation
                && held.endpoint.addresses[..held.endpoint.addresses.len().min(MAX_BIND_ADDRESSES)]
                    .contains(&from)
        }) else {
            return Vec::new();
        };
        if held.bound.is_some_and(|bound| bound != from) {
            // Bound at another of its addresses already (the relay
            // forwards from one).
            return Vec::new();
        }
        held.bound = Some(from);
        vec![
            RelayAction::Answer {
                server,
                to: from,
                bind,
            },
            ping(held, from, &mut self.pending, now, next_tx()),
        ]
    }

    /// The peer pinged us through the relay at `from`: our bind holds, so
    /// if nothing proved the endpoint yet, ping back (our first ping may
    /// have gone before the peer's bind did).
    pub fn on_ping(
        &mut self,
        from: SocketAddr,
        vni: u32,
        now: Duration,
        mut next_tx: impl FnMut() -> TxId,
    ) -> Vec<RelayAction> {
        let Some(held) = self
            .held
            .iter_mut()
            .find(|held| held.endpoint.vni == vni && held.bound == Some(from))
        else {
            return Vec::new();
        };
        let proven = held
            .proven
            .is_some_and(|proven| now.saturating_sub(proven.confirmed) < BIND_EVERY * 3);
        if proven || !due(held.last_ping, BIND_EVERY / 5, now) {
            return Vec::new();
        }
        vec![ping(held, from, &mut self.pending, now, next_tx())]
    }

    /// A pong for `tx` came through the relay at `from`, endpoint `vni`;
    /// true when the endpoint in use changed.
    pub fn on_pong(&mut self, tx: TxId, from: SocketAddr, vni: u32, now: Duration) -> bool {
        let Some(index) = self
            .pending
            .iter()
            .position(|(id, to, on, _)| *id == tx && *to == from && *on == vni)
        else {
            return false;
        };
        let (.., sent) = self.pending.remove(index);
        let Some(held) = self
            .held
            .iter_mut()
            .find(|held| held.endpoint.vni == vni && held.bound == Some(from))
        else {
            return false;
        };
        let proven = Proven {
            address: from,
            vni,
            rtt: now.saturating_sub(sent),
            confirmed: now,
        };
        held.proven = Some(proven);
        let key = (held.endpoint.server, vni);
        let take = match self.chosen() {
            None => true,
            Some(_) if self.chosen == Some(key) => true,
            // Another relay: only when the one in use went quiet, or this
            // one is clearly faster.
            Some(current) => {
                now.saturating_sub(current.confirmed) > BIND_EVERY * 3
                    || proven.rtt * 3 / 2 < current.rtt
            }
        };
        let changed = take && self.chosen != Some(key);
        if take {
            if changed {
                self.answered();
            }
            self.chosen = Some(key);
        }
        changed
    }

    /// WireGuard through the chosen relay: `sent` data packets, `heard`
    /// authenticated ones back, and whether packets go that way now. Data
    /// sent for `silence` with nothing back while the relay kept answering
    /// pings means the relay passes disco and drops WireGuard: it is
    /// dropped and passed over for `distrust_for`.
    pub fn note_wireguard(
        &mut self,
        (sent, heard): (u64, u64),
        in_use: bool,
        now: Duration,
        (silence, distrust_for): (Duration, Duration),
    ) {
        if heard != self.counts.1 {
            self.answered();
        }
        if sent != self.counts.0 && in_use {
            self.last_sent = Some(now);
            self.unanswered_since.get_or_insert(now);
        }
        self.counts = (sent, heard);
        let (Some(since), Some(last)) = (self.unanswered_since, self.last_sent) else {
            return;
        };
        let Some(current) = self.chosen() else {
            return;
        };
        if last.saturating_sub(since) < silence || current.confirmed < since + silence / 2 {
            return;
        }
        if let Some((server, _)) = self.chosen.take() {
            self.held.retain(|held| held.endpoint.server != server);
            self.distrusted.push(Distrusted {
                server,
                until: now + distrust_for,
            });
        }
        self.answered();
    }

    fn answered(&mut self) {
        self.unanswered_since = None;
        self.last_sent = None;
    }
}

fn bind_actions(held: &Held) -> Vec<RelayAction> {
    held.endpoint
        .addresses
        .iter()
        .take(MAX_BIND_ADDRESSES)
        .map(|to| RelayAction::Bind {
            server: held.endpoint.server,
            to: *to,
            vni: held.endpoint.vni,
            generation: held.generation,
        })
        .collect()
}

/// A ping to the peer through `held`'s relay at `to`, kept in `pending`
/// until its pong.
fn ping(
    held: &mut Held,
    to: SocketAddr,
    pending: &mut Vec<Pending>,
    now: Duration,
    tx: TxId,
) -> RelayAction {
    held.last_ping = Some(now);
    if pending.len() == MAX_PENDING {
        pending.remove(0);
    }
    let vni = held.endpoint.vni;
    pending.push((tx, to, vni, now));
    RelayAction::Ping { to, vni, tx }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    fn ids() -> impl FnMut() -> TxId {
        let mut next = 0u8;
        move || {
            next += 1;
            [next; 12]
        }
    }

    fn endpoint(server: u8, vni: u32, lamport: u64) -> RelayEndpoint {
        RelayEndpoint {
            server: [server; 32],
            clients: [[1; 32], [2; 32]],
            lamport,
            vni,
            bind_lifetime: Duration::from_secs(30),
            steady_lifetime: Duration::from_secs(300),
            addresses: vec![
                format!("198.18.0.{server}:40000").parse().unwrap(),
                format!("[2001:db8::{server}]:40000").parse().unwrap(),
            ],
        }
    }

    /// Runs the handshake on `paths` for `endpoint` as the relay and the
    /// peer would answer, the pong after `rtt`; returns whether the
    /// endpoint in use changed.
    fn prove(
        paths: &mut RelayPaths,
        endpoint: &RelayEndpoint,
        at: Duration,
        rtt: Duration,
    ) -> bool {
        let binds = paths.on_endpoint(endpoint.clone(), at);
        let (to, generation) = match binds.first() {
            Some(RelayAction::Bind { to, generation, .. }) => (*to, *generation),
            other => panic!("no bind: {other:?}"),
        };
        let bind = Bind {
            vni: endpoint.vni,
            generation,
            remote: [2; 32],
            challenge: [5; 32],
        };
        let actions = paths.on_challenge(endpoint.server, to, bind, at, ids());
        let Some(RelayAction::Ping { tx, .. }) = actions.get(1) else {
            panic!("no ping after the answer: {actions:?}");
        };
        paths.on_pong(*tx, to, endpoint.vni, at + rtt)
    }

    #[test]
    fn an_allocation_is_told_to_the_peer_bound_answered_and_proven_by_a_pong() {
        let mut paths = RelayPaths::default();
        let first = paths.tick(ms(0), true, true, ids());
        let [RelayAction::Allocate { generation }] = first[..] else {
            panic!("{first:?}");
        };
        assert!(
            paths.tick(ms(100), true, true, ids()).is_empty(),
            "not again so soon"
        );
        // An answer to an older request is not ours to use.
        assert!(
            paths
                .on_allocated(generation + 1, endpoint(9, 7, 1), ms(50))
                .is_empty()
        );
        let actions = paths.on_allocated(generation, endpoint(9, 7, 1), ms(50));
        assert_eq!(actions[0], RelayAction::CallMeMaybeVia(endpoint(9, 7, 1)));
        let binds: Vec<_> = actions[1..].to_vec();
        assert_eq!(binds.len(), 2, "a bind to each of the relay's addresses");
        let RelayAction::Bind { to, generation, .. } = binds[0] else {
            panic!("{binds:?}");
        };
        // A challenge naming another generation, or from elsewhere, is not
        // answered.
        let bind = Bind {
            vni: 7,
            generation,
            remote: [2; 32],
            challenge: [5; 32],
        };
        let stale = Bind {
            generation: generation + 1,
            ..bind
        };
        assert!(
            paths
                .on_challenge([9; 32], to, stale, ms(60), ids())
                .is_empty()
        );
        let elsewhere: SocketAddr = "203.0.113.1:40000".parse().unwrap();
        assert!(
            paths
                .on_challenge([9; 32], elsewhere, bind, ms(60), ids())
                .is_empty()
        );
        let answered = paths.on_challenge([9; 32], to, bind, ms(60), ids());
        assert_eq!(
            answered[0],
            RelayAction::Answer {
                server: [9; 32],
                to,
                bind
            }
        );
        let RelayAction::Ping { tx, vni: 7, .. } = answered[1] else {
            panic!("{answered:?}");
        };
        assert_eq!(paths.chosen(), None, "not before a pong");
        assert!(paths.on_pong(tx, to, 7, ms(64)));
        let chosen = paths.chosen().unwrap();
        assert_eq!((chosen.address, chosen.vni, chosen.rtt), (to, 7, ms(4)));
    }

    #[test]
    fn a_second_relay_takes_over_only_when_clearly_faster_or_the_first_goes_quiet() {
        let mut paths = RelayPaths::default();
        assert!(prove(&mut paths, &endpoint(9, 7, 1), ms(0), ms(10)));
        assert!(
            !prove(&mut paths, &endpoint(8, 3, 1), ms(100), ms(8)),
            "8 ms is no reason"
        );
        assert_eq!(paths.chosen().unwrap().vni, 7);
        // The first one's pongs stop; the second keeps answering.
        assert!(prove(&mut paths, &endpoint(8, 4, 2), ms(5_000), ms(8)));
        assert_eq!(paths.chosen().unwrap().vni, 4);
    }

    #[test]
    fn the_same_working_endpoint_named_again_is_not_bound_again_and_a_newer_one_is() {
        let mut paths = RelayPaths::default();
        prove(&mut paths, &endpoint(9, 7, 1), ms(0), ms(5));
        assert!(paths.on_endpoint(endpoint(9, 7, 1), ms(100)).is_empty());
        assert!(
            paths.on_endpoint(endpoint(9, 6, 0), ms(100)).is_empty(),
            "older"
        );
        assert_eq!(
            paths.on_endpoint(endpoint(9, 8, 2), ms(100)).len(),
            2,
            "newer"
        );
    }

    #[test]
    fn binds_go_to_a_few_of_the_addresses_a_peer_names() {
        let mut paths = RelayPaths::default();
        let many = RelayEndpoint {
            addresses: (1..=64)
                .map(|port| format!("198.18.0.9:{port}").parse().unwrap())
                .collect(),
            ..endpoint(9, 7, 1)
        };
        assert_eq!(paths.on_endpoint(many, ms(0)).len(), MAX_BIND_ADDRESSES);
    }

    #[test]
    fn endpoints_that_never_answer_are_given_up_and_bind_again_meanwhile() {
        let mut paths = RelayPaths::default();
        paths.on_endpoint(endpoint(9, 7, 1), ms(0));
        let again = paths.tick(BIND_EVERY, false, true, ids());
        assert_eq!(again.len(), 2, "the binds again");
        assert!(
            paths.tick(BIND_EVERY * 2, false, false, ids()).is_empty(),
            "idle: nothing"
        );
        let _ = paths.tick(TRY_FOR + ms(1), false, true, ids());
        assert!(paths.held.is_empty());
    }

    #[test]
    fn a_relay_that_answers_pings_but_drops_wireguard_is_dropped_and_passed_over() {
        let mut paths = RelayPaths::default();
        prove(&mut paths, &endpoint(9, 7, 1), ms(0), ms(5));
        let rules = (Duration::from_secs(12), Duration::from_secs(60));
        let mut sent = 0;
        let mut now = ms(0);
        // Data goes out every 100 ms, pongs keep coming, no WireGuard back.
        while now < Duration::from_secs(14) && paths.chosen().is_some() {
            now += ms(100);
            sent += 1;
            for action in paths.tick(now, false, true, ids()) {
                if let RelayAction::Ping { to, vni, tx } = action {
                    paths.on_pong(tx, to, vni, now);
                }
            }
            paths.note_wireguard((sent, 0), true, now, rules);
        }
        assert!(paths.chosen().is_none(), "dropped at {now:?}");
        assert!(now >= Duration::from_secs(12));
        assert!(
            paths.on_endpoint(endpoint(9, 8, 2), now).is_empty(),
            "passed over"
        );
        assert!(
            !paths
                .on_endpoint(endpoint(9, 8, 2), now + rules.1)
                .is_empty()
        );
        // With WireGuard coming back, it stays.
        let mut paths = RelayPaths::default();
        prove(&mut paths, &endpoint(9, 7, 1), ms(0), ms(5));
        for step in 1..200u64 {
            let now = ms(100 * step);
            for action in paths.tick(now, false, true, ids()) {
                if let RelayAction::Ping { to, vni, tx } = action {
                    paths.on_pong(tx, to, vni, now);
                }
            }
            paths.note_wireguard((step, step / 10), true, now, rules);
        }
        assert!(paths.chosen().is_some());
    }
}
