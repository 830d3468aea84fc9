//! `hearth`: parses the command line and calls the library.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use hearth_hub::layout::Layout;

/// Hearth's hub: set it up, see how it is doing, back it up.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The hub lives in Podman alone (no systemd): its services are one
    /// pod's containers, asked through the Podman service's socket. The
    /// hub's image sets it (HEARTH_PODMAN=true).
    #[arg(long, global = true, env = "HEARTH_PODMAN")]
    podman: bool,
    /// The Podman service's socket.
    #[arg(
        long,
        global = true,
        env = "HEARTH_PODMAN_SOCKET",
        default_value = "/run/podman/podman.sock"
    )]
    podman_socket: PathBuf,
    /// The hub's pod in Podman (its containers' and volumes' names begin
    /// with it).
    #[arg(long, global = true, env = "HEARTH_POD", default_value = "hearth")]
    pod: String,
    /// The Podman network the hub's pod plays on [default: the pod's name].
    #[arg(long, global = true, env = "HEARTH_PODMAN_NETWORK")]
    podman_network: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Set up this hub (after `apt install ./hearth_*.deb`): asks what it
    /// needs (or takes each answer as a flag), then starts everything and
    /// prints the first member's join key. Running it again changes nothing
    /// that works.
    Setup(SetupArgs),
    /// How the whole hub is doing: services, the model, devices,
    /// certificates and keys, disk, backups. Exit status 1 when something
    /// needs the admin.
    Status {
        /// `text` or `json`.
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        output: String,
        /// `en` or `ko` [default: the household's, as setup recorded it].
        #[arg(long)]
        lang: Option<String>,
    },
    /// Write the whole hub (coordinator, agent, gateway keys, sessions,
    /// memory, reminders, messages, configuration) to FILE while it runs;
    /// 0600, never overwritten. Authenticated with this hub's backup key,
    /// or with a passphrase (what a restore on another machine needs).
    Backup {
        file: PathBuf,
        /// A file whose first line is the passphrase that seals the
        /// backup (at least 10 characters; never given on the command line).
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
    /// Put a backup back: checks it is authentic and whole, stops the hub,
    /// keeps what was here beside its place, restores, starts the hub.
    Restore {
        file: PathBuf,
        /// The passphrase the backup was sealed with, in a file.
        #[arg(long, conflicts_with = "key_file")]
        passphrase_file: Option<PathBuf>,
        /// The backup key of the hub that made it (its
        /// /var/lib/hearth-hub/backup.key), on another machine.
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// Replace this hub even when it changed after the backup was
        /// made (otherwise asked at the terminal, or refused without one).
        #[arg(long)]
        yes: bool,
    },
    /// The household's people: list them, or add one with a key for
    /// their first device.
    Members {
        #[command(subcommand)]
        command: Option<MembersCommand>,
    },
    /// A key for one more device of a member (one device, valid 7 days).
    Invite {
        /// The member.
        name: String,
        /// The device waits for `hearth devices approve` after joining.
        #[arg(long)]
        needs_approval: bool,
    },
    /// The household's devices: list them (waiting ones say `pending`),
    /// approve, remove, rename or expire one.
    Devices {
        #[command(subcommand)]
        command: Option<DevicesCommand>,
    },
    /// The gateway and messaging pod.
    #[command(subcommand)]
    Pod(PodCommand),
    /// Runs one of the hub's services in this process's place, as its unit
    /// would (the containers of the hub in Podman alone).
    #[command(hide = true)]
    Service {
        /// `coordinator` or `agent`.
        service: hearth_hub::launch::Service,
    },
}

#[derive(Subcommand)]
enum MembersCommand {
    /// Every member, one a line.
    List,
    /// A new member, and a key for their first device (pre-approved).
    Add {
        /// Their user name.
        name: String,
        /// The device waits for `hearth devices approve` after joining.
        #[arg(long)]
        needs_approval: bool,
    },
}

#[derive(Subcommand)]
enum DevicesCommand {
    /// Every device [the default].
    List {
        /// `text` or `json`.
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        output: String,
    },
    /// Let a waiting device in.
    Approve { id: u64 },
    /// Take a device out of the household for good.
    Remove { id: u64 },
    /// Give a device another name.
    Rename { id: u64, name: String },
    /// Take a device out of the mesh until it is approved again.
    Expire { id: u64 },
}

