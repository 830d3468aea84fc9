//! The document index: the `documents` and `passages` tables.

use std::collections::HashMap;

use sqlx::Row;

use super::database::{Database, StoreError, vector_bytes, vector_of};

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

/// Where the document index is kept.
#[derive(Clone)]
pub struct DocumentStore {
    db: Database,
}

impl DocumentStore {
    /// The index in `db`.
    pub fn new(db: Database) -> DocumentStore {
        DocumentStore { db }
    }

    /// Every document known, indexed or refused.
    pub async fn documents(&self) -> Result<Vec<KnownDocument>, StoreError> {
        let mut known: Vec<KnownDocument> = sqlx::query(
            "SELECT folder, path, size, modified, (SELECT COUNT(*) FROM passages WHERE document = documents.id) AS passages \
             FROM documents ORDER BY folder, path",
        )
        .fetch_all(&self.db.pool)
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
        .fetch_all(&self.db.pool)
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

    /// Whether any document (indexed or refused) is in a folder whose name
    /// starts with `prefix`.
    pub async fn any_in_folders_starting(&self, prefix: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM documents WHERE substr(folder, 1, length(?1)) = ?1) \
                 OR EXISTS (SELECT 1 FROM refused_documents WHERE substr(folder, 1, length(?1)) = ?1)",
        )
        .bind(prefix)
        .fetch_one(&self.db.pool)
        .await?)
    }

    /// Indexes a document whole: its old passages go and the new ones come
    /// in one transaction, their texts and embeddings sealed when `private`
    /// (and the store has a key). The new passages' ids.
    pub async fn index_document(
        &self,
        document: &KnownDocument,
        passages: &[NewPassage],
        private: bool,
        at_ms: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let owner = owner(&document.folder, &document.path);
        let mut transaction = self.db.pool.begin().await?;
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
            let (text, vector, sealed) = if private {
                let (text, sealed) = self.db.seal(PASSAGE, &owner, passage.text.as_bytes());
                let vector = passage.vector.as_deref().map(|vector| {
                    self.db
                        .seal(PASSAGE_VECTOR, &owner, &vector_bytes(vector))
                        .0
                });
                (text, vector, sealed)
            } else {
                let vector = passage.vector.as_deref().map(vector_bytes);
                (passage.text.as_bytes().to_vec(), vector, false)
            };
            let passage_id = sqlx::query(
                "INSERT INTO passages (document, citation, text, vector, sealed) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(id)
            .bind(&passage.citation)
            .bind(text)
            .bind(vector)
            .bind(sealed)
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
        let mut transaction = self.db.pool.begin().await?;
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
        let mut transaction = self.db.pool.begin().await?;
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
        .fetch_all(&self.db.pool)
        .await?)
    }

    /// Every passage, one at a time to `each` (the texts are not all held
    /// at once).
    pub async fn passages(&self, mut each: impl FnMut(StoredPassage)) -> Result<(), StoreError> {
        use futures_util::TryStreamExt as _;
        let mut rows = sqlx::query(
            "SELECT passages.id, documents.folder, documents.path, passages.citation, passages.text, passages.vector, passages.sealed \
             FROM passages JOIN documents ON documents.id = passages.document ORDER BY passages.id",
        )
        .fetch(&self.db.pool);
        while let Some(row) = rows.try_next().await? {
            let (folder, path): (String, String) = (row.get("folder"), row.get("path"));
            let sealed: bool = row.get("sealed");
            let owner = owner(&folder, &path);
            let text = self
                .db
                .open_text(PASSAGE, &owner, &raw(&row, "text")?, sealed)?;
            let vector = match row.try_get_unchecked::<Option<Vec<u8>>, _>("vector")? {
                Some(bytes) => {
                    vector_of(&self.db.open_bytes(PASSAGE_VECTOR, &owner, &bytes, sealed)?)
                }
                None => None,
            };
            each(StoredPassage {
                id: row.get("id"),
                folder,
                path,
                citation: row.get("citation"),
                text,
                vector,
            });
        }
        Ok(())
    }

    /// The texts of the passages `ids` that are still stored, in one query.
    pub async fn passage_texts(&self, ids: &[i64]) -> Result<HashMap<i64, String>, StoreError> {
        let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
        let ids = format!("[{}]", ids.join(","));
        let rows = sqlx::query(
            "SELECT passages.id, passages.text, passages.sealed, documents.folder, documents.path \
             FROM passages JOIN documents ON documents.id = passages.document \
             WHERE passages.id IN (SELECT value FROM json_each(?))",
        )
        .bind(ids)
        .fetch_all(&self.db.pool)
        .await?;
        let mut texts = HashMap::with_capacity(rows.len());
        for row in rows {
            let owner = owner(
                &row.get::<String, _>("folder"),
                &row.get::<String, _>("path"),
            );
            let text =
                self.db
                    .open_text(PASSAGE, &owner, &raw(&row, "text")?, row.get("sealed"))?;
            texts.insert(row.get("id"), text);
        }
        Ok(texts)
    }
}

/// What a sealed passage's text is sealed as.
const PASSAGE: &str = "passage";
/// What a sealed passage's embedding is sealed as.
const PASSAGE_VECTOR: &str = "passage-vector";

/// Whom a passage is sealed for: its document.
fn owner(folder: &str, path: &str) -> String {
    format!("{folder}\n{path}")
}

/// A column's bytes, whether SQLite keeps them as text or as a blob.
fn raw(row: &sqlx::sqlite::SqliteRow, column: &str) -> Result<Vec<u8>, StoreError> {
    Ok(row.try_get_unchecked::<Vec<u8>, _>(column)?)
}
