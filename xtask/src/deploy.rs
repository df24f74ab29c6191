//! `deploy`, `render` and `teardown`: one environment's whole life, on either target.
//!
//! Deploy order (each step converges, so an interrupted deploy is finished by running it again):
//!
//! 1. names and tags from the environment;
//! 2. to 5. roles, key, secrets, policies and artifacts (`infra`);
//! 6. the CloudFormation stack through a change set (`stack`);
//! 7. what CloudFormation is not asked to make — resource permissions, the callback's Function
//!    URL, rotation — through the SDK on both targets;
//! 8. outputs.
//!
//! The OAuth callback must know its own URL, which exists only once the function does: the
//! first deploy therefore updates the stack a second time with the URL (later deploys read it
//! first).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::build::{self, Arch, Artifact};
use crate::cloud::{Cloud, Target};
use crate::config::Settings;
use crate::environment::Environment;
use crate::infra::{self, Credentials, Infra, Tags, partition};
use crate::naming::{self, FUNCTIONS, Names};
use crate::render::{
    self, EnvironmentInputs, FunctionSpec, Schedule, StackInput, Table, logical_id,
};
use crate::stack;

/// Where a deploy's credentials come from (see the README's "Credentials").
pub const CREDENTIALS_FILE_VARIABLE: &str = "SFSTACK_SF_CREDENTIALS_FILE";
pub const CREDENTIALS_VARIABLE: &str = "SFSTACK_SF_CREDENTIALS";

/// Stands in for the callback's URL until the function (and so its URL) exists.
const PENDING_CALLBACK_URL: &str = "https://pending.invalid/oauth-callback";
/// Days between automatic rotations of the credentials secret.
const ROTATION_DAYS: i64 = 30;

/// Statement ids of the resource permissions this tool adds: fixed, so a re-run finds them.
pub const SID_SCHEDULE: &str = "sfstack-token-refresh-schedule";
pub const SID_ROTATION: &str = "sfstack-secrets-manager-rotation";
pub const SID_CONNECT: &str = "sfstack-amazon-connect";
pub const SID_URL: &str = "sfstack-function-url";
pub const SID_URL_INVOKE: &str = "sfstack-function-url-invoke";

/// The credentials document and how to treat it.
pub enum CredentialsInput {
    Given { source: String, document: String },
    Default { document: String },
    Existing,
}

impl std::fmt::Debug for CredentialsInput {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Given { source, .. } => write!(formatter, "Given({source}, <redacted>)"),
            Self::Default { .. } => formatter.write_str("Default(<redacted>)"),
            Self::Existing => formatter.write_str("Existing"),
        }
    }
}

impl CredentialsInput {
    fn as_credentials(&self) -> Credentials<'_> {
        match self {
            Self::Given { document, .. } => Credentials::Given(document),
            Self::Default { document } => Credentials::Default(document),
            Self::Existing => Credentials::Existing,
        }
    }

    fn source(&self) -> &str {
        match self {
            Self::Given { source, .. } => source,
            Self::Default { .. } => "the emulator's demo org",
            Self::Existing => "the value already stored; not checked again",
        }
    }
}

/// Reads the credentials source: `SFSTACK_SF_CREDENTIALS_FILE`, else `SFSTACK_SF_CREDENTIALS`,
/// else on the local target the emulator's demo org (in the configured `auth_flow`), else
/// whatever the secret holds already. Never from a command-line argument (process lists are
/// visible to every user).
pub async fn credentials_input(
    cloud: &Cloud,
    settings: &Settings,
    secret_name: &str,
) -> anyhow::Result<CredentialsInput> {
    if let Some(path) = std::env::var_os(CREDENTIALS_FILE_VARIABLE) {
        let path = PathBuf::from(path);
        let document = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading the Salesforce credentials file {} (from {CREDENTIALS_FILE_VARIABLE})",
                path.display()
            )
        })?;
        return Ok(CredentialsInput::Given {
            source: format!("{CREDENTIALS_FILE_VARIABLE} ({})", path.display()),
            document,
        });
    }
    if let Ok(document) = std::env::var(CREDENTIALS_VARIABLE)
        && !document.trim().is_empty()
    {
        return Ok(CredentialsInput::Given {
            source: CREDENTIALS_VARIABLE.to_string(),
            document,
        });
    }
    match cloud.emulator_url() {
        // The demo org's credentials are only ever a first value: keep what the secret holds.
        Some(_) if secret_has_value(cloud, secret_name).await => Ok(CredentialsInput::Existing),
        Some(emulator) => Ok(CredentialsInput::Default {
            document: demo_credentials(emulator, &settings.salesforce.auth_flow).await?,
        }),
        None => Ok(CredentialsInput::Existing),
    }
}

/// Whether a secret exists (not scheduled for deletion) with a current value.
async fn secret_has_value(cloud: &Cloud, name: &str) -> bool {
    let described = cloud
        .clients
        .secrets
        .describe_secret()
        .secret_id(name)
        .send()
        .await;
    described.is_ok_and(|secret| {
        secret.deleted_date().is_none()
            && secret.version_ids_to_stages().is_some_and(|versions| {
                versions
                    .values()
                    .any(|stages| stages.iter().any(|stage| stage == "AWSCURRENT"))
            })
    })
}

