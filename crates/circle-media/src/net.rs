//! The wire of one worker: its UDP socket and, with ICE-TCP on, its TCP listener and connections.
//!
//! # ICE-TCP (RFC 6544, RFC 4571)
//!
//! A client whose network drops UDP connects to the relay's passive TCP candidate and sends the same
//! packets it would send as datagrams (STUN, DTLS, SRTP, SRTCP), each preceded by its length as a
//! 2-byte big-endian integer (RFC 4571). The SFU task accepts connections ([`Tcp::accept`]) and
//! spawns one task per connection ([`connection`]), which reads and de-frames, hands each packet to
//! the SFU task over one shared bounded channel ([`TCP_INBOUND_CAPACITY`]), and writes framed what
//! the SFU task queued for it ([`TCP_OUTBOUND_CAPACITY`], full: dropped). The SFU task routes a
//! packet by its connection: the first one must be an ICE check (STUN binding request) naming a live
//! session by its ufrag, else the connection is closed; after that every packet of the connection
//! goes to that session's `rtc` connection, tagged TCP, exactly as a datagram would. So the SFU task
//! never waits on a slow TCP client: media packets never wait.
//!
//! A connection task ends when the client closes or errs, when it is silent for
//! [`crate::MediaConfig::tcp_idle_timeout`] (before its first packet too), when a write stalls for
//! [`WRITE_TIMEOUT`], when a frame is longer than [`MAX_FRAME`], or when the SFU drops its queue
//! (session closed, garbage, SFU ended). It then tells the SFU task, which forgets it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use rtc::shared::{TransportContext, TransportProtocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

use crate::ids::PeerId;

/// Packets from all TCP connections to the SFU task. Full: each connection task waits to hand over
/// its next packet (and so stops reading, which pushes back on that client through TCP); the tokio
/// channel serves waiting senders in turn, so one flooding client cannot starve the others.
pub(crate) const TCP_INBOUND_CAPACITY: usize = 1024;

/// Packets queued for one TCP connection's writer. Full (the client reads too slowly): the packet is
/// dropped and counted ([`crate::MediaStats::tcp_dropped`]), as a full socket buffer drops a datagram.
/// 256 packets are about 5 s of one voice.
pub(crate) const TCP_OUTBOUND_CAPACITY: usize = 256;

/// Longest packet accepted in an RFC 4571 frame (the length prefix allows 65535). Circle's packets
/// fit an MTU; a longer frame is garbage and closes the connection.
pub(crate) const MAX_FRAME: usize = 2048;

/// How long one framed write may take before the connection is given up (the client stopped reading).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Most TCP connections one session may have (its candidate pairs); more are closed as garbage.
const MAX_CONNS_PER_PEER: usize = 4;

/// How long accepting pauses after an accept error (e.g. out of file descriptors), so the SFU task
/// does not spin on it.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Receive buffer the UDP socket asks for. The relay task may be off its core for a few
/// milliseconds (another task, a busy machine); meanwhile datagrams queue in the kernel, and the
/// default buffer (about 200 KiB; the kernel charges over 1 KiB per small datagram, so a few hundred
/// packets) overflows within milliseconds at tens of thousands of packets per second. 1 MiB (the
/// kernel grants twice that) holds a stall of some tens of milliseconds. Not more: under a
/// sustained overload a buffer only turns loss into delay, and 4 MiB measured as 3–6 s of queue on
/// a starved machine (docs/BENCHMARKS.md), worthless for a conversation. The kernel caps it at
/// `net.core.rmem_max` (docs/DEPLOY.md); what it granted is logged at debug.
pub(crate) const UDP_RECV_BUFFER: usize = 1024 * 1024;

/// Send buffer the UDP socket asks for: one received packet becomes up to a group's size of sends
/// in one go, and a full send buffer drops them ([`crate::MediaStats::udp_dropped`]). Capped by
/// `net.core.wmem_max`.
pub(crate) const UDP_SEND_BUFFER: usize = 1024 * 1024;

