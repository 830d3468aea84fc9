//! Control-to-node requests (Tailscale's "c2n"): the coordinator sends a
//! client an HTTP/1.1 request inside a map message's `PingRequest`; the
//! client runs it against its own handlers and posts the raw HTTP response
//! back over the control connection. Hearth asks one thing this way: which
//! Tailscale Services the client serves (`GET /vip-services`), when the
//! hash it reports in its host information changes.
//!
//! Pure: what to send, and reading what comes back (untrusted bytes from a
//! client: bounded, and refused with a reason rather than half-read).

use serde::Deserialize;

/// The most a client's answer may hold.
pub const MAX_REPLY: usize = 64 * 1024;
/// The most services a client may say it serves.
pub const MAX_SERVICES: usize = 64;

/// The HTTP request that asks a client for its services.
pub fn vip_services_request() -> Vec<u8> {
    b"GET /vip-services HTTP/1.1\r\nHost: client\r\nUser-Agent: hearth-coordinator\r\n\r\n".to_vec()
}

/// What a client says it serves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VipServices {
    /// The services it serves and takes new connections for (`Active`),
    /// `svc:name`, sorted, each once.
    pub active: Vec<String>,
    /// The hash of its list, as it reports it in its host information.
    pub hash: String,
}

/// Why an answer was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum C2nError {
    /// Longer than [`MAX_REPLY`].
    #[error("the answer is longer than {MAX_REPLY} bytes")]
    TooLong,
    /// Not an HTTP response.
    #[error("the answer is not an HTTP/1.x response: {0}")]
    NotHttp(&'static str),
    /// A status other than 200.
    #[error("the client answered with status {0}")]
    Status(u16),
    /// The body is not the JSON expected.
    #[error("the answer's body is not a list of services: {0}")]
    Body(String),
    /// A service name that is not one.
    #[error("{0}")]
    Name(String),
    /// More than [`MAX_SERVICES`].
    #[error("the client lists more than {MAX_SERVICES} services")]
    TooMany,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Reply {
    #[serde(rename = "VIPServices", default)]
    vip_services: Option<Vec<Listed>>,
    #[serde(default)]
    services_hash: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Listed {
    name: String,
    #[serde(default)]
    active: bool,
}

/// Reads a client's answer to [`vip_services_request`]: the raw HTTP/1.1
/// response it posted.
pub fn parse_vip_services(reply: &[u8]) -> Result<VipServices, C2nError> {
    if reply.len() > MAX_REPLY {
        return Err(C2nError::TooLong);
    }
    let body = http_body(reply)?;
    let parsed: Reply =
        serde_json::from_slice(&body).map_err(|error| C2nError::Body(error.to_string()))?;
    let listed = parsed.vip_services.unwrap_or_default();
    if listed.len() > MAX_SERVICES {
        return Err(C2nError::TooMany);
    }
    let mut active = Vec::new();
    for service in listed {
        let name = hearth_acl::alias::service_name(&service.name)
            .map_err(|error| C2nError::Name(error.to_string()))?;
        if service.active {
            active.push(name);
        }
    }
    active.sort();
    active.dedup();
    Ok(VipServices {
        active,
        hash: parsed.services_hash.chars().take(128).collect(),
    })
}

/// The body of an HTTP/1.x response with status 200: as sent, up to its
/// `Content-Length`, or de-chunked.
fn http_body(reply: &[u8]) -> Result<Vec<u8>, C2nError> {
    let end = reply
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or(C2nError::NotHttp("no end of headers"))?;
    let head =
        std::str::from_utf8(&reply[..end]).map_err(|_| C2nError::NotHttp("headers not UTF-8"))?;
    let rest = &reply[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(C2nError::NotHttp("no HTTP/1.x status line"));
    }
    let status: u16 = parts
        .next()
        .and_then(|code| code.parse().ok())
        .ok_or(C2nError::NotHttp("no status code"))?;
    if status != 200 {
        return Err(C2nError::Status(status));
    }
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or(C2nError::NotHttp("a header without a colon"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| C2nError::NotHttp("a bad Content-Length"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        }
    }
    if chunked {
        return dechunk(rest);
    }
    match length {
        Some(length) if length <= rest.len() => Ok(rest[..length].to_vec()),
        Some(_) => Err(C2nError::NotHttp("a body shorter than its Content-Length")),
        None => Ok(rest.to_vec()),
    }
}

/// A chunked body, joined.
fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, C2nError> {
    let mut body = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|window| window == b"\r\n")
            .ok_or(C2nError::NotHttp("a chunk without its size line"))?;
        let size_text = std::str::from_utf8(&rest[..line_end])
            .map_err(|_| C2nError::NotHttp("a chunk size not UTF-8"))?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| C2nError::NotHttp("a bad chunk size"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size + 2 || &rest[size..size + 2] != b"\r\n" {
            return Err(C2nError::NotHttp("a chunk shorter than its size"));
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = r#"{"VIPServices":[{"Name":"svc:chat","Ports":[{"Proto":6,"Ports":{"First":80,"Last":80}}],"Active":true},{"Name":"svc:draining","Active":false}],"ServicesHash":"abc123"}"#;

    #[test]
    fn a_clients_answer_gives_its_active_services_and_hash() {
        // As Go's Response.Write sends it without a length: read to the end.
        let plain = format!(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\n\r\n{BODY}\n"
        );
        let expected = VipServices {
            active: vec!["svc:chat".into()],
            hash: "abc123".into(),
        };
        assert_eq!(parse_vip_services(plain.as_bytes()), Ok(expected.clone()));
        let chunked = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{BODY}\r\n0\r\n\r\n",
            BODY.len()
        );
        assert_eq!(parse_vip_services(chunked.as_bytes()), Ok(expected.clone()));
        let sized = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{BODY}trailing",
            BODY.len()
        );
        assert_eq!(parse_vip_services(sized.as_bytes()), Ok(expected));
        let none = "HTTP/1.1 200 OK\r\n\r\n{\"ServicesHash\":\"\"}";
        assert_eq!(
            parse_vip_services(none.as_bytes()),
            Ok(VipServices::default())
        );
    }

    #[test]
    fn answers_that_are_not_a_list_of_services_are_refused_saying_why() {
        let refused = |reply: &str| parse_vip_services(reply.as_bytes()).unwrap_err();
        assert_eq!(
            refused("HTTP/1.1 404 Not Found\r\n\r\n"),
            C2nError::Status(404)
        );
        assert!(matches!(refused("hello"), C2nError::NotHttp(_)));
        assert!(matches!(
            refused("HTTP/1.1 200 OK\r\n\r\nnot json"),
            C2nError::Body(_)
        ));
        assert!(matches!(
            refused(
                "HTTP/1.1 200 OK\r\n\r\n{\"VIPServices\":[{\"Name\":\"svc:Bad Name\",\"Active\":true}]}"
            ),
            C2nError::Name(_)
        ));
        assert!(matches!(
            refused("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffff\r\nabc"),
            C2nError::NotHttp(_)
        ));
        let many: Vec<String> = (0..=MAX_SERVICES)
            .map(|index| format!("{{\"Name\":\"svc:s{index}\",\"Active\":true}}"))
            .collect();
        let reply = format!(
            "HTTP/1.1 200 OK\r\n\r\n{{\"VIPServices\":[{}]}}",
            many.join(",")
        );
        assert_eq!(refused(&reply), C2nError::TooMany);
        let long = format!("HTTP/1.1 200 OK\r\n\r\n{}", " ".repeat(MAX_REPLY));
        assert_eq!(refused(&long), C2nError::TooLong);
    }
}
