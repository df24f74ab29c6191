//! The refresh: each flow, failures, configuration errors, logs and refresh-token rotation.

use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use salesforce::{Client, ClientConfig};
use sf_common::{Secrets, Settings};
use sf_token_refresh::{Error, TokenRefresher};
use sfstack_test_support::demo;

use crate::support::{Harness, refresh_token_credentials};

#[derive(Clone, Copy, Debug)]
enum Flow {
    Jwt,
    Password,
    RefreshToken,
}

#[tokio::test]
async fn each_flow_stores_a_session_that_works_without_another_login() {
    let cases = [
        (Flow::Jwt, "urn:ietf:params:oauth:grant-type:jwt-bearer"),
        (Flow::Password, "password"),
        (Flow::RefreshToken, "refresh_token"),
    ];
    for (flow, grant_type) in cases {
        let harness = Harness::start(|login_url| match flow {
            Flow::Jwt => demo::jwt_credentials(login_url),
            Flow::Password => demo::password_credentials(login_url),
            // Replaced below, once the emulator can issue a refresh token.
            Flow::RefreshToken => "{}".to_owned(),
        })
        .await;
        if let Flow::RefreshToken = flow {
            let refresh_token = harness.refresh_token().await;
            let document = refresh_token_credentials(harness.emulator.base_url(), &refresh_token);
            harness
                .put_secret_string(&harness.credentials_arn, &document)
                .await;
        }
        harness
            .admin(reqwest::Method::DELETE, "requests", None)
            .await;

        let summary = harness
            .refresher()
            .refresh()
            .await
            .expect("refresh succeeds");
        assert_eq!(
            summary.instance_url,
            harness.emulator.base_url(),
            "{flow:?}"
        );
        assert!(summary.refreshed_at > 0, "{flow:?}");
        assert_eq!(
            harness.token_grants(),
            vec![grant_type.to_owned()],
            "{flow:?}"
        );

        let stored = harness
            .secrets
            .load_session(&harness.session_arn)
            .await
            .expect("session secret reads")
            .expect("a session is stored");
        assert_eq!(stored.session.instance_url, summary.instance_url);
        assert_eq!(stored.session.issued_at, summary.issued_at);
        assert_eq!(
            stored.session.refresh_token, None,
            "{flow:?}: no refresh token in the session secret"
        );
        assert!((stored.refreshed_at - summary.refreshed_at).abs() < 60_000);

        // Another function: the stored session, no credentials, so it cannot log in.
        harness
            .admin(reqwest::Method::DELETE, "requests", None)
            .await;
        let client =
            Client::with_session(stored.session, None, ClientConfig::default()).expect("client");
        let contacts = client
            .query("SELECT Id, Name FROM Contact")
            .await
            .expect("query with the stored session");
        assert!(contacts.total_size > 0);
        assert_eq!(client.login_count(), 0);
        assert!(
            harness.token_grants().is_empty(),
            "{flow:?}: no extra login happened"
        );
        assert!(
            !harness.emulator.request_log().is_empty(),
            "the query reached the emulator"
        );
    }
}

#[tokio::test]
async fn a_failed_refresh_leaves_the_previous_session_and_names_the_salesforce_error() {
    let harness = Harness::start(demo::jwt_credentials).await;
    harness
        .refresher()
        .refresh()
        .await
        .expect("first refresh succeeds");
    let before = harness.secret_string(&harness.session_arn).await;
    let versions_before = version_count(&harness).await;

    let mut wrong: serde_json::Value =
        serde_json::from_str(&demo::password_credentials(harness.emulator.base_url()))
            .expect("json");
    wrong["Password"] = "not-the-password".into();
    harness
        .put_secret_string(&harness.credentials_arn, &wrong.to_string())
        .await;

    let error = harness
        .refresher()
        .refresh()
        .await
        .expect_err("wrong password");
    assert!(matches!(error, Error::RefreshFailed { .. }), "{error:?}");
    let diagnostic = Diagnostic::from(error);
    assert_eq!(diagnostic.error_type, "RefreshFailed");
    for expected in [
        "invalid_grant: authentication failure",
        "password flow",
        "hint:",
        "previous session is left in place",
    ] {
        assert!(
            diagnostic.error_message.contains(expected),
            "{}",
            diagnostic.error_message
        );
    }
    assert!(!diagnostic.error_message.contains("not-the-password"));
    assert_eq!(
        harness.secret_string(&harness.session_arn).await,
        before,
        "the session was not touched"
    );
    assert_eq!(
        version_count(&harness).await,
        versions_before,
        "nothing was written"
    );
}

