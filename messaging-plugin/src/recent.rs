//! The household's recent messages as a search by meaning sees them: the
//! newest [`WINDOW`] messages' words and embeddings in the assistant's
//! hybrid index (the same scoring as its memory and documents), each with
//! its room, so that a member finds only what they may read. Pure: the
//! embeddings come from [`crate::meaning`].

use std::collections::{BTreeMap, HashMap};

use hearth_assistant::search::{self, Index, Query, Scoring};

use crate::protocol::may_access;

/// How many of the newest messages are searched by meaning (older ones by
/// their words, as before): a household's few months, embedded again in
/// the background when the service starts (vectors are never written to
/// disk, where bodies may be sealed).
pub const WINDOW: usize = 2_000;

/// The recent messages, searchable.
pub struct Recent {
    index: Index<i64>,
    /// Each message's room and what was indexed, by id (ascending: the
    /// first is the oldest).
    rooms: BTreeMap<i64, Held>,
    capacity: usize,
}

/// What is held of one message besides the index's words and vector.
struct Held {
    room: String,
    /// A digest of the text indexed (to tell an edit from the same text).
    text: u64,
    /// Whether the model's embedding came with it.
    embedded: bool,
}

fn digest(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

impl Recent {
    /// Holds at most `capacity` messages, dropping the oldest.
    pub fn new(capacity: usize) -> Recent {
        Recent {
            index: Index::default(),
            rooms: BTreeMap::new(),
            capacity,
        }
    }

    /// How many messages it holds.
    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }

    /// Adds message `id` of `room` (or replaces it: an edit, the
    /// assistant's finished reply) with its text and embedding. A message
    /// older than all it holds when full is left out.
    pub fn insert(&mut self, id: i64, room: &str, text: &str, vector: Option<&[f32]>) {
        if text.trim().is_empty() {
            self.remove(id);
            return;
        }
        let full = self.rooms.len() >= self.capacity;
        let oldest = self.rooms.keys().next().copied();
        if full && !self.rooms.contains_key(&id) && oldest.is_some_and(|oldest| id < oldest) {
            return;
        }
        self.index.insert(id, text, vector, None);
        self.rooms.insert(
            id,
            Held {
                room: room.to_owned(),
                text: digest(text),
                embedded: vector.is_some(),
            },
        );
        while self.rooms.len() > self.capacity {
            let Some((oldest, _)) = self.rooms.pop_first() else {
                break;
            };
            self.index.remove(&oldest);
        }
    }

    /// Whether message `id` is held with this `text` and an embedding (so
    /// catching up need not embed it again).
    pub fn holds(&self, id: i64, text: &str) -> bool {
        self.rooms
            .get(&id)
            .is_some_and(|held| held.embedded && held.text == digest(text))
    }

    /// Removes message `id` (deleted).
    pub fn remove(&mut self, id: i64) {
        if self.rooms.remove(&id).is_some() {
            self.index.remove(&id);
        }
    }

    /// Removes every message of `room` (deleted).
    pub fn remove_room(&mut self, room: &str) {
        let gone: Vec<i64> = self
            .rooms
            .iter()
            .filter(|(_, held)| held.room == room)
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.remove(id);
        }
    }

    /// The ids of the messages `user` may read that best answer `text`
    /// (its embedding `vector`, when the model answered), best first.
    pub fn search(
        &self,
        user: &str,
        text: &str,
        vector: Option<&[f32]>,
        scoring: Scoring,
        limit: usize,
        today: jiff::civil::Date,
    ) -> Vec<i64> {
        let query = Query {
            text,
            vector,
            today,
            limit,
            min_score: search::MIN_SCORE,
            scoring,
        };
        let readable: HashMap<&str, bool> = self
            .rooms
            .values()
            .map(|held| (held.room.as_str(), may_access(user, &held.room)))
            .collect();
        self.index
            .search(&query, |id| {
                self.rooms
                    .get(id)
                    .is_some_and(|held| readable.get(held.room.as_str()) == Some(&true))
            })
            .into_iter()
            .map(|hit| hit.key)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> jiff::civil::Date {
        jiff::civil::date(2026, 11, 28)
    }

    /// Unit vectors along axes: "meaning" made by hand, so that the test
    /// says which message means what.
    fn axis(at: usize) -> Vec<f32> {
        let mut vector = vec![0.0; 4];
        vector[at] = 1.0;
        vector
    }

    #[test]
    fn a_message_is_found_by_meaning_without_sharing_a_word() {
        let mut recent = Recent::new(10);
        recent.insert(
            1,
            "household",
            "the plumber comes on Thursday",
            Some(&axis(0)),
        );
        recent.insert(2, "household", "dinner is at seven", Some(&axis(1)));
        let scoring = Scoring::OPENCLAW;
        let found = recent.search(
            "ada",
            "when is someone fixing the pipes?",
            Some(&axis(0)),
            scoring,
            5,
            today(),
        );
        assert_eq!(found, [1]);
        // Without an embedding of the question: its words alone.
        assert!(
            recent
                .search("ada", "fixing pipes", None, scoring, 5, today())
                .is_empty()
        );
        assert_eq!(
            recent.search("ada", "the plumber", None, scoring, 5, today()),
            [1]
        );
    }

    #[test]
    fn a_member_finds_only_what_they_may_read() {
        let mut recent = Recent::new(10);
        recent.insert(
            1,
            "dm:ben,cleo",
            "the surprise party is on Friday",
            Some(&axis(2)),
        );
        recent.insert(2, "household", "party planning starts soon", Some(&axis(2)));
        let found = |user: &str| {
            recent.search(user, "party", Some(&axis(2)), Scoring::OPENCLAW, 5, today())
        };
        assert_eq!(found("ada"), [2]);
        let mut bens = found("ben");
        bens.sort();
        assert_eq!(bens, [1, 2]);
    }

    #[test]
    fn it_knows_which_messages_it_holds_embedded_with_their_text() {
        let mut recent = Recent::new(10);
        recent.insert(
            1,
            "household",
            "the plumber comes on Thursday",
            Some(&[1.0, 0.0]),
        );
        recent.insert(2, "household", "dinner at seven", None);
        assert!(recent.holds(1, "the plumber comes on Thursday"));
        // An edit since, a message indexed without the model, one never seen:
        // each is embedded again when catching up.
        assert!(!recent.holds(1, "the plumber comes on Friday"));
        assert!(!recent.holds(2, "dinner at seven"));
        assert!(!recent.holds(3, "anything"));
        recent.remove(1);
        assert!(!recent.holds(1, "the plumber comes on Thursday"));
    }

    #[test]
    fn edits_deletions_and_deleted_rooms_change_what_is_found() {
        let mut recent = Recent::new(10);
        recent.insert(1, "garden", "roses are out", Some(&axis(3)));
        recent.insert(2, "household", "roses for grandma", Some(&axis(3)));
        let roses = |recent: &Recent| {
            let mut found = recent.search(
                "ada",
                "roses",
                Some(&axis(3)),
                Scoring::OPENCLAW,
                5,
                today(),
            );
            found.sort();
            found
        };
        assert_eq!(roses(&recent), [1, 2]);
        recent.insert(2, "household", "tulips for grandma", Some(&axis(0)));
        assert_eq!(roses(&recent), [1]);
        recent.remove_room("garden");
        assert!(roses(&recent).is_empty());
        recent.insert(3, "household", "roses again", Some(&axis(3)));
        recent.remove(3);
        assert!(roses(&recent).is_empty());
        recent.insert(4, "household", "   ", Some(&axis(3)));
        assert_eq!(recent.len(), 1);
    }

    #[test]
    fn only_the_newest_are_kept() {
        let mut recent = Recent::new(2);
        for id in 1..=3 {
            recent.insert(id, "household", &format!("note number {id}"), None);
        }
        assert_eq!(recent.len(), 2);
        let mut found = recent.search("ada", "note", None, Scoring::OPENCLAW, 5, today());
        found.sort();
        assert_eq!(found, [2, 3]);
        // An older one than all it holds does not push a newer one out.
        recent.insert(1, "household", "note number 1", None);
        let mut found = recent.search("ada", "note", None, Scoring::OPENCLAW, 5, today());
        found.sort();
        assert_eq!(found, [2, 3]);
    }
}
