//! Active speakers from RFC 6464 audio levels (`urn:ietf:params:rtp-hdrext:ssrc-audio-level`).
//!
//! Each forwarded packet's level is counted into its publisher's [`LevelWindow`]; every
//! `speaker_interval` the SFU task asks each group who spoke in the window that ended and reports the set
//! when it changed. A gated (muted) publisher's packets are never counted, so it is never "speaking".

/// The URI of the client-to-mixer audio level header extension.
pub(crate) const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// Share of a window's packets that must be speech for the publisher to count as speaking: a quarter
/// (one word in a pause-filled window), so a single click does not light the indicator.
const SPEAKING_SHARE_DIVISOR: u32 = 4;

/// Per publisher: how many packets arrived in the current window, and how many were speech.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct LevelWindow {
    packets: u32,
    speech: u32,
}

impl LevelWindow {
    /// Counts one packet whose audio-level extension payload is `ext` (`None`: no extension).
    pub(crate) fn count(&mut self, ext: Option<&[u8]>, speech_level_dbov: u8) {
        self.packets = self.packets.saturating_add(1);
        // The first byte is V (voice activity, bit 7) and the level in −dBov (bits 0-6).
        if let Some(&byte) = ext.and_then(|e| e.first())
            && byte & 0x7f <= speech_level_dbov
        {
            self.speech = self.speech.saturating_add(1);
        }
    }

    /// Whether the window that just ended counts as speech, and starts a new one.
    pub(crate) fn take_speaking(&mut self) -> bool {
        let speaking =
            self.speech >= 2 && self.speech * SPEAKING_SHARE_DIVISOR >= self.packets.max(1);
        *self = LevelWindow::default();
        speaking
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loud_window_speaks_and_quiet_does_not() {
        let mut w = LevelWindow::default();
        for _ in 0..15 {
            w.count(Some(&[0x80 | 30]), 50);
        }
        assert!(w.take_speaking());
        for _ in 0..15 {
            w.count(Some(&[127]), 50);
        }
        assert!(!w.take_speaking());
        w.count(Some(&[10]), 50);
        for _ in 0..14 {
            w.count(None, 50);
        }
        assert!(!w.take_speaking(), "one loud packet is a click, not speech");
        assert!(!w.take_speaking(), "an empty window is silence");
        w.count(Some(&[]), 50);
        assert!(!w.take_speaking(), "an empty extension is not speech");
    }
}
