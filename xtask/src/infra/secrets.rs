//! The environment's three secrets, all encrypted with the environment's key: the Salesforce
//! credentials (value from the caller), the OAuth client's part of them for the public
//! callback (copied from the credentials by every deploy: the connected app's key and secret,
//! the state-signing key and the login URL, nothing else), and the session kept by
//! sf-token-refresh (starts as `{}`).
//!
//! No value read or written here is ever printed, put into an error or returned.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::types::Tag;
use serde::Serialize;

use super::Tags;
use crate::aws_error::AwsContext;
use crate::naming::Names;

/// The secrets' ARNs. Deliberately holds no value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretsInfo {
    pub credentials_arn: String,
    pub oauth_client_arn: String,
    /// The OAuth client secret's current version: in the callback's environment, so a deploy
    /// that changes the secret starts new execution environments, which read it afresh.
    pub oauth_client_version: String,
    pub session_arn: String,
}

/// Where the credentials secret's value comes from on this deploy.
#[derive(Clone, Copy)]
pub enum Credentials<'a> {
    /// Given by the user (an environment variable or a file): stored when it differs from the
    /// current value.
    Given(&'a str),
    /// A default (the local demo org): stored only when the secret holds no value yet, so a
    /// deploy never undoes a rotated value.
    Default(&'a str),
    /// None given: the secret must already hold a value.
    Existing,
}

impl std::fmt::Debug for Credentials<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Self::Given(_) => "Given(<redacted>)",
            Self::Default(_) => "Default(<redacted>)",
            Self::Existing => "Existing",
        })
    }
}

/// What a secret should hold when [`ensure_secret`] finds it.
enum Value<'a> {
    /// Always this value (the credentials): written when the current one differs.
    Exactly(&'a str),
    /// This value only if the secret has none (the session: never overwrite a live session).
    Initially(&'a str),
    /// Whatever it holds; it must hold something.
    Existing,
}

impl<'a> Value<'a> {
    /// The value to store in a secret that has none, or an error when none was given.
    fn initial(&self, name: &str) -> anyhow::Result<&'a str> {
        match self {
            Self::Exactly(text) | Self::Initially(text) => Ok(text),
            Self::Existing => bail!(
                "secret {name} holds no Salesforce credentials and none were given\nhint: set SFSTACK_SF_CREDENTIALS_FILE to a JSON file with the credentials (or SFSTACK_SF_CREDENTIALS to the JSON itself) and deploy again"
            ),
        }
    }
}

/// An empty session: readers treat it as "no session yet" (see sf-common).
const EMPTY_SESSION: &str = "{}";

/// Creates or converges both secrets. A given credentials document must be a JSON object; see
/// [`Credentials`] for when it is stored (compared after reading the current value, never
/// logged). The session secret gets `{}` only when it is new.
/// A secret of our name scheduled for deletion is restored and reused.
pub async fn ensure_secrets(
    client: &Client,
    names: &Names,
    key_arn: &str,
    tags: &Tags,
    credentials: Credentials<'_>,
) -> anyhow::Result<SecretsInfo> {
    let value = match credentials {
        Credentials::Given(text) => Value::Exactly(text),
        Credentials::Default(text) => Value::Initially(text),
        Credentials::Existing => Value::Existing,
    };
    if let Value::Exactly(text) | Value::Initially(text) = value {
        // serde_json's messages give a position, never the text, so they are safe to show.
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(_)) => {}
            Ok(_) => bail!(
                "the Salesforce credentials are not a JSON object\nhint: see the README's \"Credentials\" section for the fields"
            ),
            Err(error) => bail!(
                "the Salesforce credentials are not valid JSON ({error})\nhint: check the credentials file"
            ),
        }
    }
    let credentials_arn = ensure_secret(
        client,
        &names.credentials_secret(),
        &format!("sfstack {}: Salesforce credentials", names.environment),
        key_arn,
        tags,
        value,
    )
    .await?;
    // The callback's part, from what the credentials secret holds now (given, default or
    // existing alike): an environment made before the split gets it on its next deploy.
    let current = client
        .get_secret_value()
        .secret_id(&credentials_arn)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .aws_context(|| format!("reading secret {}", names.credentials_secret()))?;
    let oauth_client = oauth_client_document(current.secret_string().unwrap_or("{}"))?;
    let oauth_client_arn = ensure_secret(
        client,
        &names.oauth_client_secret(),
        &format!(
            "sfstack {}: the Salesforce OAuth client, for sf-oauth-callback (copied from the credentials by deploy)",
            names.environment
        ),
        key_arn,
        tags,
        Value::Exactly(&oauth_client),
    )
    .await?;
    let oauth_client_version = client
        .get_secret_value()
        .secret_id(&oauth_client_arn)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .aws_context(|| format!("reading secret {}", names.oauth_client_secret()))?
        .version_id()
        .unwrap_or_default()
        .to_string();
    let session_arn = ensure_secret(
        client,
        &names.session_secret(),
        &format!(
            "sfstack {}: Salesforce session kept by sf-token-refresh",
            names.environment
        ),
        key_arn,
        tags,
        Value::Initially(EMPTY_SESSION),
    )
    .await?;
    Ok(SecretsInfo {
        credentials_arn,
        oauth_client_arn,
        oauth_client_version,
        session_arn,
    })
}

