//! One member of a `circle-load voice` run: a websocket session and a WebRTC audio connection on one
//! task, made as cheap as a load client can be while still being a real client to the relay.
//!
//! What a browser does, it does: it joins over the websocket, offers one Opus track (with the RFC 6464
//! audio-level extension), completes ICE and DTLS-SRTP with webrtc-rs's `rtc` stack, answers every
//! renegotiation offer, and keeps the connection alive (ICE consent, RTCP). What it skips:
//!
//! - **Decrypting everything.** A datagram that is RTP (not STUN, DTLS or RTCP) is counted from its
//!   plaintext header (SRTP encrypts only the payload) and only one in `sample` goes on to the stack,
//!   which decrypts it; its payload is then checked byte for byte and its send time read from it,
//!   which gives the forwarding delay. SRTP's rollover estimation tolerates the gaps.
//! - **Encrypting live.** A speaker encrypts its whole stream once, when it is connected (the same
//!   `write_rtp` path a live client uses, so the relay sees an ordinary SRTP stream), and then only
//!   sends those datagrams every 20 ms, noting each one's send time in its [`SendLog`].
//!
//! The payload of packet `k` of speaker `s`: [`MAGIC`], `s` and `k` (big-endian u32), then filler up
//! to an Opus frame's 100 bytes. The forwarding delay of a sampled packet is its arrival time minus
//! `SendLog::sent_at[k]` of speaker `s`: both clocks are this process's.

use anyhow::{Context, Result, anyhow, bail};
use bytes::{Bytes, BytesMut};
use circle_protocol::{ClientMsg, RequestId, RoomId};
use futures_util::{SinkExt, StreamExt};
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::configure_rtcp_reports;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MediaEngine};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp;
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::client;

/// Marks a load payload (checked on every decrypted sample).
pub const MAGIC: [u8; 4] = *b"CVLD";
/// An Opus frame's usual size.
const PAYLOAD_LEN: usize = 100;
/// What fills the payload after the header.
const FILL: u8 = 0xAB;
/// RFC 6464 level on every packet: voice activity, −30 dBov (someone speaking).
const SPEECH_LEVEL: u8 = 0x80 | 30;
const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
/// 20 ms Opus frames at 48 kHz.
const PACKET_INTERVAL: Duration = Duration::from_millis(20);
const TIMESTAMP_STEP: u32 = 960;
/// Largest datagram read; the relay never sends more than an MTU.
const MAX_DATAGRAM: usize = 2048;
/// Longest wait for one signalling reply (`joined`, `media_answer`, `ack`) on a loaded machine.
const REPLY_WAIT: Duration = Duration::from_secs(60);

/// Nanoseconds since this process's first call: the one clock senders and receivers share.
pub fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// When each packet of one speaker's stream left (0: not yet), indexed by its number `k`.
pub struct SendLog {
    pub sent_at: Box<[AtomicU64]>,
}

