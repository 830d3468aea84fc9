//! Admission, decided without IO: which agent or model a turn asks for,
//! whom it is for (and so whose policy applies), whether the policy lets
//! them use it and which models may answer, whether its pictures can be
//! looked at, and which tools the model is offered. Its inputs are values
//! (the [`Ask`] and the gateway's [`Book`]); its answer an [`Admission`] or
//! a [`Refused`]. The use case ([`super::ask`]) reads the session, the
//! usage and the rates around it.

use hearth_e2ee::ErrorCode;
use std::time::Instant;

use hearth_llm::{Message, ModelRef, StructuredOutput};
use hearth_roster::Asker;

use super::refused::Refused;
use super::turns::Route;
use crate::access::{Access, Target};
use crate::agents::Agents;
use crate::caller::Caller;
use crate::slots::Holder;

/// What a caller asks, whatever the wire it came on.
pub struct Ask {
    /// Who called.
    pub caller: Caller,
    /// The member the caller asks for (household messaging's and the
    /// scheduler's questions); a device asks for its own member.
    pub on_behalf_of: Option<Asker>,
    /// The agent target or model asked for (`openclaw`, `openclaw/<id>`,
    /// `provider/model`, a bare model id); none is the default agent.
    pub model: Option<String>,
    /// The agent named apart from the model (OpenClaw's agent id).
    pub agent: Option<String>,
    /// The backend model named apart from the agent (OpenClaw's model override).
    pub backend_model: Option<String>,
    /// The session the exchange continues and is kept in; none: the
    /// caller brings the whole conversation.
    pub session: Option<Session>,
    /// The conversation the caller brings, the newest message last.
    pub messages: Vec<Message>,
    /// More system prompt, after the agent's persona.
    pub instructions: Option<String>,
    /// The most tokens the reply may have (capped by the model and limits).
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Other sampling settings, checked.
    pub sampling: hearth_llm::Sampling,
    /// The caller's own tools and which it wants called, checked.
    pub tools: crate::openai::Tools,
    /// The reply's structure the caller asks for (none: free text).
    pub response_format: Option<StructuredOutput>,
    /// Whether (and how much) a thinking model thinks first.
    pub think: Option<hearth_llm::Think>,
    /// The API it came on, for the metrics.
    pub endpoint: &'static str,
    /// When the request arrived.
    pub arrived: Instant,
    /// The rate it is held to here.
    pub limit: Limit,
}

impl Ask {
    /// `caller` asking the default agent about `messages` on `endpoint`,
    /// nothing else set.
    pub fn new(caller: Caller, messages: Vec<Message>, endpoint: &'static str) -> Ask {
        Ask {
            caller,
            on_behalf_of: None,
            model: None,
            agent: None,
            backend_model: None,
            session: None,
            messages,
            instructions: None,
            max_tokens: None,
            temperature: None,
            sampling: hearth_llm::Sampling::default(),
            tools: crate::openai::Tools::default(),
            response_format: None,
            think: None,
            endpoint,
            arrived: Instant::now(),
            limit: Limit::Adapter,
        }
    }
}

/// Which rate a turn is held to here, besides its adapter's own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Limit {
    /// None here: the adapter limits by what identifies the client better
    /// (a sealed request's device key, an OpenClaw device).
    #[default]
    Adapter,
    /// The caller's address, at the per-device rate (the OpenAI and
    /// Ollama APIs, which carry no device key).
    Address,
}

/// A kept conversation: a channel of an owner's (the same store serves a
/// sealed device's channels and an API caller's session keys).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The channel (`default`, `openai:<key>`, …).
    pub channel: String,
    /// Whose channels: a device's key, or a caller's session owner.
    pub owner: String,
}

/// Which agent answers and which model it starts with.
#[derive(Clone, Debug)]
pub struct Selection {
    /// The agent (its persona).
    pub agent: String,
    /// The model tried first, if one was named or the agent has one.
    pub first: Option<ModelRef>,
    /// What the access policy is asked about.
    pub target: Target,
}

