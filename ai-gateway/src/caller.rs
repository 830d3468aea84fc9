//! Who called the gateway, once the HTTP edge ([`crate::api`]) has
//! authenticated them, and whom a request acts for: below the HTTP layer,
//! so the gateway's decisions take a caller without knowing how it was
//! recognised.

use std::net::IpAddr;
use std::path::PathBuf;

use hearth_http::SameOrigin;

/// Who may call the gateway: its secret, and how the mesh is asked.
#[derive(Clone, Debug)]
pub struct Auth {
    /// The bearer token; `None` only with `auth.mode: "none"`.
    pub token: Option<zeroize::Zeroizing<String>>,
    /// The node agent's socket, to accept mesh nodes by their tunnel address.
    pub agent_socket: Option<PathBuf>,
    /// Whether the gateway listens on loopback only (with `auth.mode:
    /// "none"`, local callers are then trusted without a token).
    pub loopback: bool,
    /// The names and origins browsers may use.
    pub same_origin: SameOrigin,
    /// How a front end's signed user header is checked
    /// (`hearth.openWebUi`); set, only that header names whom it acts for.
    pub signed_users: Option<SignedUsers>,
}

/// Open WebUI's signed user header: the secret it is checked with
/// (`userJwtSecretFile`) and the accounts that are members (`members`).
#[derive(Clone)]
pub struct SignedUsers {
    /// The shared secret.
    pub secret: zeroize::Zeroizing<String>,
    /// Which account is which member.
    pub members: crate::forwarded::Members,
}

impl std::fmt::Debug for SignedUsers {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SignedUsers")
            .field("secret", &"(hidden)")
            .field("members", &self.members)
            .finish()
    }
}

impl Auth {
    /// Whether `given` is the gateway's secret.
    pub fn is_secret(&self, given: &str) -> bool {
        self.token
            .as_ref()
            .is_some_and(|expected| same(expected.as_bytes(), given.as_bytes()))
    }

    /// The caller the mesh names at `address` (a member's or a tagged
    /// device), if any: this host's own address is not one.
    pub async fn mesh_caller(&self, address: IpAddr) -> Option<Caller> {
        let socket = self.agent_socket.as_ref()?;
        match hearth_control::agent_api::whois(socket, address).await {
            Ok(Some(who)) if !who.is_self => Some(Caller::of_device(address, who)),
            _ => None,
        }
    }
}

/// Constant-time comparison of secrets (the length is not secret).
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Who called, once authenticated.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The source address.
    pub address: IpAddr,
    /// The member it is: the mesh user owning the device, or the person a
    /// front end granted to name them names. `None` for a tagged device,
    /// the token's holder, or a local caller.
    pub user: Option<String>,
    /// A tagged device's tags (it acts as them, not as its owner).
    pub tags: Vec<String>,
    /// The front end (a device's name) that named [`Caller::user`].
    pub front_end: Option<String>,
    /// The application capabilities the access policy gives the caller's
    /// node at this hub (from the agent's `whois`).
    pub capabilities: std::collections::BTreeMap<String, serde_json::Value>,
    /// Whether it may speak for members (household messaging): it holds
    /// the gateway's token, or there is none and it is on this machine.
    pub speaks_for_members: bool,
    /// The mesh device the call came from, as the agent named it when the
    /// call was authenticated: a reply or connection that outlives the
    /// mesh's word on it ends ([`crate::gateway::Gateway::still_named`]).
    pub device: Option<hearth_control::agent_api::WhoIs>,
}

/// The header a front end names the person it acts for in: Open WebUI's
/// (`ENABLE_FORWARD_USER_INFO_HEADERS`), its user's name.
pub const FORWARDED_USER: &str = "x-openwebui-user-name";

/// Why a front end may not name the person it acts for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotNamed {
    /// The policy does not grant this device naming that member.
    #[error(
        "this device may not name whom it acts for ({FORWARDED_USER}: {0:?}): the access policy grants it no \
         `hearth.example/cap/ai` `actFor` naming that member"
    )]
    NotGranted(String),
    /// The name is no member's.
    #[error("{FORWARDED_USER}: {0:?} is not a member's name")]
    NotAMember(String),
}

