//! The local target's Lambda service: an HTTP server speaking the AWS Lambda Invoke API
//! (`POST /2015-03-31/functions/{name}/invocations`) that runs the code deployed to moto.
//!
//! Per invocation it reads the function's configuration back from moto, finds the deployed
//! zip in moto's S3 by its content hash, and hands the event to a warm `bootstrap` process
//! through the Lambda Runtime API. Like Lambda's execution environments, a process runs one
//! invocation at a time; a function gets another process when all of its are busy, up to its
//! reserved concurrency (beyond which Lambda answers 429 `TooManyRequestsException`), and a
//! process is replaced when the configuration changes. Crashes, timeouts and init failures
//! come back the way Lambda reports them (`X-Amz-Function-Error: Unhandled`).
//!
//! The Lambda Runtime API those processes talk to is the public [`runtime_api`] module, which
//! `cargo xtask bench` uses as well.

mod cloudwatch;
mod code;
pub mod runtime_api;
mod sandbox;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::json;
use tokio::sync::watch;

use crate::code::{CodeHash, CodeStore};
use crate::runtime_api::Invocation;
use crate::sandbox::{Identity, Launch, Outcome, RoleCredentials, Sandbox};

/// Lambda's synchronous payload limit.
const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;
/// The most log text `X-Amz-Log-Type: Tail` returns.
const LOG_TAIL_BYTES: u64 = 4096;
/// moto's account when none is known yet.
const DEFAULT_ACCOUNT: &str = "123456789012";
/// Lambda's default "Concurrent executions" quota per account and Region: the most
/// invocations running at once across the account's functions (reservations included).
const ACCOUNT_CONCURRENCY: usize = 1000;
/// How long an idle environment is kept warm. Lambda does not document it (minutes are
/// observed); ending them keeps a burst's processes from outliving it for long.
const IDLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(300);
/// How often a waiting asynchronous event looks again at the function's configuration and
/// reserved concurrency, as Lambda retries a throttled event.
const EVENT_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// Where the runner finds the control plane and keeps its files.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// moto endpoint, e.g. "http://127.0.0.1:5000" — control plane: GetFunctionConfiguration, S3.
    pub aws_endpoint: String,
    /// e.g. "us-east-1".
    pub region: String,
    /// where zips are cached/extracted and function logs written
    /// (work_dir/code/<sha-hex>/..., work_dir/logs/<function-name>.log)
    pub work_dir: PathBuf,
    /// The local cloud's AWS gateway. When set, every function runs as its execution role, as
    /// on Lambda: the runner assumes the role through the gateway as `lambda.amazonaws.com`
    /// (so the role's trust policy decides), hands the session's credentials to the function,
    /// and points the function's `AWS_ENDPOINT_URL` at the gateway. When unset, functions use
    /// moto's fixed key against `aws_endpoint`.
    pub gateway: Option<String>,
}

/// How the local cloud says that an AWS service, not the signer, is invoking: a JSON list of
/// `{"principal", "action", "context"}` (e.g. `events.amazonaws.com`, `lambda:InvokeFunction`,
/// `{"aws:SourceArn": RULE}`), each of which the function's resource policy must allow, as
/// Lambda checks it when EventBridge, Secrets Manager, Amazon Connect or a Function URL invokes.
/// Only the local Lambda service reads it, and only with a gateway to decide.
pub const INVOKED_BY_HEADER: &str = "x-sfstack-invoked-by";

/// The runner's own report of its execution environments (`GET`): per function, how many
/// are busy, how many are warm and idle, and the most that ever existed at once.
pub const ENVIRONMENTS_PATH: &str = "/__sfstack/environments";

/// The gateway's service-invocation endpoint (the `aws-gateway` crate owns it; `xtask`, which
/// wires the two, checks that they agree).
pub const SERVICE_INVOCATION_PATH: &str = "/__sfstack/service-invocation";

/// The access key the runner signs its `AssumeRole` calls with: the gateway knows it as the
/// Lambda service.
pub const LAMBDA_SERVICE_ACCESS_KEY: &str = "SFSTACKLAMBDASERVICE";

/// Serves the Invoke API on `listener` until the future is dropped/cancelled.
pub async fn serve(listener: tokio::net::TcpListener, config: RunnerConfig) -> anyhow::Result<()> {
    let own_url = format!(
        "http://{}",
        listener
            .local_addr()
            .context("reading the Invoke API's address")?
    );
    let runner = Arc::new(Runner::new(config, own_url).await?);
    let _stop = StopGuard(runner.clone());
    let _reaper = AbortOnDrop(tokio::spawn(reap_idle(Arc::downgrade(&runner))));
    let router = Router::new()
        .route(
            "/2015-03-31/functions/{name}/invocations",
            post(invoke).layer(DefaultBodyLimit::max(MAX_PAYLOAD_BYTES)),
        )
        .route("/health", get(|| async { "ok" }))
        .route(ENVIRONMENTS_PATH, get(environments))
        .fallback(unknown_route)
        .with_state(runner);
    axum::serve(listener, router)
        .await
        .context("serving the Lambda Invoke API")
}

