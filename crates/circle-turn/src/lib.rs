//! Circle's embedded TURN server: webrtc-rs's [`turn`] crate on UDP, TCP and TLS, with
//! short-lived REST-API credentials, relaying only to Circle's own media addresses.
//!
//! # Layout
//!
//! - `lib.rs`: [`TurnConfig`], [`spawn`], [`TurnServer`] (stats, close), [`ice_urls`].
//! - `credentials.rs`: [`credentials`] (the "TURN REST API" scheme coturn's `use-auth-secret`
//!   checks) and the `turn` server's auth handler over it.
//! - `peers.rs`: the allowed peer set, and the listener wrapper that answers a CreatePermission or
//!   ChannelBind naming any other peer with 403 Forbidden, and rate-limits requests that carry no
//!   valid credentials.
//! - `relay.rs`: relay sockets bound in the configured port range, wrapped so they cannot send to
//!   or hear from any other peer either.
//! - `stream.rs`: TCP and TLS listeners presented to the `turn` server as one datagram-style
//!   connection each (framing, limits, per-connection outbound queues).
//!
//! # Model
//!
//! A client gets `username`/`password` from Circle ([`credentials`]), allocates a relay address
//! over any listener, and asks for permissions or channels to peers. The only peers it gets are
//! [`TurnConfig::allowed_peers`] — the addresses of Circle's media socket — so the relay is useful
//! for reaching Circle and for nothing else: not an open relay. Refusals are counted in
//! [`TurnStats`].
//!
//! Each listener is one read loop in the `turn` crate, handling one message at a time, so nothing
//! on that path may wait on a client: a TCP/TLS client's messages go into its own bounded queue,
//! dropped when full. Requests without valid credentials are rate-limited, because the `turn`
//! crate keeps a nonce for each until it comes back (a forged-source UDP flood would otherwise
//! grow that store without end).
//!
//! Limits that live elsewhere: the relay port range caps the number of allocations (one port
//! each); an allocation made over TCP/TLS outlives its connection until its lifetime runs out
//! (10 minutes unless refreshed), as the `turn` crate has no way to end one allocation from
//! outside.
//!
//! # How tasks end
//!
//! The `turn` crate spawns one read loop per listener, and one reader and one timer per
//! allocation; [`TurnServer::close`] tells its read loops to stop, which closes every allocation
//! and then the listener, and waits for that. The TCP/TLS accept loops and connection tasks are
//! this crate's own, on a [`TaskTracker`], and end on a cancellation token that `close` cancels
//! last; `close` waits for them, up to [`CLOSE_DEADLINE`]. Dropping a [`TurnServer`] without
//! closing it ends the stream tasks too, but leaves the `turn` crate's loops running.
//! [`TurnServer::healthy`] says whether every listener's read loop still runs.
//!
//! # Logs
//!
//! This crate logs no address, username or secret at info or above (refusals are counted, and
//! logged at debug without the address). The `turn` crate's own logs do name client and peer
//! addresses, at error and info: add [`LOG_DIRECTIVES`] to the tracing filter.

mod credentials;
mod peers;
mod relay;
mod stream;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use webrtc_util::Conn;

pub use credentials::credentials;
pub use stream::StreamLimits;

use credentials::RestAuth;
use peers::{AllowedPeers, PeerGuard, PeerRules};
use relay::RelayGenerator;
use stream::StreamMux;

/// Tracing filter directives that silence the `turn` crate, whose logs (through the `log` facade)
/// name client and peer addresses even at error level, and the crates under it. Append to the
/// subscriber's filter, after anything `RUST_LOG` asks for.
pub const LOG_DIRECTIVES: &str = "turn=off,stun=off,webrtc_util=off";

/// How long [`TurnServer::close`] waits for the listeners and their tasks to finish.
pub const CLOSE_DEADLINE: Duration = Duration::from_secs(5);

