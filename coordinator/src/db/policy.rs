//! SQL for the `policy` table (one row: the current policy text).

use super::{Db, DbError};

impl Db {
    /// The stored policy text, if any.
    pub async fn load_policy(&self) -> Result<Option<String>, DbError> {
        let row: Option<(String,)> = sqlx::query_as("SELECT body FROM policy WHERE id = 1")
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|(body,)| body))
    }

    /// Replaces the stored policy text.
    pub async fn store_policy(&self, body: &str, now: i64) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO policy (id, body, updated_at) VALUES (1, ?, ?) \
             ON CONFLICT(id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
        )
        .bind(body)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
