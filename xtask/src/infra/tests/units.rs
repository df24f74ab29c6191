//! The infra helpers that need no cloud: the key policy, tag bookkeeping, policy decoding
//! and the IAM propagation retry.

use std::time::Duration;

use anyhow::Context;

use crate::infra::key;
use crate::infra::*;

use super::harness::*;

#[test]
fn key_policy_delegates_to_the_account_and_grants_no_role_by_itself() {
    let names = crate::naming::Names::new("feature-x");
    let policy = key_policy("eu-west-1", "123456789012", &names);
    let statements = policy["Statement"].as_array().cloned().unwrap_or_default();
    assert_eq!(statements.len(), 2, "{policy}");
    assert_eq!(
        statements[0]["Principal"]["AWS"],
        "arn:aws:iam::123456789012:root"
    );
    // The Logs service, for this environment's log groups only.
    assert_eq!(
        statements[1]["Principal"]["Service"],
        "logs.eu-west-1.amazonaws.com"
    );
    let groups = statements[1]["Condition"]["ArnEquals"]["kms:EncryptionContext:aws:logs:arn"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(groups.len(), crate::naming::FUNCTIONS.len());
    assert!(
        groups
            .iter()
            .all(|group| group.as_str().is_some_and(|arn| arn.starts_with(
                "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/sfstack-feature-x-"
            )))
    );
    let china = key_policy("cn-north-1", "1", &names);
    assert_eq!(
        china["Statement"][0]["Principal"]["AWS"],
        "arn:aws-cn:iam::1:root"
    );
    assert_eq!(
        china["Statement"][1]["Principal"]["Service"],
        "logs.cn-north-1.amazonaws.com.cn"
    );
}

#[test]
fn a_key_is_the_same_by_id_or_arn_but_never_by_alias() {
    let arn = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let id = "1234abcd-12ab-34cd-56ef-1234567890ab";
    assert!(key::same_key(arn, id));
    assert!(key::same_key(id, arn));
    assert!(key::same_key(arn, arn));
    assert!(!key::same_key(arn, "0000abcd-12ab-34cd-56ef-1234567890ab"));
    assert!(!key::same_key("alias/sfstack-main", "alias/sfstack-main"));
    assert!(!key::same_key(
        "arn:aws:kms:eu-west-1:123456789012:alias/sfstack-main",
        arn
    ));
}

#[test]
fn existing_tags_keep_their_creation_time_and_unchanged_tags_write_nothing() {
    let env_tags = tags("t-1");
    assert_eq!(env_tags.missing_from(&env_tags.pairs()), None);
    let mut later = env_tags.clone();
    later.created_at = "2030-01-01T00:00:00Z".to_string();
    assert_eq!(later.missing_from(&env_tags.pairs()), None);
    later.expires_at = "2030-01-08T00:00:00Z".to_string();
    let desired = later.missing_from(&env_tags.pairs()).unwrap_or_default();
    assert_eq!(desired[TAG_CREATED_AT], "2025-01-01T00:00:00Z");
    assert_eq!(desired[TAG_EXPIRES_AT], "2030-01-08T00:00:00Z");
    assert_eq!(
        tag_value("feat/ü_x#1!{}"),
        "feat/ü_x_1___",
        "characters AWS rejects become _"
    );
    assert_eq!(tag_value(&"a".repeat(300)).len(), 256);
}

#[test]
fn url_encoded_policy_documents_are_decoded() {
    let plain = r#"{"Version":"2012-10-17"}"#;
    let encoded = "%7B%22Version%22%3A%222012-10-17%22%7D";
    let expected = serde_json::json!({"Version": "2012-10-17"});
    assert_eq!(decode_policy_document(plain), Some(expected.clone()));
    assert_eq!(decode_policy_document(encoded), Some(expected));
    assert_eq!(decode_policy_document("%7"), None);
}

#[tokio::test]
async fn role_propagation_errors_are_retried_within_the_budget_and_others_are_not() {
    let attempts = std::sync::atomic::AtomicU32::new(0);
    let result = retry_with_backoff(
        "creating the key",
        Duration::from_secs(5),
        Duration::from_millis(1),
        || async {
            if attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
                Err(anyhow::anyhow!(
                    "MalformedPolicyDocumentException: Policy contains a statement with one or more invalid principals."
                ))
                .context("creating KMS key alias/x")
            } else {
                Ok(7)
            }
        },
    )
    .await;
    assert_eq!(result.ok(), Some(7));
    assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 3);

    let attempts = std::sync::atomic::AtomicU32::new(0);
    let result: anyhow::Result<()> = retry_with_backoff(
        "creating the key",
        Duration::from_secs(5),
        Duration::from_millis(1),
        || async {
            attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err(anyhow::anyhow!("AccessDeniedException"))
        },
    )
    .await;
    assert!(result.is_err());
    assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 1);

    let result: anyhow::Result<()> = retry_with_backoff(
        "creating function x",
        Duration::from_millis(20),
        Duration::from_millis(5),
        || async {
            Err(anyhow::anyhow!(
                "The role defined for the function cannot be assumed by Lambda."
            ))
        },
    )
    .await;
    let message = result
        .err()
        .map(|error| format!("{error:#}"))
        .unwrap_or_default();
    assert!(message.contains("hint: run the deploy again"), "{message}");
}
