//! Circle's websocket wire types, shared by the server, the test client and the load tools.
//!
//! # Layout
//! - [`ClientMsg`]: everything a browser may send, one variant per message type, tagged by `"type"`.
//! - [`ServerMsg`]: everything the server sends, replies and events alike.
//! - [`ErrorCode`]: the closed list of error codes an `error` reply may carry.
//! - Views ([`ParticipantView`], [`FloorView`], [`ChatView`], [`RoomSnapshot`]): what a client is shown.
//!
//! Every frame is one JSON object. A client may add `"id"` (a number or string of its choosing) to any
//! request; the server echoes it in the one `ack`, `error` or `joined` that answers that request, so a
//! client can match replies to requests. Events carry no id.
//!
//! This crate holds types and their serde shape only: no IO, no validation beyond what serde does.
//! Validation (name length, chat length) happens at the server's edge, and the room never sees bad input.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The protocol version this build speaks. A client names the version it speaks in `join` / `resume`.
pub const PROTOCOL_VERSION: u32 = 1;

/// A request id chosen by the client and echoed back in the reply to that request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    /// A numeric id, the usual choice.
    Num(u64),
    /// A string id, for clients that prefer them.
    Str(String),
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }
    };
}

string_id!(
    /// A room's id: 128 random bits, URL-safe base64 without padding (22 characters).
    RoomId
);
string_id!(
    /// A participant's id within one room, random, stable across reconnects; also the session id.
    ParticipantId
);

/// A chat message's id, increasing within one room.
pub type MessageId = u64;

/// Milliseconds since the Unix epoch, on the server's clock.
pub type Millis = u64;

/// A participant's role in the room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// An ordinary member.
    Member,
    /// A facilitator or co-facilitator.
    Facilitator,
}

/// Where a participant is in the meeting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// In the waiting room, not yet admitted.
    Waiting,
    /// In the room with a live connection.
    Online,
    /// In the room, connection lost, inside the grace period.
    Reconnecting,
}

/// Room settings that a facilitator can change at any time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Joiners wait until a facilitator admits them.
    pub waiting_room: bool,
    /// Members see facilitators and a count, not each other's names.
    pub roster_privacy: bool,
    /// Only the floor holder and facilitators may be heard.
    pub one_speaker: bool,
    /// Members join muted by the facilitator and need "allow to speak" before they can unmute.
    pub mute_on_entry: bool,
    /// Length of a timed share in seconds; `null` for untimed shares.
    pub share_secs: Option<u32>,
    /// How many seconds before the end of a timed share the warning is sent.
    pub share_warning_secs: u32,
    /// When a timed share expires, the floor returns to the facilitator.
    pub auto_end_share: bool,
    /// Room chat is on.
    pub chat_enabled: bool,
    /// New joins are refused (facilitators with the secret can still join).
    pub locked: bool,
    /// Silent reactions (`react`) are on. Absent in settings stored before reactions existed: on.
    #[serde(default = "reactions_default")]
    pub reactions: bool,
}

/// Reactions are on unless a facilitator turns them off.
fn reactions_default() -> bool {
    true
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            waiting_room: true,
            roster_privacy: false,
            one_speaker: false,
            mute_on_entry: true,
            share_secs: None,
            share_warning_secs: 30,
            auto_end_share: false,
            chat_enabled: true,
            locked: false,
            reactions: true,
        }
    }
}

/// A partial update of [`Settings`]: absent fields are left unchanged.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    /// See [`Settings::waiting_room`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_room: Option<bool>,
    /// See [`Settings::roster_privacy`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roster_privacy: Option<bool>,
    /// See [`Settings::one_speaker`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_speaker: Option<bool>,
    /// See [`Settings::mute_on_entry`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mute_on_entry: Option<bool>,
    /// See [`Settings::share_secs`]; `0` turns the timer off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_secs: Option<u32>,
    /// See [`Settings::share_warning_secs`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_warning_secs: Option<u32>,
    /// See [`Settings::auto_end_share`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_end_share: Option<bool>,
    /// See [`Settings::chat_enabled`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_enabled: Option<bool>,
    /// See [`Settings::locked`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked: Option<bool>,
    /// See [`Settings::reactions`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reactions: Option<bool>,
}

