//! SQL for the `nodes` table; rows come back as [`NodeRecord`]s.

use std::collections::BTreeSet;

use hearth_control::Fingerprint;

use super::{Announcement, Db, DbError, Tx, json_list, on_pool, on_transaction, parse_list};
use crate::netmap::{NodeRecord, Whereabouts};

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
    home_relay: Option<i64>,
    client: String,
    capability_version: i64,
    endpoints: String,
    advertised_routes: String,
    approved_routes: String,
    created_at: i64,
    last_seen: Option<i64>,
    key_expiry: Option<i64>,
    key_lifetime: Option<i64>,
    services: String,
    ssh_host_keys: String,
    service_ads: String,
}

fn service_ads_json(ads: &crate::netmap::ServiceAds) -> String {
    serde_json::to_string(ads).expect("service advertisements serialize")
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
            home_relay: raw
                .home_relay
                .map(|region| {
                    u16::try_from(region).map_err(|_| corrupt("home_relay", &region.to_string()))
                })
                .transpose()?,
            client: raw.client,
            capability_version: u16::try_from(raw.capability_version)
                .map_err(|_| corrupt("capability_version", &raw.capability_version.to_string()))?,
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
            services: parse_list("nodes.services", &raw.services)?,
            ssh_host_keys: parse_list("nodes.ssh_host_keys", &raw.ssh_host_keys)?,
            service_ads: serde_json::from_str(&raw.service_ads)
                .map_err(|_| corrupt("service_ads", &raw.service_ads))?,
            hosted: Vec::new(),
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
            key_expiry: raw.key_expiry,
            key_lifetime: raw
                .key_lifetime
                .map(|seconds| {
                    u64::try_from(seconds)
                        .map_err(|_| corrupt("key_lifetime", &seconds.to_string()))
                })
                .transpose()?,
        })
    }
}

const SELECT: &str = "SELECT n.id, n.user_id, u.name AS user, n.name, n.hostname, n.os, \
     n.wireguard_key, n.state, n.ipv4, n.ipv6, n.tags, n.ephemeral, n.static_device, \
     n.cert_fingerprint, n.machine_key, n.disco_key, n.home_relay, n.client, n.capability_version, n.endpoints, n.advertised_routes, n.approved_routes, n.created_at, \
     n.last_seen, n.key_expiry, n.key_lifetime, n.services, n.ssh_host_keys, n.service_ads FROM nodes n JOIN users u ON u.id = n.user_id";

