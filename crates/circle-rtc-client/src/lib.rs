//! A real WebRTC audio client for Circle's tests: what a browser's `RTCPeerConnection` with one
//! microphone track does, minus the browser. It runs webrtc-rs's sans-IO `rtc` stack (ICE, DTLS, SRTP,
//! RTCP reports) on its own `127.0.0.1` socket, publishes Opus-sized RTP at 50 packets/s with the
//! RFC 6464 audio-level extension, and counts the packets it receives per remote msid stream id.
//!
//! Signalling is left to the caller as plain methods, so the same client serves a test that talks to
//! the SFU's handle directly and one that goes through the server's websocket:
//!
//! ```no_run
//! # async fn call(signal: impl AsyncFn(String) -> String) -> Result<(), circle_rtc_client::ClientError> {
//! use circle_rtc_client::AudioPeer;
//!
//! let peer = AudioPeer::new().await?;
//! let offer = peer.create_offer().await?;
//! peer.apply_answer(signal(offer).await).await?; // the SFU's answer
//! peer.start_sending();
//! // A renegotiation offer from the SFU: answer it.
//! # let sfu_offer = String::new();
//! let answer = peer.handle_offer(sfu_offer).await?;
//! // ... later: how much of `circle-7`'s audio arrived?
//! let packets = peer.received_from("circle-7");
//! peer.close().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! - [`AudioPeer`] (here): the cloneable handle; signalling requests go to the peer's task over a
//!   channel and are answered on a oneshot, counters are read from shared atomics without asking it.
//! - `run` (here): the task. It owns the socket and the connection and `select!`s over datagrams
//!   (first, always), signalling requests, the connection's timer and the 20 ms send tick. Taking a
//!   request only once the socket is drained is what makes [`AudioPeer::sync`] a barrier for tests.
//!
//! The task ends on [`AudioPeer::close`] or when every clone of the handle is dropped; either way it
//! closes the connection first (the remote gets a DTLS close_notify) and then drops its socket.
//!
//! # ICE over TCP
//!
//! [`AudioPeer::new_tcp`] makes a client whose network has no UDP: its only candidate is an active
//! TCP one (RFC 6544, port 9 as the RFC says) and it ignores the relay's UDP candidates. When the
//! answer arrives it connects to the relay's first IPv4 passive TCP candidate and sends and receives
//! every packet on that connection, each framed with a 2-byte length (RFC 4571), as the
//! `ice-tcp-active-passive` example of webrtc-rs does.
//!
//! # What it does not do
//!
//! No glare handling (the SFU is always the offerer after the first exchange), no trickle (its one host
//! candidate is in the SDP), no audio decoding: payloads are 100 constant bytes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc::ice::network_type::NetworkType;
use rtc::ice::tcp_type::TcpType;
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::configure_rtcp_reports;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MediaEngine};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
pub use rtc::peer_connection::state::RTCPeerConnectionState;
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
use rtc::statistics::StatsSelector;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// The RFC 6464 client-to-mixer audio level header extension.
const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// 20 ms Opus frames: 50 packets per second, what a browser sends.
pub const PACKET_INTERVAL: Duration = Duration::from_millis(20);

/// The level every packet carries: voice activity bit set, −30 dBov, i.e. someone speaking.
const SPEECH_LEVEL: u8 = 0x80 | 30;

/// RTP timestamp step per packet: 20 ms at Opus's 48 kHz clock.
const TIMESTAMP_STEP: u32 = 960;

/// Signalling requests from handles to the task. Few and awaited one at a time, so a full queue only
/// makes the caller wait.
const COMMAND_CAPACITY: usize = 16;

/// Largest datagram read; the SFU never sends more than an MTU.
const MAX_DATAGRAM: usize = 2048;

/// Why a signalling request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Binding or reading the loopback socket failed.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    /// The WebRTC stack refused (a malformed SDP, an offer in the wrong signalling state, ...).
    #[error("webrtc: {0}")]
    WebRtc(String),
    /// The peer's task has ended ([`AudioPeer::close`] was called).
    #[error("the audio peer is closed")]
    Closed,
}

fn webrtc(e: impl std::fmt::Display) -> ClientError {
    ClientError::WebRtc(e.to_string())
}

type Reply<T> = oneshot::Sender<Result<T, ClientError>>;

/// What a handle asks of the task.
enum Command {
    CreateOffer(Reply<String>),
    ApplyAnswer(String, Reply<()>),
    HandleOffer(String, Reply<String>),
    Sync(Reply<()>),
    Close,
}

