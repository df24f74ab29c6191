//! One deploy or teardown at a time per environment, across machines: the lock object in the
//! artifacts bucket (xtask/src/lock.rs).

use std::process::Stdio;

use anyhow::Context;

use super::*;

const BUCKET: &str = "sfstack-artifacts-123456789012-us-east-1";

impl Local {
    /// `xtask ARGS` started in the background, on this local cloud.
    fn start(&self, args: &[&str]) -> anyhow::Result<std::process::Child> {
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(args)
            .current_dir(root())
            .env("SFSTACK_LOCAL_DIR", &self.dir)
            .env("NO_COLOR", "1")
            .env_remove("SFSTACK_TARGET")
            .env_remove("SFSTACK_ENV")
            .env_remove("SFSTACK_SF_CREDENTIALS")
            .env_remove("SFSTACK_SF_CREDENTIALS_FILE")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting xtask {args:?}"))
    }
}

/// Two deploys of one environment started together (a laptop and CI): one takes the lock, the
/// other says who holds it and waits, and both end converged (one key, one stack, the lock
/// released). A lock left by a killed run blocks with its owner named, and `--break-lock`
/// recovers it.
pub(crate) async fn two_deploys_of_one_environment_run_one_after_the_other() -> anyhow::Result<()> {
    let mut local = Local::new("lock");
    let env = "e2e-lock";
    local.run(&["local", "up"], &[])?.ok()?;
    let first = local.start(&["deploy", "--env", env])?;
    let second = local.start(&["deploy", "--env", env])?;
    let outputs = [first.wait_with_output()?, second.wait_with_output()?];
    let mut waited = 0;
    for output in &outputs {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        if stderr.contains(&format!("lock: {env} is being deployed by arn:aws:")) {
            waited += 1;
        }
    }
    assert_eq!(waited, 1, "exactly one deploy waited for the other");
    let sdk = local.sdk().await?;
    assert_eq!(keys_of(&sdk, env).await?, 1, "one key for the environment");
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    let lock_key = format!("locks/{env}.json");
    assert!(
        s3.head_object()
            .bucket(BUCKET)
            .key(&lock_key)
            .send()
            .await
            .is_err(),
        "the lock is released"
    );
    let smoke = local.run(&["smoke-test", "--env", env], &[])?;
    assert_eq!(smoke.code, 0, "{}\n{}", smoke.stdout, smoke.stderr);

    // A run that was killed left its lock.
    let stale = serde_json::json!({
        "environment": env,
        "command": "deploy",
        "owner": "arn:aws:iam::123456789012:user/someone",
        "host": "a-laptop",
        "pid": 4242,
        "started_at": "2026-11-30T09:00:00Z",
    });
    s3.put_object()
        .bucket(BUCKET)
        .key(&lock_key)
        .body(serde_json::to_vec(&stale)?.into())
        .send()
        .await?;
    let blocked = local.run(&["deploy", "--env", env, "--lock-wait", "0s"], &[])?;
    assert_ne!(blocked.code, 0, "{}", blocked.stderr);
    assert!(
        blocked.stderr.contains(
            "is being deployed by arn:aws:iam::123456789012:user/someone on a-laptop (pid 4242) since 2026-11-30T09:00:00Z"
        ) && blocked.stderr.contains("--break-lock"),
        "{}",
        blocked.stderr
    );
    let recovered = local
        .run(&["deploy", "--env", env, "--break-lock"], &[])?
        .ok()?;
    assert!(
        recovered.stderr.contains("breaking the lock of e2e-lock"),
        "{}",
        recovered.stderr
    );
    local.run(&["teardown", "--env", env], &[])?.ok()?;
    Ok(())
}