/// A silent reaction: shown for a moment next to the sender's name, never heard, never stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reaction {
    /// "Thank you".
    Thanks,
    /// "Me too".
    MeToo,
    /// A heart: warmth, support.
    Heart,
    /// Applause, silently.
    Clap,
}

/// How well a participant's voice connection works, as their own browser measures it (packet loss,
/// jitter, round trip). Only the level crosses the wire, never the numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionLevel {
    /// Nothing to notice.
    Good,
    /// Some loss or delay: speech may break up now and then.
    Fair,
    /// Heavy loss or delay: others probably cannot follow them.
    Poor,
}

/// One participant's last reported connection level, in a facilitator's snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionReport {
    /// Whose connection.
    pub participant: ParticipantId,
    /// Their last reported level.
    pub level: ConnectionLevel,
}

/// Every message a client may send. Facilitator-only messages are marked; a member sending one gets
/// `forbidden` and nothing changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMsg {
    /// Join a room under a pseudonym. The first message on a socket (or `resume`).
    Join {
        /// Optional request id, echoed in the reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The protocol version the client speaks.
        protocol: u32,
        /// The room to join.
        room: RoomId,
        /// The pseudonym: 1–32 visible characters after trimming, unique in the room.
        name: String,
        /// The facilitator secret from the facilitator link; makes the joiner a facilitator.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
        /// A random id the browser keeps for this room, so that a ban outlives a new join by link.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<String>,
        /// A `carry_over` token from before a graceful restart of the server: the new meeting of this
        /// standing room restores the role, admission, raised hand and facilitator mute it holds (and
        /// takes the pseudonym and device id from it, not from `name` / `device`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        carry: Option<String>,
    },
    /// Take back a session after a dropped connection, within the grace period.
    Resume {
        /// Optional request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The protocol version the client speaks.
        protocol: u32,
        /// The room the session belongs to.
        room: RoomId,
        /// The resume token from `joined`.
        token: String,
    },
    /// Leave the room for good.
    Leave {
        /// Optional request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
    },
    /// Raise one's hand: join the end of the speaking queue.
    RaiseHand {
        /// Optional request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
    },
    /// Lower one's own hand, or (facilitator) another participant's.
    LowerHand {
        /// Optional request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// Whose hand; absent means one's own. Facilitator-only when it names someone else.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        participant: Option<ParticipantId>,
    },
    /// Mute or unmute one's own microphone.
    SetSelfMute {
        /// Optional request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// `true` to mute.
        muted: bool,
    },
    /// Send a message to the room chat.
    Chat {
        /// Optional request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The text, 1–2,000 characters after trimming.
        text: String,
    },
    /// Send a private message: from a member to the facilitators; from a facilitator to one member
    /// (`to`) and the other facilitators.
    ChatPrivate {
        /// Optional request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The text, 1–2,000 characters after trimming.
        text: String,
        /// The member a facilitator replies to; members leave it out.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<ParticipantId>,
    },
    /// Facilitator: let one waiting participant in.
    Admit {
        /// Optional request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The waiting participant.
        participant: ParticipantId,
    },
    /// Facilitator: let everyone waiting in.
    AdmitAll {
        /// Optional request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
    },
    /// Facilitator: turn one waiting participant away.
    Deny {
        /// Optional request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The waiting participant.
        participant: ParticipantId,
    },
    /// Facilitator: give the floor to the first in the queue.
    NextSpeaker {
        /// Optional request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
    },
    /// Facilitator: give the floor to a named participant (hand raised or not).
    GiveFloor {
        /// Optional request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// Who gets the floor.
        participant: ParticipantId,
    },
    /// Facilitator: take the floor back; nobody holds it.
    TakeFloor {
        /// Optional request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
    },
    /// Facilitator: move a raised hand to a position in the queue (0 is next).
    MoveHand {
        /// Optional request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// Whose hand.
        participant: ParticipantId,
        /// The new position; past the end means last.
        position: usize,
    },
    /// Facilitator: lower every hand.
    LowerAllHands {
        /// Optional request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
    },
    /// Facilitator: mute one member; they cannot unmute until allowed.
    Mute {
        /// Optional request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The member.
        participant: ParticipantId,
    },
    /// Facilitator: mute every member (facilitators are left alone).
    MuteAll {
        /// Optional request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
    },
    /// Facilitator: allow a member muted by a facilitator to unmute themselves.
    AllowSpeak {
        /// Optional request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The member.
        participant: ParticipantId,
    },
    /// Facilitator: remove a member from the meeting (they may join again by the link).
    Remove {
        /// Optional request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The member.
        participant: ParticipantId,
    },
    /// Facilitator: remove a member and refuse their session and device for the rest of the meeting.
    Ban {
        /// Optional request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The member.
        participant: ParticipantId,
    },
    /// Facilitator: make a member a co-facilitator.
    Promote {
        /// Optional request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The member.
        participant: ParticipantId,
    },
    /// Facilitator: make another facilitator a member again.
    Demote {
        /// Optional request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The facilitator.
        participant: ParticipantId,
    },
    /// Facilitator: delete a chat message from everyone's view and the history.
    DeleteChat {
        /// Optional request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The message.
        message: MessageId,
    },
    /// Facilitator: stop or restore one member's chat.
    SetChatAllowed {
        /// Optional request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The member.
        participant: ParticipantId,
        /// `false` stops their chat.
        allowed: bool,
    },
    /// Facilitator: change room settings (lock, chat on/off, timer, modes).
    UpdateSettings {
        /// Optional request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The fields to change.
        settings: SettingsPatch,
    },
    /// Facilitator: end the meeting for everyone; all its state is dropped.
    EndMeeting {
        /// Optional request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
    },
    /// Facilitator, standing rooms only: replace a link that leaked. The old link stops working for
    /// new joins at once; everyone already in stays. Every facilitator then gets `links`.
    RotateLink {
        /// Optional request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// Which link.
        link: LinkKind,
    },
    /// Start a media (voice) session: the client's SDP offer with its microphone track. Always starts
    /// a fresh session, replacing any earlier one (after a reconnect, or as an ICE restart). Answered by
    /// `media_answer`.
    MediaOffer {
        /// Optional request id, echoed in `media_answer` or `error`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The offer SDP.
        sdp: String,
    },
    /// The client's answer to the server's `media_offer` (a renegotiation).
    MediaAnswer {
        /// Optional request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The answer SDP.
        sdp: String,
    },
    /// A trickled ICE candidate from the client.
    MediaCandidate {
        /// Optional request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The candidate.
        candidate: IceCandidate,
    },
    /// A silent reaction, shown for a moment next to your name to those who see you. Rate limited;
    /// refused while the room's `reactions` setting is off.
    React {
        /// Optional request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// Which reaction.
        reaction: Reaction,
    },
    /// Your voice connection's level as your browser measures it; send it when it changes. Only
    /// facilitators are told.
    ConnectionQuality {
        /// Optional request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The level.
        level: ConnectionLevel,
    },
}

