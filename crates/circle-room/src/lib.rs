//! A Circle room as a state machine: participants, waiting room, speaking order, mute state, chat log
//! and moderation. No tokio, no sockets, no clock of its own.
//!
//! # Layout
//! - [`Room`] (this file): the state, the dispatch of a [`Command`], timers and the outbox.
//! - `participants.rs`: join, resume, disconnect, leave, admit / deny, remove / ban, promote / demote.
//! - `floor.rs`: raised hands, the floor, the share timer.
//! - `muting.rs`: self mute, facilitator mute, mute all, allow to speak, and [`Room::may_be_heard`].
//! - `chat.rs`: room chat, private messages, chat moderation and the bounded history.
//! - `signals.rs`: silent reactions and connection levels, each rate limited per person.
//! - `view.rs`: who sees whom, and the snapshots and views sent to clients.
//! - `input.rs`: validated inputs ([`Pseudonym`], [`ChatText`], [`Command`]).
//! - `standing.rs`: a standing room's meeting: not open before its time (members wait with
//!   `opens_at`), opened by a facilitator or the clock; carry-over across a graceful restart; who may
//!   rotate its links.
//! - `state.rs`: the meeting's live state as one value ([`RoomState`]), to rebuild it on another
//!   node when its own dies.
//!
//! # Driving it
//! Every input takes `now` (milliseconds on the server's clock). After each input, drain
//! [`Room::poll_output`] and send what it says; call [`Room::handle_timeout`] when the time from
//! [`Room::poll_timeout`] comes. Outputs name an [`Audience`]; [`Room::recipients`] resolves it to the
//! connected participants who should get the message when it is sent, so a message is serialised
//! once per audience, not once per person.

mod chat;
mod error;
mod floor;
mod input;
mod muting;
mod participants;
mod settings;
mod signals;
mod standing;
mod state;
mod view;

pub use error::RoomError;
pub use input::{ChatText, Command, JoinRequest, MAX_NAME_CHARS, Pseudonym, has_hidden_characters};
pub use participants::Joined;
pub use signals::{QUALITY_BURST, QUALITY_INTERVAL_MS, REACTION_BURST, REACTION_INTERVAL_MS};
pub use standing::{Carried, CarryOver};
pub use state::{FloorState, MESSAGE_ID_BLOCK, ParticipantState, RoomState, STATE_VERSION};

use circle_protocol::{
    Counts, LeaveReason, MessageId, Millis, ParticipantId, Role, ServerMsg, Settings,
};
use std::collections::{HashMap, HashSet, VecDeque};

/// Limits fixed when the room is created (from the server's configuration).
#[derive(Clone, Debug)]
pub struct RoomLimits {
    /// Most participants at once, waiting room included.
    pub max_participants: usize,
    /// How many room chat messages the history keeps for late joiners.
    pub chat_history: usize,
    /// How long a dropped participant keeps their place, in milliseconds.
    pub grace_ms: Millis,
}

impl Default for RoomLimits {
    fn default() -> Self {
        Self {
            max_participants: 1000,
            chat_history: 200,
            grace_ms: 30_000,
        }
    }
}

/// Who a message is for. Resolved to participants by [`Room::recipients`] at send time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Audience {
    /// One participant.
    One(ParticipantId),
    /// Everyone admitted to the room (not the waiting room).
    Admitted,
    /// Everyone, waiting room included.
    All,
    /// Every facilitator.
    Facilitators,
    /// Every facilitator, and one other participant (a private message's author or addressee).
    FacilitatorsAnd(ParticipantId),
    /// Everyone who may see this participant in their roster, except the participant.
    Seeing(ParticipantId),
    /// The members (not facilitators) who may see this participant, except the participant.
    MembersSeeing(ParticipantId),
}

