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
    ConnectionLevel, LeaveReason, ParticipantId, Presence, Reaction, Role, RoomSnapshot, ServerMsg,
    Settings, SettingsPatch,
};
use circle_room::{ChatText, Command, Output, Pseudonym, RoomError, RoomLimits};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use support::*;

/// Who an operation names. Indices wrap around the matching people, so shrinking keeps them valid.
#[derive(Clone, Debug)]
enum Who {
    /// Someone in the room or its waiting room.
    Present(usize),
    /// Someone present with the facilitator role.
    Facilitator(usize),
    /// Anyone who ever joined, gone or not.
    Ever(usize),
    /// An id the room never gave out.
    Unknown,
}

/// A command, with its targets still to be resolved.
#[derive(Clone, Debug)]
enum Cmd {
    React(u8),
    Quality(u8),
    Leave,
    RaiseHand,
    LowerHand(Option<Who>),
    SetSelfMute(bool),
    Chat(String),
    ChatPrivate(String, Option<Who>),
    Admit(Who),
    AdmitAll,
    Deny(Who),
    NextSpeaker,
    GiveFloor(Who),
    TakeFloor,
    MoveHand(Who, usize),
    LowerAllHands,
    Mute(Who),
    MuteAll,
    AllowSpeak(Who),
    Remove(Who),
    Ban(Who),
    Promote(Who),
    Demote(Who),
    DeleteChat(u64),
    SetChatAllowed(Who, bool),
    UpdateSettings(SettingsPatch),
    EndMeeting,
}

#[derive(Clone, Debug)]
enum Op {
    /// A join from the edge: a typed name, the facilitator secret or not, a device id or none.
    Join {
        name: String,
        facilitator: bool,
        device: Option<u8>,
    },
    /// The connection drops without a goodbye (or the driver drops a slow one).
    Drop(Who),
    /// A connection comes back with this participant's valid token.
    Resume(Who),
    /// The clock moves this many milliseconds; due timers fire.
    Wait(u64),
    /// A command from someone.
    Send(Who, Cmd),
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![
        6 => any::<usize>().prop_map(Who::Present),
        2 => any::<usize>().prop_map(Who::Facilitator),
        2 => any::<usize>().prop_map(Who::Ever),
        1 => Just(Who::Unknown),
    ]
}

/// The sender of a command: mostly a facilitator, so facilitator commands often get through.
fn sender() -> impl Strategy<Value = Who> {
    prop_oneof![
        5 => any::<usize>().prop_map(Who::Facilitator),
        5 => any::<usize>().prop_map(Who::Present),
        1 => any::<usize>().prop_map(Who::Ever),
        1 => Just(Who::Unknown),
    ]
}

/// Text as a person might type it, or not: empty, blank, control characters, over the limit.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-z ]{1,12}",
        1 => ".{0,20}",
        1 => "[ \t\n\u{7}\u{200b}a]{0,4}",
        1 => Just("x".repeat(MAX_CHAT_CHARS + 1)),
    ]
}

/// A pseudonym as typed: mostly short names that clash ignoring case and spacing, sometimes invalid.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => ("(Ann|ben|Cas|Dee|Eli)", "( |  |\u{a0})?", "[0-9]?").prop_map(|(a, b, c)| format!("{a}{b}{c}")),
        1 => "(ANN|Ben |  cas)",
        1 => ".{0,34}",
        1 => "[ a\u{0}\u{202e}\u{200b}\u{1f600}]{0,4}",
    ]
}

fn maybe_bool() -> impl Strategy<Value = Option<bool>> {
    proptest::option::of(any::<bool>())
}

fn secs() -> impl Strategy<Value = u32> {
    prop_oneof![4 => 0..40u32, 1 => any::<u32>()]
}

