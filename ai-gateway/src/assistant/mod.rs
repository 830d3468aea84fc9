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
pub mod documents;
pub mod embedder;
mod everyday;
pub mod library;
pub mod memories;
pub mod scheduler;
pub mod store;
#[cfg(test)]
mod testing;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hearth_assistant::api::{Answer, MemoryItem, Op};
use hearth_assistant::language::Language;
use hearth_assistant::memory::{self, Entry, Layer, Source};
use hearth_assistant::phrases::{self, Action, Audience, ListRequest, Scheduled};
use hearth_assistant::schedule;
use hearth_assistant::scope::Asker;
use hearth_assistant::search::Query;
use hearth_assistant::tools::{self, Call, Toolset};
use hearth_assistant::{arithmetic, say};
use hearth_llm::{Message, ModelRef, Router};
use jiff::Timestamp;

use crate::config::{AssistantSection, Citations};
use clock::Clock;
use documents::{Documents, Indexed};
use embedder::Embedder;
use memories::{Memories, Remembered};
use scheduler::{Scheduler, SchedulerSettings};
use store::{Database, DocumentStore, JobStore, ListStore, MemoryStore};

pub use scheduler::{Answerer, MAX_JOBS, NotAnswered, target_key, target_of};

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

/// The assistant: its three services ([`Memories`], [`Documents`],
/// [`Scheduler`]) and the household's lists, each with its own store in
/// one database, and what they are used for together (a turn's context,
/// the model's tools, the assistant API).
pub struct Assistant {
    settings: AssistantSection,
    database: Database,
    memories: Arc<Memories>,
    documents: Arc<Documents>,
    scheduler: Arc<Scheduler>,
    lists: ListStore,
    embedder: Arc<Embedder>,
    clock: Clock,
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
        let database = Database::open(data_dir, key)
            .await
            .context("cannot open the assistant's memory")?;
        let model = match &settings.embeddings {
            Some(text) => Some(ModelRef::parse(text).context("memory.search.provider/model")?),
            None => None,
        };
        let embedder = Arc::new(Embedder::new(model, router));
        if let Some(stored_as) = embedder.stored_as()
            && database.embedding_model(&stored_as).await?
        {
            tracing::info!(model = %stored_as, "a new embedding model: memory and documents are embedded again");
        }
        let clock = Clock::from_env();
        let memories =
            Memories::load(MemoryStore::new(database.clone()), Arc::clone(&embedder)).await?;
        let documents = Documents::load(
            DocumentStore::new(database.clone()),
            &settings.folders,
            program,
            Arc::clone(&embedder),
            clock.clone(),
        )
        .await?;
        release_freed_memory();
        let scheduler = Scheduler::new(
            JobStore::new(database.clone()),
            SchedulerSettings {
                enabled: settings.cron_enabled,
                timezone: settings.timezone.clone(),
                skip_missed: settings.skip_missed,
                language: settings.language,
            },
            clock.clone(),
        );
        tracing::info!(
            memories = memories.len(),
            passages = documents.passages(),
            embeddings = embedder.model().is_some(),
            "the assistant's state is loaded"
        );
        Ok(Arc::new(Assistant {
            lists: ListStore::new(database.clone()),
            settings,
            database,
            memories: Arc::new(memories),
            documents: Arc::new(documents),
            scheduler: Arc::new(scheduler),
            embedder,
            clock,
        }))
    }

    /// Starts the scheduler (asking through `answer`), the document
    /// folders' indexer, and the embedding of entries that lack it.
    pub fn spawn(self: &Arc<Self>, answer: Arc<dyn Answerer>) {
        let memories = Arc::clone(&self.memories);
        tokio::spawn(async move { memories.embed_missing().await });
        let (documents, every) = (
            Arc::clone(&self.documents),
            Duration::from_secs(self.settings.rescan_seconds),
        );
        tokio::spawn(async move {
            loop {
                documents.index_folders().await;
                tokio::time::sleep(every).await;
            }
        });
        if self.scheduler.enabled() {
            tokio::spawn(Arc::clone(&self.scheduler).run(answer));
        } else {
            tracing::info!(
                "scheduled jobs are off (cron.enabled): reminders are kept but do not fire"
            );
        }
    }

    /// Closes the store.
    pub async fn close(&self) {
        self.database.close().await;
    }

    /// The tools the model is offered, if any.
    pub fn tool_definitions(&self) -> Option<serde_json::Value> {
        self.settings
            .tools
            .then(|| tools::definitions(self.toolset()))
    }

    fn toolset(&self) -> Toolset {
        Toolset {
            documents: self.documents.any_folders(),
            reminders: self.scheduler.enabled(),
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

    /// Writes the turns of `session` that no longer fit the model's context
    /// (messages `through..dropped` of `history`) into today's note, once.
    pub async fn note_trimmed(
        &self,
        asker: &Asker,
        session: &str,
        history: &[Message],
        dropped: usize,
    ) {
        let now = self.now();
        self.memories
            .note_trimmed(
                &asker.owner(),
                session,
                history,
                dropped,
                self.today(now),
                now,
            )
            .await;
    }

    // What a turn is given.

    /// The date, the memory and the document passages that bear on
    /// `question` in `asker`'s conversation, in at most `budget` tokens as
    /// `context::estimate_text_tokens` counts them (whole entries and
    /// passages, best first, until full).
    pub async fn context(&self, asker: &Asker, question: &str, budget: usize) -> TurnContext {
        let now = self.now();
        let today = self.today(now);
        let vector = self.embedder.embed_query(question).await;
        let query = |limit| self.query(question, vector.as_deref(), now, limit);
        let recalled = self.memories.recall(&asker.owner(), &query(RECALLED));
        let passages = self.documents.find(asker, &query(PASSAGES)).await;
        let mut system = format!(
            "The date today is {}, {} time.",
            today.strftime("%A %-d %B %Y"),
            self.settings.timezone
        );
        let named = asker
            .language
            .as_deref()
            .and_then(language_name)
            .or_else(|| (Language::of_text(question) == Language::Korean).then_some("Korean"));
        if let Some(language) = named {
            system.push_str(&format!(
                " Answer in {language}: it is the language {} reads.",
                asker.member
            ));
        }
        // Measured in estimated tokens: Korean takes several a syllable.
        let tokens = crate::context::estimate_text_tokens;
        let room = |system: &String, more: usize| tokens(system) + more <= budget;
        let memory_title = "\n\nWhat you remember here:";
        let mut remembered = false;
        for text in &recalled {
            let line = format!("\n- {text}");
            let title = if remembered { 0 } else { tokens(memory_title) };
            if !room(&system, tokens(&line) + title) {
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
                tokens(documents_title)
            } else {
                0
            };
            if !room(&system, tokens(&block) + title) {
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

    /// The language to answer `text` from `asker` in: their app's, the
    /// text's, else the household's.
    pub fn language_for(&self, asker: &Asker, text: &str) -> Language {
        Language::for_member(asker.language.as_deref(), text, self.settings.language)
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
            scoring: self.embedder.scoring(),
        }
    }

    /// The footer naming the document sources an answer was given, in
    /// `language`.
    pub fn sources(&self, citations: &[String], language: Language) -> Option<String> {
        if citations.is_empty() || self.settings.citations == Citations::Off {
            return None;
        }
        let mut unique: Vec<&str> = Vec::new();
        for citation in citations {
            if !unique.contains(&citation.as_str()) {
                unique.push(citation);
            }
        }
        Some(say::sources(language, &unique))
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
                let vector = self.embedder.embed_query(&query).await;
                let texts = self.memories.recall(
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
                let entries = self.memories.entries_of(&owner);
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
                match self
                    .memories
                    .remember(&owner, layer, &text, Source::Model, now)
                    .await
                {
                    Ok(Remembered::New(_)) => "Remembered.".into(),
                    Ok(Remembered::Already(_)) => "Already remembered (kept once).".into(),
                    Ok(Remembered::Updated { was, .. }) => {
                        format!("Remembered, in place of what was kept: {was}")
                    }
                    Ok(Remembered::Beside { kept, .. }) => format!(
                        "Remembered, beside what is kept about the same: {}",
                        kept.join(" | ")
                    ),
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
                match self
                    .scheduler
                    .create(asker, scheduled, Language::English)
                    .await
                {
                    Ok(said) => said,
                    Err(why) => format!("error: {}", why.say(Language::English)),
                }
            }
            Call::ReminderList => match self
                .scheduler
                .reminders(&asker.member, Language::English)
                .await
            {
                Ok(reminders) if reminders.is_empty() => "No reminders.".into(),
                Ok(reminders) => reminders
                    .iter()
                    .map(|reminder| {
                        format!("#{}: {} ({})", reminder.id, reminder.text, reminder.when)
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
                Err(error) => format!("error: {}", error.logged()),
            },
            Call::ReminderCancel { id } => match self.scheduler.cancel(&asker.member, id).await {
                Ok(true) => format!("Reminder #{id} is cancelled."),
                Ok(false) => format!("error: there is no reminder #{id} of yours"),
                Err(error) => format!("error: {}", error.logged()),
            },
            Call::DocumentSearch { query, max_results } => {
                if self.documents.readable(asker).is_empty() {
                    return "No documents are readable here.".into();
                }
                let vector = self.embedder.embed_query(&query).await;
                let found = self
                    .documents
                    .find(
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
            Call::ListAdd { list, items } => self
                .list(asker, ListRequest::Add { list, items }, now)
                .await
                .for_model(),
            Call::ListShow { list } => self
                .list(asker, ListRequest::Show { list }, now)
                .await
                .for_model(),
            Call::ListRemove { list, items } => self
                .list(asker, ListRequest::Remove { list, items }, now)
                .await
                .for_model(),
        }
    }

    // The assistant API.

    /// Answers an assistant API request for `asker` (deliveries excepted:
    /// [`Assistant::deliveries`]).
    pub async fn answer(&self, asker: &Asker, op: Op) -> Answer {
        let refused = |message: String| Answer::Refused { message };
        let owner = asker.owner();
        let language = self.language_for(asker, "");
        match op {
            Op::Deliveries { .. } => refused("deliveries are asked for on their own".into()),
            Op::Transcribe { .. } => {
                refused("recordings are heard by the gateway's speech use case".into())
            }
            Op::MemoryList {} => Answer::Memory {
                entries: self
                    .memories
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
                language,
            },
            Op::MemoryForget { id } => match self.memories.forget(&owner, id).await {
                Ok(true) => Answer::Done {
                    message: say::forgotten(language, id),
                },
                Ok(false) => refused(say::no_memory(language, id)),
                Err(error) => refused(error.logged().to_string()),
            },
            Op::ReminderList {} => match self.scheduler.reminders(&asker.member, language).await {
                Ok(reminders) => Answer::Reminders {
                    reminders,
                    language,
                },
                Err(error) => refused(error.logged().to_string()),
            },
            Op::ReminderCancel { id } => match self.scheduler.cancel(&asker.member, id).await {
                Ok(true) => Answer::Done {
                    message: say::cancelled(language, id),
                },
                Ok(false) => refused(say::no_reminder(language, id)),
                Err(error) => refused(error.logged().to_string()),
            },
            Op::DocumentList {} => match self.documents.list(asker).await {
                Ok((documents, refused_documents)) => Answer::Documents {
                    documents,
                    refused: refused_documents,
                    language,
                },
                Err(error) => refused(error.logged().to_string()),
            },
            Op::DocumentAdd {
                file_name: name,
                content,
            } => {
                use base64::Engine as _;
                let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(content) else {
                    return refused("the document's content is not base64".into());
                };
                match self.documents.add_shared(&asker.member, &name, &bytes).await {
                    Indexed::Passages(passages) => Answer::Done {
                        message: say::shared_read(language, name.trim(), passages),
                    },
                    Indexed::Refused(why) => refused(format!("I could not read {}: {why}.", name.trim())),
                    Indexed::Later => refused(
                        "The embedding model is not answering; share the document again in a minute."
                            .into(),
                    ),
                }
            }
        }
    }

    /// What `asker`'s conversation remembers that best answers `query`,
    /// best first, at most `limit` (the search the assistant's context uses).
    pub async fn search_memory(&self, asker: &Asker, query: &str, limit: usize) -> Vec<String> {
        let now = self.now();
        let vector = self.embedder.embed_query(query).await;
        self.memories.recall(
            &asker.owner(),
            &self.query(query, vector.as_deref(), now, limit),
        )
    }

    /// The scheduler of reminders and scheduled questions.
    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// The deliveries after `after`, waiting up to `wait` for one.
    pub async fn deliveries(&self, after: i64, wait: Duration) -> Answer {
        self.scheduler.deliveries(after, wait).await
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

/// The English name of the language tagged `tag` (BCP 47, as `ko` or
/// `ko-KR`), for the languages the household app offers and a few more;
/// `None` for others (the model is then not told).
pub fn language_name(tag: &str) -> Option<&'static str> {
    let base = tag.split(['-', '_']).next()?.to_ascii_lowercase();
    let name = match base.as_str() {
        "en" => "English",
        "ko" => "Korean",
        "ja" => "Japanese",
        "zh" => "Chinese",
        "es" => "Spanish",
        "fr" => "French",
        "de" => "German",
        _ => return None,
    };
    Some(name)
}
