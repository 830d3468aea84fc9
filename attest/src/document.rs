//! The attestation document: the CBOR map an AWS Nitro Secure Module signs
//! (and Hearth's dev evidence imitates), parsed into checked fields.
//!
//! Field rules follow AWS's description of the NSM document: `module_id`
//! non-empty text, `digest` "SHA384", `timestamp` milliseconds, `pcrs` 1 to 32
//! entries of 32, 48 or 64 bytes, `certificate` and each `cabundle` entry 1 to
//! 1024 bytes, `public_key`, `user_data` and `nonce` optional, at most 1024
//! bytes. Maps may be of definite or indefinite length.

use std::collections::BTreeMap;

use ciborium::Value;

use crate::cose::{decode_item, encode_item};

/// Largest `public_key`, `user_data`, `nonce`, certificate.
pub const MAX_FIELD: usize = 1024;

/// A parsed attestation document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    /// Which enclave (instance and enclave id) made it.
    pub module_id: String,
    /// The digest of the PCRs ("SHA384").
    pub digest: String,
    /// Milliseconds since the Unix epoch, by the module's clock.
    pub timestamp_ms: u64,
    /// Platform configuration registers by index.
    pub pcrs: BTreeMap<u8, Vec<u8>>,
    /// The signing certificate (DER).
    pub certificate: Vec<u8>,
    /// The chain above it, root first (DER).
    pub cabundle: Vec<Vec<u8>>,
    /// The key the enclave bound into the document.
    pub public_key: Option<Vec<u8>>,
    /// Application data.
    pub user_data: Option<Vec<u8>>,
    /// The nonce the requester gave.
    pub nonce: Option<Vec<u8>>,
}

/// Why a payload is not an attestation document.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DocumentError {
    /// Not CBOR.
    #[error("the payload is not CBOR: {0}")]
    Cbor(String),
    /// Not a map with text keys.
    #[error("the payload is not a map of named fields")]
    NotAMap,
    /// A field appears twice.
    #[error("`{0}` appears twice")]
    Duplicate(String),
    /// A required field is absent.
    #[error("`{0}` is missing")]
    Missing(&'static str),
    /// A field has the wrong type or size.
    #[error("`{field}` {problem}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
}

fn invalid(field: &'static str, problem: impl Into<String>) -> DocumentError {
    DocumentError::Invalid {
        field,
        problem: problem.into(),
    }
}

const FIELDS: [&str; 9] = [
    "module_id",
    "digest",
    "timestamp",
    "pcrs",
    "certificate",
    "cabundle",
    "public_key",
    "user_data",
    "nonce",
];

impl Document {
    /// Parses the payload of a COSE_Sign1 attestation document.
    pub fn parse(payload: &[u8]) -> Result<Document, DocumentError> {
        let value = decode_item(payload).map_err(|error| DocumentError::Cbor(error.to_string()))?;
        let Value::Map(entries) = value else {
            return Err(DocumentError::NotAMap);
        };
        let mut fields: BTreeMap<&'static str, Value> = BTreeMap::new();
        for (key, value) in entries {
            let Value::Text(key) = key else {
                return Err(DocumentError::NotAMap);
            };
            // Fields AWS may add later are not interpreted, so not refused.
            let Some(name) = FIELDS.iter().find(|name| **name == key) else {
                continue;
            };
            if fields.insert(name, value).is_some() {
                return Err(DocumentError::Duplicate(key));
            }
        }
        let mut take = |name: &'static str| fields.remove(name);
        let module_id = match take("module_id").ok_or(DocumentError::Missing("module_id"))? {
            Value::Text(text) if !text.is_empty() => text,
            _ => return Err(invalid("module_id", "is not non-empty text")),
        };
        let digest = match take("digest").ok_or(DocumentError::Missing("digest"))? {
            Value::Text(text) if text == "SHA384" => text,
            _ => return Err(invalid("digest", "is not \"SHA384\"")),
        };
        let timestamp_ms = take("timestamp")
            .ok_or(DocumentError::Missing("timestamp"))?
            .as_integer()
            .and_then(|number| u64::try_from(number).ok())
            .filter(|number| *number > 0)
            .ok_or_else(|| invalid("timestamp", "is not a positive integer"))?;
        let pcrs = parse_pcrs(take("pcrs").ok_or(DocumentError::Missing("pcrs"))?)?;
        let certificate = bytes(
            "certificate",
            take("certificate").ok_or(DocumentError::Missing("certificate"))?,
            1,
        )?;
        let cabundle = match take("cabundle").ok_or(DocumentError::Missing("cabundle"))? {
            Value::Array(items) if items.len() <= 8 => items
                .into_iter()
                .map(|item| bytes("cabundle", item, 1))
                .collect::<Result<Vec<_>, _>>()?,
            _ => {
                return Err(invalid(
                    "cabundle",
                    "is not an array of at most 8 certificates",
                ));
            }
        };
        let public_key = optional_bytes("public_key", take("public_key"))?;
        let user_data = optional_bytes("user_data", take("user_data"))?;
        let nonce = optional_bytes("nonce", take("nonce"))?;
        Ok(Document {
            module_id,
            digest,
            timestamp_ms,
            pcrs,
            certificate,
            cabundle,
            public_key,
            user_data,
            nonce,
        })
    }

