//! `invoke`: sends an event of the user's to a deployed function and shows the answer, the
//! function's error and the tail of its log, on both targets (the same Lambda Invoke API: AWS
//! itself, or the local Lambda service).

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use aws_sdk_lambda::operation::RequestId;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::LogType;
use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;

use crate::aws_error::AwsContext;
use crate::cloud::Cloud;
use crate::naming::{FUNCTIONS, Names};

/// Where the event comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventSource {
    /// No event: `{}`.
    Empty,
    /// `--event FILE`, or a name of `tests/events/` (`--event phoneLookup`).
    File(String),
    /// `--event-json JSON`.
    Inline(String),
    /// `--event -` or a lone `-`: standard input.
    Stdin,
}

/// The function's error, as Lambda reports it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FunctionError {
    #[serde(rename = "errorType")]
    pub error_type: String,
    #[serde(rename = "errorMessage")]
    pub error_message: String,
}

/// What one invocation gave.
#[derive(Debug, Clone, Serialize)]
pub struct InvokeReport {
    pub function: String,
    pub request_id: Option<String>,
    /// The answer (the error document when the function failed).
    pub payload: Value,
    pub error: Option<FunctionError>,
    pub duration_ms: f64,
    /// The last lines the invocation logged (Lambda's `LogType=Tail`, at most 4 KB).
    pub log_tail: Vec<String>,
}

/// The short name of a function of the stack, or an error that lists them.
pub fn function(name: &str) -> anyhow::Result<&'static str> {
    FUNCTIONS
        .iter()
        .copied()
        .find(|function| *function == name)
        .with_context(|| {
            format!(
                "unknown function {name:?}; nothing was sent\nhint: the functions are {}",
                FUNCTIONS.join(", ")
            )
        })
}

/// Reads and parses the event, before anything is sent.
pub fn read_event(root: &Path, source: &EventSource) -> anyhow::Result<Value> {
    let (text, from) = match source {
        EventSource::Empty => return Ok(Value::Object(serde_json::Map::new())),
        EventSource::Inline(text) => (text.clone(), "--event-json".to_string()),
        EventSource::Stdin => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the event from standard input")?;
            (text, "standard input".to_string())
        }
        EventSource::File(name) => {
            let path = Path::new(name);
            let sample = root
                .join("tests")
                .join("events")
                .join(format!("{name}.json"));
            let path = if path.is_file() {
                path.to_path_buf()
            } else if sample.is_file() && !name.contains(['/', '\\']) {
                sample
            } else {
                bail!(
                    "no event file {name:?} and no sample event of that name; nothing was sent\nhint: give a JSON file, or one of the samples: {}",
                    samples(root).join(", ")
                );
            };
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            (text, path.display().to_string())
        }
    };
    serde_json::from_str(&text).map_err(|error| {
        anyhow::anyhow!(
            "the event from {from} is not JSON (line {}, column {}: {error}); nothing was sent",
            error.line(),
            error.column()
        )
    })
}

/// The names of `tests/events/`.
fn samples(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("tests").join("events"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            entry
                .file_name()
                .to_str()?
                .strip_suffix(".json")
                .map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

/// Invokes `function` of the environment with `event`.
pub async fn invoke(
    cloud: &Cloud,
    names: &Names,
    function: &str,
    event: &Value,
) -> anyhow::Result<InvokeReport> {
    let name = names.function(function);
    let started = Instant::now();
    let output = match cloud
        .invoker
        .invoke()
        .function_name(&name)
        .log_type(LogType::Tail)
        .payload(Blob::new(serde_json::to_vec(event)?))
        .send()
        .await
    {
        Ok(output) => output,
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|error| error.is_resource_not_found_exception()) =>
        {
            bail!(
                "function {name} does not exist\nhint: deploy the environment first (cargo xtask deploy --env {})",
                names.environment
            );
        }
        Err(error) => return Err(error).aws_context(|| format!("invoking {name}")),
    };
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    let body = output.payload().map(Blob::as_ref).unwrap_or_default();
    let payload: Value = serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
    let error = output.function_error().map(|_| FunctionError {
        error_type: payload["errorType"]
            .as_str()
            .unwrap_or("Unhandled")
            .to_string(),
        error_message: payload["errorMessage"]
            .as_str()
            .map_or_else(|| payload.to_string(), str::to_string),
    });
    let log_tail = output
        .log_result()
        .and_then(|tail| base64::engine::general_purpose::STANDARD.decode(tail).ok())
        .map(|bytes| {
            String::from_utf8_lossy(&bytes)
                .lines()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok(InvokeReport {
        function: name,
        request_id: output.request_id().map(str::to_string),
        payload,
        error,
        duration_ms,
        log_tail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_read_from_each_source_and_bad_ones_are_refused() {
        let root = crate::render::repository_root();
        assert_eq!(
            read_event(&root, &EventSource::Empty).expect("empty"),
            serde_json::json!({})
        );
        assert_eq!(
            read_event(&root, &EventSource::Inline(r#"{"a": 1}"#.into())).expect("inline"),
            serde_json::json!({"a": 1})
        );
        let sample = read_event(&root, &EventSource::File("phoneLookup".into())).expect("sample");
        assert_eq!(
            sample["Details"]["Parameters"]["sf_operation"],
            "phoneLookup"
        );
        let error = read_event(&root, &EventSource::Inline("{oops".into()))
            .expect_err("not JSON")
            .to_string();
        assert!(error.contains("is not JSON (line 1, column 2"), "{error}");
        assert!(error.contains("nothing was sent"), "{error}");
        let error = read_event(&root, &EventSource::File("noSuchSample".into()))
            .expect_err("missing")
            .to_string();
        assert!(error.contains("phoneLookup"), "lists the samples: {error}");
        let error = function("sf-nope").expect_err("unknown").to_string();
        assert!(error.contains("sf-invoke-api, "), "{error}");
        assert_eq!(function("sf-token-refresh").ok(), Some("sf-token-refresh"));
    }
}