async fn version_count(harness: &Harness) -> usize {
    harness
        .secrets
        .client()
        .list_secret_version_ids()
        .secret_id(&harness.session_arn)
        .send()
        .await
        .expect("list versions")
        .versions
        .unwrap_or_default()
        .len()
}

#[tokio::test]
async fn missing_settings_are_configuration_errors() {
    let moto = sfstack_test_support::MotoServer::start().expect("moto starts");
    let secrets = Secrets::new(aws_sdk_secretsmanager::Client::new(
        &moto.sdk_config().await,
    ));
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("SF_CREDENTIALS_SECRET_ARN", "arn:credentials")],
            "SF_SESSION_SECRET_ARN",
        ),
        (
            &[("SF_SESSION_SECRET_ARN", "arn:session")],
            "SF_CREDENTIALS_SECRET_ARN",
        ),
        (
            &[
                ("SF_CREDENTIALS_SECRET_ARN", "arn:credentials"),
                ("SF_SESSION_SECRET_ARN", "arn:session"),
                ("SF_API_VERSION", "latest"),
            ],
            "latest",
        ),
    ];
    for (pairs, named) in cases {
        let result = Settings::from_lookup(|name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
        .map_err(Error::from)
        .and_then(|settings| TokenRefresher::new(settings, secrets.clone()));
        let error = result.expect_err("misconfigured");
        let diagnostic = Diagnostic::from(error);
        assert_eq!(diagnostic.error_type, "ConfigurationError", "{pairs:?}");
        assert!(
            diagnostic.error_message.contains(named),
            "{}",
            diagnostic.error_message
        );
    }
}

#[tokio::test]
async fn a_missing_credentials_secret_is_reported_as_unavailable() {
    let harness = Harness::start(demo::jwt_credentials).await;
    let mut settings = harness.settings();
    settings.credentials_secret_arn =
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:missing".into();
    let error = TokenRefresher::new(settings, harness.secrets.clone())
        .expect("refresher")
        .refresh()
        .await
        .expect_err("no such secret");
    assert_eq!(error.error_type(), "CredentialsUnavailable", "{error}");
    assert!(error.to_string().contains("GetSecretValue"), "{error}");
}

thread_local! {
    /// Where the current thread's log lines go while a test captures them.
    static CAPTURE: RefCell<Option<Arc<Mutex<Vec<u8>>>>> = const { RefCell::new(None) };
}

/// Writes a log line into the current thread's capture buffer, if any.
struct ThreadCapture;

impl Write for ThreadCapture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|capture| {
            if let Some(buffer) = capture.borrow().as_ref()
                && let Ok(mut buffer) = buffer.lock()
            {
                buffer.extend_from_slice(bytes);
            }
        });
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures what the current thread logs (a `#[tokio::test]` runs on one thread) while `run`
/// runs.
///
/// The subscriber is global rather than scoped (`set_default`): with a scoped one, tracing caches
/// a call site as disabled when a parallel test thread without a subscriber hits it first, and
/// lines go missing at random.
async fn capture_logs<T>(run: impl Future<Output = T>) -> (T, String) {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .json()
            .with_writer(|| ThreadCapture)
            // Everything this crate and its libraries log, but not the emulator's own logs.
            .with_env_filter(tracing_subscriber::EnvFilter::new("trace,sf_emulator=off"))
            .try_init();
    });
    let buffer = Arc::new(Mutex::new(Vec::new()));
    CAPTURE.with(|capture| *capture.borrow_mut() = Some(Arc::clone(&buffer)));
    let output = run.await;
    CAPTURE.with(|capture| *capture.borrow_mut() = None);
    let logs = buffer
        .lock()
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default();
    (output, logs)
}

