//! AWS behaviours moto does not have, which the local cloud reproduces, and the deploy paths
//! they exercise.

use anyhow::Context;

use super::*;

/// Secrets Manager deletes a force-deleted secret asynchronously: for a while its name cannot
/// be reused and the secret cannot be restored. A deploy right after a teardown of the same
/// environment waits for the name and converges, instead of failing or restoring a secret that
/// is being deleted. It also revives the environment's KMS key, which the teardown scheduled
/// for deletion: a key pending deletion, or disabled after its deletion is cancelled, refuses
/// every use (Secrets Manager then fails with `EncryptionFailure` / `DecryptionFailure`).
pub(crate) fn a_deploy_right_after_a_teardown_converges() -> anyhow::Result<()> {
    let mut local = Local::new("recreate");
    let env = "e2e-recreate";
    local.run(&["deploy", "--env", env], &[])?.ok()?;
    local.run(&["teardown", "--env", env], &[])?.ok()?;
    let again = local.run(&["deploy", "--env", env], &[])?.ok()?;
    assert!(
        again
            .stderr
            .contains("waiting for Secrets Manager to finish deleting the old secret"),
        "the deploy met the deletion in progress: {}",
        again.stderr
    );
    let smoke = local.run(&["smoke-test", "--env", env], &[])?;
    assert_eq!(smoke.code, 0, "{}\n{}", smoke.stdout, smoke.stderr);
    local.run(&["teardown", "--env", env], &[])?.ok()?;
    Ok(())
}

/// Throttling is not absence: when listing a key's tags stays throttled longer than the SDK's
/// retries last, the deploy that looks for the environment's key by its tags fails and says
/// so, instead of taking the key for someone else's and creating a second one; run again, it
/// finds the key it made.
pub(crate) async fn throttling_is_not_taken_for_absence() -> anyhow::Result<()> {
    let mut local = Local::new("throttle");
    let env = "e2e-throttle";
    local.run(&["deploy", "--env", env], &[])?.ok()?;
    let sdk = local.sdk().await?;
    let kms = aws_sdk_kms::Client::new(&sdk);
    let alias = format!("alias/sfstack-{env}");
    let key_id = kms
        .describe_key()
        .key_id(&alias)
        .send()
        .await?
        .key_metadata()
        .map(|metadata| metadata.key_id().to_string())
        .context("the environment's key")?;
    // Without its alias, the key is found by its tags.
    kms.delete_alias().alias_name(&alias).send().await?;
    tell_gateway(
        &local,
        "/__sfstack/throttle",
        serde_json::json!({"action": "kms:ListResourceTags", "times": 3}),
    )
    .await?;
    let throttled = local.run(&["deploy", "--env", env], &[])?;
    assert_ne!(throttled.code, 0, "{}", throttled.stderr);
    assert!(
        throttled.stderr.contains("ThrottlingException")
            && throttled.stderr.contains("listing the tags of KMS key"),
        "{}",
        throttled.stderr
    );
    local.run(&["deploy", "--env", env], &[])?.ok()?;
    let now = kms
        .describe_key()
        .key_id(&alias)
        .send()
        .await?
        .key_metadata()
        .map(|metadata| metadata.key_id().to_string())
        .context("the environment's key")?;
    assert_eq!(now, key_id, "the alias leads back to the same key");
    assert_eq!(keys_of(&sdk, env).await?, 1, "one key for the environment");
    local.run(&["teardown", "--env", env], &[])?.ok()?;
    Ok(())
}

/// IAM is eventually consistent: the roles a first deploy makes are not assumable by Lambda
/// for a moment, so CloudFormation fails to create the functions and rolls the new stack back.
/// The deploy says so, deletes the rolled-back stack, waits and creates it again, and the
/// environment works.
pub(crate) fn a_first_deploy_outlasts_iam_propagation() -> anyhow::Result<()> {
    let mut local = Local::new("propagation");
    let env = "e2e-propagation";
    let first = local.run(&["deploy", "--env", env], &[])?.ok()?;
    for expected in [
        "cannot be assumed by Lambda",
        "ROLLBACK_COMPLETE",
        "waiting for IAM roles to propagate before deploying the stack",
    ] {
        assert!(
            first.stderr.contains(expected),
            "{expected}: {}",
            first.stderr
        );
    }
    let smoke = local.run(&["smoke-test", "--env", env], &[])?;
    assert_eq!(smoke.code, 0, "{}\n{}", smoke.stdout, smoke.stderr);
    local.run(&["teardown", "--env", env], &[])?.ok()?;
    Ok(())
}

