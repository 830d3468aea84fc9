//! The coordinator: the one owner of its state. `Coordinator`'s fields and
//! its `State` (the registry of nodes, the policy in force) are private
//! to this module and its two children, which hold every use case:
//!
//! - this file: starting, the change path every write goes through, the
//!   policy, following other coordinators on a shared database, relays,
//!   health;
//! - `devices.rs`: what devices ask (registering, agents and Tailscale
//!   clients; maps; endpoint and route reports; key rotation and expiry;
//!   ephemeral nodes; certificate challenges; SSH checks);
//! - `people.rs`: what people and admins do (users and pre-auth keys,
//!   approving, renaming, tagging and deleting nodes, routes, registering
//!   waiting clients, signing in, deciding SSH checks).
//!
//! Each use case is a pure decision in its own module ([`crate::accounts`],
//! [`crate::registration`], [`crate::admission`], [`crate::endpoints`],
//! [`crate::routes`], [`crate::keys`], [`crate::presence`],
//! [`crate::tailscale`], [`crate::logins`], [`crate::sign_in`],
//! [`crate::ssh_checks`], [`crate::policy`]), which imports nothing from
//! here, and a short shell here.
//!
//! The change path: in a writer's turn (`Coordinator::turn`) a change is
//! decided on the state into a typed [`Change`] (a node registered,
//! decided, revived by a key, reported in full, removed), which
//! [`Coordinator::commit`] writes in one transaction (with the pre-auth
//! key use it consumes, announced to other coordinators after the commit:
//! [`Db::commit`]) and then applies to the `Registry`, whose deltas are
//! delivered, so streams see changes in the order they were committed. The
//! state itself is held only for moments, never across IO, so readers never
//! wait for the database.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hearth_acl::{Policy, ProviderGroups, Topology};
use hearth_control::wire::{NodeId, RelayRegion};
use hearth_runtime::clock::unix_seconds as unix_now;

use crate::admission::NodeView;
use crate::db::Announcement;
use crate::db::Db;
use crate::db::nodes::{delete_node, insert_node, lock_registrations, update_node};
use crate::db::preauth_keys::consume_preauth_key;
use crate::error::{Error, Result};
use crate::health::Health;
use crate::netmap::{Delivery, NodeRecord, Whereabouts};
use crate::policy::{deny_all, effective_rules, provider_groups, stored_policy, validate};
use crate::presence::Presence;
use crate::registry::Registry;
use crate::relays::{CreatedRelay, check_code, check_url, regions, secret_hash};
use crate::settings::Settings;
use crate::streams::Streams;
use crate::tls::NodeAuthority;

mod devices;
mod people;
mod services;

pub use services::{MoveBody, ServiceView};

/// A change to the network, decided by a use case and ready to go
/// through [`Coordinator::commit`], the one path every change to a node
/// takes: stored in one transaction with the pre-auth key use it consumes
/// and its announcement, then applied to the registry and delivered.
/// (Where a node is, reported often, takes a path of its own that waits
/// for no writer: [`Coordinator::apply_reported`].)
pub(super) enum Change {
    /// A new node, consuming one use of pre-auth key `key` when it came
    /// with one.
    Registered {
        /// The node.
        record: NodeRecord,
        /// The pre-auth key's id.
        key: Option<i64>,
        /// When (Unix seconds).
        now: i64,
    },
    /// An existing node as a decision left it.
    Decided(NodeRecord),
    /// An expired node brought back by pre-auth key `key`.
    Revived {
        /// The node.
        record: NodeRecord,
        /// The pre-auth key's id.
        key: i64,
        /// When (Unix seconds).
        now: i64,
    },
    /// What a Tailscale client reported of itself, where it is included.
    Reported(NodeRecord),
    /// Node `id` deleted at `now`.
    Removed {
        /// The node.
        id: NodeId,
        /// When (Unix seconds).
        now: i64,
    },
}

impl Change {
    /// The node it changes.
    fn node(&self) -> NodeId {
        match self {
            Change::Registered { record, .. }
            | Change::Decided(record)
            | Change::Revived { record, .. }
            | Change::Reported(record) => record.id,
            Change::Removed { id, .. } => *id,
        }
    }

    /// The pre-auth key use it consumes, and when.
    fn key_use(&self) -> Option<(i64, i64)> {
        match self {
            Change::Registered {
                key: Some(key),
                now,
                ..
            }
            | Change::Revived { key, now, .. } => Some((*key, *now)),
            _ => None,
        }
    }
}

/// What storing a change found.
enum Stored {
    /// Stored and announced.
    Done,
    /// The pre-auth key's use was gone: nothing stored.
    KeyUsed,
    /// The node was gone: nothing stored.
    NodeGone,
}

/// What the use cases share: the nodes and the policy.
struct State {
    /// Every node and the indexes into them.
    registry: Registry,
    /// The stored policy's text (`None`: no policy, everything allowed).
    policy_text: Option<String>,
    /// The stored policy (`None`: no policy, everything allowed).
    policy: Option<Policy>,
    /// The identity provider's groups the policy was compiled with.
    provider_groups: hearth_acl::ProviderGroups,
    /// Tailscale Services, as stored.
    services: Vec<crate::services::Service>,
}

impl State {
    /// Puts `next` in force: what changes for each node is returned for
    /// delivery. It was parsed and compiled before the state was taken
    /// ([`NextPolicy`]), so the state is held only to swap it in.
    fn put_policy(&mut self, next: NextPolicy) -> Vec<Delivery> {
        let deliveries = self.registry.set_policy(next.compiled);
        self.policy_text = next.text;
        self.policy = next.policy;
        self.provider_groups = next.groups;
        deliveries
    }
}

