//! The callback: a successful sign-in, the stored item, and every refusal.

use std::collections::HashMap;

use aws_lambda_events::event::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use salesforce::{Client, ClientConfig};
use sf_common::Secrets;
use sf_oauth_callback::{CallbackConfig, CallbackHandler, sign_state};
use sfstack_test_support::{MotoServer, demo};

const TABLE: &str = "sfstack-oauth-tokens";
const SIGNING_KEY: &str = "test-state-signing-key-0123456789";
const WA_ID: &str = "whatsapp:+15555550100";

struct Harness {
    emulator: sf_emulator::Emulator,
    dynamodb: aws_sdk_dynamodb::Client,
    handler: CallbackHandler,
    _moto: MotoServer,
}

impl Harness {
    async fn start() -> Harness {
        let moto = MotoServer::start().expect("moto starts");
        let emulator = sfstack_test_support::start_emulator()
            .await
            .expect("emulator starts");
        let sdk_config = moto.sdk_config().await;
        let secrets = aws_sdk_secretsmanager::Client::new(&sdk_config);
        let credentials_arn = secrets
            .create_secret()
            .name("sfstack/credentials")
            .secret_string(
                serde_json::json!({
                    "LoginUrl": emulator.base_url(),
                    "ConsumerKey": demo::CLIENT_ID,
                    "ConsumerSecret": demo::CLIENT_SECRET,
                    "StateSigningKey": SIGNING_KEY,
                })
                .to_string(),
            )
            .send()
            .await
            .expect("create credentials secret")
            .arn
            .expect("arn");
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk_config);
        dynamodb
            .create_table()
            .table_name(TABLE)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("wa_id")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .expect("attribute"),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("wa_id")
                    .key_type(KeyType::Hash)
                    .build()
                    .expect("key"),
            )
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .expect("create table");
        let config = CallbackConfig::from_lookup(|name| match name {
            "SF_CREDENTIALS_SECRET_ARN" => Some(credentials_arn.clone()),
            "OAUTH_REDIRECT_URI" => Some(demo::CALLBACK_URL.to_owned()),
            "OAUTH_TOKENS_TABLE" => Some(TABLE.to_owned()),
            _ => None,
        })
        .expect("config");
        let handler = CallbackHandler::new(config, Secrets::new(secrets), dynamodb.clone());
        Harness {
            emulator,
            dynamodb,
            handler,
            _moto: moto,
        }
    }

    /// Runs the emulator's authorize endpoint with `state` and returns the redirect's query
    /// string (`code=…&state=…`), as the browser would bring it to the callback.
    async fn authorize(&self, state: &str) -> String {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client");
        let response = http
            .get(format!(
                "{}/services/oauth2/authorize",
                self.emulator.base_url()
            ))
            .query(&[
                ("response_type", "code"),
                ("client_id", demo::CLIENT_ID),
                ("redirect_uri", demo::CALLBACK_URL),
                ("state", state),
            ])
            .send()
            .await
            .expect("authorize");
        assert_eq!(response.status(), 302);
        let location = response
            .headers()
            .get("location")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| url::Url::parse(value).ok())
            .expect("location header");
        assert_eq!(location.path(), "/callback");
        location.query().unwrap_or_default().to_owned()
    }

    async fn item(&self) -> Option<HashMap<String, AttributeValue>> {
        self.dynamodb
            .get_item()
            .table_name(TABLE)
            .key("wa_id", AttributeValue::S(WA_ID.to_owned()))
            .send()
            .await
            .expect("get item")
            .item
    }

    fn token_grants(&self) -> Vec<String> {
        self.emulator
            .request_log()
            .into_iter()
            .filter_map(|entry| entry.grant_type)
            .collect()
    }
}

/// A Function URL request (payload format 2.0) from the fixture, with this method and query.
fn request(method: &str, raw_query: &str) -> LambdaFunctionUrlRequest {
    let mut request: LambdaFunctionUrlRequest =
        serde_json::from_str(include_str!("fixtures/function-url-request.json")).expect("fixture");
    request.request_context.http.method = Some(method.to_owned());
    request.raw_query_string = Some(raw_query.to_owned());
    // Lambda decodes the query into this map too.
    request.query_string_parameters = url::form_urlencoded::parse(raw_query.as_bytes())
        .into_owned()
        .collect();
    request
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or_default()
}

