//! Where the session comes from: the secret `sf-token-refresh` keeps fresh (no login on the hot
//! path), the credentials when there is none, and the original's environment variables.

use serde_json::Value;
use sf_common::Settings;
use sf_invoke_api::HandlerState;
use sfstack_test_support::demo;

use crate::harness::{Fixture, event, fixture_event, get, invoke, try_invoke};

/// Logs in the way `sf-token-refresh` does and stores the session in `secret_id`.
async fn refresh_session(fixture: &Fixture, secret_id: &str) -> anyhow::Result<String> {
    store_new_session(fixture.base_url(), &fixture.secrets, secret_id).await
}

/// Logs in to the org at `login_url` with the demo JWT credentials and stores the session in
/// `secret_id`; returns its access token.
async fn store_new_session(
    login_url: &str,
    secrets: &sf_common::Secrets,
    secret_id: &str,
) -> anyhow::Result<String> {
    let credentials = salesforce::Credentials::from_json(&demo::jwt_credentials(login_url))?;
    let client = salesforce::Client::new(credentials, salesforce::ClientConfig::default())?;
    let session = client.login().await?;
    secrets.store_session(secret_id, &session).await?;
    Ok(session.access_token.expose().to_owned())
}

async fn create_session_secret(fixture: &Fixture, name: &str) -> anyhow::Result<String> {
    let created = fixture
        .secrets
        .client()
        .create_secret()
        .name(name)
        .secret_string("{}")
        .send()
        .await?;
    created
        .arn
        .ok_or_else(|| anyhow::anyhow!("moto returned no ARN"))
}

fn operations() -> anyhow::Result<Vec<Value>> {
    Ok(vec![
        fixture_event("phoneLookup", &[])?,
        fixture_event("queryOne", &[])?,
        event(&[
            ("sf_operation", "lookup"),
            ("sf_object", "Contact"),
            ("sf_fields", "Name"),
            ("LastName", "Hopper"),
        ]),
        fixture_event("createCase", &[])?,
        event(&[
            ("sf_operation", "search"),
            ("q", "Lovelace"),
            ("sf_fields", "Name"),
            ("sf_object", "Contact"),
        ]),
    ])
}

#[tokio::test]
async fn a_stored_session_means_no_login_on_the_hot_path() -> anyhow::Result<()> {
    let fixture = Fixture::start().await?;
    let session_arn = create_session_secret(&fixture, "sfstack/salesforce-session").await?;
    refresh_session(&fixture, &session_arn).await?;
    fixture.clear_log().await?;

    let state = fixture.state(&[("SF_SESSION_SECRET_ARN", session_arn.as_str())])?;
    for event in operations()? {
        let output = invoke(&state, &event).await?;
        assert!(!output.is_empty(), "{event}");
    }
    let log = fixture.log().await?;
    assert_eq!(fixture.logins().await?, 0, "{log:#?}");
    assert_eq!(log.len(), 5, "{log:#?}");

    // sf-token-refresh replaced the session and the old one expired: the function re-reads
    // the secret and uses the new token, still without logging in.
    fixture.expire_sessions().await?;
    refresh_session(&fixture, &session_arn).await?;
    fixture.clear_log().await?;
    let output = invoke(&state, &fixture_event("phoneLookup", &[])?).await?;
    assert_eq!(get(&output, "Name")?, "Ada Lovelace");
    assert_eq!(fixture.logins().await?, 0);
    let statuses: Vec<u64> = fixture
        .data_requests()
        .await?
        .iter()
        .filter_map(|entry| entry["status"].as_u64())
        .collect();
    assert_eq!(statuses, vec![401, 200]);

    // The session expired and the secret was not refreshed: one login with the credentials,
    // one retry, and the environment keeps that client.
    fixture.expire_sessions().await?;
    fixture.clear_log().await?;
    let output = invoke(&state, &fixture_event("phoneLookup", &[])?).await?;
    assert_eq!(get(&output, "Name")?, "Ada Lovelace");
    invoke(&state, &fixture_event("queryOne", &[])?).await?;
    assert_eq!(fixture.logins().await?, 1);
    Ok(())
}

