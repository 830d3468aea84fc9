//! HuJSON ("human JSON", the format of Tailscale policy files): JSON plus
//! `//` and `/* */` comments and trailing commas.
//!
//! [`standardize`] turns HuJSON into plain JSON of exactly the same length:
//! comments and trailing commas become spaces (newlines are kept), so a JSON
//! parser's line and column point at the original text.

/// Why text is not HuJSON.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line} column {column}: {reason}")]
pub struct HujsonError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub reason: &'static str,
}

fn position(text: &[u8], offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.iter().filter(|byte| **byte == b'\n').count() + 1;
    let column = before
        .iter()
        .rev()
        .take_while(|byte| **byte != b'\n')
        .count()
        + 1;
    (line, column)
}

fn error(text: &[u8], offset: usize, reason: &'static str) -> HujsonError {
    let (line, column) = position(text, offset);
    HujsonError {
        line,
        column,
        reason,
    }
}

/// Plain JSON with the same byte length and line structure as `text`.
pub fn standardize(text: &str) -> Result<String, HujsonError> {
    let bytes = text.as_bytes();
    let mut out = bytes.to_vec();
    // Offset of the last comma outside strings not yet followed by a value.
    let mut pending_comma: Option<usize> = None;
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'"' => {
                pending_comma = None;
                index += 1;
                loop {
                    match bytes.get(index) {
                        None => return Err(error(bytes, index, "unterminated string")),
                        Some(b'\\') => index += 2,
                        Some(b'"') => {
                            index += 1;
                            break;
                        }
                        Some(_) => index += 1,
                    }
                }
            }
            b'/' if bytes.get(index + 1) == Some(&b'/') => {
                while index < bytes.len() && bytes[index] != b'\n' {
                    out[index] = b' ';
                    index += 1;
                }
            }
            b'/' if bytes.get(index + 1) == Some(&b'*') => {
                let start = index;
                index += 2;
                loop {
                    if index + 1 >= bytes.len() {
                        return Err(error(bytes, start, "unterminated /* comment"));
                    }
                    if bytes[index] == b'*' && bytes[index + 1] == b'/' {
                        break;
                    }
                    index += 1;
                }
                for slot in &mut out[start..index + 2] {
                    if *slot != b'\n' {
                        *slot = b' ';
                    }
                }
                index += 2;
            }
            b',' => {
                pending_comma = Some(index);
                index += 1;
            }
            b'}' | b']' => {
                if let Some(comma) = pending_comma.take() {
                    out[comma] = b' ';
                }
                index += 1;
            }
            byte if byte.is_ascii_whitespace() => index += 1,
            _ => {
                pending_comma = None;
                index += 1;
            }
        }
    }
    // Only ASCII bytes outside strings were replaced by ASCII spaces, so the
    // result is still UTF-8.
    String::from_utf8(out).map_err(|_| error(bytes, 0, "not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_trailing_commas_become_spaces() {
        let text = "{\n  // who\n  \"a\": [1, 2,], /* x */\n  \"b\": \"//not a comment\",\n}";
        let json = standardize(text).unwrap();
        assert_eq!(json.len(), text.len());
        assert_eq!(json.lines().count(), text.lines().count());
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"a": [1, 2], "b": "//not a comment"})
        );
    }

    #[test]
    fn escaped_quotes_do_not_end_strings() {
        let json = standardize(r#"{"a": "say \"hi\", // still text",}"#).unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["a"], "say \"hi\", // still text");
    }

    #[test]
    fn multi_line_comments_keep_line_numbers() {
        let text = "{\n/* one\ntwo */ \"a\": x}";
        let json = standardize(text).unwrap();
        let error = serde_json::from_str::<serde_json::Value>(&json).unwrap_err();
        assert_eq!(error.line(), 3);
    }

    #[test]
    fn unterminated_pieces_are_reported_with_their_position() {
        assert_eq!(
            standardize("{\n  \"a\": \"open").unwrap_err(),
            HujsonError {
                line: 2,
                column: 13,
                reason: "unterminated string"
            }
        );
        assert_eq!(
            standardize("{} /* never closed").unwrap_err().reason,
            "unterminated /* comment"
        );
    }

    #[test]
    fn a_comma_before_a_value_is_kept() {
        let json = standardize("[1,\n// c\n2]").unwrap();
        assert_eq!(serde_json::from_str::<Vec<u8>>(&json).unwrap(), vec![1, 2]);
    }
}
