//! `cargo xtask deploy`: one environment's deploy as named steps, each in its own module and
//! each converging, so an interrupted deploy is finished by running it again:
//!
//! 1. `environment`: names and tags;
//! 2. `build`: the zips (`crate::build`, skipped when unchanged);
//! 3. `credentials` ([`credentials`]): where the Salesforce credentials come from, and a login
//!    with them before anything is stored;
//! 4. `infrastructure` (`crate::infra`): roles, key, secrets, policies and artifacts;
//! 5. `stack` ([`plan`] renders, `crate::stack` applies the change set);
//! 6. `permissions` ([`wiring`]): Function URL, resource permissions and rotation through the
//!    SDK on both targets;
//! 7. `outputs`: `outputs.json`.
//!
//! The OAuth callback must know its own URL, which exists only once the function does: the
//! first deploy therefore updates the stack a second time with the URL (later deploys read it
//! first). `--dry-run` stops after the build and previews the change set ([`plan`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

use crate::build::{self, Arch, Artifact};
use crate::cloud::{Cloud, Target};
use crate::config::Settings;
use crate::environment::Environment;
use crate::infra;
use crate::naming::{FUNCTIONS, Names};
use crate::stack;

pub mod credentials;
mod plan;
mod session;
pub mod wiring;

pub use plan::render;
use plan::{
    PENDING_CALLBACK_URL, function_arn, render_template, stack_input, stack_tags, tags_for,
};

/// The settings a deploy uses and the architecture its zips are built for: one and the same.
/// `--arch` overrides `functions.architecture` (which the template's `Architectures` comes
/// from); a zip built for one architecture never goes to a function declared for the other,
/// which could not exec it.
pub fn with_architecture(
    mut settings: Settings,
    arch: Option<Arch>,
) -> anyhow::Result<(Settings, Arch)> {
    let arch = match arch {
        Some(arch) => arch,
        None => settings.functions.architecture.parse()?,
    };
    settings.functions.architecture = arch.as_str().to_string();
    Ok((settings, arch))
}

/// Everything `deploy` needs besides the cloud.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    pub environment: Environment,
    pub settings: Settings,
    pub arch: Arch,
    pub dry_run: bool,
    pub connect_instance_arn: Option<String>,
    /// `--replace-failed-stack`: a stack that must be deleted and created again may take its
    /// users' OAuth tokens with it.
    pub replace_failed_stack: bool,
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
    /// Where a sign-in starts: `<sign_in_url>?link=<signed link>` (see the README's OAuth
    /// section).
    #[serde(default)]
    pub sign_in_url: String,
    pub credentials_secret_arn: String,
    /// The callback's part of the credentials (see `Names::oauth_client_secret`).
    #[serde(default)]
    pub oauth_client_secret_arn: String,
    pub session_secret_arn: String,
    pub kms_key_alias: String,
    pub kms_key_arn: String,
    pub oauth_tokens_table: String,
    #[serde(default)]
    pub oauth_states_table: String,
    pub token_refresh_rule: String,
    pub log_groups: Vec<String>,
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

