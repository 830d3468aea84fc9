//! Encapsulation (RFC 9458 sections 4.3 to 4.4) and its chunked variant
//! (draft-ietf-ohai-chunked-ohttp): a request sealed to a gateway's key
//! configuration, and the response sealed back under a key only that
//! request's sender can compute. Pure: bytes in, bytes out; the ephemeral
//! key and the response nonce can be given, so the published vectors are
//! reproduced byte for byte.

use zeroize::Zeroizing;

use crate::Error;
use crate::hpke::{
    self, Aead, AeadKey, Context, KDF_HKDF_SHA256, KEM_X25519, KeyPair, NN, NPK, NT,
};
use crate::keys::KeyConfig;
use crate::varint::{self, Reader};

/// `message/ohttp-req`.
pub const REQUEST_MEDIA_TYPE: &str = "message/ohttp-req";
/// `message/ohttp-res`.
pub const RESPONSE_MEDIA_TYPE: &str = "message/ohttp-res";
/// `message/ohttp-chunked-req`.
pub const CHUNKED_REQUEST_MEDIA_TYPE: &str = "message/ohttp-chunked-req";
/// `message/ohttp-chunked-res`.
pub const CHUNKED_RESPONSE_MEDIA_TYPE: &str = "message/ohttp-chunked-res";

/// The most plaintext one chunk may carry; larger chunks are refused
/// before any buffer is sized by them.
pub const MAX_CHUNK: usize = 1 << 20;

const HEADER: usize = 7;
const FINAL_AAD: &[u8] = b"final";

/// Whole or chunked (streamed) encapsulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// RFC 9458: one sealed message each way.
    Whole,
    /// Chunked OHTTP: a sequence of sealed chunks each way, the last marked.
    Chunked,
}

impl Mode {
    fn request_label(self) -> &'static [u8] {
        match self {
            Mode::Whole => b"message/bhttp request",
            Mode::Chunked => b"message/bhttp chunked request",
        }
    }

    fn response_label(self) -> &'static [u8] {
        match self {
            Mode::Whole => b"message/bhttp response",
            Mode::Chunked => b"message/bhttp chunked response",
        }
    }

    /// The request media type of this mode.
    pub fn request_media_type(self) -> &'static str {
        match self {
            Mode::Whole => REQUEST_MEDIA_TYPE,
            Mode::Chunked => CHUNKED_REQUEST_MEDIA_TYPE,
        }
    }

    /// The response media type of this mode.
    pub fn response_media_type(self) -> &'static str {
        match self {
            Mode::Whole => RESPONSE_MEDIA_TYPE,
            Mode::Chunked => CHUNKED_RESPONSE_MEDIA_TYPE,
        }
    }
}

fn header(key_id: u8, aead: Aead) -> [u8; HEADER] {
    let mut header = [0u8; HEADER];
    header[0] = key_id;
    header[1..3].copy_from_slice(&KEM_X25519.to_be_bytes());
    header[3..5].copy_from_slice(&KDF_HKDF_SHA256.to_be_bytes());
    header[5..7].copy_from_slice(&aead.id().to_be_bytes());
    header
}

fn info(mode: Mode, header: &[u8; HEADER]) -> Vec<u8> {
    let label = mode.request_label();
    let mut info = Vec::with_capacity(label.len() + 1 + HEADER);
    info.extend_from_slice(label);
    info.push(0);
    info.extend_from_slice(header);
    info
}

/// Appends one chunk: `varint(len) || ciphertext`, or for the final one
/// `varint(0) || ciphertext` (it runs to the end of the message).
fn put_chunk(out: &mut Vec<u8>, ciphertext: &[u8], last: bool) {
    varint::put(out, if last { 0 } else { ciphertext.len() as u64 });
    out.extend_from_slice(ciphertext);
}

/// What the client keeps to open the response to its request.
pub struct ResponseKeys {
    aead: Aead,
    enc: [u8; NPK],
    secret: Zeroizing<Vec<u8>>,
}

impl ResponseKeys {
    fn new(mode: Mode, context: &Context, enc: [u8; NPK]) -> ResponseKeys {
        let aead = context.aead();
        let length = aead.key_len().max(NN);
        ResponseKeys {
            aead,
            enc,
            secret: context.export(mode.response_label(), length),
        }
    }

    fn nonce_len(&self) -> usize {
        self.aead.key_len().max(NN)
    }

