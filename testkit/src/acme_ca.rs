//! Let's Encrypt's test CA, Pebble (Debian's `pebble`), in a lab host: a
//! real ACME (RFC 8555) server that checks DNS-01 challenges by asking the
//! DNS server it is given, and issues from a root it makes at start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::lab::{Host, Lab, Process, require_tools};
use crate::wait_until;

/// A running Pebble.
pub struct Pebble {
    /// Its ACME directory URL.
    pub directory: String,
    /// The certificate its HTTPS listeners serve (made here), for clients
    /// of the CA to trust.
    pub tls_certificate: PathBuf,
    /// Its management address (`/roots/0`: the root it issues from).
    management: SocketAddr,
    /// The process (stopped with the lab).
    pub process: Process,
}

impl Pebble {
    /// The root Pebble issues certificates from (PEM), asked of its
    /// management interface from `host` (it is made anew at every start).
    pub fn root(&self, lab: &Lab, host: &Host) -> String {
        let output = lab.exec(
            host,
            &[
                "curl",
                "-sSf",
                "--cacert",
                self.tls_certificate.to_str().expect("a UTF-8 path"),
                &format!("https://{}/roots/0", self.management),
            ],
        );
        let pem = String::from_utf8(output.stdout).expect("PEM is text");
        assert!(pem.contains("BEGIN CERTIFICATE"), "Pebble's root: {pem}");
        pem
    }
}

/// Starts Pebble in `host` (ACME on port 14000, management on 15000),
/// checking DNS-01 challenges against the DNS server at `dns`; `None` (a
/// skip, a failure under `CI=true`) without it.
pub fn start(lab: &mut Lab, host: &Host, dns: SocketAddr) -> Option<Pebble> {
    start_with_validity(lab, host, dns, None)
}

/// [`start`], issuing certificates valid for `validity` seconds (Pebble's
/// own default, years, without).
pub fn start_with_validity(
    lab: &mut Lab,
    host: &Host,
    dns: SocketAddr,
    validity: Option<u64>,
) -> Option<Pebble> {
    require_tools(&["pebble", "curl"])?;
    let dir = lab.dir.path().join("pebble");
    std::fs::create_dir_all(&dir).expect("Pebble's directory");
    let (tls_certificate, key) = host.self_signed_certificate(&dir, "pebble");
    let listen = SocketAddr::from((host.address, 14000));
    let management = SocketAddr::from((host.address, 15000));
    let config = dir.join("pebble-config.json");
    let mut settings = serde_json::json!({"pebble": {
            "listenAddress": listen.to_string(),
            "managementListenAddress": management.to_string(),
            "certificate": tls_certificate,
            "privateKey": key,
            "httpPort": 5002,
            "tlsPort": 5001,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
    }});
    if let Some(seconds) = validity {
        settings["pebble"]["certificateValidityPeriod"] = seconds.into();
    }
    std::fs::write(&config, settings.to_string()).expect("Pebble's configuration");
    let mut command = lab.command(host, "pebble");
    command
        .arg("-config")
        .arg(&config)
        .args(["-dnsserver", &dns.to_string()])
        // No random wait before each check: the tests wait on states.
        .env("PEBBLE_VA_NOSLEEP", "1");
    let process = lab.spawn(host, "pebble", command);
    let pebble = Pebble {
        directory: format!("https://{listen}/dir"),
        tls_certificate,
        management,
        process,
    };
    // Ready: both its listeners answer.
    let answers = |url: &str| {
        lab.try_exec(
            host,
            &[
                "curl",
                "-sf",
                "--cacert",
                pebble.tls_certificate.to_str().expect("a UTF-8 path"),
                url,
            ],
        )
        .status
        .success()
    };
    wait_until(Duration::from_secs(30), || {
        answers(&pebble.directory) && answers(&format!("https://{management}/roots/0"))
    })
    .unwrap_or_else(|| panic!("Pebble did not start:\n{}", pebble.process.log_text()));
    Some(pebble)
}
