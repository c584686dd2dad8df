//! What `/proc` says about the server child beyond memory: what its descriptors are (and whether
//! its connections are still closing), and how long its threads waited for a CPU. The soak reads
//! these to tell a leak (something stays open at a quiet point) from a starved machine (the server
//! was ready to run but had no CPU, so its socket buffers overflowed).

use std::{collections::HashMap, time::Duration};

/// A process's open descriptors, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fds {
    /// All of them (entries of `/proc/PID/fd`).
    pub total: usize,
    /// TCP sockets listening.
    pub tcp_listening: usize,
    /// TCP connections established.
    pub tcp_established: usize,
    /// TCP connections on their way out: the peer closed and the server has not yet
    /// (`CLOSE_WAIT`), or the server closed its side and waits for the peer (`FIN_WAIT`,
    /// `LAST_ACK`, `CLOSING`). Such a descriptor goes away by itself; it is not a leak.
    pub tcp_closing: usize,
    /// UDP sockets.
    pub udp: usize,
    /// Everything else: the runtime's epoll and event descriptors, other sockets, files.
    pub other: usize,
}

impl Fds {
    /// Reads `pid`'s descriptors and classifies its sockets with `/proc/net/{tcp,tcp6,udp,udp6}`
    /// (of this process's network namespace, which is the child's). A process that is gone has
    /// none.
    pub fn read(pid: u32) -> Fds {
        let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            return Fds::default();
        };
        let links: Vec<String> = dir
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter_map(|l| l.to_str().map(str::to_owned))
            .collect();
        let tcp = socket_table(&["/proc/net/tcp", "/proc/net/tcp6"]);
        let udp = socket_table(&["/proc/net/udp", "/proc/net/udp6"]);
        let mut fds = Fds {
            total: links.len(),
            ..Fds::default()
        };
        for link in &links {
            let inode = link
                .strip_prefix("socket:[")
                .and_then(|l| l.strip_suffix(']'))
                .and_then(|i| i.parse::<u64>().ok());
            match inode {
                Some(i) if udp.contains_key(&i) => fds.udp += 1,
                Some(i) => match tcp.get(&i) {
                    Some(0x0A) => fds.tcp_listening += 1,
                    Some(0x01) => fds.tcp_established += 1,
                    Some(_) => fds.tcp_closing += 1,
                    None => fds.other += 1,
                },
                None => fds.other += 1,
            }
        }
        fds
    }

    /// E.g. `17 (TCP: 1 listening, 2 established, 1 closing; UDP 1; other 12)`.
    pub fn line(&self) -> String {
        format!(
            "{} (TCP: {} listening, {} established, {} closing; UDP {}; other {})",
            self.total,
            self.tcp_listening,
            self.tcp_established,
            self.tcp_closing,
            self.udp,
            self.other
        )
    }
}

/// Socket inode → state (the `st` column, hex: 01 established, 0A listening, ...), from tables in
/// the `/proc/net/tcp` format.
fn socket_table(paths: &[&str]) -> HashMap<u64, u8> {
    let mut out = HashMap::new();
    for path in paths {
        let Ok(table) = std::fs::read_to_string(path) else {
            continue;
        };
        for line in table.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(state), Some(inode)) = (f.get(3), f.get(9)) else {
                continue;
            };
            if let (Ok(state), Ok(inode)) = (u8::from_str_radix(state, 16), inode.parse::<u64>())
                && inode != 0
            {
                out.insert(inode, state);
            }
        }
    }
    out
}

/// How a process's threads were scheduled, summed over them (`/proc/PID/task/*/schedstat`): time
/// on a CPU, and time ready to run but waiting for one. The second is what starvation is: a server
/// that waits for a CPU does not read its sockets, and the kernel drops what does not fit.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sched {
    /// Time spent running.
    pub ran: Duration,
    /// Time spent runnable, waiting on a run queue.
    pub waited: Duration,
}

impl Sched {
    /// Reads `pid`'s threads now (zero if the kernel has no schedstats or the process is gone).
    /// A thread that ended since an earlier reading takes its times with it; the server's are
    /// its runtime's workers, which live as long as it does.
    pub fn read(pid: u32) -> Sched {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return Sched::default();
        };
        let mut s = Sched::default();
        for task in tasks.flatten() {
            let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else {
                continue;
            };
            let mut f = text
                .split_whitespace()
                .map(|v| v.parse::<u64>().unwrap_or(0));
            s.ran += Duration::from_nanos(f.next().unwrap_or(0));
            s.waited += Duration::from_nanos(f.next().unwrap_or(0));
        }
        s
    }

    /// What happened between `self` and `later`.
    pub fn until(&self, later: &Sched) -> Sched {
        Sched {
            ran: later.ran.saturating_sub(self.ran),
            waited: later.waited.saturating_sub(self.waited),
        }
    }
}

/// The machine's load: the 1-minute load average and, where the kernel keeps it (PSI), the share
/// of the last 10 s in which some task waited for a CPU.
pub fn machine_load() -> String {
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into());
    let pressure = std::fs::read_to_string("/proc/pressure/cpu")
        .ok()
        .and_then(|p| {
            let some = p.lines().find(|l| l.starts_with("some"))?;
            let avg10 = some
                .split_whitespace()
                .find_map(|f| f.strip_prefix("avg10="))?;
            Some(format!(", CPU pressure {avg10} %"))
        })
        .unwrap_or_default();
    format!("load {load}{pressure}")
}

/// Total time, in microseconds since boot, that some task waited for a CPU (PSI `some total`), if
/// the kernel keeps it.
pub fn cpu_pressure_total() -> Option<Duration> {
    let p = std::fs::read_to_string("/proc/pressure/cpu").ok()?;
    let some = p.lines().find(|l| l.starts_with("some"))?;
    let total = some
        .split_whitespace()
        .find_map(|f| f.strip_prefix("total="))?;
    Some(Duration::from_micros(total.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_listening_socket_and_a_connection_it_can_see() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server_side, _) = listener.accept().unwrap();
        let fds = Fds::read(std::process::id());
        assert!(fds.tcp_listening >= 1, "{fds:?}");
        assert!(fds.tcp_established >= 2, "{fds:?}");
        // The peer closes: this side is now closing (CLOSE_WAIT) until it closes too.
        drop(client);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let closing = loop {
            let fds = Fds::read(std::process::id());
            if fds.tcp_closing >= 1 || std::time::Instant::now() > deadline {
                break fds.tcp_closing;
            }
            std::thread::yield_now();
        };
        assert!(closing >= 1);
        drop(server_side);
    }
}
