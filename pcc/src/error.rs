//! What can go wrong for a client of private compute (shared by its
//! client, the oblivious link and the transparency checks).

use hearth_chat_client::ClientError;

/// What can go wrong for a client.
#[derive(Debug, thiserror::Error)]
pub enum PccError {
    /// The router could not be reached or the connection broke.
    #[error("cannot reach the router: {0}")]
    Transport(String),
    /// The router or the node refused, before any reply.
    #[error("refused ({status}, {code}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The code (a router code or a node's e2ee code).
        code: String,
        /// Explanation.
        message: String,
    },
    /// No node serving the model passed verification.
    #[error("no verified node serves `{model}`{}", refusals(.refused))]
    NoVerifiedNode {
        /// The model asked for.
        model: String,
        /// Nodes refused, and the checks they failed.
        refused: Vec<(String, String)>,
    },
    /// The reply was altered, out of order, or cut short.
    #[error("the reply failed: {0}")]
    Reply(String),
    /// The node answered with something else than the protocol.
    #[error("unexpected answer: {0}")]
    Protocol(String),
}

fn refusals(refused: &[(String, String)]) -> String {
    if refused.is_empty() {
        return String::new();
    }
    let listed: Vec<String> = refused
        .iter()
        .map(|(node, why)| format!("{node}: {why}"))
        .collect();
    format!(" (refused: {})", listed.join("; "))
}

impl From<ClientError> for PccError {
    fn from(error: ClientError) -> PccError {
        PccError::Reply(error.to_string())
    }
}
