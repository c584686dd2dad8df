//! Who sees whom, and the views sent to clients.
//!
//! - A participant in the waiting room sees the title and themselves, nothing else.
//! - Facilitators see everyone, the waiting room included.
//! - Members see every admitted participant, or, with roster privacy, the facilitators and themselves
//!   (and a head count). In the speaking queue they then see other members as anonymous places.

use crate::{Audience, Participant, Room};
use circle_protocol::{
    FloorView, ParticipantId, ParticipantView, Presence, QueueEntry, Role, RoomSnapshot, ServerMsg,
    Speaker,
};

impl Room {
    /// May `viewer` see `subject` in their roster?
    fn sees(
        &self,
        viewer: &Participant,
        viewer_id: &ParticipantId,
        subject: &Participant,
        subject_id: &ParticipantId,
    ) -> bool {
        if viewer_id == subject_id {
            return true;
        }
        if !viewer.admitted {
            return false;
        }
        if viewer.role == Role::Facilitator {
            return true;
        }
        if !subject.admitted {
            return false;
        }
        !self.settings.roster_privacy || subject.role == Role::Facilitator
    }

    /// The connected participants an audience resolves to, now.
    pub fn recipients(&self, audience: &Audience) -> Vec<ParticipantId> {
        let connected = self.participants.iter().filter(|(_, p)| p.connected);
        match audience {
            Audience::One(id) => self
                .participants
                .get(id)
                .filter(|p| p.connected)
                .map(|_| vec![id.clone()])
                .unwrap_or_default(),
            Audience::All => connected.map(|(id, _)| id.clone()).collect(),
            Audience::Admitted => connected
                .filter(|(_, p)| p.admitted)
                .map(|(id, _)| id.clone())
                .collect(),
            Audience::Facilitators => connected
                .filter(|(_, p)| p.admitted && p.role == Role::Facilitator)
                .map(|(id, _)| id.clone())
                .collect(),
            Audience::FacilitatorsAnd(other) => connected
                .filter(|(id, p)| (p.admitted && p.role == Role::Facilitator) || *id == other)
                .map(|(id, _)| id.clone())
                .collect(),
            Audience::Seeing(subject_id) | Audience::MembersSeeing(subject_id) => {
                let Some(subject) = self.participants.get(subject_id) else {
                    return Vec::new();
                };
                let members_only = matches!(audience, Audience::MembersSeeing(_));
                connected
                    .filter(|(id, p)| {
                        *id != subject_id
                            && !(members_only && p.role == Role::Facilitator)
                            && self.sees(p, id, subject, subject_id)
                    })
                    .map(|(id, _)| id.clone())
                    .collect()
            }
        }
    }

    /// Tells everyone admitted who is speaking now (the relay's active speakers, as participants).
    ///
    /// Everyone hears everyone who may be heard, but under roster privacy a member is told only of
    /// the speakers they may see (facilitators, themselves) and of the floor holder, whose name the
    /// floor already shows; facilitators get the whole list. Without roster privacy it is one
    /// message to everyone admitted. Ids the room does not know, or who are not admitted, are left
    /// out.
    pub fn announce_speakers(&mut self, speaking: &[ParticipantId]) {
        let speaking: Vec<ParticipantId> = speaking
            .iter()
            .filter(|id| self.participants.get(*id).is_some_and(|p| p.admitted))
            .cloned()
            .collect();
        if !self.settings.roster_privacy {
            self.send(
                Audience::Admitted,
                ServerMsg::Speakers {
                    participants: speaking,
                },
            );
            return;
        }
        let floor = self.floor.as_ref().map(|f| f.speaker.clone());
        for viewer_id in self.recipients(&Audience::Admitted) {
            let Some(viewer) = self.participants.get(&viewer_id) else {
                continue;
            };
            let participants = speaking
                .iter()
                .filter(|s| {
                    floor.as_ref() == Some(*s)
                        || self
                            .participants
                            .get(*s)
                            .is_some_and(|subject| self.sees(viewer, &viewer_id, subject, s))
                })
                .cloned()
                .collect();
            self.send(
                Audience::One(viewer_id),
                ServerMsg::Speakers { participants },
            );
        }
    }

    /// The public view of one participant. Panics never: a missing id yields a placeholder.
    pub(crate) fn view_of(&self, id: &ParticipantId) -> ParticipantView {
        match self.participants.get(id) {
            Some(p) => view(id, p),
            None => ParticipantView {
                id: id.clone(),
                name: String::new(),
                role: Role::Member,
                presence: Presence::Reconnecting,
                hand_raised_at: None,
                self_muted: true,
                muted_by_facilitator: false,
                chat_allowed: false,
                stream: None,
            },
        }
    }

