//! Fuzzes the readers of OpenClaw's protocol: any frame a client sends
//! gives a request or a clear refusal, never a panic; `connect`'s
//! parameters read or refuse; a device proof over any bytes never
//! verifies against a challenge it was not made for; automation
//! parameters become a job or a refusal; a Control UI path never leaves
//! its folder.
#![no_main]

use hearth_gateway::claw::{cron, device, wire};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for limit in [wire::MAX_PREAUTH_BYTES, 64] {
        if let Ok(request) = wire::parse_request(text, limit) {
            assert!(text.len() <= limit);
            assert!(!request.id.is_empty() && !request.method.is_empty());
            if let Ok(connect) = device::Connect::parse(&request.params) {
                let _ = connect.check_protocol();
                // A nonce no client was given: no proof holds for it.
                assert!(device::verify(&connect, "fuzz-challenge-never-issued", 0).is_err());
            }
            let now = jiff::Timestamp::UNIX_EPOCH;
            if let Ok(job) = cron::scheduled(&request.params, now, "UTC") {
                let _ = job.schedule.check();
            }
            let _ = cron::job_id(&request.params);
        }
    }
    let root = std::path::Path::new("/srv/control-ui");
    if let Some(file) = hearth_gateway::control_ui::file_for(root, text) {
        assert!(file.starts_with(root));
        assert!(!file.components().any(|part| part == std::path::Component::ParentDir));
    }
});