/// The demo org's credentials in `flow`, with a fresh random key for signing the OAuth
/// `state`. The refresh-token flow gets its token from the emulator's authorization-code flow.
async fn demo_credentials(emulator: &str, flow: &str) -> anyhow::Result<String> {
    use rand::Rng;
    let state_key: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(48)
        .map(char::from)
        .collect();
    let mut document = serde_json::json!({
        "AuthFlow": flow,
        "LoginUrl": emulator,
        "ConsumerKey": sf_emulator::DEMO_CONSUMER_KEY,
        "ConsumerSecret": sf_emulator::DEMO_CONSUMER_SECRET,
        "Username": sf_emulator::DEMO_USERNAME,
        "StateSigningKey": state_key,
    });
    match flow {
        "jwt" => document["PrivateKey"] = sf_emulator::DEMO_PRIVATE_KEY.into(),
        "password" => {
            document["Password"] = sf_emulator::DEMO_PASSWORD.into();
            document["AccessToken"] = sf_emulator::DEMO_SECURITY_TOKEN.into();
        }
        "refresh_token" => {
            document["RefreshToken"] = demo_refresh_token(emulator).await?.into();
        }
        _ => {}
    }
    Ok(document.to_string())
}

/// A refresh token for the demo user through the emulator's authorization-code flow.
async fn demo_refresh_token(emulator: &str) -> anyhow::Result<String> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let response = http
        .get(format!("{emulator}/services/oauth2/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", sf_emulator::DEMO_CONSUMER_KEY),
            ("redirect_uri", sf_emulator::DEMO_CALLBACK_URL),
            ("state", "sfstack-deploy"),
        ])
        .send()
        .await
        .context("asking the emulator for an authorization code")?;
    let code = response
        .headers()
        .get("location")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| url::Url::parse(value).ok())
        .and_then(|location| {
            location
                .query_pairs()
                .find(|(key, _)| key == "code")
                .map(|(_, value)| value.into_owned())
        })
        .context("the emulator's authorize endpoint returned no code")?;
    let session = salesforce::exchange_authorization_code(
        &salesforce::ClientConfig::default(),
        emulator,
        sf_emulator::DEMO_CONSUMER_KEY,
        &salesforce::Secret::new(sf_emulator::DEMO_CONSUMER_SECRET),
        &code,
        sf_emulator::DEMO_CALLBACK_URL,
        None,
    )
    .await
    .map_err(|error| anyhow::anyhow!("{error}"))
    .context("exchanging the emulator's authorization code")?;
    Ok(session
        .refresh_token
        .context("the emulator issued no refresh token")?
        .expose()
        .to_string())
}

/// Whether the credentials secret is rotated: only refresh-token credentials are (the rotation
/// function renews the token set); a JWT key, a password or a client secret is renewed by an
/// admin, not by a Lambda.
pub fn rotates(settings: &Settings) -> bool {
    settings.salesforce.auth_flow == "refresh_token"
}

/// Logs in with a credentials document before it is stored, so a wrong credential fails the
/// deploy with a message naming it and never replaces working credentials. An org that rotates
/// refresh tokens retires the document's token at this login: the input then carries the new
/// one, so what is stored works.
async fn check_credentials(
    input: CredentialsInput,
    settings: &Settings,
    login_url: Option<&str>,
) -> anyhow::Result<CredentialsInput> {
    let document = match &input {
        CredentialsInput::Given { document, .. } | CredentialsInput::Default { document } => {
            document
        }
        CredentialsInput::Existing => return Ok(input),
    };
    let source = input.source();
    let mut credentials = salesforce::Credentials::from_json_with_username(
        document,
        // The local org's user is the document's; a real org's is the shared file's.
        Some(settings.salesforce.username.as_str())
            .filter(|name| !name.is_empty() && login_url.is_none()),
    )
    .map_err(|error| anyhow::anyhow!("{error}"))
    .with_context(|| format!("the Salesforce credentials from {source} are incomplete"))?;
    if let Some(login_url) = login_url {
        credentials = credentials
            .with_login_url(login_url)
            .map_err(|error| anyhow::anyhow!("{error}"))?;
    }
    let login = credentials.login_url().to_string();
    let flow = credentials.flow().as_str();
    let client = salesforce::Client::new(
        credentials,
        salesforce::ClientConfig {
            api_version: settings.salesforce.api_version.clone(),
            ..salesforce::ClientConfig::default()
        },
    )
    .map_err(|error| anyhow::anyhow!("{error}"))?;
    let session = client.login().await.map_err(|error| {
        anyhow::anyhow!(
            "Salesforce ({login}) refused the credentials from {source} ({flow} flow): {error}\nhint: fix them in {source} and deploy again; nothing was changed"
        )
    })?;
    let Some(issued) = session.refresh_token.filter(|_| flow == "refresh_token") else {
        return Ok(input);
    };
    let mut json: serde_json::Value =
        serde_json::from_str(document).context("the credentials are not JSON")?;
    if json["RefreshToken"].as_str() == Some(issued.expose()) {
        return Ok(input);
    }
    json["RefreshToken"] = issued.expose().into();
    let document = json.to_string();
    Ok(match input {
        CredentialsInput::Given { source, .. } => CredentialsInput::Given { source, document },
        _ => CredentialsInput::Default { document },
    })
}

/// Everything `deploy` needs besides the cloud.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    pub environment: Environment,
    pub settings: Settings,
    pub arch: Arch,
    pub dry_run: bool,
    pub connect_instance_arn: Option<String>,
}

/// What a deploy printed as its result (also `--output json`).
#[derive(Debug, Clone, Serialize)]
pub struct DeployReport {
    pub environment: String,
    pub target: Target,
    pub dry_run: bool,
    /// Whether the stack changed (false: "no changes").
    pub changed: bool,
    /// The change set's `Action LogicalId (Type)` lines.
    pub preview: Vec<String>,
    /// What changed outside the stack: roles, key, secrets, policies, artifacts, permissions,
    /// rotation (never a value).
    pub changes: Vec<String>,
    /// Step → seconds.
    pub timings: Vec<(String, f64)>,
    pub outputs: Option<Outputs>,
    pub outputs_file: Option<PathBuf>,
}

