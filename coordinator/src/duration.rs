//! Durations as admins write them: `90s`, `30m`, `1h`, `7d`, `1h30m`.

use std::time::Duration;

/// A text that is not a duration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a duration like 90s, 30m, 1h, 7d or 1h30m")]
pub struct NotADuration(pub String);

/// Parses a duration made of `<number><unit>` parts (units `s`, `m`, `h`, `d`).
pub fn parse_duration(text: &str) -> Result<Duration, NotADuration> {
    let invalid = || NotADuration(text.to_owned());
    let mut total: u64 = 0;
    let mut digits = String::new();
    let mut saw_part = false;
    for character in text.trim().chars() {
        if character.is_ascii_digit() {
            digits.push(character);
            continue;
        }
        let unit = match character {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(invalid()),
        };
        let amount: u64 = digits.parse().map_err(|_| invalid())?;
        total = amount
            .checked_mul(unit)
            .and_then(|seconds| total.checked_add(seconds))
            .ok_or_else(invalid)?;
        digits.clear();
        saw_part = true;
    }
    if !digits.is_empty() || !saw_part {
        return Err(invalid());
    }
    Ok(Duration::from_secs(total))
}

/// A key lifetime as admins write it: a duration, or `never`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifetime {
    /// Keys never expire.
    Never,
    /// Keys expire this long after they are issued.
    After(Duration),
}

impl Lifetime {
    /// As an optional duration (`None`: never).
    pub fn duration(self) -> Option<Duration> {
        match self {
            Lifetime::Never => None,
            Lifetime::After(duration) => Some(duration),
        }
    }
}

/// Parses `never`, `off` or a duration (a zero duration is refused: a key
/// that is expired when issued is a mistake).
pub fn parse_lifetime(text: &str) -> Result<Lifetime, NotADuration> {
    match text.trim() {
        "never" | "off" => Ok(Lifetime::Never),
        other => match parse_duration(other)? {
            Duration::ZERO => Err(NotADuration(text.to_owned())),
            duration => Ok(Lifetime::After(duration)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_are_durations_or_never() {
        assert_eq!(parse_lifetime("never"), Ok(Lifetime::Never));
        assert_eq!(
            parse_lifetime("180d"),
            Ok(Lifetime::After(Duration::from_secs(180 * 86_400)))
        );
        assert!(parse_lifetime("0s").is_err());
        assert!(parse_lifetime("soon").is_err());
    }

    #[test]
    fn admin_durations_parse() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn malformed_durations_are_refused() {
        for bad in ["", "10", "h", "1x", "1h30", "99999999999999999999d", "-1h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
