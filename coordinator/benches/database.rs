//! The coordinator's database, 10,000 nodes: SQLite (the default) beside
//! PostgreSQL (a real server from Debian, started here in a temporary
//! directory and reached over its UNIX socket), same data, same run.
//!
//! Measures what the database adds to the coordinator's work: storing the
//! nodes, loading them and building the network at start-up, a
//! registration's write, and a delta (an endpoint change written, then
//! computed and serialized). Prints PostgreSQL / SQLite ratios.
//!
//! Run (as root, which PostgreSQL's own user needs):
//! `cargo bench -p hearth-coordinator --bench database`

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_acl::CompiledPolicy;
use hearth_coordinator::db::Db;
use hearth_coordinator::db::nodes::insert_node;
use hearth_coordinator::netmap::{Network, NodeRecord};

mod common;
use common::{NODES, USERS, record, serialize, timed};

struct Measured {
    store_all: Duration,
    load: Duration,
    build: Duration,
    register: Duration,
    delta: Duration,
    delta_p99: Duration,
}

/// Node `id` owned by one of the stored users.
fn stored_record(id: u64) -> NodeRecord {
    let mut record = record(id);
    record.user_id = (id % USERS) as i64 + 1;
    record
}

async fn measure(db: Db) -> Measured {
    for user in 0..USERS {
        db.insert_user(&format!("user{user}"), None, 0)
            .await
            .expect("a user");
    }
    let records: Vec<NodeRecord> = (1..=NODES).map(stored_record).collect();
    let start = Instant::now();
    for batch in records.chunks(500) {
        let mut transaction = db.begin().await.expect("a transaction");
        for record in batch {
            insert_node(&mut transaction, record, None)
                .await
                .expect("stored");
        }
        transaction.commit().await.expect("committed");
    }
    let store_all = start.elapsed();

    let policy = Arc::new(CompiledPolicy::allow_all());
    let mut loads = Vec::new();
    let mut builds = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let loaded = db.list_nodes().await.expect("loaded");
        loads.push(start.elapsed());
        assert_eq!(loaded.len() as u64, NODES);
        builds.push(timed(|| {
            black_box(Network::with_nodes(Arc::clone(&policy), loaded));
        }));
    }
    loads.sort();
    builds.sort();

    // A registration's write: one node in its own transaction (durable).
    let mut registers = Vec::new();
    for id in NODES + 1..=NODES + 201 {
        let record = stored_record(id);
        let start = Instant::now();
        let mut transaction = db.begin().await.expect("a transaction");
        insert_node(&mut transaction, &record, None)
            .await
            .expect("stored");
        transaction.commit().await.expect("committed");
        registers.push(start.elapsed());
    }
    registers.sort();

    // A delta: the endpoint change written, then computed and serialized.
    let mut network = Network::with_nodes(policy, db.list_nodes().await.expect("loaded"));
    let subject = 2_007;
    let mut deltas = Vec::new();
    for port in 0..501u16 {
        let mut moved = network.node(subject).expect("stored").clone();
        moved.endpoints = vec![SocketAddr::from(([198, 51, 100, 1], 1000 + port))];
        let start = Instant::now();
        assert!(db.update_node(&moved).await.expect("written"));
        black_box(serialize(&network.upsert(moved)));
        deltas.push(start.elapsed());
    }
    deltas.sort();
    db.close().await;
    Measured {
        store_all,
        load: loads[loads.len() / 2],
        build: builds[builds.len() / 2],
        register: registers[registers.len() / 2],
        delta: deltas[deltas.len() / 2],
        delta_p99: deltas[deltas.len() * 99 / 100],
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let sqlite = runtime.block_on(async {
        measure(
            Db::open_sqlite(&dir.path().join("bench.db"))
                .await
                .expect("SQLite opens"),
        )
        .await
    });
    let Some(cluster) = hearth_testkit::postgres::available() else {
        return;
    };
    let url = cluster.fresh_database();
    let postgres = runtime.block_on(async {
        measure(
            Db::open_postgres(&url, None)
                .await
                .expect("PostgreSQL opens"),
        )
        .await
    });
    println!("{NODES} nodes, {USERS} users, no policy (allow all)");
    println!(
        "{:<48} {:>12} {:>12} {:>8}",
        "", "SQLite", "PostgreSQL", "PG/SQLite"
    );
    let rows = [
        (
            "store 10,000 nodes (20 transactions of 500)",
            sqlite.store_all,
            postgres.store_all,
        ),
        ("load every node (start-up)", sqlite.load, postgres.load),
        (
            "build the network from them (start-up)",
            sqlite.build,
            postgres.build,
        ),
        (
            "a registration's write (one commit)",
            sqlite.register,
            postgres.register,
        ),
        (
            "delta: endpoint written + computed, median",
            sqlite.delta,
            postgres.delta,
        ),
        (
            "delta: endpoint written + computed, p99",
            sqlite.delta_p99,
            postgres.delta_p99,
        ),
    ];
    for (name, sqlite, postgres) in rows {
        println!(
            "{name:<48} {:>9.2} ms {:>9.2} ms {:>7.2}x",
            ms(sqlite),
            ms(postgres),
            ms(postgres) / ms(sqlite)
        );
    }
}
