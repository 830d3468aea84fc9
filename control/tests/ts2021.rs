//! The ts2021 handshake and records against an independent initiator: the
//! `snow` crate's Noise IK (the reference-style Noise implementation) for
//! the handshake, and the `chacha20poly1305` crate with big-endian nonces
//! (as Tailscale's client does) for the records. The official client itself
//! is exercised by the coordinator's Tailscale tests.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use hearth_control::ts2021::{self, MAX_PLAINTEXT, MAX_RECORD, Ts2021Error};
use x25519_dalek::{PublicKey, StaticSecret};

const VERSION: u16 = 130;

struct Client {
    send: ChaCha20Poly1305,
    receive: ChaCha20Poly1305,
    sent: u64,
    received: u64,
}

fn nonce(counter: u64) -> [u8; 12] {
    let mut bytes = [0u8; 12];
    bytes[4..].copy_from_slice(&counter.to_be_bytes());
    bytes
}

impl Client {
    fn record(&mut self, plaintext: &[u8]) -> Vec<u8> {
        let sealed = self
            .send
            .encrypt(
                &nonce(self.sent).into(),
                Payload {
                    msg: plaintext,
                    aad: b"",
                },
            )
            .unwrap();
        self.sent += 1;
        let mut out = vec![ts2021::TYPE_RECORD];
        out.extend_from_slice(&(sealed.len() as u16).to_be_bytes());
        out.extend_from_slice(&sealed);
        out
    }

    fn read(&mut self, mut wire: &[u8]) -> Vec<u8> {
        let mut plaintext = Vec::new();
        while !wire.is_empty() {
            assert_eq!(wire[0], ts2021::TYPE_RECORD);
            let length = u16::from_be_bytes([wire[1], wire[2]]) as usize;
            assert!(3 + length <= MAX_RECORD);
            let opened = self
                .receive
                .decrypt(
                    &nonce(self.received).into(),
                    Payload {
                        msg: &wire[3..3 + length],
                        aad: b"",
                    },
                )
                .unwrap();
            self.received += 1;
            plaintext.extend_from_slice(&opened);
            wire = &wire[3 + length..];
        }
        plaintext
    }
}

/// A client's initiation (snow, IK, the ts2021 prologue) and the state to
/// finish it.
fn initiate(
    control: &[u8; 32],
    machine: &StaticSecret,
    version: u16,
) -> (Vec<u8>, snow::HandshakeState) {
    let prologue = format!("Tailscale Control Protocol v{version}");
    let mut handshake = snow::Builder::new("Noise_IK_25519_ChaChaPoly_BLAKE2s".parse().unwrap())
        .local_private_key(&machine.to_bytes())
        .unwrap()
        .remote_public_key(control)
        .unwrap()
        .prologue(prologue.as_bytes())
        .unwrap()
        .build_initiator()
        .unwrap();
    let mut message = [0u8; 96];
    assert_eq!(handshake.write_message(&[], &mut message).unwrap(), 96);
    let mut initiation = version.to_be_bytes().to_vec();
    initiation.push(ts2021::TYPE_INITIATION);
    initiation.extend_from_slice(&96u16.to_be_bytes());
    initiation.extend_from_slice(&message);
    (initiation, handshake)
}

fn finish(mut handshake: snow::HandshakeState, response: &[u8]) -> Client {
    assert_eq!(response[0], ts2021::TYPE_RESPONSE);
    assert_eq!(u16::from_be_bytes([response[1], response[2]]), 48);
    let mut payload = [0u8; 0];
    handshake
        .read_message(&response[3..], &mut payload)
        .unwrap();
    let (initiator_to_responder, responder_to_initiator) = handshake.dangerously_get_raw_split();
    Client {
        send: ChaCha20Poly1305::new(&initiator_to_responder.into()),
        receive: ChaCha20Poly1305::new(&responder_to_initiator.into()),
        sent: 0,
        received: 0,
    }
}

