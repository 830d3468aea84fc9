//! What the config server hands a client beside its document: the log's
//! signed checkpoint and, for each entry the document relies on (the
//! active OHTTP keys, the policy's images), its index and inclusion proof;
//! and, on request, the consistency proof between two sizes. Pure.

use serde::{Deserialize, Serialize};

use crate::entry::Entry;
use crate::merkle::{Hash, leaf_hash, verify_inclusion};
use crate::note::{Checkpoint, NoteError, Verifier};

/// Most entries one document's proofs cover.
pub const MAX_PROVEN: usize = 256;

/// An entry with its place in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggedEntry {
    /// Its index.
    pub index: u64,
    /// Its bytes (JSON).
    pub entry: String,
    /// Its inclusion proof at the checkpoint's size, hex hashes.
    pub proof: Vec<String>,
}

/// The log's checkpoint and the proofs of the entries a document uses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogProofs {
    /// The checkpoint, a signed note.
    pub checkpoint: String,
    /// The entries proven.
    pub entries: Vec<LoggedEntry>,
}

/// A consistency proof between two sizes of the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyProof {
    /// The smaller size.
    pub first: u64,
    /// The larger size.
    pub second: u64,
    /// The proof, hex hashes.
    pub proof: Vec<String>,
}

/// Why the log's word is not taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The checkpoint.
    #[error("the log's checkpoint: {0}")]
    Checkpoint(#[from] NoteError),
    /// An entry's proof.
    #[error("entry {index} is not in the log at {size} entries as its proof claims")]
    NotIncluded {
        /// The entry's claimed index.
        index: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// Something malformed.
    #[error("the log's proofs: {0}")]
    Format(String),
}

/// Hex hashes, read.
pub fn hashes(proof: &[String]) -> Result<Vec<Hash>, ProofError> {
    proof
        .iter()
        .map(|hash| {
            hex::decode(hash)
                .ok()
                .and_then(|bytes| bytes.try_into().ok())
                .ok_or_else(|| ProofError::Format(format!("{hash:?} is not a SHA-256 hash in hex")))
        })
        .collect()
}

/// Hashes as hex.
pub fn hex_hashes(proof: &[Hash]) -> Vec<String> {
    proof.iter().map(hex::encode).collect()
}

/// Entries the log proved, at a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proven {
    /// The checkpoint (signature checked).
    pub checkpoint: Checkpoint,
    /// The entries, each shown to be in the tree at that checkpoint.
    pub entries: Vec<(u64, Entry)>,
}

impl LogProofs {
    /// Checks the checkpoint (signed by `verifier`, of the log `origin`)
    /// and every entry's inclusion in it.
    pub fn verify(&self, verifier: &Verifier, origin: &str) -> Result<Proven, ProofError> {
        let checkpoint = verifier.open(&self.checkpoint, origin)?;
        if self.entries.len() > MAX_PROVEN {
            return Err(ProofError::Format(format!(
                "{} entries, more than {MAX_PROVEN}",
                self.entries.len()
            )));
        }
        let mut entries = Vec::with_capacity(self.entries.len());
        for logged in &self.entries {
            let proof = hashes(&logged.proof)?;
            let leaf = leaf_hash(logged.entry.as_bytes());
            if !verify_inclusion(
                logged.index,
                checkpoint.size,
                &leaf,
                &proof,
                &checkpoint.root,
            ) {
                return Err(ProofError::NotIncluded {
                    index: logged.index,
                    size: checkpoint.size,
                });
            }
            let entry = Entry::parse(&logged.entry)
                .map_err(|error| ProofError::Format(error.to_string()))?;
            entries.push((logged.index, entry));
        }
        Ok(Proven {
            checkpoint,
            entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{inclusion_proof, root};
    use crate::note::Signer;
    use std::collections::BTreeMap;

    #[test]
    fn proofs_hold_only_for_what_the_log_holds() {
        let lines: Vec<String> = (0..5)
            .map(|index| {
                Entry::Image {
                    evidence: "hearth-dev".into(),
                    name: format!("image {index}"),
                    measurements: BTreeMap::from([("pcr0".into(), format!("{index:02x}"))]),
                }
                .to_line()
            })
            .collect();
        let leaves: Vec<Hash> = lines
            .iter()
            .map(|line| leaf_hash(line.as_bytes()))
            .collect();
        let (signer, _) = Signer::generate("log").unwrap();
        let verifier = Verifier::parse(&signer.verifier()).unwrap();
        let checkpoint = Checkpoint {
            origin: "log".into(),
            size: 5,
            root: root(&leaves),
        };
        let proven = |index: usize, entry: &str| LoggedEntry {
            index: index as u64,
            entry: entry.to_owned(),
            proof: hex_hashes(&inclusion_proof(index, &leaves).unwrap()),
        };
        let proofs = LogProofs {
            checkpoint: signer.sign(&checkpoint),
            entries: vec![proven(1, &lines[1]), proven(4, &lines[4])],
        };
        let verified = proofs.verify(&verifier, "log").unwrap();
        assert_eq!(verified.entries.len(), 2);
        assert_eq!(verified.checkpoint, checkpoint);
        // An entry the log does not hold, under another's proof.
        let forged = Entry::OhttpKey {
            key_id: 9,
            config: "AA==".into(),
            active_from: "2026-01-01T00:00:00Z".into(),
            active_until: "2027-01-01T00:00:00Z".into(),
        }
        .to_line();
        let bad = LogProofs {
            entries: vec![proven(1, &forged)],
            ..proofs.clone()
        };
        assert_eq!(
            bad.verify(&verifier, "log"),
            Err(ProofError::NotIncluded { index: 1, size: 5 })
        );
        let garbled = LogProofs {
            entries: vec![LoggedEntry {
                proof: vec!["zz".into()],
                ..proven(1, &lines[1])
            }],
            ..proofs
        };
        assert!(matches!(
            garbled.verify(&verifier, "log"),
            Err(ProofError::Format(_))
        ));
    }
}
