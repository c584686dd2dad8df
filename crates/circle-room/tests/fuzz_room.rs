//! Property tests ("fuzzing" on stable Rust) for the room state machine: proptest generates whole
//! meetings as random sequences of joins (with odd names), dropped connections, resumes (of the
//! present, the departed and ids that never existed), clock jumps that fire grace periods and share
//! timers, and every member and facilitator command, sent by random actors: facilitators, members,
//! people in the waiting room, people whose connection is down, people who left, and unknown ids.
//!
//! After every step it checks what `consistency.rs` states (each connected client's view, built only
//! from the messages it received, equals a fresh snapshot; the relay's hearing feed matches
//! `may_be_heard`; a refused request sends and changes nothing), and more: the refusal is the one
//! the protocol names for that sender; the room's idea of who is connected matches the driver's; the
//! roster, counts, floor and queue agree with each other; members under roster privacy see no other
//! member; private chat reaches only its audience; and nothing panics.
//!
//! `cargo test -p circle-room --test fuzz_room` runs 64 short and 16 long meetings (a few seconds);
//! a long run sets `PROPTEST_CASES`, e.g.
//! `PROPTEST_CASES=200000 cargo test --release -p circle-room --test fuzz_room` (docs/ROBUSTNESS.md).

mod support;

use circle_protocol::{
    LeaveReason, ParticipantId, Presence, Role, RoomSnapshot, ServerMsg, Settings,
};
use circle_room::{Command, Output, Pseudonym, RoomError, RoomLimits};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use support::ops::*;
use support::*;

/// The commands only a facilitator may send (docs/PROTOCOL.md marks them).
fn facilitator_only(cmd: &Command) -> bool {
    !matches!(
        cmd,
        Command::Leave
            | Command::RaiseHand
            | Command::LowerHand(_)
            | Command::SetSelfMute(_)
            | Command::Chat(_)
            | Command::ChatPrivate { .. }
            | Command::React(_)
            | Command::ReportQuality(_)
    )
}

struct Meeting {
    sim: Sim,
    /// Everyone who ever joined, present or not.
    ever: Vec<ParticipantId>,
    /// The client views of those whose connection is up.
    clients: BTreeMap<ParticipantId, ClientView>,
    /// Those whose connection dropped, inside their grace period as far as the driver knows.
    dropped: BTreeSet<ParticipantId>,
    chat_history: usize,
}

type Check = Result<(), TestCaseError>;

impl Meeting {
    fn new(settings: Settings, limits: RoomLimits) -> Self {
        let chat_history = limits.chat_history;
        let mut m = Self {
            sim: Sim::with(settings, limits),
            ever: Vec::new(),
            clients: BTreeMap::new(),
            dropped: BTreeSet::new(),
            chat_history,
        };
        let host = m.sim.facilitator("Host");
        m.ever.push(host.clone());
        m.clients.insert(host, ClientView::new());
        m
    }

    fn present(&self) -> Vec<ParticipantId> {
        present(&self.sim.room, &self.ever)
    }

    fn resolve(&self, who: &Who) -> Option<ParticipantId> {
        resolve(&self.sim.room, &self.ever, who)
    }

    /// The command as the edge would build it; `None` when the edge would refuse its text.
    fn command(&self, cmd: &Cmd) -> Option<Command> {
        command(&self.sim.room, &self.ever, cmd)
    }

    /// What everyone present would be shown now.
    fn all_views(&self) -> Vec<RoomSnapshot> {
        self.present()
            .iter()
            .map(|p| self.sim.snapshot(p))
            .collect()
    }

    /// Delivers what each connected client received and closes the connections the room closed.
    fn deliver(&mut self) -> Check {
        let ids: Vec<_> = self.clients.keys().cloned().collect();
        for id in ids {
            let msgs = self.sim.take(&id);
            let view = self.clients.get_mut(&id).unwrap();
            for m in &msgs {
                view.apply(m);
            }
        }
        for (who, reason) in std::mem::take(&mut self.sim.closed) {
            prop_assert!(
                self.clients.remove(&who).is_some() || self.dropped.remove(&who),
                "closed {} ({:?}), who had no connection",
                who,
                reason
            );
        }
        // Private chat reaches the facilitators, its author and its addressee, nobody else.
        for d in &self.sim.log {
            if let Output::Send {
                msg: ServerMsg::Chat { message },
                recipients,
                ..
            } = &d.output
                && message.private
            {
                for r in recipients {
                    prop_assert!(
                        self.sim.room.role_of(r) == Some(Role::Facilitator)
                            || *r == message.from
                            || message.to.as_ref() == Some(r),
                        "private message {:?} reached {}",
                        message,
                        r
                    );
                }
            }
        }
        self.sim.log.clear();
        Ok(())
    }

