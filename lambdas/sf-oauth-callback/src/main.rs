//! Lambda entry point of `sf-oauth-callback`: set-up only; the logic is in the library.

use std::sync::Arc;

use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use lambda_runtime::{LambdaEvent, service_fn};
use sf_common::Secrets;
use sf_oauth_callback::{CallbackConfig, CallbackHandler};

// One thread: Lambda sends one event at a time, so a worker pool would only add hand-offs
// between threads to every invocation (and threads to start in the cold start).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    sf_common::init_logging();
    // Honours AWS_ENDPOINT_URL, so the same binary runs against moto locally.
    let aws_config = sf_common::aws_config();
    let secrets = Secrets::new(aws_sdk_secretsmanager::Client::new(&aws_config));
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws_config);
    // A configuration error fails every invocation with a clear `ConfigurationError` instead of
    // crashing the runtime into an init-failure loop.
    let handler = Arc::new(
        CallbackConfig::from_env().map(|config| CallbackHandler::new(config, secrets, dynamodb)),
    );
    match handler.as_ref() {
        // The credentials are read now, in the init phase: requests are then checked in memory,
        // so a flood of junk costs no AWS call.
        Ok(handler) => handler.prefetch().await,
        Err(error) => tracing::error!(error = %error, "sf-oauth-callback is misconfigured"),
    }
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<LambdaFunctionUrlRequest>| {
            let handler = Arc::clone(&handler);
            async move {
                match handler.as_ref() {
                    Ok(handler) => handler.handle(event).await,
                    Err(error) => Err(error.clone()),
                }
            }
        },
    ))
    .await
}
