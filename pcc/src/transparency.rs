//! What a client takes from the transparency log
//! ([`hearth_transparency`]): the log entries for the images a policy
//! trusts and the OHTTP keys a config server publishes (the operator
//! appends them with `hearth-pcc log add-images` / `add-keys`); and the
//! client's decisions: a document's proofs verify against the pinned log
//! key and extend the checkpoint this client kept (else the log forked),
//! the key it seals to is logged, and only logged images stay trusted.
//! Pure: the caller fetches and keeps.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use hearth_attest::policy::{Policy, Transparency};
use hearth_ohttp::KeyConfig;
use hearth_transparency::proofs::{ConsistencyProof, Proven, hashes};
use hearth_transparency::{Checkpoint, Entry, Verifier, Witness};

use crate::config::ApiConfig;
use crate::error::PccError;

/// The entry family of Nitro and dev images (PCRs).
pub const PCRS: &str = "pcrs";

/// The log entries of every image `policy` trusts.
pub fn image_entries(policy: &Policy) -> Vec<Entry> {
    let lower = |value: &str| value.to_ascii_lowercase();
    let mut entries: Vec<Entry> = policy
        .images
        .iter()
        .map(|image| Entry::Image {
            evidence: PCRS.into(),
            name: image.name.clone(),
            measurements: image
                .pcrs
                .iter()
                .map(|(index, value)| (format!("pcr{index}"), lower(value)))
                .collect(),
        })
        .collect();
    entries.extend(policy.sev_snp.images.iter().map(|image| {
        let mut measurements =
            BTreeMap::from([("measurement".to_owned(), lower(&image.measurement))]);
        if let Some(host_data) = &image.host_data {
            measurements.insert("host_data".into(), lower(host_data));
        }
        Entry::Image {
            evidence: hearth_attest::evidence::AMD_SEV_SNP.into(),
            name: image.name.clone(),
            measurements,
        }
    }));
    entries.extend(policy.tdx.images.iter().map(|image| {
        let mut measurements = BTreeMap::from([
            ("mrtd".to_owned(), lower(&image.mrtd)),
            ("rtmr0".to_owned(), lower(&image.rtmr0)),
            ("rtmr1".to_owned(), lower(&image.rtmr1)),
            ("rtmr2".to_owned(), lower(&image.rtmr2)),
        ]);
        if let Some(rtmr3) = &image.rtmr3 {
            measurements.insert("rtmr3".into(), lower(rtmr3));
        }
        Entry::Image {
            evidence: hearth_attest::evidence::INTEL_TDX.into(),
            name: image.name.clone(),
            measurements,
        }
    }));
    entries
}

/// The log entry of an OHTTP key used from `from` until `until`.
pub fn key_entry(config: &KeyConfig, from: Duration, until: Duration) -> Entry {
    Entry::OhttpKey {
        key_id: config.key_id,
        config: base64::engine::general_purpose::STANDARD.encode(config.encode()),
        active_from: hearth_attest::report::rfc3339(from),
        active_until: hearth_attest::report::rfc3339(until),
    }
}

/// `policy` with only the images the log proved (each kind's list
/// filtered), and the names of those it dropped. Refused when none is
/// left: nothing this client would trust is in the log.
pub fn logged_policy(policy: &Policy, proven: &Proven) -> Result<(Policy, Vec<String>), PccError> {
    let logged = |entry: &Entry| proven.entries.iter().any(|(_, logged)| logged == entry);
    let mut kept = policy.clone();
    let mut dropped = Vec::new();
    let entries = image_entries(policy);
    let (pcrs, rest) = entries.split_at(policy.images.len());
    let (snp, tdx) = rest.split_at(policy.sev_snp.images.len());
    keep_logged(
        &mut kept.images,
        pcrs,
        |image| image.name.clone(),
        &logged,
        &mut dropped,
    );
    keep_logged(
        &mut kept.sev_snp.images,
        snp,
        |image| image.name.clone(),
        &logged,
        &mut dropped,
    );
    keep_logged(
        &mut kept.tdx.images,
        tdx,
        |image| image.name.clone(),
        &logged,
        &mut dropped,
    );
    if kept.images.is_empty() && kept.sev_snp.images.is_empty() && kept.tdx.images.is_empty() {
        return Err(PccError::Protocol(format!(
            "no image this policy trusts is in the transparency log at {} entries \
             (not logged: {}): nothing is sent",
            proven.checkpoint.size,
            dropped.join(", ")
        )));
    }
    Ok((kept, dropped))
}

