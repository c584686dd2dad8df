//! The room actor: one task owns one [`Room`] state machine and the outbound queues of the
//! connections joined to it. Connections talk to it through a cloneable [`RoomHandle`] over a bounded
//! channel; it answers each request, fans the room's outputs out (serialising each message once), fires
//! the room's timers, and publishes who may be heard into a snapshot the media relay reads without
//! asking it.

use crate::{
    AppState,
    auth::{new_participant_id, secrets_match},
    conn::{Conn, Outbound},
    wire::WireError,
};
use axum::extract::ws::Utf8Bytes;
use circle_protocol::{
    ErrorCode, LeaveReason, PROTOCOL_VERSION, ParticipantId, RequestId, RoomId, ServerMsg,
};
use circle_room::{Command, JoinRequest, Output, Room};
use dashmap::DashMap;
use std::{collections::HashMap, sync::Arc, time::Duration};
use tokio::{
    sync::{mpsc, oneshot},
    time::{Instant, sleep_until},
};
use tracing::{debug, info, warn};

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
    /// Who may be heard now, written by the actor only: the media relay's gate reads it per packet.
    hearing: Arc<DashMap<ParticipantId, bool>>,
}

impl RoomHandle {
    /// Sends a request to the actor; `false` if the room has ended.
    pub async fn send(&self, cmd: RoomCmd) -> bool {
        self.tx.send(cmd).await.is_ok()
    }

    /// May this participant's audio be forwarded now? Never waits on the room task.
    pub fn may_be_heard(&self, who: &ParticipantId) -> bool {
        self.hearing.get(who).is_some_and(|v| *v)
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
    let info = Arc::new(RoomInfo { id, title });
    let hearing = Arc::new(DashMap::new());
    let handle = RoomHandle {
        info: info.clone(),
        tx,
        hearing: hearing.clone(),
    };
    let actor = RoomActor {
        state: state.clone(),
        info,
        room,
        secret,
        conns: HashMap::new(),
        hearing,
    };
    tokio::spawn(actor.run(rx));
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
    /// The published "may be heard" snapshot.
    hearing: Arc<DashMap<ParticipantId, bool>>,
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
                    Some(cmd) => self.handle(cmd),
                    None => break,
                },
                _ = sleep_until(timer.unwrap_or_else(far_future)), if timer.is_some() => {
                    self.room.handle_timeout(self.state.clock.now_ms());
                    self.drain();
                }
                _ = sleep_until(forget_at.unwrap_or_else(far_future)), if forget_at.is_some() => {
                    debug!(room = %self.info.id, "empty room forgotten");
                    self.room.end();
                    self.drain();
                }
                _ = shutdown.cancelled() => {
                    self.shut_down();
                    break;
                }
            }
            if self.room.is_ended() {
                break;
            }
            empty_since = match (self.room.is_empty(), empty_since) {
                (true, None) => Some(Instant::now()),
                (true, since) => since,
                (false, _) => None,
            };
        }
        self.state.rooms.remove(&self.info.id);
        info!(room = %self.info.id, "room closed");
    }

    fn handle(&mut self, cmd: RoomCmd) {
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
                let req = JoinRequest { facilitator, ..req };
                let who = new_participant_id();
                match self.room.join(now, who.clone(), req) {
                    Ok(joined) => {
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
        }
    }

    fn send_joined(
        &mut self,
        who: &ParticipantId,
        role: circle_protocol::Role,
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
            room: self.room.snapshot_for(who),
        };
        self.send_one(who, &msg);
    }

    /// Carries out everything the room asked for.
    fn drain(&mut self) {
        while let Some(out) = self.room.poll_output() {
            match out {
                Output::Send {
                    recipients, msg, ..
                } => {
                    let Some(text) = encode(&msg) else { continue };
                    for who in &recipients {
                        self.push(who, Outbound::Text(text.clone()));
                    }
                }
                Output::Close { who, reason } => {
                    if let Some(conn) = self.conns.remove(&who) {
                        close_with_reason(&conn, reason);
                    }
                }
                Output::Hearing { who, may_be_heard } => {
                    if may_be_heard {
                        self.hearing.insert(who, true);
                    } else {
                        self.hearing.remove(&who);
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
            warn!(room = %self.info.id, participant = %who, "slow consumer dropped");
            conn.close(LeaveReason::SlowConsumer);
            self.room.connection_lost(self.state.clock.now_ms(), who);
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

/// A message as one websocket text frame, serialised once for all its recipients.
fn encode(msg: &ServerMsg) -> Option<Utf8Bytes> {
    match serde_json::to_string(msg) {
        Ok(s) => Some(Utf8Bytes::from(s)),
        Err(e) => {
            warn!(error = %e, "could not encode a server message");
            None
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}
