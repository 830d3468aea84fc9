#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! `monitoring/`: the alert rules pass Prometheus's own checks and unit
//! tests, the dashboards and rules read only metrics the daemons expose,
//! and a real Prometheus scraping a real gateway whose llama-server died
//! raises "no healthy backend".

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hearth_testkit::control_plane::{Server, free_port};
use hearth_testkit::gateway_process::{GatewayProcess, config};
use hearth_testkit::llama::{LlamaServer, workspace_root};

fn monitoring() -> PathBuf {
    workspace_root().join("monitoring")
}

/// `promtool`, or `None` after a printed skip (a failure under `CI=true`).
fn promtool() -> Option<PathBuf> {
    let path = PathBuf::from("/usr/bin/promtool");
    if path.exists() {
        Some(path)
    } else {
        hearth_testkit::skip("promtool is not installed (Debian's `prometheus`)")
    }
}

fn run_ok(command: &mut Command) -> String {
    let output = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{command:?}:\n{text}");
    text
}

/// The alert names in the rules file.
fn alert_names() -> Vec<String> {
    let rules = std::fs::read_to_string(monitoring().join("prometheus/hearth-alerts.yml")).unwrap();
    rules
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- alert: "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn alert_rules_pass_promtool_and_every_alert_fires_in_a_unit_test() {
    let Some(promtool) = promtool() else {
        return;
    };
    let dir = monitoring().join("prometheus");
    let checked = run_ok(
        Command::new(&promtool)
            .arg("check")
            .arg("rules")
            .arg(dir.join("hearth-alerts.yml")),
    );
    let names = alert_names();
    assert!(
        checked.contains(&format!("SUCCESS: {} rules found", names.len())),
        "{checked}"
    );
    run_ok(Command::new(&promtool).current_dir(&dir).args([
        "test",
        "rules",
        "hearth-alerts.test.yml",
    ]));
    // Each alert has a test case where it fires (expected alerts listed).
    let tests = std::fs::read_to_string(dir.join("hearth-alerts.test.yml")).unwrap();
    for name in &names {
        let fires = tests
            .split("alertname: ")
            .skip(1)
            .any(|case| case.starts_with(&format!("{name}\n")) && case.contains("exp_labels"));
        assert!(fires, "no unit test makes {name} fire");
    }
    // The example scrape configuration is valid (with a token file that exists).
    let scratch = tempfile::tempdir().unwrap();
    let token = scratch.path().join("gateway.token");
    std::fs::write(&token, "a-token").unwrap();
    let example = std::fs::read_to_string(dir.join("prometheus.example.yml"))
        .unwrap()
        .replace(
            "/etc/prometheus/hearth-gateway.token",
            token.to_str().unwrap(),
        );
    std::fs::write(scratch.path().join("prometheus.yml"), example).unwrap();
    std::fs::copy(
        dir.join("hearth-alerts.yml"),
        scratch.path().join("hearth-alerts.yml"),
    )
    .unwrap();
    run_ok(Command::new(&promtool).current_dir(scratch.path()).args([
        "check",
        "config",
        "prometheus.yml",
    ]));
}

/// Metric names a Prometheus text exposition declares (`# TYPE`, with a
/// histogram's series), whether or not they have samples yet.
fn exposed(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(declaration) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = declaration.split_once(' ').unwrap();
        names.insert(name.to_owned());
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        }
    }
    names
}

