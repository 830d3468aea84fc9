//! Open map and approval streams, and delivery of messages to them.
//!
//! Each stream is a bounded channel of ready-to-send JSON lines. A message for
//! many nodes is serialized once and the same bytes are queued for each; a
//! full map is the node's own part followed by parts its policy class shares
//! (see `netmap::ClassMap`). A
//! node whose queue is full is disconnected rather than allowed to hold
//! memory: on reconnect it gets a fresh full map, so nothing is lost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::Bytes;
use hearth_control::compression::{self, Encoding};
use hearth_control::wire::{ApprovalMessage, MapMessage, NodeId, NodeState};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::netmap::Delivery;
use crate::presence::Presence;

/// Messages queued per stream before a slow reader is cut off.
const QUEUE_DEPTH: usize = 4096;
/// Map streams one node holds at once: a new one beyond ends the oldest (a
/// reconnecting agent's old stream may not have noticed its end yet; a
/// node opening streams in a loop holds no more).
pub const MAX_MAP_STREAMS_PER_NODE: usize = 4;

/// One line of a stream, ready to send.
#[derive(Clone, Debug)]
pub enum Line {
    /// A whole line (a delta, a state, a keep-alive), queued for many
    /// streams and compressed (once) only if one of them is zstd.
    Whole(Arc<WholeLine>),
    /// A full map, already in its stream's encoding: several buffers to be
    /// sent one after another, most of them shared with other streams.
    Pieces(Vec<Bytes>),
}

/// A whole line, and its zstd frame once a stream has asked for it.
#[derive(Debug)]
pub struct WholeLine {
    plain: Bytes,
    zstd: OnceLock<Bytes>,
}

impl Line {
    /// `line` (one newline-terminated JSON message) as it is.
    pub fn whole(line: Bytes) -> Line {
        Line::Whole(Arc::new(WholeLine {
            plain: line,
            zstd: OnceLock::new(),
        }))
    }

    /// Its pieces in `encoding`, in order (a whole line without allocating
    /// a list: most lines are deltas and keep-alives queued for many streams).
    pub fn into_pieces(self, encoding: Encoding) -> impl Iterator<Item = Bytes> {
        let (whole, pieces) = match self {
            Line::Whole(line) => {
                let bytes = match encoding {
                    Encoding::Identity => line.plain.clone(),
                    Encoding::Zstd => line
                        .zstd
                        .get_or_init(|| compression::frames(&line.plain))
                        .clone(),
                };
                (Some(bytes), Vec::new())
            }
            Line::Pieces(pieces) => (None, pieces),
        };
        whole.into_iter().chain(pieces)
    }

    /// The line in one buffer (for a reader that parses it; a full map's
    /// line must have been made uncompressed).
    pub fn joined(&self) -> Bytes {
        match self {
            Line::Whole(line) => line.plain.clone(),
            Line::Pieces(pieces) => Bytes::from(pieces.concat()),
        }
    }
}

/// Serializes a message as one newline-terminated JSON line.
pub fn encode_line<T: Serialize>(message: &T) -> Bytes {
    let mut line = serde_json::to_vec(message).expect("wire messages serialize");
    line.push(b'\n');
    Bytes::from(line)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Map,
    Approval,
}

struct Subscriber {
    id: u64,
    sender: mpsc::Sender<Line>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Activity {
    open_maps: usize,
    last_seen: Option<i64>,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    subscribers: HashMap<(Kind, NodeId), Vec<Subscriber>>,
    activity: HashMap<NodeId, Activity>,
}

/// All open streams.
pub struct Streams {
    registry: Mutex<Registry>,
    /// Nodes coming online (their first map stream opened) and going
    /// offline (their last one closed), for Tailscale clients' maps.
    presence: tokio::sync::broadcast::Sender<(NodeId, bool)>,
}

/// Presence changes a slow listener may fall behind by before it must
/// start over from [`Streams::online_nodes`].
const PRESENCE_BACKLOG: usize = 1024;

impl Default for Streams {
    fn default() -> Self {
        Streams {
            registry: Mutex::default(),
            presence: tokio::sync::broadcast::channel(PRESENCE_BACKLOG).0,
        }
    }
}

/// An open stream: its queue, and a guard that unregisters it when dropped.
pub struct Subscription {
    /// Lines to send, in order; closed when the coordinator ends the stream.
    pub receiver: mpsc::Receiver<Line>,
    /// Unregisters on drop.
    pub guard: StreamGuard,
}

/// Unregisters a stream when the connection goes away.
pub struct StreamGuard {
    streams: Arc<Streams>,
    kind: Kind,
    node: NodeId,
    id: u64,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut registry = self.streams.lock();
        if let Some(list) = registry.subscribers.get_mut(&(self.kind, self.node)) {
            list.retain(|subscriber| subscriber.id != self.id);
        }
        if self.kind == Kind::Map {
            let activity = registry.activity.entry(self.node).or_default();
            let was_online = activity.open_maps > 0;
            activity.open_maps = activity.open_maps.saturating_sub(1);
            activity.last_seen = Some(hearth_runtime::clock::unix_seconds());
            if was_online && activity.open_maps == 0 {
                let _ = self.streams.presence.send((self.node, false));
            }
        }
    }
}

impl Registry {
    /// `peers` split into those connected now and the rest.
    fn presence_of(&self, peers: &[NodeId]) -> (Vec<NodeId>, Vec<NodeId>) {
        peers.iter().partition(|peer| {
            self.activity
                .get(peer)
                .is_some_and(|activity| activity.open_maps > 0)
        })
    }
}