impl SendLog {
    pub fn new(packets: usize) -> Self {
        SendLog {
            sent_at: (0..packets).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

/// What the whole run shares: the switches the orchestrator flips and every speaker's send log.
pub struct RunState {
    /// Speakers send while this is set.
    pub sending: AtomicBool,
    /// Receivers record forwarding delays while this is set (the measurement window).
    pub measuring: AtomicBool,
    /// Every member task ends when this is cancelled (closing its connection first).
    pub stop: CancellationToken,
    /// One per speaker, by speaker number.
    pub logs: Vec<SendLog>,
    /// One in this many RTP datagrams is decrypted and checked.
    pub sample: u64,
}

/// One member's counters, read by the orchestrator without asking the member's task.
#[derive(Default)]
pub struct MemberStats {
    /// ICE and DTLS are up.
    pub connected: AtomicBool,
    /// A speaker: unmuted (acknowledged) and its stream encrypted, so it sends once told to.
    pub ready: AtomicBool,
    /// RTP datagrams received (every forwarded packet, counted from its header).
    pub received: AtomicU64,
    /// Distinct SSRCs received from: how many voices this member hears.
    pub sources: AtomicUsize,
    /// Packets sent (speakers).
    pub sent: AtomicU64,
    /// Sampled packets the stack decrypted, and those whose payload was not what was sent.
    pub decrypted: AtomicU64,
    pub corrupt: AtomicU64,
    /// Forwarding delays of sampled packets during the measurement window, in microseconds.
    pub delays_us: Mutex<Vec<u32>>,
    /// Why the member's task ended early, if it did.
    pub failed: Mutex<Option<String>>,
}

/// Who a member is in the run.
#[derive(Clone, Copy)]
pub enum Role {
    /// Self-muted (as members join), sends nothing.
    Listener,
    /// Unmutes, then sends its pre-encrypted stream: speaker number `n`.
    Speaker(u32),
}

/// Joins `room` as `name` and runs the member until `run.stop`. Errors are stored in
/// `stats.failed`, so that a failed member is visible in the report rather than ending the run.
pub async fn member(
    ws_url: String,
    room: RoomId,
    name: String,
    role: Role,
    run: Arc<RunState>,
    stats: Arc<MemberStats>,
) {
    let result = async {
        let mut m = Member::join(&ws_url, &room, &name, role, &run, &stats).await?;
        m.serve().await
    }
    .await;
    if let Err(e) = result {
        *stats.failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("{e:#}"));
    }
}

struct Member {
    ws: client::Ws,
    pc: RTCPeerConnection,
    socket: UdpSocket,
    local_addr: SocketAddr,
    sender: RTCRtpSenderId,
    ssrc: u32,
    role: Role,
    run: Arc<RunState>,
    stats: Arc<MemberStats>,
    /// SSRCs heard so far (a handful).
    sources: Vec<u32>,
    /// RTP datagrams seen, for the 1-in-`sample` choice.
    rtp_seen: u64,
    /// A speaker's encrypted stream and where it goes, once connected and unmuted.
    stream: Vec<Bytes>,
    relay: Option<SocketAddr>,
    /// The next packet of `stream` to send.
    next: usize,
    /// The unmute request is acknowledged.
    unmuted: bool,
    next_id: u64,
}

impl Member {
    async fn join(
        ws_url: &str,
        room: &RoomId,
        name: &str,
        role: Role,
        run: &Arc<RunState>,
        stats: &Arc<MemberStats>,
    ) -> Result<Member> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let local_addr = socket.local_addr()?;
        let ssrc = rand::random::<u32>();
        let (pc, sender) = build_connection(local_addr, ssrc)?;
        let mut ws = client::connect(ws_url).await?;
        client::join(&mut ws, room, name, REPLY_WAIT).await?;
        let mut m = Member {
            ws,
            pc,
            socket,
            local_addr,
            sender,
            ssrc,
            role,
            run: run.clone(),
            stats: stats.clone(),
            sources: Vec::new(),
            rtp_seen: 0,
            stream: Vec::new(),
            relay: None,
            next: 0,
            unmuted: false,
            next_id: 0,
        };
        m.offer().await?;
        if let Role::Speaker(_) = role {
            m.send_ws(ClientMsg::SetSelfMute {
                id: Some(RequestId::Str("unmute".into())),
                muted: false,
            })
            .await?;
        }
        Ok(m)
    }

    /// Our first offer, and the relay's answer applied.
    async fn offer(&mut self) -> Result<()> {
        let now = Instant::now();
        let offer = self.pc.create_offer(None).map_err(webrtc)?;
        let sdp = offer.sdp.clone();
        self.pc.set_local_description(now, offer).map_err(webrtc)?;
        self.send_ws(ClientMsg::MediaOffer {
            id: Some(RequestId::Str("offer".into())),
            sdp,
        })
        .await?;
        let deadline = tokio::time::Instant::now() + REPLY_WAIT;
        loop {
            let v = tokio::time::timeout_at(deadline, next_json(&mut self.ws))
                .await
                .map_err(|_| anyhow!("no media_answer within {REPLY_WAIT:?}"))??;
            if v["id"] != "offer" {
                continue; // nothing else matters before our session exists
            }
            if v["type"] == "error" {
                bail!("media_offer refused: {}: {}", v["code"], v["message"]);
            }
            let sdp = v["sdp"].as_str().context("media_answer without sdp")?;
            let answer = RTCSessionDescription::answer(sdp.to_owned()).map_err(webrtc)?;
            self.pc
                .set_remote_description(Instant::now(), answer)
                .map_err(webrtc)?;
            return Ok(());
        }
    }

    async fn send_ws(&mut self, msg: ClientMsg) -> Result<()> {
        self.ws
            .send(Message::text(serde_json::to_string(&msg)?))
            .await?;
        Ok(())
    }

    async fn serve(&mut self) -> Result<()> {
        let phase = Duration::from_micros(rand::random_range(0..20_000));
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + phase, PACKET_INTERVAL);
        // While not speaking the tick is not polled; its missed ticks must not come out as a burst
        // when speaking starts (nor when this task was starved: a late packet is sent, not a pile).
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let stop = self.run.stop.clone();
        loop {
            self.drain();
            self.flush().await;
            let timeout = self
                .pc
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            let speaking = !self.stream.is_empty() && self.run.sending.load(Relaxed);
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                readable = self.socket.readable() => {
                    readable?;
                    self.on_readable(&mut buf);
                }
                frame = next_json(&mut self.ws) => self.on_ws(frame?).await?,
                _ = tokio::time::sleep_until(timeout.into()) => {
                    let _ = self.pc.handle_timeout(Instant::now());
                }
                _ = tick.tick(), if speaking => self.send_next().await,
            }
        }
        let _ = self.pc.close();
        self.flush().await;
        Ok(())
    }

    fn on_readable(&mut self, buf: &mut [u8]) {
        loop {
            let (n, from) = match self.socket.try_recv_from(buf) {
                Ok(r) => r,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) => continue, // e.g. an ICMP error surfacing: not ours to act on
            };
            let datagram = &buf[..n];
            let mut arrived = None;
            if is_rtp(datagram) {
                self.stats.received.fetch_add(1, Relaxed);
                let ssrc =
                    u32::from_be_bytes([datagram[8], datagram[9], datagram[10], datagram[11]]);
                if !self.sources.contains(&ssrc) {
                    self.sources.push(ssrc);
                    self.stats.sources.store(self.sources.len(), Relaxed);
                }
                self.rtp_seen += 1;
                if !self.rtp_seen.is_multiple_of(self.run.sample) {
                    continue;
                }
                arrived = Some(now_ns());
            }
            let input = TaggedBytesMut {
                now: Instant::now(),
                transport: TransportContext {
                    local_addr: self.local_addr,
                    peer_addr: from,
                    ecn: None,
                    transport_protocol: TransportProtocol::UDP,
                },
                message: BytesMut::from(datagram),
            };
            if self.pc.handle_read(input).is_ok()
                && let Some(arrived) = arrived
            {
                self.check_decrypted(arrived);
            }
        }
    }

    /// Checks what the stack decrypted from the sampled datagram and notes its delay.
    fn check_decrypted(&mut self, arrived: u64) {
        while let Some(TaggedRTCMessage { message, .. }) = self.pc.poll_read() {
            let RTCMessage::RtpPacket(_, packet) = message else {
                continue;
            };
            self.stats.decrypted.fetch_add(1, Relaxed);
            let Some((speaker, k)) = parse_payload(&packet.payload) else {
                self.stats.corrupt.fetch_add(1, Relaxed);
                continue;
            };
            let sent = self
                .run
                .logs
                .get(speaker as usize)
                .and_then(|log| log.sent_at.get(k as usize))
                .map(|t| t.load(Relaxed));
            match sent {
                None => {
                    self.stats.corrupt.fetch_add(1, Relaxed);
                }
                Some(0) => {} // sent before its send time was stored: cannot happen, skip
                Some(sent) if self.run.measuring.load(Relaxed) => {
                    let us = arrived.saturating_sub(sent) / 1000;
                    self.stats
                        .delays_us
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(u32::try_from(us).unwrap_or(u32::MAX));
                }
                Some(_) => {}
            }
        }
    }

    async fn on_ws(&mut self, v: Value) -> Result<()> {
        match v["type"].as_str() {
            Some("media_offer") => {
                let sdp = v["sdp"].as_str().context("media_offer without sdp")?;
                let now = Instant::now();
                let offer = RTCSessionDescription::offer(sdp.to_owned()).map_err(webrtc)?;
                self.pc.set_remote_description(now, offer).map_err(webrtc)?;
                let answer = self.pc.create_answer(None).map_err(webrtc)?;
                let sdp = answer.sdp.clone();
                self.pc.set_local_description(now, answer).map_err(webrtc)?;
                self.next_id += 1;
                let id = RequestId::Str(format!("a{}", self.next_id));
                self.send_ws(ClientMsg::MediaAnswer { id: Some(id), sdp })
                    .await?;
            }
            Some("ack") if v["id"] == "unmute" => {
                self.unmuted = true;
                self.prepare_stream().await;
            }
            Some("error") => bail!("the server refused: {}: {}", v["code"], v["message"]),
            _ => {}
        }
        Ok(())
    }

    /// Takes the connection's events; a speaker's stream is encrypted once it is both connected and
    /// unmuted.
    fn drain(&mut self) {
        while let Some(event) = self.pc.poll_event() {
            if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) = event {
                match state {
                    RTCPeerConnectionState::Connected => self.stats.connected.store(true, Relaxed),
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                        self.stats.connected.store(false, Relaxed)
                    }
                    _ => {}
                }
            }
        }
        // Unsampled reads never reach the stack; anything here is RTCP or a late sample.
        while self.pc.poll_read().is_some() {}
    }

    /// Sends what the connection wants sent (STUN, DTLS, RTCP).
    async fn flush(&mut self) {
        while let Some(msg) = self.pc.poll_write() {
            let _ = self
                .socket
                .send_to(&msg.message, msg.transport.peer_addr)
                .await;
        }
        if self.stream.is_empty() && self.unmuted && self.stats.connected.load(Relaxed) {
            self.prepare_stream().await;
        }
    }

    /// A speaker's whole stream, encrypted once through the same path a live client's packets take.
    async fn prepare_stream(&mut self) {
        let Role::Speaker(speaker) = self.role else {
            return;
        };
        if !self.stream.is_empty() || !self.unmuted || !self.stats.connected.load(Relaxed) {
            return;
        }
        let Some(log) = self.run.logs.get(speaker as usize) else {
            return;
        };
        let packets = log.sent_at.len();
        let Some(mut sender) = self.pc.rtp_sender(self.sender) else {
            return;
        };
        let params = sender.get_parameters();
        let payload_type = params
            .rtp_parameters
            .codecs
            .first()
            .map(|c| c.payload_type)
            .unwrap_or(111);
        let level_ext = params
            .rtp_parameters
            .header_extensions
            .iter()
            .find(|h| h.uri == AUDIO_LEVEL_URI)
            .and_then(|h| u8::try_from(h.id).ok());
        let mut seq: u16 = rand::random();
        let mut timestamp: u32 = rand::random();
        let mut other = Vec::new();
        for k in 0..packets {
            seq = seq.wrapping_add(1);
            timestamp = timestamp.wrapping_add(TIMESTAMP_STEP);
            let mut header = rtp::Header {
                version: 2,
                payload_type,
                sequence_number: seq,
                timestamp,
                ssrc: self.ssrc,
                ..Default::default()
            };
            if let Some(id) = level_ext {
                header.extension = true;
                header.extension_profile = 0xBEDE;
                header.extensions = vec![rtp::header::Extension {
                    id,
                    payload: Bytes::from_static(&[SPEECH_LEVEL]),
                }];
            }
            let k = u32::try_from(k).unwrap_or(u32::MAX);
            let packet = rtp::Packet {
                header,
                payload: make_payload(speaker, k),
            };
            let Some(mut sender) = self.pc.rtp_sender(self.sender) else {
                return;
            };
            if sender.write_rtp(Instant::now(), packet).is_err() {
                return;
            }
            while let Some(msg) = self.pc.poll_write() {
                if is_rtp(&msg.message) {
                    self.relay = Some(msg.transport.peer_addr);
                    self.stream.push(msg.message.freeze());
                } else {
                    other.push(msg);
                }
            }
        }
        for msg in other {
            let _ = self
                .socket
                .send_to(&msg.message, msg.transport.peer_addr)
                .await;
        }
        self.stats.ready.store(true, Relaxed);
    }

    /// One 20 ms tick of a speaker: the next packet of its stream, its send time noted.
    async fn send_next(&mut self) {
        let (Role::Speaker(speaker), Some(relay)) = (self.role, self.relay) else {
            return;
        };
        let Some(packet) = self.stream.get(self.next) else {
            return; // the stream is used up; the report shows the shortfall as fewer packets sent
        };
        if let Some(log) = self.run.logs.get(speaker as usize)
            && let Some(slot) = log.sent_at.get(self.next)
        {
            slot.store(now_ns(), Relaxed);
        }
        if self.socket.send_to(packet, relay).await.is_ok() {
            self.stats.sent.fetch_add(1, Relaxed);
        }
        self.next += 1;
    }
}