/// Binds a socket; an unspecified IPv6 address (`[::]`) is bound dual-stack (IPv4 arrives as
/// IPv4-mapped addresses, see [`canonical`]) whatever the system default for `IPV6_V6ONLY` is.
pub(crate) fn bind(addr: SocketAddr, tcp: bool) -> std::io::Result<socket2::Socket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let (kind, protocol) = match tcp {
        true => (Type::STREAM, Protocol::TCP),
        false => (Type::DGRAM, Protocol::UDP),
    };
    let socket = Socket::new(Domain::for_address(addr), kind, Some(protocol))?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        socket.set_only_v6(false)?;
    }
    if tcp {
        // A restarted server must not wait for the old listener's TIME_WAIT connections.
        socket.set_reuse_address(true)?;
    } else {
        // Asked for, not required: a smaller grant is logged, never fatal.
        let _ = socket.set_recv_buffer_size(UDP_RECV_BUFFER);
        let _ = socket.set_send_buffer_size(UDP_SEND_BUFFER);
        tracing::debug!(
            asked = UDP_RECV_BUFFER,
            receive = socket.recv_buffer_size().ok(),
            send = socket.send_buffer_size().ok(),
            "udp socket buffers granted (the kernel caps them at net.core.rmem_max / wmem_max)"
        );
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    if tcp {
        socket.listen(1024)?;
    }
    Ok(socket)
}

/// An IPv4-mapped IPv6 address (how a dual-stack socket shows an IPv4 remote) as the plain IPv4 one
/// the client's ICE candidates name.
pub(crate) fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Our candidate address for a remote: the first advertised IP of the remote's family, with `port`.
fn local_for(advertised: &[IpAddr], remote: SocketAddr, port: u16) -> Option<SocketAddr> {
    advertised
        .iter()
        .find(|ip| ip.is_ipv4() == remote.is_ipv4())
        .map(|ip| SocketAddr::new(*ip, port))
}

/// A packet from a TCP connection task to the SFU task.
pub(crate) enum TcpInput {
    /// One de-framed packet from the connection to this remote (its `serial`).
    Packet(SocketAddr, u64, BytesMut),
    /// The connection ended (see the module docs for why).
    Closed(SocketAddr, u64),
}

/// Where a packet from a TCP connection goes.
pub(crate) enum TcpRoute {
    /// To this session.
    Peer(PeerId),
    /// Nowhere: its connection is already closed.
    Gone,
    /// Nowhere, and its connection has just been closed: its first packet was no ICE check naming
    /// a live session (or that session has all the TCP connections it may have).
    Rejected,
}

/// One open TCP connection, as the SFU task sees it.
struct Conn {
    /// Tells it apart from an earlier connection from the same remote address.
    serial: u64,
    /// The session it belongs to, once its first packet named one.
    peer: Option<PeerId>,
    /// Its writer's queue (see [`TCP_OUTBOUND_CAPACITY`]). Dropping it ends the connection.
    outbound: mpsc::Sender<Bytes>,
}

/// The ICE-TCP side: the listener and the connections, by remote address.
pub(crate) struct Tcp {
    listener: TcpListener,
    /// Bound port, the port of every passive TCP candidate.
    port: u16,
    conns: HashMap<SocketAddr, Conn>,
    /// Handed to each connection task.
    inbound_tx: mpsc::Sender<TcpInput>,
    /// The receiving end, until the SFU task takes it.
    pub(crate) inbound: Option<mpsc::Receiver<TcpInput>>,
    next_serial: u64,
    max_connections: usize,
    idle_timeout: Duration,
    /// Accepting resumes then (see [`ACCEPT_PAUSE`]).
    pub(crate) paused_until: Option<Instant>,
}

