//! The runner against a real moto server, driven with aws-sdk-lambda as a client: functions
//! are deployed to moto from S3 zips whose `bootstrap` is a Python script speaking the Lambda
//! Runtime API, so these tests exercise the whole path (configuration, code lookup, process,
//! Runtime API, Invoke API answers).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Environment, FunctionCode, InvocationType, Runtime};
use lambda_runner::{RunnerConfig, serve};
use serde_json::{Value, json};
use sfstack_test_support::MotoServer;
use sha2::{Digest, Sha256};

const BUCKET: &str = "sfstack-artifacts-123456789012-us-east-1";
const ROLE: &str = "arn:aws:iam::123456789012:role/lambda-runner-test";

/// The function: a Runtime API loop acting on `event.action`.
const BOOTSTRAP: &str = r#"
import json, os, sys, time, urllib.request

api = os.environ["AWS_LAMBDA_RUNTIME_API"]
base = (api if api.startswith("http") else "http://" + api) + "/2018-06-01/runtime"

def post(path, body):
    request = urllib.request.Request(
        base + path, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request).read()

if os.environ.get("INIT_FAIL"):
    post("/init/error", {"errorType": "Custom.Init", "errorMessage": "cannot initialise"})
    sys.exit(1)

while True:
    with urllib.request.urlopen(base + "/invocation/next") as answer:
        request_id = answer.headers["lambda-runtime-aws-request-id"]
        headers = {
            "deadline": answer.headers["lambda-runtime-deadline-ms"],
            "arn": answer.headers["lambda-runtime-invoked-function-arn"],
            "trace": answer.headers["lambda-runtime-trace-id"],
        }
        event = json.loads(answer.read() or b"null")
    action = event.get("action") if isinstance(event, dict) else None
    if action == "echo":
        print("echo for", request_id, flush=True)
        if event.get("hold_until"):
            for _ in range(600):
                if os.path.exists(event["hold_until"]):
                    break
                time.sleep(0.05)
        if event.get("touch"):
            with open(event["touch"], "w") as marker:
                marker.write("done")
        post(f"/invocation/{request_id}/response", {
            "event": event,
            "greeting": os.environ.get("GREETING"),
            "pid": os.getpid(),
            "env": dict(os.environ),
            "cwd": os.getcwd(),
            "headers": headers,
            "request_id": request_id,
        })
    elif action == "fail":
        post(f"/invocation/{request_id}/error", {"errorType": "Boom", "errorMessage": "it failed"})
    elif action == "crash":
        sys.exit(3)
    elif action == "sleep":
        time.sleep(60)
    else:
        post(f"/invocation/{request_id}/error", {"errorType": "UnknownAction", "errorMessage": str(action)})
"#;

