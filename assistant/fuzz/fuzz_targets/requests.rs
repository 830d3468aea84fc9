//! Fuzzes what members and the model send the assistant: a message read for
//! an everyday request in English or Korean ("remind me at 7 pm to ...",
//! "내일 오전 9시에 ... 알려줘"), a time on its own, two facts remembered
//! one after the other (whether the second replaces the first), the
//! model's tool calls (any tool name, any arguments), arithmetic, and the
//! assistant API's requests and answers. Any bytes give a value or an
//! error, never a panic.
#![no_main]

use hearth_assistant::tools::{Toolset, read};
use hearth_assistant::language::Language;
use hearth_assistant::{api, arithmetic, phrases, search};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        let _ = serde_json::from_slice::<api::Request>(data);
        return;
    };
    let now: jiff::Timestamp = "2026-03-29T00:30:00Z".parse().expect("a fixed time");
    for zone in ["Europe/London", "America/St_Johns", "UTC"] {
        if let Some(Ok(phrases::Intent::Schedule(scheduled))) = phrases::recognize(text, now, zone) {
            let _ = scheduled.schedule.next_after(now);
            for language in [Language::English, Language::Korean] {
                let _ = phrases::describe(&scheduled.schedule, zone, language);
            }
        }
        if let Ok(schedule) = phrases::time(text, now, zone) {
            let _ = schedule.next_after(now);
        }
    }
    let _ = search::terms(text);
    // Two facts remembered one after the other: a replacement is always
    // about one subject, and never of a health or safety fact.
    let (old, new) = text.split_once('|').unwrap_or((text, text));
    if hearth_assistant::memory::relation(old, new) == hearth_assistant::memory::Relation::Replaces {
        assert!(hearth_assistant::memory::subject(old).is_some());
        assert!(!hearth_assistant::memory::about_health_or_safety(old));
    }
    if let Ok(value) = arithmetic::evaluate(text) {
        let _ = arithmetic::format(value);
    }
    let (name, arguments) = text.split_once('\n').unwrap_or((text, ""));
    if let Ok(call) = read(name, arguments, Toolset::ALL) {
        let _ = call.name();
    }
    let _ = serde_json::from_str::<api::Request>(text);
    let _ = serde_json::from_str::<api::Answer>(text);
});
