//! Which inner targets the OHTTP gateway forwards to: an allow-list of
//! `http://ADDRESS:PORT/PATH-PREFIX` entries (the router). Pure.

use hearth_ohttp::bhttp;

/// One allowed target.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Target {
    authority: String,
    prefix: String,
}

/// The allow-list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowList {
    targets: Vec<Target>,
}

/// Methods the gateway forwards.
const METHODS: &[&[u8]] = &[b"GET", b"POST"];

/// Request headers passed to the target; every other is dropped.
pub const FORWARDED_HEADERS: &[&str] =
    &["content-type", "accept", hearth_pcc::protocol::BADGE_HEADER];

/// Why `--allow` is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AllowError {
    /// Not `http://`.
    #[error("{0}: an inner target is http://ADDRESS:PORT/PREFIX")]
    NotHttp(String),
    /// The authority is not an address and port (names are not resolved).
    #[error("{entry}: `{authority}` is not ADDRESS:PORT")]
    NotAnAddress {
        /// The entry.
        entry: String,
        /// Its authority.
        authority: String,
    },
    /// Nothing allowed.
    #[error("no inner target is allowed: name the router with --allow")]
    Empty,
}

impl AllowList {
    /// Parses entries like `http://10.0.0.2:3600/v1/`: an address (not a
    /// name: nothing is resolved), a port, and the path prefix allowed.
    pub fn parse(entries: &[String]) -> Result<AllowList, AllowError> {
        let mut targets = Vec::new();
        for entry in entries {
            let rest = entry
                .strip_prefix("http://")
                .ok_or_else(|| AllowError::NotHttp(entry.clone()))?;
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            if authority.parse::<std::net::SocketAddr>().is_err() {
                return Err(AllowError::NotAnAddress {
                    entry: entry.clone(),
                    authority: authority.to_owned(),
                });
            }
            targets.push(Target {
                authority: authority.to_owned(),
                prefix: format!("/{path}"),
            });
        }
        if targets.is_empty() {
            return Err(AllowError::Empty);
        }
        Ok(AllowList { targets })
    }

    /// The URL to send `request` to, or why it is refused. Refused: a
    /// scheme other than http, an authority or path not listed, a path with
    /// `..` or a query smuggling another target, a byte a URL parser would
    /// drop or rewrite (white space, controls, `%`, `\\`, non-ASCII: a TAB
    /// inside `..` was dropped into a path escape), a method other than GET
    /// and POST; and, last, any URL that does not parse back to exactly the
    /// checked authority and path.
    pub fn check(&self, request: &bhttp::Request) -> Result<String, &'static str> {
        if request.scheme != b"http" {
            return Err("only http inner targets are forwarded");
        }
        if !METHODS.contains(&request.method.as_slice()) {
            return Err("only GET and POST are forwarded");
        }
        if !request.path.iter().copied().all(plain_url_byte)
            || !request.authority.iter().copied().all(plain_url_byte)
        {
            return Err("the target holds a byte a URL may not");
        }
        let authority =
            std::str::from_utf8(&request.authority).map_err(|_| "the authority is not text")?;
        let path = std::str::from_utf8(&request.path).map_err(|_| "the path is not text")?;
        if !path.starts_with('/')
            || path
                .split(['/', '?'])
                .any(|segment| segment == ".." || segment == ".")
            || path.contains("//")
            || path.contains('\\')
            || path.contains('%')
            || path.contains('#')
        {
            return Err("the path is not a plain absolute path");
        }
        let url = self
            .targets
            .iter()
            .find(|target| {
                target.authority.eq_ignore_ascii_case(authority) && path.starts_with(&target.prefix)
            })
            .map(|target| format!("http://{}{path}", target.authority))
            .ok_or("the inner target is not on the allow-list")?;
        // What the HTTP client will send is what was checked.
        let parsed = reqwest::Url::parse(&url).map_err(|_| "the target is not a URL")?;
        let sent = match parsed.query() {
            Some(query) => format!("{}?{query}", parsed.path()),
            None => parsed.path().to_owned(),
        };
        if sent != path {
            return Err("the target does not read back as checked");
        }
        Ok(url)
    }
}

/// A byte allowed as it is in an inner target's authority or path: RFC
/// 3986's unreserved and sub-delimiter characters, `:`, `@`, `/`, `?`.
fn plain_url_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?[]".contains(&byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, scheme: &str, authority: &str, path: &str) -> bhttp::Request {
        bhttp::Request::new(method, scheme, authority, path)
    }

    #[test]
    fn only_listed_targets_under_their_prefix_pass() {
        let list = AllowList::parse(&["http://10.0.0.2:3600/v1/".into()]).unwrap();
        assert_eq!(
            list.check(&request("POST", "http", "10.0.0.2:3600", "/v1/compute")),
            Ok("http://10.0.0.2:3600/v1/compute".into())
        );
        for (method, scheme, authority, path) in [
            ("POST", "https", "10.0.0.2:3600", "/v1/compute"),
            ("POST", "http", "10.0.0.3:3600", "/v1/compute"),
            ("POST", "http", "10.0.0.2:3601", "/v1/compute"),
            ("POST", "http", "10.0.0.2:3600", "/health"),
            ("POST", "http", "10.0.0.2:3600", "/v1/../admin"),
            ("POST", "http", "10.0.0.2:3600", "/v1/%2e%2e/admin"),
            ("DELETE", "http", "10.0.0.2:3600", "/v1/compute"),
            ("POST", "http", "169.254.169.254:80", "/v1/latest/meta-data"),
            ("POST", "http", "10.0.0.2:3600", "/v1/.\t./admin"),
            ("POST", "http", "10.0.0.2:3600", "/v1/.\r\n./admin"),
            ("POST", "http", "10.0.0.2:3600", "/v1/\u{a0}../admin"),
            ("POST", "http", "10.0.0.2:3600", "/v1/ compute"),
            ("POST", "http", "10.0.0.2:3600\t", "/v1/compute"),
            ("POST", "http", "10.0.0.2:3600", "/v1/compute\u{0}"),
        ] {
            assert!(
                list.check(&request(method, scheme, authority, path))
                    .is_err(),
                "{method} {scheme}://{authority}{path}"
            );
        }
        assert!(
            AllowList::parse(&["http://router.example:3600/".into()]).is_err(),
            "names are not resolved"
        );
        assert!(AllowList::parse(&[]).is_err());
    }
}
