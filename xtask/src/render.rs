//! `render`: the handlebars templates in `templates/` and `policies/` → CloudFormation YAML and
//! IAM policy documents, in strict mode, then parsed back and checked structurally.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use handlebars::Handlebars;
use serde::Serialize;
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

/// One function of the stack.
#[derive(Debug, Clone, Serialize)]
pub struct FunctionSpec {
    pub logical_id: String,
    pub function_name: String,
    pub description: String,
    pub role_arn: String,
    pub code_key: String,
    /// Only ARNs and plain settings: never a secret value.
    pub environment: BTreeMap<String, String>,
    /// The executions kept for this function, and the most it may run at once: only the
    /// public callback has one, so a flood of requests cannot take the account's concurrency
    /// from `sf-invoke-api`.
    pub reserved_concurrency: Option<u32>,
    /// The checkov findings this function accepts, each with the reason.
    pub checkov_skips: Vec<CheckovSkip>,
}

/// A checkov check a resource is exempt from, and why (the template's `Metadata.checkov.skip`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckovSkip {
    pub id: &'static str,
    pub comment: &'static str,
}

/// The reserved concurrency of each function: the public callback's from the settings; one
/// for the two functions that write the credentials (one writer at a time, by construction);
/// none for `sf-invoke-api`, which serves live calls.
pub fn reserved_concurrency(crate_name: &str, callback_concurrency: u32) -> Option<u32> {
    match crate_name {
        "sf-oauth-callback" => Some(callback_concurrency),
        "sf-token-refresh" | "sf-secret-rotation" => Some(1),
        _ => None,
    }
}

/// The checkov findings the stack accepts, function by function, with the reasons a reviewer
/// reads in the template. Everything else checkov checks must pass (`checkov_passes` test).
pub fn checkov_skips(crate_name: &str) -> Vec<CheckovSkip> {
    let mut skips = vec![
        CheckovSkip {
            id: "CKV_AWS_117",
            comment: "Not in a VPC unless functions.vpc says so: the functions call Salesforce on the internet and AWS APIs, which from a VPC needs a NAT gateway or endpoints the team must choose; nothing listens inside.",
        },
        CheckovSkip {
            id: "CKV_AWS_173",
            comment: "The variables hold only ARNs, names and plain settings (a closed list, tested; never a secret), and Lambda encrypts them at rest with an AWS owned key; a customer managed key would add a KMS call to every cold start for nothing secret.",
        },
    ];
    skips.push(CheckovSkip {
        id: "CKV_AWS_116",
        comment: match crate_name {
            "sf-invoke-api" => "Invoked synchronously by Amazon Connect, which gets the error itself; a dead-letter queue applies only to asynchronous invocations.",
            "sf-oauth-callback" => "Invoked synchronously through its Function URL: the browser gets the answer; a dead-letter queue applies only to asynchronous invocations.",
            "sf-secret-rotation" => "Invoked by Secrets Manager one step at a time: a failed step is recorded by Secrets Manager (CloudTrail, the secret's rotation state) and the rotation is retried; a queued copy of a step's event would be stale by then.",
            _ => "Its scheduled event carries no data to recover: the next run (every few minutes) retries, and a failure is logged and counted in the function's Errors metric.",
        },
    });
    if crate_name == "sf-invoke-api" {
        skips.push(CheckovSkip {
            id: "CKV_AWS_115",
            comment: "Serves live Amazon Connect calls: a cap would throttle callers. The public callback, which anyone can reach, is the function with a reserved concurrency.",
        });
    }
    skips
}

