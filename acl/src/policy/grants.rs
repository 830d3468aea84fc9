//! `grants`: network capabilities (`ip`), application capabilities (`app`)
//! and route steering (`via`), validated as Tailscale's control plane
//! validates them, each refusal naming the field.

use crate::alias::{Alias, AutoGroup, parse_ports};
use crate::compiled::{Capabilities, Principal, Rule, RuleDestination};
use crate::document::{Grant, Protocol};
use crate::filter::{PortRange, proto};

use super::{Names, PolicyError, check_self_sources, invalid, protocols, sources};

/// `tailscale.com` capabilities a policy may grant (Tailscale reserves the
/// rest of its domain for itself).
const TAILSCALE_CAPABILITIES: &[&str] = &[
    "tailscale.com/cap/drive",
    "tailscale.com/cap/kubernetes",
    "tailscale.com/cap/relay",
    "tailscale.com/cap/tsidp",
    "tailscale.com/cap/webui",
];

/// Capabilities Tailscale grants back, from destination to source, with
/// no values, whenever a policy grants the first.
const COMPANIONS: &[(&str, &str)] = &[
    ("tailscale.com/cap/drive", "tailscale.com/cap/drive-sharer"),
    ("tailscale.com/cap/relay", "tailscale.com/cap/relay-target"),
];

/// The rules one grant compiles to: one network rule per `ip` entry and one
/// capability rule for `app`.
pub(super) fn compile(names: &Names, grant: &Grant) -> Result<Vec<Rule>, PolicyError> {
    let app = grant.app.as_ref().filter(|app| !app.is_empty());
    if grant.ip.is_empty() && app.is_none() {
        return Err(invalid("ip and app can not both be empty"));
    }
    let via = via_tags(names, &grant.via)?;
    let (src, src_aliases) = sources(names, &grant.src)?;
    let capabilities = app.map(capabilities).transpose()?;
    let network = grant
        .ip
        .iter()
        .map(|capability| parse_network(capability))
        .collect::<Result<Vec<_>, _>>()?;
    let mut destinations = Vec::new();
    for entry in &grant.dst {
        let alias =
            Alias::parse(entry).map_err(|error| invalid(format!("dst={entry:?}: {error}")))?;
        match &alias {
            Alias::AutoGroup(AutoGroup::DangerAll) => {
                return Err(invalid("cannot use autogroup:danger-all as a dst"));
            }
            Alias::AutoGroup(AutoGroup::Internet) if capabilities.is_some() => {
                return Err(invalid("cannot use app grants with autogroup:internet"));
            }
            Alias::Prefix(prefix) if prefix.prefix_len() == 0 => {
                return Err(invalid(format!(
                    "dst {entry:?}: to allow all IP addresses, use \"*\" or \"autogroup:internet\""
                )));
            }
            _ => {}
        }
        destinations.extend(
            names
                .resolve_destination(&alias)
                .map_err(|error| invalid(format!("dst={entry:?}: {error}")))?,
        );
    }
    let to = |ports: &[PortRange]| -> Vec<RuleDestination> {
        destinations
            .iter()
            .map(|principal| RuleDestination {
                principal: principal.clone(),
                ports: ports.to_vec(),
            })
            .collect()
    };
    check_self_sources(&to(&[PortRange::ALL]), &src_aliases, false)?;
    let mut rules = Vec::new();
    for (protocols, ports) in network {
        let mut rule = Rule::network(src.clone(), to(&ports), protocols);
        rule.via = via.clone();
        rule.grant = true;
        rules.push(rule);
    }
    // A grant with no sources at all grants no capability (one whose
    // sources name nobody, like an empty group, still lists it).
    if let Some(capabilities) = capabilities.filter(|_| !grant.src.is_empty()) {
        let companions: Capabilities = COMPANIONS
            .iter()
            .filter(|(granted, _)| capabilities.contains_key(*granted))
            .map(|(_, companion)| ((*companion).to_owned(), serde_json::Value::Null))
            .collect();
        if !companions.is_empty() {
            // Back from the destinations to the sources (for a user's own
            // devices, the same both ways).
            let to_self = destinations.contains(&Principal::SelfDevices);
            let (back_src, back_dst) = if to_self {
                (src.clone(), to(&[PortRange::ALL]))
            } else {
                let back = src
                    .iter()
                    .map(|source| RuleDestination {
                        principal: Principal::Named(source.clone()),
                        ports: vec![PortRange::ALL],
                    })
                    .collect();
                // Destinations only a destination can be (services, the
                // internet) send nothing back.
                let back_src = destinations
                    .iter()
                    .filter_map(|principal| match principal {
                        Principal::Named(source) => Some(source.clone()),
                        _ => None,
                    })
                    .collect();
                (back_src, back)
            };
            rules.push(Rule {
                src: back_src,
                dst: back_dst,
                protocols: Vec::new(),
                capabilities: companions,
                via: Vec::new(),
                grant: true,
            });
        }
        rules.push(Rule {
            src,
            dst: to(&[PortRange::ALL]),
            protocols: Vec::new(),
            capabilities,
            via,
            grant: true,
        });
    }
    Ok(rules)
}

