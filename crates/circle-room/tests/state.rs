//! `Room::state` and `Room::from_state`: a room rebuilt from its state answers every step as the
//! original would (the property test: a random meeting, its state through JSON, everyone's
//! connection lost and resumed on both, then the same random steps on both, every output
//! compared); `state_generation` moves with every change of the state; and a state that cannot be
//! trusted is refused with an error, never a panic. What members notice is in `rebuilt_meeting.rs`.

mod support;

use circle_protocol::{MessageId, ParticipantId, ServerMsg, Settings};
use circle_room::{
    Command, Joined, MESSAGE_ID_BLOCK, Output, Pseudonym, Room, RoomError, RoomLimits, RoomState,
};
use proptest::prelude::*;
use std::collections::BTreeSet;
use support::ops::*;
use support::*;

fn limits() -> RoomLimits {
    RoomLimits {
        max_participants: 12,
        chat_history: 5,
        grace_ms: 20_000,
    }
}

#[test]
fn the_generation_moves_for_a_hand_but_not_for_chat_or_reactions() {
    let mut sim = Sim::with(open_room(), limits());
    let _host = sim.facilitator("Host");
    let ann = sim.member("Ann");
    let g = sim.room.state_generation();
    sim.ok(&ann, chat("hello"));
    sim.ok(&ann, Command::React(circle_protocol::Reaction::Heart));
    sim.ok(
        &ann,
        Command::ReportQuality(circle_protocol::ConnectionLevel::Poor),
    );
    assert_eq!(sim.room.state_generation(), g);
    sim.ok(&ann, Command::RaiseHand);
    assert!(sim.room.state_generation() > g);
    let g = sim.room.state_generation();
    // Raising a raised hand changes nothing, and a refused command neither.
    sim.ok(&ann, Command::RaiseHand);
    let _ = sim.cmd(&ann, Command::MuteAll);
    assert_eq!(sim.room.state_generation(), g);
}

/// A valid state of a small meeting, to spoil.
fn a_state() -> (RoomState, ParticipantId, ParticipantId) {
    let settings = Settings {
        mute_on_entry: false,
        ..open_room()
    };
    let mut sim = Sim::with(settings, limits());
    let host = sim.facilitator("Host");
    let ann = sim.member("Ann");
    let ben = sim.member("Ben");
    sim.ok(&ann, Command::RaiseHand);
    sim.ok(&host, Command::GiveFloor(ben));
    let cas = sim.join("Cas").expect("joins");
    sim.ok(&host, Command::Ban(cas));
    (sim.room.state(), host, ann)
}

#[test]
fn from_state_refuses_an_unknown_version_or_an_ended_meeting() {
    let (mut state, ..) = a_state();
    state.version = 2;
    assert!(matches!(
        Room::from_state(state, limits(), T0),
        Err(RoomError::BadState(_))
    ));
    let (mut state, ..) = a_state();
    state.ended = true;
    assert_eq!(
        Room::from_state(state, limits(), T0).map(|_| ()),
        Err(RoomError::Ended)
    );
}

