//! What a compiled rule's destinations name and what they mean in a node's
//! filter: the targets they become, and the address space `autogroup:internet`
//! stands for. Pure.

use ipnet::IpNet;

use crate::filter::{Source, Target};

/// What a rule's destination names, after groups and hosts are expanded:
/// what a source can name too (a [`Source`]: identities and addresses), or
/// what only a destination can.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Principal {
    /// Nodes by who they are, or addresses, as a source names them (`*` is
    /// every node, every approved route, any address).
    Named(Source),
    /// `autogroup:internet`: traffic leaving through exit nodes.
    Internet,
    /// `autogroup:self`: the source user's own untagged devices.
    SelfDevices,
    /// `svc:name`: the addresses of a service, on the device hosting it.
    Service(String),
}

impl Principal {
    /// Whether the principal names a node owned by `user` (counted only when
    /// untagged) carrying `tags` by who it is ([`Source::names`]); prefixes,
    /// `autogroup:internet`, `autogroup:self` and services name no one this
    /// way.
    pub fn names(&self, user: &str, tags: &std::collections::BTreeSet<String>) -> bool {
        matches!(self, Principal::Named(source) if source.names(user, tags))
    }
}

/// The filter targets a destination principal stands for on a node it names.
pub(crate) fn targets(principal: &Principal) -> Vec<Target> {
    match principal {
        Principal::Named(Source::Any | Source::All) => vec![Target::Any],
        Principal::Named(Source::Prefix(prefix)) => vec![Target::Prefix(*prefix)],
        Principal::Named(_) => vec![Target::SelfAddresses],
        Principal::Internet => internet_prefixes()
            .into_iter()
            .map(Target::Prefix)
            .collect(),
        // The host's addresses for it: `Engine::filter_for` knows them.
        Principal::SelfDevices | Principal::Service(_) => Vec::new(),
    }
}

/// IPv4 addresses that are not "the internet": private, shared (CGNAT, which
/// holds the tailnet), loopback, link-local, multicast and reserved ranges.
/// For IPv6 the internet is the global unicast space, 2000::/3.
const NOT_INTERNET: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "224.0.0.0/3",
];

/// The public address space `autogroup:internet` stands for: everything
/// outside [`NOT_INTERNET`], as a list of prefixes.
pub fn internet_prefixes() -> Vec<IpNet> {
    let excluded: Vec<IpNet> = NOT_INTERNET
        .iter()
        .map(|text| text.parse().expect("constant prefixes parse"))
        .collect();
    let mut result = Vec::new();
    subtract(
        "0.0.0.0/0".parse().expect("constant prefix"),
        &excluded,
        &mut result,
    );
    result.push("2000::/3".parse().expect("constant prefix"));
    result
}

/// Appends to `out` the prefixes covering `prefix` minus every excluded prefix.
fn subtract(prefix: IpNet, excluded: &[IpNet], out: &mut Vec<IpNet>) {
    if excluded.iter().any(|hole| hole.contains(&prefix)) {
        return;
    }
    if !excluded.iter().any(|hole| prefix.contains(hole)) {
        out.push(prefix);
        return;
    }
    let Ok(halves) = prefix.subnets(prefix.prefix_len() + 1) else {
        return;
    };
    for half in halves {
        subtract(half, excluded, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_internet_excludes_private_and_tailnet_space() {
        let internet = internet_prefixes();
        let contains = |address: &str| {
            let address: std::net::IpAddr = address.parse().unwrap();
            internet.iter().any(|prefix| prefix.contains(&address))
        };
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.0",
            "2001:db8::1",
            "223.255.255.255",
        ] {
            assert!(contains(public), "{public}");
        }
        for private in [
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.255",
            "192.168.1.1",
            "172.31.0.1",
            "127.0.0.1",
            "fd7a:115c:a1e0::1",
            "fe80::1",
            "::1",
            "239.0.0.1",
        ] {
            assert!(!contains(private), "{private}");
        }
        assert!(internet.len() < 100, "{} prefixes", internet.len());
    }
}
