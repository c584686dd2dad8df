//! The actor's voice orchestration: each participant's relay peer (fixed at join, so their stream id
//! never changes), their live session and its gate, the room's relay group, and the relay work the
//! room's changes call for. The relay itself (`circle-media`) knows no rooms; this is where rooms meet
//! it.

use super::{MediaRequest, RoomActor, RoomCmd};
use crate::{media::Media, wire::WireError};
use circle_media::{Gate, GroupId, IceCandidate as MediaCandidate, MediaError, MediaEvent, PeerId};
use circle_protocol::{ErrorCode, IceCandidate, ParticipantId, RequestId, ServerMsg};
use std::{collections::HashMap, time::Duration};
use tokio::{sync::mpsc, time::Instant};
use tracing::debug;

/// Fresh media sessions (`media_offer`s) one participant may start in a burst: joining, a couple of
/// reconnects and ICE restarts. Each replaces the session and makes everyone else renegotiate, so it
/// is budgeted per participant (not per connection, which a reconnect would refill).
const OFFER_BURST: u32 = 5;
/// One more `media_offer` may be made this long after the last (the bucket's refill).
const OFFER_REFILL: Duration = Duration::from_secs(6);

/// The room's side of the relay.
pub(super) struct Voice {
    /// The relay group of this room (`None` without a relay).
    group: Option<GroupId>,
    /// Each participant's relay peer id, fixed at join so their stream id never changes.
    media_ids: HashMap<ParticipantId, PeerId>,
    /// Whose peer each relay peer id is.
    by_peer: HashMap<PeerId, ParticipantId>,
    /// Live media sessions, for each participant who has one.
    sessions: HashMap<ParticipantId, Session>,
    /// Relay work the last drain asked for, done (awaiting the relay) before the next input.
    pub(super) todo: Vec<MediaTodo>,
    /// Each participant's `media_offer` budget (see [`OFFER_BURST`]).
    offer_budgets: HashMap<ParticipantId, OfferBudget>,
}

/// One participant's live media session.
struct Session {
    /// The "may be heard" flag the relay reads per packet.
    gate: Gate,
    /// Which relay session it is: the peer id outlives a session, so this is what tells this
    /// session's events from those a replaced session made before it closed (still queued here).
    session: u64,
}

/// Relay work that follows a room change.
pub(super) enum MediaTodo {
    /// Put the participant's peer in the room's group, or out of it (waiting room).
    SyncGroup(ParticipantId),
    /// Close the participant's media session and forget their peer.
    Close(ParticipantId),
}

impl Voice {
    /// The voice side of a new room: its relay group, whose events go to `inbox`.
    pub(super) fn new(media: Option<&Media>, inbox: &mpsc::Sender<RoomCmd>) -> Self {
        let group = media.map(|m| {
            let group = GroupId(m.next_id());
            m.route_group(group, inbox.clone());
            group
        });
        Voice {
            group,
            media_ids: HashMap::new(),
            by_peer: HashMap::new(),
            sessions: HashMap::new(),
            todo: Vec::new(),
            offer_budgets: HashMap::new(),
        }
    }

    /// A relay peer id for someone about to join (`None` without a relay): their stream id.
    pub(super) fn new_peer(media: Option<&Media>) -> Option<PeerId> {
        media.map(|m| PeerId(m.next_id()))
    }

    /// Records the peer id of someone who joined.
    pub(super) fn joined(&mut self, who: &ParticipantId, peer: Option<PeerId>) {
        if let Some(peer) = peer {
            self.media_ids.insert(who.clone(), peer);
            self.by_peer.insert(peer, who.clone());
        }
    }

    /// Sets the gate of `who`'s session, if they have one, to the room's "may be heard" answer.
    pub(super) fn set_gate(&self, who: &ParticipantId, may_be_heard: bool) {
        if let Some(session) = self.sessions.get(who) {
            session.gate.set(may_be_heard);
        }
    }

    /// Live media sessions in this room.
    pub(super) fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Stops routing the group's events (the room is closing).
    pub(super) fn unroute(&self, media: Option<&Media>) {
        if let (Some(media), Some(group)) = (media, self.group) {
            media.unroute_group(group);
        }
    }
}

impl RoomActor {
    /// Carries out a client's voice signalling: the reply to send (`None`: none without an id).
    pub(super) async fn media_request(
        &mut self,
        who: &ParticipantId,
        req: MediaRequest,
        id: Option<RequestId>,
    ) -> Option<ServerMsg> {
        match self.media_call(who, req).await {
            Ok(Some(sdp)) => Some(ServerMsg::MediaAnswer { id, sdp }),
            Ok(None) => id.map(|id| ServerMsg::Ack { id }),
            Err(e) => Some(e.to_msg(id)),
        }
    }

