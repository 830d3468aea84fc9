//! Users and pre-auth keys: creating, listing, renaming and deleting users;
//! minting, listing and expiring keys (the rules of a key's use are in
//! [`crate::authkey`]).

use serde::Serialize;

use crate::authkey::{self, KeyUsage};
use crate::db::preauth_keys::PreauthKeyRow;
use crate::error::{Error, Result};
use crate::names;

/// Options of `preauthkeys create`.
#[derive(Clone, Debug, Default, serde::Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeyOptions {
    /// Owning user.
    pub user: String,
    /// Usable more than once.
    #[serde(default)]
    pub reusable: bool,
    /// Nodes it admits are ephemeral.
    #[serde(default)]
    pub ephemeral: bool,
    /// Seconds until it expires (none: never).
    #[serde(default)]
    pub expiration_seconds: Option<u64>,
    /// Tags for the nodes it admits.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Nodes it admits need no approval.
    #[serde(default)]
    pub pre_approved: bool,
    /// Key lifetime of the nodes it admits, seconds (none: the
    /// coordinator's default; 0: never expiring).
    #[serde(default)]
    pub node_key_lifetime_seconds: Option<u64>,
}

/// A pre-auth key as listed (never with its secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct KeyView {
    /// Id.
    pub id: i64,
    /// Owning user.
    pub user: String,
    /// Public prefix.
    pub prefix: String,
    /// Usable more than once.
    pub reusable: bool,
    /// Admits ephemeral nodes.
    pub ephemeral: bool,
    /// Admitted nodes skip approval.
    pub pre_approved: bool,
    /// Tags for admitted nodes.
    pub tags: Vec<String>,
    /// Expiry, Unix seconds.
    pub expires_at: Option<i64>,
    /// Nodes admitted so far.
    pub use_count: i64,
    /// Whether it can still admit a node now.
    pub usable: bool,
    /// Creation time.
    pub created_at: i64,
    /// Key lifetime of the nodes it admits, seconds (none: the
    /// coordinator's default; 0: never expiring).
    #[serde(default)]
    pub node_key_lifetime: Option<i64>,
}

impl KeyView {
    pub(crate) fn new(row: PreauthKeyRow, now: i64) -> KeyView {
        let usable = authkey::admits(usage(&row), now).is_ok();
        KeyView {
            id: row.id,
            user: row.user,
            prefix: row.prefix,
            reusable: row.reusable,
            ephemeral: row.ephemeral,
            pre_approved: row.pre_approved,
            tags: row.tags,
            expires_at: row.expires_at,
            use_count: row.use_count,
            usable,
            created_at: row.created_at,
            node_key_lifetime: row.node_key_lifetime,
        }
    }
}

/// A created key: its listing, and the join token (shown once).
#[derive(Serialize, serde::Deserialize)]
pub struct CreatedKey {
    /// The key as listed.
    pub key: KeyView,
    /// The one-line join token.
    pub token: String,
}

/// Checks an email address an admin records: `local@domain`, printable,
/// at most 254 characters.
pub(crate) fn check_email(email: &str) -> Result<()> {
    let valid = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !email
            .chars()
            .any(|c| c.is_whitespace() || names::is_hidden_character(c));
    if valid {
        Ok(())
    } else {
        Err(Error::BadRequest(format!(
            "{:?} is not an email address",
            names::visible(email)
        )))
    }
}

/// The usage counters of a stored key.
pub(crate) fn usage(row: &PreauthKeyRow) -> KeyUsage {
    KeyUsage {
        reusable: row.reusable,
        expires_at: row.expires_at,
        use_count: row.use_count,
    }
}
