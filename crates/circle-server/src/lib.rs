//! Circle's server: the edge and the glue.
//!
//! # Layout
//! - `cluster/`: cluster mode (`[cluster] redis_url`): the node registry in Redis, placement of
//!   meetings on nodes, and sending clients to the node that holds their meeting.
//! - `admin.rs`: the operator's listener (`/metrics`), off the public port.
//! - `config.rs`: the configuration (defaults, file, environment) and its validation.
//! - `listen.rs`: the accept loop: connection cap, header timeout and size limit, TLS, draining.
//! - `tls.rs`: HTTPS / WSS: the certificate in use, reloaded when its files change.
//! - `turn.rs`: TURN: the embedded relay started for the server, and the credentials in `joined`.
//! - `http.rs`: the HTTP API (create a room, room info, health) and the websocket upgrade.
//! - `ws_upgrade.rs`: the websocket handshake, keeping the raw connection (to drain it before closing).
//! - `conn.rs`: one websocket connection: parsing, rate limits, the bounded outbound queue.
//! - `wire.rs`: frame parsing, wire → room command, and internal errors → wire error codes.
//! - `room_actor.rs`: the task that owns one room's state machine and fans its messages out.
//! - `standing.rs`: standing rooms' meetings: the directory lookup that starts one from the store
//!   on its link's first arrival (one actor even when joins race).
//! - `organiser.rs`: the organiser API (`/api/standing`, `/api/meetings`) under the operator key.
//! - `client_limit.rs`: per-client limits on the HTTP API, keyed by a hash of the address.
//! - `auth.rs`: random ids and secrets, signed resume tokens.
//! - `redact.rs`: what logs may say of a room (a keyed hash of its id, never the id).
//! - `media.rs`: the voice relay (`circle-media`) started for the server, and the routing of its events
//!   to the room actors that drive it.
//!
//! The room rules live in `circle-room` (no IO); the wire types in `circle-protocol`.

pub mod admin;
pub mod auth;
pub mod client_limit;
pub mod cluster;
pub mod config;
mod conn;
pub mod http;
pub mod listen;
pub mod media;
pub mod organiser;
pub mod redact;
pub mod room_actor;
pub mod standing;
pub mod tls;
pub mod turn;
pub mod wire;
mod ws_upgrade;

use crate::{
    auth::TokenKeys,
    config::Config,
    listen::{Connections, Listener},
    room_actor::RoomHandle,
    tls::Certificate,
};
use axum::Router;
use circle_protocol::{Millis, RoomId};
use dashmap::DashMap;
use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};
use tokio::{net::TcpListener, task::JoinHandle, time::Instant};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::info;

/// The server's clock: Unix milliseconds for what clients see, read from a monotonic clock so timers
/// and hand order never go backwards when the wall clock is adjusted.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// The monotonic instant the server started.
    start: Instant,
    /// The wall-clock time at that instant, in Unix milliseconds.
    start_unix_ms: Millis,
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Self {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as Millis)
            .unwrap_or(0);
        Self {
            start: Instant::now(),
            start_unix_ms: unix,
        }
    }

    /// Now, in Unix milliseconds.
    pub fn now_ms(&self) -> Millis {
        self.start_unix_ms + self.start.elapsed().as_millis() as Millis
    }

    /// The monotonic instant for a time on this clock.
    pub fn instant_at(&self, at: Millis) -> Instant {
        self.start + Duration::from_millis(at.saturating_sub(self.start_unix_ms))
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// What every handler and actor shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The loaded configuration.
    pub config: Arc<Config>,
    /// Signs and checks resume tokens.
    pub keys: Arc<TokenKeys>,
    /// The directory of live rooms: clone a handle out, never hold an entry across an await.
    pub rooms: Arc<DashMap<RoomId, RoomHandle>>,
    /// Members' links rotated away during a live meeting: they only resume that meeting's
    /// sessions (a new join by them is refused). Each meeting takes its own out when it ends.
    pub resume_aliases: Arc<DashMap<RoomId, RoomHandle>>,
    /// Standing rooms' definitions (SQLite or PostgreSQL).
    pub store: circle_store::Store,
    /// The server clock.
    pub clock: Clock,
    /// Cancelled when the server shuts down; every room actor watches it.
    pub shutdown: CancellationToken,
    /// The origins allowed to connect, worked out once from the configuration.
    pub origins: Arc<Vec<String>>,
    /// Room creations per client (hashed address), so one client cannot fill the server.
    pub room_creation: Arc<client_limit::ClientLimiter>,
    /// Numbers connections, so a replaced connection can be told from the current one.
    conn_ids: Arc<AtomicU64>,
    /// The voice relay, when enabled.
    pub media: Option<media::Media>,
    /// Websockets that have not joined yet: a permit each, so a flood of idle sockets cannot crowd
    /// out the people joining meetings.
    pub unjoined: Arc<tokio::sync::Semaphore>,
    /// TURN credentials (and the embedded relay), when configured.
    pub turn: Option<Arc<turn::Turn>>,
    /// Every task the server spawns (room actors, connection writers): shutdown waits for them, with a
    /// deadline, so goodbyes are sent before the process exits.
    pub tasks: TaskTracker,
    /// Cancelled when the server starts draining: no new rooms or joins, readiness false.
    pub drain: CancellationToken,
    /// The cap on open connections and its gauges.
    pub connections: Arc<Connections>,
    /// This node's place in a cluster, in cluster mode (`[cluster] redis_url`).
    pub cluster: Option<Arc<cluster::Cluster>>,
}

