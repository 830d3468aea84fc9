//! One assistant turn's conversation with the model, round by round: the
//! model answers, or asks for tools whose results go back to it, at most
//! [`tools::MAX_ROUNDS`] times, and the last round must answer. Pure: the
//! gateway's shell (`Gateway::assistant_turn`) opens each round's model
//! stream, hands its events here, runs the tools asked for, and sends the
//! caller what this says to send.

use hearth_assistant::tools;
use hearth_e2ee::{ReplyEvent, ReplyUsage};
use hearth_llm::{ChatRequest, Message};

/// A turn's tool rounds.
#[derive(Debug)]
pub struct Conversation {
    request: ChatRequest,
    session: Option<String>,
    round: usize,
    meta_sent: bool,
    /// What the model said to the caller over every round.
    answer: String,
    /// This round's: what it said, its tool-call fragments, how it ended.
    said: String,
    fragments: Vec<serde_json::Value>,
    finished: Option<(String, Option<ReplyUsage>)>,
    /// The tools the caller brought (an OpenAI client's): their calls
    /// end the turn and go back to it.
    client_tools: Vec<String>,
}

/// How a round ended.
#[derive(Debug, PartialEq)]
pub enum RoundEnd {
    /// The model's stream ended without finishing: the turn ends here.
    Cut,
    /// The model answered: the turn is done.
    Answered {
        /// Why generation stopped.
        finish_reason: String,
        /// Token counts of this round.
        usage: Option<ReplyUsage>,
    },
    /// The model asked for these tools (id, name, arguments): run them,
    /// hand each result to [`Conversation::tool_result`], then go on.
    Tools(Vec<(String, String, String)>),
    /// The model asked for tools the caller brought (id, name,
    /// arguments): they go back to the caller, and the turn ends.
    ClientTools {
        /// The calls of the caller's tools.
        calls: Vec<(String, String, String)>,
        /// Why generation stopped.
        finish_reason: String,
        /// Token counts of this round.
        usage: Option<ReplyUsage>,
    },
}

impl Conversation {
    /// A turn asking `request` (with the assistant's tools, when it has
    /// them), to be saved in `session` when it has one.
    pub fn new(request: ChatRequest, session: Option<String>) -> Conversation {
        Conversation {
            request,
            session,
            round: 0,
            meta_sent: false,
            answer: String::new(),
            said: String::new(),
            fragments: Vec::new(),
            finished: None,
            client_tools: Vec::new(),
        }
    }

    /// This turn with the caller's own tools, `names`, among the model's.
    pub fn with_client_tools(mut self, names: Vec<String>) -> Conversation {
        self.client_tools = names;
        self
    }

    /// The request of the round that starts now: the last one is asked
    /// without tools, so it answers with what it has.
    pub fn start_round(&mut self) -> &ChatRequest {
        if self.round == tools::MAX_ROUNDS {
            self.request.tools = None;
            self.request.tool_choice = None;
        }
        self.said.clear();
        self.fragments.clear();
        self.finished = None;
        &self.request
    }

    /// What of one event of the round's model stream goes to the caller:
    /// the model's name once (with the session), what it says, what else
    /// it reports; tool-call fragments and the round's end stay here. An
    /// error goes to the caller and ends the turn
    /// ([`ReplyEvent::is_final`]).
    pub fn on_event(&mut self, event: ReplyEvent) -> Option<ReplyEvent> {
        match event {
            ReplyEvent::Meta { model, .. } if !self.meta_sent => {
                self.meta_sent = true;
                Some(ReplyEvent::Meta {
                    model,
                    session: self.session.clone().unwrap_or_default(),
                })
            }
            ReplyEvent::Meta { .. } => None,
            ReplyEvent::Delta { text } => {
                self.said.push_str(&text);
                Some(ReplyEvent::Delta { text })
            }
            ReplyEvent::ToolCalls { calls } => {
                self.fragments.push(calls);
                None
            }
            ReplyEvent::Done {
                finish_reason,
                usage,
            } => {
                self.finished = Some((finish_reason, usage));
                None
            }
            other => Some(other),
        }
    }

    /// Ends the round whose stream ended: the answer, the tools to run, or
    /// a cut. An answering round's text is the turn's answer
    /// ([`Conversation::answer`]); a round asking for tools is added to
    /// the conversation with its calls.
    pub fn end_round(&mut self) -> RoundEnd {
        let Some((finish_reason, usage)) = self.finished.take() else {
            return RoundEnd::Cut;
        };
        self.round += 1;
        let said = std::mem::take(&mut self.said);
        self.answer.push_str(&said);
        let calls = tools::assemble(&self.fragments);
        if calls.is_empty() || self.request.tools.is_none() {
            return RoundEnd::Answered {
                finish_reason,
                usage,
            };
        }
        let (theirs, ours): (Vec<_>, Vec<_>) = calls
            .into_iter()
            .partition(|(_, name, _)| self.client_tools.contains(name));
        if !theirs.is_empty() {
            // The household's calls of the same round are dropped: the
            // caller carries the conversation on, and the model asks again.
            return RoundEnd::ClientTools {
                calls: theirs,
                finish_reason: "tool_calls".into(),
                usage,
            };
        }
        let calls = ours;
        let mut asked = Message::new("assistant", said);
        asked.tool_calls = Some(serde_json::Value::Array(
            calls
                .iter()
                .map(|(id, name, arguments)| {
                    serde_json::json!({"id": id, "type": "function",
                        "function": {"name": name, "arguments": arguments}})
                })
                .collect(),
        ));
        self.request.messages.push(asked);
        RoundEnd::Tools(calls)
    }

