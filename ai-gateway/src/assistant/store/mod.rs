//! The assistant's SQLite file (`DATA_DIR/assistant.db`, 0600): memory,
//! reminders, deliveries, lists, the document index. What members said or
//! wrote is sealed with the at-rest key when one is configured, each value
//! bound to its owner so a row moved to another member's place does not
//! open. The schema is `migrations/assistant/`.

mod database;
pub mod documents;
pub mod jobs;
pub mod lists;
pub mod memory;

pub use database::{Database, StoreError, Unavailable, vector_bytes, vector_of};
pub use documents::{DocumentStore, KnownDocument, NewPassage, StoredPassage};
pub use jobs::{Job, JobStore};
pub use lists::ListStore;
pub use memory::MemoryStore;
