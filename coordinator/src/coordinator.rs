//! The coordinator service: the state every use case shares, and the steps
//! they share (find the node presenting a certificate, store a new node,
//! change one and deliver the consequences). Each mutation, in a writer's
//! turn ([`Coordinator::turn`]), writes the database first, then updates the
//! [`Registry`] and delivers the resulting deltas, so streams see changes in
//! the order they were committed. The state itself is held only for
//! moments, never across IO, so readers never wait for the database.
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
use hearth_control::wire::NodeId;

use crate::admission::NodeView;
use crate::db::Db;
use crate::db::nodes::{insert_node, lock_registrations};
use crate::db::preauth_keys::consume_preauth_key;
use crate::error::{Error, Result};
use crate::netmap::{Delivery, NodeRecord};
use crate::policy::effective_rules;
use crate::registry::Registry;
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
    /// Whether Tailscale clients may send each other files (Taildrop).
    pub taildrop: bool,
    /// DNS beyond MagicDNS: split domains, search domains, extra records.
    pub dns: crate::dns::DnsSettings,
    /// The identity provider people sign in with (`None`: devices without
    /// a pre-auth key wait for `nodes register`).
    pub sign_in: Option<Arc<crate::oidc::Provider>>,
    /// Certificates from an ACME CA (`None`: none are given).
    pub acme: Option<Arc<crate::acme::Acme>>,
}

impl Settings {
    /// The node capabilities every Tailscale client's own node is given.
    pub fn node_capabilities(&self) -> Vec<String> {
        // Tailscale SSH's server may run everywhere; the policy's `ssh`
        // rules say who gets in.
        let mut capabilities = vec![hearth_control::tailcfg::CAP_SSH.to_owned()];
        if self.taildrop {
            capabilities.push(hearth_control::tailcfg::CAP_FILE_SHARING.to_owned());
        }
        // `tailscale serve --https` asks for this before it gets a
        // certificate.
        if self.device_certificates() {
            capabilities.push(hearth_control::tailcfg::CAP_HTTPS.to_owned());
        }
        capabilities
    }

    /// Whether devices get certificates for their MagicDNS names.
    pub fn device_certificates(&self) -> bool {
        self.acme
            .as_ref()
            .is_some_and(|acme| acme.config.device_certificates)
    }

    /// The coordinator's name that gets a certificate from a public CA:
    /// Tailscale clients asking for it are served that certificate, so
    /// they check it as any other instead of pinning.
    pub fn public_name(&self) -> Option<String> {
        self.acme.as_ref()?.config.domain.clone()
    }

    /// The coordinator's own names: its public URL's host, and its ACME
    /// name and DNS server's name when it has them.
    pub fn own_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        if let Some(rest) = self.public_url.split_once("://").map(|(_, rest)| rest) {
            let authority = rest.split('/').next().unwrap_or_default();
            let host = authority
                .rsplit_once(':')
                .map_or(authority, |(host, _)| host);
            names.push(host.to_owned());
        }
        if let Some(acme) = &self.acme {
            names.extend(acme.config.domain.clone());
            names.push(acme.config.nameserver.clone());
        }
        names
    }

    /// The node names that would give a device one of the coordinator's
    /// own names under the MagicDNS domain: no node gets them.
    pub fn own_node_labels(&self) -> Vec<String> {
        crate::names::own_labels(
            self.own_names().iter().map(String::as_str),
            &self.base_domain,
        )
    }

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

/// What the use cases share: the nodes and the policy.
pub(crate) struct State {
    /// Every node and the indexes into them.
    pub(crate) registry: Registry,
    /// The stored policy's text (`None`: no policy, everything allowed).
    pub(crate) policy_text: Option<String>,
    /// The stored policy (`None`: no policy, everything allowed).
    pub(crate) policy: Option<Policy>,
    /// The identity provider's groups the policy was compiled with.
    pub(crate) provider_groups: hearth_acl::ProviderGroups,
}

/// A writer's turn ([`Coordinator::turn`]): functions that change the
/// state take one, so only one change is decided, stored and applied at a
/// time.
pub(crate) type Turn<'a> = tokio::sync::MutexGuard<'a, ()>;

