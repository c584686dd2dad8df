//! The speaking order: raised hands in server-clock order, the floor, and the timed share.

mod support;

use circle_protocol::{FloorView, ParticipantId, ServerMsg, Settings, SettingsPatch};
use circle_room::{Command, RoomError};
use support::*;

/// A facilitator and three admitted members.
fn meeting() -> (Sim, ParticipantId, [ParticipantId; 3]) {
    let mut sim = Sim::new();
    let alex = sim.facilitator("Alex");
    let a = sim.member("Ann");
    let b = sim.member("Ben");
    let c = sim.member("Cas");
    sim.clear();
    (sim, alex, [a, b, c])
}

/// Asserts every admitted participant got the same floor events and returns the last one.
fn same_floor_for_all(sim: &Sim, admitted: &[&ParticipantId]) -> FloorView {
    let first = floors(sim.got(admitted[0]));
    assert!(!first.is_empty(), "a floor event went out");
    for who in admitted {
        assert_eq!(floors(sim.got(who)), first, "{who} sees the same order");
    }
    first.last().unwrap().clone()
}

#[test]
fn hands_are_ordered_by_when_they_went_up() {
    let (mut sim, alex, [a, b, c]) = meeting();
    let robin = sim.waiting("Robin");
    sim.clear();
    sim.ok(&b, Command::RaiseHand);
    sim.advance(1_000);
    sim.ok(&a, Command::RaiseHand);
    sim.advance(1_000);
    sim.ok(&c, Command::RaiseHand);

    let floor = same_floor_for_all(&sim, &[&alex, &a, &b, &c]);
    assert_eq!(floor.speaker, None);
    assert_eq!(
        queue_ids(&floor),
        vec![Some(b.clone()), Some(a.clone()), Some(c.clone())]
    );
    assert_eq!(
        floor.queue.iter().map(|q| q.raised_at).collect::<Vec<_>>(),
        vec![T0, T0 + 1_000, T0 + 2_000]
    );
    assert_eq!(floor.queue[0].name.as_deref(), Some("Ben"));
    assert_eq!(
        floors(sim.got(&robin)),
        vec![],
        "the waiting room sees no queue"
    );
    // The roster shows the hand too.
    assert_eq!(sim.view(&a).hand_raised_at, Some(T0 + 1_000));
    assert_eq!(floors(sim.got(&a)).len(), 3);
}

#[test]
fn raising_twice_keeps_the_earlier_place() {
    let (mut sim, alex, [a, b, _]) = meeting();
    sim.ok(&a, Command::RaiseHand);
    sim.advance(1_000);
    sim.ok(&b, Command::RaiseHand);
    sim.advance(1_000);
    sim.clear();
    sim.ok(&a, Command::RaiseHand);
    assert!(sim.log.is_empty(), "nothing changes: {:?}", sim.log);
    let floor = sim.snapshot(&alex).floor;
    assert_eq!(queue_ids(&floor), vec![Some(a.clone()), Some(b.clone())]);
    assert_eq!(floor.queue[0].raised_at, T0);
}

#[test]
fn a_member_lowers_their_own_hand() {
    let (mut sim, alex, [a, b, c]) = meeting();
    sim.ok(&a, Command::RaiseHand);
    sim.ok(&b, Command::RaiseHand);
    sim.clear();
    sim.ok(&a, Command::LowerHand(None));
    let floor = same_floor_for_all(&sim, &[&alex, &a, &b, &c]);
    assert_eq!(queue_ids(&floor), vec![Some(b.clone())]);
    assert_eq!(
        updates_about(sim.got(&c), &a)
            .last()
            .unwrap()
            .hand_raised_at,
        None
    );
    // Naming yourself is the same as naming nobody.
    sim.ok(&b, Command::LowerHand(Some(b.clone())));
    assert!(sim.snapshot(&alex).floor.queue.is_empty());
    // Lowering a hand that is down changes nothing.
    sim.clear();
    sim.ok(&a, Command::LowerHand(None));
    assert!(sim.log.is_empty());
}

