//! Fuzzes the gateway's configuration parser (JSON5, `${VAR}` substitution,
//! the schema with unknown keys refused): any text gives a configuration or
//! an error naming where, never a panic.
#![no_main]

use hearth_gateway::config::{Config, ConfigError, FileConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let lookup = |name: &str| (name.len() < 8).then(|| format!("value-of-{name}"));
    match Config::parse_with(text, &lookup) {
        Ok(config) => {
            let _ = config.chain();
            let _ = hearth_gateway::build_router(&config);
        }
        Err(ConfigError::Schema { message, .. }) => assert!(!message.is_empty()),
        Err(_) => {}
    }
});
