//! One participant as the soak drives it: a websocket session (join, resume, requests answered by
//! id, a dropped connection) with an optional voice connection ([`AudioPeer`], a real WebRTC client
//! on 127.0.0.1) whose signalling runs on the same socket.
//!
//! Everything a session does happens on the task that owns it: while it waits for a reply it also
//! answers the server's renegotiation offers (which come whenever someone in the room starts or
//! stops voice), as a browser must. Every wait has a deadline.

use crate::client::{self, Ws};
use anyhow::{Context, Result, anyhow, bail};
use circle_protocol::{ClientMsg, PROTOCOL_VERSION, RequestId, RoomId};
use circle_rtc_client::AudioPeer;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::{
    collections::BTreeMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};
use tokio::time::{Instant, timeout_at};
use tokio_tungstenite::tungstenite::Message;

/// Longest wait for a reply to one request (`joined`, `ack`, `media_answer`), on a busy machine.
pub const REPLY_WAIT: Duration = Duration::from_secs(20);
/// Longest wait for a new media connection to come up (ICE + DTLS).
pub const MEDIA_WAIT: Duration = Duration::from_secs(20);

/// What every session counts, shared by the whole run.
#[derive(Default)]
pub struct Counters {
    pub joins: AtomicU64,
    pub resumes: AtomicU64,
    pub leaves: AtomicU64,
    pub drops: AtomicU64,
    /// Sessions dropped and never resumed: the server ends them when their grace period runs out.
    pub abandoned: AtomicU64,
    pub voice_sessions: AtomicU64,
    pub reoffers: AtomicU64,
    pub server_offers_answered: AtomicU64,
    pub chats: AtomicU64,
    pub hands: AtomicU64,
    /// `error` replies, by code (there should be none).
    pub errors: Mutex<BTreeMap<String, u64>>,
}

impl Counters {
    fn error(&self, code: &str) {
        *self
            .errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(code.to_owned())
            .or_default() += 1;
    }

