//! A terminal for a test: a tmux server of the test's own (its socket in
//! the test's directory, stopped on drop) running one command, whose screen
//! can be read and typed into. The user's own tmux is never touched.
// A test harness: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// `command` as one line of shell, its environment whole (it starts from an
/// empty one, as a command with `env_clear` would).
pub fn shell_line(command: &Command) -> String {
    let quote = |text: &OsStr| format!("'{}'", text.to_string_lossy().replace('\'', "'\\''"));
    let mut line = String::from("exec env -i");
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            let pair = format!("{}={}", key.to_string_lossy(), value.to_string_lossy());
            line.push(' ');
            line.push_str(&quote(OsStr::new(&pair)));
        }
    }
    for part in std::iter::once(command.get_program()).chain(command.get_args()) {
        line.push(' ');
        line.push_str(&quote(part));
    }
    line
}

/// A 120x40 terminal running one command.
pub struct Terminal {
    socket: PathBuf,
}

impl Terminal {
    /// Starts `command` in a terminal whose files live in `dir`.
    pub fn start(dir: &Path, command: &Command) -> Terminal {
        std::fs::create_dir_all(dir).unwrap();
        let socket = dir.join("tmux.sock");
        let script = dir.join("terminal.sh");
        std::fs::write(&script, format!("#!/bin/sh\n{}\n", shell_line(command))).unwrap();
        let status = Command::new("tmux")
            .arg("-S")
            .arg(&socket)
            .args([
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-x",
                "120",
                "-y",
                "40",
                "sh",
            ])
            .arg(&script)
            .status()
            .unwrap();
        assert!(status.success(), "tmux did not start");
        Terminal { socket }
    }

    /// What the screen shows now.
    pub fn screen(&self) -> String {
        let output = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(["capture-pane", "-p"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Types `keys` (tmux's key names, such as `Enter`, or text).
    pub fn keys(&self, keys: &[&str]) {
        let status = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("send-keys")
            .args(keys)
            .status()
            .unwrap();
        assert!(status.success(), "tmux send-keys failed");
    }

    /// Waits up to `limit` for the screen to satisfy `shown`; the screen then.
    pub fn wait_until(&self, limit: Duration, shown: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if shown(&screen) {
                return screen;
            }
            assert!(
                start.elapsed() < limit,
                "the screen never showed it within {limit:?}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits up to `limit` for `text` on the screen; the screen then.
    pub fn wait_for(&self, text: &str, limit: Duration) -> String {
        self.wait_until(limit, |screen| screen.contains(text))
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        // Only the test's own tmux server.
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .status();
    }
}
