//! The Lambda zips in S3: one bucket per account and region shared by every environment, each
//! zip stored once under its content hash, so unchanged code uploads nothing.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketLocationConstraint,
    CreateBucketConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleFilter, PublicAccessBlockConfiguration, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
};
use sha2::{Digest, Sha256};

use crate::aws_error::AwsContext;
use crate::build::Artifact;

/// Zips older than this are deleted by the bucket's lifecycle rule. Lambda keeps its own copy
/// of a function's code, so this only bounds storage; a deploy re-uploads a zip that expired.
pub const ARTIFACT_RETENTION_DAYS: i32 = 30;
const LIFECYCLE_RULE_ID: &str = "sfstack-expire-artifacts";

/// `sfstack-artifacts-<account>-<region>`: at most 45 characters, within S3's 63.
pub fn artifacts_bucket_name(account_id: &str, region: &str) -> String {
    format!("sfstack-artifacts-{account_id}-{region}")
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
        if !object_exists(client, bucket, &key).await? {
            upload(client, bucket, &key, artifact).await?;
        }
        keys.insert(artifact.function, key);
    }
    Ok(keys)
}

async fn ensure_bucket(client: &Client, bucket: &str, region: &str) -> anyhow::Result<()> {
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
                "S3 bucket {bucket} exists but this account cannot use it\nhint: bucket names are global; check who owns it, or your credentials' s3 permissions"
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
                // The bucket holds nothing but zips: the rule covers all of it.
                .filter(LifecycleRuleFilter::builder().prefix("").build())
                .expiration(
                    LifecycleExpiration::builder()
                        .days(ARTIFACT_RETENTION_DAYS)
                        .build(),
                )
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

async fn object_exists(client: &Client, bucket: &str, key: &str) -> anyhow::Result<bool> {
    match client.head_object().bucket(bucket).key(key).send().await {
        Ok(_) => Ok(true),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|error| error.is_not_found()) =>
        {
            Ok(false)
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
