//! The household's other computers that lend their models, found on the
//! mesh: the devices the policy tags as model servers (`hearth.modelServers`,
//! say `tag:models`), as this node's agent sees them.
//!
//! [`follow`] looks whenever the agent's view of the mesh changes (a device
//! tagged or untagged, connecting to the coordinator or leaving it) and
//! every [`LOOK_EVERY`]: a device the coordinator says is gone leaves the
//! lists at once, one that stops answering within [`ANSWER_WITHIN`] at its
//! next look; a new one is asked what it serves
//! ([`hearth_llm::mesh::identify`]). What to do with each device is
//! [`plan`]'s, without IO. Only tagged devices are ever asked, and only
//! through the mesh, whose policy decides whether this node reaches them.
//!
//! A sleeping device with a MAC address in `hearth.modelServers.wake` is
//! woken when one of its models is asked for by someone who may use it:
//! a Wake-on-LAN magic packet ([`magic_packet`]) to the LAN's broadcast
//! address, at most once per [`WAKE_AGAIN_AFTER`] per device.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use hearth_control::agent_api::{Changes, WhoIs};
use hearth_llm::mesh::MeshModels;

use crate::config::ModelServersSection;

/// How often the servers that are in are asked whether they still answer.
pub const LOOK_EVERY: Duration = Duration::from_secs(2);
/// How long a server has to answer that check.
pub const ANSWER_WITHIN: Duration = Duration::from_millis(1500);
/// How long a new server has to say what it serves.
const IDENTIFY_WITHIN: Duration = Duration::from_secs(5);
/// How often a server that is in is asked again what it serves.
pub const RELIST_EVERY: Duration = Duration::from_secs(30);
/// The shortest time between two wakes of one device.
pub const WAKE_AGAIN_AFTER: Duration = Duration::from_secs(30);

/// A text that is not a MAC address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a MAC address: write six pairs of hex digits, aa:bb:cc:dd:ee:ff")]
pub struct NotAMac(pub String);

/// A MAC address written `aa:bb:cc:dd:ee:ff` (or with `-`), any case.
pub fn parse_mac(text: &str) -> Result<[u8; 6], NotAMac> {
    let parts: Vec<&str> = text.trim().split([':', '-']).collect();
    let bytes: Option<Vec<u8>> = parts
        .iter()
        .map(|part| {
            (part.len() == 2)
                .then(|| u8::from_str_radix(part, 16).ok())
                .flatten()
        })
        .collect();
    match bytes {
        Some(bytes) if bytes.len() == 6 => {
            let mut mac = [0; 6];
            mac.copy_from_slice(&bytes);
            Ok(mac)
        }
        _ => Err(NotAMac(text.to_owned())),
    }
}

/// Wake-on-LAN's magic packet for `mac`: six 0xff bytes, then the address
/// sixteen times.
pub fn magic_packet(mac: [u8; 6]) -> [u8; 102] {
    let mut packet = [0xff; 102];
    for copy in packet[6..].chunks_exact_mut(6) {
        copy.copy_from_slice(&mac);
    }
    packet
}

/// When each device was last woken, so that a burst of asks wakes it once.
#[derive(Debug, Default)]
pub struct Wakes {
    last: std::collections::BTreeMap<String, std::time::Instant>,
}

impl Wakes {
    /// Whether `device` may be woken at `now` (and notes that it is).
    pub fn due(&mut self, device: &str, now: std::time::Instant) -> bool {
        match self.last.get(device) {
            Some(last) if now.duration_since(*last) < WAKE_AGAIN_AFTER => false,
            _ => {
                self.last.insert(device.to_owned(), now);
                true
            }
        }
    }
}

/// What to do with the tagged devices at one look.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Devices whose servers leave: untagged, gone from the mesh, or
    /// away from the coordinator.
    pub drop: Vec<String>,
    /// Devices whose servers are in: asked whether they still answer.
    pub check: Vec<String>,
    /// Devices to ask what they serve, at their mesh address.
    pub identify: Vec<(String, IpAddr)>,
}