    /// One relay round trip for a client's request: `Some` answer SDP for an offer.
    async fn media_call(
        &mut self,
        who: &ParticipantId,
        req: MediaRequest,
    ) -> Result<Option<String>, WireError> {
        let Some(media) = self.state.media.clone() else {
            return Err(WireError::new(
                ErrorCode::MediaUnavailable,
                "this server does not relay voice",
            ));
        };
        let peer = *self
            .voice
            .media_ids
            .get(who)
            .ok_or_else(|| WireError::new(ErrorCode::SessionGone, "this session has ended"))?;
        let result = match req {
            MediaRequest::Offer(sdp) => return self.start_session(who, &media, peer, sdp).await,
            MediaRequest::Answer(sdp) => media.handle.handle_answer(peer, sdp).await,
            MediaRequest::Candidate(c) => {
                let candidate = MediaCandidate {
                    candidate: c.candidate,
                    sdp_mid: c.sdp_mid,
                    sdp_mline_index: c.sdp_mline_index,
                };
                media.handle.add_remote_candidate(peer, candidate).await
            }
        };
        result
            .map(|()| None)
            .map_err(|e| self.relay_failed(peer, e))
    }

    /// A relay refusal as the client's error; the relay's detail (which may quote SDP) goes to the
    /// debug log only.
    fn relay_failed(&self, peer: PeerId, e: MediaError) -> WireError {
        let room = crate::redact::room_tag(&self.info.id);
        debug!(%room, %peer, error = ?e, "media request failed");
        WireError::new(ErrorCode::MediaFailed, e.to_string())
    }

    /// A client's `media_offer`: a fresh session replaces any it had, in one relay round trip.
    async fn start_session(
        &mut self,
        who: &ParticipantId,
        media: &Media,
        peer: PeerId,
        sdp: String,
    ) -> Result<Option<String>, WireError> {
        let now = Instant::now();
        let budget = self
            .voice
            .offer_budgets
            .entry(who.clone())
            .or_insert_with(|| OfferBudget::new(now));
        if !budget.take(now) {
            crate::conn::count_rate_limited("media_offer");
            return Err(WireError::new(
                ErrorCode::RateLimited,
                "too many new voice sessions; wait a few seconds before offering again",
            ));
        }
        // Whatever happens next, the old session is gone.
        self.voice.sessions.remove(who);
        media.route_peer(peer, self.inbox.clone());
        let group = (!self.room.is_waiting(who))
            .then_some(self.voice.group)
            .flatten();
        let heard = self.room.may_be_heard(who);
        match media.handle.start_session(peer, sdp, group, heard).await {
            Ok(started) => {
                let session = Session {
                    gate: started.gate,
                    session: started.session,
                };
                self.voice.sessions.insert(who.clone(), session);
                Ok(Some(started.answer))
            }
            Err(e) => {
                media.unroute_peer(peer);
                Err(self.relay_failed(peer, e))
            }
        }
    }

    /// Passes the relay's news on to the participants concerned.
    pub(super) fn media_event(&mut self, event: MediaEvent) {
        match event {
            MediaEvent::LocalOffer { peer, session, sdp } => {
                match self.current_session(peer, session) {
                    Some(who) => self.send_one(&who, &ServerMsg::MediaOffer { sdp }),
                    None => {
                        let room = crate::redact::room_tag(&self.info.id);
                        debug!(%room, %peer, "offer of a replaced session dropped");
                    }
                }
            }
            MediaEvent::LocalCandidate { peer, candidate } => {
                if let Some(who) = self.voice.by_peer.get(&peer).cloned() {
                    let candidate = IceCandidate {
                        candidate: candidate.candidate,
                        sdp_mid: candidate.sdp_mid,
                        sdp_mline_index: candidate.sdp_mline_index,
                    };
                    self.send_one(&who, &ServerMsg::MediaCandidate { candidate });
                }
            }
            MediaEvent::PeerState { peer, state } => {
                let room = crate::redact::room_tag(&self.info.id);
                debug!(%room, %peer, ?state, "media connection state");
            }
            MediaEvent::PeerLost { peer, session } => self.media_session_lost(peer, session),
            MediaEvent::ActiveSpeakers { speakers, .. } => {
                let speaking: Vec<ParticipantId> = speakers
                    .iter()
                    .filter_map(|p| self.voice.by_peer.get(p).cloned())
                    .collect();
                self.room.announce_speakers(&speaking);
            }
        }
        self.drain();
    }

