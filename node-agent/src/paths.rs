//! Which path packets to a disco peer take: a direct UDP address that disco
//! proved, or the peer's home relay. Pure: the data plane tells it what
//! happened (traffic, pongs, pings, call-me-maybe) with the time, and it
//! answers with the route and the disco messages to send.
//!
//! The rules, close to Tailscale's magicsock but with shorter timers so a
//! cut path is noticed within 3 s:
//! - Packets go direct only to an address whose pong arrived within
//!   [`TRUST`]; otherwise through the relay. The WireGuard session is the
//!   same either way, so switching paths never drops a connection.
//! - While the peer is in use (traffic within [`ACTIVE_FOR`]), the direct
//!   path is pinged every [`HEARTBEAT`]; without one, every candidate is
//!   pinged every [`DISCOVERY_EVERY`] and the peer is asked, through the
//!   relay, to ping back (call-me-maybe), so that both NATs open at once.
//!   On a direct path every candidate is still tried every [`UPGRADE_EVERY`]
//!   in case a better one appeared.
//! - Candidates are the endpoints the coordinator lists, those the peer
//!   names in a call-me-maybe, and addresses its pings come from.

use std::net::SocketAddr;
use std::time::Duration;

use hearth_control::disco::TxId;

/// How long a pong keeps a direct path in use.
pub const TRUST: Duration = Duration::from_millis(2_500);
/// How often a direct path in use is pinged.
pub const HEARTBEAT: Duration = Duration::from_millis(1_000);
/// How often every candidate is pinged while there is no direct path.
pub const DISCOVERY_EVERY: Duration = Duration::from_secs(2);
/// How often every candidate is pinged while on a direct path.
pub const UPGRADE_EVERY: Duration = Duration::from_secs(30);
/// How often the peer is asked to ping back through the relay.
pub const CALL_ME_MAYBE_EVERY: Duration = Duration::from_secs(5);
/// How long a ping waits for its pong.
pub const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// How long after its last traffic a peer counts as in use.
pub const ACTIVE_FOR: Duration = Duration::from_secs(45);
/// How long an address learned from the peer (not from the coordinator)
/// stays a candidate without being heard of again.
pub const LEARNED_FOR: Duration = Duration::from_secs(120);
/// Most candidates learned from the peer.
const MAX_LEARNED: usize = 32;
/// Most pings waiting for a pong.
const MAX_PENDING: usize = 64;
/// A ping back to an address whose ping we just answered waits this long
/// after the last one to the same address.
const PING_BACK_EVERY: Duration = Duration::from_millis(500);

/// Where a packet for the peer goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Straight to this address.
    Direct(SocketAddr),
    /// Through the peer's home relay.
    Relay,
}

