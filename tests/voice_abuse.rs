//! Voice under abuse: one member re-offering again and again must not break voice for the others.
//!
//! Every `media_offer` starts a fresh session, and every other member's session then stops one
//! track and starts another. Transceivers are reused (a session's m-line count follows the room's
//! size, not its history) and each participant has a small budget of fresh sessions, so the others'
//! SDPs (and so their `media_answer` frames) stay small and they go on hearing new speakers.

use circle_tests::{
    CreatedRoom, TestServer,
    proto::{ClientMsg as C, ErrorCode, ServerMsg as S},
    server_with,
    voice::{AudioPeer, VoiceMember, eventually, relay_stats},
};
use serde_json::json;

async fn speaker(srv: &TestServer, room: &CreatedRoom, name: &str, fac: bool) -> VoiceMember {
    let mut m = VoiceMember::join(srv, room, name, fac).await;
    m.unmute().await;
    m
}

/// Waits until each listener hears each speaker.
async fn hear(listeners: &[&VoiceMember], speakers: &[&VoiceMember]) {
    eventually(|| {
        for l in listeners {
            for s in speakers {
                if l.id() != s.id() && l.received_from(s) < 5 {
                    return Err(format!("{} hears {}", l.name(), s.name()));
                }
            }
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_re_offering_in_a_loop_leaves_the_others_sdp_small_and_their_voice_working() {
    let srv = server_with(|_| {}).await;
    let room = srv
        .create_room(json!({"settings": {"waiting_room": false, "mute_on_entry": false}}))
        .await;
    let robin = speaker(&srv, &room, "Robin", true).await;
    let ann = speaker(&srv, &room, "Ann", false).await;
    let mut eve = speaker(&srv, &room, "Eve", false).await;
    hear(&[&robin, &ann], &[&eve]).await;

    // Eve sends thirty fresh sessions' offers as fast as she can (fewer than her connection's
    // request burst, so only the per-participant budget can refuse them).
    let peer = AudioPeer::new().await.expect("audio peer");
    let offer = peer.create_offer().await.expect("offer");
    let (mut answered, mut refused) = (0, 0);
    for _ in 0..30 {
        let reply = eve
            .request(&C::MediaOffer {
                id: None,
                sdp: offer.clone(),
            })
            .await;
        match reply {
            S::MediaAnswer { .. } => answered += 1,
            S::Error {
                code: ErrorCode::RateLimited,
                ..
            } => refused += 1,
            other => panic!("a media_offer got {other:?}"),
        }
    }
    assert!(refused > 0, "all {answered} re-offers were taken");

    // A newcomer speaks: the others hear them (their answers to the offer adding the newcomer
    // went through).
    let dan = speaker(&srv, &room, "Dan", false).await;
    hear(&[&robin, &ann], &[&dan]).await;
    hear(&[&dan], &[&robin, &ann]).await;
    for m in [&robin, &ann, &dan] {
        assert_eq!(m.media_errors(), Vec::<String>::new(), "{}", m.name());
    }

    // Every session's SDP is bounded by the room's size: its own m-line, and for each of the three
    // others one sending plus at most two being retired.
    let stats = relay_stats(&srv).await;
    assert!(
        stats.max_mlines <= 1 + 3 * 3,
        "a session has {} m-lines",
        stats.max_mlines
    );
    peer.close().await;
}
