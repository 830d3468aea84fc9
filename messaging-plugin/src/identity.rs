//! Who is calling: the caller's tunnel address, named by this node's agent
//! (`whois`). No passwords: being an admitted mesh node of a user is the
//! credential, and the ACL (enforced by the agent on inbound packets) has
//! already decided whether the node may reach this port at all.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::protocol::{ASSISTANT, valid_user};

/// How long a `whois` answer is reused.
const REMEMBER: Duration = Duration::from_secs(5);

/// An identified caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The user.
    pub user: String,
    /// The node (device) name.
    pub node: String,
    /// The node id.
    pub node_id: u64,
}

/// Why a caller was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not a node of this mesh (or not one this node may see).
    #[error("{0} is not a device of this household's network")]
    NotInMesh(IpAddr),
    /// A tagged node (a server, not a person).
    #[error("{0} is a tagged device; only people's devices can chat")]
    Tagged(String),
    /// The user name cannot be used here.
    #[error("the user name {0:?} cannot be used for messaging")]
    BadUser(String),
    /// The agent did not answer.
    #[error("cannot identify callers right now: {0}")]
    AgentDown(String),
}

/// A `whois` answer and when it came.
type Answer = (Instant, Result<Caller, Refusal>);

/// Identifies callers through the agent, remembering answers briefly.
pub struct Identities {
    socket: PathBuf,
    known: Mutex<HashMap<IpAddr, Answer>>,
}

impl Identities {
    /// Asks the agent at `socket`.
    pub fn new(socket: PathBuf) -> Identities {
        Identities {
            socket,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// Who is behind `address`.
    pub async fn identify(&self, address: IpAddr) -> Result<Caller, Refusal> {
        let address = address.to_canonical();
        if let Some((when, answer)) = self
            .known
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&address)
            && when.elapsed() < REMEMBER
        {
            return answer.clone();
        }
        let answer = match hearth_control::agent_api::whois(&self.socket, address).await {
            Err(error) => return Err(Refusal::AgentDown(error)),
            Ok(None) => Err(Refusal::NotInMesh(address)),
            Ok(Some(who)) if !who.tags.is_empty() => Err(Refusal::Tagged(who.name)),
            Ok(Some(who)) if !valid_user(&who.user) || who.user == ASSISTANT => {
                Err(Refusal::BadUser(who.user))
            }
            Ok(Some(who)) => Ok(Caller {
                user: who.user,
                node: who.name,
                node_id: who.id,
            }),
        };
        let mut known = self
            .known
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if known.len() > 4096 {
            known.clear();
        }
        known.insert(address, (Instant::now(), answer.clone()));
        answer
    }
}
