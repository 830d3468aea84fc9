//! What the services' unit tests share.

use hearth_assistant::search::{Query, Scoring};

/// A keyword search for `text` (no embedding), as of a fixed day.
pub fn query(text: &str) -> Query<'_> {
    Query {
        text,
        vector: None,
        today: jiff::civil::date(2026, 11, 26),
        limit: 5,
        min_score: 0.0,
        scoring: Scoring::OPENCLAW,
    }
}
