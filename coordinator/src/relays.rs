//! The relay regions nodes may use: the relay embedded in the coordinator
//! (region [`EMBEDDED_REGION`]) and standalone relays an admin added, and
//! the same list in the DERP-map form Tailscale clients read (pure); then
//! the use cases an admin and a standalone relay drive (add, list, remove,
//! hello, the admitted keys it follows).

use std::collections::BTreeMap;
use std::net::IpAddr;

use hearth_control::tailcfg::DerpMap;
use hearth_control::wire::RelayRegion;

/// The region id of the coordinator's own relay.
pub const EMBEDDED_REGION: u16 = 900;
/// The short name of the coordinator's own relay (`relay hub` in `status`).
pub const EMBEDDED_CODE: &str = "hub";

/// Host and port of an `https://host:port/...` URL (443 when no port is
/// given; brackets of an IPv6 host removed).
pub fn host_port(url: &str) -> (String, u16) {
    let authority = url
        .trim_start_matches("https://")
        .split('/')
        .next()
        .unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(':') && !authority.ends_with(']') => {
            (host.to_owned(), port.parse::<u16>().unwrap_or(443))
        }
        _ => (authority.to_owned(), 443),
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    (host, port)
}

/// The region of the relay embedded in the coordinator at `public_url`,
/// with its STUN responder on `stun_port` and its certificate's SHA-256.
pub fn embedded(public_url: &str, stun_port: Option<u16>, certificate_sha256: &str) -> RelayRegion {
    RelayRegion {
        id: EMBEDDED_REGION,
        code: EMBEDDED_CODE.into(),
        url: public_url.trim_end_matches('/').to_owned(),
        fingerprint: certificate_sha256.to_owned(),
        stun_port,
    }
}

/// The DERP map of `regions`, each with its certificate pinned by SHA-256
/// (`CertName: sha256-raw:<hex>`) so self-signed relays work, and never
/// Tailscale's own relays. A relay at `public_name` (the coordinator's
/// name with a certificate from a public CA, which clients asking for that
/// name are served) is not pinned: clients check its certificate as any
/// other.
pub fn derp_map(regions: &[RelayRegion], public_name: Option<&str>) -> DerpMap {
    DerpMap {
        regions: regions
            .iter()
            .map(|region| (region.id.to_string(), derp_region(region, public_name)))
            .collect::<BTreeMap<_, _>>(),
        omit_default_regions: true,
    }
}

