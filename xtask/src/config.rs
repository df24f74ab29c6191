//! `sfstack.toml`: the settings a team shares, validated up front, with per-environment
//! overrides. It never holds a secret.

use std::path::Path;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// The file's name, at the workspace root.
pub const FILE_NAME: &str = "sfstack.toml";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Salesforce {
    pub login_url: String,
    /// The org's My Domain login host (`https://NAME.my.salesforce.com`), the original
    /// package's `SF_HOST`: when set, the functions and deploy's credential check log in there,
    /// whatever the credentials' `LoginUrl` says.
    #[serde(default)]
    pub my_domain: Option<String>,
    /// `62.0`, or `v62.0` as the original package's `SF_VERSION` wrote it (stored without the v).
    pub api_version: String,
    pub username: String,
    pub auth_flow: String,
    pub production: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Connect {
    pub instance_arn: Option<String>,
    /// Creates the sample contact flow (`templates/sample-contact-flow.json.hbs`) in the
    /// instance, and removes it on teardown.
    #[serde(default)]
    pub sample_flow: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Functions {
    pub architecture: String,
    pub memory_mb: u32,
    pub timeout_seconds: u32,
    pub log_retention_days: u32,
    pub token_refresh_rate: String,
    /// The reserved concurrency of the public OAuth callback: its cap, kept apart from the
    /// account's pool that `sf-invoke-api` draws on.
    #[serde(default = "default_callback_concurrency")]
    pub callback_concurrency: u32,
    /// The functions' log level, the original package's `LOGGING_LEVEL`: `DEBUG`, `INFO`,
    /// `WARNING`, `ERROR` or `CRITICAL` (any case; stored in capitals).
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// Every function in these subnets with these security groups (the original package's
    /// private VPC option); none: the functions run outside any VPC.
    #[serde(default)]
    pub vpc: Option<Vpc>,
}

/// A private VPC for the functions (Lambda's `VpcConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Vpc {
    pub subnet_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
}

/// Lambda's limits on a function's `VpcConfig` (Lambda API Reference, `VpcConfig`).
const MAX_SUBNETS: usize = 16;
const MAX_SECURITY_GROUPS: usize = 5;

/// `subnet-` or `sg-` followed by the 8 or 17 hexadecimal digits of an EC2 resource id.
fn is_ec2_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix).is_some_and(|digits| {
        matches!(digits.len(), 8 | 17)
            && digits
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    })
}

impl Vpc {
    fn validate(&self) -> anyhow::Result<()> {
        for (key, ids, prefix, max, example) in [
            (
                "subnet_ids",
                &self.subnet_ids,
                "subnet-",
                MAX_SUBNETS,
                "subnet-0123456789abcdef0",
            ),
            (
                "security_group_ids",
                &self.security_group_ids,
                "sg-",
                MAX_SECURITY_GROUPS,
                "sg-0123456789abcdef0",
            ),
        ] {
            if ids.is_empty() || ids.len() > max {
                bail!(
                    "functions.vpc.{key}: expected 1 to {max} ids (Lambda's limit), got {}",
                    ids.len()
                );
            }
            if let Some(bad) = ids.iter().find(|id| !is_ec2_id(id, prefix)) {
                bail!("functions.vpc.{key}: expected ids like {example}, got {bad:?}");
            }
            let mut unique = ids.clone();
            unique.sort();
            unique.dedup();
            if unique.len() != ids.len() {
                bail!("functions.vpc.{key}: an id is listed twice");
            }
        }
        Ok(())
    }
}

fn default_callback_concurrency() -> u32 {
    10
}

fn default_log_level() -> String {
    "INFO".to_string()
}

/// The log levels the functions understand (the original package's `LOGGING_LEVEL` values).
pub const LOG_LEVELS: &[&str] = &["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Environments {
    pub ttl: String,
    pub protected: Vec<String>,
}

/// Where the Lambda zips go.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Artifacts {
    /// The bucket's name; default `sfstack-artifacts-<account>-<region>`. S3 names are global:
    /// when another account holds the default name, choose one of your own here.
    pub bucket: Option<String>,
}

/// The effective settings of one environment.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub salesforce: Salesforce,
    #[serde(default)]
    pub connect: Connect,
    pub functions: Functions,
    pub environments: Environments,
    #[serde(default)]
    pub artifacts: Artifacts,
}

