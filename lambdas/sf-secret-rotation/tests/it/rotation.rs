//! The four steps: a full rotation, idempotency, failures half-way and refused requests.

use salesforce::{Client, ClientConfig};
use serde_json::json;
use sf_secret_rotation::Outcome;

use crate::support::{Harness, login_with, refresh_token_is_active, session_of};

const STEPS: [&str; 4] = ["createSecret", "setSecret", "testSecret", "finishSecret"];
const TOKEN: &str = "9b3c1a52-5c55-4a2e-9d52-6f3ad0c1e001";
const SECOND_TOKEN: &str = "9b3c1a52-5c55-4a2e-9d52-6f3ad0c1e002";

#[tokio::test]
async fn a_rotation_promotes_a_working_token_and_every_step_is_idempotent() {
    let harness = Harness::start().await;
    let original = harness.credentials_document().await;
    let arn = harness
        .create_secret("sfstack/rotating", &original, true)
        .await;
    let (version_before, _) = harness.current(&arn).await;
    harness.start_rotation(&arn, TOKEN).await;
    harness
        .admin(reqwest::Method::DELETE, "requests", None)
        .await;

    let expected = [
        (
            "createSecret",
            Outcome::PendingCreated,
            Outcome::PendingAlreadyExists,
        ),
        ("setSecret", Outcome::NothingToSet, Outcome::NothingToSet),
        ("testSecret", Outcome::Tested, Outcome::Tested),
        ("finishSecret", Outcome::Promoted, Outcome::AlreadyCurrent),
    ];
    for (step, first, again) in expected {
        assert_eq!(harness.step(&arn, TOKEN, step).await, Ok(first), "{step}");
        if step != "finishSecret" {
            let (current_version, current) = harness.current(&arn).await;
            assert_eq!(
                current_version, version_before,
                "{step}: AWSCURRENT untouched before finishSecret"
            );
            assert_eq!(current, original, "{step}");
        }
        assert_eq!(
            harness.step(&arn, TOKEN, step).await,
            Ok(again),
            "{step} again"
        );
    }
    assert_eq!(
        harness.token_grants(),
        ["refresh_token"],
        "one token request for the whole rotation"
    );

    let (current_version, current) = harness.current(&arn).await;
    assert_eq!(current_version, TOKEN);
    assert_eq!(harness.stages(&arn, TOKEN).await, ["AWSCURRENT"]);
    assert_eq!(harness.stages(&arn, &version_before).await, ["AWSPREVIOUS"]);
    assert_eq!(
        current["Team"], "contact-centre",
        "unknown keys are preserved"
    );
    assert_eq!(
        current["RefreshToken"], original["RefreshToken"],
        "no rotation in the org: same refresh token"
    );
    assert_eq!(current["InstanceUrl"], harness.emulator.base_url());
    assert!(
        current["IssuedAt"]
            .as_str()
            .and_then(|text| text.parse::<i64>().ok())
            .is_some()
    );
    assert!(
        current.get("AccessToken").is_none(),
        "AccessToken (the security token) is not used"
    );

    // Re-running the earlier steps on the finished version does nothing.
    for step in STEPS {
        assert_eq!(
            harness.step(&arn, TOKEN, step).await,
            Ok(Outcome::AlreadyCurrent),
            "{step}"
        );
    }

    // Another function uses the stored token directly: no login.
    harness
        .admin(reqwest::Method::DELETE, "requests", None)
        .await;
    let client =
        Client::with_session(session_of(&current), None, ClientConfig::default()).expect("client");
    let contacts = client
        .query("SELECT Id, Name FROM Contact")
        .await
        .expect("query with the rotated token");
    assert!(contacts.total_size > 0);
    assert!(harness.token_grants().is_empty(), "no extra login happened");

    // And a second rotation works from the new AWSCURRENT.
    harness.start_rotation(&arn, SECOND_TOKEN).await;
    for step in STEPS {
        harness
            .step(&arn, SECOND_TOKEN, step)
            .await
            .unwrap_or_else(|error| panic!("{step}: {error}"));
    }
    assert_eq!(harness.current(&arn).await.0, SECOND_TOKEN);
}

