//! A meeting's live state as one value, so that another node can take the meeting over when its own
//! node dies (issue 12 part 3; docs/ARCHITECTURE.md §6): [`Room::state`] takes it,
//! [`Room::from_state`] rebuilds the room from it, and [`Room::state_generation`] tells the driver
//! when there is something new to take.
//!
//! Each participant is a graceful restart's carry-over ([`CarryOver`]: name, device, role,
//! admission, hand and its place, facilitator mute) plus what only the same meeting keeps (id, join
//! order, own microphone, chat permission, a dropped connection's deadline). Not carried, on purpose:
//! - the chat history: what was said stays on the node it was said on (members keep what they saw
//!   in their clients); a rebuilt room starts with none;
//! - what belongs to a connection or to one node: the outbox, the hearing and head-count caches
//!   (recomputed), connection levels and reaction rate limits (they describe the old connection),
//!   and voice stream ids (the media relay numbers them per node; the new node gives each person a
//!   new one with [`Room::set_stream`]).

use crate::{CarryOver, Floor, Output, Participant, Pseudonym, Room, RoomError, RoomLimits};
use circle_protocol::{MessageId, Millis, ParticipantId, Role, Settings};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// The version of [`RoomState`] this build writes, and the only one it reads.
pub const STATE_VERSION: u32 = 1;

/// Chat message ids are handed out in blocks of this many: a chat message does not move
/// [`Room::state_generation`] (the driver would write the state once per line said), except the one
/// that starts a new block. The state written last therefore names the block in use, and a room
/// rebuilt from it starts at the next block, so no id a member has seen comes back for a different
/// message (a `chat_deleted` for the new one would delete the old one on their screen).
pub const MESSAGE_ID_BLOCK: u64 = 1024;

/// The largest join number or chat id a state may hold: a browser reads numbers above 2^53
/// inexactly, and no meeting comes near it, so a state beyond it was not written by a room (and
/// counting on from it could overflow).
const MOST_IDS: u64 = 1 << 53;

/// Everything a meeting's members would miss if its node died, and nothing else; serialised as JSON
/// and sealed by the server before it leaves the node. Millis are Unix milliseconds, the clock the
/// room runs on. Lists are in a fixed order (participants by join order, bans sorted), so two
/// states of the same room are equal.
///
/// **Chat history is not carried** (privacy: what was said stays on the node it was said on;
/// members keep what they saw in their clients). Nor is anything that belongs to one connection or
/// one node (see the module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoomState {
    /// [`STATE_VERSION`] when written; [`Room::from_state`] refuses any other.
    pub version: u32,
    /// The meeting's title.
    pub title: String,
    /// The facilitator-controlled settings.
    pub settings: Settings,
    /// A standing room's meeting (its rules differ: opening time, link rotation).
    pub standing: bool,
    /// While a standing room's meeting has not opened: when the clock opens it.
    pub opens_at: Option<Millis>,
    /// The meeting ended (the driver deletes the state then; a state that says so is refused).
    pub ended: bool,
    /// Everyone in the room or its waiting room, in join order.
    pub participants: Vec<ParticipantState>,
    /// The floor and the share timer, if someone holds the floor.
    pub floor: Option<FloorState>,
    /// Sessions banned from the meeting (their resume tokens no longer work here), sorted.
    pub banned_sessions: Vec<ParticipantId>,
    /// Devices banned from the meeting (a new join from them is refused), sorted.
    pub banned_devices: Vec<String>,
    /// The next join sequence number: the roster's order, and arrival order in the waiting room.
    pub next_seq: u64,
    /// The next chat message id when the state was taken (see [`MESSAGE_ID_BLOCK`]).
    pub next_message_id: MessageId,
}

/// One participant in a [`RoomState`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParticipantState {
    /// Their participant id: a resume token names it, so they come back as themselves.
    pub id: ParticipantId,
    /// Their join sequence number (roster order, waiting-room arrival order).
    pub seq: u64,
    /// Name, device and place (role, admitted or waiting, hand and its place in the speaking order,
    /// facilitator mute), as a graceful restart's carry-over holds them.
    pub carry: CarryOver,
    /// Their own microphone toggle: a rebuilt room never turns a microphone on.
    pub self_muted: bool,
    /// `false` while a facilitator has stopped their chat.
    pub chat_allowed: bool,
    /// A hand that came back from a graceful restart keeps its old place among later carry-overs
    /// (see `restore_hand`): that old place, while the hand is up.
    pub earlier_place: Option<u32>,
    /// When their grace period ends, if their connection was already down when the state was taken
    /// (everyone else gets a full grace period from the rebuild).
    pub reconnecting_until: Option<Millis>,
}

