//! Audio as the apps record it, decoded to what Whisper hears: 16 kHz,
//! one channel, samples in [-1, 1]. Containers and codecs are Symphonia's
//! (WAV, MP3, Ogg Vorbis/FLAC, M4A/AAC) but WebM, read by [`crate::webm`];
//! Opus, what browsers' MediaRecorder writes in WebM and Ogg, is decoded
//! by a pure Rust decoder straight to 16 kHz. Pure: bytes in, samples or a clear
//! error out; nothing is read or written elsewhere.

use std::io::ErrorKind;

use bytes::Bytes;
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CODEC_TYPE_NULL, CODEC_TYPE_OPUS, CodecParameters, DecoderOptions};
use symphonia::core::errors::Error as MediaError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// The sample rate Whisper listens at.
pub const RATE: u32 = 16_000;

/// What a request may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The longest audio, in seconds.
    pub max_seconds: u32,
}

/// Decoded audio: mono, [`RATE`] Hz.
#[derive(Clone, Debug, PartialEq)]
pub struct Audio {
    /// The samples, in [-1, 1].
    pub samples: Vec<f32>,
    /// The codec's short name (`opus`, `aac`, `mp3`, `vorbis`,
    /// `pcm_s16le`, …).
    pub format: String,
}

impl Audio {
    /// Its length in seconds.
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(RATE)
    }
}

/// Why audio could not be decoded: each says what to do.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum AudioError {
    /// No reader knows the bytes.
    #[error(
        "the file is not audio Hearth can read (it reads WebM/Opus, Ogg, M4A/AAC, WAV, MP3 and FLAC)"
    )]
    NotAudio,
    /// A container without a sound track, or one of a codec not read.
    #[error("the file holds no sound track Hearth can decode{0}")]
    NoTrack(String),
    /// Longer than allowed.
    #[error(
        "the audio is longer than {max} seconds, the most one request may hold; send a shorter recording"
    )]
    TooLong {
        /// The limit, in seconds.
        max: u32,
    },
    /// The file stops before what its header announced.
    #[error(
        "the file ends early: it holds {got:.1} s of the {announced:.1} s its header announces (was the upload cut short?)"
    )]
    Truncated {
        /// Seconds decoded.
        got: f64,
        /// Seconds the header announced.
        announced: f64,
    },
    /// Nothing could be decoded.
    #[error("the file holds no sound that could be decoded ({0})")]
    Undecodable(String),
    /// It decoded to nothing.
    #[error("the recording is empty")]
    Empty,
}

/// Decodes `bytes` (a whole recording) to [`RATE`] Hz mono, within
/// `limits`. A decoder that panics on what it is given (the fuzz target
/// found one in the Opus decoder) fails this file only, as damaged audio.
pub fn decode(bytes: Bytes, limits: Limits) -> Result<Audio, AudioError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decode_unguarded(bytes, limits)
    }))
    .unwrap_or_else(|_| {
        Err(AudioError::Undecodable(
            "a decoder failed on the file's data: it is damaged".to_owned(),
        ))
    })
}

fn decode_unguarded(bytes: Bytes, limits: Limits) -> Result<Audio, AudioError> {
    if crate::webm::is_webm(&bytes) {
        return decode_webm(&bytes, limits);
    }
    let source = MediaSourceStream::new(
        Box::new(std::io::Cursor::new(bytes)),
        MediaSourceStreamOptions::default(),
    );
    let probed = symphonia::default::get_probe()
        .format(
            &Hint::new(),
            source,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|_| AudioError::NotAudio)?;
    let mut reader = probed.format;
    let track = reader
        .tracks()
        .iter()
        .find(|track| track.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| AudioError::NoTrack(String::new()))?;
    let (track_id, params) = (track.id, track.codec_params.clone());
    let codec = codec_name(&params);
    let rate = params.sample_rate.unwrap_or(48_000);
    if rate == 0 || rate > 384_000 {
        return Err(AudioError::NoTrack(format!(
            " (its sample rate, {rate} Hz, is not one audio has)"
        )));
    }
    // What the header announces, when it does: too long is said at once,
    // and a file that stops short of it is cut.
    let announced = params
        .n_frames
        .map(|frames| frames as f64 / f64::from(rate));
    if let Some(announced) = announced
        && announced > f64::from(limits.max_seconds)
    {
        return Err(AudioError::TooLong {
            max: limits.max_seconds,
        });
    }
    let mut sink = Sink::new(rate, limits);
    let ended = if params.codec == CODEC_TYPE_OPUS {
        decode_opus(reader.as_mut(), track_id, &params, &mut sink)?
    } else {
        decode_symphonia(reader.as_mut(), track_id, &params, &mut sink)?
    };
    let samples = sink.finish();
    let got = samples.len() as f64 / f64::from(RATE);
    if let (Ended::Cut, Some(announced)) = (ended, announced)
        && got + 0.1 < announced
    {
        return Err(AudioError::Truncated { got, announced });
    }
    if samples.is_empty() {
        return Err(AudioError::Empty);
    }
    Ok(Audio {
        samples,
        format: codec,
    })
}

