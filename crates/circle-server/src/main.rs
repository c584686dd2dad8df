//! `circle`: the server binary. Loads and checks the configuration, starts the server, and answers
//! signals: Ctrl-C / SIGTERM stop at once (members are told), SIGUSR1 drains (no new meetings; stop
//! when the open ones end or `server.drain_secs` pass), SIGHUP reloads the TLS certificate. Exits
//! non-zero if the voice relay dies, so that a supervisor restarts the process.
//!
//! Logs go to standard error; a configuration problem is one line each on standard error, and exit
//! status 2.

use circle_server::{Running, config::Config};
use clap::Parser;
use std::{path::PathBuf, process::ExitCode, time::Duration};
use tracing_subscriber::EnvFilter;

/// Circle: a meeting server for online support groups.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Configuration file (TOML). Without it, embedded defaults and CIRCLE_* variables apply.
    #[arg(long, env = "CIRCLE_CONFIG")]
    config: Option<PathBuf>,
}

/// Exit status for a configuration that cannot be used.
const EXIT_CONFIG: u8 = 2;
/// Exit status when the server fails while running (the voice relay died).
const EXIT_FAILED: u8 = 1;
/// Descriptors kept for what is not a client connection (listeners, the relay socket, files).
const FD_HEADROOM: u64 = 128;
/// How often `circle` checks that the voice relay answers.
const RELAY_WATCH_EVERY: Duration = Duration::from_secs(5);
/// Failed relay checks in a row after which the process stops (one slow answer is not death).
const RELAY_FAILURES_TO_EXIT: u32 = 3;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = init_logging() {
        eprintln!("circle: {e}");
        return ExitCode::from(EXIT_CONFIG);
    }
    if circle_media::fault::COMPILED_IN
        && std::env::var_os(circle_media::fault::DEATH_FILE_VAR).is_some()
    {
        // Only a test build links circle-media with its `fault-injection` feature (see
        // circle-media's fault.rs for why `make run`'s build never does), and only a test arms
        // it; say so when one is armed. (An unarmed hook does nothing, and a warning on every
        // start of the workspace's debug binary would be noise in every test that reads stderr.)
        tracing::warn!("test fault injection is armed: the voice relay will be made to die");
    }
    let config = match Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("circle: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let mut problems = match config.validate() {
        Ok(()) => Vec::new(),
        Err(e) => e.0,
    };
    if let Err(line) = check_descriptors(config.limits.max_connections) {
        problems.push(line);
    }
    if !problems.is_empty() {
        for line in problems {
            eprintln!("circle: {line}");
        }
        return ExitCode::from(EXIT_CONFIG);
    }
    let drain_after = Duration::from_secs(config.server.drain_secs);
    let running = match circle_server::start(config).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("circle: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // Signal handlers before the first line: a tool that reads the address and then signals at
    // once (SIGUSR1 to drain, SIGHUP to reload) must not meet the default action, which kills.
    let (Ok(term), Ok(usr1), Ok(hup)) = (
        Sig::new(Kind::Terminate),
        Sig::new(Kind::Drain),
        Sig::new(Kind::Reload),
    ) else {
        tracing::error!("cannot install signal handlers");
        running.shutdown().await;
        return ExitCode::from(EXIT_FAILED);
    };
    let scheme = if running.tls.is_some() {
        "https"
    } else {
        "http"
    };
    // The first line on standard output names the address bound (documented in PROTOCOL.md §10: with
    // port 0 it is how a tool learns the port).
    println!("Circle API and websocket on {scheme}://{}", running.addr);
    if let Some(addr) = running.client_addr {
        println!("Circle is running. Open {scheme}://{addr}/ in a browser.");
    } else if running.state.config.client.same_origin {
        println!(
            "Circle is running. Open {}/ in a browser.",
            running.state.config.public_url()
        );
    } else {
        println!("Web client expected at {}", running.state.config.client.url);
    }
    let code = serve_until_stopped(&running, drain_after, [term, usr1, hup]).await;
    running.shutdown().await;
    code
}

