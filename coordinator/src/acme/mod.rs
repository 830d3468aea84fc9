//! Certificates from a public ACME CA (RFC 8555: Let's Encrypt, ZeroSSL, a
//! household's own step-ca), by DNS-01 challenges the coordinator answers
//! itself, for two kinds of name (`--acme-config`, [`config`]):
//!
//! - **its own name** (`domain`): the renewal task ([`run_renewal`]) gets a
//!   certificate at start when none is kept, and again with a third of its
//!   life left; browsers and the Tailscale apps that ask for that name get
//!   it, so phones trust the coordinator without installing anything
//!   ([`crate::tls::CertificateChoice`]);
//! - **devices' MagicDNS names** (`device_certificates`): Tailscale clients
//!   are told their `CertDomains` and get certificates themselves
//!   (`tailscale cert`, `tailscale serve --https`): the client talks to the
//!   CA, and asks the coordinator, over its control connection
//!   (`/machine/set-dns`), to publish its challenge, which
//!   [`zone::check_set_dns`] limits to the device's own name.
//!
//! Either way the CA reads `_acme-challenge.<name>` TXT from the
//! coordinator's authoritative DNS server ([`zone`], served over UDP by
//! the server's rate-limited loop and over TCP by [`serve_tcp`]), to which
//! the household delegates the
//! MagicDNS domain and `_acme-challenge.<domain>` at its DNS provider.

pub mod config;
pub mod issue;
pub mod request;
pub mod zone;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use config::AcmeConfig;
use hearth_control::certs::{renew_at, retry_after};
use tokio::sync::watch;
use zone::{Authority, Challenges, Transport};

use crate::tls::CertificateChoice;
use hearth_runtime::clock::unix_seconds as unix_now;

/// What the coordinator keeps for ACME.
pub struct Acme {
    /// The settings.
    pub config: AcmeConfig,
    /// The MagicDNS domain (device certificates are `<node>.<domain>`).
    base_domain: String,
    authority: Authority,
    challenges: Mutex<Challenges>,
    /// Where the account and the coordinator's certificate are kept.
    dir: PathBuf,
    certificates: Arc<CertificateChoice>,
    /// Which devices are getting certificates, and when they got them.
    issuance: Mutex<DeviceIssuance>,
}

impl std::fmt::Debug for Acme {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Acme")
            .field("directory", &self.config.directory)
            .field("domain", &self.config.domain)
            .finish_non_exhaustive()
    }
}

impl Acme {
    /// ACME as `config` says, for a coordinator whose MagicDNS domain is
    /// `base_domain`, keeping its files in `dir` and serving its own
    /// certificate through `certificates`.
    pub fn new(
        config: AcmeConfig,
        base_domain: &str,
        dir: PathBuf,
        certificates: Arc<CertificateChoice>,
    ) -> Acme {
        let mut zones = Vec::new();
        if config.device_certificates {
            zones.push(base_domain.to_ascii_lowercase());
        }
        if let Some(domain) = &config.domain {
            zones.push(zone::challenge_name(domain));
        }
        Acme {
            authority: Authority::new(zones, &config.nameserver),
            config,
            base_domain: base_domain.to_ascii_lowercase(),
            challenges: Mutex::default(),
            dir,
            certificates,
            issuance: Mutex::default(),
        }
    }

    /// The certificate name of the node named `node`, when devices get
    /// certificates.
    pub fn device_domain(&self, node: &str) -> Option<String> {
        self.config
            .device_certificates
            .then(|| format!("{}.{}", node.to_ascii_lowercase(), self.base_domain))
    }

    /// Answers `value` for the challenge record `name` from now on.
    pub fn publish(&self, name: &str, value: &str) {
        hearth_runtime::lock(&self.challenges).set(name, value, unix_now());
    }

    /// Stops answering `value` for `name`.
    pub fn withdraw(&self, name: &str, value: &str) {
        hearth_runtime::lock(&self.challenges).remove(name, value);
    }

    /// The reply to a DNS `packet` received over `transport`.
    pub fn answer(&self, packet: &[u8], transport: Transport) -> Option<Vec<u8>> {
        let challenges = hearth_runtime::lock(&self.challenges);
        zone::handle(packet, &self.authority, &challenges, unix_now(), transport)
    }

    /// The coordinator's public certificate's validity, once it has one.
    pub fn validity(&self) -> Option<(i64, i64)> {
        self.certificates.public_validity()
    }