#[test]
fn from_state_refuses_a_state_that_contradicts_itself() {
    fn index(s: &RoomState, id: &ParticipantId) -> usize {
        s.participants
            .iter()
            .position(|p| &p.id == id)
            .expect("present")
    }
    type Spoil = Box<dyn Fn(&mut RoomState, &ParticipantId, &ParticipantId)>;
    let spoilers: Vec<(&str, Spoil)> = vec![
        (
            "a hand placed beyond the queue",
            Box::new(move |s, _, ann| {
                let i = index(s, ann);
                s.participants[i].carry.place.hand_place = Some(3);
            }),
        ),
        (
            "a raised hand with no place",
            Box::new(move |s, _, ann| {
                let i = index(s, ann);
                s.participants[i].carry.place.hand_place = None;
            }),
        ),
        (
            "the same id twice",
            Box::new(|s, _, _| {
                let mut twin = s.participants[1].clone();
                twin.seq = s.next_seq;
                twin.carry.name = "Twin".into();
                s.next_seq += 1;
                s.participants.push(twin);
            }),
        ),
        (
            "the same name twice",
            Box::new(|s, _, _| s.participants[1].carry.name = "HOST".into()),
        ),
        (
            "a name the room would refuse",
            Box::new(|s, _, _| s.participants[1].carry.name = " \u{202e}x".into()),
        ),
        (
            "the floor with someone absent",
            Box::new(|s, _, _| {
                if let Some(f) = s.floor.as_mut() {
                    f.speaker = ParticipantId("nobody".into());
                }
            }),
        ),
        (
            "a banned session still present",
            Box::new(|s, _, ann| s.banned_sessions.push(ann.clone())),
        ),
        (
            "a facilitator in the waiting room",
            Box::new(|s, host, _| {
                let i = index(s, host);
                s.participants[i].carry.place.admitted = false;
            }),
        ),
        (
            "a waiting member with a hand up",
            Box::new(move |s, _, ann| {
                let i = index(s, ann);
                s.participants[i].carry.place.admitted = false;
            }),
        ),
        (
            "muted by a facilitator with a live microphone",
            Box::new(move |s, _, ann| {
                let i = index(s, ann);
                s.participants[i].carry.place.muted_by_facilitator = true;
                s.participants[i].self_muted = false;
            }),
        ),
        (
            "a join number not below next_seq",
            Box::new(|s, _, _| s.next_seq = 1),
        ),
        (
            "chat ids at their end",
            Box::new(|s, _, _| s.next_message_id = u64::MAX),
        ),
        (
            "join numbers no browser reads exactly",
            Box::new(|s, _, _| s.next_seq = (1 << 53) + 1),
        ),
    ];
    for (what, spoil) in spoilers {
        let (mut state, host, ann) = a_state();
        spoil(&mut state, &host, &ann);
        let state = through_json(&state);
        match Room::from_state(state, limits(), T0) {
            Err(RoomError::BadState(_)) => {}
            other => panic!("{what}: {:?}", other.map(|_| ())),
        }
    }
}

// --- The property: a rebuilt room answers every step as the original does. ---

/// One room and what its driver knows: who ever joined, and whose connection is up.
struct Side {
    sim: Sim,
    ever: Vec<ParticipantId>,
    connected: BTreeSet<ParticipantId>,
    /// Chat ids here are the original's plus this (the rebuilt room starts at the next block).
    id_shift: MessageId,
}

/// What one step answered, to compare between the two rooms.
type Answer = Option<Result<Option<Joined>, RoomError>>;

impl Side {
    /// A room with its first facilitator in it.
    fn new(settings: Settings, limits: RoomLimits) -> Self {
        let mut side = Side {
            sim: Sim::with(settings, limits),
            ever: Vec::new(),
            connected: BTreeSet::new(),
            id_shift: 0,
        };
        let host = side.sim.facilitator("Host");
        side.ever.push(host.clone());
        side.connected.insert(host);
        side.said();
        side
    }

    /// Carries out one operation as the edge would; `None` when the edge would not pass it on.
    fn apply(&mut self, op: &Op, delete_base: MessageId) -> Answer {
        let room = &self.sim.room;
        let answer = match op {
            Op::Join {
                name,
                facilitator,
                device,
            } => {
                Pseudonym::parse(name).ok()?;
                let device = device.map(|d| format!("dev-{d}"));
                let joined = self.sim.try_join(name, *facilitator, device.as_deref());
                if let Ok((id, joined)) = &joined {
                    if !joined.resumed {
                        self.ever.push(id.clone());
                    }
                    self.connected.insert(id.clone());
                }
                joined.map(|(_, j)| Some(j))
            }
            Op::Drop(w) => {
                let id = resolve(room, &self.ever, w)?;
                self.connected.remove(&id);
                self.sim.disconnect(&id);
                Ok(None)
            }
            Op::Resume(w) => {
                let id = resolve(room, &self.ever, w)?;
                let joined = self.sim.resume(&id);
                if joined.is_ok() {
                    self.connected.insert(id);
                }
                joined.map(Some)
            }
            Op::Wait(ms) => {
                let until = self.sim.now + ms;
                self.sim.run_until(until);
                Ok(None)
            }
            Op::Send(from, cmd) => {
                let from = resolve(room, &self.ever, from)?;
                let cmd = match command(room, &self.ever, cmd)? {
                    // Chat ids are drawn near the ids this room gives out, so deletes hit.
                    Command::DeleteChat(id) => Command::DeleteChat(
                        delete_base.wrapping_add(self.id_shift).wrapping_add(id),
                    ),
                    cmd => cmd,
                };
                self.sim.cmd(&from, cmd).map(|()| None)
            }
        };
        Some(answer)
    }

