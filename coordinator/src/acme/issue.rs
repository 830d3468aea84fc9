//! Getting a certificate from the ACME CA (RFC 8555) through the
//! `instant-acme` crate: the account (kept in the state directory, 0600),
//! an order for one name, its DNS-01 challenge answered by this
//! coordinator's own DNS server ([`super::zone`]), a key and CSR made here,
//! and the chain the CA issues. HTTP goes through `reqwest` trusting the
//! system's authorities and the configuration's `ca_file`.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, BytesResponse, ChallengeType,
    HttpClient, Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use zeroize::Zeroizing;

use super::AcmeConfig;
use super::zone::challenge_name;

/// How long the CA may take to check a challenge, or to issue.
const POLL_FOR: Duration = Duration::from_secs(120);

/// A certificate issued: the chain (leaf first) and its key, PEM.
pub struct Issued {
    /// The chain, PEM.
    pub chain_pem: String,
    /// The key, PEM.
    pub key_pem: Zeroizing<String>,
}

/// `reqwest` as `instant-acme`'s HTTP client.
struct Http(reqwest::Client);

impl HttpClient for Http {
    fn request(
        &self,
        request: axum::http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let client = self.0.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body = body
                .collect()
                .await
                .map(|collected| collected.to_bytes())
                .unwrap_or_default();
            let request = axum::http::Request::from_parts(parts, body);
            let request = reqwest::Request::try_from(request)
                .map_err(|error| instant_acme::Error::Other(Box::new(error)))?;
            let response = client
                .execute(request)
                .await
                .map_err(|error| instant_acme::Error::Other(Box::new(error)))?;
            Ok(BytesResponse::from(
                axum::http::Response::<reqwest::Body>::from(response),
            ))
        })
    }
}

