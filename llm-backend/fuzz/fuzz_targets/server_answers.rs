//! Fuzzes what a model server found on the mesh says of itself, which the
//! gateway reads before any member asks it: llama.cpp's `/props` and
//! `/v1/models`, Ollama's `/api/tags` and `/api/show`. Any answer gives a
//! list (perhaps empty) or nothing, never a panic; a model's name as
//! listed never holds a `/` (it would read as another device's).
#![no_main]

use hearth_llm::{mesh, ollama, openai};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(answer) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let _ = mesh::is_llama_cpp(&answer);
    let _ = openai::template_caps(&answer);
    let _ = ollama::show_caps(&answer);
    for listed in [openai::listed_models(&answer), ollama::tags_models(&answer)]
        .into_iter()
        .flatten()
        .flatten()
    {
        assert!(!mesh::model_name(&listed).contains('/'), "{listed:?}");
    }
});
