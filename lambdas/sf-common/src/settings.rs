//! Settings from the environment: the original `sfInvokeAPI` variables and sfstack's own.

use std::time::Duration;

use salesforce::ClientConfig;

/// A setting that is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment variable {name}: {problem}")]
pub struct SettingsError {
    pub name: &'static str,
    pub problem: String,
}

/// Environment variables read the way [`Settings`] reads them: through a lookup (the
/// environment in production, a map in tests), trimmed, an empty value counting as unset, and
/// malformed values reported as a [`SettingsError`] naming the variable.
///
/// For functions whose variables differ from [`Settings`] (the rotation function has no
/// credentials secret ARN and its own defaults), so they parse and report them the same way.
pub struct Env<L> {
    lookup: L,
}

impl<L: Fn(&str) -> Option<String>> Env<L> {
    pub fn new(lookup: L) -> Self {
        Self { lookup }
    }

    /// The trimmed value of `name`; unset and empty are both `None`.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|value| value.trim().to_string())
            .filter(|value| !value.is_empty())
    }

    /// `name` as a positive number of milliseconds; `default_millis` when unset.
    pub fn millis(
        &self,
        name: &'static str,
        default_millis: u64,
    ) -> Result<Duration, SettingsError> {
        match self.get(name) {
            None => Ok(Duration::from_millis(default_millis)),
            Some(value) => value
                .parse::<u64>()
                .ok()
                .filter(|millis| *millis > 0)
                .map(Duration::from_millis)
                .ok_or(SettingsError {
                    name,
                    problem: format!("expected a positive number of milliseconds, got {value:?}"),
                }),
        }
    }
}

/// How a function reaches Salesforce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `SF_CREDENTIALS_SECRET_ARN` or the original `SF_CREDENTIALS_SECRETS_MANAGER_ARN`.
    pub credentials_secret_arn: String,
    /// `SF_SESSION_SECRET_ARN`: the session `sf-token-refresh` keeps fresh, when deployed.
    pub session_secret_arn: Option<String>,
    /// `SF_TOKEN_REFRESH_FUNCTION`: set when the credentials use the refresh-token flow. The
    /// refresh token is then `sf-token-refresh`'s alone to spend (a rotated one must be stored
    /// before the session is used), so another function that needs a new session asks this
    /// function for one instead of logging in.
    pub token_refresh_function: Option<String>,
    /// `SF_USERNAME`: used when the credentials document has no `Username`.
    pub username: Option<String>,
    /// `SF_LOGIN_URL`, else the original `SF_HOST`, else `SF_PRODUCTION` (`true` →
    /// login.salesforce.com, `false` → test.salesforce.com); `None` leaves the credentials
    /// document's `LoginUrl` (or the client's default) in charge.
    pub login_url: Option<String>,
    /// `SF_API_VERSION`, else the original `SF_VERSION` (`v42.0` style accepted).
    pub api_version: String,
    /// `SF_CONNECT_TIMEOUT_MS`, `SF_REQUEST_TIMEOUT_MS`, `SF_MAX_RETRIES`.
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub max_retries: u32,
}

