//! Fault injection for end-to-end tests: makes the relay task die on demand, as a bug outside
//! the per-peer guards would make it, so that a test can watch the whole `circle` process react
//! (readiness turns false, the process exits non-zero for its supervisor to restart it).
//!
//! # Only in test builds
//! Everything here exists only with the cargo feature `fault-injection`. Nothing in the workspace
//! enables it as a normal dependency: the end-to-end test crate (`tests/Cargo.toml`) enables it in
//! its `[dev-dependencies]`, and cargo (resolver 2 and later) activates a dev-dependency's
//! features only when the build includes targets that need dev-dependencies (tests, examples,
//! benches) of the packages it was asked for. So:
//! - `make run` (`cargo build --release -p circle-server`): circle-server and its dependencies
//!   only; the test crate is not part of the build; no hook.
//! - `cargo build --release -p circle-server -p circle-tests --bin ...` (`make bench-voice`):
//!   binaries need no dev-dependencies; no hook.
//! - `cargo test -p circle-tests`: the test crate's `circle-fault` binary (`circle`'s own main.rs)
//!   is built with the hook, which is what `tests/relay_death.rs` runs.
//! - `cargo test --workspace` / `cargo build --workspace --all-targets`: features are unified over
//!   the build, so the debug `target/debug/circle` built there has the hook too. It still does
//!   nothing unless [`DEATH_FILE_VAR`] is set, and the server logs a warning at start when the
//!   hook is compiled in ([`COMPILED_IN`]) and armed by that variable.
//!
//! Without the feature, `relay_wakeup` is an empty inline function: the relay loop's one call
//! costs nothing.
//!
//! # The trigger
//! [`DEATH_FILE_VAR`] names a file, read once when the relay starts (or a test running the server
//! in its own process names it with `set_relay_death_file`). The relay task panics at its first
//! wake-up after that file exists (checked at most every 50 ms; the relay wakes at least once a
//! second). A file rather than a signal or a protocol message: the test decides when, from outside
//! the process, and nothing a client sends can reach it.

/// Whether this build has the fault hooks (the feature `fault-injection`).
pub const COMPILED_IN: bool = cfg!(feature = "fault-injection");

/// The environment variable naming the file whose existence kills the relay task. Not `CIRCLE_...`:
/// the server reads every `CIRCLE_` variable as configuration and refuses unknown ones.
pub const DEATH_FILE_VAR: &str = "FAULT_INJECTION_RELAY_DEATH_FILE";

/// How often, at most, the relay looks for the file (a `stat` per wake-up would cost the packet
/// path in a test that measures nothing, but there is no need for it).
#[cfg(feature = "fault-injection")]
const CHECK_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

/// The death file for this process: set by [`set_relay_death_file`], or else read from
/// [`DEATH_FILE_VAR`] at the relay's first wake-up.
#[cfg(feature = "fault-injection")]
static DEATH_FILE: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();

/// Names the death file for every relay in this process, for a test that runs the server in its
/// own process (where setting an environment variable would need `unsafe`). Fails if a relay has
/// already looked for it, or it was already named.
#[cfg(feature = "fault-injection")]
pub fn set_relay_death_file(path: std::path::PathBuf) -> Result<(), std::path::PathBuf> {
    DEATH_FILE
        .set(Some(path))
        .map_err(|p| p.unwrap_or_default())
}

/// Called by the relay task at every wake-up. With the feature and a death file named, panics once
/// the file exists; otherwise does nothing.
#[cfg(feature = "fault-injection")]
pub(crate) fn relay_wakeup() {
    use std::sync::Mutex;
    use std::time::Instant;

    static LAST_CHECK: Mutex<Option<Instant>> = Mutex::new(None);
    let Some(file) = DEATH_FILE.get_or_init(|| std::env::var_os(DEATH_FILE_VAR).map(Into::into))
    else {
        return;
    };
    {
        let mut last = LAST_CHECK.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| t.elapsed() < CHECK_EVERY) {
            return;
        }
        *last = Some(Instant::now());
    }
    if file.exists() {
        panic!(
            "fault injection: the voice relay dies ({} exists)",
            file.display()
        );
    }
}

/// Without the feature: nothing (see the module docs).
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn relay_wakeup() {}
