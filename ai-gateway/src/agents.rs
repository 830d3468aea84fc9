//! OpenClaw's agents as Hearth's personas: each agent of `agents.entries`
//! (or, with none, OpenClaw's default agent `main`) has its system prompt
//! from its workspace and may have a model of its own; the OpenAI API names
//! them as OpenClaw does (`openclaw`, `openclaw/default`, `openclaw/<id>`,
//! `openclaw:<id>`, `agent:<id>`). Pure: the prompts are read by the caller.

use std::collections::BTreeMap;

use hearth_llm::ModelRef;

/// OpenClaw's id for the agent when none is configured.
pub const DEFAULT_ID: &str = "main";

/// One agent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Agent {
    /// Display name.
    pub name: Option<String>,
    /// Its system prompt (from its workspace's persona files).
    pub persona: Option<String>,
    /// The model it starts with, when not the default chain's first.
    pub model: Option<ModelRef>,
}

/// Every agent, and which answers requests that name none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agents {
    default: String,
    agents: BTreeMap<String, Agent>,
}

impl Agents {
    /// `agents` (by id), `default` answering requests that name none; with
    /// no agents, the default one alone (`main`, with `fallback`).
    pub fn new(
        agents: BTreeMap<String, Agent>,
        default: Option<String>,
        fallback: Agent,
    ) -> Agents {
        if agents.is_empty() {
            return Agents {
                default: DEFAULT_ID.to_owned(),
                agents: BTreeMap::from([(DEFAULT_ID.to_owned(), fallback)]),
            };
        }
        let default = default
            .filter(|id| agents.contains_key(id))
            .or_else(|| agents.keys().next().cloned())
            .unwrap_or_else(|| DEFAULT_ID.to_owned());
        Agents { default, agents }
    }

    /// The default agent's id.
    pub fn default_id(&self) -> &str {
        &self.default
    }

    /// The agent `id`, if there is one.
    pub fn get(&self, id: &str) -> Option<&Agent> {
        self.agents.get(id)
    }

    /// The default agent.
    pub fn default_agent(&self) -> &Agent {
        &self.agents[&self.default]
    }

    /// Agent ids, sorted.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.agents.keys().map(String::as_str)
    }

    /// The OpenAI model ids naming agents, as OpenClaw lists them.
    pub fn model_ids(&self) -> Vec<String> {
        ["openclaw".to_owned(), "openclaw/default".to_owned()]
            .into_iter()
            .chain(self.ids().map(|id| format!("openclaw/{id}")))
            .collect()
    }

    /// The agent an OpenAI `model` value names: `Some(Ok(id))` for a
    /// known agent, `Some(Err(()))` for an agent target naming none, and
    /// `None` when the value is no agent target at all (a model name).
    pub fn target(&self, model: &str) -> Option<Result<&str, ()>> {
        let id = match model {
            "openclaw" | "openclaw/default" | "openclaw:default" => return Some(Ok(&self.default)),
            _ => model
                .strip_prefix("openclaw/")
                .or_else(|| model.strip_prefix("openclaw:"))
                .or_else(|| model.strip_prefix("agent:"))?,
        };
        Some(
            self.agents
                .get_key_value(id)
                .map(|(id, _)| id.as_str())
                .ok_or(()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agents() -> Agents {
        Agents::new(
            BTreeMap::from([
                ("kitchen".to_owned(), Agent::default()),
                ("homework".to_owned(), Agent::default()),
            ]),
            Some("kitchen".into()),
            Agent::default(),
        )
    }

    #[test]
    fn agents_are_named_as_openclaw_names_them() {
        let agents = agents();
        assert_eq!(agents.target("openclaw"), Some(Ok("kitchen")));
        assert_eq!(agents.target("openclaw/default"), Some(Ok("kitchen")));
        assert_eq!(agents.target("openclaw/homework"), Some(Ok("homework")));
        assert_eq!(agents.target("openclaw:homework"), Some(Ok("homework")));
        assert_eq!(agents.target("agent:homework"), Some(Ok("homework")));
        assert_eq!(agents.target("openclaw/garage"), Some(Err(())));
        assert_eq!(
            agents.target("llamacpp/tiny"),
            None,
            "a model, not an agent"
        );
        assert_eq!(
            agents.model_ids(),
            [
                "openclaw",
                "openclaw/default",
                "openclaw/homework",
                "openclaw/kitchen"
            ]
        );
    }

    #[test]
    fn with_no_agents_the_default_is_openclaws_main() {
        let agents = Agents::new(BTreeMap::new(), None, Agent::default());
        assert_eq!(agents.default_id(), "main");
        assert_eq!(agents.target("openclaw/main"), Some(Ok("main")));
        let unnamed = Agents::new(
            BTreeMap::from([
                ("b".to_owned(), Agent::default()),
                ("a".to_owned(), Agent::default()),
            ]),
            Some("missing".into()),
            Agent::default(),
        );
        assert_eq!(unnamed.default_id(), "a", "no default marked: the first");
    }
}
