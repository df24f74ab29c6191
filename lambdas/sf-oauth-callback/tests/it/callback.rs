//! The sign-in: `/start` → authorize → callback, the stored item, and every refusal, with the
//! AWS calls each request causes counted.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_lambda_events::event::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use salesforce::{Client, ClientConfig};
use sf_common::Secrets;
use sf_oauth_callback::{CallbackConfig, CallbackHandler, NONCE_COOKIE, sign_link};
use sfstack_test_support::{MotoServer, demo};

const TABLE: &str = "sfstack-oauth-tokens";
const STATES_TABLE: &str = "sfstack-oauth-states";
const SIGNING_KEY: &str = "test-state-signing-key-0123456789";
const WA_ID: &str = "whatsapp:+15555550100";

struct Harness {
    emulator: sf_emulator::Emulator,
    dynamodb: aws_sdk_dynamodb::Client,
    handler: CallbackHandler,
    /// The AWS calls the handler has made.
    aws_calls: Arc<AtomicUsize>,
    _moto: MotoServer,
}

/// Counts the AWS calls of the clients it is put on.
#[derive(Debug)]
struct CountCalls(Arc<AtomicUsize>);

impl aws_sdk_dynamodb::config::Intercept for CountCalls {
    fn name(&self) -> &'static str {
        "CountCalls"
    }

    fn read_before_execution(
        &self,
        _context: &aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef<
            '_,
        >,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// What the browser holds after `/start`.
struct Started {
    /// The authorize URL it was sent to.
    location: url::Url,
    /// `__Host-sfstack-oauth=<nonce>`.
    cookie: String,
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
        for (table, key) in [(TABLE, "wa_id"), (STATES_TABLE, "state_id")] {
            dynamodb
                .create_table()
                .table_name(table)
                .attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name(key)
                        .attribute_type(ScalarAttributeType::S)
                        .build()
                        .expect("attribute"),
                )
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name(key)
                        .key_type(KeyType::Hash)
                        .build()
                        .expect("key"),
                )
                .billing_mode(BillingMode::PayPerRequest)
                .send()
                .await
                .expect("create table");
        }
        let config = CallbackConfig::from_lookup(|name| match name {
            "SF_CREDENTIALS_SECRET_ARN" => Some(credentials_arn.clone()),
            "OAUTH_REDIRECT_URI" => Some(demo::CALLBACK_URL.to_owned()),
            "OAUTH_TOKENS_TABLE" => Some(TABLE.to_owned()),
            "OAUTH_STATES_TABLE" => Some(STATES_TABLE.to_owned()),
            _ => None,
        })
        .expect("config");
        let aws_calls = Arc::new(AtomicUsize::new(0));
        let counted_secrets = aws_sdk_secretsmanager::Client::from_conf(
            aws_sdk_secretsmanager::config::Builder::from(&sdk_config)
                .interceptor(CountCalls(Arc::clone(&aws_calls)))
                .build(),
        );
        let counted_dynamodb = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&sdk_config)
                .interceptor(CountCalls(Arc::clone(&aws_calls)))
                .build(),
        );
        let handler = CallbackHandler::new(config, Secrets::new(counted_secrets), counted_dynamodb);
        handler.prefetch().await;
        Harness {
            emulator,
            dynamodb,
            handler,
            aws_calls,
            _moto: moto,
        }
    }

    fn aws_calls(&self) -> usize {
        self.aws_calls.load(Ordering::SeqCst)
    }

    /// The browser opens the sign-in link.
    async fn open_link(&self) -> Started {
        let link = sign_link(SIGNING_KEY.as_bytes(), WA_ID, now()).expect("link");
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("link", &link)
            .finish();
        // Opening the link shows which number the account will be linked to, and links
        // nothing: no cookie, no redirect, a page no other site can frame.
        let page = self
            .handler
            .respond(&request_to("/start", "GET", &query, None), now())
            .await
            .expect("answers");
        assert_eq!(page.status_code, 200, "{}", body(&page));
        assert!(page.cookies.is_empty(), "{:?}", page.cookies);
        assert!(
            body(&page).contains("ending in <strong>0100</strong>"),
            "{}",
            body(&page)
        );
        // (The link itself, which the page posts back, carries the number as the URL did.)
        assert!(
            !body(&page)
                .split("<form")
                .next()
                .unwrap_or_default()
                .contains("5555550100"),
            "the number is masked: {}",
            body(&page)
        );
        assert!(
            body(&page).contains(r#"<form method="post" action="start">"#),
            "{}",
            body(&page)
        );
        let policy = page
            .headers
            .get("content-security-policy")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        assert_eq!(
            page.headers
                .get("x-frame-options")
                .and_then(|value| value.to_str().ok()),
            Some("DENY")
        );
        // Under `no-referrer` a browser posts the form with `Origin: null`, which the POST
        // refuses: the page keeps its origin for same-origin requests.
        assert_eq!(
            page.headers
                .get("referrer-policy")
                .and_then(|value| value.to_str().ok()),
            Some("same-origin")
        );
        assert!(!policy.contains("form-action"), "{policy}");
        // The button posts the link back, from this function's own origin.
        let response = self
            .handler
            .respond(&post_start(&query, Some(OWN_ORIGIN)), now())
            .await
            .expect("answers");
        assert_eq!(response.status_code, 302, "{}", body(&response));
        let location = response
            .headers
            .get("location")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| url::Url::parse(value).ok())
            .expect("a Location");
        let [set_cookie] = &response.cookies[..] else {
            panic!("one cookie: {:?}", response.cookies);
        };
        let cookie = set_cookie.split(';').next().expect("name=value").to_owned();
        Started { location, cookie }
    }

    /// The browser follows the authorize redirect: the demo user approves, and the emulator
    /// redirects to the callback. Returns that redirect's query (`code=…&state=…`).
    async fn authorize(&self, started: &Started) -> String {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client");
        let response = http
            .get(started.location.as_str())
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

    /// The callback, as the browser holding `cookie` brings `query` to it.
    async fn callback(
        &self,
        query: &str,
        cookie: Option<&str>,
        at: i64,
    ) -> LambdaFunctionUrlResponse {
        self.handler
            .respond(&request_to("/callback", "GET", query, cookie), at)
            .await
            .expect("answers")
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

/// A Function URL request (payload format 2.0) from the fixture, with this path, method, query
/// and cookie.
fn request_to(
    path: &str,
    method: &str,
    raw_query: &str,
    cookie: Option<&str>,
) -> LambdaFunctionUrlRequest {
    let mut request: LambdaFunctionUrlRequest =
        serde_json::from_str(include_str!("fixtures/function-url-request.json")).expect("fixture");
    request.raw_path = Some(path.to_owned());
    request.request_context.http.path = Some(path.to_owned());
    request.request_context.http.method = Some(method.to_owned());
    request.raw_query_string = Some(raw_query.to_owned());
    request.cookies = cookie.map(|cookie| vec![cookie.to_owned()]);
    // Lambda decodes the query into this map too.
    request.query_string_parameters = url::form_urlencoded::parse(raw_query.as_bytes())
        .into_owned()
        .collect();
    request
}

/// The origin of the callback URL, which the confirmation page is served from.
const OWN_ORIGIN: &str = "http://127.0.0.1";

/// The confirmation page's form, posted with `origin` (browsers always send one with a POST).
fn post_start(form: &str, origin: Option<&str>) -> LambdaFunctionUrlRequest {
    let mut request = request_to("/start", "POST", "", None);
    if let Some(origin) = origin {
        request
            .headers
            .insert("origin", origin.parse().expect("an origin header value"));
    }
    request.headers.insert(
        "content-type",
        "application/x-www-form-urlencoded"
            .parse()
            .expect("a content type"),
    );
    use base64::Engine as _;
    request.body = Some(base64::engine::general_purpose::STANDARD.encode(form));
    request.is_base64_encoded = true;
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

fn code_of(query: &str) -> String {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "code")
        .map(|(_, value)| value.into_owned())
        .expect("code")
}

fn param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

#[tokio::test]
async fn a_sign_in_started_in_a_browser_stores_the_tokens_and_they_work_without_another_login() {
    let harness = Harness::start().await;
    let started = harness.open_link().await;

    // The browser is sent to Salesforce with PKCE and a state, and holds a nonce cookie that
    // scripts cannot read and other sites' requests do not carry.
    let location = &started.location;
    assert_eq!(location.path(), "/services/oauth2/authorize");
    assert_eq!(
        param(location, "client_id").as_deref(),
        Some(demo::CLIENT_ID)
    );
    assert_eq!(
        param(location, "redirect_uri").as_deref(),
        Some(demo::CALLBACK_URL)
    );
    assert_eq!(
        param(location, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(param(location, "code_challenge").map(|c| c.len()), Some(43));
    assert!(param(location, "state").is_some_and(|state| state.starts_with("v2.")));
    assert!(started.cookie.starts_with(&format!("{NONCE_COOKIE}=")));

    let query = harness.authorize(&started).await;
    let code = code_of(&query);
    let response = harness.callback(&query, Some(&started.cookie), now()).await;
    assert_eq!(response.status_code, 200, "{}", body(&response));
    assert_eq!(
        response
            .headers
            .get("content-type")
            .and_then(|value| value.to_str().ok()),
        Some("text/html; charset=utf-8")
    );
    assert!(body(&response).contains("connected to Salesforce"));
    assert!(
        response
            .cookies
            .iter()
            .any(|cookie| cookie.starts_with(&format!("{NONCE_COOKIE}=;"))
                && cookie.contains("Max-Age=0")),
        "the nonce is cleared: {:?}",
        response.cookies
    );

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

/// The attacks the security review named, each refused with a reason and nothing stored.
#[tokio::test]
async fn replayed_foreign_and_expired_states_are_refused_and_store_nothing() {
    let harness = Harness::start().await;

    // A replayed state: the first completion succeeds; the same state again, even with the
    // same browser and a fresh code, is refused and overwrites nothing.
    let started = harness.open_link().await;
    let query = harness.authorize(&started).await;
    let first = harness.callback(&query, Some(&started.cookie), now()).await;
    assert_eq!(first.status_code, 200, "{}", body(&first));
    harness
        .dynamodb
        .delete_item()
        .table_name(TABLE)
        .key("wa_id", AttributeValue::S(WA_ID.to_owned()))
        .send()
        .await
        .expect("delete item");
    let fresh_code = harness.authorize(&started).await;
    let replay = harness
        .callback(&fresh_code, Some(&started.cookie), now())
        .await;
    assert_eq!(replay.status_code, 400, "{}", body(&replay));
    assert!(
        body(&replay).contains("already been used"),
        "{}",
        body(&replay)
    );
    assert!(harness.item().await.is_none(), "the replay stored nothing");

    // A state completed in another browser: the attacker starts a sign-in and sends the
    // authorize link to a victim, whose browser has no nonce, or a nonce of its own.
    let attacker = harness.open_link().await;
    let victim_query = harness.authorize(&attacker).await;
    let no_cookie = harness.callback(&victim_query, None, now()).await;
    assert_eq!(no_cookie.status_code, 400);
    assert!(
        body(&no_cookie).contains("not started in this browser"),
        "{}",
        body(&no_cookie)
    );
    let victim = harness.open_link().await;
    let other_nonce = harness
        .callback(&victim_query, Some(&victim.cookie), now())
        .await;
    assert_eq!(other_nonce.status_code, 400);
    assert!(
        body(&other_nonce).contains("does not belong to this browser"),
        "{}",
        body(&other_nonce)
    );
    assert!(harness.item().await.is_none(), "nothing stored");

    // An expired state: the browser comes back after the sign-in's ten minutes.
    let late = harness.open_link().await;
    let late_query = harness.authorize(&late).await;
    let expired = harness
        .callback(&late_query, Some(&late.cookie), now() + 601)
        .await;
    assert_eq!(expired.status_code, 400);
    assert!(body(&expired).contains("expired"), "{}", body(&expired));
    assert!(harness.item().await.is_none(), "nothing stored");

    // The attacker's own state, with its own browser, still works once: the refusals above did
    // not spend it.
    let own = harness
        .callback(&victim_query, Some(&attacker.cookie), now())
        .await;
    assert_eq!(own.status_code, 200, "{}", body(&own));
}

/// A flood of junk at the public URL, once the function is running: every request is refused
/// in memory, with no Secrets Manager, KMS or DynamoDB call.
#[tokio::test]
async fn a_flood_of_junk_requests_makes_no_aws_call() {
    let harness = Harness::start().await;
    let started = harness.open_link().await;
    let query = harness.authorize(&started).await;
    let state = url::form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "state")
        .map(|(_, value)| value.into_owned())
        .expect("state");
    let code = code_of(&query);
    let key = SIGNING_KEY.as_bytes();
    let forged_link = {
        let link = sign_link(b"someone-elses-signing-key", WA_ID, now()).expect("link");
        format!(
            "link={}",
            url::form_urlencoded::byte_serialize(link.as_bytes()).collect::<String>()
        )
    };
    let expired_link = format!(
        "link={}",
        url::form_urlencoded::byte_serialize(
            sign_link(key, WA_ID, now() - 601).expect("link").as_bytes()
        )
        .collect::<String>()
    );
    let with = |state: &str| {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("code", &code)
            .append_pair("state", state)
            .finish()
    };
    let forged_state = {
        let (payload, _) = state.rsplit_once('.').expect("signed");
        with(&format!("{payload}.{}", "A".repeat(43)))
    };
    let old_format_state = with(&sign_link(key, WA_ID, now()).expect("link"));
    let other_cookie = format!("{NONCE_COOKIE}=a-nonce-of-the-attackers-own");
    let cases: Vec<(&str, &str, String, Option<&str>, i64)> = vec![
        ("/callback", "GET", String::new(), None, 400),
        ("/callback", "GET", "code=x".into(), None, 400),
        ("/callback", "GET", "state=x".into(), None, 400),
        ("/callback", "GET", "error=access_denied".into(), None, 400),
        (
            "/callback",
            "GET",
            with("v2.junk"),
            Some(&other_cookie),
            400,
        ),
        (
            "/callback",
            "GET",
            with(&"v2.".repeat(500)),
            Some(&other_cookie),
            400,
        ),
        (
            "/callback",
            "GET",
            old_format_state,
            Some(&other_cookie),
            400,
        ),
        ("/callback", "GET", query.clone(), None, 400),
        ("/callback", "GET", query.clone(), Some(&other_cookie), 400),
        ("/callback", "GET", forged_state, Some(&started.cookie), 400),
        (
            "/callback",
            "POST",
            query.clone(),
            Some(&started.cookie),
            405,
        ),
        ("/start", "PUT", String::new(), None, 405),
        ("/start", "GET", String::new(), None, 400),
        ("/start", "GET", "link=wa:junk".into(), None, 400),
        ("/start", "GET", forged_link, None, 400),
        ("/start", "GET", expired_link, None, 400),
    ];
    let before = harness.aws_calls();
    for round in 0..20 {
        for (path, method, query, cookie, status) in &cases {
            let response = harness
                .handler
                .respond(&request_to(path, method, query, *cookie), now())
                .await
                .expect("answers");
            assert_eq!(
                response.status_code,
                *status,
                "round {round}, {method} {path}?{query}: {}",
                body(&response)
            );
            for secret in [SIGNING_KEY, demo::CLIENT_SECRET] {
                assert!(!body(&response).contains(secret));
            }
        }
    }
    // The confirmation's POST: another site's form (no Origin, or another one) is refused
    // even with a good link, and a junk link from the right origin too.
    let good_link = url::form_urlencoded::Serializer::new(String::new())
        .append_pair(
            "link",
            &sign_link(SIGNING_KEY.as_bytes(), WA_ID, now()).expect("link"),
        )
        .finish();
    let posts = [
        (good_link.as_str(), None, 403),
        (good_link.as_str(), Some("https://evil.example"), 403),
        ("link=wa:junk", Some(OWN_ORIGIN), 400),
        ("", Some(OWN_ORIGIN), 400),
    ];
    for round in 0..20 {
        for (form, origin, status) in &posts {
            let response = harness
                .handler
                .respond(&post_start(form, *origin), now())
                .await
                .expect("answers");
            assert_eq!(
                response.status_code,
                *status,
                "round {round}, POST /start {form} from {origin:?}: {}",
                body(&response)
            );
            assert!(response.cookies.is_empty());
        }
    }
    assert_eq!(
        harness.aws_calls(),
        before,
        "{} junk requests made AWS calls",
        20 * (cases.len() + posts.len())
    );
    // The real sign-in is untouched by the flood.
    let response = harness.callback(&query, Some(&started.cookie), now()).await;
    assert_eq!(response.status_code, 200, "{}", body(&response));
}

#[tokio::test]
async fn infrastructure_failures_fail_the_invocation_with_a_stable_error_type() {
    let harness = Harness::start().await;
    for (table, error_type) in [(TABLE, "StoreFailed"), (STATES_TABLE, "StateStoreFailed")] {
        harness
            .dynamodb
            .delete_table()
            .table_name(table)
            .send()
            .await
            .expect("delete table");
        let started = harness.open_link().await;
        let query = harness.authorize(&started).await;
        let error = harness
            .handler
            .respond(
                &request_to("/callback", "GET", &query, Some(&started.cookie)),
                now(),
            )
            .await
            .expect_err("no table");
        assert_eq!(error.error_type(), error_type, "{error}");
        assert!(error.to_string().contains(table), "{error}");
        let diagnostic = lambda_runtime::Diagnostic::from(error);
        assert_eq!(diagnostic.error_type, error_type);
    }
}
