//! Tailscale Services as use cases: the admin's (`services list`,
//! `create`, `move`, `delete`), what a client says it serves, and keeping
//! each service on its host ([`crate::services`] decides; this stores and
//! delivers).

use hearth_control::tailcfg::MachineKey;
use hearth_control::wire::NodeId;
use serde::{Deserialize, Serialize};

use super::{Change, Coordinator, Turn, unix_now};
use crate::db::services::ServiceRow;
use crate::error::{Error, Result};
use crate::netmap::{Credential, NodeRecord};
use crate::services::{Host, Service, allocate, host_of, missing, placement};

/// A service as `services list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceView {
    /// `svc:name`.
    pub name: String,
    /// Its MagicDNS name (`chat.<tailnet>`).
    pub dns_name: String,
    /// Its addresses.
    pub addresses: Vec<std::net::IpAddr>,
    /// The device hosting it now (its name), if any.
    pub host: Option<String>,
    /// Why: `chosen` (the admin moved it there), `approved` (it
    /// advertises the service and autoApprovers allow it), or `none`.
    pub placed: String,
    /// Whether the policy names it (then it cannot be deleted).
    pub in_policy: bool,
    /// The devices that say they serve it.
    pub advertised_by: Vec<String>,
}

/// Body of `services move`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveBody {
    /// The device (its id or name) to host the service; `None`: leave it
    /// to the policy's autoApprovers.
    pub to: Option<String>,
}

impl Coordinator {
    /// `services list`.
    pub async fn list_services(&self) -> Vec<ServiceView> {
        let state = self.state();
        let named = state
            .policy
            .as_ref()
            .map(hearth_acl::Policy::service_names)
            .unwrap_or_default();
        let nodes: Vec<&NodeRecord> = state.registry.network().nodes().collect();
        let name_of = |id: NodeId| {
            nodes
                .iter()
                .find(|node| node.id == id)
                .map(|node| node.name.clone())
        };
        state
            .services
            .iter()
            .map(|service| {
                let host = host_of(service, nodes.iter().copied(), state.policy.as_ref());
                ServiceView {
                    name: service.name.clone(),
                    dns_name: format!("{}.{}", service.label(), self.settings.base_domain),
                    addresses: service.addresses(),
                    host: host.node().and_then(name_of),
                    placed: match host {
                        Host::Chosen(_) => "chosen",
                        Host::Approved(_) => "approved",
                        Host::Nobody => "none",
                    }
                    .to_owned(),
                    in_policy: named.contains(&service.name),
                    advertised_by: nodes
                        .iter()
                        .filter(|node| node.service_ads.names.contains(&service.name))
                        .map(|node| node.name.clone())
                        .collect(),
                }
            })
            .collect()
    }

    /// `services create NAME`: a service with the next free addresses,
    /// hosted by no one until a device advertises it or the admin moves it.
    pub async fn create_service(&self, name: &str) -> Result<ServiceView> {
        let name = hearth_acl::alias::service_name(name)
            .map_err(|error| Error::BadRequest(error.to_string()))?;
        {
            let turn = self.turn().await;
            if self
                .state()
                .services
                .iter()
                .any(|service| service.name == name)
            {
                return Err(Error::BadRequest(format!("{name} already exists")));
            }
            let service = allocate(&self.state().services, name.clone()).ok_or_else(|| {
                Error::BadRequest("all 254 service addresses (100.100.0.x) are taken".into())
            })?;
            self.db.insert_service(&row_of(&service)).await?;
            self.state().services.push(service);
            self.claim_service_names(&turn).await?;
            self.place_services(&turn);
        }
        self.service_view(&name).await
    }

    /// `services move NAME --to NODE` (or `--auto`): the device hosting the
    /// service from now on; its name and addresses stay.
    pub async fn move_service(&self, name: &str, to: Option<&str>) -> Result<ServiceView> {
        {
            let turn = self.turn().await;
            let host = match to {
                Some(node) => Some(self.node_called(node)?),
                None => None,
            };
            if !self
                .db
                .set_service_host(name, host.map(|id| id as i64))
                .await?
            {
                return Err(Error::NotFound(format!("service {name}")));
            }
            if let Some(service) = self
                .state()
                .services
                .iter_mut()
                .find(|service| service.name == name)
            {
                service.host = host;
            }
            self.place_services(&turn);
        }
        self.service_view(name).await
    }

    /// `services delete NAME`: refused while the policy names it.
    pub async fn delete_service(&self, name: &str) -> Result<()> {
        let turn = self.turn().await;
        let named = self
            .state()
            .policy
            .as_ref()
            .is_some_and(|policy| policy.service_names().contains(name));
        if named {
            return Err(Error::BadRequest(format!(
                "the policy names {name}: take it out of the policy first"
            )));
        }
        if !self.db.delete_service(name).await? {
            return Err(Error::NotFound(format!("service {name}")));
        }
        self.state().services.retain(|service| service.name != name);
        self.claim_service_names(&turn).await?;
        self.place_services(&turn);
        Ok(())
    }

