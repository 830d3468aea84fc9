//! The household's roster, written once for household messaging, the
//! assistant and the gateway: who a member is ([`valid_member`]), the
//! assistant's own name ([`ASSISTANT`]), which rooms there are ([`RoomId`]:
//! a named room or the DM of two members), whose memory a conversation uses
//! ([`Owner`]) and who asks where ([`Asker`], also the wire form household
//! messaging sends the gateway).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The user name messaging gives the assistant; no member may have it.
pub const ASSISTANT: &str = "assistant";

/// Whether `name` can be a member's (user) name: the coordinator's rule, 1
/// to 64 of letters, digits and `._@+-` (so never `,`, which a DM's id
/// separates names with).
pub fn valid_member(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|byte| {
            byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'@' | b'+' | b'-')
        })
}

/// A room id that is neither a named room nor a DM.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a room: {0:?} (a room is 1 to 40 of a-z, 0-9 and -, or dm:NAME,NAME sorted)")]
pub struct RoomError(pub String);

/// A room of the household: a named room everyone may use (`kitchen`:
/// 1 to 40 of `a-z`, `0-9`, `-`), or the DM of two members
/// (`dm:ada,ben`, the names sorted and different). Its text form is the
/// one messaging stores and sends.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoomId(Room);

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Room {
    Named(String),
    Dm(String, String),
}

impl RoomId {
    /// What a DM's id starts with.
    pub const DM_PREFIX: &str = "dm:";

    /// Reads a room id, refusing anything that is not one.
    pub fn parse(text: &str) -> Result<RoomId, RoomError> {
        let bad = || RoomError(text.chars().take(80).collect());
        if let Some(pair) = text.strip_prefix(Self::DM_PREFIX) {
            let (first, second) = pair.split_once(',').ok_or_else(bad)?;
            if valid_member(first) && valid_member(second) && first < second {
                return Ok(RoomId(Room::Dm(first.to_owned(), second.to_owned())));
            }
            return Err(bad());
        }
        let named = (1..=40).contains(&text.len())
            && text
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-');
        if named {
            Ok(RoomId(Room::Named(text.to_owned())))
        } else {
            Err(bad())
        }
    }

    /// The DM of two members, in either order; refused for one member
    /// with themselves or a name no member can have.
    pub fn dm(one: &str, other: &str) -> Result<RoomId, RoomError> {
        let (first, second) = if one < other {
            (one, other)
        } else {
            (other, one)
        };
        RoomId::parse(&format!("{}{first},{second}", Self::DM_PREFIX))
    }

    /// The private conversation of `member` with the assistant.
    pub fn assistant_dm(member: &str) -> Result<RoomId, RoomError> {
        RoomId::dm(member, ASSISTANT)
    }

    /// Who `member` talks to in this DM; `None` for a named room, or a DM
    /// that is not theirs.
    pub fn other_member(&self, member: &str) -> Option<&str> {
        match self.members()? {
            (first, second) if first == member => Some(second),
            (first, second) if second == member => Some(first),
            _ => None,
        }
    }

    /// The two members of a DM, sorted; `None` for a named room.
    pub fn members(&self) -> Option<(&str, &str)> {
        match &self.0 {
            Room::Named(_) => None,
            Room::Dm(first, second) => Some((first, second)),
        }
    }

    /// Whether it is a DM.
    pub fn is_dm(&self) -> bool {
        self.members().is_some()
    }

    /// Whether `member` may see and post in it: a named room is the
    /// household's; a DM belongs to its two members.
    pub fn admits(&self, member: &str) -> bool {
        self.members()
            .is_none_or(|(first, second)| member == first || member == second)
    }

    /// Whether it is a DM with the assistant.
    pub fn with_assistant(&self) -> bool {
        self.members()
            .is_some_and(|(first, second)| first == ASSISTANT || second == ASSISTANT)
    }

    /// Whether `member` may ask the assistant in it: as [`RoomId::admits`],
    /// and never the assistant itself (a member claiming its name, such as
    /// a device of a user called `assistant`, would otherwise speak in
    /// every member's DM with it, as it).
    pub fn may_ask(&self, member: &str) -> bool {
        member != ASSISTANT && self.admits(member)
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Room::Named(name) => formatter.write_str(name),
            Room::Dm(first, second) => write!(formatter, "{}{first},{second}", Self::DM_PREFIX),
        }
    }
}

impl TryFrom<String> for RoomId {
    type Error = RoomError;

    fn try_from(text: String) -> Result<RoomId, RoomError> {
        RoomId::parse(&text)
    }
}

impl From<RoomId> for String {
    fn from(room: RoomId) -> String {
        room.to_string()
    }
}

impl std::str::FromStr for RoomId {
    type Err = RoomError;

    fn from_str(text: &str) -> Result<RoomId, RoomError> {
        RoomId::parse(text)
    }
}

/// Who owns a memory entry or a list.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Owner {
    /// One member's own.
    Member(String),
    /// A room's, shared by whoever talks there.
    Room(String),
}

