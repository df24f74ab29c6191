//! The local cloud refuses what AWS's IAM refuses, and every permission the stack grants is
//! proven needed.

use anyhow::Context;
use serde_json::Value;

use super::*;

/// The local cloud refuses what IAM refuses: a function whose role lost the statement that lets
/// it read its secrets fails with the AccessDenied AWS would give, naming the action; a role
/// whose trust policy does not admit Lambda cannot run its function; a function pointed at
/// another environment's secret is refused; the gateway logs every denial; and a redeploy,
/// which restores the policies, makes the environment whole again.
pub(crate) async fn iam_is_enforced_on_the_local_target() -> anyhow::Result<()> {
    let mut local = Local::new("iam");
    let (a, b) = ("e2e-iam-a", "e2e-iam-b");
    local.run(&["deploy", "--env", a], &[])?.ok()?;
    local.run(&["deploy", "--env", b], &[])?.ok()?;
    let sdk = local.sdk().await?;
    let iam = aws_sdk_iam::Client::new(&sdk);
    let lambda = aws_sdk_lambda::Client::new(&sdk);

    // sf-invoke-api's role without the statement that reads the secrets.
    let role = format!("sfstack-{a}-sf-invoke-api-role");
    let mut document = inline_policy(&iam, &role).await?;
    let statements = document["Statement"].as_array_mut().context("statements")?;
    let before = statements.len();
    statements.retain(|statement| statement["Sid"] != "ReadSalesforceSecrets");
    assert_eq!(statements.len(), before - 1, "{document}");
    put_inline_policy(&iam, &role, &document).await?;
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
    // The deploy ran the token refresh once (its first session): a role's trust is checked
    // when an execution environment starts, so a changed configuration starts a new one, as a
    // deploy of new code would.
    start_cold(&lambda, &format!("sfstack-{a}-sf-token-refresh"), 1).await?;

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

    // Outside the refresh-token flow (the mutation test's) sf-invoke-api logs in itself when
    // every session expired, so it needs the credentials: without them, refused.
    let mut document = inline_policy(&iam, &role).await?;
    let credentials_arn = aws_sdk_secretsmanager::Client::new(&sdk)
        .describe_secret()
        .secret_id(format!("sfstack-{a}/salesforce-credentials"))
        .send()
        .await?
        .arn()
        .context("the credentials secret")?
        .to_string();
    for statement in document["Statement"].as_array_mut().context("statements")? {
        if statement["Sid"] == "ReadSalesforceSecrets"
            && let Some(resources) = statement["Resource"].as_array_mut()
        {
            let before = resources.len();
            resources.retain(|resource| resource != &Value::String(credentials_arn.clone()));
            assert_eq!(resources.len(), before - 1, "{document}");
        }
    }
    put_inline_policy(&iam, &role, &document).await?;
    start_cold(&lambda, &format!("sfstack-{a}-sf-invoke-api"), 2).await?;
    reqwest::Client::new()
        .post(format!("{}/__emulator/sessions/expire", local.emulator()?))
        .send()
        .await?
        .error_for_status()?;
    let run = local.run(&["smoke-test", "--env", a, "--output", "json"], &[])?;
    let report = run.json()?;
    let (result, detail) = step(&report, "phoneLookup");
    assert_eq!(result, "failed", "{report}");
    assert!(
        detail.contains(&format!(
            "is not authorized to perform: secretsmanager:GetSecretValue on resource: {credentials_arn}"
        )),
        "{detail}"
    );
    local.run(&["deploy", "--env", a], &[])?.ok()?;

    // The local Lambda service, like Lambda, refuses an Invoke that nobody signed.
    let lambda_url = local.state()?["lambda"]["url"]
        .as_str()
        .context("the Lambda service's URL")?
        .to_string();
    let unsigned = reqwest::Client::new()
        .post(format!(
            "{lambda_url}/2015-03-31/functions/sfstack-{a}-sf-invoke-api/invocations"
        ))
        .body(r#"{"Details":{"Parameters":{"sf_operation":"phoneLookup","sf_phone":"+15555550100"}}}"#)
        .send()
        .await?;
    assert_eq!(unsigned.status(), 403);
    let error_type = unsigned
        .headers()
        .get("x-amzn-errortype")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = unsigned.text().await?;
    assert!(
        error_type.starts_with("MissingAuthenticationTokenException")
            || body.contains("MissingAuthenticationToken"),
        "{error_type} {body}"
    );
    local.run(&["teardown", "--env", a], &[])?.ok()?;
    local.run(&["teardown", "--env", b], &[])?.ok()?;
    Ok(())
}

/// What the Salesforce org does during a mutation's smoke test, so that every path a statement
/// serves is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Org {
    /// As deployed: the stored session works.
    AsDeployed,
    /// Sessions expired first: `sf-invoke-api` finds the stored session rejected and asks
    /// `sf-token-refresh` for a new one.
    SessionsExpired,
    /// Every refresh hands out a new refresh token, which the token refresh must store.
    RefreshTokensRotate,
}

