//! The tools the model may call, in OpenAI's function-calling form (which
//! llama-server speaks with `--jinja`), and the model's calls read into
//! typed requests. Every tool acts for the conversation it was called in,
//! with the authority the gateway established for it ([`crate::scope`]):
//! no tool takes a member, a room or a file outside that conversation's
//! own memory, so nothing a document or a message persuades the model to
//! ask for can reach across members. Arguments are read strictly: an
//! unknown argument (`"member": "ben"`) is an error the model is told of,
//! not something ignored or obeyed. No tool reaches the network and none
//! runs a program.

use serde::Deserialize;
use serde_json::{Value, json};

/// Longest arguments read, in bytes.
pub const MAX_ARGUMENTS: usize = 16 * 1024;
/// Most tool rounds in one turn before the model must answer.
pub const MAX_ROUNDS: usize = 4;

/// Which groups of tools are offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Toolset {
    /// `memory_search`, `memory_get`, `memory_write`.
    pub memory: bool,
    /// `reminder_create`, `reminder_list`, `reminder_cancel`.
    pub reminders: bool,
    /// `document_search`.
    pub documents: bool,
    /// `list_add`, `list_show`, `list_remove`.
    pub lists: bool,
}

impl Toolset {
    /// Every tool.
    pub const ALL: Toolset = Toolset {
        memory: true,
        reminders: true,
        documents: true,
        lists: true,
    };
}

/// A call the model made, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// Search the conversation's memory.
    MemorySearch {
        /// What to look for.
        query: String,
        /// Most results.
        max_results: Option<usize>,
    },
    /// Read one memory file of the conversation (`MEMORY.md`,
    /// `memory/YYYY-MM-DD.md`).
    MemoryGet {
        /// Which.
        path: String,
    },
    /// Remember something.
    MemoryWrite {
        /// What.
        text: String,
        /// In long-term memory (else today's notes).
        long_term: bool,
    },
    /// Schedule a reminder.
    ReminderCreate {
        /// What to remind of.
        text: String,
        /// When: a phrase ("tomorrow at 8") or an ISO 8601 time.
        when: String,
        /// To the room instead of the member.
        to_room: bool,
    },
    /// The member's reminders.
    ReminderList,
    /// Cancel one of the member's reminders.
    ReminderCancel {
        /// Its id.
        id: i64,
    },
    /// Search the documents this conversation may read.
    DocumentSearch {
        /// What to look for.
        query: String,
        /// Most results.
        max_results: Option<usize>,
    },
    /// The date and time in the household.
    CurrentTime,
    /// Arithmetic.
    Calculate {
        /// The expression.
        expression: String,
    },
    /// Add items to a list.
    ListAdd {
        /// The list.
        list: String,
        /// The items.
        items: Vec<String>,
    },
    /// Read a list.
    ListShow {
        /// The list.
        list: String,
    },
    /// Remove items from a list.
    ListRemove {
        /// The list.
        list: String,
        /// The items.
        items: Vec<String>,
    },
}

impl Call {
    /// The tool's name.
    pub fn name(&self) -> &'static str {
        match self {
            Call::MemorySearch { .. } => "memory_search",
            Call::MemoryGet { .. } => "memory_get",
            Call::MemoryWrite { .. } => "memory_write",
            Call::ReminderCreate { .. } => "reminder_create",
            Call::ReminderList => "reminder_list",
            Call::ReminderCancel { .. } => "reminder_cancel",
            Call::DocumentSearch { .. } => "document_search",
            Call::CurrentTime => "current_time",
            Call::Calculate { .. } => "calculate",
            Call::ListAdd { .. } => "list_add",
            Call::ListShow { .. } => "list_show",
            Call::ListRemove { .. } => "list_remove",
        }
    }
}

