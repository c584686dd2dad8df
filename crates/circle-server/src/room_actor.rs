//! The room actor: one task owns one [`Room`] state machine and the outbound queues of the
//! connections joined to it. Connections talk to it through a cloneable [`RoomHandle`] over a bounded
//! channel; it answers each request, fans the room's outputs out (serialising each message once), fires
//! the room's timers, and drives the voice relay: each participant's media session, its group (none in
//! the waiting room), and its gate, which the relay reads per packet and the actor sets from the room's
//! "may be heard" answer.

use crate::{
    AppState,
    auth::{new_participant_id, secrets_match},
    conn::{Conn, Outbound},
    wire::{WireError, encode},
};
use circle_media::{Gate, GroupId, IceCandidate as MediaCandidate, MediaError, MediaEvent, PeerId};
use circle_protocol::{
    ChatView, ErrorCode, IceCandidate, LeaveReason, PROTOCOL_VERSION, ParticipantId, RequestId,
    Role, RoomId, ServerMsg,
};
use circle_room::{Audience, Command, JoinRequest, Output, Room};
use std::{collections::HashMap, sync::Arc, time::Duration};
use tokio::{
    sync::{mpsc, oneshot},
    time::{Instant, sleep_until},
};
use tracing::{debug, info, warn};

/// Participants per frame when a snapshot is sent in pieces. A websocket connection keeps a write
/// buffer as large as the largest frame it ever sent, for as long as it lives: one `joined` listing a
/// thousand people would cost every idle member about 100 KiB, so large snapshots go out in pieces
/// of a couple of kilobytes.
const PARTICIPANTS_PER_FRAME: usize = 8;
/// Chat text bytes per frame when a snapshot's history is sent in pieces (one message always fits).
const CHAT_BYTES_PER_FRAME: usize = 1500;

/// Fresh media sessions (`media_offer`s) one participant may start in a burst: joining, a couple of
/// reconnects and ICE restarts. Each replaces the session and makes everyone else renegotiate, so it
/// is budgeted per participant (not per connection, which a reconnect would refill).
const OFFER_BURST: u32 = 5;
/// One more `media_offer` may be made this long after the last (the bucket's refill).
const OFFER_REFILL: Duration = Duration::from_secs(6);

/// Requests queued for one room, from all its connections. When full, a connection's reader waits
/// (its own client is slowed, nobody else's); per-connection rate limits keep the total bounded.
const ROOM_INBOX: usize = 1024;

/// A request to a room actor.
pub enum RoomCmd {
    /// A new participant; the actor sends `joined` on `conn` itself and replies with the new id.
    Join {
        /// The validated join.
        req: JoinRequest,
        /// The facilitator secret, if one was presented.
        secret: Option<String>,
        /// The joiner's connection.
        conn: Conn,
        /// Echoed in `joined`.
        request_id: Option<RequestId>,
        /// The participant id, or why the join was refused.
        reply: oneshot::Sender<Result<ParticipantId, WireError>>,
    },
    /// A returning participant whose token the edge already checked.
    Resume {
        /// The session from the token.
        who: ParticipantId,
        /// The new connection.
        conn: Conn,
        /// Echoed in `joined`.
        request_id: Option<RequestId>,
        /// Ok, or why the resume was refused.
        reply: oneshot::Sender<Result<(), WireError>>,
    },
    /// A request from a joined participant.
    Request {
        /// Who sent it.
        from: ParticipantId,
        /// On which connection (a replaced connection's late requests are ignored).
        conn_id: u64,
        /// What they asked.
        cmd: Command,
        /// Echoed in the `ack` or `error`.
        request_id: Option<RequestId>,
    },
    /// A connection ended.
    Disconnected {
        /// Whose.
        who: ParticipantId,
        /// Which one (only the current connection's end counts).
        conn_id: u64,
    },
    /// A voice signalling request from a joined participant.
    Media {
        /// Who sent it.
        from: ParticipantId,
        /// On which connection.
        conn_id: u64,
        /// What they asked.
        req: MediaRequest,
        /// Echoed in the reply.
        request_id: Option<RequestId>,
    },
    /// Something the voice relay reported about one of this room's peers or its group.
    MediaEvent(MediaEvent),
    /// Whether the room lets this participant be heard now (the answer the actor puts in their
    /// gate). Only tests ask; nothing keeps a copy for them.
    MayBeHeard {
        /// Who.
        who: ParticipantId,
        /// The room's answer (`false` for someone it does not know).
        reply: oneshot::Sender<bool>,
    },
}

