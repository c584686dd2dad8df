//! A real WebRTC test client (webrtc-rs `rtc`, sans-IO, driven by a small tokio loop on its own
//! 127.0.0.1 socket) and a harness that routes the SFU's events to the clients.
//!
//! Each client publishes one Opus-sized RTP stream at 50 packets/s with the RFC 6464 audio-level
//! extension, answers the SFU's renegotiation offers, and counts the packets it receives per publisher
//! (by the `circle-<id>` stream id of each received track).

#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use circle_media::{GroupId, MediaConfig, MediaEvent, MediaHandle, PeerId, PeerState};
use rtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::RTCPeerConnectionBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::configure_rtcp_reports;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MediaEngine};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use rtc::statistics::StatsSelector;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
/// 20 ms Opus frames: 50 packets per second.
const PACKET_INTERVAL: Duration = Duration::from_millis(20);

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Polls `cond` until it holds or `timeout` passes; panics with `what` on timeout.
pub async fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Like [`wait_for`] with an async condition.
pub async fn wait_for_async<F: Future<Output = bool>>(
    what: &str,
    timeout: Duration,
    mut cond: impl FnMut() -> F,
) {
    let deadline = Instant::now() + timeout;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The SFU plus the routing of its events to test clients.
pub struct Harness {
    pub sfu: MediaHandle,
    offers: Arc<Mutex<HashMap<PeerId, mpsc::UnboundedSender<String>>>>,
    pub states: Arc<Mutex<HashMap<PeerId, PeerState>>>,
    pub speakers: Arc<Mutex<HashMap<GroupId, Vec<PeerId>>>>,
}

impl Harness {
    pub async fn start() -> Harness {
        init_tracing();
        let (sfu, mut events) = circle_media::spawn(MediaConfig::loopback())
            .await
            .expect("spawn sfu");
        let offers: Arc<Mutex<HashMap<PeerId, mpsc::UnboundedSender<String>>>> = Default::default();
        let states: Arc<Mutex<HashMap<PeerId, PeerState>>> = Default::default();
        let speakers: Arc<Mutex<HashMap<GroupId, Vec<PeerId>>>> = Default::default();
        let (o, s, sp) = (offers.clone(), states.clone(), speakers.clone());
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                match event {
                    MediaEvent::LocalOffer { peer, sdp } => {
                        if let Some(tx) = o.lock().unwrap().get(&peer) {
                            let _ = tx.send(sdp);
                        }
                    }
                    MediaEvent::PeerState { peer, state } => {
                        s.lock().unwrap().insert(peer, state);
                    }
                    MediaEvent::ActiveSpeakers { group, speakers } => {
                        sp.lock().unwrap().insert(group, speakers);
                    }
                    MediaEvent::LocalCandidate { .. } => {}
                }
            }
        });
        Harness {
            sfu,
            offers,
            states,
            speakers,
        }
    }

    pub fn state(&self, peer: PeerId) -> Option<PeerState> {
        self.states.lock().unwrap().get(&peer).copied()
    }

    /// Adds `id` to the SFU (gate open, in `group`) and connects a client for it.
    pub async fn join(&self, id: PeerId, group: Option<GroupId>) -> Client {
        let gate = self.sfu.add_peer(id).await.expect("add_peer");
        gate.set(true);
        self.sfu.set_group(id, group).await.expect("set_group");
        let client = self.connect(id).await;
        let sfu_state = self.states.clone();
        wait_for("sfu reports connected", Duration::from_secs(10), || {
            sfu_state.lock().unwrap().get(&id) == Some(&PeerState::Connected)
        })
        .await;
        client
    }

    /// Connects a client for an already added peer and waits until its connection is up.
    pub async fn connect(&self, id: PeerId) -> Client {
        let (offer_tx, offer_rx) = mpsc::unbounded_channel();
        self.offers.lock().unwrap().insert(id, offer_tx);
        let client = Client::start(id, self.sfu.clone(), offer_rx).await;
        let c = client.shared.clone();
        wait_for("client connected", Duration::from_secs(10), || {
            *c.state.lock().unwrap() == Some(RTCPeerConnectionState::Connected)
        })
        .await;
        client
    }
}

