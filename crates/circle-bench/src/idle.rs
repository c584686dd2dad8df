//! `circle-load idle`: what one idle joined session costs the server in memory.
//!
//! The server runs as a child so its RSS can be read from `/proc/PID/status`. RSS is read once the
//! server answers, again after the rooms exist, and then, after S sessions have joined (rooms of
//! R members, waiting room off) and the join traffic has settled, once a second for the settle
//! period. The figure reported is (RSS after settling − RSS at start) / S: everything the server
//! keeps per session (its tasks, queues, buffers, the participant in the room state) plus whatever
//! the allocator kept from the join traffic and did not give back. Peak RSS (`VmHWM`) is printed
//! too, to show how much the joins needed on the way.

use crate::{
    client,
    server::{ServerChild, create_room},
    stats::{kib, mib},
    wait_for,
};
use anyhow::{Result, bail, ensure};
use circle_protocol::RoomId;
use futures_util::StreamExt;
use std::{
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};
use tokio::{sync::Semaphore, time::sleep_until};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// The per-session cost the issue asks for.
const TARGET_BYTES: f64 = 16.0 * 1024.0;
/// File descriptors this process needs besides one per session.
const SPARE_FDS: u64 = 256;
/// Share of the sessions that must join for the measurement to go on (the rest are reported).
const MIN_JOINED_SHARE: f64 = 0.99;
/// Longest wait for the session tasks to stop once told to.
const COLLECT_TIMEOUT: Duration = Duration::from_secs(30);

/// `circle-load idle` options.
#[derive(clap::Args, Debug)]
pub struct IdleArgs {
    /// Sessions to join and leave idle.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=50_000))]
    sessions: u32,
    /// Sessions per room.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=20_000))]
    room_size: u32,
    /// The server binary to start (default: `circle` next to this executable).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Connections opening (connect + join) at once. Every join sends the whole roster to the joiner
    /// and an event to everyone in the room; on a 2-core machine, 50 at once made the server drop
    /// some of this tool's sessions as too slow (4008) while they read that flood.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    concurrency: u32,
    /// Longest wait for all sessions to join, in seconds.
    #[arg(long, default_value_t = 600)]
    join_timeout: u64,
    /// Seconds to let the server settle after the last join before the final RSS reading.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    settle: u64,
}

/// What every session task shares with the driver.
struct Shared {
    /// Sessions that got `joined`.
    joined: AtomicUsize,
    /// Sessions that failed to connect or join.
    failed: AtomicUsize,
    /// The `joined` frames' sizes added up: a joiner's `joined` holds the whole roster.
    joined_bytes: AtomicUsize,
    /// The largest `joined` frame.
    largest_joined: AtomicUsize,
    /// Joined sessions whose connection ended before they were told to stop.
    dropped: AtomicUsize,
    /// The first join failure, for the report.
    first_failure: Mutex<Option<String>>,
    /// The first reason a joined session was closed, for the report.
    first_drop: Mutex<Option<String>>,
    /// Tells every task to close its socket and stop.
    cancel: CancellationToken,
}

/// Keeps the first message put in `slot`.
fn note(slot: &Mutex<Option<String>>, e: String) {
    if let Ok(mut first) = slot.lock() {
        first.get_or_insert(e);
    }
}

/// The message in `slot`, or `none`.
fn first(slot: &Mutex<Option<String>>, none: &str) -> String {
    slot.lock()
        .ok()
        .and_then(|e| e.clone())
        .unwrap_or_else(|| none.into())
}

