//! The HTTP edge: create a room, look one up, health, readiness, and the websocket upgrade with its Origin check.
//! The organiser API's handlers are in `organiser.rs`, routed here. Errors become responses in one
//! place, [`ApiError`].

use crate::{
    AppState, auth,
    client_limit::client_address,
    conn, organiser,
    room_actor::{FacilitatorKey, spawn_room},
    standing,
    wire::WireError,
    ws_upgrade::Upgrade,
};
use axum::{
    Json, Router,
    extract::{ConnectInfo, DefaultBodyLimit, Path, Request, State, rejection::JsonRejection},
    http::{Extensions, HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use circle_protocol::ErrorCode;
use circle_protocol::{RoomId, Settings, SettingsPatch};
use circle_room::{Room, RoomLimits, has_hidden_characters};
use circle_store::StoreError;
use serde::{Deserialize, Serialize};
use std::{net::SocketAddr, sync::atomic::Ordering, time::Duration};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    limit::RequestBodyLimitLayer,
    services::ServeDir,
    set_header::SetResponseHeaderLayer,
    timeout::RequestBodyTimeoutLayer,
};
use tracing::info;

/// Longest room title, in characters.
const MAX_TITLE_CHARS: usize = 80;

/// Why an HTTP request failed; turned into a JSON error response in one place.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Room creation needs the operator key and it was missing or wrong.
    #[error("creating a room needs the operator key")]
    Unauthorized,
    /// The request body was not acceptable.
    #[error("{0}")]
    BadRequest(String),
    /// No such room.
    #[error("there is no meeting at this link")]
    NotFound,
    /// The server holds as many rooms as it is configured for.
    #[error("this server has no room for another meeting right now")]
    Full,
    /// The page's origin is not allowed to connect.
    #[error("this page is not allowed to connect to this server")]
    Origin,
    /// Too many websockets are open that have not joined yet.
    #[error("this server has no room for another connection right now")]
    Busy,
    /// The server is draining for a restart and starts no new meeting.
    #[error("this server is about to restart and starts no new meeting; try again in a minute")]
    Draining,
    /// This client created too many rooms lately.
    #[error("too many rooms created from here lately; try again in a minute")]
    RateLimited,
    /// The organiser API is off: no operator key is configured.
    #[error(
        "the organiser API is off on this server: set rooms.operator_key (CIRCLE_ROOMS__OPERATOR_KEY) to turn it on"
    )]
    OrganiserDisabled,
    /// No standing room has this organiser id (or no meeting has this tag).
    #[error("{0}")]
    StandingNotFound(&'static str),
    /// Another standing room already has this title.
    #[error("another standing room already has this title (titles are compared ignoring case)")]
    DuplicateTitle,
    /// The store of standing rooms cannot be used right now; the message says why.
    #[error("{0}")]
    Storage(String),
    /// Cluster mode: this node cannot reach the registry (Redis), so it starts no meeting.
    #[error("this server cannot reach the rest of its cluster right now; try again in a moment")]
    ClusterUnavailable,
}

/// The message for a store that cannot be used: what is wrong (locked, unreachable, full) and
/// that meetings in progress are not affected.
fn storage_message(e: &StoreError) -> String {
    let what = match e {
        StoreError::Full(why) => format!("the standing rooms' database is full ({why})"),
        StoreError::Unavailable(why) => {
            format!("the standing rooms' database is locked or unreachable ({why})")
        }
        other => format!("the standing rooms' database failed ({other})"),
    };
    format!("{what}; meetings in progress go on; try again in a minute")
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::StandingNotFound("no standing room has this id"),
            StoreError::DuplicateTitle => ApiError::DuplicateTitle,
            StoreError::Invalid(why) => ApiError::BadRequest(why),
            other => {
                tracing::warn!(error = %other, "standing rooms' store failed");
                ApiError::Storage(storage_message(&other))
            }
        }
    }
}

