//! Facilitator powers and their limits: every facilitator-only command refused to members, remove,
//! ban, promote, demote, settings, and ending the meeting.

mod support;

use circle_protocol::{LeaveReason, Role, ServerMsg, Settings, SettingsPatch};
use circle_room::{Command, Output, RoomError};
use support::*;

#[test]
fn members_cannot_use_facilitator_commands_and_nothing_changes() {
    let mut sim = Sim::with_settings(Settings {
        share_secs: Some(180),
        ..Settings::default()
    });
    let alex = sim.facilitator("Alex");
    let jo = sim.facilitator("Jo");
    let sam = sim.member("Sam");
    let kim = sim.member("Kim");
    let robin = sim.waiting("Robin");
    sim.ok(&kim, chat("a message"));
    let message = chats(sim.got(&alex))[0].id;
    sim.ok(&sam, Command::RaiseHand);
    sim.ok(&kim, Command::RaiseHand);
    sim.ok(&alex, Command::GiveFloor(kim.clone()));
    sim.ok(&sam, Command::RaiseHand);
    sim.ok(&alex, Command::AllowSpeak(sam.clone()));
    sim.clear();

    let everyone = [&alex, &jo, &sam, &kim, &robin];
    let before: Vec<_> = everyone.iter().map(|p| sim.snapshot(p)).collect();
    let timer_before = sim.room.poll_timeout();

    let attempts = vec![
        Command::Admit(robin.clone()),
        Command::AdmitAll,
        Command::Deny(robin.clone()),
        Command::NextSpeaker,
        Command::GiveFloor(sam.clone()),
        Command::TakeFloor,
        Command::MoveHand {
            participant: sam.clone(),
            position: 0,
        },
        Command::LowerAllHands,
        Command::Mute(kim.clone()),
        Command::MuteAll,
        Command::AllowSpeak(kim.clone()),
        Command::AllowSpeak(sam.clone()),
        Command::Remove(kim.clone()),
        Command::Ban(kim.clone()),
        Command::Promote(sam.clone()),
        Command::Promote(kim.clone()),
        Command::Demote(alex.clone()),
        Command::DeleteChat(message),
        Command::SetChatAllowed {
            participant: kim.clone(),
            allowed: false,
        },
        Command::UpdateSettings(SettingsPatch {
            locked: Some(true),
            ..Default::default()
        }),
        Command::UpdateSettings(SettingsPatch {
            roster_privacy: Some(true),
            ..Default::default()
        }),
        Command::UpdateSettings(SettingsPatch::default()),
        Command::EndMeeting,
    ];
    for (member, other) in [(&sam, &kim), (&kim, &sam)] {
        let mut attempts = attempts.clone();
        attempts.push(Command::LowerHand(Some(other.clone())));
        for cmd in attempts {
            let label = format!("{cmd:?}");
            assert_eq!(
                sim.cmd(member, cmd),
                Err(RoomError::Forbidden),
                "{member}: {label}"
            );
            assert!(sim.log.is_empty(), "{member}: {label} sent {:?}", sim.log);
        }
    }
    let after: Vec<_> = everyone.iter().map(|p| sim.snapshot(p)).collect();
    assert_eq!(before, after, "nobody's view changed");
    assert_eq!(sim.room.poll_timeout(), timer_before);
    assert!(!sim.room.is_ended());
    assert_eq!(sim.room.len(), 5);
}

#[test]
fn removing_a_member_disconnects_them_but_the_link_still_works() {
    let mut sim = Sim::new();
    let alex = sim.facilitator("Alex");
    let sam = sim.member("Sam");
    let kim = sim.member("Kim");
    sim.ok(&sam, Command::RaiseHand);
    sim.clear();
    sim.ok(&alex, Command::Remove(sam.clone()));

    assert_eq!(sim.closed, vec![(sam.clone(), LeaveReason::Removed)]);
    assert_eq!(sim.room.role_of(&sam), None);
    assert!(
        sim.got(&sam).is_empty(),
        "the removed person is told by the close, not an event"
    );
    for who in [&alex, &kim] {
        let msgs = sim.got(who);
        assert!(
            msgs.iter().any(|m| is_left(m, &sam, LeaveReason::Removed)),
            "{who}: {msgs:?}"
        );
        assert!(
            last_floor(msgs).queue.is_empty(),
            "{who}: their hand is gone"
        );
    }
    assert!(!roster(&sim.snapshot(&kim)).contains(&sam));
    assert_eq!(sim.resume(&sam), Err(RoomError::SessionGone));
    assert_eq!(
        sim.cmd(&sam, chat("still here?")),
        Err(RoomError::SessionGone)
    );

    // Remove is not a ban: they may come back by the link (through the waiting room).
    let again = sim.join("Sam").expect("a removed member may join again");
    assert!(sim.room.is_waiting(&again));
}

#[test]
fn a_waiting_member_can_be_removed_too() {
    let mut sim = Sim::new();
    let alex = sim.facilitator("Alex");
    let robin = sim.waiting("Robin");
    sim.clear();
    sim.ok(&alex, Command::Remove(robin.clone()));
    assert_eq!(sim.closed, vec![(robin.clone(), LeaveReason::Removed)]);
    assert!(
        sim.got(&alex)
            .iter()
            .any(|m| is_left(m, &robin, LeaveReason::Removed))
    );
}

