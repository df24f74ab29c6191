//! A recording HTTP forwarder for the cold-start breakdown: the function under measurement
//! talks to it instead of moto or the emulator, it passes every request on unchanged (the Host
//! header included, which the AWS signature covers) and notes when each request began and when
//! its answer was complete. It adds a loopback hop to each call, so the breakdown's runs are a
//! little slower than the headline cold start, which is measured without it.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// One forwarded request: when it arrived and when its answer had been read in full.
pub type Span = (Instant, Instant);

struct Shared {
    upstream: String,
    http: reqwest::Client,
    spans: Mutex<Vec<Span>>,
}

pub struct Recorder {
    url: String,
    shared: Arc<Shared>,
    server: tokio::task::AbortHandle,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Recorder {
    /// Listens on a free loopback port and forwards to `upstream` (a base URL).
    pub async fn start(upstream: &str) -> anyhow::Result<Self> {
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .build()
                .context("building the recorder's HTTP client")?,
            spans: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the recorder")?;
        let url = format!("http://{}", listener.local_addr()?);
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        })
        .abort_handle();
        Ok(Self {
            url,
            shared,
            server,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The spans recorded since the last call, in arrival order.
    pub fn take(&self) -> Vec<Span> {
        std::mem::take(
            &mut *self
                .shared
                .spans
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }
}

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|path| path.as_str())
        .unwrap_or("/");
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return (StatusCode::BAD_REQUEST, "unreadable request body").into_response();
    };
    let answer = shared
        .http
        .request(parts.method, format!("{}{path}", shared.upstream))
        .headers(parts.headers)
        .body(body)
        .send()
        .await;
    let response = match answer {
        Ok(answer) => {
            let mut response = Response::builder().status(answer.status());
            if let Some(headers) = response.headers_mut() {
                *headers = answer.headers().clone();
                // The body is passed on whole: the upstream's framing does not apply.
                for hop in ["transfer-encoding", "connection", "keep-alive"] {
                    headers.remove(hop);
                }
            }
            match answer.bytes().await {
                Ok(bytes) => response
                    .body(Body::from(bytes))
                    .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response()),
                Err(_) => StatusCode::BAD_GATEWAY.into_response(),
            }
        }
        Err(error) => (StatusCode::BAD_GATEWAY, error.to_string()).into_response(),
    };
    shared
        .spans
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push((started, Instant::now()));
    response
}
