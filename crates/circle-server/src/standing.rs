//! Standing rooms' meetings at the edge: a link that is not in the live directory may be a standing
//! room's, whose next meeting starts when someone arrives.
//!
//! The store is asked only on a directory miss, so a meeting in progress never waits on the
//! database; two joins that race to start the same meeting get one actor (the directory's entry
//! API decides who inserts). What the meeting then does (opening time, carry-over, rotation) is the
//! room actor's and `circle-room`'s business.

use crate::{
    AppState,
    http::limits,
    room_actor::{FacilitatorKey, RoomHandle, spawn_room},
};
use circle_protocol::{Millis, RoomId};
use circle_room::Room;
use circle_store::{StandingRoom, StoreError};
use dashmap::mapref::entry::Entry;
use tracing::info;

/// Why a standing room's meeting could not be found or started.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The store cannot be read right now.
    #[error(transparent)]
    Storage(#[from] StoreError),
    /// The server is draining: it starts no new meeting.
    #[error("the server is draining")]
    Draining,
    /// Cluster mode: the meeting is held by another node, or the registry cannot tell.
    #[error("the meeting is elsewhere in the cluster")]
    Elsewhere(crate::wire::WireError),
}

/// The live meeting at `link`: the one in the directory, or, for a standing room's link, a new
/// meeting started from its stored definition. `None`: no meeting and no standing room here.
pub async fn find_or_start(
    state: &AppState,
    link: &RoomId,
) -> Result<Option<RoomHandle>, LookupError> {
    if let Some(live) = state.rooms.get(link).map(|r| r.value().clone()) {
        return Ok(Some(live));
    }
    let Some(def) = state.store.by_link(link).await? else {
        return Ok(None);
    };
    if state.draining() {
        return Err(elsewhere_while_draining(state).await);
    }
    claim(state, link).await?;
    // Another join may have started it while the store answered: the entry decides.
    let handle = match state.rooms.entry(link.clone()) {
        Entry::Occupied(live) => live.get().clone(),
        Entry::Vacant(slot) => {
            let handle = start_meeting(state, &def);
            slot.insert(handle.clone());
            handle
        }
    };
    Ok(Some(handle))
}

/// Cluster mode: claims the meeting at `link` for this node before starting it, so two nodes
/// never start the same meeting.
async fn claim(state: &AppState, link: &RoomId) -> Result<(), LookupError> {
    use crate::cluster::{Owner, unavailable};
    let Some(cluster) = &state.cluster else {
        return Ok(());
    };
    if !cluster.reachable() {
        return Err(LookupError::Elsewhere(unavailable()));
    }
    match cluster.claim(link).await {
        Ok(Owner::Here) => Ok(()),
        Ok(Owner::There(node)) => Err(LookupError::Elsewhere(crate::wire::WireError::wrong_node(
            node.ws_url,
        ))),
        Ok(Owner::Lapsed | Owner::Nobody) => Err(LookupError::Elsewhere(unavailable())),
        Err(e) => {
            tracing::warn!(error = %e, "cluster registry claim failed");
            Err(LookupError::Elsewhere(unavailable()))
        }
    }
}

/// A draining node starts no meeting; in cluster mode it sends the first member to the least
/// loaded node that takes meetings (which claims it), so a rolling upgrade does not turn them away.
async fn elsewhere_while_draining(state: &AppState) -> LookupError {
    let Some(cluster) = &state.cluster else {
        return LookupError::Draining;
    };
    match cluster.pick(state).await {
        Ok(Some(node)) if node.id != cluster.node_id => {
            LookupError::Elsewhere(crate::wire::WireError::wrong_node(node.ws_url))
        }
        _ => LookupError::Draining,
    }
}

/// The live meeting a resume token for `link` belongs to: under the link now, or under a link
/// rotated away during that meeting.
pub fn find_for_resume(state: &AppState, link: &RoomId) -> Option<RoomHandle> {
    state
        .rooms
        .get(link)
        .or_else(|| state.resume_aliases.get(link))
        .map(|r| r.value().clone())
}

/// When a meeting starting now opens: the schedule's opening time if it is still to come.
pub fn opening(def: &StandingRoom, now: Millis) -> Option<Millis> {
    let schedule = def.schedule.as_ref()?;
    let at = schedule.opens_at(now, def.early_open_mins);
    (at > now).then_some(at)
}

/// Starts a standing room's meeting (its actor); the caller puts the handle in the directory.
fn start_meeting(state: &AppState, def: &StandingRoom) -> RoomHandle {
    let mut room = Room::new(def.title.clone(), def.settings.clone(), limits(state));
    room.set_standing(opening(def, state.clock.now_ms()));
    let handle = spawn_room(
        state,
        def.link.clone(),
        def.title.clone(),
        room,
        FacilitatorKey::Hashed(def.secret.clone()),
        Some(def.id.clone()),
    );
    info!(room = %crate::redact::room_tag(&def.link), "standing room's meeting started");
    handle
}
