//! `hearth-agent up`: join, then keep WireGuard and the firewall in step with
//! the coordinator's map until stopped.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use hearth_acl::Filter;
use hearth_control::wire::{EndpointReport, MapMessage, NodeId, RelayRegion, RoutesReport};
use hearth_control::{ControlClient, JoinToken};
use ipnet::IpNet;
use tokio::sync::{mpsc, watch};
use zeroize::Zeroizing;

use crate::control::{FollowEnd, follow_map, register, wait_for_approval};
use crate::dataplane::{BackendChoice, DataPlane, PeerConfig};
use crate::discovery::{local_endpoints, stun_query};
use crate::endpoint::EndpointChoice;
use crate::error::AgentError;
use crate::firewall::Firewall;
use crate::local_api::{AgentState, CoordinatorStatus};
use crate::mesh::{Applied, MeshChanges};
use crate::netcfg;
use crate::plan::{endpoint_moves, plan};
use crate::state::StateDir;

/// Where to ask which address this node is seen at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StunChoice {
    /// Port 3478 of the coordinator's host.
    Coordinator,
    /// This server.
    Server(SocketAddr),
    /// Do not ask.
    Off,
}

/// Everything `up` can be told.
#[derive(Clone, Debug)]
pub struct UpOptions {
    /// The state directory.
    pub state_dir: PathBuf,
    /// The join token (only needed the first time).
    pub token: Option<Zeroizing<String>>,
    /// The name to register with (default: the machine's hostname).
    pub hostname: Option<String>,
    /// The mesh interface name.
    pub interface: String,
    /// Kernel or userspace WireGuard.
    pub backend: BackendChoice,
    /// WireGuard UDP port.
    pub port: u16,
    /// MTU of the mesh interface.
    pub mtu: u32,
    /// Subnet routes to offer.
    pub advertise_routes: Vec<IpNet>,
    /// Offer this node as an exit node.
    pub advertise_exit_node: bool,
    /// Tailscale Services it serves (`svc:name`).
    pub advertise_services: Vec<String>,
    /// Be a peer relay on this UDP port.
    pub relay_server_port: Option<u16>,
    /// Addresses it is reached at besides its interfaces' (a published or
    /// forwarded port), reported with them.
    pub endpoints: Vec<SocketAddr>,
    /// Where the coordinator is dialed instead of its URL's address
    /// ([`crate::dial`]).
    pub coordinator_address: Option<SocketAddr>,
    /// STUN server choice.
    pub stun: StunChoice,
    /// A second socket that answers only `whois`, mode 0660 with this group
    /// (for services in containers that run as another user).
    pub whois_socket: Option<(PathBuf, u32)>,
    /// Answer the mesh's names at 100.100.100.100 (MagicDNS).
    pub magic_dns: bool,
    /// Also point the system resolver (systemd-resolved) at it for the
    /// mesh's domains. Off for an agent in a network namespace: the
    /// system's resolver serves the host's namespace, not the agent's.
    pub point_system_resolver: bool,
}

/// The machine's hostname.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "node".into())
}

