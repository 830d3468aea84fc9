//! Embeddings for the assistant's searches: the configured model through
//! the gateway's router, or none (searches then go by keywords).

use std::sync::Arc;

use hearth_llm::{ModelRef, Router};

/// The embedding model, if one is configured.
pub struct Embedder {
    model: Option<(ModelRef, Arc<Router>)>,
}

impl Embedder {
    /// Embeds with `model` (if any) through `router`.
    pub fn new(model: Option<ModelRef>, router: Arc<Router>) -> Embedder {
        Embedder {
            model: model.map(|model| (model, router)),
        }
    }

    /// No model: keyword search only.
    pub fn none() -> Embedder {
        Embedder { model: None }
    }

    /// The model, if one is configured.
    pub fn model(&self) -> Option<&ModelRef> {
        self.model.as_ref().map(|(model, _)| model)
    }

    /// Embeddings of `texts`, if there is a model and it answers.
    pub async fn embed(&self, texts: &[String]) -> Option<Vec<Vec<f32>>> {
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

    /// The embedding of one text.
    pub async fn embed_one(&self, text: &str) -> Option<Vec<f32>> {
        self.embed(&[text.to_owned()]).await?.pop()
    }
}
