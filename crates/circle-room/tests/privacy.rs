//! Roster privacy: members see the facilitators, themselves and head counts; other members are
//! anonymous places in the speaking queue. Facilitators see everyone.

mod support;

use circle_protocol::{Role, ServerMsg, Settings, SettingsPatch};
use circle_room::{Audience, Command};
use support::*;

fn private_room() -> Sim {
    Sim::with_settings(Settings {
        roster_privacy: true,
        ..Settings::default()
    })
}

#[test]
fn members_see_facilitators_themselves_and_counts() {
    let mut sim = private_room();
    let alex = sim.facilitator("Alex");
    let sam = sim.member("Sam");
    let kim = sim.member("Kim");
    let jo = sim.facilitator("Jo");
    sim.waiting("Robin");

    let sams = sim.snapshot(&sam);
    assert_eq!(roster(&sams), vec![alex.clone(), sam.clone(), jo.clone()]);
    let counts = sams.counts.unwrap();
    assert_eq!(
        (counts.members, counts.facilitators, counts.waiting),
        (2, 2, 1)
    );
    assert_eq!(
        roster(&sim.snapshot(&kim)),
        vec![alex.clone(), kim.clone(), jo.clone()]
    );
    // Facilitators see everyone, the waiting room included.
    assert_eq!(sim.snapshot(&alex).participants.len(), 5);
    assert_eq!(sim.snapshot(&jo).participants.len(), 5);
}

#[test]
fn members_are_not_told_about_other_members() {
    let mut sim = private_room();
    let alex = sim.facilitator("Alex");
    let sam = sim.member("Sam");
    sim.clear();
    let kim = sim.member("Kim");
    sim.ok(&kim, Command::RaiseHand);
    sim.ok(&kim, Command::LowerHand(None));
    sim.ok(&alex, Command::Mute(kim.clone()));
    let to_sam = sim.take(&sam);
    assert!(
        !to_sam.iter().any(|m| matches!(
            m,
            ServerMsg::ParticipantJoined { .. }
                | ServerMsg::ParticipantUpdated { .. }
                | ServerMsg::ParticipantLeft { .. }
        )),
        "Sam learns nothing about Kim: {to_sam:?}"
    );
    assert!(
        to_sam
            .iter()
            .any(|m| matches!(m, ServerMsg::Counts { counts } if counts.members == 2))
    );
    assert!(sim.got(&alex).iter().any(
        |m| matches!(m, ServerMsg::ParticipantUpdated { participant } if participant.id == kim)
    ));
    assert_eq!(
        sim.room.recipients(&Audience::Seeing(kim.clone())),
        vec![alex.clone()]
    );

    sim.clear();
    sim.ok(&kim, Command::Leave);
    assert!(
        !sim.got(&sam)
            .iter()
            .any(|m| matches!(m, ServerMsg::ParticipantLeft { .. }))
    );
    assert!(
        sim.got(&alex)
            .iter()
            .any(|m| is_left(m, &kim, circle_protocol::LeaveReason::Left))
    );

    // A facilitator joining is seen by everyone.
    sim.clear();
    let jo = sim.facilitator("Jo");
    assert!(sim.got(&sam).iter().any(|m| matches!(m, ServerMsg::ParticipantJoined { participant } if participant.id == jo && participant.role == Role::Facilitator)));
}