/// The running coordinator.
pub struct Coordinator {
    pub(crate) db: Db,
    pub(crate) authority: NodeAuthority,
    pub(crate) settings: Settings,
    pub(crate) streams: Arc<Streams>,
    /// Writers take turns here; a turn is held across the database IO of
    /// one change, so streams see changes in the order they were committed.
    turn: tokio::sync::Mutex<()>,
    /// The state, held only for moments and never across IO: readers (a
    /// request naming its node, a map stream opening) never wait for the
    /// database.
    state: std::sync::Mutex<State>,
    /// Endpoint and route reports per node: a burst, then a steady trickle.
    pub(crate) reports: governor::DefaultKeyedRateLimiter<NodeId>,
    /// Map streams opened per node: a burst, then one every two seconds
    /// (each costs a full map).
    pub(crate) map_opens: governor::DefaultKeyedRateLimiter<NodeId>,
    /// Key rotations per node ([`crate::keys::Rotations`]).
    pub(crate) rotations: std::sync::Mutex<crate::keys::Rotations>,
    /// Tailscale clients without a key, waiting for `nodes register`.
    pub(crate) logins: std::sync::Mutex<crate::logins::Logins>,
    /// Sign-ins at the identity provider under way, by their state.
    pub(crate) sign_ins:
        std::sync::Mutex<crate::sign_in::Pending<Arc<crate::oidc::ProviderClient>>>,
    /// Tailscale SSH sessions waiting for `ssh approve`, and approvals.
    pub(crate) ssh_checks: std::sync::Mutex<crate::ssh_checks::SshChecks>,
    /// Woken when an admin decides a check.
    pub(crate) ssh_checks_decided: tokio::sync::Notify,
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
        let provider_groups = crate::policy::provider_groups(
            &db.list_users().await?,
            &db.list_provider_identities().await?,
        );
        let policy = match &policy_text {
            Some(text) => match Policy::parse_with_provider_groups(text, &provider_groups) {
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
        let mut registry = Registry::load(
            Arc::new(compiled),
            db.list_nodes().await?,
            db.released_addresses().await?,
            db.max_node_id().await?,
        );
        let standalone = db.list_relays().await?;
        let _ = registry.set_relays(crate::relays::regions(&settings.relay, &standalone));
        registry.set_dns(Some(settings.dns.for_mesh(&settings.base_domain)));
        registry.reserve_names(&settings.own_node_labels());
        Ok(Arc::new(Coordinator {
            db,
            authority,
            settings,
            streams: Arc::new(Streams::default()),
            turn: tokio::sync::Mutex::new(()),
            state: std::sync::Mutex::new(State {
                registry,
                policy_text,
                policy,
                provider_groups,
            }),
            logins: std::sync::Mutex::default(),
            sign_ins: std::sync::Mutex::default(),
            ssh_checks: std::sync::Mutex::default(),
            ssh_checks_decided: tokio::sync::Notify::new(),
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
        self.state().registry.network().relays().to_vec()
    }

    /// The database (for integrity checks and shutdown).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Ends every stream; used at shutdown.
    pub fn close_streams(&self) {
        self.streams.close_all();
    }

    /// The state, for a moment: never hold it across an `.await`.
    pub(crate) fn state(&self) -> std::sync::MutexGuard<'_, State> {
        hearth_runtime::lock(&self.state)
    }

    /// Waits for a writer's turn: whoever changes the state decides,
    /// stores and applies the change within one turn.
    pub(crate) async fn turn(&self) -> Turn<'_> {
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
        turn: &Turn<'_>,
        key: Option<i64>,
        now: i64,
        mut build: impl FnMut(&mut Registry) -> Result<NodeRecord>,
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
                let next = self.state().registry.next_id();
                if self.db.max_node_id().await? >= next {
                    self.resync_state(turn).await?;
                }
            }
            let record = build(&mut self.state().registry)?;
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
                    self.state().registry.unallocate(record.ipv4);
                    return Err(Error::KeyUsed);
                }
                Err(crate::db::DbError::Conflict(what))
                    if self.db.is_shared() && attempt < ATTEMPTS =>
                {
                    tracing::debug!(%what, "another coordinator registered a node at the same moment; reading the database again");
                    self.state().registry.unallocate(record.ipv4);
                    self.resync_state(turn).await?;
                }
                Err(error) => {
                    self.state().registry.unallocate(record.ipv4);
                    return Err(error.into());
                }
            }
        };
        self.apply(turn, record.clone());
        self.db
            .announce(&crate::db::Announcement::Node { id: record.id })
            .await;
        Ok(record)
    }

    /// Stores a changed `record` of an existing node and delivers what
    /// changes for its peers; false when the node no longer exists.
    pub(crate) async fn store_changed(&self, turn: &Turn<'_>, record: NodeRecord) -> Result<bool> {
        if !self.db.update_node(&record).await? {
            return Ok(false);
        }
        self.apply(turn, record);
        Ok(true)
    }

    /// Applies `change` to node `id`, stores it and delivers the consequences.
    pub(crate) async fn change_node(
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
        if !self.store_changed(&turn, record.clone()).await? {
            return Err(Error::NotFound(format!("node {id}")));
        }
        if record.state != before.state {
            self.streams.notify_state(id, record.state);
            tracing::info!(node = id, from = %before.state, to = %record.state, "node state changed");
        }
        Ok(self.view(&record))
    }
}

#[cfg(test)]
mod tests {
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
        let path = StateDir::new(dir.path()).database();
        let mut blocker = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .expect("second connection");
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut blocker)
            .await
            .expect("write lock");

        let writer = tokio::spawn({
            let coordinator = Arc::clone(&coordinator);
            async move { coordinator.rename_node(phone.id, "tablet").await }
        });
        // Ready once the rename holds its turn: from then on it is in, or
        // on its way to, the database, which it cannot finish.
        while coordinator.turn.try_lock().is_ok() {
            tokio::task::yield_now().await;
        }

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
}
