//! The deployer roles `bootstrap` makes (#11): the environment deployer is enough for the whole
//! flow, every permission it is granted is needed by that flow, and neither role can do more
//! than its part. The commands run as the roles the way a GitHub Actions job would: the local
//! cloud plays the job's OIDC token, and its gateway decides `sts:AssumeRoleWithWebIdentity`
//! against the role's trust policy, every call the commands make, and everything
//! CloudFormation does on the deployer's behalf.

use std::collections::BTreeSet;

use anyhow::Context;
use serde_json::Value;

use super::*;

const REPOSITORY: &str = "acme/connect";
const ENVIRONMENT_DEPLOYER: &str = "sfstack-deployer";
const PROTECTED_DEPLOYER: &str = "sfstack-deployer-protected";

fn branch(name: &str) -> String {
    format!("repo:{REPOSITORY}:ref:refs/heads/{name}")
}

/// Runs `args` as `role`, with a GitHub token whose subject is `subject`.
fn run_as(local: &mut Local, role: &str, subject: &str, args: &[&str]) -> anyhow::Result<Run> {
    local.run(
        args,
        &[
            ("SFSTACK_LOCAL_GITHUB_ROLE", role),
            ("SFSTACK_LOCAL_GITHUB_SUBJECT", subject),
            ("SFSTACK_SALESFORCE_AUTH_FLOW", "refresh_token"),
            ("SFSTACK_CONNECT_INSTANCE_ARN", super::CONNECT_INSTANCE),
            ("SFSTACK_CONNECT_SAMPLE_FLOW", "true"),
        ],
    )
}

/// Puts every function of `local`'s commands in a VPC made for them, so that the deployer
/// needs what Lambda checks a VPC with.
async fn in_a_vpc(local: &mut Local) -> anyhow::Result<()> {
    let vpc = local.make_network().await?;
    local
        .variables
        .push(("SFSTACK_FUNCTIONS_VPC".to_string(), vpc));
    Ok(())
}

/// The AWS APIs as a session of `role` for a GitHub job of `subject`.
async fn sdk_as(local: &Local, role: &str, subject: &str) -> anyhow::Result<aws_config::SdkConfig> {
    let issued = tell_gateway(
        local,
        "/__sfstack/web-identity",
        serde_json::json!({
            "role_arn": format!("arn:aws:iam::123456789012:role/{role}"),
            "subject": subject,
            "session_name": "e2e",
        }),
    )
    .await?;
    let gateway = local.state()?["gateway"]["url"]
        .as_str()
        .context("no gateway url")?
        .to_string();
    let text = |key: &str| {
        issued[key]
            .as_str()
            .map(str::to_string)
            .context("no credentials")
    };
    Ok(aws_reqwest::defaults()
        .endpoint_url(gateway)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sts::config::Credentials::new(
            text("AccessKeyId")?,
            text("SecretAccessKey")?,
            Some(text("SessionToken")?),
            None,
            "e2e-role",
        ))
        .load()
        .await)
}

fn assert_refused(run: &Run, needle: &str) {
    assert_ne!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(needle),
        "expected {needle:?} in:\n{}",
        run.stderr
    );
}

