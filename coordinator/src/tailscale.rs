//! Nodes running the official Tailscale client: registration with a
//! pre-auth key under the same rules as `hearth-agent` nodes, and what their
//! map requests report (keys, endpoints, routes). A Tailscale node is known
//! by the machine key of its ts2021 session ([`Credential::Machine`]); the
//! decisions are pure ([`endpoints_from`], [`client_name`], [`response_for`]).

use std::net::SocketAddr;

use hearth_control::tailcfg::{
    Hostinfo, Login, MachineKey, MapRequest, RegisterRequest, RegisterResponse, Service, User,
};
use hearth_control::wire::{NodeState, PeerService, WireGuardKey};
use hearth_control::{JoinToken, SecretString};
use zeroize::Zeroizing;

use crate::coordinator::{Coordinator, Credential, State, Turn};
use crate::db::preauth_keys::consume_preauth_key;
use crate::endpoints::{MAX_LOCAL, usable};
use crate::error::{Error, Result};
use crate::netmap::NodeRecord;
use crate::registration::{Device, Owner, check_pending, is_low_order, new_record, owner_from_key};
use crate::routes::check_advertised;
use hearth_runtime::clock::unix_seconds as unix_now;

/// The endpoints a Tailscale client reports, as stored: no port 0, no
/// unspecified address, no duplicates, at most a bounded number.
pub fn endpoints_from(reported: &[SocketAddr]) -> Vec<SocketAddr> {
    usable(reported.iter().copied(), MAX_LOCAL)
}

/// How `nodes list` names the client: `tailscale` and its short version.
pub fn client_name(hostinfo: &Hostinfo) -> String {
    let version = hostinfo
        .ipn_version
        .split('-')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .take(32)
        .collect::<String>();
    if version.is_empty() {
        "tailscale".to_owned()
    } else {
        format!("tailscale {version}")
    }
}

/// A Tailscale client about to become a node.
pub struct Joining<'a> {
    /// Its machine key.
    pub machine: MachineKey,
    /// Its node (WireGuard) key.
    pub node_key: WireGuardKey,
    /// What it reported about itself.
    pub hostinfo: &'a Hostinfo,
}

/// Whether a pre-auth key making `owner` may bring back the expired node
/// `record` as it was (address, name, history): only when it gives the
/// same owner, the same user and the same tags. A key of anyone else
/// makes a new node, exactly as a first registration with it would (the
/// stolen-laptop case: the thief's key does not inherit the owner's
/// identity, address or approval).
pub fn revives(record: &NodeRecord, owner: &Owner) -> bool {
    record.user_id == owner.user_id && record.tags == owner.tags
}

/// What the client is told about its registration.
pub fn response_for(record: &NodeRecord) -> RegisterResponse {
    RegisterResponse {
        user: User {
            id: record.user_id,
            display_name: record.user.clone(),
        },
        login: Login {
            id: record.user_id,
            provider: "hearth".into(),
            login_name: record.user.clone(),
            display_name: record.user.clone(),
        },
        node_key_expired: false,
        machine_authorized: record.is_admitted(),
        auth_url: String::new(),
        error: String::new(),
    }
}

/// What a client registering a node key that has expired is told
/// (`NodeKeyExpired`): not authorized until its user logs in again.
pub fn key_expired_response(record: &NodeRecord) -> RegisterResponse {
    RegisterResponse {
        node_key_expired: true,
        machine_authorized: false,
        ..response_for(record)
    }
}

/// A registration refused, as the client shows it (`tailscale up` prints
/// the `Error` field).
pub fn refusal(error: &Error) -> RegisterResponse {
    RegisterResponse {
        error: error.to_string(),
        ..RegisterResponse::default()
    }
}

/// The pre-auth key in what a client passed as `--authkey`: the key
/// itself, or the whole join token `preauthkeys create` prints (so an admin
/// hands out one thing to `hearth-agent` and Tailscale users alike).
pub fn auth_key_text(presented: &SecretString) -> Zeroizing<String> {
    match JoinToken::decode(presented.expose().trim()) {
        Ok(token) => Zeroizing::new(token.key.expose().to_owned()),
        Err(_) => Zeroizing::new(presented.expose().trim().to_owned()),
    }
}