/// The statements of every function policy that a smoke-test step needs: (function, Sid, the
/// step that fails without it or without any one of its actions, resources or condition
/// values, and what the org does meanwhile).
const NEEDED_STATEMENTS: &[(&str, &str, &str, Org)] = &[
    // In the refresh-token flow sf-invoke-api reads only the session, and asks
    // sf-token-refresh for a new one; in the other flows it reads the credentials too
    // (`iam_is_enforced_on_the_local_target` proves that).
    (
        "sf-invoke-api",
        "ReadSalesforceSession",
        "phoneLookup",
        Org::AsDeployed,
    ),
    (
        "sf-invoke-api",
        "RenewSessionThroughTokenRefresh",
        "phoneLookup",
        Org::SessionsExpired,
    ),
    (
        "sf-invoke-api",
        "DecryptSecretsThroughSecretsManager",
        "phoneLookup",
        Org::AsDeployed,
    ),
    (
        "sf-oauth-callback",
        "ReadCredentials",
        "oauthCallback",
        Org::AsDeployed,
    ),
    (
        "sf-oauth-callback",
        "StoreTokens",
        "oauthCallback",
        Org::AsDeployed,
    ),
    (
        "sf-oauth-callback",
        "UseSignInStateOnce",
        "oauthCallback",
        Org::AsDeployed,
    ),
    (
        "sf-oauth-callback",
        "DecryptThroughSecretsManagerAndDynamoDB",
        "oauthCallback",
        Org::AsDeployed,
    ),
    (
        "sf-secret-rotation",
        "RotateCredentials",
        "rotation",
        Org::AsDeployed,
    ),
    (
        "sf-secret-rotation",
        "EncryptSecretsThroughSecretsManager",
        "rotation",
        Org::AsDeployed,
    ),
    (
        "sf-token-refresh",
        "ReadCredentials",
        "tokenRefresh",
        Org::AsDeployed,
    ),
    // Only with credentials whose refresh token rotates, as the mutation test's are.
    (
        "sf-token-refresh",
        "KeepRotatedRefreshToken",
        "tokenRefresh",
        Org::RefreshTokensRotate,
    ),
    (
        "sf-token-refresh",
        "WriteSession",
        "tokenRefresh",
        Org::AsDeployed,
    ),
    (
        "sf-token-refresh",
        "EncryptSecretsThroughSecretsManager",
        "tokenRefresh",
        Org::AsDeployed,
    ),
    // Lambda sends a function's output to CloudWatch Logs with the function's role.
    ("sf-invoke-api", "WriteOwnLogs", "logs", Org::AsDeployed),
    ("sf-oauth-callback", "WriteOwnLogs", "logs", Org::AsDeployed),
    (
        "sf-secret-rotation",
        "WriteOwnLogs",
        "logs",
        Org::AsDeployed,
    ),
    ("sf-token-refresh", "WriteOwnLogs", "logs", Org::AsDeployed),
];

