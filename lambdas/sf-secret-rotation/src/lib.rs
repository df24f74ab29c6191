//! The Secrets Manager rotation function for OAuth 2.0 refresh-token credentials: it obtains a
//! fresh token set with the `refresh_token` grant and promotes it through the four rotation
//! steps, following the AWS rotation contract.
//!
//! # The secret
//!
//! One JSON object whose values are strings. Read:
//!
//! | key | aliases | meaning |
//! |---|---|---|
//! | `TokenUrl` | | the token endpoint; absent: `LoginUrl` + `/services/oauth2/token` |
//! | `LoginUrl` | | the Salesforce login host; absent: `SF_LOGIN_URL`, else `https://login.salesforce.com` |
//! | `ClientId` | `ConsumerKey` | the OAuth client id (required) |
//! | `ClientSecret` | `ConsumerSecret` | the OAuth client secret (optional for the refresh grant) |
//! | `RefreshToken` | | the refresh token (required) |
//! | `TestUrl` | | optional: `testSecret` GETs it with the new access token instead of Salesforce's limits |
//!
//! Written by `createSecret` into the `AWSPENDING` version, on top of a copy of every key of
//! `AWSCURRENT` (unknown keys are preserved):
//!
//! | key | meaning |
//! |---|---|
//! | `RefreshToken` | the refresh token the provider returned, or the old one when it returned none |
//! | `SessionAccessToken` | the access token just issued |
//! | `InstanceUrl` | Salesforce's `instance_url`, when the provider returned one |
//! | `IssuedAt` | when the access token was issued, milliseconds since the epoch, as a string |
//!
//! The access token is deliberately **not** stored under `AccessToken`: in the original Amazon
//! Connect Salesforce package's schema, which the `salesforce` crate reads, `AccessToken` is the
//! user's *security token* for the password flow, and overwriting it would break that flow.
//!
//! # Steps
//!
//! Every step first calls `DescribeSecret` and refuses to act unless rotation is enabled and the
//! `ClientRequestToken` is a version of the secret staged `AWSPENDING`; a token that is already
//! `AWSCURRENT` means the rotation is over, and the step succeeds without doing anything.
//!
//! - `createSecret`: if an `AWSPENDING` value already exists for the token, nothing to do
//!   (Secrets Manager retries steps). Otherwise reads `AWSCURRENT`, runs the refresh grant and
//!   puts the result as `AWSPENDING` with the token as version id.
//! - `setSecret`: nothing. OAuth tokens are issued by the provider, so there is no service to
//!   push the new value to (unlike a database password).
//! - `testSecret`: calls the API with the `AWSPENDING` access token (`GET …/limits` on
//!   `InstanceUrl`, or `TestUrl`) and fails if it is rejected.
//!   Secrets Manager's check of a new rotation configuration (`RotateImmediately=false`)
//!   calls `testSecret` on an `AWSPENDING` version it staged itself, empty or a copy of
//!   `AWSCURRENT`: that passes as `ConfigurationChecked` (the function could read the secret)
//!   without asking the provider for anything.
//! - `finishSecret`: moves `AWSCURRENT` to the token's version (`RemoveFromVersionId` = the
//!   current version) and then takes `AWSPENDING` off it, so the secret ends in a state where
//!   the next `RotateSecret` can start.
//!
//! `AWSCURRENT` changes only in `finishSecret`, after a successful test, so a failure half-way
//! leaves the old value in place. One caveat is inherent to refresh-token rotation: when the
//! provider rotates refresh tokens, `createSecret` retires the old refresh token as it obtains
//! the new one. If the rotation then fails, the working refresh token is in `AWSPENDING`; a retry
//! with the same `ClientRequestToken` reuses it (createSecret is a no-op then), and the old
//! `AWSCURRENT` keeps serving whatever does not need its refresh token.

use std::time::Duration;

use aws_lambda_events::event::secretsmanager::SecretsManagerSecretRotationEvent;
use aws_sdk_secretsmanager::Client as SecretsManagerClient;
use lambda_runtime::{Diagnostic, LambdaEvent};
use salesforce::{Client, ClientConfig, Secret, Session};
use serde_json::{Map, Value};

const AWSCURRENT: &str = "AWSCURRENT";
const AWSPENDING: &str = "AWSPENDING";
const NO_STRING_VALUE: &str = "it has no string value";
const SALESFORCE_TOKEN_PATH: &str = "/services/oauth2/token";