impl Db {
    /// Every node, by id.
    pub async fn list_nodes(&self) -> Result<Vec<NodeRecord>, DbError> {
        let query = format!("{SELECT} ORDER BY n.id");
        let rows: Vec<RawNode> = on_pool!(self, |pool, _dialect| sqlx::query_as(&query)
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(NodeRecord::try_from).collect()
    }

    /// The node with `id`, if it exists.
    pub async fn get_node(&self, id: u64) -> Result<Option<NodeRecord>, DbError> {
        let query = format!("{SELECT} WHERE n.id = ?");
        let row: Option<RawNode> =
            on_pool!(self, |pool, dialect| sqlx::query_as(&dialect.sql(&query))
                .bind(id as i64)
                .fetch_optional(pool)
                .await?);
        row.map(NodeRecord::try_from).transpose()
    }

    /// Writes every mutable field of `record` (state, name, tags, endpoints,
    /// routes, last seen, and what a Tailscale client re-reports: node and
    /// disco keys, client, OS, hostname); false when the node no longer exists.
    pub async fn update_node(&self, record: &NodeRecord) -> Result<bool, DbError> {
        let mut transaction = self.begin().await?;
        if !update_node(&mut transaction, record).await? {
            return Ok(false);
        }
        self.commit(transaction, &Announcement::Node { id: record.id })
            .await?;
        Ok(true)
    }

    /// Stores where each of `nodes` is to be reached, in one transaction,
    /// and announces each; a node deleted meanwhile is skipped.
    pub async fn store_whereabouts(&self, nodes: &[(u64, Whereabouts)]) -> Result<(), DbError> {
        if nodes.is_empty() {
            return Ok(());
        }
        let mut transaction = self.begin().await?;
        for (id, whereabouts) in nodes {
            on_transaction!(&mut transaction, |conn, dialect| {
                sqlx::query(&dialect.sql(
                    "UPDATE nodes SET endpoints = ?, disco_key = ?, home_relay = ? WHERE id = ?",
                ))
                .bind(json_list(&whereabouts.endpoints))
                .bind(whereabouts.disco_key.map(|key| key.to_string()))
                .bind(whereabouts.home_relay.map(i64::from))
                .bind(*id as i64)
                .execute(conn)
                .await?;
            });
        }
        transaction.commit().await?;
        for (id, _) in nodes {
            self.announce(&Announcement::Node { id: *id }).await;
        }
        Ok(())
    }

    /// Every freed address and when it was freed.
    pub async fn released_addresses(&self) -> Result<Vec<(std::net::Ipv4Addr, i64)>, DbError> {
        let rows: Vec<(String, i64)> = on_pool!(self, |pool, _dialect| sqlx::query_as(
            "SELECT ipv4, released_at FROM released_addresses"
        )
        .fetch_all(pool)
        .await?);
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
        let (of_key, of_user): (i64, i64) = on_pool!(self, |pool, dialect| {
            sqlx::query_as(&dialect.sql(
            "SELECT (SELECT COUNT(*) FROM nodes WHERE preauth_key_id = ? AND state = 'pending'), \
                    (SELECT COUNT(*) FROM nodes WHERE user_id = ? AND state = 'pending')",
        ))
        .bind(key_id)
        .bind(user_id)
        .fetch_one(pool)
        .await?
        });
        Ok((of_key.max(0) as usize, of_user.max(0) as usize))
    }

    /// The largest node id in use (a deleted node's id may be given again
    /// after a restart; nodes are known by their keys, not their ids).
    pub async fn max_node_id(&self) -> Result<u64, DbError> {
        let (max,): (Option<i64>,) = on_pool!(self, |pool, _dialect| sqlx::query_as(
            "SELECT MAX(id) FROM nodes"
        )
        .fetch_one(pool)
        .await?);
        Ok(max.unwrap_or(0).max(0) as u64)
    }
}

/// Makes registrations on a shared database take turns: a PostgreSQL lock
/// held until `transaction` ends, so coordinators sharing the database never
/// pick the same new id or address at once. Nothing on SQLite (one
/// coordinator, and its write transactions are serialized anyway).
pub async fn lock_registrations(transaction: &mut Tx) -> Result<(), DbError> {
    /// The advisory lock's key: "hearthrg" in ASCII.
    const REGISTRATIONS: i64 = 0x6865_6172_7468_7267;
    if let Tx::Postgres(transaction) = transaction {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(REGISTRATIONS)
            .execute(&mut **transaction)
            .await?;
    }
    Ok(())
}

/// Writes every mutable field of `record` inside `transaction` (see
/// [`Db::update_node`]); false when the node no longer exists.
pub async fn update_node(transaction: &mut Tx, record: &NodeRecord) -> Result<bool, DbError> {
    let affected = on_transaction!(transaction, |conn, dialect| {
        sqlx::query(&dialect.sql(
            "UPDATE nodes SET name = ?, state = ?, tags = ?, endpoints = ?, advertised_routes = ?, \
             approved_routes = ?, last_seen = ?, wireguard_key = ?, disco_key = ?, home_relay = ?, \
             client = ?, capability_version = ?, os = ?, hostname = ?, cert_fingerprint = ?, key_expiry = ?, \
             key_lifetime = ?, services = ?, ssh_host_keys = ?, service_ads = ? WHERE id = ?",
        ))
        .bind(&record.name)
        .bind(record.state.as_str())
        .bind(json_list(&record.tags))
        .bind(json_list(&record.endpoints))
        .bind(json_list(&record.advertised_routes))
        .bind(json_list(&record.approved_routes))
        .bind(record.last_seen)
        .bind(record.wireguard_key.to_string())
        .bind(record.disco_key.map(|key| key.to_string()))
        .bind(record.home_relay.map(i64::from))
        .bind(&record.client)
        .bind(i64::from(record.capability_version))
        .bind(&record.os)
        .bind(&record.hostname)
        .bind(record.cert_fingerprint.map(|fingerprint| fingerprint.to_hex()))
        .bind(record.key_expiry)
        .bind(record.key_lifetime.map(|seconds| seconds as i64))
        .bind(json_list(&record.services))
        .bind(json_list(&record.ssh_host_keys))
        .bind(service_ads_json(&record.service_ads))
        .bind(record.id as i64)
        .execute(conn)
        .await?
        .rows_affected()
    });
    Ok(affected == 1)
}

/// Deletes node `id` in `transaction` and records its address as freed at
/// `now`; false when absent.
pub async fn delete_node(transaction: &mut Tx, id: u64, now: i64) -> Result<bool, DbError> {
    Ok(on_transaction!(transaction, |conn, dialect| {
        let address: Option<(String,)> =
            sqlx::query_as(&dialect.sql("DELETE FROM nodes WHERE id = ? RETURNING ipv4"))
                .bind(id as i64)
                .fetch_optional(&mut *conn)
                .await?;
        if let Some((ipv4,)) = &address {
            sqlx::query(&dialect.sql(
                "INSERT INTO released_addresses (ipv4, released_at) VALUES (?, ?) \
                 ON CONFLICT (ipv4) DO UPDATE SET released_at = excluded.released_at",
            ))
            .bind(ipv4)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        }
        address.is_some()
    }))
}

/// Inserts a new node inside a registration transaction; the record's id is
/// used as given.
pub async fn insert_node(
    transaction: &mut Tx,
    record: &NodeRecord,
    preauth_key_id: Option<i64>,
) -> Result<(), DbError> {
    on_transaction!(transaction, |conn, dialect| {
        sqlx::query(&dialect.sql(
        "INSERT INTO nodes (id, user_id, name, hostname, os, wireguard_key, state, ipv4, ipv6, tags, \
         ephemeral, preauth_key_id, cert_fingerprint, machine_key, disco_key, client, capability_version, \
         static_device, endpoints, advertised_routes, approved_routes, created_at, last_seen, key_expiry, \
         key_lifetime, services, ssh_host_keys, service_ads) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    ))
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
    .bind(i64::from(record.capability_version))
    .bind(record.static_device)
    .bind(json_list(&record.endpoints))
    .bind(json_list(&record.advertised_routes))
    .bind(json_list(&record.approved_routes))
    .bind(record.created_at)
    .bind(record.last_seen)
    .bind(record.key_expiry)
    .bind(record.key_lifetime.map(|seconds| seconds as i64))
    .bind(json_list(&record.services))
    .bind(json_list(&record.ssh_host_keys))
    .bind(service_ads_json(&record.service_ads))
    .execute(conn)
    .await?
    .rows_affected()
    });
    Ok(())
}
