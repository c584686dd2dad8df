//! The HTTP edge: create a room, look one up, health, readiness, and the websocket upgrade with its Origin check.
//! Errors become responses in one place, [`ApiError`].

use crate::{
    AppState, auth, client_limit::client_address, conn, room_actor::spawn_room, ws_upgrade::Upgrade,
};
use axum::{
    Json, Router,
    extract::{ConnectInfo, DefaultBodyLimit, Path, Request, State, rejection::JsonRejection},
    http::{Extensions, HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use circle_protocol::{RoomId, Settings, SettingsPatch};
use circle_room::{Room, RoomLimits, has_hidden_characters};
use serde::{Deserialize, Serialize};
use std::{net::SocketAddr, time::Duration};
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
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION]);
    let limits = &state.config.limits;
    let max_body = limits.max_body_bytes;
    let body_timeout = Duration::from_secs(limits.body_timeout_secs);
    let client = (state.config.client.same_origin && !state.config.client.serve_dir.is_empty())
        .then(|| client_router(&state.config.client.serve_dir, &state));
    let api = Router::new()
        .route("/api/rooms", post(create_room))
        .route("/api/rooms/{room}", get(room_info))
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
/// relay does not answer or the embedded TURN relay has stopped, so a load balancer sends newcomers
/// elsewhere.
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
    let ready = !draining && relay != "down" && turn != "down";
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body =
        serde_json::json!({ "ready": ready, "draining": draining, "relay": relay, "turn": turn });
    (status, Json(body)).into_response()
}

/// The web client's static files, with headers that keep a new version from mixing with a cached old
/// one and that let the page talk to this server only.
pub fn client_router(dir: &str, state: &AppState) -> Router {
    let api = state.config.public_url();
    // http → ws, https → wss: the websocket follows the page's scheme.
    let ws = api.replacen("http", "ws", 1);
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
) -> Result<(StatusCode, Json<CreatedRoom>), ApiError> {
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
    if let Some(client) = client_address(peer, &headers)
        && !state.room_creation.check(client)
    {
        return Err(ApiError::RateLimited);
    }
    if state.draining() {
        return Err(ApiError::Draining);
    }
    if state.rooms.len() >= state.config.rooms.max_rooms {
        return Err(ApiError::Full);
    }
    let req = match body {
        Ok(Json(value)) => create_request(value)?,
        // No body at all means "all defaults".
        Err(JsonRejection::MissingJsonContentType(_)) if no_body(&headers) => CreateRoom::default(),
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
    let mut room = Room::new(title.clone(), Settings::default(), limits(&state));
    room.apply_initial_settings(req.settings);
    let settings = room.settings().clone();
    let id = auth::new_room_id();
    let secret = auth::new_secret();
    let handle = spawn_room(&state, id.clone(), title.clone(), room, secret.clone());
    state.rooms.insert(id.clone(), handle);
    info!(room = %crate::redact::room_tag(&id), "room created");
    let client = state.config.client.url.trim_end_matches('/');
    let public = state.config.public_url();
    let ws_base = public.replacen("http", "ws", 1);
    Ok((
        StatusCode::CREATED,
        Json(CreatedRoom {
            join_url: format!("{client}/#room={id}"),
            facilitator_url: format!("{client}/#room={id}&key={secret}"),
            facilitator_secret: secret,
            websocket_url: format!("{ws_base}/ws"),
            room: id,
            title,
            settings,
        }),
    ))
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
fn check_origin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    match headers.get(header::ORIGIN).map(|v| v.to_str()) {
        Some(Ok(origin)) if state.origins.iter().any(|o| o == origin) => Ok(()),
        None if state.config.client.allow_missing_origin => Ok(()),
        // Not allowed, or not even readable.
        _ => Err(ApiError::Origin),
    }
}

fn no_body(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_LENGTH)
        .is_none_or(|v| v.as_bytes() == b"0")
        && headers.get(header::TRANSFER_ENCODING).is_none()
}

fn limits(state: &AppState) -> RoomLimits {
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
}

async fn room_info(
    State(state): State<AppState>,
    Path(room): Path<String>,
) -> Result<Json<RoomPublicInfo>, ApiError> {
    let handle = state
        .rooms
        .get(&RoomId(room))
        .map(|r| r.value().clone())
        .ok_or(ApiError::NotFound)?;
    Ok(Json(RoomPublicInfo {
        room: handle.info.id.clone(),
        title: handle.info.title.clone(),
    }))
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
