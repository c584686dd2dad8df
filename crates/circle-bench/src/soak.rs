//! `circle-load soak`: a bounded run of churn against the release server, watching for leaks and for
//! harm to a meeting that stays.
//!
//! # What runs
//! - **The canary**: one room, two members with voice who stay for the whole run. The speaker sends
//!   50 packets/s and a chat line every few seconds; the listener counts the packets it receives from
//!   the speaker's stream and the chat lines. Loss is sent − received between two barriers (sending
//!   stopped, the listener's socket read empty), so nothing in flight is counted as lost.
//! - **Churn**: members join `--rooms` rooms at `--join-rate` per second. Each stays a random time
//!   and meanwhile chats, raises and lowers its hand, and (a `--voice-share` of them) starts voice,
//!   unmutes and sends, re-offers (a fresh media session replacing the old one), and drops its
//!   websocket without closing it and resumes with its token. Most leave with `leave`; some drop and
//!   never come back, so the server's grace timer ends them.
//!
//! # What is measured
//! The server's resident memory (`VmRSS` in `/proc/PID/status`, and its anonymous part `RssAnon`,
//! heap and stacks, on which the verdict is made: the rest is mostly the binary's code, paged in as
//! code paths are first used), open file descriptors (entries of
//! `/proc/PID/fd`), threads (entries of `/proc/PID/task`; tokio's tasks are not visible from outside
//! and the server exposes no count of them) and rooms (`/healthz`). They are read at *quiet points*:
//! churn paused, every churn member gone (left, or timed out after the grace period), only the canary
//! in. Descriptors are counted once no connection is still closing (a websocket lingers after its
//! close frame; the wait is bounded by [`FD_SETTLE`], so a connection that never closes is still
//! counted), and shown by kind. The first quiet point follows the warm-up; the last follows the end
//! of churn. The run passes when anonymous memory, descriptors and threads at the last are within
//! the tolerance (5 %) of the first, the canary lost no packet and no chat line, and no churn member
//! failed. Figures are also printed every `--report-secs`.
//!
//! Beside them, every report shows the machine's load and how the server was scheduled: how much of
//! a CPU it ran and how long its threads waited, ready, for one (`/proc/PID/task/*/schedstat`), and
//! CPU pressure where the kernel keeps it. Packets lost at the relay's receive buffer while the server
//! waited for a CPU are a starved machine; something still held at a quiet point is a leak.
//!
//! Traffic goes to 127.0.0.1 only; the run is bounded by `--minutes` plus two quiet points (each at
//! most the longest stay, the grace period and [`QUIET_MARGIN`]).

use crate::{
    cpu::CpuSample,
    procfs::{Fds, Sched, cpu_pressure_total, machine_load},
    server::{ServerChild, create_voice_room},
    session::{Counters, Session},
    stats::mib,
};
use anyhow::{Context, Result, ensure};
use circle_protocol::{ClientMsg, RoomId};
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};
use tokio::{
    task::JoinSet,
    time::{Instant, MissedTickBehavior, interval, sleep},
};
use tokio_util::sync::CancellationToken;

/// Time for the last churn members to finish and the server to settle, on top of the longest stay
/// and the grace period, before a quiet point is measured.
const QUIET_MARGIN: Duration = Duration::from_secs(15);
/// How often the canary speaker sends a chat line.
const CANARY_CHAT_EVERY: Duration = Duration::from_secs(5);
/// How long after the canary speaker stops sending its last packets may still be on their way.
const CANARY_SETTLE: Duration = Duration::from_millis(300);
/// Errors from churn members printed as they happen (the rest are counted).
const ERRORS_SHOWN: u64 = 10;
/// The server's TCP connections at a quiet point: the canary's two websockets.
const CANARY_CONNECTIONS: usize = 2;
/// Longest wait at a quiet point for connections still closing (a websocket lingers up to 2 s
/// after its close frame, and a starved server takes longer) before descriptors are counted
/// anyway. A connection that never closes is counted: the wait only delays a leak's reading.
const FD_SETTLE: Duration = Duration::from_secs(20);

