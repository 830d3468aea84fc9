//! Fuzzes the same-origin rule on untrusted `Host` and `Origin` headers:
//! it never panics, and whatever it accepts names one of the service's own
//! hosts (an IP literal or a configured name) and, with an origin, that host.
#![no_main]

use hearth_http::SameOrigin;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (host, origin) = match text.split_once('\n') {
        Some((host, origin)) => (host, Some(origin)),
        None => (text.as_ref(), None),
    };
    let rule = SameOrigin::new(["hub.example.home", "localhost"]);
    if rule.check(Some(host), origin).is_ok() {
        let name = host.trim().trim_start_matches('[');
        let name = name.split(']').next().unwrap_or(name);
        let name = if name.matches(':').count() == 1 {
            name.split(':').next().unwrap_or(name)
        } else {
            name
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        assert!(
            name.parse::<std::net::IpAddr>().is_ok() || name == "hub.example.home" || name == "localhost",
            "accepted {host:?}"
        );
        if let Some(origin) = origin {
            assert!(origin.to_ascii_lowercase().contains(&name), "accepted {origin:?} for {host:?}");
        }
    }
});
