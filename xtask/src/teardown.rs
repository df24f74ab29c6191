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
    pub stack_deleted: bool,
    pub log_groups: Vec<String>,
    pub removed: infra::Removed,
    pub seconds: f64,
}

impl TeardownReport {
    pub fn is_empty(&self) -> bool {
        !self.stack_deleted && self.log_groups.is_empty() && self.removed.is_empty()
    }
}

/// `cargo xtask teardown`: the stack (functions with their URL and permissions, log groups,
/// the rule, the table), leftover log groups, then secrets, roles and the key. Idempotent;
/// works on a half-created environment.
pub async fn teardown(
    cloud: &Cloud,
    root: &Path,
    environment: &str,
) -> anyhow::Result<TeardownReport> {
    let started = Instant::now();
    let names = Names::new(environment);
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
    let removed = infra::teardown_environment(&cloud.clients, &names).await;
    crate::progress::finish(format!(
        "✓ teardown of {environment} ({:.1} s)",
        started.elapsed().as_secs_f64()
    ));
    let removed = removed?;
    let dir = cloud.environment_dir(root, environment);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(TeardownReport {
        environment: environment.to_string(),
        stack_deleted,
        log_groups,
        removed,
        seconds: started.elapsed().as_secs_f64(),
    })
}