    fn step(&mut self, op: &Op) -> Check {
        let ended = self.sim.room.is_ended();
        let before_views = self.all_views();
        match op {
            Op::Join {
                name,
                facilitator,
                device,
            } => {
                if Pseudonym::parse(name).is_err() {
                    return Ok(()); // The edge refuses it before the room hears of it.
                }
                let device = device.map(|d| format!("dev-{d}"));
                match self.sim.try_join(name, *facilitator, device.as_deref()) {
                    Ok((id, joined)) if joined.resumed => {
                        // The same name from the same device took up that place, as a resume
                        // does (its role too); any earlier connection is replaced by this one.
                        prop_assert!(!ended);
                        prop_assert!(device.is_some(), "a join without a device id resumed");
                        prop_assert!(self.ever.contains(&id));
                        self.dropped.remove(&id);
                        self.clients.insert(id, ClientView::new());
                    }
                    Ok((id, joined)) => {
                        prop_assert!(!ended);
                        prop_assert_eq!(joined.role == Role::Facilitator, *facilitator);
                        self.ever.push(id.clone());
                        self.clients.insert(id, ClientView::new());
                    }
                    Err(e) => {
                        prop_assert!(
                            matches!(
                                e,
                                RoomError::Ended
                                    | RoomError::Locked
                                    | RoomError::Full
                                    | RoomError::NameTaken
                                    | RoomError::Banned
                            ),
                            "join refused with {:?}",
                            e
                        );
                        prop_assert!(self.sim.log.is_empty(), "a refused join sent something");
                        prop_assert_eq!(&before_views, &self.all_views());
                    }
                }
            }
            Op::Drop(w) => {
                let Some(id) = self.resolve(w) else {
                    return Ok(());
                };
                let was_client = self.clients.remove(&id).is_some();
                self.sim.disconnect(&id);
                prop_assert!(!self.sim.room.may_be_heard(&id));
                if was_client {
                    self.dropped.insert(id);
                } else {
                    prop_assert!(
                        self.sim.log.is_empty(),
                        "a disconnect of someone with no connection sent something"
                    );
                }
            }
            Op::Resume(w) => {
                let Some(id) = self.resolve(w) else {
                    return Ok(());
                };
                let present = self.sim.room.role_of(&id).is_some();
                match self.sim.resume(&id) {
                    Ok(joined) => {
                        prop_assert!(present, "{} resumed but was not in the room", id);
                        prop_assert_eq!(joined.waiting, self.sim.room.is_waiting(&id));
                        self.dropped.remove(&id);
                        // A new connection replaces any old one; it starts from `joined`, and the
                        // room actor then tells it whether it may be heard, as the snapshot does not.
                        let mut view = ClientView::new();
                        for m in self.sim.take(&id) {
                            view.apply(&m);
                        }
                        let may_be_heard = self.sim.room.may_be_heard(&id);
                        view.apply(&ServerMsg::Hearing { may_be_heard });
                        self.clients.insert(id, view);
                    }
                    Err(e) => {
                        prop_assert!(
                            !present || ended,
                            "{} is here, yet resume failed: {:?}",
                            id,
                            e
                        );
                        prop_assert!(
                            matches!(
                                e,
                                RoomError::SessionGone | RoomError::Banned | RoomError::Ended
                            ),
                            "{:?}",
                            e
                        );
                        prop_assert!(self.sim.log.is_empty(), "a refused resume sent something");
                    }
                }
            }
            Op::Wait(ms) => {
                let until = self.sim.now + ms;
                self.sim.run_until(until);
                if let Some(next) = self.sim.room.poll_timeout() {
                    prop_assert!(next > self.sim.now, "a due timer was left unfired");
                }
            }
            Op::Send(from, cmd) => {
                let Some(from) = self.resolve(from) else {
                    return Ok(());
                };
                let Some(cmd) = self.command(cmd) else {
                    return Ok(());
                };
                let role = self.sim.room.role_of(&from);
                let waiting = self.sim.room.is_waiting(&from);
                let result = self.sim.cmd(&from, cmd.clone());
                // The refusal the protocol names for this sender, checked in this order.
                let expected_refusal = if ended {
                    Some(RoomError::Ended)
                } else if role.is_none() {
                    Some(RoomError::SessionGone)
                } else if waiting && !matches!(cmd, Command::Leave) {
                    Some(RoomError::Waiting)
                } else if facilitator_only(&cmd) && role != Some(Role::Facilitator) {
                    Some(RoomError::Forbidden)
                } else {
                    None
                };
                match (&result, expected_refusal) {
                    (Err(e), Some(want)) => prop_assert_eq!(e, &want, "{:?} from {}", cmd, from),
                    (Ok(()), Some(want)) => {
                        return Err(TestCaseError::fail(format!(
                            "{cmd:?} from {from} went through; expected {want:?}"
                        )));
                    }
                    _ => {}
                }
                match result {
                    Err(e) => {
                        prop_assert!(
                            self.sim.log.is_empty(),
                            "{:?} failed with {:?} yet sent something",
                            cmd,
                            e
                        );
                        prop_assert_eq!(
                            &before_views,
                            &self.all_views(),
                            "{:?} failed with {:?} yet changed the room",
                            cmd,
                            e
                        );
                    }
                    Ok(()) => match cmd {
                        Command::Leave => prop_assert!(self.sim.room.role_of(&from).is_none()),
                        Command::EndMeeting => prop_assert!(self.sim.room.is_ended()),
                        _ => {}
                    },
                }
            }
        }
        self.deliver()
    }

