//! One deploy or teardown at a time per environment, across machines (a laptop and CI, two CI
//! runs): a lock object `locks/<env>.json` in the account's artifacts bucket.
//!
//! Amazon S3 User Guide, "How to prevent object overwrites with conditional writes": a
//! `PutObject` with `If-None-Match: *` fails with `412 PreconditionFailed` when the key exists
//! (and with `409 ConditionalRequestConflict` when another write to it is in flight: retry), so
//! exactly one writer creates the lock. "How to perform conditional deletes": a `DeleteObject`
//! with `If-Match: <ETag>` removes the object only while it is the one we wrote, so a run whose
//! lock was broken never removes its successor's.
//!
//! The lock records its owner (the caller's ARN, the host, the process, the CI run) and start
//! time; a blocked command prints them and waits (`--lock-wait`, 20 minutes by default). A run
//! that was killed leaves its lock: on the same machine the next run sees that the process is
//! gone and takes the lock over; from another machine `--break-lock` removes it, saying whose it
//! was. Ctrl-C releases the lock before exiting.

use std::time::Duration;

use anyhow::{Context, bail};
use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use serde::{Deserialize, Serialize};

use crate::aws_error::{self, AwsContext};
use crate::cloud::{Cloud, Target};

/// How long a blocked command waits by default.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(20 * 60);

/// How a command takes the lock.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long to wait for another run's lock (zero: fail at once).
    pub wait: Duration,
    /// Remove an existing lock first (a killed run's).
    pub break_lock: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            wait: DEFAULT_WAIT,
            break_lock: false,
        }
    }
}

/// What the lock object says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Holder {
    pub environment: String,
    pub command: String,
    pub owner: String,
    pub host: String,
    pub pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_run: Option<String>,
    pub started_at: String,
}

impl Holder {
    fn describe(&self) -> String {
        format!(
            "{} by {} on {} (pid {}{}) since {}",
            match self.command.as_str() {
                "teardown" => "being torn down",
                _ => "being deployed",
            },
            self.owner,
            self.host,
            self.pid,
            self.ci_run
                .as_deref()
                .map(|run| format!(", {run}"))
                .unwrap_or_default(),
            self.started_at
        )
    }
}

/// The lock's key for an environment.
pub fn key(environment: &str) -> String {
    format!("locks/{environment}.json")
}

/// A lock held by this process.
struct Held {
    bucket: String,
    key: String,
    etag: String,
}

/// Runs `work` holding the environment's lock; releases it whatever `work` returns, and on
/// Ctrl-C. `bucket`: the artifacts bucket. `create_bucket`: whether a missing bucket is
/// created (a deploy) or means no run can hold the lock (a teardown).
pub async fn holding<T>(
    cloud: &Cloud,
    environment: &str,
    command: &str,
    options: &Options,
    create_bucket: bool,
    bucket: &str,
    work: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let s3 = &cloud.clients.s3;
    // The local cloud answers in milliseconds; AWS deploys take minutes.
    let poll = match cloud.target {
        Target::Local => Duration::from_millis(200),
        Target::Aws => Duration::from_secs(3),
    };
    let Some(held) = acquire(
        s3,
        bucket,
        &cloud.region,
        environment,
        command,
        &cloud.caller,
        options,
        create_bucket,
        poll,
    )
    .await?
    else {
        return work.await;
    };
    let result = tokio::select! {
        result = work => result,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!(
            "{command} of {environment} interrupted\nhint: run it again; it finishes what this run started"
        )),
    };
    release(s3, &held).await;
    result
}

