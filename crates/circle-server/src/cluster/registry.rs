//! The node's own record in the registry, and the task that keeps it fresh.
//!
//! How the task ends: when the server shuts down it takes its record and its meetings' keys out of
//! Redis (best effort, one [`super::REDIS_TIMEOUT`]) and stops. A node killed outright leaves them to
//! lapse ([`NODE_TTL`], [`ROOM_TTL`]).
//!
//! Redis unreachable: the node's meetings go on untouched (nothing in a meeting waits on Redis);
//! the task retries with backoff (from [`RETRY_FIRST`] doubling to [`REFRESH_EVERY`], well within
//! [`NODE_TTL`], so the node is registered again within seconds of Redis coming back), and while it
//! fails the node starts no meeting and `/readyz` says `"cluster": "down"`.

use super::{Cluster, ClusterError, NODE_TTL, REFRESH_EVERY, ROOM_TTL, load};
use crate::AppState;
use circle_protocol::RoomId;
use serde::{Deserialize, Serialize};
use std::{sync::Arc, sync::atomic::Ordering, time::Duration};
use tracing::{info, warn};

/// The set of registered node ids.
pub(super) const NODES_KEY: &str = "circle:nodes";
/// The first retry after Redis failed; each next one waits twice as long, up to [`REFRESH_EVERY`].
const RETRY_FIRST: Duration = Duration::from_millis(250);
/// After this many failures in a row the connection is made afresh (the manager's own reconnection
/// may be waiting out its backoff).
const FRESH_CONNECTION_AFTER: u32 = 3;

/// A node as the registry shows it (`circle:node:{id}`, JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The node id.
    pub id: String,
    /// The base URL of its API.
    pub url: String,
    /// Its websocket URL: where clients join its meetings.
    pub ws_url: String,
    /// Meetings it holds.
    pub rooms: usize,
    /// Participants in them (admitted, online or reconnecting).
    pub participants: usize,
    /// Voice relay workers (0: voice off).
    pub relay_workers: usize,
    /// Draining: its meetings go on, it takes no new one.
    pub draining: bool,
    /// Its voice relay (and TURN, when embedded) answer.
    pub ready: bool,
}

/// How much one meeting weighs against one participant when placing: a new meeting is empty when
/// placed, and the next ones placed in the same seconds must still spread.
const MEETING_WEIGHT: usize = 8;

impl NodeRecord {
    /// Whether new meetings may go here.
    pub fn takes_meetings(&self) -> bool {
        self.ready && !self.draining
    }

    /// Load per relay worker: lower is less loaded.
    pub(super) fn load_score(&self) -> f64 {
        let load = self.participants + MEETING_WEIGHT * self.rooms;
        load as f64 / self.relay_workers.max(1) as f64
    }
}

pub(super) fn node_key(id: &str) -> String {
    format!("circle:node:{id}")
}

impl Cluster {
    /// This node's record as of now.
    pub async fn record(&self, state: &AppState) -> NodeRecord {
        let (rooms, participants) = load(state);
        let turn_ok = state
            .turn
            .as_deref()
            .and_then(|t| t.relay_healthy())
            .unwrap_or(true);
        NodeRecord {
            id: self.node_id.clone(),
            url: self.url.clone(),
            ws_url: self.ws_url.clone(),
            rooms,
            participants,
            relay_workers: state
                .media
                .as_ref()
                .map_or(0, |_| state.config.media.worker_count()),
            draining: state.draining(),
            ready: turn_ok && state.relay_alive().await,
        }
    }

    /// Writes this node's record, and the placement key of every meeting it holds, with their
    /// time-to-live: one round trip, `2 + meetings` commands (the periodic refresh).
    pub async fn publish(&self, state: &AppState) -> Result<(), ClusterError> {
        let links: Vec<_> = state.rooms.iter().map(|r| r.key().clone()).collect();
        self.publish_with(state, &links).await
    }

    /// Writes this node's record and the placement key of one new meeting (right after creating
    /// it, so the next placement sees the new load): three commands, whatever the node holds.
    pub async fn publish_new(&self, state: &AppState, link: &RoomId) -> Result<(), ClusterError> {
        self.publish_with(state, std::slice::from_ref(link)).await
    }

    async fn publish_with(&self, state: &AppState, links: &[RoomId]) -> Result<(), ClusterError> {
        let record = self.record(state).await;
        let json = serde_json::to_string(&record).unwrap_or_default();
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(node_key(&self.node_id))
            .arg(json)
            .arg("PX")
            .arg(NODE_TTL.as_millis() as u64)
            .ignore();
        pipe.cmd("SADD").arg(NODES_KEY).arg(&self.node_id).ignore();
        for link in links {
            pipe.cmd("SET")
                .arg(self.room_key(link))
                .arg(&self.node_id)
                .arg("PX")
                .arg(ROOM_TTL.as_millis() as u64)
                .ignore();
        }
        self.run::<()>(pipe).await
    }

