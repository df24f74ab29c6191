//! `bench`: measures `sf-invoke-api` as Lambda runs it — the release bootstrap from the zip,
//! driven through the Lambda Runtime API (`lambda_runner::runtime_api`) against the local
//! cloud (moto and the emulator) — and prints a table: cold start and its breakdown, warm
//! overhead, peak RSS, zip sizes, logins; then cold start and RSS of the other three
//! functions ([`functions`]). `bench --load` ([`load`]) sends a burst through a deployed
//! environment.

mod functions;
pub mod load;
mod recorder;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use lambda_runner::runtime_api::{Answer, Bytes, Event, Invocation, RuntimeApi};
use serde::Serialize;
use serde_json::Value;

use crate::aws_error::AwsContext;
use crate::build::{self, Arch};
use crate::local;

const COLD_STARTS: usize = 20;
const WARM_INVOCATIONS: usize = 1000;
const FUNCTION: &str = "sf-invoke-api";
/// AWS calls timed directly against moto and through the AWS gateway.
const GATEWAY_CALLS: usize = 300;

/// What an invocation answered: the response body, or the error body.
type Outcome = Result<Bytes, Bytes>;

/// The shared Runtime API ([`lambda_runner::runtime_api`]) with bench's request ids.
struct Runtime {
    api: RuntimeApi,
    next_id: u64,
}

impl Runtime {
    async fn start(function: &str) -> anyhow::Result<Self> {
        let api = RuntimeApi::start(
            format!("arn:aws:lambda:us-east-1:123456789012:function:{function}"),
            Duration::from_secs(8),
        )
        .await?;
        Ok(Self { api, next_id: 0 })
    }

    /// The value for `AWS_LAMBDA_RUNTIME_API`.
    fn endpoint(&self) -> &str {
        self.api.endpoint()
    }

    /// Queues an event and waits for its outcome.
    async fn invoke(&mut self, event: &Bytes, timeout: Duration) -> anyhow::Result<Outcome> {
        Ok(self.invoke_timed(event, timeout).await?.1)
    }

    /// Queues an event and waits for its outcome; also returns when the runtime took it
    /// (its `next`).
    async fn invoke_timed(
        &mut self,
        event: &Bytes,
        timeout: Duration,
    ) -> anyhow::Result<(Option<Instant>, Outcome)> {
        self.next_id += 1;
        let request_id = format!("bench-{}", self.next_id);
        self.api.submit(Invocation {
            request_id: request_id.clone(),
            payload: event.clone(),
            trace_id: "Root=1-00000000-000000000000000000000000".to_string(),
            client_context: None,
        })?;
        let mut dispatched = None;
        let answer = tokio::time::timeout(timeout, async {
            loop {
                match self.api.next_event(&request_id).await {
                    Some(Event::Dispatched { at }) => dispatched = Some(at),
                    Some(Event::Answered(answer)) => return Ok(answer),
                    None => bail!("the Runtime API stopped"),
                }
            }
        })
        .await;
        match answer {
            Ok(Ok(Answer::Response(body))) => Ok((dispatched, Ok(body))),
            Ok(Ok(Answer::Error(body))) => Ok((dispatched, Err(body))),
            Ok(Ok(Answer::InitError(body))) => {
                eprintln!(
                    "bench: the function failed to initialize: {}",
                    String::from_utf8_lossy(&body)
                );
                bail!("the function failed to initialize")
            }
            Ok(Err(error)) => Err(error),
            Err(_) => bail!("no answer within {timeout:?}"),
        }
    }
}

/// One cold start: process start to its first answer, and to the runtime's first `next` (the
/// end of the init phase).
#[derive(Debug, Clone, Copy)]
struct Timing {
    total: Duration,
    ready: Duration,
}

/// A process after its cold start, still running, and its first answer.
struct ColdRun {
    timing: Timing,
    /// When the process was started.
    started: Instant,
    runtime: Runtime,
    child: Child,
    answer: Bytes,
}

