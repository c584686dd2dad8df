//! A dropped connection: "reconnecting" for the others, the same place on resume, and leaving for good
//! when the grace period runs out. Tokens that are forged, expired or for another room are refused.

use circle_tests::{
    join_error,
    proto::{ClientMsg as C, ErrorCode, LeaveReason, Presence, ServerMsg as S},
    server, server_with,
};
use serde_json::json;

fn open_room() -> serde_json::Value {
    json!({"settings": {"waiting_room": false}})
}

#[tokio::test]
async fn a_dropped_member_resumes_with_the_same_name_hand_and_mute_state() {
    let srv = server().await;
    let room = srv.create_room(open_room()).await;
    let (mut fac, _) = srv.join(&room, "Robin", true).await;
    let (mut ann, aj) = srv.join(&room, "Ann", false).await;
    let (mut ben, bj) = srv.join(&room, "Ben", false).await;
    ben.ok(C::RaiseHand { id: None }).await;
    ann.ok(C::RaiseHand { id: None }).await;
    fac.ok(C::Mute {
        id: None,
        participant: aj.you.clone(),
    })
    .await;

    ann.drop_connection().await;
    fac.expect("Ann shown as reconnecting", |m| match m {
        S::ParticipantUpdated { participant }
            if participant.id == aj.you && participant.presence == Presence::Reconnecting =>
        {
            Some(())
        }
        _ => None,
    })
    .await;
    fac.none_pending("a leave", |m| matches!(m, S::ParticipantLeft { .. }))
        .await;

    let mut back = srv.connect().await;
    let rj = back.resume(&room.room, &aj.token).await.expect("resume");
    assert_eq!(rj.you, aj.you, "same identity");
    let me = rj
        .room
        .participants
        .iter()
        .find(|p| p.id == aj.you)
        .expect("I am in my own roster")
        .clone();
    assert_eq!(me.name, "Ann");
    assert!(me.muted_by_facilitator, "still muted by the facilitator");
    let queue: Vec<_> = rj
        .room
        .floor
        .queue
        .iter()
        .map(|q| q.participant.clone().unwrap())
        .collect();
    assert_eq!(queue, vec![bj.you.clone(), aj.you.clone()], "same place");
    let presence = fac
        .expect("Ann online again", |m| match m {
            S::ParticipantUpdated { participant }
                if participant.id == aj.you && participant.presence == Presence::Online =>
            {
                Some(())
            }
            _ => None,
        })
        .await;
    let () = presence;
    back.fails(
        C::SetSelfMute {
            id: None,
            muted: false,
        },
        ErrorCode::MutedByFacilitator,
    )
    .await;
    back.ok(C::Chat {
        id: None,
        text: "back".into(),
    })
    .await;
    ben.expect("Ann's chat after resume", |m| {
        matches!(m, S::Chat { message } if message.from == aj.you).then_some(())
    })
    .await;
}

#[tokio::test]
async fn after_the_grace_period_the_member_leaves_and_cannot_resume() {
    let srv = server_with(|c| c.rooms.grace_secs = 1).await;
    let room = srv.create_room(open_room()).await;
    let (mut fac, _) = srv.join(&room, "Robin", true).await;
    let (ann, aj) = srv.join(&room, "Ann", false).await;
    ann.drop_connection().await;
    fac.expect("Ann timed out", |m| {
        matches!(m, S::ParticipantLeft { participant, reason: LeaveReason::TimedOut } if *participant == aj.you)
            .then_some(())
    })
    .await;
    let err = srv
        .connect()
        .await
        .resume(&room.room, &aj.token)
        .await
        .expect_err("too late");
    assert_eq!(join_error(&err), Some(ErrorCode::SessionGone));
}

#[tokio::test]
async fn resuming_from_a_second_window_replaces_the_first() {
    let srv = server().await;
    let room = srv.create_room(open_room()).await;
    let (mut ann, aj) = srv.join(&room, "Ann", false).await;
    let mut second = srv.connect().await;
    second.resume(&room.room, &aj.token).await.expect("resume");
    let (seen, close) = ann.until_closed().await;
    assert!(seen.iter().any(|m| matches!(
        m,
        S::Removed {
            reason: LeaveReason::Replaced,
            ..
        }
    )));
    assert_eq!(u16::from(close.expect("close frame").code), 4009);
    second.ok(C::RaiseHand { id: None }).await;
}

