//! The assistant's database (`DATA_DIR/assistant.db`): its pool and
//! at-rest key, what its stores share.

use std::path::Path;
use std::sync::Arc;

use hearth_files::sealed::{AtRestKey, SealError};
use sqlx::SqlitePool;

/// What can go wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("the assistant's database failed: {0}")]
    Sqlite(#[from] sqlx::Error),
    /// A migration failed.
    #[error("the assistant's database could not be updated: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A sealed value does not open, or the key is wrong or missing.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// The file could not be made private.
    #[error("cannot create {path}: {error}")]
    Create {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// A stored value is not what was written.
    #[error("the assistant's database holds a damaged row: {0}")]
    Damaged(String),
}

/// A store failure as members are told of it: logged where it happened
/// ([`StoreError::logged`]), said without any stored content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the assistant's memory could not be used just now")]
pub struct Unavailable;

impl StoreError {
    /// Logs this failure and gives what is told instead.
    pub fn logged(&self) -> Unavailable {
        tracing::error!(error = %self, "the assistant's store failed");
        Unavailable
    }
}

const KEY_CHECK: &str = "key-check";
const EMBEDDING_MODEL: &str = "embedding-model";
/// Each connection's page cache: the store is read whole at start (into
/// the search indexes) and then mostly by key.
const STORE_CACHE_KIB: u32 = 512;

/// The assistant's database: its pool and at-rest key. Each part of the
/// assistant keeps its own tables through its own store ([`MemoryStore`],
/// [`JobStore`], [`DocumentStore`], [`ListStore`]), all in this one file.
#[derive(Clone)]
pub struct Database {
    pub(super) pool: SqlitePool,
    key: Option<Arc<AtRestKey>>,
}

/// Little-endian bytes of a vector.
pub fn vector_bytes(vector: &[f32]) -> Vec<u8> {
    vector
        .iter()
        .flat_map(|value| value.to_le_bytes())
        .collect()
}

/// A vector from its little-endian bytes.
pub fn vector_of(bytes: &[u8]) -> Option<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|chunk| f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
            .collect(),
    )
}

fn place(kind: &str, owner: &str) -> Vec<u8> {
    format!("hearth-assistant-v1\n{kind}\n{owner}").into_bytes()
}

impl Database {
    /// Opens (creating) the store in `data_dir`, sealing with `key`.
    /// Refuses a key other than the one the store was sealed with, and a
    /// missing key when values are sealed.
    pub async fn open(data_dir: &Path, key: Option<AtRestKey>) -> Result<Database, StoreError> {
        let path = data_dir.join("assistant.db");
        hearth_files::private::create_private(&path).map_err(|error| StoreError::Create {
            path: path.display().to_string(),
            error,
        })?;
        let pool = hearth_files::sqlite::connect_with_cache(&path, Some(STORE_CACHE_KIB)).await?;
        sqlx::migrate!("./migrations/assistant").run(&pool).await?;
        let store = Database {
            pool,
            key: key.map(Arc::new),
        };
        store.check_key().await?;
        Ok(store)
    }

    async fn check_key(&self) -> Result<(), StoreError> {
        let check: Option<Vec<u8>> = sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(KEY_CHECK)
            .fetch_optional(&self.pool)
            .await?;
        let mut sealed = 0i64;
        for table in ["memory", "jobs", "deliveries", "list_items", "passages"] {
            let count: i64 =
                sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table} WHERE sealed = 1"))
                    .fetch_one(&self.pool)
                    .await?;
            sealed += count;
        }
        match (&self.key, check) {
            (Some(key), Some(check)) => {
                key.open(&place("meta", KEY_CHECK), &check).map_err(|_| {
                    SealError::BadKey(
                        "the at-rest key is not the one the assistant's memory was sealed with"
                            .into(),
                    )
                })?;
            }
            (Some(key), None) => {
                sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?)")
                    .bind(KEY_CHECK)
                    .bind(key.seal(&place("meta", KEY_CHECK), b"hearth"))
                    .execute(&self.pool)
                    .await?;
            }
            (None, _) if sealed > 0 => {
                return Err(SealError::BadKey(format!(
                    "{sealed} stored values are sealed: configure hearth.assistant.encryptionKeyFile to read them"
                ))
                .into());
            }
            (None, _) => {}
        }
        Ok(())
    }

    pub(super) fn seal(&self, kind: &str, owner: &str, plaintext: &[u8]) -> (Vec<u8>, bool) {
        match &self.key {
            Some(key) => (key.seal(&place(kind, owner), plaintext), true),
            None => (plaintext.to_vec(), false),
        }
    }

    pub(super) fn open_bytes(
        &self,
        kind: &str,
        owner: &str,
        stored: &[u8],
        sealed: bool,
    ) -> Result<Vec<u8>, StoreError> {
        if !sealed {
            return Ok(stored.to_vec());
        }
        let key = self
            .key
            .as_ref()
            .ok_or_else(|| SealError::BadKey("a sealed value and no key".into()))?;
        Ok(key.open(&place(kind, owner), stored)?.to_vec())
    }

    pub(super) fn open_text(
        &self,
        kind: &str,
        owner: &str,
        stored: &[u8],
        sealed: bool,
    ) -> Result<String, StoreError> {
        String::from_utf8(self.open_bytes(kind, owner, stored, sealed)?)
            .map_err(|_| StoreError::Damaged(format!("{kind} text is not UTF-8")))
    }

    /// Closes the pool (writes are committed as they happen).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Drops embeddings made by another model than `model` (they cannot be
    /// compared with new ones); whether the model changed.
    pub async fn embedding_model(&self, model: &str) -> Result<bool, StoreError> {
        let known: Option<Vec<u8>> = sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(EMBEDDING_MODEL)
            .fetch_optional(&self.pool)
            .await?;
        if known.as_deref() == Some(model.as_bytes()) {
            return Ok(false);
        }
        let mut transaction = self.pool.begin().await?;
        sqlx::query("UPDATE memory SET vector = NULL")
            .execute(&mut *transaction)
            .await?;
        // Documents are indexed again, whole, with the new model.
        sqlx::query("DELETE FROM documents")
            .execute(&mut *transaction)
            .await?;
        sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
            .bind(EMBEDDING_MODEL)
            .bind(model.as_bytes())
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip_through_bytes() {
        let vector = [0.5_f32, -1.25, 3.0];
        assert_eq!(vector_of(&vector_bytes(&vector)).unwrap(), vector);
        assert_eq!(vector_of(&[1, 2, 3]), None);
    }
}
