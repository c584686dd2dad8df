//! One peer's session: its `rtc` peer connection, what it publishes, which publishers it receives, and
//! where its offer/answer exchange stands. No sockets here: the SFU task feeds and drains it.

use std::collections::HashMap;
use std::time::Instant;

use rtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc::ice::tcp_type::TcpType;
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::configure_rtcp_reports;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MediaEngine};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, RTCDtlsRole, RTCIceCandidate,
};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpReceiverId, RTCRtpSenderId, RTCRtpTransceiverDirection};

use crate::error::MediaError;
use crate::handle::Gate;
use crate::ids::{GroupId, PeerId};
use crate::net::LocalCandidate;
use crate::sdp::without_mdns_candidates;
use crate::speaker::{AUDIO_LEVEL_URI, LevelWindow};

/// The Opus payload type the SFU offers (what browsers use too; an answer may pick another).
const OPUS_PAYLOAD_TYPE: u8 = 111;

/// What a peer sends us: its one audio track.
pub(crate) struct Publication {
    /// The SSRC we forward; packets with any other SSRC on this connection are dropped, so one
    /// publisher is one outgoing stream whatever the client sends.
    pub(crate) ssrc: u32,
    /// The id of the audio-level header extension on this peer's inbound leg, if negotiated.
    pub(crate) level_ext: Option<u8>,
    /// Packets dropped by the gate so far. Forwarded sequence numbers are shifted down by it, so
    /// subscribers see a gap-free stream (no false loss, no NACK storms) across mute and unmute.
    pub(crate) skipped: u16,
}

/// One publisher's audio sent to this peer: a sending transceiver, reused from a voice that left when
/// one is free (see [`Peer::subscribe_exactly`]).
pub(crate) struct Subscription {
    /// The sender on this peer's connection.
    pub(crate) sender: RTCRtpSenderId,
    /// Whether an offer that the client has (or will) see carried this track: only then must its end
    /// be shown to the client before its transceiver may carry another voice.
    pub(crate) offered: bool,
    /// The SSRC we send this publisher's audio with on this leg.
    pub(crate) ssrc: u32,
    /// The Opus payload type on this leg; `None` until the client answered the offer that added it.
    pub(crate) payload_type: Option<u8>,
    /// The audio-level extension id on this leg, if the client accepted it.
    pub(crate) level_ext: Option<u8>,
}

/// A peer and everything the SFU holds for it. Dropping it frees it all: there is no task per peer.
pub(crate) struct Peer {
    /// The driver's id for it (logs, events, msid of its tracks at others).
    pub(crate) id: PeerId,
    /// Which session of this id it is: unique for the SFU's life, carried by its events.
    pub(crate) session: u64,
    /// The webrtc-rs sans-IO connection: ICE, DTLS, SRTP, RTCP reports for this leg.
    pub(crate) pc: RTCPeerConnection,
    /// Our ICE username fragment: the demultiplexing key for this peer's first STUN request.
    pub(crate) ufrag: String,
    /// The "may be heard" flag, shared with the driver.
    pub(crate) gate: Gate,
    /// The routing domain it hears and is heard in; `None`: the waiting room.
    pub(crate) group: Option<GroupId>,
    /// Its audio track, once it opened.
    pub(crate) publication: Option<Publication>,
    /// Publishers this peer receives, by publisher.
    pub(crate) subscriptions: HashMap<PeerId, Subscription>,
    /// The client's first offer has been answered: from now on the SFU makes the offers.
    pub(crate) negotiated: bool,
    /// The SFU's offer is waiting for the client's answer.
    pub(crate) offer_outstanding: bool,
    /// Subscriptions changed while an exchange was in flight: offer again when it completes.
    pub(crate) renegotiate: bool,
    /// This window's audio levels, for active-speaker detection.
    pub(crate) levels: LevelWindow,
    /// When the connection next wants `handle_timeout`.
    pub(crate) next_timeout: Option<Instant>,
    /// The last connection state reported to the driver.
    pub(crate) reported: Option<crate::PeerState>,
    /// Numbers the tracks we add, so track ids never repeat on this connection.
    track_serial: u64,
    /// Transceivers of voices that left, still holding their sender so no new voice takes them
    /// before the client has answered an offer showing them stopped; `true` once such an offer went.
    retiring: Vec<(RTCRtpSenderId, bool)>,
    /// Test hook: every write for this peer panics, as a bug in the WebRTC stack would.
    #[cfg(test)]
    pub(crate) sabotaged: bool,
}

