//! `hearth-enclave`: the private-compute node.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use hearth_enclave::evidence::{EvidenceSource, dev_pcrs};
use hearth_enclave::model::SpawnedModel;
use hearth_enclave::node::{ComputeNode, PROVIDER};
use hearth_enclave::server::{Registration, serve};
use hearth_enclave::vsock::Endpoint;
use hearth_llm::{Api, ModelRef, ProviderConfig};

/// Answers requests sealed to a key bound into attestation evidence.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Evidence {
    /// Inside an AWS Nitro Enclave: documents from /dev/nsm.
    Nitro,
    /// Inside an AMD SEV-SNP or Intel TDX confidential VM: reports or
    /// quotes through configfs-tsm.
    Tsm,
    /// Anywhere else: signed by a key made at start, refused by default
    /// client policies (tests and labs).
    Dev,
}

/// `serve`'s arguments.
#[derive(clap::Args)]
struct ServeArgs {
    /// This node's id at the router.
    #[arg(long)]
    node_id: String,
    /// Where to listen for the router: ADDRESS:PORT, or, inside an
    /// enclave, vsock:PORT behind `hearth-enclave proxy` on the parent
    /// (unix:PATH likewise, for tests).
    #[arg(long)]
    listen: Endpoint,
    /// The URL the router reaches this node at [default: http://LISTEN;
    /// needed with vsock or unix, where it is the parent's proxy].
    #[arg(long)]
    advertise: Option<String>,
    /// The router.
    #[arg(long)]
    router: String,
    /// Reach the router through this endpoint instead of the network
    /// (inside an enclave: vsock:3:PORT, the parent's `hearth-enclave
    /// proxy` to the router): --router's host and port are then only what
    /// the requests name.
    #[arg(long)]
    router_via: Option<Endpoint>,
    /// The router's node token.
    #[arg(long)]
    router_token_file: PathBuf,
    /// Where evidence comes from.
    #[arg(long, value_enum)]
    evidence: Evidence,
    /// With dev evidence, the label whose SHA-384 is stated as PCR2.
    #[arg(long, default_value = "hearth-enclave")]
    dev_image_label: String,
    /// With SEV-SNP evidence, a directory of AMD's certificates
    /// (vcek.der, ask.der, ark.der, and crl.der) for when the host
    /// hands none with the report.
    #[arg(long)]
    snp_certificates: Option<PathBuf>,
    /// With TDX evidence, the quote's collateral (JSON from Intel's
    /// PCS or a PCCS), kept current by the operator.
    #[arg(long)]
    tdx_collateral: Option<PathBuf>,
    /// The model server inside the trust boundary (llama-server's
    /// OpenAI API: http://127.0.0.1:8080/v1, or unix:/path.sock).
    #[arg(long, required_unless_present = "llama_server")]
    backend: Option<String>,
    /// Start this llama-server inside the node instead (on a private
    /// UNIX socket, stopped with the node): the compute image's way.
    #[arg(long, conflicts_with = "backend", requires = "llama_model")]
    llama_server: Option<PathBuf>,
    /// The GGUF model for --llama-server.
    #[arg(long, requires = "llama_server")]
    llama_model: Option<PathBuf>,
    /// A model it serves (repeat for more).
    #[arg(long = "model", required = true)]
    models: Vec<String>,
    /// Replies at once.
    #[arg(long, default_value_t = 4)]
    capacity: u32,
    /// Most tokens one reply may generate.
    #[arg(long, default_value_t = 1024)]
    max_tokens: u32,
    /// Seconds to wait for the model's first token.
    #[arg(long, default_value_t = 120)]
    timeout_seconds: u64,
}

#[derive(Subcommand)]
enum Command {
    /// Forward connections between TCP, vsock and UNIX sockets: on an
    /// enclave's parent, the router's connections into the enclave
    /// (--proxy-header) and the enclave's out to the router; inside, its
    /// loopback TCP out to the parent.
    Proxy {
        /// Where to accept: ADDRESS:PORT, vsock:PORT, unix:PATH.
        #[arg(long)]
        listen: Endpoint,
        /// Where to forward: ADDRESS:PORT, vsock:CID:PORT (the parent is
        /// CID 3, an enclave its own), unix:PATH.
        #[arg(long)]
        to: Endpoint,
        /// Begin each forwarded connection with a PROXY v2 header naming
        /// the client (for a node listening on vsock or unix).
        #[arg(long)]
        proxy_header: bool,
    },
    /// Run the node.
    Serve(Box<ServeArgs>),
}

