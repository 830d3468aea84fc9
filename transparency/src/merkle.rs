//! The Merkle tree of RFC 9162 (section 2.1): leaf and node hashes, the
//! root of a list of leaves, inclusion and consistency proofs, and their
//! verification. Pure.

use sha2::{Digest as _, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// The hash of a leaf holding `data`: SHA-256(0x00 || data).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut hash = Sha256::new();
    hash.update([0u8]);
    hash.update(data);
    hash.finalize().into()
}

/// The hash of an inner node: SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hash = Sha256::new();
    hash.update([1u8]);
    hash.update(left);
    hash.update(right);
    hash.finalize().into()
}

/// The largest power of two smaller than `n` (n > 1).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// The root of a tree whose leaves hash to `leaves` (MTH).
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The proof that leaf `index` is in the tree of `leaves` (PATH), or
/// `None` when there is no such leaf.
pub fn inclusion_proof(index: usize, leaves: &[Hash]) -> Option<Vec<Hash>> {
    (index < leaves.len()).then(|| path(index, leaves))
}

fn path(index: usize, leaves: &[Hash]) -> Vec<Hash> {
    let n = leaves.len();
    if n <= 1 {
        return Vec::new();
    }
    let k = split(n);
    if index < k {
        let mut proof = path(index, &leaves[..k]);
        proof.push(root(&leaves[k..]));
        proof
    } else {
        let mut proof = path(index - k, &leaves[k..]);
        proof.push(root(&leaves[..k]));
        proof
    }
}

/// The proof that the tree of the first `first` leaves is a prefix of the
/// tree of `leaves` (PROOF), or `None` when `first` is larger.
pub fn consistency_proof(first: usize, leaves: &[Hash]) -> Option<Vec<Hash>> {
    (first <= leaves.len()).then(|| {
        if first == 0 || first == leaves.len() {
            Vec::new()
        } else {
            subproof(first, leaves, true)
        }
    })
}

fn subproof(m: usize, leaves: &[Hash], whole: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if whole {
            Vec::new()
        } else {
            vec![root(leaves)]
        };
    }
    let k = split(n);
    if m <= k {
        let mut proof = subproof(m, &leaves[..k], whole);
        proof.push(root(&leaves[k..]));
        proof
    } else {
        let mut proof = subproof(m - k, &leaves[k..], false);
        proof.push(root(&leaves[..k]));
        proof
    }
}

/// Whether `proof` shows the leaf hashing to `leaf` at `index` in the
/// tree of `size` leaves whose root is `root` (RFC 9162, 2.1.3.2).
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && r == *root
}

/// Whether `proof` shows the tree of `first` leaves with root
/// `first_root` is a prefix of the tree of `second` leaves with root
/// `second_root` (RFC 9162, 2.1.4.2).
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> bool {
    if first > second {
        return false;
    }
    if first == second {
        return proof.is_empty() && first_root == second_root;
    }
    if first == 0 {
        // Every tree extends the empty one.
        return proof.is_empty();
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(*first_root);
    }
    path.extend_from_slice(proof);
    let Some((start, rest)) = path.split_first() else {
        return false;
    };
    let (mut f, mut s) = (first - 1, second - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*start, *start);
    for c in rest {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && fr == *first_root && sr == *second_root
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|index| leaf_hash(&[index as u8, 0xab]))
            .collect()
    }

    #[test]
    fn the_empty_tree_and_the_smallest_ones_hash_as_rfc_9162_says() {
        assert_eq!(
            hex::encode(root(&[])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let one = leaf_hash(b"");
        assert_eq!(
            hex::encode(one),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        assert_eq!(root(&[one]), one);
        let two = [leaf_hash(b"a"), leaf_hash(b"b")];
        assert_eq!(root(&two), node_hash(&two[0], &two[1]));
        let three = [two[0], two[1], leaf_hash(b"c")];
        assert_eq!(root(&three), node_hash(&root(&two), &three[2]));
    }

    proptest! {
        #[test]
        fn every_leaf_is_proven_in_and_nothing_else(n in 1usize..70, index in 0usize..70, flip in 0usize..8) {
            let all = leaves(n);
            let top = root(&all);
            let index = index % n;
            let proof = inclusion_proof(index, &all).unwrap();
            prop_assert!(verify_inclusion(index as u64, n as u64, &all[index], &proof, &top));
            // Another leaf, index or size, or a changed proof, fails.
            prop_assert!(!verify_inclusion(index as u64, n as u64, &leaf_hash(b"other"), &proof, &top));
            if n > 1 {
                let other = (index + 1) % n;
                prop_assert!(!verify_inclusion(other as u64, n as u64, &all[index], &proof, &top) || all[other] == all[index]);
                prop_assert!(!verify_inclusion(index as u64, n as u64, &all[index], &proof, &root(&all[1..])));
                let mut bent = proof.clone();
                let at = flip % bent.len();
                bent[at][0] ^= 1;
                prop_assert!(!verify_inclusion(index as u64, n as u64, &all[index], &bent, &top));
            }
            prop_assert!(inclusion_proof(n, &all).is_none());
        }

        #[test]
        fn a_tree_is_proven_to_extend_each_of_its_prefixes_and_no_other(n in 1usize..70, m in 0usize..70) {
            let all = leaves(n);
            let m = m % (n + 1);
            let proof = consistency_proof(m, &all).unwrap();
            let (first, second) = (root(&all[..m]), root(&all));
            prop_assert!(verify_consistency(m as u64, n as u64, &first, &second, &proof));
            // A forked history of the same size: its prefix differs.
            if m > 0 && m < n {
                let mut forked = all.clone();
                forked[0] = leaf_hash(b"forked");
                prop_assert!(!verify_consistency(m as u64, n as u64, &root(&forked[..m]), &second, &proof));
                prop_assert!(!verify_consistency(m as u64, n as u64, &first, &root(&forked), &proof));
            }
            prop_assert!(consistency_proof(n + 1, &all).is_none());
            prop_assert!(!verify_consistency(n as u64 + 1, n as u64, &second, &first, &[]));
        }
    }
}
