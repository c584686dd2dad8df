//! Muting and who may be heard: self mute, facilitator mute, mute all, mute on entry, allow to
//! speak, one-speaker mode, and the "may be heard" feed to the media relay.

mod support;

use circle_protocol::{ServerMsg, Settings, SettingsPatch};
use circle_room::{Command, RoomError};
use support::*;

fn no_mute_on_entry() -> Settings {
    Settings {
        mute_on_entry: false,
        ..Settings::default()
    }
}

#[test]
fn members_join_muted_by_the_facilitator_by_default() {
    let mut sim = Sim::new();
    let alex = sim.facilitator("Alex");
    let sam = sim.member("Sam");
    let view = sim.view(&sam);
    assert!(view.self_muted);
    assert!(view.muted_by_facilitator);
    assert_eq!(
        sim.cmd(&sam, Command::SetSelfMute(false)),
        Err(RoomError::MutedByFacilitator)
    );
    assert!(sim.view(&sam).self_muted);

    sim.clear();
    sim.ok(&alex, Command::AllowSpeak(sam.clone()));
    let update = updates_about(sim.got(&sam), &sam);
    assert_eq!(update.len(), 1, "Sam is told he may unmute");
    assert!(!update[0].muted_by_facilitator);
    assert!(
        update[0].self_muted,
        "allowing does not open his microphone"
    );
    assert!(!sim.room.may_be_heard(&sam));
    assert!(sim.hearing.is_empty());

    sim.ok(&sam, Command::SetSelfMute(false));
    assert!(sim.room.may_be_heard(&sam));
    assert_eq!(sim.hearing, vec![(sam.clone(), true)]);
    assert_eq!(hearing_msgs(sim.got(&sam)), vec![true]);
}

#[test]
fn without_mute_on_entry_members_unmute_themselves() {
    let mut sim = Sim::with_settings(no_mute_on_entry());
    let alex = sim.facilitator("Alex");
    let sam = sim.member("Sam");
    assert!(!sim.view(&sam).muted_by_facilitator);
    assert!(
        sim.view(&sam).self_muted,
        "still joins with the microphone off"
    );
    sim.clear();
    sim.ok(&sam, Command::SetSelfMute(false));
    assert!(sim.room.may_be_heard(&sam));
    let seen = updates_about(sim.got(&alex), &sam);
    assert!(!seen[0].self_muted, "the facilitator sees Sam unmuted");
    assert!(
        !updates_about(sim.got(&sam), &sam)[0].self_muted,
        "and so does Sam"
    );

    sim.clear();
    sim.ok(&sam, Command::SetSelfMute(true));
    assert!(!sim.room.may_be_heard(&sam));
    assert_eq!(sim.hearing, vec![(sam.clone(), false)]);
    assert_eq!(hearing_msgs(sim.got(&sam)), vec![false]);
    // Muting again changes nothing and sends nothing.
    sim.clear();
    sim.ok(&sam, Command::SetSelfMute(true));
    assert!(sim.log.is_empty());
}

#[test]
fn a_facilitator_mute_holds_until_allowed_to_speak() {
    let mut sim = Sim::with_settings(no_mute_on_entry());
    let alex = sim.facilitator("Alex");
    let sam = sim.member("Sam");
    let kim = sim.member("Kim");
    sim.ok(&sam, Command::SetSelfMute(false));
    sim.clear();

    sim.ok(&alex, Command::Mute(sam.clone()));
    assert!(!sim.room.may_be_heard(&sam));
    assert_eq!(
        sim.hearing,
        vec![(sam.clone(), false)],
        "the relay stops forwarding Sam"
    );
    assert_eq!(hearing_msgs(sim.got(&sam)), vec![false]);
    assert!(
        updates_about(sim.got(&kim), &sam)[0].muted_by_facilitator,
        "everyone sees it"
    );

    assert_eq!(
        sim.cmd(&sam, Command::SetSelfMute(false)),
        Err(RoomError::MutedByFacilitator)
    );
    // Muting oneself is always allowed.
    sim.ok(&sam, Command::SetSelfMute(true));
    assert!(sim.view(&sam).self_muted);

    sim.clear();
    sim.ok(&alex, Command::AllowSpeak(sam.clone()));
    assert!(
        !sim.room.may_be_heard(&sam),
        "Sam's microphone stays as he left it"
    );
    assert!(sim.hearing.is_empty());
    sim.ok(&sam, Command::SetSelfMute(false));
    assert!(sim.room.may_be_heard(&sam));

    // Muting someone already muted sends nothing.
    sim.ok(&alex, Command::Mute(sam.clone()));
    sim.clear();
    sim.ok(&alex, Command::Mute(sam.clone()));
    assert!(sim.log.is_empty());
}

