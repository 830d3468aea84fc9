//! `hearth-sandbox-probe [--write PATH]...`: reports, as one JSON object,
//! what the sandbox it runs in allows. Run inside a container (podman exec)
//! or under a unit's sandbox (systemd-run with the unit's properties) by the
//! deployment tests:
//!
//! - `cap_eff`, `no_new_privs`: this process's effective capabilities and
//!   no-new-privileges flag (from /proc/self/status), and PID 1's;
//! - `writes`: for each PATH, `ok` when a file could be created in it (and
//!   was removed again), else the error;
//! - `wx_memory`: whether memory both writable and executable can be mapped;
//! - `netlink`: whether a netlink socket can be opened.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;

use serde_json::{Value, json};

fn status_field(pid: &str, field: &str) -> Value {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                line.strip_prefix(&format!("{field}:"))
                    .map(|value| value.trim().to_owned())
            })
        })
        .map_or(Value::Null, Value::String)
}

fn try_write(dir: &str) -> String {
    let path = std::path::Path::new(dir).join(format!(".hearth-probe-{}", std::process::id()));
    match std::fs::write(&path, b"probe") {
        Ok(()) => {
            let _ = std::fs::remove_file(&path);
            "ok".into()
        }
        Err(error) => error.to_string(),
    }
}

fn last_error() -> String {
    std::io::Error::last_os_error().to_string()
}

#[allow(unsafe_code)] // the probe's job: ask the kernel directly
fn wx_memory() -> String {
    // SAFETY: an anonymous private mapping with no address hint; it is
    // unmapped at once and never touched.
    unsafe {
        let address = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if address == libc::MAP_FAILED {
            return last_error();
        }
        libc::munmap(address, 4096);
    }
    "ok".into()
}

#[allow(unsafe_code)] // the probe's job: ask the kernel directly
fn netlink() -> String {
    // SAFETY: opening and closing a socket has no memory effects.
    unsafe {
        let socket = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        );
        if socket < 0 {
            return last_error();
        }
        libc::close(socket);
    }
    "ok".into()
}

/// Reports what the sandbox it runs in allows, as JSON on stdout.
#[derive(clap::Parser)]
#[command(version)]
struct Cli {
    /// Try to write a file in this directory (may repeat).
    #[arg(long = "write", value_name = "PATH")]
    writes: Vec<String>,
}

fn main() {
    let cli = <Cli as clap::Parser>::parse();
    let writes: BTreeMap<String, String> = cli
        .writes
        .iter()
        .map(|path| (path.clone(), try_write(path)))
        .collect();
    let report = json!({
        "uid": status_field("self", "Uid"),
        "cap_eff": status_field("self", "CapEff"),
        "no_new_privs": status_field("self", "NoNewPrivs"),
        "pid1": {"cap_eff": status_field("1", "CapEff"), "no_new_privs": status_field("1", "NoNewPrivs")},
        "writes": writes,
        "wx_memory": wx_memory(),
        "netlink": netlink(),
    });
    println!("{report}");
}
