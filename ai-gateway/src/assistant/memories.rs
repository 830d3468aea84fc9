//! What the assistant remembers: each owner's entries, searchable in
//! memory and kept in the [`MemoryStore`]. One service, used by the
//! assistant's requests, its tools and the turn's context; what may be
//! remembered and what gives way are `hearth_assistant::memory`'s
//! decisions.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use hearth_assistant::memory::{self, Entry, Layer, MemoryError, Relation, Source};
use hearth_assistant::scope::Owner;
use hearth_assistant::search::{Index, Query};
use hearth_llm::Message;
use jiff::Timestamp;

use super::embedder::Embedder;
use super::store::{MemoryStore, StoreError, Unavailable};

/// What remembering did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Remembered {
    /// A new entry, this one.
    New(i64),
    /// A new entry, kept beside the owner's entries about the same person
    /// or thing (`memory::Relation::Beside`), which the member is shown so
    /// that nothing is lost or doubled silently.
    Beside {
        /// The new entry.
        id: i64,
        /// What the entries kept beside it say, newest first (at most 3).
        kept: Vec<String>,
    },
    /// The owner's entry of that layer already said it (the same fact,
    /// `memory::same_fact`): kept as it was, nothing stored twice.
    Already(i64),
    /// The owner's entry of that layer about the same thing
    /// (`memory::updates`) was replaced by this one.
    Updated {
        /// The new entry.
        id: i64,
        /// What the replaced entry said.
        was: String,
    },
}

impl Remembered {
    /// The entry's id.
    pub fn id(&self) -> i64 {
        match self {
            Remembered::New(id)
            | Remembered::Already(id)
            | Remembered::Beside { id, .. }
            | Remembered::Updated { id, .. } => *id,
        }
    }
}