/// A stack the deploy would delete and create again (a failed first create, a failed delete)
/// takes its tokens table, and every user's Salesforce sign-in, with it: refused while the
/// table holds any, unless the user confirms with `--replace-failed-stack`.
async fn refuse_to_replace_data(
    cloud: &Cloud,
    names: &Names,
    confirmed: bool,
) -> anyhow::Result<()> {
    if confirmed {
        return Ok(());
    }
    let stack = names.stack();
    let Some(status) = stack::status(&cloud.cloudformation, &stack).await? else {
        return Ok(());
    };
    if stack::action_for(Some(&status)) == stack::StackAction::DeleteThenCreate
        && crate::teardown::holds_tokens(cloud, names).await?
    {
        anyhow::bail!(
            "stack {stack} is {status}: a deploy deletes such a stack and creates it again, and its table {} holds users' OAuth tokens, which would be lost; nothing was changed\nhint: read the stack's events (the CloudFormation console) and fix what failed, or pass --replace-failed-stack to replace it, tokens and all (every user then signs in again)",
            names.oauth_table()
        );
    }
    Ok(())
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
    let connect = request
        .connect_instance_arn
        .as_deref()
        .or(settings.connect.instance_arn.as_deref());
    if let Some(arn) = connect {
        // Before anything is made: an instance that is elsewhere, missing, or closed to the
        // caller fails the deploy here, naming the instance.
        let instance = step(
            "environment",
            crate::connect::Instance::parse(arn)
                .and_then(|instance| instance.check_reachable(cloud).map(|()| instance)),
        )?;
        let function_arn = function_arn(cloud, &names, "sf-invoke-api");
        step(
            "environment",
            crate::connect::is_associated(cloud, &instance, &function_arn).await,
        )?;
    } else if settings.connect.sample_flow {
        step(
            "environment",
            Err(anyhow::anyhow!(
                "connect.sample_flow is true but no Amazon Connect instance is set\nhint: set connect.instance_arn (or --connect-instance-arn), or sample_flow = false"
            )),
        )?;
    }
    if let Some(vpc) = &settings.functions.vpc {
        step("environment", crate::network::check(cloud, vpc).await)?;
    }
    // The sample contact flow, rendered and checked before anything is made.
    let sample_flow = match connect {
        Some(_) if settings.connect.sample_flow => Some(step(
            "environment",
            crate::render::render_sample_flow(root, &function_arn(cloud, &names, "sf-invoke-api")),
        )?),
        _ => None,
    };

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
        return plan::dry_run(cloud, root, request, &names, &artifacts, steps).await;
    }

    let credentials = step(
        "credentials",
        credentials::credentials_input(cloud, settings, &names.credentials_secret()).await,
    )?;
    steps.begin(
        "credentials",
        &format!("checking the Salesforce login ({})", credentials.source()),
    );
    let local_org = cloud.local_org();
    let credentials = step(
        "credentials",
        credentials::check_credentials(
            credentials,
            settings,
            local_org.as_ref().map(|org| org.url()),
        )
        .await,
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
        settings.salesforce.auth_flow == "refresh_token",
        settings.functions.vpc.as_ref(),
        &artifacts,
        &infra::artifacts_bucket(settings, &cloud.account_id, &cloud.region),
    ))
    .await;
    let infra = step("infrastructure", ensured)?;
    // A session made with other credentials must not outlive them.
    let credentials_stored = infra_changes
        .iter()
        .any(|change| change.contains(&names.credentials_secret()));
    for change in &infra_changes {
        note!("  {change}");
    }
    drop(credentials);
    fault_point("infrastructure");

    steps.begin("stack", &format!("change set for {}", names.stack()));
    step(
        "stack",
        refuse_to_replace_data(cloud, &names, request.replace_failed_stack).await,
    )?;
    let callback = names.function("sf-oauth-callback");
    let known_url = step(
        "stack",
        wiring::existing_function_url(cloud, &callback).await,
    )?;
    let stack_tags = stack_tags(cloud, &names.stack(), &tags).await;
    let apply = async |callback_url: &str| {
        let input = stack_input(cloud, &names, settings, &infra, callback_url, &stack_tags);
        let yaml = render_template(&dir, root, &input)?;
        // Roles made a moment ago may not be assumable by Lambda yet: the stack then rolls back
        // ("cannot be assumed by Lambda"), and is deployed again (a rolled-back new stack is
        // deleted and created again), with backoff, for a bounded time.
        let stack_name = names.stack();
        infra::retry_while_role_propagates("deploying the stack", || {
            stack::deploy(
                &cloud.cloudformation,
                &stack_name,
                &yaml,
                &stack_tags,
                false,
            )
        })
        .await
    };
    let mut outcome = step(
        "stack",
        apply(known_url.as_deref().unwrap_or(PENDING_CALLBACK_URL)).await,
    )?;

    fault_point("stack");
    steps.begin(
        "permissions",
        "Function URL, resource permissions, rotation, Amazon Connect association",
    );
    let callback_url = step(
        "permissions",
        wiring::ensure_function_url(cloud, &callback).await,
    )?;
    if known_url.as_deref() != Some(callback_url.as_str()) {
        note!("stack: telling the callback its URL ({callback_url})");
        let second = step("stack", apply(&callback_url).await)?;
        outcome.changed |= second.changed;
        outcome.preview.extend(second.preview);
    }
    let mut changes = infra_changes;
    changes.extend(step(
        "permissions",
        wiring::wire(
            cloud,
            &names,
            settings,
            &infra.secrets.credentials_arn,
            &callback_url,
            connect,
            sample_flow.as_deref(),
        )
        .await,
    )?);
    steps.begin(
        "session",
        "the first Salesforce session, by sf-token-refresh",
    );
    if let Some(seeded) = step(
        "session",
        session::seed(cloud, &names, credentials_stored).await,
    )? {
        note!("  {seeded}");
        changes.push(seeded);
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
        sign_in_url: format!("{}/start", callback_url.trim_end_matches('/')),
        callback_url,
        credentials_secret_arn: infra.secrets.credentials_arn.clone(),
        oauth_client_secret_arn: infra.secrets.oauth_client_arn.clone(),
        session_secret_arn: infra.secrets.session_arn.clone(),
        kms_key_alias: infra.key.alias.clone(),
        kms_key_arn: infra.key.key_arn.clone(),
        oauth_tokens_table: names.oauth_table(),
        oauth_states_table: names.oauth_states_table(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_architecture_built_is_the_architecture_declared() {
        let settings = Settings::load(
            &crate::render::repository_root().join(crate::config::FILE_NAME),
            "demo",
        )
        .expect("the repository's settings");
        assert_eq!(settings.functions.architecture, "x86_64");
        let (settings, arch) =
            with_architecture(settings, Some(Arch::Arm64)).expect("an architecture");
        assert_eq!(arch, Arch::Arm64);
        assert_eq!(settings.functions.architecture, "arm64");
        let (settings, arch) = with_architecture(settings, None).expect("an architecture");
        assert_eq!(
            (arch, settings.functions.architecture.as_str()),
            (Arch::Arm64, "arm64")
        );
    }
}
