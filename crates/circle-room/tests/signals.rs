//! Silent signals: reactions shown next to a name (to those who see the sender, never the waiting
//! room, never kept), rate limited and off by a setting; connection levels told to facilitators only.

mod support;

use circle_protocol::{
    ConnectionLevel, ConnectionReport, ParticipantId, Reaction, ServerMsg, Settings, SettingsPatch,
};
use circle_room::{Command, REACTION_BURST, REACTION_INTERVAL_MS, RoomError};
use support::*;

fn is_reaction(m: &ServerMsg) -> bool {
    matches!(m, ServerMsg::Reaction { .. })
}

fn is_quality(m: &ServerMsg) -> bool {
    matches!(m, ServerMsg::ConnectionQuality { .. })
}

fn react(r: Reaction) -> Command {
    Command::React(r)
}

fn level(l: ConnectionLevel) -> Command {
    Command::ReportQuality(l)
}

#[test]
fn a_reaction_reaches_everyone_admitted_but_not_the_waiting_room() {
    let mut sim = Sim::new();
    let alex = sim.facilitator("Alex");
    let sam = sim.member("Sam");
    let kim = sim.member("Kim");
    let robin = sim.waiting("Robin");
    sim.clear();

    sim.ok(&sam, react(Reaction::Heart));

    let mut want = vec![alex.clone(), sam.clone(), kim.clone()];
    want.sort();
    assert_eq!(sim.who_got(is_reaction), want);
    assert!(sim.got(&robin).is_empty(), "the waiting room hears nothing");
    assert_eq!(
        sim.got(&kim),
        &[ServerMsg::Reaction {
            participant: sam.clone(),
            reaction: Reaction::Heart
        }]
    );
}

#[test]
fn a_waiting_person_cannot_react() {
    let mut sim = Sim::new();
    let _alex = sim.facilitator("Alex");
    let robin = sim.waiting("Robin");
    sim.clear();
    assert_eq!(
        sim.cmd(&robin, react(Reaction::Thanks)),
        Err(RoomError::Waiting)
    );
    assert!(sim.who_got(is_reaction).is_empty());
}

#[test]
fn under_roster_privacy_a_members_reaction_reaches_only_those_who_see_them() {
    let mut sim = Sim::with_settings(Settings {
        roster_privacy: true,
        ..Settings::default()
    });
    let alex = sim.facilitator("Alex");
    let sam = sim.member("Sam");
    let _kim = sim.member("Kim");
    sim.clear();
    sim.ok(&sam, react(Reaction::MeToo));
    let mut want = vec![alex, sam];
    want.sort();
    assert_eq!(sim.who_got(is_reaction), want, "Kim cannot see Sam");
}

#[test]
fn reactions_are_not_kept_for_late_joiners() {
    let mut sim = Sim::new();
    let _alex = sim.facilitator("Alex");
    let sam = sim.member("Sam");
    sim.ok(&sam, react(Reaction::Clap));
    sim.clear();
    let lee = sim.member("Lee");
    assert!(!sim.got(&lee).iter().any(is_reaction));
    let text = format!("{:?}", sim.snapshot(&lee));
    assert!(!text.contains("Clap"), "{text}");
}

#[test]
fn reactions_are_rate_limited_per_person() {
    let mut sim = Sim::new();
    let _alex = sim.facilitator("Alex");
    let sam = sim.member("Sam");
    let kim = sim.member("Kim");
    sim.clear();
    for _ in 0..REACTION_BURST {
        sim.ok(&sam, react(Reaction::Thanks));
    }
    assert_eq!(
        sim.cmd(&sam, react(Reaction::Thanks)),
        Err(RoomError::RateLimited)
    );
    // Another person's reactions are their own.
    sim.ok(&kim, react(Reaction::Heart));
    sim.advance(REACTION_INTERVAL_MS);
    sim.ok(&sam, react(Reaction::Thanks));
    assert_eq!(
        sim.cmd(&sam, react(Reaction::Thanks)),
        Err(RoomError::RateLimited)
    );
    let sams = sim
        .got(&kim)
        .iter()
        .filter(|m| matches!(m, ServerMsg::Reaction { participant, .. } if *participant == sam))
        .count();
    assert_eq!(
        sams as u64,
        REACTION_BURST + 1,
        "refused reactions go nowhere"
    );
}

