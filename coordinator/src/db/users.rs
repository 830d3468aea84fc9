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
    /// The email address an admin recorded: a person the identity
    /// provider verified to have it signs in as this user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

impl Db {
    /// Inserts a user (with the email address an admin recorded, if any).
    pub async fn insert_user(
        &self,
        name: &str,
        email: Option<&str>,
        now: i64,
    ) -> Result<UserRow, DbError> {
        on_pool!(self, |pool, dialect| Ok(sqlx::query_as(&dialect.sql(
            "INSERT INTO users (name, email, created_at) VALUES (?, ?, ?) \
             RETURNING id, name, created_at, email",
        ))
        .bind(name)
        .bind(email)
        .bind(now)
        .fetch_one(pool)
        .await?))
    }

    /// Records `email` (or none) for user `id`; false when absent.
    pub async fn set_user_email(&self, id: i64, email: Option<&str>) -> Result<bool, DbError> {
        let affected = on_pool!(self, |pool, dialect| sqlx::query(
            &dialect.sql("UPDATE users SET email = ? WHERE id = ?")
        )
        .bind(email)
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(affected == 1)
    }

    /// Every user, by id.
    pub async fn list_users(&self) -> Result<Vec<UserRow>, DbError> {
        on_pool!(self, |pool, _dialect| Ok(sqlx::query_as(
            "SELECT id, name, created_at, email FROM users ORDER BY id"
        )
        .fetch_all(pool)
        .await?))
    }

    /// The user called `name`.
    pub async fn find_user(&self, name: &str) -> Result<Option<UserRow>, DbError> {
        on_pool!(self, |pool, dialect| Ok(sqlx::query_as(&dialect.sql(
            "SELECT id, name, created_at, email FROM users WHERE name = ?"
        ))
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

/// The identity-provider account a user signs in as.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ProviderIdentityRow {
    /// The user.
    pub user_id: i64,
    /// The account: the provider's issuer and its subject, space-separated.
    pub subject: String,
    /// The groups the provider said the user is in at the last sign-in,
    /// a JSON list.
    pub groups: String,
    /// The last sign-in, Unix seconds.
    pub signed_in_at: i64,
}

impl Db {
    /// Every user's provider account.
    pub async fn list_provider_identities(&self) -> Result<Vec<ProviderIdentityRow>, DbError> {
        on_pool!(self, |pool, _dialect| {
            Ok(sqlx::query_as(
            "SELECT user_id, subject, groups, signed_in_at FROM provider_identities ORDER BY user_id"
        )
        .fetch_all(pool)
        .await?)
        })
    }

    /// Records a sign-in: `user_id` is the provider account `subject`, in
    /// `groups` (a JSON list). Fails (a unique violation) when the account is
    /// another user's.
    pub async fn record_sign_in(
        &self,
        user_id: i64,
        subject: &str,
        groups: &str,
        now: i64,
    ) -> Result<(), DbError> {
        on_pool!(self, |pool, dialect| sqlx::query(&dialect.sql(
            "INSERT INTO provider_identities (user_id, subject, groups, signed_in_at) \
             VALUES (?, ?, ?, ?) \
             ON CONFLICT (user_id) DO UPDATE SET subject = excluded.subject, \
             groups = excluded.groups, signed_in_at = excluded.signed_in_at",
        ))
        .bind(user_id)
        .bind(subject)
        .bind(groups)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(())
    }
}
