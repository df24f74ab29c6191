//! `cargo xtask bootstrap --github-repo OWNER/NAME`: what an account needs once before GitHub
//! Actions can deploy to it, made idempotently:
//!
//! - GitHub's OpenID Connect provider (`token.actions.githubusercontent.com`, audience
//!   `sts.amazonaws.com`), if the account has none;
//! - the **environment deployer** role ([`ENVIRONMENT_DEPLOYER`]): deploys, smoke-tests, tears
//!   down and prunes every environment but the protected ones; its trust policy admits the
//!   repository's branches and pull requests;
//! - the **protected deployer** role ([`PROTECTED_DEPLOYER`]): deploys the protected
//!   environments only; its trust policy admits only the default branch and the GitHub
//!   environment that guards them (required reviewers are set on GitHub).
//!
//! Both policies are rendered from `policies/deployer.json.hbs` (exact actions, resources
//! scoped to `sfstack-<env>` names, keys by their `sfstack:env` tag, `iam:PassRole` of function
//! roles to Lambda only). The environment deployer's also denies the protected environments'
//! resources outright. On the local target the policies are proven: `deploy`, `smoke-test`,
//! `envs`, `prune` and `teardown` run as these roles through the AWS gateway
//! ([`crate::cloud::LOCAL_ROLE_VARIABLE`]), which also authorizes what CloudFormation does on
//! the deployer's behalf.

use std::path::Path;

use serde::Serialize;
use serde_json::Value as Json;

use crate::aws_error::AwsContext;
use crate::cloud::Cloud;
use crate::config::Settings;
use crate::naming::Names;

/// The role GitHub Actions deploys ordinary (branch) environments with.
pub const ENVIRONMENT_DEPLOYER: &str = "sfstack-deployer";
/// The role GitHub Actions deploys protected environments with.
pub const PROTECTED_DEPLOYER: &str = "sfstack-deployer-protected";
/// GitHub Actions' OIDC issuer, and the audience its tokens carry for AWS.
pub const GITHUB_OIDC_HOST: &str = "token.actions.githubusercontent.com";
const AUDIENCE: &str = "sts.amazonaws.com";
const INLINE_POLICY: &str = "sfstack-deployer";

/// Whether `caller` may deploy protected environment `environment` on AWS (`--protected` was
/// given): anyone but the environment deployer, whose policy would refuse it half-way, so it
/// is refused before anything is touched.
pub fn may_deploy_protected(environment: &str, caller: &str) -> anyhow::Result<()> {
    if caller.contains(&format!(":assumed-role/{ENVIRONMENT_DEPLOYER}/")) {
        anyhow::bail!(
            "{environment} is a protected environment, which the environment deployer ({caller}) never deploys; nothing was deployed\nhint: protected environments are deployed from the default branch through the reviewed GitHub environment, as {PROTECTED_DEPLOYER}"
        );
    }
    Ok(())
}

/// What `bootstrap` is asked for.
#[derive(Debug, Clone)]
pub struct Request {
    /// `OWNER/NAME`.
    pub repository: String,
    /// The branch protected environments are deployed from.
    pub default_branch: String,
    /// The GitHub environment (with required reviewers) that guards protected deploys.
    pub github_environment: String,
}

/// One role `bootstrap` makes.
#[derive(Debug, Clone, Serialize)]
pub struct RolePlan {
    pub name: String,
    pub arn: String,
    pub description: String,
    pub trust_policy: Json,
    pub policy: Json,
}

/// Everything `bootstrap` makes, shown whole by `--print`.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub oidc_provider_arn: String,
    pub roles: Vec<RolePlan>,
}

/// What the deployer policy template is rendered with.
#[derive(Debug, Clone, Serialize)]
pub struct DeployerPolicyInput {
    pub partition: String,
    pub region: String,
    pub account_id: String,
    pub artifacts_bucket: String,
    /// Environment name patterns the role may manage (`*`, or the protected names).
    pub scopes: Vec<String>,
    /// Protected environments the role must never touch (empty for the protected deployer).
    pub protected: Vec<String>,
    /// Their resources' ARNs, denied outright.
    pub protected_resources: Vec<String>,
    /// The Amazon Connect instances the contact-flow function is associated with
    /// (`connect.instance_arn` of any environment): the only ones the role may associate
    /// functions with.
    pub connect_instances: Vec<String>,
    /// Those whose sample contact flow the role manages (`connect.sample_flow`).
    pub connect_sample_flows: Vec<String>,
    /// `functions.vpc` is set: Lambda checks the subnets and security groups with the
    /// deployer's permissions, and CloudFormation waits for a deleted function's network
    /// interfaces (the function schema's handler permissions).
    pub vpc: bool,
}

