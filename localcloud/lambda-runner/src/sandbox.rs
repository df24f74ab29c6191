//! One execution environment: a warm `bootstrap` process with its own Lambda Runtime API
//! listener, fed one invocation at a time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use axum::body::Bytes;
use serde_json::json;
use tokio::process::Child;
use tokio::sync::watch;

use crate::runtime_api::{Answer, Event, Invocation, RuntimeApi};

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
    /// The execution role's ARN.
    pub role: String,
    /// `x86_64` or `arm64`: the instruction set the function declares.
    pub architecture: String,
    /// When the function was created or last changed (`LastModified`): a function deleted and
    /// created again is another function, whose execution environments start anew (the old
    /// ones went with the old function), even with the same code and configuration.
    pub last_modified: Option<String>,
}

/// The credentials a function runs with: its execution role's session (behind the AWS
/// gateway), or moto's fixed key when the local cloud runs without one.
#[derive(Clone)]
pub(crate) struct RoleCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

/// Everything needed to start an environment.
pub(crate) struct Launch<'a> {
    pub function_name: &'a str,
    pub function_arn: &'a str,
    pub identity: &'a Identity,
    pub task_root: &'a Path,
    pub log: &'a Path,
    pub aws_endpoint: &'a str,
    /// The local Lambda service's Invoke API (`AWS_ENDPOINT_URL_LAMBDA`).
    pub lambda_endpoint: &'a str,
    pub region: &'a str,
    pub credentials: &'a RoleCredentials,
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

/// A running `bootstrap` process and its Runtime API.
pub(crate) struct Sandbox {
    pub identity: Identity,
    pid: Option<u32>,
    /// `kill_on_drop`: dropping the sandbox ends the process (tokio reaps it).
    child: Child,
    /// Dropping it stops the listener.
    api: RuntimeApi,
    log: PathBuf,
    timeout: Duration,
}

/// Lambda runs `bootstrap` on the instruction set the function declares; a binary for the
/// other one fails to start ("exec format error", `Runtime.InvalidEntrypoint`). The local
/// machine might run it anyway (or not, for another reason), so the runner compares the ELF
/// header's machine with the declared architecture first.
async fn check_architecture(bootstrap: &Path, declared: &str) -> anyhow::Result<()> {
    let mut header = [0_u8; 20];
    let mut file = tokio::fs::File::open(bootstrap)
        .await
        .with_context(|| format!("opening {}", bootstrap.display()))?;
    tokio::io::AsyncReadExt::read_exact(&mut file, &mut header)
        .await
        .with_context(|| format!("reading the header of {}", bootstrap.display()))?;
    match (elf_architecture(&header), declared) {
        (Some(built), declared) if built != declared => bail!(
            "exec format error: the deployed bootstrap is built for {built}, but the function's \
             architecture is {declared} (Runtime.InvalidEntrypoint on Lambda); build and deploy \
             for one architecture (`cargo xtask deploy --arch {declared}`)"
        ),
        _ => Ok(()),
    }
}

/// The Lambda architecture of an ELF executable's header (`e_machine`, little-endian: 62 is
/// x86-64, 183 is AArch64), `None` when it is neither (or not ELF).
fn elf_architecture(header: &[u8; 20]) -> Option<&'static str> {
    if &header[..4] != b"\x7fELF" {
        return None;
    }
    match u16::from_le_bytes([header[18], header[19]]) {
        62 => Some("x86_64"),
        183 => Some("arm64"),
        _ => None,
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
        check_architecture(&bootstrap, &launch.identity.architecture).await?;
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
        let api = RuntimeApi::start(launch.function_arn, timeout).await?;
        let runtime_api = api.endpoint().to_string();

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
            .env("AWS_ACCESS_KEY_ID", &launch.credentials.access_key_id)
            .env(
                "AWS_SECRET_ACCESS_KEY",
                &launch.credentials.secret_access_key,
            )
            .env("AWS_ENDPOINT_URL", launch.aws_endpoint)
            // Lambda's Invoke API is the local Lambda service, not moto's.
            .env("AWS_ENDPOINT_URL_LAMBDA", launch.lambda_endpoint)
            .env("LAMBDA_TASK_ROOT", &task_root)
            .envs(
                launch
                    .credentials
                    .session_token
                    .as_ref()
                    .map(|token| ("AWS_SESSION_TOKEN", token.as_str())),
            )
            .env("_HANDLER", identity.handler.as_deref().unwrap_or(""))
            .env("PATH", "/usr/bin:/bin")
            .env("TZ", ":UTC")
            .current_dir(launch.task_root)
            .stdin(std::process::Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true);
        // On failure, dropping `api` stops the listener.
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", bootstrap.display()))?;
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
            api,
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
        // `submit` forgets what was posted for earlier invocations (e.g. a late answer).
        if self.api.submit(invocation).is_err() {
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
                event = self.api.next_event(&request_id) => match event {
                    Some(Event::Dispatched { at }) => {
                        dispatched = true;
                        deadline = tokio::time::Instant::from_std(at + self.timeout);
                    }
                    Some(Event::Answered(Answer::Response(body))) => {
                        return (Outcome::Response(body), true);
                    }
                    Some(Event::Answered(Answer::Error(body))) => {
                        return (Outcome::FunctionError(body), true);
                    }
                    Some(Event::Answered(Answer::InitError(body))) => {
                        let _ = self.child.start_kill();
                        return (Outcome::Failed { label: "init error".into(), body }, false);
                    }
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
        match self.api.posted_answer(request_id) {
            Some(Answer::Response(body)) => return Outcome::Response(body),
            Some(Answer::Error(body)) => return Outcome::FunctionError(body),
            Some(Answer::InitError(body)) => {
                return Outcome::Failed {
                    label: "init error".into(),
                    body,
                };
            }
            None => {}
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

    #[tokio::test]
    async fn a_binary_for_the_other_architecture_does_not_start() {
        let dir = std::env::temp_dir().join(format!("lambda-runner-elf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory");
        let binary = |machine: u16| {
            let mut header = vec![0_u8; 64];
            header[..4].copy_from_slice(b"\x7fELF");
            header[18..20].copy_from_slice(&machine.to_le_bytes());
            header
        };
        let arm = dir.join("arm");
        std::fs::write(&arm, binary(183)).expect("written");
        let intel = dir.join("intel");
        std::fs::write(&intel, binary(62)).expect("written");
        let refused = check_architecture(&arm, "x86_64")
            .await
            .expect_err("an arm64 binary on x86_64");
        assert!(
            refused.to_string().contains("exec format error")
                && refused.to_string().contains("built for arm64"),
            "{refused}"
        );
        assert!(check_architecture(&arm, "arm64").await.is_ok());
        assert!(check_architecture(&intel, "x86_64").await.is_ok());
        assert!(check_architecture(&intel, "arm64").await.is_err());
        let _ = std::fs::remove_dir_all(&dir);
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
