//! Users and pre-auth keys: creating, listing, renaming and deleting users;
//! minting, listing and expiring keys (the rules of a key's use are in
//! [`crate::authkey`]).

use hearth_control::{JoinToken, SecretString};
use serde::Serialize;

use crate::authkey::{self, KeyUsage};
use crate::coordinator::Coordinator;
use crate::db::preauth_keys::{NewPreauthKey, PreauthKeyRow};
use crate::db::users::UserRow;
use crate::error::{Error, Result};
use crate::names;
use crate::netmap::NodeRecord;
use hearth_runtime::clock::unix_seconds as unix_now;

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
    fn new(row: PreauthKeyRow, now: i64) -> KeyView {
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
fn check_email(email: &str) -> Result<()> {
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

impl Coordinator {
    /// Creates a user, with the email address a person who signs in
    /// through the identity provider must have (verified) to be this user.
    pub async fn create_user(&self, name: &str, email: Option<&str>) -> Result<UserRow> {
        names::check_user_name(name)?;
        if let Some(email) = email {
            check_email(email)?;
        }
        let _turn = self.turn().await;
        self.check_name_free(name, None).await?;
        match self.db.insert_user(name, email, unix_now()).await {
            Err(crate::db::DbError::Conflict(_)) => Err(Error::Conflict(format!(
                "user `{name}` or the address {email:?} exists already"
            ))),
            other => Ok(other?),
        }
    }

    /// Refuses `name` when another user (not `except`) has it, letter case
    /// aside: `Alice` beside `alice` would be two people to the database
    /// and one to everyone reading a list or a policy.
    async fn check_name_free(&self, name: &str, except: Option<i64>) -> Result<()> {
        let users = self.db.list_users().await?;
        match users
            .iter()
            .find(|user| Some(user.id) != except && names::same_user_name(&user.name, name))
        {
            Some(user) if user.name == name => {
                Err(Error::Conflict(format!("user `{name}` already exists")))
            }
            Some(user) => Err(Error::Conflict(format!(
                "user `{}` already exists (names that differ only in letter case are one name)",
                user.name
            ))),
            None => Ok(()),
        }
    }

    /// Links user `name` to a person at the identity provider: records the
    /// email address they must sign in with (verified by the provider), or
    /// names their provider account (`issuer subject`) outright. Until one
    /// of them, nobody signing in is this user, whatever name the provider
    /// gives them.
    pub async fn link_user(
        &self,
        name: &str,
        email: Option<&str>,
        subject: Option<&str>,
    ) -> Result<UserRow> {
        let _turn = self.turn().await;
        let user = self.user(name).await?;
        if email.is_none() && subject.is_none() {
            return Err(Error::BadRequest(
                "name the person's email address or provider account".into(),
            ));
        }
        if let Some(email) = email {
            check_email(email)?;
            match self.db.set_user_email(user.id, Some(email)).await {
                Err(crate::db::DbError::Conflict(_)) => {
                    return Err(Error::Conflict(format!(
                        "another user has the address {email}"
                    )));
                }
                other => other?,
            };
        }
        if let Some(subject) = subject {
            let Some((issuer, sub)) = subject.split_once(' ') else {
                return Err(Error::BadRequest(
                    "a provider account is its issuer and subject, space-separated".into(),
                ));
            };
            if issuer.is_empty() || sub.is_empty() || subject.chars().any(char::is_control) {
                return Err(Error::BadRequest("not a provider account".into()));
            }
            match self.db.record_sign_in(user.id, subject, "[]", 0).await {
                Err(crate::db::DbError::Conflict(_)) => {
                    return Err(Error::Conflict(
                        "that provider account is another user's".into(),
                    ));
                }
                other => other?,
            };
        }
        tracing::info!(user = %user.name, "a user was linked to the identity provider");
        Ok(UserRow {
            email: email.map(str::to_owned).or(user.email.clone()),
            ..user
        })
    }

    /// Every user.
    pub async fn list_users(&self) -> Result<Vec<UserRow>> {
        Ok(self.db.list_users().await?)
    }

    pub(crate) async fn user(&self, name: &str) -> Result<UserRow> {
        self.db
            .find_user(name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("user `{name}`")))
    }

    /// Renames a user; their nodes' identity changes with it.
    pub async fn rename_user(&self, old: &str, new: &str) -> Result<UserRow> {
        names::check_user_name(new)?;
        let turn = self.turn().await;
        let user = self.user(old).await?;
        self.check_name_free(new, Some(user.id)).await?;
        match self.db.rename_user(old, new).await {
            Err(crate::db::DbError::Conflict(_)) => {
                return Err(Error::Conflict(format!("user `{new}` already exists")));
            }
            other => other?,
        };
        let affected: Vec<NodeRecord> = self
            .state()
            .registry
            .network()
            .nodes()
            .filter(|record| record.user_id == user.id)
            .cloned()
            .collect();
        for mut record in affected {
            record.user = new.to_owned();
            self.apply(&turn, record);
        }
        self.refresh_provider_groups(&turn).await?;
        Ok(UserRow {
            name: new.to_owned(),
            ..user
        })
    }

    /// Deletes a user who has no nodes left (their keys go with them).
    pub async fn delete_user(&self, name: &str) -> Result<()> {
        let turn = self.turn().await;
        let user = self.user(name).await?;
        let nodes = self
            .state()
            .registry
            .network()
            .nodes()
            .filter(|record| record.user_id == user.id)
            .count();
        if nodes > 0 {
            return Err(Error::Conflict(format!(
                "user `{name}` still owns {nodes} node(s); delete them first"
            )));
        }
        self.db.delete_user(user.id).await?;
        self.refresh_provider_groups(&turn).await?;
        Ok(())
    }

    /// Creates a pre-auth key and the join token that carries it.
    pub async fn create_key(&self, options: &KeyOptions) -> Result<CreatedKey> {
        for tag in &options.tags {
            names::check_tag(tag)?;
        }
        let user = self.user(&options.user).await?;
        let now = unix_now();
        let minted = authkey::mint();
        let expires_at = options
            .expiration_seconds
            .map(|seconds| now.saturating_add(i64::try_from(seconds).unwrap_or(i64::MAX)));
        let id = self
            .db
            .insert_preauth_key(&NewPreauthKey {
                user_id: user.id,
                prefix: &minted.prefix,
                secret_hash: &minted.secret_hash,
                reusable: options.reusable,
                ephemeral: options.ephemeral,
                pre_approved: options.pre_approved,
                tags: &options.tags,
                expires_at,
                now,
                node_key_lifetime: options
                    .node_key_lifetime_seconds
                    .map(|seconds| i64::try_from(seconds).unwrap_or(i64::MAX)),
            })
            .await?;
        let row = self
            .db
            .get_preauth_key(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("pre-auth key {id}")))?;
        let token = JoinToken {
            url: self.settings.public_url.clone(),
            fingerprint: self.settings.fingerprint,
            key: SecretString::new(minted.text.to_string()),
        };
        tracing::info!(key = id, user = %user.name, "pre-auth key created");
        Ok(CreatedKey {
            key: KeyView::new(row, now),
            token: token.encode(),
        })
    }

    /// Keys, optionally of one user.
    pub async fn list_keys(&self, user: Option<&str>) -> Result<Vec<KeyView>> {
        let user_id = match user {
            Some(name) => Some(self.user(name).await?.id),
            None => None,
        };
        let now = unix_now();
        Ok(self
            .db
            .list_preauth_keys(user_id)
            .await?
            .into_iter()
            .map(|row| KeyView::new(row, now))
            .collect())
    }

    /// Makes a key unusable from now on.
    pub async fn expire_key(&self, id: i64) -> Result<KeyView> {
        let now = unix_now();
        if !self.db.expire_preauth_key(id, now).await? {
            return Err(Error::NotFound(format!("pre-auth key {id}")));
        }
        let row = self
            .db
            .get_preauth_key(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("pre-auth key {id}")))?;
        Ok(KeyView::new(row, now))
    }
}
