//! The whole flow on the local target, and the drills for interrupted and refused deploys.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::Value;

use super::*;

/// The whole flow on the local target: two environments side by side (JWT and refresh-token
/// credentials), a no-op redeploy, smoke tests (also with every Salesforce session expired),
/// one environment torn down without touching the other, nothing left after both are gone,
/// and no credential value in anything the tool wrote.
pub(crate) async fn whole_flow_on_the_local_target() -> anyhow::Result<()> {
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
    let key_line = local
        .demo_key()?
        .private_key_pem()
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
pub(crate) async fn drills_on_the_local_target() -> anyhow::Result<()> {
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
    let wrong_key = sf_emulator::DemoKey::generate()?
        .private_key_pem()
        .to_string();
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
        "PrivateKey": local.demo_key()?.private_key_pem(),
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

pub(crate) fn unknown_environment_names_are_refused_before_anything_runs() -> anyhow::Result<()> {
    let mut local = Local::new("names");
    let run = local.run(&["deploy", "--env", "Bad_Name"], &[])?;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("environment name"), "{}", run.stderr);
    assert!(!Path::new(&local.dir).join("state.json").exists());
    Ok(())
}
