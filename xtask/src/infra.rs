//! `infra`: the resources an environment needs before its CloudFormation stack (deploy steps
//! 2–5): IAM roles, the KMS key, the two Secrets Manager secrets and the Lambda zips in S3,
//! each created or converged idempotently, and their teardown.
//!
//! # Creation order
//!
//! The roles' inline policies name the key and the secrets, so those exist first; the key
//! policy delegates to the account's IAM policies and names no role. One environment is built
//! in this order, which [`ensure_environment`] follows:
//!
//! 1. [`ensure_role_identities`]: the roles with their trust policy only (they grant nothing yet);
//! 2. [`ensure_key`]: the key, whose policy lets the account's IAM policies grant its use;
//! 3. [`ensure_secrets`]: both secrets, encrypted with the key;
//! 4. [`ensure_roles`]: each role's inline policy `sfstack`, now that every ARN it names exists;
//! 5. [`ensure_artifacts`]: the zips, in the account's shared artifacts bucket.
//!
//! Every step reads before it writes, so a re-run converges and an unchanged environment is
//! left untouched; a run interrupted anywhere is finished by the next one.
//!
//! # Teardown
//!
//! [`teardown_environment`] removes roles, secrets (without a recovery window) and the key's
//! alias, and schedules the key's deletion (7 days, not waited for). "Does not exist" is success
//! everywhere, so teardown finishes a half-created or half-deleted environment. The artifacts
//! bucket is shared by every environment of the account and region and is left alone (`prune`
//! deletes the zips no stack references; see [`artifacts`]).
//!
//! # Secrets
//!
//! The credentials value is only ever sent to Secrets Manager: it is never printed, never put
//! into an error message and never stored in a returned struct.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use crate::build::Artifact;
use crate::naming::Names;

mod artifacts;
mod key;
mod roles;
mod secrets;
#[cfg(test)]
mod tests;

// The public surface deploy will use; until it lands, parts of it are unused outside tests.
#[allow(unused_imports)]
pub use artifacts::{
    ARTIFACT_RETENTION_DAYS, artifact_key, artifacts_bucket, artifacts_bucket_name,
    collect_garbage, ensure_artifacts, ensure_bucket,
};
#[allow(unused_imports)]
pub use key::{KeyInfo, ensure_key, find_environment_keys, key_policy, retire_key};
pub use roles::{delete_roles, ensure_role_identities, ensure_roles, policy_inputs};
pub use secrets::{Credentials, SecretDeletion, SecretsInfo, delete_secrets, ensure_secrets};

/// Tag keys put on every taggable resource of an environment. Teardown and `prune` find
/// resources by these, never by guessing names.
pub const TAG_ENV: &str = "sfstack:env";
pub const TAG_BRANCH: &str = "sfstack:branch";
pub const TAG_COMMIT: &str = "sfstack:commit";
pub const TAG_CREATED_AT: &str = "sfstack:created-at";
pub const TAG_EXPIRES_AT: &str = "sfstack:expires-at";

/// The tags of an environment's resources.
///
/// `created_at` is only used for a resource that does not carry the tag yet: an existing
/// resource keeps the creation time it was tagged with, so callers may pass "now" on every
/// deploy. The others (branch, commit, expiry) are updated to the given values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tags {
    pub env: String,
    /// The raw git branch name (sanitized to the characters AWS allows in tag values).
    pub branch: String,
    pub commit: String,
    /// RFC 3339, e.g. `2025-01-31T12:00:00Z`.
    pub created_at: String,
    /// RFC 3339.
    pub expires_at: String,
}

impl Tags {
    /// The tags as AWS key-value pairs, values made acceptable to every service.
    pub fn pairs(&self) -> BTreeMap<String, String> {
        [
            (TAG_ENV, &self.env),
            (TAG_BRANCH, &self.branch),
            (TAG_COMMIT, &self.commit),
            (TAG_CREATED_AT, &self.created_at),
            (TAG_EXPIRES_AT, &self.expires_at),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_string(), tag_value(value)))
        .collect()
    }

    /// The tags a resource that already carries `existing` should have, or `None` when it has
    /// them all already (so an unchanged environment writes no tags).
    pub(crate) fn missing_from(
        &self,
        existing: &BTreeMap<String, String>,
    ) -> Option<BTreeMap<String, String>> {
        let mut desired = self.pairs();
        if let Some(created_at) = existing.get(TAG_CREATED_AT) {
            desired.insert(TAG_CREATED_AT.to_string(), created_at.clone());
        }
        let unchanged = desired
            .iter()
            .all(|(key, value)| existing.get(key) == Some(value));
        (!unchanged).then_some(desired)
    }
}

