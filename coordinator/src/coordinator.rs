//! The coordinator service: the state every use case shares, and the steps
//! they share (find the node presenting a certificate, store a new node,
//! change one and deliver the consequences). Each mutation writes the
//! database first, then updates the in-memory network and delivers the
//! resulting deltas, all under one lock so that streams see changes in the
//! order they were committed.
//!
//! The use cases live with their concern, each a pure decision and a short
//! shell on [`Coordinator`]: [`crate::accounts`] (users and keys),
//! [`crate::registration`], [`crate::admission`] (admins' decisions, who may
//! stream), [`crate::endpoints`], [`crate::routes`], [`crate::presence`]
//! (ephemeral nodes) and [`crate::policy`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hearth_acl::Policy;
use hearth_control::Fingerprint;
use hearth_control::tailcfg::MachineKey;
use hearth_control::wire::{NodeId, WireGuardKey};
use tokio::sync::Mutex;

use crate::admission::NodeView;
use crate::db::Db;
use crate::db::nodes::{insert_node, lock_registrations};
use crate::db::preauth_keys::consume_preauth_key;
use crate::error::{Error, Result};
use crate::ipam::AddressPool;
use crate::names::NameIndex;
use crate::netmap::{Delivery, Network, NodeRecord};
use crate::policy::effective_rules;
use crate::streams::Streams;
use crate::tls::NodeAuthority;

/// Settings that do not change while the coordinator runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The URL join tokens point at.
    pub public_url: String,
    /// SHA-256 of the HTTPS certificate, which join tokens carry.
    pub fingerprint: Fingerprint,
    /// How often an idle stream gets a keep-alive line.
    pub keepalive: Duration,
    /// How long an ephemeral node may stay disconnected before it is removed.
    pub ephemeral_timeout: Duration,
    /// The MagicDNS domain nodes are named under.
    pub base_domain: String,
    /// The relay embedded in this coordinator.
    pub relay: hearth_control::wire::RelayRegion,
    /// Certificates whose expiry is watched (`health`, `/metrics`): name
    /// and end of validity (Unix seconds).
    pub certificates: Vec<(String, i64)>,
    /// How long node keys live unless their pre-auth key says otherwise
    /// (`None`: they never expire).
    pub node_key_lifetime: Option<Duration>,
}

impl Settings {
    /// [`Settings::node_key_lifetime`] in seconds.
    pub fn key_lifetime(&self) -> Option<u64> {
        self.node_key_lifetime
            .map(|lifetime| lifetime.as_secs().max(1))
    }
}

/// How a node proves who it is on each request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Credential {
    /// A `hearth-agent`: the client certificate issued at registration.
    Certificate(Fingerprint),
    /// An official Tailscale client: the machine key of its ts2021 session.
    Machine(MachineKey),
}

/// What the use cases share, under one lock.
pub(crate) struct State {
    pub(crate) network: Network,
    pub(crate) addresses: AddressPool,
    pub(crate) names: NameIndex,
    pub(crate) next_node_id: NodeId,
    pub(crate) by_credential: HashMap<Credential, NodeId>,
    pub(crate) by_wireguard_key: HashMap<WireGuardKey, NodeId>,
    pub(crate) policy_text: Option<String>,
    /// The stored policy (`None`: no policy, everything allowed).
    pub(crate) policy: Option<Policy>,
}

impl State {
    /// The node presenting `credential`.
    pub(crate) fn node_presenting(&self, credential: Option<Credential>) -> Result<&NodeRecord> {
        let credential = credential.ok_or(Error::Unauthenticated)?;
        self.by_credential
            .get(&credential)
            .and_then(|id| self.network.node(*id))
            .ok_or(Error::UnknownNode)
    }
}

