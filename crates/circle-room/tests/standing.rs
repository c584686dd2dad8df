//! A standing room's meeting: members who arrive before the opening time wait with `opens_at` and
//! come in at that time (unless the waiting-room setting holds them); a facilitator opens it at
//! once; a carry-over restores role, admission, hand order and facilitator mute; only facilitators
//! of standing rooms may rotate links.

mod support;

use circle_protocol::{Role, ServerMsg, Settings};
use circle_room::{Command, RoomError};
use support::*;

/// Ten minutes after the start of the simulated clock.
const OPENS: u64 = T0 + 600_000;

fn standing(settings: Settings, opens_at: Option<u64>) -> Sim {
    let mut sim = Sim::with_settings(settings);
    sim.room.set_standing(opens_at);
    sim
}

fn admitted_snapshot(msgs: &[ServerMsg]) -> Option<circle_protocol::RoomSnapshot> {
    msgs.iter().find_map(|m| match m {
        ServerMsg::Admitted { room } => Some(room.clone()),
        _ => None,
    })
}

#[test]
fn a_member_before_the_opening_waits_with_opens_at_and_is_let_in_at_that_time() {
    let mut sim = standing(open_room(), Some(OPENS));
    let ann = sim.join("Ann").expect("joins");
    assert!(sim.room.is_waiting(&ann), "not open yet: Ann waits");
    let (waiting, room) = joined_snapshot(&sim.take(&ann));
    assert!(waiting && room.standing);
    assert_eq!(room.opens_at, Some(OPENS), "Ann is told when it opens");

    assert_eq!(sim.room.poll_timeout(), Some(OPENS));
    sim.run_until(OPENS - 1);
    assert!(sim.room.is_waiting(&ann), "still waiting a moment before");
    assert_eq!(sim.fire_next_timer(), OPENS);
    assert!(!sim.room.is_waiting(&ann), "let in at the opening time");
    let room = admitted_snapshot(&sim.take(&ann)).expect("Ann is admitted");
    assert_eq!(room.opens_at, None);

    // After the opening, a newcomer comes straight in (the waiting room is off).
    let bea = sim.join("Bea").expect("joins");
    assert!(!sim.room.is_waiting(&bea));
}

#[test]
fn with_the_waiting_room_on_the_opening_only_tells_them_it_is_open() {
    let mut sim = standing(Settings::default(), Some(OPENS));
    let ann = sim.join("Ann").expect("joins");
    sim.take(&ann);
    sim.run_until(OPENS);
    assert!(
        sim.room.is_waiting(&ann),
        "the waiting-room setting holds her"
    );
    let told = sim.take(&ann);
    let room = told
        .iter()
        .find_map(|m| match m {
            ServerMsg::RoomState { room } => Some(room.clone()),
            _ => None,
        })
        .expect("Ann's view is refreshed");
    assert_eq!(room.opens_at, None, "she sees the meeting is open");
    let host = sim.facilitator("Fay");
    sim.ok(&host, Command::Admit(ann.clone()));
    assert!(!sim.room.is_waiting(&ann));
}

#[test]
fn a_facilitator_opens_the_meeting_early() {
    let mut sim = standing(open_room(), Some(OPENS));
    let ann = sim.join("Ann").expect("joins");
    sim.take(&ann);
    let fay = sim.facilitator("Fay");
    assert_eq!(
        sim.room.opens_at(),
        None,
        "open from the facilitator's arrival"
    );
    assert!(!sim.room.is_waiting(&ann), "Ann comes in with her");
    let room = admitted_snapshot(&sim.take(&ann)).expect("admitted");
    assert!(room.participants.iter().any(|p| p.id == fay));
    assert_eq!(sim.room.poll_timeout(), None, "no opening timer left");
}

#[test]
fn a_room_without_a_future_opening_is_open_at_once() {
    let mut sim = standing(open_room(), None);
    let ann = sim.join("Ann").expect("joins");
    assert!(!sim.room.is_waiting(&ann));
    let (_, room) = joined_snapshot(&sim.take(&ann));
    assert!(room.standing && room.opens_at.is_none());
}

