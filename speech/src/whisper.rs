//! A client of whisper.cpp's server (`whisper-server`, its `/inference`
//! endpoint): 16 kHz WAV in, the words with their language and timed
//! segments out. The gateway decodes what members send ([`crate::audio`])
//! before this sees it, so the server is only ever given plain PCM.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a transcription says of the audio besides the audio itself.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Hints {
    /// The spoken language (ISO 639-1, `ko`, `en`), or `None` to detect it.
    pub language: Option<String>,
    /// Text that came before (names, spellings), as Whisper's prompt.
    pub prompt: Option<String>,
    /// Sampling temperature (0 when not given).
    pub temperature: Option<f32>,
}

/// One timed stretch of the words.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// Its index.
    pub id: u32,
    /// Where it starts, in seconds.
    pub start: f64,
    /// Where it ends, in seconds.
    pub end: f64,
    /// Its words.
    pub text: String,
}

/// What was heard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    /// The words, trimmed.
    pub text: String,
    /// The language heard (Whisper's name for it: `english`, `korean`).
    pub language: String,
    /// The audio's length, in seconds.
    pub duration: f64,
    /// The words in timed stretches.
    pub segments: Vec<Segment>,
}

/// Why the server gave no transcript.
#[derive(Debug, thiserror::Error)]
pub enum WhisperError {
    /// It could not be reached, or did not answer in time.
    #[error("the speech server at {url} did not answer: {reason}")]
    Unreachable {
        /// Where it was asked.
        url: String,
        /// What failed.
        reason: String,
    },
    /// It answered with an error.
    #[error("the speech server refused the audio ({status}): {message}")]
    Refused {
        /// Its HTTP status.
        status: u16,
        /// What it said, cut short.
        message: String,
    },
    /// Its answer was not a transcript.
    #[error("the speech server's answer was not a transcript: {0}")]
    Garbled(String),
}

/// whisper-server's `verbose_json`, the fields read.
#[derive(Deserialize)]
struct Verbose {
    #[serde(default)]
    text: String,
    #[serde(default)]
    language: String,
    #[serde(default)]
    duration: f64,
    #[serde(default)]
    segments: Vec<VerboseSegment>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct VerboseSegment {
    #[serde(default)]
    id: u32,
    #[serde(default)]
    start: f64,
    #[serde(default)]
    end: f64,
    #[serde(default)]
    text: String,
}

/// Reads whisper-server's `verbose_json` answer. Pure.
pub fn read_answer(body: &[u8]) -> Result<Transcript, WhisperError> {
    let verbose: Verbose =
        serde_json::from_slice(body).map_err(|error| WhisperError::Garbled(error.to_string()))?;
    if let Some(error) = verbose.error {
        return Err(WhisperError::Refused {
            status: 200,
            message: cut(&error),
        });
    }
    Ok(Transcript {
        text: verbose.text.trim().to_owned(),
        language: verbose.language,
        duration: verbose.duration,
        segments: verbose
            .segments
            .into_iter()
            .map(|segment| Segment {
                id: segment.id,
                start: segment.start,
                end: segment.end,
                text: segment.text.trim().to_owned(),
            })
            .collect(),
    })
}

fn cut(text: &str) -> String {
    text.chars().take(300).collect()
}

/// whisper.cpp's server at a URL (`http://127.0.0.1:8178`), or behind a
/// UNIX socket (`unix:/run/hearth-inference/speech.sock`, as a packaged
/// hub's gateway reaches it from its pod).
#[derive(Clone, Debug)]
pub struct Whisper {
    http: reqwest::Client,
    url: String,
}

/// Where a speech server is, read from its configured URL. Pure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// `http://host:port`, the base the paths go after.
    Http(String),
    /// A UNIX socket's path.
    Unix(String),
}

impl Place {
    /// `url` read: `unix:` and a path, else an `http://` URL (refused
    /// otherwise, with `None`).
    pub fn of(url: &str) -> Option<Place> {
        if let Some(path) = url.strip_prefix("unix:") {
            let path = format!("/{}", path.trim_start_matches('/'));
            return (path.len() > 1).then_some(Place::Unix(path));
        }
        let parsed = reqwest::Url::parse(url).ok()?;
        (parsed.scheme() == "http" && parsed.host().is_some())
            .then(|| Place::Http(url.trim_end_matches('/').to_owned()))
    }
}

