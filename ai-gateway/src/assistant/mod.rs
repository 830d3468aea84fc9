//! The household assistant in the gateway (docs/assistant.md): memory,
//! reminders and scheduled questions, household documents, shared lists and
//! the tools the model calls for them, all kept on the hub. The decisions
//! are `hearth-assistant`'s (pure); this is the shell that keeps the state
//! ([`store`], sealed at rest), searches it, runs the tools, fires what is
//! scheduled and indexes the document folders ([`library`]).
//!
//! Every turn acts for one [`Asker`] (a member, in a room or their own
//! conversation), established by the gateway from the mesh or from
//! household messaging, never from what the model or a document says; see
//! `hearth_assistant::scope` for whose memory and documents that opens.
//! Nothing of what is remembered, scheduled or read is logged.

pub mod clock;
pub mod library;
pub mod store;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::future::BoxFuture;
use hearth_assistant::api::{
    Answer, Delivery, DocumentItem, MemoryItem, Op, RefusedDocument, ReminderItem, Target,
};
use hearth_assistant::memory::{self, Entry, Layer, Source};
use hearth_assistant::phrases::{self, Action, Audience, Intent, Scheduled};
use hearth_assistant::schedule::{self, Schedule};
use hearth_assistant::scope::{Access, Asker, Folder, Owner};
use hearth_assistant::search::{Index, Query};
use hearth_assistant::tools::{self, Call, Toolset};
use hearth_assistant::{arithmetic, lists};
use hearth_llm::{Message, ModelRef, Router};
use jiff::Timestamp;

use crate::config::{AssistantSection, Citations};
use clock::Clock;
use hearth_assistant::dispatch::{Dispatcher, DueJob, Limits as DispatchLimits};
use library::{Library, PassageInfo};
use store::{Job, KnownDocument, Store, StoreError};

/// Most reminders and scheduled questions one member keeps.
pub const MAX_JOBS: i64 = 200;
/// Memory entries recalled into a conversation without being asked for.
const RECALLED: usize = 3;
/// Document passages given to a conversation without being asked for.
const PASSAGES: usize = 3;

/// What the assistant said back to a request it carried out itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Said {
    /// The tool it ran, if any (the chat shows it).
    pub tool: Option<&'static str>,
    /// The reply.
    pub text: String,
}

/// What a turn is given besides the conversation.
#[derive(Clone, Debug, Default)]
pub struct TurnContext {
    /// A system message: the date, what is remembered here, the document
    /// passages that bear on the question.
    pub system: Option<String>,
    /// How to cite the passages given.
    pub citations: Vec<String>,
}

/// How the scheduler asks the model a question with an asker's authority:
/// the gateway's models, with the grants the mesh gives the asker's device
/// when the question runs. A trait, so the scheduler knows nothing of the
/// gateway (and its tests ask a stand-in).
pub trait Answerer: Send + Sync + 'static {
    /// The model's answer to `question` asked by `asker`; `None` when no
    /// model answered.
    fn answer(&self, asker: Asker, question: String) -> BoxFuture<'static, Option<String>>;
}

/// What is remembered, searchable: the entries themselves (opened from
/// the store at start) and their index.
struct MemoryIndex {
    index: Index<i64>,
    entries: HashMap<i64, Entry>,
}

/// The assistant.
pub struct Assistant {
    settings: AssistantSection,
    store: Store,
    memory: RwLock<MemoryIndex>,
    library: RwLock<Library>,
    folders: Vec<(crate::config::DocumentFolder, Folder)>,
    embeddings: Option<ModelRef>,
    router: Arc<Router>,
    clock: Clock,
    program: PathBuf,
    delivered: tokio::sync::Notify,
    jobs_changed: tokio::sync::Notify,
    /// Held while an entry is written (see [`memory::making_room`]).
    memory_writes: tokio::sync::Mutex<()>,
}