fn os_of(hostinfo: &Hostinfo) -> String {
    hostinfo.os.chars().take(64).collect()
}

impl Coordinator {
    /// Registers (or re-registers, or logs out) the Tailscale client with
    /// `machine` key, connected from `source`.
    pub async fn register_tailscale(
        &self,
        machine: MachineKey,
        source: Option<std::net::IpAddr>,
        request: RegisterRequest,
    ) -> Result<RegisterResponse> {
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
                let mut transaction = self.db.begin().await?;
                if !consume_preauth_key(&mut transaction, key.id, now).await? {
                    return Err(Error::KeyUsed);
                }
                transaction.commit().await?;
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
            self.store_changed(&turn, record.clone()).await?;
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
    pub(crate) async fn admit_tailscale(
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
    async fn log_out(&self, record: NodeRecord) -> Result<RegisterResponse> {
        // Not `NodeKeyExpired`: a client logging out that is told so makes
        // a new key and registers it again.
        let response = RegisterResponse {
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
    /// if an admin approves it ([`Coordinator::apply_held_report`]); what
    /// an expired or rejected node reports is dropped.
    pub async fn tailscale_map_request(
        &self,
        machine: MachineKey,
        request: &MapRequest,
    ) -> Result<NodeRecord> {
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
        let changed = reported(&record, request, &self.state());
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
        self.store_changed(turn, changed.clone()).await?;
        Ok(changed)
    }

    /// Stores what node `id` reported while it waited for approval, now
    /// that it is admitted.
    pub(crate) async fn apply_held_report(&self, id: hearth_control::wire::NodeId) -> Result<()> {
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

/// What is kept of a waiting node's report: the fields a report changes,
/// bounded as they are when stored.
fn held_report(request: &MapRequest) -> MapRequest {
    let hostinfo = request.hostinfo.as_ref().map(|hostinfo| Hostinfo {
        os: hostinfo.os.chars().take(64).collect(),
        ipn_version: hostinfo.ipn_version.chars().take(64).collect(),
        routable_ips: hostinfo.routable_ips.iter().take(256).copied().collect(),
        net_info: hostinfo.net_info.clone(),
        ..Hostinfo::default()
    });
    MapRequest {
        node_key: request.node_key,
        disco_key: request.disco_key,
        endpoints: endpoints_from(&request.endpoints),
        hostinfo,
        ..MapRequest::default()
    }
}

/// `record` as `request` reports it: disco key, endpoints, home relay
/// (one `state` knows), client version, OS and advertised routes (approved
/// as the policy's autoApprovers say). Pure.
/// The services a client reports that its peers are told of: its peer
/// API's ports (what Taildrop sends to), each kind once; nothing else a
/// client lists (its open ports) leaves it.
fn peer_services(services: &[Service]) -> Vec<PeerService> {
    const SHARED: [&str; 3] = ["peerapi4", "peerapi6", "peerapi-dns-proxy"];
    let mut kept: Vec<PeerService> = services
        .iter()
        .filter(|service| SHARED.contains(&service.proto.as_str()) && service.port != 0)
        .map(|service| PeerService {
            proto: service.proto.clone(),
            port: service.port,
        })
        .collect();
    kept.sort();
    kept.dedup_by(|a, b| a.proto == b.proto);
    kept
}

/// The SSH host keys a client reports, as its peers' `known_hosts` take
/// them: OpenSSH public key lines of a known type, at most eight, each
/// under 2 KiB.
fn ssh_host_keys(keys: &[String]) -> Vec<String> {
    const TYPES: [&str; 4] = ["ssh-ed25519 ", "ecdsa-sha2-", "ssh-rsa ", "sk-"];
    keys.iter()
        .filter(|key| key.len() < 2048 && !key.contains(['\n', '\r']))
        .filter(|key| TYPES.iter().any(|kind| key.starts_with(kind)))
        .take(8)
        .cloned()
        .collect()
}

fn reported(record: &NodeRecord, request: &MapRequest, state: &State) -> NodeRecord {
    let mut changed = record.clone();
    if !request.disco_key.is_zero() {
        changed.disco_key = Some(request.disco_key);
    }
    if !request.endpoints.is_empty() {
        changed.endpoints = endpoints_from(&request.endpoints);
    }
    if let Some(hostinfo) = &request.hostinfo {
        if let Some(net_info) = &hostinfo.net_info {
            let region = net_info.preferred_derp;
            changed.home_relay = state
                .registry
                .network()
                .relays()
                .iter()
                .any(|relay| relay.id == region)
                .then_some(region);
        }
        changed.client = client_name(hostinfo);
        changed.services = peer_services(&hostinfo.services);
        changed.ssh_host_keys = ssh_host_keys(&hostinfo.ssh_host_keys);
        if !hostinfo.os.is_empty() {
            changed.os = os_of(hostinfo);
        }
        if let Ok(advertised) = check_advertised(hostinfo.routable_ips.clone())
            && advertised != changed.advertised_routes
        {
            changed.advertised_routes = advertised;
            changed.approved_routes = crate::routes::approved_under(
                state.policy.as_ref(),
                &changed,
                &changed.approved_routes,
            );
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_peer_api_ports_of_what_a_client_offers_reach_its_peers() {
        let service = |proto: &str, port| Service {
            proto: proto.into(),
            port,
        };
        let reported = [
            service("tcp", 22),
            service("peerapi6", 41000),
            service("peerapi4", 40000),
            service("peerapi4", 40001),
            service("peerapi-dns-proxy", 1),
            service("peerapi6", 0),
            service("udp", 53),
        ];
        let kept: Vec<String> = peer_services(&reported)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            kept,
            ["peerapi-dns-proxy:1", "peerapi4:40000", "peerapi6:41000"]
        );
    }

    #[test]
    fn reported_endpoints_are_cleaned_and_bounded() {
        let reported: Vec<SocketAddr> = [
            "10.0.0.2:41641",
            "0.0.0.0:41641",
            "10.0.0.2:41641",
            "10.0.0.3:0",
            "[fd00::2]:41641",
        ]
        .iter()
        .map(|text| text.parse().unwrap())
        .collect();
        assert_eq!(
            endpoints_from(&reported),
            [reported[0], reported[4]],
            "no unspecified address, no port 0, no duplicate"
        );
        let flood: Vec<SocketAddr> = (1..=100)
            .map(|port| SocketAddr::from(([10, 0, 0, 2], port)))
            .collect();
        assert_eq!(endpoints_from(&flood).len(), MAX_LOCAL);
    }

    #[test]
    fn only_the_same_owner_and_tags_revive_an_expired_node() {
        let owner = |user_id: i64, tags: &[&str]| Owner {
            user_id,
            user: String::new(),
            tags: tags.iter().map(|tag| (*tag).to_owned()).collect(),
            ephemeral: false,
            state: NodeState::Pending,
            key_lifetime: None,
        };
        let device = Device {
            name: "laptop".into(),
            hostname: "laptop".into(),
            os: "linux".into(),
            key: WireGuardKey([9; 32]),
            credential: Some(Credential::Machine(MachineKey([8; 32]))),
            client: "tailscale".into(),
        };
        let addresses = (
            "100.64.0.3".parse().unwrap(),
            "fd7a:115c:a1e0::3".parse().unwrap(),
        );
        let record = new_record(3, owner(7, &[]), device, addresses, 0);
        assert!(revives(&record, &owner(record.user_id, &[])));
        assert!(
            !revives(&record, &owner(record.user_id + 1, &[])),
            "another user"
        );
        assert!(
            !revives(&record, &owner(record.user_id, &["tag:server"])),
            "the same user's tagged key makes a tagged node, not this one"
        );
    }

    #[test]
    fn the_client_is_named_with_its_short_version() {
        let hostinfo = Hostinfo {
            ipn_version: "1.96.4-tdeadbeef-gcafe".into(),
            ..Hostinfo::default()
        };
        assert_eq!(client_name(&hostinfo), "tailscale 1.96.4");
        assert_eq!(client_name(&Hostinfo::default()), "tailscale");
        let hostile = Hostinfo {
            ipn_version: "1.0\u{1b}[31m;rm".into(),
            ..Hostinfo::default()
        };
        assert_eq!(client_name(&hostile), "tailscale 1.031mrm");
    }
}
