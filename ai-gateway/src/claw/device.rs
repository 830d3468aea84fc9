//! The `connect` request and the device proof in it: an Ed25519 key whose
//! SHA-256 is the device's id, signing the gateway's one-time challenge
//! with who is connecting (OpenClaw's v3 payload, v2 still taken). Pure:
//! the challenge and the time are arguments.

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::wire::{Code, ErrorShape, PROTOCOL};

/// How far a proof's `signedAt` may be from the gateway's clock.
pub const MAX_SKEW_MS: u64 = 120_000;

/// The `connect` request's parameters (what Hearth reads of them; the rest,
/// such as `caps` and `commands`, are a client's claims and are ignored).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connect {
    /// The oldest protocol the client speaks.
    pub min_protocol: u64,
    /// The newest.
    pub max_protocol: u64,
    /// Which program.
    pub client: Client,
    /// `operator` (the default) or `node`.
    #[serde(default)]
    pub role: Option<String>,
    /// The operator scopes asked for.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Secrets: the gateway's shared token or password, or the device's own token.
    #[serde(default)]
    pub auth: Option<Auth>,
    /// The device's proof.
    #[serde(default)]
    pub device: Option<Proof>,
}

/// The client program.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Client {
    /// `cli`, `openclaw-control-ui`, `openclaw-tui`, `gateway-client`, …
    pub id: String,
    /// `cli`, `webchat`, `ui`, `backend`, `probe`, `node`.
    pub mode: String,
    /// Its version.
    #[serde(default)]
    pub version: Option<String>,
    /// `linux`, `darwin`, `ios`, …
    #[serde(default)]
    pub platform: Option<String>,
    /// `Linux`, `iPhone`, …
    #[serde(default)]
    pub device_family: Option<String>,
    /// A name to show.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// The secrets a client may present.
#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Auth {
    /// The shared token (or a device token sent as one).
    #[serde(default)]
    pub token: Option<String>,
    /// The shared password.
    #[serde(default)]
    pub password: Option<String>,
    /// The device's token from an earlier `hello-ok`.
    #[serde(default)]
    pub device_token: Option<String>,
    /// A setup code's token.
    #[serde(default)]
    pub bootstrap_token: Option<String>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Auth { .. }")
    }
}

impl Auth {
    /// The token the device signed over (the client's own rule: the shared
    /// token, else the device token, else the setup code's).
    fn signed_token(&self) -> &str {
        [&self.token, &self.device_token, &self.bootstrap_token]
            .into_iter()
            .flatten()
            .map(|token| token.trim())
            .find(|token| !token.is_empty())
            .unwrap_or("")
    }
}

/// The device part of `connect`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Proof {
    /// Hex SHA-256 of the raw public key.
    pub id: String,
    /// The raw Ed25519 public key, base64url.
    pub public_key: String,
    /// The signature, base64url.
    pub signature: String,
    /// The time signed (the challenge's).
    pub signed_at: u64,
    /// The challenge's nonce.
    #[serde(default)]
    pub nonce: Option<String>,
}

impl Connect {
    /// Reads `connect`'s parameters.
    pub fn parse(params: &Value) -> Result<Connect, ErrorShape> {
        serde_json::from_value(params.clone())
            .map_err(|error| ErrorShape::invalid(format!("invalid connect params: {error}")))
    }

    /// The role asked for.
    pub fn role(&self) -> &str {
        self.role.as_deref().unwrap_or("operator")
    }

    /// Checks that the client speaks this gateway's protocol.
    pub fn check_protocol(&self) -> Result<(), ErrorShape> {
        if (self.min_protocol..=self.max_protocol).contains(&PROTOCOL) {
            return Ok(());
        }
        Err(ErrorShape::invalid(format!(
            "protocol mismatch: this gateway speaks protocol {PROTOCOL}, the client {}..{}",
            self.min_protocol, self.max_protocol
        ))
        .with_details(json!({"code": "PROTOCOL_MISMATCH", "expectedProtocol": PROTOCOL})))
    }
}

/// A device whose proof holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// Its id (hex SHA-256 of the key).
    pub id: String,
    /// Its raw public key.
    pub public_key: [u8; 32],
}

/// Why a device proof fails (OpenClaw's `DEVICE_AUTH_*` details).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// No device in `connect`.
    #[error("device identity required")]
    Required,
    /// No nonce.
    #[error("device nonce required")]
    NonceRequired,
    /// The nonce is not this connection's challenge (a replayed proof).
    #[error("device nonce mismatch")]
    NonceMismatch,
    /// Signed too long ago (or ahead).
    #[error("device signature expired")]
    Expired,
    /// The key is not a raw Ed25519 key in base64url.
    #[error("device public key invalid")]
    PublicKeyInvalid,
    /// The id is not the key's.
    #[error("device identity mismatch")]
    IdMismatch,
    /// The signature does not verify.
    #[error("device signature invalid")]
    SignatureInvalid,
}

