//! SQL for the `policy` table (one row: the current policy text).

use super::{Announcement, Db, DbError, on_pool};

impl Db {
    /// The stored policy text, if any.
    pub async fn load_policy(&self) -> Result<Option<String>, DbError> {
        let row: Option<(String,)> = on_pool!(self, |pool, _dialect| sqlx::query_as(
            "SELECT body FROM policy WHERE id = 1"
        )
        .fetch_optional(pool)
        .await?);
        Ok(row.map(|(body,)| body))
    }

    /// Replaces the stored policy text.
    pub async fn store_policy(&self, body: &str, now: i64) -> Result<(), DbError> {
        on_pool!(self, |pool, dialect| sqlx::query(&dialect.sql(
            "INSERT INTO policy (id, body, updated_at) VALUES (1, ?, ?) \
             ON CONFLICT(id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
        ))
        .bind(body)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected());
        self.announce(&Announcement::Policy).await;
        Ok(())
    }
}