/// A policy about to be put in force, parsed and compiled: the stored
/// `text` (`None`: no policy, everything allowed), what it parsed to with
/// the identity provider's `groups`, and the rules compiled from it.
struct NextPolicy {
    text: Option<String>,
    policy: Option<Policy>,
    compiled: Arc<hearth_acl::CompiledPolicy>,
    groups: ProviderGroups,
}

impl NextPolicy {
    /// `policy`, parsed from `text` with `groups`, compiled.
    fn new(text: Option<String>, policy: Option<Policy>, groups: ProviderGroups) -> NextPolicy {
        NextPolicy {
            compiled: Arc::new(effective_rules(policy.as_ref())),
            text,
            policy,
            groups,
        }
    }

    /// The stored policy `text` with `groups`, as [`policy_in_force`]
    /// reads it: when another coordinator stored it, when the groups
    /// changed, at start-up.
    fn stored(text: Option<String>, groups: ProviderGroups) -> NextPolicy {
        let policy = policy_in_force(text.as_deref(), &groups);
        NextPolicy::new(text, policy, groups)
    }
}

/// The policy in force for the stored policy `text` (`None`: no policy,
/// everything allowed) with the identity provider's `groups`: at start-up,
/// when another coordinator stored it, when the groups changed. The one
/// place a stored policy that no longer parses (stored by a newer
/// coordinator, or before a downgrade) is handled: it is in force as the
/// empty policy, which denies everything, until `policy set` stores one
/// that parses. Failing closed, loudly.
fn policy_in_force(text: Option<&str>, groups: &ProviderGroups) -> Option<Policy> {
    match text.map(|text| stored_policy(text, groups)) {
        None => None,
        Some(Ok(policy)) => Some(policy),
        Some(Err(error)) => {
            tracing::error!(%error, "the stored policy is invalid; denying all traffic until `policy set` stores a valid one");
            Some(deny_all())
        }
    }
}

/// A writer's turn ([`Coordinator::turn`]): functions that change the
/// state take one, so only one change is decided, stored and applied at a
/// time.
type Turn<'a> = tokio::sync::MutexGuard<'a, ()>;

/// The running coordinator.
pub struct Coordinator {
    db: Db,
    authority: NodeAuthority,
    settings: Settings,
    streams: Arc<Streams>,
    /// Writers take turns here; a turn is held across the database IO of
    /// one change, so streams see changes in the order they were committed.
    turn: tokio::sync::Mutex<()>,
    /// The state, held only for moments and never across IO: readers (a
    /// request naming its node, a map stream opening) never wait for the
    /// database.
    state: std::sync::Mutex<State>,
    /// Endpoint and route reports per node: a burst, then a steady trickle.
    reports: governor::DefaultKeyedRateLimiter<NodeId>,
    /// Map streams opened per node: a burst, then one every two seconds
    /// (each costs a full map).
    map_opens: governor::DefaultKeyedRateLimiter<NodeId>,
    /// Key rotations per node ([`crate::keys::Rotations`]).
    rotations: std::sync::Mutex<crate::keys::Rotations>,
    /// Tailscale clients without a key, waiting for `nodes register`.
    logins: std::sync::Mutex<crate::logins::Logins>,
    /// Sign-ins at the identity provider under way, by their state.
    sign_ins: std::sync::Mutex<crate::sign_in::Pending<Arc<crate::oidc::ProviderClient>>>,
    /// Tailscale SSH sessions waiting for `ssh approve`, and approvals.
    ssh_checks: std::sync::Mutex<crate::ssh_checks::SshChecks>,
    /// Woken when an admin decides a check.
    ssh_checks_decided: tokio::sync::Notify,
    /// Wakes follow-up requests when an admin registered a waiting client.
    login_registered: tokio::sync::Notify,
    /// Wakes the key-expiry task when a node changed (its deadline may
    /// have moved).
    nodes_changed: tokio::sync::Notify,
    /// What Tailscale nodes waiting for approval last reported (held, not
    /// stored, until an admin approves them).
    held_reports: std::sync::Mutex<HashMap<NodeId, hearth_control::tailcfg::MapRequest>>,
    /// Nodes whose whereabouts were reported since they were last stored:
    /// a report is applied and delivered at once, and stored by the report
    /// writer ([`Coordinator::run_report_writer`]) with every other report
    /// that came meanwhile, so it never waits behind another change's
    /// write.
    unstored: std::sync::Mutex<std::collections::BTreeSet<NodeId>>,
    /// Wakes the report writer.
    reported: tokio::sync::Notify,
    /// Nodes whose clients are to be asked which services they serve
    /// (their map streams ask).
    service_asks: tokio::sync::broadcast::Sender<NodeId>,
}

/// Endpoint and route reports one node may send at once, then one per second.
const REPORT_BURST: u32 = 10;
/// Map streams one node may open at once, then one every two seconds.
const MAP_OPEN_BURST: u32 = 10;

