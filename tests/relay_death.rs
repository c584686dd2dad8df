//! When the voice relay dies, the whole process must say so and go (issue 8, item 9): readiness stops
//! saying yes, and `circle` exits non-zero so that its supervisor restarts it. Nobody has voice
//! without the relay, so a server that stayed up with `/healthz` saying ok would keep taking
//! meetings it cannot carry.
//!
//! The server here is the real binary, `circle-fault`: `circle`'s own main.rs built inside this crate
//! so that it links circle-media with the test-only `fault-injection` feature (see tests/Cargo.toml
//! and crates/circle-media/src/fault.rs). The relay task panics, as a bug outside its per-peer guards
//! would make it, once the file named by `FAULT_INJECTION_RELAY_DEATH_FILE` exists.

use circle_media::fault::DEATH_FILE_VAR;
use circle_tests::{Client, CreatedRoom, voice::VoiceMember};
use serde_json::json;
use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// How long the process may take to start and print its address.
const START_WAIT: Duration = Duration::from_secs(20);
/// How long, after the relay died, the process may take to exit: the relay watch reacts at once,
/// and shutdown waits at most `SHUTDOWN_DEADLINE` (5 s) for goodbyes; the rest is a busy machine.
const EXIT_WAIT: Duration = Duration::from_secs(30);
/// Exit status `circle` uses when the server fails while running.
const EXIT_FAILED: i32 = 1;

/// The child, killed if the test ends early.
struct Server {
    child: Child,
    base: String,
    /// Standard error lines with the time each was read.
    stderr: Arc<Mutex<Vec<(Instant, String)>>>,
    /// Reads standard error until the process closes it.
    stderr_reader: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(death_file: &std::path::Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_circle-fault"))
            .env_clear()
            .env("CIRCLE_SERVER__LISTEN", "127.0.0.1:0")
            .env("CIRCLE_CLIENT__SERVE_DIR", "")
            .env("CIRCLE_MEDIA__LISTEN", "127.0.0.1:0")
            .env("CIRCLE_LIMITS__ROOMS_PER_CLIENT_BURST", "1000")
            .env("RUST_LOG", "warn")
            .env(DEATH_FILE_VAR, death_file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("circle-fault runs");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = stderr.clone();
        let err = child.stderr.take().expect("stderr");
        let stderr_reader = std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                lines.lock().unwrap().push((Instant::now(), line));
            }
        });
        // The first line on standard output names the bound address (PROTOCOL.md §10).
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(out).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            for _ in lines {}
        });
        let first = rx.recv_timeout(START_WAIT).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("circle-fault did not start: {:?}", stderr.lock().unwrap());
        });
        let base = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {first:?}"))
            .to_owned();
        Server {
            child,
            base,
            stderr,
            stderr_reader: Some(stderr_reader),
        }
    }

    fn log_has(&self, needle: &str) -> Option<Instant> {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .find(|(_, l)| l.contains(needle))
            .map(|(t, _)| *t)
    }
}

