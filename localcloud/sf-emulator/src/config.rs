//! The org configuration file (TOML): org id, API versions, connected apps, users, seed data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::ids;
use crate::sosl::PhoneMatch;

const DEMO_ORG: &str = include_str!("../fixtures/demo-org.toml");
/// The demo connected app and user (public test values, as in `fixtures/demo-org.toml`).
pub const DEMO_CONSUMER_KEY: &str = "sfstack-demo-consumer-key";
pub const DEMO_CONSUMER_SECRET: &str = "sfstack-demo-consumer-secret";
pub const DEMO_USERNAME: &str = "demo@sfstack.local";
pub const DEMO_PASSWORD: &str = "demo-password";
pub const DEMO_SECURITY_TOKEN: &str = "DEMOSECURITYTOKEN";
/// A callback URL the demo app allows (loopback: any port matches).
pub const DEMO_CALLBACK_URL: &str = "http://127.0.0.1/callback";

/// OAuth flows a connected app can allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flow {
    Password,
    RefreshToken,
    JwtBearer,
    ClientCredentials,
    AuthorizationCode,
}

impl Flow {
    pub const ALL: [Flow; 5] = [
        Flow::Password,
        Flow::RefreshToken,
        Flow::JwtBearer,
        Flow::ClientCredentials,
        Flow::AuthorizationCode,
    ];
}

fn all_flows() -> Vec<Flow> {
    Flow::ALL.to_vec()
}

fn default_versions() -> Vec<String> {
    [
        "59.0", "60.0", "61.0", "62.0", "63.0", "64.0", "65.0", "66.0", "67.0",
    ]
    .map(String::from)
    .to_vec()
}

fn default_batch_size() -> usize {
    2000
}

fn default_api_limit() -> u64 {
    15000
}

fn default_token_ttl() -> u64 {
    7200
}

fn default_true() -> bool {
    true
}

/// A connected app (OAuth client).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectedAppConfig {
    pub consumer_key: String,
    pub consumer_secret: String,
    /// PEM X.509 certificate or PEM public key for the JWT bearer flow: inline PEM text,
    /// or a path relative to the configuration file.
    #[serde(default)]
    pub certificate: Option<String>,
    #[serde(default)]
    pub callback_urls: Vec<String>,
    #[serde(default = "all_flows")]
    pub flows: Vec<Flow>,
    #[serde(default)]
    pub client_credentials_user: Option<String>,
    #[serde(default)]
    pub rotate_refresh_tokens: bool,
    /// Users who may use the JWT bearer flow; empty means every user.
    #[serde(default)]
    pub preauthorized_users: Vec<String>,
}

/// A user who can log in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub security_token: String,
    #[serde(default)]
    pub first_name: Option<String>,
    pub last_name: String,
    pub email: String,
    #[serde(default = "default_true")]
    pub active: bool,
}

/// A seed record. String values of the form `@name` refer to the record whose `ref` is `name`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordConfig {
    pub sobject: String,
    #[serde(default, rename = "ref")]
    pub reference: Option<String>,
    pub fields: BTreeMap<String, toml::Value>,
}

/// The whole org.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgConfig {
    pub org_id: String,
    #[serde(default = "default_versions")]
    pub api_versions: Vec<String>,
    #[serde(default = "default_batch_size")]
    pub query_batch_size: usize,
    #[serde(default = "default_api_limit")]
    pub api_limit: u64,
    #[serde(default)]
    pub phone_match: PhoneMatch,
    #[serde(default = "default_token_ttl")]
    pub access_token_ttl_seconds: u64,
    /// Audiences the JWT bearer flow accepts besides the emulator's own URL.
    #[serde(default = "default_audiences")]
    pub jwt_audiences: Vec<String>,
    #[serde(default)]
    pub connected_apps: Vec<ConnectedAppConfig>,
    #[serde(default)]
    pub users: Vec<UserConfig>,
    #[serde(default)]
    pub records: Vec<RecordConfig>,
}

fn default_audiences() -> Vec<String> {
    vec![
        "https://login.salesforce.com".into(),
        "https://test.salesforce.com".into(),
    ]
}

