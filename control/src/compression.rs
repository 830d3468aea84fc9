//! zstd on the map stream. A client that sends `Accept-Encoding: zstd` gets
//! its map stream as zstd frames one after another (`Content-Encoding:
//! zstd`); the bytes they decompress to are the same newline-delimited JSON
//! lines an uncompressed stream carries. A stream's parts are compressed
//! separately (a full map's shared parts once for many streams, each delta
//! once for all its recipients), which is why the body is a sequence of
//! frames rather than one.
//!
//! Pure: bytes in, bytes out, with bounded memory on the reading side.

use std::cell::RefCell;

use bytes::{Bytes, BytesMut};

/// The `Content-Encoding` (and `Accept-Encoding` token) of a zstd stream.
pub const ZSTD: &str = "zstd";

/// The compression level: fast, as it runs on the coordinator for every
/// stream (Tailscale's coordinator compresses map frames at the same level).
const LEVEL: i32 = 1;

/// The most one frame holds. A frame's window is at most its content, so
/// this also bounds the window a reader needs.
const MAX_FRAME_CONTENT: usize = 1024 * 1024;

/// The largest window a reader accepts (2 MiB): frames written here need
/// at most 1 MiB; a larger one is refused rather than allocated for.
const WINDOW_LOG_MAX: u32 = 21;

/// How much a reader decompresses at a time.
const SCRATCH: usize = 64 * 1024;

thread_local! {
    /// One compression context per thread, reused: a context is much larger
    /// than the small lines most frames carry.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { RefCell::new(None) };
}

/// `bytes` as zstd frames (one, unless `bytes` is over a megabyte), ready
/// to append to a stream.
pub fn frames(bytes: &[u8]) -> Bytes {
    COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let compressor = match cell.as_mut() {
            Some(compressor) => compressor,
            None => cell.insert(zstd::bulk::Compressor::new(LEVEL).expect("zstd level 1 exists")),
        };
        let mut out = Vec::with_capacity(bytes.len() / 3 + 64);
        let mut chunks = bytes.chunks(MAX_FRAME_CONTENT).peekable();
        if chunks.peek().is_none() {
            // An empty input is still one (empty) frame.
            out.extend(compressor.compress(&[]).expect("compression into a vector"));
        }
        for chunk in chunks {
            out.extend(
                compressor
                    .compress(chunk)
                    .expect("compression into a vector"),
            );
        }
        Bytes::from(out)
    })
}

/// How a stream's bytes travel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Encoding {
    /// As they are.
    #[default]
    Identity,
    /// As zstd frames.
    Zstd,
}

impl Encoding {
    /// What to send a client whose `Accept-Encoding` is `accept`: zstd when
    /// it lists `zstd` (without `q=0`), else the bytes as they are.
    pub fn negotiate(accept: Option<&str>) -> Encoding {
        let accepts_zstd = accept.unwrap_or_default().split(',').any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or_default();
            let refused = parts.any(|parameter| {
                parameter
                    .strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            coding.eq_ignore_ascii_case(ZSTD) && !refused
        });
        if accepts_zstd {
            Encoding::Zstd
        } else {
            Encoding::Identity
        }
    }
}

/// Why a compressed stream could not be read.
#[derive(Debug, thiserror::Error)]
#[error("zstd stream: {0}")]
pub struct DecodeError(std::io::Error);

/// Reads a sequence of zstd frames as they arrive, never decompressing
/// more than it is asked for: compressed input waits in the reader until
/// the caller wants more output, so a small input that expands to
/// gigabytes costs no more memory than the caller's limit.
pub struct FrameReader {
    decoder: zstd::stream::raw::Decoder<'static>,
    /// Compressed bytes received and not yet given to the decoder.
    pending: Bytes,
    /// Whether the decoder may hold output it had no room for last time
    /// (a block decompresses to up to 128 KiB, more than the scratch).
    holding: bool,
    scratch: Box<[u8]>,
}

impl FrameReader {
    /// A reader with nothing received yet.
    pub fn new() -> Result<FrameReader, DecodeError> {
        let mut decoder = zstd::stream::raw::Decoder::new().map_err(DecodeError)?;
        decoder
            .set_parameter(zstd::stream::raw::DParameter::WindowLogMax(WINDOW_LOG_MAX))
            .map_err(DecodeError)?;
        Ok(FrameReader {
            decoder,
            pending: Bytes::new(),
            holding: false,
            scratch: vec![0; SCRATCH].into_boxed_slice(),
        })
    }

    /// Whether there is more to read before new input is needed.
    pub fn has_more(&self) -> bool {
        self.holding || !self.pending.is_empty()
    }

    /// Adds compressed bytes received; call only once the earlier ones
    /// have been read ([`FrameReader::has_more`] is false).
    pub fn push(&mut self, compressed: Bytes) {
        debug_assert!(!self.has_more(), "input pushed before the last was read");
        self.pending = compressed;
    }

