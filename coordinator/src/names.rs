//! Rules for user names, node names and tags.

/// A name that breaks its rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// A user name.
    #[error(
        "user name `{0}` must be 1 to 64 characters of letters, digits and . _ @ + -, \
         with `@` only inside an address (`name@domain`)"
    )]
    User(String),
    /// A name Hearth gives its own parts.
    #[error("`{0}` is reserved: Hearth's own parts go by it")]
    Reserved(String),
    /// A tag.
    #[error("tag `{0}` must look like `tag:name` (a letter, then letters, digits, - or _)")]
    Tag(String),
    /// A node name.
    #[error(
        "node name `{0}` must be 1 to 63 lower-case letters, digits or -, not starting or ending with -"
    )]
    Node(String),
}

/// User names that name something else, which no person may have (in any
/// letter case): the assistant is a member of every DM with it and posts
/// as `assistant`; the gateway's token holder is the `operator`; `root`
/// and `nobody` are local users that Tailscale SSH rules name, and a
/// person called so would read as one.
pub const RESERVED_USER_NAMES: [&str; 4] = ["assistant", "operator", "root", "nobody"];

/// Checks a user name: 1 to 64 characters from letters, digits and `._@+-`,
/// `@` only between a name and a domain (`alice@` is how a policy names
/// user `alice`, so a user cannot be called that), and not reserved.
pub fn check_user_name(name: &str) -> Result<(), NameError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._@+-".contains(c);
    if name.is_empty() || name.len() > 64 || !name.chars().all(allowed) {
        return Err(NameError::User(name.to_owned()));
    }
    if let Some((local, domain)) = name.split_once('@')
        && (local.is_empty() || domain.is_empty() || domain.contains('@'))
    {
        return Err(NameError::User(name.to_owned()));
    }
    if RESERVED_USER_NAMES
        .iter()
        .any(|reserved| reserved.eq_ignore_ascii_case(name))
    {
        return Err(NameError::Reserved(name.to_owned()));
    }
    Ok(())
}

/// Whether two user names are the same person's to a reader: names differ
/// only in case (`Alice` beside `alice`), so one cannot be made beside the
/// other.
pub fn same_user_name(one: &str, other: &str) -> bool {
    one.eq_ignore_ascii_case(other)
}

/// Whether `c` would hide or change what a reader sees: control characters
/// (escape sequences for a terminal, newlines that forge lines) and Unicode
/// format characters (bidirectional overrides such as U+202E, zero-width
/// characters).
pub fn is_hidden_character(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{ad}'
            | '\u{600}'..='\u{605}'
            | '\u{61c}'
            | '\u{6dd}'
            | '\u{70f}'
            | '\u{890}'..='\u{891}'
            | '\u{8e2}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{110bd}'
            | '\u{110cd}'
            | '\u{13430}'..='\u{1343f}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0001}'
            | '\u{e0020}'..='\u{e007f}')
}