fn codec_name(params: &CodecParameters) -> String {
    symphonia::default::get_codecs()
        .get_codec(params.codec)
        .map(|codec| codec.short_name.to_owned())
        .unwrap_or_else(|| {
            if params.codec == CODEC_TYPE_OPUS {
                "opus".to_owned()
            } else {
                "audio".to_owned()
            }
        })
}

/// How reading stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ended {
    /// The container said it was done.
    Whole,
    /// The bytes ran out mid-way.
    Cut,
}

/// The next packet of `track`, or how the stream ended.
fn next_packet(
    reader: &mut dyn FormatReader,
    track: u32,
) -> Result<Result<symphonia::core::formats::Packet, Ended>, AudioError> {
    loop {
        match reader.next_packet() {
            Ok(packet) if packet.track_id() == track => return Ok(Ok(packet)),
            Ok(_) => {}
            Err(MediaError::IoError(error)) if error.kind() == ErrorKind::UnexpectedEof => {
                return Ok(Err(Ended::Cut));
            }
            Err(MediaError::ResetRequired) => return Ok(Err(Ended::Whole)),
            Err(MediaError::IoError(_)) => return Ok(Err(Ended::Cut)),
            Err(error) => return Err(AudioError::Undecodable(error.to_string())),
        }
    }
}

fn decode_symphonia(
    reader: &mut dyn FormatReader,
    track: u32,
    params: &CodecParameters,
    sink: &mut Sink,
) -> Result<Ended, AudioError> {
    let mut decoder = symphonia::default::get_codecs()
        .make(params, &DecoderOptions::default())
        .map_err(|error| AudioError::NoTrack(format!(" ({error})")))?;
    let mut buffer: Option<SampleBuffer<f32>> = None;
    let mut failures = 0usize;
    loop {
        let packet = match next_packet(reader, track)? {
            Ok(packet) => packet,
            Err(ended) => return Ok(ended),
        };
        let decoded = match decoder.decode(&packet) {
            Ok(decoded) => decoded,
            // A damaged packet is skipped, as players do; a file of
            // nothing but damage is not audio.
            Err(MediaError::DecodeError(error)) => {
                failures += 1;
                if failures > 64 && sink.is_empty() {
                    return Err(AudioError::Undecodable(error.to_owned()));
                }
                continue;
            }
            Err(MediaError::IoError(_)) => return Ok(Ended::Cut),
            Err(error) => return Err(AudioError::Undecodable(error.to_string())),
        };
        let spec = *decoded.spec();
        let channels = spec.channels.count().max(1);
        if sink.is_empty() && spec.rate != sink.from_rate && spec.rate > 0 {
            // The header's rate was missing or wrong: the stream's own wins.
            sink.at_rate(spec.rate);
        } else if spec.rate != sink.from_rate {
            return Err(AudioError::Undecodable(
                "the sample rate changes mid-stream".to_owned(),
            ));
        }
        let frames = decoded.frames();
        let buffer = match &mut buffer {
            Some(buffer) if buffer.capacity() >= frames * channels => buffer,
            slot => slot.insert(SampleBuffer::new(decoded.capacity() as u64, spec)),
        };
        buffer.copy_interleaved_ref(decoded);
        sink.push(buffer.samples(), channels)?;
    }
}

