//! Live fan-out: every event is serialized once and handed to every
//! connection, which keeps those of rooms its user may see.

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::protocol::ServerEvent;

/// Events a slow connection may fall behind by before it resynchronizes
/// from the store.
const BACKLOG: usize = 4096;

/// One event on its way to the connections.
#[derive(Debug)]
pub struct Delivery {
    /// The room it belongs to.
    pub room: String,
    /// The id of the message it carries, if it is a new message.
    pub message_id: Option<i64>,
    /// The event, serialized.
    pub json: Arc<str>,
}

/// The fan-out.
#[derive(Clone)]
pub struct Hub {
    sender: broadcast::Sender<Arc<Delivery>>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            sender: broadcast::channel(BACKLOG).0,
        }
    }
}

impl Hub {
    /// Sends `event` of `room` to every connection.
    pub fn publish(&self, room: &str, event: &ServerEvent) {
        let message_id = match event {
            ServerEvent::Message { message } => Some(message.id),
            _ => None,
        };
        let json: Arc<str> = serde_json::to_string(event)
            .expect("events serialize")
            .into();
        // No receivers is fine: nobody is connected.
        let _ = self.sender.send(Arc::new(Delivery {
            room: room.to_owned(),
            message_id,
            json,
        }));
    }

    /// A new connection's view of the events.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Delivery>> {
        self.sender.subscribe()
    }
}