/// What the task shares with its handles: counters and flags, read and written without a round trip.
#[derive(Default)]
struct Shared {
    /// RTP packets received, by the msid stream id of the track they came on.
    received: Mutex<HashMap<String, u64>>,
    /// RTP packets handed to the connection for sending.
    sent: AtomicU64,
    /// Whether the 20 ms tick sends a packet (only while connected).
    sending: AtomicBool,
    /// The connection's last reported state.
    state: Mutex<Option<RTCPeerConnectionState>>,
    /// Renegotiation offers answered.
    answered: AtomicU64,
    /// The SRTP profile the DTLS handshake settled on (empty until connected).
    srtp_cipher: Mutex<String>,
}

/// Locks a mutex of plain counters; a panic elsewhere cannot leave them inconsistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A WebRTC peer connection with one outgoing audio track, running on its own task and loopback
/// socket. Cheap to clone; all clones drive the same connection.
#[derive(Clone)]
pub struct AudioPeer {
    /// Requests to the task.
    commands: mpsc::Sender<Command>,
    /// Counters and flags the task keeps.
    shared: Arc<Shared>,
    /// The task, taken by the first [`AudioPeer::close`] to wait for it.
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
    /// The socket's address (on 127.0.0.1).
    local_addr: SocketAddr,
}

