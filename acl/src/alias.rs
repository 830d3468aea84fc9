//! The names a policy uses for sources and destinations, and `alias:ports`.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::filter::PortRange;

/// The `autogroup:` names Hearth understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AutoGroup {
    /// Every untagged device.
    Member,
    /// Every tagged device.
    Tagged,
    /// The source user's own untagged devices (destinations only).
    SelfDevices,
    /// Traffic to the internet through exit nodes (destinations only).
    Internet,
    /// Every address at all.
    DangerAll,
}

/// One name as written in a policy, classified but not yet resolved.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Alias {
    /// `*`.
    Wildcard,
    /// A user login: `alice@example.com`, or `alice@` for a user without a domain.
    User(String),
    /// `group:name`.
    Group(String),
    /// `tag:name`.
    Tag(String),
    /// `autogroup:name`.
    AutoGroup(AutoGroup),
    /// A name from `hosts`.
    Host(String),
    /// An IP address or prefix literal.
    Prefix(IpNet),
    /// `svc:name`: a Tailscale Service (destinations only), named in full.
    Service(String),
}

/// Why an alias or port list could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AliasError {
    /// An `autogroup:` Hearth does not know.
    #[error(
        "unknown autogroup {0:?} (Hearth knows autogroup:member, autogroup:tagged, autogroup:self, autogroup:internet, autogroup:danger-all)"
    )]
    UnknownAutoGroup(String),
    /// A port list that is not ports.
    #[error("port range {0:?}: invalid first integer")]
    Ports(String),
    /// An empty alias.
    #[error("empty alias")]
    Empty,
    /// A destination without `:ports`.
    #[error("{0:?} has no port part (write {0}:* for all ports)")]
    MissingPorts(String),
    /// A malformed prefix.
    #[error("{0:?} is not a valid IP prefix")]
    BadPrefix(String),
    /// A service whose name is not a DNS label.
    #[error(
        "{0:?} is not a service name (svc: then 1-63 lowercase letters, digits and hyphens, not at either end)"
    )]
    BadService(String),
}

impl Alias {
    /// Classifies `text`.
    pub fn parse(text: &str) -> Result<Alias, AliasError> {
        if text.is_empty() {
            return Err(AliasError::Empty);
        }
        if text == "*" {
            return Ok(Alias::Wildcard);
        }
        if let Some(name) = text.strip_prefix("autogroup:") {
            return Ok(Alias::AutoGroup(match name {
                "member" => AutoGroup::Member,
                "tagged" => AutoGroup::Tagged,
                "self" => AutoGroup::SelfDevices,
                "internet" => AutoGroup::Internet,
                "danger-all" => AutoGroup::DangerAll,
                _ => return Err(AliasError::UnknownAutoGroup(text.to_owned())),
            }));
        }
        if text.starts_with("group:") {
            return Ok(Alias::Group(text.to_owned()));
        }
        if text.starts_with("tag:") {
            return Ok(Alias::Tag(text.to_owned()));
        }
        if text.starts_with("svc:") {
            return service_name(text).map(Alias::Service);
        }
        if let Some(prefix) = parse_prefix(text)? {
            return Ok(Alias::Prefix(prefix));
        }
        if text.contains('@') {
            // `user:alice@example.com` is `alice@example.com`, and
            // `user:*@example.com` every user of the domain.
            let login = text.strip_prefix("user:").unwrap_or(text);
            return Ok(Alias::User(login.to_owned()));
        }
        Ok(Alias::Host(text.to_owned()))
    }
}

/// `text` as a service's name, `svc:` and a DNS label (the name under
/// which MagicDNS answers for it).
pub fn service_name(text: &str) -> Result<String, AliasError> {
    let bad = || AliasError::BadService(text.to_owned());
    let label = text.strip_prefix("svc:").ok_or_else(bad)?;
    let fits = (1..=63).contains(&label.len())
        && label
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-');
    if fits {
        Ok(text.to_owned())
    } else {
        Err(bad())
    }
}

/// The DNS label of service `name` (`chat` for `svc:chat`): MagicDNS
/// answers for it as `chat.<tailnet>`.
pub fn service_label(name: &str) -> &str {
    name.strip_prefix("svc:").unwrap_or(name)
}