impl Peer {
    pub(crate) fn new(
        id: PeerId,
        session: u64,
        host_candidates: &[LocalCandidate],
        now: Instant,
    ) -> Result<Peer, MediaError> {
        let ufrag = random_token(16);
        let pwd = random_token(32);
        let setting_engine = SettingEngineBuilder::new()
            .with_ice_credentials(ufrag.clone(), pwd)
            // ICE-lite: the SFU has a reachable address, answers checks and never sends any, so it
            // never sends to an address a client merely claimed.
            .with_lite(true)
            // As DTLS server the SFU picks the SRTP profile: the first of the client's list that is in
            // ours. Browsers list AEAD-GCM before AES-CM; leaving out AES-256-GCM (which Chrome lists
            // first) makes AEAD_AES_128_GCM the pick whenever it is offered.
            .with_answering_dtls_role(RTCDtlsRole::Server)
            .with_srtp_protection_profiles(vec![
                SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
                SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
            ])
            .build();

        let mut media_engine = MediaEngine::default();
        media_engine
            .register_codec(opus_codec(), RtpCodecKind::Audio)
            .map_err(MediaError::webrtc)?;
        media_engine
            .register_header_extension(
                RTCRtpHeaderExtensionCapability {
                    uri: AUDIO_LEVEL_URI.to_owned(),
                },
                RtpCodecKind::Audio,
                None,
            )
            .map_err(MediaError::webrtc)?;
        // RTCP is terminated per leg: sender and receiver reports are generated here for each leg; no
        // NACK (Opus relies on FEC and PLC), no congestion control (fixed-rate audio).
        let registry = configure_rtcp_reports(Registry::new());

        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_setting_engine(setting_engine)
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .build(now)
            .map_err(MediaError::webrtc)?;

        // Our host candidates (a UDP one per advertised IP, and a passive TCP one each with
        // ICE-TCP) go in before the first answer, so every SDP we make carries them.
        for host in host_candidates {
            let candidate = CandidateHostConfig {
                base_config: CandidateConfig {
                    network: if host.tcp { "tcp" } else { "udp" }.to_owned(),
                    address: host.addr.ip().to_string(),
                    port: host.addr.port(),
                    component: 1,
                    ..Default::default()
                },
                tcp_type: if host.tcp {
                    TcpType::Passive
                } else {
                    TcpType::Unspecified
                },
            }
            .new_candidate_host()
            .map_err(MediaError::webrtc)?;
            let init = RTCIceCandidate::from(&candidate)
                .to_json()
                .map_err(MediaError::webrtc)?;
            pc.add_local_candidate(init).map_err(MediaError::webrtc)?;
        }

        Ok(Peer {
            id,
            session,
            pc,
            ufrag,
            gate: Gate::default(),
            group: None,
            publication: None,
            subscriptions: HashMap::new(),
            negotiated: false,
            offer_outstanding: false,
            renegotiate: false,
            levels: LevelWindow::default(),
            next_timeout: None,
            reported: None,
            track_serial: 0,
            retiring: Vec::new(),
            #[cfg(test)]
            sabotaged: false,
        })
    }

