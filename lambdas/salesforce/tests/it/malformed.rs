//! Answers that are not what Salesforce sends, from a tiny local server with scripted answers:
//! the client must report them as errors that name the problem without echoing any token.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use salesforce::{Client, Credentials, Error, Secret, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::{BoxError, TestResult, fast_config};

const TOKEN: &str = "SECRET-TOKEN-VALUE";

/// Serves every connection the same raw bytes (after reading the request head) and closes it.
/// Returns the base URL and a counter of requests served.
async fn canned_server(answer: String) -> Result<(String, Arc<AtomicUsize>), BoxError> {
    scripted_server(vec![answer]).await
}

/// Like [`canned_server`], answering the n-th connection with `answers[n]` (the last one
/// repeats).
async fn scripted_server(answers: Vec<String>) -> Result<(String, Arc<AtomicUsize>), BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base_url = format!("http://{}", listener.local_addr()?);
    let served = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&served);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let index = counter.fetch_add(1, Ordering::SeqCst);
            let answer = answers
                .get(index)
                .or(answers.last())
                .cloned()
                .unwrap_or_default();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0u8; 4096];
                while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => head.extend_from_slice(&buffer[..read]),
                    }
                }
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Ok((base_url, served))
}

fn http_answer(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn seeded_client(base_url: &str) -> Result<Client, BoxError> {
    let session = Session {
        access_token: Secret::new(TOKEN),
        instance_url: base_url.to_owned(),
        issued_at: None,
        id: None,
        refresh_token: None,
        scope: None,
    };
    Ok(Client::with_session(session, None, fast_config())?)
}

fn assert_no_token(error: &Error) {
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains(TOKEN), "{shown}");
}