/// `via`: tags only, each declared.
fn via_tags(names: &Names, via: &[String]) -> Result<Vec<String>, PolicyError> {
    via.iter()
        .map(|entry| match Alias::parse(entry) {
            Ok(Alias::Tag(tag)) if names.tags.contains(&tag) => Ok(tag),
            Ok(Alias::Tag(tag)) => Err(invalid(format!("via: tag {tag:?} not found"))),
            _ => Err(invalid(format!("via={entry:?}: via can only be a tag"))),
        })
        .collect()
}

/// `app`: capability names of the form `domain/path` (not Tailscale's own
/// domain but for the capabilities it lets policies grant), each with a
/// list of JSON objects.
fn capabilities(
    app: &serde_json::Map<String, serde_json::Value>,
) -> Result<Capabilities, PolicyError> {
    let mut granted = Capabilities::new();
    for (name, values) in app {
        check_capability_name(name)
            .map_err(|reason| invalid(format!("app: {name:?}: {reason}")))?;
        let values = values.as_array().ok_or_else(|| {
            invalid(format!(
                "app: {name:?}: the values must be a list of objects"
            ))
        })?;
        if let Some(value) = values.iter().find(|value| !value.is_object()) {
            return Err(invalid(format!(
                "app: {name:?}: the values must be a list of objects, not {value}"
            )));
        }
        granted.insert(name.clone(), serde_json::Value::Array(values.clone()));
    }
    Ok(granted)
}

fn check_capability_name(name: &str) -> Result<(), PolicyError> {
    let shaped = name.split_once('/').is_some_and(|(domain, path)| {
        domain.contains('.')
            && !path.is_empty()
            && domain
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'.' || byte == b'-')
    });
    if !shaped {
        return Err(invalid(
            "capability name must have the form {domain}/{path}",
        ));
    }
    let domain = name.split('/').next().unwrap_or_default();
    if (domain == "tailscale.com" || domain.ends_with(".tailscale.com"))
        && !TAILSCALE_CAPABILITIES.contains(&name)
    {
        return Err(invalid(
            "capability name must not be in the tailscale.com domain",
        ));
    }
    Ok(())
}

