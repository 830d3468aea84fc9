//! Server-sent events, decoded from bytes as they arrive.
//!
//! Pure and incremental: network chunks may split a line, or a multi-byte
//! UTF-8 character, anywhere; bytes are buffered until a line is complete and
//! only whole lines are decoded. Comment lines (`:` keep-alives) are skipped.

/// One event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` name, if any.
    pub event: Option<String>,
    /// The `data:` lines, joined with newlines.
    pub data: String,
}

/// A malformed stream.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// A line is not UTF-8.
    #[error("the event stream is not UTF-8")]
    Encoding,
    /// A line grew beyond the limit without ending.
    #[error("an event stream line exceeds {0} bytes")]
    LineTooLong(usize),
}

/// Longest accepted line.
pub const MAX_LINE: usize = 1 << 20;

/// Decodes a byte stream into events.
#[derive(Debug, Default)]
pub struct SseDecoder {
    pending: Vec<u8>,
    event: Option<String>,
    data: Vec<String>,
}

impl SseDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> SseDecoder {
        SseDecoder::default()
    }

    /// Feeds `bytes`; returns the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        self.pending.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(offset) = self.pending[start..].iter().position(|byte| *byte == b'\n') {
            let end = start + offset;
            let mut line = &self.pending[start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let line = std::str::from_utf8(line)
                .map_err(|_| SseError::Encoding)?
                .to_owned();
            start = end + 1;
            if let Some(event) = self.line(&line) {
                events.push(event);
            }
        }
        self.pending.drain(..start);
        if self.pending.len() > MAX_LINE {
            return Err(SseError::LineTooLong(MAX_LINE));
        }
        Ok(events)
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            if self.data.is_empty() {
                self.event = None;
                return None;
            }
            return Some(SseEvent {
                event: self.event.take(),
                data: std::mem::take(&mut self.data).join("\n"),
            });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "data" => self.data.push(value.to_owned()),
            "event" => self.event = Some(value.to_owned()),
            // Not an SSE field: llama.cpp's server has written mid-stream
            // errors as `error: {json}` lines. Surface them as `error` events
            // rather than dropping them as the standard says.
            "error" => {
                self.event = Some("error".to_owned());
                self.data.push(value.to_owned());
            }
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(events: &[SseEvent]) -> Vec<&str> {
        events.iter().map(|event| event.data.as_str()).collect()
    }

    #[test]
    fn events_are_split_on_blank_lines_and_comments_skipped() {
        let mut decoder = SseDecoder::new();
        let events = decoder
            .push(b": keep-alive\n\ndata: one\n\nevent: note\ndata: a\ndata: b\r\n\r\n")
            .unwrap();
        assert_eq!(data(&events), ["one", "a\nb"]);
        assert_eq!(events[1].event.as_deref(), Some("note"));
    }

    #[test]
    fn llama_cpp_error_lines_become_error_events() {
        let events = SseDecoder::new()
            .push(b"error: {\"code\":500}\n\n")
            .unwrap();
        assert_eq!(
            events,
            [SseEvent {
                event: Some("error".into()),
                data: "{\"code\":500}".into()
            }]
        );
    }

    #[test]
    fn a_character_split_across_chunks_survives() {
        let text = "data: caf\u{e9}!\n\n".as_bytes();
        let split = text.iter().position(|byte| *byte == 0xc3).unwrap() + 1;
        let mut decoder = SseDecoder::new();
        assert!(decoder.push(&text[..split]).unwrap().is_empty());
        assert_eq!(data(&decoder.push(&text[split..]).unwrap()), ["caf\u{e9}!"]);
    }

    #[test]
    fn one_byte_at_a_time_gives_the_same_events() {
        let stream = b"data: {\"x\":1}\n\n: ping\n\ndata: [DONE]\n\n";
        let mut decoder = SseDecoder::new();
        let mut events = Vec::new();
        for byte in stream {
            events.extend(decoder.push(&[*byte]).unwrap());
        }
        assert_eq!(data(&events), ["{\"x\":1}", "[DONE]"]);
    }

    #[test]
    fn bad_bytes_and_endless_lines_are_errors() {
        assert_eq!(
            SseDecoder::new().push(b"data: \xff\n\n"),
            Err(SseError::Encoding)
        );
        let mut decoder = SseDecoder::new();
        assert_eq!(
            decoder.push(&vec![b'a'; MAX_LINE + 1]),
            Err(SseError::LineTooLong(MAX_LINE))
        );
    }
}
