//! Voice end to end: every member is a real WebRTC client (`circle-rtc-client`, on 127.0.0.1) that
//! signals over the websocket and sends 50 packets/s, and each test counts what every member receives
//! from every other (by the `stream` id the roster shows) through the real server and its relay.
//!
//! A baseline that must not move (nothing from a muted member) is taken after [`settle`], a barrier
//! that waits until everything the relay forwarded before it has been counted; other waits are for a
//! condition with a deadline.

use circle_tests::{
    TestServer,
    proto::{ClientMsg as C, LeaveReason, Presence, RequestId, ServerMsg as S, SettingsPatch},
    server_with,
    voice::{AudioPeer, VoiceMember, eventually, relay_stats, settle, wait_relay, wait_until},
};
use serde_json::json;
use std::{collections::BTreeSet, time::Instant};
use tokio::sync::RwLock;

/// File descriptors are counted per process, and the tests of this file run on parallel threads of
/// one process: the leak test takes this exclusively, every other test shares it.
static PROCESS: RwLock<()> = RwLock::const_new(());

/// A room without a waiting room where members may speak as soon as they unmute.
fn open_room() -> serde_json::Value {
    json!({"settings": {"waiting_room": false, "mute_on_entry": false}})
}

async fn server() -> TestServer {
    // The test config already puts the relay on 127.0.0.1:0.
    server_with(|_| {}).await
}

/// Joins with voice and unmutes.
async fn speaker(
    srv: &TestServer,
    room: &circle_tests::CreatedRoom,
    name: &str,
    fac: bool,
) -> VoiceMember {
    let mut m = VoiceMember::join(srv, room, name, fac).await;
    m.unmute().await;
    m
}

/// Waits until every member hears every other one.
async fn all_hear_each_other(members: &[&VoiceMember]) {
    eventually(|| {
        for r in members {
            for s in members {
                if r.id() != s.id() && r.received_from(s) < 5 {
                    return Err(format!("{} hears {}", r.name(), s.name()));
                }
            }
        }
        Ok(())
    })
    .await;
}

/// What each member received from each member so far, `[receiver][sender]`.
fn matrix(members: &[&VoiceMember]) -> Vec<Vec<u64>> {
    members
        .iter()
        .map(|r| members.iter().map(|s| r.received_from(s)).collect())
        .collect()
}

fn set_one_speaker(on: bool) -> C {
    C::UpdateSettings {
        id: None,
        settings: SettingsPatch {
            one_speaker: Some(on),
            ..SettingsPatch::default()
        },
    }
}