/// The fields of a credentials document the OAuth callback reads, and no other: never a JWT
/// key, a password or a refresh token.
const OAUTH_CLIENT_FIELDS: &[&str] = &[
    "ClientId",
    "ConsumerKey",
    "ClientSecret",
    "ConsumerSecret",
    "StateSigningKey",
    "LoginUrl",
];

/// The OAuth client's part of a credentials document, as JSON text (keys sorted, so an
/// unchanged document is never written again).
pub fn oauth_client_document(credentials: &str) -> anyhow::Result<String> {
    let serde_json::Value::Object(fields) = serde_json::from_str(credentials)
        .map_err(|error| anyhow::anyhow!("the stored credentials are not JSON ({error})"))?
    else {
        bail!("the stored credentials are not a JSON object");
    };
    let kept: BTreeMap<&String, &serde_json::Value> = fields
        .iter()
        .filter(|(key, _)| OAUTH_CLIENT_FIELDS.contains(&key.as_str()))
        .collect();
    Ok(serde_json::to_string(&kept)?)
}

/// How long a deploy waits for a force-deleted secret's name, and its first pause.
const SECRET_NAME_BUDGET: std::time::Duration = std::time::Duration::from_secs(120);
const SECRET_NAME_FIRST_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether Secrets Manager refused because a secret of that name is still being deleted
/// (`InvalidRequestException` from CreateSecret or RestoreSecret).
pub(crate) fn is_name_still_being_deleted(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        let text = cause.to_string();
        text.contains("InvalidRequestException")
            && (text.contains("scheduled for deletion") || text.contains("because it was deleted"))
    })
}

fn secret_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(key, value)| Tag::builder().key(key).value(value).build())
        .collect()
}

