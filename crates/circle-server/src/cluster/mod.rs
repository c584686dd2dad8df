//! Cluster mode (`[cluster] redis_url`): several Circle nodes share one registry in Redis (or
//! Valkey). Without `redis_url` nothing here runs and a node is alone, exactly as before.
//!
//! What is in Redis (docs/ARCHITECTURE.md, "Cluster", says it for operators):
//! - `circle:nodes`: a set of node ids that have registered (a lapsed one is dropped when seen);
//! - `circle:node:{id}`: the node's [`NodeRecord`] (its public URLs and load), written by that node
//!   every [`REFRESH_EVERY`] with a time-to-live of [`NODE_TTL`]: a node whose key lapsed is gone;
//! - `circle:room:{hash}`: the id of the node that holds a meeting, under a keyed hash of the
//!   meeting's link (HMAC-SHA256 with the token key the nodes share), so Redis never holds a link in
//!   clear. Written by the owner when the meeting starts (`SET NX` for a standing room's, so two
//!   nodes never start the same meeting) and refreshed with the node's record, with a time-to-live
//!   of [`ROOM_TTL`].
//!
//! Nothing else: no title, name, chat or count of any one meeting.
//!
//! - `registry.rs`: the node's own record, the task that keeps it (and its meetings' keys) fresh,
//!   reconnecting with backoff, and the check of Redis's persistence settings.
//! - `placement.rs`: where a meeting is or goes: the least loaded node, the owner of a link, the
//!   claim of a standing room's meeting, and the forwarding of the HTTP API to the owner.

mod placement;
mod registry;

pub use placement::{Owner, Route, info_elsewhere, route_join, unavailable};
pub use registry::{NodeRecord, spawn_registry};

