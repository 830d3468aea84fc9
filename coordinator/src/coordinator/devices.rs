//! What devices ask of the coordinator: registering (`hearth-agent`s with
//! a pre-auth key, Tailscale clients with a key, a sign-in or an admin's
//! approval), opening their map, reporting endpoints and routes, rotating
//! keys, expiring, leaving (ephemeral nodes), publishing a certificate
//! challenge and asking for an SSH check. The decisions are in the modules
//! named at each block; this is their shell.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::SystemTime;

use hearth_control::compression::Encoding;
use hearth_control::tailcfg;
use hearth_control::tailcfg::{MachineKey, MapRequest};
use hearth_control::wire::{
    EndpointReport, NodeId, NodeState, RegisterRequest, RegisterResponse, RotateRequest,
    RotateResponse, WireGuardKey,
};
use hearth_runtime::clock::unix_seconds as unix_now;
use ipnet::IpNet;

use super::{Change, Coordinator, State, Turn};
use crate::accounts::usage;
use crate::acme::zone;
use crate::admission::{NodeView, check_admitted};
use crate::authkey::KeyRefusal;
use crate::coordinator::Duration;
use crate::db::preauth_keys::PreauthKeyRow;
use crate::derp::Admission;
use crate::endpoints::from_report;
use crate::error::{Error, Result};
use crate::keys::{LONGEST_EXPIRY_NAP, must_expire, rotation_interval, time_until};
use crate::netmap::{Credential, NodeRecord, Whereabouts};
use crate::presence::{Presence, idle_too_long};
use crate::registration::{
    Device, Owner, check_pending, check_request, is_low_order, new_record, owner_from_key,
};
use crate::routes::{approved_under, check_advertised};
use crate::ssh_checks::{Asked, CheckState, DECISION_HOLD, SshChecks};
use crate::streams::Subscription;
use crate::tailscale::{
    Joining, auth_key_text, client_name, held_report, key_expired_response, os_of, reported,
    response_for, revives,
};
use crate::{authkey, names};

impl Coordinator {
    /// The stored pre-auth key `presented` names, when it matches and still
    /// admits a node at `now`. The caller holds a writer's turn, so the use
    /// it then consumes cannot be taken by a concurrent registration.
    pub(super) async fn usable_key(&self, presented: &str, now: i64) -> Result<PreauthKeyRow> {
        let presented = authkey::parse(presented).ok_or(Error::InvalidKey)?;
        let key = self
            .db
            .find_preauth_key(presented.prefix)
            .await?
            .ok_or(Error::InvalidKey)?;
        if !presented.matches(&key.secret_hash) {
            return Err(Error::InvalidKey);
        }
        authkey::admits(usage(&key), now).map_err(|refusal| match refusal {
            KeyRefusal::Expired => Error::KeyExpired,
            KeyRefusal::AlreadyUsed => Error::KeyUsed,
        })?;
        Ok(key)
    }

    /// Registers a device with a pre-auth key.
    pub async fn register(&self, request: RegisterRequest) -> Result<RegisterResponse> {
        let hostname = check_request(&request)?;
        let csr = request
            .csr_bytes()
            .ok_or_else(|| Error::BadRequest("csr_der is not base64".into()))?;
        let turn = self.turn().await;
        let now = unix_now();
        let key = self.usable_key(request.auth_key.expose(), now).await?;
        let (pending_of_key, pending_of_user) = self.db.pending_counts(key.id, key.user_id).await?;
        check_pending(key.pre_approved, pending_of_key, pending_of_user)?;

        let mut certificate_pem = String::new();
        let record = self
            .store_new_node(&turn, Some(key.id), now, |registry| {
                if let Some(existing) = registry.holder_of(&request.wireguard_key) {
                    return Err(Error::AlreadyRegistered(existing));
                }
                let id = registry.next_id();
                let name = registry.unique_name(hostname);
                let fingerprint;
                (certificate_pem, fingerprint) = self
                    .authority
                    .issue(&csr, &format!("hearth-node-{id}"))
                    .map_err(|error| Error::BadRequest(error.to_string()))?;
                let addresses = registry.allocate(now)?;
                let device = Device {
                    name,
                    hostname: hostname.to_owned(),
                    os: request.os.clone(),
                    key: request.wireguard_key,
                    credential: Some(Credential::Certificate(fingerprint)),
                    client: String::new(),
                };
                let owner = owner_from_key(&key, self.settings.key_lifetime());
                Ok(new_record(id, owner, device, addresses, now))
            })
            .await?;
        let id = record.id;
        tracing::info!(node = id, name = %record.name, user = %record.user, state = %record.state, "node registered");
        Ok(RegisterResponse {
            node: record.info(),
            client_certificate_pem: certificate_pem,
        })
    }