/// Voice signalling from a client.
pub enum MediaRequest {
    /// Start a fresh media session with this offer.
    Offer(String),
    /// The answer to the relay's renegotiation offer.
    Answer(String),
    /// A trickled ICE candidate.
    Candidate(IceCandidate),
}

/// What anyone may know about a room without joining it.
#[derive(Clone, Debug)]
pub struct RoomInfo {
    /// The room's id.
    pub id: RoomId,
    /// The room's title.
    pub title: String,
}

/// A cloneable way to reach a room actor, kept in the server's directory.
#[derive(Clone)]
pub struct RoomHandle {
    /// The room's fixed facts.
    pub info: Arc<RoomInfo>,
    /// The actor's inbox.
    tx: mpsc::Sender<RoomCmd>,
}

impl RoomHandle {
    /// Sends a request to the actor; `false` if the room has ended.
    pub async fn send(&self, cmd: RoomCmd) -> bool {
        self.tx.send(cmd).await.is_ok()
    }

    /// May this participant's audio be forwarded now? Asks the actor (for tests: the relay reads each
    /// session's gate, which the actor sets from the same answer). `false` if the room has ended.
    pub async fn may_be_heard(&self, who: &ParticipantId) -> bool {
        let (reply, answer) = oneshot::channel();
        let asked = RoomCmd::MayBeHeard {
            who: who.clone(),
            reply,
        };
        self.send(asked).await && answer.await.unwrap_or(false)
    }
}

/// Creates a room and starts its actor; the caller puts the handle in the directory.
pub fn spawn_room(
    state: &AppState,
    id: RoomId,
    title: String,
    room: Room,
    secret: String,
) -> RoomHandle {
    let (tx, rx) = mpsc::channel(ROOM_INBOX);
    let group = state.media.as_ref().map(|m| {
        let group = GroupId(m.next_id());
        m.route_group(group, tx.clone());
        group
    });
    let info = Arc::new(RoomInfo { id, title });
    let handle = RoomHandle {
        info: info.clone(),
        tx,
    };
    let actor = RoomActor {
        state: state.clone(),
        info,
        room,
        secret,
        conns: HashMap::new(),
        inbox: handle.tx.clone(),
        group,
        media_ids: HashMap::new(),
        by_peer: HashMap::new(),
        sessions: HashMap::new(),
        media_todo: Vec::new(),
        offer_budgets: HashMap::new(),
    };
    state.tasks.spawn(actor.run(rx));
    handle
}

