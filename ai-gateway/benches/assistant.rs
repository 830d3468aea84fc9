//! What the household assistant costs, each against a peer measured in the
//! same run:
//!
//! 1. search at 10,000 passages (memory entries are searched by the same
//!    index): Hearth's hybrid search (BM25 and 384-dimension vectors, MMR)
//!    and its keyword search, against SQLite FTS5's BM25 over the same
//!    texts (the keyword engine OpenClaw's builtin memory uses);
//! 2. indexing: household Markdown documents through the gateway (read,
//!    cut, embedded by all-MiniLM-L6-v2 on llama-server, stored), against
//!    asking the same llama-server for the same passages' embeddings
//!    directly; and without embeddings;
//! 3. time to first token with the assistant on (memory, documents,
//!    embeddings, tools) against off, the same question from the same
//!    member, interleaved, one llama-server with the tiny model;
//! 4. the gateway's resident memory with 10,000 passages and 10,000
//!    memory entries loaded (vectors included), against the same gateway
//!    with none.
//!
//! How often search finds the right passage is measured by
//! `cargo test -p hearth-assistant --test recall`.
//!
//! `cargo bench -p hearth-gateway --bench assistant` (parts:
//! `HEARTH_BENCH=search,indexing,ttft,memory`; needs the cached
//! llama-server build and the models: scripts/install-test-deps.sh).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hearth_assistant::api::{Answer, Op, Request};
use hearth_assistant::memory::{Layer, Source};
use hearth_assistant::scope::{Asker, Owner, RoomId};
use hearth_assistant::search::{Index, Query};
use hearth_chat_client::ChatClient;
use hearth_e2ee::{ChatPayload, KeyPair, ReplyEvent};
use hearth_gateway::assistant::store::{
    Database, DocumentStore, KnownDocument, MemoryStore, NewPassage,
};
use hearth_testkit::bench::{median, percentile, tree_rss_mib};
use hearth_testkit::llama::{LlamaServer, free_port};
use serde_json::{Value, json};

const WORDS: [&str; 64] = [
    "boiler",
    "heating",
    "radiator",
    "kitchen",
    "oven",
    "recipe",
    "bread",
    "flour",
    "garden",
    "tomatoes",
    "roses",
    "watering",
    "school",
    "homework",
    "teacher",
    "holiday",
    "train",
    "tickets",
    "passport",
    "dentist",
    "appointment",
    "doctor",
    "allergy",
    "peanuts",
    "birthday",
    "grandma",
    "cake",
    "bins",
    "recycling",
    "monday",
    "tuesday",
    "weekend",
    "bike",
    "lock",
    "code",
    "wifi",
    "password",
    "router",
    "insurance",
    "car",
    "service",
    "warranty",
    "dishwasher",
    "fridge",
    "shopping",
    "milk",
    "eggs",
    "cheese",
    "plumber",
    "leak",
    "roof",
    "window",
    "paint",
    "shed",
    "cat",
    "vet",
    "food",
    "budget",
    "bills",
    "electricity",
    "water",
    "reading",
    "library",
    "football",
];

