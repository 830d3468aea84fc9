//! A backup's manifest and its entries' names, as `hearth restore` reads
//! them from a file an admin hands it: never a panic, and nothing accepted
//! outside the hub's folders.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = hearth_hub::archive::read_manifest(data) {
        for entry in &manifest.entries {
            assert!(!entry.name.contains(".."), "{:?}", entry.name);
            assert!(!entry.name.starts_with('/'), "{:?}", entry.name);
        }
    }
    if let Ok(name) = std::str::from_utf8(data) {
        if hearth_hub::archive::check_name(name).is_ok() {
            assert!(name == hearth_hub::archive::COORDINATOR || name.starts_with("etc/") || name.starts_with("var/lib/"));
            assert!(!name.split('/').any(|part| part == ".." || part.is_empty()));
        }
    }
});
