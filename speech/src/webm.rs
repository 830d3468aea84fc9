//! WebM (Matroska) as browsers' MediaRecorder writes it: an EBML header, a
//! Segment (of unknown size when recorded live), its Tracks, then Clusters
//! (of unknown size too) of SimpleBlocks. Read here rather than by
//! Symphonia's Matroska reader, which panics on a recording cut short.
//! Pure: bytes in, the audio track's codec, its settings and its frames
//! out, or why not. Only what an audio recording needs is read; the rest
//! is skipped by its size.

/// The EBML magic every Matroska file starts with.
const EBML: u32 = 0x1A45_DFA3;
const SEGMENT: u32 = 0x1853_8067;
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const TRACK_NUMBER: u32 = 0xD7;
const TRACK_TYPE: u32 = 0x83;
const CODEC_ID: u32 = 0x86;
const CODEC_PRIVATE: u32 = 0x63A2;
const AUDIO: u32 = 0xE1;
const SAMPLING_FREQUENCY: u32 = 0xB5;
const CHANNELS: u32 = 0x9F;
const CLUSTER: u32 = 0x1F43_B675;
const BLOCK_GROUP: u32 = 0xA0;
const BLOCK: u32 = 0xA1;
const SIMPLE_BLOCK: u32 = 0xA3;

/// Most frames one file may hold (a five-minute recording of 20 ms
/// frames is 15,000).
const MOST_FRAMES: usize = 1 << 20;

/// One track, as its entry says.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Track {
    /// Its number, which blocks name.
    pub number: u64,
    /// 2 for audio.
    pub kind: u64,
    /// `A_OPUS`, `A_VORBIS`, …
    pub codec: String,
    /// The codec's own header (Opus: its OpusHead).
    pub private: Vec<u8>,
    /// Samples per second.
    pub rate: f64,
    /// Channels.
    pub channels: u64,
}

/// A WebM file's audio: its track and its frames, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WebmAudio {
    /// The audio track.
    pub track: Track,
    /// Its frames (one codec packet each).
    pub frames: Vec<Vec<u8>>,
    /// Whether the bytes stopped inside an element (a cut recording).
    pub cut: bool,
}

/// Why a WebM file could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebmError {
    /// Not an EBML file.
    #[error("not a WebM file")]
    NotWebm,
    /// Its elements do not parse.
    #[error("the WebM file is damaged at byte {0}")]
    Damaged(usize),
    /// No audio track.
    #[error("the WebM file has no audio track")]
    NoAudio,
    /// Laced in a way not read.
    #[error("the WebM file packs its frames with EBML lacing, which Hearth does not read")]
    Lacing,
    /// Too many frames.
    #[error("the WebM file holds more frames than a recording does")]
    TooManyFrames,
}

/// Whether `bytes` start as an EBML (Matroska, WebM) file.
pub fn is_webm(bytes: &[u8]) -> bool {
    bytes.len() >= 4 && u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) == EBML
}

/// A variable-length integer (RFC 8794 4): its value (with the length
/// marker kept, for IDs) and its length; `None` if cut or invalid.
fn vint(bytes: &[u8], keep_marker: bool) -> Option<(u64, usize)> {
    let first = *bytes.first()?;
    if first == 0 {
        return None;
    }
    let length = first.leading_zeros() as usize + 1;
    if length > 8 || bytes.len() < length {
        return None;
    }
    let mut value = if keep_marker {
        u64::from(first)
    } else {
        u64::from(first) & (0xFF >> length)
    };
    for byte in &bytes[1..length] {
        value = (value << 8) | u64::from(*byte);
    }
    Some((value, length))
}

/// An element's size: `None` for "unknown" (all ones).
fn size(bytes: &[u8]) -> Option<(Option<u64>, usize)> {
    let (value, length) = vint(bytes, false)?;
    let unknown = value == (1u64 << (7 * length)) - 1;
    Some(((!unknown).then_some(value), length))
}

fn unsigned(data: &[u8]) -> u64 {
    data.iter()
        .take(8)
        .fold(0, |value, byte| (value << 8) | u64::from(*byte))
}

