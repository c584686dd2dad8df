//! A small in-memory driver for [`Room`]: it plays the part of the server's room actor, with a clock
//! that only moves when a test moves it.
//!
//! After every input it drains [`Room::poll_output`] and delivers each message to the recipients the
//! room resolved when it sent it, as the real driver does, into one inbox per participant. Tests then assert on
//! what each person would receive, on connections closed, on the media relay's "may be heard" feed,
//! and on the raw outputs when they need to.

// Each test file uses a different part of the harness.
#![allow(dead_code)]

use circle_protocol::{
    ChatView, FloorView, LeaveReason, Millis, PROTOCOL_VERSION, ParticipantId, ParticipantView,
    Role, RoomSnapshot, ServerMsg, Settings, SettingsPatch,
};
use circle_room::{
    Audience, CarryOver, ChatText, Command, JoinRequest, Joined, Output, Pseudonym, Room,
    RoomError, RoomLimits, RoomState,
};
use std::collections::BTreeMap;

pub mod ops;

/// Where the simulated clock starts: any fixed value, far from zero.
pub const T0: Millis = 1_700_000_000_000;

/// The longest chat message the edge lets through.
pub const MAX_CHAT_CHARS: usize = 2000;

pub fn name(s: &str) -> Pseudonym {
    Pseudonym::parse(s).expect("test names are valid")
}

pub fn text(s: &str) -> ChatText {
    ChatText::parse(s, MAX_CHAT_CHARS).expect("test chat lines are valid")
}

pub fn chat(s: &str) -> Command {
    Command::Chat(text(s))
}

pub fn settings(patch: SettingsPatch) -> Command {
    Command::UpdateSettings(patch)
}

/// Settings with the waiting room off, so members come straight in.
pub fn open_room() -> Settings {
    Settings {
        waiting_room: false,
        ..Settings::default()
    }
}

/// One delivered output, kept in order for tests that look at the raw stream.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub output: Output,
    /// For a `Send`, who it reached.
    pub recipients: Vec<ParticipantId>,
}

pub struct Sim {
    pub room: Room,
    pub now: Millis,
    next_id: u32,
    /// The first facilitator to join: admits members for [`Sim::member`].
    host: Option<ParticipantId>,
    /// Messages each participant received, oldest first, since the last `take` / `clear`.
    inbox: BTreeMap<ParticipantId, Vec<ServerMsg>>,
    /// Connections the room asked to close, in order.
    pub closed: Vec<(ParticipantId, LeaveReason)>,
    /// The media relay's feed: every `Output::Hearing`, in order.
    pub hearing: Vec<(ParticipantId, bool)>,
    /// `Output::Ended` was seen.
    pub ended: bool,
    /// Every output since the last `clear`.
    pub log: Vec<Delivery>,
}

impl Sim {
    pub fn new() -> Self {
        Self::with(Settings::default(), RoomLimits::default())
    }

    pub fn with_settings(settings: Settings) -> Self {
        Self::with(settings, RoomLimits::default())
    }

    pub fn with(settings: Settings, limits: RoomLimits) -> Self {
        Self {
            room: Room::new("Tuesday evening".into(), settings, limits),
            now: T0,
            next_id: 0,
            host: None,
            inbox: BTreeMap::new(),
            closed: Vec::new(),
            hearing: Vec::new(),
            ended: false,
            log: Vec::new(),
        }
    }

    /// A driver for `room`, rebuilt from the state of `earlier`'s room on "another node", that goes
    /// on where `earlier` left off: the same clock, the same next fresh id and host, nothing
    /// delivered yet.
    pub fn continuing(earlier: &Sim, room: Room) -> Self {
        Self {
            room,
            now: earlier.now,
            next_id: earlier.next_id,
            host: earlier.host.clone(),
            inbox: BTreeMap::new(),
            closed: Vec::new(),
            hearing: Vec::new(),
            ended: false,
            log: Vec::new(),
        }
    }

    /// The meeting rebuilt on "another node" at the same time from its state as JSON, with these
    /// limits, its first outputs (to the relay) delivered.
    pub fn rebuilt(&self, limits: RoomLimits) -> Sim {
        let state = through_json(&self.room.state());
        let room =
            Room::from_state(state, limits, self.now).expect("a state the room made is taken");
        let mut sim = Sim::continuing(self, room);
        sim.pump();
        sim
    }

    fn fresh_id(&mut self) -> ParticipantId {
        self.next_id += 1;
        ParticipantId(format!("p{:03}", self.next_id))
    }

