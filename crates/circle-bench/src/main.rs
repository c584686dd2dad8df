//! `circle-load`: load tools that measure Circle against the targets in `docs/BENCHMARKS.md`.
//!
//! # Layout
//! - `server.rs`: the `circle` binary as a child process on a free loopback port, its RSS and CPU
//!   time, killed when dropped (so on every exit path, errors and panics included).
//! - `cpu.rs`: CPU time of the server, this tool and the rest of the machine, from `/proc`.
//! - `client.rs`: a minimal websocket client: connect, `join`, wait for `joined`.
//! - `cluster.rs`: `circle-load cluster`: cluster mode's extra join time (a `wrong_node` redirect)
//!   and Redis's load, against `redis-server` and three nodes.
//! - `chat.rs`: `circle-load chat`: fan-out latency of room chat to every member.
//! - `idle.rs`: `circle-load idle`: server memory per idle joined session.
//! - `soak.rs`: `circle-load soak`: an hour (or `--minutes`) of churn; server memory, descriptors and
//!   threads at quiet points, and loss in a canary meeting.
//! - `session.rs`: the soak's participant: requests answered by id, drop and resume, and a real
//!   WebRTC voice connection whose signalling runs on the same socket.
//! - `procfs.rs`: the server's descriptors by kind (and connections still closing) and its threads'
//!   run-queue wait, from `/proc`: what tells a leak from a starved machine.
//! - `standing.rs`: `circle-load standing`: creating N standing rooms, start time with them, and
//!   join time in a standing room against an ad-hoc room.
//! - `voice.rs`: `circle-load voice`: relay throughput, cost and forwarding delay with many rooms
//!   at once; `voice_member.rs`: its member, a real WebRTC client made cheap (counts forwarded
//!   packets from their headers, decrypts and checks a sample, sends a stream encrypted once).
//! - `stats.rs`: percentiles.
//!
//! Every loop is bounded in count and in time, and all traffic goes to a loopback address.

mod chat;
mod client;
mod cluster;
mod cpu;
mod idle;
mod procfs;
mod server;
mod session;
mod soak;
mod standing;
mod stats;
mod voice;
mod voice_member;

use clap::{Parser, Subcommand};
use std::time::{Duration, Instant};

/// Load tools for the Circle server. Traffic goes to 127.0.0.1 only.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Chat fan-out: one sender, N members; latency from send to each member's receipt.
    Chat(chat::ChatArgs),
    /// Cluster mode: first-join time at the holding node against through a `wrong_node` redirect,
    /// and Redis commands per second with meetings held (needs `redis-server`).
    Cluster(cluster::ClusterArgs),
    /// Idle sessions: server RSS per joined websocket session that then stays quiet.
    Idle(idle::IdleArgs),
    /// Soak: bounded churn (joins, leaves, voice, chat, re-offers, drops and resumes) with a canary
    /// meeting; server resources at quiet points, PASS/FAIL against a tolerance.
    Soak(soak::SoakArgs),
    /// Standing rooms: create N through the organiser API, server start time with them, and join
    /// time in a standing room against an ad-hoc room.
    Standing(standing::StandingArgs),
    /// Voice relay throughput: rooms × members with some speakers; forwarded packets/s, server CPU
    /// per packet, loss, forwarding delay, RSS.
    Voice(voice::VoiceArgs),
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        // Ctrl-C ends the run early; the child server is killed as its guard is dropped.
        tokio::select! {
            r = run(args) => r,
            _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
        }
    })
}

async fn run(args: Args) -> anyhow::Result<()> {
    match args.cmd {
        Cmd::Chat(a) => chat::run(a).await,
        Cmd::Cluster(a) => cluster::run(a).await,
        Cmd::Idle(a) => idle::run(a).await,
        Cmd::Soak(a) => soak::run(a).await,
        Cmd::Standing(a) => standing::run(a).await,
        Cmd::Voice(a) => voice::run(a).await,
    }
}

/// Raises this process's soft open-file limit to its hard limit; the child server inherits it.
fn raise_fd_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => eprintln!("open-file limit: {n}"),
        Err(e) => eprintln!("could not raise the open-file limit: {e}"),
    }
}

/// Polls `count` until it reaches `want` or `deadline` passes, printing progress to stderr every
/// few seconds; returns the last count.
pub(crate) async fn wait_for(
    what: &str,
    want: usize,
    deadline: Instant,
    count: impl Fn() -> usize,
) -> usize {
    const POLL: Duration = Duration::from_millis(10);
    const REPORT_EVERY: Duration = Duration::from_secs(5);
    let mut next_report = Instant::now() + REPORT_EVERY;
    loop {
        let n = count();
        if n >= want || Instant::now() >= deadline {
            return n;
        }
        if Instant::now() >= next_report {
            eprintln!("  {what}: {n} of {want}");
            next_report += REPORT_EVERY;
        }
        tokio::time::sleep(POLL).await;
    }
}
