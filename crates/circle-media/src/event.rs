//! What the SFU tells its driver: [`MediaEvent`], read from the receiver [`crate::spawn`] returns.

use crate::ids::{GroupId, PeerId};

/// An ICE candidate in the shape browsers use (`RTCIceCandidateInit`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IceCandidate {
    /// The `candidate:` attribute line (RFC 8839).
    pub candidate: String,
    /// The media section it belongs to, if known.
    pub sdp_mid: Option<String>,
    /// The index of the media section it belongs to, if known.
    pub sdp_mline_index: Option<u16>,
}

/// The connection state of one peer, as the driver needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// ICE and DTLS are up: media flows.
    Connected,
    /// Connectivity was lost; it may come back on its own (ICE consent) or go to `Failed`.
    Disconnected,
    /// The connection cannot recover; the driver should close the peer (or let the client restart).
    Failed,
    /// The connection is closed (by `close_peer` or by the remote).
    Closed,
}

/// Something the driver must act on or may show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// The SFU made an offer (its group membership changed): send it to the client, feed the client's
    /// answer to [`crate::MediaHandle::handle_answer`].
    LocalOffer {
        /// Whose connection is renegotiated.
        peer: PeerId,
        /// Which of its sessions ([`crate::NewSession::session`]).
        session: u64,
        /// The offer SDP.
        sdp: String,
    },
    /// A local ICE candidate found after the first answer, to trickle to the client. The SFU's host
    /// candidate is in every SDP it makes, so today this is not emitted; a driver that forwards it
    /// stays correct when more candidate kinds (e.g. an embedded TURN relay) come.
    LocalCandidate {
        /// For which peer.
        peer: PeerId,
        /// The candidate.
        candidate: IceCandidate,
    },
    /// A peer's connection changed state.
    PeerState {
        /// Which peer.
        peer: PeerId,
        /// Its new state.
        state: PeerState,
    },
    /// The SFU closed this peer on its own: the WebRTC stack failed (panicked) on its behalf, so its
    /// state could not be trusted. Its session is gone (as after `close_peer`; its id may be added
    /// again); the driver should tell its client to start a new one.
    PeerLost {
        /// Which peer.
        peer: PeerId,
        /// Which of its sessions ([`crate::NewSession::session`]).
        session: u64,
    },
    /// The set of peers currently speaking in a group changed (sorted by id; empty: silence).
    ActiveSpeakers {
        /// Which group.
        group: GroupId,
        /// Who is speaking now.
        speakers: Vec<PeerId>,
    },
}
