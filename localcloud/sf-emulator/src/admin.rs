//! The admin API under `/__emulator/`: fault injection and inspection for tests.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::config::ConnectedAppConfig;
use crate::error::json_response;
use crate::org::{ConnectedApp, Fault, Shared};

pub fn router() -> Router<Shared> {
    Router::new()
        .route("/sessions/expire", post(expire_sessions))
        .route("/limits", put(set_limits).get(get_limits))
        .route("/faults", post(add_faults).delete(clear_faults))
        .route("/refresh-tokens/revoke", post(revoke_refresh_tokens))
        .route("/refresh-tokens/rotate", post(rotate_refresh_tokens))
        .route("/refresh-tokens/rotation", put(set_rotation))
        .route("/requests", get(requests).delete(clear_requests))
        .route("/connected-apps", post(add_connected_app))
        .route(
            "/connected-apps/{consumer_key}/callback-urls",
            post(add_callback_url),
        )
        .layer(axum::middleware::from_fn(loopback_host_only))
}

/// The admin API answers only requests addressed to a loopback host. A web page the developer
/// opens can make the browser send requests to 127.0.0.1 under its own domain name (DNS
/// rebinding): they carry that name in `Host` and are refused.
async fn loopback_host_only(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = request
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if is_loopback_host(host) {
        next.run(request).await
    } else {
        json_response(
            StatusCode::FORBIDDEN,
            &json!({"error": format!("the admin API answers requests to 127.0.0.1 or localhost only, not {host:?}")}),
        )
    }
}

/// Whether a `Host` header names a loopback host (any port).
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

fn bad_request(message: impl std::fmt::Display) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"error": message.to_string()}),
    )
}

async fn expire_sessions(State(shared): State<Shared>) -> StatusCode {
    shared.lock().access_tokens.clear();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Limits {
    used: Option<u64>,
    max: Option<u64>,
}

async fn set_limits(State(shared): State<Shared>, Json(limits): Json<Limits>) -> StatusCode {
    let mut org = shared.lock();
    if let Some(used) = limits.used {
        org.api_used = used;
    }
    if let Some(max) = limits.max {
        org.api_max = max;
    }
    StatusCode::NO_CONTENT
}

async fn get_limits(State(shared): State<Shared>) -> Response {
    let org = shared.lock();
    json_response(
        StatusCode::OK,
        &json!({"used": org.api_used, "max": org.api_max}),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Faults {
    count: Option<usize>,
    status: Option<u16>,
    delay_ms: Option<u64>,
}

async fn add_faults(State(shared): State<Shared>, Json(faults): Json<Faults>) -> Response {
    let fault = match (faults.status, faults.delay_ms) {
        (Some(status), None) if (400..600).contains(&status) => Fault::Status(status),
        (None, Some(delay)) => Fault::Delay(Duration::from_millis(delay)),
        _ => return bad_request("give exactly one of \"status\" (400-599) or \"delay_ms\""),
    };
    let mut org = shared.lock();
    for _ in 0..faults.count.unwrap_or(1) {
        org.faults.push_back(fault);
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn clear_faults(State(shared): State<Shared>) -> StatusCode {
    shared.lock().faults.clear();
    StatusCode::NO_CONTENT
}

async fn revoke_refresh_tokens(State(shared): State<Shared>) -> StatusCode {
    let mut org = shared.lock();
    let tokens: Vec<String> = org.refresh_tokens.keys().cloned().collect();
    for token in tokens {
        org.revoke_refresh_token(&token);
    }
    StatusCode::NO_CONTENT
}

async fn rotate_refresh_tokens(State(shared): State<Shared>) -> StatusCode {
    let mut org = shared.lock();
    let grants: Vec<(String, crate::org::RefreshGrant)> = org.refresh_tokens.drain().collect();
    for (_, grant) in grants {
        org.issue_refresh_token(&grant.user_id, &grant.consumer_key);
    }
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rotation {
    enabled: bool,
}

async fn set_rotation(State(shared): State<Shared>, Json(rotation): Json<Rotation>) -> StatusCode {
    shared.lock().rotate_all_refresh_tokens = rotation.enabled;
    StatusCode::NO_CONTENT
}

async fn requests(State(shared): State<Shared>) -> Response {
    let log = shared.lock().log.clone();
    json_response(StatusCode::OK, &json!(log))
}

async fn clear_requests(State(shared): State<Shared>) -> StatusCode {
    shared.lock().log.clear();
    StatusCode::NO_CONTENT
}

async fn add_connected_app(
    State(shared): State<Shared>,
    Json(config): Json<ConnectedAppConfig>,
) -> Response {
    let app = match ConnectedApp::new(config) {
        Ok(app) => app,
        Err(error) => return bad_request(format!("{error:#}")),
    };
    let mut org = shared.lock();
    org.apps
        .retain(|existing| existing.config.consumer_key != app.config.consumer_key);
    org.apps.push(app);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct CallbackUrl {
    url: String,
}

/// Adds a callback URL to an existing app, as an admin does in Setup (the local target registers
/// each environment's OAuth callback this way). Adding one already there changes nothing.
async fn add_callback_url(
    State(shared): State<Shared>,
    Path(consumer_key): Path<String>,
    Json(body): Json<CallbackUrl>,
) -> Response {
    if url::Url::parse(&body.url).is_err() {
        return bad_request(format!("not a URL: {:?}", body.url));
    }
    let mut org = shared.lock();
    let Some(app) = org
        .apps
        .iter_mut()
        .find(|app| app.config.consumer_key == consumer_key)
    else {
        return json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": format!("no connected app with consumer key {consumer_key:?}")}),
        );
    };
    if !app.config.callback_urls.contains(&body.url) {
        app.config.callback_urls.push(body.url);
    }
    StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn only_loopback_hosts_reach_the_admin_api() {
        for host in [
            "127.0.0.1:8080",
            "localhost:8080",
            "[::1]:8080",
            "127.0.0.1",
            "LOCALHOST",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "evil.example:8080",
            "evil.example",
            "",
            "10.0.0.1:8080",
            "127.0.0.1.evil.example",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
