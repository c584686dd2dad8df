//! The listeners under abuse (issue 8, item 2): slow and idle connections are closed at the header
//! timeout, oversized heads and bodies are refused at once, and at the connection cap newcomers are
//! refused while the meetings in progress go on. Raw TCP sockets, so nothing a client library does
//! hides what the server does.

use circle_tests::{
    TestServer, WAIT,
    proto::{ClientMsg as C, ServerMsg as S},
    server_with,
};
use serde_json::json;
use std::time::Duration;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::Instant,
};

/// What the server did with a connection we keep feeding or leave idle.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// It sent this status line (then, perhaps, closed).
    Status(String),
    /// It closed without a word.
    Closed,
    /// Nothing happened before the test's deadline.
    StillOpen,
}

/// Reads until the server answers or closes, up to `WAIT`; while waiting, sends `trickle` every
/// `every` (if given), the way a slow-loris client keeps a request head unfinished.
async fn outcome(stream: &mut TcpStream, trickle: Option<(&[u8], Duration)>) -> Outcome {
    let deadline = Instant::now() + WAIT;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let pace = trickle.map(|(_, every)| every).unwrap_or(WAIT);
        tokio::select! {
            r = stream.read(&mut buf) => match r {
                Ok(0) | Err(_) if got.is_empty() => return Outcome::Closed,
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    if got.windows(2).any(|w| w == b"\r\n") {
                        break;
                    }
                }
            },
            _ = tokio::time::sleep_until(deadline) => return Outcome::StillOpen,
            _ = tokio::time::sleep(pace) => {
                if let Some((bytes, _)) = trickle {
                    // The server may have closed already; the read says so.
                    let _ = stream.write_all(bytes).await;
                }
            }
        }
    }
    let text = String::from_utf8_lossy(&got);
    Outcome::Status(text.lines().next().unwrap_or_default().to_owned())
}

async fn tcp(srv: &TestServer) -> TcpStream {
    TcpStream::connect(srv.running.addr)
        .await
        .expect("TCP connect")
}

