//! The base transport of Tailscale's 2021 control protocol ("ts2021"), the
//! control server's side: the Noise IK handshake
//! (`Noise_IK_25519_ChaChaPoly_BLAKE2s`, prologue `Tailscale Control
//! Protocol v<N>`) whose initiation a client sends in the
//! `X-Tailscale-Handshake` header of its `/ts2021` upgrade, and the records
//! that follow: a 3-byte header (type 4, big-endian length), at most 4096
//! bytes each, ChaCha20-Poly1305 with the nonce counter big-endian (plain
//! Noise puts it little-endian, so a stock Noise transport cannot be used).
//! Pure: bytes in, bytes out; keys and the ephemeral key are inputs. The
//! client's side ([`initiate`]) is here too, for tests and tools that
//! speak to a control server; [`NoiseStream`] carries a session over any
//! byte stream, for either side.

use blake2::Digest as _;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// The Noise protocol name, hashed into the initial state.
const PROTOCOL_NAME: &[u8] = b"Noise_IK_25519_ChaChaPoly_BLAKE2s";
/// The prologue's prefix; the client's version follows in decimal.
const PROLOGUE_PREFIX: &str = "Tailscale Control Protocol v";

/// The oldest capability version accepted: what current clients send
/// (1.66 and later) and this coordinator's map encoding serves.
pub const MIN_CAPABILITY: u16 = 113;

/// Whether a client stating capability version `version` is served; the
/// refusal names the minimum.
pub fn check_capability(version: u16) -> Result<(), TooOld> {
    if version >= MIN_CAPABILITY {
        Ok(())
    } else {
        Err(TooOld(version))
    }
}

/// A Tailscale client older than [`MIN_CAPABILITY`]: the capability
/// version it states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "this coordinator serves Tailscale clients of capability version {MIN_CAPABILITY} or later (1.66+); this client states {0}: update it"
)]
pub struct TooOld(pub u16);

/// A machine public key as Tailscale writes it: `mkey:` and 64 hex digits.
pub fn machine_key_text(key: &[u8; 32]) -> String {
    let mut text = String::with_capacity(69);
    text.push_str("mkey:");
    for byte in key {
        text.push_str(&format!("{byte:02x}"));
    }
    text
}

/// The answer to `GET /key?v=N`: the control key for the Noise transport,
/// and a zero legacy key (clients this new use only the Noise transport).
pub fn key_response(control_public: &[u8; 32]) -> serde_json::Value {
    serde_json::json!({
        "legacyPublicKey": machine_key_text(&[0; 32]),
        "publicKey": machine_key_text(control_public),
    })
}

/// A handshake initiation's type.
pub const TYPE_INITIATION: u8 = 1;
/// A handshake response's type.
pub const TYPE_RESPONSE: u8 = 2;
/// An unauthenticated error message's type.
pub const TYPE_ERROR: u8 = 3;
/// A transport record's type.
pub const TYPE_RECORD: u8 = 4;

/// Bytes of a handshake initiation: version (2), type (1), length (2),
/// ephemeral key (32), sealed machine key (48), tag (16).
pub const INITIATION_LEN: usize = 101;
/// Bytes of a handshake response: type, length (2), ephemeral key, tag.
pub const RESPONSE_LEN: usize = 51;
/// The largest record on the wire, header included.
pub const MAX_RECORD: usize = 4096;
/// Bytes of a record header.
pub const HEADER_LEN: usize = 3;
const TAG: usize = 16;
/// The most plaintext one record carries.
pub const MAX_PLAINTEXT: usize = MAX_RECORD - HEADER_LEN - TAG;

/// Why a handshake or a record was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Ts2021Error {
    /// The initiation is not 101 bytes of type 1 with length 96.
    #[error("not a ts2021 handshake initiation")]
    NotAnInitiation,
    /// The initiation did not open under this control key.
    #[error("the handshake initiation did not open (wrong control key or tampered)")]
    Handshake,
    /// A low-order key gave an all-zero Diffie-Hellman result.
    #[error("a Diffie-Hellman result was zero")]
    LowOrder,
    /// A record of another type, or longer than allowed.
    #[error("not a transport record")]
    NotARecord,
    /// A record did not open: the stream is no longer usable.
    #[error("a record did not open")]
    Record,
    /// Nonces ran out (2^64 - 1 records).
    #[error("the session's nonces are exhausted")]
    Exhausted,
}

