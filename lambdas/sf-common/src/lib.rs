//! What every sfstack Lambda shares: settings from the environment (the original
//! `sfInvokeAPI` variables and ours), the Salesforce credentials and session secrets in
//! Secrets Manager, and JSON logging.
//!
//! # The session secret
//!
//! `sf-token-refresh` keeps a fresh Salesforce session in its own secret (encrypted with the
//! stack's KMS key) so no other function logs in on the hot path. Its value is one JSON object:
//!
//! ```json
//! {"access_token": "00D…!AQ…", "instance_url": "https://example.my.salesforce.com",
//!  "issued_at": 1700000000000, "id": "https://login.salesforce.com/id/00D…/005…",
//!  "scope": "api", "refreshed_at": 1700000000123}
//! ```
//!
//! `issued_at` is Salesforce's (milliseconds), `refreshed_at` is when the function stored it.
//! Before the first refresh the secret holds `{}`, which readers treat as "no session yet".

mod logging;
pub mod privacy;
mod secrets;
mod settings;

pub use logging::init_logging;
pub use secrets::{Secrets, StoredSession};
pub use settings::{Env, Settings, SettingsError};

/// The AWS configuration a function runs with, from the variables Lambda gives every
/// function: `AWS_REGION`, and the execution role's session in `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` (Lambda Developer Guide, "Defined runtime
/// environment variables"); `AWS_ENDPOINT_URL` where it is set (the local target). The HTTP
/// client is reqwest, the one Salesforce calls go through ([`aws_reqwest`]), so a function carries one
/// HTTP stack and one crypto provider (rustls on ring).
///
/// Built by hand rather than with `aws-config`'s default chain: a function needs none of its
/// profile files, SSO, IMDS or STS providers, and leaving them out keeps them out of the zip
/// and out of the cold start. Missing credentials are not an error here: the first AWS call
/// fails, naming the operation, and the invocation reports it.
pub fn aws_config() -> aws_types::SdkConfig {
    aws_config_from(|name| std::env::var(name).ok().filter(|value| !value.is_empty()))
}

/// [`aws_config`] from `variable` (the environment, or a test's map of variables).
pub fn aws_config_from(variable: impl Fn(&str) -> Option<String>) -> aws_types::SdkConfig {
    use aws_types::region::Region;
    use aws_types::sdk_config::{RetryConfig, SharedCredentialsProvider, TimeoutConfig};
    let mut config = aws_types::SdkConfig::builder()
        .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
        .http_client(aws_reqwest::http_client())
        .retry_config(RetryConfig::standard())
        // The SDK's shared configuration's default connect timeout.
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(std::time::Duration::from_millis(3100))
                .build(),
        );
    if let Some(region) = variable("AWS_REGION").or_else(|| variable("AWS_DEFAULT_REGION")) {
        config = config.region(Region::new(region));
    }
    if let (Some(key), Some(secret)) = (
        variable("AWS_ACCESS_KEY_ID"),
        variable("AWS_SECRET_ACCESS_KEY"),
    ) {
        let credentials = aws_credential_types::Credentials::new(
            key,
            secret,
            variable("AWS_SESSION_TOKEN"),
            None,
            "Environment",
        );
        config = config.credentials_provider(SharedCredentialsProvider::new(credentials));
    }
    if let Some(endpoint) = variable("AWS_ENDPOINT_URL") {
        config = config.endpoint_url(endpoint);
    }
    config.build()
}

/// The endpoint of one service's client: `AWS_ENDPOINT_URL_<SERVICE>` (for example
/// `AWS_ENDPOINT_URL_LAMBDA`), which the SDK's shared configuration puts before
/// `AWS_ENDPOINT_URL`; `None` leaves the client on [`aws_config`]'s.
pub fn service_endpoint(service: &str) -> Option<String> {
    std::env::var(format!("AWS_ENDPOINT_URL_{}", service.to_ascii_uppercase()))
        .ok()
        .filter(|value| !value.is_empty())
}

/// An error with its whole source chain: the AWS SDK's own message is terse ("service
/// error"), the sources say what happened.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        source = inner.source();
    }
    message
}

/// Errors of the shared plumbing. Messages name the variable, secret or operation involved and
/// never contain a secret value.
#[derive(Debug, thiserror::Error)]
pub enum CommonError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("{operation} on {resource} failed: {message}")]
    Aws {
        operation: &'static str,
        resource: String,
        message: String,
    },
    #[error("secret {resource} is not usable: {detail}")]
    SecretFormat { resource: String, detail: String },
    #[error("salesforce credentials in {resource}: {source}")]
    Credentials {
        resource: String,
        source: salesforce::Error,
    },
}

#[cfg(test)]
mod aws_config_tests {
    use super::*;

    #[test]
    fn the_configuration_comes_from_lambdas_variables() {
        let variables = std::collections::HashMap::from([
            ("AWS_REGION", "eu-west-2"),
            ("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "not-a-real-secret"),
            ("AWS_SESSION_TOKEN", "session"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
        ]);
        let config = aws_config_from(|name| variables.get(name).map(|value| (*value).to_string()));
        assert_eq!(
            config.region().map(|region| region.as_ref()),
            Some("eu-west-2")
        );
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:4566"));
        assert!(config.credentials_provider().is_some());
        assert!(config.http_client().is_some());

        let bare = aws_config_from(|_| None);
        assert!(bare.region().is_none());
        assert!(bare.credentials_provider().is_none());
        assert!(bare.endpoint_url().is_none());
    }
}
