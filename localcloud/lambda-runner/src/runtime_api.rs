//! The Lambda Runtime API a `bootstrap` process talks to: one listener per execution
//! environment, serving `/2018-06-01/runtime/invocation/next`, `…/{id}/response`,
//! `…/{id}/error` and `/2018-06-01/runtime/init/error` from a queue of pending invocations.
//!
//! The owner starts a [`RuntimeApi`], hands its [`endpoint`](RuntimeApi::endpoint) to the
//! process as `AWS_LAMBDA_RUNTIME_API`, [`submit`](RuntimeApi::submit)s one [`Invocation`] at
//! a time and follows it with [`next_event`](RuntimeApi::next_event) (or simply awaits the
//! [`Answer`] with [`invoke`](RuntimeApi::invoke)). Error bodies come back in Lambda's shape
//! (`{"errorType","errorMessage"}`). The listener stops when the `RuntimeApi` is dropped.
//!
//! Used by the local runner's execution environments and by `cargo xtask bench`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use axum::Router;
pub use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// The largest response a function may post (Lambda's synchronous limit, with headroom).
const MAX_RESPONSE_BYTES: usize = 7 * 1024 * 1024;

/// One event for the runtime, as `next` hands it out.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// `lambda-runtime-aws-request-id`; answers are matched to the invocation by it.
    pub request_id: String,
    /// The event (the body of `next`).
    pub payload: Bytes,
    /// `lambda-runtime-trace-id`.
    pub trace_id: String,
    /// `lambda-runtime-client-context`, if any.
    pub client_context: Option<String>,
}

/// What the runtime posted for an invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `POST …/invocation/{id}/response`: the function's result.
    Response(Bytes),
    /// `POST …/invocation/{id}/error`: a function error, in Lambda's error shape.
    Error(Bytes),
    /// `POST /runtime/init/error`: the runtime failed to initialise, in Lambda's error shape.
    InitError(Bytes),
}

/// What happened to a submitted invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The runtime took the event with `next` at this moment (the function's clock starts).
    Dispatched { at: Instant },
    /// The runtime answered.
    Answered(Answer),
}

/// What the HTTP handlers report to the owner.
enum Posted {
    Dispatched { request_id: String, at: Instant },
    Response { request_id: String, body: Bytes },
    Error { request_id: String, body: Bytes },
    InitError { body: Bytes },
}

struct ApiState {
    queue: tokio::sync::Mutex<mpsc::Receiver<Invocation>>,
    posted: mpsc::UnboundedSender<Posted>,
    function_arn: String,
    timeout: Duration,
}

type Api = Arc<ApiState>;

/// A running Runtime API listener and its queue (one pending invocation at a time).
pub struct RuntimeApi {
    endpoint: String,
    queue: mpsc::Sender<Invocation>,
    posted: mpsc::UnboundedReceiver<Posted>,
    server: tokio::task::AbortHandle,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl RuntimeApi {
    /// Binds a listener on a free loopback port and serves the Runtime API there.
    /// `function_arn` is sent as `lambda-runtime-invoked-function-arn`; each event's
    /// `lambda-runtime-deadline-ms` is `timeout` after the runtime took it.
    pub async fn start(function_arn: impl Into<String>, timeout: Duration) -> anyhow::Result<Self> {
        let (queue, receiver) = mpsc::channel(1);
        let (posted_sender, posted) = mpsc::unbounded_channel();
        let api = Arc::new(ApiState {
            queue: tokio::sync::Mutex::new(receiver),
            posted: posted_sender,
            function_arn: function_arn.into(),
            timeout,
        });
        let router = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(invocation_response),
            )
            .route(
                "/2018-06-01/runtime/invocation/{id}/error",
                post(invocation_error),
            )
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .layer(DefaultBodyLimit::max(MAX_RESPONSE_BYTES))
            .with_state(api);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding a Runtime API listener")?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        })
        .abort_handle();
        Ok(Self {
            endpoint,
            queue,
            posted,
            server,
        })
    }

    /// The value for `AWS_LAMBDA_RUNTIME_API`, e.g. `http://127.0.0.1:40123`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Queues `invocation` for the runtime's next `next`, forgetting anything posted for
    /// earlier invocations (e.g. a late answer). Fails if the runtime has not taken the
    /// previously submitted event yet.
    pub fn submit(&mut self, invocation: Invocation) -> anyhow::Result<()> {
        while self.posted.try_recv().is_ok() {}
        if self.queue.try_send(invocation).is_err() {
            bail!("the runtime did not take the previous event");
        }
        Ok(())
    }

    /// Waits for what happens next to invocation `request_id`: its dispatch, its answer, or
    /// an init error (whichever invocation was pending). Anything about other invocations is
    /// skipped. `None` once the listener has stopped. Cancel-safe (usable in `select!`).
    pub async fn next_event(&mut self, request_id: &str) -> Option<Event> {
        loop {
            if let Some(event) = Self::event_for(self.posted.recv().await?, request_id) {
                return Some(event);
            }
        }
    }

