//! Who called the gateway, once the HTTP edge ([`crate::api`]) has
//! authenticated them, and whom a request acts for: below the HTTP layer,
//! so the gateway's decisions take a caller without knowing how it was
//! recognised.

use std::net::IpAddr;

/// Who called, once authenticated.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The source address.
    pub address: IpAddr,
    /// The mesh user, when the agent knew the address.
    pub user: Option<String>,
    /// The application capabilities the access policy gives the caller's
    /// node at this hub (from the agent's `whois`).
    pub capabilities: std::collections::BTreeMap<String, serde_json::Value>,
    /// Whether it may speak for members (household messaging): it holds
    /// the gateway's token, or there is none and it is on this machine.
    pub speaks_for_members: bool,
}

impl Caller {
    /// Whose the OpenAI API's sessions are: a mesh member's own
    /// (`member:NAME`), or the token holder's (`operator`). A session key
    /// (`user`, `x-openclaw-session-key`) names a session within these
    /// only, so a member called `operator` (or anything else) never
    /// continues anyone else's.
    pub fn session_owner(&self) -> String {
        match &self.user {
            Some(user) => format!("member:{user}"),
            None => "operator".to_owned(),
        }
    }

    /// Whom a request acts for: a mesh device for its own member (in a
    /// room it may use); a caller that speaks for members for the member
    /// it names. `None`: nobody in particular (the token's holder asking
    /// for itself). Never a member the caller cannot vouch for.
    pub fn asker(
        &self,
        on_behalf_of: Option<&hearth_roster::Asker>,
    ) -> Result<Option<hearth_roster::Asker>, &'static str> {
        use hearth_roster::{ASSISTANT, Asker};
        let asker = match (&self.user, on_behalf_of) {
            (Some(user), None) => Asker {
                member: user.clone(),
                room: None,
                capabilities: self.capabilities.clone(),
                device: Some(self.address),
            },
            (Some(user), Some(asked)) if asked.member == *user => Asker {
                member: user.clone(),
                room: asked.room.clone(),
                capabilities: self.capabilities.clone(),
                device: Some(self.address),
            },
            (Some(_), Some(_)) => return Err("a device speaks for its own member only"),
            (None, Some(asked)) if self.speaks_for_members => Asker {
                member: asked.member.clone(),
                room: asked.room.clone(),
                capabilities: asked.capabilities.clone(),
                device: asked.device,
            },
            (None, Some(_)) => {
                return Err("only a holder of the gateway's token speaks for members");
            }
            (None, None) => return Ok(None),
        };
        if asker.member.is_empty() {
            return Err("a member has a name");
        }
        if asker.member == ASSISTANT {
            // A user of the mesh called so is not the assistant.
            return Err("the assistant does not ask itself");
        }
        if let Some(room) = &asker.room
            && !room.may_ask(&asker.member)
        {
            return Err("that member cannot talk in that room");
        }
        Ok(Some(asker))
    }
}
