//! OpenClaw's Control UI (the dashboard its gateway serves), served by
//! Hearth from an installed `openclaw` package (`hearth.controlUi`): Hearth
//! ships none of its files. The page talks to the gateway over OpenClaw's
//! protocol on the same origin ([`crate::claw`]); it is public code, so
//! serving it needs no caller, and nothing outside its folder is read.

use std::path::{Component, Path, PathBuf};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Where a request for `path` is answered from under `root`: the file, or
/// the page itself for an app route (no extension); `None` for a name that
/// could leave the folder.
pub fn file_for(root: &Path, path: &str) -> Option<PathBuf> {
    let relative = path.trim_start_matches('/');
    if relative.is_empty() {
        return Some(root.join("index.html"));
    }
    if relative.contains('\\') || relative.contains('\0') {
        return None;
    }
    let candidate = Path::new(relative);
    if !candidate
        .components()
        .all(|component| matches!(component, Component::Normal(_)))
    {
        return None;
    }
    Some(root.join(candidate))
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|extension| extension.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("webmanifest") => "application/manifest+json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("woff") => "font/woff",
        Some("webp") => "image/webp",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The ETag of a file of `length` bytes last changed at `modified`: it
/// changes when the installed package does.
fn etag_of(length: u64, modified: Option<std::time::SystemTime>) -> String {
    let nanos = modified
        .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |since| since.as_nanos());
    format!("\"{length:x}-{nanos:x}\"")
}

/// The Control UI's answer to `GET path` (`304` when the client's
/// `If-None-Match` names the file as it is).
pub async fn serve(root: &Path, path: &str, if_none_match: Option<&str>) -> Response {
    let not_found = || (StatusCode::NOT_FOUND, "not found").into_response();
    let Some(mut file) = file_for(root, path) else {
        return not_found();
    };
    let regular = |path: &Path| std::fs::symlink_metadata(path).is_ok_and(|meta| meta.is_file());
    if !regular(&file) {
        // An app route (`/chat`, `/settings/devices`) is the page itself.
        if file.extension().is_some() {
            return not_found();
        }
        file = root.join("index.html");
    }
    let Ok(meta) = tokio::fs::metadata(&file).await else {
        return not_found();
    };
    let etag = etag_of(meta.len(), meta.modified().ok());
    let mut response = if hearth_http::etag::not_modified(if_none_match, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let Ok(body) = tokio::fs::read(&file).await else {
            return not_found();
        };
        body.into_response()
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&file)),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Its own scripts and the gateway's WebSocket only; never framed.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self' ws: wss:; \
             worker-src 'self'; manifest-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_inside_the_folder_are_served() {
        let root = Path::new("/srv/ui");
        assert_eq!(file_for(root, "/"), Some(root.join("index.html")));
        assert_eq!(
            file_for(root, "/assets/app.js"),
            Some(root.join("assets/app.js"))
        );
        for escape in [
            "/../etc/passwd",
            "/assets/../../x",
            "/a/./b",
            "/a\\..\\b",
            "//etc/passwd",
        ] {
            let served = file_for(root, escape);
            assert!(
                served.as_ref().is_none_or(
                    |path| path.starts_with(root) && !path.to_string_lossy().contains("..")
                ),
                "{escape}: {served:?}"
            );
        }
        assert_eq!(file_for(root, "/../etc/passwd"), None);
    }

    #[tokio::test]
    async fn an_unchanged_file_is_answered_not_modified() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("index.html"), "<!doctype html>").unwrap();
        let first = serve(root.path(), "/", None).await;
        assert_eq!(first.status(), StatusCode::OK);
        let etag = first.headers()[header::ETAG].to_str().unwrap().to_owned();
        let again = serve(root.path(), "/chat", Some(&etag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        std::fs::write(root.path().join("index.html"), "<!doctype html><p>new").unwrap();
        let changed = serve(root.path(), "/", Some(&etag)).await;
        assert_eq!(changed.status(), StatusCode::OK, "a new version is sent");
    }
}
