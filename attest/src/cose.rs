//! COSE_Sign1 (RFC 9052) as attestation documents use it: ES384 over a
//! payload, tagged (18) or not, the unprotected header a map.

use ciborium::Value;

/// Largest document accepted, in bytes. AWS caps each field at 1 KiB and a
/// chain at a few certificates; real documents are 4 to 16 KiB.
pub const MAX_DOCUMENT: usize = 64 * 1024;

/// The COSE algorithm number of ECDSA with SHA-384 on P-384.
pub const ES384: i64 = -35;

/// A parsed COSE_Sign1 structure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoseSign1 {
    /// The protected header, as the bytes that were signed.
    pub protected: Vec<u8>,
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// The signature: r || s, 48 bytes each.
    pub signature: Vec<u8>,
}

/// Why bytes are not a COSE_Sign1 document this crate verifies.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CoseError {
    /// Larger than [`MAX_DOCUMENT`].
    #[error("the document is {0} bytes, more than the {MAX_DOCUMENT} accepted")]
    TooLarge(usize),
    /// Not CBOR, or CBOR followed by more bytes.
    #[error("not a CBOR item: {0}")]
    Cbor(String),
    /// CBOR, but not the COSE_Sign1 shape.
    #[error("not a COSE_Sign1 structure: {0}")]
    Shape(&'static str),
    /// A signature algorithm other than ES384.
    #[error("the signature algorithm is {0}, not ES384 (-35)")]
    Algorithm(String),
}

/// Decodes exactly one CBOR item from `bytes`.
pub fn decode_item(bytes: &[u8]) -> Result<Value, CoseError> {
    let mut reader = bytes;
    let value: Value = ciborium::de::from_reader(&mut reader)
        .map_err(|error| CoseError::Cbor(error.to_string()))?;
    if !reader.is_empty() {
        return Err(CoseError::Cbor(format!(
            "{} bytes follow the item",
            reader.len()
        )));
    }
    Ok(value)
}

/// Encodes a CBOR item (definite lengths, as COSE's signed structure wants).
pub fn encode_item(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(value, &mut out).expect("writing CBOR to a Vec cannot fail");
    out
}

/// Parses a COSE_Sign1 document signed with ES384.
pub fn parse(bytes: &[u8]) -> Result<CoseSign1, CoseError> {
    if bytes.len() > MAX_DOCUMENT {
        return Err(CoseError::TooLarge(bytes.len()));
    }
    let value = match decode_item(bytes)? {
        Value::Tag(18, inner) => *inner,
        Value::Tag(..) => return Err(CoseError::Shape("tagged, but not with tag 18")),
        value => value,
    };
    let Value::Array(items) = value else {
        return Err(CoseError::Shape("not an array"));
    };
    let [protected, unprotected, payload, signature] = <[Value; 4]>::try_from(items)
        .map_err(|_| CoseError::Shape("not an array of four items"))?;
    let Value::Bytes(protected) = protected else {
        return Err(CoseError::Shape(
            "the protected header is not a byte string",
        ));
    };
    if !matches!(unprotected, Value::Map(_)) {
        return Err(CoseError::Shape("the unprotected header is not a map"));
    }
    let Value::Bytes(payload) = payload else {
        return Err(CoseError::Shape("the payload is not a byte string"));
    };
    let Value::Bytes(signature) = signature else {
        return Err(CoseError::Shape("the signature is not a byte string"));
    };
    check_algorithm(&protected)?;
    if signature.len() != 96 {
        return Err(CoseError::Shape("an ES384 signature is 96 bytes"));
    }
    Ok(CoseSign1 {
        protected,
        payload,
        signature,
    })
}

fn check_algorithm(protected: &[u8]) -> Result<(), CoseError> {
    let Value::Map(entries) = decode_item(protected)? else {
        return Err(CoseError::Shape("the protected header is not a map"));
    };
    let algorithm = entries
        .iter()
        .find(|(key, _)| key.as_integer() == Some(1.into()))
        .map(|(_, value)| value);
    match algorithm.and_then(Value::as_integer) {
        Some(number) if number == ES384.into() => Ok(()),
        Some(number) => Err(CoseError::Algorithm(i128::from(number).to_string())),
        None => Err(CoseError::Algorithm("missing".into())),
    }
}

impl CoseSign1 {
    /// The bytes the signature covers: `Sig_structure` for `Signature1`
    /// with empty external data.
    pub fn signed_bytes(&self) -> Vec<u8> {
        signed_bytes(&self.protected, &self.payload)
    }

    /// The signature in ASN.1 DER (`ECDSA-Sig-Value`), as X.509 tools take it.
    pub fn der_signature(&self) -> Vec<u8> {
        let (r, s) = self.signature.split_at(self.signature.len() / 2);
        let r = der_integer(r);
        let s = der_integer(s);
        let mut out = vec![0x30];
        push_length(&mut out, r.len() + s.len());
        out.extend_from_slice(&r);
        out.extend_from_slice(&s);
        out
    }

