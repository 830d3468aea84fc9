//! Fuzzes the decoding of what model backends send: OpenAI-style SSE and
//! Ollama NDJSON, as bytes cut anywhere. Any input gives events or an error,
//! never a panic; cutting the bytes differently never changes the result;
//! a decoded stream ends exactly once.
#![no_main]

use bytes::Bytes;
use futures::StreamExt;
use hearth_llm::ndjson::LineSplitter;
use hearth_sse::SseDecoder;
use hearth_llm::{EventStream, ollama, openai};
use libfuzzer_sys::fuzz_target;

fn pieces(data: &[u8], cut: usize) -> Vec<Result<Bytes, reqwest::Error>> {
    let cut = cut.min(data.len());
    vec![Ok(Bytes::copy_from_slice(&data[..cut])), Ok(Bytes::copy_from_slice(&data[cut..]))]
}

fn run(events: EventStream) -> Vec<String> {
    futures::executor::block_on(events.map(|event| format!("{event:?}")).collect())
}

fuzz_target!(|input: &[u8]| {
    let Some((&cut, data)) = input.split_first() else { return };
    let cut = usize::from(cut);

    let whole = SseDecoder::new().push(data);
    let mut split = SseDecoder::new();
    let first = split.push(&data[..cut.min(data.len())]);
    let second = split.push(&data[cut.min(data.len())..]);
    if let (Ok(whole), Ok(mut first), Ok(second)) = (whole, first, second) {
        first.extend(second);
        assert_eq!(whole, first, "cutting the bytes changed the events");
    }
    let _ = LineSplitter::new().push(data).map(|_| ());

    for decoded in [
        run(openai::decode(futures::stream::iter(pieces(data, cut)))),
        run(ollama::decode(futures::stream::iter(pieces(data, cut)))),
    ] {
        let ends = decoded.iter().filter(|event| event.starts_with("Ok(Done") || event.starts_with("Err(")).count();
        assert_eq!(ends, 1, "a stream ends exactly once: {decoded:?}");
        assert!(decoded.last().is_some_and(|event| event.starts_with("Ok(Done") || event.starts_with("Err(")));
    }
});
