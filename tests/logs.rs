//! What the logs say about a meeting: nothing that identifies it or the people in it. A room id is the
//! members' link itself, so it never appears, not even at `trace`; nor do pseudonyms, chat text, the
//! facilitator secret or resume tokens.
//!
//! The test runs on tokio's current-thread runtime, so every server task runs on this thread and
//! the subscriber set as the thread's default sees every line.

use circle_tests::{
    proto::{ClientMsg as C, ServerMsg as S},
    server,
};
use serde_json::json;
use std::{
    io::Write,
    sync::{Arc, Mutex},
};
use tracing_subscriber::fmt::MakeWriter;

/// Every log line, kept in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn no_log_line_names_the_room_or_anyone_in_it() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(captured.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let srv = server().await;
    let room = srv
        .create_room(json!({"title": "Thursday grief circle", "settings": {"waiting_room": false}}))
        .await;
    let (mut fac, fj) = srv.join(&room, "Marguerite", true).await;
    let (mut ann, aj) = srv.join(&room, "Annaliese", false).await;
    ann.ok(C::Chat {
        id: None,
        text: "my brother passed in June".into(),
    })
    .await;
    fac.expect("the chat", |m| matches!(m, S::Chat { .. }).then_some(()))
        .await;
    ann.drop_connection().await;
    let mut back = srv.connect().await;
    let rj = back.resume(&room.room, &aj.token).await.expect("resume");
    fac.ok(C::EndMeeting { id: None }).await;
    let _ = back.until_closed().await;
    srv.running.shutdown().await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("room created"),
        "the capture works: it saw the server's own lines"
    );
    for secret in [
        room.room.0.as_str(),
        room.secret.as_str(),
        "Marguerite",
        "Annaliese",
        "my brother passed",
        fj.token.as_str(),
        aj.token.as_str(),
        rj.token.as_str(),
    ] {
        assert!(!logs.contains(secret), "a log line holds {secret:?}");
    }
}