impl ProofError {
    /// The error frame: the message clients show, the details they branch on.
    pub fn shape(self) -> ErrorShape {
        let (code, reason) = match self {
            ProofError::Required => ("DEVICE_IDENTITY_REQUIRED", "device-required"),
            ProofError::NonceRequired => ("DEVICE_AUTH_NONCE_REQUIRED", "device-nonce-missing"),
            ProofError::NonceMismatch => ("DEVICE_AUTH_NONCE_MISMATCH", "device-nonce-mismatch"),
            ProofError::Expired => ("DEVICE_AUTH_SIGNATURE_EXPIRED", "device-signature-stale"),
            ProofError::PublicKeyInvalid => ("DEVICE_AUTH_PUBLIC_KEY_INVALID", "device-public-key"),
            ProofError::IdMismatch => ("DEVICE_AUTH_DEVICE_ID_MISMATCH", "device-id-mismatch"),
            ProofError::SignatureInvalid => ("DEVICE_AUTH_SIGNATURE_INVALID", "device-signature"),
        };
        ErrorShape::new(Code::InvalidRequest, self.to_string())
            .with_details(json!({"code": code, "reason": reason}))
    }
}

/// OpenClaw's normalisation of the platform and family signed over.
fn normalized(value: Option<&str>) -> String {
    value.map(str::trim).unwrap_or("").to_ascii_lowercase()
}

/// The text a device signs (`v3`: with platform and family; `v2`: without).
pub fn signed_text(
    connect: &Connect,
    device_id: &str,
    signed_at: u64,
    nonce: &str,
    v3: bool,
) -> String {
    let scopes = connect.scopes.as_deref().unwrap_or(&[]).join(",");
    let token = connect.auth.as_ref().map_or("", Auth::signed_token);
    let mut fields = vec![
        if v3 { "v3" } else { "v2" }.to_owned(),
        device_id.to_owned(),
        connect.client.id.clone(),
        connect.client.mode.clone(),
        connect.role().to_owned(),
        scopes,
        signed_at.to_string(),
        token.to_owned(),
        nonce.to_owned(),
    ];
    if v3 {
        fields.push(normalized(connect.client.platform.as_deref()));
        fields.push(normalized(connect.client.device_family.as_deref()));
    }
    fields.join("|")
}

