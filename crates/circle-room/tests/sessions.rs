//! Joining, the waiting room's view, locks and limits, leaving, dropped connections, resume and the
//! grace period.

mod support;

use circle_protocol::{LeaveReason, Presence, Role, ServerMsg, Settings, SettingsPatch};
use circle_room::{Command, MAX_NAME_CHARS, Pseudonym, RoomError, RoomLimits};
use support::*;

#[test]
fn names_are_trimmed_and_between_1_and_32_characters() {
    assert_eq!(Pseudonym::parse("  Sam \t").unwrap().as_str(), "Sam");
    assert_eq!(Pseudonym::parse("Mary Ann").unwrap().as_str(), "Mary Ann");
    for empty in ["", " ", "\t\n ", "\u{00A0}"] {
        assert!(
            matches!(Pseudonym::parse(empty), Err(RoomError::InvalidName(_))),
            "{empty:?} should be refused"
        );
    }
    let longest = "é".repeat(MAX_NAME_CHARS);
    assert_eq!(Pseudonym::parse(&longest).unwrap().as_str(), longest);
    // Characters, not bytes: 32 two-byte characters pass, 33 one-byte ones do not.
    assert!(matches!(
        Pseudonym::parse(&"x".repeat(MAX_NAME_CHARS + 1)),
        Err(RoomError::InvalidName(_))
    ));
    // Padding does not count against the limit.
    let padded = format!("   {}   ", "y".repeat(MAX_NAME_CHARS));
    assert!(Pseudonym::parse(&padded).is_ok());
}

#[test]
fn names_with_control_or_invisible_characters_are_refused() {
    for bad in [
        "Sam\u{0007}",     // bell
        "Sa\nm",           // line break inside
        "Sa\tm",           // tab inside
        "Sam\u{001B}[31m", // terminal escape
        "Sa\u{200B}m",     // zero-width space
        "\u{200B}",        // a name of nothing visible
        "Sa\u{200D}m",     // zero-width joiner
        "\u{202E}maS",     // right-to-left override
        "Sa\u{2066}m",     // isolate
        "\u{FEFF}Sam",     // byte-order mark
        "Sa\u{00AD}m",     // soft hyphen
        "Sam\u{061C}",     // Arabic letter mark (a bidi control)
        "\u{180E}Sam",     // Mongolian vowel separator
        "Sa\u{034F}m",     // combining grapheme joiner
        "\u{3164}",        // Hangul filler: a blank-looking name
        "Sam\u{FFA0}",     // half-width Hangul filler
        "Sam\u{E0041}",    // tag character
    ] {
        assert!(
            matches!(Pseudonym::parse(bad), Err(RoomError::InvalidName(_))),
            "{bad:?} should be refused"
        );
    }
    // Ordinary letters from any script are fine.
    for good in [
        "Zoë",
        "Łukasz",
        "さくら",
        "Ana-María",
        "J.",
        "🌻 Sun",
        "\u{2764}\u{FE0F} Jo",
    ] {
        assert!(
            Pseudonym::parse(good).is_ok(),
            "{good:?} should be accepted"
        );
    }
}

#[test]
fn names_are_unique_in_the_room_ignoring_case() {
    let mut sim = Sim::new();
    sim.facilitator("Alex");
    sim.member("Sam");
    assert_eq!(sim.join("sam"), Err(RoomError::NameTaken));
    assert_eq!(sim.join("  SAM "), Err(RoomError::NameTaken));
    assert_eq!(
        sim.join("alex"),
        Err(RoomError::NameTaken),
        "facilitators' names too"
    );
    // A facilitator link does not get around it either.
    assert_eq!(
        sim.try_join("SAM", true, None).map(|_| ()),
        Err(RoomError::NameTaken)
    );
    // Someone still in the waiting room holds their name.
    sim.waiting("Robin");
    assert_eq!(sim.join("ROBIN"), Err(RoomError::NameTaken));
    // A refused join leaves no trace.
    assert_eq!(sim.room.len(), 3);
}

