//! A small TCP helper run inside test namespaces.
//!
//! - `hearth-probe serve PORT`: accepts connections forever; for each, reads
//!   until the peer closes its side, then answers with the number of bytes
//!   read, or `corrupt at N` if byte N is not the pattern's (senders send
//!   the pattern without a break, so a data plane that damages payload and
//!   still passes it is caught).
//! - `hearth-probe send ADDRESS PORT BYTES [TIMEOUT_MS]`: connects, sends BYTES
//!   bytes of a recognizable pattern, prints the count the server confirmed.
//!   Exits 2 when the connection cannot be made within the timeout.
//! - `hearth-probe stream ADDRESS PORT SECONDS KIB_PER_SECOND`: one
//!   connection that sends the pattern at a steady pace for SECONDS, then
//!   prints the count the server confirmed (a connection that must survive
//!   whatever happens to the path meanwhile).
//! - `hearth-probe ollama ADDRESS MODEL...`: the Ollama stand-in of
//!   `hearth_testkit::standins` (Ollama cannot be installed here) listening
//!   at ADDRESS, until killed.
//! - `hearth-probe pipe ADDRESS PORT`: connects and copies stdin to the
//!   connection and the connection to stdout (how `Lab::forward` reaches
//!   into a namespace).
//! - `hearth-probe flood ADDRESS PORT RATE SECONDS`: sends RATE datagrams a
//!   second for SECONDS, each shaped like a WireGuard handshake initiation
//!   (type 1, 148 bytes) with random contents, as an attacker on the LAN
//!   who does not know the target's public key would; prints how many.
//! - `hearth-probe disco-mitm PORT A B REPLAY_HEX`: the second review's
//!   path hijack, as an attacker between two nodes that cannot reach each
//!   other: on UDP port PORT, sends the captured disco ping REPLAY_HEX (one
//!   that B sent to A) to A, then relays disco between A and B (A's
//!   packets to B, B's to A, from this address) and drops every WireGuard
//!   packet; prints a line of counts each second.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

/// The payload pattern; captures look for it on the underlay.
const PATTERN: &[u8] = b"HEARTH-PAYLOAD-MARKER-";

/// The pattern repeated to at least `bytes`, in whole repetitions.
fn pattern(bytes: usize) -> Vec<u8> {
    let whole = bytes.div_ceil(PATTERN.len()) * PATTERN.len();
    PATTERN.iter().copied().cycle().take(whole).collect()
}

fn serve(port: u16) -> std::io::Result<()> {
    let listener =
        TcpListener::bind(("::", port)).or_else(|_| TcpListener::bind(("0.0.0.0", port)))?;
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        std::thread::spawn(move || {
            let mut buffer = [0u8; 65536];
            let mut total: u64 = 0;
            let mut corrupt = None;
            while let Ok(read) = stream.read(&mut buffer) {
                if read == 0 {
                    break;
                }
                if corrupt.is_none() {
                    corrupt = buffer[..read]
                        .iter()
                        .enumerate()
                        .find(|(at, byte)| {
                            **byte
                                != PATTERN[((total + *at as u64) % PATTERN.len() as u64) as usize]
                        })
                        .map(|(at, _)| total + at as u64);
                }
                total += read as u64;
            }
            let answer = match corrupt {
                Some(at) => format!("corrupt at {at}"),
                None => total.to_string(),
            };
            let _ = stream.write_all(answer.as_bytes());
        });
    }
    Ok(())
}

fn send(address: SocketAddr, bytes: u64, timeout: Duration) -> Result<u64, (u8, String)> {
    let mut stream =
        TcpStream::connect_timeout(&address, timeout).map_err(|error| (2, error.to_string()))?;
    stream
        .set_write_timeout(Some(Duration::from_secs(30)))
        .map_err(|error| (1, error.to_string()))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|error| (1, error.to_string()))?;
    // Whole patterns, so that chunk after chunk the pattern runs unbroken.
    let chunk = pattern(64 * 1024);
    let mut left = bytes;
    while left > 0 {
        let now = left.min(chunk.len() as u64) as usize;
        stream
            .write_all(&chunk[..now])
            .map_err(|error| (1, error.to_string()))?;
        left -= now as u64;
    }
    stream
        .shutdown(Shutdown::Write)
        .map_err(|error| (1, error.to_string()))?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|error| (1, error.to_string()))?;
    answer
        .trim()
        .parse()
        .map_err(|_| (1, format!("unexpected answer {answer:?}")))
}