/// The `S3Key` of each Lambda function in a stack's current template, by logical id.
async fn function_keys(
    sdk: &aws_config::SdkConfig,
    stack: &str,
) -> anyhow::Result<(String, BTreeMap<String, String>)> {
    let template = aws_sdk_cloudformation::Client::new(sdk)
        .get_template()
        .stack_name(stack)
        .send()
        .await?
        .template_body()
        .context("a template")?
        .to_string();
    let parsed: serde_yaml::Value = serde_yaml::from_str(&template)?;
    let keys = parsed["Resources"]
        .as_mapping()
        .context("resources")?
        .iter()
        .filter(|(_, resource)| resource["Type"].as_str() == Some("AWS::Lambda::Function"))
        .filter_map(|(logical, resource)| {
            Some((
                logical.as_str()?.to_string(),
                resource["Properties"]["Code"]["S3Key"]
                    .as_str()?
                    .to_string(),
            ))
        })
        .collect();
    Ok((template, keys))
}

/// S3 lifecycle rules expire objects by age alone, whoever uses them. The zips a live stack
/// was deployed from must stay, or a failed update cannot roll back: a month after a deploy
/// (the local cloud's clock moved ahead, S3's rules applied), every zip the stack names is
/// still in the bucket.
pub(crate) async fn the_zips_a_live_stack_uses_never_expire() -> anyhow::Result<()> {
    let mut local = Local::new("retention");
    let env = "e2e-retention";
    local.run(&["deploy", "--env", env], &[])?.ok()?;
    let sdk = local.sdk().await?;
    let (_, keys) = function_keys(&sdk, &format!("sfstack-{env}")).await?;
    assert_eq!(keys.len(), 4, "{keys:?}");
    let expired = tell_gateway(
        &local,
        "/__sfstack/clock",
        serde_json::json!({"advance_days": 31}),
    )
    .await?;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    let bucket = "sfstack-artifacts-123456789012-us-east-1";
    for key in keys.values() {
        let found = s3.head_object().bucket(bucket).key(key).send().await;
        assert!(
            found.is_ok(),
            "{key} expired while the stack uses it (expired: {expired})"
        );
    }
    local.run(&["teardown", "--env", env], &[])?.ok()?;
    Ok(())
}

/// A failed update rolls the functions back to their previous zips; when one is gone, the
/// rollback fails (UPDATE_ROLLBACK_FAILED) and ContinueUpdateRollback fails again unless it
/// skips that function. The next deploy continues the rollback, skipping what cannot roll
/// back, then updates the stack, and the environment works.
pub(crate) async fn a_rollback_that_cannot_find_its_zip_is_continued_past_it() -> anyhow::Result<()>
{
    let mut local = Local::new("stuck-rollback");
    let env = "e2e-stuck-rollback";
    let stack = format!("sfstack-{env}");
    local.run(&["deploy", "--env", env], &[])?.ok()?;
    let sdk = local.sdk().await?;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    let cloudformation = aws_sdk_cloudformation::Client::new(&sdk);
    let bucket = "sfstack-artifacts-123456789012-us-east-1";

    // Someone updated the invoke-api function from a zip of its own, which has since been
    // deleted (an older sfstack's lifecycle rule expired it, say).
    let (template, keys) = function_keys(&sdk, &stack).await?;
    let (logical, key) = keys
        .iter()
        .find(|(_, key)| key.starts_with("sf-invoke-api/"))
        .context("the invoke-api function")?;
    let own = "sf-invoke-api/someone-elses.zip";
    let bytes = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await?
        .body
        .collect()
        .await?;
    s3.put_object()
        .bucket(bucket)
        .key(own)
        .body(bytes.into_bytes().into())
        .send()
        .await?;
    execute_by_hand(
        &cloudformation,
        &stack,
        "by-hand",
        template.replace(key.as_str(), own),
    )
    .await?;
    s3.delete_object().bucket(bucket).key(own).send().await?;

    // The next update fails on the table, and its rollback cannot find that zip.
    tell_gateway(
        &local,
        "/__sfstack/fail-update",
        serde_json::json!({
            "stack": stack,
            "logical_id": "OAuthTokensTable",
            "resource_type": "AWS::DynamoDB::Table",
            "reason": "Resource handler returned message: \"Rate exceeded\" (HandlerErrorCode: Throttling)",
        }),
    )
    .await?;
    let failed = local.run(&["deploy", "--env", env], &[])?;
    assert_ne!(failed.code, 0, "{}", failed.stderr);
    for expected in ["UPDATE_ROLLBACK_FAILED", "NoSuchKey", logical.as_str()] {
        assert!(
            failed.stderr.contains(expected),
            "{expected}: {}",
            failed.stderr
        );
    }

    let again = local.run(&["deploy", "--env", env], &[])?.ok()?;
    assert!(
        again.stderr.contains(&format!(
            "the rollback failed again on {logical}; continuing it without them"
        )),
        "{}",
        again.stderr
    );
    let (_, now) = function_keys(&sdk, &stack).await?;
    assert_eq!(
        &now[logical], key,
        "the deploy put the function's own zip back"
    );
    let smoke = local.run(&["smoke-test", "--env", env], &[])?;
    assert_eq!(smoke.code, 0, "{}\n{}", smoke.stdout, smoke.stderr);
    local.run(&["teardown", "--env", env], &[])?.ok()?;
    Ok(())
}