/// The settings an environment variable may override: `SFSTACK_<SECTION>_<KEY>` in capitals,
/// e.g. `SFSTACK_SALESFORCE_AUTH_FLOW=refresh_token` or `SFSTACK_FUNCTIONS_MEMORY_MB=512`.
pub const VARIABLE_KEYS: &[(&str, &str)] = &[
    ("salesforce", "login_url"),
    ("salesforce", "my_domain"),
    ("salesforce", "api_version"),
    ("salesforce", "username"),
    ("salesforce", "auth_flow"),
    ("salesforce", "production"),
    ("connect", "instance_arn"),
    ("connect", "sample_flow"),
    ("functions", "architecture"),
    ("functions", "memory_mb"),
    ("functions", "timeout_seconds"),
    ("functions", "log_retention_days"),
    ("functions", "token_refresh_rate"),
    ("functions", "callback_concurrency"),
    ("functions", "log_level"),
    ("functions", "vpc"),
    ("environments", "ttl"),
    ("artifacts", "bucket"),
];

/// Overrides keys of the file with `SFSTACK_<SECTION>_<KEY>` variables (numbers and booleans
/// are typed by the key's current type; the result is validated like the file).
fn apply_variables(
    document: &mut toml::Table,
    lookup: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<()> {
    for (section, key) in VARIABLE_KEYS {
        let name = format!("SFSTACK_{}_{}", section.to_uppercase(), key.to_uppercase());
        let Some(raw) = lookup(&name) else { continue };
        let table = document
            .entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let toml::Value::Table(table) = table else {
            bail!("{section}: expected a table");
        };
        let value = match table.get(*key) {
            Some(toml::Value::Integer(_)) => toml::Value::Integer(
                raw.trim()
                    .parse()
                    .with_context(|| format!("{name}: expected a whole number, got {raw:?}"))?,
            ),
            Some(toml::Value::Boolean(_)) => toml::Value::Boolean(match raw.trim() {
                "true" => true,
                "false" => false,
                _ => bail!("{name}: expected true or false, got {raw:?}"),
            }),
            // An inline table (`{ subnet_ids = [...], security_group_ids = [...] }`).
            _ if raw.trim_start().starts_with('{') => {
                toml::from_str::<toml::Table>(&format!("value = {raw}"))
                    .ok()
                    .and_then(|mut table| table.remove("value"))
                    .with_context(|| format!("{name}: expected a TOML inline table, got {raw:?}"))?
            }
            _ => toml::Value::String(raw),
        };
        table.insert(key.to_string(), value);
    }
    Ok(())
}

/// Whether an environment is protected (its teardown needs `--force`, `prune` never selects
/// it): `main`, `prod` and `production` always ([`crate::naming::PROTECTED`]), plus those in
/// `environments.protected` when the settings could be read. The one place this is decided.
pub fn is_protected(environment: &str, settings: Option<&Settings>) -> bool {
    crate::naming::PROTECTED.contains(&environment)
        || settings.is_some_and(|settings| {
            settings
                .environments
                .protected
                .iter()
                .any(|name| name == environment)
        })
}

/// Log retention values CloudWatch Logs accepts.
const RETENTION_DAYS: &[u32] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

impl Settings {
    /// Reads `sfstack.toml` and returns the settings for `environment` (defaults merged with
    /// `[env.NAME.*]`), validated.
    pub fn load(path: &Path, environment: &str) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "reading {}\nhint: run from the repository root, where {FILE_NAME} lives",
                path.display()
            )
        })?;
        Self::parse(&text, environment).with_context(|| format!("in {}", path.display()))
    }

    /// The settings of every environment the file names (`[env.NAME]`), and the defaults, for
    /// what must hold for all of them (the deployer roles' policies).
    pub fn load_every_environment(path: &Path) -> anyhow::Result<Vec<Self>> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let document: toml::Table = text.parse().context("not valid TOML")?;
        let names: Vec<String> = match document.get("env") {
            Some(toml::Value::Table(envs)) => envs.keys().cloned().collect(),
            _ => Vec::new(),
        };
        // The defaults: an environment name no `[env.NAME]` can have.
        std::iter::once(String::new())
            .chain(names)
            .map(|name| {
                Self::parse(&text, &name)
                    .with_context(|| format!("in {} (environment {name:?})", path.display()))
            })
            .collect()
    }

    pub fn parse(text: &str, environment: &str) -> anyhow::Result<Self> {
        let mut document: toml::Table = text.parse().context("not valid TOML")?;
        let overrides = document.remove("env");
        if let Some(toml::Value::Table(envs)) = &overrides
            && let Some(toml::Value::Table(specific)) = envs.get(environment)
        {
            merge(&mut document, specific);
        } else if overrides.as_ref().is_some_and(|value| !value.is_table()) {
            bail!("env: expected tables like [env.NAME.functions]");
        }
        apply_variables(&mut document, |name| std::env::var(name).ok())?;
        let mut settings: Settings = toml::Value::Table(document)
            .try_into()
            .map_err(|error: toml::de::Error| anyhow::anyhow!("{}", error.message().trim()))?;
        // The original package wrote versions as `v42.0`; Salesforce's URLs want `42.0`.
        if let Some(version) = settings.salesforce.api_version.strip_prefix('v') {
            settings.salesforce.api_version = version.to_string();
        }
        settings.functions.log_level = settings.functions.log_level.to_ascii_uppercase();
        if let Some(host) = &settings.salesforce.my_domain {
            settings.salesforce.my_domain = Some(host.trim_end_matches('/').to_string());
        }
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> anyhow::Result<()> {
        let sf = &self.salesforce;
        if !(sf.login_url.starts_with("https://") || sf.login_url.starts_with("http://127.0.0.1")) {
            bail!(
                "salesforce.login_url: expected an https:// URL, got {:?}",
                sf.login_url
            );
        }
        let version_ok = sf
            .api_version
            .split_once('.')
            .is_some_and(|(major, minor)| {
                !major.is_empty()
                    && !minor.is_empty()
                    && major
                        .bytes()
                        .chain(minor.bytes())
                        .all(|b| b.is_ascii_digit())
            });
        if !version_ok {
            bail!(
                "salesforce.api_version: expected a version like \"62.0\" or \"v62.0\", got {:?}",
                sf.api_version
            );
        }
        if let Some(host) = &sf.my_domain {
            let parsed = url::Url::parse(host).ok();
            let well_formed = parsed.as_ref().is_some_and(|url| {
                url.scheme() == "https"
                    && url.path() == "/"
                    && url.query().is_none()
                    && url.port().is_none()
                    && url.host_str().is_some_and(|name| {
                        name.strip_suffix(".my.salesforce.com")
                            .is_some_and(|prefix| !prefix.is_empty() && !prefix.contains('/'))
                    })
            });
            if !well_formed {
                bail!(
                    "salesforce.my_domain: expected your org's My Domain login host, https://NAME.my.salesforce.com (a sandbox's: https://NAME--SANDBOX.sandbox.my.salesforce.com), got {host:?}"
                );
            }
        }
        if !sf.username.contains('@') {
            bail!(
                "salesforce.username: expected a Salesforce username (an email-like login), got {:?}",
                sf.username
            );
        }
        if !["jwt", "password", "refresh_token", "client_credentials"]
            .contains(&sf.auth_flow.as_str())
        {
            bail!(
                "salesforce.auth_flow: expected one of jwt, password, refresh_token, client_credentials, got {:?}",
                sf.auth_flow
            );
        }
        if let Some(arn) = &self.connect.instance_arn {
            crate::connect::Instance::parse(arn)?;
        }
        let functions = &self.functions;
        if !["x86_64", "arm64"].contains(&functions.architecture.as_str()) {
            bail!(
                "functions.architecture: expected x86_64 or arm64, got {:?}",
                functions.architecture
            );
        }
        if !(128..=10240).contains(&functions.memory_mb) {
            bail!(
                "functions.memory_mb: expected 128 to 10240, got {}",
                functions.memory_mb
            );
        }
        if !(3..=900).contains(&functions.timeout_seconds) {
            bail!(
                "functions.timeout_seconds: expected 3 to 900 (the Salesforce calls need time to fail cleanly), got {}",
                functions.timeout_seconds
            );
        }
        if !(1..=1000).contains(&functions.callback_concurrency) {
            bail!(
                "functions.callback_concurrency: expected 1 to 1000 (the OAuth callback's reserved concurrency; Lambda keeps at least 100 of the account's concurrency unreserved), got {}",
                functions.callback_concurrency
            );
        }
        if !LOG_LEVELS.contains(&functions.log_level.as_str()) {
            bail!(
                "functions.log_level: expected one of {}, got {:?}",
                LOG_LEVELS.join(", "),
                functions.log_level
            );
        }
        if let Some(vpc) = &functions.vpc {
            vpc.validate()?;
        }
        if !RETENTION_DAYS.contains(&functions.log_retention_days) {
            bail!(
                "functions.log_retention_days: expected one of CloudWatch's values ({RETENTION_DAYS:?}), got {}",
                functions.log_retention_days
            );
        }
        parse_rate(&functions.token_refresh_rate).with_context(|| {
            format!(
                "functions.token_refresh_rate: {:?}",
                functions.token_refresh_rate
            )
        })?;
        if self.environments.ttl != "never" {
            parse_duration(&self.environments.ttl)
                .with_context(|| format!("environments.ttl: {:?}", self.environments.ttl))?;
        }
        Ok(())
    }
}