fn derp_region(region: &RelayRegion, public_name: Option<&str>) -> serde_json::Value {
    let (host, port) = host_port(&region.url);
    let mut node = serde_json::json!({
        "Name": format!("{}a", region.id),
        "RegionID": region.id,
        "HostName": host,
        "DERPPort": port,
        "STUNPort": region.stun_port.map_or(-1, i32::from),
    });
    if !public_name.is_some_and(|name| name.eq_ignore_ascii_case(&host)) {
        node["CertName"] = format!("sha256-raw:{}", region.fingerprint).into();
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(address)) => node["IPv4"] = address.to_string().into(),
        Ok(IpAddr::V6(address)) => node["IPv6"] = address.to_string().into(),
        Err(_) => {}
    }
    serde_json::json!({
        "RegionID": region.id,
        "RegionCode": region.code,
        "RegionName": format!("Hearth relay {}", region.code),
        "Nodes": [node],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relay_map_points_at_each_relay_with_its_certificate_pinned() {
        let map = derp_map(
            &[embedded("https://10.0.0.1:8443", Some(3478), "abcd")],
            None,
        );
        let node = &map.regions["900"]["Nodes"][0];
        assert_eq!(node["HostName"], "10.0.0.1");
        assert_eq!(node["IPv4"], "10.0.0.1");
        assert_eq!(node["DERPPort"], 8443);
        assert_eq!(node["STUNPort"], 3478);
        assert_eq!(node["CertName"], "sha256-raw:abcd");
        assert_eq!(map.regions["900"]["RegionCode"], "hub");
        assert!(map.omit_default_regions, "never Tailscale's own relays");
        let named = derp_map(&[embedded("https://hub.example:443", None, "ab")], None);
        let node = &named.regions["900"]["Nodes"][0];
        assert_eq!(node["HostName"], "hub.example");
        assert_eq!(node["STUNPort"], -1);
        assert!(node.get("IPv4").is_none());
        let v6 = derp_map(&[embedded("https://[fd00::1]:8443", None, "ab")], None);
        assert_eq!(v6.regions["900"]["Nodes"][0]["IPv6"], "fd00::1");
        let both = derp_map(
            &[
                embedded("https://10.0.0.1:8443", None, "ab"),
                RelayRegion {
                    id: 901,
                    code: "cafe".into(),
                    url: "https://10.0.0.9".into(),
                    fingerprint: "cd".into(),
                    stun_port: None,
                },
            ],
            None,
        );
        assert_eq!(both.regions.len(), 2);
        assert_eq!(both.regions["901"]["Nodes"][0]["DERPPort"], 443);
    }

    #[test]
    fn a_relay_at_the_coordinators_public_name_is_checked_not_pinned() {
        let regions = [
            embedded("https://Hub.Home.Example:8443", None, "ab"),
            RelayRegion {
                id: 901,
                code: "cafe".into(),
                url: "https://relay.home.example".into(),
                fingerprint: "cd".into(),
                stun_port: None,
            },
        ];
        let map = derp_map(&regions, Some("hub.home.example"));
        assert!(map.regions["900"]["Nodes"][0].get("CertName").is_none());
        assert_eq!(map.regions["901"]["Nodes"][0]["CertName"], "sha256-raw:cd");
    }

    #[test]
    fn hosts_and_ports_come_out_of_urls() {
        assert_eq!(host_port("https://hub:8443"), ("hub".into(), 8443));
        assert_eq!(host_port("https://hub"), ("hub".into(), 443));
        assert_eq!(host_port("https://[fd00::1]:9/x"), ("fd00::1".into(), 9));
        assert_eq!(host_port("https://[fd00::1]"), ("fd00::1".into(), 443));
    }
}

/// Why an admin's relay is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RelayRefused {
    /// Not a name a relay may have.
    #[error("a relay's name is 1 to 16 lowercase letters, digits and dashes, not `{0}`")]
    Code(String),
    /// The embedded relay's name.
    #[error("`{EMBEDDED_CODE}` is the coordinator's own relay")]
    Embedded,
    /// Not `https://host[:port]`.
    #[error("a relay's URL is https://host[:port], not `{0}`")]
    Url(String),
}

/// Whether `code` may name a relay: 1 to 16 lowercase letters, digits and
/// dashes, and not the embedded relay's.
pub fn check_code(code: &str) -> Result<(), RelayRefused> {
    let shaped = !code.is_empty()
        && code.len() <= 16
        && code
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-');
    if !shaped {
        return Err(RelayRefused::Code(code.to_owned()));
    }
    if code == EMBEDDED_CODE {
        return Err(RelayRefused::Embedded);
    }
    Ok(())
}

/// Whether `url` may locate a relay: `https://host[:port]`, nothing after.
pub fn check_url(url: &str) -> Result<(), RelayRefused> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| RelayRefused::Url(url.to_owned()))?;
    if rest.is_empty() || rest.contains('/') {
        return Err(RelayRefused::Url(url.to_owned()));
    }
    Ok(())
}

/// Every region nodes may use: the embedded relay, then each standalone
/// relay that has said hello (its certificate is known).
pub fn regions(embedded: &RelayRegion, rows: &[crate::db::relays::RelayRow]) -> Vec<RelayRegion> {
    let mut all = vec![embedded.clone()];
    all.extend(rows.iter().filter_map(|row| {
        Some(RelayRegion {
            id: u16::try_from(row.id).ok()?,
            code: row.code.clone(),
            url: row.url.clone(),
            fingerprint: row.fingerprint.clone()?,
            stun_port: row.stun_port.and_then(|port| u16::try_from(port).ok()),
        })
    }));
    all
}

/// SHA-256 (hex) of a relay's secret, as stored.
pub(crate) fn secret_hash(secret: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

/// A relay an admin added: as listed, and the token it starts with (shown
/// once: the secret in it is never stored, only its hash).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct CreatedRelay {
    /// The relay as listed.
    pub relay: crate::db::relays::RelayRow,
    /// The one-line relay token.
    pub token: String,
}

/// Body of `relays add`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRelay {
    /// Its short name.
    pub code: String,
    /// Where nodes reach it.
    pub url: String,
}
