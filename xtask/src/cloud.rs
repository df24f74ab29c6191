//! Which cloud a command talks to: `local` (the moto server, the Salesforce emulator and the
//! local Lambda service on 127.0.0.1) or `aws` (the standard credential chain). Everything
//! after [`Cloud::connect`] is one code path. This module is the only place that asks which
//! target it is on; the rest asks the [`Cloud`] for a capability instead:
//!
//! - endpoints and credentials ([`Cloud::connect`]);
//! - where invocations go ([`Cloud::invoker`]: Lambda itself, or the local Lambda service);
//! - the Salesforce org an admin would set up by hand ([`Cloud::local_org`]: the emulator's
//!   demo org on local, none on AWS, where the user's own org and credentials are used);
//! - who runs a secret's rotation steps ([`Cloud::rotation_driver`]).

use std::path::{Path, PathBuf};

use anyhow::Context;
use aws_config::Region;
use serde::Serialize;

use crate::aws_error::AwsContext;
use crate::infra::Clients;
use crate::local::{self, LocalCloud};

mod local_org;

pub use local_org::LocalOrg;

/// An AWS service (or `*`, an anonymous Function URL caller) invoking a function, as the
/// function's resource policy must allow it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServiceCaller {
    pub principal: &'static str,
    pub action: &'static str,
    pub context: std::collections::BTreeMap<&'static str, String>,
}

/// How a function's output reaches CloudWatch Logs (see [`Cloud::log_delivery`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogDelivery {
    pub wait: std::time::Duration,
    pub clock_slack: std::time::Duration,
}

/// Who runs the four steps of a secret's rotation once `RotateSecret` has staged a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationDriver {
    /// Secrets Manager invokes the rotation function itself (AWS).
    SecretsManager,
    /// Nobody does: the caller must send the steps to the function (the local cloud's moto
    /// stages the version but cannot run a Lambda).
    Caller,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// The offline cloud on 127.0.0.1 (started when needed).
    Local,
    /// A real AWS account, through the standard credential chain.
    Aws,
}

impl Target {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Aws => "aws",
        }
    }
}

/// The flags every cloud command shares.
#[derive(Debug, Clone, clap::Args)]
pub struct TargetArgs {
    /// `local` (default): the offline cloud on 127.0.0.1; `aws`: a real account.
    #[arg(long, default_value = "local", env = "SFSTACK_TARGET")]
    pub target: Target,
    /// AWS profile (aws target; default: the standard chain).
    #[arg(long)]
    pub profile: Option<String>,
    /// AWS region (aws target; default: from the profile or AWS_REGION).
    #[arg(long)]
    pub region: Option<String>,
}

/// The local cloud's region, account and (moto's fixed) credentials: the gateway knows this
/// key as the deployer, the account's administrator.
pub const LOCAL_REGION: &str = "us-east-1";
pub const LOCAL_ACCOUNT: &str = "123456789012";
const LOCAL_ACCESS_KEY: &str = "testing";

/// On the local target, who the commands act as: the account's administrator (moto's fixed
/// key), or, with `SFSTACK_LOCAL_GITHUB_ROLE` set, a session of that role as a GitHub Actions
/// job would get it: `SFSTACK_LOCAL_GITHUB_SUBJECT` is the job's OIDC token `sub` claim
/// (`repo:OWNER/NAME:ref:refs/heads/BRANCH`, `repo:OWNER/NAME:environment:NAME`, …), and the
/// gateway decides `sts:AssumeRoleWithWebIdentity` with it against the role's trust policy.
/// This is how the deployer roles `bootstrap` makes are proven on the local target.
pub const LOCAL_ROLE_VARIABLE: &str = "SFSTACK_LOCAL_GITHUB_ROLE";
pub const LOCAL_SUBJECT_VARIABLE: &str = "SFSTACK_LOCAL_GITHUB_SUBJECT";

