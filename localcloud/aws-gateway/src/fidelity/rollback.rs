//! CloudFormation's rollback, which moto does not have. AWS CloudFormation User Guide:
//!
//! - "Stack failure options" / "Monitor the progress of a stack update": when a resource fails,
//!   CloudFormation rolls the stack back to its last known stable state: a new stack ends
//!   `ROLLBACK_COMPLETE`, an update `UPDATE_ROLLBACK_COMPLETE`, with the previous template and
//!   the previous resource properties in force.
//! - A rollback re-applies the previous properties: for an `AWS::Lambda::Function` whose `Code`
//!   changed, it fetches the previous `S3Bucket`/`S3Key` again. If that object is gone (expired
//!   by a lifecycle rule, say), the resource fails to roll back (`UPDATE_FAILED`, "S3 Error
//!   Code: NoSuchKey") and the stack ends `UPDATE_ROLLBACK_FAILED` ("Troubleshooting
//!   CloudFormation": "Update rollback failed").
//! - `ContinueUpdateRollback` (API reference) resumes such a rollback. Without
//!   `ResourcesToSkip` it tries the same resources again and, if they still cannot roll back,
//!   fails again. `ResourcesToSkip` may name only resources in `UPDATE_FAILED` because the
//!   rollback failed; CloudFormation marks them `UPDATE_COMPLETE` and finishes the rollback.
//!
//! The gateway never lets a failing change set reach moto (moto would apply it): the stack keeps
//! its previous template and resources in moto, and the gateway reports the status and events
//! the rollback would have written ([`Rollbacks::answer`]) until the stack is deleted or a new
//! change set is made for it. Failures come from the IAM propagation model, or are forced by a
//! test ([`Rollbacks::force`], `POST /__sfstack/fail-update`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde_json::Value;

use crate::deny::escape;
use crate::principals::element;
use crate::table::Operation;

/// A resource that fails while CloudFormation applies a change set.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
pub struct Failure {
    pub logical_id: String,
    pub resource_type: String,
    pub reason: String,
}

/// Where a function's code comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Code {
    pub bucket: String,
    pub key: String,
}

/// A change set being executed: what the gateway needs to decide its rollback.
pub struct Execution {
    pub stack: String,
    pub creates: bool,
    /// The functions' code locations in the change set's template, by logical id.
    pub code: BTreeMap<String, Code>,
}

/// The change sets made, and the rollbacks the gateway reports.
#[derive(Default)]
pub struct Rollbacks {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// (stack, change set) → whether it creates the stack, and its functions' code.
    change_sets: HashMap<(String, String), (bool, BTreeMap<String, Code>)>,
    /// Stack name → the rollback reported for it.
    reported: HashMap<String, Reported>,
    /// Stack name → the failure its next change set meets.
    forced: HashMap<String, Failure>,
    /// Stack name → the resource its next deletion fails on.
    forced_deletes: HashMap<String, Failure>,
    next_id: u64,
}

#[derive(Clone)]
struct Reported {
    status: &'static str,
    /// Newest last.
    events: Vec<Event>,
    /// The resources whose rollback failed (`UPDATE_FAILED`), with the reason.
    stuck: Vec<Failure>,
}

#[derive(Clone)]
struct Event {
    logical_id: String,
    resource_type: String,
    status: String,
    reason: String,
    at: chrono::DateTime<chrono::Utc>,
    id: u64,
}

const STACK: &str = "AWS::CloudFormation::Stack";

impl State {
    /// A new event, numbered after every earlier one.
    fn event(
        &mut self,
        logical_id: &str,
        resource_type: &str,
        status: &str,
        reason: &str,
    ) -> Event {
        self.next_id += 1;
        Event {
            logical_id: logical_id.to_string(),
            resource_type: resource_type.to_string(),
            status: status.to_string(),
            reason: reason.to_string(),
            at: chrono::Utc::now(),
            id: self.next_id,
        }
    }
}

