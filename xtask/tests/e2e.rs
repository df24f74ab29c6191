//! End-to-end: the `xtask` binary itself, on the local target (the moto server, the emulator
//! and the local Lambda service running the deployed zips), as a user runs it. Each test has
//! its own local cloud (`SFSTACK_LOCAL_DIR`) and its own environment names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, bail};
use serde_json::Value;

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
        ] {
            command.env_remove(name);
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
        Ok(aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(gateway)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sts::config::Credentials::new(
                "testing", "testing", None, None, "e2e",
            ))
            .load()
            .await)
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

/// The whole flow on the local target: two environments side by side (JWT and refresh-token
/// credentials), a no-op redeploy, smoke tests (also with every Salesforce session expired),
/// one environment torn down without touching the other, nothing left after both are gone,
/// and no credential value in anything the tool wrote.
#[tokio::test(flavor = "multi_thread")]
async fn whole_flow_on_the_local_target() -> anyhow::Result<()> {
    let mut local = Local::new("flow");
    let (a, b) = ("e2e-flow-a", "e2e-flow-b");

    let first = local
        .run(&["deploy", "--env", a, "--output", "json"], &[])?
        .ok()?
        .json()?;
    assert_eq!(first["changed"], true, "{first}");
    assert_eq!(first["outputs"]["environment"], a);
    let outputs_file = PathBuf::from(first["outputs_file"].as_str().context("outputs file")?);
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&outputs_file)?)?;
    assert_eq!(
        written, first["outputs"],
        "outputs.json holds the printed outputs"
    );
    assert!(
        written["callback_url"]
            .as_str()
            .is_some_and(|url| url.starts_with("https://")),
        "{written}"
    );
    local
        .run(
            &["deploy", "--env", b],
            &[("SFSTACK_SALESFORCE_AUTH_FLOW", "refresh_token")],
        )?
        .ok()?;
    let config = local.sdk().await?;
    let tags_before = stack_tags(&config, a).await?;
    assert_eq!(tags_before.get("sfstack:env").map(String::as_str), Some(a));
    assert!(
        tags_before.contains_key("sfstack:created-at"),
        "{tags_before:?}"
    );
    assert!(
        !tags_before.contains_key("sfstack:commit"),
        "a commit tag would make every commit a stack update"
    );

    // Nothing changed: the stack, permissions and rotation are all left alone.
    let again = local.run(&["deploy", "--env", a], &[])?.ok()?;
    assert!(
        again.stdout.contains(&format!("{a}: no changes")),
        "{}",
        again.stdout
    );
    let again = local
        .run(&["deploy", "--env", a, "--output", "json"], &[])?
        .ok()?
        .json()?;
    assert_eq!(again["changed"], false, "{again}");
    assert_eq!(
        stack_tags(&config, a).await?,
        tags_before,
        "a redeploy keeps the stack's tags (and so its creation time)"
    );

    let junit = local.dir.join("smoke.xml");
    let smoke = local
        .run(
            &[
                "smoke-test",
                "--env",
                a,
                "--output",
                "json",
                "--junit",
                junit.to_str().context("path")?,
            ],
            &[],
        )?
        .ok()?
        .json()?;
    assert_eq!(smoke["passed"], true, "{smoke}");
    let results = step_results(&smoke);
    for step in [
        "phoneLookup",
        "createCase",
        "closeCase",
        "queryCase",
        "deleteCase",
        "tokenRefresh",
        "oauthCallback",
    ] {
        assert_eq!(
            results.get(step).map(String::as_str),
            Some("passed"),
            "{step}: {smoke}"
        );
    }
    // JWT credentials are not rotated by a Lambda: the step says so instead of pretending.
    assert_eq!(results.get("rotation").map(String::as_str), Some("skipped"));
    let xml = std::fs::read_to_string(&junit)?;
    assert_eq!(xml.matches("<testcase ").count(), results.len(), "{xml}");
    assert!(xml.contains("failures=\"0\""), "{xml}");

    let smoke_b = local
        .run(&["smoke-test", "--env", b, "--output", "json"], &[])?
        .ok()?
        .json()?;
    assert_eq!(
        step_results(&smoke_b).get("rotation").map(String::as_str),
        Some("passed"),
        "{smoke_b}"
    );

    // Drill: every Salesforce session expires; the functions log in again and carry on.
    let http = reqwest::Client::new();
    let expired = http
        .post(format!("{}/__emulator/sessions/expire", local.emulator()?))
        .send()
        .await?;
    assert!(expired.status().is_success());
    let after_expiry = local
        .run(&["smoke-test", "--env", a, "--output", "json"], &[])?
        .ok()?
        .json()?;
    assert_eq!(after_expiry["passed"], true, "{after_expiry}");

    // Collect the values that must never appear anywhere the tool wrote.
    let mut secrets: Vec<String> = Vec::new();
    for env in [a, b] {
        let credentials =
            secret_json(&config, &format!("sfstack-{env}/salesforce-credentials")).await?;
        for key in ["StateSigningKey", "RefreshToken", "ConsumerSecret"] {
            if let Some(value) = credentials[key].as_str() {
                secrets.push(value.to_string());
            }
        }
        let session = secret_json(&config, &format!("sfstack-{env}/salesforce-session")).await?;
        secrets.push(
            session["access_token"]
                .as_str()
                .context("the session secret has a token")?
                .to_string(),
        );
    }
    // A line from the middle of the demo JWT key.
    let key_line = sf_emulator::DEMO_PRIVATE_KEY
        .lines()
        .nth(5)
        .context("key line")?
        .to_string();
    secrets.push(key_line);
    assert!(secrets.len() >= 8, "{}", secrets.len());
    let mut written = Vec::new();
    for env in [a, b] {
        written.extend(function_environments(&config, env).await?);
        let dir = root().join("target/sfstack/local").join(env);
        for entry in std::fs::read_dir(&dir)? {
            written.push(std::fs::read_to_string(entry?.path())?);
        }
    }
    for entry in std::fs::read_dir(local.dir.join("lambda/logs"))? {
        written.push(std::fs::read_to_string(entry?.path())?);
    }
    written.push(std::fs::read_to_string(local.dir.join("lambda.log"))?);

    // Tear one down: the other is untouched and still passes.
    let removed = local
        .run(&["teardown", "--env", b, "--output", "json"], &[])?
        .ok()?
        .json()?;
    assert_eq!(removed["stack_deleted"], true, "{removed}");
    assert_eq!(
        removed["removed"]["roles"].as_array().map(Vec::len),
        Some(4)
    );
    assert_eq!(leftovers(&config, b).await?, Vec::<String>::new());
    let still = local
        .run(&["smoke-test", "--env", a, "--output", "json"], &[])?
        .ok()?
        .json()?;
    assert_eq!(still["passed"], true, "{still}");
    let listed = local
        .run(&["envs", "--output", "json"], &[])?
        .ok()?
        .json()?;
    let names: Vec<&str> = listed
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|env| env["name"].as_str())
        .collect();
    assert_eq!(names, [a], "{listed}");

    local.run(&["teardown", "--env", a], &[])?.ok()?;
    assert_eq!(leftovers(&config, a).await?, Vec::<String>::new());
    let twice = local.run(&["teardown", "--env", a], &[])?.ok()?;
    assert!(
        twice.stdout.contains("nothing to remove"),
        "{}",
        twice.stdout
    );

    written.extend(local.transcript.iter().cloned());
    for value in &secrets {
        for text in &written {
            assert!(
                !text.contains(value.as_str()),
                "a credential value leaked into the tool's output"
            );
        }
    }
    Ok(())
}

