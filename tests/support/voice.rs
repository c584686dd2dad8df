//! Voice in the end-to-end tests: a joined [`Client`] becomes a [`VoiceMember`], a member with a real
//! WebRTC audio connection to the server's relay ([`AudioPeer`], on 127.0.0.1) that sends 50 packets/s
//! and counts what it receives from each other member.
//!
//! A member's websocket is read by a *pump* task, because the server renegotiates whenever someone
//! comes or goes and a test waiting for something else must not leave those offers unanswered. The
//! pump:
//! - answers every server `media_offer` with the current peer and sends the `media_answer`;
//! - runs the member's own `media_offer` exchanges ([`VoiceMember::start_media`]), dropping any server
//!   offer that arrives between our offer and its answer (it belongs to the session ours replaces);
//! - keeps each participant's `stream` id as this member's roster shows it;
//! - passes every other message to the test, which reads them with [`VoiceMember::expect`] and sends
//!   requests with [`VoiceMember::request`] / [`VoiceMember::ok`], as with a plain [`Client`].
//!
//! The pump ends when the server closes the socket or the member hangs up
//! ([`VoiceMember::drop_connection`], [`VoiceMember::close`]).

use crate::{Client, CreatedRoom, Joined, TestServer, WAIT, take_buffered};
use circle_media::MediaStats;
use circle_protocol::{ClientMsg, ErrorCode, ParticipantId, RequestId, RoomId, ServerMsg};
pub use circle_rtc_client::AudioPeer;
use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
    time::Instant,
};

/// How long media may take to connect or to show an expected effect (ICE + DTLS on a busy machine).
pub const MEDIA_WAIT: Duration = Duration::from_secs(10);

/// Ids the pump puts on its own requests start with this, so it can tell their replies apart.
const PUMP_ID_PREFIX: &str = "voice-pump-";

/// Each participant's stream id as one member's roster shows it (shared between pump and test).
type Roster = Arc<Mutex<HashMap<ParticipantId, String>>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Polls `cond` every 10 ms until it holds; panics naming `what` after [`MEDIA_WAIT`].
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    eventually(|| if cond() { Ok(()) } else { Err(what.to_owned()) }).await;
}

