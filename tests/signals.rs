//! Silent signals over a real websocket: reactions reach those in the room and never the waiting
//! room, stop when a facilitator turns them off, and are rate limited; a member's connection level
//! reaches the facilitators and nobody else.

use circle_tests::{
    proto::{
        ClientMsg as C, ConnectionLevel, ConnectionReport, ErrorCode, Reaction, ServerMsg as S,
        SettingsPatch,
    },
    server,
};
use serde_json::json;

fn react(reaction: Reaction) -> C {
    C::React { id: None, reaction }
}

fn reactions(on: bool) -> C {
    C::UpdateSettings {
        id: None,
        settings: SettingsPatch {
            reactions: Some(on),
            ..Default::default()
        },
    }
}

#[tokio::test]
async fn a_reaction_reaches_the_room_not_the_waiting_room_and_stops_when_turned_off() {
    let srv = server().await;
    let room = srv.create_room(json!({})).await;
    let (mut fac, _) = srv.join(&room, "Robin", true).await;
    let (mut ann, aj) = srv.join(&room, "Ann", false).await;
    fac.ok(C::Admit {
        id: None,
        participant: aj.you.clone(),
    })
    .await;
    ann.expect("admitted", |m| {
        matches!(m, S::Admitted { .. }).then_some(())
    })
    .await;
    let (mut ben, bj) = srv.join(&room, "Ben", false).await;
    assert!(bj.waiting);
    assert!(aj.room.settings.reactions, "reactions are on by default");

    ann.ok(react(Reaction::Heart)).await;
    let seen = fac
        .expect("Ann's heart", |m| match m {
            S::Reaction {
                participant,
                reaction,
            } => Some((participant.clone(), *reaction)),
            _ => None,
        })
        .await;
    assert_eq!(seen, (aj.you.clone(), Reaction::Heart));
    ann.expect("her own heart, to show by her name", |m| {
        matches!(m, S::Reaction { participant, .. } if *participant == aj.you).then_some(())
    })
    .await;
    ben.none_pending("a reaction in the waiting room", |m| {
        matches!(m, S::Reaction { .. })
    })
    .await;
    ben.fails(react(Reaction::Thanks), ErrorCode::Waiting).await;

    // A member may not turn them off; a facilitator may, and then they are refused.
    ann.fails(reactions(false), ErrorCode::Forbidden).await;
    fac.ok(reactions(false)).await;
    ann.expect("the setting", |m| {
        matches!(m, S::Settings { settings } if !settings.reactions).then_some(())
    })
    .await;
    fac.clear();
    ann.fails(react(Reaction::Thanks), ErrorCode::ReactionsDisabled)
        .await;
    fac.none_pending("a reaction while they are off", |m| {
        matches!(m, S::Reaction { .. })
    })
    .await;

    // Back on, a burst goes through and then the limit says to wait.
    fac.ok(reactions(true)).await;
    let mut refused = false;
    for _ in 0..20 {
        match ann.request(&react(Reaction::Clap)).await.expect("a reply") {
            S::Ack { .. } => {}
            S::Error { code, .. } => {
                assert_eq!(code, ErrorCode::RateLimited);
                refused = true;
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(refused, "twenty reactions at once are not all sent");
}

#[tokio::test]
async fn a_connection_level_reaches_facilitators_and_no_member() {
    let srv = server().await;
    let room = srv
        .create_room(json!({"settings": {"waiting_room": false}}))
        .await;
    let (mut fac, _) = srv.join(&room, "Robin", true).await;
    let (mut ann, aj) = srv.join(&room, "Ann", false).await;
    let (mut ben, _) = srv.join(&room, "Ben", false).await;

    ann.ok(C::ConnectionQuality {
        id: None,
        level: ConnectionLevel::Poor,
    })
    .await;
    let seen = fac
        .expect("Ann's level", |m| match m {
            S::ConnectionQuality { participant, level } => Some((participant.clone(), *level)),
            _ => None,
        })
        .await;
    assert_eq!(seen, (aj.you.clone(), ConnectionLevel::Poor));
    ben.none_pending("another member's level", |m| {
        matches!(m, S::ConnectionQuality { .. })
    })
    .await;
    ann.none_pending("her level echoed", |m| {
        matches!(m, S::ConnectionQuality { .. })
    })
    .await;

    // A facilitator who joins later sees it at once; a member who joins later does not.
    let (_, late_fac) = srv.join(&room, "Jo", true).await;
    assert_eq!(
        late_fac.room.connection_quality,
        [ConnectionReport {
            participant: aj.you.clone(),
            level: ConnectionLevel::Poor,
        }]
    );
    let (_, late_member) = srv.join(&room, "Lee", false).await;
    assert!(late_member.room.connection_quality.is_empty());
}