/// The resource permissions of the functions that a caller needs: (function, statement id,
/// the smoke-test step whose caller fails without it). Amazon Connect's is made with
/// `connect.instance_arn`, which the mutation test sets.
const NEEDED_PERMISSIONS: &[(&str, &str, &str)] = &[
    ("sf-invoke-api", "sfstack-amazon-connect", "phoneLookup"),
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

/// Least privilege, proven: every statement of every function's policy is needed, and every
/// action, resource and condition value of a statement that lists several. Each is removed in
/// turn (its function's next invocation forced cold, as after a deploy), and the smoke-test
/// step that needs it must fail with the AccessDenied AWS would give; the policy is then put
/// back and everything passes again. A statement added to a policy without a row in
/// `NEEDED_STATEMENTS` fails this test.
pub(crate) async fn every_function_policy_statement_is_needed() -> anyhow::Result<()> {
    let mut local = Local::new("mutation");
    let env = "e2e-mutation";
    // Refresh-token credentials: the only flow with rotation, so every function runs; and an
    // Amazon Connect instance, so the contact-flow steps are invoked as Connect.
    let flow = [
        ("SFSTACK_SALESFORCE_AUTH_FLOW", "refresh_token"),
        ("SFSTACK_CONNECT_INSTANCE_ARN", super::CONNECT_INSTANCE),
    ];
    local.run(&["deploy", "--env", env], &flow)?.ok()?;
    let sdk = local.sdk().await?;
    let iam = aws_sdk_iam::Client::new(&sdk);
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    let role = |function: &str| format!("sfstack-{env}-{function}-role");
    let policy_of = async |function: &str| inline_policy(&iam, &role(function)).await;
    let put_policy = async |function: &str, document: &Value| {
        put_inline_policy(&iam, &role(function), document).await
    };
    // A changed configuration makes the Lambda service start a new (cold) environment.
    let force_cold_start = async |function: &str, round: usize| -> anyhow::Result<()> {
        start_cold(&lambda, &format!("sfstack-{env}-{function}"), round).await
    };

    let emulator = local.emulator()?;
    let http = reqwest::Client::new();
    let org = async |org: Org| -> anyhow::Result<()> {
        let rotate = org == Org::RefreshTokensRotate;
        http.put(format!("{emulator}/__emulator/refresh-tokens/rotation"))
            .json(&serde_json::json!({ "enabled": rotate }))
            .send()
            .await?
            .error_for_status()?;
        if org == Org::SessionsExpired {
            http.post(format!("{emulator}/__emulator/sessions/expire"))
                .send()
                .await?
                .error_for_status()?;
        }
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
                    .any(|(needed_by, needed, _, _)| *needed_by == function && *needed == sid),
                "{function}'s statement {sid:?} is not proven needed"
            );
        }
    }

    // Each statement, and each action, resource and condition value of a statement that lists
    // several, is removed in turn.
    let mut round = 0;
    for (function, sid, needed_by, during) in NEEDED_STATEMENTS {
        let original = policy_of(function).await?;
        for (what, reduced) in reductions(&original, sid) {
            round += 1;
            put_policy(function, &reduced).await?;
            force_cold_start(function, round).await?;
            org(*during).await?;
            let run = local.run(&["smoke-test", "--env", env, "--output", "json"], &flow)?;
            let report = run.json()?;
            let (result, detail) = step(&report, needed_by);
            assert_eq!(
                (run.code, result),
                (3, "failed"),
                "without {function}'s {what}, {needed_by} must fail: {report}"
            );
            assert!(
                detail.contains("is not authorized to perform:")
                    && detail.contains(&format!("assumed-role/{}/", role(function))),
                "without {function}'s {what}, {needed_by} must fail on an AccessDenied of its role: {detail}"
            );
            put_policy(function, &original).await?;
            force_cold_start(function, round + 1000).await?;
            org(Org::AsDeployed).await?;
            if *during == Org::RefreshTokensRotate {
                // The rotated refresh token was lost with the permission to store it, and the
                // org retired the old one: sign in again, as a user would.
                store_fresh_refresh_token(&sdk, env, &emulator).await?;
            }
        }
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
        let run = local.run(&["smoke-test", "--env", env, "--output", "json"], &flow)?;
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

    let run = local.run(&["smoke-test", "--env", env, "--output", "json"], &flow)?;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    local.run(&["teardown", "--env", env], &[])?.ok()?;
    Ok(())
}

/// Stores a new refresh token for the demo user (signed in through the org's authorization-code
/// flow) in the environment's credentials secret.
async fn store_fresh_refresh_token(
    sdk: &aws_config::SdkConfig,
    env: &str,
    emulator: &str,
) -> anyhow::Result<()> {
    let refresh_token = fresh_refresh_token(emulator).await?;
    // The whole document, as deploy stores the demo org's (a failed rotation may have left
    // the current version unreadable).
    let credentials = serde_json::json!({
        "AuthFlow": "refresh_token",
        "LoginUrl": emulator,
        "ConsumerKey": sf_emulator::DEMO_CONSUMER_KEY,
        "ConsumerSecret": sf_emulator::DEMO_CONSUMER_SECRET,
        "Username": sf_emulator::DEMO_USERNAME,
        "StateSigningKey": "e2e-state-signing-key-restored-after-a-lost-refresh-token",
        "RefreshToken": refresh_token,
    });
    aws_sdk_secretsmanager::Client::new(sdk)
        .put_secret_value()
        .secret_id(format!("sfstack-{env}/salesforce-credentials"))
        .secret_string(credentials.to_string())
        .send()
        .await?;
    Ok(())
}

