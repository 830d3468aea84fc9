//! Sign-in through the household's identity provider (OpenID Connect), for
//! Tailscale clients that join without a pre-auth key: the login URL's page
//! names the device and offers to sign in; the person signs in at the
//! provider, which sends the browser back to `/oidc/callback`; the
//! coordinator checks the ID token ([`crate::oidc`]) and the device joins as
//! the person's user, approved. The groups the provider says the person is
//! in fill the policy's groups of the same name.
//!
//! This module is the pure part: the settings file, what a provider's
//! claims make of a person ([`identity`]), which user an account is
//! ([`account_for`]), and the sign-ins under way ([`Pending`]).

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use hearth_runtime::clock::unix_seconds as unix_now;

/// The path the provider sends the browser back to.
pub const CALLBACK_PATH: &str = "/oidc/callback";
/// The cookie that ties a sign-in to the browser that started it.
pub const COOKIE: &str = "hearth_sign_in";
/// How long a person has to sign in at the provider (seconds).
pub const SIGN_IN_WAIT: i64 = 10 * 60;
/// Sign-ins under way at once; more are told to try later.
pub const MAX_PENDING: usize = 256;
/// Groups kept from one sign-in; the rest are ignored.
pub const MAX_GROUPS: usize = 256;

/// `--oidc-config`: which provider, which client, and who may sign in.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SignInConfig {
    /// The provider's issuer URL (HTTPS); its discovery document is at
    /// `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// This coordinator's client id at the provider.
    pub client_id: String,
    /// A file (readable by its owner only) holding the client secret.
    pub client_secret_file: PathBuf,
    /// Scopes asked for besides `openid`; `["profile", "email"]` by default
    /// (add `groups` for providers that need it asked for).
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// The claim that names the person's user; `preferred_username` by
    /// default (`email` is another common choice).
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    /// The claim listing the person's groups; without it, groups from the
    /// provider are not used.
    #[serde(default)]
    pub groups_claim: Option<String>,
    /// Only people in one of these provider groups may sign in (empty:
    /// anyone the provider signs in).
    #[serde(default)]
    pub allowed_groups: Vec<String>,
    /// Only these users may sign in (empty: anyone).
    #[serde(default)]
    pub allowed_users: Vec<String>,
    /// Certificates (PEM) to trust for the provider, besides the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn default_scopes() -> Vec<String> {
    vec!["profile".into(), "email".into()]
}

fn default_user_claim() -> String {
    "preferred_username".into()
}

/// Parses and checks `--oidc-config` (JSON).
pub fn parse_config(text: &str) -> Result<SignInConfig, String> {
    let config: SignInConfig = serde_json::from_str(text).map_err(|error| error.to_string())?;
    if !config.issuer.starts_with("https://") {
        return Err(format!(
            "issuer: {:?} is not an https:// URL (ID tokens are checked against keys fetched from it)",
            config.issuer
        ));
    }
    if config.client_id.is_empty() {
        return Err("client_id: empty".into());
    }
    if config.user_claim.is_empty() {
        return Err("user_claim: empty".into());
    }
    if config.groups_claim.as_deref() == Some("") {
        return Err("groups_claim: empty (leave it out to not use groups)".into());
    }
    if !config.allowed_groups.is_empty() && config.groups_claim.is_none() {
        return Err("allowed_groups needs groups_claim (which claim lists the groups)".into());
    }
    for scope in &config.scopes {
        if scope.is_empty() || scope.contains(char::is_whitespace) {
            return Err(format!("scopes: {scope:?} is not a scope"));
        }
    }
    Ok(config)
}

/// Who signed in, as this coordinator keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The provider account: issuer and subject, space-separated.
    pub subject: String,
    /// The user name the provider gives the person.
    pub user: String,
    /// The provider's groups the person is in (when `groups_claim` is set).
    pub groups: BTreeSet<String>,
}

