//! Coming back from the same browser (a closed tab reopened, a second tab) takes up the earlier
//! place; and everyone, the waiting room included, knows whether a facilitator is here.

mod support;

use circle_protocol::{Presence, Role, ServerMsg, Settings, SettingsPatch};
use circle_room::{Command, RoomError, RoomLimits};
use support::*;

/// The `facilitator_present` answers this person was told, in order.
fn presence_news(msgs: &[ServerMsg]) -> Vec<bool> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMsg::FacilitatorPresent { present } => Some(*present),
            _ => None,
        })
        .collect()
}

#[test]
fn a_closed_tab_reopened_in_the_grace_period_takes_up_its_place() {
    let mut sim = Sim::with_settings(Settings {
        share_secs: Some(300),
        ..Settings::default()
    });
    let alex = sim.facilitator("Alex");
    let sam = sim.member("Sam");
    let kim = sim.member("Kim");
    let robin = sim.member("Robin");
    sim.ok(&kim, Command::RaiseHand);
    sim.advance(100);
    sim.ok(&robin, Command::RaiseHand);
    sim.ok(&alex, Command::GiveFloor(sam.clone()));
    sim.ok(&sam, Command::SetSelfMute(false));
    let ends_at = sim.room.snapshot_for(&alex).floor.speaker.unwrap().ends_at;
    assert!(sim.room.may_be_heard(&sam));

    // The tab is closed: the session waits out its grace period.
    sim.disconnect(&sam);
    sim.advance(5_000);
    sim.run_until(sim.now);
    sim.clear();

    // A new tab of the same browser, the same name typed in.
    let (id, joined) = sim
        .try_join("Sam", false, Some("device-Sam"))
        .expect("the same browser gets its own name back");
    assert_eq!(id, sam, "the same participant, not a new one");
    assert!(joined.resumed);
    assert_eq!(joined.role, Role::Member);
    assert!(!joined.waiting, "no waiting room again");
    let (_, room) = joined_snapshot(&sim.take(&sam));
    let speaker = room
        .floor
        .speaker
        .clone()
        .expect("the floor is still theirs");
    assert_eq!(speaker.participant, sam);
    assert_eq!(
        speaker.ends_at, ends_at,
        "the same share, on the same timer"
    );
    assert_eq!(queue_ids(&room.floor), vec![Some(kim), Some(robin)]);
    let me = room.participants.iter().find(|p| p.id == sam).unwrap();
    assert_eq!(me.presence, Presence::Online);
    assert!(
        me.self_muted,
        "a new tab starts with the microphone off, as its Join button says"
    );
    assert!(!sim.room.may_be_heard(&sam));
    assert_eq!(sim.room.len(), 4, "nobody was added");
    let updates = updates_about(sim.got(&alex), &sam);
    assert_eq!(
        updates.last().map(|v| (v.presence, v.self_muted)),
        Some((Presence::Online, true))
    );
    assert!(
        !sim.got(&alex)
            .iter()
            .any(|m| matches!(m, ServerMsg::ParticipantJoined { .. })),
        "the others see Sam back, not a newcomer"
    );
    sim.run_until(sim.now + RoomLimits::default().grace_ms);
    assert!(sim.closed.is_empty(), "the grace timer is gone");
    assert!(sim.room.role_of(&sam).is_some());
}

#[test]
fn a_second_tab_of_the_same_browser_moves_the_session_to_it() {
    let mut sim = Sim::new();
    let alex = sim.facilitator("Alex");
    let kim = sim.member("Kim");
    let sam = sim.member("Sam");
    sim.ok(&kim, Command::RaiseHand);
    sim.advance(100);
    sim.ok(&sam, Command::RaiseHand);
    sim.ok(&alex, Command::Mute(sam.clone()));
    let before = sim.view(&sam);
    sim.clear();

    let (id, joined) = sim.try_join("sam", false, Some("device-Sam")).unwrap();
    assert_eq!(id, sam);
    assert!(joined.resumed);
    assert_eq!(sim.view(&sam), before, "same hand and facilitator mute");
    assert_eq!(
        queue_ids(&sim.snapshot(&alex).floor),
        vec![Some(kim), Some(sam.clone())],
        "same place in the queue"
    );
    assert!(
        updates_about(sim.got(&alex), &sam).is_empty(),
        "nothing changed that others could see"
    );
}

#[test]
fn the_same_name_from_another_browser_is_still_taken() {
    let mut sim = Sim::new();
    sim.facilitator("Alex");
    let sam = sim.member("Sam");
    sim.disconnect(&sam);
    assert_eq!(
        sim.try_join("Sam", false, Some("someone-else")).err(),
        Some(RoomError::NameTaken)
    );
    assert_eq!(
        sim.try_join("Sam", false, None).err(),
        Some(RoomError::NameTaken)
    );
    // The same browser under another name is another person (a second name, say, for a shared
    // computer); it does not take over Sam.
    let (other, joined) = sim.try_join("Jo", false, Some("device-Sam")).unwrap();
    assert_ne!(other, sam);
    assert!(!joined.resumed);
}

