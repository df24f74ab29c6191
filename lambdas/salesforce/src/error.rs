//! The crate's one error type, and parsing of Salesforce's two error envelopes.

use serde_json::Value;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong talking to Salesforce.
///
/// Messages never contain credentials or tokens: they carry Salesforce's own `errorCode` and
/// message, the HTTP status, or a description written by this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A REST call failed; the body was Salesforce's `[{"message","errorCode","fields"}]` array.
    #[error("salesforce returned {status} {error_code}: {message}")]
    Api {
        status: u16,
        error_code: String,
        message: String,
        fields: Vec<String>,
    },
    /// The OAuth token endpoint refused the request (`{"error","error_description"}`).
    #[error("salesforce login failed ({status} {error}): {description}")]
    Auth {
        status: u16,
        error: String,
        description: String,
    },
    /// Connecting or the whole request took longer than the configured timeout.
    #[error("request to salesforce timed out")]
    Timeout,
    /// The connection failed or broke (DNS, TCP, TLS, reset).
    #[error("could not reach salesforce: {0}")]
    Transport(String),
    /// The caller passed something this crate refuses to send (bad object name, id, field...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The credentials document or configuration is incomplete or inconsistent.
    #[error("invalid salesforce credentials: {0}")]
    InvalidCredentials(String),
    /// Salesforce answered with something that is not the documented JSON.
    #[error("unexpected response from salesforce (status {status}): {detail}")]
    MalformedResponse { status: u16, detail: String },
    /// The session was rejected and this client has no credentials to log in again.
    #[error(
        "salesforce session expired and this client has no credentials to log in again; \
         hint: refresh the stored session"
    )]
    SessionExpired,
}

