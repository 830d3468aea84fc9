//! The coordinator's certificates: its HTTPS certificate (configured, or
//! self-signed on first start), and the private CA that issues each node its
//! client certificate.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hearth_control::Fingerprint;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateSigningRequestDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use time::{Duration, OffsetDateTime};

use crate::state_dir::StateDir;

/// A certificate problem, with the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A file does not hold what it should.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Generating or signing failed.
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built.
    #[error("client verifier: {0}")]
    Verifier(String),
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Io {
        path: path.to_owned(),
        source,
    })
}

fn write_private(path: &Path, contents: &[u8]) -> Result<(), TlsError> {
    crate::state_dir::write_private(path, contents).map_err(|source| TlsError::Io {
        path: path.to_owned(),
        source,
    })
}

fn invalid(path: &Path, reason: impl ToString) -> TlsError {
    TlsError::Invalid {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// The HTTPS certificate chain and key.
pub struct ServerCertificate {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// Private key.
    pub key: PrivateKeyDer<'static>,
    /// SHA-256 of the leaf, which join tokens carry.
    pub fingerprint: Fingerprint,
}

impl ServerCertificate {
    /// Loads a configured certificate chain and key (PEM).
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<ServerCertificate, TlsError> {
        let cert_pem = read(cert_path)?;
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|error| invalid(cert_path, error))?;
        let Some(leaf) = chain.first() else {
            return Err(invalid(cert_path, "no certificate in the file"));
        };
        let fingerprint = Fingerprint::of(leaf);
        let key_pem = zeroize::Zeroizing::new(read(key_path)?);
        let key =
            PrivateKeyDer::from_pem_slice(&key_pem).map_err(|error| invalid(key_path, error))?;
        Ok(ServerCertificate {
            chain,
            key,
            fingerprint,
        })
    }

    /// Loads the self-signed certificate kept in the state dir, creating it on first start.
    pub fn load_or_create_self_signed(
        state: &StateDir,
        names: &[String],
    ) -> Result<ServerCertificate, TlsError> {
        let (cert_path, key_path) = (state.server_cert(), state.server_key());
        if !cert_path.exists() {
            let key_pair = KeyPair::generate()?;
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            params
                .distinguished_name
                .push(DnType::CommonName, "Hearth coordinator");
            params.subject_alt_names = names
                .iter()
                .filter_map(|name| match name.parse::<IpAddr>() {
                    Ok(address) => Some(rcgen::SanType::IpAddress(address)),
                    Err(_) => name.clone().try_into().ok().map(rcgen::SanType::DnsName),
                })
                .collect();
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            params.not_before = OffsetDateTime::now_utc() - Duration::days(1);
            params.not_after = OffsetDateTime::now_utc() + Duration::days(3650);
            let certificate = params.self_signed(&key_pair)?;
            write_private(&key_path, key_pair.serialize_pem().as_bytes())?;
            write_private(&cert_path, certificate.pem().as_bytes())?;
        }
        ServerCertificate::load(&cert_path, &key_path)
    }
}

/// When the DER certificate `der` stops being valid (Unix seconds).
pub fn not_after(der: &[u8]) -> Option<i64> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(certificate.validity().not_after.timestamp())
}

impl ServerCertificate {
    /// When the leaf expires (Unix seconds).
    pub fn not_after(&self) -> Option<i64> {
        not_after(self.chain.first()?)
    }
}

/// The private CA that issues node client certificates.
pub struct NodeAuthority {
    issuer: Issuer<'static, KeyPair>,
    certificate: CertificateDer<'static>,
}

/// Why a node's certificate request was refused.
#[derive(Debug, thiserror::Error)]
#[error("certificate request refused: {0}")]
pub struct CsrError(String);

impl NodeAuthority {
    /// When the CA certificate expires (Unix seconds).
    pub fn not_after(&self) -> Option<i64> {
        not_after(&self.certificate)
    }

