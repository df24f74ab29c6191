//! The GitHub workflow that deploys one environment per branch: the pinned linters (zizmor for
//! security, actionlint for correctness, both from `python-tools.txt`) report nothing, and its
//! structure keeps one branch's deploy and teardown apart from each other and from other
//! branches.

use std::path::PathBuf;
use std::process::Command;

use serde_yaml::Value;

const WORKFLOW: &str = ".github/workflows/environments.yml";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

fn lint(tool: &str, args: &[&str]) -> (bool, String) {
    let bin = pytools::ensure_python_tools().expect("the pinned Python tools");
    let output = Command::new(bin.join(tool))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|error| panic!("running {tool}: {error}"));
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[test]
fn zizmor_finds_nothing() {
    // Offline: the audits that ask GitHub's API are left out (no network here).
    let (clean, report) = lint("zizmor", &["--offline", "--no-progress", WORKFLOW]);
    assert!(clean && report.contains("No findings"), "zizmor:\n{report}");
}

#[test]
fn actionlint_finds_nothing() {
    // shellcheck and pyflakes are not pinned here: their checks are left out so the result
    // does not depend on what the machine has installed.
    let (clean, report) = lint("actionlint", &["-shellcheck=", "-pyflakes=", WORKFLOW]);
    assert!(clean, "actionlint:\n{report}");
}

fn workflow() -> Value {
    let text = std::fs::read_to_string(root().join(WORKFLOW)).expect("the workflow");
    serde_yaml::from_str(&text).expect("the workflow is YAML")
}

/// Evaluates the small part of GitHub's expression language the workflow's keys use: context
/// paths, `'strings'`, `==`, `!=`, `&&` and `||` (left to right, `&&` binding tighter), with
/// GitHub's value semantics (`&&` and `||` give an operand, not a boolean). Anything else is
/// refused, so a key written beyond it fails this test rather than passing unchecked.
fn evaluate(expression: &str, context: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let value = |term: &str| -> Option<String> {
        let term = term.trim();
        if let Some(literal) = term.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')) {
            return Some(literal.to_string());
        }
        assert!(
            term.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
            "not a context path: {term}"
        );
        context(term)
    };
    let truthy = |value: &Option<String>| value.as_deref().is_some_and(|v| !v.is_empty());
    let mut result: Option<String> = None;
    for (index, alternative) in expression.split("||").enumerate() {
        let mut conjunction: Option<String> = Some("true".to_string());
        for term in alternative.split("&&") {
            let compare = |(left, right): (&str, &str), equal: bool| {
                Some(
                    if (value(left) == value(right)) == equal {
                        "true"
                    } else {
                        ""
                    }
                    .to_string(),
                )
            };
            let term_value = match (term.split_once("!="), term.split_once("==")) {
                (Some(sides), _) => compare(sides, false),
                (None, Some(sides)) => compare(sides, true),
                (None, None) => value(term),
            };
            if !truthy(&conjunction) {
                break;
            }
            conjunction = term_value;
        }
        if index == 0 || !truthy(&result) {
            result = conjunction;
        }
        if truthy(&result) {
            break;
        }
    }
    result
}

