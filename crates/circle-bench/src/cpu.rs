//! CPU time read from `/proc`: the server child's, this tool's, and the whole machine's, so that a
//! report can say how much CPU other programs took while it measured (the load tool shares the
//! machine with the server, and latency figures are only comparable when nothing else ran).

use anyhow::{Context, Result};
use std::{
    process::Command,
    sync::OnceLock,
    time::{Duration, Instant},
};

/// CPU counters at one moment.
#[derive(Clone, Copy, Debug)]
pub struct CpuSample {
    /// When it was taken.
    at: Instant,
    /// The server child's user + system time, if this run started one.
    server: Option<Duration>,
    /// This process's user + system time.
    tool: Duration,
    /// Busy time (not idle, not waiting for IO) of all the machine's CPUs together.
    machine: Duration,
}

/// What was used between two samples.
#[derive(Clone, Copy, Debug)]
pub struct CpuUse {
    /// Wall-clock time between the samples.
    pub wall: Duration,
    /// CPU time of the server (`None` when it is not our child).
    pub server: Option<Duration>,
    /// CPU time of this load tool.
    pub tool: Duration,
    /// CPU time of every other process on the machine.
    pub others: Duration,
}

impl CpuSample {
    /// Takes a sample; `server` is the child's pid, if there is one.
    pub fn take(server: Option<u32>) -> Result<Self> {
        Ok(Self {
            at: Instant::now(),
            server: server
                .map(|pid| process_cpu(&pid.to_string()))
                .transpose()?,
            tool: process_cpu("self")?,
            machine: machine_busy()?,
        })
    }

    /// The use from `self` to `later`.
    pub fn until(&self, later: &CpuSample) -> CpuUse {
        let server = match (self.server, later.server) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        };
        let tool = later.tool.saturating_sub(self.tool);
        let machine = later.machine.saturating_sub(self.machine);
        CpuUse {
            wall: later.at - self.at,
            server,
            tool,
            others: machine
                .saturating_sub(tool)
                .saturating_sub(server.unwrap_or_default()),
        }
    }
}

/// User + system time of a process (`self` or a pid) from `/proc/PID/stat`.
pub fn process_cpu(pid: &str) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after `(comm)`, which may itself hold spaces: utime and stime are fields 14 and 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("parsing /proc/PID/stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks =
        f.get(11).context("utime")?.parse::<u64>()? + f.get(12).context("stime")?.parse::<u64>()?;
    Ok(ticks_to_duration(ticks))
}

/// Busy time of all CPUs together, from the `cpu` line of `/proc/stat`.
fn machine_busy() -> Result<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = stat.lines().next().context("empty /proc/stat")?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already inside user).
    let busy: u64 = f
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    Ok(ticks_to_duration(busy))
}

fn ticks_to_duration(ticks: u64) -> Duration {
    Duration::from_secs_f64(ticks as f64 / clock_ticks_per_sec() as f64)
}

/// `sysconf(_SC_CLK_TCK)` without unsafe code: ask `getconf` once, else assume Linux's usual 100.
fn clock_ticks_per_sec() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}
