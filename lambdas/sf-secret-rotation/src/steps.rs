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
        if stages_of(&versions, token).contains(&AWSCURRENT) {
            if step == Step::FinishSecret && stages_of(&versions, token).contains(&AWSPENDING) {
                // A finishSecret that failed after moving AWSCURRENT is being retried.
                remove_pending(&self.secrets, secret_id, token).await?;
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

        let current = read_document(&self.secrets, secret_id, AWSCURRENT, None).await?;
        let request = RefreshRequest::from_document(&current, &self.config.login_url)
            .map_err(|detail| invalid_secret(secret_id, AWSCURRENT, detail))?;
        let tokens = refresh(&self.http, &request).await?;

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
        // A copy of AWSCURRENT carries no new token to test: the configuration check again.
        if let Ok(current) = read_document(&self.secrets, secret_id, AWSCURRENT, None).await
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
        remove_pending(&self.secrets, secret_id, token).await?;
        Ok(Outcome::Promoted)
    }
}
