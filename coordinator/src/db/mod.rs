//! The coordinator's database: typed rows, the SQL for each table in its own
//! module, migrations run at start-up.
//!
//! Only SQLite is implemented. The rest of the coordinator sees [`Db`] and the
//! row types, never a connection, so a PostgreSQL backend is a second set of
//! these modules and migrations (`migrations/postgres/`) behind the same methods.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

pub mod nodes;
pub mod policy;
pub mod preauth_keys;
pub mod users;

/// A database failure.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A uniqueness constraint refused the write.
    #[error("already exists: {0}")]
    Conflict(String),
    /// Anything else from the database.
    #[error("database: {0}")]
    Sqlx(sqlx::Error),
    /// Migrations failed.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value could not be read back.
    #[error("database holds an unreadable value: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for DbError {
    fn from(error: sqlx::Error) -> DbError {
        if let sqlx::Error::Database(database) = &error
            && database.is_unique_violation()
        {
            return DbError::Conflict(database.message().to_owned());
        }
        DbError::Sqlx(error)
    }
}

/// A connection pool to the coordinator's database.
#[derive(Clone, Debug)]
pub struct Db {
    pool: SqlitePool,
}

impl Db {
    /// Opens (creating if needed) the SQLite database at `path` and migrates it.
    ///
    /// WAL with `synchronous=FULL`: a committed approval survives a crash or a
    /// power cut, and readers never block the writer.
    pub async fn open_sqlite(path: &Path) -> Result<Db, DbError> {
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(DbError::Sqlx)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Db { pool })
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<Transaction<'static, Sqlite>, DbError> {
        Ok(self.pool.begin().await?)
    }

    /// The result of `PRAGMA integrity_check` (`"ok"` when healthy).
    pub async fn integrity_check(&self) -> Result<String, DbError> {
        let (result,): (String,) = sqlx::query_as("PRAGMA integrity_check")
            .fetch_one(&self.pool)
            .await?;
        Ok(result)
    }

    /// Checkpoints the WAL and closes every connection.
    pub async fn close(&self) {
        let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await;
        self.pool.close().await;
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// Encodes a list for a JSON text column.
pub(crate) fn json_list<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    let items: Vec<String> = items.into_iter().map(|item| item.to_string()).collect();
    serde_json::to_string(&items).expect("a list of strings serializes")
}

/// Decodes a JSON text column holding a list of `T`.
pub(crate) fn parse_list<T: FromStr>(column: &str, text: &str) -> Result<Vec<T>, DbError> {
    let items: Vec<String> = serde_json::from_str(text)
        .map_err(|error| DbError::Corrupt(format!("{column}: {error}")))?;
    items
        .iter()
        .map(|item| {
            item.parse()
                .map_err(|_| DbError::Corrupt(format!("{column}: `{item}`")))
        })
        .collect()
}