#[test]
fn a_facilitator_lowers_someone_elses_hand_but_a_member_cannot() {
    let (mut sim, alex, [a, b, c]) = meeting();
    sim.ok(&a, Command::RaiseHand);
    sim.ok(&b, Command::RaiseHand);
    sim.clear();
    assert_eq!(
        sim.cmd(&c, Command::LowerHand(Some(a.clone()))),
        Err(RoomError::Forbidden)
    );
    assert!(sim.log.is_empty(), "a refused request sends nothing");
    assert_eq!(queue_ids(&sim.snapshot(&alex).floor).len(), 2);

    sim.ok(&alex, Command::LowerHand(Some(a.clone())));
    let floor = same_floor_for_all(&sim, &[&alex, &a, &b, &c]);
    assert_eq!(queue_ids(&floor), vec![Some(b.clone())]);
    assert_eq!(
        sim.cmd(&alex, Command::LowerHand(Some("nobody".into()))),
        Err(RoomError::UnknownParticipant)
    );
}

#[test]
fn next_speaker_takes_the_first_hand() {
    let (mut sim, alex, [a, b, c]) = meeting();
    sim.ok(&b, Command::RaiseHand);
    sim.advance(10);
    sim.ok(&a, Command::RaiseHand);
    sim.advance(5_000);
    sim.clear();
    sim.ok(&alex, Command::NextSpeaker);
    let floor = same_floor_for_all(&sim, &[&alex, &a, &b, &c]);
    let speaker = floor.speaker.clone().expect("Ben has the floor");
    assert_eq!(speaker.participant, b);
    assert_eq!(speaker.name, "Ben");
    assert_eq!(speaker.since, sim.now);
    assert_eq!(speaker.ends_at, None, "untimed by default");
    assert_eq!(
        queue_ids(&floor),
        vec![Some(a.clone())],
        "Ben's hand came down"
    );
    assert_eq!(sim.room.speaker(), Some(&b));
    assert_eq!(sim.view(&b).hand_raised_at, None);

    sim.ok(&alex, Command::NextSpeaker);
    assert_eq!(sim.room.speaker(), Some(&a));
    assert!(sim.snapshot(&c).floor.queue.is_empty());

    // With nobody waiting, "next" hands the floor back.
    sim.clear();
    sim.ok(&alex, Command::NextSpeaker);
    let floor = same_floor_for_all(&sim, &[&alex, &a, &b, &c]);
    assert_eq!(floor.speaker, None);
    assert_eq!(sim.room.speaker(), None);
}

#[test]
fn giving_the_floor_lowers_the_hand_and_lifts_the_facilitator_mute() {
    let (mut sim, alex, [a, b, c]) = meeting();
    sim.ok(&c, Command::RaiseHand);
    sim.ok(&b, Command::RaiseHand);
    assert!(sim.view(&b).muted_by_facilitator, "members join muted");
    sim.clear();
    sim.ok(&alex, Command::GiveFloor(b.clone()));
    let floor = same_floor_for_all(&sim, &[&alex, &a, &b, &c]);
    assert_eq!(floor.speaker.as_ref().unwrap().participant, b);
    assert_eq!(
        queue_ids(&floor),
        vec![Some(c.clone())],
        "Cas keeps her place"
    );
    let ben = sim.view(&b);
    assert!(!ben.muted_by_facilitator, "Ben may unmute now");
    assert!(ben.self_muted, "but the server never turns a microphone on");
    assert!(!sim.room.may_be_heard(&b));
    sim.ok(&b, Command::SetSelfMute(false));
    assert!(sim.room.may_be_heard(&b));

    // A facilitator can give the floor to someone whose hand is down.
    sim.ok(&alex, Command::GiveFloor(a.clone()));
    assert_eq!(sim.room.speaker(), Some(&a));
    // And cannot give it to someone who is not in the room.
    let robin = sim.waiting("Robin");
    assert_eq!(
        sim.cmd(&alex, Command::GiveFloor(robin)),
        Err(RoomError::UnknownParticipant)
    );
    assert_eq!(
        sim.cmd(&alex, Command::GiveFloor("nobody".into())),
        Err(RoomError::UnknownParticipant)
    );
    assert_eq!(sim.room.speaker(), Some(&a));
}

