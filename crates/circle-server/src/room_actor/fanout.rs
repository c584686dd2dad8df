//! The actor's fan-out: carrying out the room's outputs ([`RoomActor::drain`]), queueing frames on
//! connections (a full queue drops that connection as too slow), and sending snapshots in pieces.

use super::{RoomActor, close_with_reason, voice::MediaTodo};
use crate::{
    conn::{Outbound, PushError},
    wire::encode,
};
use circle_protocol::{
    ChatView, LeaveReason, PROTOCOL_VERSION, ParticipantId, RequestId, ServerMsg,
};
use circle_room::{Joined, Output};
use tracing::{debug, warn};

/// Participants per frame when a snapshot is sent in pieces. A websocket connection keeps a write
/// buffer as large as the largest frame it ever sent, for as long as it lives: one `joined` listing a
/// thousand people would cost every idle member about 100 KiB, so large snapshots go out in pieces
/// of a couple of kilobytes.
const PARTICIPANTS_PER_FRAME: usize = 8;
/// Chat text bytes per frame when a snapshot's history is sent in pieces (one message always fits).
const CHAT_BYTES_PER_FRAME: usize = 1500;

impl RoomActor {
    /// Carries out everything the room asked for.
    pub(super) fn drain(&mut self) {
        while let Some(out) = self.room.poll_output() {
            match out {
                Output::Send {
                    recipients, msg, ..
                } => self.fan_out(recipients, msg),
                Output::Close { who, reason } => {
                    self.presence_changed = true;
                    if let Some(conn) = self.conns.remove(&who) {
                        close_with_reason(&conn, reason);
                    }
                    self.links_of.remove(&who);
                    // They are out for good: no token of theirs can resume them any more.
                    self.state.keys.forget(&who);
                    self.voice.todo.push(MediaTodo::Close(who));
                }
                Output::Hearing { who, may_be_heard } => self.voice.set_gate(&who, may_be_heard),
                Output::Ended => self.leave_directory(),
            }
        }
    }

    /// Sends one of the room's messages to its recipients, serialised once; snapshots go to one
    /// person each, in pieces.
    fn fan_out(&mut self, recipients: Vec<ParticipantId>, msg: ServerMsg) {
        match msg {
            ServerMsg::Admitted { .. } => {
                self.voice
                    .todo
                    .extend(recipients.iter().cloned().map(MediaTodo::SyncGroup));
                for who in &recipients {
                    self.send_snapshot(who, msg.clone());
                }
            }
            ServerMsg::RoomState { .. } => {
                for who in &recipients {
                    self.send_snapshot(who, msg.clone());
                }
            }
            msg => {
                let Some(text) = encode(&msg) else { return };
                for who in &recipients {
                    self.push(who, Outbound::Text(text.clone()));
                }
            }
        }
    }

    /// Sends `joined` (in pieces) to a participant who joined or resumed.
    pub(super) fn send_joined(
        &mut self,
        who: &ParticipantId,
        joined: &Joined,
        id: Option<RequestId>,
    ) {
        let media = self.state.media.as_ref();
        let msg = ServerMsg::Joined {
            id,
            protocol: PROTOCOL_VERSION,
            you: who.clone(),
            role: joined.role,
            resume_token: self.state.keys.issue(self.link_of(who), who),
            grace_secs: self.state.config.rooms.grace_secs,
            waiting: joined.waiting,
            resumed: joined.resumed,
            server_time: self.state.clock.now_ms(),
            media: media.is_some(),
            ice_servers: self.state.ice_servers(),
            room: self.room.snapshot_for(who),
        };
        self.send_snapshot(who, msg);
    }

    /// Sends a message that carries a room snapshot, in pieces if it is large (see
    /// [`PARTICIPANTS_PER_FRAME`]): the snapshot with the first participants and the oldest chat,
    /// then `more_participants` and `more_chat` until it is all there.
    fn send_snapshot(&mut self, who: &ParticipantId, msg: ServerMsg) {
        for piece in in_pieces(msg) {
            self.send_one(who, &piece);
        }
    }

    /// Sends one message to one participant.
    pub(super) fn send_one(&mut self, who: &ParticipantId, msg: &ServerMsg) {
        if let Some(text) = encode(msg) {
            self.push(who, Outbound::Text(text));
        }
    }

