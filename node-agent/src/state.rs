//! The agent's state directory: its keys and who it is, so that a restart
//! resumes the same identity without registering again.
//!
//! ```text
//! STATE_DIR/          0700
//!   identity.json     coordinator URL and certificate fingerprint, node id and name
//!   wireguard.key     WireGuard private key (base64, as `wg genkey` writes), 0600
//!   tls.key           control-plane TLS key, 0600
//!   tls.crt           the client certificate the coordinator issued
//!   agent.sock        local API, 0600
//! ```
//!
//! A key rotation writes the new keys beside the old ones (`*.next`) before
//! it asks the coordinator, and renames them into place once the new
//! certificate came back; [`StateDir::recover_rotation`] finishes or drops
//! an interrupted one at start.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hearth_control::tls::ClientIdentity;
use hearth_control::wire::WireGuardKey;
use hearth_control::{Fingerprint, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Where the state dir is when nothing says otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/hearth-agent";

/// A state-dir problem, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A file holds something else than expected.
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Who this node is, as registered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The coordinator's URL.
    pub url: String,
    /// SHA-256 of the coordinator's certificate (hex).
    pub fingerprint: String,
    /// The node id the coordinator gave.
    pub node_id: u64,
    /// The node name the coordinator gave.
    pub name: String,
}

impl Identity {
    /// The pinned fingerprint.
    pub fn fingerprint(&self) -> Result<Fingerprint, StateError> {
        Fingerprint::from_hex(&self.fingerprint).ok_or_else(|| StateError::Invalid {
            path: PathBuf::from("identity.json"),
            reason: "bad fingerprint".into(),
        })
    }
}

/// The agent's state directory.
#[derive(Clone, Debug)]
pub struct StateDir {
    root: PathBuf,
}

/// Writes a private file (0600) atomically.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), StateError> {
    hearth_files::private::write_private(path, contents).map_err(io_error(path))
}

impl StateDir {
    /// The state dir at `root`, created (0700) if missing.
    pub fn open(root: impl Into<PathBuf>) -> Result<StateDir, StateError> {
        let root = root.into();
        hearth_files::private::private_dir(&root).map_err(io_error(&root))?;
        Ok(StateDir { root })
    }

    /// The state dir at `root`, without creating anything (for CLI clients).
    pub fn at(root: impl Into<PathBuf>) -> StateDir {
        StateDir { root: root.into() }
    }

    /// Where the node's TLS certificates are kept (see [`crate::certs`]).
    pub fn certs_dir(&self) -> PathBuf {
        self.root.join("certs")
    }

    /// The local API socket.
    pub fn socket(&self) -> PathBuf {
        self.root.join("agent.sock")
    }

    fn identity_path(&self) -> PathBuf {
        self.root.join("identity.json")
    }

    /// The saved identity, if the node registered before.
    pub fn load_identity(&self) -> Result<Option<Identity>, StateError> {
        let path = self.identity_path();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(io_error(&path)(error)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|error| StateError::Invalid {
                path,
                reason: error.to_string(),
            })
    }

    /// Saves the identity after registration.
    pub fn save_identity(&self, identity: &Identity) -> Result<(), StateError> {
        let text = serde_json::to_vec_pretty(identity).expect("the identity serializes");
        write_private(&self.identity_path(), &text)
    }

    /// The WireGuard private key, generated (and saved 0600) on first use, and its public key.
    pub fn wireguard_key(&self) -> Result<(Zeroizing<String>, WireGuardKey), StateError> {
        let path = self.root.join("wireguard.key");
        let secret = match fs::read_to_string(&path) {
            Ok(text) => {
                let bytes = Zeroizing::new(STANDARD.decode(text.trim()).map_err(|_| {
                    StateError::Invalid {
                        path: path.clone(),
                        reason: "not a base64 WireGuard key".into(),
                    }
                })?);
                let bytes: [u8; 32] =
                    bytes
                        .as_slice()
                        .try_into()
                        .map_err(|_| StateError::Invalid {
                            path: path.clone(),
                            reason: "a WireGuard key is 32 bytes".into(),
                        })?;
                x25519_dalek::StaticSecret::from(bytes)
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let secret = x25519_dalek::StaticSecret::random();
                let text = Zeroizing::new(STANDARD.encode(secret.to_bytes()));
                write_private(&path, text.as_bytes())?;
                secret
            }
            Err(error) => return Err(io_error(&path)(error)),
        };
        let public = WireGuardKey(x25519_dalek::PublicKey::from(&secret).to_bytes());
        Ok((Zeroizing::new(STANDARD.encode(secret.to_bytes())), public))
    }

    /// Makes the next WireGuard key and saves it (0600) as
    /// `wireguard.key.next`; its private key (base64) and public key.
    pub fn next_wireguard_key(&self) -> Result<(Zeroizing<String>, WireGuardKey), StateError> {
        let secret = x25519_dalek::StaticSecret::random();
        let text = Zeroizing::new(STANDARD.encode(secret.to_bytes()));
        write_private(&self.root.join("wireguard.key.next"), text.as_bytes())?;
        let public = WireGuardKey(x25519_dalek::PublicKey::from(&secret).to_bytes());
        Ok((text, public))
    }