/// The task that owns one room.
struct RoomActor {
    /// Server-wide state: clock, keys, config, directory, shutdown.
    state: AppState,
    /// The room's fixed facts.
    info: Arc<RoomInfo>,
    /// The state machine.
    room: Room,
    /// The facilitator secret.
    secret: String,
    /// The live connection of each participant who has one.
    conns: HashMap<ParticipantId, Conn>,
    /// This actor's own inbox, given to the relay's event router for this room's peers.
    inbox: mpsc::Sender<RoomCmd>,
    /// The relay group of this room (`None` without a relay).
    group: Option<GroupId>,
    /// Each participant's relay peer id, fixed at join so their stream id never changes.
    media_ids: HashMap<ParticipantId, PeerId>,
    /// Whose peer each relay peer id is.
    by_peer: HashMap<PeerId, ParticipantId>,
    /// Live media sessions, for each participant who has one.
    sessions: HashMap<ParticipantId, Session>,
    /// Relay work the last drain asked for, done (awaiting the relay) before the next input.
    media_todo: Vec<MediaTodo>,
    /// Each participant's `media_offer` budget (see [`OFFER_BURST`]).
    offer_budgets: HashMap<ParticipantId, OfferBudget>,
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
        let earned =
            now.saturating_duration_since(self.at).as_secs_f64() / OFFER_REFILL.as_secs_f64();
        let earned = earned.floor() as u32;
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

/// One participant's live media session.
struct Session {
    /// The "may be heard" flag the relay reads per packet.
    gate: Gate,
    /// The relay's ICE username fragment in this session's SDPs (from its answer). The peer id
    /// outlives a session, so this is what tells the session's renegotiation offers from those a
    /// replaced session made before it closed, still queued here: those are dropped.
    ufrag: Option<String>,
}

/// Relay work that follows a room change.
enum MediaTodo {
    /// Put the participant's peer in the room's group, or out of it (waiting room).
    SyncGroup(ParticipantId),
    /// Close the participant's media session and forget their peer.
    Close(ParticipantId),
}

impl RoomActor {
    async fn run(mut self, mut rx: mpsc::Receiver<RoomCmd>) {
        let ttl = Duration::from_secs(self.state.config.rooms.empty_room_ttl_secs);
        let mut empty_since = Some(Instant::now());
        let shutdown = self.state.shutdown.clone();
        loop {
            let timer = self
                .room
                .poll_timeout()
                .map(|t| self.state.clock.instant_at(t));
            let forget_at = empty_since.map(|t| t + ttl);
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd).await,
                    None => break,
                },
                _ = sleep_until(timer.unwrap_or_else(far_future)), if timer.is_some() => {
                    self.room.handle_timeout(self.state.clock.now_ms());
                    self.drain();
                }
                _ = sleep_until(forget_at.unwrap_or_else(far_future)), if forget_at.is_some() => {
                    debug!(room = %crate::redact::room_tag(&self.info.id), "empty room forgotten");
                    self.room.end();
                    self.drain();
                }
                _ = shutdown.cancelled() => {
                    self.shut_down();
                    self.close_all_media().await;
                    break;
                }
            }
            self.flush_media().await;
            if self.room.is_ended() {
                break;
            }
            empty_since = match (self.room.is_empty(), empty_since) {
                (true, None) => Some(Instant::now()),
                (true, since) => since,
                (false, _) => None,
            };
        }
        self.close_all_media().await;
        if let (Some(media), Some(group)) = (&self.state.media, self.group) {
            media.unroute_group(group);
        }
        self.state.rooms.remove(&self.info.id);
        info!(room = %crate::redact::room_tag(&self.info.id), "room closed");
    }

    async fn handle(&mut self, cmd: RoomCmd) {
        let now = self.state.clock.now_ms();
        match cmd {
            RoomCmd::Join {
                req,
                secret,
                conn,
                request_id,
                reply,
            } => {
                let facilitator = match secret {
                    Some(s) if secrets_match(&s, &self.secret) => true,
                    Some(_) => {
                        let _ = reply.send(Err(WireError::new(
                            ErrorCode::BadSecret,
                            "the facilitator link is not valid for this room",
                        )));
                        return;
                    }
                    None => false,
                };
                let who = new_participant_id();
                let peer = self.state.media.as_ref().map(|m| PeerId(m.next_id()));
                let req = JoinRequest {
                    facilitator,
                    stream: peer.map(PeerId::stream_id),
                    ..req
                };
                match self.room.join(now, who.clone(), req) {
                    Ok(joined) => {
                        if let Some(peer) = peer {
                            self.media_ids.insert(who.clone(), peer);
                            self.by_peer.insert(peer, who.clone());
                        }
                        self.conns.insert(who.clone(), conn);
                        self.send_joined(&who, joined.role, joined.waiting, request_id);
                        let _ = reply.send(Ok(who));
                        self.drain();
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                    }
                }
            }
            RoomCmd::Resume {
                who,
                conn,
                request_id,
                reply,
            } => match self.room.resume(&who) {
                Ok(joined) => {
                    if let Some(old) = self.conns.insert(who.clone(), conn) {
                        close_with_reason(&old, LeaveReason::Replaced);
                    }
                    self.send_joined(&who, joined.role, joined.waiting, request_id);
                    // The snapshot does not say whether the server forwards their voice; a resumed
                    // client may have missed the change, so tell it now.
                    let may_be_heard = self.room.may_be_heard(&who);
                    self.send_one(&who, &ServerMsg::Hearing { may_be_heard });
                    let _ = reply.send(Ok(()));
                    self.drain();
                }
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                }
            },
            RoomCmd::Request {
                from,
                conn_id,
                cmd,
                request_id,
            } => {
                if self.conns.get(&from).map(|c| c.id) != Some(conn_id) {
                    return; // a replaced connection's late request
                }
                // The ack normally follows the request's events, so a client that sees it sees
                // their effects; leaving and ending close the sender's connection, so they ack first.
                let closes_sender = matches!(cmd, Command::Leave | Command::EndMeeting);
                let result = self.room.handle(now, &from, cmd);
                let reply = match (result, request_id) {
                    (Ok(()), Some(id)) => Some(ServerMsg::Ack { id }),
                    (Ok(()), None) => None,
                    (Err(e), id) => Some(WireError::from(&e).to_msg(id)),
                };
                if closes_sender && let Some(reply) = &reply {
                    self.send_one(&from, reply);
                }
                self.drain();
                if !closes_sender && let Some(reply) = &reply {
                    self.send_one(&from, reply);
                    self.drain(); // a full queue just dropped the sender: tell the others
                }
            }
            RoomCmd::Disconnected { who, conn_id } => {
                if self.conns.get(&who).map(|c| c.id) == Some(conn_id) {
                    self.conns.remove(&who);
                    self.room.disconnected(now, &who);
                    self.drain();
                }
            }
            RoomCmd::Media {
                from,
                conn_id,
                req,
                request_id,
            } => {
                if self.conns.get(&from).map(|c| c.id) != Some(conn_id) {
                    return;
                }
                let reply = match self.media_request(&from, req, request_id.clone()).await {
                    Ok(Some(reply)) => reply,
                    Ok(None) => match request_id {
                        Some(id) => ServerMsg::Ack { id },
                        None => return,
                    },
                    Err(e) => e.to_msg(request_id),
                };
                self.send_one(&from, &reply);
                self.drain();
            }
            RoomCmd::MediaEvent(event) => self.media_event(event),
            RoomCmd::MayBeHeard { who, reply } => {
                let _ = reply.send(self.room.may_be_heard(&who));
            }
        }
    }

    /// Carries out a client's voice signalling; `Ok(Some)` is a reply other than a plain ack.
    async fn media_request(
        &mut self,
        who: &ParticipantId,
        req: MediaRequest,
        id: Option<RequestId>,
    ) -> Result<Option<ServerMsg>, WireError> {
        let Some(media) = self.state.media.clone() else {
            return Err(WireError::new(
                ErrorCode::MediaUnavailable,
                "this server does not relay voice",
            ));
        };
        let peer = *self
            .media_ids
            .get(who)
            .ok_or_else(|| WireError::new(ErrorCode::SessionGone, "this session has ended"))?;
        let room = self.info.id.clone();
        let failed = move |e: MediaError| {
            debug!(%room, %peer, error = ?e, "media request failed");
            WireError::new(ErrorCode::MediaFailed, e.to_string())
        };
        match req {
            MediaRequest::Offer(sdp) => {
                let now = Instant::now();
                let budget = self
                    .offer_budgets
                    .entry(who.clone())
                    .or_insert_with(|| OfferBudget::new(now));
                if !budget.take(now) {
                    return Err(WireError::new(
                        ErrorCode::RateLimited,
                        "too many new voice sessions; wait a few seconds before offering again",
                    ));
                }
                // Every client offer starts a fresh session: after a reconnect, or as an ICE restart.
                if self.sessions.remove(who).is_some() {
                    let _ = media.handle.close_peer(peer).await;
                }
                let gate = media.handle.add_peer(peer).await.map_err(&failed)?;
                media.route_peer(peer, self.inbox.clone());
                self.sessions.insert(
                    who.clone(),
                    Session {
                        gate: gate.clone(),
                        ufrag: None,
                    },
                );
                let group = (!self.room.is_waiting(who)).then_some(self.group).flatten();
                gate.set(self.room.may_be_heard(who));
                let answer = match media.handle.set_group(peer, group).await {
                    Ok(()) => {
                        media
                            .handle
                            .handle_offer(peer, without_mdns_candidates(&sdp))
                            .await
                    }
                    Err(e) => Err(e),
                };
                match answer {
                    Ok(sdp) => {
                        if let Some(session) = self.sessions.get_mut(who) {
                            session.ufrag = ice_ufrag(&sdp);
                        }
                        Ok(Some(ServerMsg::MediaAnswer { id, sdp }))
                    }
                    Err(e) => {
                        self.sessions.remove(who);
                        media.unroute_peer(peer);
                        let _ = media.handle.close_peer(peer).await;
                        Err(failed(e))
                    }
                }
            }
            MediaRequest::Answer(sdp) => {
                media
                    .handle
                    .handle_answer(peer, without_mdns_candidates(&sdp))
                    .await
                    .map_err(&failed)?;
                Ok(None)
            }
            // The relay is ICE-lite: it learns a client's address from its connectivity checks and
            // needs no client candidate. An mDNS one (`….local`) would make the ICE stack query the
            // local network for a name it can never use, so it is dropped here.
            MediaRequest::Candidate(c) if is_mdns_candidate(&c.candidate) => Ok(None),
            MediaRequest::Candidate(c) => {
                let candidate = MediaCandidate {
                    candidate: c.candidate,
                    sdp_mid: c.sdp_mid,
                    sdp_mline_index: c.sdp_mline_index,
                };
                media
                    .handle
                    .add_remote_candidate(peer, candidate)
                    .await
                    .map_err(&failed)?;
                Ok(None)
            }
        }
    }

    /// Passes the relay's news on to the participants concerned.
    fn media_event(&mut self, event: MediaEvent) {
        match event {
            MediaEvent::LocalOffer { peer, sdp } => {
                if let Some(who) = self.by_peer.get(&peer).cloned() {
                    let stale = match self.sessions.get(&who) {
                        None => true,
                        Some(s) => s.ufrag.is_some() && s.ufrag != ice_ufrag(&sdp),
                    };
                    if stale {
                        debug!(room = %crate::redact::room_tag(&self.info.id), %peer, "offer of a replaced session dropped");
                    } else {
                        self.send_one(&who, &ServerMsg::MediaOffer { sdp });
                    }
                }
            }
            MediaEvent::LocalCandidate { peer, candidate } => {
                if let Some(who) = self.by_peer.get(&peer).cloned() {
                    let candidate = IceCandidate {
                        candidate: candidate.candidate,
                        sdp_mid: candidate.sdp_mid,
                        sdp_mline_index: candidate.sdp_mline_index,
                    };
                    self.send_one(&who, &ServerMsg::MediaCandidate { candidate });
                }
            }
            MediaEvent::PeerState { peer, state } => {
                debug!(room = %crate::redact::room_tag(&self.info.id), %peer, ?state, "media connection state");
            }
            MediaEvent::PeerLost { peer } => self.media_session_lost(peer),
            MediaEvent::ActiveSpeakers { speakers, .. } => {
                let speaking: Vec<ParticipantId> = speakers
                    .iter()
                    .filter_map(|p| self.by_peer.get(p).cloned())
                    .collect();
                self.send_speakers(speaking);
            }
        }
        self.drain();
    }

    /// The relay closed a session on its own (its WebRTC stack failed on it): forget the session and
    /// tell its client, who must start a new one.
    fn media_session_lost(&mut self, peer: PeerId) {
        let Some(who) = self.by_peer.get(&peer).cloned() else {
            return;
        };
        if self.sessions.remove(&who).is_none() {
            return;
        }
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

    /// Tells everyone admitted who is speaking. With roster privacy a member hears everyone but is told
    /// only about those they may see (facilitators, themselves) and the floor holder.
    fn send_speakers(&mut self, speaking: Vec<ParticipantId>) {
        let everyone = self.room.recipients(&Audience::Admitted);
        if !self.room.settings().roster_privacy {
            if let Some(text) = encode(&ServerMsg::Speakers {
                participants: speaking,
            }) {
                for who in everyone {
                    self.push(&who, Outbound::Text(text.clone()));
                }
            }
            return;
        }
        let floor = self.room.speaker().cloned();
        for who in everyone {
            let participants = if self.room.role_of(&who) == Some(Role::Facilitator) {
                speaking.clone()
            } else {
                speaking
                    .iter()
                    .filter(|s| {
                        **s == who
                            || floor.as_ref() == Some(*s)
                            || self.room.role_of(s) == Some(Role::Facilitator)
                    })
                    .cloned()
                    .collect()
            };
            self.send_one(&who, &ServerMsg::Speakers { participants });
        }
    }

    /// Does the relay work the room's last changes call for.
    async fn flush_media(&mut self) {
        let Some(media) = self.state.media.clone() else {
            self.media_todo.clear();
            return;
        };
        for todo in std::mem::take(&mut self.media_todo) {
            match todo {
                MediaTodo::SyncGroup(who) => {
                    let Some(peer) = self.media_ids.get(&who).copied() else {
                        continue;
                    };
                    if self.sessions.contains_key(&who) {
                        let group = (!self.room.is_waiting(&who))
                            .then_some(self.group)
                            .flatten();
                        let _ = media.handle.set_group(peer, group).await;
                    }
                }
                MediaTodo::Close(who) => {
                    let Some(peer) = self.media_ids.remove(&who) else {
                        continue;
                    };
                    self.by_peer.remove(&peer);
                    self.offer_budgets.remove(&who);
                    if self.sessions.remove(&who).is_some() {
                        media.unroute_peer(peer);
                        let _ = media.handle.close_peer(peer).await;
                    }
                }
            }
        }
    }

    /// Closes every media session of the room (the meeting ended or the server stops).
    async fn close_all_media(&mut self) {
        let everyone: Vec<ParticipantId> = self.media_ids.keys().cloned().collect();
        self.media_todo
            .extend(everyone.into_iter().map(MediaTodo::Close));
        self.flush_media().await;
    }

    fn send_joined(
        &mut self,
        who: &ParticipantId,
        role: Role,
        waiting: bool,
        id: Option<RequestId>,
    ) {
        let msg = ServerMsg::Joined {
            id,
            protocol: PROTOCOL_VERSION,
            you: who.clone(),
            role,
            resume_token: self.state.keys.issue(&self.info.id, who),
            grace_secs: self.state.config.rooms.grace_secs,
            waiting,
            server_time: self.state.clock.now_ms(),
            media: self.state.media.is_some(),
            ice_servers: self
                .state
                .media
                .as_ref()
                .map(|m| m.ice_servers.to_vec())
                .unwrap_or_default(),
            room: self.room.snapshot_for(who),
        };
        self.send_snapshot(who, msg);
    }

    /// Sends a message that carries a room snapshot, in pieces if it is large (see
    /// [`PARTICIPANTS_PER_FRAME`]): the snapshot with the first participants and the oldest chat,
    /// then `more_participants` and `more_chat` until it is all there.
    fn send_snapshot(&mut self, who: &ParticipantId, msg: ServerMsg) {
        for piece in in_pieces(msg) {
            self.send_one(who, &piece);
        }
    }

    /// Carries out everything the room asked for.
    fn drain(&mut self) {
        while let Some(out) = self.room.poll_output() {
            match out {
                Output::Send {
                    recipients, msg, ..
                } => {
                    if matches!(msg, ServerMsg::Admitted { .. }) {
                        self.media_todo
                            .extend(recipients.iter().cloned().map(MediaTodo::SyncGroup));
                    }
                    if matches!(
                        msg,
                        ServerMsg::Admitted { .. } | ServerMsg::RoomState { .. }
                    ) {
                        // Snapshots go to one person each; large ones go out in pieces.
                        for who in &recipients {
                            self.send_snapshot(who, msg.clone());
                        }
                        continue;
                    }
                    let Some(text) = encode(&msg) else { continue };
                    for who in &recipients {
                        self.push(who, Outbound::Text(text.clone()));
                    }
                }
                Output::Close { who, reason } => {
                    if let Some(conn) = self.conns.remove(&who) {
                        close_with_reason(&conn, reason);
                    }
                    self.media_todo.push(MediaTodo::Close(who));
                }
                Output::Hearing { who, may_be_heard } => {
                    if let Some(session) = self.sessions.get(&who) {
                        session.gate.set(may_be_heard);
                    }
                }
                Output::Ended => {
                    self.state.rooms.remove(&self.info.id);
                }
            }
        }
    }

    fn send_one(&mut self, who: &ParticipantId, msg: &ServerMsg) {
        if let Some(text) = encode(msg) {
            self.push(who, Outbound::Text(text));
        }
    }

    /// Queues a frame for one connection; a connection whose queue is full is dropped as too slow,
    /// and its participant gets the grace period like any dropped connection.
    fn push(&mut self, who: &ParticipantId, frame: Outbound) {
        let Some(conn) = self.conns.get(who) else {
            return;
        };
        if conn.try_push(frame).is_ok() {
            return;
        }
        if let Some(conn) = self.conns.remove(who) {
            warn!(room = %crate::redact::room_tag(&self.info.id), participant = %who, "slow consumer dropped");
            conn.close(LeaveReason::SlowConsumer);
            self.room.disconnected(self.state.clock.now_ms(), who);
            // Its consequences (others see "reconnecting") are drained by the caller's loop.
        }
    }

    /// The server is stopping: tell everyone, then close.
    fn shut_down(&mut self) {
        for (_, conn) in self.conns.drain() {
            close_with_reason(&conn, LeaveReason::ServerShutdown);
        }
    }
}

