//! The coordinator's use cases: users, keys, registration, admission, policy
//! and map streams. Each mutation writes the database first, then updates the
//! in-memory network and delivers the resulting deltas, all under one lock so
//! that streams see changes in the order they were committed.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hearth_acl::{CompiledPolicy, Policy, Topology};
use hearth_control::wire::{
    EndpointReport, MapMessage, NodeId, NodeState, RegisterRequest, RegisterResponse, WireGuardKey,
};
use hearth_control::{Fingerprint, JoinToken, SecretString};
use serde::Serialize;
use tokio::sync::Mutex;

use crate::authkey::{self, KeyRefusal, KeyUsage};
use crate::db::preauth_keys::{NewPreauthKey, PreauthKeyRow, consume_preauth_key};
use crate::db::users::UserRow;
use crate::db::{Db, nodes::insert_node};
use crate::error::{Error, Result};
use crate::ipam::AddressPool;
use crate::names::{self, NameIndex};
use crate::netmap::{Delivery, Network, NodeRecord};
use crate::policy;
use crate::registration::{self, NewNode};
use crate::streams::{Streams, Subscription, unix_now};
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
}

struct State {
    network: Network,
    addresses: AddressPool,
    names: NameIndex,
    next_node_id: NodeId,
    by_fingerprint: HashMap<Fingerprint, NodeId>,
    by_wireguard_key: HashMap<WireGuardKey, NodeId>,
    policy_text: Option<String>,
    /// The stored policy (`None`: no policy, everything allowed).
    policy: Option<Policy>,
}

/// The running coordinator.
pub struct Coordinator {
    db: Db,
    authority: NodeAuthority,
    settings: Settings,
    streams: Arc<Streams>,
    state: Mutex<State>,
    /// Endpoint and route reports per node: a burst, then a steady trickle.
    reports: governor::DefaultKeyedRateLimiter<NodeId>,
}

/// Endpoint and route reports one node may send at once, then one per second.
const REPORT_BURST: u32 = 10;

/// Options of `preauthkeys create`.
#[derive(Clone, Debug, Default, serde::Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeyOptions {
    /// Owning user.
    pub user: String,
    /// Usable more than once.
    #[serde(default)]
    pub reusable: bool,
    /// Nodes it admits are ephemeral.
    #[serde(default)]
    pub ephemeral: bool,
    /// Seconds until it expires (none: never).
    #[serde(default)]
    pub expiration_seconds: Option<u64>,
    /// Tags for the nodes it admits.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Nodes it admits need no approval.
    #[serde(default)]
    pub pre_approved: bool,
}

/// A pre-auth key as listed (never with its secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct KeyView {
    /// Id.
    pub id: i64,
    /// Owning user.
    pub user: String,
    /// Public prefix.
    pub prefix: String,
    /// Usable more than once.
    pub reusable: bool,
    /// Admits ephemeral nodes.
    pub ephemeral: bool,
    /// Admitted nodes skip approval.
    pub pre_approved: bool,
    /// Tags for admitted nodes.
    pub tags: Vec<String>,
    /// Expiry, Unix seconds.
    pub expires_at: Option<i64>,
    /// Nodes admitted so far.
    pub use_count: i64,
    /// Whether it can still admit a node now.
    pub usable: bool,
    /// Creation time.
    pub created_at: i64,
}

impl KeyView {
    fn new(row: PreauthKeyRow, now: i64) -> KeyView {
        let usable = authkey::admits(usage(&row), now).is_ok();
        KeyView {
            id: row.id,
            user: row.user,
            prefix: row.prefix,
            reusable: row.reusable,
            ephemeral: row.ephemeral,
            pre_approved: row.pre_approved,
            tags: row.tags,
            expires_at: row.expires_at,
            use_count: row.use_count,
            usable,
            created_at: row.created_at,
        }
    }
}

/// A created key: its listing, and the join token (shown once).
#[derive(Serialize, serde::Deserialize)]
pub struct CreatedKey {
    /// The key as listed.
    pub key: KeyView,
    /// The one-line join token.
    pub token: String,
}

