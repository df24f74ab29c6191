//! End-to-end: the `xtask` binary itself, on the local target (the moto server behind the AWS
//! gateway, the emulator and the local Lambda service running the deployed zips), as a user
//! runs it. Each test has its own local cloud (`SFSTACK_LOCAL_DIR`) and its own environment
//! names. This file is the harness; the tests are in the modules, one area each (`flow`: the
//! whole flow and the drills; `iam`: what the local cloud refuses, and least privilege proven;
//! and so on), and listed in [`tests`].
//!
//! The harness is libtest-mimic's rather than Rust's own (`harness = false` in
//! `xtask/Cargo.toml`) for one setting: how many tests run at once. A test spends part of its
//! time waiting on its local cloud (processes starting, a Python server answering), so one test
//! per core leaves the cores idle: on 2 cores, two at a time left them 28% idle and three 13%
//! (measured with /proc/stat over the same tests). By default this harness runs twice as many
//! tests as there are cores; `--test-threads N` and `RUST_TEST_THREADS` still decide when given.

mod aws_behaviour;
mod aws_target;
mod connect;
mod data;
mod deployer;
mod everyday;
mod flow;
mod iam;
mod lock;
mod vpc;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, bail};
use serde_json::Value;

/// A test whose body blocks (it runs `xtask` commands one after the other).
macro_rules! blocking {
    ($module:ident :: $name:ident) => {
        libtest_mimic::Trial::test(
            concat!(stringify!($module), "::", stringify!($name)),
            || $module::$name().map_err(failure),
        )
    };
}

/// A test that also calls AWS through the SDK: on a runtime of its own, as `#[tokio::test]`
/// would give it.
macro_rules! asynchronous {
    ($module:ident :: $name:ident) => {
        libtest_mimic::Trial::test(
            concat!(stringify!($module), "::", stringify!($name)),
            || {
                tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                    .map_err(|error| failure(error.into()))?
                    .block_on($module::$name())
                    .map_err(failure)
            },
        )
    };
}

fn failure(error: anyhow::Error) -> libtest_mimic::Failed {
    format!("{error:?}").into()
}

/// Every test of this binary.
fn tests() -> Vec<libtest_mimic::Trial> {
    vec![
        blocking!(aws_behaviour::a_deploy_right_after_a_teardown_converges),
        asynchronous!(aws_behaviour::throttling_is_not_taken_for_absence),
        blocking!(aws_behaviour::a_first_deploy_outlasts_iam_propagation),
        asynchronous!(aws_behaviour::the_zips_a_live_stack_uses_never_expire),
        asynchronous!(aws_behaviour::a_rollback_that_cannot_find_its_zip_is_continued_past_it),
        asynchronous!(aws_behaviour::a_bucket_of_another_account_is_never_used),
        asynchronous!(aws_behaviour::log_groups_are_encrypted_with_a_key_the_logs_service_may_use),
        asynchronous!(aws_behaviour::reservations_leave_the_account_100_unreserved),
        blocking!(aws_target::a_profiles_credential_process_is_run),
        asynchronous!(connect::deploy_associates_the_contact_flow_function_with_the_instance_and_teardown_removes_it),
        asynchronous!(data::a_protected_environment_keeps_its_tokens_and_secrets_through_a_teardown),
        asynchronous!(data::a_failed_stack_holding_tokens_is_not_replaced_without_confirmation),
        asynchronous!(data::a_given_rotating_refresh_token_is_checked_without_being_spent),
        asynchronous!(deployer::the_environment_deployer_runs_the_whole_flow_and_needs_every_permission_it_has),
        asynchronous!(deployer::the_deployer_roles_can_do_no_more_than_their_part),
        asynchronous!(everyday::invoke_and_logs_on_the_local_target),
        asynchronous!(flow::whole_flow_on_the_local_target),
        asynchronous!(flow::drills_on_the_local_target),
        blocking!(flow::unknown_environment_names_are_refused_before_anything_runs),
        asynchronous!(iam::iam_is_enforced_on_the_local_target),
        asynchronous!(iam::every_function_policy_statement_is_needed),
        asynchronous!(iam::a_function_role_can_do_nothing_else),
        asynchronous!(iam::the_deployer_is_decided_too),
        asynchronous!(lock::two_deploys_of_one_environment_run_one_after_the_other),
        asynchronous!(vpc::functions_in_a_vpc_need_exactly_the_network_permissions_their_roles_have),
    ]
}

