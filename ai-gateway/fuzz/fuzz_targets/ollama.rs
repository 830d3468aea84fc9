//! Fuzzes the readers of Ollama's API request bodies (chat, generate,
//! embed, embeddings) and of the policy's `hearth.example/cap/ai` grant
//! values: any bytes give a request or a clear refusal, never a panic, and
//! a read request always ends with something to answer.
#![no_main]

use hearth_gateway::access::{Access, Target};
use hearth_gateway::ollama;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(asked) = ollama::chat_request(data) {
        let last = asked.messages.last().expect("a chat ends with a message");
        assert!(last.role == "user" || last.role == "tool");
    }
    if let Ok(asked) = ollama::generate_request(data) {
        assert!(asked.messages.len() <= 2);
    }
    for legacy in [false, true] {
        if let Ok(asked) = ollama::embed_request(data, legacy) {
            assert!(!asked.inputs.is_empty() && asked.inputs.len() <= ollama::MAX_EMBED_INPUTS);
        }
    }
    if let Ok(grants) = serde_json::from_slice::<serde_json::Value>(data) {
        let capabilities = [(hearth_gateway::access::AI_CAPABILITY.to_owned(), grants)].into();
        let access = Access::of(&capabilities);
        let _ = access.permits(&Target::Agent("main".into()));
        let _ = access.permits(&Target::Model("local/tiny".into()));
        let _ = access.allowed();
    }
});
