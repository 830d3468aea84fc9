//! Who an OpenClaw client's connection acts as: the pairing decision (pure,
//! [`admit`]) and the paired devices and waiting requests it reads (SQLite,
//! [`Pairing`]). A device is its Ed25519 key, approved by the household's
//! admin from Hearth's CLI and bound to the member whose mesh device asked;
//! it then connects only from that member's devices.

use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::SqlitePool;
use zeroize::Zeroizing;

use super::device::Device;
use super::wire::{Code, ErrorShape};

/// The operator scopes (OpenClaw's closed set).
pub const SCOPES: [&str; 8] = [
    "operator.read",
    "operator.write",
    "operator.admin",
    "operator.approvals",
    "operator.questions",
    "operator.pairing",
    "operator.talk",
    "operator.talk.secrets",
];
/// What a member's device may be given: their own chats, sessions and
/// automations; configuration, pairing and approvals are the admin's.
pub const MEMBER_SCOPES: [&str; 2] = ["operator.read", "operator.write"];
/// The most requests kept waiting: when full, a new one is refused (none
/// waiting is ever pushed out by another).
pub const MAX_PENDING: i64 = 64;
/// The most requests waiting from one address (one device of the mesh).
pub const MAX_PENDING_PER_ADDRESS: i64 = 4;

/// What the gateway knows of a connection before its device is looked up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    /// It presented the gateway's shared token (or password).
    pub token_holder: bool,
    /// The mesh's owner of the connecting device, when a member's.
    pub member: Option<String>,
    /// The connecting device is tagged (a server, not a person's).
    pub tagged: bool,
}

/// A paired device, as [`admit`] needs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Paired {
    /// Its id.
    pub device_id: String,
    /// The member it acts as; none for the admin's own device.
    pub member: Option<String>,
    /// The scopes approved.
    pub scopes: Vec<String>,
    /// The client it was paired from (`cli`, `openclaw-control-ui`, …).
    pub client: String,
    /// Its platform.
    pub platform: String,
    /// Paired from a connection holding the shared token.
    pub token_holder: bool,
    /// When it was approved (Unix seconds).
    pub approved_at: i64,
}

/// Who a connection acts as, once admitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The member; none for the admin (the shared token's holder).
    pub member: Option<String>,
    /// The scopes the connection has.
    pub scopes: Vec<String>,
}

/// The pairing decision.
#[derive(Clone, Debug, PartialEq)]
pub enum Admission {
    /// Admitted.
    Admit(Principal),
    /// Unknown device: it must be approved first.
    Pair,
    /// Refused, with why.
    Refuse(ErrorShape),
}

/// The scopes of `requested` that `allowed` covers, in the closed set's order.
pub fn granted(requested: &[String], allowed: &[String]) -> Vec<String> {
    SCOPES
        .iter()
        .filter(|scope| requested.iter().any(|asked| asked == *scope))
        .filter(|scope| allowed.iter().any(|ok| ok == *scope))
        .map(|scope| (*scope).to_owned())
        .collect()
}

/// Decides a connection that proved `device` (or none): a paired device
/// acts as its member from that member's devices only, with the scopes
/// approved for it (OpenClaw's clients keep the scopes `hello-ok` grants
/// with the device's token and ask for those next time, so the grant, not
/// one command's request, is what a connection holds); the shared token's
/// holder may connect without a device, as the admin, with the scopes it
/// asks for; anyone else waits for approval.
pub fn admit(
    origin: &Origin,
    device: Option<&Paired>,
    proved: bool,
    requested: &[String],
) -> Admission {
    if !proved {
        return if origin.token_holder {
            let all: Vec<String> = SCOPES.iter().map(|scope| (*scope).to_owned()).collect();
            Admission::Admit(Principal {
                member: None,
                scopes: granted(requested, &all),
            })
        } else {
            Admission::Refuse(super::device::ProofError::Required.shape())
        };
    }
    let Some(paired) = device else {
        // Only the household's devices (or the token's holder) may ask: a
        // stranger reaching the port fills no queue.
        if origin.member.is_none() && !origin.tagged && !origin.token_holder {
            return Admission::Refuse(
                ErrorShape::new(
                    Code::Forbidden,
                    "only devices of the household's mesh may ask to pair with this gateway",
                )
                .with_details(json!({"code": "AUTH_UNAUTHORIZED", "reason": "not-in-mesh"})),
            );
        }
        return Admission::Pair;
    };
    match &paired.member {
        Some(member) => {
            // Bound to a member: from another member's device (a copied
            // key) it is refused; with no mesh identity (this host), only
            // with the shared token.
            if origin.member.as_deref().is_some_and(|from| from != member)
                || origin.tagged
                || (origin.member.is_none() && !origin.token_holder)
            {
                return Admission::Refuse(
                    ErrorShape::new(
                        Code::Forbidden,
                        format!("this device is paired to {member}; it connects only from {member}'s devices"),
                    )
                    .with_details(json!({"code": "AUTH_UNAUTHORIZED", "reason": "device-member-mismatch"})),
                );
            }
            Admission::Admit(Principal {
                member: Some(member.clone()),
                scopes: paired.scopes.clone(),
            })
        }
        None if paired.token_holder && origin.token_holder => Admission::Admit(Principal {
            member: None,
            scopes: paired.scopes.clone(),
        }),
        None => Admission::Refuse(
            ErrorShape::new(
                Code::Forbidden,
                "this device is the admin's: it connects with the gateway's token",
            )
            .with_details(json!({"code": "AUTH_TOKEN_MISSING", "recommendedNextStep": "update_auth_configuration"})),
        ),
    }
}

