//! `envs` and `prune`: the environments on a target, found by their tags (stacks) and their
//! role names (environments whose deploy stopped before the stack), and the stale ones torn down.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use crate::aws_error::AwsContext;
use crate::cloud::Cloud;
use crate::config::{FILE_NAME, Settings};
use crate::infra::{TAG_BRANCH, TAG_CREATED_AT, TAG_ENV, TAG_EXPIRES_AT};
use crate::naming::FUNCTIONS;
use crate::teardown;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct EnvInfo {
    pub name: String,
    pub branch: Option<String>,
    /// The stack's status, or `PARTIAL (no stack)` for an environment with roles but no stack.
    pub status: String,
    pub created_at: Option<String>,
    pub expires_at: Option<String>,
    /// Whole hours since creation, when known.
    pub age_hours: Option<i64>,
    pub expired: bool,
    pub protected: bool,
}

fn parse_time(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|time| time.with_timezone(&chrono::Utc))
}

fn info(root: &Path, name: String, status: String, tags: &BTreeMap<String, String>) -> EnvInfo {
    let now = chrono::Utc::now();
    let created_at = tags.get(TAG_CREATED_AT).cloned();
    let expires_at = tags.get(TAG_EXPIRES_AT).cloned();
    let settings = Settings::load(&root.join(FILE_NAME), &name).ok();
    let protected = crate::config::is_protected(&name, settings.as_ref());
    EnvInfo {
        branch: tags
            .get(TAG_BRANCH)
            .cloned()
            .filter(|branch| !branch.is_empty()),
        age_hours: created_at
            .as_deref()
            .and_then(parse_time)
            .map(|created| (now - created).num_hours()),
        expired: expires_at
            .as_deref()
            .and_then(parse_time)
            .is_some_and(|expiry| expiry <= now),
        created_at,
        expires_at,
        status,
        protected,
        name,
    }
}

/// The environment a role name belongs to: `sfstack-<env>-<function>-role`.
fn environment_of_role(role: &str) -> Option<String> {
    let middle = role.strip_prefix("sfstack-")?.strip_suffix("-role")?;
    FUNCTIONS.iter().find_map(|function| {
        middle
            .strip_suffix(function)
            .and_then(|rest| rest.strip_suffix('-'))
            .filter(|env| !env.is_empty())
            .map(str::to_string)
    })
}