    /// Joins as the edge would: a fresh id, then `joined` to the joiner, then the room's outputs.
    pub fn try_join(
        &mut self,
        who: &str,
        facilitator: bool,
        device: Option<&str>,
    ) -> Result<(ParticipantId, Joined), RoomError> {
        let id = self.fresh_id();
        let req = JoinRequest {
            name: name(who),
            facilitator,
            device: device.map(str::to_owned),
            stream: None,
            carry: None,
        };
        let joined = self.room.join(self.now, id, req)?;
        // A join from the same browser may take up its earlier place, under that place's id.
        let id = joined.id.clone();
        self.deliver_joined(&id, &joined);
        Ok((id, joined))
    }

    /// Joins with a carry-over from a meeting before a restart, as the edge does once it checked the
    /// token: the name and device come from it.
    pub fn join_carried(
        &mut self,
        carry: &CarryOver,
    ) -> Result<(ParticipantId, Joined), RoomError> {
        let id = self.fresh_id();
        let req = JoinRequest {
            name: name(&carry.name),
            facilitator: false,
            device: carry.device.clone(),
            stream: None,
            carry: Some(carry.place.clone()),
        };
        let joined = self.room.join(self.now, id, req)?;
        let id = joined.id.clone();
        self.deliver_joined(&id, &joined);
        Ok((id, joined))
    }

    fn deliver_joined(&mut self, id: &ParticipantId, joined: &Joined) {
        let msg = ServerMsg::Joined {
            id: None,
            protocol: PROTOCOL_VERSION,
            you: id.clone(),
            role: joined.role,
            resume_token: format!("token-{id}"),
            server_time: self.now,
            media: false,
            ice_servers: Vec::new(),
            grace_secs: 30,
            waiting: joined.waiting,
            resumed: joined.resumed,
            room: self.room.snapshot_for(id),
        };
        self.inbox.entry(id.clone()).or_default().push(msg);
        self.pump();
    }

    /// A member joining with their own device id; they may land in the waiting room.
    pub fn join(&mut self, who: &str) -> Result<ParticipantId, RoomError> {
        let device = format!("device-{who}");
        self.try_join(who, false, Some(&device)).map(|(id, _)| id)
    }

    pub fn facilitator(&mut self, who: &str) -> ParticipantId {
        let (id, joined) = self
            .try_join(who, true, None)
            .expect("facilitator can join");
        assert_eq!(joined.role, Role::Facilitator);
        assert!(!joined.waiting, "facilitators skip the waiting room");
        self.host.get_or_insert_with(|| id.clone());
        id
    }

    /// A member who ends up in the waiting room.
    pub fn waiting(&mut self, who: &str) -> ParticipantId {
        let id = self.join(who).expect("member can join");
        assert!(self.room.is_waiting(&id), "{who} should be waiting");
        id
    }

    /// A member who ends up admitted (through the waiting room when it is on).
    pub fn member(&mut self, who: &str) -> ParticipantId {
        let id = self.join(who).expect("member can join");
        if self.room.is_waiting(&id) {
            let host = self.host.clone().expect("a facilitator must admit members");
            self.cmd(&host, Command::Admit(id.clone()))
                .expect("facilitator can admit");
        }
        id
    }

    /// Sends a command at the current time and delivers what it caused.
    pub fn cmd(&mut self, from: &ParticipantId, cmd: Command) -> Result<(), RoomError> {
        let r = self.room.handle(self.now, from, cmd);
        self.pump();
        r
    }

    /// Like [`Sim::cmd`], for commands a test expects to succeed.
    pub fn ok(&mut self, from: &ParticipantId, cmd: Command) {
        let label = format!("{cmd:?}");
        self.cmd(from, cmd)
            .unwrap_or_else(|e| panic!("{label} from {from} failed: {e}"));
    }

    pub fn disconnect(&mut self, who: &ParticipantId) {
        self.room.disconnected(self.now, who);
        self.pump();
    }

    pub fn resume(&mut self, who: &ParticipantId) -> Result<Joined, RoomError> {
        let joined = self.room.resume(who)?;
        let msg = ServerMsg::Joined {
            id: None,
            protocol: PROTOCOL_VERSION,
            you: who.clone(),
            role: joined.role,
            resume_token: format!("token-{who}"),
            server_time: self.now,
            media: false,
            ice_servers: Vec::new(),
            grace_secs: 30,
            waiting: joined.waiting,
            resumed: joined.resumed,
            room: self.room.snapshot_for(who),
        };
        self.inbox.entry(who.clone()).or_default().push(msg);
        self.pump();
        Ok(joined)
    }

    /// Moves the clock without firing anything (a timer fires only through `poll_timeout`).
    pub fn advance(&mut self, ms: Millis) {
        self.now += ms;
    }

