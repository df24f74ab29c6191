//! OAuth 2.0 endpoints: token (five grants), authorize (web-server flow) and revoke.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::config::Flow;
use crate::error::{OAuthError, json_response};
use crate::org::{AuthorizationCode, Org, Shared, random_string};

const JWT_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// How far a JWT's `exp` may lie in the past before it is refused (clock skew).
const JWT_SKEW_SECONDS: i64 = 30;
const CODE_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// Query-string and form-body parameters, merged (the body wins), as Salesforce does.
pub fn merged_params(
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<HashMap<String, String>, OAuthError> {
    let mut params: HashMap<String, String> = uri
        .query()
        .map(|query| {
            form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !body.is_empty() {
        if content_type.starts_with("application/json") {
            // Salesforce does not read JSON bodies on the token endpoint.
            return Err(OAuthError::UNSUPPORTED_GRANT);
        }
        params.extend(form_urlencoded::parse(body).into_owned());
    }
    Ok(params)
}

/// `POST /services/oauth2/token`.
pub async fn token(
    State(shared): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = match merged_params(&uri, &headers, &body) {
        Ok(params) => params,
        Err(error) => return error.into_response(),
    };
    let mut org = shared.lock();
    let result = match params.get("grant_type").map(String::as_str) {
        Some("password") => password_grant(&mut org, &params),
        Some("refresh_token") => refresh_grant(&mut org, &params),
        Some(JWT_GRANT) => jwt_grant(&mut org, &params),
        Some("client_credentials") => client_credentials_grant(&mut org, &params, &headers),
        Some("authorization_code") => authorization_code_grant(&mut org, &params),
        _ => Err(OAuthError::UNSUPPORTED_GRANT),
    };
    match result {
        Ok(body) => {
            let mut response = json_response(StatusCode::OK, &body);
            let headers = response.headers_mut();
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache, no-store"),
            );
            headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            response
        }
        Err(error) => error.into_response(),
    }
}

/// What a successful grant hands out.
struct Issue<'a> {
    user_id: String,
    consumer_secret: String,
    scope: &'a str,
    refresh_token: Option<String>,
    /// Whether the session is tied to the refresh token (revoking it revokes the session).
    from_refresh_token: Option<String>,
}

fn token_response(org: &mut Org, issue: Issue<'_>) -> Value {
    let tied = issue
        .from_refresh_token
        .clone()
        .or_else(|| issue.refresh_token.clone());
    let access_token = org.issue_access_token(&issue.user_id, tied);
    let issued_at = chrono::Utc::now().timestamp_millis().to_string();
    let id = format!("{}/id/{}/{}", org.base_url, org.org_id, issue.user_id);
    let signature = sign(&issue.consumer_secret, &id, &issued_at);
    let mut body = json!({
        "access_token": access_token,
        "signature": signature,
        "scope": issue.scope,
        "instance_url": org.base_url,
        "id": id,
        "token_type": "Bearer",
        "issued_at": issued_at,
    });
    if let Some(refresh_token) = issue.refresh_token {
        body["refresh_token"] = json!(refresh_token);
    }
    body
}

/// `signature` = Base64(HMAC-SHA256(consumer secret, id + issued_at)).
pub fn sign(consumer_secret: &str, id: &str, issued_at: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(consumer_secret.as_bytes()) {
        Ok(mac) => mac,
        // HMAC accepts keys of any length; this branch cannot be reached.
        Err(_) => return String::new(),
    };
    mac.update(id.as_bytes());
    mac.update(issued_at.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Checks `client_id` (and `client_secret` when `secret_required`) against the connected apps.
fn client<'a>(
    org: &'a Org,
    client_id: Option<&String>,
    client_secret: Option<&String>,
    secret_required: bool,
) -> Result<&'a crate::org::ConnectedApp, OAuthError> {
    let app = client_id
        .and_then(|id| org.app(id))
        .ok_or(OAuthError::UNKNOWN_CLIENT)?;
    match client_secret {
        Some(secret) if *secret == app.config.consumer_secret => Ok(app),
        None if !secret_required => Ok(app),
        _ => Err(OAuthError::BAD_CLIENT_SECRET),
    }
}

/// The client id and secret a request presents: HTTP Basic, else the form fields.
fn presented_client(
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> (Option<String>, Option<String>) {
    match basic_auth(headers) {
        Some((id, secret)) => (Some(id), Some(secret)),
        None => (
            params.get("client_id").cloned(),
            params.get("client_secret").cloned(),
        ),
    }
}

fn password_grant(org: &mut Org, params: &HashMap<String, String>) -> Result<Value, OAuthError> {
    let app = client(
        org,
        params.get("client_id"),
        params.get("client_secret"),
        true,
    )?;
    // New orgs switch this flow off; Salesforce then answers as if the password were wrong.
    if !app.allows(Flow::Password) {
        return Err(OAuthError::AUTHENTICATION_FAILURE);
    }
    let consumer_secret = app.config.consumer_secret.clone();
    let username = params
        .get("username")
        .ok_or(OAuthError::AUTHENTICATION_FAILURE)?;
    let password = params
        .get("password")
        .ok_or(OAuthError::AUTHENTICATION_FAILURE)?;
    let account = org
        .account_by_username(username)
        .ok_or(OAuthError::AUTHENTICATION_FAILURE)?;
    let expected = format!("{}{}", account.password, account.security_token);
    if *password != expected {
        return Err(OAuthError::AUTHENTICATION_FAILURE);
    }
    if !account.active {
        return Err(OAuthError::INACTIVE_USER);
    }
    let user_id = account.user_id.clone();
    Ok(token_response(
        org,
        Issue {
            user_id,
            consumer_secret,
            scope: "web api",
            refresh_token: None,
            from_refresh_token: None,
        },
    ))
}

fn refresh_grant(org: &mut Org, params: &HashMap<String, String>) -> Result<Value, OAuthError> {
    let app = client(
        org,
        params.get("client_id"),
        params.get("client_secret"),
        false,
    )?;
    if !app.allows(Flow::RefreshToken) {
        return Err(OAuthError::UNSUPPORTED_GRANT);
    }
    let (consumer_key, consumer_secret, rotate) = (
        app.config.consumer_key.clone(),
        app.config.consumer_secret.clone(),
        app.config.rotate_refresh_tokens,
    );
    let presented = params
        .get("refresh_token")
        .ok_or(OAuthError::EXPIRED_REFRESH_TOKEN)?;
    let grant = org
        .refresh_tokens
        .get(presented)
        .filter(|grant| grant.consumer_key == consumer_key)
        .cloned()
        .ok_or(OAuthError::EXPIRED_REFRESH_TOKEN)?;
    let active = org
        .accounts
        .iter()
        .any(|account| account.user_id == grant.user_id && account.active);
    if !active {
        return Err(OAuthError::INACTIVE_USER);
    }
    let (refresh_token, from) = if rotate || org.rotate_all_refresh_tokens {
        // Rotation retires the old refresh token; sessions already issued stay valid.
        org.refresh_tokens.remove(presented);
        let new_token = org.issue_refresh_token(&grant.user_id, &consumer_key);
        (Some(new_token.clone()), Some(new_token))
    } else {
        (None, Some(presented.clone()))
    };
    Ok(token_response(
        org,
        Issue {
            user_id: grant.user_id,
            consumer_secret,
            scope: "refresh_token api web",
            refresh_token,
            from_refresh_token: from,
        },
    ))
}

/// Reads a claim that may be a number or a numeric string (simple-salesforce sends strings).
fn numeric_claim(claims: &Value, name: &str) -> Option<i64> {
    match claims.get(name)? {
        Value::Number(number) => number
            .as_i64()
            .or_else(|| number.as_f64().map(|f| f as i64)),
        Value::String(text) => text.trim().parse::<f64>().ok().map(|f| f as i64),
        _ => None,
    }
}

fn jwt_grant(org: &mut Org, params: &HashMap<String, String>) -> Result<Value, OAuthError> {
    let assertion = params
        .get("assertion")
        .ok_or(OAuthError::INVALID_ASSERTION)?;
    let claims = unverified_claims(assertion).ok_or(OAuthError::INVALID_ASSERTION)?;
    let issuer = claims.get("iss").and_then(Value::as_str).map(String::from);
    let app = client(org, issuer.as_ref(), None, false)?;
    if !app.allows(Flow::JwtBearer) {
        return Err(OAuthError::UNSUPPORTED_GRANT);
    }
    let key = app.jwt_key.as_ref().ok_or(OAuthError::INVALID_ASSERTION)?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    // `exp` and `aud` are checked below, leniently, the way Salesforce does.
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<Value>(assertion, key, &validation)
        .map_err(|_| OAuthError::INVALID_ASSERTION)?;

    let audience_ok = match claims.get("aud") {
        Some(Value::String(audience)) => audience_matches(org, audience),
        Some(Value::Array(audiences)) => audiences
            .iter()
            .filter_map(Value::as_str)
            .any(|audience| audience_matches(org, audience)),
        _ => false,
    };
    if !audience_ok {
        return Err(OAuthError::BAD_AUDIENCE);
    }
    let mut expires = numeric_claim(&claims, "exp").ok_or(OAuthError::INVALID_ASSERTION)?;
    if expires > 100_000_000_000 {
        // Milliseconds, as some JavaScript samples send.
        expires /= 1000;
    }
    if expires + JWT_SKEW_SECONDS < chrono::Utc::now().timestamp() {
        return Err(OAuthError::EXPIRED_CODE);
    }
    // "If both are specified, prn is used."
    let subject = claims
        .get("prn")
        .or_else(|| claims.get("sub"))
        .and_then(Value::as_str)
        .ok_or(OAuthError::INVALID_ASSERTION)?;
    let preauthorized = &app.config.preauthorized_users;
    if !preauthorized.is_empty()
        && !preauthorized
            .iter()
            .any(|user| user.eq_ignore_ascii_case(subject))
    {
        return Err(OAuthError::NOT_APPROVED);
    }
    let consumer_secret = app.config.consumer_secret.clone();
    let account = org
        .account_by_username(subject)
        .ok_or(OAuthError::NOT_APPROVED)?;
    if !account.active {
        return Err(OAuthError::INACTIVE_USER);
    }
    let user_id = account.user_id.clone();
    Ok(token_response(
        org,
        Issue {
            user_id,
            consumer_secret,
            scope: "api",
            refresh_token: None,
            from_refresh_token: None,
        },
    ))
}

fn audience_matches(org: &Org, audience: &str) -> bool {
    let audience = audience.trim_end_matches('/');
    audience == org.base_url
        || org
            .jwt_audiences
            .iter()
            .any(|accepted| accepted.trim_end_matches('/') == audience)
}

/// The claims of a compact JWS, before its signature is checked (to find the issuer's key).
fn unverified_claims(assertion: &str) -> Option<Value> {
    let mut parts = assertion.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice::<Value>(&bytes)
        .ok()
        .filter(Value::is_object)
}

fn client_credentials_grant(
    org: &mut Org,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Value, OAuthError> {
    let (client_id, client_secret) = presented_client(headers, params);
    let app = client(org, client_id.as_ref(), client_secret.as_ref(), true)?;
    if !app.allows(Flow::ClientCredentials) {
        return Err(OAuthError::CLIENT_CREDENTIALS_DISABLED);
    }
    let run_as = app
        .config
        .client_credentials_user
        .clone()
        .ok_or(OAuthError::NO_RUN_AS_USER)?;
    let consumer_secret = app.config.consumer_secret.clone();
    let account = org
        .account_by_username(&run_as)
        .ok_or(OAuthError::NO_RUN_AS_USER)?;
    if !account.active {
        return Err(OAuthError::INACTIVE_USER);
    }
    let user_id = account.user_id.clone();
    Ok(token_response(
        org,
        Issue {
            user_id,
            consumer_secret,
            scope: "api",
            refresh_token: None,
            from_refresh_token: None,
        },
    ))
}

fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

fn authorization_code_grant(
    org: &mut Org,
    params: &HashMap<String, String>,
) -> Result<Value, OAuthError> {
    let code_value = params.get("code").ok_or(OAuthError::EXPIRED_CODE)?;
    // Codes are single-use: taken out now, whatever happens next.
    let code = org
        .codes
        .remove(code_value)
        .ok_or(OAuthError::EXPIRED_CODE)?;
    let public_client = code.code_challenge.is_some() && !params.contains_key("client_secret");
    let app = client(
        org,
        params.get("client_id"),
        params.get("client_secret"),
        !public_client,
    )?;
    if app.config.consumer_key != code.consumer_key {
        return Err(OAuthError::EXPIRED_CODE);
    }
    if code.expires_at < Instant::now() {
        return Err(OAuthError::EXPIRED_CODE);
    }
    if params.get("redirect_uri") != Some(&code.redirect_uri) {
        return Err(OAuthError::REDIRECT_MISMATCH);
    }
    if let Some((challenge, method)) = &code.code_challenge {
        let verifier = params
            .get("code_verifier")
            .ok_or(OAuthError::PKCE_MISSING_VERIFIER)?;
        let computed = if method.eq_ignore_ascii_case("plain") {
            verifier.clone()
        } else {
            URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
        };
        if computed != *challenge {
            return Err(OAuthError::PKCE_MISMATCH);
        }
    }
    let (consumer_key, consumer_secret) = (
        app.config.consumer_key.clone(),
        app.config.consumer_secret.clone(),
    );
    let refresh_token = org.issue_refresh_token(&code.user_id, &consumer_key);
    Ok(token_response(
        org,
        Issue {
            user_id: code.user_id,
            consumer_secret,
            scope: "refresh_token api web",
            refresh_token: Some(refresh_token),
            from_refresh_token: None,
        },
    ))
}

/// Whether a redirect URI is registered: exact match, or a loopback URL whose host and path
/// match (any port), as native-app redirect rules allow.
fn redirect_allowed(registered: &[String], candidate: &str) -> bool {
    let Ok(candidate_url) = url::Url::parse(candidate) else {
        return false;
    };
    registered.iter().any(|entry| {
        if entry == candidate {
            return true;
        }
        let Ok(entry_url) = url::Url::parse(entry) else {
            return false;
        };
        let loopback = matches!(entry_url.host_str(), Some("127.0.0.1" | "localhost"));
        loopback
            && entry_url.scheme() == candidate_url.scheme()
            && entry_url.host_str() == candidate_url.host_str()
            && entry_url.path() == candidate_url.path()
    })
}

fn error_page(status: StatusCode, error: &str, description: &str) -> Response {
    let body = format!(
        "<html><body><h1>OAuth error</h1><p>error={error}</p><p>error_description={description}</p></body></html>"
    );
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html;charset=UTF-8"),
    );
    response
}

fn redirect(location: &str) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// `GET /services/oauth2/authorize`: approves at once for the org's user (no login form) and
/// redirects back with a single-use code.
pub async fn authorize(State(shared): State<Shared>, uri: Uri) -> Response {
    let params: HashMap<String, String> = uri
        .query()
        .map(|query| {
            form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let mut org = shared.lock();
    let Some(app) = params.get("client_id").and_then(|id| org.app(id)) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "invalid_client_id",
            "client identifier invalid",
        );
    };
    let Some(redirect_uri) = params.get("redirect_uri").cloned() else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "redirect_uri_missing",
            "redirect_uri must match configuration",
        );
    };
    if !redirect_allowed(&app.config.callback_urls, &redirect_uri) {
        return error_page(
            StatusCode::BAD_REQUEST,
            "redirect_uri_mismatch",
            "redirect_uri must match configuration",
        );
    }
    let consumer_key = app.config.consumer_key.clone();
    let allows_code = app.allows(Flow::AuthorizationCode);
    let mut location = match url::Url::parse(&redirect_uri) {
        Ok(url) => url,
        Err(_) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "redirect_uri_mismatch",
                "redirect_uri must match configuration",
            );
        }
    };
    {
        let mut query = location.query_pairs_mut();
        let error = if params.get("response_type").map(String::as_str) != Some("code") {
            Some(("unsupported_response_type", "response type not supported"))
        } else if !allows_code {
            Some(("invalid_request", "authorization code flow not enabled"))
        } else {
            None
        };
        match error {
            Some((error, description)) => {
                query
                    .append_pair("error", error)
                    .append_pair("error_description", description);
            }
            None => {
                let wanted = params.get("login_hint");
                let user = org
                    .accounts
                    .iter()
                    .filter(|account| account.active)
                    .find(|account| {
                        wanted.is_none_or(|hint| account.username.eq_ignore_ascii_case(hint))
                    });
                let Some(user_id) = user.map(|account| account.user_id.clone()) else {
                    drop(query);
                    return error_page(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        "no such active user",
                    );
                };
                let code = format!("aPrx{}", random_string(60));
                let challenge = params.get("code_challenge").map(|challenge| {
                    let method = params
                        .get("code_challenge_method")
                        .cloned()
                        .unwrap_or_else(|| "S256".into());
                    (challenge.clone(), method)
                });
                org.codes.insert(
                    code.clone(),
                    AuthorizationCode {
                        user_id,
                        consumer_key,
                        redirect_uri: redirect_uri.clone(),
                        expires_at: Instant::now() + CODE_LIFETIME,
                        code_challenge: challenge,
                    },
                );
                query.append_pair("code", &code);
            }
        }
        if let Some(state) = params.get("state") {
            query.append_pair("state", state);
        }
    }
    redirect(location.as_str())
}