#[test]
fn the_queue_shows_other_members_as_anonymous_places() {
    let mut sim = private_room();
    let alex = sim.facilitator("Alex");
    let sam = sim.member("Sam");
    let kim = sim.member("Kim");
    let lee = sim.member("Lee");
    sim.ok(&sam, Command::RaiseHand);
    sim.advance(100);
    sim.ok(&alex, Command::RaiseHand);
    sim.advance(100);
    sim.clear();
    sim.ok(&kim, Command::RaiseHand);

    let kims = last_floor(sim.got(&kim));
    assert_eq!(
        queue_ids(&kims),
        vec![None, Some(alex.clone()), Some(kim.clone())]
    );
    assert_eq!(kims.queue[0].name, None, "no name for a hidden place");
    assert_eq!(
        kims.queue[0].raised_at, T0,
        "but its place in time is shown"
    );
    assert_eq!(kims.queue[2].name.as_deref(), Some("Kim"));

    let sams = last_floor(sim.got(&sam));
    assert_eq!(
        queue_ids(&sams),
        vec![Some(sam.clone()), Some(alex.clone()), None]
    );

    let lees = last_floor(sim.got(&lee));
    assert_eq!(queue_ids(&lees), vec![None, Some(alex.clone()), None]);

    let alexs = last_floor(sim.got(&alex));
    assert_eq!(
        queue_ids(&alexs),
        vec![Some(sam.clone()), Some(alex.clone()), Some(kim.clone())]
    );
    assert_eq!(
        alexs
            .queue
            .iter()
            .map(|q| q.name.clone().unwrap())
            .collect::<Vec<_>>(),
        vec!["Sam", "Alex", "Kim"]
    );

    // Each person got exactly one floor event, and snapshots agree with the events.
    for who in [&alex, &sam, &kim, &lee] {
        assert_eq!(floors(sim.got(who)).len(), 1, "{who}");
        assert_eq!(sim.snapshot(who).floor, last_floor(sim.got(who)), "{who}");
    }

    // The floor holder is named to everyone: everyone hears them.
    sim.clear();
    sim.ok(&alex, Command::NextSpeaker);
    let lees = last_floor(sim.got(&lee));
    assert_eq!(lees.speaker.as_ref().map(|s| s.name.as_str()), Some("Sam"));
    assert_eq!(queue_ids(&lees), vec![Some(alex.clone()), None]);
}

#[test]
fn turning_privacy_on_and_off_rebuilds_everyones_view() {
    let mut sim = Sim::new();
    let alex = sim.facilitator("Alex");
    let sam = sim.member("Sam");
    let kim = sim.member("Kim");
    let robin = sim.waiting("Robin");
    assert_eq!(
        roster(&sim.snapshot(&sam)),
        vec![alex.clone(), sam.clone(), kim.clone()]
    );
    sim.clear();

    sim.ok(
        &alex,
        settings(SettingsPatch {
            roster_privacy: Some(true),
            ..Default::default()
        }),
    );
    for who in [&alex, &sam, &kim, &robin] {
        assert!(
            sim.got(who)
                .iter()
                .any(|m| matches!(m, ServerMsg::Settings { settings } if settings.roster_privacy)),
            "{who} gets the new settings"
        );
    }
    let state = |sim: &Sim, who| {
        sim.got(who).iter().find_map(|m| match m {
            ServerMsg::RoomState { room } => Some(room.clone()),
            _ => None,
        })
    };
    assert_eq!(
        roster(&state(&sim, &sam).unwrap()),
        vec![alex.clone(), sam.clone()]
    );
    assert_eq!(
        roster(&state(&sim, &kim).unwrap()),
        vec![alex.clone(), kim.clone()]
    );
    assert_eq!(roster(&state(&sim, &alex).unwrap()).len(), 4);
    assert!(
        state(&sim, &robin).is_none(),
        "the waiting room's view does not change"
    );

    sim.clear();
    sim.ok(
        &alex,
        settings(SettingsPatch {
            roster_privacy: Some(false),
            ..Default::default()
        }),
    );
    assert_eq!(
        roster(&state(&sim, &sam).unwrap()),
        vec![alex.clone(), sam.clone(), kim.clone()]
    );

    // Setting it to what it already is sends nothing.
    sim.clear();
    sim.ok(
        &alex,
        settings(SettingsPatch {
            roster_privacy: Some(false),
            ..Default::default()
        }),
    );
    assert!(sim.log.is_empty());
}