    /// Encodes the document as a CBOR map (definite length, AWS's order).
    pub fn to_cbor(&self) -> Vec<u8> {
        let text = |name: &str| Value::Text(name.into());
        let optional = |value: &Option<Vec<u8>>| match value {
            Some(bytes) => Value::Bytes(bytes.clone()),
            None => Value::Null,
        };
        encode_item(&Value::Map(vec![
            (text("module_id"), Value::Text(self.module_id.clone())),
            (text("digest"), Value::Text(self.digest.clone())),
            (text("timestamp"), Value::Integer(self.timestamp_ms.into())),
            (
                text("pcrs"),
                Value::Map(
                    self.pcrs
                        .iter()
                        .map(|(index, value)| {
                            (Value::Integer((*index).into()), Value::Bytes(value.clone()))
                        })
                        .collect(),
                ),
            ),
            (text("certificate"), Value::Bytes(self.certificate.clone())),
            (
                text("cabundle"),
                Value::Array(self.cabundle.iter().cloned().map(Value::Bytes).collect()),
            ),
            (text("public_key"), optional(&self.public_key)),
            (text("user_data"), optional(&self.user_data)),
            (text("nonce"), optional(&self.nonce)),
        ]))
    }

    /// Whether the enclave ran in debug mode: AWS zeroes PCR0, PCR1 and
    /// PCR2 then (its memory can be read from outside).
    pub fn debug_mode(&self) -> bool {
        [0u8, 1, 2].iter().all(|index| {
            self.pcrs
                .get(index)
                .is_none_or(|value| value.iter().all(|byte| *byte == 0))
        })
    }
}

fn parse_pcrs(value: Value) -> Result<BTreeMap<u8, Vec<u8>>, DocumentError> {
    let Value::Map(entries) = value else {
        return Err(invalid("pcrs", "is not a map"));
    };
    if entries.is_empty() || entries.len() > 32 {
        return Err(invalid("pcrs", "must hold 1 to 32 registers"));
    }
    let mut pcrs = BTreeMap::new();
    for (index, value) in entries {
        let index = index
            .as_integer()
            .and_then(|number| u8::try_from(number).ok())
            .filter(|number| *number < 32)
            .ok_or_else(|| invalid("pcrs", "has an index outside 0..32"))?;
        let Value::Bytes(value) = value else {
            return Err(invalid("pcrs", format!("PCR{index} is not a byte string")));
        };
        if ![32, 48, 64].contains(&value.len()) {
            return Err(invalid(
                "pcrs",
                format!("PCR{index} is {} bytes, not 32, 48 or 64", value.len()),
            ));
        }
        if pcrs.insert(index, value).is_some() {
            return Err(invalid("pcrs", format!("PCR{index} appears twice")));
        }
    }
    Ok(pcrs)
}