/// Opus from Symphonia's Ogg reader: the decoder gives [`RATE`] Hz itself.
fn decode_opus(
    reader: &mut dyn FormatReader,
    track: u32,
    params: &CodecParameters,
    sink: &mut Sink,
) -> Result<Ended, AudioError> {
    let channels = params.channels.map(|channels| channels.count());
    let mut opus = Opus::new(params.extra_data.as_deref(), channels, sink)?;
    loop {
        match next_packet(reader, track)? {
            Ok(packet) => opus.push(&packet.data, sink)?,
            Err(ended) => return Ok(ended),
        }
    }
}

/// A WebM recording (what Chromium's and Firefox's MediaRecorder write),
/// read by [`crate::webm`].
fn decode_webm(bytes: &[u8], limits: Limits) -> Result<Audio, AudioError> {
    let webm = crate::webm::read(bytes).map_err(|error| match error {
        crate::webm::WebmError::NotWebm => AudioError::NotAudio,
        crate::webm::WebmError::NoAudio => AudioError::NoTrack(String::new()),
        other => AudioError::Undecodable(other.to_string()),
    })?;
    if webm.track.codec != "A_OPUS" {
        return Err(AudioError::NoTrack(format!(
            " (WebM with {:?}: Hearth reads Opus in WebM; send Vorbis as Ogg)",
            webm.track.codec
        )));
    }
    let mut sink = Sink::new(RATE, limits);
    let channels = usize::try_from(webm.track.channels).ok().filter(|c| *c > 0);
    let mut opus = Opus::new(Some(&webm.track.private), channels, &mut sink)?;
    for frame in &webm.frames {
        opus.push(frame, &mut sink)?;
    }
    let samples = sink.finish();
    if samples.is_empty() {
        return Err(AudioError::Empty);
    }
    Ok(Audio {
        samples,
        format: "opus".to_owned(),
    })
}

/// An Opus stream being decoded, at [`RATE`].
struct Opus {
    decoder: opus_decoder::OpusDecoder,
    channels: usize,
    /// Samples still to drop: the encoder's look-ahead the stream starts with.
    skip: usize,
    pcm: Vec<f32>,
    failures: usize,
}

impl Opus {
    /// The channel count is the OpusHead's (WebM's CodecPrivate, Ogg's
    /// first packet), else the container's.
    fn new(
        head: Option<&[u8]>,
        channels: Option<usize>,
        sink: &mut Sink,
    ) -> Result<Opus, AudioError> {
        let head = head.and_then(opus_head);
        let channels = head
            .map(|head| usize::from(head.channels))
            .or(channels)
            .unwrap_or(1);
        if !(1..=2).contains(&channels) {
            return Err(AudioError::NoTrack(format!(
                " (Opus with {channels} channels: Hearth decodes mono and stereo)"
            )));
        }
        let decoder = opus_decoder::OpusDecoder::new(RATE, channels)
            .map_err(|error| AudioError::Undecodable(error.to_string()))?;
        sink.at_rate(RATE);
        Ok(Opus {
            decoder,
            channels,
            // Pre-skip is counted at 48 kHz.
            skip: head.map_or(0, |head| usize::from(head.pre_skip) / 3 * channels),
            pcm: vec![0f32; 5760 * channels],
            failures: 0,
        })
    }

    fn push(&mut self, packet: &[u8], sink: &mut Sink) -> Result<(), AudioError> {
        match self.decoder.decode_float(packet, &mut self.pcm, false) {
            Ok(frames) => {
                let samples = &self.pcm[..(frames * self.channels).min(self.pcm.len())];
                let dropped = self.skip.min(samples.len());
                self.skip -= dropped;
                sink.push(&samples[dropped..], self.channels)
            }
            // A damaged packet is skipped; a stream of nothing but damage
            // is not audio.
            Err(error) => {
                self.failures += 1;
                if self.failures > 64 && sink.is_empty() {
                    return Err(AudioError::Undecodable(format!("Opus: {error}")));
                }
                Ok(())
            }
        }
    }
}

/// What an OpusHead (RFC 7845 5.1) says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpusHead {
    /// Channels.
    pub channels: u8,
    /// Samples (at 48 kHz) to drop from the start.
    pub pre_skip: u16,
}

/// Reads an OpusHead; `None` when `bytes` is not one.
pub fn opus_head(bytes: &[u8]) -> Option<OpusHead> {
    if bytes.len() < 19 || &bytes[..8] != b"OpusHead" || bytes[8] & 0xf0 != 0 {
        return None;
    }
    Some(OpusHead {
        channels: bytes[9],
        pre_skip: u16::from_le_bytes([bytes[10], bytes[11]]),
    })
}

