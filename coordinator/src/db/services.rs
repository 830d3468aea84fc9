//! SQL for the `services` table: Tailscale Services, their addresses and
//! the host the admin chose.

use super::{Announcement, Db, DbError, on_pool};

/// A stored service.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ServiceRow {
    /// `svc:name`.
    pub name: String,
    /// Its IPv4 address.
    pub ipv4: String,
    /// Its IPv6 address.
    pub ipv6: String,
    /// The node the admin chose to host it, if any.
    pub host: Option<i64>,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

const COLUMNS: &str = "name, ipv4, ipv6, host, created_at";

impl Db {
    /// Every service, by name.
    pub async fn list_services(&self) -> Result<Vec<ServiceRow>, DbError> {
        let query = format!("SELECT {COLUMNS} FROM services ORDER BY name");
        on_pool!(self, |pool, _dialect| Ok(sqlx::query_as(&query)
            .fetch_all(pool)
            .await?))
    }

    /// Stores a new service; a name or an address already taken is a
    /// [`DbError::Conflict`].
    pub async fn insert_service(&self, row: &ServiceRow) -> Result<(), DbError> {
        on_pool!(self, |pool, dialect| sqlx::query(&dialect.sql(
            "INSERT INTO services (name, ipv4, ipv6, host, created_at) VALUES (?, ?, ?, ?, ?)"
        ))
        .bind(&row.name)
        .bind(&row.ipv4)
        .bind(&row.ipv6)
        .bind(row.host)
        .bind(row.created_at)
        .execute(pool)
        .await
        .map(|_| ())?);
        self.announce(&Announcement::Policy).await;
        Ok(())
    }

    /// Sets the host the admin chose for service `name` (`None`: the
    /// policy's choice); false when there is no such service.
    pub async fn set_service_host(&self, name: &str, host: Option<i64>) -> Result<bool, DbError> {
        let affected = on_pool!(self, |pool, dialect| sqlx::query(
            &dialect.sql("UPDATE services SET host = ? WHERE name = ?")
        )
        .bind(host)
        .bind(name)
        .execute(pool)
        .await?
        .rows_affected());
        self.announce(&Announcement::Policy).await;
        Ok(affected == 1)
    }

    /// Deletes service `name`; false when absent.
    pub async fn delete_service(&self, name: &str) -> Result<bool, DbError> {
        let affected = on_pool!(self, |pool, dialect| sqlx::query(
            &dialect.sql("DELETE FROM services WHERE name = ?")
        )
        .bind(name)
        .execute(pool)
        .await?
        .rows_affected());
        self.announce(&Announcement::Policy).await;
        Ok(affected == 1)
    }
}