/// The four steps of a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    CreateSecret,
    SetSecret,
    TestSecret,
    FinishSecret,
}

impl Step {
    pub fn parse(step: &str) -> Result<Self, Error> {
        match step {
            "createSecret" => Ok(Step::CreateSecret),
            "setSecret" => Ok(Step::SetSecret),
            "testSecret" => Ok(Step::TestSecret),
            "finishSecret" => Ok(Step::FinishSecret),
            other => Err(Error::InvalidEvent(format!(
                "unknown rotation step {other:?}; expected createSecret, setSecret, testSecret or finishSecret"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Step::CreateSecret => "createSecret",
            Step::SetSecret => "setSecret",
            Step::TestSecret => "testSecret",
            Step::FinishSecret => "finishSecret",
        }
    }
}

/// What a step did (returned to the caller and logged; Secrets Manager only looks at success).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The version is already `AWSCURRENT`: the rotation is over.
    AlreadyCurrent,
    /// `createSecret` found an `AWSPENDING` value for the token.
    PendingAlreadyExists,
    /// `createSecret` stored a new `AWSPENDING` value.
    PendingCreated,
    /// `setSecret`: nothing to push.
    NothingToSet,
    /// `testSecret`: the new access token works.
    Tested,
    /// `testSecret` during Secrets Manager's check of a new rotation configuration
    /// (`RotateSecret` with `RotateImmediately=false`): the `AWSPENDING` version it staged holds
    /// no new token (empty, or a copy of `AWSCURRENT`); the function could read the secret.
    ConfigurationChecked,
    /// `finishSecret` moved `AWSCURRENT` to the token's version.
    Promoted,
}

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

/// Settings from the environment. All optional: the secret names everything else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationConfig {
    /// `SF_LOGIN_URL`: the login host when the secret has neither `TokenUrl` nor `LoginUrl`.
    pub login_url: String,
    /// `SF_API_VERSION` (`62.0`; a leading `v` is accepted).
    pub api_version: String,
    /// `SF_CONNECT_TIMEOUT_MS` (default 2000) and `SF_REQUEST_TIMEOUT_MS` (default 5000).
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
}

impl RotationConfig {
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let get = |name: &str| {
            lookup(name)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        let login_url = match get("SF_LOGIN_URL") {
            Some(url) => check_url(&url).ok_or_else(|| {
                Error::Configuration(format!(
                    "environment variable SF_LOGIN_URL: expected an https:// URL, got {url:?}"
                ))
            })?,
            None => salesforce::DEFAULT_LOGIN_URL.to_owned(),
        };
        let millis = |name: &str, default: u64| -> Result<Duration, Error> {
            match get(name) {
                None => Ok(Duration::from_millis(default)),
                Some(value) => value
                    .parse::<u64>()
                    .ok()
                    .filter(|millis| *millis > 0)
                    .map(Duration::from_millis)
                    .ok_or_else(|| {
                        Error::Configuration(format!(
                            "environment variable {name}: expected a positive number of milliseconds, got {value:?}"
                        ))
                    }),
            }
        };
        let config = Self {
            login_url,
            api_version: get("SF_API_VERSION")
                .unwrap_or_else(|| salesforce::DEFAULT_API_VERSION.to_owned()),
            connect_timeout: millis("SF_CONNECT_TIMEOUT_MS", 2_000)?,
            request_timeout: millis("SF_REQUEST_TIMEOUT_MS", 5_000)?,
        };
        // Validates the API version now rather than in the middle of a rotation.
        Client::with_session(placeholder_session(), None, config.client_config())
            .map_err(|error| Error::Configuration(format!("SF_API_VERSION: {error}")))?;
        Ok(config)
    }