/// An IP address (as a host prefix) or a CIDR prefix; `None` when `text` is
/// not shaped like an address at all, an error when it is but is invalid.
pub fn parse_prefix(text: &str) -> Result<Option<IpNet>, AliasError> {
    if let Ok(address) = text.parse::<IpAddr>() {
        return Ok(Some(IpNet::from(address)));
    }
    let Some((address, length)) = text.split_once('/') else {
        return Ok(None);
    };
    if address.parse::<IpAddr>().is_err() {
        return Ok(None);
    }
    let bad = || AliasError::BadPrefix(text.to_owned());
    let _: u8 = length.parse().map_err(|_| bad())?;
    let prefix: IpNet = text.parse().map_err(|_| bad())?;
    Ok(Some(prefix))
}

/// Parses the ports of a destination: `*`, or a comma list of `N` and `N-M`.
pub fn parse_ports(text: &str) -> Result<Vec<PortRange>, AliasError> {
    if text == "*" {
        return Ok(vec![PortRange::ALL]);
    }
    let bad = || AliasError::Ports(text.to_owned());
    text.split(',')
        .map(|part| {
            let (first, last) = part.split_once('-').unwrap_or((part, part));
            let first: u16 = first.parse().map_err(|_| bad())?;
            let last: u16 = last.parse().map_err(|_| bad())?;
            if first > last {
                return Err(bad());
            }
            Ok(PortRange { first, last })
        })
        .collect()
}

/// Splits `alias:ports` (the ports follow the last colon; an IPv6 address may
/// be written in brackets, `[fd7a::1]:22`).
pub fn split_destination(text: &str) -> Result<(&str, &str), AliasError> {
    if let Some(rest) = text.strip_prefix('[')
        && let Some((address, ports)) = rest.split_once("]:")
    {
        return Ok((address, ports));
    }
    text.rsplit_once(':')
        .ok_or_else(|| AliasError::MissingPorts(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_are_classified() {
        assert_eq!(Alias::parse("*"), Ok(Alias::Wildcard));
        assert_eq!(
            Alias::parse("alice@example.com"),
            Ok(Alias::User("alice@example.com".into()))
        );
        assert_eq!(Alias::parse("alice@"), Ok(Alias::User("alice@".into())));
        assert_eq!(
            Alias::parse("group:family"),
            Ok(Alias::Group("group:family".into()))
        );
        assert_eq!(
            Alias::parse("tag:server"),
            Ok(Alias::Tag("tag:server".into()))
        );
        assert_eq!(
            Alias::parse("autogroup:self"),
            Ok(Alias::AutoGroup(AutoGroup::SelfDevices))
        );
        assert_eq!(
            Alias::parse("100.64.0.1"),
            Ok(Alias::Prefix("100.64.0.1/32".parse().unwrap()))
        );
        assert_eq!(
            Alias::parse("fd7a::/48"),
            Ok(Alias::Prefix("fd7a::/48".parse().unwrap()))
        );
        assert_eq!(
            Alias::parse("webserver"),
            Ok(Alias::Host("webserver".into()))
        );
        assert!(matches!(
            Alias::parse("autogroup:admin"),
            Err(AliasError::UnknownAutoGroup(_))
        ));
        assert_eq!(
            Alias::parse("10.0.0.0/33"),
            Err(AliasError::BadPrefix("10.0.0.0/33".into()))
        );
        assert_eq!(Alias::parse(""), Err(AliasError::Empty));
    }

    #[test]
    fn ports_take_wildcards_lists_and_ranges() {
        assert_eq!(parse_ports("*"), Ok(vec![PortRange::ALL]));
        assert_eq!(parse_ports("22"), Ok(vec![PortRange::single(22)]));
        assert_eq!(
            parse_ports("22,80-443"),
            Ok(vec![
                PortRange::single(22),
                PortRange {
                    first: 80,
                    last: 443
                }
            ])
        );
        for bad in ["ssh", "", "-1", "99999", "443-80", "22,", "1-2-3"] {
            assert!(parse_ports(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn destinations_split_at_the_last_colon() {
        assert_eq!(split_destination("tag:server:22"), Ok(("tag:server", "22")));
        assert_eq!(
            split_destination("fd7a:115c:a1e0::/48:*"),
            Ok(("fd7a:115c:a1e0::/48", "*"))
        );
        assert_eq!(
            split_destination("[fd7a:115c:a1e0::10]:22"),
            Ok(("fd7a:115c:a1e0::10", "22"))
        );
        assert_eq!(
            split_destination("autogroup:self"),
            Ok(("autogroup", "self"))
        );
        assert!(split_destination("webserver").is_err());
    }
}