    /// Without waiting: the answer already posted for `request_id` if there is one, else an
    /// init error posted meanwhile, else `None` (e.g. to explain a process that exited).
    pub fn posted_answer(&mut self, request_id: &str) -> Option<Answer> {
        let mut init_error = None;
        while let Ok(posted) = self.posted.try_recv() {
            match Self::event_for(posted, request_id) {
                Some(Event::Answered(Answer::InitError(body))) => init_error = Some(body),
                Some(Event::Answered(answer)) => return Some(answer),
                _ => {}
            }
        }
        init_error.map(Answer::InitError)
    }

    /// Submits `invocation` and waits for its answer (or an init error). Fails if the
    /// runtime has not taken the previous event or the listener stopped; wrap it in a
    /// timeout to bound the wait.
    pub async fn invoke(&mut self, invocation: Invocation) -> anyhow::Result<Answer> {
        let request_id = invocation.request_id.clone();
        self.submit(invocation)?;
        loop {
            match self.next_event(&request_id).await {
                Some(Event::Answered(answer)) => return Ok(answer),
                Some(Event::Dispatched { .. }) => {}
                None => bail!("the Runtime API stopped"),
            }
        }
    }

    fn event_for(posted: Posted, request_id: &str) -> Option<Event> {
        match posted {
            Posted::Dispatched { request_id: id, at } if id == request_id => {
                Some(Event::Dispatched { at })
            }
            Posted::Response {
                request_id: id,
                body,
            } if id == request_id => Some(Event::Answered(Answer::Response(body))),
            Posted::Error {
                request_id: id,
                body,
            } if id == request_id => Some(Event::Answered(Answer::Error(body))),
            Posted::InitError { body } => Some(Event::Answered(Answer::InitError(body))),
            _ => None,
        }
    }
}

fn epoch_millis(at: SystemTime) -> u128 {
    at.duration_since(UNIX_EPOCH)
        .map(|since| since.as_millis())
        .unwrap_or_default()
}

async fn next_invocation(State(api): State<Api>) -> Response {
    let Some(invocation) = api.queue.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    let now = Instant::now();
    let deadline = epoch_millis(SystemTime::now() + api.timeout);
    let _ = api.posted.send(Posted::Dispatched {
        request_id: invocation.request_id.clone(),
        at: now,
    });
    let mut headers = HeaderMap::new();
    let mut pairs = vec![
        ("lambda-runtime-aws-request-id", invocation.request_id),
        ("lambda-runtime-deadline-ms", deadline.to_string()),
        (
            "lambda-runtime-invoked-function-arn",
            api.function_arn.clone(),
        ),
        ("lambda-runtime-trace-id", invocation.trace_id),
    ];
    if let Some(context) = invocation.client_context {
        pairs.push(("lambda-runtime-client-context", context));
    }
    for (name, value) in pairs {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    (StatusCode::OK, headers, invocation.payload).into_response()
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, axum::Json(json!({ "status": "OK" }))).into_response()
}

async fn invocation_response(
    State(api): State<Api>,
    UrlPath(request_id): UrlPath<String>,
    body: Bytes,
) -> Response {
    let _ = api.posted.send(Posted::Response { request_id, body });
    accepted()
}

/// An error body in Lambda's shape: the runtime's JSON object as posted, or one built from
/// the error-type header and the text it sent.
fn error_body(headers: &HeaderMap, body: &Bytes, default_type: &str) -> Bytes {
    let posted = serde_json::from_slice::<Value>(body).ok();
    if let Some(Value::Object(object)) = &posted
        && object.contains_key("errorType")
    {
        return body.clone();
    }
    let header_type = headers
        .get("lambda-runtime-function-error-type")
        .and_then(|value| value.to_str().ok())
        .filter(|value| !value.is_empty());
    let mut object = match posted {
        Some(Value::Object(object)) => object,
        _ => {
            let mut object = serde_json::Map::new();
            object.insert(
                "errorMessage".into(),
                Value::String(String::from_utf8_lossy(body).into_owned()),
            );
            object
        }
    };
    object.insert(
        "errorType".into(),
        Value::String(header_type.unwrap_or(default_type).to_string()),
    );
    Bytes::from(Value::Object(object).to_string())
}