#[tokio::test]
async fn forged_expired_and_other_room_tokens_are_refused() {
    let srv = server().await;
    let room = srv.create_room(open_room()).await;
    let other = srv.create_room(open_room()).await;
    let (ann, aj) = srv.join(&room, "Ann", false).await;
    ann.drop_connection().await;
    let mut c = srv.connect().await;

    let mut forged = aj.token.clone();
    forged.pop();
    forged.push(if aj.token.ends_with('A') { 'B' } else { 'A' });
    let err = c.resume(&room.room, &forged).await.expect_err("forged");
    assert_eq!(join_error(&err), Some(ErrorCode::InvalidToken));

    let err = c
        .resume(&room.room, "eyJhbGciOiJIUzI1NiJ9.e30.x")
        .await
        .expect_err("garbage");
    assert_eq!(join_error(&err), Some(ErrorCode::InvalidToken));

    let err = c
        .resume(&other.room, &aj.token)
        .await
        .expect_err("other room");
    assert_eq!(join_error(&err), Some(ErrorCode::InvalidToken));

    let expired = srv.running.state.keys.issue_expired(&room.room, &aj.you);
    let err = c.resume(&room.room, &expired).await.expect_err("expired");
    assert_eq!(join_error(&err), Some(ErrorCode::TokenExpired));

    // The connection survived every refusal and can still resume properly.
    let rj = c.resume(&room.room, &aj.token).await.expect("real token");
    assert_eq!(rj.you, aj.you);
}

#[tokio::test]
async fn a_superseded_token_can_neither_resume_nor_take_the_session_over() {
    let srv = server().await;
    let room = srv.create_room(open_room()).await;
    let (ann, aj) = srv.join(&room, "Ann", false).await;
    ann.drop_connection().await;

    // Ann comes back: her browser now holds a new token.
    let mut back = srv.connect().await;
    let rj = back.resume(&room.room, &aj.token).await.expect("resume");
    assert_ne!(rj.token, aj.token, "a resume hands out a new token");

    // Whoever kept the old token (a stolen copy, an old tab) cannot take her place.
    let mut thief = srv.connect().await;
    let err = thief
        .resume(&room.room, &aj.token)
        .await
        .expect_err("the old token is spent");
    assert_eq!(join_error(&err), Some(ErrorCode::InvalidToken));
    back.ok(C::RaiseHand { id: None }).await;

    // After another drop, only the newest token brings her back.
    back.drop_connection().await;
    let err = thief
        .resume(&room.room, &aj.token)
        .await
        .expect_err("still spent");
    assert_eq!(join_error(&err), Some(ErrorCode::InvalidToken));
    let again = thief.resume(&room.room, &rj.token).await.expect("latest");
    assert_eq!(again.you, aj.you);
}

/// Joins `name` on a fresh connection with this browser's device id.
async fn join_from(
    srv: &circle_tests::TestServer,
    room: &circle_tests::CreatedRoom,
    name: &str,
    device: Option<&str>,
) -> (circle_tests::Client, anyhow::Result<circle_tests::Joined>) {
    let mut c = srv.connect().await;
    let j = c
        .join(&room.room, name, None, device.map(str::to_owned))
        .await;
    (c, j)
}

#[tokio::test]
async fn a_closed_tab_joining_again_from_the_same_browser_takes_up_its_place() {
    let srv = server().await;
    let room = srv.create_room(open_room()).await;
    let (mut fac, _) = srv.join(&room, "Robin", true).await;
    let (ann, aj) = join_from(&srv, &room, "Ann", Some("ann-browser")).await;
    let aj = aj.expect("Ann joins");
    let (mut ben, bj) = srv.join(&room, "Ben", false).await;
    fac.ok(C::GiveFloor {
        id: None,
        participant: aj.you.clone(),
    })
    .await;
    ben.ok(C::RaiseHand { id: None }).await;

    // The tab is closed; within the grace period a new tab opens the link, and Ann types her name.
    ann.drop_connection().await;
    fac.expect("Ann shown as reconnecting", |m| match m {
        S::ParticipantUpdated { participant }
            if participant.id == aj.you && participant.presence == Presence::Reconnecting =>
        {
            Some(())
        }
        _ => None,
    })
    .await;
    let (mut back, rj) = join_from(&srv, &room, "ann", Some("ann-browser")).await;
    let rj = rj.expect("the same browser gets its own name back");
    assert_eq!(rj.you, aj.you, "the same participant");
    assert!(rj.resumed, "`joined` says it took up the earlier place");
    let speaker = rj.room.floor.speaker.expect("the floor is still hers");
    assert_eq!(speaker.participant, aj.you);
    let queue: Vec<_> = rj
        .room
        .floor
        .queue
        .iter()
        .map(|q| q.participant.clone())
        .collect();
    assert_eq!(queue, vec![Some(bj.you.clone())], "Ben's place is kept too");
    fac.expect("Ann online again", |m| match m {
        S::ParticipantUpdated { participant }
            if participant.id == aj.you && participant.presence == Presence::Online =>
        {
            Some(())
        }
        _ => None,
    })
    .await;
    back.ok(C::SetSelfMute {
        id: None,
        muted: false,
    })
    .await;

    // Anyone else typing her name, or a browser that sends no device id, is someone else.
    for device in [Some("someone-else"), None] {
        let (_, other) = join_from(&srv, &room, "Ann", device).await;
        let err = other.expect_err("the name is taken");
        assert_eq!(join_error(&err), Some(ErrorCode::NameTaken), "{device:?}");
    }
}