/// Runs the agent until `shutdown` completes or a fatal error occurs, then
/// removes the interface and the firewall table.
pub async fn up(options: UpOptions, shutdown: impl Future<Output = ()>) -> Result<(), AgentError> {
    let state = StateDir::open(&options.state_dir)?;
    if state.recover_rotation()? {
        tracing::info!("completed a key rotation interrupted by the last stop");
    }
    let (private_key, public_key) = state.wireguard_key()?;
    let identity = match state.load_identity()? {
        Some(identity) => {
            if options.token.is_some() {
                println!(
                    "Already registered as node {} ({}); the token is not needed.",
                    identity.node_id, identity.name
                );
            }
            identity
        }
        None => {
            let text = options.token.as_ref().ok_or(AgentError::NoToken)?;
            let token = JoinToken::decode(text)?;
            if let Some(address) = options.coordinator_address {
                crate::dial::set(&token.url, address);
            }
            let hostname = options.hostname.clone().unwrap_or_else(hostname);
            register(&state, &token, &hostname, public_key).await?
        }
    };
    if let Some(address) = options.coordinator_address {
        crate::dial::set(&identity.url, address);
    }
    let fingerprint = identity.fingerprint()?;
    let client = ControlClient::new(
        &crate::dial::url(&identity.url),
        fingerprint,
        Some(&state.tls()?),
    )?;

    let plane = {
        let (interface, backend, port) = (options.interface.clone(), options.backend, options.port);
        let key = private_key.clone();
        tokio::task::spawn_blocking(move || DataPlane::create(&interface, backend, &key, port))
            .await
            .map_err(|error| AgentError::Setup(error.to_string()))??
    };
    // The relay login proves the node key: the relay client keeps a copy.
    let relay_secret = crate::rotation::relay_secret(&private_key);
    drop(private_key);
    let plane = Arc::new(plane);
    let result = run_with_plane(
        &options,
        &state,
        &client,
        &identity,
        Arc::clone(&plane),
        relay_secret,
        shutdown,
    )
    .await;
    if let Ok(plane) = Arc::try_unwrap(plane) {
        let _ = tokio::task::spawn_blocking(move || plane.destroy()).await;
    }
    result
}

async fn run_with_plane(
    options: &UpOptions,
    state: &StateDir,
    client: &ControlClient,
    identity: &crate::state::Identity,
    plane: Arc<DataPlane>,
    relay_secret: Option<Zeroizing<[u8; 32]>>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    netcfg::bring_up(&options.interface, options.mtu).await?;
    plane.set_mtu(options.mtu);
    let mut firewall = Firewall::new(&options.interface);
    // Nothing from the mesh is accepted until the first map says otherwise.
    firewall
        .apply(&Filter::default(), &[], std::iter::empty())
        .await?;
    tracing::info!(interface = %options.interface, backend = ?plane.backend(), port = plane.listen_port(), "mesh interface up");

    let shared = Arc::new(AgentState {
        mesh: RwLock::default(),
        stats: RwLock::default(),
        coordinator: RwLock::new(CoordinatorStatus {
            url: identity.url.clone(),
            ..CoordinatorStatus::default()
        }),
        backend: plane.backend(),
        interface: options.interface.clone(),
        listen_port: plane.listen_port(),
        generation: tokio::sync::watch::channel(0).0,
        relays: Arc::default(),
        plane: Arc::clone(&plane),
        certificates: Arc::new(crate::certs::Certificates::new(
            state.certs_dir(),
            client.clone(),
        )),
    });
    let renewal_task = tokio::spawn({
        let named = Arc::clone(&shared);
        Arc::clone(&shared.certificates).renew(
            move || crate::certs::own_name(&hearth_runtime::read(&named.mesh)),
            shared.generation.subscribe(),
        )
    });
    // Relays and disco: only the userspace data plane can use them.
    let (regions, regions_seen) = watch::channel(Vec::new());
    let (home_sender, home) = watch::channel(None);
    // The relay login's secret, replaced when the keys rotate.
    let (secrets, secrets_seen) = watch::channel(relay_secret.clone().unwrap_or_default());
    match (plane.device(), options.relay_server_port) {
        (Some(device), Some(port)) => {
            device.serve_peer_relay(port)?;
        }
        (None, Some(_)) => {
            tracing::warn!("a peer relay needs the userspace data plane; not relaying")
        }
        _ => {}
    }
    let relay_task = match (plane.device(), relay_secret) {
        (Some(device), Some(_)) => {
            let (packets, outgoing) = mpsc::channel(4096);
            device.attach_relay(packets);
            Some(tokio::spawn(crate::relay::run(
                Arc::clone(&plane),
                secrets_seen,
                regions_seen,
                outgoing,
                Arc::clone(&shared.relays),
                home_sender,
            )))
        }
        _ => None,
    };
    let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
    let api = tokio::spawn({
        let socket = state.socket();
        let shared = Arc::clone(&shared);
        async move {
            if let Err(error) = crate::local_api::serve(&socket, shared, async {
                let _ = api_stopped.await;
            })
            .await
            {
                tracing::error!(%error, "local API stopped");
            }
        }
    });

    let whois_api = options.whois_socket.clone().map(|(socket, group)| {
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            if let Err(error) = crate::local_api::serve_whois(&socket, group, shared).await {
                tracing::error!(%error, socket = %socket.display(), "whois socket stopped");
            }
        })
    });

    let dns_task = if options.magic_dns {
        start_resolver(&options.interface, Arc::clone(&shared)).await
    } else {
        None
    };

    let rotation_task = tokio::spawn(
        crate::rotation::Rotator {
            client: client.clone(),
            state: state.clone(),
            plane: Arc::clone(&plane),
            shared: Arc::clone(&shared),
            relay_secret: secrets,
        }
        .run(),
    );
    let mut sync = Sync {
        shared: Arc::clone(&shared),
        plane,
        firewall,
        choices: HashMap::new(),
        routes: BTreeSet::new(),
        service_addresses: BTreeSet::new(),
        addresses: None,
        regions,
        system_dns: None,
        point_system_resolver: options.magic_dns && options.point_system_resolver,
    };
    let outcome = tokio::select! {
        () = shutdown => Ok(()),
        result = run(options, client, identity, &shared, &mut sync, home) => result,
    };
    if let Some(whois_api) = whois_api {
        whois_api.abort();
    }
    if let Some(relay_task) = relay_task {
        relay_task.abort();
    }
    if let Some(dns_task) = dns_task {
        dns_task.abort();
    }
    rotation_task.abort();
    renewal_task.abort();
    tracing::info!("stopping");
    let _ = stop_api.send(());
    let _ = api.await;
    let _ = std::fs::remove_file(state.socket());
    if let Err(error) = sync.firewall.remove().await {
        tracing::warn!(%error, "could not remove the firewall table");
    }
    outcome
}