/// `POST /services/oauth2/introspect` (RFC 7662, as Salesforce serves it): the connected app
/// authenticates with its consumer key and secret (form fields or HTTP Basic) and learns
/// whether a token it was issued is active. Nothing is spent or changed: a rotating refresh
/// token stays valid. A token of another app, unknown, revoked or of an inactive user reads
/// `{"active": false}`.
pub async fn introspect(
    State(shared): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = match merged_params(&uri, &headers, &body) {
        Ok(params) => params,
        Err(error) => return error.into_response(),
    };
    let (client_id, client_secret) = presented_client(&headers, &params);
    let org = shared.lock();
    let app = match client(&org, client_id.as_ref(), client_secret.as_ref(), true) {
        Ok(app) => app,
        Err(error) => return error.into_response(),
    };
    let consumer_key = app.config.consumer_key.clone();
    let token = params.get("token").map(String::as_str).unwrap_or_default();
    let active_user = |user_id: &str| {
        org.accounts
            .iter()
            .find(|account| account.user_id == user_id && account.active)
    };
    let answer = match org.refresh_tokens.get(token) {
        Some(grant) if grant.consumer_key == consumer_key => {
            active_user(&grant.user_id).map(|account| {
                json!({
                    "active": true,
                    "scope": "refresh_token api web",
                    "client_id": consumer_key,
                    "username": account.username,
                    "sub": format!("{}/id/{}/{}", org.base_url, org.org_id, account.user_id),
                    "token_type": "refresh_token",
                })
            })
        }
        _ => None,
    };
    axum::Json(answer.unwrap_or_else(|| json!({"active": false}))).into_response()
}

