//! The token, authorize and revoke endpoints: every grant's success body and failures.

use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sf_emulator::OrgConfig;
use sha2::{Digest, Sha256};

use crate::{CLIENT_ID, CLIENT_SECRET, Org, PASSWORD_AND_TOKEN, USERNAME, split};

const JWT_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The key the demo org started in this process trusts.
fn demo_key() -> &'static str {
    sf_emulator::process_demo_key().private_key_pem()
}

fn jwt(claims: Value, key_pem: &str) -> String {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(key_pem.as_bytes()).expect("rsa key");
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .expect("sign jwt")
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn assert_oauth_error(response: reqwest::Response, error: &str, description: &str) {
    let (status, headers, body) = split(response).await;
    assert_eq!(status, 400, "body: {body}");
    assert_eq!(headers["content-type"], "application/json;charset=UTF-8");
    assert_eq!(
        body,
        json!({"error": error, "error_description": description})
    );
}

#[tokio::test]
async fn password_grant_returns_the_documented_fields() {
    let org = Org::start().await;
    let response = org
        .token_request(&[
            ("grant_type", "password"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("username", USERNAME),
            ("password", PASSWORD_AND_TOKEN),
        ])
        .await;
    let (status, headers, body) = split(response).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json;charset=UTF-8");
    assert_eq!(headers["cache-control"], "no-cache, no-store");
    assert_eq!(headers["pragma"], "no-cache");
    let token = body["access_token"].as_str().expect("access_token");
    assert!(token.starts_with("00D000000000001!"), "{token}");
    assert_eq!(body["instance_url"], json!(org.emulator.base_url()));
    assert_eq!(body["token_type"], "Bearer");
    assert!(
        body.get("refresh_token").is_none(),
        "password flow issues no refresh token"
    );
    let issued_at = body["issued_at"].as_str().expect("issued_at is a string");
    let millis: i64 = issued_at.parse().expect("issued_at is epoch milliseconds");
    assert!((millis / 1000 - now()).abs() < 60);
    let id = body["id"].as_str().expect("id");
    let prefix = format!("{}/id/00D000000000001EAA/005", org.emulator.base_url());
    assert!(
        id.starts_with(&prefix) && id.len() == prefix.len() + 15,
        "{id}"
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(CLIENT_SECRET.as_bytes()).expect("hmac");
    mac.update(format!("{id}{issued_at}").as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(body["signature"], json!(expected));
}

#[tokio::test]
async fn password_grant_in_the_query_string_is_accepted() {
    let org = Org::start().await;
    let response = org
        .http
        .post(org.url("/services/oauth2/token"))
        .query(&[
            ("grant_type", "password"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("username", USERNAME),
            ("password", PASSWORD_AND_TOKEN),
        ])
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn json_token_body_is_an_unsupported_grant() {
    let org = Org::start().await;
    let response = org
        .http
        .post(org.url("/services/oauth2/token"))
        .json(&json!({"grant_type": "password", "client_id": CLIENT_ID}))
        .send()
        .await
        .expect("token request");
    assert_oauth_error(
        response,
        "unsupported_grant_type",
        "grant type not supported",
    )
    .await;
}

#[tokio::test]
async fn password_grant_failures_use_salesforce_error_bodies() {
    let org = Org::start().await;
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: &[Case] = &[
        (
            &[
                ("grant_type", "password"),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
                ("username", USERNAME),
                ("password", "demo-password"),
            ],
            "invalid_grant",
            "authentication failure",
        ),
        (
            &[
                ("grant_type", "password"),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
                ("username", "nobody@sfstack.local"),
                ("password", PASSWORD_AND_TOKEN),
            ],
            "invalid_grant",
            "authentication failure",
        ),
        (
            &[
                ("grant_type", "password"),
                ("client_id", "unknown"),
                ("client_secret", CLIENT_SECRET),
                ("username", USERNAME),
                ("password", PASSWORD_AND_TOKEN),
            ],
            "invalid_client_id",
            "client identifier invalid",
        ),
        (
            &[
                ("grant_type", "password"),
                ("client_id", CLIENT_ID),
                ("client_secret", "wrong"),
                ("username", USERNAME),
                ("password", PASSWORD_AND_TOKEN),
            ],
            "invalid_client",
            "invalid client credentials",
        ),
        (
            &[
                ("grant_type", "password"),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
                ("username", "former@sfstack.local"),
                ("password", "former-passwordFORMERTOKEN"),
            ],
            "inactive_user",
            "user is inactive",
        ),
        (
            &[("client_id", CLIENT_ID)],
            "unsupported_grant_type",
            "grant type not supported",
        ),
        (
            &[("grant_type", "magic")],
            "unsupported_grant_type",
            "grant type not supported",
        ),
    ];
    for (params, error, description) in cases {
        let response = org.token_request(params).await;
        assert_oauth_error(response, error, description).await;
    }
}

#[tokio::test]
async fn password_flow_can_be_disabled_per_connected_app() {
    let mut config = OrgConfig::demo();
    config.connected_apps[0]
        .flows
        .retain(|flow| *flow != sf_emulator::config::Flow::Password);
    let org = Org::start_with(config).await;
    let response = org
        .token_request(&[
            ("grant_type", "password"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("username", USERNAME),
            ("password", PASSWORD_AND_TOKEN),
        ])
        .await;
    assert_oauth_error(response, "invalid_grant", "authentication failure").await;
}

#[tokio::test]
async fn jwt_bearer_grant_accepts_number_string_and_millisecond_exp() {
    let org = Org::start().await;
    let exps = [
        json!(now() + 180),
        json!((now() + 180).to_string()),
        json!((now() + 180) * 1000),
    ];
    for exp in exps {
        let assertion = jwt(
            json!({"iss": CLIENT_ID, "sub": USERNAME, "aud": "https://login.salesforce.com", "exp": exp}),
            demo_key(),
        );
        let response = org
            .token_request(&[("grant_type", JWT_GRANT), ("assertion", &assertion)])
            .await;
        let (status, _, body) = split(response).await;
        assert_eq!(status, 200, "exp {exp}: {body}");
        assert!(body.get("refresh_token").is_none());
        assert_eq!(body["instance_url"], json!(org.emulator.base_url()));
    }
}

#[tokio::test]
async fn jwt_bearer_grant_prefers_prn_over_sub() {
    let org = Org::start().await;
    let assertion = jwt(
        json!({"iss": CLIENT_ID, "sub": "nobody@sfstack.local", "prn": "agent@sfstack.local",
               "aud": org.emulator.base_url(), "exp": now() + 60}),
        demo_key(),
    );
    let response = org
        .token_request(&[("grant_type", JWT_GRANT), ("assertion", &assertion)])
        .await;
    let (status, _, body) = split(response).await;
    assert_eq!(status, 200, "{body}");
    let identity = body["id"].as_str().expect("id");
    let agent_id = identity.rsplit('/').next().expect("user id");
    let (_, _, user) = org
        .get(
            body["access_token"].as_str().expect("token"),
            &format!("/sobjects/User/{agent_id}"),
        )
        .await;
    assert_eq!(user["Username"], "agent@sfstack.local");
}

#[tokio::test]
async fn jwt_bearer_grant_failures() {
    let org = Org::start().await;
    let good = json!({"iss": CLIENT_ID, "sub": USERNAME, "aud": "https://login.salesforce.com", "exp": now() + 120});
    let with = |key: &str, value: Value| {
        let mut claims = good.clone();
        claims[key] = value;
        claims
    };
    let key = demo_key();
    let other_key = sf_emulator::DemoKey::generate()
        .expect("a key the org does not trust")
        .private_key_pem()
        .to_string();
    let cases = [
        (
            jwt(with("aud", json!("https://evil.example")), key),
            "invalid_grant",
            "Audience validation failed",
        ),
        (
            jwt(good.clone(), &other_key),
            "invalid_grant",
            "invalid assertion",
        ),
        (
            jwt(with("exp", json!(now() - 600)), key),
            "invalid_grant",
            "expired authorization code",
        ),
        (
            jwt(with("iss", json!("unknown-app")), key),
            "invalid_client_id",
            "client identifier invalid",
        ),
        (
            jwt(with("sub", json!("former@sfstack.local")), key),
            "invalid_grant",
            "user hasn't approved this consumer",
        ),
        (
            "not.a.jwt".to_string(),
            "invalid_grant",
            "invalid assertion",
        ),
    ];
    for (assertion, error, description) in cases {
        let response = org
            .token_request(&[("grant_type", JWT_GRANT), ("assertion", &assertion)])
            .await;
        assert_oauth_error(response, error, description).await;
    }
}

#[tokio::test]
async fn client_credentials_grant_by_form_and_basic_auth() {
    let org = Org::start().await;
    let response = org
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .await;
    assert_eq!(response.status(), 200);
    let response = org
        .http
        .post(org.url("/services/oauth2/token"))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status(), 200);
    let response = org
        .http
        .post(org.url("/services/oauth2/token"))
        .basic_auth(CLIENT_ID, Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token request");
    assert_oauth_error(response, "invalid_client", "invalid client credentials").await;
}

#[tokio::test]
async fn client_credentials_without_run_as_user_or_flow() {
    let mut config = OrgConfig::demo();
    config.connected_apps[0].client_credentials_user = None;
    let org = Org::start_with(config).await;
    let params = [
        ("grant_type", "client_credentials"),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
    ];
    assert_oauth_error(
        org.token_request(&params).await,
        "invalid_grant",
        "no client credentials user enabled",
    )
    .await;

    let mut config = OrgConfig::demo();
    config.connected_apps[0]
        .flows
        .retain(|flow| *flow != sf_emulator::config::Flow::ClientCredentials);
    let org = Org::start_with(config).await;
    assert_oauth_error(
        org.token_request(&params).await,
        "invalid_grant",
        "client credentials flow not enabled",
    )
    .await;
}

/// Runs the authorize step and returns the code from the redirect.
async fn authorize(org: &Org, redirect_uri: &str, extra: &[(&str, &str)]) -> String {
    let mut query = vec![
        ("response_type", "code"),
        ("client_id", CLIENT_ID),
        ("redirect_uri", redirect_uri),
        ("state", "wa:whatsapp:+15555550100.sig"),
    ];
    query.extend_from_slice(extra);
    let response = org
        .http
        .get(org.url("/services/oauth2/authorize"))
        .query(&query)
        .send()
        .await
        .expect("authorize");
    assert_eq!(response.status(), 302);
    let location = response.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let url = url::Url::parse(&location).expect("redirect url");
    assert!(location.starts_with(redirect_uri), "{location}");
    let pairs: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(
        pairs.get("state").map(String::as_str),
        Some("wa:whatsapp:+15555550100.sig")
    );
    pairs.get("code").cloned().expect("code in redirect")
}

#[tokio::test]
async fn authorization_code_is_single_use_and_bound_to_its_redirect_uri() {
    let org = Org::start().await;
    let redirect = "http://127.0.0.1:9999/callback";
    let code = authorize(&org, redirect, &[]).await;
    let exchange = |code: String, redirect: &'static str| {
        let org = &org;
        async move {
            org.token_request(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
                ("redirect_uri", redirect),
            ])
            .await
        }
    };
    let (status, _, body) =
        split(exchange(code.clone(), "http://127.0.0.1:9999/callback").await).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["refresh_token"]
            .as_str()
            .is_some_and(|token| !token.is_empty())
    );
    assert_oauth_error(
        exchange(code, "http://127.0.0.1:9999/callback").await,
        "invalid_grant",
        "expired authorization code",
    )
    .await;

    let code = authorize(&org, redirect, &[]).await;
    assert_oauth_error(
        exchange(code, "http://127.0.0.1:9999/other").await,
        "redirect_uri_mismatch",
        "redirect_uri must match configuration",
    )
    .await;
    assert_oauth_error(
        exchange("made-up".into(), "http://127.0.0.1:9999/callback").await,
        "invalid_grant",
        "expired authorization code",
    )
    .await;
}

#[tokio::test]
async fn authorize_refuses_unregistered_redirects_without_redirecting() {
    let org = Org::start().await;
    let response = org
        .http
        .get(org.url("/services/oauth2/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", "https://evil.example/callback"),
        ])
        .send()
        .await
        .expect("authorize");
    assert_eq!(response.status(), 400);
    assert!(response.headers().get("location").is_none());
}

#[tokio::test]
async fn pkce_verifier_is_checked() {
    let org = Org::start().await;
    let redirect = "http://127.0.0.1/callback";
    let verifier = "a-long-enough-code-verifier-value-for-pkce-tests-0123456789";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    let params = |code: &str, verifier: Option<&str>| {
        let mut params = vec![
            ("grant_type".to_string(), "authorization_code".to_string()),
            ("code".into(), code.to_string()),
            ("client_id".into(), CLIENT_ID.into()),
            ("client_secret".into(), CLIENT_SECRET.into()),
            ("redirect_uri".into(), redirect.into()),
        ];
        if let Some(verifier) = verifier {
            params.push(("code_verifier".into(), verifier.into()));
        }
        params
    };
    let post = |params: Vec<(String, String)>| {
        let org = &org;
        async move {
            org.http
                .post(org.url("/services/oauth2/token"))
                .form(&params)
                .send()
                .await
                .expect("token")
        }
    };
    let extra = [
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let code = authorize(&org, redirect, &extra).await;
    assert_eq!(post(params(&code, Some(verifier))).await.status(), 200);
    let code = authorize(&org, redirect, &extra).await;
    assert_oauth_error(
        post(params(&code, None)).await,
        "invalid_grant",
        "invalid code verifier",
    )
    .await;
    let code = authorize(&org, redirect, &extra).await;
    assert_oauth_error(
        post(params(&code, Some("wrong-verifier"))).await,
        "invalid_request",
        "invalid code verifier",
    )
    .await;
}

async fn refresh_token(org: &Org) -> String {
    let code = authorize(org, "http://127.0.0.1/callback", &[]).await;
    let response = org
        .token_request(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("redirect_uri", "http://127.0.0.1/callback"),
        ])
        .await;
    let body: Value = response.json().await.expect("json");
    body["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_string()
}

#[tokio::test]
async fn refresh_token_grant_then_admin_revocation() {
    let org = Org::start().await;
    let token = refresh_token(&org).await;
    let params = [
        ("grant_type", "refresh_token"),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
        ("refresh_token", token.as_str()),
    ];
    let (status, _, body) = split(org.token_request(&params).await).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.get("refresh_token").is_none(),
        "no rotation by default"
    );
    assert_eq!(body["scope"], "refresh_token api web");
    let session = body["access_token"].as_str().expect("token").to_string();

    assert_eq!(
        org.admin(Method::POST, "/refresh-tokens/revoke", None)
            .await
            .status(),
        204
    );
    assert_oauth_error(
        org.token_request(&params).await,
        "invalid_grant",
        "expired access/refresh token",
    )
    .await;
    // Revoking a refresh token revokes the sessions it produced.
    let (status, _, _) = org.get(&session, "/limits").await;
    assert_eq!(status, 401);
}

/// Introspection says whether a refresh token is active, to its own app only, and spends
/// nothing even when refresh tokens rotate.
#[tokio::test]
async fn introspection_reads_a_refresh_token_without_spending_it() {
    let org = Org::start().await;
    let token = refresh_token(&org).await;
    org.admin(
        Method::PUT,
        "/refresh-tokens/rotation",
        Some(json!({"enabled": true})),
    )
    .await;
    let introspect = |token: &str, secret: &str| {
        org.http
            .post(org.url("/services/oauth2/introspect"))
            .form(&[
                ("token", token),
                ("token_type_hint", "refresh_token"),
                ("client_id", CLIENT_ID),
                ("client_secret", secret),
            ])
            .send()
    };
    for _ in 0..2 {
        let response = introspect(&token, CLIENT_SECRET).await.expect("introspect");
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["active"], true, "{body}");
        assert_eq!(body["token_type"], "refresh_token");
        assert_eq!(body["client_id"], CLIENT_ID);
    }
    let unknown: Value = introspect("not-a-token", CLIENT_SECRET)
        .await
        .expect("introspect")
        .json()
        .await
        .expect("json");
    assert_eq!(unknown, json!({"active": false}));
    assert_oauth_error(
        introspect(&token, "wrong-secret")
            .await
            .expect("introspect"),
        "invalid_client",
        "invalid client credentials",
    )
    .await;
    // Still the current token: one refresh works, and rotates it.
    let response = org
        .token_request(&[
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT_ID),
            ("refresh_token", &token),
        ])
        .await;
    assert_eq!(response.status(), 200);
    let spent: Value = introspect(&token, CLIENT_SECRET)
        .await
        .expect("introspect")
        .json()
        .await
        .expect("json");
    assert_eq!(
        spent["active"], false,
        "a rotated token is no longer active"
    );
}

#[tokio::test]
async fn refresh_token_rotation_retires_the_old_token() {
    let org = Org::start().await;
    let first = refresh_token(&org).await;
    assert_eq!(
        org.admin(
            Method::PUT,
            "/refresh-tokens/rotation",
            Some(json!({"enabled": true}))
        )
        .await
        .status(),
        204
    );
    let params = |token: &str| {
        vec![
            ("grant_type".to_string(), "refresh_token".to_string()),
            ("client_id".into(), CLIENT_ID.into()),
            ("refresh_token".into(), token.to_string()),
        ]
    };
    let response = org
        .http
        .post(org.url("/services/oauth2/token"))
        .form(&params(&first))
        .send()
        .await
        .expect("token");
    let body: Value = response.json().await.expect("json");
    let second = body["refresh_token"]
        .as_str()
        .expect("rotated token")
        .to_string();
    assert_ne!(first, second);
    let response = org
        .http
        .post(org.url("/services/oauth2/token"))
        .form(&params(&first))
        .send()
        .await
        .expect("token");
    assert_oauth_error(response, "invalid_grant", "expired access/refresh token").await;
    let response = org
        .http
        .post(org.url("/services/oauth2/token"))
        .form(&params(&second))
        .send()
        .await
        .expect("token");
    assert_eq!(response.status(), 200);

    assert_eq!(
        org.admin(Method::POST, "/refresh-tokens/rotate", None)
            .await
            .status(),
        204
    );
    let response = org
        .http
        .post(org.url("/services/oauth2/token"))
        .form(&params(&second))
        .send()
        .await
        .expect("token");
    assert_oauth_error(response, "invalid_grant", "expired access/refresh token").await;
}

#[tokio::test]
async fn revoke_endpoint_ends_a_session() {
    let org = Org::start().await;
    let token = org.login().await;
    let response = org
        .http
        .post(org.url("/services/oauth2/revoke"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .expect("revoke");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("body"), "");
    let (status, _, body) = org.get(&token, "/limits").await;
    assert_eq!(status, 401);
    assert_eq!(body[0]["errorCode"], "INVALID_SESSION_ID");
    let response = org
        .http
        .post(org.url("/services/oauth2/revoke"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .expect("revoke");
    assert_oauth_error(response, "invalid_token", "invalid token").await;
}

#[tokio::test]
async fn an_added_callback_url_is_accepted_by_authorize_and_unknown_apps_are_404() {
    let org = Org::start().await;
    let callback = "https://abc123.lambda-url.us-east-1.on.aws/";
    let refused = org
        .http
        .get(org.url("/services/oauth2/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", callback),
        ])
        .send()
        .await
        .expect("authorize");
    assert_ne!(refused.status(), 302, "an unregistered URL gets no code");

    let path = format!("/connected-apps/{CLIENT_ID}/callback-urls");
    for _ in 0..2 {
        let added = org
            .admin(
                reqwest::Method::POST,
                &path,
                Some(serde_json::json!({"url": callback})),
            )
            .await;
        assert_eq!(added.status(), 204, "adding twice is harmless");
    }
    let code = authorize(&org, callback, &[]).await;
    assert!(!code.is_empty());

    let unknown = org
        .admin(
            reqwest::Method::POST,
            "/connected-apps/no-such-app/callback-urls",
            Some(serde_json::json!({"url": callback})),
        )
        .await;
    assert_eq!(unknown.status(), 404);
    let not_a_url = org
        .admin(
            reqwest::Method::POST,
            &path,
            Some(serde_json::json!({"url": "not a url"})),
        )
        .await;
    assert_eq!(not_a_url.status(), 400);
}
