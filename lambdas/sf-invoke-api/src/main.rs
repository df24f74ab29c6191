//! The `sf-invoke-api` Lambda binary: set-up only (logging, settings, AWS clients, state).

// The runtime's future nests the handler's, the client's and the SDK's futures deeply enough
// to exceed rustc's default depth when computing its layout.
#![recursion_limit = "256"]

use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use sf_common::{Secrets, Settings};
use sf_invoke_api::{HandlerState, InvokeTokenRefresh, function_handler};

// One thread: Lambda sends one event at a time, so a worker pool would only add hand-offs
// between threads to every invocation (and threads to start in the cold start).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    sf_common::init_logging();
    // A bad setting is kept, not fatal: every invocation then fails with a ConfigurationError
    // naming the variable, which is easier to find than a function that never starts.
    let settings = Settings::from_env();
    if let Err(error) = &settings {
        tracing::error!(%error, "the function is misconfigured; every invocation will fail");
    }
    let aws_config = sf_common::aws_config();
    let secrets = Secrets::new(aws_sdk_secretsmanager::Client::new(&aws_config));
    // In the refresh-token flow a new session comes from sf-token-refresh, never a login here.
    let renewer = settings
        .as_ref()
        .ok()
        .and_then(|settings| settings.token_refresh_function.clone())
        .map(|function| {
            let mut lambda = aws_sdk_lambda::config::Builder::from(&aws_config);
            if let Some(endpoint) = sf_common::service_endpoint("lambda") {
                lambda = lambda.endpoint_url(endpoint);
            }
            InvokeTokenRefresh::new(aws_sdk_lambda::Client::from_conf(lambda.build()), function)
        });
    let mut state = HandlerState::new(settings, secrets);
    if let Some(renewer) = renewer {
        state = state.with_renewer(Arc::new(renewer));
    }
    let state = Arc::new(state);
    // The stored session is read while the runtime starts and asks for the first event.
    tokio::spawn({
        let state = Arc::clone(&state);
        async move { state.prefetch().await }
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let state = Arc::clone(&state);
        async move { function_handler(&state, event).await }
    }))
    .await
}
