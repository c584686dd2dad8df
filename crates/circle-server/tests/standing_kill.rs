//! `kill -9` of the real `circle` binary under a standing room's meeting (issue 9, item 4): started
//! again on the same data directory, the standing room is there and joinable, and resume tokens
//! from before fail with a clear code (`session_gone`: the meeting they were for is gone).

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    time::Duration,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const KEY: &str = "organiser-key-for-the-kill-test-0123456789";
const WAIT: Duration = Duration::from_secs(20);

/// Starts `circle` on `data` with the organiser API on; the child and its API address.
fn spawn_circle(data: &std::path::Path) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_circle"))
        .env_clear()
        .env("CIRCLE_SERVER__LISTEN", "127.0.0.1:0")
        .env("CIRCLE_CLIENT__LISTEN", "127.0.0.1:0")
        .env("CIRCLE_MEDIA__ENABLED", "false")
        .env("CIRCLE_ROOMS__OPERATOR_KEY", KEY)
        .env("CIRCLE_STORAGE__DATA_DIR", data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("circle runs");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // The first line: "Circle API and websocket on http://127.0.0.1:PORT"
    let addr = rx
        .recv_timeout(WAIT)
        .ok()
        .and_then(|line| line.split("://").nth(1)?.trim().parse().ok());
    match addr {
        Some(addr) => (child, addr),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("circle did not start");
        }
    }
}

/// One HTTP/1.1 request with the operator key; the status and the JSON body.
async fn http(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: circle\r\nauthorization: Bearer {KEY}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.expect("write");
    tcp.write_all(body.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut raw))
        .await
        .expect("answer in time")
        .expect("read");
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let json = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

/// Sends one frame on a fresh websocket and returns the server's first answer.
async fn first_answer(addr: SocketAddr, frame: Value) -> Value {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .expect("websocket");
    ws.send(Message::text(frame.to_string()))
        .await
        .expect("send");
    let answer = tokio::time::timeout(WAIT, async {
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Text(t) = m {
                return serde_json::from_str(t.as_str()).ok();
            }
        }
        None
    })
    .await
    .ok()
    .flatten();
    answer.expect("an answer")
}

#[tokio::test]
async fn after_kill_9_the_standing_room_is_there_and_old_resume_tokens_fail_clearly() {
    let data = std::env::temp_dir().join(format!("circle-kill-{}", std::process::id()));
    let (mut child, addr) = spawn_circle(&data);
    let (status, room) = http(
        addr,
        "POST",
        "/api/standing",
        Some(json!({"title": "Survivors", "settings": {"waiting_room": false}})),
    )
    .await;
    assert_eq!(status, 201, "{room}");
    let url = room["join_url"].as_str().expect("join_url");
    let link = url.rsplit("#room=").next().expect("link").to_owned();
    let secret = room["facilitator_secret"]
        .as_str()
        .expect("secret")
        .to_owned();

    // A member in the meeting when the process is killed.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .expect("websocket");
    let join = json!({"type": "join", "protocol": 1, "room": link, "name": "Ann"});
    ws.send(Message::text(join.to_string()))
        .await
        .expect("join");
    let joined: Value = loop {
        match tokio::time::timeout(WAIT, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => break serde_json::from_str(t.as_str()).unwrap(),
            Ok(Some(Ok(_))) => continue,
            other => panic!("no joined: {other:?}"),
        }
    };
    assert_eq!(joined["type"], "joined", "{joined}");
    let token = joined["resume_token"].as_str().expect("token").to_owned();
    child.kill().expect("kill -9");
    let _ = child.wait();

    let (mut child, addr) = spawn_circle(&data);
    let (status, list) = http(addr, "GET", "/api/standing", None).await;
    assert_eq!(status, 200);
    assert_eq!(list[0]["title"], "Survivors", "{list}");
    let resumed = first_answer(
        addr,
        json!({"type": "resume", "protocol": 1, "room": link, "token": token}),
    )
    .await;
    assert_eq!(
        (resumed["type"].as_str(), resumed["code"].as_str()),
        (Some("error"), Some("session_gone")),
        "{resumed}"
    );
    let again = first_answer(
        addr,
        json!({"type": "join", "protocol": 1, "room": link, "name": "Ann", "secret": secret}),
    )
    .await;
    assert_eq!(again["type"], "joined", "{again}");
    assert_eq!(
        again["role"], "facilitator",
        "the facilitator key still works"
    );
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&data);
}
