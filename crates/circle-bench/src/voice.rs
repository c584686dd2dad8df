//! `circle-load voice`: how many voice packets the relay forwards, at what cost and delay, with many
//! rooms at once. Members are [`voice_member`](crate::voice_member)s: real WebRTC clients to the
//! relay that count forwarded packets from their headers and decrypt and check a sample.
//!
//! A run: start the server (release binary, loopback), create `--rooms` rooms, join `--size` members
//! into each (`--speakers` of them unmute), wait until every member hears every speaker of its room,
//! warm up, then measure for `--seconds`: packets forwarded (received by members), the packets the
//! speakers sent times the listeners each should reach (loss is the difference), the server's CPU
//! time and RSS from `/proc`, this tool's own CPU time (a starved tool shows there), and the
//! forwarding delay of the sampled packets. The run is bounded: every wait has a deadline, and the
//! server child is killed when the run ends, however it ends.

use crate::cpu::CpuSample;
use crate::server::{ServerChild, create_voice_room};
use crate::stats::{self, summarize};
use crate::voice_member::{MemberStats, Role, RunState, SendLog, member};
use anyhow::{Result, bail};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

#[derive(clap::Args)]
pub struct VoiceArgs {
    /// Rooms at once.
    #[arg(long, default_value_t = 1)]
    rooms: usize,
    /// Members per room, speakers included.
    #[arg(long, default_value_t = 51)]
    size: usize,
    /// Members per room who speak (unmuted, 50 packets/s each); the rest listen.
    #[arg(long, default_value_t = 1)]
    speakers: usize,
    /// Length of the measurement, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seconds of sending before the measurement starts.
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// One in this many forwarded packets is decrypted and checked (and gives a delay sample).
    #[arg(long, default_value_t = 10)]
    sample: u64,
    /// Members joining at once (websocket, offer/answer, ICE, DTLS).
    #[arg(long, default_value_t = 32)]
    join_concurrency: usize,
    /// Longest time for everyone to join and connect, in seconds.
    #[arg(long, default_value_t = 600)]
    setup_timeout: u64,
    /// Relay workers (`CIRCLE_MEDIA__WORKERS`); unset: the server's default.
    #[arg(long)]
    workers: Option<usize>,
    /// The `circle` binary (default: next to this one).
    #[arg(long)]
    server_bin: Option<PathBuf>,
}

/// Longest wait, once speakers send, until every member hears every speaker of its room.
const HEAR_EVERYONE_WAIT: Duration = Duration::from_secs(30);

/// How long a setup wait goes on with no member making progress before the run goes on without
/// the stragglers.
const STALL: Duration = Duration::from_secs(30);

