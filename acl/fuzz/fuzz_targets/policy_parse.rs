//! Fuzzes the HuJSON reader and the policy parser and validator: any input
//! must give a policy or an error, never a panic; HuJSON standardization must
//! keep the length; a parsed policy's compiled rules must evaluate.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(json) = hearth_acl::hujson::standardize(text) {
        assert_eq!(json.len(), text.len());
    }
    if let Ok(policy) = hearth_acl::Policy::parse(text) {
        let mut engine = hearth_acl::Engine::new(std::sync::Arc::new(policy.compiled.clone()));
        let node = hearth_acl::NodeIdentity {
            id: 1,
            user: "alice".into(),
            tags: Default::default(),
            addresses: vec!["100.64.0.1".parse().unwrap()],
            advertised_routes: Vec::new(),
            approved_routes: Vec::new(),
            services: Vec::new(),
        };
        engine.upsert(node);
        let _ = engine.filter_of(1);
        let _ = policy.check_tests(&hearth_acl::Topology::default());
    }
});
