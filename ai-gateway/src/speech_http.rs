//! OpenAI's `POST /v1/audio/transcriptions` (the form the `openai` SDK and
//! every voice-capable app send: `file`, `model`, `language`, `prompt`,
//! `response_format`, `temperature`), on the gateway's port and on
//! Ollama's, over the speech use case ([`Gateway::transcribe`]). Errors are
//! each port's own shape (Ollama's middleware rewrites them).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Multipart, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hearth_e2ee::ErrorCode;
use serde_json::json;

use crate::caller::Caller;
use crate::edge::{error_body, invalid, refusal, refused_response};
use crate::gateway::{Gateway, Heard, Hearing};

/// How the words are given back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `{"text": ...}` (the default).
    Json,
    /// The words alone, as text/plain.
    Text,
    /// The language, duration and timed segments too.
    VerboseJson,
    /// SubRip subtitles.
    Srt,
    /// WebVTT subtitles.
    Vtt,
}

impl Format {
    /// `response_format` as the form gives it.
    pub fn parse(text: &str) -> Option<Format> {
        Some(match text {
            "json" => Format::Json,
            "text" => Format::Text,
            "verbose_json" => Format::VerboseJson,
            "srt" => Format::Srt,
            "vtt" => Format::Vtt,
            _ => return None,
        })
    }
}

/// The form's fields, read.
#[derive(Default)]
struct Form {
    file: Option<Bytes>,
    hearing: Hearing,
    format: Option<String>,
}

/// Longest text field (a prompt; the rest are short).
const MAX_FIELD: usize = 4096;

async fn read_form(mut multipart: Multipart, max_bytes: usize) -> Result<Form, Response> {
    let too_large = || {
        error_body(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::InvalidRequestError,
            crate::gateway::too_large(max_bytes),
        )
    };
    let broken = |error: axum::extract::multipart::MultipartError| {
        if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            invalid(format!(
                "not a multipart form of a recording: {}",
                error.body_text()
            ))
        }
    };
    let mut form = Form::default();
    while let Some(field) = multipart.next_field().await.map_err(broken)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            form.file = Some(field.bytes().await.map_err(broken)?);
            continue;
        }
        let value = field.bytes().await.map_err(broken)?;
        if value.len() > MAX_FIELD {
            return Err(invalid(format!(
                "`{name}` is longer than {MAX_FIELD} bytes"
            )));
        }
        let Ok(value) = String::from_utf8(value.to_vec()) else {
            return Err(invalid(format!("`{name}` is not UTF-8 text")));
        };
        let value = value.trim().to_owned();
        match name.as_str() {
            "model" => form.hearing.model = Some(value),
            "language" if !value.is_empty() => form.hearing.hints.language = Some(value),
            "prompt" if !value.is_empty() => form.hearing.hints.prompt = Some(value),
            "response_format" => form.format = Some(value),
            "temperature" if !value.is_empty() => {
                let temperature = value
                    .parse::<f32>()
                    .ok()
                    .filter(|t| (0.0..=1.0).contains(t));
                let Some(temperature) = temperature else {
                    return Err(invalid("`temperature` is a number from 0 to 1"));
                };
                form.hearing.hints.temperature = Some(temperature);
            }
            // OpenAI's other fields (timestamp_granularities[], stream,
            // chunking_strategy, include[]) change nothing here.
            _ => {}
        }
    }
    Ok(form)
}

/// `POST /v1/audio/transcriptions`.
pub(crate) async fn transcriptions(
    State(gateway): State<Arc<Gateway>>,
    axum::Extension(caller): axum::Extension<Caller>,
    multipart: Multipart,
) -> Response {
    if let Err(refused) = gateway.admit_plain(caller.address) {
        return refusal(&gateway, refused);
    }
    let max_bytes = crate::gateway::max_upload(gateway.speech().map(|speech| speech.section()));
    let form = match read_form(multipart, max_bytes).await {
        Ok(form) => form,
        Err(response) => return response,
    };
    let format = match form.format.as_deref() {
        None | Some("") => Format::Json,
        Some(text) => match Format::parse(text) {
            Some(format) => format,
            None => {
                return invalid(format!(
                    "`response_format` is json, text, verbose_json, srt or vtt, not {text:?}"
                ));
            }
        },
    };
    let Some(file) = form.file.filter(|file| !file.is_empty()) else {
        return invalid("the form has no `file`: send the recording as the `file` field");
    };
    match gateway.transcribe(&caller, None, file, form.hearing).await {
        Ok(heard) => answer(&heard, format),
        Err(refused) => refused_response(refused),
    }
}

