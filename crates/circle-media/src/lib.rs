//! Circle's audio SFU: WebRTC peer sessions over UDP (one socket per worker; optionally ICE over TCP), RTP
//! forwarding, the mute gate and active speakers. It knows nothing about rooms, participants or roles: the server's room actor maps
//! those onto [`PeerId`]s, [`GroupId`]s and [`Gate`]s and drives this crate through a [`MediaHandle`].
//!
//! # Layout
//!
//! - [`spawn`] (here) binds each worker's socket (and ICE-TCP listener) and starts the workers.
//! - `net.rs`: the wire: the UDP socket, our host candidates (one per advertised address and
//!   transport), dual-stack binding, and ICE-TCP: the listener, one task per TCP connection, RFC 4571
//!   framing and the bounded queues between those tasks and the SFU task.
//! - `handle.rs`: [`MediaHandle`], the driver's cloneable handle (requests over a bounded channel per
//!   worker, each answered on a oneshot; where each group and peer is placed), [`Gate`],
//!   [`MediaStats`].
//! - `event.rs`: [`MediaEvent`], what the task tells the driver (offers, candidates, connection states,
//!   active speakers).
//! - `sfu.rs`: a worker's task: owns its socket, its peers, its group table; `select!`s over commands,
//!   datagrams and timers.
//! - `demux.rs`: which peer a datagram belongs to (ICE ufrag of the first STUN request, then the source
//!   address). A TCP connection is routed the same way by its first packet, then by the connection.
//! - `peer.rs`: one peer's `rtc` (webrtc-rs sans-IO) connection, its publication and subscriptions, and
//!   its offer/answer state.
//! - `forward.rs`: the packet path: the gate, seq renumbering, the write to each subscriber. *How a packet
//!   is dropped for a muted speaker is there.*
//! - `speaker.rs`: active-speaker detection from RFC 6464 audio levels.
//! - `fault.rs`: test-only fault hooks (cargo feature `fault-injection`; never in the server that
//!   `make run` builds).
//!
//! # Model
//!
//! Each peer publishes one Opus track and receives every other member of its group as a separate
//! sendonly track whose msid stream id is `circle-<publisher id>` ([`PeerId::stream_id`]), so a client
//! can tell whose audio (and `getSynchronizationSources().audioLevel`) a track carries. A peer in no group
//! (a waiting room) receives nothing and is forwarded to no one. A publisher whose [`Gate`] is closed is
//! never forwarded, whatever its client sends; gates start closed.
//!
//! # Workers
//!
//! The relay runs [`MediaConfig::workers`] workers, each one tokio task with its own UDP socket (and
//! ICE-TCP listener) on its own port: worker `i` on the configured port plus `i`. A group lives on one
//! worker with all its members, so the packet path takes no lock and makes no hop: a datagram is
//! routed, decrypted by the publisher's connection, gated, and re-encrypted on each subscriber's
//! connection in one go, on the worker that received it, and workers forward on as many cores.
//!
//! [`MediaHandle`] places each new group on the worker with the fewest groups and each peer on its
//! group's worker (its session's candidates name that worker's port), and sends each request to the
//! worker that holds the peer. A peer that will join a group only later (a waiting room) is placed
//! with [`MediaHandle::place_peer`] first; a move into a group on another worker is refused
//! ([`MediaError::OtherWorker`]). One port per worker rather than one port with `SO_REUSEPORT`: the
//! kernel would pick a socket by the sender's address, not by its group. The relay counts as running
//! only while every worker runs ([`MediaHandle::is_running`]).
//!
//! # Driving it
//!
//! The room actor owns a [`MediaHandle`] and reads the event receiver in its `select!` loop. A meeting:
//!
//! ```no_run
//! # async fn meeting(
//! #     alice_offer: String, bob_offer: String, bob_answer: String,
//! # ) -> Result<(), circle_media::MediaError> {
//! use circle_media::{GroupId, MediaConfig, MediaEvent, PeerId};
//!
//! let (media, mut events) = circle_media::spawn(MediaConfig::default()).await?;
//! let room = GroupId(1);
//!
//! // Alice opens the link: a peer in no group (the waiting room), gate closed. Her browser offers
//! // its microphone track; the answer goes back over her websocket.
//! let alice = PeerId(1);
//! let alice_gate = media.add_peer(alice).await?;
//! let answer = media.handle_offer(alice, alice_offer).await?;
//!
//! // A facilitator admits her: she joins the room's group (still muted), then may speak.
//! media.set_group(alice, Some(room)).await?;
//! alice_gate.set(true);
//!
//! // Bob joins and is admitted. Alice gets a `LocalOffer` with Bob's track, Bob one with Alice's.
//! let bob = PeerId(2);
//! media.add_peer(bob).await?;
//! let answer = media.handle_offer(bob, bob_offer).await?;
//! media.set_group(bob, Some(room)).await?;
//! // ... each client's answer to its `LocalOffer` comes back:
//! media.handle_answer(bob, bob_answer).await?;
//!
//! // A facilitator mutes Alice: her next packet is dropped, whatever her client does.
//! alice_gate.set(false);
//!
//! // Alice leaves: everything of hers is freed; Bob gets an offer without her track.
//! media.close_peer(alice).await?;
//!
//! while let Some(event) = events.recv().await {
//!     match event {
//!         MediaEvent::LocalOffer { peer, sdp, .. } => { /* send to that client; answer -> handle_answer */ }
//!         MediaEvent::LocalCandidate { peer, candidate } => { /* trickle to that client */ }
//!         MediaEvent::PeerState { peer, state } => { /* Failed/Closed: close_peer or await resume */ }
//!         MediaEvent::PeerLost { peer, .. } => { /* its session is gone: the client must offer anew */ }
//!         MediaEvent::ActiveSpeakers { group, speakers } => { /* show who speaks */ }
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! A connection that fails or is closed by the client is reported, not removed: the driver decides
//! (grace period for a resume, then `close_peer`).
//!
//! # Negotiation and glare
//!
//! The client makes the first offer (its audio track) and the SFU answers ([`MediaHandle::handle_offer`]).
//! From then on the SFU is the offerer: when group membership changes it adds or removes sendonly
//! tracks and emits [`MediaEvent::LocalOffer`]; the client answers ([`MediaHandle::handle_answer`]).
//! Changes made while an exchange is in flight are folded into one follow-up offer once it completes.
//! Only the SFU knows which tracks a client should receive, so letting it offer saves a round trip
//! ("renegotiate, please" then the client's offer) and keeps the client free of slot bookkeeping.
//!
//! Glare (the client re-offers, e.g. for an ICE restart, while the SFU's offer is outstanding) follows
//! perfect negotiation with the **SFU as the impolite peer**: its offer wins, the client's offer is
//! refused with [`MediaError::Glare`], and the client (polite) rolls back and answers the SFU's offer,
//! then offers again. The SFU never rolls back, so its own state machine stays a straight line.
//!
//! # RTCP
//!
//! RTCP is **terminated per leg**, nothing is forwarded. Each connection generates its own sender
//! reports (for the tracks it sends) and receiver reports (for the track it receives) from the packets
//! it actually saw. For audio nothing needs to cross legs: Opus has no keyframes (no PLI/FIR), the SFU
//! negotiates no NACK (Opus in-band FEC and PLC cover loss, and a retransmission would arrive too late
//! for a conversation), and bitrate is fixed (no REMB/TWCC). Forwarding receiver reports would also
//! leak one member's network quality to another.
//!
//! # Addresses and transports
//!
//! Every session gets the same host candidates: for each [`MediaConfig::advertised_ips`] entry (IPv4
//! and/or IPv6; default: the bound address), one UDP candidate on the bound UDP port and, when
//! [`MediaConfig::tcp_listen`] is set, one passive TCP candidate (RFC 6544) on the bound TCP port.
//! Binding `[::]` makes one dual-stack socket (`IPV6_V6ONLY` off, set explicitly), so one UDP port and
//! one TCP port serve both families; IPv4 remotes are handled by their plain IPv4 address. A packet is
//! attributed to our first advertised address of its sender's family (there is no way to tell which
//! local address it reached on an unspecified bind), so more than one address per family gains
//! nothing.
//!
//! A client whose network drops UDP connects to a passive TCP candidate and sends its packets framed
//! (RFC 4571: a 2-byte length, then the packet). Each connection has its own task (see `net.rs`) that
//! de-frames and hands packets to the SFU task, which routes and feeds them to the same `rtc`
//! connection a datagram would go to, tagged TCP; what that connection answers on TCP is framed and
//! queued to that connection's task without waiting (a full queue drops, as a full UDP buffer does).
//! A connection whose first packet is not an ICE check naming a live session, or whose frame is longer
//! than any packet, is closed; nobody else notices.
//!
//! # Security and privacy
//!
//! ICE-lite: the SFU only answers connectivity checks, so it never sends to an address a client merely
//! claimed. DTLS role is server, SRTP prefers AEAD_AES_128_GCM (see `peer.rs`). Remote addresses are
//! never logged; ids are.
//!
//! # Logs
//!
//! This crate logs peer ids, never addresses. The webrtc-rs stack underneath logs through the `log`
//! crate (which `tracing-subscriber` picks up), and some of its *warnings* name remote addresses: add
//! [`WEBRTC_LOG_DIRECTIVES`] to the server's `EnvFilter` to cap it at `error`.
//!
//! # SDP size
//!
//! Transceivers are reused (`Peer::subscribe_exactly`): a voice that leaves turns its m-line inactive,
//! and once the client has answered that offer the next voice takes it. A session's m-line count is
//! thus bounded by its group's size (one of its own plus at most three per other member), not by how
//! often members came, went or restarted their sessions. [`MediaStats::max_mlines`] reports it. A
//! session receives at most [`MediaConfig::max_voices`] (32) voices, so that even a large group's
//! SDPs, and so the client's `media_answer`, stay well inside a 64 KiB signalling frame; in a group
//! larger than that, those whose gate is open come first (re-checked at every speaker tick).

