//! Whom a front end says it acts for, signed: Open WebUI's
//! `X-OpenWebUI-User-Jwt` (`FORWARD_USER_INFO_HEADER_JWT_SECRET` set on its
//! side), an HS256 JSON Web Token naming its user, checked here with the
//! same shared secret. Pure: the token, the secret, the configured members
//! and the clock in; the member, or why not, out.
//!
//! The member is found by what an Open WebUI user cannot change about
//! themselves: their account's id (`sub`), or their email (set at sign-up
//! and changed only by Open WebUI's admin), mapped to members in the
//! gateway's configuration (`hearth.openWebUi.members`). Never by `name`,
//! which every user edits on their own profile: a correctly signed token of
//! ben's account with `name: "ada"` is still ben's. Only HS256 is taken (a token naming
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
    /// No account id in it.
    #[error("{SIGNED_USER} names no Open WebUI account (`sub`)")]
    NoName,
    /// An account no member is mapped to.
    #[error(
        "Open WebUI's account {id}{} is no member's: map its id or email to a member in hearth.openWebUi.members",
        email.as_deref().map(|email| format!(" ({email})")).unwrap_or_default()
    )]
    NotAMember {
        /// The account's id (`sub`).
        id: String,
        /// Its email, when the token has one.
        email: Option<String>,
    },
}

/// The Open WebUI account a token is signed for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedUser {
    /// The account's id (`sub`).
    pub id: String,
    /// Its email, lower-cased, when the token has one.
    pub email: Option<String>,
}

/// Open WebUI's accounts and the members they are: each key an account id
/// or an email (emails compared without regard to letter case).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Members {
    by_account: std::collections::BTreeMap<String, String>,
}

impl Members {
    /// From the configuration's map of account ids or emails to members.
    pub fn new(map: &std::collections::BTreeMap<String, String>) -> Members {
        Members {
            by_account: map
                .iter()
                .map(|(account, member)| (key(account), member.trim().to_owned()))
                .collect(),
        }
    }

    /// Whether no account is mapped.
    pub fn is_empty(&self) -> bool {
        self.by_account.is_empty()
    }

    /// The member `user` is: by account id first, then by email.
    pub fn member(&self, user: &SignedUser) -> Result<String, Refused> {
        std::iter::once(&user.id)
            .chain(user.email.as_ref())
            .find_map(|account| self.by_account.get(&key(account)))
            .cloned()
            .ok_or_else(|| Refused::NotAMember {
                id: shown(&user.id),
                email: user.email.as_deref().map(shown),
            })
    }
}

/// Text from a token as it may be shown in an error: escapes written out,
/// at most 128 characters.
fn shown(text: &str) -> String {
    text.chars()
        .take(128)
        .flat_map(char::escape_debug)
        .collect()
}

/// How an account id or email is looked up.
fn key(account: &str) -> String {
    let account = account.trim();
    if account.contains('@') {
        account.to_lowercase()
    } else {
        account.to_owned()
    }
}

/// The member `token` names, if it is Open WebUI's, signed with `secret`,
/// current at `now` (Unix seconds), and its account is one of `members`.
pub fn member(token: &str, secret: &[u8], members: &Members, now: i64) -> Result<String, Refused> {
    members.member(&verify(token, secret, now)?)
}

fn part(text: &str) -> Result<Vec<u8>, Refused> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| Refused::Malformed)
}

fn json(bytes: &[u8]) -> Result<serde_json::Map<String, Value>, Refused> {
    serde_json::from_slice(bytes).map_err(|_| Refused::Malformed)
}

/// The Open WebUI account `token` is signed for (its `sub`, and its
/// `email`), if it is Open WebUI's, signed with `secret` and current at
/// `now` (Unix seconds). Its `name` is not read: the user sets it.
pub fn verify(token: &str, secret: &[u8], now: i64) -> Result<SignedUser, Refused> {
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
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|text| !text.is_empty())
            .map(str::to_owned)
    };
    Ok(SignedUser {
        id: text("sub").ok_or(Refused::NoName)?,
        email: text("email").map(|email| email.to_lowercase()),
    })
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

    fn members() -> Members {
        Members::new(&std::collections::BTreeMap::from([
            ("u-1".to_owned(), "ada".to_owned()),
            ("Ben@Example.test".to_owned(), "ben".to_owned()),
        ]))
    }

    #[test]
    fn open_webuis_token_names_its_account() {
        let good = token(SECRET, "HS256", json!({}));
        let ada = SignedUser {
            id: "u-1".into(),
            email: Some("ada@example.test".into()),
        };
        assert_eq!(verify(&good, SECRET, NOW), Ok(ada.clone()));
        assert_eq!(member(&good, SECRET, &members(), NOW), Ok("ada".to_owned()));
        // Within the minute's leeway of its expiry, still taken.
        assert_eq!(verify(&good, SECRET, NOW + 330), Ok(ada));
        // An account mapped by its email (any letter case).
        let ben = token(
            SECRET,
            "HS256",
            json!({"sub": "u-2", "email": "BEN@example.test", "name": "Ben"}),
        );
        assert_eq!(member(&ben, SECRET, &members(), NOW), Ok("ben".to_owned()));
    }

    /// Attack (hardening round five, finding 4): ben sets his Open WebUI
    /// profile's name to "ada"; Open WebUI signs his token correctly with
    /// `name: "ada"`, and the gateway took him for ada. The name is not
    /// read: his account is his.
    #[test]
    fn a_name_a_user_gave_themselves_names_no_one() {
        let ben_as_ada = token(
            SECRET,
            "HS256",
            json!({"sub": "u-2", "email": "ben@example.test", "name": "ada"}),
        );
        assert_eq!(
            member(&ben_as_ada, SECRET, &members(), NOW),
            Ok("ben".to_owned())
        );
        let stranger = token(
            SECRET,
            "HS256",
            json!({"sub": "u-9", "email": "cy@example.test", "name": "ada"}),
        );
        let refused = member(&stranger, SECRET, &members(), NOW).unwrap_err();
        assert_eq!(
            refused,
            Refused::NotAMember {
                id: "u-9".into(),
                email: Some("cy@example.test".into())
            }
        );
        assert!(
            refused.to_string().contains("hearth.openWebUi.members"),
            "{refused}"
        );
        assert!(member(&stranger, SECRET, &Members::default(), NOW).is_err());
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
            verify(&token(SECRET, "HS256", json!({"sub": " "})), SECRET, NOW),
            Err(Refused::NoName)
        );
        assert_eq!(verify("a.b", SECRET, NOW), Err(Refused::Malformed));
        assert_eq!(
            verify(&"x".repeat(5000), SECRET, NOW),
            Err(Refused::Malformed)
        );
    }
}