    /// Fires the next timer at exactly the time `poll_timeout` names; returns that time.
    pub fn fire_next_timer(&mut self) -> Millis {
        let at = self.room.poll_timeout().expect("a timer should be pending");
        assert!(
            at >= self.now,
            "timer at {at} is in the past (now {})",
            self.now
        );
        self.now = at;
        self.room.handle_timeout(at);
        self.pump();
        at
    }

    /// Fires every timer due up to `until`, in order, as a driver's sleep loop would, and leaves the
    /// clock at `until`.
    pub fn run_until(&mut self, until: Millis) {
        for _ in 0..10_000 {
            match self.room.poll_timeout() {
                Some(at) if at <= until => {
                    self.now = self.now.max(at);
                    self.room.handle_timeout(self.now);
                    self.pump();
                }
                _ => {
                    self.now = self.now.max(until);
                    return;
                }
            }
        }
        panic!("timers keep firing: poll_timeout never moved past {until}");
    }

    /// Drains the outbox and delivers each output.
    pub fn pump(&mut self) {
        while let Some(output) = self.room.poll_output() {
            let mut recipients = Vec::new();
            match &output {
                Output::Send {
                    to,
                    recipients: resolved,
                    msg,
                } => {
                    recipients = resolved.clone();
                    recipients.sort();
                    let mut unique = recipients.clone();
                    unique.dedup();
                    assert_eq!(unique, recipients, "{to:?} resolved to someone twice");
                    for r in &recipients {
                        self.inbox.entry(r.clone()).or_default().push(msg.clone());
                    }
                }
                Output::Close { who, reason } => self.closed.push((who.clone(), *reason)),
                Output::Hearing { who, may_be_heard } => {
                    self.hearing.push((who.clone(), *may_be_heard))
                }
                Output::Ended => self.ended = true,
            }
            self.log.push(Delivery { output, recipients });
        }
    }

    /// Forgets everything delivered so far.
    pub fn clear(&mut self) {
        self.inbox.clear();
        self.closed.clear();
        self.hearing.clear();
        self.log.clear();
    }

    /// What this participant received since the last `take` / `clear`, and forgets it.
    pub fn take(&mut self, who: &ParticipantId) -> Vec<ServerMsg> {
        self.inbox.remove(who).unwrap_or_default()
    }

    /// What this participant received since the last `take` / `clear`.
    pub fn got(&self, who: &ParticipantId) -> &[ServerMsg] {
        self.inbox.get(who).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Everyone who received a message matching `pred`, sorted.
    pub fn who_got(&self, pred: impl Fn(&ServerMsg) -> bool) -> Vec<ParticipantId> {
        self.inbox
            .iter()
            .filter(|(_, msgs)| msgs.iter().any(&pred))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The audiences of every `Send` since the last `clear` whose message matches `pred`.
    pub fn audiences_of(&self, pred: impl Fn(&ServerMsg) -> bool) -> Vec<Audience> {
        self.log
            .iter()
            .filter_map(|d| match &d.output {
                Output::Send { to, msg, .. } if pred(msg) => Some(to.clone()),
                _ => None,
            })
            .collect()
    }

    /// The participant as `viewer` sees them in a fresh snapshot, if visible.
    pub fn seen_by(
        &self,
        viewer: &ParticipantId,
        subject: &ParticipantId,
    ) -> Option<ParticipantView> {
        self.room
            .snapshot_for(viewer)
            .participants
            .into_iter()
            .find(|p| &p.id == subject)
    }

    /// The participant as a facilitator (who sees everyone) sees them.
    pub fn view(&self, subject: &ParticipantId) -> ParticipantView {
        let host = self.host.as_ref().expect("a facilitator is in the room");
        self.seen_by(host, subject)
            .unwrap_or_else(|| panic!("{subject} is not in the room"))
    }

    pub fn snapshot(&self, who: &ParticipantId) -> RoomSnapshot {
        self.room.snapshot_for(who)
    }
}

impl Default for Sim {
    fn default() -> Self {
        Self::new()
    }
}

/// The state through JSON, as the node that writes it and the node that claims it see it.
pub fn through_json(state: &RoomState) -> RoomState {
    let json = serde_json::to_string(state).expect("a state serialises");
    serde_json::from_str(&json).expect("and parses back")
}

/// The `joined` reply in a participant's messages.
pub fn joined_snapshot(msgs: &[ServerMsg]) -> (bool, RoomSnapshot) {
    msgs.iter()
        .find_map(|m| match m {
            ServerMsg::Joined { waiting, room, .. } => Some((*waiting, room.clone())),
            _ => None,
        })
        .expect("a joined reply")
}

/// Every floor event in a participant's messages, oldest first.
pub fn floors(msgs: &[ServerMsg]) -> Vec<FloorView> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMsg::Floor { floor } => Some(floor.clone()),
            _ => None,
        })
        .collect()
}