impl Assistant {
    /// Opens the assistant's state in `data_dir` (sealed with the
    /// configured key), with `router` for embeddings and `program` (this
    /// gateway's executable) to read PDFs with.
    pub async fn start(
        settings: AssistantSection,
        router: Arc<Router>,
        data_dir: &Path,
        program: PathBuf,
    ) -> anyhow::Result<Arc<Assistant>> {
        use anyhow::Context as _;
        let key = match &settings.encryption_key_file {
            Some(path) => Some(
                hearth_files::sealed::AtRestKey::load(path)
                    .context("cannot load hearth.assistant.encryptionKeyFile")?,
            ),
            None => None,
        };
        let store = Store::open(data_dir, key)
            .await
            .context("cannot open the assistant's memory")?;
        let embeddings = match &settings.embeddings {
            Some(text) => Some(ModelRef::parse(text).context("memory.search.provider/model")?),
            None => None,
        };
        if let Some(model) = &embeddings
            && store.embedding_model(&model.to_string()).await?
        {
            tracing::info!(model = %model, "a new embedding model: memory and documents are embedded again");
        }
        let mut memory = MemoryIndex {
            index: Index::default(),
            entries: HashMap::new(),
        };
        store
            .each_memory(false, |entry, vector| {
                memory.index.insert(
                    entry.id,
                    &entry.text,
                    vector.as_deref(),
                    entry.layer.dated(),
                );
                memory.entries.insert(entry.id, entry);
            })
            .await?;
        let mut library = Library::default();
        store.passages(|passage| library.add(passage)).await?;
        memory.index.shrink_to_fit();
        memory.entries.shrink_to_fit();
        library.shrink_to_fit();
        release_freed_memory();
        let folders = settings
            .folders
            .iter()
            .map(|folder| {
                let access = match (&folder.room, &folder.member, folder.granted) {
                    (Some(room), _, _) => Access::Room(room.clone()),
                    (_, Some(member), _) => Access::Member(member.clone()),
                    (_, _, true) => Access::Granted,
                    _ => Access::Household,
                };
                (
                    folder.clone(),
                    Folder {
                        name: folder.name.clone(),
                        access,
                    },
                )
            })
            .collect();
        tracing::info!(
            memories = memory.entries.len(),
            passages = library.len(),
            embeddings = embeddings.is_some(),
            "the assistant's state is loaded"
        );
        Ok(Arc::new(Assistant {
            settings,
            store,
            memory: RwLock::new(memory),
            library: RwLock::new(library),
            folders,
            embeddings,
            router,
            clock: Clock::from_env(),
            program,
            delivered: tokio::sync::Notify::new(),
            jobs_changed: tokio::sync::Notify::new(),
            memory_writes: tokio::sync::Mutex::new(()),
        }))
    }

    /// Starts the scheduler (asking through `answer`), the document
    /// folders' indexer, and the embedding of entries that lack it.
    pub fn spawn(self: &Arc<Self>, answer: Arc<dyn Answerer>) {
        tokio::spawn(Arc::clone(self).embed_missing());
        tokio::spawn(Arc::clone(self).index_loop());
        if self.settings.cron_enabled {
            tokio::spawn(Arc::clone(self).schedule_loop(answer));
        } else {
            tracing::info!(
                "scheduled jobs are off (cron.enabled): reminders are kept but do not fire"
            );
        }
    }

    /// Closes the store.
    pub async fn close(&self) {
        self.store.close().await;
    }

    /// The tools the model is offered, if any.
    pub fn tool_definitions(&self) -> Option<serde_json::Value> {
        self.settings
            .tools
            .then(|| tools::definitions(self.toolset()))
    }

