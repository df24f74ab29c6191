//! JSON logs on stdout, where Lambda sends them to CloudWatch.

use tracing::Level;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Dependencies whose trace output carries request bodies (secret values, tokens) or raw events
/// (OAuth codes): they never log below these levels, whatever the configuration asks for. A cap
/// only lowers a target's level: under `warn`, they log warnings only.
const SECRET_SAFE_CAPS: &[&str] = &[
    "aws_smithy_runtime=debug",
    "aws_smithy_runtime_api=debug",
    "aws_sdk_secretsmanager=debug",
    "aws_sdk_dynamodb=debug",
    "aws_sdk_lambda=debug",
    "lambda_runtime=debug",
    "lambda_runtime_api_client=debug",
    "hyper=info",
    "hyper_util=info",
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
    let format = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(false)
        .with_ansi(false)
        .without_time()
        .with_target(false);
    let _ = tracing_subscriber::registry()
        .with(format)
        .with(filter)
        .try_init();
}

/// `target=level` directives (a plain `Targets` filter: no regular-expression engine in the
/// function binaries), with the caps appended so they win for their targets. Each cap's level
/// is the less verbose of the cap and what the configuration gives that target: a `Targets`
/// directive sets its target's level, so `aws_smithy_runtime=debug` alone would turn the SDK's
/// debug output on under `info` or `warn`.
fn filter(rust_log: Option<&str>, logging_level: Option<&str>) -> Targets {
    let base = rust_log
        .filter(|value| value.parse::<Targets>().is_ok())
        .map_or_else(
            || level_from_original(logging_level).to_string(),
            str::to_string,
        );
    let configured: Targets = base.parse().unwrap_or_default();
    let configured_directives: Vec<(String, LevelFilter)> = configured
        .iter()
        .map(|(target, level)| (target.to_string(), level))
        .collect();
    let caps = SECRET_SAFE_CAPS.iter().filter_map(|cap| {
        let (target, level) = cap.split_once('=')?;
        let cap: Level = level.parse().ok()?;
        // The most verbose level the configuration enables for this target, if any.
        let configured = [
            Level::TRACE,
            Level::DEBUG,
            Level::INFO,
            Level::WARN,
            Level::ERROR,
        ]
        .into_iter()
        .find(|level| configured.would_enable(target, level));
        let cap = LevelFilter::from_level(cap);
        // `LevelFilter`'s order: OFF, then ERROR, is the least verbose, so the smaller is the
        // stricter.
        let mut clamped = vec![format!(
            "{target}={}",
            configured
                .map_or(LevelFilter::OFF, LevelFilter::from_level)
                .min(cap)
        )];
        // A configured directive for a module inside the target is more specific than the cap
        // and would win over it: it is clamped too.
        clamped.extend(
            configured_directives
                .iter()
                .filter(|(module, _)| module.starts_with(&format!("{target}::")))
                .map(|(module, level)| format!("{module}={}", (*level).min(cap))),
        );
        Some(clamped)
    });
    let directives = std::iter::once(base)
        .chain(caps.flatten())
        .collect::<Vec<_>>()
        .join(",");
    directives.parse().unwrap_or_default()
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
    use tracing::Level;

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
            let targets = filter(rust_log, level);
            assert!(targets.would_enable("sf_invoke_api", &Level::TRACE));
            let orchestrator = "aws_smithy_runtime::client::orchestrator";
            assert!(!targets.would_enable(orchestrator, &Level::TRACE));
            assert!(targets.would_enable(orchestrator, &Level::DEBUG));
            assert!(!targets.would_enable("lambda_runtime::layers", &Level::TRACE));
            assert!(!targets.would_enable("hyper::proto", &Level::DEBUG));
        }
    }

    #[test]
    fn a_cap_never_raises_a_level() {
        let orchestrator = "aws_smithy_runtime::client::orchestrator";
        let warn = filter(None, Some("WARNING"));
        assert!(!warn.would_enable(orchestrator, &Level::DEBUG));
        assert!(!warn.would_enable(orchestrator, &Level::INFO));
        assert!(warn.would_enable(orchestrator, &Level::WARN));
        let info = filter(None, None);
        assert!(!info.would_enable("lambda_runtime", &Level::DEBUG));
        assert!(info.would_enable("lambda_runtime", &Level::INFO));
        let off = filter(Some("off"), None);
        assert!(!off.would_enable("aws_smithy_runtime", &Level::ERROR));
        // The configuration's own level for a capped target counts too.
        // A directive for a module inside a capped crate is capped as well.
        let inner = filter(
            Some("info,aws_smithy_runtime::client::orchestrator=trace"),
            None,
        );
        assert!(!inner.would_enable(orchestrator, &Level::TRACE));
        assert!(inner.would_enable(orchestrator, &Level::DEBUG));
        let quiet_sdk = filter(Some("debug,aws_smithy_runtime=error"), None);
        assert!(!quiet_sdk.would_enable(orchestrator, &Level::WARN));
        assert!(quiet_sdk.would_enable("sf_common", &Level::DEBUG));
    }

    #[test]
    fn rust_log_directives_are_honoured_and_garbage_falls_back() {
        let targets = filter(Some("warn,sf_invoke_api=debug"), None);
        assert!(targets.would_enable("sf_invoke_api", &Level::DEBUG));
        assert!(!targets.would_enable("sf_common", &Level::INFO));
        let fallback = filter(Some("=?=garbage"), Some("ERROR"));
        assert!(!fallback.would_enable("sf_common", &Level::WARN));
        assert!(fallback.would_enable("sf_common", &Level::ERROR));
    }
}
