//! One websocket connection: a reader that parses, rate-limits and routes each frame, and a writer
//! that drains a bounded outbound queue. Before `join` / `resume` the connection talks to no room.
//!
//! How it ends: the client closes or errors (the room is told, and the participant gets the grace
//! period); the room closes it (removed, banned, replaced, too slow, meeting ended, shutdown); or it
//! fails to join in time, or goes silent past the idle timeout.

use crate::ws_upgrade::Socket;
use crate::{
    AppState,
    admin::{JOIN_SECONDS, RATE_LIMITED, WS_CLOSES, WS_FRAMES_IN, WS_FRAMES_OUT},
    http::storage_wire_error,
    room_actor::{MediaRequest, RoomCmd, RoomHandle},
    standing::{self, LookupError},
    wire::{WireError, encode, parse_frame, to_command},
};
use circle_protocol::{
    ClientMsg, ErrorCode, LeaveReason, PROTOCOL_VERSION, ParticipantId, RequestId, RoomId,
    ServerMsg,
};
use circle_room::{Command, JoinRequest, Pseudonym};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::{
    num::NonZeroU32,
    sync::{Arc, OnceLock},
    time::Duration,
};
use tokio::io::AsyncReadExt;
use tokio::{
    sync::{OwnedSemaphorePermit, mpsc, oneshot},
    time::{Instant, interval, sleep},
};
use tokio_tungstenite::tungstenite::{
    Error as WsError, Message, Utf8Bytes,
    error::ProtocolError,
    protocol::{CloseFrame, frame::coding::CloseCode},
};
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// Longest device id a client may send.
const MAX_DEVICE_ID: usize = 64;
/// How often the server pings an idle client.
const PING_EVERY: Duration = Duration::from_secs(15);
/// A client silent this long (no frame, no pong) is treated as gone.
const IDLE_TIMEOUT: Duration = Duration::from_secs(45);
/// How long the writer may take to flush its last frames and the close frame.
const CLOSE_FLUSH: Duration = Duration::from_secs(2);
/// How long, after the close frame went out, the connection's input is read and thrown away so that
/// closing it does not reset it (a reset can destroy the close frame before the client reads it).
const LINGER: Duration = Duration::from_secs(2);

/// A frame on its way to the client.
#[derive(Debug)]
pub enum Outbound {
    /// A JSON message, serialised once for all its recipients.
    Text(Utf8Bytes),
    /// A keepalive ping.
    Ping,
    /// Send a close frame for this reason and stop.
    Close(LeaveReason),
    /// Send a close frame with this protocol-level code and reason, and stop.
    CloseCode(u16, &'static str),
}

/// Why a frame could not be queued for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The queue is full: the client is not reading fast enough.
    Full,
    /// The connection is already over (the client closed it, or it failed).
    Gone,
}

/// The room's end of a connection: its outbound queue and a way to close it.
#[derive(Clone, Debug)]
pub struct Conn {
    /// Tells this connection from a later one of the same participant.
    pub id: u64,
    /// The bounded outbound queue (room → client). Full means the client is too slow.
    tx: mpsc::Sender<Outbound>,
    /// Closes the connection at once, bypassing a full queue.
    kill: CancellationToken,
    /// The reason given when `kill` fired.
    kill_reason: Arc<OnceLock<LeaveReason>>,
}

impl Conn {
    /// Queues a frame without waiting.
    pub fn try_push(&self, frame: Outbound) -> Result<(), PushError> {
        self.tx.try_send(frame).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => PushError::Full,
            mpsc::error::TrySendError::Closed(_) => PushError::Gone,
        })
    }

    /// Closes the connection for `reason`: after what is queued if there is room, at once if not.
    pub fn close(&self, reason: LeaveReason) {
        if self.tx.try_send(Outbound::Close(reason)).is_err() {
            let _ = self.kill_reason.set(reason);
            self.kill.cancel();
        }
    }
}

