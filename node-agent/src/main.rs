//! `hearth-agent`: parses the command line and calls the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use hearth_agent::agent::{StunChoice, UpOptions};
use hearth_agent::dataplane::{BackendChoice, PathStatus};
use hearth_agent::local_api::Client;
use hearth_agent::relay::RegionStatus;
use hearth_agent::state::{DEFAULT_STATE_DIR, StateDir};
use ipnet::IpNet;
use zeroize::Zeroizing;

/// Hearth's node agent: joins this device to the mesh.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// State directory (keys, identity, local API socket).
    #[arg(long, global = true, env = "HEARTH_AGENT_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Join the mesh (the first time with a token) and stay in it until stopped.
    Up(Box<UpArgs>),
    /// Show this node, its peers, handshakes and traffic.
    Status {
        #[arg(long, short, value_enum, default_value_t)]
        output: Output,
    },
    /// Ping a peer over the tunnel.
    Ping {
        /// Peer name or mesh address.
        peer: String,
        /// Number of echo requests.
        #[arg(long, short, default_value_t = 3)]
        count: u16,
    },
    /// Get a TLS certificate for this node's MagicDNS name from the
    /// coordinator's ACME CA (kept in the state directory's certs/, 0600, and
    /// renewed by the agent from then on); prints where it is.
    Cert {
        #[arg(long, short, value_enum, default_value_t)]
        output: Output,
    },
    /// Tell which node, user and tags a mesh address belongs to.
    Whois {
        /// A mesh address.
        ip: String,
        #[arg(long, short, value_enum, default_value_t)]
        output: Output,
    },
}

#[derive(Args)]
struct UpArgs {
    /// Join token (prefer --token-file or HEARTH_JOIN_TOKEN: arguments are visible to other users).
    #[arg(long, env = "HEARTH_JOIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// File holding the join token (needed until the node has joined).
    #[arg(long, conflicts_with = "token")]
    token_file: Option<PathBuf>,
    /// Name to register with [default: this machine's hostname].
    #[arg(long, env = "HEARTH_HOSTNAME")]
    hostname: Option<String>,
    /// Mesh interface name.
    #[arg(long, default_value = "hearth0")]
    interface: String,
    /// WireGuard implementation.
    #[arg(long, value_enum, default_value = "auto")]
    backend: BackendChoice,
    /// WireGuard UDP port.
    #[arg(long, default_value_t = 41641)]
    port: u16,
    /// MTU of the mesh interface.
    #[arg(long, default_value_t = 1420)]
    mtu: u32,
    /// Subnets to offer to the mesh, comma-separated.
    #[arg(long, value_delimiter = ',')]
    advertise_routes: Vec<IpNet>,
    /// Offer this node as an exit node.
    #[arg(long)]
    advertise_exit_node: bool,
    /// Tailscale Services this node serves (svc:NAME), comma-separated:
    /// once the admin or the policy's autoApprovers.services makes it
    /// their host, it answers at their addresses too.
    #[arg(long, value_delimiter = ',', env = "HEARTH_ADVERTISE_SERVICES")]
    advertise_services: Vec<String>,
    /// Be a peer relay on this UDP port (userspace data plane): devices the
    /// policy lets use it (a `tailscale.com/cap/relay` grant naming this
    /// one) meet through it when they cannot reach each other directly.
    #[arg(long, env = "HEARTH_RELAY_SERVER_PORT")]
    relay_server_port: Option<u16>,
    /// Addresses (IP:PORT) this node is reached at besides its own
    /// interfaces', told to peers: a port published to it by a container
    /// runtime or forwarded by a router (`hearth setup --podman` gives the
    /// hub's address and its published WireGuard port). Comma-separated.
    #[arg(long, value_delimiter = ',', env = "HEARTH_ENDPOINTS")]
    endpoint: Vec<std::net::SocketAddr>,
    /// Dial the coordinator (and its own relay) at ADDR:PORT instead of
    /// its URL's address, still requiring its pinned certificate: for an
    /// agent beside the coordinator in one pod (`hearth setup --podman`).
    #[arg(long, env = "HEARTH_COORDINATOR_ADDRESS")]
    coordinator_address: Option<std::net::SocketAddr>,
    /// STUN server (ADDR:PORT), `coordinator` (port 3478 of its host) or `off`.
    #[arg(long, default_value = "coordinator")]
    stun: String,
    /// Also answer `whois` (and nothing else) on this socket, for services
    /// running as another user (in containers); needs --whois-group.
    #[arg(long, requires = "whois_group")]
    whois_socket: Option<PathBuf>,
    /// The group (name or id) allowed to use --whois-socket (mode 0660).
    #[arg(long, requires = "whois_socket")]
    whois_group: Option<String>,
    /// Do not answer the mesh's names at 100.100.100.100 (MagicDNS), nor
    /// point the system resolver there.
    #[arg(long)]
    no_magic_dns: bool,
    /// Answer at 100.100.100.100 but leave the system resolver as it is
    /// (for an agent in a network namespace, or a resolver set by hand).
    #[arg(long)]
    leave_system_resolver: bool,
}

