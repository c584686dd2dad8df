//! "Not an open relay": the one rule saying which peers an allocation may reach, and its two
//! enforcement points; and the rate limit on requests without valid credentials.
//!
//! - [`PeerGuard`] wraps each listener. A CreatePermission or ChannelBind request naming a peer
//!   outside the allowed set, with valid credentials, gets a 403 (Forbidden) answer here and never
//!   reaches the `turn` crate, which has no permission hook of its own (0.17 grants every
//!   permission it is asked for).
//! - [`crate::relay::GuardedRelay`] wraps each relay socket, so even a request that slipped past
//!   the guard can neither send to nor hear from any other address.
//!
//! The guard also rate-limits requests that carry no valid credentials (see
//! [`UNAUTHENTICATED_PER_SECOND`]).

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use async_trait::async_trait;
use stun::attributes::{ATTR_REALM, ATTR_USERNAME, ATTR_XOR_PEER_ADDRESS, RawAttribute};
use stun::error_code::{CODE_FORBIDDEN, ErrorCodeAttribute};
use stun::integrity::MessageIntegrity;
use stun::message::{
    CLASS_ERROR_RESPONSE, CLASS_REQUEST, Getter, METHOD_BINDING, METHOD_CHANNEL_BIND,
    METHOD_CREATE_PERMISSION, Message, MessageType, Setter,
};
use stun::textattrs::TextAttribute;
use tokio_util::sync::CancellationToken;
use turn::proto::peeraddr::PeerAddress;
use webrtc_util::Conn;

use crate::Counters;
use crate::credentials::RestAuth;

/// The peers an allocation may talk to: Circle's own media addresses.
#[derive(Debug, Default)]
pub(crate) struct AllowedPeers {
    /// Exact transport addresses.
    addrs: HashSet<SocketAddr>,
    /// IPs given with port 0: every port of these is allowed (a media port range).
    any_port: HashSet<IpAddr>,
}

impl AllowedPeers {
    pub(crate) fn new(peers: &[SocketAddr]) -> Self {
        let mut allowed = AllowedPeers::default();
        for peer in peers {
            let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
            if peer.port() == 0 {
                allowed.any_port.insert(peer.ip());
            } else {
                allowed.addrs.insert(peer);
            }
        }
        allowed
    }

    /// Whether a datagram may go to (or come from) `addr`.
    pub(crate) fn allows(&self, addr: SocketAddr) -> bool {
        let ip = addr.ip().to_canonical();
        self.any_port.contains(&ip) || self.addrs.contains(&SocketAddr::new(ip, addr.port()))
    }

    /// Whether a permission (which TURN grants per IP, RFC 8656 §9) may name `ip`. The port is
    /// still checked on every datagram by the relay socket.
    fn allows_ip(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.any_port.contains(&ip) || self.addrs.iter().any(|a| a.ip() == ip)
    }
}

/// Requests not authenticated with valid credentials (every client's first Allocate is one) make
/// the `turn` crate store a fresh nonce, which it forgets only when that nonce comes back: a flood
/// of them, from forged UDP sources, would grow its memory without end. They are let through at
/// this rate (all listeners together), after a burst of [`UNAUTHENTICATED_BURST`]; the rest are
/// dropped and counted, and a real client retransmits.
const UNAUTHENTICATED_PER_SECOND: f64 = 20.0;

/// See [`UNAUTHENTICATED_PER_SECOND`]. Sized for a large meeting starting at once: each browser
/// makes one unauthenticated Allocate per TURN URL it is given.
const UNAUTHENTICATED_BURST: f64 = 200.0;

/// A token bucket, with time passed in.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    tokens: f64,
    last: Instant,
    per_second: f64,
    burst: f64,
}

impl TokenBucket {
    pub(crate) fn new(per_second: f64, burst: f64, now: Instant) -> Self {
        TokenBucket {
            tokens: burst,
            last: now,
            per_second,
            burst,
        }
    }

    /// Takes one token if there is one.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What the guard does with one message from a client.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// Hand it to the `turn` server.
    Pass,
    /// Answer it with these bytes instead.
    Answer(Vec<u8>),
    /// Drop it.
    Drop,
}

/// What the guard needs to judge a request and answer a refused one itself.
pub(crate) struct PeerRules {
    pub(crate) peers: Arc<AllowedPeers>,
    pub(crate) auth: Arc<RestAuth>,
    pub(crate) counters: Arc<Counters>,
    /// Admits requests that are not authenticated (see [`UNAUTHENTICATED_PER_SECOND`]).
    unauthenticated: Mutex<TokenBucket>,
}

impl PeerRules {
    pub(crate) fn new(
        peers: Arc<AllowedPeers>,
        auth: Arc<RestAuth>,
        counters: Arc<Counters>,
    ) -> Self {
        PeerRules {
            peers,
            auth,
            counters,
            unauthenticated: Mutex::new(TokenBucket::new(
                UNAUTHENTICATED_PER_SECOND,
                UNAUTHENTICATED_BURST,
                Instant::now(),
            )),
        }
    }

