//! IAM's eventual consistency: a role just created cannot be assumed by Lambda for a while. IAM User Guide, "Troubleshoot IAM" / "Changes that I make
//! are not always immediately visible": IAM is eventually consistent, and a new role may not be
//! usable at once; Lambda's CreateFunction then fails with `InvalidParameterValueException`:
//! "The role defined for the function cannot be assumed by Lambda." Inside CloudFormation the
//! function's creation fails and the stack rolls back: a new stack ends `ROLLBACK_COMPLETE`,
//! an update `UPDATE_ROLLBACK_COMPLETE` (the previous resources stay in place).
//!
//! moto has no such delay and no rollback. The gateway models both: for [`WINDOW`] after a
//! role's creation the Lambda service may not assume it; and the first change set executed
//! within [`FIRST_USE`] of the creation of a role one of its functions uses is not executed:
//! the stack reads as rolled back instead (its status and the events a rollback writes) until
//! it is deleted or a new change set is made for it. That first attempt fails whatever the
//! machine's speed, so every first deploy on the local cloud takes the path a first deploy on
//! AWS may take.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::deny::escape;
use crate::principals::element;
use crate::table::Operation;

/// How long a new role is not usable by Lambda on the local cloud (AWS documents no bound;
/// seconds are usual), scaled down so a local first deploy stays quick.
pub const WINDOW: Duration = Duration::from_secs(1);

/// How long after a role's creation the first change set that uses it fails.
pub const FIRST_USE: Duration = Duration::from_secs(60);

/// What propagation has yet to reach, and the stacks it made roll back.
#[derive(Default)]
pub struct Propagation {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Role ARN → when it was created, and whether a change set has failed on it since.
    roles: HashMap<String, Role>,
    /// (stack, change set) → whether it creates the stack, and the roles of its functions by
    /// the function's logical id.
    change_sets: HashMap<(String, String), ChangeSet>,
    /// Stack name → the rollback the gateway reports for it.
    rolled_back: HashMap<String, Rollback>,
}

struct Role {
    at: Instant,
    failed_once: bool,
}

struct ChangeSet {
    creates: bool,
    functions: Vec<(String, String)>,
}

#[derive(Clone)]
struct Rollback {
    status: &'static str,
    logical_id: String,
    reason: String,
    at: chrono::DateTime<chrono::Utc>,
    id: u64,
}

impl Propagation {
    /// Whether `role_arn` is too new for Lambda to assume.
    pub fn too_new(&self, role_arn: &str) -> bool {
        self.state.lock().ok().is_some_and(|state| {
            state
                .roles
                .get(role_arn)
                .is_some_and(|role| role.at.elapsed() < WINDOW)
        })
    }

