//! Newline-delimited JSON (Ollama's stream), split into lines from bytes as
//! they arrive. Pure and incremental, like [`crate::sse`]: a multi-byte
//! character split across network chunks is only decoded once whole.

/// A malformed stream.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// A line is not UTF-8.
    #[error("the stream is not UTF-8")]
    Encoding,
    /// A line grew beyond the limit without ending.
    #[error("a stream line exceeds {0} bytes")]
    TooLong(usize),
}

/// Longest accepted line.
pub const MAX_LINE: usize = 1 << 20;

/// Splits bytes into complete, non-empty lines.
#[derive(Debug, Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// A splitter at the start of a stream.
    pub fn new() -> LineSplitter {
        LineSplitter::default()
    }

    /// Feeds `bytes`; returns the lines they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<String>, LineError> {
        self.pending.extend_from_slice(bytes);
        let mut lines = Vec::new();
        let mut start = 0;
        while let Some(offset) = self.pending[start..].iter().position(|byte| *byte == b'\n') {
            let end = start + offset;
            let line =
                std::str::from_utf8(&self.pending[start..end]).map_err(|_| LineError::Encoding)?;
            let line = line.trim_end_matches('\r');
            if !line.trim().is_empty() {
                lines.push(line.to_owned());
            }
            start = end + 1;
        }
        self.pending.drain(..start);
        if self.pending.len() > MAX_LINE {
            return Err(LineError::TooLong(MAX_LINE));
        }
        Ok(lines)
    }

    /// The unterminated rest, at the end of the stream (a last line without a newline).
    pub fn finish(self) -> Result<Option<String>, LineError> {
        let rest = String::from_utf8(self.pending).map_err(|_| LineError::Encoding)?;
        Ok((!rest.trim().is_empty()).then_some(rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_anywhere_come_out_whole() {
        let text = "{\"a\":\"caf\u{e9}\"}\n\n{\"b\":1}\n{\"c\"".as_bytes();
        let mut splitter = LineSplitter::new();
        let mut lines = Vec::new();
        for chunk in text.chunks(3) {
            lines.extend(splitter.push(chunk).unwrap());
        }
        assert_eq!(lines, ["{\"a\":\"caf\u{e9}\"}", "{\"b\":1}"]);
        assert_eq!(splitter.finish().unwrap().as_deref(), Some("{\"c\""));
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        assert_eq!(
            LineSplitter::new().push(b"\xc3\x28\n"),
            Err(LineError::Encoding)
        );
    }
}