/// What a deployed environment offers: names and ARNs only.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Outputs {
    pub environment: String,
    pub target: String,
    pub region: String,
    pub account_id: String,
    pub stack: String,
    /// Function crate → function ARN.
    pub functions: BTreeMap<String, String>,
    pub callback_url: String,
    pub credentials_secret_arn: String,
    pub session_secret_arn: String,
    pub kms_key_alias: String,
    pub kms_key_arn: String,
    pub oauth_tokens_table: String,
    pub token_refresh_rule: String,
    pub log_groups: Vec<String>,
}

/// The tags of this deploy.
pub fn tags_for(environment: &Environment, settings: &Settings) -> anyhow::Result<Tags> {
    let now = chrono::Utc::now();
    // Day granularity (rounded up to the next midnight): redeploys on the same day leave the
    // tags, and so the stack, unchanged, while an active branch's expiry still moves forward.
    let expires_at = if settings.environments.ttl.trim() == "never" {
        "never".to_string()
    } else {
        let ttl = crate::config::parse_duration(&settings.environments.ttl)?;
        let expiry =
            now + chrono::Duration::from_std(ttl).context("environments.ttl is too long")?;
        let next_midnight = expiry
            .date_naive()
            .succ_opt()
            .and_then(|day| day.and_hms_opt(0, 0, 0))
            .map(|time| time.and_utc())
            .unwrap_or(expiry);
        next_midnight.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    Ok(Tags {
        env: environment.name.clone(),
        branch: environment.branch.clone().unwrap_or_default(),
        commit: git_commit().unwrap_or_else(|| "unknown".to_string()),
        created_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        expires_at,
    })
}

fn git_commit() -> Option<String> {
    let output = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// A step's progress line on stderr, and its duration for the report.
struct Steps {
    started: Instant,
    current: Option<(String, Instant)>,
    timings: Vec<(String, f64)>,
}

impl Steps {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            current: None,
            timings: Vec::new(),
        }
    }

    fn begin(&mut self, name: &str, detail: &str) {
        self.end();
        note!("==> {name}: {detail}");
        self.current = Some((name.to_string(), Instant::now()));
    }

    fn end(&mut self) {
        if let Some((name, started)) = self.current.take() {
            self.timings.push((name, started.elapsed().as_secs_f64()));
        }
    }

    fn finish(mut self) -> Vec<(String, f64)> {
        self.end();
        self.timings
            .push(("total".to_string(), self.started.elapsed().as_secs_f64()));
        self.timings
    }
}

/// The stack's tags: stable across redeploys so a deploy with nothing changed changes nothing.
/// The stack keeps the creation time it was tagged with; the commit is not a stack tag (it
/// would make every commit a stack update; `outputs.json` and the IAM, KMS and Secrets
/// Manager tags record it).
async fn stack_tags(cloud: &Cloud, stack_name: &str, tags: &Tags) -> BTreeMap<String, String> {
    let mut pairs = tags.pairs();
    pairs.remove(infra::TAG_COMMIT);
    let existing = cloud
        .cloudformation
        .describe_stacks()
        .stack_name(stack_name)
        .send()
        .await
        .ok()
        .and_then(|output| {
            output.stacks().first().and_then(|stack| {
                stack
                    .tags()
                    .iter()
                    .find(|tag| tag.key() == Some(infra::TAG_CREATED_AT))
                    .and_then(|tag| tag.value().map(str::to_string))
            })
        });
    if let Some(created_at) = existing {
        pairs.insert(infra::TAG_CREATED_AT.to_string(), created_at);
    }
    pairs
}

/// Test hook for the interrupted-deploy drills: `SFSTACK_FAULT=after:<step>` ends the process
/// right after that step, as a kill would (exit code 137). Unset in normal use.
fn fault_point(step: &str) {
    if std::env::var("SFSTACK_FAULT").is_ok_and(|fault| fault == format!("after:{step}")) {
        note!("fault injected after step {step} (SFSTACK_FAULT)");
        std::process::exit(137);
    }
}

/// Names every failure after its step, so "what failed" is never a guess.
fn step<T>(name: &str, result: anyhow::Result<T>) -> anyhow::Result<T> {
    result.with_context(|| format!("deploy step \"{name}\" failed"))
}

fn function_arn(cloud: &Cloud, names: &Names, crate_name: &str) -> String {
    format!(
        "arn:{}:lambda:{}:{}:function:{}",
        partition(&cloud.region),
        cloud.region,
        cloud.account_id,
        names.function(crate_name)
    )
}