impl Whisper {
    /// A client of the server at `url` (see [`Place`]), waiting at most
    /// `timeout` for a transcript (recognition takes a fraction of the
    /// audio's length on a hub's CPU).
    pub fn new(url: &str, timeout: Duration) -> Whisper {
        let builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .no_proxy();
        let (builder, base) = match Place::of(url) {
            Some(Place::Unix(path)) => (builder.unix_socket(path), "http://localhost".to_owned()),
            Some(Place::Http(base)) => (builder, base),
            None => (builder, url.trim_end_matches('/').to_owned()),
        };
        Whisper {
            http: builder.build().unwrap_or_default(),
            url: base,
        }
    }

    /// What `wav` (a 16 kHz mono WAV file, [`crate::audio::wav`]) says.
    /// A server that is starting (socket-activated: its socket answers
    /// before it does) is asked again until [`STARTING`] has passed.
    pub async fn transcribe(&self, wav: Vec<u8>, hints: Hints) -> Result<Transcript, WhisperError> {
        let wav = bytes::Bytes::from(wav);
        let deadline = tokio::time::Instant::now() + STARTING;
        loop {
            match self.ask(wav.clone(), &hints).await {
                Err(WhisperError::Unreachable { .. }) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                outcome => return outcome,
            }
        }
    }

    async fn ask(&self, wav: bytes::Bytes, hints: &Hints) -> Result<Transcript, WhisperError> {
        let unreachable = |error: reqwest::Error| WhisperError::Unreachable {
            url: self.url.clone(),
            reason: error.to_string(),
        };
        let file = reqwest::multipart::Part::bytes(wav.to_vec())
            .file_name("audio.wav")
            .mime_str("audio/wav")
            .map_err(unreachable)?;
        let mut form = reqwest::multipart::Form::new()
            .part("file", file)
            .text("response_format", "verbose_json")
            .text(
                "language",
                hints.language.clone().unwrap_or_else(|| "auto".to_owned()),
            )
            .text(
                "temperature",
                hints.temperature.unwrap_or(0.0).clamp(0.0, 1.0).to_string(),
            );
        if let Some(prompt) = hints
            .prompt
            .clone()
            .filter(|prompt| !prompt.trim().is_empty())
        {
            form = form.text("prompt", prompt);
        }
        let response = self
            .http
            .post(format!("{}/inference", self.url))
            .multipart(form)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        let body = response.bytes().await.map_err(unreachable)?;
        if !status.is_success() {
            return Err(WhisperError::Refused {
                status: status.as_u16(),
                message: cut(&String::from_utf8_lossy(&body)),
            });
        }
        read_answer(&body)
    }
}

/// How long a server that does not answer yet is given to start (whisper
/// base loads in about a second; a small board takes longer).
pub const STARTING: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_is_reached_over_http_or_a_unix_socket() {
        assert_eq!(
            Place::of("http://127.0.0.1:8178/"),
            Some(Place::Http("http://127.0.0.1:8178".into()))
        );
        assert_eq!(
            Place::of("unix:/run/hearth-inference/speech.sock"),
            Some(Place::Unix("/run/hearth-inference/speech.sock".into()))
        );
        assert_eq!(
            Place::of("unix:///run/speech.sock"),
            Some(Place::Unix("/run/speech.sock".into()))
        );
        for bad in [
            "https://127.0.0.1:8178",
            "127.0.0.1:8178",
            "unix:",
            "ftp://x",
        ] {
            assert_eq!(Place::of(bad), None, "{bad}");
        }
    }

    #[test]
    fn whisper_servers_verbose_answer_is_read() {
        let body = br#"{"task":"transcribe","language":"english","duration":2.16,
            "text":" What is the capital of France?\n",
            "segments":[{"id":0,"text":" What is the capital of France?","start":0.0,"end":2.0,
            "tokens":[1,2],"words":[]}]}"#;
        let transcript = read_answer(body).unwrap();
        assert_eq!(transcript.text, "What is the capital of France?");
        assert_eq!(transcript.language, "english");
        assert_eq!(transcript.segments.len(), 1);
        assert_eq!(transcript.segments[0].end, 2.0);
    }

    #[test]
    fn an_error_in_the_answer_is_a_refusal_and_garbage_is_garbled() {
        assert!(matches!(
            read_answer(br#"{"error":"failed to read audio data"}"#),
            Err(WhisperError::Refused { .. })
        ));
        assert!(matches!(
            read_answer(b"<html>"),
            Err(WhisperError::Garbled(_))
        ));
    }
}
