//! The agent's side of the control protocol: registering, waiting for
//! approval, and following the map stream through coordinator outages.

use std::sync::Arc;
use std::time::Duration;

use hearth_control::tls::{ClientIdentity, generate_key_request};
use hearth_control::wire::{
    ApprovalMessage, MapMessage, NodeState, RegisterRequest, WireGuardKey, encode_der,
};
use hearth_control::{ClientError, ControlClient, JoinToken};
use tokio::sync::mpsc;

use crate::backoff::Backoff;
use crate::error::AgentError;
use crate::local_api::AgentState;
use crate::state::{Identity, StateDir};

/// Registers this device with the join token and saves the identity.
pub async fn register(
    state: &StateDir,
    token: &JoinToken,
    hostname: &str,
    wireguard_key: WireGuardKey,
) -> Result<Identity, AgentError> {
    let client = ControlClient::new(&crate::dial::url(&token.url), token.fingerprint, None)?;
    let key_request =
        generate_key_request(hostname).map_err(|error| AgentError::Setup(error.to_string()))?;
    let response = client
        .register(&RegisterRequest {
            auth_key: token.key.clone(),
            wireguard_key,
            hostname: hostname.to_owned(),
            os: std::env::consts::OS.to_owned(),
            csr_der: encode_der(&key_request.csr_der),
        })
        .await?;
    state.save_tls(&ClientIdentity {
        certificate_pem: response.client_certificate_pem,
        key_pem: key_request.key_pem,
    })?;
    let identity = Identity {
        url: token.url.clone(),
        fingerprint: token.fingerprint.to_hex(),
        node_id: response.node.id,
        name: response.node.name.clone(),
    };
    state.save_identity(&identity)?;
    tracing::info!(node = identity.node_id, name = %identity.name, "registered");
    println!(
        "Registered as node {} ({}), mesh addresses {} and {}.",
        response.node.id, response.node.name, response.node.ipv4, response.node.ipv6
    );
    Ok(identity)
}

/// Waits until the coordinator says this node is approved, telling the user
/// which command approves it. Returns the refusal when the node is rejected.
pub async fn wait_for_approval(
    client: &ControlClient,
    identity: &Identity,
    shared: &Arc<AgentState>,
) -> Result<(), AgentError> {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let mut told = false;
    loop {
        let mut stream = match client.approval_stream().await {
            Ok(stream) => stream,
            Err(error) => {
                fatal_refusal(&error)?;
                note_disconnected(shared, &error);
                tokio::time::sleep(backoff.next_delay(rand::random())).await;
                continue;
            }
        };
        backoff.reset();
        while let Some(message) = stream.next().await {
            match message {
                Ok(ApprovalMessage::State {
                    state: NodeState::Approved,
                }) => return Ok(()),
                Ok(ApprovalMessage::State {
                    state: NodeState::Rejected,
                }) => {
                    return Err(AgentError::Rejected(identity.node_id));
                }
                Ok(ApprovalMessage::State { state }) => {
                    if !told {
                        println!(
                            "Node {} ({}) is {state}. To let it in, run on the coordinator:\n  hearth-coordinator nodes approve {}",
                            identity.node_id, identity.name, identity.node_id
                        );
                        told = true;
                    }
                }
                Ok(ApprovalMessage::KeepAlive) => {}
                Err(error) => {
                    note_disconnected(shared, &error);
                    break;
                }
            }
        }
        tokio::time::sleep(backoff.next_delay(rand::random())).await;
    }
}

/// Errors after which retrying cannot help.
fn fatal_refusal(error: &ClientError) -> Result<(), AgentError> {
    match error.code() {
        Some("unknown_node") => Err(AgentError::Deleted),
        _ => Ok(()),
    }
}

fn note_disconnected(shared: &Arc<AgentState>, error: &ClientError) {
    tracing::warn!(%error, "coordinator unreachable; keeping the current tunnels");
    let mut status = hearth_runtime::write(&shared.coordinator);
    status.connected = false;
    status.last_error = Some(error.to_string());
}

/// Why following the map stopped.
#[derive(Debug)]
pub enum FollowEnd {
    /// The node lost its admission; wait for approval again.
    NotAdmitted,
    /// The map channel closed (the agent is stopping).
    Closed,
}

/// Follows the map stream, sending each message on `messages`, reconnecting
/// with capped backoff when the coordinator goes away. A stream silent for
/// three keep-alive periods is considered dead.
pub async fn follow_map(
    client: &ControlClient,
    messages: &mpsc::Sender<MapMessage>,
    shared: &Arc<AgentState>,
    silence: Duration,
    connected: &mpsc::Sender<()>,
) -> Result<FollowEnd, AgentError> {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    loop {
        match client.map_stream().await {
            Ok(mut stream) => {
                backoff.reset();
                {
                    let mut status = hearth_runtime::write(&shared.coordinator);
                    status.connected = true;
                    status.last_error = None;
                }
                tracing::info!("map stream connected");
                let _ = connected.try_send(());
                loop {
                    match tokio::time::timeout(silence, stream.next()).await {
                        Ok(Some(Ok(message))) => {
                            let revoked = matches!(message, MapMessage::Revoked { .. });
                            if messages.send(message).await.is_err() {
                                return Ok(FollowEnd::Closed);
                            }
                            if revoked {
                                return Ok(FollowEnd::NotAdmitted);
                            }
                        }
                        Ok(Some(Err(error))) => {
                            note_disconnected(shared, &error);
                            break;
                        }
                        Ok(None) => {
                            note_disconnected(
                                shared,
                                &ClientError::Transport("the coordinator closed the stream".into()),
                            );
                            break;
                        }
                        Err(_) => {
                            note_disconnected(
                                shared,
                                &ClientError::Transport(
                                    "no keep-alive from the coordinator".into(),
                                ),
                            );
                            break;
                        }
                    }
                }
            }
            Err(error) => {
                fatal_refusal(&error)?;
                if matches!(error.code(), Some("node_pending" | "node_not_admitted")) {
                    return Ok(FollowEnd::NotAdmitted);
                }
                note_disconnected(shared, &error);
            }
        }
        tokio::time::sleep(backoff.next_delay(rand::random())).await;
    }
}