    /// Registers a device without an agent (a phone with the official
    /// WireGuard app): a key pair is made here, the node is approved at once,
    /// and the returned wg-quick configuration (holding the private key,
    /// which is not kept) lists the peers the policy lets it see.
    pub async fn add_static_device(
        &self,
        user: &str,
        name: &str,
    ) -> Result<(NodeView, zeroize::Zeroizing<String>)> {
        names::check_node_name(name)?;
        let user = self.user(user).await?;
        let turn = self.turn().await;
        let secret = x25519_dalek::StaticSecret::random();
        let public = WireGuardKey(x25519_dalek::PublicKey::from(&secret).to_bytes());
        let now = unix_now();
        let record = self
            .store_new_node(&turn, None, now, |registry| {
                if registry.name_taken(name) {
                    return Err(Error::Conflict(format!(
                        "a node is already called `{name}`"
                    )));
                }
                let addresses = registry.allocate(now)?;
                let owner = Owner {
                    user_id: user.id,
                    user: user.name.clone(),
                    tags: BTreeSet::new(),
                    ephemeral: false,
                    state: NodeState::Approved,
                    // Nothing on the device could rotate them.
                    key_lifetime: None,
                };
                let device = Device {
                    name: name.to_owned(),
                    hostname: name.to_owned(),
                    os: "wireguard".into(),
                    key: public,
                    credential: None,
                    client: String::new(),
                };
                Ok(new_record(
                    registry.next_id(),
                    owner,
                    device,
                    addresses,
                    now,
                ))
            })
            .await?;
        let id = record.id;
        let peers: Vec<NodeRecord> = {
            let state = self.state();
            let network = state.registry.network();
            network
                .peers_of(id)
                .into_iter()
                .filter_map(|peer| network.node(peer).cloned())
                .collect()
        };
        drop(turn);
        let private = zeroize::Zeroizing::new(base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            secret.to_bytes(),
        ));
        let config = crate::wgquick::render(&private, &record, &peers);
        tracing::info!(node = id, name, user = %user.name, "static WireGuard device added");
        Ok((self.view(&record), config))
    }
}

impl Coordinator {
    /// The node presenting `credential`.
    pub async fn identify(&self, credential: Option<Credential>) -> Result<NodeRecord> {
        self.state().registry.presenting(credential).cloned()
    }

    /// Whether `key` is the WireGuard (node) key of an admitted node: who
    /// may log in to the relay.
    pub async fn admits_node_key(&self, key: &hearth_control::wire::WireGuardKey) -> bool {
        let state = self.state();
        state
            .registry
            .holder_of(key)
            .and_then(|id| state.registry.node(id))
            .is_some_and(NodeRecord::is_admitted)
    }

    /// Opens the map stream of the node presenting `credential`, its full
    /// map in `encoding`; refused when it opens them too often.
    pub async fn open_map(
        &self,
        credential: Option<Credential>,
        encoding: Encoding,
    ) -> Result<Subscription> {
        let state = self.state();
        let record = state.registry.presenting(credential)?;
        check_admitted(record)?;
        if self.map_opens.check_key(&record.id).is_err() {
            return Err(Error::RateLimited);
        }
        let network = state.registry.network();
        let line = network
            .full_map_line(record.id, encoding)
            .ok_or(Error::UnknownNode)?;
        let peers = network.peers_of(record.id);
        Ok(self.streams.subscribe_map(record.id, line, &peers))
    }

    /// Opens the approval stream of the node presenting `credential`.
    pub async fn open_approval(
        &self,
        credential: Option<Credential>,
    ) -> Result<(NodeState, Subscription)> {
        let state = self.state();
        let record = state.registry.presenting(credential)?;
        Ok((
            record.state,
            self.streams.subscribe_approval(record.id, record.state),
        ))
    }

    /// The admitted node presenting `credential`, for a report it sends;
    /// refused when it is not approved or reports too often.
    pub(super) fn reporting_node(
        &self,
        state: &State,
        credential: Option<Credential>,
    ) -> Result<NodeRecord> {
        let record = state.registry.presenting(credential)?;
        check_admitted(record)?;
        self.reports
            .check_key(&record.id)
            .map_err(|_| Error::RateLimited)?;
        Ok(record.clone())
    }

