//! Fuzzes what the OpenAI-style API reads from a caller: chat messages
//! (text, parts, tool calls), tool definitions and choices, OpenResponses
//! input items, structured-output formats (`response_format`,
//! `text.format`), Anthropic's Messages requests, Open WebUI's signed user
//! header, and tool-call fragments
//! joined and streamed back as OpenResponses and Messages events. Any bytes
//! give a value or an error, never a panic.
#![no_main]

use hearth_e2ee::ReplyEvent;
use hearth_gateway::openai::{
    ResponseStream, ToolCalls, check_tools, response_format, responses_chat, text_format,
};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<Vec<hearth_llm::Message>>(data);
    let _ = hearth_gateway::anthropic::messages_request(data);
    if let Ok(token) = std::str::from_utf8(data) {
        let _ = hearth_gateway::forwarded::verify(token, b"a-secret-of-sixteen-bytes", 0);
        let members = hearth_gateway::forwarded::Members::new(&[("u-1".to_owned(), "ada".to_owned())].into());
        let _ = hearth_gateway::forwarded::member(token, b"a-secret-of-sixteen-bytes", &members, 0);
    }
    let Ok(body) = serde_json::from_slice::<Map<String, Value>>(data) else {
        return;
    };
    let _ = check_tools(body.get("tools"), body.get("tool_choice"));
    let _ = responses_chat(&body);
    let _ = response_format(body.get("response_format"));
    let _ = text_format(body.get("text"));
    if let Some(fragments) = body.get("tool_calls") {
        let mut calls = ToolCalls::default();
        calls.push(fragments);
        let _ = calls.calls();
        let mut stream = ResponseStream::new("resp_fuzz".into(), 0);
        stream.push(&ReplyEvent::Meta { model: "m".into(), session: String::new() });
        stream.push(&ReplyEvent::ToolCalls { calls: fragments.clone() });
        stream.push(&ReplyEvent::Delta { text: "x".into() });
        stream.push(&ReplyEvent::Done { finish_reason: "stop".into(), usage: None });
        let mut message = hearth_gateway::anthropic::Reply::new("msg_fuzz".into(), "m".into());
        message.push(&ReplyEvent::ToolCalls { calls: fragments.clone() });
        message.push(&ReplyEvent::Delta { text: "x".into() });
        let done = ReplyEvent::Done { finish_reason: "stop".into(), usage: None };
        message.push(&done);
        let _ = message.whole(&done);
    }
});