/// A store failure on the websocket: `storage_unavailable`, saying why.
pub fn storage_wire_error(e: &StoreError) -> WireError {
    tracing::warn!(error = %e, "standing rooms' store failed");
    WireError::new(ErrorCode::StorageUnavailable, storage_message(e))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "room_not_found"),
            ApiError::Full => (StatusCode::SERVICE_UNAVAILABLE, "server_full"),
            ApiError::Origin => (StatusCode::FORBIDDEN, "origin_not_allowed"),
            ApiError::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Draining => (StatusCode::SERVICE_UNAVAILABLE, "server_draining"),
            ApiError::Busy => (StatusCode::SERVICE_UNAVAILABLE, "server_busy"),
            ApiError::OrganiserDisabled => (StatusCode::FORBIDDEN, "organiser_disabled"),
            ApiError::StandingNotFound(_) => (StatusCode::NOT_FOUND, "standing_room_not_found"),
            ApiError::DuplicateTitle => (StatusCode::CONFLICT, "duplicate_title"),
            ApiError::Storage(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable"),
            ApiError::ClusterUnavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "cluster_unavailable")
            }
        };
        let body = serde_json::json!({ "code": code, "message": self.to_string() });
        (status, Json(body)).into_response()
    }
}

/// The routes, with CORS for the configured client origins, and the request body limits: a body
/// announced larger than `limits.max_body_bytes` gets 413 before any of it is read, and a body that
/// stalls longer than `limits.body_timeout_secs` fails the request. With `client.same_origin`, every
/// other path is the web client's static files.
pub fn router(state: AppState) -> Router {
    let origins: Vec<HeaderValue> = state
        .origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION]);
    let limits = &state.config.limits;
    let max_body = limits.max_body_bytes;
    let body_timeout = Duration::from_secs(limits.body_timeout_secs);
    let client = (state.config.client.same_origin && !state.config.client.serve_dir.is_empty())
        .then(|| client_router(&state.config.client.serve_dir, &state));
    let api = Router::new()
        .route("/api/rooms", post(create_room))
        .route("/api/rooms/{room}", get(room_info))
        .merge(organiser::routes())
        .route("/healthz", get(health))
        .route("/readyz", get(ready))
        .route("/ws", get(websocket))
        .layer(cors)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(RequestBodyTimeoutLayer::new(body_timeout))
        .layer(RequestBodyLimitLayer::new(max_body))
        .with_state(state);
    match client {
        Some(client) => api.fallback_service(client),
        None => api,
    }
}

/// `GET /readyz`: 200 while the server takes new meetings; 503 while it drains or when the voice
/// relay does not answer or the embedded TURN relay has stopped (or, in cluster mode, Redis cannot
/// be reached), so a load balancer sends newcomers elsewhere.
async fn ready(State(state): State<AppState>) -> Response {
    let draining = state.draining();
    let relay = match &state.media {
        None => "off",
        Some(_) if state.relay_alive().await => "alive",
        Some(_) => "down",
    };
    let turn = match state.turn.as_deref().and_then(|t| t.relay_healthy()) {
        None => "off",
        Some(true) => "alive",
        Some(false) => "down",
    };
    let cluster = match &state.cluster {
        None => "off",
        Some(c) if c.reachable() => "up",
        Some(_) => "down",
    };
    let ready = !draining && relay != "down" && turn != "down" && cluster != "down";
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body =
        serde_json::json!({ "ready": ready, "draining": draining, "relay": relay, "turn": turn });
    if state.cluster.is_some() {
        body["cluster"] = cluster.into();
    }
    (status, Json(body)).into_response()
}

