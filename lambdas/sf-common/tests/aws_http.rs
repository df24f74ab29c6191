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

/// The functions' configuration with the AWS endpoint at 127.0.0.1:`port`.
fn config_for(port: u16) -> aws_types::SdkConfig {
    sf_common::aws_config_from(|name| match name {
        "AWS_ENDPOINT_URL" => Some(format!("http://127.0.0.1:{port}")),
        "AWS_REGION" => Some("us-east-1".into()),
        "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" => Some("testing".into()),
        _ => None,
    })
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
    let client = aws_sdk_secretsmanager::Client::new(&config_for(port));
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
    let config = config_for(port);
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

/// Reads one HTTP request (head and `content-length` body) from `socket`; returns its head.
async fn read_request(socket: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = socket.read(&mut chunk).await.expect("read");
        assert!(read > 0, "the client closed the connection mid-request");
        received.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&received).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = text[..end].to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .map_or(0, |value| value.trim().parse().expect("content-length"));
            if received.len() >= end + 4 + length {
                return head;
            }
        }
    }
}

#[tokio::test]
async fn a_slow_answer_is_waited_for_under_the_sdks_stalled_stream_guard() {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    // Answers GetSecretValue 2.5 s after the whole request arrived: longer than the guard's
    // check window plus the grace period below.
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let head = read_request(&mut socket).await;
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        let body = r#"{"ARN":"arn:aws:secretsmanager:us-east-1:123456789012:secret:slow-AbCdEf","Name":"slow","SecretString":"patience","VersionId":"00000000-0000-0000-0000-000000000001","VersionStages":["AWSCURRENT"]}"#;
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        socket.write_all(answer.as_bytes()).await.expect("write");
        head
    });
    let config = config_for(port);
    let client = aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(&config)
            .stalled_stream_protection(
                aws_sdk_secretsmanager::config::StalledStreamProtectionConfig::enabled()
                    .grace_period(Duration::from_millis(500))
                    .build(),
            )
            .retry_config(aws_sdk_secretsmanager::config::retry::RetryConfig::disabled())
            .build(),
    );
    let read = tokio::time::timeout(
        Duration::from_secs(10),
        client.get_secret_value().secret_id("slow").send(),
    )
    .await
    .expect("answered within 10 s")
    .expect("a slow answer is still an answer");
    assert_eq!(read.secret_string(), Some("patience"));
    // The request went through reqwest (which asks for any type), not the SDK's own client.
    let head = server.await.expect("server");
    assert!(head.contains("\r\naccept: */*"), "{head}");
}
