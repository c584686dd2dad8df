//! Chat: room messages with a bounded in-memory history for late joiners, private messages to the
//! facilitators, and chat moderation (delete a message, stop one member's chat, chat off for the room).
//! Nothing here is ever written anywhere: the history dies with the room.

use crate::{Audience, ChatText, Room, RoomError, StoredChat};
use circle_protocol::{ChatView, MessageId, Millis, ParticipantId, Role, ServerMsg};

impl Room {
    pub(crate) fn chat(
        &mut self,
        now: Millis,
        from: &ParticipantId,
        text: ChatText,
    ) -> Result<(), RoomError> {
        let p = self.admitted(from)?;
        if p.role == Role::Member {
            if !self.settings.chat_enabled {
                return Err(RoomError::ChatDisabled);
            }
            if !p.chat_allowed {
                return Err(RoomError::ChatNotAllowed);
            }
        }
        let stored = StoredChat {
            id: self.next_message_id,
            from: from.clone(),
            name: p.name.as_str().to_owned(),
            text: text.as_str().to_owned(),
            at: now,
        };
        self.next_message_id += 1;
        let message = stored.view();
        if self.limits.chat_history > 0 {
            if self.chat.len() == self.limits.chat_history {
                self.chat.pop_front();
            }
            self.chat.push_back(stored);
        }
        self.send(Audience::Admitted, ServerMsg::Chat { message });
        Ok(())
    }

    /// A private message: a member writes to the facilitators; a facilitator writes to the other
    /// facilitators, or replies to one member. Private messages are not kept in the history.
    pub(crate) fn chat_private(
        &mut self,
        now: Millis,
        from: &ParticipantId,
        text: ChatText,
        to: Option<ParticipantId>,
    ) -> Result<(), RoomError> {
        let p = self.admitted(from)?;
        let (audience, to) = match (p.role, to) {
            (Role::Member, _) if !p.chat_allowed => return Err(RoomError::ChatNotAllowed),
            // A member's private line always goes to the facilitators, whatever `to` says.
            (Role::Member, _) => (Audience::FacilitatorsAnd(from.clone()), None),
            (Role::Facilitator, Some(to)) => {
                self.admitted(&to)?;
                (Audience::FacilitatorsAnd(to.clone()), Some(to))
            }
            (Role::Facilitator, None) => (Audience::Facilitators, None),
        };
        let message = ChatView {
            id: self.next_message_id,
            from: from.clone(),
            name: p.name.as_str().to_owned(),
            text: text.as_str().to_owned(),
            at: now,
            private: true,
            to,
        };
        self.next_message_id += 1;
        self.send(audience, ServerMsg::Chat { message });
        Ok(())
    }

    pub(crate) fn delete_chat(&mut self, id: MessageId) -> Result<(), RoomError> {
        let at = self
            .chat
            .iter()
            .position(|m| m.id == id)
            .ok_or(RoomError::UnknownMessage)?;
        self.chat.remove(at);
        self.send(Audience::Admitted, ServerMsg::ChatDeleted { message: id });
        Ok(())
    }

    pub(crate) fn set_chat_allowed(
        &mut self,
        who: &ParticipantId,
        allowed: bool,
    ) -> Result<(), RoomError> {
        self.admitted_member(who)?;
        if let Some(p) = self.participants.get_mut(who)
            && p.chat_allowed != allowed
        {
            p.chat_allowed = allowed;
            self.participant_updated(who);
        }
        Ok(())
    }

    /// The room chat history, oldest first.
    pub(crate) fn chat_history(&self) -> Vec<ChatView> {
        self.chat.iter().map(StoredChat::view).collect()
    }
}

impl StoredChat {
    fn view(&self) -> ChatView {
        ChatView {
            id: self.id,
            from: self.from.clone(),
            name: self.name.clone(),
            text: self.text.clone(),
            at: self.at,
            private: false,
            to: None,
        }
    }
}
