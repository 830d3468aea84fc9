//! Rules for user names, node names and tags.

/// A name that breaks its rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// A user name.
    #[error("user name `{0}` must be 1 to 64 characters of letters, digits and . _ @ + -")]
    User(String),
    /// A tag.
    #[error("tag `{0}` must look like `tag:name` (a letter, then letters, digits, - or _)")]
    Tag(String),
    /// A node name.
    #[error(
        "node name `{0}` must be 1 to 63 lower-case letters, digits or -, not starting or ending with -"
    )]
    Node(String),
}

/// Checks a user name: 1 to 64 characters from letters, digits and `._@+-`,
/// and not shaped like a policy alias.
pub fn check_user_name(name: &str) -> Result<(), NameError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._@+-".contains(c);
    if name.is_empty() || name.len() > 64 || !name.chars().all(allowed) {
        return Err(NameError::User(name.to_owned()));
    }
    Ok(())
}

/// Checks a tag: `tag:` then a letter, then letters, digits, `-` or `_`.
pub fn check_tag(tag: &str) -> Result<(), NameError> {
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
        Err(NameError::Tag(tag.to_owned()))
    }
}

/// Checks a node name: a DNS label (1 to 63 of `a-z`, `0-9`, `-`, not at either end).
pub fn check_node_name(name: &str) -> Result<(), NameError> {
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
        Err(NameError::Node(name.to_owned()))
    }
}

/// A hostname as a node name: lower-cased, other characters replaced by
/// `-`, trimmed to 55 characters so that a `-N` suffix still fits a label.
fn base_name(hostname: &str) -> String {
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
    if base.is_empty() {
        "node".to_owned()
    } else {
        base.to_owned()
    }
}

/// The node names in use, and for each base name the next suffix to try,
/// so that naming the thousandth `laptop` costs no more than the first.
#[derive(Clone, Debug, Default)]
pub struct NameIndex {
    taken: std::collections::HashSet<String>,
    next_suffix: std::collections::HashMap<String, u64>,
}

impl NameIndex {
    /// Whether a node is called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.taken.contains(name)
    }

    /// Records that a node is called `name`.
    pub fn insert(&mut self, name: &str) {
        self.taken.insert(name.to_owned());
    }

    /// Records that no node is called `name` any more.
    pub fn remove(&mut self, name: &str) {
        self.taken.remove(name);
    }

    /// A name no node has, made from `hostname`: its base name, or with
    /// `-2`, `-3`... appended when that is taken. Suffixes are not handed
    /// out twice for a base, so a deleted `laptop-3` is not reused for the
    /// next `laptop`. Not recorded until [`NameIndex::insert`].
    pub fn unique(&mut self, hostname: &str) -> String {
        let base = base_name(hostname);
        if !self.taken.contains(&base) {
            return base;
        }
        let next = self.next_suffix.entry(base.clone()).or_insert(2);
        loop {
            let candidate = format!("{base}-{next}");
            *next += 1;
            if !self.taken.contains(&candidate) {
                return candidate;
            }
        }
    }
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
        let mut names = NameIndex::default();
        names.insert("laptop");
        names.insert("laptop-2");
        assert_eq!(names.unique("Laptop"), "laptop-3");
        assert_eq!(names.unique("Bob's Phone"), "bob-s-phone");
        assert_eq!(names.unique("***"), "node");
        assert_eq!(names.unique(&"x".repeat(100)).len(), 55);
        assert!(check_node_name(&names.unique(&"x".repeat(100))).is_ok());
    }

    #[test]
    fn naming_the_thousandth_twin_costs_what_the_first_did() {
        let mut names = NameIndex::default();
        for expected in std::iter::once("laptop".to_owned())
            .chain((2..=1000).map(|suffix| format!("laptop-{suffix}")))
        {
            let name = names.unique("laptop");
            assert_eq!(name, expected);
            names.insert(&name);
        }
        names.remove("laptop-7");
        assert_eq!(
            names.unique("laptop"),
            "laptop-1001",
            "a freed suffix is not reused"
        );
        names.remove("laptop");
        assert_eq!(names.unique("laptop"), "laptop", "the base name is");
    }
}
