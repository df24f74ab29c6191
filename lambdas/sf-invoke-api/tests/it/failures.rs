//! Salesforce failure drills: expired sessions, the daily limit, 5xx answers, hangs, and a
//! misconfigured function.

use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use sf_common::{Secrets, Settings};
use sf_invoke_api::HandlerState;

use crate::harness::{Fixture, event, get, invoke, try_invoke};

fn grace() -> Value {
    event(&[
        ("sf_operation", "lookup"),
        ("sf_object", "Contact"),
        ("sf_fields", "Name"),
        ("LastName", "Hopper"),
    ])
}

fn new_case() -> Value {
    event(&[
        ("sf_operation", "create"),
        ("sf_object", "Case"),
        ("Subject", "Drill"),
        ("Status", "New"),
    ])
}

fn statuses(log: &[Value]) -> Vec<u64> {
    log.iter()
        .filter_map(|entry| entry["status"].as_u64())
        .collect()
}

#[tokio::test]
async fn an_expired_session_costs_one_login_and_one_retry() -> anyhow::Result<()> {
    let fixture = Fixture::start().await?;
    let state = fixture.state(&[])?;
    invoke(&state, &grace()).await?;
    fixture.expire_sessions().await?;
    fixture.clear_log().await?;

    let output = invoke(&state, &grace()).await?;
    assert_eq!(get(&output, "Name")?, "Grace Hopper");
    assert_eq!(fixture.logins().await?, 1);
    assert_eq!(statuses(&fixture.data_requests().await?), vec![401, 200]);

    // A create after another expiry is repeated once too: the 401 means nothing was created.
    fixture.expire_sessions().await?;
    fixture.clear_log().await?;
    invoke(&state, &new_case()).await?;
    assert_eq!(fixture.logins().await?, 1);
    assert_eq!(statuses(&fixture.data_requests().await?), vec![401, 201]);
    Ok(())
}

#[tokio::test]
async fn the_daily_limit_fails_at_once_and_names_the_error_code() -> anyhow::Result<()> {
    let fixture = Fixture::start().await?;
    let state = fixture.state(&[])?;
    invoke(&state, &grace()).await?;
    fixture.set_limits(15_000, 15_000).await?;
    fixture.clear_log().await?;

    let error = try_invoke(&state, &grace()).await.err();
    let error = error.ok_or_else(|| anyhow::anyhow!("the call succeeded over the limit"))?;
    assert_eq!(error.error_type(), "SalesforceError");
    assert_eq!(
        error.to_string(),
        "Salesforce rejected the call: REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded."
    );
    let log = fixture.data_requests().await?;
    assert_eq!(statuses(&log), vec![403], "no retry storm: {log:#?}");
    assert_eq!(fixture.logins().await?, 0);
    Ok(())
}

#[tokio::test]
async fn server_errors_are_retried_for_reads_only() -> anyhow::Result<()> {
    let fixture = Fixture::start().await?;
    // One retry (the default of SF_MAX_RETRIES).
    let state = fixture.state(&[("SF_MAX_RETRIES", "1")])?;
    invoke(&state, &grace()).await?;

    // A read meets one 503 and succeeds on the retry.
    fixture.clear_log().await?;
    fixture
        .add_faults(json!({"count": 1, "status": 503}))
        .await?;
    let output = invoke(&state, &grace()).await?;
    assert_eq!(get(&output, "Name")?, "Grace Hopper");
    assert_eq!(statuses(&fixture.data_requests().await?), vec![503, 200]);

    // A read that keeps meeting 503s fails cleanly after the retry.
    fixture.clear_log().await?;
    fixture
        .add_faults(json!({"count": 2, "status": 503}))
        .await?;
    let error = try_invoke(&state, &grace()).await.err();
    let error = error.ok_or_else(|| anyhow::anyhow!("succeeded despite the faults"))?;
    assert_eq!(error.error_type(), "SalesforceUnavailable", "{error}");
    assert!(error.to_string().contains("503"), "{error}");
    assert_eq!(statuses(&fixture.data_requests().await?), vec![503, 503]);

    // A create is never repeated once sent: Salesforce may have acted on it.
    fixture.clear_log().await?;
    fixture
        .add_faults(json!({"count": 1, "status": 503}))
        .await?;
    let error = try_invoke(&state, &new_case()).await.err();
    let error = error.ok_or_else(|| anyhow::anyhow!("succeeded despite the fault"))?;
    assert_eq!(error.error_type(), "SalesforceUnavailable", "{error}");
    assert_eq!(statuses(&fixture.data_requests().await?), vec![503]);
    fixture.clear_faults().await?;
    Ok(())
}

