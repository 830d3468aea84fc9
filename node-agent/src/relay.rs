//! The agent's relay client: a DERP connection to its home relay (the first
//! region the coordinator lists, normally the relay inside the coordinator)
//! kept open at all times, and connections to other regions opened when a
//! peer homed there is sent to and closed after a minute unused. Packets the
//! userspace data plane hands over ([`RelayPacket`]) go out on the right
//! connection; packets relayed to this node go back into the data plane.
//! Each connection pings its relay every few seconds, for the latency
//! `status` shows.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use hearth_control::Fingerprint;
use hearth_control::derp::{self, ServerFrame};
use hearth_control::relay_client::{self, RelayReader, RelayWriter};
use hearth_control::wire::RelayRegion;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use zeroize::Zeroizing;

use crate::backoff::Backoff;
use crate::dataplane::DataPlane;
use crate::userspace::RelayPacket;

/// Frames queued for one relay before packets to it are dropped.
const QUEUE: usize = 1024;
/// How often a connection pings its relay.
const PING_EVERY: Duration = Duration::from_secs(5);
/// A connection that hears nothing for this long is made again.
const SILENCE: Duration = Duration::from_secs(150);
/// A connection to a region other than home closes after this long unused.
const IDLE: Duration = Duration::from_secs(60);
/// Each step of connecting gets this long.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// How one region's connection is doing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionStatus {
    /// The region's id.
    pub region: u16,
    /// Its short name.
    pub code: String,
    /// Whether this node's home relay is there.
    pub home: bool,
    /// Whether the connection is up.
    pub connected: bool,
    /// The last round trip to the relay, in microseconds.
    pub rtt_us: Option<u64>,
    /// The last problem, while not connected.
    pub last_error: Option<String>,
    /// Packets relayed to this node.
    pub packets_in: u64,
    /// Packets this node sent through it.
    pub packets_out: u64,
    /// Packets dropped because the connection's queue was full.
    pub drops: u64,
}

/// The relay connections, by region, as `status` shows them.
pub type RelayStatus = RwLock<BTreeMap<u16, RegionStatus>>;

struct Connection {
    frames: mpsc::Sender<Vec<u8>>,
    task: tokio::task::JoinHandle<()>,
    last_used: Instant,
}

/// Runs the relay client until `outgoing` closes: regions come from
/// `regions` (the map's list), packets to send from `outgoing`; the home
/// region is published on `home`.
pub async fn run(
    plane: Arc<DataPlane>,
    mut secrets: watch::Receiver<Zeroizing<[u8; 32]>>,
    mut regions: watch::Receiver<Vec<RelayRegion>>,
    mut outgoing: mpsc::Receiver<RelayPacket>,
    status: Arc<RelayStatus>,
    home: watch::Sender<Option<u16>>,
) {
    let mut secret = Arc::new(secrets.borrow_and_update().clone());
    let mut known: Vec<RelayRegion> = Vec::new();
    let mut connections: HashMap<u16, Connection> = HashMap::new();
    let mut sweep = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            changed = regions.changed() => {
                if changed.is_err() {
                    break;
                }
                known = regions.borrow_and_update().clone();
                let home_region = known.first().map(|region| region.id);
                connections.retain(|id, connection| {
                    let keep = known.iter().any(|region| region.id == *id);
                    if !keep {
                        connection.task.abort();
                    }
                    keep
                });
                hearth_runtime::write(&status).retain(|id, _| known.iter().any(|region| region.id == *id));
                if let Some(region) = known.first() {
                    connect(&mut connections, region, true, &plane, &secret, &status);
                }
                let _ = home.send(home_region);
            }
            changed = secrets.changed() => {
                if changed.is_err() {
                    break;
                }
                // A rotated node key: every relay login is made again with it.
                secret = Arc::new(secrets.borrow_and_update().clone());
                for connection in connections.values() {
                    connection.task.abort();
                }
                connections.clear();
                if let Some(region) = known.first() {
                    connect(&mut connections, region, true, &plane, &secret, &status);
                }
                tracing::info!("logging in to the relays with the rotated key");
            }
            packet = outgoing.recv() => {
                let Some(packet) = packet else { break };
                let Some(region) = known.iter().find(|region| region.id == packet.region) else {
                    continue;
                };
                let is_home = known.first().map(|home| home.id) == Some(region.id);
                let connection = connect(&mut connections, region, is_home, &plane, &secret, &status);
                connection.last_used = Instant::now();
                let frame = derp::send_packet(&packet.to, &packet.packet);
                let mut all = hearth_runtime::write(&status);
                let entry = all.entry(region.id).or_default();
                if connection.frames.try_send(frame).is_ok() {
                    entry.packets_out += 1;
                } else {
                    entry.drops += 1;
                }
            }
            _ = sweep.tick() => {
                let home_region = known.first().map(|region| region.id);
                connections.retain(|id, connection| {
                    let keep = Some(*id) == home_region || connection.last_used.elapsed() < IDLE;
                    if !keep {
                        connection.task.abort();
                        tracing::debug!(region = id, "closing an unused relay connection");
                    }
                    keep
                });
                hearth_runtime::write(&status).retain(|id, _| connections.contains_key(id));
            }
        }
    }
    for connection in connections.values() {
        connection.task.abort();
    }
}

