//! Each format apps send decodes to the same sentence: the recordings in
//! `tests/fixtures` (one espeak-ng sentence encoded by ffmpeg, see its
//! README) against the 8-bit WAV of it.

use std::path::Path;

use bytes::Bytes;
use hearth_speech::audio::{self, AudioError, Limits, RATE};

const LIMITS: Limits = Limits { max_seconds: 60 };

fn fixture(name: &str) -> Bytes {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    Bytes::from(std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display())))
}

/// Loudness per 20 ms.
fn envelope(samples: &[f32]) -> Vec<f32> {
    samples
        .chunks(RATE as usize / 50)
        .map(|frame| (frame.iter().map(|s| s * s).sum::<f32>() / frame.len() as f32).sqrt())
        .collect()
}

/// The best correlation of two envelopes, one shifted by up to 10 frames
/// (encoders' priming and padding move the start).
fn likeness(a: &[f32], b: &[f32]) -> f32 {
    (-10i32..=10)
        .map(|shift| {
            let pairs: Vec<(f32, f32)> = (0..a.len() as i32)
                .filter_map(|i| {
                    let j = i + shift;
                    (j >= 0 && (j as usize) < b.len()).then(|| (a[i as usize], b[j as usize]))
                })
                .collect();
            let n = pairs.len() as f32;
            let (ma, mb) = (
                pairs.iter().map(|p| p.0).sum::<f32>() / n,
                pairs.iter().map(|p| p.1).sum::<f32>() / n,
            );
            let cov: f32 = pairs.iter().map(|(x, y)| (x - ma) * (y - mb)).sum();
            let va: f32 = pairs.iter().map(|(x, _)| (x - ma).powi(2)).sum();
            let vb: f32 = pairs.iter().map(|(_, y)| (y - mb).powi(2)).sum();
            cov / (va.sqrt() * vb.sqrt())
        })
        .fold(f32::MIN, f32::max)
}

#[test]
fn every_format_an_app_sends_decodes_to_the_same_sentence() {
    let reference = audio::decode(fixture("question.u8.wav"), LIMITS).unwrap();
    assert!(
        (reference.seconds() - 2.155).abs() < 0.01,
        "{}",
        reference.seconds()
    );
    let reference = envelope(&reference.samples);
    for (name, codec) in [
        ("question.webm", "opus"),
        ("question.opus.ogg", "opus"),
        ("question.m4a", "aac"),
        ("question.mp3", "mp3"),
        ("question.vorbis.ogg", "vorbis"),
    ] {
        let decoded =
            audio::decode(fixture(name), LIMITS).unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(decoded.format, codec, "{name}");
        // Encoders pad to whole frames: at most a tenth of a second more.
        assert!(
            (2.1..2.3).contains(&decoded.seconds()),
            "{name}: {} s",
            decoded.seconds()
        );
        let likeness = likeness(&reference, &envelope(&decoded.samples));
        assert!(
            likeness > 0.9,
            "{name}: its loudness follows the sentence's only {likeness}"
        );
    }
}

#[test]
fn a_recording_cut_short_or_longer_than_allowed_gets_its_own_error() {
    let short = Limits { max_seconds: 1 };
    for name in [
        "question.webm",
        "question.m4a",
        "question.mp3",
        "question.u8.wav",
    ] {
        assert_eq!(
            audio::decode(fixture(name), short),
            Err(AudioError::TooLong { max: 1 }),
            "{name}"
        );
    }
    // Cut in the middle: a WAV says how long it should be; the others end
    // where they end, or are no longer audio at all, and never panic.
    let wav = fixture("question.u8.wav");
    assert!(matches!(
        audio::decode(wav.slice(..wav.len() / 2), LIMITS),
        Err(AudioError::Truncated { .. })
    ));
    for name in [
        "question.webm",
        "question.opus.ogg",
        "question.m4a",
        "question.mp3",
    ] {
        let whole = fixture(name);
        for cut in [12, whole.len() / 3, whole.len() - 7] {
            let _ = audio::decode(whole.slice(..cut), LIMITS);
        }
    }
}

/// The fuzz target's first find: a WebM whose Opus packets make the Opus
/// decoder subtract past zero and panic (which, in the gateway, would end
/// the request's task without an answer). It is damaged audio, said so.
#[test]
fn a_recording_that_makes_a_decoder_panic_is_damaged_audio() {
    match audio::decode(fixture("damaged-opus.webm"), LIMITS) {
        Err(AudioError::Undecodable(why)) => assert!(why.contains("damaged"), "{why}"),
        Ok(audio) => {
            // A decoder built without overflow checks may get through it;
            // then it is audio within the limits.
            assert!(audio.seconds() <= 60.0);
        }
        Err(other) => panic!("{other}"),
    }
}
