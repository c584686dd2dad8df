//! The random meetings of the property tests (`fuzz_room.rs`, `state.rs`): proptest strategies for
//! whole sequences of joins, dropped connections, resumes, clock jumps and commands from random
//! senders, and how a generated operation names real people in a room ([`resolve`], [`command`]).

use super::MAX_CHAT_CHARS;
use circle_protocol::{ConnectionLevel, ParticipantId, Reaction, Role, Settings, SettingsPatch};
use circle_room::{ChatText, Command, Room, RoomLimits};
use proptest::prelude::*;

/// Who an operation names. Indices wrap around the matching people, so shrinking keeps them valid.
#[derive(Clone, Debug)]
pub enum Who {
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
pub enum Cmd {
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
pub enum Op {
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

pub fn who() -> impl Strategy<Value = Who> {
    prop_oneof![
        6 => any::<usize>().prop_map(Who::Present),
        2 => any::<usize>().prop_map(Who::Facilitator),
        2 => any::<usize>().prop_map(Who::Ever),
        1 => Just(Who::Unknown),
    ]
}

/// The sender of a command: mostly a facilitator, so facilitator commands often get through.
pub fn sender() -> impl Strategy<Value = Who> {
    prop_oneof![
        5 => any::<usize>().prop_map(Who::Facilitator),
        5 => any::<usize>().prop_map(Who::Present),
        1 => any::<usize>().prop_map(Who::Ever),
        1 => Just(Who::Unknown),
    ]
}

/// Text as a person might type it, or not: empty, blank, control characters, over the limit.
pub fn typed_text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-z ]{1,12}",
        1 => ".{0,20}",
        1 => "[ \t\n\u{7}\u{200b}a]{0,4}",
        1 => Just("x".repeat(MAX_CHAT_CHARS + 1)),
    ]
}

/// A pseudonym as typed: mostly short names that clash ignoring case and spacing, sometimes invalid.
pub fn typed_name() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => ("(Ann|ben|Cas|Dee|Eli)", "( |  |\u{a0})?", "[0-9]?").prop_map(|(a, b, c)| format!("{a}{b}{c}")),
        1 => "(ANN|Ben |  cas)",
        1 => ".{0,34}",
        1 => "[ a\u{0}\u{202e}\u{200b}\u{1f600}]{0,4}",
    ]
}

pub fn maybe_bool() -> impl Strategy<Value = Option<bool>> {
    proptest::option::of(any::<bool>())
}

pub fn secs() -> impl Strategy<Value = u32> {
    prop_oneof![4 => 0..40u32, 1 => any::<u32>()]
}

pub fn patch() -> impl Strategy<Value = SettingsPatch> {
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

pub fn cmd() -> impl Strategy<Value = Cmd> {
    prop_oneof![
        1 => Just(Cmd::Leave),
        4 => Just(Cmd::RaiseHand),
        2 => proptest::option::of(who()).prop_map(Cmd::LowerHand),
        3 => any::<bool>().prop_map(Cmd::SetSelfMute),
        4 => typed_text().prop_map(Cmd::Chat),
        2 => (typed_text(), proptest::option::of(who())).prop_map(|(t, w)| Cmd::ChatPrivate(t, w)),
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

pub fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (typed_name(), proptest::bool::weighted(0.15), proptest::option::of(0..8u8))
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

pub fn room_settings() -> impl Strategy<Value = Settings> {
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

pub fn limits() -> impl Strategy<Value = RoomLimits> {
    (2..10usize, 1..6usize).prop_map(|(max_participants, chat_history)| RoomLimits {
        max_participants,
        chat_history,
        grace_ms: 20_000,
    })
}

/// Everyone present, in the order they first joined.
pub fn present(room: &Room, ever: &[ParticipantId]) -> Vec<ParticipantId> {
    ever.iter()
        .filter(|p| room.role_of(p).is_some())
        .cloned()
        .collect()
}

/// The participant a [`Who`] names in this room now; `None` when there is nobody to name.
pub fn resolve(room: &Room, ever: &[ParticipantId], who: &Who) -> Option<ParticipantId> {
    let pick =
        |ids: Vec<ParticipantId>, i: usize| (!ids.is_empty()).then(|| ids[i % ids.len()].clone());
    match who {
        Who::Present(i) => pick(present(room, ever), *i),
        Who::Facilitator(i) => {
            let f: Vec<_> = present(room, ever)
                .into_iter()
                .filter(|p| room.role_of(p) == Some(Role::Facilitator))
                .collect();
            if f.is_empty() {
                pick(present(room, ever), *i)
            } else {
                pick(f, *i)
            }
        }
        Who::Ever(i) => pick(ever.to_vec(), *i),
        Who::Unknown => Some(ParticipantId("nobody".into())),
    }
}

/// Like [`resolve`], naming an unknown id when there is nobody.
pub fn target(room: &Room, ever: &[ParticipantId], who: &Who) -> ParticipantId {
    resolve(room, ever, who).unwrap_or_else(|| ParticipantId("nobody".into()))
}

/// The command as the edge would build it; `None` when the edge would refuse its text.
pub fn command(room: &Room, ever: &[ParticipantId], cmd: &Cmd) -> Option<Command> {
    let text = |s: &str| ChatText::parse(s, MAX_CHAT_CHARS).ok();
    let t = |w: &Who| target(room, ever, w);
    Some(match cmd {
        Cmd::Leave => Command::Leave,
        Cmd::RaiseHand => Command::RaiseHand,
        Cmd::LowerHand(w) => Command::LowerHand(w.as_ref().map(t)),
        Cmd::SetSelfMute(m) => Command::SetSelfMute(*m),
        Cmd::Chat(s) => Command::Chat(text(s)?),
        Cmd::ChatPrivate(s, to) => Command::ChatPrivate {
            text: text(s)?,
            to: to.as_ref().map(t),
        },
        Cmd::Admit(w) => Command::Admit(t(w)),
        Cmd::AdmitAll => Command::AdmitAll,
        Cmd::Deny(w) => Command::Deny(t(w)),
        Cmd::NextSpeaker => Command::NextSpeaker,
        Cmd::GiveFloor(w) => Command::GiveFloor(t(w)),
        Cmd::TakeFloor => Command::TakeFloor,
        Cmd::MoveHand(w, p) => Command::MoveHand {
            participant: t(w),
            position: *p,
        },
        Cmd::LowerAllHands => Command::LowerAllHands,
        Cmd::Mute(w) => Command::Mute(t(w)),
        Cmd::MuteAll => Command::MuteAll,
        Cmd::AllowSpeak(w) => Command::AllowSpeak(t(w)),
        Cmd::Remove(w) => Command::Remove(t(w)),
        Cmd::Ban(w) => Command::Ban(t(w)),
        Cmd::Promote(w) => Command::Promote(t(w)),
        Cmd::Demote(w) => Command::Demote(t(w)),
        Cmd::DeleteChat(id) => Command::DeleteChat(*id),
        Cmd::SetChatAllowed(w, allowed) => Command::SetChatAllowed {
            participant: t(w),
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

/// proptest's settings with a default case count small enough for `make test` in a debug build;
/// `PROPTEST_CASES` still decides for a long run.
pub fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    ProptestConfig::with_cases(cases)
}