/// The connection to `region`, started if there is none.
fn connect<'a>(
    connections: &'a mut HashMap<u16, Connection>,
    region: &RelayRegion,
    home: bool,
    plane: &Arc<DataPlane>,
    secret: &Arc<Zeroizing<[u8; 32]>>,
    status: &Arc<RelayStatus>,
) -> &'a mut Connection {
    connections.entry(region.id).or_insert_with(|| {
        let (frames, queued) = mpsc::channel(QUEUE);
        hearth_runtime::write(status).insert(
            region.id,
            RegionStatus {
                region: region.id,
                code: region.code.clone(),
                home,
                ..RegionStatus::default()
            },
        );
        let task = tokio::spawn(keep_connected(
            region.clone(),
            home,
            Arc::clone(plane),
            Arc::clone(secret),
            queued,
            Arc::clone(status),
        ));
        Connection {
            frames,
            task,
            last_used: Instant::now(),
        }
    })
}

fn set_status(status: &RelayStatus, region: u16, change: impl FnOnce(&mut RegionStatus)) {
    if let Some(entry) = hearth_runtime::write(status).get_mut(&region) {
        change(entry);
    }
}

/// Connects to `region` and keeps the connection up, reconnecting with
/// backoff; frames to send come from `queued`.
async fn keep_connected(
    region: RelayRegion,
    home: bool,
    plane: Arc<DataPlane>,
    secret: Arc<Zeroizing<[u8; 32]>>,
    mut queued: mpsc::Receiver<Vec<u8>>,
    status: Arc<RelayStatus>,
) {
    let Some(fingerprint) = Fingerprint::from_hex(&region.fingerprint) else {
        tracing::warn!(
            region = region.id,
            "a relay without a usable fingerprint is not used"
        );
        return;
    };
    // At most 10 s between attempts: while the relay is away, peers that
    // have only it cannot reach this node.
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
    loop {
        let url = crate::dial::url(&region.url);
        match relay_client::connect(&url, fingerprint, &secret, STEP_TIMEOUT).await {
            Ok((reader, writer)) => {
                backoff.reset();
                tracing::info!(region = region.id, code = %region.code, "relay connected");
                set_status(&status, region.id, |entry| {
                    entry.connected = true;
                    entry.last_error = None;
                });
                let why = serve(&region, home, &plane, reader, writer, &mut queued, &status).await;
                tracing::info!(region = region.id, %why, "relay connection lost");
                set_status(&status, region.id, |entry| {
                    entry.connected = false;
                    entry.last_error = Some(why);
                });
            }
            Err(error) => {
                tracing::debug!(region = region.id, %error, "cannot reach the relay");
                set_status(&status, region.id, |entry| {
                    entry.connected = false;
                    entry.last_error = Some(error.to_string());
                });
            }
        }
        // Packets queued meanwhile are stale: WireGuard retransmits.
        while queued.try_recv().is_ok() {}
        tokio::time::sleep(backoff.next_delay(rand::random())).await;
    }
}