#[derive(Args)]
struct SetupArgs {
    /// The household's name.
    #[arg(long)]
    household: Option<String>,
    /// Where members' devices reach this hub: https://HOST[:PORT].
    #[arg(long)]
    url: Option<String>,
    /// The first admin's user name (also the first member).
    #[arg(long)]
    admin: Option<String>,
    /// `default` (the hearth-model-smollm2 package's), `ollama` or
    /// `ollama:NAME` (an Ollama at 127.0.0.1:11434), or a GGUF file.
    #[arg(long)]
    model: Option<String>,
    /// A port for official Tailscale apps that cannot trust the hub's own
    /// certificate (the control protocol over plain HTTP, inside its own
    /// encryption), or `off` [default: 80].
    #[arg(long)]
    http_port: Option<String>,
    /// This hub's name in the mesh [default: the machine's].
    #[arg(long)]
    hostname: Option<String>,
    /// Whether members' apps (Open WebUI, an Ollama app, the OpenAI or
    /// Anthropic SDKs) may use the hub as their Ollama and OpenAI server,
    /// on the mesh only: `yes` or `no` [default: the last run's, else yes].
    #[arg(long)]
    apps: Option<String>,
    /// The household's language, `en` or `ko`: what setup and `hearth
    /// status` speak and the assistant's persona is written in [default:
    /// the last run's, else asked, offering the system's locale].
    #[arg(long)]
    lang: Option<String>,
    /// Ask nothing: a missing answer is an error.
    #[arg(long)]
    non_interactive: bool,
}

#[derive(Subcommand)]
enum PodCommand {
    /// Fill in the pod's template for this hub (what hearth-pod.service plays).
    Render(Box<RenderArgs>),
}

