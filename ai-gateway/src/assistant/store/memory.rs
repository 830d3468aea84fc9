//! Memory entries and the note of trimmed turns: the `memory` and
//! `trimmed` tables.

use hearth_assistant::memory::{Entry, Layer, Source};
use hearth_assistant::scope::Owner;
use sqlx::Row;

use super::database::{Database, StoreError, vector_bytes, vector_of};

/// Where memory is kept.
#[derive(Clone)]
pub struct MemoryStore {
    db: Database,
}

fn layer_text(layer: &Layer) -> String {
    match layer {
        Layer::LongTerm => "long".into(),
        Layer::Daily(date) => date.to_string(),
    }
}

fn layer_of(text: &str) -> Option<Layer> {
    if text == "long" {
        return Some(Layer::LongTerm);
    }
    text.parse().ok().map(Layer::Daily)
}

impl MemoryStore {
    /// Memory in `db`.
    pub fn new(db: Database) -> MemoryStore {
        MemoryStore { db }
    }

    /// Stores an entry, in place of `owner`'s entry `replacing` when one is
    /// given (both or neither: one transaction); the new entry's id.
    #[allow(clippy::too_many_arguments)] // the entry's fields, and what it replaces
    pub async fn remember(
        &self,
        replacing: Option<i64>,
        owner: &Owner,
        layer: &Layer,
        text: &str,
        vector: Option<&[f32]>,
        source: Source,
        at_ms: i64,
    ) -> Result<i64, StoreError> {
        let key = owner.key();
        let (text, sealed) = self.db.seal("memory", &key, text.as_bytes());
        let vector =
            vector.map(|vector| self.db.seal("memory-vector", &key, &vector_bytes(vector)).0);
        let mut transaction = self.db.pool.begin().await?;
        let id = sqlx::query(
            "INSERT INTO memory (owner, layer, text, vector, sealed, source, written_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&key)
        .bind(layer_text(layer))
        .bind(text)
        .bind(vector)
        .bind(sealed)
        .bind(source.as_str())
        .bind(at_ms)
        .execute(&mut *transaction)
        .await?
        .last_insert_rowid();
        if let Some(old) = replacing {
            sqlx::query("DELETE FROM memory WHERE id = ? AND owner = ?")
                .bind(old)
                .bind(&key)
                .execute(&mut *transaction)
                .await?;
        }
        transaction.commit().await?;
        Ok(id)
    }

    /// Sets an entry's embedding (after the embedding model changed).
    pub async fn set_memory_vector(
        &self,
        id: i64,
        owner: &Owner,
        vector: &[f32],
    ) -> Result<(), StoreError> {
        let (vector, _) = self
            .db
            .seal("memory-vector", &owner.key(), &vector_bytes(vector));
        sqlx::query("UPDATE memory SET vector = ? WHERE id = ?")
            .bind(vector)
            .bind(id)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    /// Deletes entry `id` if `owner` owns it; whether it did.
    pub async fn forget(&self, owner: &Owner, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM memory WHERE id = ? AND owner = ?")
            .bind(id)
            .bind(owner.key())
            .execute(&self.db.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The memory entries, opened, one at a time to `each` (not all held
    /// at once): all of them, or only those without an embedding.
    pub async fn each_memory(
        &self,
        unembedded_only: bool,
        mut each: impl FnMut(Entry, Option<Vec<f32>>),
    ) -> Result<(), StoreError> {
        use futures_util::TryStreamExt as _;
        let query = if unembedded_only {
            "SELECT id, owner, layer, text, vector, sealed, source, written_at FROM memory \
             WHERE vector IS NULL ORDER BY id"
        } else {
            "SELECT id, owner, layer, text, vector, sealed, source, written_at FROM memory ORDER BY id"
        };
        let mut rows = sqlx::query(query).fetch(&self.db.pool);
        while let Some(row) = rows.try_next().await? {
            let owner_key: String = row.get("owner");
            let sealed: bool = row.get("sealed");
            let owner = Owner::from_key(&owner_key)
                .ok_or_else(|| StoreError::Damaged(format!("memory owner {owner_key:?}")))?;
            let layer = layer_of(row.get::<&str, _>("layer"))
                .ok_or_else(|| StoreError::Damaged("memory layer".into()))?;
            let text = self
                .db
                .open_text("memory", &owner_key, row.get("text"), sealed)?;
            let vector = match row.get::<Option<Vec<u8>>, _>("vector") {
                Some(stored) => vector_of(&self.db.open_bytes(
                    "memory-vector",
                    &owner_key,
                    &stored,
                    sealed,
                )?),
                None => None,
            };
            let written_at = jiff::Timestamp::from_millisecond(row.get("written_at"))
                .map_err(|_| StoreError::Damaged("memory time".into()))?;
            let source = Source::parse(row.get("source"))
                .ok_or_else(|| StoreError::Damaged("memory source".into()))?;
            each(
                Entry {
                    id: row.get("id"),
                    owner,
                    layer,
                    text,
                    written_at,
                    source,
                },
                vector,
            );
        }
        Ok(())
    }

    // The note of trimmed turns.

    /// How many messages of `session` are already in a daily note.
    pub async fn trimmed_through(&self, session: &str) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT through FROM trimmed WHERE session = ?")
                .bind(session)
                .fetch_optional(&self.db.pool)
                .await?
                .unwrap_or(0),
        )
    }

    /// Records that `session`'s first `through` messages are in a daily note.
    pub async fn set_trimmed(&self, session: &str, through: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO trimmed (session, through) VALUES (?, ?) ON CONFLICT(session) DO UPDATE SET through = excluded.through",
        )
        .bind(session)
        .bind(through)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_files::sealed::AtRestKey;

    /// Every memory entry, opened, with its embedding.
    async fn all_memory(store: &MemoryStore) -> Result<Vec<(Entry, Option<Vec<f32>>)>, StoreError> {
        let mut entries = Vec::new();
        store
            .each_memory(false, |entry, vector| entries.push((entry, vector)))
            .await?;
        Ok(entries)
    }

    #[tokio::test]
    async fn sealed_memory_is_bound_to_its_owner_and_needs_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = || Some(AtRestKey::new(&[7; 32]));
        let db = Database::open(dir.path(), key()).await.unwrap();
        let store = MemoryStore::new(db.clone());
        let ada = Owner::Member("ada".into());
        let id = store
            .remember(
                None,
                &ada,
                &Layer::LongTerm,
                "CANARY-lock-4711",
                Some(&[1.0, 2.0]),
                Source::Asked,
                1,
            )
            .await
            .unwrap();
        let raw = std::fs::read(dir.path().join("assistant.db")).unwrap();
        assert!(!raw.windows(10).any(|window| window == b"CANARY-loc"));
        let all = all_memory(&store).await.unwrap();
        assert_eq!(all[0].0.text, "CANARY-lock-4711");
        assert_eq!(all[0].1.as_deref(), Some([1.0, 2.0].as_slice()));
        // Moved to ben's place by someone with the database: it does not open.
        sqlx::query("UPDATE memory SET owner = 'member:ben' WHERE id = ?")
            .bind(id)
            .execute(&db.pool)
            .await
            .unwrap();
        assert!(matches!(all_memory(&store).await, Err(StoreError::Seal(_))));
        db.close().await;
        // Without the key, or with another, the store does not open.
        assert!(Database::open(dir.path(), None).await.is_err());
        assert!(
            Database::open(dir.path(), Some(AtRestKey::new(&[8; 32])))
                .await
                .is_err()
        );
    }
}