/// What the models can do, as their servers last said.
pub trait Abilities {
    /// Whether `model` (the chain's first when `None`) reads images.
    fn reads_images(&self, model: Option<&ModelRef>) -> bool;
    /// Whether `model` (the chain's first when `None`) takes tools.
    fn takes_tools(&self, model: Option<&ModelRef>) -> bool;
}

impl Abilities for hearth_llm::Router {
    fn reads_images(&self, model: Option<&ModelRef>) -> bool {
        hearth_llm::Router::reads_images(self, model)
    }

    fn takes_tools(&self, model: Option<&ModelRef>) -> bool {
        hearth_llm::Router::takes_tools(self, model)
    }
}

/// The household assistant, as admission sees it.
pub trait Household {
    /// The definitions of the tools it offers the model (none: it offers
    /// none).
    fn tool_definitions(&self) -> Option<serde_json::Value>;
}

impl Household for crate::assistant::Assistant {
    fn tool_definitions(&self) -> Option<serde_json::Value> {
        crate::assistant::Assistant::tool_definitions(self)
    }
}

/// What the gateway decides with: its agents and models, as they are now.
pub struct Book<'a> {
    /// The agents.
    pub agents: &'a Agents,
    /// The models in failover order (the router's chain).
    pub chain: &'a [ModelRef],
    /// The models of the mesh's model servers that answer now
    /// (`device/model`, `POOL/model`).
    pub discovered: Vec<ModelRef>,
    /// The chain's models whose mesh server is not there now: not listed,
    /// nor asked for by name.
    pub away: Vec<ModelRef>,
    /// Devices the hub may wake (Wake-on-LAN) that are not there now.
    pub wakeable: Vec<String>,
    /// The models a turn may fall over to.
    pub failover: &'a [ModelRef],
    /// The model the assistant embeds with, if any.
    pub embedding: Option<ModelRef>,
    /// What the models can do.
    pub abilities: &'a dyn Abilities,
    /// The household assistant, when it answers members.
    pub assistant: Option<&'a dyn Household>,
}

/// Whose turn it is: the account its usage and budget count against, what
/// the policy lets it do, and whose slot it takes.
#[derive(Clone, Debug)]
pub struct Account {
    /// Whose usage and budget.
    pub who: String,
    /// What the policy lets them do.
    pub access: Access,
    /// Whose reply slot.
    pub holder: Holder,
}

impl Account {
    /// The member asked for, with the grants their device has; else the
    /// caller itself.
    pub fn of(caller: &Caller, asker: Option<&Asker>) -> Account {
        match asker {
            Some(asker) => Account {
                who: asker.member.clone(),
                access: Access::of(&asker.capabilities),
                holder: Holder::Account(asker.member.clone()),
            },
            None => Account {
                who: caller.account(),
                access: caller.access(),
                holder: if caller.speaks_for_members {
                    Holder::Operator
                } else {
                    Holder::Account(caller.account())
                },
            },
        }
    }
}

/// A turn let in: what was asked for, for whom, the models that may
/// answer and the tools offered.
#[derive(Debug)]
pub struct Admission {
    /// The agent and the model it starts with.
    pub selection: Selection,
    /// The member the turn is for, if any.
    pub asker: Option<Asker>,
    /// Whose policy, usage and slot.
    pub account: Account,
    /// The models that may answer.
    pub route: Route,
    /// Whether the household assistant answers (a member asking an agent).
    pub assistant: bool,
    /// The assistant's tools offered to the model (its model takes tools).
    pub household_tools: Option<serde_json::Value>,
    /// The names of the caller's own tools.
    pub client_tools: Vec<String>,
}

