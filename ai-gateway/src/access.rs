//! What the access policy lets a caller do with the gateway: the models
//! (and the assistant) it may ask, its daily token budget, and — for a
//! front end serving many people from one device — the members it may
//! name. Read from the `hearth.example/cap/ai` application capability the
//! policy's `grants` give the caller's device at this hub. Pure.
//!
//! A grant's value is an object:
//! `{"models": ["assistant", "local/tiny"], "dailyTokens": 20000,
//! "actFor": ["ada", "ben"]}`, every key optional. Grants add up, as in
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
            Target::Model(name) => models.contains(name),
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

/// Why a turn may not start on the budget: `used` of `budget` tokens today.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{who} has used {used} of {budget} tokens today (the household's policy sets the daily budget); \
     it renews at midnight UTC"
)]
pub struct OverBudget {
    /// Whose budget.
    pub who: String,
    /// Tokens used today.
    pub used: u64,
    /// The daily budget.
    pub budget: u64,
}

/// Whether `who`, having used `used` tokens today, may start another turn.
pub fn within_budget(who: &str, access: &Access, used: u64) -> Result<(), OverBudget> {
    match access.daily_tokens {
        Some(budget) if used >= budget => Err(OverBudget {
            who: who.to_owned(),
            used,
            budget,
        }),
        _ => Ok(()),
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
}