    /// Hands the model the `output` of the tool call `id` (`name`).
    pub fn tool_result(&mut self, id: String, name: String, output: String) {
        let mut result = Message::new("tool", output);
        result.tool_call_id = Some(id);
        result.name = Some(name);
        self.request.messages.push(result);
    }

    /// Adds `text` (the sources' footer) to the answer.
    pub fn append(&mut self, text: &str) {
        self.answer.push_str(text);
    }

    /// What the model answered the caller, over every round.
    pub fn answer(&self) -> &str {
        &self.answer
    }
}

/// A tool's name as the caller is shown it: letters, digits and `_`, at
/// most 64 (a model may name anything).
pub fn shown_tool_name(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> ChatRequest {
        ChatRequest {
            messages: vec![Message::new("user", "what is on the list?")],
            tools: Some(serde_json::json!([{"type": "function"}])),
            ..ChatRequest::default()
        }
    }

    fn done() -> ReplyEvent {
        ReplyEvent::Done {
            finish_reason: "stop".into(),
            usage: None,
        }
    }

    fn call(id: &str) -> ReplyEvent {
        ReplyEvent::ToolCalls {
            calls: serde_json::json!([{"index": 0, "id": id, "type": "function",
                "function": {"name": "list_show", "arguments": "{\"list\":\"shopping\"}"}}]),
        }
    }

    fn meta() -> ReplyEvent {
        ReplyEvent::Meta {
            model: "m".into(),
            session: String::new(),
        }
    }

    #[test]
    fn a_round_asking_for_a_tool_gets_its_result_and_the_next_answers() {
        let mut turn = Conversation::new(request(), Some("s1".into()));
        assert!(turn.start_round().tools.is_some());
        assert_eq!(
            turn.on_event(meta()),
            Some(ReplyEvent::Meta {
                model: "m".into(),
                session: "s1".into()
            })
        );
        assert_eq!(turn.on_event(call("c1")), None, "tool calls stay here");
        assert_eq!(turn.on_event(done()), None);
        let RoundEnd::Tools(calls) = turn.end_round() else {
            panic!("tools");
        };
        assert_eq!(
            calls,
            [(
                "c1".into(),
                "list_show".into(),
                "{\"list\":\"shopping\"}".into()
            )]
        );
        turn.tool_result("c1".into(), "list_show".into(), "milk, eggs".into());

        let second = turn.start_round();
        let roles: Vec<&str> = second.messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["user", "assistant", "tool"]);
        assert_eq!(second.messages[2].content, "milk, eggs");
        assert_eq!(second.messages[2].tool_call_id.as_deref(), Some("c1"));
        assert_eq!(turn.on_event(meta()), None, "the model is named once");
        assert_eq!(
            turn.on_event(ReplyEvent::Delta {
                text: "Milk and eggs.".into()
            }),
            Some(ReplyEvent::Delta {
                text: "Milk and eggs.".into()
            })
        );
        turn.on_event(done());
        assert_eq!(
            turn.end_round(),
            RoundEnd::Answered {
                finish_reason: "stop".into(),
                usage: None
            }
        );
        turn.append("\n\nSources: list");
        assert_eq!(turn.answer(), "Milk and eggs.\n\nSources: list");
    }

    #[test]
    fn a_call_of_the_callers_own_tool_goes_back_to_it_and_ends_the_turn() {
        let mut turn = Conversation::new(request(), None).with_client_tools(vec!["weather".into()]);
        turn.start_round();
        turn.on_event(ReplyEvent::ToolCalls {
            calls: serde_json::json!([
                {"index": 0, "id": "h", "function": {"name": "list_show", "arguments": "{}"}},
                {"index": 1, "id": "w", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}},
            ]),
        });
        turn.on_event(done());
        assert_eq!(
            turn.end_round(),
            RoundEnd::ClientTools {
                calls: vec![("w".into(), "weather".into(), "{\"city\":\"Oslo\"}".into())],
                finish_reason: "tool_calls".into(),
                usage: None,
            }
        );
        // Without the caller's tools, the same calls are the household's.
        let mut turn = Conversation::new(request(), None);
        turn.start_round();
        turn.on_event(call("c"));
        turn.on_event(done());
        assert!(matches!(turn.end_round(), RoundEnd::Tools(_)));
    }

    #[test]
    fn the_last_round_is_asked_without_tools_and_a_cut_stream_ends_the_turn() {
        let mut turn = Conversation::new(request(), None);
        for round in 0..tools::MAX_ROUNDS {
            assert!(turn.start_round().tools.is_some(), "round {round}");
            turn.on_event(call(&format!("c{round}")));
            turn.on_event(done());
            assert!(matches!(turn.end_round(), RoundEnd::Tools(_)));
            turn.tool_result(format!("c{round}"), "list_show".into(), "x".into());
        }
        let last = turn.start_round();
        assert!(last.tools.is_none() && last.tool_choice.is_none());
        turn.on_event(call("late"));
        turn.on_event(done());
        assert!(
            matches!(turn.end_round(), RoundEnd::Answered { .. }),
            "calls on the last round are not run"
        );

        let mut cut = Conversation::new(request(), None);
        cut.start_round();
        cut.on_event(ReplyEvent::Delta { text: "Mil".into() });
        assert_eq!(cut.end_round(), RoundEnd::Cut);
    }

    #[test]
    fn tool_names_are_shown_plainly() {
        assert_eq!(shown_tool_name("list_show"), "list_show");
        assert_eq!(shown_tool_name("\u{1b}[2Jrm -rf"), "2Jrmrf");
        assert_eq!(shown_tool_name(&"a".repeat(100)).len(), 64);
    }
}
