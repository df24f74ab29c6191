//! Lambda entry point of `sf-secret-rotation`: set-up only; the logic is in the library.

use std::sync::Arc;

use aws_lambda_events::event::secretsmanager::SecretsManagerSecretRotationEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use sf_secret_rotation::{RotationConfig, Rotator};

// One thread: Lambda sends one event at a time, so a worker pool would only add hand-offs
// between threads to every invocation (and threads to start in the cold start).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    sf_common::init_logging();
    // Honours AWS_ENDPOINT_URL, so the same binary runs against moto locally.
    let aws_config = sf_common::aws_config();
    let secrets = aws_sdk_secretsmanager::Client::new(&aws_config);
    // A configuration error fails every invocation with a clear `ConfigurationError` instead of
    // crashing the runtime into an init-failure loop.
    let rotator =
        Arc::new(RotationConfig::from_env().and_then(|config| Rotator::new(secrets, config)));
    if let Err(error) = rotator.as_ref() {
        tracing::error!(error = %error, "sf-secret-rotation is misconfigured");
    }
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<SecretsManagerSecretRotationEvent>| {
            let rotator = Arc::clone(&rotator);
            async move {
                match rotator.as_ref() {
                    Ok(rotator) => rotator.handle(event).await,
                    Err(error) => Err(error.clone()),
                }
            }
        },
    ))
    .await
}