#[derive(Args)]
struct RenderArgs {
    /// Where to write it.
    #[arg(long, default_value = "/run/hearth/hearth-pod.yaml")]
    output: PathBuf,
    /// Seconds to wait for the hub agent's mesh address.
    #[arg(long, default_value_t = 60)]
    wait: u64,
    /// The template [default: /usr/share/hearth/hearth-pod.yaml].
    #[arg(long)]
    template: Option<PathBuf>,
    /// The pod's name [default: hearth].
    #[arg(long)]
    pod: Option<String>,
    /// The mesh address to publish on [default: the hub agent's].
    #[arg(long)]
    mesh_address: Option<Ipv4Addr>,
    /// The sockets' group, a name or an id [default: hearth-inference].
    #[arg(long)]
    group: Option<String>,
    /// An admin of the household's rooms [default: setup's].
    #[arg(long)]
    admin: Option<String>,
    /// Publish the gateway's ports for members' apps, `yes` or `no`
    /// [default: setup's answer].
    #[arg(long)]
    apps: Option<String>,
    /// The gateway's image [default: the installed package's].
    #[arg(long)]
    gateway_image: Option<String>,
    /// The messaging service's image [default: the installed package's].
    #[arg(long)]
    messaging_image: Option<String>,
    /// The gateway's configuration folder.
    #[arg(long)]
    gateway_config: Option<PathBuf>,
    /// The messaging service's configuration folder.
    #[arg(long)]
    messaging_config: Option<PathBuf>,
    /// The assistant's persona files.
    #[arg(long)]
    workspace: Option<PathBuf>,
    /// The household's documents.
    #[arg(long)]
    documents: Option<PathBuf>,
    /// The model's socket's folder.
    #[arg(long)]
    inference: Option<PathBuf>,
    /// The agent's whois socket's folder.
    #[arg(long)]
    whois: Option<PathBuf>,
    /// The gateway's data folder.
    #[arg(long)]
    gateway_data: Option<PathBuf>,
    /// The messaging service's data folder.
    #[arg(long)]
    messaging_data: Option<PathBuf>,
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let layout = Layout::system();
    hearth_hub::steps::use_language(hearth_hub::record::household_language(&layout));
    if cli.podman {
        use hearth_hub::manager::{Manager, PodHub, use_manager};
        use_manager(Manager::Podman(PodHub {
            api: hearth_hub::podman::Podman::at(cli.podman_socket.clone()),
            network: cli
                .podman_network
                .clone()
                .unwrap_or_else(|| cli.pod.clone()),
            pod: cli.pod.clone(),
            layout: layout.clone(),
        }));
    }
    match cli.command {
        Command::Service { service } => {
            hearth_hub::launch::run(&layout, service)?;
        }
        Command::Members { command } => {
            use hearth_hub::members;
            let text = match command.unwrap_or(MembersCommand::List) {
                MembersCommand::List => members::list(&layout)?,
                MembersCommand::Add {
                    name,
                    needs_approval,
                } => members::add(&layout, &name, needs_approval)?,
            };
            print!("{text}");
        }
        Command::Invite {
            name,
            needs_approval,
        } => print!(
            "{}",
            hearth_hub::members::invite(&layout, &name, needs_approval)?
        ),
        Command::Devices { command } => {
            use hearth_hub::members::DeviceAction;
            let action = match command.unwrap_or(DevicesCommand::List {
                output: "text".into(),
            }) {
                DevicesCommand::List { output } => DeviceAction::List {
                    json: output == "json",
                },
                DevicesCommand::Approve { id } => DeviceAction::Approve(id),
                DevicesCommand::Remove { id } => DeviceAction::Remove(id),
                DevicesCommand::Rename { id, name } => DeviceAction::Rename(id, name),
                DevicesCommand::Expire { id } => DeviceAction::Expire(id),
            };
            print!("{}", hearth_hub::members::devices(&layout, &action)?);
        }
        Command::Setup(args) => {
            let flags = hearth_hub::setup::Flags {
                household: args.household,
                url: args.url,
                admin: args.admin,
                model: args.model,
                http_port: args.http_port,
                hostname: args.hostname,
                apps: args.apps,
                lang: args.lang,
                non_interactive: args.non_interactive,
            };
            hearth_hub::setup::run(&layout, flags)?;
        }
        Command::Status { output, lang } => {
            let language = lang
                .as_deref()
                .map(hearth_hub::answers::parse_language)
                .transpose()?;
            if !hearth_hub::status::run(&layout, output == "json", language)? {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Backup {
            file,
            passphrase_file,
        } => {
            use hearth_hub::backup::{Seal, read_passphrase};
            let seal = match &passphrase_file {
                Some(path) => Seal::Passphrase(read_passphrase(path)?),
                None => Seal::HubKey,
            };
            use hearth_hub::steps::{Step, announce};
            let manifest = hearth_hub::backup::backup(&layout, &file, &seal)?;
            announce(Step::BackupWritten {
                file: &file,
                entries: manifest.entries.len() + 2,
            });
            if passphrase_file.is_none() {
                announce(Step::SealedWithHubKey(&layout.backup_key()));
            }
        }
        Command::Restore {
            file,
            passphrase_file,
            key_file,
            yes,
        } => {
            use hearth_hub::backup::{Confirm, Opening, read_passphrase};
            let opening = match passphrase_file {
                Some(path) => Opening::Passphrase(read_passphrase(&path)?),
                None => Opening::HubKey(key_file),
            };
            let confirm = if yes { Confirm::Yes } else { Confirm::Ask };
            hearth_hub::backup::restore(&layout, &file, &opening, confirm)?;
        }
        Command::Pod(PodCommand::Render(args)) => {
            let overrides = hearth_hub::pod::Overrides {
                template: args.template,
                pod: args.pod,
                mesh_address: args.mesh_address,
                group: args.group,
                admin: args.admin,
                apps: args
                    .apps
                    .as_deref()
                    .map(hearth_hub::answers::parse_yes_no)
                    .transpose()?,
                gateway_image: args.gateway_image,
                messaging_image: args.messaging_image,
                gateway_config: args.gateway_config,
                messaging_config: args.messaging_config,
                workspace: args.workspace,
                documents: args.documents,
                inference: args.inference,
                whois: args.whois,
                gateway_data: args.gateway_data,
                messaging_data: args.messaging_data,
            };
            hearth_hub::pod::render_file(
                &layout,
                overrides,
                &args.output,
                Duration::from_secs(args.wait),
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("hearth: {error:#}");
            ExitCode::from(2)
        }
    }
}