#[test]
fn a_snow_initiator_completes_the_handshake_and_records_flow_both_ways() {
    let control = StaticSecret::random();
    let control_public = PublicKey::from(&control).to_bytes();
    let machine = StaticSecret::random();
    let (initiation, handshake) = initiate(&control_public, &machine, VERSION);
    assert_eq!(ts2021::initiation_version(&initiation), Ok(VERSION));
    let accepted = ts2021::accept(&initiation, &control, &StaticSecret::random()).unwrap();
    assert_eq!(accepted.version, VERSION);
    assert_eq!(accepted.machine_key, PublicKey::from(&machine).to_bytes());
    let mut client = finish(handshake, &accepted.response);
    let mut session = accepted.session;

    // Client to server, in pieces cut anywhere.
    let mut wire = client.record(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    wire.extend(client.record(b""));
    wire.extend(client.record(&[7u8; 5000][..MAX_PLAINTEXT]));
    let mut opened = Vec::new();
    for piece in wire.chunks(7) {
        opened.extend(session.open(piece).unwrap());
    }
    assert!(opened.starts_with(b"PRI * HTTP/2.0"));
    assert_eq!(opened.len(), 24 + MAX_PLAINTEXT);

    // Server to client: a large write becomes several records.
    let big = vec![3u8; 3 * MAX_PLAINTEXT + 10];
    let sealed = session.seal(&big).unwrap();
    assert_eq!(client.read(&sealed), big);
}

#[test]
fn tampering_wrong_keys_and_garbage_are_refused() {
    let control = StaticSecret::random();
    let control_public = PublicKey::from(&control).to_bytes();
    let machine = StaticSecret::random();

    // Sent to another control key.
    let other = PublicKey::from(&StaticSecret::random()).to_bytes();
    let (initiation, _) = initiate(&other, &machine, VERSION);
    assert!(matches!(
        ts2021::accept(&initiation, &control, &StaticSecret::random()),
        Err(Ts2021Error::Handshake)
    ));
    // A flipped byte anywhere after the header.
    let (initiation, _) = initiate(&control_public, &machine, VERSION);
    for index in 5..initiation.len() {
        let mut altered = initiation.clone();
        altered[index] ^= 1;
        assert!(
            ts2021::accept(&altered, &control, &StaticSecret::random()).is_err(),
            "byte {index}"
        );
    }
    // The version is bound by the prologue: a changed header does not open.
    let mut relabeled = initiation.clone();
    relabeled[1] ^= 1;
    assert!(ts2021::accept(&relabeled, &control, &StaticSecret::random()).is_err());
    // Wrong size, type or length.
    assert_eq!(
        ts2021::initiation_version(&initiation[..100]),
        Err(Ts2021Error::NotAnInitiation)
    );
    let mut typed = initiation.clone();
    typed[2] = 4;
    assert_eq!(
        ts2021::initiation_version(&typed),
        Err(Ts2021Error::NotAnInitiation)
    );

    // Records: an altered one breaks the session for good; a frame of
    // another type or over 4096 bytes is refused before any decryption.
    let (initiation, handshake) = initiate(&control_public, &machine, VERSION);
    let accepted = ts2021::accept(&initiation, &control, &StaticSecret::random()).unwrap();
    let mut session = accepted.session;
    let mut client = finish(handshake, &accepted.response);
    let mut record = client.record(b"hello");
    record[5] ^= 1;
    assert_eq!(session.open(&record), Err(Ts2021Error::Record));
    assert_eq!(
        session.open(&client.record(b"again")),
        Err(Ts2021Error::Record)
    );
    let mut fresh = ts2021::accept(&initiation, &control, &StaticSecret::random())
        .unwrap()
        .session;
    assert_eq!(
        fresh.open(&[3, 0, 5, b'n', b'o', b'p', b'e', b'!']),
        Err(Ts2021Error::NotARecord)
    );
    let mut fresh = ts2021::accept(&initiation, &control, &StaticSecret::random())
        .unwrap()
        .session;
    assert_eq!(fresh.open(&[4, 0x10, 0x00]), Err(Ts2021Error::NotARecord));
    assert_eq!(ts2021::error_frame("too old")[..3], [3, 0, 7]);
}

#[test]
fn the_initiator_completes_the_handshake_with_a_snow_responder() {
    let control = StaticSecret::random();
    let control_public = PublicKey::from(&control).to_bytes();
    let machine = StaticSecret::random();
    let machine_public = PublicKey::from(&machine).to_bytes();
    let (initiation, initiator) =
        ts2021::initiate(&control_public, machine, StaticSecret::random(), VERSION).unwrap();
    assert_eq!(ts2021::initiation_version(&initiation), Ok(VERSION));

    // snow as the control server: the same prologue, our initiation's body.
    let prologue = format!("Tailscale Control Protocol v{VERSION}");
    let mut responder = snow::Builder::new("Noise_IK_25519_ChaChaPoly_BLAKE2s".parse().unwrap())
        .local_private_key(&control.to_bytes())
        .unwrap()
        .prologue(prologue.as_bytes())
        .unwrap()
        .build_responder()
        .unwrap();
    let mut payload = [0u8; 0];
    responder
        .read_message(&initiation[5..], &mut payload)
        .unwrap();
    assert_eq!(responder.get_remote_static().unwrap(), machine_public);
    let mut message = [0u8; 48];
    assert_eq!(responder.write_message(&[], &mut message).unwrap(), 48);
    let mut response = vec![ts2021::TYPE_RESPONSE];
    response.extend_from_slice(&48u16.to_be_bytes());
    response.extend_from_slice(&message);
    let mut session = initiator.finish(&response).unwrap();

    // Records both ways with the keys snow derived.
    let (initiator_to_responder, responder_to_initiator) = responder.dangerously_get_raw_split();
    let mut server = Client {
        send: ChaCha20Poly1305::new(&responder_to_initiator.into()),
        receive: ChaCha20Poly1305::new(&initiator_to_responder.into()),
        sent: 0,
        received: 0,
    };
    let sealed = session.seal(b"POST /machine/map").unwrap();
    assert_eq!(server.read(&sealed), b"POST /machine/map");
    assert_eq!(session.open(&server.record(b"200 OK")).unwrap(), b"200 OK");

    // A response for another handshake does not finish this one.
    let (_, other) = ts2021::initiate(
        &control_public,
        StaticSecret::random(),
        StaticSecret::random(),
        VERSION,
    )
    .unwrap();
    assert!(other.finish(&response).is_err());
}
