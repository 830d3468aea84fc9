//! The HTTP edge: the web page, the JSON API and the WebSocket. Every
//! request is identified by its tunnel address first.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message as Frame, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::identity::{Caller, Identities, Refusal};
use crate::protocol::{
    ClientMessage, MAX_FRAME, RoomId, ServerEvent, check_room, decode, may_access, valid_member,
};
use crate::service::{Messaging, ServiceError};
use hearth_http::SameOrigin;

/// What the HTTP handlers need: the service, caller identification, the
/// stop signal and the same-origin rule.
pub struct ApiState {
    /// The service.
    pub messaging: Arc<Messaging>,
    /// Caller identification.
    pub identities: Identities,
    /// Becomes `true` when the service stops: live connections close.
    pub closing: tokio::sync::watch::Receiver<bool>,
    /// The names and origin browsers may use.
    pub same_origin: SameOrigin,
    /// The household app's files.
    pub app: crate::web::WebApp,
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        let status = match &self {
            ServiceError::Invalid(_) => StatusCode::BAD_REQUEST,
            ServiceError::NotYours(_) | ServiceError::NotCreator(_) | ServiceError::NotWriter => {
                StatusCode::FORBIDDEN
            }
            ServiceError::BadQuery => StatusCode::BAD_REQUEST,
            ServiceError::NoSuchMessage(_) => StatusCode::NOT_FOUND,
            ServiceError::TooFast | ServiceError::TooManyRooms(_) => StatusCode::TOO_MANY_REQUESTS,
            ServiceError::NoSuchRoom(_) => StatusCode::NOT_FOUND,
            ServiceError::File(crate::protocol::FileRefusal::Size) => StatusCode::PAYLOAD_TOO_LARGE,
            ServiceError::File(crate::protocol::FileRefusal::Kind(_)) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ServiceError::File(crate::protocol::FileRefusal::Name) => StatusCode::BAD_REQUEST,
            ServiceError::FileNotEdited => StatusCode::CONFLICT,
            ServiceError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "request failed");
        }
        error(status, self.to_string())
    }
}

/// Refuses requests naming a host the service does not answer to (DNS
/// rebinding) or coming from a web page of another origin.
async fn same_origin(
    State(shared): State<Arc<ApiState>>,
    request: Request,
    next: Next,
) -> Response {
    match shared.same_origin.check_request(&request) {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            tracing::debug!(%refusal, "cross-site request refused");
            error(StatusCode::FORBIDDEN, refusal.to_string())
        }
    }
}

async fn identify(
    State(shared): State<Arc<ApiState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    match shared.identities.identify(peer.ip()).await {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(refusal) => {
            let status = match refusal {
                Refusal::AgentDown(_) => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::FORBIDDEN,
            };
            tracing::debug!(address = %peer.ip(), %refusal, "caller refused");
            error(status, refusal.to_string())
        }
    }
}

/// The routes.
pub fn router(shared: Arc<ApiState>) -> Router {
    Router::new()
        .route("/", get(app_file))
        .route("/{file}", get(app_file))
        .route("/icons/{file}", get(app_file))
        .route("/api/me", get(me))
        .route("/api/me/language", axum::routing::put(set_language))
        .route("/api/users", get(users))
        .route("/api/rooms", get(rooms).post(create_room))
        .route("/api/dm", post(open_dm))
        .route("/api/search", get(search))
        .route("/api/files/{id}", get(file))
        .route("/api/speech", post(speech))
        .merge(
            Router::new()
                .route("/api/rooms/{room}", axum::routing::delete(delete_room))
                .route("/api/rooms/{room}/messages", get(history).post(send))
                .route(
                    "/api/rooms/{room}/messages/{id}",
                    axum::routing::patch(edit).delete(delete_message),
                )
                .route("/api/rooms/{room}/read", post(read))
                .route("/api/rooms/{room}/files", post(share_file))
                .route("/api/assistant/memory", get(assistant_memory))
                .route(
                    "/api/assistant/memory/{id}",
                    axum::routing::delete(assistant_forget),
                )
                .route("/api/assistant/reminders", get(assistant_reminders))
                .route(
                    "/api/assistant/reminders/{id}",
                    axum::routing::delete(assistant_cancel),
                )
                .route("/api/assistant/documents", get(assistant_documents))
                .route_layer(middleware::from_fn(room_first)),
        )
        .route("/ws", get(websocket))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&shared),
            identify,
        ))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&shared),
            same_origin,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FRAME))
        .with_state(shared)
}