/// S3 bucket names are global: another account may hold the artifacts bucket's default name,
/// with a policy that lets anyone write to it (and so swap a zip). Every S3 call expects this
/// account to own the bucket (`ExpectedBucketOwner`), so the deploy refuses that bucket and
/// says how to choose another name; with `artifacts.bucket` set, it deploys.
pub(crate) async fn a_bucket_of_another_account_is_never_used() -> anyhow::Result<()> {
    let mut local = Local::new("squat");
    let env = "e2e-squat";
    local.run(&["local", "up"], &[])?.ok()?;
    tell_gateway(
        &local,
        "/__sfstack/foreign-bucket",
        serde_json::json!({
            "bucket": "sfstack-artifacts-123456789012-us-east-1",
            "owner": "999999999999",
        }),
    )
    .await?;
    let refused = local.run(&["deploy", "--env", env], &[])?;
    assert_ne!(refused.code, 0, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("belongs to another account")
            && refused.stderr.contains("artifacts.bucket"),
        "{}",
        refused.stderr
    );
    let own = [("SFSTACK_ARTIFACTS_BUCKET", "sfstack-e2e-own-artifacts")];
    local.run(&["deploy", "--env", env], &own)?.ok()?;
    let sdk = local.sdk().await?;
    let (_, keys) = function_keys(&sdk, &format!("sfstack-{env}")).await?;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    for key in keys.values() {
        s3.head_object()
            .bucket("sfstack-e2e-own-artifacts")
            .key(key)
            .send()
            .await
            .with_context(|| format!("{key} is in the bucket of our own"))?;
    }
    let smoke = local.run(&["smoke-test", "--env", env], &own)?;
    assert_eq!(smoke.code, 0, "{}\n{}", smoke.stdout, smoke.stderr);
    local.run(&["teardown", "--env", env], &own)?.ok()?;
    Ok(())
}

