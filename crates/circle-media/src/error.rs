//! The crate's error type. Every error a driver can get back from [`crate::MediaHandle`].

use crate::ids::PeerId;

/// What can go wrong when driving the SFU.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The UDP socket could not be bound or read.
    #[error("media socket: {0}")]
    Io(#[from] std::io::Error),
    /// The configuration cannot work (e.g. an unspecified bind address without an advertised IP).
    #[error("invalid media configuration: {0}")]
    Config(&'static str),
    /// `add_peer` was called for an id that is already live.
    #[error("{0} already exists")]
    PeerExists(PeerId),
    /// The peer is not (or no longer) known to the SFU.
    #[error("{0} not found")]
    UnknownPeer(PeerId),
    /// The remote sent an offer while the SFU's own offer was outstanding. The SFU is the impolite
    /// side of perfect negotiation: the client must roll back its offer and answer the SFU's.
    #[error("offer collision: the SFU's offer to {0} is outstanding, roll back and answer it")]
    Glare(PeerId),
    /// An answer came for a peer that has no offer from the SFU outstanding.
    #[error("no offer outstanding for {0}")]
    NoOfferOutstanding(PeerId),
    /// The session description or candidate from the remote was rejected by the WebRTC stack. The
    /// detail may quote the remote's SDP (addresses), so it is left out of `Display`: log it at debug
    /// level only.
    #[error("rejected session description or candidate")]
    Negotiation {
        /// The WebRTC stack's reason.
        detail: String,
    },
    /// The WebRTC stack failed building or driving a peer connection (detail as for `Negotiation`).
    #[error("webrtc stack error")]
    Webrtc {
        /// The WebRTC stack's reason.
        detail: String,
    },
    /// The peer is on one relay worker and the group it was to join on another (see the crate docs
    /// on workers: place a peer with its group before its first session).
    #[error("{0} is on another relay worker than the group")]
    OtherWorker(PeerId),
    /// The SFU task has stopped (its handle outlived it).
    #[error("the media task has stopped")]
    Stopped,
}

impl MediaError {
    pub(crate) fn negotiation(e: impl std::fmt::Display) -> Self {
        MediaError::Negotiation {
            detail: e.to_string(),
        }
    }

    pub(crate) fn webrtc(e: impl std::fmt::Display) -> Self {
        MediaError::Webrtc {
            detail: e.to_string(),
        }
    }
}