#[test]
fn banning_outlives_reconnects_and_new_joins_from_the_device() {
    let mut sim = Sim::new();
    let alex = sim.facilitator("Alex");
    let kim = sim.member("Kim");
    let (troll, _) = sim.try_join("Troll", false, Some("device-x")).unwrap();
    sim.ok(&alex, Command::Admit(troll.clone()));
    sim.clear();
    sim.ok(&alex, Command::Ban(troll.clone()));

    assert_eq!(sim.closed, vec![(troll.clone(), LeaveReason::Banned)]);
    assert_eq!(sim.room.role_of(&troll), None);
    for who in [&alex, &kim] {
        assert!(
            sim.got(who)
                .iter()
                .any(|m| is_left(m, &troll, LeaveReason::Banned)),
            "{who}: {:?}",
            sim.got(who)
        );
    }
    assert_eq!(sim.resume(&troll), Err(RoomError::Banned));
    assert_eq!(
        sim.try_join("Troll", false, Some("device-x")).map(|_| ()),
        Err(RoomError::Banned)
    );
    assert_eq!(
        sim.try_join("Friendly", false, Some("device-x"))
            .map(|_| ()),
        Err(RoomError::Banned)
    );
    // The name itself is free again: bans are by session and device, not by name.
    assert!(sim.try_join("Troll", false, Some("device-y")).is_ok());
}

#[test]
fn facilitators_cannot_be_removed_or_banned() {
    let mut sim = Sim::new();
    let alex = sim.facilitator("Alex");
    let jo = sim.facilitator("Jo");
    sim.clear();
    assert!(matches!(
        sim.cmd(&alex, Command::Remove(jo.clone())),
        Err(RoomError::BadTarget(_))
    ));
    assert!(matches!(
        sim.cmd(&alex, Command::Ban(jo.clone())),
        Err(RoomError::BadTarget(_))
    ));
    assert!(matches!(
        sim.cmd(&alex, Command::Remove(alex.clone())),
        Err(RoomError::BadTarget(_))
    ));
    assert!(sim.log.is_empty());
    assert_eq!(
        sim.cmd(&alex, Command::Remove("nobody".into())),
        Err(RoomError::UnknownParticipant)
    );
    assert_eq!(
        sim.cmd(&alex, Command::Ban("nobody".into())),
        Err(RoomError::UnknownParticipant)
    );
}

#[test]
fn promoting_a_member_makes_a_co_facilitator() {
    let mut sim = Sim::new();
    let alex = sim.facilitator("Alex");
    let sam = sim.member("Sam");
    let kim = sim.member("Kim");
    let robin = sim.waiting("Robin");
    sim.ok(
        &alex,
        Command::SetChatAllowed {
            participant: sam.clone(),
            allowed: false,
        },
    );
    assert!(sim.view(&sam).muted_by_facilitator);
    sim.clear();

    sim.ok(&alex, Command::Promote(sam.clone()));
    assert_eq!(sim.room.role_of(&sam), Some(Role::Facilitator));
    let sams_room = sim
        .got(&sam)
        .iter()
        .find_map(|m| match m {
            ServerMsg::RoomState { room } => Some(room.clone()),
            _ => None,
        })
        .expect("Sam's view is rebuilt");
    assert!(
        roster(&sams_room).contains(&robin),
        "a facilitator sees the waiting room"
    );
    let me = sams_room.participants.iter().find(|p| p.id == sam).unwrap();
    assert_eq!(me.role, Role::Facilitator);
    assert!(
        !me.muted_by_facilitator && me.chat_allowed,
        "restrictions are lifted"
    );
    assert!(
        sim.got(&kim)
            .iter()
            .any(|m| matches!(m, ServerMsg::RoomState { room }
        if room.participants.iter().any(|p| p.id == sam && p.role == Role::Facilitator)))
    );
    assert!(sim.got(&robin).is_empty(), "the waiting room is not told");
    assert!(sim.got(&kim).iter().any(|m| matches!(m, ServerMsg::Counts { counts } if counts.facilitators == 2 && counts.members == 1)));

    // The new co-facilitator can do the job.
    sim.ok(&sam, Command::Admit(robin.clone()));
    assert!(!sim.room.is_waiting(&robin));
    sim.ok(&sam, Command::Mute(kim.clone()));

    // Promoting a facilitator, or someone waiting, is refused.
    assert!(matches!(
        sim.cmd(&alex, Command::Promote(sam.clone())),
        Err(RoomError::BadTarget(_))
    ));
    let lee = sim.waiting("Lee");
    assert_eq!(
        sim.cmd(&alex, Command::Promote(lee)),
        Err(RoomError::UnknownParticipant)
    );
}

