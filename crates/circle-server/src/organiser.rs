//! The organiser API: standing rooms (create, list, read, change, delete, rotate a link) and the
//! live meetings (counts only, never names; end one), under the operator key.
//!
//! Every route checks the page's Origin as `POST /api/rooms` does, then `Authorization: Bearer
//! <rooms.operator_key>`; with no operator key configured the API is off (403
//! `organiser_disabled`). A store that cannot be used answers 503 `storage_unavailable`; live
//! meetings never wait on it.

use crate::{
    AppState,
    auth::secrets_match,
    http::{ApiError, check_origin, no_body},
    room_actor::{RoomCmd, RoomHandle, Rotation, rotate_in_store},
};
use axum::{
    Json, Router,
    extract::{Path, State, rejection::JsonRejection},
    http::{HeaderMap, StatusCode, header},
    routing::{get, post},
};
use circle_protocol::{LinkKind, Millis, Settings, SettingsPatch};
use circle_room::{Room, RoomLimits};
use circle_store::{NewStandingRoom, Schedule, StandingId, StandingPatch, StandingRoom};
use serde::Serialize;
use serde_json::{Map, Value};
use std::sync::atomic::Ordering;
use tracing::info;

/// How early the waiting room opens when a new standing room does not say.
const DEFAULT_EARLY_OPEN_MINS: u32 = 15;

/// The organiser routes, merged into the API router (which adds CORS and the body limits).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/standing", get(list).post(create))
        .route("/api/standing/{id}", get(read).patch(update).delete(delete))
        .route("/api/standing/{id}/rotate", post(rotate))
        .route("/api/meetings", get(meetings))
        .route("/api/meetings/{meeting}/end", post(end_meeting))
}

/// The next (or current) scheduled meeting of a standing room, Unix ms.
#[derive(Debug, Serialize)]
pub struct NextMeeting {
    /// When its waiting room opens.
    pub opens_at: Millis,
    /// When it starts.
    pub starts_at: Millis,
    /// When it is planned to end.
    pub ends_at: Millis,
}

/// A live meeting's head counts.
#[derive(Debug, Serialize)]
pub struct LiveView {
    /// Admitted participants.
    pub participants: usize,
    /// People in the waiting room.
    pub waiting: usize,
}

/// A standing room as the organiser sees it.
#[derive(Debug, Serialize)]
pub struct StandingView {
    /// The organiser id.
    pub id: StandingId,
    /// The title.
    pub title: String,
    /// The settings each meeting starts with.
    pub settings: Settings,
    /// The weekly schedule, or `null`.
    pub schedule: Option<Schedule>,
    /// Minutes before a scheduled start that the waiting room opens.
    pub early_open_mins: u32,
    /// The members' link.
    pub join_url: String,
    /// The websocket address.
    pub websocket_url: String,
    /// The next (or current) scheduled meeting, or `null` without a schedule.
    pub next_meeting: Option<NextMeeting>,
    /// The meeting in progress, or `null`.
    pub live: Option<LiveView>,
}

/// A view with the facilitator link, after creation or a rotation of the facilitator link (the
/// only times the server knows the secret to show).
#[derive(Debug, Serialize)]
struct WithSecret {
    #[serde(flatten)]
    view: StandingView,
    facilitator_url: String,
    facilitator_secret: String,
}

/// One live meeting in `GET /api/meetings`.
#[derive(Debug, Serialize)]
struct MeetingView {
    /// The meeting's tag (a keyed hash of its room id, never the id).
    meeting: String,
    /// The standing room it is of, or `null` for an ad-hoc room.
    standing: Option<StandingId>,
    /// Its title.
    title: String,
    /// Admitted participants.
    participants: usize,
    /// People in the waiting room.
    waiting: usize,
}

/// The schedule's next (or current) meeting at `now`.
pub fn next_meeting(def: &StandingRoom, now: Millis) -> Option<NextMeeting> {
    let schedule = def.schedule.as_ref()?;
    let (starts_at, ends_at) = schedule.current_or_next(now);
    Some(NextMeeting {
        opens_at: schedule.opens_at(now, def.early_open_mins),
        starts_at,
        ends_at,
    })
}

/// The Origin check, then the operator key.
fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    check_origin(state, headers)?;
    let key = &state.config.rooms.operator_key;
    if key.is_empty() {
        return Err(ApiError::OrganiserDisabled);
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !secrets_match(presented, key) {
        return Err(ApiError::Unauthorized);
    }
    Ok(())
}

