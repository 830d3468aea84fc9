//! Conditional requests: whether a client's `If-None-Match` names the ETag
//! a file is served with, so an unchanged file is answered `304` and not
//! sent again. Pure.

/// Whether an `If-None-Match` header's value names `etag` (a quoted tag;
/// weak comparison, as RFC 9110 asks for `If-None-Match`).
pub fn not_modified(if_none_match: Option<&str>, etag: &str) -> bool {
    if_none_match.is_some_and(|value| {
        value
            .split(',')
            .map(|tag| tag.trim().trim_start_matches("W/"))
            .any(|tag| tag == etag.trim_start_matches("W/") || tag == "*")
    })
}

/// The `If-None-Match` value of `headers`, when it is text.
pub fn if_none_match(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unchanged_file_is_not_sent_again() {
        let etag = "\"abc\"";
        assert!(not_modified(Some("\"abc\""), etag));
        assert!(not_modified(Some("W/\"x\", \"abc\""), etag));
        assert!(not_modified(Some("W/\"abc\""), etag));
        assert!(not_modified(Some("*"), etag));
        assert!(!not_modified(Some("\"abd\""), etag));
        assert!(!not_modified(None, etag));
    }
}
