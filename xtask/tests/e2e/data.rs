//! Data that must survive a mistaken teardown: a protected environment's users' OAuth tokens
//! and its secrets.

use anyhow::Context;

use super::*;

/// Tearing down a protected environment (`prod`) does not delete its users' OAuth tokens
/// unless `--delete-data` says so, and leaves its secrets recoverable: a deploy afterwards
/// restores them with their values.
pub(crate) async fn a_protected_environment_keeps_its_tokens_and_secrets_through_a_teardown()
-> anyhow::Result<()> {
    let mut local = Local::new("keep");
    let env = "prod";
    local.run(&["deploy", "--env", env], &[])?.ok()?;
    let sdk = local.sdk().await?;
    let table = format!("sfstack-{env}-oauth-tokens");
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    dynamodb
        .put_item()
        .table_name(&table)
        .item(
            "wa_id",
            aws_sdk_dynamodb::types::AttributeValue::S("user-1".into()),
        )
        .send()
        .await?;
    let credentials_secret = format!("sfstack-{env}/salesforce-credentials");
    let credentials = secret_json(&sdk, &credentials_secret).await?;

    let refused = local.run(&["teardown", "--env", env, "--force"], &[])?;
    assert_ne!(refused.code, 0, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("holds users' OAuth tokens")
            && refused.stderr.contains("--delete-data"),
        "{}",
        refused.stderr
    );
    let kept = dynamodb
        .get_item()
        .table_name(&table)
        .key(
            "wa_id",
            aws_sdk_dynamodb::types::AttributeValue::S("user-1".into()),
        )
        .send()
        .await?;
    assert!(kept.item().is_some(), "the tokens are still there");

    local
        .run(&["teardown", "--env", env, "--force", "--delete-data"], &[])?
        .ok()?;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let described = secrets
        .describe_secret()
        .secret_id(&credentials_secret)
        .send()
        .await
        .context("the credentials secret is recoverable, not gone")?;
    assert!(described.deleted_date().is_some(), "scheduled for deletion");

    let again = local.run(&["deploy", "--env", env], &[])?.ok()?;
    assert!(
        again
            .stderr
            .contains(&format!("restored secret {credentials_secret}")),
        "{}",
        again.stderr
    );
    assert_eq!(secret_json(&sdk, &credentials_secret).await?, credentials);
    let smoke = local.run(&["smoke-test", "--env", env], &[])?;
    assert_eq!(smoke.code, 0, "{}\n{}", smoke.stdout, smoke.stderr);
    local
        .run(&["teardown", "--env", env, "--force", "--delete-data"], &[])?
        .ok()?;
    Ok(())
}

/// A stack that failed to delete (`DELETE_FAILED`) is replaced by the next deploy (deleted and
/// created again), which would take its users' OAuth tokens with it: the deploy refuses while
/// the table holds any and says why; `--replace-failed-stack` confirms.
pub(crate) async fn a_failed_stack_holding_tokens_is_not_replaced_without_confirmation()
-> anyhow::Result<()> {
    let mut local = Local::new("stuck-data");
    let env = "e2e-stuck-data";
    let stack = format!("sfstack-{env}");
    local.run(&["deploy", "--env", env], &[])?.ok()?;
    let sdk = local.sdk().await?;
    let table = format!("sfstack-{env}-oauth-tokens");
    let user = || aws_sdk_dynamodb::types::AttributeValue::S("user-1".into());
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    dynamodb
        .put_item()
        .table_name(&table)
        .item("wa_id", user())
        .send()
        .await?;
    tell_gateway(
        &local,
        "/__sfstack/fail-delete",
        serde_json::json!({
            "stack": stack,
            "logical_id": "TokenRefreshSchedule",
            "resource_type": "AWS::Events::Rule",
            "reason": "Resource handler returned message: \"Rate exceeded\" (HandlerErrorCode: Throttling)",
        }),
    )
    .await?;
    let teardown = local.run(&["teardown", "--env", env], &[])?;
    assert_ne!(teardown.code, 0, "{}", teardown.stderr);
    assert!(
        teardown.stderr.contains("DELETE_FAILED"),
        "{}",
        teardown.stderr
    );

    let refused = local.run(&["deploy", "--env", env], &[])?;
    assert_ne!(refused.code, 0, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("holds users' OAuth tokens")
            && refused.stderr.contains("--replace-failed-stack"),
        "{}",
        refused.stderr
    );
    let kept = dynamodb
        .get_item()
        .table_name(&table)
        .key("wa_id", user())
        .send()
        .await?;
    assert!(kept.item().is_some(), "the tokens are still there");

    local
        .run(&["deploy", "--env", env, "--replace-failed-stack"], &[])?
        .ok()?;
    let smoke = local.run(&["smoke-test", "--env", env], &[])?;
    assert_eq!(smoke.code, 0, "{}\n{}", smoke.stdout, smoke.stderr);
    local.run(&["teardown", "--env", env], &[])?.ok()?;
    Ok(())
}

