//! A server certificate kept in two PEM files (the chain and its key) that
//! something else renews in place (the node agent's `cert`, certbot): each
//! TLS handshake serves what the files hold now. A file that changed is
//! read again at the next handshake; one that cannot be used (half
//! written, a key of another certificate) leaves the last good one served.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;

/// Why the files cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum CertificateFileError {
    /// A file cannot be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The chain holds no certificate or is not PEM.
    #[error("{0} holds no PEM certificate")]
    Chain(PathBuf),
    /// The key is not a PEM private key.
    #[error("{0} holds no PEM private key")]
    Key(PathBuf),
    /// The key is not the certificate's, or of a kind not served.
    #[error("the key in {key} does not go with {chain}: {error}")]
    Mismatch {
        /// The chain.
        chain: PathBuf,
        /// The key.
        key: PathBuf,
        /// Why.
        error: String,
    },
}

/// When the two files were last changed, to know when to read them again.
type Stamp = (Option<SystemTime>, Option<SystemTime>);

#[derive(Debug)]
struct Loaded {
    stamp: Stamp,
    key: Arc<CertifiedKey>,
}

/// The certificate in `chain` and `key` (PEM), read again whenever they
/// change.
#[derive(Debug)]
pub struct CertificateFiles {
    chain: PathBuf,
    key: PathBuf,
    loaded: Mutex<Loaded>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path)
        .and_then(|meta| meta.modified())
        .ok()
}

fn read(path: &Path) -> Result<zeroize::Zeroizing<Vec<u8>>, CertificateFileError> {
    std::fs::read(path)
        .map(zeroize::Zeroizing::new)
        .map_err(|error| CertificateFileError::Read {
            path: path.to_owned(),
            error,
        })
}

/// The chain in `chain_pem` with the key in `key_pem`, checked to go
/// together.
fn certified(chain: &Path, key: &Path) -> Result<CertifiedKey, CertificateFileError> {
    let chain_pem = read(chain)?;
    let key_pem = read(key)?;
    let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|_| CertificateFileError::Chain(chain.to_owned()))?;
    if certificates.is_empty() {
        return Err(CertificateFileError::Chain(chain.to_owned()));
    }
    let private = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|_| CertificateFileError::Key(key.to_owned()))?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(certificates, private, &provider).map_err(|error| {
        CertificateFileError::Mismatch {
            chain: chain.to_owned(),
            key: key.to_owned(),
            error: error.to_string(),
        }
    })
}

impl CertificateFiles {
    /// Reads `chain` and `key` now: an error when they cannot be served.
    pub fn open(chain: &Path, key: &Path) -> Result<CertificateFiles, CertificateFileError> {
        let stamp = (modified(chain), modified(key));
        let certified = certified(chain, key)?;
        Ok(CertificateFiles {
            chain: chain.to_owned(),
            key: key.to_owned(),
            loaded: Mutex::new(Loaded {
                stamp,
                key: Arc::new(certified),
            }),
        })
    }

    /// What the files hold now (the last good one when they cannot be
    /// read).
    pub fn current(&self) -> Arc<CertifiedKey> {
        let stamp = (modified(&self.chain), modified(&self.key));
        let mut loaded = hearth_runtime::lock(&self.loaded);
        if stamp != loaded.stamp {
            match certified(&self.chain, &self.key) {
                Ok(key) => {
                    tracing::info!(file = %self.chain.display(), "serving the renewed certificate");
                    loaded.key = Arc::new(key);
                    loaded.stamp = stamp;
                }
                // Tried again at the next handshake: the other file may
                // not be written yet.
                Err(error) => tracing::warn!(%error, "the changed certificate is not used (yet)"),
            }
        }
        Arc::clone(&loaded.key)
    }

    /// A TLS acceptor serving these files (HTTP/2 and HTTP/1.1 offered).
    pub fn acceptor(self: &Arc<Self>) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(Arc::new(self.server_config()))
    }

    /// A TLS server configuration serving these files (HTTP/2 and
    /// HTTP/1.1 offered).
    pub fn server_config(self: &Arc<Self>) -> rustls::ServerConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default versions")
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config
    }
}

impl ResolvesServerCert for CertificateFiles {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (chain, key_file) = (dir.join("chain.pem"), dir.join("key.pem"));
        std::fs::write(&chain, certificate.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        (chain, key_file)
    }

    fn leaf(files: &CertificateFiles) -> Vec<u8> {
        files.current().cert[0].to_vec()
    }

    #[test]
    fn a_renewed_certificate_is_served_and_a_broken_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let (chain, key) = issue(dir.path(), "hub.ts.example");
        let files = CertificateFiles::open(&chain, &key).unwrap();
        let first = leaf(&files);
        assert_eq!(leaf(&files), first, "unchanged files, the same certificate");

        // Half renewed: a new chain with the old key is refused, the old
        // one still served.
        let old_key = std::fs::read(&key).unwrap();
        let renewed = tempfile::tempdir().unwrap();
        let (new_chain, new_key) = issue(renewed.path(), "hub.ts.example");
        std::fs::copy(&new_chain, &chain).unwrap();
        std::fs::write(&key, &old_key).unwrap();
        bump(&chain);
        assert_eq!(leaf(&files), first);

        // Then its key: the renewed one is served.
        std::fs::copy(&new_key, &key).unwrap();
        bump(&key);
        let second = leaf(&files);
        assert_ne!(second, first);

        // A file emptied keeps the last good one.
        std::fs::write(&chain, b"").unwrap();
        bump(&chain);
        assert_eq!(leaf(&files), second);
    }

    /// Moves `path`'s modification time on (file systems may keep only
    /// coarse times).
    fn bump(path: &Path) {
        let later = modified(path).unwrap() + std::time::Duration::from_secs(1);
        std::fs::File::options()
            .append(true)
            .open(path)
            .unwrap()
            .set_modified(later)
            .unwrap();
    }

    #[test]
    fn files_that_cannot_be_served_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let (chain, key) = issue(dir.path(), "hub.ts.example");
        let missing = dir.path().join("missing.pem");
        assert!(matches!(
            CertificateFiles::open(&missing, &key),
            Err(CertificateFileError::Read { .. })
        ));
        assert!(matches!(
            CertificateFiles::open(&chain, &chain),
            Err(CertificateFileError::Key(_))
        ));
        let other = tempfile::tempdir().unwrap();
        let (_, other_key) = issue(other.path(), "hub.ts.example");
        assert!(matches!(
            CertificateFiles::open(&chain, &other_key),
            Err(CertificateFileError::Mismatch { .. })
        ));
    }
}
