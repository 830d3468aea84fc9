//! Fuzzes what a shared file is judged to be (its name and bytes come from
//! any member's device): any input is taken or refused, never a panic; what
//! is taken is within the limits, named as a file, and a picture's or a
//! PDF's type matches its signature.
#![no_main]

use hearth_messaging::protocol::{FileKind, MAX_ATTACHMENT_NAME, check_file, percent_encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first line is the name, the rest the file.
    let split = data.iter().position(|byte| *byte == b'\n').unwrap_or(data.len());
    let name = String::from_utf8_lossy(&data[..split]);
    let bytes = data.get(split + 1..).unwrap_or_default();
    let Ok((kind, about)) = check_file(&name, bytes) else { return };
    assert!(!about.name.is_empty() && about.name.len() <= MAX_ATTACHMENT_NAME);
    assert!(!about.name.contains(['/', '\\']) && !about.name.chars().any(char::is_control));
    assert_eq!(about.size, bytes.len() as u64);
    match kind {
        FileKind::Picture => assert!(about.media_type.starts_with("image/")),
        FileKind::Document => {
            assert!(
                bytes.starts_with(b"%PDF-") || std::str::from_utf8(bytes).is_ok(),
                "a document that is neither a PDF nor text"
            );
        }
    }
    let encoded = percent_encode(&about.name);
    assert!(encoded.bytes().all(|byte| byte.is_ascii_graphic() && byte != b'"' && byte != b';'));
});
