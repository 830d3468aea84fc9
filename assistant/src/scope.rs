//! Whose memory, lists and documents a conversation may use: decided once
//! per turn from who is asking and where, never from what the model or a
//! document says. In a member's own conversation with the assistant (a DM
//! with it, or a device talking to it directly) that is the member's
//! memory and lists, the household's documents, their own folder and the
//! folders the access policy grants them (the `hearth.example/cap/documents`
//! application capability). In a room others read (a shared room, or a DM
//! between two people) it is that room's memory and lists and the
//! household's and that room's documents only: nothing private is used
//! where others would read the answer, as OpenClaw loads `MEMORY.md` only
//! in private sessions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The user name messaging gives the assistant.
pub const ASSISTANT: &str = "assistant";
/// The application capability that grants document folders: its values
/// are `{"folders": ["name", …]}` (`"*"` for all).
pub const DOCUMENTS_CAPABILITY: &str = "hearth.example/cap/documents";

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
/// caller's node and user) or from household messaging, which speaks for
/// the member it identified.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asker {
    /// The member.
    pub member: String,
    /// The room the question was asked in (`None`: directly, from a device).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// The application capabilities the member's device has at this hub.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub capabilities: BTreeMap<String, serde_json::Value>,
    /// The mesh address of the device that asked, when known: what a
    /// scheduled question asks about again when it runs, so that it uses
    /// the grants the member has then, not those they had when it was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<std::net::IpAddr>,
}

/// The private conversation of `member` with the assistant in messaging.
pub fn assistant_dm(member: &str) -> String {
    let (first, second) = if member <= ASSISTANT {
        (member, ASSISTANT)
    } else {
        (ASSISTANT, member)
    };
    format!("dm:{first},{second}")
}

/// Whether `member` may talk in `room`: anyone in a household room; only
/// its two members in a DM (`dm:A,B`, as household messaging names them).
/// The assistant itself never asks: a member claiming its name (a device
/// of a user called `assistant`) would otherwise speak in every member's
/// DM with it, as it.
pub fn may_use_room(member: &str, room: &str) -> bool {
    if member == ASSISTANT {
        return false;
    }
    match room.strip_prefix("dm:") {
        Some(pair) => pair.split(',').any(|name| name == member),
        None => !room.is_empty(),
    }
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

    /// Whether the answer is read by the member alone.
    pub fn is_private(&self) -> bool {
        match &self.room {
            None => true,
            Some(room) => *room == assistant_dm(&self.member),
        }
    }

    /// Whose memory and lists this conversation uses.
    pub fn owner(&self) -> Owner {
        match &self.room {
            Some(room) if !self.is_private() => Owner::Room(room.clone()),
            _ => Owner::Member(self.member.clone()),
        }
    }

    /// The folders the access policy grants this member by name, or `None`
    /// for all of them.
    fn granted_folders(&self) -> Option<Vec<String>> {
        let mut names = Vec::new();
        let grants = self
            .capabilities
            .get(DOCUMENTS_CAPABILITY)
            .and_then(serde_json::Value::as_array);
        for grant in grants.into_iter().flatten() {
            for folder in grant
                .get("folders")
                .and_then(serde_json::Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(serde_json::Value::as_str)
            {
                if folder == "*" {
                    return None;
                }
                names.push(folder.to_owned());
            }
        }
        Some(names)
    }

    /// Whether this conversation may read `folder`.
    pub fn may_read(&self, folder: &Folder) -> bool {
        match &folder.access {
            Access::Household => true,
            Access::Room(room) => !self.is_private() && self.room.as_ref() == Some(room),
            Access::Member(member) => self.is_private() && *member == self.member,
            Access::Granted => {
                self.is_private()
                    && self
                        .granted_folders()
                        .is_none_or(|names| names.contains(&folder.name))
            }
        }
    }
}

/// A folder of household documents.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Folder {
    /// Its name (what the access policy grants).
    pub name: String,
    /// Who reads it.
    pub access: Access,
}

/// Who reads a folder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Everyone, everywhere.
    Household,
    /// Whoever asks in this room.
    Room(String),
    /// This member, in their own conversation.
    Member(String),
    /// Members the access policy grants it to, in their own conversation.
    Granted,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asker(member: &str, room: Option<&str>) -> Asker {
        Asker {
            member: member.into(),
            room: room.map(Into::into),
            capabilities: BTreeMap::new(),
            device: None,
        }
    }

    #[test]
    fn a_question_asked_later_uses_the_grants_of_then() {
        let granted = BTreeMap::from([(
            DOCUMENTS_CAPABILITY.to_owned(),
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

    fn folder(name: &str, access: Access) -> Folder {
        Folder {
            name: name.into(),
            access,
        }
    }

    #[test]
    fn a_private_conversation_uses_the_member_s_own_memory_and_a_room_its_own() {
        assert_eq!(assistant_dm("ada"), "dm:ada,assistant");
        assert_eq!(assistant_dm("zoe"), "dm:assistant,zoe");
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
        assert!(may_use_room("ada", "household"));
        assert!(may_use_room("ada", "dm:ada,ben"));
        assert!(may_use_room("ben", "dm:ada,ben"));
        assert!(!may_use_room("zoe", "dm:ada,ben"));
        assert!(!may_use_room("ada", "dm:assistant,ben"));
        assert!(!may_use_room("ada", ""));
        assert!(
            !may_use_room(ASSISTANT, "dm:ada,assistant"),
            "the assistant never asks"
        );
        assert!(!may_use_room(ASSISTANT, "household"));
    }

    #[test]
    fn folders_are_read_where_their_access_says() {
        let household = folder("house", Access::Household);
        let kitchen = folder("kitchen", Access::Room("kitchen".into()));
        let ada_only = folder("ada-papers", Access::Member("ada".into()));
        let finances = folder("finances", Access::Granted);
        let private = asker("ada", None);
        let in_kitchen = asker("ada", Some("kitchen"));
        assert!(private.may_read(&household) && in_kitchen.may_read(&household));
        assert!(in_kitchen.may_read(&kitchen) && !private.may_read(&kitchen));
        assert!(private.may_read(&ada_only));
        assert!(!in_kitchen.may_read(&ada_only), "not where others read");
        assert!(!asker("ben", None).may_read(&ada_only));
        assert!(!private.may_read(&finances), "not granted");
        let mut granted = asker("ada", None);
        granted.capabilities.insert(
            DOCUMENTS_CAPABILITY.into(),
            serde_json::json!([{"folders": ["finances"]}]),
        );
        assert!(granted.may_read(&finances));
        assert!(!granted.may_read(&folder("school", Access::Granted)));
        granted.room = Some("kitchen".into());
        assert!(
            !granted.may_read(&finances),
            "grants are for private conversations"
        );
        let mut everything = asker("ben", None);
        everything.capabilities.insert(
            DOCUMENTS_CAPABILITY.into(),
            serde_json::json!([{"folders": ["*"]}]),
        );
        assert!(everything.may_read(&finances));
        assert!(
            !everything.may_read(&ada_only),
            "a grant opens no member's own folder"
        );
    }

    #[test]
    fn owners_round_trip_through_their_keys() {
        for owner in [
            Owner::Member("ada".into()),
            Owner::Room("dm:ada,ben".into()),
        ] {
            assert_eq!(Owner::from_key(&owner.key()), Some(owner));
        }
        assert_eq!(Owner::from_key("member:"), None);
        assert_eq!(Owner::from_key("guest:x"), None);
    }
}
