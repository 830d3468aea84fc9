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
    connect_with_cache(path, None).await
}

/// [`connect`] with each connection's page cache capped at `cache_kib`
/// KiB (SQLite's default is about 2 MiB a connection): for a database read
/// whole once at start and then by key, where a large cache only holds on
/// to what the start read.
pub async fn connect_with_cache(
    path: &Path,
    cache_kib: Option<u32>,
) -> Result<SqlitePool, sqlx::Error> {
    let mut options = SqliteConnectOptions::from_str("sqlite://")?
        .filename(path)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10));
    if let Some(kib) = cache_kib {
        // A negative cache size is in KiB.
        options = options.pragma("cache_size", format!("-{kib}"));
    }
    SqlitePoolOptions::new()
        .max_connections(4)
        // A local file does not go stale between uses: skip the ping (a
        // round trip to the connection's thread) on every acquire.
        .test_before_acquire(false)
        .connect_with(options)
        .await
}