/// Where decoded samples go: mixed to one channel, brought to [`RATE`] as
/// they come, and counted against the limit.
struct Sink {
    from_rate: u32,
    max_seconds: u32,
    resampler: Resampler,
    /// Input samples taken (at `from_rate`).
    taken: usize,
    mono: Vec<f32>,
}

impl Sink {
    fn new(from_rate: u32, limits: Limits) -> Sink {
        Sink {
            from_rate,
            max_seconds: limits.max_seconds,
            resampler: Resampler::new(from_rate, RATE),
            taken: 0,
            mono: Vec::new(),
        }
    }

    /// The samples come at `rate` from now on (before any came).
    fn at_rate(&mut self, rate: u32) {
        self.from_rate = rate;
        self.resampler = Resampler::new(rate, RATE);
    }

    fn is_empty(&self) -> bool {
        self.taken == 0
    }

    fn push(&mut self, interleaved: &[f32], channels: usize) -> Result<(), AudioError> {
        let channels = channels.max(1);
        let mixed: Vec<f32> = interleaved
            .chunks(channels)
            .map(|frame| frame.iter().sum::<f32>() / frame.len() as f32)
            .collect();
        self.taken += mixed.len();
        if self.taken > self.max_seconds as usize * self.from_rate as usize {
            return Err(AudioError::TooLong {
                max: self.max_seconds,
            });
        }
        let resampled = self.resampler.push(&mixed);
        self.mono.extend(resampled);
        Ok(())
    }

    fn finish(mut self) -> Vec<f32> {
        let rest = self.resampler.finish();
        let mut samples = self.mono;
        samples.extend(rest);
        for sample in &mut samples {
            *sample = if sample.is_finite() {
                sample.clamp(-1.0, 1.0)
            } else {
                0.0
            };
        }
        samples
    }
}

/// Half the width, in input samples at the lower rate, of the resampler's
/// windowed-sinc filter.
const TAPS: i64 = 16;

/// `input` at `from` Hz as `to` Hz: a windowed-sinc low-pass at the lower
/// rate's band edge (so nothing above 8 kHz folds into speech when going
/// down to 16 kHz), evaluated at each output instant.
pub fn resample(input: &[f32], from: u32, to: u32) -> Vec<f32> {
    let mut resampler = Resampler::new(from, to);
    let mut out = resampler.push(input);
    out.extend(resampler.finish());
    out
}

/// [`resample`] a piece at a time: it keeps only the input its filter
/// still needs, so a long recording at 48 kHz is never held whole before
/// it is brought down to 16 kHz. The same samples as [`resample`] of the
/// whole.
#[derive(Clone, Debug)]
pub struct Resampler {
    /// Input samples per output sample; 1 passes the input through.
    ratio: f64,
    /// The filter's cutoff, in cycles per input sample.
    cutoff: f64,
    /// Half the filter's width, in input samples.
    half: i64,
    /// The input still needed, starting at input index `offset`.
    kept: Vec<f32>,
    offset: i64,
    /// Input samples pushed in all.
    pushed: i64,
    /// The next output's index.
    next: i64,
}

impl Resampler {
    /// A resampler from `from` Hz to `to` Hz.
    pub fn new(from: u32, to: u32) -> Resampler {
        let ratio = if from == 0 || to == 0 {
            1.0
        } else {
            f64::from(from) / f64::from(to)
        };
        Resampler {
            ratio,
            // A little under the band edge.
            cutoff: 0.5 * ratio.recip().min(1.0) * 0.95,
            half: (TAPS as f64 * ratio.max(1.0)).ceil() as i64,
            kept: Vec::new(),
            offset: 0,
            pushed: 0,
            next: 0,
        }
    }

    /// The output `input` completes.
    pub fn push(&mut self, input: &[f32]) -> Vec<f32> {
        if self.ratio == 1.0 {
            return input.to_vec();
        }
        self.kept.extend_from_slice(input);
        self.pushed += input.len() as i64;
        let mut out = Vec::new();
        while (self.next as f64 * self.ratio).floor() as i64 + self.half < self.pushed {
            out.push(self.sample(self.next));
            self.next += 1;
        }
        // What the next output's window starts at is all that is kept.
        let keep_from = ((self.next as f64 * self.ratio).floor() as i64 - self.half).max(0);
        let drop = (keep_from - self.offset).clamp(0, self.kept.len() as i64);
        self.kept.drain(..drop as usize);
        self.offset += drop;
        out
    }