/// The web client's static files, with headers that keep a new version from mixing with a cached old
/// one and that let the page talk to this server only.
pub fn client_router(dir: &str, state: &AppState) -> Router {
    let api = state.config.public_url();
    // http → ws, https → wss: the websocket follows the page's scheme.
    let mut ws = api.replacen("http", "ws", 1);
    if state.cluster.is_some() {
        // The other nodes' URLs are known only at run time (from the registry), and a meeting may be
        // on any of them: any host on the websocket scheme (`wss:` behind TLS). The client follows
        // only URLs a node of the cluster sent it (web-client/session.js).
        ws = format!(
            "{ws} {}",
            if api.starts_with("https") {
                "wss:"
            } else {
                "ws:"
            }
        );
    }
    // Scripts come only from this folder; styles may also be inline (the views set a few style
    // attributes, e.g. progress bars), which risks no script execution.
    let csp = format!(
        "default-src 'self'; connect-src 'self' {api} {ws}; media-src 'self' blob:; \
         img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; object-src 'none'; \
         base-uri 'none'; frame-ancestors 'none'"
    );
    // `Config::validate` refused URLs a header cannot carry; were one to slip through anyway, the
    // page gets the strictest policy rather than none.
    let header_layer = |name, value: &str| {
        SetResponseHeaderLayer::overriding(
            name,
            HeaderValue::from_str(value)
                .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'")),
        )
    };
    Router::new()
        .fallback_service(ServeDir::new(dir))
        .layer(header_layer(header::CACHE_CONTROL, "no-cache"))
        .layer(header_layer(header::CONTENT_SECURITY_POLICY, &csp))
        .layer(header_layer(header::REFERRER_POLICY, "no-referrer"))
        .layer(header_layer(
            header::HeaderName::from_static("x-content-type-options"),
            "nosniff",
        ))
}

/// `POST /api/rooms` body; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct CreateRoom {
    /// Shown to everyone, the waiting room included.
    title: Option<String>,
    /// Initial settings; absent fields take the defaults.
    settings: SettingsPatch,
}

/// `POST /api/rooms` reply.
#[derive(Debug, Serialize)]
struct CreatedRoom {
    room: RoomId,
    title: String,
    join_url: String,
    facilitator_url: String,
    facilitator_secret: String,
    websocket_url: String,
    settings: Settings,
}

async fn create_room(
    State(state): State<AppState>,
    headers: HeaderMap,
    extensions: Extensions,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    // A page on another site could otherwise make its visitors' browsers create rooms here.
    check_origin(&state, &headers)?;
    let key = &state.config.rooms.operator_key;
    if !key.is_empty() {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !auth::secrets_match(presented, key) {
            return Err(ApiError::Unauthorized);
        }
    }
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr);
    // A request another node of the cluster forwarded was counted there, against its sender.
    let forwarded = state.cluster.as_ref().is_some_and(|c| {
        c.is_forwarded(
            headers
                .get(crate::cluster::FORWARDED_HEADER)
                .and_then(|v| v.to_str().ok()),
        )
    });
    if !forwarded
        && let Some(client) = client_address(peer, &headers)
        && !state.room_creation.check(client)
    {
        return Err(ApiError::RateLimited);
    }
    if state.cluster.is_none() {
        can_hold_another(&state)?;
    }
    let (req, value) = match body {
        Ok(Json(value)) => (create_request(value.clone())?, Some(value)),
        // No body at all means "all defaults".
        Err(JsonRejection::MissingJsonContentType(_)) if no_body(&headers) => {
            (CreateRoom::default(), None)
        }
        Err(e) => return Err(ApiError::BadRequest(e.body_text())),
    };
    let title = req.title.as_deref().unwrap_or("").trim().to_owned();
    let title = if title.is_empty() {
        "Circle meeting".to_owned()
    } else {
        title
    };
    if title.chars().count() > MAX_TITLE_CHARS || has_hidden_characters(&title) {
        return Err(ApiError::BadRequest(format!(
            "a title is at most {MAX_TITLE_CHARS} characters, with no control or invisible characters"
        )));
    }
    if let Some(placed) = place_room(&state, forwarded, &headers, value).await? {
        return Ok(placed);
    }
    if state.cluster.is_some() {
        // A draining or full node of a cluster still places meetings on the others (above).
        can_hold_another(&state)?;
    }
    let mut room = Room::new(title.clone(), Settings::default(), limits(&state));
    room.apply_initial_settings(req.settings);
    let settings = room.settings().clone();
    let id = auth::new_room_id();
    let secret = auth::new_secret();
    let handle = spawn_room(
        &state,
        id.clone(),
        title.clone(),
        room,
        FacilitatorKey::Plain(secret.clone()),
        None,
    );
    state.rooms.insert(id.clone(), handle);
    info!(room = %crate::redact::room_tag(&id), "room created");
    if let Some(cluster) = &state.cluster
        && let Err(e) = cluster.publish_new(&state, &id).await
    {
        // The registry task records it when Redis answers again.
        tracing::warn!(error = %e, "could not record a new meeting in the cluster registry");
    }
    let client = state.config.client.url.trim_end_matches('/');
    Ok((
        StatusCode::CREATED,
        Json(CreatedRoom {
            join_url: format!("{client}/#room={id}"),
            facilitator_url: format!("{client}/#room={id}&key={secret}"),
            facilitator_secret: secret,
            websocket_url: own_websocket_url(&state),
            room: id,
            title,
            settings,
        }),
    )
        .into_response())
}