/// What the TURN server listens on, relays from, and accepts.
#[derive(Clone)]
pub struct TurnConfig {
    /// TURN over UDP (usually port 3478).
    pub udp: Option<SocketAddr>,
    /// TURN over TCP (usually port 3478).
    pub tcp: Option<SocketAddr>,
    /// TURN over TLS (usually port 5349, or 443 to pass strict firewalls).
    pub tls: Option<TlsListen>,
    /// The IP relay sockets bind to.
    pub relay_bind_ip: IpAddr,
    /// The IP given to clients as their relayed address (XOR-RELAYED-ADDRESS): the public IP when
    /// the host sits behind 1:1 NAT, else the same as `relay_bind_ip`. Not unspecified.
    pub relay_advertised_ip: IpAddr,
    /// The UDP ports relay sockets may use, both ends included; one port per allocation.
    pub relay_ports: RangeInclusive<u16>,
    /// The realm of the long-term credentials (coturn's `realm`).
    pub realm: String,
    /// The secret shared with whoever issues [`credentials`] (coturn's `static-auth-secret`).
    pub secret: String,
    /// Circle's own media addresses, the only peers relayed to. A port of 0 allows every port of
    /// that IP (for a media port range).
    pub allowed_peers: Vec<SocketAddr>,
    /// Limits on the TCP and TLS listeners.
    pub stream_limits: StreamLimits,
}

/// The TLS listener: its address and the TLS configuration, shared so that a certificate
/// resolver the caller reloads serves here too.
///
/// Its `alpn_protocols` should be empty or include `stun.turn` (RFC 7443): a client offering only
/// `stun.turn` fails the handshake against a configuration that lists just `h2`/`http/1.1`.
#[derive(Clone)]
pub struct TlsListen {
    pub addr: SocketAddr,
    pub config: Arc<rustls::ServerConfig>,
}

/// Why the TURN server did not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    /// The configuration cannot work; the text says which setting and why.
    #[error("TURN configuration: {0}")]
    Config(&'static str),
    /// A listener could not be bound.
    #[error("TURN {listener} listener: {source}")]
    Bind {
        listener: &'static str,
        #[source]
        source: io::Error,
    },
    /// The `turn` crate refused to start or stop.
    #[error("TURN server: {0}")]
    Turn(#[from] turn::Error),
    /// The listeners did not finish within [`CLOSE_DEADLINE`].
    #[error("TURN server did not stop within {CLOSE_DEADLINE:?}")]
    CloseTimeout,
}

/// Counters shared by the pieces of one server.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    allocations: AtomicUsize,
    refused_peers: AtomicU64,
    refused_sends: AtomicU64,
    dropped_from_peers: AtomicU64,
    stream_connections: AtomicUsize,
    refused_connections: AtomicU64,
    dropped_outbound: AtomicU64,
    bad_streams: AtomicU64,
    dropped_unauthenticated: AtomicU64,
}

/// A snapshot of the server's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TurnStats {
    /// Allocations (relay sockets) open now.
    pub allocations: usize,
    /// CreatePermission or ChannelBind requests refused with 403 because they named a peer that
    /// is not one of Circle's media addresses.
    pub refused_permissions: u64,
    /// Datagrams a client asked to relay to a peer that is not allowed, refused by the relay
    /// socket.
    pub refused_sends: u64,
    /// Datagrams that reached a relay socket from a peer that is not allowed, dropped.
    pub dropped_from_peers: u64,
    /// TCP and TLS connections open now.
    pub stream_connections: usize,
    /// TCP and TLS connections closed at once because a listener was at its limit.
    pub refused_connections: u64,
    /// Messages to a TCP/TLS client dropped because its outbound queue was full.
    pub dropped_outbound: u64,
    /// TCP/TLS connections closed because they sent something that is not STUN or ChannelData.
    pub bad_streams: u64,
    /// Requests without valid credentials dropped because they came faster than the `turn`
    /// crate's nonce store should grow (see the crate docs).
    pub dropped_unauthenticated: u64,
}

impl TurnStats {
    /// Every attempt to reach a peer other than Circle's media addresses, however it was stopped.
    pub fn refused_peer_attempts(&self) -> u64 {
        self.refused_permissions + self.refused_sends + self.dropped_from_peers
    }
}

/// A running TURN server. Stop it with [`TurnServer::close`].
pub struct TurnServer {
    server: turn::server::Server,
    udp_addr: Option<SocketAddr>,
    tcp_addr: Option<SocketAddr>,
    tls_addr: Option<SocketAddr>,
    /// One per listener, cancelled when the `turn` server has closed it (after its allocations).
    listeners_closed: Vec<CancellationToken>,
    /// Ends this crate's own tasks (stream accept loops and connections).
    shutdown: CancellationToken,
    tracker: TaskTracker,
    counters: Arc<Counters>,
}