/// The wire, owned by the SFU task.
pub(crate) struct Net {
    pub(crate) udp: UdpSocket,
    /// Whether the UDP socket is IPv6 (then IPv4 destinations are written IPv4-mapped).
    udp_v6: bool,
    udp_port: u16,
    /// The IPs in our candidates ([`crate::MediaConfig::advertised_ips`], or the bound one).
    advertised: Vec<IpAddr>,
    pub(crate) tcp: Option<Tcp>,
    /// Packets dropped for a full TCP outbound queue.
    pub(crate) tcp_dropped: u64,
    /// Datagrams the UDP socket would not take (its send buffer full): dropped, counted.
    pub(crate) udp_dropped: u64,
    /// Connections closed for what they sent.
    pub(crate) tcp_rejected: u64,
}

/// One of our ICE host candidates.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LocalCandidate {
    pub(crate) addr: SocketAddr,
    /// A passive TCP candidate; otherwise UDP.
    pub(crate) tcp: bool,
}

impl Net {
    pub(crate) fn new(
        udp: UdpSocket,
        advertised: Vec<IpAddr>,
        tcp: Option<(TcpListener, usize, Duration)>,
    ) -> std::io::Result<Net> {
        let bound = udp.local_addr()?;
        let tcp = match tcp {
            None => None,
            Some((listener, max_connections, idle_timeout)) => {
                let (inbound_tx, inbound) = mpsc::channel(TCP_INBOUND_CAPACITY);
                Some(Tcp {
                    port: listener.local_addr()?.port(),
                    listener,
                    conns: HashMap::new(),
                    inbound_tx,
                    inbound: Some(inbound),
                    next_serial: 0,
                    max_connections,
                    idle_timeout,
                    paused_until: None,
                })
            }
        };
        Ok(Net {
            udp,
            udp_v6: bound.is_ipv6(),
            udp_port: bound.port(),
            advertised,
            tcp,
            tcp_dropped: 0,
            udp_dropped: 0,
            tcp_rejected: 0,
        })
    }

    /// Every session's host candidates: one UDP candidate per advertised IP, and with ICE-TCP one
    /// passive TCP candidate per advertised IP.
    pub(crate) fn candidates(&self) -> Vec<LocalCandidate> {
        let udp = self.advertised.iter().map(|ip| LocalCandidate {
            addr: SocketAddr::new(*ip, self.udp_port),
            tcp: false,
        });
        let tcp = self.tcp.iter().flat_map(|t| {
            self.advertised.iter().map(|ip| LocalCandidate {
                addr: SocketAddr::new(*ip, t.port),
                tcp: true,
            })
        });
        udp.chain(tcp).collect()
    }

    /// The transport of a datagram from `from` (already [`canonical`]): our candidate of its family.
    pub(crate) fn udp_transport(&self, from: SocketAddr) -> Option<TransportContext> {
        Some(TransportContext {
            local_addr: local_for(&self.advertised, from, self.udp_port)?,
            peer_addr: from,
            ecn: None,
            transport_protocol: TransportProtocol::UDP,
        })
    }

    /// The transport of a packet on the TCP connection from `remote`: our TCP candidate of its family.
    pub(crate) fn tcp_transport(&self, remote: SocketAddr) -> Option<TransportContext> {
        Some(TransportContext {
            local_addr: local_for(&self.advertised, remote, self.tcp.as_ref()?.port)?,
            peer_addr: remote,
            ecn: None,
            transport_protocol: TransportProtocol::TCP,
        })
    }