/// The next text frame as JSON; fails when the server closed the connection.
async fn next_json(ws: &mut client::Ws) -> Result<Value> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t)?),
            Some(Ok(Message::Close(f))) => bail!("the server closed the connection: {f:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => bail!("the connection ended"),
        }
    }
}

/// RTP rather than STUN, DTLS or RTCP (RFC 7983 demultiplexing, then RFC 5761 for RTCP: payload
/// types 192–223 are RTCP's).
pub fn is_rtp(datagram: &[u8]) -> bool {
    datagram.len() >= 12
        && (128..=191).contains(&datagram[0])
        && !(192..=223).contains(&datagram[1])
}

fn make_payload(speaker: u32, k: u32) -> Bytes {
    let mut p = Vec::with_capacity(PAYLOAD_LEN);
    p.extend_from_slice(&MAGIC);
    p.extend_from_slice(&speaker.to_be_bytes());
    p.extend_from_slice(&k.to_be_bytes());
    p.resize(PAYLOAD_LEN, FILL);
    Bytes::from(p)
}

/// `(speaker, k)` of a load payload, if every byte is as [`make_payload`] made it.
fn parse_payload(p: &[u8]) -> Option<(u32, u32)> {
    if p.len() != PAYLOAD_LEN || p[..4] != MAGIC || p[12..].iter().any(|b| *b != FILL) {
        return None;
    }
    let speaker = u32::from_be_bytes(p[4..8].try_into().ok()?);
    let k = u32::from_be_bytes(p[8..12].try_into().ok()?);
    Some((speaker, k))
}