    /// What the room said since the last call, as the original would have said it (recipients
    /// sorted, chat ids unshifted), and forgets it.
    fn said(&mut self) -> Vec<Output> {
        for (who, _) in std::mem::take(&mut self.sim.closed) {
            self.connected.remove(&who);
        }
        let log = std::mem::take(&mut self.sim.log);
        self.sim.clear();
        log.into_iter()
            .map(|d| match d.output {
                Output::Send { to, msg, .. } => Output::Send {
                    to,
                    recipients: d.recipients,
                    msg: unshift(msg, self.id_shift),
                },
                other => other,
            })
            .collect()
    }

    /// The state as the original would have it.
    fn state(&self) -> RoomState {
        let mut state = self.sim.room.state();
        state.next_message_id -= self.id_shift;
        state
    }
}

/// A message with its chat ids moved back by `shift`.
fn unshift(mut msg: ServerMsg, shift: MessageId) -> ServerMsg {
    match &mut msg {
        ServerMsg::Chat { message } => message.id -= shift,
        ServerMsg::ChatDeleted { message } => *message -= shift,
        ServerMsg::Admitted { room } | ServerMsg::RoomState { room } => {
            for m in &mut room.chat {
                m.id -= shift;
            }
        }
        _ => {}
    }
    msg
}

/// Whether `op` may run before the rebuild: not room chat (its history is not carried, so the
/// rebuilt room's snapshots would differ on purpose), nor reactions and connection levels (their
/// rate limits and levels belong to the old connection).
fn before_rebuild(op: &Op) -> bool {
    !matches!(
        op,
        Op::Send(
            _,
            Cmd::Chat(_) | Cmd::DeleteChat(_) | Cmd::React(_) | Cmd::Quality(_)
        )
    )
}

/// The state with the next chat id reduced to its block: chat inside one block does not count
/// as a change.
fn counted(mut state: RoomState) -> RoomState {
    state.next_message_id /= MESSAGE_ID_BLOCK;
    state
}

/// Checks that a step that changed the state moved the generation.
fn generation_moved(
    side: &Side,
    before: &(RoomState, u64),
    step: &str,
) -> Result<(RoomState, u64), TestCaseError> {
    let now = (side.sim.room.state(), side.sim.room.state_generation());
    if counted(now.0.clone()) != counted(before.0.clone()) {
        prop_assert!(
            now.1 > before.1,
            "{} changed the state, not the generation",
            step
        );
    }
    Ok(now)
}

