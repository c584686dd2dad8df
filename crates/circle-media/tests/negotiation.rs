//! Offer/answer with the SFU as the impolite offerer, over real `rtc` peer connections (no media
//! needed: negotiation is signalling only).

use std::time::{Duration, Instant};

use circle_media::{GroupId, MediaConfig, MediaError, MediaEvent, PeerId};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use tokio::sync::mpsc;

fn client_pc() -> RTCPeerConnection {
    // A browser-like codec list (Opus, G722, PCMU, PCMA, video): the SFU must pick Opus.
    let mut media_engine = MediaEngine::default();
    media_engine.register_default_codecs().unwrap();
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_media_engine(media_engine)
        .build(Instant::now())
        .expect("client pc");
    let track = MediaStreamTrack::new(
        "mic-stream".into(),
        "mic".into(),
        "mic".into(),
        RtpCodecKind::Audio,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(1234),
                ..Default::default()
            },
            codec: RTCRtpCodec {
                mime_type: "audio/opus".into(),
                clock_rate: 48000,
                channels: 2,
                sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
                rtcp_feedback: vec![],
            },
            ..Default::default()
        }],
    );
    pc.add_track(track).expect("add track");
    pc
}

/// The client offers, the SFU answers.
async fn first_exchange(sfu: &circle_media::MediaHandle, id: PeerId, pc: &mut RTCPeerConnection) {
    let offer = pc.create_offer(None).unwrap();
    pc.set_local_description(Instant::now(), offer.clone())
        .unwrap();
    let answer = sfu.handle_offer(id, offer.sdp).await.unwrap();
    pc.set_remote_description(
        Instant::now(),
        RTCSessionDescription::answer(answer).unwrap(),
    )
    .unwrap();
}

async fn next_offer_for(events: &mut mpsc::Receiver<MediaEvent>, id: PeerId) -> String {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match events.recv().await.expect("events open") {
                MediaEvent::LocalOffer { peer, sdp, .. } if peer == id => return sdp,
                _ => {}
            }
        }
    })
    .await
    .expect("an offer from the SFU")
}

#[tokio::test]
async fn sfu_offers_on_group_change_and_wins_glare() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    let (sfu, mut events) = circle_media::spawn(MediaConfig::loopback()).await.unwrap();
    let (x, y) = (PeerId(1), PeerId(2));
    let mut x_pc = client_pc();
    let mut y_pc = client_pc();
    sfu.add_peer(x).await.unwrap();
    sfu.add_peer(y).await.unwrap();
    first_exchange(&sfu, x, &mut x_pc).await;
    first_exchange(&sfu, y, &mut y_pc).await;

    // Both join a group: each must now receive the other, so the SFU offers to both.
    sfu.set_group(x, Some(GroupId(1))).await.unwrap();
    sfu.set_group(y, Some(GroupId(1))).await.unwrap();
    let offer = next_offer_for(&mut events, x).await;
    assert!(
        offer.contains(&y.stream_id()),
        "X's offer carries Y's track"
    );

    // Glare: X offers while the SFU's offer to X is outstanding. The SFU (impolite) refuses.
    let x_offer = x_pc.create_offer(None).unwrap();
    x_pc.set_local_description(Instant::now(), x_offer.clone())
        .unwrap();
    assert!(matches!(
        sfu.handle_offer(x, x_offer.sdp).await,
        Err(MediaError::Glare(p)) if p == x
    ));

    // X (polite) rolls back, answers the SFU's offer, then offers again: accepted.
    x_pc.set_local_description(
        Instant::now(),
        RTCSessionDescription::rollback(None).unwrap(),
    )
    .unwrap();
    x_pc.set_remote_description(Instant::now(), RTCSessionDescription::offer(offer).unwrap())
        .unwrap();
    let answer = x_pc.create_answer(None).unwrap();
    x_pc.set_local_description(Instant::now(), answer.clone())
        .unwrap();
    sfu.handle_answer(x, answer.sdp).await.unwrap();
    let x_offer = x_pc.create_offer(None).unwrap();
    x_pc.set_local_description(Instant::now(), x_offer.clone())
        .unwrap();
    let answer = sfu.handle_offer(x, x_offer.sdp).await.unwrap();
    x_pc.set_remote_description(
        Instant::now(),
        RTCSessionDescription::answer(answer).unwrap(),
    )
    .unwrap();

    // An answer with no offer outstanding is refused, not applied.
    assert!(matches!(
        sfu.handle_answer(x, "v=0\r\n".into()).await,
        Err(MediaError::NoOfferOutstanding(_))
    ));
    // Garbage from the network is an error, not a panic.
    sfu.add_peer(PeerId(3)).await.unwrap();
    assert!(sfu.handle_offer(PeerId(3), "not sdp".into()).await.is_err());
    assert!(sfu.handle_offer(PeerId(99), String::new()).await.is_err());

    // Y leaves (with the SFU's offer to it unanswered): X is offered a description without Y's track
    // sending.
    sfu.close_peer(y).await.unwrap();
    let offer = next_offer_for(&mut events, x).await;
    assert!(offer.contains("a=inactive") || offer.contains("a=recvonly"));
}

/// The m-lines of an SDP.
fn mlines(sdp: &str) -> usize {
    sdp.matches("\r\nm=").count()
}

/// Answers an offer from the SFU on a client connection and hands the answer to the SFU.
async fn answer_offer(
    sfu: &circle_media::MediaHandle,
    id: PeerId,
    pc: &mut RTCPeerConnection,
    offer: String,
) {
    pc.set_remote_description(Instant::now(), RTCSessionDescription::offer(offer).unwrap())
        .unwrap();
    let answer = pc.create_answer(None).unwrap();
    pc.set_local_description(Instant::now(), answer.clone())
        .unwrap();
    sfu.handle_answer(id, answer.sdp).await.unwrap();
}

#[tokio::test]
async fn a_member_coming_back_again_and_again_does_not_grow_the_others_sdp() {
    let (sfu, mut events) = circle_media::spawn(MediaConfig::loopback()).await.unwrap();
    let (x, y) = (PeerId(1), PeerId(2));
    let group = Some(GroupId(1));
    let mut x_pc = client_pc();
    sfu.add_peer(x).await.unwrap();
    first_exchange(&sfu, x, &mut x_pc).await;
    sfu.set_group(x, group).await.unwrap();
    let mut most = 0;
    // Y starts a fresh session thirty times (as each `media_offer` does); X answers every offer.
    for round in 1..=30u64 {
        if round > 1 {
            sfu.close_peer(y).await.unwrap();
        }
        let mut y_pc = client_pc();
        sfu.add_peer(y).await.unwrap();
        first_exchange(&sfu, y, &mut y_pc).await;
        sfu.set_group(y, group).await.unwrap();
        // X's offers until one sends this round's track of Y.
        let track = format!("{}-audio-{round}\r\n", y.stream_id());
        loop {
            let offer = next_offer_for(&mut events, x).await;
            most = most.max(mlines(&offer));
            let done = offer.contains(&track);
            answer_offer(&sfu, x, &mut x_pc, offer).await;
            if done {
                break;
            }
        }
    }
    // One m-line of X's own, and for Y one sending plus at most two being retired.
    assert!(most <= 4, "X's offers grew to {most} m-lines");
    assert!(sfu.stats().await.unwrap().max_mlines <= 4);
}
