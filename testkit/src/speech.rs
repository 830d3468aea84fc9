//! Speech for the tests: whisper.cpp's server and the multilingual Whisper
//! base model (built and converted by `scripts/build-whisper-server.sh` and
//! `scripts/whisper-model.sh` into the cache), and sentences spoken by
//! espeak-ng (Debian's; it speaks Korean and English) as 16 kHz WAV. Each
//! is a skip when missing (a failure under `CI=true`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::lab::{Host, Lab, Process, skip};
use crate::llama::fetched_model;

/// whisper.cpp's `whisper-server`.
pub fn whisper_server() -> Option<PathBuf> {
    fetched_model("build-whisper-server.sh", "whisper.cpp's server")
}

/// Whisper base in whisper.cpp's format.
pub fn whisper_model() -> Option<PathBuf> {
    fetched_model("whisper-model.sh", "the Whisper model")
}

/// `text` spoken by espeak-ng's `voice` (`en-us`, `ko`) at `words_per_minute`,
/// written to `out` as 16 kHz mono 16-bit WAV (sox converts), with a
/// little silence on either side as a recording has.
pub fn speak(text: &str, voice: &str, words_per_minute: u32, out: &Path) -> Option<()> {
    let raw = out.with_extension("espeak.wav");
    // espeak-ng's audio library starts a PulseAudio client even when it
    // writes a file, which leaves a folder in the temporary directory and a
    // link in the home's configuration: both go beside `out`.
    let scratch = out.parent().unwrap_or(Path::new("."));
    let spoken = Command::new("espeak-ng")
        .args(["-v", voice, "-s", &words_per_minute.to_string(), "-w"])
        .arg(&raw)
        .arg(text)
        .env("TMPDIR", scratch)
        .env("HOME", scratch)
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("XDG_CONFIG_HOME")
        .status();
    if !spoken.is_ok_and(|status| status.success()) {
        return skip("espeak-ng cannot speak (apt-get install espeak-ng)");
    }
    let converted = Command::new("sox")
        .arg(&raw)
        .args(["-r", "16000", "-c", "1", "-b", "16"])
        .arg(out)
        .args(["pad", "0.3", "0.3"])
        .status();
    if !converted.is_ok_and(|status| status.success()) {
        return skip("sox cannot convert (apt-get install sox)");
    }
    let _ = std::fs::remove_file(raw);
    Some(())
}

/// `text` spoken by espeak-ng as a browser's fake microphone plays it
/// (Chromium's `--use-file-for-fake-audio-capture`, which loops the file):
/// 48 kHz mono WAV at `out`, the words then three seconds of silence, so
/// that a recording stopped within the silence holds them once. The
/// words' length (with the little silence before them), in milliseconds.
pub fn microphone(text: &str, voice: &str, words_per_minute: u32, out: &Path) -> Option<u64> {
    let spoken = out.with_extension("16k.wav");
    speak(text, voice, words_per_minute, &spoken)?;
    let converted = Command::new("sox")
        .arg(&spoken)
        .args(["-r", "48000"])
        .arg(out)
        .args(["pad", "0", "3"])
        .status();
    if !converted.is_ok_and(|status| status.success()) {
        return skip("sox cannot convert (apt-get install sox)");
    }
    let length = std::fs::metadata(&spoken).ok()?.len().saturating_sub(44);
    let _ = std::fs::remove_file(spoken);
    // 16-bit samples at 16 kHz.
    Some(length * 1000 / (2 * 16_000))
}

impl Lab {
    /// Starts `server` (whisper-server) in `host` with `model` at
    /// `address:port`, on two threads.
    pub fn start_whisper_server(
        &mut self,
        host: &Host,
        server: &Path,
        model: &Path,
        (address, port): (&str, u16),
    ) -> Process {
        let mut command = self.command(host, server);
        command.arg("-m").arg(model).args([
            "--host",
            address,
            "--port",
            &port.to_string(),
            "-t",
            "2",
        ]);
        self.spawn(
            host,
            &format!("{}-whisper-server-{port}", host.name),
            command,
        )
    }
}

/// Lower case, without punctuation, one space between words.
pub fn normalized(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The edit distance of two sequences over the reference's length: the
/// word error rate of `heard` against `reference` over words, the
/// character error rate over characters (what Korean is measured in).
pub fn error_rate<T: PartialEq>(reference: &[T], heard: &[T]) -> f64 {
    let mut row: Vec<usize> = (0..=heard.len()).collect();
    for (i, want) in reference.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, got) in heard.iter().enumerate() {
            let substitution = diagonal + usize::from(want != got);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[heard.len()] as f64 / reference.len().max(1) as f64
}

/// The word error rate of `heard` against `reference`, both normalized.
pub fn word_error_rate(reference: &str, heard: &str) -> f64 {
    let words = |text: &str| {
        normalized(text)
            .split(' ')
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    error_rate(&words(reference), &words(heard))
}

/// The character error rate (spaces and punctuation left out).
pub fn character_error_rate(reference: &str, heard: &str) -> f64 {
    let chars = |text: &str| {
        normalized(text)
            .chars()
            .filter(|c| *c != ' ')
            .collect::<Vec<_>>()
    };
    error_rate(&chars(reference), &chars(heard))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_rates_count_substitutions_insertions_and_deletions() {
        assert_eq!(
            word_error_rate(
                "What is the capital of France?",
                "what is the capital of france"
            ),
            0.0
        );
        let wer = word_error_rate(
            "What is the capital of France?",
            "What is the capital on friends?",
        );
        assert!((wer - 2.0 / 6.0).abs() < 1e-9, "{wer}");
        assert_eq!(word_error_rate("a b", "a x b y"), 1.0);
        assert_eq!(character_error_rate("내일 아침", "내일아침"), 0.0);
        assert_eq!(character_error_rate("내일 아침", "네일 아침"), 0.25);
    }
}
