//! The local target's Salesforce org (the emulator with its demo org), and what it does that a
//! real org's admin does by hand: issue first credentials, add a callback URL to the connected
//! app, sign a user in through the authorize endpoint. Only [`crate::cloud::Cloud::local_org`]
//! hands one out, so a command never asks which target it is on.

use anyhow::{Context, bail};

/// The emulator of a running local cloud.
#[derive(Debug, Clone)]
pub struct LocalOrg {
    url: String,
    /// The demo org's JWT private key, as `local up` made it.
    jwt_key: Option<std::path::PathBuf>,
}

impl LocalOrg {
    pub fn new(url: impl Into<String>, jwt_key: Option<std::path::PathBuf>) -> Self {
        Self {
            url: url.into(),
            jwt_key,
        }
    }

    /// The org's base URL: login URL and instance URL at once.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The demo org's user, whatever `salesforce.username` names for real orgs.
    pub fn username(&self) -> &'static str {
        sf_emulator::DEMO_USERNAME
    }

    /// The demo org's credentials in `flow`, with a fresh random key for signing the OAuth
    /// `state`. The refresh-token flow gets its token through the authorization-code flow.
    pub async fn demo_credentials(&self, flow: &str) -> anyhow::Result<String> {
        use rand::Rng;
        let state_key: String = rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(48)
            .map(char::from)
            .collect();
        let mut document = serde_json::json!({
            "AuthFlow": flow,
            "LoginUrl": self.url,
            "ConsumerKey": sf_emulator::DEMO_CONSUMER_KEY,
            "ConsumerSecret": sf_emulator::DEMO_CONSUMER_SECRET,
            "Username": sf_emulator::DEMO_USERNAME,
            "StateSigningKey": state_key,
        });
        match flow {
            "jwt" => document["PrivateKey"] = self.jwt_key()?.private_key_pem().into(),
            "password" => {
                document["Password"] = sf_emulator::DEMO_PASSWORD.into();
                document["AccessToken"] = sf_emulator::DEMO_SECURITY_TOKEN.into();
            }
            "refresh_token" => {
                document["RefreshToken"] = self.demo_refresh_token().await?.into();
            }
            _ => {}
        }
        Ok(document.to_string())
    }

    /// The key the demo org's connected app trusts for the JWT bearer flow.
    pub fn jwt_key(&self) -> anyhow::Result<sf_emulator::DemoKey> {
        let path = self.jwt_key.as_deref().context(
            "the local cloud has no demo JWT key (started by an older sfstack)\nhint: run `cargo xtask local down`, then the command again",
        )?;
        sf_emulator::DemoKey::load(path)
    }

    /// A refresh token for the demo user through the authorization-code flow.
    async fn demo_refresh_token(&self) -> anyhow::Result<String> {
        let location = self
            .authorize(sf_emulator::DEMO_CALLBACK_URL, "sfstack-deploy")
            .await?;
        let code = location
            .query_pairs()
            .find(|(key, _)| key == "code")
            .map(|(_, value)| value.into_owned())
            .context("the emulator's authorize endpoint returned no code")?;
        let session = salesforce::exchange_authorization_code(
            &salesforce::ClientConfig::default(),
            &self.url,
            sf_emulator::DEMO_CONSUMER_KEY,
            &salesforce::Secret::new(sf_emulator::DEMO_CONSUMER_SECRET),
            &code,
            sf_emulator::DEMO_CALLBACK_URL,
            None,
        )
        .await
        .map_err(|error| anyhow::anyhow!("{error}"))
        .context("exchanging the emulator's authorization code")?;
        Ok(session
            .refresh_token
            .context("the emulator issued no refresh token")?
            .expose()
            .to_string())
    }

    /// The demo user signs in to the demo app at the authorize endpoint, which redirects to
    /// `redirect_uri` with a code and `state`: returns that redirect (not followed).
    pub async fn authorize(&self, redirect_uri: &str, state: &str) -> anyhow::Result<url::Url> {
        let mut url = url::Url::parse(&format!("{}/services/oauth2/authorize", self.url))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", sf_emulator::DEMO_CONSUMER_KEY)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", state);
        self.approve(url.as_str()).await
    }

    /// The demo user approves at `authorize_url` (this org's authorize endpoint, with whatever
    /// parameters the app chose): returns the redirect back to the app (not followed).
    pub async fn approve(&self, authorize_url: &str) -> anyhow::Result<url::Url> {
        if !authorize_url.starts_with(&format!("{}/services/oauth2/authorize", self.url)) {
            bail!("{authorize_url} is not the local org's authorize endpoint");
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let response = http
            .get(authorize_url)
            .send()
            .await
            .context("asking the emulator's authorize endpoint for a code")?;
        response
            .headers()
            .get("location")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| url::Url::parse(value).ok())
            .with_context(|| {
                format!(
                    "the emulator's authorize endpoint answered {} without a redirect",
                    response.status()
                )
            })
    }

    /// Adds `url` to the demo app's callback URLs, as an admin would in Setup.
    pub async fn register_callback_url(&self, url: &str) -> anyhow::Result<()> {
        let response = reqwest::Client::new()
            .post(format!(
                "{}/__emulator/connected-apps/{}/callback-urls",
                self.url,
                sf_emulator::DEMO_CONSUMER_KEY
            ))
            .json(&serde_json::json!({ "url": url }))
            .send()
            .await
            .context("registering the callback URL on the emulator's demo app")?;
        if !response.status().is_success() {
            bail!(
                "the emulator refused the callback URL {url}: {}",
                response.status()
            );
        }
        Ok(())
    }
}
