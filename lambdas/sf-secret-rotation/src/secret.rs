//! The rotated secret in Secrets Manager: its versions and stages, and its JSON values.

use aws_sdk_secretsmanager::Client as SecretsManagerClient;
use serde_json::{Map, Value};

use crate::error::{Error, aws_error, invalid_secret};

pub(crate) const AWSCURRENT: &str = "AWSCURRENT";
pub(crate) const AWSPENDING: &str = "AWSPENDING";
/// The detail of [`Error::InvalidSecret`] for a version without a string value.
pub(crate) const NO_STRING_VALUE: &str = "it has no string value";

/// `DescribeSecret`: rotation must be enabled and the token must be a version.
pub(crate) async fn check_version(
    secrets: &SecretsManagerClient,
    secret_id: &str,
    token: &str,
) -> Result<Vec<(String, Vec<String>)>, Error> {
    let description = secrets
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

/// Takes `AWSPENDING` off the finished version. AWS accepts either end state (pending on the
/// current version, or nowhere); "nowhere" is the one every `RotateSecret` implementation
/// (moto included) accepts as "no rotation in progress".
pub(crate) async fn remove_pending(
    secrets: &SecretsManagerClient,
    secret_id: &str,
    token: &str,
) -> Result<(), Error> {
    secrets
        .update_secret_version_stage()
        .secret_id(secret_id)
        .version_stage(AWSPENDING)
        .remove_from_version_id(token)
        .send()
        .await
        .map_err(|error| aws_error("UpdateSecretVersionStage", secret_id, &error))?;
    Ok(())
}

/// The value of the version on `stage` (and with id `version_id`, when given): a JSON object.
pub(crate) async fn read_document(
    secrets: &SecretsManagerClient,
    secret_id: &str,
    stage: &'static str,
    version_id: Option<&str>,
) -> Result<Map<String, Value>, Error> {
    let output = secrets
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

/// The stages `token`'s version is on.
pub(crate) fn stages_of<'a>(versions: &'a [(String, Vec<String>)], token: &str) -> Vec<&'a str> {
    versions
        .iter()
        .filter(|(version, _)| version == token)
        .flat_map(|(_, stages)| stages.iter().map(String::as_str))
        .collect()
}
