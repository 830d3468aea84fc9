//! Tokens used per day, per caller and model: what budgets are checked
//! against and what `hearth-gateway usage` lists. Counts only, never text.

use serde::{Deserialize, Serialize};
use sqlx::SqlitePool;

/// The UTC day of `unix` seconds, `YYYY-MM-DD`.
pub fn day_of(unix: i64) -> String {
    let timestamp = jiff::Timestamp::from_second(unix).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    jiff::tz::TimeZone::UTC
        .to_datetime(timestamp)
        .date()
        .to_string()
}

/// One row of usage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UsageRow {
    /// The UTC day.
    pub day: String,
    /// Whose: a member, `tag:…` for a tagged device, or `operator`.
    pub who: String,
    /// The model (`provider/model`, or `hearth/assistant`).
    pub model: String,
    /// Replies completed.
    pub requests: u64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Generated tokens.
    pub completion_tokens: u64,
    /// Seconds of speech transcribed.
    #[serde(default)]
    pub audio_seconds: f64,
}

/// What one charge adds to a row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Added {
    /// Replies ended (0 for a prompt charged when the model is asked).
    pub requests: u64,
    /// Prompt tokens; negative to correct an estimate charged before.
    pub prompt_tokens: i64,
    /// Generated tokens.
    pub completion_tokens: u64,
}

/// The usage table (in the session store's database).
#[derive(Clone, Debug)]
pub struct Usage {
    pool: SqlitePool,
}

impl Usage {
    /// Usage kept in `pool` (migrated by the session store).
    pub fn new(pool: SqlitePool) -> Usage {
        Usage { pool }
    }

