//! The coordinator's DNS settings for its nodes, from the file given with
//! `--dns-config` (JSON, shaped as Headscale's `dns` section):
//!
//! ```json
//! {
//!   "nameservers": {
//!     "global": ["192.0.2.53"],
//!     "split": {"corp.example": ["10.1.0.53"]}
//!   },
//!   "search_domains": ["corp.example"],
//!   "extra_records": [{"name": "nas.home.arpa", "type": "A", "value": "100.64.0.9"}]
//! }
//! ```
//!
//! Every part is optional. Pure: text in, checked settings out; the map
//! ([`crate::tsmap`]) turns them into each client's DNS configuration.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Deserialize;

use hearth_files::config::ConfigError;

/// Checked DNS settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsSettings {
    /// Resolvers for every name outside the split domains (none: each
    /// device keeps its own).
    pub global: Vec<IpAddr>,
    /// Domains answered by their own resolvers (split DNS), lower case.
    pub split: BTreeMap<String, Vec<IpAddr>>,
    /// Domains a short name is tried under, after the MagicDNS domain.
    pub search_domains: Vec<String>,
    /// Names answered from the map, beside the nodes' own.
    pub extra_records: Vec<ExtraRecord>,
}

/// One extra record: a name and its address (`A` for IPv4, `AAAA` for IPv6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtraRecord {
    /// Its name, lower case, without a trailing dot.
    pub name: String,
    /// Its address.
    pub address: IpAddr,
}

impl DnsSettings {
    /// What agents' resolvers answer: the nodes under `domain`, and these
    /// settings.
    pub fn for_mesh(&self, domain: &str) -> hearth_control::wire::MeshDns {
        hearth_control::wire::MeshDns {
            domain: domain.to_owned(),
            search_domains: self.search_domains.clone(),
            split: self.split.clone(),
            extra_records: self
                .extra_records
                .iter()
                .map(|record| hearth_control::wire::DnsName {
                    name: record.name.clone(),
                    address: record.address,
                })
                .collect(),
        }
    }
}

impl ExtraRecord {
    /// `A` or `AAAA`.
    pub fn kind(&self) -> &'static str {
        match self.address {
            IpAddr::V4(_) => "A",
            IpAddr::V6(_) => "AAAA",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    nameservers: Nameservers,
    #[serde(default)]
    search_domains: Vec<String>,
    #[serde(default)]
    extra_records: Vec<RecordEntry>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Nameservers {
    #[serde(default)]
    global: Vec<String>,
    #[serde(default)]
    split: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordEntry {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    value: String,
}

/// Reads DNS settings from `text`; the error names what is wrong and where.
pub fn parse(text: &str) -> Result<DnsSettings, ConfigError> {
    let file: File = serde_json::from_str(text)?;
    let global = file
        .nameservers
        .global
        .iter()
        .map(|address| resolver(address, "nameservers.global"))
        .collect::<Result<_, _>>()?;
    let mut split = BTreeMap::new();
    for (domain, resolvers) in &file.nameservers.split {
        let place = format!("nameservers.split.{domain}");
        let domain = domain_name(domain, &place)?;
        if resolvers.is_empty() {
            return Err(ConfigError::at(place, "no resolver"));
        }
        let resolvers = resolvers
            .iter()
            .map(|address| resolver(address, &place))
            .collect::<Result<_, _>>()?;
        if split.insert(domain.clone(), resolvers).is_some() {
            return Err(ConfigError::at(place, format!("`{domain}` twice")));
        }
    }
    let search_domains = file
        .search_domains
        .iter()
        .map(|domain| domain_name(domain, "search_domains"))
        .collect::<Result<_, _>>()?;
    let extra_records = file
        .extra_records
        .iter()
        .enumerate()
        .map(|(index, entry)| record(entry, &format!("extra_records[{index}]")))
        .collect::<Result<_, _>>()?;
    Ok(DnsSettings {
        global,
        split,
        search_domains,
        extra_records,
    })
}

fn resolver(text: &str, place: &str) -> Result<IpAddr, ConfigError> {
    text.parse()
        .map_err(|_| ConfigError::at(place, format!("`{text}` is not an IP address")))
}

/// A DNS name: labels of letters, digits and hyphens (not at either end),
/// at most 63 bytes each and 253 in all; lower-cased, trailing dot dropped.
pub(crate) fn domain_name(text: &str, place: &str) -> Result<String, ConfigError> {
    let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(ConfigError::at(
            place,
            format!("`{text}` is not a DNS name"),
        ));
    }
    Ok(name)
}

fn record(entry: &RecordEntry, place: &str) -> Result<ExtraRecord, ConfigError> {
    let name = domain_name(&entry.name, place)?;
    let address: IpAddr = entry
        .value
        .parse()
        .map_err(|_| ConfigError::at(place, format!("`{}` is not an IP address", entry.value)))?;
    let record = ExtraRecord { name, address };
    if !entry.kind.eq_ignore_ascii_case(record.kind()) {
        return Err(ConfigError::at(
            place,
            format!(
                "type `{}` with value `{}` (A takes an IPv4 address, AAAA an IPv6 one)",
                entry.kind, entry.value
            ),
        ));
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_file_is_read_and_names_are_normalized() {
        let settings = parse(
            r#"{"nameservers": {"global": ["192.0.2.53"], "split": {"Corp.Example.": ["10.1.0.53", "fd00::53"]}},
                "search_domains": ["corp.example"],
                "extra_records": [{"name": "NAS.home.arpa", "type": "A", "value": "100.64.0.9"},
                                  {"name": "nas.home.arpa", "type": "aaaa", "value": "fd7a:115c:a1e0::9"}]}"#,
        )
        .unwrap();
        assert_eq!(settings.global, ["192.0.2.53".parse::<IpAddr>().unwrap()]);
        assert_eq!(settings.split["corp.example"].len(), 2);
        assert_eq!(settings.search_domains, ["corp.example"]);
        assert_eq!(settings.extra_records[0].name, "nas.home.arpa");
        assert_eq!(settings.extra_records[1].kind(), "AAAA");
        assert_eq!(parse("{}").unwrap(), DnsSettings::default());
    }

    #[test]
    fn mistakes_are_refused_saying_where() {
        for (text, expected) in [
            (
                r#"{"nameservers": {"split": {"corp": []}}}"#,
                "nameservers.split.corp: no resolver",
            ),
            (
                r#"{"nameservers": {"split": {"corp": ["dns.corp"]}}}"#,
                "`dns.corp` is not an IP address",
            ),
            (
                r#"{"nameservers": {"split": {"bad..name": ["10.0.0.1"]}}}"#,
                "not a DNS name",
            ),
            (
                r#"{"nameservers": {"split": {"a.b": ["10.0.0.1"], "A.B": ["10.0.0.2"]}}}"#,
                "twice",
            ),
            (
                r#"{"search_domains": ["-x.example"]}"#,
                "search_domains: `-x.example` is not a DNS name",
            ),
            (
                r#"{"extra_records": [{"name": "nas", "type": "AAAA", "value": "10.0.0.9"}]}"#,
                "extra_records[0]: type `AAAA`",
            ),
            (
                r#"{"extra_records": [{"name": "nas", "type": "A", "value": "nas.local"}]}"#,
                "is not an IP address",
            ),
            (
                r#"{"extra_records": [{"name": "nas", "type": "MX", "value": "10.0.0.9"}]}"#,
                "type `MX`",
            ),
            (r#"{"magic_dns": false}"#, "unknown field `magic_dns`"),
        ] {
            let error = parse(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
