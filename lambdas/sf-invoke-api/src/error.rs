//! The function's errors, their stable `errorType` names and the mapping from Salesforce errors.

use lambda_runtime::Diagnostic;
use sf_common::privacy::mask_phone_numbers;

/// Everything an invocation can fail with. Amazon Connect takes the block's Error branch; the
/// `errorType` (see [`InvokeError::error_type`]) is stable so flows and alarms can rely on it.
///
/// Messages name the problem (the parameter, the operation, Salesforce's `errorCode`) and never
/// contain credentials or tokens. Caller values are echoed at most 64 characters long.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    /// The event is not `{"Details": {"Parameters": {<string>: <string>, ...}}}` or is too big.
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    /// A parameter the operation needs is absent or blank.
    #[error("missing parameter {name}: the {operation} operation requires it")]
    MissingParameter { name: String, operation: String },
    /// `sf_operation` names no operation (names are case-sensitive).
    #[error("unknown sf_operation {operation}{hint}")]
    UnknownOperation { operation: String, hint: String },
    /// A parameter's value is malformed or unsafe to send (bad name, injection attempt, bad
    /// relative date, oversized number...).
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter { name: String, reason: String },
    /// A record id that is not 15 or 18 letters and digits, or whose checksum is wrong.
    #[error("invalid record id in {name}: {reason}")]
    InvalidId { name: String, reason: String },
    /// Salesforce answered with an error (4xx): its `errorCode` and message.
    #[error("Salesforce rejected the call: {code}: {message}")]
    Salesforce { code: String, message: String },
    /// Salesforce could not be reached or answered 5xx, also after the client's retries.
    #[error("Salesforce is unavailable: {0}")]
    SalesforceUnavailable(String),
    /// The call did not finish in time: before the invocation's deadline, or within the
    /// configured request timeout.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The function's environment or secrets are unusable; the message names the variable or
    /// secret.
    #[error("configuration error: {0}")]
    Configuration(String),
}

impl InvokeError {
    /// The stable `errorType` Lambda reports.
    pub fn error_type(&self) -> &'static str {
        match self {
            InvokeError::InvalidEvent(_) => "InvalidEvent",
            InvokeError::MissingParameter { .. } => "MissingParameter",
            InvokeError::UnknownOperation { .. } => "UnknownOperation",
            InvokeError::InvalidParameter { .. } => "InvalidParameter",
            InvokeError::InvalidId { .. } => "InvalidId",
            InvokeError::Salesforce { .. } => "SalesforceError",
            InvokeError::SalesforceUnavailable(_) => "SalesforceUnavailable",
            InvokeError::Timeout(_) => "Timeout",
            InvokeError::Configuration(_) => "ConfigurationError",
        }
    }

    /// The reason may quote the caller's value: phone numbers in it are masked.
    pub(crate) fn invalid(name: &str, reason: impl Into<String>) -> Self {
        InvokeError::InvalidParameter {
            name: name.to_owned(),
            reason: mask_phone_numbers(&reason.into()),
        }
    }

    /// Wraps a validation error of the `salesforce::safety` functions for parameter `name`.
    pub(crate) fn from_safety(name: &str, error: salesforce::Error) -> Self {
        let reason = match error {
            salesforce::Error::InvalidInput(reason) => reason,
            other => other.to_string(),
        };
        InvokeError::invalid(name, reason)
    }

    /// Wraps an id validation error for parameter `name`.
    pub(crate) fn from_id(name: &str, error: salesforce::Error) -> Self {
        let reason = match error {
            salesforce::Error::InvalidInput(reason) => reason,
            other => other.to_string(),
        };
        InvokeError::InvalidId {
            name: name.to_owned(),
            reason,
        }
    }
}