/// What the room asks its driver to do.
// Outputs live only between an input and the drain that follows it; boxing the large `Send` would
// cost an allocation per message on the chat path for no gain.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Send a message to an audience.
    Send {
        /// Who it is for, as the room named it.
        to: Audience,
        /// The connected participants it resolved to when it was sent: the state that follows (a
        /// leaver gone, a room ended) cannot change who should hear of it.
        recipients: Vec<ParticipantId>,
        /// The message.
        msg: ServerMsg,
    },
    /// Tell this participant why (when the reason calls for it) and close their connection; they are
    /// no longer in the room.
    Close {
        /// Who.
        who: ParticipantId,
        /// Why.
        reason: LeaveReason,
    },
    /// Whether this participant's audio may be forwarded changed. The media relay reads this.
    Hearing {
        /// Who.
        who: ParticipantId,
        /// The new answer.
        may_be_heard: bool,
    },
    /// The meeting ended; drop the room.
    Ended,
}

/// One person in the room (or its waiting room).
#[derive(Clone, Debug)]
struct Participant {
    /// The pseudonym they joined under.
    name: Pseudonym,
    /// `name` folded for the uniqueness check.
    folded_name: String,
    /// Member or facilitator; changes with promote / demote.
    role: Role,
    /// `false` while in the waiting room.
    admitted: bool,
    /// `false` while their connection is down, inside the grace period.
    connected: bool,
    /// When the grace period of a dropped connection runs out.
    grace_deadline: Option<Millis>,
    /// When their hand went up, while it is up.
    hand_raised_at: Option<Millis>,
    /// Their own microphone toggle.
    self_muted: bool,
    /// Set by a facilitator; only a facilitator clears it ("allow to speak").
    muted_by_facilitator: bool,
    /// Cleared when a facilitator stops their chat.
    chat_allowed: bool,
    /// Their browser's device id for this room, remembered so a ban can cover it.
    device: Option<String>,
    /// The stream id of their voice, shown to others (opaque here).
    stream: Option<String>,
    /// Join order, for a stable roster.
    seq: u64,
    /// Their hand's place in the speaking order before a restart, while that hand is up (a
    /// carry-over): where it goes back among the other carried-over hands.
    carried_place: Option<u32>,
    /// Their reactions' rate limit and their reported connection level.
    signals: signals::Signals,
}

/// The floor: who is sharing, and the share timer.
#[derive(Clone, Debug)]
struct Floor {
    /// The floor holder.
    speaker: ParticipantId,
    /// When they got the floor.
    since: Millis,
    /// When a timed share ends.
    ends_at: Option<Millis>,
    /// When the warning before the end is due.
    warn_at: Option<Millis>,
    /// The warning went out.
    warned: bool,
    /// The expiry went out.
    expired: bool,
}

/// One room chat message kept for late joiners.
#[derive(Clone, Debug)]
struct StoredChat {
    /// The server's id.
    id: MessageId,
    /// The author.
    from: ParticipantId,
    /// The author's name when they wrote it.
    name: String,
    /// The text.
    text: String,
    /// When it arrived.
    at: Millis,
}

/// Participants per presence state, as [`Room::presence_counts`] counts them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PresenceCounts {
    /// Admitted, with a live connection.
    pub online: usize,
    /// Admitted, connection lost, inside the grace period.
    pub reconnecting: usize,
    /// In the waiting room, connected or not.
    pub waiting: usize,
}

/// A room: the state of one meeting.
pub struct Room {
    /// Shown to everyone, the waiting room included.
    title: String,
    /// The facilitator-controlled settings.
    settings: Settings,
    /// Limits from the configuration.
    limits: RoomLimits,
    /// Everyone in the room or its waiting room.
    participants: HashMap<ParticipantId, Participant>,
    /// Raised hands in speaking order (each participant holds the time theirs went up).
    queue: Vec<ParticipantId>,
    /// The current share, if any.
    floor: Option<Floor>,
    /// Recent room chat, oldest first, at most `limits.chat_history`.
    chat: VecDeque<StoredChat>,
    /// The next chat message id.
    next_message_id: MessageId,
    /// The next join sequence number.
    next_seq: u64,
    /// Banned sessions: their resume tokens no longer work here.
    banned_sessions: HashSet<ParticipantId>,
    /// Banned devices: a new join from them is refused.
    banned_devices: HashSet<String>,
    /// The last "may be heard" answer sent out for each participant, to send only changes.
    hearing: HashMap<ParticipantId, bool>,
    /// The last head counts sent out.
    counts: Counts,
    /// The last "a facilitator is here" answer sent out.
    facilitator_present: bool,
    /// The meeting has ended.
    ended: bool,
    /// A standing room's meeting (a group's room that outlives its meetings), not an ad-hoc room.
    standing: bool,
    /// Until a standing room's meeting opens: when the clock opens it. Members who arrive before
    /// then wait; a facilitator's arrival opens it at once. `None` once open.
    opens_at: Option<Millis>,
    /// What the driver should do next.
    outbox: VecDeque<Queued>,
    /// Moves with every change of [`Room::state`] (see [`Room::state_generation`]).
    generation: u64,
}