#[test]
fn a_banned_browser_stays_out_under_its_old_name() {
    let mut sim = Sim::new();
    let alex = sim.facilitator("Alex");
    let sam = sim.member("Sam");
    sim.ok(&alex, Command::Ban(sam));
    assert_eq!(
        sim.try_join("Sam", false, Some("device-Sam")).err(),
        Some(RoomError::Banned)
    );
}

#[test]
fn a_lock_or_a_full_room_does_not_keep_out_someone_coming_back() {
    let mut sim = Sim::with(
        Settings::default(),
        RoomLimits {
            max_participants: 2,
            ..RoomLimits::default()
        },
    );
    let alex = sim.facilitator("Alex");
    let sam = sim.member("Sam");
    sim.ok(
        &alex,
        settings(SettingsPatch {
            locked: Some(true),
            ..SettingsPatch::default()
        }),
    );
    sim.disconnect(&sam);
    assert_eq!(sim.join("Kim"), Err(RoomError::Locked));
    let (id, _) = sim.try_join("Sam", false, Some("device-Sam")).unwrap();
    assert_eq!(id, sam);
}

#[test]
fn someone_waiting_who_comes_back_is_still_waiting() {
    let mut sim = Sim::new();
    let alex = sim.facilitator("Alex");
    let robin = sim.waiting("Robin");
    sim.disconnect(&robin);
    sim.clear();
    let (id, joined) = sim.try_join("Robin", false, Some("device-Robin")).unwrap();
    assert_eq!(id, robin);
    assert!(joined.waiting);
    let updates = updates_about(sim.got(&alex), &robin);
    assert_eq!(
        updates.last().map(|v| v.presence),
        Some(Presence::Waiting),
        "the facilitator sees one person waiting, not two"
    );
}

#[test]
fn everyone_is_told_when_the_last_facilitator_leaves_and_when_one_arrives() {
    let mut sim = Sim::new();
    let alex = sim.facilitator("Alex");
    let jo = sim.facilitator("Jo");
    let sam = sim.member("Sam");
    let kim = sim.waiting("Kim");
    for who in [&sam, &kim] {
        assert!(sim.snapshot(who).facilitator_present, "{who}");
    }
    sim.clear();

    sim.ok(&jo, Command::Leave);
    assert!(
        presence_news(sim.got(&sam)).is_empty(),
        "another facilitator is still here"
    );
    sim.ok(&alex, Command::Leave);
    for who in [&sam, &kim] {
        assert_eq!(presence_news(sim.got(who)), vec![false], "{who}");
        assert!(!sim.snapshot(who).facilitator_present, "{who}");
    }
    sim.clear();

    let ana = sim.facilitator("Ana");
    for who in [&sam, &kim] {
        assert_eq!(presence_news(sim.got(who)), vec![true], "{who}");
    }
    assert!(sim.snapshot(&ana).facilitator_present);
}

#[test]
fn a_facilitator_whose_connection_dropped_counts_until_their_grace_ends() {
    let mut sim = Sim::new();
    let alex = sim.facilitator("Alex");
    let sam = sim.member("Sam");
    let kim = sim.waiting("Kim");
    sim.clear();
    sim.disconnect(&alex);
    assert!(presence_news(sim.got(&sam)).is_empty());
    assert!(sim.snapshot(&kim).facilitator_present);

    sim.run_until(sim.now + RoomLimits::default().grace_ms);
    for who in [&sam, &kim] {
        assert_eq!(presence_news(sim.got(who)), vec![false], "{who}");
    }
}

#[test]
fn without_a_facilitator_the_share_ends_on_its_timer_and_the_queue_waits_in_order() {
    let mut sim = Sim::with_settings(Settings {
        share_secs: Some(60),
        auto_end_share: true,
        ..Settings::default()
    });
    let alex = sim.facilitator("Alex");
    let sam = sim.member("Sam");
    let kim = sim.member("Kim");
    let robin = sim.member("Robin");
    sim.ok(&alex, Command::GiveFloor(sam.clone()));
    sim.ok(&kim, Command::RaiseHand);
    sim.advance(100);
    sim.ok(&robin, Command::RaiseHand);
    sim.ok(&alex, Command::Leave);
    assert_eq!(
        sim.room.speaker(),
        Some(&sam),
        "Sam's share goes on: nobody is cut off mid-sentence"
    );
    sim.clear();

    sim.run_until(sim.now + 60_000);
    assert!(
        sim.got(&kim)
            .iter()
            .any(|m| matches!(m, ServerMsg::ShareExpired { participant } if participant == &sam))
    );
    assert_eq!(sim.room.speaker(), None, "auto-end returns the floor");
    assert_eq!(
        queue_ids(&sim.snapshot(&kim).floor),
        vec![Some(kim.clone()), Some(robin.clone())],
        "the queue waits, in order, for a facilitator"
    );
    // Members cannot hand the floor on among themselves.
    assert_eq!(
        sim.cmd(&kim, Command::NextSpeaker),
        Err(RoomError::Forbidden)
    );
    let jo = sim.facilitator("Jo");
    sim.ok(&jo, Command::NextSpeaker);
    assert_eq!(sim.room.speaker(), Some(&kim));
}