/// The words in `format`.
pub fn answer(heard: &Heard, format: Format) -> Response {
    let transcript = &heard.transcript;
    let usage = json!({"type": "duration", "seconds": heard.seconds.ceil() as u64});
    match format {
        Format::Json => Json(json!({"text": transcript.text, "usage": usage})).into_response(),
        Format::Text => plain(
            format!("{}\n", transcript.text),
            "text/plain; charset=utf-8",
        ),
        Format::VerboseJson => {
            let segments: Vec<_> = transcript
                .segments
                .iter()
                .map(|segment| {
                    json!({"id": segment.id, "seek": 0, "start": segment.start, "end": segment.end,
                           "text": segment.text, "tokens": [], "temperature": 0.0,
                           "avg_logprob": 0.0, "compression_ratio": 0.0, "no_speech_prob": 0.0})
                })
                .collect();
            Json(
                json!({"task": "transcribe", "language": transcript.language,
                        "duration": heard.seconds, "text": transcript.text,
                        "segments": segments, "usage": usage, "model": heard.model}),
            )
            .into_response()
        }
        Format::Srt => plain(subtitles(heard, false), "application/x-subrip"),
        Format::Vtt => plain(subtitles(heard, true), "text/vtt"),
    }
}

fn plain(body: String, content_type: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// SubRip (or, `vtt`, WebVTT) of the segments. Pure.
pub fn subtitles(heard: &Heard, vtt: bool) -> String {
    let stamp = |seconds: f64| {
        let millis = (seconds.max(0.0) * 1000.0).round() as u64;
        let (h, m, s, ms) = (
            millis / 3_600_000,
            millis / 60_000 % 60,
            millis / 1000 % 60,
            millis % 1000,
        );
        if vtt {
            format!("{h:02}:{m:02}:{s:02}.{ms:03}")
        } else {
            format!("{h:02}:{m:02}:{s:02},{ms:03}")
        }
    };
    let mut out = if vtt {
        "WEBVTT\n\n".to_owned()
    } else {
        String::new()
    };
    for (index, segment) in heard.transcript.segments.iter().enumerate() {
        if !vtt {
            out.push_str(&format!("{}\n", index + 1));
        }
        out.push_str(&format!(
            "{} --> {}\n{}\n\n",
            stamp(segment.start),
            stamp(segment.end),
            segment.text
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use hearth_speech::whisper::{Segment, Transcript};

    use super::*;

    fn heard() -> Heard {
        Heard {
            model: "speech/whisper-base".into(),
            seconds: 63.5,
            transcript: Transcript {
                text: "Hello there. And again.".into(),
                language: "english".into(),
                duration: 63.5,
                segments: vec![
                    Segment {
                        id: 0,
                        start: 0.0,
                        end: 1.25,
                        text: "Hello there.".into(),
                    },
                    Segment {
                        id: 1,
                        start: 61.0,
                        end: 3661.5,
                        text: "And again.".into(),
                    },
                ],
            },
        }
    }

    #[test]
    fn subtitles_are_timed_as_subrip_and_webvtt_write_them() {
        assert_eq!(
            subtitles(&heard(), false),
            "1\n00:00:00,000 --> 00:00:01,250\nHello there.\n\n2\n00:01:01,000 --> 01:01:01,500\nAnd again.\n\n"
        );
        assert!(subtitles(&heard(), true).starts_with("WEBVTT\n\n00:00:00.000 --> 00:00:01.250\n"));
    }

    #[test]
    fn the_formats_openai_names_are_read_and_others_are_not() {
        assert_eq!(Format::parse("verbose_json"), Some(Format::VerboseJson));
        assert_eq!(Format::parse("text"), Some(Format::Text));
        assert_eq!(Format::parse("diarized_json"), None);
    }
}