/// The protected environments: `main`, `prod`, `production` and sfstack.toml's
/// `environments.protected`.
pub fn protected_environments(settings: &Settings) -> Vec<String> {
    let mut names: Vec<String> = crate::naming::PROTECTED
        .iter()
        .map(|name| (*name).to_string())
        .chain(settings.environments.protected.iter().cloned())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Every resource of environment `env`, by ARN patterns that name its resources and no
/// other environment's: names are `sfstack-<env>-sf-<function>`, `sfstack-<env>-oauth-<table>`
/// and so on, and an environment derived from a branch always ends in a hash, so only a branch
/// named like `main-sf-…` could share a prefix (it is denied with `main`, never the reverse).
/// The artifacts bucket's lock object of the environment is included.
pub fn environment_resources(
    env: &str,
    partition: &str,
    region: &str,
    account: &str,
    bucket: &str,
) -> Vec<String> {
    let names = Names::new(env);
    let stack = names.stack();
    vec![
        format!("arn:{partition}:cloudformation:{region}:{account}:stack/{stack}/*"),
        format!("arn:{partition}:secretsmanager:{region}:{account}:secret:{stack}/*"),
        format!(
            "arn:{partition}:kms:{region}:{account}:{}",
            names.key_alias()
        ),
        format!("arn:{partition}:dynamodb:{region}:{account}:table/{stack}-oauth-*"),
        format!(
            "arn:{partition}:events:{region}:{account}:rule/{}",
            names.refresh_rule()
        ),
        format!("arn:{partition}:lambda:{region}:{account}:function:{stack}-sf-*"),
        format!("arn:{partition}:iam::{account}:role/{stack}-sf-*"),
        format!("arn:{partition}:logs:{region}:{account}:log-group:/aws/lambda/{stack}-sf-*"),
        format!("arn:{partition}:s3:::{bucket}/{}", crate::lock::key(env)),
    ]
}

fn trust_policy(provider_arn: &str, subjects: &[String], like: bool) -> Json {
    let operator = if like { "StringLike" } else { "StringEquals" };
    let mut condition = serde_json::Map::new();
    condition.insert(
        "StringEquals".to_string(),
        serde_json::json!({ format!("{GITHUB_OIDC_HOST}:aud"): AUDIENCE }),
    );
    let subject = serde_json::json!({ format!("{GITHUB_OIDC_HOST}:sub"): subjects });
    match condition.get_mut(operator) {
        Some(Json::Object(existing)) => {
            if let Json::Object(more) = subject {
                existing.extend(more);
            }
        }
        _ => {
            condition.insert(operator.to_string(), subject);
        }
    }
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "GitHubActionsOfThisRepository",
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": condition,
        }]
    })
}

/// Checks `OWNER/NAME`.
pub fn validate_repository(repository: &str) -> anyhow::Result<()> {
    let valid = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    match repository.split_once('/') {
        Some((owner, name)) if valid(owner) && valid(name) => Ok(()),
        _ => anyhow::bail!(
            "--github-repo {repository:?} is not OWNER/NAME\nhint: e.g. --github-repo acme/connect-salesforce"
        ),
    }
}

