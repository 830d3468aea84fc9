//! Key configurations (RFC 9458 section 3): what a client needs to
//! encapsulate to a gateway, the `application/ohttp-keys` body that carries
//! several, and the seeds they are derived from. The gateway and the config
//! server are given the same seeds and publish the same configurations
//! without talking to each other.

use std::time::Duration;

use serde::Deserialize;
use zeroize::Zeroizing;

use crate::Error;
use crate::hpke::{
    AEAD_AES_128_GCM, AEAD_CHACHA20_POLY1305, Aead, KDF_HKDF_SHA256, KEM_X25519, KeyPair, NPK,
};
use crate::varint::Reader;

/// The media type of a list of key configurations.
pub const KEYS_MEDIA_TYPE: &str = "application/ohttp-keys";

/// A gateway's public key configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyConfig {
    /// The key identifier clients put in each request.
    pub key_id: u8,
    /// The X25519 public key.
    pub public_key: [u8; NPK],
    /// The (KDF, AEAD) pairs the gateway accepts, in its order of preference.
    pub symmetric: Vec<(u16, u16)>,
}

impl KeyConfig {
    /// The configuration of `pair` under `key_id`, offering HKDF-SHA256
    /// with AES-128-GCM and with ChaCha20-Poly1305 (what the `ohttp` crate
    /// offers by default, and the vectors use).
    pub fn new(key_id: u8, pair: &KeyPair) -> KeyConfig {
        KeyConfig {
            key_id,
            public_key: pair.public(),
            symmetric: vec![
                (KDF_HKDF_SHA256, AEAD_AES_128_GCM),
                (KDF_HKDF_SHA256, AEAD_CHACHA20_POLY1305),
            ],
        }
    }

    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(3 + NPK + 2 + 4 * self.symmetric.len());
        out.push(self.key_id);
        out.extend_from_slice(&KEM_X25519.to_be_bytes());
        out.extend_from_slice(&self.public_key);
        out.extend_from_slice(&((4 * self.symmetric.len()) as u16).to_be_bytes());
        for (kdf, aead) in &self.symmetric {
            out.extend_from_slice(&kdf.to_be_bytes());
            out.extend_from_slice(&aead.to_be_bytes());
        }
        out
    }

    /// Reads one configuration from `reader`. Only X25519 with HKDF-SHA256
    /// is understood; pairs with unknown AEADs are dropped, and a
    /// configuration left with none is refused.
    fn read(reader: &mut Reader<'_>) -> Result<KeyConfig, Error> {
        let key_id = reader.byte()?;
        let kem = reader.u16()?;
        if kem != KEM_X25519 {
            return Err(Error::Unsupported("a KEM other than X25519"));
        }
        let mut public_key = [0u8; NPK];
        public_key.copy_from_slice(reader.bytes(NPK)?);
        let length = reader.u16()? as usize;
        if length < 4 || !length.is_multiple_of(4) {
            return Err(Error::Malformed("the symmetric algorithms' length"));
        }
        let mut symmetric = Vec::new();
        for _ in 0..length / 4 {
            let (kdf, aead) = (reader.u16()?, reader.u16()?);
            if kdf == KDF_HKDF_SHA256 && Aead::from_id(aead).is_some() {
                symmetric.push((kdf, aead));
            }
        }
        if symmetric.is_empty() {
            return Err(Error::Unsupported("no KDF and AEAD pair this client knows"));
        }
        Ok(KeyConfig {
            key_id,
            public_key,
            symmetric,
        })
    }

    /// One configuration, the whole of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<KeyConfig, Error> {
        let mut reader = Reader::new(bytes);
        let config = KeyConfig::read(&mut reader)?;
        if !reader.is_empty() {
            return Err(Error::Malformed("bytes after the key configuration"));
        }
        Ok(config)
    }

    /// The first AEAD this configuration offers.
    pub fn preferred_aead(&self) -> Aead {
        self.symmetric
            .iter()
            .find_map(|(_, aead)| Aead::from_id(*aead))
            .expect("decoded and built configurations hold a known AEAD")
    }
}