#[test]
fn a_facilitator_turns_reactions_off_and_on() {
    let mut sim = Sim::new();
    let alex = sim.facilitator("Alex");
    let sam = sim.member("Sam");
    assert!(sim.snapshot(&sam).settings.reactions, "on by default");
    sim.clear();
    assert_eq!(
        sim.cmd(
            &sam,
            settings(SettingsPatch {
                reactions: Some(false),
                ..Default::default()
            })
        ),
        Err(RoomError::Forbidden)
    );
    sim.ok(
        &alex,
        settings(SettingsPatch {
            reactions: Some(false),
            ..Default::default()
        }),
    );
    assert!(
        sim.got(&sam)
            .iter()
            .any(|m| matches!(m, ServerMsg::Settings { settings } if !settings.reactions)),
        "everyone learns reactions are off"
    );
    sim.clear();
    assert_eq!(
        sim.cmd(&sam, react(Reaction::Heart)),
        Err(RoomError::ReactionsDisabled)
    );
    assert_eq!(
        sim.cmd(&alex, react(Reaction::Heart)),
        Err(RoomError::ReactionsDisabled)
    );
    assert!(sim.who_got(is_reaction).is_empty());
    sim.ok(
        &alex,
        settings(SettingsPatch {
            reactions: Some(true),
            ..Default::default()
        }),
    );
    sim.ok(&sam, react(Reaction::Heart));
}

#[test]
fn a_connection_level_reaches_facilitators_only_and_only_on_change() {
    let mut sim = Sim::new();
    let alex = sim.facilitator("Alex");
    let jo = sim.facilitator("Jo");
    let sam = sim.member("Sam");
    let kim = sim.member("Kim");
    sim.clear();

    sim.ok(&sam, level(ConnectionLevel::Good));
    assert!(sim.who_got(is_quality).is_empty(), "good is the default");
    sim.ok(&sam, level(ConnectionLevel::Poor));
    let mut facilitators = vec![alex.clone(), jo.clone()];
    facilitators.sort();
    assert_eq!(sim.who_got(is_quality), facilitators);
    assert!(
        !sim.got(&kim).iter().any(is_quality),
        "members never learn it"
    );
    assert!(!sim.got(&sam).iter().any(is_quality));
    assert_eq!(
        sim.got(&alex),
        &[ServerMsg::ConnectionQuality {
            participant: sam.clone(),
            level: ConnectionLevel::Poor
        }]
    );
    sim.clear();
    sim.ok(&sam, level(ConnectionLevel::Poor));
    assert!(sim.who_got(is_quality).is_empty(), "no change, no event");

    // A facilitator who arrives later sees it in their snapshot; a member never does.
    let lee = sim.member("Lee");
    let drew = sim.facilitator("Drew");
    let want = vec![ConnectionReport {
        participant: sam.clone(),
        level: ConnectionLevel::Poor,
    }];
    assert_eq!(sim.snapshot(&drew).connection_quality, want);
    assert!(sim.snapshot(&lee).connection_quality.is_empty());
    assert!(sim.snapshot(&kim).connection_quality.is_empty());
    let text = format!("{:?}", sim.snapshot(&kim));
    assert!(!text.contains("Poor"), "{text}");

    sim.clear();
    sim.ok(&sam, level(ConnectionLevel::Good));
    assert_eq!(sim.who_got(is_quality).len(), 3, "recovery is news too");
    assert!(sim.snapshot(&drew).connection_quality.is_empty());
}

#[test]
fn a_flapping_connection_report_is_rate_limited() {
    let mut sim = Sim::new();
    let _alex = sim.facilitator("Alex");
    let sam = sim.member("Sam");
    let levels = [ConnectionLevel::Poor, ConnectionLevel::Good];
    let mut refused = false;
    for i in 0..20 {
        if sim.cmd(&sam, level(levels[i % 2])) == Err(RoomError::RateLimited) {
            refused = true;
            break;
        }
    }
    assert!(refused, "twenty changes at once are not all passed on");
}

#[test]
fn a_waiting_person_cannot_report_a_level() {
    let mut sim = Sim::new();
    let _alex = sim.facilitator("Alex");
    let robin: ParticipantId = sim.waiting("Robin");
    assert_eq!(
        sim.cmd(&robin, level(ConnectionLevel::Poor)),
        Err(RoomError::Waiting)
    );
}
