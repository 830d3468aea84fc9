//! What every reply decoder shares: pulling network chunks, queueing the
//! events they make, and stopping at the first end or error. A wire format
//! ([`Format`]) only turns bytes into events.

use std::collections::VecDeque;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::chat::{BackendError, EventStream, StreamEvent};

/// Events decoded and not yet yielded. Nothing is queued after the end or
/// an error, even from the same network chunk.
#[derive(Default)]
pub(crate) struct Events {
    queue: VecDeque<Result<StreamEvent, BackendError>>,
    ended: bool,
}

impl Events {
    /// Whether the reply has ended (done or failed).
    pub(crate) fn ended(&self) -> bool {
        self.ended
    }

    /// Queues an event of the reply.
    pub(crate) fn push(&mut self, event: StreamEvent) {
        if !self.ended {
            self.queue.push_back(Ok(event));
        }
    }

    /// Queues the last event of the reply.
    pub(crate) fn finish(&mut self, event: StreamEvent) {
        self.push(event);
        self.ended = true;
    }

    /// Ends the reply with `error`.
    pub(crate) fn fail(&mut self, error: BackendError) {
        if !self.ended {
            self.ended = true;
            self.queue.push_back(Err(error));
        }
    }
}

/// A wire format: bytes in, events out.
pub(crate) trait Format: Send + 'static {
    /// Decodes one network chunk.
    fn chunk(&mut self, bytes: &[u8], events: &mut Events);
    /// The bytes ended: decodes what is left. A reply the format has not
    /// ended by then ended early.
    fn end(&mut self, events: &mut Events);
}

/// Decodes `bytes` with `format` into a reply stream.
pub(crate) fn decode<S, E, F>(bytes: S, format: F) -> EventStream
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
    E: std::fmt::Display,
    F: Format,
{
    let state = (bytes, format, Events::default());
    Box::pin(futures_util::stream::unfold(
        state,
        |(mut bytes, mut format, mut events)| async move {
            loop {
                if let Some(item) = events.queue.pop_front() {
                    return Some((item, (bytes, format, events)));
                }
                if events.ended {
                    return None;
                }
                match bytes.next().await {
                    Some(Ok(chunk)) => format.chunk(&chunk, &mut events),
                    Some(Err(error)) => events.fail(BackendError::Transport(error.to_string())),
                    None => {
                        format.end(&mut events);
                        events.fail(BackendError::EndedEarly);
                    }
                }
            }
        },
    ))
}
