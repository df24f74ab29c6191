//! A refusal in the service's own error shape, so the AWS SDKs parse it as they parse AWS's
//! (`AccessDeniedException` for the JSON services, `AccessDenied` in an `ErrorResponse` for the
//! query services), and the wording AWS uses for an authorization failure:
//! `User: PRINCIPAL is not authorized to perform: ACTION on resource: ARN because …`.

use axum::body::Body;
use axum::http::{Response, StatusCode, header};

use crate::table::Protocol;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Nothing allowed it (`no identity-based policy allows the ACTION action`, or the
    /// resource-based variant when only a resource policy could have).
    NoPolicyAllows { resource_based: bool },
    /// A statement denied it (`with an explicit deny in a … policy`).
    ExplicitDeny { resource_based: bool },
}

/// The message of an authorization failure, worded as AWS words it.
pub fn message(principal: &str, action: &str, resource: &str, reason: &Reason) -> String {
    let because = match reason {
        Reason::NoPolicyAllows {
            resource_based: false,
        } => format!("because no identity-based policy allows the {action} action"),
        Reason::NoPolicyAllows {
            resource_based: true,
        } => format!("because no resource-based policy allows the {action} action"),
        Reason::ExplicitDeny {
            resource_based: false,
        } => "with an explicit deny in an identity-based policy".to_string(),
        Reason::ExplicitDeny {
            resource_based: true,
        } => "with an explicit deny in a resource-based policy".to_string(),
    };
    format!(
        "User: {principal} is not authorized to perform: {action} on resource: {resource} {because}"
    )
}

/// An `AccessDenied` answer carrying `message`.
pub fn access_denied(protocol: Protocol, message: &str) -> Response<Body> {
    error(
        protocol,
        StatusCode::FORBIDDEN,
        Codes {
            json: "AccessDeniedException",
            query: "AccessDenied",
            s3: "AccessDenied",
        },
        message,
    )
}

/// The answer to a key no one issued (AWS: `UnrecognizedClientException` /
/// `InvalidClientTokenId`; S3: `InvalidAccessKeyId`).
pub fn unknown_key(protocol: Protocol) -> Response<Body> {
    let message = if protocol == Protocol::RestXml {
        "The AWS Access Key Id you provided does not exist in our records."
    } else {
        "The security token included in the request is invalid."
    };
    error(
        protocol,
        StatusCode::FORBIDDEN,
        Codes {
            json: "UnrecognizedClientException",
            query: "InvalidClientTokenId",
            s3: "InvalidAccessKeyId",
        },
        message,
    )
}

/// The answer to a request with no signature at all (AWS: `MissingAuthenticationToken`; S3
/// takes it for an anonymous caller, whom nothing here allows: `AccessDenied`).
pub fn unsigned(protocol: Protocol) -> Response<Body> {
    let message = match protocol {
        Protocol::RestXml => "Access Denied",
        Protocol::Query | Protocol::Ec2 => "Request is missing Authentication Token",
        _ => "Missing Authentication Token",
    };
    error(
        protocol,
        StatusCode::FORBIDDEN,
        Codes {
            json: "MissingAuthenticationTokenException",
            query: "MissingAuthenticationToken",
            s3: "AccessDenied",
        },
        message,
    )
}

/// A request AWS refuses as invalid in the current state of the resource
/// (`InvalidRequestException`, HTTP 400).
pub fn invalid_request(protocol: Protocol, message: &str) -> Response<Body> {
    error(
        protocol,
        StatusCode::BAD_REQUEST,
        Codes {
            json: "InvalidRequestException",
            query: "InvalidRequest",
            s3: "InvalidRequest",
        },
        message,
    )
}

/// A throttled request, as each service answers one: `ThrottlingException` (JSON services),
/// `Throttling` (query services), `TooManyRequestsException` with 429 (Lambda), `SlowDown` with
/// 503 (S3). The AWS SDKs retry each of these.
pub fn throttled(protocol: Protocol) -> Response<Body> {
    let (status, message) = match protocol {
        Protocol::Rest => (StatusCode::TOO_MANY_REQUESTS, "Rate exceeded"),
        Protocol::RestXml => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Please reduce your request rate.",
        ),
        _ => (StatusCode::BAD_REQUEST, "Rate exceeded"),
    };
    let json = if protocol == Protocol::Rest {
        "TooManyRequestsException"
    } else {
        "ThrottlingException"
    };
    error(
        protocol,
        status,
        Codes {
            json,
            query: "Throttling",
            s3: "SlowDown",
        },
        message,
    )
}