    /// Applies a client offer and returns our answer.
    pub(crate) fn answer(&mut self, sdp: String, now: Instant) -> Result<String, MediaError> {
        if self.offer_outstanding {
            return Err(MediaError::Glare(self.id));
        }
        let offer = RTCSessionDescription::offer(without_mdns_candidates(&sdp))
            .map_err(MediaError::negotiation)?;
        self.pc
            .set_remote_description(now, offer)
            .map_err(MediaError::negotiation)?;
        let answer = self
            .pc
            .create_answer(None)
            .map_err(MediaError::negotiation)?;
        let sdp = answer.sdp.clone();
        self.pc
            .set_local_description(now, answer)
            .map_err(MediaError::negotiation)?;
        self.negotiated = true;
        self.refresh_subscriptions();
        Ok(sdp)
    }

    /// Makes an offer if one is due and none is in flight. Returns it for the driver.
    pub(crate) fn offer_if_due(&mut self, now: Instant) -> Result<Option<String>, MediaError> {
        if !self.renegotiate || !self.negotiated || self.offer_outstanding {
            return Ok(None);
        }
        let offer = self.pc.create_offer(None).map_err(MediaError::webrtc)?;
        let sdp = offer.sdp.clone();
        self.pc
            .set_local_description(now, offer)
            .map_err(MediaError::webrtc)?;
        self.offer_outstanding = true;
        self.renegotiate = false;
        for sub in self.subscriptions.values_mut() {
            sub.offered = true;
        }
        for (_, shown) in &mut self.retiring {
            *shown = true;
        }
        Ok(Some(sdp))
    }

    /// Applies the client's answer to our offer.
    pub(crate) fn apply_answer(&mut self, sdp: String, now: Instant) -> Result<(), MediaError> {
        if !self.offer_outstanding {
            return Err(MediaError::NoOfferOutstanding(self.id));
        }
        let answer = RTCSessionDescription::answer(without_mdns_candidates(&sdp))
            .map_err(MediaError::negotiation)?;
        self.pc
            .set_remote_description(now, answer)
            .map_err(MediaError::negotiation)?;
        self.offer_outstanding = false;
        self.free_retired()?;
        self.refresh_subscriptions();
        Ok(())
    }

    /// Frees the transceivers whose stop the client has now answered: the next voice may take them.
    fn free_retired(&mut self) -> Result<(), MediaError> {
        let (shown, pending): (Vec<_>, Vec<_>) = self.retiring.drain(..).partition(|(_, s)| *s);
        self.retiring = pending;
        for (sender, _) in shown {
            self.pc.remove_track(sender).map_err(MediaError::webrtc)?;
        }
        Ok(())
    }

    /// Makes this peer receive exactly `publishers`: a track per new one, the tracks of those gone
    /// stopped. Marks the peer for renegotiation if anything changed.
    ///
    /// Transceivers are reused, so a session's m-line count follows the room's size, not its history
    /// (a member re-offering again and again must not grow everyone else's SDP). A new voice takes a
    /// free transceiver (`add_track` picks the first without a sender, which may be the client's own
    /// m-line: it then carries audio both ways). A voice that leaves after the client saw its track
    /// is first shown stopped (`retiring`); its transceiver is freed only once the client answered
    /// that offer, so a browser always sees one track end before another starts on the same m-line
    /// (a direct swap would fire no `track` event). One that left before any offer showed it is freed
    /// at once. So each session has at most one m-line of its own plus three per other member (one
    /// sending, two retiring), and usually one.
    pub(crate) fn subscribe_exactly(&mut self, publishers: &[PeerId]) -> Result<(), MediaError> {
        let gone: Vec<PeerId> = self
            .subscriptions
            .keys()
            .filter(|p| !publishers.contains(p))
            .copied()
            .collect();
        for publisher in gone {
            if let Some(sub) = self.subscriptions.remove(&publisher) {
                self.unsubscribe(sub)?;
                self.renegotiate = true;
            }
        }
        for &publisher in publishers {
            if publisher == self.id || self.subscriptions.contains_key(&publisher) {
                continue;
            }
            let sub = self.subscribe(publisher)?;
            self.subscriptions.insert(publisher, sub);
            self.renegotiate = true;
        }
        Ok(())
    }

