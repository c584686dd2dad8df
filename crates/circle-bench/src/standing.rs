//! `circle-load standing`: standing rooms at scale (issue 9's BENCHMARKS lines).
//!
//! Against a release `circle` child with its own temporary data directory (SQLite) and an operator
//! key: the server's start time with an empty store; then N standing rooms created through the
//! organiser API (`POST /api/standing`, `--concurrency` requests in flight), timed; the start time
//! again with N rooms in the store (the child is killed and started again, `--starts` times); and
//! join time (connect, `join`, `joined`) in a standing room against an ad-hoc room, alternating
//! sample by sample so both see the same machine: first joins (the join that opens a meeting from
//! the stored definition, in a different room each time, against the first join of a fresh ad-hoc
//! room), and joins into one open meeting. The data directory is removed at the end.

use crate::{
    client,
    server::ServerChild,
    stats::{Summary, ms, summarize},
};
use anyhow::{Context, Result, bail, ensure};
use circle_protocol::{PROTOCOL_VERSION, RoomId};
use futures_util::{SinkExt, StreamExt, stream};
use serde_json::{Value, json};
use std::{
    path::PathBuf,
    time::{Duration, Instant},
};
use tokio_tungstenite::tungstenite::Message;

/// The operator key the child is started with (it listens on loopback only).
const OPERATOR_KEY: &str = "circle-load-standing-operator-key";
/// Longest wait for one HTTP request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for one join.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// `circle-load standing` options.
#[derive(clap::Args, Debug)]
pub struct StandingArgs {
    /// Standing rooms to create.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    rooms: u32,
    /// Join samples of each kind (standing and ad-hoc), for first joins and for joins into an open
    /// meeting each.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    joins: u32,
    /// Creation requests in flight at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    concurrency: u32,
    /// Server starts measured with an empty store and with the rooms in it.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    starts: u32,
    /// The server binary to start (default: `circle` next to this executable).
    #[arg(long)]
    server_bin: Option<PathBuf>,
}