/// What a client task shares with the test.
#[derive(Default)]
pub struct Shared {
    /// Packets received, by publisher.
    pub received: Mutex<HashMap<PeerId, u64>>,
    /// Packets sent.
    pub sent: AtomicU64,
    /// Whether to send media.
    pub sending: AtomicBool,
    /// The client's connection state.
    pub state: Mutex<Option<RTCPeerConnectionState>>,
    /// Offers from the SFU answered so far.
    pub answered: AtomicU64,
    /// The SRTP profile the DTLS handshake settled on.
    pub srtp_cipher: Mutex<String>,
}

impl Shared {
    pub fn received_from(&self, publisher: PeerId) -> u64 {
        self.received
            .lock()
            .unwrap()
            .get(&publisher)
            .copied()
            .unwrap_or(0)
    }

    pub fn received_total(&self) -> u64 {
        self.received.lock().unwrap().values().sum()
    }

    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

pub struct Client {
    pub id: PeerId,
    pub shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Client {
    async fn start(
        id: PeerId,
        sfu: MediaHandle,
        offers: mpsc::UnboundedReceiver<String>,
    ) -> Client {
        let shared = Arc::new(Shared::default());
        shared.sending.store(true, Ordering::Relaxed);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let s = shared.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = run_client(id, sfu, offers, stop_rx, s).await {
                panic!("client {id} failed: {e:#}");
            }
        });
        Client {
            id,
            shared,
            stop: Some(stop_tx),
            task,
        }
    }

    pub fn received_from(&self, publisher: PeerId) -> u64 {
        self.shared.received_from(publisher)
    }

    pub fn sent(&self) -> u64 {
        self.shared.sent()
    }