    /// Sends one packet a connection wants on the wire. Never waits: a full socket buffer or TCP
    /// queue drops it, as the network would.
    pub(crate) fn send(&mut self, transport: &TransportContext, message: &[u8]) {
        match transport.transport_protocol {
            TransportProtocol::UDP => {
                let mut to = transport.peer_addr;
                if self.udp_v6
                    && let IpAddr::V4(v4) = to.ip()
                {
                    to = SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), to.port());
                }
                if let Err(e) = self.udp.try_send_to(message, to) {
                    self.udp_dropped += 1;
                    tracing::trace!(error = %e, "udp send dropped");
                }
            }
            TransportProtocol::TCP => {
                let Some(conn) = self
                    .tcp
                    .as_ref()
                    .and_then(|t| t.conns.get(&transport.peer_addr))
                else {
                    return;
                };
                let Ok(len) = u16::try_from(message.len()) else {
                    return;
                };
                let mut frame = BytesMut::with_capacity(2 + message.len());
                frame.put_u16(len);
                frame.put_slice(message);
                if conn.outbound.try_send(frame.freeze()).is_err() {
                    self.tcp_dropped += 1;
                }
            }
            // No other transport exists today; nothing to send it on.
            _ => {}
        }
    }
}

impl Tcp {
    /// Takes one new connection: refused (closed at once) beyond the connection limit, else given
    /// its task.
    pub(crate) fn accept(&mut self, accepted: std::io::Result<(TcpStream, SocketAddr)>) {
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::debug!(error = %e, "ice-tcp accept failed; pausing accepts");
                self.paused_until = Some(Instant::now() + ACCEPT_PAUSE);
                return;
            }
        };
        let remote = canonical(remote);
        if self.conns.len() >= self.max_connections {
            tracing::debug!("ice-tcp connection refused: at the connection limit");
            return;
        }
        if self.conns.contains_key(&remote) {
            // Only if the same remote address reached us on two of our addresses: keep the first.
            tracing::debug!("ice-tcp connection refused: its remote address is already connected");
            return;
        }
        let _ = stream.set_nodelay(true);
        self.next_serial += 1;
        let serial = self.next_serial;
        let (outbound, outbound_rx) = mpsc::channel(TCP_OUTBOUND_CAPACITY);
        self.conns.insert(
            remote,
            Conn {
                serial,
                peer: None,
                outbound,
            },
        );
        tokio::spawn(connection(
            stream,
            remote,
            serial,
            self.inbound_tx.clone(),
            outbound_rx,
            self.idle_timeout,
        ));
    }

    /// Waits for a connection on the listener.
    pub(crate) async fn next_connection(&self) -> std::io::Result<(TcpStream, SocketAddr)> {
        self.listener.accept().await
    }

    /// The session a packet on this connection belongs to: the one it named in its first packet, or,
    /// for that first packet, the one `by_ufrag` finds from its STUN USERNAME.
    pub(crate) fn route(
        &mut self,
        remote: SocketAddr,
        serial: u64,
        packet: &[u8],
        by_ufrag: impl Fn(&str) -> Option<PeerId>,
    ) -> TcpRoute {
        let Some(conn) = self.conns.get(&remote).filter(|c| c.serial == serial) else {
            return TcpRoute::Gone;
        };
        if let Some(peer) = conn.peer {
            return TcpRoute::Peer(peer);
        }
        let named = crate::demux::stun_binding_username(packet)
            .and_then(|u| u.split(|b| *b == b':').next())
            .and_then(|u| std::str::from_utf8(u).ok())
            .and_then(by_ufrag);
        let Some(peer) = named.filter(|p| {
            self.conns.values().filter(|c| c.peer == Some(*p)).count() < MAX_CONNS_PER_PEER
        }) else {
            // Not an ICE check for a live session: whatever it is, the connection is not ours.
            self.conns.remove(&remote);
            return TcpRoute::Rejected;
        };
        if let Some(conn) = self.conns.get_mut(&remote) {
            conn.peer = Some(peer);
        }
        TcpRoute::Peer(peer)
    }

    /// Forgets a connection whose task ended.
    pub(crate) fn closed(&mut self, remote: SocketAddr, serial: u64) {
        if self.conns.get(&remote).is_some_and(|c| c.serial == serial) {
            self.conns.remove(&remote);
        }
    }

    /// Closes every connection of a session that is gone (its queued packets, e.g. the DTLS
    /// close_notify, are still written first).
    pub(crate) fn close_peer(&mut self, peer: PeerId) {
        self.conns.retain(|_, c| c.peer != Some(peer));
    }

    pub(crate) fn count(&self) -> usize {
        self.conns.len()
    }
}