async fn ensure_secret(
    client: &Client,
    name: &str,
    description: &str,
    key_arn: &str,
    tags: &Tags,
    value: Value<'_>,
) -> anyhow::Result<String> {
    // A secret force-deleted a moment ago (a teardown just before this deploy) keeps its name
    // for a while: Secrets Manager deletes asynchronously, and meanwhile CreateSecret fails
    // with "already scheduled for deletion" and RestoreSecret with "it was deleted". The
    // DeleteSecret reference says to wait and retry; nothing is restored that is being deleted.
    let started = std::time::Instant::now();
    let mut delay = SECRET_NAME_FIRST_DELAY;
    let described = loop {
        let attempt = match client.describe_secret().secret_id(name).send().await {
            Ok(output) => {
                if output.deleted_date().is_some() {
                    // Its name stays reserved until the recovery window ends: reuse it.
                    match client.restore_secret().secret_id(name).send().await {
                        Ok(_) => {
                            super::changed(format!("restored secret {name}"));
                            Ok(output)
                        }
                        // Deleted for good between the two calls (a force-deleted secret stays
                        // visible for a while): describe it again, and create it.
                        Err(error)
                            if error
                                .as_service_error()
                                .is_some_and(|error| error.is_resource_not_found_exception())
                                && started.elapsed() < SECRET_NAME_BUDGET =>
                        {
                            continue;
                        }
                        Err(error) => Err(error).aws_context(|| {
                            format!("restoring secret {name}, which was scheduled for deletion")
                        }),
                    }
                } else {
                    Ok(output)
                }
            }
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|error| error.is_resource_not_found_exception()) =>
            {
                let initial = value.initial(name)?;
                match client
                    .create_secret()
                    .name(name)
                    .description(description)
                    .kms_key_id(key_arn)
                    .secret_string(initial)
                    .set_tags(Some(secret_tags(&tags.pairs())))
                    .send()
                    .await
                    .aws_context(|| format!("creating secret {name}"))
                {
                    Ok(output) => {
                        super::changed(format!("created secret {name}"));
                        return output
                            .arn
                            .with_context(|| format!("creating secret {name}: no ARN returned"));
                    }
                    Err(error) => Err(error),
                }
            }
            Err(error) => return Err(error).aws_context(|| format!("describing secret {name}")),
        };
        match attempt {
            Ok(described) => break described,
            Err(error)
                if is_name_still_being_deleted(&error)
                    && started.elapsed() < SECRET_NAME_BUDGET =>
            {
                note!(
                    "waiting for Secrets Manager to finish deleting the old secret {name} before re-creating it"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(SECRET_NAME_FIRST_DELAY * 8);
            }
            Err(error) if is_name_still_being_deleted(&error) => {
                return Err(error).with_context(|| {
                    format!(
                        "secret {name} is still being deleted after {} s\nhint: run the deploy again in a minute",
                        SECRET_NAME_BUDGET.as_secs()
                    )
                });
            }
            Err(error) => return Err(error),
        }
    };
    let arn = described
        .arn()
        .with_context(|| format!("secret {name} has no ARN"))?
        .to_string();
    if !described
        .kms_key_id()
        .is_some_and(|current| super::key::same_key(current, key_arn))
    {
        client
            .update_secret()
            .secret_id(&arn)
            .kms_key_id(key_arn)
            .send()
            .await
            .aws_context(|| format!("setting the KMS key of secret {name}"))?;
        super::changed(format!("set the KMS key of secret {name}"));
    }
    let existing: BTreeMap<String, String> = described
        .tags()
        .iter()
        .filter_map(|tag| Some((tag.key()?.to_string(), tag.value()?.to_string())))
        .collect();
    if let Some(desired) = tags.missing_from(&existing) {
        client
            .tag_resource()
            .secret_id(&arn)
            .set_tags(Some(secret_tags(&desired)))
            .send()
            .await
            .aws_context(|| format!("tagging secret {name}"))?;
    }

    // Always name AWSCURRENT: moto answers an unqualified read with a rotated-out version.
    let current = client
        .get_secret_value()
        .secret_id(&arn)
        .version_stage("AWSCURRENT")
        .send()
        .await;
    let to_write = match current {
        Ok(current) => match value {
            Value::Exactly(text) if current.secret_string() != Some(text) => Some(text),
            Value::Exactly(_) | Value::Initially(_) | Value::Existing => None,
        },
        // No current version (never written), or a version encrypted with a key that is gone:
        // either way the secret needs a fresh value.
        Err(error)
            if error.as_service_error().is_some_and(|error| {
                error.is_resource_not_found_exception() || error.is_decryption_failure()
            }) =>
        {
            Some(value.initial(name)?)
        }
        Err(error) => {
            return Err(error)
                .with_context(|| format!("reading the current value of secret {name}"));
        }
    };
    if let Some(text) = to_write {
        client
            .put_secret_value()
            .secret_id(&arn)
            .secret_string(text)
            .send()
            .await
            .aws_context(|| format!("storing a new value in secret {name}"))?;
        super::changed(format!("stored a new value in secret {name}"));
    }
    Ok(arn)
}

/// How a teardown deletes the secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretDeletion {
    /// At once (ForceDeleteWithoutRecovery), so a re-created environment can reuse the names.
    Immediate,
    /// After a recovery window of this many days (7 to 30), during which a deploy restores
    /// them: a protected environment's credentials and session survive a mistaken teardown.
    Recoverable(i32),
}