    fn toolset(&self) -> Toolset {
        Toolset {
            documents: !self.folders.is_empty(),
            reminders: self.settings.cron_enabled,
            ..Toolset::ALL
        }
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn today(&self, now: Timestamp) -> jiff::civil::Date {
        match schedule::zone(&self.settings.timezone) {
            Ok(zone) => now.to_zoned_datetime(zone).date(),
            Err(_) => now.to_zoned_datetime(jiff::tz::TimeZone::UTC).date(),
        }
    }

    /// Embeddings of `texts` from the configured model, if there is one
    /// and it answers.
    async fn embed(&self, texts: &[String]) -> Option<Vec<Vec<f32>>> {
        let model = self.embeddings.as_ref()?;
        match self.router.embed_with(model, texts).await {
            Ok(vectors) => Some(
                vectors
                    .into_iter()
                    .map(|vector| vector.into_iter().map(|value| value as f32).collect())
                    .collect(),
            ),
            Err(_) => {
                tracing::warn!(model = %model, "the embedding model did not answer; searching by keywords");
                None
            }
        }
    }

    async fn embed_one(&self, text: &str) -> Option<Vec<f32>> {
        self.embed(&[text.to_owned()]).await?.pop()
    }

    // Memory.

    /// Remembers `text` for `owner`.
    pub async fn remember(
        &self,
        owner: &Owner,
        layer: Layer,
        text: &str,
        source: Source,
    ) -> Result<i64, String> {
        let text = memory::check(text).map_err(|error| error.to_string())?;
        let vector = self.embed_one(&text).await;
        // One write at a time: two writers must not both see room for one.
        let _writing = self.memory_writes.lock().await;
        let kept: Vec<(Layer, i64)> = {
            let memory = hearth_runtime::read(&self.memory);
            memory
                .entries
                .values()
                .filter(|entry| entry.owner == *owner)
                .map(|entry| (entry.layer, entry.id))
                .collect()
        };
        let giving_way =
            memory::making_room(&kept, memory::MAX_ENTRIES).map_err(|error| error.to_string())?;
        for id in giving_way {
            self.store
                .forget(owner, id)
                .await
                .map_err(|error| failed(&error))?;
            let mut memory = hearth_runtime::write(&self.memory);
            memory.index.remove(&id);
            memory.entries.remove(&id);
        }
        let now = self.now();
        let id = self
            .store
            .remember(
                owner,
                &layer,
                &text,
                vector.as_deref(),
                source,
                now.as_millisecond(),
            )
            .await
            .map_err(|error| failed(&error))?;
        let mut memory = hearth_runtime::write(&self.memory);
        memory
            .index
            .insert(id, &text, vector.as_deref(), layer.dated());
        memory.entries.insert(
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
        Ok(id)
    }

    /// The texts of `owner`'s entries that best answer `query`, best first.
    fn recall(&self, owner: &Owner, query: &Query<'_>) -> Vec<String> {
        let memory = hearth_runtime::read(&self.memory);
        memory
            .index
            .search(query, |id| {
                memory
                    .entries
                    .get(id)
                    .is_some_and(|entry| entry.owner == *owner)
            })
            .into_iter()
            .filter_map(|hit| Some(memory.entries.get(&hit.key)?.text.clone()))
            .collect()
    }

    /// `owner`'s entries, oldest first.
    fn entries_of(&self, owner: &Owner) -> Vec<Entry> {
        let memory = hearth_runtime::read(&self.memory);
        let mut entries: Vec<Entry> = memory
            .entries
            .values()
            .filter(|entry| entry.owner == *owner)
            .cloned()
            .collect();
        entries.sort_by_key(|entry| entry.id);
        entries
    }

    /// Embeds the entries stored without an embedding (written while the
    /// embedding model was down, or before it was configured or changed).
    async fn embed_missing(self: Arc<Self>) {
        if self.embeddings.is_none() {
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
            let Some(vector) = self.embed_one(&entry.text).await else {
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
            let mut memory = hearth_runtime::write(&self.memory);
            if memory.entries.contains_key(&entry.id) {
                memory
                    .index
                    .insert(entry.id, &entry.text, Some(&vector), entry.layer.dated());
            }
        }
    }

    /// Writes the turns of `session` that no longer fit the model's context
    /// (messages `through..dropped` of `history`) into today's note, once.
    pub async fn note_trimmed(
        &self,
        asker: &Asker,
        session: &str,
        history: &[Message],
        dropped: usize,
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
            let today = self.today(self.now());
            let _ = self
                .remember(&asker.owner(), Layer::Daily(today), &note, Source::Trimmed)
                .await;
        }
        let _ = self
            .store
            .set_trimmed(session, i64::try_from(dropped).unwrap_or(i64::MAX))
            .await;
    }

    // Requests carried out without the model.

    /// Carries out `message` if it is one of the everyday requests
    /// ("remember that …", "remind me at 7 pm to …").
    pub async fn intent(&self, asker: &Asker, message: &str) -> Option<Said> {
        let now = self.now();
        let recognized = phrases::recognize(message, now, &self.settings.timezone)?;
        Some(match recognized {
            Err(error) => Said {
                tool: None,
                text: error.to_string(),
            },
            Ok(Intent::Remember { text }) => {
                let layer = Layer::LongTerm;
                match self
                    .remember(&asker.owner(), layer, &text, Source::Asked)
                    .await
                {
                    Ok(_) if asker.is_private() => Said {
                        tool: Some("memory_write"),
                        text: "I'll remember that.".into(),
                    },
                    Ok(_) => Said {
                        tool: Some("memory_write"),
                        text: "I'll remember that for everyone in this room.".into(),
                    },
                    Err(why) => Said {
                        tool: None,
                        text: why,
                    },
                }
            }
            Ok(Intent::Schedule(scheduled)) => match self.create_job(asker, scheduled).await {
                Ok(text) => Said {
                    tool: Some("reminder_create"),
                    text,
                },
                Err(why) => Said {
                    tool: None,
                    text: why,
                },
            },
        })
    }

    async fn create_job(&self, asker: &Asker, scheduled: Scheduled) -> Result<String, String> {
        if !self.settings.cron_enabled {
            return Err("Reminders are turned off on this hub (cron.enabled).".into());
        }
        let now = self.now();
        scheduled
            .schedule
            .check()
            .map_err(|error| error.to_string())?;
        let next = scheduled
            .schedule
            .next_after(now)
            .ok_or("That time has already passed.")?;
        if self
            .store
            .job_count(&asker.member)
            .await
            .map_err(|error| failed(&error))?
            >= MAX_JOBS
        {
            return Err(format!(
                "You already have {MAX_JOBS} reminders; cancel some first."
            ));
        }
        let (target, to_whom) = match (scheduled.audience, asker.owner()) {
            (Audience::Room, Owner::Room(room)) => (Target::Room(room), "everyone here"),
            (Audience::Room, Owner::Member(member)) => (Target::Member(member), "you"),
            (Audience::Me, _) => (Target::Member(asker.member.clone()), "you"),
        };
        let (action, text) = match &scheduled.action {
            Action::Remind(text) => ("remind", text.clone()),
            Action::Ask(text) => ("ask", text.clone()),
        };
        let text = memory::check(&text).map_err(|error| error.to_string())?;
        let job = Job {
            id: 0,
            member: asker.member.clone(),
            asker: serde_json::to_string(asker).map_err(|error| error.to_string())?,
            target: target_key(&target),
            schedule: serde_json::to_string(&scheduled.schedule)
                .map_err(|error| error.to_string())?,
            action: action.into(),
            text: text.clone(),
            next_at: next.as_millisecond(),
        };
        self.store
            .schedule(&job, now.as_millisecond())
            .await
            .map_err(|error| failed(&error))?;
        self.jobs_changed.notify_one();
        let when = phrases::describe(&scheduled.schedule, &self.settings.timezone);
        let when = if scheduled.schedule.recurs() {
            when
        } else {
            format!("on {when}")
        };
        Ok(match action {
            "remind" => format!("I'll remind {to_whom} {when}: {text}"),
            _ => format!("I'll answer this {when}: {text}"),
        })
    }

    // What a turn is given.

    /// The date, the memory and the document passages that bear on
    /// `question` in `asker`'s conversation, in at most `budget`
    /// characters (whole entries and passages, best first, until full).
    pub async fn context(&self, asker: &Asker, question: &str, budget: usize) -> TurnContext {
        let now = self.now();
        let today = self.today(now);
        let vector = self.embed_one(question).await;
        let query = |limit| self.query(question, vector.as_deref(), now, limit);
        let recalled = self.recall(&asker.owner(), &query(RECALLED));
        let passages = self.find_passages(asker, &query(PASSAGES)).await;
        let mut system = format!(
            "The date today is {}, {} time.",
            today.strftime("%A %-d %B %Y"),
            self.settings.timezone
        );
        let room = |system: &String, more: usize| system.chars().count() + more <= budget;
        let memory_title = "\n\nWhat you remember here:";
        let mut remembered = false;
        for text in &recalled {
            let line = format!("\n- {text}");
            let title = if remembered { 0 } else { memory_title.len() };
            if !room(&system, line.chars().count() + title) {
                continue;
            }
            if !remembered {
                system.push_str(memory_title);
                remembered = true;
            }
            system.push_str(&line);
        }
        let mut citations = Vec::new();
        let documents_title =
            "\n\nFrom the household's documents (say which one an answer comes from):";
        for (passage, text) in &passages {
            let block = format!("\n\n[{}]\n{text}", passage.citation);
            let title = if citations.is_empty() {
                documents_title.chars().count()
            } else {
                0
            };
            if !room(&system, block.chars().count() + title) {
                continue;
            }
            if citations.is_empty() {
                system.push_str(documents_title);
            }
            system.push_str(&block);
            citations.push(passage.citation.clone());
        }
        TurnContext {
            system: Some(system),
            citations,
        }
    }

    /// A search for `text` (with its embedding, when there is one) as of
    /// `now`: at most `limit` results above the configured score.
    fn query<'a>(
        &self,
        text: &'a str,
        vector: Option<&'a [f32]>,
        now: Timestamp,
        limit: usize,
    ) -> Query<'a> {
        Query {
            text,
            vector,
            today: self.today(now),
            limit,
            min_score: self.settings.min_score,
        }
    }

