//! Lambda entry point of `sf-token-refresh`: set-up only; the logic is in the library.

use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use sf_common::Secrets;
use sf_token_refresh::TokenRefresher;

// One thread: Lambda sends one event at a time, so a worker pool would only add hand-offs
// between threads to every invocation (and threads to start in the cold start).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    sf_common::init_logging();
    // Honours AWS_ENDPOINT_URL, so the same binary runs against moto locally.
    let aws_config = sf_common::aws_config();
    let secrets = Secrets::new(aws_sdk_secretsmanager::Client::new(&aws_config));
    // A configuration error fails every invocation with a clear `ConfigurationError` instead of
    // crashing the runtime into an init-failure loop.
    let refresher = Arc::new(TokenRefresher::from_env(secrets));
    if let Err(error) = refresher.as_ref() {
        tracing::error!(error = %error, "sf-token-refresh is misconfigured");
    }
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let refresher = Arc::clone(&refresher);
        async move {
            match refresher.as_ref() {
                Ok(refresher) => refresher.handle(event).await,
                Err(error) => Err(error.clone()),
            }
        }
    }))
    .await
}
