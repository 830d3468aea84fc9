//! The coordinator's database: typed rows, the SQL for each table in its own
//! module, migrations run at start-up.
//!
//! Two backends behind the same methods: SQLite (the default, a file in the
//! state directory) and PostgreSQL (`serve --database postgres://...`), each
//! with its migrations (`migrations/sqlite/`, `migrations/postgres/`). The
//! SQL is written once, with `?` placeholders, in the subset both speak;
//! [`Dialect::sql`] numbers the placeholders for PostgreSQL. The rest of the
//! coordinator sees [`Db`] and the row types, never a connection.
//!
//! Several coordinators may share one PostgreSQL database: every write is
//! announced on the `hearth` channel ([`Db::announce`]) and each coordinator
//! follows the others' announcements (`crate::shared`).

use std::borrow::Cow;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Postgres, Sqlite, SqlitePool, Transaction};

pub mod certificates;
pub mod copy;
pub mod nodes;
pub mod policy;
pub mod preauth_keys;
pub mod relays;
pub mod services;
pub mod url;
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
    /// The database URL cannot be used.
    #[error("{0}")]
    Url(String),
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

/// Which database a [`Db`] talks to.
#[derive(Clone, Debug)]
pub enum Backend {
    /// A SQLite file.
    Sqlite(SqlitePool),
    /// A PostgreSQL database, possibly shared by several coordinators.
    Postgres(PgPool),
}

/// The SQL flavour of a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// `?` placeholders.
    Sqlite,
    /// `$1`, `$2`, ... placeholders.
    Postgres,
}

impl Dialect {
    /// `text` (written with `?` placeholders) in this dialect. Placeholders
    /// inside quoted strings are left alone.
    pub fn sql(self, text: &str) -> Cow<'_, str> {
        if self == Dialect::Sqlite {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len() + 16);
        let mut number = 0;
        let mut quoted = false;
        for character in text.chars() {
            match character {
                '\'' => {
                    quoted = !quoted;
                    out.push(character);
                }
                '?' if !quoted => {
                    number += 1;
                    out.push('$');
                    out.push_str(&number.to_string());
                }
                _ => out.push(character),
            }
        }
        Cow::Owned(out)
    }
}

/// Runs `$body` against the pool of `$db`, whichever backend it has:
/// `$pool` is the backend's pool and `$dialect` its [`Dialect`].
macro_rules! on_pool {
    ($db:expr, |$pool:ident, $dialect:ident| $body:expr) => {
        match $db.backend() {
            $crate::db::Backend::Sqlite($pool) => {
                let $dialect = $crate::db::Dialect::Sqlite;
                $body
            }
            $crate::db::Backend::Postgres($pool) => {
                let $dialect = $crate::db::Dialect::Postgres;
                $body
            }
        }
    };
}

/// Runs `$body` inside transaction `$tx`, whichever backend it has:
/// `$conn` is the connection to execute on and `$dialect` its [`Dialect`].
macro_rules! on_transaction {
    ($tx:expr, |$conn:ident, $dialect:ident| $body:expr) => {
        match $tx {
            $crate::db::Tx::Sqlite(transaction) => {
                let $conn = &mut **transaction;
                let $dialect = $crate::db::Dialect::Sqlite;
                $body
            }
            $crate::db::Tx::Postgres(transaction) => {
                let $conn = &mut **transaction;
                let $dialect = $crate::db::Dialect::Postgres;
                $body
            }
        }
    };
}

pub(crate) use {on_pool, on_transaction};

/// A write transaction on either backend.
pub enum Tx {
    /// SQLite's.
    Sqlite(Transaction<'static, Sqlite>),
    /// PostgreSQL's.
    Postgres(Transaction<'static, Postgres>),
}

impl Tx {
    /// Commits it.
    pub async fn commit(self) -> Result<(), DbError> {
        match self {
            Tx::Sqlite(transaction) => transaction.commit().await?,
            Tx::Postgres(transaction) => transaction.commit().await?,
        }
        Ok(())
    }
}

/// The channel coordinators sharing a PostgreSQL database announce their
/// writes on.
pub const CHANNEL: &str = "hearth";

/// What a coordinator wrote, as it announces it to the others.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Announcement {
    /// A node was added, changed or deleted.
    Node {
        /// Its id.
        id: u64,
    },
    /// The policy changed.
    Policy,
    /// The standalone relays changed.
    Relays,
    /// Users changed: renamed or deleted, or their identity provider's
    /// groups (a sign-in, a link), which the policy's groups follow.
    Users,
}

/// A connection pool to the coordinator's database.
#[derive(Clone, Debug)]
pub struct Db {
    backend: Backend,
    /// This process's id in announcements (its own are not followed).
    origin: u64,
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
        Ok(Db {
            backend: Backend::Sqlite(pool),
            origin: rand::random(),
        })
    }

