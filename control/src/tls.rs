//! TLS for the control connection: the agent pins the coordinator's certificate
//! by fingerprint and presents the client certificate it was issued.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::fingerprint::Fingerprint;
use crate::secret::SecretString;

/// The crypto provider Hearth uses everywhere (ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A node's control-plane TLS key and the certificate the coordinator issued for it.
#[derive(Clone)]
pub struct ClientIdentity {
    /// Certificate, PEM.
    pub certificate_pem: String,
    /// Private key, PEM (PKCS#8).
    pub key_pem: SecretString,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("ClientIdentity { .. }")
    }
}

/// A freshly generated TLS key and the certificate request to send at registration.
pub struct KeyRequest {
    /// The private key, PEM.
    pub key_pem: SecretString,
    /// The PKCS#10 request, DER.
    pub csr_der: Vec<u8>,
}

/// Generates an ECDSA P-256 key and a certificate request for it.
pub fn generate_key_request(hostname: &str) -> Result<KeyRequest, rcgen::Error> {
    let key_pair = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, hostname);
    let csr = params.serialize_request(&key_pair)?;
    Ok(KeyRequest {
        key_pem: SecretString::new(key_pair.serialize_pem()),
        csr_der: csr.der().to_vec(),
    })
}

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The certificate PEM held no certificate.
    #[error("client certificate: {0}")]
    Certificate(String),
    /// The key PEM held no usable key.
    #[error("client key: {0}")]
    Key(String),
    /// rustls refused the combination.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A client configuration that trusts exactly the certificate with `fingerprint`
/// and, when given, authenticates with `identity`.
pub fn client_config(
    fingerprint: Fingerprint,
    identity: Option<&ClientIdentity>,
) -> Result<rustls::ClientConfig, TlsSetupError> {
    let provider = provider();
    let verifier = Arc::new(PinnedCertificate {
        fingerprint,
        algorithms: provider.signature_verification_algorithms,
    });
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some(identity) => {
            let certificate = CertificateDer::from_pem_slice(identity.certificate_pem.as_bytes())
                .map_err(|error| TlsSetupError::Certificate(error.to_string()))?;
            let key = PrivateKeyDer::from_pem_slice(identity.key_pem.expose().as_bytes())
                .map_err(|error| TlsSetupError::Key(error.to_string()))?;
            builder.with_client_auth_cert(vec![certificate], key)?
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // A client that trusts exactly one certificate has no name to ask
    // for; sending none also gets the coordinator's own certificate where
    // it serves one from a public CA to clients naming it.
    config.enable_sni = false;
    Ok(config)
}

/// Accepts the server certificate whose SHA-256 equals the pinned fingerprint,
/// and checks the handshake signatures made with it as usual.
#[derive(Debug)]
struct PinnedCertificate {
    fingerprint: Fingerprint,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if Fingerprint::of(end_entity) == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the coordinator's certificate is not the one in the join token (expected sha256 {}, got {})",
                self.fingerprint,
                Fingerprint::of(end_entity)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, certificate, signature, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, certificate, signature, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
