//! Settings from the environment, read with `sf_common`'s [`Env`] (the rotation function has
//! no credentials secret ARN, so it has its own variables and defaults rather than
//! [`sf_common::Settings`]), and which URLs tokens may be sent to.

use std::time::Duration;

use salesforce::{Client, ClientConfig, Secret, Session};
use sf_common::{Env, SettingsError};

use crate::error::Error;

/// Settings from the environment. All optional: the secret names everything else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationConfig {
    /// `SF_LOGIN_URL`: the login host when the secret has neither `TokenUrl` nor `LoginUrl`.
    pub login_url: String,
    /// `SF_API_VERSION` (`62.0`; a leading `v` is accepted).
    pub api_version: String,
    /// `SF_CONNECT_TIMEOUT_MS` (default 2000) and `SF_REQUEST_TIMEOUT_MS` (default 5000).
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
}

impl RotationConfig {
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let env = Env::new(lookup);
        // Stricter than `Settings`' check: tokens are sent to this host.
        let login_url = match env.get("SF_LOGIN_URL") {
            Some(url) => check_url(&url).ok_or_else(|| SettingsError {
                name: "SF_LOGIN_URL",
                problem: format!("expected an https:// URL, got {url:?}"),
            })?,
            None => salesforce::DEFAULT_LOGIN_URL.to_owned(),
        };
        let config = Self {
            login_url,
            api_version: env
                .get("SF_API_VERSION")
                .unwrap_or_else(|| salesforce::DEFAULT_API_VERSION.to_owned()),
            connect_timeout: env.millis("SF_CONNECT_TIMEOUT_MS", 2_000)?,
            request_timeout: env.millis("SF_REQUEST_TIMEOUT_MS", 5_000)?,
        };
        // Validates the API version now rather than in the middle of a rotation.
        Client::with_session(placeholder_session(), None, config.client_config())
            .map_err(|error| Error::Configuration(format!("SF_API_VERSION: {error}")))?;
        Ok(config)
    }

    /// The configuration of the client `testSecret` calls Salesforce with.
    pub(crate) fn client_config(&self) -> ClientConfig {
        ClientConfig {
            api_version: self.api_version.clone(),
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
            ..ClientConfig::default()
        }
    }
}

fn placeholder_session() -> Session {
    Session {
        access_token: Secret::new("configuration-check"),
        instance_url: "https://configuration.invalid".into(),
        issued_at: None,
        id: None,
        refresh_token: None,
        scope: None,
    }
}

/// An `https` URL, or `http` on a loopback host (the local target): tokens are sent there, so
/// anything else is refused.
pub(crate) fn check_url(url: &str) -> Option<String> {
    let trimmed = url.trim().trim_end_matches('/');
    let parsed = url::Url::parse(trimmed).ok()?;
    let loopback = matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    let allowed = match parsed.scheme() {
        "https" => parsed.host().is_some(),
        "http" => loopback,
        _ => false,
    };
    allowed.then(|| trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_comes_from_the_environment() {
        let config = RotationConfig::from_lookup(|_| None).expect("defaults");
        assert_eq!(config.login_url, "https://login.salesforce.com");
        let cases = [
            ("SF_LOGIN_URL", "login.salesforce.com"),
            ("SF_API_VERSION", "latest"),
            ("SF_REQUEST_TIMEOUT_MS", "soon"),
        ];
        for (name, value) in cases {
            let error = RotationConfig::from_lookup(|key| (key == name).then(|| value.to_owned()))
                .expect_err("invalid");
            assert_eq!(error.error_type(), "ConfigurationError");
            assert!(error.to_string().contains(name), "{error}");
        }
    }

    #[test]
    fn configuration_errors_name_the_variable_and_the_value() {
        let cases = [
            (
                "SF_LOGIN_URL",
                "http://login.salesforce.com",
                r#"configuration error: environment variable SF_LOGIN_URL: expected an https:// URL, got "http://login.salesforce.com""#,
            ),
            (
                "SF_CONNECT_TIMEOUT_MS",
                "0",
                r#"configuration error: environment variable SF_CONNECT_TIMEOUT_MS: expected a positive number of milliseconds, got "0""#,
            ),
            (
                "SF_API_VERSION",
                "latest",
                r#"configuration error: SF_API_VERSION: invalid input: API version "latest" is not of the form 62.0"#,
            ),
        ];
        for (name, value, message) in cases {
            let error = RotationConfig::from_lookup(|key| (key == name).then(|| value.to_owned()))
                .expect_err("invalid");
            assert_eq!(error.to_string(), message);
        }
        let config = RotationConfig::from_lookup(|key| {
            (key == "SF_REQUEST_TIMEOUT_MS").then(|| " 7000 ".to_owned())
        })
        .expect("valid");
        assert_eq!(config.connect_timeout, Duration::from_secs(2));
        assert_eq!(config.request_timeout, Duration::from_secs(7));
    }

    #[test]
    fn token_destinations_must_be_https_or_loopback() {
        assert!(check_url("https://na1.salesforce.com/").is_some());
        assert!(check_url("http://127.0.0.1:8788").is_some());
        assert!(check_url("http://localhost:1").is_some());
        assert!(check_url("http://na1.salesforce.com").is_none());
        assert!(check_url("ftp://127.0.0.1").is_none());
        assert!(check_url("not a url").is_none());
    }
}
