//! Who is in the room: join, resume, dropped connections and their grace period, leave, the waiting
//! room (admit / deny), removal, bans, and promotion to co-facilitator.

use crate::{Audience, JoinRequest, Output, Participant, Room, RoomError};
use circle_protocol::{LeaveReason, Millis, ParticipantId, Role, ServerMsg};

/// What a successful join gives the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Joined {
    /// Who they are: the id the driver chose, or, when they took up their earlier place, that
    /// place's id.
    pub id: ParticipantId,
    /// The joiner's role.
    pub role: Role,
    /// `true` if they are in the waiting room.
    pub waiting: bool,
    /// `true` when this took up a place they already had (a resume, or a join from the same browser
    /// while their earlier session was still here): the driver closes the earlier connection, if
    /// any, as replaced.
    pub resumed: bool,
}

impl Room {
    /// Adds a participant under a fresh id chosen by the driver. The driver then sends them
    /// [`Room::snapshot_for`] and drains the outbox, which tells the others.
    pub fn join(
        &mut self,
        now: Millis,
        id: ParticipantId,
        req: JoinRequest,
    ) -> Result<Joined, RoomError> {
        if self.ended {
            return Err(RoomError::Ended);
        }
        // The clock may have passed the opening time before its timer fired.
        if self.opens_at.is_some_and(|at| at <= now) {
            self.open();
        }
        // Someone carried over from before a restart was in this meeting already: a lock or the
        // waiting room set since does not keep them out.
        let carried = req.carry.clone();
        let vouched = req.facilitator || carried.is_some();
        if req
            .device
            .as_ref()
            .is_some_and(|d| self.banned_devices.contains(d))
            || self.banned_sessions.contains(&id)
        {
            return Err(RoomError::Banned);
        }
        let folded_name = req.name.folded();
        if let Some(earlier) = self.returning(&folded_name, req.device.as_deref()) {
            return self.take_over(&earlier);
        }
        if self.settings.locked && !vouched {
            return Err(RoomError::Locked);
        }
        // A facilitator must always be able to reach their own meeting, full or locked.
        if self.participants.len() >= self.limits.max_participants && !req.facilitator {
            return Err(RoomError::Full);
        }
        if self
            .participants
            .values()
            .any(|p| p.folded_name == folded_name)
        {
            return Err(RoomError::NameTaken);
        }
        let role = match &carried {
            Some(c) if c.role == Role::Facilitator => Role::Facilitator,
            _ if req.facilitator => Role::Facilitator,
            _ => Role::Member,
        };
        let waiting = match &carried {
            Some(c) => role == Role::Member && !c.admitted,
            // Before a standing room's meeting opens, members wait whatever the setting.
            None => role == Role::Member && (self.settings.waiting_room || self.opens_at.is_some()),
        };
        let muted_by_facilitator = role == Role::Member
            && match &carried {
                Some(c) => c.muted_by_facilitator,
                None => self.settings.mute_on_entry,
            };
        let hand = carried
            .as_ref()
            .filter(|_| !waiting)
            .and_then(|c| Some((c.hand_raised_at?, c.hand_place.unwrap_or(u32::MAX))));
        let hand_raised_at = hand.map(|(at, _)| at);
        let participant = Participant {
            name: req.name,
            folded_name,
            role,
            admitted: !waiting,
            connected: true,
            grace_deadline: None,
            hand_raised_at,
            self_muted: true,
            muted_by_facilitator,
            chat_allowed: true,
            device: req.device,
            stream: req.stream,
            seq: self.next_seq,
            carried_place: hand.map(|(_, place)| place),
            signals: Default::default(),
        };
        self.next_seq += 1;
        self.participants.insert(id.clone(), participant);
        let view = self.view_of(&id);
        self.send(
            Audience::Seeing(id.clone()),
            ServerMsg::ParticipantJoined { participant: view },
        );
        if let Some((_, place)) = hand {
            self.restore_hand(&id, place);
        }
        // A facilitator opens the meeting at once; so does someone carried over who was in the
        // meeting (admitted, or a facilitator): it was already under way before the restart. A
        // carried member who was still waiting for the opening time waits for it again.
        let was_under_way = carried
            .as_ref()
            .is_some_and(|c| c.admitted || c.role == Role::Facilitator);
        if self.opens_at.is_some() && (req.facilitator || was_under_way) {
            self.open();
        }
        self.after_change();
        self.state_changed();
        Ok(Joined {
            id,
            role,
            waiting,
            resumed: false,
        })
    }