#[tokio::test]
async fn a_hanging_salesforce_times_out_before_the_deadline() -> anyhow::Result<()> {
    let fixture = Fixture::start().await?;

    // The request timeout (300 ms, one retry) runs out first.
    let state = fixture.state(&[("SF_REQUEST_TIMEOUT_MS", "300"), ("SF_MAX_RETRIES", "1")])?;
    invoke(&state, &grace()).await?;
    fixture
        .add_faults(json!({"count": 2, "delay_ms": 5000}))
        .await?;
    let started = Instant::now();
    let deadline = SystemTime::now() + Duration::from_secs(6);
    let error = sf_invoke_api::handle(&state, &grace(), Some(deadline))
        .await
        .err();
    let elapsed = started.elapsed();
    let error = error.ok_or_else(|| anyhow::anyhow!("succeeded despite the hang"))?;
    assert_eq!(error.error_type(), "Timeout", "{error}");
    assert!(
        error.to_string().contains("SF_REQUEST_TIMEOUT_MS"),
        "{error}"
    );
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    fixture.clear_faults().await?;

    // The invocation's deadline is tighter than the settings (2.5 s requests): the call is
    // abandoned DEADLINE_MARGIN before it.
    let state = fixture.state(&[])?;
    invoke(&state, &grace()).await?;
    fixture
        .add_faults(json!({"count": 1, "delay_ms": 5000}))
        .await?;
    let started = Instant::now();
    let deadline = SystemTime::now() + Duration::from_millis(1500);
    let error = sf_invoke_api::handle(&state, &grace(), Some(deadline))
        .await
        .err();
    let elapsed = started.elapsed();
    let error = error.ok_or_else(|| anyhow::anyhow!("succeeded despite the hang"))?;
    assert_eq!(error.error_type(), "Timeout", "{error}");
    assert!(error.to_string().contains("deadline"), "{error}");
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
    fixture.clear_faults().await?;

    // A deadline already too close fails at once, without calling Salesforce.
    fixture.clear_log().await?;
    let deadline = SystemTime::now() + Duration::from_millis(100);
    let error = sf_invoke_api::handle(&state, &grace(), Some(deadline))
        .await
        .err();
    assert_eq!(error.map(|error| error.error_type()), Some("Timeout"));
    assert!(fixture.data_requests().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn configuration_errors_name_the_variable_or_secret() -> anyhow::Result<()> {
    let fixture = Fixture::start().await?;
    let cases: Vec<(HandlerState, &str)> = vec![
        (
            HandlerState::new(Settings::from_lookup(|_| None), fixture.secrets.clone()),
            "SF_CREDENTIALS_SECRET_ARN",
        ),
        (
            HandlerState::new(
                Settings::from_lookup(|name| match name {
                    "SF_CREDENTIALS_SECRET_ARN" => Some("x".into()),
                    "SF_REQUEST_TIMEOUT_MS" => Some("soon".into()),
                    _ => None,
                }),
                fixture.secrets.clone(),
            ),
            "SF_REQUEST_TIMEOUT_MS",
        ),
        (
            HandlerState::new(
                Ok(fixture.settings(&[("SF_CREDENTIALS_SECRET_ARN", "sfstack/no-such-secret")])?),
                fixture.secrets.clone(),
            ),
            "sfstack/no-such-secret",
        ),
        (
            HandlerState::new(
                Ok(fixture.settings(&[("SF_SESSION_SECRET_ARN", "sfstack/no-such-session")])?),
                fixture.secrets.clone(),
            ),
            "sfstack/no-such-session",
        ),
    ];
    for (state, name) in cases {
        let error = try_invoke(&state, &grace()).await.err();
        let error = error.ok_or_else(|| anyhow::anyhow!("succeeded without configuration"))?;
        assert_eq!(error.error_type(), "ConfigurationError", "{error}");
        assert!(error.to_string().contains(name), "{error}");
    }
    // Bad credentials are reported by name, never by value.
    let secrets: &Secrets = &fixture.secrets;
    let created = secrets
        .client()
        .create_secret()
        .name("sfstack/wrong-password")
        .secret_string(
            json!({
                "LoginUrl": fixture.base_url(),
                "ConsumerKey": sfstack_test_support::demo::CLIENT_ID,
                "ConsumerSecret": sfstack_test_support::demo::CLIENT_SECRET,
                "Username": sfstack_test_support::demo::USERNAME,
                "Password": "not-the-password-SECRET",
            })
            .to_string(),
        )
        .send()
        .await?;
    let arn = created.arn.unwrap_or_default();
    let state = fixture.state(&[("SF_CREDENTIALS_SECRET_ARN", arn.as_str())])?;
    let error = try_invoke(&state, &grace()).await.err();
    let error = error.ok_or_else(|| anyhow::anyhow!("logged in with a wrong password"))?;
    assert_eq!(error.error_type(), "SalesforceError", "{error}");
    assert!(error.to_string().contains("invalid_grant"), "{error}");
    assert!(!error.to_string().contains("SECRET"), "{error}");
    Ok(())
}
