//! Why the gateway reads past a key of OpenClaw's configuration: each
//! OpenClaw section or key Hearth does not implement, with the reason a
//! household is told at start. A key that is neither OpenClaw's (as far as
//! Hearth knows) nor Hearth's is noted too, never fatal, since OpenClaw's
//! schema grows with every release.

/// OpenClaw's top-level sections (its configuration reference), and why
/// Hearth's gateway does not use the ones it does not implement (`None`:
/// implemented).
const SECTIONS: &[(&str, Option<&str>)] = &[
    ("$schema", Some("an editor hint")),
    (
        "meta",
        Some("OpenClaw's own bookkeeping of who last wrote the file"),
    ),
    ("env", None),
    ("secrets", None),
    ("gateway", None),
    ("models", None),
    ("agents", None),
    ("wizard", Some("OpenClaw's onboarding state")),
    (
        "diagnostics",
        Some("Hearth logs to journald or stderr (HEARTH_LOG)"),
    ),
    (
        "logging",
        Some("Hearth logs to journald or stderr (HEARTH_LOG)"),
    ),
    (
        "update",
        Some("Hearth is updated by its package or image, not by itself"),
    ),
    ("telemetry", Some("Hearth sends no telemetry")),
    ("browser", Some("Hearth runs no browser automation")),
    (
        "ui",
        Some("Hearth serves no Control UI; the household page is hearth-messaging's"),
    ),
    (
        "auth",
        Some("OpenClaw's hosted-provider sign-ins: Hearth uses no hosted provider"),
    ),
    (
        "accessGroups",
        Some("Hearth's access is the mesh policy (hearth-coordinator)"),
    ),
    ("acp", Some("Hearth runs no coding agents")),
    (
        "nodeHost",
        Some("Hearth's devices are mesh nodes (hearth-agent)"),
    ),
    ("worktreeRoot", Some("Hearth runs no coding agents")),
    ("worktreeAcceleration", Some("Hearth runs no coding agents")),
    (
        "tools",
        Some("Hearth's assistant offers its own household tools (hearth.assistant.tools)"),
    ),
    (
        "security",
        Some("Hearth's security settings are its own (the mesh policy, the hearth section)"),
    ),
    ("bindings", Some("channels are hearth-messaging's rooms")),
    ("broadcast", Some("channels are hearth-messaging's rooms")),
    ("attachments", Some("Hearth's chat carries text")),
    ("messages", Some("channels are hearth-messaging's rooms")),
    (
        "tts",
        Some(
            "the hub makes no speech: replies are read aloud by the device's own voices (tts.speak says so)",
        ),
    ),
    ("commands", Some("channels are hearth-messaging's rooms")),
    (
        "approvals",
        Some("Hearth runs no agent tools that would need approval"),
    ),
    (
        "session",
        Some("Hearth keeps a session per channel and device (hearth.dataDir)"),
    ),
    ("cron", None),
    (
        "transcripts",
        Some("Hearth keeps sessions, not transcripts"),
    ),
    ("hooks", Some("Hearth runs no hooks")),
    (
        "channels",
        Some("hearth-messaging carries the household's rooms and DMs"),
    ),
    (
        "discovery",
        Some("Hearth's devices find each other through the mesh"),
    ),
    (
        "talk",
        Some(
            "Hearth has no realtime voice: members hold to talk in the household app and the hub hears them (hearth.speech)",
        ),
    ),
    ("cloudWorkers", Some("Hearth keeps everything in the house")),
    ("desktop", Some("Hearth has no desktop app of its own")),
    ("memory", None),
    ("mcp", Some("Hearth's gateway runs no MCP servers")),
    ("skills", Some("Hearth runs no skills")),
    ("plugins", Some("Hearth runs no plugins")),
    ("surfaces", Some("Hearth serves no Control UI")),
    (
        "proxy",
        Some("Hearth's gateway makes no outbound requests but to its models"),
    ),
];