/// Carries frames both ways on one connection until it fails; returns why.
async fn serve(
    region: &RelayRegion,
    home: bool,
    plane: &DataPlane,
    mut reader: RelayReader,
    mut writer: RelayWriter,
    queued: &mut mpsc::Receiver<Vec<u8>>,
    status: &RelayStatus,
) -> String {
    if let Err(error) = writer.send(&derp::note_preferred(home)).await {
        return error.to_string();
    }
    // What the reading half hands the writing half.
    enum Heard {
        /// The relay pinged us: echo this frame.
        Echo(Vec<u8>),
        /// The relay echoed our ping.
        Pong([u8; 8]),
    }
    let (pongs, mut to_send) = mpsc::channel::<Heard>(16);
    let mut pings = tokio::time::interval(PING_EVERY);
    let started = Instant::now();
    let mut sent_ping: Option<([u8; 8], Instant)> = None;
    let mut heard = Instant::now();
    let reading = async {
        loop {
            let (kind, payload) = match tokio::time::timeout(SILENCE, reader.next()).await {
                Ok(Ok(frame)) => frame,
                Ok(Err(error)) => return error.to_string(),
                Err(_) => return "the relay went silent".to_owned(),
            };
            match derp::server_frame(kind, &payload) {
                Ok(ServerFrame::Packet { source, packet }) => {
                    if let Some(device) = plane.device() {
                        device.receive_relayed(region.id, source, packet);
                    }
                    set_status(status, region.id, |entry| entry.packets_in += 1);
                }
                Ok(ServerFrame::Ping(data)) => {
                    let _ = pongs.try_send(Heard::Echo(derp::frame(derp::kind::PONG, &[&data])));
                }
                Ok(ServerFrame::Pong(data)) => {
                    let _ = pongs.try_send(Heard::Pong(data));
                }
                Ok(_) => {}
                Err(error) => return error.to_string(),
            }
        }
    };
    tokio::pin!(reading);
    loop {
        tokio::select! {
            why = &mut reading => return why,
            frame = queued.recv() => {
                let Some(frame) = frame else { return "stopping".into() };
                let mut batch = vec![frame];
                while batch.len() < 64 {
                    match queued.try_recv() {
                        Ok(more) => batch.push(more),
                        Err(_) => break,
                    }
                }
                if let Err(error) = writer.send_all(&batch).await {
                    return error.to_string();
                }
            }
            item = to_send.recv() => match item {
                Some(Heard::Pong(echoed)) => {
                    heard = Instant::now();
                    if let Some((data, at)) = sent_ping
                        && data == echoed
                    {
                        let rtt = at.elapsed().as_micros() as u64;
                        set_status(status, region.id, |entry| entry.rtt_us = Some(rtt));
                        sent_ping = None;
                    }
                }
                Some(Heard::Echo(frame)) => {
                    if let Err(error) = writer.send(&frame).await {
                        return error.to_string();
                    }
                }
                None => {}
            },
            _ = pings.tick() => {
                let data = (started.elapsed().as_nanos() as u64).to_be_bytes();
                sent_ping = Some((data, Instant::now()));
                if let Err(error) = writer.send(&derp::ping(&data)).await {
                    return error.to_string();
                }
                if heard.elapsed() > SILENCE {
                    return "the relay stopped answering pings".into();
                }
            }
        }
    }
}