/// The answer to a device waiting for approval.
pub fn pairing_required(request_id: &str, device_id: &str) -> ErrorShape {
    ErrorShape {
        code: Code::NotPaired,
        message: format!("device pairing required (requestId: {request_id})"),
        details: Some(json!({
            "code": "PAIRING_REQUIRED", "reason": "not-paired", "requestId": request_id,
            "deviceId": device_id, "recommendedNextStep": "wait_then_retry",
            "remediationHint": format!("The household's admin approves it on the hub with: openclaw devices approve {request_id} (or hearth-gateway devices approve {request_id})"),
            "retryable": true, "pauseReconnect": false,
        })),
        retryable: Some(true),
        retry_after_ms: None,
    }
}

/// A device waiting for approval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pending {
    /// The request's id (what `devices approve` takes).
    pub request_id: String,
    /// The device.
    pub device_id: String,
    /// The member whose mesh device asked, if a member's.
    pub member: Option<String>,
    /// The scopes asked for.
    pub scopes: Vec<String>,
    /// The client.
    pub client: String,
    /// Its platform.
    pub platform: String,
    /// Asked with the shared token.
    pub token_holder: bool,
    /// From where.
    pub address: String,
    /// When (Unix seconds).
    pub requested_at: i64,
}

/// Why a device's request to pair was not kept.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Its address has as many requests waiting as it may.
    #[error(
        "{MAX_PENDING_PER_ADDRESS} pairing requests from this device already wait for the admin; ask them to approve or remove one"
    )]
    TooManyFromAddress,
    /// As many requests wait as the gateway keeps.
    #[error(
        "{MAX_PENDING} pairing requests already wait for the admin; ask them to approve or remove some"
    )]
    Full,
    /// The store failed.
    #[error("the device store failed: {0}")]
    Store(#[from] sqlx::Error),
}

impl RequestError {
    /// As the protocol says it (retryable: the admin may make room).
    pub fn shape(&self) -> ErrorShape {
        ErrorShape {
            retryable: Some(true),
            ..ErrorShape::new(Code::Unavailable, self.to_string())
                .with_details(json!({"code": "PAIRING_QUEUE_FULL"}))
        }
    }
}

/// Why an approval cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ApproveError {
    /// No such request.
    #[error("there is no pairing request {0}; `hearth-gateway devices list` shows those waiting")]
    NoRequest(String),
    /// Nobody to bind it to.
    #[error(
        "request {0} came from no member's device and without the gateway's token: name the member it is for with --member"
    )]
    NoMember(String),
    /// The store failed.
    #[error("the device store failed: {0}")]
    Store(#[from] sqlx::Error),
}

fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn scopes_text(scopes: &[String]) -> String {
    scopes.join(" ")
}