/// One of a standing room's two links.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    /// The members' link (`#room=…`): a new room id.
    Members,
    /// The facilitator link (`#room=…&key=…`): a new facilitator secret.
    Facilitator,
}

/// An ICE candidate, as a browser's `RTCIceCandidateInit` (in snake case).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceCandidate {
    /// The `candidate:` line.
    pub candidate: String,
    /// The media section it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    /// The index of that media section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mline_index: Option<u16>,
}

/// A STUN or TURN server the client should use, as a browser's `RTCIceServer`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// `stun:` / `turn:` / `turns:` URLs.
    pub urls: Vec<String>,
    /// TURN user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

impl ClientMsg {
    /// Every `type` a client may send, for telling an unknown type from a malformed known one.
    pub const TYPES: &'static [&'static str] = &[
        "join",
        "resume",
        "leave",
        "raise_hand",
        "lower_hand",
        "set_self_mute",
        "chat",
        "chat_private",
        "admit",
        "admit_all",
        "deny",
        "next_speaker",
        "give_floor",
        "take_floor",
        "move_hand",
        "lower_all_hands",
        "mute",
        "mute_all",
        "allow_speak",
        "remove",
        "ban",
        "promote",
        "demote",
        "delete_chat",
        "set_chat_allowed",
        "update_settings",
        "end_meeting",
        "rotate_link",
        "media_offer",
        "media_answer",
        "media_candidate",
        "react",
        "connection_quality",
    ];

    /// The request id the client attached, if any.
    pub fn request_id(&self) -> Option<&RequestId> {
        use ClientMsg::*;
        match self {
            Join { id, .. }
            | Resume { id, .. }
            | Leave { id }
            | RaiseHand { id }
            | LowerHand { id, .. }
            | SetSelfMute { id, .. }
            | Chat { id, .. }
            | ChatPrivate { id, .. }
            | Admit { id, .. }
            | AdmitAll { id }
            | Deny { id, .. }
            | NextSpeaker { id }
            | GiveFloor { id, .. }
            | TakeFloor { id }
            | MoveHand { id, .. }
            | LowerAllHands { id }
            | Mute { id, .. }
            | MuteAll { id }
            | AllowSpeak { id, .. }
            | Remove { id, .. }
            | Ban { id, .. }
            | Promote { id, .. }
            | Demote { id, .. }
            | DeleteChat { id, .. }
            | SetChatAllowed { id, .. }
            | UpdateSettings { id, .. }
            | EndMeeting { id }
            | RotateLink { id, .. }
            | MediaOffer { id, .. }
            | MediaAnswer { id, .. }
            | MediaCandidate { id, .. }
            | React { id, .. }
            | ConnectionQuality { id, .. } => id.as_ref(),
        }
    }
}

