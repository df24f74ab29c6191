//! `--target aws` reads its credentials as the AWS CLI does: the standard chain, with the
//! profile's settings. There is no AWS account here, so the profile's `endpoint_url` (a setting
//! of the chain itself) points every client at a moto server; the chain is the real one.

use super::Local;

/// A profile whose credentials come from `credential_process` (a company's credential broker,
/// aws-vault, a hardware key). aws-config runs the process only when built with its
/// `credentials-process` feature, which the workspace's SDK leaves off: without it, every
/// command on such a profile fails before its first call.
pub(crate) fn a_profiles_credential_process_is_run() -> anyhow::Result<()> {
    let moto = sfstack_test_support::MotoServer::start()?;
    let mut local = Local::new("credential-process");
    std::fs::create_dir_all(&local.dir)?;
    let ran = local.dir.join("process-ran");
    let process = local.dir.join("credentials.sh");
    std::fs::write(
        &process,
        format!(
            "touch '{}'\necho '{{\"Version\": 1, \"AccessKeyId\": \"AKIAPROCESSEXAMPLE\", \"SecretAccessKey\": \"from-the-process\"}}'\n",
            ran.display()
        ),
    )?;
    let config = local.dir.join("aws-config");
    std::fs::write(
        &config,
        format!(
            "[profile broker]\nregion = us-east-1\nendpoint_url = {}\ncredential_process = sh {}\n",
            moto.endpoint(),
            process.display()
        ),
    )?;
    let no_credentials = local.dir.join("aws-credentials");
    std::fs::write(&no_credentials, "")?;
    let run = local.run(
        &[
            "envs",
            "--target",
            "aws",
            "--profile",
            "broker",
            "--output",
            "json",
        ],
        &[
            ("AWS_CONFIG_FILE", &config.to_string_lossy()),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                &no_credentials.to_string_lossy(),
            ),
        ],
    )?;
    assert_eq!(
        run.code, 0,
        "envs on the profile:\n{}\n{}",
        run.stdout, run.stderr
    );
    assert!(ran.exists(), "the profile's credential_process was run");
    assert_eq!(
        run.json()?,
        serde_json::json!([]),
        "no environments in moto"
    );
    Ok(())
}
