//! `circle-load chat`: chat fan-out latency in one big room.
//!
//! N members join one room (waiting room off) over real websockets, a few at a time. A sender joins
//! last and sends one warm-up message; once every member has it, every queue the joins filled has
//! drained (frames on one connection arrive in order). Then the sender sends M messages at the given
//! rate, each carrying its sequence number and send time (microseconds on a clock this process shares
//! with every member). Each member notes when each message arrives, before parsing it.
//!
//! Reported: per-recipient latency (send → one member's receipt, N×M samples), "delivered to all"
//! latency (send → the last member's receipt, one sample per message that reached everyone), and
//! loss (deliveries that never came). The clients run on the same machine as the server, so their
//! own scheduling delay is inside every number: the figures are an upper bound for the server.

use crate::{
    client,
    cpu::CpuSample,
    server::{ServerChild, Target, create_room, loopback_url},
    stats::{Summary, ms, summarize},
    wait_for,
};
use anyhow::{Context, Result, bail, ensure};
use circle_protocol::{ClientMsg, RoomId};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};
use tokio::{
    sync::Semaphore,
    time::{MissedTickBehavior, interval, sleep, sleep_until},
};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// The p95 per-recipient latency the issue asks for.
const TARGET_P95: Duration = Duration::from_millis(50);
/// Share of one core other programs may use during the send phase before the report warns.
const NOISY_SHARE: f64 = 0.1;
/// How a chat event starts on the wire (serde writes the tag first); other frames are skipped unparsed.
const CHAT_PREFIX: &str = r#"{"type":"chat""#;
/// A latency slot no message has filled.
const MISSING: u32 = u32::MAX;
/// Longest wait for every member to receive the warm-up message.
const WARMUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause between the warm-up and the first measured message.
const WARMUP_PAUSE: Duration = Duration::from_millis(500);
/// Longest wait for the member tasks to hand in their results once told to stop.
const COLLECT_TIMEOUT: Duration = Duration::from_secs(30);

/// `circle-load chat` options.
#[derive(clap::Args, Debug)]
pub struct ChatArgs {
    /// Members who receive the chat (the sender is one more participant).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=20_000))]
    members: u32,
    /// Measured messages the sender sends.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    messages: u32,
    /// Messages per second.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// The server binary to start (default: `circle` next to this executable).
    #[arg(long, conflicts_with = "url")]
    server_bin: Option<PathBuf>,
    /// Use a server already running at this loopback URL (it must allow members+1 participants and
    /// the sender's chat rate) instead of starting one.
    #[arg(long)]
    url: Option<String>,
    /// Connections opening (connect + join) at once.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    concurrency: u32,
    /// Longest wait for all members to join, in seconds.
    #[arg(long, default_value_t = 120)]
    join_timeout: u64,
    /// After the last message, longest wait for late deliveries, in seconds.
    #[arg(long, default_value_t = 10)]
    drain: u64,
}

/// What every member task shares with the driver.
struct Shared {
    /// The clock for send and receive times, in microseconds since this instant.
    base: Instant,
    /// Measured messages expected.
    messages: usize,
    /// Members that got `joined`.
    joined: AtomicUsize,
    /// Members that failed to connect or join.
    failed: AtomicUsize,
    /// The first join failure, for the error message.
    first_error: Mutex<Option<String>>,
    /// Members that received the warm-up message.
    warm: AtomicUsize,
    /// Members that received every measured message.
    done: AtomicUsize,
    /// Tells every task to stop reading and hand in its results.
    cancel: CancellationToken,
}

/// The part of a `chat` event the members read (see `ServerMsg::Chat`); other fields are ignored,
/// so the tool keeps working when the protocol gains fields.
#[derive(Deserialize)]
struct ChatEvent {
    /// The message.
    message: ChatText,
}

/// The part of `ChatView` the members read.
#[derive(Deserialize)]
struct ChatText {
    /// The text the sender wrote: `bench SEQ SENT_US`.
    text: String,
}