impl Rollbacks {
    /// Notes what a successful request changed.
    pub fn record(&self, operation: &Operation) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let parameter = |name: &str| operation.parameters.get(name).and_then(Value::as_str);
        match operation.action().as_str() {
            "cloudformation:CreateChangeSet" => {
                let (Some(stack), Some(name)) =
                    (parameter("StackName"), parameter("ChangeSetName"))
                else {
                    return;
                };
                let code = parameter("TemplateBody")
                    .map(function_code)
                    .unwrap_or_default();
                // A new change set is a new attempt: the old rollback is history.
                state.reported.remove(stack);
                state.change_sets.insert(
                    (stack.to_string(), name.to_string()),
                    (parameter("ChangeSetType") == Some("CREATE"), code),
                );
            }
            "cloudformation:DeleteStack" => {
                if let Some(stack) = parameter("StackName") {
                    state.reported.remove(stack);
                    state.forced.remove(stack);
                }
            }
            _ => {}
        }
    }

    /// The next change set executed on `stack` fails on this resource.
    pub fn force(&self, stack: &str, failure: Failure) {
        if let Ok(mut state) = self.state.lock() {
            state.forced.insert(stack.to_string(), failure);
        }
    }

    /// The next deletion of `stack` fails on this resource (`DELETE_FAILED`; CloudFormation
    /// User Guide, "Delete a stack": a resource that cannot be deleted leaves the stack
    /// `DELETE_FAILED`, with the resources not yet deleted still in place).
    pub fn force_delete_failure(&self, stack: &str, failure: Failure) {
        if let Ok(mut state) = self.state.lock() {
            state.forced_deletes.insert(stack.to_string(), failure);
        }
    }

    /// For a `DeleteStack` whose failure was forced: records the stack as `DELETE_FAILED`
    /// (moto never sees the request, so every resource stays) and returns `true`.
    pub fn fails_deletion(&self, operation: &Operation) -> bool {
        if operation.action() != "cloudformation:DeleteStack" {
            return false;
        }
        let Some(stack) = operation
            .parameters
            .get("StackName")
            .and_then(Value::as_str)
        else {
            return false;
        };
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        let Some(failure) = state.forced_deletes.remove(stack) else {
            return false;
        };
        let events = vec![
            state.event(stack, STACK, "DELETE_IN_PROGRESS", "User Initiated"),
            state.event(
                &failure.logical_id,
                &failure.resource_type,
                "DELETE_FAILED",
                &failure.reason,
            ),
            state.event(
                stack,
                STACK,
                "DELETE_FAILED",
                &format!(
                    "The following resource(s) failed to delete: [{}].",
                    failure.logical_id
                ),
            ),
        ];
        state.reported.insert(
            stack.to_string(),
            Reported {
                status: "DELETE_FAILED",
                events,
                stuck: Vec::new(),
            },
        );
        true
    }

    /// The change set an `ExecuteChangeSet` runs, if the gateway saw it made.
    pub fn execution(&self, operation: &Operation) -> Option<Execution> {
        if operation.action() != "cloudformation:ExecuteChangeSet" {
            return None;
        }
        let parameter = |name: &str| operation.parameters.get(name).and_then(Value::as_str);
        let (stack, name) = (parameter("StackName")?, parameter("ChangeSetName")?);
        let state = self.state.lock().ok()?;
        let (creates, code) = state
            .change_sets
            .get(&(stack.to_string(), name.to_string()))?;
        Some(Execution {
            stack: stack.to_string(),
            creates: *creates,
            code: code.clone(),
        })
    }

    /// The failure forced on `stack`'s next change set, consumed.
    pub fn take_forced(&self, stack: &str) -> Option<Failure> {
        self.state.lock().ok()?.forced.remove(stack)
    }

    /// Records that `execution` failed on `failure` and rolled back; `stuck` are the resources
    /// whose rollback failed in turn (an update only).
    pub fn roll_back(&self, execution: &Execution, failure: Failure, stuck: Vec<Failure>) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let (verb, failed, rolling, status) = match (execution.creates, stuck.is_empty()) {
            (true, _) => (
                "create",
                "CREATE_FAILED",
                "ROLLBACK_IN_PROGRESS",
                "ROLLBACK_COMPLETE",
            ),
            (false, true) => (
                "update",
                "UPDATE_FAILED",
                "UPDATE_ROLLBACK_IN_PROGRESS",
                "UPDATE_ROLLBACK_COMPLETE",
            ),
            (false, false) => (
                "update",
                "UPDATE_FAILED",
                "UPDATE_ROLLBACK_IN_PROGRESS",
                "UPDATE_ROLLBACK_FAILED",
            ),
        };
        let stack = execution.stack.as_str();
        let mut events = Vec::new();
        events.push(state.event(
            &failure.logical_id,
            &failure.resource_type,
            failed,
            &failure.reason,
        ));
        events.push(state.event(
            stack,
            STACK,
            rolling,
            &format!(
                "The following resource(s) failed to {verb}: [{}].",
                failure.logical_id
            ),
        ));
        for resource in &stuck {
            events.push(state.event(
                &resource.logical_id,
                &resource.resource_type,
                "UPDATE_FAILED",
                &resource.reason,
            ));
        }
        events.push(state.event(stack, STACK, status, &stuck_reason(&stuck)));
        state.reported.insert(
            stack.to_string(),
            Reported {
                status,
                events,
                stuck,
            },
        );
    }

    /// `ContinueUpdateRollback` on a stack the gateway reports `UPDATE_ROLLBACK_FAILED`:
    /// `Ok(())` once answered (the rollback finished or failed again), `Err` with a
    /// `ValidationError` message for a skip CloudFormation refuses. `None`: not such a stack.
    pub fn continue_rollback(&self, operation: &Operation) -> Option<Result<(), String>> {
        if operation.action() != "cloudformation:ContinueUpdateRollback" {
            return None;
        }
        let stack = operation.parameters.get("StackName")?.as_str()?.to_string();
        // The query protocol spells the list `ResourcesToSkip.member.N`.
        let skip: Vec<String> = operation
            .parameters
            .as_object()?
            .iter()
            .filter(|(name, _)| name.starts_with("ResourcesToSkip.member."))
            .filter_map(|(_, value)| value.as_str().map(str::to_string))
            .collect();
        let mut state = self.state.lock().ok()?;
        let reported = state.reported.get(&stack)?.clone();
        if reported.status != "UPDATE_ROLLBACK_FAILED" {
            return None;
        }
        if let Some(wrong) = skip.iter().find(|name| {
            !reported
                .stuck
                .iter()
                .any(|stuck| &stuck.logical_id == *name)
        }) {
            return Some(Err(format!(
                "Resource {wrong} cannot be skipped: ResourcesToSkip may name only resources in UPDATE_FAILED state because the rollback failed"
            )));
        }
        let still: Vec<Failure> = reported
            .stuck
            .iter()
            .filter(|stuck| !skip.contains(&stuck.logical_id))
            .cloned()
            .collect();
        let status = if still.is_empty() {
            "UPDATE_ROLLBACK_COMPLETE"
        } else {
            "UPDATE_ROLLBACK_FAILED"
        };
        let mut events = reported.events;
        events.push(state.event(&stack, STACK, "UPDATE_ROLLBACK_IN_PROGRESS", ""));
        for resource in &reported.stuck {
            if skip.contains(&resource.logical_id) {
                events.push(state.event(
                    &resource.logical_id,
                    &resource.resource_type,
                    "UPDATE_COMPLETE",
                    "Resource skipped during UpdateRollback",
                ));
            } else {
                events.push(state.event(
                    &resource.logical_id,
                    &resource.resource_type,
                    "UPDATE_FAILED",
                    &resource.reason,
                ));
            }
        }
        events.push(state.event(&stack, STACK, status, &stuck_reason(&still)));
        state.reported.insert(
            stack,
            Reported {
                status,
                events,
                stuck: still,
            },
        );
        Some(Ok(()))
    }

    /// CloudFormation's answer about a rolled-back stack: `DescribeStacks` with the rollback's
    /// status, `DescribeStackEvents` with the rollback's events first (newest first, as
    /// CloudFormation lists them). `None`: moto's answer stands.
    pub fn answer(&self, operation: &Operation, body: &str) -> Option<String> {
        let stack = operation.parameters.get("StackName")?.as_str()?;
        let reported = self.state.lock().ok()?.reported.get(stack).cloned()?;
        match operation.action().as_str() {
            "cloudformation:DescribeStacks" => {
                let start = body.find("<StackStatus>")? + "<StackStatus>".len();
                let end = start + body[start..].find("</StackStatus>")?;
                Some(format!(
                    "{}{}{}",
                    &body[..start],
                    reported.status,
                    &body[end..]
                ))
            }
            "cloudformation:DescribeStackEvents" => {
                let stack_id = element(body, "StackId").unwrap_or(stack).to_string();
                let events: String = reported
                    .events
                    .iter()
                    .rev()
                    .map(|event| {
                        format!(
                            "<member><StackId>{stack_id}</StackId><EventId>sfstack-rollback-{}</EventId><StackName>{stack}</StackName><LogicalResourceId>{}</LogicalResourceId><ResourceType>{}</ResourceType><Timestamp>{}</Timestamp><ResourceStatus>{}</ResourceStatus>{}</member>",
                            event.id,
                            escape(&event.logical_id),
                            escape(&event.resource_type),
                            event.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                            event.status,
                            if event.reason.is_empty() {
                                String::new()
                            } else {
                                format!(
                                    "<ResourceStatusReason>{}</ResourceStatusReason>",
                                    escape(&event.reason)
                                )
                            }
                        )
                    })
                    .collect();
                let at = body.find("<StackEvents>")? + "<StackEvents>".len();
                Some(format!("{}{events}{}", &body[..at], &body[at..]))
            }
            _ => None,
        }
    }
}

