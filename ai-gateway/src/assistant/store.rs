//! The assistant's SQLite file (`DATA_DIR/assistant.db`, 0600): memory,
//! reminders, deliveries, lists, the document index. What members said or
//! wrote is sealed with the at-rest key when one is configured, each value
//! bound to its owner so a row moved to another member's place does not
//! open. The schema is `migrations/assistant/`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use hearth_assistant::memory::{Entry, Layer, Source};
use hearth_assistant::scope::Owner;
use hearth_files::sealed::{AtRestKey, SealError};
use sqlx::{Row, SqlitePool};

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

const KEY_CHECK: &str = "key-check";
const EMBEDDING_MODEL: &str = "embedding-model";
/// Each connection's page cache: the store is read whole at start (into
/// the search indexes) and then mostly by key.
const STORE_CACHE_KIB: u32 = 512;
/// Due jobs of one member read at once (the rest wait their turn).
const DUE_PER_MEMBER: i64 = 40;

/// A stored reminder or scheduled question.
#[derive(Clone, Debug)]
pub struct Job {
    /// Its id.
    pub id: i64,
    /// Who made it (and may list and cancel it).
    pub member: String,
    /// Whose authority a scheduled question runs with (JSON of an `Asker`).
    pub asker: String,
    /// Where it is delivered (`member:NAME`, `room:NAME`).
    pub target: String,
    /// When (JSON of a `Schedule`).
    pub schedule: String,
    /// `remind` or `ask`.
    pub action: String,
    /// The reminder's text, or the question.
    pub text: String,
    /// Its next firing, Unix ms.
    pub next_at: i64,
}

/// A stored document passage.
#[derive(Clone, Debug)]
pub struct StoredPassage {
    /// Its id.
    pub id: i64,
    /// Its folder's name.
    pub folder: String,
    /// Its document's path within the folder.
    pub path: String,
    /// How it is cited.
    pub citation: String,
    /// Its text.
    pub text: String,
    /// Its embedding.
    pub vector: Option<Vec<f32>>,
}

/// A passage to store with its document.
pub struct NewPassage {
    /// How it is cited.
    pub citation: String,
    /// Its text.
    pub text: String,
    /// Its embedding.
    pub vector: Option<Vec<f32>>,
}

/// A document as the store knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownDocument {
    /// Its folder's name.
    pub folder: String,
    /// Its path within the folder.
    pub path: String,
    /// Its size when indexed or refused.
    pub size: i64,
    /// Its modification time then, Unix ms.
    pub modified: i64,
    /// Why it was refused (`None`: indexed).
    pub refused: Option<String>,
    /// Its passages (indexed documents).
    pub passages: i64,
}

/// The store.
#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
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

