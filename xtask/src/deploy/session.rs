//! Deploy step "session": the environment's first Salesforce session, made by `sf-token-refresh`
//! itself, so that the one function that writes rotated refresh tokens back is the one that
//! spends the token. Without it, the first contact-flow call would find no session and log in on
//! its own, and in an org that rotates refresh tokens that login would retire the stored token
//! (`sf-invoke-api` writes no secret, so the new one would be lost).

use anyhow::{Context, bail};
use aws_sdk_lambda::primitives::Blob;

use crate::aws_error::AwsContext;
use crate::cloud::Cloud;
use crate::naming::Names;

/// Runs `sf-token-refresh` once, as its schedule would, when the session secret holds no session
/// yet or the credentials were stored in this deploy (a session of the old credentials must not
/// outlive them). Returns what it did, or `None` when a session is already there.
pub(super) async fn seed(
    cloud: &Cloud,
    names: &Names,
    credentials_stored: bool,
) -> anyhow::Result<Option<String>> {
    if !credentials_stored && has_session(cloud, names).await? {
        return Ok(None);
    }
    let function = names.function("sf-token-refresh");
    let event = serde_json::json!({
        "version": "0",
        "id": "sfstack-deploy-first-session",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": cloud.account_id,
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "region": cloud.region,
        "resources": [cloud.arn("events", &format!("rule/{}", names.refresh_rule()))],
        "detail": {},
    });
    let output = cloud
        .invoker
        .invoke()
        .function_name(&function)
        .payload(Blob::new(serde_json::to_vec(&event)?))
        .send()
        .await
        .aws_context(|| format!("invoking {function} for the first session"))?;
    if let Some(kind) = output.function_error() {
        let answer: serde_json::Value = output
            .payload()
            .and_then(|blob| serde_json::from_slice(blob.as_ref()).ok())
            .unwrap_or_default();
        bail!(
            "{function} could not make the first Salesforce session ({kind}): {}: {}\nhint: the stack is deployed; fix the cause and deploy again (the first session is made again), or wait for the schedule",
            answer["errorType"].as_str().unwrap_or("unknown"),
            answer["errorMessage"].as_str().unwrap_or_default()
        );
    }
    Ok(Some(format!("first Salesforce session made by {function}")))
}

/// Whether the session secret holds a session (not the empty document it starts with).
async fn has_session(cloud: &Cloud, names: &Names) -> anyhow::Result<bool> {
    let secret = names.session_secret();
    let value = cloud
        .clients
        .secrets
        .get_secret_value()
        .secret_id(&secret)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .aws_context(|| format!("reading {secret}"))?;
    let session: serde_json::Value = value
        .secret_string()
        .and_then(|text| serde_json::from_str(text).ok())
        .context("the session secret is not JSON")?;
    Ok(session["access_token"]
        .as_str()
        .is_some_and(|token| !token.is_empty()))
}
