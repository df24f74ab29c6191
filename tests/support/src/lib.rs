//! Test harness shared by the workspace's integration tests: a real moto server on 127.0.0.1
//! for the AWS APIs (from the pinned tools `pytools` installs), the Salesforce emulator, and the
//! demo org's credentials.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
pub use pytools::{ensure_python_tools, venv_dir, workspace_root};

/// A moto server on a free port of 127.0.0.1, stopped when dropped.
pub struct MotoServer {
    child: Child,
    endpoint: String,
}

impl MotoServer {
    /// Starts a fresh moto server (its state is empty) and waits until it answers.
    pub fn start() -> anyhow::Result<Self> {
        let bin = ensure_python_tools()?;
        let mut child = Command::new(bin.join("moto_server"))
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting moto_server")?;
        let stderr = child.stderr.take().context("moto_server stderr")?;
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Read the address line, then keep draining so moto never blocks on a full pipe.
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent && let Some(url) = line.split("Running on ").nth(1) {
                    let _ = sender.send(url.trim().to_string());
                    sent = true;
                }
            }
        });
        let endpoint = match receiver.recv_timeout(Duration::from_secs(60)) {
            Ok(endpoint) => endpoint,
            Err(_) => {
                let _ = child.kill();
                bail!("moto_server did not report its address within 60 s");
            }
        };
        Ok(Self { child, endpoint })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Environment variables that point the AWS SDK (and a Lambda) at this server.
    pub fn aws_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ]
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl MotoServer {
    /// An AWS SDK configuration pointing at this server, with dummy credentials.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_reqwest::defaults()
            .endpoint_url(&self.endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_credential_types::Credentials::new(
                "testing",
                "testing",
                None,
                None,
                "sfstack-tests",
            ))
            .load()
            .await
    }
}

/// Starts the Salesforce emulator with the demo org on a free port.
pub async fn start_emulator() -> anyhow::Result<sf_emulator::Emulator> {
    sf_emulator::Emulator::start(sf_emulator::OrgConfig::demo()).await
}

/// The demo org's connected app and user (public test values, see docs/emulator.md).
pub mod demo {
    pub const CLIENT_ID: &str = "sfstack-demo-consumer-key";
    pub const CLIENT_SECRET: &str = "sfstack-demo-consumer-secret";
    pub const USERNAME: &str = "demo@sfstack.local";
    pub const PASSWORD: &str = "demo-password";
    pub const SECURITY_TOKEN: &str = "DEMOSECURITYTOKEN";
    pub const CALLBACK_URL: &str = "http://127.0.0.1/callback";

    /// A credentials document for the JWT bearer flow against an emulator at `login_url`
    /// started in this process with the demo org (which trusts this process's key).
    pub fn jwt_credentials(login_url: &str) -> String {
        serde_json::json!({
            "AuthFlow": "jwt",
            "LoginUrl": login_url,
            "ConsumerKey": CLIENT_ID,
            "ConsumerSecret": CLIENT_SECRET,
            "Username": USERNAME,
            "PrivateKey": sf_emulator::process_demo_key().private_key_pem(),
        })
        .to_string()
    }

    /// A credentials document in the original package's shape (password + security token).
    pub fn password_credentials(login_url: &str) -> String {
        serde_json::json!({
            "LoginUrl": login_url,
            "ConsumerKey": CLIENT_ID,
            "ConsumerSecret": CLIENT_SECRET,
            "Username": USERNAME,
            "Password": PASSWORD,
            "AccessToken": SECURITY_TOKEN,
        })
        .to_string()
    }
}

/// Calls the emulator's admin API (`/__emulator/{path}`); a non-2xx answer is an error.
pub async fn emulator_admin(
    base_url: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<()> {
    let url = format!("{base_url}/__emulator/{}", path.trim_start_matches('/'));
    let mut request = reqwest::Client::new().request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("admin call {path}"))?;
    if !response.status().is_success() {
        bail!("admin call {path} answered {}", response.status());
    }
    Ok(())
}

/// A refresh token for the demo user, through the emulator's authorization-code flow.
pub async fn demo_refresh_token(base_url: &str) -> anyhow::Result<String> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("http client")?;
    let response = http
        .get(format!("{base_url}/services/oauth2/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", demo::CLIENT_ID),
            ("redirect_uri", demo::CALLBACK_URL),
            ("state", "test"),
        ])
        .send()
        .await
        .context("authorize")?;
    let location = response
        .headers()
        .get("location")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| url::Url::parse(value).ok())
        .context("authorize answered without a redirect")?;
    let code = location
        .query_pairs()
        .find(|(key, _)| key == "code")
        .map(|(_, value)| value.into_owned())
        .context("no code in the redirect")?;
    let session = salesforce::exchange_authorization_code(
        &salesforce::ClientConfig::default(),
        base_url,
        demo::CLIENT_ID,
        &salesforce::Secret::new(demo::CLIENT_SECRET),
        &code,
        demo::CALLBACK_URL,
        None,
    )
    .await
    .context("code exchange")?;
    let token = session.refresh_token.context("no refresh token issued")?;
    Ok(token.expose().to_owned())
}
