//! The Lambda zips in S3: one bucket per account and region shared by every environment, each
//! zip stored once under its content hash, so unchanged code uploads nothing.
//!
//! # Retention
//!
//! A zip a stack references must outlive the stack: a failed update rolls the functions back
//! to their previous `S3Key`, and a rollback that cannot find it ends `UPDATE_ROLLBACK_FAILED`.
//! An age-based lifecycle rule cannot know what a stack references, so the bucket has none for
//! objects (only for abandoned multipart uploads). Instead `prune` deletes the zips that no
//! stack references and that are older than [`ARTIFACT_RETENTION_DAYS`]
//! ([`collect_garbage`]); a deploy that reuses a zip older than [`REFRESH_AFTER_DAYS`]
//! uploads it again, which restarts its age, so a collection running meanwhile cannot take it.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, bail};
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketLocationConstraint,
    CreateBucketConfiguration, ExpirationStatus, LifecycleRule, LifecycleRuleFilter,
    PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
};
use sha2::{Digest, Sha256};

use crate::aws_error::AwsContext;
use crate::build::Artifact;

/// Zips that no stack references are deleted by `prune` once they are this old.
pub const ARTIFACT_RETENTION_DAYS: i64 = 30;
/// A deploy that reuses a zip this old uploads it again (see the module's documentation).
pub const REFRESH_AFTER_DAYS: i64 = 7;
const LIFECYCLE_RULE_ID: &str = "sfstack-abort-incomplete-uploads";

/// `sfstack-artifacts-<account>-<region>`: at most 45 characters, within S3's 63.
pub fn artifacts_bucket_name(account_id: &str, region: &str) -> String {
    format!("sfstack-artifacts-{account_id}-{region}")
}

/// The artifacts bucket of these settings: `artifacts.bucket`, else the default name.
pub fn artifacts_bucket(
    settings: &crate::config::Settings,
    account_id: &str,
    region: &str,
) -> String {
    settings
        .artifacts
        .bucket
        .clone()
        .unwrap_or_else(|| artifacts_bucket_name(account_id, region))
}

/// `<function>/<sha256>.zip`: the zip's content address.
pub fn artifact_key(artifact: &Artifact) -> String {
    format!("{}/{}.zip", artifact.function, artifact.sha256)
}

/// Makes sure the shared bucket exists and is private, encrypted and self-cleaning, then
/// uploads each zip not stored yet. Returns function → S3 key.
pub async fn ensure_artifacts(
    client: &Client,
    bucket: &str,
    region: &str,
    artifacts: &[Artifact],
) -> anyhow::Result<BTreeMap<&'static str, String>> {
    ensure_bucket(client, bucket, region).await?;
    let mut keys = BTreeMap::new();
    for artifact in artifacts {
        let key = artifact_key(artifact);
        let fresh_since = chrono::Utc::now().timestamp() - REFRESH_AFTER_DAYS * 86_400;
        match stored_at(client, bucket, &key).await? {
            Some(at) if at > fresh_since => {}
            _ => upload(client, bucket, &key, artifact).await?,
        }
        keys.insert(artifact.function, key);
    }
    Ok(keys)
}

