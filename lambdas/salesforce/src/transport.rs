//! The HTTP transport under both the token endpoint (`auth`) and the REST executor (`client`):
//! the configuration (API version, timeouts, retry budget), building the HTTP client, turning
//! transport failures into [`Error`]s, and the retry loop with backoff.
//!
//! It knows nothing about sessions, credentials or REST paths, so dependencies point one way:
//! `transport` <- `auth` <- `client` <- `ops`.

use std::future::Future;
use std::time::Duration;

use crate::error::{Error, Result};

/// The API version used when none is configured.
pub const DEFAULT_API_VERSION: &str = "62.0";

/// The longest pause between two retries, whatever the base delay and attempt.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(10);

/// How a [`Client`](crate::Client) talks HTTP.
///
/// A call can take up to `(max_retries + 1) * request_timeout` plus the backoff pauses, and a
/// call rejected with `INVALID_SESSION_ID` runs a login and the call once more on top. Keep
/// that below the function's timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// `"62.0"`; a leading `v` is accepted and dropped.
    pub api_version: String,
    pub connect_timeout: Duration,
    /// The whole request, from connecting to the last byte of the body.
    pub request_timeout: Duration,
    /// Extra attempts after a retryable failure (see the crate documentation for which calls).
    pub max_retries: u32,
    /// The first backoff pause; each retry doubles it, with jitter.
    pub retry_base_delay: Duration,
    /// `Sforce-Query-Options: batchSize=N` on queries (Salesforce allows 200 to 2000).
    pub query_batch_size: Option<u32>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            api_version: DEFAULT_API_VERSION.to_owned(),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            max_retries: 2,
            retry_base_delay: Duration::from_millis(100),
            query_batch_size: None,
        }
    }
}

impl ClientConfig {
    pub(crate) fn validated(mut self) -> Result<Self> {
        let version = self.api_version.trim();
        let version = version.strip_prefix('v').unwrap_or(version);
        let well_formed = version.split_once('.').is_some_and(|(major, minor)| {
            !major.is_empty()
                && !minor.is_empty()
                && major.bytes().all(|byte| byte.is_ascii_digit())
                && minor.bytes().all(|byte| byte.is_ascii_digit())
        });
        if !well_formed {
            return Err(Error::InvalidInput(format!(
                "API version {:?} is not of the form 62.0",
                self.api_version
            )));
        }
        self.api_version = version.to_owned();
        if let Some(size) = self.query_batch_size
            && !(200..=2000).contains(&size)
        {
            return Err(Error::InvalidInput(format!(
                "query batch size {size} is outside Salesforce's 200..=2000"
            )));
        }
        Ok(self)
    }
}

/// Whether a request may be sent again after a timeout or a 5xx answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Reads, deletes and the token endpoint.
    Idempotent,
    /// Creates, updates and Chatter posts: a repeat could act twice. They are repeated only
    /// when the connection failed before anything was sent.
    OnlyIfNotSent,
}

/// A failed attempt, and whether the request never left this machine (so even a
/// non-idempotent request may be sent again).
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) error: Error,
    pub(crate) not_sent: bool,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Self {
            error,
            not_sent: false,
        }
    }
}

pub(crate) fn transport_failure(error: reqwest::Error) -> Failure {
    let not_sent = error.is_connect();
    let error = if error.is_timeout() {
        Error::Timeout
    } else {
        Error::Transport(describe_transport_error(error))
    };
    Failure { error, not_sent }
}

/// The error and its causes, without the URL (which can carry a query with customer data).
fn describe_transport_error(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// Runs `attempt` until it succeeds, fails in a way that must not be retried, or runs out of
/// retries, pausing with exponential backoff and jitter in between.
pub(crate) async fn with_retries<T, F, Fut>(
    config: &ClientConfig,
    retry: Retry,
    mut attempt: F,
) -> Result<T>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let mut attempt_number = 0;
    loop {
        let failure = match attempt(attempt_number).await {
            Ok(value) => return Ok(value),
            Err(failure) => failure,
        };
        let may_retry =
            failure.not_sent || (retry == Retry::Idempotent && failure.error.is_retryable());
        if !may_retry || attempt_number >= config.max_retries {
            return Err(failure.error);
        }
        let delay = backoff_delay(config.retry_base_delay, attempt_number);
        tracing::debug!(error = %failure.error, attempt = attempt_number, ?delay, "retrying salesforce call");
        tokio::time::sleep(delay).await;
        attempt_number += 1;
    }
}

