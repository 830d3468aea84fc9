//! A TLS certificate for this node's MagicDNS name (`hearth-agent cert`,
//! as `tailscale cert`): a key made here that never leaves the node, a
//! request for that one name sent over the control connection, and the
//! chain the household's ACME CA issues (the coordinator answers the CA's
//! DNS-01 challenge). Both are kept in the state directory's `certs/`
//! (0600) as `NAME.crt` and `NAME.key`, for a service on this node to
//! serve (the messaging service's HTTPS), and the agent renews them there
//! itself with a third of their life left.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use hearth_control::ControlClient;
use hearth_control::certs::{renew_at, retry_after, validity};
use hearth_control::wire::CertRequest;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::mesh::Mesh;

/// The files of a certificate, and until when it is valid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// The name it is for.
    pub domain: String,
    /// The chain (leaf first), PEM.
    pub cert_file: PathBuf,
    /// Its key, PEM.
    pub key_file: PathBuf,
    /// Valid until (Unix seconds).
    pub not_after: i64,
    /// When the agent renews it (Unix seconds).
    pub renew_at: i64,
}

/// Why there is no certificate.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// The node has no MagicDNS name yet (no map, or MagicDNS is off at
    /// the coordinator).
    #[error(
        "this node has no MagicDNS name yet (is it approved, and does the coordinator give names?)"
    )]
    NoName,
    /// The coordinator or its CA refused or failed.
    #[error("the coordinator gave no certificate: {0}")]
    Refused(String),
    /// The files could not be written or read.
    #[error("{0}")]
    Files(String),
}

/// The node's certificates: where they are kept, and the control
/// connection that gets them.
pub struct Certificates {
    dir: PathBuf,
    client: ControlClient,
    /// One request to the CA at a time.
    busy: tokio::sync::Mutex<()>,
    /// Told when a certificate was got, so the renewal task looks again.
    got: tokio::sync::Notify,
}

/// The files for `domain` in `dir`.
pub fn files(dir: &Path, domain: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{domain}.crt")),
        dir.join(format!("{domain}.key")),
    )
}

/// This node's MagicDNS name, once its map (`mesh`) says it.
pub fn own_name(mesh: &Mesh) -> Option<String> {
    let node = mesh.node.as_ref()?;
    let dns = mesh.dns.as_ref()?;
    Some(format!("{}.{}", node.name, dns.domain).to_ascii_lowercase())
}

impl Certificates {
    /// Certificates kept in `dir`, got through `client`.
    pub fn new(dir: PathBuf, client: ControlClient) -> Certificates {
        Certificates {
            dir,
            client,
            busy: tokio::sync::Mutex::new(()),
            got: tokio::sync::Notify::new(),
        }
    }

    /// The kept certificate for `domain`, if there is a usable one.
    pub fn kept(&self, domain: &str) -> Option<Certificate> {
        let (cert_file, key_file) = files(&self.dir, domain);
        let chain = std::fs::read(&cert_file).ok()?;
        if !key_file.exists() {
            return None;
        }
        let valid = validity(&chain)?;
        Some(Certificate {
            domain: domain.to_owned(),
            cert_file,
            key_file,
            not_after: valid.1,
            renew_at: renew_at(valid),
        })
    }

    /// The certificate for `domain`: the kept one while it is not due for
    /// renewal (at `now`), else a new one from the CA.
    pub async fn get(&self, domain: &str, now: i64) -> Result<Certificate, CertError> {
        let _busy = self.busy.lock().await;
        if let Some(kept) = self.kept(domain).filter(|kept| now < kept.renew_at) {
            return Ok(kept);
        }
        self.obtain(domain).await
    }

    /// A new certificate for `domain` from the CA, written over the kept
    /// one (the key first: a service reading both sees the pair change
    /// when the chain does).
    async fn obtain(&self, domain: &str) -> Result<Certificate, CertError> {
        let files_error = |error: std::io::Error| CertError::Files(error.to_string());
        let key =
            rcgen::KeyPair::generate().map_err(|error| CertError::Files(error.to_string()))?;
        let mut params = rcgen::CertificateParams::new(vec![domain.to_owned()])
            .map_err(|error| CertError::Files(error.to_string()))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        let csr = params
            .serialize_request(&key)
            .map_err(|error| CertError::Files(error.to_string()))?;
        let request = CertRequest {
            csr_der: base64::engine::general_purpose::STANDARD.encode(csr.der()),
        };
        let issued = self
            .client
            .certificate(&request)
            .await
            .map_err(|error| CertError::Refused(error.to_string()))?;
        if !issued.domain.eq_ignore_ascii_case(domain)
            || validity(issued.chain_pem.as_bytes()).is_none()
        {
            return Err(CertError::Refused(format!(
                "the answer is not a certificate for {domain}"
            )));
        }
        hearth_files::private::private_dir(&self.dir).map_err(files_error)?;
        let (cert_file, key_file) = files(&self.dir, domain);
        let key_pem = Zeroizing::new(key.serialize_pem());
        hearth_files::private::write_private(&key_file, key_pem.as_bytes()).map_err(files_error)?;
        hearth_files::private::write_private(&cert_file, issued.chain_pem.as_bytes())
            .map_err(files_error)?;
        tracing::info!(%domain, file = %cert_file.display(), "certificate got from the coordinator's CA");
        self.got.notify_one();
        self.kept(domain)
            .ok_or_else(|| CertError::Files(format!("{} cannot be read back", cert_file.display())))
    }

    /// Renews this node's kept certificate when it comes due, until the
    /// task is dropped; failures are tried again after [`retry_after`].
    /// Only a certificate asked for once (`hearth-agent cert`) is kept.
    /// `name` is this node's name as its map says it now; `changes` tells
    /// when the map changed.
    pub async fn renew(
        self: Arc<Self>,
        name: impl Fn() -> Option<String>,
        mut changes: tokio::sync::watch::Receiver<u64>,
    ) {
        let mut failures = 0;
        loop {
            let now = hearth_runtime::clock::unix_seconds();
            let kept = name().and_then(|domain| self.kept(&domain));
            let wait = match kept {
                // Looked at again when the map changes (it brings the name).
                None => Duration::from_secs(12 * 3600),
                Some(kept) if now < kept.renew_at => {
                    Duration::from_secs((kept.renew_at - now).clamp(1, 12 * 3600) as u64)
                }
                Some(kept) => match self.get(&kept.domain, now).await {
                    Ok(renewed) => {
                        failures = 0;
                        tracing::info!(domain = %renewed.domain, not_after = renewed.not_after, "certificate renewed");
                        continue;
                    }
                    Err(error) => {
                        failures += 1;
                        let wait = retry_after(failures);
                        tracing::warn!(domain = %kept.domain, %error, retry_in_seconds = wait.as_secs(), "could not renew the certificate");
                        wait
                    }
                },
            };
            tokio::select! {
                () = self.got.notified() => {}
                () = tokio::time::sleep(wait) => {}
                changed = changes.changed(), if name().is_none() => {
                    if changed.is_err() {
                        return; // the agent is stopping
                    }
                }
            }
        }
    }
}
