//! The REST executor: session cache, REST requests (with the retries of [`crate::transport`])
//! and re-login after a 401.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use reqwest::Method;
use reqwest::header::{ACCEPT, HeaderMap};
use serde_json::Value;
use tokio::sync::{Mutex, RwLock};

use crate::auth::{Session, request_token};
use crate::credentials::Credentials;
use crate::error::{Error, Result, rest_error};
use crate::transport::{
    ClientConfig, Failure, Retry, build_http_client, transport_failure, with_retries,
};

/// The usage part of the last `Sforce-Limit-Info` header (`api-usage=used/max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiUsage {
    pub used: u64,
    pub max: u64,
}

impl ApiUsage {
    /// Parses `api-usage=25/5000; per-app-api-usage=17/250(appName=x)` and similar.
    pub fn parse(header: &str) -> Option<Self> {
        header.split(';').find_map(|part| {
            let (used, max) = part.trim().strip_prefix("api-usage=")?.split_once('/')?;
            Some(Self {
                used: used.trim().parse().ok()?,
                max: max.trim().parse().ok()?,
            })
        })
    }
}

/// A Salesforce client: one per execution environment, shared by every invocation.
///
/// Cloning is cheap and clones share the session cache.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    http: reqwest::Client,
    pub(crate) config: ClientConfig,
    session: RwLock<Option<Session>>,
    /// Also the login lock: whoever holds it is the only one logging in.
    credentials: Mutex<Option<Credentials>>,
    login_count: AtomicU64,
    api_usage: std::sync::Mutex<Option<ApiUsage>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Client")
            .field("config", &self.inner.config)
            .field("login_count", &self.login_count())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client that logs in with `credentials` on first use.
    pub fn new(credentials: Credentials, config: ClientConfig) -> Result<Self> {
        Self::build(None, Some(credentials), config)
    }

    /// A client that starts with a session made elsewhere (e.g. read from a secret written by a
    /// token-refresh function). With `credentials` it logs in again when Salesforce rejects
    /// the session; without, such a rejection is [`Error::SessionExpired`].
    pub fn with_session(
        session: Session,
        credentials: Option<Credentials>,
        config: ClientConfig,
    ) -> Result<Self> {
        Self::build(Some(session.validated()?), credentials, config)
    }

    fn build(
        session: Option<Session>,
        credentials: Option<Credentials>,
        config: ClientConfig,
    ) -> Result<Self> {
        let config = config.validated()?;
        let http = build_http_client(&config)?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                config,
                session: RwLock::new(session),
                credentials: Mutex::new(credentials),
                login_count: AtomicU64::new(0),
                api_usage: std::sync::Mutex::new(None),
            }),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The API version in use, without the leading `v` (`"62.0"`).
    pub fn api_version(&self) -> &str {
        &self.inner.config.api_version
    }

    /// How many times this client went to the token endpoint (successfully or not). Retries of
    /// one login after network failures count once.
    pub fn login_count(&self) -> u64 {
        self.inner.login_count.load(Ordering::Relaxed)
    }

    /// API usage from the last `Sforce-Limit-Info` header seen.
    pub fn api_usage(&self) -> Option<ApiUsage> {
        self.inner
            .api_usage
            .lock()
            .map(|usage| *usage)
            .unwrap_or_default()
    }

    /// The cached session, logging in first when there is none.
    pub async fn session(&self) -> Result<Session> {
        if let Some(session) = self.inner.session.read().await.clone() {
            return Ok(session);
        }
        let mut credentials = self.inner.credentials.lock().await;
        // Another caller may have logged in while this one waited for the lock.
        if let Some(session) = self.inner.session.read().await.clone() {
            return Ok(session);
        }
        match credentials.as_mut() {
            Some(credentials) => self.login_locked(credentials).await,
            None => Err(Error::SessionExpired),
        }
    }

    /// Logs in now, whatever is cached, and caches the new session.
    pub async fn login(&self) -> Result<Session> {
        let mut credentials = self.inner.credentials.lock().await;
        match credentials.as_mut() {
            Some(credentials) => self.login_locked(credentials).await,
            None => Err(Error::InvalidCredentials(
                "this client was given a session but no credentials, so it cannot log in".into(),
            )),
        }
    }

    /// Must be called with the credentials lock held.
    async fn login_locked(&self, credentials: &mut Credentials) -> Result<Session> {
        self.inner.login_count.fetch_add(1, Ordering::Relaxed);
        let session = request_token(&self.inner.http, &self.inner.config, credentials).await?;
        if let Some(refresh_token) = &session.refresh_token {
            // With rotation Salesforce retires the old refresh token as it hands out a new one.
            credentials.rotate_refresh_token(refresh_token);
        }
        *self.inner.session.write().await = Some(session.clone());
        tracing::debug!(instance_url = %session.instance_url, "salesforce login succeeded");
        Ok(session)
    }

    /// Gets a usable session after Salesforce rejected `rejected`: if another caller already
    /// replaced it, that session is used; otherwise this caller logs in. So callers that hit
    /// the 401 together cause one login.
    async fn renew_after_rejection(&self, rejected: &Session) -> Result<Session> {
        let mut credentials = self.inner.credentials.lock().await;
        if let Some(current) = self.inner.session.read().await.clone()
            && current.access_token != rejected.access_token
        {
            return Ok(current);
        }
        match credentials.as_mut() {
            Some(credentials) => self.login_locked(credentials).await,
            None => Err(Error::SessionExpired),
        }
    }

    /// Sends a REST request with the cached session; on 401 `INVALID_SESSION_ID` logs in again
    /// once and sends it once more. A second rejection is returned as is.
    pub(crate) async fn execute(&self, request: &DataRequest<'_>) -> Result<Reply> {
        let session = self.session().await?;
        match self.send_with_retries(request, &session).await {
            Err(error) if error.is_invalid_session() => {
                tracing::debug!("salesforce rejected the session; logging in again");
                let fresh = self.renew_after_rejection(&session).await?;
                self.send_with_retries(request, &fresh).await
            }
            other => other,
        }
    }

    async fn send_with_retries(
        &self,
        request: &DataRequest<'_>,
        session: &Session,
    ) -> Result<Reply> {
        with_retries(&self.inner.config, request.retry, |attempt| {
            self.send_once(request, session, attempt)
        })
        .await
    }

    async fn send_once(
        &self,
        request: &DataRequest<'_>,
        session: &Session,
        attempt: u32,
    ) -> Result<Reply, Failure> {
        let url = data_url(session, request)?;
        let mut builder = self
            .inner
            .http
            .request(request.method.clone(), url)
            .bearer_auth(session.access_token.expose())
            .header(ACCEPT, "application/json");
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        if let Some(body) = request.body {
            builder = builder.json(body);
        }
        let response = builder.send().await.map_err(transport_failure)?;
        let status = response.status().as_u16();
        self.record_api_usage(response.headers());
        let bytes = response.bytes().await.map_err(transport_failure)?;
        tracing::debug!(method = %request.method, path = %request.path, status, attempt, "salesforce call");
        if (200..300).contains(&status) {
            let body = parse_optional_json(status, &bytes)?;
            return Ok(Reply { status, body });
        }
        let error = rest_error(status, &bytes);
        // A DELETE repeated after a lost answer finds the record already gone: that is the
        // outcome the caller asked for.
        if request.method == Method::DELETE
            && attempt > 0
            && error.error_code() == Some("ENTITY_IS_DELETED")
        {
            return Ok(Reply {
                status: 204,
                body: None,
            });
        }
        Err(error.into())
    }

    fn record_api_usage(&self, headers: &HeaderMap) {
        let usage = headers
            .get("sforce-limit-info")
            .and_then(|value| value.to_str().ok())
            .and_then(ApiUsage::parse);
        if let Some(usage) = usage
            && let Ok(mut slot) = self.inner.api_usage.lock()
        {
            *slot = Some(usage);
        }
    }
}

