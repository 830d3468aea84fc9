//! SQL for the `users` table.

use super::{Db, DbError, on_pool};

/// A stored user.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct UserRow {
    /// Id.
    pub id: i64,
    /// Unique name (the login the policy refers to).
    pub name: String,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

impl Db {
    /// Inserts a user.
    pub async fn insert_user(&self, name: &str, now: i64) -> Result<UserRow, DbError> {
        on_pool!(self, |pool, dialect| Ok(sqlx::query_as(&dialect.sql(
            "INSERT INTO users (name, created_at) VALUES (?, ?) RETURNING id, name, created_at",
        ))
        .bind(name)
        .bind(now)
        .fetch_one(pool)
        .await?))
    }

    /// Every user, by id.
    pub async fn list_users(&self) -> Result<Vec<UserRow>, DbError> {
        on_pool!(self, |pool, _dialect| Ok(sqlx::query_as(
            "SELECT id, name, created_at FROM users ORDER BY id"
        )
        .fetch_all(pool)
        .await?))
    }

    /// The user called `name`.
    pub async fn find_user(&self, name: &str) -> Result<Option<UserRow>, DbError> {
        on_pool!(self, |pool, dialect| Ok(sqlx::query_as(
            &dialect.sql("SELECT id, name, created_at FROM users WHERE name = ?")
        )
        .bind(name)
        .fetch_optional(pool)
        .await?))
    }

    /// Renames a user; false when no user had `old`.
    pub async fn rename_user(&self, old: &str, new: &str) -> Result<bool, DbError> {
        let affected = on_pool!(self, |pool, dialect| sqlx::query(
            &dialect.sql("UPDATE users SET name = ? WHERE name = ?")
        )
        .bind(new)
        .bind(old)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(affected == 1)
    }

    /// Deletes a user (and, by cascade, their pre-auth keys); false when absent.
    pub async fn delete_user(&self, id: i64) -> Result<bool, DbError> {
        let affected = on_pool!(self, |pool, dialect| sqlx::query(
            &dialect.sql("DELETE FROM users WHERE id = ?")
        )
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(affected == 1)
    }
}