    /// The participant this join comes back as: the same name from the same browser (its device id,
    /// a secret only that browser and the server know), whether their earlier session is in its
    /// grace period (a closed tab) or still connected (another tab). A join without a device id, or
    /// with another one, is a new person, and the name is taken.
    fn returning(&self, folded_name: &str, device: Option<&str>) -> Option<ParticipantId> {
        let device = device?;
        self.participants
            .iter()
            .find(|(_, p)| p.folded_name == folded_name && p.device.as_deref() == Some(device))
            .map(|(id, _)| id.clone())
    }

    /// A join that takes up the joiner's earlier place: a resume of that session (same id, role,
    /// admission, hand and place, floor, facilitator mute), except that the microphone starts off.
    /// The person pressed "join muted" in a new tab whose microphone is not open yet; a resume of the
    /// same tab keeps it as it was.
    fn take_over(&mut self, earlier: &ParticipantId) -> Result<Joined, RoomError> {
        let p = self
            .participants
            .get_mut(earlier)
            .ok_or(RoomError::SessionGone)?;
        let was_live = !std::mem::replace(&mut p.self_muted, true);
        let was_connected = p.connected;
        let joined = self.resume(earlier)?;
        // A reconnecting participant's return already told everyone how they are now.
        if was_live && was_connected {
            self.participant_updated(earlier);
            self.state_changed();
        }
        Ok(joined)
    }

    /// A participant's connection came back with a valid resume token.
    pub fn resume(&mut self, id: &ParticipantId) -> Result<Joined, RoomError> {
        if self.ended {
            return Err(RoomError::Ended);
        }
        if self.banned_sessions.contains(id) {
            return Err(RoomError::Banned);
        }
        let p = self
            .participants
            .get_mut(id)
            .ok_or(RoomError::SessionGone)?;
        let was_connected = p.connected;
        p.connected = true;
        p.grace_deadline = None;
        let joined = Joined {
            id: id.clone(),
            role: p.role,
            waiting: !p.admitted,
            resumed: true,
        };
        if !was_connected {
            self.participant_updated(id);
            self.state_changed();
        }
        self.after_change();
        Ok(joined)
    }

    /// A participant's connection dropped (or the driver dropped one that could not keep up): they
    /// keep their place for the grace period.
    pub fn disconnected(&mut self, now: Millis, id: &ParticipantId) {
        let grace = self.limits.grace_ms;
        let Some(p) = self.participants.get_mut(id) else {
            return;
        };
        if !p.connected {
            return;
        }
        p.connected = false;
        p.grace_deadline = Some(now + grace);
        self.participant_updated(id);
        self.after_change();
        self.state_changed();
    }

    pub(crate) fn leave(&mut self, id: &ParticipantId) -> Result<(), RoomError> {
        self.drop_participant(id, LeaveReason::Left);
        Ok(())
    }

    pub(crate) fn admit(&mut self, id: &ParticipantId) -> Result<(), RoomError> {
        match self.participants.get_mut(id) {
            Some(p) if !p.admitted => p.admitted = true,
            _ => return Err(RoomError::UnknownParticipant),
        }
        self.on_admitted(std::slice::from_ref(id));
        Ok(())
    }

    pub(crate) fn admit_all(&mut self) -> Result<(), RoomError> {
        let waiting = self.waiting_in_arrival_order();
        self.admit_waiting(&waiting);
        Ok(())
    }

    /// Everyone in the waiting room, first arrival first.
    pub(crate) fn waiting_in_arrival_order(&self) -> Vec<ParticipantId> {
        let mut waiting: Vec<_> = self
            .participants
            .iter()
            .filter(|(_, p)| !p.admitted)
            .map(|(id, p)| (p.seq, id.clone()))
            .collect();
        waiting.sort();
        waiting.into_iter().map(|(_, id)| id).collect()
    }

    /// Lets these waiting participants in, in this order.
    pub(crate) fn admit_waiting(&mut self, waiting: &[ParticipantId]) {
        for id in waiting {
            if let Some(p) = self.participants.get_mut(id) {
                p.admitted = true;
            }
        }
        self.on_admitted(waiting);
    }