#[test]
fn taking_the_floor_back() {
    let (mut sim, alex, [a, b, c]) = meeting();
    sim.ok(&alex, Command::GiveFloor(a.clone()));
    sim.clear();
    sim.ok(&alex, Command::TakeFloor);
    let floor = same_floor_for_all(&sim, &[&alex, &a, &b, &c]);
    assert_eq!(floor.speaker, None);
    // Taking an empty floor sends nothing.
    sim.clear();
    sim.ok(&alex, Command::TakeFloor);
    assert!(sim.log.is_empty());
}

#[test]
fn a_facilitator_reorders_the_queue() {
    let (mut sim, alex, [a, b, c]) = meeting();
    for who in [&a, &b, &c] {
        sim.ok(who, Command::RaiseHand);
        sim.advance(1);
    }
    sim.clear();
    sim.ok(
        &alex,
        Command::MoveHand {
            participant: c.clone(),
            position: 0,
        },
    );
    let floor = same_floor_for_all(&sim, &[&alex, &a, &b, &c]);
    assert_eq!(
        queue_ids(&floor),
        vec![Some(c.clone()), Some(a.clone()), Some(b.clone())]
    );
    // The raise time stays with the person; the order is the facilitator's.
    assert_eq!(floor.queue[0].raised_at, T0 + 2);

    sim.ok(
        &alex,
        Command::MoveHand {
            participant: c.clone(),
            position: 99,
        },
    );
    assert_eq!(
        queue_ids(&sim.snapshot(&a).floor),
        vec![Some(a.clone()), Some(b.clone()), Some(c.clone())],
        "past the end means last"
    );
    sim.ok(
        &alex,
        Command::MoveHand {
            participant: a.clone(),
            position: 1,
        },
    );
    assert_eq!(
        queue_ids(&sim.snapshot(&a).floor),
        vec![Some(b.clone()), Some(a.clone()), Some(c.clone())]
    );
    // Moving to where it already is sends nothing.
    sim.clear();
    sim.ok(
        &alex,
        Command::MoveHand {
            participant: c.clone(),
            position: 2,
        },
    );
    assert!(sim.log.is_empty());
    // The next speaker follows the facilitator's order.
    sim.ok(&alex, Command::NextSpeaker);
    assert_eq!(sim.room.speaker(), Some(&b));
    // A hand that is down cannot be moved.
    assert!(matches!(
        sim.cmd(
            &alex,
            Command::MoveHand {
                participant: b.clone(),
                position: 0
            }
        ),
        Err(RoomError::BadTarget(_))
    ));
}

#[test]
fn lower_all_hands_empties_the_queue() {
    let (mut sim, alex, [a, b, c]) = meeting();
    sim.ok(&a, Command::RaiseHand);
    sim.ok(&c, Command::RaiseHand);
    sim.ok(&alex, Command::GiveFloor(b.clone()));
    sim.clear();
    sim.ok(&alex, Command::LowerAllHands);
    let floor = same_floor_for_all(&sim, &[&alex, &a, &b, &c]);
    assert!(floor.queue.is_empty());
    assert_eq!(
        floor.speaker.unwrap().participant,
        b,
        "the speaker keeps the floor"
    );
    assert_eq!(
        floors(sim.got(&alex)).len(),
        1,
        "one floor event, not one per hand"
    );
    for who in [&a, &c] {
        assert_eq!(sim.view(who).hand_raised_at, None);
        assert_eq!(
            updates_about(sim.got(&b), who)
                .last()
                .unwrap()
                .hand_raised_at,
            None
        );
    }
    sim.clear();
    sim.ok(&alex, Command::LowerAllHands);
    assert!(sim.log.is_empty(), "nothing to lower");
}