fn blake2s(parts: &[&[u8]]) -> [u8; 32] {
    let mut hash = blake2::Blake2s256::new();
    for part in parts {
        hash.update(part);
    }
    hash.finalize().into()
}

/// HMAC-BLAKE2s (RFC 2104; block 64 bytes).
fn hmac(key: &[u8], parts: &[&[u8]]) -> Zeroizing<[u8; 32]> {
    let mut block = Zeroizing::new([0u8; 64]);
    if key.len() > 64 {
        block[..32].copy_from_slice(&blake2s(&[key]));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner_pad: Zeroizing<Vec<u8>> =
        Zeroizing::new(block.iter().map(|byte| byte ^ 0x36).collect());
    let outer_pad: Zeroizing<Vec<u8>> =
        Zeroizing::new(block.iter().map(|byte| byte ^ 0x5c).collect());
    let mut inner = Vec::with_capacity(parts.len() + 1);
    inner.push(inner_pad.as_slice());
    inner.extend_from_slice(parts);
    let inner = Zeroizing::new(blake2s(&inner));
    Zeroizing::new(blake2s(&[&outer_pad, &inner[..]]))
}

/// Noise's HKDF with two outputs.
fn hkdf2(chaining_key: &[u8; 32], input: &[u8]) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>) {
    let temp = hmac(chaining_key, &[input]);
    let first = hmac(&temp[..], &[&[1]]);
    let second = hmac(&temp[..], &[&first[..], &[2]]);
    (first, second)
}

fn cipher(key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(
        UnboundKey::new(&CHACHA20_POLY1305, key).expect("32-byte keys fit ChaCha20-Poly1305"),
    )
}

fn nonce(counter: u64) -> Nonce {
    let mut bytes = [0u8; 12];
    bytes[4..].copy_from_slice(&counter.to_be_bytes());
    Nonce::assume_unique_for_key(bytes)
}

/// The handshake's symmetric state (Noise section 5.2).
struct Symmetric {
    hash: [u8; 32],
    chaining_key: Zeroizing<[u8; 32]>,
}

impl Symmetric {
    fn new(version: u16) -> Symmetric {
        let hash = blake2s(&[PROTOCOL_NAME]);
        let mut state = Symmetric {
            hash,
            chaining_key: Zeroizing::new(hash),
        };
        state.mix_hash(format!("{PROLOGUE_PREFIX}{version}").as_bytes());
        state
    }

    fn mix_hash(&mut self, data: &[u8]) {
        self.hash = blake2s(&[&self.hash, data]);
    }

    /// MixKey(DH(secret, public)): the key for the next (single) AEAD use.
    fn mix_dh(
        &mut self,
        secret: &StaticSecret,
        public: &[u8; 32],
    ) -> Result<Zeroizing<[u8; 32]>, Ts2021Error> {
        let shared = Zeroizing::new(secret.diffie_hellman(&PublicKey::from(*public)).to_bytes());
        if shared.iter().all(|byte| *byte == 0) {
            return Err(Ts2021Error::LowOrder);
        }
        let (chaining_key, key) = hkdf2(&self.chaining_key, &shared[..]);
        self.chaining_key = chaining_key;
        Ok(key)
    }

    fn encrypt_and_hash(&mut self, key: &[u8; 32], plaintext: &[u8]) -> Vec<u8> {
        let mut out = plaintext.to_vec();
        cipher(key)
            .seal_in_place_append_tag(nonce(0), Aad::from(self.hash), &mut out)
            .expect("handshake payloads are tiny");
        self.mix_hash(&out);
        out
    }

    fn decrypt_and_hash(
        &mut self,
        key: &[u8; 32],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, Ts2021Error> {
        let mut buffer = ciphertext.to_vec();
        let length = cipher(key)
            .open_in_place(nonce(0), Aad::from(self.hash), &mut buffer)
            .map_err(|_| Ts2021Error::Handshake)?
            .len();
        buffer.truncate(length);
        self.mix_hash(ciphertext);
        Ok(buffer)
    }

    fn split(&self) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>) {
        hkdf2(&self.chaining_key, &[])
    }
}

/// A client's handshake, answered.
pub struct Accepted {
    /// The capability version the client stated (the prologue's number).
    pub version: u16,
    /// The client's machine key.
    pub machine_key: [u8; 32],
    /// The response to send before any record.
    pub response: [u8; RESPONSE_LEN],
    /// The session.
    pub session: Session,
}