fn webrtc(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("webrtc: {e}")
}

fn opus() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_OPUS.to_owned(),
            clock_rate: 48000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type: 111,
    }
}

/// A browser-like connection (as `circle-rtc-client` builds it): Opus with the audio-level
/// extension, one microphone track, one host candidate on `local_addr`.
fn build_connection(
    local_addr: SocketAddr,
    ssrc: u32,
) -> Result<(RTCPeerConnection, RTCRtpSenderId)> {
    let mut media_engine = MediaEngine::default();
    media_engine
        .register_codec(opus(), RtpCodecKind::Audio)
        .map_err(webrtc)?;
    media_engine
        .register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: AUDIO_LEVEL_URI.to_owned(),
            },
            RtpCodecKind::Audio,
            None,
        )
        .map_err(webrtc)?;
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_setting_engine(SettingEngineBuilder::new().build())
        .with_media_engine(media_engine)
        .with_interceptor_registry(configure_rtcp_reports(Registry::new()))
        .build(Instant::now())
        .map_err(webrtc)?;
    let track = MediaStreamTrack::new(
        format!("mic-{ssrc}"),
        format!("mic-{ssrc}-audio"),
        "mic".to_owned(),
        RtpCodecKind::Audio,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: opus().rtp_codec,
            ..Default::default()
        }],
    );
    let sender = pc.add_track(track).map_err(webrtc)?;
    let candidate = CandidateHostConfig {
        base_config: CandidateConfig {
            network: "udp".to_owned(),
            address: local_addr.ip().to_string(),
            port: local_addr.port(),
            component: 1,
            ..Default::default()
        },
        ..Default::default()
    }
    .new_candidate_host()
    .map_err(webrtc)?;
    pc.add_local_candidate(
        RTCIceCandidate::from(&candidate)
            .to_json()
            .map_err(webrtc)?,
    )
    .map_err(webrtc)?;
    Ok((pc, sender))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips_and_any_changed_byte_is_caught() {
        let p = make_payload(7, 12345);
        assert_eq!(parse_payload(&p), Some((7, 12345)));
        for i in [0, 3, 20, PAYLOAD_LEN - 1] {
            let mut bad = p.to_vec();
            bad[i] ^= 1;
            assert_eq!(parse_payload(&bad), None, "byte {i}");
        }
        assert_eq!(parse_payload(&p[..50]), None);
    }

    #[test]
    fn rtp_is_told_from_stun_dtls_and_rtcp() {
        let mut rtp = [0u8; 20];
        rtp[0] = 0x90;
        rtp[1] = 111;
        assert!(is_rtp(&rtp));
        rtp[1] = 111 | 0x80; // marker bit
        assert!(is_rtp(&rtp));
        rtp[1] = 200; // sender report
        assert!(!is_rtp(&rtp));
        let mut dtls = [0u8; 20];
        dtls[0] = 22;
        assert!(!is_rtp(&dtls));
        assert!(!is_rtp(&[0u8; 20])); // STUN
    }
}