/// Ends every execution environment when `serve` stops.
struct StopGuard(Arc<Runner>);

impl Drop for StopGuard {
    fn drop(&mut self) {
        self.0.shutdown.send_replace(true);
        // Busy environments see the shutdown signal and end their processes themselves.
        let idle: Vec<Slot> = match self.0.functions.lock() {
            Ok(mut functions) => functions
                .values_mut()
                .flat_map(|pool| std::mem::take(&mut pool.idle))
                .collect(),
            Err(_) => Vec::new(),
        };
        drop(idle);
        self.0.freed.notify_waiters();
    }
}

/// Ends a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Ends environments idle for longer than [`IDLE_LIMIT`], every half minute, while the runner
/// lives.
async fn reap_idle(runner: std::sync::Weak<Runner>) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
        let Some(runner) = runner.upgrade() else {
            return;
        };
        let expired = runner.take_idle(|slot| slot.idle_since.elapsed() > IDLE_LIMIT);
        for slot in expired {
            if let Some(sandbox) = slot.sandbox {
                sandbox.terminate().await;
            }
        }
    }
}

/// One execution environment of a function: one invocation at a time.
struct Slot {
    /// 1, 2, …: the lowest number free when it was made; names its local log file.
    number: usize,
    sandbox: Option<Sandbox>,
    /// Sends the environment's output to CloudWatch Logs.
    shipper: Option<cloudwatch::LogShipper>,
    /// When it last finished an invocation.
    idle_since: Instant,
}

/// A function's execution environments.
#[derive(Default)]
struct Pool {
    /// Warm environments waiting for an invocation, the most recently used last (Lambda
    /// reuses warm environments first).
    idle: Vec<Slot>,
    /// Environments running an invocation.
    busy: usize,
    /// The numbers of the environments that exist (busy or idle).
    numbers: BTreeSet<usize>,
    /// The most environments that existed at once.
    peak: usize,
    /// The function's reserved concurrency when last invoked.
    reserved: Option<u32>,
}

/// Why an invocation found no environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Throttle {
    /// The function's reserved concurrency is in use.
    Reserved(u32),
    /// The account's concurrency is in use.
    Account,
}

impl Throttle {
    /// Lambda's answer: 429 `TooManyRequestsException` with the throttle reason (Lambda API
    /// Reference, Invoke, "Errors"; `ThrottleReason`).
    fn into_error(self) -> ApiError {
        let (reason, message) = match self {
            Throttle::Reserved(reserved) => (
                "ReservedFunctionConcurrentInvocationLimitExceeded",
                format!(
                    "Rate Exceeded. (the function's reserved concurrency, {reserved}, is in use)"
                ),
            ),
            Throttle::Account => (
                "ConcurrentInvocationLimitExceeded",
                format!(
                    "Rate Exceeded. (the account's {ACCOUNT_CONCURRENCY} concurrent executions are in use)"
                ),
            ),
        };
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            error_type: "TooManyRequestsException",
            message,
            reason: Some(reason),
        }
    }
}

/// An environment lent to one invocation; given back (kept warm or ended) by
/// [`Lease::finish`], or ended if the invocation is abandoned.
struct Lease<'a> {
    runner: &'a Runner,
    function: String,
    slot: Option<Slot>,
}

impl Lease<'_> {
    fn slot(&mut self) -> Option<&mut Slot> {
        self.slot.as_mut()
    }

    /// Gives the environment back: warm when `keep` and it still has a process. Cancelled
    /// half-way, the slot is still held and `Drop` gives it back.
    async fn finish(mut self, keep: bool) {
        let gone = match self.slot.as_mut() {
            Some(slot) if !keep => slot.sandbox.take(),
            _ => None,
        };
        if let Some(gone) = gone {
            gone.terminate().await;
        }
        if let Some(slot) = self.slot.take() {
            self.runner.give_back(&self.function, slot);
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(mut slot) = self.slot.take() {
            // Abandoned mid-invocation: the process is ended (dropping it kills it).
            slot.sandbox = None;
            self.runner.give_back(&self.function, slot);
        }
    }
}