/// The floor in a [`RoomState`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FloorState {
    /// The floor holder.
    pub speaker: ParticipantId,
    /// When they got the floor.
    pub since: Millis,
    /// When a timed share ends: the same moment on the new node.
    pub ends_at: Option<Millis>,
    /// When the warning before the end is due.
    pub warn_at: Option<Millis>,
    /// The warning went out (it is not sent twice).
    pub warned: bool,
    /// The expiry went out.
    pub expired: bool,
}

impl Room {
    /// The state as it is now (see [`RoomState`]). O(n log n) in the participants, no chat:
    /// cheap enough to take after every change.
    pub fn state(&self) -> RoomState {
        let places: HashMap<&ParticipantId, usize> = self
            .queue
            .iter()
            .enumerate()
            .map(|(i, id)| (id, i))
            .collect();
        let place = |id: &ParticipantId| places.get(id).copied();
        let mut participants: Vec<ParticipantState> = self
            .participants
            .iter()
            .map(|(id, p)| ParticipantState {
                id: id.clone(),
                seq: p.seq,
                carry: crate::standing::carry_of(p, place(id)),
                self_muted: p.self_muted,
                chat_allowed: p.chat_allowed,
                earlier_place: p.carried_place,
                reconnecting_until: p.grace_deadline,
            })
            .collect();
        participants.sort_by_key(|p| p.seq);
        let mut banned_sessions: Vec<_> = self.banned_sessions.iter().cloned().collect();
        banned_sessions.sort();
        let mut banned_devices: Vec<_> = self.banned_devices.iter().cloned().collect();
        banned_devices.sort();
        RoomState {
            version: STATE_VERSION,
            title: self.title.clone(),
            settings: self.settings.clone(),
            standing: self.standing,
            opens_at: self.opens_at,
            ended: self.ended,
            participants,
            floor: self.floor.as_ref().map(|f| FloorState {
                speaker: f.speaker.clone(),
                since: f.since,
                ends_at: f.ends_at,
                warn_at: f.warn_at,
                warned: f.warned,
                expired: f.expired,
            }),
            banned_sessions,
            banned_devices,
            next_seq: self.next_seq,
            next_message_id: self.next_message_id,
        }
    }

    /// Rebuilds the meeting on another node at `now` (Unix ms). Every participant is as if their
    /// connection had just dropped: in their grace period from `now` (or until their earlier
    /// deadline, if their connection was already down), so each can `resume` with their session id
    /// and find the same place; those who do not come back leave when it runs out, as after any
    /// drop. The first outputs tell the media relay that nobody may be heard (nobody is connected).
    ///
    /// Refuses a state it cannot trust ([`RoomError::BadState`]: another version, or one that
    /// contradicts itself) and an ended meeting ([`RoomError::Ended`]).
    pub fn from_state(
        state: RoomState,
        limits: RoomLimits,
        now: Millis,
    ) -> Result<Room, RoomError> {
        if state.version != STATE_VERSION {
            return Err(RoomError::BadState("an unknown version"));
        }
        if state.ended {
            return Err(RoomError::Ended);
        }
        if state.next_seq > MOST_IDS || state.next_message_id > MOST_IDS {
            return Err(RoomError::BadState("ids beyond any a room hands out"));
        }
        let grace_until = now.saturating_add(limits.grace_ms);
        let mut room = Room::new(state.title, state.settings, limits);
        room.standing = state.standing;
        room.opens_at = state.opens_at;
        room.next_seq = state.next_seq;
        room.next_message_id = next_block(state.next_message_id);
        let hands = room.take_participants(state.participants, grace_until)?;
        room.queue = speaking_order(hands)?;
        room.floor = state.floor.map(|f| room.floor_from(f)).transpose()?;
        for id in &state.banned_sessions {
            if room.participants.contains_key(id) {
                return Err(RoomError::BadState("a banned session still in the room"));
            }
        }
        room.banned_sessions = state.banned_sessions.into_iter().collect();
        room.banned_devices = state.banned_devices.into_iter().collect();
        room.restarted();
        Ok(room)
    }

    /// Counts every change of what [`Room::state`] returns, except chat within one block of ids
    /// (see [`MESSAGE_ID_BLOCK`]); reactions and connection levels are not in it. The driver takes
    /// and writes the state again only when this moved. Starts at 0 in a new or rebuilt room.
    pub fn state_generation(&self) -> u64 {
        self.generation
    }

    /// Gives a participant a new voice stream id (opaque here): on a node that took the meeting
    /// over, the media relay numbers its peers afresh, and the others must learn which audio track
    /// is theirs. Does nothing for someone not here.
    pub fn set_stream(&mut self, who: &ParticipantId, stream: Option<String>) {
        let Some(p) = self.participants.get_mut(who) else {
            return;
        };
        if p.stream != stream {
            p.stream = stream;
            self.participant_updated(who);
        }
    }

    /// Something [`Room::state`] returns changed.
    pub(crate) fn state_changed(&mut self) {
        self.generation += 1;
    }