    /// Tells everyone who sees this participant, and the participant, how they are now.
    pub(crate) fn participant_updated(&mut self, id: &ParticipantId) {
        if !self.participants.contains_key(id) {
            return;
        }
        let participant = self.view_of(id);
        self.send(
            Audience::Seeing(id.clone()),
            ServerMsg::ParticipantUpdated {
                participant: participant.clone(),
            },
        );
        self.send(
            Audience::One(id.clone()),
            ServerMsg::ParticipantUpdated { participant },
        );
    }

    /// The speaking order as a viewer sees it; `None` is a facilitator's (or a public roster's) view.
    pub(crate) fn floor_view_for(&self, member: Option<&ParticipantId>) -> FloorView {
        let hide = |id: &ParticipantId, p: &Participant| {
            member.is_some_and(|m| m != id)
                && p.role == Role::Member
                && self.settings.roster_privacy
        };
        let queue = self
            .queue
            .iter()
            .filter_map(|id| {
                let p = self.participants.get(id)?;
                let raised_at = p.hand_raised_at?;
                Some(if hide(id, p) {
                    QueueEntry {
                        participant: None,
                        name: None,
                        raised_at,
                    }
                } else {
                    QueueEntry {
                        participant: Some(id.clone()),
                        name: Some(p.name.as_str().to_owned()),
                        raised_at,
                    }
                })
            })
            .collect();
        let speaker = self.floor.as_ref().and_then(|f| {
            let p = self.participants.get(&f.speaker)?;
            Some(Speaker {
                participant: f.speaker.clone(),
                name: p.name.as_str().to_owned(),
                since: f.since,
                ends_at: f.ends_at,
            })
        });
        FloorView { speaker, queue }
    }

    /// The whole room as this participant may see it.
    pub fn snapshot_for(&self, id: &ParticipantId) -> RoomSnapshot {
        let Some(me) = self.participants.get(id) else {
            return self.empty_snapshot(Vec::new());
        };
        if !me.admitted {
            return self.empty_snapshot(vec![view(id, me)]);
        }
        let mut visible: Vec<(&ParticipantId, &Participant)> = self
            .participants
            .iter()
            .filter(|(sid, s)| self.sees(me, id, s, sid))
            .collect();
        visible.sort_by_key(|(_, p)| p.seq);
        let member_view = (me.role == Role::Member).then_some(id);
        RoomSnapshot {
            title: self.title.clone(),
            settings: self.settings.clone(),
            participants: visible.into_iter().map(|(sid, s)| view(sid, s)).collect(),
            counts: Some(self.current_counts()),
            floor: self.floor_view_for(member_view),
            chat: self.chat_history(),
            standing: self.standing,
            opens_at: self.opens_at,
            facilitator_present: self.facilitator_present(),
            connection_quality: self.connection_reports_for(me.role),
        }
    }

    fn empty_snapshot(&self, participants: Vec<ParticipantView>) -> RoomSnapshot {
        RoomSnapshot {
            title: self.title.clone(),
            settings: self.settings.clone(),
            participants,
            counts: None,
            floor: FloorView {
                speaker: None,
                queue: Vec::new(),
            },
            chat: Vec::new(),
            standing: self.standing,
            opens_at: self.opens_at,
            facilitator_present: self.facilitator_present(),
            connection_quality: Vec::new(),
        }
    }

    /// Sends every admitted participant a fresh snapshot: after changes that alter who sees whom.
    pub(crate) fn resync_all(&mut self) {
        let mut admitted: Vec<(u64, ParticipantId)> = self
            .participants
            .iter()
            .filter(|(_, p)| p.admitted)
            .map(|(id, p)| (p.seq, id.clone()))
            .collect();
        admitted.sort();
        for (_, id) in admitted {
            self.send_snapshot(&id, false);
        }
    }
}

fn view(id: &ParticipantId, p: &Participant) -> ParticipantView {
    ParticipantView {
        id: id.clone(),
        name: p.name.as_str().to_owned(),
        role: p.role,
        presence: match (p.admitted, p.connected) {
            (false, _) => Presence::Waiting,
            (true, true) => Presence::Online,
            (true, false) => Presence::Reconnecting,
        },
        hand_raised_at: p.hand_raised_at,
        self_muted: p.self_muted,
        muted_by_facilitator: p.muted_by_facilitator,
        chat_allowed: p.chat_allowed,
        stream: p.stream.clone(),
    }
}