impl Owner {
    /// The stable key it is stored under: `member:ada`, `room:household`.
    pub fn key(&self) -> String {
        match self {
            Owner::Member(name) => format!("member:{name}"),
            Owner::Room(name) => format!("room:{name}"),
        }
    }

    /// The owner stored under `key`.
    pub fn from_key(key: &str) -> Option<Owner> {
        match key.split_once(':')? {
            ("member", name) if !name.is_empty() => Some(Owner::Member(name.to_owned())),
            ("room", name) if !name.is_empty() => Some(Owner::Room(name.to_owned())),
            _ => None,
        }
    }
}

/// Who asks, and where: established by the gateway from the mesh (the
/// caller's node and user) or sent by household messaging, which speaks
/// for the member it identified (the chat request's `on_behalf_of`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Asker {
    /// The member, as the mesh named their device.
    pub member: String,
    /// The room the question was asked in (`None`: directly, from a device).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<RoomId>,
    /// The application capabilities the member's device has at this hub
    /// (the access policy's grants, as the node agent's `whois` gives them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub capabilities: BTreeMap<String, serde_json::Value>,
    /// The mesh address of the device that asked, when known: what a
    /// scheduled question asks about again when it runs, so that it uses
    /// the grants the member has then, not those they had when it was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<std::net::IpAddr>,
    /// The language the member reads (a BCP 47 tag their app chose, as
    /// `ko`): the assistant answers in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// What the mesh says now of the device a question came from: its member,
/// whether it is tagged (then it acts as its tags, for no member), and the
/// application capabilities the policy gives it now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceNow {
    /// The member who owns it.
    pub member: String,
    /// Whether it is tagged.
    pub tagged: bool,
    /// Its application capabilities.
    pub capabilities: BTreeMap<String, serde_json::Value>,
}

impl Asker {
    /// The asker of a question asked again later (a scheduled question),
    /// with the grants the policy gives now instead of those it was made
    /// with: the device's current ones while it is still the member's,
    /// else none. A grant revoked since is not used; one never known
    /// (no device, no answer) is not either.
    pub fn regranted(self, now: Option<DeviceNow>) -> Asker {
        let capabilities = match now {
            Some(device) if device.member == self.member && !device.tagged => device.capabilities,
            _ => BTreeMap::new(),
        };
        Asker {
            capabilities,
            ..self
        }
    }

    /// Whether the answer is read by the member alone: asked directly, or
    /// in their DM with the assistant.
    pub fn is_private(&self) -> bool {
        match &self.room {
            None => true,
            Some(room) => RoomId::assistant_dm(&self.member).is_ok_and(|dm| dm == *room),
        }
    }