/// Starts MagicDNS: 100.100.100.100 on the mesh interface and the resolver
/// on its port 53. A failure is logged, not fatal: the mesh works without.
async fn start_resolver(
    interface: &str,
    shared: Arc<AgentState>,
) -> Option<tokio::task::JoinHandle<()>> {
    if let Err(error) = netcfg::add_local_address(interface, IpAddr::V4(crate::dns::ADDRESS)).await
    {
        tracing::warn!(%error, "MagicDNS is off: cannot take its address");
        return None;
    }
    let socket = match tokio::net::UdpSocket::bind((crate::dns::ADDRESS, 53)).await {
        Ok(socket) => socket,
        Err(error) => {
            tracing::warn!(%error, "MagicDNS is off: cannot listen on 100.100.100.100:53");
            return None;
        }
    };
    tracing::info!("MagicDNS answering at 100.100.100.100");
    Some(tokio::spawn(async move {
        if let Err(error) = crate::dns::serve(socket, shared).await {
            tracing::error!(%error, "MagicDNS stopped");
        }
    }))
}

/// Approval, then the map, again after every loss of admission.
async fn run(
    options: &UpOptions,
    client: &ControlClient,
    identity: &crate::state::Identity,
    shared: &Arc<AgentState>,
    sync: &mut Sync,
    home: watch::Receiver<Option<u16>>,
) -> Result<(), AgentError> {
    loop {
        wait_for_approval(client, identity, shared).await?;
        let mut advertised = options.advertise_routes.clone();
        if options.advertise_exit_node {
            advertised.extend(
                ["0.0.0.0/0", "::/0"]
                    .iter()
                    .filter_map(|route| route.parse::<IpNet>().ok()),
            );
        }
        if !advertised.is_empty() {
            enable_forwarding();
        }
        if !advertised.is_empty() || !options.advertise_services.is_empty() {
            let services = options.advertise_services.clone();
            client
                .report_routes(&RoutesReport {
                    advertised,
                    services,
                })
                .await?;
        }

        let (messages, mut received) = mpsc::channel(1024);
        let (connected, connections) = mpsc::channel(4);
        let follower = tokio::spawn({
            let client = client.clone();
            let shared = Arc::clone(shared);
            async move {
                follow_map(
                    &client,
                    &messages,
                    &shared,
                    Duration::from_secs(90),
                    &connected,
                )
                .await
            }
        });
        let reporter = tokio::spawn(report_endpoints(
            client.clone(),
            options.interface.clone(),
            options.endpoints.clone(),
            Arc::clone(&sync.plane),
            stun_server(&options.stun, &identity.url).await,
            connections,
            home.clone(),
        ));
        let synced = sync.run(&mut received).await;
        reporter.abort();
        let ended = follower
            .await
            .map_err(|error| AgentError::Setup(error.to_string()))?;
        synced?;
        match ended? {
            FollowEnd::NotAdmitted => {
                tracing::warn!("this node lost its admission; waiting for approval again");
                continue;
            }
            FollowEnd::Closed => return Ok(()),
        }
    }
}

