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

pub mod access;
pub mod agents;
pub mod anthropic;
pub mod anthropic_http;
pub mod api;
pub mod assistant;
pub mod caller;
pub mod claw;
pub mod config;
pub mod context;
pub mod control_ui;
pub mod conversation;
pub mod doctor;
pub mod edge;
pub mod forwarded;
pub mod gateway;
pub mod journal;
pub mod keys;
pub mod metrics;
pub mod model_servers;
pub mod ollama;
pub mod ollama_http;
pub mod openai;
pub mod openai_http;
pub mod persona;
pub mod remote;
pub mod sealed;
pub mod server;
pub mod sessions;
pub mod slots;
pub mod speech_http;
pub mod usage;

/// The model router for `config`; reads the attestation policies of
/// `hearth-enclave` providers.
pub fn build_router(config: &config::Config) -> Result<hearth_llm::Router, hearth_llm::SetupError> {
    let mut providers = Vec::new();
    let mut policies = std::collections::HashMap::new();
    for (id, provider) in &config.models.providers {
        if let Some(path) = &provider.attestation_policy {
            policies.insert(id.clone(), read_policy(id, path)?);
        }
        providers.push(hearth_llm::ProviderConfig {
            id: id.clone(),
            api: provider.api,
            endpoints: provider.base_url.list(),
            timeout: Duration::from_secs(provider.timeout_seconds.max(1)),
            connect_timeout: Duration::from_secs(config.hearth.connect_timeout_seconds.max(1)),
        });
    }
    // Every chat model, the failover chain first: the gateway keeps replies
    // to that chain (`Config::failover_chain`), a model named by a caller
    // starts there.
    let chain = config
        .chat_models()
        .iter()
        .map(|text| hearth_llm::ModelRef::parse(text))
        .collect::<Result<Vec<_>, _>>()?;
    // The household's model servers, found on the mesh while they answer.
    let mesh = config.hearth.model_servers.as_ref().map(|servers| {
        let timeout = Duration::from_secs(servers.timeout_seconds.max(1));
        std::sync::Arc::new(hearth_llm::mesh::MeshModels::new(&servers.pool(), timeout))
    });
    hearth_llm::Router::with_mesh(
        providers,
        chain,
        &|url, provider| remote::endpoint(url, provider, policies.get(&provider.id)),
        mesh,
    )
}

fn read_policy(
    provider: &str,
    path: &std::path::Path,
) -> Result<hearth_attest::Policy, hearth_llm::SetupError> {
    let failed = |reason: String| hearth_llm::SetupError::Policy {
        provider: provider.to_owned(),
        reason: format!("{}: {reason}", path.display()),
    };
    let text = std::fs::read_to_string(path).map_err(|error| failed(error.to_string()))?;
    hearth_attest::Policy::parse(&text).map_err(|error| failed(error.to_string()))
}