    /// The passages best matching `query` in the folders `asker`'s
    /// conversation may read, best first, with their texts.
    async fn find_passages(&self, asker: &Asker, query: &Query<'_>) -> Vec<(PassageInfo, String)> {
        let readable = self.readable(asker);
        if readable.is_empty() {
            return Vec::new();
        }
        let found = hearth_runtime::read(&self.library).search(query, &readable);
        let ids: Vec<i64> = found.iter().map(|(id, _)| *id).collect();
        // A passage taken out since (its file changed) is left out.
        let Ok(mut texts) = self.store.passage_texts(&ids).await else {
            return Vec::new();
        };
        found
            .into_iter()
            .filter_map(|(id, passage)| Some((passage, texts.remove(&id)?)))
            .collect()
    }

    /// The folders `asker`'s conversation may read.
    fn readable(&self, asker: &Asker) -> HashSet<String> {
        self.folders
            .iter()
            .filter(|(_, folder)| folder.readable_by(asker))
            .map(|(_, folder)| folder.name.clone())
            .collect()
    }

    /// The footer naming the document sources an answer was given.
    pub fn sources(&self, citations: &[String]) -> Option<String> {
        if citations.is_empty() || self.settings.citations == Citations::Off {
            return None;
        }
        let mut unique: Vec<&str> = Vec::new();
        for citation in citations {
            if !unique.contains(&citation.as_str()) {
                unique.push(citation);
            }
        }
        Some(format!("\n\nSources: {}", unique.join("; ")))
    }