    /// The rest of the output, the input having ended.
    pub fn finish(&mut self) -> Vec<f32> {
        if self.ratio == 1.0 {
            return Vec::new();
        }
        let length = (self.pushed as f64 / self.ratio).floor() as i64;
        let mut out = Vec::new();
        while self.next < length {
            out.push(self.sample(self.next));
            self.next += 1;
        }
        out
    }

    /// Output `index`, from the input kept (clamped to what was pushed).
    fn sample(&self, index: i64) -> f32 {
        let center = index as f64 * self.ratio;
        let first = (center.floor() as i64 - self.half).max(self.offset);
        let end = (center.floor() as i64 + self.half).min(self.pushed - 1);
        let (mut sum, mut weights) = (0.0f64, 0.0f64);
        for at in first..=end {
            let distance = center - at as f64;
            let window =
                0.5 + 0.5 * (std::f64::consts::PI * distance / (self.half as f64 + 1.0)).cos();
            let weight = 2.0 * self.cutoff * sinc(2.0 * self.cutoff * distance) * window;
            sum += f64::from(self.kept[(at - self.offset) as usize]) * weight;
            weights += weight;
        }
        if weights.abs() > f64::EPSILON {
            (sum / weights) as f32
        } else {
            0.0
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-12 {
        1.0
    } else {
        let pi_x = std::f64::consts::PI * x;
        pi_x.sin() / pi_x
    }
}

/// `samples` (mono, [`RATE`] Hz) as a 16-bit PCM WAV file.
pub fn wav(samples: &[f32]) -> Vec<u8> {
    let data = u32::try_from(samples.len() * 2).unwrap_or(u32::MAX - 36);
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // one channel
    out.extend_from_slice(&RATE.to_le_bytes());
    out.extend_from_slice(&(RATE * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data.to_le_bytes());
    for sample in samples {
        let value = (sample.clamp(-1.0, 1.0) * 32767.0).round() as i16;
        out.extend_from_slice(&value.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { max_seconds: 30 };

    fn tone(rate: u32, seconds: f32, hz: f32) -> Vec<f32> {
        (0..(rate as f32 * seconds) as usize)
            .map(|n| 0.5 * (2.0 * std::f32::consts::PI * hz * n as f32 / rate as f32).sin())
            .collect()
    }

    /// A 16-bit PCM WAV at `rate` with `channels` (the same samples in each).
    fn wav_at(samples: &[f32], rate: u32, channels: u16) -> Vec<u8> {
        let mut out = wav(samples);
        let block = 2 * channels;
        out[22..24].copy_from_slice(&channels.to_le_bytes());
        out[24..28].copy_from_slice(&rate.to_le_bytes());
        out[28..32].copy_from_slice(&(rate * u32::from(block)).to_le_bytes());
        out[32..34].copy_from_slice(&block.to_le_bytes());
        let pcm: Vec<u8> = out[44..]
            .chunks(2)
            .flat_map(|sample| {
                std::iter::repeat_n(sample, usize::from(channels))
                    .flatten()
                    .copied()
            })
            .collect();
        out.truncate(40);
        out.extend_from_slice(&(pcm.len() as u32).to_le_bytes());
        out.extend_from_slice(&pcm);
        let riff = (out.len() - 8) as u32;
        out[4..8].copy_from_slice(&riff.to_le_bytes());
        out
    }

    /// The strength of `hz` in `samples` (at [`RATE`]), 0 to about 0.5.
    fn strength(samples: &[f32], hz: f32) -> f32 {
        let (mut re, mut im) = (0.0f32, 0.0f32);
        for (n, sample) in samples.iter().enumerate() {
            let phase = 2.0 * std::f32::consts::PI * hz * n as f32 / RATE as f32;
            re += sample * phase.cos();
            im += sample * phase.sin();
        }
        (re * re + im * im).sqrt() / samples.len() as f32 * 2.0
    }

    #[test]
    fn a_stereo_wav_at_48_khz_comes_out_mono_at_16_khz_with_its_tone() {
        let bytes = wav_at(&tone(48_000, 1.0, 440.0), 48_000, 2);
        let audio = decode(Bytes::from(bytes), LIMITS).unwrap();
        assert!((audio.seconds() - 1.0).abs() < 0.01, "{}", audio.seconds());
        assert!(strength(&audio.samples, 440.0) > 0.4);
    }

    #[test]
    fn going_down_to_16_khz_keeps_speech_and_drops_what_would_fold_into_it() {
        // 11 kHz at 48 kHz would fold to 5 kHz at 16 kHz without a filter.
        let down = resample(&tone(48_000, 0.5, 11_000.0), 48_000, RATE);
        assert!(
            strength(&down, 5_000.0) < 0.02,
            "{}",
            strength(&down, 5_000.0)
        );
        let kept = resample(&tone(48_000, 0.5, 1_000.0), 48_000, RATE);
        assert!(strength(&kept, 1_000.0) > 0.45);
        let up = resample(&tone(8_000, 0.5, 1_000.0), 8_000, RATE);
        assert_eq!(up.len(), 8_000);
        assert!(strength(&up, 1_000.0) > 0.45);
    }

    #[test]
    fn resampling_a_piece_at_a_time_gives_the_same_samples_and_keeps_little() {
        let input = tone(44_100, 1.3, 523.0);
        let whole = resample(&input, 44_100, RATE);
        let mut resampler = Resampler::new(44_100, RATE);
        let mut pieces = Vec::new();
        for chunk in input.chunks(1_000) {
            pieces.extend(resampler.push(chunk));
            assert!(resampler.kept.len() < 1_200, "{}", resampler.kept.len());
        }
        pieces.extend(resampler.finish());
        assert_eq!(pieces, whole);
        assert_eq!(
            whole.len(),
            (input.len() as f64 / (44_100.0 / 16_000.0)) as usize
        );
    }

    #[test]
    fn what_is_not_audio_is_said_to_be_so() {
        let text = Bytes::from_static(b"{\"model\": \"whisper-1\"} not a recording at all");
        assert_eq!(decode(text, LIMITS), Err(AudioError::NotAudio));
        assert_eq!(decode(Bytes::new(), LIMITS), Err(AudioError::NotAudio));
    }

    #[test]
    fn too_long_is_refused_before_it_is_decoded_whole() {
        let bytes = wav_at(&tone(RATE, 3.0, 300.0), RATE, 1);
        let short = Limits { max_seconds: 1 };
        assert_eq!(
            decode(Bytes::from(bytes), short),
            Err(AudioError::TooLong { max: 1 })
        );
    }

    #[test]
    fn a_file_cut_short_is_said_to_be_cut() {
        let mut bytes = wav_at(&tone(RATE, 2.0, 300.0), RATE, 1);
        bytes.truncate(bytes.len() / 2);
        match decode(Bytes::from(bytes), LIMITS) {
            Err(AudioError::Truncated { got, announced }) => {
                assert!(
                    (announced - 2.0).abs() < 0.01 && got < 1.1,
                    "{got} of {announced}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_wav_of_silence_only_header_is_empty() {
        let bytes = wav(&[]);
        assert!(matches!(
            decode(Bytes::from(bytes), LIMITS),
            Err(AudioError::Empty | AudioError::NotAudio)
        ));
    }

    #[test]
    fn an_opus_head_is_read_and_other_bytes_are_not_one() {
        let mut head = b"OpusHead".to_vec();
        head.extend_from_slice(&[1, 2, 0x38, 0x01, 0x80, 0xbb, 0, 0, 0, 0, 0]);
        assert_eq!(
            opus_head(&head),
            Some(OpusHead {
                channels: 2,
                pre_skip: 312
            })
        );
        assert_eq!(opus_head(&head[..18]), None);
        assert_eq!(opus_head(b"OpusTags and then some more"), None);
    }

    #[test]
    fn the_wav_written_is_read_back_the_same() {
        let samples = tone(RATE, 0.25, 700.0);
        let audio = decode(Bytes::from(wav(&samples)), LIMITS).unwrap();
        assert_eq!(audio.samples.len(), samples.len());
        let worst = samples
            .iter()
            .zip(&audio.samples)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-3, "{worst}");
    }
}
