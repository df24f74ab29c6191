//! `bench --load`: a burst of phoneLookups the way Amazon Connect sends them, many contacts at
//! once, through the Lambda Invoke API of a deployed environment on the local cloud. The local
//! Lambda service runs one invocation per execution environment and starts more on demand, as
//! Lambda does, so the burst shows cold starts under load, the session kept in Secrets Manager
//! shared by every environment (no environment logs in), and the throttles beyond a reserved
//! concurrency.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_sdk_lambda::primitives::Blob;
use serde::Serialize;

use super::{emulator_log, millis, percentile, timed_command};
use crate::build::{self, Arch};
use crate::cloud::{Cloud, Target, TargetArgs};
use crate::local;
use crate::naming::Names;

/// Invocations in the burst.
pub const INVOCATIONS: usize = 1000;
/// At most this many in flight at once.
pub const CONCURRENCY: usize = 50;
const FUNCTION: &str = "sf-invoke-api";

/// What the burst gave.
#[derive(Debug, Serialize)]
pub struct LoadReport {
    pub invocations: usize,
    pub concurrency: usize,
    /// Round trip of one Invoke call, milliseconds.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// From the first call to the last answer, seconds.
    pub wall_s: f64,
    pub invocations_per_second: f64,
    /// Function errors and refused calls other than throttles.
    pub errors: usize,
    /// `TooManyRequestsException` answers.
    pub throttles: usize,
    /// The first error's text, if any.
    pub first_error: Option<String>,
    /// Logins Salesforce saw during the burst.
    pub logins: usize,
    /// The most execution environments of the function at once.
    pub peak_environments: u64,
}

/// Deploys a throwaway environment on the local cloud, sends the burst, tears it down.
pub fn run(root: &Path) -> anyhow::Result<LoadReport> {
    build::build(root, Arch::X86_64)?;
    let cloud = local::up(root)?;
    let environment = format!("bench-load-{}", std::process::id());
    eprintln!("bench: deploying {environment}");
    let report = timed_command(root, &["deploy", "--env", &environment]).and_then(|_| {
        tokio::runtime::Runtime::new()
            .context("starting the async runtime")?
            .block_on(burst(root, cloud, &environment))
    });
    // Whatever happened, nothing is left behind.
    let teardown = timed_command(root, &["teardown", "--env", &environment]);
    let report = report?;
    teardown?;
    Ok(report)
}

/// How one invocation ended.
enum Ending {
    Answered,
    Throttled,
    Failed(String),
}

async fn burst(
    root: &Path,
    local: local::LocalCloud,
    environment: &str,
) -> anyhow::Result<LoadReport> {
    let emulator = local.emulator.url.clone();
    let runner = local
        .lambda
        .as_ref()
        .map(|service| service.url.clone())
        .context("the local Lambda service is not running")?;
    let args = TargetArgs {
        target: Target::Local,
        profile: None,
        region: None,
    };
    let cloud = Cloud::connect(&args, Some(local)).await?;
    // Every call is counted as it ends: a throttle is a throttle, not a retry's success.
    let lambda = aws_sdk_lambda::Client::from_conf(
        cloud
            .invoker
            .config()
            .to_builder()
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build(),
    );
    let function = Names::new(environment).function(FUNCTION);
    let event = Blob::new(
        std::fs::read(root.join("tests/events/phoneLookup.json"))
            .context("reading the phoneLookup event")?,
    );
    let http = reqwest::Client::new();
    http.delete(format!("{emulator}/__emulator/requests"))
        .send()
        .await
        .context("clearing the emulator's request log")?;

    eprintln!("bench: {INVOCATIONS} phoneLookups, {CONCURRENCY} at a time");
    let slots = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut calls = tokio::task::JoinSet::new();
    let started = Instant::now();
    for _ in 0..INVOCATIONS {
        let permit = slots
            .clone()
            .acquire_owned()
            .await
            .context("the burst's semaphore closed")?;
        let request = lambda
            .invoke()
            .function_name(&function)
            .payload(event.clone());
        calls.spawn(async move {
            let sent = Instant::now();
            let ending = match request.send().await {
                Ok(output) if output.function_error().is_none() => Ending::Answered,
                Ok(output) => Ending::Failed(format!(
                    "function error: {}",
                    output
                        .payload()
                        .map(|body| String::from_utf8_lossy(body.as_ref()).into_owned())
                        .unwrap_or_default()
                )),
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|error| error.is_too_many_requests_exception()) =>
                {
                    Ending::Throttled
                }
                Err(error) => {
                    Ending::Failed(aws_sdk_lambda::error::DisplayErrorContext(error).to_string())
                }
            };
            drop(permit);
            (sent.elapsed(), ending)
        });
    }
    let mut times = Vec::with_capacity(INVOCATIONS);
    let (mut errors, mut throttles, mut first_error) = (0, 0, None);
    while let Some(joined) = calls.join_next().await {
        let (took, ending) = joined.context("an invocation task failed")?;
        times.push(millis(took));
        match ending {
            Ending::Answered => {}
            Ending::Throttled => throttles += 1,
            Ending::Failed(error) => {
                errors += 1;
                first_error.get_or_insert(error);
            }
        }
    }
    let wall = started.elapsed();
    times.sort_by(f64::total_cmp);

    let logins = emulator_log(&http, &emulator)
        .await?
        .iter()
        .filter(|entry| entry["grant_type"].is_string())
        .count();
    let environments: serde_json::Value = http
        .get(format!("{runner}{}", lambda_runner::ENVIRONMENTS_PATH))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .context("asking the local Lambda service for its environments")?
        .json()
        .await
        .context("reading the local Lambda service's environments")?;
    Ok(LoadReport {
        invocations: INVOCATIONS,
        concurrency: CONCURRENCY,
        p50_ms: percentile(&times, 0.5),
        p99_ms: percentile(&times, 0.99),
        max_ms: times.last().copied().unwrap_or_default(),
        wall_s: wall.as_secs_f64(),
        invocations_per_second: INVOCATIONS as f64 / wall.as_secs_f64().max(f64::EPSILON),
        errors,
        throttles,
        first_error,
        logins,
        peak_environments: environments[&function]["peak"].as_u64().unwrap_or_default(),
    })
}

pub fn print(report: &LoadReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| burst | {} phoneLookups, {} at a time, through the Invoke API |",
        report.invocations, report.concurrency
    );
    println!(
        "| round trip p50 / p99 / max | {:.1} / {:.1} / {:.1} ms |",
        report.p50_ms, report.p99_ms, report.max_ms
    );
    println!(
        "| wall time | {:.2} s ({:.0} invocations/s) |",
        report.wall_s, report.invocations_per_second
    );
    println!("| errors | {} |", report.errors);
    println!(
        "| throttles (TooManyRequestsException) | {} |",
        report.throttles
    );
    println!("| Salesforce logins | {} |", report.logins);
    println!(
        "| peak execution environments | {} |",
        report.peak_environments
    );
    if let Some(error) = &report.first_error {
        println!("\nfirst error: {error}");
    }
    Ok(())
}
