//! Embeddings for the assistant's searches: the configured model through
//! the gateway's router, or none (searches then go by keywords). What the
//! model's kind needs is added here, not by callers: the E5 family's
//! "query: " and "passage: " (`search::profile`).

use std::sync::Arc;

use hearth_assistant::search::{self, ModelProfile, Scoring, profile};
use hearth_llm::{ModelRef, Router};

/// The embedding model, if one is configured.
pub struct Embedder {
    model: Option<(ModelRef, Arc<Router>)>,
    profile: ModelProfile,
}

impl Embedder {
    /// Embeds with `model` (if any) through `router`.
    pub fn new(model: Option<ModelRef>, router: Arc<Router>) -> Embedder {
        let profile = profile(&model.as_ref().map(ToString::to_string).unwrap_or_default());
        Embedder {
            model: model.map(|model| (model, router)),
            profile,
        }
    }

    /// No model: keyword search only.
    pub fn none() -> Embedder {
        Embedder {
            model: None,
            profile: profile(""),
        }
    }

    /// The model, if one is configured.
    pub fn model(&self) -> Option<&ModelRef> {
        self.model.as_ref().map(|(model, _)| model)
    }

    /// What the stored vectors were made with: the model and the prefix
    /// its passages were given (a change embeds everything again).
    pub fn stored_as(&self) -> Option<String> {
        let model = self.model()?;
        Some(match self.profile.passage_prefix {
            "" => model.to_string(),
            prefix => format!("{model} ({})", prefix.trim()),
        })
    }

    /// How the model's cosines join the keyword scores.
    pub fn scoring(&self) -> Scoring {
        self.profile.scoring
    }

    /// Embeddings of passages or memory entries, if there is a model and
    /// it answers.
    pub async fn embed_passages(&self, texts: &[String]) -> Option<Vec<Vec<f32>>> {
        self.embed(self.profile.passage_prefix, texts).await
    }

    /// The embedding of a passage or memory entry.
    pub async fn embed_passage(&self, text: &str) -> Option<Vec<f32>> {
        self.embed_passages(&[text.to_owned()]).await?.pop()
    }

    /// The embedding of a question.
    pub async fn embed_query(&self, text: &str) -> Option<Vec<f32>> {
        self.embed(self.profile.query_prefix, &[text.to_owned()])
            .await?
            .pop()
    }

    /// Embeddings of `texts` with `prefix` before each: a text longer than
    /// the model reads at once is embedded in windows, pooled.
    async fn embed(&self, prefix: &str, texts: &[String]) -> Option<Vec<Vec<f32>>> {
        let windowed = search::Windowed::of(texts, prefix);
        windowed.pool(&self.ask(&windowed.inputs).await?)
    }

    async fn ask(&self, texts: &[String]) -> Option<Vec<Vec<f32>>> {
        let (model, router) = self.model.as_ref()?;
        match router.embed_with(model, texts).await {
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
}
