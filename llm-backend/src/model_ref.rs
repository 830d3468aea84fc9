//! A model's name: `provider/model`.

use std::fmt;

use crate::endpoint::SetupError;

/// `provider/model`, split at the first `/`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModelRef {
    /// Provider id.
    pub provider: String,
    /// Model id at that provider.
    pub model: String,
}

impl ModelRef {
    /// Parses `provider/model`.
    pub fn parse(text: &str) -> Result<ModelRef, SetupError> {
        match text.split_once('/') {
            Some((provider, model)) if !provider.is_empty() && !model.is_empty() => Ok(ModelRef {
                provider: provider.to_owned(),
                model: model.to_owned(),
            }),
            _ => Err(SetupError::BadModelRef(text.to_owned())),
        }
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}/{}", self.provider, self.model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_refs_split_at_the_first_slash() {
        let reference = ModelRef::parse("openrouter/meta/llama-3").unwrap();
        assert_eq!(
            (reference.provider.as_str(), reference.model.as_str()),
            ("openrouter", "meta/llama-3")
        );
        assert!(ModelRef::parse("llama").is_err());
        assert!(ModelRef::parse("/x").is_err());
    }
}