fn main() -> std::process::ExitCode {
    let mut arguments = libtest_mimic::Arguments::from_args();
    if arguments.test_threads.is_none() {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let given = std::env::var("RUST_TEST_THREADS")
            .ok()
            .and_then(|threads| threads.parse().ok());
        arguments.test_threads = Some(given.unwrap_or(2 * cores));
    }
    libtest_mimic::run(&arguments, tests()).exit_code()
}

/// The local cloud's Amazon Connect instance (the gateway's `connect::DEMO_INSTANCE_ID`, in the
/// tests' account and region).
const CONNECT_INSTANCE: &str =
    "arn:aws:connect:us-east-1:123456789012:instance/5ca1ab1e-0000-4000-8000-00000000c0de";
/// Its second instance (`connect::SECOND_INSTANCE_ID`).
const SECOND_CONNECT_INSTANCE: &str =
    "arn:aws:connect:us-east-1:123456789012:instance/5ca1ab1e-0000-4000-8000-00000000c0df";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// One local cloud, stopped when dropped, and everything its commands printed.
struct Local {
    dir: PathBuf,
    transcript: Vec<String>,
    /// Variables every command of this cloud gets (before a run's own).
    variables: Vec<(String, String)>,
}

/// What one command did.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_str(&self.stdout)
            .with_context(|| format!("stdout is not JSON:\n{}\n{}", self.stdout, self.stderr))
    }

    fn ok(self) -> anyhow::Result<Self> {
        if self.code != 0 {
            bail!(
                "exit code {}\nstdout:\n{}\nstderr:\n{}",
                self.code,
                self.stdout,
                self.stderr
            );
        }
        Ok(self)
    }
}

