//! Room settings changed by a facilitator: lock, chat on/off, share timer, one-speaker mode, roster
//! privacy, waiting room, mute on entry, reactions.

use crate::{Audience, Room, RoomError};
use circle_protocol::{Millis, ServerMsg, SettingsPatch};

impl Room {
    pub(crate) fn update_settings(
        &mut self,
        now: Millis,
        patch: SettingsPatch,
    ) -> Result<(), RoomError> {
        let _ = now;
        let before = self.settings.clone();
        let s = &mut self.settings;
        if let Some(v) = patch.waiting_room {
            s.waiting_room = v;
        }
        if let Some(v) = patch.roster_privacy {
            s.roster_privacy = v;
        }
        if let Some(v) = patch.one_speaker {
            s.one_speaker = v;
        }
        if let Some(v) = patch.mute_on_entry {
            s.mute_on_entry = v;
        }
        if let Some(v) = patch.share_secs {
            s.share_secs = (v > 0).then_some(v);
        }
        if let Some(v) = patch.share_warning_secs {
            s.share_warning_secs = v;
        }
        if let Some(v) = patch.auto_end_share {
            s.auto_end_share = v;
        }
        if let Some(v) = patch.chat_enabled {
            s.chat_enabled = v;
        }
        if let Some(v) = patch.locked {
            s.locked = v;
        }
        if let Some(v) = patch.reactions {
            s.reactions = v;
        }
        if self.settings == before {
            return Ok(());
        }
        let settings = self.settings.clone();
        self.send(Audience::All, ServerMsg::Settings { settings });
        if self.settings.roster_privacy != before.roster_privacy {
            self.resync_all();
        }
        Ok(())
    }
}

impl Room {
    /// Settings chosen when the room is created, before anyone is in it.
    pub fn apply_initial_settings(&mut self, patch: SettingsPatch) {
        let _ = self.update_settings(0, patch);
        self.outbox.clear();
        self.state_changed();
    }
}