    pub(super) fn view(&self, record: &NodeRecord) -> NodeView {
        let presence = self.streams.presence(record.id);
        let online = presence == Presence::Online;
        let last_seen = crate::presence::last_seen(record, presence, unix_now());
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
            client: if !record.client.is_empty() {
                record.client.clone()
            } else if record.static_device {
                "wireguard".into()
            } else {
                "hearth-agent".into()
            },
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
            key_expiry: record.key_expiry,
        }
    }

    /// Deletes node `id` at `now` in a writer's turn: from the database,
    /// then from every map and index.
    pub(super) async fn remove_node(&self, turn: &Turn<'_>, id: NodeId, now: i64) -> Result<()> {
        self.commit(turn, Change::Removed { id, now }).await?;
        Ok(())
    }
}

impl Coordinator {
    /// Records where the node presenting `credential` can be reached.
    pub async fn report_endpoints(
        &self,
        credential: Option<Credential>,
        report: EndpointReport,
        observed: Option<SocketAddr>,
    ) -> Result<()> {
        let endpoints = from_report(&report, observed)?;
        let mut state = self.state();
        let known: Vec<u16> = state
            .registry
            .network()
            .relays()
            .iter()
            .map(|relay| relay.id)
            .collect();
        let mut record = self.reporting_node(&state, credential)?;
        let whereabouts = Whereabouts {
            endpoints,
            disco_key: report
                .disco_key
                .map(|key| hearth_control::tailcfg::DiscoKey(key.0)),
            home_relay: report.home_relay.filter(|region| known.contains(region)),
        };
        if record.whereabouts() != whereabouts {
            record.set_whereabouts(whereabouts);
            self.apply_reported(&mut state, record);
        }
        Ok(())
    }
}

impl Coordinator {
    /// Records the routes the node presenting `credential` advertises; those the
    /// policy's `autoApprovers` allow are approved at once. And the
    /// services it serves (`svc:name`), which it may then host.
    pub async fn report_routes(
        &self,
        credential: Option<Credential>,
        advertised: Vec<IpNet>,
        services: Vec<String>,
    ) -> Result<()> {
        let advertised = check_advertised(advertised)?;
        if services.len() > hearth_control::c2n::MAX_SERVICES {
            return Err(Error::BadRequest(format!(
                "at most {} services",
                hearth_control::c2n::MAX_SERVICES
            )));
        }
        let mut services = services
            .iter()
            .map(|name| hearth_acl::alias::service_name(name))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|error| Error::BadRequest(error.to_string()))?;
        services.sort();
        services.dedup();
        let turn = self.turn().await;
        let record = {
            let state = self.state();
            let mut record = self.reporting_node(&state, credential)?;
            record.advertised_routes = advertised;
            record.approved_routes =
                approved_under(state.policy.as_ref(), &record, &record.approved_routes);
            record.service_ads.names = services;
            record
        };
        self.commit(&turn, Change::Decided(record)).await?;
        Ok(())
    }

    /// Approves, on every node, the advertised routes the policy's `autoApprovers` allow.
    pub(super) async fn apply_auto_approvals(&self, turn: &Turn<'_>) -> Result<()> {
        let updates: Vec<NodeRecord> = {
            let state = self.state();
            state
                .registry
                .network()
                .nodes()
                .filter_map(|record| {
                    let approved =
                        approved_under(state.policy.as_ref(), record, &record.approved_routes);
                    (approved != record.approved_routes).then(|| NodeRecord {
                        approved_routes: approved,
                        ..record.clone()
                    })
                })
                .collect()
        };
        for record in updates {
            self.commit(turn, Change::Decided(record)).await?;
        }
        Ok(())
    }
}

impl Coordinator {
    /// The soonest time (Unix seconds) an admitted node's keys expire.
    pub async fn next_key_expiry(&self) -> Option<i64> {
        self.state().registry.network().next_key_expiry()
    }