#[allow(clippy::too_many_arguments)]
async fn acquire(
    s3: &Client,
    bucket: &str,
    region: &str,
    environment: &str,
    command: &str,
    caller: &str,
    options: &Options,
    create_bucket: bool,
    poll: Duration,
) -> anyhow::Result<Option<Held>> {
    let key = key(environment);
    let me = Holder {
        environment: environment.to_string(),
        command: command.to_string(),
        owner: caller.to_string(),
        host: host(),
        pid: std::process::id(),
        ci_run: ci_run(),
        started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    let body = serde_json::to_vec_pretty(&me).context("writing the lock record")?;
    if options.break_lock {
        if let Some(holder) = read(s3, bucket, &key).await? {
            note!(
                "lock: breaking the lock of {environment}: it was {}",
                holder.describe()
            );
        }
        remove(s3, bucket, &key).await?;
    }
    let started = std::time::Instant::now();
    let mut announced: Option<String> = None;
    loop {
        let put = s3
            .put_object()
            .bucket(bucket)
            .key(&key)
            .if_none_match("*")
            .content_type("application/json")
            .body(ByteStream::from(body.clone()))
            .send()
            .await;
        match put {
            Ok(output) => {
                if announced.is_some() {
                    note!("lock: {environment} is free; going on");
                }
                return Ok(Some(Held {
                    bucket: bucket.to_string(),
                    key,
                    etag: output.e_tag().unwrap_or("*").to_string(),
                }));
            }
            Err(error) if no_such_bucket(&error) => {
                if !create_bucket {
                    // No bucket: nothing was ever deployed here, so no run holds the lock.
                    return Ok(None);
                }
                crate::infra::ensure_bucket(s3, bucket, region).await?;
            }
            Err(error) if precondition(&error) => {
                let Some(holder) = read(s3, bucket, &key).await? else {
                    // Released between the two calls: try again at once.
                    continue;
                };
                let described = holder.describe();
                if holder.host == me.host && !alive(holder.pid) {
                    // Killed on this machine (it cannot be running elsewhere): nothing to wait
                    // for, and re-running must converge.
                    note!(
                        "lock: {environment} was {described}, but that process is gone; taking its lock over"
                    );
                    remove(s3, bucket, &key).await?;
                    continue;
                }
                if started.elapsed() >= options.wait {
                    bail!(
                        "{environment} is {described}; gave up after {}\nhint: wait for that run to finish; if it is dead (a killed process leaves its lock), run again with --break-lock",
                        humanize(options.wait)
                    );
                }
                if announced.as_deref() != Some(described.as_str()) {
                    note!(
                        "lock: {environment} is {described}; waiting for it (up to {}; --lock-wait)",
                        humanize(options.wait)
                    );
                    announced = Some(described);
                }
                tokio::time::sleep(poll).await;
            }
            Err(error) => {
                if status(&error) == Some(403) {
                    // Most likely a bucket of another account (every call expects ours to own
                    // it): checking the bucket says so, with what to do.
                    crate::infra::ensure_bucket(s3, bucket, region).await?;
                }
                return Err(error).aws_context(|| {
                    format!("taking the lock s3://{bucket}/{key} of {environment}")
                });
            }
        }
    }
}

/// Removes a lock whoever holds it.
async fn remove(s3: &Client, bucket: &str, key: &str) -> anyhow::Result<()> {
    match s3.delete_object().bucket(bucket).key(key).send().await {
        Ok(_) => Ok(()),
        Err(error) if no_such_bucket(&error) => Ok(()),
        Err(error) => Err(error).aws_context(|| format!("breaking the lock s3://{bucket}/{key}")),
    }
}

/// Whether process `pid` of this machine is still an sfstack command. Where `/proc` cannot
/// tell (not Linux), it is taken to be alive: waiting is safe, taking a live lock is not.
fn alive(pid: u32) -> bool {
    let proc = std::path::Path::new("/proc");
    if !proc.join("self").exists() {
        return true;
    }
    std::fs::read(proc.join(pid.to_string()).join("cmdline"))
        .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains("xtask"))
}