    /// Connects to the PostgreSQL database at `url` (its password, if any,
    /// given separately: never in a URL that could reach `ps`) and migrates
    /// it. Migrations take an advisory lock, so coordinators starting
    /// together migrate once.
    pub async fn open_postgres(url: &str, password: Option<&str>) -> Result<Db, DbError> {
        let mut options = PgConnectOptions::from_str(url)
            .map_err(|error| DbError::Url(format!("the database URL: {error}")))?;
        if let Some(password) = password {
            options = options.password(password);
        }
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Db {
            backend: Backend::Postgres(pool),
            origin: rand::random(),
        })
    }

    /// The backend.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Whether other coordinators may write to this database too.
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// This process's id in announcements.
    pub fn origin(&self) -> u64 {
        self.origin
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<Tx, DbError> {
        Ok(match &self.backend {
            Backend::Sqlite(pool) => Tx::Sqlite(pool.begin().await?),
            Backend::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Commits `transaction` and announces `what` it wrote
    /// ([`Db::announce`]): every write the other coordinators must hear of
    /// is announced here, after its commit.
    pub async fn commit(&self, transaction: Tx, what: &Announcement) -> Result<(), DbError> {
        transaction.commit().await?;
        self.announce(what).await;
        Ok(())
    }

    /// Tells other coordinators on the same database what was written
    /// (nothing to do on SQLite, which one coordinator owns). A failure is
    /// logged, not returned: the write is committed, and the others read
    /// everything again when their listening connection comes back.
    pub async fn announce(&self, what: &Announcement) {
        let Backend::Postgres(pool) = &self.backend else {
            return;
        };
        let payload = serde_json::json!({"origin": self.origin.to_string(), "what": what});
        if let Err(error) = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(payload.to_string())
            .execute(pool)
            .await
        {
            tracing::warn!(%error, ?what, "could not announce a change to the other coordinators");
        }
    }

    /// The result of an integrity check (`"ok"` when healthy): SQLite's
    /// `PRAGMA integrity_check`; on PostgreSQL, that it answers.
    pub async fn integrity_check(&self) -> Result<String, DbError> {
        match &self.backend {
            Backend::Sqlite(pool) => {
                let (result,): (String,) = sqlx::query_as("PRAGMA integrity_check")
                    .fetch_one(pool)
                    .await?;
                Ok(result)
            }
            Backend::Postgres(pool) => {
                let (result,): (String,) = sqlx::query_as("SELECT 'ok'").fetch_one(pool).await?;
                Ok(result)
            }
        }
    }

    /// Whether the database answers a trivial query (`"ok"`), cheap enough
    /// for every metrics scrape.
    pub async fn ping(&self) -> Result<String, DbError> {
        let (result,): (String,) = on_pool!(self, |pool, _dialect| sqlx::query_as("SELECT 'ok'")
            .fetch_one(pool)
            .await?);
        Ok(result)
    }

    /// Writes a consistent copy of a SQLite database to `path` (an empty
    /// file) while it stays in use; PostgreSQL's are taken with `pg_dump`.
    pub async fn snapshot_into(&self, path: &Path) -> Result<(), DbError> {
        let Backend::Sqlite(pool) = &self.backend else {
            return Err(DbError::Url(
                "a PostgreSQL database is backed up with pg_dump".into(),
            ));
        };
        let path = path
            .to_str()
            .ok_or_else(|| DbError::Url(format!("{} is not UTF-8", path.display())))?;
        sqlx::query("VACUUM INTO ?")
            .bind(path)
            .execute(pool)
            .await?;
        Ok(())
    }

    /// Checkpoints SQLite's WAL and closes every connection.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(pool) => {
                let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(pool)
                    .await;
                pool.close().await;
            }
            Backend::Postgres(pool) => pool.close().await,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres_outside_quotes() {
        let sql = "SELECT a FROM t WHERE b = ? AND c = '?' AND d = ?";
        assert_eq!(Dialect::Sqlite.sql(sql), sql);
        assert_eq!(
            Dialect::Postgres.sql(sql),
            "SELECT a FROM t WHERE b = $1 AND c = '?' AND d = $2"
        );
    }
}