/// Every environment on the target, sorted by name.
pub async fn list(cloud: &Cloud, root: &Path) -> anyhow::Result<Vec<EnvInfo>> {
    let mut found: BTreeMap<String, EnvInfo> = BTreeMap::new();
    let mut stacks = cloud
        .cloudformation
        .describe_stacks()
        .into_paginator()
        .send();
    while let Some(page) = stacks.next().await {
        let page = page.aws_context(|| "listing CloudFormation stacks")?;
        for stack in page.stacks() {
            let tags: BTreeMap<String, String> = stack
                .tags()
                .iter()
                .filter_map(|tag| Some((tag.key()?.to_string(), tag.value()?.to_string())))
                .collect();
            let Some(env) = tags.get(TAG_ENV).cloned() else {
                continue;
            };
            let status = stack
                .stack_status()
                .map(|status| status.as_str().to_string())
                .unwrap_or_default();
            if status == "DELETE_COMPLETE" {
                continue;
            }
            found.insert(env.clone(), info(root, env, status, &tags));
        }
    }
    let mut roles = cloud.clients.iam.list_roles().into_paginator().send();
    let mut partial: BTreeMap<String, String> = BTreeMap::new();
    while let Some(page) = roles.next().await {
        let page = page.aws_context(|| "listing IAM roles")?;
        for role in page.roles() {
            if let Some(env) = environment_of_role(role.role_name())
                && !found.contains_key(&env)
            {
                partial
                    .entry(env)
                    .or_insert_with(|| role.role_name().to_string());
            }
        }
    }
    for (env, role) in partial {
        let tags: BTreeMap<String, String> = cloud
            .clients
            .iam
            .list_role_tags()
            .role_name(&role)
            .send()
            .await
            .map(|output| {
                output
                    .tags()
                    .iter()
                    .map(|tag| (tag.key().to_string(), tag.value().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        found.insert(
            env.clone(),
            info(root, env, "PARTIAL (no stack)".to_string(), &tags),
        );
    }
    Ok(found.into_values().collect())
}

pub fn print(environments: &[EnvInfo], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(environments)?);
        return Ok(());
    }
    if environments.is_empty() {
        println!("no environments");
        return Ok(());
    }
    println!(
        "{:<26} {:<30} {:<22} {:>7}  expires",
        "environment", "branch", "status", "age"
    );
    for env in environments {
        let age = env.age_hours.map_or("?".to_string(), |hours| {
            if hours >= 48 {
                format!("{}d", hours / 24)
            } else {
                format!("{hours}h")
            }
        });
        let expires = match (&env.expires_at, env.expired, env.protected) {
            (_, _, true) => "protected".to_string(),
            (Some(at), true, _) => format!("{at} (expired)"),
            (Some(at), false, _) => at.clone(),
            (None, _, _) => "-".to_string(),
        };
        println!(
            "{:<26} {:<30} {:<22} {:>7}  {expires}",
            env.name,
            env.branch.as_deref().unwrap_or("-"),
            env.status,
            age
        );
    }
    Ok(())
}

/// What `prune` removes.
#[derive(Debug, Clone, Default)]
pub struct Criteria {
    pub older_than: Option<Duration>,
    pub expired: bool,
    pub merged: bool,
}

/// Branches merged into the default branch (local and remote-tracking), by name.
fn merged_branches() -> anyhow::Result<Vec<String>> {
    let mut merged = Vec::new();
    let base = ["origin/HEAD", "origin/main", "main"]
        .into_iter()
        .find(|candidate| {
            std::process::Command::new("git")
                .args(["rev-parse", "--verify", "--quiet", candidate])
                .output()
                .is_ok_and(|output| output.status.success())
        })
        .context("no default branch to compare with (tried origin/HEAD, origin/main, main)\nhint: fetch the repository with its history (fetch-depth: 0 in CI)")?;
    let output = std::process::Command::new("git")
        .args([
            "branch",
            "--all",
            "--merged",
            base,
            "--format=%(refname:short)",
        ])
        .output()
        .context("running git branch --merged")?;
    // A branch with no commits of its own points at the base: "merged" by git's definition,
    // but it is new work, not finished work.
    let fresh = std::process::Command::new("git")
        .args([
            "branch",
            "--all",
            "--points-at",
            base,
            "--format=%(refname:short)",
        ])
        .output()
        .context("running git branch --points-at")?;
    let fresh = String::from_utf8_lossy(&fresh.stdout).into_owned();
    let fresh: Vec<&str> = fresh.lines().map(str::trim).collect();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let full = line.trim();
        if fresh.contains(&full) {
            continue;
        }
        let name = full.strip_prefix("origin/").unwrap_or(full);
        if !name.is_empty() && name != "HEAD" && !name.starts_with("origin") {
            merged.push(name.to_string());
        }
    }
    Ok(merged)
}

/// The environments `criteria` selects; never a protected one.
pub fn select(environments: &[EnvInfo], criteria: &Criteria, merged: &[String]) -> Vec<EnvInfo> {
    environments
        .iter()
        .filter(|env| !env.protected)
        .filter(|env| {
            let old = criteria.older_than.is_some_and(|limit| {
                env.age_hours
                    .is_some_and(|hours| hours * 3600 >= limit.as_secs() as i64)
            });
            let merged_branch = criteria.merged
                && env.branch.as_ref().is_some_and(|branch| {
                    merged
                        .iter()
                        .any(|name| crate::infra::tag_value(name) == *branch)
                });
            old || (criteria.expired && env.expired) || merged_branch
        })
        .cloned()
        .collect()
}

/// `cargo xtask prune`: tears down what `criteria` selects; returns the torn-down names.
pub async fn prune(
    cloud: &Cloud,
    root: &Path,
    criteria: &Criteria,
    dry_run: bool,
) -> anyhow::Result<Vec<String>> {
    let environments = list(cloud, root).await?;
    let merged = if criteria.merged {
        merged_branches()?
    } else {
        Vec::new()
    };
    let selected = select(&environments, criteria, &merged);
    // The artifacts bucket is the account's (sfstack.toml's artifacts.bucket, else the default).
    let bucket = Settings::load(&root.join(FILE_NAME), "")
        .map(|settings| crate::infra::artifacts_bucket(&settings, &cloud.account_id, &cloud.region))
        .unwrap_or_else(|_| crate::infra::artifacts_bucket_name(&cloud.account_id, &cloud.region));
    let mut removed = Vec::new();
    let mut failures = Vec::new();
    for env in selected {
        if dry_run {
            println!("would tear down {}", env.name);
            continue;
        }
        note!("prune: tearing down {}", env.name);
        let torn = crate::lock::holding(
            cloud,
            &env.name,
            "teardown",
            &crate::lock::Options::default(),
            false,
            &bucket,
            // prune never selects a protected environment.
            teardown::teardown(cloud, root, &env.name, teardown::Data::default()),
        )
        .await;
        match torn {
            Ok(_) => {
                println!("torn down {}", env.name);
                removed.push(env.name);
            }
            Err(error) => failures.push(format!("{}: {error:#}", env.name)),
        }
    }
    if !failures.is_empty() {
        anyhow::bail!(
            "prune could not tear down every environment:\n{}\nhint: run the prune again; teardown only removes what is left",
            failures.join("\n")
        );
    }
    // The zips no stack references any more (see infra::artifacts on retention).
    let garbage =
        crate::infra::collect_garbage(&cloud.clients.s3, &cloud.cloudformation, &bucket, dry_run)
            .await?;
    for key in &garbage {
        if dry_run {
            println!("would delete s3://{bucket}/{key} (no stack uses it)");
        } else {
            println!("deleted s3://{bucket}/{key} (no stack uses it)");
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_give_their_environment() {
        assert_eq!(
            environment_of_role("sfstack-feature-x-sf-invoke-api-role").as_deref(),
            Some("feature-x")
        );
        assert_eq!(
            environment_of_role("sfstack-a-sf-oauth-callback-role").as_deref(),
            Some("a")
        );
        assert_eq!(environment_of_role("sfstack-sf-invoke-api-role"), None);
        assert_eq!(environment_of_role("other-sf-invoke-api-role"), None);
        assert_eq!(environment_of_role("sfstack-x-unknown-role"), None);
    }

    fn env(name: &str, branch: &str, age_hours: i64, expired: bool, protected: bool) -> EnvInfo {
        EnvInfo {
            name: name.to_string(),
            branch: Some(branch.to_string()),
            status: "CREATE_COMPLETE".to_string(),
            created_at: None,
            expires_at: None,
            age_hours: Some(age_hours),
            expired,
            protected,
        }
    }

    #[test]
    fn prune_selects_by_age_expiry_and_merge_and_never_protected() {
        let all = vec![
            env("old", "feature/old", 24 * 10, false, false),
            env("young", "feature/young", 2, false, false),
            env("expired", "feature/expired", 2, true, false),
            env("merged", "feature/done_1", 1, false, false),
            env("main", "main", 24 * 100, true, true),
        ];
        let names =
            |selected: Vec<EnvInfo>| selected.into_iter().map(|env| env.name).collect::<Vec<_>>();
        let older = Criteria {
            older_than: Some(Duration::from_secs(7 * 86_400)),
            ..Criteria::default()
        };
        assert_eq!(names(select(&all, &older, &[])), ["old"]);
        let expired = Criteria {
            expired: true,
            ..Criteria::default()
        };
        assert_eq!(names(select(&all, &expired, &[])), ["expired"]);
        let merged = Criteria {
            merged: true,
            ..Criteria::default()
        };
        // Branch tags hold the branch with characters AWS refuses replaced.
        assert_eq!(
            names(select(
                &all,
                &merged,
                &["feature/done#1".to_string(), "main".to_string()]
            )),
            ["merged"]
        );
        assert!(select(&all, &Criteria::default(), &[]).is_empty());
    }
}