/// The `reason` label of [`WS_CLOSES`] for a close the server sends.
fn close_label(reason: LeaveReason) -> &'static str {
    match reason {
        LeaveReason::Left => "left",
        LeaveReason::TimedOut => "timed_out",
        LeaveReason::Removed => "removed",
        LeaveReason::Banned => "banned",
        LeaveReason::Denied => "denied",
        LeaveReason::MeetingEnded => "meeting_ended",
        LeaveReason::SlowConsumer => "slow_consumer",
        LeaveReason::Replaced => "replaced",
        LeaveReason::ServerShutdown => "server_shutdown",
    }
}

/// Counts one ended connection under `reason` (a closed set: see docs/ARCHITECTURE.md).
fn count_close(reason: &'static str) {
    metrics::counter!(WS_CLOSES, "reason" => reason).increment(1);
}

/// Counts one request refused by the `limit` token bucket.
pub(crate) fn count_rate_limited(limit: &'static str) {
    metrics::counter!(RATE_LIMITED, "limit" => limit).increment(1);
}

/// The websocket close code for each reason the server closes a connection.
fn close_code(reason: LeaveReason) -> u16 {
    match reason {
        LeaveReason::Left | LeaveReason::MeetingEnded | LeaveReason::TimedOut => 1000,
        LeaveReason::ServerShutdown => 1001,
        LeaveReason::Removed => 4001,
        LeaveReason::Banned => 4002,
        LeaveReason::Denied => 4003,
        LeaveReason::SlowConsumer => 4008,
        LeaveReason::Replaced => 4009,
    }
}

/// Where the connection is in its life.
enum Session {
    /// Has not joined yet.
    Fresh,
    /// Joined (or waiting) in a room.
    Joined {
        /// The room.
        room: RoomHandle,
        /// Who this connection is.
        who: ParticipantId,
    },
}

/// Per-connection token buckets (documented in PROTOCOL.md): all requests, chat, hands.
struct Limits {
    /// Every frame.
    any: DefaultDirectRateLimiter,
    /// `chat` and `chat_private`.
    chat: DefaultDirectRateLimiter,
    /// `raise_hand` and `lower_hand`.
    hand: DefaultDirectRateLimiter,
}