/// Makes sure the shared bucket exists and is private, encrypted, and cleans up abandoned
/// uploads.
pub async fn ensure_bucket(client: &Client, bucket: &str, region: &str) -> anyhow::Result<()> {
    match client.head_bucket().bucket(bucket).send().await {
        Ok(_) => {}
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|error| error.is_not_found()) =>
        {
            let mut request = client.create_bucket().bucket(bucket);
            // us-east-1 is the default location and refuses to be named as a constraint.
            if region != "us-east-1" {
                request = request.create_bucket_configuration(
                    CreateBucketConfiguration::builder()
                        .location_constraint(BucketLocationConstraint::from(region))
                        .build(),
                );
            }
            match request.send().await {
                Ok(_) => {}
                // A concurrent deploy created it first.
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|error| error.is_bucket_already_owned_by_you()) => {}
                Err(error) => {
                    return Err(error).aws_context(|| {
                        format!("creating S3 bucket {bucket}\nhint: bucket names are global; if another account holds it, delete or rename that bucket")
                    });
                }
            }
        }
        Err(error)
            if error
                .raw_response()
                .is_some_and(|raw| raw.status().as_u16() == 403) =>
        {
            bail!(
                "S3 bucket {bucket} belongs to another account, or this account may not use it (S3 answered 403 to a call that expects this account to own it)\nhint: bucket names are global: set artifacts.bucket in sfstack.toml (or SFSTACK_ARTIFACTS_BUCKET) to a name of your own; if the bucket is yours, check your credentials' s3 permissions"
            );
        }
        Err(error) => return Err(error).aws_context(|| format!("reading S3 bucket {bucket}")),
    }
    // These three replace the whole configuration with the same document each time: cheap,
    // and they finish a bucket whose creation was interrupted.
    client
        .put_public_access_block()
        .bucket(bucket)
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(true)
                .block_public_policy(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .aws_context(|| format!("blocking public access to S3 bucket {bucket}"))?;
    let encryption = ServerSideEncryptionConfiguration::builder()
        .rules(
            ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(
                    ServerSideEncryptionByDefault::builder()
                        .sse_algorithm(ServerSideEncryption::Aes256)
                        .build()
                        .context("building the S3 encryption rule")?,
                )
                .build(),
        )
        .build()
        .context("building the S3 encryption configuration")?;
    client
        .put_bucket_encryption()
        .bucket(bucket)
        .server_side_encryption_configuration(encryption)
        .send()
        .await
        .aws_context(|| format!("setting the default encryption of S3 bucket {bucket}"))?;
    let lifecycle = BucketLifecycleConfiguration::builder()
        .rules(
            LifecycleRule::builder()
                .id(LIFECYCLE_RULE_ID)
                .status(ExpirationStatus::Enabled)
                // No expiration: a stack's zips must outlive it (see the module's
                // documentation); `prune` deletes the ones no stack references.
                .filter(LifecycleRuleFilter::builder().prefix("").build())
                .abort_incomplete_multipart_upload(
                    AbortIncompleteMultipartUpload::builder()
                        .days_after_initiation(1)
                        .build(),
                )
                .build()
                .context("building the S3 lifecycle rule")?,
        )
        .build()
        .context("building the S3 lifecycle configuration")?;
    client
        .put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .lifecycle_configuration(lifecycle)
        .send()
        .await
        .aws_context(|| format!("setting the lifecycle rule of S3 bucket {bucket}"))?;
    Ok(())
}

/// When the object was stored (seconds since the epoch), if it exists.
async fn stored_at(client: &Client, bucket: &str, key: &str) -> anyhow::Result<Option<i64>> {
    match client.head_object().bucket(bucket).key(key).send().await {
        Ok(head) => Ok(Some(head.last_modified().map_or(0, |at| at.secs()))),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|error| error.is_not_found()) =>
        {
            Ok(None)
        }
        Err(error) => Err(error).aws_context(|| format!("looking for s3://{bucket}/{key}")),
    }
}

async fn upload(
    client: &Client,
    bucket: &str,
    key: &str,
    artifact: &Artifact,
) -> anyhow::Result<()> {
    let bytes = tokio::fs::read(&artifact.zip)
        .await
        .with_context(|| format!("reading {}", artifact.zip.display()))?;
    // The key is the content's address: refuse to store other content under it.
    let digest: String = Sha256::digest(&bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    if digest != artifact.sha256 {
        bail!(
            "{} changed since it was built (its SHA-256 is {digest}, the build recorded {})\nhint: run the deploy again so it rebuilds",
            artifact.zip.display(),
            artifact.sha256
        );
    }
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type("application/zip")
        .body(ByteStream::from(bytes))
        .send()
        .await
        .aws_context(|| {
            format!(
                "uploading {} to s3://{bucket}/{key}",
                artifact.zip.display()
            )
        })?;
    super::changed(format!("uploaded s3://{bucket}/{key}"));
    Ok(())
}

/// The objects a collection deletes: not referenced, and stored before `cutoff` (seconds since
/// the epoch).
pub fn garbage<'a>(
    objects: &'a [(String, i64)],
    referenced: &BTreeSet<String>,
    cutoff: i64,
) -> Vec<&'a str> {
    objects
        .iter()
        .filter(|(key, at)| *at < cutoff && !referenced.contains(key))
        .map(|(key, _)| key.as_str())
        .collect()
}