fn main() -> ExitCode {
    let command = Cli::parse().command;
    if let Command::Proxy {
        listen,
        to,
        proxy_header,
    } = command
    {
        hearth_runtime::init("info");
        return hearth_runtime::run(hearth_runtime::Threads::PerCore, async move {
            hearth_enclave::vsock::run_proxy(
                listen,
                to,
                proxy_header,
                hearth_runtime::shutdown_signal(),
            )
            .await
        });
    }
    let Command::Serve(arguments) = command else {
        unreachable!("proxy returned above");
    };
    let ServeArgs {
        node_id,
        listen,
        advertise,
        router,
        router_via,
        router_token_file,
        evidence,
        dev_image_label,
        snp_certificates,
        tdx_collateral,
        backend,
        llama_server,
        llama_model,
        models,
        capacity,
        max_tokens,
        timeout_seconds,
    } = *arguments;
    hearth_runtime::init("info");
    hearth_runtime::run(hearth_runtime::Threads::PerCore, async move {
        if !hearth_attest::evidence::valid_node_id(&node_id) {
            anyhow::bail!("--node-id must be 1 to 64 letters, digits, '-' or '_'");
        }
        let token = hearth_files::token::read(&router_token_file)
            .with_context(|| format!("the router token {}", router_token_file.display()))?;
        let evidence = match evidence {
            Evidence::Nitro => EvidenceSource::nitro()?,
            Evidence::Tsm => EvidenceSource::tsm(snp_certificates, tdx_collateral)?,
            Evidence::Dev => {
                let executable = std::fs::read("/proc/self/exe")
                    .context("reading this executable to measure it")?;
                tracing::warn!("dev evidence: no hardware stands behind this node's attestation");
                EvidenceSource::dev(&node_id, dev_pcrs(&executable, &dev_image_label))?
            }
        };
        // Kept until the node stops; dropping it stops the model server.
        let spawned = match (&llama_server, &llama_model) {
            (Some(server), Some(model)) => {
                Some(SpawnedModel::start(server, model, capacity).await?)
            }
            _ => None,
        };
        let backend = match (&spawned, backend) {
            (Some(spawned), _) => spawned.backend(),
            (None, Some(backend)) => backend,
            (None, None) => anyhow::bail!("give --backend or --llama-server"),
        };
        let provider = ProviderConfig {
            id: PROVIDER.into(),
            api: Api::OpenAiCompletions,
            endpoints: vec![backend],
            timeout: Duration::from_secs(timeout_seconds.max(1)),
            connect_timeout: Duration::from_secs(5),
        };
        let chain = models
            .iter()
            .map(|model| ModelRef {
                provider: PROVIDER.into(),
                model: model.clone(),
            })
            .collect();
        let llm = hearth_llm::Router::new(vec![provider], chain)?;
        let node = Arc::new(ComputeNode::new(
            &node_id,
            evidence,
            llm,
            models,
            capacity.max(1),
            max_tokens.max(1),
            hearth_runtime::clock::unix_seconds(),
        ));
        // Through the parent: a loopback port of this process forwards to
        // the endpoint, and requests go there.
        let router = match router_via {
            None => router,
            Some(via) => {
                let (listener, address) = hearth_enclave::vsock::bind_loopback().await?;
                tokio::spawn(hearth_enclave::vsock::run_proxy_on(
                    listener,
                    via,
                    false,
                    std::future::pending(),
                ));
                let path = router
                    .split_once("://")
                    .and_then(|(_, rest)| rest.split_once('/'))
                    .map_or(String::new(), |(_, path)| format!("/{path}"));
                format!("http://{address}{path}")
            }
        };
        let registration = Registration {
            router: router.trim_end_matches('/').to_owned(),
            token,
            advertise: match (advertise, &listen) {
                (Some(advertise), _) => advertise,
                (None, Endpoint::Tcp(address)) => format!("http://{address}"),
                (None, _) => anyhow::bail!(
                    "--advertise is needed with {listen}: the parent's proxy address the router reaches"
                ),
            },
        };
        let served = serve(
            node,
            listen,
            registration,
            hearth_runtime::shutdown_signal(),
        )
        .await;
        drop(spawned);
        served
    })
}
