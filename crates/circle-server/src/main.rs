//! `circle`: the server binary. Loads the configuration, starts the server, stops on Ctrl-C / SIGTERM.

use anyhow::Context;
use circle_server::config::Config;
use clap::Parser;
use std::path::PathBuf;
use tracing_subscriber::EnvFilter;

/// Circle: a meeting server for online support groups.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Configuration file (TOML). Without it, embedded defaults and CIRCLE_* variables apply.
    #[arg(long, env = "CIRCLE_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // webrtc-rs's own warnings can name remote addresses: its crates are capped at `error`, whatever
    // RUST_LOG asks, so no IP address reaches the logs.
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    let filter = format!("{filter},{}", circle_media::WEBRTC_LOG_DIRECTIVES);
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    let args = Args::parse();
    let config = Config::load(args.config.as_deref()).context("loading configuration")?;
    let client_url = config.client.url.clone();
    let running = circle_server::start(config).await?;
    if let Some(addr) = running.client_addr {
        println!("Circle is running. Open http://{addr}/ in a browser.");
    } else {
        println!(
            "Circle server on http://{}; web client expected at {client_url}",
            running.addr
        );
    }
    shutdown_signal().await;
    tracing::info!("shutting down: telling members");
    running.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
