//! Shared set-up: a moto server, the emulator, and the two secrets the function uses.

use serde_json::Value;
use sf_common::{Secrets, Settings};
use sf_token_refresh::TokenRefresher;
use sfstack_test_support::{MotoServer, demo};

pub struct Harness {
    pub emulator: sf_emulator::Emulator,
    pub secrets: Secrets,
    pub credentials_arn: String,
    pub session_arn: String,
    // Dropped last: stops the moto server.
    _moto: MotoServer,
}

impl Harness {
    /// Starts moto and the emulator, and creates the credentials secret holding `credentials`
    /// (given the emulator's base URL) and an empty session secret.
    pub async fn start(credentials: impl FnOnce(&str) -> String) -> Harness {
        let moto = MotoServer::start().expect("moto starts");
        let emulator = sfstack_test_support::start_emulator()
            .await
            .expect("emulator starts");
        let client = aws_sdk_secretsmanager::Client::new(&moto.sdk_config().await);
        let credentials_arn = client
            .create_secret()
            .name("sfstack/credentials")
            .secret_string(credentials(emulator.base_url()))
            .send()
            .await
            .expect("create credentials secret")
            .arn
            .expect("arn");
        let session_arn = client
            .create_secret()
            .name("sfstack/session")
            .secret_string("{}")
            .send()
            .await
            .expect("create session secret")
            .arn
            .expect("arn");
        Harness {
            emulator,
            secrets: Secrets::new(client),
            credentials_arn,
            session_arn,
            _moto: moto,
        }
    }

    pub fn settings(&self) -> Settings {
        let credentials_arn = self.credentials_arn.clone();
        let session_arn = self.session_arn.clone();
        Settings::from_lookup(move |name| match name {
            "SF_CREDENTIALS_SECRET_ARN" => Some(credentials_arn.clone()),
            "SF_SESSION_SECRET_ARN" => Some(session_arn.clone()),
            _ => None,
        })
        .expect("settings")
    }

    pub fn refresher(&self) -> TokenRefresher {
        TokenRefresher::new(self.settings(), self.secrets.clone()).expect("refresher")
    }

    pub async fn secret_string(&self, arn: &str) -> String {
        self.secrets
            .get_string(arn, None, None)
            .await
            .expect("secret value")
    }

    pub async fn put_secret_string(&self, arn: &str, value: &str) {
        self.secrets
            .client()
            .put_secret_value()
            .secret_id(arn)
            .secret_string(value)
            .send()
            .await
            .expect("put secret value");
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

/// A credentials document for the refresh-token flow.
pub fn refresh_token_credentials(login_url: &str, refresh_token: &str) -> String {
    serde_json::json!({
        "AuthFlow": "refresh_token",
        "LoginUrl": login_url,
        "ConsumerKey": demo::CLIENT_ID,
        "ConsumerSecret": demo::CLIENT_SECRET,
        "RefreshToken": refresh_token,
        "Note": "kept as is",
    })
    .to_string()
}