    fn client_config(&self) -> ClientConfig {
        ClientConfig {
            api_version: self.api_version.clone(),
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
            ..ClientConfig::default()
        }
    }
}

fn placeholder_session() -> Session {
    Session {
        access_token: Secret::new("configuration-check"),
        instance_url: "https://configuration.invalid".into(),
        issued_at: None,
        id: None,
        refresh_token: None,
        scope: None,
    }
}

/// An `https` URL, or `http` on a loopback host (the local target): tokens are sent there, so
/// anything else is refused.
fn check_url(url: &str) -> Option<String> {
    let trimmed = url.trim().trim_end_matches('/');
    let parsed = url::Url::parse(trimmed).ok()?;
    let loopback = matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    let allowed = match parsed.scheme() {
        "https" => parsed.host().is_some(),
        "http" => loopback,
        _ => false,
    };
    allowed.then(|| trimmed.to_owned())
}

/// The rotation function: built once per execution environment.
#[derive(Debug, Clone)]
pub struct Rotator {
    secrets: SecretsManagerClient,
    http: reqwest::Client,
    config: RotationConfig,
}

impl Rotator {
    pub fn new(secrets: SecretsManagerClient, config: RotationConfig) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .build()
            .map_err(|error| {
                Error::Configuration(format!("could not build the HTTP client: {error}"))
            })?;
        Ok(Self {
            secrets,
            http,
            config,
        })
    }

    /// The Lambda handler.
    pub async fn handle(
        &self,
        event: LambdaEvent<SecretsManagerSecretRotationEvent>,
    ) -> Result<Outcome, Error> {
        self.rotate(&event.payload).await
    }

    /// Runs one step of the rotation described by `event`.
    pub async fn rotate(
        &self,
        event: &SecretsManagerSecretRotationEvent,
    ) -> Result<Outcome, Error> {
        let step = Step::parse(&event.step)?;
        let secret_id = event.secret_id.as_str();
        let token = event.client_request_token.as_str();
        if secret_id.is_empty() || token.is_empty() {
            return Err(Error::InvalidEvent(
                "SecretId and ClientRequestToken are required".into(),
            ));
        }
        let result = self.run_step(step, secret_id, token).await;
        match &result {
            Ok(outcome) => {
                tracing::info!(step = step.as_str(), secret_id, version = token, outcome = ?outcome, "rotation step done");
            }
            Err(error) => {
                tracing::error!(step = step.as_str(), secret_id, version = token, error = %error, "rotation step failed");
            }
        }
        result
    }

    async fn run_step(&self, step: Step, secret_id: &str, token: &str) -> Result<Outcome, Error> {
        let versions = self.check_version(secret_id, token).await?;
        if stages_of(&versions, token).contains(&AWSCURRENT) {
            if step == Step::FinishSecret && stages_of(&versions, token).contains(&AWSPENDING) {
                // A finishSecret that failed after moving AWSCURRENT is being retried.
                self.remove_pending(secret_id, token).await?;
            }
            return Ok(Outcome::AlreadyCurrent);
        }
        if !stages_of(&versions, token).contains(&AWSPENDING) {
            return Err(Error::NotPending {
                secret_id: secret_id.to_owned(),
                token: token.to_owned(),
            });
        }
        match step {
            Step::CreateSecret => self.create_secret(secret_id, token).await,
            // OAuth tokens are issued by the provider: unlike a database password there is no
            // service to push the new value to, so this step has nothing to do and is trivially
            // idempotent.
            Step::SetSecret => Ok(Outcome::NothingToSet),
            Step::TestSecret => self.test_secret(secret_id, token).await,
            Step::FinishSecret => self.finish_secret(secret_id, token, &versions).await,
        }
    }