/// Waits (up to `WAIT`) until the server counts `n` open connections.
async fn open_connections(srv: &TestServer, n: usize) {
    let deadline = Instant::now() + WAIT;
    while srv.running.state.connections.open() != n {
        assert!(
            Instant::now() < deadline,
            "expected {n} open connections, the server counts {}",
            srv.running.state.connections.open()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_request_head_sent_one_line_at_a_time_is_cut_off_at_the_header_timeout() {
    let srv = server_with(|c| c.limits.header_timeout_secs = 1).await;
    let mut s = tcp(&srv).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: circle\r\n")
        .await
        .expect("write");
    let got = outcome(&mut s, Some((b"x-slow: 1\r\n", Duration::from_millis(200)))).await;
    // hyper answers a timed-out head with 408 or simply closes; either way the socket is gone.
    assert_ne!(got, Outcome::StillOpen, "a trickling head stays open");
    assert!(
        matches!(&got, Outcome::Closed) || matches!(&got, Outcome::Status(l) if l.contains("408")),
        "{got:?}"
    );
    open_connections(&srv, 0).await;
}

#[tokio::test]
async fn an_idle_connection_is_closed_at_the_header_timeout() {
    let srv = server_with(|c| c.limits.header_timeout_secs = 1).await;
    let mut silent = tcp(&srv).await;
    assert_ne!(outcome(&mut silent, None).await, Outcome::StillOpen);

    // Also after a first request, between requests (keep-alive).
    let mut kept = tcp(&srv).await;
    kept.write_all(b"GET /healthz HTTP/1.1\r\nhost: circle\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 1024];
    let n = kept.read(&mut buf).await.expect("response");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert_ne!(outcome(&mut kept, None).await, Outcome::StillOpen);
    open_connections(&srv, 0).await;
}

#[tokio::test]
async fn an_oversized_request_head_gets_431() {
    let srv = server_with(|_| {}).await;
    let mut s = tcp(&srv).await;
    let big = "a".repeat(200 * 1024);
    let head = format!("GET /healthz HTTP/1.1\r\nhost: circle\r\nx-big: {big}\r\n\r\n");
    // The server may answer and close before it has read everything we send.
    let _ = s.write_all(head.as_bytes()).await;
    let got = outcome(&mut s, None).await;
    assert!(
        matches!(&got, Outcome::Status(l) if l.starts_with("HTTP/1.1 431")),
        "a 200 KB header: {got:?}"
    );
}

#[tokio::test]
async fn a_huge_content_length_gets_413_before_any_body_is_sent() {
    let srv = server_with(|_| {}).await;
    let mut s = tcp(&srv).await;
    s.write_all(
        b"POST /api/rooms HTTP/1.1\r\nhost: circle\r\ncontent-type: application/json\r\n\
          content-length: 99999999999\r\n\r\n",
    )
    .await
    .expect("write");
    let got = outcome(&mut s, None).await;
    assert!(
        matches!(&got, Outcome::Status(l) if l.starts_with("HTTP/1.1 413")),
        "{got:?}"
    );
}

#[tokio::test]
async fn a_stalled_body_fails_at_the_body_timeout() {
    let srv = server_with(|c| {
        c.limits.body_timeout_secs = 1;
        c.limits.header_timeout_secs = 30;
    })
    .await;
    let mut s = tcp(&srv).await;
    s.write_all(
        b"POST /api/rooms HTTP/1.1\r\nhost: circle\r\ncontent-type: application/json\r\n\
          content-length: 100\r\n\r\n{\"title\":",
    )
    .await
    .expect("write");
    let got = outcome(&mut s, None).await;
    assert_ne!(got, Outcome::StillOpen, "a stalled body is waited on");
    if let Outcome::Status(line) = &got {
        assert!(!line.contains(" 201 "), "a room was created: {line}");
    }
    // No room came of it.
    assert!(srv.running.state.rooms.is_empty());
}

#[tokio::test]
async fn at_the_connection_cap_newcomers_are_refused_and_the_meeting_goes_on() {
    let srv = server_with(|c| c.limits.max_connections = 4).await;
    let room = srv
        .create_room(json!({ "settings": { "waiting_room": false } }))
        .await;
    open_connections(&srv, 0).await;
    let (mut fac, _) = srv.join(&room, "Fay", true).await;
    let (mut ann, aj) = srv.join(&room, "Ann", false).await;
    // Two sockets that never send a thing fill the cap.
    let _idle = (tcp(&srv).await, tcp(&srv).await);
    open_connections(&srv, 4).await;

    let mut probe = tcp(&srv).await;
    probe
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: circle\r\n\r\n")
        .await
        .expect("write");
    let got = outcome(&mut probe, None).await;
    assert!(
        matches!(&got, Outcome::Closed)
            || matches!(&got, Outcome::Status(l) if l.starts_with("HTTP/1.1 503")),
        "a connection past the cap: {got:?}"
    );
    assert_eq!(srv.running.state.connections.refused(), 1);

    // The meeting in progress is untouched.
    ann.ok(C::Chat {
        id: None,
        text: "still here".into(),
    })
    .await;
    let text = fac
        .expect("Ann's message", |m| match m {
            S::Chat { message } if message.from == aj.you => Some(message.text.clone()),
            _ => None,
        })
        .await;
    assert_eq!(text, "still here");
}

#[tokio::test]
async fn a_websocket_outlives_the_http_timeouts() {
    let srv = server_with(|c| {
        c.limits.header_timeout_secs = 1;
        c.limits.body_timeout_secs = 1;
    })
    .await;
    let room = srv
        .create_room(json!({ "settings": { "waiting_room": false } }))
        .await;
    let (mut fac, _) = srv.join(&room, "Fay", true).await;
    let (mut ann, aj) = srv.join(&room, "Ann", false).await;
    // Quiet for twice the HTTP timeouts: an HTTP connection would be gone by now.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    ann.ok(C::Chat {
        id: None,
        text: "after a silence".into(),
    })
    .await;
    let text = fac
        .expect("Ann's message", |m| match m {
            S::Chat { message } if message.from == aj.you => Some(message.text.clone()),
            _ => None,
        })
        .await;
    assert_eq!(text, "after a silence");
}

#[tokio::test]
async fn sockets_that_never_join_cannot_crowd_out_people_joining() {
    let srv = server_with(|c| c.limits.max_unjoined_sockets = 3).await;
    let room = srv
        .create_room(json!({ "settings": { "waiting_room": false } }))
        .await;
    // Three sockets open and say nothing: the most that may wait unjoined.
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(srv.connect().await);
    }
    let refused = circle_tests::Client::connect(&srv.ws_url(), None).await;
    let err = refused.err().expect("a fourth unjoined socket is refused");
    assert!(err.to_string().contains("503"), "refused with 503: {err}");

    // One of them joins: it no longer counts, and there is room for someone else.
    let mut ann = idle.pop().expect("a socket");
    ann.join(&room.room, "Ann", None, None)
        .await
        .expect("joins");
    let (_bob, _) = srv.join(&room, "Bob", false).await;
    ann.ok(circle_tests::proto::ClientMsg::RaiseHand { id: None })
        .await;
}
