//! AWS behaviours moto does not have, which the local cloud reproduces, and the deploy paths
//! they exercise.

use super::*;

/// Secrets Manager deletes a force-deleted secret asynchronously: for a while its name cannot
/// be reused and the secret cannot be restored. A deploy right after a teardown of the same
/// environment waits for the name and converges, instead of failing or restoring a secret that
/// is being deleted.
#[test]
fn a_deploy_right_after_a_teardown_converges() -> anyhow::Result<()> {
    let mut local = Local::new("recreate");
    let env = "e2e-recreate";
    local.run(&["deploy", "--env", env], &[])?.ok()?;
    local.run(&["teardown", "--env", env], &[])?.ok()?;
    let again = local.run(&["deploy", "--env", env], &[])?.ok()?;
    assert!(
        again
            .stderr
            .contains("waiting for Secrets Manager to finish deleting the old secret"),
        "the deploy met the deletion in progress: {}",
        again.stderr
    );
    let smoke = local.run(&["smoke-test", "--env", env], &[])?;
    assert_eq!(smoke.code, 0, "{}\n{}", smoke.stdout, smoke.stderr);
    local.run(&["teardown", "--env", env], &[])?.ok()?;
    Ok(())
}