/// `circle-load soak` options.
#[derive(clap::Args, Debug)]
pub struct SoakArgs {
    /// Minutes of churn in all, the warm-up included.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=24 * 60))]
    minutes: u64,
    /// Minutes of churn before the first quiet point (the level later ones are compared with).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=60))]
    warmup_minutes: u64,
    /// Churn members joining per second.
    #[arg(long, default_value_t = 5.0)]
    join_rate: f64,
    /// Rooms the churn members join (the canary has its own).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000))]
    rooms: u64,
    /// Share of churn members who start voice.
    #[arg(long, default_value_t = 0.25)]
    voice_share: f64,
    /// Shortest stay of a churn member, in seconds.
    #[arg(long, default_value_t = 6)]
    min_stay: u64,
    /// Longest stay of a churn member, in seconds.
    #[arg(long, default_value_t = 14)]
    max_stay: u64,
    /// Most churn members in at once; joins wait while it is reached.
    #[arg(long, default_value_t = 300)]
    max_live: usize,
    /// The server's grace period for a dropped connection, in seconds (`[rooms] grace_secs`).
    #[arg(long, default_value_t = 10)]
    grace_secs: u64,
    /// Room chat messages each room keeps for late joiners (`[rooms] chat_history`). Small, so the
    /// churn fills every room's history during the warm-up: a history filling up is growth by
    /// design, not a leak, and would otherwise show as one.
    #[arg(long, default_value_t = 20)]
    chat_history: u64,
    /// Seconds between progress reports.
    #[arg(long, default_value_t = 30)]
    report_secs: u64,
    /// Allowed growth of memory, descriptors and threads from the first quiet point to the last, in
    /// percent.
    #[arg(long, default_value_t = 5.0)]
    tolerance: f64,
    /// Seed for the churn's choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The server binary to start (default: `circle` next to this executable).
    #[arg(long)]
    server_bin: Option<PathBuf>,
}

/// The server's resources at one moment.
#[derive(Clone, Copy, Debug)]
struct Resources {
    rss: u64,
    anon: u64,
    fds: Fds,
    threads: usize,
    rooms: u64,
}

impl Resources {
    /// Reads them now. The `/healthz` request (for the room count) comes first, so that its own
    /// connection is not among the descriptors counted after it (it may still be closing, though:
    /// see [`settle_connections`]).
    async fn read(server: &ServerChild) -> Result<Resources> {
        let rooms = rooms(server).await?;
        Resources::read_proc(server, rooms)
    }

    fn read_proc(server: &ServerChild, rooms: u64) -> Result<Resources> {
        let pid = server.pid();
        let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
            .with_context(|| format!("reading /proc/{pid}/task"))?
            .count();
        Ok(Resources {
            rss: server.rss_bytes()?,
            anon: server.rss_anon_bytes()?,
            fds: Fds::read(pid),
            threads,
            rooms,
        })
    }

    fn line(&self) -> String {
        format!(
            "RSS {} MiB (anonymous {}), fds {}, threads {}, rooms {}",
            mib(self.rss),
            mib(self.anon),
            self.fds.line(),
            self.threads,
            self.rooms
        )
    }
}

/// The live room count from `/healthz`.
async fn rooms(server: &ServerChild) -> Result<u64> {
    let health: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/healthz", server.base))
        .timeout(Duration::from_secs(10))
        .send()
        .await?
        .json()
        .await?;
    Ok(health["rooms"].as_u64().unwrap_or(0))
}

/// Waits (at most [`FD_SETTLE`]) until none of the server's connections is still closing and only
/// the canary's are open, so that a quiet point counts what stays open, not what is on its way
/// out. Returns how long it waited, or `None` when the bound passed first.
async fn settle_connections(server: &ServerChild) -> Option<Duration> {
    let start = Instant::now();
    loop {
        let fds = Fds::read(server.pid());
        if fds.tcp_closing == 0 && fds.tcp_established <= CANARY_CONNECTIONS {
            return Some(start.elapsed());
        }
        if start.elapsed() >= FD_SETTLE {
            return None;
        }
        sleep(Duration::from_millis(100)).await;
    }
}

/// How the server and the machine fared between two moments: what tells a starved machine (the
/// server ready to run but waiting for a CPU; the kernel dropping datagrams its socket had no room
/// for) from a leak (something still held at a quiet point).
#[derive(Clone, Copy)]
struct Machine {
    sched: Sched,
    cpu: Option<CpuSample>,
    pressure: Option<Duration>,
    at: Instant,
}

