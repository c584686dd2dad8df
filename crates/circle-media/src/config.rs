//! How the SFU is set up: where it listens, what address it advertises, how it judges speech.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Settings for [`crate::spawn`].
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// The one UDP address every peer's media goes through (firewalls need one rule).
    pub bind: SocketAddr,
    /// The IP put in the ICE host candidate instead of the bound one: the public address of a 1:1 NAT,
    /// or the reachable address when `bind` is unspecified (`0.0.0.0`).
    pub advertised_ip: Option<IpAddr>,
    /// RFC 6464 level (−dBov, 0 loudest, 127 silence) at or under which a packet counts as speech.
    pub speech_level_dbov: u8,
    /// How often active speakers are evaluated; one event per group at most this often, and only when
    /// the set changed.
    pub speaker_interval: Duration,
    /// Most voices one session receives at once. Every voice is an m-line in that session's SDP, and
    /// a client's `media_answer` must fit the signalling frame limit (64 KiB): a browser's answer
    /// takes about 500 bytes per m-line, and a session has at most one m-line of its own plus three
    /// per voice (see the crate docs), so 32 voices stay under about 50 KB. In a larger group a
    /// session receives the publishers whose gate is open first (re-checked every
    /// `speaker_interval`), then those it already receives, then the earliest to join.
    pub max_voices: usize,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            bind: SocketAddr::from(([0, 0, 0, 0], 3478)),
            advertised_ip: None,
            speech_level_dbov: 50,
            speaker_interval: Duration::from_millis(300),
            max_voices: 32,
        }
    }
}

impl MediaConfig {
    /// A config bound to `127.0.0.1:0` (any free port), for tests.
    pub fn loopback() -> Self {
        MediaConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..MediaConfig::default()
        }
    }
}
