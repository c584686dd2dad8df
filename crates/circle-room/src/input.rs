//! Validated inputs: the room only ever sees a [`Pseudonym`] or [`ChatText`] that passed these checks.

use crate::RoomError;
use circle_protocol::{ConnectionLevel, MessageId, ParticipantId, Reaction, SettingsPatch};

/// Longest pseudonym, in characters, after trimming.
pub const MAX_NAME_CHARS: usize = 32;

/// Characters that render as nothing or reorder text; a name made of them could impersonate another.
/// These are Unicode's default-ignorable code points, less the variation selectors that emoji need.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF0}'..='\u{FFF8}'
        | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

/// Whether a text shown as a label (a name, a room title) holds a control character or one that renders
/// as nothing or reorders the text around it (a bidirectional override could make a title read as
/// something else).
pub fn has_hidden_characters(text: &str) -> bool {
    text.chars()
        .any(|c| c.is_control() || is_invisible_format(c))
}

/// A pseudonym: trimmed, 1–32 characters, no control or invisible formatting characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pseudonym(String);

impl Pseudonym {
    /// Checks and trims a pseudonym typed by a person.
    pub fn parse(raw: &str) -> Result<Self, RoomError> {
        let name = raw.trim();
        let chars = name.chars().count();
        if chars == 0 || chars > MAX_NAME_CHARS {
            return Err(RoomError::InvalidName("a name is 1 to 32 characters"));
        }
        if has_hidden_characters(name) {
            return Err(RoomError::InvalidName(
                "a name cannot hold control or invisible characters",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name as shown.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form two names are compared in: "Sam" and "sam " clash, and so do "Sam Lee" and
    /// "sam\u{a0} lee", which look the same on screen.
    pub(crate) fn folded(&self) -> String {
        self.0
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    }
}

/// A chat message's text: trimmed, non-empty, at most the room's limit, no control characters but
/// line breaks and tabs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatText(String);

impl ChatText {
    /// Checks and trims chat text against a limit in characters.
    pub fn parse(raw: &str, max_chars: usize) -> Result<Self, RoomError> {
        let text = raw.trim();
        if text.is_empty() {
            return Err(RoomError::InvalidText("a message cannot be empty".into()));
        }
        if text.chars().count() > max_chars {
            return Err(RoomError::InvalidText(format!(
                "a message is at most {max_chars} characters"
            )));
        }
        if text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err(RoomError::InvalidText(
                "a message cannot hold control characters".into(),
            ));
        }
        Ok(Self(text.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a joiner asks for.
#[derive(Clone, Debug)]
pub struct JoinRequest {
    /// The pseudonym.
    pub name: Pseudonym,
    /// They presented the right facilitator secret (checked by the edge, which holds it).
    pub facilitator: bool,
    /// The browser's per-room device id, for bans that outlive a new join by link.
    pub device: Option<String>,
    /// The stream id that will carry their voice (opaque to the room; shown in their view so clients
    /// can tell whose audio a track is).
    pub stream: Option<String>,
    /// Their place in this standing room's meeting before a graceful restart (from a carry-over
    /// token the edge checked): restored instead of a newcomer's.
    pub carry: Option<crate::Carried>,
}

/// A validated request from a joined participant.
#[derive(Clone, Debug)]
pub enum Command {
    /// Leave for good.
    Leave,
    /// Raise one's own hand.
    RaiseHand,
    /// Lower one's own hand (`None`) or someone else's (facilitator).
    LowerHand(Option<ParticipantId>),
    /// Mute (`true`) or unmute one's own microphone.
    SetSelfMute(bool),
    /// Room chat.
    Chat(ChatText),
    /// Private chat to the facilitators, or from a facilitator to one member.
    ChatPrivate {
        /// The text.
        text: ChatText,
        /// A facilitator's addressee.
        to: Option<ParticipantId>,
    },
    /// Facilitator: admit one waiting participant.
    Admit(ParticipantId),
    /// Facilitator: admit everyone waiting.
    AdmitAll,
    /// Facilitator: turn one waiting participant away.
    Deny(ParticipantId),
    /// Facilitator: floor to the first raised hand.
    NextSpeaker,
    /// Facilitator: floor to a named participant.
    GiveFloor(ParticipantId),
    /// Facilitator: take the floor back.
    TakeFloor,
    /// Facilitator: move a hand in the queue.
    MoveHand {
        /// Whose hand.
        participant: ParticipantId,
        /// New position, 0 is next.
        position: usize,
    },
    /// Facilitator: lower every hand.
    LowerAllHands,
    /// Facilitator: mute one member.
    Mute(ParticipantId),
    /// Facilitator: mute every member.
    MuteAll,
    /// Facilitator: let a muted member unmute.
    AllowSpeak(ParticipantId),
    /// Facilitator: remove a member.
    Remove(ParticipantId),
    /// Facilitator: remove and ban a member.
    Ban(ParticipantId),
    /// Facilitator: make a member a co-facilitator.
    Promote(ParticipantId),
    /// Facilitator: make a facilitator a member.
    Demote(ParticipantId),
    /// Facilitator: delete a chat message.
    DeleteChat(MessageId),
    /// Facilitator: stop or restore a member's chat.
    SetChatAllowed {
        /// The member.
        participant: ParticipantId,
        /// `false` stops their chat.
        allowed: bool,
    },
    /// Facilitator: change settings.
    UpdateSettings(SettingsPatch),
    /// Facilitator: end the meeting.
    EndMeeting,
    /// A silent reaction, shown next to one's name.
    React(Reaction),
    /// One's own connection level, for the facilitators.
    ReportQuality(ConnectionLevel),
}

impl Command {
    /// Commands only a facilitator may send (lowering another's hand is checked where it is handled).
    pub(crate) fn facilitator_only(&self) -> bool {
        !matches!(
            self,
            Command::Leave
                | Command::RaiseHand
                | Command::LowerHand(_)
                | Command::SetSelfMute(_)
                | Command::Chat(_)
                | Command::ChatPrivate { .. }
                | Command::React(_)
                | Command::ReportQuality(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(Pseudonym::parse("  Sam ").unwrap().as_str(), "Sam");
        assert!(Pseudonym::parse("   ").is_err());
        assert!(Pseudonym::parse(&"x".repeat(33)).is_err());
        assert!(Pseudonym::parse(&"é".repeat(32)).is_ok());
        assert!(Pseudonym::parse("Sam\u{0007}").is_err());
        assert!(Pseudonym::parse("Sa\u{202E}m").is_err());
    }

    #[test]
    fn chat_text_is_bounded() {
        assert!(ChatText::parse("hello\nthere", 2000).is_ok());
        assert!(ChatText::parse(" \n ", 2000).is_err());
        assert!(ChatText::parse(&"a".repeat(2001), 2000).is_err());
        assert!(ChatText::parse("bell\u{7}", 2000).is_err());
    }
}
