//! The CLI's client of the admin API on the state dir's UNIX socket.

use std::path::{Path, PathBuf};

use hearth_control::wire::ErrorBody;
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use hearth_coordinator::accounts::{CreatedKey, KeyOptions, KeyView};
use hearth_coordinator::admission::{NodeAction, NodeView};
use hearth_coordinator::api::admin::{
    DeviceAdded, DeviceBody, NameBody, PolicyBody, RoutesBody, TagsBody,
};
use hearth_coordinator::db::users::UserRow;

/// An admin command failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The coordinator could not be reached.
    #[error(
        "cannot reach the coordinator at {}: {reason}\n(is `hearth-coordinator serve` running with the same --state-dir?)",
        socket.display()
    )]
    Unreachable {
        /// The socket tried.
        socket: PathBuf,
        /// Why.
        reason: String,
    },
    /// The coordinator refused.
    #[error("{}", body.message)]
    Refused {
        /// Its explanation.
        body: ErrorBody,
    },
    /// The answer was not understood.
    #[error("unexpected answer from the coordinator: {0}")]
    Protocol(String),
}

/// A client of one coordinator's admin socket.
pub struct AdminClient {
    socket: PathBuf,
    http: reqwest::Client,
}

impl AdminClient {
    /// A client for the admin socket at `socket`.
    pub fn new(socket: &Path) -> Result<AdminClient, AdminError> {
        let http = reqwest::Client::builder()
            .unix_socket(socket)
            .build()
            .map_err(|error| AdminError::Protocol(error.to_string()))?;
        Ok(AdminClient {
            socket: socket.to_owned(),
            http,
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<Option<T>, AdminError> {
        let mut request = self
            .http
            .request(method, format!("http://coordinator{path}"));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|error| AdminError::Unreachable {
                socket: self.socket.clone(),
                reason: std::error::Error::source(&error)
                    .map(ToString::to_string)
                    .unwrap_or_else(|| error.to_string()),
            })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|error| AdminError::Protocol(error.to_string()))?;
        if !status.is_success() {
            let body = serde_json::from_str(&text).unwrap_or(ErrorBody {
                error: "http_error".into(),
                message: format!("{status}: {text}"),
            });
            return Err(AdminError::Refused { body });
        }
        if text.is_empty() {
            return Ok(None);
        }
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|error| AdminError::Protocol(error.to_string()))
    }