    /// `DescribeSecret`: rotation must be enabled and the token must be a version.
    async fn check_version(
        &self,
        secret_id: &str,
        token: &str,
    ) -> Result<Vec<(String, Vec<String>)>, Error> {
        let description = self
            .secrets
            .describe_secret()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|error| aws_error("DescribeSecret", secret_id, &error))?;
        if description.rotation_enabled != Some(true) {
            return Err(Error::RotationNotEnabled {
                secret_id: secret_id.to_owned(),
            });
        }
        let versions: Vec<(String, Vec<String>)> = description
            .version_ids_to_stages
            .unwrap_or_default()
            .into_iter()
            .collect();
        if !versions.iter().any(|(version, _)| version == token) {
            return Err(Error::UnknownVersion {
                secret_id: secret_id.to_owned(),
                token: token.to_owned(),
            });
        }
        Ok(versions)
    }

    async fn create_secret(&self, secret_id: &str, token: &str) -> Result<Outcome, Error> {
        match self
            .secrets
            .get_secret_value()
            .secret_id(secret_id)
            .version_id(token)
            .version_stage(AWSPENDING)
            .send()
            .await
        {
            Ok(_) => return Ok(Outcome::PendingAlreadyExists),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|service| service.is_resource_not_found_exception()) => {}
            Err(error) => return Err(aws_error("GetSecretValue", secret_id, &error)),
        }

        let current = self.read_document(secret_id, AWSCURRENT, None).await?;
        let request = RefreshRequest::from_document(&current, &self.config.login_url)
            .map_err(|detail| invalid_secret(secret_id, AWSCURRENT, detail))?;
        let tokens = self.refresh(&request).await?;

        let mut pending = current.clone();
        pending.insert(
            "RefreshToken".into(),
            Value::String(tokens.refresh_token.map_or_else(
                || request.refresh_token.expose().to_owned(),
                |token| token.expose().to_owned(),
            )),
        );
        pending.insert(
            "SessionAccessToken".into(),
            Value::String(tokens.access_token.expose().to_owned()),
        );
        match tokens.instance_url {
            Some(instance_url) => pending.insert("InstanceUrl".into(), Value::String(instance_url)),
            None => pending.remove("InstanceUrl"),
        };
        pending.insert(
            "IssuedAt".into(),
            Value::String(tokens.issued_at.to_string()),
        );

        self.secrets
            .put_secret_value()
            .secret_id(secret_id)
            .client_request_token(token)
            .secret_string(Value::Object(pending).to_string())
            .version_stages(AWSPENDING)
            .send()
            .await
            .map_err(|error| aws_error("PutSecretValue", secret_id, &error))?;
        Ok(Outcome::PendingCreated)
    }

    async fn test_secret(&self, secret_id: &str, token: &str) -> Result<Outcome, Error> {
        let pending = match self.read_document(secret_id, AWSPENDING, Some(token)).await {
            Ok(pending) => pending,
            // An empty AWSPENDING version: only Secrets Manager's configuration check stages
            // one and calls testSecret on it (a rotation always runs createSecret first).
            Err(Error::InvalidSecret { detail, .. }) if detail == NO_STRING_VALUE => {
                return Ok(Outcome::ConfigurationChecked);
            }
            Err(Error::SecretsManager { message, .. })
                if message.contains("ResourceNotFoundException") =>
            {
                return Ok(Outcome::ConfigurationChecked);
            }
            Err(error) => return Err(error),
        };
        // A copy of AWSCURRENT carries no new token to test: the configuration check again.
        if let Ok(current) = self.read_document(secret_id, AWSCURRENT, None).await
            && current == pending
        {
            return Ok(Outcome::ConfigurationChecked);
        }
        let text = |key: &str| {
            pending
                .get(key)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|value| !value.is_empty())
        };
        let access_token = text("SessionAccessToken").ok_or_else(|| {
            invalid_secret(secret_id, AWSPENDING, "it has no SessionAccessToken".into())
        })?;
        if let Some(test_url) = text("TestUrl") {
            let response = self
                .http
                .get(test_url)
                .bearer_auth(access_token)
                .send()
                .await
                .map_err(|error| Error::TestFailed {
                    reason: format!("GET TestUrl failed: {}", describe_transport(&error)),
                })?;
            return if response.status().is_success() {
                Ok(Outcome::Tested)
            } else {
                Err(Error::TestFailed {
                    reason: format!("GET TestUrl answered {}", response.status().as_u16()),
                })
            };
        }
        let instance_url = text("InstanceUrl").ok_or_else(|| {
            invalid_secret(
                secret_id,
                AWSPENDING,
                "it has neither InstanceUrl nor TestUrl, so the new token cannot be tested".into(),
            )
        })?;
        let session = Session {
            access_token: Secret::new(access_token),
            instance_url: instance_url.to_owned(),
            issued_at: None,
            id: None,
            refresh_token: None,
            scope: None,
        };
        // No credentials: a rejected token must fail the test, not trigger a login.
        let client = Client::with_session(session, None, self.config.client_config())
            .map_err(|error| invalid_secret(secret_id, AWSPENDING, error.to_string()))?;
        client.limits().await.map_err(|error| Error::TestFailed {
            reason: error.to_string(),
        })?;
        Ok(Outcome::Tested)
    }

    async fn finish_secret(
        &self,
        secret_id: &str,
        token: &str,
        versions: &[(String, Vec<String>)],
    ) -> Result<Outcome, Error> {
        let current_version = versions
            .iter()
            .find(|(_, stages)| stages.iter().any(|stage| stage == AWSCURRENT))
            .map(|(version, _)| version.clone());
        self.secrets
            .update_secret_version_stage()
            .secret_id(secret_id)
            .version_stage(AWSCURRENT)
            .move_to_version_id(token)
            .set_remove_from_version_id(current_version)
            .send()
            .await
            .map_err(|error| aws_error("UpdateSecretVersionStage", secret_id, &error))?;
        self.remove_pending(secret_id, token).await?;
        Ok(Outcome::Promoted)
    }

    /// Takes `AWSPENDING` off the finished version. AWS accepts either end state (pending on the
    /// current version, or nowhere); "nowhere" is the one every `RotateSecret` implementation
    /// (moto included) accepts as "no rotation in progress".
    async fn remove_pending(&self, secret_id: &str, token: &str) -> Result<(), Error> {
        self.secrets
            .update_secret_version_stage()
            .secret_id(secret_id)
            .version_stage(AWSPENDING)
            .remove_from_version_id(token)
            .send()
            .await
            .map_err(|error| aws_error("UpdateSecretVersionStage", secret_id, &error))?;
        Ok(())
    }

    async fn read_document(
        &self,
        secret_id: &str,
        stage: &'static str,
        version_id: Option<&str>,
    ) -> Result<Map<String, Value>, Error> {
        let output = self
            .secrets
            .get_secret_value()
            .secret_id(secret_id)
            .version_stage(stage)
            .set_version_id(version_id.map(str::to_owned))
            .send()
            .await
            .map_err(|error| aws_error("GetSecretValue", secret_id, &error))?;
        let text = output
            .secret_string
            .ok_or_else(|| invalid_secret(secret_id, stage, NO_STRING_VALUE.into()))?;
        match serde_json::from_str(&text) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(invalid_secret(
                secret_id,
                stage,
                "it is not a JSON object".into(),
            )),
        }
    }

    /// The `refresh_token` grant (RFC 6749 §6), form-encoded.
    async fn refresh(&self, request: &RefreshRequest) -> Result<TokenSet, Error> {
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", request.refresh_token.expose()),
            ("client_id", request.client_id.as_str()),
        ];
        if let Some(secret) = &request.client_secret {
            form.push(("client_secret", secret.expose()));
        }
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&form)
            .finish();
        // Sent once: with a provider that rotates refresh tokens, a repeat after a lost answer
        // would present a retired token. Secrets Manager retries the whole step instead.
        let response = self
            .http
            .post(&request.token_url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|error| Error::TokenRequestFailed {
                reason: describe_transport(&error),
                hint: "the token endpoint did not answer; Secrets Manager retries the rotation"
                    .into(),
            })?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| Error::TokenRequestFailed {
                reason: describe_transport(&error),
                hint: "the token endpoint did not answer; Secrets Manager retries the rotation"
                    .into(),
            })?;
        parse_token_response(status, &bytes)
    }
}

