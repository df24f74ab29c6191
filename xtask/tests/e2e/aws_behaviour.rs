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
#[test]
fn a_deploy_right_after_a_teardown_converges() -> anyhow::Result<()> {
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
#[tokio::test(flavor = "multi_thread")]
async fn throttling_is_not_taken_for_absence() -> anyhow::Result<()> {
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
    let gateway = local.state()?["gateway"]["url"]
        .as_str()
        .context("no gateway url")?
        .to_string();
    reqwest::Client::new()
        .post(format!("{gateway}/__sfstack/throttle"))
        .json(&serde_json::json!({"action": "kms:ListResourceTags", "times": 3}))
        .send()
        .await?
        .error_for_status()?;
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
    let keys = kms.list_keys().send().await?;
    let mut ours = 0;
    for entry in keys.keys() {
        let tags = kms
            .list_resource_tags()
            .key_id(entry.key_id().unwrap_or_default())
            .send()
            .await?;
        if tags
            .tags()
            .iter()
            .any(|tag| tag.tag_key() == "sfstack:env" && tag.tag_value() == env)
        {
            ours += 1;
        }
    }
    assert_eq!(ours, 1, "one key for the environment");
    local.run(&["teardown", "--env", env], &[])?.ok()?;
    Ok(())
}

/// IAM is eventually consistent: the roles a first deploy makes are not assumable by Lambda
/// for a moment, so CloudFormation fails to create the functions and rolls the new stack back.
/// The deploy says so, deletes the rolled-back stack, waits and creates it again, and the
/// environment works.
#[test]
fn a_first_deploy_outlasts_iam_propagation() -> anyhow::Result<()> {
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
