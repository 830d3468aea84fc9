//! JSON5 configuration files (OpenClaw's `openclaw.json` style): comments
//! and trailing commas allowed, `${VAR}` replaced from the environment in
//! any string, then read into a typed struct whose unknown keys are refused;
//! every failure names where it is (`gateway.bnd: unknown field ...`).

use serde_json::Value;

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not JSON5.
    #[error("{0}")]
    Syntax(String),
    /// A `${VAR}` names an unset variable.
    #[error("{path}: environment variable `{name}` is not set")]
    MissingVariable {
        /// Where.
        path: String,
        /// Which variable.
        name: String,
    },
    /// A key or value does not fit the schema.
    #[error("{path}: {message}")]
    Schema {
        /// Where (dotted path).
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The values fit the schema one by one but not together (something
    /// needed is missing, or two contradict): what to change.
    #[error("{0}")]
    Unusable(String),
}

impl ConfigError {
    /// The value at `path` is not usable: `message` says why.
    pub fn at(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Schema {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl From<serde_json::Error> for ConfigError {
    fn from(error: serde_json::Error) -> ConfigError {
        ConfigError::Syntax(error.to_string())
    }
}

/// A `${NAME}` whose variable is not set.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the environment variable {0} is not set")]
pub struct UnsetVariable(pub String);

/// Replaces `${NAME}` in every string of `value` (`path` names where, for
/// errors), looking names up with `lookup`.
pub fn substitute(
    value: &mut Value,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    match value {
        Value::String(text) => {
            *text = expand(text, lookup).map_err(|UnsetVariable(name)| {
                ConfigError::MissingVariable {
                    path: path.to_owned(),
                    name,
                }
            })?;
        }
        Value::Array(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                substitute(item, &format!("{path}[{index}]"), lookup)?;
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                substitute(item, &child, lookup)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// `text` with each `${NAME}` replaced by `lookup(NAME)`; the name of the
/// first unset variable on failure. An unclosed `${` is left as it is.
pub fn expand(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, UnsetVariable> {
    let mut result = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let Some(length) = rest[start + 2..].find('}') else {
            break;
        };
        let name = &rest[start + 2..start + 2 + length];
        let replacement = lookup(name).ok_or_else(|| UnsetVariable(name.to_owned()))?;
        result.push_str(&rest[..start]);
        result.push_str(&replacement);
        rest = &rest[start + 3 + length..];
    }
    result.push_str(rest);
    Ok(result)
}

/// Reads a JSON5 configuration into `T`: syntax, then `${VAR}` from
/// `lookup`, then the schema, each failure naming where it is.
pub fn parse_json5<T: serde::de::DeserializeOwned>(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<T, ConfigError> {
    let mut value: Value =
        json5::from_str(text).map_err(|error| ConfigError::Syntax(error.to_string()))?;
    substitute(&mut value, "", lookup)?;
    serde_path_to_error::deserialize(value).map_err(|error| ConfigError::Schema {
        path: error.path().to_string(),
        message: error.inner().to_string(),
    })
}

/// A configuration read from a JSON5 file: [`parse_json5`], then the checks
/// the schema cannot express ([`FileConfig::check`]).
pub trait FileConfig: serde::de::DeserializeOwned {
    /// What the schema cannot say (values that depend on each other...).
    fn check(&self) -> Result<(), ConfigError> {
        Ok(())
    }

    /// Parses JSON5 `text`, substituting variables from the environment.
    fn parse(text: &str) -> Result<Self, ConfigError> {
        Self::parse_with(text, &|name| std::env::var(name).ok())
    }

    /// Parses JSON5 `text`, substituting variables from `lookup`.
    fn parse_with(
        text: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let config: Self = parse_json5(text, lookup)?;
        config.check()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Small {
        name: String,
        #[serde(default)]
        port: u16,
    }

    #[test]
    fn mistakes_are_named_with_their_path() {
        let lookup = |name: &str| (name == "WHO").then(|| "hub".to_owned());
        let small: Small =
            parse_json5("{ name: '${WHO}', // a comment\n port: 1, }", &lookup).unwrap();
        assert_eq!((small.name.as_str(), small.port), ("hub", 1));
        let error = parse_json5::<Small>("{ name: 'x', prot: 1 }", &lookup).unwrap_err();
        assert!(
            error.to_string().starts_with("prot: unknown field"),
            "{error}"
        );
        let error = parse_json5::<Small>("{ name: '${NOPE}' }", &lookup).unwrap_err();
        assert_eq!(
            error.to_string(),
            "name: environment variable `NOPE` is not set"
        );
        assert!(matches!(
            parse_json5::<Small>("{ name: ", &lookup),
            Err(ConfigError::Syntax(_))
        ));
    }
}
