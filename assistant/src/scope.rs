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

use serde::{Deserialize, Serialize};

pub use hearth_roster::{ASSISTANT, Asker, DeviceNow, Owner, RoomId};

/// The application capability that grants document folders: its values
/// are `{"folders": ["name", …]}` (`"*"` for all).
pub const DOCUMENTS_CAPABILITY: &str = "hearth.example/cap/documents";

/// The folders the access policy grants `asker` by name, or `None` for all
/// of them.
fn granted_folders(asker: &Asker) -> Option<Vec<String>> {
    let mut names = Vec::new();
    let grants = asker
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

/// The start of the name of a member's shared documents (`shared:ada`);
/// no configured folder's name starts so.
pub const SHARED_PREFIX: &str = "shared:";

/// The folder of the documents `member` shared with the assistant: theirs
/// alone.
pub fn shared_folder(member: &str) -> Folder {
    Folder {
        name: format!("{SHARED_PREFIX}{member}"),
        access: Access::Member(member.to_owned()),
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

impl Folder {
    /// Whether the conversation of `asker` may read it.
    pub fn readable_by(&self, asker: &Asker) -> bool {
        match &self.access {
            Access::Household => true,
            Access::Room(room) => {
                !asker.is_private()
                    && asker
                        .room
                        .as_ref()
                        .is_some_and(|asked| asked.to_string() == *room)
            }
            Access::Member(member) => asker.is_private() && *member == asker.member,
            Access::Granted => {
                asker.is_private()
                    && granted_folders(asker).is_none_or(|names| names.contains(&self.name))
            }
        }
    }
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
    use std::collections::BTreeMap;

    use super::*;

    fn asker(member: &str, room: Option<&str>) -> Asker {
        Asker {
            member: member.into(),
            room: room.map(|room| RoomId::parse(room).expect("a room")),
            capabilities: BTreeMap::new(),
            device: None,
            language: None,
        }
    }

    fn folder(name: &str, access: Access) -> Folder {
        Folder {
            name: name.into(),
            access,
        }
    }

    #[test]
    fn folders_are_read_where_their_access_says() {
        let household = folder("house", Access::Household);
        let kitchen = folder("kitchen", Access::Room("kitchen".into()));
        let ada_only = folder("ada-papers", Access::Member("ada".into()));
        let finances = folder("finances", Access::Granted);
        let private = asker("ada", None);
        let in_kitchen = asker("ada", Some("kitchen"));
        assert!(household.readable_by(&private) && household.readable_by(&in_kitchen));
        assert!(kitchen.readable_by(&in_kitchen) && !kitchen.readable_by(&private));
        assert!(ada_only.readable_by(&private));
        assert!(!ada_only.readable_by(&in_kitchen), "not where others read");
        assert!(!ada_only.readable_by(&asker("ben", None)));
        assert!(!finances.readable_by(&private), "not granted");
        let mut granted = asker("ada", None);
        granted.capabilities.insert(
            DOCUMENTS_CAPABILITY.into(),
            serde_json::json!([{"folders": ["finances"]}]),
        );
        assert!(finances.readable_by(&granted));
        assert!(!folder("school", Access::Granted).readable_by(&granted));
        granted.room = Some(RoomId::parse("kitchen").expect("a room"));
        assert!(
            !finances.readable_by(&granted),
            "grants are for private conversations"
        );
        let mut everything = asker("ben", None);
        everything.capabilities.insert(
            DOCUMENTS_CAPABILITY.into(),
            serde_json::json!([{"folders": ["*"]}]),
        );
        assert!(finances.readable_by(&everything));
        assert!(
            !ada_only.readable_by(&everything),
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