impl Coordinator {
    /// Loads users, nodes and policy from `db` and gets ready to serve.
    pub async fn start(
        db: Db,
        authority: NodeAuthority,
        settings: Settings,
    ) -> Result<Arc<Coordinator>> {
        let policy_text = db.load_policy().await?;
        let groups = provider_groups(
            &db.list_users().await?,
            &db.list_provider_identities().await?,
        );
        let next = NextPolicy::stored(policy_text, groups);
        let mut state = State {
            registry: Registry::load(
                next.compiled,
                db.list_nodes().await?,
                db.released_addresses().await?,
                db.max_node_id().await?,
            ),
            policy_text: next.text,
            policy: next.policy,
            provider_groups: next.groups,
            services: services::services_of(&db.list_services().await?),
        };
        let registry = &mut state.registry;
        let standalone = db.list_relays().await?;
        let _ = registry.set_relays(crate::relays::regions(&settings.relay, &standalone));
        registry.set_dns(Some(settings.dns.for_mesh(&settings.base_domain)));
        registry.reserve_names(&settings.own_node_labels());
        let coordinator = Arc::new(Coordinator {
            db,
            authority,
            settings,
            streams: Arc::new(Streams::default()),
            turn: tokio::sync::Mutex::new(()),
            state: std::sync::Mutex::new(state),
            logins: std::sync::Mutex::default(),
            sign_ins: std::sync::Mutex::default(),
            ssh_checks: std::sync::Mutex::default(),
            ssh_checks_decided: tokio::sync::Notify::new(),
            login_registered: tokio::sync::Notify::new(),
            nodes_changed: tokio::sync::Notify::new(),
            held_reports: std::sync::Mutex::default(),
            unstored: std::sync::Mutex::default(),
            reported: tokio::sync::Notify::new(),
            map_opens: governor::RateLimiter::keyed(
                governor::Quota::with_period(Duration::from_secs(2))
                    .expect("a non-zero period")
                    .allow_burst(std::num::NonZeroU32::new(MAP_OPEN_BURST).expect("non-zero")),
            ),
            rotations: std::sync::Mutex::default(),
            reports: governor::RateLimiter::keyed(
                governor::Quota::per_second(std::num::NonZeroU32::MIN)
                    .allow_burst(std::num::NonZeroU32::new(REPORT_BURST).expect("non-zero")),
            ),
            service_asks: tokio::sync::broadcast::channel(64).0,
        });
        {
            let turn = coordinator.turn().await;
            coordinator.create_policy_services(&turn).await?;
        }
        Ok(coordinator)
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The relay regions nodes may use now, the embedded one first.
    pub async fn relays(&self) -> Vec<hearth_control::wire::RelayRegion> {
        self.state().registry.network().relays().to_vec()
    }

    /// The database (for integrity checks and shutdown).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Presence changes from now on: each node coming online or going
    /// offline.
    pub fn presence_changes(&self) -> tokio::sync::broadcast::Receiver<(NodeId, bool)> {
        self.streams.presence_changes()
    }

    /// The nodes online now (streaming their map).
    pub fn online_nodes(&self) -> std::collections::BTreeSet<NodeId> {
        self.streams.online_nodes()
    }

    /// Ends every stream; used at shutdown.
    pub fn close_streams(&self) {
        self.streams.close_all();
    }

    /// The state, for a moment: never hold it across an `.await`.
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        hearth_runtime::lock(&self.state)
    }

