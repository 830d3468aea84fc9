//! Where the coordinator is dialed, when not at its URL's address: the hub's
//! own agent in Podman alone shares the coordinator's pod, where the URL's
//! address (the machine's, with the port Podman publishes) does not lead
//! back in, so it dials the coordinator on the pod's loopback
//! (`--coordinator-address`). The URL stays what the node knows the
//! coordinator by; only the connection goes elsewhere, to a server that
//! must still show the pinned certificate. The coordinator's own relay
//! (a relay URL with the same host and port) is dialed the same way.

use std::net::SocketAddr;
use std::sync::OnceLock;

static OVERRIDE: OnceLock<(String, SocketAddr)> = OnceLock::new();

/// Dials `address` whenever a URL with `coordinator_url`'s host and port
/// is asked for (once, at start).
pub fn set(coordinator_url: &str, address: SocketAddr) {
    if let Some(authority) = authority(coordinator_url) {
        let _ = OVERRIDE.set((authority, address));
    }
}

/// `url` as it is dialed: its host and port replaced when they are the
/// coordinator's and [`set`] was told another address.
pub fn url(url: &str) -> String {
    let Some((authority_from, address)) = OVERRIDE.get() else {
        return url.to_owned();
    };
    rewrite(url, authority_from, *address)
}

/// `url` with `to` in place of its authority when that is `from`.
pub fn rewrite(url: &str, from: &str, to: SocketAddr) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find('/').unwrap_or(rest.len());
    let own = with_port(scheme, &rest[..end]);
    if own.as_deref() != Some(from) {
        return url.to_owned();
    }
    format!("{scheme}://{to}{}", &rest[end..])
}

/// `host:port` of `url` (the scheme's port when none is written).
fn authority(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find('/').unwrap_or(rest.len());
    with_port(scheme, &rest[..end])
}

fn with_port(scheme: &str, authority: &str) -> Option<String> {
    let written = authority
        .rsplit_once(':')
        .filter(|(host, port)| !host.is_empty() && !port.contains(']'))
        .and_then(|(_, port)| port.parse::<u16>().ok());
    if written.is_some() {
        return Some(authority.to_ascii_lowercase());
    }
    let port = match scheme {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    Some(format!("{}:{port}", authority.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coordinators_urls_are_dialed_at_the_address_given() {
        let inside: SocketAddr = "127.0.0.1:8443".parse().unwrap();
        let from = authority("https://10.77.0.2").unwrap();
        assert_eq!(from, "10.77.0.2:443");
        assert_eq!(
            rewrite("https://10.77.0.2/api/v1/register", &from, inside),
            "https://127.0.0.1:8443/api/v1/register"
        );
        assert_eq!(
            rewrite("https://10.77.0.2:443/derp", &from, inside),
            "https://127.0.0.1:8443/derp"
        );
        // Anything else is dialed as it is.
        for other in [
            "https://10.77.0.2:8443/x",
            "https://relay.example/derp",
            "http://10.77.0.2/x",
        ] {
            assert_eq!(rewrite(other, &from, inside), other);
        }
        assert_eq!(
            authority("https://Hub.Home:8443/"),
            Some("hub.home:8443".into())
        );
    }
}