    /// Tokens `who` used on `day`, prompt and generated.
    pub async fn used(&self, who: &str, day: &str) -> Result<u64, sqlx::Error> {
        let (total,): (i64,) = sqlx::query_as(
            "SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) FROM usage WHERE day = ? AND who = ?",
        )
        .bind(day)
        .bind(who)
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(total).unwrap_or(0))
    }

    /// Milliseconds of audio `who` had transcribed on `day`.
    pub async fn used_audio_ms(&self, who: &str, day: &str) -> Result<u64, sqlx::Error> {
        let (total,): (i64,) = sqlx::query_as(
            "SELECT COALESCE(SUM(audio_ms), 0) FROM usage WHERE day = ? AND who = ?",
        )
        .bind(day)
        .bind(who)
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(total).unwrap_or(0))
    }

    /// Adds one transcription of `audio_ms` to `who`'s `day` with `model`.
    pub async fn record_audio(
        &self,
        day: &str,
        who: &str,
        model: &str,
        audio_ms: u64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO usage (day, who, model, requests, prompt_tokens, completion_tokens, audio_ms) \
             VALUES (?, ?, ?, 1, 0, 0, ?) \
             ON CONFLICT (day, who, model) DO UPDATE SET requests = requests + 1, \
             audio_ms = audio_ms + excluded.audio_ms",
        )
        .bind(day)
        .bind(who)
        .bind(model)
        .bind(i64::try_from(audio_ms).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Adds `added` to `who`'s `day` with `model`. A prompt charged
    /// when the model was asked is corrected at the reply's end by the
    /// model's own count (`prompt_tokens` may be negative then); no count
    /// goes below zero.
    pub async fn record(
        &self,
        day: &str,
        who: &str,
        model: &str,
        added: Added,
    ) -> Result<(), sqlx::Error> {
        let clamp = |count: u64| i64::try_from(count).unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO usage (day, who, model, requests, prompt_tokens, completion_tokens) \
             VALUES (?, ?, ?, ?, MAX(0, ?), ?) \
             ON CONFLICT (day, who, model) DO UPDATE SET requests = requests + excluded.requests, \
             prompt_tokens = MAX(0, prompt_tokens + ?), \
             completion_tokens = completion_tokens + excluded.completion_tokens",
        )
        .bind(day)
        .bind(who)
        .bind(model)
        .bind(clamp(added.requests))
        .bind(added.prompt_tokens)
        .bind(clamp(added.completion_tokens))
        .bind(added.prompt_tokens)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The rows since `since` (a day, inclusive), of `who` only or of
    /// everyone, newest day first.
    pub async fn list(&self, who: Option<&str>, since: &str) -> Result<Vec<UsageRow>, sqlx::Error> {
        let rows: Vec<(String, String, String, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT day, who, model, requests, prompt_tokens, completion_tokens, audio_ms FROM usage \
             WHERE day >= ? AND (? IS NULL OR who = ?) ORDER BY day DESC, who, model",
        )
        .bind(since)
        .bind(who)
        .bind(who)
        .fetch_all(&self.pool)
        .await?;
        let count = |value: i64| u64::try_from(value).unwrap_or(0);
        Ok(rows
            .into_iter()
            .map(
                |(day, who, model, requests, prompt, completion, audio_ms)| UsageRow {
                    day,
                    who,
                    model,
                    requests: count(requests),
                    prompt_tokens: count(prompt),
                    completion_tokens: count(completion),
                    audio_seconds: count(audio_ms) as f64 / 1000.0,
                },
            )
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_dates() {
        assert_eq!(day_of(0), "1970-01-01");
        assert_eq!(day_of(86_399), "1970-01-01");
        assert_eq!(day_of(86_400), "1970-01-02");
    }

    #[tokio::test]
    async fn usage_adds_up_per_day_and_lists_only_whom_asked() {
        let dir = tempfile::tempdir().unwrap();
        let sessions = crate::sessions::Sessions::open(dir.path()).await.unwrap();
        let usage = Usage::new(sessions.pool().clone());
        let reply = |prompt_tokens, completion_tokens| Added {
            requests: 1,
            prompt_tokens,
            completion_tokens,
        };
        usage
            .record("2026-11-26", "ada", "local/tiny", reply(10, 5))
            .await
            .unwrap();
        usage
            .record("2026-11-26", "ada", "local/tiny", reply(1, 2))
            .await
            .unwrap();
        usage
            .record("2026-11-25", "ada", "local/tiny", reply(100, 0))
            .await
            .unwrap();
        usage
            .record("2026-11-26", "ben", "hearth/assistant", reply(7, 0))
            .await
            .unwrap();
        assert_eq!(usage.used("ada", "2026-11-26").await.unwrap(), 18);
        assert_eq!(usage.used("cy", "2026-11-26").await.unwrap(), 0);
        let ada = usage.list(Some("ada"), "2026-11-26").await.unwrap();
        assert_eq!(ada.len(), 1);
        assert_eq!((ada[0].requests, ada[0].prompt_tokens), (2, 11));
        let everyone = usage.list(None, "2026-11-01").await.unwrap();
        assert_eq!(everyone.len(), 3);
        assert_eq!(everyone[2].day, "2026-11-25");
        // A prompt charged when the model was asked (no request yet), then
        // corrected by the model's own count at the end; never below zero.
        let charged = Added {
            requests: 0,
            prompt_tokens: 50,
            completion_tokens: 0,
        };
        usage
            .record("2026-11-27", "cy", "m", charged)
            .await
            .unwrap();
        assert_eq!(usage.used("cy", "2026-11-27").await.unwrap(), 50);
        usage
            .record("2026-11-27", "cy", "m", reply(-20, 4))
            .await
            .unwrap();
        let cy = usage.list(Some("cy"), "2026-11-27").await.unwrap();
        assert_eq!(
            (cy[0].requests, cy[0].prompt_tokens, cy[0].completion_tokens),
            (1, 30, 4)
        );
        usage
            .record("2026-11-27", "cy", "m", reply(-100, 0))
            .await
            .unwrap();
        assert_eq!(usage.used("cy", "2026-11-27").await.unwrap(), 4);
    }
}