impl Book<'_> {
    /// The backend models, by id, once each.
    pub fn models(&self) -> Vec<ModelRef> {
        let mut models: Vec<ModelRef> = self
            .chain
            .iter()
            .filter(|model| !self.away.contains(model))
            .cloned()
            .collect();
        models.extend(self.discovered.iter().cloned());
        models.sort_by_key(ToString::to_string);
        models.dedup();
        models
    }

    /// The model ids callers can name: the agents (as OpenClaw lists them),
    /// then the backend models as `provider/model`, then the embedding model.
    pub fn model_ids(&self) -> Vec<String> {
        self.agents
            .model_ids()
            .into_iter()
            .chain(self.models().iter().map(ToString::to_string))
            .chain(self.embedding.iter().map(ToString::to_string))
            .collect()
    }

    /// The sleeping device `ask` names a model of (`device/model`, in
    /// `model` or `backend_model`), when the hub may wake it and the asker
    /// may use it: admission then says it is waking, and the gateway wakes
    /// it. A member who may not use it wakes nothing.
    pub fn waking(&self, ask: &Ask) -> Option<String> {
        let asker = ask.caller.asker(ask.on_behalf_of.as_ref()).ok().flatten();
        let account = Account::of(&ask.caller, asker.as_ref());
        [ask.model.as_deref(), ask.backend_model.as_deref()]
            .into_iter()
            .flatten()
            .map(str::trim)
            .find_map(|name| {
                let (device, model) = name.split_once('/')?;
                (!model.is_empty()
                    && self.wakeable.iter().any(|wakeable| wakeable == device)
                    && account.access.permits(&Target::Model(name.to_owned())))
                .then(|| device.to_owned())
            })
    }

    /// The embedding model, if `name` names it.
    pub fn embedding_named(&self, name: &str) -> Option<ModelRef> {
        self.embedding
            .clone()
            .filter(|model| model.to_string() == name || model.model == name)
    }

    /// The model a client named: a `provider/model` id, or a bare model id
    /// that names exactly one.
    pub fn model_named(&self, name: &str) -> Option<ModelRef> {
        let models = self.models();
        if let Some(found) = models.iter().find(|model| model.to_string() == name) {
            return Some(found.clone());
        }
        let mut bare = models.iter().filter(|model| model.model == name);
        match (bare.next(), bare.next()) {
            (Some(only), None) => Some(only.clone()),
            _ => None,
        }
    }

    /// Which agent and model a request names: OpenClaw's agent targets in
    /// `model` (`openclaw`, `openclaw/<id>`, …) or `agent`; a backend model
    /// from `backend_model`, or a `provider/model` id (or a bare model id
    /// naming exactly one) in `model`.
    pub fn select(
        &self,
        model: Option<&str>,
        agent: Option<&str>,
        backend_model: Option<&str>,
    ) -> Result<Selection, Refused> {
        let unknown = |name: &str| {
            Refused::new(
                ErrorCode::ModelNotFound,
                format!(
                    "no agent or model is called {name:?}; GET /v1/models lists them: {}",
                    self.model_ids().join(", ")
                ),
            )
        };
        for name in [model, backend_model].into_iter().flatten().map(str::trim) {
            if let Some(model) = self.embedding_named(name) {
                return Err(Refused::new(
                    ErrorCode::InvalidRequestError,
                    format!(
                        "{model} is an embedding model: it gives embeddings (/v1/embeddings, Ollama's /api/embed), not chat replies; choose a chat model from GET /v1/models"
                    ),
                ));
            }
        }
        let mut chosen_agent = self.agents.default_id().to_owned();
        let mut chosen = None;
        if let Some(name) = model.map(str::trim).filter(|name| !name.is_empty()) {
            match self.agents.target(name) {
                Some(Ok(id)) => id.clone_into(&mut chosen_agent),
                Some(Err(())) => return Err(unknown(name)),
                None => chosen = Some(self.model_named(name).ok_or_else(|| unknown(name))?),
            }
        }
        if let Some(id) = agent.map(str::trim).filter(|id| !id.is_empty()) {
            if self.agents.get(id).is_none() {
                return Err(unknown(id));
            }
            id.clone_into(&mut chosen_agent);
        }
        if let Some(name) = backend_model.map(str::trim).filter(|name| !name.is_empty()) {
            chosen = Some(self.model_named(name).ok_or_else(|| unknown(name))?);
        }
        let target = match &chosen {
            Some(model) => Target::Model(model.to_string()),
            None => Target::Agent(chosen_agent.clone()),
        };
        let first = chosen.or_else(|| {
            self.agents
                .get(&chosen_agent)
                .and_then(|found| found.model.clone())
        });
        Ok(Selection {
            agent: chosen_agent,
            first,
            target,
        })
    }

    /// Whether `account` may use what `selection` names, and the route of
    /// the models that may answer it: refused when the policy does not
    /// grant the target, or grants no model that could answer it.
    pub fn route(&self, account: &Account, selection: &Selection) -> Result<Route, Refused> {
        let Account { who, access, .. } = account;
        if !access.permits(&selection.target) {
            let (Target::Agent(name) | Target::Model(name)) = &selection.target;
            return Err(Refused::new(
                ErrorCode::NotPermitted,
                format!(
                    "{who} may not use {name}: the household's policy (grants of hearth.example/cap/ai) lets them use {}",
                    access.allowed()
                ),
            ));
        }
        // Along the failover chain, or the model asked for by name.
        let mut allowed: Vec<ModelRef> = self
            .chain
            .iter()
            .filter(|model| {
                self.failover.contains(model) || selection.first.as_ref() == Some(model)
            })
            .filter(|model| access.may_answer_with(&selection.target, &model.to_string()))
            .cloned()
            .collect();
        // A mesh server's model asked for by name, outside the chain.
        if let Some(first) = &selection.first
            && !self.chain.contains(first)
            && self.discovered.contains(first)
            && access.may_answer_with(&selection.target, &first.to_string())
        {
            allowed.insert(0, first.clone());
        }
        if allowed.is_empty() && !self.chain.is_empty() {
            return Err(Refused::new(
                ErrorCode::NotPermitted,
                format!(
                    "none of the models that could answer may be used by {who}: the household's policy \
                     (grants of hearth.example/cap/ai) lets them use {}",
                    access.allowed()
                ),
            ));
        }
        Ok(Route {
            first: selection.first.clone(),
            allowed: std::sync::Arc::new(allowed),
        })
    }
}