/// Why a call could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// Not one of the tools offered.
    #[error("there is no tool `{0}`")]
    Unknown(String),
    /// Arguments over [`MAX_ARGUMENTS`].
    #[error("the arguments are longer than {MAX_ARGUMENTS} bytes")]
    TooLong,
    /// Arguments that are not what the tool takes.
    #[error("bad arguments for `{tool}`: {why}")]
    Arguments {
        /// The tool.
        tool: &'static str,
        /// What is wrong.
        why: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Search {
    query: String,
    #[serde(default, rename = "maxResults")]
    max_results: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Get {
    path: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Write {
    text: String,
    #[serde(default = "yes", rename = "longTerm")]
    long_term: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Remind {
    text: String,
    when: String,
    #[serde(default)]
    audience: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Cancel {
    id: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Nothing {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Calculate {
    expression: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListItems {
    list: String,
    #[serde(default)]
    items: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListName {
    list: String,
}

/// Reads the model's call of `name` with `arguments` (a JSON object as
/// text; empty for none), among the tools `offered`.
pub fn read(name: &str, arguments: &str, offered: Toolset) -> Result<Call, ToolError> {
    if arguments.len() > MAX_ARGUMENTS {
        return Err(ToolError::TooLong);
    }
    let known = definitions(offered)
        .as_array()
        .is_some_and(|tools| tools.iter().any(|tool| tool["function"]["name"] == name));
    if !known {
        return Err(ToolError::Unknown(name.chars().take(64).collect()));
    }
    let arguments = if arguments.trim().is_empty() {
        "{}"
    } else {
        arguments
    };
    fn parse<T: for<'de> Deserialize<'de>>(tool: &'static str, text: &str) -> Result<T, ToolError> {
        serde_json::from_str(text).map_err(|error| ToolError::Arguments {
            tool,
            why: error.to_string(),
        })
    }
    let call = match name {
        "memory_search" => {
            let search: Search = parse("memory_search", arguments)?;
            Call::MemorySearch {
                query: search.query,
                max_results: search.max_results,
            }
        }
        "memory_get" => Call::MemoryGet {
            path: parse::<Get>("memory_get", arguments)?.path,
        },
        "memory_write" => {
            let write: Write = parse("memory_write", arguments)?;
            Call::MemoryWrite {
                text: write.text,
                long_term: write.long_term,
            }
        }
        "reminder_create" => {
            let remind: Remind = parse("reminder_create", arguments)?;
            let to_room = match remind.audience.as_deref() {
                None | Some("me") => false,
                Some("room") => true,
                Some(other) => {
                    return Err(ToolError::Arguments {
                        tool: "reminder_create",
                        why: format!("audience must be \"me\" or \"room\", not {other:?}"),
                    });
                }
            };
            Call::ReminderCreate {
                text: remind.text,
                when: remind.when,
                to_room,
            }
        }
        "reminder_list" => {
            parse::<Nothing>("reminder_list", arguments)?;
            Call::ReminderList
        }
        "reminder_cancel" => Call::ReminderCancel {
            id: parse::<Cancel>("reminder_cancel", arguments)?.id,
        },
        "document_search" => {
            let search: Search = parse("document_search", arguments)?;
            Call::DocumentSearch {
                query: search.query,
                max_results: search.max_results,
            }
        }
        "current_time" => {
            parse::<Nothing>("current_time", arguments)?;
            Call::CurrentTime
        }
        "calculate" => Call::Calculate {
            expression: parse::<Calculate>("calculate", arguments)?.expression,
        },
        "list_add" => {
            let list: ListItems = parse("list_add", arguments)?;
            Call::ListAdd {
                list: list.list,
                items: list.items,
            }
        }
        "list_show" => Call::ListShow {
            list: parse::<ListName>("list_show", arguments)?.list,
        },
        "list_remove" => {
            let list: ListItems = parse("list_remove", arguments)?;
            Call::ListRemove {
                list: list.list,
                items: list.items,
            }
        }
        other => return Err(ToolError::Unknown(other.to_owned())),
    };
    Ok(call)
}

fn function(name: &str, description: &str, properties: Value, required: &[&str]) -> Value {
    json!({
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": false,
            },
        },
    })
}

/// The tools `offered`, as OpenAI's `tools` array.
pub fn definitions(offered: Toolset) -> Value {
    let mut tools = vec![
        function(
            "current_time",
            "The current date, time and time zone of the household.",
            json!({}),
            &[],
        ),
        function(
            "calculate",
            "Evaluate arithmetic exactly, e.g. \"15% of 80\" or \"(3.20 + 4.75) * 3\".",
            json!({"expression": {"type": "string"}}),
            &["expression"],
        ),
    ];
    if offered.memory {
        tools.extend([
            function(
                "memory_search",
                "Search what you remember in this conversation: facts, preferences and earlier notes.",
                json!({"query": {"type": "string"}, "maxResults": {"type": "integer", "minimum": 1, "maximum": 20}}),
                &["query"],
            ),
            function(
                "memory_get",
                "Read a memory file of this conversation: MEMORY.md or memory/YYYY-MM-DD.md.",
                json!({"path": {"type": "string"}}),
                &["path"],
            ),
            function(
                "memory_write",
                "Remember something for later conversations here (long-term unless longTerm is false).",
                json!({"text": {"type": "string"}, "longTerm": {"type": "boolean"}}),
                &["text"],
            ),
        ]);
    }
    if offered.reminders {
        tools.extend([
            function(
                "reminder_create",
                "Schedule a reminder. `when` is a time such as \"at 7 pm\", \"tomorrow at 8:30\", \"in 20 minutes\", \"every Monday at 8\" or an ISO 8601 time.",
                json!({"text": {"type": "string"}, "when": {"type": "string"}, "audience": {"type": "string", "enum": ["me", "room"]}}),
                &["text", "when"],
            ),
            function("reminder_list", "List the reminders of the person asking.", json!({}), &[]),
            function(
                "reminder_cancel",
                "Cancel one of the asking person's reminders by its id.",
                json!({"id": {"type": "integer"}}),
                &["id"],
            ),
        ]);
    }
    if offered.documents {
        tools.push(function(
            "document_search",
            "Search the household's documents readable here; results name their source to cite.",
            json!({"query": {"type": "string"}, "maxResults": {"type": "integer", "minimum": 1, "maximum": 20}}),
            &["query"],
        ));
    }
    if offered.lists {
        let items = json!({"list": {"type": "string"}, "items": {"type": "array", "items": {"type": "string"}}});
        tools.extend([
            function(
                "list_add",
                "Add items to a shared list (e.g. shopping).",
                items.clone(),
                &["list", "items"],
            ),
            function(
                "list_show",
                "Read a shared list.",
                json!({"list": {"type": "string"}}),
                &["list"],
            ),
            function(
                "list_remove",
                "Remove items from a shared list.",
                items,
                &["list", "items"],
            ),
        ]);
    }
    Value::Array(tools)
}

/// Joins the streamed fragments of tool calls (OpenAI's `delta.tool_calls`:
/// the fragments of one call share its `index`) into whole calls: (id,
/// name, arguments) in index order.
pub fn assemble(fragments: &[Value]) -> Vec<(String, String, String)> {
    let mut calls: std::collections::BTreeMap<u64, (String, String, String)> =
        std::collections::BTreeMap::new();
    for fragment in fragments.iter().flat_map(|value| match value {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    }) {
        let index = fragment.get("index").and_then(Value::as_u64).unwrap_or(0);
        let call = calls.entry(index).or_default();
        if let Some(id) = fragment.get("id").and_then(Value::as_str) {
            call.0.push_str(id);
        }
        let function = &fragment["function"];
        if let Some(name) = function.get("name").and_then(Value::as_str) {
            call.1.push_str(name);
        }
        if let Some(arguments) = function.get("arguments").and_then(Value::as_str) {
            call.2.push_str(arguments);
        }
    }
    calls
        .into_iter()
        .enumerate()
        .map(|(position, (_, (id, name, arguments)))| {
            let id = if id.is_empty() {
                format!("call_{position}")
            } else {
                id
            };
            (id, name, arguments)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_read_into_typed_requests() {
        assert_eq!(
            read(
                "memory_search",
                r#"{"query":"bike code","maxResults":3}"#,
                Toolset::ALL
            ),
            Ok(Call::MemorySearch {
                query: "bike code".into(),
                max_results: Some(3)
            })
        );
        assert_eq!(
            read("memory_write", r#"{"text":"likes tea"}"#, Toolset::ALL),
            Ok(Call::MemoryWrite {
                text: "likes tea".into(),
                long_term: true
            })
        );
        assert_eq!(
            read(
                "reminder_create",
                r#"{"text":"bins","when":"at 7 pm","audience":"room"}"#,
                Toolset::ALL
            ),
            Ok(Call::ReminderCreate {
                text: "bins".into(),
                when: "at 7 pm".into(),
                to_room: true
            })
        );
        assert_eq!(
            read("current_time", "", Toolset::ALL),
            Ok(Call::CurrentTime)
        );
        assert_eq!(
            read(
                "list_add",
                r#"{"list":"shopping","items":["eggs"]}"#,
                Toolset::ALL
            ),
            Ok(Call::ListAdd {
                list: "shopping".into(),
                items: vec!["eggs".into()]
            })
        );
    }

    #[test]
    fn no_argument_can_name_another_member_or_room() {
        for (tool, arguments) in [
            ("memory_search", r#"{"query":"code","member":"ben"}"#),
            ("memory_get", r#"{"path":"MEMORY.md","owner":"member:ben"}"#),
            ("document_search", r#"{"query":"x","folder":"ben-papers"}"#),
            ("list_show", r#"{"list":"shopping","room":"dm:ben,zoe"}"#),
            ("reminder_list", r#"{"member":"ben"}"#),
        ] {
            let error = read(tool, arguments, Toolset::ALL).unwrap_err();
            assert!(
                error.to_string().contains("unknown field"),
                "{tool}: {error}"
            );
        }
    }

    #[test]
    fn tools_not_offered_and_bad_arguments_are_refused() {
        let memory_off = Toolset {
            memory: false,
            ..Toolset::ALL
        };
        assert_eq!(
            read("memory_search", r#"{"query":"x"}"#, memory_off),
            Err(ToolError::Unknown("memory_search".into()))
        );
        assert_eq!(
            read("shell", "{}", Toolset::ALL),
            Err(ToolError::Unknown("shell".into()))
        );
        assert!(matches!(
            read("calculate", "not json", Toolset::ALL),
            Err(ToolError::Arguments {
                tool: "calculate",
                ..
            })
        ));
        assert!(matches!(
            read(
                "reminder_create",
                r#"{"text":"x","when":"now","audience":"everyone"}"#,
                Toolset::ALL
            ),
            Err(ToolError::Arguments { .. })
        ));
        assert_eq!(
            read("calculate", &" ".repeat(MAX_ARGUMENTS + 1), Toolset::ALL),
            Err(ToolError::TooLong)
        );
    }

    #[test]
    fn definitions_list_what_is_offered_and_forbid_extra_arguments() {
        let all = definitions(Toolset::ALL);
        let names: Vec<&str> = all
            .as_array()
            .unwrap()
            .iter()
            .map(|tool| tool["function"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names.len(), 12);
        for tool in all.as_array().unwrap() {
            assert_eq!(
                tool["function"]["parameters"]["additionalProperties"],
                false
            );
        }
        let bare = definitions(Toolset {
            memory: false,
            reminders: false,
            documents: false,
            lists: false,
        });
        assert_eq!(
            bare.as_array().unwrap().len(),
            2,
            "time and arithmetic stay"
        );
    }

    #[test]
    fn streamed_fragments_join_into_calls() {
        let fragments = vec![
            json!([{"index": 0, "id": "call_a", "type": "function", "function": {"name": "memory_", "arguments": ""}}]),
            json!([{"index": 0, "function": {"name": "search", "arguments": "{\"query\":"}}]),
            json!([{"index": 1, "function": {"name": "current_time", "arguments": "{}"}}]),
            json!([{"index": 0, "function": {"arguments": "\"tea\"}"}}]),
        ];
        assert_eq!(
            assemble(&fragments),
            [
                (
                    "call_a".to_owned(),
                    "memory_search".to_owned(),
                    "{\"query\":\"tea\"}".to_owned()
                ),
                (
                    "call_1".to_owned(),
                    "current_time".to_owned(),
                    "{}".to_owned()
                ),
            ]
        );
    }
}
