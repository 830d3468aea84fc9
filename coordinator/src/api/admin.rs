//! The admin API, served on the state dir's UNIX socket to the CLI.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::parse_json;
use crate::accounts::KeyOptions;
use crate::admission::NodeAction;
use crate::coordinator::Coordinator;
use crate::error::Error;

/// Body naming something.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameBody {
    /// The name.
    pub name: String,
}

/// Body of `users create`.
#[derive(Debug, Serialize, Deserialize)]
pub struct NewUserBody {
    /// The name.
    pub name: String,
    /// The email address the person signs in with at the identity provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// Body of `users link`: how a person at the identity provider is known.
#[derive(Debug, Serialize, Deserialize)]
pub struct LinkBody {
    /// The email address the provider verified for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Their provider account: issuer and subject, space-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

/// Body carrying tags.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagsBody {
    /// The tags.
    pub tags: Vec<String>,
}

/// Body of `devices add`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceBody {
    /// Owning user.
    pub user: String,
    /// Node name.
    pub name: String,
}

/// Answer of `devices add`: the node, and its wg-quick configuration (shown once).
#[derive(Debug, Serialize, Deserialize)]
pub struct DeviceAdded {
    /// The node.
    pub node: crate::admission::NodeView,
    /// The wg-quick configuration, with the device's private key.
    pub config: String,
}

/// Body carrying routes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutesBody {
    /// The routes.
    pub routes: Vec<ipnet::IpNet>,
}

/// Body carrying policy text.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyBody {
    /// HuJSON text; `None` on `GET` when no policy is stored.
    pub policy: Option<String>,
}

/// Query of `GET /v1/preauthkeys`.
#[derive(Debug, Deserialize)]
struct KeyQuery {
    user: Option<String>,
}

type Shared = State<Arc<Coordinator>>;

/// Counts the embedded relay's clients (for `health`).
pub type RelayClients = Arc<dyn Fn() -> usize + Send + Sync>;

/// The admin routes.
pub fn router(coordinator: Arc<Coordinator>, relay_clients: RelayClients) -> Router {
    Router::new()
        .route(
            "/v1/health",
            get(move |State(coordinator): Shared| async move {
                Json(coordinator.health(relay_clients(), true).await)
            }),
        )
        .route("/v1/users", get(list_users).post(create_user))
        .route("/v1/users/{name}", delete(delete_user))
        .route("/v1/users/{name}/rename", post(rename_user))
        .route("/v1/users/{name}/link", post(link_user))
        .route("/v1/preauthkeys", get(list_keys).post(create_key))
        .route("/v1/preauthkeys/{id}/expire", post(expire_key))
        .route("/v1/nodes", get(list_nodes))
        .route("/v1/nodes/{id}", delete(delete_node))
        .route("/v1/nodes/{id}/{action}", post(act_on_node))
        .route("/v1/nodes/{id}/rename", post(rename_node))
        .route("/v1/nodes/{id}/tags", post(tag_node))
        .route("/v1/nodes/{id}/routes", post(approve_routes))
        .route("/v1/devices", post(add_device))
        .route("/v1/logins/{code}/register", post(register_login))
        .route("/v1/relays", get(list_relays).post(add_relay))
        .route("/v1/relays/{code}", delete(remove_relay))
        .route("/v1/services", get(list_services).post(create_service))
        .route("/v1/services/{name}", delete(delete_service))
        .route("/v1/services/{name}/move", post(move_service))
        .route("/v1/policy", get(get_policy).put(set_policy))
        .route("/v1/policy/check", post(check_policy))
        .route("/v1/ssh/checks", get(list_ssh_checks))
        .route("/v1/ssh/checks/{id}/{decision}", post(decide_ssh_check))
        .layer(DefaultBodyLimit::max(4 * 1024 * 1024))
        .with_state(coordinator)
}

/// Body of `nodes register`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserBody {
    /// The user the device is registered to.
    pub user: String,
}

async fn register_login(
    State(coordinator): Shared,
    Path(code): Path<String>,
    body: Bytes,
) -> Result<impl IntoResponse, Error> {
    let body: UserBody = parse_json(&body)?;
    Ok((
        StatusCode::CREATED,
        Json(coordinator.register_waiting(&code, &body.user).await?),
    ))
}

async fn list_ssh_checks(State(coordinator): Shared) -> impl IntoResponse {
    Json(coordinator.waiting_ssh_checks())
}

async fn decide_ssh_check(
    State(coordinator): Shared,
    Path((id, decision)): Path<(u64, String)>,
) -> Result<impl IntoResponse, Error> {
    let approve = match decision.as_str() {
        "approve" => true,
        "deny" => false,
        other => return Err(Error::BadRequest(format!("{other}: approve or deny"))),
    };
    Ok(Json(coordinator.decide_ssh_check(id, approve)?))
}

/// Body of `services create`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewServiceBody {
    /// `svc:name`.
    pub name: String,
}

async fn list_services(State(coordinator): Shared) -> impl IntoResponse {
    Json(coordinator.list_services().await)
}

async fn create_service(
    State(coordinator): Shared,
    body: Bytes,
) -> Result<impl IntoResponse, Error> {
    let body: NewServiceBody = parse_json(&body)?;
    Ok((
        StatusCode::CREATED,
        Json(coordinator.create_service(&body.name).await?),
    ))
}

