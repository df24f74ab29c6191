//! The OAuth callback function: behind a Lambda Function URL it runs Salesforce's web-server
//! (authorization-code) flow for a WhatsApp user, with PKCE, and stores their tokens in DynamoDB.
//!
//! # Requests (Function URL payload format 2.0)
//!
//! 1. `GET /start?link=…`: the WhatsApp side sends the user this link ([`sign_link`] makes the
//!    `link` value). The function checks the link and answers a confirmation page that names
//!    the WhatsApp number (masked) the Salesforce account will be linked to, with one button.
//!    Opening a link therefore links nothing: someone who forwards their own link to another
//!    person must also get them to confirm a number that is not theirs. The page cannot be
//!    framed, so the button cannot be clickjacked.
//! 2. `POST /start` (form field `link`), from that page only (its `Origin` must be this
//!    function's): the function checks the link again, puts a fresh nonce in an
//!    `__Host-sfstack-oauth` cookie (`HttpOnly; Secure; SameSite=Lax`) and redirects the browser
//!    to Salesforce's authorize endpoint with a state bound to that nonce and a PKCE (S256)
//!    challenge.
//! 3. `GET <redirect URI>?code=…&state=…`: Salesforce sends the browser back here. The callback
//!    requires the same browser's nonce, an unexpired state signed for it, and a state never
//!    used before (a conditional write to the states table), then exchanges the code with the
//!    PKCE verifier and stores the tokens.
//!
//! The formats are in [`state`]. Every check that can refuse a request runs in memory before
//! any AWS call: the credentials (client id and secret, state key) are read from Secrets Manager
//! once per execution environment, at start-up, and again at most every
//! [`CREDENTIALS_REFRESH`] (so a rotated consumer secret is picked up). A flood of junk requests
//! therefore costs no Secrets Manager, KMS or DynamoDB call; the function's reserved concurrency
//! bounds how many environments a flood can start.
//!
//! # Responses
//!
//! | status | when |
//! |---|---|
//! | 200 | `GET /start`: the confirmation page |
//! | 302 | `POST /start`: to Salesforce's authorize endpoint, with the nonce cookie |
//! | 200 | tokens stored; a short HTML page that contains no token |
//! | 400 | link, `code`, `state` or cookie missing, invalid, expired, used, or from another browser; or Salesforce sent `error=` (text/plain reason) |
//! | 403 | `POST /start` from another origin (another site's form) |
//! | 405 | a method other than GET (and POST on `/start`) |
//! | 502 | Salesforce rejected the code exchange or did not answer (no secret in the body) |
//!
//! Configuration, Secrets Manager and DynamoDB failures fail the invocation (the Function URL
//! then answers 502 on its own) with a stable `errorType`, so they show up as function errors.
//!
//! # The tables
//!
//! - Tokens, `OAUTH_TOKENS_TABLE`, partition key `wa_id` (S). One item per WhatsApp user,
//!   replaced on each successful callback: `wa_id`, `access_token`, `refresh_token` (when
//!   Salesforce issued one), `instance_url` (S) and `issued_at` (N, milliseconds).
//! - States, `OAUTH_STATES_TABLE`, partition key `state_id` (S), TTL attribute `expires_at`
//!   (N, Unix seconds). One item per completed sign-in, written only if absent.
//!
//! Encryption at rest with the stack's KMS key is table configuration, not code.

pub mod state;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::event::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use aws_lambda_events::http::{HeaderMap, HeaderValue, header};
use aws_sdk_dynamodb::types::AttributeValue;
use lambda_runtime::{Diagnostic, LambdaEvent};
use salesforce::{ClientConfig, Secret, Session};
use serde_json::Value;
use sf_common::{Secrets, Settings};

pub use state::{SignIn, StateError, UncheckedLink, UncheckedState, sign_link, verify_link};

