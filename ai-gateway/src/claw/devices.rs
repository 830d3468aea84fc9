//! OpenClaw's `device.pair.*` methods, so that `openclaw devices list`,
//! `approve`, `reject` and `remove` on the hub (and the Control UI's own
//! instructions, which name them) manage the devices Hearth pairs: thin
//! adapters over [`Claw`]'s use cases, which Hearth's own
//! `hearth-gateway devices …` reaches too. Only a connection granted
//! `operator.pairing` (the admin's) gets here.

use serde_json::{Value, json};

use super::pairing::{ApproveError, Paired, Pending};
use super::wire::{Code, ErrorShape};
use super::{Claw, now_ms};

/// A waiting request as OpenClaw's `device.pair.list` lists it (and as its
/// CLI's table reads it), with the member it is for.
pub fn pending_shape(pending: &Pending) -> Value {
    json!({
        "requestId": pending.request_id,
        "deviceId": pending.device_id,
        "displayName": pending.member.as_deref().map_or_else(|| pending.client.clone(), |member| format!("{member}'s {}", pending.client)),
        "clientId": pending.client,
        "platform": pending.platform,
        "role": "operator",
        "roles": ["operator"],
        "scopes": pending.scopes,
        "remoteIp": pending.address,
        "ts": pending.requested_at.saturating_mul(1000),
        "member": pending.member,
    })
}

/// A paired device as `device.pair.list` lists it: the scopes approved
/// (its one token's), the member it acts as.
pub fn paired_shape(paired: &Paired) -> Value {
    let who = paired.member.as_deref().unwrap_or("the admin");
    json!({
        "deviceId": paired.device_id,
        "displayName": format!("{who}'s {}", paired.client),
        "clientId": paired.client,
        "platform": paired.platform,
        "role": "operator",
        "roles": ["operator"],
        "scopes": paired.scopes,
        "tokens": [{"role": "operator", "scopes": paired.scopes}],
        "approvedAtMs": paired.approved_at.saturating_mul(1000),
        "member": paired.member,
    })
}

fn store_failed(error: &sqlx::Error) -> ErrorShape {
    tracing::error!(%error, "the device store failed");
    ErrorShape::new(Code::Unavailable, "the device store failed")
}

/// OpenClaw's CLI recognises "unknown requestId" and says to list again.
fn unknown_request(request_id: &str) -> ErrorShape {
    ErrorShape::invalid(format!(
        "unknown requestId {request_id}: `openclaw devices list` shows the requests waiting"
    ))
}

fn text<'a>(params: &'a Value, field: &str) -> Result<&'a str, ErrorShape> {
    params[field]
        .as_str()
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .ok_or_else(|| ErrorShape::invalid(format!("{field} is required")))
}

/// `device.pair.list`: the requests waiting and the paired devices.
pub async fn list(claw: &Claw) -> Result<Value, ErrorShape> {
    let pending = claw.pairing.pending().await.map_err(|e| store_failed(&e))?;
    let paired = claw.pairing.devices().await.map_err(|e| store_failed(&e))?;
    Ok(json!({
        "pending": pending.iter().map(pending_shape).collect::<Vec<_>>(),
        "paired": paired.iter().map(paired_shape).collect::<Vec<_>>(),
    }))
}

/// `device.pair.approve {requestId}`: bound to the member whose device
/// asked (one that came from no member's device is approved with
/// `hearth-gateway devices approve --member`).
pub async fn approve(claw: &Claw, params: &Value) -> Result<Value, ErrorShape> {
    let request_id = text(params, "requestId")?;
    match claw.approve(request_id, None).await {
        Ok(paired) => Ok(json!({
            "requestId": request_id,
            "device": paired_shape(&paired),
            "ts": now_ms(),
        })),
        Err(ApproveError::NoRequest(_)) => Err(unknown_request(request_id)),
        Err(ApproveError::Store(error)) => Err(store_failed(&error)),
        Err(refused @ ApproveError::NoMember(_)) => Err(ErrorShape::invalid(format!(
            "{refused}: hearth-gateway devices approve {request_id} --member NAME"
        ))),
    }
}

/// `device.pair.reject {requestId}`: the request goes; the device may ask again.
pub async fn reject(claw: &Claw, params: &Value) -> Result<Value, ErrorShape> {
    let request_id = text(params, "requestId")?;
    match claw.reject(request_id).await {
        Ok(Some(device)) => {
            Ok(json!({"requestId": request_id, "deviceId": device, "ts": now_ms()}))
        }
        Ok(None) => Err(unknown_request(request_id)),
        Err(error) => Err(store_failed(&error)),
    }
}

/// `device.pair.remove {deviceId}`: the paired device goes, and its
/// connections close.
pub async fn remove(claw: &Claw, params: &Value) -> Result<Value, ErrorShape> {
    let device = text(params, "deviceId")?;
    match claw.remove(device).await {
        Ok(true) => Ok(json!({"deviceId": device, "ts": now_ms()})),
        Ok(false) => Err(ErrorShape::invalid(format!(
            "unknown deviceId {device}: `openclaw devices list` shows the paired devices"
        ))),
        Err(error) => Err(store_failed(&error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_and_a_device_read_as_openclaws_cli_reads_them() {
        let pending = Pending {
            request_id: "r-1".into(),
            device_id: "d-1".into(),
            member: Some("ada".into()),
            scopes: vec!["operator.read".into(), "operator.write".into()],
            client: "openclaw-control-ui".into(),
            platform: "linux".into(),
            token_holder: false,
            address: "100.64.0.2".into(),
            requested_at: 1_800_000_000,
        };
        let shown = pending_shape(&pending);
        assert_eq!(shown["requestId"], "r-1");
        assert_eq!(shown["roles"], json!(["operator"]));
        assert_eq!(shown["ts"], 1_800_000_000_000_i64);
        assert_eq!(shown["displayName"], "ada's openclaw-control-ui");
        assert_eq!(shown["remoteIp"], "100.64.0.2");
        let paired = Paired {
            device_id: "d-2".into(),
            member: None,
            scopes: vec!["operator.admin".into()],
            client: "cli".into(),
            platform: "linux".into(),
            token_holder: true,
            approved_at: 1,
        };
        let shown = paired_shape(&paired);
        assert_eq!(shown["displayName"], "the admin's cli");
        assert_eq!(shown["tokens"][0]["scopes"], json!(["operator.admin"]));
        assert_eq!(shown["member"], Value::Null);
    }
}