fn quota(per_sec: u32, burst: u32) -> Quota {
    let nz = |v: u32| NonZeroU32::new(v.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(nz(per_sec)).allow_burst(nz(burst))
}

impl Limits {
    fn new(state: &AppState) -> Self {
        let l = &state.config.limits;
        Self {
            any: RateLimiter::direct(quota(l.requests_per_sec, l.requests_burst)),
            chat: RateLimiter::direct(quota(l.chat_per_sec, l.chat_burst)),
            hand: RateLimiter::direct(quota(l.hand_per_sec, l.hand_burst)),
        }
    }
}

/// The close a read error calls for (RFC 6455 §7.4.1), or `None` when the connection is simply gone.
fn close_for(error: &WsError) -> Option<(u16, &'static str)> {
    match error {
        WsError::Capacity(_) => Some((1009, "message too big")),
        WsError::Utf8(_) => Some((1007, "invalid UTF-8 in a text message")),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        WsError::Protocol(_) => Some((1002, "websocket protocol error")),
        _ => None,
    }
}

/// Runs one websocket connection to its end.
/// `unjoined` is the connection's place among the sockets that have not joined yet, given back when
/// it joins.
pub async fn run(socket: Socket, state: AppState, unjoined: OwnedSemaphorePermit) {
    let started = Instant::now();
    let mut unjoined = Some(unjoined);
    let (sink, mut stream) = socket.split();
    let (tx, rx) = mpsc::channel(state.config.limits.outbound_queue.max(4));
    let conn = Conn {
        id: state.next_conn_id(),
        tx,
        kill: CancellationToken::new(),
        kill_reason: Arc::new(OnceLock::new()),
    };
    let writer = state.tasks.spawn(write_loop(
        sink,
        rx,
        conn.kill.clone(),
        conn.kill_reason.clone(),
    ));
    let mut session = Session::Fresh;
    let limits = Limits::new(&state);
    let join_deadline = sleep(Duration::from_secs(state.config.limits.join_timeout_secs));
    tokio::pin!(join_deadline);
    let mut ping = interval(PING_EVERY);
    ping.tick().await;
    let mut last_heard = Instant::now();

    loop {
        tokio::select! {
            frame = stream.next() => {
                last_heard = Instant::now();
                if matches!(frame, Some(Ok(_))) {
                    metrics::counter!(WS_FRAMES_IN).increment(1);
                }
                match frame {
                    Some(Ok(Message::Text(text))) => {
                        let fresh = matches!(session, Session::Fresh);
                        on_text(&state, &conn, &mut session, &limits, text.as_str()).await;
                        if fresh && matches!(session, Session::Joined { .. }) {
                            // Joined: no longer one of the sockets that have not joined.
                            unjoined.take();
                            metrics::histogram!(JOIN_SECONDS).record(started.elapsed());
                        }
                    }
                    Some(Ok(Message::Binary(_))) => reply_error(&conn, None, WireError::new(
                        ErrorCode::BadJson, "binary frames are not part of the protocol; send JSON text")),
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                    Some(Ok(Message::Close(_))) | None => {
                        count_close("client_closed");
                        break;
                    }
                    Some(Err(e)) => {
                        debug!(conn = conn.id, error = %e, "websocket read failed");
                        // Too big, bad UTF-8, a protocol violation: say which before closing (the
                        // writer counts that close).
                        match close_for(&e) {
                            Some((code, why)) => {
                                let _ = conn.tx.try_send(Outbound::CloseCode(code, why));
                            }
                            None => count_close("read_failed"),
                        }
                        break;
                    }
                }
            }
            _ = conn.kill.cancelled() => break,
            _ = state.shutdown.cancelled(), if matches!(session, Session::Fresh) => {
                // Joined connections are closed by their room, with a word; this one has no room.
                let _ = conn.tx.try_send(Outbound::Close(LeaveReason::ServerShutdown));
                break;
            }
            _ = &mut join_deadline, if matches!(session, Session::Fresh) => {
                reply_error(&conn, None, WireError::new(ErrorCode::NotJoined, "no join within the time limit"));
                let _ = conn.tx.try_send(Outbound::Close(LeaveReason::TimedOut));
                break;
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > IDLE_TIMEOUT {
                    debug!(conn = conn.id, "idle connection dropped");
                    count_close("idle");
                    break;
                }
                let _ = conn.tx.try_send(Outbound::Ping);
            }
        }
    }

    if let Session::Joined { room, who } = session {
        room.send(RoomCmd::Disconnected {
            who,
            conn_id: conn.id,
        })
        .await;
    }
    // Dropping the last sender lets the writer flush what is queued, then stop.
    let kill = conn.kill.clone();
    drop(conn);
    match tokio::time::timeout(CLOSE_FLUSH, writer).await {
        Ok(Ok(sink)) => linger(stream, sink).await,
        _ => kill.cancel(),
    }
}

/// After the close frame went out: reads and discards what the client still sends, until it closes
/// its side or [`LINGER`] passes, so that dropping the socket sends a FIN rather than a reset.
async fn linger(stream: SplitStream<Socket>, sink: SplitSink<Socket, Message>) {
    let Ok(socket) = stream.reunite(sink) else {
        return;
    };
    let mut io = socket.into_inner();
    let mut scrap = [0u8; 4096];
    let _ = tokio::time::timeout(LINGER, async {
        while matches!(io.read(&mut scrap).await, Ok(n) if n > 0) {}
    })
    .await;
}

async fn write_loop(
    mut sink: SplitSink<Socket, Message>,
    mut rx: mpsc::Receiver<Outbound>,
    kill: CancellationToken,
    kill_reason: Arc<OnceLock<LeaveReason>>,
) -> SplitSink<Socket, Message> {
    let close_with = |reason: LeaveReason| {
        Message::Close(Some(CloseFrame {
            code: CloseCode::from(close_code(reason)),
            reason: Utf8Bytes::from_static(match reason {
                LeaveReason::Left => "left",
                LeaveReason::TimedOut => "timed out",
                LeaveReason::Removed => "removed",
                LeaveReason::Banned => "banned",
                LeaveReason::Denied => "denied",
                LeaveReason::MeetingEnded => "meeting ended",
                LeaveReason::SlowConsumer => "too slow",
                LeaveReason::Replaced => "replaced",
                LeaveReason::ServerShutdown => "server shutdown",
            }),
        }))
    };
    loop {
        let frame = tokio::select! {
            frame = rx.recv() => frame,
            _ = kill.cancelled() => {
                // Killed by the room (a full queue), or by the reader after the client went (the
                // reader counted that end).
                if let Some(reason) = kill_reason.get().copied() {
                    count_close(close_label(reason));
                }
                let reason = kill_reason.get().copied().unwrap_or(LeaveReason::SlowConsumer);
                let _ = tokio::time::timeout(CLOSE_FLUSH, sink.send(close_with(reason))).await;
                break;
            }
        };
        let msg = match frame {
            Some(Outbound::Text(t)) => Message::Text(t),
            Some(Outbound::Ping) => Message::Ping(Default::default()),
            Some(Outbound::Close(reason)) => {
                count_close(close_label(reason));
                let _ = tokio::time::timeout(CLOSE_FLUSH, sink.send(close_with(reason))).await;
                break;
            }
            Some(Outbound::CloseCode(code, reason)) => {
                count_close(match code {
                    1007 => "invalid_utf8",
                    1009 => "message_too_big",
                    _ => "protocol_error",
                });
                let frame = Message::Close(Some(CloseFrame {
                    code: CloseCode::from(code),
                    reason: Utf8Bytes::from_static(reason),
                }));
                let _ = tokio::time::timeout(CLOSE_FLUSH, sink.send(frame)).await;
                break;
            }
            None => {
                let _ = tokio::time::timeout(CLOSE_FLUSH, sink.close()).await;
                break;
            }
        };
        if sink.send(msg).await.is_err() {
            count_close("write_failed");
            break;
        }
        metrics::counter!(WS_FRAMES_OUT).increment(1);
    }
    // Tell the reader the connection is over, whoever ended it.
    kill.cancel();
    sink
}

fn reply(conn: &Conn, msg: &ServerMsg) {
    let Some(text) = encode(msg) else {
        return;
    };
    if conn.tx.try_send(Outbound::Text(text)).is_err() {
        conn.close(LeaveReason::SlowConsumer);
    }
}

fn reply_error(conn: &Conn, id: Option<RequestId>, e: WireError) {
    reply(conn, &e.to_msg(id));
}

async fn on_text(
    state: &AppState,
    conn: &Conn,
    session: &mut Session,
    limits: &Limits,
    text: &str,
) {
    // Parse first so that even a refusal names its request; parsing is cheap next to what a
    // request costs the room, and a frame past the size limit is refused before it is parsed.
    let parsed = parse_frame(text, state.config.limits.max_frame_bytes);
    if limits.any.check().is_err() {
        count_rate_limited("requests");
        let id = match &parsed {
            Ok(msg) => msg.request_id().cloned(),
            Err((id, _)) => id.clone(),
        };
        return reply_error(
            conn,
            id,
            WireError::new(ErrorCode::RateLimited, "too many requests; slow down"),
        );
    }
    let msg = match parsed {
        Ok(msg) => msg,
        Err((id, e)) => return reply_error(conn, id, e),
    };
    let id = msg.request_id().cloned();
    match session {
        Session::Fresh => match join_or_resume(state, conn, msg).await {
            Ok(joined) => *session = joined,
            Err(e) => reply_error(conn, id, e),
        },
        Session::Joined { room, who } => {
            let limiter = match &msg {
                ClientMsg::Chat { .. } | ClientMsg::ChatPrivate { .. } => {
                    Some((&limits.chat, "chat"))
                }
                ClientMsg::RaiseHand { .. } => Some((&limits.hand, "hand")),
                // One's own hand, named or not; a facilitator lowering others' is not a toggle.
                ClientMsg::LowerHand { participant, .. }
                    if participant.as_ref().is_none_or(|p| p == &*who) =>
                {
                    Some((&limits.hand, "hand"))
                }
                _ => None,
            };
            if let Some((limiter, label)) = limiter
                && limiter.check().is_err()
            {
                count_rate_limited(label);
                return reply_error(
                    conn,
                    id,
                    WireError::new(ErrorCode::RateLimited, "too many messages; slow down"),
                );
            }
            if let ClientMsg::RotateLink { link, .. } = msg {
                let cmd = RoomCmd::RotateLink {
                    from: who.clone(),
                    conn_id: conn.id,
                    link,
                    request_id: id.clone(),
                };
                send_or_ended(room, cmd, conn, id).await;
                return;
            }
            let (media, msg) = match msg {
                ClientMsg::MediaOffer { sdp, .. } => (Some(MediaRequest::Offer(sdp)), None),
                ClientMsg::MediaAnswer { sdp, .. } => (Some(MediaRequest::Answer(sdp)), None),
                ClientMsg::MediaCandidate { candidate, .. } => {
                    (Some(MediaRequest::Candidate(candidate)), None)
                }
                other => (None, Some(other)),
            };
            if let Some(req) = media {
                let cmd = RoomCmd::Media {
                    from: who.clone(),
                    conn_id: conn.id,
                    req,
                    request_id: id.clone(),
                };
                send_or_ended(room, cmd, conn, id).await;
                return;
            }
            let Some(msg) = msg else { return };
            let cmd: Command = match to_command(msg, state.config.rooms.chat_max_chars) {
                Ok(cmd) => cmd,
                Err(e) => return reply_error(conn, id, e),
            };
            let cmd = RoomCmd::Request {
                from: who.clone(),
                conn_id: conn.id,
                cmd,
                request_id: id.clone(),
            };
            send_or_ended(room, cmd, conn, id).await;
        }
    }
}

/// Hands a joined member's request to their room; if the room has ended meanwhile, tells the
/// member so and closes their connection.
async fn send_or_ended(room: &RoomHandle, cmd: RoomCmd, conn: &Conn, id: Option<RequestId>) {
    if !room.send(cmd).await {
        reply_error(
            conn,
            id,
            WireError::new(ErrorCode::RoomNotFound, "the meeting has ended"),
        );
        conn.close(LeaveReason::MeetingEnded);
    }
}

/// The meeting a `join` goes to: a live one, or a standing room's next one, started now.
async fn join_target(state: &AppState, link: &RoomId) -> Result<RoomHandle, WireError> {
    if !state.rooms.contains_key(link)
        && let crate::cluster::Route::Refused(e) = crate::cluster::route_join(state, link).await
    {
        return Err(e);
    }
    match standing::find_or_start(state, link).await {
        Ok(Some(room)) => Ok(room),
        Ok(None) => Err(WireError::new(
            ErrorCode::RoomNotFound,
            "there is no meeting at this link",
        )),
        Err(LookupError::Draining) => Err(WireError::new(
            ErrorCode::ServerDraining,
            "this server is about to restart; try again in a minute",
        )),
        Err(LookupError::Storage(e)) => Err(storage_wire_error(&e)),
        Err(LookupError::Elsewhere(e)) => Err(e),
    }
}

/// The meeting a `resume` goes back to. A standing room's meeting that has ended (or a server that
/// restarted under it) has nothing to resume: the session is gone, and joining again starts or
/// enters the room's next meeting.
async fn resume_target(state: &AppState, link: &RoomId) -> Result<RoomHandle, WireError> {
    if let Some(room) = standing::find_for_resume(state, link) {
        return Ok(room);
    }
    if let crate::cluster::Route::Refused(e) = crate::cluster::route_join(state, link).await {
        return Err(e);
    }
    match state.store.by_link(link).await {
        Ok(Some(_)) => Err(WireError::new(
            ErrorCode::SessionGone,
            "the meeting this session was in has ended; join again",
        )),
        Ok(None) => Err(WireError::new(
            ErrorCode::RoomNotFound,
            "there is no meeting at this link",
        )),
        Err(e) => Err(storage_wire_error(&e)),
    }
}

/// The first request on a connection: `join` or `resume`. Anything else is `not_joined`.
async fn join_or_resume(
    state: &AppState,
    conn: &Conn,
    msg: ClientMsg,
) -> Result<Session, WireError> {
    let (protocol, room_id) = match &msg {
        ClientMsg::Join { protocol, room, .. } | ClientMsg::Resume { protocol, room, .. } => {
            (*protocol, room.clone())
        }
        _ => {
            return Err(WireError::new(
                ErrorCode::NotJoined,
                "send `join` or `resume` first",
            ));
        }
    };
    if protocol != PROTOCOL_VERSION {
        return Err(WireError::new(
            ErrorCode::UnsupportedProtocol,
            format!("this server speaks protocol version {PROTOCOL_VERSION}"),
        ));
    }
    // A carry-over token names the meeting to go to (the link may have been rotated since the
    // member last heard of it); it is checked before anything is started for it.
    let carried = match &msg {
        ClientMsg::Join {
            carry: Some(token), ..
        } => Some(state.keys.check_carry(&room_id, token)?),
        _ => None,
    };
    let room = match (&msg, &carried) {
        (ClientMsg::Resume { .. }, _) => resume_target(state, &room_id).await?,
        (_, Some((target, _))) => join_target(state, target).await?,
        _ => join_target(state, &room_id).await?,
    };
    let gone = || WireError::new(ErrorCode::RoomNotFound, "the meeting has ended");
    match msg {
        ClientMsg::Join {
            id,
            name,
            secret,
            device,
            carry,
            ..
        } => {
            // A carry-over token speaks for the person: their name, device and place come from it.
            let _ = carry;
            let (name, device, carry) = match carried {
                Some((_, c)) => (c.name, c.device, Some(c.place)),
                None => (name, device, None),
            };
            let name = Pseudonym::parse(&name)?;
            if device
                .as_ref()
                .is_some_and(|d| d.is_empty() || d.len() > MAX_DEVICE_ID)
            {
                return Err(WireError::new(
                    ErrorCode::BadRequest,
                    "`device` is 1 to 64 bytes",
                ));
            }
            let (reply, answer) = oneshot::channel();
            let cmd = RoomCmd::Join {
                req: JoinRequest {
                    name,
                    facilitator: false,
                    device,
                    stream: None,
                    carry,
                },
                secret,
                link: room_id.clone(),
                conn: conn.clone(),
                request_id: id,
                reply,
            };
            if !room.send(cmd).await {
                return Err(gone());
            }
            let who = answer.await.map_err(|_| gone())??;
            Ok(Session::Joined { room, who })
        }
        ClientMsg::Resume { id, token, .. } => {
            let who = state.keys.check(&room_id, &token)?;
            let (reply, answer) = oneshot::channel();
            let cmd = RoomCmd::Resume {
                link: room_id.clone(),
                who: who.clone(),
                conn: conn.clone(),
                request_id: id,
                reply,
            };
            if !room.send(cmd).await {
                return Err(gone());
            }
            answer.await.map_err(|_| gone())??;
            Ok(Session::Joined { room, who })
        }
        _ => Err(WireError::new(
            ErrorCode::NotJoined,
            "send `join` or `resume` first",
        )),
    }
}
