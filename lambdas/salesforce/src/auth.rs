//! OAuth: the token endpoint, the grants it accepts, and the `Session` it hands out.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::credentials::{Credentials, Grant};
use crate::error::{Error, Result, oauth_error};
use crate::secret::Secret;
use crate::transport::{
    ClientConfig, Failure, Retry, build_http_client, transport_failure, with_retries,
};

const TOKEN_PATH: &str = "/services/oauth2/token";
/// RFC 7662 token introspection.
const INTROSPECT_PATH: &str = "/services/oauth2/introspect";
const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Salesforce wants the assertion to expire within three minutes.
const JWT_LIFETIME_SECONDS: i64 = 180;

/// A logged-in session: what the token endpoint returned.
///
/// REST calls go to `instance_url`, never to the login host. `Debug` redacts the tokens;
/// serde writes their real values so a session can be stored in a secret and used elsewhere
/// (see [`Secret`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub access_token: Secret,
    /// The REST base URL, without a trailing slash.
    pub instance_url: String,
    /// When Salesforce issued the token, in milliseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<i64>,
    /// The identity URL (`https://login.salesforce.com/id/<org>/<user>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Present only for flows that issue one (authorization code, or refresh with rotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl Session {
    /// Checks a session built by hand or read from storage before it is used.
    pub(crate) fn validated(mut self) -> Result<Self> {
        self.instance_url = normalize_instance_url(&self.instance_url).ok_or_else(|| {
            Error::InvalidInput(
                "the session's instance_url is not an https URL (plain http only on 127.0.0.1)"
                    .into(),
            )
        })?;
        if self.access_token.is_empty() {
            return Err(Error::InvalidInput(
                "the session's access_token is empty".into(),
            ));
        }
        Ok(self)
    }
}

#[derive(Serialize)]
struct JwtClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
}

/// Logs in with `credentials` and returns the new session.
pub(crate) async fn request_token(
    http: &reqwest::Client,
    config: &ClientConfig,
    credentials: &Credentials,
) -> Result<Session> {
    let client_id = credentials.client_id();
    let assertion;
    let form: Vec<(&str, &str)> = match &credentials.grant {
        Grant::JwtBearer {
            username,
            private_key,
            audience,
        } => {
            assertion = sign_assertion(
                client_id,
                username,
                audience
                    .as_deref()
                    .unwrap_or_else(|| default_audience(credentials.login_url())),
                private_key,
            )?;
            vec![
                ("grant_type", JWT_BEARER_GRANT),
                ("assertion", assertion.expose()),
            ]
        }
        Grant::Password {
            username,
            client_secret,
            password_and_token,
        } => vec![
            ("grant_type", "password"),
            ("client_id", client_id),
            ("client_secret", client_secret.expose()),
            ("username", username),
            ("password", password_and_token.expose()),
        ],
        Grant::RefreshToken {
            client_secret,
            refresh_token,
        } => {
            let mut form = vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.expose()),
                ("client_id", client_id),
            ];
            if let Some(secret) = client_secret {
                form.push(("client_secret", secret.expose()));
            }
            form
        }
        Grant::ClientCredentials { client_secret } => vec![
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", client_secret.expose()),
        ],
    };
    tracing::debug!(flow = %credentials.flow(), login_url = credentials.login_url(), "requesting salesforce token");
    post_token_form(http, config, credentials.login_url(), &form).await
}

/// Exchanges an OAuth authorization code (web-server flow) for a session, which carries the
/// `refresh_token` when the connected app grants the `refresh_token` scope.
///
/// For an OAuth callback function. It builds its own HTTP client from `config` (timeouts and
/// retries apply as for [`crate::Client`]).
pub async fn exchange_authorization_code(
    config: &ClientConfig,
    login_url: &str,
    client_id: &str,
    client_secret: &Secret,
    code: &str,
    redirect_uri: &str,
    code_verifier: Option<&str>,
) -> Result<Session> {
    let http = build_http_client(config)?;
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("client_id", client_id),
        ("client_secret", client_secret.expose()),
        ("redirect_uri", redirect_uri),
    ];
    if let Some(verifier) = code_verifier {
        form.push(("code_verifier", verifier));
    }
    let login_url = login_url.trim().trim_end_matches('/');
    post_token_form(&http, config, login_url, &form).await
}

