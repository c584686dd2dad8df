//! Long, seeded runs of random but deterministic meetings. After every step, each connected
//! participant's view of the room, built only from the messages they received, must equal what a
//! fresh snapshot would show them; the media relay's feed must match `may_be_heard`; and a refused
//! request must change nothing. This is what keeps every client showing the same meeting.

mod support;

use circle_protocol::{
    LeaveReason, ParticipantId, RoomSnapshot, ServerMsg, Settings, SettingsPatch,
};
use circle_room::{Command, RoomError, RoomLimits};
use std::collections::BTreeMap;
use support::*;

/// A tiny deterministic generator (xorshift64*), so the runs need no extra dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn maybe_bool(&mut self) -> Option<bool> {
        match self.below(4) {
            0 => Some(true),
            1 => Some(false),
            _ => None,
        }
    }
}

struct Run {
    sim: Sim,
    rng: Rng,
    /// Everyone who ever joined, present or not: targets for commands, resumes of the departed.
    ever: Vec<ParticipantId>,
    /// The client views of those whose connection is up.
    clients: BTreeMap<ParticipantId, ClientView>,
    /// Those whose connection dropped, inside their grace period as far as the driver knows.
    dropped: Vec<ParticipantId>,
    names: u32,
    chat_history: usize,
}

const NAMES: &[&str] = &[
    "Ann", "ben", "Cas", "Dee", "Eli", "Fay", "Gus", "Hal", "Ivy", "Jo",
];

impl Run {
    fn new(seed: u64, settings: Settings) -> Self {
        let limits = RoomLimits {
            max_participants: 9,
            chat_history: 4,
            grace_ms: 20_000,
        };
        let chat_history = limits.chat_history;
        let mut run = Self {
            sim: Sim::with(settings, limits),
            rng: Rng(seed),
            ever: Vec::new(),
            clients: BTreeMap::new(),
            dropped: Vec::new(),
            names: 0,
            chat_history,
        };
        let host = run.sim.facilitator("Host");
        run.ever.push(host.clone());
        run.clients.insert(host, ClientView::new());
        run.deliver();
        run
    }

    fn deliver(&mut self) {
        let ids: Vec<_> = self.clients.keys().cloned().collect();
        for id in ids {
            let msgs = self.sim.take(&id);
            let view = self.clients.get_mut(&id).unwrap();
            for m in &msgs {
                view.apply(m);
            }
        }
        for (who, reason) in std::mem::take(&mut self.sim.closed) {
            assert!(
                self.clients.remove(&who).is_some() || self.dropped.contains(&who),
                "closed {who} ({reason:?}), who had no connection"
            );
            self.dropped.retain(|d| d != &who);
        }
    }

    /// A target: mostly someone present, sometimes someone gone, rarely nobody at all.
    fn someone(&mut self) -> ParticipantId {
        let present: Vec<_> = self
            .ever
            .iter()
            .filter(|p| self.sim.room.role_of(p).is_some())
            .cloned()
            .collect();
        match self.rng.below(20) {
            0 => "nobody".into(),
            1 | 2 => self.rng.pick(&self.ever).clone(),
            _ if !present.is_empty() => self.rng.pick(&present).clone(),
            _ => self.rng.pick(&self.ever).clone(),
        }
    }

    /// Mostly a connected facilitator, so facilitator commands usually get through.
    fn sender(&mut self) -> Option<ParticipantId> {
        let facilitators: Vec<_> = self
            .clients
            .keys()
            .filter(|p| self.sim.room.role_of(p) == Some(circle_protocol::Role::Facilitator))
            .cloned()
            .collect();
        if !facilitators.is_empty() && self.rng.chance(60) {
            return Some(self.rng.pick(&facilitators).clone());
        }
        self.connected()
    }

    fn connected(&mut self) -> Option<ParticipantId> {
        let ids: Vec<_> = self.clients.keys().cloned().collect();
        (!ids.is_empty()).then(|| self.rng.pick(&ids).clone())
    }

