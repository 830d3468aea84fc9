//! What command-line tools show a person at a terminal.

/// The terminal's locale as the environment names it (`LC_ALL`, else
/// `LC_MESSAGES`, else `LANG`; `ko_KR.UTF-8`), if any.
pub fn locale() -> Option<String> {
    ["LC_ALL", "LC_MESSAGES", "LANG"]
        .into_iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|value| !value.is_empty())
}

/// `text` someone else chose (a device's name, a client's id, a member's
/// message) made safe to print on one line of a terminal: every control
/// character (escape sequences, OSC 52 clipboard writes, cursor moves, bell,
/// line breaks) and every bidirectional override is shown as `\u{..}`
/// instead of acting on the terminal.
pub fn printable(text: &str) -> String {
    escaped(text, false)
}

/// [`printable`] keeping line breaks (and tabs): for a message's body.
pub fn printable_lines(text: &str) -> String {
    escaped(text, true)
}

fn escaped(text: &str, lines: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        let kept = lines && matches!(character, '\n' | '\t');
        if !kept && acts_on_terminal(character) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(character)));
        } else {
            out.push(character);
        }
    }
    out
}

/// Control characters (C0, DEL, C1) and the bidirectional marks and
/// overrides that reorder what follows them.
fn acts_on_terminal(character: char) -> bool {
    character.is_control()
        || matches!(
            character,
            '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// `text` as a QR code drawn with Unicode half blocks (light on dark, with
/// its quiet zone), for a phone's camera to read off a terminal.
pub fn qr(text: &str) -> Result<String, qrcode::types::QrError> {
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::L)?;
    Ok(code
        .render::<qrcode::render::unicode::Dense1x2>()
        .dark_color(qrcode::render::unicode::Dense1x2::Light)
        .light_color(qrcode::render::unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_others_chose_cannot_act_on_the_terminal() {
        let hostile = "cli\u{1b}]52;c;aGVsbG8=\u{7}\u{1b}[2A\u{9b}31m\u{202e}txt.exe\nnext";
        let shown = printable(hostile);
        assert_eq!(
            shown,
            "cli\\u{1b}]52;c;aGVsbG8=\\u{7}\\u{1b}[2A\\u{9b}31m\\u{202e}txt.exe\\u{a}next"
        );
        assert!(!shown.chars().any(acts_on_terminal));
        assert_eq!(printable_lines("two\nlines\u{1b}"), "two\nlines\\u{1b}");
        assert_eq!(printable("안녕 ada's laptop"), "안녕 ada's laptop");
    }

    #[test]
    fn text_becomes_a_square_of_half_blocks() {
        let drawn = qr("http://hub.home.example").unwrap();
        let lines: Vec<&str> = drawn.lines().collect();
        // Version 2 (25 modules) with a 4-module quiet zone each side: 33
        // columns, two rows of modules a line.
        assert_eq!(lines[0].chars().count(), 33);
        assert_eq!(lines.len(), 17);
        assert!(lines.iter().all(|line| line.chars().count() == 33));
        assert_ne!(drawn, qr("http://hub.home.example:8080").unwrap());
    }

    #[test]
    fn text_too_long_for_any_code_is_refused() {
        assert!(qr(&"x".repeat(8000)).is_err());
    }
}
