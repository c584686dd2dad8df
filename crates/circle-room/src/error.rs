//! The room's errors: every way a request can be refused. The edge maps each to a wire code.

use thiserror::Error;

/// Why the room refused a request. Nothing changed when one of these is returned.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RoomError {
    /// The meeting has ended; the room no longer exists.
    #[error("the meeting has ended")]
    Ended,
    /// The room is locked against new joins.
    #[error("the room is locked")]
    Locked,
    /// The room is at its maximum size.
    #[error("the room is full")]
    Full,
    /// The pseudonym failed validation.
    #[error("invalid name: {0}")]
    InvalidName(&'static str),
    /// Someone in the room already uses this pseudonym.
    #[error("someone in the room already uses this name")]
    NameTaken,
    /// The session or device was banned from this room.
    #[error("you cannot join this meeting")]
    Banned,
    /// The session is not in the room any more.
    #[error("this session has ended")]
    SessionGone,
    /// Only facilitators may do that.
    #[error("only a facilitator can do that")]
    Forbidden,
    /// The sender is still in the waiting room.
    #[error("you are in the waiting room")]
    Waiting,
    /// The named participant is not in the room, or not in the state the request needs.
    #[error("no such participant")]
    UnknownParticipant,
    /// The request does not apply to that participant.
    #[error("{0}")]
    BadTarget(&'static str),
    /// No such chat message.
    #[error("no such message")]
    UnknownMessage,
    /// Chat text failed validation.
    #[error("invalid message: {0}")]
    InvalidText(String),
    /// Room chat is off.
    #[error("chat is turned off")]
    ChatDisabled,
    /// A facilitator stopped this member's chat.
    #[error("a facilitator has paused your chat")]
    ChatNotAllowed,
    /// Links can be rotated in standing rooms only.
    #[error("this room's links cannot be rotated: only a standing room's can")]
    NotStanding,
    /// A facilitator turned reactions off in this room.
    #[error("reactions are turned off in this meeting")]
    ReactionsDisabled,
    /// Too many reactions (or connection reports) in a short time.
    #[error("that was a lot at once; wait a moment before the next")]
    RateLimited,
    /// A facilitator muted this member.
    #[error("a facilitator muted you; wait until you are allowed to speak")]
    MutedByFacilitator,
    /// A meeting's saved state cannot be trusted (another version, or it contradicts itself), so
    /// the meeting cannot be rebuilt from it.
    #[error("this meeting's saved state cannot be used: {0}")]
    BadState(&'static str),
}