/// One member's record.
struct MemberOut {
    /// Latency of each measured message in microseconds, by sequence number; [`MISSING`] if none came.
    lat_us: Vec<u32>,
    /// Copies of a message already received (should stay 0).
    duplicates: usize,
    /// Why the member stopped reading before it was told to, if it did.
    ended: Option<String>,
}

/// Runs the chat benchmark and prints its results.
pub async fn run(a: ChatArgs) -> Result<()> {
    ensure!(
        a.rate > 0.0 && a.rate <= 10_000.0,
        "--rate must be in (0, 10000]"
    );
    let (n, m) = (a.members as usize, a.messages as usize);
    let chat_limit = ((a.rate * 2.0).ceil() as u64).max(100).to_string();
    let env = [
        ("CIRCLE_ROOMS__MAX_PARTICIPANTS", (n + 1).to_string()),
        ("CIRCLE_LIMITS__CHAT_PER_SEC", chat_limit.clone()),
        ("CIRCLE_LIMITS__CHAT_BURST", chat_limit.clone()),
        ("CIRCLE_LIMITS__REQUESTS_PER_SEC", chat_limit.clone()),
        ("CIRCLE_LIMITS__REQUESTS_BURST", chat_limit),
    ];
    let target = match &a.url {
        Some(url) => Target::External(loopback_url(url)?),
        None => Target::Child(ServerChild::start(a.server_bin.as_deref(), &env).await?),
    };
    let room = create_room(target.base(), "circle-load chat").await?;
    let ws_url: Arc<str> = target.ws_url().into();
    let send_time = Duration::from_secs_f64(m as f64 / a.rate);
    let join_timeout = Duration::from_secs(a.join_timeout);
    let drain = Duration::from_secs(a.drain);
    // Every member stops reading by then, whatever happens.
    let hard_deadline = tokio::time::Instant::now()
        + join_timeout
        + WARMUP_TIMEOUT
        + WARMUP_PAUSE
        + send_time
        + drain
        + Duration::from_secs(30);

    let sh = Arc::new(Shared {
        base: Instant::now(),
        messages: m,
        joined: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        first_error: Mutex::new(None),
        warm: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        cancel: CancellationToken::new(),
    });
    let _stop_members = sh.cancel.clone().drop_guard();
    let permits = Arc::new(Semaphore::new(a.concurrency as usize));

    if let Some(c) = target.child() {
        eprintln!("server pid {} (log: {})", c.pid(), c.log.display());
    }
    eprintln!("joining {n} members to room {room} at {}", target.base());
    let join_start = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (ws_url, room, permits, sh) =
                (ws_url.clone(), room.clone(), permits.clone(), sh.clone());
            tokio::spawn(member(
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
    wait_for("members joined", n, Instant::now() + join_timeout, || {
        sh.joined.load(Relaxed) + sh.failed.load(Relaxed)
    })
    .await;
    let joined = sh.joined.load(Relaxed);
    if joined < n {
        let first = sh
            .first_error
            .lock()
            .ok()
            .and_then(|e| e.clone())
            .unwrap_or_else(|| "timed out".into());
        bail!("only {joined} of {n} members joined; first failure: {first}");
    }
    let join_secs = join_start.elapsed().as_secs_f64();

    let mut sender = client::connect(&ws_url).await?;
    client::join(&mut sender, &room, "sender", Duration::from_secs(30))
        .await
        .context("sender joins")?;
    let (mut sink, mut stream) = sender.split();
    let sender_errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let (cancel, errors) = (sh.cancel.clone(), sender_errors.clone());
        tokio::spawn(async move {
            // The sender's own socket is drained so its queue never fills; errors (rate limits) kept.
            loop {
                let frame = tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = sleep_until(hard_deadline) => break,
                    f = stream.next() => f,
                };
                match frame {
                    Some(Ok(Message::Text(t))) if t.starts_with(r#"{"type":"error""#) => {
                        if let Ok(mut e) = errors.lock() {
                            e.push(t.to_string());
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break,
                }
            }
        })
    };

    sink.send(chat_frame("bench warmup")).await?;
    let warm = wait_for(
        "members warmed up",
        n,
        Instant::now() + WARMUP_TIMEOUT,
        || sh.warm.load(Relaxed),
    )
    .await;
    if warm < n {
        eprintln!("warning: only {warm} of {n} members received the warm-up message");
    }
    sleep(WARMUP_PAUSE).await;

    let server_pid = target.child().map(|c| c.pid());
    let cpu_before = CpuSample::take(server_pid)?;
    eprintln!("sending {m} messages at {}/s", a.rate);
    let mut tick = interval(Duration::from_secs_f64(1.0 / a.rate));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let send_start = Instant::now();
    for seq in 0..m {
        tick.tick().await;
        let t = sh.base.elapsed().as_micros();
        sink.send(chat_frame(&format!("bench {seq} {t}")))
            .await
            .context("sending chat")?;
    }
    let send_secs = send_start.elapsed().as_secs_f64();
    wait_for(
        "members got every message",
        n,
        Instant::now() + drain,
        || sh.done.load(Relaxed),
    )
    .await;
    let cpu = cpu_before.until(&CpuSample::take(server_pid)?);

    sh.cancel.cancel();
    let mut outs = Vec::with_capacity(n);
    let collected = tokio::time::timeout(COLLECT_TIMEOUT, async {
        for t in tasks {
            if let Ok(o) = t.await {
                outs.push(o);
            }
        }
    })
    .await;
    ensure!(
        collected.is_ok(),
        "member tasks did not stop within {COLLECT_TIMEOUT:?}"
    );
    let _ = reader.await;

    // Per-recipient samples, and the slowest recipient of each message that reached everyone.
    let mut per_recipient = Vec::with_capacity(n * m);
    let mut to_all = Vec::with_capacity(m);
    for seq in 0..m {
        let mut worst = 0u64;
        let mut complete = outs.len() == n;
        for o in &outs {
            match o.lat_us[seq] {
                MISSING => complete = false,
                l => {
                    per_recipient.push(u64::from(l));
                    worst = worst.max(u64::from(l));
                }
            }
        }
        if complete {
            to_all.push(worst);
        }
    }
    let expected = n * m;
    let delivered = per_recipient.len();
    let per = summarize(per_recipient);
    let all = summarize(to_all);
    let mut ended: BTreeMap<String, usize> = BTreeMap::new();
    for o in &outs {
        if let Some(r) = &o.ended {
            *ended.entry(r.clone()).or_default() += 1;
        }
    }
    let duplicates: usize = outs.iter().map(|o| o.duplicates).sum();
    let errors = sender_errors.lock().map(|e| e.clone()).unwrap_or_default();

    println!();
    println!("## circle-load chat");
    println!();
    println!(
        "{n} members + 1 sender in one room; {m} messages at {}/s (sent in {send_secs:.1} s); members joined in {join_secs:.1} s",
        a.rate
    );
    println!();
    println!("| latency (ms) | samples | p50 | p95 | p99 | max |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    row("per recipient (send → one member)", &per);
    row("delivered to all (send → last member)", &all);
    println!();
    let loss = expected - delivered;
    println!(
        "- deliveries: {delivered} of {expected} (lost {loss}, {:.3}%); messages that reached every member: {} of {m}; duplicates: {duplicates}",
        100.0 * loss as f64 / expected as f64,
        all.n
    );
    let wall = cpu.wall.as_secs_f64();
    let server_cpu = match cpu.server {
        Some(c) => format!(
            "server {:.2} s ({:.1} ms per message)",
            c.as_secs_f64(),
            1000.0 * c.as_secs_f64() / m as f64
        ),
        None => "server not measured (--url)".into(),
    };
    println!(
        "- CPU time over the send phase ({wall:.1} s): {server_cpu}, load tool {:.2} s, other processes {:.2} s",
        cpu.tool.as_secs_f64(),
        cpu.others.as_secs_f64()
    );
    let others_share = cpu.others.as_secs_f64() / wall;
    if others_share > NOISY_SHARE {
        println!(
            "- warning: other programs used {:.0}% of a core meanwhile; these latencies are not a quiet-machine figure",
            100.0 * others_share
        );
    }
    for (reason, count) in &ended {
        println!("- {count} member(s) stopped early: {reason}");
    }
    if !errors.is_empty() {
        println!(
            "- the sender got {} error(s), first: {}",
            errors.len(),
            errors[0]
        );
    }
    let p95 = Duration::from_micros(per.p95);
    let verdict = if loss == 0 && p95 < TARGET_P95 {
        "met"
    } else {
        "MISSED"
    };
    println!(
        "- target (p95 per recipient < {} ms, no loss): {verdict}",
        TARGET_P95.as_millis()
    );
    Ok(())
}

/// A `chat` request carrying `text`.
fn chat_frame(text: &str) -> Message {
    let msg = ClientMsg::Chat {
        id: None,
        text: text.to_owned(),
    };
    // A struct of a string and an absent id always serialises.
    Message::text(serde_json::to_string(&msg).unwrap_or_default())
}

fn row(label: &str, s: &Summary) {
    println!(
        "| {label} | {} | {} | {} | {} | {} |",
        s.n,
        ms(s.p50),
        ms(s.p95),
        ms(s.p99),
        ms(s.max)
    );
}

/// One member: connect and join (holding one of the `permits`), then read until told to stop.
async fn member(
    i: usize,
    ws_url: Arc<str>,
    room: RoomId,
    permits: Arc<Semaphore>,
    sh: Arc<Shared>,
    join_timeout: Duration,
    hard_deadline: tokio::time::Instant,
) -> MemberOut {
    let mut out = MemberOut {
        lat_us: vec![MISSING; sh.messages],
        duplicates: 0,
        ended: None,
    };
    let joined = async {
        let _permit = permits.acquire().await?;
        let mut ws = client::connect(&ws_url).await?;
        client::join(&mut ws, &room, &format!("m{i:05}"), join_timeout).await?;
        anyhow::Ok(ws)
    };
    let mut ws = tokio::select! {
        r = joined => match r {
            Ok(ws) => ws,
            Err(e) => {
                if let Ok(mut first) = sh.first_error.lock() {
                    first.get_or_insert_with(|| format!("{e:#}"));
                }
                sh.failed.fetch_add(1, Relaxed);
                return out;
            }
        },
        _ = sh.cancel.cancelled() => return out,
    };
    sh.joined.fetch_add(1, Relaxed);
    let mut got = 0;
    loop {
        let frame = tokio::select! {
            _ = sh.cancel.cancelled() => break,
            _ = sleep_until(hard_deadline) => {
                out.ended = Some("hit the run's time limit".into());
                break;
            }
            f = ws.next() => f,
        };
        match frame {
            Some(Ok(Message::Text(t))) => {
                let now = sh.base.elapsed().as_micros() as u64;
                if !t.starts_with(CHAT_PREFIX) {
                    continue;
                }
                let Ok(ChatEvent { message }) = serde_json::from_str::<ChatEvent>(&t) else {
                    continue;
                };
                let mut words = message.text.split(' ');
                if words.next() != Some("bench") {
                    continue;
                }
                let (Some(seq), Some(sent)) = (words.next(), words.next()) else {
                    sh.warm.fetch_add(1, Relaxed);
                    continue;
                };
                let (Ok(seq), Ok(sent)) = (seq.parse::<usize>(), sent.parse::<u64>()) else {
                    continue;
                };
                match out.lat_us.get_mut(seq) {
                    Some(slot) if *slot == MISSING => {
                        *slot = now.saturating_sub(sent).min(u64::from(MISSING - 1)) as u32;
                        got += 1;
                        if got == sh.messages {
                            sh.done.fetch_add(1, Relaxed);
                        }
                    }
                    Some(_) => out.duplicates += 1,
                    None => {}
                }
            }
            Some(Ok(Message::Close(f))) => {
                let why = f
                    .map(|f| format!("{} {}", u16::from(f.code), f.reason))
                    .unwrap_or_default();
                out.ended = Some(format!("closed by the server ({why})"));
                break;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                out.ended = Some(format!("read error: {e}"));
                break;
            }
            None => {
                out.ended = Some("connection ended".into());
                break;
            }
        }
    }
    out
}