    fn check(&self) -> Check {
        let room = &self.sim.room;
        let present = self.present();
        if let Some(next) = room.poll_timeout() {
            prop_assert!(next >= self.sim.now, "a timer is in the past");
        }
        // Each connected client shows what a fresh snapshot would.
        for (id, view) in &self.clients {
            let fresh = room.snapshot_for(id);
            prop_assert_eq!(&view.room.title, &fresh.title, "{}", id);
            prop_assert_eq!(&view.room.settings, &fresh.settings, "{}: settings", id);
            prop_assert_eq!(view.room.counts, fresh.counts, "{}: counts", id);
            prop_assert_eq!(
                by_id(view.room.participants.clone()),
                by_id(fresh.participants.clone()),
                "{}: roster",
                id
            );
            prop_assert_eq!(&view.room.floor, &fresh.floor, "{}: floor", id);
            prop_assert_eq!(
                view.room.facilitator_present,
                fresh.facilitator_present,
                "{}: whether a facilitator is here",
                id
            );
            prop_assert!(
                view.room.chat.ends_with(&fresh.chat),
                "{}: chat history {:?} is not the tail of what was shown {:?}",
                id,
                fresh.chat,
                view.room.chat
            );
            prop_assert!(fresh.chat.len() <= self.chat_history);
            if room.is_waiting(id) {
                prop_assert!(
                    view.room.chat.is_empty(),
                    "{} saw chat from the waiting room",
                    id
                );
            }
            prop_assert_eq!(view.heard, room.may_be_heard(id), "{}: hearing message", id);
        }
        // The relay's feed, replayed, says the same as the room for everyone.
        let mut relay: BTreeMap<&ParticipantId, bool> = BTreeMap::new();
        for (who, heard) in &self.sim.hearing {
            relay.insert(who, *heard);
        }
        for id in &self.ever {
            prop_assert_eq!(
                relay.get(id).copied().unwrap_or(false),
                room.may_be_heard(id),
                "relay feed for {}",
                id
            );
        }
        // Everyone present has exactly one of: a live connection, a dropped one in its grace period.
        for id in &self.ever {
            let here = room.role_of(id).is_some();
            let connected = self.clients.contains_key(id);
            let dropped = self.dropped.contains(id);
            prop_assert_eq!(
                here,
                connected ^ dropped,
                "{}: here {}, connected {}, dropped {}",
                id,
                here,
                connected,
                dropped
            );
        }
        if room.is_ended() {
            prop_assert!(present.is_empty() && self.clients.is_empty() && self.dropped.is_empty());
            return Ok(());
        }
        // A facilitator's full view agrees with itself and with the driver.
        let facilitator = present
            .iter()
            .find(|p| room.role_of(p) == Some(Role::Facilitator) && !room.is_waiting(p));
        if let Some(f) = facilitator {
            let full = room.snapshot_for(f);
            let ids: BTreeSet<_> = full.participants.iter().map(|p| p.id.clone()).collect();
            prop_assert_eq!(&ids, &present.iter().cloned().collect(), "full roster");
            let (mut members, mut facilitators, mut waiting) = (0, 0, 0);
            let mut hands = BTreeSet::new();
            for p in &full.participants {
                let expected = if room.is_waiting(&p.id) {
                    Presence::Waiting
                } else if self.clients.contains_key(&p.id) {
                    Presence::Online
                } else {
                    Presence::Reconnecting
                };
                prop_assert_eq!(p.presence, expected, "presence of {}", p.id);
                match (p.presence, p.role) {
                    (Presence::Waiting, _) => waiting += 1,
                    (_, Role::Facilitator) => facilitators += 1,
                    (_, Role::Member) => members += 1,
                }
                if p.role == Role::Facilitator {
                    prop_assert!(!p.muted_by_facilitator && p.chat_allowed, "{:?}", p);
                }
                if room.may_be_heard(&p.id) {
                    prop_assert!(
                        p.presence == Presence::Online && !p.self_muted && !p.muted_by_facilitator,
                        "{:?} may be heard",
                        p
                    );
                }
                if let Some(at) = p.hand_raised_at {
                    hands.insert((p.id.clone(), at));
                }
            }
            let counts = full.counts.expect("an admitted participant sees counts");
            prop_assert_eq!(
                (counts.members, counts.facilitators, counts.waiting),
                (members, facilitators, waiting)
            );
            // The queue is exactly the raised hands, once each, of people admitted to the room.
            let mut queue = BTreeSet::new();
            for q in &full.floor.queue {
                let id = q.participant.clone().expect("facilitators see every name");
                prop_assert!(!room.is_waiting(&id), "{} queued from the waiting room", id);
                prop_assert!(queue.insert((id, q.raised_at)), "queued twice");
            }
            prop_assert_eq!(queue, hands, "queue vs raised hands");
            if let Some(s) = &full.floor.speaker {
                prop_assert!(
                    ids.contains(&s.participant),
                    "speaker {} is gone",
                    s.participant
                );
                prop_assert!(!room.is_waiting(&s.participant), "speaker is waiting");
            }
        }
        // Members under roster privacy see only themselves and the facilitators; the waiting room
        // sees only itself.
        for id in &present {
            let snap = room.snapshot_for(id);
            if room.is_waiting(id) {
                prop_assert_eq!(
                    snap.participants.iter().map(|p| &p.id).collect::<Vec<_>>(),
                    vec![id]
                );
                prop_assert!(snap.counts.is_none() && snap.chat.is_empty());
                prop_assert!(snap.floor.speaker.is_none() && snap.floor.queue.is_empty());
            } else if room.settings().roster_privacy && room.role_of(id) == Some(Role::Member) {
                for p in &snap.participants {
                    prop_assert!(
                        &p.id == id || p.role == Role::Facilitator,
                        "{} sees member {}",
                        id,
                        p.id
                    );
                }
                for q in &snap.floor.queue {
                    prop_assert_eq!(q.participant.is_none(), q.name.is_none());
                    if let Some(p) = &q.participant {
                        prop_assert!(
                            p == id || room.role_of(p) == Some(Role::Facilitator),
                            "{} sees member {} in the queue",
                            id,
                            p
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// Ends the meeting, if someone can: everyone present is told and closed.
    fn end(&mut self) -> Check {
        if self.sim.room.is_ended() {
            return Ok(());
        }
        let present = self.present();
        let Some(closer) = present
            .iter()
            .find(|p| {
                self.sim.room.role_of(p) == Some(Role::Facilitator) && !self.sim.room.is_waiting(p)
            })
            .cloned()
        else {
            return Ok(());
        };
        self.sim.ok(&closer, Command::EndMeeting);
        for id in self.clients.keys() {
            prop_assert!(
                self.sim.got(id).contains(&ServerMsg::MeetingEnded),
                "{}",
                id
            );
        }
        let mut closed = Vec::new();
        for (p, r) in &self.sim.closed {
            prop_assert_eq!(*r, LeaveReason::MeetingEnded);
            closed.push(p.clone());
        }
        closed.sort();
        let mut present = present;
        present.sort();
        prop_assert_eq!(closed, present);
        self.deliver()?;
        self.check()
    }
}

fn meeting(settings: Settings, limits: RoomLimits, ops: &[Op]) -> Check {
    let mut m = Meeting::new(settings, limits);
    m.deliver()?;
    m.check()?;
    for op in ops {
        m.step(op)?;
        m.check()?;
    }
    m.end()
}

proptest! {
    #![proptest_config(cases(64))]

    /// Whole random meetings, from any starting settings and small limits (so "full" happens).
    #[test]
    fn random_meetings_keep_their_invariants(
        settings in room_settings(),
        limits in limits(),
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        meeting(settings, limits, &ops)?;
    }

}

proptest! {
    #![proptest_config(cases(16))]

    /// Long meetings in a busy open room: many people, much chat, timers firing.
    #[test]
    fn long_open_meetings_keep_their_invariants(
        ops in proptest::collection::vec(op(), 200..400),
    ) {
        let limits = RoomLimits { max_participants: 12, chat_history: 4, grace_ms: 20_000 };
        meeting(open_room(), limits, &ops)?;
    }
}
