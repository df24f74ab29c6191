//! `cargo xtask teardown`: removes what an environment created, in the reverse order of the
//! deploy, from any partial state; a second run finds nothing to remove.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

use crate::aws_error::AwsContext;
use crate::cloud::Cloud;
use crate::infra;
use crate::naming::{FUNCTIONS, Names};
use crate::stack;

/// What a teardown removed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TeardownReport {
    pub environment: String,
    /// The Amazon Connect instance whose association with the contact-flow function was
    /// removed.
    pub connect_association: Option<String>,
    /// Whether the sample contact flow (`connect.sample_flow`) was deleted from it.
    pub sample_flow_deleted: bool,
    pub stack_deleted: bool,
    pub log_groups: Vec<String>,
    pub removed: infra::Removed,
    pub seconds: f64,
}

impl TeardownReport {
    pub fn is_empty(&self) -> bool {
        !self.stack_deleted
            && self.connect_association.is_none()
            && !self.sample_flow_deleted
            && self.log_groups.is_empty()
            && self.removed.is_empty()
    }
}

/// What a teardown may destroy for good.
#[derive(Debug, Clone, Copy, Default)]
pub struct Data {
    /// A protected environment: its users' OAuth tokens are kept unless `delete` says
    /// otherwise, and its secrets stay recoverable for [`PROTECTED_SECRET_RECOVERY_DAYS`].
    pub protected: bool,
    /// `--delete-data`: the tokens table may go even when it holds tokens.
    pub delete: bool,
}

/// How long a protected environment's secrets stay recoverable after a teardown (the most
/// Secrets Manager allows).
pub const PROTECTED_SECRET_RECOVERY_DAYS: i32 = 30;

/// `cargo xtask teardown`: the stack (functions with their URL and permissions, log groups,
/// the rule, the table), leftover log groups, then secrets, roles and the key. Idempotent;
/// works on a half-created environment.
pub async fn teardown(
    cloud: &Cloud,
    root: &Path,
    environment: &str,
    data: Data,
) -> anyhow::Result<TeardownReport> {
    let started = Instant::now();
    let names = Names::new(environment);
    if data.protected && !data.delete {
        refuse_to_lose_tokens(cloud, &names).await?;
    }
    crate::progress::start("teardown: Amazon Connect association");
    let (connect_association, sample_flow_deleted) = remove_connect_association(cloud, &names)
        .await
        .with_context(|| format!("teardown of {environment}"))?;
    crate::progress::start(format!("teardown: deleting stack {}", names.stack()));
    let stack_deleted = stack::delete(&cloud.cloudformation, &names.stack())
        .await
        .with_context(|| {
            format!(
                "teardown of {environment}: deleting stack {}",
                names.stack()
            )
        })?;
    crate::progress::start("teardown: log groups");
    let mut log_groups = Vec::new();
    for function in FUNCTIONS {
        let group = names.log_group(function);
        match cloud
            .logs
            .delete_log_group()
            .log_group_name(&group)
            .send()
            .await
        {
            Ok(_) => log_groups.push(group),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|error| error.is_resource_not_found_exception()) => {}
            Err(error) => {
                return Err(error).aws_context(|| {
                    format!("teardown of {environment}: deleting log group {group}")
                });
            }
        }
    }
    crate::progress::start("teardown: secrets, roles, key");
    let secret_deletion = if data.protected {
        infra::SecretDeletion::Recoverable(PROTECTED_SECRET_RECOVERY_DAYS)
    } else {
        infra::SecretDeletion::Immediate
    };
    let removed = infra::teardown_environment(&cloud.clients, &names, secret_deletion).await;
    crate::progress::finish(format!(
        "✓ teardown of {environment} ({:.1} s)",
        started.elapsed().as_secs_f64()
    ));
    let removed = removed?;
    let dir = cloud.environment_dir(root, environment);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(TeardownReport {
        environment: environment.to_string(),
        connect_association,
        sample_flow_deleted,
        stack_deleted,
        log_groups,
        removed,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The association of the contact-flow function with the Amazon Connect instance its
/// permission admits (the one deploy associated it with), removed before the function goes:
/// the instance would otherwise keep listing a function that no longer exists. Returns the
/// instance, if there was an association to remove.
async fn remove_connect_association(
    cloud: &Cloud,
    names: &Names,
) -> anyhow::Result<(Option<String>, bool)> {
    let function = names.function("sf-invoke-api");
    let statements = crate::deploy::wiring::policy_statements(cloud, &function).await?;
    let Some(arn) = crate::deploy::wiring::connect_instance_of(&statements) else {
        return Ok((None, false));
    };
    let Ok(instance) = crate::connect::Instance::parse(&arn) else {
        note!(
            "warning: the permission of {function} names {arn:?}, which is not an Amazon Connect instance ARN; no association was removed"
        );
        return Ok((None, false));
    };
    let function_arn = cloud.arn("lambda", &format!("function:{function}"));
    let removed = async {
        // The sample flow first: it invokes the function.
        let flow_deleted =
            crate::connect::delete_flow(cloud, &instance, &names.sample_flow()).await?;
        let disassociated = crate::connect::disassociate(cloud, &instance, &function_arn).await?;
        anyhow::Ok((disassociated.then(|| arn.clone()), flow_deleted))
    }
    .await;
    match removed {
        // What the caller may not do in the instance stays; the environment goes anyway, and
        // the instance then lists a function that is gone, which invokes nothing.
        Err(error) if crate::connect::access_denied(&error) => {
            note!(
                "warning: {error:#}\nthe instance keeps them; to remove them by hand: aws connect disassociate-lambda-function --instance-id {} --function-arn {function_arn} (and delete the contact flow {} there)",
                instance.id,
                names.sample_flow()
            );
            Ok((None, false))
        }
        removed => removed,
    }
}

/// A protected environment's tokens table holds its users' Salesforce sign-ins: deleting the
/// stack deletes the table, and every user would have to sign in again. Refuses while it holds
/// any, unless `--delete-data` says so.
async fn refuse_to_lose_tokens(cloud: &Cloud, names: &Names) -> anyhow::Result<()> {
    if holds_tokens(cloud, names).await? {
        anyhow::bail!(
            "{} is a protected environment and its table {} holds users' OAuth tokens; nothing was removed\nhint: pass --delete-data to delete them with the environment (every user then signs in again; with point-in-time recovery on, AWS keeps a backup of a deleted table for 35 days)",
            names.environment,
            names.oauth_table()
        );
    }
    Ok(())
}

/// Whether the environment's tokens table exists and holds any user's tokens.
pub async fn holds_tokens(cloud: &Cloud, names: &Names) -> anyhow::Result<bool> {
    let table = names.oauth_table();
    let scanned = cloud
        .dynamodb
        .scan()
        .table_name(&table)
        .limit(1)
        .select(aws_sdk_dynamodb::types::Select::Count)
        .send()
        .await;
    match scanned {
        Ok(output) => Ok(output.count() > 0),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|error| error.is_resource_not_found_exception()) =>
        {
            Ok(false)
        }
        Err(error) => Err(error).aws_context(|| format!("reading table {table}")),
    }
}