    /// Waits for a writer's turn: whoever changes the state decides,
    /// stores and applies the change within one turn.
    async fn turn(&self) -> Turn<'_> {
        self.turn.lock().await
    }

    /// Sends what a change to the network means to each node; every
    /// change to a node goes through here, so the key-expiry task is woken
    /// to look at the next deadline again. Called with the state held, so
    /// a stream opening meanwhile gets the map before the change and then
    /// the change, or the map after it.
    pub(crate) fn deliver(&self, deliveries: &[Delivery]) {
        self.streams.deliver(deliveries);
        self.nodes_changed.notify_one();
    }

    /// Puts `record` (stored already) into the registry and delivers what
    /// changes for its peers.
    pub(crate) fn apply(&self, _turn: &Turn<'_>, record: NodeRecord) {
        let mut state = self.state();
        let deliveries = state.registry.upsert(record);
        self.deliver(&deliveries);
    }

    /// Stores `change` and applies it, in the writer's `turn`: one
    /// transaction holds the node's write, the pre-auth key use it consumes
    /// and its announcement ([`Coordinator::write`]); then the registry
    /// takes it and each peer is told ([`Coordinator::apply_change`]).
    /// [`Error::KeyUsed`] when the key's use was gone (nothing is stored);
    /// `Ok(false)` when the node was gone.
    async fn commit(&self, turn: &Turn<'_>, change: Change) -> Result<bool> {
        let transaction = self.db.begin().await?;
        match self.write(transaction, &change).await? {
            Stored::Done => {}
            Stored::KeyUsed => return Err(Error::KeyUsed),
            Stored::NodeGone => {
                if let Change::Removed { .. } = change {
                    // Gone from the database already (another coordinator
                    // deleted it): it goes from here too.
                    self.apply_change(turn, change);
                }
                return Ok(false);
            }
        }
        self.apply_change(turn, change);
        // A node that came, went or changed may take or leave a service.
        self.place_services(turn);
        Ok(true)
    }

    /// The database's part of `change`, in `transaction`, committed and
    /// announced unless the key's use or the node was gone.
    async fn write(
        &self,
        mut transaction: crate::db::Tx,
        change: &Change,
    ) -> std::result::Result<Stored, crate::db::DbError> {
        if let Some((key, now)) = change.key_use()
            && !consume_preauth_key(&mut transaction, key, now).await?
        {
            return Ok(Stored::KeyUsed);
        }
        let written = match change {
            Change::Registered { record, key, .. } => {
                insert_node(&mut transaction, record, *key).await?;
                true
            }
            Change::Decided(record) | Change::Revived { record, .. } | Change::Reported(record) => {
                update_node(&mut transaction, record).await?
            }
            Change::Removed { id, now } => delete_node(&mut transaction, *id, *now).await?,
        };
        if !written {
            return Ok(Stored::NodeGone);
        }
        self.db
            .commit(transaction, &Announcement::Node { id: change.node() })
            .await?;
        Ok(Stored::Done)
    }

    /// The in-memory part of a stored `change`: the registry, and what
    /// each peer is told. Where a node is comes only from what it
    /// reports, and reports take no writer's turn: a decided change keeps
    /// the registry's whereabouts, newer than the ones it was decided on,
    /// and they are stored again after what the change wrote.
    fn apply_change(&self, turn: &Turn<'_>, change: Change) {
        match change {
            Change::Registered { record, .. } | Change::Reported(record) => {
                self.apply(turn, record);
            }
            Change::Decided(mut record) | Change::Revived { mut record, .. } => {
                let mut state = self.state();
                if let Some(current) = state.registry.node(record.id).map(NodeRecord::whereabouts)
                    && current != record.whereabouts()
                {
                    record.set_whereabouts(current);
                    self.mark_unstored(record.id);
                }
                let deliveries = state.registry.upsert(record);
                self.deliver(&deliveries);
            }
            Change::Removed { id, now } => self.apply_removal(turn, id, now),
        }
    }

    /// Stores the new node `build` makes from the state (its id, name and
    /// addresses), consuming one use of pre-auth key `key`, when it came
    /// with one, in the same transaction; indexes it and delivers it to its
    /// peers. On failure its address goes back unused.
    ///
    /// On a shared database another coordinator may have just taken the
    /// same id, name or address: the database refuses the insert, the state
    /// is read again and `build` runs again on it.
    async fn store_new_node(
        &self,
        turn: &Turn<'_>,
        key: Option<i64>,
        now: i64,
        mut build: impl FnMut(&mut Registry) -> Result<NodeRecord>,
    ) -> Result<NodeRecord> {
        const ATTEMPTS: usize = 8;
        let mut attempt = 0;
        loop {
            attempt += 1;
            // On a shared database, registrations take turns, and one that
            // finds the database ahead of what it has heard reads it first.
            let mut transaction = self.db.begin().await?;
            if self.db.is_shared() {
                lock_registrations(&mut transaction).await?;
                let next = self.state().registry.next_id();
                if self.db.max_node_id().await? >= next {
                    self.resync_state(turn).await?;
                }
            }
            let record = build(&mut self.state().registry)?;
            let address = record.ipv4;
            let change = Change::Registered {
                record: record.clone(),
                key,
                now,
            };
            match self.write(transaction, &change).await {
                Ok(Stored::Done) => {
                    self.apply_change(turn, change);
                    return Ok(record);
                }
                // (An insert always writes its node: `NodeGone` is an update's.)
                Ok(Stored::KeyUsed | Stored::NodeGone) => {
                    self.state().registry.unallocate(address);
                    return Err(Error::KeyUsed);
                }
                Err(crate::db::DbError::Conflict(what))
                    if self.db.is_shared() && attempt < ATTEMPTS =>
                {
                    tracing::debug!(%what, "another coordinator registered a node at the same moment; reading the database again");
                    self.state().registry.unallocate(address);
                    self.resync_state(turn).await?;
                }
                Err(error) => {
                    self.state().registry.unallocate(address);
                    return Err(error.into());
                }
            }
        }
    }

    /// Applies `record`, which differs from the registry's only in where
    /// the node is to be reached (an endpoint report), and delivers it at
    /// once, without a writer's turn or the database: the report writer
    /// stores it.
    fn apply_reported(&self, state: &mut State, record: NodeRecord) {
        let id = record.id;
        let deliveries = state.registry.upsert(record);
        self.deliver(&deliveries);
        self.mark_unstored(id);
    }

    /// Notes that node `id`'s whereabouts are to be stored, and wakes the
    /// report writer.
    fn mark_unstored(&self, id: NodeId) {
        hearth_runtime::lock(&self.unstored).insert(id);
        self.reported.notify_one();
    }

    /// Stores the whereabouts of every node reported since the last time,
    /// in one transaction; on failure they are tried again with the next.
    async fn store_reported(&self) -> Result<()> {
        let ids = std::mem::take(&mut *hearth_runtime::lock(&self.unstored));
        let batch: Vec<(NodeId, Whereabouts)> = {
            let state = self.state();
            ids.iter()
                .filter_map(|id| Some((*id, state.registry.node(*id)?.whereabouts())))
                .collect()
        };
        if let Err(error) = self.db.store_whereabouts(&batch).await {
            hearth_runtime::lock(&self.unstored).extend(ids);
            return Err(error.into());
        }
        Ok(())
    }

    /// Stores reported whereabouts as they come, a batch at a time, until
    /// `stop`; then stores what is left.
    pub(crate) async fn run_report_writer(
        self: Arc<Self>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            let stopping = tokio::select! {
                _ = stop.wait_for(|stopped| *stopped) => true,
                () = self.reported.notified() => false,
            };
            if let Err(error) = self.store_reported().await {
                tracing::warn!(%error, "could not store reported endpoints; trying again");
                if !stopping {
                    tokio::select! {
                        _ = stop.wait_for(|stopped| *stopped) => {}
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    self.reported.notify_one();
                    continue;
                }
            }
            if stopping {
                return;
            }
        }
    }

    /// Applies `change` to node `id`, stores it and delivers the consequences.
    async fn change_node(
        &self,
        id: NodeId,
        change: impl FnOnce(&State, &mut NodeRecord) -> Result<()>,
    ) -> Result<NodeView> {
        let turn = self.turn().await;
        let (before, record) = {
            let state = self.state();
            let before = state
                .registry
                .node(id)
                .cloned()
                .ok_or_else(|| Error::NotFound(format!("node {id}")))?;
            let mut record = before.clone();
            change(&state, &mut record)?;
            (before, record)
        };
        if record == before {
            return Ok(self.view(&record));
        }
        if !self.commit(&turn, Change::Decided(record.clone())).await? {
            return Err(Error::NotFound(format!("node {id}")));
        }
        if record.state != before.state {
            self.streams.notify_state(id, record.state);
            tracing::info!(node = id, from = %before.state, to = %record.state, "node state changed");
        }
        Ok(self.view(&record))
    }
}