/// `/readyz`'s status, or `None` when nothing answers.
async fn readyz(base: &str) -> Option<u16> {
    let res = reqwest::Client::new()
        .get(format!("{base}/readyz"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    Some(res.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_relay_turns_readiness_off_and_the_process_exits_non_zero() {
    let death_file =
        std::env::temp_dir().join(format!("circle-relay-death-{}", std::process::id()));
    let _ = std::fs::remove_file(&death_file);
    let mut srv = Server::start(&death_file);
    assert_eq!(readyz(&srv.base).await, Some(200), "ready before");

    // A meeting with voice that works: one member hears the other.
    let res = reqwest::Client::new()
        .post(format!("{}/api/rooms", srv.base))
        .json(&json!({"settings": {"waiting_room": false, "mute_on_entry": false}}))
        .send()
        .await
        .expect("POST /api/rooms");
    assert_eq!(res.status(), 201);
    let body: serde_json::Value = res.json().await.expect("JSON");
    let room = circle_tests::proto::RoomId(body["room"].as_str().expect("room").to_owned());
    let ws = format!("{}/ws", srv.base.replacen("http", "ws", 1));
    let mut members = Vec::new();
    for name in ["Ada", "Bea"] {
        let mut c = Client::connect(&ws, None).await.expect("connects");
        let j = c.join(&room, name, None, None).await.expect("joins");
        members.push(VoiceMember::start(c, j).await);
    }
    members[0].unmute().await;
    let (ada, bea) = (&members[0], &members[1]);
    circle_tests::voice::wait_until("Bea hears Ada", || bea.received_from(ada) > 0).await;

    // The relay dies.
    std::fs::write(&death_file, b"").expect("death file");
    let deadline = Instant::now() + EXIT_WAIT;
    let mut answers = Vec::new();
    let exit = loop {
        if let Some(status) = srv.child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            break None;
        }
        let asked = Instant::now();
        answers.push((asked, readyz(&srv.base).await));
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let _ = std::fs::remove_file(&death_file);
    if exit.is_some()
        && let Some(reader) = srv.stderr_reader.take()
    {
        // The process is gone: its standard error is closed, and every line is in.
        let _ = reader.join();
    }
    assert!(
        srv.log_has("test fault injection is armed").is_some(),
        "the binary under test has the hook, armed"
    );
    let died = srv.log_has("fault injection: the voice relay dies");
    let logs: Vec<String> = srv
        .stderr
        .lock()
        .unwrap()
        .iter()
        .map(|(_, l)| l.clone())
        .collect();
    assert!(died.is_some(), "the relay task died: {logs:#?}");
    assert_eq!(
        exit.and_then(|s| s.code()),
        Some(EXIT_FAILED),
        "exit status within {EXIT_WAIT:?} of the relay's death: {exit:?}; {logs:#?}"
    );
    // Every readiness check asked after the relay died said no (503) or found nothing listening;
    // none said ready.
    let died = died.unwrap_or_else(Instant::now);
    let after: Vec<_> = answers.iter().filter(|(t, _)| *t > died).collect();
    println!(
        "readiness asked {} times after the relay died: {:?}",
        after.len(),
        after.iter().map(|(_, a)| *a).collect::<Vec<_>>()
    );
    assert!(
        after.iter().all(|(_, a)| *a != Some(200)),
        "readiness said yes with the relay dead: {after:?}"
    );
    assert!(
        logs.iter().any(|l| l.contains("the voice relay stopped")),
        "the log says why: {logs:#?}"
    );
}

/// Readiness itself, in a server running in this process (which does not exit when its relay dies:
/// that is `circle`'s main, tested above): once the relay is dead, `/readyz` answers 503 and names
/// the relay, so a load balancer sends newcomers elsewhere in the moments before the process exits.
#[tokio::test]
async fn a_dead_relay_makes_readyz_answer_503() {
    let death_file =
        std::env::temp_dir().join(format!("circle-relay-death-in-{}", std::process::id()));
    let _ = std::fs::remove_file(&death_file);
    circle_media::fault::set_relay_death_file(death_file.clone())
        .expect("no relay in this process looked for its death file yet");
    let srv = circle_tests::server().await;
    let room: CreatedRoom = srv
        .create_room(json!({"settings": {"waiting_room": false}}))
        .await;
    let ada = VoiceMember::join(&srv, &room, "Ada", false).await;
    let body = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        (status, r.json::<serde_json::Value>().await.expect("JSON"))
    };
    let get = || reqwest::get(format!("{}/readyz", srv.base));
    let (status, before) = body(get().await.expect("GET /readyz")).await;
    assert_eq!((status, &before["relay"]), (200, &json!("alive")));

    std::fs::write(&death_file, b"").expect("death file");
    let deadline = Instant::now() + EXIT_WAIT;
    let (status, after) = loop {
        let (status, b) = body(get().await.expect("GET /readyz")).await;
        if status != 200 || Instant::now() >= deadline {
            break (status, b);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let _ = std::fs::remove_file(&death_file);
    assert_eq!(status, 503, "{after}");
    assert_eq!(after["relay"], "down", "{after}");
    assert_eq!(after["ready"], false, "{after}");
    drop(ada);
}