/// Whether `ask` may start, and with what (see the module's documentation):
/// a conversation to answer, a model or agent that exists, a member the
/// caller may speak for, the policy's grant, pictures only to a model that
/// reads them, and the caller's tools not named as the assistant's own.
pub fn admit(ask: &Ask, book: &Book<'_>) -> Result<Admission, Refused> {
    if ask.messages.is_empty() {
        return Err(Refused::new(
            ErrorCode::InvalidRequestError,
            "the conversation is empty",
        ));
    }
    let selection = book
        .select(
            ask.model.as_deref(),
            ask.agent.as_deref(),
            ask.backend_model.as_deref(),
        )
        .map_err(|refused| match book.waking(ask) {
            Some(device) => Refused::new(
                ErrorCode::NoModel,
                format!(
                    "{device} is asleep: the hub is waking it (Wake-on-LAN); its models are back \
                     once it is up, in a minute or two: ask again then, or ask another model"
                ),
            ),
            None => refused,
        })?;
    // A member named by the caller must be one it may speak for; a
    // device's own member is what it is, or nobody in particular.
    let asker = match (
        ask.caller.asker(ask.on_behalf_of.as_ref()),
        &ask.on_behalf_of,
    ) {
        (Ok(asker), _) => asker,
        (Err(why), Some(_)) => return Err(Refused::new(ErrorCode::BadRequest, why)),
        (Err(_), None) => None,
    };
    let account = Account::of(&ask.caller, asker.as_ref());
    let route = book.route(&account, &selection)?;
    if ask
        .messages
        .iter()
        .any(|message| !message.images.is_empty())
    {
        let vision = book.abilities.reads_images(route.leading());
        for message in ask.messages.iter().filter(|m| !m.images.is_empty()) {
            check_images(&message.images, vision).map_err(|refused| {
                let message = match (&refused, &selection.target) {
                    (PictureRefused::NoVision, Target::Model(_)) => {
                        "this model does not read images: no model here says it has vision \
                         (llama-server started with a multimodal projector, --mmproj, says so)"
                            .to_owned()
                    }
                    _ => refused.to_string(),
                };
                Refused::new(ErrorCode::UnsupportedMediaType, message)
            })?;
        }
    }
    // The household assistant answers a member who asks an agent.
    let assistant =
        matches!(selection.target, Target::Agent(_)) && book.assistant.is_some() && asker.is_some();
    let household_tools = match &book.assistant {
        Some(household) if assistant && book.abilities.takes_tools(route.leading()) => {
            household.tool_definitions()
        }
        _ => None,
    };
    let client_tools = ask.tools.names().to_vec();
    if let Some(household) = &household_tools
        && let Some(clash) = client_tools.iter().find(|name| {
            household
                .as_array()
                .into_iter()
                .flatten()
                .any(|tool| tool["function"]["name"] == name.as_str())
        })
    {
        return Err(Refused::new(
            ErrorCode::InvalidRequestError,
            format!(
                "the tool {clash:?} is one of the household assistant's own; give yours another name"
            ),
        ));
    }
    Ok(Admission {
        selection,
        asker,
        account,
        route,
        assistant,
        household_tools,
        client_tools,
    })
}

