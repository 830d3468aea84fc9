//! The household app's files (`web/`, built into the binary): the page,
//! its script, words, styles, manifest, icons and service worker. Each is
//! served with a strong ETag (a reload sends nothing again that did not
//! change), the text ones gzipped once at start for a browser that takes
//! it, and the page with a strict content security policy. The service
//! worker carries the version of the whole shell, so an installed app
//! notices a new one. The table is pure; [`serve`] is the HTTP shell.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::Digest as _;

/// One file of the app.
struct File {
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const FILES: [File; 10] = [
    File {
        path: "/",
        content_type: "text/html; charset=utf-8",
        bytes: include_bytes!("../web/index.html"),
    },
    File {
        path: "/app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../web/app.js"),
    },
    File {
        path: "/state.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../web/state.js"),
    },
    File {
        path: "/i18n.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../web/i18n.js"),
    },
    File {
        path: "/style.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../web/style.css"),
    },
    File {
        path: "/manifest.webmanifest",
        content_type: "application/manifest+json",
        bytes: include_bytes!("../web/manifest.webmanifest"),
    },
    File {
        path: "/icons/icon-192.png",
        content_type: "image/png",
        bytes: include_bytes!("../web/icons/icon-192.png"),
    },
    File {
        path: "/icons/icon-512.png",
        content_type: "image/png",
        bytes: include_bytes!("../web/icons/icon-512.png"),
    },
    File {
        path: "/icons/maskable-512.png",
        content_type: "image/png",
        bytes: include_bytes!("../web/icons/maskable-512.png"),
    },
    File {
        path: "/sw.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../web/sw.js"),
    },
];

/// What the page may load and where it may connect: only its own origin
/// (the WebSocket included), never inside another site's frame.
pub const PAGE_POLICY: &str = "default-src 'self'; img-src 'self' data:; connect-src 'self'; \
     script-src 'self'; style-src 'self'; worker-src 'self'; manifest-src 'self'; \
     base-uri 'none'; form-action 'self'; object-src 'none'; frame-ancestors 'none'";

/// What the page may ask the device for: its own microphone, no camera,
/// place or payment, and nothing for frames.
pub const PAGE_PERMISSIONS: &str =
    "microphone=(self), camera=(), geolocation=(), payment=(), usb=()";

/// The placeholder in `sw.js` the version replaces.
const VERSION_MARK: &str = "@VERSION@";

/// A file as served.
#[derive(Clone, Debug)]
pub struct Served {
    /// Its media type.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: bytes::Bytes,
    /// Its strong ETag (quoted).
    pub etag: String,
    /// The same, gzipped, with its own ETag (text files only).
    pub gzipped: Option<(bytes::Bytes, String)>,
}

/// `bytes` gzipped (the best compression: done once, at start).
fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder
        .write_all(bytes)
        .and_then(|()| encoder.finish())
        .expect("writing to memory does not fail")
}

