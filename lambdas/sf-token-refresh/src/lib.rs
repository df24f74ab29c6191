//! The token-refresh function: on an EventBridge schedule it logs in to Salesforce with the
//! credentials secret and stores the new session in the session secret, so the other functions
//! never log in on their hot path.
//!
//! # Behaviour
//!
//! 1. Reads the credentials secret (`SF_CREDENTIALS_SECRET_ARN`). The flow comes from the
//!    document: JWT bearer by default, else refresh token, else password (see the `salesforce`
//!    crate's documentation for the keys).
//! 2. Obtains a **new** session from the token endpoint, whatever is stored.
//! 3. With the refresh-token flow against an org that rotates refresh tokens, Salesforce retires
//!    the refresh token it was given and returns a new one: the new one is written back to the
//!    credentials secret (other keys preserved), or the next run would fail. This needs
//!    `secretsmanager:PutSecretValue` on the credentials secret.
//! 4. Stores the session in the session secret (`SF_SESSION_SECRET_ARN`) with
//!    [`sf_common::Secrets::store_session`], in the layout documented by `sf-common`. A refresh
//!    token is never copied into the session secret: every function reads that one.
//!
//! A failed login writes nothing, so the previous session stays in place until it expires, and
//! the invocation fails with `errorType` `RefreshFailed` naming Salesforce's error and a hint.
//! Logs carry the instance URL and the timestamps, never a token.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{Diagnostic, LambdaEvent};
use salesforce::{AuthFlow, Client, Session};
use serde::{Deserialize, Serialize};
use sf_common::{CommonError, Secrets, Settings, SettingsError};

/// What an invocation returns: where the session points and when it was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshSummary {
    pub instance_url: String,
    /// Salesforce's `issued_at`, in milliseconds since the epoch (absent from some JWT answers).
    pub issued_at: Option<i64>,
    /// When this function stored the session, in milliseconds since the epoch.
    pub refreshed_at: i64,
}

/// Why an invocation failed. [`Error::error_type`] is the stable `errorType` Lambda reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A required environment variable is missing or malformed.
    #[error("configuration error: {0}")]
    Configuration(String),
    /// The credentials secret could not be read.
    #[error("could not read the salesforce credentials: {0}")]
    CredentialsUnavailable(String),
    /// The credentials document is incomplete or inconsistent.
    #[error("{0}; hint: fix the credentials secret's JSON document")]
    InvalidCredentials(String),
    /// Salesforce did not hand out a session. Nothing was written.
    #[error(
        "token refresh with the {flow} flow failed: {reason}; the previous session is left in place; hint: {hint}"
    )]
    RefreshFailed {
        flow: String,
        reason: String,
        hint: String,
    },
    /// The new session (or the rotated refresh token) could not be stored.
    #[error("could not store the new session: {0}")]
    StoreFailed(String),
}

impl Error {
    /// The `errorType` Lambda reports for this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            Error::Configuration(_) => "ConfigurationError",
            Error::CredentialsUnavailable(_) => "CredentialsUnavailable",
            Error::InvalidCredentials(_) => "InvalidCredentials",
            Error::RefreshFailed { .. } => "RefreshFailed",
            Error::StoreFailed(_) => "StoreFailed",
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

impl From<SettingsError> for Error {
    fn from(error: SettingsError) -> Self {
        Error::Configuration(error.to_string())
    }
}

fn credentials_error(error: CommonError) -> Error {
    match error {
        CommonError::Credentials { .. } | CommonError::SecretFormat { .. } => {
            Error::InvalidCredentials(error.to_string())
        }
        other => Error::CredentialsUnavailable(other.to_string()),
    }
}

/// The function's state: built once per execution environment.
#[derive(Debug, Clone)]
pub struct TokenRefresher {
    settings: Settings,
    session_secret_arn: String,
    secrets: Secrets,
}

impl TokenRefresher {
    /// Checks the settings this function needs (`SF_SESSION_SECRET_ARN` is required here).
    pub fn new(settings: Settings, secrets: Secrets) -> Result<Self, Error> {
        let session_secret_arn = settings.session_secret_arn.clone().ok_or_else(|| {
            Error::Configuration(
                "environment variable SF_SESSION_SECRET_ARN: not set; it names the secret this \
                 function stores the salesforce session in"
                    .into(),
            )
        })?;
        // A malformed API version or timeout is a configuration error, found before any call.
        Client::with_session(
            Session {
                access_token: "configuration-check".into(),
                instance_url: "https://configuration.invalid".into(),
                issued_at: None,
                id: None,
                refresh_token: None,
                scope: None,
            },
            None,
            settings.client_config(),
        )
        .map_err(|error| Error::Configuration(error.to_string()))?;
        Ok(Self {
            settings,
            session_secret_arn,
            secrets,
        })
    }

