//! The language the assistant speaks to a member in: Korean or English.
//! The member's app says which it is in (the household app's language, a
//! BCP 47 tag); when it does not, the message's own script decides (any
//! Hangul: Korean; Latin letters: English); when the message has no words
//! of either (a bare `/reminders`, a listing asked from the CLI), the
//! household's language (`hearth setup --lang`). The household's first
//! members write Korean; every other language gets English, which the
//! model is still told to answer in the member's own language
//! (`Asker::language`).

use serde::{Deserialize, Serialize};

/// A language the assistant's own sentences are written in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// English: for every language but Korean.
    #[default]
    English,
    /// Korean (한국어).
    Korean,
}

impl Language {
    /// The language tagged `tag` (BCP 47: `ko`, `ko-KR`, `en-GB`): Korean
    /// for Korean, English for everything else.
    pub fn from_tag(tag: &str) -> Language {
        let base = tag.split(['-', '_']).next().unwrap_or_default();
        if base.eq_ignore_ascii_case("ko") {
            Language::Korean
        } else {
            Language::English
        }
    }

    /// The language `text` is written in: Korean when it holds any Hangul.
    pub fn of_text(text: &str) -> Language {
        if text.chars().any(is_hangul) {
            Language::Korean
        } else {
            Language::English
        }
    }

    /// The language `text` says it is in: Korean with any Hangul, English
    /// with Latin letters, none without words (a slash command's own name
    /// and an @mention are not the member's words).
    pub fn said_in(text: &str) -> Option<Language> {
        if text.chars().any(is_hangul) {
            return Some(Language::Korean);
        }
        text.split_whitespace()
            .filter(|word| !word.starts_with('/') && !word.starts_with('@'))
            .any(|word| word.chars().any(|c| c.is_ascii_alphabetic()))
            .then_some(Language::English)
    }

    /// The language to answer `text` in for a member whose app said `tag`
    /// in a household that speaks `household`: the app's choice, else the
    /// message's words, else the household's.
    pub fn for_member(tag: Option<&str>, text: &str, household: Language) -> Language {
        match tag {
            Some(tag) if !tag.trim().is_empty() => Language::from_tag(tag),
            _ => Language::said_in(text).unwrap_or(household),
        }
    }

    /// Its BCP 47 tag.
    pub fn tag(self) -> &'static str {
        match self {
            Language::English => "en",
            Language::Korean => "ko",
        }
    }
}

/// Whether `c` is Hangul: a syllable, or a jamo (conjoining or compatibility).
pub fn is_hangul(c: char) -> bool {
    matches!(c, '\u{AC00}'..='\u{D7A3}' | '\u{1100}'..='\u{11FF}' | '\u{3130}'..='\u{318F}')
}

/// Whether `c` is a Hangul syllable.
pub fn is_syllable(c: char) -> bool {
    matches!(c, '\u{AC00}'..='\u{D7A3}')
}

/// Whether the Hangul syllable `c` ends in a consonant (has a 받침), which
/// decides a particle's form: 을/를, 은/는, 이/가, 과/와, 이랑/랑, 으로/로.
/// `None` for anything that is not a syllable.
pub fn has_final_consonant(c: char) -> Option<bool> {
    is_syllable(c).then(|| (u32::from(c) - 0xAC00) % 28 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_apps_choice_wins_and_the_script_decides_without_one() {
        assert_eq!(Language::from_tag("ko-KR"), Language::Korean);
        assert_eq!(Language::from_tag("KO"), Language::Korean);
        assert_eq!(Language::from_tag("en-GB"), Language::English);
        assert_eq!(Language::from_tag("ja"), Language::English);
        assert_eq!(Language::of_text("내일 9시에 알려줘"), Language::Korean);
        assert_eq!(Language::of_text("remind me 내일"), Language::Korean);
        assert_eq!(Language::of_text("remind me at 7"), Language::English);
        let english = Language::English;
        let korean = Language::Korean;
        assert_eq!(
            Language::for_member(Some("en"), "내일 알려줘", korean),
            english
        );
        assert_eq!(Language::for_member(None, "내일 알려줘", english), korean);
        assert_eq!(Language::for_member(Some(" "), "내일", english), korean);
        // Without words of its own, the household's language.
        assert_eq!(Language::for_member(None, "/reminders", korean), korean);
        assert_eq!(Language::for_member(None, "", korean), korean);
        assert_eq!(
            Language::for_member(None, "@assistant /forget 3", korean),
            korean
        );
        assert_eq!(Language::for_member(None, "/forget 3", english), english);
        assert_eq!(
            Language::for_member(None, "what time is it", korean),
            english
        );
        assert_eq!(
            Language::for_member(Some("ko"), "/reminders", english),
            korean
        );
    }

    #[test]
    fn a_syllables_final_consonant_is_read_from_its_code_point() {
        assert_eq!(has_final_consonant('밥'), Some(true));
        assert_eq!(has_final_consonant('사'), Some(false));
        assert_eq!(has_final_consonant('과'), Some(false));
        assert_eq!(has_final_consonant('a'), None);
        assert!(is_hangul('ㄱ') && is_hangul('한') && !is_hangul('a'));
    }
}
