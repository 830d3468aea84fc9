//! Search by meaning: the hub's embedding model (configured as `search`)
//! embeds each message as it is posted, edited or finished, and each
//! search's question; [`Recent`] ranks. The indexer follows the service's
//! own fan-out ([`crate::hub::Hub`]), so no use case calls it: a message
//! every connection is told of is a message it indexes. When the model
//! does not answer, messages are still found by their words.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hearth_assistant::search::{ModelProfile, Windowed, profile};
use hearth_llm::endpoint::{Api, Endpoint};
use tokio::sync::broadcast::error::RecvError;

use crate::config::SearchConfig;
use crate::protocol::{Message, MessageStatus, ServerEvent};
use crate::recent::{Recent, WINDOW};
use crate::store::Store;

/// How long a question's embedding may take before the search goes by
/// words.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a batch of messages' embeddings may take.
const BATCH_TIMEOUT: Duration = Duration::from_secs(120);
/// Messages embedded in one request while catching up.
const BATCH: usize = 16;

/// The embedding model and the recent messages.
pub struct Meaning {
    endpoint: Endpoint,
    model: String,
    profile: ModelProfile,
    recent: Mutex<Recent>,
    /// Whether the model answered last time (its silence is logged once).
    answering: AtomicBool,
}

/// Why the search model's configuration is refused.
#[derive(Debug, thiserror::Error)]
#[error("search.embeddings: {0}")]
pub struct MeaningError(String);

impl Meaning {
    /// The model `config` names (not asked yet).
    pub fn new(config: &SearchConfig) -> Result<Meaning, MeaningError> {
        let endpoint = Endpoint::parse(
            &config.embeddings,
            Api::OpenAiCompletions,
            Duration::from_secs(5),
        )
        .map_err(|error| MeaningError(error.to_string()))?;
        Ok(Meaning {
            endpoint,
            model: config.model.clone(),
            profile: profile(&config.model),
            recent: Mutex::new(Recent::new(WINDOW)),
            answering: AtomicBool::new(true),
        })
    }

    /// The ids of the recent messages `user` may read that best answer
    /// `text`, best first.
    pub async fn search(&self, user: &str, text: &str, limit: usize) -> Vec<i64> {
        let vector = self
            .embed(self.profile.query_prefix, &[text.to_owned()], QUERY_TIMEOUT)
            .await
            .and_then(|mut vectors| vectors.pop());
        // Messages do not fade with age here; the day is for the index's
        // dated items.
        let today = jiff::tz::TimeZone::UTC
            .to_datetime(jiff::Timestamp::now())
            .date();
        self.recent.lock().expect("the index is whole").search(
            user,
            text,
            vector.as_deref(),
            self.profile.scoring,
            limit,
            today,
        )
    }

    /// Follows `store`'s messages from now on: first the newest
    /// [`WINDOW`], then each one the fan-out `events` tells of. Runs until
    /// the fan-out ends.
    pub async fn follow(
        self: Arc<Self>,
        store: &Store,
        mut events: tokio::sync::broadcast::Receiver<Arc<crate::hub::Delivery>>,
    ) {
        self.catch_up(store).await;
        loop {
            match events.recv().await {
                Ok(delivery) => {
                    if let Ok(event) = serde_json::from_str::<ServerEvent>(&delivery.json) {
                        self.apply(event).await;
                    }
                }
                // Fell behind the fan-out: read the store again.
                Err(RecvError::Lagged(_)) => self.catch_up(store).await,
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// Indexes the newest messages, a batch at a time.
    async fn catch_up(&self, store: &Store) {
        let messages = match store.newest(WINDOW).await {
            Ok(messages) => messages,
            Err(error) => {
                tracing::warn!(%error, "cannot read the messages to search by meaning");
                return;
            }
        };
        let messages: Vec<Message> = messages.into_iter().filter(searchable).collect();
        // What is held already, with the same text and its embedding (after
        // falling behind, most of it), is not embedded again.
        let missing: Vec<&Message> = {
            let recent = self.recent.lock().expect("the index is whole");
            messages
                .iter()
                .filter(|message| !recent.holds(message.id, &message.body))
                .collect()
        };
        for batch in missing.chunks(BATCH) {
            let texts: Vec<String> = batch.iter().map(|message| message.body.clone()).collect();
            let vectors = self
                .embed(self.profile.passage_prefix, &texts, BATCH_TIMEOUT)
                .await;
            let mut recent = self.recent.lock().expect("the index is whole");
            for (at, message) in batch.iter().enumerate() {
                let vector = vectors.as_ref().map(|vectors| vectors[at].as_slice());
                recent.insert(message.id, &message.room, &message.body, vector);
            }
        }
        tracing::info!(
            messages = messages.len(),
            embedded = missing.len(),
            "recent messages indexed for search by meaning"
        );
    }

    /// What one event changes.
    async fn apply(&self, event: ServerEvent) {
        let (id, room, body) = match event {
            ServerEvent::Message { message } if searchable(&message) => {
                (message.id, message.room, message.body)
            }
            ServerEvent::Update {
                id,
                status: MessageStatus::Deleted,
                ..
            } => {
                self.recent.lock().expect("the index is whole").remove(id);
                return;
            }
            ServerEvent::Update {
                id,
                room,
                body,
                status: MessageStatus::Sent | MessageStatus::Done | MessageStatus::Interrupted,
                ..
            } => (id, room, body),
            ServerEvent::RoomDeleted { room } => {
                self.recent
                    .lock()
                    .expect("the index is whole")
                    .remove_room(&room);
                return;
            }
            _ => return,
        };
        let vector = self
            .embed(
                self.profile.passage_prefix,
                std::slice::from_ref(&body),
                BATCH_TIMEOUT,
            )
            .await
            .and_then(|mut vectors| vectors.pop());
        self.recent
            .lock()
            .expect("the index is whole")
            .insert(id, &room, &body, vector.as_deref());
    }

    /// Embeddings of `texts` with `prefix` before each (a long one in
    /// windows, pooled), or none when the model does not answer.
    async fn embed(
        &self,
        prefix: &str,
        texts: &[String],
        timeout: Duration,
    ) -> Option<Vec<Vec<f32>>> {
        let windowed = Windowed::of(texts, prefix);
        let vectors = hearth_llm::embed::embed(
            &self.endpoint,
            Api::OpenAiCompletions,
            &self.model,
            &windowed.inputs,
            None,
            timeout,
        )
        .await;
        match vectors {
            Ok(vectors) => {
                if !self.answering.swap(true, Ordering::Relaxed) {
                    tracing::info!("the search model answers again; searching by meaning");
                }
                let vectors: Vec<Vec<f32>> = vectors
                    .into_iter()
                    .map(|vector| vector.into_iter().map(|value| value as f32).collect())
                    .collect();
                windowed.pool(&vectors)
            }
            Err(error) => {
                if self.answering.swap(false, Ordering::Relaxed) {
                    tracing::warn!(%error, "the search model does not answer; searching by words");
                }
                None
            }
        }
    }
}

/// Whether a message is searched by meaning: text that is finished.
fn searchable(message: &Message) -> bool {
    message.attachment.is_none()
        && !message.body.trim().is_empty()
        && matches!(
            message.status,
            MessageStatus::Sent | MessageStatus::Done | MessageStatus::Interrupted
        )
}
