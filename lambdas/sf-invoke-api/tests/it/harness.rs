//! Shared set-up: a Salesforce emulator, a moto server holding the credentials secret, and
//! handler state pointing at both; plus helpers for events and the emulator's admin API.

use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};
use sf_common::{Secrets, Settings};
use sf_invoke_api::{HandlerState, InvokeError, Output};
use sfstack_test_support::{MotoServer, demo};

/// The fixed "now" of every handler built here (for relative dates).
pub fn fixed_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 2, 27, 22, 30, 15)
        .single()
        .unwrap_or_default()
}

pub struct Fixture {
    pub emulator: sf_emulator::Emulator,
    pub secrets: Secrets,
    pub credentials_arn: String,
    pub http: reqwest::Client,
    // Dropped last: stops the moto server.
    _moto: MotoServer,
}

impl Fixture {
    /// An emulator with the demo org and a moto server with the JWT credentials secret.
    pub async fn start() -> anyhow::Result<Self> {
        let emulator = sfstack_test_support::start_emulator().await?;
        let moto = tokio::task::spawn_blocking(MotoServer::start).await??;
        let sdk_config = moto.sdk_config().await;
        let secrets = Secrets::new(aws_sdk_secretsmanager::Client::new(&sdk_config));
        let created = secrets
            .client()
            .create_secret()
            .name("sfstack/salesforce-credentials")
            .secret_string(demo::jwt_credentials(emulator.base_url()))
            .send()
            .await
            .context("creating the credentials secret in moto")?;
        let credentials_arn = created.arn.context("moto returned no ARN")?;
        Ok(Self {
            emulator,
            secrets,
            credentials_arn,
            http: reqwest::Client::new(),
            _moto: moto,
        })
    }

    pub fn base_url(&self) -> &str {
        self.emulator.base_url()
    }

    /// Settings as the environment would give them, plus `extra` variables.
    pub fn settings(&self, extra: &[(&str, &str)]) -> anyhow::Result<Settings> {
        let mut variables: Vec<(String, String)> = vec![(
            "SF_CREDENTIALS_SECRET_ARN".into(),
            self.credentials_arn.clone(),
        )];
        variables.extend(
            extra
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string())),
        );
        Ok(Settings::from_lookup(|name| {
            variables
                .iter()
                .rev()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        })?)
    }

    /// Handler state with `extra` environment variables and the fixed clock.
    pub fn state(&self, extra: &[(&str, &str)]) -> anyhow::Result<HandlerState> {
        Ok(
            HandlerState::new(Ok(self.settings(extra)?), self.secrets.clone())
                .with_clock(fixed_now),
        )
    }

    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<reqwest::Response> {
        let url = format!("{}/__emulator/{path}", self.base_url());
        let mut request = self.http.request(method, &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("calling {url}"))?;
        anyhow::ensure!(
            response.status().is_success(),
            "{url} answered {}",
            response.status()
        );
        Ok(response)
    }

    pub async fn clear_log(&self) -> anyhow::Result<()> {
        self.admin(reqwest::Method::DELETE, "requests", None)
            .await?;
        Ok(())
    }

    /// The emulator's request log, oldest first.
    pub async fn log(&self) -> anyhow::Result<Vec<Value>> {
        let response = self.admin(reqwest::Method::GET, "requests", None).await?;
        Ok(response.json().await?)
    }

    /// Requests under `/services/data` (everything but logins and the admin API).
    pub async fn data_requests(&self) -> anyhow::Result<Vec<Value>> {
        Ok(self
            .log()
            .await?
            .into_iter()
            .filter(|entry| {
                entry["path"]
                    .as_str()
                    .is_some_and(|path| path.starts_with("/services/data"))
            })
            .collect())
    }

    /// How many token requests (logins) the log holds.
    pub async fn logins(&self) -> anyhow::Result<usize> {
        Ok(self
            .log()
            .await?
            .iter()
            .filter(|entry| entry["grant_type"].is_string())
            .count())
    }

    pub async fn expire_sessions(&self) -> anyhow::Result<()> {
        self.admin(reqwest::Method::POST, "sessions/expire", None)
            .await?;
        Ok(())
    }

    pub async fn set_limits(&self, used: u64, max: u64) -> anyhow::Result<()> {
        self.admin(
            reqwest::Method::PUT,
            "limits",
            Some(json!({"used": used, "max": max})),
        )
        .await?;
        Ok(())
    }

    pub async fn add_faults(&self, faults: Value) -> anyhow::Result<()> {
        self.admin(reqwest::Method::POST, "faults", Some(faults))
            .await?;
        Ok(())
    }

    pub async fn clear_faults(&self) -> anyhow::Result<()> {
        self.admin(reqwest::Method::DELETE, "faults", None).await?;
        Ok(())
    }
}

/// A Connect event whose `Details.Parameters` are `pairs`.
pub fn event(pairs: &[(&str, &str)]) -> Value {
    let parameters: serde_json::Map<String, Value> = pairs
        .iter()
        .map(|(key, value)| (key.to_string(), Value::String(value.to_string())))
        .collect();
    json!({"Details": {"ContactData": {"Channel": "VOICE"}, "Parameters": parameters}, "Name": "ContactFlowEvent"})
}

/// The repository's `tests/events/<name>.json` (shared with `cargo xtask smoke-test`), with
/// `extra` parameters added.
pub fn fixture_event(name: &str, extra: &[(&str, &str)]) -> anyhow::Result<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests")
        .join("events")
        .join(format!("{name}.json"));
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut event: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let parameters = event["Details"]["Parameters"]
        .as_object_mut()
        .context("the fixture has no Details.Parameters object")?;
    for (key, value) in extra {
        parameters.insert(key.to_string(), Value::String(value.to_string()));
    }
    Ok(event)
}

/// Runs one event without a deadline and fails the test on an error.
pub async fn invoke(state: &HandlerState, event: &Value) -> anyhow::Result<Output> {
    sf_invoke_api::handle(state, event, None)
        .await
        .map_err(|error| anyhow::anyhow!("{} ({}): {error}", error.error_type(), event))
}

/// Runs one event without a deadline.
pub async fn try_invoke(state: &HandlerState, event: &Value) -> Result<Output, InvokeError> {
    sf_invoke_api::handle(state, event, None).await
}

/// The value of `key` in `output`, or an error naming the key and the output.
pub fn get<'o>(output: &'o Output, key: &str) -> anyhow::Result<&'o str> {
    output
        .get(key)
        .map(String::as_str)
        .with_context(|| format!("no {key} in {output:?}"))
}