/// In an org that rotates refresh tokens, a login spends the token it uses. The refresh token
/// given to `deploy` is checked by introspection instead, which spends nothing; the one login
/// of the deploy is the first session, made by `sf-token-refresh`, the function that writes the
/// rotated token back. What is stored is then the current token, and the functions go on using
/// and rotating it.
pub(crate) async fn a_given_rotating_refresh_token_is_checked_without_being_spent()
-> anyhow::Result<()> {
    let mut local = Local::new("introspect");
    let env = "e2e-introspect";
    local.run(&["local", "up"], &[])?.ok()?;
    let emulator = local.emulator()?;
    let http = reqwest::Client::new();
    http.put(format!("{emulator}/__emulator/refresh-tokens/rotation"))
        .json(&serde_json::json!({"enabled": true}))
        .send()
        .await?
        .error_for_status()?;
    let refresh_token = fresh_refresh_token(&emulator).await?;
    let document = serde_json::json!({
        "AuthFlow": "refresh_token",
        "LoginUrl": emulator,
        "ConsumerKey": sf_emulator::DEMO_CONSUMER_KEY,
        "ConsumerSecret": sf_emulator::DEMO_CONSUMER_SECRET,
        "Username": sf_emulator::DEMO_USERNAME,
        "StateSigningKey": "e2e-state-signing-key-for-the-introspection-drill",
        "RefreshToken": refresh_token,
    })
    .to_string();
    http.delete(format!("{emulator}/__emulator/requests"))
        .send()
        .await?
        .error_for_status()?;
    local
        .run(
            &["deploy", "--env", env],
            &[
                ("SFSTACK_SF_CREDENTIALS", document.as_str()),
                ("SFSTACK_SALESFORCE_AUTH_FLOW", "refresh_token"),
            ],
        )?
        .ok()?;
    let requests: Vec<Value> = http
        .get(format!("{emulator}/__emulator/requests"))
        .send()
        .await?
        .json()
        .await?;
    let grants: Vec<&str> = requests
        .iter()
        .filter_map(|request| request["grant_type"].as_str())
        .collect();
    // The check spends nothing; the one refresh is the token refresh's first session, which
    // stores the rotated token.
    assert_eq!(
        grants,
        ["refresh_token"],
        "the deploy spent the refresh token more than once: {requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|request| request["path"] == "/services/oauth2/introspect"),
        "the deploy checked the token: {requests:?}"
    );
    let sdk = local.sdk().await?;
    let stored = secret_json(&sdk, &format!("sfstack-{env}/salesforce-credentials")).await?;
    let stored_token = stored["RefreshToken"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_ne!(stored_token, refresh_token, "the rotated token was stored");
    let active = salesforce::refresh_token_is_active(
        &salesforce::ClientConfig::default(),
        &emulator,
        sf_emulator::DEMO_CONSUMER_KEY,
        &salesforce::Secret::new(sf_emulator::DEMO_CONSUMER_SECRET),
        &salesforce::Secret::new(stored_token.clone()),
    )
    .await?;
    assert!(active, "the stored refresh token is the current one");

    // The functions use it: the token refresh rotates it and stores the new one.
    let smoke = local.run(&["smoke-test", "--env", env], &[])?;
    assert_eq!(smoke.code, 0, "{}\n{}", smoke.stdout, smoke.stderr);
    let rotated = secret_json(&sdk, &format!("sfstack-{env}/salesforce-credentials")).await?;
    assert_ne!(
        rotated["RefreshToken"].as_str(),
        Some(stored_token.as_str())
    );

    // The token given first is now retired: a deploy with it is refused by name, and changes
    // nothing.
    let refused = local.run(
        &["deploy", "--env", env],
        &[
            ("SFSTACK_SF_CREDENTIALS", document.as_str()),
            ("SFSTACK_SALESFORCE_AUTH_FLOW", "refresh_token"),
        ],
    )?;
    assert_ne!(refused.code, 0);
    assert!(
        refused
            .stderr
            .contains("refresh token from SFSTACK_SF_CREDENTIALS is not active"),
        "{}",
        refused.stderr
    );
    assert!(
        !refused.stderr.contains(&refresh_token),
        "{}",
        refused.stderr
    );
    let kept = secret_json(&sdk, &format!("sfstack-{env}/salesforce-credentials")).await?;
    assert_eq!(kept["RefreshToken"], rotated["RefreshToken"]);

    // sf-invoke-api never spends the rotating token itself. With every session expired,
    // concurrent calls (cold, as after a deploy) ask sf-token-refresh for a session, which
    // stores each token it is handed: the stored token stays the current one, and the next
    // scheduled refresh works. Before, each environment logged in with the stored token and
    // kept the rotated one in memory, and the stored one died with the first login.
    http.post(format!("{emulator}/__emulator/sessions/expire"))
        .send()
        .await?
        .error_for_status()?;
    start_cold(
        &aws_sdk_lambda::Client::new(&sdk),
        &format!("sfstack-{env}-sf-invoke-api"),
        1,
    )
    .await?;
    let calls: Vec<std::process::Child> = (0..4)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_xtask"))
                .args([
                    "invoke",
                    "sf-invoke-api",
                    "--env",
                    env,
                    "--event",
                    "phoneLookup",
                ])
                .current_dir(root())
                .env("SFSTACK_LOCAL_DIR", &local.dir)
                .env("NO_COLOR", "1")
                .env_remove("SFSTACK_SF_CREDENTIALS")
                .env_remove("SFSTACK_SF_CREDENTIALS_FILE")
                .env_remove("SFSTACK_ENV")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    for call in calls {
        let output = call.wait_with_output()?;
        assert!(
            output.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let after = secret_json(&sdk, &format!("sfstack-{env}/salesforce-credentials")).await?;
    let after_token = after["RefreshToken"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // Compared, never printed: they are tokens.
    assert!(
        Some(after_token.as_str()) != kept["RefreshToken"].as_str(),
        "the session was renewed through sf-token-refresh, which stored the rotated token"
    );
    let active = salesforce::refresh_token_is_active(
        &salesforce::ClientConfig::default(),
        &emulator,
        sf_emulator::DEMO_CONSUMER_KEY,
        &salesforce::Secret::new(sf_emulator::DEMO_CONSUMER_SECRET),
        &salesforce::Secret::new(after_token),
    )
    .await?;
    assert!(active, "the stored refresh token is still the current one");
    let smoke = local.run(&["smoke-test", "--env", env], &[])?;
    assert_eq!(smoke.code, 0, "{}\n{}", smoke.stdout, smoke.stderr);
    local.run(&["teardown", "--env", env], &[])?.ok()?;
    Ok(())
}
