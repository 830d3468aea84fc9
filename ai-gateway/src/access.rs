//! What the access policy lets a caller do with the gateway: the models
//! (and the assistant) it may ask, its daily token budget, and — for a
//! front end serving many people from one device — the members it may
//! name. Read from the `hearth.example/cap/ai` application capability the
//! policy's `grants` give the caller's device at this hub. Pure.
//!
//! A grant's value is an object:
//! `{"models": ["assistant", "local/tiny", "gaming-pc/*", "speech/*"], "dailyTokens": 20000,
//! "dailyAudioSeconds": 600, "actFor": ["ada", "ben"]}`, every key optional; `provider/*` is every
//! model of a provider (a model server on the mesh: every model of that
//! device; `models/*`: any model server's). Grants add up, as in
//! Tailscale: the models are every grant's together (`"*"` is all of
//! them), the budget the largest stated, the members every grant's.
//! A caller no grant of this capability reaches keeps the whole gateway
//! without a budget, so a household that writes no such grant loses
//! nothing.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// The application capability's name.
pub const AI_CAPABILITY: &str = "hearth.example/cap/ai";

/// The name a grant gives every agent (the household's assistant).
pub const ASSISTANT_MODEL: &str = "assistant";

/// What a request asks to use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// An agent (`openclaw`, `openclaw/<id>`): the assistant.
    Agent(String),
    /// A backend model, `provider/model`.
    Model(String),
}

/// What the policy lets one caller do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Access {
    /// The models it may use (`None`: all of them).
    models: Option<BTreeSet<String>>,
    /// Its daily token budget (`None`: no budget).
    pub daily_tokens: Option<u64>,
    /// Its daily budget of audio to transcribe, in seconds (`None`: no
    /// budget).
    pub daily_audio_seconds: Option<u64>,
    /// The members it may act for, naming them in a front end's headers.
    act_for: BTreeSet<String>,
}

impl Access {
    /// The access `capabilities` (a `whois` answer's) give.
    pub fn of(capabilities: &BTreeMap<String, Value>) -> Access {
        let Some(grants) = capabilities.get(AI_CAPABILITY) else {
            return Access::default();
        };
        let grants: Vec<&Value> = match grants {
            Value::Array(grants) => grants.iter().collect(),
            grant => vec![grant],
        };
        let mut access = Access::default();
        let mut models: Option<BTreeSet<String>> = None;
        for grant in grants {
            // A key the grant states but spells wrong gives nothing: no
            // model, no tokens (never everything).
            if let Some(names) = grant.get("models") {
                let names = names.as_array().map(Vec::as_slice).unwrap_or_default();
                models
                    .get_or_insert_default()
                    .extend(names.iter().filter_map(Value::as_str).map(str::to_owned));
            }
            if let Some(budget) = grant.get("dailyTokens") {
                let budget = budget.as_u64().unwrap_or(0);
                access.daily_tokens = Some(access.daily_tokens.map_or(budget, |b| b.max(budget)));
            }
            if let Some(budget) = grant.get("dailyAudioSeconds") {
                let budget = budget.as_u64().unwrap_or(0);
                access.daily_audio_seconds =
                    Some(access.daily_audio_seconds.map_or(budget, |b| b.max(budget)));
            }
            if let Some(names) = grant.get("actFor").and_then(Value::as_array) {
                access
                    .act_for
                    .extend(names.iter().filter_map(Value::as_str).map(str::to_owned));
            }
        }
        access.models = models.filter(|names| !names.contains("*"));
        access
    }

    /// Whether it may use `target`.
    pub fn permits(&self, target: &Target) -> bool {
        let Some(models) = &self.models else {
            return true;
        };
        match target {
            Target::Agent(id) => {
                models.contains(ASSISTANT_MODEL) || models.contains(&format!("openclaw/{id}"))
            }
            Target::Model(name) => grants(models, name),
        }
    }

