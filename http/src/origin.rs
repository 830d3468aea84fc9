//! The same-origin rule for services a browser can reach (the messaging web
//! page and its API, the gateway's HTTP APIs).
//!
//! A page of another site that a household member opens while on the mesh
//! can make their browser send requests to the hub. Two checks keep it out:
//!
//! - **Host**: the name the browser used must be one of the service's own
//!   (an IP literal, or a configured name such as the hub's MagicDNS-style
//!   name or `localhost`). A DNS-rebinding page reaches the hub under the
//!   attacker's name, so its `Host` is that name and is refused.
//! - **Origin**: browsers send it with every cross-site request that can
//!   change something or read an answer (POST, WebSocket handshakes,
//!   `fetch`). When present it must be the service's own origin: the same
//!   host and port as `Host`. Clients that are not browsers (the CLI, curl)
//!   send none and are not affected.

use std::net::IpAddr;

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CrossSite {
    /// No `Host` (nor HTTP/2 authority) at all.
    #[error("the request names no host")]
    MissingHost,
    /// `Host` is a name this service does not answer to.
    #[error("this service does not answer to the name {0:?}")]
    ForeignHost(String),
    /// `Origin` is another site (or `null`).
    #[error("requests from the web page at {0:?} are not accepted")]
    ForeignOrigin(String),
}

/// The environment variable the hub's pod names the hub and its services
/// in (`hub.<tailnet>,chat.<tailnet>,assistant.<tailnet>`): names a
/// service answers to beside its configuration's, so that the names
/// `hearth setup` prints work without the admin editing a file.
pub const ALLOWED_HOSTS_VARIABLE: &str = "HEARTH_ALLOWED_HOSTS";

