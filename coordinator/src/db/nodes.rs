//! SQL for the `nodes` table; rows come back as [`NodeRecord`]s.

use std::collections::BTreeSet;

use hearth_control::Fingerprint;
use sqlx::{Sqlite, Transaction};

use super::{Db, DbError, json_list, parse_list};
use crate::netmap::NodeRecord;

#[derive(sqlx::FromRow)]
struct RawNode {
    id: i64,
    user_id: i64,
    user: String,
    name: String,
    hostname: String,
    os: String,
    wireguard_key: String,
    state: String,
    ipv4: String,
    ipv6: String,
    tags: String,
    ephemeral: bool,
    static_device: bool,
    cert_fingerprint: Option<String>,
    machine_key: Option<String>,
    disco_key: Option<String>,
    client: String,
    endpoints: String,
    advertised_routes: String,
    approved_routes: String,
    created_at: i64,
    last_seen: Option<i64>,
}

fn corrupt(column: &str, value: &str) -> DbError {
    DbError::Corrupt(format!("nodes.{column}: `{value}`"))
}

impl TryFrom<RawNode> for NodeRecord {
    type Error = DbError;
    fn try_from(raw: RawNode) -> Result<Self, DbError> {
        let cert_fingerprint = match &raw.cert_fingerprint {
            Some(text) => {
                Some(Fingerprint::from_hex(text).ok_or_else(|| corrupt("cert_fingerprint", text))?)
            }
            None => None,
        };
        let machine_key = match &raw.machine_key {
            Some(text) => Some(text.parse().map_err(|_| corrupt("machine_key", text))?),
            None => None,
        };
        let disco_key = match &raw.disco_key {
            Some(text) => Some(text.parse().map_err(|_| corrupt("disco_key", text))?),
            None => None,
        };
        Ok(NodeRecord {
            machine_key,
            disco_key,
            client: raw.client,
            id: u64::try_from(raw.id).map_err(|_| corrupt("id", &raw.id.to_string()))?,
            user_id: raw.user_id,
            wireguard_key: raw
                .wireguard_key
                .parse()
                .map_err(|_| corrupt("wireguard_key", &raw.wireguard_key))?,
            state: raw
                .state
                .parse()
                .map_err(|_| corrupt("state", &raw.state))?,
            ipv4: raw.ipv4.parse().map_err(|_| corrupt("ipv4", &raw.ipv4))?,
            ipv6: raw.ipv6.parse().map_err(|_| corrupt("ipv6", &raw.ipv6))?,
            tags: parse_list::<String>("nodes.tags", &raw.tags)?
                .into_iter()
                .collect::<BTreeSet<_>>(),
            endpoints: parse_list("nodes.endpoints", &raw.endpoints)?,
            advertised_routes: parse_list("nodes.advertised_routes", &raw.advertised_routes)?,
            approved_routes: parse_list("nodes.approved_routes", &raw.approved_routes)?,
            cert_fingerprint,
            user: raw.user,
            name: raw.name,
            hostname: raw.hostname,
            os: raw.os,
            ephemeral: raw.ephemeral,
            static_device: raw.static_device,
            created_at: raw.created_at,
            last_seen: raw.last_seen,
        })
    }
}

const SELECT: &str = "SELECT n.id, n.user_id, u.name AS user, n.name, n.hostname, n.os, \
     n.wireguard_key, n.state, n.ipv4, n.ipv6, n.tags, n.ephemeral, n.static_device, \
     n.cert_fingerprint, n.machine_key, n.disco_key, n.client, n.endpoints, n.advertised_routes, n.approved_routes, n.created_at, \
     n.last_seen FROM nodes n JOIN users u ON u.id = n.user_id";

impl Db {
    /// Every node, by id.
    pub async fn list_nodes(&self) -> Result<Vec<NodeRecord>, DbError> {
        let rows: Vec<RawNode> = sqlx::query_as(&format!("{SELECT} ORDER BY n.id"))
            .fetch_all(self.pool())
            .await?;
        rows.into_iter().map(NodeRecord::try_from).collect()
    }

