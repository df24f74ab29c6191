//! The HTTP server: routing, the request log, fault injection, and the embedding API.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::OrgConfig;
use crate::error::{RestError, json_response};
use crate::org::{Fault, LogEntry, Org, Shared};
use crate::{admin, oauth, rest};

/// Bodies larger than this are refused (Salesforce's own REST limit is far lower for JSON).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

fn router(shared: Shared) -> Router {
    let services = Router::new()
        .route("/services/oauth2/token", post(oauth::token))
        .route("/services/oauth2/authorize", get(oauth::authorize))
        .route("/services/oauth2/introspect", post(oauth::introspect))
        .route(
            "/services/oauth2/revoke",
            post(oauth::revoke).get(oauth::revoke),
        )
        .fallback(rest::dispatch)
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            log_and_faults,
        ));
    Router::new()
        .nest("/__emulator", admin::router())
        .merge(services)
        .with_state(shared)
}

/// Records every non-admin request and applies pending injected faults.
async fn log_and_faults(State(shared): State<Shared>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return RestError::bad_request("JSON_PARSER_ERROR", "request body too large")
                .into_response();
        }
    };
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().map(String::from);
    let mut entry = LogEntry {
        seq: 0,
        method: parts.method.to_string(),
        path: path.clone(),
        query: query.clone(),
        soql: None,
        sosl: None,
        grant_type: None,
        body: None,
        status: 0,
        duration_us: 0,
    };
    if path.starts_with("/services/oauth2/") {
        // Token requests carry credentials: only the grant type is kept.
        entry.grant_type = oauth::merged_params(&parts.uri, &parts.headers, &bytes)
            .ok()
            .and_then(|params| params.get("grant_type").cloned());
    } else {
        let params: Vec<(String, String)> = query
            .as_deref()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let q = params
            .iter()
            .find(|(key, _)| key == "q")
            .map(|(_, value)| value.clone());
        if path.contains("/query") {
            entry.soql = q;
        } else if path.ends_with("/search") || path.ends_with("/search/") {
            entry.sosl = q;
        }
        if !bytes.is_empty() {
            entry.body =
                Some(serde_json::from_slice::<Value>(&bytes).unwrap_or_else(|_| {
                    Value::String(String::from_utf8_lossy(&bytes).into_owned())
                }));
        }
    }

    let started = std::time::Instant::now();
    let fault = shared.lock().faults.pop_front();
    let response = match fault {
        Some(Fault::Status(status)) => fault_response(status),
        Some(Fault::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        None => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
    };

    let mut org = shared.lock();
    org.next_seq += 1;
    entry.seq = org.next_seq;
    entry.status = response.status().as_u16();
    entry.duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    org.log.push(entry);
    response
}

/// What Salesforce's front end answers when it is in trouble.
fn fault_response(status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    match status.as_u16() {
        500 => RestError::new(
            status,
            "UNKNOWN_EXCEPTION",
            "An unexpected error occurred. Please include this ErrorId if you contact support: 1234567890-12345 (-1234567890)",
        )
        .into_response(),
        503 => RestError::new(status, "SERVER_UNAVAILABLE", "Server unavailable").into_response(),
        code if (400..500).contains(&code) => {
            json_response(status, &serde_json::json!([{"message": "injected fault", "errorCode": "UNKNOWN_EXCEPTION"}]))
        }
        // Gateways answer with HTML, not JSON: clients must cope with that too.
        _ => {
            let mut response = (
                status,
                format!("<html><body><h1>{} {}</h1></body></html>", status.as_u16(), status.canonical_reason().unwrap_or("Error")),
            )
                .into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/html;charset=UTF-8"),
            );
            response
        }
    }
}

/// A running emulator. Dropping it stops the server.
pub struct Emulator {
    base_url: String,
    addr: SocketAddr,
    shared: Shared,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Emulator {
    /// Starts the org on a free port of 127.0.0.1.
    pub async fn start(config: OrgConfig) -> anyhow::Result<Self> {
        Self::start_on(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts the org on the given address (port 0 picks a free one).
    pub async fn start_on(config: OrgConfig, addr: SocketAddr) -> anyhow::Result<Self> {
        use anyhow::Context;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let base_url = format!("http://{addr}");
        let shared = Shared::new(Org::new(&config, base_url.clone())?);
        let app = router(shared.clone());
        let (shutdown, signal) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = signal.await;
            });
            if let Err(error) = serve.await {
                tracing::error!(%error, "emulator server stopped");
            }
        });
        Ok(Self {
            base_url,
            addr,
            shared,
            shutdown: Some(shutdown),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`: both the login URL and the instance URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A copy of the request log (the same as `GET /__emulator/requests`).
    pub fn request_log(&self) -> Vec<LogEntry> {
        self.shared.lock().log.clone()
    }

    /// Stops accepting requests and waits for in-flight ones to finish.
    pub async fn shutdown(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}