fn float(data: &[u8]) -> f64 {
    match data.len() {
        4 => f64::from(f32::from_be_bytes([data[0], data[1], data[2], data[3]])),
        8 => f64::from_be_bytes(data.try_into().unwrap_or([0; 8])),
        _ => 0.0,
    }
}

/// Reads the audio of a WebM file. Master elements that hold what is
/// needed (Segment, Tracks, a TrackEntry, Audio, Cluster, BlockGroup) are
/// entered, whatever their size says (a live recording's is unknown);
/// everything else is skipped by its size.
pub fn read(bytes: &[u8]) -> Result<WebmAudio, WebmError> {
    if !is_webm(bytes) {
        return Err(WebmError::NotWebm);
    }
    let mut tracks: Vec<Track> = Vec::new();
    let mut blocks: Vec<(u64, Vec<Vec<u8>>)> = Vec::new();
    let mut frames = 0usize;
    let mut at = 0usize;
    let mut cut = false;
    while at < bytes.len() {
        let Some((id, id_length)) = vint(&bytes[at..], true) else {
            cut = true;
            break;
        };
        let Some((length, size_length)) = size(&bytes[at + id_length..]) else {
            cut = true;
            break;
        };
        let start = at + id_length + size_length;
        let id = u32::try_from(id).map_err(|_| WebmError::Damaged(at))?;
        if matches!(
            id,
            SEGMENT | TRACKS | TRACK_ENTRY | AUDIO | CLUSTER | BLOCK_GROUP
        ) {
            if id == TRACK_ENTRY {
                tracks.push(Track::default());
            }
            at = start;
            continue;
        }
        let Some(length) = length else {
            return Err(WebmError::Damaged(at));
        };
        let end = usize::try_from(length)
            .ok()
            .and_then(|length| start.checked_add(length))
            .ok_or(WebmError::Damaged(at))?;
        if end > bytes.len() {
            cut = true;
            break;
        }
        let data = &bytes[start..end];
        if let Some(track) = tracks.last_mut() {
            match id {
                TRACK_NUMBER => track.number = unsigned(data),
                TRACK_TYPE => track.kind = unsigned(data),
                CODEC_ID => track.codec = String::from_utf8_lossy(data).into_owned(),
                CODEC_PRIVATE => track.private = data.to_vec(),
                SAMPLING_FREQUENCY => track.rate = float(data),
                CHANNELS => track.channels = unsigned(data),
                _ => {}
            }
        }
        if matches!(id, SIMPLE_BLOCK | BLOCK) {
            let (track, laced) = block(data).ok_or(WebmError::Damaged(at))??;
            frames += laced.len();
            if frames > MOST_FRAMES {
                return Err(WebmError::TooManyFrames);
            }
            blocks.push((track, laced));
        }
        at = end;
    }
    let track = tracks
        .into_iter()
        .find(|track| track.kind == 2 || track.codec.starts_with("A_"))
        .ok_or(WebmError::NoAudio)?;
    let frames = blocks
        .into_iter()
        .filter(|(number, _)| *number == track.number)
        .flat_map(|(_, frames)| frames)
        .collect();
    Ok(WebmAudio { track, frames, cut })
}

/// Frames of one codec packet each.
type Frames = Vec<Vec<u8>>;

/// A (Simple)Block's track and frames; `None` if it does not parse.
fn block(data: &[u8]) -> Option<Result<(u64, Frames), WebmError>> {
    let (track, length) = vint(data, false)?;
    // The track number, a 16-bit timecode and the flags.
    let flags = *data.get(length + 2)?;
    let body = data.get(length + 3..)?;
    let frames = match (flags >> 1) & 3 {
        0 => vec![body.to_vec()],
        1 => xiph_laced(body)?,
        2 => {
            let count = usize::from(*body.first()?) + 1;
            let rest = &body[1..];
            if rest.len() % count != 0 {
                return None;
            }
            rest.chunks(rest.len() / count)
                .map(<[u8]>::to_vec)
                .collect()
        }
        _ => return Some(Err(WebmError::Lacing)),
    };
    Some(Ok((track, frames)))
}