/// `base * 2^attempt`, capped, then a random point in its upper half ("equal jitter"), so
/// functions that failed together do not retry together.
fn backoff_delay(base: Duration, attempt: u32) -> Duration {
    let exponential = base
        .saturating_mul(2u32.saturating_pow(attempt))
        .min(MAX_RETRY_DELAY);
    let half = exponential / 2;
    let jitter_range = u64::try_from(half.as_micros()).unwrap_or(u64::MAX);
    half + Duration::from_micros(rand::random_range(0..=jitter_range))
}

/// Whether `url` may carry credentials or tokens: `https`, or plain `http` to a loopback host
/// (the local cloud's Salesforce emulator on 127.0.0.1, never reachable from elsewhere).
pub fn is_secure_url(url: &url::Url) -> bool {
    match (url.scheme(), url.host()) {
        ("https", Some(_)) => true,
        ("http", Some(url::Host::Ipv4(ip))) => ip.is_loopback(),
        ("http", Some(url::Host::Ipv6(ip))) => ip.is_loopback(),
        ("http", Some(url::Host::Domain(name))) => name.eq_ignore_ascii_case("localhost"),
        _ => false,
    }
}

/// `text` as a URL that may carry credentials (see [`is_secure_url`]); `what` names it in the
/// message.
pub fn secure_url(text: &str, what: &str) -> std::result::Result<url::Url, String> {
    let url = url::Url::parse(text.trim()).map_err(|_| format!("{what} {text:?} is not a URL"))?;
    if is_secure_url(&url) {
        Ok(url)
    } else {
        Err(format!(
            "{what} {text:?} is not https: credentials and tokens only travel over TLS (plain http is accepted for 127.0.0.1 only, the local cloud)"
        ))
    }
}

/// The HTTP client of every Salesforce call. Every request carries a credential (a token form
/// or a bearer token), so no redirect is ever followed: a redirect would repeat it to a host
/// the configuration never named.
pub(crate) fn build_http_client(config: &ClientConfig) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(config.connect_timeout)
        .timeout(config.request_timeout)
        .user_agent(concat!("sfstack-salesforce/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| Error::Transport(describe_transport_error(error)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_travel_over_tls_or_to_loopback_only() {
        for secure in [
            "https://login.salesforce.com",
            "https://acme.my.salesforce.com/services/oauth2/token",
            "http://127.0.0.1:8080",
            "http://[::1]:8080",
            "http://localhost:9000",
        ] {
            assert!(secure_url(secure, "LoginUrl").is_ok(), "{secure}");
        }
        for insecure in [
            "http://login.salesforce.com",
            "http://10.0.0.5",
            "ftp://login.salesforce.com",
            "https://",
            "not a url",
        ] {
            let refused = secure_url(insecure, "LoginUrl").expect_err(insecure);
            assert!(refused.contains("LoginUrl"), "{refused}");
        }
    }

    #[test]
    fn api_versions_are_validated_and_stored_without_v() {
        let cases = [
            ("62.0", Ok("62.0")),
            ("v59.0", Ok("59.0")),
            ("62", Err(())),
            ("62.x", Err(())),
            ("vv62.0", Err(())),
            ("", Err(())),
        ];
        for (version, expected) in cases {
            let config = ClientConfig {
                api_version: version.into(),
                ..ClientConfig::default()
            };
            let validated = config
                .validated()
                .map(|config| config.api_version)
                .map_err(|_| ());
            assert_eq!(
                validated,
                expected.map(str::to_owned),
                "version {version:?}"
            );
        }
    }

    #[test]
    fn backoff_grows_exponentially_with_bounded_jitter() {
        let base = Duration::from_millis(100);
        for (attempt, full_millis) in [(0, 100), (1, 200), (2, 400), (10, 10_000)] {
            let delay = backoff_delay(base, attempt);
            let full = Duration::from_millis(full_millis);
            assert!(
                delay >= full / 2 && delay <= full,
                "attempt {attempt}: {delay:?}"
            );
        }
    }
}
