//! What people and admins do through the coordinator: users and their
//! pre-auth keys, decisions on nodes (approve, reject, rename, tag,
//! delete, routes), registering Tailscale clients waiting for a login,
//! signing in at the identity provider, and deciding SSH checks.

use std::collections::BTreeSet;
use std::net::IpAddr;

use hearth_control::tailcfg::{MachineKey, RegisterRequest, RegisterResponse};
use hearth_control::wire::{NodeId, NodeState, WireGuardKey};
use hearth_control::{JoinToken, SecretString};
use hearth_runtime::clock::unix_seconds as unix_now;
use ipnet::IpNet;

use super::Coordinator;
use crate::accounts::{CreatedKey, KeyOptions, KeyView, check_email};
use crate::admission::{NodeAction, NodeView};
use crate::db::preauth_keys::NewPreauthKey;
use crate::db::users::UserRow;
use crate::error::{Error, Result};
use crate::logins::{
    FOLLOW_UP_HOLD, LOGIN_PATH, Logins, WaitingLogin, code_of, login_page, new_code,
};
use crate::netmap::{Credential, NodeRecord};
use crate::registration::Owner;
use crate::routes::approved_under;
use crate::sign_in::{
    Account, CALLBACK_PATH, Joined, KnownUser, Pending, PendingSignIn, Redirect, account_for,
    identity,
};
use crate::ssh_checks::PendingCheck;
use crate::tailscale::{Joining, response_for};
use crate::{authkey, names};

impl Coordinator {
    /// Creates a user, with the email address a person who signs in
    /// through the identity provider must have (verified) to be this user.
    pub async fn create_user(&self, name: &str, email: Option<&str>) -> Result<UserRow> {
        names::check_user_name(name)?;
        if let Some(email) = email {
            check_email(email)?;
        }
        let _turn = self.turn().await;
        self.check_name_free(name, None).await?;
        match self.db.insert_user(name, email, unix_now()).await {
            Err(crate::db::DbError::Conflict(_)) => Err(Error::Conflict(format!(
                "user `{name}` or the address {email:?} exists already"
            ))),
            other => Ok(other?),
        }
    }

    /// Refuses `name` when another user (not `except`) has it, letter case
    /// aside: `Alice` beside `alice` would be two people to the database
    /// and one to everyone reading a list or a policy.
    async fn check_name_free(&self, name: &str, except: Option<i64>) -> Result<()> {
        let users = self.db.list_users().await?;
        match users
            .iter()
            .find(|user| Some(user.id) != except && names::same_user_name(&user.name, name))
        {
            Some(user) if user.name == name => {
                Err(Error::Conflict(format!("user `{name}` already exists")))
            }
            Some(user) => Err(Error::Conflict(format!(
                "user `{}` already exists (names that differ only in letter case are one name)",
                user.name
            ))),
            None => Ok(()),
        }
    }

    /// Links user `name` to a person at the identity provider: records the
    /// email address they must sign in with (verified by the provider), or
    /// names their provider account (`issuer subject`) outright. Until one
    /// of them, nobody signing in is this user, whatever name the provider
    /// gives them.
    pub async fn link_user(
        &self,
        name: &str,
        email: Option<&str>,
        subject: Option<&str>,
    ) -> Result<UserRow> {
        let _turn = self.turn().await;
        let user = self.user(name).await?;
        if email.is_none() && subject.is_none() {
            return Err(Error::BadRequest(
                "name the person's email address or provider account".into(),
            ));
        }
        if let Some(email) = email {
            check_email(email)?;
            match self.db.set_user_email(user.id, Some(email)).await {
                Err(crate::db::DbError::Conflict(_)) => {
                    return Err(Error::Conflict(format!(
                        "another user has the address {email}"
                    )));
                }
                other => other?,
            };
        }
        if let Some(subject) = subject {
            let Some((issuer, sub)) = subject.split_once(' ') else {
                return Err(Error::BadRequest(
                    "a provider account is its issuer and subject, space-separated".into(),
                ));
            };
            if issuer.is_empty() || sub.is_empty() || subject.chars().any(char::is_control) {
                return Err(Error::BadRequest("not a provider account".into()));
            }
            match self.db.record_sign_in(user.id, subject, "[]", 0).await {
                Err(crate::db::DbError::Conflict(_)) => {
                    return Err(Error::Conflict(
                        "that provider account is another user's".into(),
                    ));
                }
                other => other?,
            };
        }
        tracing::info!(user = %user.name, "a user was linked to the identity provider");
        self.announce_users().await;
        Ok(UserRow {
            email: email.map(str::to_owned).or(user.email.clone()),
            ..user
        })
    }

