//! Chat sessions and their history, in SQLite (`DATA_DIR/sessions.db`, 0600):
//! one current session per (channel, peer), `/new` starts another.
//!
//! Nothing here stands between a request and its model: which session is
//! current is kept in memory (loaded at start; a household has few), recent
//! histories are cached, and writes go to one writer task that commits
//! whatever was queued within 200 ms in a single transaction. A reply
//! therefore never waits for the disk, and a thousand replies ending
//! together cost a handful of commits, not a thousand. The price: an
//! exchange acknowledged in the last 200 ms before a crash (not a clean
//! stop, which writes everything) may be missing from the history.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use hearth_llm::Message;
use sqlx::SqlitePool;
use tokio::sync::mpsc;

/// Histories kept in memory.
const CACHED_SESSIONS: usize = 4096;
/// Writes committed together at most.
const BATCH: usize = 512;
/// How long the writer gathers writes before it commits them.
const LINGER: std::time::Duration = std::time::Duration::from_millis(200);

fn new_id() -> String {
    hearth_e2ee::envelope::b64(&rand::random::<[u8; 12]>())
}

enum Write {
    Start {
        channel: String,
        peer: String,
        session: String,
        at: i64,
    },
    Append {
        session: String,
        messages: Vec<Message>,
        at: i64,
    },
}

#[derive(Default)]
struct Memory {
    current: HashMap<(String, String), String>,
    histories: HashMap<String, Arc<Vec<Message>>>,
}

impl Memory {
    fn cache(&mut self, session: &str, history: Arc<Vec<Message>>) {
        if self.histories.len() >= CACHED_SESSIONS && !self.histories.contains_key(session) {
            // Any victim will do: it is read back from the database on demand.
            if let Some(victim) = self.histories.keys().next().cloned() {
                self.histories.remove(&victim);
            }
        }
        self.histories.insert(session.to_owned(), history);
    }
}

/// The session store.
pub struct Sessions {
    pool: SqlitePool,
    memory: Mutex<Memory>,
    writes: Mutex<Option<mpsc::UnboundedSender<Write>>>,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Sessions {
    /// Opens (creating) the store in `data_dir`.
    pub async fn open(data_dir: &Path) -> Result<Sessions, sqlx::Error> {
        let path = data_dir.join("sessions.db");
        hearth_files::private::create_private(&path).map_err(sqlx::Error::Io)?;
        let pool = hearth_files::sqlite::connect(&path).await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        let rows: Vec<(String, String, String)> =
            sqlx::query_as("SELECT channel, peer, session_id FROM sessions")
                .fetch_all(&pool)
                .await?;
        let memory = Memory {
            current: rows
                .into_iter()
                .map(|(channel, peer, session)| ((channel, peer), session))
                .collect(),
            histories: HashMap::new(),
        };
        let (sender, receiver) = mpsc::unbounded_channel();
        let writer = tokio::spawn(write_loop(pool.clone(), receiver));
        Ok(Sessions {
            pool,
            memory: Mutex::new(memory),
            writes: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(writer)),
        })
    }

    /// The store's database (which keeps the usage table too).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        hearth_runtime::lock(&self.memory)
    }

    fn queue(&self, write: Write) {
        if let Some(sender) = hearth_runtime::lock(&self.writes).as_ref()
            && sender.send(write).is_err()
        {
            tracing::error!("the session writer stopped; an exchange was not saved");
        }
    }

    /// The current session of (channel, peer) and its history, oldest first.
    pub async fn current(
        &self,
        channel: &str,
        peer: &str,
    ) -> Result<(String, Arc<Vec<Message>>), sqlx::Error> {
        let session = {
            let memory = self.memory();
            match memory.current.get(&(channel.to_owned(), peer.to_owned())) {
                Some(session) => {
                    if let Some(history) = memory.histories.get(session) {
                        return Ok((session.clone(), Arc::clone(history)));
                    }
                    session.clone()
                }
                None => {
                    drop(memory);
                    return Ok((self.start(channel, peer), Arc::new(Vec::new())));
                }
            }
        };
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT role, content FROM messages WHERE session_id = ? ORDER BY id")
                .bind(&session)
                .fetch_all(&self.pool)
                .await?;
        let history = Arc::new(
            rows.into_iter()
                .map(|(role, content)| Message::new(&role, content))
                .collect::<Vec<_>>(),
        );
        self.memory().cache(&session, Arc::clone(&history));
        Ok((session, history))
    }

    /// `peer`'s channels starting with `prefix` and their current session
    /// ids, by channel.
    pub fn channels_of(&self, peer: &str, prefix: &str) -> Vec<(String, String)> {
        let memory = self.memory();
        let mut channels: Vec<(String, String)> = memory
            .current
            .iter()
            .filter(|((channel, owner), _)| owner == peer && channel.starts_with(prefix))
            .map(|((channel, _), session)| (channel.clone(), session.clone()))
            .collect();
        channels.sort();
        channels
    }

    /// Starts a fresh session for (channel, peer); returns its id.
    pub fn start(&self, channel: &str, peer: &str) -> String {
        let session = new_id();
        {
            let mut memory = self.memory();
            memory
                .current
                .insert((channel.to_owned(), peer.to_owned()), session.clone());
            memory.cache(&session, Arc::new(Vec::new()));
        }
        self.queue(Write::Start {
            channel: channel.to_owned(),
            peer: peer.to_owned(),
            session: session.clone(),
            at: hearth_runtime::clock::unix_seconds(),
        });
        session
    }

    /// Appends an exchange to a session.
    pub fn append(&self, session: &str, messages: Vec<Message>) {
        {
            let mut memory = self.memory();
            // Copied only while a reply still reads the history as it was.
            if let Some(history) = memory.histories.get_mut(session) {
                Arc::make_mut(history).extend(messages.iter().cloned());
            }
        }
        self.queue(Write::Append {
            session: session.to_owned(),
            messages,
            at: hearth_runtime::clock::unix_seconds(),
        });
    }

    /// Writes everything queued and closes the store.
    pub async fn close(&self) {
        drop(hearth_runtime::lock(&self.writes).take());
        let writer = hearth_runtime::lock(&self.writer).take();
        if let Some(writer) = writer {
            let _ = writer.await;
        }
        self.pool.close().await;
    }
}

