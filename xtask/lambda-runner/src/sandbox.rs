//! One execution environment: a warm `bootstrap` process with its own Lambda Runtime API
//! listener, fed one invocation at a time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::process::Child;
use tokio::sync::{mpsc, watch};

/// The largest response a function may post (Lambda's synchronous limit, with headroom).
const MAX_RESPONSE_BYTES: usize = 7 * 1024 * 1024;
/// How long a runtime may take to ask for its event before the invocation gives up, on top of
/// the function's timeout (Lambda's init phase limit).
const INIT_LIMIT: Duration = Duration::from_secs(10);

/// What makes two execution environments interchangeable: a changed configuration needs a
/// fresh process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub code_sha256: String,
    pub variables: BTreeMap<String, String>,
    pub memory_size: i32,
    pub timeout_seconds: i32,
    pub handler: Option<String>,
    pub runtime: Option<String>,
}

/// Everything needed to start an environment.
pub(crate) struct Launch<'a> {
    pub function_name: &'a str,
    pub function_arn: &'a str,
    pub identity: &'a Identity,
    pub task_root: &'a Path,
    pub log: &'a Path,
    pub aws_endpoint: &'a str,
    pub region: &'a str,
}

/// One event for the runtime.
pub(crate) struct Invocation {
    pub request_id: String,
    pub payload: Bytes,
    pub trace_id: String,
    pub client_context: Option<String>,
}

/// How an invocation ended.
pub(crate) enum Outcome {
    /// The function answered.
    Response(Bytes),
    /// The function reported an error (the environment stays warm).
    FunctionError(Bytes),
    /// The environment failed (crash, timeout, init error, start failure): an error body in
    /// Lambda's shape; the environment is gone.
    Failed { label: String, body: Bytes },
}

impl Outcome {
    pub(crate) fn failed(label: impl Into<String>, error_type: &str, message: &str) -> Self {
        Self::Failed {
            label: label.into(),
            body: Bytes::from(
                json!({ "errorType": error_type, "errorMessage": message }).to_string(),
            ),
        }
    }
}

/// What the Runtime API reports to the environment's owner.
enum RuntimeEvent {
    Dispatched { request_id: String, at: Instant },
    Response { request_id: String, body: Bytes },
    Error { request_id: String, body: Bytes },
    InitError { body: Bytes },
}

struct ApiState {
    queue: tokio::sync::Mutex<mpsc::Receiver<Invocation>>,
    events: mpsc::UnboundedSender<RuntimeEvent>,
    function_arn: String,
    timeout: Duration,
}

type Api = Arc<ApiState>;

fn epoch_millis(at: SystemTime) -> u128 {
    at.duration_since(UNIX_EPOCH)
        .map(|since| since.as_millis())
        .unwrap_or_default()
}

async fn next_invocation(State(api): State<Api>) -> Response {
    let Some(invocation) = api.queue.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    let now = Instant::now();
    let deadline = epoch_millis(SystemTime::now() + api.timeout);
    let _ = api.events.send(RuntimeEvent::Dispatched {
        request_id: invocation.request_id.clone(),
        at: now,
    });
    let mut headers = HeaderMap::new();
    let mut pairs = vec![
        ("lambda-runtime-aws-request-id", invocation.request_id),
        ("lambda-runtime-deadline-ms", deadline.to_string()),
        (
            "lambda-runtime-invoked-function-arn",
            api.function_arn.clone(),
        ),
        ("lambda-runtime-trace-id", invocation.trace_id),
    ];
    if let Some(context) = invocation.client_context {
        pairs.push(("lambda-runtime-client-context", context));
    }
    for (name, value) in pairs {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    (StatusCode::OK, headers, invocation.payload).into_response()
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, axum::Json(json!({ "status": "OK" }))).into_response()
}

async fn invocation_response(
    State(api): State<Api>,
    UrlPath(request_id): UrlPath<String>,
    body: Bytes,
) -> Response {
    let _ = api.events.send(RuntimeEvent::Response { request_id, body });
    accepted()
}

/// An error body in Lambda's shape: the runtime's JSON object as posted, or one built from
/// the error-type header and the text it sent.
fn error_body(headers: &HeaderMap, body: &Bytes, default_type: &str) -> Bytes {
    let posted = serde_json::from_slice::<Value>(body).ok();
    if let Some(Value::Object(object)) = &posted
        && object.contains_key("errorType")
    {
        return body.clone();
    }
    let header_type = headers
        .get("lambda-runtime-function-error-type")
        .and_then(|value| value.to_str().ok())
        .filter(|value| !value.is_empty());
    let mut object = match posted {
        Some(Value::Object(object)) => object,
        _ => {
            let mut object = serde_json::Map::new();
            object.insert(
                "errorMessage".into(),
                Value::String(String::from_utf8_lossy(body).into_owned()),
            );
            object
        }
    };
    object.insert(
        "errorType".into(),
        Value::String(header_type.unwrap_or(default_type).to_string()),
    );
    Bytes::from(Value::Object(object).to_string())
}

