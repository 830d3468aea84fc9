//! Which path packets to a disco peer take: a direct UDP address that disco
//! proved, else an endpoint on a peer relay that carried a pong
//! ([`crate::peer_relay::client`]), else the peer's home (DERP) relay.
//! Pure: the data plane tells it what happened (traffic, pongs, pings,
//! call-me-maybe) with the time, and it answers with the route and the
//! disco messages to send.
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
//! - A direct path is trusted only while WireGuard flows over it both
//!   ways: when data has kept going out on it for [`WIREGUARD_SILENCE`]
//!   with no authenticated WireGuard packet back from that address (or
//!   for [`ANSWERED_ELSEWHERE`] while the peer's WireGuard comes through
//!   the relay instead), packets go through the relay again. Silence after
//!   an exchange's last packet is not counted: nothing had to answer it. If disco kept
//!   answering on the path once the silence was telling (a pong to a ping
//!   sent after the peer's WireGuard came through the relay instead, or
//!   after [`PASSIVE_KEEPALIVE`] of silence), the address is also passed
//!   over for
//!   [`DISTRUST_FOR`] (doubling at each repeat, up to an hour), whatever
//!   its pongs say: a middlebox that relays disco but drops WireGuard (one
//!   that got into the path by replaying a captured ping, say) cannot keep
//!   a path that loses everything looking alive. A path that lost both at
//!   once was cut, not hijacked, and comes back as soon as it heals.
//! - Without a direct path, a peer relay's endpoint carries packets while
//!   its pongs keep coming (the same [`TRUST`], heartbeats every second);
//!   discovery of a direct path goes on meanwhile, and wins when it
//!   succeeds. A relay that answers pings and drops WireGuard is passed
//!   over like a direct address that does.

use std::net::SocketAddr;
use std::time::Duration;

use hearth_control::disco::TxId;

use crate::peer_relay::client::{RelayAction, RelayPaths};

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
/// WireGuard's passive keepalive: a peer that receives data and has nothing
/// to send answers with a keepalive this long after, so even one-way
/// traffic hears back within it.
pub const PASSIVE_KEEPALIVE: Duration = Duration::from_secs(10);
/// How long data sent on a direct path may go without any authenticated
/// WireGuard packet coming back from that address: longer than
/// [`PASSIVE_KEEPALIVE`].
pub const WIREGUARD_SILENCE: Duration = Duration::from_secs(12);
/// How long data sent on a direct path may go unanswered on it while the
/// peer's WireGuard arrives through the relay: the peer is not using the
/// path our way, so it does not carry our packets either.
pub const ANSWERED_ELSEWHERE: Duration = Duration::from_secs(2);
/// How long an address that carried no WireGuard back is passed over the
/// first time (then twice as long each time, up to [`DISTRUST_AT_MOST`]).
pub const DISTRUST_FOR: Duration = Duration::from_secs(60);
/// The longest an address is passed over.
pub const DISTRUST_AT_MOST: Duration = Duration::from_secs(3600);
/// Addresses remembered as passed over, at most.
const MAX_DISTRUSTED: usize = 16;

/// Where a packet for the peer goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Straight to this address.
    Direct(SocketAddr),
    /// Through a peer relay's endpoint.
    PeerRelay {
        /// The relay's address.
        address: SocketAddr,
        /// The endpoint.
        vni: u32,
    },
    /// Through the peer's home relay.
    Relay,
}

/// A disco message to send.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// For a path through a peer relay.
    PeerRelay(RelayAction),
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

/// An address that carried no WireGuard back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Distrusted {
    address: SocketAddr,
    until: Duration,
    strikes: u32,
}