impl Error {
    /// Whether repeating the same request later could succeed: timeouts, connection failures and
    /// 5xx answers. `REQUEST_LIMIT_EXCEEDED` (403) is not retryable: the daily limit will not reset
    /// within a Lambda invocation and retrying only burns more of it.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Timeout | Error::Transport(_) => true,
            Error::Api { status, .. }
            | Error::Auth { status, .. }
            | Error::MalformedResponse { status, .. } => *status >= 500,
            Error::InvalidInput(_) | Error::InvalidCredentials(_) | Error::SessionExpired => false,
        }
    }

    /// Salesforce's `errorCode` (REST) or `error` (OAuth), when there is one.
    pub fn error_code(&self) -> Option<&str> {
        match self {
            Error::Api { error_code, .. } => Some(error_code),
            Error::Auth { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The HTTP status Salesforce answered with, when there was an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. }
            | Error::Auth { status, .. }
            | Error::MalformedResponse { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub(crate) fn is_invalid_session(&self) -> bool {
        matches!(self, Error::Api { status: 401, error_code, .. } if error_code == "INVALID_SESSION_ID")
    }
}

/// Turns a failed REST response into an error.
///
/// REST errors are a JSON array of `{"message","errorCode","fields"?}` objects whose key order
/// varies, so they are read by key. The first entry becomes the error. A single object with the
/// same keys is accepted too; anything else is [`Error::MalformedResponse`].
pub(crate) fn rest_error(status: u16, body: &[u8]) -> Error {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let entry = match &parsed {
        Some(Value::Array(entries)) => entries.first(),
        Some(object @ Value::Object(_)) => Some(object),
        _ => None,
    };
    let Some(Value::Object(entry)) = entry else {
        return malformed_error_body(status, body);
    };
    let error_code = entry.get("errorCode").and_then(Value::as_str);
    let message = entry.get("message").and_then(Value::as_str);
    if error_code.is_none() && message.is_none() {
        return malformed_error_body(status, body);
    }
    let fields = entry
        .get("fields")
        .and_then(Value::as_array)
        .map(|fields| {
            fields
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Error::Api {
        status,
        error_code: error_code.unwrap_or("UNKNOWN_ERROR").to_owned(),
        message: message.unwrap_or_default().to_owned(),
        fields,
    }
}

/// Turns a failed token-endpoint response (`{"error","error_description"}`) into an error.
pub(crate) fn oauth_error(status: u16, body: &[u8]) -> Error {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed
        .as_ref()
        .and_then(|value| value.get("error"))
        .and_then(Value::as_str);
    match error {
        Some(error) => Error::Auth {
            status,
            error: error.to_owned(),
            description: parsed
                .as_ref()
                .and_then(|value| value.get("error_description"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        },
        None => malformed_error_body(status, body),
    }
}

/// The body is described by its size only: an unexpected body could echo anything, including
/// the request's credentials, so none of it goes into the message.
fn malformed_error_body(status: u16, body: &[u8]) -> Error {
    let detail = if body.is_empty() {
        "empty error body".to_owned()
    } else {
        format!(
            "error body of {} bytes is not a Salesforce error document",
            body.len()
        )
    };
    Error::MalformedResponse { status, detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_error_bodies_are_parsed_by_key() {
        let cases: &[(u16, &str, Error)] = &[
            (
                401,
                r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#,
                Error::Api {
                    status: 401,
                    error_code: "INVALID_SESSION_ID".into(),
                    message: "Session expired or invalid".into(),
                    fields: vec![],
                },
            ),
            (
                404,
                r#"[{"errorCode":"NOT_FOUND","message":"The requested resource does not exist"}]"#,
                Error::Api {
                    status: 404,
                    error_code: "NOT_FOUND".into(),
                    message: "The requested resource does not exist".into(),
                    fields: vec![],
                },
            ),
            (
                400,
                r#"[{"message":"Required fields are missing: [LastName]","errorCode":"REQUIRED_FIELD_MISSING","fields":["LastName"]},{"message":"second","errorCode":"OTHER"}]"#,
                Error::Api {
                    status: 400,
                    error_code: "REQUIRED_FIELD_MISSING".into(),
                    message: "Required fields are missing: [LastName]".into(),
                    fields: vec!["LastName".into()],
                },
            ),
            (
                503,
                "<html>Service Unavailable</html>",
                Error::MalformedResponse {
                    status: 503,
                    detail: "error body of 32 bytes is not a Salesforce error document".into(),
                },
            ),
            (
                500,
                "",
                Error::MalformedResponse {
                    status: 500,
                    detail: "empty error body".into(),
                },
            ),
            (
                400,
                "[]",
                Error::MalformedResponse {
                    status: 400,
                    detail: "error body of 2 bytes is not a Salesforce error document".into(),
                },
            ),
        ];
        for (status, body, expected) in cases {
            assert_eq!(
                &rest_error(*status, body.as_bytes()),
                expected,
                "body {body}"
            );
        }
    }

    #[test]
    fn oauth_error_bodies_are_parsed_by_key() {
        let cases: &[(&str, Error)] = &[
            (
                r#"{"error":"invalid_grant","error_description":"authentication failure"}"#,
                Error::Auth {
                    status: 400,
                    error: "invalid_grant".into(),
                    description: "authentication failure".into(),
                },
            ),
            (
                r#"{"error_description":"client identifier invalid","error":"invalid_client_id"}"#,
                Error::Auth {
                    status: 400,
                    error: "invalid_client_id".into(),
                    description: "client identifier invalid".into(),
                },
            ),
            (
                r#"[{"message":"x","errorCode":"Y"}]"#,
                Error::MalformedResponse {
                    status: 400,
                    detail: "error body of 33 bytes is not a Salesforce error document".into(),
                },
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(&oauth_error(400, body.as_bytes()), expected, "body {body}");
        }
    }

    #[test]
    fn retryable_errors_are_transient_failures_only() {
        let api = |status: u16, code: &str| Error::Api {
            status,
            error_code: code.into(),
            message: String::new(),
            fields: vec![],
        };
        let cases = [
            (Error::Timeout, true),
            (Error::Transport("reset".into()), true),
            (api(503, "SERVER_UNAVAILABLE"), true),
            (api(403, "REQUEST_LIMIT_EXCEEDED"), false),
            (api(401, "INVALID_SESSION_ID"), false),
            (api(400, "MALFORMED_QUERY"), false),
            (Error::InvalidInput("x".into()), false),
            (Error::SessionExpired, false),
        ];
        for (error, expected) in cases {
            assert_eq!(error.is_retryable(), expected, "{error:?}");
        }
    }
}