use crate::{AppState, config::Config};
use circle_protocol::RoomId;
use hmac::{Hmac, Mac};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::{
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

/// A node's record lives this long unless refreshed: a node that stops refreshing (killed, cut off)
/// leaves placement after at most this.
pub const NODE_TTL: Duration = Duration::from_secs(10);
/// How often a node writes its record and its meetings' keys again.
pub const REFRESH_EVERY: Duration = Duration::from_secs(3);
/// A meeting's placement key lives this long unless its owner refreshes it.
pub const ROOM_TTL: Duration = Duration::from_secs(15);
/// How long one Redis command may take before it counts as failed (Redis answers in microseconds;
/// more than this is a network or server in trouble, and the node must not hang on it).
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a forwarded API request to another node may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a forwarding proof stays good (the nodes' clocks may differ by a little).
const PROOF_WINDOW_SECS: u64 = 30;
/// The header a node puts on an API request it forwards to another: a proof (keyed with the token
/// key) that a node of this cluster placed it, so the receiver neither places it again nor counts
/// it against the forwarding node's address.
pub const FORWARDED_HEADER: &str = "x-circle-forwarded";

/// `[cluster]`
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// `redis://host:port/db` (or `rediss://`, `unix://`) of the shared registry. Empty: no cluster.
    pub redis_url: String,
    /// This node's id in the registry. Empty: a random one at each start.
    pub node_id: String,
    /// The base URL clients (and the other nodes) reach this node at, e.g.
    /// `https://circle-2.example.org`. Empty: `server.public_url`.
    pub public_url: String,
}

impl ClusterConfig {
    /// Whether cluster mode is on.
    pub fn enabled(&self) -> bool {
        !self.redis_url.is_empty()
    }
}

/// The `[cluster]` settings' problems (see `Config::validate`).
pub fn validate(c: &Config, p: &mut Vec<String>) {
    let k = &c.cluster;
    if !k.enabled() {
        return;
    }
    let scheme_ok = ["redis://", "rediss://", "unix://", "valkey://"]
        .iter()
        .any(|s| k.redis_url.starts_with(s));
    if !scheme_ok || redis::Client::open(k.redis_url.as_str()).is_err() {
        // The URL may hold a password: it is not repeated.
        p.push("cluster.redis_url is not a redis:// URL (e.g. redis://10.0.0.5:6379/0)".into());
    }
    if c.auth.token_key.is_empty() {
        p.push(
            "cluster.redis_url is set but auth.token_key is empty: every node of a cluster needs \
             the same long random auth.token_key"
                .into(),
        );
    }
    if !k.public_url.is_empty()
        && let Some(why) = crate::config::http_url_problem(&k.public_url)
    {
        p.push(format!("cluster.public_url {:?} {why}", k.public_url));
    }
    if k.node_id.len() > 64 || k.node_id.chars().any(|ch| !ch.is_ascii_graphic()) {
        p.push("cluster.node_id is at most 64 visible ASCII characters (no spaces)".into());
    }
}

/// Why a cluster operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Redis did not answer, or refused.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis answered something else than expected.
    #[error("redis: unexpected answer: {0}")]
    Answer(#[from] redis::ParsingError),
    /// Redis did not answer in time.
    #[error("redis did not answer within {REDIS_TIMEOUT:?}")]
    Timeout,
    /// The token key cannot key an HMAC (it always can; kept as an error, not a panic).
    #[error("the token key cannot key an HMAC")]
    Key,
}

/// This node's place in the cluster. One per server, shared through [`AppState`].
pub struct Cluster {
    /// This node's id in the registry.
    pub node_id: String,
    /// The base URL of this node's API (`https://…`), no trailing slash.
    pub url: String,
    /// This node's websocket URL (`wss://…/ws`).
    pub ws_url: String,
    /// The registry connection; reconnects by itself. Cloned out, never held across an await.
    redis: Mutex<ConnectionManager>,
    /// To make a fresh connection manager when one keeps failing.
    client: redis::Client,
    /// HMAC-SHA256 keyed with the token key: the hashes of links and the forwarding proofs.
    mac: HmacSha256,
    /// Whether the last registry refresh reached Redis.
    reachable: AtomicBool,
    /// Forwards API requests to other nodes.
    http: reqwest::Client,
}

type HmacSha256 = Hmac<Sha256>;

impl Cluster {
    /// The cluster handle for this configuration (validated), this node's public base URL and the
    /// shared token key. Connects lazily: a Redis that is down at start is retried by the registry
    /// task.
    pub fn new(config: &Config, public_url: &str, token_key: &str) -> Result<Self, ClusterError> {
        let k = &config.cluster;
        let node_id = match k.node_id.as_str() {
            "" => crate::auth::new_secret().chars().take(12).collect(),
            id => id.to_owned(),
        };
        let url = match k.public_url.as_str() {
            "" => public_url,
            u => u,
        }
        .trim_end_matches('/')
        .to_owned();
        let ws_url = format!("{}/ws", url.replacen("http", "ws", 1));
        let client = redis::Client::open(k.redis_url.as_str())?;
        let redis = connection(&client)?;
        let http = reqwest::Client::builder()
            .timeout(FORWARD_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Ok(Self {
            node_id,
            url,
            ws_url,
            redis: Mutex::new(redis),
            client,
            mac: <HmacSha256 as Mac>::new_from_slice(token_key.as_bytes())
                .map_err(|_| ClusterError::Key)?,
            reachable: AtomicBool::new(false),
            http,
        })
    }

    /// Whether this node reached Redis on its last try. While it does not, it starts no meeting
    /// (it could not record where, nor know whether another node holds it).
    pub fn reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    /// The registry key of a meeting's link: a keyed hash, so Redis never holds the link.
    fn room_key(&self, link: &RoomId) -> String {
        format!("circle:room:{}", hex::encode(self.mac(b"room:", &link.0)))
    }

    fn mac(&self, domain: &[u8], data: &str) -> Vec<u8> {
        let mut m = self.mac.clone();
        m.update(domain);
        m.update(data.as_bytes());
        m.finalize().into_bytes().to_vec()
    }

    /// A proof, for [`FORWARDED_HEADER`], that this node forwards a request now.
    fn forward_proof(&self) -> String {
        let now = unix_secs();
        format!(
            "{now}.{}",
            hex::encode(self.mac(b"forwarded:", &now.to_string()))
        )
    }

    /// Whether `header` is a fresh proof from a node of this cluster.
    pub fn is_forwarded(&self, header: Option<&str>) -> bool {
        let Some((at, mac)) = header.and_then(|h| h.split_once('.')) else {
            return false;
        };
        let Ok(secs) = at.parse::<u64>() else {
            return false;
        };
        if unix_secs().abs_diff(secs) > PROOF_WINDOW_SECS {
            return false;
        }
        let want = hex::encode(self.mac(b"forwarded:", at));
        crate::auth::secrets_match(mac, &want)
    }

    /// The connection to use now.
    fn conn(&self) -> ConnectionManager {
        match self.redis.lock() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the connection manager (after it kept failing: a fresh one reconnects at once).
    fn reconnect(&self) {
        if let Ok(fresh) = connection(&self.client) {
            match self.redis.lock() {
                Ok(mut c) => *c = fresh,
                Err(poisoned) => *poisoned.into_inner() = fresh,
            }
        }
    }

    /// Runs one Redis command (or pipeline) with [`REDIS_TIMEOUT`].
    async fn run<T: redis::FromRedisValue>(
        &self,
        cmd: impl RedisRequest,
    ) -> Result<T, ClusterError> {
        let mut conn = self.conn();
        match tokio::time::timeout(REDIS_TIMEOUT, cmd.query(&mut conn)).await {
            Ok(Ok(v)) => Ok(redis::from_redis_value(v)?),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(ClusterError::Timeout),
        }
    }
}

/// A command or a pipeline, run the same way.
trait RedisRequest {
    async fn query(&self, conn: &mut ConnectionManager) -> redis::RedisResult<redis::Value>;
}

impl RedisRequest for redis::Cmd {
    async fn query(&self, conn: &mut ConnectionManager) -> redis::RedisResult<redis::Value> {
        self.query_async(conn).await
    }
}

impl RedisRequest for redis::Pipeline {
    async fn query(&self, conn: &mut ConnectionManager) -> redis::RedisResult<redis::Value> {
        self.query_async(conn).await
    }
}

fn connection(client: &redis::Client) -> Result<ConnectionManager, ClusterError> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(REDIS_TIMEOUT))
        .set_response_timeout(Some(REDIS_TIMEOUT))
        .set_max_delay(REFRESH_EVERY)
        .set_number_of_retries(2);
    Ok(ConnectionManager::new_lazy_with_config(
        client.clone(),
        config,
    )?)
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What this node carries now, for its record.
fn load(state: &AppState) -> (usize, usize) {
    let participants = state
        .rooms
        .iter()
        .map(|r| {
            r.value()
                .info
                .live
                .participants
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .sum();
    (state.rooms.len(), participants)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clustered() -> Config {
        let mut c = Config::default();
        c.cluster.redis_url = "redis://:hunter2-password@127.0.0.1:6379/0".into();
        c.auth.token_key = "k".repeat(40);
        c
    }

    #[test]
    fn cluster_settings_are_checked_without_repeating_the_redis_url() {
        clustered()
            .validate()
            .expect("a cluster node with a token key");
        let mut c = clustered();
        c.auth.token_key.clear();
        let e = c.validate().expect_err("refused");
        assert!(e.0[0].contains("auth.token_key"), "{e}");
        let mut c = clustered();
        c.cluster.redis_url = "http://:hunter2-password@redis.example".into();
        c.cluster.node_id = "two words".into();
        let e = c.validate().expect_err("refused");
        assert_eq!(e.0.len(), 2, "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        // Off by default: no problem with an empty key.
        Config::default().validate().expect("alone");
    }

    // The connection manager is made (not connected) in a runtime, as at start.
    #[tokio::test]
    async fn redis_never_holds_a_link_and_forwarding_proofs_cannot_be_forged() {
        let c = clustered();
        let node = Cluster::new(&c, "http://127.0.0.1:7700", &c.auth.token_key).expect("handle");
        let link = RoomId("AbCdEfGhIjKlMnOpQrStUv".into());
        let key = node.room_key(&link);
        assert!(!key.contains(&link.0), "{key}");
        assert_eq!(key, node.room_key(&link), "the same link, the same key");
        let proof = node.forward_proof();
        assert!(node.is_forwarded(Some(&proof)));
        let other_key = Cluster::new(&c, "http://127.0.0.1:7700", &"x".repeat(40)).expect("handle");
        assert!(!other_key.is_forwarded(Some(&proof)), "another key's proof");
        let (at, mac) = proof.split_once('.').expect("shape");
        let stale = format!("{}.{mac}", at.parse::<u64>().expect("secs") - 3600);
        assert!(!node.is_forwarded(Some(&stale)), "an old proof");
        assert!(!node.is_forwarded(Some("1.00")) && !node.is_forwarded(None));
        assert_eq!(node.ws_url, "ws://127.0.0.1:7700/ws");
    }
}