impl AppState {
    /// State for a server with this configuration, voice relay and token key (the configured one,
    /// or the one kept in the data directory). Fails when the token key cannot sign.
    pub fn new(
        config: Config,
        media: Option<media::Media>,
        token_key: &str,
        store: circle_store::Store,
    ) -> Result<Self, auth::TokenError> {
        let keys = TokenKeys::new(token_key, config.auth.token_ttl_secs)?;
        let origins = config.client.effective_origins();
        let unjoined = config.limits.max_unjoined_sockets;
        let connections = Arc::new(Connections::new(config.limits.max_connections));
        let room_creation = Arc::new(client_limit::ClientLimiter::new(
            config.limits.rooms_per_client_per_min,
            config.limits.rooms_per_client_burst,
        ));
        Ok(Self {
            config: Arc::new(config),
            keys: Arc::new(keys),
            rooms: Arc::new(DashMap::new()),
            resume_aliases: Arc::new(DashMap::new()),
            store,
            clock: Clock::new(),
            shutdown: CancellationToken::new(),
            origins: Arc::new(origins),
            room_creation,
            conn_ids: Arc::new(AtomicU64::new(1)),
            media,
            turn: None,
            unjoined: Arc::new(tokio::sync::Semaphore::new(unjoined)),
            tasks: TaskTracker::new(),
            drain: CancellationToken::new(),
            connections,
            cluster: None,
        })
    }

    /// Whether the server is draining: it takes no new rooms and no new joins.
    pub fn draining(&self) -> bool {
        self.drain.is_cancelled()
    }

    /// Whether the voice relay runs and answers (within [`RELAY_PROBE_TIMEOUT`]: a relay whose task
    /// lives but is stuck counts as dead too); `true` when voice is off.
    pub async fn relay_alive(&self) -> bool {
        match &self.media {
            None => true,
            Some(m) => {
                m.relay_alive()
                    && matches!(
                        tokio::time::timeout(RELAY_PROBE_TIMEOUT, m.handle.stats()).await,
                        Ok(Ok(_))
                    )
            }
        }
    }

    /// The STUN / TURN servers for one `joined`: the configured ones, then TURN with fresh
    /// credentials.
    pub fn ice_servers(&self) -> Vec<circle_protocol::IceServer> {
        let mut servers = self
            .media
            .as_ref()
            .map(|m| m.ice_servers.to_vec())
            .unwrap_or_default();
        if let Some(turn) = &self.turn {
            servers.push(turn.ice_server());
        }
        servers
    }

    fn next_conn_id(&self) -> u64 {
        self.conn_ids.fetch_add(1, Ordering::Relaxed)
    }
}