/// The stack template's input from what the infra steps made.
fn stack_input(
    cloud: &Cloud,
    names: &Names,
    settings: &Settings,
    infra: &Infra,
    callback_url: &str,
    tags: &BTreeMap<String, String>,
) -> StackInput {
    let environment = EnvironmentInputs {
        credentials_secret_arn: infra.secrets.credentials_arn.clone(),
        session_secret_arn: infra.secrets.session_arn.clone(),
        oauth_table_name: names.oauth_table(),
        oauth_redirect_uri: callback_url.to_string(),
        api_version: settings.salesforce.api_version.clone(),
        // The local org's user, whatever the shared file names for real orgs.
        username: match cloud.emulator_url() {
            Some(_) => sf_emulator::DEMO_USERNAME.to_string(),
            None => settings.salesforce.username.clone(),
        },
        login_url: cloud.emulator_url().map(str::to_string),
    };
    let functions = FUNCTIONS
        .iter()
        .map(|crate_name| FunctionSpec {
            logical_id: logical_id(crate_name),
            function_name: names.function(crate_name),
            description: format!("sfstack {}: {crate_name}", names.environment),
            role_arn: infra.role_arns.get(crate_name).cloned().unwrap_or_default(),
            code_key: infra
                .artifact_keys
                .get(crate_name)
                .cloned()
                .unwrap_or_default(),
            environment: render::function_environment(crate_name, &environment),
        })
        .collect();
    StackInput {
        environment: names.environment.clone(),
        architecture: settings.functions.architecture.clone(),
        memory_mb: settings.functions.memory_mb,
        timeout_seconds: settings.functions.timeout_seconds,
        log_retention_days: settings.functions.log_retention_days,
        artifacts_bucket: infra.artifacts_bucket.clone(),
        kms_key_arn: infra.key.key_arn.clone(),
        tags: tags.clone(),
        functions,
        schedule: Schedule {
            rule_name: names.refresh_rule(),
            expression: settings.functions.token_refresh_rate.clone(),
            target_logical_id: logical_id("sf-token-refresh"),
        },
        table: Table {
            name: names.oauth_table(),
        },
    }
}

/// Renders the template, checks it and writes it to the environment's directory.
fn render_template(dir: &Path, root: &Path, input: &StackInput) -> anyhow::Result<String> {
    let yaml = render::render_stack(root, input)?;
    render::check_stack(&yaml)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("template.yaml");
    std::fs::write(&path, &yaml).with_context(|| format!("writing {}", path.display()))?;
    Ok(yaml)
}

/// The callback's Function URL, if the function and its URL exist.
async fn existing_function_url(cloud: &Cloud, function: &str) -> anyhow::Result<Option<String>> {
    match cloud
        .lambda
        .get_function_url_config()
        .function_name(function)
        .send()
        .await
    {
        Ok(output) => Ok(Some(output.function_url().to_string())),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|error| error.is_resource_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(error) => Err(anyhow::anyhow!(aws_sdk_lambda::error::DisplayErrorContext(
            error
        )))
        .with_context(|| format!("reading the Function URL of {function}")),
    }
}

async fn ensure_function_url(cloud: &Cloud, function: &str) -> anyhow::Result<String> {
    if let Some(url) = existing_function_url(cloud, function).await? {
        return Ok(url);
    }
    let output = cloud
        .lambda
        .create_function_url_config()
        .function_name(function)
        .auth_type(aws_sdk_lambda::types::FunctionUrlAuthType::None)
        .send()
        .await
        .map_err(|error| anyhow::anyhow!(aws_sdk_lambda::error::DisplayErrorContext(error)))
        .with_context(|| format!("creating the Function URL of {function}"))?;
    Ok(output.function_url().to_string())
}

/// One resource-based permission on a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    pub sid: &'static str,
    pub action: &'static str,
    pub principal: String,
    pub source_arn: Option<String>,
    pub source_account: Option<String>,
    pub url_auth_none: bool,
    pub via_function_url: bool,
}

/// Adds `permission` unless a statement with its id and principal is there already; a
/// statement with the id but another principal or source is replaced.
async fn ensure_permission(
    cloud: &Cloud,
    function: &str,
    permission: &Permission,
) -> anyhow::Result<bool> {
    let policy = match cloud
        .lambda
        .get_policy()
        .function_name(function)
        .send()
        .await
    {
        Ok(output) => output.policy().map(str::to_string),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|error| error.is_resource_not_found_exception()) =>
        {
            None
        }
        Err(error) => {
            return Err(anyhow::anyhow!(aws_sdk_lambda::error::DisplayErrorContext(
                error
            )))
            .with_context(|| format!("reading the resource policy of {function}"));
        }
    };
    let statements: Vec<serde_json::Value> = policy
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|document| document.get("Statement").cloned())
        .and_then(|statements| statements.as_array().cloned())
        .unwrap_or_default();
    let existing: Vec<&serde_json::Value> = statements
        .iter()
        .filter(|statement| {
            statement.get("Sid").and_then(|sid| sid.as_str()) == Some(permission.sid)
        })
        .collect();
    if existing.len() == 1 && statement_matches(existing[0], permission) {
        return Ok(false);
    }
    if !existing.is_empty() {
        cloud
            .lambda
            .remove_permission()
            .function_name(function)
            .statement_id(permission.sid)
            .send()
            .await
            .map_err(|error| anyhow::anyhow!(aws_sdk_lambda::error::DisplayErrorContext(error)))
            .with_context(|| format!("replacing permission {} of {function}", permission.sid))?;
    }
    let mut request = cloud
        .lambda
        .add_permission()
        .function_name(function)
        .statement_id(permission.sid)
        .action(permission.action)
        .principal(&permission.principal)
        .set_source_arn(permission.source_arn.clone())
        .set_source_account(permission.source_account.clone());
    if permission.url_auth_none {
        request = request.function_url_auth_type(aws_sdk_lambda::types::FunctionUrlAuthType::None);
    }
    if permission.via_function_url {
        request = request.invoked_via_function_url(true);
    }
    request
        .send()
        .await
        .map_err(|error| anyhow::anyhow!(aws_sdk_lambda::error::DisplayErrorContext(error)))
        .with_context(|| {
            format!(
                "allowing {} to call {function} (permission {})",
                permission.principal, permission.sid
            )
        })?;
    Ok(true)
}

