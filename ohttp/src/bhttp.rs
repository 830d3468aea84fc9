//! Binary HTTP messages (RFC 9292): requests and responses in the
//! known-length and indeterminate-length forms, with interim responses,
//! trailers, padding and truncation. Decoding never sizes a buffer from a
//! length it has not yet checked against the input.

use crate::Error;
use crate::varint::{self, Reader};

/// The most field lines one section may hold.
pub const MAX_FIELDS: usize = 256;
/// The most interim (1xx) responses one response may hold.
pub const MAX_INTERIM: usize = 16;

/// A field line: name and value, as bytes.
pub type Field = (Vec<u8>, Vec<u8>);

/// How a message was (or is to be) framed, so that a decoded message
/// encodes back to the same bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Framing {
    /// Known-length (true) or indeterminate-length (false).
    pub known_length: bool,
    /// How many of the three sections after the control data (fields,
    /// content, trailers) are present; the rest were truncated (empty).
    pub sections: u8,
    /// Zero bytes of padding at the end.
    pub padding: usize,
}

impl Default for Framing {
    fn default() -> Framing {
        Framing {
            known_length: true,
            sections: 3,
            padding: 0,
        }
    }
}

/// An HTTP request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: Vec<u8>,
    /// `https`, `http`.
    pub scheme: Vec<u8>,
    /// The host (and port).
    pub authority: Vec<u8>,
    /// The path and query.
    pub path: Vec<u8>,
    /// Header fields.
    pub headers: Vec<Field>,
    /// The content.
    pub content: Vec<u8>,
    /// Trailer fields.
    pub trailers: Vec<Field>,
    /// How it is framed.
    pub framing: Framing,
}

/// An interim (1xx) response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interim {
    /// 100 to 199.
    pub status: u16,
    /// Its fields.
    pub headers: Vec<Field>,
}

/// An HTTP response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    /// Interim responses before the final one.
    pub interim: Vec<Interim>,
    /// 200 to 599.
    pub status: u16,
    /// Header fields.
    pub headers: Vec<Field>,
    /// The content.
    pub content: Vec<u8>,
    /// Trailer fields.
    pub trailers: Vec<Field>,
    /// How it is framed.
    pub framing: Framing,
}

impl Request {
    /// A request with known-length framing and nothing else set.
    pub fn new(method: &str, scheme: &str, authority: &str, path: &str) -> Request {
        Request {
            method: method.into(),
            scheme: scheme.into(),
            authority: authority.into(),
            path: path.into(),
            ..Request::default()
        }
    }

    /// The value of header `name` (ASCII case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        find(&self.headers, name)
    }

    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let known = self.framing.known_length;
        varint::put(&mut out, if known { 0 } else { 2 });
        for part in [&self.method, &self.scheme, &self.authority, &self.path] {
            put_bytes(&mut out, part);
        }
        put_sections(
            &mut out,
            self.framing,
            &self.headers,
            &self.content,
            &self.trailers,
        );
        out
    }

    /// Reads a request (either framing) that is the whole of `input`.
    pub fn decode(input: &[u8]) -> Result<Request, Error> {
        let mut reader = Reader::new(input);
        let known = match reader.varint()? {
            0 => true,
            2 => false,
            1 | 3 => return Err(Error::Malformed("a response where a request was expected")),
            _ => return Err(Error::Malformed("the framing indicator")),
        };
        let method = reader.prefixed(usize::MAX)?.to_vec();
        let scheme = reader.prefixed(usize::MAX)?.to_vec();
        let authority = reader.prefixed(usize::MAX)?.to_vec();
        let path = reader.prefixed(usize::MAX)?.to_vec();
        let (headers, content, trailers, framing) = read_sections(&mut reader, known)?;
        Ok(Request {
            method,
            scheme,
            authority,
            path,
            headers,
            content,
            trailers,
            framing,
        })
    }
}

