//! The end-to-end test kit: a real Circle server on a free loopback port, and a typed websocket
//! client (tokio-tungstenite) that speaks the protocol with `circle-protocol`'s types.
//!
//! Waiting is always for a condition with a deadline ([`WAIT`]), never a bare sleep.

use anyhow::{Context, Result, anyhow, bail};
use circle_protocol::{
    ClientMsg, ErrorCode, PROTOCOL_VERSION, ParticipantId, RequestId, Role, RoomId, RoomSnapshot,
    ServerMsg,
};
use circle_server::{Running, config::Config};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::{collections::VecDeque, time::Duration};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{Message, client::IntoClientRequest, protocol::CloseFrame},
};

pub use circle_protocol as proto;

/// How long any expected message may take before a test fails.
pub const WAIT: Duration = Duration::from_secs(5);

/// A server for one test.
pub struct TestServer {
    /// The running server.
    pub running: Running,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Its data directory.
    pub data: DataDir,
}

/// Where [`test_config`] puts each server's data directory: under the system's temporary folder,
/// never in the source tree; a [`TestServer`] removes its own when dropped.
const AUTO_DATA_PREFIX: &str = "circle-test-auto-";

/// A fresh, not yet existing directory under the system's temporary folder.
pub fn scratch_dir(label: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    std::env::temp_dir().join(format!(
        "{label}{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Makes sure `program` runs here, installing Debian's `package` with apt-get when it does not (CI
/// runs as root on a clean machine; `apt-get update` only when the first try fails). Panics saying
/// so when it still cannot be had: a test that needs it must not pass without it.
pub fn debian_tool(program: &str, package: &str) {
    use std::process::{Command, Stdio};
    let found = || {
        Command::new(program)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !found() {
        let install = |args: &[&str]| {
            Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let args = ["install", "-y", "--no-install-recommends", package];
        if !install(&args) {
            let _ = install(&["update"]);
            install(&args);
        }
    }
    assert!(
        found(),
        "{program} is missing and `apt-get install {package}` failed: run this test as root with \
         the Debian mirror reachable, or install Debian's `{package}` package first"
    );
}

/// A config for tests: loopback, free port, no served client, a data directory of its own.
pub fn test_config() -> Config {
    let mut c = Config::default();
    c.storage.data_dir = scratch_dir(AUTO_DATA_PREFIX).display().to_string();
    c.server.listen = "127.0.0.1:0".parse().expect("loopback address");
    c.client.listen = "127.0.0.1:0".parse().expect("loopback address");
    c.media.listen = "127.0.0.1:0".parse().expect("loopback address");
    // Every test client is the same loopback address; tests of the per-client limit set their own.
    c.limits.rooms_per_client_burst = 10_000;
    c
}

/// Starts a server with the test config changed by `tweak`.
pub async fn server_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
    let mut c = test_config();
    tweak(&mut c);
    let data = DataDir(c.storage.data_dir.clone().into());
    let running = circle_server::start(c).await.expect("server starts");
    let base = format!("http://{}", running.addr);
    TestServer {
        running,
        base,
        data,
    }
}

/// Starts a server on the test config.
pub async fn server() -> TestServer {
    server_with(|_| {}).await
}

/// A server's data directory, removed when dropped if [`test_config`] made it up (one a test chose
/// itself, to start a second server on it, is the test's to remove).
pub struct DataDir(pub std::path::PathBuf);

impl Drop for DataDir {
    fn drop(&mut self) {
        let dir = &self.0;
        if dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(AUTO_DATA_PREFIX))
        {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// What `POST /api/rooms` returned.
#[derive(Debug, Clone)]
pub struct CreatedRoom {
    /// The room id.
    pub room: RoomId,
    /// The facilitator secret.
    pub secret: String,
    /// The whole JSON reply.
    pub json: Value,
}

impl TestServer {
    /// Creates a room with this JSON body (e.g. `{"settings": {"waiting_room": false}}`).
    pub async fn create_room(&self, body: Value) -> CreatedRoom {
        let res = reqwest::Client::new()
            .post(format!("{}/api/rooms", self.base))
            .json(&body)
            .send()
            .await
            .expect("POST /api/rooms");
        assert_eq!(res.status(), 201, "room created");
        let json: Value = res.json().await.expect("JSON reply");
        CreatedRoom {
            room: RoomId(json["room"].as_str().expect("room id").to_owned()),
            secret: json["facilitator_secret"]
                .as_str()
                .expect("secret")
                .to_owned(),
            json,
        }
    }

    /// Opens a websocket with no Origin header.
    pub async fn connect(&self) -> Client {
        Client::connect(&self.ws_url(), None)
            .await
            .expect("websocket connects")
    }

    /// The websocket URL.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.running.addr)
    }

    /// A connected client that joined `room` as `name` (facilitator if `secret` is given), with its
    /// `joined` reply.
    pub async fn join(
        &self,
        room: &CreatedRoom,
        name: &str,
        facilitator: bool,
    ) -> (Client, Joined) {
        let mut c = self.connect().await;
        let j = c
            .join(
                &room.room,
                name,
                facilitator.then(|| room.secret.clone()),
                None,
            )
            .await
            .expect("join succeeds");
        (c, j)
    }
}

/// The parts of `joined` tests use.
#[derive(Debug, Clone)]
pub struct Joined {
    /// Our id.
    pub you: ParticipantId,
    /// Our role.
    pub role: Role,
    /// The resume token.
    pub token: String,
    /// In the waiting room.
    pub waiting: bool,
    /// This took up a place we already had (a resume, or a join from the same device).
    pub resumed: bool,
    /// What we see.
    pub room: RoomSnapshot,
    /// The STUN / TURN servers handed to us.
    pub ice_servers: Vec<circle_protocol::IceServer>,
}

/// A typed protocol client.
pub struct Client {
    /// The socket.
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The next request id.
    next_id: u64,
    /// Messages read while waiting for something else, oldest first.
    inbox: VecDeque<ServerMsg>,
    /// Set once the server closed the socket.
    pub close: Option<Option<CloseFrame>>,
}

impl Client {
    /// Connects, with an Origin header if given.
    pub async fn connect(url: &str, origin: Option<&str>) -> Result<Self> {
        let mut req = url.into_client_request()?;
        if let Some(o) = origin {
            req.headers_mut().insert("Origin", o.parse()?);
        }
        let (ws, _) = connect_async(req).await?;
        Ok(Self {
            ws,
            next_id: 1,
            inbox: VecDeque::new(),
            close: None,
        })
    }

    /// Connects with a tiny receive buffer, so that a client that stops reading fills up quickly.
    pub async fn connect_small_buffer(url: &str, addr: std::net::SocketAddr) -> Result<Self> {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        socket.set_recv_buffer_size(4096)?;
        socket.connect(&addr.into())?;
        socket.set_nonblocking(true)?;
        let tcp = TcpStream::from_std(std::net::TcpStream::from(socket))?;
        let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp)).await?;
        Ok(Self {
            ws,
            next_id: 1,
            inbox: VecDeque::new(),
            close: None,
        })
    }

    /// Sends raw text.
    pub async fn send_raw(&mut self, text: impl Into<String>) {
        let _ = self.ws.send(Message::text(text.into())).await;
    }

    /// Sends a binary frame.
    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        let _ = self.ws.send(Message::binary(bytes)).await;
    }

    /// The next message (buffered first), or `None` once the socket ends or 30 s pass in silence.
    pub async fn next_event(&mut self) -> Option<ServerMsg> {
        if let Some(m) = self.inbox.pop_front() {
            return Some(m);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        self.read_until(deadline).await.ok()
    }

    /// Sends a message as is (its id, if any, included).
    pub async fn send(&mut self, msg: &ClientMsg) {
        let text = serde_json::to_string(msg).expect("client messages serialise");
        self.send_raw(text).await;
    }

    /// Sends a message with a fresh request id and waits for the `ack`, `error` or `joined` that
    /// answers it; events read meanwhile are kept for [`Client::expect`].
    pub async fn request(&mut self, msg: &ClientMsg) -> Result<ServerMsg> {
        let id = self.next_id;
        self.next_id += 1;
        let mut v = serde_json::to_value(msg)?;
        v["id"] = Value::from(id);
        self.send_raw(v.to_string()).await;
        let want = RequestId::Num(id);
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let m = self.read_until(deadline).await?;
            match &m {
                ServerMsg::Ack { id } if *id == want => return Ok(m),
                ServerMsg::Error { id: Some(id), .. } if *id == want => return Ok(m),
                ServerMsg::Joined { id: Some(id), .. } if *id == want => return Ok(m),
                _ => self.inbox.push_back(m),
            }
        }
    }

    /// Sends a request that must be acknowledged.
    pub async fn ok(&mut self, msg: ClientMsg) {
        match self.request(&msg).await {
            Ok(ServerMsg::Ack { .. }) => {}
            other => panic!("expected ack for {msg:?}, got {other:?}"),
        }
    }

    /// Sends a request that must fail with `code`.
    pub async fn fails(&mut self, msg: ClientMsg, code: ErrorCode) {
        match self.request(&msg).await {
            Ok(ServerMsg::Error { code: c, .. }) if c == code => {}
            other => panic!("expected {code:?} for {msg:?}, got {other:?}"),
        }
    }

    /// Joins a room.
    pub async fn join(
        &mut self,
        room: &RoomId,
        name: &str,
        secret: Option<String>,
        device: Option<String>,
    ) -> Result<Joined> {
        let msg = ClientMsg::Join {
            id: None,
            protocol: PROTOCOL_VERSION,
            room: room.clone(),
            name: name.into(),
            secret,
            device,
            carry: None,
        };
        joined(self.request(&msg).await?)
    }

    /// Resumes a session.
    pub async fn resume(&mut self, room: &RoomId, token: &str) -> Result<Joined> {
        let msg = ClientMsg::Resume {
            id: None,
            protocol: PROTOCOL_VERSION,
            room: room.clone(),
            token: token.into(),
        };
        joined(self.request(&msg).await?)
    }

    /// Waits for the first message (buffered or new) that `pick` accepts, and returns what it made
    /// of it. Messages it skips stay buffered.
    pub async fn expect<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(&ServerMsg) -> Option<T>,
    ) -> T {
        if let Some(t) = take_buffered(&mut self.inbox, &mut pick) {
            return t;
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match self.read_until(deadline).await {
                Ok(m) => match pick(&m) {
                    Some(t) => return t,
                    None => self.inbox.push_back(m),
                },
                Err(e) => panic!("waiting for {what}: {e}; buffered: {:#?}", self.inbox),
            }
        }
    }

    /// Drops buffered messages.
    pub fn clear(&mut self) {
        self.inbox.clear();
    }

    /// The buffered messages.
    pub fn buffered(&self) -> &VecDeque<ServerMsg> {
        &self.inbox
    }

    /// Reads everything the server sends until it closes the socket (or [`WAIT`] passes); returns the
    /// messages read and the close frame.
    pub async fn until_closed(&mut self) -> (Vec<ServerMsg>, Option<CloseFrame>) {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut seen: Vec<ServerMsg> = self.inbox.drain(..).collect();
        while let Ok(m) = self.read_until(deadline).await {
            seen.push(m);
        }
        let close = self.close.clone().unwrap_or(None);
        assert!(
            self.close.is_some(),
            "the server closed the socket; saw {seen:#?}"
        );
        (seen, close)
    }

    /// Proves nothing matching `pick` arrives: sends a request and waits for its reply, which the
    /// server sends after anything already queued for us.
    pub async fn none_pending(&mut self, what: &str, mut pick: impl FnMut(&ServerMsg) -> bool) {
        // `lower_hand` on our own lowered hand is a harmless no-op that every joined client may send.
        let _ = self
            .request(&ClientMsg::LowerHand {
                id: None,
                participant: None,
            })
            .await;
        if let Some(m) = self.inbox.iter().find(|m| pick(m)) {
            panic!("expected no {what}, got {m:?}");
        }
    }

    /// Closes the socket from our side, like a dropped network would (no `leave`).
    pub async fn drop_connection(mut self) {
        let _ = self.ws.close(None).await;
    }

    async fn read_until(&mut self, deadline: tokio::time::Instant) -> Result<ServerMsg> {
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .map_err(|_| anyhow!("timed out"))?;
            match next {
                Some(Ok(Message::Text(t))) => {
                    return serde_json::from_str(t.as_str())
                        .with_context(|| format!("server sent {t}"));
                }
                Some(Ok(Message::Close(frame))) => {
                    self.close = Some(frame);
                    bail!("closed by server");
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    if self.close.is_none() {
                        self.close = Some(None);
                    }
                    bail!("socket error: {e}");
                }
                None => {
                    if self.close.is_none() {
                        self.close = Some(None);
                    }
                    bail!("socket ended");
                }
            }
        }
    }
}

/// Takes the first buffered message `pick` accepts, and what it made of it; the rest stay buffered.
pub(crate) fn take_buffered<T>(
    inbox: &mut VecDeque<ServerMsg>,
    pick: &mut impl FnMut(&ServerMsg) -> Option<T>,
) -> Option<T> {
    let i = inbox.iter().position(|m| pick(m).is_some())?;
    let m = inbox.remove(i)?;
    pick(&m)
}

pub(crate) fn joined(m: ServerMsg) -> Result<Joined> {
    match m {
        ServerMsg::Joined {
            you,
            role,
            resume_token,
            waiting,
            resumed,
            room,
            ice_servers,
            ..
        } => Ok(Joined {
            you,
            role,
            token: resume_token,
            waiting,
            resumed,
            room,
            ice_servers,
        }),
        ServerMsg::Error { code, message, .. } => {
            Err(anyhow!("join refused: {code} ({message})")).context(code)
        }
        other => bail!("expected joined, got {other:?}"),
    }
}

/// The error code of a failed join, for tests of refusals.
pub fn join_error(e: &anyhow::Error) -> Option<ErrorCode> {
    e.downcast_ref::<ErrorCode>().copied()
}

pub mod standing;
pub mod voice;
