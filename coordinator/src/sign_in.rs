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

use hearth_files::config::ConfigError;

use crate::error::Result;

/// The path the provider sends the browser back to.
pub const CALLBACK_PATH: &str = "/oidc/callback";
/// The cookie that ties a sign-in to the browser that started it.
pub const COOKIE: &str = "hearth_sign_in";
/// How long a person has to sign in at the provider (seconds).
pub const SIGN_IN_WAIT: i64 = 10 * 60;
/// Sign-ins under way at once; more are told to try later.
pub const MAX_PENDING: usize = 256;
/// Sign-ins under way at once for one device's login link (a person who
/// starts again a few times still gets through).
pub const MAX_PENDING_PER_CODE: usize = 4;
/// Sign-ins under way at once begun from one address: one address cannot
/// fill every slot and keep the household from signing in.
pub const MAX_PENDING_PER_SOURCE: usize = 16;
/// The cookie that ties the login page to the form sent from it.
pub const PAGE_COOKIE: &str = "hearth_login";
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
pub fn parse_config(text: &str) -> Result<SignInConfig, ConfigError> {
    let config: SignInConfig = serde_json::from_str(text)?;
    if !config.issuer.starts_with("https://") {
        return Err(ConfigError::at(
            "issuer",
            format!(
                "{:?} is not an https:// URL (ID tokens are checked against keys fetched from it)",
                config.issuer
            ),
        ));
    }
    if config.client_id.is_empty() {
        return Err(ConfigError::at("client_id", "empty"));
    }
    if config.user_claim.is_empty() {
        return Err(ConfigError::at("user_claim", "empty"));
    }
    if config.groups_claim.as_deref() == Some("") {
        return Err(ConfigError::at(
            "groups_claim",
            "empty (leave it out to not use groups)",
        ));
    }
    if !config.allowed_groups.is_empty() && config.groups_claim.is_none() {
        return Err(ConfigError::Unusable(
            "allowed_groups needs groups_claim (which claim lists the groups)".into(),
        ));
    }
    for scope in &config.scopes {
        if scope.is_empty() || scope.contains(char::is_whitespace) {
            return Err(ConfigError::at(
                "scopes",
                format!("{scope:?} is not a scope"),
            ));
        }
    }
    Ok(config)
}

/// How far ahead of this machine's clock a provider's may run.
pub const CLOCK_SKEW: i64 = 5 * 60;

/// Whether an ID token issued at `issued` (Unix seconds) can have been
/// issued by `now`: a token from the future was made ahead of its use (by
/// a provider whose clock is wrong or whose signing key someone holds),
/// and would stay valid past when a fresh one would have expired.
pub fn issued_in_time(issued: i64, now: i64) -> Result<(), IssuedAhead> {
    if issued > now.saturating_add(CLOCK_SKEW) {
        return Err(IssuedAhead(issued.saturating_sub(now)));
    }
    Ok(())
}

/// An ID token issued this many seconds ahead of this machine's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("it was issued {0} s in the future (the provider's clock, or this machine's, is wrong)")]
pub struct IssuedAhead(pub i64);

/// Who signed in, as this coordinator keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The provider account: issuer and subject, space-separated.
    pub subject: String,
    /// The user name the provider gives the person.
    pub user: String,
    /// Their email address, when the provider says it verified it.
    pub email: Option<String>,
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
    /// A user of this name exists, and nothing links it to this account.
    #[error(
        "the user {0} exists already and is not linked to this account; an admin links them \
         (hearth-coordinator users link {0} --email ADDRESS)"
    )]
    NotLinked(String),
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
        return Err(Refusal::BadName(crate::names::visible(
            &user.chars().take(80).collect::<String>(),
        )));
    }
    let email = text("email")
        .filter(|_| claims.get("email_verified") == Some(&Value::Bool(true)))
        .map(str::to_owned);
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
        email,
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
    /// The user (by id) this account is linked to: by an earlier sign-in
    /// or by an admin.
    Linked(i64),
    /// An existing user no account has yet, whose email address (recorded
    /// by an admin) the provider verified for this person: from now on
    /// this account's.
    Claim(i64),
    /// A new user, named as the provider names the person.
    Create,
}

/// A user as sign-in weighs it: id, name, the email address an admin
/// recorded, and whether a provider account is linked to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownUser<'a> {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: &'a str,
    /// The email address an admin recorded.
    pub email: Option<&'a str>,
    /// Whether a provider account is linked to it.
    pub linked: bool,
}