fn stages_of<'a>(versions: &'a [(String, Vec<String>)], token: &str) -> Vec<&'a str> {
    versions
        .iter()
        .filter(|(version, _)| version == token)
        .flat_map(|(_, stages)| stages.iter().map(String::as_str))
        .collect()
}

fn invalid_secret(secret_id: &str, stage: &'static str, detail: String) -> Error {
    Error::InvalidSecret {
        secret_id: secret_id.to_owned(),
        stage,
        detail,
    }
}

fn aws_error(operation: &'static str, secret_id: &str, error: &dyn std::error::Error) -> Error {
    Error::SecretsManager {
        operation,
        secret_id: secret_id.to_owned(),
        message: sf_common::error_chain(error),
    }
}

/// Describes a transport failure without the URL's query (none here) or any body.
fn describe_transport(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "the request timed out".to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        "the connection failed".to_owned()
    }
}

/// What the refresh grant needs, read from a secret document.
#[derive(Debug)]
struct RefreshRequest {
    token_url: String,
    client_id: String,
    client_secret: Option<Secret>,
    refresh_token: Secret,
}

impl RefreshRequest {
    fn from_document(
        document: &Map<String, Value>,
        default_login_url: &str,
    ) -> Result<Self, String> {
        let aliased = |keys: &[&str]| -> Result<Option<String>, String> {
            let mut found: Option<(&str, String)> = None;
            for key in keys {
                let value = match document.get(*key) {
                    None | Some(Value::Null) => continue,
                    Some(Value::String(text)) if text.trim().is_empty() => continue,
                    Some(Value::String(text)) => text.trim().to_owned(),
                    Some(_) => return Err(format!("{key} is not a string")),
                };
                match &found {
                    Some((first, existing)) if *existing != value => {
                        return Err(format!(
                            "{first} and {key} are both set, to different values"
                        ));
                    }
                    Some(_) => {}
                    None => found = Some((key, value)),
                }
            }
            Ok(found.map(|(_, value)| value))
        };
        let token_url = match (aliased(&["TokenUrl"])?, aliased(&["LoginUrl"])?) {
            (Some(url), _) => check_url(&url).ok_or("TokenUrl is not an http(s) URL")?,
            (None, Some(login)) => format!(
                "{}{SALESFORCE_TOKEN_PATH}",
                check_url(&login).ok_or("LoginUrl is not an http(s) URL")?
            ),
            (None, None) => format!("{default_login_url}{SALESFORCE_TOKEN_PATH}"),
        };
        Ok(Self {
            token_url,
            client_id: aliased(&["ClientId", "ConsumerKey"])?
                .ok_or("ClientId (or ConsumerKey) is missing")?,
            client_secret: aliased(&["ClientSecret", "ConsumerSecret"])?.map(Secret::new),
            refresh_token: aliased(&["RefreshToken"])?
                .map(Secret::new)
                .ok_or("RefreshToken is missing")?,
        })
    }
}