/// Removes a statement this tool added, if it is there (a setting that was turned off).
async fn remove_permission(cloud: &Cloud, function: &str, sid: &str) -> anyhow::Result<bool> {
    match cloud
        .lambda
        .remove_permission()
        .function_name(function)
        .statement_id(sid)
        .send()
        .await
    {
        Ok(_) => Ok(true),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|error| error.is_resource_not_found_exception()) =>
        {
            Ok(false)
        }
        Err(error) => Err(anyhow::anyhow!(aws_sdk_lambda::error::DisplayErrorContext(
            error
        )))
        .with_context(|| format!("removing permission {sid} from {function}")),
    }
}

fn statement_matches(statement: &serde_json::Value, permission: &Permission) -> bool {
    let principal = match statement.get("Principal") {
        Some(serde_json::Value::String(text)) => text.clone(),
        Some(other) => other
            .get("Service")
            .or_else(|| other.get("AWS"))
            .and_then(|value| value.as_str())
            .unwrap_or_default()
            .to_string(),
        None => String::new(),
    };
    let text = statement.to_string();
    principal == permission.principal
        && statement.get("Action").and_then(|action| action.as_str()) == Some(permission.action)
        && permission
            .source_arn
            .as_ref()
            .is_none_or(|arn| text.contains(arn.as_str()))
}

/// The permissions of step 7, by function crate.
fn permissions(
    cloud: &Cloud,
    names: &Names,
    infra: &Infra,
    connect_instance_arn: Option<&str>,
) -> Vec<(&'static str, Permission)> {
    let base = |sid, action, principal: &str| Permission {
        sid,
        action,
        principal: principal.to_string(),
        source_arn: None,
        source_account: None,
        url_auth_none: false,
        via_function_url: false,
    };
    let mut list = vec![
        (
            "sf-token-refresh",
            Permission {
                source_arn: Some(format!(
                    "arn:{}:events:{}:{}:rule/{}",
                    partition(&cloud.region),
                    cloud.region,
                    cloud.account_id,
                    names.refresh_rule()
                )),
                ..base(
                    SID_SCHEDULE,
                    "lambda:InvokeFunction",
                    "events.amazonaws.com",
                )
            },
        ),
        (
            "sf-secret-rotation",
            Permission {
                source_arn: Some(infra.secrets.credentials_arn.clone()),
                ..base(
                    SID_ROTATION,
                    "lambda:InvokeFunction",
                    "secretsmanager.amazonaws.com",
                )
            },
        ),
        (
            "sf-oauth-callback",
            Permission {
                url_auth_none: true,
                ..base(SID_URL, "lambda:InvokeFunctionUrl", "*")
            },
        ),
        (
            "sf-oauth-callback",
            Permission {
                via_function_url: true,
                ..base(SID_URL_INVOKE, "lambda:InvokeFunction", "*")
            },
        ),
    ];
    if let Some(instance) = connect_instance_arn {
        list.push((
            "sf-invoke-api",
            Permission {
                source_arn: Some(instance.to_string()),
                source_account: Some(cloud.account_id.clone()),
                ..base(
                    SID_CONNECT,
                    "lambda:InvokeFunction",
                    "connect.amazonaws.com",
                )
            },
        ));
    }
    list
}

/// Turns on rotation of the credentials secret by the rotation function, unless it is on.
async fn ensure_rotation(
    cloud: &Cloud,
    secret_arn: &str,
    function_arn: &str,
) -> anyhow::Result<bool> {
    let described = cloud
        .clients
        .secrets
        .describe_secret()
        .secret_id(secret_arn)
        .send()
        .await
        .map_err(|error| anyhow::anyhow!(aws_sdk_secretsmanager::error::DisplayErrorContext(error)))
        .with_context(|| format!("reading the rotation settings of {secret_arn}"))?;
    let days = described
        .rotation_rules()
        .and_then(|rules| rules.automatically_after_days());
    if described.rotation_enabled() == Some(true)
        && described.rotation_lambda_arn() == Some(function_arn)
        && days == Some(ROTATION_DAYS)
    {
        return Ok(false);
    }
    cloud
        .clients
        .secrets
        .rotate_secret()
        .secret_id(secret_arn)
        .rotation_lambda_arn(function_arn)
        .rotation_rules(
            aws_sdk_secretsmanager::types::RotationRulesType::builder()
                .automatically_after_days(ROTATION_DAYS)
                .build(),
        )
        .rotate_immediately(false)
        .send()
        .await
        .map_err(|error| anyhow::anyhow!(aws_sdk_secretsmanager::error::DisplayErrorContext(error)))
        .with_context(|| format!("enabling rotation of {secret_arn} by {function_arn}"))?;
    Ok(true)
}

/// Turns rotation off (the flow changed away from refresh tokens), unless it is off.
async fn disable_rotation(cloud: &Cloud, secret_arn: &str) -> anyhow::Result<bool> {
    let described = cloud
        .clients
        .secrets
        .describe_secret()
        .secret_id(secret_arn)
        .send()
        .await
        .map_err(|error| anyhow::anyhow!(aws_sdk_secretsmanager::error::DisplayErrorContext(error)))
        .with_context(|| format!("reading the rotation settings of {secret_arn}"))?;
    if described.rotation_enabled() != Some(true) {
        return Ok(false);
    }
    cloud
        .clients
        .secrets
        .cancel_rotate_secret()
        .secret_id(secret_arn)
        .send()
        .await
        .map_err(|error| anyhow::anyhow!(aws_sdk_secretsmanager::error::DisplayErrorContext(error)))
        .with_context(|| format!("turning off rotation of {secret_arn}"))?;
    Ok(true)
}

