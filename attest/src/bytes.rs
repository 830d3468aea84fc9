//! Byte fields of the TEE documents as CBOR byte strings (serde's
//! default would write arrays of integers).

/// Byte strings as CBOR byte strings.
pub(crate) mod cbor_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        ciborium::value::Value::deserialize(deserializer)?
            .into_bytes()
            .map_err(|_| serde::de::Error::custom("expected a byte string"))
    }
}

pub(crate) mod cbor_bytes_option {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        bytes: &Option<Vec<u8>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(bytes) => serializer.serialize_bytes(bytes),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        super::cbor_bytes::deserialize(deserializer).map(Some)
    }
}