/// `hearth_*` names in an expression.
fn referenced(expression: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expression;
    while let Some(start) = rest.find("hearth_") {
        let tail = &rest[start..];
        let end = tail
            .find(|character: char| !(character.is_ascii_alphanumeric() || character == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

async fn get_text(url: &str, token: Option<&str>) -> String {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    response.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_and_alerts_read_only_metrics_the_daemons_expose() {
    // A coordinator (with its embedded relay) and a gateway, as deployed.
    let dir = tempfile::tempdir().unwrap();
    let metrics_port = free_port();
    let coordinator = Server::builder(&dir.path().join("state"))
        .arg("--metrics-listen")
        .arg(&format!("127.0.0.1:{metrics_port}"))
        .start();
    let coordinator_metrics =
        get_text(&format!("http://127.0.0.1:{metrics_port}/metrics"), None).await;
    drop(coordinator);
    let gateway = GatewayProcess::start(config(&[(
        "home",
        "openai-completions",
        &format!("http://127.0.0.1:{}/v1", free_port()),
    )]));
    let gateway_metrics =
        get_text(&format!("{}/metrics", gateway.url), Some(&gateway.token())).await;
    let names: BTreeSet<String> = exposed(&coordinator_metrics)
        .into_iter()
        .chain(exposed(&gateway_metrics))
        .collect();
    for expected in [
        "hearth_coordinator_nodes",
        "hearth_coordinator_certificate_expiry_timestamp_seconds",
        "hearth_relay_dropped_total",
        "hearth_gateway_backend_up",
    ] {
        assert!(
            names.contains(expected),
            "{expected} not exposed: {names:?}"
        );
    }

    let mut expressions = Vec::new();
    for dashboard in ["coordinator", "gateway", "relay"] {
        let text = std::fs::read_to_string(monitoring().join(format!("grafana/{dashboard}.json")))
            .unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["uid"], format!("hearth-{dashboard}"));
        let panels = json["panels"].as_array().unwrap();
        assert!(!panels.is_empty());
        for panel in panels {
            for target in panel["targets"].as_array().unwrap() {
                expressions.push((
                    format!("{dashboard}: {}", panel["title"]),
                    target["expr"].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    let rules = std::fs::read_to_string(monitoring().join("prometheus/hearth-alerts.yml")).unwrap();
    expressions.push(("hearth-alerts.yml".into(), rules));
    for (place, expression) in &expressions {
        for name in referenced(expression) {
            assert!(
                names.contains(&name),
                "{place} reads {name}, which no daemon exposes"
            );
        }
    }
    // No names of people, devices or message text in the labels.
    for text in [&coordinator_metrics, &gateway_metrics] {
        assert!(
            !text.contains("alice") && !text.contains("hearth-node-"),
            "{text}"
        );
    }
}

/// A Prometheus server on loopback, its data in `dir`; killed on drop.
struct Prometheus {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Prometheus {
    fn start(dir: &Path, config: &str) -> Prometheus {
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        std::fs::copy(
            monitoring().join("prometheus/hearth-alerts.yml"),
            dir.join("hearth-alerts.yml"),
        )
        .unwrap();
        let port = free_port();
        let log = dir.join("prometheus.log");
        let child = Command::new("prometheus")
            .current_dir(dir)
            .arg("--config.file=prometheus.yml")
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    async fn api(&self, path: &str) -> Option<serde_json::Value> {
        let response = reqwest::get(format!("{}{path}", self.url)).await.ok()?;
        response.json().await.ok()
    }

    /// The state of alert `name` (`pending`, `firing`), if active.
    async fn alert_state(&self, name: &str) -> Option<String> {
        let alerts = self.api("/api/v1/alerts").await?;
        alerts["data"]["alerts"]
            .as_array()?
            .iter()
            .find(|alert| alert["labels"]["alertname"] == name)
            .map(|alert| alert["state"].as_str().unwrap_or_default().to_owned())
    }

    async fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        mut done: impl AsyncFnMut(&Prometheus) -> bool,
    ) {
        let deadline = Instant::now() + limit;
        while !done(self).await {
            assert!(
                Instant::now() < deadline,
                "Prometheus: {what} not within {limit:?}; log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scraping_a_gateway_whose_backend_died_fires_no_healthy_backend() {
    if promtool().is_none() {
        return;
    }
    let Some(mut llama) = LlamaServer::start_tcp() else {
        return;
    };
    let gateway = GatewayProcess::start(config(&[("home", "openai-completions", &llama.base_url)]));
    let dir = tempfile::tempdir().unwrap();
    // Prometheus reads the gateway's token from a file, as deployed.
    let token = dir.path().join("gateway.token");
    hearth_files::private::write_private(&token, gateway.token().as_bytes()).unwrap();
    let target = gateway.url.trim_start_matches("http://");
    let prometheus = Prometheus::start(
        dir.path(),
        &format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             rule_files: [hearth-alerts.yml]\n\
             scrape_configs:\n  - job_name: hearth-gateway\n    authorization: {{type: Bearer, credentials_file: {}}}\n    static_configs: [{{targets: ['{target}']}}]\n",
            token.display()
        ),
    );
    let expression = "max by (instance) (hearth_gateway_backend_up) == 0";
    let query = format!("/api/v1/query?query={}", urlencode(expression));

    // While llama-server answers: scraped, healthy, no alert.
    prometheus
        .wait_for(
            "a scrape of the gateway with its backend up",
            Duration::from_secs(30),
            async |prometheus| {
                prometheus
                    .api("/api/v1/query?query=hearth_gateway_backend_up")
                    .await
                    .is_some_and(|answer| answer["data"]["result"][0]["value"][1] == "1")
            },
        )
        .await;
    assert_eq!(prometheus.alert_state("HearthNoHealthyBackend").await, None);

    // The model server dies: the expression holds and the alert goes
    // pending, then fires after its minute.
    llama.kill();
    let died = Instant::now();
    prometheus
        .wait_for(
            "the no-healthy-backend expression",
            Duration::from_secs(30),
            async |prometheus| {
                prometheus.api(&query).await.is_some_and(|answer| {
                    answer["data"]["result"]
                        .as_array()
                        .is_some_and(|result| result.len() == 1)
                })
            },
        )
        .await;
    println!(
        "the expression held {:?} after llama-server died",
        died.elapsed()
    );
    prometheus
        .wait_for(
            "HearthNoHealthyBackend firing",
            Duration::from_secs(120),
            async |prometheus| {
                prometheus
                    .alert_state("HearthNoHealthyBackend")
                    .await
                    .as_deref()
                    == Some("firing")
            },
        )
        .await;
    println!(
        "HearthNoHealthyBackend fired {:?} after llama-server died",
        died.elapsed()
    );
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}