/// `policy` without statement `sid`, then without each of its actions, resources and condition
/// values where it lists several: (what was removed, the reduced policy).
/// A role's `sfstack` inline policy, decoded (IAM returns policy documents URL-encoded).
pub(super) async fn inline_policy(iam: &aws_sdk_iam::Client, role: &str) -> anyhow::Result<Value> {
    let policy = iam
        .get_role_policy()
        .role_name(role)
        .policy_name("sfstack")
        .send()
        .await?;
    Ok(serde_json::from_str(
        &percent_encoding::percent_decode_str(policy.policy_document()).decode_utf8_lossy(),
    )?)
}

/// Replaces a role's `sfstack` inline policy with `document`.
pub(super) async fn put_inline_policy(
    iam: &aws_sdk_iam::Client,
    role: &str,
    document: &Value,
) -> anyhow::Result<()> {
    iam.put_role_policy()
        .role_name(role)
        .policy_name("sfstack")
        .policy_document(document.to_string())
        .send()
        .await?;
    Ok(())
}

pub(super) fn reductions(policy: &Value, sid: &str) -> Vec<(String, Value)> {
    let Some(index) = policy["Statement"].as_array().and_then(|statements| {
        statements
            .iter()
            .position(|statement| statement["Sid"] == sid)
    }) else {
        panic!("no statement {sid} in {policy}");
    };
    let mut whole = policy.clone();
    if let Some(statements) = whole["Statement"].as_array_mut() {
        statements.remove(index);
    }
    let mut found = vec![(format!("statement {sid}"), whole)];
    let mut without = |what: String, change: &dyn Fn(&mut Value)| {
        let mut reduced = policy.clone();
        change(&mut reduced["Statement"][index]);
        found.push((what, reduced));
    };
    let statement = &policy["Statement"][index];
    for field in ["Action", "Resource"] {
        let values = statement[field].as_array().cloned().unwrap_or_default();
        if values.len() < 2 {
            continue;
        }
        for value in &values {
            without(format!("{sid}'s {field} {value}"), &|statement| {
                if let Some(list) = statement[field].as_array_mut() {
                    list.retain(|kept| kept != value);
                }
            });
        }
    }
    for (operator, keys) in statement["Condition"].as_object().into_iter().flatten() {
        for (key, values) in keys.as_object().into_iter().flatten() {
            let values = values.as_array().cloned().unwrap_or_default();
            if values.len() < 2 {
                continue;
            }
            for value in &values {
                without(format!("{sid}'s {key} {value}"), &|statement| {
                    if let Some(list) = statement["Condition"][operator][key].as_array_mut() {
                        list.retain(|kept| kept != value);
                    }
                });
            }
        }
    }
    found
}

