//! Who is calling: the caller's tunnel address, named by this node's agent
//! (`whois`). No passwords: being an admitted mesh node of a user is the
//! credential, and the ACL (enforced by the agent on inbound packets) has
//! already decided whether the node may reach this port at all.
//!
//! An address names a node only while the mesh says so: answers are
//! remembered only while the agent's change feed is followed, and are
//! forgotten the moment the mesh changes (a node deleted, another added);
//! live connections then check their caller again ([`Identities::changes`]).
//! A caller on the hub itself (the hub's own mesh address) is a local
//! process, which the address cannot tell apart from any other local user:
//! it is refused.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::protocol::{ASSISTANT, valid_member};

/// How long a `whois` answer is reused, at most, while the change feed is followed.
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
    /// The node's mesh address it called from.
    pub address: IpAddr,
    /// The application capabilities the access policy gives the node at
    /// this hub (what documents the assistant may show them).
    pub capabilities: std::collections::BTreeMap<String, serde_json::Value>,
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
    /// A process on the hub itself.
    #[error(
        "callers on the hub itself cannot be told apart by their address; use messaging from a device of the mesh"
    )]
    OnTheHub,
    /// The agent did not answer.
    #[error("cannot identify callers right now: {0}")]
    AgentDown(String),
}

/// A `whois` answer, when it came and in which generation of the mesh.
type Answer = (Instant, u64, Result<Caller, Refusal>);

/// Identifies callers through the agent, remembering answers briefly.
pub struct Identities {
    changes: hearth_control::agent_api::Changes,
    known: Mutex<HashMap<IpAddr, Answer>>,
}

/// What an agent's `whois` answer means for messaging. Pure.
pub fn caller_of(
    address: IpAddr,
    answer: Option<hearth_control::agent_api::WhoIs>,
) -> Result<Caller, Refusal> {
    match answer {
        None => Err(Refusal::NotInMesh(address)),
        Some(who) if who.is_self => Err(Refusal::OnTheHub),
        Some(who) if !who.tags.is_empty() => Err(Refusal::Tagged(who.name)),
        Some(who) if !valid_member(&who.user) || who.user == ASSISTANT => {
            Err(Refusal::BadUser(who.user))
        }
        Some(who) => Ok(Caller {
            user: who.user,
            node: who.name,
            node_id: who.id,
            address,
            capabilities: who.capabilities,
        }),
    }
}

impl Identities {
    /// Asks the agent at `socket`.
    pub fn new(socket: PathBuf) -> Identities {
        Identities {
            changes: hearth_control::agent_api::Changes::new(socket),
            known: Mutex::new(HashMap::new()),
        }
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Answer>> {
        hearth_runtime::lock(&self.known)
    }

    /// Who is behind `address`.
    pub async fn identify(&self, address: IpAddr) -> Result<Caller, Refusal> {
        let address = address.to_canonical();
        // Read before asking: a change meanwhile leaves this answer stale.
        let generation = self.changes.generation();
        if self.changes.following()
            && let Some((when, of, answer)) = self.known().get(&address)
            && *of == generation
            && when.elapsed() < REMEMBER
        {
            return answer.clone();
        }
        let answer = match hearth_control::agent_api::whois(self.changes.socket(), address).await {
            Err(error) => return Err(Refusal::AgentDown(error.to_string())),
            Ok(answer) => caller_of(address, answer),
        };
        let mut known = self.known();
        if known.len() > 4096 {
            known.clear();
        }
        known.insert(address, (Instant::now(), generation, answer.clone()));
        answer
    }

    /// Changes whenever the mesh changed (or the feed was lost): callers
    /// identified before must be identified again.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Follows the agent's change feed until the task is dropped: each
    /// change makes every remembered answer stale; while the feed is down
    /// nothing is remembered.
    pub async fn follow_changes(&self) {
        self.changes.follow().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_control::agent_api::WhoIs;

    fn who(user: &str, is_self: bool, tags: &[&str]) -> WhoIs {
        WhoIs {
            id: 7,
            name: "laptop".into(),
            user: user.into(),
            tags: tags.iter().map(|tag| (*tag).to_owned()).collect(),
            addresses: vec!["100.64.0.7".parse().unwrap()],
            is_self,
            capabilities: Default::default(),
            online: None,
        }
    }

    #[test]
    fn only_peoples_devices_elsewhere_on_the_mesh_are_callers() {
        let address: IpAddr = "100.64.0.7".parse().unwrap();
        assert_eq!(
            caller_of(address, Some(who("ada", false, &[]))),
            Ok(Caller {
                user: "ada".into(),
                node: "laptop".into(),
                node_id: 7,
                address,
                capabilities: Default::default(),
            })
        );
        assert_eq!(caller_of(address, None), Err(Refusal::NotInMesh(address)));
        assert_eq!(
            caller_of(address, Some(who("home", true, &[]))),
            Err(Refusal::OnTheHub),
            "a local user connecting to the hub's own mesh address is not the hub's user"
        );
        assert!(matches!(
            caller_of(address, Some(who("ada", false, &["tag:server"]))),
            Err(Refusal::Tagged(_))
        ));
        assert!(matches!(
            caller_of(address, Some(who(ASSISTANT, false, &[]))),
            Err(Refusal::BadUser(_))
        ));
    }
}