#[tokio::test]
async fn an_empty_session_secret_falls_back_to_one_login() -> anyhow::Result<()> {
    let fixture = Fixture::start().await?;
    let session_arn = create_session_secret(&fixture, "sfstack/salesforce-session").await?;
    let state = fixture.state(&[("SF_SESSION_SECRET_ARN", session_arn.as_str())])?;
    for event in operations()? {
        invoke(&state, &event).await?;
    }
    assert_eq!(fixture.logins().await?, 1);
    Ok(())
}

#[tokio::test]
async fn the_original_environment_variables_and_password_credentials_work() -> anyhow::Result<()> {
    let fixture = Fixture::start().await?;
    let created = fixture
        .secrets
        .client()
        .create_secret()
        .name("sfstack/original-credentials")
        .secret_string(demo::password_credentials("https://login.salesforce.com"))
        .send()
        .await?;
    let arn = created.arn.unwrap_or_default();
    let base_url = fixture.base_url().to_owned();
    let variables = [
        ("SF_CREDENTIALS_SECRETS_MANAGER_ARN", arn.as_str()),
        ("SF_HOST", base_url.as_str()),
        ("SF_VERSION", "v62.0"),
        ("SF_USERNAME", demo::USERNAME),
        ("SF_ADAPTER_NAMESPACE", "amazonconnect"),
        ("LOGGING_LEVEL", "INFO"),
    ];
    let settings = Settings::from_lookup(|name| {
        variables
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.to_string())
    })?;
    let state = HandlerState::new(Ok(settings), fixture.secrets.clone());
    let output = invoke(&state, &fixture_event("phoneLookup", &[])?).await?;
    assert_eq!(get(&output, "Name")?, "Ada Lovelace");
    let log = fixture.log().await?;
    let grants: Vec<&Value> = log
        .iter()
        .map(|entry| &entry["grant_type"])
        .filter(|grant| grant.is_string())
        .collect();
    assert_eq!(grants, vec!["password"]);
    assert!(
        log.iter()
            .any(|entry| entry["path"] == "/services/data/v62.0/parameterizedSearch"),
        "{log:#?}"
    );
    Ok(())
}

#[tokio::test]
async fn refused_credentials_are_read_again_after_they_change() -> anyhow::Result<()> {
    let fixture = Fixture::start().await?;
    let mut wrong: Value = serde_json::from_str(&demo::password_credentials(fixture.base_url()))?;
    wrong["Password"] = Value::String("an-old-password".into());
    let created = fixture
        .secrets
        .client()
        .create_secret()
        .name("sfstack/rotated-credentials")
        .secret_string(wrong.to_string())
        .send()
        .await?;
    let arn = created.arn.unwrap_or_default();
    let state = fixture.state(&[("SF_CREDENTIALS_SECRET_ARN", arn.as_str())])?;
    let event = fixture_event("phoneLookup", &[])?;

    let refused = try_invoke(&state, &event).await.expect_err("old password");
    assert_eq!(refused.error_type(), "SalesforceError", "{refused}");
    assert!(
        !refused.to_string().contains("an-old-password"),
        "{refused}"
    );

    // The operator fixes the secret; the same warm environment picks it up on the next call.
    fixture
        .secrets
        .client()
        .put_secret_value()
        .secret_id(&arn)
        .secret_string(demo::password_credentials(fixture.base_url()))
        .send()
        .await?;
    let output = invoke(&state, &event).await?;
    assert_eq!(get(&output, "Name")?, "Ada Lovelace");
    Ok(())
}

