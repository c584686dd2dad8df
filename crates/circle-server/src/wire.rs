//! The edge's parsing: a websocket text frame becomes a [`ClientMsg`] or a precise error, and a
//! [`ClientMsg`] becomes a validated room [`Command`]. Also the one place where internal errors become
//! wire error codes.

use crate::auth::TokenError;
use circle_protocol::{ClientMsg, ErrorCode, RequestId, ServerMsg};
use circle_room::{ChatText, Command, RoomError};
use serde::Deserialize;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// An error on its way to the client: a code, a human message, and the request id if known.
#[derive(Debug, Clone)]
pub struct WireError {
    /// The stable code.
    pub code: ErrorCode,
    /// A human-readable explanation.
    pub message: String,
    /// With `wrong_node`: where the meeting is (a registered node's websocket URL).
    pub url: Option<String>,
}

impl WireError {
    /// An error with this code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            url: None,
        }
    }

    /// `wrong_node`: the meeting is held by the node at `url` (its websocket URL).
    pub fn wrong_node(url: String) -> Self {
        Self {
            url: Some(url),
            ..Self::new(
                ErrorCode::WrongNode,
                "this meeting is held by another server of this cluster: connect to `url`",
            )
        }
    }

    /// The `error` message that carries it.
    pub fn to_msg(&self, id: Option<RequestId>) -> ServerMsg {
        ServerMsg::Error {
            id,
            code: self.code,
            message: self.message.clone(),
            url: self.url.clone(),
        }
    }
}

impl From<&RoomError> for WireError {
    fn from(e: &RoomError) -> Self {
        let code = match e {
            RoomError::Ended => ErrorCode::RoomNotFound,
            RoomError::Locked => ErrorCode::RoomLocked,
            RoomError::Full => ErrorCode::RoomFull,
            RoomError::InvalidName(_) => ErrorCode::InvalidName,
            RoomError::NameTaken => ErrorCode::NameTaken,
            RoomError::Banned => ErrorCode::Banned,
            RoomError::SessionGone => ErrorCode::SessionGone,
            RoomError::Forbidden => ErrorCode::Forbidden,
            RoomError::Waiting => ErrorCode::Waiting,
            RoomError::UnknownParticipant => ErrorCode::UnknownParticipant,
            RoomError::BadTarget(_) => ErrorCode::BadTarget,
            RoomError::UnknownMessage => ErrorCode::UnknownMessage,
            RoomError::InvalidText(_) => ErrorCode::InvalidText,
            RoomError::ChatDisabled => ErrorCode::ChatDisabled,
            RoomError::ChatNotAllowed => ErrorCode::ChatNotAllowed,
            RoomError::MutedByFacilitator => ErrorCode::MutedByFacilitator,
            RoomError::NotStanding => ErrorCode::NotStanding,
            RoomError::ReactionsDisabled => ErrorCode::ReactionsDisabled,
            RoomError::RateLimited => ErrorCode::RateLimited,
            // A meeting whose saved state could not be used is gone, as far as a member can tell.
            RoomError::BadState(_) => ErrorCode::RoomNotFound,
        };
        Self::new(code, e.to_string())
    }
}

impl From<RoomError> for WireError {
    fn from(e: RoomError) -> Self {
        (&e).into()
    }
}

impl From<TokenError> for WireError {
    fn from(e: TokenError) -> Self {
        let code = match e {
            TokenError::Invalid | TokenError::Superseded | TokenError::Signing(_) => {
                ErrorCode::InvalidToken
            }
            TokenError::Expired => ErrorCode::TokenExpired,
        };
        Self::new(code, e.to_string())
    }
}

/// A message as one websocket text frame; the room actor serialises each message once for all its
/// recipients.
pub fn encode(msg: &ServerMsg) -> Option<Utf8Bytes> {
    match serde_json::to_string(msg) {
        Ok(s) => Some(Utf8Bytes::from(s)),
        Err(e) => {
            tracing::warn!(error = %e, "could not encode a server message");
            None
        }
    }
}

/// The fields every frame is read for first, so an error can name the request and say precisely what
/// was wrong, even when the rest of the frame is not a valid message.
#[derive(Deserialize)]
struct Head {
    #[serde(default)]
    id: Option<RequestId>,
    #[serde(default, rename = "type")]
    kind: Option<serde_json::Value>,
}

