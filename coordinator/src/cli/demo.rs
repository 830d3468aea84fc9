//! `hearth-coordinator demo`: a coordinator on loopback with its state in a
//! temporary directory, and a scripted walk through device admission: a user,
//! a pre-auth key, two devices registering, an admin approving them, and each
//! device receiving the other in its network map.

use std::time::Duration;

use anyhow::{Context, anyhow};
use hearth_control::tls::{ClientIdentity, generate_key_request};
use hearth_control::wire::{MapChange, MapMessage, RegisterRequest, WireGuardKey, encode_der};
use hearth_control::{ControlClient, JoinToken, MessageStream};

use crate::cli::admin_client::AdminClient;
use crate::cli::output;
use hearth_coordinator::accounts::KeyOptions;
use hearth_coordinator::api::node::RegisterLimit;
use hearth_coordinator::server::{ServeOptions, Server};

struct Device {
    name: &'static str,
    client: ControlClient,
    node_id: u64,
}

fn wireguard_key() -> WireGuardKey {
    let secret = x25519_dalek::StaticSecret::random();
    WireGuardKey(x25519_dalek::PublicKey::from(&secret).to_bytes())
}

async fn register(token: &JoinToken, name: &'static str) -> anyhow::Result<Device> {
    let anonymous = ControlClient::new(&token.url, token.fingerprint, None)?;
    let request = generate_key_request(name)?;
    let response = anonymous
        .register(&RegisterRequest {
            auth_key: token.key.clone(),
            wireguard_key: wireguard_key(),
            hostname: name.into(),
            os: std::env::consts::OS.into(),
            csr_der: encode_der(&request.csr_der),
        })
        .await?;
    println!(
        "  {name}: registered as node {} ({}), state {}, addresses {} / {}",
        response.node.id,
        response.node.name,
        response.node.state,
        response.node.ipv4,
        response.node.ipv6
    );
    let identity = ClientIdentity {
        certificate_pem: response.client_certificate_pem,
        key_pem: request.key_pem,
    };
    Ok(Device {
        name,
        client: ControlClient::new(&token.url, token.fingerprint, Some(&identity))?,
        node_id: response.node.id,
    })
}

/// Reads map lines until `peer` is in the map or a second has passed.
async fn wait_for_peer(
    stream: &mut MessageStream<MapMessage>,
    peers: &mut Vec<String>,
    peer: &str,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while !peers.iter().any(|name| name == peer) {
        let message = tokio::time::timeout_at(deadline, stream.next())
            .await
            .map_err(|_| anyhow!("{peer} did not arrive within 1 s"))?
            .ok_or_else(|| anyhow!("map stream closed"))??;
        match message {
            MapMessage::Full { map } => *peers = map.peers.into_iter().map(|p| p.name).collect(),
            MapMessage::Delta { changes } => {
                for change in changes {
                    if let MapChange::PeerAdded { peer } = change {
                        peers.push(peer.name);
                    }
                }
            }
            MapMessage::KeepAlive | MapMessage::Revoked { .. } => {}
        }
    }
    Ok(())
}

/// Runs the demo and removes its state afterwards.
pub async fn run() -> anyhow::Result<()> {
    let state = tempfile::Builder::new().prefix("hearth-demo-").tempdir()?;
    let mut options = ServeOptions::new(state.path().to_owned());
    options.listen = "127.0.0.1:0".parse()?;
    options.stun_listen = Some("127.0.0.1:0".parse()?);
    options.register_limit = RegisterLimit {
        burst: 20,
        period: Duration::from_secs(1),
    };
    let server = Server::bind(options)
        .await
        .context("starting the coordinator")?;
    let settings = server.coordinator().settings().clone();
    println!("Hearth coordinator demo");
    println!("=======================");
    println!("coordinator : {} (HTTPS, self-signed)", settings.public_url);
    println!("certificate : sha256 {}", settings.fingerprint);
    println!(
        "state dir   : {} (SQLite database, certificates, admin socket)",
        state.path().display()
    );
    println!();

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let result = script(state.path()).await;
    let _ = stop.send(());
    running.await??;
    result?;
    println!();
    println!("Done. The coordinator stopped and its temporary state was removed.");
    println!("Run your own: hearth-coordinator --state-dir DIR serve --listen 0.0.0.0:8443");
    Ok(())
}

async fn script(state_dir: &std::path::Path) -> anyhow::Result<()> {
    let admin = AdminClient::new(&state_dir.join("admin.sock"))?;
    println!("$ hearth-coordinator users create household");
    admin.create_user("household", None).await?;
    println!("$ hearth-coordinator preauthkeys create --user household --reusable --expiration 1h");
    let created = admin
        .create_key(&KeyOptions {
            user: "household".into(),
            reusable: true,
            expiration_seconds: Some(3600),
            ..KeyOptions::default()
        })
        .await?;
    println!(
        "  join token: {}…",
        &created.token[..48.min(created.token.len())]
    );
    let token = JoinToken::decode(&created.token)?;
    println!();
    println!("Two devices register with the token (what `hearth-agent up --token ...` does):");
    let laptop = register(&token, "laptop").await?;
    let phone = register(&token, "phone").await?;
    for device in [&laptop, &phone] {
        let refused = device
            .client
            .map_stream()
            .await
            .err()
            .map(|error| error.to_string());
        println!(
            "  {} asks for its map before approval: {}",
            device.name,
            refused.unwrap_or_default()
        );
    }
    println!();
    println!("$ hearth-coordinator nodes list");
    println!("{}", output::nodes(&admin.list_nodes().await?));
    println!();
    println!("$ hearth-coordinator nodes approve {}", laptop.node_id);
    admin
        .node_action(
            laptop.node_id,
            hearth_coordinator::admission::NodeAction::Approve,
        )
        .await?;
    let mut laptop_map = laptop.client.map_stream().await?;
    let mut laptop_peers = Vec::new();
    println!("$ hearth-coordinator nodes approve {}", phone.node_id);
    let approved_at = std::time::Instant::now();
    admin
        .node_action(
            phone.node_id,
            hearth_coordinator::admission::NodeAction::Approve,
        )
        .await?;
    wait_for_peer(&mut laptop_map, &mut laptop_peers, "phone").await?;
    println!(
        "  laptop's streamed map gained `phone` {:.1} ms after approval",
        approved_at.elapsed().as_secs_f64() * 1000.0
    );
    let mut phone_map = phone.client.map_stream().await?;
    let mut phone_peers = Vec::new();
    wait_for_peer(&mut phone_map, &mut phone_peers, "laptop").await?;
    println!("  phone's map on connect: peers {phone_peers:?}");
    println!();
    println!("$ hearth-coordinator nodes list");
    println!("{}", output::nodes(&admin.list_nodes().await?));
    Ok(())
}