    fn random_command(&mut self) -> Command {
        let t = self.someone();
        match self.rng.below(32) {
            0 if self.rng.chance(30) => Command::Leave,
            0..=2 => Command::RaiseHand,
            3 => Command::LowerHand(None),
            4 => Command::LowerHand(Some(t)),
            5 | 26 | 27 => Command::SetSelfMute(self.rng.chance(30)),
            6 | 7 | 28 => chat(&format!("line {}", self.rng.below(1000))),
            29 => Command::AllowSpeak(t),
            30 => Command::GiveFloor(t),
            31 => Command::Admit(t),
            8 => Command::ChatPrivate {
                text: text("private"),
                to: self.rng.chance(50).then_some(t),
            },
            9 => Command::Admit(t),
            10 => Command::AdmitAll,
            11 => Command::Deny(t),
            12 => Command::NextSpeaker,
            13 => Command::GiveFloor(t),
            14 => Command::TakeFloor,
            15 => Command::MoveHand {
                participant: t,
                position: self.rng.below(5),
            },
            16 => Command::LowerAllHands,
            17 => Command::Mute(t),
            18 => Command::MuteAll,
            19 => Command::AllowSpeak(t),
            20 if self.rng.chance(40) => {
                if self.rng.chance(50) {
                    Command::Remove(t)
                } else {
                    Command::Ban(t)
                }
            }
            21 => Command::Promote(t),
            22 => Command::Demote(t),
            23 => Command::DeleteChat(self.rng.below(12) as u64),
            24 => Command::SetChatAllowed {
                participant: t,
                allowed: self.rng.chance(50),
            },
            _ => Command::UpdateSettings(SettingsPatch {
                waiting_room: self.rng.maybe_bool(),
                roster_privacy: self.rng.maybe_bool(),
                one_speaker: self.rng.maybe_bool(),
                mute_on_entry: self.rng.maybe_bool(),
                share_secs: self.rng.chance(20).then(|| self.rng.below(3) as u32 * 20),
                share_warning_secs: self.rng.chance(10).then(|| self.rng.below(3) as u32 * 5),
                auto_end_share: self.rng.maybe_bool(),
                chat_enabled: self.rng.maybe_bool(),
                locked: self.rng.chance(10).then(|| self.rng.chance(30)),
                reactions: self.rng.maybe_bool(),
            }),
        }
    }

    /// What everyone present would be shown now.
    fn all_views(&self) -> Vec<RoomSnapshot> {
        self.ever
            .iter()
            .filter(|p| self.sim.room.role_of(p).is_some())
            .map(|p| self.sim.snapshot(p))
            .collect()
    }

    fn step(&mut self) {
        match self.rng.below(20) {
            0 | 1 => {
                self.names += 1;
                let base = *self.rng.pick(NAMES);
                // Some names clash on purpose, ignoring case.
                let name = if self.rng.chance(30) {
                    base.to_uppercase()
                } else {
                    format!("{base}{}", self.names)
                };
                let facilitator = self.rng.chance(15);
                let device = format!("dev-{}", self.rng.below(12));
                if let Ok((id, joined)) = self.sim.try_join(&name, facilitator, Some(&device)) {
                    // The same name from the same device takes up that place, as a resume would;
                    // the earlier connection, if any, is replaced by this one.
                    if joined.resumed {
                        self.dropped.retain(|d| d != &id);
                    } else {
                        self.ever.push(id.clone());
                    }
                    self.clients.insert(id, ClientView::new());
                }
            }
            2 => {
                if let Some(id) = self.connected() {
                    self.clients.remove(&id);
                    self.dropped.push(id.clone());
                    self.sim.disconnect(&id);
                    assert!(!self.sim.room.may_be_heard(&id));
                }
            }
            3 => {
                let id = self.someone();
                if !self.clients.contains_key(&id) {
                    match self.sim.resume(&id) {
                        Ok(_) => {
                            self.dropped.retain(|d| d != &id);
                            self.clients.insert(id, ClientView::new());
                        }
                        Err(e) => assert!(
                            matches!(e, RoomError::SessionGone | RoomError::Banned),
                            "{e:?}"
                        ),
                    }
                }
            }
            6 => {
                self.speakers_step();
                return;
            }
            4 | 5 => {
                let ms = self.rng.below(25_000) as u64;
                let until = self.sim.now + ms;
                self.sim.run_until(until);
                if let Some(next) = self.sim.room.poll_timeout() {
                    assert!(next > self.sim.now, "a due timer was left unfired");
                }
            }
            _ => {
                let Some(from) = self.sender() else { return };
                let cmd = self.random_command();
                let before = self.sim.log.len();
                let snapshots = self.all_views();
                if let Err(e) = self.sim.cmd(&from, cmd.clone()) {
                    assert_eq!(
                        self.sim.log.len(),
                        before,
                        "{cmd:?} failed with {e:?} yet sent something"
                    );
                    let after = self.all_views();
                    assert_eq!(
                        snapshots, after,
                        "{cmd:?} failed with {e:?} yet changed the room"
                    );
                }
            }
        }
        self.deliver();
    }