#[test]
fn a_speaker_who_leaves_frees_the_floor_and_their_place() {
    let (mut sim, alex, [a, b, c]) = meeting();
    sim.ok(&b, Command::RaiseHand);
    sim.ok(&alex, Command::GiveFloor(a.clone()));
    sim.clear();
    sim.ok(&a, Command::Leave);
    let floor = same_floor_for_all(&sim, &[&alex, &b, &c]);
    assert_eq!(floor.speaker, None);
    sim.clear();
    sim.ok(&b, Command::Leave);
    let floor = same_floor_for_all(&sim, &[&alex, &c]);
    assert!(floor.queue.is_empty());
}

#[test]
fn a_dropped_speaker_keeps_the_floor_through_the_grace_period() {
    let (mut sim, alex, [a, ..]) = meeting();
    sim.ok(&alex, Command::GiveFloor(a.clone()));
    sim.disconnect(&a);
    assert_eq!(sim.room.speaker(), Some(&a));
    sim.resume(&a).unwrap();
    assert_eq!(sim.room.speaker(), Some(&a));
}

// --- The share timer -------------------------------------------------------------------------------

fn timed(auto_end: bool) -> Settings {
    Settings {
        share_secs: Some(180),
        share_warning_secs: 30,
        auto_end_share: auto_end,
        ..Settings::default()
    }
}

fn timed_meeting(auto_end: bool) -> (Sim, ParticipantId, ParticipantId, ParticipantId) {
    let mut sim = Sim::with_settings(timed(auto_end));
    let alex = sim.facilitator("Alex");
    let a = sim.member("Ann");
    let b = sim.member("Ben");
    sim.clear();
    (sim, alex, a, b)
}

#[test]
fn a_timed_share_warns_then_expires_and_with_auto_end_returns_the_floor() {
    let (mut sim, alex, a, b) = timed_meeting(true);
    let robin = sim.waiting("Robin");
    let start = sim.now;
    assert_eq!(sim.room.poll_timeout(), None, "no share, no timer");
    sim.ok(&alex, Command::GiveFloor(a.clone()));
    let speaker = sim.snapshot(&b).floor.speaker.unwrap();
    assert_eq!(speaker.ends_at, Some(start + 180_000));

    // The driver sleeps until the warning.
    assert_eq!(sim.room.poll_timeout(), Some(start + 150_000));
    sim.clear();
    sim.room.handle_timeout(start + 149_999);
    sim.pump();
    assert!(sim.log.is_empty(), "early wake-ups do nothing");

    assert_eq!(sim.fire_next_timer(), start + 150_000);
    for who in [&alex, &a, &b] {
        assert_eq!(
            sim.take(who),
            vec![ServerMsg::ShareWarning {
                participant: a.clone(),
                remaining_secs: 30
            }],
            "{who}"
        );
    }
    assert!(sim.take(&robin).is_empty());
    assert_eq!(sim.room.speaker(), Some(&a));

    assert_eq!(sim.room.poll_timeout(), Some(start + 180_000));
    assert_eq!(sim.fire_next_timer(), start + 180_000);
    for who in [&alex, &a, &b] {
        let msgs = sim.take(who);
        assert_eq!(
            msgs[0],
            ServerMsg::ShareExpired {
                participant: a.clone()
            },
            "{who}"
        );
        let floor = last_floor(&msgs);
        assert_eq!(floor.speaker, None, "{who}: the floor returns");
    }
    assert_eq!(sim.room.speaker(), None);
    assert_eq!(sim.room.poll_timeout(), None);
}

