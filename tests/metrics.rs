//! The operator's metrics (issue 8, item 13): `/metrics` on the admin listener, scraped during a real
//! meeting (two members with voice, chat, a raised hand, a chat flood that gets rate limited) and
//! after it ended. The scrape must pass `promtool check metrics` (Debian's `prometheus` package,
//! installed here when missing), its numbers must move with the meeting, and it must never name the
//! room, a person, what they wrote or an address.
//!
//! The `metrics` recorder is global to the process, so this file holds a single test: no other test
//! moves its numbers.

use circle_tests::{
    TestServer,
    proto::{ClientMsg as C, ErrorCode, ServerMsg as S},
    server_with,
    voice::{MEDIA_WAIT, VoiceMember, wait_relay, wait_until},
};
use serde_json::json;
use std::{
    io::Write,
    process::{Command, Stdio},
    time::Duration,
};
use tokio::time::Instant;

const ANN: &str = "Annwyl Quercus";
const BEN: &str = "Bendigeid Fran";
const CHAT: &str = "my tangerine secret";

/// `promtool`, installed from Debian's `prometheus` package when missing (this needs root and the
/// Debian mirror). Panics saying so when it cannot be had: the check must not pass without it.
fn promtool() -> &'static str {
    circle_tests::debian_tool("promtool", "prometheus");
    "promtool"
}

/// Runs `promtool check metrics` on a scrape; panics with its complaints.
fn promtool_check(text: &str) {
    let mut child = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("scrape written to promtool");
    let out = child.wait_with_output().expect("promtool ends");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics failed:\n{}{}\n--- the scrape:\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
}

/// `GET /metrics` on the admin listener: the body.
async fn scrape(srv: &TestServer) -> String {
    let admin = srv.running.admin_addr.expect("admin listener");
    let res = reqwest::get(format!("http://{admin}/metrics"))
        .await
        .expect("GET /metrics");
    assert_eq!(res.status(), 200);
    res.text().await.expect("metrics text")
}

/// The value of one series (`name` or `name{label="value"}`, exactly as the exporter writes it), 0
/// when absent.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (key, v) = l.rsplit_once(' ')?;
            (key == series).then(|| v.parse::<f64>().expect("a number"))
        })
        .unwrap_or(0.0)
}

/// Scrapes until `check` accepts the scrape; panics with its last complaint after [`MEDIA_WAIT`].
async fn scrape_until(srv: &TestServer, check: impl Fn(&str) -> Result<(), String>) -> String {
    let deadline = Instant::now() + MEDIA_WAIT;
    loop {
        let text = scrape(srv).await;
        match check(&text) {
            Ok(()) => return text,
            Err(e) if Instant::now() >= deadline => panic!("timed out waiting for: {e}\n{text}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

fn expect_value(text: &str, series: &str, want: f64) -> Result<(), String> {
    let got = value(text, series);
    if got == want {
        Ok(())
    } else {
        Err(format!("{series} is {got}, expected {want}"))
    }
}

#[tokio::test]
async fn metrics_follow_a_meeting_pass_promtool_and_name_nobody() {
    promtool();
    let srv = server_with(|c| c.admin.listen = "127.0.0.1:0".into()).await;
    let before = scrape(&srv).await;
    promtool_check(&before);

    let room = srv
        .create_room(json!({"settings": {"waiting_room": false, "mute_on_entry": false}}))
        .await;
    let mut ann = VoiceMember::join(&srv, &room, ANN, true).await;
    let mut ben = VoiceMember::join(&srv, &room, BEN, false).await;
    ann.unmute().await;
    ben.ok(C::Chat {
        id: None,
        text: CHAT.into(),
    })
    .await;
    ben.ok(C::RaiseHand { id: None }).await;
    // A chat flood: the burst is 5, so one of these is refused.
    let mut refused = false;
    for _ in 0..20 {
        let reply = ben
            .request(&C::Chat {
                id: None,
                text: CHAT.into(),
            })
            .await;
        if matches!(
            reply,
            S::Error {
                code: ErrorCode::RateLimited,
                ..
            }
        ) {
            refused = true;
            break;
        }
    }
    assert!(refused, "the chat flood was never rate limited");
    wait_until("Ben hears Ann", || ben.received_from(&ann) > 0).await;
    wait_relay(&srv, "packets forwarded", |s| s.forwarded > 0).await;

    let during = scrape_until(&srv, |t| {
        expect_value(t, "circle_participants{state=\"online\"}", 2.0)?;
        expect_value(t, "circle_voice_sessions", 2.0)?;
        expect_value(t, "circle_rooms_live", 1.0)
    })
    .await;
    promtool_check(&during);
    let moved = |series: &str| value(&during, series) > value(&before, series);
    for series in [
        "circle_ws_frames_received_total",
        "circle_ws_frames_sent_total",
        "circle_rate_limited_total{limit=\"chat\"}",
        "circle_media_packets_forwarded_total",
        "circle_relay_busy_seconds_count",
        "circle_connections_open",
    ] {
        assert!(moved(series), "{series} did not move:\n{during}");
    }
    assert!(
        value(&during, "circle_join_seconds_count") >= 2.0,
        "two joins timed:\n{during}"
    );
    assert_eq!(
        value(&during, "circle_participants{state=\"reconnecting\"}"),
        0.0
    );

    ann.ok(C::EndMeeting { id: None }).await;
    ben.until_closed().await;
    let after = scrape_until(&srv, |t| {
        expect_value(t, "circle_participants{state=\"online\"}", 0.0)?;
        expect_value(t, "circle_voice_sessions", 0.0)?;
        expect_value(t, "circle_rooms_live", 0.0)?;
        // Both members' connections were closed as the meeting ended.
        expect_value(t, "circle_ws_closes_total{reason=\"meeting_ended\"}", 2.0)
    })
    .await;
    promtool_check(&after);

    // Nobody is named anywhere: not the room, the people, what they wrote, nor an address.
    for text in [&before, &during, &after] {
        for secret in [
            room.room.0.as_str(),
            room.secret.as_str(),
            ANN,
            BEN,
            "Annwyl",
            "Bendigeid",
            CHAT,
            "tangerine",
            "127.0.0.1",
            ann.id().0.as_str(),
            ben.id().0.as_str(),
        ] {
            assert!(
                !text.contains(secret),
                "the scrape names {secret:?}:\n{text}"
            );
        }
    }
}
