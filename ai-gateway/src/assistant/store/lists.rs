//! The household's shared lists: the `list_items` table.

use hearth_assistant::scope::Owner;
use sqlx::Row;

use super::database::{Database, StoreError};

/// Where lists are kept.
#[derive(Clone)]
pub struct ListStore {
    db: Database,
}

impl ListStore {
    /// Lists in `db`.
    pub fn new(db: Database) -> ListStore {
        ListStore { db }
    }

    /// The items of `owner`'s `list`, oldest first, with their ids.
    pub async fn list(&self, owner: &Owner, list: &str) -> Result<Vec<(i64, String)>, StoreError> {
        let key = owner.key();
        let rows = sqlx::query(
            "SELECT id, item, sealed FROM list_items WHERE owner = ? AND list = ? ORDER BY id",
        )
        .bind(&key)
        .bind(list)
        .fetch_all(&self.db.pool)
        .await?;
        let place_owner = format!("{key}\n{list}");
        rows.iter()
            .map(|row| {
                Ok((
                    row.get("id"),
                    self.db
                        .open_text("list", &place_owner, row.get("item"), row.get("sealed"))?,
                ))
            })
            .collect()
    }

    /// How many lists `owner` has.
    pub async fn list_count(&self, owner: &Owner) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(DISTINCT list) FROM list_items WHERE owner = ?")
                .bind(owner.key())
                .fetch_one(&self.db.pool)
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
        let (item, sealed) = self
            .db
            .seal("list", &format!("{key}\n{list}"), item.as_bytes());
        sqlx::query(
            "INSERT INTO list_items (owner, list, item, sealed, added_by, added_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&key)
        .bind(list)
        .bind(item)
        .bind(sealed)
        .bind(by)
        .bind(at_ms)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    /// Removes the item with `id` from `owner`'s lists.
    pub async fn remove_item(&self, owner: &Owner, id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM list_items WHERE id = ? AND owner = ?")
            .bind(id)
            .bind(owner.key())
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }
}