/// KMS, IAM, Secrets Manager and S3 all accept letters, digits, spaces and `_.:/=+-@` in a tag
/// value of at most 256 characters; a branch name may hold anything else, which becomes `_`.
pub(crate) fn tag_value(raw: &str) -> String {
    raw.chars()
        .map(|character| {
            if character.is_alphanumeric() || character == ' ' || "_.:/=+-@".contains(character) {
                character
            } else {
                '_'
            }
        })
        .take(256)
        .collect()
}

tokio::task_local! {
    static CHANGES: std::cell::RefCell<Vec<String>>;
}

/// Records that an ensure step changed something (tag bookkeeping excluded). Outside
/// [`recording_changes`] it does nothing.
pub(crate) fn changed(what: String) {
    let _ = CHANGES.try_with(|changes| changes.borrow_mut().push(what));
}

/// Runs `future`, returning its output and what it changed (see [`changed`]).
pub async fn recording_changes<F: Future>(future: F) -> (F::Output, Vec<String>) {
    CHANGES
        .scope(std::cell::RefCell::new(Vec::new()), async {
            let output = future.await;
            (output, CHANGES.with(|changes| changes.take()))
        })
        .await
}

/// The AWS partition of a region (`aws`, `aws-cn` or `aws-us-gov`), for ARNs built by hand.
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The clients of the four services this module uses.
#[derive(Debug, Clone)]
pub struct Clients {
    pub kms: aws_sdk_kms::Client,
    pub iam: aws_sdk_iam::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub s3: aws_sdk_s3::Client,
}

impl Clients {
    /// `force_path_style` must be `true` for an endpoint like `http://127.0.0.1:PORT` (the local
    /// target), where bucket names cannot be host names; real S3 uses virtual-hosted style.
    ///
    /// `bucket_owner`: the account every S3 call expects to own the bucket it names
    /// (`ExpectedBucketOwner`, see [`ExpectedBucketOwner`]).
    pub fn new(
        config: &aws_config::SdkConfig,
        force_path_style: bool,
        bucket_owner: Option<&str>,
    ) -> Self {
        let mut s3_config =
            aws_sdk_s3::config::Builder::from(config).force_path_style(force_path_style);
        if let Some(owner) = bucket_owner {
            s3_config = s3_config.interceptor(ExpectedBucketOwner(owner.to_string()));
        }
        let s3_config = s3_config.build();
        Self {
            kms: aws_sdk_kms::Client::new(config),
            iam: aws_sdk_iam::Client::new(config),
            secrets: aws_sdk_secretsmanager::Client::new(config),
            s3: aws_sdk_s3::Client::from_conf(s3_config),
        }
    }
}

/// S3 bucket names are global: a bucket of our name may belong to another account, whose
/// policy could let us write our zips to it, and let it swap them. S3's `ExpectedBucketOwner`
/// (the `x-amz-expected-bucket-owner` header; S3 User Guide, "Verifying bucket ownership with
/// bucket owner condition") makes S3 refuse, with 403, any call on a bucket another account
/// owns. This interceptor puts it on every S3 call sfstack makes, but the two that name no
/// existing bucket (`CreateBucket`, `ListBuckets`), so no call can forget it.
#[derive(Debug)]
struct ExpectedBucketOwner(String);

impl aws_sdk_s3::config::Intercept for ExpectedBucketOwner {
    fn name(&self) -> &'static str {
        "ExpectedBucketOwner"
    }

    fn modify_before_signing(
        &self,
        context: &mut aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextMut<'_>,
        _components: &aws_sdk_s3::config::RuntimeComponents,
        cfg: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        let operation = cfg
            .load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
            .map(|metadata| metadata.name().to_string())
            .unwrap_or_default();
        if !matches!(operation.as_str(), "CreateBucket" | "ListBuckets") {
            context
                .request_mut()
                .headers_mut()
                .insert("x-amz-expected-bucket-owner", self.0.clone());
        }
        Ok(())
    }
}

/// Everything [`ensure_environment`] made sure of: ARNs and keys only, never a secret value.
#[derive(Debug, Clone, Serialize)]
pub struct Infra {
    pub key: KeyInfo,
    pub secrets: SecretsInfo,
    /// Function crate name → role ARN.
    pub role_arns: BTreeMap<&'static str, String>,
    pub artifacts_bucket: String,
    /// Function crate name → S3 key of its zip.
    pub artifact_keys: BTreeMap<&'static str, String>,
}

