//! SQL for the `preauth_keys` table.

use sqlx::{Sqlite, Transaction};

use super::{Db, DbError, json_list, parse_list};

/// A stored pre-auth key (its secret is only a hash here).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreauthKeyRow {
    /// Id.
    pub id: i64,
    /// Owning user's id.
    pub user_id: i64,
    /// Owning user's name.
    pub user: String,
    /// Public prefix.
    pub prefix: String,
    /// SHA-256 of the secret.
    pub secret_hash: Vec<u8>,
    /// Usable more than once.
    pub reusable: bool,
    /// Nodes it admits are ephemeral.
    pub ephemeral: bool,
    /// Nodes it admits skip manual approval.
    pub pre_approved: bool,
    /// Tags given to nodes it admits.
    pub tags: Vec<String>,
    /// Expiry, Unix seconds.
    pub expires_at: Option<i64>,
    /// Nodes admitted so far.
    pub use_count: i64,
    /// Creation time.
    pub created_at: i64,
}

#[derive(sqlx::FromRow)]
struct RawKey {
    id: i64,
    user_id: i64,
    user: String,
    prefix: String,
    secret_hash: Vec<u8>,
    reusable: bool,
    ephemeral: bool,
    pre_approved: bool,
    tags: String,
    expires_at: Option<i64>,
    use_count: i64,
    created_at: i64,
}

impl TryFrom<RawKey> for PreauthKeyRow {
    type Error = DbError;
    fn try_from(raw: RawKey) -> Result<Self, DbError> {
        Ok(PreauthKeyRow {
            tags: parse_list("preauth_keys.tags", &raw.tags)?,
            id: raw.id,
            user_id: raw.user_id,
            user: raw.user,
            prefix: raw.prefix,
            secret_hash: raw.secret_hash,
            reusable: raw.reusable,
            ephemeral: raw.ephemeral,
            pre_approved: raw.pre_approved,
            expires_at: raw.expires_at,
            use_count: raw.use_count,
            created_at: raw.created_at,
        })
    }
}

/// What is stored for a new key.
#[derive(Clone, Debug)]
pub struct NewPreauthKey<'a> {
    /// Owning user's id.
    pub user_id: i64,
    /// Public prefix.
    pub prefix: &'a str,
    /// SHA-256 of the secret.
    pub secret_hash: &'a [u8],
    /// Usable more than once.
    pub reusable: bool,
    /// Admitted nodes are ephemeral.
    pub ephemeral: bool,
    /// Admitted nodes skip approval.
    pub pre_approved: bool,
    /// Tags for admitted nodes.
    pub tags: &'a [String],
    /// Expiry, Unix seconds.
    pub expires_at: Option<i64>,
    /// Creation time.
    pub now: i64,
}

const SELECT: &str = "SELECT k.id, k.user_id, u.name AS user, k.prefix, k.secret_hash, k.reusable, \
     k.ephemeral, k.pre_approved, k.tags, k.expires_at, k.use_count, k.created_at \
     FROM preauth_keys k JOIN users u ON u.id = k.user_id";

impl Db {
    /// Stores a new key and returns its id.
    pub async fn insert_preauth_key(&self, key: &NewPreauthKey<'_>) -> Result<i64, DbError> {
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO preauth_keys (user_id, prefix, secret_hash, reusable, ephemeral, \
             pre_approved, tags, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(key.user_id)
        .bind(key.prefix)
        .bind(key.secret_hash)
        .bind(key.reusable)
        .bind(key.ephemeral)
        .bind(key.pre_approved)
        .bind(json_list(key.tags))
        .bind(key.expires_at)
        .bind(key.now)
        .fetch_one(self.pool())
        .await?;
        Ok(id)
    }

    /// Every key, optionally only one user's, by id.
    pub async fn list_preauth_keys(
        &self,
        user_id: Option<i64>,
    ) -> Result<Vec<PreauthKeyRow>, DbError> {
        let rows: Vec<RawKey> = match user_id {
            Some(user_id) => {
                sqlx::query_as(&format!("{SELECT} WHERE k.user_id = ? ORDER BY k.id"))
                    .bind(user_id)
                    .fetch_all(self.pool())
                    .await?
            }
            None => {
                sqlx::query_as(&format!("{SELECT} ORDER BY k.id"))
                    .fetch_all(self.pool())
                    .await?
            }
        };
        rows.into_iter().map(PreauthKeyRow::try_from).collect()
    }

    /// The key with this public prefix.
    pub async fn find_preauth_key(&self, prefix: &str) -> Result<Option<PreauthKeyRow>, DbError> {
        let row: Option<RawKey> = sqlx::query_as(&format!("{SELECT} WHERE k.prefix = ?"))
            .bind(prefix)
            .fetch_optional(self.pool())
            .await?;
        row.map(PreauthKeyRow::try_from).transpose()
    }

    /// The key with this id.
    pub async fn get_preauth_key(&self, id: i64) -> Result<Option<PreauthKeyRow>, DbError> {
        let row: Option<RawKey> = sqlx::query_as(&format!("{SELECT} WHERE k.id = ?"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.map(PreauthKeyRow::try_from).transpose()
    }

    /// Makes a key expire at `now` (if it expires later or never); false when absent.
    pub async fn expire_preauth_key(&self, id: i64, now: i64) -> Result<bool, DbError> {
        let result = sqlx::query(
            "UPDATE preauth_keys SET expires_at = MIN(COALESCE(expires_at, ?1), ?1) WHERE id = ?2",
        )
        .bind(now)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(result.rows_affected() == 1)
    }
}

/// Counts one use of a key inside a registration transaction. Returns false
/// when the key may not be used again (single-use and already used, or expired
/// meanwhile): the database itself guards against two racing registrations.
pub async fn consume_preauth_key(
    transaction: &mut Transaction<'static, Sqlite>,
    id: i64,
    now: i64,
) -> Result<bool, DbError> {
    let result = sqlx::query(
        "UPDATE preauth_keys SET use_count = use_count + 1 \
         WHERE id = ? AND (reusable = 1 OR use_count = 0) AND (expires_at IS NULL OR expires_at > ?)",
    )
    .bind(id)
    .bind(now)
    .execute(&mut **transaction)
    .await?;
    Ok(result.rows_affected() == 1)
}