    /// Judges one message. An authenticated CreatePermission or ChannelBind request naming a peer
    /// that is not allowed gets a 403 answer; a request without valid credentials is rate-limited;
    /// everything else (ChannelData, indications, Binding requests) passes untouched.
    fn inspect(&self, packet: &[u8]) -> Verdict {
        // Cheap checks first: most traffic is ChannelData, whose first two bits are 01.
        if packet.len() < 20 || packet[0] & 0xC0 != 0 {
            return Verdict::Pass;
        }
        let mut m = Message {
            raw: packet.to_vec(),
            ..Default::default()
        };
        if m.decode().is_err() || m.typ.class != CLASS_REQUEST || m.typ.method == METHOD_BINDING {
            // Nothing the `turn` crate keeps state for.
            return Verdict::Pass;
        }
        let Some(integrity) = self.integrity(&m) else {
            let admitted = self
                .unauthenticated
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take(Instant::now());
            if admitted {
                return Verdict::Pass;
            }
            self.counters
                .dropped_unauthenticated
                .fetch_add(1, Ordering::Relaxed);
            return Verdict::Drop;
        };
        let channel_bind = match m.typ.method {
            METHOD_CREATE_PERMISSION => false,
            METHOD_CHANNEL_BIND => true,
            _ => return Verdict::Pass,
        };
        let refused = m
            .attributes
            .0
            .iter()
            .filter(|a| a.typ == ATTR_XOR_PEER_ADDRESS)
            .filter_map(|a| peer_address(&m, a))
            .any(|peer| {
                if channel_bind {
                    !self.peers.allows(peer)
                } else {
                    !self.peers.allows_ip(peer.ip())
                }
            });
        if !refused {
            return Verdict::Pass;
        }
        let mut answer = Message::new();
        let attrs: [Box<dyn Setter>; 4] = [
            Box::new(m.transaction_id),
            Box::new(MessageType::new(m.typ.method, CLASS_ERROR_RESPONSE)),
            Box::new(ErrorCodeAttribute {
                code: CODE_FORBIDDEN,
                reason: b"Forbidden".to_vec(),
            }),
            Box::new(integrity),
        ];
        if answer.build(&attrs).is_err() {
            return Verdict::Drop;
        }
        self.counters.refused_peers.fetch_add(1, Ordering::Relaxed);
        tracing::debug!("turn: refused a permission for a peer outside Circle's media addresses");
        Verdict::Answer(answer.raw)
    }

    /// The request's MESSAGE-INTEGRITY, if it verifies under credentials that are valid now.
    fn integrity(&self, m: &Message) -> Option<MessageIntegrity> {
        let username = TextAttribute::get_from_as(m, ATTR_USERNAME).ok()?;
        let realm = TextAttribute::get_from_as(m, ATTR_REALM).ok()?;
        let key = self
            .auth
            .key(&username.text, &realm.text, SystemTime::now())?;
        let integrity = MessageIntegrity(key);
        integrity.check(&mut m.clone()).ok()?;
        Some(integrity)
    }
}

/// Decodes one XOR-PEER-ADDRESS attribute of `m` (the `turn` crate's getter reads only the first).
fn peer_address(m: &Message, attr: &RawAttribute) -> Option<SocketAddr> {
    let mut single = Message {
        transaction_id: m.transaction_id,
        ..Default::default()
    };
    single.attributes.0.push(attr.clone());
    let mut peer = PeerAddress::default();
    peer.get_from(&single).ok()?;
    Some(SocketAddr::new(peer.ip, peer.port))
}

/// A listener (the UDP socket, or the TCP or TLS connections as one [`crate::stream::StreamMux`])
/// as the `turn` server sees it, with refused permission requests answered before they reach it.
pub(crate) struct PeerGuard {
    pub(crate) inner: Arc<dyn Conn + Send + Sync>,
    pub(crate) rules: Arc<PeerRules>,
    /// Cancelled when the `turn` server closes this listener, which it does after closing all of
    /// the listener's allocations: [`crate::TurnServer::close`] waits for it.
    pub(crate) closed: CancellationToken,
}

#[async_trait]
impl Conn for PeerGuard {
    async fn connect(&self, addr: SocketAddr) -> webrtc_util::Result<()> {
        self.inner.connect(addr).await
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        self.inner.recv(buf).await
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        loop {
            let (n, from) = self.inner.recv_from(buf).await?;
            match self.rules.inspect(&buf[..n]) {
                Verdict::Pass => return Ok((n, from)),
                Verdict::Answer(answer) => {
                    // A lost answer is a lost datagram: the client retransmits.
                    let _ = self.inner.send_to(&answer, from).await;
                }
                Verdict::Drop => {}
            }
        }
    }

    async fn send(&self, buf: &[u8]) -> webrtc_util::Result<usize> {
        self.inner.send(buf).await
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        self.inner.send_to(buf, target).await
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        self.inner.remote_addr()
    }

    async fn close(&self) -> webrtc_util::Result<()> {
        let result = self.inner.close().await;
        self.closed.cancel();
        result
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_allows_every_port_of_that_ip_and_only_it() {
        let peers = AllowedPeers::new(&[
            "192.0.2.1:4000".parse().unwrap(),
            "198.51.100.7:0".parse().unwrap(),
        ]);
        assert!(peers.allows("192.0.2.1:4000".parse().unwrap()));
        assert!(!peers.allows("192.0.2.1:4001".parse().unwrap()));
        assert!(peers.allows("198.51.100.7:9".parse().unwrap()));
        assert!(peers.allows("[::ffff:192.0.2.1]:4000".parse().unwrap()));
        assert!(!peers.allows("192.0.2.2:4000".parse().unwrap()));
        assert!(peers.allows_ip("192.0.2.1".parse().unwrap()));
        assert!(!peers.allows_ip("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn the_bucket_gives_its_burst_then_its_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(2.0, 3.0, start);
        assert_eq!((0..5).filter(|_| bucket.take(start)).count(), 3);
        let later = start + std::time::Duration::from_secs(1);
        assert_eq!((0..5).filter(|_| bucket.take(later)).count(), 2);
        let much_later = later + std::time::Duration::from_secs(60);
        assert_eq!((0..5).filter(|_| bucket.take(much_later)).count(), 3);
    }
}