/// On the local target the emulator plays the org's connected app: the callback URL is added
/// to its callback URLs, as an admin would in Setup (on AWS the deploy prints that hint).
async fn register_local_callback(cloud: &Cloud, url: &str) -> anyhow::Result<()> {
    let Some(emulator) = cloud.emulator_url() else {
        return Ok(());
    };
    let response = reqwest::Client::new()
        .post(format!(
            "{emulator}/__emulator/connected-apps/{}/callback-urls",
            sf_emulator::DEMO_CONSUMER_KEY
        ))
        .json(&serde_json::json!({ "url": url }))
        .send()
        .await
        .context("registering the callback URL on the emulator's demo app")?;
    if !response.status().is_success() {
        bail!(
            "the emulator refused the callback URL {url}: {}",
            response.status()
        );
    }
    Ok(())
}

/// `cargo xtask deploy`.
pub async fn deploy(
    cloud: &Cloud,
    root: &Path,
    request: &DeployRequest,
) -> anyhow::Result<DeployReport> {
    let mut steps = Steps::new();
    let environment = &request.environment;
    let settings = &request.settings;
    let names = Names::new(&environment.name);
    let dir = cloud.environment_dir(root, &environment.name);
    steps.begin(
        "environment",
        &format!(
            "{} on {} (account {} as {}, region {}, {})",
            environment.name,
            cloud.target.as_str(),
            cloud.account_id,
            cloud.caller,
            cloud.region,
            environment
                .branch
                .as_deref()
                .map_or("no branch".to_string(), |branch| format!("branch {branch}"))
        ),
    );
    let tags = tags_for(environment, settings)?;

    steps.begin(
        "build",
        &format!("cargo lambda build ({})", request.arch.as_str()),
    );
    let root_owned = root.to_path_buf();
    let arch = request.arch;
    let report = tokio::task::spawn_blocking(move || build::build(&root_owned, arch))
        .await
        .context("the build task failed")?;
    let artifacts: Vec<Artifact> = step("build", report)?.artifacts;

    if request.dry_run {
        return dry_run(cloud, root, request, &names, &artifacts, steps).await;
    }

    let credentials = step(
        "credentials",
        credentials_input(cloud, settings, &names.credentials_secret()).await,
    )?;
    steps.begin(
        "credentials",
        &format!("checking the Salesforce login ({})", credentials.source()),
    );
    let credentials = step(
        "credentials",
        check_credentials(credentials, settings, cloud.emulator_url()).await,
    )?;

    steps.begin(
        "infrastructure",
        "IAM roles, KMS key, secrets, policies, artifacts",
    );
    let (ensured, infra_changes) = infra::recording_changes(infra::ensure_environment(
        &cloud.clients,
        &names,
        &tags,
        root,
        &cloud.account_id,
        &cloud.region,
        credentials.as_credentials(),
        &artifacts,
    ))
    .await;
    let infra = step("infrastructure", ensured)?;
    for change in &infra_changes {
        note!("  {change}");
    }
    drop(credentials);
    fault_point("infrastructure");

    steps.begin("stack", &format!("change set for {}", names.stack()));
    let callback = names.function("sf-oauth-callback");
    let known_url = step("stack", existing_function_url(cloud, &callback).await)?;
    let stack_tags = stack_tags(cloud, &names.stack(), &tags).await;
    let url = known_url.as_deref().unwrap_or(PENDING_CALLBACK_URL);
    let yaml = step(
        "stack",
        render_template(
            &dir,
            root,
            &stack_input(cloud, &names, settings, &infra, url, &stack_tags),
        ),
    )?;
    let mut outcome = step(
        "stack",
        stack::deploy(
            &cloud.cloudformation,
            &names.stack(),
            &yaml,
            &stack_tags,
            false,
        )
        .await,
    )?;

    fault_point("stack");
    steps.begin(
        "permissions",
        "Function URL, resource permissions, rotation",
    );
    let callback_url = step("permissions", ensure_function_url(cloud, &callback).await)?;
    if known_url.as_deref() != Some(callback_url.as_str()) {
        note!("stack: telling the callback its URL ({callback_url})");
        let yaml = step(
            "stack",
            render_template(
                &dir,
                root,
                &stack_input(cloud, &names, settings, &infra, &callback_url, &stack_tags),
            ),
        )?;
        let second = step(
            "stack",
            stack::deploy(
                &cloud.cloudformation,
                &names.stack(),
                &yaml,
                &stack_tags,
                false,
            )
            .await,
        )?;
        outcome.changed |= second.changed;
        outcome.preview.extend(second.preview);
    }
    let connect = request
        .connect_instance_arn
        .as_deref()
        .or(settings.connect.instance_arn.as_deref());
    let mut changes = infra_changes;
    for (crate_name, permission) in permissions(cloud, &names, &infra, connect) {
        if step(
            "permissions",
            ensure_permission(cloud, &names.function(crate_name), &permission).await,
        )? {
            changes.push(format!(
                "permission {} on {}",
                permission.sid,
                names.function(crate_name)
            ));
        }
    }
    if connect.is_none()
        && step(
            "permissions",
            remove_permission(cloud, &names.function("sf-invoke-api"), SID_CONNECT).await,
        )?
    {
        changes.push(format!(
            "permission {SID_CONNECT} removed from {}",
            names.function("sf-invoke-api")
        ));
    }
    let rotation_arn = function_arn(cloud, &names, "sf-secret-rotation");
    let rotation_changed = if rotates(settings) {
        step(
            "permissions",
            ensure_rotation(cloud, &infra.secrets.credentials_arn, &rotation_arn).await,
        )?
    } else {
        step(
            "permissions",
            disable_rotation(cloud, &infra.secrets.credentials_arn).await,
        )?
    };
    step(
        "permissions",
        register_local_callback(cloud, &callback_url).await,
    )?;
    if rotation_changed {
        changes.push(format!(
            "rotation of {} {}",
            names.credentials_secret(),
            if rotates(settings) {
                "enabled"
            } else {
                "disabled"
            }
        ));
    }
    let changed = outcome.changed || !changes.is_empty();

    steps.begin("outputs", "writing outputs.json");
    let outputs = Outputs {
        environment: environment.name.clone(),
        target: cloud.target.as_str().to_string(),
        region: cloud.region.clone(),
        account_id: cloud.account_id.clone(),
        stack: names.stack(),
        functions: FUNCTIONS
            .iter()
            .map(|crate_name| {
                (
                    crate_name.to_string(),
                    function_arn(cloud, &names, crate_name),
                )
            })
            .collect(),
        callback_url,
        credentials_secret_arn: infra.secrets.credentials_arn.clone(),
        session_secret_arn: infra.secrets.session_arn.clone(),
        kms_key_alias: infra.key.alias.clone(),
        kms_key_arn: infra.key.key_arn.clone(),
        oauth_tokens_table: names.oauth_table(),
        token_refresh_rule: names.refresh_rule(),
        log_groups: FUNCTIONS.iter().map(|name| names.log_group(name)).collect(),
    };
    let outputs_file = dir.join("outputs.json");
    std::fs::write(&outputs_file, serde_json::to_string_pretty(&outputs)?)
        .with_context(|| format!("writing {}", outputs_file.display()))?;
    Ok(DeployReport {
        environment: environment.name.clone(),
        target: cloud.target,
        dry_run: false,
        changed,
        preview: outcome.preview,
        changes,
        timings: steps.finish(),
        outputs: Some(outputs),
        outputs_file: Some(outputs_file),
    })
}

