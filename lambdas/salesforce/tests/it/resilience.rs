//! Expired sessions, API limits, server errors and timeouts, checked against the request log.

use std::time::{Duration, Instant};

use salesforce::{Client, ClientConfig, Error};
use serde_json::json;
use tokio::task::JoinSet;

use crate::support::{Org, TestResult, fast_config};

const CONTACTS: &str = "SELECT Id FROM Contact";

#[tokio::test]
async fn an_expired_session_is_renewed_with_exactly_one_login() -> TestResult {
    let org = Org::start().await?;
    let client = org.jwt_client().await?;
    let before = client.session().await?;
    org.expire_sessions().await?;
    org.clear_requests().await?;

    client.query(CONTACTS).await?;

    assert_eq!(org.token_request_count().await?, 1);
    let statuses: Vec<u64> = org
        .data_requests()
        .await?
        .iter()
        .filter_map(|entry| entry["status"].as_u64())
        .collect();
    assert_eq!(statuses, [401, 200]);
    assert_eq!(client.login_count(), 2);
    assert_ne!(client.session().await?.access_token, before.access_token);
    Ok(())
}

#[tokio::test]
async fn concurrent_callers_rejected_together_share_one_login() -> TestResult {
    let org = Org::start().await?;
    let client = org.jwt_client().await?;
    client.session().await?;
    org.expire_sessions().await?;
    org.clear_requests().await?;

    let mut calls = JoinSet::new();
    for _ in 0..8 {
        let client = client.clone();
        calls.spawn(async move { client.query(CONTACTS).await });
    }
    while let Some(result) = calls.join_next().await {
        result??;
    }
    assert_eq!(org.token_request_count().await?, 1);
    assert_eq!(client.login_count(), 2);
    Ok(())
}

#[tokio::test]
async fn a_seeded_session_is_used_without_logging_in() -> TestResult {
    let org = Org::start().await?;
    let session = org.fresh_session().await?;
    // As stored by a token-refresh function and read back by another.
    let stored = serde_json::to_string(&session)?;
    org.clear_requests().await?;

    let client = Client::with_session(serde_json::from_str(&stored)?, None, fast_config())?;
    client.query(CONTACTS).await?;
    assert_eq!(org.token_request_count().await?, 0);
    assert_eq!(client.login_count(), 0);

    org.expire_sessions().await?;
    assert_eq!(
        client.query(CONTACTS).await.err(),
        Some(Error::SessionExpired)
    );
    assert_eq!(org.token_request_count().await?, 0);
    Ok(())
}

#[tokio::test]
async fn a_seeded_session_with_credentials_logs_in_when_rejected() -> TestResult {
    let org = Org::start().await?;
    let session = org.fresh_session().await?;
    let client = Client::with_session(session, Some(org.jwt_credentials()?), fast_config())?;
    org.expire_sessions().await?;
    org.clear_requests().await?;
    client.query(CONTACTS).await?;
    assert_eq!(org.token_request_count().await?, 1);
    assert_eq!(client.login_count(), 1);
    Ok(())
}

#[tokio::test]
async fn request_limit_exceeded_is_surfaced_without_retrying() -> TestResult {
    let org = Org::start().await?;
    let client = org.jwt_client().await?;
    client.session().await?;
    org.set_api_usage(15000, 15000).await?;
    org.clear_requests().await?;

    let result = client.query(CONTACTS).await;
    let error = result.err().ok_or("the query succeeded over the limit")?;
    assert_eq!(error.status(), Some(403));
    assert_eq!(error.error_code(), Some("REQUEST_LIMIT_EXCEEDED"));
    assert!(!error.is_retryable());
    assert_eq!(org.data_requests().await?.len(), 1);
    assert_eq!(org.token_request_count().await?, 0);
    Ok(())
}

#[tokio::test]
async fn server_errors_are_retried_on_reads_only() -> TestResult {
    let org = Org::start().await?;
    let client = org.jwt_client().await?;
    client.session().await?;

    // Two failures, then success: a GET with two retries gets through.
    org.add_fault(json!({"count": 2, "status": 503})).await?;
    org.clear_requests().await?;
    client.query(CONTACTS).await?;
    assert_eq!(org.data_requests().await?.len(), 3);

    // A create is sent once and its 503 returned, even though a retry would have worked.
    org.add_fault(json!({"count": 1, "status": 503})).await?;
    org.clear_requests().await?;
    let created = client.create("Contact", &json!({"LastName": "Once"})).await;
    assert_eq!(created.err().and_then(|error| error.status()), Some(503));
    assert_eq!(org.data_requests().await?.len(), 1);
    let soql = "SELECT Id FROM Contact WHERE LastName = 'Once'";
    assert_eq!(client.query(soql).await?.total_size, 0);

    // Chatter posts and updates are not repeated either.
    org.add_fault(json!({"count": 1, "status": 500})).await?;
    org.clear_requests().await?;
    let posted = client
        .chatter_post(
            &json!({"feedElementType": "FeedItem", "subjectId": "005000000000001AAA",
            "body": {"messageSegments": [{"type": "Text", "text": "x"}]}}),
        )
        .await;
    assert_eq!(posted.err().and_then(|error| error.status()), Some(500));
    assert_eq!(org.data_requests().await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn reads_give_up_after_the_configured_retries() -> TestResult {
    let org = Org::start().await?;
    let client = org.jwt_client().await?;
    client.session().await?;
    org.add_fault(json!({"count": 10, "status": 500})).await?;
    org.clear_requests().await?;

    let error = client
        .query(CONTACTS)
        .await
        .err()
        .ok_or("the query succeeded")?;
    assert_eq!(error.status(), Some(500));
    assert!(error.is_retryable());
    assert_eq!(
        org.data_requests().await?.len(),
        3,
        "one try and two retries"
    );
    org.admin(reqwest::Method::DELETE, "faults", None).await?;
    Ok(())
}

#[tokio::test]
async fn a_slow_answer_is_a_timeout() -> TestResult {
    let org = Org::start().await?;
    let config = ClientConfig {
        request_timeout: Duration::from_millis(300),
        max_retries: 0,
        ..fast_config()
    };
    let client = Client::new(org.jwt_credentials()?, config)?;
    client.session().await?;
    org.add_fault(json!({"count": 1, "delay_ms": 3000})).await?;

    let started = Instant::now();
    let result = client.query(CONTACTS).await;
    assert_eq!(result.err(), Some(Error::Timeout));
    // The client gave up before the server would have answered.
    assert!(started.elapsed() < Duration::from_millis(3000));
    Ok(())
}

#[tokio::test]
async fn a_timed_out_read_is_retried() -> TestResult {
    let org = Org::start().await?;
    let config = ClientConfig {
        request_timeout: Duration::from_millis(300),
        max_retries: 1,
        ..fast_config()
    };
    let client = Client::new(org.jwt_credentials()?, config)?;
    client.session().await?;
    org.add_fault(json!({"count": 1, "delay_ms": 3000})).await?;
    client.query(CONTACTS).await?;
    Ok(())
}

#[tokio::test]
async fn a_failed_token_request_is_retried_on_server_errors() -> TestResult {
    let org = Org::start().await?;
    let client = org.jwt_client().await?;
    org.add_fault(json!({"count": 1, "status": 503})).await?;
    org.clear_requests().await?;
    client.session().await?;
    assert_eq!(org.token_request_count().await?, 2);
    assert_eq!(client.login_count(), 1);
    Ok(())
}