pub(super) async fn wait_for_stack(
    cloudformation: &aws_sdk_cloudformation::Client,
    stack: &str,
) -> anyhow::Result<String> {
    for _ in 0..200 {
        let status = cloudformation
            .describe_stacks()
            .stack_name(stack)
            .send()
            .await?
            .stacks()
            .first()
            .and_then(|stack| stack.stack_status())
            .map(|status| status.as_str().to_string())
            .unwrap_or_default();
        if !status.ends_with("IN_PROGRESS") {
            return Ok(status);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    anyhow::bail!("stack {stack} never settled")
}

/// The template of `stack` with every resource changed in place (a tag, a description, a
/// retention), so CloudFormation updates each: the update handlers' permissions.
fn changed_everywhere(template: &str) -> anyhow::Result<String> {
    let mut template: serde_yaml::Value = serde_yaml::from_str(template)?;
    let resources = template
        .get_mut("Resources")
        .and_then(serde_yaml::Value::as_mapping_mut)
        .context("no resources")?;
    for (_, resource) in resources.iter_mut() {
        let kind = resource["Type"].as_str().unwrap_or_default().to_string();
        let properties = resource
            .get_mut("Properties")
            .and_then(serde_yaml::Value::as_mapping_mut)
            .context("no properties")?;
        match kind.as_str() {
            "AWS::DynamoDB::Table" => {
                let tags = properties
                    .get_mut("Tags")
                    .and_then(serde_yaml::Value::as_sequence_mut)
                    .context("a table without tags")?;
                tags.push(serde_yaml::from_str("{Key: e2e, Value: updated}")?);
            }
            "AWS::Logs::LogGroup" => {
                properties.insert("RetentionInDays".into(), 3.into());
            }
            "AWS::Events::Rule" | "AWS::Lambda::Function" => {
                properties.insert("Description".into(), "changed by the e2e test".into());
            }
            _ => {}
        }
    }
    Ok(serde_yaml::to_string(&template)?)
}

/// The environment deployer runs the whole flow (deploy, smoke-test with rotation, envs, a
/// deploy that heals drift of every kind, an update of every resource, teardown, a deploy over
/// the torn-down environment, prune) on its own; and each action of each statement of its
/// policy decided at least one of those requests: a permission nothing needed would be listed
/// here.
pub(crate) async fn the_environment_deployer_runs_the_whole_flow_and_needs_every_permission_it_has()
-> anyhow::Result<()> {
    let mut local = Local::new("deployer-roles");
    let env = "e2e-deployer";
    let subject = branch("feature/deployer");
    // With an Amazon Connect instance, which the role may then associate functions with, and
    // the sample flow, which it manages.
    in_a_vpc(&mut local).await?;
    let instance = [
        ("SFSTACK_CONNECT_INSTANCE_ARN", super::CONNECT_INSTANCE),
        ("SFSTACK_CONNECT_SAMPLE_FLOW", "true"),
    ];
    local
        .run(&["bootstrap", "--github-repo", REPOSITORY], &instance)?
        .ok()?;
    let again = local
        .run(&["bootstrap", "--github-repo", REPOSITORY], &instance)?
        .ok()?;
    assert!(
        !again.stdout.contains("created") && !again.stdout.contains("wrote"),
        "a second bootstrap changes nothing:\n{}",
        again.stdout
    );
    let deployer =
        |local: &mut Local, args: &[&str]| run_as(local, ENVIRONMENT_DEPLOYER, &subject, args);

    let first = deployer(&mut local, &["deploy", "--env", env])?.ok()?;
    assert!(
        first
            .stderr
            .contains(&format!("assumed-role/{ENVIRONMENT_DEPLOYER}/")),
        "the deploy ran as the role:\n{}",
        first.stderr
    );
    deployer(&mut local, &["smoke-test", "--env", env])?.ok()?;
    let envs = deployer(&mut local, &["envs", "--output", "json"])?.ok()?;
    assert!(envs.stdout.contains(env), "{}", envs.stdout);

    // Drift of every kind a deploy repairs, made by the account's administrator: a function
    // role's trust policy and tags, the key's policy and tags, a secret's tags and key, a
    // secret scheduled for deletion, and a lock left by a run on another machine.
    let admin = local.sdk().await?;
    let iam = aws_sdk_iam::Client::new(&admin);
    let role = format!("sfstack-{env}-sf-invoke-api-role");
    iam.update_assume_role_policy()
        .role_name(&role)
        .policy_document(
            serde_json::json!({"Version": "2012-10-17", "Statement": [{"Sid": "Drift",
                "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole"}]})
            .to_string(),
        )
        .send()
        .await?;
    iam.untag_role()
        .role_name(&role)
        .tag_keys("sfstack:branch")
        .send()
        .await?;
    let kms = aws_sdk_kms::Client::new(&admin);
    let alias = format!("alias/sfstack-{env}");
    let key = kms.describe_key().key_id(&alias).send().await?;
    let key_id = key.key_metadata().context("key")?.key_id().to_string();
    let policy: Value = serde_json::from_str(
        kms.get_key_policy()
            .key_id(&key_id)
            .policy_name("default")
            .send()
            .await?
            .policy()
            .unwrap_or("{}"),
    )?;
    let mut drifted = policy.clone();
    drifted["Statement"]
        .as_array_mut()
        .context("key policy statements")?
        .truncate(1);
    kms.put_key_policy()
        .key_id(&key_id)
        .policy_name("default")
        .policy(drifted.to_string())
        .send()
        .await?;
    kms.untag_resource()
        .key_id(&key_id)
        .tag_keys("sfstack:branch")
        .send()
        .await?;
    let secrets = aws_sdk_secretsmanager::Client::new(&admin);
    let credentials = format!("sfstack-{env}/salesforce-credentials");
    let session = format!("sfstack-{env}/salesforce-session");
    secrets
        .untag_resource()
        .secret_id(&credentials)
        .tag_keys("sfstack:branch")
        .send()
        .await?;
    secrets
        .update_secret()
        .secret_id(&credentials)
        .kms_key_id("alias/aws/secretsmanager")
        .send()
        .await?;
    secrets
        .delete_secret()
        .secret_id(&session)
        .recovery_window_in_days(7)
        .send()
        .await?;
    let bucket = "sfstack-artifacts-123456789012-us-east-1";
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&admin)
            .force_path_style(true)
            .build(),
    )
    .put_object()
    .bucket(bucket)
    .key(format!("locks/{env}.json"))
    .body(
        serde_json::json!({"environment": env, "command": "deploy", "owner": "ci",
            "host": "another-machine", "pid": 1, "started_at": "2026-12-01T00:00:00Z"})
        .to_string()
        .into_bytes()
        .into(),
    )
    .send()
    .await?;
    // The sample contact flow, edited in the console.
    let connect = aws_sdk_connect::Client::new(&admin);
    let instance_id = super::CONNECT_INSTANCE
        .rsplit('/')
        .next()
        .context("instance id")?;
    let flow_id = connect
        .list_contact_flows()
        .instance_id(instance_id)
        .send()
        .await?
        .contact_flow_summary_list()
        .iter()
        .find(|flow| flow.name() == Some(&format!("sfstack-{env}-sample-flow")))
        .and_then(|flow| flow.id())
        .context("the sample flow")?
        .to_string();
    connect
        .update_contact_flow_content()
        .instance_id(instance_id)
        .contact_flow_id(&flow_id)
        .content(
            serde_json::json!({"Version": "2019-10-30", "StartAction": "bye", "Actions": [
                {"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}}
            ]})
            .to_string(),
        )
        .send()
        .await?;
    let blocked = deployer(&mut local, &["deploy", "--env", env, "--lock-wait", "0s"])?;
    assert_refused(&blocked, "is being deployed by ci on another-machine");
    deployer(&mut local, &["deploy", "--env", env, "--break-lock"])?.ok()?;

    // Every resource updated in place, by the deployer's own change set.
    let own = sdk_as(&local, ENVIRONMENT_DEPLOYER, &subject).await?;
    let cloudformation = aws_sdk_cloudformation::Client::new(&own);
    let stack = format!("sfstack-{env}");
    let template = cloudformation
        .get_template()
        .stack_name(&stack)
        .send()
        .await?
        .template_body()
        .context("no template")?
        .to_string();
    // moto loses the physical ids of log groups and tables it updates in place, so this update
    // is made to fail on its last resource once the gateway has decided every handler's
    // permissions (which it does before anything is changed), and rolls back.
    tell_gateway(
        &local,
        "/__sfstack/fail-update",
        serde_json::json!({"stack": stack, "logical_id": "OAuthStatesTable",
            "resource_type": "AWS::DynamoDB::Table", "reason": "e2e: failed on purpose"}),
    )
    .await?;
    execute_by_hand(
        &cloudformation,
        &stack,
        "e2e-update-everything",
        changed_everywhere(&template)?,
    )
    .await?;
    assert_eq!(
        wait_for_stack(&cloudformation, &stack).await?,
        "UPDATE_ROLLBACK_COMPLETE"
    );
    deployer(&mut local, &["deploy", "--env", env])?.ok()?;

    deployer(&mut local, &["teardown", "--env", env])?.ok()?;
    // Over the torn-down environment: its key is scheduled for deletion, and is taken back.
    deployer(&mut local, &["deploy", "--env", env])?.ok()?;
    let pruned = deployer(&mut local, &["prune", "--older-than", "0s"])?.ok()?;
    assert!(pruned.stdout.contains(env), "{}", pruned.stdout);

    // Least privilege: every (statement, action) of the policy decided some request.
    let plan = local
        .run(
            &[
                "bootstrap",
                "--github-repo",
                REPOSITORY,
                "--print",
                "--output",
                "json",
            ],
            &instance,
        )?
        .ok()?
        .json()?;
    let policy = plan["plan"]["roles"]
        .as_array()
        .and_then(|roles| {
            roles
                .iter()
                .find(|role| role["name"] == ENVIRONMENT_DEPLOYER)
        })
        .map(|role| role["policy"].clone())
        .context("the environment deployer's policy")?;
    let mut used = BTreeSet::new();
    let log = std::fs::read_to_string(local.dir.join("decisions.jsonl"))?;
    for entry in log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
    {
        let principal = entry["principal"].as_str().unwrap_or_default();
        if !principal.contains(&format!("assumed-role/{ENVIRONMENT_DEPLOYER}/"))
            || entry["decision"] != "allow"
        {
            continue;
        }
        for deciding in entry["deciding"].as_array().into_iter().flatten() {
            if let Some(sid) = deciding
                .as_str()
                .and_then(|text| text.split("(Sid ").nth(1))
            {
                used.insert((
                    sid.trim_end_matches(')').to_string(),
                    entry["action"].as_str().unwrap_or_default().to_string(),
                ));
            }
        }
    }
    let mut unused = Vec::new();
    for statement in policy["Statement"].as_array().context("statements")? {
        if statement["Effect"] != "Allow" {
            continue;
        }
        let sid = statement["Sid"].as_str().unwrap_or_default();
        for action in statement["Action"].as_array().into_iter().flatten() {
            let action = action.as_str().unwrap_or_default();
            if !used.contains(&(sid.to_string(), action.to_string())) {
                unused.push(format!("{sid}: {action}"));
            }
        }
    }
    assert!(
        unused.is_empty(),
        "granted but never needed by the whole flow:\n{}",
        unused.join("\n")
    );
    Ok(())
}

/// Neither role can do more than its part: the trust policies admit only this repository's
/// jobs (the protected deployer only the default branch or the guarding GitHub environment);
/// the environment deployer cannot deploy or tear down a protected environment, nor read its
/// secrets or use its key; the protected deployer deploys and tears down protected
/// environments and nothing else.
pub(crate) async fn the_deployer_roles_can_do_no_more_than_their_part() -> anyhow::Result<()> {
    let mut local = Local::new("deployer-limits");
    in_a_vpc(&mut local).await?;
    local
        .run(
            &["bootstrap", "--github-repo", REPOSITORY],
            &[
                ("SFSTACK_CONNECT_INSTANCE_ARN", super::CONNECT_INSTANCE),
                ("SFSTACK_CONNECT_SAMPLE_FLOW", "true"),
            ],
        )?
        .ok()?;
    let feature = branch("feature/limits");
    let reviewed = format!("repo:{REPOSITORY}:environment:production");

    // Trust.
    let stranger = run_as(
        &mut local,
        ENVIRONMENT_DEPLOYER,
        "repo:someone/else:ref:refs/heads/main",
        &["envs"],
    )?;
    assert_refused(
        &stranger,
        "Not authorized to perform sts:AssumeRoleWithWebIdentity",
    );
    let unreviewed = run_as(&mut local, PROTECTED_DEPLOYER, &feature, &["envs"])?;
    assert_refused(
        &unreviewed,
        "Not authorized to perform sts:AssumeRoleWithWebIdentity",
    );

    // The protected deployer deploys a protected environment.
    run_as(
        &mut local,
        PROTECTED_DEPLOYER,
        &reviewed,
        &["deploy", "--env", "production"],
    )?
    .ok()?;

    // The environment deployer can do nothing to it, or to another protected one.
    let denied = "with an explicit deny in an identity-based policy";
    let deploy_main = run_as(
        &mut local,
        ENVIRONMENT_DEPLOYER,
        &feature,
        &["deploy", "--env", "main"],
    )?;
    assert_refused(&deploy_main, denied);
    let admin = local.sdk().await?;
    let cloudformation = aws_sdk_cloudformation::Client::new(&admin);
    assert!(
        cloudformation
            .describe_stacks()
            .stack_name("sfstack-main")
            .send()
            .await
            .is_err(),
        "nothing of main was created"
    );
    let teardown_prod = run_as(
        &mut local,
        ENVIRONMENT_DEPLOYER,
        &feature,
        &["teardown", "--env", "production", "--force"],
    )?;
    assert_refused(&teardown_prod, denied);
    let status = wait_for_stack(&cloudformation, "sfstack-production").await?;
    assert!(
        matches!(status.as_str(), "CREATE_COMPLETE" | "UPDATE_COMPLETE"),
        "production is still there: {status}"
    );
    let own = sdk_as(&local, ENVIRONMENT_DEPLOYER, &feature).await?;
    let read = aws_sdk_secretsmanager::Client::new(&own)
        .get_secret_value()
        .secret_id("sfstack-production/salesforce-credentials")
        .send()
        .await;
    let error = format!(
        "{:?}",
        read.expect_err("production's secret is not the deployer's")
    );
    assert!(error.contains("AccessDenied"), "{error}");
    let key = aws_sdk_kms::Client::new(&own)
        .describe_key()
        .key_id("alias/sfstack-production")
        .send()
        .await;
    let error = format!(
        "{:?}",
        key.expect_err("production's key is not the deployer's")
    );
    assert!(error.contains("AccessDenied"), "{error}");
    // Nor its sample contact flow, which only its tag tells from a branch's.
    let connect = aws_sdk_connect::Client::new(&own);
    let instance_id = super::CONNECT_INSTANCE.rsplit('/').next().context("id")?;
    let flow_id = connect
        .list_contact_flows()
        .instance_id(instance_id)
        .send()
        .await?
        .contact_flow_summary_list()
        .iter()
        .find(|flow| flow.name() == Some("sfstack-production-sample-flow"))
        .and_then(|flow| flow.id())
        .context("production's sample flow")?
        .to_string();
    let deleted = connect
        .delete_contact_flow()
        .instance_id(instance_id)
        .contact_flow_id(&flow_id)
        .send()
        .await;
    let error = format!(
        "{:?}",
        deleted.expect_err("production's flow is not the deployer's")
    );
    assert!(error.contains("AccessDenied"), "{error}");

    // The protected deployer cannot touch a branch environment, and tears prod down.
    let branch_env = run_as(
        &mut local,
        PROTECTED_DEPLOYER,
        &reviewed,
        &["deploy", "--env", "e2e-limits-branch"],
    )?;
    assert_refused(&branch_env, "is not authorized to perform");
    run_as(
        &mut local,
        PROTECTED_DEPLOYER,
        &reviewed,
        &["teardown", "--env", "production", "--force"],
    )?
    .ok()?;
    Ok(())
}
