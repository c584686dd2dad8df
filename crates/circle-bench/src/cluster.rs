//! `circle-load cluster`: cluster mode's costs (issue 12's BENCHMARKS lines).
//!
//! Starts a `redis-server` (Debian's package; persistence off) on a free loopback port and three
//! release `circle` nodes registered in it (voice off: this measures the signalling path). Then:
//! - join time (connect, `join`, `joined`) for the first member of a fresh meeting, joining at the
//!   node that holds it against joining at another node, being refused with `wrong_node` and
//!   following its `url`; alternating sample by sample so both see the same machine;
//! - Redis commands per second (from `INFO stats`) with `--meetings` meetings of `--members` idle
//!   members spread over the nodes, over `--seconds`: the registry's steady load.
//!
//! Every child (Redis, the nodes) is killed when its guard is dropped.

use crate::{
    client,
    server::ServerChild,
    stats::{Summary, ms, summarize},
};
use anyhow::{Context, Result, bail, ensure};
use circle_protocol::{ClientMsg, PROTOCOL_VERSION, RoomId};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::{
    io::{BufRead, BufReader, Write},
    net::TcpStream,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};
use tokio_tungstenite::tungstenite::Message;

/// The token key the nodes share (they listen on loopback only).
const TOKEN_KEY: &str = "circle-load-cluster-token-key-0123456789";
/// Longest wait for one join or request.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How long Redis and the nodes may take to be ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Nodes in the cluster.
const NODES: usize = 3;

/// `circle-load cluster` options.
#[derive(clap::Args, Debug)]
pub struct ClusterArgs {
    /// Join samples of each kind (at the holding node, and through a redirect).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    joins: u32,
    /// Meetings held while Redis's load is measured.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(0..=30_000))]
    meetings: u32,
    /// Idle members in each of those meetings.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=100))]
    members: u32,
    /// How long Redis's load is measured, in seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=600))]
    seconds: u64,
    /// The server binary (default: `circle` next to this executable).
    #[arg(long)]
    server_bin: Option<PathBuf>,
}

