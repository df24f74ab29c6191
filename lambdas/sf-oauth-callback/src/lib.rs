//! The OAuth callback function: behind a Lambda Function URL it completes Salesforce's
//! web-server (authorization-code) flow for a WhatsApp user and stores their tokens in DynamoDB.
//!
//! # Request
//!
//! `GET /callback?code=…&state=…` (Function URL payload format 2.0). Salesforce redirects the
//! user's browser here after they approve the connected app.
//!
//! # The `state` parameter
//!
//! `state` binds the callback to a WhatsApp user and proves that sfstack started the flow:
//!
//! ```text
//! wa:<wa_id>.<issued_at>.<signature>
//! wa:whatsapp:+15555550100.1767225600.3q2-7wX…
//! ```
//!
//! - `<wa_id>` is the WhatsApp address `whatsapp:+<E.164 number>` (7 to 15 digits).
//! - `<issued_at>` is when the state was made, in Unix seconds.
//! - `<signature>` is `base64url(HMAC-SHA256(key, "wa:<wa_id>.<issued_at>"))` without padding,
//!   where the key is the UTF-8 bytes of `StateSigningKey` from the credentials secret.
//!
//! [`sign_state`] makes one; whoever builds the authorize URL must percent-encode it (the `+`
//! becomes `%2B`). A state older than `OAUTH_STATE_MAX_AGE_SECONDS` (default 600) or more than
//! 60 seconds in the future is refused. Within its age a state can be replayed with another
//! code, so keep the age short; the code itself is single-use.
//!
//! # Responses
//!
//! | status | when |
//! |---|---|
//! | 200 | tokens stored; a short HTML page that contains no token |
//! | 400 | `code` or `state` missing or invalid, or Salesforce sent `error=` (text/plain reason) |
//! | 405 | a method other than GET |
//! | 502 | Salesforce rejected the code exchange or did not answer (no secret in the body) |
//!
//! Configuration, Secrets Manager and DynamoDB failures fail the invocation (the Function URL
//! then answers 502 on its own) with a stable `errorType`, so they show up as function errors.
//!
//! # The tokens table
//!
//! Table `OAUTH_TOKENS_TABLE`, partition key `wa_id` (S). One item per WhatsApp user, replaced
//! on each successful callback: `wa_id`, `access_token`, `refresh_token` (when Salesforce issued
//! one), `instance_url` (S) and `issued_at` (N, milliseconds). Encryption at rest with the
//! stack's KMS key is table configuration (`SSESpecification`), not code.

use std::collections::HashMap;
use std::time::Duration;

use aws_lambda_events::event::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use aws_lambda_events::http::{HeaderMap, HeaderValue, header};
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use lambda_runtime::{Diagnostic, LambdaEvent};
use salesforce::{ClientConfig, Secret, Session};
use serde_json::Value;
use sf_common::{Secrets, Settings};
use sha2::Sha256;

/// The prefix of every state.
pub const STATE_PREFIX: &str = "wa:";
/// The default for `OAUTH_STATE_MAX_AGE_SECONDS`.
pub const DEFAULT_STATE_MAX_AGE: Duration = Duration::from_secs(600);
/// How far in the future a state's timestamp may be (clock skew between signer and callback).
const STATE_CLOCK_SKEW_SECONDS: i64 = 60;
/// A shorter `StateSigningKey` is refused: it would be guessable.
const MIN_SIGNING_KEY_BYTES: usize = 16;

type HmacSha256 = Hmac<Sha256>;

/// Why a `state` was refused. The message is the 400 answer's body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("state is malformed")]
    Malformed,
    #[error("state does not start with wa:whatsapp:+")]
    WrongPrefix,
    #[error("state does not hold a valid WhatsApp number")]
    InvalidNumber,
    #[error("state signature is invalid")]
    BadSignature,
    #[error("state has expired; start the sign-in again")]
    Expired,
    #[error("state is not valid yet")]
    FromTheFuture,
}

/// Why an invocation failed. [`Error::error_type`] is the stable `errorType` Lambda reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("configuration error: {0}")]
    Configuration(String),
    /// The credentials secret could not be read or lacks what this function needs.
    #[error("credentials secret: {0}")]
    Credentials(String),
    #[error("could not store the tokens in DynamoDB table {table}: {message}")]
    StoreFailed { table: String, message: String },
}