/// A successful token response.
#[derive(Debug)]
struct TokenSet {
    access_token: Secret,
    refresh_token: Option<Secret>,
    instance_url: Option<String>,
    issued_at: i64,
}

/// Reads a token response by key, never quoting the body (it holds tokens, or could echo them).
fn parse_token_response(status: u16, body: &[u8]) -> Result<TokenSet, Error> {
    let value: Option<Value> = serde_json::from_slice(body).ok();
    let text = |key: &str| {
        value
            .as_ref()
            .and_then(|value| value.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .filter(|text| !text.is_empty())
    };
    if status != 200 {
        let (reason, hint) = match text("error") {
            Some(error) => {
                let description = text("error_description").unwrap_or_default();
                let hint = match error.as_str() {
                    "invalid_grant" => {
                        "the refresh token was revoked or expired; authorize again and put the new RefreshToken in AWSCURRENT"
                    }
                    "invalid_client" | "invalid_client_id" => {
                        "check ClientId/ConsumerKey and ClientSecret/ConsumerSecret in the secret"
                    }
                    _ => "check the secret's token endpoint and client settings",
                };
                (format!("{status} {error}: {description}"), hint)
            }
            None => (
                format!(
                    "{status} with a body of {} bytes that is not an OAuth error",
                    body.len()
                ),
                "check TokenUrl/LoginUrl in the secret",
            ),
        };
        return Err(Error::TokenRequestFailed {
            reason,
            hint: hint.into(),
        });
    }
    let malformed = |detail: &str| Error::TokenRequestFailed {
        reason: format!("200 but {detail}"),
        hint: "check TokenUrl/LoginUrl in the secret".into(),
    };
    let access_token =
        text("access_token").ok_or_else(|| malformed("the answer has no access_token"))?;
    let instance_url = match text("instance_url") {
        Some(url) => Some(check_url(&url).ok_or_else(|| malformed("instance_url is not a URL"))?),
        None => None,
    };
    // Salesforce sends a string of milliseconds; accept a number too; default to now.
    let issued_at = match value.as_ref().and_then(|value| value.get("issued_at")) {
        Some(Value::String(text)) => text.parse().ok(),
        Some(Value::Number(number)) => number.as_i64(),
        _ => None,
    }
    .unwrap_or_else(now_millis);
    Ok(TokenSet {
        access_token: Secret::new(access_token),
        refresh_token: text("refresh_token").map(Secret::new),
        instance_url,
        issued_at,
    })
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

    fn document(json: &str) -> Map<String, Value> {
        match serde_json::from_str(json) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn the_token_endpoint_comes_from_token_url_or_login_url() {
        let cases = [
            (
                r#"{"TokenUrl":"https://idp.example.com/oauth/token","LoginUrl":"https://x","ClientId":"c","RefreshToken":"r"}"#,
                Ok("https://idp.example.com/oauth/token".to_owned()),
            ),
            (
                r#"{"LoginUrl":"https://test.salesforce.com/","ConsumerKey":"c","RefreshToken":"r"}"#,
                Ok("https://test.salesforce.com/services/oauth2/token".to_owned()),
            ),
            (
                r#"{"ClientId":"c","RefreshToken":"r"}"#,
                Ok("https://login.salesforce.com/services/oauth2/token".to_owned()),
            ),
            (
                r#"{"ClientId":"c","ConsumerKey":"d","RefreshToken":"r"}"#,
                Err("ClientId and ConsumerKey are both set, to different values".to_owned()),
            ),
            (
                r#"{"ClientId":"c"}"#,
                Err("RefreshToken is missing".to_owned()),
            ),
            (
                r#"{"RefreshToken":"r"}"#,
                Err("ClientId (or ConsumerKey) is missing".to_owned()),
            ),
            (
                r#"{"TokenUrl":"ftp://x","ClientId":"c","RefreshToken":"r"}"#,
                Err("TokenUrl is not an http(s) URL".to_owned()),
            ),
        ];
        for (json, expected) in cases {
            let actual =
                RefreshRequest::from_document(&document(json), salesforce::DEFAULT_LOGIN_URL)
                    .map(|request| request.token_url);
            assert_eq!(actual, expected, "{json}");
        }
    }

    #[test]
    fn token_answers_are_read_by_key_and_errors_quote_no_token() {
        let ok = parse_token_response(
            200,
            br#"{"access_token":"00D!new","refresh_token":"R2","instance_url":"https://na1.salesforce.com/","issued_at":"1700000000000"}"#,
        );
        let ok = ok.expect("parses");
        assert_eq!(ok.access_token.expose(), "00D!new");
        assert_eq!(ok.refresh_token.as_ref().map(Secret::expose), Some("R2"));
        assert_eq!(
            ok.instance_url.as_deref(),
            Some("https://na1.salesforce.com")
        );
        assert_eq!(ok.issued_at, 1_700_000_000_000);

        let cases: [(u16, &[u8], &str); 3] = [
            (
                400,
                br#"{"error":"invalid_grant","error_description":"expired access/refresh token"}"#,
                "400 invalid_grant: expired access/refresh token",
            ),
            (
                502,
                b"<html>SECRET-ECHO</html>",
                "502 with a body of 24 bytes",
            ),
            (
                200,
                br#"{"token":"SECRET-ECHO"}"#,
                "200 but the answer has no access_token",
            ),
        ];
        for (status, body, reason) in cases {
            let error = parse_token_response(status, body)
                .map(|_| ())
                .expect_err("fails");
            assert_eq!(error.error_type(), "TokenRequestFailed");
            let message = error.to_string();
            assert!(message.contains(reason), "{message}");
            assert!(!message.contains("SECRET-ECHO"), "{message}");
        }
    }

    #[test]
    fn steps_parse_and_unknown_steps_are_invalid_events() {
        for step in [
            Step::CreateSecret,
            Step::SetSecret,
            Step::TestSecret,
            Step::FinishSecret,
        ] {
            assert_eq!(Step::parse(step.as_str()), Ok(step));
        }
        let error = Step::parse("rotateSecret").expect_err("unknown");
        assert_eq!(error.error_type(), "InvalidEvent");
    }

    #[test]
    fn configuration_comes_from_the_environment() {
        let config = RotationConfig::from_lookup(|_| None).expect("defaults");
        assert_eq!(config.login_url, "https://login.salesforce.com");
        let cases = [
            ("SF_LOGIN_URL", "login.salesforce.com"),
            ("SF_API_VERSION", "latest"),
            ("SF_REQUEST_TIMEOUT_MS", "soon"),
        ];
        for (name, value) in cases {
            let error = RotationConfig::from_lookup(|key| (key == name).then(|| value.to_owned()))
                .expect_err("invalid");
            assert_eq!(error.error_type(), "ConfigurationError");
            assert!(error.to_string().contains(name), "{error}");
        }
    }

    #[test]
    fn token_destinations_must_be_https_or_loopback() {
        assert!(check_url("https://na1.salesforce.com/").is_some());
        assert!(check_url("http://127.0.0.1:8788").is_some());
        assert!(check_url("http://localhost:1").is_some());
        assert!(check_url("http://na1.salesforce.com").is_none());
        assert!(check_url("ftp://127.0.0.1").is_none());
        assert!(check_url("not a url").is_none());
    }
}