/// Why a person who signed in may not join.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The provider's answer lacks something needed.
    #[error("the identity provider did not say {0}")]
    Missing(String),
    /// The user name is not one Hearth can use.
    #[error("{0:?} cannot be a user name here (letters, digits and . _ @ + -, at most 64)")]
    BadName(String),
    /// The configuration's allow lists leave this person out.
    #[error("{0} is not allowed to add devices to this network")]
    NotAllowed(String),
    /// The user name is already another provider account's.
    #[error("the user {0} belongs to another account of the identity provider")]
    TakenName(String),
}

/// What the verified `claims` (the ID token's, then the user-info
/// endpoint's for what the token lacks) make of the person.
pub fn identity(config: &SignInConfig, claims: &Map<String, Value>) -> Result<Identity, Refusal> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let issuer = text("iss").ok_or_else(|| Refusal::Missing("its issuer (iss)".into()))?;
    let subject = text("sub")
        .filter(|sub| !sub.is_empty())
        .ok_or_else(|| Refusal::Missing("who signed in (sub)".into()))?;
    let user = text(&config.user_claim)
        .ok_or_else(|| Refusal::Missing(format!("the user name ({})", config.user_claim)))?;
    if crate::names::check_user_name(user).is_err() {
        return Err(Refusal::BadName(user.chars().take(80).collect()));
    }
    // An address the provider has not checked names no one: anyone could
    // have typed it (and so claimed the user of that name).
    if config.user_claim == "email" && claims.get("email_verified") != Some(&Value::Bool(true)) {
        return Err(Refusal::Missing(
            "that the email address was verified (email_verified)".into(),
        ));
    }
    let groups: BTreeSet<String> = match config.groups_claim.as_deref().map(|name| claims.get(name))
    {
        None | Some(None) => BTreeSet::new(),
        Some(Some(Value::String(group))) => BTreeSet::from([group.clone()]),
        Some(Some(Value::Array(groups))) => groups
            .iter()
            .filter_map(Value::as_str)
            .filter(|group| usable_group(group))
            .take(MAX_GROUPS)
            .map(str::to_owned)
            .collect(),
        Some(Some(_)) => BTreeSet::new(),
    };
    if !config.allowed_users.is_empty() && !config.allowed_users.iter().any(|name| name == user) {
        return Err(Refusal::NotAllowed(user.to_owned()));
    }
    if !config.allowed_groups.is_empty()
        && !config
            .allowed_groups
            .iter()
            .any(|group| groups.contains(group))
    {
        return Err(Refusal::NotAllowed(user.to_owned()));
    }
    Ok(Identity {
        subject: format!("{issuer} {subject}"),
        user: user.to_owned(),
        groups,
    })
}

/// Whether a provider's group name can fill a policy group: not empty, not
/// huge, no whitespace or control characters.
fn usable_group(group: &str) -> bool {
    !group.is_empty()
        && group.len() <= 255
        && !group.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Which user a provider account signs in as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Account {
    /// The user (by id) this account signed in as before.
    Linked(i64),
    /// An existing user no account has claimed yet, named as the provider
    /// names the person: from now on this account's.
    Claim(i64),
    /// A new user, named as the provider names the person.
    Create,
}

/// The user `identity` signs in as: the one its account is linked to (a
/// later change of name at the provider does not move it); else the user
/// of its name, unless another account has that user.
/// `linked_to_subject` is the user linked to this account, `named` the
/// user with the provider's name for the person and whether an account
/// holds it.
pub fn account_for(
    identity: &Identity,
    linked_to_subject: Option<i64>,
    named: Option<(i64, bool)>,
) -> Result<Account, Refusal> {
    match (linked_to_subject, named) {
        (Some(user), _) => Ok(Account::Linked(user)),
        (None, Some((_, true))) => Err(Refusal::TakenName(identity.user.clone())),
        (None, Some((user, false))) => Ok(Account::Claim(user)),
        (None, None) => Ok(Account::Create),
    }
}

/// A sign-in under way: what the callback needs to finish it.
pub struct PendingSignIn<Client> {
    /// The login code of the device waiting for it.
    pub code: String,
    /// The provider's client as discovered when it started.
    pub client: Client,
    /// The nonce the ID token must carry.
    pub nonce: openidconnect::Nonce,
    /// The PKCE verifier for the code exchange.
    pub verifier: openidconnect::PkceCodeVerifier,
    /// When it started (Unix seconds).
    pub since: i64,
}

/// Sign-ins under way, by their `state` parameter.
pub struct Pending<Client> {
    by_state: HashMap<String, PendingSignIn<Client>>,
}

impl<Client> Default for Pending<Client> {
    fn default() -> Self {
        Pending {
            by_state: HashMap::new(),
        }
    }
}

impl<Client> Pending<Client> {
    /// Adds a sign-in started at `now`; past [`MAX_PENDING`] (after the
    /// expired are forgotten) it is refused.
    pub fn add(&mut self, state: String, sign_in: PendingSignIn<Client>, now: i64) -> bool {
        self.by_state
            .retain(|_, pending| now - pending.since < SIGN_IN_WAIT);
        if self.by_state.len() >= MAX_PENDING {
            return false;
        }
        self.by_state.insert(state, sign_in);
        true
    }

    /// Takes the sign-in started with `state`, once, if it has not expired.
    pub fn take(&mut self, state: &str, now: i64) -> Option<PendingSignIn<Client>> {
        let pending = self.by_state.remove(state)?;
        (now - pending.since < SIGN_IN_WAIT).then_some(pending)
    }
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then_some(value)
    })
}