/// Who the policy offers us as peer relays, and who may use ours.
fn peer_relays(mesh: &crate::mesh::Mesh) -> crate::userspace::PeerRelays {
    crate::userspace::PeerRelays {
        candidates: mesh
            .relay_candidates()
            .into_iter()
            .filter_map(|peer| {
                Some(crate::userspace::RelayCandidate {
                    key: peer.wireguard_key.0,
                    disco: peer.disco_key?.0,
                    region: peer.home_relay?,
                })
            })
            .collect(),
        clients: mesh
            .relay_clients()
            .into_iter()
            .map(|peer| peer.wireguard_key.0)
            .collect(),
    }
}

/// Lets the kernel forward packets (for subnet routers and exit nodes).
fn enable_forwarding() {
    for path in [
        "/proc/sys/net/ipv4/ip_forward",
        "/proc/sys/net/ipv6/conf/all/forwarding",
    ] {
        if let Err(error) = std::fs::write(path, "1") {
            tracing::warn!(%error, path, "cannot enable forwarding; advertised routes will not carry traffic");
        }
    }
}

async fn stun_server(choice: &StunChoice, coordinator_url: &str) -> Option<SocketAddr> {
    match choice {
        StunChoice::Off => None,
        StunChoice::Server(server) => Some(*server),
        StunChoice::Coordinator => {
            let rest = coordinator_url.strip_prefix("https://")?;
            let authority = rest.split('/').next()?;
            let host = match authority.rsplit_once(':') {
                Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
                _ => authority,
            };
            let host = host.trim_start_matches('[').trim_end_matches(']');
            tokio::net::lookup_host((host, 3478)).await.ok()?.next()
        }
    }
}

/// The address the STUN server at `server` sees this node's WireGuard port
/// at: asked from the WireGuard socket itself on the userspace data plane
/// (so it is the mapping peers meet), from another socket on the same
/// machine otherwise (assuming the NAT keeps the port).
async fn observed_address(plane: &Arc<DataPlane>, server: SocketAddr) -> Option<SocketAddr> {
    let timeout = Duration::from_secs(1);
    if plane.device().is_some() {
        let plane = Arc::clone(plane);
        return tokio::task::spawn_blocking(move || plane.device()?.stun(server, timeout))
            .await
            .ok()
            .flatten();
    }
    stun_query(server, timeout)
        .await
        .map(|seen| SocketAddr::new(seen.ip(), plane.listen_port()))
}

/// Reports this node's endpoints, disco key and home relay on every
/// (re)connection, when the home relay changes and every minute when
/// something changed.
async fn report_endpoints(
    client: ControlClient,
    interface: String,
    extra: Vec<SocketAddr>,
    plane: Arc<DataPlane>,
    stun: Option<SocketAddr>,
    mut connections: mpsc::Receiver<()>,
    mut home: watch::Receiver<Option<u16>>,
) {
    let port = plane.listen_port();
    let mut last: Option<EndpointReport> = None;
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        let must = tokio::select! {
            signal = connections.recv() => {
                if signal.is_none() {
                    return;
                }
                true
            }
            changed = home.changed() => changed.is_ok(),
            _ = every.tick() => false,
        };
        let mut local = local_endpoints(port, &interface);
        for endpoint in &extra {
            if !local.contains(endpoint) {
                local.push(*endpoint);
            }
        }
        let observed = match stun {
            Some(server) => observed_address(&plane, server).await,
            None => None,
        };
        if let Some(device) = plane.device() {
            device.set_own_endpoints(local.iter().copied().chain(observed).collect());
            if let Some(relay_port) = device.peer_relay_port() {
                // The relay's port at each address of ours: behind a NAT
                // that keeps ports (or a forwarded port), the public one
                // works too.
                let mut addresses: Vec<SocketAddr> = Vec::new();
                for endpoint in local.iter().chain(observed.iter()) {
                    let address = SocketAddr::new(endpoint.ip(), relay_port);
                    if !addresses.contains(&address) {
                        addresses.push(address);
                    }
                }
                device.set_peer_relay_addresses(addresses);
            }
        }
        let report = EndpointReport {
            listen_port: port,
            local,
            stun: observed,
            disco_key: plane.disco_public(),
            home_relay: *home.borrow(),
        };
        if !must && last.as_ref() == Some(&report) {
            continue;
        }
        match client.report_endpoints(&report).await {
            Ok(()) => last = Some(report),
            Err(error) => tracing::debug!(%error, "endpoint report failed"),
        }
    }
}