/// `RUST_LOG` (default `info`), with webrtc-rs's crates capped whatever it asks: their warnings can
/// name remote addresses. A malformed `RUST_LOG` is refused, not replaced.
fn init_logging() -> Result<(), String> {
    let asked = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    let filter = format!(
        "{asked},{},{}",
        circle_media::WEBRTC_LOG_DIRECTIVES,
        circle_turn::LOG_DIRECTIVES
    );
    let filter = EnvFilter::builder()
        .with_regex(false)
        .parse(&filter)
        .map_err(|e| format!("RUST_LOG {asked:?} is not a log filter ({e}): e.g. RUST_LOG=info"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    Ok(())
}

/// Raises the open-file limit as far as allowed, and checks the connection cap fits under it: past
/// the limit, accepting fails with EMFILE and nothing new (not even a health check) gets in.
fn check_descriptors(max_connections: usize) -> Result<(), String> {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(l) => l,
        // Not a platform with this limit: nothing to check.
        Err(_) => return Ok(()),
    };
    let needed = max_connections as u64 + FD_HEADROOM;
    if needed > limit {
        return Err(format!(
            "limits.max_connections is {max_connections} but this process may open only {limit} \
             files ({FD_HEADROOM} are kept for the server itself): raise the limit (ulimit -n, \
             systemd LimitNOFILE=) or lower limits.max_connections to {}",
            limit.saturating_sub(FD_HEADROOM)
        ));
    }
    Ok(())
}

/// Answers signals until the server should stop; the exit status to stop with.
/// `signals`: SIGTERM, SIGUSR1 and SIGHUP, installed before the address line was printed.
async fn serve_until_stopped(
    running: &Running,
    drain_after: Duration,
    signals: [Sig; 3],
) -> ExitCode {
    let [mut term, mut usr1, mut hup] = signals;
    let relay_dead = watch_relay(running);
    tokio::pin!(relay_dead);
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return stopping(),
            _ = term.recv() => return stopping(),
            _ = usr1.recv() => break,
            _ = hup.recv() => {
                if let Err(e) = running.reload_tls() {
                    tracing::warn!(error = %e, "TLS certificate does not load; keeping the one in use");
                }
            }
            _ = &mut relay_dead => return ExitCode::from(EXIT_FAILED),
        }
    }
    running.begin_drain();
    tokio::select! {
        _ = running.wait_drained(drain_after) => ExitCode::SUCCESS,
        _ = tokio::signal::ctrl_c() => stopping(),
        _ = term.recv() => stopping(),
        _ = &mut relay_dead => ExitCode::from(EXIT_FAILED),
    }
}

fn stopping() -> ExitCode {
    tracing::info!("shutting down: telling members");
    ExitCode::SUCCESS
}

/// Resolves once the voice relay has stopped (its task ended), or has failed
/// [`RELAY_FAILURES_TO_EXIT`] checks in a row (its task lives but does not answer). Never resolves
/// when voice is off.
async fn watch_relay(running: &Running) {
    let Some(media) = running.state.media.as_ref() else {
        return std::future::pending().await;
    };
    let stopped = media.relay_stopped();
    tokio::pin!(stopped);
    let mut failures = 0;
    let mut tick = tokio::time::interval(RELAY_WATCH_EVERY);
    loop {
        tokio::select! {
            _ = &mut stopped => {
                tracing::error!("the voice relay stopped: exiting so that a supervisor restarts");
                return;
            }
            _ = tick.tick() => {}
        }
        if running.state.relay_alive().await {
            failures = 0;
        } else {
            failures += 1;
            tracing::warn!(failures, "the voice relay does not answer");
            if failures >= RELAY_FAILURES_TO_EXIT {
                tracing::error!("the voice relay is stuck: exiting so that a supervisor restarts");
                return;
            }
        }
    }
}

/// The signals `circle` answers besides Ctrl-C.
#[derive(Clone, Copy)]
enum Kind {
    /// SIGTERM: stop now.
    Terminate,
    /// SIGUSR1: drain.
    Drain,
    /// SIGHUP: reload the TLS certificate.
    Reload,
}

/// One signal's stream (never fires where there are no such signals).
struct Sig {
    #[cfg(unix)]
    inner: tokio::signal::unix::Signal,
}

impl Sig {
    #[cfg(unix)]
    fn new(kind: Kind) -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let kind = match kind {
            Kind::Terminate => SignalKind::terminate(),
            Kind::Drain => SignalKind::user_defined1(),
            Kind::Reload => SignalKind::hangup(),
        };
        Ok(Self {
            inner: signal(kind)?,
        })
    }

    #[cfg(not(unix))]
    fn new(_kind: Kind) -> std::io::Result<Self> {
        Ok(Self {})
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        self.inner.recv().await;
        #[cfg(not(unix))]
        std::future::pending::<()>().await;
    }
}