/// Deploy steps 2–5 for one environment, in the order explained in the module documentation.
#[allow(clippy::too_many_arguments)] // One call site (deploy) and tests; a struct adds nothing.
pub async fn ensure_environment(
    clients: &Clients,
    names: &Names,
    tags: &Tags,
    root: &Path,
    account_id: &str,
    region: &str,
    credentials: Credentials<'_>,
    keeps_refresh_token: bool,
    vpc: Option<&crate::config::Vpc>,
    artifacts: &[Artifact],
    artifacts_bucket: &str,
) -> anyhow::Result<Infra> {
    ensure_role_identities(&clients.iam, names, tags).await?;
    let key = ensure_key(&clients.kms, names, tags, account_id).await?;
    let secrets = ensure_secrets(&clients.secrets, names, &key.key_arn, tags, credentials).await?;
    let inputs = policy_inputs(
        names,
        region,
        account_id,
        &key,
        &secrets,
        keeps_refresh_token,
        vpc,
    );
    let role_arns = ensure_roles(&clients.iam, names, tags, root, &inputs).await?;
    let artifact_keys = ensure_artifacts(&clients.s3, artifacts_bucket, region, artifacts).await?;
    Ok(Infra {
        key,
        secrets,
        role_arns,
        artifacts_bucket: artifacts_bucket.to_string(),
        artifact_keys,
    })
}

/// What a teardown removed, each entry naming one resource. Empty when there was nothing left.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Removed {
    pub roles: Vec<String>,
    pub secrets: Vec<String>,
    /// The alias and the key(s) whose deletion was scheduled.
    pub key: Vec<String>,
}

impl Removed {
    pub fn is_empty(&self) -> bool {
        self.roles.is_empty() && self.secrets.is_empty() && self.key.is_empty()
    }
}

/// Tears down what the ensure steps created. Every part is attempted even when another fails,
/// so one stuck resource does not leave the others billing; the failures are reported together.
pub async fn teardown_environment(
    clients: &Clients,
    names: &Names,
    secret_deletion: SecretDeletion,
) -> anyhow::Result<Removed> {
    let secrets = delete_secrets(&clients.secrets, names, secret_deletion).await;
    let roles = delete_roles(&clients.iam, names).await;
    let key = retire_key(&clients.kms, names).await;
    let mut failures = Vec::new();
    let mut removed = Removed::default();
    match secrets {
        Ok(list) => removed.secrets = list,
        Err(error) => failures.push(format!("{error:#}")),
    }
    match roles {
        Ok(list) => removed.roles = list,
        Err(error) => failures.push(format!("{error:#}")),
    }
    match key {
        Ok(list) => removed.key = list,
        Err(error) => failures.push(format!("{error:#}")),
    }
    if failures.is_empty() {
        Ok(removed)
    } else {
        anyhow::bail!(
            "tearing down environment {} failed: {}\nhint: fix the cause and run the teardown again; it only removes what is left",
            names.environment,
            failures.join("; ")
        )
    }
}

/// How long to keep retrying while a new IAM role propagates. Real AWS takes 10–30 s; moto none.
pub const ROLE_PROPAGATION_BUDGET: Duration = Duration::from_secs(60);

/// Whether an error is AWS saying a just-created role is not usable yet: Lambda's "cannot be
/// assumed by Lambda" and KMS's "invalid principals" in a key policy naming a new role.
pub fn is_role_propagation_error(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        let text = cause.to_string();
        text.contains("cannot be assumed by Lambda") || text.contains("invalid principals")
    })
}

/// Runs `operation` until it succeeds, retrying with backoff (1 s doubling to 8 s) for at most
/// [`ROLE_PROPAGATION_BUDGET`] while it fails with a role propagation error
/// ([`is_role_propagation_error`]). Any other error is returned at once. On moto the first
/// attempt succeeds, so this costs nothing locally. `what` names the operation in the message
/// printed to stderr while waiting.
pub async fn retry_while_role_propagates<T, F, Fut>(what: &str, operation: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    retry_with_backoff(
        what,
        ROLE_PROPAGATION_BUDGET,
        Duration::from_secs(1),
        operation,
    )
    .await
}

async fn retry_with_backoff<T, F, Fut>(
    what: &str,
    budget: Duration,
    first_delay: Duration,
    mut operation: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let started = std::time::Instant::now();
    let mut delay = first_delay;
    loop {
        match operation().await {
            Ok(value) => return Ok(value),
            Err(error) if is_role_propagation_error(&error) && started.elapsed() < budget => {
                note!("waiting for IAM roles to propagate before {what}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(first_delay * 8);
            }
            Err(error) if is_role_propagation_error(&error) => {
                return Err(error).with_context(|| {
                    format!(
                        "{what}: IAM roles still not usable after {} s\nhint: run the deploy again; IAM sometimes takes longer",
                        budget.as_secs()
                    )
                });
            }
            Err(error) => return Err(error),
        }
    }
}

/// IAM returns policy documents URL-encoded (RFC 3986); moto returns them as is. Decodes `%XX`
/// escapes when the text is not JSON already.
pub(crate) fn decode_policy_document(text: &str) -> Option<serde_json::Value> {
    serde_json::from_str(text).ok().or_else(|| {
        serde_json::from_str(
            &percent_encoding::percent_decode_str(text)
                .decode_utf8()
                .ok()?,
        )
        .ok()
    })
}
