//! Fuzzes the OHTTP gateway's allow-list on what a client seals inside a
//! request: a Binary HTTP request (or its parts taken raw). Every input is
//! forwarded or refused, never a panic; what is forwarded goes to the
//! allowed target, under its prefix, and parses back to exactly the path
//! that was checked (no byte a URL parser drops or rewrites, no `..`).
#![no_main]

use hearth_oblivious::allow::AllowList;
use hearth_ohttp::bhttp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let list = AllowList::parse(&["http://10.0.0.2:3600/v1/".into()]).expect("a valid list");
    let mut requests = Vec::new();
    if let Ok(request) = bhttp::Request::decode(data) {
        requests.push(request);
    }
    // The input's bytes as the path of an otherwise allowed request.
    let mut raw = bhttp::Request::new("POST", "http", "10.0.0.2:3600", "/v1/");
    raw.path = data.to_vec();
    requests.push(raw);
    for request in requests {
        let Ok(url) = list.check(&request) else {
            continue;
        };
        let parsed = reqwest::Url::parse(&url).expect("a forwarded URL parses");
        assert_eq!(parsed.host_str(), Some("10.0.0.2"));
        assert_eq!(parsed.port(), Some(3600));
        assert!(parsed.path().starts_with("/v1/"), "{url}");
        assert!(!parsed.path().split('/').any(|segment| segment == ".."), "{url}");
        let path = std::str::from_utf8(&request.path).expect("checked as text");
        assert!(url.ends_with(path), "{url} forwards {path:?}");
    }
});