    // Tools.

    /// Runs the model's call of `name` with `arguments` for `asker`; what
    /// the model is told. Document passages it returns add to `citations`.
    pub async fn run_tool(
        &self,
        asker: &Asker,
        name: &str,
        arguments: &str,
        citations: &mut Vec<String>,
    ) -> String {
        match tools::read(name, arguments, self.toolset()) {
            Err(error) => format!("error: {error}"),
            Ok(call) => self.execute(asker, call, citations).await,
        }
    }

    async fn execute(&self, asker: &Asker, call: Call, citations: &mut Vec<String>) -> String {
        let now = self.now();
        let owner = asker.owner();
        let limit = |asked: Option<usize>| asked.unwrap_or(self.settings.max_results).clamp(1, 20);
        match call {
            Call::MemorySearch { query, max_results } => {
                let vector = self.embed_one(&query).await;
                let texts = self.recall(
                    &owner,
                    &self.query(&query, vector.as_deref(), now, limit(max_results)),
                );
                if texts.is_empty() {
                    return "Nothing remembered matches.".into();
                }
                texts
                    .iter()
                    .enumerate()
                    .map(|(index, text)| format!("{}. {text}", index + 1))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
            Call::MemoryGet { path } => {
                let Some(layer) = Layer::of_path(&path) else {
                    return "error: only MEMORY.md and memory/YYYY-MM-DD.md can be read".into();
                };
                let entries = self.entries_of(&owner);
                let kept: Vec<&Entry> = entries
                    .iter()
                    .filter(|entry| entry.layer == layer)
                    .collect();
                memory::render(&layer, &kept)
            }
            Call::MemoryWrite { text, long_term } => {
                let layer = if long_term {
                    Layer::LongTerm
                } else {
                    Layer::Daily(self.today(now))
                };
                match self.remember(&owner, layer, &text, Source::Model).await {
                    Ok(_) => "Remembered.".into(),
                    Err(why) => format!("error: {why}"),
                }
            }
            Call::ReminderCreate {
                text,
                when,
                to_room,
            } => {
                let schedule = match phrases::time(&when, now, &self.settings.timezone) {
                    Ok(schedule) => schedule,
                    Err(error) => return format!("error: {error}"),
                };
                let scheduled = Scheduled {
                    schedule,
                    action: Action::Remind(text),
                    audience: if to_room {
                        Audience::Room
                    } else {
                        Audience::Me
                    },
                };
                match self.create_job(asker, scheduled).await {
                    Ok(said) => said,
                    Err(why) => format!("error: {why}"),
                }
            }
            Call::ReminderList => match self.reminders(asker).await {
                Ok(reminders) if reminders.is_empty() => "No reminders.".into(),
                Ok(reminders) => reminders
                    .iter()
                    .map(|reminder| {
                        format!("#{}: {} ({})", reminder.id, reminder.text, reminder.when)
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
                Err(why) => format!("error: {why}"),
            },
            Call::ReminderCancel { id } => match self.store.cancel(&asker.member, id).await {
                Ok(true) => {
                    self.jobs_changed.notify_one();
                    format!("Reminder #{id} is cancelled.")
                }
                Ok(false) => format!("error: there is no reminder #{id} of yours"),
                Err(error) => format!("error: {}", failed(&error)),
            },
            Call::DocumentSearch { query, max_results } => {
                if self.readable(asker).is_empty() {
                    return "No documents are readable here.".into();
                }
                let vector = self.embed_one(&query).await;
                let found = self
                    .find_passages(
                        asker,
                        &self.query(&query, vector.as_deref(), now, limit(max_results)),
                    )
                    .await;
                if found.is_empty() {
                    return "No passage matches.".into();
                }
                let mut text = String::new();
                for (passage, passage_text) in found {
                    text.push_str(&format!("[{}]\n{passage_text}\n\n", passage.citation));
                    citations.push(passage.citation);
                }
                text.trim_end().to_owned()
            }
            Call::CurrentTime => match schedule::zone(&self.settings.timezone) {
                Ok(zone) => format!(
                    "{} ({})",
                    now.to_zoned_datetime(zone).strftime("%A %-d %B %Y, %H:%M"),
                    self.settings.timezone
                ),
                Err(_) => now.to_string(),
            },
            Call::Calculate { expression } => match arithmetic::evaluate(&expression) {
                Ok(value) => arithmetic::format(value),
                Err(error) => format!("error: {error}"),
            },
            Call::ListAdd { list, items } => self.list_add(asker, &list, &items, now).await,
            Call::ListShow { list } => match lists::name(&list) {
                Ok(name) => match self.store.list(&owner, &name).await {
                    Ok(items) => lists::render(
                        &name,
                        &items.into_iter().map(|(_, item)| item).collect::<Vec<_>>(),
                    ),
                    Err(error) => format!("error: {}", failed(&error)),
                },
                Err(error) => format!("error: {error}"),
            },
            Call::ListRemove { list, items } => {
                let name = match lists::name(&list) {
                    Ok(name) => name,
                    Err(error) => return format!("error: {error}"),
                };
                let stored = match self.store.list(&owner, &name).await {
                    Ok(stored) => stored,
                    Err(error) => return format!("error: {}", failed(&error)),
                };
                let mut removed = 0;
                for asked in &items {
                    if let Some((id, _)) = stored
                        .iter()
                        .find(|(_, item)| lists::same_item(item, asked))
                        && self.store.remove_item(&owner, *id).await.is_ok()
                    {
                        removed += 1;
                    }
                }
                format!("Removed {removed} of {} from the {name} list.", items.len())
            }
        }
    }

    async fn list_add(
        &self,
        asker: &Asker,
        list: &str,
        items: &[String],
        now: Timestamp,
    ) -> String {
        let owner = asker.owner();
        let name = match lists::name(list) {
            Ok(name) => name,
            Err(error) => return format!("error: {error}"),
        };
        let existing = match self.store.list(&owner, &name).await {
            Ok(existing) => existing,
            Err(error) => return format!("error: {}", failed(&error)),
        };
        if existing.is_empty()
            && self.store.list_count(&owner).await.unwrap_or(0)
                >= i64::try_from(lists::MAX_LISTS).unwrap_or(i64::MAX)
        {
            return format!("error: {}", lists::ListError::TooMany);
        }
        let mut added = 0;
        for item in items {
            if existing.len() + added >= lists::MAX_ITEMS {
                return format!("error: {}", lists::ListError::Full);
            }
            let item = match lists::item(item) {
                Ok(item) => item,
                Err(error) => return format!("error: {error}"),
            };
            if self
                .store
                .add_item(&owner, &name, &item, &asker.member, now.as_millisecond())
                .await
                .is_ok()
            {
                added += 1;
            }
        }
        format!("Added {added} to the {name} list.")
    }

    // The assistant API.

    async fn reminders(&self, asker: &Asker) -> Result<Vec<ReminderItem>, String> {
        let jobs = self
            .store
            .jobs_of(&asker.member)
            .await
            .map_err(|error| failed(&error))?;
        Ok(jobs
            .into_iter()
            .map(|job| {
                let schedule: Option<Schedule> = serde_json::from_str(&job.schedule).ok();
                ReminderItem {
                    id: job.id,
                    text: job.text,
                    when: schedule.as_ref().map_or_else(
                        || "at an unreadable time".into(),
                        |schedule| phrases::describe(schedule, &self.settings.timezone),
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

    /// Answers an assistant API request for `asker` (deliveries excepted:
    /// [`Assistant::deliveries`]).
    pub async fn answer(&self, asker: &Asker, op: Op) -> Answer {
        let refused = |message: String| Answer::Refused { message };
        let owner = asker.owner();
        match op {
            Op::Deliveries { .. } => refused("deliveries are asked for on their own".into()),
            Op::MemoryList {} => Answer::Memory {
                entries: self
                    .entries_of(&owner)
                    .into_iter()
                    .map(|entry| MemoryItem {
                        id: entry.id,
                        file: entry.layer.path(),
                        text: entry.text,
                        written_at: entry.written_at.to_string(),
                        source: entry.source.as_str().into(),
                    })
                    .collect(),
            },
            Op::MemoryForget { id } => match self.store.forget(&owner, id).await {
                Ok(true) => {
                    let mut memory = hearth_runtime::write(&self.memory);
                    memory.index.remove(&id);
                    memory.entries.remove(&id);
                    Answer::Done {
                        message: format!("Forgotten (#{id})."),
                    }
                }
                Ok(false) => refused(format!("There is no memory #{id} here.")),
                Err(error) => refused(failed(&error)),
            },
            Op::ReminderList {} => match self.reminders(asker).await {
                Ok(reminders) => Answer::Reminders { reminders },
                Err(why) => refused(why),
            },
            Op::ReminderCancel { id } => match self.store.cancel(&asker.member, id).await {
                Ok(true) => {
                    self.jobs_changed.notify_one();
                    Answer::Done {
                        message: format!("Reminder #{id} is cancelled."),
                    }
                }
                Ok(false) => refused(format!("There is no reminder #{id} of yours.")),
                Err(error) => refused(failed(&error)),
            },
            Op::DocumentList {} => {
                let readable = self.readable(asker);
                match self.store.documents().await {
                    Ok(known) => {
                        let mut documents = Vec::new();
                        let mut refused_documents = Vec::new();
                        for document in known
                            .into_iter()
                            .filter(|document| readable.contains(&document.folder))
                        {
                            match document.refused {
                                Some(reason) => refused_documents.push(RefusedDocument {
                                    folder: document.folder,
                                    path: document.path,
                                    reason,
                                }),
                                None => documents.push(DocumentItem {
                                    folder: document.folder,
                                    path: document.path,
                                    passages: usize::try_from(document.passages).unwrap_or(0),
                                }),
                            }
                        }
                        Answer::Documents {
                            documents,
                            refused: refused_documents,
                        }
                    }
                    Err(error) => refused(failed(&error)),
                }
            }
        }
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
                        message: failed(&error),
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

    // Background work.

    /// Fires due jobs as [`Dispatcher`] says: reminders at once, scheduled
    /// questions in their turn (each in a task of its own, so none holds up
    /// the loop), every member within their budget.
    async fn schedule_loop(self: Arc<Self>, answer: Arc<dyn Answerer>) {
        let dispatcher = Arc::new(std::sync::Mutex::new(Dispatcher::new(
            DispatchLimits::default(),
        )));
        let finished = Arc::new(tokio::sync::Notify::new());
        loop {
            let now = self.now();
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
                            let (assistant, answer) = (Arc::clone(&self), Arc::clone(&answer));
                            let (dispatcher, finished) =
                                (Arc::clone(&dispatcher), Arc::clone(&finished));
                            tokio::spawn(async move {
                                assistant.fire(job, now, answer.as_ref()).await;
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
                    tracing::error!(error = %failed(&error), "cannot read scheduled jobs")
                }
            }
            let changed = self.jobs_changed.notified();
            let turn_ended = finished.notified();
            let mut sleep = self.clock.longest_sleep();
            let now_ms = self.now().as_millisecond();
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
        let text = if !due.fire {
            None
        } else if job.action == "ask" {
            let asker: Option<Asker> = serde_json::from_str(&job.asker).ok();
            let said = match asker {
                Some(asker) => answer.answer(asker, job.text.clone()).await,
                None => None,
            };
            Some(said.unwrap_or_else(|| {
                format!("I could not answer the scheduled question \u{201c}{}\u{201d}: no model answered.", job.text)
            }))
        } else {
            Some(format!("\u{23f0} Reminder: {}", job.text))
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
                tracing::error!(job = job.id, error = %failed(&error), "a scheduled job could not be recorded")
            }
        }
    }

    async fn index_loop(self: Arc<Self>) {
        let every = Duration::from_secs(self.settings.rescan_seconds);
        loop {
            self.index_folders().await;
            tokio::time::sleep(every).await;
        }
    }

    /// Looks at every folder once: new and changed documents are indexed
    /// (or refused), removed ones forgotten.
    pub async fn index_folders(&self) {
        let Ok(known) = self.store.documents().await else {
            return;
        };
        let known: HashMap<(String, String), KnownDocument> = known
            .into_iter()
            .map(|document| ((document.folder.clone(), document.path.clone()), document))
            .collect();
        let mut seen: HashSet<(String, String)> = HashSet::new();
        let (mut indexed, mut refused) = (0, 0);
        for (config, folder) in &self.folders {
            let root = config.path.clone();
            let Ok(found) = tokio::task::spawn_blocking(move || library::walk(&root)).await else {
                continue;
            };
            for file in found {
                let key = (folder.name.clone(), file.path.clone());
                let before = known.get(&key);
                seen.insert(key);
                if library::unchanged(&file, before) {
                    continue;
                }
                match self.index_one(&folder.name, &file).await {
                    Some(true) => indexed += 1,
                    Some(false) => refused += 1,
                    None => {}
                }
            }
        }
        for (key, _) in known.iter().filter(|(key, _)| !seen.contains(*key)) {
            if let Ok(ids) = self.store.passage_ids(&key.0, &key.1).await {
                hearth_runtime::write(&self.library).remove(&ids);
            }
            let _ = self.store.drop_document(&key.0, &key.1).await;
        }
        if indexed + refused > 0 {
            tracing::info!(
                indexed,
                refused,
                passages = hearth_runtime::read(&self.library).len(),
                "household documents indexed"
            );
        }
    }

    /// Indexes one document whole: `Some(true)` indexed, `Some(false)`
    /// refused (with the reason stored), `None` to try again later (the
    /// embedding model did not answer).
    async fn index_one(&self, folder: &str, file: &library::Found) -> Option<bool> {
        let mut document = KnownDocument {
            folder: folder.to_owned(),
            path: file.path.clone(),
            size: i64::try_from(file.size).unwrap_or(i64::MAX),
            modified: file.modified,
            refused: None,
            passages: 0,
        };
        let refuse = |reason: String, mut document: KnownDocument| async move {
            document.refused = Some(reason);
            if let Ok(ids) = self
                .store
                .passage_ids(&document.folder, &document.path)
                .await
            {
                hearth_runtime::write(&self.library).remove(&ids);
            }
            let _ = self.store.refuse_document(&document).await;
            Some(false)
        };
        let pages = match library::extract_text(file, &self.program).await {
            Ok(pages) => pages,
            Err(reason) => return refuse(reason, document).await,
        };
        let mut passages = library::passages_of(&file.path, file.format, &pages);
        if passages.is_empty() {
            return refuse(
                hearth_assistant::extract::ExtractError::Empty.to_string(),
                document,
            )
            .await;
        }
        if self.embeddings.is_some() {
            let texts: Vec<String> = passages
                .iter()
                .map(|passage| passage.text.clone())
                .collect();
            let mut vectors = Vec::with_capacity(texts.len());
            for batch in library::batches(&texts) {
                vectors.extend(self.embed(batch).await?);
            }
            for (passage, vector) in passages.iter_mut().zip(vectors) {
                passage.vector = Some(vector);
            }
        }
        let old = self
            .store
            .passage_ids(folder, &file.path)
            .await
            .unwrap_or_default();
        document.passages = i64::try_from(passages.len()).unwrap_or(0);
        let ids = self
            .store
            .index_document(&document, &passages, self.now().as_millisecond())
            .await
            .ok()?;
        let mut library = hearth_runtime::write(&self.library);
        library.remove(&old);
        for (id, passage) in ids.into_iter().zip(passages) {
            library.add(store::StoredPassage {
                id,
                folder: folder.to_owned(),
                path: file.path.clone(),
                citation: passage.citation,
                text: passage.text,
                vector: passage.vector,
            });
        }
        Some(true)
    }
}

/// Hands the memory freed after the start's loading back to the system:
/// glibc's allocator keeps freed memory for reuse, so the rows read once at
/// start would otherwise stay in the gateway's resident size. Other C
/// libraries (musl, in the container image) are left to their own ways.
#[allow(unsafe_code)] // libc's malloc_trim: no safe wrapper exists
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the system; it takes
    // no pointers and is safe to call at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// How a store failure is told: without any stored content.
fn failed(error: &StoreError) -> String {
    tracing::error!(%error, "the assistant's store failed");
    "the assistant's memory could not be used just now".into()
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

    use hearth_assistant::api::{Answer, Target};
    use hearth_assistant::scope::RoomId;

    use super::*;

    /// A stand-in for the gateway's models (named so: the scheduler's
    /// contract is the [`Answerer`] trait): it answers every question with
    /// who asked it, and keeps what it was asked.
    #[derive(Default)]
    struct StandInModel {
        asked: Mutex<Vec<(Asker, String)>>,
    }

    impl Answerer for StandInModel {
        fn answer(&self, asker: Asker, question: String) -> BoxFuture<'static, Option<String>> {
            let text = format!("an answer for {}", asker.member);
            hearth_runtime::lock(&self.asked).push((asker, question));
            Box::pin(async move { Some(text) })
        }
    }

    async fn assistant(dir: &Path) -> Arc<Assistant> {
        let router = Router::new(Vec::new(), Vec::new()).expect("a router with no model");
        Assistant::start(
            AssistantSection::default(),
            Arc::new(router),
            dir,
            PathBuf::new(),
        )
        .await
        .expect("the assistant starts")
    }

    /// A scheduled question is asked, when it is due, of the model with
    /// the authority of the member who made it, and its answer is delivered
    /// to them; before it is due nothing is asked.
    #[tokio::test]
    async fn a_due_question_is_asked_for_its_member_and_the_answer_delivered() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let assistant = assistant(dir.path()).await;
        let ada = Asker {
            member: "ada".into(),
            room: Some(RoomId::assistant_dm("ada").expect("ada's DM")),
            ..Asker::default()
        };
        let at = assistant.now() + jiff::SignedDuration::from_mins(5);
        let said = assistant
            .create_job(
                &ada,
                Scheduled {
                    schedule: Schedule::At { at },
                    action: Action::Ask("what is for dinner?".into()),
                    audience: Audience::Me,
                },
            )
            .await
            .expect("scheduled");
        assert!(said.contains("what is for dinner?"), "{said}");

        let model = StandInModel::default();
        let early = assistant.now();
        assert!(
            assistant
                .store
                .due_jobs(early.as_millisecond())
                .await
                .expect("read")
                .is_empty(),
            "not due yet"
        );
        let due = assistant
            .store
            .due_jobs(at.as_millisecond())
            .await
            .expect("read");
        assert_eq!(due.len(), 1);
        for job in due {
            assistant.fire(job, at, &model).await;
        }
        let asked = hearth_runtime::lock(&model.asked).clone();
        assert_eq!(asked, [(ada, "what is for dinner?".to_owned())]);
        let Answer::Deliveries { deliveries } = assistant.deliveries(0, Duration::ZERO).await
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
            assistant
                .store
                .due_jobs(at.as_millisecond())
                .await
                .expect("read")
                .is_empty(),
            "a one-off job fires once"
        );
    }
}