/// Why an entry was not remembered.
#[derive(Debug, thiserror::Error)]
pub enum NotRemembered {
    /// The text, or the owner's memory, does not allow it.
    #[error(transparent)]
    Refused(#[from] MemoryError),
    /// The store failed (logged where it failed; nothing stored is said).
    #[error(transparent)]
    Store(#[from] Unavailable),
}

/// What is remembered, searchable: the entries themselves (opened from
/// the store at start) and their index.
struct MemoryIndex {
    index: Index<i64>,
    entries: HashMap<i64, Entry>,
}

/// The memory service.
pub struct Memories {
    store: MemoryStore,
    embedder: Arc<Embedder>,
    index: RwLock<MemoryIndex>,
    /// Held while an entry is written (see [`memory::making_room`]).
    writes: tokio::sync::Mutex<()>,
}

impl Memories {
    /// Loads every entry of `store` into the search index.
    pub async fn load(store: MemoryStore, embedder: Arc<Embedder>) -> Result<Memories, StoreError> {
        let mut loaded = MemoryIndex {
            index: Index::default(),
            entries: HashMap::new(),
        };
        store
            .each_memory(false, |entry, vector| {
                loaded.index.insert(
                    entry.id,
                    &entry.text,
                    vector.as_deref(),
                    entry.layer.dated(),
                );
                loaded.entries.insert(entry.id, entry);
            })
            .await?;
        loaded.index.shrink_to_fit();
        loaded.entries.shrink_to_fit();
        Ok(Memories {
            store,
            embedder,
            index: RwLock::new(loaded),
            writes: tokio::sync::Mutex::new(()),
        })
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        hearth_runtime::read(&self.index).entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Remembers `text` for `owner` at `now`, unless the owner's entry of
    /// that layer already says it. At the owner's limit the oldest entries
    /// give way as [`memory::making_room`] decides.
    pub async fn remember(
        &self,
        owner: &Owner,
        layer: Layer,
        text: &str,
        source: Source,
        now: Timestamp,
    ) -> Result<Remembered, NotRemembered> {
        let text = memory::check(text)?;
        // Embedded before the writes' turn: a slow model holds up no one.
        let vector = self.embedder.embed_passage(&text).await;
        // One write at a time: two writers must not both see room for one,
        // nor both store the same fact.
        let _writing = self.writes.lock().await;
        let (kept, already, replaced, beside) = {
            let index = hearth_runtime::read(&self.index);
            // One pass over the owner's entries, the new one read once:
            // an owner may keep thousands.
            let fact = memory::NewFact::read(&text);
            let mut kept: Vec<(Layer, i64)> = Vec::new();
            let mut related: Vec<(Relation, &Entry)> = Vec::new();
            for entry in index.entries.values().filter(|entry| entry.owner == *owner) {
                kept.push((entry.layer, entry.id));
                if entry.layer == layer {
                    let relation = fact.relation_to(&entry.text);
                    if relation != Relation::Unrelated {
                        related.push((relation, entry));
                    }
                }
            }
            related.sort_by_key(|(_, entry)| std::cmp::Reverse(entry.id));
            let newest = |wanted: Relation| {
                related
                    .iter()
                    .filter(move |(relation, _)| *relation == wanted)
                    .map(|(_, entry)| *entry)
            };
            let already = newest(Relation::Same).next().map(|entry| entry.id);
            // The newest entry of the same attribute, if several were kept.
            let replaced = newest(Relation::Replaces)
                .next()
                .map(|entry| (entry.id, entry.text.clone()));
            let beside: Vec<String> = newest(Relation::Beside)
                .take(3)
                .map(|entry| entry.text.clone())
                .collect();
            (kept, already, replaced, beside)
        };
        if let Some(id) = already {
            return Ok(Remembered::Already(id));
        }
        let replacing = replaced.as_ref().map(|(old, _)| *old);
        // A replacement takes its entry's place: room is made only for a new one.
        if replacing.is_none() {
            for id in memory::making_room(&kept, memory::MAX_ENTRIES)? {
                self.store
                    .forget(owner, id)
                    .await
                    .map_err(|error| error.logged())?;
                self.unindex(id);
            }
        }
        let id = self
            .store
            .remember(
                replacing,
                owner,
                &layer,
                &text,
                vector.as_deref(),
                source,
                now.as_millisecond(),
            )
            .await
            .map_err(|error| error.logged())?;
        if let Some(old) = replacing {
            self.unindex(old);
        }
        let mut index = hearth_runtime::write(&self.index);
        index
            .index
            .insert(id, &text, vector.as_deref(), layer.dated());
        index.entries.insert(
            id,
            Entry {
                id,
                owner: owner.clone(),
                layer,
                text,
                written_at: now,
                source,
            },
        );
        Ok(match replaced {
            Some((_, was)) => Remembered::Updated { id, was },
            None if !beside.is_empty() => Remembered::Beside { id, kept: beside },
            None => Remembered::New(id),
        })
    }

    /// The texts of `owner`'s entries that best answer `query`, best first.
    pub fn recall(&self, owner: &Owner, query: &Query<'_>) -> Vec<String> {
        let index = hearth_runtime::read(&self.index);
        index
            .index
            .search(query, |id| {
                index
                    .entries
                    .get(id)
                    .is_some_and(|entry| entry.owner == *owner)
            })
            .into_iter()
            .filter_map(|hit| Some(index.entries.get(&hit.key)?.text.clone()))
            .collect()
    }

    /// `owner`'s entries, oldest first.
    pub fn entries_of(&self, owner: &Owner) -> Vec<Entry> {
        let index = hearth_runtime::read(&self.index);
        let mut entries: Vec<Entry> = index
            .entries
            .values()
            .filter(|entry| entry.owner == *owner)
            .cloned()
            .collect();
        entries.sort_by_key(|entry| entry.id);
        entries
    }

    /// Forgets entry `id` if `owner` owns it; whether it did.
    pub async fn forget(&self, owner: &Owner, id: i64) -> Result<bool, StoreError> {
        let forgotten = self.store.forget(owner, id).await?;
        if forgotten {
            self.unindex(id);
        }
        Ok(forgotten)
    }

    fn unindex(&self, id: i64) {
        let mut index = hearth_runtime::write(&self.index);
        index.index.remove(&id);
        index.entries.remove(&id);
    }

    /// Embeds the entries stored without an embedding (written while the
    /// embedding model was down, or before it was configured or changed).
    pub async fn embed_missing(&self) {
        if self.embedder.model().is_none() {
            return;
        }
        let mut unembedded = Vec::new();
        if self
            .store
            .each_memory(true, |entry, _| unembedded.push(entry))
            .await
            .is_err()
        {
            return;
        }
        for entry in unembedded {
            let Some(vector) = self.embedder.embed_passage(&entry.text).await else {
                return;
            };
            if self
                .store
                .set_memory_vector(entry.id, &entry.owner, &vector)
                .await
                .is_err()
            {
                return;
            }
            let mut index = hearth_runtime::write(&self.index);
            if index.entries.contains_key(&entry.id) {
                index
                    .index
                    .insert(entry.id, &entry.text, Some(&vector), entry.layer.dated());
            }
        }
    }

    /// Writes the turns of `session` that no longer fit the model's context
    /// (messages `through..dropped` of `history`) into `owner`'s note of
    /// `today`, once.
    pub async fn note_trimmed(
        &self,
        owner: &Owner,
        session: &str,
        history: &[Message],
        dropped: usize,
        today: jiff::civil::Date,
        now: Timestamp,
    ) {
        let Ok(through) = self.store.trimmed_through(session).await else {
            return;
        };
        let through = usize::try_from(through).unwrap_or(0);
        if dropped <= through || dropped > history.len() {
            return;
        }
        let mut turns = Vec::new();
        let mut question: Option<&str> = None;
        for message in &history[through..dropped] {
            match message.role.as_str() {
                "user" => question = Some(&message.content),
                "assistant" => {
                    if let Some(asked) = question.take() {
                        turns.push((asked.to_owned(), message.content.clone()));
                    }
                }
                _ => {}
            }
        }
        if let Some(note) = memory::trimmed_note(&turns) {
            let _ = self
                .remember(owner, Layer::Daily(today), &note, Source::Trimmed, now)
                .await;
        }
        let _ = self
            .store
            .set_trimmed(session, i64::try_from(dropped).unwrap_or(i64::MAX))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assistant::store::Database;
    use crate::assistant::testing::query;

    async fn memories(dir: &std::path::Path) -> Memories {
        let db = Database::open(dir, None).await.unwrap();
        Memories::load(MemoryStore::new(db), Arc::new(Embedder::none()))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn an_entry_is_recalled_for_its_owner_only_and_kept_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let ada = Owner::Member("ada".into());
        let ben = Owner::Member("ben".into());
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        {
            let memories = memories(dir.path()).await;
            memories
                .remember(
                    &ada,
                    Layer::LongTerm,
                    "the spare key is under the blue pot",
                    Source::Asked,
                    now,
                )
                .await
                .unwrap();
            assert_eq!(
                memories.recall(&ada, &query("where is the spare key")),
                ["the spare key is under the blue pot"]
            );
            assert!(
                memories
                    .recall(&ben, &query("where is the spare key"))
                    .is_empty()
            );
        }
        let reopened = memories(dir.path()).await;
        assert_eq!(reopened.len(), 1);
        assert_eq!(
            reopened.entries_of(&ada)[0].text,
            "the spare key is under the blue pot"
        );
    }

    #[tokio::test]
    async fn only_the_owner_forgets_and_a_forgotten_entry_is_not_recalled() {
        let dir = tempfile::tempdir().unwrap();
        let memories = memories(dir.path()).await;
        let ada = Owner::Member("ada".into());
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let id = memories
            .remember(
                &ada,
                Layer::LongTerm,
                "ada likes green tea",
                Source::Asked,
                now,
            )
            .await
            .unwrap()
            .id();
        assert!(
            !memories
                .forget(&Owner::Member("ben".into()), id)
                .await
                .unwrap()
        );
        assert_eq!(memories.recall(&ada, &query("green tea")).len(), 1);
        assert!(memories.forget(&ada, id).await.unwrap());
        assert!(memories.recall(&ada, &query("green tea")).is_empty());
        assert!(memories.entries_of(&ada).is_empty());
    }

    #[tokio::test]
    async fn a_fact_remembered_twice_is_kept_once_per_owner_and_layer() {
        let dir = tempfile::tempdir().unwrap();
        let memories = memories(dir.path()).await;
        let ada = Owner::Member("ada".into());
        let ben = Owner::Member("ben".into());
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let remember = |owner: &Owner, layer: Layer, text: &'static str| {
            let owner = owner.clone();
            let memories = &memories;
            async move {
                memories
                    .remember(&owner, layer, text, Source::Asked, now)
                    .await
                    .unwrap()
            }
        };
        let first = remember(&ada, Layer::LongTerm, "The bike lock code is 4711.").await;
        assert!(matches!(first, Remembered::New(_)));
        assert_eq!(
            remember(&ada, Layer::LongTerm, "the bike lock code is  4711").await,
            Remembered::Already(first.id())
        );
        // Someone else's, another layer's, and another fact are their own.
        assert!(matches!(
            remember(&ben, Layer::LongTerm, "the bike lock code is 4711").await,
            Remembered::New(_)
        ));
        let today = Layer::Daily(jiff::civil::date(2027, 1, 15));
        assert!(matches!(
            remember(&ada, today, "the bike lock code is 4711").await,
            Remembered::New(_)
        ));
        assert!(matches!(
            remember(&ada, Layer::LongTerm, "the gate code is 2580").await,
            Remembered::New(_)
        ));
        assert_eq!(memories.entries_of(&ada).len(), 3);
        let reopened = self::memories(dir.path()).await;
        assert_eq!(reopened.len(), 4, "nothing stored twice");
    }

    #[tokio::test]
    async fn a_new_value_for_the_same_thing_replaces_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        let memories = memories(dir.path()).await;
        let ada = Owner::Member("ada".into());
        let ben = Owner::Member("ben".into());
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        for (owner, text) in [
            (&ada, "The wifi password is tulip-42."),
            (&ada, "the gate code is 2580"),
            (&ben, "the wifi password is daisy-1"),
        ] {
            memories
                .remember(owner, Layer::LongTerm, text, Source::Asked, now)
                .await
                .unwrap();
        }
        let updated = memories
            .remember(
                &ada,
                Layer::LongTerm,
                "the wifi password is rose-7",
                Source::Asked,
                now,
            )
            .await
            .unwrap();
        assert!(
            matches!(&updated, Remembered::Updated { was, .. } if was == "The wifi password is tulip-42."),
            "{updated:?}"
        );
        let texts = |memories: &Memories, owner: &Owner| -> Vec<String> {
            memories
                .entries_of(owner)
                .into_iter()
                .map(|entry| entry.text)
                .collect()
        };
        assert_eq!(
            texts(&memories, &ada),
            ["the gate code is 2580", "the wifi password is rose-7"]
        );
        let recalled = memories.recall(&ada, &query("wifi password"));
        assert!(
            !recalled.iter().any(|text| text.contains("tulip")),
            "{recalled:?}"
        );
        // Ben's is his own; after a restart the old value stays gone.
        let reopened = self::memories(dir.path()).await;
        assert_eq!(
            texts(&reopened, &ada),
            ["the gate code is 2580", "the wifi password is rose-7"]
        );
        assert_eq!(texts(&reopened, &ben), ["the wifi password is daisy-1"]);
    }

    /// Attack (hardening round five, finding 5): "Ben is at soccer
    /// practice until 5" replaced "Ben is allergic to peanuts" and recall
    /// lost the allergy; three facts about the car collapsed into the last.
    /// Now each is kept, the member is shown what else is kept, and recall
    /// still finds the allergy.
    #[tokio::test]
    async fn a_new_fact_about_someone_keeps_the_allergy() {
        let dir = tempfile::tempdir().unwrap();
        let memories = memories(dir.path()).await;
        let ada = Owner::Member("ada".into());
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let remember = |text: &'static str| {
            let ada = ada.clone();
            let memories = &memories;
            async move {
                memories
                    .remember(&ada, Layer::LongTerm, text, Source::Asked, now)
                    .await
                    .unwrap()
            }
        };
        assert!(matches!(
            remember("Ben is allergic to peanuts").await,
            Remembered::New(_)
        ));
        let practice = remember("Ben is at soccer practice until 5").await;
        assert!(
            matches!(&practice, Remembered::Beside { kept, .. } if kept == &["Ben is allergic to peanuts"]),
            "{practice:?}"
        );
        for text in [
            "the car is in the garage",
            "the car is due for a service in May",
            "the car is blue",
            "벤은 땅콩 알레르기가 있어",
            "벤은 5시까지 축구 연습이야",
        ] {
            assert!(
                !matches!(remember(text).await, Remembered::Updated { .. }),
                "{text}"
            );
        }
        assert_eq!(memories.entries_of(&ada).len(), 7, "nothing replaced");
        let recalled = memories.recall(&ada, &query("is ben allergic to anything"));
        assert!(
            recalled.iter().any(|text| text.contains("peanuts")),
            "{recalled:?}"
        );
        // An attribute's new value still replaces the old one.
        remember("Ben's bike code is 4711").await;
        assert!(matches!(
            remember("ben's bike code is 2580").await,
            Remembered::Updated { .. }
        ));
    }

    #[tokio::test]
    async fn an_empty_text_is_refused_and_nothing_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let memories = memories(dir.path()).await;
        let ada = Owner::Member("ada".into());
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let refused = memories
            .remember(&ada, Layer::LongTerm, "   ", Source::Asked, now)
            .await;
        assert!(matches!(
            refused,
            Err(NotRemembered::Refused(MemoryError::Empty))
        ));
        assert!(memories.is_empty());
    }

    #[tokio::test]
    async fn trimmed_turns_are_noted_once() {
        let dir = tempfile::tempdir().unwrap();
        let memories = memories(dir.path()).await;
        let ada = Owner::Member("ada".into());
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let today = jiff::civil::date(2026, 11, 26);
        let history = [
            Message::new("user", "what is the wifi password"),
            Message::new("assistant", "it is on the router's label"),
        ];
        for _ in 0..2 {
            memories
                .note_trimmed(&ada, "session-1", &history, 2, today, now)
                .await;
        }
        let entries = memories.entries_of(&ada);
        assert_eq!(entries.len(), 1, "noted once");
        assert_eq!(entries[0].layer, Layer::Daily(today));
        assert!(entries[0].text.contains("wifi password"));
    }
}
