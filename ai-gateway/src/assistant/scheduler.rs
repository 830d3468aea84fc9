//! Reminders and scheduled questions: made by members (or the model, for
//! them), kept in the [`JobStore`], fired when due and delivered into the
//! member's conversation or their room. A scheduled question is asked of
//! the model through an [`Answerer`] with the authority of whoever made it,
//! as of when it runs. When to fire and who goes first are
//! `hearth_assistant`'s decisions (`schedule`, `dispatch`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use hearth_assistant::api::{Answer, Delivery, ReminderItem, Target};
use hearth_assistant::dispatch::{Dispatcher, DueJob, Limits as DispatchLimits};
use hearth_assistant::language::Language;
use hearth_assistant::memory::{self, MemoryError};
use hearth_assistant::phrases::{self, Action, Audience, Scheduled};
use hearth_assistant::say;
use hearth_assistant::schedule::{self, Schedule, ScheduleError};
use hearth_assistant::scope::{Asker, Owner};
use jiff::Timestamp;

use super::clock::Clock;
use super::store::{Job, JobStore, StoreError, Unavailable};

/// Most reminders and scheduled questions one member keeps.
pub const MAX_JOBS: i64 = 200;

/// How the scheduler asks the model a question with an asker's authority:
/// the gateway's models, with the grants the mesh gives the asker's device
/// when the question runs. A trait, so the scheduler knows nothing of the
/// gateway (and its tests ask a stand-in).
pub trait Answerer: Send + Sync + 'static {
    /// The model's answer to `question` asked by `asker`, or why there is none.
    fn answer(
        &self,
        asker: Asker,
        question: String,
    ) -> BoxFuture<'static, Result<String, NotAnswered>>;
}

/// Why a scheduled question has no answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotAnswered {
    /// No model answered.
    #[error("no model answered.")]
    NoModel,
    /// The member may not ask it now (the household's policy, their budget).
    #[error("{0}")]
    Refused(String),
}

/// What the scheduler goes by.
#[derive(Clone, Debug)]
pub struct SchedulerSettings {
    /// Whether jobs are made and fired at all (`cron.enabled`).
    pub enabled: bool,
    /// The household's time zone (IANA).
    pub timezone: String,
    /// Whether a recurring job's firings missed while the hub was down are
    /// skipped (else the last one fires once).
    pub skip_missed: bool,
    /// The household's language (when a job's member and text say none).
    pub language: Language,
}

