//! Shared set-up: moto, the emulator, a rotation-enabled secret with a real refresh token, and
//! a rotation started the way Secrets Manager starts one.

use aws_lambda_events::event::secretsmanager::SecretsManagerSecretRotationEvent;
use aws_sdk_secretsmanager::Client as SecretsManagerClient;
use salesforce::ClientConfig;
use serde_json::{Value, json};
use sf_secret_rotation::{Error, Outcome, RotationConfig, Rotator};
use sfstack_test_support::{MotoServer, demo};

pub struct Harness {
    pub emulator: sf_emulator::Emulator,
    pub secrets: SecretsManagerClient,
    pub rotator: Rotator,
    // Dropped last: stops the moto server.
    _moto: MotoServer,
}

impl Harness {
    pub async fn start() -> Harness {
        let moto = MotoServer::start().expect("moto starts");
        let emulator = sfstack_test_support::start_emulator()
            .await
            .expect("emulator starts");
        let secrets = SecretsManagerClient::new(&moto.sdk_config().await);
        let rotator = Rotator::new(
            secrets.clone(),
            RotationConfig::from_lookup(|_| None).expect("config"),
        )
        .expect("rotator");
        Harness {
            emulator,
            secrets,
            rotator,
            _moto: moto,
        }
    }

    /// The credentials document a rotation starts from: a fresh refresh token, the emulator as
    /// login host, and a key this function does not know (it must survive).
    pub async fn credentials_document(&self) -> Value {
        json!({
            "AuthFlow": "refresh_token",
            "LoginUrl": self.emulator.base_url(),
            "ConsumerKey": demo::CLIENT_ID,
            "ConsumerSecret": demo::CLIENT_SECRET,
            "RefreshToken": self.refresh_token().await,
            "Team": "contact-centre",
        })
    }

    /// Creates a secret holding `document`; with `rotation`, enables rotation on it.
    pub async fn create_secret(&self, name: &str, document: &Value, rotation: bool) -> String {
        let arn = self
            .secrets
            .create_secret()
            .name(name)
            .secret_string(document.to_string())
            .send()
            .await
            .expect("create secret")
            .arn
            .expect("arn");
        if rotation {
            // moto: RotateSecret without a Lambda and with RotateImmediately=false sets
            // RotationEnabled; it also moves AWSCURRENT to a new version holding the same value.
            self.secrets
                .rotate_secret()
                .secret_id(&arn)
                .rotation_rules(
                    aws_sdk_secretsmanager::types::RotationRulesType::builder()
                        .automatically_after_days(30)
                        .build(),
                )
                .rotate_immediately(false)
                .send()
                .await
                .expect("enable rotation");
        }
        arn
    }

    /// Starts a rotation as Secrets Manager does: a new version staged AWSPENDING, with no value,
    /// whose id is the ClientRequestToken.
    ///
    /// moto: RotateSecret with a RotationLambdaARN stages that version and only then fails,
    /// because moto cannot find (or run) the Lambda. The error is expected; the staging is
    /// checked.
    pub async fn start_rotation(&self, arn: &str, token: &str) {
        let result = self
            .secrets
            .rotate_secret()
            .secret_id(arn)
            .client_request_token(token)
            .rotation_lambda_arn("arn:aws:lambda:us-east-1:123456789012:function:sfstack-rotation")
            .send()
            .await;
        assert!(
            result.is_err(),
            "moto has no such Lambda, so RotateSecret reports an error"
        );
        assert_eq!(self.stages(arn, token).await, vec!["AWSPENDING".to_owned()]);
    }

    /// The stages of one version.
    pub async fn stages(&self, arn: &str, version: &str) -> Vec<String> {
        self.versions(arn)
            .await
            .into_iter()
            .find(|(id, _)| id == version)
            .map(|(_, stages)| stages)
            .unwrap_or_default()
    }

    pub async fn versions(&self, arn: &str) -> Vec<(String, Vec<String>)> {
        self.secrets
            .describe_secret()
            .secret_id(arn)
            .send()
            .await
            .expect("describe secret")
            .version_ids_to_stages
            .unwrap_or_default()
            .into_iter()
            .collect()
    }

    /// The version id and value of AWSCURRENT.
    ///
    /// moto: the stage is named explicitly because moto's GetSecretValue without one returns the
    /// secret's "default version", which UpdateSecretVersionStage does not move (real Secrets
    /// Manager returns the AWSCURRENT version).
    pub async fn current(&self, arn: &str) -> (String, Value) {
        let output = self
            .secrets
            .get_secret_value()
            .secret_id(arn)
            .version_stage("AWSCURRENT")
            .send()
            .await
            .expect("current value");
        let value = serde_json::from_str(output.secret_string().unwrap_or_default()).expect("json");
        (output.version_id.unwrap_or_default(), value)
    }