/// The functions whose rollback needs their previous code again: those whose code `execution`
/// changes, but for the one that failed (it never changed).
pub fn code_to_restore<'a>(
    execution: &'a Execution,
    previous: &'a BTreeMap<String, Code>,
    failed: &str,
) -> Vec<(&'a str, &'a Code)> {
    previous
        .iter()
        .filter(|(logical, code)| {
            logical.as_str() != failed
                && execution.code.get(*logical).is_some_and(|new| new != *code)
        })
        .map(|(logical, code)| (logical.as_str(), code))
        .collect()
}

/// How Lambda, inside CloudFormation, reports code it cannot fetch.
pub fn missing_code(code: &Code, logical_id: &str) -> Failure {
    Failure {
        logical_id: logical_id.to_string(),
        resource_type: "AWS::Lambda::Function".to_string(),
        reason: format!(
            "Resource handler returned message: \"Error occurred while GetObject. S3 Error Code: NoSuchKey. S3 Error Message: The specified key does not exist. (Service: Lambda, Status Code: 400, Request ID: sfstack-gateway)\" (RequestToken: sfstack-gateway, HandlerErrorCode: InvalidRequest) [s3://{}/{}]",
            code.bucket, code.key
        ),
    }
}

fn stuck_reason(stuck: &[Failure]) -> String {
    if stuck.is_empty() {
        String::new()
    } else {
        format!(
            "The following resource(s) failed to update: [{}].",
            stuck
                .iter()
                .map(|failure| failure.logical_id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// The code location of a template's Lambda functions (literal `Code.S3Bucket`/`S3Key`), by
/// logical id.
pub fn function_code(template: &str) -> BTreeMap<String, Code> {
    lambda_functions(template)
        .into_iter()
        .filter_map(|(logical, properties)| {
            let code = properties.get("Code")?;
            Some((
                logical,
                Code {
                    bucket: code.get("S3Bucket")?.as_str()?.to_string(),
                    key: code.get("S3Key")?.as_str()?.to_string(),
                },
            ))
        })
        .collect()
}

/// The `Properties` of a template's `AWS::Lambda::Function` resources, by logical id.
pub(crate) fn lambda_functions(template: &str) -> Vec<(String, serde_yaml::Value)> {
    super::template_resources(template, "AWS::Lambda::Function")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table;

    fn query(body: &str) -> Operation {
        table::operation("cloudformation", "POST", "/", None, None, body.as_bytes())
            .expect("an operation")
    }

    fn template(key: &str) -> String {
        format!(
            "Resources:\n  Fn:\n    Type: AWS::Lambda::Function\n    Properties:\n      Code:\n        S3Bucket: b\n        S3Key: {key}\n  Table:\n    Type: AWS::DynamoDB::Table\n"
        )
    }

    fn change_set(rollbacks: &Rollbacks, name: &str, kind: &str, key: &str) -> Execution {
        let body = format!(
            "Action=CreateChangeSet&StackName=s&ChangeSetName={name}&ChangeSetType={kind}&TemplateBody={}",
            form_urlencoded::byte_serialize(template(key).as_bytes()).collect::<String>()
        );
        rollbacks.record(&query(&body));
        rollbacks
            .execution(&query(&format!(
                "Action=ExecuteChangeSet&StackName=s&ChangeSetName={name}"
            )))
            .expect("a known change set")
    }

    fn status(rollbacks: &Rollbacks) -> Option<String> {
        rollbacks
            .answer(
                &query("Action=DescribeStacks&StackName=s"),
                "<StackStatus>UPDATE_COMPLETE</StackStatus>",
            )
            .and_then(|body| element(&body, "StackStatus").map(str::to_string))
    }

    fn table_failure() -> Failure {
        Failure {
            logical_id: "Table".into(),
            resource_type: "AWS::DynamoDB::Table".into(),
            reason: "forced".into(),
        }
    }

    #[test]
    fn an_update_whose_previous_code_is_gone_fails_to_roll_back_until_it_is_skipped() {
        let rollbacks = Rollbacks::default();
        let execution = change_set(&rollbacks, "c1", "UPDATE", "fn/new.zip");
        let previous = function_code(&template("fn/old.zip"));
        let restore = code_to_restore(&execution, &previous, "Table");
        assert_eq!(restore.len(), 1);
        let stuck = restore
            .iter()
            .map(|(logical, code)| missing_code(code, logical))
            .collect();
        rollbacks.roll_back(&execution, table_failure(), stuck);
        assert_eq!(
            status(&rollbacks).as_deref(),
            Some("UPDATE_ROLLBACK_FAILED")
        );
        let events = rollbacks
            .answer(
                &query("Action=DescribeStackEvents&StackName=s"),
                "<StackEvents></StackEvents>",
            )
            .expect("the rollback's events");
        assert!(events.contains("NoSuchKey") && events.contains("fn/old.zip"));

        // Continuing without a skip fails again; skipping a resource that did not fail is refused.
        let plain = query("Action=ContinueUpdateRollback&StackName=s");
        assert_eq!(rollbacks.continue_rollback(&plain), Some(Ok(())));
        assert_eq!(
            status(&rollbacks).as_deref(),
            Some("UPDATE_ROLLBACK_FAILED")
        );
        let wrong =
            query("Action=ContinueUpdateRollback&StackName=s&ResourcesToSkip.member.1=Table");
        assert!(matches!(rollbacks.continue_rollback(&wrong), Some(Err(_))));
        let skip = query("Action=ContinueUpdateRollback&StackName=s&ResourcesToSkip.member.1=Fn");
        assert_eq!(rollbacks.continue_rollback(&skip), Some(Ok(())));
        assert_eq!(
            status(&rollbacks).as_deref(),
            Some("UPDATE_ROLLBACK_COMPLETE")
        );
        // A rollback that is complete is moto's business again.
        assert_eq!(rollbacks.continue_rollback(&plain), None);
    }

    #[test]
    fn unchanged_code_needs_nothing_to_roll_back_and_a_create_rolls_back_whole() {
        let rollbacks = Rollbacks::default();
        let execution = change_set(&rollbacks, "c1", "UPDATE", "fn/same.zip");
        let previous = function_code(&template("fn/same.zip"));
        assert!(code_to_restore(&execution, &previous, "Table").is_empty());
        let created = change_set(&rollbacks, "c2", "CREATE", "fn/new.zip");
        rollbacks.roll_back(&created, table_failure(), Vec::new());
        assert_eq!(status(&rollbacks).as_deref(), Some("ROLLBACK_COMPLETE"));
        // Deleting the stack ends the story.
        rollbacks.record(&query("Action=DeleteStack&StackName=s"));
        assert_eq!(status(&rollbacks), None);
    }
}
