//! Hearth's AI gateway (`hearth-gateway`, port 18789).
//!
//! Chat requests arrive sealed with HPKE to the gateway's rotating key
//! ([`keys`], `hearth-e2ee`); every check happens before any model is called
//! ([`gateway::Gateway::precheck`], [`gateway::Gateway::admit_checked`]);
//! the reply streams back as SSE, each chunk sealed on its own. Sessions keep each (channel, device) conversation in
//! SQLite ([`sessions`]), fitted to the model's context ([`context`]) under a
//! persona from the workspace ([`persona`]). Models are reached through
//! `hearth-llm`'s router with failover. An OpenAI-compatible API serves
//! clients inside the mesh ([`api`]). Prompts and replies are never logged.

use std::time::Duration;

pub mod api;
pub mod config;
pub mod context;
pub mod gateway;
pub mod journal;
pub mod keys;
pub mod metrics;
pub mod persona;
pub mod server;
pub mod sessions;
pub mod token;

/// The model router for `config`.
pub fn build_router(config: &config::Config) -> Result<hearth_llm::Router, hearth_llm::SetupError> {
    let providers = config
        .models
        .providers
        .iter()
        .map(|(id, provider)| hearth_llm::ProviderConfig {
            id: id.clone(),
            api: provider.api,
            endpoints: provider.base_url.list(),
            timeout: Duration::from_secs(provider.timeout_seconds.max(1)),
            connect_timeout: Duration::from_secs(config.hearth.connect_timeout_seconds.max(1)),
        })
        .collect();
    let chain = config
        .chain()
        .iter()
        .map(|text| hearth_llm::ModelRef::parse(text))
        .collect::<Result<Vec<_>, _>>()?;
    hearth_llm::Router::new(providers, chain)
}