/// Binds the configured listeners and starts the TURN server on them.
pub async fn spawn(config: TurnConfig) -> Result<TurnServer, TurnError> {
    validate(&config)?;
    let counters = Arc::new(Counters::default());
    let peers = Arc::new(AllowedPeers::new(&config.allowed_peers));
    let auth = Arc::new(RestAuth::new(config.secret.clone()));
    let rules = Arc::new(PeerRules::new(
        peers.clone(),
        auth.clone(),
        counters.clone(),
    ));
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    // A listener that fails to bind stops the stream listeners already started.
    let stop_on_error = shutdown.clone().drop_guard();

    // Each listener gets its own allocation manager in the `turn` crate, so the same client
    // address on two listeners never collides.
    let mut listeners: Vec<(Arc<dyn Conn + Send + Sync>, CancellationToken)> = Vec::new();
    let mut udp_addr = None;
    if let Some(addr) = config.udp {
        let socket = UdpSocket::bind(addr)
            .await
            .map_err(|source| TurnError::Bind {
                listener: "UDP",
                source,
            })?;
        let bound = socket.local_addr().map_err(|source| TurnError::Bind {
            listener: "UDP",
            source,
        })?;
        udp_addr = Some(bound);
        listeners.push((Arc::new(socket), CancellationToken::new()));
    }
    let mut tcp_addr = None;
    if let Some(addr) = config.tcp {
        let mux =
            stream_listener(addr, None, "TCP", &config, &counters, &shutdown, &tracker).await?;
        tcp_addr = Some(mux.local);
        listeners.push((Arc::new(mux), CancellationToken::new()));
    }
    let mut tls_addr = None;
    if let Some(tls) = &config.tls {
        let acceptor = TlsAcceptor::from(tls.config.clone());
        let mux = stream_listener(
            tls.addr,
            Some(acceptor),
            "TLS",
            &config,
            &counters,
            &shutdown,
            &tracker,
        )
        .await?;
        tls_addr = Some(mux.local);
        listeners.push((Arc::new(mux), CancellationToken::new()));
    }

    let mut conn_configs = Vec::new();
    let mut listeners_closed = Vec::new();
    for (inner, closed) in listeners {
        let guard = PeerGuard {
            inner,
            rules: rules.clone(),
            closed: closed.clone(),
        };
        conn_configs.push(turn::server::config::ConnConfig {
            conn: Arc::new(guard),
            relay_addr_generator: Box::new(RelayGenerator {
                bind_ip: config.relay_bind_ip,
                advertised_ip: config.relay_advertised_ip,
                ports: config.relay_ports.clone(),
                peers: peers.clone(),
                counters: counters.clone(),
            }),
        });
        listeners_closed.push(closed);
    }
    let server = turn::server::Server::new(turn::server::config::ServerConfig {
        conn_configs,
        realm: config.realm.clone(),
        auth_handler: auth,
        // Zero means the `turn` crate's default (10 minutes, as RFC 8656 §12 says).
        channel_bind_timeout: Duration::ZERO,
        alloc_close_notify: None,
    })
    .await?;
    stop_on_error.disarm();
    Ok(TurnServer {
        server,
        udp_addr,
        tcp_addr,
        tls_addr,
        listeners_closed,
        shutdown,
        tracker,
        counters,
    })
}