/// Keeps the data plane, routes and firewall in step with the mesh view.
struct Sync {
    shared: Arc<AgentState>,
    plane: Arc<DataPlane>,
    firewall: Firewall,
    choices: HashMap<NodeId, EndpointChoice>,
    routes: BTreeSet<IpNet>,
    addresses: Option<(Ipv4Addr, Ipv6Addr)>,
    /// The addresses of the Tailscale Services this node hosts, on the
    /// interface.
    service_addresses: BTreeSet<IpAddr>,
    /// The relay regions, for the relay client.
    regions: watch::Sender<Vec<RelayRegion>>,
    /// What the system resolver was last told to send to MagicDNS.
    system_dns: Option<hearth_control::wire::MeshDns>,
    /// Whether to tell it (`UpOptions::point_system_resolver`).
    point_system_resolver: bool,
}

enum Operation {
    Set(PeerConfig),
    Remove(hearth_control::wire::WireGuardKey),
}

impl Sync {
    /// Applies map messages as they come, and every second reads the data
    /// plane's counters and moves peers to better endpoints. Returns when the
    /// message channel closes.
    async fn run(&mut self, messages: &mut mpsc::Receiver<MapMessage>) -> Result<(), AgentError> {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                message = messages.recv() => {
                    let Some(message) = message else { return Ok(()) };
                    let mut batch = vec![message];
                    while let Ok(more) = messages.try_recv() {
                        batch.push(more);
                    }
                    self.apply(batch).await?;
                }
                _ = tick.tick() => self.tick().await,
            }
        }
    }

    async fn apply(&mut self, batch: Vec<MapMessage>) -> Result<(), AgentError> {
        let mut changes = MeshChanges::default();
        {
            let mut mesh = hearth_runtime::write(&self.shared.mesh);
            for message in batch {
                match mesh.apply(message) {
                    Applied::Changed(more) => changes.merge(more),
                    Applied::Revoked {
                        reason,
                        changes: more,
                    } => {
                        tracing::warn!(%reason, "admission revoked; dropping every peer");
                        changes.merge(more);
                    }
                }
            }
        }
        if changes.is_empty() {
            if changes.presence_changed {
                // Services that follow who is connected look again.
                self.shared.changed();
            }
            return Ok(());
        }
        // Services forget who they thought held an address, at once.
        self.shared.changed();
        let (node, peers, filter, dns) = {
            let mesh = hearth_runtime::read(&self.shared.mesh);
            if changes.relays_changed {
                let _ = self.regions.send(mesh.relays.clone());
            }
            (
                mesh.node.clone(),
                mesh.peers.clone(),
                mesh.filter.clone(),
                mesh.dns.clone(),
            )
        };
        if let Some(settings) = &dns
            && self.point_system_resolver
            && dns != self.system_dns
        {
            netcfg::point_resolver(
                self.plane.interface(),
                crate::dns::ADDRESS,
                &crate::dns::system_domains(settings),
            )
            .await;
            self.system_dns = dns;
        }
        let planned = plan(
            &changes,
            node.as_ref(),
            &peers,
            self.addresses,
            &self.routes,
            &mut self.choices,
            hearth_runtime::clock::since_epoch(),
            self.plane.disco_public().is_some(),
        );
        if let Some((ipv4, ipv6)) = planned.addresses {
            netcfg::set_addresses(self.plane.interface(), ipv4, ipv6).await?;
            self.addresses = Some((ipv4, ipv6));
        }
        self.host_services(node.as_ref()).await;
        self.execute(planned.remove.into_iter().map(Operation::Remove).collect())
            .await;
        if planned.filter {
            let own: Vec<IpAddr> = node
                .as_ref()
                .map(|node| vec![IpAddr::V4(node.ipv4), IpAddr::V6(node.ipv6)])
                .unwrap_or_default();
            if let Err(error) = self.firewall.apply(&filter, &own, peers.values()).await {
                tracing::error!(%error, "could not update the firewall");
            }
        }
        self.execute(planned.set.into_iter().map(Operation::Set).collect())
            .await;
        if let Some(device) = self.plane.device() {
            device.set_peer_relays(peer_relays(&hearth_runtime::read(&self.shared.mesh)));
        }
        for route in &planned.add_routes {
            if let Err(error) = netcfg::add_route(self.plane.interface(), *route).await {
                tracing::warn!(%error, "cannot add a subnet route");
            }
            self.routes.insert(*route);
        }
        for route in &planned.remove_routes {
            let _ = netcfg::remove_route(self.plane.interface(), *route).await;
            self.routes.remove(route);
        }
        tracing::debug!(
            upserted = changes.upserted.len(),
            removed = changes.removed.len(),
            filter = changes.filter_changed,
            "mesh updated"
        );
        Ok(())
    }

    /// Answers at the addresses of the services the node hosts now, and no
    /// longer at those of the services it stopped hosting.
    async fn host_services(&mut self, node: Option<&hearth_control::wire::NodeInfo>) {
        let wanted: BTreeSet<IpAddr> = node
            .into_iter()
            .flat_map(|node| &node.hosted)
            .flat_map(|service| service.addresses.iter().copied())
            .collect();
        let interface = self.plane.interface().to_owned();
        for address in wanted.difference(&self.service_addresses) {
            if let Err(error) = netcfg::add_local_address(&interface, *address).await {
                tracing::warn!(%error, %address, "cannot answer at a service's address");
            }
        }
        for address in self.service_addresses.difference(&wanted) {
            let _ = netcfg::remove_local_address(&interface, *address).await;
        }
        if wanted != self.service_addresses {
            tracing::info!(addresses = ?wanted, "hosting services");
        }
        self.service_addresses = wanted;
    }

    /// Runs data-plane operations off the async runtime; failures are logged.
    async fn execute(&self, operations: Vec<Operation>) {
        if operations.is_empty() {
            return;
        }
        let plane = Arc::clone(&self.plane);
        let result = tokio::task::spawn_blocking(move || {
            for operation in operations {
                let outcome = match &operation {
                    Operation::Set(peer) => plane.set_peer(peer),
                    Operation::Remove(key) => plane.remove_peer(key),
                };
                if let Err(error) = outcome {
                    tracing::error!(%error, "WireGuard peer update failed");
                }
            }
        })
        .await;
        if let Err(error) = result {
            tracing::error!(%error, "WireGuard update task failed");
        }
    }

    async fn tick(&mut self) {
        let plane = Arc::clone(&self.plane);
        let Ok(Ok(stats)) = tokio::task::spawn_blocking(move || plane.stats()).await else {
            return;
        };
        let by_key: HashMap<_, _> = stats.into_iter().map(|peer| (peer.key, peer)).collect();
        let handshakes = by_key
            .iter()
            .filter_map(|(key, stats)| {
                let since = stats
                    .last_handshake?
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .ok()?;
                Some((*key, since))
            })
            .collect();
        let moves = {
            let mesh = hearth_runtime::read(&self.shared.mesh);
            endpoint_moves(
                &mesh.peers,
                &mut self.choices,
                &handshakes,
                hearth_runtime::clock::since_epoch(),
            )
        };
        *hearth_runtime::write(&self.shared.stats) = by_key;
        self.execute(moves.into_iter().map(Operation::Set).collect())
            .await;
    }
}