struct Runner {
    config: RunnerConfig,
    /// This Invoke API's URL: a function that invokes another (`sf-invoke-api` asking
    /// `sf-token-refresh` for a session) reaches it through `AWS_ENDPOINT_URL_LAMBDA`.
    own_url: String,
    lambda: aws_sdk_lambda::Client,
    /// STS through the gateway, as the Lambda service; `None` without a gateway.
    sts: Option<aws_sdk_sts::Client>,
    /// For the gateway's service-invocation decisions.
    http: reqwest::Client,
    code: CodeStore,
    functions: Mutex<HashMap<String, Pool>>,
    /// Signalled whenever an environment is given back (an `Event` invocation waits for one).
    freed: tokio::sync::Notify,
    /// The account seen in configurations, for "function not found" messages.
    account: Mutex<Option<String>>,
    shutdown: watch::Sender<bool>,
}

/// A function's configuration as the runner needs it.
struct Function {
    name: String,
    arn: String,
    identity: Identity,
    hash: CodeHash,
    /// `ReservedConcurrentExecutions` (`PutFunctionConcurrency`), if set.
    reserved: Option<u32>,
}

/// An Invoke API error answer (`x-amzn-ErrorType` + `{"Type","Message"[,"Reason"]}`).
struct ApiError {
    status: StatusCode,
    error_type: &'static str,
    message: String,
    /// A throttle's `Reason`.
    reason: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, error_type: &'static str, message: String) -> Self {
        Self {
            status,
            error_type,
            message,
            reason: None,
        }
    }

    fn service(message: String) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "ServiceException", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let kind = if self.status.is_client_error() {
            "User"
        } else {
            "Service"
        };
        // Lambda's model spells this one exception's message field in lower case.
        let body = match self.reason {
            Some(reason) => json!({ "Type": kind, "message": self.message, "Reason": reason }),
            None => json!({ "Type": kind, "Message": self.message }),
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        response.headers_mut().insert(
            "x-amzn-ErrorType",
            HeaderValue::from_static(self.error_type),
        );
        response
    }
}

async fn environments(State(runner): State<Arc<Runner>>) -> axum::Json<serde_json::Value> {
    axum::Json(runner.environment_counts())
}

async fn unknown_route() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "UnknownOperationException",
        "the local Lambda runner serves only Invoke \
                  (POST /2015-03-31/functions/{name}/invocations)"
            .into(),
    )
}

/// `NAME` from `NAME`, `NAME:qualifier`, `ACCOUNT:function:NAME[:qualifier]` or
/// `arn:aws:lambda:REGION:ACCOUNT:function:NAME[:qualifier]`.
fn function_name(target: &str) -> &str {
    let rest = target
        .split_once(":function:")
        .map_or(target, |(_, rest)| rest);
    rest.split(':').next().unwrap_or(rest)
}

/// The account in an ARN-style target, if any.
fn target_account(target: &str) -> Option<&str> {
    let (head, _) = target.split_once(":function:")?;
    head.rsplit(':')
        .next()
        .filter(|account| !account.is_empty())
}

fn new_request_id() -> String {
    let value: u128 = rand::random();
    let hex = format!("{value:032x}");
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

fn new_trace_id() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_secs())
        .unwrap_or_default();
    let root: u128 = rand::random();
    let parent: u64 = rand::random();
    format!(
        "Root=1-{seconds:08x}-{:024x};Parent={parent:016x};Sampled=0",
        root >> 32
    )
}

