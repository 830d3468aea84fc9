//! An English message cut into words: each lower-cased without the
//! punctuation around it, with where it stands in the message.

/// One word of the message: its lower-cased form without surrounding
/// punctuation, and where it is in the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(in crate::phrases) struct Word {
    pub(in crate::phrases) norm: String,
    pub(in crate::phrases) start: usize,
    pub(in crate::phrases) end: usize,
}

pub(in crate::phrases) fn words(message: &str) -> Vec<Word> {
    let mut words = Vec::new();
    let mut offset = 0;
    for piece in message.split_inclusive(char::is_whitespace) {
        let trimmed = piece.trim_end();
        let lead = trimmed.len() - trimmed.trim_start_matches(is_edge).len();
        let core = trimmed.trim_matches(is_edge);
        if !core.is_empty() {
            let start = offset + lead;
            words.push(Word {
                norm: core.to_lowercase(),
                start,
                end: start + core.len(),
            });
        }
        offset += piece.len();
    }
    words
}

pub(in crate::phrases) fn is_edge(c: char) -> bool {
    matches!(
        c,
        ',' | '.' | '!' | '?' | ';' | ':' | '"' | '\'' | '(' | ')' | '\u{201c}' | '\u{201d}'
    )
}

/// The text of `message` from the first to the last of `words`.
pub(in crate::phrases) fn text_of(message: &str, words: &[Word]) -> String {
    match (words.first(), words.last()) {
        (Some(first), Some(last)) => message[first.start..last.end].trim().to_owned(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_cut_into_words_without_their_punctuation() {
        let message = "Remind me, at 7pm: \u{201c}call Mum!\u{201d}";
        let cut = words(message);
        let norms: Vec<&str> = cut.iter().map(|word| word.norm.as_str()).collect();
        assert_eq!(norms, ["remind", "me", "at", "7pm", "call", "mum"]);
        assert_eq!(text_of(message, &cut[4..]), "call Mum");
        assert_eq!(text_of(message, &[]), "");
    }
}