impl Coordinator {
    /// Applies `record`, as the database now has it, to the in-memory state
    /// (a node another coordinator added or changed).
    fn apply_record(&self, turn: &Turn<'_>, mut record: NodeRecord) {
        if hearth_runtime::lock(&self.unstored).contains(&record.id)
            && let Some(known) = self.state().registry.node(record.id)
        {
            // Reported here and not stored yet: newer than the database's.
            record.set_whereabouts(known.whereabouts());
        }
        if self.state().registry.node(record.id) == Some(&record) {
            return;
        }
        let admitted = record.is_admitted();
        let id = record.id;
        self.apply(turn, record);
        if !admitted {
            self.streams.close_node(id);
        }
    }

    /// Forgets node `id` (deleted here, or by another coordinator): it
    /// leaves every map, its streams end, its address, name, key and
    /// credential are free.
    fn apply_removal(&self, _turn: &Turn<'_>, id: u64, now: i64) {
        {
            let mut state = self.state();
            let Some((_, deliveries)) = state.registry.remove(id, now) else {
                return;
            };
            self.deliver(&deliveries);
        }
        self.streams.close_node(id);
        hearth_runtime::lock(&self.held_reports).remove(&id);
        hearth_runtime::lock(&self.rotations).forget(id);
    }

    /// Reads node `id` back from the database and applies it.
    pub(crate) async fn follow_node(&self, id: u64) -> Result<()> {
        let turn = self.turn().await;
        match self.db.get_node(id).await? {
            Some(record) => self.apply_record(&turn, record),
            None => self.apply_removal(&turn, id, hearth_runtime::clock::unix_seconds()),
        }
        Ok(())
    }

    /// Reads every node back from the database and applies what differs
    /// (after a lost announcement, or a registration that clashed).
    async fn resync_state(&self, turn: &Turn<'_>) -> Result<()> {
        let records = self.db.list_nodes().await?;
        let stored: std::collections::BTreeSet<u64> =
            records.iter().map(|record| record.id).collect();
        let gone: Vec<u64> = self
            .state()
            .registry
            .network()
            .nodes()
            .map(|record| record.id)
            .filter(|id| !stored.contains(id))
            .collect();
        let now = hearth_runtime::clock::unix_seconds();
        for id in gone {
            self.apply_removal(turn, id, now);
        }
        for record in records {
            self.apply_record(turn, record);
        }
        Ok(())
    }

    /// Reads the users back from the database (another coordinator on it
    /// renamed or deleted one, or a sign-in changed someone's provider
    /// groups): their nodes' identities and the policy's groups follow.
    pub(crate) async fn follow_users(&self) -> Result<()> {
        let turn = self.turn().await;
        self.resync_state(&turn).await?;
        self.refresh_provider_groups(&turn).await
    }

    /// Tells the other coordinators on the database that users changed.
    pub(super) async fn announce_users(&self) {
        self.db.announce(&crate::db::Announcement::Users).await;
    }

    /// `Coordinator::resync_state` in a writer's turn, then the policy
    /// and relays read again.
    pub async fn resync(&self) -> Result<()> {
        {
            let turn = self.turn().await;
            self.resync_state(&turn).await?;
        }
        self.follow_policy().await?;
        self.refresh_relays().await
    }
}

impl Coordinator {
    /// The stored policy text (`None`: no policy, everything allowed).
    pub async fn policy_text(&self) -> Option<String> {
        self.state().policy_text.clone()
    }

    /// The users and admitted nodes a policy's `tests` are checked
    /// against, and the groups the identity provider fills.
    async fn topology(&self) -> Result<(Topology, ProviderGroups)> {
        let users = self.db.list_users().await?;
        let groups = provider_groups(&users, &self.db.list_provider_identities().await?);
        let users = users.into_iter().map(|user| user.name).collect();
        let nodes = self
            .state()
            .registry
            .network()
            .nodes()
            .filter(|record| record.is_admitted())
            .map(NodeRecord::identity)
            .collect();
        Ok((Topology { users, nodes }, groups))
    }

    /// Validates `text`, including its `tests` against the current tailnet, without storing it.
    pub async fn check_policy(&self, text: &str) -> Result<()> {
        let (topology, groups) = self.topology().await?;
        validate(text, &topology, &groups).map_err(Error::PolicyInvalid)?;
        Ok(())
    }