    pub async fn pending_value(&self, arn: &str, token: &str) -> Option<Value> {
        self.secrets
            .get_secret_value()
            .secret_id(arn)
            .version_id(token)
            .version_stage("AWSPENDING")
            .send()
            .await
            .ok()
            .and_then(|output| {
                serde_json::from_str(output.secret_string().unwrap_or_default()).ok()
            })
    }

    pub async fn step(&self, arn: &str, token: &str, step: &str) -> Result<Outcome, Error> {
        self.step_with(&self.rotator, arn, token, step).await
    }

    /// Makes the org hand out a new refresh token at every refresh, retiring the one used.
    pub async fn rotate_refresh_tokens(&self) {
        self.admin(
            reqwest::Method::PUT,
            "refresh-tokens/rotation",
            Some(json!({"enabled": true})),
        )
        .await;
    }

    /// A rotator whose Secrets Manager requests go to the same moto server, but whose first
    /// `failures` PutSecretValue requests fail before they are sent (a dropped connection);
    /// the counter sees every attempt.
    pub fn rotator_failing_puts(
        &self,
        failures: usize,
    ) -> (Rotator, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        let attempts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let config = self
            .secrets
            .config()
            .to_builder()
            .interceptor(FailingPuts {
                failures,
                attempts: attempts.clone(),
            })
            .build();
        let rotator = Rotator::new(
            SecretsManagerClient::from_conf(config),
            RotationConfig::from_lookup(|_| None).expect("config"),
        )
        .expect("rotator");
        (rotator, attempts)
    }

    /// Runs one step with `rotator`.
    pub async fn step_with(
        &self,
        rotator: &Rotator,
        arn: &str,
        token: &str,
        step: &str,
    ) -> Result<Outcome, Error> {
        let mut event = SecretsManagerSecretRotationEvent::default();
        event.step = step.to_owned();
        event.secret_id = arn.to_owned();
        event.client_request_token = token.to_owned();
        rotator.rotate(&event).await
    }

    /// The token requests in the emulator's log, as their `grant_type`s.
    pub fn token_grants(&self) -> Vec<String> {
        self.emulator
            .request_log()
            .into_iter()
            .filter_map(|entry| entry.grant_type)
            .collect()
    }

    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) {
        sfstack_test_support::emulator_admin(self.emulator.base_url(), method, path, body)
            .await
            .expect("admin call");
    }

    /// Gets a refresh token through the emulator's authorization-code flow.
    pub async fn refresh_token(&self) -> String {
        sfstack_test_support::demo_refresh_token(self.emulator.base_url())
            .await
            .expect("refresh token")
    }
}

/// A session built from a rotated secret's `SessionAccessToken` and `InstanceUrl`.
pub fn session_of(document: &Value) -> salesforce::Session {
    serde_json::from_value(json!({
        "access_token": document["SessionAccessToken"],
        "instance_url": document["InstanceUrl"],
    }))
    .expect("session")
}

/// Logs in with the refresh token of a rotated secret (the credentials the other functions read).
pub async fn login_with(document: &Value) -> Result<salesforce::Session, salesforce::Error> {
    let credentials = salesforce::Credentials::from_json(&document.to_string())?;
    salesforce::Client::new(credentials, ClientConfig::default())?
        .login()
        .await
}

/// Whether a document's refresh token is active, asked of the org's introspection endpoint,
/// which (unlike a login) spends nothing when refresh tokens rotate.
pub async fn refresh_token_is_active(document: &Value) -> bool {
    let text = |key: &str| document[key].as_str().unwrap_or_default().to_owned();
    salesforce::refresh_token_is_active(
        &ClientConfig::default(),
        &text("LoginUrl"),
        &text("ConsumerKey"),
        &salesforce::Secret::new(text("ConsumerSecret")),
        &salesforce::Secret::new(text("RefreshToken")),
    )
    .await
    .expect("the introspection endpoint answers")
}

/// Fails the first `failures` PutSecretValue requests before they leave, and counts them all.
#[derive(Debug)]
struct FailingPuts {
    failures: usize,
    attempts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl aws_smithy_runtime_api::client::interceptors::Intercept for FailingPuts {
    fn name(&self) -> &'static str {
        "FailingPuts"
    }

    fn read_before_transmit(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        _config: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        if context.request().headers().get("x-amz-target") == Some("secretsmanager.PutSecretValue")
        {
            let attempt = self
                .attempts
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                + 1;
            if attempt <= self.failures {
                return Err("connection reset by peer (injected by the test)".into());
            }
        }
        Ok(())
    }
}