/// The provider and the two roles, with their rendered policies.
pub fn plan(
    root: &Path,
    request: &Request,
    settings: &Settings,
    every_environment: &[Settings],
    region: &str,
    account: &str,
) -> anyhow::Result<Plan> {
    let mut connect_instances: Vec<String> = every_environment
        .iter()
        .filter_map(|settings| settings.connect.instance_arn.clone())
        .collect();
    connect_instances.sort();
    connect_instances.dedup();
    let mut connect_sample_flows: Vec<String> = every_environment
        .iter()
        .filter(|settings| settings.connect.sample_flow)
        .filter_map(|settings| settings.connect.instance_arn.clone())
        .collect();
    connect_sample_flows.sort();
    connect_sample_flows.dedup();
    let vpc = every_environment
        .iter()
        .any(|settings| settings.functions.vpc.is_some());
    validate_repository(&request.repository)?;
    let partition = crate::infra::partition(region);
    let provider_arn = format!("arn:{partition}:iam::{account}:oidc-provider/{GITHUB_OIDC_HOST}");
    let bucket = crate::infra::artifacts_bucket(settings, account, region);
    let protected = protected_environments(settings);
    let input = |scopes: Vec<String>, denied: Vec<String>| DeployerPolicyInput {
        partition: partition.to_string(),
        region: region.to_string(),
        account_id: account.to_string(),
        artifacts_bucket: bucket.clone(),
        scopes,
        protected_resources: denied
            .iter()
            .flat_map(|env| environment_resources(env, partition, region, account, &bucket))
            .collect(),
        protected: denied,
        connect_instances: connect_instances.clone(),
        connect_sample_flows: connect_sample_flows.clone(),
        vpc,
    };
    let repository = &request.repository;
    let role_arn = |name: &str| format!("arn:{partition}:iam::{account}:role/{name}");
    Ok(Plan {
        roles: vec![
            RolePlan {
                name: ENVIRONMENT_DEPLOYER.to_string(),
                arn: role_arn(ENVIRONMENT_DEPLOYER),
                description: format!(
                    "sfstack: GitHub Actions of {repository} deploy, test and tear down branch environments (never protected ones)"
                ),
                trust_policy: trust_policy(
                    &provider_arn,
                    &[
                        format!("repo:{repository}:ref:refs/heads/*"),
                        format!("repo:{repository}:pull_request"),
                    ],
                    true,
                ),
                policy: crate::render::render_deployer_policy(
                    root,
                    &input(vec!["*".to_string()], protected.clone()),
                )?,
            },
            RolePlan {
                name: PROTECTED_DEPLOYER.to_string(),
                arn: role_arn(PROTECTED_DEPLOYER),
                description: format!(
                    "sfstack: GitHub Actions of {repository} deploy protected environments from {} through the {} environment",
                    request.default_branch, request.github_environment
                ),
                trust_policy: trust_policy(
                    &provider_arn,
                    &[
                        format!(
                            "repo:{repository}:ref:refs/heads/{}",
                            request.default_branch
                        ),
                        format!(
                            "repo:{repository}:environment:{}",
                            request.github_environment
                        ),
                    ],
                    false,
                ),
                policy: crate::render::render_deployer_policy(
                    root,
                    &input(protected.clone(), Vec::new()),
                )?,
            },
        ],
        oidc_provider_arn: provider_arn,
    })
}

/// What `bootstrap` did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub changes: Vec<String>,
    pub plan: Plan,
}

/// Makes the provider and the roles match the plan.
pub async fn apply(cloud: &Cloud, plan: Plan) -> anyhow::Result<Report> {
    let iam = &cloud.clients.iam;
    let mut changes = Vec::new();
    let providers = iam
        .list_open_id_connect_providers()
        .send()
        .await
        .aws_context(|| "listing the account's OIDC providers".to_string())?;
    let exists = providers
        .open_id_connect_provider_list()
        .iter()
        .any(|provider| provider.arn() == Some(plan.oidc_provider_arn.as_str()));
    if exists {
        let provider = iam
            .get_open_id_connect_provider()
            .open_id_connect_provider_arn(&plan.oidc_provider_arn)
            .send()
            .await
            .aws_context(|| format!("reading {}", plan.oidc_provider_arn))?;
        if !provider.client_id_list().iter().any(|id| id == AUDIENCE) {
            iam.add_client_id_to_open_id_connect_provider()
                .open_id_connect_provider_arn(&plan.oidc_provider_arn)
                .client_id(AUDIENCE)
                .send()
                .await
                .aws_context(|| format!("adding {AUDIENCE} to {}", plan.oidc_provider_arn))?;
            changes.push(format!(
                "added audience {AUDIENCE} to the GitHub OIDC provider"
            ));
        }
    } else {
        iam.create_open_id_connect_provider()
            .url(format!("https://{GITHUB_OIDC_HOST}"))
            .client_id_list(AUDIENCE)
            .send()
            .await
            .aws_context(|| "creating GitHub's OIDC provider".to_string())?;
        changes.push(format!(
            "created the OIDC provider {}",
            plan.oidc_provider_arn
        ));
    }
    for role in &plan.roles {
        let trust = role.trust_policy.to_string();
        match iam.get_role().role_name(&role.name).send().await {
            Ok(found) => {
                let current = found
                    .role()
                    .and_then(|role| role.assume_role_policy_document())
                    .and_then(crate::infra::decode_policy_document);
                if current.as_ref() != Some(&role.trust_policy) {
                    iam.update_assume_role_policy()
                        .role_name(&role.name)
                        .policy_document(&trust)
                        .send()
                        .await
                        .aws_context(|| format!("updating the trust policy of {}", role.name))?;
                    changes.push(format!("updated the trust policy of role {}", role.name));
                }
            }
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|error| error.is_no_such_entity_exception()) =>
            {
                iam.create_role()
                    .role_name(&role.name)
                    .description(&role.description)
                    .assume_role_policy_document(&trust)
                    .max_session_duration(3600)
                    .send()
                    .await
                    .aws_context(|| format!("creating role {}", role.name))?;
                changes.push(format!("created role {}", role.name));
            }
            Err(error) => {
                return Err(error).aws_context(|| format!("reading role {}", role.name));
            }
        }
        let current = match iam
            .get_role_policy()
            .role_name(&role.name)
            .policy_name(INLINE_POLICY)
            .send()
            .await
        {
            Ok(found) => crate::infra::decode_policy_document(found.policy_document()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|error| error.is_no_such_entity_exception()) =>
            {
                None
            }
            Err(error) => {
                return Err(error).aws_context(|| format!("reading the policy of {}", role.name));
            }
        };
        if current.as_ref() != Some(&role.policy) {
            iam.put_role_policy()
                .role_name(&role.name)
                .policy_name(INLINE_POLICY)
                .policy_document(role.policy.to_string())
                .send()
                .await
                .aws_context(|| format!("writing the policy of {}", role.name))?;
            changes.push(format!("wrote the policy of role {}", role.name));
        }
    }
    Ok(Report { changes, plan })
}

