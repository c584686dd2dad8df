//! The waiting room: who sees whom while waiting, admit, deny, admit all, and what a waiting member
//! may and may not do.

mod support;

use circle_protocol::{LeaveReason, Presence, ServerMsg, SettingsPatch};
use circle_room::{Command, RoomError};
use support::*;

#[test]
fn facilitators_see_the_waiting_room_and_members_only_its_size() {
    let mut sim = Sim::new();
    let alex = sim.facilitator("Alex");
    let sam = sim.member("Sam");
    let robin = sim.waiting("Robin");
    let kim = sim.waiting("Kim");

    let host_view = sim.snapshot(&alex);
    assert_eq!(
        roster(&host_view),
        vec![alex.clone(), sam.clone(), robin.clone(), kim.clone()]
    );
    for w in [&robin, &kim] {
        assert_eq!(sim.view(w).presence, Presence::Waiting);
    }
    let counts = host_view.counts.unwrap();
    assert_eq!(
        (counts.members, counts.facilitators, counts.waiting),
        (1, 1, 2)
    );

    let member_view = sim.snapshot(&sam);
    assert_eq!(roster(&member_view), vec![alex.clone(), sam.clone()]);
    assert_eq!(member_view.counts.unwrap().waiting, 2);

    // Waiting people do not see each other.
    assert_eq!(roster(&sim.snapshot(&robin)), vec![robin.clone()]);
    assert_eq!(roster(&sim.snapshot(&kim)), vec![kim.clone()]);
    assert_eq!(
        sim.room
            .recipients(&circle_room::Audience::Seeing(robin.clone())),
        vec![alex]
    );
}

#[test]
fn an_admitted_member_gets_the_whole_room_and_everyone_sees_them_arrive() {
    let mut sim = Sim::new();
    let alex = sim.facilitator("Alex");
    let sam = sim.member("Sam");
    sim.ok(&sam, chat("welcome, whoever comes next"));
    sim.ok(&sam, Command::RaiseHand);
    let robin = sim.waiting("Robin");
    sim.clear();

    sim.ok(&alex, Command::Admit(robin.clone()));
    assert!(!sim.room.is_waiting(&robin));

    let to_robin = sim.take(&robin);
    let room = to_robin
        .iter()
        .find_map(|m| match m {
            ServerMsg::Admitted { room } => Some(room.clone()),
            _ => None,
        })
        .expect("an admitted message");
    assert_eq!(
        roster(&room),
        vec![alex.clone(), sam.clone(), robin.clone()]
    );
    assert_eq!(room.participants[2].presence, Presence::Online);
    let counts = room.counts.expect("counts once admitted");
    assert_eq!(
        (counts.members, counts.facilitators, counts.waiting),
        (2, 1, 0)
    );
    assert_eq!(room.chat.len(), 1, "the recent chat is there");
    assert_eq!(
        queue_ids(&room.floor),
        vec![Some(sam.clone())],
        "and the queue"
    );

    // The facilitator saw Robin waiting: an update. Sam never saw him: an arrival.
    let to_alex = sim.take(&alex);
    let update = updates_about(&to_alex, &robin);
    assert_eq!(update.len(), 1, "{to_alex:?}");
    assert_eq!(update[0].presence, Presence::Online);
    let to_sam = sim.take(&sam);
    assert!(updates_about(&to_sam, &robin).is_empty(), "{to_sam:?}");
    assert!(to_sam.iter().any(|m| matches!(m,
        ServerMsg::ParticipantJoined { participant } if participant.id == robin && participant.presence == Presence::Online)));
    for msgs in [&to_alex, &to_sam] {
        assert!(msgs.iter().any(|m| matches!(m, ServerMsg::Counts { counts } if counts.members == 2 && counts.waiting == 0)));
    }
}

#[test]
fn admitting_someone_who_is_not_waiting_is_refused() {
    let mut sim = Sim::new();
    let alex = sim.facilitator("Alex");
    let sam = sim.member("Sam");
    sim.clear();
    assert_eq!(
        sim.cmd(&alex, Command::Admit(sam.clone())),
        Err(RoomError::UnknownParticipant)
    );
    assert_eq!(
        sim.cmd(&alex, Command::Admit("nobody".into())),
        Err(RoomError::UnknownParticipant)
    );
    assert_eq!(
        sim.cmd(&alex, Command::Deny(sam.clone())),
        Err(RoomError::UnknownParticipant)
    );
    assert!(sim.log.is_empty());
}

#[test]
fn a_denied_member_is_turned_away() {
    let mut sim = Sim::new();
    let alex = sim.facilitator("Alex");
    let sam = sim.member("Sam");
    let robin = sim.waiting("Robin");
    sim.clear();
    sim.ok(&alex, Command::Deny(robin.clone()));
    assert_eq!(sim.closed, vec![(robin.clone(), LeaveReason::Denied)]);
    assert_eq!(sim.room.role_of(&robin), None);
    assert_eq!(sim.room.len(), 2);
    assert!(
        sim.got(&alex)
            .iter()
            .any(|m| is_left(m, &robin, LeaveReason::Denied)),
        "the facilitator's waiting list drops them: {:?}",
        sim.got(&alex)
    );
    assert!(
        !sim.got(&sam)
            .iter()
            .any(|m| matches!(m, ServerMsg::ParticipantLeft { .. })),
        "members never saw them"
    );
    assert!(
        sim.got(&sam)
            .iter()
            .any(|m| matches!(m, ServerMsg::Counts { counts } if counts.waiting == 0))
    );
    assert_eq!(sim.resume(&robin), Err(RoomError::SessionGone));
}

