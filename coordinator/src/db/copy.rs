//! `hearth-coordinator db migrate-to`: copies every row of a coordinator's
//! state from one database to another (SQLite to PostgreSQL, typically),
//! keeping ids, so that node certificates (named by node id), keys and
//! addresses mean the same afterwards. The target must be empty; the copy
//! is one transaction there, so a failure leaves it empty.

use sqlx::Row;

use super::{Db, DbError, Tx, on_pool, on_transaction};

/// What a column holds, to read it from one backend and write it to the
/// other (SQLite stores booleans as integers, PostgreSQL as booleans).
#[derive(Clone, Copy)]
enum Kind {
    Int,
    OptionalInt,
    Text,
    OptionalText,
    Bool,
    Bytes,
}

/// A value in flight.
enum Value {
    Int(Option<i64>),
    Text(Option<String>),
    Bool(bool),
    Bytes(Vec<u8>),
}

/// Every table, parents first, with its columns.
const TABLES: &[(&str, &[(&str, Kind)])] = {
    use Kind::*;
    &[
        (
            "users",
            &[
                ("id", Int),
                ("name", Text),
                ("created_at", Int),
                ("email", OptionalText),
            ],
        ),
        (
            "provider_identities",
            &[
                ("user_id", Int),
                ("subject", Text),
                ("groups", Text),
                ("signed_in_at", Int),
            ],
        ),
        (
            "preauth_keys",
            &[
                ("id", Int),
                ("user_id", Int),
                ("prefix", Text),
                ("secret_hash", Bytes),
                ("reusable", Bool),
                ("ephemeral", Bool),
                ("pre_approved", Bool),
                ("tags", Text),
                ("expires_at", OptionalInt),
                ("use_count", Int),
                ("created_at", Int),
                ("node_key_lifetime", OptionalInt),
            ],
        ),
        (
            "nodes",
            &[
                ("id", Int),
                ("user_id", Int),
                ("name", Text),
                ("hostname", Text),
                ("os", Text),
                ("wireguard_key", Text),
                ("state", Text),
                ("ipv4", Text),
                ("ipv6", Text),
                ("tags", Text),
                ("ephemeral", Bool),
                ("preauth_key_id", OptionalInt),
                ("cert_fingerprint", OptionalText),
                ("static_device", Bool),
                ("endpoints", Text),
                ("advertised_routes", Text),
                ("approved_routes", Text),
                ("created_at", Int),
                ("last_seen", OptionalInt),
                ("machine_key", OptionalText),
                ("disco_key", OptionalText),
                ("client", Text),
                ("capability_version", Int),
                ("home_relay", OptionalInt),
                ("key_expiry", OptionalInt),
                ("key_lifetime", OptionalInt),
                ("services", Text),
                ("ssh_host_keys", Text),
                ("service_ads", Text),
            ],
        ),
        (
            "device_certificates",
            &[("node_id", Int), ("ordered_at", Int)],
        ),
        (
            "policy",
            &[("id", Int), ("body", Text), ("updated_at", Int)],
        ),
        (
            "released_addresses",
            &[("ipv4", Text), ("released_at", Int)],
        ),
        (
            "relays",
            &[
                ("id", Int),
                ("code", Text),
                ("url", Text),
                ("secret_hash", Text),
                ("fingerprint", OptionalText),
                ("stun_port", OptionalInt),
                ("created_at", Int),
            ],
        ),
        (
            "services",
            &[
                ("name", Text),
                ("ipv4", Text),
                ("ipv6", Text),
                ("host", OptionalInt),
                ("created_at", Int),
            ],
        ),
    ]
};

/// Rows copied, per table.
pub type Copied = Vec<(&'static str, usize)>;

/// Copies everything in `from` into `to`, which must hold no users, keys,
/// nodes, policy or relays yet.
pub async fn copy_all(from: &Db, to: &Db) -> Result<Copied, DbError> {
    for (table, _) in TABLES {
        let count = count_rows(to, table).await?;
        if count > 0 {
            return Err(DbError::Url(format!(
                "the target database is not empty: {table} has {count} rows; \
                 migrate into a new, empty database"
            )));
        }
    }
    let mut transaction = to.begin().await?;
    let mut copied = Vec::new();
    for (table, columns) in TABLES {
        let rows = read_rows(from, table, columns).await?;
        for row in &rows {
            insert_row(&mut transaction, table, columns, row).await?;
        }
        copied.push((*table, rows.len()));
    }
    // PostgreSQL's id sequences continue after the copied ids.
    if let Tx::Postgres(transaction) = &mut transaction {
        for table in ["users", "preauth_keys"] {
            sqlx::query(&format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                 COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
            ))
            .execute(&mut **transaction)
            .await?;
        }
    }
    transaction.commit().await?;
    Ok(copied)
}

async fn count_rows(db: &Db, table: &str) -> Result<i64, DbError> {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    let (count,): (i64,) = on_pool!(db, |pool, _dialect| sqlx::query_as(&sql)
        .fetch_one(pool)
        .await?);
    Ok(count)
}