#[tokio::test]
async fn a_refresh_token_rotated_by_the_org_replaces_the_old_one() {
    let harness = Harness::start().await;
    let original = harness.credentials_document().await;
    let arn = harness
        .create_secret("sfstack/rotating", &original, true)
        .await;
    harness.rotate_refresh_tokens().await;
    harness.start_rotation(&arn, TOKEN).await;
    for step in STEPS {
        harness
            .step(&arn, TOKEN, step)
            .await
            .unwrap_or_else(|error| panic!("{step}: {error}"));
    }
    let (_, current) = harness.current(&arn).await;
    assert_ne!(current["RefreshToken"], original["RefreshToken"]);
    assert!(
        login_with(&current).await.is_ok(),
        "the new refresh token works"
    );
    let old = login_with(&original)
        .await
        .expect_err("the old one was retired");
    assert_eq!(old.error_code(), Some("invalid_grant"));
}

/// An org that rotates refresh tokens retires the current one as createSecret spends it: the
/// new one is current at once, so a testSecret that fails (here every session expires) leaves a
/// working refresh token in AWSCURRENT, and the next rotation starts from it.
#[tokio::test]
async fn a_rotated_refresh_token_is_current_at_once_so_a_failed_test_leaves_a_working_one() {
    let harness = Harness::start().await;
    let original = harness.credentials_document().await;
    let arn = harness
        .create_secret("sfstack/rotating", &original, true)
        .await;
    harness.rotate_refresh_tokens().await;
    harness.start_rotation(&arn, TOKEN).await;
    assert_eq!(
        harness.step(&arn, TOKEN, "createSecret").await,
        Ok(Outcome::PendingCreatedAndCurrent)
    );
    let mut stages = harness.stages(&arn, TOKEN).await;
    stages.sort();
    assert_eq!(
        stages,
        ["AWSCURRENT", "AWSPENDING"],
        "current at once, and still being rotated"
    );
    assert_eq!(
        harness.step(&arn, TOKEN, "createSecret").await,
        Ok(Outcome::PendingAlreadyExists),
        "a retried createSecret spends nothing"
    );

    harness
        .admin(reqwest::Method::POST, "sessions/expire", None)
        .await;
    let error = harness
        .step(&arn, TOKEN, "testSecret")
        .await
        .expect_err("the new session expired");
    assert_eq!(error.error_type(), "TestFailed", "{error}");
    let (version, current) = harness.current(&arn).await;
    assert_eq!(version, TOKEN);
    assert_ne!(current["RefreshToken"], original["RefreshToken"]);
    assert!(
        refresh_token_is_active(&current).await,
        "AWSCURRENT's refresh token works after the failed rotation"
    );
    assert!(!refresh_token_is_active(&original).await, "retired");

    // Secrets Manager's next attempt, with a new token, starts from the working one.
    harness
        .step(&arn, TOKEN, "finishSecret")
        .await
        .expect("a finish takes AWSPENDING off");
    harness.start_rotation(&arn, SECOND_TOKEN).await;
    for step in STEPS {
        harness
            .step(&arn, SECOND_TOKEN, step)
            .await
            .unwrap_or_else(|error| panic!("{step}: {error}"));
    }
    let (version, latest) = harness.current(&arn).await;
    assert_eq!(version, SECOND_TOKEN);
    assert!(login_with(&latest).await.is_ok());
}

/// In an org that rotates refresh tokens, createSecret's token request retires the stored token:
/// the new one exists only in the function's memory until it is stored. Storing it survives
/// failed PutSecretValue requests (two dropped connections here): it is retried, and ends
/// stored, current and working.
#[tokio::test]
async fn a_failed_put_secret_value_is_retried_so_the_rotated_token_is_kept() {
    let harness = Harness::start().await;
    let original = harness.credentials_document().await;
    let arn = harness
        .create_secret("sfstack/rotating", &original, true)
        .await;
    harness.rotate_refresh_tokens().await;
    harness.start_rotation(&arn, TOKEN).await;
    let (flaky, attempts) = harness.rotator_failing_puts(2);
    assert_eq!(
        harness.step_with(&flaky, &arn, TOKEN, "createSecret").await,
        Ok(Outcome::PendingCreatedAndCurrent)
    );
    assert_eq!(
        attempts.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "two failed, the third stored it"
    );
    let (version, current) = harness.current(&arn).await;
    assert_eq!(version, TOKEN);
    assert!(
        refresh_token_is_active(&current).await,
        "the rotated refresh token was kept"
    );
    assert!(!refresh_token_is_active(&original).await, "retired");
    for step in ["setSecret", "testSecret", "finishSecret"] {
        harness
            .step(&arn, TOKEN, step)
            .await
            .unwrap_or_else(|error| panic!("{step}: {error}"));
    }
}

