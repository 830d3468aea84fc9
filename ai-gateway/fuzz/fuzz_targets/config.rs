//! Fuzzes the gateway's configuration reader (JSON5, `${VAR}` expansion,
//! OpenClaw's sections read or noted, the `hearth` section): any text gives
//! a configuration or problems that each name where, never a panic.
#![no_main]

use hearth_gateway::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let lookup = |name: &str| (name.len() < 8).then(|| format!("value-of-{name}"));
    match Config::parse_with(text, &lookup) {
        Ok(loaded) => {
            let _ = loaded.config.chain();
            let _ = loaded.config.token_source();
            let _ = hearth_gateway::build_router(&loaded.config);
        }
        Err(problems) => assert!(!problems.0.is_empty()),
    }
});
