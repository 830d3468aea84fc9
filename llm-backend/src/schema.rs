//! How large a JSON schema a member may hold a reply to. A model server
//! turns the schema into a grammar before it generates anything, and
//! llama.cpp's conversion grows roughly with the cube of a schema's
//! optional properties (2,000 of them cost it 20 s of CPU, 3,000 cost
//! 62 s, only to end in an error), charged to no one. Pure: the schema in,
//! the first limit it passes out.

use serde_json::Value;

/// Most bytes of a schema, as JSON.
pub const MAX_SCHEMA_BYTES: usize = 32 * 1024;
/// Most properties, counted over every `properties` object in the schema.
pub const MAX_PROPERTIES: usize = 256;
/// Deepest nesting of the schema's JSON (objects and arrays).
pub const MAX_DEPTH: usize = 32;
/// Most `$ref`s (each can stand for a whole definition again).
pub const MAX_REFS: usize = 64;

/// The limit a schema passes, with what it holds.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SchemaTooLarge {
    /// Too many bytes.
    #[error("the JSON schema is {0} bytes; at most {MAX_SCHEMA_BYTES} are taken")]
    Bytes(usize),
    /// Too many properties.
    #[error(
        "the JSON schema has {0} properties; at most {MAX_PROPERTIES} are taken (counted over every `properties` object)"
    )]
    Properties(usize),
    /// Nested too deep.
    #[error("the JSON schema nests deeper than {MAX_DEPTH} levels")]
    Depth,
    /// Too many references.
    #[error("the JSON schema has {0} `$ref`s; at most {MAX_REFS} are taken")]
    Refs(usize),
}

/// Checks `schema` against the limits above.
pub fn check(schema: &Value) -> Result<(), SchemaTooLarge> {
    let mut counts = Counts::default();
    count(schema, 1, &mut counts)?;
    if counts.properties > MAX_PROPERTIES {
        return Err(SchemaTooLarge::Properties(counts.properties));
    }
    if counts.refs > MAX_REFS {
        return Err(SchemaTooLarge::Refs(counts.refs));
    }
    // Serialised last: the walk above has bounded what it can cost.
    let bytes = serde_json::to_vec(schema).map_or(usize::MAX, |bytes| bytes.len());
    if bytes > MAX_SCHEMA_BYTES {
        return Err(SchemaTooLarge::Bytes(bytes));
    }
    Ok(())
}

#[derive(Default)]
struct Counts {
    properties: usize,
    refs: usize,
}

fn count(value: &Value, depth: usize, counts: &mut Counts) -> Result<(), SchemaTooLarge> {
    if depth > MAX_DEPTH {
        return Err(SchemaTooLarge::Depth);
    }
    match value {
        Value::Object(object) => {
            for (key, inner) in object {
                match (key.as_str(), inner) {
                    ("properties", Value::Object(properties)) => {
                        counts.properties += properties.len();
                    }
                    ("$ref", _) => counts.refs += 1,
                    _ => {}
                }
                count(inner, depth + 1, counts)?;
            }
            Ok(())
        }
        Value::Array(items) => items
            .iter()
            .try_for_each(|item| count(item, depth + 1, counts)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// An object schema with `count` optional string properties.
    fn optional_properties(count: usize) -> Value {
        let properties: serde_json::Map<String, Value> = (0..count)
            .map(|index| (format!("p{index}"), json!({"type": "string"})))
            .collect();
        json!({"type": "object", "properties": properties})
    }

    #[test]
    fn a_schema_within_the_limits_is_taken() {
        assert_eq!(check(&optional_properties(MAX_PROPERTIES)), Ok(()));
        assert_eq!(
            check(
                &json!({"type": "object", "properties": {"open": {"type": "boolean"}},
                          "$defs": {"a": {"type": "string"}}, "required": ["open"]})
            ),
            Ok(())
        );
    }

    #[test]
    fn each_limit_is_named_when_passed() {
        assert_eq!(
            check(&optional_properties(3_000)),
            Err(SchemaTooLarge::Properties(3_000))
        );
        // Properties of nested objects count too.
        let nested = json!({"type": "object", "properties": {
            "a": optional_properties(200), "b": optional_properties(200)}});
        assert_eq!(check(&nested), Err(SchemaTooLarge::Properties(402)));
        let mut deep = json!({"type": "string"});
        for _ in 0..MAX_DEPTH {
            deep = json!({"items": deep});
        }
        assert_eq!(check(&deep), Err(SchemaTooLarge::Depth));
        let refs: Vec<Value> = (0..=MAX_REFS)
            .map(|_| json!({"$ref": "#/$defs/a"}))
            .collect();
        assert_eq!(
            check(&json!({"anyOf": refs})),
            Err(SchemaTooLarge::Refs(MAX_REFS + 1))
        );
        let long = json!({"type": "string", "enum": ["x".repeat(MAX_SCHEMA_BYTES)]});
        assert!(matches!(check(&long), Err(SchemaTooLarge::Bytes(_))));
        let said = SchemaTooLarge::Properties(3_000).to_string();
        assert!(
            said.contains("3000 properties") && said.contains("at most 256"),
            "{said}"
        );
    }
}
