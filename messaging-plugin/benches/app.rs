//! The household app's first load and warm start over the mesh, against
//! OpenClaw's Control UI (the web app a household on OpenClaw would open,
//! from npm's `openclaw`, served in the same run by Hearth's gateway on the
//! same hub), both in a real headless Chromium on ada's laptop, between
//! network namespaces over userspace WireGuard.
//!
//! - first load: a new browser profile opens the app; the bytes that
//!   crossed the laptop's mesh interface (both ways: TLS, HTTP, the
//!   WebSocket's start), and the time from navigation to the page's load
//!   event and, for Hearth, to its live connection being open (usable);
//! - warm start: the same profile opened again, as an installed app is
//!   launched again (Hearth's shell comes from its service worker, the
//!   Control UI's from the HTTP cache); the median of three.
//!
//! Hearth's app is served over HTTPS at the hub's name (a certificate from
//! the household's ACME CA, Pebble), the Control UI over plain HTTP on the
//! gateway's port (as OpenClaw serves it on a LAN).
//!
//! `cargo bench -p hearth-messaging --bench app` (root; the lab's tools).
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use hearth_testkit::household::{Household, Options};
use hearth_testkit::webdriver::{self, Session};

/// Bytes the laptop's mesh interface has carried (received, sent).
fn mesh_bytes(household: &Household) -> u64 {
    let interface = &household.agents[0].interface;
    ["rx_bytes", "tx_bytes"]
        .iter()
        .map(|counter| {
            let output = household.lab.exec(
                &household.laptop,
                &[
                    "cat",
                    &format!("/sys/class/net/{interface}/statistics/{counter}"),
                ],
            );
            String::from_utf8_lossy(&output.stdout)
                .trim()
                .parse::<u64>()
                .unwrap()
        })
        .sum()
}

/// One opening of `url` in the profile `profile`: bytes over the mesh, ms
/// to the load event, ms to usable (`ready`: a script true once it is).
fn open(
    household: &Household,
    port: u16,
    profile: &Path,
    url: &str,
    ready: &str,
    usable: &str,
) -> (u64, f64, f64) {
    let browser = Session::chromium(port, profile, 1280, 800).unwrap();
    let before = mesh_bytes(household);
    browser.open(url).unwrap();
    browser.wait_for(ready, Duration::from_secs(30)).unwrap();
    let load = browser
        .script("return performance.getEntriesByType('navigation')[0].loadEventEnd")
        .unwrap()
        .as_f64()
        .unwrap();
    let usable = browser.script(usable).unwrap().as_f64().unwrap_or(load);
    // Let the page's own start-up requests finish before counting.
    browser
        .wait_for(
            "return performance.getEntriesByType('resource').every(r => r.responseEnd > 0)",
            Duration::from_secs(10),
        )
        .unwrap();
    let bytes = mesh_bytes(household) - before;
    drop(browser);
    (bytes, load, usable)
}

fn median(mut values: Vec<(u64, f64, f64)>) -> (u64, f64, f64) {
    values.sort_by(|a, b| a.2.total_cmp(&b.2));
    values[values.len() / 2]
}

fn main() {
    let Some(openclaw) = hearth_testkit::openclaw::install() else {
        return;
    };
    let Some(mut household) = Household::start(Options {
        outsiders: false,
        https: Some(0),
        gateway_on_mesh: true,
        control_ui: Some(openclaw.package().join("dist/control-ui")),
        ..Options::default()
    }) else {
        return;
    };
    household.start_messaging();
    let laptop = household.laptop.clone();
    let driver = webdriver::start_driver(&mut household.lab, &laptop);
    driver.trust(&household.authority.as_ref().unwrap().root);
    let profiles = household.lab.dir.path().join("bench-profiles");
    let hearth = format!("{}/", household.url());
    let control_ui = format!("http://{}:18789/", household.hub_mesh);
    let connected =
        "return ['connected', '연결됨'].includes(document.getElementById('status').textContent)";
    let controlled = format!("{connected} && !!navigator.serviceWorker.controller");
    let loaded = "return document.readyState === 'complete' && document.body.innerText.length > 0";
    // Each app: its URL, when its first and later starts are ready, and
    // when it was usable.
    let apps = [
        (
            "Hearth's household app",
            hearth.as_str(),
            connected,
            controlled.as_str(),
            "const mark = performance.getEntriesByName('hearth-connected')[0]; return mark ? mark.startTime : null",
        ),
        (
            "OpenClaw's Control UI",
            control_ui.as_str(),
            loaded,
            loaded,
            "return null",
        ),
    ];
    let mut rows = Vec::new();
    for (name, url, first_ready, warm_ready, usable) in apps {
        let profile = profiles.join(name.replace(['\'', ' '], "-"));
        // The first load installs Hearth's worker, which controls the app
        // from the next start on (what the warm starts wait for).
        let first = open(
            &household,
            driver.forward.port,
            &profile,
            url,
            first_ready,
            usable,
        );
        let warm = median(
            (0..3)
                .map(|_| {
                    open(
                        &household,
                        driver.forward.port,
                        &profile,
                        url,
                        warm_ready,
                        usable,
                    )
                })
                .collect(),
        );
        rows.push((name, first, warm));
    }
    println!(
        "| app | first load: bytes over the mesh | load event | usable | warm start: bytes | load event | usable |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, first, warm) in &rows {
        println!(
            "| {name} | {:.1} KiB | {:.0} ms | {:.0} ms | {:.1} KiB | {:.0} ms | {:.0} ms |",
            first.0 as f64 / 1024.0,
            first.1,
            first.2,
            warm.0 as f64 / 1024.0,
            warm.1,
            warm.2
        );
    }
    let (hearth_row, peer_row) = (&rows[0], &rows[1]);
    println!(
        "Control UI / Hearth: first load bytes {:.1}x, warm start bytes {:.1}x; load event first {:.1}x, warm {:.1}x",
        peer_row.1.0 as f64 / hearth_row.1.0 as f64,
        peer_row.2.0 as f64 / hearth_row.2.0.max(1) as f64,
        peer_row.1.1 / hearth_row.1.1,
        peer_row.2.1 / hearth_row.2.1,
    );
}