    /// Whether a turn asking for `target` may be answered by the backend
    /// model `model` (`provider/model`), as a fallback included: every
    /// model when the policy limits none; for a model asked for by name,
    /// only models granted by name; for an agent (the assistant), the
    /// models granted by name when the grants name any, else whichever
    /// the household's chain holds. A member limited to local models is
    /// never answered (nor their prompt sent) elsewhere.
    pub fn may_answer_with(&self, target: &Target, model: &str) -> bool {
        let Some(models) = &self.models else {
            return true;
        };
        let names_models = models
            .iter()
            .any(|name| name.contains('/') && !name.starts_with("openclaw/"));
        match target {
            Target::Model(_) => grants(models, model),
            Target::Agent(_) => !names_models || grants(models, model),
        }
    }

    /// What it may use, as a sentence's end (for a refusal).
    pub fn allowed(&self) -> String {
        match &self.models {
            None => "every model".to_owned(),
            Some(models) if models.is_empty() => "no model".to_owned(),
            Some(models) => models.iter().cloned().collect::<Vec<_>>().join(", "),
        }
    }

    /// Whether it may name `member` as the person it acts for.
    pub fn may_act_for(&self, member: &str) -> bool {
        self.act_for.contains(member)
    }
}

/// Whether `models` (a grant's list) names `model` (`provider/model`), by
/// itself or as `provider/*`.
fn grants(models: &BTreeSet<String>, model: &str) -> bool {
    models.contains(model)
        || model
            .split_once('/')
            .is_some_and(|(provider, _)| models.contains(&format!("{provider}/*")))
}

/// Why a turn may not start on the budget: `used` of `budget` tokens today,
/// with `running` more promised to replies still streaming.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{who} has used {used} of {budget} tokens today{} (the household's policy sets the daily budget); \
     it renews at midnight UTC",
    running_note(*.running)
)]
pub struct OverBudget {
    /// Whose budget.
    pub who: String,
    /// Tokens used today.
    pub used: u64,
    /// Tokens held by replies still streaming.
    pub running: u64,
    /// The daily budget.
    pub budget: u64,
}

fn running_note(running: u64) -> String {
    if running == 0 {
        String::new()
    } else {
        format!(" and replies still streaming may use the {running} left")
    }
}

/// Why a recording may not be transcribed on the budget.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{who} has had {used} of {budget} seconds of speech transcribed today and this recording is {asked} s \
     (the household's policy sets the daily budget); it renews at midnight UTC"
)]
pub struct OverAudioBudget {
    /// Whose budget.
    pub who: String,
    /// Seconds transcribed today (rounded up).
    pub used: u64,
    /// Seconds this recording holds (rounded up).
    pub asked: u64,
    /// The daily budget, in seconds.
    pub budget: u64,
}

/// Whether `who`, having had `used_ms` of audio transcribed today, may
/// have `asked_ms` more: the whole recording must fit in what is left.
pub fn within_audio_budget(
    who: &str,
    access: &Access,
    used_ms: u64,
    asked_ms: u64,
) -> Result<(), OverAudioBudget> {
    let Some(budget) = access.daily_audio_seconds else {
        return Ok(());
    };
    if used_ms.saturating_add(asked_ms) <= budget.saturating_mul(1000) {
        return Ok(());
    }
    Err(OverAudioBudget {
        who: who.to_owned(),
        used: used_ms.div_ceil(1000),
        asked: asked_ms.div_ceil(1000),
        budget,
    })
}

/// Whether `who`, having used `used` tokens today, may start another turn.
pub fn within_budget(who: &str, access: &Access, used: u64) -> Result<(), OverBudget> {
    Reservations::default()
        .reserve(who, access, used, 1)
        .map(drop)
}

/// Tokens promised to replies still streaming, per account: a turn
/// reserves what it may use (its prompt and the most it may generate)
/// before it starts, and gives it back once what it used is counted. So
/// requests arriving together cannot all pass a check that only counts
/// what is finished.
#[derive(Debug, Default)]
pub struct Reservations {
    held: BTreeMap<String, u64>,
}