/// Asks the authorization server whether a refresh token is active (`/services/oauth2/introspect`,
/// RFC 7662), as the connected app that holds it (consumer key and secret). Unlike a login, this
/// spends nothing: a refresh token that rotates on use stays the current one. `Ok(false)` when
/// Salesforce says the token is not active (revoked, expired, of another app).
pub async fn refresh_token_is_active(
    config: &ClientConfig,
    login_url: &str,
    client_id: &str,
    client_secret: &Secret,
    refresh_token: &Secret,
) -> Result<bool> {
    let http = build_http_client(config)?;
    let login_url = login_url.trim().trim_end_matches('/');
    let form = [
        ("token", refresh_token.expose()),
        ("token_type_hint", "refresh_token"),
        ("client_id", client_id),
        ("client_secret", client_secret.expose()),
    ];
    post_oauth_form(
        &http,
        config,
        login_url,
        INTROSPECT_PATH,
        &form,
        |status, body| {
            serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|answer| answer.get("active").and_then(Value::as_bool))
                .ok_or_else(|| Error::MalformedResponse {
                    status,
                    detail: "the introspection answer has no active flag".into(),
                })
        },
    )
    .await
}

fn sign_assertion(
    client_id: &str,
    username: &str,
    audience: &str,
    private_key: &Secret,
) -> Result<Secret> {
    let key =
        jsonwebtoken::EncodingKey::from_rsa_pem(private_key.expose().as_bytes()).map_err(|_| {
            Error::InvalidCredentials("PrivateKey is not an RSA private key in PEM form".into())
        })?;
    let claims = JwtClaims {
        iss: client_id,
        sub: username,
        aud: audience,
        exp: chrono::Utc::now().timestamp() + JWT_LIFETIME_SECONDS,
    };
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    jsonwebtoken::encode(&header, &claims, &key)
        .map(Secret::new)
        .map_err(|_| {
            Error::InvalidCredentials("could not sign the JWT assertion with PrivateKey".into())
        })
}