/// Polls `check` every 10 ms until it passes; after [`MEDIA_WAIT`] panics with its last complaint.
pub async fn eventually(mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + MEDIA_WAIT;
    loop {
        match check() {
            Ok(()) => return,
            Err(e) if Instant::now() >= deadline => panic!("timed out waiting for: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// The relay's counts of live state.
pub async fn relay_stats(srv: &TestServer) -> MediaStats {
    let media = srv
        .running
        .state
        .media
        .as_ref()
        .expect("the server relays voice");
    media.handle.stats().await.expect("relay running")
}

/// Polls the relay's stats until `cond` holds; panics naming `what` after [`MEDIA_WAIT`].
pub async fn wait_relay(
    srv: &TestServer,
    what: &str,
    cond: impl Fn(&MediaStats) -> bool,
) -> MediaStats {
    let deadline = Instant::now() + MEDIA_WAIT;
    loop {
        let stats = relay_stats(srv).await;
        if cond(&stats) {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for: {what}; relay: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A barrier: returns once every packet the relay forwarded to `receivers` before the call has been
/// read and counted by them.
///
/// The relay is one task and sends with non-blocking writes, so once it has answered a stats request
/// everything it forwarded before is in the receivers' (loopback) socket buffers; [`AudioPeer::sync`]
/// then waits until each receiver has read its buffer empty. Use it after a mute or mode change was
/// acknowledged, to take a baseline no packet forwarded before the change can still move.
pub async fn settle(srv: &TestServer, receivers: &[&VoiceMember]) {
    relay_stats(srv).await;
    for r in receivers {
        r.peer.sync().await.expect("peer running");
    }
}

/// What the test asks of the pump.
enum ToPump {
    /// Send this frame as is.
    Send(String),
    /// Start a fresh media session with this peer; reply once its answer is applied.
    StartMedia(AudioPeer, oneshot::Sender<Result<(), String>>),
    /// Close the socket from our side (like a dropped network) and end.
    HangUp,
}

/// A joined member with a voice connection.
pub struct VoiceMember {
    /// What `joined` said (updated by [`VoiceMember::resume`]).
    pub joined: Joined,
    /// The current media session's connection (replaced by [`VoiceMember::start_media`]).
    pub peer: AudioPeer,
    /// Requests to the pump.
    to_pump: mpsc::UnboundedSender<ToPump>,
    /// Every message the pump does not handle itself, in order.
    from_pump: mpsc::UnboundedReceiver<ServerMsg>,
    /// Messages read while waiting for something else, oldest first.
    inbox: VecDeque<ServerMsg>,
    /// Stream ids as this member's roster shows them.
    roster: Roster,
    /// Media signalling failures the pump met (answers the server refused, offers it could not take).
    errors: Arc<Mutex<Vec<String>>>,
    /// The pump; ends when the socket does. Taken once awaited.
    pump: Option<JoinHandle<()>>,
    /// Whether its media goes over ICE-TCP only ([`VoiceMember::join_tcp`]).
    tcp: bool,
    /// Numbers the test's requests.
    next_id: u64,
}

/// A member's media connection: over UDP, or over ICE-TCP only.
async fn new_peer(tcp: bool) -> AudioPeer {
    match tcp {
        true => AudioPeer::new_tcp().await.expect("audio peer over tcp"),
        false => AudioPeer::new().await.expect("audio peer"),
    }
}

impl VoiceMember {
    /// Joins `room` as `name` (facilitator if `facilitator`) and starts voice.
    pub async fn join(
        srv: &TestServer,
        room: &CreatedRoom,
        name: &str,
        facilitator: bool,
    ) -> VoiceMember {
        let (client, joined) = srv.join(room, name, facilitator).await;
        VoiceMember::start(client, joined).await
    }

    /// Like [`VoiceMember::join`] for a member whose network drops UDP: its media reaches the relay
    /// over ICE-TCP only (`AudioPeer::new_tcp`), so the server needs `media.tcp_listen`.
    pub async fn join_tcp(
        srv: &TestServer,
        room: &CreatedRoom,
        name: &str,
        facilitator: bool,
    ) -> VoiceMember {
        let (client, joined) = srv.join(room, name, facilitator).await;
        VoiceMember::start_on(client, joined, true).await
    }

    /// Takes over a joined client: starts its pump and a media session, and waits until the media
    /// connection is up and sending. Panics if it does not come up within [`MEDIA_WAIT`].
    pub async fn start(client: Client, joined: Joined) -> VoiceMember {
        VoiceMember::start_on(client, joined, false).await
    }

    async fn start_on(client: Client, joined: Joined, tcp: bool) -> VoiceMember {
        let roster = Roster::default();
        let errors = Arc::new(Mutex::new(Vec::new()));
        let (to_pump, from_pump, pump) = spawn_pump(client, &joined, &roster, &errors);
        let mut member = VoiceMember {
            joined,
            peer: new_peer(tcp).await,
            to_pump,
            from_pump,
            inbox: VecDeque::new(),
            roster,
            errors,
            pump: Some(pump),
            next_id: 1,
            tcp,
        };
        member.negotiate().await;
        member
    }

    /// Starts a fresh media session (what a client does after a reconnect, or for an ICE restart): a
    /// new connection offers, the server answers and replaces our old session; the old connection is
    /// closed. Waits until the new one is up and sending.
    pub async fn start_media(&mut self) {
        self.peer.close().await;
        self.peer = new_peer(self.tcp).await;
        self.negotiate().await;
    }

    async fn negotiate(&mut self) {
        let (reply, answered) = oneshot::channel();
        self.to_pump
            .send(ToPump::StartMedia(self.peer.clone(), reply))
            .expect("pump running");
        let result = tokio::time::timeout(WAIT, answered)
            .await
            .expect("media_answer in time")
            .expect("pump running");
        if let Err(e) = result {
            panic!("{}: media_offer failed: {e}", self.name());
        }
        self.peer.start_sending();
        let peer = self.peer.clone();
        wait_until(&format!("{}'s media connects", self.name()), || {
            peer.is_connected()
        })
        .await;
    }

    /// Messages read while waiting for something else (oldest first), after draining what the pump
    /// has passed on so far.
    pub fn buffered(&mut self) -> &VecDeque<ServerMsg> {
        while let Ok(m) = self.from_pump.try_recv() {
            self.inbox.push_back(m);
        }
        &self.inbox
    }

    /// Our participant id.
    pub fn id(&self) -> &ParticipantId {
        &self.joined.you
    }

    /// Our name, for messages.
    pub fn name(&self) -> String {
        self.own_view()
            .map(|p| p.name.clone())
            .unwrap_or_else(|| self.joined.you.to_string())
    }

    fn own_view(&self) -> Option<&circle_protocol::ParticipantView> {
        self.joined
            .room
            .participants
            .iter()
            .find(|p| p.id == self.joined.you)
    }

    /// The stream id of our own voice, as our `joined` shows it.
    pub fn own_stream(&self) -> String {
        self.own_view()
            .and_then(|p| p.stream.clone())
            .expect("joined shows our own stream id")
    }

    /// The stream id of `who`'s voice as this member's roster shows it, if it shows them.
    pub fn stream_of(&self, who: &ParticipantId) -> Option<String> {
        lock(&self.roster).get(who).cloned()
    }

    /// Packets this member received from `other`, by `other`'s stream id in this member's roster or,
    /// where the roster does not show them (a waiting member sees no one), by `other`'s own.
    pub fn received_from(&self, other: &VoiceMember) -> u64 {
        let stream = self
            .stream_of(other.id())
            .unwrap_or_else(|| other.own_stream());
        self.peer.received_from(&stream)
    }

    /// Media signalling failures so far (should be none).
    pub fn media_errors(&self) -> Vec<String> {
        lock(&self.errors).clone()
    }

    /// Sends a message with a fresh request id and waits for the `ack`, `error` or `media_answer` that
    /// answers it; events read meanwhile are kept for [`VoiceMember::expect`].
    pub async fn request(&mut self, msg: &ClientMsg) -> ServerMsg {
        let want = RequestId::Str(format!("test-{}", self.next_id));
        self.next_id += 1;
        let mut v = serde_json::to_value(msg).expect("client messages serialise");
        v["id"] = serde_json::to_value(&want).expect("ids serialise");
        self.send_raw(v.to_string());
        let deadline = Instant::now() + WAIT;
        loop {
            let Some(m) = self.read_until(deadline).await else {
                panic!("{}: no reply to {msg:?}", self.name());
            };
            match &m {
                ServerMsg::Ack { id } if *id == want => return m,
                ServerMsg::Error { id: Some(id), .. } if *id == want => return m,
                ServerMsg::MediaAnswer { id: Some(id), .. } if *id == want => return m,
                _ => self.inbox.push_back(m),
            }
        }
    }

    /// Sends a request that must be acknowledged.
    pub async fn ok(&mut self, msg: ClientMsg) {
        match self.request(&msg).await {
            ServerMsg::Ack { .. } => {}
            other => panic!("{}: expected ack for {msg:?}, got {other:?}", self.name()),
        }
    }

    /// Sends a request that must fail with `code`.
    pub async fn fails(&mut self, msg: ClientMsg, code: ErrorCode) {
        match self.request(&msg).await {
            ServerMsg::Error { code: c, .. } if c == code => {}
            other => panic!(
                "{}: expected {code:?} for {msg:?}, got {other:?}",
                self.name()
            ),
        }
    }

    /// Unmutes our own microphone (`set_self_mute false`), which must be acknowledged.
    pub async fn unmute(&mut self) {
        self.ok(ClientMsg::SetSelfMute {
            id: None,
            muted: false,
        })
        .await;
    }

    /// Waits for the first message (buffered or new) that `pick` accepts; skipped ones stay buffered.
    pub async fn expect<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(&ServerMsg) -> Option<T>,
    ) -> T {
        if let Some(t) = take_buffered(&mut self.inbox, &mut pick) {
            return t;
        }
        let deadline = Instant::now() + WAIT;
        loop {
            match self.read_until(deadline).await {
                Some(m) => match pick(&m) {
                    Some(t) => return t,
                    None => self.inbox.push_back(m),
                },
                None => panic!(
                    "{}: waiting for {what}: timed out or closed; buffered: {:#?}",
                    self.name(),
                    self.inbox
                ),
            }
        }
    }

    /// Waits until the server has closed our websocket; returns everything it sent that the test had
    /// not read.
    pub async fn until_closed(&mut self) -> Vec<ServerMsg> {
        let mut seen: Vec<ServerMsg> = self.inbox.drain(..).collect();
        let deadline = Instant::now() + WAIT;
        while let Some(m) = self.read_until(deadline).await {
            seen.push(m);
        }
        assert!(
            self.pump_ended().await,
            "{}: the server closed the socket; saw {seen:#?}",
            self.name()
        );
        seen
    }

    /// Closes the websocket from our side, like a dropped network would (no `leave`). The media
    /// connection is left as it is.
    pub async fn drop_connection(&mut self) {
        let _ = self.to_pump.send(ToPump::HangUp);
        assert!(self.pump_ended().await, "{}: hung up", self.name());
    }

    /// Waits up to [`WAIT`] for the pump to end (the socket closed); whether it did.
    async fn pump_ended(&mut self) -> bool {
        let Some(mut pump) = self.pump.take() else {
            return true;
        };
        if tokio::time::timeout(WAIT, &mut pump).await.is_ok() {
            return true;
        }
        self.pump = Some(pump);
        false
    }

    /// Resumes our session on a new websocket with our resume token (after
    /// [`VoiceMember::drop_connection`]), then starts a fresh media session as a client must.
    pub async fn resume(&mut self, srv: &TestServer, room: &RoomId) {
        let mut client = srv.connect().await;
        let joined = client
            .resume(room, &self.joined.token)
            .await
            .expect("resume succeeds");
        let (to_pump, from_pump, pump) = spawn_pump(client, &joined, &self.roster, &self.errors);
        self.joined = joined;
        self.to_pump = to_pump;
        self.from_pump = from_pump;
        self.pump = Some(pump);
        self.inbox.clear();
        self.start_media().await;
    }

    /// Leaves the meeting (`leave`, acknowledged), closes the media connection and waits until both
    /// the server closed the socket and our tasks ended.
    pub async fn leave(mut self) {
        self.ok(ClientMsg::Leave { id: None }).await;
        self.until_closed().await;
        self.peer.close().await;
    }

    /// Hangs up the websocket and closes the media connection, waiting for both tasks to end.
    pub async fn close(mut self) {
        self.drop_connection().await;
        self.peer.close().await;
    }

    fn send_raw(&self, text: String) {
        // A closed pump shows up as a missing reply, with the test's own message.
        let _ = self.to_pump.send(ToPump::Send(text));
    }

    /// The next message from the pump, or `None` at the deadline or once the socket ended.
    async fn read_until(&mut self, deadline: Instant) -> Option<ServerMsg> {
        tokio::time::timeout_at(deadline, self.from_pump.recv())
            .await
            .ok()
            .flatten()
    }
}

/// Starts the pump for a joined client.
fn spawn_pump(
    client: Client,
    joined: &Joined,
    roster: &Roster,
    errors: &Arc<Mutex<Vec<String>>>,
) -> (
    mpsc::UnboundedSender<ToPump>,
    mpsc::UnboundedReceiver<ServerMsg>,
    JoinHandle<()>,
) {
    // Unbounded both ways: a test sends a handful of requests and reads what it needs; a test's whole
    // life of server messages is small.
    let (to_pump, from_test) = mpsc::unbounded_channel();
    let (to_test, from_pump) = mpsc::unbounded_channel();
    let pump = Pump {
        client,
        from_test,
        to_test,
        peer: None,
        pending: None,
        roster: roster.clone(),
        errors: errors.clone(),
        next_id: 1,
    };
    pump.learn_room(&joined.room);
    (to_pump, from_pump, tokio::spawn(pump.run()))
}

/// A `media_offer` of ours awaiting its `media_answer`.
struct PendingOffer {
    /// The offer's request id, echoed in the answer.
    id: RequestId,
    /// The connection that offered.
    peer: AudioPeer,
    /// Told once the answer is applied, or why not.
    reply: oneshot::Sender<Result<(), String>>,
}

/// The task that owns a member's websocket (see the module docs).
struct Pump {
    /// The websocket.
    client: Client,
    /// Requests from the test; closed when the [`VoiceMember`] is dropped, which ends the pump.
    from_test: mpsc::UnboundedReceiver<ToPump>,
    /// Messages for the test.
    to_test: mpsc::UnboundedSender<ServerMsg>,
    /// The connection that answers the server's offers (the last one whose session started).
    peer: Option<AudioPeer>,
    /// Our `media_offer` awaiting its `media_answer`.
    pending: Option<PendingOffer>,
    /// Stream ids as this member's roster shows them.
    roster: Roster,
    /// Media signalling failures.
    errors: Arc<Mutex<Vec<String>>>,
    /// Numbers the pump's own requests.
    next_id: u64,
}

impl Pump {
    async fn run(mut self) {
        loop {
            tokio::select! {
                cmd = self.from_test.recv() => match cmd {
                    Some(ToPump::Send(text)) => self.client.send_raw(text).await,
                    Some(ToPump::StartMedia(peer, reply)) => self.offer(peer, reply).await,
                    Some(ToPump::HangUp) | None => break,
                },
                msg = self.client.next_event() => match msg {
                    Some(m) => self.on_message(m).await,
                    None if self.client.close.is_some() => return,
                    None => {} // 30 s of silence: keep reading
                },
            }
        }
        self.client.drop_connection().await;
    }

    fn fresh_id(&mut self) -> RequestId {
        let id = RequestId::Str(format!("{PUMP_ID_PREFIX}{}", self.next_id));
        self.next_id += 1;
        id
    }

    async fn offer(&mut self, peer: AudioPeer, reply: oneshot::Sender<Result<(), String>>) {
        match peer.create_offer().await {
            Ok(sdp) => {
                let id = self.fresh_id();
                self.client
                    .send(&ClientMsg::MediaOffer {
                        id: Some(id.clone()),
                        sdp,
                    })
                    .await;
                self.pending = Some(PendingOffer { id, peer, reply });
            }
            Err(e) => {
                let _ = reply.send(Err(e.to_string()));
            }
        }
    }

    fn is_pending(&self, id: &RequestId) -> bool {
        self.pending.as_ref().is_some_and(|p| p.id == *id)
    }

    async fn on_message(&mut self, m: ServerMsg) {
        match m {
            ServerMsg::MediaOffer { sdp } => {
                if self.pending.is_some() {
                    return; // for the session our pending offer replaces
                }
                let Some(peer) = self.peer.clone() else {
                    self.error("a server media_offer before any session".into());
                    return;
                };
                match peer.handle_offer(sdp).await {
                    Ok(answer) => {
                        let id = self.fresh_id();
                        self.client
                            .send(&ClientMsg::MediaAnswer {
                                id: Some(id),
                                sdp: answer,
                            })
                            .await;
                    }
                    Err(e) => self.error(format!("answering the server's offer: {e}")),
                }
            }
            ServerMsg::MediaAnswer { id: Some(id), sdp } if self.is_pending(&id) => {
                let PendingOffer { peer, reply, .. } =
                    self.pending.take().expect("checked pending");
                let result = peer.apply_answer(sdp).await.map_err(|e| e.to_string());
                if result.is_ok() {
                    self.peer = Some(peer);
                }
                let _ = reply.send(result);
            }
            ServerMsg::Error {
                id: Some(id),
                code,
                message,
                ..
            } if self.is_pending(&id) => {
                let PendingOffer { reply, .. } = self.pending.take().expect("checked pending");
                let _ = reply.send(Err(format!("{code}: {message}")));
            }
            ServerMsg::Ack { id } if is_pump_id(&id) => {}
            ServerMsg::Error {
                id: Some(id),
                code,
                message,
                ..
            } if is_pump_id(&id) => self.error(format!("media_answer refused: {code}: {message}")),
            other => {
                match &other {
                    ServerMsg::Admitted { room } | ServerMsg::RoomState { room } => {
                        self.learn_room(room)
                    }
                    ServerMsg::MoreParticipants { participants } => {
                        participants.iter().for_each(|p| self.learn(p));
                    }
                    ServerMsg::ParticipantJoined { participant }
                    | ServerMsg::ParticipantUpdated { participant } => {
                        self.learn(participant);
                    }
                    _ => {}
                }
                let _ = self.to_test.send(other);
            }
        }
    }

    fn error(&self, e: String) {
        lock(&self.errors).push(e);
    }

    fn learn_room(&self, room: &circle_protocol::RoomSnapshot) {
        for p in &room.participants {
            self.learn(p);
        }
    }

    fn learn(&self, p: &circle_protocol::ParticipantView) {
        if let Some(stream) = &p.stream {
            lock(&self.roster).insert(p.id.clone(), stream.clone());
        }
    }
}

fn is_pump_id(id: &RequestId) -> bool {
    matches!(id, RequestId::Str(s) if s.starts_with(PUMP_ID_PREFIX))
}