#[test]
fn without_auto_end_the_speaker_keeps_the_floor_after_expiry() {
    let (mut sim, alex, a, b) = timed_meeting(false);
    sim.ok(&alex, Command::GiveFloor(a.clone()));
    sim.clear();
    sim.run_until(sim.now + 180_000);
    for who in [&alex, &a, &b] {
        assert_eq!(
            sim.take(who),
            vec![
                ServerMsg::ShareWarning {
                    participant: a.clone(),
                    remaining_secs: 30
                },
                ServerMsg::ShareExpired {
                    participant: a.clone()
                },
            ],
            "{who}"
        );
    }
    assert_eq!(sim.room.speaker(), Some(&a));
    assert_eq!(sim.room.poll_timeout(), None, "the expiry is sent once");
    sim.clear();
    sim.run_until(sim.now + 3_600_000);
    assert!(sim.log.is_empty(), "an hour later nothing more is sent");
}

#[test]
fn taking_the_floor_early_cancels_the_timer_and_a_new_speaker_starts_a_new_one() {
    let (mut sim, alex, a, b) = timed_meeting(true);
    sim.ok(&alex, Command::GiveFloor(a.clone()));
    sim.advance(60_000);
    sim.run_until(sim.now);
    sim.ok(&alex, Command::TakeFloor);
    assert_eq!(sim.room.poll_timeout(), None);

    sim.advance(1_000);
    let start = sim.now;
    sim.ok(&b, Command::RaiseHand);
    sim.ok(&alex, Command::NextSpeaker);
    assert_eq!(sim.room.poll_timeout(), Some(start + 150_000));
    sim.clear();
    sim.run_until(start + 180_000);
    let timer_msgs: Vec<_> = sim
        .take(&a)
        .into_iter()
        .filter(|m| !matches!(m, ServerMsg::ParticipantUpdated { .. }))
        .collect();
    assert_eq!(
        timer_msgs,
        vec![
            ServerMsg::ShareWarning {
                participant: b.clone(),
                remaining_secs: 30
            },
            ServerMsg::ShareExpired {
                participant: b.clone()
            },
            ServerMsg::Floor {
                floor: FloorView {
                    speaker: None,
                    queue: vec![]
                }
            },
        ]
    );
}

#[test]
fn the_share_length_is_a_setting() {
    let (mut sim, alex, a, _) = timed_meeting(false);
    sim.ok(
        &alex,
        settings(SettingsPatch {
            share_secs: Some(300),
            share_warning_secs: Some(60),
            ..Default::default()
        }),
    );
    assert_eq!(sim.room.settings().share_secs, Some(300));
    let start = sim.now;
    sim.ok(&alex, Command::GiveFloor(a.clone()));
    assert_eq!(sim.room.poll_timeout(), Some(start + 240_000));
    sim.clear();
    sim.fire_next_timer();
    assert_eq!(
        sim.take(&a),
        vec![ServerMsg::ShareWarning {
            participant: a.clone(),
            remaining_secs: 60
        }]
    );

    // Zero turns the timer off for the next share.
    sim.ok(
        &alex,
        settings(SettingsPatch {
            share_secs: Some(0),
            ..Default::default()
        }),
    );
    assert_eq!(sim.room.settings().share_secs, None);
    sim.ok(&alex, Command::GiveFloor(a.clone()));
    assert_eq!(sim.room.poll_timeout(), None);
    assert_eq!(sim.snapshot(&a).floor.speaker.unwrap().ends_at, None);
}

#[test]
fn a_warning_as_long_as_the_share_is_skipped() {
    let mut sim = Sim::with_settings(Settings {
        share_secs: Some(30),
        share_warning_secs: 30,
        ..Settings::default()
    });
    let alex = sim.facilitator("Alex");
    let a = sim.member("Ann");
    let start = sim.now;
    sim.ok(&alex, Command::GiveFloor(a.clone()));
    assert_eq!(sim.room.poll_timeout(), Some(start + 30_000));
    sim.clear();
    sim.fire_next_timer();
    assert_eq!(
        sim.take(&a),
        vec![ServerMsg::ShareExpired {
            participant: a.clone()
        }]
    );
}