fn body(response: &LambdaFunctionUrlResponse) -> &str {
    response.body.as_deref().unwrap_or_default()
}

fn text(item: &HashMap<String, AttributeValue>, key: &str) -> String {
    item.get(key)
        .and_then(|value| value.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn a_signed_callback_stores_the_tokens_and_they_work_without_another_login() {
    let harness = Harness::start().await;
    let state = sign_state(SIGNING_KEY.as_bytes(), WA_ID, now()).expect("state");
    let query = harness.authorize(&state).await;
    let code = url::form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "code")
        .map(|(_, value)| value.into_owned())
        .expect("code");

    let response = harness
        .handler
        .respond(&request("GET", &query), now())
        .await
        .expect("answers");
    assert_eq!(response.status_code, 200, "{}", body(&response));
    assert_eq!(
        response
            .headers
            .get("content-type")
            .and_then(|value| value.to_str().ok()),
        Some("text/html; charset=utf-8")
    );
    assert!(body(&response).contains("connected to Salesforce"));

    let item = harness.item().await.expect("an item for the user");
    assert_eq!(text(&item, "wa_id"), WA_ID);
    assert_eq!(text(&item, "instance_url"), harness.emulator.base_url());
    let issued_at: i64 = item
        .get("issued_at")
        .and_then(|value| value.as_n().ok())
        .and_then(|n| n.parse().ok())
        .expect("issued_at");
    assert!(issued_at > 1_700_000_000_000, "milliseconds: {issued_at}");
    let access_token = text(&item, "access_token");
    let refresh_token = text(&item, "refresh_token");
    assert!(!access_token.is_empty() && !refresh_token.is_empty());
    for secret in [
        access_token.as_str(),
        refresh_token.as_str(),
        demo::CLIENT_SECRET,
        SIGNING_KEY,
        &code,
    ] {
        assert!(
            !body(&response).contains(secret),
            "the page holds no secret"
        );
    }
    assert_eq!(harness.token_grants(), ["authorization_code"]);

    // Another function uses the stored tokens directly: no extra login.
    let session: salesforce::Session = serde_json::from_value(serde_json::json!({
        "access_token": access_token,
        "instance_url": text(&item, "instance_url"),
        "issued_at": issued_at,
    }))
    .expect("session");
    let client = Client::with_session(session, None, ClientConfig::default()).expect("client");
    let contacts = client
        .query("SELECT Id, Name FROM Contact")
        .await
        .expect("query with the stored token");
    assert!(contacts.total_size > 0);
    assert_eq!(
        harness.token_grants(),
        ["authorization_code"],
        "no extra login happened"
    );

    // The refresh token works too.
    let credentials = salesforce::Credentials::refresh_token(
        demo::CLIENT_ID,
        None,
        refresh_token.as_str().into(),
    )
    .with_login_url(harness.emulator.base_url())
    .expect("credentials");
    Client::new(credentials, ClientConfig::default())
        .expect("client")
        .login()
        .await
        .expect("refresh works");
}

#[tokio::test]
async fn bad_callbacks_are_refused_without_storing_or_revealing_anything() {
    let harness = Harness::start().await;
    let key = SIGNING_KEY.as_bytes();
    let fresh = || sign_state(key, WA_ID, now()).expect("state");
    let forged = {
        let state = fresh();
        let (payload, _) = state.rsplit_once('.').expect("signed");
        format!(
            "{payload}.{}",
            sign_state(b"someone-elses-signing-key", WA_ID, now())
                .expect("state")
                .rsplit_once('.')
                .expect("signed")
                .1
        )
    };
    let expired = sign_state(key, WA_ID, now() - 601).expect("state");
    let wrong_prefix = {
        use base64::Engine as _;
        use hmac::Mac as _;
        let payload = format!("sms:whatsapp:+15555550100.{}", now());
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("key");
        mac.update(payload.as_bytes());
        let signature =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{payload}.{signature}")
    };

    enum Case {
        /// The query sent to the callback after authorizing with this state.
        Authorized {
            state: String,
            keep: &'static [&'static str],
        },
        Method(&'static str),
        /// The same code twice: the first succeeds, the second is a replay.
        ReusedCode,
    }
    let cases = [
        (
            "missing code",
            Case::Authorized {
                state: fresh(),
                keep: &["state"],
            },
            400,
            "missing code",
        ),
        (
            "missing state",
            Case::Authorized {
                state: fresh(),
                keep: &["code"],
            },
            400,
            "missing state",
        ),
        (
            "forged signature",
            Case::Authorized {
                state: forged,
                keep: &["code", "state"],
            },
            400,
            "signature is invalid",
        ),
        (
            "expired state",
            Case::Authorized {
                state: expired,
                keep: &["code", "state"],
            },
            400,
            "expired",
        ),
        (
            "wrong prefix",
            Case::Authorized {
                state: wrong_prefix,
                keep: &["code", "state"],
            },
            400,
            "does not start with wa:whatsapp:+",
        ),
        ("POST", Case::Method("POST"), 405, "use GET"),
        (
            "reused code",
            Case::ReusedCode,
            502,
            "did not accept the sign-in",
        ),
    ];
    for (name, case, status, reason) in cases {
        let (request, code) = match case {
            Case::Authorized { state, keep } => {
                let query = harness.authorize(&state).await;
                let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
                    .into_owned()
                    .collect();
                let code = pairs
                    .iter()
                    .find(|(key, _)| key == "code")
                    .map(|(_, value)| value.clone());
                let kept = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(pairs.iter().filter(|(key, _)| keep.contains(&key.as_str())))
                    .finish();
                (request("GET", &kept), code)
            }
            Case::Method(method) => {
                let query = harness.authorize(&fresh()).await;
                (request(method, &query), None)
            }
            Case::ReusedCode => {
                let query = harness.authorize(&fresh()).await;
                let first = harness
                    .handler
                    .respond(&request("GET", &query), now())
                    .await
                    .expect("answers");
                assert_eq!(first.status_code, 200, "{name}: first use");
                harness
                    .dynamodb
                    .delete_item()
                    .table_name(TABLE)
                    .key("wa_id", AttributeValue::S(WA_ID.to_owned()))
                    .send()
                    .await
                    .expect("delete item");
                let code = url::form_urlencoded::parse(query.as_bytes())
                    .find(|(key, _)| key == "code")
                    .map(|(_, value)| value.into_owned());
                (request("GET", &query), code)
            }
        };
        let response = harness
            .handler
            .respond(&request, now())
            .await
            .expect("answers");
        assert_eq!(response.status_code, status, "{name}: {}", body(&response));
        assert!(
            body(&response).contains(reason),
            "{name}: {}",
            body(&response)
        );
        assert_eq!(
            response
                .headers
                .get("content-type")
                .and_then(|value| value.to_str().ok()),
            Some("text/plain; charset=utf-8"),
            "{name}"
        );
        if status == 405 {
            assert_eq!(
                response
                    .headers
                    .get("allow")
                    .and_then(|value| value.to_str().ok()),
                Some("GET")
            );
        }
        let mut secrets = vec![demo::CLIENT_SECRET.to_owned(), SIGNING_KEY.to_owned()];
        secrets.extend(code);
        for secret in &secrets {
            assert!(
                !body(&response).contains(secret.as_str()),
                "{name}: the body reveals a secret"
            );
        }
        assert!(harness.item().await.is_none(), "{name}: nothing stored");
    }
}

#[tokio::test]
async fn infrastructure_failures_fail_the_invocation_with_a_stable_error_type() {
    let harness = Harness::start().await;
    harness
        .dynamodb
        .delete_table()
        .table_name(TABLE)
        .send()
        .await
        .expect("delete table");
    let query = harness
        .authorize(&sign_state(SIGNING_KEY.as_bytes(), WA_ID, now()).expect("state"))
        .await;
    let error = harness
        .handler
        .respond(&request("GET", &query), now())
        .await
        .expect_err("no table");
    assert_eq!(error.error_type(), "StoreFailed", "{error}");
    assert!(error.to_string().contains(TABLE), "{error}");
    let diagnostic = lambda_runtime::Diagnostic::from(error);
    assert_eq!(diagnostic.error_type, "StoreFailed");
}