impl Settings {
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (the environment in production, a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let env = Env::new(lookup);
        let credentials_secret_arn = env.get("SF_CREDENTIALS_SECRET_ARN")
            .or_else(|| env.get("SF_CREDENTIALS_SECRETS_MANAGER_ARN"))
            .ok_or_else(|| SettingsError {
                name: "SF_CREDENTIALS_SECRET_ARN",
                problem: "not set (the original SF_CREDENTIALS_SECRETS_MANAGER_ARN is accepted too); it names the Secrets Manager secret with the Salesforce credentials".into(),
            })?;
        let login_url = match (
            env.get("SF_LOGIN_URL"),
            env.get("SF_HOST"),
            env.get("SF_PRODUCTION"),
        ) {
            (Some(url), _, _) => Some(check_url("SF_LOGIN_URL", url)?),
            (None, Some(host), _) => Some(check_url("SF_HOST", host)?),
            (None, None, Some(production)) => match production.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Some("https://login.salesforce.com".to_string()),
                "false" | "0" | "no" => Some("https://test.salesforce.com".to_string()),
                _ => {
                    return Err(SettingsError {
                        name: "SF_PRODUCTION",
                        problem: format!("expected true or false, got {production:?}"),
                    });
                }
            },
            (None, None, None) => None,
        };
        let api_version = env
            .get("SF_API_VERSION")
            .or_else(|| env.get("SF_VERSION"))
            .unwrap_or_else(|| salesforce::DEFAULT_API_VERSION.to_string());
        let api_version = api_version
            .strip_prefix('v')
            .unwrap_or(&api_version)
            .to_string();
        let max_retries = match env.get("SF_MAX_RETRIES") {
            None => 1,
            Some(value) => value
                .parse::<u32>()
                .ok()
                .filter(|retries| *retries <= 5)
                .ok_or(SettingsError {
                    name: "SF_MAX_RETRIES",
                    problem: format!("expected a whole number from 0 to 5, got {value:?}"),
                })?,
        };
        Ok(Self {
            credentials_secret_arn,
            session_secret_arn: env.get("SF_SESSION_SECRET_ARN"),
            token_refresh_function: env.get("SF_TOKEN_REFRESH_FUNCTION"),
            username: env.get("SF_USERNAME"),
            login_url,
            api_version,
            connect_timeout: env.millis("SF_CONNECT_TIMEOUT_MS", 1_000)?,
            request_timeout: env.millis("SF_REQUEST_TIMEOUT_MS", 2_500)?,
            max_retries,
        })
    }

    /// The client configuration these settings describe.
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig {
            api_version: self.api_version.clone(),
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
            max_retries: self.max_retries,
            ..ClientConfig::default()
        }
    }
}

fn check_url(name: &'static str, value: String) -> Result<String, SettingsError> {
    if value.starts_with("https://") || value.starts_with("http://") {
        Ok(value.trim_end_matches('/').to_string())
    } else {
        Err(SettingsError {
            name,
            problem: format!("expected an https:// URL, got {value:?}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn original_variables_are_honoured() {
        let settings = settings(&[
            (
                "SF_CREDENTIALS_SECRETS_MANAGER_ARN",
                "arn:aws:secretsmanager:us-east-1:1:secret:sf",
            ),
            ("SF_PRODUCTION", "false"),
            ("SF_VERSION", "v42.0"),
            ("SF_USERNAME", "agent@example.com"),
        ])
        .expect("valid");
        assert_eq!(
            settings.credentials_secret_arn,
            "arn:aws:secretsmanager:us-east-1:1:secret:sf"
        );
        assert_eq!(
            settings.login_url.as_deref(),
            Some("https://test.salesforce.com")
        );
        assert_eq!(settings.api_version, "42.0");
        assert_eq!(settings.username.as_deref(), Some("agent@example.com"));
    }

    #[test]
    fn our_variables_win_over_the_original_ones() {
        let settings = settings(&[
            ("SF_CREDENTIALS_SECRET_ARN", "ours"),
            ("SF_CREDENTIALS_SECRETS_MANAGER_ARN", "theirs"),
            ("SF_LOGIN_URL", "http://127.0.0.1:8788/"),
            ("SF_HOST", "https://login.salesforce.com"),
            ("SF_API_VERSION", "62.0"),
            ("SF_VERSION", "v42.0"),
        ])
        .expect("valid");
        assert_eq!(settings.credentials_secret_arn, "ours");
        assert_eq!(settings.login_url.as_deref(), Some("http://127.0.0.1:8788"));
        assert_eq!(settings.api_version, "62.0");
    }

    #[test]
    fn bad_values_name_the_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "SF_CREDENTIALS_SECRET_ARN"),
            (
                &[
                    ("SF_CREDENTIALS_SECRET_ARN", "x"),
                    ("SF_PRODUCTION", "maybe"),
                ],
                "SF_PRODUCTION",
            ),
            (
                &[
                    ("SF_CREDENTIALS_SECRET_ARN", "x"),
                    ("SF_HOST", "login.salesforce.com"),
                ],
                "SF_HOST",
            ),
            (
                &[
                    ("SF_CREDENTIALS_SECRET_ARN", "x"),
                    ("SF_REQUEST_TIMEOUT_MS", "soon"),
                ],
                "SF_REQUEST_TIMEOUT_MS",
            ),
            (
                &[("SF_CREDENTIALS_SECRET_ARN", "x"), ("SF_MAX_RETRIES", "99")],
                "SF_MAX_RETRIES",
            ),
        ];
        for (pairs, name) in cases {
            let error = settings(pairs).expect_err("invalid");
            assert_eq!(error.name, *name, "{error}");
        }
    }
}
