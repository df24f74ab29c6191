//! The stack this deploy applies: tags, the template's input from what the infrastructure
//! step made, the rendered template, and the plan without a deploy (`deploy --dry-run` and
//! `render`), which uses the ARNs of what exists and placeholders for what a deploy would
//! create.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{DeployReport, DeployRequest, Steps, step};
use crate::aws_error::AwsContext;
use crate::build::{self, Arch, Artifact};
use crate::cloud::Cloud;
use crate::config::Settings;
use crate::environment::Environment;
use crate::infra::{self, Infra, Tags, partition};
use crate::naming::{FUNCTIONS, Names};
use crate::render::{
    self, EnvironmentInputs, FunctionSpec, Schedule, StackInput, Table, logical_id,
};
use crate::stack;

/// Stands in for the callback's URL until the function (and so its URL) exists.
pub(super) const PENDING_CALLBACK_URL: &str = "https://pending.invalid/oauth-callback";

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

/// The stack's tags: stable across redeploys so a deploy with nothing changed changes nothing.
/// The stack keeps the creation time it was tagged with; the commit is not a stack tag (it
/// would make every commit a stack update; `outputs.json` and the IAM, KMS and Secrets
/// Manager tags record it).
pub(super) async fn stack_tags(
    cloud: &Cloud,
    stack_name: &str,
    tags: &Tags,
) -> BTreeMap<String, String> {
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

pub(super) fn function_arn(cloud: &Cloud, names: &Names, crate_name: &str) -> String {
    cloud.arn(
        "lambda",
        &format!("function:{}", names.function(crate_name)),
    )
}

/// The stack template's input from what the infra steps made.
pub(super) fn stack_input(
    cloud: &Cloud,
    names: &Names,
    settings: &Settings,
    infra: &Infra,
    callback_url: &str,
    tags: &BTreeMap<String, String>,
) -> StackInput {
    let local_org = cloud.local_org();
    let environment = EnvironmentInputs {
        credentials_secret_arn: infra.secrets.credentials_arn.clone(),
        oauth_client_secret_arn: infra.secrets.oauth_client_arn.clone(),
        oauth_client_version: infra.secrets.oauth_client_version.clone(),
        session_secret_arn: infra.secrets.session_arn.clone(),
        oauth_table_name: names.oauth_table(),
        oauth_states_table_name: names.oauth_states_table(),
        oauth_redirect_uri: callback_url.to_string(),
        api_version: settings.salesforce.api_version.clone(),
        // The local org's user, whatever the shared file names for real orgs.
        username: match &local_org {
            Some(org) => org.username().to_string(),
            None => settings.salesforce.username.clone(),
        },
        login_url: match &local_org {
            Some(org) => Some(org.url().to_string()),
            None => settings.salesforce.my_domain.clone(),
        },
        log_level: settings.functions.log_level.clone(),
        token_refresh_function: (settings.salesforce.auth_flow == "refresh_token")
            .then(|| names.function("sf-token-refresh")),
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
            reserved_concurrency: render::reserved_concurrency(
                crate_name,
                settings.functions.callback_concurrency,
            ),
            checkov_skips: render::checkov_skips(crate_name),
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
        states_table: Table {
            name: names.oauth_states_table(),
        },
        vpc: settings.functions.vpc.clone(),
    }
}

/// Renders the template, checks it and writes it to the environment's directory.
pub(super) fn render_template(
    dir: &Path,
    root: &Path,
    input: &StackInput,
) -> anyhow::Result<String> {
    let yaml = render::render_stack(root, input)?;
    render::check_stack(&yaml)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("template.yaml");
    std::fs::write(&path, &yaml).with_context(|| format!("writing {}", path.display()))?;
    Ok(yaml)
}

/// `deploy --dry-run` and `render`: the template this deploy would apply, with the ARNs of
/// what exists and placeholders for what would be created; nothing is created or changed.
pub(super) async fn plan_input(
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
            cloud.arn("kms", "key/created-on-deploy")
        }
        Err(error) => {
            return Err(error).aws_context(|| format!("looking up {}", names.key_alias()));
        }
    };
    // A secret's ARN and its AWSCURRENT version, as a deploy would find them.
    let secret = async |name: String| {
        let secrets = &cloud.clients.secrets;
        {
            match secrets.describe_secret().secret_id(&name).send().await {
                Ok(output) => {
                    let current = output
                        .version_ids_to_stages()
                        .into_iter()
                        .flatten()
                        .find(|(_, stages)| stages.iter().any(|stage| stage == "AWSCURRENT"))
                        .map(|(version, _)| version.clone())
                        .unwrap_or_default();
                    Ok((output.arn().unwrap_or_default().to_string(), current))
                }
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|error| error.is_resource_not_found_exception()) =>
                {
                    Ok((
                        cloud.arn(
                            "secretsmanager",
                            &format!("secret:{name}-created-on-deploy"),
                        ),
                        "created-on-deploy".to_string(),
                    ))
                }
                Err(error) => Err(error).aws_context(|| format!("looking up secret {name}")),
            }
        }
    };
    let oauth_client = secret(names.oauth_client_secret()).await?;
    let infra = Infra {
        key: infra::KeyInfo {
            key_id: String::new(),
            key_arn,
            alias: names.key_alias(),
        },
        secrets: infra::SecretsInfo {
            credentials_arn: secret(names.credentials_secret()).await?.0,
            oauth_client_arn: oauth_client.0,
            oauth_client_version: oauth_client.1,
            session_arn: secret(names.session_secret()).await?.0,
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
        artifacts_bucket: infra::artifacts_bucket(settings, &cloud.account_id, &cloud.region),
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
    let url = super::wiring::existing_function_url(cloud, &names.function("sf-oauth-callback"))
        .await?
        .unwrap_or_else(|| PENDING_CALLBACK_URL.to_string());
    Ok(stack_input(cloud, names, settings, &infra, &url, tags))
}

pub(super) async fn dry_run(
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
    let credentials_of = |crate_name: &str| {
        input
            .functions
            .iter()
            .find(|function| function.function_name == names.function(crate_name))
            .and_then(|function| {
                function
                    .environment
                    .get("SF_CREDENTIALS_SECRET_ARN")
                    .cloned()
            })
            .unwrap_or_default()
    };
    let credentials_arn = credentials_of("sf-invoke-api");
    let oauth_client_arn = credentials_of("sf-oauth-callback");
    let session_arn = input
        .functions
        .iter()
        .find_map(|function| function.environment.get("SF_SESSION_SECRET_ARN").cloned())
        .unwrap_or_default();
    let secrets = infra::SecretsInfo {
        credentials_arn,
        oauth_client_arn,
        oauth_client_version: String::new(),
        session_arn,
    };
    let policy_inputs = infra::policy_inputs(
        &names,
        &cloud.region,
        &cloud.account_id,
        &key,
        &secrets,
        settings.salesforce.auth_flow == "refresh_token",
        settings.functions.vpc.as_ref(),
    );
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
