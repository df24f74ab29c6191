//! JSON logs on stdout, where Lambda sends them to CloudWatch.

use tracing_subscriber::EnvFilter;

/// Starts JSON logging. The level comes from `RUST_LOG`, else from the original package's
/// `LOGGING_LEVEL` (`DEBUG`, `INFO`, `WARNING`, `ERROR`, `CRITICAL`), else `info`.
pub fn init_logging() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|value| EnvFilter::try_new(value).ok())
        .unwrap_or_else(|| {
            EnvFilter::new(level_from_original(
                std::env::var("LOGGING_LEVEL").ok().as_deref(),
            ))
        });
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .try_init();
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
    use super::level_from_original;

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
}