#[tokio::test]
async fn a_failed_token_request_leaves_awscurrent_untouched_and_a_retry_succeeds() {
    let harness = Harness::start().await;
    let original = harness.credentials_document().await;
    let arn = harness
        .create_secret("sfstack/rotating", &original, true)
        .await;
    let before = harness.current(&arn).await;
    harness.start_rotation(&arn, TOKEN).await;

    // Salesforce is down for one request.
    harness
        .admin(
            reqwest::Method::POST,
            "faults",
            Some(json!({"count": 1, "status": 503})),
        )
        .await;
    let error = harness
        .step(&arn, TOKEN, "createSecret")
        .await
        .expect_err("503");
    assert_eq!(error.error_type(), "TokenRequestFailed", "{error}");
    assert_eq!(harness.current(&arn).await, before);
    assert_eq!(
        harness.pending_value(&arn, TOKEN).await,
        None,
        "nothing staged"
    );
    assert!(
        login_with(&before.1).await.is_ok(),
        "AWSCURRENT still works"
    );

    // Secrets Manager retries the step.
    assert_eq!(
        harness.step(&arn, TOKEN, "createSecret").await,
        Ok(Outcome::PendingCreated)
    );

    // The new token is rejected at testSecret (all sessions expire): AWSCURRENT stays.
    harness
        .admin(reqwest::Method::POST, "sessions/expire", None)
        .await;
    let error = harness
        .step(&arn, TOKEN, "testSecret")
        .await
        .expect_err("expired");
    assert_eq!(error.error_type(), "TestFailed", "{error}");
    assert!(error.to_string().contains("session expired"), "{error}");
    assert_eq!(harness.current(&arn).await, before);
    assert!(
        login_with(&before.1).await.is_ok(),
        "AWSCURRENT's refresh token still works"
    );
}

#[tokio::test]
async fn a_revoked_refresh_token_fails_create_secret_without_writing() {
    let harness = Harness::start().await;
    let original = harness.credentials_document().await;
    let arn = harness
        .create_secret("sfstack/rotating", &original, true)
        .await;
    let before = harness.current(&arn).await;
    let versions_before = harness.versions(&arn).await.len();
    harness.start_rotation(&arn, TOKEN).await;
    harness
        .admin(reqwest::Method::POST, "refresh-tokens/revoke", None)
        .await;

    let error = harness
        .step(&arn, TOKEN, "createSecret")
        .await
        .expect_err("revoked");
    assert_eq!(error.error_type(), "TokenRequestFailed");
    let message = error.to_string();
    assert!(
        message.contains("invalid_grant: expired access/refresh token"),
        "{message}"
    );
    assert!(message.contains("hint:"), "{message}");
    assert!(
        !message.contains(original["RefreshToken"].as_str().unwrap_or("?")),
        "{message}"
    );
    assert_eq!(harness.current(&arn).await, before);
    assert_eq!(harness.pending_value(&arn, TOKEN).await, None);
    assert_eq!(
        harness.versions(&arn).await.len(),
        versions_before + 1,
        "only the staged version"
    );
}

#[tokio::test]
async fn steps_are_refused_unless_the_token_is_a_pending_version_of_a_rotating_secret() {
    let harness = Harness::start().await;
    let document = harness.credentials_document().await;

    // Rotation not enabled: a pending version exists, but every step refuses.
    let not_rotating = harness
        .create_secret("sfstack/not-rotating", &document, false)
        .await;
    harness
        .secrets
        .put_secret_value()
        .secret_id(&not_rotating)
        .client_request_token(TOKEN)
        .secret_string(document.to_string())
        .version_stages("AWSPENDING")
        .send()
        .await
        .expect("stage a pending value");

    let rotating = harness
        .create_secret("sfstack/rotating", &document, true)
        .await;
    harness.start_rotation(&rotating, TOKEN).await;
    let previous = harness
        .versions(&rotating)
        .await
        .into_iter()
        .find(|(_, stages)| stages.iter().any(|stage| stage == "AWSPREVIOUS"))
        .map(|(version, _)| version)
        .expect("moto leaves an AWSPREVIOUS version when rotation is enabled");

    let cases = [
        (not_rotating.as_str(), TOKEN, "RotationNotEnabled"),
        (
            rotating.as_str(),
            "00000000-0000-4000-8000-000000000000",
            "UnknownVersion",
        ),
        (rotating.as_str(), previous.as_str(), "NotPending"),
    ];
    for (arn, token, error_type) in cases {
        for step in STEPS {
            let error = harness.step(arn, token, step).await.expect_err("refused");
            assert_eq!(
                error.error_type(),
                error_type,
                "{step} on {arn} with {token}: {error}"
            );
        }
    }
    let error = harness
        .step(&rotating, TOKEN, "rotateSecret")
        .await
        .expect_err("unknown step");
    assert_eq!(error.error_type(), "InvalidEvent");
    assert_eq!(
        harness.pending_value(&not_rotating, TOKEN).await,
        Some(document),
        "nothing changed"
    );
}