/// What the data plane counted of WireGuard with the peer: datagrams sent
/// on the direct path, authenticated ones received from its address, and
/// authenticated ones received through the relay.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WireguardCounts {
    /// Data sent on the direct path.
    pub sent: u64,
    /// Authenticated WireGuard packets received from the direct path's address.
    pub heard: u64,
    /// Authenticated WireGuard packets received through the relay (DERP
    /// or a peer relay).
    pub relayed: u64,
    /// Data sent through a peer relay.
    pub peer_relay_sent: u64,
    /// Authenticated WireGuard packets received through a peer relay.
    pub peer_relay_heard: u64,
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
    /// When the peer was last put to use after an idle spell: a path kept
    /// through the idle spell must be confirmed again within [`TRUST`]
    /// of it.
    resumed_at: Option<Duration>,
    /// Addresses pinged back after their ping, and when.
    pinged_back: Vec<(SocketAddr, Duration)>,
    /// The counts last seen, and since when data on the direct path has
    /// gone unanswered.
    counts: WireguardCounts,
    unanswered_since: Option<Duration>,
    /// When data last went out on the direct path (the sent count moved).
    last_sent: Option<Duration>,
    /// When the peer's WireGuard first came through the relay while data
    /// on the direct path went unanswered.
    answered_elsewhere_since: Option<Duration>,
    /// Whether a ping sent on the direct path once its silence was telling
    /// was answered: disco crosses the path while WireGuard does not.
    disco_answered_in_silence: bool,
    distrusted: Vec<Distrusted>,
    /// Paths through peer relays.
    relays: RelayPaths,
    /// Whether the policy offers us any peer relay for this peer.
    relays_offered: bool,
}

impl Paths {
    /// The endpoints the coordinator lists for the peer.
    pub fn set_candidates(&mut self, endpoints: &[SocketAddr]) {
        self.from_map = endpoints.to_vec();
    }

    /// Where packets go now. While the peer is in use, a direct path is
    /// trusted for [`TRUST`] after its last pong (heartbeats keep it
    /// fresh). While it is idle nothing is sent and no pong is asked for,
    /// so the path stays as it was, instead of lapsing to the relay and
    /// back at every ping the peer sends; once traffic resumes, the path
    /// must answer within [`TRUST`] again or the relay takes over.
    pub fn route(&self, now: Duration) -> Route {
        match self.best {
            Some(best) if !self.silent(now) && self.trusted(best.confirmed, now) => {
                Route::Direct(best.address)
            }
            _ => match self.relays.chosen() {
                Some(proven) if self.trusted(proven.confirmed, now) => Route::PeerRelay {
                    address: proven.address,
                    vni: proven.vni,
                },
                _ => Route::Relay,
            },
        }
    }

    /// Whether the policy offers us a peer relay for this peer; when it
    /// stops, the peer relay paths go at once.
    pub fn set_relays_offered(&mut self, offered: bool) {
        if !offered && self.relays_offered {
            self.relays = RelayPaths::default();
        }
        self.relays_offered = offered;
    }

    /// The peer relay paths, for the messages they answer.
    pub fn relays(&mut self) -> &mut RelayPaths {
        &mut self.relays
    }

    /// [`RelayPaths::on_pong`]; true when the route changed.
    pub fn on_relay_pong(&mut self, tx: TxId, from: SocketAddr, vni: u32, now: Duration) -> bool {
        let before = self.route(now);
        self.relays.on_pong(tx, from, vni, now);
        self.route(now) != before
    }

    /// The round trip of the peer relay path in use.
    pub fn peer_relay_rtt(&self, now: Duration) -> Option<Duration> {
        match self.route(now) {
            Route::PeerRelay { .. } => self.relays.chosen().map(|proven| proven.rtt),
            _ => None,
        }
    }

    /// Whether `best` is still trusted at `now` (see [`Paths::route`]).
    fn trusted(&self, confirmed: Duration, now: Duration) -> bool {
        if !self.active(now) {
            return true;
        }
        let since = self
            .resumed_at
            .map_or(confirmed, |resumed| resumed.max(confirmed));
        now < since + TRUST
    }

