//! The environment's KMS key: found by alias (or by tag when the alias is missing), created,
//! revived from a scheduled deletion, converged, and retired on teardown.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use aws_sdk_kms::Client;
use aws_sdk_kms::types::{KeyManagerType, KeyMetadata, KeySpec, KeyState, KeyUsageType, Tag};
use serde::Serialize;
use serde_json::json;

use super::{TAG_ENV, Tags, partition, retry_while_role_propagates};
use crate::aws_error::AwsContext;
use crate::naming::Names;

/// The environment's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    pub key_id: String,
    pub key_arn: String,
    pub alias: String,
}

/// KMS waits at least this long before deleting a key; the shortest window costs least.
const DELETION_WINDOW_DAYS: i32 = 7;

/// The statement that lets CloudWatch Logs encrypt the functions' log groups.
pub const LOGS_STATEMENT: &str = "CloudWatchLogsEncryptsTheFunctionsLogGroups";

/// The key policy: the account's IAM policies decide who may use the key (the account root
/// statement delegates to them, as AWS's default key policy does; without it the key would be
/// unmanageable, and KMS refuses such a policy). The key policy grants no role by itself, so
/// each role's own policy is the one place its use of the key is granted, only through Secrets
/// Manager and DynamoDB (`kms:ViaService`); the local cloud's policy mutation test proves each
/// of those statements is needed.
///
/// A service has no IAM policy, so the one service that uses the key on its own behalf,
/// CloudWatch Logs, is named here: it may use the key only for this environment's four log
/// groups (`kms:EncryptionContext:aws:logs:arn`, as the CloudWatch Logs User Guide shows), with
/// the actions that guide lists. The local cloud fails a stack change that encrypts a log
/// group with a key Logs may not use, which proves this statement is needed.
pub fn key_policy(region: &str, account_id: &str, names: &Names) -> serde_json::Value {
    let partition = partition(region);
    let service_suffix = if partition == "aws-cn" {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    let log_groups: Vec<String> = crate::naming::FUNCTIONS
        .iter()
        .map(|function| {
            format!(
                "arn:{partition}:logs:{region}:{account_id}:log-group:{}",
                names.log_group(function)
            )
        })
        .collect();
    json!({"Version": "2012-10-17", "Statement": [
        {
            "Sid": "AccountAdministers",
            "Effect": "Allow",
            "Principal": {"AWS": format!("arn:{partition}:iam::{account_id}:root")},
            "Action": "kms:*",
            "Resource": "*",
        },
        {
            "Sid": LOGS_STATEMENT,
            "Effect": "Allow",
            "Principal": {"Service": format!("logs.{region}.{service_suffix}")},
            "Action": [
                "kms:Encrypt*",
                "kms:Decrypt*",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:Describe*",
            ],
            "Resource": "*",
            "Condition": {"ArnEquals": {"kms:EncryptionContext:aws:logs:arn": log_groups}},
        },
    ]})
}

fn kms_tags(tags: &BTreeMap<String, String>) -> anyhow::Result<Vec<Tag>> {
    tags.iter()
        .map(|(key, value)| {
            Tag::builder()
                .tag_key(key)
                .tag_value(value)
                .build()
                .context("building a KMS tag")
        })
        .collect()
}

async fn describe(client: &Client, key_id: &str) -> anyhow::Result<Option<KeyMetadata>> {
    match client.describe_key().key_id(key_id).send().await {
        Ok(output) => Ok(output.key_metadata),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|error| error.is_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(error) => Err(error).aws_context(|| format!("describing KMS key {key_id}")),
    }
}

/// Whether two references name the same key: a key id and a key ARN name it by its id
/// (`DescribeSecret`'s `KmsKeyId` comes back in either form); an alias is never taken for a key.
pub fn same_key(a: &str, b: &str) -> bool {
    let id = |reference: &str| -> Option<String> {
        if reference.starts_with("alias/") || reference.contains(":alias/") {
            return None;
        }
        Some(
            reference
                .rsplit_once(":key/")
                .map_or(reference, |(_, id)| id)
                .to_string(),
        )
    };
    matches!((id(a), id(b)), (Some(a), Some(b)) if a == b)
}

/// A key's tags; `None` for a key we may not read (another team's, or one gone meanwhile).
/// Any other error (throttling that outlasted the SDK's retries, an outage) is an error: a key
/// whose tags could not be read is not known to be someone else's.
async fn tags_of(
    client: &Client,
    key_id: &str,
) -> anyhow::Result<Option<BTreeMap<String, String>>> {
    match client.list_resource_tags().key_id(key_id).send().await {
        Ok(output) => Ok(Some(
            output
                .tags()
                .iter()
                .map(|tag| (tag.tag_key().to_string(), tag.tag_value().to_string()))
                .collect(),
        )),
        Err(error)
            if error.as_service_error().is_some_and(|service| {
                service.is_not_found_exception()
                    || aws_sdk_kms::error::ProvideErrorMetadata::code(service)
                        == Some("AccessDeniedException")
            }) =>
        {
            Ok(None)
        }
        Err(error) => Err(error).aws_context(|| {
            format!("listing the tags of KMS key {key_id}\nhint: if AWS is throttling, run the command again")
        }),
    }
}

/// Customer-managed keys tagged with this environment, in any state but deleted, newest first.
/// Finds a key whose alias was never created (an interrupted deploy) or already deleted (a
/// teardown). Lists every key of the account and region, so it is only used when the alias
/// does not lead to the key.
pub async fn find_environment_keys(
    client: &Client,
    environment: &str,
) -> anyhow::Result<Vec<KeyMetadata>> {
    let entries = client
        .list_keys()
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .context("listing the KMS keys of the account")?;
    let mut found = Vec::new();
    for entry in entries {
        let Some(key_id) = entry.key_id() else {
            continue;
        };
        // Keys we may not read the tags of (another team's) are not ours.
        let Some(tags) = tags_of(client, key_id).await? else {
            continue;
        };
        if tags.get(TAG_ENV).map(String::as_str) != Some(environment) {
            continue;
        }
        if let Some(metadata) = describe(client, key_id).await?
            && metadata.key_manager() == Some(&KeyManagerType::Customer)
            && matches!(
                metadata.key_state(),
                Some(KeyState::Enabled | KeyState::Disabled | KeyState::PendingDeletion)
            )
        {
            found.push(metadata);
        }
    }
    found.sort_by(|a, b| {
        let rank = |key: &KeyMetadata| key.key_state() != Some(&KeyState::Enabled);
        rank(a)
            .cmp(&rank(b))
            .then_with(|| b.creation_date().cmp(&a.creation_date()))
    });
    Ok(found)
}

/// Makes sure the environment's key exists, is enabled, rotates yearly, carries the tags and
/// the current [`key_policy`], and is reachable through the alias.
///
/// A key scheduled for deletion (an environment re-created within 7 days of its teardown,
/// found through the alias or through its tags) is revived with CancelKeyDeletion + EnableKey
/// rather than replaced. The region is the client's.
pub async fn ensure_key(
    client: &Client,
    names: &Names,
    tags: &Tags,
    account_id: &str,
) -> anyhow::Result<KeyInfo> {
    let alias = names.key_alias();
    let region = client
        .config()
        .region()
        .map(|region| region.to_string())
        .context("the KMS client has no region\nhint: set AWS_REGION or a profile region")?;
    let policy = key_policy(&region, account_id, names);
    let policy_text = serde_json::to_string(&policy).context("serializing the key policy")?;

    let by_alias = describe(client, &alias).await?;
    let alias_exists = by_alias.is_some();
    let found = match by_alias {
        Some(metadata) => Some(metadata),
        None => find_environment_keys(client, &names.environment)
            .await?
            .into_iter()
            .next(),
    };
    let (metadata, created) = match found {
        Some(metadata) => (metadata, false),
        None => {
            let tag_list = kms_tags(&tags.pairs())?;
            let output = retry_while_role_propagates("creating the KMS key", || async {
                client
                    .create_key()
                    .description(format!("sfstack {}: secrets and tokens", names.environment))
                    .key_usage(KeyUsageType::EncryptDecrypt)
                    .key_spec(KeySpec::SymmetricDefault)
                    .policy(&policy_text)
                    .set_tags(Some(tag_list.clone()))
                    .send()
                    .await
                    .aws_context(|| format!("creating KMS key {alias}"))
            })
            .await?;
            super::changed(format!("created KMS key {alias}"));
            let metadata = output
                .key_metadata
                .with_context(|| format!("creating KMS key {alias}: no key metadata returned"))?;
            (metadata, true)
        }
    };
    let key_id = metadata.key_id().to_string();
    let key_arn = metadata
        .arn()
        .with_context(|| format!("KMS key {key_id} has no ARN"))?
        .to_string();

    let mut state = metadata.key_state().cloned();
    if state == Some(KeyState::PendingDeletion) {
        client
            .cancel_key_deletion()
            .key_id(&key_id)
            .send()
            .await
            .aws_context(|| format!("cancelling the scheduled deletion of KMS key {key_arn}"))?;
        super::changed(format!("cancelled the deletion of KMS key {key_arn}"));
        // A cancelled key is disabled.
        state = Some(KeyState::Disabled);
    }
    match state {
        Some(KeyState::Enabled) => {}
        Some(KeyState::Disabled) => {
            client
                .enable_key()
                .key_id(&key_id)
                .send()
                .await
                .aws_context(|| format!("enabling KMS key {key_arn}"))?;
        }
        other => bail!(
            "KMS key {key_arn} ({alias}) is in state {other:?}, which deploy cannot use\nhint: inspect it with `aws kms describe-key --key-id {key_id}`"
        ),
    }

    if !created {
        converge_policy(client, &key_id, &key_arn, &policy, &policy_text).await?;
        let existing = tags_of(client, &key_id).await?.with_context(|| {
            format!(
                "KMS key {key_arn} ({alias}) cannot be read: its tags are refused or it is gone"
            )
        })?;
        if let Some(desired) = tags.missing_from(&existing) {
            client
                .tag_resource()
                .key_id(&key_id)
                .set_tags(Some(kms_tags(&desired)?))
                .send()
                .await
                .aws_context(|| format!("tagging KMS key {key_arn}"))?;
        }
    }

    let rotation = client
        .get_key_rotation_status()
        .key_id(&key_id)
        .send()
        .await
        .aws_context(|| format!("reading the rotation status of KMS key {key_arn}"))?;
    if !rotation.key_rotation_enabled() {
        client
            .enable_key_rotation()
            .key_id(&key_id)
            .send()
            .await
            .aws_context(|| format!("enabling rotation of KMS key {key_arn}"))?;
        super::changed(format!("enabled rotation of KMS key {key_arn}"));
    }

    if !alias_exists {
        client
            .create_alias()
            .alias_name(&alias)
            .target_key_id(&key_id)
            .send()
            .await
            .aws_context(|| format!("creating KMS alias {alias} for key {key_arn}"))?;
        super::changed(format!("created KMS alias {alias}"));
    }
    Ok(KeyInfo {
        key_id,
        key_arn,
        alias,
    })
}

async fn converge_policy(
    client: &Client,
    key_id: &str,
    key_arn: &str,
    policy: &serde_json::Value,
    policy_text: &str,
) -> anyhow::Result<()> {
    let current = client
        .get_key_policy()
        .key_id(key_id)
        .policy_name("default")
        .send()
        .await
        .aws_context(|| format!("reading the policy of KMS key {key_arn}"))?;
    let current: Option<serde_json::Value> = current
        .policy()
        .and_then(|text| serde_json::from_str(text).ok());
    if current.as_ref() == Some(policy) {
        return Ok(());
    }
    retry_while_role_propagates("updating the KMS key policy", || async {
        client
            .put_key_policy()
            .key_id(key_id)
            .policy_name("default")
            .policy(policy_text)
            .send()
            .await
            .aws_context(|| format!("updating the policy of KMS key {key_arn}"))
    })
    .await?;
    super::changed(format!("updated the policy of KMS key {key_arn}"));
    Ok(())
}

/// Retires the environment's key: schedules its deletion (7 days, not waited for), then
/// deletes the alias, then schedules any other key still tagged with the environment.
///
/// Scheduling before deleting the alias means an interrupted teardown leaves the alias
/// pointing at a key pending deletion, which the next teardown (or deploy) recognises; the
/// tag sweep catches a key whose alias is already gone. Returns what it removed: the alias
/// and each key scheduled; empty when nothing was left.
pub async fn retire_key(client: &Client, names: &Names) -> anyhow::Result<Vec<String>> {
    let alias = names.key_alias();
    let mut removed = Vec::new();
    if let Some(metadata) = describe(client, &alias).await? {
        schedule_deletion(client, &metadata, &mut removed).await?;
    }
    match client.delete_alias().alias_name(&alias).send().await {
        Ok(_) => removed.push(format!("KMS alias {alias}")),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|error| error.is_not_found_exception()) => {}
        Err(error) => {
            return Err(error).aws_context(|| format!("deleting KMS alias {alias}"));
        }
    }
    for metadata in find_environment_keys(client, &names.environment).await? {
        schedule_deletion(client, &metadata, &mut removed).await?;
    }
    Ok(removed)
}

async fn schedule_deletion(
    client: &Client,
    metadata: &KeyMetadata,
    removed: &mut Vec<String>,
) -> anyhow::Result<()> {
    if metadata.key_state() == Some(&KeyState::PendingDeletion) {
        return Ok(());
    }
    let key = metadata.arn().unwrap_or(metadata.key_id());
    let output = client
        .schedule_key_deletion()
        .key_id(metadata.key_id())
        .pending_window_in_days(DELETION_WINDOW_DAYS)
        .send()
        .await
        .aws_context(|| format!("scheduling the deletion of KMS key {key}"))?;
    let when = output
        .deletion_date()
        .map(|date| format!(" on {date}"))
        .unwrap_or_default();
    removed.push(format!("KMS key {key} (deletion scheduled{when})"));
    Ok(())
}
