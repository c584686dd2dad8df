//! Readiness and draining (issue 8, item 14), and the admin listener (item 13): `/readyz` turns false
//! while the server drains; a drain stops when the last meeting's members have gone, or at its
//! deadline, telling those still there that the server is stopping.

use circle_server::Drained;
use circle_tests::{
    TestServer, WAIT,
    proto::{ClientMsg as C, ServerMsg as S},
    server_with,
};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::Instant,
};

async fn readyz(base: &str) -> (u16, Value) {
    let res = reqwest::get(format!("{base}/readyz"))
        .await
        .expect("GET /readyz");
    let status = res.status().as_u16();
    (status, res.json().await.expect("JSON"))
}

/// Waits (up to `WAIT`) for `cond`.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn readiness_is_false_while_draining_and_the_drain_ends_with_the_meeting() {
    let srv = server_with(|_| {}).await;
    let (status, body) = readyz(&srv.base).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({ "ready": true, "draining": false, "relay": "alive", "turn": "off" })
    );

    let room = srv
        .create_room(json!({ "settings": { "waiting_room": false } }))
        .await;
    let unused = srv
        .create_room(json!({ "settings": { "waiting_room": false } }))
        .await;
    let (mut fac, _) = srv.join(&room, "Fay", true).await;
    let (mut ann, aj) = srv.join(&room, "Ann", false).await;

    let TestServer {
        running,
        base,
        data: _data,
    } = srv;
    let ws_url = format!("ws://{}/ws", running.addr);
    let state = running.state.clone();
    let drain = tokio::spawn(running.drain(Duration::from_secs(600)));
    until("draining", || state.draining()).await;

    let (status, body) = readyz(&base).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["draining"], true);
    assert!(
        !drain.is_finished(),
        "the drain ended with members connected"
    );

    // No new meeting starts here: no new room, and nobody starts the unused one...
    let refused = reqwest::Client::new()
        .post(format!("{base}/api/rooms"))
        .json(&json!({}))
        .send()
        .await
        .expect("POST /api/rooms");
    assert_eq!(refused.status(), 503);
    let body: Value = refused.json().await.expect("JSON");
    assert_eq!(body["code"], "server_draining");
    let mut first = circle_tests::Client::connect(&ws_url, None)
        .await
        .expect("connects");
    let err = first
        .join(&unused.room, "Kim", None, None)
        .await
        .expect_err("no meeting starts while draining");
    assert_eq!(
        circle_tests::join_error(&err),
        Some(circle_tests::proto::ErrorCode::ServerDraining)
    );
    first.drop_connection().await;
    // ...but a latecomer to the meeting in progress still gets in.
    let mut late = circle_tests::Client::connect(&ws_url, None)
        .await
        .expect("connects");
    late.join(&room.room, "Lee", None, None)
        .await
        .expect("a meeting in progress can still be joined");
    late.drop_connection().await;

    // The meeting goes on while the server drains.
    ann.ok(C::Chat {
        id: None,
        text: "last words".into(),
    })
    .await;
    fac.expect("Ann's message", |m| match m {
        S::Chat { message } if message.from == aj.you => Some(()),
        _ => None,
    })
    .await;

    ann.drop_connection().await;
    fac.drop_connection().await;
    let outcome = tokio::time::timeout(WAIT, drain)
        .await
        .expect("the drain ends once everyone has left")
        .expect("drain task");
    assert_eq!(outcome, Drained::Empty);
    assert!(
        reqwest::get(format!("{base}/healthz")).await.is_err(),
        "the server still answers after the drain"
    );
}

#[tokio::test]
async fn a_drain_past_its_deadline_tells_the_members_left_that_the_server_stops() {
    let srv = server_with(|_| {}).await;
    let room = srv
        .create_room(json!({ "settings": { "waiting_room": false } }))
        .await;
    let (mut fac, _) = srv.join(&room, "Fay", true).await;
    let outcome = srv.running.drain(Duration::from_millis(300)).await;
    assert_eq!(outcome, Drained::DeadlineReached);
    let (_, close) = fac.until_closed().await;
    assert_eq!(close.map(|c| u16::from(c.code)), Some(1001));
}

/// A raw `GET path` on `addr`; the whole response, or what came before the server closed.
async fn get_raw(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nhost: circle\r\nconnection: close\r\n\r\n");
    let _ = s.write_all(req.as_bytes()).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn metrics_are_on_the_admin_listener_and_answer_when_the_public_port_is_full() {
    let srv = server_with(|c| {
        c.admin.listen = "127.0.0.1:0".into();
        c.limits.max_connections = 1;
    })
    .await;
    let admin = srv.running.admin_addr.expect("admin listener");
    // Anything recorded through the `metrics` facade is served too.
    metrics::counter!("circle_test_marker_total").increment(3);
    assert!(
        get_raw(srv.running.addr, "/metrics")
            .await
            .starts_with("HTTP/1.1 404")
    );

    let _idle = TcpStream::connect(srv.running.addr).await.expect("connect");
    until("the idle socket is counted", || {
        srv.running.state.connections.open() == 1
    })
    .await;
    let refused = get_raw(srv.running.addr, "/healthz").await;
    assert!(!refused.contains("200 OK"), "{refused}");

    let metrics = get_raw(admin, "/metrics").await;
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(
        metrics.contains("\ncircle_connections_open 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\ncircle_connections_refused_total 1\n"),
        "{metrics}"
    );
}
