//! SQL for the `device_certificates` table: when each node ordered a
//! certificate for its name, counted for the weekly limit whether the
//! order succeeded or not.

use super::{Db, DbError, on_pool};

impl Db {
    /// Records that `node` ordered a certificate at `at` (and forgets
    /// orders older than `forget_before`).
    pub async fn record_certificate_order(
        &self,
        node: u64,
        at: i64,
        forget_before: i64,
    ) -> Result<(), DbError> {
        let node = i64::try_from(node).unwrap_or(i64::MAX);
        on_pool!(self, |pool, dialect| {
            sqlx::query(&dialect.sql("DELETE FROM device_certificates WHERE ordered_at < ?"))
                .bind(forget_before)
                .execute(pool)
                .await?;
            sqlx::query(
                &dialect.sql("INSERT INTO device_certificates (node_id, ordered_at) VALUES (?, ?)"),
            )
            .bind(node)
            .bind(at)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// How many certificates `node` ordered since `since`.
    pub async fn certificate_orders_since(&self, node: u64, since: i64) -> Result<u64, DbError> {
        let node = i64::try_from(node).unwrap_or(i64::MAX);
        let (count,): (i64,) = on_pool!(self, |pool, dialect| sqlx::query_as(&dialect.sql(
            "SELECT COUNT(*) FROM device_certificates WHERE node_id = ? AND ordered_at >= ?"
        ))
        .bind(node)
        .bind(since)
        .fetch_one(pool)
        .await?);
        Ok(u64::try_from(count).unwrap_or(0))
    }
}
