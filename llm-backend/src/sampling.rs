//! Sampling settings besides the temperature, as every API may send them
//! (OpenAI's body, Ollama's `options`, Anthropic's `top_p` and
//! `stop_sequences`), read once with the same ranges, and written as the
//! fields a model server reads. Pure.

use serde_json::{Map, Value, json};

/// The most stop sequences a request may give.
pub const MAX_STOPS: usize = 4;

/// Sampling settings, each within its range.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sampling {
    /// Nucleus sampling, 0 to 1.
    pub top_p: Option<f64>,
    /// Texts that end the reply (at most [`MAX_STOPS`], none empty).
    pub stop: Vec<String>,
    /// The seed, for a repeatable reply.
    pub seed: Option<i64>,
    /// -2 to 2.
    pub frequency_penalty: Option<f64>,
    /// -2 to 2.
    pub presence_penalty: Option<f64>,
}

/// Why a sampling setting is refused: which field, and what it must be.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field} must be {rule}")]
pub struct SamplingError {
    /// The field, as the request named it.
    pub field: &'static str,
    /// What it must be.
    pub rule: &'static str,
}

impl Sampling {
    /// Reads `top_p`, `stop` (a text, or a list of texts), `seed`,
    /// `frequency_penalty` and `presence_penalty` from a request's fields;
    /// a `null` is no setting, and other fields are not read.
    pub fn read(fields: &Map<String, Value>) -> Result<Sampling, SamplingError> {
        let given = |field: &str| fields.get(field).filter(|value| !value.is_null());
        let number = |field: &'static str, low: f64, high: f64, rule: &'static str| {
            given(field)
                .map(|value| {
                    value
                        .as_f64()
                        .filter(|value| (low..=high).contains(value))
                        .ok_or(SamplingError { field, rule })
                })
                .transpose()
        };
        let stop = match given("stop") {
            None => Vec::new(),
            Some(Value::String(stop)) if !stop.is_empty() => vec![stop.clone()],
            Some(Value::Array(stops))
                if stops.len() <= MAX_STOPS
                    && stops
                        .iter()
                        .all(|stop| stop.as_str().is_some_and(|stop| !stop.is_empty())) =>
            {
                stops
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            }
            Some(_) => {
                return Err(SamplingError {
                    field: "stop",
                    rule: "a text or up to 4 texts, none empty",
                });
            }
        };
        let seed = given("seed")
            .map(|value| {
                value.as_i64().ok_or(SamplingError {
                    field: "seed",
                    rule: "a whole number",
                })
            })
            .transpose()?;
        Ok(Sampling {
            top_p: number("top_p", 0.0, 1.0, "a number from 0 to 1")?,
            stop,
            seed,
            frequency_penalty: number("frequency_penalty", -2.0, 2.0, "a number from -2 to 2")?,
            presence_penalty: number("presence_penalty", -2.0, 2.0, "a number from -2 to 2")?,
        })
    }

    /// The settings as the fields a model server reads (OpenAI's names,
    /// which Ollama's `options` share); none for what is not set.
    pub fn fields(&self) -> Map<String, Value> {
        let mut fields = Map::new();
        let mut set = |field: &str, value: Option<Value>| {
            if let Some(value) = value {
                fields.insert(field.to_owned(), value);
            }
        };
        set("top_p", self.top_p.map(|value| json!(value)));
        set("stop", (!self.stop.is_empty()).then(|| json!(self.stop)));
        set("seed", self.seed.map(|value| json!(value)));
        set(
            "frequency_penalty",
            self.frequency_penalty.map(|value| json!(value)),
        );
        set(
            "presence_penalty",
            self.presence_penalty.map(|value| json!(value)),
        );
        fields
    }

    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == Sampling::default()
    }
}

impl serde::Serialize for Sampling {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.fields().serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Sampling {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Sampling, D::Error> {
        let fields = Map::deserialize(deserializer)?;
        Sampling::read(&fields).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(fields: Value) -> Result<Sampling, SamplingError> {
        Sampling::read(fields.as_object().unwrap())
    }

    #[test]
    fn settings_are_read_in_range_and_written_back_the_same() {
        let fields = json!({"top_p": 0.9, "stop": ["END", "###"], "seed": 7,
                            "frequency_penalty": -1.5, "presence_penalty": 2, "num_ctx": 4096,
                            "temperature": 0.2});
        let sampling = read(fields).unwrap();
        assert_eq!(sampling.stop, ["END", "###"]);
        assert_eq!(sampling.seed, Some(7));
        let written = Value::Object(sampling.fields());
        assert_eq!(
            written,
            json!({"top_p": 0.9, "stop": ["END", "###"], "seed": 7,
                   "frequency_penalty": -1.5, "presence_penalty": 2.0})
        );
        // One text is a list of one; null is no setting.
        let one = read(json!({"stop": "END", "seed": null})).unwrap();
        assert_eq!((one.stop, one.seed), (vec!["END".to_owned()], None));
        assert!(read(json!({})).unwrap().is_empty());
    }

    #[test]
    fn each_setting_out_of_range_is_refused_with_its_rule() {
        for (fields, field) in [
            (json!({"top_p": 1.5}), "top_p"),
            (json!({"top_p": "high"}), "top_p"),
            (json!({"frequency_penalty": 3}), "frequency_penalty"),
            (json!({"presence_penalty": -2.5}), "presence_penalty"),
            (json!({"seed": 1.5}), "seed"),
            (json!({"stop": ["a", "b", "c", "d", "e"]}), "stop"),
            (json!({"stop": [""]}), "stop"),
            (json!({"stop": 4}), "stop"),
        ] {
            let refused = read(fields.clone()).unwrap_err();
            assert_eq!(refused.field, field, "{fields}");
            assert!(refused.to_string().starts_with(&format!("{field} must be")));
        }
    }
}