/// Whether `key` is a top-level section of OpenClaw's configuration.
pub fn known_section(key: &str) -> bool {
    SECTIONS.iter().any(|(name, _)| *name == key)
}

/// Keys inside the sections Hearth implements that it does not use, and why.
const KEYS: &[(&str, &str)] = &[
    (
        "gateway.publicOrigin",
        "Hearth serves no Control UI or OAuth callback",
    ),
    ("gateway.portals", "Hearth serves no Control UI"),
    (
        "gateway.controlUi",
        "Hearth serves no Control UI; the household page is hearth-messaging's",
    ),
    ("gateway.cliAgents", "Hearth serves no Control UI"),
    ("gateway.terminal", "Hearth opens no terminal"),
    (
        "gateway.roles",
        "callers are the mesh's members (hearth.agentSocket) or the token's holder",
    ),
    (
        "gateway.trustedProxies",
        "Hearth trusts no proxy headers: callers are known by the mesh or the token",
    ),
    (
        "gateway.allowRealIpFallback",
        "Hearth trusts no proxy headers",
    ),
    (
        "gateway.tools",
        "Hearth's assistant offers its own household tools (hearth.assistant.tools)",
    ),
    (
        "gateway.tailscale",
        "the mesh replaces Tailscale Serve and Funnel: use bind \"tailnet\"",
    ),
    ("gateway.remote", "settings of a client of a remote gateway"),
    (
        "gateway.reload",
        "Hearth reads its configuration at start (restart to apply changes)",
    ),
    (
        "gateway.tls",
        "the mesh (WireGuard) encrypts every connection; chat is end-to-end sealed too",
    ),
    ("gateway.push", "Hearth sends no push notifications"),
    (
        "gateway.nodes",
        "Hearth's devices are mesh nodes (hearth-agent)",
    ),
    (
        "gateway.auth.allowTailscale",
        "mesh callers are named by hearth.agentSocket",
    ),
    (
        "gateway.auth.identityScopes",
        "callers are the mesh's members or the token's holder",
    ),
    (
        "gateway.auth.rateLimit",
        "Hearth limits every caller (hearth.limits)",
    ),
    (
        "gateway.auth.trustedProxy",
        "Hearth trusts no proxy headers",
    ),
    (
        "gateway.http.endpoints.chatCompletions.images",
        "Hearth's chat carries text",
    ),
    (
        "gateway.http.securityHeaders",
        "Hearth sets its own headers",
    ),
    (
        "models.mode",
        "Hearth has no built-in catalog to merge with: the configured providers are all there is",
    ),
    ("models.catalogRefresh", "Hearth fetches no model catalog"),
    (
        "agents.ownership",
        "agents are the household's personas here",
    ),
];

/// Why the key at `path` is not used.
pub fn reason(path: &str) -> String {
    if let Some((_, why)) = SECTIONS
        .iter()
        .find(|(name, why)| *name == path && why.is_some())
    {
        return format!("ignored: {}", why.unwrap_or_default());
    }
    if let Some((_, why)) = KEYS
        .iter()
        .find(|(key, _)| path == *key || path.starts_with(&format!("{key}.")))
    {
        return format!("ignored: {why}");
    }
    if path.starts_with("models.providers.") && path.contains(".models[") {
        return "ignored: a model setting Hearth's gateway does not use".into();
    }
    if path.starts_with("models.providers.") {
        return "ignored: a provider setting Hearth's gateway does not use".into();
    }
    if path.starts_with("agents.") {
        return "ignored: an agent setting Hearth's gateway does not use".into();
    }
    "ignored: not a setting Hearth's gateway uses".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ignored_key_says_why() {
        assert_eq!(
            reason("channels"),
            "ignored: hearth-messaging carries the household's rooms and DMs"
        );
        assert!(reason("gateway.controlUi.basePath").contains("Control UI"));
        assert!(reason("models.providers.x.models[0].cost").contains("model setting"));
        assert!(reason("gateway.whatever").starts_with("ignored: "));
        assert!(known_section("cron") && known_section("gateway") && !known_section("bogus"));
    }
}
