//! The gateway's HPKE keys: kept across restarts (0600), rotated with
//! overlap so that a client holding the previous key keeps working.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use hearth_e2ee::envelope::b64;
use hearth_e2ee::{KeyPair, KeyRing, PublishedKey, StoredKey};
use hearth_testkit::gateway_process::{
    GatewayProcess, config, now, open_all, post_chat, seal, text_of,
};
use hearth_testkit::standins::ollama_stand_in;

const HOUR: i64 = 3600;

fn stored(activates: i64, expires: i64) -> (StoredKey, KeyPair) {
    let pair = KeyPair::generate();
    let key = StoredKey {
        id: format!("k{}", b64(&rand::random::<[u8; 6]>())),
        private_key: b64(pair.private_bytes().as_ref()),
        public_key: b64(&pair.public_bytes()),
        activates,
        expires,
    };
    (key, pair)
}

fn published(key: &StoredKey) -> PublishedKey {
    PublishedKey {
        id: key.id.clone(),
        public_key: key.public_key.clone(),
        status: "current".into(),
        not_before: key.activates,
        not_after: key.expires,
    }
}

/// Sends one sealed question to `key`; the HTTP status and error code.
async fn try_key(gateway: &GatewayProcess, key: &PublishedKey) -> (u16, Option<String>) {
    let (envelope, mut opener) = seal(key, &KeyPair::generate(), "is the kettle on", now());
    let answer = post_chat(&gateway.target(), serde_json::to_vec(&envelope).unwrap()).await;
    if answer.status == 200 {
        let events = open_all(
            &mut opener,
            &hearth_testkit::gateway_process::chunks(&answer.body),
        )
        .unwrap();
        assert_eq!(text_of(&events), "echo: is the kettle on");
    }
    (answer.status, answer.code)
}

#[tokio::test]
async fn keys_survive_a_restart_in_a_private_file() {
    let backend = ollama_stand_in(&["tiny"], Duration::ZERO);
    let mut gateway = GatewayProcess::start(config(&[("home", "ollama", &backend.url())]));
    let before = gateway.keys().await;
    assert_eq!(before.len(), 2, "a current and a next key: {before:?}");
    assert_eq!(
        before.iter().filter(|key| key.status == "current").count(),
        1
    );
    let next = before.iter().find(|key| key.status == "next").unwrap();
    let current = before.iter().find(|key| key.status == "current").unwrap();
    assert_eq!(
        next.not_before,
        current.not_before + 24 * HOUR,
        "rotation every 24 h by default"
    );
    assert_eq!(
        current.not_after,
        current.not_before + 25 * HOUR,
        "one hour of overlap by default"
    );

    let file = gateway.data_dir.join("keys.json");
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(&gateway.data_dir)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    let private = serde_json::from_slice::<KeyRing>(&std::fs::read(&file).unwrap()).unwrap();
    assert!(
        !gateway.log_text().contains(&private.keys[0].private_key),
        "the private key is never logged"
    );

    assert!(gateway.stop().success(), "SIGTERM stops it cleanly");
    gateway.launch();
    assert_eq!(
        gateway.keys().await,
        before,
        "the same keys after a restart"
    );
    assert_eq!(try_key(&gateway, current).await, (200, None));
}

#[tokio::test]
async fn a_rotated_out_key_is_accepted_during_the_overlap_and_refused_after() {
    let backend = ollama_stand_in(&["tiny"], Duration::ZERO);
    let gateway = GatewayProcess::prepare(config(&[("home", "ollama", &backend.url())]));
    let t = now();
    // Rotation 24 h, overlap 1 h: `previous` was current until half an hour
    // ago and is still accepted for another half hour; `expired` is gone.
    let (expired, _) = stored(t - 49 * HOUR, t - 23 * HOUR - HOUR / 2);
    let (previous, _) = stored(t - 24 * HOUR - HOUR / 2, t + HOUR / 2);
    let (current, _) = stored(t - HOUR / 2, t + 24 * HOUR + HOUR / 2);
    let ring = KeyRing {
        keys: vec![expired.clone(), previous.clone(), current.clone()],
    };
    std::fs::create_dir_all(&gateway.data_dir).unwrap();
    std::fs::write(
        gateway.data_dir.join("keys.json"),
        serde_json::to_vec(&ring).unwrap(),
    )
    .unwrap();
    let mut gateway = gateway;
    gateway.launch();

    let keys = gateway.keys().await;
    let shown: Vec<(&str, &str)> = keys
        .iter()
        .map(|key| (key.id.as_str(), key.status.as_str()))
        .collect();
    assert_eq!(shown[0], (current.id.as_str(), "current"), "{shown:?}");
    assert_eq!(
        shown.len(),
        2,
        "current and a freshly made next key: {shown:?}"
    );
    assert_eq!(keys[1].not_before, current.activates + 24 * HOUR);

    assert_eq!(try_key(&gateway, &published(&current)).await, (200, None));
    assert_eq!(
        try_key(&gateway, &published(&previous)).await,
        (200, None),
        "overlap"
    );
    assert_eq!(
        try_key(&gateway, &keys[1]).await,
        (200, None),
        "a client may use the next key early"
    );
    assert_eq!(
        try_key(&gateway, &published(&expired)).await,
        (400, Some("unknown_key".into())),
        "after the overlap"
    );
    let saved: KeyRing =
        serde_json::from_slice(&std::fs::read(gateway.data_dir.join("keys.json")).unwrap())
            .unwrap();
    assert!(
        saved.keys.iter().all(|key| key.id != expired.id),
        "expired keys are deleted"
    );
}