/// What a function's role does not need, it cannot do: each role's session (assumed through the
/// AWS gateway, as the Lambda service does) is refused another environment's secret,
/// `kms:Decrypt` outside Secrets Manager and DynamoDB, writing the credentials it only reads,
/// `DeleteItem` on the tokens table and invoking a function, each with AWS's message naming the
/// action.
pub(crate) async fn a_function_role_can_do_nothing_else() -> anyhow::Result<()> {
    let mut local = Local::new("negative");
    let (a, b) = ("e2e-neg-a", "e2e-neg-b");
    local.run(&["deploy", "--env", a], &[])?.ok()?;
    local.run(&["deploy", "--env", b], &[])?.ok()?;
    let gateway = local.state()?["gateway"]["url"]
        .as_str()
        .context("no gateway url")?
        .to_string();
    let config = |key: &str, secret: &str, token: Option<String>| {
        aws_reqwest::defaults()
            .endpoint_url(&gateway)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sts::config::Credentials::new(
                key, secret, token, None, "e2e",
            ))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .load()
    };
    let as_lambda = config(
        lambda_runner::LAMBDA_SERVICE_ACCESS_KEY,
        lambda_runner::LAMBDA_SERVICE_ACCESS_KEY,
        None,
    )
    .await;
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
        if function == "sf-oauth-callback" {
            // The internet-facing callback reads the OAuth client's secret only: never the
            // credentials (a JWT key, a password, a refresh token).
            denied(
                &format!("{function} reading its own environment's credentials"),
                secrets
                    .get_secret_value()
                    .secret_id(format!("sfstack-{a}/salesforce-credentials"))
                    .send()
                    .await
                    .map(drop)
                    .map_err(|error| {
                        show(&aws_sdk_secretsmanager::error::DisplayErrorContext(error))
                    }),
                "secretsmanager:GetSecretValue",
            );
            denied(
                &format!("{function} writing its OAuth client"),
                secrets
                    .put_secret_value()
                    .secret_id(format!("sfstack-{a}/salesforce-oauth-client"))
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

/// The deployer is decided too, as the account's administrator: an operation the local cloud
/// does not model is refused rather than waved through, a request with no signature is refused
/// as AWS refuses it, and a key policy that leaves the account out shuts out the functions
/// (their role allows `kms:Decrypt`, but for KMS the key policy must allow as well) and the
/// deployer alike, as it does on AWS.
pub(crate) async fn the_deployer_is_decided_too() -> anyhow::Result<()> {
    let mut local = Local::new("deployer");
    let env = "e2e-deployer";
    local.run(&["deploy", "--env", env], &[])?.ok()?;
    let sdk = local.sdk().await?;

    let unmodelled = aws_sdk_secretsmanager::Client::new(&sdk)
        .batch_get_secret_value()
        .secret_id_list(format!("sfstack-{env}/salesforce-credentials"))
        .send()
        .await
        .err()
        .map(|error| aws_sdk_secretsmanager::error::DisplayErrorContext(error).to_string())
        .unwrap_or_default();
    assert!(
        unmodelled.contains("secretsmanager:BatchGetSecretValue")
            && unmodelled.contains("is not modelled by the local cloud"),
        "{unmodelled}"
    );

    let gateway = local.state()?["gateway"]["url"]
        .as_str()
        .context("no gateway url")?
        .to_string();
    let unsigned = reqwest::Client::new()
        .post(&gateway)
        .header("x-amz-target", "secretsmanager.ListSecrets")
        .header("content-type", "application/x-amz-json-1.1")
        .body("{}")
        .send()
        .await?;
    let body: Value = unsigned.json().await?;
    assert_eq!(
        body["__type"], "MissingAuthenticationTokenException",
        "{body}"
    );

    // The key policy without the statement that lets the account's IAM policies grant access.
    let kms = aws_sdk_kms::Client::new(&sdk);
    let key_arn = kms
        .describe_key()
        .key_id(format!("alias/sfstack-{env}"))
        .send()
        .await?
        .key_metadata()
        .and_then(|metadata| metadata.arn())
        .context("the environment's key")?
        .to_string();
    let original = kms
        .get_key_policy()
        .key_id(&key_arn)
        .policy_name("default")
        .send()
        .await?
        .policy()
        .context("a key policy")?
        .to_string();
    let locked: Value = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "SomebodyElse",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::123456789012:role/somebody-else"},
            "Action": "kms:*",
            "Resource": "*"
        }]
    });
    kms.put_key_policy()
        .key_id(&key_arn)
        .policy_name("default")
        .policy(locked.to_string())
        .bypass_policy_lockout_safety_check(true)
        .send()
        .await?;

    let run = local.run(&["smoke-test", "--env", env, "--output", "json"], &[])?;
    let report = run.json()?;
    let (result, detail) = step(&report, "phoneLookup");
    assert_eq!(result, "failed", "{report}");
    assert!(
        detail.contains(&format!(
            "is not authorized to perform: kms:Decrypt on resource: {key_arn}"
        )) && detail.contains("because no resource-based policy allows"),
        "{detail}"
    );
    let run = local.run(&["deploy", "--env", env], &[])?;
    assert_ne!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("user/sfstack-local-deployer is not authorized to perform: kms:")
            && run.stderr.contains(&key_arn),
        "{}",
        run.stderr
    );

    // On AWS only AWS Support could give the key back; here the moto server can.
    let behind = local.moto_sdk().await?;
    aws_sdk_kms::Client::new(&behind)
        .put_key_policy()
        .key_id(&key_arn)
        .policy_name("default")
        .policy(original)
        .send()
        .await?;
    // The gateway keeps what it read until a change goes through it; this one went behind its
    // back, so the test makes a harmless change through it.
    aws_sdk_iam::Client::new(&sdk)
        .tag_role()
        .role_name(format!("sfstack-{env}-sf-invoke-api-role"))
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key("e2e-restored")
                .value("key-policy")
                .build()?,
        )
        .send()
        .await?;
    local.run(&["deploy", "--env", env], &[])?.ok()?;
    let run = local.run(&["smoke-test", "--env", env], &[])?;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    local.run(&["teardown", "--env", env], &[])?.ok()?;
    Ok(())
}