impl Error {
    pub fn error_type(&self) -> &'static str {
        match self {
            Error::Configuration(_) => "ConfigurationError",
            Error::Credentials(_) => "CredentialsError",
            Error::StoreFailed { .. } => "StoreFailed",
        }
    }
}

impl From<Error> for Diagnostic {
    fn from(error: Error) -> Self {
        Diagnostic {
            error_type: error.error_type().to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// Makes a `state` for `wa_id` (`whatsapp:+15555550100`, or just `+15555550100`) at `now`
/// (Unix seconds), signed with `key` (the `StateSigningKey` bytes).
pub fn sign_state(key: &[u8], wa_id: &str, now: i64) -> Result<String, StateError> {
    let number = wa_id.strip_prefix("whatsapp:").unwrap_or(wa_id);
    if !is_e164(number) {
        return Err(StateError::InvalidNumber);
    }
    let payload = format!("{STATE_PREFIX}whatsapp:{number}.{now}");
    Ok(format!("{payload}.{}", signature(key, &payload)))
}

/// Checks a `state` and returns its `wa_id` (`whatsapp:+15555550100`).
pub fn verify_state(
    key: &[u8],
    state: &str,
    now: i64,
    max_age: Duration,
) -> Result<String, StateError> {
    let mut parts = state.trim().rsplitn(3, '.');
    let (Some(signature_text), Some(issued_at), Some(payload)) =
        (parts.next(), parts.next(), parts.next())
    else {
        return Err(StateError::Malformed);
    };
    let Some(address) = payload.strip_prefix(STATE_PREFIX) else {
        return Err(StateError::WrongPrefix);
    };
    let Some(number) = address.strip_prefix("whatsapp:") else {
        return Err(StateError::WrongPrefix);
    };
    // A `+` that a lax encoder left unescaped arrives decoded as a space.
    let number = match number.strip_prefix(' ') {
        Some(rest) => format!("+{rest}"),
        None => number.to_owned(),
    };
    if !number.starts_with('+') {
        return Err(StateError::WrongPrefix);
    }
    if !is_e164(&number) {
        return Err(StateError::InvalidNumber);
    }
    let issued_at: i64 = issued_at.parse().map_err(|_| StateError::Malformed)?;
    let signature_bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(signature_text)
        .map_err(|_| StateError::BadSignature)?;
    let canonical = format!("{STATE_PREFIX}whatsapp:{number}.{issued_at}");
    let mut mac = HmacSha256::new_from_slice(key).map_err(|_| StateError::BadSignature)?;
    mac.update(canonical.as_bytes());
    // Constant-time comparison.
    mac.verify_slice(&signature_bytes)
        .map_err(|_| StateError::BadSignature)?;
    let max_age = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
    if now.saturating_sub(issued_at) > max_age {
        return Err(StateError::Expired);
    }
    if issued_at.saturating_sub(now) > STATE_CLOCK_SKEW_SECONDS {
        return Err(StateError::FromTheFuture);
    }
    Ok(format!("whatsapp:{number}"))
}

fn signature(key: &[u8], payload: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail; an empty MAC would never verify.
    match HmacSha256::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(payload.as_bytes());
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

fn is_e164(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(|digits| {
        (7..=15).contains(&digits.len())
            && digits.bytes().all(|byte| byte.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

/// Settings from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackConfig {
    /// `SF_CREDENTIALS_SECRET_ARN`, `SF_LOGIN_URL`, timeouts… (see `sf-common`).
    pub settings: Settings,
    /// `OAUTH_REDIRECT_URI`: this function's URL, exactly as registered on the connected app
    /// and as sent to the authorize endpoint.
    pub redirect_uri: String,
    /// `OAUTH_TOKENS_TABLE`.
    pub table_name: String,
    /// `OAUTH_STATE_MAX_AGE_SECONDS` (default 600).
    pub state_max_age: Duration,
}

impl CallbackConfig {
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let get = |name: &str| {
            lookup(name)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        let settings = Settings::from_lookup(&lookup)
            .map_err(|error| Error::Configuration(error.to_string()))?;
        let redirect_uri = get("OAUTH_REDIRECT_URI").ok_or_else(|| {
            Error::Configuration(
                "environment variable OAUTH_REDIRECT_URI: not set; it is this function's URL as \
                 registered on the connected app"
                    .into(),
            )
        })?;
        if !url::Url::parse(&redirect_uri).is_ok_and(|url| matches!(url.scheme(), "http" | "https"))
        {
            return Err(Error::Configuration(format!(
                "environment variable OAUTH_REDIRECT_URI: expected an https:// URL, got {redirect_uri:?}"
            )));
        }
        let table_name = get("OAUTH_TOKENS_TABLE").ok_or_else(|| {
            Error::Configuration(
                "environment variable OAUTH_TOKENS_TABLE: not set; it names the DynamoDB table of tokens".into(),
            )
        })?;
        let state_max_age = match get("OAUTH_STATE_MAX_AGE_SECONDS") {
            None => DEFAULT_STATE_MAX_AGE,
            Some(value) => value
                .parse::<u64>()
                .ok()
                .filter(|seconds| (1..=86_400).contains(seconds))
                .map(Duration::from_secs)
                .ok_or_else(|| {
                    Error::Configuration(format!(
                        "environment variable OAUTH_STATE_MAX_AGE_SECONDS: expected 1 to 86400 seconds, got {value:?}"
                    ))
                })?,
        };
        Ok(Self {
            settings,
            redirect_uri,
            table_name,
            state_max_age,
        })
    }
}

/// What the function needs from the credentials secret.
struct AppCredentials {
    login_url: String,
    client_id: String,
    client_secret: Secret,
    state_key: Secret,
}

/// The function: built once per execution environment.
#[derive(Debug, Clone)]
pub struct CallbackHandler {
    config: CallbackConfig,
    client_config: ClientConfig,
    secrets: Secrets,
    dynamodb: aws_sdk_dynamodb::Client,
}

impl CallbackHandler {
    pub fn new(
        config: CallbackConfig,
        secrets: Secrets,
        dynamodb: aws_sdk_dynamodb::Client,
    ) -> Self {
        let client_config = config.settings.client_config();
        Self {
            config,
            client_config,
            secrets,
            dynamodb,
        }
    }

    /// The Lambda handler.
    pub async fn handle(
        &self,
        event: LambdaEvent<LambdaFunctionUrlRequest>,
    ) -> Result<LambdaFunctionUrlResponse, Error> {
        self.respond(&event.payload, unix_seconds()).await
    }

    /// Answers one request as of `now` (Unix seconds).
    pub async fn respond(
        &self,
        request: &LambdaFunctionUrlRequest,
        now: i64,
    ) -> Result<LambdaFunctionUrlResponse, Error> {
        let method = request
            .request_context
            .http
            .method
            .as_deref()
            .unwrap_or_default();
        if !method.eq_ignore_ascii_case("GET") {
            let mut response = text_response(405, "method not allowed; use GET");
            response
                .headers
                .insert(header::ALLOW, HeaderValue::from_static("GET"));
            return Ok(response);
        }
        let query = query_parameters(request);
        if let Some(error) = query.get("error") {
            tracing::info!(error = %error, "salesforce redirected with an error");
            return Ok(text_response(
                400,
                "sign-in was not completed (salesforce refused or the user cancelled)",
            ));
        }
        let Some(code) = query.get("code").filter(|code| !code.is_empty()) else {
            return Ok(text_response(400, "missing code"));
        };
        let Some(state) = query.get("state").filter(|state| !state.is_empty()) else {
            return Ok(text_response(400, "missing state"));
        };

        let credentials = self.app_credentials().await?;
        let wa_id = match verify_state(
            credentials.state_key.expose().as_bytes(),
            state,
            now,
            self.config.state_max_age,
        ) {
            Ok(wa_id) => wa_id,
            Err(error) => {
                tracing::warn!(reason = %error, "refused an oauth callback state");
                return Ok(text_response(400, &error.to_string()));
            }
        };

        let session = match salesforce::exchange_authorization_code(
            &self.client_config,
            &credentials.login_url,
            &credentials.client_id,
            &credentials.client_secret,
            code,
            &self.config.redirect_uri,
            None,
        )
        .await
        {
            Ok(session) => session,
            Err(error) => {
                // The error carries Salesforce's code and description, never a secret; the
                // body says less still.
                tracing::warn!(
                    wa_id = %sf_common::privacy::mask_identifier(&wa_id),
                    error = %sf_common::privacy::mask_phone_numbers(&error.to_string()),
                    "salesforce refused the authorization code"
                );
                return Ok(text_response(
                    502,
                    "salesforce did not accept the sign-in; start again from WhatsApp",
                ));
            }
        };
        self.store(&wa_id, &session, now).await?;
        tracing::info!(
            wa_id = %sf_common::privacy::mask_identifier(&wa_id),
            instance_url = %session.instance_url,
            issued_at = session.issued_at,
            has_refresh_token = session.refresh_token.is_some(),
            "stored salesforce tokens for a whatsapp user"
        );
        Ok(html_response(
            200,
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>Connected</title></head>\
             <body><p>Your WhatsApp number is now connected to Salesforce. You can close this \
             window.</p></body></html>",
        ))
    }

    async fn app_credentials(&self) -> Result<AppCredentials, Error> {
        let arn = &self.config.settings.credentials_secret_arn;
        let document = self
            .secrets
            .get_string(arn, None, None)
            .await
            .map_err(|error| Error::Credentials(error.to_string()))?;
        let Ok(Value::Object(map)) = serde_json::from_str::<Value>(&document) else {
            return Err(Error::Credentials(format!("{arn} is not a JSON object")));
        };
        let text = |keys: &[&str]| {
            keys.iter().find_map(|key| {
                map.get(*key)
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|value| !value.is_empty())
                    .map(str::to_owned)
            })
        };
        let missing = |what: &str| Error::Credentials(format!("{arn} has no {what}"));
        let state_key = text(&["StateSigningKey"]).ok_or_else(|| missing("StateSigningKey"))?;
        if state_key.len() < MIN_SIGNING_KEY_BYTES {
            return Err(Error::Credentials(format!(
                "{arn}: StateSigningKey is shorter than {MIN_SIGNING_KEY_BYTES} bytes; use a long random value"
            )));
        }
        let login_url = self
            .config
            .settings
            .login_url
            .clone()
            .or_else(|| text(&["LoginUrl"]))
            .unwrap_or_else(|| salesforce::DEFAULT_LOGIN_URL.to_owned());
        Ok(AppCredentials {
            login_url,
            client_id: text(&["ClientId", "ConsumerKey"])
                .ok_or_else(|| missing("ClientId (or ConsumerKey)"))?,
            client_secret: text(&["ClientSecret", "ConsumerSecret"])
                .map(Secret::new)
                .ok_or_else(|| missing("ClientSecret (or ConsumerSecret)"))?,
            state_key: Secret::new(state_key),
        })
    }

    async fn store(&self, wa_id: &str, session: &Session, now: i64) -> Result<(), Error> {
        let issued_at = session.issued_at.unwrap_or(now.saturating_mul(1000));
        let mut item = HashMap::from([
            ("wa_id".to_owned(), AttributeValue::S(wa_id.to_owned())),
            (
                "access_token".to_owned(),
                AttributeValue::S(session.access_token.expose().to_owned()),
            ),
            (
                "instance_url".to_owned(),
                AttributeValue::S(session.instance_url.clone()),
            ),
            (
                "issued_at".to_owned(),
                AttributeValue::N(issued_at.to_string()),
            ),
        ]);
        if let Some(refresh_token) = &session.refresh_token {
            item.insert(
                "refresh_token".to_owned(),
                AttributeValue::S(refresh_token.expose().to_owned()),
            );
        }
        self.dynamodb
            .put_item()
            .table_name(&self.config.table_name)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|error| Error::StoreFailed {
                table: self.config.table_name.clone(),
                message: sf_common::error_chain(&error),
            })?;
        Ok(())
    }
}

/// The query parameters: Lambda's decoded map, else the raw query string.
fn query_parameters(request: &LambdaFunctionUrlRequest) -> HashMap<String, String> {
    if !request.query_string_parameters.is_empty() {
        return request.query_string_parameters.clone();
    }
    request
        .raw_query_string
        .as_deref()
        .map(|raw| {
            url::form_urlencoded::parse(raw.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

fn text_response(status: i64, body: &str) -> LambdaFunctionUrlResponse {
    response(status, "text/plain; charset=utf-8", format!("{body}\n"))
}

fn html_response(status: i64, body: &str) -> LambdaFunctionUrlResponse {
    response(status, "text/html; charset=utf-8", body.to_owned())
}

fn response(status: i64, content_type: &'static str, body: String) -> LambdaFunctionUrlResponse {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The page follows a redirect that carried a code: never cache it.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let mut response = LambdaFunctionUrlResponse::default();
    response.status_code = status;
    response.headers = headers;
    response.body = Some(body);
    response.is_base64_encoded = false;
    response
}

fn unix_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef-test-key";
    const NOW: i64 = 1_767_225_600;
    const MAX_AGE: Duration = DEFAULT_STATE_MAX_AGE;

    #[test]
    fn signed_states_verify_and_name_the_whatsapp_address() -> Result<(), StateError> {
        for wa_id in ["whatsapp:+15555550100", "+15555550100"] {
            let state = sign_state(KEY, wa_id, NOW)?;
            assert!(
                state.starts_with("wa:whatsapp:+15555550100.1767225600."),
                "{state}"
            );
            assert_eq!(
                verify_state(KEY, &state, NOW + 599, MAX_AGE)?,
                "whatsapp:+15555550100"
            );
            // A `+` decoded as a space by a lax encoder.
            let spaced = state.replacen('+', " ", 1);
            assert_eq!(
                verify_state(KEY, &spaced, NOW, MAX_AGE)?,
                "whatsapp:+15555550100"
            );
        }
        Ok(())
    }

    #[test]
    fn bad_states_are_refused_with_a_reason() -> Result<(), StateError> {
        let good = sign_state(KEY, "whatsapp:+15555550100", NOW)?;
        let forged_signature = format!(
            "{}.{}",
            good.rsplit_once('.')
                .map(|(payload, _)| payload)
                .unwrap_or_default(),
            signature(b"another key entirely", "x")
        );
        let signed = |payload: &str| format!("{payload}.{}", signature(KEY, payload));
        let cases = [
            (good.clone(), NOW + 601, StateError::Expired),
            (good.clone(), NOW - 61, StateError::FromTheFuture),
            (forged_signature, NOW, StateError::BadSignature),
            (good.replace("0100", "0199"), NOW, StateError::BadSignature),
            (
                signed(&format!("sms:whatsapp:+15555550100.{NOW}")),
                NOW,
                StateError::WrongPrefix,
            ),
            (
                signed(&format!("wa:sms:+15555550100.{NOW}")),
                NOW,
                StateError::WrongPrefix,
            ),
            (
                signed(&format!("wa:whatsapp:15555550100.{NOW}")),
                NOW,
                StateError::WrongPrefix,
            ),
            (
                signed(&format!("wa:whatsapp:+1555x.{NOW}")),
                NOW,
                StateError::InvalidNumber,
            ),
            (
                signed("wa:whatsapp:+15555550100.soon"),
                NOW,
                StateError::Malformed,
            ),
            (
                "wa:whatsapp:+15555550100".to_owned(),
                NOW,
                StateError::Malformed,
            ),
            (format!("{good}!"), NOW, StateError::BadSignature),
        ];
        for (state, now, expected) in cases {
            assert_eq!(
                verify_state(KEY, &state, now, MAX_AGE),
                Err(expected.clone()),
                "{state}"
            );
        }
        assert_eq!(
            sign_state(KEY, "whatsapp:15555550100", NOW),
            Err(StateError::InvalidNumber)
        );
        Ok(())
    }

    #[test]
    fn configuration_names_the_missing_variable() {
        let base = [
            ("SF_CREDENTIALS_SECRET_ARN", "arn:credentials"),
            (
                "OAUTH_REDIRECT_URI",
                "https://example.lambda-url.us-east-1.on.aws/callback",
            ),
            ("OAUTH_TOKENS_TABLE", "tokens"),
        ];
        let config = |pairs: &[(&str, &str)]| {
            CallbackConfig::from_lookup(|name| {
                pairs
                    .iter()
                    .rev()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| (*value).to_owned())
            })
        };
        let ok = config(&base).map(|config| config.state_max_age);
        assert_eq!(ok, Ok(DEFAULT_STATE_MAX_AGE));
        let cases: [(&str, &str, &str); 5] = [
            ("SF_CREDENTIALS_SECRET_ARN", "", "SF_CREDENTIALS_SECRET_ARN"),
            ("OAUTH_REDIRECT_URI", "", "OAUTH_REDIRECT_URI"),
            ("OAUTH_REDIRECT_URI", "callback", "OAUTH_REDIRECT_URI"),
            ("OAUTH_TOKENS_TABLE", " ", "OAUTH_TOKENS_TABLE"),
            (
                "OAUTH_STATE_MAX_AGE_SECONDS",
                "ten minutes",
                "OAUTH_STATE_MAX_AGE_SECONDS",
            ),
        ];
        for (name, value, named) in cases {
            let mut pairs = base.to_vec();
            pairs.push((name, value));
            let error = config(&pairs).expect_err("invalid");
            assert_eq!(error.error_type(), "ConfigurationError");
            assert!(error.to_string().contains(named), "{error}");
        }
    }
}
