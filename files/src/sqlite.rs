//! The SQLite files of the hub's services (the gateway's sessions, the
//! messaging store): private to the service, WAL, a small pool. Migrations
//! stay with each crate (`sqlx::migrate!` is per crate).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

/// A pool on the database at `path`: WAL, `synchronous=NORMAL`, 10 s busy
/// timeout, no liveness ping before each use.
pub async fn connect(path: &Path) -> Result<SqlitePool, sqlx::Error> {
    let options = SqliteConnectOptions::from_str("sqlite://")?
        .filename(path)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10));
    SqlitePoolOptions::new()
        .max_connections(4)
        // A local file does not go stale between uses: skip the ping (a
        // round trip to the connection's thread) on every acquire.
        .test_before_acquire(false)
        .connect_with(options)
        .await
}