/// Drills: a wrong credential is refused by name and changes nothing; a deploy killed after the
/// IAM step, re-run, converges; a half-created environment tears down; a protected environment
/// needs --force.
#[tokio::test(flavor = "multi_thread")]
async fn drills_on_the_local_target() -> anyhow::Result<()> {
    let mut local = Local::new("drills");
    let env = "e2e-drill";

    // A dry run previews the whole stack and creates nothing.
    let preview = local
        .run(
            &["deploy", "--env", env, "--dry-run", "--output", "json"],
            &[],
        )?
        .ok()?
        .json()?;
    assert_eq!(preview["dry_run"], true);
    let lines: Vec<&str> = preview["preview"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        lines.contains(&"Add SfInvokeApi (AWS::Lambda::Function)"),
        "{preview}"
    );
    assert!(
        lines.contains(&"Add OAuthTokensTable (AWS::DynamoDB::Table)"),
        "{preview}"
    );
    let config = local.sdk().await?;
    assert_eq!(leftovers(&config, env).await?, Vec::<String>::new());

    // Killed right after the IAM, key, secrets and artifacts step: no stack yet.
    let killed = local.run(
        &["deploy", "--env", env],
        &[("SFSTACK_FAULT", "after:infrastructure")],
    )?;
    assert_eq!(killed.code, 137, "{}", killed.stderr);
    let listed = local
        .run(&["envs", "--output", "json"], &[])?
        .ok()?
        .json()?;
    assert_eq!(listed[0]["name"], env, "{listed}");
    assert_eq!(listed[0]["status"], "PARTIAL (no stack)", "{listed}");

    // A half-created environment tears down completely.
    local.run(&["teardown", "--env", env], &[])?.ok()?;
    assert_eq!(leftovers(&config, env).await?, Vec::<String>::new());

    // Killed again, then re-run: the deploy finishes what was started and works.
    let killed = local.run(
        &["deploy", "--env", env],
        &[("SFSTACK_FAULT", "after:stack")],
    )?;
    assert_eq!(killed.code, 137, "{}", killed.stderr);
    local.run(&["deploy", "--env", env], &[])?.ok()?;
    let smoke = local
        .run(&["smoke-test", "--env", env, "--output", "json"], &[])?
        .ok()?
        .json()?;
    assert_eq!(smoke["passed"], true, "{smoke}");

    // A wrong credential: refused by Salesforce, named, and the stored one is kept.
    let before = secret_json(&config, &format!("sfstack-{env}/salesforce-credentials")).await?;
    let wrong_key =
        std::fs::read_to_string(root().join("localcloud/sf-emulator/fixtures/other-key.pem"))?;
    let wrong = serde_json::json!({
        "AuthFlow": "jwt",
        "LoginUrl": local.emulator()?,
        "ConsumerKey": sf_emulator::DEMO_CONSUMER_KEY,
        "Username": sf_emulator::DEMO_USERNAME,
        "PrivateKey": wrong_key,
    })
    .to_string();
    let refused = local.run(
        &["deploy", "--env", env],
        &[("SFSTACK_SF_CREDENTIALS", wrong.as_str())],
    )?;
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("refused the credentials from SFSTACK_SF_CREDENTIALS"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("hint:"), "{}", refused.stderr);
    let wrong_line = wrong_key.lines().nth(3).context("key line")?;
    assert!(!refused.stderr.contains(wrong_line) && !refused.stdout.contains(wrong_line));
    let after = secret_json(&config, &format!("sfstack-{env}/salesforce-credentials")).await?;
    assert_eq!(
        before, after,
        "a refused credential replaced the stored one"
    );
    // Not JSON at all: named as such, value not echoed.
    let broken = local.run(
        &["deploy", "--env", env],
        &[("SFSTACK_SF_CREDENTIALS", "{\"PrivateKey\": secret-marker")],
    )?;
    assert_eq!(broken.code, 1);
    assert!(
        !broken.stderr.contains("secret-marker"),
        "{}",
        broken.stderr
    );

    // Right credentials given explicitly: stored, and the report says so (not "no changes").
    let replaced = serde_json::json!({
        "AuthFlow": "jwt",
        "LoginUrl": local.emulator()?,
        "ConsumerKey": sf_emulator::DEMO_CONSUMER_KEY,
        "ConsumerSecret": sf_emulator::DEMO_CONSUMER_SECRET,
        "Username": sf_emulator::DEMO_USERNAME,
        "PrivateKey": sf_emulator::DEMO_PRIVATE_KEY,
        "StateSigningKey": "a-new-state-signing-key-of-enough-length-0123456789",
    })
    .to_string();
    let stored = local
        .run(
            &["deploy", "--env", env, "--output", "json"],
            &[("SFSTACK_SF_CREDENTIALS", replaced.as_str())],
        )?
        .ok()?
        .json()?;
    assert_eq!(stored["changed"], true, "{stored}");
    let changes = stored["changes"].to_string();
    assert!(
        changes.contains(&format!(
            "stored a new value in secret sfstack-{env}/salesforce-credentials"
        )),
        "{changes}"
    );
    assert!(!changes.contains("a-new-state-signing-key"), "{changes}");
    let quiet = local
        .run(&["deploy", "--env", env, "--output", "json"], &[])?
        .ok()?
        .json()?;
    assert_eq!(quiet["changed"], false, "{quiet}");
    assert_eq!(quiet["changes"], serde_json::json!([]), "{quiet}");

    // A protected environment is not torn down without --force.
    let refused = local.run(&["teardown", "--env", "main"], &[])?;
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("--force"), "{}", refused.stderr);

    local.run(&["teardown", "--env", env], &[])?.ok()?;
    assert_eq!(leftovers(&config, env).await?, Vec::<String>::new());
    Ok(())
}