    /// `code: n` for every error code seen, or "none".
    pub fn errors_line(&self) -> String {
        let errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        if errors.is_empty() {
            return "none".into();
        }
        errors
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A joined participant.
pub struct Session {
    ws: Option<Ws>,
    ws_url: String,
    room: RoomId,
    /// The latest resume token.
    token: String,
    /// Our participant id.
    pub you: String,
    /// The stream id of our voice, as `joined` shows it.
    pub stream: Option<String>,
    /// The current voice connection.
    pub peer: Option<AudioPeer>,
    /// Our own `media_offer` is waiting for its answer: the server's offers meanwhile belong to the
    /// session ours replaces, so they are not answered.
    offering: bool,
    next_id: u64,
    /// Texts of room chat messages received that start with this, kept in order (the canary).
    pub watch_chat: Option<String>,
    /// What [`Session::watch_chat`] caught.
    pub chat_seen: Vec<String>,
}

impl Session {
    /// Connects and joins `room` as `name` (the room's waiting room must be off).
    pub async fn join(ws_url: &str, room: &RoomId, name: &str, c: &Counters) -> Result<Session> {
        let ws = client::connect(ws_url).await?;
        let mut s = Session {
            ws: Some(ws),
            ws_url: ws_url.to_owned(),
            room: room.clone(),
            token: String::new(),
            you: String::new(),
            stream: None,
            peer: None,
            offering: false,
            next_id: 1,
            watch_chat: None,
            chat_seen: Vec::new(),
        };
        let joined = s
            .request(
                ClientMsg::Join {
                    id: None,
                    protocol: PROTOCOL_VERSION,
                    room: room.clone(),
                    name: name.to_owned(),
                    secret: None,
                    device: None,
                },
                c,
            )
            .await?;
        s.learn_joined(&joined)?;
        c.joins.fetch_add(1, Relaxed);
        Ok(s)
    }

    fn learn_joined(&mut self, v: &Value) -> Result<()> {
        if v["type"] != "joined" {
            bail!("expected joined, got {v}");
        }
        if v["waiting"] == true {
            bail!("put in the waiting room");
        }
        self.token = v["resume_token"].as_str().context("no token")?.to_owned();
        self.you = v["you"].as_str().context("no id")?.to_owned();
        self.stream = v["room"]["participants"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["id"] == self.you.as_str()))
            .and_then(|p| p["stream"].as_str())
            .map(str::to_owned);
        Ok(())
    }

    fn ws(&mut self) -> Result<&mut Ws> {
        self.ws.as_mut().ok_or_else(|| anyhow!("no connection"))
    }

    /// Sends `msg` with a fresh request id and waits for the reply that carries it (`ack`,
    /// `joined`, `media_answer`); an `error` reply fails. Other messages are handled meanwhile.
    pub async fn request(&mut self, msg: ClientMsg, c: &Counters) -> Result<Value> {
        let id = format!("s{}", self.next_id);
        self.next_id += 1;
        let mut v = serde_json::to_value(&msg)?;
        v["id"] = serde_json::to_value(RequestId::Str(id.clone()))?;
        self.ws()?.send(Message::text(v.to_string())).await?;
        let deadline = Instant::now() + REPLY_WAIT;
        loop {
            let m = self
                .next(deadline, c)
                .await?
                .ok_or_else(|| anyhow!("no reply to {} within {REPLY_WAIT:?}", v["type"]))?;
            if m["id"] == id.as_str() {
                if m["type"] == "error" {
                    let code = m["code"].as_str().unwrap_or("?").to_owned();
                    c.error(&code);
                    bail!("{} refused: {code}: {}", v["type"], m["message"]);
                }
                return Ok(m);
            }
        }
    }

    /// Sends `msg` without waiting for its reply (an `error` shows up in the counters).
    pub async fn send(&mut self, msg: ClientMsg) -> Result<()> {
        let text = serde_json::to_string(&msg)?;
        self.ws()?.send(Message::text(text)).await?;
        Ok(())
    }

    /// Handles whatever arrives until `until`.
    pub async fn pump_until(&mut self, until: Instant, c: &Counters) -> Result<()> {
        while self.next(until, c).await?.is_some() {}
        Ok(())
    }

    /// The next message that is not handled here, or `None` at the deadline. Fails when the server
    /// closed the connection.
    async fn next(&mut self, deadline: Instant, c: &Counters) -> Result<Option<Value>> {
        loop {
            let ws = self.ws()?;
            let frame = match timeout_at(deadline, ws.next()).await {
                Err(_) => return Ok(None),
                Ok(None) => bail!("the server closed the connection"),
                Ok(Some(frame)) => frame?,
            };
            let text = match frame {
                Message::Text(t) => t,
                Message::Close(f) => bail!("the server closed the connection: {f:?}"),
                _ => continue,
            };
            let v: Value = serde_json::from_str(&text)?;
            match v["type"].as_str() {
                Some("media_offer") => self.answer_offer(&v, c).await?,
                Some("chat") => {
                    if let (Some(prefix), Some(t)) =
                        (&self.watch_chat, v["message"]["text"].as_str())
                        && t.starts_with(prefix.as_str())
                    {
                        self.chat_seen.push(t.to_owned());
                    }
                }
                Some("error") if v["id"].is_null() => {
                    c.error(v["code"].as_str().unwrap_or("?"));
                }
                Some("error") if v["id"].as_str().is_some_and(|id| id.starts_with('a')) => {
                    // A reply to one of our media answers.
                    c.error(v["code"].as_str().unwrap_or("?"));
                }
                _ => return Ok(Some(v)),
            }
        }
    }

    /// Answers a server renegotiation offer with the current voice connection.
    async fn answer_offer(&mut self, v: &Value, c: &Counters) -> Result<()> {
        if self.offering {
            return Ok(());
        }
        let Some(peer) = self.peer.clone() else {
            return Ok(());
        };
        let sdp = v["sdp"].as_str().context("offer without sdp")?.to_owned();
        let answer = peer.handle_offer(sdp).await?;
        let id = format!("a{}", self.next_id);
        self.next_id += 1;
        let msg = ClientMsg::MediaAnswer {
            id: Some(RequestId::Str(id)),
            sdp: answer,
        };
        self.send(msg).await?;
        c.server_offers_answered.fetch_add(1, Relaxed);
        Ok(())
    }

    /// Starts a fresh voice session (the first, or a re-offer replacing the old one, which is
    /// closed), waits until it is connected, and starts sending 50 packets/s.
    pub async fn start_voice(&mut self, c: &Counters) -> Result<()> {
        let reoffer = self.peer.is_some();
        if let Some(old) = self.peer.take() {
            old.close().await;
        }
        let peer = AudioPeer::new().await?;
        let offer = peer.create_offer().await?;
        self.offering = true;
        let reply = self
            .request(
                ClientMsg::MediaOffer {
                    id: None,
                    sdp: offer,
                },
                c,
            )
            .await;
        self.offering = false;
        let reply = reply?;
        let sdp = reply["sdp"].as_str().context("answer without sdp")?;
        peer.apply_answer(sdp.to_owned()).await?;
        self.peer = Some(peer.clone());
        let deadline = Instant::now() + MEDIA_WAIT;
        while !peer.is_connected() {
            if Instant::now() >= deadline {
                bail!(
                    "the voice connection did not come up within {MEDIA_WAIT:?} (its state: {:?}; {} renegotiation offers answered meanwhile)",
                    peer.state(),
                    peer.answered()
                );
            }
            self.pump_until(Instant::now() + Duration::from_millis(20), c)
                .await?;
        }
        peer.start_sending();
        if reoffer {
            c.reoffers.fetch_add(1, Relaxed);
        } else {
            c.voice_sessions.fetch_add(1, Relaxed);
        }
        Ok(())
    }

    /// Drops the websocket without a close frame, as a lost network does. The voice connection is
    /// left as it is (the server ends it when the session goes).
    pub fn drop_connection(&mut self, c: &Counters) {
        self.ws = None;
        c.drops.fetch_add(1, Relaxed);
    }

    /// Resumes on a new websocket with our token; with voice, starts a fresh voice session as a
    /// client must after a reconnect.
    pub async fn resume(&mut self, c: &Counters) -> Result<()> {
        self.ws = Some(client::connect(&self.ws_url).await?);
        let joined = self
            .request(
                ClientMsg::Resume {
                    id: None,
                    protocol: PROTOCOL_VERSION,
                    room: self.room.clone(),
                    token: self.token.clone(),
                },
                c,
            )
            .await?;
        self.learn_joined(&joined)?;
        c.resumes.fetch_add(1, Relaxed);
        if self.peer.is_some() {
            self.start_voice(c)
                .await
                .context("voice after the resume")?;
        }
        Ok(())
    }

    /// Leaves for good (`leave`, acknowledged), waits for the server to close the socket, and closes
    /// the voice connection.
    pub async fn leave(mut self, c: &Counters) -> Result<()> {
        self.request(ClientMsg::Leave { id: None }, c).await?;
        let deadline = Instant::now() + REPLY_WAIT;
        loop {
            match self.next(deadline, c).await {
                Ok(Some(_)) => {}
                Ok(None) => bail!("the server did not close the socket after leave"),
                Err(_) => break, // closed, as it should be
            }
        }
        c.leaves.fetch_add(1, Relaxed);
        self.close_voice().await;
        Ok(())
    }

    /// Closes the voice connection, if any, and waits for its task to end.
    pub async fn close_voice(&mut self) {
        if let Some(peer) = self.peer.take() {
            peer.close().await;
        }
    }
}