/// Runs the idle-memory benchmark and prints its results.
pub async fn run(a: IdleArgs) -> Result<()> {
    let (n, size) = (a.sessions as usize, a.room_size as usize);
    let (soft, _) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    if soft < n as u64 + SPARE_FDS {
        bail!(
            "the open-file limit is {soft}; {n} sessions need {} (raise it: `ulimit -n {}`)",
            n as u64 + SPARE_FDS,
            2 * (n as u64 + SPARE_FDS)
        );
    }
    let rooms = n.div_ceil(size);
    let env = [
        ("CIRCLE_ROOMS__MAX_PARTICIPANTS", size.to_string()),
        ("CIRCLE_ROOMS__MAX_ROOMS", rooms.max(10_000).to_string()),
    ];
    let server = ServerChild::start(a.server_bin.as_deref(), &env).await?;
    let pid = server.pid();
    eprintln!("server pid {pid} (log: {})", server.log.display());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_start = server.rss_bytes()?;

    let mut room_ids = Vec::with_capacity(rooms);
    for r in 0..rooms {
        room_ids.push(create_room(&server.base, &format!("circle-load idle {r}")).await?);
    }
    let rss_rooms = server.rss_bytes()?;

    let join_timeout = Duration::from_secs(a.join_timeout);
    let settle = Duration::from_secs(a.settle);
    let hard_deadline =
        tokio::time::Instant::now() + join_timeout + settle + Duration::from_secs(60);
    let sh = Arc::new(Shared {
        joined: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        joined_bytes: AtomicUsize::new(0),
        largest_joined: AtomicUsize::new(0),
        dropped: AtomicUsize::new(0),
        first_failure: Mutex::new(None),
        first_drop: Mutex::new(None),
        cancel: CancellationToken::new(),
    });
    let _stop_sessions = sh.cancel.clone().drop_guard();
    let permits = Arc::new(Semaphore::new(a.concurrency as usize));
    let ws_url: Arc<str> = format!("{}/ws", server.base.replacen("http", "ws", 1)).into();

    eprintln!(
        "joining {n} sessions in {rooms} room(s) of up to {size} at {}",
        server.base
    );
    let join_start = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let room = room_ids[i / size].clone();
            let (ws_url, permits, sh) = (ws_url.clone(), permits.clone(), sh.clone());
            tokio::spawn(session(
                i,
                ws_url,
                room,
                permits,
                sh,
                join_timeout,
                hard_deadline,
            ))
        })
        .collect();
    wait_for("sessions joined", n, Instant::now() + join_timeout, || {
        sh.joined.load(Relaxed) + sh.failed.load(Relaxed)
    })
    .await;
    let joined = sh.joined.load(Relaxed);
    if (joined as f64) < MIN_JOINED_SHARE * n as f64 {
        let why = first(&sh.first_failure, "timed out");
        bail!("only {joined} of {n} sessions joined; first failure: {why}");
    }
    let join_secs = join_start.elapsed().as_secs_f64();
    let peak_at_join = server.peak_rss_bytes()?;

    eprintln!(
        "all joined in {join_secs:.1} s; settling for {} s",
        settle.as_secs()
    );
    let mut samples = Vec::new();
    let settle_end = Instant::now() + settle;
    while Instant::now() < settle_end {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss = server.rss_bytes()?;
        eprintln!("  RSS {} MiB", mib(rss));
        samples.push(rss);
    }
    let rss_after = *samples.last().unwrap_or(&server.rss_bytes()?);
    let peak = server.peak_rss_bytes()?;
    let dropped = sh.dropped.load(Relaxed);
    // Sessions with a live connection when RSS was read: the ones measured.
    let live = joined.saturating_sub(dropped).max(1);

    sh.cancel.cancel();
    let collected = tokio::time::timeout(COLLECT_TIMEOUT, async {
        for t in tasks {
            let _ = t.await;
        }
    })
    .await;
    ensure!(
        collected.is_ok(),
        "session tasks did not stop within {COLLECT_TIMEOUT:?}"
    );
    drop(server);

    let per_session = rss_after.saturating_sub(rss_start) as f64 / live as f64;
    let per_session_rooms = rss_after.saturating_sub(rss_rooms) as f64 / live as f64;
    println!();
    println!("## circle-load idle");
    println!();
    println!(
        "{live} idle sessions ({n} opened) in {rooms} room(s) of up to {size} (server pid {pid}); joined in {join_secs:.1} s, settled {} s",
        settle.as_secs()
    );
    println!();
    println!(
        "| RSS at start | after creating rooms | after joins + settle | peak (VmHWM) | per idle session |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: |");
    println!(
        "| {} MiB | {} MiB | {} MiB | {} MiB | {} KiB |",
        mib(rss_start),
        mib(rss_rooms),
        mib(rss_after),
        mib(peak),
        kib(per_session)
    );
    println!();
    println!(
        "- per session, counted from after the rooms were created: {} KiB; peak RSS when the last session joined: {} MiB",
        kib(per_session_rooms),
        mib(peak_at_join)
    );
    let min = samples.iter().min().copied().unwrap_or(rss_after);
    let max = samples.iter().max().copied().unwrap_or(rss_after);
    println!("- RSS while settling: {} to {} MiB", mib(min), mib(max));
    println!(
        "- `joined` frames received: {} KiB on average, {} KiB the largest",
        kib(sh.joined_bytes.load(Relaxed) as f64 / joined.max(1) as f64),
        kib(sh.largest_joined.load(Relaxed) as f64)
    );
    if joined < n {
        let why = first(&sh.first_failure, "timed out");
        println!("- {} session(s) failed to join; first: {why}", n - joined);
    }
    if dropped > 0 {
        let why = first(&sh.first_drop, "");
        println!("- {dropped} session(s) were closed by the server after joining; first: {why}");
    }
    let verdict = if per_session < TARGET_BYTES {
        "met"
    } else {
        "MISSED"
    };
    println!(
        "- target (< {} KiB per idle session): {verdict}",
        kib(TARGET_BYTES)
    );
    Ok(())
}

/// One session: connect and join (holding one of the `permits`), then read (and so answer pings)
/// until told to stop.
async fn session(
    i: usize,
    ws_url: Arc<str>,
    room: RoomId,
    permits: Arc<Semaphore>,
    sh: Arc<Shared>,
    join_timeout: Duration,
    hard_deadline: tokio::time::Instant,
) {
    let joined = async {
        let _permit = permits.acquire().await?;
        let mut ws = client::connect(&ws_url).await?;
        let bytes = client::join(&mut ws, &room, &format!("s{i:05}"), join_timeout).await?;
        sh.joined_bytes.fetch_add(bytes, Relaxed);
        sh.largest_joined.fetch_max(bytes, Relaxed);
        anyhow::Ok(ws)
    };
    let mut ws = tokio::select! {
        r = joined => match r {
            Ok(ws) => ws,
            Err(e) => {
                note(&sh.first_failure, format!("{e:#}"));
                sh.failed.fetch_add(1, Relaxed);
                return;
            }
        },
        _ = sh.cancel.cancelled() => return,
    };
    sh.joined.fetch_add(1, Relaxed);
    loop {
        let frame = tokio::select! {
            _ = sh.cancel.cancelled() => break,
            _ = sleep_until(hard_deadline) => break,
            f = ws.next() => f,
        };
        let ended = match frame {
            Some(Ok(Message::Close(f))) => {
                let why = f
                    .map(|f| format!("{} {}", u16::from(f.code), f.reason))
                    .unwrap_or_default();
                format!("closed by the server ({why})")
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => format!("read error: {e}"),
            None => "connection ended".into(),
        };
        note(&sh.first_drop, ended);
        sh.dropped.fetch_add(1, Relaxed);
        break;
    }
}
