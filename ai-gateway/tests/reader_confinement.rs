//! Issue 41's review of the PDF reader's confinement: its system call
//! filter was a denylist whose default was allow, and code running inside
//! the reader (a parser exploit's stand-in) used io_uring to open files and
//! connect out, `open_by_handle_at` to open a file, `tgkill` and
//! `pidfd_send_signal` to kill the gateway, `pidfd_getfd` to take the
//! gateway's descriptors, and `clone` to start a process.
//!
//! Each attack runs in a child process of this test (this same program,
//! `attack NAME`): once unconfined, where it must work (so the machine
//! allows it at all and the test shows something), then confined exactly
//! as `hearth-gateway extract` confines itself, where it must not: the
//! child is killed by the filter or refused. A confined reader still reads
//! a PDF, and sees an empty filesystem where namespaces allow.
//! A test harness of its own (`harness = false`): the children must be
//! processes with one thread, as the reader is.

#![allow(unsafe_code)] // the attacks call the kernel directly, as an exploit would
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
#![allow(clippy::print_stdout)] // the children report on standard output

use std::io::Read as _;
use std::os::fd::AsRawFd as _;
use std::os::unix::process::ExitStatusExt as _;
use std::process::{Command, Stdio};

const ATTACKS: [&str; 8] = [
    "io_uring",
    "open_by_handle_at",
    "tgkill",
    "pidfd_send_signal",
    "pidfd_getfd",
    "clone",
    "connect",
    "open",
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("attack") => child(
            &args[2],
            args.get(3).map(String::as_str) == Some("confined"),
        ),
        Some("read-pdf") => read_pdf(),
        Some("empty-filesystem") => empty_filesystem(),
        _ => parent(),
    }
}

/// What the parent gives its children to attack.
struct Targets {
    secret: std::path::PathBuf,
    secret_file: std::fs::File,
    listener: std::net::TcpListener,
}

fn parent() {
    if !rustix::process::geteuid().is_root() {
        if std::env::var_os("CI").is_some() {
            panic!("the reader's confinement test needs root (open_by_handle_at)");
        }
        println!("reader_confinement: skipped (needs root)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "CANARY-SECRET").unwrap();
    let targets = Targets {
        secret_file: std::fs::File::open(&secret).unwrap(),
        secret,
        listener: std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
    };
    let mut failures = Vec::new();
    for attack in ATTACKS {
        let control = run(attack, false, &targets);
        if !control.reached {
            failures.push(format!(
                "{attack}: it does not work even unconfined here, so the test shows nothing: {}",
                control.said
            ));
            continue;
        }
        let confined = run(attack, true, &targets);
        if confined.reached {
            failures.push(format!(
                "{attack}: the confined reader did it: {}",
                confined.said
            ));
        } else {
            println!("{attack}: unconfined it works; confined: {}", confined.said);
        }
    }
    let pdf = Command::new(std::env::current_exe().unwrap())
        .arg("read-pdf")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&pdf.stdout);
    if !pdf.status.success() || !said.contains("hold the red button") {
        failures.push(format!(
            "a confined reader no longer reads a PDF: {:?} {said}",
            pdf.status
        ));
    }
    let listing = Command::new(std::env::current_exe().unwrap())
        .arg("empty-filesystem")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&listing.stdout).trim().to_owned();
    if said != "entries at / : 0" {
        failures.push(format!("the reader's filesystem is not empty: {said}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    println!("reader_confinement: {} attacks stopped; ok", ATTACKS.len());
}

/// How an attack went.
struct Outcome {
    reached: bool,
    said: String,
}

fn run(attack: &str, confined: bool, targets: &Targets) -> Outcome {
    // A process the attack tries to kill: the gateway's stand-in.
    let mut victim = Command::new("sleep")
        .arg("60")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["attack", attack])
        .arg(if confined { "confined" } else { "unconfined" })
        .env("ATTACK_SECRET", &targets.secret)
        .env(
            "ATTACK_PARENT_FD",
            targets.secret_file.as_raw_fd().to_string(),
        )
        .env("ATTACK_VICTIM", victim.id().to_string())
        .env(
            "ATTACK_PORT",
            targets.listener.local_addr().unwrap().port().to_string(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let output = command.output().unwrap();
    let victim_alive = victim.try_wait().unwrap().is_none();
    let _ = victim.kill();
    let _ = victim.wait();
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let killed_by_filter = output.status.signal() == Some(libc::SIGSYS);
    let reached = stdout.starts_with("REACHED") || !victim_alive;
    let said = if killed_by_filter {
        "killed by the system call filter".to_owned()
    } else {
        format!(
            "{stdout} (status {:?}, victim {}) {}",
            output.status,
            if victim_alive { "alive" } else { "killed" },
            String::from_utf8_lossy(&output.stderr).trim()
        )
    };
    Outcome { reached, said }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap()
}

fn report(attack: &str, result: Result<String, String>) {
    match result {
        Ok(what) => println!("REACHED {attack}: {what}"),
        Err(why) => println!("STOPPED {attack}: {why}"),
    }
}

fn errno() -> String {
    std::io::Error::last_os_error().to_string()
}

/// Confines this process as the reader does, then tries `attack`.
fn child(attack: &str, confined: bool) {
    let secret = env("ATTACK_SECRET");
    // What an exploit inside the reader would find already open or known.
    let mount = std::fs::File::open("/").unwrap();
    let handle = handle_of(&secret);
    if confined {
        hearth_gateway::assistant::library::confine_reader().unwrap();
    }
    let result = match attack {
        "io_uring" => {
            let mut params = [0u8; 120];
            // SAFETY: io_uring_setup with a zeroed parameter block of its size.
            let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 8, params.as_mut_ptr()) };
            if fd >= 0 {
                Ok(format!("an io_uring ({fd}) to open and connect through"))
            } else {
                Err(errno())
            }
        }
        "open_by_handle_at" => {
            let Some(mut handle) = handle else {
                return report(attack, Err("no handle".into()));
            };
            // SAFETY: a file handle filled by name_to_handle_at, and a descriptor.
            let fd = unsafe {
                libc::syscall(
                    libc::SYS_open_by_handle_at,
                    mount.as_raw_fd(),
                    handle.as_mut_ptr(),
                    libc::O_RDONLY,
                )
            };
            read_fd(fd)
        }
        "tgkill" => {
            let victim: i32 = env("ATTACK_VICTIM").parse().unwrap();
            // SAFETY: a signal to a process id.
            let done = unsafe { libc::syscall(libc::SYS_tgkill, victim, victim, libc::SIGKILL) };
            if done == 0 {
                Ok("the victim was sent SIGKILL".into())
            } else {
                Err(errno())
            }
        }
        "pidfd_send_signal" => {
            let victim: i32 = env("ATTACK_VICTIM").parse().unwrap();
            // SAFETY: pidfd_open and pidfd_send_signal with a pid and no siginfo.
            let done = unsafe {
                let pidfd = libc::syscall(libc::SYS_pidfd_open, victim, 0);
                libc::syscall(libc::SYS_pidfd_send_signal, pidfd, libc::SIGKILL, 0usize, 0)
            };
            if done == 0 {
                Ok("the victim was sent SIGKILL".into())
            } else {
                Err(errno())
            }
        }
        "pidfd_getfd" => {
            let target: i32 = env("ATTACK_PARENT_FD").parse().unwrap();
            // SAFETY: pidfd_open of the parent, pidfd_getfd of a number.
            let fd = unsafe {
                let pidfd = libc::syscall(libc::SYS_pidfd_open, libc::getppid(), 0);
                libc::syscall(libc::SYS_pidfd_getfd, pidfd, target, 0)
            };
            read_fd(fd)
        }
        "clone" => {
            // SAFETY: a fork by clone(2); the new process exits at once.
            let pid = unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0) };
            if pid == 0 {
                // SAFETY: leaving the new process without running anything.
                unsafe { libc::_exit(0) };
            }
            if pid > 0 {
                Ok(format!("process {pid} started"))
            } else {
                Err(errno())
            }
        }
        "connect" => {
            let port: u16 = env("ATTACK_PORT").parse().unwrap();
            std::net::TcpStream::connect(("127.0.0.1", port))
                .map(|_| "connected out".to_owned())
                .map_err(|error| error.to_string())
        }
        "open" => std::fs::read_to_string(&secret).map_err(|error| error.to_string()),
        other => Err(format!("no attack {other}")),
    };
    report(attack, result);
}

