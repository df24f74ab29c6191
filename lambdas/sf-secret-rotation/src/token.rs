//! The OAuth 2.0 `refresh_token` grant against the secret's token endpoint.
//!
//! This is deliberately not `salesforce`'s token request: it posts to any provider's `TokenUrl`,
//! sends once (a rotated refresh token is single-use; Secrets Manager retries the step), accepts
//! answers without `instance_url` (other providers) but only https or loopback ones, and reports
//! failures as [`Error::TokenRequestFailed`] with a hint per OAuth error code.

use salesforce::Secret;
use serde_json::{Map, Value};

use crate::config::check_url;
use crate::error::{Error, describe_transport};

const SALESFORCE_TOKEN_PATH: &str = "/services/oauth2/token";

/// What the refresh grant needs, read from a secret document.
#[derive(Debug)]
pub(crate) struct RefreshRequest {
    token_url: String,
    client_id: String,
    client_secret: Option<Secret>,
    pub(crate) refresh_token: Secret,
}

impl RefreshRequest {
    pub(crate) fn from_document(
        document: &Map<String, Value>,
        default_login_url: &str,
    ) -> Result<Self, String> {
        let aliased = |keys: &[&str]| -> Result<Option<String>, String> {
            let mut found: Option<(&str, String)> = None;
            for key in keys {
                let value = match document.get(*key) {
                    None | Some(Value::Null) => continue,
                    Some(Value::String(text)) if text.trim().is_empty() => continue,
                    Some(Value::String(text)) => text.trim().to_owned(),
                    Some(_) => return Err(format!("{key} is not a string")),
                };
                match &found {
                    Some((first, existing)) if *existing != value => {
                        return Err(format!(
                            "{first} and {key} are both set, to different values"
                        ));
                    }
                    Some(_) => {}
                    None => found = Some((key, value)),
                }
            }
            Ok(found.map(|(_, value)| value))
        };
        let token_url = match (aliased(&["TokenUrl"])?, aliased(&["LoginUrl"])?) {
            (Some(url), _) => check_url(&url).ok_or("TokenUrl is not an http(s) URL")?,
            (None, Some(login)) => format!(
                "{}{SALESFORCE_TOKEN_PATH}",
                check_url(&login).ok_or("LoginUrl is not an http(s) URL")?
            ),
            (None, None) => format!("{default_login_url}{SALESFORCE_TOKEN_PATH}"),
        };
        Ok(Self {
            token_url,
            client_id: aliased(&["ClientId", "ConsumerKey"])?
                .ok_or("ClientId (or ConsumerKey) is missing")?,
            client_secret: aliased(&["ClientSecret", "ConsumerSecret"])?.map(Secret::new),
            refresh_token: aliased(&["RefreshToken"])?
                .map(Secret::new)
                .ok_or("RefreshToken is missing")?,
        })
    }
}

/// A successful token response.
#[derive(Debug)]
pub(crate) struct TokenSet {
    pub(crate) access_token: Secret,
    pub(crate) refresh_token: Option<Secret>,
    pub(crate) instance_url: Option<String>,
    pub(crate) issued_at: i64,
}

/// The `refresh_token` grant (RFC 6749 §6), form-encoded.
pub(crate) async fn refresh(
    http: &reqwest::Client,
    request: &RefreshRequest,
) -> Result<TokenSet, Error> {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", request.refresh_token.expose()),
        ("client_id", request.client_id.as_str()),
    ];
    if let Some(secret) = &request.client_secret {
        form.push(("client_secret", secret.expose()));
    }
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&form)
        .finish();
    // Sent once: with a provider that rotates refresh tokens, a repeat after a lost answer
    // would present a retired token. Secrets Manager retries the whole step instead.
    let response = http
        .post(&request.token_url)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(reqwest::header::ACCEPT, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|error| Error::TokenRequestFailed {
            reason: describe_transport(&error),
            hint: "the token endpoint did not answer; Secrets Manager retries the rotation".into(),
        })?;
    let status = response.status().as_u16();
    let bytes = response
        .bytes()
        .await
        .map_err(|error| Error::TokenRequestFailed {
            reason: describe_transport(&error),
            hint: "the token endpoint did not answer; Secrets Manager retries the rotation".into(),
        })?;
    parse_token_response(status, &bytes)
}

