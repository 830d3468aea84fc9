//! The API standalone relays use, on the coordinator's HTTPS listener, each
//! request carrying the relay's secret (`Authorization: Bearer`): its hello
//! (certificate fingerprint, STUN port; answered with the region it serves)
//! and the stream of admitted node keys it lets in, as newline-delimited
//! JSON: the whole set, then what was added and removed (checked every
//! [`POLL`]), and a keep-alive line every [`KEEPALIVE`] of quiet.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use hearth_control::wire::{
    RELAY_HELLO_PATH, RELAY_KEYS_PATH, RelayHello, RelayKeys, RelayRegion, WireGuardKey,
};

use super::parse_json;
use crate::coordinator::Coordinator;
use crate::error::Error;

/// How often the admitted set is compared with what the relay was sent.
pub const POLL: Duration = Duration::from_millis(250);
/// A keep-alive line after this long without a change.
pub const KEEPALIVE: Duration = Duration::from_secs(15);
/// How often the stream checks that its relay still exists.
const STILL_THERE: Duration = Duration::from_secs(2);

/// The relay API routes.
pub fn router(coordinator: Arc<Coordinator>) -> Router {
    Router::new()
        .route(RELAY_HELLO_PATH, post(hello))
        .route(RELAY_KEYS_PATH, get(keys))
        .layer(DefaultBodyLimit::max(16 * 1024))
        .with_state(coordinator)
}

/// The bearer secret of a request.
fn secret(headers: &HeaderMap) -> Result<String, Error> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(|secret| secret.trim().to_owned())
        .ok_or(Error::Unauthenticated)
}

async fn hello(
    State(coordinator): State<Arc<Coordinator>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<RelayRegion>, Error> {
    let secret = secret(&headers)?;
    let hello: RelayHello = parse_json(&body)?;
    let region = coordinator.relay_hello(&secret, &hello).await?;
    tracing::info!(region = region.id, code = %region.code, url = %region.url, "a standalone relay said hello");
    Ok(Json(region))
}

fn line(message: &RelayKeys) -> Bytes {
    let mut text = serde_json::to_vec(message).expect("relay key messages serialize");
    text.push(b'\n');
    Bytes::from(text)
}

/// What changed from `sent` to `now`, as stream messages (and `sent` updated).
fn changes(sent: &mut BTreeSet<WireGuardKey>, now: BTreeSet<WireGuardKey>) -> Vec<RelayKeys> {
    let added: Vec<WireGuardKey> = now.difference(sent).copied().collect();
    let removed: Vec<WireGuardKey> = sent.difference(&now).copied().collect();
    *sent = now;
    let mut messages = Vec::new();
    if !removed.is_empty() {
        messages.push(RelayKeys::Removed { keys: removed });
    }
    if !added.is_empty() {
        messages.push(RelayKeys::Added { keys: added });
    }
    messages
}

async fn keys(
    State(coordinator): State<Arc<Coordinator>>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let secret = secret(&headers)?;
    let relay = coordinator.relay_for_secret(&secret).await?;
    let sent = coordinator.admitted_keys().await;
    let first = line(&RelayKeys::Full {
        keys: sent.iter().copied().collect(),
    });
    let state = (
        coordinator,
        secret,
        sent,
        tokio::time::Instant::now(),
        Some(first),
    );
    let lines = futures_util::stream::unfold(
        state,
        |(coordinator, secret, mut sent, mut checked, first)| async move {
            if let Some(first) = first {
                return Some((
                    Ok::<_, Infallible>(first),
                    (coordinator, secret, sent, checked, None),
                ));
            }
            let quiet_since = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(POLL).await;
                if checked.elapsed() >= STILL_THERE {
                    // A removed relay's stream ends (and its clients lose it).
                    coordinator.relay_for_secret(&secret).await.ok()?;
                    checked = tokio::time::Instant::now();
                }
                let messages = changes(&mut sent, coordinator.admitted_keys().await);
                let mut bytes = Vec::new();
                for message in &messages {
                    bytes.extend_from_slice(&line(message));
                }
                if bytes.is_empty() && quiet_since.elapsed() >= KEEPALIVE {
                    bytes.extend_from_slice(&line(&RelayKeys::KeepAlive));
                }
                if !bytes.is_empty() {
                    return Some((
                        Ok(Bytes::from(bytes)),
                        (coordinator, secret, sent, checked, None),
                    ));
                }
            }
        },
    );
    tracing::info!(region = relay.id, code = %relay.code, "a standalone relay follows the admitted keys");
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from_stream(lines))
        .expect("static headers are valid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_name_what_came_and_went_once() {
        let key = |byte| WireGuardKey([byte; 32]);
        let mut sent: BTreeSet<WireGuardKey> = [key(1), key(2)].into();
        let messages = changes(&mut sent, [key(2), key(3)].into());
        assert_eq!(
            messages,
            [
                RelayKeys::Removed { keys: vec![key(1)] },
                RelayKeys::Added { keys: vec![key(3)] }
            ]
        );
        assert!(changes(&mut sent, [key(2), key(3)].into()).is_empty());
    }
}