    /// Whether data on the direct path has gone unanswered too long: data
    /// kept going out into the silence for [`WIREGUARD_SILENCE`] (or for
    /// [`ANSWERED_ELSEWHERE`] once the peer's WireGuard came through the
    /// relay). Silence after the last packet of an exchange says nothing:
    /// a final TCP acknowledgement wants no answer, and WireGuard's passive
    /// keepalive answers only data that came after what it last sent.
    fn silent(&self, _now: Duration) -> bool {
        self.unanswered_since.is_some_and(|since| {
            let sending_for = self
                .last_sent
                .map_or(Duration::ZERO, |last| last.saturating_sub(since));
            sending_for >= WIREGUARD_SILENCE
                || (sending_for >= ANSWERED_ELSEWHERE && self.answered_elsewhere_since.is_some())
        })
    }

    /// Since when the direct path's silence says something: the peer's
    /// WireGuard came another way, or even a passive keepalive is overdue.
    /// Before that, a pong proves only that the path worked before it was
    /// cut.
    fn telling_since(&self) -> Option<Duration> {
        let since = self.unanswered_since?;
        let overdue = since + PASSIVE_KEEPALIVE;
        Some(
            self.answered_elsewhere_since
                .map_or(overdue, |elsewhere| elsewhere.min(overdue)),
        )
    }

    fn distrusts(&self, address: SocketAddr, now: Duration) -> bool {
        self.distrusted
            .iter()
            .any(|entry| entry.address == address && now < entry.until)
    }

    /// The data plane's WireGuard counts at `now` (see [`WireguardCounts`]):
    /// a packet heard from the direct path answers what was sent; data
    /// sent with nothing heard since starts the silence.
    pub fn note_wireguard(&mut self, counts: WireguardCounts, now: Duration) {
        if counts.heard != self.counts.heard {
            self.answered();
            if let Some(best) = self.best {
                // A path that answers earns back its standing.
                self.distrusted
                    .retain(|entry| entry.address != best.address);
            }
        }
        if self.unanswered_since.is_some()
            && self.answered_elsewhere_since.is_none()
            && counts.relayed != self.counts.relayed
        {
            self.answered_elsewhere_since = Some(now);
        }
        if counts.sent != self.counts.sent && matches!(self.route(now), Route::Direct(_)) {
            self.last_sent = Some(now);
            if self.unanswered_since.is_none() {
                self.unanswered_since = Some(now);
            }
        }
        let on_peer_relay = matches!(self.route(now), Route::PeerRelay { .. });
        self.relays.note_wireguard(
            (counts.peer_relay_sent, counts.peer_relay_heard),
            on_peer_relay,
            now,
            (WIREGUARD_SILENCE, DISTRUST_FOR),
        );
        self.counts = counts;
    }

    /// Nothing on the direct path is waiting for an answer (any more).
    fn answered(&mut self) {
        self.unanswered_since = None;
        self.answered_elsewhere_since = None;
        self.disco_answered_in_silence = false;
    }

    /// Passes over the direct path's address: it carried no WireGuard back.
    fn distrust_best(&mut self, now: Duration) {
        let Some(best) = self.best.take() else {
            return;
        };
        self.answered();
        let strikes = self
            .distrusted
            .iter()
            .find(|entry| entry.address == best.address)
            .map_or(0, |entry| entry.strikes)
            + 1;
        self.distrusted
            .retain(|entry| entry.address != best.address);
        if self.distrusted.len() == MAX_DISTRUSTED {
            self.distrusted.remove(0);
        }
        let penalty = DISTRUST_FOR
            .saturating_mul(1 << (strikes - 1).min(6))
            .min(DISTRUST_AT_MOST);
        self.distrusted.push(Distrusted {
            address: best.address,
            until: now + penalty,
            strikes,
        });
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
            .filter(|best| self.trusted(best.confirmed, now))
            .map(|best| best.rtt)
    }