/// A node as `nodes list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct NodeView {
    /// Id.
    pub id: NodeId,
    /// Name.
    pub name: String,
    /// Hostname it reported.
    pub hostname: String,
    /// Owning user.
    pub user: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Admission state.
    pub state: NodeState,
    /// Mesh IPv4.
    pub ipv4: String,
    /// Mesh IPv6.
    pub ipv6: String,
    /// Operating system.
    pub os: String,
    /// Ephemeral.
    pub ephemeral: bool,
    /// A static WireGuard device without an agent.
    pub static_device: bool,
    /// Connected right now.
    pub online: bool,
    /// Last time connected, Unix seconds.
    pub last_seen: Option<i64>,
    /// Endpoints.
    pub endpoints: Vec<String>,
    /// WireGuard public key.
    pub wireguard_key: String,
    /// Routes it advertises.
    pub advertised_routes: Vec<String>,
    /// Routes approved for it.
    pub approved_routes: Vec<String>,
    /// Registration time.
    pub created_at: i64,
}

fn usage(row: &PreauthKeyRow) -> KeyUsage {
    KeyUsage {
        reusable: row.reusable,
        expires_at: row.expires_at,
        use_count: row.use_count,
    }
}

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
        let mut by_fingerprint = HashMap::new();
        let mut by_wireguard_key = HashMap::new();
        for record in &records {
            addresses.mark_used(record.ipv4);
            names.insert(&record.name);
            by_wireguard_key.insert(record.wireguard_key, record.id);
            if let Some(fingerprint) = record.cert_fingerprint {
                by_fingerprint.insert(fingerprint, record.id);
            }
        }
        let next_node_id = db.max_node_id().await? + 1;
        let network = Network::with_nodes(Arc::new(compiled), records);
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
                by_fingerprint,
                by_wireguard_key,
                policy_text,
                policy,
            }),
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

    /// The database (for integrity checks and shutdown).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Ends every stream; used at shutdown.
    pub fn close_streams(&self) {
        self.streams.close_all();
    }

    fn deliver(&self, deliveries: &[Delivery]) {
        self.streams.deliver(deliveries);
    }

    // ----- users -----

    /// Creates a user.
    pub async fn create_user(&self, name: &str) -> Result<UserRow> {
        names::check_user_name(name).map_err(Error::BadRequest)?;
        match self.db.insert_user(name, unix_now()).await {
            Err(crate::db::DbError::Conflict(_)) => {
                Err(Error::Conflict(format!("user `{name}` already exists")))
            }
            other => Ok(other?),
        }
    }

    /// Every user.
    pub async fn list_users(&self) -> Result<Vec<UserRow>> {
        Ok(self.db.list_users().await?)
    }

    async fn user(&self, name: &str) -> Result<UserRow> {
        self.db
            .find_user(name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("user `{name}`")))
    }

    /// Renames a user; their nodes' identity changes with it.
    pub async fn rename_user(&self, old: &str, new: &str) -> Result<UserRow> {
        names::check_user_name(new).map_err(Error::BadRequest)?;
        let mut state = self.state.lock().await;
        let user = self.user(old).await?;
        match self.db.rename_user(old, new).await {
            Err(crate::db::DbError::Conflict(_)) => {
                return Err(Error::Conflict(format!("user `{new}` already exists")));
            }
            other => other?,
        };
        let affected: Vec<NodeRecord> = state
            .network
            .nodes()
            .filter(|record| record.user_id == user.id)
            .cloned()
            .collect();
        for mut record in affected {
            record.user = new.to_owned();
            let deliveries = state.network.upsert(record);
            self.deliver(&deliveries);
        }
        Ok(UserRow {
            name: new.to_owned(),
            ..user
        })
    }

    /// Deletes a user who has no nodes left (their keys go with them).
    pub async fn delete_user(&self, name: &str) -> Result<()> {
        let state = self.state.lock().await;
        let user = self.user(name).await?;
        let nodes = state
            .network
            .nodes()
            .filter(|record| record.user_id == user.id)
            .count();
        if nodes > 0 {
            return Err(Error::Conflict(format!(
                "user `{name}` still owns {nodes} node(s); delete them first"
            )));
        }
        self.db.delete_user(user.id).await?;
        Ok(())
    }

    // ----- pre-auth keys -----

    /// Creates a pre-auth key and the join token that carries it.
    pub async fn create_key(&self, options: &KeyOptions) -> Result<CreatedKey> {
        for tag in &options.tags {
            names::check_tag(tag).map_err(Error::BadRequest)?;
        }
        let user = self.user(&options.user).await?;
        let now = unix_now();
        let minted = authkey::mint();
        let expires_at = options
            .expiration_seconds
            .map(|seconds| now.saturating_add(i64::try_from(seconds).unwrap_or(i64::MAX)));
        let id = self
            .db
            .insert_preauth_key(&NewPreauthKey {
                user_id: user.id,
                prefix: &minted.prefix,
                secret_hash: &minted.secret_hash,
                reusable: options.reusable,
                ephemeral: options.ephemeral,
                pre_approved: options.pre_approved,
                tags: &options.tags,
                expires_at,
                now,
            })
            .await?;
        let row = self
            .db
            .get_preauth_key(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("pre-auth key {id}")))?;
        let token = JoinToken {
            url: self.settings.public_url.clone(),
            fingerprint: self.settings.fingerprint,
            key: SecretString::new(minted.text.to_string()),
        };
        tracing::info!(key = id, user = %user.name, "pre-auth key created");
        Ok(CreatedKey {
            key: KeyView::new(row, now),
            token: token.encode(),
        })
    }

    /// Keys, optionally of one user.
    pub async fn list_keys(&self, user: Option<&str>) -> Result<Vec<KeyView>> {
        let user_id = match user {
            Some(name) => Some(self.user(name).await?.id),
            None => None,
        };
        let now = unix_now();
        Ok(self
            .db
            .list_preauth_keys(user_id)
            .await?
            .into_iter()
            .map(|row| KeyView::new(row, now))
            .collect())
    }

    /// Makes a key unusable from now on.
    pub async fn expire_key(&self, id: i64) -> Result<KeyView> {
        let now = unix_now();
        if !self.db.expire_preauth_key(id, now).await? {
            return Err(Error::NotFound(format!("pre-auth key {id}")));
        }
        let row = self
            .db
            .get_preauth_key(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("pre-auth key {id}")))?;
        Ok(KeyView::new(row, now))
    }

    // ----- registration and identity -----

    /// Registers a device with a pre-auth key.
    pub async fn register(&self, request: RegisterRequest) -> Result<RegisterResponse> {
        let hostname = registration::check_request(&request)?;
        let csr = request
            .csr_bytes()
            .ok_or_else(|| Error::BadRequest("csr_der is not base64".into()))?;
        let presented = authkey::parse(request.auth_key.expose()).ok_or(Error::InvalidKey)?;

        let mut state = self.state.lock().await;
        let key = self
            .db
            .find_preauth_key(presented.prefix)
            .await?
            .ok_or(Error::InvalidKey)?;
        if !presented.matches(&key.secret_hash) {
            return Err(Error::InvalidKey);
        }
        let now = unix_now();
        authkey::admits(usage(&key), now).map_err(|refusal| match refusal {
            KeyRefusal::Expired => Error::KeyExpired,
            KeyRefusal::AlreadyUsed => Error::KeyUsed,
        })?;
        if let Some(existing) = state.by_wireguard_key.get(&request.wireguard_key) {
            return Err(Error::AlreadyRegistered(*existing));
        }
        let (pending_of_key, pending_of_user) = self.db.pending_counts(key.id, key.user_id).await?;
        registration::check_pending(key.pre_approved, pending_of_key, pending_of_user)?;

        let id = state.next_node_id;
        let name = state.names.unique(hostname);
        let (certificate_pem, fingerprint) = self
            .authority
            .issue(&csr, &format!("hearth-node-{id}"))
            .map_err(|error| Error::BadRequest(error.to_string()))?;
        let addresses = state.addresses.allocate(now)?;
        let record = NewNode {
            id,
            user_id: key.user_id,
            user: key.user.clone(),
            name,
            hostname: hostname.to_owned(),
            os: request.os.clone(),
            wireguard_key: request.wireguard_key,
            state: if key.pre_approved {
                NodeState::Approved
            } else {
                NodeState::Pending
            },
            addresses,
            tags: key.tags.iter().cloned().collect(),
            ephemeral: key.ephemeral,
            cert_fingerprint: Some(fingerprint),
            now,
        }
        .into_record();
        let stored = async {
            let mut transaction = self.db.begin().await?;
            if !consume_preauth_key(&mut transaction, key.id, now).await? {
                return Ok(false);
            }
            insert_node(&mut transaction, &record, Some(key.id)).await?;
            transaction.commit().await?;
            Ok::<bool, crate::db::DbError>(true)
        }
        .await;
        match stored {
            Ok(true) => {}
            Ok(false) => {
                state.addresses.unallocate(record.ipv4);
                return Err(Error::KeyUsed);
            }
            Err(error) => {
                state.addresses.unallocate(record.ipv4);
                return Err(error.into());
            }
        }
        self.admitted(&mut state, &record);
        tracing::info!(node = id, name = %record.name, user = %record.user, state = %record.state, "node registered");
        Ok(RegisterResponse {
            node: record.info(),
            client_certificate_pem: certificate_pem,
        })
    }

    /// Indexes a stored new node and delivers it to its peers.
    fn admitted(&self, state: &mut State, record: &NodeRecord) {
        state.next_node_id = state.next_node_id.max(record.id + 1);
        state.names.insert(&record.name);
        state
            .by_wireguard_key
            .insert(record.wireguard_key, record.id);
        if let Some(fingerprint) = record.cert_fingerprint {
            state.by_fingerprint.insert(fingerprint, record.id);
        }
        let deliveries = state.network.upsert(record.clone());
        self.deliver(&deliveries);
    }

    /// The admitted node presenting `fingerprint`, for a report it sends;
    /// refused when it is not approved or reports too often.
    fn reporting_node(
        &self,
        state: &State,
        fingerprint: Option<Fingerprint>,
    ) -> Result<NodeRecord> {
        let fingerprint = fingerprint.ok_or(Error::Unauthenticated)?;
        let record = state
            .by_fingerprint
            .get(&fingerprint)
            .and_then(|id| state.network.node(*id))
            .ok_or(Error::UnknownNode)?;
        match record.state {
            NodeState::Approved => {}
            NodeState::Pending => {
                return Err(Error::NodePending {
                    id: record.id,
                    name: record.name.clone(),
                });
            }
            other => {
                return Err(Error::NodeNotAdmitted {
                    id: record.id,
                    state: other.as_str(),
                });
            }
        }
        self.reports
            .check_key(&record.id)
            .map_err(|_| Error::RateLimited)?;
        Ok(record.clone())
    }

    /// The node presenting the client certificate with `fingerprint`.
    pub async fn identify(&self, fingerprint: Option<Fingerprint>) -> Result<NodeRecord> {
        let fingerprint = fingerprint.ok_or(Error::Unauthenticated)?;
        let state = self.state.lock().await;
        state
            .by_fingerprint
            .get(&fingerprint)
            .and_then(|id| state.network.node(*id))
            .cloned()
            .ok_or(Error::UnknownNode)
    }

    /// Opens the map stream of the node with `fingerprint`.
    pub async fn open_map(&self, fingerprint: Option<Fingerprint>) -> Result<Subscription> {
        let fingerprint = fingerprint.ok_or(Error::Unauthenticated)?;
        let state = self.state.lock().await;
        let record = state
            .by_fingerprint
            .get(&fingerprint)
            .and_then(|id| state.network.node(*id))
            .ok_or(Error::UnknownNode)?;
        match record.state {
            NodeState::Approved => {}
            NodeState::Pending => {
                return Err(Error::NodePending {
                    id: record.id,
                    name: record.name.clone(),
                });
            }
            other => {
                return Err(Error::NodeNotAdmitted {
                    id: record.id,
                    state: other.as_str(),
                });
            }
        }
        let map = state
            .network
            .full_map(record.id)
            .ok_or(Error::UnknownNode)?;
        Ok(self
            .streams
            .subscribe_map(record.id, &MapMessage::Full { map }))
    }

    /// Opens the approval stream of the node with `fingerprint`.
    pub async fn open_approval(
        &self,
        fingerprint: Option<Fingerprint>,
    ) -> Result<(NodeState, Subscription)> {
        let record = self.identify(fingerprint).await?;
        let _state = self.state.lock().await;
        Ok((
            record.state,
            self.streams.subscribe_approval(record.id, record.state),
        ))
    }

    /// Records where the node with `fingerprint` can be reached.
    pub async fn report_endpoints(
        &self,
        fingerprint: Option<Fingerprint>,
        report: EndpointReport,
        observed: Option<SocketAddr>,
    ) -> Result<()> {
        let endpoints = crate::endpoints::from_report(&report, observed)?;
        let mut state = self.state.lock().await;
        let mut record = self.reporting_node(&state, fingerprint)?;
        if record.endpoints == endpoints {
            return Ok(());
        }
        record.endpoints = endpoints;
        self.db.update_node(&record).await?;
        let deliveries = state.network.upsert(record);
        self.deliver(&deliveries);
        Ok(())
    }

    // ----- static devices -----

    /// Registers a device without an agent (a phone with the official
    /// WireGuard app): a key pair is made here, the node is approved at once,
    /// and the returned wg-quick configuration (holding the private key,
    /// which is not kept) lists the peers the policy lets it see.
    pub async fn add_static_device(
        &self,
        user: &str,
        name: &str,
    ) -> Result<(NodeView, zeroize::Zeroizing<String>)> {
        names::check_node_name(name).map_err(Error::BadRequest)?;
        let user = self.user(user).await?;
        let mut state = self.state.lock().await;
        if state.names.contains(name) {
            return Err(Error::Conflict(format!(
                "a node is already called `{name}`"
            )));
        }
        let secret = x25519_dalek::StaticSecret::random();
        let public = WireGuardKey(x25519_dalek::PublicKey::from(&secret).to_bytes());
        let id = state.next_node_id;
        let now = unix_now();
        let addresses = state.addresses.allocate(now)?;
        let record = NewNode {
            id,
            user_id: user.id,
            user: user.name.clone(),
            name: name.to_owned(),
            hostname: name.to_owned(),
            os: "wireguard".into(),
            wireguard_key: public,
            state: NodeState::Approved,
            addresses,
            tags: BTreeSet::new(),
            ephemeral: false,
            cert_fingerprint: None,
            now,
        }
        .into_record();
        let stored = async {
            let mut transaction = self.db.begin().await?;
            insert_node(&mut transaction, &record, None).await?;
            transaction.commit().await?;
            Ok::<(), crate::db::DbError>(())
        }
        .await;
        if let Err(error) = stored {
            state.addresses.unallocate(record.ipv4);
            return Err(error.into());
        }
        self.admitted(&mut state, &record);
        let peers: Vec<NodeRecord> = state
            .network
            .peers_of(id)
            .into_iter()
            .filter_map(|peer| state.network.node(peer).cloned())
            .collect();
        let private = zeroize::Zeroizing::new(base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            secret.to_bytes(),
        ));
        let config = crate::wgquick::render(&private, &record, &peers);
        tracing::info!(node = id, name, user = %user.name, "static WireGuard device added");
        Ok((self.view(&record), config))
    }

    // ----- node administration -----

    /// Every node.
    pub async fn list_nodes(&self) -> Vec<NodeView> {
        let state = self.state.lock().await;
        let mut views: Vec<NodeView> = state
            .network
            .nodes()
            .map(|record| self.view(record))
            .collect();
        views.sort_by_key(|view| view.id);
        views
    }

    fn view(&self, record: &NodeRecord) -> NodeView {
        let online = self.streams.is_online(record.id);
        let last_seen = match self.streams.last_seen(record.id) {
            Some(i64::MAX) | None => record.last_seen.or(online.then(unix_now)),
            seen => seen,
        };
        NodeView {
            id: record.id,
            name: record.name.clone(),
            hostname: record.hostname.clone(),
            user: record.user.clone(),
            tags: record.tags.iter().cloned().collect(),
            state: record.state,
            ipv4: record.ipv4.to_string(),
            ipv6: record.ipv6.to_string(),
            os: record.os.clone(),
            ephemeral: record.ephemeral,
            static_device: record.static_device,
            online,
            last_seen,
            endpoints: record.endpoints.iter().map(ToString::to_string).collect(),
            wireguard_key: record.wireguard_key.to_string(),
            advertised_routes: record
                .advertised_routes
                .iter()
                .map(ToString::to_string)
                .collect(),
            approved_routes: record
                .approved_routes
                .iter()
                .map(ToString::to_string)
                .collect(),
            created_at: record.created_at,
        }
    }

    /// Applies `change` to node `id`, stores it and delivers the consequences.
    async fn change_node(
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
        if !self.db.update_node(&record).await? {
            return Err(Error::NotFound(format!("node {id}")));
        }
        if record.name != before.name {
            state.names.remove(&before.name);
            state.names.insert(&record.name);
        }
        let deliveries = state.network.upsert(record.clone());
        self.deliver(&deliveries);
        if record.state != before.state {
            self.streams.notify_state(id, record.state);
            tracing::info!(node = id, from = %before.state, to = %record.state, "node state changed");
        }
        Ok(self.view(&record))
    }

    /// Approves a pending (or rejected, or expired) node.
    pub async fn approve_node(&self, id: NodeId) -> Result<NodeView> {
        self.change_node(id, |_, record| {
            record.state = NodeState::Approved;
            Ok(())
        })
        .await
    }

    /// Rejects a node: it keeps its record but gets no peers.
    pub async fn reject_node(&self, id: NodeId) -> Result<NodeView> {
        self.change_node(id, |_, record| {
            record.state = NodeState::Rejected;
            Ok(())
        })
        .await
    }

    /// Expires a node: it leaves every map until approved again.
    pub async fn expire_node(&self, id: NodeId) -> Result<NodeView> {
        self.change_node(id, |_, record| {
            record.state = NodeState::Expired;
            Ok(())
        })
        .await
    }

    /// Renames a node.
    pub async fn rename_node(&self, id: NodeId, name: &str) -> Result<NodeView> {
        names::check_node_name(name).map_err(Error::BadRequest)?;
        // Checked and written under one lock: two renames cannot both take a name.
        self.change_node(id, |state, record| {
            if record.name != name && state.names.contains(name) {
                return Err(Error::Conflict(format!(
                    "a node is already called `{name}`"
                )));
            }
            record.name = name.to_owned();
            Ok(())
        })
        .await
    }

    /// Replaces a node's tags (an empty list makes it its user's device again).
    pub async fn tag_node(&self, id: NodeId, tags: &[String]) -> Result<NodeView> {
        for tag in tags {
            names::check_tag(tag).map_err(Error::BadRequest)?;
        }
        let tags: BTreeSet<String> = tags.iter().cloned().collect();
        self.change_node(id, |_, record| {
            record.tags = tags;
            Ok(())
        })
        .await
    }

    /// Deletes a node: it disappears from every map and its certificate stops working.
    pub async fn delete_node(&self, id: NodeId) -> Result<()> {
        let mut state = self.state.lock().await;
        let record = state
            .network
            .node(id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("node {id}")))?;
        let now = unix_now();
        self.db.delete_node(id, now).await?;
        let deliveries = state.network.remove(id);
        self.deliver(&deliveries);
        self.streams.close_node(id);
        state.addresses.release(record.ipv4, now);
        state.names.remove(&record.name);
        state.by_wireguard_key.remove(&record.wireguard_key);
        if let Some(fingerprint) = record.cert_fingerprint {
            state.by_fingerprint.remove(&fingerprint);
        }
        tracing::info!(node = id, name = %record.name, "node deleted");
        Ok(())
    }

    /// Deletes ephemeral nodes disconnected for longer than the timeout; returns their ids.
    pub async fn collect_ephemeral(&self) -> Result<Vec<NodeId>> {
        let now = unix_now();
        let timeout = i64::try_from(self.settings.ephemeral_timeout.as_secs()).unwrap_or(i64::MAX);
        let idle: Vec<NodeId> = {
            let state = self.state.lock().await;
            state
                .network
                .nodes()
                .filter(|record| record.ephemeral)
                .filter(|record| {
                    let seen = self
                        .streams
                        .last_seen(record.id)
                        .or(record.last_seen)
                        .unwrap_or(record.created_at);
                    seen != i64::MAX && now.saturating_sub(seen) >= timeout
                })
                .map(|record| record.id)
                .collect()
        };
        for id in &idle {
            match self.delete_node(*id).await {
                Ok(()) | Err(Error::NotFound(_)) => {
                    tracing::info!(node = id, "ephemeral node removed after inactivity");
                }
                Err(error) => return Err(error),
            }
        }
        Ok(idle)
    }

    // ----- policy -----

    /// The stored policy text (`None`: no policy, everything allowed).
    pub async fn policy_text(&self) -> Option<String> {
        self.state.lock().await.policy_text.clone()
    }

    /// The users and admitted nodes a policy's `tests` are checked against.
    async fn topology(&self, state: &State) -> Result<Topology> {
        let users = self
            .db
            .list_users()
            .await?
            .into_iter()
            .map(|user| user.name)
            .collect();
        let nodes = state
            .network
            .nodes()
            .filter(|record| record.is_admitted())
            .map(NodeRecord::identity)
            .collect();
        Ok(Topology { users, nodes })
    }

    /// Validates `text`, including its `tests` against the current tailnet, without storing it.
    pub async fn check_policy(&self, text: &str) -> Result<()> {
        let state = self.state.lock().await;
        let topology = self.topology(&state).await?;
        policy::validate(text, &topology).map_err(Error::PolicyInvalid)?;
        Ok(())
    }

    /// Validates and stores `text`, then delivers each node's changes. A
    /// refused policy changes nothing.
    pub async fn set_policy(&self, text: &str) -> Result<()> {
        let mut state = self.state.lock().await;
        let topology = self.topology(&state).await?;
        let policy = policy::validate(text, &topology).map_err(Error::PolicyInvalid)?;
        self.db.store_policy(text, unix_now()).await?;
        let compiled = effective_rules(Some(&policy));
        state.policy_text = Some(text.to_owned());
        state.policy = Some(policy);
        let deliveries = state.network.set_policy(Arc::new(compiled));
        self.deliver(&deliveries);
        tracing::info!(changed_nodes = deliveries.len(), "policy updated");
        self.apply_auto_approvals(&mut state).await?;
        Ok(())
    }

    /// Approves, on every node, the advertised routes the policy's `autoApprovers` allow.
    async fn apply_auto_approvals(&self, state: &mut State) -> Result<()> {
        let updates: Vec<NodeRecord> = state
            .network
            .nodes()
            .filter_map(|record| {
                let approved =
                    approved_routes(state.policy.as_ref(), record, &record.approved_routes);
                (approved != record.approved_routes).then(|| NodeRecord {
                    approved_routes: approved,
                    ..record.clone()
                })
            })
            .collect();
        for record in updates {
            self.db.update_node(&record).await?;
            let deliveries = state.network.upsert(record);
            self.deliver(&deliveries);
        }
        Ok(())
    }

    // ----- routes -----

    /// Records the routes the node with `fingerprint` advertises; those the
    /// policy's `autoApprovers` allow are approved at once.
    pub async fn report_routes(
        &self,
        fingerprint: Option<Fingerprint>,
        advertised: Vec<ipnet::IpNet>,
    ) -> Result<()> {
        let advertised = crate::routes::check_advertised(advertised)?;
        let mut state = self.state.lock().await;
        let mut record = self.reporting_node(&state, fingerprint)?;
        record.advertised_routes = advertised;
        record.approved_routes =
            approved_routes(state.policy.as_ref(), &record, &record.approved_routes);
        self.db.update_node(&record).await?;
        let deliveries = state.network.upsert(record);
        self.deliver(&deliveries);
        Ok(())
    }

    /// Sets which of a node's advertised routes an admin approves (those
    /// `autoApprovers` allow stay approved).
    pub async fn approve_routes(&self, id: NodeId, routes: &[ipnet::IpNet]) -> Result<NodeView> {
        self.change_node(id, |state, record| {
            if let Some(route) = routes
                .iter()
                .find(|route| !record.advertised_routes.contains(route))
            {
                return Err(Error::BadRequest(format!(
                    "node {id} does not advertise {route}; it advertises [{}]",
                    record
                        .advertised_routes
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            record.approved_routes = approved_routes(state.policy.as_ref(), record, routes);
            Ok(())
        })
        .await
    }
}

/// The rules the engine evaluates: the policy's, or allow-all without one.
fn effective_rules(policy: Option<&Policy>) -> CompiledPolicy {
    policy.map_or_else(CompiledPolicy::allow_all, |policy| policy.compiled.clone())
}

/// A node's approved routes under `policy` (see [`crate::routes::approved`]).
fn approved_routes(
    policy: Option<&Policy>,
    record: &NodeRecord,
    chosen: &[ipnet::IpNet],
) -> Vec<ipnet::IpNet> {
    let automatic = policy
        .map(|policy| {
            policy.auto_approved_routes(&record.user, &record.tags, &record.advertised_routes)
        })
        .unwrap_or_default();
    crate::routes::approved(record, chosen, &automatic)
}
