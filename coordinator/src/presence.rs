//! Whether a node is connected, when it last was, and which ephemeral nodes
//! have been away long enough to be removed. Pure: the shell passes the time
//! and what the streams know.

use crate::netmap::NodeRecord;

/// What the map streams know of a node since this process started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    /// A map stream of it is open.
    Online,
    /// Its last map stream closed at this Unix time.
    Seen(i64),
    /// It has not connected since the coordinator started.
    Unknown,
}

/// When `record`'s node was last connected, as `nodes list` shows it: now
/// while online, else the stream's last time or the stored one.
pub fn last_seen(record: &NodeRecord, presence: Presence, now: i64) -> Option<i64> {
    match presence {
        Presence::Online => Some(now),
        Presence::Seen(when) => Some(when),
        Presence::Unknown => record.last_seen,
    }
}

/// Whether an ephemeral node has been away for at least `timeout` seconds
/// at `now` (a node that never connected counts from its registration).
pub fn idle_too_long(record: &NodeRecord, presence: Presence, now: i64, timeout: i64) -> bool {
    if !record.ephemeral {
        return false;
    }
    let since = match presence {
        Presence::Online => return false,
        Presence::Seen(when) => when,
        Presence::Unknown => record.last_seen.unwrap_or(record.created_at),
    };
    now.saturating_sub(since) >= timeout
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registration::{Device, Owner, new_record};

    fn node(ephemeral: bool, created_at: i64, stored: Option<i64>) -> NodeRecord {
        let owner = Owner {
            user_id: 1,
            user: "ada".into(),
            tags: Default::default(),
            ephemeral,
            state: hearth_control::wire::NodeState::Approved,
            key_lifetime: None,
        };
        let device = Device {
            name: "laptop".into(),
            hostname: "laptop".into(),
            os: "linux".into(),
            key: hearth_control::wire::WireGuardKey([9; 32]),
            credential: None,
            client: String::new(),
        };
        let addresses = crate::ipam::AddressPool::new().allocate(0).unwrap();
        let mut record = new_record(1, owner, device, addresses, created_at);
        record.last_seen = stored;
        record
    }

    #[test]
    fn ephemeral_nodes_go_after_the_timeout_away() {
        let away = node(true, 1000, None);
        assert!(!idle_too_long(&away, Presence::Online, 9999, 60));
        assert!(!idle_too_long(&away, Presence::Seen(1950), 2000, 60));
        assert!(idle_too_long(&away, Presence::Seen(1940), 2000, 60));
        assert!(
            idle_too_long(&away, Presence::Unknown, 1060, 60),
            "never connected: from registration"
        );
        assert!(!idle_too_long(
            &node(true, 1000, Some(1900)),
            Presence::Unknown,
            1950,
            60
        ));
        assert!(!idle_too_long(
            &node(false, 0, None),
            Presence::Unknown,
            1_000_000,
            60
        ));
    }

    #[test]
    fn last_seen_is_now_while_online() {
        let record = node(false, 1000, Some(1500));
        assert_eq!(last_seen(&record, Presence::Online, 2000), Some(2000));
        assert_eq!(last_seen(&record, Presence::Seen(1800), 2000), Some(1800));
        assert_eq!(last_seen(&record, Presence::Unknown, 2000), Some(1500));
    }
}
