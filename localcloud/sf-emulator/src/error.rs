//! The two Salesforce error envelopes: REST errors (a JSON array) and OAuth errors (an object).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The content type Salesforce sends on every JSON response.
pub const JSON_CONTENT_TYPE: &str = "application/json;charset=UTF-8";

/// A REST API error: `[{"message": …, "errorCode": …, "fields": […]?}]` with an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestError {
    pub status: StatusCode,
    pub error_code: &'static str,
    pub message: String,
    /// `None` leaves the `fields` key out, as Salesforce does for many errors.
    pub fields: Option<Vec<String>>,
}

impl RestError {
    pub fn new(status: StatusCode, error_code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            error_code,
            message: message.into(),
            fields: None,
        }
    }

    pub fn with_fields(mut self, fields: Vec<String>) -> Self {
        self.fields = Some(fields);
        self
    }

    pub fn bad_request(error_code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error_code, message)
    }

    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        )
    }

    pub fn malformed_query(message: impl Into<String>) -> Self {
        Self::bad_request("MALFORMED_QUERY", message)
    }

    pub fn invalid_session() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        )
    }

    pub fn method_not_allowed(method: &str, allowed: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            format!("HTTP Method '{method}' not allowed. Allowed are {allowed}"),
        )
    }

    pub fn body(&self) -> serde_json::Value {
        let mut entry = serde_json::Map::new();
        entry.insert("message".into(), json!(self.message));
        entry.insert("errorCode".into(), json!(self.error_code));
        if let Some(fields) = &self.fields {
            entry.insert("fields".into(), json!(fields));
        }
        json!([entry])
    }
}

impl std::fmt::Display for RestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.error_code,
            self.message
        )
    }
}

impl std::error::Error for RestError {}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let mut response = json_response(self.status, &self.body());
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
        }
        response
    }
}

/// An OAuth endpoint error: HTTP 400 `{"error": …, "error_description": …}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: &'static str,
}

impl OAuthError {
    pub const fn new(error: &'static str, description: &'static str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error,
            description,
        }
    }

    pub const AUTHENTICATION_FAILURE: Self = Self::new("invalid_grant", "authentication failure");
    pub const UNKNOWN_CLIENT: Self = Self::new("invalid_client_id", "client identifier invalid");
    pub const BAD_CLIENT_SECRET: Self = Self::new("invalid_client", "invalid client credentials");
    pub const UNSUPPORTED_GRANT: Self =
        Self::new("unsupported_grant_type", "grant type not supported");
    pub const EXPIRED_REFRESH_TOKEN: Self =
        Self::new("invalid_grant", "expired access/refresh token");
    pub const BAD_AUDIENCE: Self = Self::new("invalid_grant", "Audience validation failed");
    pub const NOT_APPROVED: Self = Self::new("invalid_grant", "user hasn't approved this consumer");
    pub const INVALID_ASSERTION: Self = Self::new("invalid_grant", "invalid assertion");
    pub const EXPIRED_CODE: Self = Self::new("invalid_grant", "expired authorization code");
    pub const REDIRECT_MISMATCH: Self = Self::new(
        "redirect_uri_mismatch",
        "redirect_uri must match configuration",
    );
    pub const NO_RUN_AS_USER: Self =
        Self::new("invalid_grant", "no client credentials user enabled");
    pub const CLIENT_CREDENTIALS_DISABLED: Self =
        Self::new("invalid_grant", "client credentials flow not enabled");
    pub const PKCE_MISSING_VERIFIER: Self = Self::new("invalid_grant", "invalid code verifier");
    pub const PKCE_MISMATCH: Self = Self::new("invalid_request", "invalid code verifier");
    pub const INVALID_TOKEN: Self = Self::new("invalid_token", "invalid token");
    pub const INACTIVE_USER: Self = Self::new("inactive_user", "user is inactive");
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut response = json_response(
            self.status,
            &json!({"error": self.error, "error_description": self.description}),
        );
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// A JSON response with Salesforce's exact content type.
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    response
}
