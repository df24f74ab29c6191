//! Shared set-up: the demo org, its credentials, and the emulator's admin API.

use std::time::Duration;

use salesforce::{Client, ClientConfig, Credentials, Secret, Session};
use serde_json::{Value, json};
use sf_emulator::{Emulator, OrgConfig};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type TestResult = Result<(), BoxError>;

pub const CONSUMER_KEY: &str = "sfstack-demo-consumer-key";
pub const CONSUMER_SECRET: &str = "sfstack-demo-consumer-secret";
pub const USERNAME: &str = "demo@sfstack.local";
pub const PASSWORD: &str = "demo-password";
pub const SECURITY_TOKEN: &str = "DEMOSECURITYTOKEN";
pub const CALLBACK_URL: &str = "http://127.0.0.1/callback";
/// The key the demo org started in this process trusts.
pub fn demo_key() -> &'static str {
    sf_emulator::process_demo_key().private_key_pem()
}

/// A key the demo org does not trust.
pub fn untrusted_key() -> Result<String, BoxError> {
    Ok(sf_emulator::DemoKey::generate()?
        .private_key_pem()
        .to_string())
}

/// A running demo org.
pub struct Org {
    /// Held so the server lives as long as the test.
    _emulator: Emulator,
    pub base_url: String,
    http: reqwest::Client,
}

/// Retries fast so tests that exercise them stay quick.
pub fn fast_config() -> ClientConfig {
    ClientConfig {
        retry_base_delay: Duration::from_millis(5),
        ..ClientConfig::default()
    }
}

impl Org {
    pub async fn start() -> Result<Org, BoxError> {
        let emulator = Emulator::start(OrgConfig::demo()).await?;
        let base_url = emulator.base_url().trim_end_matches('/').to_owned();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Org {
            _emulator: emulator,
            base_url,
            http,
        })
    }

    pub fn jwt_credentials(&self) -> Result<Credentials, BoxError> {
        Ok(
            Credentials::jwt_bearer(CONSUMER_KEY, USERNAME, Secret::new(demo_key()))?
                .with_login_url(&self.base_url)?,
        )
    }

    pub fn password_credentials(&self, password: &str) -> Result<Credentials, BoxError> {
        Ok(Credentials::password(
            CONSUMER_KEY,
            Secret::new(CONSUMER_SECRET),
            USERNAME,
            &Secret::new(password),
            Some(&Secret::new(SECURITY_TOKEN)),
        )
        .with_login_url(&self.base_url)?)
    }

    pub fn client_credentials(&self) -> Result<Credentials, BoxError> {
        Ok(
            Credentials::client_credentials(CONSUMER_KEY, Secret::new(CONSUMER_SECRET))
                .with_login_url(&self.base_url)?,
        )
    }

    /// A refresh token obtained the way a user would: authorize, then exchange the code.
    pub async fn refresh_token(&self) -> Result<Secret, BoxError> {
        let code = self.authorization_code(None).await?;
        let session = salesforce::exchange_authorization_code(
            &fast_config(),
            &self.base_url,
            CONSUMER_KEY,
            &Secret::new(CONSUMER_SECRET),
            &code,
            CALLBACK_URL,
            None,
        )
        .await?;
        session
            .refresh_token
            .ok_or_else(|| "the authorization-code exchange returned no refresh token".into())
    }

    pub async fn refresh_credentials(&self) -> Result<Credentials, BoxError> {
        Ok(Credentials::refresh_token(
            CONSUMER_KEY,
            Some(Secret::new(CONSUMER_SECRET)),
            self.refresh_token().await?,
        )
        .with_login_url(&self.base_url)?)
    }

    /// Runs `GET /services/oauth2/authorize` and returns the code from the redirect.
    /// `code_challenge` uses the `plain` method.
    pub async fn authorization_code(
        &self,
        code_challenge: Option<&str>,
    ) -> Result<String, BoxError> {
        let mut url = url::Url::parse(&format!("{}/services/oauth2/authorize", self.base_url))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", CONSUMER_KEY)
            .append_pair("redirect_uri", CALLBACK_URL)
            .append_pair("scope", "api refresh_token")
            .append_pair("state", "test-state");
        if let Some(challenge) = code_challenge {
            url.query_pairs_mut()
                .append_pair("code_challenge", challenge)
                .append_pair("code_challenge_method", "plain");
        }
        let response = self.http.get(url).send().await?;
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| format!("authorize answered {} without Location", response.status()))?;
        let redirect = url::Url::parse(location)?;
        let code = redirect
            .query_pairs()
            .find(|(key, _)| key == "code")
            .map(|(_, value)| value.into_owned())
            .ok_or("the redirect carries no code")?;
        Ok(code)
    }

    pub fn client(&self, credentials: Credentials) -> Result<Client, BoxError> {
        Ok(Client::new(credentials, fast_config())?)
    }

    pub async fn jwt_client(&self) -> Result<Client, BoxError> {
        self.client(self.jwt_credentials()?)
    }

    /// A session logged in elsewhere, as a token-refresh function would store it.
    pub async fn fresh_session(&self) -> Result<Session, BoxError> {
        Ok(self.jwt_client().await?.session().await?)
    }

    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, BoxError> {
        let mut request = self
            .http
            .request(method, format!("{}/__emulator/{path}", self.base_url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            return Err(format!("admin {path} answered {status}: {text}").into());
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn expire_sessions(&self) -> TestResult {
        self.admin(reqwest::Method::POST, "sessions/expire", None)
            .await?;
        Ok(())
    }

    pub async fn set_api_usage(&self, used: u64, max: u64) -> TestResult {
        self.admin(
            reqwest::Method::PUT,
            "limits",
            Some(json!({"used": used, "max": max})),
        )
        .await?;
        Ok(())
    }

    pub async fn add_fault(&self, fault: Value) -> TestResult {
        self.admin(reqwest::Method::POST, "faults", Some(fault))
            .await?;
        Ok(())
    }

    pub async fn clear_requests(&self) -> TestResult {
        self.admin(reqwest::Method::DELETE, "requests", None)
            .await?;
        Ok(())
    }

    /// The request log since the last [`Org::clear_requests`].
    pub async fn requests(&self) -> Result<Vec<Value>, BoxError> {
        match self.admin(reqwest::Method::GET, "requests", None).await? {
            Value::Array(entries) => Ok(entries),
            other => Err(format!("the request log is not an array: {other}").into()),
        }
    }

    pub async fn token_request_count(&self) -> Result<usize, BoxError> {
        Ok(self
            .requests()
            .await?
            .iter()
            .filter(|entry| entry["path"] == "/services/oauth2/token")
            .count())
    }

    /// Log entries of REST data calls (`/services/data/...`).
    pub async fn data_requests(&self) -> Result<Vec<Value>, BoxError> {
        Ok(self
            .requests()
            .await?
            .into_iter()
            .filter(|entry| {
                entry["path"]
                    .as_str()
                    .is_some_and(|path| path.starts_with("/services/data/"))
            })
            .collect())
    }
}