    /// Decompresses onto `out` until `out` has grown by at least `want`
    /// bytes or there is nothing more to read; returns how much it added.
    /// Output may exceed `want` by at most one scratch buffer.
    pub fn read_into(&mut self, out: &mut BytesMut, want: usize) -> Result<usize, DecodeError> {
        use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
        let mut added = 0;
        while added < want && self.has_more() {
            let mut input = InBuffer::around(&self.pending);
            let mut output = OutBuffer::around(&mut self.scratch[..]);
            self.decoder
                .run(&mut input, &mut output)
                .map_err(DecodeError)?;
            let (consumed, produced) = (input.pos(), output.pos());
            out.extend_from_slice(&self.scratch[..produced]);
            added += produced;
            let _ = self.pending.split_to(consumed);
            self.holding = produced == self.scratch.len();
            if consumed == 0 && produced == 0 {
                // The input is a frame's start too short to act on.
                return Err(DecodeError(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "no progress on the input received",
                )));
            }
        }
        Ok(added)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything `reader` makes of `compressed`, fed in pieces of `step`.
    fn read_all(compressed: &[u8], step: usize) -> Result<Vec<u8>, DecodeError> {
        let mut reader = FrameReader::new()?;
        let mut out = BytesMut::new();
        for piece in compressed.chunks(step.max(1)) {
            reader.push(Bytes::copy_from_slice(piece));
            reader.read_into(&mut out, usize::MAX)?;
            assert!(!reader.has_more(), "everything received was read");
        }
        Ok(out.to_vec())
    }

    #[test]
    fn frames_one_after_another_read_back_as_their_contents_joined() {
        let lines: Vec<Vec<u8>> = (0..50)
            .map(|index| {
                format!(
                    "{{\"line\":{index},\"pad\":\"{}\"}}\n",
                    "ab".repeat(index * 37)
                )
            })
            .map(String::into_bytes)
            .collect();
        let compressed: Vec<u8> = lines
            .iter()
            .flat_map(|line| frames(line).to_vec())
            .collect();
        let expected = lines.concat();
        for step in [1, 7, 64, 4096, compressed.len()] {
            assert_eq!(
                read_all(&compressed, step).unwrap(),
                expected,
                "pieces of {step}"
            );
        }
    }

    #[test]
    fn a_line_over_a_megabyte_is_several_frames_a_reader_joins() {
        let big: Vec<u8> = (0..3 * MAX_FRAME_CONTENT + 5)
            .map(|index| (index % 251) as u8)
            .collect();
        let compressed = frames(&big);
        assert_eq!(read_all(&compressed, 16 * 1024).unwrap(), big);
        assert_eq!(read_all(&frames(b""), 1).unwrap(), b"");
    }

    #[test]
    fn a_bomb_is_read_no_faster_than_asked() {
        // 256 MiB of zeros compresses to a few kilobytes.
        let zeros = vec![0u8; MAX_FRAME_CONTENT];
        let compressed: Vec<u8> = (0..256).flat_map(|_| frames(&zeros).to_vec()).collect();
        assert!(compressed.len() < 64 * 1024, "{} bytes", compressed.len());
        let mut reader = FrameReader::new().unwrap();
        reader.push(Bytes::from(compressed));
        let mut out = BytesMut::new();
        let added = reader.read_into(&mut out, 1000).unwrap();
        assert!((1000..=1000 + SCRATCH).contains(&added), "{added}");
        assert!(reader.has_more(), "the rest waits");
    }

    #[test]
    fn a_window_larger_than_two_megabytes_is_refused() {
        // Streamed, so the frame header states the window, not the size.
        let mut encoder = zstd::stream::raw::Encoder::new(19).unwrap();
        encoder
            .set_parameter(zstd::stream::raw::CParameter::WindowLog(24))
            .unwrap();
        let data: Vec<u8> = (0..8 * MAX_FRAME_CONTENT)
            .map(|index| (index * 7 % 253) as u8)
            .collect();
        let mut writer = zstd::stream::zio::Writer::new(Vec::new(), encoder);
        std::io::Write::write_all(&mut writer, &data).unwrap();
        writer.finish().unwrap();
        let compressed = writer.into_inner().0;
        let error = read_all(&compressed, 4096).unwrap_err();
        assert!(error.to_string().contains("zstd"), "{error}");
    }

    #[test]
    fn zstd_is_sent_only_to_a_client_that_accepts_it() {
        for (accept, expected) in [
            (None, Encoding::Identity),
            (Some(""), Encoding::Identity),
            (Some("gzip, deflate"), Encoding::Identity),
            (Some("zstd"), Encoding::Zstd),
            (Some("gzip, ZSTD;q=0.5"), Encoding::Zstd),
            (Some("zstd;q=0"), Encoding::Identity),
            (Some("zstd; q=0.0, gzip"), Encoding::Identity),
            (Some("zstdx"), Encoding::Identity),
        ] {
            assert_eq!(Encoding::negotiate(accept), expected, "{accept:?}");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(read_all(b"this is not zstd at all", 5).is_err());
        let mut cut = frames(&[7u8; 5000]).to_vec();
        cut[6] ^= 0xff;
        let _ = read_all(&cut, 3);
    }
}