#[tokio::test]
async fn malformed_data_answers_are_reported() -> TestResult {
    let cases = [
        (
            "html with 200",
            http_answer("200 OK", "text/html", "<html>hello</html>"),
            Error::MalformedResponse {
                status: 200,
                detail: "the response body (18 bytes) is not JSON".into(),
            },
        ),
        (
            "json without records",
            http_answer("200 OK", "application/json", r#"{"hello":"world"}"#),
            Error::MalformedResponse {
                status: 200,
                detail: "the query response lacks totalSize, done or records".into(),
            },
        ),
        (
            "error that is not an error array",
            http_answer(
                "400 Bad Request",
                "application/json",
                r#"{"token":"SECRET-TOKEN-VALUE"}"#,
            ),
            Error::MalformedResponse {
                status: 400,
                detail: "error body of 30 bytes is not a Salesforce error document".into(),
            },
        ),
        (
            "401 that is not INVALID_SESSION_ID",
            http_answer(
                "401 Unauthorized",
                "application/json",
                r#"[{"message":"INVALID_HEADER_TYPE","errorCode":"INVALID_AUTH_HEADER"}]"#,
            ),
            Error::Api {
                status: 401,
                error_code: "INVALID_AUTH_HEADER".into(),
                message: "INVALID_HEADER_TYPE".into(),
                fields: vec![],
            },
        ),
    ];
    for (name, answer, expected) in cases {
        let (base_url, served) = canned_server(answer).await?;
        let client = seeded_client(&base_url)?;
        let error = client.query("SELECT Id FROM Contact").await.err();
        assert_eq!(error.as_ref(), Some(&expected), "{name}");
        assert_no_token(&expected);
        assert_eq!(served.load(Ordering::SeqCst), 1, "{name}: not retried");
    }
    Ok(())
}

#[tokio::test]
async fn a_server_error_page_is_retried_then_reported() -> TestResult {
    let (base_url, served) = canned_server(http_answer(
        "502 Bad Gateway",
        "text/html",
        "<html>bad gateway</html>",
    ))
    .await?;
    let client = seeded_client(&base_url)?;
    let error = client.query("SELECT Id FROM Contact").await.err();
    assert_eq!(error.as_ref().and_then(Error::status), Some(502));
    assert!(matches!(error, Some(Error::MalformedResponse { .. })));
    assert_eq!(served.load(Ordering::SeqCst), 3);
    Ok(())
}

#[tokio::test]
async fn a_connection_closed_without_an_answer_is_a_transport_error() -> TestResult {
    let (base_url, served) = canned_server("garbage, not http\r\n\r\n".into()).await?;
    let client = seeded_client(&base_url)?;
    let error = client.query("SELECT Id FROM Contact").await.err();
    assert!(matches!(error, Some(Error::Transport(_))), "{error:?}");
    if let Some(error) = &error {
        assert_no_token(error);
    }
    assert_eq!(served.load(Ordering::SeqCst), 3, "a GET is retried");

    // A create whose request went out is not repeated.
    let (base_url, served) = canned_server("garbage, not http\r\n\r\n".into()).await?;
    let client = seeded_client(&base_url)?;
    let created = client
        .create("Contact", &serde_json::json!({"LastName": "x"}))
        .await;
    assert!(matches!(created, Err(Error::Transport(_))), "{created:?}");
    assert_eq!(served.load(Ordering::SeqCst), 1);
    Ok(())
}

#[tokio::test]
async fn a_refused_connection_is_a_transport_error() -> TestResult {
    // Bind and drop a listener to get a port nobody listens on.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base_url = format!("http://{}", listener.local_addr()?);
    drop(listener);
    let client = seeded_client(&base_url)?;
    let error = client.query("SELECT Id FROM Contact").await.err();
    assert!(matches!(error, Some(Error::Transport(_))), "{error:?}");
    Ok(())
}

#[tokio::test]
async fn malformed_token_answers_are_reported() -> TestResult {
    let cases = [
        (
            http_answer("200 OK", "text/html", "<html>login</html>"),
            Error::MalformedResponse {
                status: 200,
                detail: "the token response is not JSON".into(),
            },
        ),
        (
            http_answer(
                "200 OK",
                "application/json",
                r#"{"access_token":"SECRET-TOKEN-VALUE","token_type":"Bearer"}"#,
            ),
            Error::MalformedResponse {
                status: 200,
                detail: "the token response has no valid instance_url".into(),
            },
        ),
        (
            http_answer("400 Bad Request", "text/plain", "SECRET-TOKEN-VALUE is bad"),
            Error::MalformedResponse {
                status: 400,
                detail: "error body of 25 bytes is not a Salesforce error document".into(),
            },
        ),
    ];
    for (answer, expected) in cases {
        let (base_url, _) = canned_server(answer).await?;
        let credentials = Credentials::client_credentials("key", Secret::new("secret"))
            .with_login_url(&base_url)?;
        let client = Client::new(credentials, fast_config())?;
        let error = client.session().await.err();
        assert_eq!(error.as_ref(), Some(&expected));
        assert_no_token(&expected);
    }
    Ok(())
}

#[tokio::test]
async fn a_repeated_delete_that_finds_the_record_gone_succeeds() -> TestResult {
    let id = "003000000000001AAA";
    let gone = http_answer(
        "404 Not Found",
        "application/json",
        r#"[{"message":"entity is deleted","errorCode":"ENTITY_IS_DELETED","fields":[]}]"#,
    );
    let unavailable = http_answer("503 Service Unavailable", "text/plain", "busy");

    // The first answer was lost (here: a 503 after the delete may have happened); the retry
    // finds the record deleted, which is what the caller wanted.
    let (base_url, served) = scripted_server(vec![unavailable, gone.clone()]).await?;
    let client = seeded_client(&base_url)?;
    client.delete("Contact", id).await?;
    assert_eq!(served.load(Ordering::SeqCst), 2);

    // On the first attempt the same answer is an error: the record was already gone.
    let (base_url, _) = canned_server(gone).await?;
    let client = seeded_client(&base_url)?;
    let error = client.delete("Contact", id).await.err();
    assert_eq!(
        error.as_ref().and_then(Error::error_code),
        Some("ENTITY_IS_DELETED")
    );
    Ok(())
}