/// Xiph lacing: a count, then each frame's size but the last's as runs of
/// 255 ended by a smaller byte.
fn xiph_laced(body: &[u8]) -> Option<Vec<Vec<u8>>> {
    let count = usize::from(*body.first()?) + 1;
    let mut at = 1;
    let mut sizes = Vec::with_capacity(count);
    for _ in 0..count - 1 {
        let mut size = 0usize;
        loop {
            let byte = *body.get(at)?;
            at += 1;
            size += usize::from(byte);
            if byte != 255 {
                break;
            }
        }
        sizes.push(size);
    }
    let mut frames = Vec::with_capacity(count);
    for size in sizes {
        frames.push(body.get(at..at.checked_add(size)?)?.to_vec());
        at += size;
    }
    frames.push(body.get(at..)?.to_vec());
    Some(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An element: its ID's bytes, its size (or unknown), its data.
    fn element(id: &[u8], data: &[u8], unknown: bool) -> Vec<u8> {
        let mut out = id.to_vec();
        if unknown {
            out.push(0xFF);
        } else {
            out.push(0x40 | (data.len() >> 8) as u8);
            out.push(data.len() as u8);
        }
        out.extend_from_slice(data);
        out
    }

    fn live_recording(blocks: &[&[u8]]) -> Vec<u8> {
        let mut entry = element(&[0xD7], &[1], false);
        entry.extend(element(&[0x83], &[2], false));
        entry.extend(element(&[0x86], b"A_OPUS", false));
        entry.extend(element(&[0xE1], &element(&[0x9F], &[1], false), false));
        let tracks = element(
            &[0x16, 0x54, 0xAE, 0x6B],
            &element(&[0xAE], &entry, false),
            false,
        );
        let mut cluster = element(&[0xE7], &[0], false);
        for body in blocks {
            let mut block = vec![0x81, 0, 0, 0x80];
            block.extend_from_slice(body);
            cluster.extend(element(&[0xA3], &block, false));
        }
        let mut segment = tracks;
        segment.extend(element(&[0x1F, 0x43, 0xB6, 0x75], &cluster, true));
        let mut file = element(
            &[0x1A, 0x45, 0xDF, 0xA3],
            &element(&[0x42, 0x82], b"webm", false),
            false,
        );
        file.extend(element(&[0x18, 0x53, 0x80, 0x67], &segment, true));
        file
    }

    #[test]
    fn a_live_recordings_unknown_sizes_are_entered_and_its_frames_read() {
        let file = live_recording(&[b"one", b"two"]);
        let audio = read(&file).unwrap();
        assert_eq!(audio.track.codec, "A_OPUS");
        assert_eq!(audio.track.channels, 1);
        assert_eq!(audio.frames, vec![b"one".to_vec(), b"two".to_vec()]);
        assert!(!audio.cut);
        let cut = read(&file[..file.len() - 2]).unwrap();
        assert_eq!(cut.frames, vec![b"one".to_vec()]);
        assert!(cut.cut);
    }

    #[test]
    fn laced_frames_are_split() {
        assert_eq!(
            xiph_laced(
                &[2, 255, 1, 2]
                    .iter()
                    .copied()
                    .chain([7; 258])
                    .collect::<Vec<_>>()
            )
            .map(|frames| frames.iter().map(Vec::len).collect::<Vec<_>>()),
            Some(vec![256, 2, 0])
        );
        let block = [0x81, 0, 0, 0x04, 1, 1, 2, 3, 4];
        assert_eq!(
            super::block(&block),
            Some(Ok((1, vec![vec![1, 2], vec![3, 4]])))
        );
        assert_eq!(
            super::block(&[0x81, 0, 0, 0x06, 0]),
            Some(Err(WebmError::Lacing))
        );
    }

    #[test]
    fn what_is_not_webm_or_lies_about_its_sizes_is_refused_without_a_panic() {
        assert_eq!(read(b"RIFF....WAVE"), Err(WebmError::NotWebm));
        assert_eq!(vint(&[0], true), None);
        let mut huge = vec![0x1A, 0x45, 0xDF, 0xA3, 0x01];
        huge.extend_from_slice(&[0xFF; 7]);
        assert!(read(&huge).is_err() || read(&huge).unwrap().cut);
        assert_eq!(read(&[0x1A, 0x45, 0xDF, 0xA3]), Err(WebmError::NoAudio));
    }
}