/// Commits queued writes. After the first write of a round arrives, the
/// writer lingers for [`LINGER`] (or until [`BATCH`] writes wait) and then
/// commits them all in one transaction. One commit per round instead of one
/// per reply keeps the database's round trips and wake-ups out of the way of
/// replies that are starting.
async fn write_loop(pool: SqlitePool, mut receiver: mpsc::UnboundedReceiver<Write>) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let mut open = receiver.recv_many(&mut batch, BATCH).await > 0;
        let deadline = tokio::time::Instant::now() + LINGER;
        while open && batch.len() < BATCH {
            let room = BATCH - batch.len();
            match tokio::time::timeout_at(deadline, receiver.recv_many(&mut batch, room)).await {
                Ok(0) => open = false,
                Ok(_) => {}
                Err(_elapsed) => break,
            }
        }
        if !batch.is_empty() {
            if let Err(error) = commit(&pool, &batch).await {
                tracing::error!(%error, writes = batch.len(), "could not save sessions");
            }
            batch.clear();
        }
        if !open {
            return;
        }
    }
}

/// Rows per multi-row `INSERT` (4 parameters each, far below SQLite's limit).
const ROWS_PER_INSERT: usize = 1000;

async fn commit(pool: &SqlitePool, batch: &[Write]) -> Result<(), sqlx::Error> {
    // A session started twice in one batch keeps the later start.
    let mut starts: Vec<(&str, &str, &str, i64)> = Vec::new();
    let mut messages: Vec<(&str, &Message, i64)> = Vec::new();
    for write in batch {
        match write {
            Write::Start {
                channel,
                peer,
                session,
                at,
            } => {
                starts.retain(|(c, p, _, _)| (*c, *p) != (channel.as_str(), peer.as_str()));
                starts.push((channel, peer, session, *at));
            }
            Write::Append {
                session,
                messages: appended,
                at,
            } => messages.extend(
                appended
                    .iter()
                    .map(|message| (session.as_str(), message, *at)),
            ),
        }
    }
    let mut transaction = pool.begin().await?;
    for rows in starts.chunks(ROWS_PER_INSERT) {
        let mut insert = sqlx::QueryBuilder::new(
            "INSERT INTO sessions (channel, peer, session_id, started_at) ",
        );
        insert.push_values(rows, |mut row, (channel, peer, session, at)| {
            row.push_bind(*channel)
                .push_bind(*peer)
                .push_bind(*session)
                .push_bind(*at);
        });
        insert.push(
            " ON CONFLICT(channel, peer) DO UPDATE SET session_id = excluded.session_id, \
             started_at = excluded.started_at",
        );
        insert.build().execute(&mut *transaction).await?;
    }
    for rows in messages.chunks(ROWS_PER_INSERT) {
        let mut insert = sqlx::QueryBuilder::new(
            "INSERT INTO messages (session_id, role, content, created_at) ",
        );
        insert.push_values(rows, |mut row, (session, message, at)| {
            row.push_bind(*session)
                .push_bind(message.role.as_str())
                .push_bind(message.content.as_str())
                .push_bind(*at);
        });
        insert.build().execute(&mut *transaction).await?;
    }
    transaction.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sessions_survive_a_reopen_and_new_starts_afresh() {
        let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
        let store = Sessions::open(dir.path())
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        let (first, history) = store
            .current("kitchen", "ada")
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        assert!(history.is_empty());
        store.append(
            &first,
            vec![
                Message::new("user", "hi"),
                Message::new("assistant", "hello"),
            ],
        );
        let (again, history) = store
            .current("kitchen", "ada")
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!((again.as_str(), history.len()), (first.as_str(), 2));
        let fresh = store.start("kitchen", "ada");
        assert_ne!(fresh, first);
        store.append(&fresh, vec![Message::new("user", "again")]);
        store.close().await;

        let store = Sessions::open(dir.path())
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        let (current, history) = store
            .current("kitchen", "ada")
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(current, fresh);
        assert_eq!(history.as_slice(), [Message::new("user", "again")]);
        let (other, history) = store
            .current("garden", "ada")
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        assert!(history.is_empty() && other != fresh);
        store.close().await;
    }

    #[tokio::test]
    async fn exchanges_reach_the_disk_soon_without_a_stop() {
        let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
        let store = Sessions::open(dir.path())
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        for channel in ["a", "b", "c"] {
            let (session, _) = store
                .current(channel, "ada")
                .await
                .unwrap_or_else(|error| panic!("{error}"));
            store.append(
                &session,
                vec![Message::new("user", "q"), Message::new("assistant", "a")],
            );
        }
        // Another connection, as after a crash: the rows are committed
        // within the writer's linger, without any stop.
        let reader = hearth_files::sqlite::connect(&dir.path().join("sessions.db"))
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let counts = loop {
            let counts: (i64, i64) = sqlx::query_as(
                "SELECT (SELECT COUNT(*) FROM sessions), (SELECT COUNT(*) FROM messages)",
            )
            .fetch_one(&reader)
            .await
            .unwrap_or_else(|error| panic!("{error}"));
            if counts == (3, 6) || std::time::Instant::now() > deadline {
                break counts;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        assert_eq!(counts, (3, 6));
        store.close().await;
    }
}
