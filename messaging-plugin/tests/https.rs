//! The chat over HTTPS at the hub's MagicDNS name, between network
//! namespaces: a real coordinator whose ACME path talks to a real ACME CA
//! (Pebble, Let's Encrypt's test server, in a host of its own, checking
//! the DNS-01 challenge against the coordinator's DNS server), the hub's
//! agent getting a certificate for its name with `hearth-agent cert` (its
//! key made on the hub), the messaging service serving it, and members'
//! devices over userspace WireGuard. Needs root; outside CI it skips
//! without.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use hearth_testkit::household::{HUB_NAME, Household, MESSAGING_PORT, Options, SECOND};
use hearth_testkit::{require_tools, wait_until};

/// How long the CA's certificates are valid in this test (seconds): the
/// agent renews them with a third left, while the test watches.
const VALIDITY: u64 = 60;

/// The serial number of the certificate `host` is served at the hub's name.
fn served_serial(household: &Household, host: &hearth_testkit::lab::Host) -> String {
    let script = format!(
        "openssl s_client -connect {HUB_NAME}:{MESSAGING_PORT} -servername {HUB_NAME} \
         </dev/null 2>/dev/null | openssl x509 -noout -serial"
    );
    let output = household.lab.exec(host, &["sh", "-c", &script]);
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// The serial number of the certificate in `file`.
fn file_serial(household: &Household, file: &std::path::Path) -> String {
    let output = household.lab.exec(
        &household.hub,
        &[
            "openssl",
            "x509",
            "-noout",
            "-serial",
            "-in",
            file.to_str().unwrap(),
        ],
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// The hub's agent gets a certificate for `hub.ts.home.example` from the
/// household's CA through the coordinator; the chat is served with it at
/// that name, which the laptop's MagicDNS answers; members are still known
/// by their devices (ada's laptop is ada, ben's phone is ben, as `whois`
/// through the hub's agent says); plain HTTP to the same port is redirected
/// to `https://`; the messaging CLI works over it; the agent renews the
/// certificate by itself with a third of its life left and the service
/// serves the new one without a restart. The key stays on the hub (0600).
#[test]
fn the_chat_is_served_over_https_at_the_hubs_name_and_its_certificate_renews_itself() {
    if require_tools(&["dig", "openssl", "curl", "pebble"]).is_none() {
        return;
    }
    let Some(household) = Household::start(Options {
        outsiders: false,
        https: Some(VALIDITY),
        ..Options::default()
    }) else {
        return;
    };
    let (laptop, phone) = (household.laptop.clone(), household.phone.clone());
    let (cert_file, key_file) = household.hub_certificate();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the key is the agent's alone");

    // The laptop's MagicDNS answers the hub's name with its mesh address.
    let answer = household.lab.exec(
        &laptop,
        &[
            "dig",
            "@100.100.100.100",
            "+short",
            "+time=2",
            HUB_NAME,
            "A",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&answer.stdout).trim(),
        household.hub_mesh.to_string()
    );

    // Each member is who their device says, over HTTPS at the name, with
    // the certificate checked against the household CA's root.
    let url = household.url();
    assert!(url.starts_with("https://"), "{url}");
    for (host, user) in [(&laptop, "ada"), (&phone, "ben")] {
        let output = household
            .curl(host)
            .args(["-f", &format!("{url}/api/me")])
            .output()
            .unwrap();
        let me: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
            panic!(
                "{}: {}\n{}",
                host.name,
                String::from_utf8_lossy(&output.stderr),
                household.messaging_log()
            )
        });
        assert_eq!(me["user"], user, "{me}");
    }
    // Without the CA's root the certificate is not trusted: it is the CA's,
    // not one the service made up.
    let untrusted = household
        .lab
        .command(&laptop, "curl")
        .args(["-sS", "-o", "/dev/null", &format!("{url}/api/me")])
        .output()
        .unwrap();
    assert!(!untrusted.status.success());

    // Plain HTTP to the same port: a permanent redirect to the same place
    // over HTTPS, and nothing else.
    let plain = format!("http://{HUB_NAME}:{MESSAGING_PORT}/api/rooms?x=1");
    let output = household
        .curl(&laptop)
        .args([
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
            &plain,
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("308 https://{HUB_NAME}:{MESSAGING_PORT}/api/rooms?x=1")
    );
    // A name the service does not answer to is refused, not redirected.
    let output = household
        .curl(&laptop)
        .args([
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "Host: evil.example",
            &format!("http://{}:{MESSAGING_PORT}/", household.hub_mesh),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "403");

    // The messaging CLI over HTTPS (and its live connection over wss).
    household.cli_ok(&laptop, &["send", "--room", "household", "over https"]);
    let history = household.history(&phone, "household", 5);
    assert!(history.contains("ada: over https"), "{history}");
    // A file shared from the CLI, and read back by ben over HTTPS.
    let notes = household.lab.dir.path().join("shopping.md");
    std::fs::write(&notes, "# Shopping\n\n- milk\n").unwrap();
    let said = household.cli_ok(
        &laptop,
        &["share", "--room", "household", notes.to_str().unwrap()],
    );
    assert!(said.starts_with("shared shopping.md as #"), "{said}");
    let history = household.history(&phone, "household", 5);
    assert!(
        history.contains("ada: \u{1f4ce} shopping.md (19 bytes, text/markdown; charset=utf-8)"),
        "{history}"
    );
    let id = said
        .trim_start_matches("shared shopping.md as #")
        .split_whitespace()
        .next()
        .unwrap();
    let output = household
        .curl(&phone)
        .arg(format!("{}/api/files/{id}", household.url()))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "# Shopping\n\n- milk\n"
    );

    // Renewal: the agent gets a new certificate with a third of its life
    // left; the service serves it from the next connection, unrestarted.
    let first = file_serial(&household, &cert_file);
    assert_eq!(served_serial(&household, &laptop), first);
    let mut renewed = first.clone();
    wait_until(Duration::from_secs(VALIDITY), || {
        renewed = file_serial(&household, &cert_file);
        renewed != first
    })
    .unwrap_or_else(|| {
        panic!(
            "the certificate was not renewed; hub agent:\n{}",
            household.hub_agent.process.log_text()
        )
    });
    let served = wait_until(10 * SECOND, || {
        served_serial(&household, &laptop) == renewed
    });
    assert!(
        served.is_some(),
        "the renewed certificate is not served: {}",
        household.messaging_log()
    );
    let output = household
        .curl(&laptop)
        .args(["-f", &format!("{url}/api/me")])
        .output()
        .unwrap();
    assert!(output.status.success());
}
