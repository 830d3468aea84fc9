//! Where the router may send requests: the addresses of compute nodes an
//! admin allows (`--node-networks`). A node states its URL in its
//! heartbeat and the router posts to it (`/v1/compute`, `/v1/attest`) and
//! passes the answer back, so without this a node credential, or the
//! unauthenticated attest endpoint, turned the router into a client of any
//! address it can reach: cloud metadata (`169.254.169.254`), its own
//! loopback services (`[::1]:22`). Pure.
//!
//! By default only private networks are allowed (RFC 1918, shared address
//! space, IPv6 unique local). Loopback and link-local addresses are never
//! allowed unless a listed network covers them, and the well-known
//! metadata addresses only when listed exactly (as a /32 or /128).

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// The networks allowed by default.
pub const DEFAULT_NETWORKS: &[&str] = &[
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "fc00::/7",
];

/// Instance metadata services and the like, which no node lives at.
const METADATA: &[&str] = &[
    "169.254.169.254",
    "169.254.170.2",
    "100.100.100.200",
    "fd00:ec2::254",
];

/// Why a node's URL is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unreachable {
    /// Not `http://ADDRESS:PORT` (an address, not a name).
    #[error("`url` must be http://IP:port (an address, not a name): {0}")]
    NotAnAddress(String),
    /// An address no node may have, or outside the allowed networks.
    #[error(
        "{0} is outside the networks this router sends to (--node-networks); loopback, link-local and metadata addresses are refused unless listed"
    )]
    NotAllowed(SocketAddr),
}

/// Why `--node-networks` is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NetworksError {
    /// An entry that is neither a CIDR prefix nor an address.
    #[error("--node-networks: `{0}` is not a network or address")]
    NotANetwork(String),
    /// No entry at all.
    #[error("--node-networks lists no network")]
    Empty,
}

/// The networks compute nodes may be reached in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeNetworks {
    allowed: Vec<IpNet>,
}

impl Default for NodeNetworks {
    fn default() -> Self {
        NodeNetworks {
            allowed: DEFAULT_NETWORKS
                .iter()
                .map(|network| network.parse().expect("the defaults parse"))
                .collect(),
        }
    }
}

impl NodeNetworks {
    /// The networks in `entries` (CIDR prefixes or single addresses).
    pub fn parse(entries: &[String]) -> Result<NodeNetworks, NetworksError> {
        let allowed = entries
            .iter()
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map(|network| network.trunc())
                    .map_err(|_| NetworksError::NotANetwork(entry.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if allowed.is_empty() {
            return Err(NetworksError::Empty);
        }
        Ok(NodeNetworks { allowed })
    }

    /// The address `url` names, when the router may send to it.
    pub fn check(&self, url: &str) -> Result<SocketAddr, Unreachable> {
        let refuse = || Unreachable::NotAnAddress(url.chars().take(100).collect());
        let rest = url.strip_prefix("http://").ok_or_else(refuse)?;
        let address: SocketAddr = rest.trim_end_matches('/').parse().map_err(|_| refuse())?;
        let ip = address.ip().to_canonical();
        let never = address.port() == 0
            || ip.is_unspecified()
            || ip.is_multicast()
            || matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
        let metadata = METADATA
            .iter()
            .any(|text| text.parse::<IpAddr>().is_ok_and(|known| known == ip));
        let allowed = self.allowed.iter().any(|network| {
            network.contains(&ip) && (!metadata || network.prefix_len() == network.max_prefix_len())
        });
        if never || !allowed {
            return Err(Unreachable::NotAllowed(address));
        }
        Ok(address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_default_only_private_networks_are_reached() {
        let networks = NodeNetworks::default();
        for good in [
            "http://10.0.0.2:7000",
            "http://192.168.1.9:7000/",
            "http://[fd12::7]:7000",
        ] {
            assert!(networks.check(good).is_ok(), "{good}");
        }
        for bad in [
            "http://169.254.169.254:80",
            "http://[fd00:ec2::254]:80",
            "http://127.0.0.1:22",
            "http://[::1]:22",
            "http://[::ffff:127.0.0.1]:22",
            "http://[fe80::1]:7000",
            "http://203.0.113.9:7000",
            "http://0.0.0.0:7000",
            "http://10.0.0.2:0",
            "http://255.255.255.255:7000",
        ] {
            assert!(
                matches!(networks.check(bad), Err(Unreachable::NotAllowed(_))),
                "{bad}"
            );
        }
        for malformed in [
            "https://10.0.0.2:7000",
            "http://node.example:7000",
            "ftp://x",
        ] {
            assert!(
                matches!(networks.check(malformed), Err(Unreachable::NotAnAddress(_))),
                "{malformed}"
            );
        }
    }

    #[test]
    fn an_admin_may_allow_loopback_but_metadata_only_by_name() {
        let networks =
            NodeNetworks::parse(&["127.0.0.0/8".into(), "169.254.0.0/16".into()]).unwrap();
        assert!(networks.check("http://127.0.0.1:7000").is_ok());
        assert!(networks.check("http://169.254.10.1:7000").is_ok());
        assert!(networks.check("http://169.254.169.254:80").is_err());
        assert!(
            networks.check("http://10.0.0.2:7000").is_err(),
            "not listed"
        );
        let exact = NodeNetworks::parse(&["169.254.169.254".into()]).unwrap();
        assert!(exact.check("http://169.254.169.254:80").is_ok());
        assert!(NodeNetworks::parse(&["nonsense".into()]).is_err());
        assert!(NodeNetworks::parse(&[]).is_err());
    }
}