/// The device id of a raw public key.
pub fn device_id(public_key: &[u8; 32]) -> String {
    Sha256::digest(public_key)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn base64url(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(text.trim())
        .or_else(|_| URL_SAFE.decode(text.trim()))
        .ok()
}

/// Checks `connect`'s device proof against this connection's challenge
/// (`nonce`) at `now_ms`.
pub fn verify(connect: &Connect, nonce: &str, now_ms: u64) -> Result<Device, ProofError> {
    let proof = connect.device.as_ref().ok_or(ProofError::Required)?;
    let signed_nonce = proof
        .nonce
        .as_deref()
        .map(str::trim)
        .filter(|nonce| !nonce.is_empty())
        .ok_or(ProofError::NonceRequired)?;
    // Compared whole: the nonce is public, a timing difference gives nothing.
    if signed_nonce != nonce {
        return Err(ProofError::NonceMismatch);
    }
    if proof.signed_at.abs_diff(now_ms) > MAX_SKEW_MS {
        return Err(ProofError::Expired);
    }
    let public_key: [u8; 32] = base64url(&proof.public_key)
        .and_then(|raw| raw.try_into().ok())
        .ok_or(ProofError::PublicKeyInvalid)?;
    let id = device_id(&public_key);
    if !proof.id.trim().eq_ignore_ascii_case(&id) {
        return Err(ProofError::IdMismatch);
    }
    let signature = base64url(&proof.signature).ok_or(ProofError::SignatureInvalid)?;
    let key =
        aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, public_key);
    let holds = [true, false].into_iter().any(|v3| {
        let text = signed_text(connect, &proof.id, proof.signed_at, signed_nonce, v3);
        key.verify(text.as_bytes(), &signature).is_ok()
    });
    if !holds {
        return Err(ProofError::SignatureInvalid);
    }
    Ok(Device { id, public_key })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};

    /// A device key for tests.
    pub(crate) fn key(seed: u8) -> Ed25519KeyPair {
        Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap()
    }

    /// A `connect` signed by `key` over `nonce` at `at`, as OpenClaw's client builds it.
    pub(crate) fn signed_connect(
        key: &Ed25519KeyPair,
        nonce: &str,
        at: u64,
        token: Option<&str>,
    ) -> Value {
        let raw: [u8; 32] = key.public_key().as_ref().try_into().unwrap();
        let id = device_id(&raw);
        let mut params = json!({
            "minProtocol": 4, "maxProtocol": 4,
            "client": {"id": "cli", "mode": "cli", "version": "2026.9.6", "platform": "linux", "deviceFamily": "Linux"},
            "role": "operator", "scopes": ["operator.read", "operator.write"],
            "auth": token.map(|token| json!({"token": token})),
            "device": {"id": id, "publicKey": URL_SAFE_NO_PAD.encode(raw), "signature": "", "signedAt": at, "nonce": nonce},
        });
        let connect = Connect::parse(&params).unwrap();
        let text = signed_text(&connect, &id, at, nonce, true);
        params["device"]["signature"] =
            json!(URL_SAFE_NO_PAD.encode(key.sign(text.as_bytes()).as_ref()));
        params
    }

    const NOW: u64 = 1_795_702_000_000;

    #[test]
    fn a_proof_signed_over_this_challenge_holds() {
        let params = signed_connect(&key(1), "n-1", NOW, Some("secret"));
        let device = verify(&Connect::parse(&params).unwrap(), "n-1", NOW + 500).unwrap();
        assert_eq!(device.id, device_id(&device.public_key));
    }

    #[test]
    fn the_signed_text_is_openclaws_v3_payload() {
        let params = signed_connect(&key(1), "n-1", NOW, Some("tok"));
        let connect = Connect::parse(&params).unwrap();
        let id = connect.device.as_ref().unwrap().id.clone();
        assert_eq!(
            signed_text(&connect, &id, NOW, "n-1", true),
            format!(
                "v3|{id}|cli|cli|operator|operator.read,operator.write|{NOW}|tok|n-1|linux|linux"
            )
        );
    }

    #[test]
    fn replays_forgeries_and_borrowed_keys_are_refused() {
        let params = signed_connect(&key(1), "n-1", NOW, None);
        let connect = Connect::parse(&params).unwrap();
        // The same frame on another connection (another challenge).
        assert_eq!(verify(&connect, "n-2", NOW), Err(ProofError::NonceMismatch));
        // Kept for later.
        assert_eq!(
            verify(&connect, "n-1", NOW + MAX_SKEW_MS + 1),
            Err(ProofError::Expired)
        );
        // Another scope set than the one signed.
        let mut widened = params.clone();
        widened["scopes"] = json!(["operator.admin"]);
        assert_eq!(
            verify(&Connect::parse(&widened).unwrap(), "n-1", NOW),
            Err(ProofError::SignatureInvalid)
        );
        // Another device's id with this key.
        let mut borrowed = params.clone();
        borrowed["device"]["id"] =
            signed_connect(&key(2), "n-1", NOW, None)["device"]["id"].clone();
        assert_eq!(
            verify(&Connect::parse(&borrowed).unwrap(), "n-1", NOW),
            Err(ProofError::IdMismatch)
        );
        // Another key claiming this device's id, signing for itself.
        let mut other = signed_connect(&key(2), "n-1", NOW, None);
        other["device"]["id"] = params["device"]["id"].clone();
        assert_eq!(
            verify(&Connect::parse(&other).unwrap(), "n-1", NOW),
            Err(ProofError::IdMismatch)
        );
        let mut garbled = params.clone();
        garbled["device"]["publicKey"] = json!("not a key");
        assert_eq!(
            verify(&Connect::parse(&garbled).unwrap(), "n-1", NOW),
            Err(ProofError::PublicKeyInvalid)
        );
        let mut unsigned = params.clone();
        unsigned["device"]["nonce"] = json!("");
        assert_eq!(
            verify(&Connect::parse(&unsigned).unwrap(), "n-1", NOW),
            Err(ProofError::NonceRequired)
        );
        let mut bare = params;
        bare.as_object_mut().unwrap().remove("device");
        assert_eq!(
            verify(&Connect::parse(&bare).unwrap(), "n-1", NOW),
            Err(ProofError::Required)
        );
    }

    #[test]
    fn a_client_of_another_protocol_is_told_which_one_is_spoken() {
        let mut params = signed_connect(&key(1), "n", NOW, None);
        params["minProtocol"] = json!(5);
        params["maxProtocol"] = json!(5);
        let refused = Connect::parse(&params)
            .unwrap()
            .check_protocol()
            .unwrap_err();
        assert_eq!(refused.details.unwrap()["code"], "PROTOCOL_MISMATCH");
    }
}