/// One REST call, relative to the session's `instance_url`.
pub(crate) struct DataRequest<'a> {
    pub(crate) method: Method,
    /// Starts with `/services/data/`; may carry its own query (a `nextRecordsUrl`).
    pub(crate) path: String,
    pub(crate) query: Vec<(&'static str, String)>,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Option<&'a Value>,
    pub(crate) retry: Retry,
}

impl<'a> DataRequest<'a> {
    pub(crate) fn new(method: Method, path: String, retry: Retry) -> Self {
        Self {
            method,
            path,
            query: Vec::new(),
            headers: Vec::new(),
            body: None,
            retry,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Option<Value>,
}

impl Reply {
    /// The JSON body, which this call must have.
    pub(crate) fn into_json(self) -> Result<Value> {
        self.body.ok_or(Error::MalformedResponse {
            status: self.status,
            detail: "the response has no body".into(),
        })
    }
}

fn data_url(session: &Session, request: &DataRequest<'_>) -> Result<url::Url> {
    // Only paths on the instance host are ever followed, so a response cannot send the bearer
    // token to another host (e.g. through a crafted `nextRecordsUrl`).
    if !request.path.starts_with("/services/data/") || request.path.contains("..") {
        return Err(Error::InvalidInput(format!(
            "refusing to call {:?}: not a REST data path",
            request.path
        )));
    }
    let mut url =
        url::Url::parse(&format!("{}{}", session.instance_url, request.path)).map_err(|_| {
            Error::InvalidInput(format!("{:?} does not make a valid URL", request.path))
        })?;
    // The URL parser resolves `..` segments, percent-encoded ones (`%2e%2e`) included: what
    // is checked is the path that would be requested.
    if !url.path().starts_with("/services/data/") {
        return Err(Error::InvalidInput(format!(
            "refusing to call {:?}: not a REST data path",
            request.path
        )));
    }
    if !request.query.is_empty() {
        url.query_pairs_mut().extend_pairs(&request.query);
    }
    Ok(url)
}

fn parse_optional_json(status: u16, bytes: &[u8]) -> Result<Option<Value>> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(bytes)
        .map(Some)
        .map_err(|_| Error::MalformedResponse {
            status,
            detail: format!("the response body ({} bytes) is not JSON", bytes.len()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Cargo.lock` pins `idna_adapter` at 1.0, the stub without Unicode tables (its README:
    /// "Turning off IDNA support"), which keeps ICU4X's data out of every function's zip.
    /// Salesforce hosts (My Domain, instance URLs) are ASCII, so nothing is lost; this test
    /// fails if a `cargo update` brings the Unicode back end (and its size) back.
    #[test]
    fn urls_are_ascii_only() {
        assert!(url::Url::parse("https://acme.my.salesforce.com/services").is_ok());
        assert!(
            url::Url::parse("https://bücher.example").is_err(),
            "idna_adapter is no longer the 1.0 stub: run `cargo update -p idna_adapter --precise 1.0.0`"
        );
    }

    #[test]
    fn limit_info_headers_are_parsed() {
        let cases = [
            ("api-usage=51/100000", Some((51, 100_000))),
            (
                "api-usage=25/5000; per-app-api-usage=17/250(appName=sample-connected-app)",
                Some((25, 5000)),
            ),
            (
                "api-usage=10018/100000; api-bursts=1/750",
                Some((10_018, 100_000)),
            ),
            (
                "per-app-api-usage=17/250(appName=x); api-usage=3/9",
                Some((3, 9)),
            ),
            ("per-app-api-usage=17/250(appName=x)", None),
            ("api-usage=lots/100", None),
            ("", None),
        ];
        for (header, expected) in cases {
            let parsed = ApiUsage::parse(header).map(|usage| (usage.used, usage.max));
            assert_eq!(parsed, expected, "header {header:?}");
        }
    }

    #[test]
    fn client_debug_shows_no_token() -> Result<()> {
        let session = Session {
            access_token: "SECRET-ACCESS".into(),
            instance_url: "https://na1.salesforce.com".into(),
            issued_at: None,
            id: None,
            refresh_token: Some("SECRET-REFRESH".into()),
            scope: None,
        };
        let credentials = Credentials::client_credentials("key", "SECRET-CLIENT".into());
        let client = Client::with_session(session, Some(credentials), ClientConfig::default())?;
        let debug = format!("{client:?}");
        assert!(!debug.contains("SECRET-"), "{debug}");
        Ok(())
    }

    #[test]
    fn seeded_sessions_are_checked() {
        let session = |token: &str, instance_url: &str| Session {
            access_token: token.into(),
            instance_url: instance_url.into(),
            issued_at: None,
            id: None,
            refresh_token: None,
            scope: None,
        };
        let cases = [
            (session("t", "https://na1.salesforce.com/"), true),
            (session("t", "na1.salesforce.com"), false),
            (session("", "https://na1.salesforce.com"), false),
        ];
        for (session, valid) in cases {
            let client = Client::with_session(session, None, ClientConfig::default());
            assert_eq!(client.is_ok(), valid, "{client:?}");
        }
    }

    #[test]
    fn only_instance_data_paths_are_called() {
        let session = Session {
            access_token: "t".into(),
            instance_url: "https://na1.salesforce.com".into(),
            issued_at: None,
            id: None,
            refresh_token: None,
            scope: None,
        };
        let cases = [
            ("/services/data/v62.0/query/01g-200", true),
            ("https://evil.example/services/data/", false),
            ("//evil.example/services/data/", false),
            ("/services/data/../../oauth2/token", false),
            ("/services/data/%2e%2e/%2E%2E/oauth2/token", false),
            (
                "/services/data/v62.0/%2e%2e/%2e%2e/%2e%2e/oauth2/token",
                false,
            ),
            ("/services/oauth2/token", false),
        ];
        for (path, allowed) in cases {
            let request = DataRequest::new(Method::GET, path.into(), Retry::Idempotent);
            let url = data_url(&session, &request);
            assert_eq!(url.is_ok(), allowed, "path {path}");
            if let Ok(url) = url {
                assert_eq!(url.host_str(), Some("na1.salesforce.com"));
            }
        }
    }
}
