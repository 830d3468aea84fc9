//! SQL for the `relays` table: standalone relays an admin added.

use super::{Announcement, Db, DbError, on_pool};

/// A stored standalone relay.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct RelayRow {
    /// Its region id (901 and up).
    pub id: i64,
    /// Its short name.
    pub code: String,
    /// Where clients reach it, `https://host:port`.
    pub url: String,
    /// SHA-256 of its certificate, once it said hello.
    pub fingerprint: Option<String>,
    /// Its STUN port, if it answers STUN.
    pub stun_port: Option<i64>,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

const COLUMNS: &str = "id, code, url, fingerprint, stun_port, created_at";

impl Db {
    /// Inserts a relay with the next region id after 900 and the SHA-256
    /// (hex) of its secret.
    pub async fn insert_relay(
        &self,
        code: &str,
        url: &str,
        secret_hash: &str,
        now: i64,
    ) -> Result<RelayRow, DbError> {
        let query = format!(
            "INSERT INTO relays (id, code, url, secret_hash, created_at) \
             SELECT COALESCE(MAX(id), 900) + 1, ?, ?, ?, ? FROM relays \
             RETURNING {COLUMNS}"
        );
        on_pool!(self, |pool, dialect| Ok(sqlx::query_as(
            &dialect.sql(&query)
        )
        .bind(code)
        .bind(url)
        .bind(secret_hash)
        .bind(now)
        .fetch_one(pool)
        .await?))
    }

    /// Every relay, by id.
    pub async fn list_relays(&self) -> Result<Vec<RelayRow>, DbError> {
        let query = format!("SELECT {COLUMNS} FROM relays ORDER BY id");
        on_pool!(self, |pool, _dialect| Ok(sqlx::query_as(&query)
            .fetch_all(pool)
            .await?))
    }

    /// The relay whose secret has SHA-256 `secret_hash`.
    pub async fn relay_by_secret(&self, secret_hash: &str) -> Result<Option<RelayRow>, DbError> {
        let query = format!("SELECT {COLUMNS} FROM relays WHERE secret_hash = ?");
        on_pool!(self, |pool, dialect| Ok(sqlx::query_as(
            &dialect.sql(&query)
        )
        .bind(secret_hash)
        .fetch_optional(pool)
        .await?))
    }

    /// Records what relay `id` said in its hello; false when it is gone.
    pub async fn set_relay_hello(
        &self,
        id: i64,
        fingerprint: &str,
        stun_port: Option<u16>,
    ) -> Result<bool, DbError> {
        let affected = on_pool!(self, |pool, dialect| sqlx::query(
            &dialect.sql("UPDATE relays SET fingerprint = ?, stun_port = ? WHERE id = ?")
        )
        .bind(fingerprint)
        .bind(stun_port.map(i64::from))
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected());
        self.announce(&Announcement::Relays).await;
        Ok(affected == 1)
    }

    /// Deletes the relay called `code`; false when absent.
    pub async fn delete_relay(&self, code: &str) -> Result<bool, DbError> {
        let affected = on_pool!(self, |pool, dialect| sqlx::query(
            &dialect.sql("DELETE FROM relays WHERE code = ?")
        )
        .bind(code)
        .execute(pool)
        .await?
        .rows_affected());
        self.announce(&Announcement::Relays).await;
        Ok(affected == 1)
    }
}