/// What plain HTTP to an HTTPS service gets: a permanent redirect to the
/// same host and path over `https://` (the host checked as every request's
/// is: no redirect to a name the service does not answer to).
pub fn redirect_to_https(same_origin: SameOrigin) -> Router {
    Router::new().fallback(move |request: Request| {
        let same_origin = same_origin.clone();
        async move {
            if let Err(refusal) = same_origin.check_request(&request) {
                return error(StatusCode::FORBIDDEN, refusal.to_string());
            }
            // The check above found a host, in `Host` or the authority.
            let host = request
                .headers()
                .get(header::HOST)
                .and_then(|host| host.to_str().ok())
                .or_else(|| {
                    request
                        .uri()
                        .authority()
                        .map(|authority| authority.as_str())
                })
                .unwrap_or_default();
            let path = request
                .uri()
                .path_and_query()
                .map_or("/", |path| path.as_str());
            let location = format!("https://{host}{path}");
            (
                StatusCode::PERMANENT_REDIRECT,
                [(header::LOCATION, location)],
            )
                .into_response()
        }
    })
}

/// The room a request names (its path's `{room}`, or its `room` query
/// parameter) is checked before the request's fields are read: another
/// member's room is refused the same way however the request is wrong.
async fn room_first(
    Extension(caller): Extension<Caller>,
    path: Option<Path<std::collections::HashMap<String, String>>>,
    request: Request,
    next: Next,
) -> Response {
    let path = path.map(|Path(path)| path).unwrap_or_default();
    let query = Query::<std::collections::HashMap<String, String>>::try_from_uri(request.uri())
        .map(|Query(query)| query)
        .unwrap_or_default();
    for room in [path.get("room"), query.get("room")].into_iter().flatten() {
        if let Err(refused) = Messaging::check_access(&caller, room) {
            return refused.into_response();
        }
    }
    next.run(request).await
}

