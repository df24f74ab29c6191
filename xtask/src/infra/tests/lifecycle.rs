//! The infra steps against a real moto server: convergence, interruption, teardown, two
//! environments side by side, and no credential value in any error or returned struct.

use anyhow::Context;

use crate::infra::*;
use crate::naming::{FUNCTIONS, Names};
use crate::render::{render_policy, repository_root};

use super::harness::*;

#[tokio::test]
async fn second_ensure_changes_nothing_and_every_resource_carries_the_env_tag() -> anyhow::Result<()>
{
    let moto = moto().await?;
    let names = Names::new("idem-a1b2c3");
    let zips = Zips::new("idem", "v1")?;
    let first = ensure(&moto, &names, &tags("idem-a1b2c3"), CREDENTIALS, &zips).await?;
    let before = snapshot(&moto, &names).await?;
    assert_eq!(before.objects.len(), FUNCTIONS.len(), "{before:?}");
    assert!(before.key.3, "key rotation is enabled");
    assert_eq!(before.key.1, "Some(Enabled)");

    let second = ensure(&moto, &names, &tags("idem-a1b2c3"), CREDENTIALS, &zips).await?;
    let after = snapshot(&moto, &names).await?;
    assert_eq!(before, after, "a second ensure changed something");
    assert_eq!(first.key, second.key);
    assert_eq!(first.secrets, second.secrets);
    assert_eq!(first.role_arns, second.role_arns);
    assert_eq!(first.artifact_keys, second.artifact_keys);
    for artifact in &zips.artifacts {
        assert_eq!(
            second.artifact_keys[artifact.function],
            format!("{}/{}.zip", artifact.function, artifact.sha256)
        );
    }

    // Every taggable resource carries the environment's tags.
    let key = key_tags(&moto, &first.key.key_id).await?;
    assert_eq!(key.get(TAG_ENV).map(String::as_str), Some("idem-a1b2c3"));
    assert_eq!(
        key.get(TAG_BRANCH).map(String::as_str),
        Some("feature/idem-a1b2c3_1"),
        "branch sanitized for tag values"
    );
    for name in [
        names.credentials_secret(),
        names.oauth_client_secret(),
        names.session_secret(),
    ] {
        let described = moto
            .clients
            .secrets
            .describe_secret()
            .secret_id(&name)
            .send()
            .await?;
        assert!(
            described
                .tags()
                .iter()
                .any(|tag| tag.key() == Some(TAG_ENV) && tag.value() == Some("idem-a1b2c3")),
            "{name} lacks the env tag"
        );
        assert_eq!(described.kms_key_id(), Some(first.key.key_arn.as_str()));
    }
    for function in FUNCTIONS {
        let role_tags = moto
            .clients
            .iam
            .list_role_tags()
            .role_name(names.role(function))
            .send()
            .await?;
        assert!(
            role_tags
                .tags()
                .iter()
                .any(|tag| tag.key() == TAG_ENV && tag.value() == "idem-a1b2c3"),
            "role of {function} lacks the env tag"
        );
    }
    assert_eq!(
        secret_value(&moto, &names.session_secret())
            .await?
            .as_deref(),
        Some("{}")
    );
    // The callback's secret holds the OAuth client's part of the credentials only.
    assert_eq!(
        secret_value(&moto, &names.oauth_client_secret())
            .await?
            .as_deref(),
        Some(r#"{"ConsumerKey":"k"}"#)
    );
    // An environment made before the callback had a secret of its own gets it, the same, on
    // its next deploy; nothing else changes.
    moto.clients
        .secrets
        .delete_secret()
        .secret_id(names.oauth_client_secret())
        .force_delete_without_recovery(true)
        .send()
        .await?;
    let migrated = ensure(&moto, &names, &tags("idem-a1b2c3"), CREDENTIALS, &zips).await?;
    assert_eq!(
        secret_value(&moto, &names.oauth_client_secret())
            .await?
            .as_deref(),
        Some(r#"{"ConsumerKey":"k"}"#)
    );
    assert_eq!(
        migrated.secrets.credentials_arn,
        first.secrets.credentials_arn
    );
    assert_eq!(
        secret_value(&moto, &names.credentials_secret())
            .await?
            .as_deref(),
        Some(CREDENTIALS)
    );

    // The bucket is private, encrypted and expires old zips.
    let bucket = artifacts_bucket_name(ACCOUNT, REGION);
    let block = moto
        .clients
        .s3
        .get_public_access_block()
        .bucket(&bucket)
        .send()
        .await?;
    let block = block
        .public_access_block_configuration
        .context("no public access block")?;
    assert_eq!(block.block_public_acls, Some(true));
    assert_eq!(block.restrict_public_buckets, Some(true));
    let encryption = moto
        .clients
        .s3
        .get_bucket_encryption()
        .bucket(&bucket)
        .send()
        .await?;
    let algorithm = encryption
        .server_side_encryption_configuration()
        .and_then(|configuration| configuration.rules().first())
        .and_then(|rule| rule.apply_server_side_encryption_by_default())
        .map(|default| default.sse_algorithm().clone());
    assert_eq!(
        algorithm,
        Some(aws_sdk_s3::types::ServerSideEncryption::Aes256)
    );
    let lifecycle = moto
        .clients
        .s3
        .get_bucket_lifecycle_configuration()
        .bucket(&bucket)
        .send()
        .await?;
    // Nothing a stack may roll back to expires by age: only abandoned uploads are cleaned.
    assert!(
        lifecycle
            .rules()
            .iter()
            .all(|rule| rule.expiration().is_none()),
        "{lifecycle:?}"
    );
    assert_eq!(
        lifecycle.rules()[0]
            .abort_incomplete_multipart_upload()
            .and_then(|abort| abort.days_after_initiation()),
        Some(1)
    );

    // A later deploy refreshes the expiry but keeps the creation time; changed code uploads
    // only the changed zip; changed credentials add one version to the credentials only.
    let mut later = tags("idem-a1b2c3");
    later.created_at = "2025-02-01T00:00:00Z".to_string();
    later.expires_at = "2025-02-08T00:00:00Z".to_string();
    let mut changed = Zips::new("idem", "v2")?;
    let unchanged_functions = &mut changed.artifacts[1..];
    for (artifact, old) in unchanged_functions.iter_mut().zip(&zips.artifacts[1..]) {
        *artifact = old.clone();
    }
    let new_credentials = r#"{"AuthFlow":"jwt","ConsumerKey":"k2","Username":"u"}"#;
    let third = ensure(&moto, &names, &later, new_credentials, &changed).await?;
    let key = key_tags(&moto, &third.key.key_id).await?;
    assert_eq!(
        key.get(TAG_CREATED_AT).map(String::as_str),
        Some("2025-01-01T00:00:00Z")
    );
    assert_eq!(
        key.get(TAG_EXPIRES_AT).map(String::as_str),
        Some("2025-02-08T00:00:00Z")
    );
    let last = snapshot(&moto, &names).await?;
    assert_eq!(last.objects.len(), FUNCTIONS.len() + 1, "{last:?}");
    assert_eq!(last.secret_versions[0].1.len(), 2, "{last:?}");
    assert_eq!(last.secret_versions[1], after.secret_versions[1]);
    assert_eq!(
        secret_value(&moto, &names.credentials_secret())
            .await?
            .as_deref(),
        Some(new_credentials)
    );
    Ok(())
}

#[tokio::test]
async fn run_interrupted_after_the_roles_converges() -> anyhow::Result<()> {
    let moto = moto().await?;
    let names = Names::new("half-d4e5f6");
    let env_tags = tags("half-d4e5f6");
    let role_arns = ensure_role_identities(&moto.clients.iam, &names, &env_tags).await?;
    for function in FUNCTIONS {
        let policies = moto
            .clients
            .iam
            .list_role_policies()
            .role_name(names.role(function))
            .send()
            .await?;
        assert!(
            policies.policy_names().is_empty(),
            "a bare role grants nothing"
        );
    }

    let zips = Zips::new("half", "v1")?;
    let infra = ensure(&moto, &names, &env_tags, CREDENTIALS, &zips).await?;
    assert_eq!(infra.role_arns, role_arns);
    let inputs = policy_inputs(
        &names,
        REGION,
        ACCOUNT,
        &infra.key,
        &infra.secrets,
        false,
        None,
    );
    for function in FUNCTIONS {
        let document = moto
            .clients
            .iam
            .get_role_policy()
            .role_name(names.role(function))
            .policy_name(roles::POLICY_NAME)
            .send()
            .await?;
        let expected = render_policy(&repository_root(), function, &inputs[function])?;
        assert_eq!(
            decode_policy_document(document.policy_document()),
            Some(expected),
            "{function}"
        );
    }
    let policy = moto
        .clients
        .kms
        .get_key_policy()
        .key_id(&infra.key.key_id)
        .policy_name("default")
        .send()
        .await?
        .policy
        .unwrap_or_default();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&policy)?,
        key_policy(REGION, ACCOUNT, &names),
        "the finished run leaves the current key policy"
    );
    Ok(())
}