/// The running coordinator.
pub struct Coordinator {
    pub(crate) db: Db,
    pub(crate) authority: NodeAuthority,
    pub(crate) settings: Settings,
    pub(crate) streams: Arc<Streams>,
    pub(crate) state: Mutex<State>,
    /// Endpoint and route reports per node: a burst, then a steady trickle.
    pub(crate) reports: governor::DefaultKeyedRateLimiter<NodeId>,
    /// Map streams opened per node: a burst, then one every two seconds
    /// (each costs a full map).
    pub(crate) map_opens: governor::DefaultKeyedRateLimiter<NodeId>,
    /// Key rotations per node ([`crate::keys::Rotations`]).
    pub(crate) rotations: std::sync::Mutex<crate::keys::Rotations>,
    /// Tailscale clients without a key, waiting for `nodes register`.
    pub(crate) logins: std::sync::Mutex<crate::logins::Logins>,
    /// Wakes follow-up requests when an admin registered a waiting client.
    pub(crate) login_registered: tokio::sync::Notify,
    /// Wakes the key-expiry task when a node changed (its deadline may
    /// have moved).
    pub(crate) nodes_changed: tokio::sync::Notify,
    /// What Tailscale nodes waiting for approval last reported (held, not
    /// stored, until an admin approves them).
    pub(crate) held_reports: std::sync::Mutex<HashMap<NodeId, hearth_control::tailcfg::MapRequest>>,
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
        let policy = match &policy_text {
            Some(text) => match Policy::parse(text) {
                Ok(policy) => Some(policy),
                Err(error) => {
                    // Only possible if a stored policy stops parsing after an
                    // upgrade. Fail closed, loudly, and keep serving so the
                    // admin can set a fixed policy.
                    tracing::error!(%error, "the stored policy is invalid; denying all traffic until `policy set` stores a valid one");
                    Some(Policy::parse(r#"{"acls": []}"#).expect("the empty policy parses"))
                }
            },
            None => None,
        };
        let compiled = effective_rules(policy.as_ref());
        let records = db.list_nodes().await?;
        let mut addresses = AddressPool::new();
        for (address, when) in db.released_addresses().await? {
            addresses.mark_released(address, when);
        }
        let mut names = NameIndex::default();
        let mut by_credential = HashMap::new();
        let mut by_wireguard_key = HashMap::new();
        for record in &records {
            addresses.mark_used(record.ipv4);
            names.insert(&record.name);
            by_wireguard_key.insert(record.wireguard_key, record.id);
            if let Some(credential) = record.credential() {
                by_credential.insert(credential, record.id);
            }
        }
        let next_node_id = db.max_node_id().await? + 1;
        let mut network = Network::with_nodes(Arc::new(compiled), records);
        let standalone = db.list_relays().await?;
        let _ = network.set_relays(crate::relays::regions(&settings.relay, &standalone));
        Ok(Arc::new(Coordinator {
            db,
            authority,
            settings,
            streams: Arc::new(Streams::default()),
            state: Mutex::new(State {
                network,
                addresses,
                names,
                next_node_id,
                by_credential,
                by_wireguard_key,
                policy_text,
                policy,
            }),
            logins: std::sync::Mutex::default(),
            login_registered: tokio::sync::Notify::new(),
            nodes_changed: tokio::sync::Notify::new(),
            held_reports: std::sync::Mutex::default(),
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
        }))
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The relay regions nodes may use now, the embedded one first.
    pub async fn relays(&self) -> Vec<hearth_control::wire::RelayRegion> {
        self.state.lock().await.network.relays().to_vec()
    }

    /// The database (for integrity checks and shutdown).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Ends every stream; used at shutdown.
    pub fn close_streams(&self) {
        self.streams.close_all();
    }

    /// Sends what a change to the network means to each node; every
    /// change to a node goes through here, so the key-expiry task is woken
    /// to look at the next deadline again.
    pub(crate) fn deliver(&self, deliveries: &[Delivery]) {
        self.streams.deliver(deliveries);
        self.nodes_changed.notify_one();
    }

    /// Stores the new node `build` makes from the state (its id, name and
    /// addresses), consuming one use of pre-auth key `key`, when it came
    /// with one, in the same transaction; indexes it and delivers it to its
    /// peers. On failure its address goes back unused.
    ///
    /// On a shared database another coordinator may have just taken the
    /// same id, name or address: the database refuses the insert, the state
    /// is read again and `build` runs again on it.
    pub(crate) async fn store_new_node(
        &self,
        state: &mut State,
        key: Option<i64>,
        now: i64,
        mut build: impl FnMut(&mut State) -> Result<NodeRecord>,
    ) -> Result<NodeRecord> {
        const ATTEMPTS: usize = 8;
        let mut attempt = 0;
        let record = loop {
            attempt += 1;
            // On a shared database, registrations take turns, and one that
            // finds the database ahead of what it has heard reads it first.
            let mut transaction = self.db.begin().await?;
            if self.db.is_shared() {
                lock_registrations(&mut transaction).await?;
                if self.db.max_node_id().await? >= state.next_node_id {
                    self.resync_state(state).await?;
                }
            }
            let record = build(state)?;
            let stored = async {
                if let Some(key) = key
                    && !consume_preauth_key(&mut transaction, key, now).await?
                {
                    return Ok(false);
                }
                insert_node(&mut transaction, &record, key).await?;
                transaction.commit().await?;
                Ok::<bool, crate::db::DbError>(true)
            }
            .await;
            match stored {
                Ok(true) => break record,
                Ok(false) => {
                    state.addresses.unallocate(record.ipv4);
                    return Err(Error::KeyUsed);
                }
                Err(crate::db::DbError::Conflict(what))
                    if self.db.is_shared() && attempt < ATTEMPTS =>
                {
                    tracing::debug!(%what, "another coordinator registered a node at the same moment; reading the database again");
                    state.addresses.unallocate(record.ipv4);
                    self.resync_state(state).await?;
                }
                Err(error) => {
                    state.addresses.unallocate(record.ipv4);
                    return Err(error.into());
                }
            }
        };
        state.next_node_id = state.next_node_id.max(record.id + 1);
        state.names.insert(&record.name);
        state
            .by_wireguard_key
            .insert(record.wireguard_key, record.id);
        if let Some(credential) = record.credential() {
            state.by_credential.insert(credential, record.id);
        }
        let deliveries = state.network.upsert(record.clone());
        self.deliver(&deliveries);
        self.db
            .announce(&crate::db::Announcement::Node { id: record.id })
            .await;
        Ok(record)
    }

    /// Applies `change` to node `id`, stores it and delivers the consequences.
    /// Stores a changed `record` of an existing node and delivers what
    /// changes for its peers; false when the node no longer exists.
    pub(crate) async fn store_changed(
        &self,
        state: &mut State,
        record: NodeRecord,
    ) -> Result<bool> {
        if !self.db.update_node(&record).await? {
            return Ok(false);
        }
        let deliveries = state.network.upsert(record);
        self.deliver(&deliveries);
        Ok(true)
    }

    pub(crate) async fn change_node(
        &self,
        id: NodeId,
        change: impl FnOnce(&State, &mut NodeRecord) -> Result<()>,
    ) -> Result<NodeView> {
        let mut state = self.state.lock().await;
        let mut record = state
            .network
            .node(id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("node {id}")))?;
        let before = record.clone();
        change(&state, &mut record)?;
        if record == before {
            return Ok(self.view(&record));
        }
        if !self.store_changed(&mut state, record.clone()).await? {
            return Err(Error::NotFound(format!("node {id}")));
        }
        if record.name != before.name {
            state.names.remove(&before.name);
            state.names.insert(&record.name);
        }
        if record.state != before.state {
            self.streams.notify_state(id, record.state);
            tracing::info!(node = id, from = %before.state, to = %record.state, "node state changed");
        }
        Ok(self.view(&record))
    }
}