#[test]
fn demoting_a_co_facilitator_and_not_oneself() {
    let mut sim = Sim::new();
    let alex = sim.facilitator("Alex");
    let jo = sim.facilitator("Jo");
    let sam = sim.member("Sam");
    let robin = sim.waiting("Robin");
    sim.clear();

    assert!(matches!(
        sim.cmd(&alex, Command::Demote(alex.clone())),
        Err(RoomError::BadTarget(_))
    ));
    assert!(matches!(
        sim.cmd(&alex, Command::Demote(sam.clone())),
        Err(RoomError::BadTarget(_))
    ));
    assert_eq!(
        sim.cmd(&alex, Command::Demote("nobody".into())),
        Err(RoomError::UnknownParticipant)
    );
    assert!(sim.log.is_empty());

    sim.ok(&alex, Command::Demote(jo.clone()));
    assert_eq!(sim.room.role_of(&jo), Some(Role::Member));
    let jos_room = sim
        .got(&jo)
        .iter()
        .find_map(|m| match m {
            ServerMsg::RoomState { room } => Some(room.clone()),
            _ => None,
        })
        .expect("Jo's view is rebuilt");
    assert!(
        !roster(&jos_room).contains(&robin),
        "members do not see the waiting room"
    );
    assert_eq!(
        sim.cmd(&jo, Command::Admit(robin.clone())),
        Err(RoomError::Forbidden)
    );
    // Demoted, Jo can now be muted and removed like any member.
    sim.ok(&alex, Command::Mute(jo.clone()));
    sim.ok(&alex, Command::Remove(jo.clone()));
}

#[test]
fn settings_changes_reach_everyone_and_only_when_something_changed() {
    let mut sim = Sim::new();
    let alex = sim.facilitator("Alex");
    let sam = sim.member("Sam");
    let robin = sim.waiting("Robin");
    sim.clear();
    sim.ok(
        &alex,
        settings(SettingsPatch {
            locked: Some(true),
            one_speaker: Some(true),
            ..Default::default()
        }),
    );
    let expected = Settings {
        locked: true,
        one_speaker: true,
        ..Settings::default()
    };
    assert_eq!(sim.room.settings(), &expected);
    for who in [&alex, &sam, &robin] {
        assert_eq!(
            sim.got(who),
            &[ServerMsg::Settings {
                settings: expected.clone()
            }],
            "{who}"
        );
    }
    sim.clear();
    sim.ok(
        &alex,
        settings(SettingsPatch {
            locked: Some(true),
            ..Default::default()
        }),
    );
    sim.ok(&alex, settings(SettingsPatch::default()));
    assert!(sim.log.is_empty());
}

#[test]
fn ending_the_meeting_tells_everyone_and_forgets_the_room() {
    let mut sim = Sim::with_settings(Settings {
        mute_on_entry: false,
        ..Settings::default()
    });
    let alex = sim.facilitator("Alex");
    let sam = sim.member("Sam");
    let kim = sim.member("Kim");
    let robin = sim.waiting("Robin");
    let lee = sim.member("Lee");
    sim.disconnect(&lee);
    sim.ok(&sam, Command::SetSelfMute(false));
    sim.ok(&kim, chat("bye all"));
    sim.ok(&kim, Command::RaiseHand);
    sim.clear();

    sim.ok(&alex, Command::EndMeeting);
    for who in [&alex, &sam, &kim, &robin] {
        assert_eq!(
            sim.got(who),
            &[ServerMsg::MeetingEnded],
            "{who}, the waiting room too"
        );
    }
    let mut closed = sim.closed.clone();
    closed.sort_by(|x, y| x.0.cmp(&y.0));
    let mut expected: Vec<_> = [&alex, &sam, &kim, &robin, &lee]
        .into_iter()
        .map(|p| (p.clone(), LeaveReason::MeetingEnded))
        .collect();
    expected.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        closed, expected,
        "every connection is closed, dropped ones included"
    );
    assert_eq!(
        sim.hearing,
        vec![(sam.clone(), false)],
        "the relay stops forwarding"
    );
    assert!(sim.ended);
    assert!(
        matches!(sim.log.last().map(|d| &d.output), Some(Output::Ended)),
        "ended comes last"
    );
    assert!(sim.room.is_ended());

    // The room refuses everything from now on, and nothing more comes out of it.
    sim.clear();
    assert_eq!(sim.join("Nina"), Err(RoomError::Ended));
    assert_eq!(
        sim.try_join("Jo", true, None).map(|_| ()),
        Err(RoomError::Ended)
    );
    assert_eq!(sim.resume(&lee), Err(RoomError::Ended));
    assert_eq!(sim.cmd(&alex, chat("hello?")), Err(RoomError::Ended));
    assert_eq!(sim.cmd(&alex, Command::EndMeeting), Err(RoomError::Ended));
    sim.disconnect(&sam);
    sim.room.end();
    sim.pump();
    assert_eq!(
        sim.room.poll_timeout(),
        None,
        "no timer outlives the meeting"
    );
    sim.run_until(sim.now + 3_600_000);
    assert!(sim.log.is_empty(), "{:?}", sim.log);
    for who in [&alex, &sam] {
        let snap = sim.snapshot(who);
        assert!(
            snap.chat.is_empty() && snap.floor.queue.is_empty(),
            "nothing about it is kept"
        );
    }
}