/// Most pictures one message may carry.
pub const MAX_IMAGES: usize = 4;

/// Why pictures may not go to the model.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PictureRefused {
    /// No model that would answer reads images.
    #[error("{NO_VISION}")]
    NoVision,
    /// Too many with one message.
    #[error("at most {MAX_IMAGES} pictures go with one message")]
    TooMany,
    /// Not a picture in a form models take.
    #[error("a picture is sent as a data:image/(png|jpeg|webp|gif);base64 URL")]
    NotAPicture,
}

/// Whether `images` (data URLs) may go to the model: some model here reads
/// images, and each is a picture in a form models take.
pub fn check_images(images: &[String], vision: bool) -> Result<(), PictureRefused> {
    if !vision {
        return Err(PictureRefused::NoVision);
    }
    if images.len() > MAX_IMAGES {
        return Err(PictureRefused::TooMany);
    }
    let picture = |url: &str| {
        ["png", "jpeg", "webp", "gif"]
            .iter()
            .any(|kind| url.starts_with(&format!("data:image/{kind};base64,")))
    };
    if images.iter().all(|url| picture(url)) {
        Ok(())
    } else {
        Err(PictureRefused::NotAPicture)
    }
}

/// Why a picture is not looked at when no model reads images.
pub const NO_VISION: &str = "none of the household's models can look at pictures: a model that \
     reads images is needed (llama-server started with its multimodal projector, --mmproj)";

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::{IpAddr, Ipv4Addr};

    use serde_json::json;

    use super::*;
    use crate::agents::Agent;

    /// Models whose servers said they read images (`vision`) and take
    /// tools (`tools`).
    struct Said {
        vision: Vec<ModelRef>,
        tools: Vec<ModelRef>,
    }

    impl Abilities for Said {
        fn reads_images(&self, model: Option<&ModelRef>) -> bool {
            model.is_some_and(|model| self.vision.contains(model))
        }

        fn takes_tools(&self, model: Option<&ModelRef>) -> bool {
            model.is_some_and(|model| self.tools.contains(model))
        }
    }

    struct Assistant;

    impl Household for Assistant {
        fn tool_definitions(&self) -> Option<serde_json::Value> {
            Some(json!([{"type": "function", "function": {"name": "remember"}}]))
        }
    }

    fn model(id: &str) -> ModelRef {
        ModelRef::parse(id).unwrap()
    }

    struct House {
        agents: Agents,
        chain: Vec<ModelRef>,
        discovered: Vec<ModelRef>,
        away: Vec<ModelRef>,
        said: Said,
    }

    impl House {
        fn new() -> House {
            House {
                agents: Agents::new(BTreeMap::new(), None, Agent::default()),
                chain: vec![model("local/small"), model("cloud/big")],
                discovered: Vec::new(),
                away: Vec::new(),
                said: Said {
                    vision: vec![model("cloud/big")],
                    tools: vec![model("local/small")],
                },
            }
        }

        fn book(&self) -> Book<'_> {
            Book {
                agents: &self.agents,
                chain: &self.chain,
                discovered: self.discovered.clone(),
                away: self.away.clone(),
                wakeable: vec!["gaming-pc".to_owned()],
                failover: &self.chain,
                embedding: Some(model("local/e5")),
                abilities: &self.said,
                assistant: Some(&Assistant),
            }
        }
    }

    /// A member's device, with the access policy's grant of `ai`.
    fn member(name: &str, ai: serde_json::Value) -> Caller {
        Caller {
            user: Some(name.to_owned()),
            capabilities: BTreeMap::from([(crate::access::AI_CAPABILITY.to_owned(), ai)]),
            ..Caller::nobody(IpAddr::V4(Ipv4Addr::new(100, 64, 0, 2)))
        }
    }

    fn asks(caller: Caller, model: Option<&str>) -> Ask {
        Ask {
            model: model.map(str::to_owned),
            ..Ask::new(caller, vec![Message::new("user", "hello")], "test")
        }
    }

    #[test]
    fn a_model_server_on_the_mesh_is_listed_asked_by_name_and_granted_by_device() {
        let mut house = House::new();
        house.discovered = vec![model("gaming-pc/qwen3:8b"), model("models/qwen3:8b")];
        let book = house.book();
        assert!(book.model_ids().contains(&"gaming-pc/qwen3:8b".to_owned()));
        // Granted the device: its model first, then the chain's fallbacks
        // they may use.
        let gamer = member("ada", json!({"models": ["gaming-pc/*", "local/small"]}));
        let admitted = admit(&asks(gamer.clone(), Some("gaming-pc/qwen3:8b")), &book).unwrap();
        assert_eq!(
            admitted.route.allowed.as_slice(),
            [model("gaming-pc/qwen3:8b"), model("local/small")]
        );
        assert_eq!(admitted.route.leading(), Some(&model("gaming-pc/qwen3:8b")));
        // The pool is another grant; a member without the device's is refused.
        let refused = admit(&asks(gamer, Some("models/qwen3:8b")), &book).unwrap_err();
        assert_eq!(refused.code, ErrorCode::NotPermitted);
        let other = member("ben", json!({"models": ["local/small"]}));
        let refused = admit(&asks(other, Some("gaming-pc/qwen3:8b")), &book).unwrap_err();
        assert!(
            refused.message.contains("may not use gaming-pc/qwen3:8b"),
            "{}",
            refused.message
        );
        // Asleep: not listed, so not a model anyone can name now, even
        // one the chain holds.
        house.discovered.clear();
        house.chain.insert(0, model("gaming-pc/qwen3:8b"));
        house.away = vec![model("gaming-pc/qwen3:8b")];
        assert!(
            !house
                .book()
                .model_ids()
                .contains(&"gaming-pc/qwen3:8b".to_owned())
        );
        let asleep = admit(
            &asks(
                member("ada", json!({"models": ["*"]})),
                Some("gaming-pc/qwen3:8b"),
            ),
            &house.book(),
        )
        .unwrap_err();
        assert_eq!(asleep.code, ErrorCode::NoModel);
        assert!(
            asleep
                .message
                .contains("gaming-pc is asleep: the hub is waking it")
        );
        assert_eq!(
            house.book().waking(&asks(
                member("ada", json!({"models": ["*"]})),
                Some("gaming-pc/x")
            )),
            Some("gaming-pc".to_owned())
        );
        // Not granted the device: not woken, and not told more than that
        // there is no such model.
        let ben = asks(
            member("ben", json!({"models": ["local/small"]})),
            Some("gaming-pc/x"),
        );
        assert_eq!(house.book().waking(&ben), None);
        assert_eq!(
            admit(&ben, &house.book()).unwrap_err().code,
            ErrorCode::ModelNotFound
        );
    }

    #[test]
    fn a_member_asking_the_assistant_is_answered_by_it_with_its_tools() {
        let house = House::new();
        let ask = asks(member("ada", json!({"models": ["*"]})), None);
        let admitted = admit(&ask, &house.book()).unwrap();
        assert!(admitted.assistant);
        assert_eq!(admitted.account.who, "ada");
        assert_eq!(admitted.route.leading(), Some(&model("local/small")));
        assert!(
            admitted.household_tools.is_some(),
            "local/small takes tools"
        );
        // Asked of a model by name, the model answers, not the assistant.
        let ask = asks(member("ada", json!({"models": ["*"]})), Some("cloud/big"));
        let admitted = admit(&ask, &house.book()).unwrap();
        assert!(!admitted.assistant);
        assert_eq!(admitted.household_tools, None);
        assert_eq!(admitted.route.leading(), Some(&model("cloud/big")));
    }

    #[test]
    fn the_policy_decides_what_a_member_may_use_and_which_models_answer() {
        let house = House::new();
        let limited = json!({"models": ["assistant", "local/small"]});
        let ask = asks(member("ben", limited.clone()), Some("cloud/big"));
        let refused = admit(&ask, &house.book()).unwrap_err();
        assert_eq!(refused.code, ErrorCode::NotPermitted);
        assert!(
            refused.message.starts_with("ben may not use cloud/big"),
            "{refused}"
        );
        // The assistant answers ben from the models granted by name only.
        let admitted = admit(&asks(member("ben", limited), None), &house.book()).unwrap();
        assert_eq!(*admitted.route.allowed, vec![model("local/small")]);
        // Granted a model the chain does not hold: nothing may answer.
        let ask = asks(
            member("cy", json!({"models": ["assistant", "other/one"]})),
            None,
        );
        assert_eq!(
            admit(&ask, &house.book()).unwrap_err().code,
            ErrorCode::NotPermitted
        );
    }

    #[test]
    fn what_cannot_be_asked_is_refused_with_why() {
        let house = House::new();
        let anyone = || member("ada", json!({"models": ["*"]}));
        let empty = Ask::new(anyone(), Vec::new(), "test");
        assert_eq!(
            admit(&empty, &house.book()).unwrap_err().code,
            ErrorCode::InvalidRequestError
        );
        let unknown = admit(&asks(anyone(), Some("nowhere/model")), &house.book()).unwrap_err();
        assert_eq!(unknown.code, ErrorCode::ModelNotFound);
        assert!(unknown.message.contains("local/small"), "{unknown}");
        let embedding = admit(&asks(anyone(), Some("local/e5")), &house.book()).unwrap_err();
        assert!(embedding.message.contains("embedding model"), "{embedding}");
        // A device speaks for its own member only.
        let mut other = asks(anyone(), None);
        other.on_behalf_of = Some(Asker {
            member: "ben".into(),
            room: None,
            capabilities: BTreeMap::new(),
            device: None,
            language: None,
        });
        assert_eq!(
            admit(&other, &house.book()).unwrap_err().code,
            ErrorCode::BadRequest
        );
        // The caller's tool named as the assistant's own.
        let mut clash = asks(anyone(), None);
        clash.tools = crate::openai::check_tools(
            Some(&json!([{"type": "function", "function": {"name": "remember"}}])),
            None,
        )
        .unwrap();
        let refused = admit(&clash, &house.book()).unwrap_err();
        assert!(refused.message.contains("\"remember\""), "{refused}");
    }

    #[test]
    fn pictures_go_only_to_a_model_that_reads_them() {
        let house = House::new();
        let picture = |model_asked: Option<&str>| {
            let mut ask = asks(member("ada", json!({"models": ["*"]})), model_asked);
            ask.messages[0].images = vec!["data:image/png;base64,AAAA".into()];
            admit(&ask, &house.book())
        };
        assert!(picture(Some("cloud/big")).is_ok());
        let refused = picture(Some("local/small")).unwrap_err();
        assert_eq!(refused.code, ErrorCode::UnsupportedMediaType);
        assert!(
            refused
                .message
                .starts_with("this model does not read images")
        );
        // The assistant leads with local/small, which does not read them.
        assert_eq!(picture(None).unwrap_err().message, NO_VISION);
    }
}