    /// Takes every admitted node whose keys have expired out of the mesh;
    /// their ids.
    pub async fn expire_keys(&self) -> Result<Vec<NodeId>> {
        let now = unix_now();
        let due = self.state().registry.network().keys_expired_at(now);
        for id in &due {
            let changed = self
                .change_node(*id, |_, record| {
                    if must_expire(record, now) {
                        record.state = NodeState::Expired;
                    }
                    Ok(())
                })
                .await;
            match changed {
                Ok(_) => tracing::warn!(
                    node = id,
                    "node keys expired; out of the mesh until approved again"
                ),
                Err(Error::NotFound(_)) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(due)
    }

    /// Replaces the keys of the node presenting `credential` with those in
    /// `request`: a new WireGuard key (its peers get it in a delta) and a
    /// certificate for the new TLS key (the old one stops authenticating).
    /// The keys get a fresh lifetime.
    pub async fn rotate_keys(
        &self,
        credential: Option<Credential>,
        request: &RotateRequest,
    ) -> Result<RotateResponse> {
        let csr = request
            .csr_bytes()
            .ok_or_else(|| Error::BadRequest("csr_der is not base64".into()))?;
        if is_low_order(&request.wireguard_key) {
            return Err(Error::BadRequest(
                "the WireGuard key is a low-order point".into(),
            ));
        }
        let now = unix_now();
        let turn = self.turn().await;
        let (old, holder) = {
            let state = self.state();
            let old = state.registry.presenting(credential)?.clone();
            (old, state.registry.holder_of(&request.wireguard_key))
        };
        crate::admission::check_admitted(&old)?;
        if old.key_expired(now) {
            return Err(Error::NodeNotAdmitted {
                id: old.id,
                state: NodeState::Expired.as_str(),
            });
        }
        match holder {
            Some(other) if other != old.id => return Err(Error::AlreadyRegistered(other)),
            Some(_) => {
                return Err(Error::BadRequest(
                    "the new WireGuard key is the current one".into(),
                ));
            }
            None => {}
        }
        let allowed = hearth_runtime::lock(&self.rotations).allow(
            old.id,
            rotation_interval(old.key_lifetime),
            hearth_runtime::clock::since_epoch(),
        );
        if !allowed {
            tracing::warn!(node = old.id, "a node rotates its keys too often; refused");
            return Err(Error::RateLimited);
        }
        let (certificate_pem, fingerprint) = self
            .authority
            .issue(&csr, &format!("hearth-node-{}", old.id))
            .map_err(|error| Error::BadRequest(error.to_string()))?;
        let mut record = old.clone();
        record.wireguard_key = request.wireguard_key;
        record.cert_fingerprint = Some(fingerprint);
        record.renew_keys(now);
        if !self.commit(&turn, Change::Decided(record.clone())).await? {
            return Err(Error::UnknownNode);
        }
        tracing::info!(node = record.id, name = %record.name, "node keys rotated");
        Ok(RotateResponse {
            node: record.info(),
            client_certificate_pem: certificate_pem,
        })
    }
}

impl Coordinator {
    /// Deletes ephemeral nodes disconnected for longer than the timeout; returns their ids.
    pub async fn collect_ephemeral(&self) -> Result<Vec<NodeId>> {
        let now = unix_now();
        let timeout = i64::try_from(self.settings.ephemeral_timeout.as_secs()).unwrap_or(i64::MAX);
        let idle: Vec<NodeId> = {
            let state = self.state();
            state
                .registry
                .network()
                .nodes()
                .filter(|record| {
                    idle_too_long(record, self.streams.presence(record.id), now, timeout)
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
}

impl Coordinator {
    /// Registers (or re-registers, or logs out) the Tailscale client with
    /// `machine` key, connected from `source`.
    pub async fn register_tailscale(
        &self,
        machine: MachineKey,
        source: Option<std::net::IpAddr>,
        request: tailcfg::RegisterRequest,
    ) -> Result<tailcfg::RegisterResponse> {
        let node_key = WireGuardKey(request.node_key.0);
        if is_low_order(&node_key) {
            return Err(Error::BadRequest(
                "the node key is a low-order point; the client must generate a real key".into(),
            ));
        }
        let hostinfo = request.hostinfo.clone().unwrap_or_default();
        let now = unix_now();
        let turn = self.turn().await;
        let existing = self
            .state()
            .registry
            .presenting(Some(Credential::Machine(machine)))
            .ok()
            .cloned();
        if let Some(mut record) = existing {
            // The pre-auth key that brings an expired node back: its use
            // is consumed in the transaction that stores the node.
            let mut revived_with = None;
            if request.is_logout() {
                drop(turn);
                return self.log_out(record).await;
            }
            let auth_key = request
                .auth
                .as_ref()
                .and_then(|auth| auth.auth_key.as_ref());
            if record.state == NodeState::Rejected {
                return Err(Error::NodeNotAdmitted {
                    id: record.id,
                    state: record.state.as_str(),
                });
            }
            if record.state == NodeState::Expired {
                // Logged out or expired: only a valid pre-auth key brings it
                // back. A client still presenting the expired key is told
                // so: it makes a new one and asks its user to log in.
                let Some(presented) = auth_key else {
                    if record.wireguard_key == node_key {
                        return Ok(key_expired_response(&record));
                    }
                    return Err(Error::InvalidKey);
                };
                let key = self.usable_key(&auth_key_text(presented), now).await?;
                let mut owner = owner_from_key(&key, self.settings.key_lifetime());
                if !revives(&record, &owner) {
                    if let Some(other) = self.state().registry.holder_of(&node_key)
                        && other != record.id
                    {
                        return Err(Error::AlreadyRegistered(other));
                    }
                    let (pending_of_key, pending_of_user) =
                        self.db.pending_counts(key.id, key.user_id).await?;
                    check_pending(key.pre_approved, pending_of_key, pending_of_user)?;
                    self.remove_node(&turn, record.id, now).await?;
                    owner.ephemeral |= request.ephemeral;
                    let joining = Joining {
                        machine,
                        node_key,
                        hostinfo: &hostinfo,
                    };
                    let new = self
                        .admit_tailscale(&turn, joining, owner, Some(key.id), now)
                        .await?;
                    tracing::info!(old = record.id, node = new.id, user = %new.user, state = %new.state,
                        "an expired Tailscale node logged in with another owner's key: a new node replaces it");
                    return Ok(response_for(&new));
                }
                revived_with = Some(key.id);
                record.state = owner.state;
                record.key_lifetime = owner.key_lifetime;
                record.renew_keys(now);
            }
            if record.wireguard_key != node_key {
                // `tailscale up --force-reauth` or a key rotation: the
                // machine key proves it is the same device.
                if let Some(other) = self.state().registry.holder_of(&node_key)
                    && other != record.id
                {
                    return Err(Error::AlreadyRegistered(other));
                }
                record.wireguard_key = node_key;
            }
            record.client = client_name(&hostinfo);
            if !hostinfo.os.is_empty() {
                record.os = os_of(&hostinfo);
            }
            let before_state = self
                .state()
                .registry
                .node(record.id)
                .map(|known| known.state);
            let response = response_for(&record);
            let change = match revived_with {
                Some(key) => Change::Revived {
                    record: record.clone(),
                    key,
                    now,
                },
                None => Change::Decided(record.clone()),
            };
            if !self.commit(&turn, change).await? {
                return Err(Error::NotFound(format!("node {}", record.id)));
            }
            if before_state != Some(record.state) {
                self.streams.notify_state(record.id, record.state);
            }
            return Ok(response);
        }

        let Some(presented) = request
            .auth
            .as_ref()
            .and_then(|auth| auth.auth_key.as_ref())
        else {
            // No key: a login URL whose page names the admin's command.
            drop(turn);
            return self.interactive_login(machine, source, &request).await;
        };
        let key = self.usable_key(&auth_key_text(presented), now).await?;
        if let Some(existing) = self.state().registry.holder_of(&node_key) {
            return Err(Error::AlreadyRegistered(existing));
        }
        let (pending_of_key, pending_of_user) = self.db.pending_counts(key.id, key.user_id).await?;
        check_pending(key.pre_approved, pending_of_key, pending_of_user)?;
        let mut owner = owner_from_key(&key, self.settings.key_lifetime());
        owner.ephemeral |= request.ephemeral;
        let joining = Joining {
            machine,
            node_key,
            hostinfo: &hostinfo,
        };
        let record = self
            .admit_tailscale(&turn, joining, owner, Some(key.id), now)
            .await?;
        tracing::info!(node = record.id, name = %record.name, user = %record.user, state = %record.state, client = %record.client, "Tailscale node registered");
        Ok(response_for(&record))
    }

    /// Stores a new Tailscale node for `joining`, owned as `owner` says
    /// (consuming a use of pre-auth key `key` when it came with one), named
    /// after its hostname, with fresh addresses.
    pub(super) async fn admit_tailscale(
        &self,
        turn: &Turn<'_>,
        joining: Joining<'_>,
        owner: Owner,
        key: Option<i64>,
        now: i64,
    ) -> Result<NodeRecord> {
        let hostname = match joining.hostinfo.hostname.trim() {
            "" => "tailscale",
            name => name,
        };
        self.store_new_node(turn, key, now, |registry| {
            let device = Device {
                name: registry.unique_name(hostname),
                hostname: hostname.chars().take(255).collect(),
                os: os_of(joining.hostinfo),
                key: joining.node_key,
                credential: Some(Credential::Machine(joining.machine)),
                client: client_name(joining.hostinfo),
            };
            let addresses = registry.allocate(now)?;
            Ok(new_record(
                registry.next_id(),
                owner.clone(),
                device,
                addresses,
                now,
            ))
        })
        .await
    }

    /// `tailscale logout`: an ephemeral node is deleted, any other expires
    /// (a pre-auth key brings it back).
    async fn log_out(&self, record: NodeRecord) -> Result<tailcfg::RegisterResponse> {
        // Not `NodeKeyExpired`: a client logging out that is told so makes
        // a new key and registers it again.
        let response = tailcfg::RegisterResponse {
            machine_authorized: false,
            ..response_for(&record)
        };
        if record.ephemeral {
            self.delete_node(record.id).await?;
        } else {
            self.act_on_node(record.id, crate::admission::NodeAction::Expire)
                .await?;
        }
        tracing::info!(node = record.id, name = %record.name, "Tailscale node logged out");
        Ok(response)
    }

    /// Stores what a map request from the Tailscale client with `machine`
    /// key reports (disco key, endpoints, version, advertised routes) and
    /// returns the node as it is now. A request for another node key than
    /// the registered one is refused: the client registers again. What a
    /// node waiting for approval reports is held, not stored, and applied
    /// if an admin approves it (`Coordinator::apply_held_report`); what
    /// an expired or rejected node reports is dropped.
    pub async fn tailscale_map_request(
        &self,
        machine: MachineKey,
        request: &MapRequest,
    ) -> Result<NodeRecord> {
        {
            // Where the node is (the usual report) is applied at once,
            // without a writer's turn; anything more is a change.
            let mut state = self.state();
            let record = state
                .registry
                .presenting(Some(Credential::Machine(machine)))?
                .clone();
            if record.is_admitted()
                && !request.read_only
                && record.wireguard_key.0 == request.node_key.0
            {
                let changed = reported(
                    &record,
                    request,
                    state.registry.network().relays(),
                    state.policy.as_ref(),
                );
                if changed == record {
                    return Ok(record);
                }
                if record.differs_only_in_whereabouts(&changed) {
                    if self.reports.check_key(&record.id).is_err() {
                        tracing::debug!(
                            node = record.id,
                            "a Tailscale client reports too often; update skipped"
                        );
                        return Ok(record);
                    }
                    self.apply_reported(&mut state, changed.clone());
                    return Ok(changed);
                }
            }
        }
        let turn = self.turn().await;
        let record = self
            .state()
            .registry
            .presenting(Some(Credential::Machine(machine)))?
            .clone();
        if record.wireguard_key.0 != request.node_key.0 {
            return Err(Error::UnknownNode);
        }
        if request.read_only {
            return Ok(record);
        }
        if !record.is_admitted() {
            if record.state == NodeState::Pending {
                self.held_reports().insert(record.id, held_report(request));
            }
            return Ok(record);
        }
        self.store_report(&turn, record, request).await
    }

    /// Stores what `request` reports about `record`'s node, unless the
    /// node reports too often.
    async fn store_report(
        &self,
        turn: &Turn<'_>,
        record: NodeRecord,
        request: &MapRequest,
    ) -> Result<NodeRecord> {
        let changed = {
            let state = self.state();
            reported(
                &record,
                request,
                state.registry.network().relays(),
                state.policy.as_ref(),
            )
        };
        if changed == record {
            return Ok(record);
        }
        if self.reports.check_key(&record.id).is_err() {
            tracing::debug!(
                node = record.id,
                "a Tailscale client reports too often; update skipped"
            );
            return Ok(record);
        }
        self.commit(turn, Change::Reported(changed.clone())).await?;
        if changed.service_ads.stale()
            && changed.service_ads.reported != record.service_ads.reported
        {
            // It serves other services now: its map stream asks which.
            self.ask_for_services(changed.id);
        }
        Ok(changed)
    }

    /// Stores what node `id` reported while it waited for approval, now
    /// that it is admitted.
    pub(super) async fn apply_held_report(&self, id: hearth_control::wire::NodeId) -> Result<()> {
        let Some(request) = self.held_reports().remove(&id) else {
            return Ok(());
        };
        let turn = self.turn().await;
        let Some(record) = self.state().registry.node(id).cloned() else {
            return Ok(());
        };
        if record.is_admitted() {
            self.store_report(&turn, record, &request).await?;
        }
        Ok(())
    }

    fn held_reports(
        &self,
    ) -> std::sync::MutexGuard<
        '_,
        std::collections::HashMap<hearth_control::wire::NodeId, MapRequest>,
    > {
        hearth_runtime::lock(&self.held_reports)
    }
}

impl Coordinator {
    /// For a device asking about a certificate with `credential`: the ACME
    /// settings (when devices get certificates), its admitted record, and
    /// the one name it may have a certificate for.
    async fn certificate_name(
        &self,
        credential: Credential,
    ) -> Result<(std::sync::Arc<crate::acme::Acme>, NodeRecord, String)> {
        let acme = self
            .settings()
            .acme
            .clone()
            .filter(|acme| acme.config.device_certificates)
            .ok_or_else(|| {
                Error::NotFound(
                    "certificates: this coordinator gives none (see --acme-config)".into(),
                )
            })?;
        let record = self.identify(Some(credential)).await?;
        check_admitted(&record)?;
        let name = acme
            .device_domain(&record.name)
            .expect("device certificates are on");
        Ok((acme, record, name))
    }

    /// `/machine/set-dns` from the Tailscale client presenting
    /// `credential`: publishes its ACME challenge, for its own name only.
    pub async fn set_acme_challenge(
        &self,
        credential: Credential,
        request: &hearth_control::tailcfg::SetDnsRequest,
    ) -> Result<()> {
        let (acme, record, own) = self.certificate_name(credential).await?;
        if record.wireguard_key.0 != request.node_key.0 {
            return Err(Error::BadRequest(
                "set-dns for a node key that is not the session's node's".into(),
            ));
        }
        let kept = self.settings().own_names();
        let (name, value) =
            zone::check_set_dns(&request.kind, &request.name, &request.value, &own, &kept)
                .map_err(|refusal| {
                    tracing::warn!(node = record.id, %refusal, "a set-dns request was refused");
                    Error::BadRequest(refusal.to_string())
                })?;
        acme.publish(&name, &value);
        tracing::info!(node = record.id, %name, "ACME challenge published");
        Ok(())
    }
}

impl Coordinator {
    /// A certificate for the MagicDNS name of the node presenting
    /// `credential` (a Hearth agent's `cert`): its request must name that
    /// name alone; the coordinator answers the CA's challenge and hands
    /// back the chain. One at a time per node, a few a week.
    pub async fn issue_certificate(
        &self,
        credential: Credential,
        request: &hearth_control::wire::CertRequest,
    ) -> Result<hearth_control::wire::CertResponse> {
        let (acme, record, domain) = self.certificate_name(credential).await?;
        let csr = request
            .csr_bytes()
            .ok_or_else(|| Error::BadRequest("csr_der is not base64".into()))?;
        crate::acme::request::check_request(&csr, &domain)
            .map_err(|refused| Error::BadRequest(refused.to_string()))?;
        // Every order counts, whether the CA issues or not, and the count
        // is the database's: a restart or another coordinator forgets none.
        let now = unix_now();
        let window = crate::acme::ORDER_WINDOW_SECONDS;
        let this_week = self
            .db
            .certificate_orders_since(record.id, now - window)
            .await?;
        acme.issuance()
            .begin(record.id, this_week)
            .map_err(|not_now| Error::TooManyPending(not_now.to_string()))?;
        let recorded = self
            .db
            .record_certificate_order(record.id, now, now - window)
            .await;
        if let Err(error) = recorded {
            acme.issuance().end(record.id);
            return Err(error.into());
        }
        tracing::info!(node = record.id, %domain, "getting a certificate for a device");
        let chain = acme.certify_device(&domain, &csr).await;
        acme.issuance().end(record.id);
        match chain {
            Ok(chain_pem) => {
                tracing::info!(node = record.id, %domain, "certificate issued for a device");
                Ok(hearth_control::wire::CertResponse { domain, chain_pem })
            }
            Err(error) => {
                tracing::warn!(node = record.id, %domain, error = format!("{error:#}"), "no certificate for a device");
                Err(Error::Upstream(format!(
                    "the certificate authority did not issue one: {error:#}"
                )))
            }
        }
    }
}

impl Coordinator {
    pub(super) fn ssh_checks(&self) -> std::sync::MutexGuard<'_, SshChecks> {
        hearth_runtime::lock(&self.ssh_checks)
    }

    /// The node presenting `credential` asks whether `from` may log in to
    /// it as `local_user`; it must be the node the session is for.
    pub async fn ask_ssh_check(
        &self,
        credential: Credential,
        from: NodeId,
        to: NodeId,
        ssh_user: &str,
        local_user: &str,
        period: u64,
    ) -> Result<Asked> {
        self.check_session_node(credential, to).await?;
        let asked = self
            .ssh_checks()
            .ask(from, to, ssh_user, local_user, period, unix_now())?;
        if let Asked::Waiting(id) = asked {
            tracing::info!(
                id,
                from,
                to,
                local_user,
                "a Tailscale SSH session waits for `ssh approve`"
            );
        }
        Ok(asked)
    }

    /// The node presenting `credential` waits (at most [`DECISION_HOLD`])
    /// for an admin's decision on its check `id`; it must be node `to`,
    /// the one the session is for (a decision is collected once).
    pub async fn await_ssh_check(
        &self,
        credential: Credential,
        id: u64,
        to: NodeId,
    ) -> Result<CheckState> {
        self.check_session_node(credential, to).await?;
        let deadline = tokio::time::Instant::now() + DECISION_HOLD;
        loop {
            let decided = self.ssh_checks_decided.notified();
            let state = self.ssh_checks().state(id, to, unix_now());
            if state != CheckState::Waiting {
                return Ok(state);
            }
            if tokio::time::timeout_at(deadline, decided).await.is_err() {
                return Ok(CheckState::Waiting);
            }
        }
    }

    /// Only the node a session is for may ask about it, or collect its
    /// decision.
    async fn check_session_node(&self, credential: Credential, to: NodeId) -> Result<()> {
        if self.identify(Some(credential)).await?.id == to {
            Ok(())
        } else {
            Err(Error::BadRequest(
                "a node asks only about sessions to itself".into(),
            ))
        }
    }
}

impl Admission for Coordinator {
    async fn admits(&self, key: &[u8; 32]) -> bool {
        self.admits_node_key(&WireGuardKey(*key)).await
    }
}

impl Coordinator {
    /// Takes nodes whose keys expired out of the mesh as each expiry comes:
    /// it sleeps until the soonest one, or until a node changes (its deadline
    /// may be sooner now), instead of scanning every node four times a second.
    /// Tells each node's agents when its peers connect to the coordinator
    /// or leave it ([`MapChange::Presence`](hearth_control::wire::MapChange)),
    /// until `stop`: a model server whose agent is down leaves the
    /// gateway's lists at once. A listener that fell behind tells every
    /// node the whole picture again.
    pub(crate) async fn run_presence(
        self: std::sync::Arc<Self>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        use hearth_control::wire::{MapChange, MapMessage};
        use tokio::sync::broadcast::error::RecvError;
        let mut changes = self.presence_changes();
        loop {
            let change = tokio::select! {
                _ = stop.wait_for(|stopped| *stopped) => return,
                change = changes.recv() => change,
            };
            let deliveries = match change {
                Ok((node, online)) => {
                    let (online, offline) = if online {
                        (vec![node], Vec::new())
                    } else {
                        (Vec::new(), vec![node])
                    };
                    vec![crate::netmap::Delivery {
                        recipients: self.state().registry.network().peers_of(node),
                        message: MapMessage::Delta {
                            changes: vec![MapChange::Presence { online, offline }],
                        },
                    }]
                }
                Err(RecvError::Lagged(_)) => {
                    let state = self.state();
                    let network = state.registry.network();
                    self.online_nodes()
                        .into_iter()
                        .map(|node| {
                            let (online, offline) =
                                self.streams.presence_of(&network.peers_of(node));
                            crate::netmap::Delivery {
                                recipients: vec![node],
                                message: MapMessage::Delta {
                                    changes: vec![MapChange::Presence { online, offline }],
                                },
                            }
                        })
                        .collect()
                }
                Err(RecvError::Closed) => return,
            };
            self.deliver(&deliveries);
        }
    }

    pub(crate) async fn run_key_expiry(
        self: std::sync::Arc<Self>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            let wait = match self.expire_keys().await {
                Ok(_) => self
                    .next_key_expiry()
                    .await
                    .map_or(LONGEST_EXPIRY_NAP, |at| time_until(at, SystemTime::now()))
                    .min(LONGEST_EXPIRY_NAP),
                Err(error) => {
                    tracing::warn!(%error, "key expiry failed");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                _ = stop.wait_for(|stopped| *stopped) => return,
                () = tokio::time::sleep(wait) => {}
                () = self.nodes_changed.notified() => {}
            }
        }
    }
}