mod config;
mod demux;
mod error;
mod event;
pub mod fault;
mod forward;
mod handle;
mod ids;
mod net;
mod peer;
mod sdp;
mod sfu;
mod speaker;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

pub use config::MediaConfig;
pub use error::MediaError;
pub use event::{IceCandidate, MediaEvent, PeerState};
pub use handle::{BUSY_BOUNDS, BusyHistogram, Gate, MediaHandle, MediaStats, NewSession};
pub use ids::{GroupId, PeerId};

/// `EnvFilter` directives that cap the webrtc-rs crates at `error`, whose warnings can carry remote
/// IP addresses (privacy promise: no IPs in logs at info or above).
pub const WEBRTC_LOG_DIRECTIVES: &str = "rtc=error,rtc_ice=error,rtc_dtls=error,rtc_srtp=error,\
rtc_sctp=error,rtc_stun=error,rtc_turn=error,rtc_mdns=error,rtc_interceptor=error,rtc_rtp=error,\
rtc_rtcp=error,rtc_sdp=error,rtc_datachannel=error,rtc_media=error,rtc_shared=error";

/// Shortest accepted [`MediaConfig::speaker_interval`]: more often is noise for clients and work
/// for the task.
const MIN_SPEAKER_INTERVAL: Duration = Duration::from_millis(50);

