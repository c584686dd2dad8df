//! Where a meeting is, or goes.
//!
//! - A new ad-hoc meeting (`POST /api/rooms` on any node) goes to the least loaded node that takes
//!   meetings (ready, not draining): the node asked forwards the request there, and that node
//!   creates the meeting and records it. If the chosen node does not answer, the node asked
//!   creates it itself.
//! - A standing room's meeting starts where its first member arrives: that node claims the link's
//!   key with `SET NX`, so two nodes never start the same meeting.
//! - A `join` or `resume` that reaches a node which does not hold the meeting is refused with
//!   `wrong_node` and the holder's websocket URL, taken from the registry only (a client is never
//!   sent anywhere a node of the cluster did not register).

use super::{Cluster, ClusterError, FORWARDED_HEADER, NodeRecord, ROOM_TTL};
use crate::{AppState, wire::WireError};
use axum::{
    body::Body,
    http::{HeaderMap, StatusCode, header},
    response::Response,
};
use circle_protocol::{ErrorCode, RoomId};
use tracing::warn;

/// Who holds a meeting, as the registry says.
#[derive(Debug)]
pub enum Owner {
    /// This node (or nobody yet, and this node just claimed it).
    Here,
    /// Another node, registered and alive.
    There(NodeRecord),
    /// A node whose record lapsed (killed or cut off); its key lapses soon too.
    Lapsed,
    /// No node holds it.
    Nobody,
}

/// Where a `join` / `resume` for a link not held here should go.
#[derive(Debug)]
pub enum Route {
    /// Go on here (held here, or by nobody: a standing room's meeting may start here).
    Here,
    /// Refused: the error tells the client where to go, or to try again.
    Refused(WireError),
}

impl Cluster {
    /// Who holds the meeting at `link`.
    pub async fn owner(&self, link: &RoomId) -> Result<Owner, ClusterError> {
        let holder: Option<String> = self
            .run(redis::cmd("GET").arg(self.room_key(link)).clone())
            .await?;
        self.resolve(holder).await
    }

    async fn resolve(&self, holder: Option<String>) -> Result<Owner, ClusterError> {
        Ok(match holder {
            None => Owner::Nobody,
            Some(id) if id == self.node_id => Owner::Here,
            Some(id) => match self.node(&id).await? {
                Some(node) => Owner::There(node),
                None => Owner::Lapsed,
            },
        })
    }

    /// Claims the meeting at `link` for this node unless another holds it (`SET NX`): `Here` when
    /// this node holds it now.
    pub async fn claim(&self, link: &RoomId) -> Result<Owner, ClusterError> {
        let set: Option<String> = self
            .run(
                redis::cmd("SET")
                    .arg(self.room_key(link))
                    .arg(&self.node_id)
                    .arg("NX")
                    .arg("PX")
                    .arg(ROOM_TTL.as_millis() as u64)
                    .clone(),
            )
            .await?;
        if set.is_some() {
            return Ok(Owner::Here);
        }
        self.owner(link).await
    }

    /// The node a new meeting should go to: the least loaded one that takes meetings (this node's
    /// own record taken fresh, not as last written). `None`: no node takes meetings.
    pub async fn pick(&self, state: &AppState) -> Result<Option<NodeRecord>, ClusterError> {
        let me = self.record(state).await;
        let mut nodes = self.nodes().await?;
        nodes.retain(|n| n.id != me.id);
        nodes.push(me);
        Ok(nodes
            .into_iter()
            .filter(NodeRecord::takes_meetings)
            .min_by(|a, b| {
                a.load_score()
                    .total_cmp(&b.load_score())
                    .then_with(|| a.id.cmp(&b.id))
            }))
    }

    /// Sends an API request on to `node` (marked as forwarded by a node of this cluster) and hands
    /// its answer back. `None` when the node does not answer, or answers with a server error: the
    /// caller then does the work itself.
    pub async fn forward(
        &self,
        node: &NodeRecord,
        method: reqwest::Method,
        path: &str,
        headers: &HeaderMap,
        body: Option<serde_json::Value>,
    ) -> Option<Response> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", node.url))
            .header(FORWARDED_HEADER, self.forward_proof());
        // The receiving node checks the same origin and operator key.
        for name in [header::ORIGIN, header::AUTHORIZATION] {
            if let Some(v) = headers.get(&name).and_then(|v| v.to_str().ok()) {
                req = req.header(name.as_str(), v);
            }
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let answer = match req.send().await {
            Ok(a) => a,
            Err(e) => {
                warn!(node = %node.id, error = %e.without_url(), "another node did not answer a forwarded request");
                return None;
            }
        };
        let status = StatusCode::from_u16(answer.status().as_u16()).ok()?;
        if status.is_server_error() {
            return None;
        }
        let bytes = answer.bytes().await.ok()?;
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(bytes))
            .ok()
    }
}

/// The error for a node that cannot use the registry right now.
pub fn unavailable() -> WireError {
    WireError::new(
        ErrorCode::ClusterUnavailable,
        "this server cannot reach the rest of its cluster right now; try again in a moment",
    )
}

/// For a `join` / `resume` of a link not held on this node: whether to go on here or where to send
/// the client. Always `Here` when cluster mode is off.
pub async fn route_join(state: &AppState, link: &RoomId) -> Route {
    let Some(cluster) = &state.cluster else {
        return Route::Here;
    };
    match cluster.owner(link).await {
        Ok(Owner::Here | Owner::Nobody) => Route::Here,
        Ok(Owner::There(node)) => Route::Refused(WireError::wrong_node(node.ws_url)),
        Ok(Owner::Lapsed) => Route::Refused(WireError::new(
            ErrorCode::ClusterUnavailable,
            "the server that held this meeting stopped answering; try again in a moment",
        )),
        Err(e) => {
            warn!(error = %e, "cluster registry lookup failed");
            Route::Refused(unavailable())
        }
    }
}

/// `GET /api/rooms/{id}` for a link not held here: the answer of the node that holds it (which
/// names its own websocket URL), or `None` to answer here (not in cluster mode, already forwarded
/// once, or nobody holds it).
pub async fn info_elsewhere(
    state: &AppState,
    link: &RoomId,
    headers: &HeaderMap,
) -> Result<Option<Response>, crate::http::ApiError> {
    let Some(cluster) = &state.cluster else {
        return Ok(None);
    };
    let forwarded = headers.get(FORWARDED_HEADER).and_then(|v| v.to_str().ok());
    // Only links of the id alphabet go into another node's path (nothing to escape, no `..`).
    let plain = !link.0.is_empty()
        && link
            .0
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if cluster.is_forwarded(forwarded) || !plain {
        return Ok(None);
    }
    match cluster.owner(link).await {
        Ok(Owner::There(node)) => {
            let path = format!("/api/rooms/{}", link.0);
            Ok(cluster
                .forward(&node, reqwest::Method::GET, &path, headers, None)
                .await)
        }
        Ok(_) => Ok(None),
        Err(e) => {
            warn!(error = %e, "cluster registry lookup failed");
            Err(crate::http::ApiError::ClusterUnavailable)
        }
    }
}