/// The user `identity` signs in as. The account's link decides first (a
/// later change of name at the provider does not move it). Else an
/// unlinked user whose recorded email address the provider verified for
/// this person is claimed. A name alone never claims a user: the provider
/// may let anyone choose `alice`, so a user of that name (in any letter
/// case) that nothing links to the account refuses the sign-in. Only a
/// name no user has makes a new user.
/// `linked_to_subject` is the user linked to this account.
pub fn account_for(
    identity: &Identity,
    linked_to_subject: Option<i64>,
    users: &[KnownUser<'_>],
) -> Result<Account, Refusal> {
    if let Some(user) = linked_to_subject {
        return Ok(Account::Linked(user));
    }
    if let Some(email) = &identity.email
        && let Some(user) = users.iter().find(|user| {
            user.email
                .is_some_and(|recorded| recorded.eq_ignore_ascii_case(email))
        })
    {
        return if user.linked {
            Err(Refusal::TakenName(user.name.to_owned()))
        } else {
            Ok(Account::Claim(user.id))
        };
    }
    match users
        .iter()
        .find(|user| crate::names::same_user_name(user.name, &identity.user))
    {
        Some(user) if user.linked => Err(Refusal::TakenName(user.name.to_owned())),
        Some(user) => Err(Refusal::NotLinked(user.name.to_owned())),
        None => Ok(Account::Create),
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
    /// The address it was begun from.
    pub source: Option<std::net::IpAddr>,
}

/// Why a sign-in could not be begun now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Crowded {
    /// This device's link has begun too many.
    #[error(
        "this link was opened too many times; wait a few minutes, or start again on the device"
    )]
    Code,
    /// This address has begun too many.
    #[error("too many sign-ins from this address are under way; try again in a few minutes")]
    Source,
    /// Every slot is taken.
    #[error("too many sign-ins are under way; try again in a few minutes")]
    All,
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
    /// Adds a sign-in started at `now`, unless (after the expired are
    /// forgotten) its link has [`MAX_PENDING_PER_CODE`] under way, its
    /// address [`MAX_PENDING_PER_SOURCE`], or everyone [`MAX_PENDING`].
    pub fn add(
        &mut self,
        state: String,
        sign_in: PendingSignIn<Client>,
        now: i64,
    ) -> Result<(), Crowded> {
        self.by_state
            .retain(|_, pending| now - pending.since < SIGN_IN_WAIT);
        let pending = self.by_state.values();
        let (mut same_code, mut same_source) = (0, 0);
        for other in pending {
            same_code += usize::from(other.code == sign_in.code);
            same_source += usize::from(sign_in.source.is_some() && other.source == sign_in.source);
        }
        if same_code >= MAX_PENDING_PER_CODE {
            return Err(Crowded::Code);
        }
        if same_source >= MAX_PENDING_PER_SOURCE {
            return Err(Crowded::Source);
        }
        if self.by_state.len() >= MAX_PENDING {
            return Err(Crowded::All);
        }
        self.by_state.insert(state, sign_in);
        Ok(())
    }

    /// Takes the sign-in started with `state`, once, if it has not expired.
    pub fn take(&mut self, state: &str, now: i64) -> Option<PendingSignIn<Client>> {
        let pending = self.by_state.remove(state)?;
        (now - pending.since < SIGN_IN_WAIT).then_some(pending)
    }
}

/// Why a form sent to begin a sign-in is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotFromThePage {
    /// A page of another site sent it (or the browser did not say which).
    #[error("this sign-in was not asked for from the device's page; open the device's login link")]
    OtherSite,
    /// The form's token is not the one this browser's page was given.
    #[error(
        "this sign-in form is not the one this browser was shown; open the device's login link again"
    )]
    Token,
}

/// Whether a request to begin a sign-in was sent by the device's page in
/// this browser: the browser says it comes from this site (`Origin`
/// naming the `Host` asked, or `Sec-Fetch-Site: same-origin`), and the
/// form's `token` is the one the page's cookie holds (a page elsewhere can
/// neither read nor set it). Either alone stops a page of another site
/// from signing a member's browser in for a device that is not theirs.
pub fn form_from_the_page(
    origin: Option<&str>,
    fetch_site: Option<&str>,
    host: Option<&str>,
    cookie: Option<&str>,
    token: Option<&str>,
) -> Result<(), NotFromThePage> {
    // `Origin: null` (a sandboxed frame, a page with no referrer) names no
    // site; the browser's `Sec-Fetch-Site` still does.
    let origin = origin.filter(|origin| *origin != "null");
    let same_site = match (origin, fetch_site) {
        (Some(origin), _) => host.is_some_and(|host| same_authority(origin, host)),
        (None, Some(site)) => site == "same-origin",
        (None, None) => false,
    };
    if !same_site {
        return Err(NotFromThePage::OtherSite);
    }
    match (cookie, token) {
        (Some(cookie), Some(token))
            if !token.is_empty()
                && bool::from(subtle::ConstantTimeEq::ct_eq(
                    cookie.as_bytes(),
                    token.as_bytes(),
                )) =>
        {
            Ok(())
        }
        _ => Err(NotFromThePage::Token),
    }
}