/// A moto server, the runner serving on a free port, and clients for both.
struct Fixture {
    moto: MotoServer,
    moto_lambda: aws_sdk_lambda::Client,
    s3: aws_sdk_s3::Client,
    runner: aws_sdk_lambda::Client,
    /// The runner's URL.
    url: String,
    work_dir: PathBuf,
    scratch: PathBuf,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn python() -> anyhow::Result<String> {
    let output = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .context("running python3")?;
    Ok(String::from_utf8(output.stdout)?.trim().to_string())
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

impl Fixture {
    async fn start(test: &str) -> anyhow::Result<Self> {
        let moto = tokio::task::spawn_blocking(MotoServer::start).await??;
        let sdk = moto.sdk_config().await;
        let iam = aws_sdk_iam::Client::new(&sdk);
        iam.create_role()
            .role_name("lambda-runner-test")
            .assume_role_policy_document(
                json!({
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Effect": "Allow",
                        "Principal": { "Service": "lambda.amazonaws.com" },
                        "Action": "sts:AssumeRole",
                    }],
                })
                .to_string(),
            )
            .send()
            .await
            .context("creating the role")?;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .build(),
        );
        s3.create_bucket()
            .bucket(BUCKET)
            .send()
            .await
            .context("creating the bucket")?;

        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("lambda-runner")
            .join(format!("{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let work_dir = base.join("work");
        let scratch = base.join("scratch");
        std::fs::create_dir_all(&scratch)?;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let server = tokio::spawn(serve(
            listener,
            RunnerConfig {
                aws_endpoint: moto.endpoint().to_string(),
                region: "us-east-1".into(),
                work_dir: work_dir.clone(),
                gateway: None,
            },
        ));
        let runner = aws_sdk_lambda::Client::from_conf(
            aws_sdk_lambda::config::Builder::from(&sdk)
                .endpoint_url(&url)
                .retry_config(aws_sdk_lambda::config::retry::RetryConfig::disabled())
                .build(),
        );
        Ok(Self {
            moto_lambda: aws_sdk_lambda::Client::new(&sdk),
            moto,
            s3,
            runner,
            url,
            work_dir,
            scratch,
            server,
        })
    }

    /// A zip holding one file `entry` with `contents`.
    fn zip(&self, entry: &str, contents: &str) -> anyhow::Result<Vec<u8>> {
        let source = self
            .scratch
            .join(format!("{}.src", sha256_hex(contents.as_bytes())));
        let zip = source.with_extension("zip");
        std::fs::write(&source, contents)?;
        let status = Command::new("python3")
            .args([
                "-c",
                "import sys, zipfile\n\
                 with zipfile.ZipFile(sys.argv[1], 'w') as z:\n    \
                 z.write(sys.argv[2], arcname=sys.argv[3])",
            ])
            .arg(&zip)
            .arg(&source)
            .arg(entry)
            .status()?;
        if !status.success() {
            bail!("building a zip failed: {status}");
        }
        Ok(std::fs::read(&zip)?)
    }

    /// A zip whose `bootstrap` is the test function; `variant` makes its hash unique.
    fn bootstrap_zip(&self, variant: &str) -> anyhow::Result<Vec<u8>> {
        let script = format!("#!{}\n# variant: {variant}\n{BOOTSTRAP}", python()?);
        self.zip("bootstrap", &script)
    }

    /// Uploads `zip` as `fn/<hex>.zip` and creates the function from it; returns the key.
    async fn deploy(
        &self,
        name: &str,
        zip: &[u8],
        timeout: i32,
        variables: &[(&str, &str)],
    ) -> anyhow::Result<String> {
        let key = format!("fn/{}.zip", sha256_hex(zip));
        self.s3
            .put_object()
            .bucket(BUCKET)
            .key(&key)
            .body(zip.to_vec().into())
            .send()
            .await
            .context("uploading the zip")?;
        let mut environment = Environment::builder();
        for (key, value) in variables {
            environment = environment.variables(*key, *value);
        }
        self.moto_lambda
            .create_function()
            .function_name(name)
            .runtime(Runtime::Providedal2023)
            .handler("bootstrap")
            .role(ROLE)
            .timeout(timeout)
            .memory_size(256)
            .environment(environment.build())
            .code(
                FunctionCode::builder()
                    .s3_bucket(BUCKET)
                    .s3_key(&key)
                    .build(),
            )
            .send()
            .await
            .with_context(|| format!("creating {name}"))?;
        Ok(key)
    }

    /// Invokes through the runner: (function error, payload).
    async fn invoke(
        &self,
        function: &str,
        event: Value,
    ) -> anyhow::Result<(Option<String>, Value)> {
        let output = self
            .runner
            .invoke()
            .function_name(function)
            .payload(Blob::new(event.to_string()))
            .send()
            .await
            .map_err(|error| {
                anyhow::anyhow!("{}", aws_sdk_lambda::error::DisplayErrorContext(error))
            })?;
        assert_eq!(output.status_code(), 200);
        assert_eq!(output.executed_version(), Some("$LATEST"));
        let payload = output
            .payload()
            .map(|payload| serde_json::from_slice(payload.as_ref()))
            .transpose()?
            .unwrap_or(Value::Null);
        Ok((output.function_error().map(str::to_string), payload))
    }

    async fn echo(&self, function: &str) -> anyhow::Result<Value> {
        let (error, payload) = self.invoke(function, json!({ "action": "echo" })).await?;
        assert_eq!(error, None, "echo failed: {payload}");
        Ok(payload)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_functions_like_lambda() -> anyhow::Result<()> {
    let fixture = Fixture::start("lifecycle").await?;
    let zip = fixture.bootstrap_zip("lifecycle")?;
    fixture
        .deploy("echo-fn", &zip, 2, &[("GREETING", "hello")])
        .await?;

    // Round trip, with the environment Lambda would give (and nothing of ours).
    let first = fixture.echo("echo-fn").await?;
    assert_eq!(first["event"], json!({ "action": "echo" }));
    assert_eq!(first["greeting"], "hello");
    let env = first["env"].as_object().context("env")?;
    for absent in ["HOME", "USER", "CARGO_MANIFEST_DIR", "RUST_TEST_THREADS"] {
        assert!(
            !env.contains_key(absent),
            "{absent} leaked into the function"
        );
    }
    assert!(!env.keys().any(|key| key.starts_with("CARGO")), "{env:?}");
    assert_eq!(env["AWS_ENDPOINT_URL"], fixture.moto.endpoint());
    assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "echo-fn");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_VERSION"], "$LATEST");
    assert_eq!(env["AWS_LAMBDA_LOG_GROUP_NAME"], "/aws/lambda/echo-fn");
    assert_eq!(env["AWS_REGION"], "us-east-1");
    assert_eq!(env["AWS_ACCESS_KEY_ID"], "testing");
    assert_eq!(env["_HANDLER"], "bootstrap");
    assert_eq!(env["PATH"], "/usr/bin:/bin");
    assert_eq!(env["LAMBDA_TASK_ROOT"], first["cwd"]);
    let task_root = PathBuf::from(first["cwd"].as_str().context("cwd")?);
    assert!(task_root.starts_with(fixture.work_dir.join("code")));
    assert!(
        first["headers"]["arn"]
            .as_str()
            .is_some_and(|arn| arn.ends_with(":function:echo-fn")),
        "{first}"
    );
    assert!(
        first["headers"]["deadline"]
            .as_str()
            .is_some_and(|d| d.parse::<u64>().is_ok())
    );

    // Warm: the same process answers again, also when called by ARN.
    let second = fixture.echo("echo-fn").await?;
    assert_eq!(second["pid"], first["pid"]);
    assert_ne!(second["request_id"], first["request_id"]);
    let by_arn = fixture
        .echo("arn:aws:lambda:us-east-1:123456789012:function:echo-fn")
        .await?;
    assert_eq!(by_arn["pid"], first["pid"]);

    // A configuration change gets a fresh process that sees it.
    fixture
        .moto_lambda
        .update_function_configuration()
        .function_name("echo-fn")
        .environment(
            Environment::builder()
                .variables("GREETING", "bonjour")
                .build(),
        )
        .send()
        .await?;
    let changed = fixture.echo("echo-fn").await?;
    assert_eq!(changed["greeting"], "bonjour");
    assert_ne!(changed["pid"], first["pid"]);

    // A function error is reported like Lambda's and keeps the environment.
    let (error, payload) = fixture
        .invoke("echo-fn", json!({ "action": "fail" }))
        .await?;
    assert_eq!(error.as_deref(), Some("Unhandled"));
    assert_eq!(
        payload,
        json!({ "errorType": "Boom", "errorMessage": "it failed" })
    );
    assert_eq!(fixture.echo("echo-fn").await?["pid"], changed["pid"]);

    // A crash is an exit error; the next invocation gets a new process.
    let (error, payload) = fixture
        .invoke("echo-fn", json!({ "action": "crash" }))
        .await?;
    assert_eq!(error.as_deref(), Some("Unhandled"));
    assert_eq!(payload["errorType"], "Runtime.ExitError", "{payload}");
    let message = payload["errorMessage"].as_str().context("message")?;
    assert!(message.contains("exit status 3"), "{message}");
    assert!(message.contains("echo-fn.log"), "{message}");
    let after_crash = fixture.echo("echo-fn").await?;
    assert_ne!(after_crash["pid"], changed["pid"]);

    // A timeout kills the process and says so.
    let (error, payload) = fixture
        .invoke("echo-fn", json!({ "action": "sleep" }))
        .await?;
    assert_eq!(error.as_deref(), Some("Unhandled"));
    assert_eq!(payload["errorType"], "Sandbox.Timedout", "{payload}");
    let message = payload["errorMessage"].as_str().context("message")?;
    assert!(
        message.ends_with("Task timed out after 2.00 seconds"),
        "{message}"
    );
    let after_timeout = fixture.echo("echo-fn").await?;
    assert_ne!(after_timeout["pid"], after_crash["pid"]);

    // The function's output went to its log, never the payloads of ours.
    let log = std::fs::read_to_string(fixture.work_dir.join("logs").join("echo-fn.log"))?;
    let request_id = after_timeout["request_id"].as_str().context("request id")?;
    assert!(log.contains(&format!("echo for {request_id}")), "{log}");
    assert!(
        log.contains(&format!("START RequestId: {request_id}")),
        "{log}"
    );

    // The code was fetched and extracted once.
    let code_dirs = std::fs::read_dir(fixture.work_dir.join("code"))?.count();
    assert_eq!(code_dirs, 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_failures_like_lambda() -> anyhow::Result<()> {
    let fixture = Fixture::start("failures").await?;

    // An unknown function is Lambda's ResourceNotFoundException, also for DryRun.
    let error = fixture
        .runner
        .invoke()
        .function_name("nope")
        .send()
        .await
        .err()
        .context("invoking an unknown function succeeded")?;
    let service = error.as_service_error().context("not a service error")?;
    assert!(service.is_resource_not_found_exception(), "{service:?}");
    assert_eq!(
        aws_sdk_lambda::error::ProvideErrorMetadata::message(service),
        Some("Function not found: arn:aws:lambda:us-east-1:123456789012:function:nope")
    );
    let dry_missing = fixture
        .runner
        .invoke()
        .function_name("nope")
        .invocation_type(InvocationType::DryRun)
        .send()
        .await;
    assert!(dry_missing.is_err());

    // DryRun and Event on a real function.
    let zip = fixture.bootstrap_zip("failures")?;
    fixture.deploy("async-fn", &zip, 3, &[]).await?;
    let dry = fixture
        .runner
        .invoke()
        .function_name("async-fn")
        .invocation_type(InvocationType::DryRun)
        .send()
        .await?;
    assert_eq!(dry.status_code(), 204);
    let marker = fixture.scratch.join("event-ran");
    let event = fixture
        .runner
        .invoke()
        .function_name("async-fn")
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(
            json!({ "action": "echo", "touch": marker }).to_string(),
        ))
        .send()
        .await?;
    assert_eq!(event.status_code(), 202);
    fixture.echo("async-fn").await?;
    for _ in 0..300 {
        if marker.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(marker.exists(), "the Event invocation did not run");

    // The deployed zip is gone from S3: a clear error.
    let gone = fixture.bootstrap_zip("gone")?;
    let gone_key = fixture.deploy("gone-fn", &gone, 3, &[]).await?;
    fixture
        .s3
        .delete_object()
        .bucket(BUCKET)
        .key(&gone_key)
        .send()
        .await?;
    let message = format!(
        "{:#}",
        fixture
            .invoke("gone-fn", json!({}))
            .await
            .err()
            .context("gone-fn ran")?
    );
    assert!(message.contains("ServiceException"), "{message}");
    assert!(
        message.contains("could not be found in the local S3"),
        "{message}"
    );
    assert!(message.contains("redeploy"), "{message}");

    // The object under the deployed hash holds something else: a clear error, nothing runs.
    let swapped = fixture.bootstrap_zip("swapped")?;
    let swapped_key = fixture.deploy("swapped-fn", &swapped, 3, &[]).await?;
    fixture
        .s3
        .put_object()
        .bucket(BUCKET)
        .key(&swapped_key)
        .body(b"not the deployed zip".to_vec().into())
        .send()
        .await?;
    let message = format!(
        "{:#}",
        fixture
            .invoke("swapped-fn", json!({}))
            .await
            .err()
            .context("swapped-fn ran")?
    );
    assert!(message.contains("sha256"), "{message}");
    assert!(message.contains("redeploy"), "{message}");

    // A runtime that reports an init error: that error, not an exit error.
    fixture
        .deploy("init-fn", &zip, 3, &[("INIT_FAIL", "1")])
        .await?;
    let (error, payload) = fixture
        .invoke("init-fn", json!({ "action": "echo" }))
        .await?;
    assert_eq!(error.as_deref(), Some("Unhandled"));
    assert_eq!(payload["errorType"], "Custom.Init", "{payload}");

    // A zip without a bootstrap cannot start: an exit error naming the cause.
    let no_bootstrap = fixture.zip("handler.py", "print('hi')\n")?;
    fixture.deploy("empty-fn", &no_bootstrap, 3, &[]).await?;
    let (error, payload) = fixture.invoke("empty-fn", json!({})).await?;
    assert_eq!(error.as_deref(), Some("Unhandled"));
    assert_eq!(payload["errorType"], "Runtime.ExitError", "{payload}");
    let message = payload["errorMessage"].as_str().context("message")?;
    assert!(message.contains("bootstrap"), "{message}");
    Ok(())
}

/// An echo invocation's pid, or the Invoke API's error code and throttle reason.
type Answer = Result<u64, (String, String)>;

/// Starts `count` echo invocations that hold their environments until `release` exists.
fn start_holding(
    fixture: &Fixture,
    function: &str,
    count: usize,
    release: &std::path::Path,
) -> Vec<tokio::task::JoinHandle<Answer>> {
    (0..count)
        .map(|_| {
            let request = fixture
                .runner
                .invoke()
                .function_name(function)
                .payload(Blob::new(
                    json!({ "action": "echo", "hold_until": release }).to_string(),
                ));
            tokio::spawn(async move {
                match request.send().await {
                    Ok(output) => {
                        let payload: Value = output
                            .payload()
                            .and_then(|payload| serde_json::from_slice(payload.as_ref()).ok())
                            .unwrap_or(Value::Null);
                        Ok(payload["pid"].as_u64().unwrap_or_default())
                    }
                    Err(error) => {
                        let service = error.into_service_error();
                        let reason = match &service {
                            aws_sdk_lambda::operation::invoke::InvokeError::TooManyRequestsException(
                                throttle,
                            ) => throttle
                                .reason()
                                .map(|reason| reason.as_str().to_string())
                                .unwrap_or_default(),
                            _ => String::new(),
                        };
                        Err((
                            aws_sdk_lambda::error::ProvideErrorMetadata::code(&service)
                                .unwrap_or_default()
                                .to_string(),
                            reason,
                        ))
                    }
                }
            })
        })
        .collect()
}

/// The runner's report of `function`'s environments.
async fn environments(fixture: &Fixture, function: &str) -> anyhow::Result<Value> {
    let counts: Value = reqwest::get(format!(
        "{}{}",
        fixture.url,
        lambda_runner::ENVIRONMENTS_PATH
    ))
    .await?
    .json()
    .await?;
    Ok(counts[function].clone())
}

/// Waits until `busy` invocations of `function` are running.
async fn until_busy(fixture: &Fixture, function: &str, busy: u64) -> anyhow::Result<()> {
    for _ in 0..400 {
        if environments(fixture, function).await?["busy"] == busy {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    bail!("{function} never had {busy} invocations running at once")
}

async fn answers(calls: Vec<tokio::task::JoinHandle<Answer>>) -> anyhow::Result<Vec<Answer>> {
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await?);
    }
    Ok(answers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scales_out_and_throttles_like_lambda() -> anyhow::Result<()> {
    let fixture = Fixture::start("concurrency").await?;
    let zip = fixture.bootstrap_zip("concurrency")?;
    fixture.deploy("busy-fn", &zip, 30, &[]).await?;

    // Three at once: three environments, one invocation each.
    let release = fixture.scratch.join("release-1");
    let calls = start_holding(&fixture, "busy-fn", 3, &release);
    until_busy(&fixture, "busy-fn", 3).await?;
    std::fs::write(&release, "go")?;
    let burst = answers(calls).await?;
    let mut pids: Vec<u64> = burst
        .iter()
        .map(|answer| answer.clone().map_err(|error| anyhow::anyhow!("{error:?}")))
        .collect::<anyhow::Result<_>>()?;
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(
        pids.len(),
        3,
        "one environment per concurrent invocation: {burst:?}"
    );
    // Then warm reuse: no fourth process.
    let warm = fixture.echo("busy-fn").await?;
    assert!(
        pids.contains(&warm["pid"].as_u64().unwrap_or_default()),
        "a warm environment answers: {warm}"
    );
    // Each environment logs to a file of its own.
    for file in ["busy-fn.log", "busy-fn.2.log", "busy-fn.3.log"] {
        assert!(fixture.work_dir.join("logs").join(file).is_file(), "{file}");
    }

    // Reserved concurrency 2: a third invocation while two run is throttled as Lambda
    // throttles it.
    fixture
        .moto_lambda
        .put_function_concurrency()
        .function_name("busy-fn")
        .reserved_concurrent_executions(2)
        .send()
        .await?;
    let release = fixture.scratch.join("release-2");
    let running = start_holding(&fixture, "busy-fn", 2, &release);
    until_busy(&fixture, "busy-fn", 2).await?;
    let third = answers(start_holding(&fixture, "busy-fn", 1, &release)).await?;
    assert_eq!(
        third,
        [Err((
            "TooManyRequestsException".to_string(),
            "ReservedFunctionConcurrentInvocationLimitExceeded".to_string()
        ))]
    );
    std::fs::write(&release, "go")?;
    for answer in answers(running).await? {
        assert!(answer.is_ok(), "{answer:?}");
    }

    // Reserved concurrency 0 stops every invocation, warm environments or not.
    fixture
        .moto_lambda
        .put_function_concurrency()
        .function_name("busy-fn")
        .reserved_concurrent_executions(0)
        .send()
        .await?;
    let stopped = answers(start_holding(&fixture, "busy-fn", 1, &release)).await?;
    assert!(
        matches!(&stopped[..], [Err((code, _))] if code == "TooManyRequestsException"),
        "{stopped:?}"
    );

    // The runner's report: three environments at most, none busy, three warm.
    let counts = environments(&fixture, "busy-fn").await?;
    assert_eq!(counts["peak"], 3, "{counts}");
    assert_eq!(counts["busy"], 0, "{counts}");
    assert_eq!(counts["idle"], 3, "{counts}");

    // An asynchronous event over the reservation is kept, and runs once there is room.
    let marker = fixture.scratch.join("queued-event");
    let event = fixture
        .runner
        .invoke()
        .function_name("busy-fn")
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(
            json!({ "action": "echo", "touch": marker }).to_string(),
        ))
        .send()
        .await?;
    assert_eq!(event.status_code(), 202);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(
        !marker.exists(),
        "the event ran with a reserved concurrency of 0"
    );
    fixture
        .moto_lambda
        .delete_function_concurrency()
        .function_name("busy-fn")
        .send()
        .await?;
    for _ in 0..200 {
        if marker.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(marker.exists(), "the queued event never ran");
    Ok(())
}
