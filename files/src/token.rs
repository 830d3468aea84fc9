//! A bearer token kept in a file: the gateway's for its local callers, the
//! router's for its compute nodes. The service writes it on first start
//! (0600); the admin may share it with a group (0640) but never with
//! everyone. Who can read the file is decided by the kernel's file
//! permissions, not by where a connection comes from: a local user who
//! cannot read it cannot present it.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use base64::Engine as _;
use zeroize::Zeroizing;

/// Why the token could not be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Reading or creating the file failed.
    #[error("the token file {path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        error: std::io::Error,
    },
    /// Anyone on the machine could read or change it.
    #[error("the token file {0} is open to every user (mode {1:o}); chmod o-rwx it")]
    OpenToAll(String, u32),
    /// It holds no usable token.
    #[error("the token file {0} holds no token of at least 16 characters")]
    TooShort(String),
    /// It is empty.
    #[error("the file {0} is empty")]
    Empty(String),
}

/// Whether a file of `mode` keeps its secret from other users: no access
/// for "others" (the owner and the file's group are the intended readers).
pub fn private_enough(mode: u32) -> bool {
    mode & 0o007 == 0
}

/// The token in `path`, which must exist, keep it from other users and
/// hold at least 16 characters (a client's copy of a service's token).
pub fn read(path: &Path) -> Result<Zeroizing<String>, TokenError> {
    let token = read_secret(path)?;
    if token.len() < 16 {
        return Err(TokenError::TooShort(path.display().to_string()));
    }
    Ok(token)
}

/// The secret in `path` (a password, say), without surrounding white
/// space: the file must exist, keep it from other users and not be empty.
pub fn read_secret(path: &Path) -> Result<Zeroizing<String>, TokenError> {
    let shown = path.display().to_string();
    let metadata = std::fs::metadata(path).map_err(|error| TokenError::Io {
        path: shown.clone(),
        error,
    })?;
    let mode = metadata.permissions().mode() & 0o777;
    if !private_enough(mode) {
        return Err(TokenError::OpenToAll(shown, mode));
    }
    let text = Zeroizing::new(
        std::fs::read_to_string(path).map_err(|error| TokenError::Io {
            path: shown.clone(),
            error,
        })?,
    );
    let secret = Zeroizing::new(text.trim().to_owned());
    if secret.is_empty() {
        return Err(TokenError::Empty(shown));
    }
    Ok(secret)
}

/// The token in `path`, created (0600, 32 random bytes as base64url) when
/// the file does not exist.
pub fn load_or_create(path: &Path) -> Result<Zeroizing<String>, TokenError> {
    let shown = path.display().to_string();
    let io = |error| TokenError::Io {
        path: shown.clone(),
        error,
    };
    match std::fs::metadata(path) {
        Ok(_) => read(path),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let bytes = Zeroizing::new(rand::random::<[u8; 32]>());
            let token = Zeroizing::new(
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref()),
            );
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(io)?;
            file.write_all(format!("{}\n", token.as_str()).as_bytes())
                .map_err(io)?;
            Ok(token)
        }
        Err(error) => Err(io(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_made_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/gateway.token");
        let made = load_or_create(&path).unwrap();
        assert_eq!(made.len(), 43);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            load_or_create(&path).unwrap(),
            made,
            "read back, not replaced"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(load_or_create(&path).unwrap(), made, "a group may share it");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load_or_create(&path),
            Err(TokenError::OpenToAll(_, 0o644))
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, "short\n").unwrap();
        assert!(matches!(
            load_or_create(&path),
            Err(TokenError::TooShort(_))
        ));
        assert!(matches!(
            read(&dir.path().join("absent")),
            Err(TokenError::Io { .. })
        ));
        assert!(!dir.path().join("absent").exists(), "read never creates");
    }

    #[test]
    fn other_users_must_have_no_access() {
        assert!(private_enough(0o600) && private_enough(0o640) && private_enough(0o660));
        assert!(!private_enough(0o604) && !private_enough(0o602) && !private_enough(0o601));
    }
}