#[tokio::test]
async fn logs_and_the_summary_name_the_instance_and_times_but_never_a_token() {
    let harness = Harness::start(|_| "{}".to_owned()).await;
    let refresh_token = harness.refresh_token().await;
    harness
        .put_secret_string(
            &harness.credentials_arn,
            &refresh_token_credentials(harness.emulator.base_url(), &refresh_token),
        )
        .await;
    // Rotation makes the refresh grant return a new refresh token, which must not be logged either.
    harness
        .admin(
            reqwest::Method::PUT,
            "refresh-tokens/rotation",
            Some(serde_json::json!({"enabled": true})),
        )
        .await;

    let event: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/scheduled-event.json")).expect("fixture");
    let refresher = harness.refresher();
    let (summary, logs) =
        capture_logs(refresher.handle(LambdaEvent::new(event, Context::default()))).await;
    let summary = summary.expect("refresh succeeds");
    let stored = harness
        .secrets
        .load_session(&harness.session_arn)
        .await
        .expect("reads")
        .expect("stored");
    let credentials: serde_json::Value =
        serde_json::from_str(&harness.secret_string(&harness.credentials_arn).await).expect("json");
    let new_refresh_token = credentials["RefreshToken"]
        .as_str()
        .expect("refresh token")
        .to_owned();
    assert_ne!(
        new_refresh_token, refresh_token,
        "the rotated refresh token was saved"
    );

    assert!(
        logs.contains("salesforce session refreshed and stored"),
        "{logs}"
    );
    assert!(logs.contains(harness.emulator.base_url()), "{logs}");
    assert!(logs.contains("Scheduled Event"), "{logs}");
    let summary_json = serde_json::to_string(&summary).expect("summary json");
    for token in [
        stored.session.access_token.expose(),
        &refresh_token,
        &new_refresh_token,
    ] {
        assert!(
            !logs.contains(token),
            "a token leaked into the logs: {logs}"
        );
        assert!(
            !summary_json.contains(token),
            "a token leaked into the summary: {summary_json}"
        );
    }
    let keys: Vec<String> =
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&summary_json)
            .expect("object")
            .keys()
            .cloned()
            .collect();
    assert_eq!(keys, ["instance_url", "issued_at", "refreshed_at"]);
}

#[tokio::test]
async fn rotated_refresh_tokens_are_saved_so_the_next_refresh_works() {
    let harness = Harness::start(|_| "{}".to_owned()).await;
    let refresh_token = harness.refresh_token().await;
    harness
        .put_secret_string(
            &harness.credentials_arn,
            &refresh_token_credentials(harness.emulator.base_url(), &refresh_token),
        )
        .await;
    harness
        .admin(
            reqwest::Method::PUT,
            "refresh-tokens/rotation",
            Some(serde_json::json!({"enabled": true})),
        )
        .await;

    let refresher = harness.refresher();
    let mut seen = vec![refresh_token];
    for run in 0..3 {
        refresher
            .refresh()
            .await
            .unwrap_or_else(|error| panic!("run {run}: {error}"));
        let credentials: serde_json::Value =
            serde_json::from_str(&harness.secret_string(&harness.credentials_arn).await)
                .expect("json");
        let current = credentials["RefreshToken"]
            .as_str()
            .expect("refresh token")
            .to_owned();
        assert!(
            !seen.contains(&current),
            "run {run}: a new refresh token was stored"
        );
        assert_eq!(
            credentials["Note"], "kept as is",
            "other keys are preserved"
        );
        seen.push(current);
    }
    let stored = harness.secret_string(&harness.session_arn).await;
    for token in &seen {
        assert!(
            !stored.contains(token.as_str()),
            "the session secret holds no refresh token"
        );
    }
}

#[tokio::test]
async fn the_handler_accepts_a_scheduled_event_or_a_manual_invoke() {
    let harness = Harness::start(demo::jwt_credentials).await;
    let refresher = harness.refresher();
    let scheduled: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/scheduled-event.json")).expect("fixture");
    for payload in [scheduled, serde_json::json!({})] {
        let summary = refresher
            .handle(LambdaEvent::new(payload.clone(), Context::default()))
            .await
            .unwrap_or_else(|error| panic!("{payload}: {error}"));
        assert_eq!(summary.instance_url, harness.emulator.base_url());
    }
}