/// Tells a connection why it is being closed (for the reasons that call for words), then closes it.
fn close_with_reason(conn: &Conn, reason: LeaveReason) {
    if let Some(message) = removal_message(reason)
        && let Some(text) = encode(&ServerMsg::Removed {
            reason,
            message: message.into(),
        })
    {
        let _ = conn.try_push(Outbound::Text(text));
    }
    conn.close(reason);
}

/// The fixed explanation a disconnected person is shown, for the reasons that call for one.
pub fn removal_message(reason: LeaveReason) -> Option<&'static str> {
    Some(match reason {
        LeaveReason::Removed => "A facilitator removed you from this meeting.",
        LeaveReason::Banned => {
            "A facilitator removed you from this meeting, and you cannot rejoin it."
        }
        LeaveReason::Denied => "A facilitator did not let you into this meeting.",
        LeaveReason::SlowConsumer => {
            "Your connection could not keep up, so it was closed. Reconnecting brings you back."
        }
        LeaveReason::Replaced => "You joined this meeting from another window or device.",
        LeaveReason::ServerShutdown => "The server is restarting. Please rejoin in a minute.",
        LeaveReason::Left | LeaveReason::TimedOut | LeaveReason::MeetingEnded => return None,
    })
}

/// A snapshot-carrying message as the frames to send: itself, trimmed to its first participants and
/// oldest chat, then the rest in `more_participants` and `more_chat` pieces. Other messages pass as
/// they are.
fn in_pieces(mut msg: ServerMsg) -> Vec<ServerMsg> {
    let room = match &mut msg {
        ServerMsg::Joined { room, .. }
        | ServerMsg::Admitted { room }
        | ServerMsg::RoomState { room } => room,
        _ => return vec![msg],
    };
    let mut rest_people = room
        .participants
        .split_off(room.participants.len().min(PARTICIPANTS_PER_FRAME));
    let chat = std::mem::take(&mut room.chat);
    let mut chat_pieces = chunk_chat(chat).into_iter();
    room.chat = chat_pieces.next().unwrap_or_default();
    let mut out = vec![msg];
    while !rest_people.is_empty() {
        let next = rest_people.split_off(rest_people.len().min(PARTICIPANTS_PER_FRAME));
        out.push(ServerMsg::MoreParticipants {
            participants: std::mem::replace(&mut rest_people, next),
        });
    }
    out.extend(chat_pieces.map(|chat| ServerMsg::MoreChat { chat }));
    out
}