async fn move_service(
    State(coordinator): Shared,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<impl IntoResponse, Error> {
    let body: crate::coordinator::MoveBody = parse_json(&body)?;
    Ok(Json(
        coordinator.move_service(&name, body.to.as_deref()).await?,
    ))
}

async fn delete_service(
    State(coordinator): Shared,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, Error> {
    coordinator.delete_service(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_relays(State(coordinator): Shared) -> Result<impl IntoResponse, Error> {
    Ok(Json(coordinator.list_relays().await?))
}

async fn add_relay(State(coordinator): Shared, body: Bytes) -> Result<impl IntoResponse, Error> {
    let body: crate::relays::NewRelay = parse_json(&body)?;
    Ok((
        StatusCode::CREATED,
        Json(coordinator.add_relay(&body.code, &body.url).await?),
    ))
}

async fn remove_relay(
    State(coordinator): Shared,
    Path(code): Path<String>,
) -> Result<impl IntoResponse, Error> {
    coordinator.remove_relay(&code).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_users(State(coordinator): Shared) -> Result<impl IntoResponse, Error> {
    Ok(Json(coordinator.list_users().await?))
}

async fn create_user(State(coordinator): Shared, body: Bytes) -> Result<impl IntoResponse, Error> {
    let body: NewUserBody = parse_json(&body)?;
    Ok((
        StatusCode::CREATED,
        Json(
            coordinator
                .create_user(&body.name, body.email.as_deref())
                .await?,
        ),
    ))
}

async fn link_user(
    State(coordinator): Shared,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<impl IntoResponse, Error> {
    let body: LinkBody = parse_json(&body)?;
    Ok(Json(
        coordinator
            .link_user(&name, body.email.as_deref(), body.subject.as_deref())
            .await?,
    ))
}

async fn rename_user(
    State(coordinator): Shared,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<impl IntoResponse, Error> {
    let body: NameBody = parse_json(&body)?;
    Ok(Json(coordinator.rename_user(&name, &body.name).await?))
}

async fn delete_user(
    State(coordinator): Shared,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, Error> {
    coordinator.delete_user(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_keys(
    State(coordinator): Shared,
    Query(query): Query<KeyQuery>,
) -> Result<impl IntoResponse, Error> {
    Ok(Json(coordinator.list_keys(query.user.as_deref()).await?))
}

async fn create_key(State(coordinator): Shared, body: Bytes) -> Result<impl IntoResponse, Error> {
    let options: KeyOptions = parse_json(&body)?;
    Ok((
        StatusCode::CREATED,
        Json(coordinator.create_key(&options).await?),
    ))
}

async fn expire_key(
    State(coordinator): Shared,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, Error> {
    Ok(Json(coordinator.expire_key(id).await?))
}

async fn list_nodes(State(coordinator): Shared) -> impl IntoResponse {
    Json(coordinator.list_nodes().await)
}

/// `POST /v1/nodes/{id}/{action}` with an action of [`NodeAction`] (the
/// other node routes are matched first: `rename`, `tags`, `routes`).
async fn act_on_node(
    State(coordinator): Shared,
    Path((id, action)): Path<(u64, String)>,
) -> Result<impl IntoResponse, Error> {
    let action = NodeAction::parse(&action)
        .ok_or_else(|| Error::NotFound(format!("node action `{action}`")))?;
    Ok(Json(coordinator.act_on_node(id, action).await?))
}

async fn rename_node(
    State(coordinator): Shared,
    Path(id): Path<u64>,
    body: Bytes,
) -> Result<impl IntoResponse, Error> {
    let body: NameBody = parse_json(&body)?;
    Ok(Json(coordinator.rename_node(id, &body.name).await?))
}

async fn tag_node(
    State(coordinator): Shared,
    Path(id): Path<u64>,
    body: Bytes,
) -> Result<impl IntoResponse, Error> {
    let body: TagsBody = parse_json(&body)?;
    Ok(Json(coordinator.tag_node(id, &body.tags).await?))
}

async fn approve_routes(
    State(coordinator): Shared,
    Path(id): Path<u64>,
    body: Bytes,
) -> Result<impl IntoResponse, Error> {
    let body: RoutesBody = parse_json(&body)?;
    Ok(Json(coordinator.approve_routes(id, &body.routes).await?))
}

async fn delete_node(
    State(coordinator): Shared,
    Path(id): Path<u64>,
) -> Result<impl IntoResponse, Error> {
    coordinator.delete_node(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn add_device(State(coordinator): Shared, body: Bytes) -> Result<impl IntoResponse, Error> {
    let body: DeviceBody = parse_json(&body)?;
    let (node, config) = coordinator
        .add_static_device(&body.user, &body.name)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(DeviceAdded {
            node,
            config: config.to_string(),
        }),
    ))
}

async fn get_policy(State(coordinator): Shared) -> impl IntoResponse {
    Json(PolicyBody {
        policy: coordinator.policy_text().await,
    })
}

fn policy_text(body: &[u8]) -> Result<String, Error> {
    let body: PolicyBody = parse_json(body)?;
    body.policy
        .ok_or_else(|| Error::BadRequest("`policy` must hold the policy text".into()))
}

async fn set_policy(State(coordinator): Shared, body: Bytes) -> Result<impl IntoResponse, Error> {
    coordinator.set_policy(&policy_text(&body)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn check_policy(State(coordinator): Shared, body: Bytes) -> Result<impl IntoResponse, Error> {
    coordinator.check_policy(&policy_text(&body)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
