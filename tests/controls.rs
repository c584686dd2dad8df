//! Facilitator controls beyond the whole-meeting test: roster privacy, one-speaker mode, chat
//! moderation, co-facilitators, deny, mute all, and a shutdown that tells members.

use circle_tests::{
    proto::{ClientMsg as C, ErrorCode, LeaveReason, Role, ServerMsg as S, SettingsPatch},
    server,
};
use serde_json::json;

fn patch(f: impl FnOnce(&mut SettingsPatch)) -> C {
    let mut settings = SettingsPatch::default();
    f(&mut settings);
    C::UpdateSettings { id: None, settings }
}

#[tokio::test]
async fn roster_privacy_hides_members_from_members() {
    let srv = server().await;
    let room = srv
        .create_room(json!({"settings": {"waiting_room": false, "roster_privacy": true}}))
        .await;
    let (mut fac, _) = srv.join(&room, "Robin", true).await;
    let (mut ann, aj) = srv.join(&room, "Ann", false).await;
    let (mut ben, bj) = srv.join(&room, "Ben", false).await;

    let names: Vec<_> = bj
        .room
        .participants
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["Robin", "Ben"],
        "Ben sees the facilitator and himself"
    );
    assert_eq!(
        bj.room.counts.expect("counts").members,
        2,
        "and a head count"
    );
    assert!(!aj.room.participants.iter().any(|p| p.name == "Ben"));
    ann.none_pending("Ben's arrival", |m| {
        matches!(m, S::ParticipantJoined { .. })
    })
    .await;
    fac.expect("the facilitator sees Ben", |m| {
        matches!(m, S::ParticipantJoined { participant } if participant.id == bj.you).then_some(())
    })
    .await;

    // Ann's hand: Ben sees an anonymous place; the facilitator sees her name.
    ann.ok(C::RaiseHand { id: None }).await;
    let seen_by_ben = ben
        .expect("queue", |m| match m {
            S::Floor { floor } if !floor.queue.is_empty() => Some(floor.clone()),
            _ => None,
        })
        .await;
    assert_eq!(seen_by_ben.queue[0].participant, None);
    assert_eq!(seen_by_ben.queue[0].name, None);
    let seen_by_ann = ann
        .expect("queue", |m| match m {
            S::Floor { floor } if !floor.queue.is_empty() => Some(floor.clone()),
            _ => None,
        })
        .await;
    assert_eq!(seen_by_ann.queue[0].participant.as_ref(), Some(&aj.you));

    // Turning privacy off rebuilds everyone's view.
    fac.ok(patch(|s| s.roster_privacy = Some(false))).await;
    let rebuilt = ben
        .expect("room state", |m| match m {
            S::RoomState { room } => Some(room.clone()),
            _ => None,
        })
        .await;
    assert!(rebuilt.participants.iter().any(|p| p.name == "Ann"));
}

#[tokio::test]
async fn one_speaker_mode_lets_only_the_floor_holder_and_facilitators_be_heard() {
    let srv = server().await;
    let room = srv
        .create_room(json!({"settings": {"waiting_room": false, "mute_on_entry": false, "one_speaker": true}}))
        .await;
    let handle = srv
        .running
        .state
        .rooms
        .get(&room.room)
        .map(|r| r.value().clone())
        .unwrap();
    let (mut fac, fj) = srv.join(&room, "Robin", true).await;
    let (mut ann, aj) = srv.join(&room, "Ann", false).await;
    let (mut ben, bj) = srv.join(&room, "Ben", false).await;
    for c in [&mut fac, &mut ann, &mut ben] {
        c.ok(C::SetSelfMute {
            id: None,
            muted: false,
        })
        .await;
    }
    assert!(handle.may_be_heard(&fj.you).await, "facilitators are heard");
    assert!(!handle.may_be_heard(&aj.you).await && !handle.may_be_heard(&bj.you).await);
    fac.ok(C::GiveFloor {
        id: None,
        participant: aj.you.clone(),
    })
    .await;
    assert!(
        handle.may_be_heard(&aj.you).await,
        "the floor holder is heard"
    );
    assert!(!handle.may_be_heard(&bj.you).await);
    ann.expect("told she can be heard", |m| {
        matches!(m, S::Hearing { may_be_heard: true }).then_some(())
    })
    .await;
    fac.ok(patch(|s| s.one_speaker = Some(false))).await;
    assert!(
        handle.may_be_heard(&bj.you).await,
        "everyone unmuted is heard again"
    );
}

#[tokio::test]
async fn chat_moderation() {
    let srv = server().await;
    let room = srv
        .create_room(json!({"settings": {"waiting_room": false}}))
        .await;
    let (mut fac, _) = srv.join(&room, "Robin", true).await;
    let (mut ann, aj) = srv.join(&room, "Ann", false).await;
    let (mut ben, _) = srv.join(&room, "Ben", false).await;

    ann.ok(C::Chat {
        id: None,
        text: "something unkind".into(),
    })
    .await;
    let msg = ben
        .expect("chat", |m| match m {
            S::Chat { message } => Some(message.id),
            _ => None,
        })
        .await;
    fac.ok(C::DeleteChat {
        id: None,
        message: msg,
    })
    .await;
    ben.expect("deleted", |m| {
        matches!(m, S::ChatDeleted { message } if *message == msg).then_some(())
    })
    .await;
    let (_late, lj) = srv.join(&room, "Late", false).await;
    assert!(
        lj.room.chat.is_empty(),
        "a deleted message is gone from the history"
    );
    fac.fails(
        C::DeleteChat {
            id: None,
            message: msg,
        },
        ErrorCode::UnknownMessage,
    )
    .await;

    fac.ok(C::SetChatAllowed {
        id: None,
        participant: aj.you.clone(),
        allowed: false,
    })
    .await;
    ann.fails(
        C::Chat {
            id: None,
            text: "again".into(),
        },
        ErrorCode::ChatNotAllowed,
    )
    .await;
    ben.ok(C::Chat {
        id: None,
        text: "fine".into(),
    })
    .await;

    fac.ok(patch(|s| s.chat_enabled = Some(false))).await;
    ben.fails(
        C::Chat {
            id: None,
            text: "hello?".into(),
        },
        ErrorCode::ChatDisabled,
    )
    .await;
    fac.ok(C::Chat {
        id: None,
        text: "Chat is paused for the share.".into(),
    })
    .await;

    // A facilitator replies privately to one member; the other member does not see it.
    fac.ok(C::ChatPrivate {
        id: None,
        text: "Let's talk after.".into(),
        to: Some(aj.you.clone()),
    })
    .await;
    ann.expect("private reply", |m| {
        matches!(m, S::Chat { message } if message.private && message.to.as_ref() == Some(&aj.you))
            .then_some(())
    })
    .await;
    ben.none_pending(
        "a private message",
        |m| matches!(m, S::Chat { message } if message.private),
    )
    .await;
}