    /// Every user.
    pub async fn list_users(&self) -> Result<Vec<UserRow>> {
        Ok(self.db.list_users().await?)
    }

    pub(crate) async fn user(&self, name: &str) -> Result<UserRow> {
        self.db
            .find_user(name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("user `{name}`")))
    }

    /// Renames a user; their nodes' identity changes with it.
    pub async fn rename_user(&self, old: &str, new: &str) -> Result<UserRow> {
        names::check_user_name(new)?;
        let turn = self.turn().await;
        let user = self.user(old).await?;
        self.check_name_free(new, Some(user.id)).await?;
        match self.db.rename_user(old, new).await {
            Err(crate::db::DbError::Conflict(_)) => {
                return Err(Error::Conflict(format!("user `{new}` already exists")));
            }
            other => other?,
        };
        let affected: Vec<NodeRecord> = self
            .state()
            .registry
            .network()
            .nodes()
            .filter(|record| record.user_id == user.id)
            .cloned()
            .collect();
        for mut record in affected {
            record.user = new.to_owned();
            self.apply(&turn, record);
        }
        self.refresh_provider_groups(&turn).await?;
        self.announce_users().await;
        Ok(UserRow {
            name: new.to_owned(),
            ..user
        })
    }

    /// Deletes a user who has no nodes left (their keys go with them).
    pub async fn delete_user(&self, name: &str) -> Result<()> {
        let turn = self.turn().await;
        let user = self.user(name).await?;
        let nodes = self
            .state()
            .registry
            .network()
            .nodes()
            .filter(|record| record.user_id == user.id)
            .count();
        if nodes > 0 {
            return Err(Error::Conflict(format!(
                "user `{name}` still owns {nodes} node(s); delete them first"
            )));
        }
        self.db.delete_user(user.id).await?;
        self.refresh_provider_groups(&turn).await?;
        self.announce_users().await;
        Ok(())
    }

    /// Creates a pre-auth key and the join token that carries it.
    pub async fn create_key(&self, options: &KeyOptions) -> Result<CreatedKey> {
        for tag in &options.tags {
            names::check_tag(tag)?;
        }
        let user = self.user(&options.user).await?;
        let now = unix_now();
        let minted = authkey::mint();
        let expires_at = options
            .expiration_seconds
            .map(|seconds| now.saturating_add(i64::try_from(seconds).unwrap_or(i64::MAX)));
        let id = self
            .db
            .insert_preauth_key(&NewPreauthKey {
                user_id: user.id,
                prefix: &minted.prefix,
                secret_hash: &minted.secret_hash,
                reusable: options.reusable,
                ephemeral: options.ephemeral,
                pre_approved: options.pre_approved,
                tags: &options.tags,
                expires_at,
                now,
                node_key_lifetime: options
                    .node_key_lifetime_seconds
                    .map(|seconds| i64::try_from(seconds).unwrap_or(i64::MAX)),
            })
            .await?;
        let row = self
            .db
            .get_preauth_key(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("pre-auth key {id}")))?;
        let token = JoinToken {
            url: self.settings.public_url.clone(),
            fingerprint: self.settings.fingerprint,
            key: SecretString::new(minted.text.to_string()),
        };
        tracing::info!(key = id, user = %user.name, "pre-auth key created");
        Ok(CreatedKey {
            key: KeyView::new(row, now),
            token: token.encode(),
        })
    }

    /// Keys, optionally of one user.
    pub async fn list_keys(&self, user: Option<&str>) -> Result<Vec<KeyView>> {
        let user_id = match user {
            Some(name) => Some(self.user(name).await?.id),
            None => None,
        };
        let now = unix_now();
        Ok(self
            .db
            .list_preauth_keys(user_id)
            .await?
            .into_iter()
            .map(|row| KeyView::new(row, now))
            .collect())
    }

    /// Makes a key unusable from now on.
    pub async fn expire_key(&self, id: i64) -> Result<KeyView> {
        let now = unix_now();
        if !self.db.expire_preauth_key(id, now).await? {
            return Err(Error::NotFound(format!("pre-auth key {id}")));
        }
        let row = self
            .db
            .get_preauth_key(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("pre-auth key {id}")))?;
        Ok(KeyView::new(row, now))
    }
}