    /// Notes what a request (already answered with success) changed.
    pub fn record(&self, operation: &Operation, account_id: &str) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let parameter = |name: &str| operation.parameters.get(name).and_then(Value::as_str);
        match operation.action().as_str() {
            // A changed trust policy propagates too, but sfstack changes one only to repair it;
            // the model keeps to new roles.
            "iam:CreateRole" => {
                if let Some(name) = parameter("RoleName") {
                    // Roles sfstack makes have the path `/`.
                    let path = parameter("Path").unwrap_or("/");
                    let arn = format!("arn:aws:iam::{account_id}:role{path}{name}");
                    state.roles.insert(
                        arn,
                        Role {
                            at: Instant::now(),
                            failed_once: false,
                        },
                    );
                }
            }
            "cloudformation:CreateChangeSet" => {
                let (Some(stack), Some(name)) =
                    (parameter("StackName"), parameter("ChangeSetName"))
                else {
                    return;
                };
                let functions = parameter("TemplateBody")
                    .map(function_roles)
                    .unwrap_or_default();
                // A new change set is a new attempt: the old rollback is history.
                state.rolled_back.remove(stack);
                state.change_sets.insert(
                    (stack.to_string(), name.to_string()),
                    ChangeSet {
                        creates: parameter("ChangeSetType") == Some("CREATE"),
                        functions,
                    },
                );
            }
            "cloudformation:DeleteStack" => {
                if let Some(stack) = parameter("StackName") {
                    state.rolled_back.remove(stack);
                }
            }
            _ => {}
        }
    }

    /// Whether executing this change set must fail as CloudFormation would; if so, the stack is
    /// marked rolled back and the change set must not reach moto.
    pub fn fails_execution(&self, operation: &Operation) -> bool {
        if operation.action() != "cloudformation:ExecuteChangeSet" {
            return false;
        }
        let parameter = |name: &str| operation.parameters.get(name).and_then(Value::as_str);
        let (Some(stack), Some(name)) = (parameter("StackName"), parameter("ChangeSetName")) else {
            return false;
        };
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        let Some(change_set) = state
            .change_sets
            .get(&(stack.to_string(), name.to_string()))
        else {
            return false;
        };
        let young: Vec<(String, String)> = change_set
            .functions
            .iter()
            .filter(|(_, role)| {
                state
                    .roles
                    .get(role)
                    .is_some_and(|role| !role.failed_once && role.at.elapsed() < FIRST_USE)
            })
            .cloned()
            .collect();
        let Some((logical_id, _)) = young.first().cloned() else {
            return false;
        };
        let creates = change_set.creates;
        for (_, role) in &young {
            if let Some(role) = state.roles.get_mut(role) {
                role.failed_once = true;
            }
        }
        let status = if creates {
            "ROLLBACK_COMPLETE"
        } else {
            "UPDATE_ROLLBACK_COMPLETE"
        };
        let id = state.rolled_back.len() as u64 + 1;
        state.rolled_back.insert(
            stack.to_string(),
            Rollback {
                status,
                logical_id,
                reason: "Resource handler returned message: \"The role defined for the function cannot be assumed by Lambda. (Service: Lambda, Status Code: 400)\" (HandlerErrorCode: InvalidRequest)".to_string(),
                at: chrono::Utc::now(),
                id,
            },
        );
        true
    }

    /// CloudFormation's answer about a rolled-back stack: `DescribeStacks` with the rollback's
    /// status, `DescribeStackEvents` with the rollback's events first (newest first, as
    /// CloudFormation lists them). `None`: moto's answer stands.
    pub fn answer(&self, operation: &Operation, body: &str) -> Option<String> {
        let stack = operation.parameters.get("StackName")?.as_str()?;
        let rollback = self.state.lock().ok()?.rolled_back.get(stack).cloned()?;
        match operation.action().as_str() {
            "cloudformation:DescribeStacks" => {
                let start = body.find("<StackStatus>")? + "<StackStatus>".len();
                let end = start + body[start..].find("</StackStatus>")?;
                Some(format!(
                    "{}{}{}",
                    &body[..start],
                    rollback.status,
                    &body[end..]
                ))
            }
            "cloudformation:DescribeStackEvents" => {
                let stack_id = element(body, "StackId").unwrap_or(stack).to_string();
                let failed = if rollback.status == "ROLLBACK_COMPLETE" {
                    "CREATE_FAILED"
                } else {
                    "UPDATE_FAILED"
                };
                let event = |n: u32, logical: &str, kind: &str, status: &str, reason: &str| {
                    format!(
                        "<member><StackId>{stack_id}</StackId><EventId>sfstack-rollback-{}-{n}</EventId><StackName>{stack}</StackName><LogicalResourceId>{logical}</LogicalResourceId><ResourceType>{kind}</ResourceType><Timestamp>{}</Timestamp><ResourceStatus>{status}</ResourceStatus>{}</member>",
                        rollback.id,
                        (rollback.at + chrono::Duration::milliseconds(i64::from(n)))
                            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                        if reason.is_empty() {
                            String::new()
                        } else {
                            format!(
                                "<ResourceStatusReason>{}</ResourceStatusReason>",
                                escape(reason)
                            )
                        }
                    )
                };
                let events = [
                    event(3, stack, "AWS::CloudFormation::Stack", rollback.status, ""),
                    event(
                        2,
                        stack,
                        "AWS::CloudFormation::Stack",
                        &rollback.status.replace("COMPLETE", "IN_PROGRESS"),
                        &format!(
                            "The following resource(s) failed to {}: [{}].",
                            if failed == "CREATE_FAILED" {
                                "create"
                            } else {
                                "update"
                            },
                            rollback.logical_id
                        ),
                    ),
                    event(
                        1,
                        &rollback.logical_id,
                        "AWS::Lambda::Function",
                        failed,
                        &rollback.reason,
                    ),
                ]
                .concat();
                let at = body.find("<StackEvents>")? + "<StackEvents>".len();
                Some(format!("{}{events}{}", &body[..at], &body[at..]))
            }
            _ => None,
        }
    }
}

