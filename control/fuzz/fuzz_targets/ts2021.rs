//! Fuzzes what the coordinator reads on a `/ts2021` connection: the
//! handshake initiation (as the `X-Tailscale-Handshake` header carries it)
//! and the record stream after it, cut into pieces where the input says;
//! and what a client reads back (the handshake response). Every input is
//! answered or refused, never a panic; a session that refused a record
//! refuses everything after.
#![no_main]

use hearth_control::ts2021::{self, Session};
use libfuzzer_sys::fuzz_target;
use x25519_dalek::StaticSecret;

fuzz_target!(|data: &[u8]| {
    let control = StaticSecret::from([7; 32]);
    let _ = ts2021::initiation_version(data);
    let _ = ts2021::accept(data, &control, &StaticSecret::from([9; 32]));
    let control_public = x25519_dalek::PublicKey::from(&control).to_bytes();
    if let Ok((_, initiator)) = ts2021::initiate(
        &control_public,
        StaticSecret::from([3; 32]),
        StaticSecret::from([4; 32]),
        130,
    ) {
        let _ = initiator.finish(data);
    }

    let Some((&cut, records)) = data.split_first() else { return };
    let mut session = Session::from_keys(&[1; 32], &[2; 32]);
    let mut broken = false;
    for piece in records.chunks(usize::from(cut).max(1)) {
        match session.open(piece) {
            Ok(plaintext) => assert!(!broken && plaintext.len() <= records.len()),
            Err(_) => broken = true,
        }
    }
    // Whatever came before, what the server seals is well framed.
    let sealed = session.seal(records).unwrap_or_default();
    let mut at = 0;
    while at < sealed.len() {
        let length = u16::from_be_bytes([sealed[at + 1], sealed[at + 2]]) as usize;
        assert!(sealed[at] == ts2021::TYPE_RECORD && 3 + length <= ts2021::MAX_RECORD);
        at += 3 + length;
    }
});