impl Machine {
    fn read(pid: u32) -> Machine {
        Machine {
            sched: Sched::read(pid),
            cpu: CpuSample::take(Some(pid)).ok(),
            pressure: cpu_pressure_total(),
            at: Instant::now(),
        }
    }

    /// E.g. `server ran 31 % of a CPU and waited 9 % for one; others used 140 %; CPU pressure 40 %`.
    fn since(&self, earlier: &Machine) -> String {
        let wall = (self.at - earlier.at).as_secs_f64().max(1e-3);
        let pct = |d: Duration| d.as_secs_f64() / wall * 100.0;
        let s = earlier.sched.until(&self.sched);
        let mut out = format!(
            "server ran {:.0} % of a CPU and waited {:.0} % of the time for one",
            pct(s.ran),
            pct(s.waited)
        );
        if let (Some(a), Some(b)) = (earlier.cpu, self.cpu) {
            out += &format!(
                "; other programs used {:.0} % of a CPU",
                pct(a.until(&b).others)
            );
        }
        if let (Some(a), Some(b)) = (earlier.pressure, self.pressure) {
            out += &format!(
                "; some task waited for a CPU {:.0} % of the time",
                pct(b.saturating_sub(a))
            );
        }
        out
    }
}

/// Datagrams the kernel dropped for want of receive-buffer room, summed over the UDP sockets of
/// `/proc/net/udp` that `pick(local port, inode)` selects. A closed socket's count is gone, so read
/// it while the socket is open.
fn udp_drops(pick: impl Fn(u16, u64) -> bool) -> u64 {
    let Ok(table) = std::fs::read_to_string("/proc/net/udp") else {
        return 0;
    };
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let port = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
            let inode: u64 = f.get(9)?.parse().ok()?;
            let drops: u64 = f.get(12)?.parse().ok()?;
            pick(port, inode).then_some(drops)
        })
        .sum()
}

/// The inodes of a process's open sockets.
fn socket_inodes(pid: u32) -> Vec<u64> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let link = std::fs::read_link(e.ok()?.path()).ok()?;
        let link = link.to_str()?;
        link.strip_prefix("socket:[")?
            .strip_suffix(']')?
            .parse()
            .ok()
    })
    .collect()
}

/// Kernel drops at the server's UDP sockets (the voice relay) and at the canary listener's.
fn canary_drops(server_pid: u32, listener: &Session) -> (u64, u64) {
    let inodes = socket_inodes(server_pid);
    let server = udp_drops(|_, inode| inodes.contains(&inode));
    let port = listener.peer.as_ref().map(|p| p.local_addr().port());
    let listener = udp_drops(|p, _| Some(p) == port);
    (server, listener)
}

/// Everything the churn shares.
struct Churn {
    ws_url: String,
    rooms: Vec<RoomId>,
    args: SoakArgs,
    counters: Counters,
    /// Churn members in the room now.
    live: AtomicU64,
    /// Churn members whose script failed (each counted once).
    failed: AtomicU64,
    /// When churn started, for the time stamps of failures.
    started: Instant,
}

