//! Environment names from git branches, and the names of every resource an environment owns.
//!
//! A change here renames every existing environment, so the sanitizer is frozen by golden
//! tests: change them only on purpose.

use sha2::{Digest, Sha256};

/// Longest environment name. The tightest AWS budget is 64 characters (Lambda function and IAM
/// role names); the longest name built from an environment is
/// `sfstack-<env>-sf-secret-rotation-role` (32 characters around the environment).
pub const MAX_ENV_LEN: usize = 24;
const HASH_LEN: usize = 6;
/// Branches that keep their name as their environment's; never ephemeral, so always protected
/// (`config::is_protected`).
pub const PROTECTED: &[&str] = &["prod", "production", "main"];

/// The environment for a git branch: a protected branch (`main`, `prod`, `production`) keeps its
/// name; any other is lower-case, other characters folded into single dashes,
/// starting with a letter, cut to fit, and always ending in a short hash of the raw branch name
/// so `feature/a/login` and `feature/b/login` never collide.
pub fn env_from_branch(branch: &str) -> String {
    // Long-lived branches keep their own name: they are never ephemeral.
    if PROTECTED.contains(&branch) {
        return branch.to_string();
    }
    let hash = short_hash(branch);
    let mut slug = String::new();
    for character in branch.chars() {
        if character.is_ascii_alphanumeric() {
            slug.push(character.to_ascii_lowercase());
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let mut slug = slug.trim_matches('-').to_string();
    if !slug.starts_with(|c: char| c.is_ascii_lowercase()) {
        slug.insert_str(0, "b-");
    }
    let budget = MAX_ENV_LEN - HASH_LEN - 1;
    slug.truncate(budget);
    let slug = slug.trim_end_matches('-');
    format!("{slug}-{hash}")
}

fn short_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest
        .iter()
        .take(HASH_LEN / 2)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Checks a name given with `--env`: it is used as is, so it must already be valid.
pub fn validate_env_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= MAX_ENV_LEN
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && !name.contains("--")
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "environment name {name:?} must be 1 to {MAX_ENV_LEN} characters of a-z, 0-9 and single dashes, starting with a letter"
        ))
    }
}

/// The four functions, by crate name (also the binary and the suffix of the function name).
pub const FUNCTIONS: [&str; 4] = [
    "sf-invoke-api",
    "sf-token-refresh",
    "sf-secret-rotation",
    "sf-oauth-callback",
];

/// Every AWS name an environment uses. All of them start with `sfstack-<env>` so an
/// environment's resources are recognisable, and all fit AWS's limits (checked by tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub environment: String,
}

impl Names {
    pub fn new(environment: &str) -> Self {
        Self {
            environment: environment.to_string(),
        }
    }

    fn prefixed(&self, suffix: &str) -> String {
        format!("sfstack-{}-{suffix}", self.environment)
    }

    /// CloudFormation stack (≤ 128 characters).
    pub fn stack(&self) -> String {
        format!("sfstack-{}", self.environment)
    }

    /// Lambda function name (≤ 64).
    pub fn function(&self, crate_name: &str) -> String {
        self.prefixed(crate_name)
    }

    /// IAM role of a function (≤ 64).
    pub fn role(&self, crate_name: &str) -> String {
        format!("{}-role", self.function(crate_name))
    }

    /// KMS alias (must start with `alias/`, never `alias/aws`).
    pub fn key_alias(&self) -> String {
        format!("alias/{}", self.stack())
    }

    /// The Salesforce credentials secret.
    pub fn credentials_secret(&self) -> String {
        format!("{}/salesforce-credentials", self.stack())
    }

    /// The session secret kept fresh by sf-token-refresh.
    pub fn session_secret(&self) -> String {
        format!("{}/salesforce-session", self.stack())
    }

    /// Secrets Manager secret with only what the public OAuth callback needs (the connected
    /// app's key and secret, the state-signing key, the login URL): deploy copies it from the
    /// credentials, so the internet-facing function never reads a JWT key, a password or a
    /// refresh token.
    pub fn oauth_client_secret(&self) -> String {
        format!("{}/salesforce-oauth-client", self.stack())
    }

    /// DynamoDB table for tokens stored by the OAuth callback.
    pub fn oauth_table(&self) -> String {
        self.prefixed("oauth-tokens")
    }

    /// DynamoDB table of the OAuth sign-ins already completed (single-use states, with a TTL).
    pub fn oauth_states_table(&self) -> String {
        self.prefixed("oauth-states")
    }

    /// The sample Amazon Connect contact flow (`connect.sample_flow`).
    pub fn sample_flow(&self) -> String {
        self.prefixed("sample-flow")
    }

    /// EventBridge rule that schedules the token refresh (≤ 64).
    pub fn refresh_rule(&self) -> String {
        self.prefixed("token-refresh")
    }

    /// CloudWatch log group of a function.
    pub fn log_group(&self, crate_name: &str) -> String {
        format!("/aws/lambda/{}", self.function(crate_name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden values: these are the names of real environments. Do not change casually.
    const GOLDEN: &[(&str, &str)] = &[
        ("main", "main"),
        ("prod", "prod"),
        ("Main", "main-eb814b"),
        ("feature/a/login", "feature-a-login-ed301c"),
        ("feature/b/login", "feature-b-login-d0cc50"),
        ("Feature/LOGIN_Page.v2", "feature-login-pag-6e5867"),
        ("123-fix", "b-123-fix-6af841"),
        ("--weird--//__name..", "weird-name-94f80b"),
        ("dependabot/cargo/tokio-1.40.0", "dependabot-cargo-0319b0"),
        ("ünïcödé/branch", "n-c-d-branch-dcd185"),
    ];

    #[test]
    fn branch_names_sanitize_to_frozen_environment_names() {
        for (branch, expected) in GOLDEN {
            assert_eq!(env_from_branch(branch), *expected, "{branch}");
        }
    }

    #[test]
    fn sanitized_names_are_valid_and_fit_the_budget() {
        let long = "a".repeat(300);
        for branch in GOLDEN
            .iter()
            .map(|(branch, _)| *branch)
            .chain([long.as_str(), "", "/", "9"])
        {
            let env = env_from_branch(branch);
            assert!(env.len() <= MAX_ENV_LEN, "{env}");
            assert_eq!(validate_env_name(&env), Ok(()), "{branch} -> {env}");
        }
    }

    #[test]
    fn branches_that_fold_to_the_same_slug_do_not_collide() {
        assert_ne!(
            env_from_branch("feature/login"),
            env_from_branch("feature_login")
        );
        assert_ne!(env_from_branch("Fix"), env_from_branch("fix"));
    }

    #[test]
    fn explicit_names_are_checked() {
        for good in ["dev", "prod", "team-a-2"] {
            assert_eq!(validate_env_name(good), Ok(()), "{good}");
        }
        for bad in ["", "Dev", "1dev", "dev-", "a--b", "dev_1", &"a".repeat(25)] {
            assert!(validate_env_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_name_fits_aws_limits_for_the_longest_environment() {
        let names = Names::new(&"a".repeat(MAX_ENV_LEN));
        for function in FUNCTIONS {
            assert!(
                names.function(function).len() <= 64,
                "{}",
                names.function(function)
            );
            assert!(names.role(function).len() <= 64, "{}", names.role(function));
        }
        assert!(names.refresh_rule().len() <= 64);
        assert!(names.stack().len() <= 128);
        assert!(names.oauth_table().len() <= 255);
        assert!(names.oauth_states_table().len() <= 255);
        assert!(
            names.key_alias().starts_with("alias/") && !names.key_alias().starts_with("alias/aws")
        );
    }
}
