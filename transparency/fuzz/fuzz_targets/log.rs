//! Fuzzes what a client reads from a config server's log: signed
//! checkpoints, the proofs beside a document (JSON), consistency proofs,
//! entries. Nothing panics; nothing the fuzzer makes verifies under a key
//! it does not hold; a proof the fuzzer bends from a real one fails.
#![no_main]

use std::sync::OnceLock;

use hearth_transparency::merkle::{leaf_hash, root, verify_consistency, verify_inclusion};
use hearth_transparency::proofs::{ConsistencyProof, LogProofs, hashes};
use hearth_transparency::{Checkpoint, Entry, Signer, Verifier};
use libfuzzer_sys::fuzz_target;

fn verifier() -> &'static Verifier {
    static KEY: OnceLock<Verifier> = OnceLock::new();
    KEY.get_or_init(|| {
        let (signer, _) = Signer::generate("fuzz.example/log").unwrap();
        Verifier::parse(&signer.verifier()).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    assert!(verifier().open(&text, "fuzz.example/log").is_err(), "an unsigned note opened");
    let _ = Verifier::parse(&text);
    let _ = Entry::parse(&text);
    if let Ok(proofs) = serde_json::from_slice::<LogProofs>(data) {
        assert!(proofs.verify(verifier(), "fuzz.example/log").is_err());
    }
    if let Ok(proof) = serde_json::from_slice::<ConsistencyProof>(data)
        && let Ok(path) = hashes(&proof.proof)
    {
        let _ = verify_consistency(proof.first, proof.second, &[0; 32], &[1; 32], &path);
    }
    // Bytes as a tree: leaves of 8 bytes; every inclusion proof holds, and
    // holds for no other leaf.
    let leaves: Vec<_> = data.chunks(8).take(64).map(leaf_hash).collect();
    if !leaves.is_empty() {
        let top = root(&leaves);
        let index = usize::from(data[0]) % leaves.len();
        let proof = hearth_transparency::merkle::inclusion_proof(index, &leaves).unwrap();
        assert!(verify_inclusion(index as u64, leaves.len() as u64, &leaves[index], &proof, &top));
        let other = leaf_hash(b"not in the tree");
        assert!(!verify_inclusion(index as u64, leaves.len() as u64, &other, &proof, &top));
        let checkpoint = Checkpoint {
            origin: "fuzz.example/log".into(),
            size: leaves.len() as u64,
            root: top,
        };
        assert!(checkpoint.text().ends_with('\n'));
    }
});