async fn stream_listener(
    addr: SocketAddr,
    tls: Option<TlsAcceptor>,
    listener: &'static str,
    config: &TurnConfig,
    counters: &Arc<Counters>,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> Result<StreamMux, TurnError> {
    let bind_error = |source| TurnError::Bind { listener, source };
    let socket = TcpListener::bind(addr).await.map_err(bind_error)?;
    StreamMux::start(
        socket,
        tls,
        config.stream_limits.clone(),
        counters.clone(),
        shutdown.child_token(),
        tracker,
    )
    .map_err(bind_error)
}

/// Refuses, once and with one clear line, a configuration that cannot work.
fn validate(config: &TurnConfig) -> Result<(), TurnError> {
    let fail = |text| Err(TurnError::Config(text));
    if config.udp.is_none() && config.tcp.is_none() && config.tls.is_none() {
        return fail("no listener: give a UDP, TCP or TLS address");
    }
    if config.secret.is_empty() {
        return fail("the shared secret is empty");
    }
    if config.realm.is_empty() {
        return fail("the realm is empty");
    }
    if *config.relay_ports.start() == 0 || config.relay_ports.is_empty() {
        return fail("the relay port range must be non-empty and start above 0");
    }
    if config.relay_advertised_ip.is_unspecified() {
        return fail("the advertised relay IP is unspecified (0.0.0.0 or ::)");
    }
    if config.relay_advertised_ip.is_ipv4() != config.relay_bind_ip.is_ipv4() {
        return fail("the relay bind IP and advertised IP are of different families");
    }
    if config.allowed_peers.is_empty() {
        return fail("no allowed peers: the relay would relay to nothing");
    }
    if config.stream_limits.max_connections == 0 {
        return fail("stream_limits.max_connections is 0");
    }
    if config.stream_limits.idle_timeout.is_zero() {
        return fail("stream_limits.idle_timeout is 0");
    }
    Ok(())
}

impl TurnServer {
    /// The bound UDP address (useful with port 0).
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp_addr
    }

    /// The bound TCP address.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    /// The bound TLS address.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// Whether every listener is still served: false once any listener's read loop in the `turn`
    /// crate has ended (after [`TurnServer::close`], or if it failed).
    pub fn healthy(&self) -> bool {
        !self.listeners_closed.iter().any(|c| c.is_cancelled())
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> TurnStats {
        let c = &self.counters;
        TurnStats {
            allocations: c.allocations.load(Ordering::Relaxed),
            refused_permissions: c.refused_peers.load(Ordering::Relaxed),
            refused_sends: c.refused_sends.load(Ordering::Relaxed),
            dropped_from_peers: c.dropped_from_peers.load(Ordering::Relaxed),
            stream_connections: c.stream_connections.load(Ordering::Relaxed),
            refused_connections: c.refused_connections.load(Ordering::Relaxed),
            dropped_outbound: c.dropped_outbound.load(Ordering::Relaxed),
            bad_streams: c.bad_streams.load(Ordering::Relaxed),
            dropped_unauthenticated: c.dropped_unauthenticated.load(Ordering::Relaxed),
        }
    }

    /// Stops the server: closes every allocation and listener, ends every task, and waits for
    /// that, up to [`CLOSE_DEADLINE`].
    pub async fn close(&self) -> Result<(), TurnError> {
        let closing = async {
            self.server.close().await?;
            for closed in &self.listeners_closed {
                closed.cancelled().await;
            }
            self.shutdown.cancel();
            self.tracker.close();
            self.tracker.wait().await;
            Ok(())
        };
        let result = tokio::time::timeout(CLOSE_DEADLINE, closing).await;
        // Whatever happened, this crate's own tasks stop.
        self.shutdown.cancel();
        result.unwrap_or(Err(TurnError::CloseTimeout))
    }
}

impl Drop for TurnServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The ICE server URLs for the listeners a client can reach at `host` (the name on the TLS
/// certificate, for `turns:`; an IPv6 literal is bracketed here), in the order a browser should
/// try them: UDP, then TCP, then TLS.
pub fn ice_urls(host: &str, udp: Option<u16>, tcp: Option<u16>, tls: Option<u16>) -> Vec<String> {
    let host = match host.parse::<std::net::Ipv6Addr>() {
        Ok(_) => format!("[{host}]"),
        Err(_) => host.to_string(),
    };
    let mut urls = Vec::new();
    if let Some(port) = udp {
        urls.push(format!("turn:{host}:{port}?transport=udp"));
    }
    if let Some(port) = tcp {
        urls.push(format!("turn:{host}:{port}?transport=tcp"));
    }
    if let Some(port) = tls {
        urls.push(format!("turns:{host}:{port}?transport=tcp"));
    }
    urls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ice_urls_name_each_listener_as_rfc_7065_spells_it() {
        assert_eq!(
            ice_urls("turn.example.org", Some(3478), Some(3478), Some(5349)),
            [
                "turn:turn.example.org:3478?transport=udp",
                "turn:turn.example.org:3478?transport=tcp",
                "turns:turn.example.org:5349?transport=tcp",
            ]
        );
        assert_eq!(
            ice_urls("2001:db8::1", Some(3478), None, None),
            ["turn:[2001:db8::1]:3478?transport=udp"]
        );
    }
}
