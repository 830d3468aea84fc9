//! SQL for the `preauth_keys` table.

use super::{Db, DbError, Tx, json_list, on_pool, on_transaction, parse_list};

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
    /// Key lifetime of the nodes it admits, seconds: `None` the
    /// coordinator's default, `Some(0)` never expiring.
    pub node_key_lifetime: Option<i64>,
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
    node_key_lifetime: Option<i64>,
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
            node_key_lifetime: raw.node_key_lifetime,
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
    /// Key lifetime of the nodes it admits (see [`PreauthKeyRow`]).
    pub node_key_lifetime: Option<i64>,
}

const SELECT: &str = "SELECT k.id, k.user_id, u.name AS user, k.prefix, k.secret_hash, k.reusable, \
     k.ephemeral, k.pre_approved, k.tags, k.expires_at, k.use_count, k.created_at, k.node_key_lifetime \
     FROM preauth_keys k JOIN users u ON u.id = k.user_id";

impl Db {
    /// Stores a new key and returns its id.
    pub async fn insert_preauth_key(&self, key: &NewPreauthKey<'_>) -> Result<i64, DbError> {
        let (id,): (i64,) = on_pool!(self, |pool, dialect| {
            sqlx::query_as(&dialect.sql(
                "INSERT INTO preauth_keys (user_id, prefix, secret_hash, reusable, ephemeral, \
             pre_approved, tags, expires_at, created_at, node_key_lifetime) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            ))
            .bind(key.user_id)
            .bind(key.prefix)
            .bind(key.secret_hash)
            .bind(key.reusable)
            .bind(key.ephemeral)
            .bind(key.pre_approved)
            .bind(json_list(key.tags))
            .bind(key.expires_at)
            .bind(key.now)
            .bind(key.node_key_lifetime)
            .fetch_one(pool)
            .await?
        });
        Ok(id)
    }

    /// Every key, optionally only one user's, by id.
    pub async fn list_preauth_keys(
        &self,
        user_id: Option<i64>,
    ) -> Result<Vec<PreauthKeyRow>, DbError> {
        let rows: Vec<RawKey> = match user_id {
            Some(user_id) => {
                let query = format!("{SELECT} WHERE k.user_id = ? ORDER BY k.id");
                on_pool!(self, |pool, dialect| sqlx::query_as(&dialect.sql(&query))
                    .bind(user_id)
                    .fetch_all(pool)
                    .await?)
            }
            None => {
                let query = format!("{SELECT} ORDER BY k.id");
                on_pool!(self, |pool, _dialect| sqlx::query_as(&query)
                    .fetch_all(pool)
                    .await?)
            }
        };
        rows.into_iter().map(PreauthKeyRow::try_from).collect()
    }

    /// The key with this public prefix.
    pub async fn find_preauth_key(&self, prefix: &str) -> Result<Option<PreauthKeyRow>, DbError> {
        let query = format!("{SELECT} WHERE k.prefix = ?");
        let row: Option<RawKey> =
            on_pool!(self, |pool, dialect| sqlx::query_as(&dialect.sql(&query))
                .bind(prefix)
                .fetch_optional(pool)
                .await?);
        row.map(PreauthKeyRow::try_from).transpose()
    }

    /// The key with this id.
    pub async fn get_preauth_key(&self, id: i64) -> Result<Option<PreauthKeyRow>, DbError> {
        let query = format!("{SELECT} WHERE k.id = ?");
        let row: Option<RawKey> =
            on_pool!(self, |pool, dialect| sqlx::query_as(&dialect.sql(&query))
                .bind(id)
                .fetch_optional(pool)
                .await?);
        row.map(PreauthKeyRow::try_from).transpose()
    }

    /// Makes a key expire at `now` (if it expires later or never); false when absent.
    pub async fn expire_preauth_key(&self, id: i64, now: i64) -> Result<bool, DbError> {
        let affected = on_pool!(self, |pool, dialect| {
            sqlx::query(&dialect.sql(
            "UPDATE preauth_keys SET expires_at = \
             CASE WHEN expires_at IS NULL OR expires_at > ? THEN ? ELSE expires_at END WHERE id = ?",
        ))
        .bind(now)
        .bind(now)
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected()
        });
        Ok(affected == 1)
    }
}

/// Counts one use of a key inside a registration transaction. Returns false
/// when the key may not be used again (single-use and already used, or expired
/// meanwhile): the database itself guards against two racing registrations,
/// in this process or in another coordinator sharing the database (the
/// update takes the row's lock; the loser sees the winner's count).
pub async fn consume_preauth_key(transaction: &mut Tx, id: i64, now: i64) -> Result<bool, DbError> {
    let affected = on_transaction!(transaction, |conn, dialect| sqlx::query(&dialect.sql(
        "UPDATE preauth_keys SET use_count = use_count + 1 \
         WHERE id = ? AND (reusable OR use_count = 0) AND (expires_at IS NULL OR expires_at > ?)",
    ))
    .bind(id)
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected());
    Ok(affected == 1)
}