    /// Serves the certificate kept from an earlier run, if it is still
    /// good; whether one was.
    pub fn load_kept(&self) -> bool {
        let Some(domain) = &self.config.domain else {
            return false;
        };
        let (cert, key) = issue::files(&self.dir, domain);
        let (Ok(chain), Ok(key)) = (std::fs::read(&cert), std::fs::read(&key)) else {
            return false;
        };
        let key = zeroize::Zeroizing::new(key);
        match self.certificates.install(domain, &chain, &key, unix_now()) {
            Ok(_) => true,
            Err(error) => {
                tracing::info!(%error, file = %cert.display(), "the kept certificate is not used; a new one will be got");
                false
            }
        }
    }

    /// After `error`: a new account when it says the CA forgot the one
    /// kept (a test CA restarted, or the account was closed), to try once
    /// more; else the error.
    async fn account_again(&self, error: anyhow::Error) -> anyhow::Result<issue::Issuer> {
        if !issue::account_unknown(&error) {
            return Err(error);
        }
        issue::Issuer::forget(&self.config, &self.dir);
        issue::Issuer::open(&self.config, &self.dir).await
    }

    /// The devices' certificate requests.
    pub fn issuance(&self) -> std::sync::MutexGuard<'_, DeviceIssuance> {
        hearth_runtime::lock(&self.issuance)
    }

    /// Gets the CA to sign a device's request `csr` for its MagicDNS name
    /// `domain` (checked by the caller): the chain, PEM.
    pub async fn certify_device(&self, domain: &str, csr: &[u8]) -> anyhow::Result<String> {
        std::fs::create_dir_all(&self.dir)?;
        let publish = |name: &str, value: &str| self.publish(name, value);
        let withdraw = |name: &str, value: &str| self.withdraw(name, value);
        let issuer = issue::Issuer::open(&self.config, &self.dir).await?;
        match issuer.certify(domain, csr, &publish, &withdraw).await {
            Err(error) => {
                self.account_again(error)
                    .await?
                    .certify(domain, csr, &publish, &withdraw)
                    .await
            }
            ok => ok,
        }
    }

    /// Gets a certificate for the coordinator's own name and serves it.
    async fn renew(&self, domain: &str) -> anyhow::Result<(i64, i64)> {
        std::fs::create_dir_all(&self.dir)?;
        let publish = |name: &str, value: &str| self.publish(name, value);
        let withdraw = |name: &str, value: &str| self.withdraw(name, value);
        let issuer = issue::Issuer::open(&self.config, &self.dir).await?;
        let issued = match issuer.obtain(domain, &publish, &withdraw).await {
            Err(error) => {
                self.account_again(error)
                    .await?
                    .obtain(domain, &publish, &withdraw)
                    .await?
            }
            ok => ok?,
        };
        issue::save(&self.dir, domain, &issued)?;
        self.certificates
            .install(
                domain,
                issued.chain_pem.as_bytes(),
                issued.key_pem.as_bytes(),
                unix_now(),
            )
            .map_err(|error| anyhow::anyhow!("the CA's certificate is not usable: {error}"))
    }
}

/// Certificates one device may get in a week: Let's Encrypt's own limit on
/// the same name, so that one device cannot spend the household account's.
pub const DEVICE_CERTIFICATES_PER_WEEK: usize = 5;
const WEEK: i64 = 7 * 24 * 3600;

/// Which devices are getting a certificate now: one request at a time per
/// device, and [`DEVICE_CERTIFICATES_PER_WEEK`] orders a week, counted from
/// the database (so a restart forgets none) whether they succeeded or not
/// (a failed order costs the CA as much). Pure, the week's count given.
#[derive(Debug, Default)]
pub struct DeviceIssuance {
    in_flight: std::collections::HashSet<u64>,
}

/// Why a device may not order a certificate now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotNow {
    /// It ordered as many as it may this week.
    #[error(
        "this device ordered {DEVICE_CERTIFICATES_PER_WEEK} certificates this week, the most it may; \
         keep using the last one"
    )]
    ThisWeek,
    /// An order of its own is under way.
    #[error("this device is already getting a certificate")]
    UnderWay,
}

impl DeviceIssuance {
    /// Device `node`, which ordered `this_week` certificates in the last
    /// seven days, begins an order, or is told why not.
    pub fn begin(&mut self, node: u64, this_week: u64) -> Result<(), NotNow> {
        if this_week >= DEVICE_CERTIFICATES_PER_WEEK as u64 {
            return Err(NotNow::ThisWeek);
        }
        if !self.in_flight.insert(node) {
            return Err(NotNow::UnderWay);
        }
        Ok(())
    }

    /// Device `node`'s order ended.
    pub fn end(&mut self, node: u64) {
        self.in_flight.remove(&node);
    }
}

/// How far back the weekly count of a device's orders looks.
pub const ORDER_WINDOW_SECONDS: i64 = WEEK;