fn patch() -> impl Strategy<Value = SettingsPatch> {
    (
        (maybe_bool(), maybe_bool(), maybe_bool(), maybe_bool()),
        (proptest::option::of(secs()), proptest::option::of(secs())),
        (
            maybe_bool(),
            maybe_bool(),
            proptest::option::weighted(0.1, any::<bool>()),
            maybe_bool(),
        ),
    )
        .prop_map(
            |(
                (waiting_room, roster_privacy, one_speaker, mute_on_entry),
                (share_secs, share_warning_secs),
                (auto_end_share, chat_enabled, locked, reactions),
            )| SettingsPatch {
                waiting_room,
                roster_privacy,
                one_speaker,
                mute_on_entry,
                share_secs,
                share_warning_secs,
                auto_end_share,
                chat_enabled,
                locked,
                reactions,
            },
        )
}

fn cmd() -> impl Strategy<Value = Cmd> {
    prop_oneof![
        1 => Just(Cmd::Leave),
        4 => Just(Cmd::RaiseHand),
        2 => proptest::option::of(who()).prop_map(Cmd::LowerHand),
        3 => any::<bool>().prop_map(Cmd::SetSelfMute),
        4 => text().prop_map(Cmd::Chat),
        2 => (text(), proptest::option::of(who())).prop_map(|(t, w)| Cmd::ChatPrivate(t, w)),
        3 => who().prop_map(Cmd::Admit),
        1 => Just(Cmd::AdmitAll),
        1 => who().prop_map(Cmd::Deny),
        2 => Just(Cmd::NextSpeaker),
        2 => who().prop_map(Cmd::GiveFloor),
        1 => Just(Cmd::TakeFloor),
        1 => (who(), prop_oneof![0..5usize, any::<usize>()]).prop_map(|(w, p)| Cmd::MoveHand(w, p)),
        1 => Just(Cmd::LowerAllHands),
        2 => who().prop_map(Cmd::Mute),
        1 => Just(Cmd::MuteAll),
        2 => who().prop_map(Cmd::AllowSpeak),
        1 => who().prop_map(Cmd::Remove),
        1 => who().prop_map(Cmd::Ban),
        1 => who().prop_map(Cmd::Promote),
        1 => who().prop_map(Cmd::Demote),
        1 => prop_oneof![0..12u64, any::<u64>()].prop_map(Cmd::DeleteChat),
        1 => (who(), any::<bool>()).prop_map(|(w, a)| Cmd::SetChatAllowed(w, a)),
        2 => patch().prop_map(Cmd::UpdateSettings),
        2 => any::<u8>().prop_map(Cmd::React),
        1 => any::<u8>().prop_map(Cmd::Quality),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (name(), proptest::bool::weighted(0.15), proptest::option::of(0..8u8))
            .prop_map(|(name, facilitator, device)| Op::Join { name, facilitator, device }),
        2 => who().prop_map(Op::Drop),
        2 => who().prop_map(Op::Resume),
        2 => prop_oneof![0..25_000u64, 0..120_000u64].prop_map(Op::Wait),
        16 => (sender(), cmd()).prop_map(|(w, c)| Op::Send(w, c)),
        // Rare, since everything after it is refused.
        1 => (sender(), proptest::bool::weighted(0.2)).prop_map(|(w, end)| {
            Op::Send(w, if end { Cmd::EndMeeting } else { Cmd::TakeFloor })
        }),
    ]
}

