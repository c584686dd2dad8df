//! A meeting survives its node, as its members notice it: the meeting rebuilt on another node from
//! its state (`Room::state`, through JSON, `Room::from_state`) gives everyone who resumes the same
//! place: muted as they were, hands in the same order, the same floor and share timer, the waiting
//! room still waiting, bans still holding; who does not come back leaves after the grace period.
//! `state.rs` holds the property test and the refusals.

mod support;

use circle_protocol::{
    LeaveReason, MessageId, Millis, ParticipantId, Role, ServerMsg, Settings, SettingsPatch,
};
use circle_room::{Command, MESSAGE_ID_BLOCK, Output, Room, RoomError, RoomLimits};
use support::*;

/// The grace period in these tests.
const GRACE: Millis = 20_000;

fn limits() -> RoomLimits {
    RoomLimits {
        max_participants: 12,
        chat_history: 5,
        grace_ms: GRACE,
    }
}

/// An open room where members may unmute themselves.
fn open_and_unmuted() -> Settings {
    Settings {
        mute_on_entry: false,
        ..open_room()
    }
}

/// The meeting rebuilt on "another node" at the same time, from its state as JSON.
fn rebuild(sim: &Sim) -> Sim {
    sim.rebuilt(limits())
}

/// Everyone comes back on the rebuilt node, in this order.
fn resume_all(sim: &mut Sim, who: &[&ParticipantId]) {
    for id in who {
        sim.resume(id).expect("resumes with the same session");
    }
}

#[test]
fn a_member_muted_by_a_facilitator_is_still_muted_after_the_rebuild() {
    let mut sim = Sim::with(open_and_unmuted(), limits());
    let host = sim.facilitator("Host");
    let ann = sim.member("Ann");
    sim.ok(&ann, Command::SetSelfMute(false));
    assert!(sim.room.may_be_heard(&ann));
    sim.ok(&host, Command::Mute(ann.clone()));

    let mut new = rebuild(&sim);
    resume_all(&mut new, &[&host, &ann]);
    let view = new.view(&ann);
    assert!(view.muted_by_facilitator && view.self_muted);
    assert_eq!(
        new.cmd(&ann, Command::SetSelfMute(false)),
        Err(RoomError::MutedByFacilitator),
        "she still cannot unmute herself"
    );
    assert!(!new.room.may_be_heard(&ann));
    // "Allow to speak" works there as it did here.
    new.ok(&host, Command::AllowSpeak(ann.clone()));
    new.ok(&ann, Command::SetSelfMute(false));
    assert!(new.room.may_be_heard(&ann));
}

#[test]
fn raised_hands_come_back_in_the_same_order() {
    let mut sim = Sim::with(open_and_unmuted(), limits());
    let host = sim.facilitator("Host");
    let ann = sim.member("Ann");
    let ben = sim.member("Ben");
    let cas = sim.member("Cas");
    sim.ok(&ann, Command::RaiseHand);
    sim.advance(1_000);
    // Ben and Cas in the same millisecond; then the facilitator puts Cas first.
    sim.ok(&ben, Command::RaiseHand);
    sim.ok(&cas, Command::RaiseHand);
    sim.ok(
        &host,
        Command::MoveHand {
            participant: cas.clone(),
            position: 0,
        },
    );
    let before = sim.snapshot(&host).floor;

    let mut new = rebuild(&sim);
    resume_all(&mut new, &[&host, &ann, &ben, &cas]);
    let after = new.snapshot(&host).floor;
    assert_eq!(
        queue_ids(&after),
        vec![Some(cas.clone()), Some(ann.clone()), Some(ben.clone())]
    );
    assert_eq!(after, before, "the same order, with the same raise times");
    new.ok(&host, Command::NextSpeaker);
    assert_eq!(new.room.speaker(), Some(&cas));
}

#[test]
fn the_floor_holder_keeps_the_floor_and_the_share_timer_ends_at_the_same_time() {
    let settings = Settings {
        share_secs: Some(60),
        share_warning_secs: 10,
        one_speaker: true,
        ..open_and_unmuted()
    };
    let mut sim = Sim::with(settings, limits());
    let host = sim.facilitator("Host");
    let ann = sim.member("Ann");
    let ben = sim.member("Ben");
    sim.ok(&ann, Command::SetSelfMute(false));
    sim.ok(&ben, Command::SetSelfMute(false));
    let given = sim.now;
    sim.ok(&host, Command::GiveFloor(ann.clone()));
    sim.advance(20_000);

    let mut new = rebuild(&sim);
    resume_all(&mut new, &[&host, &ann, &ben]);
    assert_eq!(new.room.speaker(), Some(&ann));
    let speaker = new
        .snapshot(&ben)
        .floor
        .speaker
        .expect("Ann holds the floor");
    assert_eq!(
        (speaker.since, speaker.ends_at),
        (given, Some(given + 60_000))
    );
    assert!(
        new.room.may_be_heard(&ann),
        "one-speaker mode: the floor holder is heard"
    );
    assert!(!new.room.may_be_heard(&ben), "and the others are not");

    new.clear();
    assert_eq!(
        new.fire_next_timer(),
        given + 50_000,
        "the warning, on time"
    );
    assert!(new.got(&ben).contains(&ServerMsg::ShareWarning {
        participant: ann.clone(),
        remaining_secs: 10,
    }));
    assert_eq!(new.fire_next_timer(), given + 60_000, "the end, on time");
    assert!(new.got(&ben).contains(&ServerMsg::ShareExpired {
        participant: ann.clone(),
    }));
}

