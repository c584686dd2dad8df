//! The server under test: the release `circle` binary started as a child process on a free loopback
//! port, or an already running server given by URL (loopback only). The child is killed when its
//! [`ServerChild`] is dropped, so every way out of a run (success, error, panic, Ctrl-C) ends it.

use anyhow::{Context, Result, bail};
use std::{
    fs::File,
    net::{IpAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// How long the child may take to answer `/healthz` after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A running `circle` child process.
pub struct ServerChild {
    /// The process; killed and reaped on drop.
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Where the child's stderr goes, for the error message when something fails.
    pub log: PathBuf,
}

impl ServerChild {
    /// Starts `bin` (default: `circle` next to this executable) on a free loopback port with these
    /// `CIRCLE_...` overrides, and waits until it answers `/healthz`.
    pub async fn start(bin: Option<&Path>, env: &[(&str, String)]) -> Result<Self> {
        let bin = match bin {
            Some(b) => b.to_path_buf(),
            None => std::env::current_exe()
                .context("locating this executable")?
                .with_file_name("circle"),
        };
        if !bin.is_file() {
            bail!(
                "no server binary at {} (build it with `cargo build --release -p circle-server`, or pass --server-bin)",
                bin.display()
            );
        }
        let port = free_port()?;
        let base = format!("http://127.0.0.1:{port}");
        let log =
            std::env::temp_dir().join(format!("circle-load-server-{}.log", std::process::id()));
        let stderr = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = Command::new(&bin);
        cmd.env("CIRCLE_SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("CIRCLE_CLIENT__SERVE_DIR", "")
            // The voice relay's UDP port: a free one, so a server already running here is no obstacle.
            .env("CIRCLE_MEDIA__LISTEN", "127.0.0.1:0")
            // Every load client is the same loopback address: lift the per-client room limit.
            .env("CIRCLE_LIMITS__ROOMS_PER_CLIENT_BURST", "1000000")
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut server = Self { child, base, log };
        server.wait_healthy().await?;
        Ok(server)
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn wait_healthy(&mut self) -> Result<()> {
        let http = reqwest::Client::new();
        let url = format!("{}/healthz", self.base);
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the server exited at start ({status}); see {}",
                    self.log.display()
                );
            }
            if let Ok(r) = http.get(&url).timeout(Duration::from_secs(1)).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            // Short: `circle-load standing` times starts by this loop.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        bail!(
            "the server did not answer {url} within {START_TIMEOUT:?}; see {}",
            self.log.display()
        )
    }

    /// Resident set size now (`VmRSS`), in bytes.
    pub fn rss_bytes(&self) -> Result<u64> {
        proc_status_kib(self.pid(), "VmRSS:").map(|k| k * 1024)
    }

    /// Anonymous resident memory now (`RssAnon`: heap and stacks, what a leak grows; the rest of
    /// `VmRSS` is mostly the binary's code, paged in as code paths are first used), in bytes.
    pub fn rss_anon_bytes(&self) -> Result<u64> {
        proc_status_kib(self.pid(), "RssAnon:").map(|k| k * 1024)
    }

    /// Peak resident set size so far (`VmHWM`), in bytes.
    pub fn peak_rss_bytes(&self) -> Result<u64> {
        proc_status_kib(self.pid(), "VmHWM:").map(|k| k * 1024)
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Either a child server this run started, or the base URL of a server someone else runs.
pub enum Target {
    /// Started by this run; killed when dropped.
    Child(ServerChild),
    /// Given with `--url`.
    External(String),
}

impl Target {
    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> &str {
        match self {
            Target::Child(c) => &c.base,
            Target::External(u) => u,
        }
    }

    /// The websocket endpoint.
    pub fn ws_url(&self) -> String {
        format!("{}/ws", self.base().replacen("http", "ws", 1))
    }

    /// The child, when this run started one.
    pub fn child(&self) -> Option<&ServerChild> {
        match self {
            Target::Child(c) => Some(c),
            Target::External(_) => None,
        }
    }
}

/// Checks that `url` is `http://` on a loopback address and returns it without a trailing slash.
pub fn loopback_url(url: &str) -> Result<String> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("parsing {url}"))?;
    if parsed.scheme() != "http" {
        bail!("--url must be http://127.0.0.1:PORT");
    }
    let host = parsed.host_str().unwrap_or("").trim_matches(['[', ']']);
    let ip: IpAddr = host
        .parse()
        .with_context(|| format!("--url must name a loopback IP address, not {host:?}"))?;
    if !ip.is_loopback() {
        bail!("--url must be a loopback address; this tool sends load to this machine only");
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// Creates a room with the waiting room off; returns its id.
pub async fn create_room(base: &str, title: &str) -> Result<circle_protocol::RoomId> {
    create_room_with(base, title, serde_json::json!({ "waiting_room": false })).await
}

/// Creates a room where members come straight in and may unmute themselves; returns its id.
pub async fn create_voice_room(base: &str, title: &str) -> Result<circle_protocol::RoomId> {
    let settings = serde_json::json!({ "waiting_room": false, "mute_on_entry": false });
    create_room_with(base, title, settings).await
}

/// Creates a room with these settings; returns its id.
async fn create_room_with(
    base: &str,
    title: &str,
    settings: serde_json::Value,
) -> Result<circle_protocol::RoomId> {
    let res = reqwest::Client::new()
        .post(format!("{base}/api/rooms"))
        .json(&serde_json::json!({ "title": title, "settings": settings }))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .context("POST /api/rooms")?;
    let status = res.status();
    let body: serde_json::Value = res.json().await.context("reading the room reply")?;
    if status.as_u16() != 201 {
        bail!("POST /api/rooms answered {status}: {body}");
    }
    let id = body["room"].as_str().context("no room id in the reply")?;
    Ok(circle_protocol::RoomId(id.to_owned()))
}

/// A port free on 127.0.0.1 a moment ago (the server binds it right after).
fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

fn proc_status_kib(pid: u32, key: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(key))
        .with_context(|| format!("no {key} in /proc/{pid}/status"))?;
    let kib = line[key.len()..].trim().trim_end_matches("kB").trim();
    Ok(kib.parse()?)
}