impl OrgConfig {
    /// The built-in demo org (`fixtures/demo-org.toml`), its connected app trusting this
    /// process's key ([`crate::process_demo_key`]).
    pub fn demo() -> Self {
        Self::demo_trusting(crate::process_demo_key())
    }

    /// The built-in demo org, its connected app trusting `key` for the JWT bearer flow.
    pub fn demo_trusting(key: &crate::DemoKey) -> Self {
        // The demo file is part of the crate and covered by tests, so it always parses.
        let mut config = match Self::from_toml_str(DEMO_ORG, None) {
            Ok(config) => config,
            Err(error) => panic!("the built-in demo org is invalid: {error:#}"),
        };
        for app in &mut config.connected_apps {
            if app.consumer_key == DEMO_CONSUMER_KEY {
                app.certificate = Some(key.public_key_pem().to_string());
            }
        }
        config
    }

    /// Reads a configuration file; certificate paths are resolved next to it.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading emulator configuration {}", path.display()))?;
        let base = path.parent().map(Path::to_path_buf);
        Self::from_toml_str(&text, base.as_deref())
            .with_context(|| format!("in emulator configuration {}", path.display()))
    }

    /// Parses and validates a configuration; `base` resolves relative certificate paths.
    pub fn from_toml_str(text: &str, base: Option<&Path>) -> anyhow::Result<Self> {
        let mut config: OrgConfig = toml::from_str(text).context("invalid TOML")?;
        config.org_id = ids::to_18(&config.org_id).map_err(|_| {
            anyhow::anyhow!(
                "org_id: expected a 15 or 18 character Salesforce ID starting with 00D, got {:?}",
                config.org_id
            )
        })?;
        if !config.org_id.starts_with("00D") {
            bail!(
                "org_id: expected an ID starting with 00D, got {:?}",
                config.org_id
            );
        }
        if config.api_versions.is_empty() {
            bail!("api_versions: at least one version is needed, for example [\"62.0\"]");
        }
        for version in &config.api_versions {
            if !is_version(version) {
                bail!("api_versions: {version:?} is not of the form NN.N (without a leading v)");
            }
        }
        if config.query_batch_size == 0 {
            bail!("query_batch_size: must be at least 1");
        }
        for app in &mut config.connected_apps {
            if let (Some(certificate), Some(base)) = (&app.certificate, base)
                && !certificate.trim_start().starts_with("-----BEGIN")
            {
                let path: PathBuf = base.join(certificate);
                app.certificate = Some(std::fs::read_to_string(&path).with_context(|| {
                    format!(
                        "connected_apps[{}].certificate: reading {}",
                        app.consumer_key,
                        path.display()
                    )
                })?);
            }
        }
        Ok(config)
    }
}

/// `NN.N`: digits, a dot, digits.
pub fn is_version(text: &str) -> bool {
    text.split_once('.').is_some_and(|(major, minor)| {
        !major.is_empty()
            && !minor.is_empty()
            && major.bytes().all(|b| b.is_ascii_digit())
            && minor.bytes().all(|b| b.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_org_parses_trusting_the_key_it_is_given() -> anyhow::Result<()> {
        let key = crate::DemoKey::generate()?;
        let config = OrgConfig::demo_trusting(&key);
        assert_eq!(config.org_id, "00D000000000001EAA");
        let app = &config.connected_apps[0];
        assert_eq!(app.certificate.as_deref(), Some(key.public_key_pem()));
        assert!(
            config
                .records
                .iter()
                .any(|record| record.sobject == "Contact")
        );
        Ok(())
    }

    #[test]
    fn bad_org_id_names_the_key() {
        let error = OrgConfig::from_toml_str("org_id = \"nope\"", None).expect_err("rejected");
        assert!(format!("{error:#}").contains("org_id"), "{error:#}");
    }

    #[test]
    fn bad_version_names_the_key() {
        let error = OrgConfig::from_toml_str(
            "org_id = \"00D000000000001\"\napi_versions = [\"v62.0\"]",
            None,
        )
        .expect_err("rejected");
        assert!(format!("{error:#}").contains("api_versions"), "{error:#}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let error = OrgConfig::from_toml_str("org_id = \"00D000000000001\"\nbogus = 1", None)
            .expect_err("rejected");
        assert!(format!("{error:#}").contains("bogus"), "{error:#}");
    }
}