/// What one participant looks like to others.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantView {
    /// The participant's id.
    pub id: ParticipantId,
    /// Their pseudonym.
    pub name: String,
    /// Member or facilitator.
    pub role: Role,
    /// Waiting, online or reconnecting.
    pub presence: Presence,
    /// When they raised their hand (server clock), or `null`.
    pub hand_raised_at: Option<Millis>,
    /// They muted their own microphone.
    pub self_muted: bool,
    /// A facilitator muted them; they cannot unmute until allowed.
    pub muted_by_facilitator: bool,
    /// A facilitator stopped their chat.
    pub chat_allowed: bool,
    /// The stream id of the track that carries their voice to you (`MediaStream.id` in `ontrack`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
}

/// One raised hand in the speaking queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEntry {
    /// Whose hand; `null` for another member when roster privacy hides members from members.
    pub participant: Option<ParticipantId>,
    /// Their pseudonym, `null` when hidden.
    pub name: Option<String>,
    /// When they raised it (server clock).
    pub raised_at: Millis,
}

/// Who holds the floor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Speaker {
    /// The floor holder.
    pub participant: ParticipantId,
    /// Their pseudonym (always shown: everyone hears them).
    pub name: String,
    /// When they got the floor.
    pub since: Millis,
    /// When a timed share ends, or `null`.
    pub ends_at: Option<Millis>,
}

/// The speaking order: the floor holder and the queue of raised hands, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FloorView {
    /// Who holds the floor, if anyone.
    pub speaker: Option<Speaker>,
    /// Raised hands in speaking order.
    pub queue: Vec<QueueEntry>,
}

/// One chat message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatView {
    /// The server's id for it.
    pub id: MessageId,
    /// The author.
    pub from: ParticipantId,
    /// The author's pseudonym at the time.
    pub name: String,
    /// The text.
    pub text: String,
    /// When the server received it.
    pub at: Millis,
    /// `true` for a private message (to or from the facilitators).
    pub private: bool,
    /// For a facilitator's private reply: the member it went to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<ParticipantId>,
}

/// How many people are in the room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Admitted members (online or reconnecting).
    pub members: usize,
    /// Facilitators.
    pub facilitators: usize,
    /// People in the waiting room.
    pub waiting: usize,
}