/// The contents of descriptor `fd` (an attack's result), or why not.
fn read_fd(fd: libc::c_long) -> Result<String, String> {
    if fd < 0 {
        return Err(errno());
    }
    let fd = i32::try_from(fd).unwrap();
    // SAFETY: a descriptor the attack just obtained, owned from here.
    let mut file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let mut text = String::new();
    use std::io::Seek as _;
    let _ = file.seek(std::io::SeekFrom::Start(0));
    file.read_to_string(&mut text)
        .map_err(|error| error.to_string())?;
    Ok(format!("read {text:?}"))
}

/// A file handle of `path` (`struct file_handle` with room for the handle).
fn handle_of(path: &str) -> Option<Vec<u8>> {
    let mut handle = vec![0u8; 8 + 128];
    handle[..4].copy_from_slice(&128u32.to_ne_bytes());
    let mut mount_id = 0i32;
    let path = std::ffi::CString::new(path).ok()?;
    // SAFETY: name_to_handle_at with a buffer of the size it says.
    let done = unsafe {
        libc::syscall(
            libc::SYS_name_to_handle_at,
            libc::AT_FDCWD,
            path.as_ptr(),
            handle.as_mut_ptr(),
            &mut mount_id as *mut i32,
            0,
        )
    };
    (done == 0).then_some(handle)
}

/// A confined reader reading a PDF, as `hearth-gateway extract pdf`.
fn read_pdf() {
    let boiler = include_bytes!("../../assistant/fuzz/seeds/boiler.pdf");
    hearth_gateway::assistant::library::confine_reader().unwrap();
    let answer = hearth_gateway::assistant::library::extract_answer(
        hearth_assistant::extract::Format::Pdf,
        boiler,
    );
    print!("{answer}");
}

/// What `/` holds after the reader's filesystem is emptied.
fn empty_filesystem() {
    match hearth_gateway::assistant::library::empty_filesystem() {
        Ok(()) => {
            let entries = std::fs::read_dir("/")
                .map(Iterator::count)
                .unwrap_or(usize::MAX);
            println!("entries at / : {entries}");
        }
        Err(why) => println!("no empty filesystem: {why}"),
    }
}