    /// The relay reports some people speaking (anyone who ever joined, present or not); each
    /// admitted client is told exactly the speakers its roster shows, plus the floor holder.
    fn speakers_step(&mut self) {
        let speaking: Vec<ParticipantId> = self
            .ever
            .iter()
            .filter(|_| self.rng.chance(40))
            .cloned()
            .collect();
        for view in self.clients.values_mut() {
            view.speakers = None;
        }
        self.sim.room.announce_speakers(&speaking);
        self.sim.pump();
        self.deliver();
        for (id, view) in &self.clients {
            let admitted = self.sim.room.role_of(id).is_some() && !self.sim.room.is_waiting(id);
            let Some(told) = &view.speakers else {
                assert!(!admitted, "{id} is admitted and was not told who speaks");
                continue;
            };
            assert!(admitted, "{id} waits, yet was told who speaks");
            let floor = view.room.floor.speaker.as_ref().map(|s| &s.participant);
            let expected: Vec<ParticipantId> = speaking
                .iter()
                .filter(|s| {
                    let admitted =
                        self.sim.room.role_of(s).is_some() && !self.sim.room.is_waiting(s);
                    admitted
                        && (view.room.participants.iter().any(|p| &p.id == *s) || floor == Some(*s))
                })
                .cloned()
                .collect();
            assert_eq!(told, &expected, "{id}: speakers");
        }
    }

    fn check(&self, step: usize) {
        let room = &self.sim.room;
        for (id, view) in &self.clients {
            let fresh = room.snapshot_for(id);
            let ctx = format!("step {step}, {id}");
            assert_eq!(view.room.title, fresh.title, "{ctx}");
            assert_eq!(view.room.settings, fresh.settings, "{ctx}: settings");
            assert_eq!(view.room.counts, fresh.counts, "{ctx}: counts");
            assert_eq!(
                by_id(view.room.participants.clone()),
                by_id(fresh.participants.clone()),
                "{ctx}: roster"
            );
            assert_eq!(view.room.floor, fresh.floor, "{ctx}: floor");
            assert_eq!(
                view.room.facilitator_present, fresh.facilitator_present,
                "{ctx}: whether a facilitator is here"
            );
            assert!(
                view.room.chat.ends_with(&fresh.chat),
                "{ctx}: chat history {:?} is not the tail of what was shown {:?}",
                fresh.chat,
                view.room.chat
            );
            assert!(fresh.chat.len() <= self.chat_history);
            assert_eq!(view.heard, room.may_be_heard(id), "{ctx}: hearing message");
        }
        // The relay's feed, replayed, says the same as the room for everyone.
        let mut relay: BTreeMap<&ParticipantId, bool> = BTreeMap::new();
        for (who, heard) in &self.sim.hearing {
            relay.insert(who, *heard);
        }
        for id in &self.ever {
            assert_eq!(
                relay.get(id).copied().unwrap_or(false),
                room.may_be_heard(id),
                "step {step}: relay feed for {id}"
            );
        }
    }
}

fn run(seed: u64, settings: Settings, steps: usize) {
    let mut run = Run::new(seed, settings);
    run.check(0);
    for step in 1..=steps {
        run.step();
        run.check(step);
    }
    // End it: everyone still connected is told, and every connection closes.
    let closer = run
        .clients
        .keys()
        .find(|p| run.sim.room.role_of(p) == Some(circle_protocol::Role::Facilitator))
        .cloned();
    let Some(closer) = closer else { return };
    let present: Vec<_> = run
        .ever
        .iter()
        .filter(|p| run.sim.room.role_of(p).is_some())
        .cloned()
        .collect();
    run.sim.ok(&closer, Command::EndMeeting);
    for id in run.clients.keys() {
        assert!(run.sim.got(id).contains(&ServerMsg::MeetingEnded), "{id}");
    }
    let mut closed: Vec<_> = run
        .sim
        .closed
        .iter()
        .map(|(p, r)| {
            assert_eq!(*r, LeaveReason::MeetingEnded);
            p.clone()
        })
        .collect();
    closed.sort();
    let mut present = present;
    present.sort();
    assert_eq!(closed, present);
}

#[test]
fn random_meetings_keep_every_client_in_step() {
    for seed in 1..=20u64 {
        run(
            seed.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            Settings::default(),
            300,
        );
    }
}

#[test]
fn random_meetings_with_roster_privacy_and_one_speaker() {
    let settings = Settings {
        roster_privacy: true,
        one_speaker: true,
        mute_on_entry: false,
        share_secs: Some(20),
        share_warning_secs: 5,
        auto_end_share: true,
        ..Settings::default()
    };
    for seed in 1..=20u64 {
        run(
            seed.wrapping_mul(0xD1B5_4A32_D192_ED03),
            settings.clone(),
            300,
        );
    }
}

#[test]
fn random_open_meetings() {
    for seed in 1..=20u64 {
        run(seed.wrapping_mul(0x94D0_49BB_1331_11EB), open_room(), 300);
    }
}