/// A disco message to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// A ping to this address, over UDP.
    Ping {
        /// Where.
        to: SocketAddr,
        /// Its transaction id.
        tx: TxId,
    },
    /// Our endpoints, through the relay: ping me there.
    CallMeMaybe,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Best {
    address: SocketAddr,
    rtt: Duration,
    confirmed: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pending {
    tx: TxId,
    to: SocketAddr,
    sent: Duration,
}

/// The path state of one peer. Times are durations since any fixed origin.
#[derive(Clone, Debug, Default)]
pub struct Paths {
    from_map: Vec<SocketAddr>,
    learned: Vec<(SocketAddr, Duration)>,
    best: Option<Best>,
    pending: Vec<Pending>,
    last_discovery: Option<Duration>,
    last_upgrade: Option<Duration>,
    last_heartbeat: Option<Duration>,
    last_call_me_maybe: Option<Duration>,
    active_until: Option<Duration>,
    /// Addresses pinged back after their ping, and when.
    pinged_back: Vec<(SocketAddr, Duration)>,
}

impl Paths {
    /// The endpoints the coordinator lists for the peer.
    pub fn set_candidates(&mut self, endpoints: &[SocketAddr]) {
        self.from_map = endpoints.to_vec();
    }

    /// Where packets go now.
    pub fn route(&self, now: Duration) -> Route {
        match self.best {
            Some(best) if now < best.confirmed + TRUST => Route::Direct(best.address),
            _ => Route::Relay,
        }
    }

    /// The address to try when there is no relay: the last direct path, or
    /// the first candidate.
    pub fn best_guess(&self) -> Option<SocketAddr> {
        self.best
            .map(|best| best.address)
            .or_else(|| self.from_map.first().copied())
            .or_else(|| self.learned.first().map(|(address, _)| *address))
    }

    /// The measured round trip of the direct path in use.
    pub fn direct_rtt(&self, now: Duration) -> Option<Duration> {
        self.best
            .filter(|best| now < best.confirmed + TRUST)
            .map(|best| best.rtt)
    }

    /// Traffic to or from the peer at `now`: it is in use.
    pub fn note_traffic(&mut self, now: Duration) {
        self.active_until = Some(now + ACTIVE_FOR);
    }

    fn active(&self, now: Duration) -> bool {
        self.active_until.is_some_and(|until| now < until)
    }

    fn candidates(&self) -> Vec<SocketAddr> {
        let mut all: Vec<SocketAddr> = Vec::new();
        let known = self
            .from_map
            .iter()
            .chain(self.learned.iter().map(|(address, _)| address))
            .chain(self.best.iter().map(|best| &best.address));
        for address in known {
            if !all.contains(address) {
                all.push(*address);
            }
        }
        all
    }

    fn ping(&mut self, to: SocketAddr, now: Duration, tx: TxId) -> Action {
        if self.pending.len() == MAX_PENDING {
            self.pending.remove(0);
        }
        self.pending.push(Pending { tx, to, sent: now });
        Action::Ping { to, tx }
    }

    fn learn(&mut self, address: SocketAddr, now: Duration) {
        if let Some(entry) = self.learned.iter_mut().find(|(known, _)| *known == address) {
            entry.1 = now;
            return;
        }
        if self.learned.len() == MAX_LEARNED {
            self.learned.remove(0);
        }
        self.learned.push((address, now));
    }

    /// What to send at `now` (called every tick); `next_tx` makes
    /// transaction ids.
    pub fn tick(&mut self, now: Duration, mut next_tx: impl FnMut() -> TxId) -> Vec<Action> {
        self.pending
            .retain(|ping| now.saturating_sub(ping.sent) < PING_TIMEOUT);
        self.learned
            .retain(|(_, heard)| now.saturating_sub(*heard) < LEARNED_FOR);
        if !self.active(now) {
            return Vec::new();
        }
        let due = |last: Option<Duration>, every: Duration| {
            last.is_none_or(|last| now.saturating_sub(last) >= every)
        };
        let mut actions = Vec::new();
        match self.route(now) {
            Route::Direct(address) => {
                if due(self.last_upgrade, UPGRADE_EVERY) {
                    self.last_upgrade = Some(now);
                    self.last_heartbeat = Some(now);
                    for candidate in self.candidates() {
                        actions.push(self.ping(candidate, now, next_tx()));
                    }
                } else if due(self.last_heartbeat, HEARTBEAT) {
                    self.last_heartbeat = Some(now);
                    actions.push(self.ping(address, now, next_tx()));
                }
            }
            Route::Relay => {
                if due(self.last_discovery, DISCOVERY_EVERY) {
                    self.last_discovery = Some(now);
                    for candidate in self.candidates() {
                        actions.push(self.ping(candidate, now, next_tx()));
                    }
                }
                if due(self.last_call_me_maybe, CALL_ME_MAYBE_EVERY) {
                    self.last_call_me_maybe = Some(now);
                    actions.push(Action::CallMeMaybe);
                }
            }
        }
        actions
    }

    /// A pong for `tx` came from `from` at `now`; true when the route changed.
    pub fn on_pong(&mut self, tx: TxId, from: SocketAddr, now: Duration) -> bool {
        let Some(index) = self
            .pending
            .iter()
            .position(|ping| ping.tx == tx && ping.to == from)
        else {
            return false;
        };
        let ping = self.pending.remove(index);
        let rtt = now.saturating_sub(ping.sent);
        let before = self.route(now);
        let replace = match self.best {
            None => true,
            Some(best) if best.address == from => true,
            Some(best) if now >= best.confirmed + TRUST => true,
            // Another working address: take it only if clearly faster.
            Some(best) => rtt * 3 / 2 < best.rtt,
        };
        if replace {
            self.best = Some(Best {
                address: from,
                rtt,
                confirmed: now,
            });
            if before != Route::Direct(from) {
                // A new path starts its heartbeats afresh.
                self.last_heartbeat = Some(now);
            }
        }
        self.route(now) != before
    }

    /// The peer pinged us from `from` (over UDP) at `now`: the address is a
    /// candidate, and pinging it back proves the path our way too.
    pub fn on_ping(
        &mut self,
        from: SocketAddr,
        now: Duration,
        mut next_tx: impl FnMut() -> TxId,
    ) -> Vec<Action> {
        self.learn(from, now);
        if self.route(now) == Route::Direct(from) {
            return Vec::new();
        }
        // Only ping-backs count here: a discovery ping sent a moment before
        // the peer's arrived was likely dropped by the peer's NAT, which its
        // ping has only now opened.
        self.pinged_back
            .retain(|(_, at)| now.saturating_sub(*at) < PING_BACK_EVERY);
        if self.pinged_back.iter().any(|(address, _)| *address == from) {
            return Vec::new();
        }
        if self.pinged_back.len() == MAX_LEARNED {
            self.pinged_back.remove(0);
        }
        self.pinged_back.push((from, now));
        vec![self.ping(from, now, next_tx())]
    }

    /// The peer asked (through the relay) to be pinged at `endpoints`.
    pub fn on_call_me_maybe(
        &mut self,
        endpoints: &[SocketAddr],
        now: Duration,
        mut next_tx: impl FnMut() -> TxId,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        for endpoint in endpoints.iter().take(MAX_LEARNED) {
            self.learn(*endpoint, now);
            actions.push(self.ping(*endpoint, now, next_tx()));
        }
        actions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    fn address(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    /// Transaction ids 1, 2, 3, ... in their first byte.
    fn ids() -> impl FnMut() -> TxId {
        let mut next = 0u8;
        move || {
            next += 1;
            let mut tx = [0; 12];
            tx[0] = next;
            tx
        }
    }

    fn pings(actions: &[Action]) -> Vec<(SocketAddr, TxId)> {
        actions
            .iter()
            .filter_map(|action| match action {
                Action::Ping { to, tx } => Some((*to, *tx)),
                Action::CallMeMaybe => None,
            })
            .collect()
    }

    fn in_use(candidates: &[&str]) -> Paths {
        let mut paths = Paths::default();
        paths.set_candidates(
            &candidates
                .iter()
                .map(|text| address(text))
                .collect::<Vec<_>>(),
        );
        paths.note_traffic(ms(0));
        paths
    }

    #[test]
    fn an_idle_peer_is_not_pinged_and_goes_through_the_relay() {
        let mut paths = Paths::default();
        paths.set_candidates(&[address("10.0.0.2:41641")]);
        assert!(paths.tick(ms(0), ids()).is_empty());
        assert_eq!(paths.route(ms(0)), Route::Relay);
        assert_eq!(paths.best_guess(), Some(address("10.0.0.2:41641")));
    }

    #[test]
    fn traffic_starts_discovery_and_a_pong_makes_the_path_direct() {
        let mut paths = in_use(&["192.168.1.5:41641", "198.18.0.5:41641"]);
        let mut tx = ids();
        let actions = paths.tick(ms(0), &mut tx);
        assert!(
            actions.contains(&Action::CallMeMaybe),
            "asks the peer to ping back"
        );
        let sent = pings(&actions);
        assert_eq!(sent.len(), 2, "every candidate");
        assert!(paths.tick(ms(100), &mut tx).is_empty(), "not again so soon");
        // The LAN address never answers; the public one does after 30 ms.
        assert!(paths.on_pong(sent[1].1, sent[1].0, ms(30)));
        assert_eq!(paths.route(ms(30)), Route::Direct(sent[1].0));
        assert_eq!(paths.direct_rtt(ms(30)), Some(ms(30)));
        // A pong from another address than the ping went to proves nothing.
        assert!(!paths.on_pong(sent[0].1, address("203.0.113.1:1"), ms(40)));
    }

    #[test]
    fn a_path_whose_pongs_stop_falls_back_to_the_relay_within_three_seconds_and_returns() {
        let direct = address("198.18.0.5:41641");
        let mut paths = in_use(&["198.18.0.5:41641"]);
        let mut tx = ids();
        let sent = pings(&paths.tick(ms(0), &mut tx));
        paths.on_pong(sent[0].1, direct, ms(10));
        // Heartbeats every second, answered, until the path is cut at 3.05 s.
        let mut now = ms(10);
        let mut cut_seen = None;
        while now < ms(20_000) {
            now += ms(100);
            paths.note_traffic(now);
            for (to, id) in pings(&paths.tick(now, &mut tx)) {
                let cut = now >= ms(3_050) && now < ms(10_000);
                if !cut {
                    paths.on_pong(id, to, now + ms(1));
                }
            }
            if now >= ms(3_050) && cut_seen.is_none() && paths.route(now) == Route::Relay {
                cut_seen = Some(now);
            }
            if now >= ms(10_000) && paths.route(now) == Route::Direct(direct) {
                break;
            }
        }
        let fell_back = cut_seen.expect("the relay took over") - ms(3_050);
        assert!(fell_back <= ms(3_000), "fell back after {fell_back:?}");
        let healed = now - ms(10_000);
        assert!(
            healed <= DISCOVERY_EVERY + ms(100),
            "direct again {healed:?} after the cut healed"
        );
    }

    #[test]
    fn a_call_me_maybe_pings_every_endpoint_named_at_once() {
        let mut paths = Paths::default();
        let named = [address("198.18.0.9:41641"), address("10.1.0.9:41641")];
        let actions = paths.on_call_me_maybe(&named, ms(0), ids());
        assert_eq!(
            pings(&actions)
                .iter()
                .map(|(to, _)| *to)
                .collect::<Vec<_>>(),
            named
        );
        // They stay candidates for later discovery.
        paths.note_traffic(ms(10_000));
        let later = pings(&paths.tick(ms(10_000), ids()));
        assert_eq!(later.len(), 2);
    }

    #[test]
    fn a_ping_from_a_new_address_is_pinged_back_once() {
        let mut paths = Paths::default();
        let from = address("198.18.0.7:4000");
        let first = paths.on_ping(from, ms(0), ids());
        assert_eq!(pings(&first).len(), 1);
        assert!(
            paths.on_ping(from, ms(100), ids()).is_empty(),
            "not twice at once"
        );
        let (_, tx) = pings(&first)[0];
        paths.on_pong(tx, from, ms(5));
        assert!(
            paths.on_ping(from, ms(900), ids()).is_empty(),
            "already the direct path"
        );
    }

    #[test]
    fn a_discovery_ping_just_before_the_peer_s_ping_does_not_stop_the_ping_back() {
        // Both sides ping at once: ours reaches the peer's NAT before the
        // peer's ping opened it, and is lost. The peer's ping then arrives.
        let from = address("198.18.0.7:41641");
        let mut paths = in_use(&["198.18.0.7:41641"]);
        let mut tx = ids();
        assert_eq!(pings(&paths.tick(ms(0), &mut tx)).len(), 1);
        let back = paths.on_ping(from, ms(1), &mut tx);
        assert_eq!(pings(&back).len(), 1, "pinged back at once");
        let (_, id) = pings(&back)[0];
        assert!(paths.on_pong(id, from, ms(2)));
        assert_eq!(paths.route(ms(2)), Route::Direct(from));
    }

    #[test]
    fn a_faster_path_wins_only_by_a_clear_margin() {
        let (slow, fast) = (address("198.18.0.5:41641"), address("192.168.1.5:41641"));
        let mut paths = in_use(&["198.18.0.5:41641", "192.168.1.5:41641"]);
        let mut tx = ids();
        let sent = pings(&paths.tick(ms(0), &mut tx));
        paths.on_pong(sent[0].1, slow, ms(20));
        paths.on_pong(sent[1].1, fast, ms(19));
        assert_eq!(
            paths.route(ms(20)),
            Route::Direct(slow),
            "1 ms is no reason"
        );
        let again = pings(&paths.tick(ms(UPGRADE_EVERY.as_millis() as u64 + 100), &mut tx));
        let base = ms(UPGRADE_EVERY.as_millis() as u64 + 100);
        for (to, id) in again {
            let rtt = if to == fast { ms(1) } else { ms(20) };
            paths.on_pong(id, to, base + rtt);
        }
        assert_eq!(paths.route(base + ms(25)), Route::Direct(fast));
    }

    #[test]
    fn pings_without_pongs_are_forgotten_and_bounded() {
        let mut paths = in_use(&["198.18.0.5:41641"]);
        let mut tx = ids();
        let sent = pings(&paths.tick(ms(0), &mut tx));
        paths.tick(PING_TIMEOUT + ms(1), &mut tx);
        assert!(
            !paths.on_pong(sent[0].1, sent[0].0, PING_TIMEOUT + ms(2)),
            "a pong after the timeout does not count"
        );
        let many: Vec<SocketAddr> = (0..200)
            .map(|port| SocketAddr::from(([10, 0, 0, 1], port)))
            .collect();
        paths.on_call_me_maybe(&many, ms(10), &mut tx);
        assert!(paths.pending.len() <= MAX_PENDING);
        assert!(paths.learned.len() <= MAX_LEARNED);
    }
}
