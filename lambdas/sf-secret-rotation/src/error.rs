//! Why a step failed, and the `errorType` Lambda reports for it.

use lambda_runtime::Diagnostic;
use sf_common::SettingsError;

/// Why a step failed. [`Error::error_type`] is the stable `errorType` Lambda reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("configuration error: {0}")]
    Configuration(String),
    #[error("invalid rotation event: {0}")]
    InvalidEvent(String),
    #[error(
        "secret {secret_id} does not have rotation enabled; hint: enable rotation with this function before invoking it"
    )]
    RotationNotEnabled { secret_id: String },
    #[error("ClientRequestToken {token} is not a version of secret {secret_id}")]
    UnknownVersion { secret_id: String, token: String },
    #[error(
        "version {token} of secret {secret_id} is not staged AWSPENDING, so it is not being rotated"
    )]
    NotPending { secret_id: String, token: String },
    #[error("{operation} on {secret_id} failed: {message}")]
    SecretsManager {
        operation: &'static str,
        secret_id: String,
        message: String,
    },
    #[error("the {stage} value of secret {secret_id} is not usable: {detail}")]
    InvalidSecret {
        secret_id: String,
        stage: &'static str,
        detail: String,
    },
    #[error(
        "the token endpoint refused the refresh_token grant: {reason}; AWSCURRENT is unchanged; hint: {hint}"
    )]
    TokenRequestFailed { reason: String, hint: String },
    #[error("the new access token in AWSPENDING was rejected: {reason}; AWSCURRENT is unchanged")]
    TestFailed { reason: String },
}

impl Error {
    /// The `errorType` Lambda reports for this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            Error::Configuration(_) => "ConfigurationError",
            Error::InvalidEvent(_) => "InvalidEvent",
            Error::RotationNotEnabled { .. } => "RotationNotEnabled",
            Error::UnknownVersion { .. } => "UnknownVersion",
            Error::NotPending { .. } => "NotPending",
            Error::SecretsManager { .. } => "SecretsManagerError",
            Error::InvalidSecret { .. } => "InvalidSecret",
            Error::TokenRequestFailed { .. } => "TokenRequestFailed",
            Error::TestFailed { .. } => "TestFailed",
        }
    }
}

impl From<Error> for Diagnostic {
    fn from(error: Error) -> Self {
        Diagnostic {
            error_type: error.error_type().to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// A malformed environment variable: the message names it, as for every sfstack function.
impl From<SettingsError> for Error {
    fn from(error: SettingsError) -> Self {
        Error::Configuration(error.to_string())
    }
}

pub(crate) fn invalid_secret(secret_id: &str, stage: &'static str, detail: String) -> Error {
    Error::InvalidSecret {
        secret_id: secret_id.to_owned(),
        stage,
        detail,
    }
}

pub(crate) fn aws_error(
    operation: &'static str,
    secret_id: &str,
    error: &dyn std::error::Error,
) -> Error {
    Error::SecretsManager {
        operation,
        secret_id: secret_id.to_owned(),
        message: sf_common::error_chain(error),
    }
}

/// Describes a transport failure without the URL's query (none here) or any body.
pub(crate) fn describe_transport(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "the request timed out".to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        "the connection failed".to_owned()
    }
}