/// Chat history in runs of about [`CHAT_BYTES_PER_FRAME`] bytes of text, oldest first.
fn chunk_chat(chat: Vec<ChatView>) -> Vec<Vec<ChatView>> {
    let mut pieces: Vec<Vec<ChatView>> = Vec::new();
    let mut bytes = 0;
    for m in chat {
        let len = m.text.len() + m.name.len();
        match pieces.last_mut() {
            Some(piece) if bytes + len <= CHAT_BYTES_PER_FRAME => {
                bytes += len;
                piece.push(m);
            }
            _ => {
                bytes = len;
                pieces.push(vec![m]);
            }
        }
    }
    pieces
}

/// Whether an ICE candidate line names an mDNS host (`….local`) instead of an address.
fn is_mdns_candidate(line: &str) -> bool {
    // candidate:<foundation> <component> <transport> <priority> <address> <port> typ ...
    line.split_whitespace()
        .nth(4)
        .is_some_and(|addr| addr.ends_with(".local"))
}

/// An SDP without its mDNS candidate lines (see [`is_mdns_candidate`]).
fn without_mdns_candidates(sdp: &str) -> String {
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        let is_mdns = line
            .trim_end()
            .strip_prefix("a=")
            .is_some_and(is_mdns_candidate);
        if !is_mdns {
            out.push_str(line);
        }
    }
    out
}