async fn local_credentials(gateway: &str) -> anyhow::Result<aws_sdk_sts::config::Credentials> {
    let Some(role) = std::env::var(LOCAL_ROLE_VARIABLE)
        .ok()
        .filter(|role| !role.is_empty())
    else {
        return Ok(aws_sdk_sts::config::Credentials::new(
            LOCAL_ACCESS_KEY,
            LOCAL_ACCESS_KEY,
            None,
            None,
            "sfstack-local",
        ));
    };
    let subject = std::env::var(LOCAL_SUBJECT_VARIABLE).map_err(|_| {
        anyhow::anyhow!(
            "{LOCAL_ROLE_VARIABLE} is set but {LOCAL_SUBJECT_VARIABLE} is not\nhint: set it to the GitHub OIDC subject the job would have, e.g. repo:OWNER/NAME:ref:refs/heads/BRANCH"
        )
    })?;
    let role_arn = if role.starts_with("arn:") {
        role
    } else {
        format!("arn:aws:iam::{LOCAL_ACCOUNT}:role/{role}")
    };
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Issued {
        access_key_id: String,
        secret_access_key: String,
        session_token: String,
        arn: String,
    }
    let answer = reqwest::Client::new()
        .post(format!("{gateway}/__sfstack/web-identity"))
        .json(&serde_json::json!({
            "role_arn": role_arn,
            "subject": subject,
            "session_name": "sfstack-local-github",
        }))
        .send()
        .await
        .context("asking the local cloud for a GitHub Actions session")?;
    if !answer.status().is_success() {
        let body: serde_json::Value = answer.json().await.unwrap_or_default();
        anyhow::bail!(
            "assuming {role_arn} as GitHub Actions ({subject}) was refused: {}: {}\nhint: run `cargo xtask bootstrap --github-repo OWNER/NAME` first, and check the subject against the role's trust policy",
            body["code"].as_str().unwrap_or("error"),
            body["message"].as_str().unwrap_or("no message")
        );
    }
    let issued: Issued = answer
        .json()
        .await
        .context("reading the local cloud's GitHub Actions session")?;
    eprintln!("local: acting as {} ({subject})", issued.arn);
    Ok(aws_sdk_sts::config::Credentials::new(
        issued.access_key_id,
        issued.secret_access_key,
        Some(issued.session_token),
        None,
        "sfstack-local-github",
    ))
}

/// A connection to one target, with a client for every service the orchestrator uses.
#[derive(Debug, Clone)]
pub struct Cloud {
    pub target: Target,
    pub region: String,
    pub account_id: String,
    /// Who the credentials belong to (an ARN); shown so nobody deploys to the wrong account.
    pub caller: String,
    pub local: Option<LocalCloud>,
    pub clients: Clients,
    pub cloudformation: aws_sdk_cloudformation::Client,
    /// The Lambda control plane (configuration, permissions, Function URLs).
    pub lambda: aws_sdk_lambda::Client,
    /// Where invocations go: Lambda itself, or the local Lambda service.
    pub invoker: aws_sdk_lambda::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// Amazon Connect (on the local target, the gateway's own).
    pub connect: aws_sdk_connect::Client,
    /// EC2, to check `functions.vpc`'s subnets and security groups.
    pub ec2: aws_sdk_ec2::Client,
}

/// Starts the local cloud when the target is local and it is not running (blocking: call it
/// outside the async runtime). `None` for the aws target.
pub fn prepare(root: &Path, args: &TargetArgs) -> anyhow::Result<Option<LocalCloud>> {
    match args.target {
        Target::Local => local::up(root).map(Some),
        Target::Aws => Ok(None),
    }
}