/// Reads a token response by key, never quoting the body (it holds tokens, or could echo them).
fn parse_token_response(status: u16, body: &[u8]) -> Result<TokenSet, Error> {
    let value: Option<Value> = serde_json::from_slice(body).ok();
    let text = |key: &str| {
        value
            .as_ref()
            .and_then(|value| value.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .filter(|text| !text.is_empty())
    };
    if status != 200 {
        let (reason, hint) = match text("error") {
            Some(error) => {
                let description = text("error_description").unwrap_or_default();
                let hint = match error.as_str() {
                    "invalid_grant" => {
                        "the refresh token was revoked or expired; authorize again and put the new RefreshToken in AWSCURRENT"
                    }
                    "invalid_client" | "invalid_client_id" => {
                        "check ClientId/ConsumerKey and ClientSecret/ConsumerSecret in the secret"
                    }
                    _ => "check the secret's token endpoint and client settings",
                };
                (format!("{status} {error}: {description}"), hint)
            }
            None => (
                format!(
                    "{status} with a body of {} bytes that is not an OAuth error",
                    body.len()
                ),
                "check TokenUrl/LoginUrl in the secret",
            ),
        };
        return Err(Error::TokenRequestFailed {
            reason,
            hint: hint.into(),
        });
    }
    let malformed = |detail: &str| Error::TokenRequestFailed {
        reason: format!("200 but {detail}"),
        hint: "check TokenUrl/LoginUrl in the secret".into(),
    };
    let access_token =
        text("access_token").ok_or_else(|| malformed("the answer has no access_token"))?;
    let instance_url = match text("instance_url") {
        Some(url) => Some(check_url(&url).ok_or_else(|| malformed("instance_url is not a URL"))?),
        None => None,
    };
    // Salesforce sends a string of milliseconds; accept a number too; default to now.
    let issued_at = match value.as_ref().and_then(|value| value.get("issued_at")) {
        Some(Value::String(text)) => text.parse().ok(),
        Some(Value::Number(number)) => number.as_i64(),
        _ => None,
    }
    .unwrap_or_else(now_millis);
    Ok(TokenSet {
        access_token: Secret::new(access_token),
        refresh_token: text("refresh_token").map(Secret::new),
        instance_url,
        issued_at,
    })
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}
#[cfg(test)]
mod tests {
    use super::*;

    fn document(json: &str) -> Map<String, Value> {
        match serde_json::from_str(json) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn the_token_endpoint_comes_from_token_url_or_login_url() {
        let cases = [
            (
                r#"{"TokenUrl":"https://idp.example.com/oauth/token","LoginUrl":"https://x","ClientId":"c","RefreshToken":"r"}"#,
                Ok("https://idp.example.com/oauth/token".to_owned()),
            ),
            (
                r#"{"LoginUrl":"https://test.salesforce.com/","ConsumerKey":"c","RefreshToken":"r"}"#,
                Ok("https://test.salesforce.com/services/oauth2/token".to_owned()),
            ),
            (
                r#"{"ClientId":"c","RefreshToken":"r"}"#,
                Ok("https://login.salesforce.com/services/oauth2/token".to_owned()),
            ),
            (
                r#"{"ClientId":"c","ConsumerKey":"d","RefreshToken":"r"}"#,
                Err("ClientId and ConsumerKey are both set, to different values".to_owned()),
            ),
            (
                r#"{"ClientId":"c"}"#,
                Err("RefreshToken is missing".to_owned()),
            ),
            (
                r#"{"RefreshToken":"r"}"#,
                Err("ClientId (or ConsumerKey) is missing".to_owned()),
            ),
            (
                r#"{"TokenUrl":"ftp://x","ClientId":"c","RefreshToken":"r"}"#,
                Err("TokenUrl is not an http(s) URL".to_owned()),
            ),
        ];
        for (json, expected) in cases {
            let actual =
                RefreshRequest::from_document(&document(json), salesforce::DEFAULT_LOGIN_URL)
                    .map(|request| request.token_url);
            assert_eq!(actual, expected, "{json}");
        }
    }

    #[test]
    fn token_answers_are_read_by_key_and_errors_quote_no_token() {
        let ok = parse_token_response(
            200,
            br#"{"access_token":"00D!new","refresh_token":"R2","instance_url":"https://na1.salesforce.com/","issued_at":"1700000000000"}"#,
        );
        let ok = ok.expect("parses");
        assert_eq!(ok.access_token.expose(), "00D!new");
        assert_eq!(ok.refresh_token.as_ref().map(Secret::expose), Some("R2"));
        assert_eq!(
            ok.instance_url.as_deref(),
            Some("https://na1.salesforce.com")
        );
        assert_eq!(ok.issued_at, 1_700_000_000_000);

        let cases: [(u16, &[u8], &str); 3] = [
            (
                400,
                br#"{"error":"invalid_grant","error_description":"expired access/refresh token"}"#,
                "400 invalid_grant: expired access/refresh token",
            ),
            (
                502,
                b"<html>SECRET-ECHO</html>",
                "502 with a body of 24 bytes",
            ),
            (
                200,
                br#"{"token":"SECRET-ECHO"}"#,
                "200 but the answer has no access_token",
            ),
        ];
        for (status, body, reason) in cases {
            let error = parse_token_response(status, body)
                .map(|_| ())
                .expect_err("fails");
            assert_eq!(error.error_type(), "TokenRequestFailed");
            let message = error.to_string();
            assert!(message.contains(reason), "{message}");
            assert!(!message.contains("SECRET-ECHO"), "{message}");
        }
    }
}