impl Coordinator {
    /// A Tailscale client with no pre-auth key and no node yet: its login
    /// URL, or, when it follows one up, the answer once an admin registered
    /// it (or the same URL again after [`FOLLOW_UP_HOLD`]).
    pub(super) async fn interactive_login(
        &self,
        machine: MachineKey,
        source: Option<IpAddr>,
        request: &RegisterRequest,
    ) -> Result<RegisterResponse> {
        let now = unix_now();
        if let Some(code) = code_of(&request.followup) {
            let url = request.followup.clone();
            let waiting = self.login_waiting(code, &machine, now);
            return self.follow_up(machine, url, waiting).await;
        }
        let login = WaitingLogin {
            machine,
            node_key: WireGuardKey(request.node_key.0),
            hostinfo: request.hostinfo.clone().unwrap_or_default(),
            ephemeral: request.ephemeral,
            since: now,
            last_asked: now,
            source,
        };
        let code = self.logins().add(login, new_code(), now)?;
        tracing::info!(machine = %machine, "a Tailscale client without a key waits for `nodes register`");
        Ok(RegisterResponse {
            auth_url: format!("{}{LOGIN_PATH}{code}", self.settings.public_url),
            ..RegisterResponse::default()
        })
    }

    /// The login page for `code` with the form token `token` (used when
    /// people sign in here), and its status (404 when nobody waits).
    pub fn login_page(&self, code: &str, token: &str) -> (axum::http::StatusCode, String) {
        let logins = self.logins();
        let sign_in = self.settings.sign_in.is_some().then_some(token);
        match logins.get(code, unix_now()) {
            Some(waiting) => (
                axum::http::StatusCode::OK,
                login_page(Some((code, waiting)), sign_in),
            ),
            None => (axum::http::StatusCode::NOT_FOUND, login_page(None, None)),
        }
    }

    pub(crate) fn logins(&self) -> std::sync::MutexGuard<'_, Logins> {
        self.logins
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn login_waiting(&self, code: &str, machine: &MachineKey, now: i64) -> bool {
        let mut logins = self.logins();
        logins
            .get(code, now)
            .is_some_and(|waiting| waiting.machine == *machine)
            && logins.asked_again(machine, now)
    }

    async fn follow_up(
        &self,
        machine: MachineKey,
        url: String,
        waiting: bool,
    ) -> Result<RegisterResponse> {
        let deadline = tokio::time::Instant::now() + FOLLOW_UP_HOLD;
        let mut waiting = waiting;
        loop {
            let registered = self.login_registered.notified();
            tokio::pin!(registered);
            registered.as_mut().enable();
            if let Ok(record) = self.identify(Some(Credential::Machine(machine))).await {
                return Ok(response_for(&record));
            }
            if !waiting {
                return Err(Error::NotFound(
                    "a waiting login (it expired or was never made); run `tailscale up` again"
                        .into(),
                ));
            }
            tokio::select! {
                () = registered => {}
                () = tokio::time::sleep_until(deadline) => {
                    return Ok(RegisterResponse { auth_url: url, ..RegisterResponse::default() });
                }
            }
            waiting = self.logins().asked_again(&machine, unix_now());
        }
    }