#[test]
fn a_banned_member_is_still_refused_after_the_rebuild() {
    let mut sim = Sim::with(open_room(), limits());
    let host = sim.facilitator("Host");
    let ann = sim.member("Ann");
    sim.ok(&host, Command::Ban(ann.clone()));

    let mut new = rebuild(&sim);
    new.resume(&host).expect("the host resumes");
    assert_eq!(
        new.try_join("Annie", false, Some("device-Ann")).map(|_| ()),
        Err(RoomError::Banned),
        "her device is still banned, under any name"
    );
    assert_eq!(new.resume(&ann), Err(RoomError::Banned), "and her session");
    assert!(new.join("Bea").is_ok(), "others still come in");
}

#[test]
fn someone_in_the_waiting_room_is_still_waiting_after_the_rebuild() {
    let mut sim = Sim::with(Settings::default(), limits());
    let host = sim.facilitator("Host");
    let early = sim.waiting("Early");
    sim.advance(1_000);
    let ann = sim.waiting("Ann");

    let mut new = rebuild(&sim);
    resume_all(&mut new, &[&host, &ann, &early]);
    let joined = new.resume(&ann).expect("resumes again");
    assert!(joined.waiting, "Ann is told she is still waiting");
    assert!(new.room.is_waiting(&ann) && new.room.is_waiting(&early));
    assert_eq!(new.cmd(&ann, chat("hi")), Err(RoomError::Waiting));
    // The waiting room keeps its arrival order: "admit all" lets Early in first.
    new.clear();
    new.ok(&host, Command::AdmitAll);
    let admitted: Vec<ParticipantId> = new
        .log
        .iter()
        .filter_map(|d| match &d.output {
            Output::Send {
                msg: ServerMsg::Admitted { .. },
                recipients,
                ..
            } => recipients.first().cloned(),
            _ => None,
        })
        .collect();
    assert_eq!(admitted, vec![early, ann]);
}

#[test]
fn a_participant_who_never_resumes_leaves_after_the_grace_period() {
    let mut sim = Sim::with(open_room(), limits());
    let host = sim.facilitator("Host");
    let ann = sim.member("Ann");
    let taken_at = sim.now;

    let mut new = rebuild(&sim);
    new.resume(&host).expect("the host resumes");
    new.run_until(taken_at + GRACE - 1);
    assert_eq!(
        new.view(&ann).presence,
        circle_protocol::Presence::Reconnecting,
        "Ann keeps her place for the grace period"
    );
    new.clear();
    new.run_until(taken_at + GRACE);
    assert_eq!(new.room.role_of(&ann), None, "then she has left");
    assert!(
        new.got(&host)
            .iter()
            .any(|m| is_left(m, &ann, LeaveReason::TimedOut)),
        "as after any dropped connection"
    );
}

#[test]
fn a_connection_already_down_keeps_its_deadline() {
    let mut sim = Sim::with(open_room(), limits());
    let host = sim.facilitator("Host");
    let ann = sim.member("Ann");
    let dropped_at = sim.now;
    sim.disconnect(&ann);
    sim.advance(15_000);

    let mut new = rebuild(&sim);
    new.resume(&host).expect("the host resumes");
    new.run_until(dropped_at + GRACE);
    assert_eq!(
        new.room.role_of(&ann),
        None,
        "her grace period ran from her drop, not from the rebuild"
    );
}

#[test]
fn the_relay_hears_nobody_until_they_resume() {
    let mut sim = Sim::with(open_and_unmuted(), limits());
    let host = sim.facilitator("Host");
    let ann = sim.member("Ann");
    sim.ok(&ann, Command::SetSelfMute(false));

    let state = through_json(&sim.room.state());
    let mut room = Room::from_state(state, limits(), sim.now).expect("rebuilds");
    let mut first = Vec::new();
    while let Some(o) = room.poll_output() {
        first.push(o);
    }
    let mut everyone = vec![host.clone(), ann.clone()];
    everyone.sort();
    let told: Vec<Output> = everyone
        .into_iter()
        .map(|who| Output::Hearing {
            who,
            may_be_heard: false,
        })
        .collect();
    assert_eq!(
        first, told,
        "the relay learns everyone, heard by nobody yet"
    );

    let mut new = Sim::continuing(&sim, room);
    new.resume(&ann).expect("resumes");
    assert_eq!(
        new.hearing,
        vec![(ann.clone(), true)],
        "her microphone was on: she is heard again as soon as she is back"
    );
}

