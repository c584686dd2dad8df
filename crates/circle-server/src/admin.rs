//! The operator's listener (`[admin] listen`, plain HTTP, off the public port): `GET /metrics` in the
//! Prometheus text format. It does not count against the public connection cap, so the numbers can
//! be read while the public port is full.
//!
//! The gauges here are the listener's own; nothing in them names a person, an address or a room.

use crate::AppState;
use axum::{
    Router,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
    routing::get,
};
use std::fmt::Write;

/// The admin routes.
pub fn router(state: AppState) -> Router {
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