    /// `nodes register --user USER CODE`: admits the device waiting with
    /// `code` as `user`'s, approved (the admin has just vouched for it).
    pub async fn register_waiting(&self, code: &str, user: &str) -> Result<NodeView> {
        let user = self.user(user).await?;
        let turn = self.turn().await;
        self.register_login(&turn, code, &user).await
    }

    /// Admits the device waiting with `code` as `user`'s, approved: an
    /// admin ran `nodes register`, or the person signed in.
    pub(crate) async fn register_login(
        &self,
        turn: &crate::coordinator::Turn<'_>,
        code: &str,
        user: &crate::db::users::UserRow,
    ) -> Result<NodeView> {
        let now = unix_now();
        let login = self
            .logins()
            .take(code, now)
            .ok_or_else(|| Error::NotFound(format!("a device waiting with code {code}")))?;
        {
            let state = self.state();
            if let Some(existing) = state.registry.holder_of(&login.node_key) {
                return Err(Error::AlreadyRegistered(existing));
            }
            if state
                .registry
                .presenting(Some(Credential::Machine(login.machine)))
                .is_ok()
            {
                return Err(Error::Conflict("this device is already registered".into()));
            }
        }
        let owner = Owner {
            user_id: user.id,
            user: user.name.clone(),
            tags: Default::default(),
            ephemeral: login.ephemeral,
            state: NodeState::Approved,
            key_lifetime: self.settings.key_lifetime(),
        };
        let joining = Joining {
            machine: login.machine,
            node_key: login.node_key,
            hostinfo: &login.hostinfo,
        };
        let record = self
            .admit_tailscale(turn, joining, owner, None, now)
            .await?;
        self.login_registered.notify_waiters();
        tracing::info!(node = record.id, name = %record.name, user = %record.user, "a waiting Tailscale client was registered");
        Ok(self.view(&record))
    }
}

impl Coordinator {
    fn sign_ins(
        &self,
    ) -> std::sync::MutexGuard<'_, Pending<std::sync::Arc<crate::oidc::ProviderClient>>> {
        hearth_runtime::lock(&self.sign_ins)
    }

    /// Begins signing in for the device waiting with login `code`, asked
    /// from `source`.
    pub async fn begin_sign_in(
        &self,
        code: &str,
        source: Option<std::net::IpAddr>,
    ) -> Result<Redirect> {
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
            Error::SignIn(error.to_string())
        })?;
        let pending = PendingSignIn {
            code: code.to_owned(),
            client: started.client,
            nonce: started.nonce,
            verifier: started.verifier,
            since: now,
            source,
        };
        if let Err(crowded) = self.sign_ins().add(started.state.clone(), pending, now) {
            return Err(Error::TooManyPending(crowded.to_string()));
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
                Error::SignIn(error.to_string())
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
        let known: Vec<KnownUser<'_>> = users
            .iter()
            .map(|user| KnownUser {
                id: user.id,
                name: &user.name,
                email: user.email.as_deref(),
                linked: identities.iter().any(|row| row.user_id == user.id),
            })
            .collect();
        let account = account_for(&person, linked, &known).map_err(|refusal| {
            tracing::warn!(%refusal, "a sign-in was refused");
            Error::SignIn(refusal.to_string())
        })?;
        let user = match account {
            Account::Linked(id) | Account::Claim(id) => users
                .into_iter()
                .find(|user| user.id == id)
                .ok_or_else(|| Error::NotFound(format!("user {id}")))?,
            Account::Create => {
                let user = self.db.insert_user(&person.user, None, now).await?;
                tracing::info!(user = %user.name, "a user was made at their first sign-in");
                user
            }
        };
        let groups = serde_json::to_string(&person.groups).unwrap_or_else(|_| "[]".into());
        self.db
            .record_sign_in(user.id, &person.subject, &groups, now)
            .await?;
        self.refresh_provider_groups(&turn).await?;
        self.announce_users().await;
        let node = self.register_login(&turn, &pending.code, &user).await?;
        tracing::info!(user = %user.name, node = node.id, "a device joined through sign-in");
        Ok(Joined {
            user: user.name,
            node,
        })
    }
}