#[test]
fn a_carry_over_restores_role_admission_hand_order_and_facilitator_mute() {
    // The meeting before the restart.
    let mut before = standing(Settings::default(), None);
    let fay = before.facilitator("Fay");
    let bea = before.member("Bea");
    let cal = before.member("Cal");
    let dan = before.member("Dan");
    let eve = before.waiting("Eve");
    // Bea and Cal raise theirs in the same millisecond; Dan's is moved to the front.
    before.ok(&bea, Command::RaiseHand);
    before.ok(&cal, Command::RaiseHand);
    before.advance(1_000);
    before.ok(&dan, Command::RaiseHand);
    before.ok(
        &fay,
        Command::MoveHand {
            participant: dan.clone(),
            position: 0,
        },
    );
    before.ok(&fay, Command::Mute(cal.clone()));
    before.ok(&fay, Command::AllowSpeak(dan.clone()));
    let carries: Vec<_> = [&fay, &bea, &cal, &dan, &eve]
        .iter()
        .map(|id| before.room.carry_over(id).expect("in the room"))
        .collect();

    // The next meeting, not yet open.
    let mut after = standing(open_room(), Some(OPENS));
    after.advance(60_000);
    let mut ids = Vec::new();
    // They come back in another order than they raised their hands; someone new raises a hand
    // before most of them are back (theirs was raised later).
    let (cal2, joined) = after.join_carried(&carries[2]).expect("carried join");
    ids.push((2, cal2, joined));
    let new = after.join("Gus").expect("joins");
    after.ok(&new, Command::RaiseHand);
    for i in [1, 4, 3, 0] {
        let (id, joined) = after.join_carried(&carries[i]).expect("carried join");
        ids.push((i, id, joined));
    }
    let id_of = |i: usize| ids.iter().find(|(j, _, _)| *j == i).unwrap().1.clone();
    let role_of = |i: usize| ids.iter().find(|(j, _, _)| *j == i).unwrap().2.role;
    assert_eq!(role_of(0), Role::Facilitator, "Fay is a facilitator again");
    assert_eq!(after.room.opens_at(), None, "a carried meeting is open");
    for i in [1, 2, 3] {
        assert!(
            !after.room.is_waiting(&id_of(i)),
            "admitted ones are admitted"
        );
    }
    assert!(
        after.room.is_waiting(&id_of(4)),
        "Eve was waiting, and waits"
    );

    let queue = after.room.snapshot_for(&id_of(0)).floor.queue;
    let order: Vec<_> = queue
        .iter()
        .map(|q| q.participant.clone().unwrap())
        .collect();
    assert_eq!(
        order,
        vec![id_of(3), id_of(1), id_of(2), new],
        "Dan (moved first), Bea, Cal as before; then the hand raised since"
    );
    let cal_now = after.seen_by(&id_of(0), &id_of(2)).unwrap();
    assert!(cal_now.muted_by_facilitator && cal_now.self_muted);
    let dan_now = after.seen_by(&id_of(0), &id_of(3)).unwrap();
    assert_eq!(
        dan_now.hand_raised_at,
        Some(T0 + 1_000),
        "raised_at is kept"
    );
    assert!(
        !dan_now.muted_by_facilitator,
        "Dan had been allowed to speak"
    );
    let bea_now = after.seen_by(&id_of(0), &id_of(1)).unwrap();
    assert!(
        bea_now.muted_by_facilitator,
        "mute on entry held Bea, and still does"
    );
}

#[test]
fn a_carried_member_opens_a_meeting_that_has_not_opened_yet() {
    let mut before = standing(open_room(), None);
    let ann = before.join("Ann").expect("joins");
    let carry = before.room.carry_over(&ann).unwrap();
    let mut after = standing(open_room(), Some(OPENS));
    let bob = after.join("Bob").expect("joins");
    assert!(after.room.is_waiting(&bob));
    let (ann2, joined) = after.join_carried(&carry).expect("carried join");
    assert!(!joined.waiting);
    assert!(
        !after.room.is_waiting(&bob),
        "the meeting was under way: it is open"
    );
    assert!(!after.room.is_waiting(&ann2));
}

#[test]
fn a_carried_member_who_was_waiting_for_the_opening_does_not_open_it() {
    let mut before = standing(open_room(), Some(OPENS));
    let nia = before.join("Nia").expect("joins");
    assert!(before.room.is_waiting(&nia));
    let carry = before.room.carry_over(&nia).unwrap();
    let mut after = standing(open_room(), Some(OPENS));
    let bob = after.join("Bob").expect("joins");
    let (nia2, joined) = after.join_carried(&carry).expect("carried join");
    assert!(joined.waiting, "Nia still waits for the opening time");
    assert!(after.room.is_waiting(&nia2));
    assert!(
        after.room.is_waiting(&bob),
        "nobody opened the meeting early"
    );
}

#[test]
fn a_lock_set_for_the_next_meeting_does_not_keep_a_carried_member_out() {
    let mut before = standing(open_room(), None);
    let ann = before.join("Ann").expect("joins");
    let carry = before.room.carry_over(&ann).unwrap();
    let locked = Settings {
        locked: true,
        ..open_room()
    };
    let mut after = standing(locked, None);
    assert_eq!(after.join("Bob"), Err(RoomError::Locked));
    let (ann2, _) = after.join_carried(&carry).expect("Ann was in this meeting");
    assert!(!after.room.is_waiting(&ann2));
}

#[test]
fn only_a_facilitator_of_a_standing_room_may_rotate_its_links() {
    let mut sim = standing(Settings::default(), None);
    let fay = sim.facilitator("Fay");
    let bea = sim.member("Bea");
    let eve = sim.waiting("Eve");
    assert_eq!(sim.room.may_rotate_links(&fay), Ok(()));
    assert_eq!(sim.room.may_rotate_links(&bea), Err(RoomError::Forbidden));
    assert_eq!(sim.room.may_rotate_links(&eve), Err(RoomError::Waiting));

    let mut adhoc = Sim::new();
    let host = adhoc.facilitator("Fay");
    assert_eq!(
        adhoc.room.may_rotate_links(&host),
        Err(RoomError::NotStanding)
    );
}