/// The whole room as one participant may see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSnapshot {
    /// The room's title.
    pub title: String,
    /// Current settings.
    pub settings: Settings,
    /// Participants this client may see (with roster privacy, members see facilitators and themselves).
    pub participants: Vec<ParticipantView>,
    /// Head counts; `null` while you wait in the waiting room.
    pub counts: Option<Counts>,
    /// The speaking order.
    pub floor: FloorView,
    /// Recent room chat, oldest first.
    pub chat: Vec<ChatView>,
    /// `true` for a standing room (a group's link that works every week).
    #[serde(default)]
    pub standing: bool,
    /// While a standing room's meeting has not opened yet: when it opens (Unix ms), and members wait
    /// until then (or until a facilitator arrives). `null` once open, and always for ad-hoc rooms.
    #[serde(default)]
    pub opens_at: Option<Millis>,
    /// `true` while a facilitator is in the meeting (online, or reconnecting inside the grace
    /// period). Told to everyone, the waiting room included; changes come as `facilitator_present`.
    #[serde(default)]
    pub facilitator_present: bool,
    /// For facilitators only: the connection levels members reported that are not `good` (empty,
    /// and left out, for everyone else).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connection_quality: Vec<ConnectionReport>,
}

/// Why a participant left or was disconnected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// They left.
    Left,
    /// Their connection dropped and the grace period ran out.
    TimedOut,
    /// A facilitator removed them.
    Removed,
    /// A facilitator banned them.
    Banned,
    /// A facilitator turned them away from the waiting room.
    Denied,
    /// The meeting ended.
    MeetingEnded,
    /// Their connection could not keep up and was dropped.
    SlowConsumer,
    /// They joined again from another connection, which replaced this one.
    Replaced,
    /// The server is shutting down.
    ServerShutdown,
}

