//! A backup's manifest, its tag and its entries' names, as `hearth restore`
//! reads them from a file an admin hands it: never a panic, nothing
//! accepted outside the hub's folders, no tag accepted but the right one,
//! no mode with a special bit for any path (and none wider than 0600 for
//! a file of the admin's own beside Hearth's secrets), no key settings
//! above Hearth's, and nothing printed from it with a control character.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    use hearth_hub::archive::{
        HEARTHS_CONFIGURATION, Kind, Owner, Sealing, check_name, check_passphrase_settings,
        check_tag, escaped, placement, read_manifest, sealing_of, tag,
    };
    if let Ok(Sealing::Passphrase { salt, memory_kib, iterations }) = sealing_of(data)
        && check_passphrase_settings(&salt, memory_kib, iterations).is_ok()
    {
        assert!(memory_kib <= hearth_hub::archive::PASSPHRASE_MEMORY_KIB);
        assert!(iterations <= hearth_hub::archive::PASSPHRASE_ITERATIONS);
    }
    match read_manifest(data) {
        Err(refused) => assert!(!refused.to_string().chars().any(char::is_control)),
        Ok(_) => {}
    }
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
        assert!(!escaped(name).chars().any(char::is_control));
        if check_name(name).is_ok() {
            assert!(name == hearth_hub::archive::COORDINATOR || name.starts_with("etc/") || name.starts_with("var/lib/"));
            assert!(!name.split('/').any(|part| part == ".." || part.is_empty()));
        }
        let archived = data.first().map_or(0o777, |byte| u32::from(*byte) << 4 | 0o4000);
        for kind in [Kind::File, Kind::Folder] {
            for owner in [Owner::Root, Owner::Container] {
                if let Ok(placed) = placement(name, kind, (archived, owner)) {
                    assert_eq!(placed.mode & 0o7000, 0, "{name:?}");
                    if kind == Kind::File
                        && name.starts_with("etc/hearth/")
                        && !HEARTHS_CONFIGURATION.contains(&name)
                    {
                        assert_eq!(placed.mode & !0o600, 0, "{name:?}");
                    }
                }
            }
        }
    }
});