#[tokio::test]
async fn co_facilitators_deny_and_mute_all() {
    let srv = server().await;
    let room = srv.create_room(json!({})).await;
    let (mut fac, fj) = srv.join(&room, "Robin", true).await;
    let (mut ann, aj) = srv.join(&room, "Ann", false).await;
    fac.ok(C::Admit {
        id: None,
        participant: aj.you.clone(),
    })
    .await;
    let (mut ben, bj) = srv.join(&room, "Ben", false).await;

    // Promote Ann: she now sees the waiting room and can use the controls.
    fac.ok(C::Promote {
        id: None,
        participant: aj.you.clone(),
    })
    .await;
    let view = ann
        .expect("rebuilt view", |m| match m {
            S::RoomState { room } => Some(room.clone()),
            _ => None,
        })
        .await;
    assert!(
        view.participants.iter().any(|p| p.id == bj.you),
        "she sees Ben waiting"
    );
    assert_eq!(
        view.participants
            .iter()
            .find(|p| p.id == aj.you)
            .unwrap()
            .role,
        Role::Facilitator
    );
    ann.ok(C::Deny {
        id: None,
        participant: bj.you.clone(),
    })
    .await;
    let (seen, close) = ben.until_closed().await;
    assert!(seen.iter().any(|m| matches!(
        m,
        S::Removed {
            reason: LeaveReason::Denied,
            ..
        }
    )));
    assert_eq!(u16::from(close.expect("close frame").code), 4003);

    // Mute all leaves facilitators alone.
    let (mut cal, cj) = srv.join(&room, "Cal", false).await;
    ann.ok(C::Admit {
        id: None,
        participant: cj.you.clone(),
    })
    .await;
    cal.expect("admitted", |m| {
        matches!(m, S::Admitted { .. }).then_some(())
    })
    .await;
    fac.ok(C::AllowSpeak {
        id: None,
        participant: cj.you.clone(),
    })
    .await;
    fac.ok(C::MuteAll { id: None }).await;
    let muted = cal
        .expect("muted", |m| match m {
            S::ParticipantUpdated { participant }
                if participant.id == cj.you && participant.muted_by_facilitator =>
            {
                Some(())
            }
            _ => None,
        })
        .await;
    let () = muted;
    ann.ok(C::SetSelfMute {
        id: None,
        muted: false,
    })
    .await;

    // Demote: back to member; a facilitator cannot demote themselves.
    fac.fails(
        C::Demote {
            id: None,
            participant: fj.you.clone(),
        },
        ErrorCode::BadTarget,
    )
    .await;
    fac.ok(C::Demote {
        id: None,
        participant: aj.you.clone(),
    })
    .await;
    ann.fails(C::MuteAll { id: None }, ErrorCode::Forbidden)
        .await;
}

#[tokio::test]
async fn shutting_down_tells_members() {
    let srv = server().await;
    let room = srv
        .create_room(json!({"settings": {"waiting_room": false}}))
        .await;
    let (mut ann, _) = srv.join(&room, "Ann", false).await;
    let state = srv.running.state.clone();
    let stopping = tokio::spawn(srv.running.shutdown());
    let (seen, close) = ann.until_closed().await;
    assert!(seen.iter().any(|m| matches!(m, S::Removed { reason: LeaveReason::ServerShutdown, message } if !message.is_empty())));
    assert_eq!(u16::from(close.expect("close frame").code), 1001);
    stopping.await.expect("shutdown completes");
    assert!(state.shutdown.is_cancelled());
}

#[tokio::test]
async fn a_large_room_arrives_in_pieces_that_add_up() {
    let srv = server().await;
    let room = srv
        .create_room(json!({"settings": {"waiting_room": false}}))
        .await;
    let mut others = Vec::new();
    for i in 0..12 {
        let (mut c, _) = srv.join(&room, &format!("Member {i}"), false).await;
        c.ok(C::Chat {
            id: None,
            text: "words ".repeat(150),
        })
        .await;
        others.push(c);
    }
    let (mut late, lj) = srv.join(&room, "Late", false).await;
    assert!(
        lj.room.participants.len() < 13,
        "the snapshot itself is trimmed"
    );
    let mut people = lj.room.participants.len();
    let mut chat = lj.room.chat.len();
    while people < 13 || chat < 12 {
        late.expect("the rest of the snapshot", |m| match m {
            S::MoreParticipants { participants } => {
                people += participants.len();
                Some(())
            }
            S::MoreChat { chat: more } => {
                chat += more.len();
                Some(())
            }
            _ => None,
        })
        .await;
    }
    assert_eq!((people, chat), (13, 12));
}
