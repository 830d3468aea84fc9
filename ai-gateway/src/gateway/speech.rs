//! The speech use case: a member's recording, heard on the hub. In order:
//! the hub has a speech model and the request names it (or OpenAI's
//! `whisper-1`, or none); the policy lets the caller use it; the recording
//! decodes (its format, its length); the caller's daily seconds hold it;
//! then whisper.cpp's server hears it and the seconds are counted. The
//! words are returned, never logged or kept.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hearth_e2ee::ErrorCode;
use hearth_speech::audio::{self, Limits};
use hearth_speech::whisper::{Hints, Transcript, Whisper};

use super::admit::Account;
use super::{Gateway, Refused};
use crate::access::Target;
use crate::caller::Caller;
use crate::config::SpeechSection;
use hearth_assistant::scope::Asker;

/// What a transcription asks, beside the audio.
#[derive(Clone, Debug, Default)]
pub struct Hearing {
    /// The model named (`whisper-1`, `speech/whisper-base`, `whisper-base`).
    pub model: Option<String>,
    /// The language, prompt and temperature, passed to the server.
    pub hints: Hints,
}

/// What was heard, and by which model.
#[derive(Clone, Debug, PartialEq)]
pub struct Heard {
    /// `speech/<model>`.
    pub model: String,
    /// The words.
    pub transcript: Transcript,
    /// The recording's length, in seconds.
    pub seconds: f64,
}

/// The hub's speech recognition: its settings and its server's client.
#[derive(Debug)]
pub struct Speech {
    section: SpeechSection,
    whisper: Whisper,
    /// One recording at a time: whisper.cpp's server hears one at a time,
    /// and a budget is checked and charged with none between.
    one_at_a_time: tokio::sync::Mutex<()>,
}

impl Speech {
    /// The speech recognition `section` configures.
    pub fn new(section: SpeechSection) -> Speech {
        // Recognition takes a fraction of the audio's length; a whole
        // recording at the slowest a hub is, and then some.
        let timeout = Duration::from_secs(u64::from(section.max_seconds) * 2 + 30);
        Speech {
            whisper: Whisper::new(&section.url, timeout),
            section,
            one_at_a_time: tokio::sync::Mutex::new(()),
        }
    }

    /// Its settings.
    pub fn section(&self) -> &SpeechSection {
        &self.section
    }

    /// Whether `named` (a request's `model`) means this model.
    fn answers_to(&self, named: Option<&str>) -> bool {
        match named.map(str::trim).filter(|name| !name.is_empty()) {
            None => true,
            Some(name) => {
                name == "whisper-1" || name == self.section.model || name == self.section.model_id()
            }
        }
    }
}

/// A `language` that is not an ISO 639-1 code.
#[derive(Debug, thiserror::Error)]
#[error("`language` is an ISO 639-1 code (\"ko\", \"en\"), not {0:?}")]
pub struct NotALanguage(pub String);

/// `language` as whisper takes it: an ISO 639-1 code (`ko`, `EN`), in
/// lower case; anything else is refused with why. Pure.
pub fn language_code(language: &str) -> Result<String, NotALanguage> {
    let code = language.trim().to_ascii_lowercase();
    if (2..=3).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_lowercase()) {
        Ok(code)
    } else {
        Err(NotALanguage(language.to_owned()))
    }
}

/// Why a recording of more than `max_bytes` is refused.
pub fn too_large(max_bytes: usize) -> String {
    format!(
        "the recording is larger than {} MB, the most this hub takes (hearth.speech.maxMegabytes); send a shorter or more compressed one",
        max_bytes / (1024 * 1024)
    )
}

/// The largest upload `section` allows, in bytes.
pub fn max_upload(section: Option<&SpeechSection>) -> usize {
    section.map_or(25, |section| section.max_megabytes as usize) * 1024 * 1024
}

impl Gateway {
    /// The hub's speech recognition, when it has one.
    pub fn speech(&self) -> Option<&Speech> {
        self.speech.as_ref()
    }

