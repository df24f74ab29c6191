//! Lambda keeps part of an account's concurrency unreserved: a function's reserved concurrency
//! may not leave less than 100 of the account's limit to the functions without one (Lambda
//! Developer Guide, "Configuring reserved concurrency": "You can reserve up to the Unreserved
//! account concurrency value that is shown, minus 100"). A new account's limit can be as low as
//! 10, where no reservation at all is possible. The stack resource then fails with "Specified
//! ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution
//! below its minimum value of [100]."
//!
//! moto accepts any reservation. The gateway keeps the reservations of the functions stacks
//! made, reads those a change set asks for when it is created, and fails its execution on the
//! first reserving function when the account would keep less than 100 unreserved. Tests set the
//! account's limit at `POST /__sfstack/account-concurrency` (default 1,000, AWS's usual
//! default).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde_json::Value;

use super::ChangeSets;
use super::rollback::Failure;
use crate::table::Operation;

/// AWS's usual default for an account's concurrent executions in a region.
pub const DEFAULT_ACCOUNT_LIMIT: u32 = 1000;
/// What Lambda always leaves unreserved.
pub const MINIMUM_UNRESERVED: u32 = 100;

/// A function of a template that reserves concurrency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub logical_id: String,
    pub function_name: String,
    pub reserved: u32,
}

struct State {
    account_limit: u32,
    /// stack → function name → reserved, as its last executed change set left them.
    stacks: HashMap<String, BTreeMap<String, u32>>,
}

pub struct Concurrency {
    /// The reservations each change set's template asks for.
    change_sets: ChangeSets<Vec<Reservation>>,
    state: Mutex<State>,
}

impl Default for Concurrency {
    fn default() -> Self {
        Self {
            change_sets: ChangeSets::default(),
            state: Mutex::new(State {
                account_limit: DEFAULT_ACCOUNT_LIMIT,
                stacks: HashMap::new(),
            }),
        }
    }
}

impl Concurrency {
    /// Sets the account's concurrency limit (tests).
    pub fn set_account_limit(&self, limit: u32) {
        if let Ok(mut state) = self.state.lock() {
            state.account_limit = limit;
        }
    }

    /// Notes what a successful request changed: a change set's reservations when it is
    /// created, the stack's when it executed, none when the stack is deleted.
    pub fn record(&self, operation: &Operation) {
        self.change_sets.record(operation, reservations);
        let executed = self.change_sets.of_execution(operation);
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if let Some((stack, asked)) = executed {
            state.stacks.insert(
                stack,
                asked
                    .into_iter()
                    .map(|reservation| (reservation.function_name, reservation.reserved))
                    .collect(),
            );
        } else if operation.action() == "cloudformation:DeleteStack"
            && let Some(stack) = operation
                .parameters
                .get("StackName")
                .and_then(Value::as_str)
        {
            state.stacks.remove(stack);
        }
    }

    /// The function on which executing this change set fails, when the account would keep
    /// less than [`MINIMUM_UNRESERVED`] unreserved.
    pub fn failure(&self, operation: &Operation) -> Option<Failure> {
        let (stack, asked) = self.change_sets.of_execution(operation)?;
        let state = self.state.lock().ok()?;
        let first = asked.first()?;
        let elsewhere: u32 = state
            .stacks
            .iter()
            .filter(|(other, _)| other.as_str() != stack)
            .flat_map(|(_, functions)| functions.values())
            .sum();
        let here: u32 = asked.iter().map(|reservation| reservation.reserved).sum();
        let unreserved = state
            .account_limit
            .saturating_sub(elsewhere)
            .saturating_sub(here);
        (unreserved < MINIMUM_UNRESERVED).then(|| Failure {
            logical_id: first.logical_id.clone(),
            resource_type: "AWS::Lambda::Function".to_string(),
            reason: format!(
                "Resource handler returned message: \"Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of [{MINIMUM_UNRESERVED}]. (Service: Lambda, Status Code: 400)\" (HandlerErrorCode: InvalidRequest)"
            ),
        })
    }
}

/// The functions of a template with a literal `FunctionName` and `ReservedConcurrentExecutions`.
pub fn reservations(template: &str) -> Vec<Reservation> {
    super::rollback::lambda_functions(template)
        .into_iter()
        .filter_map(|(logical_id, properties)| {
            Some(Reservation {
                logical_id,
                function_name: properties.get("FunctionName")?.as_str()?.to_string(),
                reserved: u32::try_from(properties.get("ReservedConcurrentExecutions")?.as_u64()?)
                    .ok()?,
            })
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

    fn template(reserved: u32) -> String {
        format!(
            "Resources:\n  Callback:\n    Type: AWS::Lambda::Function\n    Properties:\n      FunctionName: \"f\"\n      ReservedConcurrentExecutions: {reserved}\n  Plain:\n    Type: AWS::Lambda::Function\n    Properties:\n      FunctionName: \"g\"\n"
        )
    }

    fn create(stack: &str, reserved: u32) -> Operation {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("Action", "CreateChangeSet")
            .append_pair("StackName", stack)
            .append_pair("ChangeSetName", "c")
            .append_pair("TemplateBody", &template(reserved))
            .finish();
        query(&body)
    }

    fn execute(stack: &str) -> Operation {
        query(&format!(
            "Action=ExecuteChangeSet&StackName={stack}&ChangeSetName=c"
        ))
    }

    #[test]
    fn reservations_may_not_leave_less_than_100_unreserved() {
        assert_eq!(
            reservations(&template(12)),
            [Reservation {
                logical_id: "Callback".into(),
                function_name: "f".into(),
                reserved: 12,
            }]
        );
        let concurrency = Concurrency::default();
        concurrency.set_account_limit(120);
        concurrency.record(&create("a", 12));
        assert_eq!(
            concurrency.failure(&execute("a")),
            None,
            "108 stay unreserved"
        );
        concurrency.record(&execute("a"));
        // A second stack's 12 would leave 96.
        concurrency.record(&create("b", 12));
        let failure = concurrency.failure(&execute("b")).expect("refused");
        assert_eq!(failure.logical_id, "Callback");
        assert!(
            failure.reason.contains("below its minimum value of [100]"),
            "{}",
            failure.reason
        );
        // Updating stack a itself counts its old reservation once.
        concurrency.record(&create("a", 20));
        assert_eq!(concurrency.failure(&execute("a")), None);
        // Once stack a is deleted, b fits.
        concurrency.record(&query("Action=DeleteStack&StackName=a"));
        assert_eq!(concurrency.failure(&execute("b")), None);
        // A new account's limit of 10 allows no reservation at all.
        concurrency.set_account_limit(10);
        assert!(concurrency.failure(&execute("b")).is_some());
    }
}