/// Removes the two roles (the OIDC provider stays: other tools of the account may use it).
pub async fn delete(cloud: &Cloud, plan: Plan) -> anyhow::Result<Report> {
    let iam = &cloud.clients.iam;
    let mut changes = Vec::new();
    for role in &plan.roles {
        match iam
            .delete_role_policy()
            .role_name(&role.name)
            .policy_name(INLINE_POLICY)
            .send()
            .await
        {
            Ok(_) => {}
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|error| error.is_no_such_entity_exception()) => {}
            Err(error) => {
                return Err(error).aws_context(|| format!("deleting the policy of {}", role.name));
            }
        }
        match iam.delete_role().role_name(&role.name).send().await {
            Ok(_) => changes.push(format!("deleted role {}", role.name)),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|error| error.is_no_such_entity_exception()) => {}
            Err(error) => return Err(error).aws_context(|| format!("deleting role {}", role.name)),
        }
    }
    Ok(Report { changes, plan })
}

/// Prints a report (or the plan alone, for `--print`).
pub fn print(report: &Report, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    for change in &report.changes {
        println!("  {change}");
    }
    println!("OIDC provider   {}", report.plan.oidc_provider_arn);
    for role in &report.plan.roles {
        println!("role            {}", role.arn);
        println!("                {}", role.description);
    }
    Ok(())
}

/// `--print`: everything, policies included, without creating anything.
pub fn print_plan(plan: &Plan) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(plan)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_deployer_never_deploys_a_protected_environment() {
        let protected = "arn:aws:sts::1:assumed-role/sfstack-deployer-protected/GitHubActions";
        let branches = "arn:aws:sts::1:assumed-role/sfstack-deployer/GitHubActions";
        let admin = "arn:aws:iam::1:user/alice";
        assert!(may_deploy_protected("prod", protected).is_ok());
        assert!(may_deploy_protected("prod", admin).is_ok());
        let refused = may_deploy_protected("prod", branches)
            .expect_err("refused")
            .to_string();
        assert!(refused.contains("never deploys"), "{refused}");
    }

    #[test]
    fn a_repository_is_owner_slash_name() {
        assert!(validate_repository("acme/connect-sf").is_ok());
        for bad in ["acme", "acme/", "/x", "a/b/c", "a b/c", "acme/x*"] {
            assert!(validate_repository(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_protected_environment_is_denied_by_its_own_names_only() {
        let arns = environment_resources("main", "aws", "us-east-1", "1", "bucket");
        let function = "arn:aws:lambda:us-east-1:1:function:sfstack-main-sf-invoke-api";
        let other = "arn:aws:lambda:us-east-1:1:function:sfstack-main-x-1a2b3c-sf-invoke-api";
        let matches = |arn: &str| {
            arns.iter().any(|pattern| match pattern.split_once('*') {
                Some((head, tail)) => arn.starts_with(head) && arn.ends_with(tail),
                None => arn == pattern,
            })
        };
        assert!(matches(function));
        assert!(!matches(other), "a branch environment main-x is not main");
        assert!(arns.contains(&"arn:aws:s3:::bucket/locks/main.json".to_string()));
    }
}