/// How long shutdown waits for goodbyes (removed frames, close frames, DTLS close_notify) to go out.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

/// How long the relay may take to answer a liveness probe before it counts as dead.
pub const RELAY_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// How often a draining server looks whether its last connection has closed.
const DRAIN_POLL: Duration = Duration::from_millis(200);

/// How a drain ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drained {
    /// Every connection had closed (the meetings ended) before the deadline.
    Empty,
    /// The deadline came first; the members still connected were told the server is stopping.
    DeadlineReached,
}

/// A running server.
pub struct Running {
    /// Where the API and websocket listen.
    pub addr: SocketAddr,
    /// Where the web client is served on a listener of its own, if it is.
    pub client_addr: Option<SocketAddr>,
    /// Where the admin listener (`/metrics`) is, if there is one.
    pub admin_addr: Option<SocketAddr>,
    /// The shared state, for tests that look inside (the hearing snapshot, the directory).
    pub state: AppState,
    /// The certificate served, when Circle serves TLS itself.
    pub tls: Option<Arc<Certificate>>,
    /// The listener tasks (API, client).
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Tells every member the server is stopping, closes their connections, and waits (up to
    /// [`SHUTDOWN_DEADLINE`] in all) for the listener tasks and every tracked task to end.
    pub async fn shutdown(self) {
        self.state.shutdown.cancel();
        self.state.tasks.close();
        let deadline = Instant::now() + SHUTDOWN_DEADLINE;
        for task in self.tasks {
            let _ = tokio::time::timeout_at(deadline, task).await;
        }
        let _ = tokio::time::timeout_at(deadline, self.state.tasks.wait()).await;
        if let Some(turn) = &self.state.turn {
            let _ = tokio::time::timeout_at(deadline, turn.close()).await;
        }
        let _ = tokio::time::timeout_at(deadline, self.state.store.close()).await;
    }

    /// Drains for a rolling upgrade ([`Running::begin_drain`], then [`Running::wait_drained`]), and
    /// shuts down.
    pub async fn drain(self, deadline: Duration) -> Drained {
        self.begin_drain();
        let outcome = self.wait_drained(deadline).await;
        self.shutdown().await;
        outcome
    }

    /// Starts draining: readiness turns false, no new rooms or joins are taken, HTTP connections
    /// stop keeping alive. Meetings in progress go on.
    pub fn begin_drain(&self) {
        self.state.drain.cancel();
        info!("draining: no new meetings; waiting for the open ones to end");
    }

    /// Waits until every connection has closed (the meetings ended) or `deadline` passes.
    pub async fn wait_drained(&self, deadline: Duration) -> Drained {
        let until = Instant::now() + deadline;
        let outcome = loop {
            if self.state.connections.open() == 0 {
                break Drained::Empty;
            }
            let now = Instant::now();
            if now >= until {
                break Drained::DeadlineReached;
            }
            tokio::time::sleep(DRAIN_POLL.min(until - now)).await;
        };
        info!(?outcome, "drained");
        outcome
    }

    /// Loads the TLS certificate again now (what SIGHUP does); the one in use stays if it fails.
    pub fn reload_tls(&self) -> Result<(), tls::TlsError> {
        match &self.tls {
            Some(cert) => cert.reload(),
            None => Ok(()),
        }
    }
}

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration has problems, one per line.
    #[error("{0}")]
    Config(#[from] config::InvalidConfig),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS certificate or key did not load.
    #[error("tls: {0}")]
    Tls(#[from] tls::TlsError),
    /// rustls refused its own configuration.
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
    /// The resume-token key cannot sign.
    #[error("auth.token_key: {0}")]
    Token(#[from] auth::TokenError),
    /// The store of standing rooms cannot be opened (or its schema brought up to date).
    #[error("storage: {0}")]
    Storage(#[from] circle_store::StoreError),
    /// The token key file in the data directory cannot be read or made.
    #[error("storage.data_dir: token key: {0}")]
    KeyFile(#[from] auth::KeyFileError),
    /// The voice relay did not start.
    #[error("voice relay: {0:#}")]
    Media(anyhow::Error),
    /// The TURN relay did not start.
    #[error("turn: {0}")]
    Turn(#[from] turn::TurnStartError),
    /// Cluster mode could not be set up.
    #[error("cluster: {0}")]
    Cluster(#[from] cluster::ClusterError),
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let bound = TcpListener::bind(addr)
        .await
        .and_then(|l| Ok((l.local_addr()?, l)));
    match bound {
        Ok((local, l)) => Ok((l, local)),
        Err(source) => Err(StartError::Bind { addr, source }),
    }
}

/// Checks the configuration, binds the listeners and starts serving.
pub async fn start(mut config: Config) -> Result<Running, StartError> {
    config.validate()?;
    // First the store: a database that cannot be opened stops the start before anything listens.
    let store = circle_store::Store::open(&circle_store::StoreConfig {
        data_dir: config.storage.data_dir.clone().into(),
        url: config.storage.url.clone(),
    })
    .await?;
    let tls = if config.tls.enabled() {
        let cert = Arc::new(Certificate::load(
            config.tls.cert.as_ref(),
            config.tls.key.as_ref(),
        )?);
        Some(cert)
    } else {
        None
    };
    let acceptor = tls.as_ref().map(|c| c.acceptor()).transpose()?;
    let (listener, addr) = bind(config.server.listen).await?;
    if config.server.public_url.is_empty() {
        // The address actually bound (port 0 becomes the real port).
        config.server.listen = addr;
        config.server.public_url = config.public_url();
    }
    if config.client.same_origin {
        // The client is served right here: links and the allowed origin are the public URL.
        config.client.url = config.public_url();
    }
    let client = if config.client.serve_dir.is_empty() || config.client.same_origin {
        None
    } else {
        Some(bind(config.client.listen).await?)
    };
    let admin = match config.admin.addr() {
        Some(a) => Some(bind(a).await?),
        None => None,
    };
    let media = if config.media.enabled {
        Some(
            media::Media::start(&config.media)
                .await
                .map_err(StartError::Media)?,
        )
    } else {
        None
    };
    let turn = turn::Turn::start(&config, media.as_ref(), tls.as_ref())
        .await?
        .map(Arc::new);
    let token_key = match config.auth.token_key.as_str() {
        "" => auth::load_or_create_key(std::path::Path::new(&config.storage.data_dir))?,
        key => key.to_owned(),
    };
    let mut state = AppState::new(config, media, &token_key, store.clone())?;
    info!(storage = store.backend_name(), "standing rooms' store open");
    state.turn = turn;
    if state.config.cluster.enabled() {
        let public = state.config.public_url();
        let node = cluster::Cluster::new(&state.config, &public, &token_key)?;
        info!(node = %node.node_id, "cluster mode: registering with Redis");
        state.cluster = Some(Arc::new(node));
    }
    cluster::spawn_registry(&state);
    let limits = &state.config.limits;
    let serving = |app: Router, tls: Option<tls::TlsAcceptor>| Listener {
        app,
        tls,
        header_timeout: Duration::from_secs(limits.header_timeout_secs),
        max_header_bytes: limits.max_header_bytes,
        connections: Some(state.connections.clone()),
        stop: state.shutdown.clone(),
        drain: state.drain.clone(),
    };
    let mut tasks = vec![serving(http::router(state.clone()), acceptor.clone()).spawn(listener)];
    let client_addr = client.map(|(l, caddr)| {
        let app = http::client_router(&state.config.client.serve_dir, &state);
        tasks.push(serving(app, acceptor.clone()).spawn(l));
        caddr
    });
    let admin_addr = admin.map(|(l, aaddr)| {
        let listener = Listener {
            tls: None,
            connections: None,
            ..serving(admin::router(state.clone()), None)
        };
        tasks.push(listener.spawn(l));
        aaddr
    });
    if let Some(cert) = &tls {
        cert.spawn_watch(
            Duration::from_secs(state.config.tls.watch_secs),
            state.shutdown.clone(),
        );
    }
    info!(%addr, tls = tls.is_some(), "circle listening");
    Ok(Running {
        addr,
        client_addr,
        admin_addr,
        state,
        tls,
        tasks,
    })
}