/// The file name in `work_dir/logs/` of a function's environment: `NAME.log` for the first,
/// `NAME.2.log` for the second, and so on (function names are `[A-Za-z0-9_-]` anyway).
fn log_file_name(function: &str, environment: usize) -> String {
    let safe: String = function
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if environment > 1 {
        format!("{safe}.{environment}.log")
    } else {
        format!("{safe}.log")
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

fn request_id_header(request_id: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-RequestId", value);
    }
    headers
}

/// The access key a SigV4-signed request names (`Credential=KEY/DATE/REGION/SERVICE/...`).
fn signing_key(headers: &HeaderMap) -> Option<String> {
    let authorization = header(headers, "authorization")?;
    let credential = authorization.split("Credential=").nth(1)?;
    let key = credential.split('/').next()?;
    (!key.is_empty()).then(|| key.to_string())
}

async fn invoke(
    State(runner): State<Arc<Runner>>,
    UrlPath(target): UrlPath<String>,
    headers: HeaderMap,
    payload: Bytes,
) -> Response {
    let invocation_type = header(&headers, "x-amz-invocation-type").unwrap_or("RequestResponse");
    if !matches!(invocation_type, "RequestResponse" | "Event" | "DryRun") {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            format!(
                "InvocationType {invocation_type:?} is not one of RequestResponse, Event, DryRun"
            ),
        )
        .into_response();
    }
    let function = match runner.function(&target).await {
        Ok(function) => function,
        Err(error) => return error.into_response(),
    };
    // A service (named by the local cloud) or the signer itself: Lambda decides a signed
    // `Invoke` by the caller's identity policies and the function's policy.
    let signer = signing_key(&headers).map(|key| {
        serde_json::json!([{
            "principal": "",
            "action": "lambda:InvokeFunction",
            "access_key_id": key,
        }])
        .to_string()
    });
    // Lambda answers a request that is neither signed nor made by a service (which the local
    // cloud names) as every AWS API does: 403 MissingAuthenticationToken ("The request must
    // contain either a valid (registered) AWS access key ID or X.509 certificate", AWS's
    // common errors). Without a gateway nothing is decided, as before.
    if runner.config.gateway.is_some()
        && signer.is_none()
        && header(&headers, INVOKED_BY_HEADER).is_none()
    {
        return ApiError::new(StatusCode::FORBIDDEN, "MissingAuthenticationTokenException", "Missing Authentication Token: the request must contain either a valid (registered) AWS access key ID or X.509 certificate (sign it with SigV4)".into())
        .into_response();
    }
    if let Some(callers) = header(&headers, INVOKED_BY_HEADER)
        .map(str::to_string)
        .or(signer)
        && let Err(error) = runner.authorize_callers(&function.arn, &callers).await
    {
        return error.into_response();
    }
    let request_id = new_request_id();
    let client_context = header(&headers, "x-amz-client-context").and_then(|encoded| {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        String::from_utf8(decoded).ok()
    });
    let invocation = Invocation {
        request_id: request_id.clone(),
        payload,
        trace_id: new_trace_id(),
        client_context,
    };
    let tail = header(&headers, "x-amz-log-type") == Some("Tail");
    match invocation_type {
        "DryRun" => (StatusCode::NO_CONTENT, request_id_header(&request_id)).into_response(),
        "Event" => {
            tokio::spawn(runner.clone().run(function, invocation, "Event", false));
            (StatusCode::ACCEPTED, request_id_header(&request_id)).into_response()
        }
        _ => {
            // A task of its own: a client hanging up must not abandon a half-run invocation.
            let task = tokio::spawn(runner.clone().run(
                function,
                invocation,
                "RequestResponse",
                tail,
            ));
            match task.await {
                Ok(Ok(done)) => done.into_response(&request_id),
                Ok(Err(error)) => error.into_response(),
                Err(error) => {
                    ApiError::service(format!("the invocation failed: {error}")).into_response()
                }
            }
        }
    }
}

/// A finished invocation.
struct Done {
    outcome: Outcome,
    log_tail: Option<String>,
}

impl Done {
    fn into_response(self, request_id: &str) -> Response {
        let mut headers = request_id_header(request_id);
        headers.insert(
            "X-Amz-Executed-Version",
            HeaderValue::from_static("$LATEST"),
        );
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        if let Some(tail) = self
            .log_tail
            .and_then(|tail| HeaderValue::from_str(&tail).ok())
        {
            headers.insert("X-Amz-Log-Result", tail);
        }
        let body = match self.outcome {
            Outcome::Response(body) => body,
            Outcome::FunctionError(body) | Outcome::Failed { body, .. } => {
                headers.insert(
                    "X-Amz-Function-Error",
                    HeaderValue::from_static("Unhandled"),
                );
                body
            }
        };
        (StatusCode::OK, headers, body).into_response()
    }
}

