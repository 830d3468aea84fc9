//! A small TCP helper run inside test namespaces.
//!
//! - `hearth-probe serve PORT`: accepts connections forever; for each, reads
//!   until the peer closes its side, then answers with the number of bytes read.
//! - `hearth-probe send ADDRESS PORT BYTES [TIMEOUT_MS]`: connects, sends BYTES
//!   bytes of a recognizable pattern, prints the count the server confirmed.
//!   Exits 2 when the connection cannot be made within the timeout.
//! - `hearth-probe pipe ADDRESS PORT`: connects and copies stdin to the
//!   connection and the connection to stdout (how `Lab::forward` reaches
//!   into a namespace).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

/// The payload pattern; captures look for it on the underlay.
const PATTERN: &[u8] = b"HEARTH-PAYLOAD-MARKER-";

fn serve(port: u16) -> std::io::Result<()> {
    let listener =
        TcpListener::bind(("::", port)).or_else(|_| TcpListener::bind(("0.0.0.0", port)))?;
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        std::thread::spawn(move || {
            let mut buffer = [0u8; 65536];
            let mut total: u64 = 0;
            while let Ok(read) = stream.read(&mut buffer) {
                if read == 0 {
                    break;
                }
                total += read as u64;
            }
            let _ = stream.write_all(total.to_string().as_bytes());
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
    let chunk: Vec<u8> = PATTERN.iter().copied().cycle().take(64 * 1024).collect();
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

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    match arguments
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["serve", port] => match port.parse().map(serve) {
            Ok(Ok(())) => ExitCode::SUCCESS,
            _ => ExitCode::FAILURE,
        },
        ["send", address, port, bytes, rest @ ..] => {
            let timeout = rest.first().and_then(|ms| ms.parse().ok()).unwrap_or(2000);
            let (Ok(address), Ok(port), Ok(bytes)) = (
                address.parse::<std::net::IpAddr>(),
                port.parse::<u16>(),
                bytes.parse::<u64>(),
            ) else {
                eprintln!("usage: hearth-probe send ADDRESS PORT BYTES [TIMEOUT_MS]");
                return ExitCode::FAILURE;
            };
            match send(
                SocketAddr::new(address, port),
                bytes,
                Duration::from_millis(timeout),
            ) {
                Ok(count) => {
                    println!("{count}");
                    ExitCode::SUCCESS
                }
                Err((code, error)) => {
                    eprintln!("{error}");
                    ExitCode::from(code)
                }
            }
        }
        ["pipe", address, port] => {
            let (Ok(address), Ok(port)) =
                (address.parse::<std::net::IpAddr>(), port.parse::<u16>())
            else {
                eprintln!("usage: hearth-probe pipe ADDRESS PORT");
                return ExitCode::FAILURE;
            };
            match pipe(SocketAddr::new(address, port)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("{error}");
                    ExitCode::from(2)
                }
            }
        }
        _ => {
            eprintln!(
                "usage: hearth-probe serve PORT | send ADDRESS PORT BYTES [TIMEOUT_MS] | pipe ADDRESS PORT"
            );
            ExitCode::FAILURE
        }
    }
}