impl Streams {
    /// `peers` split into those connected now and the rest.
    pub fn presence_of(&self, peers: &[NodeId]) -> (Vec<NodeId>, Vec<NodeId>) {
        self.lock().presence_of(peers)
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding this lock cannot leave the registry inconsistent
        // in a way that matters more than losing every stream, so recover.
        hearth_runtime::lock(&self.registry)
    }

    fn subscribe(
        self: &Arc<Self>,
        kind: Kind,
        node: NodeId,
        first: Line,
        peers: &[NodeId],
    ) -> Subscription {
        let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
        sender
            .try_send(first)
            .expect("a new channel has room for one message");
        let mut registry = self.lock();
        if kind == Kind::Map {
            // Who of its peers is connected, read under the lock that every
            // presence change is announced under: a change after this line
            // reaches the stream after it.
            let (online, offline) = registry.presence_of(peers);
            let presence = MapMessage::Delta {
                changes: vec![hearth_control::wire::MapChange::Presence { online, offline }],
            };
            sender
                .try_send(Line::whole(encode_line(&presence)))
                .expect("a new channel has room for two messages");
        }
        registry.next_id += 1;
        let id = registry.next_id;
        let list = registry.subscribers.entry((kind, node)).or_default();
        if kind == Kind::Map && list.len() >= MAX_MAP_STREAMS_PER_NODE {
            // Dropping its sender ends the oldest stream.
            list.remove(0);
        }
        list.push(Subscriber { id, sender });
        if kind == Kind::Map {
            let activity = registry.activity.entry(node).or_default();
            activity.open_maps += 1;
            activity.last_seen = Some(hearth_runtime::clock::unix_seconds());
            if activity.open_maps == 1 {
                let _ = self.presence.send((node, true));
            }
        }
        Subscription {
            receiver,
            guard: StreamGuard {
                streams: Arc::clone(self),
                kind,
                node,
                id,
            },
        }
    }

    /// Opens a map stream whose first line is `full`, in (in the stream's encoding), then which of `peers` are
    /// connected ([`hearth_control::wire::MapChange::Presence`]).
    pub fn subscribe_map(
        self: &Arc<Self>,
        node: NodeId,
        full: Vec<Bytes>,
        peers: &[NodeId],
    ) -> Subscription {
        self.subscribe(Kind::Map, node, Line::Pieces(full), peers)
    }

    /// Opens an approval stream whose first line is the node's current state.
    pub fn subscribe_approval(self: &Arc<Self>, node: NodeId, state: NodeState) -> Subscription {
        self.subscribe(
            Kind::Approval,
            node,
            Line::whole(encode_line(&ApprovalMessage::State { state })),
            &[],
        )
    }

    /// Queues each delivery for its recipients' map streams. A `Revoked`
    /// message ends the recipient's streams once it is sent.
    pub fn deliver(&self, deliveries: &[Delivery]) {
        let mut registry = self.lock();
        for delivery in deliveries {
            let line = Line::whole(encode_line(&delivery.message));
            let closes = matches!(delivery.message, MapMessage::Revoked { .. });
            for node in &delivery.recipients {
                let key = (Kind::Map, *node);
                let Some(list) = registry.subscribers.get_mut(&key) else {
                    continue;
                };
                list.retain(
                    |subscriber| match subscriber.sender.try_send(line.clone()) {
                        Ok(()) => true,
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            tracing::warn!(node, "map stream fell behind; disconnecting it");
                            false
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => false,
                    },
                );
                if closes {
                    registry.subscribers.remove(&key);
                }
            }
        }
    }

    /// Tells a node's approval streams its new state, then ends them.
    pub fn notify_state(&self, node: NodeId, state: NodeState) {
        let mut registry = self.lock();
        if let Some(list) = registry.subscribers.remove(&(Kind::Approval, node)) {
            let line = Line::whole(encode_line(&ApprovalMessage::State { state }));
            for subscriber in list {
                let _ = subscriber.sender.try_send(line.clone());
            }
        }
    }

    /// Ends every stream of `node`.
    pub fn close_node(&self, node: NodeId) {
        let mut registry = self.lock();
        registry.subscribers.remove(&(Kind::Map, node));
        registry.subscribers.remove(&(Kind::Approval, node));
        if registry
            .activity
            .remove(&node)
            .is_some_and(|activity| activity.open_maps > 0)
        {
            let _ = self.presence.send((node, false));
        }
    }

    /// The nodes with a map stream open now.
    pub fn online_nodes(&self) -> std::collections::BTreeSet<NodeId> {
        self.lock()
            .activity
            .iter()
            .filter(|(_, activity)| activity.open_maps > 0)
            .map(|(node, _)| *node)
            .collect()
    }

    /// Presence changes from now on: `(node, online)`. Subscribe before
    /// reading [`Streams::online_nodes`], so that nothing falls between.
    pub fn presence_changes(&self) -> tokio::sync::broadcast::Receiver<(NodeId, bool)> {
        self.presence.subscribe()
    }

    /// Ends every stream (shutdown).
    pub fn close_all(&self) {
        self.lock().subscribers.clear();
    }

    /// Whether `node` is connected now, or when it last was (since this
    /// process started).
    pub fn presence(&self, node: NodeId) -> Presence {
        let registry = self.lock();
        match registry.activity.get(&node) {
            Some(activity) if activity.open_maps > 0 => Presence::Online,
            Some(Activity {
                last_seen: Some(when),
                ..
            }) => Presence::Seen(*when),
            _ => Presence::Unknown,
        }
    }
}