/// Refuses a new meeting on a server that drains or holds `rooms.max_rooms` already.
fn can_hold_another(state: &AppState) -> Result<(), ApiError> {
    if state.draining() {
        return Err(ApiError::Draining);
    }
    if state.rooms.len() >= state.config.rooms.max_rooms {
        return Err(ApiError::Full);
    }
    Ok(())
}

/// This node's websocket URL: the cluster's view of it in cluster mode, else the public URL's.
fn own_websocket_url(state: &AppState) -> String {
    match &state.cluster {
        Some(c) => c.ws_url.clone(),
        None => format!("{}/ws", state.config.public_url().replacen("http", "ws", 1)),
    }
}

/// Cluster mode: sends a new meeting to the least loaded node. `Some(answer)`: that node created it
/// and this is its answer; `None`: create it here (not in cluster mode, placed here, forwarded here
/// by another node, or the chosen node did not answer).
async fn place_room(
    state: &AppState,
    forwarded: bool,
    headers: &HeaderMap,
    body: Option<serde_json::Value>,
) -> Result<Option<Response>, ApiError> {
    let Some(cluster) = &state.cluster else {
        return Ok(None);
    };
    if !cluster.reachable() {
        return Err(ApiError::ClusterUnavailable);
    }
    if forwarded {
        return Ok(None);
    }
    let target = match cluster.pick(state).await {
        Ok(Some(node)) if node.id != cluster.node_id => node,
        Ok(_) => return Ok(None),
        Err(e) => {
            tracing::warn!(error = %e, "cluster registry lookup failed");
            return Err(ApiError::ClusterUnavailable);
        }
    };
    Ok(cluster
        .forward(&target, reqwest::Method::POST, "/api/rooms", headers, body)
        .await)
}

/// The body of `POST /api/rooms`: a JSON object (serde would also read a struct from an array, which
/// the contract does not allow).
fn create_request(value: serde_json::Value) -> Result<CreateRoom, ApiError> {
    if !value.is_object() {
        return Err(ApiError::BadRequest(
            "the body is a JSON object: {\"title\": …, \"settings\": {…}}".into(),
        ));
    }
    serde_json::from_value(value).map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// Refuses a request from a page whose origin may not use this server. A request with no `Origin`
/// (not from a browser page) passes when `allow_missing_origin` is on.
pub(crate) fn check_origin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    match headers.get(header::ORIGIN).map(|v| v.to_str()) {
        Some(Ok(origin)) if state.origins.iter().any(|o| o == origin) => Ok(()),
        None if state.config.client.allow_missing_origin => Ok(()),
        // Not allowed, or not even readable.
        _ => Err(ApiError::Origin),
    }
}