/// The last floor event in a participant's messages.
pub fn last_floor(msgs: &[ServerMsg]) -> FloorView {
    floors(msgs).pop().expect("a floor event")
}

/// Every chat message in a participant's messages.
pub fn chats(msgs: &[ServerMsg]) -> Vec<ChatView> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMsg::Chat { message } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

/// Every `participant_updated` about `who` in a participant's messages.
pub fn updates_about(msgs: &[ServerMsg], who: &ParticipantId) -> Vec<ParticipantView> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMsg::ParticipantUpdated { participant } if &participant.id == who => {
                Some(participant.clone())
            }
            _ => None,
        })
        .collect()
}

/// Every `hearing` message in a participant's messages.
pub fn hearing_msgs(msgs: &[ServerMsg]) -> Vec<bool> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMsg::Hearing { may_be_heard } => Some(*may_be_heard),
            _ => None,
        })
        .collect()
}

/// The ids of a floor's queue, `None` for anonymous places.
pub fn queue_ids(floor: &FloorView) -> Vec<Option<ParticipantId>> {
    floor.queue.iter().map(|q| q.participant.clone()).collect()
}

/// The ids of a snapshot's participants, in roster order.
pub fn roster(snapshot: &RoomSnapshot) -> Vec<ParticipantId> {
    snapshot.participants.iter().map(|p| p.id.clone()).collect()
}

pub fn is_left(msg: &ServerMsg, who: &ParticipantId, why: LeaveReason) -> bool {
    matches!(msg, ServerMsg::ParticipantLeft { participant, reason } if participant == who && *reason == why)
}

/// What a client shows, built only from the messages it received (the random-meeting tests compare
/// it with a fresh snapshot after every step).
pub struct ClientView {
    /// The room as this client has put it together.
    pub room: RoomSnapshot,
    /// The last `hearing` answer it was told.
    pub heard: bool,
    /// The last `speakers` list it was told.
    pub speakers: Option<Vec<ParticipantId>>,
}

impl ClientView {
    /// A client that has received nothing yet.
    pub fn new() -> Self {
        Self {
            room: RoomSnapshot {
                title: String::new(),
                settings: Settings::default(),
                participants: Vec::new(),
                counts: None,
                floor: FloorView {
                    speaker: None,
                    queue: Vec::new(),
                },
                chat: Vec::new(),
                standing: false,
                opens_at: None,
                facilitator_present: false,
                connection_quality: Vec::new(),
            },
            heard: false,
            speakers: None,
        }
    }

    /// Applies one message as a client would.
    pub fn apply(&mut self, msg: &ServerMsg) {
        let upsert = |room: &mut RoomSnapshot, p: &ParticipantView| match room
            .participants
            .iter_mut()
            .find(|q| q.id == p.id)
        {
            Some(q) => *q = p.clone(),
            None => room.participants.push(p.clone()),
        };
        match msg {
            ServerMsg::Joined { room, .. } => {
                self.room = room.clone();
                self.heard = false;
            }
            ServerMsg::Admitted { room } | ServerMsg::RoomState { room } => {
                self.room = room.clone()
            }
            ServerMsg::ParticipantJoined { participant }
            | ServerMsg::ParticipantUpdated { participant } => upsert(&mut self.room, participant),
            ServerMsg::ParticipantLeft { participant, .. } => {
                self.room.participants.retain(|p| &p.id != participant)
            }
            ServerMsg::Counts { counts } => self.room.counts = Some(*counts),
            ServerMsg::Floor { floor } => self.room.floor = floor.clone(),
            ServerMsg::Chat { message } if !message.private => self.room.chat.push(message.clone()),
            ServerMsg::ChatDeleted { message } => self.room.chat.retain(|m| m.id != *message),
            ServerMsg::Settings { settings } => self.room.settings = settings.clone(),
            ServerMsg::FacilitatorPresent { present } => self.room.facilitator_present = *present,
            ServerMsg::Hearing { may_be_heard } => self.heard = *may_be_heard,
            ServerMsg::Speakers { participants } => self.speakers = Some(participants.clone()),
            _ => {}
        }
    }
}

/// Participants in id order, to compare rosters whatever order they were built in.
pub fn by_id(mut ps: Vec<ParticipantView>) -> Vec<ParticipantView> {
    ps.sort_by(|a, b| a.id.cmp(&b.id));
    ps
}