/// Most relay workers: far more than cores a server has, and each takes a UDP port.
pub const MAX_WORKERS: usize = 256;

/// Binds each worker's socket(s) and starts the workers. Returns the handle to drive them and the
/// receiver of their events (bounded, shared by all workers; read it promptly, events that do not
/// fit are dropped and counted).
///
/// Worker `i` binds [`MediaConfig::bind`]'s port plus `i` (and [`MediaConfig::tcp_listen`]'s port
/// plus `i`), or a free port each when the configured port is 0. The workers end, closing every
/// peer, when the last [`MediaHandle`] clone is dropped.
pub async fn spawn(
    config: MediaConfig,
) -> Result<(MediaHandle, mpsc::Receiver<MediaEvent>), MediaError> {
    if config.speaker_interval < MIN_SPEAKER_INTERVAL {
        return Err(MediaError::Config(
            "speaker_interval must be at least 50 ms",
        ));
    }
    if config.workers == 0 || config.workers > MAX_WORKERS {
        return Err(MediaError::Config("workers must be between 1 and 256"));
    }
    let (event_tx, event_rx) = mpsc::channel(sfu::EVENT_CAPACITY);
    // Each worker holds a guard on this sender and sets it when it ends, by return or by panic.
    let (stopped_tx, stopped) = tokio::sync::watch::channel(false);
    let stopped_tx = std::sync::Arc::new(stopped_tx);
    let mut workers = Vec::with_capacity(config.workers);
    let mut sfus = Vec::with_capacity(config.workers);
    for i in 0..config.workers {
        let (net, worker) = bind_worker(&config, i)?;
        let (command_tx, command_rx) = mpsc::channel(handle::COMMAND_CAPACITY);
        sfus.push(sfu::Sfu::new(
            net,
            config.clone(),
            command_rx,
            event_tx.clone(),
        ));
        workers.push(handle::WorkerTx {
            tx: command_tx,
            ..worker
        });
    }
    // Started only once every socket is bound, so a bind failure leaves nothing running.
    for sfu in sfus {
        let running = handle::RunningGuard(stopped_tx.clone());
        tokio::spawn(async move {
            let _running = running;
            sfu.run().await;
        });
    }
    tracing::info!(
        workers = workers.len(),
        port = workers[0].local_addr.port(),
        tcp_port = workers[0].tcp_local_addr.map(|a| a.port()),
        "media SFU listening"
    );
    Ok((MediaHandle::new(workers, stopped), event_rx))
}