    /// Stops sending one voice (see [`Peer::subscribe_exactly`] for when its transceiver is free).
    fn unsubscribe(&mut self, sub: Subscription) -> Result<(), MediaError> {
        if !sub.offered {
            return self.pc.remove_track(sub.sender).map_err(MediaError::webrtc);
        }
        let mut transceiver = self
            .pc
            .rtp_transceiver(sub.sender.into())
            .ok_or_else(|| MediaError::webrtc("a subscription without its transceiver"))?;
        let has_recv = transceiver.direction().has_recv();
        transceiver.set_direction(RTCRtpTransceiverDirection::from_send_recv(false, has_recv));
        self.retiring.push((sub.sender, false));
        Ok(())
    }

    /// Starts sending one voice: a new track (new SSRC, new track id) on a free transceiver or a new
    /// sendonly one.
    fn subscribe(&mut self, publisher: PeerId) -> Result<Subscription, MediaError> {
        self.track_serial += 1;
        let ssrc = rand::random::<u32>();
        let track = MediaStreamTrack::new(
            publisher.stream_id(),
            format!("{}-audio-{}", publisher.stream_id(), self.track_serial),
            format!("{publisher}"),
            RtpCodecKind::Audio,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: opus_codec().rtp_codec,
                ..Default::default()
            }],
        );
        let before = self.pc.get_transceivers().count();
        let sender = self.pc.add_track(track).map_err(MediaError::webrtc)?;
        if self.pc.get_transceivers().count() > before {
            // `add_track` makes new transceivers sendrecv; ours only send.
            if let Some(mut t) = self.pc.rtp_transceiver(sender.into()) {
                t.set_direction(RTCRtpTransceiverDirection::Sendonly);
            }
        }
        Ok(Subscription {
            sender,
            offered: false,
            ssrc,
            payload_type: None,
            level_ext: None,
        })
    }

    /// How many m-lines this peer's session has (for tests of the bound above).
    pub(crate) fn mline_count(&mut self) -> usize {
        self.pc.get_transceivers().count()
    }

    /// Reads the negotiated payload type and extension id of every subscription (after an exchange
    /// completed), so the packet path never looks them up.
    fn refresh_subscriptions(&mut self) {
        for sub in self.subscriptions.values_mut() {
            let Some(mut sender) = self.pc.rtp_sender(sub.sender) else {
                continue;
            };
            let params = sender.get_parameters();
            sub.payload_type = params
                .rtp_parameters
                .codecs
                .iter()
                .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(MIME_TYPE_OPUS))
                .map(|c| c.payload_type);
            sub.level_ext = params
                .rtp_parameters
                .header_extensions
                .iter()
                .find(|h| h.uri == AUDIO_LEVEL_URI)
                .and_then(|h| u8::try_from(h.id).ok());
        }
    }

    /// Records the client's audio track when it opens.
    pub(crate) fn on_track(&mut self, receiver: RTCRtpReceiverId, ssrc: u32) {
        if self.publication.is_some() {
            // One published track per peer; anything more is ignored.
            return;
        }
        let level_ext = self.pc.rtp_receiver(receiver).and_then(|mut r| {
            r.get_parameters()
                .rtp_parameters
                .header_extensions
                .iter()
                .find(|h| h.uri == AUDIO_LEVEL_URI)
                .and_then(|h| u8::try_from(h.id).ok())
        });
        self.publication = Some(Publication {
            ssrc,
            level_ext,
            skipped: 0,
        });
    }
}

fn opus_codec() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_OPUS.to_owned(),
            clock_rate: 48000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type: OPUS_PAYLOAD_TYPE,
    }
}

/// An ICE credential: letters and digits (valid ice-char), from the thread's CSPRNG.
fn random_token(len: usize) -> String {
    use rand::Rng;
    use rand::distr::Alphanumeric;
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}