    /// Whose live session `session` of `peer` is, if it is still the live one.
    fn current_session(&self, peer: PeerId, session: u64) -> Option<ParticipantId> {
        let who = self.voice.by_peer.get(&peer)?;
        let live = self.voice.sessions.get(who)?;
        (live.session == session).then(|| who.clone())
    }

    /// The relay closed a session on its own (its WebRTC stack failed on it): forget the session and
    /// tell its client, who must start a new one.
    fn media_session_lost(&mut self, peer: PeerId, session: u64) {
        let Some(who) = self.current_session(peer, session) else {
            return;
        };
        self.voice.sessions.remove(&who);
        if let Some(media) = &self.state.media {
            media.unroute_peer(peer);
        }
        let msg = WireError::new(
            ErrorCode::MediaFailed,
            "your voice session failed on the server; send a new media_offer",
        )
        .to_msg(None);
        self.send_one(&who, &msg);
    }

    /// Does the relay work the room's last changes call for.
    pub(super) async fn flush_media(&mut self) {
        let Some(media) = self.state.media.clone() else {
            self.voice.todo.clear();
            return;
        };
        // Admissions go to the relay in one batch (admitting many at once is one round trip and
        // one renegotiation per session), before the closes.
        let mut moves = Vec::new();
        for todo in &self.voice.todo {
            if let MediaTodo::SyncGroup(who) = todo
                && let Some(peer) = self.voice.media_ids.get(who)
                && self.voice.sessions.contains_key(who)
            {
                let group = (!self.room.is_waiting(who))
                    .then_some(self.voice.group)
                    .flatten();
                moves.push((*peer, group));
            }
        }
        if !moves.is_empty() {
            let _ = media.handle.set_groups(moves).await;
        }
        for todo in std::mem::take(&mut self.voice.todo) {
            match todo {
                MediaTodo::SyncGroup(_) => {}
                MediaTodo::Close(who) => {
                    let Some(peer) = self.voice.media_ids.remove(&who) else {
                        continue;
                    };
                    self.voice.by_peer.remove(&peer);
                    self.voice.offer_budgets.remove(&who);
                    if self.voice.sessions.remove(&who).is_some() {
                        media.unroute_peer(peer);
                        let _ = media.handle.close_peer(peer).await;
                    }
                }
            }
        }
    }

    /// Closes every media session of the room (the meeting ended or the server stops). Each close is
    /// sent (DTLS close_notify) before the relay answers, so it is out before the actor exits.
    pub(super) async fn close_all_media(&mut self) {
        let everyone: Vec<ParticipantId> = self.voice.media_ids.keys().cloned().collect();
        self.voice
            .todo
            .extend(everyone.into_iter().map(MediaTodo::Close));
        self.flush_media().await;
    }
}

/// A token bucket of `media_offer`s: [`OFFER_BURST`] tokens, one more every [`OFFER_REFILL`].
struct OfferBudget {
    /// Tokens left at `at`.
    tokens: u32,
    /// When `tokens` was last brought up to date.
    at: Instant,
}

impl OfferBudget {
    fn new(now: Instant) -> Self {
        OfferBudget {
            tokens: OFFER_BURST,
            at: now,
        }
    }

    /// Takes a token if there is one.
    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        let earned = (elapsed / OFFER_REFILL.as_secs_f64()).floor() as u32;
        if earned > 0 {
            self.tokens = (self.tokens + earned).min(OFFER_BURST);
            // Keep the fraction of a token already earned.
            self.at += OFFER_REFILL * earned;
            if self.tokens == OFFER_BURST {
                self.at = now;
            }
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offer_budget_allows_a_burst_then_one_per_refill() {
        let start = Instant::now();
        let mut budget = OfferBudget::new(start);
        for _ in 0..OFFER_BURST {
            assert!(budget.take(start));
        }
        assert!(!budget.take(start));
        assert!(!budget.take(start + OFFER_REFILL / 2));
        assert!(budget.take(start + OFFER_REFILL));
        assert!(!budget.take(start + OFFER_REFILL));
        // A long pause refills the burst, no more.
        let later = start + OFFER_REFILL * 100;
        for _ in 0..OFFER_BURST {
            assert!(budget.take(later));
        }
        assert!(!budget.take(later));
    }
}