impl Local {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("sfstack-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Self {
            dir,
            transcript: Vec::new(),
            variables: Vec::new(),
        }
    }

    fn run(&mut self, args: &[&str], variables: &[(&str, &str)]) -> anyhow::Result<Run> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
        command
            .args(args)
            .current_dir(root())
            .env("SFSTACK_LOCAL_DIR", &self.dir)
            .env("NO_COLOR", "1");
        for name in [
            "SFSTACK_SF_CREDENTIALS",
            "SFSTACK_SF_CREDENTIALS_FILE",
            "SFSTACK_ENV",
            "SFSTACK_TARGET",
            "SFSTACK_FAULT",
            "SFSTACK_SALESFORCE_AUTH_FLOW",
            "SFSTACK_IAM_ENFORCEMENT",
            // The AWS target's chain reads only what a test gives it.
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_ENDPOINT_URL",
            "AWS_CONFIG_FILE",
            "AWS_SHARED_CREDENTIALS_FILE",
        ] {
            command.env_remove(name);
        }
        for (name, value) in &self.variables {
            command.env(name, value);
        }
        for (name, value) in variables {
            command.env(name, value);
        }
        let Output {
            status,
            stdout,
            stderr,
        } = command
            .output()
            .with_context(|| format!("running xtask {args:?}"))?;
        let run = Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        };
        self.transcript.push(run.stdout.clone());
        self.transcript.push(run.stderr.clone());
        Ok(run)
    }

    fn state(&self) -> anyhow::Result<Value> {
        let text = std::fs::read_to_string(self.dir.join("state.json"))?;
        Ok(serde_json::from_str(&text)?)
    }

    /// The AWS APIs as the deployer sees them: through the local cloud's AWS gateway, as a user
    /// with the AWS CLI would reach AWS.
    async fn sdk(&self) -> anyhow::Result<aws_config::SdkConfig> {
        let gateway = self.state()?["gateway"]["url"]
            .as_str()
            .context("no gateway url")?
            .to_string();
        Ok(aws_reqwest::defaults()
            .endpoint_url(gateway)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sts::config::Credentials::new(
                "testing", "testing", None, None, "e2e",
            ))
            .retry_config(
                aws_config::retry::RetryConfig::standard()
                    .with_initial_backoff(std::time::Duration::from_millis(20)),
            )
            .load()
            .await)
    }

    /// The key the local cloud's demo org trusts for the JWT bearer flow.
    fn demo_key(&self) -> anyhow::Result<sf_emulator::DemoKey> {
        let path = self.state()?["demo_jwt_key"]
            .as_str()
            .context("no demo JWT key")?
            .to_string();
        sf_emulator::DemoKey::load(std::path::Path::new(&path))
    }

    /// The AWS APIs of the moto server itself, behind the gateway: what the account's owner
    /// or AWS Support could do outside any policy.
    async fn moto_sdk(&self) -> anyhow::Result<aws_config::SdkConfig> {
        let moto = self.state()?["moto"]["url"]
            .as_str()
            .context("no moto url")?
            .to_string();
        Ok(aws_reqwest::defaults()
            .endpoint_url(moto)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sts::config::Credentials::new(
                "testing", "testing", None, None, "e2e",
            ))
            .load()
            .await)
    }

    /// A VPC with two subnets and a security group, made in the local cloud's EC2 (the moto
    /// server's, as an account's network is made before sfstack runs), as `functions.vpc`'s
    /// inline table.
    async fn make_network(&mut self) -> anyhow::Result<String> {
        if self.state().is_err() {
            self.run(&["local", "up"], &[])?.ok()?;
        }
        let ec2 = aws_sdk_ec2::Client::new(&self.moto_sdk().await?);
        let vpc = ec2.create_vpc().cidr_block("10.20.0.0/16").send().await?;
        let vpc_id = vpc
            .vpc()
            .and_then(|vpc| vpc.vpc_id())
            .context("a VPC")?
            .to_string();
        let mut subnets = Vec::new();
        for (cidr, zone) in [
            ("10.20.1.0/24", "us-east-1a"),
            ("10.20.2.0/24", "us-east-1b"),
        ] {
            let subnet = ec2
                .create_subnet()
                .vpc_id(&vpc_id)
                .cidr_block(cidr)
                .availability_zone(zone)
                .send()
                .await?;
            subnets.push(
                subnet
                    .subnet()
                    .and_then(|subnet| subnet.subnet_id())
                    .context("a subnet")?
                    .to_string(),
            );
        }
        let group = ec2
            .create_security_group()
            .group_name("sfstack-functions")
            .description("sfstack's functions")
            .vpc_id(&vpc_id)
            .send()
            .await?;
        let group = group.group_id().context("a security group")?;
        Ok(format!(
            r#"{{ subnet_ids = ["{}", "{}"], security_group_ids = ["{group}"] }}"#,
            subnets[0], subnets[1]
        ))
    }

    fn emulator(&self) -> anyhow::Result<String> {
        Ok(self.state()?["emulator"]["url"]
            .as_str()
            .context("no emulator url")?
            .to_string())
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        let _ = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["local", "down"])
            .current_dir(root())
            .env("SFSTACK_LOCAL_DIR", &self.dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Tells the local cloud's gateway something (`/__sfstack/...`); returns its JSON answer.
async fn tell_gateway(local: &Local, path: &str, body: Value) -> anyhow::Result<Value> {
    let gateway = local.state()?["gateway"]["url"]
        .as_str()
        .context("no gateway url")?
        .to_string();
    let answer = reqwest::Client::new()
        .post(format!("{gateway}{path}"))
        .json(&body)
        .send()
        .await?
        .error_for_status()?;
    Ok(answer.json().await.unwrap_or(Value::Null))
}

/// Makes the function's next invocation start a new execution environment, as a deploy of new
/// code would: a changed configuration (a variable naming `round`) does that on Lambda too.
async fn start_cold(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
    round: usize,
) -> anyhow::Result<()> {
    let configuration = lambda
        .get_function_configuration()
        .function_name(function)
        .send()
        .await?;
    let mut variables = configuration
        .environment()
        .and_then(|environment| environment.variables())
        .cloned()
        .unwrap_or_default();
    variables.insert("SFSTACK_TEST_ROUND".to_string(), round.to_string());
    lambda
        .update_function_configuration()
        .function_name(function)
        .environment(
            aws_sdk_lambda::types::Environment::builder()
                .set_variables(Some(variables))
                .build(),
        )
        .send()
        .await?;
    Ok(())
}

/// Creates a change set of `template` on `stack` by hand, waits for it and executes it.
async fn execute_by_hand(
    cloudformation: &aws_sdk_cloudformation::Client,
    stack: &str,
    name: &str,
    template: String,
) -> anyhow::Result<()> {
    cloudformation
        .create_change_set()
        .stack_name(stack)
        .change_set_name(name)
        .change_set_type(aws_sdk_cloudformation::types::ChangeSetType::Update)
        .template_body(template)
        .capabilities(aws_sdk_cloudformation::types::Capability::CapabilityIam)
        .send()
        .await?;
    let mut ready = false;
    for _ in 0..100 {
        let described = cloudformation
            .describe_change_set()
            .stack_name(stack)
            .change_set_name(name)
            .send()
            .await?;
        if described.status().map(|status| status.as_str()) == Some("CREATE_COMPLETE") {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    anyhow::ensure!(ready, "the change set {name} is ready");
    cloudformation
        .execute_change_set()
        .stack_name(stack)
        .change_set_name(name)
        .send()
        .await?;
    Ok(())
}

/// A new refresh token for the demo user, through the emulator's authorization-code flow.
async fn fresh_refresh_token(emulator: &str) -> anyhow::Result<String> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let redirect = http
        .get(format!("{emulator}/services/oauth2/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", sf_emulator::DEMO_CONSUMER_KEY),
            ("redirect_uri", sf_emulator::DEMO_CALLBACK_URL),
            ("state", "e2e"),
        ])
        .send()
        .await?;
    let location = redirect
        .headers()
        .get("location")
        .and_then(|value| value.to_str().ok())
        .context("no redirect from the authorize endpoint")?;
    let code = url::Url::parse(location)?
        .query_pairs()
        .find(|(key, _)| key == "code")
        .map(|(_, value)| value.into_owned())
        .context("no code in the redirect")?;
    let tokens: Value = http
        .post(format!("{emulator}/services/oauth2/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", sf_emulator::DEMO_CONSUMER_KEY),
            ("client_secret", sf_emulator::DEMO_CONSUMER_SECRET),
            ("redirect_uri", sf_emulator::DEMO_CALLBACK_URL),
        ])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    tokens["refresh_token"]
        .as_str()
        .map(str::to_string)
        .context("no refresh token")
}