    /// The response key and nonce for `response_nonce` (section 4.4).
    fn derive(&self, response_nonce: &[u8]) -> Result<(AeadKey, [u8; NN]), Error> {
        let mut salt = Vec::with_capacity(NPK + response_nonce.len());
        salt.extend_from_slice(&self.enc);
        salt.extend_from_slice(response_nonce);
        let key = hpke::hkdf_key(&salt, &self.secret, b"key", self.aead.key_len());
        let nonce = hpke::hkdf_key(&salt, &self.secret, b"nonce", NN);
        let mut base = [0u8; NN];
        base.copy_from_slice(&nonce);
        Ok((self.aead.key(&key)?, base))
    }
}

/// The client's side: encapsulates `request` (a Binary HTTP message) to
/// `config` with a fresh ephemeral key. The encapsulated request, and the
/// keys to open its response.
pub fn encapsulate(
    config: &KeyConfig,
    mode: Mode,
    request: &[&[u8]],
) -> Result<(Vec<u8>, ResponseKeys), Error> {
    encapsulate_with(config, mode, request, &KeyPair::generate())
}

/// [`encapsulate`] with a given ephemeral key (test vectors). In chunked
/// mode each slice of `request` is one chunk, the last one marked final;
/// in whole mode the slices are joined.
pub fn encapsulate_with(
    config: &KeyConfig,
    mode: Mode,
    request: &[&[u8]],
    ephemeral: &KeyPair,
) -> Result<(Vec<u8>, ResponseKeys), Error> {
    let aead = config.preferred_aead();
    let header = header(config.key_id, aead);
    let (enc, mut context) =
        hpke::setup_sender(&config.public_key, aead, &info(mode, &header), ephemeral)?;
    let mut out = Vec::with_capacity(
        HEADER
            + NPK
            + request
                .iter()
                .map(|part| part.len() + NT + 8)
                .sum::<usize>(),
    );
    out.extend_from_slice(&header);
    out.extend_from_slice(&enc);
    match mode {
        Mode::Whole => out.extend_from_slice(&context.seal(b"", &request.concat())?),
        Mode::Chunked => {
            let count = request.len().max(1);
            for index in 0..count {
                let part = request.get(index).copied().unwrap_or_default();
                let last = index + 1 == count;
                if !last && part.is_empty() {
                    return Err(Error::Malformed("an empty chunk before the last"));
                }
                let sealed = context.seal(if last { FINAL_AAD } else { b"" }, part)?;
                put_chunk(&mut out, &sealed, last);
            }
        }
    }
    Ok((out, ResponseKeys::new(mode, &context, enc)))
}

/// The gateway's side: what it keeps to seal the response to one request.
pub struct ResponseSealer {
    response_nonce: Vec<u8>,
    key: AeadKey,
    base_nonce: [u8; NN],
    counter: u64,
}

/// A decapsulated request: its key id, its Binary HTTP message, and the
/// sealer for its response.
pub struct Opened {
    /// The key configuration's id the client used.
    pub key_id: u8,
    /// The Binary HTTP request.
    pub request: Zeroizing<Vec<u8>>,
    /// Seals the response.
    pub sealer: ResponseSealer,
}

/// Reads the header: the key id and AEAD, if this gateway takes them.
fn read_header(reader: &mut Reader<'_>) -> Result<(u8, Aead, [u8; HEADER]), Error> {
    let bytes = reader.bytes(HEADER)?;
    let mut header = [0u8; HEADER];
    header.copy_from_slice(bytes);
    let kem = u16::from_be_bytes([header[1], header[2]]);
    let kdf = u16::from_be_bytes([header[3], header[4]]);
    let aead = u16::from_be_bytes([header[5], header[6]]);
    if kem != KEM_X25519 || kdf != KDF_HKDF_SHA256 {
        return Err(Error::Unsupported(
            "a KEM or KDF other than X25519 and HKDF-SHA256",
        ));
    }
    let aead = Aead::from_id(aead).ok_or(Error::Unsupported("the AEAD"))?;
    Ok((header[0], aead, header))
}