impl Runner {
    async fn new(config: RunnerConfig, own_url: String) -> anyhow::Result<Self> {
        let sdk = aws_reqwest::defaults()
            .endpoint_url(&config.aws_endpoint)
            .region(aws_config::Region::new(config.region.clone()))
            .credentials_provider(aws_sdk_lambda::config::Credentials::new(
                "testing",
                "testing",
                None,
                None,
                "lambda-runner",
            ))
            .load()
            .await;
        let lambda = aws_sdk_lambda::Client::new(&sdk);
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .build(),
        );
        for dir in ["code", "logs"] {
            let path = config.work_dir.join(dir);
            tokio::fs::create_dir_all(&path)
                .await
                .with_context(|| format!("creating {}", path.display()))?;
        }
        let code = CodeStore::new(s3, &config.aws_endpoint, &config.work_dir);
        let sts = match &config.gateway {
            Some(gateway) => {
                let as_lambda = aws_reqwest::defaults()
                    .endpoint_url(gateway)
                    .region(aws_config::Region::new(config.region.clone()))
                    .credentials_provider(aws_sdk_lambda::config::Credentials::new(
                        LAMBDA_SERVICE_ACCESS_KEY,
                        LAMBDA_SERVICE_ACCESS_KEY,
                        None,
                        None,
                        "lambda-runner",
                    ))
                    .load()
                    .await;
                Some(aws_sdk_sts::Client::new(&as_lambda))
            }
            None => None,
        };
        let (shutdown, _) = watch::channel(false);
        Ok(Self {
            config,
            own_url,
            lambda,
            sts,
            http: reqwest::Client::new(),
            code,
            functions: Mutex::default(),
            freed: tokio::sync::Notify::new(),
            account: Mutex::default(),
            shutdown,
        })
    }

    /// An environment of `function` for one invocation: a warm idle one of its current
    /// configuration if there is one, else a new (empty) one, within the function's reserved
    /// concurrency or, for a function without one, the account's concurrency less every
    /// reservation. Idle environments of an older configuration are ended, as Lambda ends
    /// them after an update.
    fn acquire(&self, function: &Function) -> Result<Lease<'_>, ApiError> {
        let (lease, stale) = {
            let mut functions = self
                .functions
                .lock()
                .map_err(|_| ApiError::service("the runner's function table is poisoned".into()))?;
            functions.entry(function.name.clone()).or_default().reserved = function.reserved;
            let reserved: usize = functions
                .values()
                .filter_map(|pool| pool.reserved)
                .map(|reserved| reserved as usize)
                .sum();
            let unreserved_busy: usize = functions
                .values()
                .filter(|pool| pool.reserved.is_none())
                .map(|pool| pool.busy)
                .sum();
            let pool = functions.entry(function.name.clone()).or_default();
            let throttle = match function.reserved {
                Some(limit) if pool.busy >= limit as usize => Some(Throttle::Reserved(limit)),
                Some(_) => None,
                None if unreserved_busy + reserved >= ACCOUNT_CONCURRENCY => {
                    Some(Throttle::Account)
                }
                None => None,
            };
            if let Some(throttle) = throttle {
                return Err(throttle.into_error());
            }
            let (current, stale): (Vec<Slot>, Vec<Slot>) = std::mem::take(&mut pool.idle)
                .into_iter()
                .partition(|slot| {
                    slot.sandbox
                        .as_ref()
                        .is_some_and(|sandbox| sandbox.identity == function.identity)
                });
            pool.idle = current;
            for slot in &stale {
                pool.numbers.remove(&slot.number);
            }
            pool.busy += 1;
            let slot = pool.idle.pop().unwrap_or_else(|| {
                let number = (1..)
                    .find(|number| !pool.numbers.contains(number))
                    .unwrap_or(usize::MAX);
                pool.numbers.insert(number);
                pool.peak = pool.peak.max(pool.numbers.len());
                Slot {
                    number,
                    sandbox: None,
                    shipper: None,
                    idle_since: Instant::now(),
                }
            });
            let lease = Lease {
                runner: self,
                function: function.name.clone(),
                slot: Some(slot),
            };
            (lease, stale)
        };
        // Ended outside the lock (dropping a sandbox kills its process).
        drop(stale);
        Ok(lease)
    }

    /// Takes an environment back from an invocation: warm and idle if it still has a process,
    /// else gone.
    fn give_back(&self, function: &str, mut slot: Slot) {
        let gone = match self.functions.lock() {
            Ok(mut functions) => match functions.get_mut(function) {
                Some(pool) => {
                    pool.busy = pool.busy.saturating_sub(1);
                    if slot.sandbox.is_some() && !*self.shutdown.borrow() {
                        slot.idle_since = Instant::now();
                        pool.idle.push(slot);
                        None
                    } else {
                        pool.numbers.remove(&slot.number);
                        Some(slot)
                    }
                }
                None => Some(slot),
            },
            Err(_) => Some(slot),
        };
        drop(gone);
        self.freed.notify_waiters();
    }

    /// Removes the idle environments that `expired` picks (to be ended by the caller).
    fn take_idle(&self, expired: impl Fn(&Slot) -> bool) -> Vec<Slot> {
        let Ok(mut functions) = self.functions.lock() else {
            return Vec::new();
        };
        let mut taken = Vec::new();
        for pool in functions.values_mut() {
            let (gone, kept): (Vec<Slot>, Vec<Slot>) = std::mem::take(&mut pool.idle)
                .into_iter()
                .partition(&expired);
            pool.idle = kept;
            for slot in &gone {
                pool.numbers.remove(&slot.number);
            }
            taken.extend(gone);
        }
        taken
    }

    /// Per function: busy, idle and peak environments.
    fn environment_counts(&self) -> serde_json::Value {
        let functions = match self.functions.lock() {
            Ok(functions) => functions,
            Err(poisoned) => poisoned.into_inner(),
        };
        functions
            .iter()
            .map(|(name, pool)| {
                (
                    name.clone(),
                    json!({ "busy": pool.busy, "idle": pool.idle.len(), "peak": pool.peak }),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    }

    /// Reads the function's configuration from moto.
    async fn function(&self, target: &str) -> Result<Function, ApiError> {
        let name = function_name(target);
        let (output, concurrency) = tokio::join!(
            self.lambda
                .get_function_configuration()
                .function_name(name)
                .send(),
            self.lambda
                .get_function_concurrency()
                .function_name(name)
                .send()
        );
        let output = match output {
            Ok(output) => output,
            Err(error) => {
                if error
                    .as_service_error()
                    .is_some_and(|error| error.is_resource_not_found_exception())
                {
                    self.forget(name);
                    let account = target_account(target)
                        .map(str::to_string)
                        .or_else(|| self.account.lock().ok().and_then(|known| known.clone()))
                        .unwrap_or_else(|| DEFAULT_ACCOUNT.to_string());
                    return Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        "ResourceNotFoundException",
                        format!(
                            "Function not found: arn:aws:lambda:{}:{account}:function:{name}",
                            self.config.region
                        ),
                    ));
                }
                return Err(ApiError::service(format!(
                    "could not read the configuration of function {name} from moto at {}: {}",
                    self.config.aws_endpoint,
                    aws_sdk_lambda::error::DisplayErrorContext(error)
                )));
            }
        };
        let name = output.function_name().unwrap_or(name).to_string();
        let arn = output.function_arn().map_or_else(
            || {
                format!(
                    "arn:aws:lambda:{}:{DEFAULT_ACCOUNT}:function:{name}",
                    self.config.region
                )
            },
            str::to_string,
        );
        if let Some(account) = arn.split(':').nth(4)
            && let Ok(mut known) = self.account.lock()
        {
            *known = Some(account.to_string());
        }
        let code_sha256 = output
            .code_sha256()
            .filter(|sha| !sha.is_empty())
            .ok_or_else(|| {
                ApiError::service(format!(
                    "function {name} has no CodeSha256 in moto (container-image functions are \
                     not supported by the local runner); redeploy it from a zip"
                ))
            })?
            .to_string();
        let hash = CodeHash::from_code_sha256(&code_sha256)
            .map_err(|error| ApiError::service(format!("function {name}: {error:#}")))?;
        let variables: BTreeMap<String, String> = output
            .environment()
            .and_then(|environment| environment.variables())
            .map(|variables| {
                variables
                    .iter()
                    .map(|(key, value)| (key.clone(), value.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let identity = Identity {
            code_sha256,
            variables,
            memory_size: output.memory_size().unwrap_or(128),
            timeout_seconds: output.timeout().unwrap_or(3).max(1),
            handler: output.handler().map(str::to_string),
            runtime: output.runtime().map(|runtime| runtime.as_str().to_string()),
            role: output.role().unwrap_or_default().to_string(),
            architecture: output
                .architectures()
                .first()
                .map_or("x86_64", |architecture| architecture.as_str())
                .to_string(),
            last_modified: output.last_modified().map(str::to_string),
        };
        let reserved = match concurrency {
            Ok(concurrency) => concurrency
                .reserved_concurrent_executions()
                .and_then(|reserved| u32::try_from(reserved).ok()),
            Err(error) => {
                return Err(ApiError::service(format!(
                    "could not read the reserved concurrency of function {name} from moto at {}: {}",
                    self.config.aws_endpoint,
                    aws_sdk_lambda::error::DisplayErrorContext(error)
                )));
            }
        };
        Ok(Function {
            name,
            arn,
            identity,
            hash,
            reserved,
        })
    }

    /// Asks the gateway whether each caller of [`INVOKED_BY_HEADER`] may invoke the function;
    /// the first refusal is the answer (`AccessDeniedException`, as Lambda gives it).
    async fn authorize_callers(&self, function_arn: &str, callers: &str) -> Result<(), ApiError> {
        let Some(gateway) = &self.config.gateway else {
            return Ok(());
        };
        let callers: Vec<serde_json::Value> = serde_json::from_str(callers).map_err(|error| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContentException",
                format!("{INVOKED_BY_HEADER} is not a JSON list: {error}"),
            )
        })?;
        for mut caller in callers {
            caller["function_arn"] = function_arn.into();
            let answer: serde_json::Value = self
                .http
                .post(format!("{gateway}{SERVICE_INVOCATION_PATH}"))
                .json(&caller)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|error| ApiError::service(format!("asking the AWS gateway: {error}")))?
                .json()
                .await
                .map_err(|error| ApiError::service(format!("the AWS gateway's answer: {error}")))?;
            if answer["allowed"] != true {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "AccessDeniedException",
                    answer["message"]
                        .as_str()
                        .unwrap_or("the function's resource policy does not allow this caller")
                        .to_string(),
                ));
            }
        }
        Ok(())
    }

    /// The credentials a new environment of `function` gets: a session of its execution role
    /// assumed through the gateway, or moto's fixed key without one.
    async fn credentials_for(&self, function: &Function) -> anyhow::Result<RoleCredentials> {
        let Some(sts) = &self.sts else {
            return Ok(RoleCredentials {
                access_key_id: "testing".to_string(),
                secret_access_key: "testing".to_string(),
                session_token: None,
            });
        };
        let assumed = sts
            .assume_role()
            .role_arn(&function.identity.role)
            .role_session_name(&function.name)
            .send()
            .await
            .map_err(|error| {
                anyhow::anyhow!(
                    "assuming {} failed: {}",
                    function.identity.role,
                    aws_sdk_sts::error::DisplayErrorContext(error)
                )
            })?;
        let credentials = assumed
            .credentials()
            .context("AssumeRole returned no credentials")?;
        Ok(RoleCredentials {
            access_key_id: credentials.access_key_id().to_string(),
            secret_access_key: credentials.secret_access_key().to_string(),
            session_token: Some(credentials.session_token().to_string()),
        })
    }

    /// Ends the idle environments of a function that no longer exists; busy ones end when
    /// their invocation does (and the function's entry goes with the last of them).
    fn forget(&self, name: &str) {
        let idle = match self.functions.lock() {
            Ok(mut functions) => {
                let idle = functions.get_mut(name).map(|pool| {
                    for slot in &pool.idle {
                        pool.numbers.remove(&slot.number);
                    }
                    std::mem::take(&mut pool.idle)
                });
                if functions.get(name).is_some_and(|pool| pool.busy == 0) {
                    functions.remove(name);
                }
                idle
            }
            Err(_) => None,
        };
        drop(idle);
    }

    /// Runs one invocation in the function's environment (starting one if needed) and logs
    /// a line about it.
    async fn run(
        self: Arc<Self>,
        mut function: Function,
        invocation: Invocation,
        kind: &'static str,
        tail: bool,
    ) -> Result<Done, ApiError> {
        let started = Instant::now();
        let request_id = invocation.request_id.clone();
        let result = match self.lease(&mut function, kind == "Event").await {
            Ok(lease) => self.run_in_slot(lease, &function, invocation, tail).await,
            Err(error) => Err(error),
        };
        let label = match &result {
            Ok(done) => match &done.outcome {
                Outcome::Response(_) => "ok".to_string(),
                Outcome::FunctionError(_) => "function error".to_string(),
                Outcome::Failed { label, .. } => label.clone(),
            },
            Err(error) => format!("failed: {}", error.message),
        };
        eprintln!(
            "lambda-runner: {} {request_id} ({kind}): {label} in {} ms",
            function.name,
            started.elapsed().as_millis()
        );
        result
    }

    /// An environment for one invocation. A synchronous one over the function's concurrency
    /// is throttled; an asynchronous one (`retry`) is kept and tried again, with the function's
    /// configuration read anew each time, as Lambda retries a throttled event.
    async fn lease(&self, function: &mut Function, retry: bool) -> Result<Lease<'_>, ApiError> {
        let mut shutdown = self.shutdown.subscribe();
        loop {
            if *shutdown.borrow() {
                return Err(ApiError::service(
                    "the local Lambda runner is shutting down".into(),
                ));
            }
            let freed = self.freed.notified();
            match self.acquire(function) {
                Ok(lease) => return Ok(lease),
                Err(throttled) if !retry || throttled.reason.is_none() => return Err(throttled),
                Err(_) => {}
            }
            tokio::select! {
                () = freed => {}
                () = tokio::time::sleep(EVENT_RETRY) => {}
                _ = shutdown.changed() => {}
            }
            *function = self.function(&function.name.clone()).await?;
        }
    }

    async fn run_in_slot(
        &self,
        mut lease: Lease<'_>,
        function: &Function,
        invocation: Invocation,
        tail: bool,
    ) -> Result<Done, ApiError> {
        let mut shutdown = self.shutdown.subscribe();
        let Some(slot) = lease.slot() else {
            return Err(ApiError::service("no execution environment".into()));
        };
        let log = self
            .config
            .work_dir
            .join("logs")
            .join(log_file_name(&function.name, slot.number));
        if slot
            .sandbox
            .as_ref()
            .is_some_and(|sandbox| sandbox.identity != function.identity)
            && let Some(stale) = slot.sandbox.take()
        {
            sandbox::log_line(
                &log,
                "lambda-runner: the configuration changed; replacing the environment",
            );
            stale.terminate().await;
        }
        let request_id = invocation.request_id.clone();
        if slot.sandbox.is_none() {
            let task_root = self.code.prepare(&function.hash).await.map_err(|error| {
                ApiError::service(format!(
                    "function {} (CodeSha256 {}): {error:#}",
                    function.name, function.identity.code_sha256
                ))
            })?;
            let credentials = match self.credentials_for(function).await {
                Ok(credentials) => credentials,
                Err(error) => {
                    sandbox::log_line(&log, &format!("lambda-runner: {error:#}"));
                    return Ok(Done {
                        outcome: Outcome::failed(
                            "start failure",
                            "Runtime.InvalidRole",
                            &format!(
                                "RequestId: {request_id} Error: The role defined for the \
                                 function cannot be assumed by Lambda: {error:#}"
                            ),
                        ),
                        log_tail: None,
                    });
                }
            };
            let aws_endpoint = self
                .config
                .gateway
                .as_deref()
                .unwrap_or(&self.config.aws_endpoint);
            let output_from = tokio::fs::metadata(&log)
                .await
                .map(|meta| meta.len())
                .unwrap_or(0);
            let launch = Launch {
                function_name: &function.name,
                function_arn: &function.arn,
                identity: &function.identity,
                task_root: &task_root,
                log: &log,
                aws_endpoint,
                lambda_endpoint: &self.own_url,
                region: &self.config.region,
                credentials: &credentials,
            };
            match Sandbox::start(launch).await {
                Ok(sandbox) => {
                    slot.sandbox = Some(sandbox);
                    slot.shipper = Some(
                        cloudwatch::LogShipper::new(
                            &function.name,
                            aws_endpoint,
                            &self.config.region,
                            &credentials,
                            log.clone(),
                            output_from,
                        )
                        .await,
                    );
                }
                Err(error) => {
                    sandbox::log_line(&log, &format!("lambda-runner: {error:#}"));
                    return Ok(Done {
                        outcome: Outcome::failed(
                            "start failure",
                            "Runtime.ExitError",
                            &format!(
                                "RequestId: {request_id} Error: Runtime failed to start: \
                                 {error:#} (log: {})",
                                log.display()
                            ),
                        ),
                        log_tail: None,
                    });
                }
            }
        }
        let Some(sandbox) = slot.sandbox.as_mut() else {
            return Err(ApiError::service("no execution environment".into()));
        };
        let log_start = tokio::fs::metadata(&log)
            .await
            .map(|meta| meta.len())
            .unwrap_or(0);
        sandbox::log_line(
            &log,
            &format!(
                "START RequestId: {request_id} Version: $LATEST (pid {})",
                sandbox.pid().map(|pid| pid.to_string()).unwrap_or_default()
            ),
        );
        let started = Instant::now();
        let (outcome, keep) = sandbox.invoke(invocation, &mut shutdown).await;
        let status = match &outcome {
            Outcome::Response(_) => "ok",
            Outcome::FunctionError(_) => "function error",
            Outcome::Failed { label, .. } => label.as_str(),
        };
        sandbox::log_line(
            &log,
            &format!(
                "END RequestId: {request_id} Duration: {:.2} ms Status: {status}",
                started.elapsed().as_secs_f64() * 1000.0
            ),
        );
        if let Some(shipper) = &slot.shipper {
            shipper.ship_soon();
        }
        // Read before the environment is given back: another invocation may write to it next.
        let log_tail = if tail {
            read_tail(&log, log_start).await
        } else {
            None
        };
        lease.finish(keep).await;
        Ok(Done { outcome, log_tail })
    }
}