/// The keys tagged for `env`.
async fn keys_of(sdk: &aws_config::SdkConfig, env: &str) -> anyhow::Result<usize> {
    let kms = aws_sdk_kms::Client::new(sdk);
    let mut ours = 0;
    for entry in kms.list_keys().send().await?.keys() {
        let tags = kms
            .list_resource_tags()
            .key_id(entry.key_id().unwrap_or_default())
            .send()
            .await?;
        if tags
            .tags()
            .iter()
            .any(|tag| tag.tag_key() == "sfstack:env" && tag.tag_value() == env)
        {
            ours += 1;
        }
    }
    Ok(ours)
}

async fn secret_json(config: &aws_config::SdkConfig, name: &str) -> anyhow::Result<Value> {
    let output = aws_sdk_secretsmanager::Client::new(config)
        .get_secret_value()
        .secret_id(name)
        .version_stage("AWSCURRENT")
        .send()
        .await?;
    Ok(serde_json::from_str(
        output.secret_string().unwrap_or("{}"),
    )?)
}

/// Every function's environment variables, as JSON text.
async fn function_environments(
    config: &aws_config::SdkConfig,
    env: &str,
) -> anyhow::Result<Vec<String>> {
    let lambda = aws_sdk_lambda::Client::new(config);
    let mut all = Vec::new();
    for function in [
        "sf-invoke-api",
        "sf-token-refresh",
        "sf-secret-rotation",
        "sf-oauth-callback",
    ] {
        let output = lambda
            .get_function_configuration()
            .function_name(format!("sfstack-{env}-{function}"))
            .send()
            .await?;
        let variables: BTreeMap<String, String> = output
            .environment()
            .and_then(|environment| environment.variables())
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .collect();
        all.push(serde_json::to_string(&variables)?);
    }
    Ok(all)
}