/// Every message the server sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// Reply to `join` or `resume`: who you are and what you may see.
    Joined {
        /// The request id of the `join` / `resume`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The protocol version the server speaks.
        protocol: u32,
        /// Your participant (session) id.
        you: ParticipantId,
        /// Your role.
        role: Role,
        /// Token for `resume` after a dropped connection.
        resume_token: String,
        /// How long the server keeps your place after a drop, in seconds.
        grace_secs: u64,
        /// `true` while you are in the waiting room: `room` then holds only the title and yourself.
        waiting: bool,
        /// `true` when this took up a place you already had: a `resume`, or a `join` from the same
        /// browser (same name and device id) while your earlier session was still in the room.
        #[serde(default)]
        resumed: bool,
        /// The server's clock now (Unix ms), so a client can show share timers right even when its
        /// own clock is off.
        server_time: Millis,
        /// `true` when the server relays voice: send `media_offer` to start.
        media: bool,
        /// STUN / TURN servers for the client's `RTCPeerConnection`.
        #[serde(default)]
        ice_servers: Vec<IceServer>,
        /// The room as you may see it.
        room: RoomSnapshot,
    },
    /// The request with this id was carried out; its effects arrive as events.
    Ack {
        /// The request id.
        id: RequestId,
    },
    /// A request failed; nothing changed.
    Error {
        /// The request id, when the request carried one and could be read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// A stable, machine-readable code.
        code: ErrorCode,
        /// A human-readable explanation (English).
        message: String,
        /// With `wrong_node`: the websocket URL of the node that holds the meeting (a node of the
        /// same cluster, from its registry). Send the same `join` / `resume` there.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
    },
    /// You were admitted from the waiting room: here is the room.
    Admitted {
        /// The room as you may see it now.
        room: RoomSnapshot,
    },
    /// Someone entered your view (joined, was admitted, or became visible).
    ParticipantJoined {
        /// Them.
        participant: ParticipantView,
    },
    /// Someone's state changed (hand, mute, presence, chat permission, admission for facilitators).
    /// Role changes rebuild everyone's view with `room_state` instead.
    ParticipantUpdated {
        /// Them, as they are now.
        participant: ParticipantView,
    },
    /// Someone left your view.
    ParticipantLeft {
        /// Who.
        participant: ParticipantId,
        /// Why.
        reason: LeaveReason,
    },
    /// The head counts changed.
    Counts {
        /// The new counts.
        counts: Counts,
    },
    /// The speaking order changed.
    Floor {
        /// The new speaking order.
        floor: FloorView,
    },
    /// The current timed share is about to end.
    ShareWarning {
        /// The floor holder.
        participant: ParticipantId,
        /// Seconds left.
        remaining_secs: u32,
    },
    /// The current timed share has run out (with auto-end, a `floor` event follows).
    ShareExpired {
        /// The floor holder.
        participant: ParticipantId,
    },
    /// A chat message (room or private).
    Chat {
        /// The message.
        message: ChatView,
    },
    /// A facilitator deleted a chat message.
    ChatDeleted {
        /// Which.
        message: MessageId,
    },
    /// Room settings changed.
    Settings {
        /// The new settings.
        settings: Settings,
    },
    /// Your view of the room was rebuilt (roster privacy or your role changed): replace what you had.
    RoomState {
        /// The room as you may see it now.
        room: RoomSnapshot,
    },
    /// More participants of the snapshot just sent (`joined`, `admitted` or `room_state`), which
    /// arrives in pieces when it is large: add them to the roster. Sent right after the snapshot,
    /// before any other message.
    MoreParticipants {
        /// The next participants, in roster order.
        participants: Vec<ParticipantView>,
    },
    /// More chat history of the snapshot just sent, oldest first: append it. Sent right after the
    /// snapshot (and its `more_participants`), before any other message.
    MoreChat {
        /// The next history messages.
        chat: Vec<ChatView>,
    },
    /// To everyone, the waiting room included: whether a facilitator is in the meeting now changed
    /// (the last one left or timed out, or one arrived or was made one).
    FacilitatorPresent {
        /// `true` while a facilitator is here (online, or reconnecting inside the grace period).
        present: bool,
    },
    /// Your own media permission: whether the server currently forwards your audio.
    Hearing {
        /// `true` when you may be heard (not muted, not silenced by one-speaker mode).
        may_be_heard: bool,
    },
    /// You are being disconnected by the server; `message` says why and whether rejoining makes sense
    /// (after a removal, a ban or a denial it does not; after a shutdown or a slow connection it does).
    Removed {
        /// Why.
        reason: LeaveReason,
        /// A fixed, human-readable explanation.
        message: String,
    },
    /// The meeting is over; the server closes every connection.
    MeetingEnded,
    /// The server's answer to your `media_offer`.
    MediaAnswer {
        /// The request id of the `media_offer`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The answer SDP.
        sdp: String,
    },
    /// The server renegotiates your media session (someone's voice track came or went): answer with
    /// `media_answer`.
    MediaOffer {
        /// The offer SDP.
        sdp: String,
    },
    /// A trickled ICE candidate from the server.
    MediaCandidate {
        /// The candidate.
        candidate: IceCandidate,
    },
    /// Who is speaking now, from audio levels (at most a few times a second, only on change).
    Speakers {
        /// The participants speaking; empty for silence.
        participants: Vec<ParticipantId>,
    },
    /// To facilitators, after a link of this standing room was rotated: the links that work now.
    Links {
        /// The members' link.
        join_url: String,
        /// The facilitator link, when the server knows the secret (it keeps only a hash: it knows the
        /// secret after a rotation of the facilitator link, or from a facilitator who joined by it
        /// during this meeting); `null` otherwise: keep using yours, with the new `#room=`.
        facilitator_url: Option<String>,
    },
    /// Someone who sees the sender reacted silently (`react`); show it for a moment next to their
    /// name. Not kept: a late joiner never sees earlier reactions.
    Reaction {
        /// Who reacted.
        participant: ParticipantId,
        /// Which reaction.
        reaction: Reaction,
    },
    /// To facilitators only: a participant's connection level changed (`connection_quality`).
    ConnectionQuality {
        /// Whose connection.
        participant: ParticipantId,
        /// The new level.
        level: ConnectionLevel,
    },
    /// Sent to each member of a standing room's meeting just before a graceful restart closes the
    /// connection: a signed token (valid 10 minutes, kept only by the client) that `join` takes as
    /// `carry` once the server is back, to restore role, admission, raised hand and facilitator mute.
    CarryOver {
        /// The token.
        token: String,
    },
}

