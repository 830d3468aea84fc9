//! `hearth-pcc`: verify attestation evidence, list a router's compute
//! nodes with their verification reports, and chat end to end with a
//! verified node.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use hearth_attest::Policy;
use hearth_e2ee::{KeyPair, ReplyEvent};
use hearth_pcc::commands::{self, Output};
use hearth_pcc::oblivious::ApiConfig;
use hearth_pcc::{ComputeClient, ComputeMessage, ComputeRequest};

/// Private compute: attested remote inference for a Hearth household.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Verify one evidence file offline (a raw Nitro document, binary or
    /// base64, or a Hearth evidence bundle); exits 0 only when it passes.
    /// Without --policy only the chain, the signature and the time are
    /// checked and the measurements printed.
    Verify {
        /// The evidence file.
        file: PathBuf,
        /// The time to verify at (RFC 3339) [default: now].
        #[arg(long)]
        at: Option<String>,
        /// The attestation policy (JSON).
        #[arg(long)]
        policy: Option<PathBuf>,
        /// The nonce the document must carry (hex).
        #[arg(long)]
        nonce: Option<String>,
        /// How to print the report.
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Print a policy that trusts exactly one image, to review and keep:
    /// from what `nitro-cli build-enclave` (or `describe-eif`) printed for
    /// the enclave image file, or from a document of an enclave you trust
    /// (verify it first).
    Policy {
        /// nitro-cli's output, or a Nitro document or bundle.
        file: PathBuf,
        /// The image's name in the policy.
        #[arg(long, default_value = "trusted image")]
        name: String,
    },
    /// List the router's nodes with their verification reports.
    Nodes {
        /// The router.
        #[arg(long, default_value = "http://127.0.0.1:3600")]
        router: String,
        /// The attestation policy (JSON) [default: trust no image].
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Ask each node for fresh evidence with a random nonce.
        #[arg(long)]
        challenge: bool,
        /// How to print.
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Ask a verified node a question, sealed on this device: neither the
    /// router nor the hub can read it. With --config the request goes
    /// through an Oblivious HTTP relay: the router never sees this device.
    Chat {
        /// The question [default: read from standard input].
        question: Option<String>,
        /// The router.
        #[arg(long, default_value = "http://127.0.0.1:3600")]
        router: String,
        /// The config server (http://HOST:8080): go through its OHTTP relay
        /// and gateway to the router it names, instead of --router.
        #[arg(long)]
        config: Option<String>,
        /// The attestation policy (JSON) [with --config: the config
        /// server's, which this file, if given, must equal].
        #[arg(long, required_unless_present = "config")]
        policy: Option<PathBuf>,
        /// The model.
        #[arg(long)]
        model: String,
        /// Most tokens to generate.
        #[arg(long)]
        max_tokens: Option<u32>,
        /// Where this device keeps the transparency log's last checkpoint
        /// it accepted (with --config and a policy that names a log): a
        /// log that does not extend it has forked, and nothing is sent.
        #[arg(long)]
        log_state: Option<PathBuf>,
    },
    /// The transparency log of private compute: what compute images and
    /// OHTTP keys clients may trust, append-only, with signed checkpoints.
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
}

#[derive(Subcommand)]
enum LogCommand {
    /// Make a new log in a directory; prints the verifier key policies pin
    /// (`transparency.log_key`).
    Init {
        /// The log's directory (its signing key is kept there, 0600).
        #[arg(long)]
        dir: PathBuf,
        /// The log's name, its checkpoints' origin line (e.g.
        /// home.example/hearth-log).
        #[arg(long)]
        origin: String,
    },
    /// Append the images a policy trusts (those not logged yet).
    AddImages {
        /// The log's directory.
        #[arg(long)]
        dir: PathBuf,
        /// The attestation policy (JSON).
        #[arg(long)]
        policy: PathBuf,
    },
    /// Append the OHTTP key configurations of a seeds file, with their
    /// periods (those not logged yet).
    AddKeys {
        /// The log's directory.
        #[arg(long)]
        dir: PathBuf,
        /// The seeds JSON the OHTTP gateway and config server are given.
        #[arg(long)]
        seeds_file: PathBuf,
    },
    /// Audit a config server's log: the checkpoint's signature, every
    /// entry against the root, and that it extends the checkpoint kept in
    /// --state (which then holds the new one); prints the entries.
    Audit {
        /// The config server (http://HOST:8080).
        #[arg(long)]
        config: String,
        /// The log's verifier key.
        #[arg(long)]
        log_key: String,
        /// The log's name.
        #[arg(long)]
        origin: String,
        /// Where the last checkpoint audited is kept.
        #[arg(long)]
        state: Option<PathBuf>,
    },
}

fn read_policy(path: &Path) -> anyhow::Result<Policy> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the policy {}", path.display()))?;
    Policy::parse(&text).with_context(|| format!("{} is not a usable policy", path.display()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Verify {
            file,
            at,
            policy,
            nonce,
            output,
        } => verify(
            &file,
            at.as_deref(),
            policy.as_deref(),
            nonce.as_deref(),
            output,
        ),
        Command::Policy { file, name } => std::fs::read(&file)
            .with_context(|| format!("cannot read {}", file.display()))
            .and_then(|bytes| commands::policy_from(&bytes, &name).map_err(anyhow::Error::from))
            .map(|text| {
                println!("{text}");
                true
            }),
        Command::Nodes {
            router,
            policy,
            challenge,
            output,
        } => block_on(nodes(router, policy, challenge, output)),
        Command::Chat {
            question,
            router,
            config,
            policy,
            model,
            max_tokens,
            log_state,
        } => block_on(chat(
            question, router, config, policy, model, max_tokens, log_state,
        )),
        Command::Log { command } => log(command),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("hearth-pcc: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn block_on(work: impl Future<Output = anyhow::Result<bool>>) -> anyhow::Result<bool> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(work)
}

fn verify(
    file: &Path,
    at: Option<&str>,
    policy: Option<&Path>,
    nonce: Option<&str>,
    output: Output,
) -> anyhow::Result<bool> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let at = match at {
        Some(text) => hearth_attest::report::parse_rfc3339(text)
            .with_context(|| format!("--at {text}: not an RFC 3339 time (2024-09-07T14:37:39Z)"))?,
        None => hearth_runtime::clock::since_epoch(),
    };
    let policy = policy.map(read_policy).transpose()?;
    let nonce = nonce
        .map(|text| hex::decode(text).context("--nonce is not hex"))
        .transpose()?;
    let (passed, text) = commands::verify(&bytes, at, policy.as_ref(), nonce.as_deref(), output)?;
    println!("{text}");
    Ok(passed)
}

async fn nodes(
    router: String,
    policy: Option<PathBuf>,
    challenge: bool,
    output: Output,
) -> anyhow::Result<bool> {
    let policy = policy
        .as_deref()
        .map(read_policy)
        .transpose()?
        .unwrap_or_default();
    let client = ComputeClient::new(&router, policy, KeyPair::generate());
    let now = hearth_runtime::clock::since_epoch();
    let judged = client.judged_nodes(now).await?;
    print!("{}", commands::nodes(&judged, output));
    let mut all = judged.iter().all(|node| node.judgement.trusted());
    if challenge {
        for node in &judged {
            let report = client.challenge(&node.entry.node, now).await?;
            println!(
                "{}: fresh evidence with our nonce: {}",
                node.entry.node,
                if report.passed { "VERIFIED" } else { "REFUSED" }
            );
            all &= report.passed;
        }
    }
    Ok(all && !judged.is_empty())
}

/// The client: direct to `router`, or through the relay the config server
/// at `config` names (its policy, checked against `policy` when given;
/// with a transparency log kept in `log_state`).
async fn client(
    router: &str,
    config: Option<&str>,
    policy: Option<&Path>,
    log_state: Option<&Path>,
) -> anyhow::Result<ComputeClient> {
    let device = KeyPair::generate();
    let Some(config) = config else {
        let policy = policy.context("--policy is needed without --config")?;
        return Ok(ComputeClient::new(router, read_policy(policy)?, device));
    };
    let url = format!("{}/api/config", config.trim_end_matches('/'));
    let http = reqwest::Client::new();
    let document: ApiConfig = http
        .get(&url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("cannot fetch {url}"))?
        .json()
        .await
        .with_context(|| format!("{url} is not a config document"))?;
    let own = policy.map(read_policy).transpose()?;
    let policy = document.policy(own.as_ref())?;
    let mut witness = match (&policy.transparency, log_state) {
        (Some(log), Some(path)) if path.exists() => {
            let note = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            hearth_transparency::Witness::with(Some(hearth_pcc::transparency::read_kept(
                &note, log,
            )?))
        }
        _ => hearth_transparency::Witness::default(),
    };
    let prepared = hearth_pcc::oblivious::prepare(
        &http,
        config,
        &document,
        policy,
        &mut witness,
        hearth_runtime::clock::since_epoch(),
    )
    .await?;
    for name in &prepared.unlogged {
        eprintln!("hearth-pcc: image `{name}` is not in the transparency log: not trusted");
    }
    if let (Some(path), Some(proofs)) = (log_state, &document.transparency) {
        std::fs::write(path, &proofs.checkpoint)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(ComputeClient::oblivious(
        prepared.link,
        prepared.policy,
        device,
    ))
}

async fn chat(
    question: Option<String>,
    router: String,
    config: Option<String>,
    policy: Option<PathBuf>,
    model: String,
    max_tokens: Option<u32>,
    log_state: Option<PathBuf>,
) -> anyhow::Result<bool> {
    let client = client(
        &router,
        config.as_deref(),
        policy.as_deref(),
        log_state.as_deref(),
    )
    .await?;
    let question = match question {
        Some(question) if question != "-" => question,
        _ => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text)?;
            text
        }
    };
    let request = ComputeRequest {
        model,
        messages: vec![ComputeMessage {
            role: "user".into(),
            content: question,
        }],
        max_tokens,
        temperature: None,
    };
    let mut reply = client
        .open(&request, hearth_runtime::clock::since_epoch())
        .await?;
    eprintln!("[node {}]", reply.node);
    while let Some(event) = reply.next().await {
        match event? {
            ReplyEvent::Delta { text } | ReplyEvent::Notice { text } => {
                print!("{text}");
                std::io::stdout().flush()?;
            }
            ReplyEvent::Done { .. } => println!(),
            ReplyEvent::Error { code, message } => {
                anyhow::bail!("the node could not answer: {code}: {message}")
            }
            ReplyEvent::Meta { model, .. } => eprintln!("[{model}]"),
            ReplyEvent::ToolCalls { .. } | ReplyEvent::Tool { .. } | ReplyEvent::Data { .. } => {}
        }
    }
    Ok(true)
}

fn log(command: LogCommand) -> anyhow::Result<bool> {
    use hearth_transparency::store;
    match command {
        LogCommand::Init { dir, origin } => {
            let verifier = store::init(&dir, &origin)?;
            println!("{verifier}");
            Ok(true)
        }
        LogCommand::AddImages { dir, policy } => {
            let entries = hearth_pcc::transparency::image_entries(&read_policy(&policy)?);
            let added = store::append(&dir, &entries)?;
            println!(
                "{} image(s) added, {} already logged",
                added.len(),
                entries.len() - added.len()
            );
            Ok(true)
        }
        LogCommand::AddKeys { dir, seeds_file } => {
            let text = std::fs::read_to_string(&seeds_file)
                .with_context(|| format!("cannot read {}", seeds_file.display()))?;
            let text = zeroize::Zeroizing::new(text);
            let seeds = hearth_ohttp::keys::parse_seeds(&text)
                .map_err(|error| anyhow::anyhow!("{}: {error}", seeds_file.display()))?;
            let entries: Vec<_> = seeds
                .iter()
                .map(|seed| {
                    hearth_pcc::transparency::key_entry(
                        &seed.config(),
                        seed.active_from,
                        seed.active_until,
                    )
                })
                .collect();
            let added = store::append(&dir, &entries)?;
            println!(
                "{} key(s) added, {} already logged",
                added.len(),
                entries.len() - added.len()
            );
            Ok(true)
        }
        LogCommand::Audit {
            config,
            log_key,
            origin,
            state,
        } => block_on(audit(config, log_key, origin, state)),
    }
}

/// `log audit`: everything the log holds, checked against its signed
/// checkpoint and against the checkpoint kept from the last audit.
async fn audit(
    config: String,
    log_key: String,
    origin: String,
    state: Option<PathBuf>,
) -> anyhow::Result<bool> {
    use hearth_transparency::merkle::{leaf_hash, root};
    let base = config.trim_end_matches('/').to_owned();
    let http = reqwest::Client::new();
    let verifier = hearth_transparency::Verifier::parse(&log_key)?;
    let note = http
        .get(format!("{base}/log/checkpoint"))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)?
        .text()
        .await?;
    let checkpoint = verifier.open(&note, &origin)?;
    let mut entries: Vec<String> = Vec::new();
    while (entries.len() as u64) < checkpoint.size {
        let batch: Vec<String> = http
            .get(format!(
                "{base}/log/entries?start={}&end={}",
                entries.len(),
                checkpoint.size
            ))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)?
            .json()
            .await?;
        anyhow::ensure!(
            !batch.is_empty(),
            "the log served no entries at {}",
            entries.len()
        );
        entries.extend(batch);
    }
    entries.truncate(usize::try_from(checkpoint.size)?);
    let leaves: Vec<_> = entries
        .iter()
        .map(|entry| leaf_hash(entry.as_bytes()))
        .collect();
    if root(&leaves) != checkpoint.root {
        println!("REFUSED: the entries served do not hash to the signed checkpoint's root");
        return Ok(false);
    }
    let log = hearth_attest::policy::Transparency { origin, log_key };
    let kept = match &state {
        Some(path) if path.exists() => Some(hearth_pcc::transparency::read_kept(
            &std::fs::read_to_string(path)?,
            &log,
        )?),
        _ => None,
    };
    let had_kept = kept.is_some();
    let mut witness = hearth_transparency::Witness::with(kept);
    let advanced = hearth_pcc::transparency::advance(&mut witness, &checkpoint, |first, second| {
        hearth_pcc::oblivious::consistency(&http, &base, first, second)
    })
    .await;
    match advanced {
        Ok(()) => {}
        Err(hearth_pcc::PccError::Protocol(error)) => {
            println!("REFUSED: {error}");
            return Ok(false);
        }
        Err(other) => return Err(other.into()),
    }
    for (index, entry) in entries.iter().enumerate() {
        println!("{index:>6}  {entry}");
    }
    println!(
        "log {} at {} entries, root {}: every entry checked, {}",
        checkpoint.origin,
        checkpoint.size,
        hex::encode(checkpoint.root),
        if had_kept {
            "consistent with the checkpoint kept"
        } else {
            "no earlier checkpoint kept"
        }
    );
    if let Some(path) = state {
        std::fs::write(&path, &note)?;
    }
    Ok(true)
}