    /// Reads the settings from the environment.
    pub fn from_env(secrets: Secrets) -> Result<Self, Error> {
        Self::new(Settings::from_env()?, secrets)
    }

    /// The Lambda handler. The payload is normally an EventBridge scheduled event; any other
    /// JSON (e.g. `{}` from a manual invoke) triggers a refresh too.
    pub async fn handle(
        &self,
        event: LambdaEvent<serde_json::Value>,
    ) -> Result<RefreshSummary, Error> {
        match serde_json::from_value::<EventBridgeEvent>(event.payload) {
            Ok(trigger) => tracing::info!(
                source = %trigger.source,
                detail_type = %trigger.detail_type,
                event_id = trigger.id.as_deref().unwrap_or_default(),
                "token refresh triggered"
            ),
            Err(_) => tracing::info!("token refresh invoked directly"),
        }
        self.refresh().await
    }

    /// Logs in and stores the new session. Writes nothing when the login fails.
    pub async fn refresh(&self) -> Result<RefreshSummary, Error> {
        let credentials = self
            .secrets
            .load_credentials(&self.settings)
            .await
            .map_err(credentials_error)?;
        let flow = credentials.flow();
        let client = Client::new(credentials, self.settings.client_config())
            .map_err(|error| Error::Configuration(error.to_string()))?;
        let mut session = client.login().await.map_err(|error| {
            tracing::error!(%flow, error = %error, "salesforce token refresh failed");
            refresh_failed(flow, &error)
        })?;

        // The session secret is read by every function: it never holds a refresh token.
        let rotated_refresh_token = session.refresh_token.take();
        // Both writes are attempted even if the first fails: a lost rotated refresh token breaks
        // the next run, a lost session breaks the other functions once the old one expires.
        let saved_refresh_token = match &rotated_refresh_token {
            Some(new_refresh_token) if flow == AuthFlow::RefreshToken => {
                self.save_rotated_refresh_token(new_refresh_token.expose())
                    .await
            }
            _ => Ok(()),
        };
        let refreshed_at = now_millis();
        let stored_session = self
            .secrets
            .store_session(&self.session_secret_arn, &session)
            .await
            .map_err(|error| Error::StoreFailed(error.to_string()));
        saved_refresh_token?;
        stored_session?;
        let summary = RefreshSummary {
            instance_url: session.instance_url.clone(),
            issued_at: session.issued_at,
            refreshed_at,
        };
        tracing::info!(
            %flow,
            instance_url = %summary.instance_url,
            issued_at = summary.issued_at,
            refreshed_at = summary.refreshed_at,
            session_secret = %self.session_secret_arn,
            "salesforce session refreshed and stored"
        );
        Ok(summary)
    }