/// The closed list of error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame was not valid JSON (or not a JSON object).
    BadJson,
    /// The frame had no `type` field, a missing or wrongly typed field, or an unknown field.
    BadRequest,
    /// The `type` is not one this server knows.
    UnknownType,
    /// The frame was larger than the protocol limit.
    FrameTooLarge,
    /// The client speaks a protocol version this server does not.
    UnsupportedProtocol,
    /// A request other than `join` / `resume` on a socket that has not joined.
    NotJoined,
    /// A second `join` / `resume` on a socket that already joined.
    AlreadyJoined,
    /// No such room (never existed, or the meeting ended).
    RoomNotFound,
    /// The room is locked.
    RoomLocked,
    /// The room is at its maximum size.
    RoomFull,
    /// The pseudonym is empty, too long, or has control characters.
    InvalidName,
    /// Someone in the room already uses this pseudonym.
    NameTaken,
    /// The facilitator secret is wrong.
    BadSecret,
    /// The resume token is forged, malformed or for another room.
    InvalidToken,
    /// The resume token has expired.
    TokenExpired,
    /// The session is gone (grace period over, removed, or left).
    SessionGone,
    /// You were banned from this room.
    Banned,
    /// Only facilitators may do that.
    Forbidden,
    /// You are in the waiting room; wait to be admitted.
    Waiting,
    /// No such participant (or not in the state the request needs).
    UnknownParticipant,
    /// The request does not apply to that participant (e.g. muting a facilitator).
    BadTarget,
    /// No such chat message.
    UnknownMessage,
    /// Chat text is empty or over the limit.
    InvalidText,
    /// Room chat is off.
    ChatDisabled,
    /// A facilitator stopped your chat.
    ChatNotAllowed,
    /// A facilitator muted you; wait to be allowed to speak.
    MutedByFacilitator,
    /// Reactions are turned off in this room.
    ReactionsDisabled,
    /// Too many requests; slow down.
    RateLimited,
    /// This server does not relay voice.
    MediaUnavailable,
    /// The media request failed: a malformed SDP or candidate, or no media session to apply it to.
    MediaFailed,
    /// The server is draining for a restart: it starts no new meeting (a meeting in progress goes
    /// on, and may still be joined).
    ServerDraining,
    /// `rotate_link` in a room that is not a standing room (ad-hoc links cannot be rotated).
    NotStanding,
    /// The server's database of standing rooms cannot be reached right now (locked, unreachable
    /// or full); meetings in progress go on. Try again in a minute.
    StorageUnavailable,
    /// Cluster mode: this meeting is held by another node of the cluster; the error's `url` is that
    /// node's websocket URL. Send the same `join` / `resume` there.
    WrongNode,
    /// Cluster mode: this node cannot reach the cluster's registry (Redis) right now, so it cannot
    /// tell where a meeting is or start a new one; meetings it holds go on. Try again in a moment.
    ClusterUnavailable,
    /// The server could not do it for a reason of its own.
    Internal,
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = serde_json::to_value(self).map_err(|_| fmt::Error)?;
        f.write_str(v.as_str().unwrap_or("internal"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_reads_from_documented_json() {
        let m: ClientMsg = serde_json::from_str(
            r#"{"type":"join","id":1,"protocol":1,"room":"abc","name":"Sam"}"#,
        )
        .unwrap();
        assert_eq!(m.request_id(), Some(&RequestId::Num(1)));
        assert!(matches!(m, ClientMsg::Join { name, .. } if name == "Sam"));
    }

    #[test]
    fn every_listed_type_is_a_variant() {
        // A listed type with no fields either parses or fails for a missing field, never as unknown.
        for t in ClientMsg::TYPES {
            let err = serde_json::from_str::<ClientMsg>(&format!(r#"{{"type":"{t}"}}"#))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(!err.contains("unknown variant"), "{t}: {err}");
        }
    }

    #[test]
    fn error_codes_are_snake_case_on_the_wire() {
        let s = serde_json::to_string(&ServerMsg::Error {
            id: Some(RequestId::Str("a".into())),
            code: ErrorCode::RateLimited,
            message: "slow down".into(),
            url: None,
        })
        .unwrap();
        assert_eq!(
            s,
            r#"{"type":"error","id":"a","code":"rate_limited","message":"slow down"}"#
        );
    }
}