/// What to do, given the tagged devices the agent sees, the devices whose
/// servers are in now, and the names no device may take (the configured
/// providers' and the pool's: `local/x` must stay the configured `local`).
pub fn plan(tagged: &[WhoIs], known: &[String], reserved: &[String]) -> Plan {
    let here =
        |who: &&WhoIs| who.online != Some(false) && !who.is_self && !reserved.contains(&who.name);
    let mut plan = Plan::default();
    for device in known {
        if tagged.iter().filter(here).any(|who| &who.name == device) {
            plan.check.push(device.clone());
        } else {
            plan.drop.push(device.clone());
        }
    }
    for who in tagged.iter().filter(here) {
        if known.contains(&who.name) {
            continue;
        }
        let address = who
            .addresses
            .iter()
            .find(|address| address.is_ipv4())
            .or(who.addresses.first());
        if let Some(address) = address {
            plan.identify.push((who.name.clone(), *address));
        }
    }
    plan
}

/// Keeps `models` in step with the tagged devices of the agent behind
/// `changes`, until the task is dropped.
pub async fn follow(
    changes: Arc<Changes>,
    models: Arc<MeshModels>,
    section: ModelServersSection,
    connect_timeout: Duration,
    reserved: Vec<String>,
) {
    let mut moved = changes.subscribe();
    let mut wakes = Wakes::default();
    loop {
        look(&changes, &models, &section, connect_timeout, &reserved).await;
        tokio::select! {
            _ = moved.changed() => {}
            () = tokio::time::sleep(LOOK_EVERY) => {}
            wanted = models.wanted() => {
                for device in wanted {
                    wake(&section, &mut wakes, &device);
                }
            }
        }
    }
}

/// Sends `device` a magic packet, if it has a MAC address configured and
/// was not woken in the last [`WAKE_AGAIN_AFTER`].
fn wake(section: &ModelServersSection, wakes: &mut Wakes, device: &str) {
    let Some(mac) = section.wake.get(device).and_then(|mac| parse_mac(mac).ok()) else {
        return;
    };
    if !wakes.due(device, std::time::Instant::now()) {
        return;
    }
    let sent = std::net::UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, 0)).and_then(|socket| {
        socket.set_broadcast(true)?;
        socket.send_to(&magic_packet(mac), section.wake_address)
    });
    match sent {
        Ok(_) => {
            tracing::info!(%device, to = %section.wake_address, "waking a model server (Wake-on-LAN)")
        }
        Err(error) => tracing::warn!(%device, %error, "the Wake-on-LAN packet could not be sent"),
    }
}

