//! A standing room's meeting: the rules that ad-hoc rooms do not have.
//!
//! - Not open before its time: a member who arrives before the schedule's opening time waits in the
//!   waiting room and is told `opens_at`. At that time the waiting members are let in, unless the
//!   room's waiting-room setting holds them for a facilitator as usual (they are then told the
//!   meeting is open). A facilitator's arrival opens the meeting at once.
//! - Carry-over: on a graceful restart each participant's place (role, admission, raised hand, a
//!   facilitator's mute) is handed to their client as [`CarryOver`], never stored; joining the next
//!   meeting with it restores that place ([`crate::JoinRequest::carry`]). The floor and the share
//!   timer do not carry over: the facilitator gives the floor again.
//! - Who may rotate the room's links: an admitted facilitator, in a standing room.

use crate::{Participant, Room, RoomError};
use circle_protocol::{Millis, ParticipantId, Role};
use serde::{Deserialize, Serialize};

/// A participant's place in a meeting, as carried across a graceful restart (and, inside a
/// [`crate::RoomState`], to another node).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Carried {
    /// Member or facilitator.
    pub role: Role,
    /// Admitted (not in the waiting room).
    pub admitted: bool,
    /// When their hand went up, while it was up (shown as `raised_at`).
    pub hand_raised_at: Option<Millis>,
    /// Their hand's place in the speaking order (0 is next), while it was up: the order the
    /// facilitator kept (hands raised in the same millisecond, or moved) comes back as it was.
    pub hand_place: Option<u32>,
    /// A facilitator had muted them.
    pub muted_by_facilitator: bool,
}

/// Everything a carry-over token holds about one participant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarryOver {
    /// Their pseudonym.
    pub name: String,
    /// Their browser's device id for this room, if it sent one (so a ban's device list can be
    /// rebuilt by facilitators, and the same device comes back).
    pub device: Option<String>,
    /// Their place.
    pub place: Carried,
}

impl Room {
    /// Makes this a standing room's meeting, before anyone is in it. `opens_at`: when the meeting
    /// opens, if that is still to come (`None`: open now).
    pub fn set_standing(&mut self, opens_at: Option<Millis>) {
        self.standing = true;
        self.opens_at = opens_at;
        self.state_changed();
    }

    /// `true` for a standing room's meeting.
    pub fn is_standing(&self) -> bool {
        self.standing
    }

    /// When the meeting opens, while it has not yet.
    pub fn opens_at(&self) -> Option<Millis> {
        self.opens_at
    }

    /// Whether `who` may rotate this room's links: an admitted facilitator of a standing room.
    pub fn may_rotate_links(&self, who: &ParticipantId) -> Result<(), RoomError> {
        let p = self.participants.get(who).ok_or(RoomError::SessionGone)?;
        if !p.admitted {
            return Err(RoomError::Waiting);
        }
        if p.role != Role::Facilitator {
            return Err(RoomError::Forbidden);
        }
        if !self.standing {
            return Err(RoomError::NotStanding);
        }
        Ok(())
    }

    /// What `who` takes across a graceful restart, if they are here.
    pub fn carry_over(&self, who: &ParticipantId) -> Option<CarryOver> {
        let p = self.participants.get(who)?;
        Some(carry_of(p, self.queue.iter().position(|q| q == who)))
    }

    /// Opens the meeting: members waiting only for the opening come in, unless the waiting-room
    /// setting holds them, in which case they are told it is open (their view loses `opens_at`).
    pub(crate) fn open(&mut self) {
        if self.opens_at.take().is_none() {
            return;
        }
        self.state_changed();
        let waiting = self.waiting_in_arrival_order();
        if self.settings.waiting_room {
            for id in &waiting {
                self.send_snapshot(id, false);
            }
            return;
        }
        self.admit_waiting(&waiting);
    }

    /// Puts a carried-over raised hand back in the speaking order: among the other carried-over
    /// hands by its old place, and before every hand raised since the restart (those people raised
    /// theirs later).
    pub(crate) fn restore_hand(&mut self, who: &ParticipantId, place: u32) {
        let at = self
            .queue
            .iter()
            .position(|q| {
                self.participants
                    .get(q)
                    .is_none_or(|p| p.carried_place.is_none_or(|theirs| theirs > place))
            })
            .unwrap_or(self.queue.len());
        self.queue.insert(at, who.clone());
        self.floor_changed();
    }
}

/// A participant's carry-over, their hand at `hand_place` in the speaking order (0 is next) while it
/// is up.
pub(crate) fn carry_of(p: &Participant, hand_place: Option<usize>) -> CarryOver {
    CarryOver {
        name: p.name.as_str().to_owned(),
        device: p.device.clone(),
        place: Carried {
            role: p.role,
            admitted: p.admitted,
            hand_raised_at: p.hand_raised_at,
            hand_place: hand_place.and_then(|i| u32::try_from(i).ok()),
            muted_by_facilitator: p.muted_by_facilitator,
        },
    }
}