/// The version an initiation states, before any cryptography (so that
/// old clients can be refused with a message).
pub fn initiation_version(initiation: &[u8]) -> Result<u16, Ts2021Error> {
    if initiation.len() != INITIATION_LEN
        || initiation[2] != TYPE_INITIATION
        || u16::from_be_bytes([initiation[3], initiation[4]]) as usize != INITIATION_LEN - 5
    {
        return Err(Ts2021Error::NotAnInitiation);
    }
    Ok(u16::from_be_bytes([initiation[0], initiation[1]]))
}

/// Answers `initiation` as the control server holding `control_key`, with
/// the fresh `ephemeral` key.
pub fn accept(
    initiation: &[u8],
    control_key: &StaticSecret,
    ephemeral: &StaticSecret,
) -> Result<Accepted, Ts2021Error> {
    let version = initiation_version(initiation)?;
    let mut state = Symmetric::new(version);
    state.mix_hash(PublicKey::from(control_key).as_bytes());
    // -> e, es, s, ss
    let mut client_ephemeral = [0u8; 32];
    client_ephemeral.copy_from_slice(&initiation[5..37]);
    state.mix_hash(&client_ephemeral);
    let key = state.mix_dh(control_key, &client_ephemeral)?;
    let machine = state.decrypt_and_hash(&key, &initiation[37..85])?;
    let mut machine_key = [0u8; 32];
    machine_key.copy_from_slice(&machine);
    let key = state.mix_dh(control_key, &machine_key)?;
    state.decrypt_and_hash(&key, &initiation[85..101])?;
    // <- e, ee, se
    let mut response = [0u8; RESPONSE_LEN];
    response[0] = TYPE_RESPONSE;
    response[1..3].copy_from_slice(&((RESPONSE_LEN - HEADER_LEN) as u16).to_be_bytes());
    let ours = PublicKey::from(ephemeral).to_bytes();
    response[3..35].copy_from_slice(&ours);
    state.mix_hash(&ours);
    state.mix_dh(ephemeral, &client_ephemeral)?;
    let key = state.mix_dh(ephemeral, &machine_key)?;
    let tag = state.encrypt_and_hash(&key, &[]);
    response[35..].copy_from_slice(&tag);
    let (client_to_server, server_to_client) = state.split();
    Ok(Accepted {
        version,
        machine_key,
        response,
        session: Session::from_keys(&server_to_client, &client_to_server),
    })
}

/// A client's handshake under way: its initiation went out, the server's
/// response finishes it.
pub struct Initiator {
    state: Symmetric,
    ephemeral: StaticSecret,
    machine: StaticSecret,
}

/// Starts a handshake as the client with `machine` key and the fresh
/// `ephemeral` key, to the control server whose public key is `control`,
/// stating capability `version`: the initiation to send (base64 in the
/// `X-Tailscale-Handshake` header), and the state that opens the response.
pub fn initiate(
    control: &[u8; 32],
    machine: StaticSecret,
    ephemeral: StaticSecret,
    version: u16,
) -> Result<([u8; INITIATION_LEN], Initiator), Ts2021Error> {
    let mut state = Symmetric::new(version);
    state.mix_hash(control);
    let mut initiation = [0u8; INITIATION_LEN];
    initiation[..2].copy_from_slice(&version.to_be_bytes());
    initiation[2] = TYPE_INITIATION;
    initiation[3..5].copy_from_slice(&((INITIATION_LEN - 5) as u16).to_be_bytes());
    // -> e, es, s, ss
    let ours = PublicKey::from(&ephemeral).to_bytes();
    initiation[5..37].copy_from_slice(&ours);
    state.mix_hash(&ours);
    let key = state.mix_dh(&ephemeral, control)?;
    let machine_public = PublicKey::from(&machine).to_bytes();
    let sealed = state.encrypt_and_hash(&key, &machine_public);
    initiation[37..85].copy_from_slice(&sealed);
    let key = state.mix_dh(&machine, control)?;
    let tag = state.encrypt_and_hash(&key, &[]);
    initiation[85..].copy_from_slice(&tag);
    Ok((
        initiation,
        Initiator {
            state,
            ephemeral,
            machine,
        },
    ))
}

