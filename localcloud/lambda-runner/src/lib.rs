//! The local target's Lambda service: an HTTP server speaking the AWS Lambda Invoke API
//! (`POST /2015-03-31/functions/{name}/invocations`) that runs the code deployed to moto.
//!
//! Per invocation it reads the function's configuration back from moto, finds the deployed
//! zip in moto's S3 by its content hash, and hands the event to a warm `bootstrap` process
//! through the Lambda Runtime API — one process per function, replaced whenever the
//! configuration changes, like Lambda's execution environments. Crashes, timeouts and
//! init failures come back the way Lambda reports them (`X-Amz-Function-Error: Unhandled`).
//!
//! The Lambda Runtime API those processes talk to is the public [`runtime_api`] module, which
//! `cargo xtask bench` uses as well.

mod cloudwatch;
mod code;
pub mod runtime_api;
mod sandbox;

use std::collections::{BTreeMap, HashMap};
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
    let router = Router::new()
        .route(
            "/2015-03-31/functions/{name}/invocations",
            post(invoke).layer(DefaultBodyLimit::max(MAX_PAYLOAD_BYTES)),
        )
        .route("/health", get(|| async { "ok" }))
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
        if let Ok(functions) = self.0.functions.lock() {
            for slot in functions.values() {
                // A busy slot sees the shutdown signal and ends its process itself.
                if let Ok(mut slot) = slot.try_lock() {
                    slot.sandbox = None;
                }
            }
        }
    }
}

/// The execution environment of one function (one invocation at a time).
#[derive(Default)]
struct Slot {
    sandbox: Option<Sandbox>,
    /// Sends the environment's output to CloudWatch Logs.
    shipper: Option<cloudwatch::LogShipper>,
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
    functions: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
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
}

/// An Invoke API error answer (`x-amzn-ErrorType` + `{"Type","Message"}`).
struct ApiError {
    status: StatusCode,
    error_type: &'static str,
    message: String,
}

impl ApiError {
    fn service(message: String) -> Self {
        Self {
            status: StatusCode::BAD_GATEWAY,
            error_type: "ServiceException",
            message,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let kind = if self.status.is_client_error() {
            "User"
        } else {
            "Service"
        };
        let mut response = (
            self.status,
            axum::Json(json!({ "Type": kind, "Message": self.message })),
        )
            .into_response();
        response.headers_mut().insert(
            "x-amzn-ErrorType",
            HeaderValue::from_static(self.error_type),
        );
        response
    }
}

async fn unknown_route() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        error_type: "UnknownOperationException",
        message: "the local Lambda runner serves only Invoke \
                  (POST /2015-03-31/functions/{name}/invocations)"
            .into(),
    }
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

/// A file name for `work_dir/logs/` (function names are `[A-Za-z0-9_-]` anyway).
fn log_file_name(function: &str) -> String {
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
    format!("{safe}.log")
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
        return ApiError {
            status: StatusCode::BAD_REQUEST,
            error_type: "InvalidParameterValueException",
            message: format!(
                "InvocationType {invocation_type:?} is not one of RequestResponse, Event, DryRun"
            ),
        }
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
        return ApiError {
            status: StatusCode::FORBIDDEN,
            error_type: "MissingAuthenticationTokenException",
            message: "Missing Authentication Token: the request must contain either a valid (registered) AWS access key ID or X.509 certificate (sign it with SigV4)".into(),
        }
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
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
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
                let as_lambda = aws_config::defaults(aws_config::BehaviorVersion::latest())
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
            account: Mutex::default(),
            shutdown,
        })
    }

    fn slot(&self, name: &str) -> Option<Arc<tokio::sync::Mutex<Slot>>> {
        let mut functions = self.functions.lock().ok()?;
        Some(functions.entry(name.to_string()).or_default().clone())
    }

    /// Reads the function's configuration from moto.
    async fn function(&self, target: &str) -> Result<Function, ApiError> {
        let name = function_name(target);
        let output = match self
            .lambda
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
        {
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
                    return Err(ApiError {
                        status: StatusCode::NOT_FOUND,
                        error_type: "ResourceNotFoundException",
                        message: format!(
                            "Function not found: arn:aws:lambda:{}:{account}:function:{name}",
                            self.config.region
                        ),
                    });
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
        Ok(Function {
            name,
            arn,
            identity,
            hash,
        })
    }

    /// Asks the gateway whether each caller of [`INVOKED_BY_HEADER`] may invoke the function;
    /// the first refusal is the answer (`AccessDeniedException`, as Lambda gives it).
    async fn authorize_callers(&self, function_arn: &str, callers: &str) -> Result<(), ApiError> {
        let Some(gateway) = &self.config.gateway else {
            return Ok(());
        };
        let callers: Vec<serde_json::Value> =
            serde_json::from_str(callers).map_err(|error| ApiError {
                status: StatusCode::BAD_REQUEST,
                error_type: "InvalidRequestContentException",
                message: format!("{INVOKED_BY_HEADER} is not a JSON list: {error}"),
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
                return Err(ApiError {
                    status: StatusCode::FORBIDDEN,
                    error_type: "AccessDeniedException",
                    message: answer["message"]
                        .as_str()
                        .unwrap_or("the function's resource policy does not allow this caller")
                        .to_string(),
                });
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

    /// Drops the environment of a function that no longer exists (if it is idle).
    fn forget(&self, name: &str) {
        let slot = self
            .functions
            .lock()
            .ok()
            .and_then(|mut functions| functions.remove(name));
        if let Some(slot) = slot
            && let Ok(mut slot) = slot.try_lock()
        {
            slot.sandbox = None;
        }
    }

    /// Runs one invocation in the function's environment (starting one if needed) and logs
    /// a line about it.
    async fn run(
        self: Arc<Self>,
        function: Function,
        invocation: Invocation,
        kind: &'static str,
        tail: bool,
    ) -> Result<Done, ApiError> {
        let started = Instant::now();
        let request_id = invocation.request_id.clone();
        let result = self.run_in_slot(&function, invocation, tail).await;
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

    async fn run_in_slot(
        &self,
        function: &Function,
        invocation: Invocation,
        tail: bool,
    ) -> Result<Done, ApiError> {
        let slot = self
            .slot(&function.name)
            .ok_or_else(|| ApiError::service("the runner's function table is poisoned".into()))?;
        let mut slot = slot.lock().await;
        let mut shutdown = self.shutdown.subscribe();
        if *shutdown.borrow() {
            return Err(ApiError::service(
                "the local Lambda runner is shutting down".into(),
            ));
        }
        let log = self
            .config
            .work_dir
            .join("logs")
            .join(log_file_name(&function.name));
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
        if !keep && let Some(gone) = slot.sandbox.take() {
            gone.terminate().await;
        }
        drop(slot);
        let log_tail = if tail {
            read_tail(&log, log_start).await
        } else {
            None
        };
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
        assert_eq!(log_file_name("sf-invoke_api"), "sf-invoke_api.log");
        assert_eq!(log_file_name("../x"), "___x.log");
    }
}