/// A sign-in begun: where the browser goes, and the state its cookie keeps.
pub struct Redirect {
    /// The provider's authorization URL.
    pub url: String,
    /// The sign-in's state (also the cookie's value).
    pub state: String,
}

/// A sign-in finished: who signed in and the device that joined.
pub struct Joined {
    /// The user the device joined as.
    pub user: String,
    /// The device.
    pub node: crate::admission::NodeView,
}

impl crate::coordinator::Coordinator {
    fn sign_ins(
        &self,
    ) -> std::sync::MutexGuard<'_, Pending<std::sync::Arc<crate::oidc::ProviderClient>>> {
        hearth_runtime::lock(&self.sign_ins)
    }

    /// Begins signing in for the device waiting with login `code`.
    pub async fn begin_sign_in(&self, code: &str) -> Result<Redirect> {
        let provider = self
            .settings
            .sign_in
            .as_ref()
            .ok_or_else(|| Error::NotFound("an identity provider to sign in with".into()))?;
        let now = unix_now();
        if self.logins().get(code, now).is_none() {
            return Err(Error::NotFound(
                "a device waiting with this link (it may have expired); start again on the device"
                    .into(),
            ));
        }
        let redirect = format!("{}{CALLBACK_PATH}", self.settings.public_url);
        let started = provider.start(&redirect).await.map_err(|error| {
            tracing::warn!(%error, "cannot begin a sign-in");
            Error::SignIn(error)
        })?;
        let pending = PendingSignIn {
            code: code.to_owned(),
            client: started.client,
            nonce: started.nonce,
            verifier: started.verifier,
            since: now,
        };
        if !self.sign_ins().add(started.state.clone(), pending, now) {
            return Err(Error::TooManyPending(
                "too many sign-ins are under way; try again in a few minutes".into(),
            ));
        }
        Ok(Redirect {
            url: started.url,
            state: started.state,
        })
    }

    /// Finishes the sign-in started with `state` in this browser (`cookie`
    /// is its sign-in cookie), with the provider's authorization `code`:
    /// the waiting device joins as the person's user, approved.
    pub async fn finish_sign_in(
        &self,
        state: &str,
        cookie: Option<&str>,
        code: String,
    ) -> Result<Joined> {
        let provider = self
            .settings
            .sign_in
            .as_ref()
            .ok_or_else(|| Error::NotFound("an identity provider to sign in with".into()))?;
        let same_browser = cookie.is_some_and(|cookie| {
            subtle::ConstantTimeEq::ct_eq(cookie.as_bytes(), state.as_bytes()).into()
        });
        if !same_browser {
            return Err(Error::SignIn(
                "this sign-in was not started in this browser; open the device's login link again"
                    .into(),
            ));
        }
        let now = unix_now();
        let pending = self.sign_ins().take(state, now).ok_or_else(|| {
            Error::NotFound(
                "a sign-in under way with this link (it lasts 10 minutes, and only once)".into(),
            )
        })?;
        let claims = provider
            .finish(&pending.client, code, &pending.nonce, pending.verifier)
            .await
            .map_err(|error| {
                tracing::warn!(%error, "a sign-in failed at the identity provider");
                Error::SignIn(error)
            })?;
        let person = identity(provider.config(), &claims).map_err(|refusal| {
            tracing::warn!(%refusal, "a sign-in was refused");
            Error::SignIn(refusal.to_string())
        })?;
        let turn = self.turn().await;
        if self.logins().get(&pending.code, unix_now()).is_none() {
            return Err(Error::NotFound(
                "the device waiting for this sign-in (it may have expired); start again on the device"
                    .into(),
            ));
        }
        let users = self.db.list_users().await?;
        let identities = self.db.list_provider_identities().await?;
        let linked = identities
            .iter()
            .find(|row| row.subject == person.subject)
            .map(|row| row.user_id);
        let named = users
            .iter()
            .find(|user| user.name == person.user)
            .map(|user| (user.id, identities.iter().any(|row| row.user_id == user.id)));
        let user = match account_for(&person, linked, named)
            .map_err(|refusal| Error::SignIn(refusal.to_string()))?
        {
            Account::Linked(id) | Account::Claim(id) => users
                .into_iter()
                .find(|user| user.id == id)
                .ok_or_else(|| Error::NotFound(format!("user {id}")))?,
            Account::Create => {
                let user = self.db.insert_user(&person.user, now).await?;
                tracing::info!(user = %user.name, "a user was made at their first sign-in");
                user
            }
        };
        let groups = serde_json::to_string(&person.groups).unwrap_or_else(|_| "[]".into());
        self.db
            .record_sign_in(user.id, &person.subject, &groups, now)
            .await?;
        self.refresh_provider_groups(&turn).await?;
        let node = self.register_login(&turn, &pending.code, &user).await?;
        tracing::info!(user = %user.name, node = node.id, "a device joined through sign-in");
        Ok(Joined {
            user: user.name,
            node,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> SignInConfig {
        parse_config(
            r#"{"issuer": "https://id.home.example", "client_id": "hearth",
                "client_secret_file": "/etc/hearth/oidc-secret", "groups_claim": "groups"}"#,
        )
        .unwrap()
    }

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn a_config_says_what_is_wrong_with_it() {
        let config = config();
        assert_eq!(config.user_claim, "preferred_username");
        assert_eq!(config.scopes, ["profile", "email"]);
        let refused = |text: &str| parse_config(text).unwrap_err();
        assert!(
            refused(r#"{"issuer": "http://id", "client_id": "h", "client_secret_file": "/s"}"#)
                .contains("https")
        );
        assert!(refused(r#"{"issuer": "https://id", "client_id": "h", "client_secret_file": "/s", "allowed_groups": ["a"]}"#)
            .contains("groups_claim"));
        assert!(refused(r#"{"issuer": "https://id", "client_id": "h", "client_secret_file": "/s", "secret": "x"}"#)
            .contains("unknown field"));
        assert!(refused(r#"{"issuer": "https://id", "client_id": "h", "client_secret_file": "/s", "scopes": ["a b"]}"#)
            .contains("scopes"));
    }

    #[test]
    fn claims_make_a_user_in_groups() {
        let person = identity(
            &config(),
            &claims(json!({"iss": "https://id.home.example", "sub": "42",
                "preferred_username": "ada", "groups": ["family", "", "x y", 7, "admins"]})),
        )
        .unwrap();
        assert_eq!(person.subject, "https://id.home.example 42");
        assert_eq!(person.user, "ada");
        assert_eq!(
            person.groups,
            BTreeSet::from(["admins".to_owned(), "family".to_owned()])
        );
        let one = identity(
            &config(),
            &claims(json!({"iss": "i", "sub": "1", "preferred_username": "ben", "groups": "kids"})),
        )
        .unwrap();
        assert_eq!(one.groups, BTreeSet::from(["kids".to_owned()]));
    }

    #[test]
    fn claims_without_a_usable_name_or_subject_are_refused() {
        let config = config();
        let refusal = |value: Value| identity(&config, &claims(value)).unwrap_err();
        assert!(matches!(
            refusal(json!({"iss": "i", "preferred_username": "ada"})),
            Refusal::Missing(_)
        ));
        assert!(matches!(
            refusal(json!({"iss": "i", "sub": "1"})),
            Refusal::Missing(_)
        ));
        assert!(matches!(
            refusal(json!({"iss": "i", "sub": "1", "preferred_username": "a b"})),
            Refusal::BadName(_)
        ));
    }

    #[test]
    fn an_email_names_a_user_only_once_the_provider_verified_it() {
        let mut config = config();
        config.user_claim = "email".into();
        let person = |verified: Value| {
            identity(
                &config,
                &claims(json!({"iss": "i", "sub": "1", "email": "ada@home.example",
                    "email_verified": verified})),
            )
        };
        assert_eq!(person(json!(true)).unwrap().user, "ada@home.example");
        assert!(matches!(person(json!(false)), Err(Refusal::Missing(_))));
        assert!(matches!(person(json!("true")), Err(Refusal::Missing(_))));
        assert!(matches!(person(Value::Null), Err(Refusal::Missing(_))));
    }

    #[test]
    fn allow_lists_keep_others_out() {
        let mut config = config();
        config.allowed_groups = vec!["family".into()];
        let person = |groups: Value| {
            identity(
                &config,
                &claims(
                    json!({"iss": "i", "sub": "1", "preferred_username": "ada", "groups": groups}),
                ),
            )
        };
        assert!(person(json!(["family"])).is_ok());
        assert_eq!(
            person(json!(["guests"])),
            Err(Refusal::NotAllowed("ada".into()))
        );
        config.allowed_groups.clear();
        config.allowed_users = vec!["ben".into()];
        let ada = identity(
            &config,
            &claims(json!({"iss": "i", "sub": "1", "preferred_username": "ada"})),
        );
        assert_eq!(ada, Err(Refusal::NotAllowed("ada".into())));
    }

    #[test]
    fn an_account_keeps_its_user_and_cannot_take_anothers() {
        let person = Identity {
            subject: "i 1".into(),
            user: "ada".into(),
            groups: BTreeSet::new(),
        };
        assert_eq!(
            account_for(&person, Some(3), Some((9, true))),
            Ok(Account::Linked(3))
        );
        assert_eq!(
            account_for(&person, None, Some((9, true))),
            Err(Refusal::TakenName("ada".into()))
        );
        assert_eq!(
            account_for(&person, None, Some((9, false))),
            Ok(Account::Claim(9))
        );
        assert_eq!(account_for(&person, None, None), Ok(Account::Create));
    }

    #[test]
    fn a_sign_in_is_taken_once_and_expires() {
        let sign_in = |since| PendingSignIn {
            code: "c".into(),
            client: (),
            nonce: openidconnect::Nonce::new("n".into()),
            verifier: openidconnect::PkceCodeVerifier::new("v".into()),
            since,
        };
        let mut pending = Pending::default();
        assert!(pending.add("s1".into(), sign_in(0), 0));
        assert!(pending.take("s1", 1).is_some());
        assert!(pending.take("s1", 1).is_none(), "only once");
        assert!(pending.add("s2".into(), sign_in(0), 0));
        assert!(pending.take("s2", SIGN_IN_WAIT).is_none(), "expired");
        for index in 0..MAX_PENDING {
            assert!(pending.add(format!("{index}"), sign_in(100), 100));
        }
        assert!(!pending.add("full".into(), sign_in(100), 100));
        assert!(pending.add(
            "later".into(),
            sign_in(100 + SIGN_IN_WAIT),
            100 + SIGN_IN_WAIT
        ));
    }

    #[test]
    fn cookies_are_found_by_name() {
        assert_eq!(cookie("a=1; hearth_sign_in=xyz; b=2", COOKIE), Some("xyz"));
        assert_eq!(cookie("hearth_sign_in_x=1", COOKIE), None);
        assert_eq!(cookie("", COOKIE), None);
    }
}