/// `RotateSecret` with `RotateImmediately=false` makes Secrets Manager stage an AWSPENDING
/// version with no new token and call testSecret on it: that check passes without asking the
/// provider for anything, and leaves AWSCURRENT alone. A real pending version that lacks its
/// token is still refused.
#[tokio::test]
async fn secrets_managers_configuration_check_passes_without_a_new_token() {
    let harness = Harness::start().await;
    let original = harness.credentials_document().await;
    let arn = harness
        .create_secret("sfstack/configuration-check", &original, true)
        .await;
    let (version_before, _) = harness.current(&arn).await;
    harness
        .admin(reqwest::Method::DELETE, "requests", None)
        .await;

    // An empty AWSPENDING version (what moto's RotateSecret stages).
    harness.start_rotation(&arn, TOKEN).await;
    assert_eq!(
        harness.step(&arn, TOKEN, "testSecret").await,
        Ok(Outcome::ConfigurationChecked)
    );

    // A copy of AWSCURRENT staged AWSPENDING.
    harness
        .secrets
        .put_secret_value()
        .secret_id(&arn)
        .client_request_token(SECOND_TOKEN)
        .secret_string(original.to_string())
        .version_stages("AWSPENDING")
        .send()
        .await
        .expect("stage a copy");
    assert_eq!(
        harness.step(&arn, SECOND_TOKEN, "testSecret").await,
        Ok(Outcome::ConfigurationChecked)
    );
    assert!(harness.token_grants().is_empty(), "no token was requested");
    assert_eq!(harness.current(&arn).await.0, version_before);

    // A pending value that differs from AWSCURRENT but has no token to test is refused.
    let mut altered = original.clone();
    altered["RefreshToken"] = json!("something-else");
    harness
        .secrets
        .put_secret_value()
        .secret_id(&arn)
        .client_request_token(SECOND_TOKEN.replace("002", "003"))
        .secret_string(altered.to_string())
        .version_stages("AWSPENDING")
        .send()
        .await
        .expect("stage an altered value");
    let refused = harness
        .step(&arn, &SECOND_TOKEN.replace("002", "003"), "testSecret")
        .await;
    assert!(refused.is_err(), "{refused:?}");
}

/// `testSecret` sends the new access token to `TestUrl` only over TLS (plain http to the local
/// cloud's 127.0.0.1 only), and a redirect from it is not followed.
#[tokio::test]
async fn test_secret_sends_the_new_token_over_tls_only() {
    let harness = Harness::start().await;
    let mut document = harness.credentials_document().await;
    document["TestUrl"] = json!("http://salesforce.example.com/services/data/v62.0/limits");
    let arn = harness
        .create_secret("sfstack/rotating-test-url", &document, true)
        .await;
    harness.start_rotation(&arn, TOKEN).await;
    for step in ["createSecret", "setSecret"] {
        assert!(harness.step(&arn, TOKEN, step).await.is_ok(), "{step}");
    }
    let refused = harness
        .step(&arn, TOKEN, "testSecret")
        .await
        .expect_err("plain http to another host");
    assert!(
        refused.to_string().contains("TestUrl") && refused.to_string().contains("is not https"),
        "{refused}"
    );

    let mut document = harness.credentials_document().await;
    document["TestUrl"] = json!(format!(
        "{}/services/data/v62.0/limits",
        harness.emulator.base_url()
    ));
    let arn = harness
        .create_secret("sfstack/rotating-local-test-url", &document, true)
        .await;
    harness.start_rotation(&arn, SECOND_TOKEN).await;
    for step in ["createSecret", "setSecret"] {
        assert!(
            harness.step(&arn, SECOND_TOKEN, step).await.is_ok(),
            "{step}"
        );
    }
    assert_eq!(
        harness.step(&arn, SECOND_TOKEN, "testSecret").await,
        Ok(Outcome::Tested)
    );
}