/// Keeps the `images` whose `entries` (one each, in order) are `logged`;
/// the names of the others go to `dropped`.
fn keep_logged<T>(
    images: &mut Vec<T>,
    entries: &[Entry],
    name: impl Fn(&T) -> String,
    logged: &impl Fn(&Entry) -> bool,
    dropped: &mut Vec<String>,
) {
    let mut entries = entries.iter();
    images.retain(|image| {
        let keep = entries.next().is_some_and(logged);
        if !keep {
            dropped.push(name(image));
        }
        keep
    });
}

/// The log's word on a config document, checked: its proofs verify with
/// the pinned key, and its checkpoint extends what `witness` kept
/// (`consistency` fetches the proof between two sizes when one is
/// needed). The witness keeps the new checkpoint only when all holds.
pub async fn verify_document<F, Fut>(
    config: &ApiConfig,
    log: &Transparency,
    witness: &mut Witness,
    consistency: F,
) -> Result<Proven, PccError>
where
    F: FnOnce(u64, u64) -> Fut,
    Fut: std::future::Future<Output = Result<ConsistencyProof, PccError>>,
{
    let verifier = Verifier::parse(&log.log_key)
        .map_err(|error| PccError::Protocol(format!("the policy's log_key: {error}")))?;
    let proofs = config.transparency.as_ref().ok_or_else(|| {
        PccError::Protocol(
            "the policy requires the transparency log, and the config server gave no proofs: nothing is sent"
                .into(),
        )
    })?;
    let proven = proofs
        .verify(&verifier, &log.origin)
        .map_err(|error| PccError::Protocol(format!("{error}: nothing is sent")))?;
    advance(witness, &proven.checkpoint, consistency)
        .await
        .map_err(|error| match error {
            PccError::Protocol(why) => PccError::Protocol(format!("{why}: nothing is sent")),
            other => other,
        })?;
    Ok(proven)
}

/// Moves `witness` on to `checkpoint` if it extends the checkpoint kept
/// (`consistency` fetches the proof between two sizes when one is
/// needed); a fork, or a proof that does not hold, is a
/// [`PccError::Protocol`] and the witness keeps what it had.
pub async fn advance<F, Fut>(
    witness: &mut Witness,
    checkpoint: &Checkpoint,
    consistency: F,
) -> Result<(), PccError>
where
    F: FnOnce(u64, u64) -> Fut,
    Fut: std::future::Future<Output = Result<ConsistencyProof, PccError>>,
{
    let proof = match witness.proof_needed(checkpoint) {
        None => Vec::new(),
        Some((first, second)) => {
            let answer = consistency(first, second).await?;
            if answer.first != first || answer.second != second {
                return Err(PccError::Protocol(
                    "the consistency proof is for other sizes".into(),
                ));
            }
            hashes(&answer.proof).map_err(|error| PccError::Protocol(error.to_string()))?
        }
    };
    witness
        .accept(checkpoint, &proof)
        .map_err(|error| PccError::Protocol(error.to_string()))
}

/// Whether `config` (used from `from` to `until`) is a logged key.
pub fn key_logged(proven: &Proven, config: &KeyConfig, from: Duration, until: Duration) -> bool {
    let entry = key_entry(config, from, until);
    proven.entries.iter().any(|(_, logged)| *logged == entry)
}