#[derive(Debug, Clone, Serialize)]
pub struct Schedule {
    pub rule_name: String,
    pub expression: String,
    pub target_logical_id: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Table {
    pub name: String,
}

/// Everything the stack template needs.
#[derive(Debug, Clone, Serialize)]
pub struct StackInput {
    pub environment: String,
    pub architecture: String,
    pub memory_mb: u32,
    pub timeout_seconds: u32,
    pub log_retention_days: u32,
    pub artifacts_bucket: String,
    pub kms_key_arn: String,
    pub tags: BTreeMap<String, String>,
    pub functions: Vec<FunctionSpec>,
    pub schedule: Schedule,
    pub table: Table,
    pub states_table: Table,
    /// `functions.vpc`: every function's `VpcConfig`.
    pub vpc: Option<crate::config::Vpc>,
}

/// What the functions' environments are made of: ARNs and plain settings, never a secret.
#[derive(Debug, Clone)]
pub struct EnvironmentInputs {
    pub credentials_secret_arn: String,
    /// The callback's own secret (see `Names::oauth_client_secret`), and its current version.
    pub oauth_client_secret_arn: String,
    pub oauth_client_version: String,
    pub session_secret_arn: String,
    pub oauth_table_name: String,
    pub oauth_states_table_name: String,
    pub oauth_redirect_uri: String,
    pub api_version: String,
    pub username: String,
    /// Overrides the credentials document's `LoginUrl` (the local target's emulator, or the
    /// org's My Domain, `salesforce.my_domain`).
    pub login_url: Option<String>,
    /// `LOGGING_LEVEL` (`functions.log_level`).
    pub log_level: String,
    /// `sf-token-refresh`'s name when the credentials use the refresh-token flow: then
    /// `sf-invoke-api` asks it for a new session instead of spending the refresh token.
    pub token_refresh_function: Option<String>,
}

/// The environment variables of one function: only what that function reads.
pub fn function_environment(
    crate_name: &str,
    inputs: &EnvironmentInputs,
) -> BTreeMap<String, String> {
    let mut variables = BTreeMap::new();
    let mut set = |name: &str, value: &str| {
        variables.insert(name.to_string(), value.to_string());
    };
    set("LOGGING_LEVEL", &inputs.log_level);
    set("SF_API_VERSION", &inputs.api_version);
    if let Some(login_url) = &inputs.login_url {
        set("SF_LOGIN_URL", login_url);
    }
    match crate_name {
        "sf-invoke-api" | "sf-token-refresh" => {
            set("SF_CREDENTIALS_SECRET_ARN", &inputs.credentials_secret_arn);
            set("SF_SESSION_SECRET_ARN", &inputs.session_secret_arn);
            set("SF_USERNAME", &inputs.username);
            if let Some(function) = &inputs.token_refresh_function
                && crate_name == "sf-invoke-api"
            {
                set("SF_TOKEN_REFRESH_FUNCTION", function);
            }
        }
        "sf-oauth-callback" => {
            // Its credentials are the OAuth client's only.
            set("SF_CREDENTIALS_SECRET_ARN", &inputs.oauth_client_secret_arn);
            // Read by nobody: a changed secret changes the configuration, so Lambda starts new
            // execution environments, which read the secret afresh instead of a cached copy.
            set("SF_CREDENTIALS_VERSION", &inputs.oauth_client_version);
            set("OAUTH_TOKENS_TABLE", &inputs.oauth_table_name);
            set("OAUTH_STATES_TABLE", &inputs.oauth_states_table_name);
            set("OAUTH_REDIRECT_URI", &inputs.oauth_redirect_uri);
        }
        // The rotation function is told which secret to rotate by Secrets Manager's event.
        _ => {}
    }
    variables
}

/// Everything a function's policy needs: exact ARNs.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyInput {
    pub region: String,
    pub log_group_arn: String,
    pub credentials_secret_arn: String,
    pub oauth_client_secret_arn: String,
    pub session_secret_arn: String,
    pub kms_key_arn: String,
    pub table_arn: String,
    pub states_table_arn: String,
    /// The credentials rotate their refresh token (`salesforce.auth_flow = refresh_token`):
    /// only then may `sf-token-refresh` write the credentials, to keep the one it was handed,
    /// and `sf-invoke-api` neither reads them nor logs in: it invokes `sf-token-refresh`.
    pub keeps_refresh_token: bool,
    /// `sf-token-refresh`'s ARN.
    pub token_refresh_function_arn: String,
    /// `functions.vpc`: what Lambda needs of the role to put the function in the VPC.
    pub network: Option<NetworkInput>,
}

/// The network interfaces Lambda makes, as the function's role, in the VPC's subnets
/// (Lambda Developer Guide, "Giving Lambda functions access to resources in an Amazon VPC").
#[derive(Debug, Clone, Serialize)]
pub struct NetworkInput {
    pub subnet_arns: Vec<String>,
    pub security_group_arns: Vec<String>,
    /// `arn:aws:ec2:REGION:ACCOUNT:network-interface/*`: Lambda picks the interfaces' ids.
    pub network_interfaces_arn: String,
}

/// `sf-invoke-api` → `SfInvokeApi`, the CloudFormation logical id.
pub fn logical_id(crate_name: &str) -> String {
    crate_name
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

/// Escapes a value for a double-quoted YAML or JSON string: every interpolation in the
/// templates sits inside double quotes or is an identifier, so this is the only escaping needed.
fn escape_quoted(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            control if control.is_control() => {
                escaped.push_str(&format!("\\u{:04x}", control as u32))
            }
            other => escaped.push(other),
        }
    }
    escaped
}

/// The repository's `templates/` and `policies/` folders.
pub fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn registry(partials: &[(&str, PathBuf)]) -> anyhow::Result<Handlebars<'static>> {
    let mut handlebars = Handlebars::new();
    // A missing variable is an error, never an empty string in a template.
    handlebars.set_strict_mode(true);
    handlebars.register_escape_fn(escape_quoted);
    for (name, path) in partials {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading partial {}", path.display()))?;
        handlebars
            .register_partial(name, text)
            .with_context(|| format!("parsing partial {}", path.display()))?;
    }
    Ok(handlebars)
}

fn render_file(
    handlebars: &Handlebars<'_>,
    path: &Path,
    data: &impl Serialize,
) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading template {}", path.display()))?;
    handlebars
        .render_template(&text, data)
        .map_err(|error| anyhow::anyhow!("{error}"))
        .with_context(|| format!("rendering {}", path.display()))
}

/// Renders the stack template and checks it.
pub fn render_stack(root: &Path, input: &StackInput) -> anyhow::Result<String> {
    let folder = root.join("templates");
    let partials_dir = folder.join("partials");
    let partials = [
        ("function", partials_dir.join("function.yaml.hbs")),
        ("log_group", partials_dir.join("log_group.yaml.hbs")),
        ("tags", partials_dir.join("tags.yaml.hbs")),
    ];
    let handlebars = registry(&partials)?;
    let yaml = render_file(&handlebars, &folder.join("stack.yaml.hbs"), input)?;
    check_stack(&yaml).context("the rendered template failed its structural checks")?;
    Ok(yaml)
}