fn stream(address: SocketAddr, seconds: u64, kib_per_second: u64) -> Result<u64, (u8, String)> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))
        .map_err(|error| (2, error.to_string()))?;
    stream
        .set_write_timeout(Some(Duration::from_secs(30)))
        .map_err(|error| (1, error.to_string()))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|error| (1, error.to_string()))?;
    // Every 10 ms, what the pace allows by then.
    let per_tick = (kib_per_second * 1024 / 100).max(1) as usize;
    let chunk = pattern(per_tick);
    let start = std::time::Instant::now();
    let mut sent: u64 = 0;
    let mut tick: u32 = 0;
    while start.elapsed() < Duration::from_secs(seconds) {
        stream
            .write_all(&chunk)
            .map_err(|error| (1, format!("after {sent} bytes: {error}")))?;
        sent += chunk.len() as u64;
        tick += 1;
        let next = Duration::from_millis(10) * tick;
        if let Some(wait) = next.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    stream
        .shutdown(Shutdown::Write)
        .map_err(|error| (1, error.to_string()))?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|error| (1, error.to_string()))?;
    let confirmed: u64 = answer
        .trim()
        .parse()
        .map_err(|_| (1, format!("unexpected answer {answer:?}")))?;
    if confirmed != sent {
        return Err((1, format!("sent {sent} bytes, the server read {confirmed}")));
    }
    Ok(confirmed)
}

fn pipe(address: SocketAddr) -> std::io::Result<()> {
    let stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))?;
    stream.set_nodelay(true)?;
    let mut upstream = stream.try_clone()?;
    let sending = std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut upstream);
        let _ = upstream.shutdown(Shutdown::Write);
    });
    let mut downstream = stream;
    let mut stdout = std::io::stdout().lock();
    let mut buffer = [0u8; 65536];
    loop {
        let read = downstream.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        stdout.write_all(&buffer[..read])?;
        stdout.flush()?;
    }
    // The far end is done: leave without waiting for stdin to close (the
    // copying thread ends with the process).
    drop(sending);
    Ok(())
}