/// Decapsulates `body` (a whole encapsulated request) with the key pair
/// `key_for` returns for the request's key id (`None`: unknown or not
/// active now: [`Error::UnknownKey`]). `response_nonce` is for vectors;
/// `None` draws a random one.
pub fn decapsulate<'k>(
    body: &[u8],
    mode: Mode,
    key_for: impl Fn(u8) -> Option<(&'k KeyPair, &'k KeyConfig)>,
    response_nonce: Option<&[u8]>,
) -> Result<Opened, Error> {
    let mut reader = Reader::new(body);
    let (key_id, aead, header) = read_header(&mut reader)?;
    let (pair, config) = key_for(key_id).ok_or(Error::UnknownKey(key_id))?;
    if !config
        .symmetric
        .iter()
        .any(|(_, offered)| *offered == aead.id())
    {
        return Err(Error::Unsupported(
            "an AEAD this key configuration does not offer",
        ));
    }
    let mut enc = [0u8; NPK];
    enc.copy_from_slice(reader.bytes(NPK)?);
    let mut context = hpke::setup_receiver(&enc, pair, aead, &info(mode, &header))?;
    let request = match mode {
        Mode::Whole => context.open(b"", reader.rest())?,
        Mode::Chunked => {
            let mut request = Vec::new();
            loop {
                let length = reader.varint()?;
                if length == 0 {
                    request.extend_from_slice(&context.open(FINAL_AAD, reader.rest())?);
                    break;
                }
                if length > (MAX_CHUNK + NT) as u64 {
                    return Err(Error::TooLarge);
                }
                let chunk = context.open(b"", reader.bytes(length as usize)?)?;
                if chunk.is_empty() {
                    return Err(Error::Malformed("an empty chunk before the last"));
                }
                request.extend_from_slice(&chunk);
            }
            request
        }
    };
    let keys = ResponseKeys::new(mode, &context, enc);
    let nonce = match response_nonce {
        Some(nonce) if nonce.len() == keys.nonce_len() => nonce.to_vec(),
        Some(_) => return Err(Error::Malformed("the response nonce's length")),
        None => (0..keys.nonce_len())
            .map(|_| rand::random::<u8>())
            .collect(),
    };
    let (key, base_nonce) = keys.derive(&nonce)?;
    let sealer = ResponseSealer {
        response_nonce: nonce,
        key,
        base_nonce,
        counter: 0,
    };
    Ok(Opened {
        key_id,
        request: Zeroizing::new(request),
        sealer,
    })
}

impl ResponseSealer {
    /// The bytes that begin the response: the response nonce.
    pub fn start(&self) -> Vec<u8> {
        self.response_nonce.clone()
    }

    /// A whole response: the nonce and `response` sealed.
    pub fn seal_whole(self, response: &[u8]) -> Vec<u8> {
        let mut out = self.start();
        out.extend_from_slice(&self.key.seal(self.base_nonce, b"", response));
        out
    }

    /// One chunk of a chunked response (`last`: the final one, which may be
    /// empty). Non-final chunks must not be empty.
    pub fn seal_chunk(&mut self, chunk: &[u8], last: bool) -> Result<Vec<u8>, Error> {
        if !last && chunk.is_empty() {
            return Err(Error::Malformed("an empty chunk before the last"));
        }
        let nonce = hpke::xor_counter(self.base_nonce, self.counter);
        self.counter += 1;
        let sealed = self
            .key
            .seal(nonce, if last { FINAL_AAD } else { b"" }, chunk);
        let mut out = Vec::with_capacity(sealed.len() + 8);
        put_chunk(&mut out, &sealed, last);
        Ok(out)
    }
}

impl ResponseKeys {
    /// Opens a whole response.
    pub fn open_whole(&self, body: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
        let mut reader = Reader::new(body);
        let nonce = reader.bytes(self.nonce_len())?;
        let (key, base) = self.derive(nonce)?;
        Ok(Zeroizing::new(key.open(base, b"", reader.rest())?))
    }

    /// A reader of a chunked response as its bytes arrive.
    pub fn chunked(self) -> ChunkedResponse {
        ChunkedResponse {
            keys: self,
            opened: None,
            buffer: Vec::new(),
            counter: 0,
            in_final: false,
            done: false,
        }
    }
}

/// A chunked response opened as it arrives: [`ChunkedResponse::push`] for
/// each piece of the body, [`ChunkedResponse::finish`] at its end. A
/// response that ends without its final chunk is refused (truncation).
pub struct ChunkedResponse {
    keys: ResponseKeys,
    opened: Option<(AeadKey, [u8; NN])>,
    buffer: Vec<u8>,
    counter: u64,
    in_final: bool,
    done: bool,
}

