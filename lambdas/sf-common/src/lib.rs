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

/// The standard AWS configuration (region, credentials, `AWS_ENDPOINT_URL`, as
/// `aws_config::load_from_env` reads them) with an HTTP client on rustls and ring, the crypto
/// provider reqwest uses for Salesforce: a function carries one crypto stack, not the SDK's
/// aws-lc-rs beside it.
pub async fn aws_config() -> aws_config::SdkConfig {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .load()
        .await
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