fn bytes(field: &'static str, value: Value, least: usize) -> Result<Vec<u8>, DocumentError> {
    match value {
        Value::Bytes(bytes) if (least..=MAX_FIELD).contains(&bytes.len()) => Ok(bytes),
        Value::Bytes(bytes) => Err(invalid(
            field,
            format!("is {} bytes, not {least} to {MAX_FIELD}", bytes.len()),
        )),
        _ => Err(invalid(field, "is not a byte string")),
    }
}

fn optional_bytes(
    field: &'static str,
    value: Option<Value>,
) -> Result<Option<Vec<u8>>, DocumentError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(value) => bytes(field, value, 0).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Document {
        Document {
            module_id: "i-0123-enc0123".into(),
            digest: "SHA384".into(),
            timestamp_ms: 1_700_000_000_000,
            pcrs: (0..16).map(|index| (index, vec![index; 48])).collect(),
            certificate: vec![0x30; 300],
            cabundle: vec![vec![0x30; 500], vec![0x30; 600]],
            public_key: Some(vec![7; 52]),
            user_data: None,
            nonce: Some(vec![9; 20]),
        }
    }

    #[test]
    fn a_document_survives_encoding() {
        let document = sample();
        assert_eq!(Document::parse(&document.to_cbor()).unwrap(), document);
    }

    #[test]
    fn debug_mode_is_pcr0_to_2_all_zero() {
        let mut document = sample();
        assert!(!document.debug_mode());
        for index in 0..3 {
            document.pcrs.insert(index, vec![0; 48]);
        }
        assert!(document.debug_mode());
    }

    fn with(field: &str, value: Value) -> Vec<u8> {
        let Value::Map(mut entries) = decode_item(&sample().to_cbor()).unwrap() else {
            unreachable!()
        };
        for entry in &mut entries {
            if entry.0.as_text() == Some(field) {
                entry.1 = value.clone();
            }
        }
        encode_item(&Value::Map(entries))
    }

    #[test]
    fn refuses_fields_of_the_wrong_type_or_size() {
        let cases = [
            ("module_id", Value::Text(String::new())),
            ("digest", Value::Text("SHA256".into())),
            ("timestamp", Value::Integer((-1).into())),
            ("timestamp", Value::Float(1.5)),
            ("pcrs", Value::Map(vec![])),
            (
                "pcrs",
                Value::Map(vec![(Value::Integer(40.into()), Value::Bytes(vec![0; 48]))]),
            ),
            (
                "pcrs",
                Value::Map(vec![(Value::Integer(0.into()), Value::Bytes(vec![0; 47]))]),
            ),
            ("certificate", Value::Bytes(vec![])),
            ("certificate", Value::Bytes(vec![1; MAX_FIELD + 1])),
            ("cabundle", Value::Bytes(vec![1])),
            ("public_key", Value::Text("key".into())),
            ("nonce", Value::Bytes(vec![1; MAX_FIELD + 1])),
        ];
        for (field, value) in cases {
            let error = Document::parse(&with(field, value.clone())).unwrap_err();
            assert!(
                matches!(&error, DocumentError::Invalid { field: named, .. } if *named == field),
                "{field} = {value:?}: {error}"
            );
        }
    }

    #[test]
    fn refuses_missing_and_duplicate_fields() {
        let Value::Map(entries) = decode_item(&sample().to_cbor()).unwrap() else {
            unreachable!()
        };
        let without: Vec<_> = entries
            .iter()
            .filter(|(key, _)| key.as_text() != Some("pcrs"))
            .cloned()
            .collect();
        assert_eq!(
            Document::parse(&encode_item(&Value::Map(without))),
            Err(DocumentError::Missing("pcrs"))
        );
        let mut twice = entries.clone();
        twice.push(entries[0].clone());
        assert_eq!(
            Document::parse(&encode_item(&Value::Map(twice))),
            Err(DocumentError::Duplicate("module_id".into()))
        );
        let mut extra = entries;
        extra.push((Value::Text("later".into()), Value::Bool(true)));
        assert!(Document::parse(&encode_item(&Value::Map(extra))).is_ok());
    }
}
