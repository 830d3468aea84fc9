//! Hearth's shared test harness.
//!
//! - [`lab`]: hosts in Linux network namespaces joined by a bridge, for
//!   end-to-end mesh tests that never touch the machine's own network.
//! - [`llama`]: a real `llama-server` (built from the llama.cpp sources
//!   vendored in `llama-cpp-python`) serving a tiny generated model, over TCP
//!   or a UNIX socket.
//! - [`control_plane`]: a coordinator process on loopback, its CLI, and
//!   devices registering and following their map (the coordinator's tests).
//! - [`gateway_process`]: the AI gateway on loopback, sealing, posting and
//!   opening replies (the gateway's tests).
//! - [`postgres`]: a real PostgreSQL server in a temporary directory, for
//!   the coordinator's tests under `HEARTH_TEST_DATABASE=postgres`.
//! - [`bench`]: order statistics and process usage for the benchmarks.
//! - [`research`]: the real data in `../shared/research` (read there, never
//!   copied into the project).
//! - [`compute`]: private compute between namespaces: a router, compute
//!   nodes with dev evidence and their own llama-servers, the policy.
//! - [`oblivious`]: the OHTTP gateway, relay and config server in a lab.
//! - [`openclaw`]: the real OpenClaw from npm: its docs' example
//!   configurations, its own verdict on them, its gateway for benchmarks.
//! - [`household`]: the whole household between namespaces (messaging's
//!   tests and the `hearth-household` demo).
//! - [`acme_ca`]: Let's Encrypt's test CA (Pebble) in a lab host.
//! - [`appliance`]: the hub's Debian packages built from this tree, set up
//!   in a [`machine`], and a phone reaching it through the mesh.
//! - [`machine`]: a whole Debian machine, systemd as PID 1 in a container
//!   over an overlay of this one, for installing Hearth's packages.
//! - [`identity_provider`]: a real OpenID Connect provider (npm's
//!   `oidc-provider`) in a lab host, for sign-in.
//! - [`ts2021`]: sessions of the Tailscale control protocol opened as the
//!   official client does, for tests that speak (or misbehave) inside them.
//! - [`standins`]: servers that stand in for things that cannot run here
//!   (Ollama, whose binary cannot be fetched), and scripted byte-level
//!   streams for edge cases no real server produces on demand. Every test
//!   using one says so by name.

pub mod acme_ca;
pub mod appliance;
pub mod bench;
pub mod compute;
pub mod control_plane;
pub mod gateway_process;
pub mod household;
pub mod identity_provider;
pub mod lab;
pub mod llama;
pub mod machine;
pub mod oblivious;
pub mod openclaw;
pub mod podman;
pub mod podman_hub;
pub mod postgres;
pub mod recall;
pub mod research;
pub mod speech;
pub mod standins;
pub mod terminal;
pub mod ts2021;
pub mod webdriver;

pub use lab::*;

/// A household's policy for Tailscale Services: alice's devices may reach
/// `svc:chat` on port 80; devices tagged `tag:hub` (alice's to tag) may
/// host it when they advertise it.
pub const CHAT_SERVICE_POLICY: &str = r#"{"tagOwners": {"tag:hub": ["alice@"]},
    "grants": [{"src": ["alice@"], "dst": ["svc:chat"], "ip": ["tcp:80"]}],
    "autoApprovers": {"services": {"svc:chat": ["tag:hub"]}}}"#;
