//! Per-execution-environment state: settings, the Secrets Manager client, the credentials
//! (loaded at most once) and the Salesforce client (built once, replaced only when its
//! session is rejected).
//!
//! In the refresh-token flow the function never logs in itself: Salesforce may rotate the
//! refresh token on every use, and a rotated token this function could not store would be
//! lost with its execution environment. It asks `sf-token-refresh`, the token's one writer,
//! to renew the stored session ([`SessionRenewer`]), and reads the session secret again.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use salesforce::{Client, Credentials, Secret};
use sf_common::{Secrets, Settings, SettingsError};
use tokio::sync::Mutex;

use crate::error::{InvokeError, from_salesforce};
use crate::flatten::Output;
use crate::operation::Plan;

/// Where "now" comes from (relative dates); tests inject a fixed clock.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// After a failed renewal, how often and how long the session secret is read again for a session
/// another environment's renewal stored (1.5 s in all: well inside Connect's 8 s).
const RENEWAL_POLLS: u32 = 3;
const RENEWAL_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// How long the start-up read of the stored session may hold the client ([`HandlerState::prefetch`]).
const PREFETCH_LIMIT: Duration = Duration::from_secs(2);

/// How long before the invocation's deadline a call is abandoned, so the function can still
/// report a clean `Timeout` error before Lambda stops it.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(300);

/// Asks the owner of the refresh token to renew the stored session; the error says why it
/// could not (its message names no secret).
pub trait SessionRenewer: Send + Sync {
    fn renew(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>>;
}

/// Renews the session by invoking `sf-token-refresh` (`SF_TOKEN_REFRESH_FUNCTION`) and waiting
/// for its answer. Lambda throttles it to one run at a time (its reserved concurrency); the
/// SDK's retries cover a scheduled run in progress.
pub struct InvokeTokenRefresh {
    lambda: aws_sdk_lambda::Client,
    function: String,
}

impl InvokeTokenRefresh {
    pub fn new(lambda: aws_sdk_lambda::Client, function: impl Into<String>) -> Self {
        Self {
            lambda,
            function: function.into(),
        }
    }
}

impl SessionRenewer for InvokeTokenRefresh {
    fn renew(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            let output = self
                .lambda
                .invoke()
                .function_name(&self.function)
                .payload(aws_sdk_lambda::primitives::Blob::new(
                    br#"{"sfstack":"renew-session","requested_by":"sf-invoke-api"}"#.to_vec(),
                ))
                .send()
                .await
                .map_err(|error| {
                    format!(
                        "invoking {} failed: {}",
                        self.function,
                        sf_common::error_chain(&error)
                    )
                })?;
            match output.function_error() {
                None => Ok(()),
                Some(kind) => {
                    // sf-token-refresh's errors name the flow and the cause, never a secret.
                    let body = output
                        .payload()
                        .map(|payload| String::from_utf8_lossy(payload.as_ref()).into_owned())
                        .unwrap_or_default();
                    Err(format!("{} answered {kind}: {body}", self.function))
                }
            }
        })
    }
}

/// Everything one execution environment keeps between invocations. Build it once in `main`
/// and pass it to every invocation.
pub struct HandlerState {
    settings: Result<Settings, SettingsError>,
    secrets: Secrets,
    /// Renews the stored session in the refresh-token flow (`SF_TOKEN_REFRESH_FUNCTION`).
    renewer: Option<Arc<dyn SessionRenewer>>,
    /// Read on first use; forgotten when Salesforce refuses them, so rotated credentials are
    /// picked up by the next invocation.
    credentials: Mutex<Option<Credentials>>,
    client: Mutex<Option<ActiveClient>>,
    clock: Clock,
}

/// The cached client and what it was built from.
#[derive(Clone)]
struct ActiveClient {
    client: Client,
    /// The stored session's token when the client was seeded from the session secret (and so
    /// cannot log in itself); `None` for a client that logs in with the credentials.
    stored_token: Option<Secret>,
    /// Increases with every replacement, so an invocation can tell whether another one
    /// already replaced the client it saw fail.
    generation: u64,
}

impl HandlerState {
    /// State for `settings` (a settings error is kept and reported by every invocation as a
    /// `ConfigurationError`, so the runtime starts instead of crash-looping).
    pub fn new(settings: Result<Settings, SettingsError>, secrets: Secrets) -> Self {
        Self {
            settings,
            secrets,
            renewer: None,
            credentials: Mutex::new(None),
            client: Mutex::new(None),
            clock: Arc::new(Utc::now),
        }
    }

    /// Renews sessions through `renewer` (see [`SessionRenewer`]).
    pub fn with_renewer(mut self, renewer: Arc<dyn SessionRenewer>) -> Self {
        self.renewer = Some(renewer);
        self
    }

