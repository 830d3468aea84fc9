//! What command-line tools show a person at a terminal.

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