fn rebuilt_answers_as_the_original(
    settings: Settings,
    limits: RoomLimits,
    before: &[Op],
    after: &[Op],
) -> Result<(), TestCaseError> {
    let mut orig = Side::new(settings, limits.clone());
    let mut last = (orig.sim.room.state(), orig.sim.room.state_generation());
    for op in before.iter().filter(|op| before_rebuild(op)) {
        orig.apply(op, 0);
        orig.said();
        last = generation_moved(&orig, &last, &format!("{op:?}"))?;
    }

    // The node dies; its state, as last written, goes through JSON to another node.
    let state = orig.sim.room.state();
    let parsed = through_json(&state);
    prop_assert_eq!(&parsed, &state);
    let room = match Room::from_state(parsed, limits, orig.sim.now) {
        Err(RoomError::Ended) if orig.sim.room.is_ended() => return Ok(()),
        Err(e) => return Err(TestCaseError::fail(format!("refused its own state: {e}"))),
        Ok(room) => room,
    };
    let base = state.next_message_id;
    let mut new = Side {
        sim: Sim::continuing(&orig.sim, room),
        ever: orig.ever.clone(),
        connected: BTreeSet::new(),
        id_shift: (base / MESSAGE_ID_BLOCK + 1) * MESSAGE_ID_BLOCK - base,
    };
    new.sim.pump();
    let mut everyone = present(&orig.sim.room, &orig.ever);
    everyone.sort();
    let told: Vec<Output> = everyone
        .into_iter()
        .map(|who| Output::Hearing {
            who,
            may_be_heard: false,
        })
        .collect();
    prop_assert_eq!(new.said(), told, "the relay is told nobody may be heard");

    // Everyone connected loses their connection (in the original too, so the two compare), and
    // comes back.
    let back: Vec<ParticipantId> = orig.connected.iter().cloned().collect();
    for id in &back {
        orig.sim.disconnect(id);
    }
    orig.said();
    for id in &back {
        let a = orig.sim.resume(id);
        let b = new.sim.resume(id);
        prop_assert_eq!(&a, &b, "resume of {}", id);
        prop_assert_eq!(orig.said(), new.said(), "resume of {}", id);
    }
    orig.connected = back.iter().cloned().collect();
    new.connected = orig.connected.clone();
    prop_assert_eq!(orig.state(), new.state(), "after everyone resumed");

    let mut last_new = (new.sim.room.state(), new.sim.room.state_generation());
    let mut last_orig = (orig.sim.room.state(), orig.sim.room.state_generation());
    for op in after {
        let a = orig.apply(op, base);
        let b = new.apply(op, base);
        prop_assert_eq!(&a, &b, "{:?}", op);
        prop_assert_eq!(orig.said(), new.said(), "{:?}", op);
        prop_assert_eq!(orig.state(), new.state(), "{:?}", op);
        prop_assert_eq!(orig.sim.room.poll_timeout(), new.sim.room.poll_timeout());
        prop_assert_eq!(&orig.connected, &new.connected);
        last_orig = generation_moved(&orig, &last_orig, &format!("{op:?}"))?;
        last_new = generation_moved(&new, &last_new, &format!("{op:?}"))?;
    }
    for id in present(&orig.sim.room, &orig.ever) {
        prop_assert_eq!(orig.sim.snapshot(&id), {
            let mut s = new.sim.snapshot(&id);
            for m in &mut s.chat {
                m.id -= new.id_shift;
            }
            s
        });
    }
    Ok(())
}

/// Steps that make a meeting worth carrying over: people arriving and being let in, hands going up
/// and being moved about (the order a facilitator set is not the order they went up in).
fn lively() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..40u32, proptest::option::of(0..8u8)).prop_map(|(n, device)| Op::Join {
            name: format!("Zed {n}"),
            facilitator: false,
            device,
        }),
        1 => Just(Op::Send(Who::Facilitator(0), Cmd::AdmitAll)),
        3 => any::<usize>().prop_map(|i| Op::Send(Who::Present(i), Cmd::RaiseHand)),
        2 => (any::<usize>(), 0..4usize)
            .prop_map(|(i, to)| Op::Send(Who::Facilitator(0), Cmd::MoveHand(Who::Present(i), to))),
        1 => any::<usize>().prop_map(|i| Op::Drop(Who::Present(i))),
    ]
}

/// Any step, lively ones more often than [`op`] alone draws them.
fn step() -> impl Strategy<Value = Op> {
    prop_oneof![3 => op(), 1 => lively()]
}