#[test]
fn admit_all_lets_everyone_in_in_arrival_order() {
    let mut sim = Sim::new();
    let alex = sim.facilitator("Alex");
    let a = sim.waiting("Ann");
    let b = sim.waiting("Ben");
    let c = sim.waiting("Cas");
    sim.clear();
    sim.ok(&alex, Command::AdmitAll);
    for w in [&a, &b, &c] {
        assert!(!sim.room.is_waiting(w));
        assert!(
            sim.got(w)
                .iter()
                .any(|m| matches!(m, ServerMsg::Admitted { .. }))
        );
    }
    let admitted_order: Vec<_> = sim
        .log
        .iter()
        .filter_map(|d| match &d.output {
            circle_room::Output::Send {
                msg: ServerMsg::Admitted { .. },
                to: circle_room::Audience::One(who),
                ..
            } => Some(who.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(admitted_order, vec![a.clone(), b.clone(), c.clone()]);
    // Everyone ends with the same roster.
    for who in [&alex, &a, &b, &c] {
        assert_eq!(
            roster(&sim.snapshot(who)),
            vec![alex.clone(), a.clone(), b.clone(), c.clone()]
        );
    }
    // With nobody waiting it does nothing.
    sim.clear();
    sim.ok(&alex, Command::AdmitAll);
    assert!(sim.log.is_empty());
}

#[test]
fn a_waiting_member_may_only_leave() {
    let mut sim = Sim::new();
    let alex = sim.facilitator("Alex");
    let robin = sim.waiting("Robin");
    sim.clear();
    for cmd in [
        Command::RaiseHand,
        Command::LowerHand(None),
        Command::SetSelfMute(false),
        Command::SetSelfMute(true),
        chat("let me in"),
        Command::ChatPrivate {
            text: text("please"),
            to: None,
        },
        Command::Admit(robin.clone()),
        Command::AdmitAll,
        Command::EndMeeting,
    ] {
        let label = format!("{cmd:?}");
        assert_eq!(sim.cmd(&robin, cmd), Err(RoomError::Waiting), "{label}");
    }
    assert!(sim.log.is_empty(), "nothing changed: {:?}", sim.log);
    assert!(sim.room.is_waiting(&robin));

    sim.ok(&robin, Command::Leave);
    assert_eq!(sim.closed, vec![(robin.clone(), LeaveReason::Left)]);
    assert!(
        sim.got(&alex)
            .iter()
            .any(|m| is_left(m, &robin, LeaveReason::Left))
    );
}

#[test]
fn the_waiting_room_hears_nothing_of_the_meeting() {
    let mut sim = Sim::new();
    let alex = sim.facilitator("Alex");
    let sam = sim.member("Sam");
    let robin = sim.waiting("Robin");
    sim.clear();
    sim.ok(&sam, chat("this is private to the room"));
    sim.ok(
        &sam,
        Command::ChatPrivate {
            text: text("to the facilitators"),
            to: None,
        },
    );
    sim.ok(&sam, Command::RaiseHand);
    sim.ok(&alex, Command::NextSpeaker);
    sim.ok(&alex, Command::Mute(sam.clone()));
    let kim = sim.member("Kim");
    sim.ok(&kim, Command::Leave);
    assert!(sim.got(&robin).is_empty(), "{:?}", sim.got(&robin));
    assert!(!sim.room.may_be_heard(&robin));
}

#[test]
fn turning_the_waiting_room_off_lets_later_members_straight_in() {
    let mut sim = Sim::new();
    let alex = sim.facilitator("Alex");
    let robin = sim.waiting("Robin");
    sim.ok(
        &alex,
        settings(SettingsPatch {
            waiting_room: Some(false),
            ..Default::default()
        }),
    );
    let sam = sim.join("Sam").unwrap();
    assert!(!sim.room.is_waiting(&sam));
    // Those already waiting still need a facilitator.
    assert!(sim.room.is_waiting(&robin));
}

#[test]
fn admitting_many_at_once_sends_each_of_them_one_snapshot_and_nothing_per_batch_mate() {
    const N: usize = 60;
    let mut sim = Sim::new();
    let alex = sim.facilitator("Alex");
    let old = sim.member("Olga");
    let waiting: Vec<_> = (0..N).map(|i| sim.waiting(&format!("W{i}"))).collect();
    sim.clear();
    sim.ok(&alex, Command::AdmitAll);
    let count =
        |msgs: &[ServerMsg], pick: fn(&ServerMsg) -> bool| msgs.iter().filter(|m| pick(m)).count();
    let is_admitted = |m: &ServerMsg| matches!(m, ServerMsg::Admitted { .. });
    let is_arrival = |m: &ServerMsg| matches!(m, ServerMsg::ParticipantJoined { .. });
    for w in &waiting {
        let got = sim.got(w);
        assert_eq!(count(got, is_admitted), 1, "{w}: one snapshot");
        assert_eq!(count(got, is_arrival), 0, "{w}: arrivals of batch-mates");
        // The snapshot, counts, whether they may be heard: a handful, not one per batch-mate.
        assert!(got.len() <= 3, "{w} got {} messages", got.len());
    }
    // Everyone ends with the same roster, the snapshot included.
    let first = admitted_room(sim.got(&waiting[0]));
    assert_eq!(first.participants.len(), N + 2);
    // A member who was already in hears of each newcomer once.
    assert_eq!(count(sim.got(&old), is_arrival), N);
    let total: usize = sim.log.iter().map(|d| d.recipients.len()).sum();
    assert!(total <= 5 * (N + 2), "{total} messages for {N} admitted");
}

/// The room in the first `admitted` among `msgs`.
fn admitted_room(msgs: &[ServerMsg]) -> circle_protocol::RoomSnapshot {
    msgs.iter()
        .find_map(|m| match m {
            ServerMsg::Admitted { room } => Some(room.clone()),
            _ => None,
        })
        .expect("an admitted message")
}
