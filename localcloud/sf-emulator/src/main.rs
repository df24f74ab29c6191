//! `sf-emulator`: runs the local Salesforce org until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use sf_emulator::{Emulator, OrgConfig};

/// A local Salesforce org (OAuth + REST) on 127.0.0.1.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Org configuration (TOML); the built-in demo org when absent.
    #[arg(long, env = "SF_EMULATOR_CONFIG")]
    config: Option<PathBuf>,
    /// Port to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 8788, env = "SF_EMULATOR_PORT")]
    port: u16,
    /// The demo org's JWT key (PKCS#8 PEM), made there on first use; the demo app trusts it.
    /// Without it the demo app trusts a key only this process knows, so the JWT bearer flow is
    /// closed to clients.
    #[arg(long, env = "SF_EMULATOR_DEMO_JWT_KEY")]
    demo_jwt_key: Option<PathBuf>,
    /// Address to bind. Only loopback makes sense for a test org.
    #[arg(long, default_value = "127.0.0.1")]
    bind: std::net::IpAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SF_EMULATOR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let config = match &args.config {
        Some(path) => OrgConfig::from_file(path)?,
        None => match &args.demo_jwt_key {
            Some(path) => OrgConfig::demo_trusting(&sf_emulator::DemoKey::load_or_create(path)?),
            None => OrgConfig::demo(),
        },
    };
    let emulator = Emulator::start_on(config, SocketAddr::new(args.bind, args.port))
        .await
        .with_context(|| format!("starting the emulator on port {}\nhint: pick another --port, or 0 for any free port", args.port))?;
    // The one line on stdout: scripts read the base URL from it.
    println!("sf-emulator listening on {}", emulator.base_url());
    shutdown_signal().await;
    tracing::info!("shutting down");
    emulator.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = terminate.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
