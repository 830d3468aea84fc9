//! Rooms, messages, read markers and delivery cursors in SQLite
//! (`DATA_DIR/messages.db`, 0600). Bodies are sealed with the at-rest key
//! when one is configured.

use std::path::Path;

use sqlx::{Row, SqlitePool};

use crate::atrest::{AtRestError, AtRestKey};
use crate::protocol::{Attachment, Message, MessageStatus, RoomId, matches_words, may_access};

/// What can go wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("the message store failed: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error("the message store could not be upgraded: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The at-rest key does not fit the stored messages.
    #[error(transparent)]
    AtRest(#[from] AtRestError),
    /// The store's file could not be created.
    #[error("cannot create {path}: {error}")]
    Create {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// A stored value could not be read back.
    #[error("the message store holds an unreadable value: {0}")]
    Corrupt(String),
}

/// What a room is: one with a name, or a direct conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RoomKind {
    /// A named room (`#kitchen`).
    Room,
    /// A direct conversation of two members.
    Dm,
}

/// A room as listed to one user: what it is, so that an app never reads
/// room ids itself.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RoomSummary {
    /// Its id.
    pub id: String,
    /// A named room or a DM.
    pub kind: RoomKind,
    /// In a DM, who the user talks to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub with: Option<String>,
    /// Messages from others after the user's read marker.
    pub unread: i64,
    /// The latest message id (0 when empty).
    pub last_id: i64,
}

impl RoomSummary {
    /// `room` as `user` sees it, with no message read.
    pub fn of(room: &RoomId, user: &str) -> RoomSummary {
        RoomSummary {
            id: room.to_string(),
            kind: if room.members().is_some() {
                RoomKind::Dm
            } else {
                RoomKind::Room
            },
            with: room.other_member(user).map(str::to_owned),
            unread: 0,
            last_id: 0,
        }
    }
}

/// The store.
#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
    key: Option<std::sync::Arc<AtRestKey>>,
}

const KEY_CHECK: &str = "key_check";
const KEY_CHECK_TEXT: &str = "hearth messaging at-rest key check";

impl Store {
    /// Opens (creating) the store in `data_dir`, with an optional at-rest
    /// key. Refuses a key that differs from the one the store was sealed
    /// with, and a missing key when messages are sealed.
    pub async fn open(data_dir: &Path, key: Option<AtRestKey>) -> Result<Store, StoreError> {
        let path = data_dir.join("messages.db");
        hearth_files::private::create_private(&path).map_err(|error| StoreError::Create {
            path: path.display().to_string(),
            error,
        })?;
        let pool = hearth_files::sqlite::connect(&path).await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        let store = Store {
            pool,
            key: key.map(std::sync::Arc::new),
        };
        store.check_key().await?;
        Ok(store)
    }