    /// Whose memory and lists this conversation uses.
    pub fn owner(&self) -> Owner {
        match &self.room {
            Some(room) if !self.is_private() => Owner::Room(room.to_string()),
            _ => Owner::Member(self.member.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_are_named_rooms_or_sorted_dms_of_two_members() {
        assert_eq!(RoomId::parse("kitchen").unwrap().to_string(), "kitchen");
        let dm = RoomId::dm("ben", "ada").unwrap();
        assert_eq!(dm.to_string(), "dm:ada,ben");
        assert_eq!(dm.members(), Some(("ada", "ben")));
        assert_eq!(RoomId::parse("dm:ada,ben").unwrap(), dm);
        assert_eq!(dm.other_member("ada"), Some("ben"));
        assert_eq!(dm.other_member("ben"), Some("ada"));
        assert_eq!(dm.other_member("cy"), None);
        assert_eq!(RoomId::parse("kitchen").unwrap().other_member("ada"), None);
        for bad in [
            "",
            "Kitchen",
            "dm:ben,ada",
            "dm:ada,ada",
            "dm:ada",
            "dm:ada,b,c",
            "dm:,ada",
            &"x".repeat(41),
        ] {
            assert!(RoomId::parse(bad).is_err(), "{bad:?} is not a room");
        }
        assert!(RoomId::dm("ada", "ada").is_err());
    }

    #[test]
    fn a_dm_is_its_two_members_and_never_the_assistant_asking() {
        let household = RoomId::parse("household").unwrap();
        let pair = RoomId::parse("dm:ada,ben").unwrap();
        assert!(household.admits("zoe") && household.may_ask("zoe"));
        assert!(pair.admits("ada") && pair.admits("ben") && !pair.admits("zoe"));
        let with_assistant = RoomId::assistant_dm("ada").unwrap();
        assert_eq!(with_assistant.to_string(), "dm:ada,assistant");
        assert_eq!(
            RoomId::assistant_dm("zoe").unwrap().to_string(),
            "dm:assistant,zoe"
        );
        assert!(with_assistant.with_assistant() && !pair.with_assistant());
        assert!(with_assistant.may_ask("ada"));
        assert!(
            !with_assistant.may_ask(ASSISTANT),
            "a member named as the assistant never asks as it"
        );
    }

    #[test]
    fn rooms_travel_as_their_text_and_bad_ones_are_refused_on_arrival() {
        let asker: Asker =
            serde_json::from_str(r#"{"member": "ada", "room": "dm:ada,assistant"}"#).unwrap();
        assert!(asker.is_private());
        assert_eq!(asker.owner(), Owner::Member("ada".into()));
        assert_eq!(
            serde_json::to_string(&asker).unwrap(),
            r#"{"member":"ada","room":"dm:ada,assistant"}"#
        );
        assert!(
            serde_json::from_str::<Asker>(r#"{"member": "ada", "room": "dm:zoe,ada"}"#).is_err()
        );
        assert!(serde_json::from_str::<Asker>(r#"{"member": "ada", "extra": 1}"#).is_err());
        let shared: Asker =
            serde_json::from_str(r#"{"member": "ada", "room": "dm:ada,ben"}"#).unwrap();
        assert_eq!(shared.owner(), Owner::Room("dm:ada,ben".into()));
    }

    #[test]
    fn member_names_follow_the_coordinators_rule() {
        assert!(valid_member("ada") && valid_member("ada.lovelace+home@x-y_z"));
        assert!(!valid_member("") && !valid_member("a,b") && !valid_member(&"a".repeat(65)));
    }

    fn asker(member: &str, room: Option<&str>) -> Asker {
        Asker {
            member: member.into(),
            room: room.map(|room| RoomId::parse(room).expect("a room")),
            capabilities: BTreeMap::new(),
            device: None,
            language: None,
        }
    }

    #[test]
    fn a_question_asked_later_uses_the_grants_of_then() {
        let granted = BTreeMap::from([(
            "hearth.example/cap/documents".to_owned(),
            serde_json::json!([{"folders": ["finance"]}]),
        )]);
        let made = Asker {
            capabilities: granted.clone(),
            device: Some([100, 64, 0, 7].into()),
            ..asker("ada", None)
        };
        let now = |member: &str, tagged, capabilities: &BTreeMap<String, serde_json::Value>| {
            Some(DeviceNow {
                member: member.into(),
                tagged,
                capabilities: capabilities.clone(),
            })
        };
        assert_eq!(
            made.clone()
                .regranted(now("ada", false, &granted))
                .capabilities,
            granted
        );
        assert!(
            made.clone()
                .regranted(now("ada", false, &BTreeMap::new()))
                .capabilities
                .is_empty(),
            "revoked"
        );
        assert!(
            made.clone()
                .regranted(now("ben", false, &granted))
                .capabilities
                .is_empty(),
            "another's now"
        );
        assert!(
            made.clone()
                .regranted(now("ada", true, &granted))
                .capabilities
                .is_empty(),
            "tagged"
        );
        assert!(made.regranted(None).capabilities.is_empty(), "gone");
    }

    #[test]
    fn a_private_conversation_uses_the_member_s_own_memory_and_a_room_its_own() {
        assert_eq!(
            RoomId::assistant_dm("ada").unwrap().to_string(),
            "dm:ada,assistant"
        );
        assert_eq!(
            RoomId::assistant_dm("zoe").unwrap().to_string(),
            "dm:assistant,zoe"
        );
        let direct = asker("ada", None);
        assert!(direct.is_private());
        assert_eq!(direct.owner(), Owner::Member("ada".into()));
        let dm = asker("zoe", Some("dm:assistant,zoe"));
        assert_eq!(dm.owner(), Owner::Member("zoe".into()));
        let room = asker("ada", Some("household"));
        assert_eq!(room.owner(), Owner::Room("household".into()));
        // Two people's DM is a room they share, even with the assistant asked in.
        let pair = asker("ada", Some("dm:ada,ben"));
        assert_eq!(pair.owner(), Owner::Room("dm:ada,ben".into()));
        // Another member's DM with the assistant is not ada's private one.
        let other = asker("ada", Some("dm:assistant,ben"));
        assert!(!other.is_private());
    }

    #[test]
    fn a_dm_is_usable_by_its_two_members_only() {
        assert!(RoomId::parse("household").unwrap().may_ask("ada"));
        assert!(RoomId::parse("dm:ada,ben").unwrap().may_ask("ada"));
        assert!(RoomId::parse("dm:ada,ben").unwrap().may_ask("ben"));
        assert!(!RoomId::parse("dm:ada,ben").unwrap().may_ask("zoe"));
        assert!(!RoomId::parse("dm:assistant,ben").unwrap().may_ask("ada"));
        assert!(!RoomId::parse("").is_ok_and(|room| room.may_ask("ada")));
        assert!(
            !RoomId::parse("dm:ada,assistant")
                .unwrap()
                .may_ask(ASSISTANT),
            "the assistant never asks"
        );
        assert!(!RoomId::parse("household").unwrap().may_ask(ASSISTANT));
    }
}