async fn read_rows(
    db: &Db,
    table: &str,
    columns: &[(&'static str, Kind)],
) -> Result<Vec<Vec<Value>>, DbError> {
    let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    let sql = format!(
        "SELECT {} FROM {table} ORDER BY {}",
        names.join(", "),
        names[0]
    );
    let rows = on_pool!(db, |pool, _dialect| {
        let rows = sqlx::query(&sql).fetch_all(pool).await?;
        rows.iter()
            .map(|row| decode_row(row, table, columns))
            .collect::<Result<Vec<_>, DbError>>()?
    });
    Ok(rows)
}

/// One row's values, read as `columns` says, from either backend.
fn decode_row<'r, R>(
    row: &'r R,
    table: &str,
    columns: &[(&'static str, Kind)],
) -> Result<Vec<Value>, DbError>
where
    R: Row,
    &'static str: sqlx::ColumnIndex<R>,
    Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    columns
        .iter()
        .map(|&(name, kind)| {
            let value = match kind {
                Kind::Int | Kind::OptionalInt => row.try_get(name).map(Value::Int),
                Kind::Text | Kind::OptionalText => row.try_get(name).map(Value::Text),
                Kind::Bool => row.try_get(name).map(Value::Bool),
                Kind::Bytes => row.try_get(name).map(Value::Bytes),
            };
            value.map_err(|error| DbError::Corrupt(format!("{table}.{name}: {error}")))
        })
        .collect()
}

async fn insert_row(
    transaction: &mut Tx,
    table: &str,
    columns: &[(&str, Kind)],
    row: &[Value],
) -> Result<(), DbError> {
    let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    let marks = vec!["?"; names.len()].join(", ");
    let sql = format!(
        "INSERT INTO {table} ({}) VALUES ({marks})",
        names.join(", ")
    );
    on_transaction!(transaction, |conn, dialect| {
        let sql = dialect.sql(&sql);
        let mut query = sqlx::query(&sql);
        for value in row {
            query = match value {
                Value::Int(value) => query.bind(*value),
                Value::Text(value) => query.bind(value.clone()),
                Value::Bool(value) => query.bind(*value),
                Value::Bytes(value) => query.bind(value.clone()),
            };
        }
        query.execute(conn).await?;
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_copy_keeps_every_row_and_refuses_a_full_target() {
        let dir = tempfile::tempdir().unwrap();
        let from = Db::open_sqlite(&dir.path().join("from.db")).await.unwrap();
        let user = from
            .insert_user("alice", Some("alice@home.example"), 1)
            .await
            .unwrap();
        from.store_policy(r#"{"acls": []}"#, 2).await.unwrap();
        let to = Db::open_sqlite(&dir.path().join("to.db")).await.unwrap();
        let copied = copy_all(&from, &to).await.unwrap();
        assert!(copied.contains(&("users", 1)));
        assert!(copied.contains(&("policy", 1)));
        assert_eq!(to.find_user("alice").await.unwrap().unwrap().id, user.id);
        assert_eq!(
            to.load_policy().await.unwrap().as_deref(),
            Some(r#"{"acls": []}"#)
        );
        let error = copy_all(&from, &to).await.unwrap_err();
        assert!(error.to_string().contains("not empty"), "{error}");
    }

    #[test]
    fn every_column_of_the_schema_is_copied() {
        // The PostgreSQL migrations name every column: each must be in
        // `TABLES`, and each of `TABLES` in them.
        // Read from the folder, so a new migration cannot be left out.
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
        let mut files: Vec<_> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
            .collect();
        files.sort();
        assert!(files.len() >= 6, "{files:?}");
        let schema: String = files
            .iter()
            .map(|path| std::fs::read_to_string(path).unwrap())
            .collect();
        let mut in_schema = Vec::new();
        let mut table = None;
        for line in schema.lines() {
            if let Some(rest) = line.strip_prefix("CREATE TABLE ") {
                table = rest.split_whitespace().next().map(str::to_owned);
            } else if line.starts_with(')') {
                table = None;
            } else if let Some(rest) = line.strip_prefix("ALTER TABLE ") {
                let words: Vec<&str> = rest.split_whitespace().collect();
                in_schema.push((words[0].to_owned(), words[3].to_owned()));
            } else if let (Some(table), Some(column)) = (&table, line.strip_prefix("    ")) {
                let column = column.split_whitespace().next().unwrap_or_default();
                if !column.is_empty() && !column.starts_with("--") {
                    in_schema.push((table.clone(), column.to_owned()));
                }
            }
        }
        let copied: Vec<(String, String)> = TABLES
            .iter()
            .flat_map(|(table, columns)| {
                columns
                    .iter()
                    .map(|(column, _)| ((*table).to_owned(), (*column).to_owned()))
            })
            .collect();
        for column in &in_schema {
            assert!(copied.contains(column), "{column:?} is not copied");
        }
        for column in &copied {
            assert!(
                in_schema.contains(column),
                "{column:?} is not in the schema"
            );
        }
    }
}