/// Worker `i`'s address for a configured one: the port plus `i`, or any free port for port 0.
fn worker_addr(addr: SocketAddr, i: usize) -> Result<SocketAddr, MediaError> {
    if addr.port() == 0 {
        return Ok(addr);
    }
    let port = usize::from(addr.port()) + i;
    let port =
        u16::try_from(port).map_err(|_| MediaError::Config("the workers' ports run past 65535"))?;
    Ok(SocketAddr::new(addr.ip(), port))
}

/// Binds worker `i`'s UDP socket (and ICE-TCP listener) and checks the advertised addresses
/// against them. The returned [`handle::WorkerTx`] has a placeholder command sender.
fn bind_worker(config: &MediaConfig, i: usize) -> Result<(net::Net, handle::WorkerTx), MediaError> {
    let socket = UdpSocket::from_std(net::bind(worker_addr(config.bind, i)?, false)?.into())?;
    let bound = socket.local_addr()?;
    let advertised = match config.advertised_ips.as_slice() {
        [] if bound.ip().is_unspecified() => {
            return Err(MediaError::Config(
                "an unspecified bind address needs an advertised IP for the ICE candidates",
            ));
        }
        [] => vec![bound.ip()],
        ips => ips.to_vec(),
    };
    let tcp = match config.tcp_listen {
        None => None,
        Some(_) if config.tcp_max_connections == 0 => {
            return Err(MediaError::Config("tcp_max_connections must be at least 1"));
        }
        Some(addr) => {
            let listener = std::net::TcpListener::from(net::bind(worker_addr(addr, i)?, true)?);
            Some(tokio::net::TcpListener::from_std(listener)?)
        }
    };
    let tcp_bound = tcp.as_ref().map(|t| t.local_addr()).transpose()?;
    for ip in &advertised {
        if ip.is_unspecified() {
            return Err(MediaError::Config(
                "an advertised IP must not be unspecified",
            ));
        }
        for listens in [Some(bound), tcp_bound].into_iter().flatten() {
            if !reaches(listens, *ip) {
                return Err(MediaError::Config(
                    "an advertised IP's family must be served by the bind and TCP addresses \
                     ([::] serves both IPv4 and IPv6)",
                ));
            }
        }
    }
    let net = net::Net::new(
        socket,
        advertised,
        tcp.map(|t| (t, config.tcp_max_connections, config.tcp_idle_timeout)),
    )?;
    // The real sender is put in by `spawn`; this one is closed at once.
    let (tx, _) = mpsc::channel(1);
    let worker = handle::WorkerTx {
        tx,
        local_addr: bound,
        tcp_local_addr: tcp_bound,
    };
    Ok((net, worker))
}

/// Whether a socket bound to `bound` receives what is sent to `ip`'s family: same family, or an
/// unspecified IPv6 bind (dual-stack, see `net::bind`).
fn reaches(bound: SocketAddr, ip: std::net::IpAddr) -> bool {
    bound.is_ipv4() == ip.is_ipv4() || (bound.is_ipv6() && bound.ip().is_unspecified())
}

// Lets the shared integration-test harness (`tests/common`) name this crate from unit tests too.
#[cfg(test)]
extern crate self as circle_media;
#[cfg(test)]
#[path = "../tests/common/mod.rs"]
mod test_harness;

#[cfg(test)]
mod tests {
    #[test]
    fn webrtc_log_directives_parse() {
        let filter = tracing_subscriber::EnvFilter::try_new(super::WEBRTC_LOG_DIRECTIVES);
        assert!(filter.is_ok(), "{filter:?}");
        assert!(!super::WEBRTC_LOG_DIRECTIVES.contains(' '));
    }
}
