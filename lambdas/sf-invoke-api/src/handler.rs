//! The entry points: one invocation from event to flat output, within the deadline.

use std::time::{Duration, SystemTime};

use lambda_runtime::LambdaEvent;
use serde_json::Value;

use crate::error::InvokeError;
use crate::event::Parameters;
use crate::flatten::Output;
use crate::operation::Plan;
use crate::state::{DEADLINE_MARGIN, HandlerState};

/// The Lambda entry point: [`handle`] with the invocation's deadline.
pub async fn function_handler(
    state: &HandlerState,
    event: LambdaEvent<Value>,
) -> Result<Output, InvokeError> {
    let deadline = event.context.deadline();
    handle(state, &event.payload, Some(deadline)).await
}

/// Handles one Amazon Connect event: checks the configuration, validates the parameters and
/// builds the request (nothing is sent when that fails), then calls Salesforce, giving up
/// [`DEADLINE_MARGIN`] before `deadline`.
pub async fn handle(
    state: &HandlerState,
    event: &Value,
    deadline: Option<SystemTime>,
) -> Result<Output, InvokeError> {
    let result = handle_checked(state, event, deadline).await;
    if let Err(error) = &result {
        // The message may quote the caller's values: phone numbers are masked.
        tracing::warn!(
            error_type = error.error_type(),
            error = %sf_common::privacy::mask_phone_numbers(&error.to_string()),
            "invocation failed"
        );
    }
    result
}

async fn handle_checked(
    state: &HandlerState,
    event: &Value,
    deadline: Option<SystemTime>,
) -> Result<Output, InvokeError> {
    state.settings()?;
    let parameters = Parameters::from_event(event)?;
    let plan = Plan::from_parameters(&parameters, state.now())?;
    if let Plan::Answer(output) = plan {
        return Ok(output);
    }
    match budget(deadline) {
        None => state.run(&plan).await,
        Some(budget) if budget.is_zero() => Err(deadline_error()),
        Some(budget) => match tokio::time::timeout(budget, state.run(&plan)).await {
            Ok(result) => result,
            Err(_) => Err(deadline_error()),
        },
    }
}

fn deadline_error() -> InvokeError {
    InvokeError::Timeout(format!(
        "Salesforce did not answer before the invocation's deadline (the call is abandoned {} ms \
         before it)",
        DEADLINE_MARGIN.as_millis()
    ))
}

/// The time left for Salesforce: until `DEADLINE_MARGIN` before the deadline (zero if that
/// has passed), or unlimited without a deadline.
fn budget(deadline: Option<SystemTime>) -> Option<Duration> {
    let deadline = deadline?;
    let remaining = deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    Some(remaining.saturating_sub(DEADLINE_MARGIN))
}
