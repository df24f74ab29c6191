//! Every OAuth grant against the emulator: the sessions they produce and the errors they give.

use salesforce::{AuthFlow, Client, Credentials, Error, Secret};
use serde_json::json;

use crate::support::{
    CALLBACK_URL, CONSUMER_KEY, CONSUMER_SECRET, Org, PASSWORD, SECURITY_TOKEN, TestResult,
    USERNAME, demo_key, fast_config, untrusted_key,
};

#[tokio::test]
async fn every_grant_logs_in_and_calls_the_returned_instance() -> TestResult {
    let org = Org::start().await?;
    let cases = [
        ("jwt", org.jwt_credentials()?),
        ("password", org.password_credentials(PASSWORD)?),
        ("client_credentials", org.client_credentials()?),
        ("refresh_token", org.refresh_credentials().await?),
    ];
    for (name, credentials) in cases {
        let client = org.client(credentials)?;
        let session = client
            .session()
            .await
            .map_err(|error| format!("{name}: {error}"))?;
        assert_eq!(session.instance_url, org.base_url, "{name}");
        assert!(!session.access_token.expose().is_empty(), "{name}");
        let contacts = client.query("SELECT Id FROM Contact").await?;
        assert!(contacts.total_size > 0, "{name}");
        assert_eq!(client.login_count(), 1, "{name}");
    }
    Ok(())
}

#[tokio::test]
async fn credentials_documents_log_in_with_the_flow_they_select() -> TestResult {
    let org = Org::start().await?;
    let key = serde_json::to_string(demo_key())?;
    let base = &org.base_url;
    let documents = [
        (
            // The original Amazon Connect package's keys: AccessToken is the security token.
            json!({"ConsumerKey": CONSUMER_KEY, "ConsumerSecret": CONSUMER_SECRET,
                "Password": PASSWORD, "AccessToken": SECURITY_TOKEN, "LoginUrl": base})
            .to_string(),
            AuthFlow::Password,
        ),
        (
            format!(
                r#"{{"ClientId":"{CONSUMER_KEY}","Username":"{USERNAME}","PrivateKey":{key},"LoginUrl":"{base}"}}"#
            ),
            AuthFlow::JwtBearer,
        ),
        (
            json!({"ClientId": CONSUMER_KEY, "ClientSecret": CONSUMER_SECRET,
                "AuthFlow": "client_credentials", "LoginUrl": base})
            .to_string(),
            AuthFlow::ClientCredentials,
        ),
    ];
    for (document, flow) in documents {
        let credentials = Credentials::from_json_with_username(&document, Some(USERNAME))?;
        assert_eq!(credentials.flow(), flow);
        let client = org.client(credentials)?;
        let session = client
            .session()
            .await
            .map_err(|error| format!("{flow}: {error}"))?;
        assert_eq!(session.instance_url, org.base_url, "{flow}");
    }
    Ok(())
}

#[tokio::test]
async fn authorization_code_exchange_returns_a_refresh_token() -> TestResult {
    let org = Org::start().await?;
    let verifier = "a-pkce-verifier-that-is-long-enough-0123456789abcdef";
    let cases = [(None, None), (Some(verifier), Some(verifier))];
    for (challenge, code_verifier) in cases {
        let code = org.authorization_code(challenge).await?;
        let session = salesforce::exchange_authorization_code(
            &fast_config(),
            &org.base_url,
            CONSUMER_KEY,
            &Secret::new(CONSUMER_SECRET),
            &code,
            CALLBACK_URL,
            code_verifier,
        )
        .await?;
        assert_eq!(session.instance_url, org.base_url);
        assert!(
            session.refresh_token.is_some(),
            "no refresh token with PKCE {challenge:?}"
        );
        assert!(session.issued_at.is_some());
    }
    Ok(())
}

