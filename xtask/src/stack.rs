//! The CloudFormation stack: deployed through change sets (a preview, and a clean no-op), with
//! every stack state handled (see `docs/aws-behaviour.md`) and the stack's events streamed while
//! waiting.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::bail;
use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::types::{Capability, ChangeSetStatus, ChangeSetType, Tag};

use crate::aws_error::{self, AwsContext};

/// What to do with a stack found in a given state before a deploy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackAction {
    /// No stack (or an empty review stack): a CREATE change set.
    Create,
    /// The first create failed and rolled back: delete, wait, then create.
    DeleteThenCreate,
    /// An update failed to roll back: ContinueUpdateRollback, then update.
    ContinueRollbackThenUpdate,
    /// An operation is running: wait for it, then decide again.
    Wait,
    /// A settled stack: an UPDATE change set.
    Update,
}

/// The action for a stack status (`None`: the stack does not exist). `ROLLBACK_COMPLETE` is
/// matched exactly, never by suffix: `UPDATE_ROLLBACK_COMPLETE` is a healthy, updatable stack.
pub fn action_for(status: Option<&str>) -> StackAction {
    match status {
        None | Some("DELETE_COMPLETE") => StackAction::Create,
        Some("REVIEW_IN_PROGRESS") => StackAction::DeleteThenCreate,
        Some("ROLLBACK_COMPLETE" | "ROLLBACK_FAILED" | "CREATE_FAILED" | "DELETE_FAILED") => {
            StackAction::DeleteThenCreate
        }
        Some("UPDATE_ROLLBACK_FAILED") => StackAction::ContinueRollbackThenUpdate,
        Some(status) if status.ends_with("_IN_PROGRESS") => StackAction::Wait,
        Some(_) => StackAction::Update,
    }
}

/// Whether a failed change set only means "nothing to change" (real AWS and emulators word it
/// differently).
pub fn means_no_changes(reason: &str) -> bool {
    let reason = reason.to_ascii_lowercase();
    reason.contains("didn't contain changes")
        || reason.contains("did not contain changes")
        || reason.contains("no updates are to be performed")
}

/// How long any one wait may last before the user is told what to do.
const WAIT_LIMIT: Duration = Duration::from_secs(30 * 60);
const POLL: Duration = Duration::from_millis(500);

/// The outcome of a deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackOutcome {
    pub changed: bool,
    /// `Action LogicalId (Type)` lines of the change set.
    pub preview: Vec<String>,
    /// Logical id → physical id of every resource. Read from the resources rather than the
    /// stack's Outputs: moto never fills Outputs for stacks made through change sets.
    pub resources: BTreeMap<String, String>,
}

/// The stack's status, `None` when it does not exist.
pub async fn status(client: &Client, stack_name: &str) -> anyhow::Result<Option<String>> {
    match client.describe_stacks().stack_name(stack_name).send().await {
        Ok(output) => Ok(output
            .stacks()
            .first()
            .and_then(|stack| stack.stack_status())
            .map(|status| status.as_str().to_string())),
        Err(error) => {
            if aws_error::message(&error).contains("does not exist") {
                Ok(None)
            } else {
                Err(error).aws_context(|| format!("describing stack {stack_name}"))
            }
        }
    }
}

/// Waits until the stack leaves every `*_IN_PROGRESS` state; streams new events on stderr.
async fn settle(client: &Client, stack_name: &str) -> anyhow::Result<Option<String>> {
    settle_after(client, stack_name, std::collections::HashSet::new()).await
}