fn scopes_of(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

type PairedRow = (String, Option<String>, String, String, String, bool, i64);

fn paired_of(row: PairedRow) -> Paired {
    let (device_id, member, scopes, client, platform, token_holder, approved_at) = row;
    Paired {
        device_id,
        member,
        scopes: scopes_of(&scopes),
        client,
        platform,
        token_holder,
        approved_at,
    }
}

/// The paired devices and the requests waiting (in the gateway's database).
#[derive(Clone, Debug)]
pub struct Pairing {
    pool: SqlitePool,
}

impl Pairing {
    /// The store in `pool` (migrated by the session store).
    pub fn new(pool: SqlitePool) -> Pairing {
        Pairing { pool }
    }

    /// The paired device `device_id` with `public_key`, if there is one.
    pub async fn paired(&self, device: &Device) -> Result<Option<Paired>, sqlx::Error> {
        let row: Option<PairedRow> = sqlx::query_as(
            "SELECT device_id, member, scopes, client, platform, token_holder, approved_at \
             FROM claw_devices WHERE device_id = ? AND public_key = ?",
        )
        .bind(&device.id)
        .bind(device.public_key.as_slice())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(paired_of))
    }

    /// Whether `token` is `device_id`'s token; `None` when none was issued.
    pub async fn token_matches(
        &self,
        device_id: &str,
        token: &str,
    ) -> Result<Option<bool>, sqlx::Error> {
        let row: Option<(Vec<u8>,)> =
            sqlx::query_as("SELECT token_hash FROM claw_devices WHERE device_id = ?")
                .bind(device_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row
            .filter(|(stored,)| !stored.is_empty())
            .map(|(stored,)| crate::caller::same(&stored, &hash(token))))
    }

    /// Issues `device_id` a new token (the old one stops working).
    pub async fn issue_token(&self, device_id: &str) -> Result<Zeroizing<String>, sqlx::Error> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::fill(&mut bytes[..]);
        let token = Zeroizing::new(base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            &bytes[..],
        ));
        sqlx::query("UPDATE claw_devices SET token_hash = ? WHERE device_id = ?")
            .bind(hash(&token))
            .bind(device_id)
            .execute(&self.pool)
            .await?;
        Ok(token)
    }

    /// Records (or renews) `device`'s request; its id. A renewed request
    /// keeps its id and its place (the list's order is the order devices
    /// first asked), but only when it comes from the same member (or the
    /// token's holder again): asked from another member's device it is a
    /// new request, with a new id, so the admin never approves for ben what
    /// they saw listed as ada's. A new one is refused when its address has
    /// [`MAX_PENDING_PER_ADDRESS`] waiting, or the list is full.
    #[allow(clippy::too_many_arguments)] // one row's columns
    pub async fn request(
        &self,
        device: &Device,
        origin: &Origin,
        scopes: &[String],
        client: &str,
        platform: &str,
        address: &str,
        now: i64,
    ) -> Result<String, RequestError> {
        // Writes follow the read: the write lock is taken at once, so a
        // writer beside it makes this one wait rather than fail.
        let mut transaction = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let found: Option<(String, Option<String>, bool)> = sqlx::query_as(
            "SELECT request_id, member, token_holder FROM claw_requests WHERE device_id = ? AND public_key = ?",
        )
        .bind(&device.id)
        .bind(device.public_key.as_slice())
        .fetch_optional(&mut *transaction)
        .await?;
        let existing = match found {
            Some((request_id, member, token_holder))
                if member == origin.member && token_holder == origin.token_holder =>
            {
                Some(request_id)
            }
            Some((request_id, ..)) => {
                // Asked by someone else now: the old request goes, and
                // this one waits as new.
                sqlx::query("DELETE FROM claw_requests WHERE request_id = ?")
                    .bind(&request_id)
                    .execute(&mut *transaction)
                    .await?;
                None
            }
            None => None,
        };
        if existing.is_none() {
            let (from_address, all): (i64, i64) = sqlx::query_as(
                "SELECT COALESCE(SUM(address = ?), 0), COUNT(*) FROM claw_requests WHERE device_id != ?",
            )
            .bind(address)
            .bind(&device.id)
            .fetch_one(&mut *transaction)
            .await?;
            if from_address >= MAX_PENDING_PER_ADDRESS {
                return Err(RequestError::TooManyFromAddress);
            }
            if all >= MAX_PENDING {
                return Err(RequestError::Full);
            }
        }
        let request_id = match existing {
            // Renewed in place by the same asker: its id, its time and its
            // place in the list stay.
            Some(request_id) => {
                sqlx::query(
                    "UPDATE claw_requests SET scopes = ?, client = ?, platform = ?, address = ? \
                     WHERE request_id = ?",
                )
                .bind(scopes_text(scopes))
                .bind(client)
                .bind(platform)
                .bind(address)
                .bind(&request_id)
                .execute(&mut *transaction)
                .await?;
                request_id
            }
            None => {
                let request_id = uuid_like();
                sqlx::query(
                    "INSERT INTO claw_requests (request_id, device_id, public_key, member, scopes, client, \
                     platform, token_holder, address, requested_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(&request_id)
                .bind(&device.id)
                .bind(device.public_key.as_slice())
                .bind(origin.member.as_deref())
                .bind(scopes_text(scopes))
                .bind(client)
                .bind(platform)
                .bind(origin.token_holder)
                .bind(address)
                .bind(now)
                .execute(&mut *transaction)
                .await?;
                request_id
            }
        };
        transaction.commit().await?;
        Ok(request_id)
    }

    /// The requests waiting, in the order their devices first asked.
    pub async fn pending(&self) -> Result<Vec<Pending>, sqlx::Error> {
        type Row = (
            String,
            String,
            Option<String>,
            String,
            String,
            String,
            bool,
            String,
            i64,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT request_id, device_id, member, scopes, client, platform, token_holder, address, requested_at \
             FROM claw_requests ORDER BY requested_at, rowid",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(
                    request_id,
                    device_id,
                    member,
                    scopes,
                    client,
                    platform,
                    token_holder,
                    address,
                    requested_at,
                )| {
                    Pending {
                        request_id,
                        device_id,
                        member,
                        scopes: scopes_of(&scopes),
                        client,
                        platform,
                        token_holder,
                        address,
                        requested_at,
                    }
                },
            )
            .collect())
    }

    /// The paired devices, by member.
    pub async fn devices(&self) -> Result<Vec<Paired>, sqlx::Error> {
        let rows: Vec<PairedRow> = sqlx::query_as(
            "SELECT device_id, member, scopes, client, platform, token_holder, approved_at \
             FROM claw_devices ORDER BY member, device_id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(paired_of).collect())
    }

    /// Approves request `request_id`, bound to `member` (else the member
    /// whose device asked): the device may connect. Decided in one
    /// transaction that takes the request off the list first, so an
    /// approval and a rejection of one request cannot both succeed.
    pub async fn approve(
        &self,
        request_id: &str,
        member: Option<&str>,
        now: i64,
    ) -> Result<Paired, ApproveError> {
        type Row = (
            String,
            Vec<u8>,
            Option<String>,
            String,
            String,
            String,
            bool,
        );
        let mut transaction = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // Taken off the list at once: whoever takes it decides it.
        let row: Option<Row> = sqlx::query_as(
            "DELETE FROM claw_requests WHERE request_id = ? \
             RETURNING device_id, public_key, member, scopes, client, platform, token_holder",
        )
        .bind(request_id)
        .fetch_optional(&mut *transaction)
        .await?;
        let Some((device_id, public_key, asked_by, _asked_scopes, client, platform, token_holder)) =
            row
        else {
            // Given back now, not when the connection is next used: the
            // write lock is held until then.
            transaction.rollback().await?;
            return Err(ApproveError::NoRequest(request_id.to_owned()));
        };
        let member = member.map(str::to_owned).or(asked_by);
        if member.is_none() && !token_holder {
            transaction.rollback().await?;
            return Err(ApproveError::NoMember(request_id.to_owned()));
        }
        let allowed: Vec<String> = if member.is_some() {
            MEMBER_SCOPES
                .iter()
                .map(|scope| (*scope).to_owned())
                .collect()
        } else {
            SCOPES.iter().map(|scope| (*scope).to_owned()).collect()
        };
        sqlx::query(
            "INSERT OR REPLACE INTO claw_devices (device_id, public_key, member, scopes, client, platform, \
             token_holder, token_hash, approved_at) VALUES (?, ?, ?, ?, ?, ?, ?, x'', ?)",
        )
        .bind(&device_id)
        .bind(&public_key)
        .bind(member.as_deref())
        .bind(scopes_text(&allowed))
        .bind(&client)
        .bind(&platform)
        .bind(token_holder)
        .bind(now)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(Paired {
            device_id,
            member,
            scopes: allowed,
            client,
            platform,
            token_holder,
            approved_at: now,
        })
    }

    /// Deletes the waiting request `request_id`; the device it was for.
    pub async fn reject(&self, request_id: &str) -> Result<Option<String>, sqlx::Error> {
        let row: Option<(String,)> =
            sqlx::query_as("DELETE FROM claw_requests WHERE request_id = ? RETURNING device_id")
                .bind(request_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(device,)| device))
    }

    /// Removes a paired device or a waiting request; whether there was one.
    pub async fn remove(&self, id: &str) -> Result<bool, sqlx::Error> {
        let devices = sqlx::query("DELETE FROM claw_devices WHERE device_id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let requests =
            sqlx::query("DELETE FROM claw_requests WHERE request_id = ? OR device_id = ?")
                .bind(id)
                .bind(id)
                .execute(&self.pool)
                .await?
                .rows_affected();
        Ok(devices + requests > 0)
    }
}

