//! The rotation function: the four steps of the AWS rotation contract (`createSecret`,
//! `setSecret`, `testSecret`, `finishSecret`) and the checks every step runs first.

use aws_lambda_events::event::secretsmanager::SecretsManagerSecretRotationEvent;
use aws_sdk_secretsmanager::Client as SecretsManagerClient;
use lambda_runtime::LambdaEvent;
use salesforce::{Client, Secret, Session};
use serde_json::Value;

use crate::config::RotationConfig;
use crate::error::{Error, aws_error, describe_transport, invalid_secret};
use crate::event::{Step, StepRequest};
use crate::secret::{
    AWSCURRENT, AWSPENDING, NO_STRING_VALUE, check_version, read_document, remove_pending,
    stages_of,
};
use crate::token::{RefreshRequest, refresh};

/// How often `createSecret` tries to store the token set it was just handed.
const STORE_ATTEMPTS: u64 = 3;

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
    /// `createSecret` stored a new `AWSPENDING` value with a refresh token the provider rotated,
    /// and made it `AWSCURRENT` at once: the old refresh token was retired as it was spent.
    PendingCreatedAndCurrent,
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

/// The rotation function: built once per execution environment.
#[derive(Debug, Clone)]
pub struct Rotator {
    secrets: SecretsManagerClient,
    http: reqwest::Client,
    config: RotationConfig,
}

impl Rotator {
    pub fn new(secrets: SecretsManagerClient, config: RotationConfig) -> Result<Self, Error> {
        // The test request carries the new token: never followed elsewhere by a redirect.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
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
        let StepRequest {
            step,
            secret_id,
            token,
        } = StepRequest::from_event(event)?;
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
        let versions = check_version(&self.secrets, secret_id, token).await?;
        let stages = stages_of(&versions, token);
        let (current, pending) = (stages.contains(&AWSCURRENT), stages.contains(&AWSPENDING));
        if current && !pending {
            return Ok(Outcome::AlreadyCurrent);
        }
        if !pending {
            return Err(Error::NotPending {
                secret_id: secret_id.to_owned(),
                token: token.to_owned(),
            });
        }
        if current {
            // Both: `createSecret` made a rotated refresh token current at once (or a
            // `finishSecret` that failed after moving `AWSCURRENT` is being retried). The new
            // token is still tested; finishing only takes `AWSPENDING` off.
            return match step {
                Step::CreateSecret => Ok(Outcome::PendingAlreadyExists),
                Step::SetSecret => Ok(Outcome::NothingToSet),
                Step::TestSecret => self.test_secret(secret_id, token, true).await,
                Step::FinishSecret => {
                    remove_pending(&self.secrets, secret_id, token).await?;
                    Ok(Outcome::AlreadyCurrent)
                }
            };
        }
        match step {
            Step::CreateSecret => self.create_secret(secret_id, token, &versions).await,
            // OAuth tokens are issued by the provider: unlike a database password there is no
            // service to push the new value to, so this step has nothing to do and is trivially
            // idempotent.
            Step::SetSecret => Ok(Outcome::NothingToSet),
            Step::TestSecret => self.test_secret(secret_id, token, false).await,
            Step::FinishSecret => self.finish_secret(secret_id, token, &versions).await,
        }
    }

    async fn create_secret(
        &self,
        secret_id: &str,
        token: &str,
        versions: &[(String, Vec<String>)],
    ) -> Result<Outcome, Error> {
        let current = read_document(&self.secrets, secret_id, AWSCURRENT, None).await?;
        match self
            .secrets
            .get_secret_value()
            .secret_id(secret_id)
            .version_id(token)
            .version_stage(AWSPENDING)
            .send()
            .await
        {
            Ok(found) => {
                // Staged by an earlier attempt that may have stopped before promoting it.
                let pending: Value =
                    serde_json::from_str(found.secret_string().unwrap_or("{}")).unwrap_or_default();
                if pending.get("RefreshToken") != current.get("RefreshToken") {
                    self.make_current(secret_id, token, versions).await?;
                    return Ok(Outcome::PendingCreatedAndCurrent);
                }
                return Ok(Outcome::PendingAlreadyExists);
            }
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|service| service.is_resource_not_found_exception()) => {}
            Err(error) => return Err(aws_error("GetSecretValue", secret_id, &error)),
        }

        let request = RefreshRequest::from_document(&current, &self.config.login_url)
            .map_err(|detail| invalid_secret(secret_id, AWSCURRENT, detail))?;
        let tokens = refresh(&self.http, &request).await?;
        let rotated = tokens
            .refresh_token
            .as_ref()
            .is_some_and(|new| new.expose() != request.refresh_token.expose());

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

        // The token just spent may have been the only valid one: storing its successor is
        // retried (the same ClientRequestToken makes a repeat a no-op) beyond the SDK's own
        // retries, rather than lose it to one failed request.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .secrets
                .put_secret_value()
                .secret_id(secret_id)
                .client_request_token(token)
                .secret_string(Value::Object(pending.clone()).to_string())
                .version_stages(AWSPENDING)
                .send()
                .await
            {
                Ok(_) => break,
                Err(error) if attempt < STORE_ATTEMPTS => {
                    tracing::warn!(secret_id, attempt, error = %aws_sdk_secretsmanager::error::DisplayErrorContext(&error), "storing the new token failed; trying again");
                    tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
                }
                Err(error) => return Err(aws_error("PutSecretValue", secret_id, &error)),
            }
        }
        if rotated {
            // The provider rotated the refresh token: AWSCURRENT's was retired as it was spent.
            // The new version becomes AWSCURRENT now, before any test, so no reader (and no
            // later rotation) is ever left with a retired token; it stays AWSPENDING until it
            // is tested and finished.
            self.make_current(secret_id, token, versions).await?;
            return Ok(Outcome::PendingCreatedAndCurrent);
        }
        Ok(Outcome::PendingCreated)
    }

    /// Moves `AWSCURRENT` to the token's version.
    async fn make_current(
        &self,
        secret_id: &str,
        token: &str,
        versions: &[(String, Vec<String>)],
    ) -> Result<(), Error> {
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
        Ok(())
    }

    async fn test_secret(
        &self,
        secret_id: &str,
        token: &str,
        is_current: bool,
    ) -> Result<Outcome, Error> {
        let pending = match read_document(&self.secrets, secret_id, AWSPENDING, Some(token)).await {
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
        // A copy of AWSCURRENT carries no new token to test: the configuration check again
        // (unless it is AWSCURRENT itself, made so by createSecret).
        if !is_current
            && let Ok(current) = read_document(&self.secrets, secret_id, AWSCURRENT, None).await
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
            let test_url = salesforce::secure_url(test_url, "TestUrl")
                .map_err(|reason| invalid_secret(secret_id, AWSPENDING, reason))?;
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
        self.make_current(secret_id, token, versions).await?;
        remove_pending(&self.secrets, secret_id, token).await?;
        Ok(Outcome::Promoted)
    }
}
