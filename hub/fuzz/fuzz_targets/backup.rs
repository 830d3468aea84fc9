//! A backup's manifest, its tag and its entries' names, as `hearth restore`
//! reads them from a file an admin hands it: never a panic, nothing
//! accepted outside the hub's folders, no tag accepted but the right one,
//! and no mode with a special bit for any path.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    use hearth_hub::archive::{Kind, check_name, check_tag, placement, read_manifest, tag};
    if let Ok(manifest) = read_manifest(data) {
        for entry in &manifest.entries {
            assert!(!entry.name.contains(".."), "{:?}", entry.name);
            assert!(!entry.name.starts_with('/'), "{:?}", entry.name);
        }
    }
    // Any bytes as the tag of a fixed manifest: only its own tag fits.
    let key = [3u8; 32];
    let manifest = b"{\"format\":2}";
    if check_tag(&key, manifest, data).is_ok() {
        assert_eq!(
            std::str::from_utf8(data).map(|text| text.trim().to_ascii_lowercase()),
            Ok(tag(&key, manifest))
        );
    }
    if let Ok(name) = std::str::from_utf8(data) {
        if check_name(name).is_ok() {
            assert!(name == hearth_hub::archive::COORDINATOR || name.starts_with("etc/") || name.starts_with("var/lib/"));
            assert!(!name.split('/').any(|part| part == ".." || part.is_empty()));
        }
        for kind in [Kind::File, Kind::Folder] {
            if let Ok(placed) = placement(name, kind) {
                assert_eq!(placed.mode & 0o7000, 0, "{name:?}");
            }
        }
    }
});