#[derive(Clone, Copy, Default, ValueEnum)]
enum Output {
    /// For people.
    #[default]
    Text,
    /// JSON.
    Json,
}

fn unix_age(time: Option<u64>) -> String {
    let Some(time) = time else {
        return "never".into();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(time);
    format!("{}s ago", now.saturating_sub(time))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let client = || Client::new(&StateDir::at(&cli.state_dir).socket());
    match cli.command {
        Command::Up(args) => {
            hearth_runtime::init("info,defguard_wireguard_rs=warn,defguard_boringtun=warn");
            let token = match (args.token, args.token_file) {
                (Some(token), _) => Some(Zeroizing::new(token)),
                // A node that joined needs its token no more: a token file
                // removed since (it is spent) is not an error.
                (None, Some(file))
                    if !file.exists() && cli.state_dir.join("identity.json").exists() =>
                {
                    None
                }
                (None, Some(file)) => Some(Zeroizing::new(
                    std::fs::read_to_string(&file)
                        .with_context(|| format!("cannot read {}", file.display()))?,
                )),
                (None, None) => None,
            };
            let whois_socket = match (args.whois_socket, args.whois_group) {
                (Some(socket), Some(group)) => {
                    let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
                    let id = hearth_agent::local_api::group_id(&group, &groups)
                        .with_context(|| format!("--whois-group: no group {group:?}"))?;
                    Some((socket, id))
                }
                _ => None,
            };
            let stun = match args.stun.as_str() {
                "off" => StunChoice::Off,
                "coordinator" => StunChoice::Coordinator,
                address => StunChoice::Server(
                    address
                        .parse::<SocketAddr>()
                        .context("--stun takes ADDR:PORT, coordinator or off")?,
                ),
            };
            let options = UpOptions {
                state_dir: cli.state_dir.clone(),
                token,
                hostname: args.hostname,
                interface: args.interface,
                backend: args.backend,
                port: args.port,
                mtu: args.mtu,
                advertise_routes: args.advertise_routes,
                advertise_services: args.advertise_services,
                advertise_exit_node: args.advertise_exit_node,
                relay_server_port: args.relay_server_port,
                endpoints: args.endpoint,
                coordinator_address: args.coordinator_address,
                stun,
                whois_socket,
                magic_dns: !args.no_magic_dns,
                point_system_resolver: !args.leave_system_resolver,
            };
            hearth_agent::up(options, hearth_runtime::shutdown_signal()).await?;
        }
        Command::Status { output } => {
            // Names the mesh gave reach the terminal escaped.
            use hearth_runtime::terminal::printable;
            let status = client().status().await?;
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&status)?),
                Output::Text => {
                    match &status.node {
                        Some(node) => println!(
                            "{} (node {}, user {}) {} {}  [{} on {}, port {}]",
                            printable(&node.name),
                            node.id,
                            printable(&node.user),
                            node.ipv4,
                            node.ipv6,
                            serde_json::to_value(status.backend)?
                                .as_str()
                                .unwrap_or_default(),
                            status.interface,
                            status.listen_port
                        ),
                        None => println!(
                            "waiting for the first network map  [{} port {}]",
                            status.interface, status.listen_port
                        ),
                    }
                    if let Some(offloads) = &status.offloads {
                        println!("data plane offloads: {offloads}");
                    }
                    if let Some(relay) = &status.peer_relay {
                        let plural = |count: usize, one: &str, many: &str| {
                            format!("{count} {}", if count == 1 { one } else { many })
                        };
                        println!(
                            "peer relay on UDP port {}: {}, {} may use it",
                            relay.port,
                            plural(relay.endpoints, "endpoint", "endpoints"),
                            plural(relay.clients, "peer", "peers")
                        );
                    }
                    if let Some(node) = &status.node {
                        match node.key_expiry {
                            Some(expiry) => {
                                let left = expiry - hearth_runtime::clock::unix_seconds();
                                println!(
                                    "keys expire in {} (rotated automatically with a third of their life left)",
                                    if left > 2 * 86_400 {
                                        format!("{} days", left / 86_400)
                                    } else {
                                        format!("{}s", left.max(0))
                                    }
                                );
                            }
                            None => println!("keys never expire"),
                        }
                    }
                    let coordinator = &status.coordinator;
                    if coordinator.connected {
                        println!("coordinator {} connected", coordinator.url);
                    } else {
                        println!(
                            "coordinator {} unreachable ({}); tunnels stay up",
                            coordinator.url,
                            coordinator
                                .last_error
                                .as_deref()
                                .unwrap_or("not connected yet")
                        );
                    }
                    for relay in &status.relays {
                        println!(
                            "relay {} (region {}){} {}",
                            relay.code,
                            relay.region,
                            if relay.home { " home" } else { "" },
                            if relay.connected {
                                format!(
                                    "connected{}",
                                    relay
                                        .rtt_us
                                        .map(|rtt| format!(", {:.1} ms", rtt as f64 / 1000.0))
                                        .unwrap_or_default()
                                )
                            } else {
                                format!(
                                    "unreachable ({})",
                                    relay.last_error.as_deref().unwrap_or("connecting")
                                )
                            }
                        );
                    }
                    for peer in &status.peers {
                        let addresses: Vec<String> =
                            peer.addresses.iter().map(ToString::to_string).collect();
                        println!(
                            "  {:<16} {:<36} {:<30} handshake {:<10} rx {} tx {}",
                            printable(&peer.name),
                            addresses.join(" "),
                            path_text(peer.path.as_ref(), &status.relays),
                            unix_age(peer.last_handshake),
                            peer.rx_bytes,
                            peer.tx_bytes
                        );
                    }
                }
            }
        }
        Command::Ping { peer, count } => {
            let result = client().ping(&peer, count).await?;
            let mut answered = 0;
            let relays: Vec<RegionStatus> = result
                .relay_codes
                .iter()
                .map(|(region, code)| RegionStatus {
                    region: *region,
                    code: code.clone(),
                    ..RegionStatus::default()
                })
                .collect();
            for (sequence, reply) in result.replies.iter().enumerate() {
                match reply {
                    Some(milliseconds) => {
                        answered += 1;
                        let path = result.paths.get(sequence).copied().flatten();
                        println!(
                            "reply from {} ({}) via {}: seq={sequence} time={milliseconds:.2} ms",
                            result.peer,
                            result.target,
                            path_text(path.as_ref(), &relays)
                        );
                    }
                    None => println!(
                        "no reply from {} ({}): seq={sequence}",
                        result.peer, result.target
                    ),
                }
            }
            anyhow::ensure!(answered > 0, "{} did not answer", result.peer);
        }
        Command::Cert { output } => {
            let certificate = client().certificate().await?;
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&certificate)?),
                Output::Text => println!(
                    "certificate for {}: {} (key {}), valid until {} (Unix time); \
                     the agent renews it from {}",
                    certificate.domain,
                    certificate.cert_file.display(),
                    certificate.key_file.display(),
                    certificate.not_after,
                    certificate.renew_at,
                ),
            }
        }
        Command::Whois { ip, output } => {
            use hearth_runtime::terminal::printable;
            let who = client().whois(&ip).await?;
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&who)?),
                Output::Text => {
                    let tags = if who.tags.is_empty() {
                        String::new()
                    } else {
                        format!(" tags {}", printable(&who.tags.join(",")))
                    };
                    println!(
                        "{ip}: node {} ({}), user {}{tags}{}",
                        who.id,
                        printable(&who.name),
                        printable(&who.user),
                        if who.is_self { " (this node)" } else { "" }
                    );
                }
            }
        }
    }
    Ok(())
}

/// A path as people read it: `direct 198.18.1.2:41641`, `peer-relay
/// 198.18.0.3:40000 vni 7` or `relay hub (12 ms)`.
fn path_text(path: Option<&PathStatus>, relays: &[RegionStatus]) -> String {
    match path {
        None => "-".into(),
        Some(PathStatus::Direct { endpoint, .. }) => format!("direct {endpoint}"),
        Some(PathStatus::PeerRelay { relay, vni, .. }) => format!("peer-relay {relay} vni {vni}"),
        Some(PathStatus::Relay { region }) => {
            let relay = relays.iter().find(|relay| relay.region == *region);
            let name = relay.map_or_else(|| region.to_string(), |relay| relay.code.clone());
            match relay.and_then(|relay| relay.rtt_us) {
                Some(rtt) => format!("relay {name} ({} ms)", rtt.div_ceil(1000)),
                None => format!("relay {name}"),
            }
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    hearth_runtime::run(hearth_runtime::Threads::PerCore, run(cli))
}