    /// Tells the room about people just admitted, all at once: each of them gets one snapshot that
    /// already shows the others (never an arrival per batch-mate, which for a thousand admitted at
    /// once would be half a million frames); facilitators, who saw them waiting, get an update per
    /// person; members who were already in and may see them get an arrival per person.
    pub(crate) fn on_admitted(&mut self, admitted: &[ParticipantId]) {
        for id in admitted {
            self.send_snapshot(id, true);
        }
        let batch: std::collections::HashSet<&ParticipantId> = admitted.iter().collect();
        for id in admitted {
            let view = self.view_of(id);
            self.send(
                Audience::Facilitators,
                ServerMsg::ParticipantUpdated {
                    participant: view.clone(),
                },
            );
            let mut members = self.recipients(&Audience::MembersSeeing(id.clone()));
            members.retain(|m| !batch.contains(m));
            self.emit(Output::Send {
                to: Audience::MembersSeeing(id.clone()),
                recipients: members,
                msg: ServerMsg::ParticipantJoined { participant: view },
            });
        }
    }

    pub(crate) fn deny(&mut self, id: &ParticipantId) -> Result<(), RoomError> {
        match self.participants.get(id) {
            Some(p) if !p.admitted => {}
            _ => return Err(RoomError::UnknownParticipant),
        }
        self.drop_participant(id, LeaveReason::Denied);
        Ok(())
    }

    pub(crate) fn remove(
        &mut self,
        id: &ParticipantId,
        reason: LeaveReason,
    ) -> Result<(), RoomError> {
        match self.participants.get(id) {
            Some(p) if p.role == Role::Facilitator => {
                return Err(RoomError::BadTarget(
                    "a facilitator cannot be removed; demote them first",
                ));
            }
            Some(_) => {}
            None => return Err(RoomError::UnknownParticipant),
        }
        self.drop_participant(id, reason);
        Ok(())
    }

    pub(crate) fn ban(&mut self, id: &ParticipantId) -> Result<(), RoomError> {
        let device = match self.participants.get(id) {
            Some(p) if p.role == Role::Facilitator => {
                return Err(RoomError::BadTarget(
                    "a facilitator cannot be banned; demote them first",
                ));
            }
            Some(p) => p.device.clone(),
            None => return Err(RoomError::UnknownParticipant),
        };
        self.banned_sessions.insert(id.clone());
        if let Some(device) = device {
            self.banned_devices.insert(device);
        }
        self.drop_participant(id, LeaveReason::Banned);
        Ok(())
    }

    pub(crate) fn promote(&mut self, id: &ParticipantId) -> Result<(), RoomError> {
        if self.admitted(id)?.role == Role::Facilitator {
            return Err(RoomError::BadTarget("they are already a facilitator"));
        }
        if let Some(p) = self.participants.get_mut(id) {
            p.role = Role::Facilitator;
            p.muted_by_facilitator = false;
            p.chat_allowed = true;
        }
        self.role_changed();
        Ok(())
    }

    pub(crate) fn demote(
        &mut self,
        by: &ParticipantId,
        id: &ParticipantId,
    ) -> Result<(), RoomError> {
        if by == id {
            return Err(RoomError::BadTarget("you cannot demote yourself"));
        }
        match self.participants.get_mut(id) {
            Some(p) if p.admitted && p.role == Role::Facilitator => p.role = Role::Member,
            Some(p) if p.admitted => {
                return Err(RoomError::BadTarget("they are not a facilitator"));
            }
            _ => return Err(RoomError::UnknownParticipant),
        }
        self.role_changed();
        Ok(())
    }

    /// A role change alters who sees whom (the waiting room, private roster): rebuild every view.
    fn role_changed(&mut self) {
        self.resync_all();
    }

    /// Takes a participant out of the room for good and tells everyone who could see them.
    pub(crate) fn drop_participant(&mut self, id: &ParticipantId, reason: LeaveReason) {
        if !self.participants.contains_key(id) {
            return;
        }
        // Tell the others while the leaver is still there to resolve who could see them.
        self.send(
            Audience::Seeing(id.clone()),
            ServerMsg::ParticipantLeft {
                participant: id.clone(),
                reason,
            },
        );
        self.emit(Output::Close {
            who: id.clone(),
            reason,
        });
        self.participants.remove(id);
        if self.hearing.remove(id) == Some(true) {
            self.emit(Output::Hearing {
                who: id.clone(),
                may_be_heard: false,
            });
        }
        let in_queue = self.queue.iter().any(|q| q == id);
        let had_floor = self.floor.as_ref().is_some_and(|f| &f.speaker == id);
        self.queue.retain(|q| q != id);
        if had_floor {
            self.floor = None;
        }
        if in_queue || had_floor {
            self.floor_changed();
        }
    }
}
