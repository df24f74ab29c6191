//! Deploy step "credentials": where the Salesforce credentials come from, and a login with
//! them before anything is stored, so a wrong credential fails the deploy by name and never
//! replaces working credentials.

use std::path::PathBuf;

use anyhow::Context;

use crate::cloud::Cloud;
use crate::config::Settings;
use crate::infra::Credentials;

/// Where a deploy's credentials come from (see the README's "Credentials").
pub const CREDENTIALS_FILE_VARIABLE: &str = "SFSTACK_SF_CREDENTIALS_FILE";
pub const CREDENTIALS_VARIABLE: &str = "SFSTACK_SF_CREDENTIALS";

/// The credentials document and how to treat it.
pub enum CredentialsInput {
    Given { source: String, document: String },
    Default { document: String },
    Existing,
}

impl std::fmt::Debug for CredentialsInput {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Given { source, .. } => write!(formatter, "Given({source}, <redacted>)"),
            Self::Default { .. } => formatter.write_str("Default(<redacted>)"),
            Self::Existing => formatter.write_str("Existing"),
        }
    }
}

impl CredentialsInput {
    pub(super) fn as_credentials(&self) -> Credentials<'_> {
        match self {
            Self::Given { document, .. } => Credentials::Given(document),
            Self::Default { document } => Credentials::Default(document),
            Self::Existing => Credentials::Existing,
        }
    }

    pub(super) fn source(&self) -> &str {
        match self {
            Self::Given { source, .. } => source,
            Self::Default { .. } => "the emulator's demo org",
            Self::Existing => "the value already stored; not checked again",
        }
    }
}

/// Reads the credentials source: `SFSTACK_SF_CREDENTIALS_FILE`, else `SFSTACK_SF_CREDENTIALS`,
/// else on the local target the emulator's demo org (in the configured `auth_flow`), else
/// whatever the secret holds already. Never from a command-line argument (process lists are
/// visible to every user).
pub async fn credentials_input(
    cloud: &Cloud,
    settings: &Settings,
    secret_name: &str,
) -> anyhow::Result<CredentialsInput> {
    if let Some(path) = std::env::var_os(CREDENTIALS_FILE_VARIABLE) {
        let path = PathBuf::from(path);
        let document = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading the Salesforce credentials file {} (from {CREDENTIALS_FILE_VARIABLE})",
                path.display()
            )
        })?;
        return Ok(CredentialsInput::Given {
            source: format!("{CREDENTIALS_FILE_VARIABLE} ({})", path.display()),
            document,
        });
    }
    if let Ok(document) = std::env::var(CREDENTIALS_VARIABLE)
        && !document.trim().is_empty()
    {
        return Ok(CredentialsInput::Given {
            source: CREDENTIALS_VARIABLE.to_string(),
            document,
        });
    }
    match cloud.local_org() {
        // The demo org's credentials are only ever a first value: keep what the secret holds.
        Some(_) if secret_has_value(cloud, secret_name).await => Ok(CredentialsInput::Existing),
        Some(org) => Ok(CredentialsInput::Default {
            document: org.demo_credentials(&settings.salesforce.auth_flow).await?,
        }),
        None => Ok(CredentialsInput::Existing),
    }
}

/// Whether a secret exists (not scheduled for deletion) with a current value.
async fn secret_has_value(cloud: &Cloud, name: &str) -> bool {
    let described = cloud
        .clients
        .secrets
        .describe_secret()
        .secret_id(name)
        .send()
        .await;
    described.is_ok_and(|secret| {
        secret.deleted_date().is_none()
            && secret.version_ids_to_stages().is_some_and(|versions| {
                versions
                    .values()
                    .any(|stages| stages.iter().any(|stage| stage == "AWSCURRENT"))
            })
    })
}