/// An `application/ohttp-keys` body: each configuration preceded by its
/// two-byte length (RFC 9458 section 3.2).
pub fn encode_keys(configs: &[KeyConfig]) -> Vec<u8> {
    let mut out = Vec::new();
    for config in configs {
        let encoded = config.encode();
        out.extend_from_slice(&(encoded.len() as u16).to_be_bytes());
        out.extend_from_slice(&encoded);
    }
    out
}

/// The configurations of an `application/ohttp-keys` body. Configurations
/// this client cannot use are skipped (as RFC 9458 asks); a body with none
/// usable, or cut short, is refused.
pub fn decode_keys(body: &[u8]) -> Result<Vec<KeyConfig>, Error> {
    let mut reader = Reader::new(body);
    let mut configs = Vec::new();
    while !reader.is_empty() {
        let length = reader.u16()? as usize;
        let one = reader.bytes(length)?;
        if let Ok(config) = KeyConfig::decode(one) {
            configs.push(config);
        }
    }
    if configs.is_empty() {
        return Err(Error::Unsupported("no usable key configuration"));
    }
    Ok(configs)
}

/// One seed as given in `OHTTP_SEEDS_JSON`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedText {
    key_id: u8,
    seed_hex: String,
    active_from: String,
    active_until: String,
}

/// A seed: the key it derives is used from `active_from` until
/// `active_until`.
pub struct Seed {
    /// The key identifier.
    pub key_id: u8,
    seed: Zeroizing<Vec<u8>>,
    /// When the key starts to be accepted (time since the Unix epoch).
    pub active_from: Duration,
    /// When it stops.
    pub active_until: Duration,
}

impl std::fmt::Debug for Seed {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Seed")
            .field("key_id", &self.key_id)
            .field("active_from", &self.active_from)
            .field("active_until", &self.active_until)
            .finish_non_exhaustive()
    }
}

/// Seeds shorter than this are refused: the key is only as strong as its seed.
pub const MIN_SEED_BYTES: usize = 32;

impl Seed {
    /// The key pair this seed derives.
    pub fn key_pair(&self) -> KeyPair {
        KeyPair::derive(&self.seed)
    }

    /// Its public configuration.
    pub fn config(&self) -> KeyConfig {
        KeyConfig::new(self.key_id, &self.key_pair())
    }

    /// Whether its key is accepted at `now`.
    pub fn active(&self, now: Duration) -> bool {
        self.active_from <= now && now < self.active_until
    }
}

fn parse_time(text: &str, what: &str, key_id: u8) -> Result<Duration, Error> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(|time| u64::try_from(time.unix_timestamp_nanos()).ok())
        .map(Duration::from_nanos)
        .ok_or_else(|| {
            Error::Seeds(format!(
                "key {key_id}: {what} `{text}` is not an RFC 3339 time"
            ))
        })
}

/// Parses and checks the seeds JSON: a list of `{key_id, seed_hex,
/// active_from, active_until}`. Each seed at least [`MIN_SEED_BYTES`] of
/// hex, each period non-empty, key ids distinct among keys whose periods
/// overlap (a client could not tell them apart).
pub fn parse_seeds(text: &str) -> Result<Vec<Seed>, Error> {
    let list: Vec<SeedText> = serde_json::from_str(text)
        .map_err(|error| Error::Seeds(format!("not a list of seeds: {error}")))?;
    if list.is_empty() {
        return Err(Error::Seeds("the list holds no seed".into()));
    }
    let mut seeds = Vec::with_capacity(list.len());
    for item in list {
        let seed = Zeroizing::new(
            hex::decode(item.seed_hex.trim())
                .map_err(|_| Error::Seeds(format!("key {}: seed_hex is not hex", item.key_id)))?,
        );
        if seed.len() < MIN_SEED_BYTES {
            return Err(Error::Seeds(format!(
                "key {}: the seed is {} bytes; at least {MIN_SEED_BYTES} are needed",
                item.key_id,
                seed.len()
            )));
        }
        let active_from = parse_time(&item.active_from, "active_from", item.key_id)?;
        let active_until = parse_time(&item.active_until, "active_until", item.key_id)?;
        if active_until <= active_from {
            return Err(Error::Seeds(format!(
                "key {}: active_until is not after active_from",
                item.key_id
            )));
        }
        seeds.push(Seed {
            key_id: item.key_id,
            seed,
            active_from,
            active_until,
        });
    }
    for (index, one) in seeds.iter().enumerate() {
        for other in &seeds[index + 1..] {
            let overlap =
                one.active_from < other.active_until && other.active_from < one.active_until;
            if one.key_id == other.key_id && overlap {
                return Err(Error::Seeds(format!(
                    "key id {} is used by two seeds whose periods overlap",
                    one.key_id
                )));
            }
        }
    }
    Ok(seeds)
}

