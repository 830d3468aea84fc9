//! Fuzzes the WebSocket frame decoder (text from any mesh client) and the
//! room and mention rules applied to what it lets through. Any input gives a
//! message or an error, never a panic; what is accepted is within the
//! limits the server relies on.
#![no_main]

use hearth_messaging::protocol::{
    self, ASSISTANT, ClientMessage, MAX_BODY, MAX_FRAME, check_room, decode,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(message) = decode(text) else { return };
    assert!(text.len() <= MAX_FRAME, "an oversized frame was accepted");
    match message {
        ClientMessage::Send { room, body, client_id } => {
            assert!(check_room(&room).is_ok(), "a bad room was accepted: {room:?}");
            assert!(!body.trim().is_empty() && body.chars().count() <= MAX_BODY);
            assert!(client_id.is_none_or(|id| id.len() <= 64));
            for sender in ["ada", ASSISTANT] {
                let calls = protocol::calls_assistant(&room, sender, &body);
                assert!(!(calls && sender == ASSISTANT), "the assistant called itself");
                let _ = protocol::may_access(sender, &room);
            }
            let question = protocol::question_for_assistant(&body);
            assert!(question.len() <= body.len(), "the question grew");
            if let Some((first, second)) = protocol::dm_members(&room) {
                assert_eq!(protocol::dm_room(second, first), room, "DM names are canonical");
            }
        }
        ClientMessage::Typing { room } | ClientMessage::Read { room, .. } => {
            assert!(check_room(&room).is_ok(), "a bad room was accepted: {room:?}");
        }
        ClientMessage::Sync { .. } => {}
    }
});