/// Runs the soak and prints its report; fails when the run itself could not be carried out.
pub async fn run(a: SoakArgs) -> Result<()> {
    ensure!(
        a.join_rate > 0.0 && a.join_rate <= 200.0,
        "--join-rate must be in (0, 200]"
    );
    ensure!(
        (0.0..=1.0).contains(&a.voice_share),
        "--voice-share must be in [0, 1]"
    );
    ensure!(
        a.min_stay >= 1 && a.min_stay <= a.max_stay,
        "need 1 <= --min-stay <= --max-stay"
    );
    ensure!(
        a.warmup_minutes < a.minutes,
        "--warmup-minutes must be less than --minutes"
    );
    let env = [
        ("CIRCLE_ROOMS__GRACE_SECS", a.grace_secs.to_string()),
        ("CIRCLE_ROOMS__MAX_ROOMS", (a.rooms + 10).to_string()),
        ("CIRCLE_ROOMS__CHAT_HISTORY", a.chat_history.to_string()),
    ];
    let server = ServerChild::start(a.server_bin.as_deref(), &env).await?;
    let ws_url = format!("{}/ws", server.base.replacen("http", "ws", 1));
    println!(
        "soak: {} min of churn ({} min warm-up): {} joins/s into {} rooms, stays {}-{} s, {:.0} % with voice; grace {} s, chat history {}; server pid {}",
        a.minutes,
        a.warmup_minutes,
        a.join_rate,
        a.rooms,
        a.min_stay,
        a.max_stay,
        a.voice_share * 100.0,
        a.grace_secs,
        a.chat_history,
        server.pid()
    );

    // The canary: a listener, then a speaker who unmutes and sends.
    let canary_room = create_voice_room(&server.base, "canary").await?;
    let counters = Counters::default();
    let mut listener = Session::join(&ws_url, &canary_room, "canary-listener", &counters).await?;
    listener.watch_chat = Some("canary ".into());
    listener.start_voice(&counters).await?;
    listener.peer.as_ref().context("voice")?.stop_sending();
    let mut speaker = Session::join(&ws_url, &canary_room, "canary-speaker", &counters).await?;
    speaker.start_voice(&counters).await?;
    speaker
        .request(
            ClientMsg::SetSelfMute {
                id: None,
                muted: false,
            },
            &counters,
        )
        .await?;
    let stream = speaker.stream.clone().context("the speaker's stream id")?;
    // Wait until the speaker is heard, then take the first barrier.
    let deadline = Instant::now() + Duration::from_secs(20);
    while listener
        .peer
        .as_ref()
        .context("voice")?
        .received_from(&stream)
        == 0
    {
        ensure!(
            Instant::now() < deadline,
            "the canary listener hears nothing"
        );
        listener
            .pump_until(Instant::now() + Duration::from_millis(50), &counters)
            .await?;
        speaker
            .pump_until(Instant::now() + Duration::from_millis(1), &counters)
            .await?;
    }
    let (sent0, recv0) = canary_barrier(&mut speaker, &mut listener, &stream, &counters).await?;
    let drops0 = canary_drops(server.pid(), &listener);
    let rooms_now = rooms(&server).await?;
    // The `/healthz` request's own connection may still be closing.
    settle_connections(&server).await;
    let start = Resources::read_proc(&server, rooms_now)?;
    println!("start (canary in, no churn yet): {}", start.line());
    println!("  machine: {}", machine_load());
    let machine0 = Machine::read(server.pid());

    let mut rooms = Vec::new();
    for i in 0..a.rooms {
        rooms.push(create_voice_room(&server.base, &format!("churn {i}")).await?);
    }
    let report_every = Duration::from_secs(a.report_secs.max(1));
    let warmup = Duration::from_secs(a.warmup_minutes * 60);
    let main = Duration::from_secs((a.minutes - a.warmup_minutes) * 60);
    let quiet_wait = Duration::from_secs(a.max_stay + a.grace_secs) + QUIET_MARGIN;
    let churn = Arc::new(Churn {
        ws_url: ws_url.clone(),
        rooms,
        args: a,
        counters: Counters::default(),
        live: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        started: Instant::now(),
    });

    // The canary keeps going through everything below, on its own tasks.
    let stop_canary = CancellationToken::new();
    let listener_task = tokio::spawn(canary_listen(listener, stop_canary.clone()));
    let speaker_task = tokio::spawn(canary_speak(speaker, stop_canary.clone()));

    let t0 = churn.started;
    let mut next_member = 0u64;
    let mut last = machine0;
    next_member = churn_for(
        &churn,
        warmup,
        next_member,
        &mut last,
        report_every,
        &server,
    )
    .await?;
    let baseline = quiet_point(&churn, &server, quiet_wait, "after warm-up").await?;
    let machine_warm = Machine::read(server.pid());
    churn_for(&churn, main, next_member, &mut last, report_every, &server).await?;
    let end = quiet_point(&churn, &server, quiet_wait, "at the end").await?;
    let machine_end = Machine::read(server.pid());

    // Stop the canary and count.
    stop_canary.cancel();
    let (mut listener, listener_err) = listener_task.await?;
    let (mut speaker, chat_sent, speaker_err) = speaker_task.await?;
    let (sent1, recv1) = canary_barrier(&mut speaker, &mut listener, &stream, &counters).await?;
    let drops1 = canary_drops(server.pid(), &listener);
    let peak = server.peak_rss_bytes()?;
    let sent = sent1 - sent0;
    let received = recv1 - recv0;
    let lost = sent.saturating_sub(received);
    let chat_expected: Vec<String> = (1..=chat_sent).map(|k| format!("canary {k}")).collect();
    let chat_ok = listener.chat_seen == chat_expected;
    let chat_seen = listener.chat_seen.len() as u64;
    speaker.leave(&counters).await?;
    listener.leave(&counters).await?;

    let c = &churn.counters;
    let wall = t0.elapsed();
    println!();
    println!("churn over {:.1} min:", wall.as_secs_f64() / 60.0);
    println!(
        "  joins {}, leaves {}, drops {} (resumed {}, abandoned {}), voice sessions {}, re-offers {}, server offers answered {}, chat lines {}, hand raises {}",
        c.joins.load(Relaxed),
        c.leaves.load(Relaxed),
        c.drops.load(Relaxed),
        c.resumes.load(Relaxed),
        c.abandoned.load(Relaxed),
        c.voice_sessions.load(Relaxed),
        c.reoffers.load(Relaxed),
        c.server_offers_answered.load(Relaxed),
        c.chats.load(Relaxed),
        c.hands.load(Relaxed),
    );
    println!(
        "  failed members {}, error replies: {}",
        churn.failed.load(Relaxed),
        c.errors_line()
    );
    println!(
        "canary: {sent} packets sent, {received} received, {lost} lost; chat {} of {chat_sent} lines arrived in order{}{}",
        chat_seen,
        listener_err
            .map(|e| format!("; listener: {e}"))
            .unwrap_or_default(),
        speaker_err
            .map(|e| format!("; speaker: {e}"))
            .unwrap_or_default(),
    );
    println!(
        "  datagrams dropped by the kernel for a full receive buffer meanwhile: {} at the server's UDP sockets (all voice, not only the canary's), {} at the canary listener's",
        drops1.0.saturating_sub(drops0.0),
        drops1.1.saturating_sub(drops0.1)
    );
    println!("canary error replies: {}", counters.errors_line());
    println!("server peak RSS (VmHWM): {} MiB", mib(peak));
    println!("machine over the churn: {}", machine_end.since(&machine0));
    println!(
        "  after warm-up to the end: {}",
        machine_end.since(&machine_warm)
    );
    println!("server log: {}", server.log.display());
    println!();
    println!("start:          {}", start.line());
    println!("after warm-up:  {}", baseline.line());
    println!("at the end:     {}", end.line());
    let tol = churn.args.tolerance;
    let within = |name: &str, base: f64, now: f64| {
        let change = (now - base) / base * 100.0;
        let ok = change <= tol;
        println!(
            "  {name:<8} {change:+6.1} % vs after warm-up (limit +{tol} %): {}",
            if ok { "ok" } else { "OVER" }
        );
        ok
    };
    // Judged on anonymous memory: file-backed pages are the binary's code, which grows as code
    // paths are used for the first time and cannot leak. The whole RSS is shown too.
    println!(
        "  RSS      {:+6.1} % vs after warm-up (shown, not judged)",
        (end.rss as f64 - baseline.rss as f64) / baseline.rss as f64 * 100.0
    );
    let mut pass = within("anon mem", baseline.anon as f64, end.anon as f64);
    pass &= within("fds", baseline.fds.total as f64, end.fds.total as f64);
    pass &= within("threads", baseline.threads as f64, end.threads as f64);
    let canary_ok = lost == 0 && chat_ok;
    println!(
        "  canary   {lost} packets and {} chat lines lost: {}",
        chat_sent.saturating_sub(chat_seen),
        if canary_ok { "ok" } else { "LOSS" }
    );
    pass &= canary_ok;
    // A member who could not do what it came for (join, voice, resume) is harm the run caused,
    // whatever the server's memory says.
    let failed = churn.failed.load(Relaxed);
    println!(
        "  members  {failed} churn members failed: {}",
        if failed == 0 { "ok" } else { "FAILED" }
    );
    pass &= failed == 0;
    println!("{}", if pass { "PASS" } else { "FAIL" });
    // A reading, not a verdict: what the figures above point to when something failed.
    let relay_drops = drops1.0.saturating_sub(drops0.0);
    let s = machine_warm.sched.until(&machine_end.sched);
    let waited =
        s.waited.as_secs_f64() / (machine_end.at - machine_warm.at).as_secs_f64().max(1e-3);
    if lost > 0 && relay_drops > 0 {
        println!(
            "reading: the canary's loss coincides with {relay_drops} datagrams the kernel dropped at the relay's full receive buffer; the server waited for a CPU {:.0} % of the time. Loss at a full buffer while the server waits for a CPU is a starved machine, not a fault in the relay's logic; on a quiet machine it should not happen.",
            waited * 100.0
        );
    } else if lost > 0 {
        println!(
            "reading: the canary lost packets the kernel did not drop at any receive buffer: look in the relay (forwarding, gating), not at the machine."
        );
    }
    if end.fds.total > baseline.fds.total {
        println!(
            "reading: more descriptors at the end than after warm-up, after waiting for closing connections: {} vs {}. Compare the kinds: an extra established connection or UDP socket is held by the server.",
            end.fds.line(),
            baseline.fds.line()
        );
    }
    Ok(())
}