/// A temporary data directory, removed when dropped (every exit path).
struct DataDir(PathBuf);

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the benchmark and prints its results.
pub async fn run(a: StandingArgs) -> Result<()> {
    let dir =
        DataDir(std::env::temp_dir().join(format!("circle-load-standing-{}", std::process::id())));
    let env = [
        ("CIRCLE_STORAGE__DATA_DIR", dir.0.display().to_string()),
        ("CIRCLE_ROOMS__OPERATOR_KEY", OPERATOR_KEY.to_owned()),
        // Every first join below opens a meeting: room for all of them and the ad-hoc rooms.
        (
            "CIRCLE_ROOMS__MAX_ROOMS",
            (a.rooms as usize + 2 * a.joins as usize + 100).to_string(),
        ),
    ];
    let bin = a.server_bin.as_deref();

    // The first start creates the database; the empty-store starts are measured after it.
    drop(ServerChild::start(bin, &env).await?);
    let empty_starts = measure_starts(bin, &env, a.starts).await?;

    let server = ServerChild::start(bin, &env).await?;
    eprintln!(
        "server pid {} (log: {})",
        server.pid(),
        server.log.display()
    );
    let http = reqwest::Client::new();
    let created_at = Instant::now();
    let results: Vec<Result<(u64, Value)>> = stream::iter(0..a.rooms)
        .map(|i| create_standing(&http, &server.base, i))
        .buffer_unordered(a.concurrency as usize)
        .collect()
        .await;
    let create_wall = created_at.elapsed();
    let mut create_us = Vec::with_capacity(results.len());
    let mut links = Vec::with_capacity(results.len());
    for r in results {
        let (us, view) = r?;
        create_us.push(us);
        // Joins go to rooms without a schedule: a scheduled one keeps members waiting until its
        // early-open time, which is a rule, not a cost.
        if view["schedule"].is_null() {
            links.push(link_of(&view)?);
        }
    }
    ensure!(!links.is_empty(), "no room without a schedule to join");
    let create = summarize(create_us);
    drop(server);

    let full_starts = measure_starts(bin, &env, a.starts).await?;

    // Join times, with the N rooms in the store.
    let server = ServerChild::start(bin, &env).await?;
    let ws_url = format!("{}/ws", server.base.replacen("http", "ws", 1));
    let joins = a.joins as usize;
    let (mut first_standing, mut first_adhoc) = (Vec::new(), Vec::new());
    for i in 0..joins {
        // A different standing room each time, spread over the whole store.
        let link = &links[(i * links.len() / joins) % links.len()];
        first_standing.push(time_join(&ws_url, link, &format!("first {i}")).await?);
        let adhoc = create_adhoc(&http, &server.base, &format!("circle-load ad-hoc {i}")).await?;
        first_adhoc.push(time_join(&ws_url, &adhoc, &format!("first {i}")).await?);
    }
    let standing_room = &links[links.len() / 2];
    let adhoc_room = create_adhoc(&http, &server.base, "circle-load ad-hoc open").await?;
    // One member stays in each, so both meetings stay open while the samples come and go.
    let mut keep = Vec::new();
    for room in [standing_room, &adhoc_room] {
        let mut ws = client::connect(&ws_url).await?;
        join_raw(&mut ws, room, "keeper").await?;
        keep.push(ws);
    }
    let (mut open_standing, mut open_adhoc) = (Vec::new(), Vec::new());
    for i in 0..joins {
        open_standing.push(time_join(&ws_url, standing_room, &format!("m{i}")).await?);
        open_adhoc.push(time_join(&ws_url, &adhoc_room, &format!("m{i}")).await?);
    }
    let stored = count_standing(&http, &server.base).await?;
    ensure!(
        stored == a.rooms as usize,
        "the organiser list holds {stored} rooms, not {}",
        a.rooms
    );
    drop(keep);
    drop(server);

    let rate = f64::from(a.rooms) / create_wall.as_secs_f64();
    println!(
        "standing rooms: {} created, {} in flight",
        a.rooms, a.concurrency
    );
    println!(
        "  create: {:.2} s in all ({rate:.0} rooms/s); per request ms p50 {} p99 {} max {}",
        create_wall.as_secs_f64(),
        ms(create.p50),
        ms(create.p99),
        ms(create.max)
    );
    print_starts("start, empty store", empty_starts);
    print_starts(&format!("start, {} rooms", a.rooms), full_starts);
    print_joins("first join (opens the meeting), standing", first_standing);
    print_joins("first join, ad-hoc room", first_adhoc);
    print_joins("join into an open meeting, standing", open_standing);
    print_joins("join into an open meeting, ad-hoc", open_adhoc);
    Ok(())
}

/// Starts the server `n` times on the same data directory; each start's time to a healthy answer.
async fn measure_starts(
    bin: Option<&std::path::Path>,
    env: &[(&str, String)],
    n: u32,
) -> Result<Summary> {
    let mut samples = Vec::new();
    for _ in 0..n {
        let at = Instant::now();
        let server = ServerChild::start(bin, env).await?;
        samples.push(at.elapsed().as_micros() as u64);
        drop(server);
    }
    Ok(summarize(samples))
}

fn print_starts(what: &str, s: Summary) {
    println!(
        "  {what}: ms p50 {} max {} (n={}; spawn to the first healthy /healthz, polled every 5 ms)",
        ms(s.p50),
        ms(s.max),
        s.n
    );
}

fn print_joins(what: &str, samples: Vec<u64>) {
    let s = summarize(samples);
    println!(
        "  {what}: ms p50 {} p95 {} max {} (n={})",
        ms(s.p50),
        ms(s.p95),
        ms(s.max),
        s.n
    );
}

/// The body of the i-th room: half with a weekly schedule (a realistic row), half without (the
/// joins go to those).
fn standing_body(i: u32) -> Value {
    let mut body = json!({
        "title": format!("circle-load group {i:06}"),
        "settings": { "waiting_room": false },
        "early_open_mins": 15,
    });
    if i.is_multiple_of(2) {
        body["schedule"] = json!({
            "weekdays": ["tue", "thu"], "start": "19:00", "time_zone": "Europe/London",
            "duration_mins": 90
        });
    }
    body
}