pub async fn run(a: VoiceArgs) -> Result<()> {
    if a.rooms == 0 || a.size < 2 || a.speakers == 0 || a.speakers > a.size || a.sample == 0 {
        bail!("need --rooms ≥ 1, --size ≥ 2, 1 ≤ --speakers ≤ --size, --sample ≥ 1");
    }
    let members = a.rooms * a.size;
    let mut env = vec![
        ("CIRCLE_ROOMS__MAX_PARTICIPANTS", (a.size + 10).to_string()),
        (
            "CIRCLE_LIMITS__MAX_CONNECTIONS",
            (members + 1000).to_string(),
        ),
    ];
    if let Some(w) = a.workers {
        env.push(("CIRCLE_MEDIA__WORKERS", w.to_string()));
    }
    let server = ServerChild::start(a.server_bin.as_deref(), &env).await?;
    let rss_idle = server.rss_bytes()?;
    let ws_url = format!("{}/ws", server.base.replacen("http", "ws", 1));

    // Enough stream for the longest run: setup waits, warm-up, measurement and some slack.
    let stream_secs = HEAR_EVERYONE_WAIT.as_secs() + a.warmup + a.seconds + 10;
    let packets = usize::try_from(stream_secs * 50)?;
    let run = Arc::new(RunState {
        sending: false.into(),
        measuring: false.into(),
        stop: CancellationToken::new(),
        logs: (0..a.rooms * a.speakers)
            .map(|_| SendLog::new(packets))
            .collect(),
        sample: a.sample,
    });
    let _stop_on_exit = run.stop.clone().drop_guard();

    eprintln!(
        "joining {} rooms of {} ({} speakers each): {members} members",
        a.rooms, a.size, a.speakers
    );
    let started = Instant::now();
    let entries = join_all(&a, &server.base, &ws_url, &run).await?;
    let deadline = Instant::now() + Duration::from_secs(a.setup_timeout);
    wait_all("connected", &entries, deadline, |m| {
        m.connected.load(Relaxed)
    })
    .await?;
    // Members that never came up (on a starved machine a handshake can stall) are left out of
    // the run, and the report says how many.
    let entries: Vec<Entry> = entries
        .into_iter()
        .filter(|e| e.stats.connected.load(Relaxed))
        .collect();
    let speakers: Vec<&Entry> = entries.iter().filter(|e| e.speaker).collect();
    let speakers_owned: Vec<Entry> = speakers.iter().map(|e| (*e).clone()).collect();
    wait_all("speakers ready", &speakers_owned, deadline, |m| {
        m.ready.load(Relaxed)
    })
    .await?;
    let joined_in = started.elapsed();
    let rss_joined = server.rss_bytes()?;
    eprintln!(
        "{} of {members} members connected in {:.1} s; speakers start",
        entries.len(),
        joined_in.as_secs_f64()
    );

    // Per room: its speakers and members that are up.
    let mut room_speakers = vec![0u64; a.rooms];
    let mut room_members = vec![0u64; a.rooms];
    for e in &entries {
        room_members[e.room] += 1;
        room_speakers[e.room] += u64::from(e.speaker);
    }
    run.sending.store(true, Relaxed);
    let hears_everyone = |e: &Entry| {
        e.stats.sources.load(Relaxed) as u64 >= room_speakers[e.room] - u64::from(e.speaker)
    };
    let hear_deadline = Instant::now() + HEAR_EVERYONE_WAIT;
    loop {
        let missing = entries.iter().filter(|e| !hears_everyone(e)).count();
        if missing == 0 {
            break;
        }
        if Instant::now() > hear_deadline {
            // An overloaded relay can drop packets (or whole sessions, when ICE consent checks
            // are lost with them): measure anyway, the loss shows it.
            eprintln!("  {missing} members do not hear every speaker; measuring anyway");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(a.warmup)).await;

    let all: Vec<&Arc<MemberStats>> = entries.iter().map(|e| &e.stats).collect();
    let sent_by_room = |r: &mut Vec<u64>| {
        for e in &speakers {
            r[e.room] += e.stats.sent.load(Relaxed);
        }
    };
    let mut sent0 = vec![0u64; a.rooms];
    sent_by_room(&mut sent0);
    let got0: u64 = all.iter().map(|m| m.received.load(Relaxed)).sum();
    let cpu0 = CpuSample::take(Some(server.pid()))?;
    let udp0 = udp_buffer_errors();
    run.measuring.store(true, Relaxed);
    tokio::time::sleep(Duration::from_secs(a.seconds)).await;
    run.sending.store(false, Relaxed);
    let cpu1 = CpuSample::take(Some(server.pid()))?;
    let udp1 = udp_buffer_errors();
    run.measuring.store(false, Relaxed);
    let rss_load = server.rss_bytes()?;
    let mut sent1 = vec![0u64; a.rooms];
    sent_by_room(&mut sent1);
    // Each packet a speaker sent should reach every other member of its room that is up.
    let expected: u64 = (0..a.rooms)
        .map(|r| (sent1[r] - sent0[r]) * room_members[r].saturating_sub(1))
        .sum();
    let sent: u64 = (0..a.rooms).map(|r| sent1[r] - sent0[r]).sum();
    // Packets in flight when sending stopped still count: wait until the counts stop moving.
    let mut got = 0;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = all.iter().map(|m| m.received.load(Relaxed)).sum::<u64>() - got0;
        if now == got {
            break;
        }
        got = now;
    }
    let cpu = cpu0.until(&cpu1);
    let failed = all
        .iter()
        .filter(|m| m.failed.lock().is_ok_and(|f| f.is_some()))
        .count();
    let mut delays = Vec::new();
    for m in &all {
        let d = std::mem::take(&mut *m.delays_us.lock().unwrap_or_else(|e| e.into_inner()));
        delays.extend(d.into_iter().map(u64::from));
    }
    let report = Report {
        expected,
        connected: entries.len(),
        socket_drops: (udp1.0.saturating_sub(udp0.0), udp1.1.saturating_sub(udp0.1)),
        got,
        sent,
        wall: cpu.wall,
        server_cpu: cpu.server.unwrap_or_default(),
        tool_cpu: cpu.tool,
        others_cpu: cpu.others,
        delay: summarize(delays),
        decrypted: all.iter().map(|m| m.decrypted.load(Relaxed)).sum(),
        corrupt: all.iter().map(|m| m.corrupt.load(Relaxed)).sum(),
        failed,
        first_failure: all
            .iter()
            .find_map(|m| m.failed.lock().ok().and_then(|f| f.clone())),
        members,
        rss_idle,
        rss_joined,
        rss_load,
        joined_in,
    };
    report.print(&a);
    run.stop.cancel();
    Ok(())
}

