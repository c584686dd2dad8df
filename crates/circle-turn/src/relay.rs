//! Relay sockets: one UDP socket per allocation, bound inside the configured port range, wrapped
//! so that it only ever talks to Circle's own media addresses.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use tokio::net::UdpSocket;
use turn::relay::RelayAddressGenerator;
use webrtc_util::Conn;

use crate::Counters;
use crate::peers::AllowedPeers;

/// How many random ports of the range are tried before an Allocate fails with 508 (Insufficient
/// Capacity): with a nearly full range, a bounded search keeps an Allocate from stalling the
/// listener's read loop.
const BIND_ATTEMPTS: usize = 16;

/// Makes relay sockets for the `turn` server.
pub(crate) struct RelayGenerator {
    /// The IP relay sockets bind to.
    pub(crate) bind_ip: IpAddr,
    /// The IP clients are told (XOR-RELAYED-ADDRESS): the public one when behind 1:1 NAT.
    pub(crate) advertised_ip: IpAddr,
    /// Ports relay sockets may use, both ends included.
    pub(crate) ports: RangeInclusive<u16>,
    pub(crate) peers: Arc<AllowedPeers>,
    pub(crate) counters: Arc<Counters>,
}

#[async_trait]
impl RelayAddressGenerator for RelayGenerator {
    fn validate(&self) -> Result<(), turn::Error> {
        // `spawn` validated the whole configuration already.
        Ok(())
    }

    async fn allocate_conn(
        &self,
        use_ipv4: bool,
        requested_port: u16,
    ) -> Result<(Arc<dyn Conn + Send + Sync>, SocketAddr), turn::Error> {
        if use_ipv4 != self.bind_ip.is_ipv4() {
            return Err(turn::Error::Other("address family not offered".into()));
        }
        // EVEN-PORT / RESERVATION-TOKEN ask for a given port; only ports of the range are given.
        let candidates: Vec<u16> = if requested_port != 0 {
            if !self.ports.contains(&requested_port) {
                return Err(turn::Error::ErrMaxRetriesExceeded);
            }
            vec![requested_port]
        } else {
            (0..BIND_ATTEMPTS)
                .map(|_| rand::random_range(self.ports.clone()))
                .collect()
        };
        for port in candidates {
            let Ok(socket) = UdpSocket::bind(SocketAddr::new(self.bind_ip, port)).await else {
                continue;
            };
            let relay = GuardedRelay::new(socket, self.peers.clone(), self.counters.clone());
            return Ok((Arc::new(relay), SocketAddr::new(self.advertised_ip, port)));
        }
        Err(turn::Error::ErrMaxRetriesExceeded)
    }
}

/// An allocation's relay socket, which refuses (and counts) sends to any address that is not
/// allowed and drops (and counts) datagrams from one. Counted in `allocations` while it lives.
pub(crate) struct GuardedRelay {
    socket: UdpSocket,
    peers: Arc<AllowedPeers>,
    counters: Arc<Counters>,
}

impl GuardedRelay {
    fn new(socket: UdpSocket, peers: Arc<AllowedPeers>, counters: Arc<Counters>) -> Self {
        counters.allocations.fetch_add(1, Ordering::Relaxed);
        GuardedRelay {
            socket,
            peers,
            counters,
        }
    }
}

impl Drop for GuardedRelay {
    fn drop(&mut self) {
        self.counters.allocations.fetch_sub(1, Ordering::Relaxed);
    }
}

#[async_trait]
impl Conn for GuardedRelay {
    async fn connect(&self, _addr: SocketAddr) -> webrtc_util::Result<()> {
        Err(io_error(
            io::ErrorKind::Unsupported,
            "relay sockets stay unconnected",
        ))
    }

    async fn recv(&self, _buf: &mut [u8]) -> webrtc_util::Result<usize> {
        Err(io_error(
            io::ErrorKind::Unsupported,
            "relay sockets use recv_from",
        ))
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        loop {
            let (n, from) = self.socket.recv_from(buf).await?;
            if self.peers.allows(from) {
                return Ok((n, from));
            }
            self.counters
                .dropped_from_peers
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    async fn send(&self, _buf: &[u8]) -> webrtc_util::Result<usize> {
        Err(io_error(
            io::ErrorKind::Unsupported,
            "relay sockets use send_to",
        ))
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        if !self.peers.allows(target) {
            self.counters.refused_sends.fetch_add(1, Ordering::Relaxed);
            // No address in the text: the `turn` crate logs this error.
            return Err(io_error(
                io::ErrorKind::PermissionDenied,
                "peer is not one of Circle's media addresses",
            ));
        }
        Ok(self.socket.send_to(buf, target).await?)
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    async fn close(&self) -> webrtc_util::Result<()> {
        // The socket closes when the allocation drops its last reference; the allocation's own
        // reader task stops on its drop signal, not on an error from here.
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

pub(crate) fn io_error(kind: io::ErrorKind, text: &'static str) -> webrtc_util::Error {
    webrtc_util::Error::from(io::Error::new(kind, text))
}