/// One look: drops, checks and asks as [`plan`] says.
async fn look(
    changes: &Changes,
    models: &MeshModels,
    section: &ModelServersSection,
    connect_timeout: Duration,
    reserved: &[String],
) {
    let tagged = match hearth_control::agent_api::peers_tagged(changes.socket(), &section.tag).await
    {
        Ok(tagged) => tagged,
        Err(error) => {
            // Without the agent there is no mesh to reach them over.
            tracing::debug!(%error, "the agent cannot say which model servers there are");
            Vec::new()
        }
    };
    for who in tagged.iter().filter(|who| reserved.contains(&who.name)) {
        tracing::warn!(device = %who.name, "a model server's device has a configured provider's name: it is not used");
    }
    let plan = plan(&tagged, &models.devices(), reserved);
    for device in &plan.drop {
        if models.remove(device) {
            tracing::info!(%device, "a model server left the mesh");
        }
    }
    let checks = plan.check.iter().filter_map(|device| {
        let server = models.server(device)?;
        Some(async move {
            let answers = tokio::time::timeout(ANSWER_WITHIN, server.answers())
                .await
                .unwrap_or(false);
            (server.device.clone(), answers)
        })
    });
    // Servers in for a while are asked again what they serve (a model
    // pulled or removed since), at the address they were found at.
    let relist: Vec<(String, IpAddr)> = plan
        .check
        .iter()
        .filter_map(|device| {
            let server = models.server(device)?;
            (server.found.elapsed() >= RELIST_EVERY).then(|| (device.clone(), server.address))
        })
        .collect();
    let identified = plan
        .identify
        .iter()
        .chain(&relist)
        .map(|(device, address)| async move {
            tokio::time::timeout(
                IDENTIFY_WITHIN,
                hearth_llm::mesh::identify(device, *address, &section.ports, connect_timeout),
            )
            .await
            .ok()
            .flatten()
        });
    let (checked, identified) = futures_util::future::join(
        futures_util::future::join_all(checks),
        futures_util::future::join_all(identified),
    )
    .await;
    for (device, answers) in checked {
        if !answers && models.remove(&device) {
            tracing::info!(%device, "a model server stopped answering");
        }
    }
    for server in identified.into_iter().flatten() {
        let names: Vec<&String> = server.models.keys().collect();
        match models.server(&server.device) {
            Some(known) if known.models.keys().eq(server.models.keys()) => {}
            Some(_) => {
                tracing::info!(device = %server.device, models = ?names, "a model server's models changed")
            }
            None => {
                tracing::info!(device = %server.device, models = ?names, "a model server joined")
            }
        }
        models.put(server);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(name: &str, online: Option<bool>) -> WhoIs {
        WhoIs {
            id: 1,
            name: name.into(),
            user: "tagged-devices".into(),
            tags: vec!["tag:models".into()],
            addresses: vec![
                "fd7a:115c:a1e0::9".parse().unwrap(),
                "100.64.0.9".parse().unwrap(),
            ],
            is_self: false,
            capabilities: Default::default(),
            online,
        }
    }

    #[test]
    fn devices_away_leave_new_ones_are_asked_and_the_rest_are_checked() {
        let tagged = [
            who("gaming-pc", Some(true)),
            who("mac", Some(false)),
            who("nas", None),
        ];
        let known = ["gaming-pc".to_owned(), "mac".to_owned(), "old".to_owned()];
        let plan = plan(&tagged, &known, &[]);
        assert_eq!(plan.check, ["gaming-pc"]);
        assert_eq!(plan.drop, ["mac", "old"], "away, and no longer tagged");
        assert_eq!(
            plan.identify,
            [("nas".to_owned(), "100.64.0.9".parse().unwrap())],
            "a device the coordinator has not spoken of is asked, at its IPv4 address"
        );
    }

    #[test]
    fn a_magic_packet_is_six_ff_then_the_address_sixteen_times() {
        let mac = parse_mac("AA:bb:cc:00:11:22").unwrap();
        assert_eq!(mac, [0xaa, 0xbb, 0xcc, 0x00, 0x11, 0x22]);
        assert_eq!(parse_mac("aa-bb-cc-00-11-22"), Ok(mac));
        for bad in [
            "aa:bb:cc:00:11",
            "aa:bb:cc:00:11:2g",
            "aabbcc001122",
            "a:bb:cc:00:11:223",
        ] {
            assert!(
                parse_mac(bad)
                    .unwrap_err()
                    .to_string()
                    .contains("not a MAC"),
                "{bad}"
            );
        }
        let packet = magic_packet(mac);
        assert_eq!(packet[..6], [0xff; 6]);
        assert!(packet[6..].chunks(6).all(|copy| copy == mac));
        assert_eq!(packet[6..].chunks(6).count(), 16);
    }

    #[test]
    fn a_burst_of_asks_wakes_a_device_once() {
        let mut wakes = Wakes::default();
        let now = std::time::Instant::now();
        assert!(wakes.due("gpu", now));
        assert!(!wakes.due("gpu", now + Duration::from_secs(5)));
        assert!(
            wakes.due("mac", now + Duration::from_secs(5)),
            "each device its own"
        );
        assert!(wakes.due("gpu", now + WAKE_AGAIN_AFTER));
    }

    #[test]
    fn the_hub_itself_is_not_its_own_model_server() {
        let mut hub = who("hub", Some(true));
        hub.is_self = true;
        assert_eq!(plan(&[hub], &[], &[]), Plan::default());
    }

    #[test]
    fn a_device_named_like_a_configured_provider_is_not_used() {
        let local = who("local", Some(true));
        let reserved = ["local".to_owned(), "models".to_owned()];
        assert_eq!(
            plan(&[local], &["local".to_owned()], &reserved),
            Plan {
                drop: vec!["local".to_owned()],
                ..Plan::default()
            }
        );
    }
}
