//! `bench`: measures `sf-invoke-api` as Lambda runs it — the release bootstrap from the zip,
//! driven through the Lambda Runtime API (`lambda_runner::runtime_api`) against the local
//! cloud (moto and the emulator) — and prints a table: cold start, warm overhead, peak RSS,
//! zip sizes, logins. `bench --load` ([`load`]) sends a burst through a deployed environment.

pub mod load;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use lambda_runner::runtime_api::{Answer, Bytes, Invocation, RuntimeApi};
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
    async fn start() -> anyhow::Result<Self> {
        let api = RuntimeApi::start(
            format!("arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION}"),
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
        self.next_id += 1;
        let invocation = Invocation {
            request_id: format!("bench-{}", self.next_id),
            payload: event.clone(),
            trace_id: "Root=1-00000000-000000000000000000000000".to_string(),
            client_context: None,
        };
        match tokio::time::timeout(timeout, self.api.invoke(invocation)).await {
            Ok(Ok(Answer::Response(body))) => Ok(Ok(body)),
            Ok(Ok(Answer::Error(body))) => Ok(Err(body)),
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

/// The numbers `bench` reports.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub cold_start_median_ms: f64,
    pub warm_overhead_p50_ms: f64,
    pub warm_overhead_p99_ms: f64,
    pub warm_total_p50_ms: f64,
    pub peak_rss_mb: f64,
    pub logins_per_1000: usize,
    pub zip_bytes: Vec<(String, u64)>,
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
    runtime: &str,
    environment: &[(String, String)],
) -> anyhow::Result<Child> {
    Command::new(bootstrap)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", runtime)
        .env("AWS_LAMBDA_FUNCTION_NAME", FUNCTION)
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
    let zip = built
        .artifacts
        .iter()
        .find(|artifact| artifact.function == FUNCTION)
        .map(|artifact| artifact.zip.clone())
        .context("no sf-invoke-api zip")?;
    let bootstrap = extract_bootstrap(
        &zip,
        &root
            .join("target")
            .join("sfstack")
            .join("bench")
            .join(FUNCTION),
    )?;
    let cloud = local::up(root)?;
    let event = Bytes::from(
        std::fs::read(root.join("tests/events/phoneLookup.json"))
            .context("reading the phoneLookup event")?,
    );
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let mut report = runtime.block_on(measure(&bootstrap, &cloud, event))?;
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
    bootstrap: &Path,
    cloud: &local::LocalCloud,
    event: Bytes,
) -> anyhow::Result<BenchReport> {
    let http = reqwest::Client::new();
    let emulator = cloud.emulator.url.clone();
    let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&cloud.moto.url)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            "bench", "bench", None, None, "bench",
        ))
        .load()
        .await;
    let secrets = sf_common::Secrets::new(aws_sdk_secretsmanager::Client::new(&aws));
    let suffix = std::process::id();
    let demo_key = sf_emulator::DemoKey::load(
        cloud
            .demo_jwt_key
            .as_deref()
            .context("the local cloud has no demo JWT key")?,
    )?;
    let credentials_document = serde_json::json!({
        "AuthFlow": "jwt",
        "LoginUrl": emulator,
        "ConsumerKey": "sfstack-demo-consumer-key",
        "Username": "demo@sfstack.local",
        "PrivateKey": demo_key.private_key_pem(),
    })
    .to_string();
    let create = |name: String, value: String| {
        let client = secrets.client().clone();
        async move {
            client
                .create_secret()
                .name(name.clone())
                .secret_string(value)
                .send()
                .await
                .with_context(|| format!("creating secret {name} in moto"))?
                .arn
                .context("moto returned no ARN")
        }
    };
    let credentials_arn = create(
        format!("sfstack-bench-{suffix}/credentials"),
        credentials_document.clone(),
    )
    .await?;
    let session_arn = create(format!("sfstack-bench-{suffix}/session"), "{}".into()).await?;
    // The session sf-token-refresh would keep fresh: the functions then never log in.
    let credentials = salesforce::Credentials::from_json(&credentials_document)?;
    let session = salesforce::Client::new(credentials, salesforce::ClientConfig::default())?
        .login()
        .await?;
    secrets.store_session(&session_arn, &session).await?;

    let environment: Vec<(String, String)> = vec![
        ("AWS_ENDPOINT_URL".into(), cloud.moto.url.clone()),
        ("AWS_REGION".into(), "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID".into(), "bench".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "bench".into()),
        ("SF_CREDENTIALS_SECRET_ARN".into(), credentials_arn),
        ("SF_SESSION_SECRET_ARN".into(), session_arn),
    ];
    eprintln!("bench: {COLD_STARTS} cold starts");
    let mut cold = Vec::new();
    for _ in 0..COLD_STARTS {
        // A fresh runtime API per process: a killed process's pending `next` must not take
        // the following process's event.
        let mut runtime = Runtime::start().await?;
        let started = Instant::now();
        let mut child = spawn_function(bootstrap, runtime.endpoint(), &environment)?;
        let outcome = runtime.invoke(&event, Duration::from_secs(20)).await;
        let elapsed = started.elapsed();
        stop(&mut child);
        match outcome? {
            Ok(_) => cold.push(millis(elapsed)),
            Err(body) => bail!("the function failed: {}", String::from_utf8_lossy(&body)),
        }
    }
    cold.sort_by(f64::total_cmp);

    eprintln!("bench: {WARM_INVOCATIONS} warm invocations");
    let mut runtime = Runtime::start().await?;
    let mut child = spawn_function(bootstrap, runtime.endpoint(), &environment)?;
    runtime
        .invoke(&event, Duration::from_secs(20))
        .await?
        .map_err(|body| anyhow::anyhow!("{}", String::from_utf8_lossy(&body)))?;
    http.delete(format!("{emulator}/__emulator/requests"))
        .send()
        .await
        .context("clearing the request log")?;
    let mut totals = Vec::with_capacity(WARM_INVOCATIONS);
    for _ in 0..WARM_INVOCATIONS {
        let started = Instant::now();
        let outcome = runtime.invoke(&event, Duration::from_secs(20)).await?;
        totals.push(started.elapsed());
        if let Err(body) = outcome {
            stop(&mut child);
            bail!("the function failed: {}", String::from_utf8_lossy(&body));
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
    Ok(BenchReport {
        cold_start_median_ms: percentile(&cold, 0.5),
        warm_overhead_p50_ms: percentile(&overhead, 0.5),
        warm_overhead_p99_ms: percentile(&overhead, 0.99),
        warm_total_p50_ms: percentile(&total_ms, 0.5),
        peak_rss_mb: peak_rss as f64 / 1024.0,
        logins_per_1000: logins * 1000 / WARM_INVOCATIONS,
        zip_bytes: Vec::new(),
        deploy_new_s: 0.0,
        deploy_no_op_s: 0.0,
        teardown_s: 0.0,
        secret_read_moto_p50_ms: 0.0,
        secret_read_gateway_p50_ms: 0.0,
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
        aws_config::defaults(aws_config::BehaviorVersion::latest())
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
