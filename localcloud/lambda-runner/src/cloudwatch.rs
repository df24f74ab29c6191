//! A function's output in CloudWatch Logs, as Lambda puts it there: one log stream per
//! execution environment (`YYYY/MM/DD/[$LATEST]<id>`) in the function's log group
//! (`/aws/lambda/NAME`), written with the function's own execution role, so the role needs
//! `logs:CreateLogStream` and `logs:PutLogEvents` on its group (Lambda Developer Guide,
//! "Sending Lambda function logs to CloudWatch Logs"). Lambda never creates what the role may
//! not: when CloudWatch Logs refuses, the output is lost there and the function runs on; the
//! refusal is noted in the local log file instead.
//!
//! Lines are sent shortly after each invocation, batched (Lambda delivers asynchronously too),
//! so the warm path never waits on CloudWatch Logs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use tokio::sync::Mutex;

use crate::sandbox::{RoleCredentials, log_line};

/// How long lines gather before they are sent.
const BATCH_DELAY: Duration = Duration::from_millis(100);
/// After a refusal, how long before the next attempt.
const BACKOFF: Duration = Duration::from_secs(5);
/// CloudWatch Logs takes at most 10,000 events per `PutLogEvents`.
const MAX_EVENTS: usize = 10_000;
/// CloudWatch Logs takes events of at most 256 KB (less 26 bytes of overhead).
const MAX_EVENT_BYTES: usize = 256 * 1024 - 26;

/// Sends one execution environment's output to its log stream.
#[derive(Clone)]
pub(crate) struct LogShipper {
    inner: Arc<Mutex<State>>,
}

struct State {
    client: aws_sdk_cloudwatchlogs::Client,
    group: String,
    stream: String,
    created: bool,
    /// The local log file, and how far of it has been sent (or dropped).
    file: PathBuf,
    sent: u64,
    /// A batch is waiting to go.
    scheduled: bool,
    refused_until: Option<Instant>,
}

impl LogShipper {
    /// A shipper for the environment whose output goes to `file` from byte `from` on.
    pub(crate) async fn new(
        function_name: &str,
        endpoint: &str,
        region: &str,
        credentials: &RoleCredentials,
        file: PathBuf,
        from: u64,
    ) -> Self {
        let config = aws_reqwest::defaults()
            .endpoint_url(endpoint)
            .region(aws_config::Region::new(region.to_string()))
            .credentials_provider(aws_sdk_sts::config::Credentials::new(
                credentials.access_key_id.clone(),
                credentials.secret_access_key.clone(),
                credentials.session_token.clone(),
                None,
                "lambda-runner",
            ))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .load()
            .await;
        let id: String = (0..32)
            .map(|_| format!("{:x}", rand::random::<u8>() & 0xf))
            .collect();
        // Lambda's stream names: the environment's UTC start date, version and id.
        let stream = format!("{}/[$LATEST]{id}", chrono::Utc::now().format("%Y/%m/%d"));
        Self {
            inner: Arc::new(Mutex::new(State {
                client: aws_sdk_cloudwatchlogs::Client::new(&config),
                group: format!("/aws/lambda/{function_name}"),
                stream,
                created: false,
                file,
                sent: from,
                scheduled: false,
                refused_until: None,
            })),
        }
    }

    /// Sends what the environment wrote since the last batch, shortly (in the background).
    pub(crate) fn ship_soon(&self) {
        let shipper = self.clone();
        tokio::spawn(async move {
            {
                let mut state = shipper.inner.lock().await;
                if state.scheduled {
                    return;
                }
                state.scheduled = true;
            }
            tokio::time::sleep(BATCH_DELAY).await;
            let mut state = shipper.inner.lock().await;
            state.scheduled = false;
            state.ship().await;
        });
    }
}

impl State {
    async fn ship(&mut self) {
        let Ok(bytes) = tokio::fs::read(&self.file).await else {
            return;
        };
        let from = usize::try_from(self.sent)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        // Whole lines only; a partial last line waits for the next batch.
        let Some(end) = bytes[from..].iter().rposition(|byte| *byte == b'\n') else {
            return;
        };
        let end = from + end + 1;
        let new = String::from_utf8_lossy(&bytes[from..end]).into_owned();
        if self
            .refused_until
            .is_some_and(|until| Instant::now() < until)
        {
            // Lost, as Lambda loses output CloudWatch Logs refuses.
            self.sent = end as u64;
            return;
        }
        let now = chrono::Utc::now().timestamp_millis();
        let events: Vec<InputLogEvent> = new
            .lines()
            .filter(|line| !line.is_empty())
            .filter_map(|line| {
                let mut message = line.to_string();
                if message.len() > MAX_EVENT_BYTES {
                    let mut cut = MAX_EVENT_BYTES;
                    while !message.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    message.truncate(cut);
                }
                InputLogEvent::builder()
                    .timestamp(now)
                    .message(message)
                    .build()
                    .ok()
            })
            .collect();
        let result = self.put(events).await;
        self.sent = end as u64;
        if let Err(error) = result {
            self.refused_until = Some(Instant::now() + BACKOFF);
            // Appended after `end`: this note is not shipped as function output.
            log_line(
                &self.file,
                &format!(
                    "lambda-runner: CloudWatch Logs did not take the output for {} (stream {}): {error}",
                    self.group, self.stream
                ),
            );
            if let Ok(meta) = tokio::fs::metadata(&self.file).await {
                self.sent = meta.len();
            }
        } else {
            self.refused_until = None;
        }
    }

    async fn put(&mut self, events: Vec<InputLogEvent>) -> Result<(), String> {
        if events.is_empty() {
            return Ok(());
        }
        let show = |error: &dyn std::fmt::Display| error.to_string();
        if !self.created {
            self.client
                .create_log_stream()
                .log_group_name(&self.group)
                .log_stream_name(&self.stream)
                .send()
                .await
                .map_err(|error| {
                    show(&aws_sdk_cloudwatchlogs::error::DisplayErrorContext(error))
                })?;
            self.created = true;
        }
        for batch in events.chunks(MAX_EVENTS) {
            self.client
                .put_log_events()
                .log_group_name(&self.group)
                .log_stream_name(&self.stream)
                .set_log_events(Some(batch.to_vec()))
                .send()
                .await
                .map_err(|error| {
                    show(&aws_sdk_cloudwatchlogs::error::DisplayErrorContext(error))
                })?;
        }
        Ok(())
    }
}
