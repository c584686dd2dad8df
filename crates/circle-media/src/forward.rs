//! The packet path: where a publisher's RTP is gated, counted for active speakers and written to each
//! subscriber's leg. This is the one place a muted speaker's packet is dropped.
//!
//! It runs inside the SFU task, synchronously, for packets the publisher's connection has just
//! decrypted. It reads only the publisher's [`crate::Gate`] and the group's member list; it never
//! waits on the driver, spawns nothing and allocates only what `rtc` needs per written packet (plus one
//! small vector when the audio-level extension is forwarded).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use bytes::Bytes;
use rtc::rtp;
use rtc::shared::TaggedBytesMut;

use crate::ids::PeerId;
use crate::net::Net;
use crate::peer::Peer;
use crate::sfu::Sfu;

/// RFC 8285 one-byte header extension profile.
const ONE_BYTE_EXTENSION_PROFILE: u16 = 0xBEDE;

/// A publisher's packet that passed the gate, waiting to be written to subscribers.
pub(crate) struct Inbound {
    pub(crate) packet: rtp::Packet,
    /// The audio-level extension payload, forwarded to subscribers that negotiated it.
    pub(crate) level: Option<Bytes>,
}

/// Takes one packet from `peer`'s connection: drops it unless it is the peer's published stream, its
/// gate is open and it is in a group; counts its audio level; renumbers it. Returns what to forward.
pub(crate) fn intake(
    peer: &mut Peer,
    mut packet: rtp::Packet,
    speech_level_dbov: u8,
    gated: &mut u64,
) -> Option<Inbound> {
    let publication = peer.publication.as_mut()?;
    if packet.header.ssrc != publication.ssrc {
        return None;
    }
    if !peer.gate.is_open() {
        publication.skipped = publication.skipped.wrapping_add(1);
        *gated += 1;
        return None;
    }
    peer.group?;
    let level = publication
        .level_ext
        .and_then(|id| packet.header.get_extension(id));
    peer.levels.count(level.as_deref(), speech_level_dbov);
    packet.header.sequence_number = packet
        .header
        .sequence_number
        .wrapping_sub(publication.skipped);
    Some(Inbound { packet, level })
}

impl Sfu {
    /// Writes the gated packets of `publisher` (in `self.inbound`) to every other member of its group.
    pub(crate) fn forward(&mut self, publisher: PeerId, now: Instant) {
        let Sfu {
            peers,
            groups,
            inbound,
            net,
            stats,
            ..
        } = self;
        if inbound.is_empty() {
            return;
        }
        let members = peers
            .get(&publisher)
            .and_then(|p| p.group)
            .and_then(|g| groups.get(&g));
        let Some(members) = members else {
            inbound.clear();
            return;
        };
        // Subscribers whose WebRTC stack panicked on a write: closed once the loop is done.
        let mut lost: Vec<PeerId> = Vec::new();
        for Inbound { packet, level } in inbound.drain(..) {
            for member in members {
                if *member == publisher || lost.contains(member) {
                    continue;
                }
                let Some(subscriber) = peers.get_mut(member) else {
                    continue;
                };
                let Some(sub) = subscriber.subscriptions.get(&publisher) else {
                    continue;
                };
                let Some(payload_type) = sub.payload_type else {
                    // Not negotiated yet on this leg.
                    continue;
                };
                let mut header = rtp::Header {
                    version: 2,
                    marker: packet.header.marker,
                    payload_type,
                    sequence_number: packet.header.sequence_number,
                    timestamp: packet.header.timestamp,
                    ssrc: sub.ssrc,
                    ..Default::default()
                };
                if let (Some(id), Some(level)) = (sub.level_ext, level.as_ref()) {
                    header.extension = true;
                    header.extension_profile = ONE_BYTE_EXTENSION_PROFILE;
                    header.extensions = vec![rtp::header::Extension {
                        id,
                        payload: level.clone(),
                    }];
                }
                let out = rtp::Packet {
                    header,
                    payload: packet.payload.clone(),
                };
                let sender = sub.sender;
                let written = catch_unwind(AssertUnwindSafe(|| {
                    let written = subscriber
                        .pc
                        .rtp_sender(sender)
                        .map(|mut s| s.write_rtp(now, out));
                    flush_writes(subscriber, net);
                    written
                }));
                match written {
                    Ok(Some(Ok(()))) => stats.forwarded += 1,
                    Ok(Some(Err(e))) => {
                        tracing::trace!(peer = %subscriber.id, error = %e, "forward write failed");
                    }
                    Ok(None) => {}
                    Err(_) => lost.push(*member),
                }
            }
        }
        for id in lost {
            self.lose_peer(id);
        }
    }
}

/// Sends everything `peer`'s connection wants on the wire, by UDP or on its TCP connection. Never
/// waits: a full socket buffer or TCP queue drops the packet, as the network would.
pub(crate) fn flush_writes(peer: &mut Peer, net: &mut Net) {
    use rtc::sansio::Protocol;
    #[cfg(test)]
    if peer.sabotaged {
        panic!("test sabotage: the webrtc stack fails on {}", peer.id);
    }
    while let Some(TaggedBytesMut {
        transport, message, ..
    }) = peer.pc.poll_write()
    {
        net.send(&transport, &message);
    }
}