    /// Writes a rotated refresh token back into the credentials document, keeping every other
    /// key. Skipped when the document already holds it (an org without rotation echoes none).
    async fn save_rotated_refresh_token(&self, new_refresh_token: &str) -> Result<(), Error> {
        let arn = &self.settings.credentials_secret_arn;
        let document = self
            .secrets
            .get_string(arn, None, None)
            .await
            .map_err(|error| Error::StoreFailed(error.to_string()))?;
        let mut value: serde_json::Value = serde_json::from_str(&document).map_err(|_| {
            Error::InvalidCredentials(format!("the credentials secret {arn} is not JSON"))
        })?;
        let Some(map) = value.as_object_mut() else {
            return Err(Error::InvalidCredentials(format!(
                "the credentials secret {arn} is not a JSON object"
            )));
        };
        if map.get("RefreshToken").and_then(serde_json::Value::as_str) == Some(new_refresh_token) {
            return Ok(());
        }
        map.insert("RefreshToken".into(), new_refresh_token.into());
        self.secrets
            .client()
            .put_secret_value()
            .secret_id(arn)
            .secret_string(value.to_string())
            .send()
            .await
            .map_err(|error| {
                Error::StoreFailed(format!(
                    "salesforce rotated the refresh token but PutSecretValue on {arn} failed: {}; \
                     hint: re-authorize through the OAuth callback",
                    sf_common::error_chain(&error)
                ))
            })?;
        tracing::info!(credentials_secret = %arn, "stored the rotated refresh token");
        Ok(())
    }
}

fn refresh_failed(flow: AuthFlow, error: &salesforce::Error) -> Error {
    let reason = match error {
        salesforce::Error::Auth {
            status,
            error,
            description,
        } => format!("salesforce answered {status} {error}: {description}"),
        other => other.to_string(),
    };
    Error::RefreshFailed {
        flow: flow.to_string(),
        reason,
        hint: hint_for(flow, error).to_owned(),
    }
}

/// What to check, by Salesforce's error code and the flow in use.
fn hint_for(flow: AuthFlow, error: &salesforce::Error) -> &'static str {
    if error.is_retryable() {
        return "salesforce did not answer in time or failed; the next scheduled run tries again";
    }
    match (error.error_code(), flow) {
        (Some("invalid_client_id" | "invalid_client"), _) => {
            "check ConsumerKey and ConsumerSecret in the credentials secret against the connected app"
        }
        (Some("invalid_grant"), AuthFlow::JwtBearer) => {
            "check Username and PrivateKey in the credentials secret, that the connected app holds \
             the matching certificate and that the user is pre-authorized for it"
        }
        (Some("invalid_grant"), AuthFlow::RefreshToken) => {
            "the refresh token was revoked or expired; authorize again through the OAuth callback and \
             store the new RefreshToken in the credentials secret"
        }
        (Some("invalid_grant"), AuthFlow::Password) => {
            "check Username, Password and the security token (AccessToken) in the credentials secret, \
             and that the connected app allows the username-password flow"
        }
        (Some("unsupported_grant_type"), _) => {
            "the connected app does not allow this flow; set AuthFlow in the credentials secret"
        }
        _ => "check the credentials secret and the connected app",
    }
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_stable_error_types() {
        let cases = [
            (Error::Configuration("x".into()), "ConfigurationError"),
            (
                Error::CredentialsUnavailable("x".into()),
                "CredentialsUnavailable",
            ),
            (Error::InvalidCredentials("x".into()), "InvalidCredentials"),
            (
                Error::RefreshFailed {
                    flow: "jwt".into(),
                    reason: "r".into(),
                    hint: "h".into(),
                },
                "RefreshFailed",
            ),
            (Error::StoreFailed("x".into()), "StoreFailed"),
        ];
        for (error, error_type) in cases {
            let diagnostic = Diagnostic::from(error.clone());
            assert_eq!(diagnostic.error_type, error_type);
            assert_eq!(diagnostic.error_message, error.to_string());
        }
    }

    #[test]
    fn refresh_failures_name_the_salesforce_error_and_a_hint() {
        let auth = |error: &str, description: &str| salesforce::Error::Auth {
            status: 400,
            error: error.into(),
            description: description.into(),
        };
        let cases = [
            (
                AuthFlow::JwtBearer,
                auth("invalid_grant", "authentication failure"),
                "invalid_grant: authentication failure",
                "PrivateKey",
            ),
            (
                AuthFlow::RefreshToken,
                auth("invalid_grant", "expired access/refresh token"),
                "invalid_grant: expired access/refresh token",
                "authorize again",
            ),
            (
                AuthFlow::Password,
                auth("invalid_client_id", "client identifier invalid"),
                "invalid_client_id: client identifier invalid",
                "ConsumerKey",
            ),
            (
                AuthFlow::JwtBearer,
                salesforce::Error::Timeout,
                "timed out",
                "next scheduled run",
            ),
        ];
        for (flow, error, reason, hint) in cases {
            let message = refresh_failed(flow, &error).to_string();
            assert!(message.contains(reason), "{message}");
            assert!(message.contains(hint), "{message}");
            assert!(
                message.contains("previous session is left in place"),
                "{message}"
            );
        }
    }
}
