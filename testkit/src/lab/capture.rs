//! Packet captures on the lab's wire, and what a test looks for in them and
//! in a process's memory.

use std::path::PathBuf;
use std::time::Duration;

use super::{Host, Lab, Process, wait_until};

/// A `tcpdump` on a host's switch port, writing a pcap file.
pub struct Capture {
    process: Process,
    file: PathBuf,
}

impl Lab {
    /// Captures every frame through `host`'s switch port (what the host
    /// sends and receives on the wire) that matches `filter` (tcpdump's
    /// syntax; empty for all), until [`Capture::stop`].
    pub fn capture(&mut self, host: &Host, label: &str, filter: &[&str]) -> Capture {
        let file = self.dir.path().join(format!("{label}.pcap"));
        let port = self.port_of(host);
        let mut command = std::process::Command::new("ip");
        command
            .args([
                "netns",
                "exec",
                self.switch(),
                "tcpdump",
                // A kernel buffer that holds a whole test transfer (64 MiB):
                // with tcpdump's default of 2 MiB, a busy machine dropped
                // half of a 4 MiB transfer's frames before tcpdump read them.
                "-B",
                "65536",
                "--immediate-mode",
                "-i",
                &port,
                "-U",
                "-n",
                "-s",
                "0",
                "-w",
            ])
            .arg(&file)
            .args(filter);
        let process = self.spawn(host, &format!("{label}-tcpdump"), command);
        wait_until(Duration::from_secs(5), || {
            process.log_text().contains("listening on")
        })
        .unwrap_or_else(|| panic!("tcpdump did not start: {}", process.log_text()));
        Capture { process, file }
    }
}

impl Capture {
    /// The pcap file being written (frames are flushed one by one).
    pub fn path(&self) -> &std::path::Path {
        &self.file
    }

    /// Stops the capture and returns the pcap file's bytes.
    pub fn stop(mut self) -> Vec<u8> {
        std::thread::sleep(Duration::from_millis(300));
        self.process.terminate(Duration::from_secs(5));
        std::fs::read(&self.file).unwrap_or_default()
    }
}

/// The frames of a classic little-endian pcap file (Ethernet link type).
pub fn pcap_frames(bytes: &[u8]) -> Vec<&[u8]> {
    assert!(
        bytes.len() >= 24 && bytes[..4] == [0xd4, 0xc3, 0xb2, 0xa1],
        "a little-endian pcap file"
    );
    let mut frames = Vec::new();
    let mut offset = 24;
    while offset + 16 <= bytes.len() {
        let captured = u32::from_le_bytes([
            bytes[offset + 8],
            bytes[offset + 9],
            bytes[offset + 10],
            bytes[offset + 11],
        ]) as usize;
        let start = offset + 16;
        let Some(frame) = bytes.get(start..start + captured) else {
            break;
        };
        frames.push(frame);
        offset = start + captured;
    }
    frames
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

/// Whether `needle` occurs anywhere in the readable memory of process `pid`
/// (its heap, stacks and mappings, as `/proc/PID/mem` shows them to root).
pub fn memory_contains(pid: u32, needle: &[u8]) -> bool {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("the process's maps");
    let mut memory = std::fs::File::open(format!("/proc/{pid}/mem")).expect("the process's memory");
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(permissions)) = (fields.next(), fields.next()) else {
            continue;
        };
        // Readable, and not the kernel's vsyscall page.
        if !permissions.starts_with('r') || line.ends_with("[vsyscall]") || line.ends_with("[vvar]")
        {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16))
        else {
            continue;
        };
        let mut region = vec![0u8; usize::try_from(end - start).unwrap_or(0)];
        if memory.seek(SeekFrom::Start(start)).is_err() || memory.read_exact(&mut region).is_err() {
            continue;
        }
        if contains(&region, needle) {
            return true;
        }
    }
    false
}
