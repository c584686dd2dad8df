//! The operator's listener (`[admin] listen`, plain HTTP, off the public port): `GET /metrics` in the
//! Prometheus text format. It does not count against the public connection cap, so the numbers can
//! be read while the public port is full.
//!
//! The first lines are this server's own gauges (connections, rooms, draining); then everything
//! recorded in the process through the `metrics` facade (`metrics::counter!` and the like), which the
//! Prometheus recorder installed here collects. Nothing in them may name a person, an address or a
//! room.

use crate::AppState;
use axum::{
    Router,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
    routing::get,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::{fmt::Write, sync::OnceLock};

/// The process's `metrics` recorder, installed by the first server that has an admin listener.
/// `None` if the process had installed another recorder first.
static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The Prometheus recorder, installed on first use.
pub fn recorder() -> Option<&'static PrometheusHandle> {
    RECORDER
        .get_or_init(|| PrometheusBuilder::new().install_recorder().ok())
        .as_ref()
}

/// The admin routes. Installs the process's metrics recorder (once).
pub fn router(state: AppState) -> Router {
    let _ = recorder();
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn metrics(State(state): State<AppState>) -> Response {
    let mut out = String::new();
    let mut gauge = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    gauge(
        "circle_connections_open",
        "gauge",
        "TCP connections open on the public listeners, websockets included.",
        state.connections.open() as u64,
    );
    gauge(
        "circle_connections_refused_total",
        "counter",
        "Connections refused because limits.max_connections was reached.",
        state.connections.refused(),
    );
    gauge(
        "circle_rooms",
        "gauge",
        "Rooms held in memory.",
        state.rooms.len() as u64,
    );
    gauge(
        "circle_draining",
        "gauge",
        "1 while the server drains (no new meetings).",
        u64::from(state.draining()),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