#[test]
fn names_that_differ_only_in_spacing_clash() {
    let mut sim = Sim::new();
    sim.facilitator("Alex");
    sim.member("Sam Lee");
    // Each looks like "Sam Lee" on screen.
    for lookalike in ["sam  lee", "Sam\u{00A0}Lee", "SAM\u{3000}LEE"] {
        assert_eq!(
            sim.join(lookalike),
            Err(RoomError::NameTaken),
            "{lookalike:?}"
        );
    }
    // The name is shown as typed (trimmed), not folded.
    let jo = sim.member("Jo  Ann");
    assert_eq!(sim.view(&jo).name, "Jo  Ann");
    assert!(
        sim.join("SamLee").is_ok(),
        "removing the space makes another name"
    );
}

#[test]
fn a_name_is_free_again_once_its_holder_leaves() {
    let mut sim = Sim::new();
    sim.facilitator("Alex");
    let sam = sim.member("Sam");
    sim.ok(&sam, Command::Leave);
    let again = sim.join("sam").expect("the name is free");
    assert_ne!(again, sam);
}

#[test]
fn a_facilitator_joins_straight_into_the_room() {
    let mut sim = Sim::new();
    let alex = sim.facilitator("Alex");
    let (waiting, room) = joined_snapshot(&sim.take(&alex));
    assert!(!waiting);
    assert_eq!(room.title, "Tuesday evening");
    assert_eq!(roster(&room), vec![alex.clone()]);
    let me = &room.participants[0];
    assert_eq!(me.name, "Alex");
    assert_eq!(me.role, Role::Facilitator);
    assert_eq!(me.presence, Presence::Online);
    assert!(me.self_muted, "everyone joins with their microphone off");
    assert!(!me.muted_by_facilitator, "mute on entry is for members");
    let counts = room.counts.expect("an admitted participant sees counts");
    assert_eq!(
        (counts.members, counts.facilitators, counts.waiting),
        (0, 1, 0)
    );
}

#[test]
fn a_member_waits_and_sees_only_the_title_and_themselves() {
    let mut sim = Sim::new();
    let alex = sim.facilitator("Alex");
    let sam = sim.member("Sam");
    sim.ok(&sam, chat("hello everyone"));
    sim.ok(&sam, Command::RaiseHand);
    sim.ok(&alex, Command::GiveFloor(sam.clone()));
    sim.ok(&alex, Command::RaiseHand);
    sim.clear();

    let robin = sim.waiting("Robin");
    let (waiting, room) = joined_snapshot(&sim.take(&robin));
    assert!(waiting);
    assert_eq!(room.title, "Tuesday evening");
    assert_eq!(roster(&room), vec![robin.clone()]);
    assert_eq!(room.participants[0].presence, Presence::Waiting);
    assert_eq!(room.participants[0].name, "Robin");
    assert_eq!(room.counts, None, "no head counts from the waiting room");
    assert!(room.chat.is_empty(), "no chat from the waiting room");
    assert_eq!(room.floor.speaker, None, "no floor from the waiting room");
    assert!(room.floor.queue.is_empty());
    assert!(
        sim.take(&robin).is_empty(),
        "nothing else arrives while waiting"
    );

    // The facilitator sees them arrive in the waiting room; the member only sees the count move.
    let seen = sim.take(&alex);
    assert!(seen.iter().any(|m| matches!(m,
        ServerMsg::ParticipantJoined { participant } if participant.id == robin && participant.presence == Presence::Waiting)));
    let to_sam = sim.take(&sam);
    assert!(
        !to_sam
            .iter()
            .any(|m| matches!(m, ServerMsg::ParticipantJoined { .. })),
        "members do not see the waiting room: {to_sam:?}"
    );
    assert!(
        to_sam
            .iter()
            .any(|m| matches!(m, ServerMsg::Counts { counts } if counts.waiting == 1))
    );
}