/// `deploy --dry-run` and `render`: the template this deploy would apply, with the ARNs of
/// what exists and placeholders for what would be created; nothing is created or changed.
async fn plan_input(
    cloud: &Cloud,
    names: &Names,
    settings: &Settings,
    artifacts: &[Artifact],
    tags: &BTreeMap<String, String>,
) -> anyhow::Result<StackInput> {
    let key_arn = match cloud
        .clients
        .kms
        .describe_key()
        .key_id(names.key_alias())
        .send()
        .await
    {
        Ok(output) => output
            .key_metadata()
            .map(|metadata| metadata.arn().unwrap_or_default().to_string())
            .unwrap_or_default(),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|error| error.is_not_found_exception()) =>
        {
            format!(
                "arn:{}:kms:{}:{}:key/created-on-deploy",
                partition(&cloud.region),
                cloud.region,
                cloud.account_id
            )
        }
        Err(error) => {
            return Err(anyhow::anyhow!(aws_sdk_kms::error::DisplayErrorContext(
                error
            )))
            .with_context(|| format!("looking up {}", names.key_alias()));
        }
    };
    let secret_arn = |name: String| {
        let secrets = cloud.clients.secrets.clone();
        let region = cloud.region.clone();
        let account = cloud.account_id.clone();
        async move {
            match secrets.describe_secret().secret_id(&name).send().await {
                Ok(output) => Ok(output.arn().unwrap_or_default().to_string()),
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|error| error.is_resource_not_found_exception()) =>
                {
                    Ok(format!(
                        "arn:{}:secretsmanager:{region}:{account}:secret:{name}-created-on-deploy",
                        partition(&region)
                    ))
                }
                Err(error) => Err(anyhow::anyhow!(
                    aws_sdk_secretsmanager::error::DisplayErrorContext(error)
                ))
                .with_context(|| format!("looking up secret {name}")),
            }
        }
    };
    let infra = Infra {
        key: infra::KeyInfo {
            key_id: String::new(),
            key_arn,
            alias: names.key_alias(),
        },
        secrets: infra::SecretsInfo {
            credentials_arn: secret_arn(names.credentials_secret()).await?,
            session_arn: secret_arn(names.session_secret()).await?,
        },
        role_arns: FUNCTIONS
            .iter()
            .map(|crate_name| {
                (
                    *crate_name,
                    format!(
                        "arn:{}:iam::{}:role/{}",
                        partition(&cloud.region),
                        cloud.account_id,
                        names.role(crate_name)
                    ),
                )
            })
            .collect(),
        artifacts_bucket: infra::artifacts_bucket_name(&cloud.account_id, &cloud.region),
        artifact_keys: artifacts
            .iter()
            .filter_map(|artifact| {
                FUNCTIONS
                    .iter()
                    .find(|name| **name == artifact.function)
                    .map(|name| (*name, infra::artifact_key(artifact)))
            })
            .collect(),
    };
    let url = existing_function_url(cloud, &names.function("sf-oauth-callback"))
        .await?
        .unwrap_or_else(|| PENDING_CALLBACK_URL.to_string());
    Ok(stack_input(cloud, names, settings, &infra, &url, tags))
}

async fn dry_run(
    cloud: &Cloud,
    root: &Path,
    request: &DeployRequest,
    names: &Names,
    artifacts: &[Artifact],
    mut steps: Steps,
) -> anyhow::Result<DeployReport> {
    steps.begin(
        "preview",
        &format!("change set for {} (dry run)", names.stack()),
    );
    let dir = cloud.environment_dir(root, &names.environment);
    let tags = tags_for(&request.environment, &request.settings)?;
    let tags = stack_tags(cloud, &names.stack(), &tags).await;
    let input = plan_input(cloud, names, &request.settings, artifacts, &tags).await?;
    let yaml = render_template(&dir, root, &input)?;
    let outcome = step(
        "preview",
        stack::deploy(&cloud.cloudformation, &names.stack(), &yaml, &tags, true).await,
    )?;
    Ok(DeployReport {
        environment: names.environment.clone(),
        target: cloud.target,
        dry_run: true,
        changed: outcome.changed,
        preview: outcome.preview,
        changes: Vec::new(),
        timings: steps.finish(),
        outputs: None,
        outputs_file: None,
    })
}