#[test]
fn unknown_environment_names_are_refused_before_anything_runs() -> anyhow::Result<()> {
    let mut local = Local::new("names");
    let run = local.run(&["deploy", "--env", "Bad_Name"], &[])?;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("environment name"), "{}", run.stderr);
    assert!(!Path::new(&local.dir).join("state.json").exists());
    Ok(())
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

/// The local cloud refuses what IAM refuses: a function whose role lost the statement that lets
/// it read its secrets fails with the AccessDenied AWS would give, naming the action; a role
/// whose trust policy does not admit Lambda cannot run its function; a function pointed at
/// another environment's secret is refused; the gateway logs every denial; and a redeploy,
/// which restores the policies, makes the environment whole again.
#[tokio::test(flavor = "multi_thread")]
async fn iam_is_enforced_on_the_local_target() -> anyhow::Result<()> {
    let mut local = Local::new("iam");
    let (a, b) = ("e2e-iam-a", "e2e-iam-b");
    local.run(&["deploy", "--env", a], &[])?.ok()?;
    local.run(&["deploy", "--env", b], &[])?.ok()?;
    let sdk = local.sdk().await?;
    let iam = aws_sdk_iam::Client::new(&sdk);
    let lambda = aws_sdk_lambda::Client::new(&sdk);

    // sf-invoke-api's role without the statement that reads the secrets.
    let role = format!("sfstack-{a}-sf-invoke-api-role");
    let policy = iam
        .get_role_policy()
        .role_name(&role)
        .policy_name("sfstack")
        .send()
        .await?;
    // IAM returns policy documents URL-encoded.
    let mut document: Value = serde_json::from_str(
        &percent_encoding::percent_decode_str(policy.policy_document()).decode_utf8_lossy(),
    )?;
    let statements = document["Statement"].as_array_mut().context("statements")?;
    let before = statements.len();
    statements.retain(|statement| statement["Sid"] != "ReadSalesforceSecrets");
    assert_eq!(statements.len(), before - 1, "{document}");
    iam.put_role_policy()
        .role_name(&role)
        .policy_name("sfstack")
        .policy_document(document.to_string())
        .send()
        .await?;
    // sf-token-refresh's role trusts only EC2.
    iam.update_assume_role_policy()
        .role_name(format!("sfstack-{a}-sf-token-refresh-role"))
        .policy_document(
            serde_json::json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Principal": {"Service": "ec2.amazonaws.com"},
                    "Action": "sts:AssumeRole"
                }]
            })
            .to_string(),
        )
        .send()
        .await?;

    let run = local.run(&["smoke-test", "--env", a, "--output", "json"], &[])?;
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    let report = run.json()?;
    let (result, detail) = step(&report, "phoneLookup");
    assert_eq!(result, "failed", "{report}");
    assert!(
        detail.contains("is not authorized to perform: secretsmanager:GetSecretValue")
            && detail.contains(&format!("assumed-role/{role}/"))
            && detail.contains("because no identity-based policy allows"),
        "{detail}"
    );
    assert!(
        detail.contains("denied by the local cloud's IAM"),
        "the step shows the gateway's denial: {detail}"
    );
    let (result, detail) = step(&report, "tokenRefresh");
    assert_eq!(result, "failed", "{report}");
    assert!(detail.contains("cannot be assumed by Lambda"), "{detail}");
    // Steps whose roles are intact still pass.
    assert_eq!(step(&report, "oauthCallback").0, "passed", "{report}");

    let denials = local
        .run(&["local", "decisions", "--denied", "--output", "json"], &[])?
        .ok()?
        .json()?;
    let denied: Vec<(String, String)> = denials
        .as_array()
        .into_iter()
        .flatten()
        .map(|decision| {
            (
                decision["action"].as_str().unwrap_or_default().to_string(),
                decision["principal"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    assert!(
        denied.contains(&(
            "sts:AssumeRole".to_string(),
            "lambda.amazonaws.com".to_string()
        )),
        "{denials}"
    );
    assert!(
        denied.iter().any(
            |(action, principal)| action == "secretsmanager:GetSecretValue"
                && principal.contains(&role)
        ),
        "{denials}"
    );

    // A function pointed at another environment's secret is refused, though the secret exists.
    let function = format!("sfstack-{a}-sf-oauth-callback");
    let configuration = lambda
        .get_function_configuration()
        .function_name(&function)
        .send()
        .await?;
    let variables = configuration
        .environment()
        .and_then(|environment| environment.variables())
        .cloned()
        .unwrap_or_default();
    let own = variables
        .get("SF_CREDENTIALS_SECRET_ARN")
        .cloned()
        .context("the callback's credentials secret")?;
    let other = aws_sdk_secretsmanager::Client::new(&sdk)
        .describe_secret()
        .secret_id(format!("sfstack-{b}/salesforce-credentials"))
        .send()
        .await?
        .arn()
        .context("the other environment's secret")?
        .to_string();
    let point_at = async |secret: &str| {
        let mut variables = variables.clone();
        variables.insert("SF_CREDENTIALS_SECRET_ARN".to_string(), secret.to_string());
        lambda
            .update_function_configuration()
            .function_name(&function)
            .environment(
                aws_sdk_lambda::types::Environment::builder()
                    .set_variables(Some(variables))
                    .build(),
            )
            .send()
            .await
    };
    point_at(&other).await?;
    let run = local.run(&["smoke-test", "--env", a, "--output", "json"], &[])?;
    let report = run.json()?;
    let (result, detail) = step(&report, "oauthCallback");
    assert_eq!(result, "failed", "{report}");
    assert!(
        detail.contains(&format!(
            "is not authorized to perform: secretsmanager:GetSecretValue on resource: {other}"
        )),
        "{detail}"
    );

    // A redeploy restores the policies (CloudFormation does not see the configuration's drift,
    // so the test puts that back itself); everything passes again.
    point_at(&own).await?;
    local.run(&["deploy", "--env", a], &[])?.ok()?;
    let run = local.run(&["smoke-test", "--env", a, "--output", "json"], &[])?;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    local.run(&["teardown", "--env", a], &[])?.ok()?;
    local.run(&["teardown", "--env", b], &[])?.ok()?;
    Ok(())
}

/// The statements of every function policy that a smoke-test step needs: (function, Sid, the
/// step that fails without it).
const NEEDED_STATEMENTS: &[(&str, &str, &str)] = &[
    ("sf-invoke-api", "ReadSalesforceSecrets", "phoneLookup"),
    (
        "sf-invoke-api",
        "DecryptSecretsThroughSecretsManager",
        "phoneLookup",
    ),
    ("sf-oauth-callback", "ReadCredentials", "oauthCallback"),
    ("sf-oauth-callback", "StoreTokens", "oauthCallback"),
    (
        "sf-oauth-callback",
        "EncryptThroughSecretsManagerAndDynamoDB",
        "oauthCallback",
    ),
    ("sf-secret-rotation", "RotateCredentials", "rotation"),
    (
        "sf-secret-rotation",
        "EncryptSecretsThroughSecretsManager",
        "rotation",
    ),
    (
        "sf-token-refresh",
        "ReadCredentialsAndKeepRotatedRefreshToken",
        "tokenRefresh",
    ),
    ("sf-token-refresh", "WriteSession", "tokenRefresh"),
    (
        "sf-token-refresh",
        "EncryptSecretsThroughSecretsManager",
        "tokenRefresh",
    ),
];

/// The resource permissions of the functions that a caller needs: (function, statement id,
/// the smoke-test step whose caller fails without it). Amazon Connect's is made only with
/// `connect.instance_arn`, which these tests do not set.
const NEEDED_PERMISSIONS: &[(&str, &str, &str)] = &[
    (
        "sf-token-refresh",
        "sfstack-token-refresh-schedule",
        "tokenRefresh",
    ),
    (
        "sf-secret-rotation",
        "sfstack-secrets-manager-rotation",
        "rotation",
    ),
    ("sf-oauth-callback", "sfstack-function-url", "oauthCallback"),
    (
        "sf-oauth-callback",
        "sfstack-function-url-invoke",
        "oauthCallback",
    ),
];

/// Statements the local cloud cannot prove needed yet, and why.
const UNPROVEN_STATEMENTS: &[(&str, &str)] = &[(
    "WriteOwnLogs",
    "the local Lambda service writes function output to files, not to CloudWatch Logs",
)];

/// Least privilege, proven: every statement of every function's policy is needed. Each is
/// removed in turn (its function's next invocation forced cold, as after a deploy), and the
/// smoke-test step that needs it must fail with the AccessDenied AWS would give; the policy is
/// then put back and everything passes again. A statement added to a policy without a row in
/// `NEEDED_STATEMENTS` (or a reason in `UNPROVEN_STATEMENTS`) fails this test.
#[tokio::test(flavor = "multi_thread")]
async fn every_function_policy_statement_is_needed() -> anyhow::Result<()> {
    let mut local = Local::new("mutation");
    let env = "e2e-mutation";
    // Refresh-token credentials: the only flow with rotation, so every function runs.
    let flow = [("SFSTACK_SALESFORCE_AUTH_FLOW", "refresh_token")];
    local.run(&["deploy", "--env", env], &flow)?.ok()?;
    let sdk = local.sdk().await?;
    let iam = aws_sdk_iam::Client::new(&sdk);
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    let role = |function: &str| format!("sfstack-{env}-{function}-role");
    let policy_of = async |function: &str| -> anyhow::Result<Value> {
        let policy = iam
            .get_role_policy()
            .role_name(role(function))
            .policy_name("sfstack")
            .send()
            .await?;
        Ok(serde_json::from_str(
            &percent_encoding::percent_decode_str(policy.policy_document()).decode_utf8_lossy(),
        )?)
    };
    let put_policy = async |function: &str, document: &Value| -> anyhow::Result<()> {
        iam.put_role_policy()
            .role_name(role(function))
            .policy_name("sfstack")
            .policy_document(document.to_string())
            .send()
            .await?;
        Ok(())
    };
    // A changed configuration makes the Lambda service start a new (cold) environment.
    let force_cold_start = async |function: &str, round: usize| -> anyhow::Result<()> {
        let name = format!("sfstack-{env}-{function}");
        let configuration = lambda
            .get_function_configuration()
            .function_name(&name)
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
            .function_name(&name)
            .environment(
                aws_sdk_lambda::types::Environment::builder()
                    .set_variables(Some(variables))
                    .build(),
            )
            .send()
            .await?;
        Ok(())
    };

    // Every statement is accounted for.
    for function in [
        "sf-invoke-api",
        "sf-token-refresh",
        "sf-secret-rotation",
        "sf-oauth-callback",
    ] {
        let document = policy_of(function).await?;
        for statement in document["Statement"].as_array().into_iter().flatten() {
            let sid = statement["Sid"].as_str().unwrap_or_default();
            assert!(
                NEEDED_STATEMENTS
                    .iter()
                    .any(|(needed_by, needed, _)| *needed_by == function && *needed == sid)
                    || UNPROVEN_STATEMENTS
                        .iter()
                        .any(|(unproven, _)| *unproven == sid),
                "{function}'s statement {sid:?} is neither proven needed nor explained"
            );
        }
    }

    for (round, (function, sid, needed_by)) in NEEDED_STATEMENTS.iter().enumerate() {
        let original = policy_of(function).await?;
        let mut reduced = original.clone();
        reduced["Statement"]
            .as_array_mut()
            .context("statements")?
            .retain(|statement| statement["Sid"] != *sid);
        put_policy(function, &reduced).await?;
        force_cold_start(function, round).await?;
        let run = local.run(&["smoke-test", "--env", env, "--output", "json"], &[])?;
        let report = run.json()?;
        let (result, detail) = step(&report, needed_by);
        assert_eq!(
            (run.code, result),
            (3, "failed"),
            "without {function}'s {sid}, {needed_by} must fail: {report}"
        );
        assert!(
            detail.contains("is not authorized to perform:")
                && detail.contains(&format!("assumed-role/{}/", role(function))),
            "without {function}'s {sid}, {needed_by} must fail on an AccessDenied of its role: {detail}"
        );
        put_policy(function, &original).await?;
        force_cold_start(function, round + 1000).await?;
    }

    // Every resource permission is accounted for, and each is needed by its caller.
    for function in [
        "sf-invoke-api",
        "sf-token-refresh",
        "sf-secret-rotation",
        "sf-oauth-callback",
    ] {
        let name = format!("sfstack-{env}-{function}");
        let policy: Value = match lambda.get_policy().function_name(&name).send().await {
            Ok(output) => serde_json::from_str(output.policy().unwrap_or("{}"))?,
            Err(_) => Value::Null,
        };
        for statement in policy["Statement"].as_array().into_iter().flatten() {
            let sid = statement["Sid"].as_str().unwrap_or_default();
            assert!(
                NEEDED_PERMISSIONS
                    .iter()
                    .any(|(needed_by, needed, _)| *needed_by == function && *needed == sid),
                "{function}'s permission {sid:?} is not proven needed"
            );
        }
    }
    for (function, sid, needed_by) in NEEDED_PERMISSIONS {
        lambda
            .remove_permission()
            .function_name(format!("sfstack-{env}-{function}"))
            .statement_id(*sid)
            .send()
            .await?;
        let run = local.run(&["smoke-test", "--env", env, "--output", "json"], &[])?;
        let report = run.json()?;
        let (result, detail) = step(&report, needed_by);
        assert_eq!(
            (run.code, result),
            (3, "failed"),
            "without {function}'s permission {sid}, {needed_by} must fail: {report}"
        );
        assert!(
            detail.contains("is not authorized to perform: lambda:InvokeFunction")
                && detail.contains("because no resource-based policy allows"),
            "without {function}'s permission {sid}, {needed_by}'s caller must be refused: {detail}"
        );
        // A redeploy puts it back.
        let deployed = local
            .run(&["deploy", "--env", env, "--output", "json"], &flow)?
            .ok()?
            .json()?;
        assert!(
            deployed["changes"].to_string().contains(sid),
            "the redeploy restores {sid}: {deployed}"
        );
    }

    let run = local.run(&["smoke-test", "--env", env, "--output", "json"], &[])?;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    local.run(&["teardown", "--env", env], &[])?.ok()?;
    Ok(())
}

/// What a function's role does not need, it cannot do: each role's session (assumed through the
/// AWS gateway, as the Lambda service does) is refused another environment's secret,
/// `kms:Decrypt` outside Secrets Manager and DynamoDB, writing the credentials it only reads,
/// `DeleteItem` on the tokens table and invoking a function, each with AWS's message naming the
/// action.
#[tokio::test(flavor = "multi_thread")]
async fn a_function_role_can_do_nothing_else() -> anyhow::Result<()> {
    let mut local = Local::new("negative");
    let (a, b) = ("e2e-neg-a", "e2e-neg-b");
    local.run(&["deploy", "--env", a], &[])?.ok()?;
    local.run(&["deploy", "--env", b], &[])?.ok()?;
    let gateway = local.state()?["gateway"]["url"]
        .as_str()
        .context("no gateway url")?
        .to_string();
    let config = |key: &str, secret: &str, token: Option<String>| {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&gateway)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sts::config::Credentials::new(
                key, secret, token, None, "e2e",
            ))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .load()
    };
    let as_lambda = config(lambda_runner_key(), lambda_runner_key(), None).await;
    let denied = |what: &str, result: Result<(), String>, action: &str| {
        let message = result.err().unwrap_or_default();
        assert!(
            message.contains(&format!("is not authorized to perform: {action}")),
            "{what}: expected an AccessDenied for {action}, got {message:?}"
        );
    };
    for function in [
        "sf-invoke-api",
        "sf-token-refresh",
        "sf-secret-rotation",
        "sf-oauth-callback",
    ] {
        let session = aws_sdk_sts::Client::new(&as_lambda)
            .assume_role()
            .role_arn(format!(
                "arn:aws:iam::123456789012:role/sfstack-{a}-{function}-role"
            ))
            .role_session_name(function)
            .send()
            .await?;
        let credentials = session.credentials().context("no credentials")?;
        let sdk = config(
            credentials.access_key_id(),
            credentials.secret_access_key(),
            Some(credentials.session_token().to_string()),
        )
        .await;
        let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
        let show = |error: &dyn std::fmt::Display| error.to_string();
        denied(
            &format!("{function} reading {b}'s credentials"),
            secrets
                .get_secret_value()
                .secret_id(format!("sfstack-{b}/salesforce-credentials"))
                .send()
                .await
                .map(drop)
                .map_err(|error| show(&aws_sdk_secretsmanager::error::DisplayErrorContext(error))),
            "secretsmanager:GetSecretValue",
        );
        if function == "sf-invoke-api" || function == "sf-oauth-callback" {
            denied(
                &format!("{function} writing its credentials"),
                secrets
                    .put_secret_value()
                    .secret_id(format!("sfstack-{a}/salesforce-credentials"))
                    .secret_string("{}")
                    .send()
                    .await
                    .map(drop)
                    .map_err(|error| {
                        show(&aws_sdk_secretsmanager::error::DisplayErrorContext(error))
                    }),
                "secretsmanager:PutSecretValue",
            );
        }
        denied(
            &format!("{function} decrypting with the key directly"),
            aws_sdk_kms::Client::new(&sdk)
                .decrypt()
                .key_id(format!("alias/sfstack-{a}"))
                .ciphertext_blob(aws_sdk_kms::primitives::Blob::new(b"not through a service"))
                .send()
                .await
                .map(drop)
                .map_err(|error| show(&aws_sdk_kms::error::DisplayErrorContext(error))),
            "kms:Decrypt",
        );
        denied(
            &format!("{function} deleting a token row"),
            aws_sdk_dynamodb::Client::new(&sdk)
                .delete_item()
                .table_name(format!("sfstack-{a}-oauth-tokens"))
                .key(
                    "wa_id",
                    aws_sdk_dynamodb::types::AttributeValue::S("whatsapp:+15555550100".into()),
                )
                .send()
                .await
                .map(drop)
                .map_err(|error| show(&aws_sdk_dynamodb::error::DisplayErrorContext(error))),
            "dynamodb:DeleteItem",
        );
        denied(
            &format!("{function} invoking another function"),
            aws_sdk_lambda::Client::new(&sdk)
                .invoke()
                .function_name(format!("sfstack-{a}-sf-token-refresh"))
                .send()
                .await
                .map(drop)
                .map_err(|error| show(&aws_sdk_lambda::error::DisplayErrorContext(error))),
            "lambda:InvokeFunction",
        );
    }
    // A key nobody issued is refused before any policy is read.
    let stranger = config("AKIASTRANGER", "x", None).await;
    let refused = aws_sdk_secretsmanager::Client::new(&stranger)
        .get_secret_value()
        .secret_id(format!("sfstack-{a}/salesforce-credentials"))
        .send()
        .await;
    let message = refused
        .err()
        .map(|error| aws_sdk_secretsmanager::error::DisplayErrorContext(error).to_string())
        .unwrap_or_default();
    assert!(
        message.contains("security token included in the request is invalid"),
        "{message}"
    );
    local.run(&["teardown", "--env", a], &[])?.ok()?;
    local.run(&["teardown", "--env", b], &[])?.ok()?;
    Ok(())
}

/// The key the local Lambda service signs with (see `lambda-runner`).
fn lambda_runner_key() -> &'static str {
    "SFSTACKLAMBDASERVICE"
}