/// A kept checkpoint as a file holds it: the signed note.
pub fn read_kept(note: &str, log: &Transparency) -> Result<Checkpoint, PccError> {
    Verifier::parse(&log.log_key)
        .and_then(|verifier| verifier.open(note, &log.origin))
        .map_err(|error| PccError::Protocol(format!("the kept checkpoint: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_attest::policy::Image;
    use hearth_ohttp::hpke::KeyPair;
    use hearth_transparency::merkle::{consistency_proof, inclusion_proof, leaf_hash, root};
    use hearth_transparency::proofs::{LogProofs, LoggedEntry, hex_hashes};
    use hearth_transparency::{Hash, Signer};

    const HOUR: Duration = Duration::from_secs(3600);

    fn image(name: &str, byte: u8) -> Image {
        Image {
            name: name.into(),
            pcrs: [0u8, 1, 2]
                .into_iter()
                .map(|index| (index, hex::encode([byte; 48])))
                .collect(),
        }
    }

    /// A log holding `entries` and the proofs of those in `proven`.
    fn log(signer: &Signer, entries: &[Entry], proven: &[usize]) -> (LogProofs, Vec<Hash>) {
        let lines: Vec<String> = entries.iter().map(Entry::to_line).collect();
        let leaves: Vec<Hash> = lines
            .iter()
            .map(|line| leaf_hash(line.as_bytes()))
            .collect();
        let checkpoint = Checkpoint {
            origin: "hearth.test/log".into(),
            size: leaves.len() as u64,
            root: root(&leaves),
        };
        let proofs = LogProofs {
            checkpoint: signer.sign(&checkpoint),
            entries: proven
                .iter()
                .map(|index| LoggedEntry {
                    index: *index as u64,
                    entry: lines[*index].clone(),
                    proof: hex_hashes(&inclusion_proof(*index, &leaves).unwrap()),
                })
                .collect(),
        };
        (proofs, leaves)
    }

    fn document(proofs: LogProofs, keys: &[(KeyConfig, Duration, Duration)]) -> ApiConfig {
        use crate::oblivious::{AttestationConfig, CONFIG_VERSION, Features, RotationPeriod};
        let configs: Vec<KeyConfig> = keys.iter().map(|(config, _, _)| config.clone()).collect();
        ApiConfig {
            version: CONFIG_VERSION.into(),
            features: Features {
                ohttp: true,
                real_attestation: true,
            },
            relay_urls: vec!["http://relay/".into()],
            gateway_url: "http://gateway/gateway".into(),
            router_url: "http://router:3600".into(),
            ohttp_key_configs_bundle: base64::engine::general_purpose::STANDARD
                .encode(hearth_ohttp::encode_keys(&configs)),
            ohttp_key_rotation_periods: keys
                .iter()
                .map(|(config, from, until)| RotationPeriod {
                    key_id: config.key_id,
                    active_from: hearth_attest::report::rfc3339(*from),
                    active_until: hearth_attest::report::rfc3339(*until),
                })
                .collect(),
            attestation: AttestationConfig::for_policy(&Policy::default(), b"{}"),
            transparency: Some(proofs),
        }
    }

    fn settle<T>(future: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn only_logged_images_stay_trusted_and_none_logged_sends_nothing() {
        let policy = Policy {
            images: vec![image("logged", 1), image("unlogged", 2)],
            ..Policy::default()
        };
        let entries = image_entries(&policy);
        let (signer, _) = Signer::generate("hearth.test/log").unwrap();
        let verifier = hearth_transparency::Verifier::parse(&signer.verifier()).unwrap();
        let (proofs, _) = log(&signer, &entries[..1], &[0]);
        let proven = proofs.verify(&verifier, "hearth.test/log").unwrap();
        let (kept, dropped) = logged_policy(&policy, &proven).unwrap();
        assert_eq!(kept.images, vec![image("logged", 1)]);
        assert_eq!(dropped, ["unlogged"]);
        let none = Policy {
            images: vec![image("unlogged", 2)],
            ..Policy::default()
        };
        let refused = logged_policy(&none, &proven).unwrap_err().to_string();
        assert!(refused.contains("nothing is sent"), "{refused}");
    }

    #[test]
    fn only_a_logged_key_is_sealed_to_and_a_forked_log_is_caught() {
        let now = Duration::from_secs(1_800_000_000);
        let old = KeyConfig::new(1, &KeyPair::derive(&[1; 32]));
        let new = KeyConfig::new(2, &KeyPair::derive(&[2; 32]));
        let keys = [
            (old.clone(), now - HOUR, now + HOUR),
            (new.clone(), now - HOUR / 2, now + HOUR),
        ];
        let (signer, _) = Signer::generate("hearth.test/log").unwrap();
        let log_policy = Transparency {
            origin: "hearth.test/log".into(),
            log_key: signer.verifier(),
        };
        // Only the older key is logged: it is the one used, though the
        // newer is active too.
        let entries = vec![key_entry(&old, now - HOUR, now + HOUR)];
        let (proofs, leaves) = log(&signer, &entries, &[0]);
        let config = document(proofs, &keys);
        let mut witness = Witness::default();
        let no_proof = |_: u64, _: u64| async { Err(PccError::Protocol("not asked".into())) };
        let proven = settle(verify_document(
            &config,
            &log_policy,
            &mut witness,
            no_proof,
        ))
        .unwrap();
        assert_eq!(config.choose_key(now, Some(&proven)).unwrap(), old);
        assert_eq!(config.choose_key(now, None).unwrap(), new);

        // The log grows honestly: the client follows with a consistency proof.
        let mut grown = entries.clone();
        grown.push(key_entry(&new, now - HOUR / 2, now + HOUR));
        let (proofs, grown_leaves) = log(&signer, &grown, &[0, 1]);
        let proof = hex_hashes(&consistency_proof(1, &grown_leaves).unwrap());
        let answer = |first: u64, second: u64| {
            let proof = proof.clone();
            async move {
                Ok(ConsistencyProof {
                    first,
                    second,
                    proof,
                })
            }
        };
        let proven = settle(verify_document(
            &document(proofs, &keys),
            &log_policy,
            &mut witness,
            answer,
        ))
        .unwrap();
        assert_eq!(proven.checkpoint.size, 2);
        assert_eq!(leaves.len(), 1);

        // Another history of two entries, signed by the same key: a fork.
        let forked = vec![
            key_entry(&new, now - HOUR / 2, now + HOUR),
            grown[0].clone(),
        ];
        let (proofs, _) = log(&signer, &forked, &[0]);
        let refused = settle(verify_document(
            &document(proofs, &keys),
            &log_policy,
            &mut witness,
            no_proof,
        ))
        .unwrap_err()
        .to_string();
        assert!(refused.contains("forked"), "{refused}");

        // No log proofs at all, under a policy that requires them.
        let mut bare = document(log(&signer, &grown, &[0]).0, &keys);
        bare.transparency = None;
        let refused = settle(verify_document(
            &bare,
            &log_policy,
            &mut Witness::default(),
            no_proof,
        ))
        .unwrap_err()
        .to_string();
        assert!(refused.contains("gave no proofs"), "{refused}");
        // A key no active entry logs: nothing to seal to.
        let (proofs, _) = log(
            &signer,
            &[key_entry(&old, now - 3 * HOUR, now - 2 * HOUR)],
            &[0],
        );
        let stale = document(proofs, &keys);
        let proven = settle(verify_document(
            &stale,
            &log_policy,
            &mut Witness::default(),
            no_proof,
        ))
        .unwrap();
        assert!(stale.choose_key(now, Some(&proven)).is_err());
    }
}
