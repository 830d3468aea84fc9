//! What the coordinator is told when it starts and keeps while it runs:
//! its URL and certificate, timings, the MagicDNS domain, the relay, and
//! the services it was configured with (sign-in, ACME).

use std::sync::Arc;
use std::time::Duration;

use hearth_control::Fingerprint;

/// Settings that do not change while the coordinator runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The URL join tokens point at.
    pub public_url: String,
    /// SHA-256 of the HTTPS certificate, which join tokens carry.
    pub fingerprint: Fingerprint,
    /// How often an idle stream gets a keep-alive line.
    pub keepalive: Duration,
    /// How long an ephemeral node may stay disconnected before it is removed.
    pub ephemeral_timeout: Duration,
    /// The MagicDNS domain nodes are named under.
    pub base_domain: String,
    /// The relay embedded in this coordinator.
    pub relay: hearth_control::wire::RelayRegion,
    /// Certificates whose expiry is watched (`health`, `/metrics`): name
    /// and end of validity (Unix seconds).
    pub certificates: Vec<(String, i64)>,
    /// How long node keys live unless their pre-auth key says otherwise
    /// (`None`: they never expire).
    pub node_key_lifetime: Option<Duration>,
    /// Whether Tailscale clients may send each other files (Taildrop).
    pub taildrop: bool,
    /// DNS beyond MagicDNS: split domains, search domains, extra records.
    pub dns: crate::dns::DnsSettings,
    /// The identity provider people sign in with (`None`: devices without
    /// a pre-auth key wait for `nodes register`).
    pub sign_in: Option<Arc<crate::oidc::Provider>>,
    /// Certificates from an ACME CA (`None`: none are given).
    pub acme: Option<Arc<crate::acme::Acme>>,
}

impl Settings {
    /// The node capabilities every Tailscale client's own node is given.
    pub fn node_capabilities(&self) -> Vec<String> {
        // Tailscale SSH's server may run everywhere; the policy's `ssh`
        // rules say who gets in.
        let mut capabilities = vec![hearth_control::tailcfg::CAP_SSH.to_owned()];
        if self.taildrop {
            capabilities.push(hearth_control::tailcfg::CAP_FILE_SHARING.to_owned());
        }
        // `tailscale serve --https` asks for this before it gets a
        // certificate.
        if self.device_certificates() {
            capabilities.push(hearth_control::tailcfg::CAP_HTTPS.to_owned());
        }
        capabilities
    }

    /// Whether devices get certificates for their MagicDNS names.
    pub fn device_certificates(&self) -> bool {
        self.acme
            .as_ref()
            .is_some_and(|acme| acme.config.device_certificates)
    }

    /// The coordinator's name that gets a certificate from a public CA:
    /// Tailscale clients asking for it are served that certificate, so
    /// they check it as any other instead of pinning.
    pub fn public_name(&self) -> Option<String> {
        self.acme.as_ref()?.config.domain.clone()
    }

    /// The coordinator's own names: its public URL's host, and its ACME
    /// name and DNS server's name when it has them.
    pub fn own_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        if let Some(rest) = self.public_url.split_once("://").map(|(_, rest)| rest) {
            let authority = rest.split('/').next().unwrap_or_default();
            let host = authority
                .rsplit_once(':')
                .map_or(authority, |(host, _)| host);
            names.push(host.to_owned());
        }
        if let Some(acme) = &self.acme {
            names.extend(acme.config.domain.clone());
            names.push(acme.config.nameserver.clone());
        }
        names
    }

    /// The node names that would give a device one of the coordinator's
    /// own names under the MagicDNS domain: no node gets them.
    pub fn own_node_labels(&self) -> Vec<String> {
        crate::names::own_labels(
            self.own_names().iter().map(String::as_str),
            &self.base_domain,
        )
    }

    /// [`Settings::node_key_lifetime`] in seconds.
    pub fn key_lifetime(&self) -> Option<u64> {
        self.node_key_lifetime
            .map(|lifetime| lifetime.as_secs().max(1))
    }
}