/// `POST|GET /services/oauth2/revoke`: revokes an access or refresh token.
pub async fn revoke(
    State(shared): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = match merged_params(&uri, &headers, &body) {
        Ok(params) => params,
        Err(_) => {
            return OAuthError::new("unsupported_token_type", "unsupported token type")
                .into_response();
        }
    };
    let Some(token) = params.get("token") else {
        return OAuthError::new("unsupported_token_type", "unsupported token type").into_response();
    };
    let mut org = shared.lock();
    let revoked = org.access_tokens.remove(token).is_some() || org.revoke_refresh_token(token);
    if revoked {
        StatusCode::OK.into_response()
    } else {
        OAuthError::INVALID_TOKEN.into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_redirects_match_on_any_port() {
        let registered = vec!["http://127.0.0.1/callback".to_string()];
        assert!(redirect_allowed(
            &registered,
            "http://127.0.0.1:9123/callback"
        ));
        assert!(redirect_allowed(&registered, "http://127.0.0.1/callback"));
        assert!(!redirect_allowed(
            &registered,
            "http://127.0.0.1:9123/other"
        ));
        assert!(!redirect_allowed(
            &registered,
            "http://evil.example/callback"
        ));
        let https = vec!["https://app.example/callback".to_string()];
        assert!(!redirect_allowed(
            &https,
            "https://app.example:444/callback"
        ));
    }

    #[test]
    fn signature_is_hmac_sha256_of_id_and_issued_at() {
        // Computed independently: printf 'idX1' | openssl dgst -sha256 -hmac secret -binary | base64
        assert_eq!(
            sign("secret", "idX", "1"),
            "6t9UCg0XiU0rC7vNzoMAaIInCbm3YF67RqUJ+9IeZ8Q="
        );
    }

    #[test]
    fn exp_claim_is_read_as_number_or_string() {
        let claims = json!({"a": 1700000000, "b": "1700000000", "c": "soon"});
        assert_eq!(numeric_claim(&claims, "a"), Some(1_700_000_000));
        assert_eq!(numeric_claim(&claims, "b"), Some(1_700_000_000));
        assert_eq!(numeric_claim(&claims, "c"), None);
    }
}