/// Keeps the coordinator's own certificate current until `stop`: gets one
/// when none is served, renews it when [`renew_at`] says, retries failures
/// after [`retry_after`].
pub async fn run_renewal(acme: Arc<Acme>, mut stop: watch::Receiver<bool>) {
    let Some(domain) = acme.config.domain.clone() else {
        return;
    };
    let mut failures = 0;
    loop {
        let now = unix_now();
        let due = acme.validity().map_or(now, renew_at);
        let wait = if now < due {
            // Checked at least twice a day, in case the clock jumped.
            Duration::from_secs((due - now).clamp(1, 12 * 3600) as u64)
        } else {
            match acme.renew(&domain).await {
                Ok((_, not_after)) => {
                    failures = 0;
                    tracing::info!(%domain, not_after, "certificate obtained from the ACME CA");
                    continue;
                }
                Err(error) => {
                    failures += 1;
                    let wait = retry_after(failures);
                    tracing::warn!(%domain, error = format!("{error:#}"), retry_in_seconds = wait.as_secs(), "could not get a certificate from the ACME CA");
                    wait
                }
            }
        };
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// DNS answers a second to one address (after a burst of as many; see
/// `server::answer_udp`): a certificate authority asks a few times per
/// challenge, from several places.
pub const DNS_PER_SOURCE: u32 = 20;

/// Connections the TCP side holds at once.
const TCP_CONNECTIONS: usize = 64;
/// Connections one address holds at once: a CA asks from several places,
/// one query or two each.
const TCP_PER_SOURCE: usize = 4;
/// Time a TCP connection may wait between queries, and a reply to be taken.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Time a TCP connection is held at all, however busy.
const TCP_LIFETIME: Duration = Duration::from_secs(30);
/// Queries answered on one TCP connection.
const TCP_QUERIES: usize = 16;

/// Answers DNS over TCP (length-prefixed messages, RFC 7766) on
/// `listener` until `stop`: at most [`TCP_CONNECTIONS`] at once and
/// [`TCP_PER_SOURCE`] from one address, each closed after [`TCP_IDLE`]
/// without a whole query or with a reply not taken, after
/// [`TCP_QUERIES`] queries, and after [`TCP_LIFETIME`] in any case: one
/// address cannot hold the server's slots by keeping connections busy or
/// never reading.
pub async fn serve_tcp(
    listener: tokio::net::TcpListener,
    acme: Arc<Acme>,
    mut stop: watch::Receiver<bool>,
) {
    let gate = hearth_http::Gate::new(hearth_http::Limits {
        max_connections: TCP_CONNECTIONS,
        max_per_source: TCP_PER_SOURCE,
        ..hearth_http::Limits::for_scale(hearth_http::Scale::ControlPlane)
    });
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::debug!(%error, "DNS accept failed");
                    continue;
                }
            },
        };
        let Ok(ticket) = gate.admit(peer.ip()) else {
            continue;
        };
        let acme = Arc::clone(&acme);
        tokio::spawn(async move {
            let _ticket = ticket;
            let _ = tokio::time::timeout(TCP_LIFETIME, answer_stream(stream, &acme)).await;
        });
    }
}

async fn answer_stream(mut stream: tokio::net::TcpStream, acme: &Acme) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    for _ in 0..TCP_QUERIES {
        let mut length = [0u8; 2];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut length)).await {
            Ok(Ok(_)) => {}
            _ => return Ok(()),
        }
        let mut message = vec![0u8; usize::from(u16::from_be_bytes(length))];
        if tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut message))
            .await
            .is_err()
        {
            return Ok(());
        }
        let Some(reply) = acme.answer(&message, Transport::Tcp) else {
            return Ok(());
        };
        let mut framed = Vec::with_capacity(reply.len() + 2);
        framed.extend_from_slice(&(reply.len().min(usize::from(u16::MAX)) as u16).to_be_bytes());
        framed.extend_from_slice(&reply);
        if tokio::time::timeout(TCP_IDLE, stream.write_all(&framed))
            .await
            .is_err()
        {
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_gets_one_certificate_at_a_time_and_a_few_a_week() {
        let mut issuance = DeviceIssuance::default();
        issuance.begin(7, 0).unwrap();
        assert_eq!(issuance.begin(7, 1), Err(NotNow::UnderWay));
        // Another device is not held up.
        issuance.begin(8, 1).unwrap();
        issuance.end(7);
        issuance
            .begin(7, DEVICE_CERTIFICATES_PER_WEEK as u64 - 1)
            .unwrap();
        issuance.end(7);
        assert_eq!(
            issuance.begin(7, DEVICE_CERTIFICATES_PER_WEEK as u64),
            Err(NotNow::ThisWeek)
        );
    }
}
