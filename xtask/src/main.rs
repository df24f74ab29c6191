//! `cargo xtask`: the sfstack orchestrator's entry point. For now it only runs the local
//! Salesforce org; deploy, smoke-test and teardown come with the orchestrator.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

mod bench;
mod build;
mod config;
mod environment;
#[allow(dead_code)] // used by deploy
mod infra;
mod local;
mod naming;
#[allow(dead_code)] // Used by deploy, which lands with the rest of the orchestrator.
mod render;
#[allow(dead_code)] // Used by deploy, which lands with the rest of the orchestrator.
mod stack;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Build, deploy, smoke-test and tear down the sfstack stack"
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Measure sf-invoke-api: cold start, warm overhead, peak RSS, zip sizes, logins.
    Bench {
        /// `text` (a Markdown table, default) or `json`.
        #[arg(long, default_value = "text")]
        output: environment::Output,
    },
    /// Build every function as a Lambda zip (cargo lambda build --release --output-format zip).
    Build {
        /// CPU architecture of the functions.
        #[arg(long, default_value = "x86_64")]
        arch: build::Arch,
        /// `text` (default) or `json` (one JSON document on stdout).
        #[arg(long, default_value = "text")]
        output: environment::Output,
    },
    /// Show the environment this checkout deploys to and its effective settings.
    Config {
        /// Environment name; default: derived from the git branch.
        #[arg(long, env = "SFSTACK_ENV")]
        env: Option<String>,
        /// `text` (default) or `json` (one JSON document on stdout).
        #[arg(long, default_value = "text")]
        output: environment::Output,
    },
    /// The local cloud on 127.0.0.1: the moto server and the Salesforce emulator.
    Local {
        #[command(subcommand)]
        action: LocalAction,
        /// `text` (default) or `json`.
        #[arg(long, default_value = "text", global = true)]
        output: environment::Output,
    },
    /// Run the local Salesforce org (the emulator with its demo org) until Ctrl-C.
    Emulator {
        /// Port to listen on (0 picks a free one).
        #[arg(long, default_value_t = 8788)]
        port: u16,
        /// Org configuration file (TOML); the demo org when absent.
        #[arg(long)]
        config: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
enum LocalAction {
    /// Start the moto server and the emulator in the background (no-op when running).
    Up,
    /// Stop them (no-op when stopped).
    Down,
    /// Show what runs where; exits 1 when not everything is up.
    Status,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Commands::Local { action, output } => {
            let root = render::repository_root();
            let json = output == environment::Output::Json;
            match action {
                LocalAction::Up => {
                    let cloud = local::up(&root)?;
                    if json {
                        println!("{}", serde_json::to_string_pretty(&cloud)?);
                    }
                    Ok(ExitCode::SUCCESS)
                }
                LocalAction::Down => {
                    let stopped = local::down(&root)?;
                    eprintln!(
                        "local: {}",
                        if stopped {
                            "stopped"
                        } else {
                            "was not running"
                        }
                    );
                    Ok(ExitCode::SUCCESS)
                }
                LocalAction::Status => {
                    let up = local::print_status(&root, json)?;
                    Ok(if up {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    })
                }
            }
        }
        Commands::Bench { output } => {
            let report = bench::run(&render::repository_root())?;
            bench::print(&report, output == environment::Output::Json)?;
            Ok(ExitCode::SUCCESS)
        }
        Commands::Build { arch, output } => {
            let report = build::build(&render::repository_root(), arch)?;
            build::print(&report, output == environment::Output::Json)?;
            Ok(ExitCode::SUCCESS)
        }
        Commands::Config { env, output } => {
            environment::show(env.as_deref(), output).map(|()| ExitCode::SUCCESS)
        }
        Commands::Emulator { port, config } => serve_emulator(port, config.as_deref()),
    }
}

/// Runs the emulator in this process (the demo org, or `config`) until SIGTERM or Ctrl-C; also
/// what `local up` runs in the background.
fn serve_emulator(port: u16, config: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    let org = match config {
        Some(path) => sf_emulator::OrgConfig::from_file(path)?,
        None => sf_emulator::OrgConfig::demo(),
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let emulator = sf_emulator::Emulator::start_on(org, address).await.with_context(|| {
            format!("starting the emulator on port {port}\nhint: pick another --port, or 0 for any free port")
        })?;
        println!("sf-emulator listening on {}", emulator.base_url());
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .context("listening for SIGTERM")?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        emulator.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}
