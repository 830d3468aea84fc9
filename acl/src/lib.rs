//! Hearth's policy engine.
//!
//! Policies are written in Tailscale's format. They compile to a
//! [`CompiledPolicy`] (rules over principals), which the [`Engine`] evaluates
//! incrementally over the tailnet's nodes to give each node its inbound
//! [`Filter`] and its peers. Everything here is pure: no IO, no clock.

pub mod alias;
mod bitset;
pub mod compiled;
pub mod document;
pub mod engine;
pub mod filter;
pub mod hujson;
pub mod node;
pub mod policy;
mod principals;
pub mod tailscale;

pub use compiled::{
    Capabilities, CompiledPolicy, NodeSshRule, Principal, Rule, RuleDestination, SshRule,
};
pub use engine::{Change, Engine, NodeUpdate};
pub use filter::{
    CapabilityRule, Destination, Filter, FilterRule, Packet, PeerIdentity, PortRange, Source,
    Target,
};
pub use node::{HostedService, NodeId, NodeIdentity};
pub use policy::{Policy, PolicyError, ProviderGroups, Topology};

/// Parses and validates policy text into what the engine evaluates (without
/// running its `tests`, which need a topology: see [`Policy::check_tests`]).
pub fn compile_text(text: &str) -> Result<CompiledPolicy, PolicyError> {
    Policy::parse(text).map(|policy| policy.compiled)
}