/// Reads one text frame. On failure returns the error and, when it could be read, the request id.
pub fn parse_frame(
    text: &str,
    max_bytes: usize,
) -> Result<ClientMsg, (Option<RequestId>, WireError)> {
    if text.len() > max_bytes {
        return Err((
            None,
            WireError::new(
                ErrorCode::FrameTooLarge,
                format!("a frame is at most {max_bytes} bytes"),
            ),
        ));
    }
    // serde reads a struct from a JSON array too; the protocol only has objects.
    if !text.trim_start().starts_with('{') {
        return Err((
            None,
            WireError::new(ErrorCode::BadJson, "a frame is one JSON object"),
        ));
    }
    let head: Head = serde_json::from_str(text).map_err(|e| {
        (
            None,
            WireError::new(ErrorCode::BadJson, format!("not a JSON object: {e}")),
        )
    })?;
    let id = head.id;
    let kind = match head.kind {
        Some(serde_json::Value::String(s)) => s,
        Some(_) => {
            return Err((
                id,
                WireError::new(ErrorCode::BadRequest, "`type` must be a string"),
            ));
        }
        None => return Err((id, WireError::new(ErrorCode::BadRequest, "missing `type`"))),
    };
    if !ClientMsg::TYPES.contains(&kind.as_str()) {
        return Err((
            id,
            WireError::new(ErrorCode::UnknownType, "unknown message type"),
        ));
    }
    serde_json::from_str::<ClientMsg>(text).map_err(|e| {
        (
            id,
            WireError::new(ErrorCode::BadRequest, strip_position(&e)),
        )
    })
}

/// serde's message without " at line 1 column 57", which means nothing to a client.
fn strip_position(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.find(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// The room command for a message from a joined participant. `join` and `resume` are not commands:
/// the connection handles them.
pub fn to_command(msg: ClientMsg, chat_max_chars: usize) -> Result<Command, WireError> {
    use ClientMsg as M;
    Ok(match msg {
        M::Join { .. } | M::Resume { .. } => {
            return Err(WireError::new(
                ErrorCode::AlreadyJoined,
                "this connection has already joined",
            ));
        }
        M::Leave { .. } => Command::Leave,
        M::RaiseHand { .. } => Command::RaiseHand,
        M::LowerHand { participant, .. } => Command::LowerHand(participant),
        M::SetSelfMute { muted, .. } => Command::SetSelfMute(muted),
        M::Chat { text, .. } => Command::Chat(ChatText::parse(&text, chat_max_chars)?),
        M::ChatPrivate { text, to, .. } => Command::ChatPrivate {
            text: ChatText::parse(&text, chat_max_chars)?,
            to,
        },
        M::Admit { participant, .. } => Command::Admit(participant),
        M::AdmitAll { .. } => Command::AdmitAll,
        M::Deny { participant, .. } => Command::Deny(participant),
        M::NextSpeaker { .. } => Command::NextSpeaker,
        M::GiveFloor { participant, .. } => Command::GiveFloor(participant),
        M::TakeFloor { .. } => Command::TakeFloor,
        M::MoveHand {
            participant,
            position,
            ..
        } => Command::MoveHand {
            participant,
            position,
        },
        M::LowerAllHands { .. } => Command::LowerAllHands,
        M::Mute { participant, .. } => Command::Mute(participant),
        M::MuteAll { .. } => Command::MuteAll,
        M::AllowSpeak { participant, .. } => Command::AllowSpeak(participant),
        M::Remove { participant, .. } => Command::Remove(participant),
        M::Ban { participant, .. } => Command::Ban(participant),
        M::Promote { participant, .. } => Command::Promote(participant),
        M::Demote { participant, .. } => Command::Demote(participant),
        M::DeleteChat { message, .. } => Command::DeleteChat(message),
        M::SetChatAllowed {
            participant,
            allowed,
            ..
        } => Command::SetChatAllowed {
            participant,
            allowed,
        },
        M::UpdateSettings { settings, .. } => Command::UpdateSettings(settings),
        M::EndMeeting { .. } => Command::EndMeeting,
        M::React { reaction, .. } => Command::React(reaction),
        M::ConnectionQuality { level, .. } => Command::ReportQuality(level),
        M::MediaOffer { .. }
        | M::MediaAnswer { .. }
        | M::MediaCandidate { .. }
        | M::RotateLink { .. } => {
            return Err(WireError::new(
                ErrorCode::BadRequest,
                "voice signalling and link rotation are not room commands",
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> ErrorCode {
        parse_frame(text, 1024).unwrap_err().1.code
    }

    #[test]
    fn each_kind_of_bad_frame_has_its_code() {
        assert_eq!(code("{nope"), ErrorCode::BadJson);
        assert_eq!(code("[1,2]"), ErrorCode::BadJson);
        assert_eq!(code(r#"{"id":3}"#), ErrorCode::BadRequest);
        assert_eq!(code(r#"{"type":"fly"}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"type":"chat"}"#), ErrorCode::BadRequest);
        assert_eq!(code(r#"{"type":"chat","text":5}"#), ErrorCode::BadRequest);
        assert_eq!(
            code(&format!(
                r#"{{"type":"chat","text":"{}"}}"#,
                "a".repeat(2000)
            )),
            ErrorCode::FrameTooLarge
        );
    }

    #[test]
    fn the_request_id_survives_a_bad_request() {
        let (id, e) = parse_frame(r#"{"type":"give_floor","id":"x1"}"#, 1024).unwrap_err();
        assert_eq!(id, Some(RequestId::Str("x1".into())));
        assert_eq!(e.code, ErrorCode::BadRequest);
        assert!(e.message.contains("participant"), "{}", e.message);
    }
}