    /// Saves the next control-plane TLS key (before asking for its certificate).
    pub fn save_next_tls_key(&self, key_pem: &SecretString) -> Result<(), StateError> {
        write_private(&self.root.join("tls.key.next"), key_pem.expose().as_bytes())
    }

    /// The coordinator took the next keys: saves their certificate and
    /// puts the three files in place (the certificate last).
    pub fn commit_rotation(&self, certificate_pem: &str) -> Result<(), StateError> {
        write_private(&self.root.join("tls.crt.next"), certificate_pem.as_bytes())?;
        self.promote_next()
    }

    fn promote_next(&self) -> Result<(), StateError> {
        for name in ["wireguard.key", "tls.key", "tls.crt"] {
            let next = self.root.join(format!("{name}.next"));
            if next.exists() {
                fs::rename(&next, self.root.join(name)).map_err(io_error(&next))?;
            }
        }
        Ok(())
    }

    /// At start: a rotation whose certificate arrived is completed; one
    /// that never got an answer is dropped (the old keys stay). True when
    /// one was completed.
    pub fn recover_rotation(&self) -> Result<bool, StateError> {
        if self.root.join("tls.crt.next").exists() {
            self.promote_next()?;
            return Ok(true);
        }
        for name in ["wireguard.key.next", "tls.key.next"] {
            let path = self.root.join(name);
            match fs::remove_file(&path) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io_error(&path)(error));
                }
                _ => {}
            }
        }
        Ok(false)
    }

    /// Saves the control-plane TLS key and certificate.
    pub fn save_tls(&self, identity: &ClientIdentity) -> Result<(), StateError> {
        write_private(
            &self.root.join("tls.key"),
            identity.key_pem.expose().as_bytes(),
        )?;
        write_private(
            &self.root.join("tls.crt"),
            identity.certificate_pem.as_bytes(),
        )
    }

    /// The control-plane TLS key and certificate.
    pub fn tls(&self) -> Result<ClientIdentity, StateError> {
        let key_path = self.root.join("tls.key");
        let cert_path = self.root.join("tls.crt");
        let key_pem = fs::read_to_string(&key_path).map_err(io_error(&key_path))?;
        let certificate_pem = fs::read_to_string(&cert_path).map_err(io_error(&cert_path))?;
        Ok(ClientIdentity {
            certificate_pem,
            key_pem: SecretString::new(key_pem),
        })
    }

    /// Forgets the registration (keeps nothing a new registration could reuse).
    pub fn forget(&self) -> Result<(), StateError> {
        for name in ["identity.json", "tls.key", "tls.crt"] {
            let path = self.root.join(name);
            match fs::remove_file(&path) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io_error(&path)(error));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn the_wireguard_key_is_made_once_kept_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path().join("agent")).unwrap();
        let (private, public) = state.wireguard_key().unwrap();
        let (again, same) = state.wireguard_key().unwrap();
        assert_eq!(public, same);
        assert_eq!(*private, *again);
        let mode = fs::metadata(dir.path().join("agent/wireguard.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = fs::metadata(dir.path().join("agent"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
    }

    #[test]
    fn identity_round_trips_and_is_absent_at_first() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        assert_eq!(state.load_identity().unwrap(), None);
        let identity = Identity {
            url: "https://10.0.0.1:443".into(),
            fingerprint: "ab".repeat(32),
            node_id: 7,
            name: "laptop".into(),
        };
        state.save_identity(&identity).unwrap();
        assert_eq!(state.load_identity().unwrap(), Some(identity));
    }

    #[test]
    fn a_damaged_key_file_is_reported_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        fs::write(dir.path().join("wireguard.key"), "not a key").unwrap();
        let error = state.wireguard_key().unwrap_err();
        assert!(error.to_string().contains("wireguard.key"), "{error}");
        assert_eq!(
            fs::read_to_string(dir.path().join("wireguard.key")).unwrap(),
            "not a key"
        );
    }

    #[test]
    fn a_rotation_is_committed_whole_or_dropped_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let (_, old) = state.wireguard_key().unwrap();
        state
            .save_tls(&ClientIdentity {
                certificate_pem: "old cert".into(),
                key_pem: SecretString::new("old key".into()),
            })
            .unwrap();

        // Interrupted before the coordinator answered: the old keys stay.
        let (_, next) = state.next_wireguard_key().unwrap();
        state
            .save_next_tls_key(&SecretString::new("new key".into()))
            .unwrap();
        assert!(!state.recover_rotation().unwrap());
        assert_eq!(state.wireguard_key().unwrap().1, old);
        assert_eq!(state.tls().unwrap().certificate_pem, "old cert");
        assert!(!dir.path().join("wireguard.key.next").exists());

        // Answered: all three new files are in place, private.
        let (_, next_again) = state.next_wireguard_key().unwrap();
        assert_ne!(next, next_again);
        state
            .save_next_tls_key(&SecretString::new("new key".into()))
            .unwrap();
        state.commit_rotation("new cert").unwrap();
        assert_eq!(state.wireguard_key().unwrap().1, next_again);
        let tls = state.tls().unwrap();
        assert_eq!(tls.certificate_pem, "new cert");
        assert_eq!(tls.key_pem.expose(), "new key");
        for name in ["wireguard.key", "tls.key", "tls.crt"] {
            let mode = fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
    }
}