async fn invocation_error(
    State(api): State<Api>,
    UrlPath(request_id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = error_body(&headers, &body, "Unhandled");
    let _ = api.events.send(RuntimeEvent::Error { request_id, body });
    accepted()
}

async fn init_error(State(api): State<Api>, headers: HeaderMap, body: Bytes) -> Response {
    let body = error_body(&headers, &body, "Runtime.InitError");
    let _ = api.events.send(RuntimeEvent::InitError { body });
    accepted()
}

/// A running `bootstrap` process and its Runtime API.
pub(crate) struct Sandbox {
    pub identity: Identity,
    pid: Option<u32>,
    child: Child,
    queue: mpsc::Sender<Invocation>,
    events: mpsc::UnboundedReceiver<RuntimeEvent>,
    server: tokio::task::AbortHandle,
    log: PathBuf,
    timeout: Duration,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.server.abort();
        // `kill_on_drop` ends the process; tokio reaps it.
    }
}

/// Appends a line of the runner's own to a function's log.
pub(crate) fn log_line(log: &Path, line: &str) {
    use std::io::Write;
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
    {
        let _ = writeln!(file, "{line}");
    }
}

impl Sandbox {
    /// Starts the Runtime API and the `bootstrap` process.
    pub(crate) async fn start(launch: Launch<'_>) -> anyhow::Result<Self> {
        let bootstrap = launch.task_root.join("bootstrap");
        if tokio::fs::metadata(&bootstrap).await.is_err() {
            bail!(
                "the deployed zip has no `bootstrap` at its root (runtime {}); the local \
                 runner runs custom-runtime functions only",
                launch.identity.runtime.as_deref().unwrap_or("unknown")
            );
        }
        if let Some(parent) = launch.log.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let stdout = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(launch.log)
            .with_context(|| format!("opening {}", launch.log.display()))?;
        let stderr = stdout
            .try_clone()
            .with_context(|| format!("opening {}", launch.log.display()))?;

        let timeout = Duration::from_secs(u64::try_from(launch.identity.timeout_seconds.max(1))?);
        let (queue, receiver) = mpsc::channel(1);
        let (events_sender, events) = mpsc::unbounded_channel();
        let api = Arc::new(ApiState {
            queue: tokio::sync::Mutex::new(receiver),
            events: events_sender,
            function_arn: launch.function_arn.to_string(),
            timeout,
        });
        let router = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(invocation_response),
            )
            .route(
                "/2018-06-01/runtime/invocation/{id}/error",
                post(invocation_error),
            )
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .layer(DefaultBodyLimit::max(MAX_RESPONSE_BYTES))
            .with_state(api);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding a Runtime API listener")?;
        let runtime_api = format!("http://{}", listener.local_addr()?);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        })
        .abort_handle();

        let identity = launch.identity;
        let name = launch.function_name;
        let memory = identity.memory_size.to_string();
        let log_group = format!("/aws/lambda/{name}");
        let task_root = launch.task_root.to_string_lossy().into_owned();
        let mut command = tokio::process::Command::new(&bootstrap);
        command
            .env_clear()
            .envs(&identity.variables)
            .env("AWS_LAMBDA_RUNTIME_API", &runtime_api)
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", &memory)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", &log_group)
            .env("AWS_REGION", launch.region)
            .env("AWS_DEFAULT_REGION", launch.region)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_ENDPOINT_URL", launch.aws_endpoint)
            .env("LAMBDA_TASK_ROOT", &task_root)
            .env("_HANDLER", identity.handler.as_deref().unwrap_or(""))
            .env("PATH", "/usr/bin:/bin")
            .env("TZ", ":UTC")
            .current_dir(launch.task_root)
            .stdin(std::process::Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true);
        let child = match command.spawn() {
            Ok(child) => child,
            Err(error) => {
                server.abort();
                return Err(error).with_context(|| format!("starting {}", bootstrap.display()));
            }
        };
        let pid = child.id();
        log_line(
            launch.log,
            &format!(
                "INIT_START lambda-runner: environment started (pid {}) for code {}",
                pid.map(|pid| pid.to_string()).unwrap_or_default(),
                identity.code_sha256
            ),
        );
        Ok(Self {
            identity: identity.clone(),
            pid,
            child,
            queue,
            events,
            server,
            log: launch.log.to_path_buf(),
            timeout,
        })
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Kills the process and waits (briefly) for it to be gone.
    pub(crate) async fn terminate(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }

    /// Runs one invocation. Returns the outcome and whether the environment can be reused.
    pub(crate) async fn invoke(
        &mut self,
        invocation: Invocation,
        shutdown: &mut watch::Receiver<bool>,
    ) -> (Outcome, bool) {
        let request_id = invocation.request_id.clone();
        let log = self.log.display().to_string();
        // Events left over from an earlier invocation (e.g. a late answer) mean nothing now.
        while self.events.try_recv().is_ok() {}
        if self.queue.try_send(invocation).is_err() {
            return (
                Outcome::failed(
                    "runtime stuck",
                    "Runtime.Unknown",
                    &format!(
                        "RequestId: {request_id} Error: the runtime did not take the previous \
                         event (log: {log})"
                    ),
                ),
                false,
            );
        }
        let mut deadline = tokio::time::Instant::now() + INIT_LIMIT + self.timeout;
        let mut dispatched = false;
        loop {
            tokio::select! {
                biased;
                event = self.events.recv() => match event {
                    Some(RuntimeEvent::Dispatched { request_id: id, at }) if id == request_id => {
                        dispatched = true;
                        deadline = tokio::time::Instant::from_std(at + self.timeout);
                    }
                    Some(RuntimeEvent::Response { request_id: id, body }) if id == request_id => {
                        return (Outcome::Response(body), true);
                    }
                    Some(RuntimeEvent::Error { request_id: id, body }) if id == request_id => {
                        return (Outcome::FunctionError(body), true);
                    }
                    Some(RuntimeEvent::InitError { body }) => {
                        let _ = self.child.start_kill();
                        return (Outcome::Failed { label: "init error".into(), body }, false);
                    }
                    Some(_) => {}
                    None => {
                        let _ = self.child.start_kill();
                        return (
                            Outcome::failed(
                                "runtime api gone",
                                "Runtime.Unknown",
                                &format!("RequestId: {request_id} Error: the Runtime API stopped"),
                            ),
                            false,
                        );
                    }
                },
                status = self.child.wait() => {
                    return (self.exited(&request_id, status), false);
                }
                () = tokio::time::sleep_until(deadline) => {
                    let _ = self.child.start_kill();
                    let message = if dispatched {
                        format!(
                            "RequestId: {request_id} Error: Task timed out after {:.2} seconds",
                            self.timeout.as_secs_f64()
                        )
                    } else {
                        format!(
                            "RequestId: {request_id} Error: the runtime did not ask for the \
                             event within {} s (init timeout) (log: {log})",
                            (INIT_LIMIT + self.timeout).as_secs()
                        )
                    };
                    return (Outcome::failed("timeout", "Sandbox.Timedout", &message), false);
                }
                _ = shutdown.wait_for(|stopping| *stopping) => {
                    let _ = self.child.start_kill();
                    return (
                        Outcome::failed(
                            "runner stopped",
                            "Runtime.Unknown",
                            &format!("RequestId: {request_id} Error: the local Lambda runner is shutting down"),
                        ),
                        false,
                    );
                }
            }
        }
    }

    /// The outcome when the process ended during an invocation: whatever it managed to post
    /// first, else an exit error.
    fn exited(
        &mut self,
        request_id: &str,
        status: std::io::Result<std::process::ExitStatus>,
    ) -> Outcome {
        let mut init_error = None;
        while let Ok(event) = self.events.try_recv() {
            match event {
                RuntimeEvent::Response {
                    request_id: id,
                    body,
                } if id == request_id => {
                    return Outcome::Response(body);
                }
                RuntimeEvent::Error {
                    request_id: id,
                    body,
                } if id == request_id => {
                    return Outcome::FunctionError(body);
                }
                RuntimeEvent::InitError { body } => init_error = Some(body),
                _ => {}
            }
        }
        if let Some(body) = init_error {
            return Outcome::Failed {
                label: "init error".into(),
                body,
            };
        }
        let log = self.log.display();
        let reason = match status {
            Ok(status) => describe_exit(status),
            Err(error) => format!("Runtime exited with error: {error}"),
        };
        let label = format!("crash ({reason})");
        Outcome::failed(
            label,
            "Runtime.ExitError",
            &format!("RequestId: {request_id} Error: {reason} (log: {log})"),
        )
    }
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(0), _) => "Runtime exited without providing a reason".to_string(),
        (Some(code), _) => format!("Runtime exited with error: exit status {code}"),
        (None, Some(signal)) => format!("Runtime exited with error: signal {signal}"),
        (None, None) => format!("Runtime exited with error: {status}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_keep_lambda_shape() {
        let headers = HeaderMap::new();
        let posted = Bytes::from(r#"{"errorType":"Boom","errorMessage":"x"}"#);
        assert_eq!(error_body(&headers, &posted, "Unhandled"), posted);

        let text = error_body(&headers, &Bytes::from("plain"), "Runtime.InitError");
        let value: Value = serde_json::from_slice(&text).expect("json");
        assert_eq!(value["errorType"], "Runtime.InitError");
        assert_eq!(value["errorMessage"], "plain");

        let mut headers = HeaderMap::new();
        headers.insert(
            "lambda-runtime-function-error-type",
            HeaderValue::from_static("Custom"),
        );
        let object = error_body(&headers, &Bytes::from(r#"{"errorMessage":"m"}"#), "X");
        let value: Value = serde_json::from_slice(&object).expect("json");
        assert_eq!(value["errorType"], "Custom");
        assert_eq!(value["errorMessage"], "m");
    }

    #[test]
    fn describes_exits() {
        use std::os::unix::process::ExitStatusExt;
        let status = std::process::ExitStatus::from_raw(3 << 8);
        assert_eq!(
            describe_exit(status),
            "Runtime exited with error: exit status 3"
        );
        let killed = std::process::ExitStatus::from_raw(9);
        assert_eq!(describe_exit(killed), "Runtime exited with error: signal 9");
    }
}
