//! The room actor: one task owns one [`Room`] state machine and the outbound queues of the
//! connections joined to it. Connections talk to it through a cloneable [`RoomHandle`] over a bounded
//! channel. Its jobs, each in its place:
//!
//! - here: the loop (requests, the room's timers, expiry, shutdown) and the answers to joins,
//!   resumes and requests;
//! - `fanout.rs`: carrying out the room's outputs, serialising each message once, snapshots in
//!   pieces, dropping slow consumers;
//! - `voice.rs`: the voice relay: each participant's media session, its group (none in the waiting
//!   room) and its gate, which the relay reads per packet and the actor sets from the room's "may be
//!   heard" answer.
//!
//! What each participant is told (including who is speaking) is the room's business (`circle-room`).

mod fanout;
mod voice;

use crate::{
    AppState,
    auth::{new_participant_id, secrets_match},
    conn::{Conn, Outbound},
    wire::{WireError, encode},
};
use circle_media::MediaEvent;
use circle_protocol::{
    ErrorCode, IceCandidate, LeaveReason, LinkKind, ParticipantId, RequestId, RoomId, ServerMsg,
};
use circle_room::{Command, JoinRequest, Joined, PresenceCounts, Room};
use circle_store::{SecretHash, StandingId, StoreError};
use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};
use tokio::{
    sync::{mpsc, oneshot},
    time::{Instant, sleep_until},
};
use tracing::{debug, info};
use voice::Voice;

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
        /// The link they came by (after a rotation, sessions that joined by the old link keep it
        /// for their resume tokens).
        link: RoomId,
        /// The joiner's connection.
        conn: Conn,
        /// Echoed in `joined`.
        request_id: Option<RequestId>,
        /// The participant id, or why the join was refused.
        reply: oneshot::Sender<Result<ParticipantId, WireError>>,
    },
    /// A returning participant whose token the edge already checked.
    Resume {
        /// The link the token was for.
        link: RoomId,
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
    /// A facilitator asks to rotate one of this standing room's links.
    RotateLink {
        /// Who asked.
        from: ParticipantId,
        /// On which connection.
        conn_id: u64,
        /// Which link.
        link: LinkKind,
        /// Echoed in the `ack` or `error`.
        request_id: Option<RequestId>,
    },
    /// A link of this standing room was rotated in the store (by a facilitator's `rotate_link`,
    /// or by the organiser API): take it into use at once.
    Rotated {
        /// What the store did, or why it could not.
        outcome: Result<Rotation, StoreError>,
        /// The facilitator who asked, with their request id, when it came from the meeting.
        requester: Option<(ParticipantId, Option<RequestId>)>,
    },
    /// The organiser ended the meeting (or deleted its standing room).
    End,
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

/// A rotated link, as the store now has it.
pub enum Rotation {
    /// The members' link is now this room id.
    Members(RoomId),
    /// The facilitator secret is now this one (its plaintext, kept in memory for `links`).
    Facilitator(SecretHash, String),
}

/// How the actor checks a facilitator secret.
pub enum FacilitatorKey {
    /// An ad-hoc room's secret, made at creation and held only in memory.
    Plain(String),
    /// A standing room's: only the hash is known (from the store).
    Hashed(SecretHash),
}

impl FacilitatorKey {
    /// Whether `presented` is the facilitator secret (in time that does not depend on where it
    /// differs).
    fn verify(&self, presented: &str) -> bool {
        match self {
            FacilitatorKey::Plain(secret) => secrets_match(presented, secret),
            FacilitatorKey::Hashed(hash) => hash.verify(presented),
        }
    }
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
#[derive(Debug)]
pub struct RoomInfo {
    /// The room's id when the meeting started (its log tag and `/api/meetings` tag are made from
    /// it; a rotated members' link does not change them).
    pub id: RoomId,
    /// The room's title.
    pub title: String,
    /// The standing room this meeting is of; `None` for an ad-hoc room.
    pub standing: Option<StandingId>,
    /// Head counts and the opening time, as the actor last reported them (for the organiser API
    /// and the room info page: counts only, never names).
    pub live: LiveCounts,
}

/// A meeting's counts and opening time, written by its actor after every step, read by the API.
#[derive(Debug, Default)]
pub struct LiveCounts {
    /// Admitted participants (online or reconnecting).
    pub participants: AtomicUsize,
    /// People in the waiting room.
    pub waiting: AtomicUsize,
    /// When the meeting opens (Unix ms); 0 once open.
    opens_at: AtomicU64,
    /// The room is locked (the join page says so before a name is typed).
    pub locked: AtomicBool,
    /// The room holds `max_participants` people, waiting room and reconnecting included.
    pub full: AtomicBool,
}

impl LiveCounts {
    /// When the meeting opens, while it has not yet.
    pub fn opens_at(&self) -> Option<u64> {
        match self.opens_at.load(Ordering::Relaxed) {
            0 => None,
            at => Some(at),
        }
    }
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

    /// Whether both handles reach the same actor (a directory entry may be a newer meeting's).
    pub fn same_actor(&self, other: &RoomHandle) -> bool {
        self.tx.same_channel(&other.tx)
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

/// Creates a room and starts its actor; the caller puts the handle in the directory. `standing`:
/// the standing room this meeting is of.
pub fn spawn_room(
    state: &AppState,
    id: RoomId,
    title: String,
    room: Room,
    key: FacilitatorKey,
    standing: Option<StandingId>,
) -> RoomHandle {
    let (tx, rx) = mpsc::channel(ROOM_INBOX);
    let info = Arc::new(RoomInfo {
        id: id.clone(),
        title,
        standing,
        // Known from the start: a room created locked is locked before anyone joins it.
        live: LiveCounts {
            locked: AtomicBool::new(room.settings().locked),
            ..LiveCounts::default()
        },
    });
    let actor = RoomActor {
        state: state.clone(),
        info: info.clone(),
        room,
        key,
        known_secret: None,
        link: id,
        retired_links: Vec::new(),
        conns: HashMap::new(),
        links_of: HashMap::new(),
        voice: Voice::new(state.media.as_ref(), &tx),
        inbox: tx.clone(),
        used: false,
        presence_changed: false,
        reported: Reported::default(),
    };
    state.tasks.spawn(actor.run(rx));
    RoomHandle { info, tx }
}

/// The task that owns one room.
struct RoomActor {
    /// Server-wide state: clock, keys, config, directory, shutdown.
    state: AppState,
    /// The room's fixed facts.
    info: Arc<RoomInfo>,
    /// The state machine.
    room: Room,
    /// Checks the facilitator secret.
    key: FacilitatorKey,
    /// A standing room's facilitator secret in plaintext, once this meeting has seen it (a
    /// facilitator joined by it, or it was rotated): memory only, for the `links` message.
    known_secret: Option<String>,
    /// The members' link now (a standing room's may be rotated during the meeting).
    link: RoomId,
    /// Members' links rotated away during this meeting: they still resume its sessions.
    retired_links: Vec<RoomId>,
    /// The live connection of each participant who has one.
    conns: HashMap<ParticipantId, Conn>,
    /// The link each participant came by, when it is not the room's first: their resume tokens
    /// are for it (a rotated members' link still resumes the sessions that joined by it).
    links_of: HashMap<ParticipantId, RoomId>,
    /// This actor's own inbox, given to the relay's event router for this room's peers.
    inbox: mpsc::Sender<RoomCmd>,
    /// The room's side of the voice relay.
    voice: Voice,
    /// Someone has joined this room: once empty it is forgotten after `empty_room_ttl_secs`, not
    /// `unused_room_ttl_secs`.
    used: bool,
    /// Someone may have joined, left, connected, disconnected or been admitted since the gauges
    /// were last reported (counting presence costs a pass over the room, so chat does not ask).
    presence_changed: bool,
    /// This room's share of the server-wide gauges, as last reported.
    reported: Reported,
}

/// One room's share of the server-wide gauges (participants by state, live rooms, voice sessions):
/// the actor adds the difference when its share changes and takes it all back when it ends, so the
/// gauges are the sums over live rooms without anyone asking the rooms.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct Reported {
    /// Participants by presence.
    presence: PresenceCounts,
    /// Anyone in the room or its waiting room.
    live: bool,
    /// Live voice sessions.
    voice: usize,
}

impl Reported {
    /// Moves the gauges from `self` to `now`.
    fn move_to(&self, now: &Reported) {
        use crate::admin::{PARTICIPANTS, ROOMS_LIVE, VOICE_SESSIONS};
        let moves = [
            (self.presence.online, now.presence.online, "online"),
            (
                self.presence.reconnecting,
                now.presence.reconnecting,
                "reconnecting",
            ),
            (self.presence.waiting, now.presence.waiting, "waiting"),
        ];
        for (old, new, state) in moves {
            if old != new {
                let gauge = metrics::gauge!(PARTICIPANTS, "state" => state);
                gauge.increment(new as f64 - old as f64);
            }
        }
        if self.live != now.live {
            metrics::gauge!(ROOMS_LIVE).increment(f64::from(now.live) - f64::from(self.live));
        }
        if self.voice != now.voice {
            metrics::gauge!(VOICE_SESSIONS).increment(now.voice as f64 - self.voice as f64);
        }
    }
}

impl RoomActor {
    async fn run(mut self, mut rx: mpsc::Receiver<RoomCmd>) {
        let rooms = &self.state.config.rooms;
        let (unused_ttl, empty_ttl, standing_ttl) = (
            rooms.unused_room_ttl_secs,
            rooms.empty_room_ttl_secs,
            rooms.standing_empty_end_secs,
        );
        let mut empty_since = Some(Instant::now());
        let shutdown = self.state.shutdown.clone();
        loop {
            let timer = self
                .room
                .poll_timeout()
                .map(|t| self.state.clock.instant_at(t));
            // A room nobody ever joined goes much sooner than one that was used; a standing room's
            // meeting ends after its own empty time (the room stays in the store).
            let ttl = if self.info.standing.is_some() {
                standing_ttl
            } else if self.used {
                empty_ttl
            } else {
                unused_ttl
            };
            let forget_at = empty_since.map(|t| t + Duration::from_secs(ttl));
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => {
                        self.presence_changed |= may_change_presence(&cmd);
                        self.handle(cmd).await;
                    }
                    None => break,
                },
                _ = sleep_until(timer.unwrap_or_else(far_future)), if timer.is_some() => {
                    self.room.handle_timeout(self.state.clock.now_ms());
                    self.presence_changed = true;
                    self.drain();
                }
                _ = sleep_until(forget_at.unwrap_or_else(far_future)), if forget_at.is_some() => {
                    debug!(room = %crate::redact::room_tag(&self.info.id), "empty room forgotten");
                    self.room.end();
                    self.presence_changed = true;
                    self.drain();
                }
                _ = shutdown.cancelled() => {
                    self.shut_down();
                    break;
                }
            }
            self.flush_media().await;
            self.report_gauges();
            if self.room.is_ended() {
                break;
            }
            empty_since = match (self.room.is_empty(), empty_since) {
                (true, None) => Some(Instant::now()),
                (true, since) => since,
                (false, _) => None,
            };
        }
        // Every voice session is closed (each client's DTLS close_notify sent) before the actor
        // ends, so shutdown, which waits for the actors, waits for the goodbyes too.
        self.close_all_media().await;
        self.voice.unroute(self.state.media.as_ref());
        self.reported.move_to(&Reported::default());
        self.leave_directory();
        info!(room = %crate::redact::room_tag(&self.info.id), "room closed");
    }

    async fn handle(&mut self, cmd: RoomCmd) {
        match cmd {
            RoomCmd::Join {
                req,
                secret,
                link,
                conn,
                request_id,
                reply,
            } => {
                let result = self.join(req, secret, link, conn, request_id);
                let _ = reply.send(result);
                self.drain();
            }
            RoomCmd::Resume {
                link,
                who,
                conn,
                request_id,
                reply,
            } => {
                let resumed = who.clone();
                let result = self.resume(who, conn, request_id);
                if result.is_ok() {
                    self.note_link(&resumed, link);
                }
                let _ = reply.send(result);
                self.drain();
            }
            RoomCmd::Request {
                from,
                conn_id,
                cmd,
                request_id,
            } => {
                if self.is_current(&from, conn_id) {
                    self.request(&from, cmd, request_id);
                }
            }
            RoomCmd::Disconnected { who, conn_id } => {
                if self.is_current(&who, conn_id) {
                    self.conns.remove(&who);
                    self.room.disconnected(self.state.clock.now_ms(), &who);
                    self.drain();
                }
            }
            RoomCmd::Media {
                from,
                conn_id,
                req,
                request_id,
            } => {
                if !self.is_current(&from, conn_id) {
                    return;
                }
                if let Some(reply) = self.media_request(&from, req, request_id).await {
                    self.send_one(&from, &reply);
                }
                self.drain();
            }
            RoomCmd::RotateLink {
                from,
                conn_id,
                link,
                request_id,
            } => {
                if self.is_current(&from, conn_id) {
                    self.rotate_link(&from, link, request_id);
                }
            }
            RoomCmd::Rotated { outcome, requester } => self.rotated(outcome, requester),
            RoomCmd::End => {
                self.room.end();
                self.drain();
            }
            RoomCmd::MediaEvent(event) => self.media_event(event),
            RoomCmd::MayBeHeard { who, reply } => {
                let _ = reply.send(self.room.may_be_heard(&who));
            }
        }
    }

    /// Brings this room's share of the gauges up to date (see [`Reported`]).
    fn report_gauges(&mut self) {
        let presence = if std::mem::take(&mut self.presence_changed) {
            self.room.presence_counts()
        } else {
            self.reported.presence
        };
        let now = Reported {
            presence,
            live: !self.room.is_empty(),
            voice: self.voice.session_count(),
        };
        let live = &self.info.live;
        live.participants
            .store(presence.online + presence.reconnecting, Ordering::Relaxed);
        live.waiting.store(presence.waiting, Ordering::Relaxed);
        live.opens_at
            .store(self.room.opens_at().unwrap_or(0), Ordering::Relaxed);
        live.locked
            .store(self.room.settings().locked, Ordering::Relaxed);
        live.full.store(
            self.room.len() >= self.state.config.rooms.max_participants,
            Ordering::Relaxed,
        );
        if now != self.reported {
            self.reported.move_to(&now);
            self.reported = now;
        }
    }

    /// Whether `conn_id` is `who`'s live connection (a replaced connection's late requests and end
    /// are ignored).
    fn is_current(&self, who: &ParticipantId, conn_id: u64) -> bool {
        self.conns.get(who).map(|c| c.id) == Some(conn_id)
    }

    /// A new participant: checks the facilitator secret, lets the room decide, sends `joined`.
    fn join(
        &mut self,
        req: JoinRequest,
        secret: Option<String>,
        link: RoomId,
        conn: Conn,
        request_id: Option<RequestId>,
    ) -> Result<ParticipantId, WireError> {
        let facilitator = match secret {
            Some(s) if self.key.verify(&s) => {
                if matches!(self.key, FacilitatorKey::Hashed(_)) {
                    self.known_secret = Some(s);
                }
                true
            }
            Some(_) => {
                return Err(WireError::new(
                    ErrorCode::BadSecret,
                    "the facilitator link is not valid for this room",
                ));
            }
            None => false,
        };
        // A draining server lets a meeting in progress go on, latecomers included, but starts none.
        if self.state.draining() && self.room.is_empty() {
            return Err(WireError::new(
                ErrorCode::ServerDraining,
                "this server is about to restart; try again in a minute",
            ));
        }
        let who = new_participant_id();
        let peer = Voice::new_peer(self.state.media.as_ref());
        let req = JoinRequest {
            facilitator,
            stream: peer.map(circle_media::PeerId::stream_id),
            ..req
        };
        let joined = self
            .room
            .join(self.state.clock.now_ms(), who.clone(), req)?;
        if joined.resumed {
            // The same browser came back (a closed tab reopened, or another tab): it takes up its
            // earlier place as a resume would, and the fresh peer id is not used.
            let who = joined.id.clone();
            self.note_link(&who, link);
            self.resumed(&who, joined, conn, request_id);
            return Ok(who);
        }
        self.used = true;
        self.note_link(&who, link);
        self.voice.joined(&who, peer);
        self.conns.insert(who.clone(), conn);
        self.send_joined(&who, &joined, request_id);
        Ok(who)
    }

    /// A returning participant on a new connection (any old one is closed as replaced).
    fn resume(
        &mut self,
        who: ParticipantId,
        conn: Conn,
        request_id: Option<RequestId>,
    ) -> Result<(), WireError> {
        let joined = self.room.resume(&who)?;
        self.resumed(&who, joined, conn, request_id);
        Ok(())
    }

    /// Moves a participant the room let back in to `conn` (closing any old connection as replaced)
    /// and tells them where they are.
    fn resumed(
        &mut self,
        who: &ParticipantId,
        joined: Joined,
        conn: Conn,
        request_id: Option<RequestId>,
    ) {
        if let Some(old) = self.conns.insert(who.clone(), conn) {
            close_with_reason(&old, LeaveReason::Replaced);
        }
        self.send_joined(who, &joined, request_id);
        // The snapshot does not say whether the server forwards their voice; a resumed client may
        // have missed the change, so tell it now.
        let may_be_heard = self.room.may_be_heard(who);
        self.send_one(who, &ServerMsg::Hearing { may_be_heard });
    }

    /// A request from a joined participant, answered with `ack` or `error`.
    fn request(&mut self, from: &ParticipantId, cmd: Command, request_id: Option<RequestId>) {
        // The ack normally follows the request's events, so a client that sees it sees their
        // effects; leaving and ending close the sender's connection, so they ack first.
        let closes_sender = matches!(cmd, Command::Leave | Command::EndMeeting);
        let result = self.room.handle(self.state.clock.now_ms(), from, cmd);
        let reply = match (result, request_id) {
            (Ok(()), Some(id)) => Some(ServerMsg::Ack { id }),
            (Ok(()), None) => None,
            (Err(e), id) => Some(WireError::from(&e).to_msg(id)),
        };
        if closes_sender && let Some(reply) = &reply {
            self.send_one(from, reply);
        }
        self.drain();
        if !closes_sender && let Some(reply) = &reply {
            self.send_one(from, reply);
            self.drain(); // a full queue just dropped the sender: tell the others
        }
    }

    /// Remembers the link a participant uses, when it is not the room's first. A link that is not
    /// this meeting's (a carried-over member whose link was rotated in the meeting before the
    /// restart) becomes one of its resume-only links, so their resume tokens work.
    fn note_link(&mut self, who: &ParticipantId, link: RoomId) {
        if link != self.link && !self.retired_links.contains(&link) {
            self.state
                .resume_aliases
                .insert(link.clone(), self.own_handle());
            self.retired_links.push(link.clone());
        }
        if link == self.info.id {
            self.links_of.remove(who);
        } else {
            self.links_of.insert(who.clone(), link);
        }
    }

    /// The link a participant's resume tokens are for.
    pub(crate) fn link_of(&self, who: &ParticipantId) -> &RoomId {
        self.links_of.get(who).unwrap_or(&self.info.id)
    }

    /// `rotate_link` from a participant: the room decides whether they may; the store does it
    /// in a task of its own (a slow or locked database must not stall the meeting), which reports
    /// back with [`RoomCmd::Rotated`].
    fn rotate_link(&mut self, from: &ParticipantId, link: LinkKind, request_id: Option<RequestId>) {
        if let Err(e) = self.room.may_rotate_links(from) {
            let reply = WireError::from(&e).to_msg(request_id);
            self.send_one(from, &reply);
            return;
        }
        let Some(standing) = self.info.standing.clone() else {
            return; // the room said it is standing; ad-hoc rooms have no id to rotate
        };
        let store = self.state.store.clone();
        let inbox = self.inbox.clone();
        let requester = Some((from.clone(), request_id));
        self.state.tasks.spawn(async move {
            let outcome = rotate_in_store(&store, &standing, link).await;
            // The meeting may have ended meanwhile: then nobody is left to tell.
            let _ = inbox.send(RoomCmd::Rotated { outcome, requester }).await;
        });
    }

    /// Takes a rotated link into use: a new members' link replaces the old one in the directory
    /// (the old one then only resumes this meeting's sessions); a new secret replaces the old
    /// one's hash. Every facilitator is told the links that work now; members are told nothing.
    fn rotated(
        &mut self,
        outcome: Result<Rotation, StoreError>,
        requester: Option<(ParticipantId, Option<RequestId>)>,
    ) {
        let reply = match outcome {
            Ok(Rotation::Members(link)) => {
                let me = self.own_handle();
                let old = std::mem::replace(&mut self.link, link.clone());
                self.state.rooms.remove_if(&old, |_, h| h.same_actor(&me));
                self.state.rooms.insert(link, me.clone());
                self.state.resume_aliases.insert(old.clone(), me);
                self.retired_links.push(old);
                self.send_links();
                Ok(())
            }
            Ok(Rotation::Facilitator(hash, secret)) => {
                self.key = FacilitatorKey::Hashed(hash);
                self.known_secret = Some(secret);
                self.send_links();
                Ok(())
            }
            Err(e) => Err(crate::http::storage_wire_error(&e)),
        };
        if let Some((who, id)) = requester {
            let msg = match (reply, id) {
                (Ok(()), Some(id)) => Some(ServerMsg::Ack { id }),
                (Ok(()), None) => None,
                (Err(e), id) => Some(e.to_msg(id)),
            };
            if let Some(msg) = msg {
                self.send_one(&who, &msg);
            }
        }
        self.drain();
    }

    /// Tells every facilitator the links that work now.
    fn send_links(&mut self) {
        let client = self
            .state
            .config
            .client
            .url
            .trim_end_matches('/')
            .to_owned();
        let msg = ServerMsg::Links {
            join_url: format!("{client}/#room={}", self.link),
            facilitator_url: self
                .known_secret
                .as_ref()
                .map(|s| format!("{client}/#room={}&key={s}", self.link)),
        };
        for who in self.room.recipients(&circle_room::Audience::Facilitators) {
            self.send_one(&who, &msg);
        }
    }

    /// A handle to this actor, as the directory holds it.
    fn own_handle(&self) -> RoomHandle {
        RoomHandle {
            info: self.info.clone(),
            tx: self.inbox.clone(),
        }
    }

    /// Takes this meeting out of the directory: its link and any rotated-away ones, but never an
    /// entry a newer meeting of the same standing room put there.
    pub(super) fn leave_directory(&self) {
        let me = self.own_handle();
        self.state
            .rooms
            .remove_if(&self.link, |_, h| h.same_actor(&me));
        for old in &self.retired_links {
            self.state
                .resume_aliases
                .remove_if(old, |_, h| h.same_actor(&me));
        }
    }

    /// The server is stopping: tell everyone, then close. In a standing room each participant
    /// first gets their carry-over token, so their client can bring them back to the next meeting
    /// in the same place.
    fn shut_down(&mut self) {
        let mut conns: Vec<_> = self.conns.drain().collect();
        conns.sort_by(|a, b| a.0.cmp(&b.0));
        for (who, conn) in conns {
            if self.info.standing.is_some()
                && let Some(carry) = self.room.carry_over(&who)
            {
                let via = self.link_of(&who).clone();
                match self.state.keys.issue_carry(&self.link, &via, &carry) {
                    Ok(token) => {
                        if let Some(text) = encode(&ServerMsg::CarryOver { token }) {
                            let _ = conn.try_push(Outbound::Text(text));
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "could not sign a carry-over token"),
                }
            }
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

/// Whether handling `cmd` may change who is online, reconnecting or waiting (chat, voice and the
/// relay's news do not, except through a slow consumer dropped on the way, which
/// [`RoomActor::push`] notes itself).
fn may_change_presence(cmd: &RoomCmd) -> bool {
    match cmd {
        RoomCmd::Request { cmd, .. } => !matches!(
            cmd,
            Command::Chat(_)
                | Command::ChatPrivate { .. }
                | Command::React(_)
                | Command::ReportQuality(_)
        ),
        RoomCmd::Media { .. }
        | RoomCmd::MediaEvent(_)
        | RoomCmd::MayBeHeard { .. }
        | RoomCmd::RotateLink { .. }
        | RoomCmd::Rotated { .. } => false,
        RoomCmd::End => true,
        RoomCmd::Join { .. } | RoomCmd::Resume { .. } | RoomCmd::Disconnected { .. } => true,
    }
}

/// Rotates one link of a standing room in the store.
pub async fn rotate_in_store(
    store: &circle_store::Store,
    standing: &StandingId,
    link: LinkKind,
) -> Result<Rotation, StoreError> {
    match link {
        LinkKind::Members => Ok(Rotation::Members(store.rotate_link(standing).await?.link)),
        LinkKind::Facilitator => {
            let (room, secret) = store.rotate_secret(standing).await?;
            Ok(Rotation::Facilitator(room.secret, secret.0))
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}