/// Every session of the org expired, the one this environment used and the newer one the
/// secret holds alike: the function tries the newer one, then logs in, and the call succeeds.
#[tokio::test]
async fn a_newer_stored_session_that_expired_too_ends_in_one_login() -> anyhow::Result<()> {
    let fixture = Fixture::start().await?;
    let session_arn = create_session_secret(&fixture, "sfstack/salesforce-session").await?;
    refresh_session(&fixture, &session_arn).await?;
    let state = fixture.state(&[("SF_SESSION_SECRET_ARN", session_arn.as_str())])?;
    invoke(&state, &fixture_event("phoneLookup", &[])?).await?;

    // The token refresh stored a newer session; then every session expired.
    refresh_session(&fixture, &session_arn).await?;
    fixture.expire_sessions().await?;
    fixture.clear_log().await?;
    let output = invoke(&state, &fixture_event("phoneLookup", &[])?).await?;
    assert_eq!(get(&output, "Name")?, "Ada Lovelace");
    assert_eq!(fixture.logins().await?, 1, "one login after both sessions");
    Ok(())
}

/// Stands in for `sf-token-refresh` behind the [`SessionRenewer`] seam: logs in as it does,
/// stores the session, and counts the requests; or refuses, as a failed refresh does.
struct FakeTokenRefresh {
    login_url: String,
    secrets: sf_common::Secrets,
    session_arn: String,
    refuse: bool,
    /// Stores a session and then refuses, as when another environment's renewal stores one
    /// while this caller's invoke is throttled.
    throttled_while_another_renews: bool,
    calls: std::sync::atomic::AtomicUsize,
}

impl sf_invoke_api::SessionRenewer for FakeTokenRefresh {
    fn renew(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if self.refuse {
                return Err("sfstack-x-sf-token-refresh answered Unhandled: RefreshFailed".into());
            }
            store_new_session(&self.login_url, &self.secrets, &self.session_arn)
                .await
                .map_err(|error| error.to_string())?;
            if self.throttled_while_another_renews {
                return Err("invoking sfstack-x-sf-token-refresh failed: TooManyRequestsException: Rate Exceeded.".into());
            }
            Ok(())
        })
    }
}

/// Handler state in the refresh-token flow, renewing through `renewer`. Its credentials secret
/// points nowhere: reading it would fail the call.
fn refresh_flow_state(
    fixture: &Fixture,
    session_arn: &str,
    renewer: std::sync::Arc<FakeTokenRefresh>,
) -> anyhow::Result<HandlerState> {
    let settings = Settings::from_lookup(|name| match name {
        "SF_CREDENTIALS_SECRET_ARN" => {
            Some("arn:aws:secretsmanager:us-east-1:123456789012:secret:unreadable".into())
        }
        "SF_SESSION_SECRET_ARN" => Some(session_arn.to_string()),
        "SF_TOKEN_REFRESH_FUNCTION" => Some("sfstack-x-sf-token-refresh".into()),
        _ => None,
    })?;
    Ok(HandlerState::new(Ok(settings), fixture.secrets.clone()).with_renewer(renewer))
}