/// What waits in the outbox: an output, or a snapshot for one participant that is built only when the
/// driver takes it. Admitting a thousand people at once queues a thousand snapshots of a thousand
/// people; built up front they would hold a million participant views at once, built one at a time
/// as the driver sends them, one snapshot's worth.
// Like `Output`, entries live only until the next drain; boxing would cost an allocation per message.
#[allow(clippy::large_enum_variant)]
enum Queued {
    Ready(Output),
    Snapshot {
        /// Whose snapshot, and who it goes to.
        who: ParticipantId,
        /// Whether they are connected (resolved when it was queued, as for any message).
        recipients: Vec<ParticipantId>,
        /// `admitted` (true) or `room_state`.
        admitted: bool,
    },
}

impl Room {
    /// A new, empty room.
    pub fn new(title: String, settings: Settings, limits: RoomLimits) -> Self {
        Self {
            title,
            settings,
            limits,
            participants: HashMap::new(),
            queue: Vec::new(),
            floor: None,
            chat: VecDeque::new(),
            next_message_id: 1,
            next_seq: 0,
            banned_sessions: HashSet::new(),
            banned_devices: HashSet::new(),
            hearing: HashMap::new(),
            counts: Counts {
                members: 0,
                facilitators: 0,
                waiting: 0,
            },
            facilitator_present: false,
            ended: false,
            standing: false,
            opens_at: None,
            outbox: VecDeque::new(),
            generation: 0,
        }
    }

    /// The room's title.
    pub fn title(&self) -> &str {
        &self.title
    }

    /// The current settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// `true` once the meeting has ended.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// How many people are in the room or its waiting room.
    pub fn len(&self) -> usize {
        self.participants.len()
    }

    /// `true` when nobody is in the room or its waiting room.
    pub fn is_empty(&self) -> bool {
        self.participants.is_empty()
    }

    /// How many participants are in each presence state (for the server's metrics). O(n): callers
    /// ask after changes, not per message.
    pub fn presence_counts(&self) -> PresenceCounts {
        let mut c = PresenceCounts::default();
        for p in self.participants.values() {
            match (p.admitted, p.connected) {
                (false, _) => c.waiting += 1,
                (true, true) => c.online += 1,
                (true, false) => c.reconnecting += 1,
            }
        }
        c
    }

    /// The role of a participant, if they are here.
    pub fn role_of(&self, who: &ParticipantId) -> Option<Role> {
        self.participants.get(who).map(|p| p.role)
    }

    /// `true` if this participant is in the waiting room.
    pub fn is_waiting(&self, who: &ParticipantId) -> bool {
        self.participants.get(who).is_some_and(|p| !p.admitted)
    }

