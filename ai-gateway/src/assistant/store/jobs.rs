//! Reminders, scheduled questions and their deliveries: the `jobs` and
//! `deliveries` tables.

use sqlx::Row;

use super::database::{Database, StoreError};

/// Due jobs of one member read at once (the rest wait their turn).
const DUE_PER_MEMBER: i64 = 40;

/// A stored reminder or scheduled question.
#[derive(Clone, Debug)]
pub struct Job {
    /// Its id.
    pub id: i64,
    /// Who made it (and may list and cancel it).
    pub member: String,
    /// Whose authority a scheduled question runs with (JSON of an `Asker`).
    pub asker: String,
    /// Where it is delivered (`member:NAME`, `room:NAME`).
    pub target: String,
    /// When (JSON of a `Schedule`).
    pub schedule: String,
    /// `remind` or `ask`.
    pub action: String,
    /// The reminder's text, or the question.
    pub text: String,
    /// Its next firing, Unix ms.
    pub next_at: i64,
}

/// Where jobs and deliveries are kept.
#[derive(Clone)]
pub struct JobStore {
    db: Database,
}

impl JobStore {
    /// Jobs in `db`.
    pub fn new(db: Database) -> JobStore {
        JobStore { db }
    }

    /// Stores a job; its id.
    pub async fn schedule(&self, job: &Job, at_ms: i64) -> Result<i64, StoreError> {
        let (text, sealed) = self.db.seal("job", &job.member, job.text.as_bytes());
        let id = sqlx::query(
            "INSERT INTO jobs (member, asker, target, schedule, action, text, sealed, next_at, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&job.member)
        .bind(&job.asker)
        .bind(&job.target)
        .bind(&job.schedule)
        .bind(&job.action)
        .bind(text)
        .bind(sealed)
        .bind(job.next_at)
        .bind(at_ms)
        .execute(&self.db.pool)
        .await?
        .last_insert_rowid();
        Ok(id)
    }

    fn job_of(&self, row: &sqlx::sqlite::SqliteRow) -> Result<Job, StoreError> {
        let member: String = row.get("member");
        let text = self
            .db
            .open_text("job", &member, row.get("text"), row.get("sealed"))?;
        Ok(Job {
            id: row.get("id"),
            member,
            asker: row.get("asker"),
            target: row.get("target"),
            schedule: row.get("schedule"),
            action: row.get("action"),
            text,
            next_at: row.get("next_at"),
        })
    }

    /// Jobs due at `now_ms`, earliest first.
    pub async fn due_jobs(&self, now_ms: i64) -> Result<Vec<Job>, StoreError> {
        // At most a few of each member's, so that one member's hundreds of
        // due jobs never hide another's.
        let rows = sqlx::query(
            "SELECT id, member, asker, target, schedule, action, text, sealed, next_at FROM \
             (SELECT *, ROW_NUMBER() OVER (PARTITION BY member ORDER BY next_at, id) AS place \
              FROM jobs WHERE next_at <= ?) \
             WHERE place <= ? ORDER BY next_at, id LIMIT 1000",
        )
        .bind(now_ms)
        .bind(DUE_PER_MEMBER)
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter().map(|row| self.job_of(row)).collect()
    }

    /// When the next job is due after `now_ms` (not counting those due
    /// already), Unix ms.
    pub async fn next_due_after(&self, now_ms: i64) -> Result<Option<i64>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT MIN(next_at) FROM jobs WHERE next_at > ?")
                .bind(now_ms)
                .fetch_one(&self.db.pool)
                .await?,
        )
    }

    /// `member`'s jobs, soonest first.
    pub async fn jobs_of(&self, member: &str) -> Result<Vec<Job>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, member, asker, target, schedule, action, text, sealed, next_at FROM jobs \
             WHERE member = ? ORDER BY next_at, id",
        )
        .bind(member)
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter().map(|row| self.job_of(row)).collect()
    }

    /// How many jobs `member` has.
    pub async fn job_count(&self, member: &str) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE member = ?")
                .bind(member)
                .fetch_one(&self.db.pool)
                .await?,
        )
    }

    /// Cancels job `id` if `member` made it; whether it did.
    pub async fn cancel(&self, member: &str, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM jobs WHERE id = ? AND member = ?")
            .bind(id)
            .bind(member)
            .execute(&self.db.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Makes `member`'s job `id` due at `now_ms` (run now); whether it is theirs.
    pub async fn due_now(&self, member: &str, id: i64, now_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE jobs SET next_at = ? WHERE id = ? AND member = ?")
            .bind(now_ms)
            .bind(id)
            .bind(member)
            .execute(&self.db.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Job `id` fired: its delivery (if any) is queued and its next firing
    /// set (`None`: it is done), together, so a crash neither loses nor
    /// repeats it.
    pub async fn fired(
        &self,
        id: i64,
        delivery: Option<(&str, &str)>,
        next_ms: Option<i64>,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        let mut transaction = self.db.pool.begin().await?;
        if let Some((target, text)) = delivery {
            let (text, sealed) = self.db.seal("delivery", target, text.as_bytes());
            sqlx::query(
                "INSERT INTO deliveries (target, text, sealed, created_at) VALUES (?, ?, ?, ?)",
            )
            .bind(target)
            .bind(text)
            .bind(sealed)
            .bind(at_ms)
            .execute(&mut *transaction)
            .await?;
        }
        match next_ms {
            Some(next) => {
                sqlx::query("UPDATE jobs SET next_at = ? WHERE id = ?")
                    .bind(next)
                    .bind(id)
                    .execute(&mut *transaction)
                    .await?;
            }
            None => {
                sqlx::query("DELETE FROM jobs WHERE id = ?")
                    .bind(id)
                    .execute(&mut *transaction)
                    .await?;
            }
        }
        transaction.commit().await?;
        Ok(())
    }

    /// Deliveries after `after` (those up to it are forgotten first), oldest first.
    pub async fn deliveries(&self, after: i64) -> Result<Vec<(i64, String, String)>, StoreError> {
        sqlx::query("DELETE FROM deliveries WHERE id <= ?")
            .bind(after)
            .execute(&self.db.pool)
            .await?;
        let rows = sqlx::query(
            "SELECT id, target, text, sealed FROM deliveries WHERE id > ? ORDER BY id LIMIT 100",
        )
        .bind(after)
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let target: String = row.get("target");
                let text =
                    self.db
                        .open_text("delivery", &target, row.get("text"), row.get("sealed"))?;
                Ok((row.get("id"), target, text))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fired_job_delivers_and_moves_on_together() {
        let dir = tempfile::tempdir().unwrap();
        let store = JobStore::new(Database::open(dir.path(), None).await.unwrap());
        let job = Job {
            id: 0,
            member: "ada".into(),
            asker: "{}".into(),
            target: "member:ada".into(),
            schedule: "{}".into(),
            action: "remind".into(),
            text: "call Grandma".into(),
            next_at: 1_000,
        };
        let id = store.schedule(&job, 0).await.unwrap();
        assert_eq!(store.due_jobs(999).await.unwrap().len(), 0);
        assert_eq!(store.due_jobs(1_000).await.unwrap()[0].text, "call Grandma");
        assert!(!store.cancel("ben", id).await.unwrap(), "not ben's");
        store
            .fired(
                id,
                Some(("member:ada", "Reminder: call Grandma")),
                None,
                1_000,
            )
            .await
            .unwrap();
        assert_eq!(store.next_due_after(0).await.unwrap(), None);
        let delivered = store.deliveries(0).await.unwrap();
        assert_eq!(delivered.len(), 1);
        assert_eq!(delivered[0].2, "Reminder: call Grandma");
        assert!(store.deliveries(delivered[0].0).await.unwrap().is_empty());
    }
}