pub(crate) fn no_body(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_LENGTH)
        .is_none_or(|v| v.as_bytes() == b"0")
        && headers.get(header::TRANSFER_ENCODING).is_none()
}

/// The limits every new room gets from the configuration.
pub(crate) fn limits(state: &AppState) -> RoomLimits {
    let r = &state.config.rooms;
    RoomLimits {
        max_participants: r.max_participants,
        chat_history: r.chat_history,
        grace_ms: r.grace_secs * 1000,
    }
}

/// What the join page may know before joining.
#[derive(Debug, Serialize)]
struct RoomPublicInfo {
    room: RoomId,
    title: String,
    /// A standing room (its link works every week).
    standing: bool,
    /// While the meeting (live or next) has not opened: when it opens.
    opens_at: Option<u64>,
    /// A standing room's next (or current) scheduled meeting, if it has a schedule.
    next_meeting: Option<organiser::NextMeeting>,
    /// New members cannot join now: the meeting is locked (a standing room's settings may lock
    /// its next meeting from the start).
    locked: bool,
    /// New members cannot join now: the meeting holds as many people as it may.
    full: bool,
    /// Where to join: the websocket URL of the node that holds the meeting (in cluster mode; this
    /// node's when it holds it, or when nobody does yet).
    websocket_url: String,
}

async fn room_info(
    State(state): State<AppState>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let link = RoomId(room);
    let live = state.rooms.get(&link).map(|r| r.value().clone());
    if live.is_none()
        && let Some(answer) = crate::cluster::info_elsewhere(&state, &link, &headers).await?
    {
        return Ok(answer);
    }
    if let Some(handle) = &live
        && handle.info.standing.is_none()
    {
        return Ok(Json(RoomPublicInfo {
            room: link,
            title: handle.info.title.clone(),
            standing: false,
            opens_at: None,
            next_meeting: None,
            locked: handle.info.live.locked.load(Ordering::Relaxed),
            full: handle.info.live.full.load(Ordering::Relaxed),
            websocket_url: own_websocket_url(&state),
        })
        .into_response());
    }
    let def = state
        .store
        .by_link(&link)
        .await?
        .ok_or(ApiError::NotFound)?;
    let now = state.clock.now_ms();
    let (opens_at, locked, full) = match &live {
        Some(handle) => (
            handle.info.live.opens_at(),
            handle.info.live.locked.load(Ordering::Relaxed),
            handle.info.live.full.load(Ordering::Relaxed),
        ),
        // Its next meeting starts with the room's own settings, and empty.
        None => (standing::opening(&def, now), def.settings.locked, false),
    };
    Ok(Json(RoomPublicInfo {
        room: link,
        title: live.map_or(def.title.clone(), |h| h.info.title.clone()),
        standing: true,
        opens_at,
        next_meeting: organiser::next_meeting(&def, now),
        locked,
        full,
        websocket_url: own_websocket_url(&state),
    })
    .into_response())
}

async fn health(State(state): State<AppState>) -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok", "rooms": state.rooms.len() }))
}

async fn websocket(State(state): State<AppState>, mut req: Request) -> Result<Response, ApiError> {
    check_origin(&state, req.headers())?;
    let upgrade = Upgrade::from_request(&mut req)?;
    let unjoined = state
        .unjoined
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::Busy)?;
    let max = state.config.limits.max_ws_message_bytes;
    let config = WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
        // Small buffers: an idle member should cost kilobytes, not the 128 KiB defaults.
        .read_buffer_size(1024)
        .write_buffer_size(0);
    let tasks = state.tasks.clone();
    Ok(upgrade.respond(config, move |socket| {
        tasks.track_future(conn::run(socket, state, unjoined))
    }))
}