impl Response {
    /// A response with `status`, known-length framing and nothing else.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            ..Response::default()
        }
    }

    /// The value of header `name` (ASCII case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        find(&self.headers, name)
    }

    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let known = self.framing.known_length;
        varint::put(&mut out, if known { 1 } else { 3 });
        for interim in &self.interim {
            varint::put(&mut out, u64::from(interim.status));
            put_fields(&mut out, known, &interim.headers);
        }
        varint::put(&mut out, u64::from(self.status));
        put_sections(
            &mut out,
            self.framing,
            &self.headers,
            &self.content,
            &self.trailers,
        );
        out
    }

    /// Reads a response (either framing) that is the whole of `input`.
    pub fn decode(input: &[u8]) -> Result<Response, Error> {
        let mut reader = Reader::new(input);
        let known = match reader.varint()? {
            1 => true,
            3 => false,
            0 | 2 => return Err(Error::Malformed("a request where a response was expected")),
            _ => return Err(Error::Malformed("the framing indicator")),
        };
        let mut interim = Vec::new();
        let status = loop {
            let status = reader.varint()?;
            match status {
                100..=199 if status != 101 => {
                    if interim.len() == MAX_INTERIM {
                        return Err(Error::TooLarge);
                    }
                    let headers = read_fields(&mut reader, known)?;
                    interim.push(Interim {
                        status: status as u16,
                        headers,
                    });
                }
                200..=599 => break status as u16,
                _ => return Err(Error::Malformed("the status code")),
            }
        };
        let (headers, content, trailers, framing) = read_sections(&mut reader, known)?;
        Ok(Response {
            interim,
            status,
            headers,
            content,
            trailers,
            framing,
        })
    }
}