#[tokio::test]
async fn bad_authorization_codes_report_the_oauth_error() -> TestResult {
    let org = Org::start().await?;
    let exchange = |code: String, redirect: &'static str| {
        let base_url = org.base_url.clone();
        async move {
            salesforce::exchange_authorization_code(
                &fast_config(),
                &base_url,
                CONSUMER_KEY,
                &Secret::new(CONSUMER_SECRET),
                &code,
                redirect,
                None,
            )
            .await
        }
    };
    // A failed redemption may burn the code, so each case gets its own.
    let mismatched_code = org.authorization_code(None).await?;
    let mismatch = exchange(mismatched_code, "http://127.0.0.1/elsewhere").await;
    assert_eq!(
        mismatch.err().as_ref().and_then(Error::error_code),
        Some("redirect_uri_mismatch")
    );
    let code = org.authorization_code(None).await?;
    exchange(code.clone(), CALLBACK_URL).await?;
    let reused = exchange(code, CALLBACK_URL).await;
    assert_eq!(
        reused.err().as_ref().and_then(Error::error_code),
        Some("invalid_grant")
    );
    Ok(())
}

#[tokio::test]
async fn failed_logins_report_the_oauth_error_without_retrying() -> TestResult {
    let org = Org::start().await?;
    let base = org.base_url.as_str();
    let untrusted = Credentials::jwt_bearer(CONSUMER_KEY, USERNAME, Secret::new(untrusted_key()?))?
        .with_login_url(base)?;
    let wrong_audience = org
        .jwt_credentials()?
        .with_jwt_audience("https://wrong.example.com");
    let unknown_jwt_client =
        Credentials::jwt_bearer("no-such-app", USERNAME, Secret::new(demo_key()))?
            .with_login_url(base)?;
    let cases: Vec<(&str, Credentials, &str, Option<&str>)> = vec![
        (
            "wrong password",
            org.password_credentials("not-the-password")?,
            "invalid_grant",
            Some("authentication failure"),
        ),
        (
            "missing security token",
            Credentials::password(
                CONSUMER_KEY,
                Secret::new(CONSUMER_SECRET),
                USERNAME,
                &Secret::new(PASSWORD),
                None,
            )
            .with_login_url(base)?,
            "invalid_grant",
            Some("authentication failure"),
        ),
        (
            "wrong client secret",
            Credentials::password(
                CONSUMER_KEY,
                Secret::new("not-the-secret"),
                USERNAME,
                &Secret::new(PASSWORD),
                Some(&Secret::new(SECURITY_TOKEN)),
            )
            .with_login_url(base)?,
            "invalid_client",
            Some("invalid client credentials"),
        ),
        (
            "unknown client id",
            Credentials::password(
                "no-such-app",
                Secret::new(CONSUMER_SECRET),
                USERNAME,
                &Secret::new(PASSWORD),
                Some(&Secret::new(SECURITY_TOKEN)),
            )
            .with_login_url(base)?,
            "invalid_client_id",
            Some("client identifier invalid"),
        ),
        (
            "client credentials with the wrong secret",
            Credentials::client_credentials(CONSUMER_KEY, Secret::new("not-the-secret"))
                .with_login_url(base)?,
            "invalid_client",
            Some("invalid client credentials"),
        ),
        ("untrusted jwt key", untrusted, "invalid_grant", None),
        (
            "wrong jwt audience",
            wrong_audience,
            "invalid_grant",
            Some("Audience validation failed"),
        ),
        (
            "jwt for an unknown app",
            unknown_jwt_client,
            "invalid_client_id",
            None,
        ),
        (
            "unknown refresh token",
            Credentials::refresh_token(CONSUMER_KEY, None, Secret::new("not-a-refresh-token"))
                .with_login_url(base)?,
            "invalid_grant",
            Some("expired access/refresh token"),
        ),
    ];
    for (name, credentials, error_code, description) in cases {
        org.clear_requests().await?;
        let client = org.client(credentials)?;
        let result = client.session().await;
        let Err(Error::Auth {
            status,
            error,
            description: actual,
        }) = &result
        else {
            return Err(format!("{name}: expected an auth error, got {result:?}").into());
        };
        assert_eq!(*status, 400, "{name}");
        assert_eq!(error, error_code, "{name}");
        if let Some(expected) = description {
            assert_eq!(actual, expected, "{name}");
        }
        assert_eq!(
            org.token_request_count().await?,
            1,
            "{name}: a 400 must not be retried"
        );
        let message = result
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        for secret in [CONSUMER_SECRET, PASSWORD, SECURITY_TOKEN, "PRIVATE KEY"] {
            assert!(!message.contains(secret), "{name}: {message}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn revoked_refresh_tokens_stop_logging_in() -> TestResult {
    let org = Org::start().await?;
    let client = org.client(org.refresh_credentials().await?)?;
    client.login().await?;
    org.admin(reqwest::Method::POST, "refresh-tokens/revoke", None)
        .await?;
    let result = client.login().await;
    assert_eq!(
        result.err(),
        Some(Error::Auth {
            status: 400,
            error: "invalid_grant".into(),
            description: "expired access/refresh token".into(),
        })
    );
    Ok(())
}

#[tokio::test]
async fn rotated_refresh_tokens_are_used_for_the_next_login() -> TestResult {
    let org = Org::start().await?;
    org.admin(
        reqwest::Method::PUT,
        "refresh-tokens/rotation",
        Some(json!({"enabled": true})),
    )
    .await?;
    let client = org.client(org.refresh_credentials().await?)?;
    let first = client.login().await?;
    let second = client.login().await?;
    assert!(
        first.refresh_token.is_some(),
        "rotation returns a new refresh token"
    );
    assert_ne!(first.refresh_token, second.refresh_token);
    assert_eq!(client.login_count(), 2);
    Ok(())
}

#[tokio::test]
async fn login_replaces_the_cached_session() -> TestResult {
    let org = Org::start().await?;
    let client = org.jwt_client().await?;
    let first = client.session().await?;
    let cached = client.session().await?;
    assert_eq!(first.access_token, cached.access_token);
    assert_eq!(client.login_count(), 1);
    let second = client.login().await?;
    assert_ne!(first.access_token, second.access_token);
    assert_eq!(client.session().await?.access_token, second.access_token);
    assert_eq!(client.login_count(), 2);
    Ok(())
}

#[tokio::test]
async fn a_client_without_credentials_cannot_log_in() -> TestResult {
    let org = Org::start().await?;
    let session = org.fresh_session().await?;
    let client = Client::with_session(session, None, fast_config())?;
    assert!(matches!(
        client.login().await,
        Err(Error::InvalidCredentials(_))
    ));
    Ok(())
}

/// A token request carries the credentials, so a redirect is never followed: the login fails
/// with the redirect's status and the host it pointed at receives nothing.
#[tokio::test]
async fn a_login_never_follows_a_redirect() -> TestResult {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let elsewhere_port = elsewhere.local_addr()?.port();
    let reached = Arc::new(AtomicUsize::new(0));
    let counter = reached.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = elsewhere.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                .await;
        }
    });
    let redirecting = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let login_url = format!("http://{}", redirecting.local_addr()?);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = redirecting.accept().await {
            let mut buffer = vec![0_u8; 16 * 1024];
            let _ = stream.read(&mut buffer).await;
            let answer = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.1:{elsewhere_port}/services/oauth2/token\r\ncontent-length: 0\r\n\r\n"
            );
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    let credentials = Credentials::password(
        CONSUMER_KEY,
        Secret::new(CONSUMER_SECRET),
        USERNAME,
        &Secret::new(PASSWORD),
        Some(&Secret::new(SECURITY_TOKEN)),
    )
    .with_login_url(&login_url)?;
    let client = Client::new(credentials, fast_config())?;
    let refused = client
        .session()
        .await
        .expect_err("a redirect is not a session");
    assert!(refused.to_string().contains("307"), "{refused}");
    assert_eq!(
        reached.load(Ordering::SeqCst),
        0,
        "the redirect was followed"
    );
    Ok(())
}