    /// Queues a frame for one connection; a connection whose queue is full is dropped as too slow,
    /// and its participant gets the grace period like any dropped connection.
    fn push(&mut self, who: &ParticipantId, frame: Outbound) {
        let Some(conn) = self.conns.get(who) else {
            return;
        };
        let full = match conn.try_push(frame) {
            Ok(()) => return,
            Err(e) => e == PushError::Full,
        };
        if let Some(conn) = self.conns.remove(who) {
            // A connection that simply closed is no one's fault; its reader tells the room too.
            if full {
                warn!(room = %crate::redact::room_tag(&self.info.id), participant = %who, "slow consumer dropped");
            } else {
                debug!(room = %crate::redact::room_tag(&self.info.id), participant = %who, "frame for a closed connection");
            }
            conn.close(LeaveReason::SlowConsumer);
            self.room.disconnected(self.state.clock.now_ms(), who);
            self.presence_changed = true;
            // Its consequences (others see "reconnecting") are drained by the caller's loop.
        }
    }
}

/// A snapshot-carrying message as the frames to send: itself, trimmed to its first participants and
/// oldest chat, then the rest in `more_participants` and `more_chat` pieces. Other messages pass as
/// they are.
fn in_pieces(mut msg: ServerMsg) -> Vec<ServerMsg> {
    let room = match &mut msg {
        ServerMsg::Joined { room, .. }
        | ServerMsg::Admitted { room }
        | ServerMsg::RoomState { room } => room,
        _ => return vec![msg],
    };
    let mut rest_people = room
        .participants
        .split_off(room.participants.len().min(PARTICIPANTS_PER_FRAME));
    let chat = std::mem::take(&mut room.chat);
    let mut chat_pieces = chunk_chat(chat).into_iter();
    room.chat = chat_pieces.next().unwrap_or_default();
    let mut out = vec![msg];
    while !rest_people.is_empty() {
        let next = rest_people.split_off(rest_people.len().min(PARTICIPANTS_PER_FRAME));
        out.push(ServerMsg::MoreParticipants {
            participants: std::mem::replace(&mut rest_people, next),
        });
    }
    out.extend(chat_pieces.map(|chat| ServerMsg::MoreChat { chat }));
    out
}

/// Chat history in runs of about [`CHAT_BYTES_PER_FRAME`] bytes of text, oldest first.
fn chunk_chat(chat: Vec<ChatView>) -> Vec<Vec<ChatView>> {
    let mut pieces: Vec<Vec<ChatView>> = Vec::new();
    let mut bytes = 0;
    for m in chat {
        let len = m.text.len() + m.name.len();
        match pieces.last_mut() {
            Some(piece) if bytes + len <= CHAT_BYTES_PER_FRAME => {
                bytes += len;
                piece.push(m);
            }
            _ => {
                bytes = len;
                pieces.push(vec![m]);
            }
        }
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use circle_protocol::{FloorView, ParticipantView, Presence, Role, RoomSnapshot, Settings};

    fn person(i: usize) -> ParticipantView {
        ParticipantView {
            id: ParticipantId(format!("p{i}")),
            name: format!("Person {i}"),
            role: Role::Member,
            presence: Presence::Online,
            hand_raised_at: None,
            self_muted: true,
            muted_by_facilitator: false,
            chat_allowed: true,
            stream: None,
        }
    }

    fn line(i: u64, len: usize) -> ChatView {
        ChatView {
            id: i,
            from: ParticipantId("p0".into()),
            name: "Person 0".into(),
            text: "x".repeat(len),
            at: i,
            private: false,
            to: None,
        }
    }

    #[test]
    fn a_large_snapshot_goes_out_in_pieces_that_add_up_to_it() {
        let room = RoomSnapshot {
            title: "t".into(),
            settings: Settings::default(),
            participants: (0..20).map(person).collect(),
            counts: None,
            floor: FloorView {
                speaker: None,
                queue: Vec::new(),
            },
            chat: (1..=5).map(|i| line(i, 700)).collect(),
            standing: false,
            opens_at: None,
            facilitator_present: false,
            connection_quality: Vec::new(),
        };
        let pieces = in_pieces(ServerMsg::RoomState { room: room.clone() });
        let mut people = Vec::new();
        let mut chat = Vec::new();
        for (i, p) in pieces.iter().enumerate() {
            let frame = serde_json::to_string(p).unwrap();
            assert!(frame.len() < 4096, "piece {i} is {} bytes", frame.len());
            match p {
                ServerMsg::RoomState { room } if i == 0 => {
                    people.extend(room.participants.clone());
                    chat.extend(room.chat.clone());
                }
                ServerMsg::MoreParticipants { participants } => people.extend(participants.clone()),
                ServerMsg::MoreChat { chat: more } => chat.extend(more.clone()),
                other => panic!("unexpected piece {other:?}"),
            }
        }
        assert_eq!(people, room.participants);
        assert_eq!(chat, room.chat);
        assert_eq!(in_pieces(ServerMsg::MeetingEnded).len(), 1);
    }
}