/// Base64 of the last 4 KB the log gained since `from`.
async fn read_tail(log: &std::path::Path, from: u64) -> Option<String> {
    let bytes = tokio::fs::read(log).await.ok()?;
    let from = usize::try_from(from).ok()?.min(bytes.len());
    let new = &bytes[from..];
    let keep = usize::try_from(LOG_TAIL_BYTES).ok()?.min(new.len());
    let tail = &new[new.len() - keep..];
    Some(base64::engine::general_purpose::STANDARD.encode(tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_function_targets() {
        assert_eq!(function_name("fn"), "fn");
        assert_eq!(function_name("fn:live"), "fn");
        assert_eq!(function_name("123456789012:function:fn"), "fn");
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:123456789012:function:fn"),
            "fn"
        );
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:123456789012:function:fn:$LATEST"),
            "fn"
        );
        assert_eq!(
            target_account("arn:aws:lambda:us-east-1:210987654321:function:fn"),
            Some("210987654321")
        );
        assert_eq!(target_account("fn"), None);
    }

    #[test]
    fn request_ids_look_like_uuids() {
        let id = new_request_id();
        let lengths: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(lengths, [8, 4, 4, 4, 12]);
        assert!(id.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit()));
        assert_ne!(id, new_request_id());
    }

    #[test]
    fn log_names_are_safe() {
        assert_eq!(log_file_name("sf-invoke_api", 1), "sf-invoke_api.log");
        assert_eq!(log_file_name("sf-invoke_api", 3), "sf-invoke_api.3.log");
        assert_eq!(log_file_name("../x", 1), "___x.log");
    }
}