/// Why a reminder or scheduled question was not made.
#[derive(Debug, thiserror::Error)]
pub enum NotScheduled {
    /// Jobs are off on this hub.
    #[error("Reminders are turned off on this hub (cron.enabled).")]
    Off,
    /// The schedule is not one that can be kept.
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    /// A one-off time already past.
    #[error("That time has already passed.")]
    Passed,
    /// The member keeps [`MAX_JOBS`] already.
    #[error("You already have {MAX_JOBS} reminders; cancel some first.")]
    TooMany,
    /// The text is not one that can be kept.
    #[error(transparent)]
    Text(#[from] MemoryError),
    /// The store failed (logged where it failed).
    #[error(transparent)]
    Store(#[from] Unavailable),
}

impl NotScheduled {
    /// Why, as the member is told in `language`.
    pub fn say(&self, language: Language) -> String {
        match self {
            NotScheduled::Off => say::reminders_off(language).into(),
            NotScheduled::Schedule(error) => error.to_string(),
            NotScheduled::Passed => {
                say::phrase_error(language, &hearth_assistant::phrases::PhraseError::Past)
            }
            NotScheduled::TooMany => say::too_many_reminders(language, MAX_JOBS),
            NotScheduled::Text(error) => say::memory_error(language, error),
            NotScheduled::Store(_) => say::unavailable(language).into(),
        }
    }
}

/// The scheduler service.
pub struct Scheduler {
    store: JobStore,
    settings: SchedulerSettings,
    clock: Clock,
    delivered: tokio::sync::Notify,
    changed: tokio::sync::Notify,
}

impl Scheduler {
    /// The scheduler of the jobs in `store`.
    pub fn new(store: JobStore, settings: SchedulerSettings, clock: Clock) -> Scheduler {
        Scheduler {
            store,
            settings,
            clock,
            delivered: tokio::sync::Notify::new(),
            changed: tokio::sync::Notify::new(),
        }
    }

    /// Whether jobs are made and fired.
    pub fn enabled(&self) -> bool {
        self.settings.enabled
    }

    /// Makes `scheduled` for `asker`: what to tell them, in `language`.
    pub async fn create(
        &self,
        asker: &Asker,
        scheduled: Scheduled,
        language: Language,
    ) -> Result<String, NotScheduled> {
        self.schedule(asker, scheduled, language)
            .await
            .map(|(_, said)| said)
    }

    /// Makes `scheduled` for `asker`: the job as stored (with its id) and
    /// what to tell them, in `language` (the language its reminder and
    /// answers are given in too).
    pub async fn schedule(
        &self,
        asker: &Asker,
        scheduled: Scheduled,
        language: Language,
    ) -> Result<(Job, String), NotScheduled> {
        if !self.settings.enabled {
            return Err(NotScheduled::Off);
        }
        let now = self.clock.now();
        scheduled.schedule.check()?;
        let next = scheduled
            .schedule
            .next_after(now)
            .ok_or(NotScheduled::Passed)?;
        if self
            .store
            .job_count(&asker.member)
            .await
            .map_err(|error| error.logged())?
            >= MAX_JOBS
        {
            return Err(NotScheduled::TooMany);
        }
        let (target, to_room) = match (scheduled.audience, asker.owner()) {
            (Audience::Room, Owner::Room(room)) => (Target::Room(room), true),
            (Audience::Room, Owner::Member(member)) => (Target::Member(member), false),
            (Audience::Me, _) => (Target::Member(asker.member.clone()), false),
        };
        let (action, text) = match &scheduled.action {
            Action::Remind(text) => ("remind", text.clone()),
            Action::Ask(text) => ("ask", text.clone()),
        };
        let text = memory::check(&text)?;
        let mut job = Job {
            id: 0,
            member: asker.member.clone(),
            // Kept with the language it was asked in, which its reminder
            // and answers are given in.
            asker: serde_json::to_string(&Asker {
                language: asker
                    .language
                    .clone()
                    .or_else(|| Some(language.tag().to_owned())),
                ..asker.clone()
            })
            .expect("an asker serializes"),
            target: target_key(&target),
            schedule: serde_json::to_string(&scheduled.schedule).expect("a schedule serializes"),
            action: action.into(),
            text: text.clone(),
            next_at: next.as_millisecond(),
        };
        job.id = self
            .store
            .schedule(&job, now.as_millisecond())
            .await
            .map_err(|error| error.logged())?;
        self.changed.notify_one();
        let when = phrases::describe(&scheduled.schedule, &self.settings.timezone, language);
        let recurs = scheduled.schedule.recurs();
        let said = match action {
            "remind" => say::reminder_made(language, to_room, &when, recurs, &text),
            _ => say::question_made(language, &when, recurs, &text),
        };
        Ok((job, said))
    }

    /// `member`'s jobs, as the assistant API lists them (times said in
    /// `language`).
    pub async fn reminders(
        &self,
        member: &str,
        language: Language,
    ) -> Result<Vec<ReminderItem>, StoreError> {
        let jobs = self.store.jobs_of(member).await?;
        Ok(jobs
            .into_iter()
            .map(|job| {
                let schedule: Option<Schedule> = serde_json::from_str(&job.schedule).ok();
                ReminderItem {
                    id: job.id,
                    text: job.text,
                    when: schedule.as_ref().map_or_else(
                        || "at an unreadable time".into(),
                        |schedule| phrases::describe(schedule, &self.settings.timezone, language),
                    ),
                    next: Timestamp::from_millisecond(job.next_at)
                        .ok()
                        .map(|at| at.to_string()),
                    target: target_of(&job.target)
                        .unwrap_or_else(|| Target::Member(job.member.clone())),
                }
            })
            .collect())
    }

    /// The household's time zone (cron expressions without one are read in it).
    pub fn timezone(&self) -> &str {
        &self.settings.timezone
    }

    /// `member`'s jobs as stored (schedule and action included).
    pub async fn jobs(&self, member: &str) -> Result<Vec<Job>, StoreError> {
        self.store.jobs_of(member).await
    }

    /// Cancels `member`'s job `id`; whether there was one.
    pub async fn cancel(&self, member: &str, id: i64) -> Result<bool, StoreError> {
        let cancelled = self.store.cancel(member, id).await?;
        if cancelled {
            self.changed.notify_one();
        }
        Ok(cancelled)
    }

    /// Runs `member`'s job `id` now (its schedule goes on from there);
    /// whether it is theirs.
    pub async fn run_now(&self, member: &str, id: i64) -> Result<bool, StoreError> {
        let due = self
            .store
            .due_now(member, id, self.clock.now().as_millisecond())
            .await?;
        if due {
            self.changed.notify_one();
        }
        Ok(due)
    }

    /// The deliveries after `after`, waiting up to `wait` for one.
    pub async fn deliveries(&self, after: i64, wait: Duration) -> Answer {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.delivered.notified();
            match self.store.deliveries(after).await {
                Ok(found) if !found.is_empty() => {
                    return Answer::Deliveries {
                        deliveries: found
                            .into_iter()
                            .filter_map(|(id, target, text)| {
                                Some(Delivery {
                                    id,
                                    target: target_of(&target)?,
                                    text,
                                })
                            })
                            .collect(),
                    };
                }
                Ok(_) => {}
                Err(error) => {
                    return Answer::Refused {
                        message: error.logged().to_string(),
                    };
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Answer::Deliveries {
                    deliveries: Vec::new(),
                };
            }
        }
    }

    /// Fires due jobs as [`Dispatcher`] says, for ever: reminders at once,
    /// scheduled questions in their turn (each in a task of its own, so
    /// none holds up the loop), every member within their budget.
    pub async fn run(self: Arc<Self>, answer: Arc<dyn Answerer>) {
        let dispatcher = Arc::new(std::sync::Mutex::new(Dispatcher::new(
            DispatchLimits::default(),
        )));
        let finished = Arc::new(tokio::sync::Notify::new());
        loop {
            let now = self.clock.now();
            let mut wake_at = None;
            match self.store.due_jobs(now.as_millisecond()).await {
                Ok(jobs) => {
                    let due: Vec<DueJob> = jobs
                        .iter()
                        .map(|job| DueJob {
                            id: job.id,
                            member: job.member.clone(),
                            asks_model: job.action == "ask",
                        })
                        .collect();
                    let plan = hearth_runtime::lock(&dispatcher).plan(&due, now.as_millisecond());
                    wake_at = plan.wake_at;
                    let mut jobs: HashMap<i64, Job> =
                        jobs.into_iter().map(|job| (job.id, job)).collect();
                    for id in plan.fire {
                        let Some(job) = jobs.remove(&id) else {
                            continue;
                        };
                        let asks_model = job.action == "ask";
                        let member = job.member.clone();
                        if asks_model {
                            let (scheduler, answer) = (Arc::clone(&self), Arc::clone(&answer));
                            let (dispatcher, finished) =
                                (Arc::clone(&dispatcher), Arc::clone(&finished));
                            tokio::spawn(async move {
                                scheduler.fire(job, now, answer.as_ref()).await;
                                hearth_runtime::lock(&dispatcher).finished(id, &member, true);
                                finished.notify_one();
                            });
                        } else {
                            self.fire(job, now, answer.as_ref()).await;
                            hearth_runtime::lock(&dispatcher).finished(id, &member, false);
                        }
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "cannot read scheduled jobs")
                }
            }
            let changed = self.changed.notified();
            let turn_ended = finished.notified();
            let mut sleep = self.clock.longest_sleep();
            let now_ms = self.clock.now().as_millisecond();
            let next: Option<i64> = self.store.next_due_after(now_ms).await.unwrap_or_default();
            for at in next.into_iter().chain(wake_at) {
                let until = at.saturating_sub(now_ms).max(0);
                sleep = sleep.min(Duration::from_millis(u64::try_from(until).unwrap_or(0)));
            }
            tokio::select! {
                () = changed => {}
                () = turn_ended => {}
                () = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// Fires `job` at `now`: delivers its reminder, or the answer to its
    /// question, and stores when it is next due (if ever).
    async fn fire(&self, job: Job, now: Timestamp, answer: &dyn Answerer) {
        let Ok(schedule) = serde_json::from_str::<Schedule>(&job.schedule) else {
            tracing::error!(
                job = job.id,
                "a scheduled job cannot be read; it is dropped"
            );
            let _ = self
                .store
                .fired(job.id, None, None, now.as_millisecond())
                .await;
            return;
        };
        let stored = Timestamp::from_millisecond(job.next_at).unwrap_or(now);
        let due = schedule::due(&schedule, stored, now, self.settings.skip_missed);
        let asker: Option<Asker> = serde_json::from_str(&job.asker).ok();
        let language = Language::for_member(
            asker.as_ref().and_then(|asker| asker.language.as_deref()),
            &job.text,
            self.settings.language,
        );
        let text = if !due.fire {
            None
        } else if job.action == "ask" {
            let said = match asker {
                Some(asker) => answer.answer(asker, job.text.clone()).await,
                None => Err(NotAnswered::NoModel),
            };
            Some(said.unwrap_or_else(|why| {
                let why = match why {
                    NotAnswered::NoModel => say::no_model(language).to_owned(),
                    NotAnswered::Refused(why) => why,
                };
                say::question_unanswered(language, &job.text, &why)
            }))
        } else {
            Some(say::reminder(language, &job.text))
        };
        let delivery = text.as_deref().map(|text| (job.target.as_str(), text));
        match self
            .store
            .fired(
                job.id,
                delivery,
                due.next.map(|next| next.as_millisecond()),
                now.as_millisecond(),
            )
            .await
        {
            Ok(()) => {
                tracing::info!(
                    job = job.id,
                    delivered = delivery.is_some(),
                    "a scheduled job came due"
                );
                if delivery.is_some() {
                    self.delivered.notify_waiters();
                }
            }
            Err(error) => {
                tracing::error!(job = job.id, %error, "a scheduled job could not be recorded")
            }
        }
    }
}

/// The stored form of a delivery target.
pub fn target_key(target: &Target) -> String {
    match target {
        Target::Member(name) => Owner::Member(name.clone()).key(),
        Target::Room(name) => Owner::Room(name.clone()).key(),
    }
}

/// A delivery target from its stored form.
pub fn target_of(key: &str) -> Option<Target> {
    match Owner::from_key(key)? {
        Owner::Member(name) => Some(Target::Member(name)),
        Owner::Room(name) => Some(Target::Room(name)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use hearth_assistant::scope::RoomId;

    use super::*;
    use crate::assistant::store::Database;

    /// A stand-in for the gateway's models (named so: the scheduler's
    /// contract is the [`Answerer`] trait): it answers every question with
    /// who asked it, and keeps what it was asked.
    #[derive(Default)]
    struct StandInModel {
        asked: Mutex<Vec<(Asker, String)>>,
    }

    impl Answerer for StandInModel {
        fn answer(
            &self,
            asker: Asker,
            question: String,
        ) -> BoxFuture<'static, Result<String, NotAnswered>> {
            let text = format!("an answer for {}", asker.member);
            hearth_runtime::lock(&self.asked).push((asker, question));
            Box::pin(async move { Ok(text) })
        }
    }

    async fn open_scheduler(dir: &std::path::Path, enabled: bool) -> (Scheduler, JobStore) {
        let store = JobStore::new(Database::open(dir, None).await.expect("the store opens"));
        let settings = SchedulerSettings {
            enabled,
            timezone: "UTC".into(),
            skip_missed: false,
            language: Language::English,
        };
        (
            Scheduler::new(store.clone(), settings, Clock::System),
            store,
        )
    }

    fn ada() -> Asker {
        Asker {
            member: "ada".into(),
            room: Some(RoomId::assistant_dm("ada").expect("ada's DM")),
            ..Asker::default()
        }
    }

    /// A scheduled question is asked, when it is due, of the model with
    /// the authority of the member who made it, and its answer is delivered
    /// to them; before it is due nothing is asked.
    #[tokio::test]
    async fn a_due_question_is_asked_for_its_member_and_the_answer_delivered() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (scheduler, store) = open_scheduler(dir.path(), true).await;
        let at = Timestamp::now() + jiff::SignedDuration::from_mins(5);
        let said = scheduler
            .create(
                &ada(),
                Scheduled {
                    schedule: Schedule::At { at },
                    action: Action::Ask("what is for dinner?".into()),
                    audience: Audience::Me,
                },
                Language::English,
            )
            .await
            .expect("scheduled");
        assert!(said.contains("what is for dinner?"), "{said}");

        let model = StandInModel::default();
        assert!(
            store
                .due_jobs(Timestamp::now().as_millisecond())
                .await
                .expect("read")
                .is_empty(),
            "not due yet"
        );
        let due = store.due_jobs(at.as_millisecond()).await.expect("read");
        assert_eq!(due.len(), 1);
        for job in due {
            scheduler.fire(job, at, &model).await;
        }
        let asked = hearth_runtime::lock(&model.asked).clone();
        // Asked with the language it was made in.
        let made_by = Asker {
            language: Some("en".into()),
            ..ada()
        };
        assert_eq!(asked, [(made_by, "what is for dinner?".to_owned())]);
        let Answer::Deliveries { deliveries } = scheduler.deliveries(0, Duration::ZERO).await
        else {
            panic!("deliveries");
        };
        let delivered: Vec<(Target, String)> = deliveries
            .into_iter()
            .map(|delivery| (delivery.target, delivery.text))
            .collect();
        assert_eq!(
            delivered,
            [(Target::Member("ada".into()), "an answer for ada".to_owned())]
        );
        assert!(
            store
                .due_jobs(at.as_millisecond())
                .await
                .expect("read")
                .is_empty(),
            "a one-off job fires once"
        );
    }

    #[tokio::test]
    async fn a_member_lists_and_cancels_only_their_own_and_nothing_is_made_when_off() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (scheduler, _) = open_scheduler(dir.path(), true).await;
        let at = Timestamp::now() + jiff::SignedDuration::from_hours(1);
        let remind = |text: &str| Scheduled {
            schedule: Schedule::At { at },
            action: Action::Remind(text.into()),
            audience: Audience::Me,
        };
        scheduler
            .create(&ada(), remind("water the plants"), Language::English)
            .await
            .expect("scheduled");
        let listed = scheduler
            .reminders("ada", Language::English)
            .await
            .expect("listed");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].text, "water the plants");
        assert_eq!(listed[0].target, Target::Member("ada".into()));
        assert!(
            scheduler
                .reminders("ben", Language::English)
                .await
                .expect("listed")
                .is_empty()
        );
        assert!(!scheduler.cancel("ben", listed[0].id).await.expect("asked"));
        assert!(scheduler.cancel("ada", listed[0].id).await.expect("asked"));
        assert!(
            scheduler
                .reminders("ada", Language::English)
                .await
                .expect("listed")
                .is_empty()
        );

        let past = Scheduled {
            schedule: Schedule::At {
                at: Timestamp::now() - jiff::SignedDuration::from_hours(1),
            },
            ..remind("too late")
        };
        assert!(matches!(
            scheduler.create(&ada(), past, Language::English).await,
            Err(NotScheduled::Passed)
        ));

        let off_dir = tempfile::tempdir().expect("a temporary directory");
        let (off, _) = open_scheduler(off_dir.path(), false).await;
        assert!(matches!(
            off.create(&ada(), remind("anything"), Language::English)
                .await,
            Err(NotScheduled::Off)
        ));
    }
}
