//! Muting, and the one authoritative answer to "may this member be heard now?".
//!
//! A member is heard only when all of these hold: admitted (not in the waiting room), connected,
//! not self-muted, not muted by a facilitator, and, in one-speaker mode, holding the floor or being a
//! facilitator. The answer is recomputed after every change and sent out as [`Output::Hearing`] when it
//! differs, so the media relay can keep a snapshot and never ask the room per packet.

use crate::{Audience, Output, Room, RoomError};
use circle_protocol::{ParticipantId, Role, ServerMsg};

impl Room {
    /// May this participant's audio be forwarded to the room right now?
    pub fn may_be_heard(&self, who: &ParticipantId) -> bool {
        let Some(p) = self.participants.get(who) else {
            return false;
        };
        let floor_ok = !self.settings.one_speaker
            || p.role == Role::Facilitator
            || self.floor.as_ref().is_some_and(|f| &f.speaker == who);
        p.admitted && p.connected && !p.self_muted && !p.muted_by_facilitator && floor_ok
    }

    pub(crate) fn set_self_mute(
        &mut self,
        who: &ParticipantId,
        muted: bool,
    ) -> Result<(), RoomError> {
        let p = self
            .participants
            .get_mut(who)
            .ok_or(RoomError::SessionGone)?;
        if !muted && p.muted_by_facilitator {
            return Err(RoomError::MutedByFacilitator);
        }
        if p.self_muted != muted {
            p.self_muted = muted;
            self.participant_updated(who);
        }
        Ok(())
    }

    pub(crate) fn mute(&mut self, who: &ParticipantId) -> Result<(), RoomError> {
        self.admitted_member(who)?;
        self.set_facilitator_mute(who, true);
        Ok(())
    }

    pub(crate) fn mute_all(&mut self) -> Result<(), RoomError> {
        let mut members: Vec<_> = self
            .participants
            .iter()
            .filter(|(_, p)| p.admitted && p.role == Role::Member && !p.muted_by_facilitator)
            .map(|(id, p)| (p.seq, id.clone()))
            .collect();
        members.sort();
        for (_, who) in members {
            self.set_facilitator_mute(&who, true);
        }
        Ok(())
    }

    /// Lets a member unmute themselves again; their microphone stays as they left it.
    pub(crate) fn allow_speak(&mut self, who: &ParticipantId) -> Result<(), RoomError> {
        self.admitted_member(who)?;
        self.set_facilitator_mute(who, false);
        Ok(())
    }

    fn set_facilitator_mute(&mut self, who: &ParticipantId, muted: bool) {
        if let Some(p) = self.participants.get_mut(who)
            && p.muted_by_facilitator != muted
        {
            p.muted_by_facilitator = muted;
            // A facilitator's mute also turns the member's microphone off, so that "allow to speak"
            // later only lets them unmute: the server never turns a microphone on for anyone.
            if muted {
                p.self_muted = true;
            }
            self.participant_updated(who);
        }
    }

    /// Sends every change in "may be heard": to the media relay, and to the participant themselves.
    pub(crate) fn refresh_hearing(&mut self) {
        let mut changed: Vec<(ParticipantId, bool)> = self
            .participants
            .keys()
            .filter_map(|who| {
                let now = self.may_be_heard(who);
                let before = self.hearing.get(who).copied().unwrap_or(false);
                (now != before).then(|| (who.clone(), now))
            })
            .collect();
        changed.sort();
        for (who, now) in changed {
            self.hearing.insert(who.clone(), now);
            self.emit(Output::Hearing {
                who: who.clone(),
                may_be_heard: now,
            });
            self.send(Audience::One(who), ServerMsg::Hearing { may_be_heard: now });
        }
    }
}