    /// Validates and stores `text`, then delivers each node's changes. A
    /// refused policy changes nothing.
    pub async fn set_policy(&self, text: &str) -> Result<()> {
        let turn = self.turn().await;
        let (topology, groups) = self.topology().await?;
        let policy = validate(text, &topology, &groups).map_err(Error::PolicyInvalid)?;
        self.db.store_policy(text, unix_now()).await?;
        let changed_nodes =
            self.put_policy(NextPolicy::new(Some(text.to_owned()), Some(policy), groups));
        tracing::info!(changed_nodes, "policy updated");
        self.create_policy_services(&turn).await?;
        self.apply_auto_approvals(&turn).await?;
        Ok(())
    }

    /// Puts `next` in force and delivers what changes for each node, the
    /// state held only for that; how many nodes it changed for.
    fn put_policy(&self, next: NextPolicy) -> usize {
        let mut state = self.state();
        let deliveries = state.put_policy(next);
        self.deliver(&deliveries);
        deliveries.len()
    }

    /// The stored policy compiled again with the identity provider's groups
    /// as they are now (a user signed in with other groups, or was renamed):
    /// each node's changes are delivered. `tests` are not run again: a
    /// sign-in is not refused because the policy's tests name old members.
    async fn refresh_provider_groups(&self, turn: &Turn<'_>) -> Result<()> {
        let users = self.db.list_users().await?;
        let groups = provider_groups(&users, &self.db.list_provider_identities().await?);
        let text = {
            let state = self.state();
            if state.provider_groups == groups {
                return Ok(());
            }
            state.policy_text.clone()
        };
        // Only a writer changes the policy, and this is one: the state may
        // be let go while the policy is compiled.
        let changed_nodes = self.put_policy(NextPolicy::stored(text, groups));
        tracing::info!(
            changed_nodes,
            "policy groups updated from the identity provider"
        );
        self.place_services(turn);
        Ok(())
    }

    /// Reads the stored policy again (another coordinator on the same
    /// database set it) and delivers what changes; a policy that stopped
    /// parsing denies everything, as at start-up.
    pub(crate) async fn follow_policy(&self) -> Result<()> {
        let turn = self.turn().await;
        let text = self.db.load_policy().await?;
        let groups = {
            let state = self.state();
            (text != state.policy_text).then(|| state.provider_groups.clone())
        };
        if let Some(groups) = groups {
            let changed_nodes = self.put_policy(NextPolicy::stored(text, groups));
            tracing::info!(changed_nodes, "policy updated by another coordinator");
        }
        // Services are announced with the policy.
        self.reload_services(&turn).await
    }
}

impl Coordinator {
    /// The health snapshot now; `relay_clients` from the embedded relay.
    /// `thorough` runs the database's integrity check (for a person);
    /// otherwise it only has to answer (for every metrics scrape).
    pub async fn health(&self, relay_clients: usize, thorough: bool) -> Health {
        let check = if thorough {
            self.db.integrity_check().await
        } else {
            self.db.ping().await
        };
        let database_check = match check {
            Ok(result) => result,
            Err(error) => error.to_string(),
        };
        let database = if self.db.is_shared() {
            "postgres"
        } else {
            "sqlite"
        };
        let now = hearth_runtime::clock::unix_seconds();
        let state = self.state();
        let mut health = Health {
            relay_clients,
            standalone_relays: state.registry.network().relays().len().saturating_sub(1),
            policy: state.policy_text.is_some(),
            database: database.into(),
            database_check,
            certificates: self.settings.certificates.clone(),
            ..Health::default()
        };
        for record in state.registry.network().nodes() {
            use hearth_control::wire::NodeState;
            match record.state {
                NodeState::Approved => health.nodes.approved += 1,
                NodeState::Pending => health.nodes.pending += 1,
                NodeState::Rejected => health.nodes.rejected += 1,
                NodeState::Expired => health.nodes.expired += 1,
            }
            if record.state != NodeState::Approved || record.static_device {
                continue;
            }
            health.keys_overdue += usize::from(crate::keys::overdue(record, now));
            let connected = self.streams.presence(record.id) == Presence::Online;
            health.agents += 1;
            health.connected += usize::from(connected);
            if !record.tags.is_empty() {
                health.tagged += 1;
                health.tagged_connected += usize::from(connected);
            }
        }
        health
    }
}

impl Coordinator {
    /// Adds a standalone relay called `code` at `url`; returns it and the
    /// token it starts with.
    pub async fn add_relay(&self, code: &str, url: &str) -> crate::error::Result<CreatedRelay> {
        check_code(code).map_err(|refused| crate::Error::BadRequest(refused.to_string()))?;
        check_url(url).map_err(|refused| crate::Error::BadRequest(refused.to_string()))?;
        let secret = hex::encode(rand::random::<[u8; 32]>());
        let row = self
            .db
            .insert_relay(
                code,
                url.trim_end_matches('/'),
                &secret_hash(&secret),
                hearth_runtime::clock::unix_seconds(),
            )
            .await?;
        tracing::info!(region = row.id, code = %row.code, "standalone relay added");
        let token = hearth_control::JoinToken {
            url: self.settings.public_url.clone(),
            fingerprint: self.settings.fingerprint,
            key: hearth_control::SecretString::new(secret),
        };
        Ok(CreatedRelay {
            relay: row,
            token: token.encode_relay(),
        })
    }