/// Joins every member, `--join-concurrency` at a time; returns each one's stats and whether it
/// speaks. Each member's task runs until `run.stop`.
/// `RcvbufErrors` and `SndbufErrors` from the `Udp:` lines of `/proc/net/snmp` (zeros if absent).
fn udp_buffer_errors() -> (u64, u64) {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut lines = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return (0, 0);
    };
    let field = |name: &str| {
        let i = names.split_whitespace().position(|n| n == name)?;
        values.split_whitespace().nth(i)?.parse().ok()
    };
    (
        field("RcvbufErrors").unwrap_or(0),
        field("SndbufErrors").unwrap_or(0),
    )
}

/// One member as the run sees it.
#[derive(Clone)]
struct Entry {
    stats: Arc<MemberStats>,
    /// Its room's number.
    room: usize,
    speaker: bool,
}

async fn join_all(
    a: &VoiceArgs,
    base: &str,
    ws_url: &str,
    run: &Arc<RunState>,
) -> Result<Vec<Entry>> {
    let joining = Arc::new(Semaphore::new(a.join_concurrency.max(1)));
    let mut stats = Vec::new();
    let mut speaker = 0u32;
    for r in 0..a.rooms {
        let room = create_voice_room(base, &format!("voice load {r}")).await?;
        for i in 0..a.size {
            let role = if i < a.speakers {
                speaker += 1;
                Role::Speaker(speaker - 1)
            } else {
                Role::Listener
            };
            let s = Arc::new(MemberStats::default());
            stats.push(Entry {
                stats: s.clone(),
                room: r,
                speaker: matches!(role, Role::Speaker(_)),
            });
            let permit = joining.clone().acquire_owned().await?;
            let (ws_url, room, run, name) = (
                ws_url.to_owned(),
                room.clone(),
                run.clone(),
                format!("load {r}-{i}"),
            );
            // Hold the permit until this member is connected (or has failed), then let the next in.
            let watch = s.clone();
            tokio::spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(60);
                while !watch.connected.load(Relaxed)
                    && watch.failed.lock().is_ok_and(|f| f.is_none())
                    && Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                drop(permit);
            });
            tokio::spawn(member(ws_url, room, name, role, run, s));
        }
    }
    Ok(stats)
}