/// Starts `function`'s bootstrap under a fresh Runtime API (a killed process's pending `next`
/// must not take the following process's event) with `event` queued, and waits for the
/// answer. A function error ends the bench: every workload here is one that succeeds.
async fn cold_start(
    bootstrap: &Path,
    function: &str,
    environment: &[(String, String)],
    event: &Bytes,
) -> anyhow::Result<ColdRun> {
    let mut runtime = Runtime::start(function).await?;
    let started = Instant::now();
    let mut child = spawn_function(bootstrap, function, runtime.endpoint(), environment)?;
    let outcome = runtime.invoke_timed(event, Duration::from_secs(20)).await;
    let total = started.elapsed();
    match outcome {
        Ok((dispatched, Ok(answer))) => Ok(ColdRun {
            timing: Timing {
                total,
                ready: dispatched.map_or(total, |at| at.saturating_duration_since(started)),
            },
            started,
            runtime,
            child,
            answer,
        }),
        Ok((_, Err(body))) => {
            stop(&mut child);
            bail!("{function} failed: {}", String::from_utf8_lossy(&body))
        }
        Err(error) => {
            stop(&mut child);
            Err(error.context(format!("{function}'s cold start")))
        }
    }
}

/// One more invocation of a warm process; a function error is an error.
async fn warm_invoke(runtime: &mut Runtime, event: &Bytes) -> anyhow::Result<Bytes> {
    match runtime.invoke(event, Duration::from_secs(20)).await? {
        Ok(body) => Ok(body),
        Err(body) => bail!("the function failed: {}", String::from_utf8_lossy(&body)),
    }
}

fn millis_median(durations: impl Iterator<Item = Duration>) -> f64 {
    let mut values: Vec<f64> = durations.map(millis).collect();
    values.sort_by(f64::total_cmp);
    percentile(&values, 0.5)
}

/// The numbers `bench` reports.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub cold_start_median_ms: f64,
    pub warm_overhead_p50_ms: f64,
    pub warm_overhead_p99_ms: f64,
    pub warm_total_p50_ms: f64,
    pub peak_rss_mb: f64,
    pub logins_per_1000: usize,
    /// The median cold start in parts, from cold starts whose AWS and Salesforce calls go
    /// through a recording forwarder ([`recorder`]).
    pub cold_breakdown: ColdBreakdown,
    pub zip_bytes: Vec<(String, u64)>,
    /// Cold start and peak RSS of the other three functions.
    pub functions: Vec<functions::FunctionFigures>,
    /// `deploy` of a new environment on the running local cloud (zips already built), seconds.
    pub deploy_new_s: f64,
    /// `deploy` again with nothing changed, seconds.
    pub deploy_no_op_s: f64,
    /// `teardown` of that environment, seconds.
    pub teardown_s: f64,
    /// `GetSecretValue` by a function's role session, p50: straight to moto, and through the
    /// AWS gateway (which decides it and the implicit `kms:Decrypt`), milliseconds.
    pub secret_read_moto_p50_ms: f64,
    pub secret_read_gateway_p50_ms: f64,
}

/// A cold start as a timeline: medians, in milliseconds from process start. The parts may
/// overlap: the function reads the stored session while its runtime starts.
#[derive(Debug, Default, Serialize)]
pub struct ColdBreakdown {
    /// The runtime's first `next`: exec, the async runtime, logging, settings, the SDK's
    /// configuration, the runtime client.
    pub runtime_ready_ms: f64,
    /// The Secrets Manager calls (the stored session): how many, when the first began and
    /// how long they took in all.
    pub secrets_calls: usize,
    pub secrets_start_ms: f64,
    pub secrets_ms: f64,
    /// The Salesforce calls (the phoneLookup's query): when the first began, how long in all.
    pub salesforce_start_ms: f64,
    pub salesforce_ms: f64,
    /// The answer (the whole cold start of these runs, the forwarder's hops included).
    pub total_ms: f64,
}

fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Extracts `bootstrap` from a function's zip (Python's zipfile, which the tools need anyway).
fn extract_bootstrap(zip: &Path, into: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(into).with_context(|| format!("creating {}", into.display()))?;
    let status = Command::new("python3")
        .args(["-m", "zipfile", "-e"])
        .arg(zip)
        .arg(into)
        .status()
        .context("running python3 -m zipfile")?;
    if !status.success() {
        bail!("could not extract {}", zip.display());
    }
    let bootstrap = into.join("bootstrap");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} executable", bootstrap.display()))?;
    Ok(bootstrap)
}

