//! Whom a front end says it acts for, signed: Open WebUI's
//! `X-OpenWebUI-User-Jwt` (`FORWARD_USER_INFO_HEADER_JWT_SECRET` set on its
//! side), an HS256 JSON Web Token naming its user, checked here with the
//! same shared secret. Pure: the token, the secret and the clock in; the
//! user's name, or why not, out. Only HS256 is taken (a token naming
//! another algorithm, `none` included, is refused whatever it says), the
//! signature is compared in constant time, and the token must come from
//! Open WebUI (`iss`) and be within its lifetime (`exp`, `iat`, a minute's
//! leeway for the two machines' clocks).

use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use serde_json::Value;

/// The header.
pub const SIGNED_USER: &str = "x-openwebui-user-jwt";
/// The longest token read (Open WebUI's are a few hundred bytes).
pub const MAX_TOKEN_BYTES: usize = 4096;
/// Seconds the two clocks may differ by.
pub const LEEWAY_SECONDS: i64 = 60;

/// Why a signed user header is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Not three base64url parts of JSON, or too long.
    #[error("{SIGNED_USER} is not a JSON Web Token")]
    Malformed,
    /// Signed with another algorithm than HS256.
    #[error("{SIGNED_USER} is signed with {0}, not HS256")]
    Algorithm(String),
    /// The signature does not match the shared secret.
    #[error("{SIGNED_USER} is not signed with this gateway's secret")]
    Forged,
    /// Not Open WebUI's.
    #[error("{SIGNED_USER} was not issued by Open WebUI")]
    Issuer,
    /// Past its `exp` (or without one).
    #[error("{SIGNED_USER} has expired")]
    Expired,
    /// Issued in the future.
    #[error("{SIGNED_USER} is issued in the future")]
    NotYet,
    /// No user's name in it.
    #[error("{SIGNED_USER} names no user")]
    NoName,
}

fn part(text: &str) -> Result<Vec<u8>, Refused> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| Refused::Malformed)
}

fn json(bytes: &[u8]) -> Result<serde_json::Map<String, Value>, Refused> {
    serde_json::from_slice(bytes).map_err(|_| Refused::Malformed)
}

/// The user `token` names (its `name` claim, which must be the member's
/// name in the household), if it is Open WebUI's, signed with `secret` and
/// current at `now` (Unix seconds).
pub fn verify(token: &str, secret: &[u8], now: i64) -> Result<String, Refused> {
    let token = token.trim();
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Refused::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(head), Some(body), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refused::Malformed);
    };
    let header = json(&part(head)?)?;
    match header.get("alg").and_then(Value::as_str) {
        Some("HS256") => {}
        Some(other) => return Err(Refused::Algorithm(other.chars().take(16).collect())),
        None => return Err(Refused::Malformed),
    }
    let signature = part(signature)?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).map_err(|_| Refused::Forged)?;
    mac.update(head.as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    mac.verify_slice(&signature).map_err(|_| Refused::Forged)?;
    let claims = json(&part(body)?)?;
    if claims.get("iss").and_then(Value::as_str) != Some("open-webui") {
        return Err(Refused::Issuer);
    }
    let time = |name: &str| claims.get(name).and_then(Value::as_i64);
    match time("exp") {
        Some(exp) if exp.saturating_add(LEEWAY_SECONDS) > now => {}
        _ => return Err(Refused::Expired),
    }
    if time("iat").is_some_and(|iat| iat > now.saturating_add(LEEWAY_SECONDS)) {
        return Err(Refused::NotYet);
    }
    claims
        .get("name")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .ok_or(Refused::NoName)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &[u8] = b"open-webui-and-hearth-share-this-secret";
    const NOW: i64 = 1_800_000_000;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A token as Open WebUI mints it, with `claims` over its own.
    fn token(secret: &[u8], alg: &str, claims: Value) -> String {
        let mut body = json!({"sub": "u-1", "email": "ada@example.test", "name": "ada", "role": "user",
                              "iss": "open-webui", "iat": NOW, "exp": NOW + 300});
        for (key, value) in claims.as_object().unwrap() {
            body[key] = value.clone();
        }
        let signed = format!(
            "{}.{}",
            b64(json!({"alg": alg, "typ": "JWT"}).to_string().as_bytes()),
            b64(body.to_string().as_bytes())
        );
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
        mac.update(signed.as_bytes());
        format!("{signed}.{}", b64(&mac.finalize().into_bytes()))
    }

    #[test]
    fn open_webuis_token_names_its_user() {
        let good = token(SECRET, "HS256", json!({}));
        assert_eq!(verify(&good, SECRET, NOW), Ok("ada".to_owned()));
        // Within the minute's leeway of its expiry, still taken.
        assert_eq!(verify(&good, SECRET, NOW + 330), Ok("ada".to_owned()));
    }

    #[test]
    fn a_forged_expired_or_foreign_token_is_refused() {
        let other = token(b"a-secret-someone-guessed-wrongly", "HS256", json!({}));
        assert_eq!(verify(&other, SECRET, NOW), Err(Refused::Forged));
        let good = token(SECRET, "HS256", json!({}));
        assert_eq!(verify(&good, SECRET, NOW + 400), Err(Refused::Expired));
        // Claims changed after signing: the signature no longer matches.
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        parts[1] = b64(
            json!({"name": "ben", "iss": "open-webui", "exp": NOW + 300})
                .to_string()
                .as_bytes(),
        );
        assert_eq!(verify(&parts.join("."), SECRET, NOW), Err(Refused::Forged));
        // "none" (or any other algorithm) is never taken.
        let unsigned = format!(
            "{}.{}.",
            b64(br#"{"alg":"none"}"#),
            b64(
                json!({"name": "ben", "iss": "open-webui", "exp": NOW + 300})
                    .to_string()
                    .as_bytes()
            )
        );
        assert_eq!(
            verify(&unsigned, SECRET, NOW),
            Err(Refused::Algorithm("none".into()))
        );
        let hs512 = token(SECRET, "HS512", json!({}));
        assert_eq!(
            verify(&hs512, SECRET, NOW),
            Err(Refused::Algorithm("HS512".into()))
        );
        assert_eq!(
            verify(
                &token(SECRET, "HS256", json!({"iss": "someone"})),
                SECRET,
                NOW
            ),
            Err(Refused::Issuer)
        );
        assert_eq!(
            verify(&token(SECRET, "HS256", json!({"exp": null})), SECRET, NOW),
            Err(Refused::Expired)
        );
        assert_eq!(
            verify(
                &token(
                    SECRET,
                    "HS256",
                    json!({"iat": NOW + 3600, "exp": NOW + 4000})
                ),
                SECRET,
                NOW
            ),
            Err(Refused::NotYet)
        );
        assert_eq!(
            verify(&token(SECRET, "HS256", json!({"name": " "})), SECRET, NOW),
            Err(Refused::NoName)
        );
        assert_eq!(verify("a.b", SECRET, NOW), Err(Refused::Malformed));
        assert_eq!(
            verify(&"x".repeat(5000), SECRET, NOW),
            Err(Refused::Malformed)
        );
    }
}