proptest! {
    #![proptest_config(cases(96))]

    /// A room rebuilt from its state answers every step as the original would: the same answers,
    /// the same messages to the same people, the same relay feed, the same timers.
    #[test]
    fn a_rebuilt_room_answers_every_step_as_the_original(
        settings in room_settings(),
        limits in support::ops::limits(),
        before in proptest::collection::vec(step(), 1..120),
        after in proptest::collection::vec(step(), 1..80),
    ) {
        rebuilt_answers_as_the_original(settings, limits, &before, &after)?;
    }
}

// --- A state that was tampered with or garbled: refused, or a room that works. ---

/// One way to spoil a state. Indices wrap around the participants.
#[derive(Clone, Debug)]
enum Spoil {
    HandPlace(usize, Option<u32>),
    EarlierPlace(usize, Option<u32>),
    HandAt(usize, Option<u64>),
    Admitted(usize, bool),
    Facilitator(usize, bool),
    FacilitatorMute(usize, bool),
    SelfMute(usize, bool),
    ChatAllowed(usize, bool),
    Seq(usize, u64),
    NextSeq(u64),
    NextMessageId(u64),
    Speaker(Option<usize>),
    ShareTimes(Option<u64>, Option<u64>, bool, bool),
    Twin(usize),
    Remove(usize),
    BanSession(usize),
    OpensAt(Option<u64>),
    Deadline(usize, Option<u64>),
    Name(usize, String),
}

fn number() -> impl Strategy<Value = u64> {
    prop_oneof![0..8u64, T0 - 100_000..T0 + 100_000, any::<u64>()]
}

fn place() -> impl Strategy<Value = Option<u32>> {
    proptest::option::of(prop_oneof![0..4u32, any::<u32>()])
}