/// Sends forged handshake initiations to `target` at `rate` a second for `seconds`.
fn flood(target: SocketAddr, rate: u64, seconds: u64) -> std::io::Result<u64> {
    let socket = std::net::UdpSocket::bind(if target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    })?;
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id());
    let mut next = || {
        // xorshift64: random enough to defeat any caching, and cheap.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut packet = [0u8; 148];
    for byte in packet.iter_mut() {
        *byte = next() as u8;
    }
    packet[..4].copy_from_slice(&[1, 0, 0, 0]);
    let start = std::time::Instant::now();
    let limit = Duration::from_secs(seconds);
    let mut sent: u64 = 0;
    while start.elapsed() < limit {
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        while sent < due {
            // New sender index and ephemeral key bytes in every packet.
            for word in packet[4..44].chunks_exact_mut(8) {
                word.copy_from_slice(&next().to_le_bytes());
            }
            // A full socket buffer drops the packet, as a real flood would.
            let _ = socket.send_to(&packet, target);
            sent += 1;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    Ok(sent)
}

/// Replays `ping` to `a`, then relays disco between `a` and `b` and drops
/// WireGuard, printing `relayed disco D dropped wireguard W` each second.
fn disco_mitm(port: u16, a: SocketAddr, b: SocketAddr, ping: &[u8]) -> std::io::Result<()> {
    let socket = std::net::UdpSocket::bind(("0.0.0.0", port))?;
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    // The replay, a few times over a second (as a real attacker would, in
    // case one is lost).
    for _ in 0..3 {
        socket.send_to(ping, a)?;
        std::thread::sleep(Duration::from_millis(300));
    }
    let (mut relayed, mut dropped) = (0u64, 0u64);
    let mut reported = std::time::Instant::now();
    let mut buffer = [0u8; 65536];
    loop {
        if reported.elapsed() >= Duration::from_secs(1) {
            println!("relayed disco {relayed} dropped wireguard {dropped}");
            std::io::stdout().flush()?;
            reported = std::time::Instant::now();
        }
        let (length, from) = match socket.recv_from(&mut buffer) {
            Ok(received) => received,
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(error) => return Err(error),
        };
        let packet = &buffer[..length];
        let to = if from == a {
            b
        } else if from == b {
            a
        } else {
            continue;
        };
        if hearth_control::disco::looks_like_disco(packet) {
            let _ = socket.send_to(packet, to);
            relayed += 1;
        } else {
            dropped += 1;
        }
    }
}

/// A small TCP and UDP helper run inside test namespaces.
#[derive(clap::Parser)]
#[command(version)]
enum Cli {
    /// Accept connections forever; answer each with the number of bytes it sent.
    Serve {
        /// TCP port.
        port: u16,
    },
    /// Send BYTES of a recognizable pattern; print the count the server confirmed.
    Send {
        /// Server address.
        address: std::net::IpAddr,
        /// Server port.
        port: u16,
        /// How many bytes.
        bytes: u64,
        /// Connect timeout, milliseconds.
        #[arg(default_value_t = 2000)]
        timeout_ms: u64,
    },
    /// Send forged WireGuard handshake initiations at RATE a second for SECONDS.
    Flood {
        /// Target address.
        address: std::net::IpAddr,
        /// Target UDP port.
        port: u16,
        /// Datagrams a second.
        rate: u64,
        /// For how long.
        seconds: u64,
    },
    /// Send the pattern at a steady pace on one connection for SECONDS.
    Stream {
        /// Server address.
        address: std::net::IpAddr,
        /// Server port.
        port: u16,
        /// For how long.
        seconds: u64,
        /// Pace, KiB a second.
        kib_per_second: u64,
    },
    /// Replay a captured disco ping to A, then relay disco between A and B
    /// and drop WireGuard.
    DiscoMitm {
        /// UDP port to use.
        port: u16,
        /// Node A's WireGuard endpoint.
        a: SocketAddr,
        /// Node B's WireGuard endpoint.
        b: SocketAddr,
        /// The captured ping (B to A), in hex.
        replay_hex: String,
    },
    /// Stand in for Ollama (which cannot be installed here) at ADDRESS,
    /// listing MODELS, until killed (`hearth_testkit::standins`).
    Ollama {
        /// Where to listen (Ollama's is 127.0.0.1:11434).
        address: String,
        /// The models it lists.
        models: Vec<String>,
    },
    /// Copy stdin to a connection and the connection to stdout.
    Pipe {
        /// Server address.
        address: std::net::IpAddr,
        /// Server port.
        port: u16,
    },
}

fn main() -> ExitCode {
    match <Cli as clap::Parser>::parse() {
        Cli::Serve { port } => match serve(port) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("{error}");
                ExitCode::FAILURE
            }
        },
        Cli::Send {
            address,
            port,
            bytes,
            timeout_ms,
        } => match send(
            SocketAddr::new(address, port),
            bytes,
            Duration::from_millis(timeout_ms),
        ) {
            Ok(count) => {
                println!("{count}");
                ExitCode::SUCCESS
            }
            Err((code, error)) => {
                eprintln!("{error}");
                ExitCode::from(code)
            }
        },
        Cli::Flood {
            address,
            port,
            rate,
            seconds,
        } => match flood(SocketAddr::new(address, port), rate, seconds) {
            Ok(sent) => {
                println!("{sent}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("{error}");
                ExitCode::FAILURE
            }
        },
        Cli::Stream {
            address,
            port,
            seconds,
            kib_per_second,
        } => match stream(SocketAddr::new(address, port), seconds, kib_per_second) {
            Ok(count) => {
                println!("{count}");
                ExitCode::SUCCESS
            }
            Err((code, error)) => {
                eprintln!("{error}");
                ExitCode::from(code)
            }
        },
        Cli::DiscoMitm {
            port,
            a,
            b,
            replay_hex,
        } => {
            let Ok(ping) = hex::decode(replay_hex.trim()) else {
                eprintln!("the replay is not hex");
                return ExitCode::from(2);
            };
            match disco_mitm(port, a, b, &ping) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("{error}");
                    ExitCode::FAILURE
                }
            }
        }
        Cli::Ollama { address, models } => {
            let models: Vec<&str> = models.iter().map(String::as_str).collect();
            let _server = hearth_testkit::standins::ollama_stand_in_at(
                &address,
                &models,
                Duration::from_millis(5),
            );
            println!("listening on {address}");
            loop {
                std::thread::park();
            }
        }
        Cli::Pipe { address, port } => match pipe(SocketAddr::new(address, port)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("{error}");
                ExitCode::from(2)
            }
        },
    }
}