    /// Traffic to or from the peer at `now`: it is in use.
    pub fn note_traffic(&mut self, now: Duration) {
        if !self.active(now) {
            self.resumed_at = Some(now);
        }
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
        if self.silent(now) {
            if self.disco_answered_in_silence {
                // Disco crossed the path while WireGuard on it did not:
                // someone on it passes the one and drops the other.
                self.distrust_best(now);
            } else {
                // Both stopped at once: the path was cut or the peer went
                // away. The route leaves the path when its pongs' trust
                // runs out; nothing to hold against it once it heals.
                self.answered();
            }
        }
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
            Route::Relay | Route::PeerRelay { .. } => {
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
        let route = self.route(now);
        let allocate = self.relays_offered && route == Route::Relay;
        let try_paths = !matches!(route, Route::Direct(_));
        actions.extend(
            self.relays
                .tick(now, allocate, try_paths, next_tx)
                .into_iter()
                .map(Action::PeerRelay),
        );
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
        if self.distrusts(from, now) {
            return false;
        }
        let rtt = now.saturating_sub(ping.sent);
        let before = self.route(now);
        let replace = match self.best {
            None => true,
            Some(best) if best.address == from => true,
            Some(best) if !self.trusted(best.confirmed, now) => true,
            // Another working address: take it only if clearly faster.
            Some(best) => rtt * 3 / 2 < best.rtt,
        };
        if replace {
            if self.best.is_none_or(|best| best.address != from) {
                // Another address: nothing has gone unanswered on it yet.
                self.answered();
            } else if self
                .telling_since()
                .is_some_and(|telling| ping.sent >= telling)
            {
                self.disco_answered_in_silence = true;
            }
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
                _ => None,
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

    /// Issue 41's review: while idle, a direct path lapsed to the relay
    /// 2.5 s after each pong and came back at the peer's next ping, every
    /// few seconds (37 switches in four minutes). Idle, it stays.
    #[test]
    fn an_idle_direct_path_stays_through_the_peers_pings() {
        let direct = address("198.18.0.5:41641");
        let (mut paths, mut tx) = direct_to(direct);
        let mut now = ms(10);
        let mut routes = vec![paths.route(now)];
        // No traffic from here; the peer pings us every 3 s, as tailscaled
        // does, and our ping back is answered.
        while now < ms(240_000) {
            now += ms(100);
            for (to, id) in pings(&paths.tick(now, &mut tx)) {
                paths.on_pong(id, to, now + ms(1));
            }
            if now.as_millis().is_multiple_of(3_000) {
                for (to, id) in pings(&paths.on_ping(direct, now, &mut tx)) {
                    paths.on_pong(id, to, now + ms(1));
                }
            }
            let route = paths.route(now);
            if routes.last() != Some(&route) {
                routes.push(route);
            }
        }
        assert_eq!(routes, [Route::Direct(direct)], "no switch while idle");
    }

    #[test]
    fn a_path_kept_through_an_idle_spell_is_confirmed_again_when_traffic_resumes() {
        let direct = address("198.18.0.5:41641");
        let (mut paths, mut tx) = direct_to(direct);
        // Idle for two minutes; then traffic again.
        let resumed = ms(120_000);
        paths.note_traffic(resumed);
        assert_eq!(
            paths.route(resumed),
            Route::Direct(direct),
            "at once, no relay detour"
        );
        let heartbeat = pings(&paths.tick(resumed, &mut tx));
        assert_eq!(heartbeat.len(), 1, "the path is asked again at once");
        // It answers: it stays.
        paths.on_pong(heartbeat[0].1, direct, resumed + ms(5));
        assert_eq!(paths.route(resumed + TRUST), Route::Direct(direct));
        // Another idle spell, after which the path is gone: the relay
        // takes over within TRUST.
        let resumed = ms(300_000);
        paths.note_traffic(resumed);
        let _ = paths.tick(resumed, &mut tx);
        assert_eq!(paths.route(resumed + TRUST - ms(1)), Route::Direct(direct));
        paths.note_traffic(resumed + TRUST);
        assert_eq!(paths.route(resumed + TRUST), Route::Relay);
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

    /// Issue 58: direct first, then a peer relay, then DERP, and no
    /// switching back and forth while each keeps answering.
    #[test]
    fn a_peer_relay_carries_packets_until_a_direct_path_works_and_after_it_is_cut() {
        use hearth_control::disco::{Bind, RelayEndpoint};
        let direct = address("198.18.2.2:41641");
        let relay = address("198.18.0.3:40000");
        let mut paths = in_use(&["198.18.2.2:41641"]);
        paths.set_relays_offered(true);
        let mut tx = ids();
        let mut routes = vec![paths.route(ms(0))];
        // The relay as the peer and the relay server answer: an endpoint
        // for an allocation, a challenge for each bind, a pong for each
        // ping through it. The direct path answers only from 60 s to 120 s.
        let mut now = ms(0);
        while now < ms(180_000) {
            paths.note_traffic(now);
            let mut actions = paths.tick(now, &mut tx);
            while let Some(action) = actions.pop() {
                match action {
                    Action::Ping { to, tx: id } if (ms(60_000)..ms(120_000)).contains(&now) => {
                        paths.on_pong(id, to, now + ms(1));
                    }
                    Action::PeerRelay(RelayAction::Allocate { generation }) => {
                        let endpoint = RelayEndpoint {
                            server: [9; 32],
                            clients: [[1; 32], [2; 32]],
                            lamport: 1,
                            vni: 7,
                            bind_lifetime: Duration::from_secs(30),
                            steady_lifetime: Duration::from_secs(300),
                            addresses: vec![relay],
                        };
                        actions.extend(
                            paths
                                .relays()
                                .on_allocated(generation, endpoint, now)
                                .into_iter()
                                .map(Action::PeerRelay),
                        );
                    }
                    Action::PeerRelay(RelayAction::Bind {
                        server,
                        to,
                        vni,
                        generation,
                    }) => {
                        let bind = Bind {
                            vni,
                            generation,
                            remote: [2; 32],
                            challenge: [3; 32],
                        };
                        actions.extend(
                            paths
                                .relays()
                                .on_challenge(server, to, bind, now, &mut tx)
                                .into_iter()
                                .map(Action::PeerRelay),
                        );
                    }
                    Action::PeerRelay(RelayAction::Ping { to, vni, tx: id }) => {
                        paths.on_relay_pong(id, to, vni, now + ms(2));
                    }
                    _ => {}
                }
            }
            let route = paths.route(now + ms(2));
            if routes.last() != Some(&route) {
                routes.push(route);
            }
            now += ms(100);
        }
        let through_relay = Route::PeerRelay {
            address: relay,
            vni: 7,
        };
        assert_eq!(
            routes,
            [
                Route::Relay,
                through_relay,
                Route::Direct(direct),
                Route::Relay,
                through_relay
            ],
            "DERP only until the relay answered, and for the moment between the direct path's cut and the relay's next pong"
        );
    }

    /// A peer in use with a direct path to `direct` confirmed at 0 ms.
    fn direct_to(direct: SocketAddr) -> (Paths, impl FnMut() -> TxId) {
        let mut paths = in_use(&[&direct.to_string()]);
        let mut tx = ids();
        let sent = pings(&paths.tick(ms(0), &mut tx));
        assert!(paths.on_pong(sent[0].1, direct, ms(1)));
        (paths, tx)
    }

    /// Runs `paths` from `from` to `until` by 100 ms ticks: traffic sent
    /// every tick, pongs answered, WireGuard heard back when `answers` says.
    fn run(
        paths: &mut Paths,
        tx: &mut impl FnMut() -> TxId,
        (from, until): (u64, u64),
        counts: &mut WireguardCounts,
        answers: impl Fn(u64) -> bool,
    ) {
        let mut now = from;
        while now < until {
            now += 100;
            paths.note_traffic(ms(now));
            counts.sent += 1;
            if answers(now) {
                counts.heard += 1;
            }
            paths.note_wireguard(*counts, ms(now));
            for (to, id) in pings(&paths.tick(ms(now), &mut *tx)) {
                paths.on_pong(id, to, ms(now + 1));
            }
        }
    }

    #[test]
    fn a_path_whose_pongs_come_but_no_wireguard_is_left_and_passed_over() {
        let mallory = address("198.18.0.66:41641");
        let (mut paths, mut tx) = direct_to(mallory);
        let mut counts = WireguardCounts::default();
        // Disco answers every ping (the middlebox relays it); WireGuard
        // sent on the path never comes back.
        run(&mut paths, &mut tx, (0, 11_900), &mut counts, |_| false);
        assert_eq!(
            paths.route(ms(11_900)),
            Route::Direct(mallory),
            "silence is allowed briefly"
        );
        run(&mut paths, &mut tx, (11_900, 12_500), &mut counts, |_| {
            false
        });
        assert_eq!(
            paths.route(ms(12_500)),
            Route::Relay,
            "no WireGuard back for 12 s"
        );
        // Its pongs keep coming, but it is passed over for a minute...
        run(&mut paths, &mut tx, (12_500, 60_000), &mut counts, |_| {
            false
        });
        assert_eq!(paths.route(ms(60_000)), Route::Relay);
        // ...then tried again, and passed over twice as long.
        run(&mut paths, &mut tx, (60_000, 90_000), &mut counts, |_| {
            false
        });
        let relayed = paths
            .distrusted
            .iter()
            .find(|entry| entry.address == mallory)
            .unwrap();
        assert_eq!(relayed.strikes, 2);
        assert!(relayed.until >= ms(72_600) + 2 * DISTRUST_FOR - ms(1_000));
    }

    /// Issue 41's soak: a stream's last packet (a final TCP acknowledgement)
    /// went out in the same tick as the peer's last, and nothing came back
    /// after it, nor had to; 12 s later both ends called the path silent
    /// while its pongs kept coming, passed it over for a minute, and the
    /// next burst went through the relay at a twentieth of the speed.
    #[test]
    fn the_last_packet_of_an_exchange_going_unanswered_is_not_silence() {
        let direct = address("198.18.0.5:41641");
        let (mut paths, mut tx) = direct_to(direct);
        let mut counts = WireguardCounts::default();
        run(&mut paths, &mut tx, (0, 5_000), &mut counts, |_| true);
        counts.sent += 1;
        paths.note_wireguard(counts, ms(5_100));
        let mut now = 5_100;
        while now < 40_000 {
            now += 100;
            paths.note_wireguard(counts, ms(now));
            for (to, id) in pings(&paths.tick(ms(now), &mut tx)) {
                paths.on_pong(id, to, ms(now + 1));
            }
            assert_eq!(paths.route(ms(now)), Route::Direct(direct), "at {now} ms");
        }
        assert!(paths.distrusted.is_empty());
        run(&mut paths, &mut tx, (40_000, 45_000), &mut counts, |_| true);
        assert_eq!(paths.route(ms(45_000)), Route::Direct(direct));
    }

    #[test]
    fn a_path_that_carries_wireguard_both_ways_stays_even_with_one_way_traffic() {
        let direct = address("198.18.0.5:41641");
        let (mut paths, mut tx) = direct_to(direct);
        let mut counts = WireguardCounts::default();
        // Data flows one way; the peer's passive keepalive answers every 10 s.
        run(&mut paths, &mut tx, (0, 120_000), &mut counts, |now| {
            now % 10_000 == 0
        });
        assert_eq!(paths.route(ms(120_000)), Route::Direct(direct));
        assert!(paths.distrusted.is_empty());
    }

    #[test]
    fn a_path_the_peer_answers_around_is_left_sooner() {
        let mallory = address("198.18.0.66:41641");
        let (mut paths, mut tx) = direct_to(mallory);
        let mut counts = WireguardCounts::default();
        // Our data goes to the path; the peer's comes through the relay.
        let mut now = 0;
        while paths.route(ms(now)) == Route::Direct(mallory) && now < 12_000 {
            now += 100;
            paths.note_traffic(ms(now));
            counts.sent += 1;
            counts.relayed += 1;
            paths.note_wireguard(counts, ms(now));
            for (to, id) in pings(&paths.tick(ms(now), &mut tx)) {
                paths.on_pong(id, to, ms(now + 1));
            }
        }
        assert!(
            now <= ANSWERED_ELSEWHERE.as_millis() as u64 + 200,
            "left after {now} ms"
        );
    }

    #[test]
    fn a_peer_that_goes_away_is_not_held_against_its_path() {
        let direct = address("198.18.0.5:41641");
        let (mut paths, mut tx) = direct_to(direct);
        let mut counts = WireguardCounts::default();
        run(&mut paths, &mut tx, (0, 5_000), &mut counts, |_| true);
        // The peer stops answering anything: no pongs, no WireGuard.
        let mut now = 5_000;
        while now < 20_000 {
            now += 100;
            paths.note_traffic(ms(now));
            counts.sent += 1;
            paths.note_wireguard(counts, ms(now));
            paths.tick(ms(now), &mut tx);
        }
        assert_eq!(paths.route(ms(now)), Route::Relay);
        assert!(paths.distrusted.is_empty());
        // It comes back: direct again at the next discovery.
        run(&mut paths, &mut tx, (20_000, 23_000), &mut counts, |_| true);
        assert_eq!(paths.route(ms(23_000)), Route::Direct(direct));
    }

    #[test]
    fn a_cut_path_whose_peer_moves_to_the_relay_is_not_held_against_it() {
        // Both ends lose the direct path at once; the peer's own pongs stop
        // too, so it sends through the relay once its trust runs out, while
        // our last pong (just before the cut) is still within TRUST. That is
        // a cut, not a middlebox passing disco and dropping WireGuard: the
        // path must come back as soon as it heals.
        let direct = address("198.18.0.5:41641");
        let phases = (0..1_000).step_by(50);
        let switches = [500, 1_500, 2_500];
        for (last_pong_before_cut, peer_switches) in
            phases.flat_map(|phase| switches.map(|switch| (phase, switch)))
        {
            let (mut paths, mut tx) = direct_to(direct);
            let mut counts = WireguardCounts::default();
            let cut = 6_000 - last_pong_before_cut;
            let mut now = 0;
            while now < 20_000 {
                now += 50;
                paths.note_traffic(ms(now));
                counts.sent += 1;
                let is_cut = now >= cut && now < 10_000;
                if !is_cut {
                    counts.heard += 1;
                } else if now >= cut + peer_switches {
                    // The peer's WireGuard comes through the relay now.
                    counts.relayed += 1;
                }
                paths.note_wireguard(counts, ms(now));
                for (to, id) in pings(&paths.tick(ms(now), &mut tx)) {
                    if !is_cut {
                        paths.on_pong(id, to, ms(now + 1));
                    }
                }
                if now >= 10_000 && paths.route(ms(now)) == Route::Direct(direct) {
                    break;
                }
            }
            assert!(
                paths.distrusted.is_empty(),
                "cut {last_pong_before_cut} ms into a heartbeat, peer on the relay {peer_switches} ms later: the cut path was distrusted"
            );
            assert!(
                now - 10_000 <= DISCOVERY_EVERY.as_millis() as u64 + 100,
                "cut {last_pong_before_cut} ms into a heartbeat: direct again only after {} ms",
                now - 10_000
            );
        }
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