impl Coordinator {
    /// Every node.
    pub async fn list_nodes(&self) -> Vec<NodeView> {
        let state = self.state();
        let mut views: Vec<NodeView> = state
            .registry
            .network()
            .nodes()
            .map(|record| self.view(record))
            .collect();
        views.sort_by_key(|view| view.id);
        views
    }

    /// Carries out an admin's decision about node `id`.
    pub async fn act_on_node(&self, id: NodeId, action: NodeAction) -> Result<NodeView> {
        let now = hearth_runtime::clock::unix_seconds();
        let view = self
            .change_node(id, |_, record| {
                record.state = action.outcome();
                // Approving a node whose keys expired gives them a new lifetime.
                if action == NodeAction::Approve && record.key_expired(now) {
                    record.renew_keys(now);
                }
                Ok(())
            })
            .await?;
        if action == NodeAction::Approve {
            self.apply_held_report(id).await?;
        }
        Ok(view)
    }

    /// Renames a node.
    pub async fn rename_node(&self, id: NodeId, name: &str) -> Result<NodeView> {
        names::check_node_name(name)?;
        // Checked and written in one writer's turn: two renames cannot both take a name.
        self.change_node(id, |state, record| {
            if state.registry.is_service_label(name) {
                return Err(Error::Conflict(format!(
                    "`{name}` is the name of the household's service svc:{name}: no device may \
                     take it (members' apps reach the service by it)"
                )));
            }
            if record.name != name && state.registry.name_taken(name) {
                return Err(Error::Conflict(format!(
                    "a node is already called `{name}`"
                )));
            }
            record.name = name.to_owned();
            Ok(())
        })
        .await
    }

    /// Replaces a node's tags (an empty list makes it its user's device again).
    pub async fn tag_node(&self, id: NodeId, tags: &[String]) -> Result<NodeView> {
        for tag in tags {
            names::check_tag(tag)?;
        }
        let tags: BTreeSet<String> = tags.iter().cloned().collect();
        self.change_node(id, |_, record| {
            record.tags = tags;
            Ok(())
        })
        .await
    }

    /// Deletes a node: it disappears from every map and its certificate stops working.
    pub async fn delete_node(&self, id: NodeId) -> Result<()> {
        let turn = self.turn().await;
        let record = self
            .state()
            .registry
            .node(id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("node {id}")))?;
        self.remove_node(&turn, id, unix_now()).await?;
        tracing::info!(node = id, name = %record.name, "node deleted");
        Ok(())
    }

    /// Sets which of a node's advertised routes an admin approves (those
    /// `autoApprovers` allow stay approved).
    pub async fn approve_routes(&self, id: NodeId, routes: &[IpNet]) -> Result<NodeView> {
        self.change_node(id, |state, record| {
            if let Some(route) = routes
                .iter()
                .find(|route| !record.advertised_routes.contains(route))
            {
                return Err(Error::BadRequest(format!(
                    "node {id} does not advertise {route}; it advertises [{}]",
                    record
                        .advertised_routes
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            record.approved_routes = approved_under(state.policy.as_ref(), record, routes);
            Ok(())
        })
        .await
    }

    /// `ssh checks`: the sessions waiting for an admin.
    pub fn waiting_ssh_checks(&self) -> Vec<PendingCheck> {
        self.ssh_checks().waiting(unix_now())
    }

    /// `ssh approve` / `ssh deny`.
    pub fn decide_ssh_check(&self, id: u64, approve: bool) -> Result<PendingCheck> {
        let check = self.ssh_checks().decide(id, approve, unix_now())?;
        self.ssh_checks_decided.notify_waiters();
        tracing::info!(id, approve, "Tailscale SSH check decided");
        Ok(check)
    }
}