fn find<'a>(fields: &'a [Field], name: &str) -> Option<&'a [u8]> {
    fields
        .iter()
        .find(|(field, _)| field.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, value)| value.as_slice())
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    varint::put(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_fields(out: &mut Vec<u8>, known: bool, fields: &[Field]) {
    let mut lines = Vec::new();
    for (name, value) in fields {
        put_bytes(&mut lines, name);
        put_bytes(&mut lines, value);
    }
    if known {
        put_bytes(out, &lines);
    } else {
        out.extend_from_slice(&lines);
        varint::put(out, 0);
    }
}

fn put_sections(
    out: &mut Vec<u8>,
    framing: Framing,
    headers: &[Field],
    content: &[u8],
    trailers: &[Field],
) {
    let known = framing.known_length;
    if framing.sections >= 1 {
        put_fields(out, known, headers);
    }
    if framing.sections >= 2 {
        if known {
            put_bytes(out, content);
        } else {
            if !content.is_empty() {
                put_bytes(out, content);
            }
            varint::put(out, 0);
        }
    }
    if framing.sections >= 3 {
        put_fields(out, known, trailers);
    }
    out.resize(out.len() + framing.padding, 0);
}

/// Whether what is left is empty or only padding (zero bytes).
fn at_end(reader: &Reader<'_>) -> bool {
    reader.rest().iter().all(|byte| *byte == 0)
}

fn read_fields(reader: &mut Reader<'_>, known: bool) -> Result<Vec<Field>, Error> {
    let mut fields = Vec::new();
    if known {
        let section = reader.prefixed(usize::MAX)?;
        let mut inner = Reader::new(section);
        while !inner.is_empty() {
            fields.push(read_field(&mut inner)?);
            if fields.len() > MAX_FIELDS {
                return Err(Error::TooLarge);
            }
        }
    } else {
        loop {
            let name_length = reader.varint()?;
            if name_length == 0 {
                break;
            }
            let name = reader.bytes(usize::try_from(name_length).map_err(|_| Error::Truncated)?)?;
            let value = reader.prefixed(usize::MAX)?;
            fields.push((name.to_vec(), value.to_vec()));
            if fields.len() > MAX_FIELDS {
                return Err(Error::TooLarge);
            }
        }
    }
    Ok(fields)
}

fn read_field(reader: &mut Reader<'_>) -> Result<Field, Error> {
    let name = reader.prefixed(usize::MAX)?;
    if name.is_empty() {
        return Err(Error::Malformed("an empty field name"));
    }
    let value = reader.prefixed(usize::MAX)?;
    Ok((name.to_vec(), value.to_vec()))
}

type Sections = (Vec<Field>, Vec<u8>, Vec<Field>, Framing);

/// The fields, content and trailers, each possibly truncated away (the
/// input ends where the section would start); zero bytes after the
/// trailers are padding.
fn read_sections(reader: &mut Reader<'_>, known: bool) -> Result<Sections, Error> {
    let mut framing = Framing {
        known_length: known,
        sections: 0,
        padding: 0,
    };
    let (mut headers, mut content, mut trailers) = (Vec::new(), Vec::new(), Vec::new());
    if !reader.is_empty() {
        headers = read_fields(reader, known)?;
        framing.sections = 1;
        if !reader.is_empty() {
            content = read_content(reader, known)?;
            framing.sections = 2;
            if !reader.is_empty() {
                trailers = read_fields(reader, known)?;
                framing.sections = 3;
            }
        }
    }
    if !at_end(reader) {
        return Err(Error::Malformed(
            "bytes after the message that are not padding",
        ));
    }
    framing.padding = reader.rest().len();
    Ok((headers, content, trailers, framing))
}

fn read_content(reader: &mut Reader<'_>, known: bool) -> Result<Vec<u8>, Error> {
    if known {
        return Ok(reader.prefixed(usize::MAX)?.to_vec());
    }
    let mut content = Vec::new();
    loop {
        let length = reader.varint()?;
        if length == 0 {
            return Ok(content);
        }
        content.extend_from_slice(
            reader.bytes(usize::try_from(length).map_err(|_| Error::Truncated)?)?,
        );
    }
}

/// What a streamed response yields.
#[derive(Debug, PartialEq, Eq)]
pub enum StreamEvent {
    /// The final status and its header fields (interim responses skipped).
    Head {
        /// 200 to 599.
        status: u16,
        /// Header fields.
        headers: Vec<Field>,
    },
    /// Content, as it arrives.
    Content(Vec<u8>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Framing,
    Head,
    Content { started: bool },
    Trailers,
    Done,
}

/// An indeterminate-length response read as its bytes arrive (what the
/// OHTTP gateway streams): [`ResponseStream::push`] each piece,
/// [`ResponseStream::finish`] at the end.
pub struct ResponseStream {
    buffer: Vec<u8>,
    stage: Stage,
    interim: usize,
}

impl Default for ResponseStream {
    fn default() -> ResponseStream {
        ResponseStream {
            buffer: Vec::new(),
            stage: Stage::Framing,
            interim: 0,
        }
    }
}

impl ResponseStream {
    /// A reader at the start of a response.
    pub fn new() -> ResponseStream {
        ResponseStream::default()
    }

    /// Takes the next bytes; what they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<StreamEvent>, Error> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        loop {
            let mut reader = Reader::new(&self.buffer);
            let step = match self.stage {
                Stage::Framing => match reader.varint() {
                    Ok(3) => Ok(Stage::Head),
                    Ok(1) => Err(Error::Unsupported("a known-length response in a stream")),
                    Ok(_) => Err(Error::Malformed("the framing indicator")),
                    Err(error) => Err(error),
                },
                Stage::Head => Self::head(&mut reader, &mut self.interim).map(|head| {
                    if let Some((status, headers)) = head {
                        events.push(StreamEvent::Head { status, headers });
                        Stage::Content { started: false }
                    } else {
                        Stage::Head
                    }
                }),
                Stage::Content { .. } => match reader.varint() {
                    Ok(0) => Ok(Stage::Trailers),
                    Ok(length) => match usize::try_from(length)
                        .map_err(|_| Error::TooLarge)
                        .and_then(|length| reader.bytes(length))
                    {
                        Ok(content) => {
                            events.push(StreamEvent::Content(content.to_vec()));
                            Ok(Stage::Content { started: true })
                        }
                        Err(error) => Err(error),
                    },
                    Err(error) => Err(error),
                },
                Stage::Trailers => read_fields(&mut reader, false).map(|_| Stage::Done),
                Stage::Done => {
                    if !at_end(&reader) {
                        return Err(Error::Malformed(
                            "bytes after the response that are not padding",
                        ));
                    }
                    self.buffer.clear();
                    return Ok(events);
                }
            };
            match step {
                Ok(stage) => {
                    let used = self.buffer.len() - reader.rest().len();
                    self.buffer.drain(..used);
                    self.stage = stage;
                }
                Err(Error::Truncated) => return Ok(events),
                Err(error) => return Err(error),
            }
        }
    }

    /// One interim response (`None`) or the final head.
    #[allow(clippy::type_complexity)]
    fn head(
        reader: &mut Reader<'_>,
        interim: &mut usize,
    ) -> Result<Option<(u16, Vec<Field>)>, Error> {
        let status = reader.varint()?;
        let headers = read_fields(reader, false)?;
        match status {
            100..=199 if status != 101 => {
                *interim += 1;
                if *interim > MAX_INTERIM {
                    return Err(Error::TooLarge);
                }
                Ok(None)
            }
            200..=599 => Ok(Some((status as u16, headers))),
            _ => Err(Error::Malformed("the status code")),
        }
    }

    /// The end of the bytes: fine if the response is whole (or ends where a
    /// section would begin), [`Error::Truncated`] otherwise.
    pub fn finish(&self) -> Result<(), Error> {
        let boundary = self.buffer.iter().all(|byte| *byte == 0);
        match self.stage {
            Stage::Done | Stage::Trailers | Stage::Content { started: false } if boundary => Ok(()),
            _ => Err(Error::Truncated),
        }
    }
}