    /// Loads the CA from the state dir, creating it on first start.
    pub fn load_or_create(state: &StateDir) -> Result<NodeAuthority, TlsError> {
        let (cert_path, key_path) = (state.ca_cert(), state.ca_key());
        if !cert_path.exists() {
            let key_pair = KeyPair::generate()?;
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            params
                .distinguished_name
                .push(DnType::CommonName, "Hearth node CA");
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            params.not_before = OffsetDateTime::now_utc() - Duration::days(1);
            params.not_after = OffsetDateTime::now_utc() + Duration::days(7300);
            let certificate = params.self_signed(&key_pair)?;
            write_private(&key_path, key_pair.serialize_pem().as_bytes())?;
            write_private(&cert_path, certificate.pem().as_bytes())?;
        }
        let cert_pem = read(&cert_path)?;
        let certificate = CertificateDer::from_pem_slice(&cert_pem)
            .map_err(|error| invalid(&cert_path, error))?;
        let key_pem = zeroize::Zeroizing::new(read(&key_path)?);
        let key_text = std::str::from_utf8(&key_pem).map_err(|error| invalid(&key_path, error))?;
        let key_pair = KeyPair::from_pem(key_text).map_err(|error| invalid(&key_path, error))?;
        let issuer = Issuer::from_ca_cert_der(&certificate, key_pair)
            .map_err(|error| invalid(&cert_path, error))?;
        Ok(NodeAuthority {
            issuer,
            certificate,
        })
    }

    /// Issues a client certificate for the key in `csr_der` (whose signature
    /// proves the node holds it). Returns the PEM and its fingerprint.
    pub fn issue(
        &self,
        csr_der: &[u8],
        node_name: &str,
    ) -> Result<(String, Fingerprint), CsrError> {
        let request =
            CertificateSigningRequestParams::from_der(&CertificateSigningRequestDer::from(csr_der))
                .map_err(|error| CsrError(error.to_string()))?;
        let mut params = CertificateParams::new(Vec::<String>::new())
            .map_err(|error| CsrError(error.to_string()))?;
        params
            .distinguished_name
            .push(DnType::CommonName, node_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.serial_number = Some(SerialNumber::from_slice(&rand::random::<[u8; 16]>()));
        params.not_before = OffsetDateTime::now_utc() - Duration::days(1);
        params.not_after = OffsetDateTime::now_utc() + Duration::days(3650);
        let certificate = params
            .signed_by(&request.public_key, &self.issuer)
            .map_err(|error| CsrError(error.to_string()))?;
        Ok((certificate.pem(), Fingerprint::of(certificate.der())))
    }

    /// The CA certificate.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.certificate
    }
}

