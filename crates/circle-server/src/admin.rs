//! The operator's listener (`[admin] listen`, plain HTTP, off the public port): `GET /metrics` in the
//! Prometheus text format. It does not count against the public connection cap, so the numbers can
//! be read while the public port is full.
//!
//! The first lines are this server's own gauges (connections, rooms, draining) and the voice relay's
//! counters, read from `circle-media`'s `MediaStats` at scrape time (so the media crate stays free of
//! the metrics facade and its global state); then everything recorded in the process through the
//! `metrics` facade (the names below), which the Prometheus recorder installed here collects. Labels
//! come only from closed sets (reasons, kinds, states): nothing may name a person, an address or a
//! room. docs/ARCHITECTURE.md lists them all.

use crate::AppState;
use axum::{
    Router,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
    routing::get,
};
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::{fmt::Write, sync::OnceLock, time::Duration};

/// Websocket frames read from clients (text, binary and control frames).
pub const WS_FRAMES_IN: &str = "circle_ws_frames_received_total";
/// Websocket frames written to clients (messages, pings, close frames).
pub const WS_FRAMES_OUT: &str = "circle_ws_frames_sent_total";
/// Websocket connections ended, by `reason` (see [`crate::conn`]).
pub const WS_CLOSES: &str = "circle_ws_closes_total";
/// Requests refused as rate limited, by `limit`: `requests`, `chat`, `hand`, `media_offer`.
pub const RATE_LIMITED: &str = "circle_rate_limited_total";
/// Seconds from a websocket connection's start to its `joined` being queued.
pub const JOIN_SECONDS: &str = "circle_join_seconds";
/// Participants in every room by `state`: `online`, `reconnecting`, `waiting`.
pub const PARTICIPANTS: &str = "circle_participants";
/// Rooms with at least one participant (in the room or its waiting room).
pub const ROOMS_LIVE: &str = "circle_rooms_live";
/// Live voice sessions (a participant's relay connection).
pub const VOICE_SESSIONS: &str = "circle_voice_sessions";

/// Buckets of [`JOIN_SECONDS`]: on a LAN a join takes a few milliseconds (connect, `join`, the
/// room's answer); over a phone network, a few hundred; seconds mean the server (or the client) is
/// struggling, and past the join timeout (10 s by default) the connection is closed anyway.
const JOIN_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// How often the recorder's histogram samples are folded into their buckets when nobody scrapes
/// (they pile up in memory until then).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The process's `metrics` recorder, installed by the first server that has an admin listener.
/// `None` if the process had installed another recorder first.
static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The Prometheus recorder, installed on first use, with its metrics described and an upkeep thread
/// that lives as long as the process (the recorder is the process's, not one server's).
pub fn recorder() -> Option<&'static PrometheusHandle> {
    RECORDER.get_or_init(install).as_ref()
}

fn install() -> Option<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(JOIN_SECONDS.into()), &JOIN_BUCKETS)
        .ok()?
        .install_recorder()
        .ok()?;
    describe();
    let upkeep = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no metrics upkeep thread; histograms are folded at scrape only");
    }
    Some(handle)
}

/// Describes each metric once, with its unit.
fn describe() {
    describe_counter!(
        WS_FRAMES_IN,
        Unit::Count,
        "Websocket frames read from clients."
    );
    describe_counter!(
        WS_FRAMES_OUT,
        Unit::Count,
        "Websocket frames written to clients."
    );
    describe_counter!(
        WS_CLOSES,
        Unit::Count,
        "Websocket connections ended, by reason (the close the server sent, or how the client went)."
    );
    describe_counter!(
        RATE_LIMITED,
        Unit::Count,
        "Requests refused as rate limited, by limit."
    );
    describe_histogram!(
        JOIN_SECONDS,
        Unit::Seconds,
        "Time from a websocket connection's start to its joined message."
    );
    describe_gauge!(
        PARTICIPANTS,
        Unit::Count,
        "Participants in all rooms, by presence state."
    );
    describe_gauge!(
        ROOMS_LIVE,
        Unit::Count,
        "Rooms with at least one participant."
    );
    describe_gauge!(VOICE_SESSIONS, Unit::Count, "Live voice sessions.");
}

/// The admin routes. Installs the process's metrics recorder (once).
pub fn router(state: AppState) -> Router {
    let _ = recorder();
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// How long a scrape waits for the relay's counters (a relay that does not answer is left out).
const MEDIA_STATS_WAIT: Duration = Duration::from_secs(1);

async fn metrics(State(state): State<AppState>) -> Response {
    let media = match &state.media {
        Some(m) => tokio::time::timeout(MEDIA_STATS_WAIT, m.handle.stats())
            .await
            .ok()
            .and_then(Result::ok),
        None => None,
    };
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
    if let Some(cluster) = &state.cluster {
        gauge(
            "circle_cluster_registered",
            "gauge",
            "Cluster mode: 1 while this node reaches Redis and is registered, 0 while it does not (it then starts no meeting).",
            u64::from(cluster.reachable()),
        );
    }
    if let Some(stats) = media {
        render_media(&mut out, &stats);
    }
    if let Some(recorder) = recorder() {
        out.push_str(&recorder.render());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// The relay's counters, as of this scrape.
fn render_media(out: &mut String, stats: &circle_media::MediaStats) {
    let mut line = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    line(
        "circle_media_peers",
        "gauge",
        "Voice relay peers held (one per participant of a relay-enabled room).",
        stats.peers as u64,
    );
    line(
        "circle_media_packets_forwarded_total",
        "counter",
        "Audio packets written to listeners (one per listener).",
        stats.forwarded,
    );
    line(
        "circle_media_packets_gated_total",
        "counter",
        "Audio packets dropped because the speaker may not be heard (muted, not their turn).",
        stats.gated,
    );
    line(
        "circle_media_events_dropped_total",
        "counter",
        "Relay events (renegotiation offers, speaker changes) dropped because the server was not reading them.",
        stats.events_dropped,
    );
    line(
        "circle_media_packets_dropped_total",
        "counter",
        "Packets the relay could not send: the UDP socket's buffer was full, or an ICE-TCP client's queue was.",
        stats.udp_dropped + stats.tcp_dropped,
    );
    line(
        "circle_media_peers_lost_total",
        "counter",
        "Voice sessions closed because the WebRTC stack failed on their behalf.",
        stats.lost,
    );
    // The relay keeps its own buckets (see `circle_media::BUSY_BOUNDS`); Prometheus wants them
    // cumulative, in seconds.
    let name = "circle_relay_busy_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Time the voice relay task ran per wake-up (packets, commands or timers handled).\n# TYPE {name} histogram"
    );
    let mut cumulative = 0;
    for (bound, count) in circle_media::BUSY_BOUNDS.iter().zip(stats.busy.counts) {
        cumulative += count;
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"{}\"}} {cumulative}",
            bound.as_secs_f64()
        );
    }
    let _ = writeln!(
        out,
        "{name}_bucket{{le=\"+Inf\"}} {}\n{name}_sum {}\n{name}_count {}",
        stats.busy.count(),
        Duration::from_nanos(stats.busy.sum_nanos).as_secs_f64(),
        stats.busy.count()
    );
}