fn spawn_function(
    bootstrap: &Path,
    function: &str,
    runtime: &str,
    environment: &[(String, String)],
) -> anyhow::Result<Child> {
    Command::new(bootstrap)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", runtime)
        .env("AWS_LAMBDA_FUNCTION_NAME", function)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("LOGGING_LEVEL", "WARNING")
        .envs(
            environment
                .iter()
                .map(|(key, value)| (key.as_str(), value.as_str())),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", bootstrap.display()))
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn emulator_log(http: &reqwest::Client, emulator: &str) -> anyhow::Result<Vec<Value>> {
    let response = http
        .get(format!("{emulator}/__emulator/requests"))
        .send()
        .await
        .context("reading the emulator's request log")?;
    match response
        .json::<Value>()
        .await
        .context("parsing the request log")?
    {
        Value::Array(entries) => Ok(entries),
        other => bail!("unexpected request log: {other}"),
    }
}

pub fn run(root: &Path) -> anyhow::Result<BenchReport> {
    let built = build::build(root, Arch::X86_64)?;
    let mut bootstraps = Vec::new();
    for artifact in &built.artifacts {
        let bootstrap = extract_bootstrap(
            &artifact.zip,
            &root
                .join("target")
                .join("sfstack")
                .join("bench")
                .join(artifact.function),
        )?;
        bootstraps.push((artifact.function, bootstrap));
    }
    let bootstrap_of = |function: &str| {
        bootstraps
            .iter()
            .find(|(name, _)| *name == function)
            .map(|(_, path)| path.as_path())
            .with_context(|| format!("no {function} zip"))
    };
    let cloud = local::up(root)?;
    let read_event = |name: &str| -> anyhow::Result<Bytes> {
        Ok(Bytes::from(
            std::fs::read(root.join("tests/events").join(name))
                .with_context(|| format!("reading tests/events/{name}"))?,
        ))
    };
    let events = Events {
        phone_lookup: read_event("phoneLookup.json")?,
        token_refresh: read_event("tokenRefreshSchedule.json")?,
    };
    let bootstraps = Bootstraps {
        invoke_api: bootstrap_of(FUNCTION)?,
        token_refresh: bootstrap_of("sf-token-refresh")?,
        oauth_callback: bootstrap_of("sf-oauth-callback")?,
        secret_rotation: bootstrap_of("sf-secret-rotation")?,
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let mut report = runtime.block_on(measure(&bootstraps, &cloud, &events))?;
    report.zip_bytes = built
        .artifacts
        .iter()
        .map(|artifact| (artifact.function.to_string(), artifact.bytes))
        .collect();
    let environment = format!("bench-{}", std::process::id());
    report.deploy_new_s = timed_command(root, &["deploy", "--env", &environment])?;
    report.deploy_no_op_s = timed_command(root, &["deploy", "--env", &environment])?;
    let cloud = local::up(root)?;
    (
        report.secret_read_moto_p50_ms,
        report.secret_read_gateway_p50_ms,
    ) = runtime.block_on(gateway_latency(&cloud, &environment))?;
    report.teardown_s = timed_command(root, &["teardown", "--env", &environment])?;
    Ok(report)
}

struct Bootstraps<'a> {
    invoke_api: &'a Path,
    token_refresh: &'a Path,
    oauth_callback: &'a Path,
    secret_rotation: &'a Path,
}

struct Events {
    phone_lookup: Bytes,
    token_refresh: Bytes,
}

/// Runs this tool as a user would (`cargo xtask …` minus cargo's own start-up) and returns the
/// wall-clock seconds.
fn timed_command(root: &Path, args: &[&str]) -> anyhow::Result<f64> {
    let started = Instant::now();
    let output = Command::new(std::env::current_exe().context("finding the xtask binary")?)
        .args(args)
        .current_dir(root)
        .env_remove("SFSTACK_SF_CREDENTIALS")
        .env_remove("SFSTACK_SF_CREDENTIALS_FILE")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running xtask {}", args.join(" ")))?;
    let seconds = started.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!(
            "bench: xtask {} failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(seconds)
}

async fn measure(
    bootstraps: &Bootstraps<'_>,
    cloud: &local::LocalCloud,
    events: &Events,
) -> anyhow::Result<BenchReport> {
    let event = &events.phone_lookup;
    let http = reqwest::Client::new();
    let emulator = cloud.emulator.url.clone();
    let aws = aws_reqwest::defaults()
        .endpoint_url(&cloud.moto.url)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            "bench", "bench", None, None, "bench",
        ))
        .load()
        .await;
    let secrets = sf_common::Secrets::new(aws_sdk_secretsmanager::Client::new(&aws));
    let suffix = std::process::id();
    let org = crate::cloud::LocalOrg::new(&emulator, cloud.demo_jwt_key.clone());
    let credentials_document = org.demo_credentials("jwt").await?;
    let credentials_arn = create_secret(
        secrets.client(),
        suffix,
        "credentials",
        &credentials_document,
    )
    .await?;
    let session_arn = create_secret(secrets.client(), suffix, "session", "{}").await?;
    // The session sf-token-refresh would keep fresh: the functions then never log in.
    let credentials = salesforce::Credentials::from_json(&credentials_document)?;
    let session = salesforce::Client::new(credentials, salesforce::ClientConfig::default())?
        .login()
        .await?;
    secrets.store_session(&session_arn, &session).await?;

    let aws_environment: Vec<(String, String)> = vec![
        ("AWS_ENDPOINT_URL".into(), cloud.moto.url.clone()),
        ("AWS_REGION".into(), "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID".into(), "bench".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "bench".into()),
    ];
    let mut environment = aws_environment.clone();
    environment.extend([
        ("SF_CREDENTIALS_SECRET_ARN".into(), credentials_arn.clone()),
        ("SF_SESSION_SECRET_ARN".into(), session_arn),
    ]);
    let bootstrap = bootstraps.invoke_api;
    eprintln!("bench: {COLD_STARTS} cold starts");
    let mut cold = Vec::new();
    for _ in 0..COLD_STARTS {
        let mut run = cold_start(bootstrap, FUNCTION, &environment, event).await?;
        stop(&mut run.child);
        cold.push(run.timing);
    }
    eprintln!("bench: {COLD_STARTS} cold starts, timed call by call");
    let cold_breakdown = breakdown(
        bootstrap,
        cloud,
        &secrets,
        &session,
        &environment,
        event,
        suffix,
    )
    .await?;

    eprintln!("bench: {WARM_INVOCATIONS} warm invocations");
    let ColdRun {
        mut runtime,
        mut child,
        ..
    } = cold_start(bootstrap, FUNCTION, &environment, event).await?;
    http.delete(format!("{emulator}/__emulator/requests"))
        .send()
        .await
        .context("clearing the request log")?;
    let mut totals = Vec::with_capacity(WARM_INVOCATIONS);
    for _ in 0..WARM_INVOCATIONS {
        let started = Instant::now();
        let outcome = warm_invoke(&mut runtime, event).await;
        totals.push(started.elapsed());
        if let Err(error) = outcome {
            stop(&mut child);
            return Err(error);
        }
    }
    let peak_rss = peak_rss_kb(child.id()).unwrap_or_default();
    stop(&mut child);
    let log = emulator_log(&http, &emulator).await?;
    let logins = log
        .iter()
        .filter(|entry| entry["grant_type"].is_string())
        .count();
    let data: Vec<&Value> = log
        .iter()
        .filter(|entry| {
            entry["path"]
                .as_str()
                .is_some_and(|path| path.starts_with("/services/data/"))
        })
        .collect();
    if data.len() != WARM_INVOCATIONS {
        bail!(
            "expected one Salesforce call per invocation, the emulator saw {}",
            data.len()
        );
    }
    let mut overhead: Vec<f64> = totals
        .iter()
        .zip(&data)
        .map(|(total, entry)| {
            millis(*total) - entry["duration_us"].as_f64().unwrap_or_default() / 1000.0
        })
        .collect();
    overhead.sort_by(f64::total_cmp);
    let mut total_ms: Vec<f64> = totals.iter().copied().map(millis).collect();
    total_ms.sort_by(f64::total_cmp);

    let setup = functions::Setup {
        aws_environment: &aws_environment,
        secrets: secrets.client(),
        org: &org,
        jwt_credentials_arn: &credentials_arn,
        suffix,
    };
    eprintln!("bench: sf-token-refresh");
    let mut others = vec![
        functions::token_refresh(bootstraps.token_refresh, &setup, &events.token_refresh).await?,
    ];
    eprintln!("bench: sf-oauth-callback");
    others.push(functions::oauth_callback(bootstraps.oauth_callback, &setup).await?);
    eprintln!("bench: sf-secret-rotation");
    others.push(functions::secret_rotation(bootstraps.secret_rotation, &setup).await?);

    Ok(BenchReport {
        cold_start_median_ms: millis_median(cold.iter().map(|timing| timing.total)),
        cold_breakdown,
        warm_overhead_p50_ms: percentile(&overhead, 0.5),
        warm_overhead_p99_ms: percentile(&overhead, 0.99),
        warm_total_p50_ms: percentile(&total_ms, 0.5),
        peak_rss_mb: peak_rss as f64 / 1024.0,
        logins_per_1000: logins * 1000 / WARM_INVOCATIONS,
        zip_bytes: Vec::new(),
        functions: others,
        deploy_new_s: 0.0,
        deploy_no_op_s: 0.0,
        teardown_s: 0.0,
        secret_read_moto_p50_ms: 0.0,
        secret_read_gateway_p50_ms: 0.0,
    })
}

/// Creates the bench's secret `name` (under `sfstack-bench-<suffix>/`) in moto; returns its ARN.
async fn create_secret(
    client: &aws_sdk_secretsmanager::Client,
    suffix: u32,
    name: &str,
    value: &str,
) -> anyhow::Result<String> {
    client
        .create_secret()
        .name(format!("sfstack-bench-{suffix}/{name}"))
        .secret_string(value)
        .send()
        .await
        .with_context(|| format!("creating the bench's {name} secret in moto"))?
        .arn
        .context("moto returned no ARN")
}

/// Cold starts of `sf-invoke-api` with its AWS calls and its Salesforce calls passing through
/// recording forwarders: the session secret names the Salesforce forwarder as the instance,
/// and `AWS_ENDPOINT_URL` the AWS one. Each part is the median over the runs.
async fn breakdown(
    bootstrap: &Path,
    cloud: &local::LocalCloud,
    secrets: &sf_common::Secrets,
    session: &salesforce::Session,
    environment: &[(String, String)],
    event: &Bytes,
    suffix: u32,
) -> anyhow::Result<ColdBreakdown> {
    let aws = recorder::Recorder::start(&cloud.moto.url).await?;
    let salesforce = recorder::Recorder::start(&cloud.emulator.url).await?;
    let mut forwarded = session.clone();
    forwarded.instance_url = salesforce.url().to_string();
    let session_arn = create_secret(secrets.client(), suffix, "forwarded-session", "{}").await?;
    secrets.store_session(&session_arn, &forwarded).await?;
    let environment: Vec<(String, String)> = environment
        .iter()
        .map(|(key, value)| match key.as_str() {
            "AWS_ENDPOINT_URL" => (key.clone(), aws.url().to_string()),
            "SF_SESSION_SECRET_ARN" => (key.clone(), session_arn.clone()),
            _ => (key.clone(), value.clone()),
        })
        .collect();
    // (start after process start, time busy) of a run's calls through one forwarder.
    let calls = |spans: &[recorder::Span], started: Instant, what: &str| {
        let Some(first) = spans
            .iter()
            .map(|(from, _)| from.saturating_duration_since(started))
            .min()
        else {
            bail!("no {what} call went through its forwarder: the timeline would be empty");
        };
        let busy = spans
            .iter()
            .map(|(from, to)| to.saturating_duration_since(*from))
            .sum::<Duration>();
        Ok((first, busy))
    };
    let mut runs = Vec::with_capacity(COLD_STARTS);
    let mut secrets_calls = 0;
    for _ in 0..COLD_STARTS {
        aws.take();
        salesforce.take();
        let mut run = cold_start(bootstrap, FUNCTION, &environment, event).await?;
        stop(&mut run.child);
        let aws_spans = aws.take();
        secrets_calls = secrets_calls.max(aws_spans.len());
        runs.push((
            run.timing,
            calls(&aws_spans, run.started, "AWS")?,
            calls(&salesforce.take(), run.started, "Salesforce")?,
        ));
    }
    Ok(ColdBreakdown {
        runtime_ready_ms: millis_median(runs.iter().map(|run| run.0.ready)),
        secrets_calls,
        secrets_start_ms: millis_median(runs.iter().map(|run| run.1.0)),
        secrets_ms: millis_median(runs.iter().map(|run| run.1.1)),
        salesforce_start_ms: millis_median(runs.iter().map(|run| run.2.0)),
        salesforce_ms: millis_median(runs.iter().map(|run| run.2.1)),
        total_ms: millis_median(runs.iter().map(|run| run.0.total)),
    })
}

/// What the AWS gateway adds to a function's AWS call: `GetSecretValue` of the environment's
/// credentials secret by `sf-invoke-api`'s role session, timed straight to moto and through
/// the gateway (after a warm-up each). Returns the two p50s in milliseconds.
async fn gateway_latency(
    cloud: &local::LocalCloud,
    environment: &str,
) -> anyhow::Result<(f64, f64)> {
    let gateway = cloud
        .gateway
        .as_ref()
        .context("the local cloud has no AWS gateway")?;
    let names = crate::naming::Names::new(environment);
    let config = |endpoint: &str, key: &str, secret: &str, token: Option<String>| {
        aws_reqwest::defaults()
            .endpoint_url(endpoint)
            .region(aws_config::Region::new(crate::cloud::LOCAL_REGION))
            .credentials_provider(aws_sdk_sts::config::Credentials::new(
                key, secret, token, None, "bench",
            ))
            .load()
    };
    let as_lambda = config(
        &gateway.url,
        lambda_runner::LAMBDA_SERVICE_ACCESS_KEY,
        lambda_runner::LAMBDA_SERVICE_ACCESS_KEY,
        None,
    )
    .await;
    let assumed = aws_sdk_sts::Client::new(&as_lambda)
        .assume_role()
        .role_arn(format!(
            "arn:aws:iam::{}:role/{}",
            crate::cloud::LOCAL_ACCOUNT,
            names.role(FUNCTION)
        ))
        .role_session_name("bench")
        .send()
        .await
        .aws_context(|| "assuming sf-invoke-api's role through the gateway")?;
    let session = assumed.credentials().context("no credentials")?;
    let mut p50 = Vec::new();
    for endpoint in [&cloud.moto.url, &gateway.url] {
        let sdk = config(
            endpoint,
            session.access_key_id(),
            session.secret_access_key(),
            Some(session.session_token().to_string()),
        )
        .await;
        let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
        let mut times = Vec::with_capacity(GATEWAY_CALLS);
        for call in 0..GATEWAY_CALLS + 20 {
            let started = Instant::now();
            secrets
                .get_secret_value()
                .secret_id(names.credentials_secret())
                .send()
                .await
                .aws_context(|| format!("reading the credentials secret through {endpoint}"))?;
            if call >= 20 {
                times.push(millis(started.elapsed()));
            }
        }
        times.sort_by(f64::total_cmp);
        p50.push(percentile(&times, 0.5));
    }
    Ok((p50[0], p50[1]))
}

pub fn print(report: &BenchReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| sf-invoke-api cold start (process start to first response, median of {COLD_STARTS}) | {:.1} ms |",
        report.cold_start_median_ms
    );
    let parts = &report.cold_breakdown;
    println!(
        "| its timeline from process start (medians of {COLD_STARTS}, each part on its own, calls through recording forwarders): runtime ready; Secrets Manager (at most {} call: start, duration); Salesforce (start, duration); answer | {:.1}; {:.1}, {:.1}; {:.1}, {:.1}; {:.1} ms |",
        parts.secrets_calls,
        parts.runtime_ready_ms,
        parts.secrets_start_ms,
        parts.secrets_ms,
        parts.salesforce_start_ms,
        parts.salesforce_ms,
        parts.total_ms
    );
    println!(
        "| warm overhead p50 / p99 ({WARM_INVOCATIONS} invocations, emulator time subtracted) | {:.3} / {:.3} ms |",
        report.warm_overhead_p50_ms, report.warm_overhead_p99_ms
    );
    println!(
        "| warm invocation p50, emulator included | {:.3} ms |",
        report.warm_total_p50_ms
    );
    println!(
        "| peak RSS after {WARM_INVOCATIONS} invocations | {:.1} MB |",
        report.peak_rss_mb
    );
    println!(
        "| Salesforce logins per 1,000 invocations | {} |",
        report.logins_per_1000
    );
    for figures in &report.functions {
        println!(
            "| {} cold start, median of 20 (of which runtime ready) / peak RSS after {} invocations; {} | {:.1} ms ({:.1} ms) / {:.1} MB |",
            figures.function,
            figures.warm_invocations,
            figures.workload,
            figures.cold_start_median_ms,
            figures.runtime_ready_median_ms,
            figures.peak_rss_mb
        );
    }
    for (function, bytes) in &report.zip_bytes {
        println!("| {function} zip | {:.2} MB |", *bytes as f64 / 1_000_000.0);
    }
    println!(
        "| full local deploy of a new environment (zips built) | {:.2} s |",
        report.deploy_new_s
    );
    println!("| no-op redeploy | {:.2} s |", report.deploy_no_op_s);
    println!("| teardown | {:.2} s |", report.teardown_s);
    println!(
        "| GetSecretValue by a role session, p50 of {GATEWAY_CALLS}: moto / through the AWS gateway (added) | {:.2} / {:.2} ms ({:+.2} ms) |",
        report.secret_read_moto_p50_ms,
        report.secret_read_gateway_p50_ms,
        report.secret_read_gateway_p50_ms - report.secret_read_moto_p50_ms
    );
    Ok(())
}