/// The rustls server configuration: the HTTPS certificate, and client
/// certificates from the node CA accepted but not required (registration
/// happens before a node has one).
pub fn server_config(
    certificates: Arc<CertificateChoice>,
    authority: &NodeAuthority,
) -> Result<rustls::ServerConfig, TlsError> {
    let provider = hearth_control::tls::provider();
    let mut roots = RootCertStore::empty();
    roots
        .add(authority.certificate().clone())
        .map_err(|error| TlsError::Verifier(error.to_string()))?;
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .allow_unauthenticated()
            .build()
            .map_err(|error| TlsError::Verifier(error.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(certificates);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Why a public certificate is not served.
#[derive(Debug, thiserror::Error)]
pub enum PublicCertificateError {
    /// The chain is not PEM.
    #[error("the chain is not PEM: {0}")]
    ChainPem(String),
    /// The chain is empty.
    #[error("the chain holds no certificate")]
    EmptyChain,
    /// The leaf is not DER X.509.
    #[error("the certificate does not parse: {0}")]
    Leaf(String),
    /// The leaf names other names.
    #[error("the certificate names {names:?}, not {domain}")]
    OtherNames {
        /// Its DNS names.
        names: Vec<String>,
        /// The name wanted.
        domain: String,
    },
    /// The leaf is not valid at the time of the check.
    #[error("the certificate for {0} is not valid now")]
    NotValidNow(String),
    /// The key is not PEM.
    #[error("the key is not PEM: {0}")]
    KeyPem(String),
    /// The key is not the certificate's.
    #[error("the key is not the certificate's: {0}")]
    KeyMismatch(String),
}

/// Which certificate each TLS handshake gets: the one an ACME CA issued
/// for the coordinator's public name, when the client asks for that name
/// (SNI: browsers, the Tailscale apps); else the coordinator's own, which
/// join tokens pin (agents pin it and send no name).
#[derive(Debug)]
pub struct CertificateChoice {
    own: Arc<CertifiedKey>,
    public: std::sync::RwLock<Option<PublicCertificate>>,
}

#[derive(Debug)]
struct PublicCertificate {
    domain: String,
    key: Arc<CertifiedKey>,
    validity: (i64, i64),
}

impl CertificateChoice {
    /// Serves `own` until a public certificate is installed.
    pub fn new(own: ServerCertificate) -> Result<CertificateChoice, TlsError> {
        let provider = hearth_control::tls::provider();
        let key = CertifiedKey::from_der(own.chain, own.key, &provider)?;
        Ok(CertificateChoice {
            own: Arc::new(key),
            public: std::sync::RwLock::new(None),
        })
    }

    /// Serves `chain_pem` with `key_pem` to clients asking for `domain`
    /// from now on, once it is checked: it names `domain`, its key is its
    /// own, and it is valid now (`now`, Unix seconds). Its validity
    /// (not before, not after).
    pub fn install(
        &self,
        domain: &str,
        chain_pem: &[u8],
        key_pem: &[u8],
        now: i64,
    ) -> Result<(i64, i64), PublicCertificateError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem)
            .collect::<Result<_, _>>()
            .map_err(|error| PublicCertificateError::ChainPem(error.to_string()))?;
        let leaf = chain.first().ok_or(PublicCertificateError::EmptyChain)?;
        let validity = public_leaf_validity(leaf, domain)?;
        if now < validity.0 || now >= validity.1 {
            return Err(PublicCertificateError::NotValidNow(domain.to_owned()));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|error| PublicCertificateError::KeyPem(error.to_string()))?;
        let provider = hearth_control::tls::provider();
        let certified = CertifiedKey::from_der(chain, key, &provider)
            .map_err(|error| PublicCertificateError::KeyMismatch(error.to_string()))?;
        *hearth_runtime::write(&self.public) = Some(PublicCertificate {
            domain: domain.to_ascii_lowercase(),
            key: Arc::new(certified),
            validity,
        });
        Ok(validity)
    }

    /// The public certificate's validity (not before, not after), once
    /// there is one.
    pub fn public_validity(&self) -> Option<(i64, i64)> {
        hearth_runtime::read(&self.public)
            .as_ref()
            .map(|public| public.validity)
    }
}

impl rustls::server::ResolvesServerCert for CertificateChoice {
    fn resolve(&self, hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = hello.server_name() {
            let public = hearth_runtime::read(&self.public);
            if let Some(public) = public.as_ref()
                && public.domain.eq_ignore_ascii_case(name)
            {
                return Some(Arc::clone(&public.key));
            }
        }
        Some(Arc::clone(&self.own))
    }
}

/// The validity (not before, not after) of `leaf`, if it names `domain`
/// among its DNS names.
fn public_leaf_validity(leaf: &[u8], domain: &str) -> Result<(i64, i64), PublicCertificateError> {
    let (_, certificate) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|error| PublicCertificateError::Leaf(error.to_string()))?;
    let names: Vec<String> = certificate
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|extension| {
            extension
                .value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    x509_parser::extensions::GeneralName::DNSName(name) => {
                        Some(name.to_ascii_lowercase())
                    }
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if !names
        .iter()
        .any(|name| name == &domain.to_ascii_lowercase())
    {
        return Err(PublicCertificateError::OtherNames {
            names,
            domain: domain.to_owned(),
        });
    }
    let validity = certificate.validity();
    Ok((
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    ))
}