/// `cargo xtask render`: writes the template (and every policy) this environment would get.
pub async fn render(
    cloud: &Cloud,
    root: &Path,
    environment: &Environment,
    settings: &Settings,
    arch: Arch,
) -> anyhow::Result<Vec<PathBuf>> {
    let names = Names::new(&environment.name);
    let artifacts = build::build(root, arch)?.artifacts;
    let tags = stack_tags(cloud, &names.stack(), &tags_for(environment, settings)?).await;
    let input = plan_input(cloud, &names, settings, &artifacts, &tags).await?;
    let dir = cloud.environment_dir(root, &environment.name);
    let yaml = render_template(&dir, root, &input)?;
    let mut written = vec![dir.join("template.yaml")];
    let key = infra::KeyInfo {
        key_id: String::new(),
        key_arn: input.kms_key_arn.clone(),
        alias: names.key_alias(),
    };
    let credentials_arn = input
        .functions
        .iter()
        .find_map(|function| {
            function
                .environment
                .get("SF_CREDENTIALS_SECRET_ARN")
                .cloned()
        })
        .unwrap_or_default();
    let session_arn = input
        .functions
        .iter()
        .find_map(|function| function.environment.get("SF_SESSION_SECRET_ARN").cloned())
        .unwrap_or_default();
    let secrets = infra::SecretsInfo {
        credentials_arn,
        session_arn,
    };
    let policy_inputs =
        infra::policy_inputs(&names, &cloud.region, &cloud.account_id, &key, &secrets);
    for (function, policy_input) in &policy_inputs {
        let policy = render::render_policy(root, function, policy_input)?;
        render::check_policy(&policy)?;
        let path = dir.join(format!("policy-{function}.json"));
        std::fs::write(&path, serde_json::to_string_pretty(&policy)?)
            .with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    lint(root, &dir.join("template.yaml"));
    drop(yaml);
    Ok(written)
}

/// Runs cfn-lint on a template when the pinned tools are installed; shows its findings.
fn lint(_root: &Path, template: &Path) {
    let bin = pytools::venv_dir().join("bin").join("cfn-lint");
    if !bin.exists() {
        note!(
            "render: cfn-lint is not installed yet (it comes with the first `cargo xtask local up`); skipped"
        );
        return;
    }
    match std::process::Command::new(&bin).arg(template).output() {
        Ok(output) if output.status.success() => note!("render: cfn-lint: no findings"),
        Ok(output) => note!(
            "render: cfn-lint findings:\n{}",
            String::from_utf8_lossy(&output.stdout)
        ),
        Err(error) => note!("render: could not run cfn-lint: {error}"),
    }
}

/// What a teardown removed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TeardownReport {
    pub environment: String,
    pub stack_deleted: bool,
    pub log_groups: Vec<String>,
    pub removed: infra::Removed,
    pub seconds: f64,
}

impl TeardownReport {
    pub fn is_empty(&self) -> bool {
        !self.stack_deleted && self.log_groups.is_empty() && self.removed.is_empty()
    }
}

/// Whether an environment needs `--force` to be torn down.
pub fn is_protected(environment: &str, settings: &Settings) -> bool {
    naming::is_protected(environment)
        || settings
            .environments
            .protected
            .iter()
            .any(|name| name == environment)
}

/// `cargo xtask teardown`: the stack (functions with their URL and permissions, log groups,
/// the rule, the table), leftover log groups, then secrets, roles and the key. Idempotent;
/// works on a half-created environment.
pub async fn teardown(
    cloud: &Cloud,
    root: &Path,
    environment: &str,
) -> anyhow::Result<TeardownReport> {
    let started = Instant::now();
    let names = Names::new(environment);
    crate::progress::start(format!("teardown: deleting stack {}", names.stack()));
    let stack_deleted = stack::delete(&cloud.cloudformation, &names.stack())
        .await
        .with_context(|| {
            format!(
                "teardown of {environment}: deleting stack {}",
                names.stack()
            )
        })?;
    crate::progress::start("teardown: log groups");
    let mut log_groups = Vec::new();
    for function in FUNCTIONS {
        let group = names.log_group(function);
        match cloud
            .logs
            .delete_log_group()
            .log_group_name(&group)
            .send()
            .await
        {
            Ok(_) => log_groups.push(group),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|error| error.is_resource_not_found_exception()) => {}
            Err(error) => {
                return Err(anyhow::anyhow!(
                    aws_sdk_cloudwatchlogs::error::DisplayErrorContext(error)
                ))
                .with_context(|| format!("teardown of {environment}: deleting log group {group}"));
            }
        }
    }
    crate::progress::start("teardown: secrets, roles, key");
    let removed = infra::teardown_environment(&cloud.clients, &names).await;
    crate::progress::finish(format!(
        "✓ teardown of {environment} ({:.1} s)",
        started.elapsed().as_secs_f64()
    ));
    let removed = removed?;
    let dir = cloud.environment_dir(root, environment);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(TeardownReport {
        environment: environment.to_string(),
        stack_deleted,
        log_groups,
        removed,
        seconds: started.elapsed().as_secs_f64(),
    })
}