impl Reservations {
    /// Reserves up to `wanted` tokens of `who`'s budget, `used` of it spent
    /// today: refused when what is spent and promised already reaches the
    /// budget; otherwise what was reserved (0 without a budget).
    pub fn reserve(
        &mut self,
        who: &str,
        access: &Access,
        used: u64,
        wanted: u64,
    ) -> Result<u64, OverBudget> {
        let Some(budget) = access.daily_tokens else {
            return Ok(0);
        };
        let running = self.held.get(who).copied().unwrap_or(0);
        let left = budget.saturating_sub(used.saturating_add(running));
        if left == 0 {
            return Err(OverBudget {
                who: who.to_owned(),
                used,
                running: budget.saturating_sub(used).min(running),
                budget,
            });
        }
        let reserved = wanted.clamp(1, left);
        *self.held.entry(who.to_owned()).or_default() += reserved;
        Ok(reserved)
    }

    /// Gives back `tokens` reserved for `who`.
    pub fn release(&mut self, who: &str, tokens: u64) {
        if let Some(held) = self.held.get_mut(who) {
            *held = held.saturating_sub(tokens);
            if *held == 0 {
                self.held.remove(who);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn access(grants: Value) -> Access {
        Access::of(&BTreeMap::from([(AI_CAPABILITY.to_owned(), grants)]))
    }

    #[test]
    fn speech_is_a_model_to_grant_with_its_own_daily_seconds() {
        let ada = access(
            json!([{"models": ["assistant", "speech/*"], "dailyAudioSeconds": 60},
                                {"dailyAudioSeconds": 90}]),
        );
        assert!(ada.permits(&Target::Model("speech/whisper-base".into())));
        assert_eq!(ada.daily_audio_seconds, Some(90));
        assert_eq!(within_audio_budget("ada", &ada, 80_000, 10_000), Ok(()));
        let over = within_audio_budget("ada", &ada, 80_000, 10_500).unwrap_err();
        assert_eq!((over.used, over.asked, over.budget), (80, 11, 90));
        assert!(over.to_string().contains("80 of 90 seconds"), "{over}");
        let ben = access(json!({"models": ["assistant"]}));
        assert!(!ben.permits(&Target::Model("speech/whisper-base".into())));
        assert_eq!(within_audio_budget("ben", &ben, u64::MAX, 1), Ok(()));
        // A misspelt budget gives nothing, never everything.
        let typo = access(json!({"dailyAudioSeconds": "lots"}));
        assert!(within_audio_budget("c", &typo, 0, 1).is_err());
    }

    #[test]
    fn without_a_grant_everything_is_open_and_unbudgeted() {
        let open = Access::of(&BTreeMap::new());
        assert!(open.permits(&Target::Agent("main".into())));
        assert!(open.permits(&Target::Model("local/tiny".into())));
        assert_eq!(open.daily_tokens, None);
        assert!(!open.may_act_for("ada"), "naming people needs a grant");
    }

    #[test]
    fn grants_add_up_models_budgets_and_members() {
        let kids = access(json!([
            {"models": ["assistant"], "dailyTokens": 1000},
            {"models": ["local/tiny"], "dailyTokens": 5000},
        ]));
        assert!(kids.permits(&Target::Agent("main".into())));
        assert!(kids.permits(&Target::Model("local/tiny".into())));
        assert!(!kids.permits(&Target::Model("local/big".into())));
        assert_eq!(kids.daily_tokens, Some(5000));
        assert_eq!(kids.allowed(), "assistant, local/tiny");

        let one_agent = access(json!({"models": ["openclaw/helper"]}));
        assert!(one_agent.permits(&Target::Agent("helper".into())));
        assert!(!one_agent.permits(&Target::Agent("main".into())));

        let all = access(json!([{"models": ["*"]}, {"actFor": ["ada", "ben"]}]));
        assert!(all.permits(&Target::Model("any/thing".into())));
        assert!(all.may_act_for("ben") && !all.may_act_for("cy"));

        let none = access(json!([{"models": []}]));
        assert!(!none.permits(&Target::Agent("main".into())));
        assert_eq!(none.allowed(), "no model");
    }

    #[test]
    fn fallbacks_are_only_models_the_caller_may_use() {
        let local = access(json!({"models": ["assistant", "local/tiny"]}));
        let assistant = Target::Agent("main".into());
        assert!(local.may_answer_with(&assistant, "local/tiny"));
        assert!(!local.may_answer_with(&assistant, "enclave/big"));
        let one = access(json!({"models": ["local/tiny"]}));
        let tiny = Target::Model("local/tiny".into());
        assert!(one.may_answer_with(&tiny, "local/tiny"));
        assert!(!one.may_answer_with(&tiny, "local/other"));
        let only_assistant = access(json!({"models": ["assistant"]}));
        assert!(only_assistant.may_answer_with(&assistant, "enclave/big"));
        assert!(Access::default().may_answer_with(&tiny, "anything/else"));
    }

    #[test]
    fn a_model_server_is_granted_whole_by_its_name_and_a_star() {
        let gamer = access(json!({"models": ["assistant", "gaming-pc/*"]}));
        assert!(gamer.permits(&Target::Model("gaming-pc/qwen3:8b".into())));
        assert!(!gamer.permits(&Target::Model("mac/qwen3:8b".into())));
        assert!(
            !gamer.permits(&Target::Model("models/qwen3:8b".into())),
            "the pool is any server: granted only as models/*"
        );
        let assistant = Target::Agent("main".into());
        assert!(gamer.may_answer_with(&assistant, "gaming-pc/qwen3:8b"));
        assert!(!gamer.may_answer_with(&assistant, "mac/qwen3:8b"));
        assert!(!gamer.permits(&Target::Model("gaming-pc*/x".into())));
    }

    #[test]
    fn malformed_grants_give_nothing_they_do_not_say() {
        let odd =
            access(json!([7, "x", {"models": "assistant", "dailyTokens": -1, "actFor": "ada"}]));
        assert!(!odd.permits(&Target::Agent("main".into())));
        assert_eq!(odd.daily_tokens, Some(0));
        assert!(!odd.may_act_for("ada"));
    }

    #[test]
    fn a_spent_budget_refuses_with_the_numbers() {
        let budgeted = access(json!({"dailyTokens": 100}));
        assert!(within_budget("ada", &budgeted, 99).is_ok());
        let refused = within_budget("ada", &budgeted, 100).unwrap_err();
        assert_eq!(refused.used, 100);
        assert!(
            refused
                .to_string()
                .contains("ada has used 100 of 100 tokens today")
        );
        assert!(within_budget("ada", &Access::default(), u64::MAX).is_ok());
    }

    #[test]
    fn replies_running_hold_their_tokens_until_counted() {
        let budgeted = access(json!({"dailyTokens": 100}));
        let mut running = Reservations::default();
        // Thirty requests at once: the first promises all that is left.
        assert_eq!(running.reserve("ada", &budgeted, 0, 300), Ok(100));
        let refused = running.reserve("ada", &budgeted, 0, 300).unwrap_err();
        assert_eq!((refused.used, refused.running), (0, 100));
        assert!(
            refused.to_string().contains("replies still streaming"),
            "{refused}"
        );
        assert!(
            running.reserve("ben", &budgeted, 0, 10).is_ok(),
            "ben's own"
        );
        // Counted at 40, given back: 60 are left for the next.
        running.release("ada", 100);
        assert_eq!(running.reserve("ada", &budgeted, 40, 300), Ok(60));
        running.release("ada", 60);
        assert_eq!(running.reserve("ada", &budgeted, 40, 5), Ok(5));
        // No budget: nothing is held.
        assert_eq!(running.reserve("cy", &Access::default(), 10, 300), Ok(0));
    }
}