#[test]
fn mute_all_leaves_facilitators_alone() {
    let mut sim = Sim::with_settings(no_mute_on_entry());
    let alex = sim.facilitator("Alex");
    let jo = sim.facilitator("Jo");
    let sam = sim.member("Sam");
    let kim = sim.member("Kim");
    let robin = sim.waiting("Robin");
    for who in [&alex, &jo, &sam, &kim] {
        sim.ok(who, Command::SetSelfMute(false));
    }
    sim.clear();
    sim.ok(&alex, Command::MuteAll);
    for who in [&sam, &kim] {
        assert!(sim.view(who).muted_by_facilitator);
        assert!(!sim.room.may_be_heard(who));
    }
    for who in [&alex, &jo] {
        assert!(!sim.view(who).muted_by_facilitator);
        assert!(sim.room.may_be_heard(who));
    }
    assert!(
        !sim.view(&robin).muted_by_facilitator,
        "the waiting room is not in the meeting yet"
    );
    let mut changed = sim.hearing.clone();
    changed.sort();
    assert_eq!(changed, vec![(sam.clone(), false), (kim.clone(), false)]);
}

#[test]
fn facilitators_cannot_be_muted() {
    let mut sim = Sim::new();
    let alex = sim.facilitator("Alex");
    let jo = sim.facilitator("Jo");
    sim.clear();
    assert!(matches!(
        sim.cmd(&alex, Command::Mute(jo.clone())),
        Err(RoomError::BadTarget(_))
    ));
    assert!(matches!(
        sim.cmd(&alex, Command::Mute(alex.clone())),
        Err(RoomError::BadTarget(_))
    ));
    assert!(matches!(
        sim.cmd(&alex, Command::AllowSpeak(jo.clone())),
        Err(RoomError::BadTarget(_))
    ));
    assert!(sim.log.is_empty());
    assert_eq!(
        sim.cmd(&alex, Command::Mute("nobody".into())),
        Err(RoomError::UnknownParticipant)
    );
    let robin = sim.waiting("Robin");
    assert_eq!(
        sim.cmd(&alex, Command::Mute(robin)),
        Err(RoomError::UnknownParticipant)
    );
}

#[test]
fn who_may_be_heard() {
    let mut sim = Sim::with_settings(no_mute_on_entry());
    let alex = sim.facilitator("Alex");
    let sam = sim.member("Sam");
    let kim = sim.member("Kim");
    let robin = sim.waiting("Robin");
    assert!(!sim.room.may_be_heard(&"nobody".into()));
    // Self-muted (everyone joins so).
    for who in [&alex, &sam, &kim, &robin] {
        assert!(!sim.room.may_be_heard(who));
    }
    // Waiting: cannot even unmute.
    assert_eq!(
        sim.cmd(&robin, Command::SetSelfMute(false)),
        Err(RoomError::Waiting)
    );
    assert!(!sim.room.may_be_heard(&robin));

    sim.ok(&alex, Command::SetSelfMute(false));
    sim.ok(&sam, Command::SetSelfMute(false));
    sim.ok(&kim, Command::SetSelfMute(false));
    assert!(sim.room.may_be_heard(&alex));
    assert!(sim.room.may_be_heard(&sam));

    // Muted by a facilitator.
    sim.ok(&alex, Command::Mute(kim.clone()));
    assert!(!sim.room.may_be_heard(&kim));

    // Disconnected, and back.
    sim.disconnect(&sam);
    assert!(!sim.room.may_be_heard(&sam));
    sim.resume(&sam).unwrap();
    assert!(sim.room.may_be_heard(&sam));
}