async fn read(s3: &Client, bucket: &str, key: &str) -> anyhow::Result<Option<Holder>> {
    match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(output) => {
            let bytes = output
                .body
                .collect()
                .await
                .with_context(|| format!("reading s3://{bucket}/{key}"))?
                .into_bytes();
            // A lock written by something else still blocks; say what little is known.
            Ok(Some(serde_json::from_slice(&bytes).unwrap_or(Holder {
                environment: String::new(),
                command: "deploy".to_string(),
                owner: "an unknown owner".to_string(),
                host: "an unknown host".to_string(),
                pid: 0,
                ci_run: None,
                started_at: "an unknown time".to_string(),
            })))
        }
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|error| error.is_no_such_key())
                || no_such_bucket(&error) =>
        {
            Ok(None)
        }
        Err(error) => Err(error).aws_context(|| format!("reading the lock s3://{bucket}/{key}")),
    }
}

/// Removes the lock if it is still ours; says so if it was broken meanwhile. Never fails the
/// command: the work is done, and a left-over lock is reported, not hidden.
async fn release(s3: &Client, held: &Held) {
    let deleted = s3
        .delete_object()
        .bucket(&held.bucket)
        .key(&held.key)
        .if_match(&held.etag)
        .send()
        .await;
    match deleted {
        Ok(_) => {}
        Err(error) if precondition(&error) || status(&error) == Some(404) => note!(
            "lock: s3://{}/{} was broken by another run meanwhile; left as it is",
            held.bucket,
            held.key
        ),
        Err(error) => note!(
            "lock: could not release s3://{}/{} ({}); the next run of this environment needs --break-lock",
            held.bucket,
            held.key,
            aws_error::message(&error)
        ),
    }
}

type S3Error<E> = aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>;

fn status<E>(error: &S3Error<E>) -> Option<u16> {
    error.raw_response().map(|raw| raw.status().as_u16())
}

/// 412 PreconditionFailed (the lock exists), or 409 ConditionalRequestConflict (another write
/// to it is in flight).
fn precondition<E>(error: &S3Error<E>) -> bool {
    matches!(status(error), Some(412 | 409))
}

fn no_such_bucket<E: ProvideErrorMetadata>(error: &S3Error<E>) -> bool {
    error.code() == Some("NoSuchBucket")
}

fn host() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "an unnamed host".to_string())
}

/// The GitHub Actions run this is, if any.
fn ci_run() -> Option<String> {
    let server = std::env::var("GITHUB_SERVER_URL").ok()?;
    let repository = std::env::var("GITHUB_REPOSITORY").ok()?;
    let run = std::env::var("GITHUB_RUN_ID").ok()?;
    Some(format!("{server}/{repository}/actions/runs/{run}"))
}

/// A duration as the messages say it (`20 min`, `45 s`).
pub(crate) fn humanize(duration: Duration) -> String {
    let seconds = duration.as_secs();
    if seconds.is_multiple_of(60) && seconds > 0 {
        format!("{} min", seconds / 60)
    } else {
        format!("{seconds} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_says_who_and_since_when() {
        let holder = Holder {
            environment: "feature-x".into(),
            command: "deploy".into(),
            owner: "arn:aws:sts::1:assumed-role/ci/run".into(),
            host: "runner-7".into(),
            pid: 42,
            ci_run: Some("https://github.com/team/app/actions/runs/9".into()),
            started_at: "2026-12-01T10:00:00Z".into(),
        };
        assert_eq!(
            holder.describe(),
            "being deployed by arn:aws:sts::1:assumed-role/ci/run on runner-7 (pid 42, https://github.com/team/app/actions/runs/9) since 2026-12-01T10:00:00Z"
        );
        assert_eq!(key("feature-x"), "locks/feature-x.json");
        assert_eq!(humanize(DEFAULT_WAIT), "20 min");
        assert_eq!(humanize(Duration::ZERO), "0 s");
    }

    #[test]
    fn this_process_is_alive_and_a_free_pid_is_not() {
        assert!(alive(std::process::id()));
        if std::path::Path::new("/proc/self").exists() {
            assert!(!alive(u32::MAX - 1));
        }
    }
}