impl Store {
    /// Opens (creating) the store in `data_dir`, sealing with `key`.
    /// Refuses a key other than the one the store was sealed with, and a
    /// missing key when values are sealed.
    pub async fn open(data_dir: &Path, key: Option<AtRestKey>) -> Result<Store, StoreError> {
        let path = data_dir.join("assistant.db");
        hearth_files::private::create_private(&path).map_err(|error| StoreError::Create {
            path: path.display().to_string(),
            error,
        })?;
        let pool = hearth_files::sqlite::connect_with_cache(&path, Some(STORE_CACHE_KIB)).await?;
        sqlx::migrate!("./migrations/assistant").run(&pool).await?;
        let store = Store {
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
        for table in ["memory", "jobs", "deliveries", "list_items"] {
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

    fn seal(&self, kind: &str, owner: &str, plaintext: &[u8]) -> (Vec<u8>, bool) {
        match &self.key {
            Some(key) => (key.seal(&place(kind, owner), plaintext), true),
            None => (plaintext.to_vec(), false),
        }
    }

    fn open_bytes(
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

    fn open_text(
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

    // Memory.

    /// Stores an entry; its id.
    pub async fn remember(
        &self,
        owner: &Owner,
        layer: &Layer,
        text: &str,
        vector: Option<&[f32]>,
        source: Source,
        at_ms: i64,
    ) -> Result<i64, StoreError> {
        let key = owner.key();
        let (text, sealed) = self.seal("memory", &key, text.as_bytes());
        let vector = vector.map(|vector| self.seal("memory-vector", &key, &vector_bytes(vector)).0);
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
        .execute(&self.pool)
        .await?
        .last_insert_rowid();
        Ok(id)
    }

    /// Sets an entry's embedding (after the embedding model changed).
    pub async fn set_memory_vector(
        &self,
        id: i64,
        owner: &Owner,
        vector: &[f32],
    ) -> Result<(), StoreError> {
        let (vector, _) = self.seal("memory-vector", &owner.key(), &vector_bytes(vector));
        sqlx::query("UPDATE memory SET vector = ? WHERE id = ?")
            .bind(vector)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes entry `id` if `owner` owns it; whether it did.
    pub async fn forget(&self, owner: &Owner, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM memory WHERE id = ? AND owner = ?")
            .bind(id)
            .bind(owner.key())
            .execute(&self.pool)
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
        let mut rows = sqlx::query(query).fetch(&self.pool);
        while let Some(row) = rows.try_next().await? {
            let owner_key: String = row.get("owner");
            let sealed: bool = row.get("sealed");
            let owner = Owner::from_key(&owner_key)
                .ok_or_else(|| StoreError::Damaged(format!("memory owner {owner_key:?}")))?;
            let layer = layer_of(row.get::<&str, _>("layer"))
                .ok_or_else(|| StoreError::Damaged("memory layer".into()))?;
            let text = self.open_text("memory", &owner_key, row.get("text"), sealed)?;
            let vector = match row.get::<Option<Vec<u8>>, _>("vector") {
                Some(stored) => {
                    vector_of(&self.open_bytes("memory-vector", &owner_key, &stored, sealed)?)
                }
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

    // Jobs and deliveries.

    /// Stores a job; its id.
    pub async fn schedule(&self, job: &Job, at_ms: i64) -> Result<i64, StoreError> {
        let (text, sealed) = self.seal("job", &job.member, job.text.as_bytes());
        let id = sqlx::query(
            "INSERT INTO jobs (member, asker, target, schedule, action, text, sealed, next_at, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&job.member)
        .bind(&job.asker)
        .bind(&job.target)
        .bind(&job.schedule)
        .bind(&job.action)
        .bind(text)
        .bind(sealed)
        .bind(job.next_at)
        .bind(at_ms)
        .execute(&self.pool)
        .await?
        .last_insert_rowid();
        Ok(id)
    }

    fn job_of(&self, row: &sqlx::sqlite::SqliteRow) -> Result<Job, StoreError> {
        let member: String = row.get("member");
        let text = self.open_text("job", &member, row.get("text"), row.get("sealed"))?;
        Ok(Job {
            id: row.get("id"),
            member,
            asker: row.get("asker"),
            target: row.get("target"),
            schedule: row.get("schedule"),
            action: row.get("action"),
            text,
            next_at: row.get("next_at"),
        })
    }

    /// Jobs due at `now_ms`, earliest first.
    pub async fn due_jobs(&self, now_ms: i64) -> Result<Vec<Job>, StoreError> {
        // At most a few of each member's, so that one member's hundreds of
        // due jobs never hide another's.
        let rows = sqlx::query(
            "SELECT id, member, asker, target, schedule, action, text, sealed, next_at FROM \
             (SELECT *, ROW_NUMBER() OVER (PARTITION BY member ORDER BY next_at, id) AS place \
              FROM jobs WHERE next_at <= ?) \
             WHERE place <= ? ORDER BY next_at, id LIMIT 1000",
        )
        .bind(now_ms)
        .bind(DUE_PER_MEMBER)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| self.job_of(row)).collect()
    }

    /// When the next job is due after `now_ms` (not counting those due
    /// already), Unix ms.
    pub async fn next_due_after(&self, now_ms: i64) -> Result<Option<i64>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT MIN(next_at) FROM jobs WHERE next_at > ?")
                .bind(now_ms)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// `member`'s jobs, soonest first.
    pub async fn jobs_of(&self, member: &str) -> Result<Vec<Job>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, member, asker, target, schedule, action, text, sealed, next_at FROM jobs \
             WHERE member = ? ORDER BY next_at, id",
        )
        .bind(member)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| self.job_of(row)).collect()
    }

    /// How many jobs `member` has.
    pub async fn job_count(&self, member: &str) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE member = ?")
                .bind(member)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Cancels job `id` if `member` made it; whether it did.
    pub async fn cancel(&self, member: &str, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM jobs WHERE id = ? AND member = ?")
            .bind(id)
            .bind(member)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Job `id` fired: its delivery (if any) is queued and its next firing
    /// set (`None`: it is done), together, so a crash neither loses nor
    /// repeats it.
    pub async fn fired(
        &self,
        id: i64,
        delivery: Option<(&str, &str)>,
        next_ms: Option<i64>,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        let mut transaction = self.pool.begin().await?;
        if let Some((target, text)) = delivery {
            let (text, sealed) = self.seal("delivery", target, text.as_bytes());
            sqlx::query(
                "INSERT INTO deliveries (target, text, sealed, created_at) VALUES (?, ?, ?, ?)",
            )
            .bind(target)
            .bind(text)
            .bind(sealed)
            .bind(at_ms)
            .execute(&mut *transaction)
            .await?;
        }
        match next_ms {
            Some(next) => {
                sqlx::query("UPDATE jobs SET next_at = ? WHERE id = ?")
                    .bind(next)
                    .bind(id)
                    .execute(&mut *transaction)
                    .await?;
            }
            None => {
                sqlx::query("DELETE FROM jobs WHERE id = ?")
                    .bind(id)
                    .execute(&mut *transaction)
                    .await?;
            }
        }
        transaction.commit().await?;
        Ok(())
    }

    /// Deliveries after `after` (those up to it are forgotten first), oldest first.
    pub async fn deliveries(&self, after: i64) -> Result<Vec<(i64, String, String)>, StoreError> {
        sqlx::query("DELETE FROM deliveries WHERE id <= ?")
            .bind(after)
            .execute(&self.pool)
            .await?;
        let rows = sqlx::query(
            "SELECT id, target, text, sealed FROM deliveries WHERE id > ? ORDER BY id LIMIT 100",
        )
        .bind(after)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let target: String = row.get("target");
                let text =
                    self.open_text("delivery", &target, row.get("text"), row.get("sealed"))?;
                Ok((row.get("id"), target, text))
            })
            .collect()
    }

    // Lists.

    /// The items of `owner`'s `list`, oldest first, with their ids.
    pub async fn list(&self, owner: &Owner, list: &str) -> Result<Vec<(i64, String)>, StoreError> {
        let key = owner.key();
        let rows = sqlx::query(
            "SELECT id, item, sealed FROM list_items WHERE owner = ? AND list = ? ORDER BY id",
        )
        .bind(&key)
        .bind(list)
        .fetch_all(&self.pool)
        .await?;
        let place_owner = format!("{key}\n{list}");
        rows.iter()
            .map(|row| {
                Ok((
                    row.get("id"),
                    self.open_text("list", &place_owner, row.get("item"), row.get("sealed"))?,
                ))
            })
            .collect()
    }

    /// How many lists `owner` has.
    pub async fn list_count(&self, owner: &Owner) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(DISTINCT list) FROM list_items WHERE owner = ?")
                .bind(owner.key())
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Adds `item` to `owner`'s `list`.
    pub async fn add_item(
        &self,
        owner: &Owner,
        list: &str,
        item: &str,
        by: &str,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        let key = owner.key();
        let (item, sealed) = self.seal("list", &format!("{key}\n{list}"), item.as_bytes());
        sqlx::query(
            "INSERT INTO list_items (owner, list, item, sealed, added_by, added_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&key)
        .bind(list)
        .bind(item)
        .bind(sealed)
        .bind(by)
        .bind(at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes the item with `id` from `owner`'s lists.
    pub async fn remove_item(&self, owner: &Owner, id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM list_items WHERE id = ? AND owner = ?")
            .bind(id)
            .bind(owner.key())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // Documents.

    /// Every document known, indexed or refused.
    pub async fn documents(&self) -> Result<Vec<KnownDocument>, StoreError> {
        let mut known: Vec<KnownDocument> = sqlx::query(
            "SELECT folder, path, size, modified, (SELECT COUNT(*) FROM passages WHERE document = documents.id) AS passages \
             FROM documents ORDER BY folder, path",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| KnownDocument {
            folder: row.get("folder"),
            path: row.get("path"),
            size: row.get("size"),
            modified: row.get("modified"),
            refused: None,
            passages: row.get("passages"),
        })
        .collect();
        let refused = sqlx::query(
            "SELECT folder, path, size, modified, reason FROM refused_documents ORDER BY folder, path",
        )
        .fetch_all(&self.pool)
        .await?;
        known.extend(refused.iter().map(|row| KnownDocument {
            folder: row.get("folder"),
            path: row.get("path"),
            size: row.get("size"),
            modified: row.get("modified"),
            refused: Some(row.get("reason")),
            passages: 0,
        }));
        Ok(known)
    }

    /// Indexes a document whole: its old passages go and the new ones come
    /// in one transaction. The new passages' ids.
    pub async fn index_document(
        &self,
        document: &KnownDocument,
        passages: &[NewPassage],
        at_ms: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let mut transaction = self.pool.begin().await?;
        sqlx::query("DELETE FROM refused_documents WHERE folder = ? AND path = ?")
            .bind(&document.folder)
            .bind(&document.path)
            .execute(&mut *transaction)
            .await?;
        sqlx::query("DELETE FROM documents WHERE folder = ? AND path = ?")
            .bind(&document.folder)
            .bind(&document.path)
            .execute(&mut *transaction)
            .await?;
        let id = sqlx::query(
            "INSERT INTO documents (folder, path, size, modified, indexed_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&document.folder)
        .bind(&document.path)
        .bind(document.size)
        .bind(document.modified)
        .bind(at_ms)
        .execute(&mut *transaction)
        .await?
        .last_insert_rowid();
        let mut ids = Vec::with_capacity(passages.len());
        for passage in passages {
            let passage_id = sqlx::query(
                "INSERT INTO passages (document, citation, text, vector) VALUES (?, ?, ?, ?)",
            )
            .bind(id)
            .bind(&passage.citation)
            .bind(&passage.text)
            .bind(passage.vector.as_deref().map(vector_bytes))
            .execute(&mut *transaction)
            .await?
            .last_insert_rowid();
            ids.push(passage_id);
        }
        transaction.commit().await?;
        Ok(ids)
    }

    /// Records why a document was not indexed (and drops what was indexed
    /// of an earlier version).
    pub async fn refuse_document(&self, document: &KnownDocument) -> Result<(), StoreError> {
        let mut transaction = self.pool.begin().await?;
        sqlx::query("DELETE FROM documents WHERE folder = ? AND path = ?")
            .bind(&document.folder)
            .bind(&document.path)
            .execute(&mut *transaction)
            .await?;
        sqlx::query(
            "INSERT INTO refused_documents (folder, path, size, modified, reason) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT(folder, path) DO UPDATE SET size = excluded.size, modified = excluded.modified, reason = excluded.reason",
        )
        .bind(&document.folder)
        .bind(&document.path)
        .bind(document.size)
        .bind(document.modified)
        .bind(document.refused.as_deref().unwrap_or(""))
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Forgets a document that is gone from its folder.
    pub async fn drop_document(&self, folder: &str, path: &str) -> Result<(), StoreError> {
        let mut transaction = self.pool.begin().await?;
        for table in ["documents", "refused_documents"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE folder = ? AND path = ?"
            ))
            .bind(folder)
            .bind(path)
            .execute(&mut *transaction)
            .await?;
        }
        transaction.commit().await?;
        Ok(())
    }

    /// The passage ids of a document (to take out of the search index).
    pub async fn passage_ids(&self, folder: &str, path: &str) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT passages.id FROM passages JOIN documents ON documents.id = passages.document \
             WHERE documents.folder = ? AND documents.path = ?",
        )
        .bind(folder)
        .bind(path)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Every passage, one at a time to `each` (the texts are not all held
    /// at once).
    pub async fn passages(&self, mut each: impl FnMut(StoredPassage)) -> Result<(), StoreError> {
        use futures_util::TryStreamExt as _;
        let mut rows = sqlx::query(
            "SELECT passages.id, documents.folder, documents.path, passages.citation, passages.text, passages.vector \
             FROM passages JOIN documents ON documents.id = passages.document ORDER BY passages.id",
        )
        .fetch(&self.pool);
        while let Some(row) = rows.try_next().await? {
            each(StoredPassage {
                id: row.get("id"),
                folder: row.get("folder"),
                path: row.get("path"),
                citation: row.get("citation"),
                text: row.get("text"),
                vector: row
                    .get::<Option<Vec<u8>>, _>("vector")
                    .and_then(|bytes| vector_of(&bytes)),
            });
        }
        Ok(())
    }

    /// The texts of the passages `ids` that are still stored, in one query.
    pub async fn passage_texts(&self, ids: &[i64]) -> Result<HashMap<i64, String>, StoreError> {
        let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
        let ids = format!("[{}]", ids.join(","));
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT id, text FROM passages WHERE id IN (SELECT value FROM json_each(?))",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().collect())
    }

    // Trimmed turns.

    /// How many messages of `session` are already in a daily note.
    pub async fn trimmed_through(&self, session: &str) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT through FROM trimmed WHERE session = ?")
                .bind(session)
                .fetch_optional(&self.pool)
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
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every memory entry, opened, with its embedding.
    async fn all_memory(store: &Store) -> Result<Vec<(Entry, Option<Vec<f32>>)>, StoreError> {
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
        let store = Store::open(dir.path(), key()).await.unwrap();
        let ada = Owner::Member("ada".into());
        let id = store
            .remember(
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
            .execute(&store.pool)
            .await
            .unwrap();
        assert!(matches!(all_memory(&store).await, Err(StoreError::Seal(_))));
        store.close().await;
        // Without the key, or with another, the store does not open.
        assert!(Store::open(dir.path(), None).await.is_err());
        assert!(
            Store::open(dir.path(), Some(AtRestKey::new(&[8; 32])))
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_fired_job_delivers_and_moves_on_together() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), None).await.unwrap();
        let job = Job {
            id: 0,
            member: "ada".into(),
            asker: "{}".into(),
            target: "member:ada".into(),
            schedule: "{}".into(),
            action: "remind".into(),
            text: "call Grandma".into(),
            next_at: 1_000,
        };
        let id = store.schedule(&job, 0).await.unwrap();
        assert_eq!(store.due_jobs(999).await.unwrap().len(), 0);
        assert_eq!(store.due_jobs(1_000).await.unwrap()[0].text, "call Grandma");
        assert!(!store.cancel("ben", id).await.unwrap(), "not ben's");
        store
            .fired(
                id,
                Some(("member:ada", "Reminder: call Grandma")),
                None,
                1_000,
            )
            .await
            .unwrap();
        assert_eq!(store.next_due_after(0).await.unwrap(), None);
        let delivered = store.deliveries(0).await.unwrap();
        assert_eq!(delivered.len(), 1);
        assert_eq!(delivered[0].2, "Reminder: call Grandma");
        assert!(store.deliveries(delivered[0].0).await.unwrap().is_empty());
    }

    #[test]
    fn vectors_round_trip_through_bytes() {
        let vector = [0.5_f32, -1.25, 3.0];
        assert_eq!(vector_of(&vector_bytes(&vector)).unwrap(), vector);
        assert_eq!(vector_of(&[1, 2, 3]), None);
    }
}