/// Why a connection task ended (debug log only: no addresses).
type End = &'static str;

/// One TCP connection's task: see the module docs. Ends by itself in every case listed there.
async fn connection(
    stream: TcpStream,
    remote: SocketAddr,
    serial: u64,
    to_sfu: mpsc::Sender<TcpInput>,
    outbound: mpsc::Receiver<Bytes>,
    idle_timeout: Duration,
) {
    let end = serve(stream, remote, serial, &to_sfu, outbound, idle_timeout).await;
    tracing::debug!(end, "ice-tcp connection closed");
    let _ = to_sfu.send(TcpInput::Closed(remote, serial)).await;
}

async fn serve(
    mut stream: TcpStream,
    remote: SocketAddr,
    serial: u64,
    to_sfu: &mpsc::Sender<TcpInput>,
    mut outbound: mpsc::Receiver<Bytes>,
    idle_timeout: Duration,
) -> End {
    let (mut reader, mut writer) = stream.split();
    let mut buf = BytesMut::with_capacity(2 * (MAX_FRAME + 2));
    let mut idle_deadline = tokio::time::Instant::now() + idle_timeout;
    loop {
        // Hand over every complete frame in the buffer.
        while buf.len() >= 2 {
            let len = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
            if len > MAX_FRAME {
                return "a frame longer than any packet";
            }
            if buf.len() < 2 + len {
                break;
            }
            let mut frame = buf.split_to(2 + len);
            let packet = frame.split_off(2);
            if packet.is_empty() {
                continue;
            }
            if to_sfu
                .send(TcpInput::Packet(remote, serial, packet))
                .await
                .is_err()
            {
                return "the relay stopped";
            }
        }
        buf.reserve(MAX_FRAME + 2);
        tokio::select! {
            read = reader.read_buf(&mut buf) => match read {
                Ok(0) => return "closed by the client",
                Ok(_) => idle_deadline = tokio::time::Instant::now() + idle_timeout,
                Err(_) => return "read error",
            },
            frame = outbound.recv() => match frame {
                // Dropped by the relay: the session is gone or the connection sent garbage. What was
                // queued before has been written.
                None => return "closed by the relay",
                Some(frame) => {
                    match tokio::time::timeout(WRITE_TIMEOUT, writer.write_all(&frame)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => return "write error",
                        Err(_) => return "write stalled",
                    }
                }
            },
            _ = tokio::time::sleep_until(idle_deadline) => return "idle",
        }
    }
}

#[cfg(test)]
mod buffer_tests {
    use super::*;

    fn sysctl(name: &str) -> usize {
        std::fs::read_to_string(format!("/proc/sys/net/core/{name}"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// A burst that arrives while the relay is off its core waits in the kernel instead of being
    /// dropped: the socket gets the large buffers it asks for, as far as the kernel allows.
    #[test]
    fn the_udp_socket_gets_large_buffers_up_to_the_kernel_cap() {
        let socket = bind(SocketAddr::from(([127, 0, 0, 1], 0)), false).expect("bind");
        let recv_cap = UDP_RECV_BUFFER.min(sysctl("rmem_max"));
        let send_cap = UDP_SEND_BUFFER.min(sysctl("wmem_max"));
        assert!(
            recv_cap > sysctl("rmem_default"),
            "this machine's rmem_max leaves nothing to ask for; the test cannot tell"
        );
        // Linux reports twice what was set (bookkeeping overhead included).
        assert!(socket.recv_buffer_size().expect("SO_RCVBUF") >= recv_cap);
        assert!(socket.send_buffer_size().expect("SO_SNDBUF") >= send_cap);
    }
}
