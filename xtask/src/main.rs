//! `cargo xtask`: the sfstack orchestrator's entry point — command-line parsing and output;
//! the work is in the modules.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[macro_use]
mod progress;

mod aws_error;
mod bench;
mod bootstrap;
mod build;
mod cloud;
mod config;
mod connect;
mod deploy;
mod environment;
mod envs;
mod infra;
mod invoke;
mod keygen;
mod local;
mod lock;
mod logs;
mod naming;
mod network;
mod render;
mod smoke;
mod stack;
mod teardown;

use cloud::{Cloud, TargetArgs};
use environment::Output;

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
    #[command(display_order = 10)]
    Bench {
        /// Instead: deploy a throwaway environment and send it 1,000 phoneLookups, 50 at a
        /// time, through the Lambda Invoke API (latency, errors, throttles, logins, peak
        /// execution environments).
        #[arg(long)]
        load: bool,
        /// `text` (a Markdown table, default) or `json`.
        #[arg(long, default_value = "text")]
        output: environment::Output,
    },
    /// Build every function as a Lambda zip (cargo lambda build --release --output-format zip).
    #[command(display_order = 7)]
    Build {
        /// CPU architecture of the functions.
        #[arg(long, default_value = "x86_64")]
        arch: build::Arch,
        /// `text` (default) or `json` (one JSON document on stdout).
        #[arg(long, default_value = "text")]
        output: environment::Output,
    },
    /// Show the environment this checkout deploys to and its effective settings.
    #[command(display_order = 8)]
    Config {
        /// Environment name; default: derived from the git branch.
        #[arg(long, env = "SFSTACK_ENV")]
        env: Option<String>,
        /// `text` (default) or `json` (one JSON document on stdout).
        #[arg(long, default_value = "text")]
        output: environment::Output,
    },
    /// The local cloud on 127.0.0.1: the moto server, the Salesforce emulator and the local
    /// Lambda service.
    #[command(display_order = 9)]
    Local {
        #[command(subcommand)]
        action: LocalAction,
        /// `text` (default) or `json`.
        #[arg(long, default_value = "text", global = true)]
        output: environment::Output,
    },
    /// Deploy the environment (default: named from the git branch) to the target.
    #[command(display_order = 1)]
    Deploy {
        /// Environment name; default: derived from the git branch.
        #[arg(long, env = "SFSTACK_ENV")]
        env: Option<String>,
        /// Only show the change set's preview; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Allow this Amazon Connect instance to invoke sf-invoke-api (overrides sfstack.toml).
        #[arg(long)]
        connect_instance_arn: Option<String>,
        /// CPU architecture of the functions (default: sfstack.toml's functions.architecture).
        #[arg(long)]
        arch: Option<build::Arch>,
        /// Required to deploy a protected environment (main, prod, production, …) to AWS; the
        /// environment deployer role (`bootstrap`) is refused even with it.
        #[arg(long)]
        protected: bool,
        /// Replace a failed stack (deleted and created again) even though its tokens table
        /// holds users' OAuth tokens, which are then lost.
        #[arg(long)]
        replace_failed_stack: bool,
        /// How long to wait while another run deploys or tears down the environment (e.g. 30s,
        /// 20m; 0s: fail at once).
        #[arg(long, default_value = "20m")]
        lock_wait: String,
        /// Remove the environment's lock first: for a run that was killed and left it.
        #[arg(long)]
        break_lock: bool,
        #[command(flatten)]
        target: TargetArgs,
        /// `text` (default) or `json` (one JSON document on stdout).
        #[arg(long, default_value = "text")]
        output: Output,
    },
    /// Render the CloudFormation template and IAM policies the environment would get (under
    /// target/sfstack/<target>/<env>/), check them, and run cfn-lint.
    #[command(display_order = 6)]
    Render {
        /// Environment name; default: derived from the git branch.
        #[arg(long, env = "SFSTACK_ENV")]
        env: Option<String>,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Remove everything the environment created (protected environments need --force).
    #[command(display_order = 3)]
    Teardown {
        /// Environment name; default: derived from the git branch.
        #[arg(long, env = "SFSTACK_ENV")]
        env: Option<String>,
        /// Required to tear down a protected environment (main, prod, production, …).
        #[arg(long)]
        force: bool,
        /// Also delete a protected environment's OAuth tokens (its users sign in again).
        #[arg(long)]
        delete_data: bool,
        /// How long to wait while another run deploys or tears down the environment (e.g. 30s,
        /// 20m; 0s: fail at once).
        #[arg(long, default_value = "20m")]
        lock_wait: String,
        /// Remove the environment's lock first: for a run that was killed and left it.
        #[arg(long)]
        break_lock: bool,
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, default_value = "text")]
        output: Output,
    },
    /// Run the sample events against a deployed environment: phoneLookup → createCase →
    /// closeCase → queryCase → deleteCase, token refresh, rotation, OAuth callback.
    #[command(display_order = 2)]
    SmokeTest {
        /// Environment name; default: derived from the git branch.
        #[arg(long, env = "SFSTACK_ENV")]
        env: Option<String>,
        #[command(flatten)]
        target: TargetArgs,
        /// `text` (a table, default) or `json`.
        #[arg(long, default_value = "text")]
        output: Output,
        /// Also write a JUnit XML report here (for CI).
        #[arg(long)]
        junit: Option<std::path::PathBuf>,
    },
    /// Send an event to a deployed function: the answer on stdout, a function error on stderr
    /// (exit code 4).
    #[command(display_order = 7)]
    Invoke {
        /// The function's short name: sf-invoke-api, sf-token-refresh, sf-secret-rotation or
        /// sf-oauth-callback.
        function: String,
        /// `-` reads the event from standard input.
        #[arg(value_name = "-", conflicts_with_all = ["event", "event_json"])]
        stdin: Option<String>,
        /// A JSON file, a sample of tests/events/ by name (phoneLookup), or `-` for standard input.
        #[arg(long, conflicts_with = "event_json")]
        event: Option<String>,
        /// The event itself, as JSON.
        #[arg(long)]
        event_json: Option<String>,
        /// Environment name; default: derived from the git branch.
        #[arg(long, env = "SFSTACK_ENV")]
        env: Option<String>,
        #[command(flatten)]
        target: TargetArgs,
        /// `text` (default: the answer) or `json` (payload, error, duration, log tail).
        #[arg(long, default_value = "text")]
        output: Output,
    },
    /// A deployed function's log lines (CloudWatch Logs), readably or as JSON; --follow until
    /// Ctrl-C.
    #[command(display_order = 8)]
    Logs {
        /// The function's short name: sf-invoke-api, sf-token-refresh, sf-secret-rotation or
        /// sf-oauth-callback.
        function: String,
        /// How far back to start (e.g. 30s, 10m, 2h, 1d).
        #[arg(long, default_value = "10m")]
        since: String,
        /// Keep printing new lines until Ctrl-C.
        #[arg(long)]
        follow: bool,
        /// Only lines that contain this text.
        #[arg(long)]
        filter: Option<String>,
        /// Environment name; default: derived from the git branch.
        #[arg(long, env = "SFSTACK_ENV")]
        env: Option<String>,
        #[command(flatten)]
        target: TargetArgs,
        /// `text` (default: time, level, message, fields) or `json` (each line as logged).
        #[arg(long, default_value = "text")]
        output: Output,
    },
    /// Prepare an account for GitHub Actions: the OIDC provider, and least-privilege deployer
    /// roles for branch environments and for protected ones.
    #[command(display_order = 8)]
    Bootstrap {
        /// The GitHub repository whose Actions may deploy (`OWNER/NAME`).
        #[arg(long)]
        github_repo: String,
        /// The branch protected environments are deployed from.
        #[arg(long, default_value = "main")]
        default_branch: String,
        /// The GitHub environment (with required reviewers) that guards protected deploys.
        #[arg(long, default_value = "production")]
        github_environment: String,
        /// Show the provider, roles and policies it would make; make nothing.
        #[arg(long)]
        print: bool,
        /// Remove the two deployer roles (the OIDC provider stays).
        #[arg(long)]
        delete: bool,
        #[command(flatten)]
        target: TargetArgs,
        /// `text` (default) or `json`.
        #[arg(long, default_value = "text")]
        output: Output,
    },
    /// List the environments on the target: branch, status, age, expiry.
    #[command(display_order = 4)]
    Envs {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, default_value = "text")]
        output: Output,
    },
    /// Tear down stale environments (never protected ones).
    #[command(display_order = 5)]
    Prune {
        /// Environments created longer ago than this (e.g. 7d, 36h).
        #[arg(long)]
        older_than: Option<String>,
        /// Environments past their expiry (sfstack.toml's environments.ttl).
        #[arg(long)]
        expired: bool,
        /// Environments whose branch is merged into the default branch.
        #[arg(long)]
        merged: bool,
        /// Only list what would be torn down.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Print the environment name a branch deploys to (the branch name, sanitized).
    #[command(display_order = 12)]
    EnvName {
        /// Branch name; default: the current branch.
        branch: Option<String>,
    },
    /// The local Lambda service (what `local up` runs in the background).
    #[command(hide = true)]
    LambdaService {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        aws_endpoint: String,
        /// The AWS gateway: functions then run as their execution roles through it.
        #[arg(long)]
        gateway: Option<String>,
        #[arg(long)]
        work_dir: std::path::PathBuf,
    },
    /// The local cloud's AWS gateway (what `local up` runs in the background).
    #[command(hide = true)]
    AwsGateway {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        moto_url: String,
        #[arg(long)]
        decision_log: std::path::PathBuf,
        /// Log what IAM would deny but let it through (debugging only).
        #[arg(long)]
        no_enforce: bool,
    },
    /// Generate the JWT bearer flow's key pair: a self-signed certificate to upload to the
    /// Salesforce connected app, and an RSA private key written only into the credentials file.
    #[command(display_order = 11)]
    JwtKeygen {
        /// Where the certificate goes (default: target/sfstack/jwt in the repository).
        #[arg(long)]
        out_dir: Option<std::path::PathBuf>,
        /// Credentials JSON file that gets PrivateKey (default: <out-dir>/credentials.json).
        #[arg(long)]
        credentials: Option<std::path::PathBuf>,
        /// The certificate's subject common name.
        #[arg(long, default_value = "sfstack")]
        common_name: String,
        /// How many days the certificate is valid.
        #[arg(long, default_value_t = 730)]
        days: u32,
        /// Replace a PrivateKey the credentials file already has.
        #[arg(long)]
        force: bool,
    },
    /// Run the local Salesforce org (the emulator with its demo org) until Ctrl-C.
    #[command(display_order = 13)]
    Emulator {
        /// Port to listen on (0 picks a free one).
        #[arg(long, default_value_t = 8788)]
        port: u16,
        /// Org configuration file (TOML); the demo org when absent.
        #[arg(long)]
        config: Option<std::path::PathBuf>,
        /// The demo org's JWT key (PKCS#8 PEM), made there on first use; the demo app trusts
        /// it. Without it the demo app trusts a key only this process knows.
        #[arg(long)]
        demo_jwt_key: Option<std::path::PathBuf>,
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
    /// Show the AWS gateway's decisions (principal, action, resource, decision, deciding
    /// statement), oldest first.
    Decisions {
        /// Only the denials.
        #[arg(long)]
        denied: bool,
        /// Only the last N.
        #[arg(long)]
        last: Option<usize>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            progress::clear();
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
                LocalAction::Decisions { denied, last } => {
                    local::print_decisions(&root, denied, last, json)?;
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
        Commands::Bench { load: true, output } => {
            let report = bench::load::run(&render::repository_root())?;
            bench::load::print(&report, output == environment::Output::Json)?;
            Ok(ExitCode::SUCCESS)
        }
        Commands::Bench {
            load: false,
            output,
        } => {
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
        Commands::Emulator {
            port,
            config,
            demo_jwt_key,
        } => serve_emulator(port, config.as_deref(), demo_jwt_key.as_deref()),
        Commands::JwtKeygen {
            out_dir,
            credentials,
            common_name,
            days,
            force,
        } => {
            let options = keygen::Options {
                out_dir,
                credentials,
                common_name,
                days,
                force,
            };
            print!("{}", keygen::run(&render::repository_root(), &options)?);
            Ok(ExitCode::SUCCESS)
        }
        Commands::Deploy {
            env,
            dry_run,
            connect_instance_arn,
            arch,
            protected,
            replace_failed_stack,
            lock_wait,
            break_lock,
            target,
            output,
        } => {
            let lock = lock_options(&lock_wait, break_lock)?;
            let root = render::repository_root();
            let (environment, settings) = environment_and_settings(&root, env.as_deref())?;
            // A branch named like a protected environment must not deploy over it from CI with
            // the credentials every branch has. The local target is everyone's sandbox (a fresh
            // clone's `main` deploys there as is).
            let protected_environment = target.target == cloud::Target::Aws
                && config::is_protected(&environment.name, Some(&settings))
                && !dry_run;
            if protected_environment && !protected {
                anyhow::bail!(
                    "{} is a protected environment; nothing was deployed\nhint: pass --protected if you mean to deploy it (CI does so only as {}, from the default branch through a reviewed GitHub environment)",
                    environment.name,
                    bootstrap::PROTECTED_DEPLOYER
                );
            }
            let (settings, arch) = deploy::with_architecture(settings, arch)?;
            let request = deploy::DeployRequest {
                environment,
                settings,
                arch,
                dry_run,
                connect_instance_arn,
                replace_failed_stack,
            };
            let report = on_cloud(&root, &target, async |cloud| {
                if protected_environment {
                    bootstrap::may_deploy_protected(&request.environment.name, &cloud.caller)?;
                }
                if request.dry_run {
                    return deploy::deploy(cloud, &root, &request).await;
                }
                lock::holding(
                    cloud,
                    &request.environment.name,
                    "deploy",
                    &lock,
                    true,
                    &infra::artifacts_bucket(&request.settings, &cloud.account_id, &cloud.region),
                    deploy::deploy(cloud, &root, &request),
                )
                .await
            })?;
            print_deploy(&report, output)?;
            Ok(ExitCode::SUCCESS)
        }
        Commands::Render { env, target } => {
            let root = render::repository_root();
            let (environment, settings) = environment_and_settings(&root, env.as_deref())?;
            let arch = settings.functions.architecture.parse()?;
            let written = on_cloud(&root, &target, async |cloud| {
                deploy::render(cloud, &root, &environment, &settings, arch).await
            })?;
            for path in written {
                println!("{}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Commands::Teardown {
            env,
            force,
            delete_data,
            lock_wait,
            break_lock,
            target,
            output,
        } => {
            let lock = lock_options(&lock_wait, break_lock)?;
            let root = render::repository_root();
            let (environment, settings) = environment_and_settings(&root, env.as_deref())?;
            let protected = config::is_protected(&environment.name, Some(&settings));
            if protected && !force {
                anyhow::bail!(
                    "{} is a protected environment; nothing was removed\nhint: pass --force if you really mean to tear it down",
                    environment.name
                );
            }
            let report = on_cloud(&root, &target, async |cloud| {
                lock::holding(
                    cloud,
                    &environment.name,
                    "teardown",
                    &lock,
                    false,
                    &infra::artifacts_bucket(&settings, &cloud.account_id, &cloud.region),
                    teardown::teardown(
                        cloud,
                        &root,
                        &environment.name,
                        teardown::Data {
                            protected,
                            delete: delete_data,
                        },
                    ),
                )
                .await
            })?;
            print_teardown(&report, output)?;
            Ok(ExitCode::SUCCESS)
        }
        Commands::SmokeTest {
            env,
            target,
            output,
            junit,
        } => {
            let root = render::repository_root();
            let (environment, settings) = environment_and_settings(&root, env.as_deref())?;
            let connect_instance = settings.connect.instance_arn.as_deref();
            let sample_flow = settings.connect.sample_flow;
            let report = on_cloud(&root, &target, async |cloud| {
                smoke::smoke_test(
                    cloud,
                    &root,
                    &environment.name,
                    connect_instance,
                    sample_flow,
                )
                .await
            })?;
            if let Some(path) = junit {
                std::fs::write(&path, smoke::junit(&report))
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            if output == Output::Json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                smoke::print_table(&report);
            }
            Ok(if report.passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_SMOKE_FAILED)
            })
        }
        Commands::Invoke {
            function,
            stdin,
            event,
            event_json,
            env,
            target,
            output,
        } => {
            let root = render::repository_root();
            let function = invoke::function(&function)?;
            let source = match (stdin.as_deref(), event, event_json) {
                (Some("-"), _, _) => invoke::EventSource::Stdin,
                (Some(other), _, _) => anyhow::bail!(
                    "unexpected argument {other:?}\nhint: give the event with --event FILE, --event-json JSON, or - for standard input"
                ),
                (None, Some(event), _) if event == "-" => invoke::EventSource::Stdin,
                (None, Some(event), _) => invoke::EventSource::File(event),
                (None, None, Some(json)) => invoke::EventSource::Inline(json),
                (None, None, None) => invoke::EventSource::Empty,
            };
            let event = invoke::read_event(&root, &source)?;
            let environment = environment::resolve(env.as_deref())?;
            let names = naming::Names::new(&environment.name);
            let report = on_cloud(&root, &target, async |cloud| {
                invoke::invoke(cloud, &names, function, &event).await
            })?;
            if output == Output::Json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else if let Some(error) = &report.error {
                for line in &report.log_tail {
                    eprintln!("  {line}");
                }
                eprintln!(
                    "{} failed: {}: {}",
                    report.function, error.error_type, error.error_message
                );
            } else {
                println!("{}", serde_json::to_string_pretty(&report.payload)?);
            }
            Ok(if report.error.is_some() {
                ExitCode::from(EXIT_FUNCTION_ERROR)
            } else {
                ExitCode::SUCCESS
            })
        }
        Commands::Logs {
            function,
            since,
            follow,
            filter,
            env,
            target,
            output,
        } => {
            let root = render::repository_root();
            let function = invoke::function(&function)?;
            let since = config::parse_duration(&since).context("--since")?;
            let environment = environment::resolve(env.as_deref())?;
            let names = naming::Names::new(&environment.name);
            let request = logs::Request {
                function,
                since,
                filter,
                follow,
                json: output == Output::Json,
            };
            let printed = on_cloud(&root, &target, async |cloud| {
                logs::show(cloud, &names, &request).await
            })?;
            if printed == 0 && !follow && output != Output::Json {
                eprintln!(
                    "no log lines from {} in the last {}",
                    names.log_group(function),
                    lock::humanize(since)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Commands::Bootstrap {
            github_repo,
            default_branch,
            github_environment,
            print,
            delete,
            target,
            output,
        } => {
            let root = render::repository_root();
            let request = bootstrap::Request {
                repository: github_repo,
                default_branch,
                github_environment,
            };
            bootstrap::validate_repository(&request.repository)?;
            // The settings of no environment in particular: the protected list and the
            // artifacts bucket are the same for all.
            let settings = config::Settings::load(&root.join(config::FILE_NAME), "main")?;
            // The Amazon Connect instances and VPCs of every environment.
            let every = config::Settings::load_every_environment(&root.join(config::FILE_NAME))?;
            let report = on_cloud(&root, &target, async |cloud| {
                let plan = bootstrap::plan(
                    &root,
                    &request,
                    &settings,
                    &every,
                    &cloud.region,
                    &cloud.account_id,
                )?;
                if print {
                    return Ok(bootstrap::Report {
                        changes: Vec::new(),
                        plan,
                    });
                }
                if delete {
                    bootstrap::delete(cloud, plan).await
                } else {
                    bootstrap::apply(cloud, plan).await
                }
            })?;
            if print && output != Output::Json {
                bootstrap::print_plan(&report.plan)?;
            } else {
                bootstrap::print(&report, output == Output::Json)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Commands::Envs { target, output } => {
            let root = render::repository_root();
            let list = on_cloud(&root, &target, async |cloud| envs::list(cloud, &root).await)?;
            envs::print(&list, output == Output::Json)?;
            Ok(ExitCode::SUCCESS)
        }
        Commands::Prune {
            older_than,
            expired,
            merged,
            dry_run,
            target,
        } => {
            let older_than = older_than
                .as_deref()
                .map(config::parse_duration)
                .transpose()
                .context("--older-than")?;
            if older_than.is_none() && !expired && !merged {
                anyhow::bail!(
                    "prune needs a criterion\nhint: pass --older-than DURATION (e.g. 7d), --expired or --merged"
                );
            }
            let criteria = envs::Criteria {
                older_than,
                expired,
                merged,
            };
            let root = render::repository_root();
            let removed = on_cloud(&root, &target, async |cloud| {
                envs::prune(cloud, &root, &criteria, dry_run).await
            })?;
            if removed.is_empty() && !dry_run {
                println!("nothing to prune");
            }
            Ok(ExitCode::SUCCESS)
        }
        Commands::EnvName { branch } => {
            let name = match branch {
                Some(branch) => naming::env_from_branch(&branch),
                None => environment::resolve(None)?.name,
            };
            println!("{name}");
            Ok(ExitCode::SUCCESS)
        }
        Commands::LambdaService {
            port,
            aws_endpoint,
            gateway,
            work_dir,
        } => serve_lambda(port, aws_endpoint, gateway, work_dir),
        Commands::AwsGateway {
            port,
            moto_url,
            decision_log,
            no_enforce,
        } => serve_gateway(port, moto_url, decision_log, !no_enforce),
    }
}

/// Exit code of a smoke test that ran and found a failure (1 is any other error).
const EXIT_SMOKE_FAILED: u8 = 3;
/// `invoke`: the function answered with an error.
const EXIT_FUNCTION_ERROR: u8 = 4;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("starting the async runtime")
}

/// The environment a command acts on (`--env`, else the git branch) and its settings.
fn environment_and_settings(
    root: &std::path::Path,
    env: Option<&str>,
) -> anyhow::Result<(environment::Environment, config::Settings)> {
    let environment = environment::resolve(env)?;
    let settings = config::Settings::load(&root.join(config::FILE_NAME), &environment.name)?;
    Ok((environment, settings))
}

/// Runs `work` against the target (starting the local cloud first when it is the target and
/// is not running).
fn lock_options(wait: &str, break_lock: bool) -> anyhow::Result<lock::Options> {
    Ok(lock::Options {
        wait: config::parse_duration(wait).context("--lock-wait")?,
        break_lock,
    })
}

fn on_cloud<T>(
    root: &std::path::Path,
    target: &TargetArgs,
    work: impl AsyncFnOnce(&Cloud) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let local = cloud::prepare(root, target)?;
    runtime()?.block_on(async {
        let cloud = Cloud::connect(target, local).await?;
        work(&cloud).await
    })
}

fn print_deploy(report: &deploy::DeployReport, output: Output) -> anyhow::Result<()> {
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    if !report.changed {
        println!("{}: no changes", report.environment);
    } else {
        println!(
            "{}: {}",
            report.environment,
            if report.dry_run {
                "would change (dry run, nothing changed)"
            } else {
                "changed"
            }
        );
        for line in &report.preview {
            println!("  {line}");
        }
    }
    for change in &report.changes {
        println!("  {change}");
    }
    if let Some(outputs) = &report.outputs {
        println!();
        for (function, arn) in &outputs.functions {
            println!("  {function:<20} {arn}");
        }
        println!("  {:<20} {}", "callback URL", outputs.callback_url);
        println!("  {:<20} {}?link=…", "sign-in URL", outputs.sign_in_url);
        println!(
            "  {:<20} {}",
            "credentials secret", outputs.credentials_secret_arn
        );
        println!(
            "  {:<20} {}",
            "OAuth client secret", outputs.oauth_client_secret_arn
        );
        println!("  {:<20} {}", "session secret", outputs.session_secret_arn);
        println!("  {:<20} {}", "KMS key", outputs.kms_key_alias);
        println!(
            "  {:<20} {}",
            "OAuth tokens table", outputs.oauth_tokens_table
        );
        println!(
            "  {:<20} {}",
            "OAuth states table", outputs.oauth_states_table
        );
    }
    if let Some(file) = &report.outputs_file {
        println!("  {:<20} {}", "outputs", file.display());
    }
    let total = report
        .timings
        .iter()
        .find(|(name, _)| name == "total")
        .map_or(0.0, |(_, seconds)| *seconds);
    eprintln!("deploy: done in {total:.1} s");
    Ok(())
}

fn print_teardown(report: &teardown::TeardownReport, output: Output) -> anyhow::Result<()> {
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    if report.is_empty() {
        println!("{}: nothing to remove", report.environment);
        return Ok(());
    }
    println!("{}: removed", report.environment);
    if report.sample_flow_deleted {
        println!("  the sample contact flow");
    }
    if let Some(instance) = &report.connect_association {
        println!("  the association of sf-invoke-api with the Amazon Connect instance {instance}");
    }
    if report.stack_deleted {
        println!("  stack (functions, Function URL, permissions, log groups, rule, table)");
    }
    for group in &report.log_groups {
        println!("  log group {group}");
    }
    for secret in &report.removed.secrets {
        println!("  secret {secret}");
    }
    for role in &report.removed.roles {
        println!("  role {role} (and its inline policy)");
    }
    for key in &report.removed.key {
        println!("  {key}");
    }
    eprintln!("teardown: done in {:.1} s", report.seconds);
    Ok(())
}

/// Runs a background service's `serve` until it ends, Ctrl-C or SIGTERM (what `local down`
/// sends).
async fn until_stopped(
    serve: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    tokio::select! {
        result = serve => result,
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = terminate.recv() => Ok(()),
    }
}

/// Serves the local Lambda Invoke API (see the `lambda-runner` crate) until SIGTERM or Ctrl-C.
fn serve_lambda(
    port: u16,
    aws_endpoint: String,
    gateway: Option<String>,
    work_dir: std::path::PathBuf,
) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| format!("binding 127.0.0.1:{port}"))?;
        eprintln!("lambda service listening on http://127.0.0.1:{port}");
        let config = lambda_runner::RunnerConfig {
            aws_endpoint,
            region: cloud::LOCAL_REGION.to_string(),
            work_dir,
            gateway,
        };
        until_stopped(lambda_runner::serve(listener, config)).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Serves the AWS gateway (see the `aws-gateway` crate) until SIGTERM or Ctrl-C.
fn serve_gateway(
    port: u16,
    moto_url: String,
    decision_log: std::path::PathBuf,
    enforce: bool,
) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| format!("binding 127.0.0.1:{port}"))?;
        eprintln!("aws gateway listening on http://127.0.0.1:{port} in front of {moto_url}");
        let config = aws_gateway::GatewayConfig {
            moto_url,
            account_id: cloud::LOCAL_ACCOUNT.to_string(),
            region: cloud::LOCAL_REGION.to_string(),
            decision_log,
            enforce,
            throttle_every: aws_gateway::fidelity::THROTTLE_EVERY,
        };
        until_stopped(aws_gateway::serve(listener, config)).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Runs the emulator in this process (the demo org, or `config`) until SIGTERM or Ctrl-C; also
/// what `local up` runs in the background.
fn serve_emulator(
    port: u16,
    config: Option<&std::path::Path>,
    demo_jwt_key: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let org = match (config, demo_jwt_key) {
        (Some(path), _) => sf_emulator::OrgConfig::from_file(path)?,
        (None, Some(key)) => {
            sf_emulator::OrgConfig::demo_trusting(&sf_emulator::DemoKey::load_or_create(key)?)
        }
        (None, None) => sf_emulator::OrgConfig::demo(),
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let emulator = sf_emulator::Emulator::start_on(org, address).await.with_context(|| {
            format!("starting the emulator on port {port}\nhint: pick another --port, or 0 for any free port")
        })?;
        println!("sf-emulator listening on {}", emulator.base_url());
        until_stopped(std::future::pending()).await?;
        emulator.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}