    async fn check_key(&self) -> Result<(), StoreError> {
        let check: Option<Vec<u8>> = sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(KEY_CHECK)
            .fetch_optional(&self.pool)
            .await?;
        let sealed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE sealed = 1")
            .fetch_one(&self.pool)
            .await?;
        match (&self.key, check) {
            (Some(key), Some(check)) => {
                crate::atrest::open(key, "meta", KEY_CHECK, &check).map_err(|_| {
                    AtRestError::BadKey(
                        "the at-rest key is not the one these messages were sealed with".into(),
                    )
                })?;
            }
            (Some(key), None) => {
                sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?)")
                    .bind(KEY_CHECK)
                    .bind(crate::atrest::seal(key, "meta", KEY_CHECK, KEY_CHECK_TEXT))
                    .execute(&self.pool)
                    .await?;
            }
            (None, _) if sealed > 0 => {
                return Err(AtRestError::BadKey(format!(
                    "{sealed} stored messages are sealed: configure `encryptionKeyFile` to read them"
                ))
                .into());
            }
            (None, _) => {}
        }
        Ok(())
    }

    fn seal(&self, room: &str, sender: &str, body: &str) -> (Vec<u8>, bool) {
        match &self.key {
            Some(key) => (crate::atrest::seal(key, room, sender, body), true),
            None => (body.as_bytes().to_vec(), false),
        }
    }

    fn open_body(
        &self,
        room: &str,
        sender: &str,
        body: &[u8],
        sealed: bool,
    ) -> Result<String, StoreError> {
        if sealed {
            let key = self
                .key
                .as_ref()
                .ok_or_else(|| AtRestError::BadKey("a sealed message and no key".into()))?;
            Ok(crate::atrest::open(key, room, sender, body)?)
        } else {
            Ok(String::from_utf8_lossy(body).into_owned())
        }
    }

    /// Makes sure `room` exists (a DM with its two members).
    pub async fn ensure_room(&self, room: &str, by: &str) -> Result<(), StoreError> {
        let members = RoomId::parse(room)
            .ok()
            .and_then(|id| id.members().map(|(a, b)| (a.to_owned(), b.to_owned())));
        let (first, second) = members.unzip();
        sqlx::query(
            "INSERT INTO rooms (id, created_by, created_at, dm_first, dm_second) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT(id) DO NOTHING",
        )
        .bind(room)
        .bind(by)
        .bind(hearth_runtime::clock::unix_millis())
        .bind(first)
        .bind(second)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Who created `room`, if it exists.
    pub async fn room_creator(&self, room: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT created_by FROM rooms WHERE id = ?")
                .bind(room)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// How many rooms (not direct conversations) `user` created.
    pub async fn rooms_created_by(&self, user: &str) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM rooms WHERE created_by = ? AND dm_first IS NULL",
        )
        .bind(user)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Deletes `room` with its messages and read markers; false when absent.
    pub async fn delete_room(&self, room: &str) -> Result<bool, StoreError> {
        let mut transaction = self.pool.begin().await?;
        for statement in [
            "DELETE FROM messages WHERE room = ?",
            "DELETE FROM read_markers WHERE room = ?",
        ] {
            sqlx::query(statement)
                .bind(room)
                .execute(&mut *transaction)
                .await?;
        }
        let deleted = sqlx::query("DELETE FROM rooms WHERE id = ?")
            .bind(room)
            .execute(&mut *transaction)
            .await?
            .rows_affected()
            == 1;
        transaction.commit().await?;
        Ok(deleted)
    }

    /// Stores a message; returns it with its id.
    pub async fn post(
        &self,
        room: &str,
        sender: &str,
        body: &str,
        status: MessageStatus,
        client_id: Option<&str>,
    ) -> Result<Message, StoreError> {
        self.ensure_room(room, sender).await?;
        let (stored, sealed) = self.seal(room, sender, body);
        let created_at = hearth_runtime::clock::unix_millis();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO messages (room, sender, body, sealed, status, client_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(room)
        .bind(sender)
        .bind(stored)
        .bind(sealed)
        .bind(status.as_str())
        .bind(client_id)
        .bind(created_at)
        .fetch_one(&self.pool)
        .await?;
        Ok(Message {
            id,
            room: room.to_owned(),
            sender: sender.to_owned(),
            body: body.to_owned(),
            created_at,
            status,
            client_id: client_id.map(str::to_owned),
            edited_at: None,
            attachment: None,
        })
    }

    /// Stores a message `sender` identifies by `client_id` once: when one
    /// with that id is already stored (a retry), that one, and `false`.
    pub async fn post_once(
        &self,
        room: &str,
        sender: &str,
        body: &str,
        client_id: &str,
    ) -> Result<(Message, bool), StoreError> {
        if let Some(stored) = self.by_client_id(sender, client_id).await? {
            return Ok((stored, false));
        }
        match self
            .post(room, sender, body, MessageStatus::Sent, Some(client_id))
            .await
        {
            Ok(message) => Ok((message, true)),
            // The same message arriving twice at once: the other is kept.
            Err(StoreError::Database(sqlx::Error::Database(error)))
                if error.is_unique_violation() =>
            {
                let stored = self.by_client_id(sender, client_id).await?;
                stored.map(|stored| (stored, false)).ok_or_else(|| {
                    StoreError::Corrupt("a message id clash without the message".into())
                })
            }
            Err(error) => Err(error),
        }
    }

    async fn by_client_id(
        &self,
        sender: &str,
        client_id: &str,
    ) -> Result<Option<Message>, StoreError> {
        let row = sqlx::query("SELECT * FROM messages WHERE sender = ? AND client_id = ?")
            .bind(sender)
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(|row| self.message_of(row)).transpose()
    }

    /// Stores a message of `sender` in `room` sharing the file
    /// `attachment` (its `content`): the message, the file's description
    /// and its bytes in one transaction, each sealed when bodies are.
    pub async fn post_file(
        &self,
        room: &str,
        sender: &str,
        attachment: &Attachment,
        content: &[u8],
    ) -> Result<Message, StoreError> {
        self.ensure_room(room, sender).await?;
        let body = &attachment.name;
        let (stored, sealed) = self.seal(room, sender, body);
        let created_at = hearth_runtime::clock::unix_millis();
        let mut transaction = self.pool.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO messages (room, sender, body, sealed, status, created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(room)
        .bind(sender)
        .bind(stored)
        .bind(sealed)
        .bind(MessageStatus::Sent.as_str())
        .bind(created_at)
        .fetch_one(&mut *transaction)
        .await?;
        let about = serde_json::to_vec(attachment)
            .map_err(|error| StoreError::Corrupt(error.to_string()))?;
        let seal = |part: &str, bytes: &[u8]| match &self.key {
            Some(key) => crate::atrest::seal_file(key, part, room, sender, id, bytes),
            None => bytes.to_vec(),
        };
        sqlx::query("UPDATE messages SET attachment = ? WHERE id = ?")
            .bind(seal("about", &about))
            .bind(id)
            .execute(&mut *transaction)
            .await?;
        sqlx::query("INSERT INTO attachment_contents (message, content) VALUES (?, ?)")
            .bind(id)
            .bind(seal("content", content))
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(Message {
            id,
            room: room.to_owned(),
            sender: sender.to_owned(),
            body: body.clone(),
            created_at,
            status: MessageStatus::Sent,
            client_id: None,
            edited_at: None,
            attachment: Some(attachment.clone()),
        })
    }

    /// The bytes of the file `message` shares, if it shares one.
    pub async fn file(
        &self,
        message: &Message,
    ) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, StoreError> {
        let content: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT content FROM attachment_contents WHERE message = ?")
                .bind(message.id)
                .fetch_optional(&self.pool)
                .await?;
        content
            .map(|content| {
                self.open_file(
                    "content",
                    &message.room,
                    &message.sender,
                    message.id,
                    content,
                )
            })
            .transpose()
    }

    fn open_file(
        &self,
        part: &str,
        room: &str,
        sender: &str,
        id: i64,
        stored: Vec<u8>,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, StoreError> {
        match &self.key {
            Some(key) => Ok(crate::atrest::open_file(
                key, part, room, sender, id, &stored,
            )?),
            None => Ok(zeroize::Zeroizing::new(stored)),
        }
    }

    /// The message `id`, if it exists.
    pub async fn message(&self, id: i64) -> Result<Option<Message>, StoreError> {
        let row = sqlx::query("SELECT * FROM messages WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(|row| self.message_of(row)).transpose()
    }

    /// The messages of `ids` that exist, in the order of `ids`.
    pub async fn messages(&self, ids: &[i64]) -> Result<Vec<Message>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let marks = vec!["?"; ids.len()].join(", ");
        let sql = format!("SELECT * FROM messages WHERE id IN ({marks})");
        let mut query = sqlx::query(&sql);
        for id in ids {
            query = query.bind(id);
        }
        let mut found: std::collections::HashMap<i64, Message> = std::collections::HashMap::new();
        for row in query.fetch_all(&self.pool).await? {
            let message = self.message_of(&row)?;
            found.insert(message.id, message);
        }
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    /// Its writer changed `message` (its body and status, as given) at
    /// `edited_at`.
    /// A deleted message's file goes with it.
    pub async fn edit(&self, message: &Message, edited_at: i64) -> Result<(), StoreError> {
        let (stored, sealed) = self.seal(&message.room, &message.sender, &message.body);
        let mut transaction = self.pool.begin().await?;
        sqlx::query(
            "UPDATE messages SET body = ?, sealed = ?, status = ?, edited_at = ? WHERE id = ?",
        )
        .bind(stored)
        .bind(sealed)
        .bind(message.status.as_str())
        .bind(edited_at)
        .bind(message.id)
        .execute(&mut *transaction)
        .await?;
        if message.status == MessageStatus::Deleted {
            sqlx::query("UPDATE messages SET attachment = NULL WHERE id = ?")
                .bind(message.id)
                .execute(&mut *transaction)
                .await?;
            sqlx::query("DELETE FROM attachment_contents WHERE message = ?")
                .bind(message.id)
                .execute(&mut *transaction)
                .await?;
        }
        transaction.commit().await?;
        Ok(())
    }

    /// The newest messages `user` may see whose text holds every one of
    /// `words`, newest first: at most `limit`, looking through at most
    /// `scan` messages (bodies may be sealed, so they are read here).
    pub async fn search(
        &self,
        user: &str,
        words: &[String],
        limit: usize,
        scan: usize,
    ) -> Result<Vec<Message>, StoreError> {
        const BATCH: i64 = 500;
        let mut found = Vec::new();
        let mut before = i64::MAX;
        let mut scanned = 0;
        while found.len() < limit && scanned < scan {
            let rows = sqlx::query(
                "SELECT m.* FROM messages m JOIN rooms r ON r.id = m.room \
                 WHERE m.id < ? AND m.status != 'deleted' \
                   AND (r.dm_first IS NULL OR r.dm_first = ? OR r.dm_second = ?) \
                 ORDER BY m.id DESC LIMIT ?",
            )
            .bind(before)
            .bind(user)
            .bind(user)
            .bind(BATCH)
            .fetch_all(&self.pool)
            .await?;
            let Some(last) = rows.last() else { break };
            before = last.try_get("id")?;
            scanned += rows.len();
            for row in &rows {
                let message = self.message_of(row)?;
                if may_access(user, &message.room) && matches_words(&message.body, words) {
                    found.push(message);
                    if found.len() == limit {
                        break;
                    }
                }
            }
        }
        Ok(found)
    }

    /// Ends the assistant's replies that were still being written when the
    /// service stopped (it writes them only while it runs, so at start any
    /// still `streaming` is cut off): they become `interrupted`, never stuck.
    /// Returns how many.
    pub async fn end_unfinished(&self) -> Result<u64, StoreError> {
        let ended = sqlx::query("UPDATE messages SET status = ? WHERE status = ?")
            .bind(MessageStatus::Interrupted.as_str())
            .bind(MessageStatus::Streaming.as_str())
            .execute(&self.pool)
            .await?;
        Ok(ended.rows_affected())
    }

    /// Replaces a message's body and status (the assistant's streaming reply).
    pub async fn update(&self, message: &Message) -> Result<(), StoreError> {
        let (stored, sealed) = self.seal(&message.room, &message.sender, &message.body);
        sqlx::query("UPDATE messages SET body = ?, sealed = ?, status = ? WHERE id = ?")
            .bind(stored)
            .bind(sealed)
            .bind(message.status.as_str())
            .bind(message.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    fn message_of(&self, row: &sqlx::sqlite::SqliteRow) -> Result<Message, StoreError> {
        let room: String = row.try_get("room")?;
        let sender: String = row.try_get("sender")?;
        let body: Vec<u8> = row.try_get("body")?;
        let sealed: bool = row.try_get("sealed")?;
        let id: i64 = row.try_get("id")?;
        let attachment = match row.try_get::<Option<Vec<u8>>, _>("attachment")? {
            Some(about) => {
                let about = self.open_file("about", &room, &sender, id, about)?;
                Some(
                    serde_json::from_slice::<Attachment>(&about).map_err(|error| {
                        StoreError::Corrupt(format!("messages.attachment: {error}"))
                    })?,
                )
            }
            None => None,
        };
        Ok(Message {
            id,
            attachment,
            body: self.open_body(&room, &sender, &body, sealed)?,
            room,
            sender,
            created_at: row.try_get("created_at")?,
            status: {
                let text: String = row.try_get("status")?;
                MessageStatus::parse(&text)
                    .ok_or_else(|| StoreError::Corrupt(format!("messages.status: `{text}`")))?
            },
            client_id: row.try_get("client_id")?,
            edited_at: row.try_get("edited_at")?,
        })
    }

    /// The newest `limit` messages of every room that are not deleted,
    /// oldest first (what a search by meaning holds: [`crate::recent`]).
    pub async fn newest(&self, limit: usize) -> Result<Vec<Message>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM messages WHERE status NOT IN ('deleted', 'streaming') \
             ORDER BY id DESC LIMIT ?",
        )
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        let mut messages = rows
            .iter()
            .map(|row| self.message_of(row))
            .collect::<Result<Vec<_>, _>>()?;
        messages.reverse();
        Ok(messages)
    }

    /// A page of `room`'s history: up to `limit` messages before `before`
    /// (the newest when `None`), oldest first; and whether older ones exist.
    pub async fn history(
        &self,
        room: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<(Vec<Message>, bool), StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM messages WHERE room = ? AND id < ? ORDER BY id DESC LIMIT ?",
        )
        .bind(room)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await?;
        let more = rows.len() as i64 > limit;
        let mut messages = rows
            .iter()
            .take(limit as usize)
            .map(|row| self.message_of(row))
            .collect::<Result<Vec<_>, _>>()?;
        messages.reverse();
        Ok((messages, more))
    }

    /// Every message `user` may see after `since`, oldest first (at most `limit`).
    pub async fn since(
        &self,
        user: &str,
        since: i64,
        limit: i64,
    ) -> Result<Vec<Message>, StoreError> {
        let rows = sqlx::query(
            // The rooms' columns narrow; may_access decides.
            "SELECT m.* FROM messages m JOIN rooms r ON r.id = m.room \
             WHERE m.id > ? AND (r.dm_first IS NULL OR r.dm_first = ? OR r.dm_second = ?) \
             ORDER BY m.id LIMIT ?",
        )
        .bind(since)
        .bind(user)
        .bind(user)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| self.message_of(row))
            .filter(|message| {
                message
                    .as_ref()
                    .map_or(true, |message| may_access(user, &message.room))
            })
            .collect()
    }

    /// The latest message id.
    pub async fn last_id(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM messages")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// The rooms `user` may see, with unread counts.
    pub async fn rooms(&self, user: &str) -> Result<Vec<RoomSummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.id AS id, \
                    COALESCE((SELECT MAX(id) FROM messages m WHERE m.room = r.id), 0) AS last_id, \
                    (SELECT COUNT(*) FROM messages m WHERE m.room = r.id AND m.sender != ? \
                       AND m.id > COALESCE((SELECT last_read FROM read_markers k WHERE k.room = r.id AND k.user = ?), 0)) AS unread \
             FROM rooms r WHERE r.dm_first IS NULL OR r.dm_first = ? OR r.dm_second = ? ORDER BY r.id",
        )
        .bind(user)
        .bind(user)
        .bind(user)
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        let mut rooms = Vec::new();
        for row in rows {
            let id: String = row.try_get("id")?;
            let Ok(room) = RoomId::parse(&id) else {
                continue;
            };
            if may_access(user, &id) {
                rooms.push(RoomSummary {
                    unread: row.try_get("unread")?,
                    last_id: row.try_get("last_id")?,
                    ..RoomSummary::of(&room, user)
                });
            }
        }
        Ok(rooms)
    }

    /// Moves `user`'s read marker in `room` forward to `id`.
    pub async fn mark_read(&self, room: &str, user: &str, id: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO read_markers (room, user, last_read) VALUES (?, ?, ?) \
             ON CONFLICT(room, user) DO UPDATE SET last_read = MAX(last_read, excluded.last_read)",
        )
        .bind(room)
        .bind(user)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The read markers of `room`: (user, last read).
    pub async fn read_markers(&self, room: &str) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT user, last_read FROM read_markers WHERE room = ? ORDER BY user")
                .bind(room)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// The last message delivered to `node`.
    pub async fn cursor(&self, node: &str) -> Result<Option<i64>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT delivered FROM cursors WHERE node = ?")
                .bind(node)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Records that `node` has everything up to `id`.
    pub async fn set_cursor(&self, node: &str, id: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO cursors (node, delivered) VALUES (?, ?) \
             ON CONFLICT(node) DO UPDATE SET delivered = MAX(delivered, excluded.delivered)",
        )
        .bind(node)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A number kept in the store's meta table (the last assistant
    /// delivery posted).
    pub async fn meta_number(&self, key: &str) -> Result<Option<i64>, StoreError> {
        let value: Option<Vec<u8>> = sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(value
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|text| text.parse().ok()))
    }

    /// Keeps a number in the store's meta table.
    pub async fn set_meta_number(&self, key: &str, value: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value.to_string().into_bytes())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records that `user` was seen now.
    pub async fn seen(&self, user: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO users (name, last_seen) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET last_seen = excluded.last_seen")
            .bind(user)
            .bind(hearth_runtime::clock::unix_millis())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Keeps the language `user` reads (their app's choice).
    pub async fn set_language(&self, user: &str, language: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (name, last_seen, language) VALUES (?, ?, ?) \
             ON CONFLICT(name) DO UPDATE SET language = excluded.language",
        )
        .bind(user)
        .bind(hearth_runtime::clock::unix_millis())
        .bind(language)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The language `user` reads, when their app said.
    pub async fn language(&self, user: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar::<_, Option<String>>("SELECT language FROM users WHERE name = ?")
                .bind(user)
                .fetch_optional(&self.pool)
                .await?
                .flatten(),
        )
    }

    /// Every user seen, by name.
    pub async fn users(&self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT name FROM users ORDER BY name")
            .fetch_all(&self.pool)
            .await?)
    }

    /// Closes the store.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ASSISTANT;

    async fn store(dir: &Path, key: Option<[u8; 32]>) -> Result<Store, StoreError> {
        Store::open(dir, key.map(|bytes| AtRestKey::new(&bytes))).await
    }

    #[tokio::test]
    async fn a_reply_cut_off_by_a_stop_is_interrupted_when_the_store_is_next_opened()
    -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(|error| StoreError::Create {
            path: "tmp".into(),
            error,
        })?;
        let first = store(dir.path(), None).await?;
        let question = first
            .post(
                "dm:ada,assistant",
                "ada",
                "what's for dinner?",
                MessageStatus::Sent,
                None,
            )
            .await?;
        let reply = first
            .post(
                "dm:ada,assistant",
                ASSISTANT,
                "",
                MessageStatus::Streaming,
                None,
            )
            .await?;
        let mut answered = first
            .post("household", ASSISTANT, "", MessageStatus::Streaming, None)
            .await?;
        answered.body = "Soup.".into();
        answered.status = MessageStatus::Done;
        first.update(&answered).await?;
        first.close().await;
        // The service stopped with `reply` still being written.
        let next = store(dir.path(), None).await?;
        assert_eq!(next.end_unfinished().await?, 1);
        let status = |id| {
            let next = &next;
            async move { Ok::<_, StoreError>(next.message(id).await?.unwrap().status) }
        };
        assert_eq!(status(reply.id).await?, MessageStatus::Interrupted);
        assert_eq!(status(answered.id).await?, MessageStatus::Done);
        assert_eq!(status(question.id).await?, MessageStatus::Sent);
        assert_eq!(next.end_unfinished().await?, 0, "once");
        Ok(())
    }

    #[tokio::test]
    async fn history_pages_and_dm_privacy() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(|error| StoreError::Create {
            path: "tmp".into(),
            error,
        })?;
        let store = store(dir.path(), None).await?;
        for index in 0..5 {
            store
                .post(
                    "household",
                    "ada",
                    &format!("m{index}"),
                    MessageStatus::Sent,
                    None,
                )
                .await?;
        }
        store
            .post("dm:ada,ben", "ada", "secret", MessageStatus::Sent, None)
            .await?;
        let (page, more) = store.history("household", None, 2).await?;
        assert_eq!(
            page.iter()
                .map(|message| message.body.as_str())
                .collect::<Vec<_>>(),
            ["m3", "m4"]
        );
        assert!(more);
        let (older, more) = store.history("household", Some(page[0].id), 10).await?;
        assert_eq!(older.len(), 3);
        assert!(!more);
        // Read together, in the order asked, an unknown id left out.
        let ids = [page[1].id, 9_999, older[0].id];
        let read = store.messages(&ids).await?;
        assert_eq!(
            read.iter()
                .map(|message| message.body.as_str())
                .collect::<Vec<_>>(),
            ["m4", "m0"]
        );
        assert!(store.messages(&[]).await?.is_empty());
        assert_eq!(
            store.since("cy", 0, 100).await?.len(),
            5,
            "cy does not see the DM"
        );
        assert_eq!(store.since("ben", 0, 100).await?.len(), 6);
        // The service says what a room is: ben's DM with ada, by its members.
        let bens = store.rooms("ben").await?;
        let dm = bens.iter().find(|room| room.id == "dm:ada,ben").unwrap();
        assert_eq!((dm.kind, dm.with.as_deref()), (RoomKind::Dm, Some("ada")));
        assert_eq!(bens[1].kind, RoomKind::Room);
        // A name with LIKE's wildcard in it matches nobody else's DMs.
        assert_eq!(store.since("a_a", 0, 100).await?.len(), 5);
        assert_eq!(
            store.rooms_created_by("ada").await?,
            1,
            "the DM is not a room"
        );
        let rooms = store.rooms("cy").await?;
        assert_eq!(
            rooms
                .iter()
                .map(|room| room.id.as_str())
                .collect::<Vec<_>>(),
            ["household"]
        );
        assert_eq!(rooms[0].unread, 5);
        store.mark_read("household", "cy", 4).await?;
        store.mark_read("household", "cy", 2).await?;
        assert_eq!(
            store.rooms("cy").await?[0].unread,
            1,
            "markers only move forward"
        );
        Ok(())
    }

    #[tokio::test]
    async fn sealed_bodies_need_their_key() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(|error| StoreError::Create {
            path: "tmp".into(),
            error,
        })?;
        let sealed = store(dir.path(), Some([1; 32])).await?;
        sealed
            .post(
                "household",
                "ada",
                "the spare key is under the pot",
                MessageStatus::Sent,
                None,
            )
            .await?;
        sealed.close().await;
        let file = std::fs::read(dir.path().join("messages.db")).unwrap_or_default();
        let wal = std::fs::read(dir.path().join("messages.db-wal")).unwrap_or_default();
        assert!(
            ![file, wal]
                .concat()
                .windows(9)
                .any(|window| window == b"spare key")
        );
        assert!(
            matches!(
                store(dir.path(), Some([2; 32])).await,
                Err(StoreError::AtRest(_))
            ),
            "wrong key"
        );
        assert!(
            matches!(store(dir.path(), None).await, Err(StoreError::AtRest(_))),
            "no key"
        );
        let again = store(dir.path(), Some([1; 32])).await?;
        assert_eq!(
            again.history("household", None, 10).await?.0[0].body,
            "the spare key is under the pot"
        );
        Ok(())
    }
}