/// Stops the speaker's packets, waits until the listener has read everything on its way, and
/// returns (sent, received from the speaker); then sends again.
async fn canary_barrier(
    speaker: &mut Session,
    listener: &mut Session,
    stream: &str,
    c: &Counters,
) -> Result<(u64, u64)> {
    let sp = speaker.peer.clone().context("speaker voice")?;
    let li = listener.peer.clone().context("listener voice")?;
    sp.stop_sending();
    let until = Instant::now() + CANARY_SETTLE;
    listener.pump_until(until, c).await?;
    li.sync().await?;
    let counts = (sp.sent(), li.received_from(stream));
    sp.start_sending();
    Ok(counts)
}

/// The canary listener: answers offers and collects chat lines until told to stop.
async fn canary_listen(mut s: Session, stop: CancellationToken) -> (Session, Option<String>) {
    let c = Counters::default();
    let mut err = None;
    while !stop.is_cancelled() {
        if let Err(e) = s
            .pump_until(Instant::now() + Duration::from_millis(200), &c)
            .await
        {
            err = Some(e.to_string());
            break;
        }
    }
    (s, err)
}

/// The canary speaker: a numbered chat line every few seconds until told to stop; returns how many
/// it sent.
async fn canary_speak(mut s: Session, stop: CancellationToken) -> (Session, u64, Option<String>) {
    let c = Counters::default();
    let mut sent = 0;
    let mut next = Instant::now() + CANARY_CHAT_EVERY;
    let mut err = None;
    while !stop.is_cancelled() {
        let r = async {
            s.pump_until(next.min(Instant::now() + Duration::from_millis(200)), &c)
                .await?;
            if Instant::now() >= next {
                s.request(
                    ClientMsg::Chat {
                        id: None,
                        text: format!("canary {}", sent + 1),
                    },
                    &c,
                )
                .await?;
                sent += 1;
                next += CANARY_CHAT_EVERY;
            }
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = r {
            err = Some(e.to_string());
            break;
        }
    }
    (s, sent, err)
}

/// Starts churn members at the join rate for `length`, printing a report every `report_every`;
/// returns the next member number.
async fn churn_for(
    churn: &Arc<Churn>,
    length: Duration,
    mut n: u64,
    last: &mut Machine,
    report_every: Duration,
    server: &ServerChild,
) -> Result<u64> {
    let end = Instant::now() + length;
    let mut tick = interval(Duration::from_secs_f64(1.0 / churn.args.join_rate));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut next_report = Instant::now() + report_every;
    let mut members = JoinSet::new();
    while Instant::now() < end {
        tokio::select! {
            _ = tick.tick() => {
                if churn.live.load(Relaxed) < churn.args.max_live as u64 {
                    n += 1;
                    churn.live.fetch_add(1, Relaxed);
                    members.spawn(member(churn.clone(), n));
                }
            }
            Some(_) = members.join_next(), if !members.is_empty() => {}
        }
        if Instant::now() >= next_report {
            next_report += report_every;
            let r = Resources::read(server).await?;
            let now = Machine::read(server.pid());
            println!(
                "[{:>5.1} min] {}; churn members in {}, joins {}, failed {}\n             {}; {}",
                churn.started.elapsed().as_secs_f64() / 60.0,
                r.line(),
                churn.live.load(Relaxed),
                churn.counters.joins.load(Relaxed),
                churn.failed.load(Relaxed),
                machine_load(),
                now.since(last),
            );
            *last = now;
        }
    }
    // The members still in finish on their own; the quiet point waits for them.
    members.detach_all();
    Ok(n)
}

/// Waits until every churn member has finished and the server has ended abandoned sessions, then
/// reads the server's resources.
async fn quiet_point(
    churn: &Arc<Churn>,
    server: &ServerChild,
    wait: Duration,
    label: &str,
) -> Result<Resources> {
    let deadline = Instant::now() + wait;
    while churn.live.load(Relaxed) > 0 && Instant::now() < deadline {
        sleep(Duration::from_millis(200)).await;
    }
    let stragglers = churn.live.load(Relaxed);
    // Abandoned sessions end when their grace period runs out; give it that long after the last.
    sleep(Duration::from_secs(churn.args.grace_secs) + Duration::from_secs(3)).await;
    let rooms = rooms(server).await?;
    // Connections of members who just left (and this tool's own `/healthz` request) may still be
    // closing: a descriptor on its way out is not a leak, so wait for them, with a bound.
    let settled = settle_connections(server).await;
    let r = Resources::read_proc(server, rooms)?;
    println!(
        "quiet point {label}: {}{}",
        r.line(),
        if stragglers > 0 {
            format!(" ({stragglers} churn members still running)")
        } else {
            String::new()
        }
    );
    match settled {
        Some(waited) => println!(
            "  connections settled after {:.1} s; {}",
            waited.as_secs_f64(),
            machine_load()
        ),
        None => println!(
            "  connections NOT settled after {FD_SETTLE:?}: counted as they are; {}",
            machine_load()
        ),
    }
    Ok(r)
}

/// One churn member's life. Failures are counted, not fatal: the soak is about the server surviving
/// them.
async fn member(churn: Arc<Churn>, n: u64) {
    let result = member_script(&churn, n).await;
    churn.live.fetch_sub(1, Relaxed);
    if let Err(e) = result {
        let failed = churn.failed.fetch_add(1, Relaxed) + 1;
        if failed <= ERRORS_SHOWN {
            eprintln!(
                "[{:>5.1} min] churn member {n}: {e:#}; {}",
                churn.started.elapsed().as_secs_f64() / 60.0,
                machine_load()
            );
        }
    }
}

async fn member_script(churn: &Churn, n: u64) -> Result<()> {
    let a = &churn.args;
    let c = &churn.counters;
    // Each member's choices come from the seed and its number, so a run can be repeated.
    let mut rng = StdRng::seed_from_u64(a.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ n);
    let room = &churn.rooms[rng.random_range(0..churn.rooms.len())];
    let mut s = Session::join(&churn.ws_url, room, &format!("m{n}"), c)
        .await
        .context("joining")?;
    let voice = rng.random_bool(a.voice_share);
    if voice {
        s.start_voice(c).await.context("starting voice")?;
        s.request(
            ClientMsg::SetSelfMute {
                id: None,
                muted: false,
            },
            c,
        )
        .await?;
    }
    let leave_at = Instant::now()
        + Duration::from_millis(rng.random_range(a.min_stay * 1000..=a.max_stay * 1000));
    let mut hand_up = false;
    while Instant::now() < leave_at {
        let pause = Duration::from_millis(rng.random_range(1000..3000));
        s.pump_until(Instant::now() + pause, c).await?;
        match rng.random_range(0..10) {
            0..=3 => {
                s.request(
                    ClientMsg::Chat {
                        id: None,
                        text: format!("hello from m{n}"),
                    },
                    c,
                )
                .await?;
                c.chats.fetch_add(1, Relaxed);
            }
            4 | 5 => {
                let msg = if hand_up {
                    ClientMsg::LowerHand {
                        id: None,
                        participant: None,
                    }
                } else {
                    c.hands.fetch_add(1, Relaxed);
                    ClientMsg::RaiseHand { id: None }
                };
                s.request(msg, c).await?;
                hand_up = !hand_up;
            }
            6 if voice => s.start_voice(c).await.context("re-offering")?,
            7 => {
                s.drop_connection(c);
                sleep(Duration::from_millis(rng.random_range(200..2000))).await;
                s.resume(c).await.context("resuming")?;
            }
            _ => {}
        }
    }
    if rng.random_bool(0.1) {
        // Gone without a word: the server ends the session when the grace period runs out.
        s.drop_connection(c);
        s.close_voice().await;
        c.abandoned.fetch_add(1, Relaxed);
        return Ok(());
    }
    s.leave(c).await.context("leaving")
}