/// In the refresh-token flow (`SF_TOKEN_REFRESH_FUNCTION` set) the function never logs in: a
/// rejected or missing stored session is renewed by the token refresh function, and the
/// function reads the secret again. It does not even read the credentials (which hold the
/// refresh token). When the renewal fails, the call fails and says where to look.
#[tokio::test]
async fn in_the_refresh_token_flow_sessions_are_renewed_by_the_token_refresh_function()
-> anyhow::Result<()> {
    let fixture = Fixture::start().await?;
    let session_arn = create_session_secret(&fixture, "sfstack/salesforce-session").await?;
    let renewer = std::sync::Arc::new(FakeTokenRefresh {
        login_url: fixture.base_url().to_string(),
        secrets: fixture.secrets.clone(),
        session_arn: session_arn.clone(),
        refuse: false,
        throttled_while_another_renews: false,
        calls: Default::default(),
    });
    let state = refresh_flow_state(&fixture, &session_arn, renewer.clone())?;

    // No session stored yet: renewed once, then used.
    fixture.clear_log().await?;
    let output = invoke(&state, &fixture_event("phoneLookup", &[])?).await?;
    assert_eq!(get(&output, "Name")?, "Ada Lovelace");
    assert_eq!(renewer.calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    // The stored session rejected: renewed again, the call repeated, one login each time and
    // every one of them the renewer's.
    fixture.expire_sessions().await?;
    let output = invoke(&state, &fixture_event("phoneLookup", &[])?).await?;
    assert_eq!(get(&output, "Name")?, "Ada Lovelace");
    assert_eq!(renewer.calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(fixture.logins().await?, 2);

    // A renewal that fails: the call fails with SalesforceUnavailable naming the function.
    let refusing = std::sync::Arc::new(FakeTokenRefresh {
        refuse: true,
        throttled_while_another_renews: false,
        calls: Default::default(),
        login_url: fixture.base_url().to_string(),
        secrets: fixture.secrets.clone(),
        session_arn: session_arn.clone(),
    });
    let state = refresh_flow_state(&fixture, &session_arn, refusing.clone())?;
    fixture.expire_sessions().await?;
    let error = try_invoke(&state, &fixture_event("phoneLookup", &[])?)
        .await
        .expect_err("no session");
    assert_eq!(error.error_type(), "SalesforceUnavailable", "{error}");
    assert!(
        error
            .to_string()
            .contains("sfstack-x-sf-token-refresh answered Unhandled")
            && error.to_string().contains("hint:"),
        "{error}"
    );
    assert_eq!(refusing.calls.load(std::sync::atomic::Ordering::SeqCst), 1);

    // Throttled while another environment's renewal stores a session: that one is used.
    let throttled = std::sync::Arc::new(FakeTokenRefresh {
        refuse: false,
        throttled_while_another_renews: true,
        calls: Default::default(),
        login_url: fixture.base_url().to_string(),
        secrets: fixture.secrets.clone(),
        session_arn: session_arn.clone(),
    });
    let state = refresh_flow_state(&fixture, &session_arn, throttled.clone())?;
    fixture.expire_sessions().await?;
    let output = invoke(&state, &fixture_event("phoneLookup", &[])?).await?;
    assert_eq!(get(&output, "Name")?, "Ada Lovelace");
    assert_eq!(throttled.calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    Ok(())
}

#[tokio::test]
async fn the_session_read_at_start_up_serves_the_first_invocation() -> anyhow::Result<()> {
    let fixture = Fixture::start().await?;
    let session_arn = create_session_secret(&fixture, "sfstack/prefetched-session").await?;
    refresh_session(&fixture, &session_arn).await?;
    let state = fixture.state(&[("SF_SESSION_SECRET_ARN", session_arn.as_str())])?;
    state.prefetch().await;
    // The secret now holds a session that Salesforce does not know: the first invocation
    // succeeds only with the session read at start-up.
    let mut unknown: Value =
        serde_json::from_str(&fixture.secrets.get_string(&session_arn, None, None).await?)?;
    unknown["access_token"] = "00D000000000001!not-a-session".into();
    fixture
        .secrets
        .client()
        .put_secret_value()
        .secret_id(&session_arn)
        .secret_string(unknown.to_string())
        .send()
        .await?;
    fixture.clear_log().await?;
    invoke(&state, &fixture_event("phoneLookup", &[])?).await?;
    let log = fixture.log().await?;
    assert_eq!(fixture.logins().await?, 0, "{log:#?}");
    assert_eq!(
        log.len(),
        1,
        "one query, with the prefetched session: {log:#?}"
    );

    // Without a stored session the start-up read keeps nothing, and the first invocation
    // logs in with the credentials as before.
    let empty_arn = create_session_secret(&fixture, "sfstack/empty-session").await?;
    let state = fixture.state(&[("SF_SESSION_SECRET_ARN", empty_arn.as_str())])?;
    state.prefetch().await;
    fixture.clear_log().await?;
    invoke(&state, &fixture_event("phoneLookup", &[])?).await?;
    assert_eq!(fixture.logins().await?, 1, "{:#?}", fixture.log().await?);
    Ok(())
}