/// Whether `headers` take a gzipped body (`Accept-Encoding` naming gzip,
/// or `*`, without `q=0`).
pub fn takes_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let refused = parts.any(|parameter| {
                parameter
                    .strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// The app's files, ready to serve.
#[derive(Clone, Debug)]
pub struct WebApp {
    files: Vec<(&'static str, Served)>,
    version: String,
}

fn tag_of(bytes: &[u8]) -> String {
    format!("\"{}\"", hex::encode(&sha2::Sha256::digest(bytes)[..12]))
}

impl WebApp {
    /// The files; the service worker stamped with the version of the rest.
    pub fn new() -> WebApp {
        let mut digest = sha2::Sha256::new();
        for file in FILES.iter().filter(|file| file.path != "/sw.js") {
            digest.update(file.path.as_bytes());
            digest.update((file.bytes.len() as u64).to_le_bytes());
            digest.update(file.bytes);
        }
        let version = format!("hearth-{}", hex::encode(&digest.finalize()[..8]));
        let files = FILES
            .iter()
            .map(|file| {
                let body = if file.path == "/sw.js" {
                    let text = String::from_utf8_lossy(file.bytes).replace(VERSION_MARK, &version);
                    bytes::Bytes::from(text)
                } else {
                    bytes::Bytes::from_static(file.bytes)
                };
                let text = !file.content_type.starts_with("image/");
                let gzipped = text.then(|| {
                    let packed = bytes::Bytes::from(gzip(&body));
                    let etag = tag_of(&packed);
                    (packed, etag)
                });
                let served = Served {
                    content_type: file.content_type,
                    etag: tag_of(&body),
                    body,
                    gzipped,
                };
                (file.path, served)
            })
            .collect();
        WebApp { files, version }
    }

    /// The shell's version (what the service worker names its cache).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The file at `path`.
    pub fn file(&self, path: &str) -> Option<&Served> {
        self.files
            .iter()
            .find(|(known, _)| *known == path)
            .map(|(_, served)| served)
    }
}

impl Default for WebApp {
    fn default() -> WebApp {
        WebApp::new()
    }
}

/// The response for `path` (404 when it is not one of the app's files).
pub fn serve(app: &WebApp, path: &str, headers: &HeaderMap) -> Response {
    let Some(served) = app.file(path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (body, etag, gzipped) = match &served.gzipped {
        Some((packed, etag)) if takes_gzip(headers) => (packed, etag, true),
        _ => (&served.body, &served.etag, false),
    };
    let mut response =
        if hearth_http::etag::not_modified(hearth_http::etag::if_none_match(headers), etag) {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            ([(header::CONTENT_TYPE, served.content_type)], body.clone()).into_response()
        };
    let out = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(etag) {
        out.insert(header::ETAG, etag);
    }
    if gzipped {
        out.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    if served.gzipped.is_some() {
        out.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    // Asked again each time (a 304 when unchanged): a new version is seen
    // at once; the installed app's worker keeps its own copy for offline.
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if served.content_type.starts_with("text/html") {
        out.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PAGE_POLICY),
        );
        out.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        out.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
        // The microphone for the page itself (hold-to-talk); nothing else
        // it does not use.
        out.insert(
            header::HeaderName::from_static("permissions-policy"),
            HeaderValue::from_static(PAGE_PERMISSIONS),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worker_carries_the_shells_version_and_every_shell_file_is_served() {
        let app = WebApp::new();
        let worker = String::from_utf8(app.file("/sw.js").unwrap().body.to_vec()).unwrap();
        assert!(worker.contains(&format!("\"{}\"", app.version())));
        assert!(!worker.contains(VERSION_MARK));
        // Every file the worker keeps is one the service serves.
        let shell = worker
            .split("const SHELL = [")
            .nth(1)
            .and_then(|rest| rest.split("];").next())
            .unwrap();
        for path in shell.split(',').map(|item| item.trim().trim_matches('"')) {
            if !path.is_empty() {
                assert!(app.file(path).is_some(), "{path}");
            }
        }
        // The manifest's icons are served too.
        let manifest: serde_json::Value =
            serde_json::from_slice(&app.file("/manifest.webmanifest").unwrap().body).unwrap();
        for icon in manifest["icons"].as_array().unwrap() {
            assert!(app.file(icon["src"].as_str().unwrap()).is_some());
        }
    }

    #[test]
    fn text_files_go_gzipped_to_a_browser_that_takes_it() {
        use std::io::Read as _;
        let app = WebApp::new();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip, deflate, br"),
        );
        let response = serve(&app, "/app.js", &headers);
        assert_eq!(response.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(response.headers()[header::VARY], "accept-encoding");
        let (packed, etag) = app.file("/app.js").unwrap().gzipped.clone().unwrap();
        assert_eq!(response.headers()[header::ETAG], etag.as_str());
        let mut unpacked = Vec::new();
        flate2::read::GzDecoder::new(&packed[..])
            .read_to_end(&mut unpacked)
            .unwrap();
        assert_eq!(unpacked, app.file("/app.js").unwrap().body);
        assert!(packed.len() * 2 < unpacked.len(), "compressed well");
        // Not taken, refused with q=0, or an image: sent as it is.
        for accepted in ["", "identity", "gzip;q=0, br"] {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_str(accepted).unwrap(),
            );
            let response = serve(&app, "/app.js", &headers);
            assert!(
                response.headers().get(header::CONTENT_ENCODING).is_none(),
                "{accepted}"
            );
        }
        let icon = serve(&app, "/icons/icon-192.png", &headers);
        assert!(icon.headers().get(header::CONTENT_ENCODING).is_none());
        // The gzipped copy's own ETag answers a revalidation with 304.
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_str(&etag).unwrap());
        assert_eq!(
            serve(&app, "/app.js", &headers).status(),
            StatusCode::NOT_MODIFIED
        );
    }
}