/// A request the service fails with `code` (HTTP 400), in the protocol's shape.
pub fn failure(protocol: Protocol, code: &'static str, message: &str) -> Response<Body> {
    error(
        protocol,
        StatusCode::BAD_REQUEST,
        Codes {
            json: code,
            query: code,
            s3: code,
        },
        message,
    )
}

/// An error's code in each protocol's naming.
struct Codes {
    json: &'static str,
    query: &'static str,
    s3: &'static str,
}

fn error(protocol: Protocol, status: StatusCode, codes: Codes, message: &str) -> Response<Body> {
    let Codes {
        json: json_type,
        query: query_code,
        s3: s3_code,
    } = codes;
    let (status, content_type, body) = match protocol {
        // JSON protocols answer 400 for every client error; the type says which.
        Protocol::Json10 => (
            StatusCode::BAD_REQUEST,
            "application/x-amz-json-1.0",
            serde_json::json!({
                "__type": format!("com.amazon.coral.service#{json_type}"),
                "message": message,
            })
            .to_string(),
        ),
        Protocol::Json11 => (
            StatusCode::BAD_REQUEST,
            "application/x-amz-json-1.1",
            serde_json::json!({ "__type": json_type, "Message": message }).to_string(),
        ),
        Protocol::Rest => (
            status,
            "application/json",
            serde_json::json!({ "Type": "User", "message": message }).to_string(),
        ),
        Protocol::RestXml => (
            status,
            "application/xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{s3_code}</Code><Message>{}</Message><RequestId>sfstack-gateway</RequestId></Error>",
                escape(message)
            ),
        ),
        // EC2 names a refusal `UnauthorizedOperation` (EC2 API Reference, "Error codes").
        Protocol::Ec2 => (
            status,
            "text/xml",
            format!(
                "<Response><Errors><Error><Code>{}</Code><Message>{}</Message></Error></Errors><RequestID>sfstack-gateway</RequestID></Response>",
                if query_code == "AccessDenied" {
                    "UnauthorizedOperation"
                } else {
                    query_code
                },
                escape(message)
            ),
        ),
        Protocol::Query => (
            status,
            "text/xml",
            format!(
                "<ErrorResponse><Error><Type>Sender</Type><Code>{query_code}</Code><Message>{}</Message></Error><RequestId>sfstack-gateway</RequestId></ErrorResponse>",
                escape(message)
            ),
        ),
    };
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .header("x-amzn-errortype", json_type)
        .header("x-amzn-requestid", "sfstack-gateway")
        .body(Body::from(body))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_worded_as_aws_words_them() {
        assert_eq!(
            message(
                "arn:aws:sts::1:assumed-role/r/s",
                "secretsmanager:GetSecretValue",
                "arn:aws:secretsmanager:us-east-1:1:secret:x-AbCdEf",
                &Reason::NoPolicyAllows {
                    resource_based: false
                }
            ),
            "User: arn:aws:sts::1:assumed-role/r/s is not authorized to perform: secretsmanager:GetSecretValue on resource: arn:aws:secretsmanager:us-east-1:1:secret:x-AbCdEf because no identity-based policy allows the secretsmanager:GetSecretValue action"
        );
        assert!(
            message(
                "p",
                "kms:Decrypt",
                "k",
                &Reason::ExplicitDeny {
                    resource_based: true
                }
            )
            .ends_with("with an explicit deny in a resource-based policy")
        );
    }

    #[test]
    fn each_protocol_gets_its_own_error_shape() {
        let json = access_denied(Protocol::Json11, "no");
        assert_eq!(json.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            json.headers()
                .get("x-amzn-errortype")
                .and_then(|v| v.to_str().ok()),
            Some("AccessDeniedException")
        );
        let query = access_denied(Protocol::Query, "a < b");
        assert_eq!(query.status(), StatusCode::FORBIDDEN);
        let unsigned = unsigned(Protocol::Json11);
        assert_eq!(
            unsigned
                .headers()
                .get("x-amzn-errortype")
                .and_then(|v| v.to_str().ok()),
            Some("MissingAuthenticationTokenException")
        );
    }
}