/// One of the household app's files.
async fn app_file(
    State(shared): State<Arc<ApiState>>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
) -> Response {
    crate::web::serve(&shared.app, uri.path(), &headers)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Language {
    language: String,
}

/// `PUT /api/me/language`: the language the member's app is in, which the
/// assistant answers in.
async fn set_language(
    State(shared): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Json(choice): Json<Language>,
) -> Result<Response, ServiceError> {
    if !crate::protocol::valid_language(&choice.language) {
        return Err(ServiceError::Invalid(
            crate::protocol::DecodeError::Invalid("a language is a tag such as en or ko-KR".into()),
        ));
    }
    shared
        .messaging
        .store
        .set_language(&caller.user, &choice.language)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn me(State(shared): State<Arc<ApiState>>, Extension(caller): Extension<Caller>) -> Response {
    // The member's conversation with the assistant, as the server names it
    // (the app never makes a room id itself).
    let assistant_room = shared
        .messaging
        .assistant
        .as_ref()
        .and_then(|_| RoomId::assistant_dm(&caller.user).ok())
        .map(|room| crate::store::RoomSummary::of(&room, &caller.user));
    Json(json!({"user": caller.user, "node": caller.node, "assistant_room": assistant_room}))
        .into_response()
}

async fn users(
    State(shared): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ServiceError> {
    let store = &shared.messaging.store;
    store.seen(&caller.user).await?;
    let mut users = store.users().await?;
    if shared.messaging.assistant.is_some() {
        users.push(crate::protocol::ASSISTANT.into());
    }
    Ok(Json(json!({"users": users})).into_response())
}

async fn rooms(
    State(shared): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ServiceError> {
    Ok(Json(json!({"rooms": shared.messaging.store.rooms(&caller.user).await?})).into_response())
}

/// Where an assistant request is about: a room (default: the caller's
/// own conversation with the assistant).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InRoom {
    room: Option<String>,
}

/// Asks the gateway's assistant API, for `caller` in `room`, and answers
/// with its JSON (`{"type": "memory", "entries": […]}` and so on).
async fn ask_assistant(
    shared: &ApiState,
    caller: &Caller,
    room: Option<String>,
    op: hearth_assistant::api::Op,
) -> Result<Response, ServiceError> {
    let room = match room {
        Some(room) => room,
        None => RoomId::assistant_dm(&caller.user)
            .map_err(|error| ServiceError::Invalid(crate::protocol::DecodeError::BadRoom(error.0)))?
            .to_string(),
    };
    Messaging::check_access(caller, &room)?;
    let Some(assistant) = &shared.messaging.assistant else {
        return Ok(error(
            StatusCode::NOT_FOUND,
            "no assistant is set up on this hub".into(),
        ));
    };
    let asker = hearth_assistant::scope::Asker {
        member: caller.user.clone(),
        room: Some(check_room(&room)?),
        capabilities: caller.capabilities.clone(),
        device: Some(caller.address),
        language: None,
    };
    match assistant.manage(asker, op).await {
        Ok(hearth_assistant::api::Answer::Refused { message }) => {
            Ok(error(StatusCode::NOT_FOUND, message))
        }
        Ok(answer) => Ok(Json(answer).into_response()),
        Err(failure) => Ok(error(
            StatusCode::BAD_GATEWAY,
            crate::assistant::failure_text(failure),
        )),
    }
}

/// The most a recording sent to `POST /api/speech` may be (a quarter of
/// an hour of the app's Opus; the hub's own limits apply after).
pub const MAX_RECORDING_BYTES: usize = 16 * 1024 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Spoken {
    language: Option<String>,
}

/// `POST /api/speech?language=ko`: the body is a recording the app made;
/// the answer is what the hub heard (`{"type": "heard", "text": …}`), for
/// the member to read and send. Nothing is posted or kept.
async fn speech(
    State(shared): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Query(spoken): Query<Spoken>,
    body: axum::body::Body,
) -> Response {
    let Ok(audio) = axum::body::to_bytes(body, MAX_RECORDING_BYTES).await else {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "a recording may be at most {} MiB; speak in shorter parts",
                MAX_RECORDING_BYTES / (1024 * 1024)
            ),
        );
    };
    if audio.is_empty() {
        return error(StatusCode::BAD_REQUEST, "the recording is empty".into());
    }
    let Some(assistant) = &shared.messaging.assistant else {
        return error(
            StatusCode::NOT_FOUND,
            "no assistant is set up on this hub".into(),
        );
    };
    match assistant.transcribe(&caller, &audio, spoken.language).await {
        Ok(heard) => Json(heard).into_response(),
        Err(not_heard) => error(
            StatusCode::from_u16(not_heard.status).unwrap_or(StatusCode::BAD_GATEWAY),
            not_heard.message,
        ),
    }
}

async fn assistant_memory(
    State(shared): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Query(place): Query<InRoom>,
) -> Result<Response, ServiceError> {
    use hearth_assistant::api::Op;
    ask_assistant(&shared, &caller, place.room, Op::MemoryList {}).await
}

async fn assistant_forget(
    State(shared): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<i64>,
    Query(place): Query<InRoom>,
) -> Result<Response, ServiceError> {
    use hearth_assistant::api::Op;
    ask_assistant(&shared, &caller, place.room, Op::MemoryForget { id }).await
}

async fn assistant_reminders(
    State(shared): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Query(place): Query<InRoom>,
) -> Result<Response, ServiceError> {
    use hearth_assistant::api::Op;
    ask_assistant(&shared, &caller, place.room, Op::ReminderList {}).await
}

async fn assistant_cancel(
    State(shared): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<i64>,
    Query(place): Query<InRoom>,
) -> Result<Response, ServiceError> {
    use hearth_assistant::api::Op;
    ask_assistant(&shared, &caller, place.room, Op::ReminderCancel { id }).await
}

async fn assistant_documents(
    State(shared): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Query(place): Query<InRoom>,
) -> Result<Response, ServiceError> {
    use hearth_assistant::api::Op;
    ask_assistant(&shared, &caller, place.room, Op::DocumentList {}).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRoom {
    name: String,
}

async fn create_room(
    State(shared): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Json(room): Json<NewRoom>,
) -> Result<Response, ServiceError> {
    let id = check_room(&room.name)?;
    if id.is_dm() {
        return Ok(error(
            StatusCode::BAD_REQUEST,
            "open a direct conversation with POST /api/dm".into(),
        ));
    }
    shared.messaging.open_room(&caller, &room.name).await?;
    let summary = crate::store::RoomSummary::of(&id, &caller.user);
    Ok((
        StatusCode::CREATED,
        Json(json!({"room": room.name, "summary": summary})),
    )
        .into_response())
}

async fn delete_room(
    State(shared): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(room): Path<String>,
) -> Result<Response, ServiceError> {
    shared.messaging.delete_room(&caller, &room).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDm {
    user: String,
}

async fn open_dm(
    State(shared): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Json(dm): Json<NewDm>,
) -> Result<Response, ServiceError> {
    let room = match RoomId::dm(&caller.user, &dm.user) {
        Ok(room) if valid_member(&dm.user) => room.to_string(),
        _ => {
            return Ok(error(
                StatusCode::BAD_REQUEST,
                format!("{:?} is not someone to write to", dm.user),
            ));
        }
    };
    shared.messaging.open_room(&caller, &room).await?;
    let summary = RoomId::parse(&room)
        .ok()
        .map(|id| crate::store::RoomSummary::of(&id, &caller.user));
    Ok(Json(json!({"room": room, "summary": summary})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    before: Option<i64>,
    limit: Option<i64>,
}

async fn history(
    State(shared): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(room): Path<String>,
    Query(page): Query<Page>,
) -> Result<Response, ServiceError> {
    Messaging::check_access(&caller, &room)?;
    let store = &shared.messaging.store;
    let (messages, more) = store
        .history(&room, page.before, page.limit.unwrap_or(50).clamp(1, 200))
        .await?;
    let read: Vec<_> = store
        .read_markers(&room)
        .await?
        .into_iter()
        .map(|(user, id)| json!({"user": user, "id": id}))
        .collect();
    Ok(
        Json(json!({"room": room, "messages": messages, "more": more, "read": read}))
            .into_response(),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Post {
    body: String,
    #[serde(default)]
    client_id: Option<String>,
}

async fn send(
    State(shared): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(room): Path<String>,
    Json(post): Json<Post>,
) -> Result<Response, ServiceError> {
    shared.messaging.store.seen(&caller.user).await?;
    let message = shared
        .messaging
        .post(&caller, &room, &post.body, post.client_id.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(message)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileName {
    name: String,
}

/// `POST /api/rooms/{room}/files?name=NAME`: the body is the file.
async fn share_file(
    State(shared): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(room): Path<String>,
    Query(file): Query<FileName>,
    body: axum::body::Body,
) -> Result<Response, ServiceError> {
    let limit = usize::try_from(crate::protocol::MAX_ATTACHMENT_BYTES).unwrap_or(usize::MAX);
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| crate::protocol::FileRefusal::Size)?;
    let message = shared
        .messaging
        .share_file(&caller, &room, &file.name, &bytes)
        .await?;
    Ok((StatusCode::CREATED, Json(message)).into_response())
}

/// `GET /api/files/{id}`: the file message `id` shares, to whoever may read
/// its room. A picture is shown in place; anything else is downloaded.
async fn file(
    State(shared): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<i64>,
) -> Result<Response, ServiceError> {
    let (message, content) = shared.messaging.file(&caller, id).await?;
    let attachment = message.attachment.ok_or(ServiceError::NoSuchMessage(id))?;
    let disposition = if attachment.media_type.starts_with("image/") {
        "inline"
    } else {
        "attachment"
    };
    let headers = [
        (header::CONTENT_TYPE, attachment.media_type.clone()),
        (
            header::CONTENT_DISPOSITION,
            format!(
                "{disposition}; filename*=UTF-8''{}",
                crate::protocol::percent_encode(&attachment.name)
            ),
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".into()),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; sandbox".into(),
        ),
        (header::CACHE_CONTROL, "private, max-age=86400".into()),
    ];
    Ok((headers, content.to_vec()).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Edit {
    body: String,
}

async fn edit(
    State(shared): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((room, id)): Path<(String, i64)>,
    Json(edit): Json<Edit>,
) -> Result<Response, ServiceError> {
    let message = shared
        .messaging
        .edit(&caller, &room, id, &edit.body)
        .await?;
    Ok(Json(message).into_response())
}

async fn delete_message(
    State(shared): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((room, id)): Path<(String, i64)>,
) -> Result<Response, ServiceError> {
    let message = shared.messaging.delete_message(&caller, &room, id).await?;
    Ok(Json(message).into_response())
}

#[derive(Deserialize)]
struct SearchQuery {
    q: String,
}

/// `GET /api/search?q=WORDS`: the newest messages of the caller's rooms
/// holding every word.
async fn search(
    State(shared): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<SearchQuery>,
) -> Result<Response, ServiceError> {
    let messages = shared.messaging.search(&caller, &query.q).await?;
    Ok(Json(json!({ "messages": messages })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Read {
    id: i64,
}

async fn read(
    State(shared): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(room): Path<String>,
    Json(read): Json<Read>,
) -> Result<Response, ServiceError> {
    shared.messaging.read(&caller, &room, read.id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Connect {
    since: Option<i64>,
}

async fn websocket(
    State(shared): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(connect): Query<Connect>,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade
        .max_message_size(MAX_FRAME)
        .on_upgrade(move |socket| connection(shared, caller, peer, connect.since, socket))
}

/// Sends every message after `since` that `caller` may see; returns the last id sent.
async fn replay(
    shared: &ApiState,
    caller: &Caller,
    since: i64,
    socket: &mut futures_util::stream::SplitSink<WebSocket, Frame>,
) -> Result<i64, ()> {
    let mut delivered = since;
    loop {
        let messages = shared
            .messaging
            .store
            .since(&caller.user, delivered, 500)
            .await
            .map_err(|error| {
                tracing::error!(%error, "cannot read the backlog");
            })?;
        let Some(last) = messages.last().map(|message| message.id) else {
            return Ok(delivered);
        };
        for message in messages {
            let text =
                serde_json::to_string(&ServerEvent::Message { message }).expect("events serialize");
            socket
                .send(Frame::Text(text.into()))
                .await
                .map_err(|_| ())?;
        }
        delivered = last;
    }
}

/// One live connection: the backlog since the device's cursor (or `since`),
/// then live events, and the client's sends, typing and read markers.
async fn connection(
    shared: Arc<ApiState>,
    caller: Caller,
    peer: SocketAddr,
    since: Option<i64>,
    socket: WebSocket,
) {
    let messaging = &shared.messaging;
    let mut mesh_changes = shared.identities.changes();
    let _ = messaging.store.seen(&caller.user).await;
    let mut deliveries = messaging.hub.subscribe();
    let (mut sink, mut frames) = socket.split();
    let last_id = messaging.store.last_id().await.unwrap_or(0);
    let hello = ServerEvent::Hello {
        user: caller.user.clone(),
        node: caller.node.clone(),
        last_id,
    };
    if sink
        .send(Frame::Text(
            serde_json::to_string(&hello)
                .expect("events serialize")
                .into(),
        ))
        .await
        .is_err()
    {
        return;
    }
    // A device that was here before gets what it missed; a new one starts now.
    let start = match since {
        Some(since) => since,
        None => messaging
            .store
            .cursor(&caller.node)
            .await
            .ok()
            .flatten()
            .unwrap_or(last_id),
    };
    let Ok(mut delivered) = replay(&shared, &caller, start, &mut sink).await else {
        return;
    };
    let mut saved = delivered;
    let mut save_ticks = tokio::time::interval(Duration::from_secs(1));
    let mut closing = shared.closing.clone();
    loop {
        tokio::select! {
            _ = closing.changed() => {
                let _ = sink.send(Frame::Close(None)).await;
                break;
            }
            _ = mesh_changes.changed() => {
                // The mesh changed: is the same device still behind this address?
                if shared.identities.identify(peer.ip()).await.as_ref() != Ok(&caller) {
                    tracing::debug!(address = %peer.ip(), "the device behind a connection changed; closing it");
                    let close = axum::extract::ws::CloseFrame {
                        code: axum::extract::ws::close_code::POLICY,
                        reason: "the device behind this address changed".into(),
                    };
                    let _ = sink.send(Frame::Close(Some(close))).await;
                    break;
                }
            }
            frame = frames.next() => {
                let text = match frame {
                    Some(Ok(Frame::Text(text))) => text,
                    Some(Ok(Frame::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                let outcome = match decode(text.as_str()) {
                    Ok(ClientMessage::Send { room, body, client_id }) => {
                        messaging.post(&caller, &room, &body, client_id.as_deref()).await.map(|_| ())
                    }
                    Ok(ClientMessage::Typing { room }) => messaging.typing(&caller, &room),
                    Ok(ClientMessage::Read { room, id }) => messaging.read(&caller, &room, id).await,
                    Ok(ClientMessage::Sync { since }) => match replay(&shared, &caller, since, &mut sink).await {
                        Ok(last) => {
                            delivered = delivered.max(last);
                            Ok(())
                        }
                        Err(()) => break,
                    },
                    Err(error) => Err(ServiceError::Invalid(error)),
                };
                if let Err(failure) = outcome {
                    let event = ServerEvent::Error { message: failure.to_string() };
                    if sink.send(Frame::Text(serde_json::to_string(&event).expect("events serialize").into())).await.is_err() {
                        break;
                    }
                }
            }
            delivery = deliveries.recv() => match delivery {
                Ok(delivery) => {
                    if !may_access(&caller.user, &delivery.room) {
                        continue;
                    }
                    if let Some(id) = delivery.message_id {
                        if id <= delivered {
                            continue; // already sent with the backlog
                        }
                        delivered = id;
                    }
                    if sink.send(Frame::Text(delivery.json.as_ref().into())).await.is_err() {
                        break;
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "a slow connection resynchronizes");
                    match replay(&shared, &caller, delivered, &mut sink).await {
                        Ok(last) => delivered = last,
                        Err(()) => break,
                    }
                }
                Err(RecvError::Closed) => break,
            },
            _ = save_ticks.tick() => {
                if delivered > saved && messaging.store.set_cursor(&caller.node, delivered).await.is_ok() {
                    saved = delivered;
                }
            }
        }
    }
    if delivered > saved {
        let _ = messaging.store.set_cursor(&caller.node, delivered).await;
    }
}