/// The sample Amazon Connect contact flow (`templates/sample-contact-flow.json.hbs`, in the flow
/// language) for the contact-flow function `function_arn`, as the one-line JSON
/// `CreateContactFlow` takes; every `InvokeLambdaFunction` of it is checked to name the function.
pub fn render_sample_flow(root: &Path, function_arn: &str) -> anyhow::Result<String> {
    let path = root.join("templates").join("sample-contact-flow.json.hbs");
    let text = render_file(
        &registry(&[])?,
        &path,
        &serde_json::json!({ "function_arn": function_arn }),
    )?;
    let flow: Json = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON once rendered", path.display()))?;
    let invoked = sample_flow_functions(&flow);
    if invoked.is_empty() || invoked.iter().any(|arn| arn != function_arn) {
        bail!(
            "{}: every InvokeLambdaFunction must invoke {function_arn}, got {invoked:?}",
            path.display()
        );
    }
    Ok(flow.to_string())
}

/// The functions a contact flow's `InvokeLambdaFunction` actions invoke.
pub fn sample_flow_functions(flow: &Json) -> Vec<String> {
    flow.get("Actions")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter(|action| action.get("Type").and_then(Json::as_str) == Some("InvokeLambdaFunction"))
        .map(|action| {
            action
                .pointer("/Parameters/LambdaFunctionARN")
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// Renders one function's inline policy and checks it.
pub fn render_policy(root: &Path, crate_name: &str, input: &PolicyInput) -> anyhow::Result<Json> {
    let folder = root.join("policies");
    let handlebars = registry(&[
        ("logs", folder.join("logs.json.hbs")),
        ("network", folder.join("network.json.hbs")),
    ])?;
    let text = render_file(
        &handlebars,
        &folder.join(format!("{crate_name}.json.hbs")),
        input,
    )?;
    let policy: Json = serde_json::from_str(&text)
        .with_context(|| format!("policy of {crate_name} is not JSON"))?;
    check_policy(&policy).with_context(|| format!("policy of {crate_name}"))?;
    if text.len() > 10_240 {
        bail!(
            "policy of {crate_name} is {} bytes; IAM allows 10,240 per role's inline policies",
            text.len()
        );
    }
    Ok(policy)
}

/// Renders a deployer role's policy (`policies/deployer.json.hbs`, see [`crate::bootstrap`])
/// and checks it: every allowed action exact (`service:PascalCase`, never `*`), every allowed
/// resource an ARN scoped to sfstack names (`*` only for the actions that take no resource),
/// and within IAM's 10,240 characters for a role's inline policies (whitespace aside).
pub fn render_deployer_policy(
    root: &Path,
    input: &crate::bootstrap::DeployerPolicyInput,
) -> anyhow::Result<Json> {
    let handlebars = registry(&[])?;
    let text = render_file(
        &handlebars,
        &root.join("policies").join("deployer.json.hbs"),
        input,
    )?;
    let policy: Json = serde_json::from_str(&text).context("the deployer policy is not JSON")?;
    check_deployer_policy(&policy)?;
    let size = serde_json::to_string(&policy)?.len();
    if size > 10_240 {
        bail!(
            "the deployer policy is {size} characters; IAM allows 10,240 per role's inline policies\nhint: fewer protected environments, or split the policy"
        );
    }
    Ok(policy)
}

/// The resource-less actions a deployer may be allowed on `*`: listing, and making a key (its
/// statement cannot name a key that does not exist yet).
const RESOURCELESS: &[&str] = &[
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
    "iam:ListRoles",
    "kms:CreateKey",
    "kms:ListAliases",
    "kms:ListKeys",
];

fn check_deployer_policy(policy: &Json) -> anyhow::Result<()> {
    let statements = policy
        .get("Statement")
        .and_then(Json::as_array)
        .context("the deployer policy has no Statement list")?;
    let mut problems = Vec::new();
    for statement in statements {
        if statement.get("Effect").and_then(Json::as_str) != Some("Allow") {
            continue;
        }
        let sid = statement.get("Sid").and_then(Json::as_str).unwrap_or("?");
        let strings = |key: &str| -> Vec<&str> {
            match statement.get(key) {
                Some(Json::String(single)) => vec![single.as_str()],
                Some(Json::Array(list)) => list.iter().filter_map(Json::as_str).collect(),
                _ => vec![],
            }
        };
        let actions = strings("Action");
        for action in &actions {
            let exact = action.split_once(':').is_some_and(|(service, name)| {
                !service.is_empty()
                    && name.starts_with(|c: char| c.is_ascii_uppercase())
                    && name.chars().all(|c| c.is_ascii_alphanumeric())
            });
            if !exact {
                problems.push(format!("{sid}: action {action:?} is not exact"));
            }
        }
        for resource in strings("Resource") {
            let scoped = resource.contains(":sfstack-")
                || resource.contains("/sfstack-")
                || resource.contains("/aws/lambda/sfstack-")
                || resource.contains(":key/*") && statement.get("Condition").is_some()
                || resource.starts_with("arn:aws:s3:::") && !resource.ends_with(":::*")
                // One Amazon Connect instance the settings name (or its flows), never a
                // pattern of instances.
                || resource.contains(":connect:")
                    && resource.split_once(":instance/").is_some_and(|(_, rest)| {
                        let id = rest.strip_suffix("/contact-flow/*").unwrap_or(rest);
                        !id.is_empty() && !id.contains(['*', '?', '/'])
                    });
            let resourceless =
                resource == "*" && actions.iter().all(|action| RESOURCELESS.contains(action));
            if !(scoped || resourceless) {
                problems.push(format!(
                    "{sid}: resource {resource:?} is not scoped to sfstack's names"
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("the deployer policy:\n{}", problems.join("\n"))
    }
}

const PSEUDO_PARAMETERS: &[&str] = &[
    "AWS::AccountId",
    "AWS::Region",
    "AWS::StackName",
    "AWS::StackId",
    "AWS::Partition",
    "AWS::URLSuffix",
    "AWS::NoValue",
];

/// Parses the template back and checks what CloudFormation would only find out half-way
/// through a deploy: dangling `Ref`/`GetAtt`/`DependsOn`, functions without a role, a log
/// group or a timeout.
/// CloudFormation refuses `null` anywhere in a template (moto accepts it): an empty block in a
/// template renders as `Key:` with nothing under it.
fn find_nulls(value: &Yaml, path: &str, problems: &mut Vec<String>) {
    match value {
        Yaml::Null => problems.push(format!(
            "{path} is empty (null), which CloudFormation refuses"
        )),
        Yaml::Mapping(map) => {
            for (key, child) in map {
                let key = key.as_str().unwrap_or("?");
                find_nulls(child, &format!("{path}/{key}"), problems);
            }
        }
        Yaml::Sequence(items) => {
            for (index, child) in items.iter().enumerate() {
                find_nulls(child, &format!("{path}/{index}"), problems);
            }
        }
        _ => {}
    }
}

pub fn check_stack(yaml: &str) -> anyhow::Result<()> {
    let document: Yaml = serde_yaml::from_str(yaml).context("not valid YAML")?;
    let resources = document
        .get("Resources")
        .and_then(Yaml::as_mapping)
        .context("no Resources section")?;
    let names: BTreeSet<String> = resources
        .keys()
        .filter_map(|key| key.as_str().map(String::from))
        .collect();
    let parameters: BTreeSet<String> = document
        .get("Parameters")
        .and_then(Yaml::as_mapping)
        .map(|map| {
            map.keys()
                .filter_map(|key| key.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let mut problems = Vec::new();
    check_references(&document, &names, &parameters, &mut problems);
    find_nulls(&document, "", &mut problems);

    for (name, resource) in resources {
        let name = name.as_str().unwrap_or("?");
        if let Some(depends) = resource.get("DependsOn") {
            let targets: Vec<&str> = match depends {
                Yaml::String(single) => vec![single.as_str()],
                Yaml::Sequence(list) => list.iter().filter_map(Yaml::as_str).collect(),
                _ => vec![],
            };
            for target in targets {
                if !names.contains(target) {
                    problems.push(format!("{name}: DependsOn {target} is not a resource"));
                }
            }
        }
        if resource.get("Type").and_then(Yaml::as_str) != Some("AWS::Lambda::Function") {
            continue;
        }
        let properties = resource.get("Properties");
        let property = |key: &str| properties.and_then(|p| p.get(key));
        if property("Role")
            .and_then(Yaml::as_str)
            .is_none_or(str::is_empty)
        {
            problems.push(format!("{name}: function has no Role"));
        }
        if property("Timeout").and_then(Yaml::as_u64).is_none() {
            problems.push(format!("{name}: function has no Timeout"));
        }
        let log_group = property("LoggingConfig")
            .and_then(|config| config.get("LogGroup"))
            .and_then(|group| group.get("Ref"))
            .and_then(Yaml::as_str);
        match log_group.and_then(|group| resources.get(group).map(|resource| (group, resource))) {
            Some((_, group))
                if group.get("Type").and_then(Yaml::as_str) == Some("AWS::Logs::LogGroup") =>
            {
                let expected = property("FunctionName")
                    .and_then(Yaml::as_str)
                    .map(|f| format!("/aws/lambda/{f}"));
                let actual = group
                    .get("Properties")
                    .and_then(|p| p.get("LogGroupName"))
                    .and_then(Yaml::as_str);
                if expected.as_deref() != actual {
                    problems.push(format!(
                        "{name}: its log group is named {actual:?}, expected {expected:?}"
                    ));
                }
                if group
                    .get("Properties")
                    .and_then(|p| p.get("RetentionInDays"))
                    .is_none()
                {
                    problems.push(format!("{name}: its log group has no retention"));
                }
            }
            _ => problems.push(format!(
                "{name}: function has no explicit log group (LoggingConfig.LogGroup Ref)"
            )),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("{}", problems.join("\n"))
    }
}

fn check_references(
    value: &Yaml,
    names: &BTreeSet<String>,
    parameters: &BTreeSet<String>,
    problems: &mut Vec<String>,
) {
    match value {
        Yaml::Mapping(map) => {
            for (key, inner) in map {
                match key.as_str() {
                    Some("Ref") => match inner.as_str() {
                        Some(target)
                            if names.contains(target)
                                || parameters.contains(target)
                                || PSEUDO_PARAMETERS.contains(&target) => {}
                        other => problems.push(format!("Ref {other:?} does not resolve")),
                    },
                    Some("Fn::GetAtt") => {
                        let target = match inner {
                            Yaml::Sequence(list) if list.len() == 2 => {
                                list[0].as_str().map(String::from)
                            }
                            Yaml::String(text) => text
                                .split_once('.')
                                .map(|(resource, _)| resource.to_string()),
                            _ => None,
                        };
                        match target {
                            Some(target) if names.contains(&target) => {}
                            other => {
                                problems.push(format!("Fn::GetAtt {other:?} does not resolve"))
                            }
                        }
                    }
                    _ => {}
                }
                check_references(inner, names, parameters, problems);
            }
        }
        Yaml::Sequence(list) => list
            .iter()
            .for_each(|item| check_references(item, names, parameters, problems)),
        Yaml::Tagged(tagged) => problems.push(format!(
            "short-form tag {} is not allowed; use the long form (Ref:, Fn::GetAtt:)",
            tagged.tag
        )),
        _ => {}
    }
}

/// Least privilege: exact actions in `service:PascalCase`, exact resources (the only wildcard
/// allowed is a log group's `:*` log-stream suffix).
pub fn check_policy(policy: &Json) -> anyhow::Result<()> {
    let statements = policy
        .get("Statement")
        .and_then(Json::as_array)
        .context("no Statement list")?;
    let mut problems = Vec::new();
    for statement in statements {
        let sid = statement.get("Sid").and_then(Json::as_str).unwrap_or("?");
        let strings = |key: &str| -> Vec<String> {
            match statement.get(key) {
                Some(Json::String(single)) => vec![single.clone()],
                Some(Json::Array(list)) => list
                    .iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect(),
                _ => vec![],
            }
        };
        for action in strings("Action") {
            let well_formed = action.split_once(':').is_some_and(|(service, name)| {
                !service.is_empty()
                    && service
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && name.starts_with(|c: char| c.is_ascii_uppercase())
                    && name.chars().all(|c| c.is_ascii_alphanumeric())
            });
            if !well_formed {
                problems.push(format!(
                    "{sid}: action {action:?} is not exact service:PascalCase"
                ));
            }
        }
        let resources = strings("Resource");
        if resources.is_empty() {
            problems.push(format!("{sid}: no Resource"));
        }
        let actions = strings("Action");
        for resource in resources {
            let wildcard_ok = resource.starts_with("arn:aws:logs:")
                && resource.ends_with(":*")
                && !resource[..resource.len() - 2].contains('*')
                // Lambda picks its network interfaces' ids (functions.vpc).
                || resource.starts_with("arn:aws:ec2:")
                    && resource.ends_with(":network-interface/*")
                    && !resource[..resource.len() - 2].contains('*')
                // "This action only works if it's allowed on all resources" (Lambda
                // Developer Guide, VPC permissions).
                || resource == "*" && actions == ["ec2:DescribeNetworkInterfaces"];
            let exact = resource.starts_with("arn:") && !resource.contains('*');
            if !(exact || wildcard_ok) {
                problems.push(format!("{sid}: resource {resource:?} is not an exact ARN"));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("{}", problems.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naming::{FUNCTIONS, Names};

    const ACCOUNT: &str = "123456789012";
    const REGION: &str = "us-east-1";

    fn sample_input() -> StackInput {
        let names = Names::new("feature-x-abc123");
        let kms_key_arn =
            format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/00000000-0000-0000-0000-000000000000");
        let functions = FUNCTIONS
            .iter()
            .map(|crate_name| FunctionSpec {
                logical_id: logical_id(crate_name),
                function_name: names.function(crate_name),
                description: format!("{crate_name} for \"feature/x\""),
                role_arn: format!("arn:aws:iam::{ACCOUNT}:role/{}", names.role(crate_name)),
                code_key: format!("{crate_name}/0123abcd.zip"),
                environment: function_environment(crate_name, &sample_environment()),
                reserved_concurrency: reserved_concurrency(crate_name, 10),
                checkov_skips: checkov_skips(crate_name),
            })
            .collect();
        StackInput {
            environment: names.environment.clone(),
            architecture: "x86_64".into(),
            memory_mb: 256,
            timeout_seconds: 8,
            log_retention_days: 14,
            artifacts_bucket: format!("sfstack-artifacts-{ACCOUNT}-{REGION}"),
            kms_key_arn,
            tags: BTreeMap::from([
                ("sfstack:env".to_string(), names.environment.clone()),
                ("sfstack:branch".to_string(), "feature/x".to_string()),
            ]),
            functions,
            schedule: Schedule {
                rule_name: names.refresh_rule(),
                expression: "rate(15 minutes)".into(),
                target_logical_id: logical_id("sf-token-refresh"),
            },
            table: Table {
                name: names.oauth_table(),
            },
            states_table: Table {
                name: names.oauth_states_table(),
            },
            vpc: None,
        }
    }

    fn sample_environment() -> EnvironmentInputs {
        let names = Names::new("feature-x-abc123");
        EnvironmentInputs {
            credentials_secret_arn: format!(
                "arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{}-AbCdEf",
                names.credentials_secret()
            ),
            oauth_client_secret_arn: format!(
                "arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{}-MnOpQr",
                names.oauth_client_secret()
            ),
            session_secret_arn: format!(
                "arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{}-GhIjKl",
                names.session_secret()
            ),
            oauth_client_version: "a1b2c3d4-0000-4000-8000-000000000000".into(),
            oauth_table_name: names.oauth_table(),
            oauth_states_table_name: names.oauth_states_table(),
            oauth_redirect_uri: "https://abcdefghijklmnop.lambda-url.us-east-1.on.aws/callback"
                .into(),
            api_version: "62.0".into(),
            username: "integration@example.com".into(),
            login_url: None,
            log_level: "INFO".into(),
            token_refresh_function: Some(names.function("sf-token-refresh")),
        }
    }

    #[test]
    fn each_function_gets_only_what_it_reads_and_only_arns_or_settings() {
        let inputs = sample_environment();
        let invoke = function_environment("sf-invoke-api", &inputs);
        assert!(
            invoke.contains_key("SF_SESSION_SECRET_ARN")
                && !invoke.contains_key("OAUTH_TOKENS_TABLE")
        );
        assert_eq!(
            invoke.get("SF_TOKEN_REFRESH_FUNCTION"),
            inputs.token_refresh_function.as_ref()
        );
        let refresh = function_environment("sf-token-refresh", &inputs);
        assert!(!refresh.contains_key("SF_TOKEN_REFRESH_FUNCTION"));
        // The level and the My Domain reach every function that logs in or logs.
        let tuned = EnvironmentInputs {
            log_level: "DEBUG".into(),
            login_url: Some("https://acme.my.salesforce.com".into()),
            ..sample_environment()
        };
        let tuned_invoke = function_environment("sf-invoke-api", &tuned);
        assert_eq!(
            tuned_invoke.get("LOGGING_LEVEL").map(String::as_str),
            Some("DEBUG")
        );
        assert_eq!(
            tuned_invoke.get("SF_LOGIN_URL").map(String::as_str),
            Some("https://acme.my.salesforce.com")
        );
        let jwt = EnvironmentInputs {
            token_refresh_function: None,
            ..sample_environment()
        };
        assert!(
            !function_environment("sf-invoke-api", &jwt).contains_key("SF_TOKEN_REFRESH_FUNCTION")
        );
        let rotation = function_environment("sf-secret-rotation", &inputs);
        assert!(!rotation.contains_key("SF_CREDENTIALS_SECRET_ARN"));
        let callback = function_environment("sf-oauth-callback", &inputs);
        assert_eq!(
            callback.get("OAUTH_TOKENS_TABLE"),
            Some(&inputs.oauth_table_name)
        );
        // The internet-facing callback gets the OAuth client's secret, never the credentials.
        assert_eq!(
            callback.get("SF_CREDENTIALS_SECRET_ARN"),
            Some(&inputs.oauth_client_secret_arn)
        );
        // A closed list of variables: a new one must be added here on purpose, after checking
        // it is not a secret value.
        let allowed = [
            "LOGGING_LEVEL",
            "SF_API_VERSION",
            "SF_LOGIN_URL",
            "SF_CREDENTIALS_SECRET_ARN",
            "SF_CREDENTIALS_VERSION",
            "SF_SESSION_SECRET_ARN",
            "SF_USERNAME",
            "SF_TOKEN_REFRESH_FUNCTION",
            "OAUTH_TOKENS_TABLE",
            "OAUTH_STATES_TABLE",
            "OAUTH_REDIRECT_URI",
        ];
        for function in FUNCTIONS {
            for (name, value) in function_environment(function, &inputs) {
                assert!(allowed.contains(&name.as_str()), "{function}: {name}");
                if name.ends_with("_ARN") {
                    assert!(value.starts_with("arn:aws:"), "{function}: {name}={value}");
                }
            }
        }
    }

    fn sample_policy_input(crate_name: &str) -> PolicyInput {
        let names = Names::new("feature-x-abc123");
        PolicyInput {
            region: REGION.into(),
            log_group_arn: format!(
                "arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{}",
                names.log_group(crate_name)
            ),
            credentials_secret_arn: format!(
                "arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{}-AbCdEf",
                names.credentials_secret()
            ),
            oauth_client_secret_arn: format!(
                "arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{}-MnOpQr",
                names.oauth_client_secret()
            ),
            session_secret_arn: format!(
                "arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{}-GhIjKl",
                names.session_secret()
            ),
            kms_key_arn: format!(
                "arn:aws:kms:{REGION}:{ACCOUNT}:key/00000000-0000-0000-0000-000000000000"
            ),
            table_arn: format!(
                "arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{}",
                names.oauth_table()
            ),
            states_table_arn: format!(
                "arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{}",
                names.oauth_states_table()
            ),
            keeps_refresh_token: true,
            token_refresh_function_arn: format!(
                "arn:aws:lambda:{REGION}:{ACCOUNT}:function:{}",
                names.function("sf-token-refresh")
            ),
            network: None,
        }
    }

    /// checkov (pinned by `python-checkov.txt`) on the rendered stack: no failed check, and
    /// every check a resource is exempt from carries its reason in the template.
    #[test]
    fn checkov_finds_nothing_in_the_rendered_stack() {
        let yaml = render_stack(&repository_root(), &sample_input()).expect("renders");
        let dir = repository_root()
            .join("target")
            .join("sfstack")
            .join(format!("checkov-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        let path = dir.join("template.yaml");
        std::fs::write(&path, &yaml).expect("writes the template");
        let bin = pytools::ensure_checkov().expect("the pinned checkov");
        let output = std::process::Command::new(bin.join("checkov"))
            .args([
                "--framework",
                "cloudformation",
                "--output",
                "json",
                "--skip-download",
                "-f",
            ])
            .arg(&path)
            .output()
            .expect("checkov runs");
        let _ = std::fs::remove_dir_all(&dir);
        let report: serde_json::Value =
            serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
                panic!(
                    "checkov's JSON: {error}\n{}\n{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                )
            });
        let summary = &report["summary"];
        let failed: Vec<String> = report["results"]["failed_checks"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|check| format!("{} on {}", check["check_id"], check["resource"]))
            .collect();
        assert!(failed.is_empty(), "checkov findings: {failed:#?}");
        assert_eq!(summary["parsing_errors"], 0, "{summary}");
        assert!(
            summary["passed"]
                .as_u64()
                .is_some_and(|passed| passed >= 20),
            "checkov checked the stack: {summary}"
        );
        for skipped in report["results"]["skipped_checks"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let reason = skipped["check_result"]["suppress_comment"]
                .as_str()
                .unwrap_or_default();
            assert!(
                reason.split_whitespace().count() >= 10,
                "{} on {} is skipped without a reason: {reason:?}",
                skipped["check_id"],
                skipped["resource"]
            );
        }
    }

    #[test]
    fn stack_template_renders_and_passes_its_checks() {
        let yaml = render_stack(&repository_root(), &sample_input()).expect("renders");
        insta::assert_snapshot!("stack", yaml);
    }

    #[test]
    fn rendered_template_passes_cfn_lint() {
        let yaml = render_stack(&repository_root(), &sample_input()).expect("renders");
        let bin = sfstack_test_support::ensure_python_tools().expect("pinned tools install");
        let path =
            std::env::temp_dir().join(format!("sfstack-cfn-lint-{}.yaml", std::process::id()));
        std::fs::write(&path, yaml).expect("write template");
        let output = std::process::Command::new(bin.join("cfn-lint"))
            .arg(&path)
            .output()
            .expect("cfn-lint runs");
        let _ = std::fs::remove_file(&path);
        let findings = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "cfn-lint findings:\n{findings}");
    }

    #[test]
    fn every_policy_renders_exact_and_least_privilege() {
        for crate_name in FUNCTIONS {
            let policy = render_policy(
                &repository_root(),
                crate_name,
                &sample_policy_input(crate_name),
            )
            .expect("renders");
            let pretty = serde_json::to_string_pretty(&policy).expect("json");
            insta::assert_snapshot!(format!("policy-{crate_name}"), pretty);
        }
    }

    #[test]
    fn a_vpc_puts_every_function_in_it_and_lets_each_role_make_its_interfaces_there_only() {
        let vpc = crate::config::Vpc {
            subnet_ids: vec!["subnet-0123456789abcdef0".into(), "subnet-01234567".into()],
            security_group_ids: vec!["sg-0123456789abcdef0".into()],
        };
        let input = StackInput {
            vpc: Some(vpc),
            ..sample_input()
        };
        let yaml = render_stack(&repository_root(), &input).expect("renders");
        check_stack(&yaml).expect("checks");
        let template: Yaml = serde_yaml::from_str(&yaml).expect("yaml");
        for crate_name in FUNCTIONS {
            let config = &template["Resources"][logical_id(crate_name)]["Properties"]["VpcConfig"];
            assert_eq!(
                config["SubnetIds"].as_sequence().map(Vec::len),
                Some(2),
                "{crate_name}"
            );
            assert_eq!(
                config["SecurityGroupIds"][0].as_str(),
                Some("sg-0123456789abcdef0")
            );
        }
        let ec2 = |resource: &str| format!("arn:aws:ec2:{REGION}:{ACCOUNT}:{resource}");
        for crate_name in FUNCTIONS {
            let input = PolicyInput {
                network: Some(NetworkInput {
                    subnet_arns: vec![ec2("subnet/subnet-01234567")],
                    security_group_arns: vec![ec2("security-group/sg-01234567")],
                    network_interfaces_arn: ec2("network-interface/*"),
                }),
                ..sample_policy_input(crate_name)
            };
            let policy = render_policy(&repository_root(), crate_name, &input).expect("renders");
            let statement = |sid: &str| {
                policy["Statement"]
                    .as_array()
                    .and_then(|all| all.iter().find(|s| s["Sid"] == sid).cloned())
                    .unwrap_or_else(|| panic!("{crate_name} has {sid}"))
            };
            assert_eq!(
                statement("PlaceNetworkInterfacesInTheVpc")["Resource"],
                serde_json::json!([
                    ec2("subnet/subnet-01234567"),
                    ec2("security-group/sg-01234567")
                ])
            );
            assert_eq!(
                statement("DescribeNetworkInterfaces")["Resource"],
                serde_json::json!(["*"])
            );
            assert_eq!(
                statement("ManageVpcNetworkInterfaces")["Resource"],
                serde_json::json!([ec2("network-interface/*")])
            );
        }
        // "*" is for DescribeNetworkInterfaces alone.
        let broad = serde_json::json!({"Statement": [{"Sid": "X", "Effect": "Allow",
            "Action": ["ec2:CreateNetworkInterface"], "Resource": ["*"]}]});
        assert!(check_policy(&broad).is_err());
    }

    #[test]
    fn only_rotating_credentials_let_the_token_refresh_write_them() {
        let writes_credentials = |keeps_refresh_token: bool| {
            let input = PolicyInput {
                keeps_refresh_token,
                ..sample_policy_input("sf-token-refresh")
            };
            let policy =
                render_policy(&repository_root(), "sf-token-refresh", &input).expect("renders");
            policy["Statement"]
                .as_array()
                .expect("statements")
                .iter()
                .any(|statement| {
                    statement["Action"].to_string().contains("PutSecretValue")
                        && statement["Resource"]
                            .to_string()
                            .contains("salesforce-credentials")
                })
        };
        assert!(writes_credentials(true));
        assert!(!writes_credentials(false));
    }

    /// In the refresh-token flow `sf-invoke-api` cannot read the credentials (the refresh
    /// token): it may only invoke `sf-token-refresh` for a new session. Otherwise it reads them
    /// to log in itself, and may invoke nothing.
    #[test]
    fn only_the_refresh_token_flow_keeps_the_credentials_from_sf_invoke_api() {
        let policy_for = |keeps_refresh_token: bool| {
            let input = PolicyInput {
                keeps_refresh_token,
                ..sample_policy_input("sf-invoke-api")
            };
            render_policy(&repository_root(), "sf-invoke-api", &input)
                .expect("renders")
                .to_string()
        };
        let refresh = policy_for(true);
        assert!(!refresh.contains("salesforce-credentials"), "{refresh}");
        assert!(
            refresh.contains("lambda:InvokeFunction") && refresh.contains("sf-token-refresh"),
            "{refresh}"
        );
        let jwt = policy_for(false);
        assert!(jwt.contains("salesforce-credentials"), "{jwt}");
        assert!(!jwt.contains("lambda:"), "{jwt}");
    }

    #[test]
    fn quotes_in_values_cannot_break_the_yaml() {
        let mut input = sample_input();
        input
            .tags
            .insert("note".into(), "a \"quoted\"\nvalue: with: colons".into());
        let yaml = render_stack(&repository_root(), &input).expect("renders");
        let document: Yaml = serde_yaml::from_str(&yaml).expect("parses");
        let tags = document["Resources"]["OAuthTokensTable"]["Properties"]["Tags"]
            .as_sequence()
            .expect("tags");
        assert!(
            tags.iter()
                .any(|tag| tag["Value"].as_str() == Some("a \"quoted\"\nvalue: with: colons"))
        );
    }

    #[test]
    fn logical_ids_are_pascal_case() {
        assert_eq!(logical_id("sf-invoke-api"), "SfInvokeApi");
        assert_eq!(logical_id("sf-oauth-callback"), "SfOauthCallback");
    }

    #[test]
    fn a_missing_variable_is_an_error() {
        let handlebars = registry(&[]).expect("registry");
        let error = handlebars
            .render_template("Name: \"{{nope}}\"", &serde_json::json!({}))
            .expect_err("strict");
        assert!(error.to_string().contains("nope"), "{error}");
    }

    #[test]
    fn a_template_without_tags_is_refused_for_its_null_blocks() {
        let mut input = sample_input();
        input.tags.clear();
        let error = render_stack(&repository_root(), &input).expect_err("empty Tags blocks");
        let message = format!("{error:#}");
        assert!(
            message.contains("/Resources/OAuthTokensTable/Properties/Tags is empty (null)"),
            "{message}"
        );
    }

    #[test]
    fn structural_checks_catch_dangling_references_and_incomplete_functions() {
        let broken = r#"
Resources:
  Fn:
    Type: AWS::Lambda::Function
    DependsOn: Missing
    Properties:
      FunctionName: f
      Role:
        Fn::GetAtt: [NoRole, Arn]
      LoggingConfig:
        LogGroup:
          Ref: NoGroup
  Rule:
    Type: AWS::Events::Rule
    Properties:
      Targets:
        - Arn: !GetAtt Fn.Arn
"#;
        let error = check_stack(broken).expect_err("broken").to_string();
        for expected in [
            "DependsOn Missing",
            "GetAtt Some(\"NoRole\")",
            "Ref Some(\"NoGroup\")",
            "no Timeout",
            "no explicit log group",
            "short-form tag",
        ] {
            assert!(error.contains(expected), "{expected}: {error}");
        }
    }

    #[test]
    fn policy_checks_refuse_wildcards_and_sloppy_actions() {
        let policy = serde_json::json!({"Statement": [
            {"Sid": "A", "Action": ["secretsmanager:*"], "Resource": ["arn:aws:secretsmanager:us-east-1:1:secret:x"]},
            {"Sid": "B", "Action": ["kms:decrypt"], "Resource": ["*"]},
            {"Sid": "C", "Action": ["logs:PutLogEvents"], "Resource": ["arn:aws:logs:us-east-1:1:log-group:*:*"]},
        ]});
        let error = check_policy(&policy).expect_err("refused").to_string();
        assert!(error.contains("A: action \"secretsmanager:*\""), "{error}");
        assert!(error.contains("B: action \"kms:decrypt\""), "{error}");
        assert!(error.contains("B: resource \"*\""), "{error}");
        assert!(error.contains("C: resource"), "{error}");
    }
}