    async fn fetch<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T, AdminError> {
        self.call(method, path, body)
            .await?
            .ok_or_else(|| AdminError::Protocol("empty answer".into()))
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<(), AdminError> {
        self.call::<serde_json::Value>(method, path, body)
            .await
            .map(|_| ())
    }

    /// `users create`.
    pub async fn create_user(
        &self,
        name: &str,
        email: Option<&str>,
    ) -> Result<UserRow, AdminError> {
        self.fetch(
            Method::POST,
            "/v1/users",
            Some(&hearth_coordinator::api::admin::NewUserBody {
                name: name.into(),
                email: email.map(str::to_owned),
            }),
        )
        .await
    }

    /// `users link`.
    pub async fn link_user(
        &self,
        name: &str,
        email: Option<&str>,
        subject: Option<&str>,
    ) -> Result<UserRow, AdminError> {
        let path = format!("/v1/users/{}/link", encode(name));
        self.fetch(
            Method::POST,
            &path,
            Some(&hearth_coordinator::api::admin::LinkBody {
                email: email.map(str::to_owned),
                subject: subject.map(str::to_owned),
            }),
        )
        .await
    }

    /// `relays add`.
    pub async fn add_relay(
        &self,
        code: &str,
        url: &str,
    ) -> Result<hearth_coordinator::relays::CreatedRelay, AdminError> {
        let body = hearth_coordinator::relays::NewRelay {
            code: code.into(),
            url: url.into(),
        };
        self.fetch(Method::POST, "/v1/relays", Some(&body)).await
    }

    /// `ssh checks`.
    pub async fn ssh_checks(
        &self,
    ) -> Result<Vec<hearth_coordinator::ssh_checks::PendingCheck>, AdminError> {
        self.fetch(Method::GET, "/v1/ssh/checks", None::<&()>).await
    }

    /// `ssh approve` (`approve`) or `ssh deny`.
    pub async fn decide_ssh_check(
        &self,
        id: u64,
        approve: bool,
    ) -> Result<hearth_coordinator::ssh_checks::PendingCheck, AdminError> {
        let decision = if approve { "approve" } else { "deny" };
        self.fetch(
            Method::POST,
            &format!("/v1/ssh/checks/{id}/{decision}"),
            None::<&()>,
        )
        .await
    }

    /// `relays list`.
    pub async fn list_relays(
        &self,
    ) -> Result<Vec<hearth_coordinator::db::relays::RelayRow>, AdminError> {
        self.fetch(Method::GET, "/v1/relays", None::<&()>).await
    }

    /// `relays remove`.
    pub async fn remove_relay(&self, code: &str) -> Result<(), AdminError> {
        self.send(
            Method::DELETE,
            &format!("/v1/relays/{}", encode(code)),
            None::<&()>,
        )
        .await
    }

    /// `services list`.
    pub async fn list_services(
        &self,
    ) -> Result<Vec<hearth_coordinator::coordinator::ServiceView>, AdminError> {
        self.fetch(Method::GET, "/v1/services", None::<&()>).await
    }

    /// `services create`.
    pub async fn create_service(
        &self,
        name: &str,
    ) -> Result<hearth_coordinator::coordinator::ServiceView, AdminError> {
        let body = hearth_coordinator::api::admin::NewServiceBody {
            name: name.to_owned(),
        };
        self.fetch(Method::POST, "/v1/services", Some(&body)).await
    }

    /// `services move`.
    pub async fn move_service(
        &self,
        name: &str,
        to: Option<&str>,
    ) -> Result<hearth_coordinator::coordinator::ServiceView, AdminError> {
        let body = hearth_coordinator::coordinator::MoveBody {
            to: to.map(str::to_owned),
        };
        let path = format!("/v1/services/{}/move", encode(name));
        self.fetch(Method::POST, &path, Some(&body)).await
    }

    /// `services delete`.
    pub async fn delete_service(&self, name: &str) -> Result<(), AdminError> {
        let path = format!("/v1/services/{}", encode(name));
        self.send(Method::DELETE, &path, None::<&()>).await
    }

    /// `health`.
    pub async fn health(&self) -> Result<hearth_coordinator::health::Health, AdminError> {
        self.fetch(Method::GET, "/v1/health", None::<&()>).await
    }

    /// `users list`.
    pub async fn list_users(&self) -> Result<Vec<UserRow>, AdminError> {
        self.fetch(Method::GET, "/v1/users", None::<&()>).await
    }

    /// `users rename`.
    pub async fn rename_user(&self, old: &str, new: &str) -> Result<UserRow, AdminError> {
        let path = format!("/v1/users/{}/rename", encode(old));
        self.fetch(Method::POST, &path, Some(&NameBody { name: new.into() }))
            .await
    }

    /// `users delete`.
    pub async fn delete_user(&self, name: &str) -> Result<(), AdminError> {
        self.send(
            Method::DELETE,
            &format!("/v1/users/{}", encode(name)),
            None::<&()>,
        )
        .await
    }

    /// `preauthkeys create`.
    pub async fn create_key(&self, options: &KeyOptions) -> Result<CreatedKey, AdminError> {
        self.fetch(Method::POST, "/v1/preauthkeys", Some(options))
            .await
    }

    /// `preauthkeys list`.
    pub async fn list_keys(&self, user: Option<&str>) -> Result<Vec<KeyView>, AdminError> {
        let path = match user {
            Some(user) => format!("/v1/preauthkeys?user={}", encode(user)),
            None => "/v1/preauthkeys".into(),
        };
        self.fetch(Method::GET, &path, None::<&()>).await
    }

    /// `preauthkeys expire`.
    pub async fn expire_key(&self, id: i64) -> Result<KeyView, AdminError> {
        self.fetch(
            Method::POST,
            &format!("/v1/preauthkeys/{id}/expire"),
            None::<&()>,
        )
        .await
    }

    /// `nodes list`.
    pub async fn list_nodes(&self) -> Result<Vec<NodeView>, AdminError> {
        self.fetch(Method::GET, "/v1/nodes", None::<&()>).await
    }

    /// `nodes approve|reject|expire`.
    pub async fn node_action(&self, id: u64, action: NodeAction) -> Result<NodeView, AdminError> {
        self.fetch(
            Method::POST,
            &format!("/v1/nodes/{id}/{}", action.as_str()),
            None::<&()>,
        )
        .await
    }

    /// `nodes rename`.
    pub async fn rename_node(&self, id: u64, name: &str) -> Result<NodeView, AdminError> {
        self.fetch(
            Method::POST,
            &format!("/v1/nodes/{id}/rename"),
            Some(&NameBody { name: name.into() }),
        )
        .await
    }

    /// `nodes tag`.
    pub async fn tag_node(&self, id: u64, tags: &[String]) -> Result<NodeView, AdminError> {
        self.fetch(
            Method::POST,
            &format!("/v1/nodes/{id}/tags"),
            Some(&TagsBody {
                tags: tags.to_vec(),
            }),
        )
        .await
    }

    /// `nodes approve-routes`.
    pub async fn approve_routes(
        &self,
        id: u64,
        routes: &[ipnet::IpNet],
    ) -> Result<NodeView, AdminError> {
        self.fetch(
            Method::POST,
            &format!("/v1/nodes/{id}/routes"),
            Some(&RoutesBody {
                routes: routes.to_vec(),
            }),
        )
        .await
    }

    /// `nodes delete`.
    pub async fn delete_node(&self, id: u64) -> Result<(), AdminError> {
        self.send(Method::DELETE, &format!("/v1/nodes/{id}"), None::<&()>)
            .await
    }

    /// `nodes register`.
    pub async fn register_login(&self, code: &str, user: &str) -> Result<NodeView, AdminError> {
        let body = hearth_coordinator::api::admin::UserBody { user: user.into() };
        self.fetch(
            Method::POST,
            &format!("/v1/logins/{code}/register"),
            Some(&body),
        )
        .await
    }

    /// `devices add`.
    pub async fn add_device(&self, user: &str, name: &str) -> Result<DeviceAdded, AdminError> {
        let body = DeviceBody {
            user: user.into(),
            name: name.into(),
        };
        self.fetch(Method::POST, "/v1/devices", Some(&body)).await
    }

    /// `policy get`.
    pub async fn get_policy(&self) -> Result<Option<String>, AdminError> {
        let body: PolicyBody = self.fetch(Method::GET, "/v1/policy", None::<&()>).await?;
        Ok(body.policy)
    }

    /// `policy set`.
    pub async fn set_policy(&self, text: &str) -> Result<(), AdminError> {
        self.send(
            Method::PUT,
            "/v1/policy",
            Some(&PolicyBody {
                policy: Some(text.into()),
            }),
        )
        .await
    }

    /// `policy check`.
    pub async fn check_policy(&self, text: &str) -> Result<(), AdminError> {
        self.send(
            Method::POST,
            "/v1/policy/check",
            Some(&PolicyBody {
                policy: Some(text.into()),
            }),
        )
        .await
    }
}

/// Percent-encodes a path segment.
fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-._~@+".contains(&byte) {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}
