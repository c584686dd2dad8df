//! Circle's server: the edge and the glue.
//!
//! # Layout
//! - `config.rs`: the configuration (defaults, file, environment).
//! - `http.rs`: the HTTP API (create a room, room info, health) and the websocket upgrade.
//! - `ws_upgrade.rs`: the websocket handshake, keeping the raw connection (to drain it before closing).
//! - `conn.rs`: one websocket connection: parsing, rate limits, the bounded outbound queue.
//! - `wire.rs`: frame parsing, wire → room command, and internal errors → wire error codes.
//! - `room_actor.rs`: the task that owns one room's state machine and fans its messages out.
//! - `client_limit.rs`: per-client limits on the HTTP API, keyed by a hash of the address.
//! - `auth.rs`: random ids and secrets, signed resume tokens.
//! - `redact.rs`: what logs may say of a room (a keyed hash of its id, never the id).
//! - `media.rs`: the voice relay (`circle-media`) started for the server, and the routing of its events
//!   to the room actors that drive it.
//!
//! The room rules live in `circle-room` (no IO); the wire types in `circle-protocol`.

pub mod auth;
pub mod client_limit;
pub mod config;
mod conn;
pub mod http;
pub mod media;
pub mod redact;
pub mod room_actor;
pub mod wire;
mod ws_upgrade;

use crate::{auth::TokenKeys, config::Config, room_actor::RoomHandle};
use anyhow::Context;
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
    /// Every task the server spawns (room actors, connection writers): shutdown waits for them, with a
    /// deadline, so goodbyes are sent before the process exits.
    pub tasks: TaskTracker,
}

impl AppState {
    /// State for a server with this configuration and voice relay. Fails when the token key cannot
    /// sign.
    pub fn new(config: Config, media: Option<media::Media>) -> Result<Self, auth::TokenError> {
        let keys = TokenKeys::new(&config.auth.token_key, config.auth.token_ttl_secs)?;
        let origins = config.client.effective_origins();
        let room_creation = Arc::new(client_limit::ClientLimiter::new(
            config.limits.rooms_per_client_per_min,
            config.limits.rooms_per_client_burst,
        ));
        Ok(Self {
            config: Arc::new(config),
            keys: Arc::new(keys),
            rooms: Arc::new(DashMap::new()),
            clock: Clock::new(),
            shutdown: CancellationToken::new(),
            origins: Arc::new(origins),
            room_creation,
            conn_ids: Arc::new(AtomicU64::new(1)),
            media,
            tasks: TaskTracker::new(),
        })
    }

    fn next_conn_id(&self) -> u64 {
        self.conn_ids.fetch_add(1, Ordering::Relaxed)
    }
}

/// How long shutdown waits for goodbyes (removed frames, close frames, DTLS close_notify) to go out.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

/// A running server.
pub struct Running {
    /// Where the API and websocket listen.
    pub addr: SocketAddr,
    /// Where the web client is served, if it is.
    pub client_addr: Option<SocketAddr>,
    /// The shared state, for tests that look inside (the hearing snapshot, the directory).
    pub state: AppState,
    /// The HTTP server task.
    task: JoinHandle<()>,
}

impl Running {
    /// Tells every member the server is stopping, closes their connections, and waits (up to
    /// [`SHUTDOWN_DEADLINE`] in all) for the server task and every tracked task to end.
    pub async fn shutdown(self) {
        self.state.shutdown.cancel();
        self.state.tasks.close();
        let deadline = Instant::now() + SHUTDOWN_DEADLINE;
        let _ = tokio::time::timeout_at(deadline, self.task).await;
        let _ = tokio::time::timeout_at(deadline, self.state.tasks.wait()).await;
    }
}

/// Binds the listeners and starts serving.
pub async fn start(mut config: Config) -> anyhow::Result<Running> {
    let listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("binding {}", config.server.listen))?;
    let addr = listener.local_addr()?;
    if config.server.public_url.is_empty() {
        // The address actually bound (port 0 becomes the real port).
        config.server.public_url = format!("http://{addr}");
    }
    let client = if config.client.serve_dir.is_empty() {
        None
    } else {
        let l = TcpListener::bind(config.client.listen)
            .await
            .with_context(|| format!("binding {}", config.client.listen))?;
        Some((l.local_addr()?, l, config.client.serve_dir.clone()))
    };
    let media = if config.media.enabled {
        Some(media::Media::start(&config.media).await?)
    } else {
        None
    };
    let state = AppState::new(config, media)?;
    let app = http::router(state.clone());
    let stop = state.shutdown.clone();
    let task = tokio::spawn(async move {
        let served = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "server stopped with an error");
        }
    });
    let client_addr = client.map(|(caddr, l, dir)| {
        let stop = state.shutdown.clone();
        let app = http::client_router(&dir, &state);
        tokio::spawn(async move {
            let _ = axum::serve(l, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
        });
        caddr
    });
    info!(%addr, "circle listening");
    Ok(Running {
        addr,
        client_addr,
        state,
        task,
    })
}