/// Creates the i-th standing room; its time in µs and its `StandingView`.
async fn create_standing(http: &reqwest::Client, base: &str, i: u32) -> Result<(u64, Value)> {
    let at = Instant::now();
    let res = http
        .post(format!("{base}/api/standing"))
        .bearer_auth(OPERATOR_KEY)
        .json(&standing_body(i))
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .context("POST /api/standing")?;
    let status = res.status();
    let body: Value = res
        .json()
        .await
        .context("reading the standing room reply")?;
    let us = at.elapsed().as_micros() as u64;
    if status.as_u16() != 201 {
        bail!("POST /api/standing answered {status}: {body}");
    }
    Ok((us, body))
}

/// The members' link id in a `StandingView`'s `join_url` (`…#room=<id>`).
fn link_of(view: &Value) -> Result<RoomId> {
    let url = view["join_url"]
        .as_str()
        .context("no join_url in the reply")?;
    let fragment = url.split_once('#').map_or("", |(_, f)| f);
    let id = fragment
        .split('&')
        .find_map(|kv| kv.strip_prefix("room="))
        .with_context(|| format!("no room= in {url}"))?;
    Ok(RoomId(id.to_owned()))
}

/// How many standing rooms the organiser list holds.
async fn count_standing(http: &reqwest::Client, base: &str) -> Result<usize> {
    let res = http
        .get(format!("{base}/api/standing"))
        .bearer_auth(OPERATOR_KEY)
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .context("GET /api/standing")?;
    let body: Value = res.json().await?;
    body.as_array()
        .map(Vec::len)
        .context("GET /api/standing is not a list")
}

/// Creates an ad-hoc room (waiting room off) with the operator key; its id.
async fn create_adhoc(http: &reqwest::Client, base: &str, title: &str) -> Result<RoomId> {
    let res = http
        .post(format!("{base}/api/rooms"))
        .bearer_auth(OPERATOR_KEY)
        .json(&json!({ "title": title, "settings": { "waiting_room": false } }))
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .context("POST /api/rooms")?;
    let status = res.status();
    let body: Value = res.json().await?;
    if status.as_u16() != 201 {
        bail!("POST /api/rooms answered {status}: {body}");
    }
    Ok(RoomId(
        body["room"].as_str().context("no room id")?.to_owned(),
    ))
}

/// Connect, join and get `joined`, in µs; then leave and close.
async fn time_join(ws_url: &str, room: &RoomId, name: &str) -> Result<u64> {
    let at = Instant::now();
    let mut ws = client::connect(ws_url).await?;
    join_raw(&mut ws, room, name).await?;
    let us = at.elapsed().as_micros() as u64;
    ws.send(Message::text(json!({ "type": "leave" }).to_string()))
        .await?;
    let _ = ws.close(None).await;
    Ok(us)
}

/// Sends `join` as plain JSON (this tool reads the wire loosely, so a server from another
/// revision works) and waits for `joined`, not in the waiting room.
async fn join_raw(ws: &mut client::Ws, room: &RoomId, name: &str) -> Result<()> {
    let join = json!({ "type": "join", "protocol": PROTOCOL_VERSION, "room": room, "name": name });
    ws.send(Message::text(join.to_string())).await?;
    tokio::time::timeout(JOIN_TIMEOUT, async {
        while let Some(frame) = ws.next().await {
            if let Message::Text(t) = frame? {
                let v: Value = serde_json::from_str(&t)?;
                match v["type"].as_str() {
                    Some("joined") if v["waiting"] == Value::Bool(true) => {
                        bail!("put in the waiting room")
                    }
                    Some("joined") => return Ok(()),
                    Some("error") => bail!("join refused: {}: {}", v["code"], v["message"]),
                    _ => {}
                }
            }
        }
        bail!("connection ended before joined")
    })
    .await
    .map_err(|_| anyhow::anyhow!("no `joined` within {JOIN_TIMEOUT:?}"))?
}