/// Lets `silent` send 75 more packets (1.5 s) while each pair in `heard` gets 50 more, then checks
/// that nobody received anything from `silent` over that time.
async fn assert_not_heard(
    srv: &TestServer,
    silent: &VoiceMember,
    listeners: &[&VoiceMember],
    heard: &[(&VoiceMember, &VoiceMember)],
) {
    settle(srv, listeners).await;
    let before: Vec<u64> = listeners.iter().map(|l| l.received_from(silent)).collect();
    let heard_before: Vec<u64> = heard.iter().map(|(r, s)| r.received_from(s)).collect();
    let sent = silent.peer.sent();
    eventually(|| {
        if silent.peer.sent() < sent + 75 {
            return Err(format!("{} sends on", silent.name()));
        }
        for ((r, s), b) in heard.iter().zip(&heard_before) {
            if r.received_from(s) < b + 50 {
                return Err(format!("{} still hears {}", r.name(), s.name()));
            }
        }
        Ok(())
    })
    .await;
    settle(srv, listeners).await;
    for (l, b) in listeners.iter().zip(before) {
        assert_eq!(
            l.received_from(silent),
            b,
            "{} heard {}, who may not be heard",
            l.name(),
            silent.name()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_hear_each_other() {
    let _shared = PROCESS.read().await;
    let srv = server().await;
    let room = srv.create_room(open_room()).await;
    let robin = speaker(&srv, &room, "Robin", true).await;
    let ann = speaker(&srv, &room, "Ann", false).await;
    let mut ben = speaker(&srv, &room, "Ben", false).await;
    let members = [&robin, &ann, &ben];
    all_hear_each_other(&members).await;
    for r in members {
        for s in members {
            if r.id() != s.id() {
                assert_eq!(
                    r.stream_of(s.id()),
                    Some(s.own_stream()),
                    "roster stream ids"
                );
            }
        }
    }

    // A measured window: each sends 100 packets (2 s), then stops, so late arrivals are counted
    // against a fixed number sent.
    let sent_before: Vec<u64> = members.iter().map(|m| m.peer.sent()).collect();
    let got_before = matrix(&members);
    wait_until("everyone sends 100 packets", || {
        members
            .iter()
            .zip(&sent_before)
            .all(|(m, s)| m.peer.sent() >= s + 100)
    })
    .await;
    for m in members {
        m.peer.stop_sending();
        m.peer.sync().await.expect("peer running"); // its last packet is out
    }
    let sent: Vec<u64> = members
        .iter()
        .zip(&sent_before)
        .map(|(m, s)| m.peer.sent() - s)
        .collect();
    eventually(|| {
        for (ri, r) in members.iter().enumerate() {
            for (si, s) in members.iter().enumerate() {
                let got = r.received_from(s) - got_before[ri][si];
                if ri != si && got * 100 < sent[si] * 90 {
                    return Err(format!(
                        "{} received {got} of {} packets from {}",
                        r.name(),
                        sent[si],
                        s.name()
                    ));
                }
            }
        }
        Ok(())
    })
    .await;

    // Everyone "spoke" (the client's audio level is speech), so all three were reported speaking.
    let everyone: BTreeSet<_> = members.iter().map(|m| m.id().clone()).collect();
    ben.expect("all three reported speaking", |m| match m {
        S::Speakers { participants } => {
            (participants.iter().cloned().collect::<BTreeSet<_>>() == everyone).then_some(())
        }
        _ => None,
    })
    .await;
    for m in [robin, ann, ben] {
        assert_eq!(m.media_errors(), Vec::<String>::new());
        m.close().await;
    }
}

/// A member whose network drops UDP reaches the relay over ICE-TCP (`media.tcp_listen`) and hears,
/// and is heard by, a member on UDP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_reaching_the_relay_only_over_tcp_hears_and_is_heard_by_a_udp_member() {
    let _shared = PROCESS.read().await;
    let srv = server_with(|c| c.media.tcp_listen = "127.0.0.1:0".into()).await;
    let room = srv.create_room(open_room()).await;
    let robin = speaker(&srv, &room, "Robin", true).await;
    let mut tess = VoiceMember::join_tcp(&srv, &room, "Tess", false).await;
    tess.unmute().await;
    all_hear_each_other(&[&robin, &tess]).await;
    wait_until("both hear 50 packets of the other", || {
        robin.received_from(&tess) >= 50 && tess.received_from(&robin) >= 50
    })
    .await;
    let stats = relay_stats(&srv).await;
    assert_eq!(
        stats.tcp_connections, 1,
        "Tess's media is on one TCP connection"
    );
    assert_eq!(stats.addr_routes, 1, "only Robin's media came over UDP");
    for m in [robin, tess] {
        assert_eq!(m.media_errors(), Vec::<String>::new());
        m.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_muted_by_the_facilitator_is_not_heard_until_allowed_and_unmuted() {
    let _shared = PROCESS.read().await;
    let srv = server().await;
    let room = srv.create_room(open_room()).await;
    let mut robin = speaker(&srv, &room, "Robin", true).await;
    let ann = speaker(&srv, &room, "Ann", false).await;
    let mut ben = speaker(&srv, &room, "Ben", false).await;
    all_hear_each_other(&[&robin, &ann, &ben]).await;

    robin
        .ok(C::Mute {
            id: None,
            participant: ben.id().clone(),
        })
        .await;
    let gated = relay_stats(&srv).await.gated;
    // Ben's client ignores the mute and keeps sending; the relay drops it all. Ben still hears.
    assert_not_heard(
        &srv,
        &ben,
        &[&robin, &ann],
        &[(&ann, &robin), (&robin, &ann), (&ben, &robin)],
    )
    .await;
    assert!(
        relay_stats(&srv).await.gated >= gated + 75,
        "the relay dropped Ben's packets"
    );

    robin
        .ok(C::AllowSpeak {
            id: None,
            participant: ben.id().clone(),
        })
        .await;
    ben.unmute().await; // the facilitator's mute turned his microphone off too
    let (r0, a0) = (robin.received_from(&ben), ann.received_from(&ben));
    wait_until("Robin and Ann hear Ben again", || {
        robin.received_from(&ben) >= r0 + 25 && ann.received_from(&ben) >= a0 + 25
    })
    .await;
    for m in [robin, ann, ben] {
        assert_eq!(m.media_errors(), Vec::<String>::new());
        m.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_one_speaker_mode_only_the_floor_holder_and_the_facilitator_are_heard() {
    let _shared = PROCESS.read().await;
    let srv = server().await;
    let room = srv.create_room(open_room()).await;
    let mut robin = speaker(&srv, &room, "Robin", true).await;
    let ann = speaker(&srv, &room, "Ann", false).await;
    let ben = speaker(&srv, &room, "Ben", false).await;
    all_hear_each_other(&[&robin, &ann, &ben]).await;

    robin.ok(set_one_speaker(true)).await;
    robin
        .ok(C::GiveFloor {
            id: None,
            participant: ann.id().clone(),
        })
        .await;
    // Ann holds the floor: she and Robin are heard, Ben is not.
    assert_not_heard(
        &srv,
        &ben,
        &[&robin, &ann],
        &[(&robin, &ann), (&ben, &ann), (&ann, &robin), (&ben, &robin)],
    )
    .await;

    // The floor moves to Ben: now Ann is silent.
    robin
        .ok(C::GiveFloor {
            id: None,
            participant: ben.id().clone(),
        })
        .await;
    assert_not_heard(
        &srv,
        &ann,
        &[&robin, &ben],
        &[(&robin, &ben), (&ann, &ben), (&ben, &robin), (&ann, &robin)],
    )
    .await;

    // Back to an open room: Ann is heard again.
    robin.ok(set_one_speaker(false)).await;
    let (r0, b0) = (robin.received_from(&ann), ben.received_from(&ann));
    wait_until("Robin and Ben hear Ann again", || {
        robin.received_from(&ann) >= r0 + 25 && ben.received_from(&ann) >= b0 + 25
    })
    .await;
    for m in [robin, ann, ben] {
        assert_eq!(m.media_errors(), Vec::<String>::new());
        m.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_member_hears_nothing_and_is_not_heard_until_admitted() {
    let _shared = PROCESS.read().await;
    let srv = server().await;
    let room = srv
        .create_room(json!({"settings": {"waiting_room": true, "mute_on_entry": false}}))
        .await;
    let mut robin = speaker(&srv, &room, "Robin", true).await;
    let mut ann = VoiceMember::join(&srv, &room, "Ann", false).await;
    robin
        .ok(C::Admit {
            id: None,
            participant: ann.id().clone(),
        })
        .await;
    ann.expect("admitted", |m| {
        matches!(m, S::Admitted { .. }).then_some(())
    })
    .await;
    ann.unmute().await;
    all_hear_each_other(&[&robin, &ann]).await;

    // Wes waits, with a live media connection whose client sends regardless.
    let mut wes = VoiceMember::join(&srv, &room, "Wes", false).await;
    assert!(wes.joined.waiting, "Wes is in the waiting room");
    assert_not_heard(
        &srv,
        &wes,
        &[&robin, &ann],
        &[(&robin, &ann), (&ann, &robin)],
    )
    .await;
    settle(&srv, &[&wes]).await;
    assert_eq!(
        wes.peer.received_total(),
        0,
        "a waiting member heard the room"
    );

    robin
        .ok(C::Admit {
            id: None,
            participant: wes.id().clone(),
        })
        .await;
    wes.expect("admitted", |m| {
        matches!(m, S::Admitted { .. }).then_some(())
    })
    .await;
    wes.unmute().await;
    all_hear_each_other(&[&robin, &ann, &wes]).await;
    for m in [robin, ann, wes] {
        assert_eq!(m.media_errors(), Vec::<String>::new());
        m.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_members_media_session_is_closed() {
    let _shared = PROCESS.read().await;
    let srv = server().await;
    let room = srv.create_room(open_room()).await;
    let mut robin = speaker(&srv, &room, "Robin", true).await;
    let ann = speaker(&srv, &room, "Ann", false).await;
    let mut ben = speaker(&srv, &room, "Ben", false).await;
    all_hear_each_other(&[&robin, &ann, &ben]).await;
    assert_eq!(relay_stats(&srv).await.peers, 3);

    robin
        .ok(C::Remove {
            id: None,
            participant: ben.id().clone(),
        })
        .await;
    let seen = ben.until_closed().await;
    assert!(
        seen.iter().any(|m| matches!(
            m,
            S::Removed {
                reason: LeaveReason::Removed,
                ..
            }
        )),
        "Ben is told he was removed: {seen:?}"
    );
    wait_relay(&srv, "Ben's media session closed", |s| {
        s.peers == 2 && s.ufrag_routes == 2
    })
    .await;

    // Ben's client still sends, and hears nothing more, while Robin and Ann talk on.
    settle(&srv, &[&ben, &robin, &ann]).await;
    let (ben_total, robin_from_ben) = (ben.peer.received_total(), robin.received_from(&ben));
    let (r0, a0) = (robin.received_from(&ann), ann.received_from(&robin));
    let ben_sent = ben.peer.sent();
    wait_until("Robin and Ann talk on while Ben's client sends", || {
        robin.received_from(&ann) >= r0 + 50
            && ann.received_from(&robin) >= a0 + 50
            && ben.peer.sent() >= ben_sent + 50
    })
    .await;
    settle(&srv, &[&ben, &robin]).await;
    assert_eq!(
        ben.peer.received_total(),
        ben_total,
        "removed Ben still hears"
    );
    assert_eq!(
        robin.received_from(&ben),
        robin_from_ben,
        "removed Ben is heard"
    );
    for m in [robin, ann, ben] {
        m.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_resume_a_new_media_offer_brings_the_voice_back_both_ways() {
    let _shared = PROCESS.read().await;
    let srv = server().await;
    let room = srv.create_room(open_room()).await;
    let mut robin = speaker(&srv, &room, "Robin", true).await;
    let mut ann = speaker(&srv, &room, "Ann", false).await;
    all_hear_each_other(&[&robin, &ann]).await;

    ann.drop_connection().await;
    let ann_id = ann.id().clone();
    robin
        .expect("Ann shown as reconnecting", |m| match m {
            S::ParticipantUpdated { participant }
                if participant.id == ann_id && participant.presence == Presence::Reconnecting =>
            {
                Some(())
            }
            _ => None,
        })
        .await;

    // Back on a new socket with her token; her client starts a fresh media session, which replaces
    // the old one on the server.
    let robin_from_ann = robin.received_from(&ann);
    ann.resume(&srv, &room.room).await;
    wait_until("Robin and Ann hear each other again", || {
        robin.received_from(&ann) >= robin_from_ann + 25 && ann.received_from(&robin) >= 25
    })
    .await;
    let stats = relay_stats(&srv).await;
    assert_eq!(
        (stats.peers, stats.ufrag_routes),
        (2, 2),
        "the old session was replaced"
    );
    for m in [robin, ann] {
        assert_eq!(m.media_errors(), Vec::<String>::new());
        m.close().await;
    }
}

/// Open file descriptors of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// One member joins with voice, hears the facilitator, and leaves.
async fn come_and_go(
    srv: &TestServer,
    room: &circle_tests::CreatedRoom,
    i: usize,
    robin: &VoiceMember,
) {
    let guest = VoiceMember::join(srv, room, &format!("Guest {i}"), false).await;
    wait_until("the guest hears Robin", || guest.received_from(robin) > 0).await;
    guest.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_members_joining_and_leaving_with_voice_leave_nothing_behind() {
    let _alone = PROCESS.write().await;
    let started = Instant::now();
    let srv = server().await;
    let room = srv.create_room(open_room()).await;
    let robin = speaker(&srv, &room, "Robin", true).await;
    // One round first, so that whatever is made once per process (thread pools, lazy statics)
    // exists before the baseline.
    come_and_go(&srv, &room, 0, &robin).await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let relay = wait_relay(&srv, "only Robin's session", |s| s.peers == 1).await;
    let (tasks, fds) = (metrics.num_alive_tasks(), open_fds());

    for i in 1..=50 {
        come_and_go(&srv, &room, i, &robin).await;
    }

    // Each departure ends asynchronously (the server's connection tasks, the relay's peer); wait for
    // the counts to come back rather than for a fixed time. Fewer than before is fine: a baseline may
    // have caught something of the setup still winding down.
    eventually(|| {
        let (t, f) = (metrics.num_alive_tasks(), open_fds());
        if t <= tasks && f <= fds {
            Ok(())
        } else {
            Err(format!(
                "tasks {t} (before {tasks}), fds {f} (before {fds})"
            ))
        }
    })
    .await;
    wait_relay(&srv, "the relay back to Robin alone", |s| {
        (s.peers, s.groups, s.ufrag_routes, s.addr_routes)
            == (
                relay.peers,
                relay.groups,
                relay.ufrag_routes,
                relay.addr_routes,
            )
    })
    .await;
    // Robin's connection went through 100 renegotiations and still works.
    let ann = speaker(&srv, &room, "Ann", false).await;
    all_hear_each_other(&[&robin, &ann]).await;
    assert_eq!(robin.media_errors(), Vec::<String>::new());
    eprintln!("50 voice members came and went in {:?}", started.elapsed());
    for m in [robin, ann] {
        m.close().await;
    }
}

/// The ICE username fragment of an SDP: different for every media session the relay opens.
fn ice_ufrag(sdp: &str) -> Option<&str> {
    sdp.lines()
        .find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_sessions_renegotiation_offer_never_reaches_the_client() {
    let _shared = PROCESS.read().await;
    let srv = server().await;
    let room = srv.create_room(open_room()).await;
    let robin = speaker(&srv, &room, "Robin", true).await;
    // Ann's client offers twice in a row (say, two quick ICE restarts): each offer starts a session
    // that at once receives Robin's track, so the relay offers to each. The first session's offer is
    // made while the second `media_offer` already waits in the room's queue.
    let (mut ann, aj) = srv.join(&room, "Ann", false).await;
    let ann_stream = aj
        .room
        .participants
        .iter()
        .find(|p| p.id == aj.you)
        .and_then(|p| p.stream.clone())
        .expect("Ann's stream id");
    ann.ok(C::SetSelfMute {
        id: None,
        muted: false,
    })
    .await;
    let (first, second) = (
        AudioPeer::new().await.expect("peer"),
        AudioPeer::new().await.expect("peer"),
    );
    let offers = [
        first.create_offer().await.expect("offer"),
        second.create_offer().await.expect("offer"),
    ];
    for (n, sdp) in (1..).zip(offers) {
        ann.send(&C::MediaOffer {
            id: Some(RequestId::Num(n)),
            sdp,
        })
        .await;
    }
    let answer = ann
        .expect("the second session's answer", |m| match m {
            S::MediaAnswer {
                id: Some(RequestId::Num(2)),
                sdp,
            } => Some(sdp.clone()),
            _ => None,
        })
        .await;
    let session = ice_ufrag(&answer).expect("ufrag").to_owned();
    ann.clear(); // what came before the answer belongs to the replaced session
    second.apply_answer(answer).await.expect("answer applies");
    let offer = ann
        .expect("the relay's offer", |m| match m {
            S::MediaOffer { sdp } => Some(sdp.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        ice_ufrag(&offer),
        Some(session.as_str()),
        "an offer of the replaced session reached the client after the new session's answer"
    );
    let reply = second.handle_offer(offer).await.expect("answer");
    ann.ok(C::MediaAnswer {
        id: None,
        sdp: reply,
    })
    .await;
    second.start_sending();
    let robin_stream = robin.own_stream();
    wait_until("Robin and Ann's second session hear each other", || {
        robin.peer.received_from(&ann_stream) > 0 && second.received_from(&robin_stream) > 0
    })
    .await;
    first.close().await;
    second.close().await;
    robin.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_roster_privacy_members_are_told_only_of_speakers_they_may_see() {
    let _shared = PROCESS.read().await;
    let srv = server().await;
    let room = srv
        .create_room(json!({"settings": {
            "waiting_room": false, "mute_on_entry": false, "roster_privacy": true
        }}))
        .await;
    let mut robin = speaker(&srv, &room, "Robin", true).await;
    let mut ann = speaker(&srv, &room, "Ann", false).await;
    let ben = speaker(&srv, &room, "Ben", false).await;
    let all: BTreeSet<_> = [robin.id(), ann.id(), ben.id()]
        .into_iter()
        .cloned()
        .collect();
    // The facilitator is told of all three speaking.
    robin
        .expect("all three speaking", |m| match m {
            S::Speakers { participants } => {
                (participants.iter().cloned().collect::<BTreeSet<_>>() == all).then_some(())
            }
            _ => None,
        })
        .await;
    // Ann, a member, was told at the same moment, but only of the facilitator and herself, though
    // Ben speaks too. Her own request's reply comes after everything sent to her before it.
    ann.ok(C::RaiseHand { id: None }).await;
    let ben_id = ben.id().clone();
    let told: Vec<BTreeSet<_>> = ann
        .buffered()
        .iter()
        .filter_map(|m| match m {
            S::Speakers { participants } => Some(participants.iter().cloned().collect()),
            _ => None,
        })
        .collect();
    assert!(
        told.iter().all(|set| !set.contains(&ben_id)),
        "Ann was told Ben is speaking: {told:?}"
    );
    let visible: BTreeSet<_> = [robin.id(), ann.id()].into_iter().cloned().collect();
    assert_eq!(told.last(), Some(&visible), "{told:?}");
    for m in [robin, ann, ben] {
        m.close().await;
    }
}
