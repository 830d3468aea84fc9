//! The coordinator's state directory and the files in it.
//!
//! ```text
//! STATE_DIR/            0700
//!   coordinator.db      SQLite database (+ -wal, -shm), 0600
//!   admin.sock          admin API, 0600
//!   tls/server.crt      HTTPS certificate (self-signed unless configured)
//!   tls/server.key      its key, 0600
//!   tls/node-ca.crt     CA issuing node client certificates
//!   tls/node-ca.key     its key, 0600
//!   control.key         the Tailscale control protocol's key, 0600
//! ```
//!
//! The certificates and keys are the coordinator's identity
//! ([`IDENTITY_FILES`]): join tokens pin the HTTPS certificate and nodes
//! hold certificates of the node CA. Coordinators sharing one PostgreSQL
//! database share these files; a backup holds them beside the database.

use std::fs::{self};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Where the state dir is when nothing says otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/hearth";

/// The files of the coordinator's identity, relative to the state dir.
pub const IDENTITY_FILES: &[&str] = &[
    "tls/server.crt",
    "tls/server.key",
    "tls/node-ca.crt",
    "tls/node-ca.key",
    "control.key",
];

/// The coordinator's state directory.
#[derive(Clone, Debug)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// The state dir at `root` (not created yet).
    pub fn new(root: impl Into<PathBuf>) -> StateDir {
        StateDir { root: root.into() }
    }

    /// Creates the directories (0700) if missing.
    pub fn prepare(&self) -> std::io::Result<()> {
        for dir in [self.root.clone(), self.root.join("tls"), self.acme()] {
            fs::create_dir_all(&dir)?;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The ACME account and the certificates a CA issued (files 0600).
    pub fn acme(&self) -> PathBuf {
        self.root.join("acme")
    }

    /// The SQLite database.
    pub fn database(&self) -> PathBuf {
        self.root.join("coordinator.db")
    }

    /// The admin socket.
    pub fn admin_socket(&self) -> PathBuf {
        self.root.join("admin.sock")
    }

    /// The control key of the Tailscale control protocol (X25519, hex, 0600).
    pub fn control_key(&self) -> PathBuf {
        self.root.join("control.key")
    }

    /// The self-signed HTTPS certificate.
    pub fn server_cert(&self) -> PathBuf {
        self.root.join("tls/server.crt")
    }

    /// Its key.
    pub fn server_key(&self) -> PathBuf {
        self.root.join("tls/server.key")
    }

    /// The node CA certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.root.join("tls/node-ca.crt")
    }

    /// Its key.
    pub fn ca_key(&self) -> PathBuf {
        self.root.join("tls/node-ca.key")
    }
}

pub use hearth_files::private::{restrict, write_private};