/// A `redis-server` child on a loopback port, killed on drop.
struct Redis {
    child: Child,
    port: u16,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Redis {
    fn start() -> Result<Redis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server (apt-get install redis-server)")?;
        let redis = Redis { child, port };
        let deadline = Instant::now() + START_TIMEOUT;
        while redis.command(&["PING"]).as_deref() != Some("+PONG") {
            ensure!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(redis)
    }

    /// One command; the answer's first line.
    fn command(&self, args: &[&str]) -> Option<String> {
        self.lines(args, 1).into_iter().next()
    }

    /// One command; up to `max` lines of the answer.
    fn lines(&self, args: &[&str], max: usize) -> Vec<String> {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return Vec::new();
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        if s.write_all(req.as_bytes()).is_err() {
            return Vec::new();
        }
        BufReader::new(s)
            .lines()
            .take(max)
            .map_while(Result::ok)
            .collect()
    }

    /// Commands Redis has processed since it started (`INFO stats`).
    fn commands_processed(&self) -> Result<u64> {
        self.lines(&["INFO", "stats"], 40)
            .iter()
            .find_map(|l| l.strip_prefix("total_commands_processed:"))
            .and_then(|n| n.trim().parse().ok())
            .context("INFO stats has no total_commands_processed")
    }
}

pub async fn run(args: ClusterArgs) -> Result<()> {
    let redis = Redis::start()?;
    let url = format!("redis://127.0.0.1:{}/0", redis.port);
    let mut nodes = Vec::new();
    for i in 0..NODES {
        let env = [
            ("CIRCLE_MEDIA__ENABLED", "false".to_owned()),
            ("CIRCLE_AUTH__TOKEN_KEY", TOKEN_KEY.to_owned()),
            ("CIRCLE_CLUSTER__REDIS_URL", url.clone()),
            ("CIRCLE_CLUSTER__NODE_ID", format!("n{i}")),
            (
                "CIRCLE_STORAGE__DATA_DIR",
                std::env::temp_dir()
                    .join(format!("circle-load-cluster-{}-{i}", std::process::id()))
                    .display()
                    .to_string(),
            ),
        ];
        nodes.push(ServerChild::start(args.server_bin.as_deref(), &env).await?);
    }
    let http = reqwest::Client::builder().timeout(TIMEOUT).build()?;
    for n in &nodes {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let body: Value = match http.get(format!("{}/readyz", n.base)).send().await {
                Ok(r) => r.json().await.unwrap_or(Value::Null),
                Err(_) => Value::Null,
            };
            if body["cluster"] == "up" {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "{} never registered: see {}",
                n.base,
                n.log.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let ws_urls: Vec<String> = nodes
        .iter()
        .map(|n| format!("{}/ws", n.base.replacen("http", "ws", 1)))
        .collect();
    println!(
        "cluster: redis-server and {NODES} release nodes on loopback, voice off; {} join samples of each kind",
        args.joins
    );

    // Join time: at the holding node, against through a redirect, alternating.
    let (mut direct, mut redirected) = (Vec::new(), Vec::new());
    for i in 0..args.joins {
        let asked = &nodes[i as usize % NODES].base;
        let (first, second) = (create(&http, asked).await?, create(&http, asked).await?);
        // Which kind goes first alternates, so neither always meets a warmer machine.
        let (for_direct, for_redirect) = if i % 2 == 0 {
            (first, second)
        } else {
            (second, first)
        };
        let wrong = other_than(&ws_urls, &for_redirect.1)?;
        if i % 2 == 0 {
            direct.push(time_join(&for_direct.1, &for_direct.0).await?);
            redirected.push(time_redirected_join(wrong, &for_redirect.0).await?);
        } else {
            redirected.push(time_redirected_join(wrong, &for_redirect.0).await?);
            direct.push(time_join(&for_direct.1, &for_direct.0).await?);
        }
    }
    let (d, r) = (summarize(direct), summarize(redirected));
    print_join("first join at the holding node", &d);
    print_join("first join at another node, then the holder", &r);
    println!(
        "  redirect costs: p50 +{}, p99 +{}",
        ms(r.p50.saturating_sub(d.p50)),
        ms(r.p99.saturating_sub(d.p99))
    );

    // Redis's steady load with meetings held.
    let mut sockets = Vec::new();
    for m in 0..args.meetings {
        let asked = &nodes[m as usize % NODES];
        let (room, owner) = create(&http, &asked.base).await?;
        for k in 0..args.members {
            let mut ws = client::connect(&owner).await?;
            client::join(&mut ws, &room, &format!("member {k}"), TIMEOUT).await?;
            sockets.push(ws);
        }
    }
    // One full refresh period first, so every node writes all its meetings' keys in the window.
    tokio::time::sleep(Duration::from_secs(4)).await;
    // The meetings of the join samples are still held (until their empty-room time): count all.
    let mut held = 0;
    for n in &nodes {
        let body: Value = http
            .get(format!("{}/healthz", n.base))
            .send()
            .await?
            .json()
            .await?;
        held += body["rooms"].as_u64().context("healthz rooms")?;
    }
    let before = redis.commands_processed()?;
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let after = redis.commands_processed()?;
    // INFO itself is one command.
    let per_sec = (after - before).saturating_sub(1) as f64 / started.elapsed().as_secs_f64();
    println!(
        "redis load: {held} meetings held on {NODES} nodes ({} of them with {} idle members), {}s: \
         {per_sec:.0} commands/s ({:.3} per meeting per second)",
        args.meetings,
        args.members,
        args.seconds,
        if held == 0 {
            0.0
        } else {
            per_sec / held as f64
        }
    );
    drop(sockets);
    for i in 0..NODES {
        let _ = std::fs::remove_dir_all(
            std::env::temp_dir().join(format!("circle-load-cluster-{}-{i}", std::process::id())),
        );
    }
    Ok(())
}

fn print_join(what: &str, s: &Summary) {
    println!(
        "  {what}: p50 {}  p95 {}  p99 {}  max {}  (n={})",
        ms(s.p50),
        ms(s.p95),
        ms(s.p99),
        ms(s.max),
        s.n
    );
}

/// A node's websocket URL other than `owner`'s.
fn other_than<'a>(urls: &'a [String], owner: &str) -> Result<&'a str> {
    urls.iter()
        .map(String::as_str)
        .find(|u| *u != owner)
        .context("no other node")
}

/// A fresh meeting (no waiting room) asked of `base`: its id and its holder's websocket URL.
async fn create(http: &reqwest::Client, base: &str) -> Result<(RoomId, String)> {
    let res = http
        .post(format!("{base}/api/rooms"))
        .json(&json!({ "settings": { "waiting_room": false } }))
        .send()
        .await?;
    ensure!(res.status() == 201, "POST /api/rooms: {}", res.status());
    let body: Value = res.json().await?;
    let room = RoomId(body["room"].as_str().context("room")?.to_owned());
    let url = body["websocket_url"]
        .as_str()
        .context("websocket_url")?
        .to_owned();
    Ok((room, url))
}

/// Microseconds from connecting at `url` to `joined`.
async fn time_join(url: &str, room: &RoomId) -> Result<u64> {
    let t = Instant::now();
    let mut ws = client::connect(url).await?;
    client::join(&mut ws, room, "Ann", TIMEOUT).await?;
    Ok(t.elapsed().as_micros() as u64)
}

/// Microseconds from connecting at `wrong` (which must answer `wrong_node`) to `joined` at the
/// node its `url` names.
async fn time_redirected_join(wrong: &str, room: &RoomId) -> Result<u64> {
    let t = Instant::now();
    let mut ws = client::connect(wrong).await?;
    let msg = ClientMsg::Join {
        id: None,
        protocol: PROTOCOL_VERSION,
        room: room.clone(),
        name: "Ann".into(),
        secret: None,
        device: None,
        carry: None,
    };
    ws.send(Message::text(serde_json::to_string(&msg)?)).await?;
    let url = tokio::time::timeout(TIMEOUT, async {
        while let Some(frame) = ws.next().await {
            if let Message::Text(t) = frame? {
                let v: Value = serde_json::from_str(&t)?;
                if v["type"] == "error" && v["code"] == "wrong_node" {
                    return v["url"]
                        .as_str()
                        .map(str::to_owned)
                        .context("wrong_node without url");
                }
                bail!("expected wrong_node, got {t}");
            }
        }
        bail!("closed before wrong_node")
    })
    .await
    .context("no answer to join")??;
    drop(ws);
    let mut ws = client::connect(&url).await?;
    client::join(&mut ws, room, "Ann", TIMEOUT).await?;
    Ok(t.elapsed().as_micros() as u64)
}
