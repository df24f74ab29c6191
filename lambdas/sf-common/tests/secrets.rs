//! The credentials and session secrets against a real moto server.

use sf_common::{Secrets, Settings};
use sfstack_test_support::MotoServer;

async fn secrets_for(moto: &MotoServer) -> Secrets {
    Secrets::new(aws_sdk_secretsmanager::Client::new(
        &moto.sdk_config().await,
    ))
}

#[tokio::test]
async fn credentials_and_session_round_trip_through_secrets_manager() {
    let moto = MotoServer::start().expect("moto starts");
    let secrets = secrets_for(&moto).await;
    let client = secrets.client();
    let credentials = client
        .create_secret()
        .name("sf-credentials")
        .secret_string(
            r#"{"ConsumerKey":"key","ConsumerSecret":"shh","Password":"pw","AccessToken":"tok"}"#,
        )
        .send()
        .await
        .expect("create credentials secret");
    let session_secret = client
        .create_secret()
        .name("sf-session")
        .secret_string("{}")
        .send()
        .await
        .expect("create session secret");
    let session_arn = session_secret.arn.expect("arn");

    let settings = Settings::from_lookup(|name| match name {
        "SF_CREDENTIALS_SECRETS_MANAGER_ARN" => credentials.arn.clone(),
        "SF_USERNAME" => Some("agent@example.com".into()),
        "SF_HOST" => Some("http://127.0.0.1:1".into()),
        _ => None,
    })
    .expect("settings");
    let loaded = secrets
        .load_credentials(&settings)
        .await
        .expect("credentials load");
    assert_eq!(loaded.flow(), salesforce::AuthFlow::Password);
    assert_eq!(loaded.username(), Some("agent@example.com"));
    assert_eq!(loaded.login_url(), "http://127.0.0.1:1");

    assert!(
        secrets
            .load_session(&session_arn)
            .await
            .expect("reads")
            .is_none(),
        "{{}} means no session yet"
    );
    let session: salesforce::Session = serde_json::from_str(
        r#"{"access_token":"00D!abc","instance_url":"http://127.0.0.1:2","issued_at":5}"#,
    )
    .expect("session");
    secrets
        .store_session(&session_arn, &session)
        .await
        .expect("stores");
    let stored = secrets
        .load_session(&session_arn)
        .await
        .expect("reads")
        .expect("present");
    assert_eq!(stored.session, session);
    assert!(stored.refreshed_at > 0);

    let error = secrets
        .load_session("arn:aws:secretsmanager:us-east-1:123456789012:secret:missing")
        .await
        .expect_err("missing secret");
    assert!(error.to_string().contains("GetSecretValue"), "{error}");
}
