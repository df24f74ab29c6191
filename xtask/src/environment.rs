//! Which environment a command acts on (from `--env` or the git branch), and `cargo xtask config`.

use std::process::Command;

use anyhow::{Context, bail};
use serde_json::json;

use crate::config::{FILE_NAME, Settings};
use crate::naming;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// The environment to act on, and the branch it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    pub name: String,
    pub branch: Option<String>,
}

/// `--env NAME` as given (validated), else the sanitized git branch.
pub fn resolve(explicit: Option<&str>) -> anyhow::Result<Environment> {
    if let Some(name) = explicit {
        naming::validate_env_name(name).map_err(anyhow::Error::msg)?;
        return Ok(Environment {
            name: name.to_string(),
            branch: current_branch().ok(),
        });
    }
    let branch = current_branch()?;
    Ok(Environment {
        name: naming::env_from_branch(&branch),
        branch: Some(branch),
    })
}

/// The current branch: CI's variables first (checkouts there are often detached), then git.
fn current_branch() -> anyhow::Result<String> {
    for variable in ["GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME"] {
        if let Ok(value) = std::env::var(variable)
            && !value.trim().is_empty()
        {
            return Ok(value.trim().to_string());
        }
    }
    let output = Command::new("git")
        .args(["rev-parse", "--abbrev-ref", "HEAD"])
        .output()
        .context("running git to find the current branch\nhint: install git, or pass --env NAME")?;
    let branch = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if !output.status.success() || branch.is_empty() {
        bail!(
            "could not read the current git branch\nhint: run inside the repository, or pass --env NAME"
        );
    }
    if branch == "HEAD" {
        bail!(
            "the checkout is detached (no branch)\nhint: pass --env NAME, or set GITHUB_REF_NAME"
        );
    }
    Ok(branch)
}

/// `cargo xtask config`: the environment and its effective settings.
pub fn show(explicit: Option<&str>, output: Output) -> anyhow::Result<()> {
    let environment = resolve(explicit)?;
    let settings = Settings::load(std::path::Path::new(FILE_NAME), &environment.name)?;
    let protected = crate::config::is_protected(&environment.name, Some(&settings));
    let names = naming::Names::new(&environment.name);
    let mut resources = serde_json::Map::new();
    resources.insert("stack".into(), json!(names.stack()));
    resources.insert("kms_key_alias".into(), json!(names.key_alias()));
    resources.insert(
        "credentials_secret".into(),
        json!(names.credentials_secret()),
    );
    resources.insert(
        "oauth_client_secret".into(),
        json!(names.oauth_client_secret()),
    );
    resources.insert("session_secret".into(), json!(names.session_secret()));
    resources.insert("oauth_tokens_table".into(), json!(names.oauth_table()));
    resources.insert(
        "oauth_states_table".into(),
        json!(names.oauth_states_table()),
    );
    resources.insert("token_refresh_rule".into(), json!(names.refresh_rule()));
    for function in naming::FUNCTIONS {
        resources.insert(
            format!("function {function}"),
            json!(names.function(function)),
        );
        resources.insert(format!("role {function}"), json!(names.role(function)));
        resources.insert(
            format!("log_group {function}"),
            json!(names.log_group(function)),
        );
    }
    match output {
        Output::Json => {
            let document = json!({
                "environment": environment.name,
                "branch": environment.branch,
                "protected": protected,
                "resources": resources,
                "settings": settings,
            });
            println!("{}", serde_json::to_string_pretty(&document)?);
        }
        Output::Text => {
            println!("environment: {}", environment.name);
            if let Some(branch) = &environment.branch {
                println!("branch:      {branch}");
            }
            println!(
                "protected:   {}",
                if protected {
                    "yes (teardown needs --force)"
                } else {
                    "no"
                }
            );
            println!();
            println!("resources:");
            for (kind, name) in &resources {
                println!("  {kind:<32} {}", name.as_str().unwrap_or_default());
            }
            println!();
            print!("{}", toml::to_string_pretty(&settings)?);
        }
    }
    Ok(())
}