/// The roles of a template's Lambda functions (a literal `Role` ARN), by logical id.
fn function_roles(template: &str) -> Vec<(String, String)> {
    let Ok(template) = serde_yaml::from_str::<serde_yaml::Value>(template) else {
        return Vec::new();
    };
    let Some(resources) = template.get("Resources").and_then(|r| r.as_mapping()) else {
        return Vec::new();
    };
    resources
        .iter()
        .filter(|(_, resource)| {
            resource.get("Type").and_then(serde_yaml::Value::as_str)
                == Some("AWS::Lambda::Function")
        })
        .filter_map(|(logical, resource)| {
            Some((
                logical.as_str()?.to_string(),
                resource
                    .get("Properties")?
                    .get("Role")?
                    .as_str()?
                    .to_string(),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table;

    fn query(body: &str) -> Operation {
        table::operation("cloudformation", "POST", "/", None, None, body.as_bytes())
            .expect("an operation")
    }

    #[test]
    fn a_function_on_a_new_role_rolls_its_new_stack_back() {
        let propagation = Propagation::default();
        let create_role = table::operation(
            "iam",
            "POST",
            "/",
            None,
            None,
            b"Action=CreateRole&RoleName=r&AssumeRolePolicyDocument=%7B%7D",
        )
        .expect("an operation");
        propagation.record(&create_role, "1");
        assert!(propagation.too_new("arn:aws:iam::1:role/r"));
        let template = "Resources:\n  Fn:\n    Type: AWS::Lambda::Function\n    Properties:\n      Role: \"arn:aws:iam::1:role/r\"\n";
        let body = format!(
            "Action=CreateChangeSet&StackName=s&ChangeSetName=c&ChangeSetType=CREATE&TemplateBody={}",
            form_urlencoded::byte_serialize(template.as_bytes()).collect::<String>()
        );
        propagation.record(&query(&body), "1");
        let execute = query("Action=ExecuteChangeSet&StackName=s&ChangeSetName=c");
        assert!(propagation.fails_execution(&execute));
        let described = propagation
            .answer(
                &query("Action=DescribeStacks&StackName=s"),
                "<Stacks><member><StackName>s</StackName><StackStatus>REVIEW_IN_PROGRESS</StackStatus></member></Stacks>",
            )
            .expect("a rolled-back stack");
        assert!(described.contains("<StackStatus>ROLLBACK_COMPLETE</StackStatus>"));
        let events = propagation
            .answer(
                &query("Action=DescribeStackEvents&StackName=s"),
                "<StackEvents></StackEvents>",
            )
            .expect("the rollback's events");
        assert!(events.contains("CREATE_FAILED") && events.contains("cannot be assumed by Lambda"));
        // Deleting the stack ends the rollback's story.
        propagation.record(&query("Action=DeleteStack&StackName=s"), "1");
        assert_eq!(
            propagation.answer(
                &query("Action=DescribeStacks&StackName=s"),
                "<StackStatus>X</StackStatus>"
            ),
            None
        );
    }

    #[test]
    fn a_role_fails_only_the_first_change_set_that_uses_it() {
        let propagation = Propagation::default();
        let create_role = table::operation(
            "iam",
            "POST",
            "/",
            None,
            None,
            b"Action=CreateRole&RoleName=r&AssumeRolePolicyDocument=%7B%7D",
        )
        .expect("an operation");
        propagation.record(&create_role, "1");
        let template = "Resources:\n  Fn:\n    Type: AWS::Lambda::Function\n    Properties:\n      Role: \"arn:aws:iam::1:role/r\"\n";
        for (name, fails) in [("c1", true), ("c2", false)] {
            let body = format!(
                "Action=CreateChangeSet&StackName=s&ChangeSetName={name}&ChangeSetType=CREATE&TemplateBody={}",
                form_urlencoded::byte_serialize(template.as_bytes()).collect::<String>()
            );
            propagation.record(&query(&body), "1");
            let execute = query(&format!(
                "Action=ExecuteChangeSet&StackName=s&ChangeSetName={name}"
            ));
            assert_eq!(propagation.fails_execution(&execute), fails, "{name}");
        }
    }

    #[test]
    fn an_old_role_is_usable() {
        let propagation = Propagation::default();
        assert!(!propagation.too_new("arn:aws:iam::1:role/r"));
        let template = "Resources:\n  Fn:\n    Type: AWS::Lambda::Function\n    Properties:\n      Role: \"arn:aws:iam::1:role/r\"\n";
        let body = format!(
            "Action=CreateChangeSet&StackName=s&ChangeSetName=c&ChangeSetType=UPDATE&TemplateBody={}",
            form_urlencoded::byte_serialize(template.as_bytes()).collect::<String>()
        );
        propagation.record(&query(&body), "1");
        assert!(!propagation.fails_execution(&query(
            "Action=ExecuteChangeSet&StackName=s&ChangeSetName=c"
        )));
    }
}