    /// Replaces the clock (tests).
    pub fn with_clock(mut self, clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    pub fn settings(&self) -> Result<&Settings, InvokeError> {
        self.settings
            .as_ref()
            .map_err(|error| InvokeError::Configuration(error.to_string()))
    }

    /// Runs `plan` with the cached client. When the client was seeded with a stored session
    /// that Salesforce rejects, the session secret is read again: a different token is used
    /// as is; otherwise, or when that one is rejected too, the function logs in with the
    /// credentials. The call is repeated with each replacement.
    pub async fn run(&self, plan: &Plan) -> Result<Output, InvokeError> {
        let active = self.active_client().await?;
        match plan.execute(&active.client).await {
            Err(salesforce::Error::SessionExpired) => {
                tracing::info!("the stored Salesforce session was rejected; renewing it");
                let replacement = self.replace_rejected(&active).await?;
                match plan.execute(&replacement.client).await {
                    // A newer stored session can be rejected too (every session of the org
                    // expired): the next replacement finds it rejected and logs in.
                    Err(salesforce::Error::SessionExpired)
                        if replacement.stored_token.is_some() =>
                    {
                        tracing::info!(
                            "the session secret's newer session was rejected too; renewing it"
                        );
                        let login = self.replace_rejected(&replacement).await?;
                        plan.execute(&login.client).await.map_err(from_salesforce)
                    }
                    other => other.map_err(from_salesforce),
                }
            }
            Err(error @ salesforce::Error::Auth { .. })
                if error.error_code() == Some("invalid_grant") && active.stored_token.is_none() =>
            {
                // The credentials may have been rotated since this environment read them.
                tracing::info!("salesforce refused the credentials; they will be read again");
                self.forget_credentials(&active).await;
                Err(from_salesforce(error))
            }
            other => other.map_err(from_salesforce),
        }
    }

    /// Drops the cached credentials and the client built from them.
    async fn forget_credentials(&self, refused: &ActiveClient) {
        let mut slot = self.client.lock().await;
        if slot
            .as_ref()
            .is_some_and(|current| current.generation == refused.generation)
        {
            *slot = None;
        }
        *self.credentials.lock().await = None;
    }

    /// Reads the stored session and builds the client from it, ahead of the first invocation
    /// (`main` runs it in the init phase, beside the runtime's start). Only the stored session:
    /// no login and no renewal here. Nothing is kept when it fails, finds no session or takes
    /// longer than [`PREFETCH_LIMIT`]; the first invocation then does what it would have done.
    /// The limit matters because the client is locked meanwhile: a stalled read (for example
    /// one frozen with the execution environment after init) must not hold every invocation.
    pub async fn prefetch(&self) {
        let Ok(settings) = self.settings() else {
            return;
        };
        let Some(arn) = &settings.session_secret_arn else {
            return;
        };
        let mut slot = self.client.lock().await;
        if slot.is_some() {
            return;
        }
        let read = tokio::time::timeout(PREFETCH_LIMIT, self.secrets.load_session(arn)).await;
        let Ok(read) = read else {
            tracing::warn!(
                "reading the stored session at start-up took over {PREFETCH_LIMIT:?}; the first invocation will read it"
            );
            return;
        };
        match read {
            Ok(Some(stored)) => {
                let token = stored.session.access_token.clone();
                match Client::with_session(stored.session, None, settings.client_config()) {
                    Ok(client) => {
                        *slot = Some(ActiveClient {
                            client,
                            stored_token: Some(token),
                            generation: 0,
                        });
                    }
                    Err(error) => {
                        tracing::warn!(%error, "the stored session is unusable; the first invocation will renew it");
                    }
                }
            }
            Ok(None) => tracing::info!("no stored session yet at start-up"),
            Err(error) => {
                tracing::warn!(%error, "could not read the stored session at start-up; the first invocation will try again");
            }
        }
    }

    async fn active_client(&self) -> Result<ActiveClient, InvokeError> {
        let mut slot = self.client.lock().await;
        if let Some(active) = slot.as_ref() {
            return Ok(active.clone());
        }
        let active = self.build_client(None, 0).await?;
        *slot = Some(active.clone());
        Ok(active)
    }

    async fn replace_rejected(&self, rejected: &ActiveClient) -> Result<ActiveClient, InvokeError> {
        let mut slot = self.client.lock().await;
        if let Some(current) = slot.as_ref()
            && current.generation != rejected.generation
        {
            return Ok(current.clone());
        }
        let active = self
            .build_client(rejected.stored_token.as_ref(), rejected.generation + 1)
            .await?;
        *slot = Some(active.clone());
        Ok(active)
    }

    /// A client from the session secret when it holds a session other than `rejected_token`,
    /// else a client that logs in with the credentials.
    async fn build_client(
        &self,
        rejected_token: Option<&Secret>,
        generation: u64,
    ) -> Result<ActiveClient, InvokeError> {
        let settings = self.settings()?;
        let config = settings.client_config();
        if let Some(arn) = &settings.session_secret_arn {
            let stored = self
                .secrets
                .load_session(arn)
                .await
                .map_err(|error| InvokeError::Configuration(error.to_string()))?;
            match stored {
                Some(stored) if Some(&stored.session.access_token) != rejected_token => {
                    let token = stored.session.access_token.clone();
                    let client =
                        Client::with_session(stored.session, None, config).map_err(|error| {
                            InvokeError::Configuration(format!(
                                "the session secret {arn} holds an unusable session: {error}"
                            ))
                        })?;
                    tracing::debug!(generation, "using the stored Salesforce session");
                    return Ok(ActiveClient {
                        client,
                        stored_token: Some(token),
                        generation,
                    });
                }
                Some(_) => {
                    tracing::info!("the session secret still holds the rejected session");
                }
                None => {
                    tracing::info!("the session secret holds no session yet");
                }
            }
        }
        if let Some(function) = &settings.token_refresh_function {
            return self
                .renewed_client(settings, function, rejected_token, generation)
                .await;
        }
        tracing::info!("logging in with the credentials");
        let credentials = self.credentials(settings).await?;
        let client = Client::new(credentials, config).map_err(from_salesforce)?;
        Ok(ActiveClient {
            client,
            stored_token: None,
            generation,
        })
    }

    /// A client from the session `sf-token-refresh` stores after renewing it on request.
    async fn renewed_client(
        &self,
        settings: &Settings,
        function: &str,
        rejected_token: Option<&Secret>,
        generation: u64,
    ) -> Result<ActiveClient, InvokeError> {
        let Some(arn) = &settings.session_secret_arn else {
            return Err(InvokeError::Configuration(format!(
                "SF_TOKEN_REFRESH_FUNCTION names {function}, but SF_SESSION_SECRET_ARN is not set; \
                 in the refresh-token flow this function uses only the session that function stores"
            )));
        };
        let Some(renewer) = &self.renewer else {
            return Err(InvokeError::Configuration(format!(
                "SF_TOKEN_REFRESH_FUNCTION names {function}, but this execution environment has no \
                 Lambda client to invoke it with"
            )));
        };
        tracing::info!(%function, "asking the token refresh function to renew the session");
        let mut stored = None;
        if let Err(reason) = renewer.renew().await {
            // Throttled (the function runs one copy at a time) or failed: another environment's
            // renewal may have stored a session meanwhile; look for it a few times.
            tracing::warn!(%function, %reason, "the renewal failed; reading the session secret again");
            for attempt in 1..=RENEWAL_POLLS {
                tokio::time::sleep(RENEWAL_POLL_INTERVAL).await;
                let candidate = self
                    .secrets
                    .load_session(arn)
                    .await
                    .map_err(|error| InvokeError::Configuration(error.to_string()))?;
                if candidate
                    .as_ref()
                    .is_some_and(|found| Some(&found.session.access_token) != rejected_token)
                {
                    tracing::info!(attempt, "another renewal stored a session");
                    stored = candidate;
                    break;
                }
            }
            if stored.is_none() {
                return Err(InvokeError::SalesforceUnavailable(format!(
                    "no usable Salesforce session, and the token refresh function could not renew it: \
                     {reason}; hint: see that function's logs (the refresh token is its alone to spend)"
                )));
            }
        }
        let stored = match stored {
            Some(found) => Some(found),
            None => self
                .secrets
                .load_session(arn)
                .await
                .map_err(|error| InvokeError::Configuration(error.to_string()))?,
        };
        match stored {
            Some(stored) if Some(&stored.session.access_token) != rejected_token => {
                let token = stored.session.access_token.clone();
                let client = Client::with_session(stored.session, None, settings.client_config())
                    .map_err(|error| {
                    InvokeError::Configuration(format!(
                        "the session secret {arn} holds an unusable session: {error}"
                    ))
                })?;
                tracing::info!(generation, "using the renewed Salesforce session");
                Ok(ActiveClient {
                    client,
                    stored_token: Some(token),
                    generation,
                })
            }
            _ => Err(InvokeError::SalesforceUnavailable(format!(
                "{function} answered, but the session secret {arn} still holds no new session; \
                 hint: see that function's logs"
            ))),
        }
    }

    /// The Salesforce credentials, read from Secrets Manager on first use (and again after
    /// Salesforce refused them).
    async fn credentials(&self, settings: &Settings) -> Result<Credentials, InvokeError> {
        let mut slot = self.credentials.lock().await;
        if let Some(credentials) = slot.as_ref() {
            return Ok(credentials.clone());
        }
        let credentials = self
            .secrets
            .load_credentials(settings)
            .await
            .map_err(|error| InvokeError::Configuration(error.to_string()))?;
        *slot = Some(credentials.clone());
        Ok(credentials)
    }
}