/// A random id in UUID form (as OpenClaw's request ids are).
pub fn uuid_like() -> String {
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|text| (*text).to_owned()).collect()
    }

    fn adas() -> Paired {
        Paired {
            device_id: "d".into(),
            member: Some("ada".into()),
            scopes: strings(&MEMBER_SCOPES),
            client: "cli".into(),
            platform: "linux".into(),
            token_holder: false,
            approved_at: 0,
        }
    }

    fn from(member: Option<&str>, token_holder: bool) -> Origin {
        Origin {
            token_holder,
            member: member.map(str::to_owned),
            tagged: false,
        }
    }

    #[test]
    fn a_paired_device_acts_as_its_member_from_their_devices_only() {
        let asked = strings(&["operator.admin", "operator.read", "operator.write"]);
        assert_eq!(
            admit(&from(Some("ada"), false), Some(&adas()), true, &asked),
            Admission::Admit(Principal {
                member: Some("ada".into()),
                scopes: strings(&["operator.read", "operator.write"]),
            })
        );
        // Ada's key copied to Ben's laptop, or to this host without the token.
        for origin in [
            from(Some("ben"), false),
            from(None, false),
            from(Some("ben"), true),
        ] {
            assert!(matches!(
                admit(&origin, Some(&adas()), true, &asked),
                Admission::Refuse(_)
            ));
        }
        let tagged = Origin {
            tagged: true,
            ..from(None, false)
        };
        assert!(matches!(
            admit(&tagged, Some(&adas()), true, &asked),
            Admission::Refuse(_)
        ));
    }

    #[test]
    fn an_unknown_device_waits_and_no_device_is_only_for_the_token() {
        let asked = strings(&["operator.admin"]);
        assert_eq!(
            admit(&from(Some("ada"), false), None, true, &asked),
            Admission::Pair
        );
        assert_eq!(
            admit(&from(None, true), None, true, &asked),
            Admission::Pair
        );
        assert!(matches!(
            admit(&from(Some("ada"), false), None, false, &asked),
            Admission::Refuse(_)
        ));
        assert_eq!(
            admit(&from(None, true), None, false, &asked),
            Admission::Admit(Principal {
                member: None,
                scopes: asked
            })
        );
    }

    #[test]
    fn a_stranger_to_the_mesh_may_not_ask_to_pair() {
        let asked = strings(&["operator.read"]);
        assert!(matches!(
            admit(&from(None, false), None, true, &asked),
            Admission::Refuse(shape) if shape.message.contains("household's mesh")
        ));
        let tagged = Origin {
            tagged: true,
            ..from(None, false)
        };
        assert_eq!(admit(&tagged, None, true, &asked), Admission::Pair);
    }

    #[tokio::test]
    async fn a_flood_of_requests_evicts_nobody_and_the_order_holds() {
        let dir = tempfile::tempdir().unwrap();
        let sessions = crate::sessions::Sessions::open(dir.path()).await.unwrap();
        let pairing = Pairing::new(sessions.pool().clone());
        let device = |seed: u8| Device {
            id: format!("device-{seed}"),
            public_key: [seed; 32],
        };
        let ada = from(Some("ada"), false);
        let first = pairing
            .request(&device(1), &ada, &[], "cli", "linux", "100.64.0.1", 10)
            .await
            .unwrap();
        // Another member's device asks many times with new keys.
        let ben = from(Some("ben"), false);
        let mut refused = 0;
        for seed in 2..40 {
            match pairing
                .request(&device(seed), &ben, &[], "cli", "linux", "100.64.0.2", 20)
                .await
            {
                Ok(_) => {}
                Err(RequestError::TooManyFromAddress) => refused += 1,
                Err(other) => panic!("{other}"),
            }
        }
        assert_eq!(refused, 38 - MAX_PENDING_PER_ADDRESS as usize);
        // Ada asks again: the same request, still first.
        let again = pairing
            .request(&device(1), &ada, &[], "cli", "linux", "100.64.0.1", 30)
            .await
            .unwrap();
        assert_eq!(again, first);
        let pending = pairing.pending().await.unwrap();
        assert_eq!(pending[0].request_id, first, "{pending:?}");
        assert_eq!(pending.len(), 1 + MAX_PENDING_PER_ADDRESS as usize);
    }

    /// Attack (hardening round five, finding 10): the admin lists "ada's
    /// cli"; ben's device renews that request (the same device key) and
    /// the admin's approval bound the device to ben. Renewed by another
    /// member it is a new request: the id the admin saw approves nothing.
    #[tokio::test]
    async fn a_request_renewed_by_another_member_is_a_new_request() {
        let dir = tempfile::tempdir().unwrap();
        let sessions = crate::sessions::Sessions::open(dir.path()).await.unwrap();
        let pairing = Pairing::new(sessions.pool().clone());
        let device = Device {
            id: "device-1".into(),
            public_key: [1; 32],
        };
        let listed = pairing
            .request(
                &device,
                &from(Some("ada"), false),
                &[],
                "cli",
                "linux",
                "100.64.0.1",
                10,
            )
            .await
            .unwrap();
        let renewed_by_ben = pairing
            .request(
                &device,
                &from(Some("ben"), false),
                &[],
                "cli",
                "linux",
                "100.64.0.2",
                20,
            )
            .await
            .unwrap();
        assert_ne!(renewed_by_ben, listed);
        assert!(matches!(
            pairing.approve(&listed, None, 30).await,
            Err(ApproveError::NoRequest(_))
        ));
        assert!(pairing.paired(&device).await.unwrap().is_none());
        let pending = pairing.pending().await.unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].member.as_deref(), Some("ben"), "listed as ben's");
        // The same member again: renewed in place, as before.
        let again = pairing
            .request(
                &device,
                &from(Some("ben"), false),
                &[],
                "cli",
                "linux",
                "100.64.0.2",
                40,
            )
            .await
            .unwrap();
        assert_eq!(again, renewed_by_ben);
    }

    /// Attack (hardening round five, finding 11): an approval and a
    /// rejection of one request raced; both said they succeeded and the
    /// device ended paired. One of them wins, the other finds no request.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn approve_and_reject_of_one_request_cannot_both_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let sessions = crate::sessions::Sessions::open(dir.path()).await.unwrap();
        let pairing = Pairing::new(sessions.pool().clone());
        for round in 0..20u8 {
            let device = Device {
                id: format!("device-{round}"),
                public_key: [round; 32],
            };
            let request = pairing
                .request(
                    &device,
                    &from(Some("ada"), false),
                    &[],
                    "cli",
                    "linux",
                    "100.64.0.1",
                    10,
                )
                .await
                .unwrap();
            let (approved, rejected) = tokio::join!(
                {
                    let (pairing, request) = (pairing.clone(), request.clone());
                    tokio::spawn(async move { pairing.approve(&request, None, 20).await })
                },
                {
                    let (pairing, request) = (pairing.clone(), request.clone());
                    tokio::spawn(async move { pairing.reject(&request).await })
                }
            );
            let approved = approved.unwrap().is_ok();
            let rejected = rejected.unwrap().unwrap().is_some();
            assert!(
                approved != rejected,
                "round {round}: approved {approved}, rejected {rejected}"
            );
            assert_eq!(
                pairing.paired(&device).await.unwrap().is_some(),
                approved,
                "round {round}"
            );
        }
    }

    #[test]
    fn the_admins_device_needs_the_token_too() {
        let admins = Paired {
            member: None,
            token_holder: true,
            scopes: strings(&SCOPES),
            ..adas()
        };
        let asked = strings(&["operator.admin"]);
        assert!(matches!(
            admit(&from(None, true), Some(&admins), true, &asked),
            Admission::Admit(_)
        ));
        assert!(matches!(
            admit(&from(Some("ada"), false), Some(&admins), true, &asked),
            Admission::Refuse(_)
        ));
    }

    #[test]
    fn scopes_granted_are_those_asked_that_were_approved() {
        assert_eq!(
            granted(
                &strings(&["operator.write", "made.up", "operator.admin"]),
                &strings(&MEMBER_SCOPES)
            ),
            strings(&["operator.write"])
        );
    }
}