#[test]
fn one_speaker_mode_silences_all_but_the_floor_and_the_facilitators() {
    let mut sim = Sim::with_settings(no_mute_on_entry());
    let alex = sim.facilitator("Alex");
    let sam = sim.member("Sam");
    let kim = sim.member("Kim");
    for who in [&alex, &sam, &kim] {
        sim.ok(who, Command::SetSelfMute(false));
    }
    sim.clear();
    sim.ok(
        &alex,
        settings(SettingsPatch {
            one_speaker: Some(true),
            ..Default::default()
        }),
    );
    assert!(
        sim.room.may_be_heard(&alex),
        "facilitators are always heard"
    );
    assert!(!sim.room.may_be_heard(&sam));
    assert!(!sim.room.may_be_heard(&kim));
    let mut changed = sim.hearing.clone();
    changed.sort();
    assert_eq!(changed, vec![(sam.clone(), false), (kim.clone(), false)]);
    assert_eq!(
        hearing_msgs(sim.got(&sam)),
        vec![false],
        "Sam is told he is not heard"
    );
    assert!(hearing_msgs(sim.got(&alex)).is_empty());

    sim.clear();
    sim.ok(&alex, Command::GiveFloor(sam.clone()));
    assert!(sim.room.may_be_heard(&sam));
    assert!(!sim.room.may_be_heard(&kim));
    assert_eq!(sim.hearing, vec![(sam.clone(), true)]);

    sim.clear();
    sim.ok(&alex, Command::GiveFloor(kim.clone()));
    let mut changed = sim.hearing.clone();
    changed.sort();
    assert_eq!(changed, vec![(sam.clone(), false), (kim.clone(), true)]);

    sim.clear();
    sim.ok(&alex, Command::TakeFloor);
    assert_eq!(sim.hearing, vec![(kim.clone(), false)]);

    sim.clear();
    sim.ok(
        &alex,
        settings(SettingsPatch {
            one_speaker: Some(false),
            ..Default::default()
        }),
    );
    let mut changed = sim.hearing.clone();
    changed.sort();
    assert_eq!(changed, vec![(sam.clone(), true), (kim.clone(), true)]);
}

#[test]
fn the_floor_holder_in_one_speaker_mode_still_needs_to_be_unmuted() {
    let mut sim = Sim::with_settings(Settings {
        one_speaker: true,
        ..Settings::default()
    });
    let alex = sim.facilitator("Alex");
    let sam = sim.member("Sam");
    sim.ok(&alex, Command::GiveFloor(sam.clone()));
    assert!(!sim.room.may_be_heard(&sam), "self-muted");
    sim.ok(&sam, Command::SetSelfMute(false));
    assert!(sim.room.may_be_heard(&sam));
    // The floor returned by auto end or by hand: silent again, and told so.
    sim.clear();
    sim.ok(&alex, Command::TakeFloor);
    assert!(!sim.room.may_be_heard(&sam));
    assert_eq!(hearing_msgs(sim.got(&sam)), vec![false]);
}

#[test]
fn hearing_is_sent_only_when_it_changes() {
    let mut sim = Sim::with_settings(no_mute_on_entry());
    let alex = sim.facilitator("Alex");
    let sam = sim.member("Sam");
    assert!(sim.hearing.is_empty(), "joining muted is no change");
    sim.ok(&sam, Command::SetSelfMute(false));
    sim.ok(&sam, Command::RaiseHand);
    sim.ok(&sam, chat("hi"));
    sim.ok(&alex, Command::GiveFloor(sam.clone()));
    sim.ok(&alex, Command::TakeFloor);
    sim.ok(
        &alex,
        settings(SettingsPatch {
            locked: Some(true),
            ..Default::default()
        }),
    );
    sim.ok(&alex, Command::AllowSpeak(sam.clone()));
    assert_eq!(sim.hearing, vec![(sam.clone(), true)]);
    sim.ok(&alex, Command::Mute(sam.clone()));
    sim.ok(&alex, Command::MuteAll);
    sim.ok(&sam, Command::SetSelfMute(true));
    assert_eq!(sim.hearing, vec![(sam.clone(), true), (sam.clone(), false)]);
    // The messages to Sam match the relay's feed.
    let msgs: Vec<bool> = sim
        .take(&sam)
        .iter()
        .filter_map(|m| match m {
            ServerMsg::Hearing { may_be_heard } => Some(*may_be_heard),
            _ => None,
        })
        .collect();
    assert_eq!(msgs, vec![true, false]);
}

#[test]
fn someone_heard_who_leaves_is_taken_off_the_relay() {
    let mut sim = Sim::with_settings(no_mute_on_entry());
    let alex = sim.facilitator("Alex");
    let sam = sim.member("Sam");
    let kim = sim.member("Kim");
    sim.ok(&sam, Command::SetSelfMute(false));
    sim.ok(&kim, Command::SetSelfMute(false));
    sim.clear();
    sim.ok(&sam, Command::Leave);
    assert_eq!(sim.hearing, vec![(sam.clone(), false)]);
    sim.clear();
    sim.ok(&alex, Command::Remove(kim.clone()));
    assert_eq!(sim.hearing, vec![(kim.clone(), false)]);
}