/// Deletes the zips of `bucket` that no stack references and that are older than
/// [`ARTIFACT_RETENTION_DAYS`]; returns their keys. Skipped, and says so, while any stack that
/// may reference the bucket is changing or stuck: its previous template, which a rollback
/// needs, cannot be read.
pub async fn collect_garbage(
    s3: &Client,
    cloudformation: &aws_sdk_cloudformation::Client,
    bucket: &str,
    dry_run: bool,
) -> anyhow::Result<Vec<String>> {
    match s3.head_bucket().bucket(bucket).send().await {
        Ok(_) => {}
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|error| error.is_not_found()) =>
        {
            return Ok(Vec::new());
        }
        Err(error) => return Err(error).aws_context(|| format!("reading S3 bucket {bucket}")),
    }
    let mut referenced = BTreeSet::new();
    let mut stacks = cloudformation.describe_stacks().into_paginator().send();
    while let Some(page) = stacks.next().await {
        let page = page.aws_context(|| "listing CloudFormation stacks")?;
        for stack in page.stacks() {
            let status = stack
                .stack_status()
                .map(|status| status.as_str())
                .unwrap_or_default();
            let name = stack.stack_name().unwrap_or_default();
            if status == "DELETE_COMPLETE" {
                continue;
            }
            if status.ends_with("_IN_PROGRESS") || status == "UPDATE_ROLLBACK_FAILED" {
                note!(
                    "artifacts: stack {name} is {status}; leaving the zips alone until it settles"
                );
                return Ok(Vec::new());
            }
            let template = cloudformation
                .get_template()
                .stack_name(stack.stack_id().unwrap_or(name))
                .send()
                .await
                .aws_context(|| format!("reading the template of stack {name}"))?;
            referenced.extend(code_keys(
                template.template_body().unwrap_or_default(),
                bucket,
            ));
        }
    }
    let mut objects = Vec::new();
    let mut listing = s3.list_objects_v2().bucket(bucket).into_paginator().send();
    while let Some(page) = listing.next().await {
        let page = page.aws_context(|| format!("listing s3://{bucket}"))?;
        // Only zips: the bucket also holds the environments' deploy locks (`locks/`).
        objects.extend(
            page.contents()
                .iter()
                .filter(|object| object.key().is_some_and(|key| key.ends_with(".zip")))
                .filter_map(|object| {
                    Some((
                        object.key()?.to_string(),
                        object.last_modified().map_or(0, |at| at.secs()),
                    ))
                }),
        );
    }
    let cutoff = chrono::Utc::now().timestamp() - ARTIFACT_RETENTION_DAYS * 86_400;
    let doomed: Vec<String> = garbage(&objects, &referenced, cutoff)
        .into_iter()
        .map(str::to_string)
        .collect();
    if !dry_run {
        for key in &doomed {
            s3.delete_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .aws_context(|| format!("deleting s3://{bucket}/{key}"))?;
        }
    }
    Ok(doomed)
}

/// The `S3Key` of every Lambda function in a template (YAML or JSON) whose code is in `bucket`.
fn code_keys(template: &str, bucket: &str) -> Vec<String> {
    let Ok(template) = serde_yaml::from_str::<serde_yaml::Value>(template) else {
        return Vec::new();
    };
    let Some(resources) = template.get("Resources").and_then(|r| r.as_mapping()) else {
        return Vec::new();
    };
    resources
        .values()
        .filter(|resource| {
            resource.get("Type").and_then(serde_yaml::Value::as_str)
                == Some("AWS::Lambda::Function")
        })
        .filter_map(|resource| {
            let code = resource.get("Properties")?.get("Code")?;
            (code.get("S3Bucket")?.as_str()? == bucket)
                .then(|| code.get("S3Key")?.as_str().map(str::to_string))?
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_names_the_keys_of_its_functions_in_the_bucket() {
        let template = "Resources:\n  A:\n    Type: AWS::Lambda::Function\n    Properties:\n      Code:\n        S3Bucket: b\n        S3Key: a/1.zip\n  B:\n    Type: AWS::Lambda::Function\n    Properties:\n      Code:\n        S3Bucket: other\n        S3Key: b/2.zip\n";
        assert_eq!(code_keys(template, "b"), ["a/1.zip"]);
        assert!(code_keys("not: [yaml", "b").is_empty());
    }

    #[test]
    fn only_old_zips_no_stack_references_are_garbage() {
        let objects = [
            ("a/old-unused.zip".to_string(), 100),
            ("a/old-used.zip".to_string(), 100),
            ("a/new-unused.zip".to_string(), 900),
        ];
        let referenced = BTreeSet::from(["a/old-used.zip".to_string()]);
        assert_eq!(garbage(&objects, &referenced, 500), ["a/old-unused.zip"]);
    }
}