/// Deletes both secrets as `how` says. Returns the names of the secrets it deleted.
pub async fn delete_secrets(
    client: &Client,
    names: &Names,
    how: SecretDeletion,
) -> anyhow::Result<Vec<String>> {
    let mut removed = Vec::new();
    for name in [
        names.credentials_secret(),
        names.oauth_client_secret(),
        names.session_secret(),
    ] {
        match client.describe_secret().secret_id(&name).send().await {
            // Deleted, and its deletion date has come: it is going already (a force-deleted
            // secret stays visible for a while, dated when it was deleted).
            Ok(described)
                if described
                    .deleted_date()
                    .is_some_and(|date| date.secs() <= chrono::Utc::now().timestamp()) =>
            {
                continue;
            }
            // Already scheduled, and recoverable is what was asked: leave its window alone.
            Ok(described)
                if described.deleted_date().is_some()
                    && matches!(how, SecretDeletion::Recoverable(_)) =>
            {
                continue;
            }
            Ok(_) => {}
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|error| error.is_resource_not_found_exception()) =>
            {
                continue;
            }
            Err(error) => return Err(error).aws_context(|| format!("describing secret {name}")),
        }
        // Immediate also deletes at once a secret already scheduled for deletion.
        let request = client.delete_secret().secret_id(&name);
        let request = match how {
            SecretDeletion::Immediate => request.force_delete_without_recovery(true),
            SecretDeletion::Recoverable(days) => request.recovery_window_in_days(i64::from(days)),
        };
        match request.send().await {
            Ok(_) => removed.push(name),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|error| error.is_resource_not_found_exception()) => {}
            Err(error) => {
                return Err(error).aws_context(|| format!("deleting secret {name}"));
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials as Keys, Region};

    use super::*;

    const NAME: &str = "sfstack-e2e/salesforce-credentials";
    const ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:sfstack-e2e/salesforce-credentials-AbCdEf";

    #[test]
    fn the_callback_gets_the_oauth_client_and_never_a_key_password_or_token() {
        let credentials = r#"{"ConsumerKey": "key", "ConsumerSecret": "secret",
            "StateSigningKey": "state-key", "LoginUrl": "https://login.salesforce.com",
            "PrivateKey": "placeholder, not a key", "Password": "p", "RefreshToken": "r",
            "Username": "u"}"#;
        let client: serde_json::Value =
            serde_json::from_str(&oauth_client_document(credentials).expect("as written"))
                .expect("as written");
        let keys: Vec<&str> = client
            .as_object()
            .expect("as written")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "ConsumerKey",
                "ConsumerSecret",
                "LoginUrl",
                "StateSigningKey"
            ]
        );
        assert!(oauth_client_document("[1]").is_err());
    }

    fn answer(status: u16, body: String) -> axum::response::Response {
        use axum::response::IntoResponse;
        let status = axum::http::StatusCode::from_u16(status).expect("a valid status");
        (
            status,
            [("content-type", "application/x-amz-json-1.1")],
            body,
        )
            .into_response()
    }

    fn not_found() -> axum::response::Response {
        answer(
            400,
            r#"{"__type":"ResourceNotFoundException","message":"Secrets Manager can't find the specified secret."}"#.to_string(),
        )
    }

    /// A Secrets Manager, served over HTTP on 127.0.0.1, whose secret, force-deleted a moment
    /// ago, is still described (with its deletion date) and is gone for good by the time
    /// RestoreSecret arrives. Records the operations it was asked for.
    async fn vanishing_secret() -> (Client, Arc<Mutex<Vec<String>>>) {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&calls);
        let handler = move |headers: axum::http::HeaderMap| {
            let operation = headers
                .get("x-amz-target")
                .and_then(|target| target.to_str().ok())
                .and_then(|target| target.strip_prefix("secretsmanager."))
                .unwrap_or_default()
                .to_string();
            let mut calls = seen.lock().expect("the call log");
            let gone = calls.iter().any(|call| call == "RestoreSecret");
            calls.push(operation.clone());
            let response = match operation.as_str() {
                "DescribeSecret" if !gone => answer(
                    200,
                    format!(
                        r#"{{"ARN":"{ARN}","Name":"{NAME}","DeletedDate":{}}}"#,
                        chrono::Utc::now().timestamp()
                    ),
                ),
                "DescribeSecret" | "RestoreSecret" => not_found(),
                "CreateSecret" => answer(200, format!(r#"{{"ARN":"{ARN}","Name":"{NAME}"}}"#)),
                other => answer(
                    500,
                    format!(
                        r#"{{"__type":"InternalServiceError","message":"unexpected {other}"}}"#
                    ),
                ),
            };
            std::future::ready(response)
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Secrets Manager");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        tokio::spawn(axum::serve(listener, axum::Router::new().fallback(handler)).into_future());
        let config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .http_client(aws_reqwest::http_client())
            .region(Region::new("us-east-1"))
            .credentials_provider(Keys::new("AKIDEXAMPLE", "secret", None, None, "test"))
            .endpoint_url(url)
            .build();
        (Client::from_conf(config), calls)
    }

    #[tokio::test]
    async fn a_secret_deleted_between_describe_and_restore_is_created_anew() {
        let (client, calls) = vanishing_secret().await;
        let tags = Tags {
            env: "e2e".into(),
            branch: "main".into(),
            commit: "0123456".into(),
            created_at: "2026-12-01T00:00:00Z".into(),
            expires_at: "2026-12-08T00:00:00Z".into(),
        };
        let arn = ensure_secret(
            &client,
            NAME,
            "credentials",
            "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            &tags,
            Value::Initially("{}"),
        )
        .await
        .expect("the secret is created once the old one is gone");
        assert_eq!(arn, ARN);
        assert_eq!(
            *calls.lock().expect("the call log"),
            [
                "DescribeSecret",
                "RestoreSecret",
                "DescribeSecret",
                "CreateSecret"
            ]
        );
    }
}