/// An HTTP client for the CA: the system's authorities and `ca_file`'s.
pub(crate) fn http_client(ca_file: Option<&Path>) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .tls_built_in_root_certs(false);
    let mut roots: Vec<Vec<u8>> = rustls_native_certs::load_native_certs()
        .certs
        .into_iter()
        .map(|certificate| certificate.to_vec())
        .collect();
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)
            .with_context(|| format!("cannot read ca_file {}", path.display()))?;
        let before = roots.len();
        for certificate in rustls_pemfile::certs(&mut pem.as_slice()) {
            roots.push(
                certificate
                    .with_context(|| format!("ca_file {} is not PEM", path.display()))?
                    .to_vec(),
            );
        }
        anyhow::ensure!(
            roots.len() > before,
            "ca_file {} holds no certificate",
            path.display()
        );
    }
    for der in roots {
        if let Ok(certificate) = reqwest::Certificate::from_der(&der) {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder.build().context("cannot make the ACME client")
}

/// The ACME account, opened or made.
pub struct Issuer {
    account: Account,
}

/// Where the account for `directory` is kept: one file per CA.
fn account_file(dir: &Path, directory: &str) -> PathBuf {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(directory.as_bytes());
    dir.join(format!("account-{}.json", hex::encode(&digest[..8])))
}

impl Issuer {
    /// Opens the account kept in `dir` for the configured CA, or makes one
    /// (agreeing to the CA's terms, as the configuration says the admin
    /// did) and keeps it there, 0600.
    pub async fn open(config: &AcmeConfig, dir: &Path) -> anyhow::Result<Issuer> {
        let http = http_client(config.ca_file.as_deref())?;
        let path = account_file(dir, &config.directory);
        if let Ok(text) = std::fs::read_to_string(&path) {
            let text = Zeroizing::new(text);
            let credentials: AccountCredentials = serde_json::from_str(&text)
                .with_context(|| format!("{} does not hold ACME credentials", path.display()))?;
            let account = Account::builder_with_http(Box::new(Http(http)))
                .from_credentials(credentials)
                .await
                .context("cannot reach the ACME CA")?;
            return Ok(Issuer { account });
        }
        let contact: Vec<&str> = config.contact.iter().map(String::as_str).collect();
        let (account, credentials) = Account::builder_with_http(Box::new(Http(http)))
            .create(
                &NewAccount {
                    contact: &contact,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                config.directory.clone(),
                None,
            )
            .await
            .context("the ACME CA did not make an account")?;
        let text = Zeroizing::new(serde_json::to_string(&credentials)?);
        crate::state_dir::write_private(&path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        tracing::info!(directory = %config.directory, "ACME account made");
        Ok(Issuer { account })
    }

    /// Forgets the account kept for the configured CA (the CA no longer
    /// knows it), so that the next [`Issuer::open`] makes a new one.
    pub fn forget(config: &AcmeConfig, dir: &Path) {
        let _ = std::fs::remove_file(account_file(dir, &config.directory));
    }

    /// Gets a certificate for `domain` with a key made here, whose DNS-01
    /// challenge `publish` makes this coordinator's DNS server answer (and
    /// `withdraw` stops).
    pub async fn obtain(
        &self,
        domain: &str,
        publish: &(dyn Fn(&str, &str) + Send + Sync),
        withdraw: &(dyn Fn(&str, &str) + Send + Sync),
    ) -> anyhow::Result<Issued> {
        let key = rcgen::KeyPair::generate().context("cannot make a key")?;
        let mut params = rcgen::CertificateParams::new(vec![domain.to_owned()])?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        let csr = params.serialize_request(&key)?;
        let chain_pem = self.certify(domain, csr.der(), publish, withdraw).await?;
        Ok(Issued {
            chain_pem,
            key_pem: Zeroizing::new(key.serialize_pem()),
        })
    }

    /// Gets the CA to sign `csr` (DER, for `domain` alone, checked by the
    /// caller): the order, its DNS-01 challenge published and withdrawn as
    /// for [`Issuer::obtain`], then the chain, PEM.
    pub async fn certify(
        &self,
        domain: &str,
        csr: &[u8],
        publish: &(dyn Fn(&str, &str) + Send + Sync),
        withdraw: &(dyn Fn(&str, &str) + Send + Sync),
    ) -> anyhow::Result<String> {
        let identifiers = [Identifier::Dns(domain.to_owned())];
        let mut order = self
            .account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .context("the ACME CA refused the order")?;
        let name = challenge_name(domain);
        let mut published = Vec::new();
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization.context("cannot read an authorization")?;
            match authorization.status {
                AuthorizationStatus::Valid => continue,
                AuthorizationStatus::Pending => {}
                status => anyhow::bail!("an authorization for {domain} is {status:?}"),
            }
            let mut challenge = authorization
                .challenge(ChallengeType::Dns01)
                .context("the CA offers no DNS-01 challenge")?;
            let value = challenge.key_authorization().dns_value();
            publish(&name, &value);
            published.push(value);
            challenge
                .set_ready()
                .await
                .context("the CA did not take the challenge")?;
        }
        let polled = order
            .poll_ready(&RetryPolicy::new().timeout(POLL_FOR))
            .await;
        for value in &published {
            withdraw(&name, value);
        }
        match polled.context("the CA did not check the challenge")? {
            OrderStatus::Ready => {}
            status => anyhow::bail!(
                "the order for {domain} is {status:?}: the CA could not read \
                 {name} TXT from this coordinator's DNS server (is the name delegated to it?)"
            ),
        }
        order
            .finalize_csr(csr)
            .await
            .context("the CA refused the certificate request")?;
        order
            .poll_certificate(&RetryPolicy::new().timeout(POLL_FOR))
            .await
            .context("the CA did not issue the certificate")
    }
}

/// Whether `error` says the CA no longer knows the account.
pub fn account_unknown(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<instant_acme::Error>(),
            Some(instant_acme::Error::Api(problem))
                if problem.r#type.as_deref() == Some("urn:ietf:params:acme:error:accountDoesNotExist")
        )
    })
}

/// Keeps `issued` for `domain` in `dir` (both files 0600).
pub fn save(dir: &Path, domain: &str, issued: &Issued) -> anyhow::Result<(PathBuf, PathBuf)> {
    let (cert, key) = files(dir, domain);
    crate::state_dir::write_private(&key, issued.key_pem.as_bytes())
        .with_context(|| format!("cannot write {}", key.display()))?;
    crate::state_dir::write_private(&cert, issued.chain_pem.as_bytes())
        .with_context(|| format!("cannot write {}", cert.display()))?;
    Ok((cert, key))
}

/// Where the certificate for `domain` is kept.
pub fn files(dir: &Path, domain: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{domain}.crt")),
        dir.join(format!("{domain}.key")),
    )
}