    /// What the Tailscale client with `machine` says it serves: its answer
    /// to `GET /vip-services`, the raw HTTP response it posted.
    pub async fn report_vip_services(&self, machine: MachineKey, reply: &[u8]) -> Result<()> {
        let services = hearth_control::c2n::parse_vip_services(reply)
            .map_err(|error| Error::BadRequest(error.to_string()))?;
        let turn = self.turn().await;
        let mut record = self
            .state()
            .registry
            .presenting(Some(Credential::Machine(machine)))?
            .clone();
        record.service_ads.fetched = services.hash;
        record.service_ads.names = services.active;
        tracing::info!(
            node = record.id,
            services = ?record.service_ads.names,
            "a client says which services it serves"
        );
        self.commit(&turn, Change::Decided(record)).await?;
        Ok(())
    }

    /// Asks node `id`'s client (its map stream) which services it serves.
    pub(super) fn ask_for_services(&self, id: NodeId) {
        let _ = self.service_asks.send(id);
    }

    /// Node ids whose clients are to be asked which services they serve.
    pub fn service_asks(&self) -> tokio::sync::broadcast::Receiver<NodeId> {
        self.service_asks.subscribe()
    }

    /// Creates the services the policy in force names and lacks (stored,
    /// then read back), and places them all.
    pub(super) async fn create_policy_services(&self, turn: &Turn<'_>) -> Result<()> {
        let created = {
            let state = self.state();
            missing(&state.services, state.policy.as_ref())
        };
        if created.is_empty() {
            self.claim_service_names(turn).await?;
            self.place_services(turn);
            return Ok(());
        }
        for service in created {
            match self.db.insert_service(&row_of(&service)).await {
                // Another coordinator on the database created it first:
                // its row is read back below.
                Ok(()) | Err(crate::db::DbError::Conflict(_)) => {}
                Err(error) => return Err(error.into()),
            }
        }
        self.reload_services(turn).await
    }

    /// Reads the services again (another coordinator changed them) and
    /// places them.
    pub(super) async fn reload_services(&self, turn: &Turn<'_>) -> Result<()> {
        let rows = self.db.list_services().await?;
        self.state().services = services_of(&rows);
        self.claim_service_names(turn).await?;
        self.place_services(turn);
        Ok(())
    }

    /// Keeps the services' names from every device: their labels are
    /// reserved (a registration called `chat` becomes `chat-2`, a rename
    /// to it is refused), and a device already called so is renamed away,
    /// which the log says. Without it, a member's device called `chat`
    /// answered `chat.<tailnet>` before the household's chat did, and
    /// members' apps sent their prompts to it.
    pub(super) async fn claim_service_names(&self, turn: &Turn<'_>) -> Result<()> {
        let renamed: Vec<NodeRecord> = {
            let mut state = self.state();
            let labels: Vec<String> = state
                .services
                .iter()
                .map(|service| service.label().to_owned())
                .chain(
                    state
                        .policy
                        .as_ref()
                        .map(hearth_acl::Policy::service_names)
                        .unwrap_or_default()
                        .iter()
                        .map(|name| hearth_acl::alias::service_label(name).to_owned()),
                )
                .collect();
            let holders = state.registry.set_service_labels(labels);
            holders
                .into_iter()
                .filter_map(|id| {
                    let mut record = state.registry.node(id).cloned()?;
                    record.name = state.registry.unique_name(&record.name);
                    Some(record)
                })
                .collect()
        };
        for record in renamed {
            let label = self
                .state()
                .registry
                .node(record.id)
                .map(|before| before.name.clone())
                .unwrap_or_default();
            tracing::warn!(
                node = record.id,
                was = %label,
                now = %record.name,
                "a device had the name of the household's service svc:{label}; renamed (members reach the service by that name)"
            );
            self.commit(turn, Change::Decided(record)).await?;
        }
        Ok(())
    }

    /// Puts each service on its host as things stand, and delivers what
    /// changes.
    pub(super) fn place_services(&self, _turn: &Turn<'_>) {
        let mut state = self.state();
        if state.services.is_empty() && !state.registry.hosts_any() {
            // Nothing to place (most tailnets): no pass over every node.
            return;
        }
        let nodes: Vec<&NodeRecord> = state.registry.network().nodes().collect();
        let hosting = placement(&state.services, nodes, state.policy.as_ref());
        let deliveries = state.registry.set_hosting(hosting);
        drop(state);
        self.deliver(&deliveries);
    }

    async fn service_view(&self, name: &str) -> Result<ServiceView> {
        self.list_services()
            .await
            .into_iter()
            .find(|view| view.name == name)
            .ok_or_else(|| Error::NotFound(format!("service {name}")))
    }

    /// The node with id or name `node`.
    fn node_called(&self, node: &str) -> Result<NodeId> {
        let state = self.state();
        let mut nodes = state.registry.network().nodes();
        let found = match node.parse::<NodeId>() {
            Ok(id) => nodes.find(|record| record.id == id),
            Err(_) => nodes.find(|record| record.name == node),
        };
        found
            .map(|record| record.id)
            .ok_or_else(|| Error::NotFound(format!("node {node}")))
    }
}

/// The services stored rows hold; a row that does not read is left out,
/// and said so.
pub(super) fn services_of(rows: &[ServiceRow]) -> Vec<Service> {
    rows.iter()
        .filter_map(|row| {
            let service = Service::from_row(row);
            if service.is_none() {
                tracing::error!(name = %row.name, "a stored service does not read; left out");
            }
            service
        })
        .collect()
}

fn row_of(service: &Service) -> ServiceRow {
    ServiceRow {
        name: service.name.clone(),
        ipv4: service.ipv4.to_string(),
        ipv6: service.ipv6.to_string(),
        host: service.host.map(|id| id as i64),
        created_at: unix_now(),
    }
}