    /// Every registered node whose record has not lapsed (this one included, as last written).
    pub async fn nodes(&self) -> Result<Vec<NodeRecord>, ClusterError> {
        let ids: Vec<String> = self
            .run(redis::cmd("SMEMBERS").arg(NODES_KEY).clone())
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| node_key(id)).collect();
        let records: Vec<Option<String>> = self.run(redis::cmd("MGET").arg(&keys).clone()).await?;
        let mut out = Vec::new();
        let mut lapsed = Vec::new();
        for (id, record) in ids.into_iter().zip(records) {
            match record.and_then(|r| serde_json::from_str::<NodeRecord>(&r).ok()) {
                Some(r) => out.push(r),
                None => lapsed.push(id),
            }
        }
        if !lapsed.is_empty() {
            // A lapsed node leaves the set; were it to come back, it adds itself again.
            let _ = self
                .run::<()>(redis::cmd("SREM").arg(NODES_KEY).arg(&lapsed).clone())
                .await;
        }
        Ok(out)
    }

    /// One node's record, if it is registered.
    pub(super) async fn node(&self, id: &str) -> Result<Option<NodeRecord>, ClusterError> {
        let record: Option<String> = self
            .run(redis::cmd("GET").arg(node_key(id)).clone())
            .await?;
        Ok(record.and_then(|r| serde_json::from_str(&r).ok()))
    }

    /// Warns (loudly, once per connection) when Redis keeps data on disk: the registry holds no
    /// meeting content, but what it holds about meetings (which node holds a link's hash) must not
    /// outlive them either. A Redis whose `CONFIG` is disabled cannot be checked; that is said too.
    async fn check_persistence(&self) {
        let save: Result<Vec<String>, _> = self
            .run(redis::cmd("CONFIG").arg("GET").arg("save").clone())
            .await;
        let aof: Result<Vec<String>, _> = self
            .run(redis::cmd("CONFIG").arg("GET").arg("appendonly").clone())
            .await;
        match (save, aof) {
            (Ok(save), Ok(aof)) => {
                let snapshots = save.get(1).is_some_and(|v| !v.trim().is_empty());
                let append = aof.get(1).is_some_and(|v| v.eq_ignore_ascii_case("yes"));
                if snapshots || append {
                    warn!(
                        snapshots,
                        appendonly = append,
                        "REDIS PERSISTENCE IS ON: the cluster registry is written to disk; set \
                         `save \"\"` and `appendonly no` on the Redis server (docs/DEPLOY.md)"
                    );
                }
            }
            _ => warn!(
                "cannot read the Redis persistence settings (CONFIG GET is refused): make sure \
                 the Redis server runs with `save \"\"` and `appendonly no` (docs/DEPLOY.md)"
            ),
        }
    }

    /// Takes this node out of the registry (a graceful stop): its record, and its meetings' keys.
    async fn leave(&self, state: &AppState) {
        let mut pipe = redis::pipe();
        pipe.cmd("DEL").arg(node_key(&self.node_id)).ignore();
        pipe.cmd("SREM").arg(NODES_KEY).arg(&self.node_id).ignore();
        let links: Vec<_> = state.rooms.iter().map(|r| r.key().clone()).collect();
        for link in &links {
            pipe.cmd("DEL").arg(self.room_key(link)).ignore();
        }
        if let Err(e) = self.run::<()>(pipe).await {
            warn!(error = %e, "could not leave the cluster registry; the record lapses by itself");
        }
    }
}

/// Starts the task that registers this node and keeps its record fresh (see the module comment
/// for how it ends). Does nothing when cluster mode is off.
pub fn spawn_registry(state: &AppState) {
    let Some(cluster) = state.cluster.clone() else {
        return;
    };
    let state = state.clone();
    state.tasks.clone().spawn(keep_registered(cluster, state));
}

async fn keep_registered(cluster: Arc<Cluster>, state: AppState) {
    let mut failures: u32 = 0;
    let mut delay = Duration::ZERO;
    let mut drain_told = false;
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => {
                if cluster.reachable() {
                    cluster.leave(&state).await;
                }
                return;
            }
            // A drain is told at once: new meetings must stop coming here now, not in 3 s.
            _ = state.drain.cancelled(), if !drain_told => drain_told = true,
            _ = tokio::time::sleep(delay) => {}
        }
        match cluster.publish(&state).await {
            Ok(()) => {
                if !cluster.reachable.swap(true, Ordering::Relaxed) {
                    info!(node = %cluster.node_id, "registered in the cluster");
                    cluster.check_persistence().await;
                }
                failures = 0;
                delay = REFRESH_EVERY;
            }
            Err(e) => {
                if cluster.reachable.swap(false, Ordering::Relaxed) || failures == 0 {
                    warn!(error = %e, "cannot reach the cluster registry (Redis): meetings here go \
                        on; no new meeting starts here until it is back");
                }
                failures += 1;
                if failures.is_multiple_of(FRESH_CONNECTION_AFTER) {
                    cluster.reconnect();
                }
                delay = (RETRY_FIRST * 2u32.saturating_pow(failures.min(8) - 1)).min(REFRESH_EVERY);
            }
        }
    }
}