/// A deterministic sequence of pseudo-random numbers.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn word(&mut self) -> &'static str {
        WORDS[(self.next() % WORDS.len() as u64) as usize]
    }

    fn text(&mut self, words: usize) -> String {
        (0..words)
            .map(|_| self.word())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// A unit vector of `dimensions` (for the search itself, what the
    /// numbers are does not matter, only how many).
    fn vector(&mut self, dimensions: usize) -> Vec<f32> {
        let raw: Vec<f32> = (0..dimensions)
            .map(|_| (self.next() % 2000) as f32 / 1000.0 - 1.0)
            .collect();
        let length = raw.iter().map(|value| value * value).sum::<f32>().sqrt();
        raw.iter().map(|value| value / length).collect()
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn stats(values: &mut [f64]) -> (f64, f64) {
    let mut list = values.to_vec();
    (median(&mut list), percentile(&mut list, 0.99))
}

/// Part 1.
async fn search() {
    const PASSAGES: usize = 10_000;
    const QUERIES: usize = 500;
    let mut random = Lcg(7);
    let texts: Vec<String> = (0..PASSAGES).map(|_| random.text(80)).collect();
    let vectors: Vec<Vec<f32>> = (0..PASSAGES).map(|_| random.vector(384)).collect();
    let started = Instant::now();
    let mut index = Index::default();
    for (id, (text, vector)) in texts.iter().zip(&vectors).enumerate() {
        index.insert(id as i64, text, Some(vector), None);
    }
    let built = started.elapsed();

    // The peer: SQLite FTS5 (BM25) over the same texts, in memory.
    let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    sqlx::query("CREATE VIRTUAL TABLE passages USING fts5(body)")
        .execute(&pool)
        .await
        .unwrap();
    let started = Instant::now();
    let mut transaction = pool.begin().await.unwrap();
    for text in &texts {
        sqlx::query("INSERT INTO passages (body) VALUES (?)")
            .bind(text)
            .execute(&mut *transaction)
            .await
            .unwrap();
    }
    transaction.commit().await.unwrap();
    let fts_built = started.elapsed();

    let today: jiff::civil::Date = "2026-11-24".parse().unwrap();
    let queries: Vec<(String, Vec<f32>)> = (0..QUERIES)
        .map(|_| (random.text(5), random.vector(384)))
        .collect();
    let (mut hybrid, mut keywords, mut fts, mut member) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (text, vector) in &queries {
        let query = Query {
            text,
            vector: Some(vector),
            today,
            limit: 6,
            min_score: 0.35,
            scoring: hearth_assistant::search::E5_SCORING,
        };
        let started = Instant::now();
        let found = index.search(&query, |_| true);
        hybrid.push(ms(started.elapsed()));
        assert!(!found.is_empty());
        // One member's entries among everyone's: the filter memory search uses.
        let started = Instant::now();
        let _ = index.search(&query, |id| id % 4 == 0);
        member.push(ms(started.elapsed()));
        let keyword = Query {
            vector: None,
            ..query
        };
        let started = Instant::now();
        let _ = index.search(&keyword, |_| true);
        keywords.push(ms(started.elapsed()));
        let fts_query = text.split(' ').collect::<Vec<_>>().join(" OR ");
        let started = Instant::now();
        let rows: Vec<(i64,)> = sqlx::query_as(
            "SELECT rowid FROM passages WHERE passages MATCH ? ORDER BY bm25(passages) LIMIT 6",
        )
        .bind(&fts_query)
        .fetch_all(&pool)
        .await
        .unwrap();
        fts.push(ms(started.elapsed()));
        assert!(!rows.is_empty());
    }
    let (hybrid_50, hybrid_99) = stats(&mut hybrid);
    let (member_50, member_99) = stats(&mut member);
    let (keywords_50, keywords_99) = stats(&mut keywords);
    let (fts_50, fts_99) = stats(&mut fts);
    println!(
        "\n## Search, {PASSAGES} passages of 80 words, 384-dimension vectors, {QUERIES} queries\n"
    );
    println!("| | p50 | p99 | ratio to FTS5 (p50) |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| Hearth hybrid (BM25 + vectors + MMR), top 6 | {hybrid_50:.2} ms | {hybrid_99:.2} ms | {:.2}x |",
        hybrid_50 / fts_50
    );
    println!(
        "| the same, one member's quarter of the entries (memory search) | {member_50:.2} ms | {member_99:.2} ms | {:.2}x |",
        member_50 / fts_50
    );
    println!(
        "| Hearth keywords only (BM25), top 6 | {keywords_50:.2} ms | {keywords_99:.2} ms | {:.2}x |",
        keywords_50 / fts_50
    );
    println!("| SQLite FTS5 BM25, top 6 (peer) | {fts_50:.2} ms | {fts_99:.2} ms | 1x |");
    println!(
        "| building: Hearth's index {:.0} ms, FTS5 {:.0} ms | | | |",
        ms(built),
        ms(fts_built)
    );
}

/// A gateway process on a temporary data directory.
struct GatewayProcess {
    child: Child,
    url: String,
    token: String,
    _dir: tempfile::TempDir,
}

impl GatewayProcess {
    fn start(config: Value, dir: tempfile::TempDir) -> GatewayProcess {
        let port = free_port();
        let data_dir = dir.path().join("data");
        let mut config = config;
        config["gateway"]["port"] = json!(port);
        config["hearth"]["dataDir"] = json!(data_dir);
        config["hearth"]["limits"] = json!({"requestsPerMinutePerDevice": 1_000_000,
                                            "requestsPerMinutePerIp": 1_000_000});
        let path = dir.path().join("gateway.json");
        std::fs::write(&path, config.to_string()).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_hearth-gateway"))
            .args(["serve", "--config"])
            .arg(&path)
            .env("HEARTH_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the gateway did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        let token = std::fs::read_to_string(data_dir.join("gateway.token"))
            .unwrap()
            .trim()
            .to_owned();
        GatewayProcess {
            child,
            url: format!("http://127.0.0.1:{port}"),
            token,
            _dir: dir,
        }
    }

    fn client(&self) -> ChatClient {
        ChatClient::new(&self.url, Some(self.token.clone()), KeyPair::generate())
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A gateway's configuration in front of the tiny model (llama-server's
/// 2,048 tokens over 4 slots: 512 a conversation).
fn config(model_url: &str, embeddings_url: Option<&str>, assistant: Value) -> Value {
    let mut config = json!({
        "models": {"providers": {"local": {"baseUrl": model_url, "api": "openai-completions", "timeoutSeconds": 30,
                                           "models": [{"id": "tiny", "contextWindow": 512, "maxTokens": 8}]}}},
        "agents": {"defaults": {"model": {"primary": "local/tiny"}, "userTimezone": "Europe/London"}},
        "hearth": {"assistant": assistant},
    });
    if let Some(url) = embeddings_url {
        config["models"]["providers"]["vectors"] = json!({"baseUrl": url, "api": "openai-completions",
            "timeoutSeconds": 600, "models": [{"id": "all-MiniLM-L6-v2"}]});
        config["memory"] = json!({"search": {"provider": "vectors", "model": "all-MiniLM-L6-v2"}});
    }
    config
}

/// Household Markdown documents: `count` files of four sections each.
fn write_documents(dir: &Path, count: usize, random: &mut Lcg) -> usize {
    std::fs::create_dir_all(dir).unwrap();
    for file in 0..count {
        let mut text = format!("# Notes {file}\n\n");
        for section in 0..4 {
            text.push_str(&format!("## Section {section}\n\n{}\n\n", random.text(200)));
        }
        std::fs::write(dir.join(format!("notes-{file:04}.md")), text).unwrap();
    }
    count * 4
}

async fn documents_indexed(gateway: &GatewayProcess, count: usize, limit: Duration) -> Duration {
    let client = gateway.client();
    let started = Instant::now();
    loop {
        let answer = client
            .assistant(&Request {
                asker: Some(hearth_assistant::scope::Asker {
                    member: "ada".into(),
                    room: Some(RoomId::assistant_dm("ada").expect("a member's DM")),
                    capabilities: Default::default(),
                    device: None,
                    language: None,
                }),
                op: Op::DocumentList {},
            })
            .await
            .unwrap();
        if let Ok(Answer::Documents { documents, .. }) = serde_json::from_value(answer)
            && documents.len() >= count
        {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "not indexed in {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Part 2.
async fn indexing() {
    let Some(embeddings) = LlamaServer::start_embeddings() else {
        println!("the embedding model is missing (scripts/embedding-model.sh): skipped");
        return;
    };
    let embeddings_url = embeddings.base_url.clone();
    let Some(model) = LlamaServer::start_tcp() else {
        return;
    };
    let mut random = Lcg(11);

    // With embeddings: 25 documents, 100 passages (kept beyond the
    // gateway's own directory, for the peer to read after it).
    let kept = tempfile::tempdir().unwrap();
    let documents = kept.path().join("documents");
    let dir = tempfile::tempdir().unwrap();
    let passages = write_documents(&documents, 25, &mut random);
    let gateway = GatewayProcess::start(
        config(
            &model.base_url,
            Some(&embeddings_url),
            json!({"documents": [{"name": "house", "path": documents}], "rescanSeconds": 1}),
        ),
        dir,
    );
    let through_gateway = documents_indexed(&gateway, 25, Duration::from_secs(3600)).await;
    drop(gateway);

    // The peer: the same passages' embeddings asked for directly, in the gateway's batches.
    let mut files: Vec<PathBuf> = std::fs::read_dir(&documents)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    let texts: Vec<String> = files
        .iter()
        .flat_map(|file| {
            let text = std::fs::read_to_string(file).unwrap();
            hearth_assistant::chunk::passages(&[text], true, false)
                .into_iter()
                .map(|passage| passage.text)
        })
        .collect();
    let started = Instant::now();
    let (_embeddings, texts, vectors) = tokio::task::spawn_blocking(move || {
        let vectors = embeddings.embed(&texts);
        (embeddings, texts, vectors)
    })
    .await
    .unwrap();
    let direct = started.elapsed();
    assert_eq!(vectors.len(), texts.len());

    // Without embeddings: 500 documents, 2,000 passages.
    let dir = tempfile::tempdir().unwrap();
    let plain_documents = dir.path().join("documents");
    let plain_passages = write_documents(&plain_documents, 500, &mut random);
    let gateway = GatewayProcess::start(
        config(
            &model.base_url,
            None,
            json!({"documents": [{"name": "house", "path": plain_documents}], "rescanSeconds": 1}),
        ),
        dir,
    );
    let keywords_only = documents_indexed(&gateway, 500, Duration::from_secs(600)).await;
    drop(gateway);

    let rate = |count: usize, took: Duration| count as f64 / took.as_secs_f64();
    println!("\n## Indexing household documents (Markdown, about 400 tokens a passage)\n");
    println!("| | passages | time | passages/s | ratio |");
    println!("| --- | --- | --- | --- | --- |");
    println!(
        "| through the gateway, embedded by all-MiniLM-L6-v2 (llama-server, 1 thread) | {passages} | {:.1} s | {:.2} | {:.2}x |",
        through_gateway.as_secs_f64(),
        rate(passages, through_gateway),
        rate(passages, through_gateway) / rate(texts.len(), direct)
    );
    println!(
        "| the same passages' embeddings asked of llama-server directly (peer) | {} | {:.1} s | {:.2} | 1x |",
        texts.len(),
        direct.as_secs_f64(),
        rate(texts.len(), direct)
    );
    println!(
        "| through the gateway without embeddings (read, cut, stored) | {plain_passages} | {:.2} s | {:.0} | |",
        keywords_only.as_secs_f64(),
        rate(plain_passages, keywords_only)
    );
}

/// The time to the first text of `question` asked by ada in her DM.
async fn first_token(client: &ChatClient, question: &str) -> f64 {
    let payload = ChatPayload {
        message: question.into(),
        channel: Some(format!("bench-{}", rand::random::<u64>())),
        max_tokens: Some(8),
        temperature: None,
        images: Vec::new(),
        on_behalf_of: Some(Asker {
            member: "ada".into(),
            room: Some(RoomId::assistant_dm("ada").expect("a member's DM")),
            capabilities: Default::default(),
            device: None,
            language: None,
        }),
    };
    let started = Instant::now();
    let mut first = None;
    client
        .chat(&payload, |event| {
            if let ReplyEvent::Delta { .. } = event {
                first.get_or_insert_with(|| ms(started.elapsed()));
            }
        })
        .await
        .unwrap();
    first.expect("an answer")
}

/// Part 3.
async fn time_to_first_token() {
    const SAMPLES: usize = 100;
    let Some(embeddings) = LlamaServer::start_embeddings() else {
        println!("the embedding model is missing (scripts/embedding-model.sh): skipped");
        return;
    };
    let Some(model) = LlamaServer::start_tcp() else {
        return;
    };
    let mut random = Lcg(13);
    let dir = tempfile::tempdir().unwrap();
    let documents = dir.path().join("documents");
    let passages = write_documents(&documents, 10, &mut random);
    let on = GatewayProcess::start(
        config(
            &model.base_url,
            Some(&embeddings.base_url),
            json!({"documents": [{"name": "house", "path": documents}]}),
        ),
        dir,
    );
    let off = GatewayProcess::start(
        config(&model.base_url, None, json!({"enabled": false})),
        tempfile::tempdir().unwrap(),
    );
    documents_indexed(&on, 10, Duration::from_secs(3600)).await;
    // 200 things ada asked it to remember.
    let on_client = on.client();
    let off_client = off.client();
    for _ in 0..200 {
        let fact = format!("remember that the {} is {}", random.text(3), random.text(4));
        first_token(&on_client, &fact).await;
    }
    let question = "when is the dentist appointment for the boiler?";
    for _ in 0..5 {
        first_token(&on_client, question).await;
        first_token(&off_client, question).await;
    }
    let (mut with, mut without, mut added) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..SAMPLES {
        let a = first_token(&off_client, question).await;
        let b = first_token(&on_client, question).await;
        without.push(a);
        with.push(b);
        added.push(b - a);
    }
    let (with_50, with_99) = stats(&mut with);
    let (without_50, without_99) = stats(&mut without);
    let added_50 = median(&mut added);
    println!(
        "\n## Time to first token, assistant on and off ({SAMPLES} interleaved pairs, tiny model)\n"
    );
    println!(
        "On: 200 memory entries of the member, {passages} document passages, embeddings by all-MiniLM-L6-v2 (the question embedded each time), 12 tools offered; the question matches memory and documents.\n"
    );
    println!("| | p50 | p99 |");
    println!("| --- | --- | --- |");
    println!("| assistant off | {without_50:.1} ms | {without_99:.1} ms |");
    println!("| assistant on | {with_50:.1} ms | {with_99:.1} ms |");
    println!("| added by the assistant (p50 of the pairs' differences) | {added_50:.1} ms | |");
}

/// Part 4.
async fn memory() {
    const PASSAGES: usize = 10_000;
    const ENTRIES: usize = 10_000;
    let Some(model) = LlamaServer::start_tcp() else {
        return;
    };
    let mut random = Lcg(17);
    // A store filled as the gateway would fill it (vectors of the
    // configured model), then a gateway started on it.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let database = Database::open(&data, None).await.unwrap();
    database
        .embedding_model("vectors/all-MiniLM-L6-v2")
        .await
        .unwrap();
    let memory = MemoryStore::new(database.clone());
    let index = DocumentStore::new(database.clone());
    let members = ["ada", "ben", "cat", "dan"];
    for entry in 0..ENTRIES {
        let owner = Owner::Member(members[entry % members.len()].into());
        memory
            .remember(
                None,
                &owner,
                &Layer::LongTerm,
                &random.text(20),
                Some(&random.vector(384)),
                Source::Asked,
                0,
            )
            .await
            .unwrap();
    }
    // The documents are real files, stored as the indexer would have
    // stored them (same size and time), so its scan finds them unchanged.
    let documents = dir.path().join("documents");
    std::fs::create_dir_all(&documents).unwrap();
    for file in 0..PASSAGES / 10 {
        let path = format!("notes-{file:04}.md");
        let sections: Vec<String> = (0..10).map(|_| random.text(200)).collect();
        let mut text = String::new();
        for (section, body) in sections.iter().enumerate() {
            text.push_str(&format!("## Section {section}\n\n{body}\n\n"));
        }
        std::fs::write(documents.join(&path), &text).unwrap();
        let metadata = std::fs::metadata(documents.join(&path)).unwrap();
        let modified = metadata
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let passages: Vec<NewPassage> = sections
            .into_iter()
            .enumerate()
            .map(|(section, body)| NewPassage {
                citation: format!("{path} › Section {section}"),
                text: body,
                vector: Some(random.vector(384)),
            })
            .collect();
        let document = KnownDocument {
            folder: "house".into(),
            path,
            size: i64::try_from(metadata.len()).unwrap(),
            modified: i64::try_from(modified).unwrap(),
            refused: None,
            passages: 10,
        };
        index
            .index_document(&document, &passages, false, 0)
            .await
            .unwrap();
    }
    database.close().await;
    let mut loaded_config = config(
        &model.base_url,
        Some("http://127.0.0.1:9/v1"),
        json!({"documents": [{"name": "house", "path": documents}]}),
    );
    loaded_config["hearth"]["dataDir"] = json!(data);
    let loaded = GatewayProcess::start(loaded_config, dir);
    let empty = GatewayProcess::start(
        config(&model.base_url, None, json!({})),
        tempfile::tempdir().unwrap(),
    );
    // The loaded one has scanned its folder (nothing changed, nothing
    // forgotten); both answer once before they are measured.
    documents_indexed(&loaded, PASSAGES / 10, Duration::from_secs(600)).await;
    let question = "what is on the shopping list?";
    let _ = first_token(&loaded.client(), question).await;
    let _ = first_token(&empty.client(), question).await;
    let (loaded_rss, empty_rss) = (
        tree_rss_mib(loaded.child.id()),
        tree_rss_mib(empty.child.id()),
    );
    // Still all there: the measurement was of the whole library.
    documents_indexed(&loaded, PASSAGES / 10, Duration::from_secs(1)).await;
    println!("\n## The gateway's resident memory\n");
    println!("| gateway | RSS |");
    println!("| --- | --- |");
    println!(
        "| with {PASSAGES} passages and {ENTRIES} memory entries loaded (384-dimension vectors) | {loaded_rss:.1} MiB |"
    );
    println!("| with none | {empty_rss:.1} MiB |");
}

fn main() {
    let parts =
        std::env::var("HEARTH_BENCH").unwrap_or_else(|_| "search,indexing,ttft,memory".into());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for part in parts.split(',') {
        match part.trim() {
            "search" => runtime.block_on(search()),
            "indexing" => runtime.block_on(indexing()),
            "ttft" => runtime.block_on(time_to_first_token()),
            "memory" => runtime.block_on(memory()),
            other => panic!("no part {other:?}: search, indexing, ttft, memory"),
        }
    }
}