/// A string with `${{ … }}` parts, evaluated.
fn interpolate(template: &str, context: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("}}").expect("a closed expression") + start;
        out.push_str(&evaluate(&rest[start + 3..end], context).unwrap_or_default());
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

/// The contexts GitHub gives each event for branch `branch` (the fields the workflow reads).
fn event(name: &str, branch: &str) -> impl Fn(&str) -> Option<String> {
    let name = name.to_string();
    let branch = branch.to_string();
    move |path: &str| {
        let value = match (name.as_str(), path) {
            (_, "github.event_name") => name.clone(),
            (_, "github.event.repository.default_branch") => "main".to_string(),
            ("push", "github.ref_name") => branch.clone(),
            ("push", "github.event.ref") => format!("refs/heads/{branch}"),
            ("delete", "github.event.ref") => branch.clone(),
            ("delete", "github.event.ref_type") => "branch".to_string(),
            ("delete", "github.ref_name") => "main".to_string(),
            ("pull_request", "github.head_ref") => branch.clone(),
            ("pull_request", "github.ref_name") => "42/merge".to_string(),
            ("pull_request", "github.event.pull_request.head.repo.full_name")
            | ("pull_request", "github.repository") => "team/sfstack".to_string(),
            _ => return None,
        };
        Some(value)
    }
}

fn concurrency_group(job: &str, context: &dyn Fn(&str) -> Option<String>) -> String {
    let workflow = workflow();
    let group = workflow["jobs"][job]["concurrency"]["group"]
        .as_str()
        .unwrap_or_else(|| panic!("job {job} has a concurrency group"));
    interpolate(group, context)
}

#[test]
fn one_branch_has_one_concurrency_key_for_its_deploy_and_teardown() {
    for branch in ["feature/x", "prod", "fix-1"] {
        let pushed = concurrency_group("deploy", &event("push", branch));
        let deleted = concurrency_group("teardown", &event("delete", branch));
        let closed = concurrency_group("teardown", &event("pull_request", branch));
        assert_eq!(pushed, deleted, "{branch}");
        assert_eq!(pushed, closed, "{branch}");
        assert!(pushed.contains(branch), "{pushed}");
    }
    assert_ne!(
        concurrency_group("deploy", &event("push", "a")),
        concurrency_group("deploy", &event("push", "b")),
        "branches do not wait for each other"
    );
    let workflow = workflow();
    for job in ["deploy", "teardown"] {
        assert_eq!(
            workflow["jobs"][job]["concurrency"]["cancel-in-progress"].as_bool(),
            Some(false),
            "a {job} is never cancelled halfway"
        );
    }
}

/// Branches deploy as the environment deployer; the default branch only through the
/// `production` GitHub environment (its reviewers), as the protected deployer, with
/// `--protected`.
#[test]
fn the_default_branch_deploys_only_as_the_protected_deployer_through_its_environment() {
    let workflow = workflow();
    let runs = |job: &str, context: &dyn Fn(&str) -> Option<String>| {
        let condition = workflow["jobs"][job]["if"].as_str().expect("a condition");
        evaluate(condition, context).is_some_and(|value| !value.is_empty())
    };
    for (branch, deploy, protected) in [("feature/x", true, false), ("main", false, true)] {
        let push = event("push", branch);
        assert_eq!(runs("deploy", &push), deploy, "deploy on {branch}");
        assert_eq!(
            runs("deploy-protected", &push),
            protected,
            "deploy-protected on {branch}"
        );
    }
    let job = &workflow["jobs"]["deploy-protected"];
    assert_eq!(job["environment"], "production");
    let steps = job["steps"].as_sequence().expect("steps");
    let text = serde_yaml::to_string(steps).expect("steps as text");
    assert!(text.contains("vars.AWS_PROTECTED_ROLE_ARN"), "{text}");
    assert!(text.contains("deploy --protected"), "{text}");
    let branch_steps = serde_yaml::to_string(&workflow["jobs"]["deploy"]["steps"]).expect("steps");
    assert!(!branch_steps.contains("--protected"), "{branch_steps}");
}

#[test]
fn artifact_names_have_no_slash_and_checkouts_keep_no_credentials() {
    let workflow = workflow();
    let jobs = workflow["jobs"].as_mapping().expect("jobs");
    let mut uploads = 0;
    for (name, job) in jobs {
        let steps = job["steps"].as_sequence().expect("steps");
        // What `cargo xtask env-name` prints for a branch with a slash: the value the artifact
        // name is made from.
        let env_name = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["env-name", "feature/x"])
            .current_dir(root())
            .output()
            .expect("xtask env-name");
        let env_name = String::from_utf8_lossy(&env_name.stdout).trim().to_string();
        assert!(!env_name.is_empty());
        let context = |path: &str| (path == "steps.env.outputs.name").then(|| env_name.clone());
        for step in steps {
            let uses = step["uses"].as_str().unwrap_or_default();
            if uses.starts_with("actions/checkout@") {
                assert_eq!(
                    step["with"]["persist-credentials"].as_bool(),
                    Some(false),
                    "{name:?}: {uses}"
                );
            }
            if uses.starts_with("actions/upload-artifact@") {
                uploads += 1;
                let artifact =
                    interpolate(step["with"]["name"].as_str().expect("a name"), &context);
                assert!(
                    !artifact.contains('/') && artifact.len() > "sfstack-".len(),
                    "{name:?}: artifact name {artifact:?}"
                );
            }
            if !uses.is_empty() {
                let (_, reference) = uses.split_once('@').expect("a version");
                assert!(
                    reference.len() == 40 && reference.chars().all(|c| c.is_ascii_hexdigit()),
                    "{name:?}: {uses} is pinned by commit"
                );
            }
        }
        let permissions = &job["permissions"];
        assert!(permissions.is_mapping(), "{name:?} states its permissions");
    }
    assert!(uploads > 0);
    assert_eq!(
        workflow["permissions"].as_mapping().map(|p| p.len()),
        Some(0),
        "nothing granted at workflow level"
    );
}

#[test]
fn the_expression_subset_behaves_as_github_evaluates_it() {
    let context = |path: &str| match path {
        "a" => Some("x".to_string()),
        "empty" => Some(String::new()),
        _ => None,
    };
    assert_eq!(
        evaluate("a == 'x' && 'yes' || 'no'", &context).as_deref(),
        Some("yes")
    );
    assert_eq!(
        evaluate("a == 'y' && 'yes' || 'no'", &context).as_deref(),
        Some("no")
    );
    assert_eq!(evaluate("empty || a", &context).as_deref(), Some("x"));
    assert_eq!(evaluate("missing", &context), None);
    assert_eq!(interpolate("k-${{ a }}-${{ 'l' }}", &context), "k-x-l");
}

/// Every branch's CI deploy has the same credentials, so a branch named `prod` must not deploy
/// over the `prod` environment: on AWS, `deploy` refuses a protected environment before it
/// touches anything unless `--protected` is given (the workflow never gives it).
#[test]
fn a_protected_environment_is_not_deployed_to_aws_without_protected() {
    for env in ["prod", "main"] {
        let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["deploy", "--target", "aws", "--env", env])
            .current_dir(root())
            .env_remove("SFSTACK_TARGET")
            .env_remove("SFSTACK_ENV")
            // Were the check missing, the deploy would stop here, not reach an account.
            .env("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE00")
            .env("AWS_SECRET_ACCESS_KEY", "not-a-real-key")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .env("AWS_MAX_ATTEMPTS", "1")
            .output()
            .expect("xtask deploy");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "{env} is a protected environment; nothing was deployed"
            )) && stderr.contains("--protected"),
            "{stderr}"
        );
    }
}