    /// Every standalone relay.
    pub async fn list_relays(&self) -> crate::error::Result<Vec<crate::db::relays::RelayRow>> {
        Ok(self.db.list_relays().await?)
    }

    /// Removes the relay called `code`; nodes hear that it is gone.
    pub async fn remove_relay(&self, code: &str) -> crate::error::Result<()> {
        if !self.db.delete_relay(code).await? {
            return Err(crate::Error::NotFound(format!("relay `{code}`")));
        }
        self.refresh_relays().await
    }

    /// The relay whose secret is `secret`.
    pub async fn relay_for_secret(
        &self,
        secret: &str,
    ) -> crate::error::Result<crate::db::relays::RelayRow> {
        self.db
            .relay_by_secret(&secret_hash(secret))
            .await?
            .ok_or(crate::Error::Unauthenticated)
    }

    /// A standalone relay's hello: its certificate and STUN port are
    /// recorded and every node hears of the region.
    pub async fn relay_hello(
        &self,
        secret: &str,
        hello: &hearth_control::wire::RelayHello,
    ) -> crate::error::Result<RelayRegion> {
        let row = self.relay_for_secret(secret).await?;
        if hearth_control::Fingerprint::from_hex(&hello.fingerprint).is_none() {
            return Err(crate::Error::BadRequest(
                "the fingerprint is not 64 hex digits".into(),
            ));
        }
        self.db
            .set_relay_hello(
                row.id,
                &hello.fingerprint.to_ascii_lowercase(),
                hello.stun_port,
            )
            .await?;
        self.refresh_relays().await?;
        self.relays()
            .await
            .into_iter()
            .find(|region| i64::from(region.id) == row.id)
            .ok_or_else(|| crate::Error::NotFound(format!("relay `{}`", row.code)))
    }

    /// The node keys of every admitted node (what a standalone relay lets in).
    pub async fn admitted_keys(
        &self,
    ) -> std::collections::BTreeSet<hearth_control::wire::WireGuardKey> {
        self.state()
            .registry
            .network()
            .nodes()
            .filter(|record| record.is_admitted())
            .map(|record| record.wireguard_key)
            .collect()
    }

    /// Reloads the standalone relays and tells every node what changed.
    pub(crate) async fn refresh_relays(&self) -> crate::error::Result<()> {
        let _turn = self.turn().await;
        let rows = self.db.list_relays().await?;
        let mut state = self.state();
        let deliveries = state
            .registry
            .set_relays(regions(&self.settings.relay, &rows));
        self.deliver(&deliveries);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use hearth_control::Fingerprint;
    use hearth_control::wire::WireGuardKey;
    use sqlx::Connection;

    use super::*;
    use crate::state_dir::StateDir;

    /// Settings for a coordinator in a test.
    fn test_settings() -> Settings {
        Settings {
            public_url: "https://127.0.0.1:1".into(),
            fingerprint: Fingerprint([7; 32]),
            keepalive: Duration::from_secs(30),
            ephemeral_timeout: Duration::from_secs(60),
            base_domain: "hearth.test".into(),
            relay: crate::relays::embedded("https://127.0.0.1:1", None, "00"),
            certificates: Vec::new(),
            node_key_lifetime: None,
            taildrop: true,
            dns: crate::dns::DnsSettings::default(),
            sign_in: None,
            acme: None,
        }
    }

    #[test]
    fn taildrop_is_a_capability_every_tailscale_client_gets_unless_turned_off() {
        assert_eq!(
            test_settings().node_capabilities(),
            [
                hearth_control::tailcfg::CAP_SSH,
                hearth_control::tailcfg::CAP_FILE_SHARING
            ]
        );
        let off = Settings {
            taildrop: false,
            ..test_settings()
        };
        assert_eq!(off.node_capabilities(), [hearth_control::tailcfg::CAP_SSH]);
    }

    async fn coordinator(dir: &std::path::Path) -> Arc<Coordinator> {
        let state = StateDir::new(dir);
        state.prepare().expect("state dir");
        let db = Db::open_sqlite(&state.database()).await.expect("database");
        let authority = NodeAuthority::load_or_create(&state).expect("node authority");
        let settings = test_settings();
        Coordinator::start(db, authority, settings)
            .await
            .expect("start")
    }

    /// Another connection takes the database's write lock in `dir` (as a
    /// backup, a slow disk or another writer would), then node `id` is
    /// renamed to `name`: returned once the rename holds its writer's turn,
    /// from when it is in, or on its way to, the database, which it cannot
    /// finish until the lock is released (`ROLLBACK` on the connection).
    async fn rename_held_by_the_write_lock(
        coordinator: &Arc<Coordinator>,
        dir: &std::path::Path,
        id: NodeId,
        name: &'static str,
    ) -> (
        sqlx::SqliteConnection,
        tokio::task::JoinHandle<Result<NodeView>>,
    ) {
        let path = StateDir::new(dir).database();
        let mut blocker = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .expect("second connection");
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut blocker)
            .await
            .expect("write lock");
        let writer = tokio::spawn({
            let coordinator = Arc::clone(coordinator);
            async move { coordinator.rename_node(id, name).await }
        });
        while coordinator.turn.try_lock().is_ok() {
            tokio::task::yield_now().await;
        }
        (blocker, writer)
    }

