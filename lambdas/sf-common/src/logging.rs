//! JSON logs on stdout, where Lambda sends them to CloudWatch.

use tracing_subscriber::EnvFilter;

/// Dependencies whose trace output carries request bodies (secret values, tokens) or raw events
/// (OAuth codes): they never log below these levels, whatever the configuration asks for.
const SECRET_SAFE_CAPS: &[&str] = &[
    "aws_smithy_runtime=debug",
    "aws_smithy_runtime_api=debug",
    "aws_smithy_http_client=debug",
    "aws_sdk_secretsmanager=debug",
    "aws_sdk_dynamodb=debug",
    "aws_config=debug",
    "lambda_runtime=debug",
    "lambda_runtime_api_client=debug",
    "hyper=info",
    "hyper_util=info",
    "h2=info",
    "reqwest=debug",
    "rustls=info",
];

/// Starts JSON logging. The level comes from `RUST_LOG`, else from the original package's
/// `LOGGING_LEVEL` (`DEBUG`, `INFO`, `WARNING`, `ERROR`, `CRITICAL`), else `info`.
pub fn init_logging() {
    let filter = filter(
        std::env::var("RUST_LOG").ok().as_deref(),
        std::env::var("LOGGING_LEVEL").ok().as_deref(),
    );
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .try_init();
}

fn filter(rust_log: Option<&str>, logging_level: Option<&str>) -> EnvFilter {
    let mut filter = rust_log
        .and_then(|value| EnvFilter::try_new(value).ok())
        .unwrap_or_else(|| EnvFilter::new(level_from_original(logging_level)));
    // Directives added last win for their targets.
    for cap in SECRET_SAFE_CAPS {
        if let Ok(directive) = cap.parse() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

/// Maps the Python logging level names of the original package to tracing's.
fn level_from_original(level: Option<&str>) -> &'static str {
    match level
        .map(|level| level.trim().to_ascii_uppercase())
        .as_deref()
    {
        Some("DEBUG") => "debug",
        Some("WARNING" | "WARN") => "warn",
        Some("ERROR" | "CRITICAL") => "error",
        Some("TRACE") => "trace",
        _ => "info",
    }
}

#[cfg(test)]
mod tests {
    use super::{filter, level_from_original};

    #[test]
    fn python_level_names_map_to_tracing_levels() {
        let cases = [
            (Some("DEBUG"), "debug"),
            (Some("warning"), "warn"),
            (Some("CRITICAL"), "error"),
            (Some("ERROR"), "error"),
            (Some("INFO"), "info"),
            (Some("nonsense"), "info"),
            (None, "info"),
        ];
        for (input, expected) in cases {
            assert_eq!(level_from_original(input), expected, "{input:?}");
        }
    }

    #[test]
    fn trace_never_reaches_the_sdk_or_the_runtime() {
        for (rust_log, level) in [(Some("trace"), None), (None, Some("TRACE"))] {
            let rendered = filter(rust_log, level).to_string();
            for cap in [
                "aws_smithy_runtime=debug",
                "lambda_runtime=debug",
                "hyper=info",
            ] {
                assert!(rendered.contains(cap), "{rendered}");
            }
        }
    }
}
