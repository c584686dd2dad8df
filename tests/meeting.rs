//! A whole meeting through the real server: create, waiting room, admit, hands, floor with a timed
//! share, chat with history for a late joiner, a private message, mute, remove, ban, lock, end.

use circle_tests::{
    proto::{
        ClientMsg as C, ErrorCode, LeaveReason, ParticipantId, Presence, Role, ServerMsg as S,
        SettingsPatch,
    },
    server,
};
use serde_json::json;

fn queue_ids(floor: &circle_tests::proto::FloorView) -> Vec<ParticipantId> {
    floor
        .queue
        .iter()
        .filter_map(|q| q.participant.clone())
        .collect()
}

#[tokio::test]
async fn a_whole_meeting() {
    let srv = server().await;
    let room = srv
        .create_room(json!({
            "title": "Tuesday evening circle",
            "settings": {"share_secs": 2, "share_warning_secs": 1, "auto_end_share": true}
        }))
        .await;
    assert_eq!(room.room.0.len(), 22, "128-bit URL-safe room id");
    assert!(
        room.json["join_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("#room={}", room.room))
    );

    // The facilitator goes straight in.
    let (mut fac, fj) = srv.join(&room, "Robin", true).await;
    assert_eq!(fj.role, Role::Facilitator);
    assert!(!fj.waiting);

    // A member waits, and sees nothing of the room but its title and themselves.
    let (mut ann, aj) = srv.join(&room, "Ann", false).await;
    assert!(aj.waiting);
    assert_eq!(aj.room.title, "Tuesday evening circle");
    assert_eq!(aj.room.participants.len(), 1);
    assert_eq!(aj.room.participants[0].name, "Ann");
    assert!(aj.room.counts.is_none() && aj.room.chat.is_empty());
    let waiting = fac
        .expect("Ann in the waiting list", |m| match m {
            S::ParticipantJoined { participant } if participant.id == aj.you => {
                Some(participant.presence)
            }
            _ => None,
        })
        .await;
    assert_eq!(waiting, Presence::Waiting);
    ann.fails(C::RaiseHand { id: None }, ErrorCode::Waiting)
        .await;

    // Admit one, then a second joiner with "admit all".
    fac.ok(C::Admit {
        id: None,
        participant: aj.you.clone(),
    })
    .await;
    let seen = ann
        .expect("admitted", |m| match m {
            S::Admitted { room } => Some(room.clone()),
            _ => None,
        })
        .await;
    assert!(seen.participants.iter().any(|p| p.name == "Robin"));
    let (mut ben, bj) = srv.join(&room, "Ben", false).await;
    assert!(bj.waiting);
    fac.ok(C::AdmitAll { id: None }).await;
    ben.expect("admitted", |m| {
        matches!(m, S::Admitted { .. }).then_some(())
    })
    .await;

    // A member cannot use facilitator controls.
    ann.fails(C::MuteAll { id: None }, ErrorCode::Forbidden)
        .await;
    ann.fails(
        C::GiveFloor {
            id: None,
            participant: aj.you.clone(),
        },
        ErrorCode::Forbidden,
    )
    .await;

    // Hands: one order, the same for everyone.
    ann.ok(C::RaiseHand { id: None }).await;
    ben.ok(C::RaiseHand { id: None }).await;
    let order = vec![aj.you.clone(), bj.you.clone()];
    for c in [&mut fac, &mut ann, &mut ben] {
        let q = c
            .expect("queue of two", |m| match m {
                S::Floor { floor } if floor.queue.len() == 2 => Some(floor.clone()),
                _ => None,
            })
            .await;
        assert_eq!(queue_ids(&q), order);
        assert!(q.queue[0].raised_at <= q.queue[1].raised_at);
    }

    // Next speaker: Ann gets a 2 s share; the warning, the expiry, and the floor coming back.
    fac.ok(C::NextSpeaker { id: None }).await;
    for c in [&mut fac, &mut ann, &mut ben] {
        let f = c
            .expect("Ann speaking", |m| match m {
                S::Floor { floor } if floor.speaker.is_some() => Some(floor.clone()),
                _ => None,
            })
            .await;
        let sp = f.speaker.clone().unwrap();
        assert_eq!(sp.participant, aj.you);
        assert_eq!(sp.ends_at, Some(sp.since + 2000));
        assert_eq!(queue_ids(&f), vec![bj.you.clone()]);
    }
    let warned = ben
        .expect("share warning", |m| match m {
            S::ShareWarning {
                participant,
                remaining_secs,
            } => Some((participant.clone(), *remaining_secs)),
            _ => None,
        })
        .await;
    assert_eq!(warned, (aj.you.clone(), 1));
    ben.expect("share expired", |m| {
        matches!(m, S::ShareExpired { participant } if *participant == aj.you).then_some(())
    })
    .await;
    ben.expect("floor returned", |m| {
        matches!(m, S::Floor { floor } if floor.speaker.is_none()).then_some(())
    })
    .await;

    // Chat, then a late joiner sees the history.
    ann.ok(C::Chat {
        id: None,
        text: "  Thank you all for being here.  ".into(),
    })
    .await;
    ben.ok(C::Chat {
        id: None,
        text: "Glad to be back.".into(),
    })
    .await;
    let got = fac
        .expect("Ann's message", |m| match m {
            S::Chat { message } if message.from == aj.you => Some(message.clone()),
            _ => None,
        })
        .await;
    assert_eq!(got.text, "Thank you all for being here.");
    assert!(!got.private);
    let (mut cal, cj) = {
        let mut c = srv.connect().await;
        let j = c
            .join(&room.room, "Cal", None, Some("device-cal".into()))
            .await
            .expect("Cal joins");
        (c, j)
    };
    fac.ok(C::Admit {
        id: None,
        participant: cj.you.clone(),
    })
    .await;
    let history = cal
        .expect("admitted with history", |m| match m {
            S::Admitted { room } => Some(room.chat.clone()),
            _ => None,
        })
        .await;
    let texts: Vec<_> = history.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["Thank you all for being here.", "Glad to be back."]);
    assert!(history[0].id < history[1].id);

    // A private message reaches the facilitator only.
    ben.ok(C::ChatPrivate {
        id: None,
        text: "Can we talk after?".into(),
        to: None,
    })
    .await;
    let private = fac
        .expect("private message", |m| match m {
            S::Chat { message } if message.private => Some(message.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        (private.from.clone(), private.text.as_str()),
        (bj.you.clone(), "Can we talk after?")
    );
    for c in [&mut ann, &mut cal] {
        c.none_pending(
            "private message",
            |m| matches!(m, S::Chat { message } if message.private),
        )
        .await;
    }

    // Mute: Ann speaks (the floor allowed her), is muted, cannot unmute, is allowed again.
    let handle = srv
        .running
        .state
        .rooms
        .get(&room.room)
        .map(|r| r.value().clone())
        .unwrap();
    ann.ok(C::SetSelfMute {
        id: None,
        muted: false,
    })
    .await;
    ann.expect("heard", |m| {
        matches!(m, S::Hearing { may_be_heard: true }).then_some(())
    })
    .await;
    assert!(
        handle.may_be_heard(&aj.you).await,
        "the media gate lets Ann through"
    );
    fac.ok(C::Mute {
        id: None,
        participant: aj.you.clone(),
    })
    .await;
    assert!(
        !handle.may_be_heard(&aj.you).await,
        "the media gate stops Ann"
    );
    ann.expect("not heard", |m| {
        matches!(
            m,
            S::Hearing {
                may_be_heard: false
            }
        )
        .then_some(())
    })
    .await;
    let seen = ben
        .expect("Ann shown muted", |m| match m {
            S::ParticipantUpdated { participant }
                if participant.id == aj.you && participant.muted_by_facilitator =>
            {
                Some(())
            }
            _ => None,
        })
        .await;
    let () = seen;
    ann.fails(
        C::SetSelfMute {
            id: None,
            muted: false,
        },
        ErrorCode::MutedByFacilitator,
    )
    .await;
    fac.ok(C::AllowSpeak {
        id: None,
        participant: aj.you.clone(),
    })
    .await;
    assert!(
        !handle.may_be_heard(&aj.you).await,
        "allowed to speak is not unmuted: her microphone stays as she left it"
    );
    ann.ok(C::SetSelfMute {
        id: None,
        muted: false,
    })
    .await;
    assert!(handle.may_be_heard(&aj.you).await);

    // Remove Ben: he is told why and disconnected; he may come back by the link.
    fac.ok(C::Remove {
        id: None,
        participant: bj.you.clone(),
    })
    .await;
    let (seen, close) = ben.until_closed().await;
    assert!(seen.iter().any(
        |m| matches!(m, S::Removed { reason: LeaveReason::Removed, message } if !message.is_empty())
    ));
    assert_eq!(u16::from(close.expect("close frame").code), 4001);
    ann.expect("Ben left", |m| {
        matches!(m, S::ParticipantLeft { participant, reason: LeaveReason::Removed } if *participant == bj.you)
            .then_some(())
    })
    .await;
    let mut ben2 = srv.connect().await;
    assert!(
        ben2.join(&room.room, "Ben", None, None)
            .await
            .expect("a removed member may rejoin")
            .waiting
    );

    // Ban Cal: his token and his device no longer work here.
    fac.ok(C::Ban {
        id: None,
        participant: cj.you.clone(),
    })
    .await;
    let (_, close) = cal.until_closed().await;
    assert_eq!(u16::from(close.expect("close frame").code), 4002);
    let mut again = srv.connect().await;
    let err = again
        .resume(&room.room, &cj.token)
        .await
        .expect_err("banned token");
    assert_eq!(circle_tests::join_error(&err), Some(ErrorCode::Banned));
    let err = again
        .join(&room.room, "Cal2", None, Some("device-cal".into()))
        .await
        .expect_err("banned device");
    assert_eq!(circle_tests::join_error(&err), Some(ErrorCode::Banned));

    // Lock: new joins refused with a clear error; facilitators still get in.
    fac.ok(C::UpdateSettings {
        id: None,
        settings: SettingsPatch {
            locked: Some(true),
            ..Default::default()
        },
    })
    .await;
    let err = srv
        .connect()
        .await
        .join(&room.room, "Dee", None, None)
        .await
        .expect_err("locked");
    assert_eq!(circle_tests::join_error(&err), Some(ErrorCode::RoomLocked));
    let (_co, coj) = srv.join(&room, "Co-facilitator", true).await;
    assert_eq!(coj.role, Role::Facilitator);

    // End: everyone is told and disconnected; the room is gone.
    fac.ok(C::EndMeeting { id: None }).await;
    for c in [&mut ann, &mut ben2] {
        let (seen, _) = c.until_closed().await;
        assert!(
            seen.iter().any(|m| matches!(m, S::MeetingEnded)),
            "{seen:?}"
        );
    }
    let err = srv
        .connect()
        .await
        .join(&room.room, "Eve", None, None)
        .await
        .expect_err("room gone");
    assert_eq!(
        circle_tests::join_error(&err),
        Some(ErrorCode::RoomNotFound)
    );
    let status = reqwest::get(format!("{}/api/rooms/{}", srv.base, room.room))
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404);
    srv.running.shutdown().await;
}