fn room_settings() -> impl Strategy<Value = Settings> {
    (
        (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
        (
            proptest::option::of(0..40u32),
            0..10u32,
            any::<bool>(),
            proptest::bool::weighted(0.9),
        ),
    )
        .prop_map(
            |(
                (waiting_room, roster_privacy, one_speaker, mute_on_entry),
                (share_secs, share_warning_secs, auto_end_share, chat_enabled),
            )| Settings {
                waiting_room,
                roster_privacy,
                one_speaker,
                mute_on_entry,
                share_secs,
                share_warning_secs,
                auto_end_share,
                chat_enabled,
                locked: false,
                reactions: true,
            },
        )
}

fn limits() -> impl Strategy<Value = RoomLimits> {
    (2..10usize, 1..6usize).prop_map(|(max_participants, chat_history)| RoomLimits {
        max_participants,
        chat_history,
        grace_ms: 20_000,
    })
}

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
        self.ever
            .iter()
            .filter(|p| self.sim.room.role_of(p).is_some())
            .cloned()
            .collect()
    }

    fn resolve(&self, who: &Who) -> Option<ParticipantId> {
        let pick = |ids: Vec<ParticipantId>, i: usize| {
            (!ids.is_empty()).then(|| ids[i % ids.len()].clone())
        };
        match who {
            Who::Present(i) => pick(self.present(), *i),
            Who::Facilitator(i) => {
                let f: Vec<_> = self
                    .present()
                    .into_iter()
                    .filter(|p| self.sim.room.role_of(p) == Some(Role::Facilitator))
                    .collect();
                if f.is_empty() {
                    pick(self.present(), *i)
                } else {
                    pick(f, *i)
                }
            }
            Who::Ever(i) => pick(self.ever.clone(), *i),
            Who::Unknown => Some(ParticipantId("nobody".into())),
        }
    }

    fn target(&self, who: &Who) -> ParticipantId {
        self.resolve(who)
            .unwrap_or_else(|| ParticipantId("nobody".into()))
    }

    /// The command as the edge would build it; `None` when the edge would refuse its text.
    fn command(&self, cmd: &Cmd) -> Option<Command> {
        let text = |s: &str| ChatText::parse(s, MAX_CHAT_CHARS).ok();
        Some(match cmd {
            Cmd::Leave => Command::Leave,
            Cmd::RaiseHand => Command::RaiseHand,
            Cmd::LowerHand(w) => Command::LowerHand(w.as_ref().map(|w| self.target(w))),
            Cmd::SetSelfMute(m) => Command::SetSelfMute(*m),
            Cmd::Chat(s) => Command::Chat(text(s)?),
            Cmd::ChatPrivate(s, to) => Command::ChatPrivate {
                text: text(s)?,
                to: to.as_ref().map(|w| self.target(w)),
            },
            Cmd::Admit(w) => Command::Admit(self.target(w)),
            Cmd::AdmitAll => Command::AdmitAll,
            Cmd::Deny(w) => Command::Deny(self.target(w)),
            Cmd::NextSpeaker => Command::NextSpeaker,
            Cmd::GiveFloor(w) => Command::GiveFloor(self.target(w)),
            Cmd::TakeFloor => Command::TakeFloor,
            Cmd::MoveHand(w, p) => Command::MoveHand {
                participant: self.target(w),
                position: *p,
            },
            Cmd::LowerAllHands => Command::LowerAllHands,
            Cmd::Mute(w) => Command::Mute(self.target(w)),
            Cmd::MuteAll => Command::MuteAll,
            Cmd::AllowSpeak(w) => Command::AllowSpeak(self.target(w)),
            Cmd::Remove(w) => Command::Remove(self.target(w)),
            Cmd::Ban(w) => Command::Ban(self.target(w)),
            Cmd::Promote(w) => Command::Promote(self.target(w)),
            Cmd::Demote(w) => Command::Demote(self.target(w)),
            Cmd::DeleteChat(id) => Command::DeleteChat(*id),
            Cmd::SetChatAllowed(w, allowed) => Command::SetChatAllowed {
                participant: self.target(w),
                allowed: *allowed,
            },
            Cmd::UpdateSettings(p) => Command::UpdateSettings(p.clone()),
            Cmd::EndMeeting => Command::EndMeeting,
            Cmd::React(r) => Command::React(
                [
                    Reaction::Thanks,
                    Reaction::MeToo,
                    Reaction::Heart,
                    Reaction::Clap,
                ][usize::from(*r) % 4],
            ),
            Cmd::Quality(l) => Command::ReportQuality(
                [
                    ConnectionLevel::Good,
                    ConnectionLevel::Fair,
                    ConnectionLevel::Poor,
                ][usize::from(*l) % 3],
            ),
        })
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

/// proptest's settings with a default case count small enough for `make test` in a debug build;
/// `PROPTEST_CASES` still decides for a long run.
fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    ProptestConfig::with_cases(cases)
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