#[test]
fn without_a_waiting_room_members_come_straight_in() {
    let mut sim = Sim::with_settings(open_room());
    let alex = sim.facilitator("Alex");
    let sam = sim.join("Sam").unwrap();
    assert!(!sim.room.is_waiting(&sam));
    let (waiting, room) = joined_snapshot(&sim.take(&sam));
    assert!(!waiting);
    assert_eq!(roster(&room), vec![alex.clone(), sam.clone()]);
    assert!(room.counts.is_some());
    let seen = sim.take(&alex);
    assert!(seen.iter().any(|m| matches!(m,
        ServerMsg::ParticipantJoined { participant } if participant.id == sam && participant.presence == Presence::Online)));
    assert!(
        seen.iter()
            .any(|m| matches!(m, ServerMsg::Counts { counts } if counts.members == 1))
    );
}

#[test]
fn a_locked_room_refuses_members_but_not_facilitators() {
    let mut sim = Sim::new();
    let alex = sim.facilitator("Alex");
    sim.ok(
        &alex,
        settings(SettingsPatch {
            locked: Some(true),
            ..Default::default()
        }),
    );
    assert!(sim.room.settings().locked);
    assert_eq!(sim.join("Sam"), Err(RoomError::Locked));
    assert_eq!(sim.room.len(), 1, "a refused join leaves no trace");
    let (_, joined) = sim
        .try_join("Jo", true, None)
        .expect("a co-facilitator still gets in");
    assert_eq!(joined.role, Role::Facilitator);
    sim.ok(
        &alex,
        settings(SettingsPatch {
            locked: Some(false),
            ..Default::default()
        }),
    );
    sim.waiting("Sam");
}

#[test]
fn a_full_room_refuses_joins_and_the_waiting_room_counts() {
    let limits = RoomLimits {
        max_participants: 3,
        ..RoomLimits::default()
    };
    let mut sim = Sim::with(Settings::default(), limits);
    let alex = sim.facilitator("Alex");
    sim.member("Sam");
    let robin = sim.waiting("Robin");
    assert_eq!(sim.join("Kim"), Err(RoomError::Full));
    assert!(
        sim.try_join("Jo", true, None).is_ok(),
        "a facilitator can always reach their own meeting"
    );
    // A place frees up when someone is turned away (Jo made it four).
    sim.ok(&alex, Command::Deny(robin));
    assert_eq!(sim.join("Kim"), Err(RoomError::Full));
}

#[test]
fn a_banned_device_cannot_join_again_under_another_name() {
    let mut sim = Sim::new();
    let alex = sim.facilitator("Alex");
    let troll = sim.try_join("Troll", false, Some("device-1")).unwrap().0;
    sim.ok(&alex, Command::Ban(troll));
    assert_eq!(
        sim.try_join("Nice Person", false, Some("device-1"))
            .map(|_| ()),
        Err(RoomError::Banned)
    );
    // Another device is someone else.
    assert!(sim.try_join("Kim", false, Some("device-2")).is_ok());
    assert!(sim.try_join("Lee", false, None).is_ok());
}

#[test]
fn leaving_tells_everyone_who_could_see_you() {
    let mut sim = Sim::new();
    let alex = sim.facilitator("Alex");
    let sam = sim.member("Sam");
    let kim = sim.member("Kim");
    sim.clear();
    sim.ok(&sam, Command::Leave);
    assert_eq!(sim.closed, vec![(sam.clone(), LeaveReason::Left)]);
    assert_eq!(sim.room.role_of(&sam), None);
    for other in [&alex, &kim] {
        assert!(
            sim.got(other)
                .iter()
                .any(|m| is_left(m, &sam, LeaveReason::Left)),
            "{other} should see Sam leave"
        );
        assert!(
            sim.got(other)
                .iter()
                .any(|m| matches!(m, ServerMsg::Counts { counts } if counts.members == 1))
        );
    }
    assert!(
        sim.got(&sam).is_empty(),
        "the leaver's socket is closed, not messaged"
    );
    assert_eq!(
        sim.cmd(&sam, Command::RaiseHand),
        Err(RoomError::SessionGone)
    );
    assert_eq!(sim.resume(&sam), Err(RoomError::SessionGone));
}