impl ChunkedResponse {
    /// Takes the next bytes; the plaintext chunks now complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Zeroizing<Vec<u8>>>, Error> {
        if self.done {
            return Err(Error::Malformed("bytes after the final chunk"));
        }
        self.buffer.extend_from_slice(bytes);
        let mut chunks = Vec::new();
        loop {
            if self.opened.is_none() {
                let length = self.keys.nonce_len();
                if self.buffer.len() < length {
                    return Ok(chunks);
                }
                let nonce: Vec<u8> = self.buffer.drain(..length).collect();
                self.opened = Some(self.keys.derive(&nonce)?);
            }
            if self.in_final {
                // The final chunk runs to the end: wait for finish().
                if self.buffer.len() > MAX_CHUNK + NT {
                    return Err(Error::TooLarge);
                }
                return Ok(chunks);
            }
            let Some((length, used)) = varint::get(&self.buffer)? else {
                return Ok(chunks);
            };
            if length == 0 {
                self.buffer.drain(..used);
                self.in_final = true;
                continue;
            }
            if length > (MAX_CHUNK + NT) as u64 {
                return Err(Error::TooLarge);
            }
            let end = used + length as usize;
            if self.buffer.len() < end {
                return Ok(chunks);
            }
            let (key, base) = self.opened.as_ref().expect("derived above");
            let plaintext = key.open(
                hpke::xor_counter(*base, self.counter),
                b"",
                &self.buffer[used..end],
            )?;
            self.counter += 1;
            self.buffer.drain(..end);
            if plaintext.is_empty() {
                return Err(Error::Malformed("an empty chunk before the last"));
            }
            chunks.push(Zeroizing::new(plaintext));
        }
    }

    /// The end of the body: the final chunk's plaintext, or
    /// [`Error::Truncated`] if the response was cut before it.
    pub fn finish(&mut self) -> Result<Zeroizing<Vec<u8>>, Error> {
        let Some((key, base)) = self.opened.as_ref().filter(|_| self.in_final && !self.done) else {
            return Err(Error::Truncated);
        };
        let plaintext = key.open(
            hpke::xor_counter(*base, self.counter),
            FINAL_AAD,
            &self.buffer,
        )?;
        self.done = true;
        self.buffer.clear();
        Ok(Zeroizing::new(plaintext))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway() -> (KeyPair, KeyConfig) {
        let pair = KeyPair::generate();
        let config = KeyConfig::new(3, &pair);
        (pair, config)
    }

    #[test]
    fn whole_and_chunked_exchanges_round_trip() {
        let (pair, config) = gateway();
        for mode in [Mode::Whole, Mode::Chunked] {
            let (request, keys) = encapsulate(&config, mode, &[b"GET ", b"/hello"]).unwrap();
            let opened = decapsulate(
                &request,
                mode,
                |id| (id == 3).then_some((&pair, &config)),
                None,
            )
            .unwrap();
            assert_eq!(opened.request.as_slice(), b"GET /hello");
            let response = match mode {
                Mode::Whole => opened.sealer.seal_whole(b"200 OK"),
                Mode::Chunked => {
                    let mut sealer = opened.sealer;
                    let mut out = sealer.start();
                    out.extend(sealer.seal_chunk(b"200", false).unwrap());
                    out.extend(sealer.seal_chunk(b" OK", false).unwrap());
                    out.extend(sealer.seal_chunk(b"", true).unwrap());
                    out
                }
            };
            let text = match mode {
                Mode::Whole => keys.open_whole(&response).unwrap().to_vec(),
                Mode::Chunked => {
                    let mut reader = keys.chunked();
                    let mut text = Vec::new();
                    // One byte at a time: chunks come out as they complete.
                    for byte in &response {
                        for chunk in reader.push(std::slice::from_ref(byte)).unwrap() {
                            text.extend_from_slice(&chunk);
                        }
                    }
                    text.extend_from_slice(&reader.finish().unwrap());
                    text
                }
            };
            assert_eq!(text, b"200 OK");
        }
    }

    #[test]
    fn unknown_keys_tampering_and_truncation_are_refused() {
        let (pair, config) = gateway();
        let (request, keys) = encapsulate(&config, Mode::Chunked, &[b"one", b"two"]).unwrap();
        let find = |id: u8| (id == 3).then_some((&pair, &config));
        assert!(matches!(
            decapsulate(&request, Mode::Chunked, |_| None, None),
            Err(Error::UnknownKey(3))
        ));
        for index in [0, 8, HEADER + NPK + 2, request.len() - 1] {
            let mut altered = request.clone();
            altered[index] ^= 0x01;
            assert!(
                decapsulate(&altered, Mode::Chunked, find, None).is_err(),
                "byte {index}"
            );
        }
        // Cut before the final chunk, or read as the other mode.
        assert!(decapsulate(&request[..request.len() - 17], Mode::Chunked, find, None).is_err());
        assert!(decapsulate(&request, Mode::Whole, find, None).is_err());

        let opened = decapsulate(&request, Mode::Chunked, find, None).unwrap();
        let mut sealer = opened.sealer;
        let mut response = sealer.start();
        response.extend(sealer.seal_chunk(b"partial", false).unwrap());
        let mut reader = keys.chunked();
        assert_eq!(reader.push(&response).unwrap().len(), 1);
        assert!(
            matches!(reader.finish(), Err(Error::Truncated)),
            "no final chunk: a cut"
        );
    }
}
