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

    /// Indexes a document whole: its old passages go and the new ones come
    /// in one transaction. The new passages' ids.
    pub async fn index_document(
        &self,
        document: &KnownDocument,
        passages: &[NewPassage],
        at_ms: i64,
    ) -> Result<Vec<i64>, StoreError> {
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
            "SELECT passages.id, documents.folder, documents.path, passages.citation, passages.text, passages.vector \
             FROM passages JOIN documents ON documents.id = passages.document ORDER BY passages.id",
        )
        .fetch(&self.db.pool);
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
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows.into_iter().collect())
    }
}