/// One `ip` entry: `*`, `PORTS` or `PROTO:PORTS` (ports above 0).
fn parse_network(capability: &str) -> Result<(Vec<u8>, Vec<PortRange>), PolicyError> {
    if capability == "*" {
        return Ok((proto::DEFAULT.to_vec(), vec![PortRange::ALL]));
    }
    let (protocol, ports) = match capability.split_once(':') {
        Some((protocol, ports)) => (Some(Protocol::Text(protocol.to_owned())), ports),
        None => (None, capability),
    };
    let protocols = protocols(protocol.as_ref())
        .map_err(|error| invalid(format!("ip={capability:?}: {error}")))?;
    let ports =
        parse_ports(ports).map_err(|error| invalid(format!("ip={capability:?}: {error}")))?;
    if ports
        .iter()
        .any(|range| range.first == 0 && *range != PortRange::ALL)
    {
        return Err(invalid(format!(
            "ip={capability:?}: port range {ports:?}: first port must be >0, or use '*' for wildcard",
            ports = capability.rsplit(':').next().unwrap_or(capability)
        )));
    }
    Ok((protocols, ports))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_names_are_domain_and_path_outside_tailscale_s_own() {
        assert!(check_capability_name("example.com/cap/test").is_ok());
        assert!(check_capability_name("my-company.internal/cap/access").is_ok());
        assert!(check_capability_name("tailscale.com/cap/drive").is_ok());
        assert!(check_capability_name("https://tailscale.com/cap/ingress").is_err());
        assert!(check_capability_name("example.com").is_err());
        assert!(check_capability_name("localhost/cap").is_err());
        let reserved = check_capability_name("tailscale.com/cap/funnel")
            .unwrap_err()
            .to_string();
        assert!(reserved.contains("tailscale.com domain"), "{reserved}");
    }

    #[test]
    fn refusals_name_the_grant_and_its_field() {
        let refused = |grants: &str| {
            crate::Policy::parse(&format!(
                r#"{{"tagOwners": {{"tag:router": ["alice@"]}}, "grants": {grants}}}"#
            ))
            .unwrap_err()
            .to_string()
        };
        let message = refused(
            r#"[{"src": ["*"], "dst": ["10.0.0.0/8"], "ip": ["*"], "via": ["autogroup:tagged"]}]"#,
        );
        assert!(
            message.contains("grants[0]") && message.contains("via can only be a tag"),
            "{message}"
        );
        let message =
            refused(r#"[{"src": ["*"], "dst": ["10.0.0.0/8"], "ip": ["*"], "via": ["tag:nope"]}]"#);
        assert!(message.contains(r#"tag "tag:nope" not found"#), "{message}");
        let message = refused(r#"[{"src": ["*"], "dst": ["*"]}]"#);
        assert!(
            message.contains("ip and app can not both be empty"),
            "{message}"
        );
        let message = refused(r#"[{"src": ["*"], "dst": ["0.0.0.0/0"], "ip": ["*"]}]"#);
        assert!(
            message.contains("use \"*\" or \"autogroup:internet\""),
            "{message}"
        );
        let message = refused(r#"[{"src": ["*"], "dst": ["autogroup:self"], "ip": ["*"]}]"#);
        assert!(
            message.contains("autogroup:self can only be used"),
            "{message}"
        );
        let message = refused(
            r#"[{"src": ["*"], "dst": ["autogroup:internet"], "app": {"a.example/x": [{}]}}]"#,
        );
        assert!(
            message.contains("app grants with autogroup:internet"),
            "{message}"
        );
        let message =
            refused(r#"[{"src": ["*"], "dst": ["*"], "app": {"a.example/x": ["text"]}}]"#);
        assert!(message.contains("list of objects"), "{message}");
    }

    #[test]
    fn ip_entries_are_ports_or_protocols_with_ports() {
        assert_eq!(
            parse_network("tcp:22").unwrap(),
            (vec![proto::TCP], vec![PortRange::single(22)])
        );
        assert_eq!(
            parse_network("443").unwrap().1,
            vec![PortRange::single(443)]
        );
        assert_eq!(parse_network("icmp:*").unwrap().0, vec![proto::ICMP]);
        let bare_protocol = parse_network("icmp").unwrap_err().to_string();
        assert!(
            bare_protocol.contains("invalid first integer"),
            "{bare_protocol}"
        );
        let zero = parse_network("tcp:0").unwrap_err().to_string();
        assert!(zero.contains("first port must be >0"), "{zero}");
    }
}