    /// The next thing the driver should do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        Some(match self.outbox.pop_front()? {
            Queued::Ready(output) => output,
            Queued::Snapshot {
                who,
                recipients,
                admitted,
            } => {
                // Built as of the end of the command that queued it (the driver drains right
                // after each command); what that command sent after it is either already in it or
                // idempotent (updates, counts), so a client applying both stays right.
                let room = self.snapshot_for(&who);
                Output::Send {
                    to: Audience::One(who),
                    recipients,
                    msg: if admitted {
                        ServerMsg::Admitted { room }
                    } else {
                        ServerMsg::RoomState { room }
                    },
                }
            }
        })
    }

    /// Carries out a request from a participant. On error nothing changed and nothing was queued.
    pub fn handle(
        &mut self,
        now: Millis,
        from: &ParticipantId,
        cmd: Command,
    ) -> Result<(), RoomError> {
        if self.ended {
            return Err(RoomError::Ended);
        }
        let sender = self.participants.get(from).ok_or(RoomError::SessionGone)?;
        if !sender.admitted && !matches!(cmd, Command::Leave) {
            return Err(RoomError::Waiting);
        }
        if cmd.facilitator_only() && sender.role != Role::Facilitator {
            return Err(RoomError::Forbidden);
        }
        let is_chat = matches!(
            cmd,
            Command::Chat(_)
                | Command::ChatPrivate { .. }
                | Command::React(_)
                | Command::ReportQuality(_)
        );
        let queued = self.outbox.len();
        let id_block = self.next_message_id / MESSAGE_ID_BLOCK;
        match cmd {
            Command::Leave => self.leave(from),
            Command::RaiseHand => self.raise_hand(now, from),
            Command::LowerHand(who) => self.lower_hand(from, who),
            Command::SetSelfMute(muted) => self.set_self_mute(from, muted),
            Command::Chat(text) => self.chat(now, from, text),
            Command::ChatPrivate { text, to } => self.chat_private(now, from, text, to),
            Command::Admit(who) => self.admit(&who),
            Command::AdmitAll => self.admit_all(),
            Command::Deny(who) => self.deny(&who),
            Command::NextSpeaker => self.next_speaker(now),
            Command::GiveFloor(who) => self.give_floor(now, &who),
            Command::TakeFloor => self.take_floor(),
            Command::MoveHand {
                participant,
                position,
            } => self.move_hand(&participant, position),
            Command::LowerAllHands => self.lower_all_hands(),
            Command::Mute(who) => self.mute(&who),
            Command::MuteAll => self.mute_all(),
            Command::AllowSpeak(who) => self.allow_speak(&who),
            Command::Remove(who) => self.remove(&who, LeaveReason::Removed),
            Command::Ban(who) => self.ban(&who),
            Command::Promote(who) => self.promote(&who),
            Command::Demote(who) => self.demote(from, &who),
            Command::DeleteChat(id) => self.delete_chat(id),
            Command::SetChatAllowed {
                participant,
                allowed,
            } => self.set_chat_allowed(&participant, allowed),
            Command::UpdateSettings(patch) => self.update_settings(now, patch),
            Command::React(reaction) => self.react(now, from, reaction),
            Command::ReportQuality(level) => self.report_quality(now, from, level),
            Command::EndMeeting => {
                self.end();
                return Ok(());
            }
        }?;
        // Chat and the silent signals change neither counts nor who may be heard: skip the O(n)
        // refresh on the busiest paths.
        if !is_chat {
            self.after_change();
        }
        // Every change a command makes tells someone (an output, even to nobody connected), so a
        // command that queued nothing changed nothing. Chat changes only the next message id,
        // which counts once per block.
        let changed = if is_chat {
            self.next_message_id / MESSAGE_ID_BLOCK != id_block
        } else {
            self.outbox.len() > queued
        };
        if changed {
            self.state_changed();
        }
        Ok(())
    }

    /// The earliest time [`Room::handle_timeout`] has work to do.
    pub fn poll_timeout(&self) -> Option<Millis> {
        let grace = self
            .participants
            .values()
            .filter_map(|p| p.grace_deadline)
            .min();
        let share = self.floor.as_ref().and_then(|f| {
            if !f.warned && f.warn_at.is_some() {
                f.warn_at
            } else if !f.expired {
                f.ends_at
            } else {
                None
            }
        });
        [grace, share, self.opens_at].into_iter().flatten().min()
    }

    /// Fires whatever timers are due at `now`: grace periods and the share timer.
    pub fn handle_timeout(&mut self, now: Millis) {
        if self.ended {
            return;
        }
        let queued = self.outbox.len();
        // In join order, so that the same room (or one rebuilt from its state) says the same
        // things in the same order.
        let mut expired: Vec<(u64, ParticipantId)> = self
            .participants
            .iter()
            .filter(|(_, p)| p.grace_deadline.is_some_and(|d| d <= now))
            .map(|(id, p)| (p.seq, id.clone()))
            .collect();
        expired.sort();
        for (_, who) in expired {
            self.drop_participant(&who, LeaveReason::TimedOut);
        }
        if self.opens_at.is_some_and(|at| at <= now) {
            self.open();
        }
        self.share_timer_due(now);
        self.after_change();
        if self.outbox.len() > queued {
            self.state_changed();
        }
    }

    /// Ends the meeting: everyone is told and disconnected, and the room asks to be dropped.
    pub fn end(&mut self) {
        if self.ended {
            return;
        }
        self.send(Audience::All, ServerMsg::MeetingEnded);
        let mut everyone: Vec<_> = self.participants.keys().cloned().collect();
        everyone.sort();
        for who in everyone {
            if self.hearing.get(&who) == Some(&true) {
                self.emit(Output::Hearing {
                    who: who.clone(),
                    may_be_heard: false,
                });
            }
            self.emit(Output::Close {
                who,
                reason: LeaveReason::MeetingEnded,
            });
        }
        self.participants.clear();
        self.queue.clear();
        self.floor = None;
        self.chat.clear();
        self.hearing.clear();
        self.ended = true;
        self.state_changed();
        self.emit(Output::Ended);
    }

    /// Sends what changed in the head counts, in whether a facilitator is here, and in who may be
    /// heard.
    fn after_change(&mut self) {
        let counts = self.current_counts();
        if counts != self.counts {
            self.counts = counts;
            self.send(Audience::Admitted, ServerMsg::Counts { counts });
        }
        // Facilitators are always admitted, and one reconnecting inside the grace period counts.
        let present = counts.facilitators > 0;
        if present != self.facilitator_present {
            self.facilitator_present = present;
            self.send(Audience::All, ServerMsg::FacilitatorPresent { present });
        }
        self.refresh_hearing();
    }

    /// `true` while a facilitator is in the meeting (online, or reconnecting inside the grace
    /// period).
    pub fn facilitator_present(&self) -> bool {
        self.participants
            .values()
            .any(|p| p.admitted && p.role == Role::Facilitator)
    }

    fn current_counts(&self) -> Counts {
        let mut c = Counts {
            members: 0,
            facilitators: 0,
            waiting: 0,
        };
        for p in self.participants.values() {
            match (p.admitted, p.role) {
                (false, _) => c.waiting += 1,
                (true, Role::Facilitator) => c.facilitators += 1,
                (true, Role::Member) => c.members += 1,
            }
        }
        c
    }

    fn send(&mut self, to: Audience, msg: ServerMsg) {
        let recipients = self.recipients(&to);
        self.emit(Output::Send {
            to,
            recipients,
            msg,
        });
    }

    /// Queues an output for the driver.
    fn emit(&mut self, output: Output) {
        self.outbox.push_back(Queued::Ready(output));
    }

    /// Queues `who`'s snapshot (`admitted` or `room_state`), built when the driver takes it.
    fn send_snapshot(&mut self, who: &ParticipantId, admitted: bool) {
        let recipients = self.recipients(&Audience::One(who.clone()));
        self.outbox.push_back(Queued::Snapshot {
            who: who.clone(),
            recipients,
            admitted,
        });
    }

    /// The participant, if they are admitted to the room.
    fn admitted(&self, who: &ParticipantId) -> Result<&Participant, RoomError> {
        match self.participants.get(who) {
            Some(p) if p.admitted => Ok(p),
            _ => Err(RoomError::UnknownParticipant),
        }
    }

    /// The participant, if they are an admitted member (not a facilitator).
    fn admitted_member(&self, who: &ParticipantId) -> Result<&Participant, RoomError> {
        let p = self.admitted(who)?;
        if p.role == Role::Facilitator {
            return Err(RoomError::BadTarget(
                "that does not apply to a facilitator; demote them first",
            ));
        }
        Ok(p)
    }
}