/// The names in `value` (the [`ALLOWED_HOSTS_VARIABLE`]'s text): comma or
/// space separated.
pub fn names_in(value: &str) -> Vec<String> {
    value
        .split([',', ' '])
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The names a service answers to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SameOrigin {
    names: Vec<String>,
}

/// `host[:port]` split, lower-cased, brackets removed from an IPv6 literal.
fn split_authority(authority: &str) -> Option<(String, Option<u16>)> {
    let authority = authority.trim();
    if authority.is_empty() || authority.contains(['/', '@', ' ']) {
        return None;
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            text => Some(text.strip_prefix(':')?.parse().ok()?),
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port.parse().ok()?)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    Some((host.to_ascii_lowercase(), port))
}

impl SameOrigin {
    /// A service answering to IP literals and to `names` (DNS names, any case).
    pub fn new<I, S>(names: I) -> SameOrigin
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut names: Vec<String> = names
            .into_iter()
            .map(|name| {
                name.as_ref()
                    .trim()
                    .trim_end_matches('.')
                    .to_ascii_lowercase()
            })
            .filter(|name| !name.is_empty())
            .collect();
        names.sort();
        names.dedup();
        SameOrigin { names }
    }

    /// The configured names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    fn answers_to(&self, host: &str) -> bool {
        host.parse::<IpAddr>().is_ok()
            || self
                .names
                .iter()
                .any(|name| name == host.trim_end_matches('.'))
    }

    /// Checks a request's `Host` (or HTTP/2 authority) and `Origin`.
    pub fn check(&self, host: Option<&str>, origin: Option<&str>) -> Result<(), CrossSite> {
        let host_text = host.ok_or(CrossSite::MissingHost)?;
        let (hostname, port) =
            split_authority(host_text).ok_or_else(|| CrossSite::ForeignHost(host_text.into()))?;
        if !self.answers_to(&hostname) {
            return Err(CrossSite::ForeignHost(hostname));
        }
        let Some(origin) = origin else {
            return Ok(());
        };
        let foreign = || CrossSite::ForeignOrigin(origin.to_owned());
        let (scheme, authority) = origin.trim().split_once("://").ok_or_else(foreign)?;
        let default_port = match scheme.to_ascii_lowercase().as_str() {
            "http" => 80,
            "https" => 443,
            _ => return Err(foreign()),
        };
        let (origin_host, origin_port) = split_authority(authority).ok_or_else(foreign)?;
        // `Host` carries no port when it is the scheme's default.
        let same_port = origin_port.unwrap_or(default_port) == port.unwrap_or(default_port);
        if origin_host.trim_end_matches('.') == hostname.trim_end_matches('.') && same_port {
            Ok(())
        } else {
            Err(foreign())
        }
    }

    /// [`SameOrigin::check`] on an HTTP request's headers and URI.
    pub fn check_request<B>(&self, request: &axum::http::Request<B>) -> Result<(), CrossSite> {
        let headers = request.headers();
        let host = headers
            .get(axum::http::header::HOST)
            .and_then(|value| value.to_str().ok())
            .or_else(|| {
                request
                    .uri()
                    .authority()
                    .map(|authority| authority.as_str())
            });
        let origin = match headers.get(axum::http::header::ORIGIN) {
            Some(value) => Some(
                value
                    .to_str()
                    .map_err(|_| CrossSite::ForeignOrigin("(not text)".into()))?,
            ),
            None => None,
        };
        self.check(host, origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub() -> SameOrigin {
        SameOrigin::new(["hub.hearth.internal", "LOCALHOST"])
    }

    #[test]
    fn own_names_and_addresses_pass_without_an_origin() {
        let hub = hub();
        for host in [
            "100.64.0.1:18790",
            "100.64.0.1",
            "[fd7a:115c:a1e0::1]:18790",
            "hub.hearth.internal:18790",
            "Hub.Hearth.Internal.",
            "localhost:8080",
            "127.0.0.1:5000",
        ] {
            assert_eq!(hub.check(Some(host), None), Ok(()), "{host}");
        }
    }

    #[test]
    fn the_pods_names_are_read_from_its_variable() {
        assert_eq!(
            names_in("hub.hearth.internal, chat.hearth.internal,,assistant.hearth.internal "),
            [
                "hub.hearth.internal",
                "chat.hearth.internal",
                "assistant.hearth.internal"
            ]
        );
        assert!(names_in("").is_empty());
    }

    #[test]
    fn a_rebinding_name_is_refused() {
        assert_eq!(
            hub().check(Some("rebind.evil.example:18790"), None),
            Err(CrossSite::ForeignHost("rebind.evil.example".into()))
        );
        assert_eq!(hub().check(None, None), Err(CrossSite::MissingHost));
        assert!(hub().check(Some("a@b"), None).is_err());
        assert!(hub().check(Some("[::1"), None).is_err());
    }

    #[test]
    fn only_the_services_own_origin_passes() {
        let hub = hub();
        let host = Some("100.64.0.1:18790");
        assert_eq!(hub.check(host, Some("http://100.64.0.1:18790")), Ok(()));
        for origin in [
            "https://evil.example",
            "http://100.64.0.1:8080",
            "http://100.64.0.2:18790",
            "null",
            "file://",
            "ws://100.64.0.1:18790",
        ] {
            assert_eq!(
                hub.check(host, Some(origin)),
                Err(CrossSite::ForeignOrigin(origin.into())),
                "{origin}"
            );
        }
        assert_eq!(
            hub.check(
                Some("hub.hearth.internal"),
                Some("http://hub.hearth.internal:80")
            ),
            Ok(()),
            "default ports compare equal"
        );
        assert_eq!(hub.check(Some("[::1]:9"), Some("http://[::1]:9")), Ok(()));
    }

    #[test]
    fn requests_are_read_from_headers_or_the_authority() {
        let request = axum::http::Request::builder()
            .uri("http://100.64.0.1:18790/api/me")
            .body(())
            .unwrap();
        assert_eq!(hub().check_request(&request), Ok(()), "HTTP/2 authority");
        let request = axum::http::Request::builder()
            .uri("/api/me")
            .header("host", "100.64.0.1:18790")
            .header("origin", "https://evil.example")
            .body(())
            .unwrap();
        assert!(hub().check_request(&request).is_err());
    }
}
