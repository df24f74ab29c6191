//! The functions' AWS configuration (`sf_common::aws_config_from`) and its HTTP client, reqwest
//! behind the SDK's `HttpClient` trait: real calls to a real moto server, and the failures the
//! SDK's retries depend on telling apart.

use std::time::Duration;

use aws_sdk_secretsmanager::config::timeout::TimeoutConfig;
use aws_sdk_secretsmanager::error::SdkError;
use sfstack_test_support::MotoServer;

fn secrets_manager(variables: &[(&'static str, String)]) -> aws_sdk_secretsmanager::Client {
    let config = sf_common::aws_config_from(|name| {
        variables
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.clone())
    });
    aws_sdk_secretsmanager::Client::new(&config)
}

#[tokio::test]
async fn sdk_calls_go_through_the_functions_http_client() {
    let moto = MotoServer::start().expect("moto starts");
    let client = secrets_manager(&moto.aws_env());
    // A value near Secrets Manager's 64 KB limit: the request and the answer carry it whole.
    let value: String = "0123456789abcdef".repeat(3_800);
    let created = client
        .create_secret()
        .name("sf-common/aws-http")
        .secret_string(&value)
        .send()
        .await
        .expect("CreateSecret through the functions' client");
    let read = client
        .get_secret_value()
        .secret_id(created.arn().expect("arn"))
        .send()
        .await
        .expect("GetSecretValue");
    assert_eq!(read.secret_string(), Some(value.as_str()));

    // An error answer keeps its status, headers and body: the SDK parses it into the modelled
    // error.
    let missing = client
        .get_secret_value()
        .secret_id("sf-common/no-such-secret")
        .send()
        .await
        .expect_err("no such secret");
    assert!(
        missing
            .as_service_error()
            .is_some_and(|error| error.is_resource_not_found_exception()),
        "{missing:?}"
    );
    assert!(
        missing
            .raw_response()
            .is_some_and(|raw| raw.status().is_client_error()),
        "{missing:?}"
    );
}

#[tokio::test]
async fn a_refused_connection_is_a_transient_io_failure() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let client = secrets_manager(&[
        ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
    ]);
    let error = client
        .get_secret_value()
        .secret_id("anything")
        .send()
        .await
        .expect_err("nothing listens");
    let SdkError::DispatchFailure(failure) = &error else {
        panic!("expected a dispatch failure, got {error:?}");
    };
    assert!(failure.is_io(), "{failure:?}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_at_the_read_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    // Accepts connections and reads the requests, and never answers.
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let config = sf_common::aws_config_from(|name| match name {
        "AWS_ENDPOINT_URL" => Some(format!("http://127.0.0.1:{port}")),
        "AWS_REGION" => Some("us-east-1".into()),
        "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" => Some("testing".into()),
        _ => None,
    });
    let client = aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(&config)
            .timeout_config(
                TimeoutConfig::builder()
                    .read_timeout(Duration::from_millis(300))
                    .build(),
            )
            .retry_config(aws_sdk_secretsmanager::config::retry::RetryConfig::disabled())
            // Otherwise the SDK's stalled-stream guard ends the call after its 5 s grace period,
            // read timeout or not.
            .stalled_stream_protection(
                aws_sdk_secretsmanager::config::StalledStreamProtectionConfig::disabled(),
            )
            .build(),
    );
    let error = tokio::time::timeout(
        Duration::from_secs(10),
        client.get_secret_value().secret_id("anything").send(),
    )
    .await
    .expect("the read timeout ends the call")
    .expect_err("the server never answers");
    let SdkError::DispatchFailure(failure) = &error else {
        panic!("expected a dispatch failure, got {error:?}");
    };
    assert!(failure.is_timeout(), "{failure:?}");
    silent.abort();
}
