//! Embeddings: OpenAI's `POST /embeddings` (llama.cpp's `llama-server`
//! started with `--embeddings`, vLLM) and Ollama's `POST /api/embed`.

use serde_json::{Value, json};

use crate::chat::{BackendError, send_error, status_error};
use crate::endpoint::{Api, Endpoint};

/// The vectors of `inputs` from `model` on `endpoint`, in input order;
/// `dimensions` asks for that size where the server can give it.
pub async fn embed(
    endpoint: &Endpoint,
    api: Api,
    model: &str,
    inputs: &[String],
    dimensions: Option<u32>,
    timeout: std::time::Duration,
) -> Result<Vec<Vec<f64>>, BackendError> {
    let (path, mut body) = match api {
        Api::OpenAiCompletions => ("/embeddings", json!({"model": model, "input": inputs})),
        Api::Ollama => ("/api/embed", json!({"model": model, "input": inputs})),
        Api::HearthEnclave => {
            return Err(BackendError::Rejected {
                status: 501,
                message: "private compute nodes give no embeddings".into(),
            });
        }
    };
    if let Some(dimensions) = dimensions {
        body["dimensions"] = json!(dimensions);
    }
    let response = endpoint
        .http
        .post(endpoint.url(path))
        .timeout(timeout)
        .json(&body)
        .send()
        .await
        .map_err(|error| send_error(&error, &endpoint.label))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|error| BackendError::Transport(error.to_string()))?;
    if !status.is_success() {
        return Err(status_error(status.as_u16(), &text));
    }
    let answer: Value = serde_json::from_str(&text)
        .map_err(|error| BackendError::Protocol(format!("embeddings are not JSON: {error}")))?;
    let vectors = vectors(api, &answer)
        .ok_or_else(|| BackendError::Protocol("no embeddings in the answer".into()))?;
    if vectors.len() != inputs.len() {
        return Err(BackendError::Protocol(format!(
            "{} embeddings for {} inputs",
            vectors.len(),
            inputs.len()
        )));
    }
    Ok(vectors)
}

/// The vectors of an answer, in input order.
pub fn vectors(api: Api, answer: &Value) -> Option<Vec<Vec<f64>>> {
    let vector = |value: &Value| -> Option<Vec<f64>> {
        value.as_array()?.iter().map(Value::as_f64).collect()
    };
    match api {
        Api::Ollama => answer["embeddings"]
            .as_array()?
            .iter()
            .map(vector)
            .collect(),
        _ => {
            let mut data: Vec<(u64, Vec<f64>)> = answer["data"]
                .as_array()?
                .iter()
                .enumerate()
                .map(|(position, item)| {
                    Some((
                        item["index"].as_u64().unwrap_or(position as u64),
                        vector(&item["embedding"])?,
                    ))
                })
                .collect::<Option<_>>()?;
            data.sort_by_key(|(index, _)| *index);
            Some(data.into_iter().map(|(_, vector)| vector).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_come_in_input_order() {
        let openai = json!({"data": [{"index": 1, "embedding": [0.5]}, {"index": 0, "embedding": [0.25, 1]}]});
        assert_eq!(
            vectors(Api::OpenAiCompletions, &openai),
            Some(vec![vec![0.25, 1.0], vec![0.5]])
        );
        let ollama = json!({"embeddings": [[1, 2], [3]]});
        assert_eq!(
            vectors(Api::Ollama, &ollama),
            Some(vec![vec![1.0, 2.0], vec![3.0]])
        );
        assert_eq!(vectors(Api::Ollama, &json!({"embeddings": [["x"]]})), None);
    }
}
