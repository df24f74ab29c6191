//! `logs`: a deployed function's log lines from CloudWatch Logs, on both targets (on the local
//! target the local Lambda service ships each function's output to moto's CloudWatch Logs,
//! under the same log group), shown readably or passed through as JSON, and followed until
//! Ctrl-C.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;

use crate::aws_error::AwsContext;
use crate::cloud::Cloud;
use crate::naming::Names;

/// What to read.
#[derive(Debug, Clone)]
pub struct Request {
    /// The function's short name.
    pub function: &'static str,
    /// How far back to start.
    pub since: Duration,
    /// Only lines that contain this text.
    pub filter: Option<String>,
    /// Keep reading new lines until Ctrl-C.
    pub follow: bool,
    /// Print each line's message as it was logged (JSON lines as JSON), one per line.
    pub json: bool,
}

/// How often `--follow` asks for new lines.
const FOLLOW_EVERY: Duration = Duration::from_millis(1000);

/// Prints the log lines; with `follow`, until Ctrl-C. Returns how many lines were printed.
pub async fn show(cloud: &Cloud, names: &Names, request: &Request) -> anyhow::Result<usize> {
    let group = names.log_group(request.function);
    let since_ms = chrono::Utc::now().timestamp_millis()
        - i64::try_from(request.since.as_millis()).unwrap_or(i64::MAX);
    let mut cursor = Cursor {
        start: since_ms.max(0),
        seen: HashSet::new(),
        printed: 0,
    };
    if !request.follow {
        cursor.round(cloud, &group, names, request).await?;
        return Ok(cursor.printed);
    }
    // One Ctrl-C future for the whole run, polled from the start, so an interrupt that comes
    // while lines are being read is not lost.
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            biased;
            _ = &mut interrupted => return Ok(cursor.printed),
            round = async {
                cursor.round(cloud, &group, names, request).await?;
                tokio::time::sleep(FOLLOW_EVERY).await;
                Ok::<(), anyhow::Error>(())
            } => round?,
        }
    }
}

/// Where reading has got to.
struct Cursor {
    start: i64,
    seen: HashSet<String>,
    printed: usize,
}

impl Cursor {
    /// Prints the lines not printed yet.
    async fn round(
        &mut self,
        cloud: &Cloud,
        group: &str,
        names: &Names,
        request: &Request,
    ) -> anyhow::Result<()> {
        for (id, timestamp, message) in read(cloud, group, self.start, names).await? {
            if !self.seen.insert(id) {
                continue;
            }
            self.start = self.start.max(timestamp);
            if request
                .filter
                .as_deref()
                .is_some_and(|filter| !message.contains(filter))
            {
                continue;
            }
            println!("{}", render(timestamp, &message, request.json));
            self.printed += 1;
        }
        Ok(())
    }
}

/// The log group's events from `start` (milliseconds), oldest first: (id, timestamp, message).
async fn read(
    cloud: &Cloud,
    group: &str,
    start: i64,
    names: &Names,
) -> anyhow::Result<Vec<(String, i64, String)>> {
    let pages = cloud
        .logs
        .filter_log_events()
        .log_group_name(group)
        .start_time(start)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await;
    let pages = match pages {
        Ok(pages) => pages,
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|error| error.is_resource_not_found_exception()) =>
        {
            anyhow::bail!(
                "log group {group} does not exist\nhint: deploy the environment first (cargo xtask deploy --env {})",
                names.environment
            );
        }
        Err(error) => return Err(error).aws_context(|| format!("reading the log group {group}")),
    };
    let mut events: Vec<(String, i64, String)> = pages
        .iter()
        .flat_map(|page| page.events())
        .map(|event| {
            let timestamp = event.timestamp().unwrap_or_default();
            let message = event.message().unwrap_or_default().trim_end().to_string();
            let id = event
                .event_id()
                .map_or_else(|| format!("{timestamp}:{message}"), str::to_string);
            (id, timestamp, message)
        })
        .collect();
    events.sort_by_key(|(_, timestamp, _)| *timestamp);
    Ok(events)
}

/// One line as printed: with `json`, the message as logged; else time, level, message and
/// fields of a JSON line, or time and text of any other.
pub fn render(timestamp: i64, message: &str, json: bool) -> String {
    if json {
        return message.to_string();
    }
    let time = chrono::DateTime::from_timestamp_millis(timestamp)
        .map(|time| time.format("%H:%M:%S%.3f").to_string())
        .unwrap_or_default();
    let Ok(Value::Object(line)) = serde_json::from_str::<Value>(message) else {
        return format!("{time} {message}");
    };
    let level = line
        .get("level")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_uppercase();
    let fields = line.get("fields").and_then(Value::as_object);
    let text = fields
        .and_then(|fields| fields.get("message"))
        .or_else(|| line.get("message"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut rendered = format!("{time} {level:<5} {text}");
    for (key, value) in fields.into_iter().flatten() {
        if key == "message" {
            continue;
        }
        match value {
            Value::String(value) => rendered.push_str(&format!(" {key}={value}")),
            value => rendered.push_str(&format!(" {key}={value}")),
        }
    }
    rendered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_are_shown_readably_and_others_as_they_are() {
        // 2026-01-01T00:00:01.5Z
        let at = 1_767_225_601_500;
        let line = r#"{"timestamp":"2026-01-01T00:00:01.5Z","level":"INFO","fields":{"message":"stored a session","instance_url":"https://example.my.salesforce.com","attempts":2},"target":"sf_token_refresh"}"#;
        assert_eq!(
            render(at, line, false),
            "00:00:01.500 INFO  stored a session instance_url=https://example.my.salesforce.com attempts=2"
        );
        assert_eq!(render(at, line, true), line);
        assert_eq!(
            render(at, "START RequestId: abc Version: $LATEST", false),
            "00:00:01.500 START RequestId: abc Version: $LATEST"
        );
    }
}