#[test]
fn a_dropped_connection_shows_as_reconnecting_not_as_a_leave() {
    let mut sim = Sim::new();
    let alex = sim.facilitator("Alex");
    let sam = sim.member("Sam");
    let kim = sim.member("Kim");
    sim.clear();
    sim.disconnect(&sam);
    for other in [&alex, &kim] {
        let msgs = sim.take(other);
        let updates = updates_about(&msgs, &sam);
        assert_eq!(updates.len(), 1, "{other}: {msgs:?}");
        assert_eq!(updates[0].presence, Presence::Reconnecting);
        assert!(
            !msgs
                .iter()
                .any(|m| matches!(m, ServerMsg::ParticipantLeft { .. }))
        );
        assert!(
            !msgs.iter().any(|m| matches!(m, ServerMsg::Counts { .. })),
            "still counted"
        );
    }
    assert!(sim.closed.is_empty());
    assert_eq!(
        sim.room.poll_timeout(),
        Some(sim.now + RoomLimits::default().grace_ms)
    );
    // Nothing reaches a dropped connection.
    sim.ok(&alex, chat("are you there?"));
    assert!(sim.take(&sam).is_empty());
    // A second drop report for the same participant changes nothing.
    sim.advance(1_000);
    sim.clear();
    sim.disconnect(&sam);
    assert!(sim.log.iter().all(|d| !matches!(
        &d.output,
        circle_room::Output::Send {
            msg: ServerMsg::ParticipantUpdated { .. },
            ..
        }
    )));
    assert_eq!(
        sim.room.poll_timeout(),
        Some(T0 + RoomLimits::default().grace_ms)
    );
}

#[test]
fn resuming_within_the_grace_period_restores_the_same_place() {
    let mut sim = Sim::new();
    let alex = sim.facilitator("Alex");
    let sam = sim.member("Sam");
    let kim = sim.member("Kim");
    sim.ok(&alex, Command::AllowSpeak(sam.clone()));
    sim.ok(&sam, Command::SetSelfMute(false));
    sim.ok(&sam, Command::RaiseHand);
    sim.advance(500);
    sim.ok(&kim, Command::RaiseHand);
    let before = sim.view(&sam);
    assert!(sim.room.may_be_heard(&sam));

    sim.disconnect(&sam);
    assert!(
        !sim.room.may_be_heard(&sam),
        "a dropped connection is not heard"
    );
    sim.advance(RoomLimits::default().grace_ms - 1);
    sim.run_until(sim.now);
    assert!(sim.closed.is_empty(), "still inside the grace period");
    sim.clear();

    let joined = sim.resume(&sam).expect("resume within grace");
    assert_eq!(joined.role, Role::Member);
    assert!(!joined.waiting);
    let (waiting, room) = joined_snapshot(&sim.take(&sam));
    assert!(!waiting);
    let me = room.participants.iter().find(|p| p.id == sam).unwrap();
    assert_eq!(me, &before, "same name, role, hand and mute state");
    assert_eq!(
        queue_ids(&room.floor),
        vec![Some(sam.clone()), Some(kim.clone())],
        "same place in the queue"
    );
    assert!(sim.room.may_be_heard(&sam));
    assert_eq!(sim.hearing, vec![(sam.clone(), true)]);
    for other in [&alex, &kim] {
        let updates = updates_about(sim.got(other), &sam);
        assert_eq!(updates.last().map(|v| v.presence), Some(Presence::Online));
    }
    assert_eq!(sim.room.poll_timeout(), None, "the grace timer is gone");
}