    /// Takes in the participants of a state, each with their connection down; returns the raised
    /// hands with their places.
    fn take_participants(
        &mut self,
        list: Vec<ParticipantState>,
        grace_until: Millis,
    ) -> Result<Vec<(u32, ParticipantId)>, RoomError> {
        let mut seqs = HashSet::new();
        let mut names = HashSet::new();
        let mut hands = Vec::new();
        for ps in list {
            let id = ps.id.clone();
            let place = ps.carry.place.hand_place;
            let p = participant(ps, grace_until)?;
            if p.seq >= self.next_seq || !seqs.insert(p.seq) {
                return Err(RoomError::BadState("a join sequence number out of order"));
            }
            if !names.insert(p.folded_name.clone()) {
                return Err(RoomError::BadState("two participants with one name"));
            }
            if let Some(place) = place {
                hands.push((place, id.clone()));
            }
            if self.participants.insert(id, p).is_some() {
                return Err(RoomError::BadState("one participant id twice"));
            }
        }
        Ok(hands)
    }

    /// The floor of a state, if its holder is admitted here.
    fn floor_from(&self, f: FloorState) -> Result<Floor, RoomError> {
        if !self
            .participants
            .get(&f.speaker)
            .is_some_and(|p| p.admitted)
        {
            return Err(RoomError::BadState(
                "the floor held by someone not in the room",
            ));
        }
        Ok(Floor {
            speaker: f.speaker,
            since: f.since,
            ends_at: f.ends_at,
            warn_at: f.warn_at,
            warned: f.warned,
            expired: f.expired,
        })
    }

    /// Sets what a running room keeps besides its state, as a driver that just started it expects:
    /// the head counts and "a facilitator is here" as everyone would be shown them (nobody is
    /// connected to be told), and the relay told that nobody may be heard.
    fn restarted(&mut self) {
        self.counts = self.current_counts();
        self.facilitator_present = self.facilitator_present();
        let mut everyone: Vec<ParticipantId> = self.participants.keys().cloned().collect();
        everyone.sort();
        for who in everyone {
            self.hearing.insert(who.clone(), false);
            self.emit(Output::Hearing {
                who,
                may_be_heard: false,
            });
        }
    }
}

/// The speaking order from the hands' places, which must be 0, 1, 2, ... once each.
fn speaking_order(mut hands: Vec<(u32, ParticipantId)>) -> Result<Vec<ParticipantId>, RoomError> {
    hands.sort();
    if hands
        .iter()
        .enumerate()
        .any(|(i, (place, _))| usize::try_from(*place).ok() != Some(i))
    {
        return Err(RoomError::BadState("hands out of order"));
    }
    Ok(hands.into_iter().map(|(_, id)| id).collect())
}

/// The first id of the block after the one `next` is in: ids handed out on the old node after the
/// state was written are all below it. `next` is at most [`MOST_IDS`], so this cannot overflow.
fn next_block(next: MessageId) -> MessageId {
    (next / MESSAGE_ID_BLOCK + 1) * MESSAGE_ID_BLOCK
}

/// One participant as the rebuilt room holds them, connection down; refuses one whose parts
/// contradict the rules the room keeps (so no later step meets a state it could not have made).
fn participant(ps: ParticipantState, grace_until: Millis) -> Result<Participant, RoomError> {
    let CarryOver {
        name,
        device,
        place,
    } = ps.carry;
    let name = Pseudonym::parse(&name)
        .ok()
        .filter(|n| n.as_str() == name)
        .ok_or(RoomError::BadState("a name the room would not accept"))?;
    if place.role == Role::Facilitator
        && (!place.admitted || place.muted_by_facilitator || !ps.chat_allowed)
    {
        return Err(RoomError::BadState(
            "a facilitator waiting, muted or without chat",
        ));
    }
    // A facilitator's mute turns the microphone off, and only its owner turns it on again.
    if place.muted_by_facilitator && !ps.self_muted {
        return Err(RoomError::BadState(
            "muted by a facilitator with a live microphone",
        ));
    }
    let hand_up = place.hand_raised_at.is_some();
    if hand_up != place.hand_place.is_some()
        || (hand_up && !place.admitted)
        || (ps.earlier_place.is_some() && !hand_up)
    {
        return Err(RoomError::BadState("a raised hand without its place"));
    }
    Ok(Participant {
        folded_name: name.folded(),
        name,
        role: place.role,
        admitted: place.admitted,
        connected: false,
        grace_deadline: Some(
            ps.reconnecting_until
                .map_or(grace_until, |d| d.min(grace_until)),
        ),
        hand_raised_at: place.hand_raised_at,
        self_muted: ps.self_muted,
        muted_by_facilitator: place.muted_by_facilitator,
        chat_allowed: ps.chat_allowed,
        device,
        stream: None,
        seq: ps.seq,
        carried_place: ps.earlier_place,
        signals: Default::default(),
    })
}