impl Caller {
    /// A caller the mesh does not name, at `address`.
    pub fn nobody(address: IpAddr) -> Caller {
        Caller {
            address,
            user: None,
            tags: Vec::new(),
            front_end: None,
            capabilities: Default::default(),
            speaks_for_members: false,
            device: None,
        }
    }

    /// The gateway's own scheduler asking for a member (a scheduled
    /// question): it speaks for members, from nowhere on the mesh.
    pub fn scheduler() -> Caller {
        Caller {
            speaks_for_members: true,
            ..Caller::nobody(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST))
        }
    }

    /// The caller a mesh device is, from its agent's `whois` answer: its
    /// owner, or its tags when it has them.
    pub fn of_device(address: IpAddr, who: hearth_control::agent_api::WhoIs) -> Caller {
        let tagged = !who.tags.is_empty();
        Caller {
            address,
            user: (!tagged).then(|| who.user.clone()),
            tags: who.tags.clone(),
            front_end: None,
            capabilities: who.capabilities.clone(),
            speaks_for_members: false,
            device: Some(who),
        }
    }

    /// This caller acting for `named` (a front end's forwarded user), as
    /// `front_end`: a caller that speaks for members may name anyone; a
    /// device only a member the policy grants it (`actFor`). The member
    /// keeps the front end's model access and budget, not its document
    /// grants (those are the member's own devices').
    pub fn acting_for(self, named: &str, front_end: &str) -> Result<Caller, NotNamed> {
        use hearth_roster::{ASSISTANT, valid_member};
        if !valid_member(named) || named == ASSISTANT {
            return Err(NotNamed::NotAMember(named.to_owned()));
        }
        let granted = self.speaks_for_members
            || ((self.user.is_some() || !self.tags.is_empty()) && self.access().may_act_for(named));
        if !granted {
            return Err(NotNamed::NotGranted(named.to_owned()));
        }
        let capabilities = self
            .capabilities
            .into_iter()
            .filter(|(name, _)| name == crate::access::AI_CAPABILITY)
            .collect();
        Ok(Caller {
            address: self.address,
            user: Some(named.to_owned()),
            tags: Vec::new(),
            front_end: Some(front_end.to_owned()),
            capabilities,
            speaks_for_members: false,
            device: self.device,
        })
    }

    /// Whose the OpenAI API's sessions are: a mesh member's own
    /// (`member:NAME`), or the token holder's (`operator`). A session key
    /// (`user`, `x-openclaw-session-key`) names a session within these
    /// only, so a member called `operator` (or anything else) never
    /// continues anyone else's.
    pub fn session_owner(&self) -> String {
        match &self.user {
            Some(user) => format!("member:{user}"),
            None if !self.tags.is_empty() => format!("tags:{}", self.tags.join(",")),
            None => "operator".to_owned(),
        }
    }

    /// Whose usage and budget a request counts against: the member, a
    /// tagged device's tags, or `operator` (the token's holder).
    pub fn account(&self) -> String {
        match &self.user {
            Some(user) => user.clone(),
            None if !self.tags.is_empty() => self.tags.join(","),
            None => "operator".to_owned(),
        }
    }

    /// What the access policy lets this caller do.
    pub fn access(&self) -> crate::access::Access {
        crate::access::Access::of(&self.capabilities)
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
                language: None,
            },
            (Some(user), Some(asked)) if asked.member == *user => Asker {
                member: user.clone(),
                room: asked.room.clone(),
                capabilities: self.capabilities.clone(),
                device: Some(self.address),
                language: asked.language.clone(),
            },
            (Some(_), Some(_)) => return Err("a device speaks for its own member only"),
            (None, Some(asked)) if self.speaks_for_members => Asker {
                member: asked.member.clone(),
                room: asked.room.clone(),
                capabilities: asked.capabilities.clone(),
                device: asked.device,
                language: asked.language.clone(),
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