/// Everything an environment could have left in the local cloud, by name or tag.
async fn leftovers(config: &aws_config::SdkConfig, env: &str) -> anyhow::Result<Vec<String>> {
    let prefix = format!("sfstack-{env}");
    let mut left = Vec::new();
    let stacks = aws_sdk_cloudformation::Client::new(config)
        .describe_stacks()
        .send()
        .await?;
    for stack in stacks.stacks() {
        if stack.stack_name() == Some(prefix.as_str())
            && stack.stack_status().map(|status| status.as_str()) != Some("DELETE_COMPLETE")
        {
            left.push(format!("stack {prefix}"));
        }
    }
    let functions = aws_sdk_lambda::Client::new(config)
        .list_functions()
        .send()
        .await?;
    for function in functions.functions() {
        if function
            .function_name()
            .is_some_and(|name| name.starts_with(&prefix))
        {
            left.push(format!("function {:?}", function.function_name()));
        }
    }
    let roles = aws_sdk_iam::Client::new(config).list_roles().send().await?;
    for role in roles.roles() {
        if role.role_name().starts_with(&prefix) {
            left.push(format!("role {}", role.role_name()));
        }
    }
    let secrets = aws_sdk_secretsmanager::Client::new(config)
        .list_secrets()
        .send()
        .await?;
    for secret in secrets.secret_list() {
        let tagged = secret
            .tags()
            .iter()
            .any(|tag| tag.key() == Some("sfstack:env") && tag.value() == Some(env));
        if tagged || secret.name().is_some_and(|name| name.starts_with(&prefix)) {
            left.push(format!("secret {:?}", secret.name()));
        }
    }
    let kms = aws_sdk_kms::Client::new(config);
    for alias in kms.list_aliases().send().await?.aliases() {
        if alias.alias_name() == Some(format!("alias/{prefix}").as_str()) {
            left.push(format!("alias {prefix}"));
        }
    }
    for key in kms.list_keys().send().await?.keys() {
        let Some(id) = key.key_id() else { continue };
        let state = kms.describe_key().key_id(id).send().await?;
        let enabled = state
            .key_metadata()
            .and_then(|metadata| metadata.key_state())
            .is_some_and(|state| state.as_str() != "PendingDeletion");
        let tags = kms.list_resource_tags().key_id(id).send().await?;
        let tagged = tags
            .tags()
            .iter()
            .any(|tag| tag.tag_key() == "sfstack:env" && tag.tag_value() == env);
        if tagged && enabled {
            left.push(format!("key {id} (not scheduled for deletion)"));
        }
    }
    let tables = aws_sdk_dynamodb::Client::new(config)
        .list_tables()
        .send()
        .await?;
    for table in tables.table_names() {
        if table.starts_with(&prefix) {
            left.push(format!("table {table}"));
        }
    }
    let groups = aws_sdk_cloudwatchlogs::Client::new(config)
        .describe_log_groups()
        .log_group_name_prefix(format!("/aws/lambda/{prefix}"))
        .send()
        .await?;
    for group in groups.log_groups() {
        left.push(format!("log group {:?}", group.log_group_name()));
    }
    Ok(left)
}

async fn stack_tags(
    config: &aws_config::SdkConfig,
    env: &str,
) -> anyhow::Result<BTreeMap<String, String>> {
    let stacks = aws_sdk_cloudformation::Client::new(config)
        .describe_stacks()
        .stack_name(format!("sfstack-{env}"))
        .send()
        .await?;
    Ok(stacks
        .stacks()
        .first()
        .context("no stack")?
        .tags()
        .iter()
        .filter_map(|tag| Some((tag.key()?.to_string(), tag.value()?.to_string())))
        .collect())
}

fn step_results(report: &Value) -> BTreeMap<String, String> {
    report["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|step| {
            (
                step["name"].as_str().unwrap_or_default().to_string(),
                step["result"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The step of a smoke report, with its result and detail.
fn step<'a>(report: &'a Value, name: &str) -> (&'a str, &'a str) {
    report["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|step| step["name"] == name)
        .map_or(("missing", ""), |step| {
            (
                step["result"].as_str().unwrap_or_default(),
                step["detail"].as_str().unwrap_or_default(),
            )
        })
}