fn view(state: &AppState, def: StandingRoom) -> StandingView {
    let client = state.config.client.url.trim_end_matches('/');
    let ws_base = state.config.public_url().replacen("http", "ws", 1);
    let live = state.rooms.get(&def.link).map(|h| LiveView {
        participants: h.info.live.participants.load(Ordering::Relaxed),
        waiting: h.info.live.waiting.load(Ordering::Relaxed),
    });
    StandingView {
        next_meeting: next_meeting(&def, state.clock.now_ms()),
        join_url: format!("{client}/#room={}", def.link),
        websocket_url: format!("{ws_base}/ws"),
        live,
        id: def.id,
        title: def.title,
        settings: def.settings,
        schedule: def.schedule,
        early_open_mins: def.early_open_mins,
    }
}

fn with_secret(state: &AppState, def: StandingRoom, secret: String) -> WithSecret {
    let client = state.config.client.url.trim_end_matches('/');
    let facilitator_url = format!("{client}/#room={}&key={secret}", def.link);
    WithSecret {
        view: view(state, def),
        facilitator_url,
        facilitator_secret: secret,
    }
}

/// A JSON object body, or a 400 saying what was wrong. No body at all is an empty object.
fn object_body(
    headers: &HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Map<String, Value>, ApiError> {
    match body {
        Ok(Json(Value::Object(map))) => Ok(map),
        Ok(Json(_)) => Err(ApiError::BadRequest("the body is a JSON object".into())),
        Err(JsonRejection::MissingJsonContentType(_)) if no_body(headers) => Ok(Map::new()),
        Err(e) => Err(ApiError::BadRequest(e.body_text())),
    }
}

/// The fields of a create or change body, each checked; absent fields are `None`.
#[derive(Default)]
struct Fields {
    title: Option<String>,
    settings: Option<SettingsPatch>,
    /// `Some(None)`: `"schedule": null`.
    schedule: Option<Option<Schedule>>,
    early_open_mins: Option<u32>,
}

fn fields(mut map: Map<String, Value>) -> Result<Fields, ApiError> {
    let bad = |m: String| ApiError::BadRequest(m);
    let mut f = Fields::default();
    if let Some(v) = map.remove("title") {
        match v {
            Value::String(s) => f.title = Some(s),
            _ => return Err(bad("`title` is a string".into())),
        }
    }
    if let Some(v) = map.remove("settings") {
        let patch = serde_json::from_value::<SettingsPatch>(v)
            .map_err(|e| bad(format!("`settings`: {e}")))?;
        f.settings = Some(patch);
    }
    if let Some(v) = map.remove("schedule") {
        f.schedule = Some(match v {
            Value::Null => None,
            v => Some(Schedule::parse(v).map_err(|e| bad(format!("`schedule`: {e}")))?),
        });
    }
    if let Some(v) = map.remove("early_open_mins") {
        let mins = v
            .as_u64()
            .and_then(|m| u32::try_from(m).ok())
            .ok_or_else(|| bad("`early_open_mins` is a whole number of minutes".into()))?;
        f.early_open_mins = Some(mins);
    }
    if let Some(unknown) = map.keys().next() {
        return Err(bad(format!(
            "unknown field {unknown:?} (fields: title, settings, schedule, early_open_mins)"
        )));
    }
    Ok(f)
}

/// `base` with a settings patch applied by the room's own rule (e.g. a share time of 0 is none).
fn patched(base: Settings, patch: SettingsPatch) -> Settings {
    let mut room = Room::new(String::new(), base, RoomLimits::default());
    room.apply_initial_settings(patch);
    room.settings().clone()
}

/// The live meeting of a standing room, if one is in progress.
fn live_meeting(state: &AppState, def: &StandingRoom) -> Option<RoomHandle> {
    state.rooms.get(&def.link).map(|h| h.value().clone())
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Vec<StandingView>>, ApiError> {
    authorize(&state, &headers)?;
    let rooms = state.store.list().await?;
    Ok(Json(rooms.into_iter().map(|d| view(&state, d)).collect()))
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<WithSecret>), ApiError> {
    authorize(&state, &headers)?;
    let f = fields(object_body(&headers, body)?)?;
    let title = f
        .title
        .ok_or_else(|| ApiError::BadRequest("`title` is required".into()))?;
    let new = NewStandingRoom {
        title,
        settings: patched(Settings::default(), f.settings.unwrap_or_default()),
        schedule: f.schedule.flatten(),
        early_open_mins: f.early_open_mins.unwrap_or(DEFAULT_EARLY_OPEN_MINS),
    };
    let (def, secret) = state.store.create(new).await?;
    info!("standing room created");
    Ok((
        StatusCode::CREATED,
        Json(with_secret(&state, def, secret.0)),
    ))
}

async fn read(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<StandingView>, ApiError> {
    authorize(&state, &headers)?;
    let def = state.store.get(&StandingId(id)).await?;
    Ok(Json(view(&state, def)))
}

/// Changes apply to the room's next meeting; a meeting in progress keeps its title and settings
/// (its facilitators change those in the meeting).
async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<StandingView>, ApiError> {
    authorize(&state, &headers)?;
    let f = fields(object_body(&headers, body)?)?;
    let id = StandingId(id);
    let settings = match f.settings {
        Some(patch) => Some(patched(state.store.get(&id).await?.settings, patch)),
        None => None,
    };
    let patch = StandingPatch {
        title: f.title,
        settings,
        schedule: f.schedule,
        early_open_mins: f.early_open_mins,
    };
    let def = state.store.update(&id, patch).await?;
    Ok(Json(view(&state, def)))
}

async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    authorize(&state, &headers)?;
    let id = StandingId(id);
    let def = state.store.get(&id).await?;
    state.store.delete(&id).await?;
    if let Some(live) = live_meeting(&state, &def) {
        live.send(RoomCmd::End).await;
    }
    info!("standing room deleted");
    Ok(StatusCode::NO_CONTENT)
}

async fn rotate(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let mut map = object_body(&headers, body)?;
    let link = map
        .remove("link")
        .and_then(|v| serde_json::from_value::<LinkKind>(v).ok())
        .ok_or_else(|| {
            ApiError::BadRequest("the body is {\"link\": \"members\" | \"facilitator\"}".into())
        })?;
    if let Some(unknown) = map.keys().next() {
        return Err(ApiError::BadRequest(format!(
            "unknown field {unknown:?} (the body is {{\"link\": …}})"
        )));
    }
    let id = StandingId(id);
    let before = state.store.get(&id).await?;
    let live = live_meeting(&state, &before);
    let rotation = rotate_in_store(&state.store, &id, link).await?;
    let secret = match &rotation {
        Rotation::Facilitator(_, secret) => Some(secret.clone()),
        Rotation::Members(_) => None,
    };
    // The meeting in progress takes the new link or secret into use at once.
    if let Some(live) = live {
        live.send(RoomCmd::Rotated {
            outcome: Ok(rotation),
            requester: None,
        })
        .await;
    }
    let def = state.store.get(&id).await?;
    info!(?link, "standing room's link rotated");
    let out = match secret {
        Some(secret) => serde_json::to_value(with_secret(&state, def, secret)),
        None => serde_json::to_value(view(&state, def)),
    };
    out.map(Json)
        .map_err(|e| ApiError::BadRequest(format!("cannot show the room: {e}")))
}

async fn meetings(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Vec<MeetingView>>, ApiError> {
    authorize(&state, &headers)?;
    let mut out: Vec<MeetingView> = state
        .rooms
        .iter()
        .map(|h| MeetingView {
            meeting: crate::redact::room_tag(&h.info.id),
            standing: h.info.standing.clone(),
            title: h.info.title.clone(),
            participants: h.info.live.participants.load(Ordering::Relaxed),
            waiting: h.info.live.waiting.load(Ordering::Relaxed),
        })
        .collect();
    out.sort_by(|a, b| a.title.cmp(&b.title).then(a.meeting.cmp(&b.meeting)));
    Ok(Json(out))
}

async fn end_meeting(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(meeting): Path<String>,
) -> Result<StatusCode, ApiError> {
    authorize(&state, &headers)?;
    let handle = state
        .rooms
        .iter()
        .find(|h| crate::redact::room_tag(&h.info.id) == meeting)
        .map(|h| h.value().clone())
        .ok_or(ApiError::StandingNotFound("no live meeting has this tag"))?;
    handle.send(RoomCmd::End).await;
    info!(meeting = %meeting, "meeting ended by the organiser");
    Ok(StatusCode::NO_CONTENT)
}
