//! How often keyword search finds the passage that answers a household
//! question worded unlike it, in English and Korean, with each way of
//! cutting text into terms (`search::Analyser`): the numbers in
//! docs/benchmarks.md ("Finding what a member means"). The analyser Hearth
//! uses must find the right passage first at least as often as cutting at
//! spaces does, in both languages, and hold the floors below (a change
//! that loses recall fails here).
//!
//! `cargo test -p hearth-assistant --test recall -- --nocapture`
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use hearth_assistant::chunk;
use hearth_assistant::search::{ANALYSER, Analyser, Index, MAX_RESULTS, Query};
use hearth_testkit::recall::{Recall, RecallSet, recall_set};

/// Keyword search over `set`'s passages with `analyser`.
fn keyword_recall(set: &RecallSet, analyser: Analyser) -> Recall {
    let mut index = Index::with_analyser(analyser);
    let mut passages: Vec<(String, String)> = Vec::new();
    for (name, text) in &set.documents {
        for passage in chunk::passages(std::slice::from_ref(text), true, false) {
            // As the gateway indexes them: the citation, then the text.
            let searched = format!("{}\n{}", passage.citation(name), passage.text);
            index.insert(passages.len(), &searched, None, None);
            passages.push((name.clone(), passage.heading.unwrap_or_default()));
        }
    }
    let mut recall = Recall::default();
    for question in &set.questions {
        let hits = index.search(
            &Query {
                text: &question.text,
                vector: None,
                today: "2026-11-24".parse().unwrap(),
                limit: MAX_RESULTS,
                min_score: 0.0,
            },
            |_| true,
        );
        let ranked: Vec<(String, String)> =
            hits.iter().map(|hit| passages[hit.key].clone()).collect();
        if std::env::var_os("RECALL_MISSES").is_some()
            && analyser == ANALYSER
            && ranked.first() != Some(&(question.document.clone(), question.section.clone()))
        {
            println!("miss: {} -> {:?}", question.text, ranked.first());
        }
        recall.count(question, &ranked);
    }
    recall
}

#[test]
fn keyword_search_finds_the_passage_in_english_and_korean() {
    let analysers = [
        Analyser::Words,
        Analyser::Bigrams,
        Analyser::Stems,
        Analyser::StemBigrams,
        Analyser::StemsAndBigrams,
    ];
    for language in ["en", "ko"] {
        let set = recall_set(language);
        assert!(
            set.questions.len() >= 50,
            "{language}: {}",
            set.questions.len()
        );
        let mut results = Vec::new();
        for analyser in analysers {
            let recall = keyword_recall(&set, analyser);
            println!("{language} {analyser:?}: {}", recall.summary());
            results.push((analyser, recall));
        }
        let of = |wanted: Analyser| results.iter().find(|(a, _)| *a == wanted).unwrap().1;
        let chosen = of(ANALYSER);
        assert!(
            chosen.first >= of(Analyser::Words).first,
            "{language}: {results:?}"
        );
        // Floors: what the chosen analyser reached when it was chosen,
        // less two questions.
        let floor = match language {
            "en" => 37,
            _ => 46,
        };
        assert!(chosen.first >= floor, "{language}: {}", chosen.summary());
    }
}