/// The bytes that begin an indeterminate-length response with `status`
/// and `headers`: what a streaming sender writes before any content.
pub fn response_head(status: u16, headers: &[Field]) -> Vec<u8> {
    let mut out = Vec::new();
    varint::put(&mut out, 3);
    varint::put(&mut out, u64::from(status));
    put_fields(&mut out, false, headers);
    out
}

/// One content chunk of an indeterminate-length message (not empty).
pub fn content_chunk(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 8);
    put_bytes(&mut out, content);
    out
}

/// What ends an indeterminate-length response after its content: the
/// content terminator and an empty trailer section.
pub const RESPONSE_END: [u8; 2] = [0, 0];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_messages_round_trip_in_both_framings() {
        let mut request = Request::new("POST", "https", "router.internal:3600", "/v1/compute");
        request
            .headers
            .push((b"content-type".to_vec(), b"application/json".to_vec()));
        request.content = b"{}".to_vec();
        for known in [true, false] {
            request.framing.known_length = known;
            assert_eq!(Request::decode(&request.encode()).unwrap(), request);
        }
        let mut response = Response::new(200);
        response.interim.push(Interim {
            status: 103,
            headers: vec![(b"link".to_vec(), b"</a>".to_vec())],
        });
        response.content = b"data: x\n\n".to_vec();
        response.trailers.push((b"done".to_vec(), b"yes".to_vec()));
        for known in [true, false] {
            response.framing.known_length = known;
            assert_eq!(Response::decode(&response.encode()).unwrap(), response);
        }
        assert_eq!(
            request.header("Content-Type"),
            Some(&b"application/json"[..])
        );
    }

    #[test]
    fn a_streamed_response_yields_its_head_and_content_as_they_arrive() {
        let mut wire = response_head(
            200,
            &[(b"content-type".to_vec(), b"text/event-stream".to_vec())],
        );
        wire.extend(content_chunk(b"data: one\n\n"));
        wire.extend(content_chunk(b"data: two\n\n"));
        wire.extend(RESPONSE_END);
        let whole = Response::decode(&wire).unwrap();
        assert_eq!(whole.content, b"data: one\n\ndata: two\n\n");
        let mut stream = ResponseStream::new();
        let mut events = Vec::new();
        for byte in &wire {
            events.extend(stream.push(std::slice::from_ref(byte)).unwrap());
        }
        stream.finish().unwrap();
        assert_eq!(events.len(), 3);
        assert!(matches!(&events[0], StreamEvent::Head { status: 200, .. }));
        assert_eq!(events[2], StreamEvent::Content(b"data: two\n\n".to_vec()));
        // Cut inside the content: a truncation, not an end.
        let mut cut = ResponseStream::new();
        cut.push(&wire[..wire.len() - 6]).unwrap();
        assert!(matches!(cut.finish(), Err(Error::Truncated)));
    }

    #[test]
    fn bad_input_is_refused_without_panicking() {
        let request = Request::new("GET", "https", "a", "/").encode();
        for cut in 1..request.len() - 3 {
            // Cut inside the control data: refused, not read as something else.
            let _ = Request::decode(&request[..cut]);
        }
        assert!(Request::decode(&request[..3]).is_err());
        assert!(
            Response::decode(&request).is_err(),
            "a request is not a response"
        );
        let mut trailing = request.clone();
        trailing.push(7);
        assert!(
            Request::decode(&trailing).is_err(),
            "non-zero bytes after the message"
        );
        assert!(
            Response::decode(&[1, 0x40, 0x65]).is_err(),
            "101 is not an interim response"
        );
        assert!(
            Response::decode(&[1, 0x42, 0x58]).is_err(),
            "600 is not a status"
        );
    }
}