impl AudioPeer {
    /// Binds a socket on `127.0.0.1`, builds the connection with one Opus track (not sending yet) and
    /// starts its task.
    pub async fn new() -> Result<AudioPeer, ClientError> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let local_addr = socket.local_addr()?;
        AudioPeer::start(Link::Udp(socket), local_addr)
    }

    /// Like [`AudioPeer::new`], for a network that drops UDP: ICE over TCP only (see the crate docs).
    /// Its [`AudioPeer::local_addr`] is the placeholder `127.0.0.1:9` of its active candidate.
    pub async fn new_tcp() -> Result<AudioPeer, ClientError> {
        let local_addr = SocketAddr::from(([127, 0, 0, 1], 9));
        let link = Link::Tcp {
            stream: None,
            connect_to: None,
            buf: BytesMut::new(),
        };
        AudioPeer::start(link, local_addr)
    }

    fn start(link: Link, local_addr: SocketAddr) -> Result<AudioPeer, ClientError> {
        let ssrc = rand::random::<u32>();
        let tcp = matches!(link, Link::Tcp { .. });
        let (pc, sender) = build_connection(local_addr, ssrc, tcp)?;
        let shared = Arc::new(Shared::default());
        let (commands, command_rx) = mpsc::channel(COMMAND_CAPACITY);
        let task = tokio::spawn(run(Task {
            pc,
            link,
            local_addr,
            sender,
            ssrc,
            shared: shared.clone(),
            commands: command_rx,
            track_streams: HashMap::new(),
        }));
        Ok(AudioPeer {
            commands,
            shared,
            task: Arc::new(Mutex::new(Some(task))),
            local_addr,
        })
    }

    async fn request<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, ClientError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| ClientError::Closed)?;
        rx.await.map_err(|_| ClientError::Closed)?
    }

    /// Makes the first offer (our microphone track, our host candidate) and sets it as the local
    /// description. Feed the remote answer to [`AudioPeer::apply_answer`].
    pub async fn create_offer(&self) -> Result<String, ClientError> {
        self.request(Command::CreateOffer).await
    }

    /// Applies the remote answer to our offer; ICE and DTLS start.
    pub async fn apply_answer(&self, sdp: String) -> Result<(), ClientError> {
        self.request(|r| Command::ApplyAnswer(sdp, r)).await
    }

    /// Applies a remote (renegotiation) offer and returns our answer, already set locally.
    pub async fn handle_offer(&self, sdp: String) -> Result<String, ClientError> {
        self.request(|r| Command::HandleOffer(sdp, r)).await
    }

    /// Waits until every datagram that reached this peer's socket before the call has been read and
    /// counted: a barrier for tests ("everything the relay sent me before now has arrived").
    pub async fn sync(&self) -> Result<(), ClientError> {
        self.request(Command::Sync).await
    }

    /// Sends a packet every 20 ms while connected (the microphone is on).
    pub fn start_sending(&self) {
        self.shared.sending.store(true, Ordering::Relaxed);
    }

    /// Stops sending (the microphone is off, as far as the network can tell).
    pub fn stop_sending(&self) {
        self.shared.sending.store(false, Ordering::Relaxed);
    }

    /// RTP packets received on tracks whose msid stream id is `stream_id`.
    pub fn received_from(&self, stream_id: &str) -> u64 {
        lock(&self.shared.received)
            .get(stream_id)
            .copied()
            .unwrap_or(0)
    }

    /// RTP packets received on all tracks.
    pub fn received_total(&self) -> u64 {
        lock(&self.shared.received).values().sum()
    }

    /// RTP packets sent.
    pub fn sent(&self) -> u64 {
        self.shared.sent.load(Ordering::Relaxed)
    }

    /// Renegotiation offers answered by [`AudioPeer::handle_offer`].
    pub fn answered(&self) -> u64 {
        self.shared.answered.load(Ordering::Relaxed)
    }

    /// The connection's state, once it reported one.
    pub fn state(&self) -> Option<RTCPeerConnectionState> {
        *lock(&self.shared.state)
    }

    /// Whether ICE and DTLS are up, so media flows.
    pub fn is_connected(&self) -> bool {
        self.state() == Some(RTCPeerConnectionState::Connected)
    }

    /// The SRTP protection profile DTLS settled on, e.g. `SRTP_AEAD_AES_128_GCM` (empty until
    /// connected).
    pub fn srtp_cipher(&self) -> String {
        lock(&self.shared.srtp_cipher).clone()
    }

    /// The loopback address of this peer's socket.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Closes the connection (the remote gets a DTLS close_notify) and waits for the task to end and
    /// its socket to be dropped. Later requests on any clone fail with [`ClientError::Closed`].
    pub async fn close(&self) {
        let _ = self.commands.send(Command::Close).await;
        let task = lock(&self.task).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
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

/// A browser-like connection: Opus with the audio-level extension, Chrome's SRTP preference order,
/// one microphone track, one host candidate on `local_addr`.
fn build_connection(
    local_addr: SocketAddr,
    ssrc: u32,
    tcp: bool,
) -> Result<(RTCPeerConnection, RTCRtpSenderId), ClientError> {
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
    // Chrome's order (AES-256-GCM first), so tests see which profile a server picks for browsers.
    let mut setting_engine = SettingEngineBuilder::new().with_srtp_protection_profiles(vec![
        SrtpProtectionProfile::Srtp_Aead_Aes_256_Gcm,
        SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
        SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
    ]);
    if tcp {
        // A network without UDP: the relay's UDP candidates are ignored.
        setting_engine =
            setting_engine.with_network_types(vec![NetworkType::Tcp4, NetworkType::Tcp6]);
    }
    let setting_engine = setting_engine.build();
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_setting_engine(setting_engine)
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
            network: if tcp { "tcp" } else { "udp" }.to_owned(),
            address: local_addr.ip().to_string(),
            port: local_addr.port(),
            component: 1,
            ..Default::default()
        },
        tcp_type: if tcp {
            TcpType::Active
        } else {
            TcpType::Unspecified
        },
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

/// Everything the task owns.
struct Task {
    /// The connection.
    pc: RTCPeerConnection,
    /// Its socket, on 127.0.0.1, or its TCP connection.
    link: Link,
    /// The socket's address, the local side of every datagram (with TCP: the connection's).
    local_addr: SocketAddr,
    /// Our microphone track's sender.
    sender: RTCRtpSenderId,
    /// Our microphone track's SSRC.
    ssrc: u32,
    /// Counters shared with the handles.
    shared: Arc<Shared>,
    /// Signalling requests; closed when every handle is gone, which ends the task.
    commands: mpsc::Receiver<Command>,
    /// The msid stream id of each received track, by track id.
    track_streams: HashMap<String, String>,
}

/// How the task reaches the relay.
enum Link {
    Udp(UdpSocket),
    /// ICE-TCP: one connection to the relay's passive candidate, made once the answer names it.
    Tcp {
        stream: Option<TcpStream>,
        /// The passive candidate to connect to, from the answer, until connected.
        connect_to: Option<SocketAddr>,
        /// Received bytes not yet a whole RFC 4571 frame.
        buf: BytesMut,
    },
}

/// The first IPv4 passive TCP candidate in an SDP.
fn passive_tcp_candidate(sdp: &str) -> Option<SocketAddr> {
    sdp.lines().find_map(|line| {
        let fields: Vec<&str> = line.strip_prefix("a=candidate:")?.split(' ').collect();
        let is_passive = fields.get(2)?.eq_ignore_ascii_case("tcp")
            && fields.windows(2).any(|w| w == ["tcptype", "passive"]);
        let ip: std::net::Ipv4Addr = fields.get(4)?.parse().ok()?;
        let port: u16 = fields.get(5)?.parse().ok()?;
        is_passive.then_some(SocketAddr::from((ip, port)))
    })
}

impl Task {
    /// Sends what the connection wants sent.
    async fn flush(&mut self) {
        while let Some(msg) = self.pc.poll_write() {
            // Loopback only: a send error is a closed remote, which ICE will notice.
            match &mut self.link {
                Link::Udp(socket) => {
                    let _ = socket.send_to(&msg.message, msg.transport.peer_addr).await;
                }
                Link::Tcp {
                    stream: Some(stream),
                    ..
                } => {
                    let Ok(len) = u16::try_from(msg.message.len()) else {
                        continue;
                    };
                    let mut frame = len.to_be_bytes().to_vec();
                    frame.extend_from_slice(&msg.message);
                    let _ = stream.write_all(&frame).await;
                }
                Link::Tcp { stream: None, .. } => {}
            }
        }
    }

    /// With ICE-TCP: connects to the relay's passive candidate once the answer named it.
    async fn connect(&mut self) {
        let Link::Tcp {
            stream, connect_to, ..
        } = &mut self.link
        else {
            return;
        };
        let Some(to) = connect_to.take() else {
            return;
        };
        match TcpStream::connect(to).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                if let Ok(local) = s.local_addr() {
                    self.local_addr = local;
                }
                *stream = Some(s);
            }
            Err(e) => tracing::debug!(error = %e, "ice-tcp connect failed"),
        }
    }

    /// Bytes read from the TCP connection: feeds every whole frame to the connection.
    fn on_tcp_bytes(&mut self) {
        let Link::Tcp {
            stream: Some(stream),
            buf,
            ..
        } = &mut self.link
        else {
            return;
        };
        let Ok(peer_addr) = stream.peer_addr() else {
            return;
        };
        let mut packets = Vec::new();
        while buf.len() >= 2 {
            let len = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
            if buf.len() < 2 + len {
                break;
            }
            let mut frame = buf.split_to(2 + len);
            packets.push(frame.split_off(2));
        }
        for packet in packets {
            self.on_packet(packet, peer_addr, TransportProtocol::TCP);
        }
    }

    /// Takes in the connection's events and the packets it decrypted.
    fn drain(&mut self) {
        while let Some(event) = self.pc.poll_event() {
            match event {
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                    if state == RTCPeerConnectionState::Connected
                        && let Some(t) = self
                            .pc
                            .get_stats(Instant::now(), StatsSelector::None)
                            .transport()
                    {
                        *lock(&self.shared.srtp_cipher) = t.srtp_cipher.clone();
                    }
                    *lock(&self.shared.state) = Some(state);
                }
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                    let stream = init
                        .stream_ids
                        .first()
                        .cloned()
                        .unwrap_or_else(|| init.track_id.clone());
                    self.track_streams.insert(init.track_id.clone(), stream);
                }
                _ => {}
            }
        }
        while let Some(TaggedRTCMessage { message, .. }) = self.pc.poll_read() {
            if let RTCMessage::RtpPacket(track_id, _packet) = message
                && let Some(stream) = self.track_streams.get(&track_id)
            {
                *lock(&self.shared.received)
                    .entry(stream.clone())
                    .or_default() += 1;
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::CreateOffer(reply) => {
                let result = self
                    .pc
                    .create_offer(None)
                    .map_err(webrtc)
                    .and_then(|offer| {
                        let sdp = offer.sdp.clone();
                        self.pc
                            .set_local_description(now, offer)
                            .map_err(webrtc)
                            .map(|()| sdp)
                    });
                let _ = reply.send(result);
            }
            Command::ApplyAnswer(sdp, reply) => {
                if let Link::Tcp {
                    stream: None,
                    connect_to,
                    ..
                } = &mut self.link
                {
                    *connect_to = passive_tcp_candidate(&sdp);
                }
                let result = RTCSessionDescription::answer(sdp)
                    .and_then(|answer| self.pc.set_remote_description(now, answer))
                    .map_err(webrtc);
                let _ = reply.send(result);
            }
            Command::HandleOffer(sdp, reply) => {
                let result = self.answer(sdp, now);
                if result.is_ok() {
                    self.shared.answered.fetch_add(1, Ordering::Relaxed);
                }
                let _ = reply.send(result);
            }
            // The loop reads the socket first and only turns to commands once it is empty; what was
            // read was counted at the top of this turn.
            Command::Sync(reply) => {
                let _ = reply.send(Ok(()));
            }
            // The loop ends the task on `Close` before it gets here.
            Command::Close => {}
        }
    }

    fn answer(&mut self, sdp: String, now: Instant) -> Result<String, ClientError> {
        let offer = RTCSessionDescription::offer(sdp).map_err(webrtc)?;
        self.pc.set_remote_description(now, offer).map_err(webrtc)?;
        let answer = self.pc.create_answer(None).map_err(webrtc)?;
        let sdp = answer.sdp.clone();
        self.pc.set_local_description(now, answer).map_err(webrtc)?;
        Ok(sdp)
    }

    /// One 20 ms tick: a packet of "speech", if connected and sending.
    fn send_packet(&mut self, seq: &mut u16, timestamp: &mut u32, payload: &Bytes) {
        let connected = *lock(&self.shared.state) == Some(RTCPeerConnectionState::Connected);
        if !connected || !self.shared.sending.load(Ordering::Relaxed) {
            return;
        }
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
        *seq = seq.wrapping_add(1);
        *timestamp = timestamp.wrapping_add(TIMESTAMP_STEP);
        let mut header = rtp::Header {
            version: 2,
            payload_type,
            sequence_number: *seq,
            timestamp: *timestamp,
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
        let packet = rtp::Packet {
            header,
            payload: payload.clone(),
        };
        if sender.write_rtp(Instant::now(), packet).is_ok() {
            self.shared.sent.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn on_packet(&mut self, packet: BytesMut, peer_addr: SocketAddr, protocol: TransportProtocol) {
        let input = TaggedBytesMut {
            now: Instant::now(),
            transport: TransportContext {
                local_addr: self.local_addr,
                peer_addr,
                ecn: None,
                transport_protocol: protocol,
            },
            message: packet,
        };
        if let Err(e) = self.pc.handle_read(input) {
            tracing::debug!(error = %e, "datagram rejected");
        }
    }
}

/// What [`recv`] got.
enum Received {
    Datagram(usize, SocketAddr),
    /// Bytes were appended to the TCP buffer.
    Tcp,
    TcpClosed,
}

/// The next datagram, or the next bytes on the TCP connection (never, before it is made).
async fn recv(link: &mut Link, buf: &mut [u8]) -> std::io::Result<Received> {
    match link {
        Link::Udp(socket) => {
            let (n, from) = socket.recv_from(buf).await?;
            Ok(Received::Datagram(n, from))
        }
        Link::Tcp {
            stream: Some(stream),
            buf,
            ..
        } => {
            buf.reserve(MAX_DATAGRAM + 2);
            match stream.read_buf(buf).await? {
                0 => Ok(Received::TcpClosed),
                _ => Ok(Received::Tcp),
            }
        }
        Link::Tcp { stream: None, .. } => std::future::pending().await,
    }
}

/// The peer's task: until closed, feed the connection datagrams, timers and signalling, and send a
/// packet every 20 ms.
async fn run(mut t: Task) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut send_tick = tokio::time::interval(PACKET_INTERVAL);
    let mut seq: u16 = rand::random();
    let mut timestamp: u32 = rand::random();
    let payload = Bytes::from(vec![0xAB; 100]);
    loop {
        t.connect().await;
        t.drain();
        t.flush().await;
        let timeout =
            t.pc.poll_timeout()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        tokio::select! {
            // Datagrams first: a command is only taken when the socket has nothing to read, which is
            // what makes `AudioPeer::sync` a barrier.
            biased;
            read = recv(&mut t.link, &mut buf) => match read {
                Ok(Received::Datagram(n, from)) => {
                    t.on_packet(BytesMut::from(&buf[..n]), from, TransportProtocol::UDP);
                }
                Ok(Received::Tcp) => t.on_tcp_bytes(),
                Ok(Received::TcpClosed) => {
                    tracing::debug!("ice-tcp connection closed by the relay");
                    if let Link::Tcp { stream, .. } = &mut t.link {
                        *stream = None;
                    }
                }
                // E.g. an ICMP "port unreachable" from a closed remote: not ours to act on.
                Err(e) => tracing::debug!(error = %e, "receive error"),
            },
            command = t.commands.recv() => match command {
                Some(Command::Close) | None => break,
                Some(command) => t.on_command(command),
            },
            _ = tokio::time::sleep_until(timeout.into()) => {
                if let Err(e) = t.pc.handle_timeout(Instant::now()) {
                    tracing::debug!(error = %e, "timeout handling failed");
                }
            }
            _ = send_tick.tick() => t.send_packet(&mut seq, &mut timestamp, &payload),
        }
    }
    if let Err(e) = t.pc.close() {
        tracing::debug!(error = %e, "close failed");
    }
    t.flush().await;
}