/// Waits until `done` holds for every member, or until nothing changed for [`STALL`] (or the
/// deadline): the caller goes on with those that made it. Fails only when none did.
async fn wait_all(
    what: &str,
    members: &[Entry],
    deadline: Instant,
    done: impl Fn(&MemberStats) -> bool,
) -> Result<()> {
    let mut next_report = Instant::now() + Duration::from_secs(5);
    let (mut last, mut last_change) = (0, Instant::now());
    loop {
        let n = members.iter().filter(|e| done(&e.stats)).count();
        if n != last {
            (last, last_change) = (n, Instant::now());
        }
        if n == members.len() {
            return Ok(());
        }
        if Instant::now() > deadline || last_change.elapsed() > STALL {
            if n == 0 {
                let why = members
                    .iter()
                    .find_map(|e| e.stats.failed.lock().ok().and_then(|f| f.clone()));
                bail!("{what}: none in time ({why:?})");
            }
            eprintln!(
                "  {what}: {n} of {}; going on without the rest",
                members.len()
            );
            return Ok(());
        }
        if Instant::now() > next_report {
            eprintln!("  {what}: {n} of {}", members.len());
            next_report += Duration::from_secs(5);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Report {
    /// Packets the members should have received: each sent packet times the other members.
    expected: u64,
    /// Packets they received.
    got: u64,
    sent: u64,
    wall: Duration,
    server_cpu: Duration,
    tool_cpu: Duration,
    others_cpu: Duration,
    delay: stats::Summary,
    decrypted: u64,
    corrupt: u64,
    failed: usize,
    first_failure: Option<String>,
    members: usize,
    /// Members that came up (the rest are left out).
    connected: usize,
    /// Datagrams the kernel dropped for full UDP receive / send buffers, machine-wide (relay and
    /// load tool alike): loss that happened at a socket rather than in the relay.
    socket_drops: (u64, u64),
    rss_idle: u64,
    rss_joined: u64,
    rss_load: u64,
    joined_in: Duration,
}

impl Report {
    fn print(&self, a: &VoiceArgs) {
        let wall = self.wall.as_secs_f64();
        let server = self.server_cpu.as_secs_f64();
        let loss = if self.expected == 0 {
            0.0
        } else {
            1.0 - self.got.min(self.expected) as f64 / self.expected as f64
        };
        let per_core = if server > 0.0 {
            self.got as f64 / server
        } else {
            0.0
        };
        let per_session =
            (self.rss_joined.saturating_sub(self.rss_idle)) as f64 / self.members as f64;
        println!(
            "voice relay: {} rooms of {} ({} speakers each), {wall:.1} s measured; joined in {:.1} s",
            a.rooms,
            a.size,
            a.speakers,
            self.joined_in.as_secs_f64()
        );
        println!("  speakers sent           {} packets", self.sent);
        println!(
            "  forwarded and received  {} of {} ({:.0} /s)",
            self.got,
            self.expected,
            self.got as f64 / wall
        );
        println!("  loss                    {:.3} %", loss * 100.0);
        println!(
            "  dropped at full sockets {} receive, {} send (kernel counters, all processes)",
            self.socket_drops.0, self.socket_drops.1
        );
        println!(
            "  server CPU              {server:.2} s ({:.0} % of one core)",
            server / wall * 100.0
        );
        if self.got > 0 {
            println!(
                "  CPU per 1,000 forwarded {:.4} s",
                server / (self.got as f64 / 1000.0)
            );
        }
        println!("  forwarded per busy core {per_core:.0} /s");
        println!(
            "  forwarding delay        p50 {} ms, p99 {} ms, max {} ms ({} samples)",
            stats::ms(self.delay.p50),
            stats::ms(self.delay.p99),
            stats::ms(self.delay.max),
            self.delay.n
        );
        println!(
            "  samples checked         {} decrypted, {} corrupt",
            self.decrypted, self.corrupt
        );
        println!(
            "  server RSS              {} MiB idle, {} MiB joined ({} KiB per member), {} MiB under load",
            stats::mib(self.rss_idle),
            stats::mib(self.rss_joined),
            stats::kib(per_session),
            stats::mib(self.rss_load)
        );
        println!(
            "  load tool CPU           {:.2} s ({:.0} % of one core); other processes {:.2} s",
            self.tool_cpu.as_secs_f64(),
            self.tool_cpu.as_secs_f64() / wall * 100.0,
            self.others_cpu.as_secs_f64()
        );
        if self.connected < self.members {
            println!(
                "  MEMBERS LEFT OUT        {} never connected",
                self.members - self.connected
            );
        }
        if let Some(why) = &self.first_failure {
            println!(
                "  MEMBERS FAILED          {} (the first: {why})",
                self.failed
            );
        }
        println!(
            "| {} × {} ({} spk) | {:.0} /s | {:.3} % | {:.2} s | {:.4} | {per_core:.0} | {} / {} ms | {} MiB | {:.2} s |",
            a.rooms,
            a.size,
            a.speakers,
            self.got as f64 / wall,
            loss * 100.0,
            server,
            if self.got > 0 {
                server / (self.got as f64 / 1000.0)
            } else {
                0.0
            },
            stats::ms(self.delay.p50),
            stats::ms(self.delay.p99),
            stats::mib(self.rss_load),
            self.tool_cpu.as_secs_f64()
        );
    }
}