fn spoil() -> impl Strategy<Value = Spoil> {
    let i = any::<usize>;
    prop_oneof![
        (i(), place()).prop_map(|(i, p)| Spoil::HandPlace(i, p)),
        (i(), place()).prop_map(|(i, p)| Spoil::EarlierPlace(i, p)),
        (i(), proptest::option::of(number())).prop_map(|(i, t)| Spoil::HandAt(i, t)),
        (i(), any::<bool>()).prop_map(|(i, b)| Spoil::Admitted(i, b)),
        (i(), any::<bool>()).prop_map(|(i, b)| Spoil::Facilitator(i, b)),
        (i(), any::<bool>()).prop_map(|(i, b)| Spoil::FacilitatorMute(i, b)),
        (i(), any::<bool>()).prop_map(|(i, b)| Spoil::SelfMute(i, b)),
        (i(), any::<bool>()).prop_map(|(i, b)| Spoil::ChatAllowed(i, b)),
        (i(), number()).prop_map(|(i, n)| Spoil::Seq(i, n)),
        number().prop_map(Spoil::NextSeq),
        number().prop_map(Spoil::NextMessageId),
        proptest::option::of(i()).prop_map(Spoil::Speaker),
        (
            proptest::option::of(number()),
            proptest::option::of(number()),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(|(e, w, warned, expired)| Spoil::ShareTimes(e, w, warned, expired)),
        i().prop_map(Spoil::Twin),
        i().prop_map(Spoil::Remove),
        i().prop_map(Spoil::BanSession),
        proptest::option::of(number()).prop_map(Spoil::OpensAt),
        (i(), proptest::option::of(number())).prop_map(|(i, t)| Spoil::Deadline(i, t)),
        (i(), typed_name()).prop_map(|(i, n)| Spoil::Name(i, n)),
    ]
}

impl Spoil {
    fn apply(&self, s: &mut RoomState) {
        let n = s.participants.len();
        if n == 0 {
            return;
        }
        let at = |i: &usize| i % n;
        match self {
            Spoil::HandPlace(i, v) => s.participants[at(i)].carry.place.hand_place = *v,
            Spoil::EarlierPlace(i, v) => s.participants[at(i)].earlier_place = *v,
            Spoil::HandAt(i, v) => s.participants[at(i)].carry.place.hand_raised_at = *v,
            Spoil::Admitted(i, v) => s.participants[at(i)].carry.place.admitted = *v,
            Spoil::Facilitator(i, v) => {
                s.participants[at(i)].carry.place.role = if *v {
                    circle_protocol::Role::Facilitator
                } else {
                    circle_protocol::Role::Member
                }
            }
            Spoil::FacilitatorMute(i, v) => {
                s.participants[at(i)].carry.place.muted_by_facilitator = *v
            }
            Spoil::SelfMute(i, v) => s.participants[at(i)].self_muted = *v,
            Spoil::ChatAllowed(i, v) => s.participants[at(i)].chat_allowed = *v,
            Spoil::Seq(i, v) => s.participants[at(i)].seq = *v,
            Spoil::NextSeq(v) => s.next_seq = *v,
            Spoil::NextMessageId(v) => s.next_message_id = *v,
            Spoil::Speaker(who) => match (who, s.floor.as_mut()) {
                (Some(i), Some(f)) => f.speaker = s.participants[at(i)].id.clone(),
                (Some(i), None) => {
                    s.floor = Some(circle_room::FloorState {
                        speaker: s.participants[at(i)].id.clone(),
                        since: T0,
                        ends_at: None,
                        warn_at: None,
                        warned: false,
                        expired: false,
                    })
                }
                (None, _) => s.floor = None,
            },
            Spoil::ShareTimes(ends, warn, warned, expired) => {
                if let Some(f) = s.floor.as_mut() {
                    (f.ends_at, f.warn_at, f.warned, f.expired) = (*ends, *warn, *warned, *expired);
                }
            }
            Spoil::Twin(i) => {
                let twin = s.participants[at(i)].clone();
                s.participants.push(twin);
            }
            Spoil::Remove(i) => {
                s.participants.remove(at(i));
            }
            Spoil::BanSession(i) => s.banned_sessions.push(s.participants[at(i)].id.clone()),
            Spoil::OpensAt(v) => s.opens_at = *v,
            Spoil::Deadline(i, v) => s.participants[at(i)].reconnecting_until = *v,
            Spoil::Name(i, v) => s.participants[at(i)].carry.name = v.clone(),
        }
    }
}

proptest! {
    #![proptest_config(cases(96))]

    /// A spoiled state is refused with an error, or makes a room that takes further steps without
    /// a panic and whose own state is taken again (so a node never writes a state that the next
    /// claimer refuses).
    #[test]
    fn a_spoiled_state_is_refused_or_makes_a_working_room(
        settings in room_settings(),
        limits in support::ops::limits(),
        before in proptest::collection::vec(step(), 1..60),
        spoils in proptest::collection::vec(spoil(), 1..4),
        after in proptest::collection::vec(op(), 1..60),
    ) {
        let mut orig = Side::new(settings, limits.clone());
        for op in &before {
            orig.apply(op, 0);
            orig.said();
        }
        let mut state = orig.sim.room.state();
        for s in &spoils {
            s.apply(&mut state);
        }
        match Room::from_state(through_json(&state), limits.clone(), orig.sim.now) {
            Err(RoomError::BadState(_) | RoomError::Ended) => {}
            Err(e) => return Err(TestCaseError::fail(format!("refused with {e:?}"))),
            Ok(room) => {
                let mut new = Side {
                    sim: Sim::continuing(&orig.sim, room),
                    ever: orig.ever.clone(),
                    connected: BTreeSet::new(),
                    id_shift: 0,
                };
                for id in present(&new.sim.room, &new.ever) {
                    let _ = new.sim.resume(&id);
                }
                for op in &after {
                    new.apply(op, 0);
                    new.said();
                }
                let again = Room::from_state(new.sim.room.state(), limits, new.sim.now);
                prop_assert!(
                    matches!(again, Ok(_) | Err(RoomError::Ended)),
                    "its own state refused: {:?}",
                    again.map(|_| ())
                );
            }
        }
    }
}
