//! Which peer a datagram on the shared socket belongs to.
//!
//! A known source address routes directly. A new remote first shows itself with a STUN binding
//! request whose USERNAME is `<our ufrag>:<its ufrag>`; our ufrag names the peer, and the source address
//! is then remembered for that peer (as str0m-based SFUs do). Anything else from an unknown address is
//! dropped. The peer connection itself checks the STUN MESSAGE-INTEGRITY; a datagram routed here is only
//! offered to it.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::ids::PeerId;

/// Most remote addresses one peer may bind (its candidate pairs); more are ignored, so a client cannot
/// grow our tables without bound.
const MAX_ADDRS_PER_PEER: usize = 8;

/// The routing tables. Owned by the SFU task.
#[derive(Default)]
pub(crate) struct Routes {
    by_ufrag: HashMap<String, PeerId>,
    by_addr: HashMap<SocketAddr, PeerId>,
    addrs_of: HashMap<PeerId, Vec<SocketAddr>>,
}

impl Routes {
    pub(crate) fn add_peer(&mut self, peer: PeerId, ufrag: String) {
        self.by_ufrag.insert(ufrag, peer);
        self.addrs_of.insert(peer, Vec::new());
    }

    pub(crate) fn remove_peer(&mut self, peer: PeerId, ufrag: &str) {
        self.by_ufrag.remove(ufrag);
        for addr in self.addrs_of.remove(&peer).unwrap_or_default() {
            self.by_addr.remove(&addr);
        }
    }

    /// The peer a datagram from `from` belongs to, learning `from` if it is a STUN binding request
    /// naming one of our ufrags.
    pub(crate) fn route(&mut self, from: SocketAddr, datagram: &[u8]) -> Option<PeerId> {
        if let Some(peer) = self.by_addr.get(&from) {
            return Some(*peer);
        }
        let username = stun_binding_username(datagram)?;
        let local_ufrag = username.split(|b| *b == b':').next()?;
        let local_ufrag = std::str::from_utf8(local_ufrag).ok()?;
        let peer = *self.by_ufrag.get(local_ufrag)?;
        let addrs = self.addrs_of.entry(peer).or_default();
        if addrs.len() < MAX_ADDRS_PER_PEER {
            addrs.push(from);
            self.by_addr.insert(from, peer);
        }
        Some(peer)
    }

    /// The peer whose ICE ufrag this is (an ICE-TCP connection's first packet names it).
    pub(crate) fn peer_for_ufrag(&self, ufrag: &str) -> Option<PeerId> {
        self.by_ufrag.get(ufrag).copied()
    }

    pub(crate) fn ufrag_count(&self) -> usize {
        self.by_ufrag.len()
    }

    pub(crate) fn addr_count(&self) -> usize {
        self.by_addr.len()
    }
}

const STUN_HEADER: usize = 20;
const STUN_MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const STUN_BINDING_REQUEST: [u8; 2] = [0x00, 0x01];
const STUN_ATTR_USERNAME: u16 = 0x0006;

/// The USERNAME attribute of a STUN binding request, or `None` for anything else. Never panics, never
/// allocates.
pub(crate) fn stun_binding_username(datagram: &[u8]) -> Option<&[u8]> {
    if datagram.len() < STUN_HEADER
        || datagram[0..2] != STUN_BINDING_REQUEST
        || datagram[4..8] != STUN_MAGIC_COOKIE
    {
        return None;
    }
    let body_len = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    let body = datagram.get(STUN_HEADER..STUN_HEADER.checked_add(body_len)?)?;
    let mut rest = body;
    while rest.len() >= 4 {
        let typ = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let value = rest.get(4..4 + len)?;
        if typ == STUN_ATTR_USERNAME {
            return Some(value);
        }
        // Attributes are padded to 4 bytes.
        let padded = (4 + len).checked_add(3)? & !3;
        rest = rest.get(padded..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding_request(username: &[u8]) -> Vec<u8> {
        let mut attrs = Vec::new();
        // A leading attribute that is not USERNAME, to exercise the walk.
        attrs.extend_from_slice(&[0x80, 0x29, 0x00, 0x08]);
        attrs.extend_from_slice(&[0; 8]);
        attrs.extend_from_slice(&STUN_ATTR_USERNAME.to_be_bytes());
        attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attrs.extend_from_slice(username);
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        let mut msg = vec![0x00, 0x01];
        msg.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        msg.extend_from_slice(&STUN_MAGIC_COOKIE);
        msg.extend_from_slice(&[7; 12]);
        msg.extend_from_slice(&attrs);
        msg
    }

    #[test]
    fn finds_username_in_binding_request() {
        let msg = binding_request(b"abc:defg1");
        assert_eq!(stun_binding_username(&msg), Some(&b"abc:defg1"[..]));
    }

    #[test]
    fn truncated_or_garbage_input_is_none() {
        let msg = binding_request(b"abc:defg1");
        for cut in 0..msg.len() {
            // Must not panic on any prefix; a cut inside the body is simply not found.
            let _ = stun_binding_username(&msg[..cut]);
        }
        assert_eq!(stun_binding_username(&[0xff; 64]), None);
        let mut lying = msg.clone();
        lying[2] = 0xff; // body length beyond the datagram
        assert_eq!(stun_binding_username(&lying), None);
    }

    #[test]
    fn routes_by_ufrag_then_by_address() {
        let mut routes = Routes::default();
        routes.add_peer(PeerId(1), "srv1".into());
        routes.add_peer(PeerId(2), "srv2".into());
        let from: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        assert_eq!(routes.route(from, b"not stun"), None);
        assert_eq!(
            routes.route(from, &binding_request(b"srv2:cli")),
            Some(PeerId(2))
        );
        assert_eq!(routes.route(from, b"\x80 rtp-ish"), Some(PeerId(2)));
        routes.remove_peer(PeerId(2), "srv2");
        assert_eq!(routes.route(from, b"\x80 rtp-ish"), None);
        assert_eq!(routes.addr_count(), 0);
        assert_eq!(routes.ufrag_count(), 1);
    }
}