impl From<InvokeError> for Diagnostic {
    fn from(error: InvokeError) -> Self {
        Diagnostic {
            error_type: error.error_type().to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// Maps a failed Salesforce call (after the client's own retries) to the function's error.
pub(crate) fn from_salesforce(error: salesforce::Error) -> InvokeError {
    use salesforce::Error as Sf;
    match error {
        Sf::Api {
            status,
            error_code,
            message,
            ..
        } if status >= 500 => InvokeError::SalesforceUnavailable(format!(
            "HTTP {status} {error_code}: {}",
            mask_phone_numbers(&message)
        )),
        // Salesforce's messages may quote the query, and so the caller's values: the answer to
        // Amazon Connect (and the log) shows phone numbers masked.
        Sf::Api {
            error_code,
            message,
            ..
        } => InvokeError::Salesforce {
            code: error_code,
            message: mask_phone_numbers(&message),
        },
        Sf::Auth {
            status,
            error,
            description,
        } if status >= 500 => InvokeError::SalesforceUnavailable(format!(
            "the login endpoint answered HTTP {status} {error}: {description}"
        )),
        Sf::Auth {
            error, description, ..
        } => InvokeError::Salesforce {
            code: error,
            message: format!("login failed: {description}"),
        },
        Sf::Timeout => InvokeError::Timeout(
            "Salesforce did not answer within the request timeout (SF_REQUEST_TIMEOUT_MS)".into(),
        ),
        Sf::Transport(detail) => InvokeError::SalesforceUnavailable(detail),
        Sf::MalformedResponse { status, detail } if status >= 500 => {
            InvokeError::SalesforceUnavailable(format!("HTTP {status}: {detail}"))
        }
        Sf::MalformedResponse { status, detail } => InvokeError::Salesforce {
            code: "UNEXPECTED_RESPONSE".into(),
            message: format!("HTTP {status}: {detail}"),
        },
        Sf::InvalidInput(reason) => InvokeError::invalid("(request)", reason),
        Sf::InvalidCredentials(reason) => {
            InvokeError::Configuration(format!("the Salesforce credentials are unusable: {reason}"))
        }
        Sf::SessionExpired => InvokeError::Salesforce {
            code: "INVALID_SESSION_ID".into(),
            message: "the session was rejected again after it was renewed".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salesforce_errors_map_to_stable_error_types() {
        let api = |status: u16, code: &str, message: &str| salesforce::Error::Api {
            status,
            error_code: code.into(),
            message: message.into(),
            fields: vec![],
        };
        let cases = [
            (
                api(
                    403,
                    "REQUEST_LIMIT_EXCEEDED",
                    "TotalRequests Limit exceeded.",
                ),
                "SalesforceError",
                "Salesforce rejected the call: REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded.",
            ),
            (
                api(503, "SERVER_UNAVAILABLE", "Server unavailable"),
                "SalesforceUnavailable",
                "Salesforce is unavailable: HTTP 503 SERVER_UNAVAILABLE: Server unavailable",
            ),
            (
                salesforce::Error::Timeout,
                "Timeout",
                "timed out: Salesforce did not answer within the request timeout (SF_REQUEST_TIMEOUT_MS)",
            ),
            (
                salesforce::Error::Auth {
                    status: 400,
                    error: "invalid_grant".into(),
                    description: "authentication failure".into(),
                },
                "SalesforceError",
                "Salesforce rejected the call: invalid_grant: login failed: authentication failure",
            ),
            (
                salesforce::Error::InvalidCredentials("ClientId is missing".into()),
                "ConfigurationError",
                "configuration error: the Salesforce credentials are unusable: ClientId is missing",
            ),
        ];
        for (error, error_type, message) in cases {
            let diagnostic = Diagnostic::from(from_salesforce(error));
            assert_eq!(diagnostic.error_type, error_type);
            assert_eq!(diagnostic.error_message, message);
        }
    }

    #[test]
    fn caller_phone_numbers_are_not_echoed_back_to_connect() {
        let quoted = salesforce::Error::Api {
            status: 400,
            error_code: "MALFORMED_QUERY".into(),
            message: "unexpected token: '+1 555 123 4567'".into(),
            fields: vec![],
        };
        let diagnostic = Diagnostic::from(from_salesforce(quoted));
        assert_eq!(
            diagnostic.error_message,
            "Salesforce rejected the call: MALFORMED_QUERY: unexpected token: '+* *** *** **67'"
        );
        let invalid = InvokeError::invalid("sf_phone", "'5551234567' is not a valid phone");
        assert_eq!(
            invalid.to_string(),
            "invalid parameter sf_phone: '********67' is not a valid phone"
        );
    }
}