/// The JWT `aud` Salesforce accepts when logging in at `login_url`. Salesforce takes
/// `https://login.salesforce.com`, `https://test.salesforce.com` or an Experience Cloud site's
/// URL, never a My Domain host: a My Domain login host (`NAME.my.salesforce.com`) gets
/// login.salesforce.com, a sandbox's (`NAME--SBX.sandbox.my.salesforce.com`)
/// test.salesforce.com. Any other host is its own audience. `JwtAudience` in the credentials
/// overrides this.
pub fn default_audience(login_url: &str) -> &str {
    let host = login_url
        .trim_start_matches("https://")
        .split(['/', ':'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if host.ends_with(".sandbox.my.salesforce.com") {
        "https://test.salesforce.com"
    } else if host.ends_with(".my.salesforce.com") {
        "https://login.salesforce.com"
    } else {
        login_url
    }
}

/// Posts a form to the token endpoint. Token requests are retried like idempotent calls:
/// every grant either mints an independent session (jwt, password, client credentials) or, for
/// single-use inputs (authorization codes, rotating refresh tokens), a repeat after a lost
/// answer fails with `invalid_grant`, which is no worse than not retrying.
async fn post_token_form(
    http: &reqwest::Client,
    config: &ClientConfig,
    login_url: &str,
    form: &[(&str, &str)],
) -> Result<Session> {
    post_oauth_form(
        http,
        config,
        login_url,
        TOKEN_PATH,
        form,
        parse_token_response,
    )
    .await
}

/// Posts a form to one of the login host's OAuth endpoints (retried as in
/// [`post_token_form`]); a 200 answer is read by `parse`, any other is an OAuth error.
async fn post_oauth_form<T>(
    http: &reqwest::Client,
    config: &ClientConfig,
    login_url: &str,
    path: &str,
    form: &[(&str, &str)],
    parse: impl Fn(u16, &[u8]) -> Result<T> + Copy,
) -> Result<T> {
    let url = format!("{login_url}{path}");
    crate::transport::secure_url(&url, "the login URL").map_err(Error::InvalidCredentials)?;
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    with_retries(config, Retry::Idempotent, |_attempt| {
        let request = http
            .post(&url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body.clone());
        async move {
            let response = request.send().await.map_err(transport_failure)?;
            let status = response.status().as_u16();
            let bytes = response.bytes().await.map_err(transport_failure)?;
            if status == 200 {
                parse(status, &bytes).map_err(Failure::from)
            } else {
                Err(Failure::from(oauth_error(status, &bytes)))
            }
        }
    })
    .await
}

/// Reads a token response by hand rather than through a derived `Deserialize`, whose error
/// messages quote the offending value, which here could be a token.
fn parse_token_response(status: u16, body: &[u8]) -> Result<Session> {
    let malformed = |detail: &str| Error::MalformedResponse {
        status,
        detail: detail.to_owned(),
    };
    let value: Value =
        serde_json::from_slice(body).map_err(|_| malformed("the token response is not JSON"))?;
    let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    let access_token = text("access_token")
        .filter(|token| !token.is_empty())
        .ok_or_else(|| malformed("the token response has no access_token"))?;
    let instance_url = text("instance_url")
        .as_deref()
        .and_then(normalize_instance_url)
        .ok_or_else(|| malformed("the token response has no valid instance_url"))?;
    // Salesforce sends `issued_at` as a string of milliseconds; accept a number too.
    let issued_at = match value.get("issued_at") {
        Some(Value::String(text)) => text.parse().ok(),
        Some(Value::Number(number)) => number.as_i64(),
        _ => None,
    };
    Ok(Session {
        access_token: Secret::new(access_token),
        instance_url,
        issued_at,
        id: text("id"),
        refresh_token: text("refresh_token").map(Secret::new),
        scope: text("scope"),
    })
}

/// The instance URL, when it may receive the bearer token (https, or loopback http).
fn normalize_instance_url(instance_url: &str) -> Option<String> {
    let trimmed = instance_url.trim().trim_end_matches('/');
    let url = url::Url::parse(trimmed).ok()?;
    crate::transport::is_secure_url(&url).then(|| trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_responses_become_sessions() -> Result<()> {
        let body = br#"{"access_token":"00D!abc","signature":"x","scope":"refresh_token full","instance_url":"https://na1.salesforce.com/","id":"https://login.salesforce.com/id/00D/005","token_type":"Bearer","issued_at":"1468448630767"}"#;
        let session = parse_token_response(200, body)?;
        assert_eq!(session.access_token.expose(), "00D!abc");
        assert_eq!(session.instance_url, "https://na1.salesforce.com");
        assert_eq!(session.issued_at, Some(1_468_448_630_767));
        assert_eq!(session.scope.as_deref(), Some("refresh_token full"));
        assert_eq!(session.refresh_token, None);
        Ok(())
    }

    #[test]
    fn token_responses_without_required_fields_are_malformed_and_quote_nothing() {
        let cases: &[(&[u8], &str)] = &[
            (b"<html>", "the token response is not JSON"),
            (
                br#"{"instance_url":"https://x"}"#,
                "the token response has no access_token",
            ),
            (
                br#"{"access_token":"SECRET-TOKEN","instance_url":"not a url"}"#,
                "the token response has no valid instance_url",
            ),
            (
                br#"{"access_token":"SECRET-TOKEN"}"#,
                "the token response has no valid instance_url",
            ),
        ];
        for (body, detail) in cases {
            let error = parse_token_response(200, body).err();
            assert_eq!(
                error,
                Some(Error::MalformedResponse {
                    status: 200,
                    detail: (*detail).to_owned()
                })
            );
            assert!(!format!("{error:?}").contains("SECRET-TOKEN"));
        }
    }

    #[test]
    fn session_debug_redacts_tokens_but_serde_keeps_them()
    -> std::result::Result<(), serde_json::Error> {
        let session = Session {
            access_token: Secret::new("SECRET-ACCESS"),
            instance_url: "https://na1.salesforce.com".into(),
            issued_at: Some(1),
            id: None,
            refresh_token: Some(Secret::new("SECRET-REFRESH")),
            scope: None,
        };
        let debug = format!("{session:?}");
        assert!(!debug.contains("SECRET-"), "{debug}");
        let json = serde_json::to_string(&session)?;
        assert!(json.contains("SECRET-ACCESS") && json.contains("SECRET-REFRESH"));
        let back: Session = serde_json::from_str(&json)?;
        assert_eq!(back, session);
        Ok(())
    }

    #[test]
    fn a_my_domain_login_signs_for_the_audience_salesforce_accepts() {
        assert_eq!(
            default_audience("https://acme.my.salesforce.com"),
            "https://login.salesforce.com"
        );
        assert_eq!(
            default_audience("https://acme--uat.sandbox.my.salesforce.com"),
            "https://test.salesforce.com"
        );
        assert_eq!(
            default_audience("https://test.salesforce.com"),
            "https://test.salesforce.com"
        );
        assert_eq!(
            default_audience("http://127.0.0.1:8788"),
            "http://127.0.0.1:8788"
        );
    }

    #[test]
    fn jwt_assertion_carries_the_documented_claims() -> Result<()> {
        let key = Secret::new(sf_emulator::process_demo_key().private_key_pem());
        let assertion = sign_assertion("ck", "u@x", "https://login.salesforce.com", &key)?;
        let parts: Vec<&str> = assertion.expose().split('.').collect();
        assert_eq!(parts.len(), 3);
        use base64::Engine as _;
        let decode = |part: &str| -> Value {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                .unwrap_or_default()
        };
        assert_eq!(decode(parts[0])["alg"], "RS256");
        let claims = decode(parts[1]);
        assert_eq!(claims["iss"], "ck");
        assert_eq!(claims["sub"], "u@x");
        assert_eq!(claims["aud"], "https://login.salesforce.com");
        let lifetime = claims["exp"].as_i64().unwrap_or_default() - chrono::Utc::now().timestamp();
        assert!((170..=180).contains(&lifetime), "lifetime {lifetime}");
        Ok(())
    }
}