#[test]
fn chat_is_not_carried_and_its_ids_never_repeat() {
    let mut sim = Sim::with(open_room(), limits());
    let host = sim.facilitator("Host");
    let ann = sim.member("Ann");
    sim.ok(&ann, chat("something only this node heard"));
    let stale = sim.room.state();
    // Chat does not move the generation: the driver wrote nothing after these.
    let generation = sim.room.state_generation();
    sim.ok(&ann, chat("and more"));
    sim.ok(&host, chat("and more still"));
    assert_eq!(sim.room.state_generation(), generation);
    let seen: Vec<MessageId> = chats(sim.got(&ann)).iter().map(|m| m.id).collect();

    let json = serde_json::to_string(&stale).expect("serialises");
    assert!(
        !json.contains("something only this node heard"),
        "what was said is not in the state"
    );
    let room = Room::from_state(through_json(&stale), limits(), sim.now).expect("rebuilds");
    let mut new = Sim::continuing(&sim, room);
    resume_all(&mut new, &[&host, &ann]);
    assert!(
        new.snapshot(&ann).chat.is_empty(),
        "no history on the new node"
    );
    new.clear();
    new.ok(&ann, chat("hello again"));
    let id = chats(new.got(&host))[0].id;
    assert!(
        seen.iter().all(|old| id > *old),
        "new id {id} after {seen:?}"
    );
    assert_eq!(id % MESSAGE_ID_BLOCK, 0, "the next block");
}

#[test]
fn a_new_stream_id_reaches_those_who_see_them() {
    let mut sim = Sim::with(open_room(), limits());
    let host = sim.facilitator("Host");
    let ann = sim.member("Ann");
    let mut new = rebuild(&sim);
    resume_all(&mut new, &[&host, &ann]);
    assert_eq!(
        new.view(&ann).stream,
        None,
        "old stream ids are not carried"
    );
    new.clear();
    new.room.set_stream(&ann, Some("circle-7".into()));
    new.pump();
    let told = updates_about(new.got(&host), &ann);
    assert_eq!(
        told.last().and_then(|v| v.stream.clone()).as_deref(),
        Some("circle-7")
    );
}

#[test]
fn settings_changed_before_the_rebuild_hold_after_it() {
    // A direct case the property covers too, kept as a readable example.
    let mut sim = Sim::with(open_room(), limits());
    let host = sim.facilitator("Host");
    sim.ok(
        &host,
        settings(SettingsPatch {
            locked: Some(true),
            roster_privacy: Some(true),
            ..SettingsPatch::default()
        }),
    );
    let mut new = rebuild(&sim);
    new.resume(&host).expect("resumes");
    assert!(new.room.settings().locked && new.room.settings().roster_privacy);
    assert_eq!(new.join("Late").map(|_| ()), Err(RoomError::Locked));
    assert_eq!(new.room.role_of(&host), Some(Role::Facilitator));
}

#[test]
fn hands_carried_over_a_graceful_restart_keep_their_places_across_a_rebuild() {
    // Before a graceful restart: Ann, Ben and Cas raised their hands in that order.
    let mut before = Sim::with(open_room(), limits());
    before.room.set_standing(None);
    let _host = before.facilitator("Host");
    let hands: Vec<ParticipantId> = ["Ann", "Ben", "Cas"]
        .into_iter()
        .map(|n| before.member(n))
        .collect();
    for id in &hands {
        before.ok(id, Command::RaiseHand);
    }
    let carries: Vec<_> = hands
        .iter()
        .map(|id| before.room.carry_over(id).expect("here"))
        .collect();

    // The next meeting: Ann and Cas are back with their carry-overs, Ben not yet. Then its node dies.
    let mut sim = Sim::with(open_room(), limits());
    sim.room.set_standing(None);
    let host = sim.facilitator("Host");
    let (ann, _) = sim.join_carried(&carries[0]).expect("carried join");
    let (cas, _) = sim.join_carried(&carries[2]).expect("carried join");
    let mut new = rebuild(&sim);
    resume_all(&mut new, &[&host, &ann, &cas]);

    // Ben arrives on the new node: his hand goes back between theirs, where it was.
    let (ben, _) = new.join_carried(&carries[1]).expect("carried join");
    assert_eq!(
        queue_ids(&new.snapshot(&host).floor),
        vec![Some(ann), Some(ben), Some(cas)]
    );
}