/// `text` as a person may safely read it on a terminal or a page: every
/// hidden character written out as `\u{…}`.
pub fn visible(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if is_hidden_character(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
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

/// The node names that would give a device one of the coordinator's own
/// names (`names`: its public name, its DNS server's) under the MagicDNS
/// domain `base_domain`: the first label of each name directly under it.
pub fn own_labels<'a>(names: impl IntoIterator<Item = &'a str>, base_domain: &str) -> Vec<String> {
    let suffix = format!(
        ".{}",
        base_domain.trim_end_matches('.').to_ascii_lowercase()
    );
    names
        .into_iter()
        .filter_map(|name| {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            let label = name.strip_suffix(&suffix)?;
            (!label.is_empty() && !label.contains('.')).then(|| label.to_owned())
        })
        .collect()
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
    reserved: std::collections::HashSet<String>,
    /// The labels of the household's Tailscale Services (`chat` for
    /// `svc:chat`): MagicDNS answers `chat.<tailnet>` with the service
    /// alone, so no device may be called so.
    services: std::collections::HashSet<String>,
    next_suffix: std::collections::HashMap<String, u64>,
}

impl NameIndex {
    /// Whether `name` is taken: a node is called so, or it is reserved
    /// (the coordinator's own names, the services' labels).
    pub fn contains(&self, name: &str) -> bool {
        self.taken.contains(name) || self.is_reserved(name)
    }

    /// Whether no node may be called `name`, whoever has it now.
    pub fn is_reserved(&self, name: &str) -> bool {
        self.reserved.contains(name) || self.services.contains(name)
    }

    /// Whether `name` is a service's label.
    pub fn is_service_label(&self, name: &str) -> bool {
        self.services.contains(name)
    }

    /// The services' labels from now on (they change as services are
    /// created and deleted).
    pub fn set_service_labels(&mut self, labels: impl IntoIterator<Item = String>) {
        self.services = labels.into_iter().collect();
    }

    /// Keeps `name` from every node: a name the coordinator answers to
    /// itself (a device called so would get its certificate and shadow
    /// it in MagicDNS).
    pub fn reserve(&mut self, name: &str) {
        self.reserved.insert(name.to_owned());
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
        if !self.contains(&base) {
            return base;
        }
        let next = self.next_suffix.entry(base.clone()).or_insert(2);
        loop {
            let candidate = format!("{base}-{next}");
            *next += 1;
            if !self.taken.contains(&candidate)
                && !self.reserved.contains(&candidate)
                && !self.services.contains(&candidate)
            {
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
        assert!(check_user_name("alice").is_ok());
        assert!(check_user_name("").is_err());
        assert!(check_user_name("tag:x").is_err());
        assert!(check_user_name("a b").is_err());
        assert!(check_user_name(&"a".repeat(65)).is_err());
        for shaped_like_an_alias in ["alice@", "@alice", "a@b@c"] {
            assert!(
                matches!(
                    check_user_name(shaped_like_an_alias),
                    Err(NameError::User(_))
                ),
                "{shaped_like_an_alias}"
            );
        }
        for reserved in ["assistant", "Assistant", "operator", "ROOT", "nobody"] {
            assert_eq!(
                check_user_name(reserved),
                Err(NameError::Reserved(reserved.into()))
            );
        }
        assert!(same_user_name("Alice", "alice"));
        assert!(!same_user_name("alice", "alice2"));
    }

    #[test]
    fn hidden_characters_are_written_out() {
        assert_eq!(visible("root"), "root");
        assert_eq!(visible("a\u{1b}]0;x\u{7}"), "a\\u{1b}]0;x\\u{7}");
        assert_eq!(visible("evil\u{202e}toor"), "evil\\u{202e}toor");
        assert_eq!(visible("line\nforged"), "line\\u{a}forged");
        assert_eq!(visible("김치"), "김치", "letters of any script stay");
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
    fn the_coordinators_own_names_are_found_under_the_domain() {
        assert_eq!(
            own_labels(
                [
                    "hub.home.example",
                    "NS.Home.Example.",
                    "other.example",
                    "a.b.home.example"
                ],
                "home.example"
            ),
            ["hub", "ns"]
        );
    }

    #[test]
    fn a_reserved_name_goes_to_no_device() {
        let mut names = NameIndex::default();
        names.reserve("hub");
        assert!(names.contains("hub"));
        assert_eq!(names.unique("hub"), "hub-2");
        assert_ne!(names.unique("HUB"), "hub");
        names.insert("hub");
        names.remove("hub");
        assert!(
            names.contains("hub"),
            "freeing a node's name frees no reservation"
        );
    }

    #[test]
    fn a_services_label_goes_to_no_device_while_the_service_is_there() {
        let mut names = NameIndex::default();
        names.set_service_labels(["chat".to_owned(), "assistant".to_owned()]);
        assert!(names.contains("chat") && names.is_service_label("chat"));
        assert_eq!(names.unique("chat"), "chat-2");
        assert_eq!(names.unique("Assistant"), "assistant-2");
        names.set_service_labels(["assistant".to_owned()]);
        assert!(
            !names.contains("chat"),
            "the service is gone: the name is free"
        );
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