impl Cloud {
    /// Connects to the target; `local` is what [`prepare`] returned.
    pub async fn connect(args: &TargetArgs, local: Option<LocalCloud>) -> anyhow::Result<Self> {
        let (config, invoke_endpoint) = match (&local, args.target) {
            (Some(cloud), Target::Local) => {
                let gateway = cloud.gateway.as_ref().context(
                    "the local cloud has no AWS gateway (it was started by an older sfstack)\nhint: run `cargo xtask local down`, then the command again",
                )?;
                let config = aws_reqwest::defaults()
                    .endpoint_url(&gateway.url)
                    .region(Region::new(LOCAL_REGION))
                    // The SDK's standard retries, with time scaled down as the local cloud
                    // scales AWS's delays (its throttling is a burst of one request).
                    .retry_config(
                        aws_config::retry::RetryConfig::standard()
                            .with_initial_backoff(std::time::Duration::from_millis(20)),
                    )
                    .credentials_provider(local_credentials(&gateway.url).await?)
                    .load()
                    .await;
                let runner = cloud
                    .lambda
                    .as_ref()
                    .context("the local Lambda service is not running\nhint: run `cargo xtask local down`, then the command again")?;
                (config, Some(runner.url.clone()))
            }
            _ => {
                let mut loader = aws_reqwest::defaults();
                if let Some(profile) = &args.profile {
                    loader = loader.profile_name(profile);
                }
                if let Some(region) = &args.region {
                    loader = loader.region(Region::new(region.clone()));
                }
                (loader.load().await, None)
            }
        };
        let region = config
            .region()
            .map(ToString::to_string)
            .context("no AWS region is set\nhint: pass --region, or set AWS_REGION or a region in your AWS profile")?;
        let identity = aws_sdk_sts::Client::new(&config)
            .get_caller_identity()
            .send()
            .await
            .aws_context(|| {
                format!(
                    "reading the AWS account of the {} target\nhint: {}",
                    args.target.as_str(),
                    match args.target {
                        Target::Aws => "check your AWS credentials (aws sts get-caller-identity; aws sso login; --profile)",
                        Target::Local => "run `cargo xtask local down`, then the command again",
                    }
                )
            })?;
        let account_id = identity
            .account()
            .context("STS returned no account id")?
            .to_string();
        let caller = identity.arn().unwrap_or_default().to_string();
        let invoker = match &invoke_endpoint {
            Some(url) => aws_sdk_lambda::Client::from_conf(
                aws_sdk_lambda::config::Builder::from(&config)
                    .endpoint_url(url)
                    .build(),
            ),
            None => aws_sdk_lambda::Client::new(&config),
        };
        let clients = Clients::new(&config, args.target == Target::Local, Some(&account_id));
        Ok(Self {
            target: args.target,
            region,
            account_id,
            caller,
            clients,
            cloudformation: aws_sdk_cloudformation::Client::new(&config),
            lambda: aws_sdk_lambda::Client::new(&config),
            invoker,
            logs: aws_sdk_cloudwatchlogs::Client::new(&config),
            dynamodb: aws_sdk_dynamodb::Client::new(&config),
            connect: aws_sdk_connect::Client::new(&config),
            ec2: aws_sdk_ec2::Client::new(&config),
            local,
        })
    }

    /// `target/sfstack/<target>/<env>/`: the rendered template, policies and outputs.
    pub fn environment_dir(&self, root: &Path, environment: &str) -> PathBuf {
        root.join("target")
            .join("sfstack")
            .join(self.target.as_str())
            .join(environment)
    }

    /// The local target's Salesforce org; `None` on AWS.
    pub fn local_org(&self) -> Option<LocalOrg> {
        self.local
            .as_ref()
            .map(|cloud| LocalOrg::new(cloud.emulator.url.as_str(), cloud.demo_jwt_key.clone()))
    }

    /// `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE` in this cloud.
    pub fn arn(&self, service: &str, resource: &str) -> String {
        format!(
            "arn:{}:{service}:{}:{}:{resource}",
            crate::infra::partition(&self.region),
            self.region,
            self.account_id
        )
    }

    /// The local AWS gateway's decision log; `None` on AWS (CloudTrail is AWS's).
    pub fn decision_log(&self) -> Option<&Path> {
        self.local
            .as_ref()
            .and_then(|cloud| cloud.decision_log.as_deref())
    }

    /// The header that makes an invocation be decided as coming from `callers` (the local
    /// Lambda service asks the AWS gateway, which evaluates the function's resource policy:
    /// the local cloud plays EventBridge, Secrets Manager and the Function URL). `None` on AWS,
    /// where a caller can only invoke as itself.
    pub fn invoked_by(&self, callers: &[ServiceCaller]) -> Option<(&'static str, String)> {
        match self.target {
            Target::Local => serde_json::to_string(callers)
                .ok()
                .map(|callers| (lambda_runner::INVOKED_BY_HEADER, callers)),
            Target::Aws => None,
        }
    }

    /// How a function's output reaches CloudWatch Logs on this target: how long it may take,
    /// and how far the clock that stamps it may be behind this machine's.
    pub fn log_delivery(&self) -> LogDelivery {
        match self.target {
            // The local Lambda service sends lines within a fraction of a second, stamped
            // with this machine's clock.
            Target::Local => LogDelivery {
                wait: std::time::Duration::from_secs(3),
                clock_slack: std::time::Duration::ZERO,
            },
            // Lambda delivers asynchronously, stamped by AWS's clocks.
            Target::Aws => LogDelivery {
                wait: std::time::Duration::from_secs(90),
                clock_slack: std::time::Duration::from_secs(5),
            },
        }
    }

    /// Who runs a rotation's steps on this target.
    pub fn rotation_driver(&self) -> RotationDriver {
        match self.target {
            Target::Aws => RotationDriver::SecretsManager,
            Target::Local => RotationDriver::Caller,
        }
    }
}