async fn invocation_error(
    State(api): State<Api>,
    UrlPath(request_id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = error_body(&headers, &body, "Unhandled");
    let _ = api.posted.send(Posted::Error { request_id, body });
    accepted()
}

async fn init_error(State(api): State<Api>, headers: HeaderMap, body: Bytes) -> Response {
    let body = error_body(&headers, &body, "Runtime.InitError");
    let _ = api.posted.send(Posted::InitError { body });
    accepted()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:f";

    /// One HTTP/1.1 exchange with the listener at `endpoint`, as a runtime makes it: the
    /// status line and headers (lower-cased), and the body.
    async fn request(endpoint: &str, method: &str, path: &str, body: &str) -> (String, String) {
        let address = endpoint.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\n\
             content-length: {}\r\n\r\n{body}",
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .await
            .expect("write request");
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .await
            .expect("read answer");
        let (head, body) = answer.split_once("\r\n\r\n").expect("http answer");
        (head.to_ascii_lowercase(), body.to_string())
    }

    fn invocation(request_id: &str, payload: &'static str) -> Invocation {
        Invocation {
            request_id: request_id.into(),
            payload: Bytes::from_static(payload.as_bytes()),
            trace_id: "Root=1-00000000-000000000000000000000000".into(),
            client_context: Some("{}".into()),
        }
    }

    #[tokio::test]
    async fn next_then_response_round_trips() {
        let mut api = RuntimeApi::start(ARN, Duration::from_secs(3))
            .await
            .expect("start");
        let endpoint = api.endpoint().to_string();
        api.submit(invocation("req-1", r#"{"a":1}"#))
            .expect("submit");
        // One pending event at a time: a second one before `next` took the first is refused.
        assert!(api.submit(invocation("req-2", "{}")).is_err());

        let (head, body) =
            request(&endpoint, "GET", "/2018-06-01/runtime/invocation/next", "").await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        for expected in [
            "lambda-runtime-aws-request-id: req-1".to_string(),
            format!("lambda-runtime-invoked-function-arn: {ARN}"),
            "lambda-runtime-deadline-ms: ".to_string(),
            "lambda-runtime-trace-id: root=1-00000000-".to_string(),
            "lambda-runtime-client-context: {}".to_string(),
        ] {
            assert!(head.contains(&expected), "{expected} missing from {head}");
        }
        assert_eq!(body, r#"{"a":1}"#);
        assert!(matches!(
            api.next_event("req-1").await,
            Some(Event::Dispatched { .. })
        ));

        // An answer for another invocation is not this one's.
        request(
            &endpoint,
            "POST",
            "/2018-06-01/runtime/invocation/old/response",
            "{}",
        )
        .await;
        let (head, _) = request(
            &endpoint,
            "POST",
            "/2018-06-01/runtime/invocation/req-1/response",
            r#"{"ok":true}"#,
        )
        .await;
        assert!(head.starts_with("http/1.1 202"), "{head}");
        assert_eq!(
            api.next_event("req-1").await,
            Some(Event::Answered(Answer::Response(Bytes::from_static(
                br#"{"ok":true}"#
            ))))
        );
        // The event was taken, so the next one is accepted.
        api.submit(invocation("req-2", "{}")).expect("submit again");
    }

    /// A runtime taking one event and posting `path`'s answer with `body`.
    async fn runtime(endpoint: &str, path: &str, body: &str) {
        let (head, _) = request(endpoint, "GET", "/2018-06-01/runtime/invocation/next", "").await;
        let id = head
            .lines()
            .find_map(|line| line.strip_prefix("lambda-runtime-aws-request-id: "))
            .expect("request id")
            .to_string();
        request(endpoint, "POST", &path.replace("{id}", &id), body).await;
    }

    #[tokio::test]
    async fn invoke_maps_posted_errors() {
        let mut api = RuntimeApi::start(ARN, Duration::from_secs(3))
            .await
            .expect("start");
        let endpoint = api.endpoint().to_string();

        let (answer, ()) = tokio::join!(
            api.invoke(invocation("req-9", "{}")),
            runtime(
                &endpoint,
                "/2018-06-01/runtime/invocation/{id}/error",
                "it broke"
            ),
        );
        let Answer::Error(body) = answer.expect("answer") else {
            panic!("expected an error answer");
        };
        let value: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(value["errorType"], "Unhandled");
        assert_eq!(value["errorMessage"], "it broke");

        let (answer, ()) = tokio::join!(
            api.invoke(invocation("req-10", "{}")),
            runtime(
                &endpoint,
                "/2018-06-01/runtime/invocation/{id}/response",
                "done"
            ),
        );
        assert_eq!(
            answer.expect("answer"),
            Answer::Response(Bytes::from_static(b"done"))
        );

        let init = r#"{"errorType":"Custom.Init","errorMessage":"no"}"#;
        request(&endpoint, "POST", "/2018-06-01/runtime/init/error", init).await;
        assert_eq!(
            api.posted_answer("req-10"),
            Some(Answer::InitError(Bytes::from_static(init.as_bytes())))
        );
        assert_eq!(api.posted_answer("req-10"), None);
    }

    #[test]
    fn error_bodies_keep_lambda_shape() {
        let headers = HeaderMap::new();
        let posted = Bytes::from(r#"{"errorType":"Boom","errorMessage":"x"}"#);
        assert_eq!(error_body(&headers, &posted, "Unhandled"), posted);

        let text = error_body(&headers, &Bytes::from("plain"), "Runtime.InitError");
        let value: Value = serde_json::from_slice(&text).expect("json");
        assert_eq!(value["errorType"], "Runtime.InitError");
        assert_eq!(value["errorMessage"], "plain");

        let mut headers = HeaderMap::new();
        headers.insert(
            "lambda-runtime-function-error-type",
            HeaderValue::from_static("Custom"),
        );
        let object = error_body(&headers, &Bytes::from(r#"{"errorMessage":"m"}"#), "X");
        let value: Value = serde_json::from_slice(&object).expect("json");
        assert_eq!(value["errorType"], "Custom");
        assert_eq!(value["errorMessage"], "m");
    }
}