/// The ICE username fragment (`a=ice-ufrag:`) of an SDP: the relay makes a new one per session.
fn ice_ufrag(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
        .map(str::to_owned)
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

#[cfg(test)]
mod tests {
    use super::*;
    use circle_protocol::{FloorView, ParticipantView, Presence, RoomSnapshot, Settings};

    fn person(i: usize) -> ParticipantView {
        ParticipantView {
            id: ParticipantId(format!("p{i}")),
            name: format!("Person {i}"),
            role: Role::Member,
            presence: Presence::Online,
            hand_raised_at: None,
            self_muted: true,
            muted_by_facilitator: false,
            chat_allowed: true,
            stream: None,
        }
    }

    fn line(i: u64, len: usize) -> ChatView {
        ChatView {
            id: i,
            from: ParticipantId("p0".into()),
            name: "Person 0".into(),
            text: "x".repeat(len),
            at: i,
            private: false,
            to: None,
        }
    }

    #[test]
    fn a_large_snapshot_goes_out_in_pieces_that_add_up_to_it() {
        let room = RoomSnapshot {
            title: "t".into(),
            settings: Settings::default(),
            participants: (0..20).map(person).collect(),
            counts: None,
            floor: FloorView {
                speaker: None,
                queue: Vec::new(),
            },
            chat: (1..=5).map(|i| line(i, 700)).collect(),
        };
        let pieces = in_pieces(ServerMsg::RoomState { room: room.clone() });
        let mut people = Vec::new();
        let mut chat = Vec::new();
        for (i, p) in pieces.iter().enumerate() {
            let frame = serde_json::to_string(p).unwrap();
            assert!(frame.len() < 4096, "piece {i} is {} bytes", frame.len());
            match p {
                ServerMsg::RoomState { room } if i == 0 => {
                    people.extend(room.participants.clone());
                    chat.extend(room.chat.clone());
                }
                ServerMsg::MoreParticipants { participants } => people.extend(participants.clone()),
                ServerMsg::MoreChat { chat: more } => chat.extend(more.clone()),
                other => panic!("unexpected piece {other:?}"),
            }
        }
        assert_eq!(people, room.participants);
        assert_eq!(chat, room.chat);
        assert_eq!(in_pieces(ServerMsg::MeetingEnded).len(), 1);
    }

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

    #[test]
    fn mdns_candidates_are_left_out() {
        let sdp = "v=0\r\na=candidate:1 1 udp 2122 9c1f.local 5000 typ host\r\n\
                   a=candidate:2 1 udp 2122 127.0.0.1 5001 typ host\r\na=end\r\n";
        let kept = without_mdns_candidates(sdp);
        assert!(!kept.contains(".local"));
        assert!(kept.contains("127.0.0.1 5001") && kept.ends_with("a=end\r\n"));
        assert!(is_mdns_candidate(
            "candidate:1 1 udp 2122 x.local 5000 typ host"
        ));
        assert!(!is_mdns_candidate(
            "candidate:1 1 udp 2122 10.0.0.1 5000 typ host"
        ));
    }
}
