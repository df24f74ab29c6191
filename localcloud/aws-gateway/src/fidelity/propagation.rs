//! IAM's eventual consistency: a role just created cannot be assumed by Lambda for a while. IAM User Guide, "Troubleshoot IAM" / "Changes that I make
//! are not always immediately visible": IAM is eventually consistent, and a new role may not be
//! usable at once; Lambda's CreateFunction then fails with `InvalidParameterValueException`:
//! "The role defined for the function cannot be assumed by Lambda." Inside CloudFormation the
//! function's creation fails and the stack rolls back: a new stack ends `ROLLBACK_COMPLETE`,
//! an update `UPDATE_ROLLBACK_COMPLETE` (the previous resources stay in place).
//!
//! moto has no such delay and no rollback. The gateway models both: for [`WINDOW`] after a
//! role's creation the Lambda service may not assume it; and the first change set executed
//! within [`FIRST_USE`] of the creation of a role one of its functions uses fails on that
//! function, and [`super::rollback`] rolls the stack back. That first attempt fails whatever the
//! machine's speed, so every first deploy on the local cloud takes the path a first deploy on
//! AWS may take.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::rollback::Failure;
use crate::table::Operation;

/// How long a new role is not usable by Lambda on the local cloud (AWS documents no bound;
/// seconds are usual), scaled down so a local first deploy stays quick.
pub const WINDOW: Duration = Duration::from_secs(1);

/// How long after a role's creation the first change set that uses it fails.
pub const FIRST_USE: Duration = Duration::from_secs(60);

/// What propagation has yet to reach.
#[derive(Default)]
pub struct Propagation {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Role ARN → when it was created, and whether a change set has failed on it since.
    roles: HashMap<String, Role>,
    /// (stack, change set) → the roles of its functions by the function's logical id.
    change_sets: HashMap<(String, String), Vec<(String, String)>>,
}

struct Role {
    at: Instant,
    failed_once: bool,
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
                state
                    .change_sets
                    .insert((stack.to_string(), name.to_string()), functions);
            }
            _ => {}
        }
    }

    /// The function on which executing this change set fails, as CloudFormation would fail it,
    /// if it does.
    pub fn failure(&self, operation: &Operation) -> Option<Failure> {
        if operation.action() != "cloudformation:ExecuteChangeSet" {
            return None;
        }
        let parameter = |name: &str| operation.parameters.get(name).and_then(Value::as_str);
        let (stack, name) = (parameter("StackName")?, parameter("ChangeSetName")?);
        let mut state = self.state.lock().ok()?;
        let functions = state
            .change_sets
            .get(&(stack.to_string(), name.to_string()))?;
        let young: Vec<(String, String)> = functions
            .iter()
            .filter(|(_, role)| {
                state
                    .roles
                    .get(role)
                    .is_some_and(|role| !role.failed_once && role.at.elapsed() < FIRST_USE)
            })
            .cloned()
            .collect();
        let (logical_id, _) = young.first().cloned()?;
        for (_, role) in &young {
            if let Some(role) = state.roles.get_mut(role) {
                role.failed_once = true;
            }
        }
        Some(Failure {
            logical_id,
            resource_type: "AWS::Lambda::Function".to_string(),
            reason: "Resource handler returned message: \"The role defined for the function cannot be assumed by Lambda. (Service: Lambda, Status Code: 400)\" (HandlerErrorCode: InvalidRequest)".to_string(),
        })
    }
}

/// The roles of a template's Lambda functions (a literal `Role` ARN), by logical id.
fn function_roles(template: &str) -> Vec<(String, String)> {
    super::rollback::lambda_functions(template)
        .into_iter()
        .filter_map(|(logical, properties)| {
            Some((logical, properties.get("Role")?.as_str()?.to_string()))
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
    fn a_function_on_a_new_role_fails_its_change_set() {
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
        let failure = propagation.failure(&execute).expect("a failure");
        assert_eq!(failure.logical_id, "Fn");
        assert!(failure.reason.contains("cannot be assumed by Lambda"));
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
            assert_eq!(propagation.failure(&execute).is_some(), fails, "{name}");
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
        assert!(
            propagation
                .failure(&query(
                    "Action=ExecuteChangeSet&StackName=s&ChangeSetName=c"
                ))
                .is_none()
        );
    }
}