/// The default for `OAUTH_STATE_MAX_AGE_SECONDS`: how long a link and a sign-in live.
pub const DEFAULT_STATE_MAX_AGE: Duration = Duration::from_secs(600);
/// How long the credentials read from Secrets Manager are used before they are read again.
pub const CREDENTIALS_REFRESH: Duration = Duration::from_secs(300);
/// The cookie that holds the browser's nonce. `__Host-`: only sent back to this host, over
/// https, for every path.
pub const NONCE_COOKIE: &str = "__Host-sfstack-oauth";
/// A shorter `StateSigningKey` is refused: it would be guessable.
const MIN_SIGNING_KEY_BYTES: usize = 16;

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
    #[error("could not record the sign-in in DynamoDB table {table}: {message}")]
    StateStoreFailed { table: String, message: String },
    #[error("the system's random number generator failed: {0}")]
    Randomness(String),
}

impl Error {
    pub fn error_type(&self) -> &'static str {
        match self {
            Error::Configuration(_) => "ConfigurationError",
            Error::Credentials(_) => "CredentialsError",
            Error::StoreFailed { .. } => "StoreFailed",
            Error::StateStoreFailed { .. } => "StateStoreFailed",
            Error::Randomness(_) => "RandomnessError",
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

/// Settings from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackConfig {
    /// `SF_CREDENTIALS_SECRET_ARN`, `SF_LOGIN_URL`, timeouts… (see `sf-common`).
    pub settings: Settings,
    /// `OAUTH_REDIRECT_URI`: this function's callback URL, exactly as registered on the
    /// connected app and as sent to the authorize endpoint.
    pub redirect_uri: String,
    /// `OAUTH_TOKENS_TABLE`.
    pub table_name: String,
    /// `OAUTH_STATES_TABLE`: the single-use record of each completed sign-in.
    pub states_table: String,
    /// `OAUTH_STATE_MAX_AGE_SECONDS` (default 600): how long a link and a sign-in live.
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
        let states_table = get("OAUTH_STATES_TABLE").ok_or_else(|| {
            Error::Configuration(
                "environment variable OAUTH_STATES_TABLE: not set; it names the DynamoDB table of used sign-in states".into(),
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
            states_table,
            state_max_age,
        })
    }
}

/// What the function needs from the credentials secret.
#[derive(Debug)]
struct AppCredentials {
    login_url: String,
    client_id: String,
    client_secret: Secret,
    state_key: Secret,
}

/// The credentials and when they were read.
type Cached = Option<(Arc<AppCredentials>, Instant)>;

/// The function: built once per execution environment.
#[derive(Debug, Clone)]
pub struct CallbackHandler {
    config: CallbackConfig,
    client_config: ClientConfig,
    secrets: Secrets,
    dynamodb: aws_sdk_dynamodb::Client,
    credentials: Arc<Mutex<Cached>>,
}

/// A request that may be answered before any AWS call, or what it needs next.
enum Checked<T> {
    Answer(LambdaFunctionUrlResponse),
    Proceed(T),
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
            credentials: Arc::new(Mutex::new(None)),
        }
    }

    /// Reads the credentials ahead of the first request (at start-up), so that requests are
    /// checked without an AWS call. A failure is logged; the first request that needs the
    /// credentials tries again and reports it.
    pub async fn prefetch(&self) {
        if let Err(error) = self.credentials(true).await {
            tracing::error!(error = %error, "could not read the credentials at start-up");
        }
    }

    /// The Lambda handler.
    pub async fn handle(
        &self,
        event: LambdaEvent<LambdaFunctionUrlRequest>,
    ) -> Result<LambdaFunctionUrlResponse, Error> {
        self.respond(&event.payload, unix_seconds()).await
    }

    /// Answers one request as of `now` (Unix seconds): `/start` begins a sign-in, any other
    /// path is the callback.
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
            .unwrap_or_default()
            .to_ascii_uppercase();
        let path = request
            .raw_path
            .as_deref()
            .or(request.request_context.http.path.as_deref())
            .unwrap_or("/");
        let start = path.trim_end_matches('/').ends_with("/start");
        match (method.as_str(), start) {
            ("GET", true) => self.confirm(request, now).await,
            ("POST", true) => self.start(request, now).await,
            ("GET", false) => self.callback(request, now).await,
            _ => {
                let allowed = if start { "GET, POST" } else { "GET" };
                let mut response =
                    text_response(405, &format!("method not allowed; use {allowed}"));
                response
                    .headers
                    .insert(header::ALLOW, HeaderValue::from_static(allowed));
                Ok(response)
            }
        }
    }

    /// Checks a sign-in link (reading the key again once if it may have been rotated) and
    /// returns the WhatsApp id it was signed for, or the 400 to answer.
    async fn checked_link(
        &self,
        link: Option<&String>,
        now: i64,
    ) -> Result<Result<String, LambdaFunctionUrlResponse>, Error> {
        let Some(link) = link.filter(|link| !link.is_empty()) else {
            return Ok(Err(text_response(
                400,
                "missing link; open the sign-in link from WhatsApp",
            )));
        };
        let link = match UncheckedLink::parse(link, now, self.config.state_max_age) {
            Ok(link) => link,
            Err(error) => return Ok(Err(refused("sign-in link", &error))),
        };
        let credentials = self.credentials(false).await?;
        Ok(
            match link
                .clone()
                .verify(credentials.state_key.expose().as_bytes())
            {
                Ok(wa_id) => Ok(wa_id),
                Err(error) => {
                    // The key may have been rotated since it was read: read it once more.
                    match self.credentials_if_stale().await? {
                        None => Err(refused("sign-in link", &error)),
                        Some(fresher) => link
                            .verify(fresher.state_key.expose().as_bytes())
                            .map_err(|error| refused("sign-in link", &error)),
                    }
                }
            },
        )
    }

    /// `GET /start?link=…`: checks the link and answers the confirmation page, which posts the
    /// link back to `/start`. Nothing is stored and no cookie is set.
    async fn confirm(
        &self,
        request: &LambdaFunctionUrlRequest,
        now: i64,
    ) -> Result<LambdaFunctionUrlResponse, Error> {
        let query = query_parameters(request);
        let wa_id = match self.checked_link(query.get("link"), now).await? {
            Ok(wa_id) => wa_id,
            Err(answer) => return Ok(answer),
        };
        let link = query.get("link").map(String::as_str).unwrap_or_default();
        // The number's last four digits: enough for its owner to recognise it.
        let digits: Vec<char> = wa_id.chars().filter(char::is_ascii_digit).collect();
        let number: String = digits[digits.len().saturating_sub(4)..].iter().collect();
        let page = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>Link your Salesforce account</title></head>\
             <body><h1>Link your Salesforce account</h1>\
             <p>You are about to link your Salesforce account to the WhatsApp number ending in <strong>{number}</strong>.</p>\
             <p>Continue only if that number is yours. If someone sent you this link, close this page.</p>\
             <form method=\"post\" action=\"start\"><input type=\"hidden\" name=\"link\" value=\"{link}\">\
             <button type=\"submit\">Continue to Salesforce</button></form></body></html>",
            number = html_escape(&number),
            link = html_escape(link),
        );
        let mut response = html_response(200, &page);
        // Not in a frame (no clickjacking of the button). No `form-action`: Chrome applies it
        // to the redirects after the post too, and Salesforce may redirect on to a My Domain.
        response.headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'; base-uri 'none'"),
        );
        response
            .headers
            .insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        // A page under `no-referrer` makes its form post `Origin: null` (the Fetch standard's
        // "serializing a request origin"), which the check below would refuse: this page keeps
        // the origin for same-origin requests and still sends nothing elsewhere.
        response.headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
        Ok(response)
    }

    /// `POST /start` from the confirmation page: checks where the form came from and the link,
    /// sets the nonce cookie and redirects to Salesforce.
    async fn start(
        &self,
        request: &LambdaFunctionUrlRequest,
        now: i64,
    ) -> Result<LambdaFunctionUrlResponse, Error> {
        // Browsers send Origin with every form POST: another site's form (auto-submitted in
        // the victim's browser with the attacker's link) is refused here.
        let own = origin_of(&self.config.redirect_uri);
        let origin = request
            .headers
            .get(header::ORIGIN)
            .and_then(|value| value.to_str().ok());
        if own.is_none() || origin != own.as_deref() {
            tracing::warn!(
                origin = origin.unwrap_or("none"),
                "refused a sign-in posted from another origin"
            );
            return Ok(text_response(
                403,
                "this sign-in must be confirmed on its own page; open the sign-in link from WhatsApp",
            ));
        }
        let form = form_parameters(request);
        let wa_id = match self.checked_link(form.get("link"), now).await? {
            Ok(wa_id) => wa_id,
            Err(answer) => return Ok(answer),
        };
        let credentials = self.credentials(false).await?;
        let key = credentials.state_key.expose().as_bytes();
        let max_age = i64::try_from(self.config.state_max_age.as_secs()).unwrap_or(i64::MAX);
        let randomness = |error: getrandom::Error| Error::Randomness(error.to_string());
        let sign_in = SignIn::new(&wa_id, now.saturating_add(max_age)).map_err(randomness)?;
        let nonce = state::new_nonce().map_err(randomness)?;
        let mut authorize = url::Url::parse(&format!(
            "{}/services/oauth2/authorize",
            credentials.login_url.trim_end_matches('/')
        ))
        .map_err(|error| {
            Error::Configuration(format!("login URL {:?}: {error}", credentials.login_url))
        })?;
        authorize
            .query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &credentials.client_id)
            .append_pair("redirect_uri", &self.config.redirect_uri)
            .append_pair("state", &sign_in.state(key, &nonce))
            .append_pair(
                "code_challenge",
                &state::code_challenge(&sign_in.code_verifier(key)),
            )
            .append_pair("code_challenge_method", "S256");
        tracing::info!(
            wa_id = %sf_common::privacy::mask_identifier(&wa_id),
            "started a salesforce sign-in"
        );
        let mut response = text_response(302, "continue to Salesforce to sign in");
        if let Ok(location) = HeaderValue::from_str(authorize.as_str()) {
            response.headers.insert(header::LOCATION, location);
        }
        response.cookies = vec![format!(
            "{NONCE_COOKIE}={nonce}; Max-Age={max_age}; Path=/; Secure; HttpOnly; SameSite=Lax"
        )];
        Ok(response)
    }

    /// The redirect back from Salesforce.
    async fn callback(
        &self,
        request: &LambdaFunctionUrlRequest,
        now: i64,
    ) -> Result<LambdaFunctionUrlResponse, Error> {
        let (code, sign_in) = match self.check_callback(request, now).await? {
            Checked::Answer(response) => return Ok(with_cleared_cookie(response)),
            Checked::Proceed(found) => found,
        };
        // The only AWS calls a request can cause start here, for a state this browser holds.
        if let Err(answer) = self.consume(&sign_in).await? {
            return Ok(with_cleared_cookie(answer));
        }
        let credentials = self.fresh_credentials().await?;
        let session = match salesforce::exchange_authorization_code(
            &self.client_config,
            &credentials.login_url,
            &credentials.client_id,
            &credentials.client_secret,
            &code,
            &self.config.redirect_uri,
            Some(&sign_in.code_verifier(credentials.state_key.expose().as_bytes())),
        )
        .await
        {
            Ok(session) => session,
            Err(error) => {
                // The error carries Salesforce's code and description, never a secret; the
                // body says less still.
                tracing::warn!(
                    wa_id = %sf_common::privacy::mask_identifier(&sign_in.wa_id),
                    error = %sf_common::privacy::mask_phone_numbers(&error.to_string()),
                    "salesforce refused the authorization code"
                );
                return Ok(with_cleared_cookie(text_response(
                    502,
                    "salesforce did not accept the sign-in; start again from WhatsApp",
                )));
            }
        };
        self.store(&sign_in.wa_id, &session, now).await?;
        tracing::info!(
            wa_id = %sf_common::privacy::mask_identifier(&sign_in.wa_id),
            instance_url = %session.instance_url,
            issued_at = session.issued_at,
            has_refresh_token = session.refresh_token.is_some(),
            "stored salesforce tokens for a whatsapp user"
        );
        Ok(with_cleared_cookie(html_response(
            200,
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>Connected</title></head>\
             <body><p>Your WhatsApp number is now connected to Salesforce. You can close this \
             window.</p></body></html>",
        )))
    }

    /// Everything about a callback that is checked in memory: the code, the state's form and
    /// expiry, the browser's nonce, and the state's signature over that nonce.
    async fn check_callback(
        &self,
        request: &LambdaFunctionUrlRequest,
        now: i64,
    ) -> Result<Checked<(String, SignIn)>, Error> {
        let query = query_parameters(request);
        if let Some(error) = query.get("error") {
            tracing::info!(error = %error, "salesforce redirected with an error");
            return Ok(Checked::Answer(text_response(
                400,
                "sign-in was not completed (salesforce refused or the user cancelled)",
            )));
        }
        let Some(code) = query.get("code").filter(|code| !code.is_empty()) else {
            return Ok(Checked::Answer(text_response(400, "missing code")));
        };
        let Some(state) = query.get("state").filter(|state| !state.is_empty()) else {
            return Ok(Checked::Answer(text_response(400, "missing state")));
        };
        let state = match UncheckedState::parse(state, now, self.config.state_max_age) {
            Ok(state) => state,
            Err(error) => return Ok(Checked::Answer(refused("state", &error))),
        };
        let Some(nonce) = cookie(request, NONCE_COOKIE) else {
            return Ok(Checked::Answer(refused(
                "state",
                &StateError::NoBrowserNonce,
            )));
        };
        let credentials = self.credentials(false).await?;
        let sign_in = match state
            .clone()
            .verify(credentials.state_key.expose().as_bytes(), &nonce)
        {
            Ok(sign_in) => sign_in,
            Err(error) => {
                let Some(fresher) = self.credentials_if_stale().await? else {
                    return Ok(Checked::Answer(refused("state", &error)));
                };
                match state.verify(fresher.state_key.expose().as_bytes(), &nonce) {
                    Ok(sign_in) => sign_in,
                    Err(error) => return Ok(Checked::Answer(refused("state", &error))),
                }
            }
        };
        Ok(Checked::Proceed((code.clone(), sign_in)))
    }

    /// Marks the sign-in used: a write that succeeds only once per state.
    async fn consume(
        &self,
        sign_in: &SignIn,
    ) -> Result<Result<(), LambdaFunctionUrlResponse>, Error> {
        let outcome = self
            .dynamodb
            .put_item()
            .table_name(&self.config.states_table)
            .item("state_id", AttributeValue::S(sign_in.id.clone()))
            .item(
                "expires_at",
                AttributeValue::N(sign_in.expires_at.to_string()),
            )
            .condition_expression("attribute_not_exists(state_id)")
            .send()
            .await;
        match outcome {
            Ok(_) => Ok(Ok(())),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|error| error.is_conditional_check_failed_exception()) =>
            {
                tracing::warn!(
                    wa_id = %sf_common::privacy::mask_identifier(&sign_in.wa_id),
                    "refused a sign-in state that was already used"
                );
                Ok(Err(refused("state", &StateError::StateUsed)))
            }
            Err(error) => Err(Error::StateStoreFailed {
                table: self.config.states_table.clone(),
                message: sf_common::error_chain(&error),
            }),
        }
    }

    /// The credentials: from memory, read on first use (or always when `reload`).
    async fn credentials(&self, reload: bool) -> Result<Arc<AppCredentials>, Error> {
        if !reload && let Some((credentials, _)) = self.cached() {
            return Ok(credentials);
        }
        let credentials = Arc::new(self.read_credentials().await?);
        if let Ok(mut cache) = self.credentials.lock() {
            *cache = Some((Arc::clone(&credentials), Instant::now()));
        }
        Ok(credentials)
    }

    /// The credentials read again, when the copy in memory is older than
    /// [`CREDENTIALS_REFRESH`]; `None` when it is recent (nothing new to learn).
    async fn credentials_if_stale(&self) -> Result<Option<Arc<AppCredentials>>, Error> {
        match self.cached() {
            Some((_, read_at)) if read_at.elapsed() < CREDENTIALS_REFRESH => Ok(None),
            _ => self.credentials(true).await.map(Some),
        }
    }

    /// The credentials, read again first if the copy in memory is older than
    /// [`CREDENTIALS_REFRESH`]: used once a request has proven itself.
    async fn fresh_credentials(&self) -> Result<Arc<AppCredentials>, Error> {
        match self.credentials_if_stale().await? {
            Some(credentials) => Ok(credentials),
            None => self.credentials(false).await,
        }
    }

    fn cached(&self) -> Cached {
        self.credentials
            .lock()
            .ok()
            .and_then(|cache| cache.as_ref().map(|(c, at)| (Arc::clone(c), *at)))
    }

    async fn read_credentials(&self) -> Result<AppCredentials, Error> {
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

/// A 400 for a refused link or state, logged without the value.
fn refused(what: &str, error: &StateError) -> LambdaFunctionUrlResponse {
    tracing::warn!(reason = %error, "refused an oauth {what}");
    text_response(400, &error.to_string())
}

/// The value of cookie `name`: from the payload's `cookies`, else a `Cookie` header.
fn cookie(request: &LambdaFunctionUrlRequest, name: &str) -> Option<String> {
    let from_header = request
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .map(str::to_owned)
        .collect::<Vec<_>>();
    request
        .cookies
        .iter()
        .flatten()
        .chain(from_header.iter())
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// The nonce is single-use too: whatever the outcome, the browser forgets it.
fn with_cleared_cookie(mut response: LambdaFunctionUrlResponse) -> LambdaFunctionUrlResponse {
    response.cookies = vec![format!(
        "{NONCE_COOKIE}=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Lax"
    )];
    response
}

/// A POSTed form's fields (`application/x-www-form-urlencoded`, base64 when Lambda says so).
fn form_parameters(request: &LambdaFunctionUrlRequest) -> HashMap<String, String> {
    use base64::Engine as _;
    let Some(body) = request.body.as_deref() else {
        return HashMap::new();
    };
    let bytes = if request.is_base64_encoded {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap_or_default()
    } else {
        body.as_bytes().to_vec()
    };
    url::form_urlencoded::parse(&bytes).into_owned().collect()
}

/// `scheme://host[:port]` of a URL, as browsers send it in `Origin`.
fn origin_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let origin = parsed.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// Text for an HTML attribute or element.
fn html_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
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
    // The pages follow redirects that carry codes and states: never cache them, never pass
    // the URL on as a referrer.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
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

    #[test]
    fn configuration_names_the_missing_variable() {
        let base = [
            ("SF_CREDENTIALS_SECRET_ARN", "arn:credentials"),
            (
                "OAUTH_REDIRECT_URI",
                "https://example.lambda-url.us-east-1.on.aws/callback",
            ),
            ("OAUTH_TOKENS_TABLE", "tokens"),
            ("OAUTH_STATES_TABLE", "states"),
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
        let cases: [(&str, &str, &str); 6] = [
            ("SF_CREDENTIALS_SECRET_ARN", "", "SF_CREDENTIALS_SECRET_ARN"),
            ("OAUTH_REDIRECT_URI", "", "OAUTH_REDIRECT_URI"),
            ("OAUTH_REDIRECT_URI", "callback", "OAUTH_REDIRECT_URI"),
            ("OAUTH_TOKENS_TABLE", " ", "OAUTH_TOKENS_TABLE"),
            ("OAUTH_STATES_TABLE", "", "OAUTH_STATES_TABLE"),
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