/// Overlays `overrides` onto `base`, table by table.
fn merge(base: &mut toml::Table, overrides: &toml::Table) {
    for (key, value) in overrides {
        match (base.get_mut(key), value) {
            (Some(toml::Value::Table(base_table)), toml::Value::Table(override_table)) => {
                merge(base_table, override_table)
            }
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

/// An EventBridge rate expression: `rate(N minute|minutes|hour|hours|day|days)`.
pub fn parse_rate(text: &str) -> anyhow::Result<u64> {
    let inner = text
        .strip_prefix("rate(")
        .and_then(|rest| rest.strip_suffix(')'))
        .context("expected rate(N minutes), e.g. rate(15 minutes)")?;
    let (count, unit) = inner
        .trim()
        .split_once(' ')
        .context("expected rate(N UNIT)")?;
    let count: u64 = count.parse().context("the count must be a whole number")?;
    let singular = count == 1;
    let minutes = match (unit, singular) {
        ("minute", true) | ("minutes", false) => count,
        ("hour", true) | ("hours", false) => count * 60,
        ("day", true) | ("days", false) => count * 1440,
        _ => bail!("the unit must be minute(s), hour(s) or day(s), singular only for 1"),
    };
    if minutes == 0 || minutes > 110 {
        // A Salesforce session lasts 2 hours by default; refreshing less often lets it lapse.
        bail!("refresh at least every 110 minutes so the session never lapses, and not 0");
    }
    Ok(minutes)
}

/// A duration like `90m`, `36h`, `7d`, `2w`.
pub fn parse_duration(text: &str) -> anyhow::Result<std::time::Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .context("expected a number and a unit, e.g. 7d")?;
    let (count, unit) = text.split_at(split);
    let count: u64 = count
        .parse()
        .context("expected a number and a unit, e.g. 7d")?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        "w" => 7 * 86400,
        _ => bail!("unknown unit {unit:?}: use s, m, h, d or w"),
    };
    Ok(std::time::Duration::from_secs(count * seconds))
}

#[cfg(test)]
mod vpc_tests {
    use super::*;

    fn vpc(subnets: &[&str], groups: &[&str]) -> Vpc {
        Vpc {
            subnet_ids: subnets.iter().map(|s| s.to_string()).collect(),
            security_group_ids: groups.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_vpc_needs_subnets_and_security_groups_within_lambdas_limits() {
        assert!(
            vpc(
                &["subnet-0123456789abcdef0", "subnet-01234567"],
                &["sg-0123456789abcdef0"]
            )
            .validate()
            .is_ok()
        );
        for (bad, key) in [
            (
                vpc(&[], &["sg-01234567"]),
                "functions.vpc.subnet_ids: expected 1 to 16",
            ),
            (
                vpc(&["subnet-01234567"], &[]),
                "functions.vpc.security_group_ids: expected 1 to 5",
            ),
            (
                vpc(&["subnet-01234567"], &["sg-01234567"; 6]),
                "functions.vpc.security_group_ids: expected 1 to 5",
            ),
            (
                vpc(&["subnet-0123456g"], &["sg-01234567"]),
                "functions.vpc.subnet_ids: expected ids like",
            ),
            (
                vpc(&["sg-01234567"], &["sg-01234567"]),
                "functions.vpc.subnet_ids: expected ids like",
            ),
            (
                vpc(&["subnet-01234567", "subnet-01234567"], &["sg-01234567"]),
                "listed twice",
            ),
        ] {
            let error = bad.validate().expect_err("refused").to_string();
            assert!(error.contains(key), "{error}");
        }
    }

    #[test]
    fn a_vpc_can_be_given_as_an_inline_table_in_a_variable() {
        let mut document: toml::Table =
            toml::from_str("[functions]\nmemory_mb = 256\n").expect("toml");
        apply_variables(&mut document, |name| {
            (name == "SFSTACK_FUNCTIONS_VPC").then(|| {
                r#"{ subnet_ids = ["subnet-01234567"], security_group_ids = ["sg-01234567"] }"#
                    .to_string()
            })
        })
        .expect("applied");
        assert_eq!(
            document["functions"]["vpc"]["subnet_ids"]
                .as_array()
                .map(Vec::len),
            Some(1)
        );
        let error = apply_variables(&mut document, |name| {
            (name == "SFSTACK_FUNCTIONS_VPC").then(|| "{ subnet_ids = ".to_string())
        })
        .expect_err("refused")
        .to_string();
        assert!(
            error.contains("SFSTACK_FUNCTIONS_VPC: expected a TOML inline table"),
            "{error}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHECKED_IN: &str = include_str!("../../sfstack.toml");

    #[test]
    fn variables_override_keys_with_their_types_and_name_themselves_when_wrong() {
        let mut document: toml::Table = CHECKED_IN.parse().expect("toml");
        document.remove("env");
        let variables = [
            ("SFSTACK_SALESFORCE_AUTH_FLOW", "refresh_token"),
            ("SFSTACK_FUNCTIONS_MEMORY_MB", "1024"),
            ("SFSTACK_SALESFORCE_PRODUCTION", "false"),
            (
                "SFSTACK_CONNECT_INSTANCE_ARN",
                "arn:aws:connect:us-east-1:1:instance/x",
            ),
        ];
        apply_variables(&mut document, |name| {
            variables
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        })
        .expect("applies");
        let settings: Settings = toml::Value::Table(document).try_into().expect("typed");
        assert_eq!(settings.salesforce.auth_flow, "refresh_token");
        assert_eq!(settings.functions.memory_mb, 1024);
        assert!(!settings.salesforce.production);
        assert_eq!(
            settings.connect.instance_arn.as_deref(),
            Some("arn:aws:connect:us-east-1:1:instance/x")
        );
        let mut document: toml::Table = CHECKED_IN.parse().expect("toml");
        let error = apply_variables(&mut document, |name| {
            (name == "SFSTACK_FUNCTIONS_MEMORY_MB").then(|| "lots".to_string())
        })
        .expect_err("not a number");
        assert!(
            format!("{error:#}").contains("SFSTACK_FUNCTIONS_MEMORY_MB: expected a whole number"),
            "{error:#}"
        );
    }

    #[test]
    fn the_checked_in_file_is_valid_for_every_environment() {
        let default = Settings::parse(CHECKED_IN, "feature-x-123456").expect("valid");
        assert_eq!(default.functions.memory_mb, 256);
        assert_eq!(default.environments.ttl, "7d");
        let prod = Settings::parse(CHECKED_IN, "prod").expect("valid");
        assert_eq!(prod.functions.memory_mb, 512);
        assert_eq!(
            prod.functions.timeout_seconds, default.functions.timeout_seconds,
            "unset keys keep defaults"
        );
        assert_eq!(prod.environments.ttl, "never");
    }

    #[test]
    fn errors_name_the_key_and_the_expected_form() {
        let cases = [
            (
                "functions",
                "memory_mb = 256",
                "memory_mb = 64",
                "functions.memory_mb",
            ),
            (
                "functions",
                "architecture = \"x86_64\"",
                "architecture = \"sparc\"",
                "functions.architecture",
            ),
            (
                "functions",
                "log_retention_days = 14",
                "log_retention_days = 15",
                "functions.log_retention_days",
            ),
            (
                "functions",
                "token_refresh_rate = \"rate(15 minutes)\"",
                "token_refresh_rate = \"rate(3 hours)\"",
                "functions.token_refresh_rate",
            ),
            (
                "salesforce",
                "api_version = \"62.0\"",
                "api_version = \"v62\"",
                "salesforce.api_version",
            ),
            (
                "salesforce",
                "auth_flow = \"jwt\"",
                "auth_flow = \"magic\"",
                "salesforce.auth_flow",
            ),
            (
                "salesforce",
                "login_url = \"https://login.salesforce.com\"",
                "login_url = \"ftp://x\"",
                "salesforce.login_url",
            ),
            (
                "environments",
                "ttl = \"7d\"",
                "ttl = \"seven days\"",
                "environments.ttl",
            ),
            (
                "salesforce",
                "production = true",
                "production = true\nmy_domain = \"http://acme.my.salesforce.com\"",
                "salesforce.my_domain",
            ),
            (
                "salesforce",
                "production = true",
                "production = true\nmy_domain = \"https://login.example.com\"",
                "salesforce.my_domain",
            ),
            (
                "functions",
                "log_level = \"INFO\"",
                "log_level = \"VERBOSE\"",
                "functions.log_level",
            ),
        ];
        for (section, good, bad, key) in cases {
            assert!(CHECKED_IN.contains(good), "{section}: {good}");
            let text = CHECKED_IN.replacen(good, bad, 1);
            let error = Settings::parse(&text, "dev").expect_err("invalid");
            assert!(format!("{error:#}").contains(key), "{key}: {error:#}");
        }
    }

    /// The original package's forms are accepted: `SF_VERSION` as `v62.0`, `LOGGING_LEVEL` in
    /// any case, `SF_HOST` as a My Domain host.
    #[test]
    fn the_original_packages_forms_are_accepted() {
        let text = CHECKED_IN
            .replacen("api_version = \"62.0\"", "api_version = \"v61.0\"", 1)
            .replacen("log_level = \"INFO\"", "log_level = \"debug\"", 1)
            .replacen(
                "production = true",
                "production = true\nmy_domain = \"https://acme--uat.sandbox.my.salesforce.com/\"",
                1,
            );
        let settings = Settings::parse(&text, "dev").expect("valid");
        assert_eq!(settings.salesforce.api_version, "61.0");
        assert_eq!(settings.functions.log_level, "DEBUG");
        assert_eq!(
            settings.salesforce.my_domain.as_deref(),
            Some("https://acme--uat.sandbox.my.salesforce.com")
        );
    }

    #[test]
    fn unknown_keys_and_secrets_are_refused() {
        let text = CHECKED_IN.replace(
            "production = true",
            "production = true\npassword = \"hunter2\"",
        );
        let error = Settings::parse(&text, "dev").expect_err("unknown key");
        let message = format!("{error:#}");
        assert!(message.contains("password"), "{message}");
    }

    #[test]
    fn reserved_and_listed_environments_are_protected() {
        let mut settings = Settings::parse(CHECKED_IN, "staging").expect("valid");
        settings.environments.protected = vec!["staging".to_string()];
        for reserved in ["main", "prod", "production"] {
            assert!(is_protected(reserved, None), "{reserved}");
            assert!(is_protected(reserved, Some(&settings)), "{reserved}");
        }
        assert!(is_protected("staging", Some(&settings)));
        assert!(!is_protected("staging", None));
        assert!(!is_protected("main-eb814b", Some(&settings)));
    }

    #[test]
    fn rates_and_durations() {
        assert_eq!(parse_rate("rate(1 minute)").ok(), Some(1));
        assert_eq!(parse_rate("rate(15 minutes)").ok(), Some(15));
        assert_eq!(parse_rate("rate(1 hour)").ok(), Some(60));
        assert!(parse_rate("rate(1 minutes)").is_err());
        assert!(parse_rate("cron(0 * * * ? *)").is_err());
        assert_eq!(
            parse_duration("36h").ok(),
            Some(std::time::Duration::from_secs(36 * 3600))
        );
        assert!(parse_duration("7").is_err());
        assert!(parse_duration("7y").is_err());
    }
}