    /// A change waiting on a busy database (a backup, a slow disk, another
    /// writer) holds only the writers' turn: a node that connects meanwhile
    /// is still found and listed. Before the turn, the state lock was held
    /// across the write and every request waited for the database.
    #[tokio::test]
    async fn readers_answer_while_a_change_waits_on_the_database() {
        let dir = tempfile::tempdir().expect("temp dir");
        let coordinator = coordinator(dir.path()).await;
        coordinator.create_user("alice", None).await.expect("user");
        let (phone, _config) = coordinator
            .add_static_device("alice", "phone")
            .await
            .expect("device");
        let key: WireGuardKey = phone.wireguard_key.parse().expect("key");

        // Another connection holds the database's write lock.
        let (mut blocker, writer) =
            rename_held_by_the_write_lock(&coordinator, dir.path(), phone.id, "tablet").await;

        let bound = Duration::from_secs(5);
        let listed = tokio::time::timeout(bound, coordinator.list_nodes())
            .await
            .expect("nodes are listed while a change waits on the database");
        assert_eq!(listed.len(), 1);
        assert!(
            tokio::time::timeout(bound, coordinator.admits_node_key(&key))
                .await
                .expect("a node key is looked up while a change waits"),
        );
        assert!(!writer.is_finished(), "the rename is still waiting");

        sqlx::query("ROLLBACK")
            .execute(&mut blocker)
            .await
            .expect("release");
        let renamed = writer.await.expect("task").expect("the rename lands");
        assert_eq!(renamed.name, "tablet");
        assert_eq!(coordinator.list_nodes().await[0].name, "tablet");
    }

    /// A stored policy that no longer parses (a newer coordinator on the
    /// same database stored it, or the coordinator was downgraded) denies
    /// everything, read at start-up or followed from the database alike,
    /// until `policy set` stores one that parses.
    #[tokio::test]
    async fn a_stored_policy_that_no_longer_parses_denies_everything_wherever_it_is_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        let coordinator = coordinator(dir.path()).await;
        coordinator.create_user("alice", None).await.expect("user");
        let (phone, _) = coordinator
            .add_static_device("alice", "phone")
            .await
            .expect("phone");
        let (laptop, _) = coordinator
            .add_static_device("alice", "laptop")
            .await
            .expect("laptop");
        let peers =
            |coordinator: &Coordinator| coordinator.state().registry.network().peers_of(phone.id);
        assert_eq!(
            peers(&coordinator),
            [laptop.id],
            "no policy: everything allowed"
        );

        coordinator
            .db
            .store_policy(r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}], "newerThanThisCoordinator": 1}"#, 1)
            .await
            .expect("stored by another coordinator");
        coordinator.follow_policy().await.expect("followed");
        assert!(
            peers(&coordinator).is_empty(),
            "followed: everything denied"
        );

        coordinator.db.close().await;
        let restarted = self::coordinator(dir.path()).await;
        assert!(
            peers(&restarted).is_empty(),
            "at start-up: everything denied"
        );
        restarted
            .set_policy(r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}"#)
            .await
            .expect("a policy that parses");
        assert_eq!(
            peers(&restarted),
            [laptop.id],
            "a valid policy is in force again"
        );
    }

    /// An endpoint report is applied and delivered while another change
    /// waits on the database (before, it waited for that change's turn and
    /// write: a busy or slow disk held up every report behind it); the
    /// change landing after it keeps the reported endpoints, and the report
    /// writer stores them.
    #[tokio::test]
    async fn a_report_never_waits_behind_another_changes_write_and_is_not_lost_to_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let coordinator = coordinator(dir.path()).await;
        coordinator.create_user("alice", None).await.expect("user");
        let key = coordinator
            .create_key(&crate::accounts::KeyOptions {
                user: "alice".into(),
                pre_approved: true,
                ..Default::default()
            })
            .await
            .expect("key");
        let token = hearth_control::JoinToken::decode(&key.token).expect("token");
        let (request, _) = hearth_testkit::control_plane::request(&token, "laptop");
        let id = coordinator
            .register(request)
            .await
            .expect("registered")
            .node
            .id;
        let credential = coordinator
            .state()
            .registry
            .node(id)
            .and_then(NodeRecord::credential);
        let reported: std::net::SocketAddr = "198.51.100.7:41641".parse().expect("address");

        let (mut blocker, writer) =
            rename_held_by_the_write_lock(&coordinator, dir.path(), id, "desk").await;

        let report = hearth_control::wire::EndpointReport {
            listen_port: 41641,
            local: vec![reported],
            stun: None,
            disco_key: None,
            home_relay: None,
        };
        tokio::time::timeout(
            Duration::from_secs(5),
            coordinator.report_endpoints(credential, report, None),
        )
        .await
        .expect("the report does not wait for the rename's write")
        .expect("reported");
        let endpoints = |coordinator: &Coordinator| {
            coordinator
                .state()
                .registry
                .node(id)
                .map(|node| node.endpoints.clone())
        };
        assert_eq!(endpoints(&coordinator), Some(vec![reported]));
        assert!(!writer.is_finished(), "the rename is still waiting");

        sqlx::query("ROLLBACK")
            .execute(&mut blocker)
            .await
            .expect("release");
        assert_eq!(writer.await.expect("task").expect("renamed").name, "desk");
        assert_eq!(
            endpoints(&coordinator),
            Some(vec![reported]),
            "the rename decided before the report keeps the report"
        );
        coordinator.store_reported().await.expect("stored");
        let stored = coordinator
            .db
            .get_node(id)
            .await
            .expect("read")
            .expect("node");
        assert_eq!(
            (stored.name.as_str(), stored.endpoints),
            ("desk", vec![reported])
        );
    }
}
