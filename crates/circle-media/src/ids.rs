//! Typed ids for the media plane. The SFU gives them no meaning: the server maps its participants and
//! rooms onto them.

use std::fmt;

/// One WebRTC peer (one browser connection). Chosen by the driver, unique among live peers.
///
/// It is also written into the msid (stream id `circle-<id>`) of every track the SFU sends out for this
/// peer, so a client can tell whose audio a track carries; the driver tells its clients which
/// participant a media peer id belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u64);

/// An opaque routing domain: peers in the same group hear each other. The server uses one per room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(pub u64);

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "peer-{}", self.0)
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "group-{}", self.0)
    }
}

impl PeerId {
    /// The msid stream id of the tracks that carry this peer's audio to others.
    pub fn stream_id(self) -> String {
        format!("circle-{}", self.0)
    }

    /// Parses a stream id made by [`PeerId::stream_id`] (what a client sees in `ontrack`).
    pub fn from_stream_id(stream_id: &str) -> Option<PeerId> {
        stream_id
            .strip_prefix("circle-")
            .and_then(|n| n.parse().ok())
            .map(PeerId)
    }
}
