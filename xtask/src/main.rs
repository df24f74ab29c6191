//! `cargo xtask`: the sfstack orchestrator's entry point. For now it only runs the local
//! Salesforce org; deploy, smoke-test and teardown come with the orchestrator.

use std::process::{Command, ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};

mod build;
mod config;
mod environment;
mod naming;
#[allow(dead_code)] // Used by deploy, which lands with the rest of the orchestrator.
mod render;

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
        Commands::Build { arch, output } => {
            let report = build::build(&render::repository_root(), arch)?;
            build::print(&report, output == environment::Output::Json)?;
            Ok(ExitCode::SUCCESS)
        }
        Commands::Config { env, output } => {
            environment::show(env.as_deref(), output).map(|()| ExitCode::SUCCESS)
        }
        Commands::Emulator { port, config } => {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut command = Command::new(cargo);
            command.args(["run", "--quiet", "--package", "sf-emulator", "--", "--port"]);
            command.arg(port.to_string());
            if let Some(config) = config {
                command.arg("--config").arg(config);
            }
            let status = command
                .status()
                .context("running the emulator with cargo")?;
            Ok(if status.success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