#[tokio::test]
async fn a_second_tab_joining_from_the_same_browser_replaces_the_first() {
    let srv = server().await;
    let room = srv.create_room(open_room()).await;
    let (ann, aj) = join_from(&srv, &room, "Ann", Some("ann-browser")).await;
    let (mut ann, aj) = (ann, aj.expect("Ann joins"));
    let (mut second, sj) = join_from(&srv, &room, "Ann", Some("ann-browser")).await;
    let sj = sj.expect("the second tab takes the session over");
    assert_eq!(sj.you, aj.you);
    assert!(sj.resumed);
    let (seen, close) = ann.until_closed().await;
    assert!(seen.iter().any(|m| matches!(
        m,
        S::Removed {
            reason: LeaveReason::Replaced,
            ..
        }
    )));
    assert_eq!(u16::from(close.expect("close frame").code), 4009);
    second.ok(C::RaiseHand { id: None }).await;
    // The first tab's resume token no longer works: the session moved.
    let err = srv
        .connect()
        .await
        .resume(&room.room, &aj.token)
        .await
        .expect_err("an earlier token");
    assert_eq!(join_error(&err), Some(ErrorCode::InvalidToken));
}

#[tokio::test]
async fn a_banned_browser_cannot_come_back_under_its_old_name() {
    let srv = server().await;
    let room = srv.create_room(open_room()).await;
    let (mut fac, _) = srv.join(&room, "Robin", true).await;
    let (_ann, aj) = join_from(&srv, &room, "Ann", Some("ann-browser")).await;
    fac.ok(C::Ban {
        id: None,
        participant: aj.expect("Ann joins").you,
    })
    .await;
    let (_, again) = join_from(&srv, &room, "Ann", Some("ann-browser")).await;
    assert_eq!(
        join_error(&again.expect_err("banned")),
        Some(ErrorCode::Banned)
    );
}

#[tokio::test]
async fn the_waiting_room_is_told_when_no_facilitator_is_here() {
    let srv = server().await;
    let room = srv.create_room(json!({})).await;
    let (mut fac, _) = srv.join(&room, "Robin", true).await;
    let (mut kim, kj) = srv.join(&room, "Kim", false).await;
    assert!(kj.waiting);
    assert!(kj.room.facilitator_present);
    fac.ok(C::Leave { id: None }).await;
    kim.expect("no facilitator here", |m| {
        matches!(m, S::FacilitatorPresent { present: false }).then_some(())
    })
    .await;
    let (_, _) = srv.join(&room, "Jo", true).await;
    kim.expect("a facilitator here again", |m| {
        matches!(m, S::FacilitatorPresent { present: true }).then_some(())
    })
    .await;
}

/// The server remembers each live session's latest token (so that an older one cannot take the
/// session over), not every session it ever had: a session that ends, by `leave`, by timing out, or
/// by `leave` after a resume, is forgotten. Before, every session stayed remembered until its
/// token expired (6 hours), and a one-hour soak's 17 000 joins grew the server by 3.5 MiB.
#[tokio::test]
async fn sessions_that_end_leave_no_resume_token_behind() {
    let srv = server_with(|c| c.rooms.grace_secs = 1).await;
    let keys = &srv.running.state.keys;
    let room = srv.create_room(open_room()).await;
    let (mut fac, _) = srv.join(&room, "Robin", true).await;
    for round in 0..4 {
        // One leaves, one times out, one leaves after resuming.
        let (mut ann, _) = srv.join(&room, &format!("Ann {round}"), false).await;
        ann.ok(C::Leave { id: None }).await;

        let (bea, bj) = srv.join(&room, &format!("Bea {round}"), false).await;
        bea.drop_connection().await;
        fac.expect("Bea timed out", |m| {
            matches!(m, S::ParticipantLeft { participant, reason: LeaveReason::TimedOut } if *participant == bj.you)
                .then_some(())
        })
        .await;

        let (cai, cj) = srv.join(&room, &format!("Cai {round}"), false).await;
        cai.drop_connection().await;
        let mut back = srv.connect().await;
        back.resume(&room.room, &cj.token).await.expect("resume");
        back.ok(C::Leave { id: None }).await;
    }
    // The room handles requests in order: once Robin's is answered, every departure before it has
    // been carried out.
    fac.ok(C::RaiseHand { id: None }).await;
    assert_eq!(keys.remembered(), 1, "only Robin's session is remembered");
}