/// Whether `origin` (`scheme://host[:port]`) names the `host` header
/// (`host[:port]`), default ports either written or left out.
fn same_authority(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let default = match scheme {
        "https" => ":443",
        "http" => ":80",
        _ => return false,
    };
    let bare = |text: &str| {
        text.strip_suffix(default)
            .unwrap_or(text)
            .to_ascii_lowercase()
    };
    bare(authority) == bare(host)
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
        let refused = |text: &str| parse_config(text).unwrap_err().to_string();
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

    fn user(
        id: i64,
        name: &'static str,
        email: Option<&'static str>,
        linked: bool,
    ) -> KnownUser<'static> {
        KnownUser {
            id,
            name,
            email,
            linked,
        }
    }

    #[test]
    fn an_account_keeps_its_user_and_cannot_take_anothers() {
        let person = Identity {
            subject: "i 1".into(),
            user: "ada".into(),
            email: None,
            groups: BTreeSet::new(),
        };
        let linked_ada = [user(9, "ada", None, true)];
        assert_eq!(
            account_for(&person, Some(3), &linked_ada),
            Ok(Account::Linked(3))
        );
        assert_eq!(
            account_for(&person, None, &linked_ada),
            Err(Refusal::TakenName("ada".into()))
        );
        assert_eq!(account_for(&person, None, &[]), Ok(Account::Create));
        assert_eq!(
            account_for(&person, None, &[user(9, "adam", None, false)]),
            Ok(Account::Create)
        );
    }

    #[test]
    fn a_name_the_provider_gives_never_claims_an_existing_user() {
        // Anyone may call themselves alice at many providers.
        let mallory = Identity {
            subject: "i mallory".into(),
            user: "alice".into(),
            email: Some("mallory@evil.example".into()),
            groups: BTreeSet::new(),
        };
        let admin_made = [user(4, "alice", Some("alice@home.example"), false)];
        assert_eq!(
            account_for(&mallory, None, &admin_made),
            Err(Refusal::NotLinked("alice".into()))
        );
        let shouting = Identity {
            user: "ALICE".into(),
            ..mallory.clone()
        };
        assert_eq!(
            account_for(&shouting, None, &admin_made),
            Err(Refusal::NotLinked("alice".into())),
            "nor in another letter case"
        );
        // The real alice: the address the admin recorded, verified.
        let alice = Identity {
            subject: "i alice".into(),
            user: "alice.smith".into(),
            email: Some("Alice@Home.Example".into()),
            groups: BTreeSet::new(),
        };
        assert_eq!(
            account_for(&alice, None, &admin_made),
            Ok(Account::Claim(4))
        );
        let claimed = [user(4, "alice", Some("alice@home.example"), true)];
        assert_eq!(
            account_for(&alice, None, &claimed),
            Err(Refusal::TakenName("alice".into())),
            "once claimed, only its own account signs in as it"
        );
    }

    fn sign_in(code: &str, source: [u8; 4], since: i64) -> PendingSignIn<()> {
        PendingSignIn {
            code: code.into(),
            client: (),
            nonce: openidconnect::Nonce::new("n".into()),
            verifier: openidconnect::PkceCodeVerifier::new("v".into()),
            since,
            source: Some(std::net::IpAddr::from(source)),
        }
    }

    #[test]
    fn a_sign_in_is_taken_once_and_expires() {
        let mut pending = Pending::default();
        assert!(
            pending
                .add("s1".into(), sign_in("c", [10, 0, 0, 1], 0), 0)
                .is_ok()
        );
        assert!(pending.take("s1", 1).is_some());
        assert!(pending.take("s1", 1).is_none(), "only once");
        assert!(
            pending
                .add("s2".into(), sign_in("c", [10, 0, 0, 1], 0), 0)
                .is_ok()
        );
        assert!(pending.take("s2", SIGN_IN_WAIT).is_none(), "expired");
        for index in 0..MAX_PENDING {
            let source = [10, 1, (index / 256) as u8, (index % 256) as u8];
            assert!(
                pending
                    .add(
                        format!("{index}"),
                        sign_in(&format!("code{index}"), source, 100),
                        100
                    )
                    .is_ok()
            );
        }
        assert_eq!(
            pending.add("full".into(), sign_in("c", [10, 0, 0, 9], 100), 100),
            Err(Crowded::All)
        );
        assert!(
            pending
                .add(
                    "later".into(),
                    sign_in("c", [10, 0, 0, 9], 100 + SIGN_IN_WAIT),
                    100 + SIGN_IN_WAIT
                )
                .is_ok()
        );
    }

    #[test]
    fn one_link_or_one_address_cannot_take_every_slot() {
        let mut pending = Pending::default();
        let attacker = [203, 0, 113, 7];
        let mut refused = Vec::new();
        for index in 0..256 {
            if let Err(crowded) =
                pending.add(format!("a{index}"), sign_in("victims-link", attacker, 0), 0)
            {
                refused.push(crowded);
            }
        }
        assert_eq!(refused.len(), 256 - MAX_PENDING_PER_CODE);
        assert!(refused.iter().all(|crowded| *crowded == Crowded::Code));
        for index in 0..256 {
            let _ = pending.add(
                format!("b{index}"),
                sign_in(&format!("link{index}"), attacker, 0),
                0,
            );
        }
        assert_eq!(
            pending.add("c".into(), sign_in("one-more", attacker, 0), 0),
            Err(Crowded::Source)
        );
        assert!(
            pending
                .add(
                    "member".into(),
                    sign_in("members-link", [192, 168, 1, 20], 0),
                    0
                )
                .is_ok(),
            "the member still signs in"
        );
    }

    #[test]
    fn only_the_devices_page_in_this_browser_begins_a_sign_in() {
        let host = Some("hub.home.example:8443");
        let ok =
            |origin, site, cookie, token| form_from_the_page(origin, site, host, cookie, token);
        let page = Some("https://hub.home.example:8443");
        assert_eq!(ok(page, None, Some("t"), Some("t")), Ok(()));
        assert_eq!(ok(None, Some("same-origin"), Some("t"), Some("t")), Ok(()));
        assert_eq!(
            ok(
                Some("https://evil.example"),
                Some("cross-site"),
                Some("t"),
                Some("t")
            ),
            Err(NotFromThePage::OtherSite)
        );
        assert_eq!(
            ok(Some("null"), None, Some("t"), Some("t")),
            Err(NotFromThePage::OtherSite)
        );
        assert_eq!(
            ok(None, Some("cross-site"), Some("t"), Some("t")),
            Err(NotFromThePage::OtherSite)
        );
        assert_eq!(
            ok(None, None, Some("t"), Some("t")),
            Err(NotFromThePage::OtherSite)
        );
        assert_eq!(ok(page, None, None, Some("t")), Err(NotFromThePage::Token));
        assert_eq!(
            ok(page, None, Some("t"), Some("u")),
            Err(NotFromThePage::Token)
        );
        assert_eq!(
            ok(page, None, Some(""), Some("")),
            Err(NotFromThePage::Token)
        );
        assert_eq!(
            form_from_the_page(
                Some("https://hub"),
                None,
                Some("hub:443"),
                Some("t"),
                Some("t")
            ),
            Ok(())
        );
        assert_eq!(
            form_from_the_page(
                Some("http://hub"),
                None,
                Some("hub:443"),
                Some("t"),
                Some("t")
            ),
            Err(NotFromThePage::OtherSite)
        );
    }

    #[test]
    fn a_token_from_the_future_is_refused() {
        assert!(issued_in_time(1_000, 1_000).is_ok());
        assert!(
            issued_in_time(1_000 + CLOCK_SKEW, 1_000).is_ok(),
            "a clock a little ahead"
        );
        assert!(issued_in_time(1_000 + 86_400, 1_000).is_err());
        assert!(issued_in_time(i64::MAX, 1_000).is_err());
    }

    #[test]
    fn cookies_are_found_by_name() {
        assert_eq!(cookie("a=1; hearth_sign_in=xyz; b=2", COOKIE), Some("xyz"));
        assert_eq!(cookie("hearth_sign_in_x=1", COOKIE), None);
        assert_eq!(cookie("", COOKIE), None);
    }
}