#[test]
fn after_the_grace_period_the_participant_times_out() {
    let mut sim = Sim::new();
    let alex = sim.facilitator("Alex");
    let sam = sim.member("Sam");
    let kim = sim.member("Kim");
    sim.ok(&sam, Command::RaiseHand);
    sim.disconnect(&sam);
    let deadline = sim.now + RoomLimits::default().grace_ms;
    sim.clear();

    // Nothing happens a moment before the deadline, even if the driver wakes early.
    sim.room.handle_timeout(deadline - 1);
    sim.pump();
    assert!(sim.log.is_empty());

    assert_eq!(sim.fire_next_timer(), deadline);
    assert_eq!(sim.closed, vec![(sam.clone(), LeaveReason::TimedOut)]);
    assert_eq!(sim.room.role_of(&sam), None);
    for other in [&alex, &kim] {
        let msgs = sim.take(other);
        assert!(
            msgs.iter().any(|m| is_left(m, &sam, LeaveReason::TimedOut)),
            "{other} should be told Sam timed out: {msgs:?}"
        );
        assert!(
            last_floor(&msgs).queue.is_empty(),
            "their hand leaves the queue"
        );
        assert!(
            msgs.iter()
                .any(|m| matches!(m, ServerMsg::Counts { counts } if counts.members == 1))
        );
    }
    assert_eq!(sim.room.poll_timeout(), None);
    assert_eq!(sim.resume(&sam), Err(RoomError::SessionGone));
}

#[test]
fn each_dropped_connection_has_its_own_deadline() {
    let mut sim = Sim::new();
    sim.facilitator("Alex");
    let sam = sim.member("Sam");
    let kim = sim.member("Kim");
    let grace = RoomLimits::default().grace_ms;
    sim.disconnect(&sam);
    sim.advance(10_000);
    sim.disconnect(&kim);
    assert_eq!(sim.fire_next_timer(), T0 + grace);
    assert_eq!(sim.closed, vec![(sam.clone(), LeaveReason::TimedOut)]);
    assert_eq!(sim.room.poll_timeout(), Some(T0 + 10_000 + grace));
    sim.resume(&kim)
        .expect("Kim is still inside her grace period");
    assert_eq!(sim.room.poll_timeout(), None);
}

#[test]
fn a_banned_session_cannot_resume() {
    let mut sim = Sim::new();
    let alex = sim.facilitator("Alex");
    let sam = sim.member("Sam");
    sim.disconnect(&sam);
    sim.ok(&alex, Command::Ban(sam.clone()));
    assert_eq!(sim.resume(&sam), Err(RoomError::Banned));
}

#[test]
fn a_waiting_member_who_drops_is_still_waiting_on_resume() {
    let mut sim = Sim::new();
    let alex = sim.facilitator("Alex");
    let robin = sim.waiting("Robin");
    sim.disconnect(&robin);
    let joined = sim.resume(&robin).unwrap();
    assert!(joined.waiting);
    let (waiting, room) = joined_snapshot(&sim.take(&robin));
    assert!(waiting);
    assert_eq!(roster(&room), vec![robin.clone()]);
    assert_eq!(sim.view(&robin).presence, Presence::Waiting);
    sim.ok(&alex, Command::Admit(robin.clone()));
    assert!(
        sim.take(&robin)
            .iter()
            .any(|m| matches!(m, ServerMsg::Admitted { .. }))
    );
}

#[test]
fn a_waiting_member_who_never_comes_back_leaves_the_waiting_room() {
    let mut sim = Sim::new();
    let alex = sim.facilitator("Alex");
    let robin = sim.waiting("Robin");
    sim.disconnect(&robin);
    sim.clear();
    sim.fire_next_timer();
    assert_eq!(sim.closed, vec![(robin.clone(), LeaveReason::TimedOut)]);
    assert!(
        sim.got(&alex)
            .iter()
            .any(|m| is_left(m, &robin, LeaveReason::TimedOut))
    );
    assert!(
        sim.got(&alex)
            .iter()
            .any(|m| matches!(m, ServerMsg::Counts { counts } if counts.waiting == 0))
    );
}