impl Initiator {
    /// Opens the server's `response`: the session, seen from the client.
    pub fn finish(mut self, response: &[u8]) -> Result<Session, Ts2021Error> {
        if response.len() != RESPONSE_LEN
            || response[0] != TYPE_RESPONSE
            || usize::from(u16::from_be_bytes([response[1], response[2]]))
                != RESPONSE_LEN - HEADER_LEN
        {
            return Err(Ts2021Error::Handshake);
        }
        // <- e, ee, se
        let mut theirs = [0u8; 32];
        theirs.copy_from_slice(&response[3..35]);
        self.state.mix_hash(&theirs);
        self.state.mix_dh(&self.ephemeral, &theirs)?;
        let key = self.state.mix_dh(&self.machine, &theirs)?;
        self.state.decrypt_and_hash(&key, &response[35..])?;
        let (client_to_server, server_to_client) = self.state.split();
        Ok(Session::from_keys(&client_to_server, &server_to_client))
    }
}

/// An unauthenticated error frame, sent instead of a response (a hint for
/// the client's log: not encrypted, so never anything secret).
pub fn error_frame(message: &str) -> Vec<u8> {
    let text = &message.as_bytes()[..message.len().min(u16::MAX as usize)];
    let mut out = vec![TYPE_ERROR];
    out.extend_from_slice(&(text.len() as u16).to_be_bytes());
    out.extend_from_slice(text);
    out
}

/// An established session: seals what the server sends, opens what the
/// client sends.
pub struct Session {
    send: LessSafeKey,
    receive: LessSafeKey,
    sent: u64,
    received: u64,
    buffer: Vec<u8>,
    broken: bool,
}

impl Session {
    /// A session with given keys: this side's sending key, then its
    /// receiving key.
    pub fn from_keys(send: &[u8; 32], receive: &[u8; 32]) -> Session {
        Session {
            send: cipher(send),
            receive: cipher(receive),
            sent: 0,
            received: 0,
            buffer: Vec::new(),
            broken: false,
        }
    }

    /// `plaintext` as records of at most [`MAX_RECORD`] bytes.
    pub fn seal(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, Ts2021Error> {
        let mut out = Vec::with_capacity(
            plaintext.len() + (plaintext.len() / MAX_PLAINTEXT + 1) * (HEADER_LEN + TAG),
        );
        let mut pieces = plaintext.chunks(MAX_PLAINTEXT).peekable();
        if pieces.peek().is_none() {
            return Ok(out);
        }
        for piece in pieces {
            if self.sent == u64::MAX {
                return Err(Ts2021Error::Exhausted);
            }
            let start = out.len();
            out.push(TYPE_RECORD);
            out.extend_from_slice(&((piece.len() + TAG) as u16).to_be_bytes());
            out.extend_from_slice(piece);
            let mut body = out.split_off(start + HEADER_LEN);
            self.send
                .seal_in_place_append_tag(nonce(self.sent), Aad::empty(), &mut body)
                .expect("records are small");
            out.extend_from_slice(&body);
            self.sent += 1;
        }
        Ok(out)
    }

    /// Takes bytes from the client; the plaintext of the records now whole.
    /// After an error the session refuses everything.
    pub fn open(&mut self, bytes: &[u8]) -> Result<Vec<u8>, Ts2021Error> {
        if self.broken {
            return Err(Ts2021Error::Record);
        }
        self.buffer.extend_from_slice(bytes);
        let mut plaintext = Vec::new();
        loop {
            if self.buffer.len() < HEADER_LEN {
                return Ok(plaintext);
            }
            let length = u16::from_be_bytes([self.buffer[1], self.buffer[2]]) as usize;
            if self.buffer[0] != TYPE_RECORD || HEADER_LEN + length > MAX_RECORD || length < TAG {
                self.broken = true;
                return Err(Ts2021Error::NotARecord);
            }
            if self.buffer.len() < HEADER_LEN + length {
                return Ok(plaintext);
            }
            if self.received == u64::MAX {
                self.broken = true;
                return Err(Ts2021Error::Exhausted);
            }
            let mut body: Vec<u8> = self.buffer[HEADER_LEN..HEADER_LEN + length].to_vec();
            self.buffer.drain(..HEADER_LEN + length);
            let opened = self
                .receive
                .open_in_place(nonce(self.received), Aad::empty(), &mut body)
                .map_err(|_| {
                    self.broken = true;
                    Ts2021Error::Record
                })?;
            plaintext.extend_from_slice(opened);
            self.received += 1;
        }
    }
}