/// The functions' log groups are encrypted with the environment's key, which CloudWatch Logs may
/// use only because the key policy lets it, for those log groups. Without that statement a
/// stack change fails on a log group and rolls back, as on AWS; the next deploy converges the
/// key policy and passes.
pub(crate) async fn log_groups_are_encrypted_with_a_key_the_logs_service_may_use()
-> anyhow::Result<()> {
    let mut local = Local::new("log-keys");
    let env = "e2e-log-keys";
    let stack = format!("sfstack-{env}");
    local.run(&["deploy", "--env", env], &[])?.ok()?;
    let sdk = local.sdk().await?;
    let kms = aws_sdk_kms::Client::new(&sdk);
    let key = kms
        .describe_key()
        .key_id(format!("alias/{stack}"))
        .send()
        .await?
        .key_metadata
        .context("the environment's key")?
        .arn
        .context("its ARN")?;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&sdk);
    let groups = logs
        .describe_log_groups()
        .log_group_name_prefix(format!("/aws/lambda/{stack}-"))
        .send()
        .await?;
    assert_eq!(groups.log_groups().len(), 4, "{groups:?}");
    for group in groups.log_groups() {
        assert_eq!(group.kms_key_id(), Some(key.as_str()), "{group:?}");
    }

    // The key policy without the statement for CloudWatch Logs.
    let policy: Value = serde_json::from_str(
        kms.get_key_policy()
            .key_id(&key)
            .policy_name("default")
            .send()
            .await?
            .policy()
            .unwrap_or_default(),
    )?;
    let mut reduced = policy.clone();
    let statements = reduced["Statement"].as_array_mut().context("statements")?;
    let before = statements.len();
    statements
        .retain(|statement| statement["Principal"]["Service"] != "logs.us-east-1.amazonaws.com");
    assert_eq!(statements.len(), before - 1, "{policy}");
    kms.put_key_policy()
        .key_id(&key)
        .policy_name("default")
        .policy(reduced.to_string())
        .send()
        .await?;

    // A change by hand that touches only the log groups' retention.
    let cloudformation = aws_sdk_cloudformation::Client::new(&sdk);
    let template = cloudformation
        .get_template()
        .stack_name(&stack)
        .send()
        .await?
        .template_body
        .context("the stack's template")?;
    let changed = template.replace("RetentionInDays: 14", "RetentionInDays: 30");
    assert_ne!(
        changed, template,
        "the template sets a retention of 14 days"
    );
    execute_by_hand(&cloudformation, &stack, "retention", changed).await?;
    let described = cloudformation
        .describe_stacks()
        .stack_name(&stack)
        .send()
        .await?;
    let status = described
        .stacks()
        .first()
        .and_then(|stack| stack.stack_status())
        .map(|status| status.as_str().to_string());
    assert_eq!(status.as_deref(), Some("UPDATE_ROLLBACK_COMPLETE"));
    let events = cloudformation
        .describe_stack_events()
        .stack_name(&stack)
        .send()
        .await?;
    let refused = events.stack_events().iter().find(|event| {
        event.resource_type() == Some("AWS::Logs::LogGroup")
            && event
                .resource_status_reason()
                .is_some_and(|reason| reason.contains("is not allowed to be used with Arn 'arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/sfstack-e2e-log-keys-"))
    });
    assert!(refused.is_some(), "{events:#?}");

    // The next deploy puts the key policy back and passes.
    local.run(&["deploy", "--env", env], &[])?.ok()?;
    let restored: Value = serde_json::from_str(
        kms.get_key_policy()
            .key_id(&key)
            .policy_name("default")
            .send()
            .await?
            .policy()
            .unwrap_or_default(),
    )?;
    assert_eq!(restored, policy);
    local.run(&["teardown", "--env", env], &[])?.ok()?;
    Ok(())
}

/// Lambda keeps 100 of the account's concurrency unreserved. In an account whose limit is 120,
/// one environment's reservations (10 for the callback, 1 each for the refresh and the
/// rotation) fit and a second environment's do not: its deploy fails on a function, rolls
/// back, and says what to do. Once the first is torn down, the second deploys.
pub(crate) async fn reservations_leave_the_account_100_unreserved() -> anyhow::Result<()> {
    let mut local = Local::new("concurrency");
    local.run(&["local", "up"], &[])?.ok()?;
    tell_gateway(
        &local,
        "/__sfstack/account-concurrency",
        serde_json::json!({"limit": 120}),
    )
    .await?;
    local.run(&["deploy", "--env", "e2e-conc-a"], &[])?.ok()?;
    let second = local.run(&["deploy", "--env", "e2e-conc-b"], &[])?;
    assert_ne!(second.code, 0, "{}", second.stderr);
    for expected in [
        "below its minimum value of [100]",
        "Service Quotas",
        "functions.callback_concurrency",
    ] {
        assert!(
            second.stderr.contains(expected),
            "{expected}: {}",
            second.stderr
        );
    }
    local.run(&["teardown", "--env", "e2e-conc-a"], &[])?.ok()?;
    local.run(&["deploy", "--env", "e2e-conc-b"], &[])?.ok()?;
    local.run(&["teardown", "--env", "e2e-conc-b"], &[])?.ok()?;
    Ok(())
}
