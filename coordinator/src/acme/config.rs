//! `--acme-config`: which ACME CA, for which names, and where the
//! coordinator answers its DNS-01 challenges (JSON):
//!
//! ```json
//! {
//!   "directory": "https://acme-v02.api.letsencrypt.org/directory",
//!   "terms_of_service_agreed": true,
//!   "contact": ["admin@home.example"],
//!   "domain": "hub.home.example",
//!   "device_certificates": true,
//!   "dns_listen": ["0.0.0.0:53"]
//! }
//! ```
//!
//! Pure: text in, checked settings out.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use hearth_files::config::ConfigError;

/// Checked ACME settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcmeConfig {
    /// The CA's directory URL.
    pub directory: String,
    /// Contact URIs for the account (`mailto:...`).
    pub contact: Vec<String>,
    /// The coordinator's own name, to get a certificate for (`None`: it
    /// keeps its own certificate and only devices get certificates).
    pub domain: Option<String>,
    /// Whether Tailscale clients may get certificates for their MagicDNS
    /// names (`tailscale cert`): the base domain's zone is answered.
    pub device_certificates: bool,
    /// Where the authoritative DNS server listens (UDP and TCP).
    pub dns_listen: Vec<SocketAddr>,
    /// The name server named in the zone's SOA and NS answers.
    pub nameserver: String,
    /// Authorities (PEM) to trust for the CA's directory, besides the
    /// system's (a private CA).
    pub ca_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    directory: String,
    #[serde(default)]
    terms_of_service_agreed: bool,
    #[serde(default)]
    contact: Vec<String>,
    #[serde(default)]
    domain: Option<String>,
    #[serde(default = "yes")]
    device_certificates: bool,
    dns_listen: Vec<String>,
    #[serde(default)]
    nameserver: Option<String>,
    #[serde(default)]
    ca_file: Option<PathBuf>,
}

fn yes() -> bool {
    true
}

/// Top-level domains no public CA issues under (private or special use);
/// device certificates need a domain the household owns.
const PRIVATE_SUFFIXES: &[&str] = &[
    "internal",
    "local",
    "localhost",
    "localdomain",
    "lan",
    "home",
    "corp",
    "arpa",
    "invalid",
];

