//! The speaking order: raised hands ordered by the server's clock, the floor, and the share timer
//! (a warning before the end, an expiry, and with auto-end the floor returning to the facilitator).

use crate::{Audience, Floor, Room, RoomError};
use circle_protocol::{Millis, ParticipantId, Role, ServerMsg};

impl Room {
    pub(crate) fn raise_hand(&mut self, now: Millis, who: &ParticipantId) -> Result<(), RoomError> {
        let p = self
            .participants
            .get_mut(who)
            .ok_or(RoomError::SessionGone)?;
        if p.hand_raised_at.is_some() {
            return Ok(()); // already up: raising again keeps the earlier place
        }
        p.hand_raised_at = Some(now);
        // Arrival order is clock order: the room handles one input at a time with a clock that never
        // goes back, so appending keeps the queue sorted by raise time.
        self.queue.push(who.clone());
        self.participant_updated(who);
        self.floor_changed();
        Ok(())
    }

    pub(crate) fn lower_hand(
        &mut self,
        by: &ParticipantId,
        whose: Option<ParticipantId>,
    ) -> Result<(), RoomError> {
        let whose = whose.unwrap_or_else(|| by.clone());
        if &whose != by && self.role_of(by) != Some(Role::Facilitator) {
            return Err(RoomError::Forbidden);
        }
        self.admitted(&whose)?;
        if self.take_hand_down(&whose) {
            self.participant_updated(&whose);
            self.floor_changed();
        }
        Ok(())
    }

    /// Lowers a hand without telling anyone; `true` if it was up.
    fn take_hand_down(&mut self, who: &ParticipantId) -> bool {
        let Some(p) = self.participants.get_mut(who) else {
            return false;
        };
        p.carried_place = None;
        if p.hand_raised_at.take().is_none() {
            return false;
        }
        self.queue.retain(|q| q != who);
        true
    }

    pub(crate) fn lower_all_hands(&mut self) -> Result<(), RoomError> {
        let raised = std::mem::take(&mut self.queue);
        for who in &raised {
            if let Some(p) = self.participants.get_mut(who) {
                p.hand_raised_at = None;
                p.carried_place = None;
            }
            self.participant_updated(who);
        }
        if !raised.is_empty() {
            self.floor_changed();
        }
        Ok(())
    }

    pub(crate) fn move_hand(
        &mut self,
        who: &ParticipantId,
        position: usize,
    ) -> Result<(), RoomError> {
        let from = self
            .queue
            .iter()
            .position(|q| q == who)
            .ok_or(RoomError::BadTarget("their hand is not raised"))?;
        let id = self.queue.remove(from);
        let to = position.min(self.queue.len());
        self.queue.insert(to, id);
        if from != to {
            self.floor_changed();
        }
        Ok(())
    }

    pub(crate) fn next_speaker(&mut self, now: Millis) -> Result<(), RoomError> {
        match self.queue.first().cloned() {
            Some(next) => self.give_floor(now, &next),
            // Nobody waiting: "next" returns the floor, so a facilitator can always move on.
            None => self.take_floor(),
        }
    }

    /// Gives the floor, which also lowers their hand and allows them to speak (they still unmute
    /// themselves: the server never turns a microphone on).
    pub(crate) fn give_floor(&mut self, now: Millis, who: &ParticipantId) -> Result<(), RoomError> {
        self.admitted(who)?;
        self.take_hand_down(who);
        if let Some(p) = self.participants.get_mut(who) {
            p.muted_by_facilitator = false;
        }
        let (ends_at, warn_at) = match self.settings.share_secs {
            Some(secs) => {
                let ends = now + u64::from(secs) * 1000;
                let warn = u64::from(self.settings.share_warning_secs) * 1000;
                (
                    Some(ends),
                    (warn > 0 && warn < u64::from(secs) * 1000).then(|| ends - warn),
                )
            }
            None => (None, None),
        };
        let previous = self.floor.replace(Floor {
            speaker: who.clone(),
            since: now,
            ends_at,
            warn_at,
            warned: false,
            expired: false,
        });
        if let Some(prev) = previous.filter(|f| &f.speaker != who) {
            self.participant_updated(&prev.speaker);
        }
        self.participant_updated(who);
        self.floor_changed();
        Ok(())
    }

    pub(crate) fn take_floor(&mut self) -> Result<(), RoomError> {
        if let Some(prev) = self.floor.take() {
            self.participant_updated(&prev.speaker);
            self.floor_changed();
        }
        Ok(())
    }

    /// The floor holder, if any.
    pub fn speaker(&self) -> Option<&ParticipantId> {
        self.floor.as_ref().map(|f| &f.speaker)
    }

    /// Sends the share warning and expiry when due.
    pub(crate) fn share_timer_due(&mut self, now: Millis) {
        let Some(floor) = self.floor.as_mut() else {
            return;
        };
        let speaker = floor.speaker.clone();
        if !floor.warned && floor.warn_at.is_some_and(|t| t <= now) {
            floor.warned = true;
            let remaining_ms = floor.ends_at.map_or(0, |e| e.saturating_sub(now));
            let remaining_secs = u32::try_from(remaining_ms.div_ceil(1000)).unwrap_or(u32::MAX);
            self.send(
                Audience::Admitted,
                ServerMsg::ShareWarning {
                    participant: speaker.clone(),
                    remaining_secs,
                },
            );
        }
        let Some(floor) = self.floor.as_mut() else {
            return;
        };
        if !floor.expired && floor.ends_at.is_some_and(|t| t <= now) {
            floor.expired = true;
            floor.warned = true;
            self.send(
                Audience::Admitted,
                ServerMsg::ShareExpired {
                    participant: speaker,
                },
            );
            if self.settings.auto_end_share {
                let _ = self.take_floor();
            }
        }
    }

    /// Sends the speaking order to everyone admitted, as each may see it.
    pub(crate) fn floor_changed(&mut self) {
        if self.settings.roster_privacy {
            // Members see other members' hands as anonymous places in the queue; each member's own
            // entry is named, so the view differs per member.
            let mut members: Vec<ParticipantId> = self
                .participants
                .iter()
                .filter(|(_, p)| p.admitted && p.role == Role::Member)
                .map(|(id, _)| id.clone())
                .collect();
            members.sort();
            for m in members {
                let floor = self.floor_view_for(Some(&m));
                self.send(Audience::One(m), ServerMsg::Floor { floor });
            }
            let floor = self.floor_view_for(None);
            self.send(Audience::Facilitators, ServerMsg::Floor { floor });
        } else {
            let floor = self.floor_view_for(None);
            self.send(Audience::Admitted, ServerMsg::Floor { floor });
        }
    }
}