    /// Writes every mutable field of `record` (state, name, tags, endpoints,
    /// routes, last seen, and what a Tailscale client re-reports: node and
    /// disco keys, client, OS, hostname); false when the node no longer exists.
    pub async fn update_node(&self, record: &NodeRecord) -> Result<bool, DbError> {
        let result = sqlx::query(
            "UPDATE nodes SET name = ?, state = ?, tags = ?, endpoints = ?, advertised_routes = ?, \
             approved_routes = ?, last_seen = ?, wireguard_key = ?, disco_key = ?, client = ?, \
             os = ?, hostname = ? WHERE id = ?",
        )
        .bind(&record.name)
        .bind(record.state.as_str())
        .bind(json_list(&record.tags))
        .bind(json_list(&record.endpoints))
        .bind(json_list(&record.advertised_routes))
        .bind(json_list(&record.approved_routes))
        .bind(record.last_seen)
        .bind(record.wireguard_key.to_string())
        .bind(record.disco_key.map(|key| key.to_string()))
        .bind(&record.client)
        .bind(&record.os)
        .bind(&record.hostname)
        .bind(record.id as i64)
        .execute(self.pool())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Deletes a node and records its address as freed at `now`; false when absent.
    pub async fn delete_node(&self, id: u64, now: i64) -> Result<bool, DbError> {
        let mut transaction = self.begin().await?;
        let address: Option<(String,)> = sqlx::query_as("SELECT ipv4 FROM nodes WHERE id = ?")
            .bind(id as i64)
            .fetch_optional(&mut *transaction)
            .await?;
        let Some((ipv4,)) = address else {
            return Ok(false);
        };
        sqlx::query("DELETE FROM nodes WHERE id = ?")
            .bind(id as i64)
            .execute(&mut *transaction)
            .await?;
        sqlx::query(
            "INSERT INTO released_addresses (ipv4, released_at) VALUES (?, ?) \
             ON CONFLICT (ipv4) DO UPDATE SET released_at = excluded.released_at",
        )
        .bind(&ipv4)
        .bind(now)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(true)
    }

    /// Every freed address and when it was freed.
    pub async fn released_addresses(&self) -> Result<Vec<(std::net::Ipv4Addr, i64)>, DbError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT ipv4, released_at FROM released_addresses")
                .fetch_all(self.pool())
                .await?;
        rows.into_iter()
            .map(|(ipv4, when)| {
                ipv4.parse()
                    .map(|address| (address, when))
                    .map_err(|_| DbError::Corrupt(format!("released_addresses.ipv4: `{ipv4}`")))
            })
            .collect()
    }

    /// How many nodes wait for approval under pre-auth key `key_id`, and
    /// how many of user `user_id`.
    pub async fn pending_counts(
        &self,
        key_id: i64,
        user_id: i64,
    ) -> Result<(usize, usize), DbError> {
        let (of_key, of_user): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM nodes WHERE preauth_key_id = ? AND state = 'pending'), \
                    (SELECT COUNT(*) FROM nodes WHERE user_id = ? AND state = 'pending')",
        )
        .bind(key_id)
        .bind(user_id)
        .fetch_one(self.pool())
        .await?;
        Ok((of_key.max(0) as usize, of_user.max(0) as usize))
    }

    /// The largest node id ever used (ids are never reused).
    pub async fn max_node_id(&self) -> Result<u64, DbError> {
        let (max,): (Option<i64>,) = sqlx::query_as("SELECT MAX(id) FROM nodes")
            .fetch_one(self.pool())
            .await?;
        Ok(max.unwrap_or(0).max(0) as u64)
    }
}

/// Inserts a new node inside a registration transaction; the record's id is
/// used as given.
pub async fn insert_node(
    transaction: &mut Transaction<'static, Sqlite>,
    record: &NodeRecord,
    preauth_key_id: Option<i64>,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO nodes (id, user_id, name, hostname, os, wireguard_key, state, ipv4, ipv6, tags, \
         ephemeral, preauth_key_id, cert_fingerprint, machine_key, disco_key, client, static_device, \
         endpoints, advertised_routes, approved_routes, created_at, last_seen) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(record.id as i64)
    .bind(record.user_id)
    .bind(&record.name)
    .bind(&record.hostname)
    .bind(&record.os)
    .bind(record.wireguard_key.to_string())
    .bind(record.state.as_str())
    .bind(record.ipv4.to_string())
    .bind(record.ipv6.to_string())
    .bind(json_list(&record.tags))
    .bind(record.ephemeral)
    .bind(preauth_key_id)
    .bind(record.cert_fingerprint.map(|fingerprint| fingerprint.to_hex()))
    .bind(record.machine_key.map(|key| key.to_string()))
    .bind(record.disco_key.map(|key| key.to_string()))
    .bind(&record.client)
    .bind(record.static_device)
    .bind(json_list(&record.endpoints))
    .bind(json_list(&record.advertised_routes))
    .bind(json_list(&record.approved_routes))
    .bind(record.created_at)
    .bind(record.last_seen)
    .execute(&mut **transaction)
    .await?;
    Ok(())
}
