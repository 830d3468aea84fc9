//! Rules for user names, node names and tags.

/// Checks a user name: 1 to 64 characters from letters, digits and `._@+-`,
/// and not shaped like a policy alias.
pub fn check_user_name(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._@+-".contains(c);
    if name.is_empty() || name.len() > 64 || !name.chars().all(allowed) {
        return Err(format!(
            "user name `{name}` must be 1 to 64 characters of letters, digits and . _ @ + -"
        ));
    }
    Ok(())
}

/// Checks a tag: `tag:` then a letter, then letters, digits, `-` or `_`.
pub fn check_tag(tag: &str) -> Result<(), String> {
    let valid = tag.strip_prefix("tag:").is_some_and(|rest| {
        rest.len() <= 63
            && rest.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    });
    if valid {
        Ok(())
    } else {
        Err(format!(
            "tag `{tag}` must look like `tag:name` (a letter, then letters, digits, - or _)"
        ))
    }
}

/// Checks a node name: a DNS label (1 to 63 of `a-z`, `0-9`, `-`, not at either end).
pub fn check_node_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "node name `{name}` must be 1 to 63 lower-case letters, digits or -, not starting or ending with -"
        ))
    }
}

/// Turns a reported hostname into a node name no other node has: lower-cased,
/// other characters replaced by `-`, and `-2`, `-3`... appended when taken.
pub fn unique_node_name(hostname: &str, taken: impl Fn(&str) -> bool) -> String {
    let mut base: String = hostname
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    base = base.trim_matches('-').to_owned();
    base.truncate(55);
    let base = base.trim_end_matches('-');
    let base = if base.is_empty() { "node" } else { base };
    if !taken(base) {
        return base.to_owned();
    }
    (2u64..)
        .map(|suffix| format!("{base}-{suffix}"))
        .find(|candidate| !taken(candidate))
        .expect("some suffix is free")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_are_checked() {
        assert!(check_user_name("alice@example.com").is_ok());
        assert!(check_user_name("").is_err());
        assert!(check_user_name("tag:x").is_err());
        assert!(check_user_name("a b").is_err());
        assert!(check_user_name(&"a".repeat(65)).is_err());
    }

    #[test]
    fn tags_are_checked() {
        assert!(check_tag("tag:server").is_ok());
        assert!(check_tag("tag:web-1_a").is_ok());
        for bad in ["server", "tag:", "tag:1abc", "tag:a b", "group:x"] {
            assert!(check_tag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn node_names_are_dns_labels() {
        assert!(check_node_name("kitchen-pc").is_ok());
        for bad in ["", "-a", "a-", "Kitchen", "a.b"] {
            assert!(check_node_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hostnames_become_unique_labels() {
        let taken = ["laptop", "laptop-2"];
        let is_taken = |name: &str| taken.contains(&name);
        assert_eq!(unique_node_name("Laptop", is_taken), "laptop-3");
        assert_eq!(unique_node_name("Bob's Phone", is_taken), "bob-s-phone");
        assert_eq!(unique_node_name("***", is_taken), "node");
        assert_eq!(unique_node_name(&"x".repeat(100), is_taken).len(), 55);
    }
}
