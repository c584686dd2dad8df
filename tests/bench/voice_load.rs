//! `circle-voice-load`: a first measurement of the voice relay. One room, one speaker, N listeners,
//! every one a real WebRTC client (webrtc-rs, on 127.0.0.1) joined through the websocket. The speaker
//! sends Opus-sized RTP at 50 packets/s; the tool counts what each listener receives and reads the
//! server process's CPU time from /proc over the same window.
//!
//! ```text
//! cargo build --release -p circle-server -p circle-tests --bin circle-voice-load
//! target/release/circle-voice-load --listeners 10 --seconds 10
//! ```
//!
//! It starts `target/release/circle` itself on free loopback ports and stops it at the end. Only
//! loopback addresses are used; the run is bounded by `--seconds` and the setup deadlines.

use anyhow::{Context, Result, bail};
use circle_tests::{
    Client,
    proto::{ClientMsg, PROTOCOL_VERSION, RoomId},
    voice::VoiceMember,
};
use serde_json::{Value, json};
use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

struct Args {
    listeners: usize,
    seconds: u64,
    server_bin: PathBuf,
}

fn args() -> Result<Args> {
    let mut a = Args {
        listeners: 10,
        seconds: 10,
        server_bin: PathBuf::from("target/release/circle"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listeners" => a.listeners = value.parse()?,
            "--seconds" => a.seconds = value.parse()?,
            "--server-bin" => a.server_bin = value.into(),
            other => {
                bail!("unknown flag {other} (use --listeners N --seconds S --server-bin PATH)")
            }
        }
    }
    Ok(a)
}

/// The server child; killed when dropped, whatever happened.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn start_server(bin: &PathBuf, listeners: usize) -> Result<Server> {
    let port = free_port()?;
    let child = Command::new(bin)
        .env("CIRCLE_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("CIRCLE_MEDIA__LISTEN", "127.0.0.1:0")
        .env(
            "CIRCLE_ROOMS__MAX_PARTICIPANTS",
            (listeners + 10).to_string(),
        )
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if reqwest::get(format!("{}/healthz", server.base))
            .await
            .is_ok()
        {
            return Ok(server);
        }
        if Instant::now() > deadline {
            bail!("the server did not answer /healthz");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// User + system CPU seconds the process has used.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th fields.
    let rest = &stat[stat.rfind(')').context("stat format")? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    let hz: f64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0);
    Ok(ticks / hz)
}

async fn member(server: &Server, room: &RoomId, name: &str) -> Result<VoiceMember> {
    let ws = server.base.replacen("http", "ws", 1) + "/ws";
    let mut client = Client::connect(&ws, None).await?;
    let joined = client.join(room, name, None, None).await?;
    Ok(VoiceMember::start(client, joined).await)
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = args()?;
    let server = start_server(&a.server_bin, a.listeners).await?;
    let created: Value = reqwest::Client::new()
        .post(format!("{}/api/rooms", server.base))
        .json(&json!({"settings": {"waiting_room": false, "mute_on_entry": false}}))
        .send()
        .await?
        .json()
        .await?;
    let room = RoomId(created["room"].as_str().context("room id")?.to_owned());
    let _ = PROTOCOL_VERSION;

    let mut speaker = member(&server, &room, "speaker").await?;
    speaker.peer.stop_sending();
    let mut listeners = Vec::with_capacity(a.listeners);
    for i in 0..a.listeners {
        let l = member(&server, &room, &format!("listener {i}")).await?;
        // Listeners stay muted and send nothing: the measurement is one speaker's fan-out.
        l.peer.stop_sending();
        listeners.push(l);
    }
    speaker.unmute().await;
    speaker.peer.start_sending();
    // Let every listener's renegotiation settle and audio start flowing before measuring.
    let deadline = Instant::now() + Duration::from_secs(20);
    while listeners.iter().any(|l| l.received_from(&speaker) == 0) {
        if Instant::now() > deadline {
            bail!("not every listener heard the speaker within 20 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let pid = server.child.id();
    let sent0 = speaker.peer.sent();
    let got0: u64 = listeners.iter().map(|l| l.received_from(&speaker)).sum();
    let cpu0 = cpu_seconds(pid)?;
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(a.seconds)).await;
    speaker.peer.stop_sending();
    let cpu1 = cpu_seconds(pid)?;
    let wall = t0.elapsed().as_secs_f64();
    let sent = speaker.peer.sent() - sent0;
    // Packets in flight when sending stopped still count: wait until the counts stop moving.
    let mut got: u64 = listeners
        .iter()
        .map(|l| l.received_from(&speaker))
        .sum::<u64>()
        - got0;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = listeners
            .iter()
            .map(|l| l.received_from(&speaker))
            .sum::<u64>()
            - got0;
        if now == got {
            break;
        }
        got = now;
    }
    let expected = sent * a.listeners as u64;
    let cpu = cpu1 - cpu0;
    let loss = if expected == 0 {
        0.0
    } else {
        1.0 - (got.min(expected) as f64 / expected as f64)
    };
    println!(
        "voice relay: 1 speaker, {} listeners, {:.1} s",
        a.listeners, wall
    );
    println!("  speaker sent            {sent} packets");
    println!("  forwarded and received  {got} packets (expected {expected})");
    println!("  loss                    {:.3} %", loss * 100.0);
    println!(
        "  server CPU              {cpu:.3} s ({:.1} % of one core)",
        cpu / wall * 100.0
    );
    if got > 0 {
        println!(
            "  CPU per 1,000 packets   {:.4} s",
            cpu / (got as f64 / 1000.0)
        );
        if cpu > 0.0 {
            println!("  packets per busy core   {:.0} /s", got as f64 / cpu);
        }
    }
    for l in listeners {
        l.close().await;
    }
    let _ = speaker.request(&ClientMsg::Leave { id: None }).await;
    Ok(())
}