/// The seeds whose keys are accepted at `now`, newest first (the client's
/// preference).
pub fn active(seeds: &[Seed], now: Duration) -> Vec<&Seed> {
    let mut active: Vec<&Seed> = seeds.iter().filter(|seed| seed.active(now)).collect();
    active.sort_by_key(|seed| std::cmp::Reverse(seed.active_from));
    active
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn seeds_json(entries: &[(u8, &str, &str)]) -> String {
        let list: Vec<serde_json::Value> = entries
            .iter()
            .map(|(key_id, from, until)| {
                serde_json::json!({"key_id": key_id, "seed_hex": format!("{:02x}", key_id).repeat(32),
                                   "active_from": from, "active_until": until})
            })
            .collect();
        serde_json::to_string(&list).unwrap()
    }

    #[test]
    fn configs_round_trip_and_bodies_skip_what_a_client_cannot_use() {
        let config = KeyConfig::new(7, &KeyPair::generate());
        assert_eq!(KeyConfig::decode(&config.encode()).unwrap(), config);
        let mut p256 = config.encode();
        p256[1..3].copy_from_slice(&0x0010u16.to_be_bytes());
        let mut body = Vec::new();
        body.extend_from_slice(&(p256.len() as u16).to_be_bytes());
        body.extend_from_slice(&p256);
        body.extend_from_slice(&encode_keys(std::slice::from_ref(&config)));
        assert_eq!(decode_keys(&body).unwrap(), vec![config.clone()]);
        assert!(decode_keys(&body[..body.len() - 1]).is_err());
        assert!(
            decode_keys(&body[..2 + p256.len()]).is_err(),
            "nothing usable"
        );
    }

    #[test]
    fn seeds_are_checked_and_the_active_ones_chosen_newest_first() {
        let seeds = parse_seeds(&seeds_json(&[
            (1, "2026-01-01T00:00:00Z", "2026-01-01T02:00:00Z"),
            (2, "2026-01-01T01:00:00Z", "2026-01-01T03:00:00Z"),
        ]))
        .unwrap();
        let start = seeds[0].active_from;
        let ids = |now| {
            active(&seeds, now)
                .iter()
                .map(|seed| seed.key_id)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(start), vec![1]);
        assert_eq!(
            ids(start + HOUR + HOUR / 2),
            vec![2, 1],
            "the overlap: both, newest first"
        );
        assert_eq!(
            ids(start + 2 * HOUR),
            vec![2],
            "the old key ends at active_until"
        );
        assert!(ids(start + 3 * HOUR).is_empty());
        // Derivation is deterministic: two parses, the same public configs.
        let again = parse_seeds(&seeds_json(&[(
            1,
            "2026-01-01T00:00:00Z",
            "2026-01-01T02:00:00Z",
        )]))
        .unwrap();
        assert_eq!(again[0].config(), seeds[0].config());

        for (bad, says) in [
            ("[]".to_owned(), "no seed"),
            (seeds_json(&[(1, "soon", "2026-01-01T02:00:00Z")]), "RFC 3339"),
            (seeds_json(&[(1, "2026-01-01T02:00:00Z", "2026-01-01T00:00:00Z")]), "not after"),
            (
                seeds_json(&[(1, "2026-01-01T00:00:00Z", "2026-01-01T02:00:00Z"), (1, "2026-01-01T01:00:00Z", "2026-01-01T03:00:00Z")]),
                "overlap",
            ),
            (r#"[{"key_id": 1, "seed_hex": "00ff", "active_from": "2026-01-01T00:00:00Z", "active_until": "2026-01-02T00:00:00Z"}]"#.to_owned(), "at least 32"),
            (r#"[{"key_id": 1, "seed": "00"}]"#.to_owned(), "not a list of seeds"),
        ] {
            let error = parse_seeds(&bad).unwrap_err().to_string();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }
}