#[tokio::test]
async fn key_created_without_its_alias_is_adopted_not_duplicated() -> anyhow::Result<()> {
    let moto = moto().await?;
    let names = Names::new("orphan-0a0b0c");
    let env_tags = tags("orphan-0a0b0c");
    // An interrupted deploy: CreateKey succeeded, CreateAlias never ran.
    let orphan = moto
        .clients
        .kms
        .create_key()
        .set_tags(Some(
            env_tags
                .pairs()
                .into_iter()
                .map(|(key, value)| {
                    aws_sdk_kms::types::Tag::builder()
                        .tag_key(key)
                        .tag_value(value)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()?,
        ))
        .send()
        .await?
        .key_metadata
        .context("no key metadata")?;
    ensure_role_identities(&moto.clients.iam, &names, &env_tags).await?;
    let key = ensure_key(&moto.clients.kms, &names, &env_tags, ACCOUNT).await?;
    assert_eq!(key.key_id, orphan.key_id());
    assert_eq!(
        alias_key_state(&moto, &names).await?.as_deref(),
        Some("Enabled")
    );
    let keys = moto.clients.kms.list_keys().send().await?;
    assert_eq!(keys.keys().len(), 1, "no second key was created");
    Ok(())
}

#[tokio::test]
async fn teardown_removes_everything_twice_safely_and_re_ensure_revives_the_key()
-> anyhow::Result<()> {
    let moto = moto().await?;
    let names = Names::new("gone-112233");
    let env_tags = tags("gone-112233");
    let zips = Zips::new("gone", "v1")?;
    let infra = ensure(&moto, &names, &env_tags, CREDENTIALS, &zips).await?;

    let removed = teardown_environment(&moto.clients, &names, SecretDeletion::Immediate).await?;
    assert_eq!(removed.roles.len(), FUNCTIONS.len(), "{removed:?}");
    assert_eq!(
        removed.secrets,
        vec![
            names.credentials_secret(),
            names.oauth_client_secret(),
            names.session_secret()
        ]
    );
    assert_eq!(removed.key.len(), 2, "key and alias: {removed:?}");
    for function in FUNCTIONS {
        assert!(!role_exists(&moto, &names.role(function)).await?);
    }
    assert!(!secret_exists(&moto, &names.credentials_secret()).await?);
    assert!(!secret_exists(&moto, &names.session_secret()).await?);
    assert_eq!(alias_key_state(&moto, &names).await?, None);
    assert_eq!(
        key_state(&moto, &infra.key.key_id).await?,
        "PendingDeletion"
    );
    // The shared bucket and its zips stay.
    let objects = moto
        .clients
        .s3
        .list_objects_v2()
        .bucket(&infra.artifacts_bucket)
        .send()
        .await?;
    assert_eq!(objects.contents().len(), FUNCTIONS.len());

    let again = teardown_environment(&moto.clients, &names, SecretDeletion::Immediate).await?;
    assert!(again.is_empty(), "{again:?}");

    // Re-created within the deletion window: the key pending deletion is found by its tags and
    // revived (no new key), and the secrets are re-created under the same names at once because
    // teardown deleted them without a recovery window.
    let revived = ensure(&moto, &names, &env_tags, CREDENTIALS, &zips).await?;
    assert_eq!(revived.key.key_id, infra.key.key_id);
    assert_eq!(key_state(&moto, &revived.key.key_id).await?, "Enabled");
    assert_eq!(
        alias_key_state(&moto, &names).await?.as_deref(),
        Some("Enabled")
    );
    assert_eq!(
        secret_value(&moto, &names.session_secret())
            .await?
            .as_deref(),
        Some("{}")
    );
    assert_eq!(
        secret_value(&moto, &names.credentials_secret())
            .await?
            .as_deref(),
        Some(CREDENTIALS)
    );
    for function in FUNCTIONS {
        assert!(role_exists(&moto, &names.role(function)).await?);
    }
    Ok(())
}

#[tokio::test]
async fn teardown_interrupted_after_scheduling_the_key_finishes_and_ensure_revives_it()
-> anyhow::Result<()> {
    let moto = moto().await?;
    let names = Names::new("stop-445566");
    let env_tags = tags("stop-445566");
    let zips = Zips::new("stop", "v1")?;
    let infra = ensure(&moto, &names, &env_tags, CREDENTIALS, &zips).await?;
    // The alias still points at a key pending deletion.
    moto.clients
        .kms
        .schedule_key_deletion()
        .key_id(&infra.key.key_id)
        .pending_window_in_days(7)
        .send()
        .await?;
    let revived = ensure(&moto, &names, &env_tags, CREDENTIALS, &zips).await?;
    assert_eq!(revived.key, infra.key);
    assert_eq!(key_state(&moto, &infra.key.key_id).await?, "Enabled");

    moto.clients
        .kms
        .schedule_key_deletion()
        .key_id(&infra.key.key_id)
        .pending_window_in_days(7)
        .send()
        .await?;
    let removed = retire_key(&moto.clients.kms, &names).await?;
    assert_eq!(removed, vec![format!("KMS alias {}", names.key_alias())]);
    Ok(())
}

#[tokio::test]
async fn credential_values_never_appear_in_errors_or_returned_structs() -> anyhow::Result<()> {
    let moto = moto().await?;
    let names = Names::new("leak-778899");
    let env_tags = tags("leak-778899");
    let marker = "MARKER-5ecret-v4lue-do-not-print";
    let credentials = serde_json::json!({"AuthFlow": "password", "Password": marker}).to_string();
    let zips = Zips::new("leak", "v1")?;
    let infra = ensure(&moto, &names, &env_tags, &credentials, &zips).await?;
    assert_eq!(
        secret_value(&moto, &names.credentials_secret())
            .await?
            .as_deref(),
        Some(credentials.as_str())
    );
    assert!(!format!("{infra:?}").contains(marker));
    assert!(!format!("{:?}", infra.secrets).contains(marker));
    assert!(!serde_json::to_string(&infra)?.contains(marker));

    let check = |error: anyhow::Error| {
        for text in [
            format!("{error:?}"),
            format!("{error:#}"),
            error.to_string(),
        ] {
            assert!(!text.contains(marker), "the value leaked: {text}");
        }
    };
    // Not JSON, and JSON but not an object.
    let error = ensure_secrets(
        &moto.clients.secrets,
        &names,
        &infra.key.key_arn,
        &env_tags,
        Credentials::Given(&format!("{{\"Password\": {marker}}}")),
    )
    .await
    .err()
    .context("broken JSON was accepted")?;
    check(error);
    let error = ensure_secrets(
        &moto.clients.secrets,
        &names,
        &infra.key.key_arn,
        &env_tags,
        Credentials::Given(&format!("[\"{marker}\"]")),
    )
    .await
    .err()
    .context("a JSON array was accepted")?;
    check(error);
    // A service that cannot be reached, while a changed value is being written.
    let unreachable = aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(&moto.config)
            .endpoint_url("http://127.0.0.1:1")
            .retry_config(aws_sdk_secretsmanager::config::retry::RetryConfig::disabled())
            .build(),
    );
    let changed = serde_json::json!({"Password": format!("{marker}-2")}).to_string();
    let error = ensure_secrets(
        &unreachable,
        &names,
        &infra.key.key_arn,
        &env_tags,
        Credentials::Given(&changed),
    )
    .await
    .err()
    .context("an unreachable endpoint succeeded")?;
    check(error);
    Ok(())
}

#[tokio::test]
async fn tearing_down_one_environment_leaves_the_other() -> anyhow::Result<()> {
    let moto = moto().await?;
    let (one, two) = (Names::new("one-aaaaaa"), Names::new("two-bbbbbb"));
    let zips = Zips::new("pair", "v1")?;
    let first = ensure(&moto, &one, &tags("one-aaaaaa"), CREDENTIALS, &zips).await?;
    let second = ensure(&moto, &two, &tags("two-bbbbbb"), CREDENTIALS, &zips).await?;
    assert_ne!(first.key.key_id, second.key.key_id);
    assert_eq!(first.artifacts_bucket, second.artifacts_bucket);

    let before = snapshot(&moto, &two).await?;
    let removed = teardown_environment(&moto.clients, &one, SecretDeletion::Immediate).await?;
    for entry in removed.roles.iter().chain(&removed.secrets) {
        assert!(entry.contains("one-aaaaaa"), "{entry}");
    }
    assert!(
        removed
            .key
            .iter()
            .all(|entry| !entry.contains(&second.key.key_id)),
        "{removed:?}"
    );
    assert_eq!(
        key_state(&moto, &first.key.key_id).await?,
        "PendingDeletion"
    );
    assert_eq!(key_state(&moto, &second.key.key_id).await?, "Enabled");
    assert_eq!(snapshot(&moto, &two).await?, before);
    for function in FUNCTIONS {
        assert!(role_exists(&moto, &two.role(function)).await?);
    }
    assert!(secret_exists(&moto, &two.credentials_secret()).await?);
    assert!(secret_exists(&moto, &two.session_secret()).await?);
    Ok(())
}
