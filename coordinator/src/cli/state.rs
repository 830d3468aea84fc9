//! `hearth-coordinator backup`, `restore` and `db`: the coordinator's
//! state carried whole, and moved into PostgreSQL.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use hearth_coordinator::state_dir::StateDir;

use super::serve::database_choice;

#[derive(Subcommand)]
pub enum DbCommand {
    /// Copy the SQLite state (the coordinator stopped) into an empty
    /// PostgreSQL database; then serve with `--database URL`.
    MigrateTo {
        /// postgres://user@host/database (password as for `serve --database`).
        url: String,
        /// File holding the PostgreSQL password.
        #[arg(long)]
        database_password_file: Option<PathBuf>,
    },
}

/// `backup FILE`: the whole state while the coordinator runs.
pub async fn backup(state_dir: &Path, file: PathBuf, database: String) -> anyhow::Result<()> {
    let state = StateDir::new(state_dir);
    let postgres = !matches!(
        database_choice(&database, None)?,
        hearth_coordinator::db::url::DatabaseChoice::Sqlite
    );
    let db = if postgres {
        None
    } else {
        let path = state.database();
        anyhow::ensure!(path.exists(), "{} holds no database", state_dir.display());
        Some(hearth_coordinator::db::Db::open_sqlite(&path).await?)
    };
    let archived = hearth_coordinator::backup::backup(&state, db.as_ref(), &file).await?;
    if let Some(db) = db {
        db.close().await;
    }
    eprintln!(
        "backed up {} to {}",
        archived.entries.join(", "),
        file.display()
    );
    if postgres {
        eprintln!(
            "the database is in PostgreSQL: back it up with pg_dump (docs/coordinator.md, Backups)"
        );
    }

    Ok(())
}

/// `restore FILE` into a new, empty state directory.
pub async fn restore(state_dir: &Path, file: PathBuf) -> anyhow::Result<()> {
    let state = StateDir::new(state_dir);
    let restored = hearth_coordinator::backup::restore(&state, &file).await?;
    eprintln!(
        "restored {} into {}; start it with `hearth-coordinator --state-dir {} serve`",
        restored.entries.join(", "),
        state_dir.display(),
        state_dir.display()
    );

    Ok(())
}

/// Carries out `db …`.
pub async fn db(state_dir: &Path, command: DbCommand) -> anyhow::Result<()> {
    let DbCommand::MigrateTo {
        url,
        database_password_file,
    } = command;

    use hearth_coordinator::db::url::DatabaseChoice;
    let DatabaseChoice::Postgres { url, password } =
        database_choice(&url, database_password_file.as_ref())?
    else {
        anyhow::bail!("migrate-to takes a postgres:// URL");
    };
    let state = StateDir::new(state_dir);
    if std::os::unix::net::UnixStream::connect(state.admin_socket()).is_ok() {
        anyhow::bail!(
            "the coordinator on {} is running; stop it first, so that nothing changes during the copy",
            state_dir.display()
        );
    }
    let path = state.database();
    anyhow::ensure!(path.exists(), "{} holds no database", state_dir.display());
    let from = hearth_coordinator::db::Db::open_sqlite(&path).await?;
    let to = hearth_coordinator::db::Db::open_postgres(
        &url,
        password.as_ref().map(|password| password.as_str()),
    )
    .await
    .with_context(|| format!("cannot open {url}"))?;
    let copied = hearth_coordinator::db::copy::copy_all(&from, &to).await?;
    from.close().await;
    to.close().await;
    for (table, rows) in copied {
        println!("{table}: {rows} rows");
    }
    eprintln!(
        "copied into {url}; now run `hearth-coordinator serve --database '{url}'` (the state dir keeps the certificates and keys)"
    );

    Ok(())
}
