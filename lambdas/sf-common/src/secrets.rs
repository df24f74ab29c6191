//! The Salesforce credentials secret and the session secret, read and written through Secrets
//! Manager.

use serde::{Deserialize, Serialize};

use crate::{CommonError, Settings};

/// The session secret's value: a session plus when it was stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredSession {
    #[serde(flatten)]
    pub session: salesforce::Session,
    /// Milliseconds since the epoch when `sf-token-refresh` stored it.
    pub refreshed_at: i64,
}

/// A Secrets Manager client (built once per execution environment).
#[derive(Debug, Clone)]
pub struct Secrets {
    client: aws_sdk_secretsmanager::Client,
}

fn aws_error(
    operation: &'static str,
    resource: &str,
    error: impl std::error::Error,
) -> CommonError {
    CommonError::Aws {
        operation,
        resource: resource.to_string(),
        message: crate::error_chain(&error),
    }
}

impl Secrets {
    pub fn new(client: aws_sdk_secretsmanager::Client) -> Self {
        Self { client }
    }

    /// A client from the function's AWS configuration ([`crate::aws_config`]).
    pub fn from_env() -> Self {
        let config = crate::aws_config();
        Self::new(aws_sdk_secretsmanager::Client::new(&config))
    }

    pub fn client(&self) -> &aws_sdk_secretsmanager::Client {
        &self.client
    }

    /// A secret's string value at a stage (`AWSCURRENT` when `None`) or version.
    pub async fn get_string(
        &self,
        secret_id: &str,
        stage: Option<&str>,
        version_id: Option<&str>,
    ) -> Result<String, CommonError> {
        let output = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            // Name the stage even for the current value: moto's default version does not follow
            // UpdateSecretVersionStage, so an unqualified read there returns a rotated-out value.
            .set_version_stage(match (stage, version_id) {
                (Some(stage), _) => Some(stage.to_string()),
                (None, None) => Some("AWSCURRENT".to_string()),
                (None, Some(_)) => None,
            })
            .set_version_id(version_id.map(String::from))
            .send()
            .await
            .map_err(|error| aws_error("GetSecretValue", secret_id, error))?;
        output
            .secret_string
            .ok_or_else(|| CommonError::SecretFormat {
                resource: secret_id.to_string(),
                detail: "it has no string value (binary secrets are not supported)".into(),
            })
    }

    /// The Salesforce credentials named by `settings`, with the environment's overrides applied.
    pub async fn load_credentials(
        &self,
        settings: &Settings,
    ) -> Result<salesforce::Credentials, CommonError> {
        let arn = &settings.credentials_secret_arn;
        let document = self.get_string(arn, None, None).await?;
        credentials_from_document(&document, settings)
    }

    /// The session kept by `sf-token-refresh`, or `None` before its first refresh.
    pub async fn load_session(
        &self,
        secret_id: &str,
    ) -> Result<Option<StoredSession>, CommonError> {
        let value = self.get_string(secret_id, None, None).await?;
        parse_session(&value, secret_id)
    }

    /// Stores a new session as the secret's current value.
    pub async fn store_session(
        &self,
        secret_id: &str,
        session: &salesforce::Session,
    ) -> Result<(), CommonError> {
        let stored = StoredSession {
            session: session.clone(),
            refreshed_at: now_millis(),
        };
        let value = serde_json::to_string(&stored).map_err(|error| CommonError::SecretFormat {
            resource: secret_id.to_string(),
            detail: format!("could not serialize the session: {error}"),
        })?;
        self.client
            .put_secret_value()
            .secret_id(secret_id)
            .secret_string(value)
            .send()
            .await
            .map_err(|error| aws_error("PutSecretValue", secret_id, error))?;
        Ok(())
    }
}

/// Parses a credentials document and applies the environment's username and login URL.
pub(crate) fn credentials_from_document(
    document: &str,
    settings: &Settings,
) -> Result<salesforce::Credentials, CommonError> {
    let resource = settings.credentials_secret_arn.clone();
    let credentials =
        salesforce::Credentials::from_json_with_username(document, settings.username.as_deref())
            .map_err(|source| CommonError::Credentials {
                resource: resource.clone(),
                source,
            })?;
    match &settings.login_url {
        Some(url) => credentials
            .with_login_url(url)
            .map_err(|source| CommonError::Credentials { resource, source }),
        None => Ok(credentials),
    }
}

/// Reads a session secret value; `{}` (never refreshed) is `None`.
pub(crate) fn parse_session(
    value: &str,
    resource: &str,
) -> Result<Option<StoredSession>, CommonError> {
    let json: serde_json::Value =
        serde_json::from_str(value).map_err(|_| CommonError::SecretFormat {
            resource: resource.to_string(),
            detail: "its value is not JSON".into(),
        })?;
    if json.as_object().is_some_and(|object| object.is_empty()) {
        return Ok(None);
    }
    serde_json::from_value::<StoredSession>(json)
        .map(Some)
        .map_err(|error| CommonError::SecretFormat {
            resource: resource.to_string(),
            // serde's message names the field, never the value.
            detail: format!("it is not a stored session: {error}"),
        })
}

pub(crate) fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_object_means_no_session_yet() {
        assert!(parse_session("{}", "s").expect("parses").is_none());
    }

    #[test]
    fn a_stored_session_round_trips_without_leaking_in_errors() {
        let value = r#"{"access_token":"00Dx!secret-token","instance_url":"https://x.my.salesforce.com","issued_at":1,"refreshed_at":2}"#;
        let stored = parse_session(value, "s").expect("parses").expect("some");
        assert_eq!(stored.session.instance_url, "https://x.my.salesforce.com");
        assert_eq!(stored.refreshed_at, 2);
        let broken = r#"{"access_token":"00Dx!secret-token"}"#;
        let error = parse_session(broken, "s")
            .map(|_| ())
            .expect_err("incomplete");
        assert!(!error.to_string().contains("secret-token"), "{error}");
        let error = parse_session("not json secret-token", "s")
            .map(|_| ())
            .expect_err("not json");
        assert!(!error.to_string().contains("secret-token"), "{error}");
    }
}