    /// What `audio` (a whole recording, as an app sent it) says, for
    /// `caller` (or the member it speaks for, `asker`: household messaging
    /// hearing a member's recording): see the module's documentation for
    /// the order.
    pub async fn transcribe(
        self: &Arc<Self>,
        caller: &Caller,
        asker: Option<&Asker>,
        audio: Bytes,
        hearing: Hearing,
    ) -> Result<Heard, Refused> {
        let outcome = self.hear(caller, asker, audio, hearing).await;
        let label = match &outcome {
            Ok(_) => "ok",
            Err(refused) => refused.code.as_str(),
        };
        self.metrics.outcome("transcriptions", label);
        outcome
    }

    async fn hear(
        self: &Arc<Self>,
        caller: &Caller,
        asker: Option<&Asker>,
        audio: Bytes,
        mut hearing: Hearing,
    ) -> Result<Heard, Refused> {
        let Some(speech) = &self.speech else {
            return Err(Refused::new(
                ErrorCode::NoModel,
                "this hub has no speech recognition: hearth.speech is not set (hearth setup installs it with the hearth-speech package)",
            ));
        };
        let model = speech.section.model_id();
        if !speech.answers_to(hearing.model.as_deref()) {
            return Err(Refused::new(
                ErrorCode::ModelNotFound,
                format!(
                    "no speech model is called {:?}; this hub's is {model} (whisper-1 means it too)",
                    hearing.model.unwrap_or_default()
                ),
            ));
        }
        if let Some(language) = &hearing.hints.language {
            let code = language_code(language)
                .map_err(|why| Refused::new(ErrorCode::InvalidRequestError, why.to_string()))?;
            hearing.hints.language = Some(code);
        }
        let max_bytes = max_upload(Some(&speech.section));
        if audio.len() > max_bytes {
            return Err(Refused::new(
                ErrorCode::InvalidRequestError,
                too_large(max_bytes),
            ));
        }
        let account = Account::of(caller, asker);
        if !account.access.permits(&Target::Model(model.clone())) {
            return Err(Refused::new(
                ErrorCode::NotPermitted,
                format!(
                    "{} may not use {model}: the household's policy (grants of hearth.example/cap/ai) lets them use {}",
                    account.who,
                    account.access.allowed()
                ),
            ));
        }
        let limits = Limits {
            max_seconds: speech.section.max_seconds,
        };
        // Decoding is CPU work: off the runtime's threads.
        let decoded = tokio::task::spawn_blocking(move || audio::decode(audio, limits))
            .await
            .map_err(|_| Refused::new(ErrorCode::Internal, "decoding the audio failed"))?
            .map_err(|error| Refused::new(ErrorCode::InvalidRequestError, error.to_string()))?;
        let seconds = decoded.seconds();
        let asked_ms = (seconds * 1000.0).ceil() as u64;
        let _slot = self.take_slot(account.holder.clone())?;
        let _turn = speech.one_at_a_time.lock().await;
        let today = crate::usage::day_of(hearth_runtime::clock::unix_seconds());
        let store_failed = |error: sqlx::Error| {
            tracing::error!(%error, "the usage store failed");
            Refused::new(ErrorCode::Internal, "the usage store failed")
        };
        if account.access.daily_audio_seconds.is_some() {
            let used = self
                .usage
                .used_audio_ms(&account.who, &today)
                .await
                .map_err(store_failed)?;
            crate::access::within_audio_budget(&account.who, &account.access, used, asked_ms)
                .map_err(|over| Refused::new(ErrorCode::BudgetExhausted, over.to_string()))?;
        }
        let wav = audio::wav(&decoded.samples);
        drop(decoded);
        let transcript = speech
            .whisper
            .transcribe(wav, hearing.hints)
            .await
            .map_err(|error| {
                tracing::warn!(%error, "speech recognition failed");
                Refused::new(ErrorCode::BackendFailed, error.to_string())
            })?;
        self.usage
            .record_audio(&today, &account.who, &model, asked_ms)
            .await
            .map_err(store_failed)?;
        Ok(Heard {
            model,
            transcript,
            seconds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_language_is_a_short_code_in_lower_case_or_refused_with_why() {
        assert_eq!(language_code("ko").unwrap(), "ko");
        assert_eq!(language_code(" EN ").unwrap(), "en");
        assert_eq!(language_code("haw").unwrap(), "haw");
        for bad in ["korean", "k", "ko-KR", "e1", ""] {
            let error = language_code(bad).unwrap_err();
            assert!(error.to_string().contains("ISO 639-1"), "{bad}: {error}");
        }
    }
}