    /// Stops the client task and waits for it to end.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
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

async fn run_client(
    id: PeerId,
    sfu: MediaHandle,
    mut offers: mpsc::UnboundedReceiver<String>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    let local_addr = socket.local_addr()?;

    let mut media_engine = MediaEngine::default();
    media_engine.register_codec(opus(), RtpCodecKind::Audio)?;
    media_engine.register_header_extension(
        RTCRtpHeaderExtensionCapability {
            uri: AUDIO_LEVEL_URI.to_owned(),
        },
        RtpCodecKind::Audio,
        None,
    )?;
    // Chrome's SRTP preference order, to check the SFU still picks AES-128-GCM.
    let setting_engine = SettingEngineBuilder::new()
        .with_srtp_protection_profiles(vec![
            SrtpProtectionProfile::Srtp_Aead_Aes_256_Gcm,
            SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
            SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
        ])
        .build();
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_setting_engine(setting_engine)
        .with_media_engine(media_engine)
        .with_interceptor_registry(configure_rtcp_reports(Registry::new()))
        .build(Instant::now())?;

    let ssrc = rand::random::<u32>();
    let track = MediaStreamTrack::new(
        format!("client-{}", id.0),
        format!("client-{}-mic", id.0),
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
    let sender_id = pc.add_track(track)?;

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
    .new_candidate_host()?;
    pc.add_local_candidate(RTCIceCandidate::from(&candidate).to_json()?)?;

    let offer = pc.create_offer(None)?;
    pc.set_local_description(Instant::now(), offer.clone())?;
    let answer = sfu.handle_offer(id, offer.sdp).await?;
    pc.set_remote_description(Instant::now(), RTCSessionDescription::answer(answer)?)?;

    let mut track_owner: HashMap<String, PeerId> = HashMap::new();
    let mut buf = vec![0u8; 2048];
    let mut send_tick = tokio::time::interval(PACKET_INTERVAL);
    let mut seq: u16 = rand::random();
    let mut timestamp: u32 = rand::random();
    let payload = Bytes::from(vec![0xAB; 100]);

    loop {
        while let Some(msg) = pc.poll_write() {
            let _ = socket.send_to(&msg.message, msg.transport.peer_addr).await;
        }
        while let Some(event) = pc.poll_event() {
            match event {
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                    if state == RTCPeerConnectionState::Connected
                        && let Some(t) = pc
                            .get_stats(Instant::now(), StatsSelector::None)
                            .transport()
                    {
                        *shared.srtp_cipher.lock().unwrap() = t.srtp_cipher.clone();
                    }
                    *shared.state.lock().unwrap() = Some(state);
                }
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                    if let Some(owner) = init
                        .stream_ids
                        .iter()
                        .find_map(|s| PeerId::from_stream_id(s))
                    {
                        track_owner.insert(init.track_id.clone(), owner);
                    }
                }
                _ => {}
            }
        }
        while let Some(TaggedRTCMessage { message, .. }) = pc.poll_read() {
            if let RTCMessage::RtpPacket(track_id, _packet) = message
                && let Some(owner) = track_owner.get(&track_id)
            {
                *shared.received.lock().unwrap().entry(*owner).or_default() += 1;
            }
        }

        let timeout = pc
            .poll_timeout()
            .unwrap_or(Instant::now() + Duration::from_secs(1));
        let sleep = tokio::time::sleep_until(timeout.into());

        tokio::select! {
            _ = &mut stop => break,
            _ = sleep => pc.handle_timeout(Instant::now())?,
            offer = offers.recv() => {
                let Some(offer) = offer else { break };
                pc.set_remote_description(Instant::now(), RTCSessionDescription::offer(offer)?)?;
                let answer = pc.create_answer(None)?;
                pc.set_local_description(Instant::now(), answer.clone())?;
                sfu.handle_answer(id, answer.sdp).await?;
                shared.answered.fetch_add(1, Ordering::Relaxed);
            }
            _ = send_tick.tick() => {
                let connected = *shared.state.lock().unwrap() == Some(RTCPeerConnectionState::Connected);
                if connected && shared.sending.load(Ordering::Relaxed) {
                    let mut sender = pc.rtp_sender(sender_id).expect("our sender");
                    let params = sender.get_parameters();
                    let pt = params.rtp_parameters.codecs.first().map(|c| c.payload_type).unwrap_or(111);
                    let level_id = params
                        .rtp_parameters
                        .header_extensions
                        .iter()
                        .find(|h| h.uri == AUDIO_LEVEL_URI)
                        .map(|h| h.id as u8);
                    seq = seq.wrapping_add(1);
                    timestamp = timestamp.wrapping_add(960);
                    let mut header = rtp::Header {
                        version: 2,
                        payload_type: pt,
                        sequence_number: seq,
                        timestamp,
                        ssrc,
                        ..Default::default()
                    };
                    if let Some(id) = level_id {
                        header.extension = true;
                        header.extension_profile = 0xBEDE;
                        // Voice activity bit set, level -30 dBov: someone speaking.
                        header.extensions = vec![rtp::header::Extension { id, payload: Bytes::from_static(&[0x80 | 30]) }];
                    }
                    if sender.write_rtp(Instant::now(), rtp::Packet { header, payload: payload.clone() }).is_ok() {
                        shared.sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            res = socket.recv_from(&mut buf) => {
                let (n, peer_addr) = res?;
                pc.handle_read(TaggedBytesMut {
                    now: Instant::now(),
                    transport: TransportContext {
                        local_addr,
                        peer_addr,
                        ecn: None,
                        transport_protocol: TransportProtocol::UDP,
                    },
                    message: BytesMut::from(&buf[..n]),
                })?;
            }
        }
    }
    pc.close()?;
    while let Some(msg) = pc.poll_write() {
        let _ = socket.send_to(&msg.message, msg.transport.peer_addr).await;
    }
    Ok(())
}