    /// Encodes the document (untagged, as AWS does).
    pub fn to_bytes(&self) -> Vec<u8> {
        encode_item(&Value::Array(vec![
            Value::Bytes(self.protected.clone()),
            Value::Map(Vec::new()),
            Value::Bytes(self.payload.clone()),
            Value::Bytes(self.signature.clone()),
        ]))
    }
}

/// `Sig_structure` of a `Signature1` over `payload` with `protected`.
pub fn signed_bytes(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    encode_item(&Value::Array(vec![
        Value::Text("Signature1".into()),
        Value::Bytes(protected.to_vec()),
        Value::Bytes(Vec::new()),
        Value::Bytes(payload.to_vec()),
    ]))
}

/// The protected header `{1: -35}`.
pub fn es384_protected() -> Vec<u8> {
    encode_item(&Value::Map(vec![(
        Value::Integer(1.into()),
        Value::Integer(ES384.into()),
    )]))
}

fn der_integer(unsigned: &[u8]) -> Vec<u8> {
    let first = unsigned
        .iter()
        .position(|byte| *byte != 0)
        .unwrap_or(unsigned.len().saturating_sub(1));
    let digits = &unsigned[first..];
    let pad = digits.first().is_some_and(|byte| byte & 0x80 != 0);
    let mut out = vec![0x02];
    push_length(&mut out, digits.len() + usize::from(pad));
    if pad {
        out.push(0);
    }
    out.extend_from_slice(digits);
    out
}

fn push_length(out: &mut Vec<u8>, length: usize) {
    // Lengths here stay under 256 (two 49-byte integers at most).
    if length < 0x80 {
        out.push(length as u8);
    } else {
        out.push(0x81);
        out.push(length as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(protected: Vec<u8>, unprotected: Value, signature: Vec<u8>) -> Vec<u8> {
        encode_item(&Value::Array(vec![
            Value::Bytes(protected),
            unprotected,
            Value::Bytes(b"payload".to_vec()),
            Value::Bytes(signature),
        ]))
    }

    #[test]
    fn parses_tagged_and_untagged_documents() {
        let bytes = document(es384_protected(), Value::Map(vec![]), vec![1; 96]);
        let parsed = parse(&bytes).unwrap();
        assert_eq!(parsed.payload, b"payload");
        let tagged = encode_item(&Value::Tag(18, Box::new(decode_item(&bytes).unwrap())));
        assert_eq!(parse(&tagged).unwrap(), parsed);
        assert_eq!(parse(&parsed.to_bytes()).unwrap(), parsed);
    }

    #[test]
    fn refuses_other_algorithms_shapes_and_trailing_bytes() {
        let es256 = encode_item(&Value::Map(vec![(
            Value::Integer(1.into()),
            Value::Integer((-7).into()),
        )]));
        assert_eq!(
            parse(&document(es256, Value::Map(vec![]), vec![1; 96])),
            Err(CoseError::Algorithm("-7".into()))
        );
        assert!(matches!(
            parse(&document(es384_protected(), Value::Null, vec![1; 96])),
            Err(CoseError::Shape(_))
        ));
        assert!(matches!(
            parse(&document(
                es384_protected(),
                Value::Map(vec![]),
                vec![1; 64]
            )),
            Err(CoseError::Shape(_))
        ));
        let mut trailing = document(es384_protected(), Value::Map(vec![]), vec![1; 96]);
        trailing.push(0);
        assert!(matches!(parse(&trailing), Err(CoseError::Cbor(_))));
        let other_tag = encode_item(&Value::Tag(
            98,
            Box::new(
                decode_item(&document(
                    es384_protected(),
                    Value::Map(vec![]),
                    vec![1; 96],
                ))
                .unwrap(),
            ),
        ));
        assert!(matches!(parse(&other_tag), Err(CoseError::Shape(_))));
        assert_eq!(
            parse(&vec![0; MAX_DOCUMENT + 1]),
            Err(CoseError::TooLarge(MAX_DOCUMENT + 1))
        );
    }

    #[test]
    fn der_signatures_are_minimal_and_positive() {
        let mut raw = vec![0u8; 96];
        raw[0] = 0x80; // r needs a leading zero to stay positive
        raw[48..].copy_from_slice(&[0u8; 48]);
        raw[95] = 5; // s is 5
        let sign = CoseSign1 {
            protected: vec![],
            payload: vec![],
            signature: raw,
        };
        let der = sign.der_signature();
        assert_eq!(&der[..4], &[0x30, 0x36, 0x02, 0x31]);
        assert_eq!(der[4], 0);
        assert_eq!(&der[der.len() - 3..], &[0x02, 0x01, 0x05]);
    }
}
