//! The household app's files (`web/`, built into the binary): the page,
//! its script, words, styles, manifest, icons and service worker. Each is
//! served with a strong ETag (a reload sends nothing again that did not
//! change) and the page with a strict content security policy. The service
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
                let served = Served {
                    content_type: file.content_type,
                    etag: tag_of(&body),
                    body,
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
    let mut response =
        if hearth_http::etag::not_modified(hearth_http::etag::if_none_match(headers), &served.etag)
        {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            (
                [(header::CONTENT_TYPE, served.content_type)],
                served.body.clone(),
            )
                .into_response()
        };
    let out = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&served.etag) {
        out.insert(header::ETAG, etag);
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
}