/// The ids of the events a stack has so far: history, not the progress of what comes next.
async fn event_ids(client: &Client, stack_name: &str) -> std::collections::HashSet<String> {
    client
        .describe_stack_events()
        .stack_name(stack_name)
        .send()
        .await
        .map(|output| {
            output
                .stack_events()
                .iter()
                .filter_map(|event| event.event_id().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// [`settle`], not printing the events in `seen`.
async fn settle_after(
    client: &Client,
    stack_name: &str,
    mut seen: std::collections::HashSet<String>,
) -> anyhow::Result<Option<String>> {
    let started = Instant::now();
    // Events of earlier operations on the same stack are history, not progress.
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |now| now.as_secs() as i64 - 5);
    loop {
        stream_events(client, stack_name, &mut seen, since).await;
        let current = status(client, stack_name).await?;
        match current.as_deref() {
            // A stack waiting for its first change set is settled: nothing will move it.
            Some("REVIEW_IN_PROGRESS") => return Ok(current),
            Some(status) if status.ends_with("_IN_PROGRESS") => {}
            _ => return Ok(current),
        }
        if started.elapsed() > WAIT_LIMIT {
            bail!(
                "stack {stack_name} is still {} after {WAIT_LIMIT:?}\nhint: watch it in the CloudFormation console, then run the command again",
                current.unwrap_or_default()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Prints events not printed yet, oldest first; failures name the resource and the reason.
async fn stream_events(
    client: &Client,
    stack_name: &str,
    seen: &mut std::collections::HashSet<String>,
    since: i64,
) {
    let Ok(output) = client
        .describe_stack_events()
        .stack_name(stack_name)
        .send()
        .await
    else {
        return;
    };
    let mut fresh: Vec<_> = output
        .stack_events()
        .iter()
        .filter(|event| event.timestamp().is_none_or(|time| time.secs() >= since))
        .filter(|event| seen.insert(event.event_id().unwrap_or_default().to_string()))
        .collect();
    fresh.reverse();
    for event in fresh {
        let status = event
            .resource_status()
            .map(|status| status.as_str())
            .unwrap_or_default();
        if status.ends_with("_COMPLETE")
            && event.resource_type() != Some("AWS::CloudFormation::Stack")
        {
            crate::progress::advance();
        }
        let marker = if status.ends_with("_FAILED") {
            "FAILED "
        } else {
            ""
        };
        note!(
            "  stack: {marker}{} {} {}{}",
            event.logical_resource_id().unwrap_or_default(),
            event.resource_type().unwrap_or_default(),
            status,
            event
                .resource_status_reason()
                .map(|reason| format!(": {reason}"))
                .unwrap_or_default()
        );
    }
}

/// The first failed resource's reason among events not in `history` (those of earlier
/// operations): the message a user needs.
async fn first_failure(
    client: &Client,
    stack_name: &str,
    history: &std::collections::HashSet<String>,
) -> Option<String> {
    let output = client
        .describe_stack_events()
        .stack_name(stack_name)
        .send()
        .await
        .ok()?;
    output
        .stack_events()
        .iter()
        .rev()
        .filter(|event| !history.contains(event.event_id().unwrap_or_default()))
        .find(|event| {
            event
                .resource_status()
                .is_some_and(|status| status.as_str().ends_with("_FAILED"))
        })
        .map(|event| {
            format!(
                "{} ({}): {}",
                event.logical_resource_id().unwrap_or_default(),
                event.resource_type().unwrap_or_default(),
                event.resource_status_reason().unwrap_or("no reason given")
            )
        })
}

/// Continues a failed update rollback, skipping `skip`, and waits for it to settle.
async fn continue_rollback(
    client: &Client,
    stack_name: &str,
    skip: &[String],
) -> anyhow::Result<Option<String>> {
    let history = event_ids(client, stack_name).await;
    client
        .continue_update_rollback()
        .stack_name(stack_name)
        .set_resources_to_skip((!skip.is_empty()).then(|| skip.to_vec()))
        .send()
        .await
        .aws_context(|| format!("continuing the rollback of {stack_name}"))?;
    settle_after(client, stack_name, history).await
}

/// The resources whose rollback failed in the stack's latest rollback attempt: the only ones
/// `ContinueUpdateRollback` accepts in `ResourcesToSkip`.
async fn stuck_in_rollback(client: &Client, stack_name: &str) -> anyhow::Result<Vec<String>> {
    let output = client
        .describe_stack_events()
        .stack_name(stack_name)
        .send()
        .await
        .aws_context(|| format!("reading the events of stack {stack_name}"))?;
    Ok(failed_in_latest_rollback(output.stack_events().iter().map(
        |event| {
            (
                event.logical_resource_id().unwrap_or_default(),
                event.resource_type().unwrap_or_default(),
                event
                    .resource_status()
                    .map(|status| status.as_str())
                    .unwrap_or_default(),
            )
        },
    )))
}

/// From events newest first as (logical id, type, status): the resources `UPDATE_FAILED` since
/// the stack's latest `UPDATE_ROLLBACK_IN_PROGRESS`.
fn failed_in_latest_rollback<'a>(
    events: impl Iterator<Item = (&'a str, &'a str, &'a str)>,
) -> Vec<String> {
    let mut stuck: Vec<String> = Vec::new();
    for (logical, kind, status) in events {
        if kind == "AWS::CloudFormation::Stack" {
            if status == "UPDATE_ROLLBACK_IN_PROGRESS" {
                break;
            }
        } else if status == "UPDATE_FAILED" && !stuck.iter().any(|known| known == logical) {
            stuck.push(logical.to_string());
        }
    }
    stuck.reverse();
    stuck
}

async fn delete_and_wait(client: &Client, stack_name: &str) -> anyhow::Result<()> {
    client
        .delete_stack()
        .stack_name(stack_name)
        .send()
        .await
        .aws_context(|| format!("deleting stack {stack_name}"))?;
    match settle(client, stack_name).await?.as_deref() {
        None | Some("DELETE_COMPLETE") => Ok(()),
        Some(other) => bail!(
            "stack {stack_name} could not be deleted ({other})\nhint: delete it in the CloudFormation console, then run the command again"
        ),
    }
}

/// Deploys `template` as `stack_name` through a change set. With `dry_run` the change set is
/// only previewed, then deleted.
pub async fn deploy(
    client: &Client,
    stack_name: &str,
    template: &str,
    tags: &BTreeMap<String, String>,
    dry_run: bool,
) -> anyhow::Result<StackOutcome> {
    // Decide from a settled state.
    let mut current = status(client, stack_name).await?;
    loop {
        match action_for(current.as_deref()) {
            StackAction::Wait => {
                note!(
                    "stack: {stack_name} is {}; waiting for it to settle",
                    current.as_deref().unwrap_or_default()
                );
                current = settle(client, stack_name).await?;
            }
            StackAction::DeleteThenCreate if current.is_some() && dry_run => {
                let status = current.unwrap_or_default();
                return Ok(StackOutcome {
                    changed: true,
                    preview: vec![format!(
                        "Recreate {stack_name} (it is {status}: a deploy deletes it and creates it again)"
                    )],
                    resources: BTreeMap::new(),
                });
            }
            StackAction::DeleteThenCreate if current.is_some() => {
                note!(
                    "stack: {stack_name} is {}; deleting it before creating it again",
                    current.as_deref().unwrap_or_default()
                );
                delete_and_wait(client, stack_name).await?;
                current = None;
            }
            StackAction::ContinueRollbackThenUpdate if !dry_run => {
                note!("stack: {stack_name} is UPDATE_ROLLBACK_FAILED; continuing the rollback");
                current = continue_rollback(client, stack_name, &[]).await?;
                if current.as_deref() == Some("UPDATE_ROLLBACK_FAILED") {
                    // Resources that cannot return to their previous state (a function whose
                    // previous zip is gone) fail every retry: CloudFormation lets them be
                    // skipped, marked as rolled back, and the update that follows sets them anew.
                    let stuck = stuck_in_rollback(client, stack_name).await?;
                    if stuck.is_empty() {
                        bail!(
                            "the rollback of {stack_name} failed again, and no resource says why\nhint: read the stack's events in the CloudFormation console"
                        );
                    }
                    note!(
                        "stack: the rollback failed again on {}; continuing it without them (the update that follows sets them anew)",
                        stuck.join(", ")
                    );
                    current = continue_rollback(client, stack_name, &stuck).await?;
                }
                if current.as_deref() == Some("UPDATE_ROLLBACK_FAILED") {
                    bail!(
                        "the rollback of {stack_name} failed again\nhint: read the stack's events in the CloudFormation console; continue the rollback there, skipping the resources that cannot roll back"
                    );
                }
            }
            _ => break,
        }
    }
    let change_set_type = match action_for(current.as_deref()) {
        StackAction::Update => ChangeSetType::Update,
        _ => ChangeSetType::Create,
    };
    let change_set_name = format!("sfstack-{}", chrono_like_stamp());
    let tags: Vec<Tag> = tags
        .iter()
        .map(|(key, value)| Tag::builder().key(key).value(value).build())
        .collect();
    let created = client
        .create_change_set()
        .stack_name(stack_name)
        .change_set_name(&change_set_name)
        .change_set_type(change_set_type.clone())
        .template_body(template)
        .capabilities(Capability::CapabilityIam)
        .set_tags(Some(tags))
        .send()
        .await;
    if let Err(error) = created {
        if means_no_changes(&aws_error::message(&error)) {
            return Ok(StackOutcome {
                changed: false,
                preview: Vec::new(),
                resources: resources(client, stack_name).await?,
            });
        }
        return Err(error).aws_context(|| format!("creating change set for {stack_name}"));
    }

    // Wait for the change set to be ready.
    let started = Instant::now();
    let described = loop {
        let described = client
            .describe_change_set()
            .stack_name(stack_name)
            .change_set_name(&change_set_name)
            .send()
            .await
            .aws_context(|| format!("describing change set {change_set_name}"))?;
        match described.status() {
            Some(ChangeSetStatus::CreateComplete) => break described,
            Some(ChangeSetStatus::Failed) => {
                let reason = described.status_reason().unwrap_or_default().to_string();
                let _ = client
                    .delete_change_set()
                    .stack_name(stack_name)
                    .change_set_name(&change_set_name)
                    .send()
                    .await;
                if means_no_changes(&reason) {
                    if change_set_type == ChangeSetType::Create {
                        // An empty create leaves a REVIEW_IN_PROGRESS stack behind.
                        let _ = client.delete_stack().stack_name(stack_name).send().await;
                    }
                    return Ok(StackOutcome {
                        changed: false,
                        preview: Vec::new(),
                        resources: resources(client, stack_name).await?,
                    });
                }
                if change_set_type == ChangeSetType::Create {
                    // Do not leave a REVIEW_IN_PROGRESS stack behind for the next run.
                    let _ = client.delete_stack().stack_name(stack_name).send().await;
                }
                bail!(
                    "change set for {stack_name} failed: {reason}\nhint: fix the cause (often the template or a permission), then deploy again"
                );
            }
            _ if started.elapsed() > WAIT_LIMIT => {
                bail!("change set {change_set_name} is not ready after {WAIT_LIMIT:?}")
            }
            _ => tokio::time::sleep(POLL).await,
        }
    };
    let preview: Vec<String> = described
        .changes()
        .iter()
        .filter_map(|change| change.resource_change())
        .map(|change| {
            format!(
                "{} {} ({})",
                change.action().map(|action| action.as_str()).unwrap_or("?"),
                change.logical_resource_id().unwrap_or_default(),
                change.resource_type().unwrap_or_default()
            )
        })
        .collect();
    if dry_run {
        let _ = client
            .delete_change_set()
            .stack_name(stack_name)
            .change_set_name(&change_set_name)
            .send()
            .await;
        if change_set_type == ChangeSetType::Create {
            let _ = client.delete_stack().stack_name(stack_name).send().await;
        }
        return Ok(StackOutcome {
            changed: !preview.is_empty(),
            preview,
            resources: BTreeMap::new(),
        });
    }

    for line in &preview {
        note!("  change: {line}");
    }
    let history = event_ids(client, stack_name).await;
    client
        .execute_change_set()
        .stack_name(stack_name)
        .change_set_name(&change_set_name)
        .send()
        .await
        .aws_context(|| format!("executing change set {change_set_name}"))?;
    crate::progress::set_total(preview.len());
    let final_status = settle_after(client, stack_name, history.clone()).await?;
    let healthy = matches!(
        final_status.as_deref(),
        Some("CREATE_COMPLETE" | "UPDATE_COMPLETE")
    );
    if !healthy {
        let cause = first_failure(client, stack_name, &history)
            .await
            .unwrap_or_else(|| "no failed resource reported".into());
        bail!(
            "stack {stack_name} ended {}: {cause}\nhint: {}",
            final_status.unwrap_or_else(|| "deleted".into()),
            failure_hint(&cause)
        );
    }
    verify_resources(client, stack_name).await?;
    Ok(StackOutcome {
        changed: true,
        preview,
        resources: resources(client, stack_name).await?,
    })
}

/// Every resource of the stack must have a physical id: nothing silently missing.
async fn verify_resources(client: &Client, stack_name: &str) -> anyhow::Result<()> {
    let output = client
        .describe_stack_resources()
        .stack_name(stack_name)
        .send()
        .await
        .aws_context(|| format!("listing the resources of {stack_name}"))?;
    let missing: Vec<&str> = output
        .stack_resources()
        .iter()
        .filter(|resource| resource.physical_resource_id().is_none_or(str::is_empty))
        .filter_map(|resource| resource.logical_resource_id())
        .collect();
    if !missing.is_empty() {
        bail!(
            "stack {stack_name} reports resources without a physical id: {}",
            missing.join(", ")
        );
    }
    Ok(())
}

async fn resources(client: &Client, stack_name: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let Ok(output) = client
        .describe_stack_resources()
        .stack_name(stack_name)
        .send()
        .await
    else {
        return Ok(BTreeMap::new());
    };
    Ok(output
        .stack_resources()
        .iter()
        .filter_map(|resource| {
            Some((
                resource.logical_resource_id()?.to_string(),
                resource.physical_resource_id()?.to_string(),
            ))
        })
        .collect())
}

/// Deletes the stack and waits; "does not exist" is success. Returns whether it existed.
pub async fn delete(client: &Client, stack_name: &str) -> anyhow::Result<bool> {
    let current = settle(client, stack_name).await?;
    if matches!(current.as_deref(), None | Some("DELETE_COMPLETE")) {
        return Ok(false);
    }
    delete_and_wait(client, stack_name).await?;
    Ok(true)
}

/// Seconds since the epoch, for unique change-set names.
fn chrono_like_stamp() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default()
}

/// What to do about a stack that failed on `cause` (a resource's reason).
fn failure_hint(cause: &str) -> &'static str {
    if cause.contains("UnreservedConcurrentExecution") {
        // Lambda Developer Guide, "Configuring reserved concurrency".
        "Lambda keeps 100 of the account's concurrency unreserved, and this stack's reservations (functions.callback_concurrency for the OAuth callback, 1 each for the token refresh and the rotation) would leave less; ask for a higher \"Concurrent executions\" quota in Service Quotas, lower functions.callback_concurrency, or tear down environments you no longer need, then deploy again"
    } else {
        "fix the cause, then deploy again (a failed first create is deleted and re-created)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stack_state_has_its_action() {
        let cases = [
            (None, StackAction::Create),
            (Some("DELETE_COMPLETE"), StackAction::Create),
            (Some("REVIEW_IN_PROGRESS"), StackAction::DeleteThenCreate),
            (Some("ROLLBACK_COMPLETE"), StackAction::DeleteThenCreate),
            (Some("ROLLBACK_FAILED"), StackAction::DeleteThenCreate),
            (
                Some("UPDATE_ROLLBACK_FAILED"),
                StackAction::ContinueRollbackThenUpdate,
            ),
            (Some("CREATE_IN_PROGRESS"), StackAction::Wait),
            (Some("UPDATE_IN_PROGRESS"), StackAction::Wait),
            (
                Some("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"),
                StackAction::Wait,
            ),
            (Some("UPDATE_ROLLBACK_IN_PROGRESS"), StackAction::Wait),
            (Some("DELETE_IN_PROGRESS"), StackAction::Wait),
            (Some("CREATE_COMPLETE"), StackAction::Update),
            (Some("UPDATE_COMPLETE"), StackAction::Update),
            // Matched exactly: this one is a healthy stack, not a failed create.
            (Some("UPDATE_ROLLBACK_COMPLETE"), StackAction::Update),
            (Some("IMPORT_COMPLETE"), StackAction::Update),
        ];
        for (status, action) in cases {
            assert_eq!(action_for(status), action, "{status:?}");
        }
    }

    #[test]
    fn only_the_resources_that_failed_the_latest_rollback_are_skipped() {
        let stack = "AWS::CloudFormation::Stack";
        let function = "AWS::Lambda::Function";
        // Newest first, as CloudFormation lists them: an update failed on the table, its
        // rollback failed on two functions, a continued rollback failed on one again.
        let events = [
            ("s", stack, "UPDATE_ROLLBACK_FAILED"),
            ("B", function, "UPDATE_FAILED"),
            ("A", function, "UPDATE_COMPLETE"),
            ("s", stack, "UPDATE_ROLLBACK_IN_PROGRESS"),
            ("s", stack, "UPDATE_ROLLBACK_FAILED"),
            ("B", function, "UPDATE_FAILED"),
            ("A", function, "UPDATE_FAILED"),
            ("s", stack, "UPDATE_ROLLBACK_IN_PROGRESS"),
            ("Table", "AWS::DynamoDB::Table", "UPDATE_FAILED"),
        ];
        assert_eq!(failed_in_latest_rollback(events.into_iter()), ["B"]);
        assert!(failed_in_latest_rollback(events[3..].iter().copied()).is_empty());
    }

    #[test]
    fn no_change_answers_are_recognised_in_every_wording() {
        assert!(means_no_changes(
            "The submitted information didn't contain changes. Submit different information to create a change set."
        ));
        assert!(means_no_changes(
            "ValidationError: No updates are to be performed."
        ));
        assert!(!means_no_changes(
            "Template format error: unknown resource type"
        ));
    }

    fn template(extra_group: bool) -> String {
        let mut template = String::from(
            "Resources:\n  Tokens:\n    Type: AWS::DynamoDB::Table\n    Properties:\n      TableName: sfstack-stack-test-tokens\n      BillingMode: PAY_PER_REQUEST\n      AttributeDefinitions:\n        - AttributeName: wa_id\n          AttributeType: S\n      KeySchema:\n        - AttributeName: wa_id\n          KeyType: HASH\n  Logs:\n    Type: AWS::Logs::LogGroup\n    Properties:\n      LogGroupName: /aws/lambda/sfstack-stack-test\n      RetentionInDays: 14\n",
        );
        if extra_group {
            template.push_str("  MoreLogs:\n    Type: AWS::Logs::LogGroup\n    Properties:\n      LogGroupName: /aws/lambda/sfstack-stack-test-more\n      RetentionInDays: 7\n");
        }
        template.push_str("Outputs:\n  TableName:\n    Value:\n      Ref: Tokens\n");
        template
    }

    #[tokio::test]
    async fn change_sets_create_no_op_preview_update_and_delete() {
        let moto = tokio::task::spawn_blocking(sfstack_test_support::MotoServer::start)
            .await
            .expect("join")
            .expect("moto starts");
        let client = Client::new(&moto.sdk_config().await);
        let tags = BTreeMap::from([("sfstack:env".to_string(), "stack-test".to_string())]);
        let name = "sfstack-stack-test";

        let created = deploy(&client, name, &template(false), &tags, false)
            .await
            .expect("create");
        assert!(created.changed);
        assert_eq!(
            created.resources.get("Tokens").map(String::as_str),
            Some("sfstack-stack-test-tokens")
        );

        let again = deploy(&client, name, &template(false), &tags, false)
            .await
            .expect("no-op");
        assert!(!again.changed, "{again:?}");

        let preview = deploy(&client, name, &template(true), &tags, true)
            .await
            .expect("dry run");
        assert!(
            preview.preview.iter().any(|line| line.contains("MoreLogs")),
            "{preview:?}"
        );
        let resources = client
            .describe_stack_resources()
            .stack_name(name)
            .send()
            .await
            .expect("resources");
        assert_eq!(
            resources.stack_resources().len(),
            2,
            "a dry run changes nothing"
        );

        let updated = deploy(&client, name, &template(true), &tags, false)
            .await
            .expect("update");
        assert!(updated.changed);
        let resources = client
            .describe_stack_resources()
            .stack_name(name)
            .send()
            .await
            .expect("resources");
        assert_eq!(resources.stack_resources().len(), 3);

        assert!(delete(&client, name).await.expect("delete"));
        assert!(
            !delete(&client, name).await.expect("second delete"),
            "deleting a missing stack is success"
        );
    }

    /// A proxy in front of moto that reports every stack as `ROLLBACK_COMPLETE` until a stack is
    /// deleted: moto never reaches that state itself (it has no rollbacks), and a create that
    /// failed on AWS leaves exactly this behind.
    async fn rolled_back_proxy(
        moto: String,
    ) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

        use axum::body::Bytes;
        use axum::http::{HeaderMap, Method, StatusCode, Uri};
        use axum::response::IntoResponse;

        let rolled_back = Arc::new(AtomicBool::new(true));
        let deletes = Arc::new(AtomicUsize::new(0));
        let http = reqwest::Client::new();
        let (flag, counter) = (rolled_back.clone(), deletes.clone());
        let handler = move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (flag, counter, http, moto) =
                (flag.clone(), counter.clone(), http.clone(), moto.clone());
            async move {
                let request = String::from_utf8_lossy(&body).into_owned();
                if request.contains("Action=DeleteStack") {
                    flag.store(false, Ordering::SeqCst);
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                let path = uri.path_and_query().map_or("/", |path| path.as_str());
                let mut forward = http
                    .request(method, format!("{moto}{path}"))
                    .body(body.clone());
                for (name, value) in &headers {
                    if name != "host" && name != "content-length" {
                        forward = forward.header(name, value);
                    }
                }
                let Ok(response) = forward.send().await else {
                    return StatusCode::BAD_GATEWAY.into_response();
                };
                let status = response.status();
                let content_type = response
                    .headers()
                    .get("content-type")
                    .cloned()
                    .unwrap_or(axum::http::HeaderValue::from_static("text/xml"));
                let mut text = response.text().await.unwrap_or_default();
                if flag.load(Ordering::SeqCst) && request.contains("Action=DescribeStacks") {
                    let mut rewritten = String::with_capacity(text.len());
                    let mut rest = text.as_str();
                    while let Some(start) = rest.find("<StackStatus>") {
                        let open = start + "<StackStatus>".len();
                        let Some(end) = rest[open..].find("</StackStatus>") else {
                            break;
                        };
                        rewritten.push_str(&rest[..open]);
                        rewritten.push_str("ROLLBACK_COMPLETE");
                        rest = &rest[open + end..];
                    }
                    rewritten.push_str(rest);
                    text = rewritten;
                }
                (status, [("content-type", content_type)], text).into_response()
            }
        };
        let router = axum::Router::new().fallback(handler);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        (url, deletes)
    }

    #[tokio::test]
    async fn a_stack_left_in_rollback_complete_is_deleted_and_created_again() {
        let moto = tokio::task::spawn_blocking(sfstack_test_support::MotoServer::start)
            .await
            .expect("join")
            .expect("moto starts");
        let config = moto.sdk_config().await;
        let direct = Client::new(&config);
        let tags = BTreeMap::from([("sfstack:env".to_string(), "rollback".to_string())]);
        let name = "sfstack-stack-test";
        deploy(&direct, name, &template(false), &tags, false)
            .await
            .expect("create");

        let (proxy, deletes) = rolled_back_proxy(moto.endpoint().to_string()).await;
        let through_proxy = Client::from_conf(
            aws_sdk_cloudformation::config::Builder::from(&config)
                .endpoint_url(proxy)
                .build(),
        );
        let redeployed = deploy(&through_proxy, name, &template(true), &tags, false)
            .await
            .expect("a ROLLBACK_COMPLETE stack is replaced");
        assert!(redeployed.changed);
        assert_eq!(deletes.load(std::sync::atomic::Ordering::SeqCst), 1);
        let stack = direct
            .describe_stacks()
            .stack_name(name)
            .send()
            .await
            .expect("describe");
        let stack = stack.stacks().first().expect("the stack exists again");
        assert_eq!(
            stack.stack_status().map(|status| status.as_str()),
            Some("CREATE_COMPLETE")
        );
        assert!(
            redeployed.resources.contains_key("MoreLogs"),
            "{redeployed:?}"
        );
    }
}
