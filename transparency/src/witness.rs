//! A client's memory of the log: the last checkpoint it accepted. A new
//! checkpoint is accepted only if it extends that one (a consistency
//! proof), so a log that shows one history to this client and another to
//! others, or rewrites its past, is caught the first time this client sees
//! the other branch. Pure; callers keep the note wherever they like.

use crate::merkle::{Hash, verify_consistency};
use crate::note::Checkpoint;

/// Why a checkpoint is not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ForkError {
    /// Smaller than one already seen: the log went back.
    #[error("the log shrank from {kept} to {offered} entries (a rollback)")]
    Rollback {
        /// What was kept.
        kept: u64,
        /// What was offered.
        offered: u64,
    },
    /// Not an extension of what was seen: the log forked.
    #[error(
        "the log at {offered} entries does not extend the {kept} this client saw: the log forked"
    )]
    Forked {
        /// What was kept.
        kept: u64,
        /// What was offered.
        offered: u64,
    },
}

/// The last checkpoint accepted, if any.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Witness {
    kept: Option<Checkpoint>,
}

impl Witness {
    /// A witness that has seen `kept`.
    pub fn with(kept: Option<Checkpoint>) -> Witness {
        Witness { kept }
    }

    /// What it kept.
    pub fn kept(&self) -> Option<&Checkpoint> {
        self.kept.as_ref()
    }

    /// The consistency proof `offered` needs (from size, to size), if any.
    pub fn proof_needed(&self, offered: &Checkpoint) -> Option<(u64, u64)> {
        let kept = self.kept.as_ref()?;
        (kept.size > 0 && kept.size < offered.size).then_some((kept.size, offered.size))
    }

    /// Accepts `offered` if it extends what was kept (`proof`: the
    /// consistency proof [`Witness::proof_needed`] asked for).
    pub fn accept(&mut self, offered: &Checkpoint, proof: &[Hash]) -> Result<(), ForkError> {
        if let Some(kept) = &self.kept {
            let (from, to) = (kept.size, offered.size);
            if to < from {
                return Err(ForkError::Rollback {
                    kept: from,
                    offered: to,
                });
            }
            if kept.origin != offered.origin
                || !verify_consistency(from, to, &kept.root, &offered.root, proof)
            {
                return Err(ForkError::Forked {
                    kept: from,
                    offered: to,
                });
            }
        }
        self.kept = Some(offered.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{consistency_proof, leaf_hash, root};

    fn tree(n: usize, salt: u8) -> Vec<Hash> {
        (0..n)
            .map(|index| leaf_hash(&[index as u8, salt]))
            .collect()
    }

    fn checkpoint(leaves: &[Hash]) -> Checkpoint {
        Checkpoint {
            origin: "log".into(),
            size: leaves.len() as u64,
            root: root(leaves),
        }
    }

    #[test]
    fn a_log_that_grows_is_followed_and_one_that_forks_or_shrinks_is_caught() {
        let history = tree(9, 0);
        let mut witness = Witness::default();
        witness.accept(&checkpoint(&history[..4]), &[]).unwrap();
        let grown = checkpoint(&history);
        assert_eq!(witness.proof_needed(&grown), Some((4, 9)));
        let proof = consistency_proof(4, &history).unwrap();
        witness.accept(&grown, &proof).unwrap();
        assert_eq!(witness.kept(), Some(&grown));
        // The same size again, the same root: fine; another root: a fork.
        witness.accept(&grown, &[]).unwrap();
        let mut other = history.clone();
        other[2] = leaf_hash(b"rewritten");
        assert_eq!(
            witness.accept(&checkpoint(&other), &[]),
            Err(ForkError::Forked {
                kept: 9,
                offered: 9
            })
        );
        // A longer branch that rewrote the past, whatever proof it offers.
        let mut branch = other.clone();
        branch.extend(tree(3, 7));
        let forged = consistency_proof(9, &branch).unwrap();
        assert!(witness.accept(&checkpoint(&branch), &forged).is_err());
        assert_eq!(
            witness.accept(&checkpoint(&history[..5]), &[]),
            Err(ForkError::Rollback {
                kept: 9,
                offered: 5
            })
        );
        assert_eq!(witness.kept(), Some(&grown), "nothing refused was kept");
    }
}