/// Checks a credentials document before it is stored, so a wrong credential fails the deploy
/// with a message naming it and never replaces working credentials. A refresh token with its
/// consumer secret is checked by introspection, which spends nothing; every other document by a
/// login. A refresh token without a secret (a public client) can only be checked by a login,
/// which an org that rotates refresh tokens answers with a new one: the input then carries the
/// new one, so what is stored works.
pub(super) async fn check_credentials(
    input: CredentialsInput,
    settings: &Settings,
    local_org_url: Option<&str>,
) -> anyhow::Result<CredentialsInput> {
    // The functions log in where deploy checks: the local org, else the org's My Domain when
    // set, else the document's own LoginUrl.
    let login_url = local_org_url.or(settings.salesforce.my_domain.as_deref());
    let document = match &input {
        CredentialsInput::Given { document, .. } | CredentialsInput::Default { document } => {
            document
        }
        CredentialsInput::Existing => return Ok(input),
    };
    let source = input.source();
    let mut credentials = salesforce::Credentials::from_json_with_username(
        document,
        // The local org's user is the document's; a real org's is the shared file's.
        Some(settings.salesforce.username.as_str())
            .filter(|name| !name.is_empty() && local_org_url.is_none()),
    )
    .map_err(|error| anyhow::anyhow!("{error}"))
    .with_context(|| format!("the Salesforce credentials from {source} are incomplete"))?;
    if let Some(login_url) = login_url {
        credentials = credentials
            .with_login_url(login_url)
            .map_err(|error| anyhow::anyhow!("{error}"))?;
    }
    let login = credentials.login_url().to_string();
    let flow = credentials.flow().as_str();
    let config = salesforce::ClientConfig {
        api_version: settings.salesforce.api_version.clone(),
        ..salesforce::ClientConfig::default()
    };
    // A refresh token is checked without spending it: an org that rotates refresh tokens would
    // retire it at a login, and a failure before the new one is stored would lose both.
    if flow == "refresh_token"
        && let Some((client_id, client_secret, refresh_token)) = introspectable(document)
    {
        let active = salesforce::refresh_token_is_active(
            &config,
            &login,
            &client_id,
            &client_secret,
            &refresh_token,
        )
        .await
        .map_err(|error| {
            anyhow::anyhow!(
                "Salesforce ({login}) refused to check the refresh token from {source} for its connected app: {error}\nhint: check ConsumerKey and ConsumerSecret in {source} and deploy again; nothing was changed"
            )
        })?;
        if !active {
            anyhow::bail!(
                "Salesforce ({login}) says the refresh token from {source} is not active (revoked, expired, or issued to another connected app)\nhint: sign in again to get a new refresh token, put it in {source} and deploy again; nothing was changed"
            );
        }
        return Ok(input);
    }
    let client =
        salesforce::Client::new(credentials, config).map_err(|error| anyhow::anyhow!("{error}"))?;
    let session = client.login().await.map_err(|error| {
        anyhow::anyhow!(
            "Salesforce ({login}) refused the credentials from {source} ({flow} flow): {error}\nhint: fix them in {source} and deploy again; nothing was changed"
        )
    })?;
    let Some(issued) = session.refresh_token.filter(|_| flow == "refresh_token") else {
        return Ok(input);
    };
    let mut json: serde_json::Value =
        serde_json::from_str(document).context("the credentials are not JSON")?;
    if json["RefreshToken"].as_str() == Some(issued.expose()) {
        return Ok(input);
    }
    json["RefreshToken"] = issued.expose().into();
    let document = json.to_string();
    Ok(match input {
        CredentialsInput::Given { source, .. } => CredentialsInput::Given { source, document },
        _ => CredentialsInput::Default { document },
    })
}

/// The consumer key, consumer secret and refresh token of a document that has all three.
fn introspectable(document: &str) -> Option<(String, salesforce::Secret, salesforce::Secret)> {
    let json: serde_json::Value = serde_json::from_str(document).ok()?;
    let text = |keys: &[&str]| {
        keys.iter().find_map(|key| {
            json.get(*key)
                .and_then(serde_json::Value::as_str)
                .map(str::trim)
                .filter(|value| !value.is_empty())
                .map(str::to_string)
        })
    };
    Some((
        text(&["ConsumerKey", "ClientId"])?,
        salesforce::Secret::new(text(&["ConsumerSecret", "ClientSecret"])?),
        salesforce::Secret::new(text(&["RefreshToken"])?),
    ))
}