/// Parses and checks `--acme-config` for a coordinator whose MagicDNS names
/// are under `base_domain`.
pub fn parse(text: &str, base_domain: &str) -> Result<AcmeConfig, ConfigError> {
    let file: File = serde_json::from_str(text)?;
    if !file.directory.starts_with("https://") {
        return Err(ConfigError::at(
            "directory",
            format!("{:?} is not an https:// URL", file.directory),
        ));
    }
    if !file.terms_of_service_agreed {
        return Err(ConfigError::at(
            "terms_of_service_agreed",
            "read the CA's terms of service (its directory links them), then set this to true",
        ));
    }
    let contact = file
        .contact
        .iter()
        .map(|address| {
            let address = address.strip_prefix("mailto:").unwrap_or(address);
            match address.split_once('@') {
                Some((local, host)) if !local.is_empty() && host.contains('.') => {
                    Ok(format!("mailto:{address}"))
                }
                _ => Err(ConfigError::at(
                    "contact",
                    format!("{address:?} is not an email address"),
                )),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let domain = file
        .domain
        .as_deref()
        .map(|name| crate::dns::domain_name(name, "domain"))
        .transpose()?;
    if domain.is_none() && !file.device_certificates {
        return Err(ConfigError::Unusable(
            "nothing to do: give a domain for the coordinator, or leave device_certificates on"
                .into(),
        ));
    }
    if file.device_certificates {
        let top = base_domain.rsplit('.').next().unwrap_or_default();
        if !base_domain.contains('.') || PRIVATE_SUFFIXES.contains(&top) {
            return Err(ConfigError::at(
                "device_certificates",
                format!(
                    "the MagicDNS domain {base_domain:?} is not one a CA issues under; run with \
                     --base-domain set to a domain the household owns (e.g. ts.home.example), \
                     delegated to this coordinator's DNS server"
                ),
            ));
        }
    }
    if file.dns_listen.is_empty() {
        return Err(ConfigError::at(
            "dns_listen",
            "where the DNS server answering the CA's challenges listens (e.g. 0.0.0.0:53)",
        ));
    }
    let dns_listen = file
        .dns_listen
        .iter()
        .map(|address| {
            address.parse::<SocketAddr>().map_err(|_| {
                ConfigError::at("dns_listen", format!("{address:?} is not an ADDRESS:PORT"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let nameserver = match file.nameserver.as_deref() {
        Some(name) => crate::dns::domain_name(name, "nameserver")?,
        None => domain
            .clone()
            .unwrap_or_else(|| format!("ns.{base_domain}")),
    };
    Ok(AcmeConfig {
        directory: file.directory,
        contact,
        domain,
        device_certificates: file.device_certificates,
        dns_listen,
        nameserver,
        ca_file: file.ca_file,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "ts.home.example";

    fn config(extra: &str) -> Result<AcmeConfig, ConfigError> {
        parse(
            &format!(
                r#"{{"directory": "https://ca.example/dir", "terms_of_service_agreed": true,
                     "dns_listen": ["0.0.0.0:53"]{extra}}}"#
            ),
            BASE,
        )
    }

    #[test]
    fn a_config_names_the_ca_and_the_names() {
        let named = config(
            r#", "domain": "Hub.Home.Example.", "contact": ["admin@home.example", "mailto:b@home.example"]"#,
        )
        .unwrap();
        assert_eq!(named.domain.as_deref(), Some("hub.home.example"));
        assert_eq!(
            named.contact,
            ["mailto:admin@home.example", "mailto:b@home.example"]
        );
        assert!(named.device_certificates);
        assert_eq!(named.nameserver, "hub.home.example");
        assert_eq!(named.dns_listen, ["0.0.0.0:53".parse().unwrap()]);
        assert_eq!(config(r#""#).unwrap().nameserver, "ns.ts.home.example");
    }

    #[test]
    fn a_config_says_what_is_wrong_with_it() {
        let refused = |extra: &str| config(extra).unwrap_err().to_string();
        assert!(refused(r#", "contact": ["nobody"]"#).contains("contact"));
        assert!(refused(r##", "domain": "a b""##).contains("domain"));
        assert!(refused(r#", "device_certificates": false"#).contains("nothing to do"));
        assert!(refused(r#", "secret": 1"#).contains("unknown field"));
        assert!(
            parse(
                r#"{"directory": "https://ca/dir", "dns_listen": ["0.0.0.0:53"]}"#,
                BASE
            )
            .unwrap_err()
            .to_string()
            .contains("terms_of_service_agreed")
        );
        assert!(
            parse(
                r#"{"directory": "http://ca/dir", "terms_of_service_agreed": true, "dns_listen": []}"#,
                BASE
            )
            .unwrap_err()
            .to_string()
            .contains("https")
        );
        assert!(
            parse(
                r#"{"directory": "https://ca/dir", "terms_of_service_agreed": true, "dns_listen": ["53"]}"#,
                BASE
            )
            .unwrap_err()
            .to_string()
            .contains("ADDRESS:PORT")
        );
    }

    #[test]
    fn device_certificates_need_a_domain_a_ca_issues_under() {
        let text = r#"{"directory": "https://ca/dir", "terms_of_service_agreed": true,
                       "dns_listen": ["0.0.0.0:53"]}"#;
        assert!(
            parse(text, "hearth.internal")
                .unwrap_err()
                .to_string()
                .contains("--base-domain")
        );
        assert!(parse(text, "home").is_err());
        assert!(parse(text, "ts.home.example").is_ok());
        // Only the coordinator's own certificate: any base domain will do.
        let own = r#"{"directory": "https://ca/dir", "terms_of_service_agreed": true,
                      "dns_listen": ["0.0.0.0:53"], "domain": "hub.home.example",
                      "device_certificates": false}"#;
        assert!(parse(own, "hearth.internal").is_ok());
    }
}
