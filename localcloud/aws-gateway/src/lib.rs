//! The local cloud's AWS gateway: sits between every AWS client (the `xtask` commands and the
//! functions the local Lambda service runs) and the moto server, knows the principal behind
//! each request's access key, decides the request as AWS's IAM would (identity policies,
//! resource policies, KMS key policies, conditions), forwards what is allowed and answers what
//! is denied in the service's own error shape. moto alone enforces nothing; this is what makes
//! a green local run predict a green AWS run.
//!
//! What it decides today (see `ARCHITECTURE.md` for what it does not):
//!
//! - every request of a **role session** (a function running as its execution role) and of
//!   the **Lambda service** (assuming a role, checked against the role's trust policy), through
//!   the closed table in [`table`]: an operation the table does not list is refused;
//! - the KMS calls Secrets Manager and DynamoDB make as the caller, against the role's policy
//!   and the key policy, with `kms:ViaService`, `kms:CallerAccount` and the encryption context;
//! - every request of the **deployer** (the `xtask` commands and the tests), through the same
//!   table, as the account's administrator: its identity policy allows everything, so only a
//!   resource policy (a KMS key policy that leaves the account out, an explicit deny) or an
//!   operation the table does not know refuses it; or as a session of a deployer role issued
//!   for a GitHub Actions job ([`WEB_IDENTITY_PATH`]), decided by that role's policies;
//! - what CloudFormation does as its caller while a change set executes or a stack is deleted
//!   ([`fidelity::handlers`]);
//! - requests signed with a key nobody issued, or not signed, are refused.
//!
//! Every decision is appended to the decision log.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Response, StatusCode, header};
use axum::response::IntoResponse;

pub mod authorize;
pub mod connect;
pub mod deny;
pub mod evaluator;
pub mod fidelity;
pub mod policies;
pub mod principals;
pub mod sigv4;
pub mod table;

use authorize::{Authorizer, Entry, Outcome};
use principals::{Principal, Principals};
use table::Protocol;

/// Answers when the gateway is up (no AWS API uses this path).
pub const HEALTH_PATH: &str = "/__sfstack/health";

/// Where the local Lambda service asks whether an AWS service may invoke a function
/// (`POST`, a [`authorize::ServiceInvocation`]; answers `{"allowed", "message"}`).
pub const SERVICE_INVOCATION_PATH: &str = "/__sfstack/service-invocation";

/// Where tests ask for a burst of throttling on one action (`POST`, `{"action", "times"}`).
pub const THROTTLE_PATH: &str = "/__sfstack/throttle";

/// Tests: `POST {"advance_days": N}` moves the local cloud's clock ahead and applies the S3
/// lifecycle rules at the new time (see [`fidelity::lifecycle`]); answers the objects expired.
pub const CLOCK_PATH: &str = "/__sfstack/clock";

/// Tests: `POST {"stack", "logical_id", "resource_type", "reason"}` makes the next change set
/// executed on that stack fail on that resource (see [`fidelity::rollback`]).
pub const FAIL_UPDATE_PATH: &str = "/__sfstack/fail-update";

/// Tests: `POST {"stack", "logical_id", "resource_type", "reason"}` makes the next deletion of
/// that stack fail on that resource (`DELETE_FAILED`; see [`fidelity::rollback`]).
pub const FAIL_DELETE_PATH: &str = "/__sfstack/fail-delete";

/// Tests: `POST {"bucket", "owner"}` makes a bucket of that name belong to another account
/// whose policy lets anyone use it (a squatted name; see [`Gateway::foreign_bucket`]).
pub const FOREIGN_BUCKET_PATH: &str = "/__sfstack/foreign-bucket";

/// Tests: `POST {"limit": N}` sets the account's concurrent-executions limit, from which every
/// reserved concurrency is taken (see [`fidelity::concurrency`]).
pub const ACCOUNT_CONCURRENCY_PATH: &str = "/__sfstack/account-concurrency";

/// `POST {"role_arn", "subject", "session_name"}`: what GitHub Actions' `configure-aws-credentials`
/// does with the job's OIDC token, played locally. The gateway stands in for GitHub's token
/// (`sub` = `subject`, `aud` = `sts.amazonaws.com`) and decides `sts:AssumeRoleWithWebIdentity`
/// as STS would ([`authorize::Authorizer::assume_role_with_web_identity`]); allowed, it answers
/// the session's credentials (`AccessKeyId`, `SecretAccessKey`, `SessionToken`, `Arn`), refused,
/// `403 {"code", "message"}`.
pub const WEB_IDENTITY_PATH: &str = "/__sfstack/web-identity";

/// The largest request body the gateway buffers (Lambda zips are a few MB).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// How the gateway runs.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The moto server every allowed request goes to.
    pub moto_url: String,
    pub account_id: String,
    pub region: String,
    /// JSON lines, one per decision.
    pub decision_log: PathBuf,
    /// `false` logs what would be denied and forwards it anyway (debugging only).
    pub enforce: bool,
    /// One of every this many deployer requests is throttled once (0: never; see
    /// [`fidelity::Throttle`]).
    pub throttle_every: u64,
}

struct Gateway {
    config: GatewayConfig,
    http: reqwest::Client,
    /// Secrets Manager in moto, unchecked: for [`fidelity`]'s corrections.
    moto_secrets: aws_sdk_secretsmanager::Client,
    /// S3 and CloudFormation in moto, unchecked: for lifecycle expiry and rollbacks.
    moto_s3: aws_sdk_s3::Client,
    moto_cloudformation: aws_sdk_cloudformation::Client,
    /// DynamoDB in moto, unchecked: for time to live from templates.
    moto_dynamodb: aws_sdk_dynamodb::Client,
    principals: Principals,
    authorizer: Authorizer,
    deletions: fidelity::Deletions,
    throttle: fidelity::Throttle,
    propagation: fidelity::propagation::Propagation,
    rollbacks: fidelity::rollback::Rollbacks,
    lifecycle: fidelity::lifecycle::Lifecycle,
    log_keys: fidelity::log_keys::LogKeys,
    concurrency: fidelity::concurrency::Concurrency,
    ttl: fidelity::ttl::Ttl,
    /// The handler permissions CloudFormation uses as its caller, and the change sets' templates.
    schemas: fidelity::handlers::Schemas,
    templates: fidelity::handlers::Templates,
    /// Held while moto handles a conditional S3 write or delete.
    conditional_writes: tokio::sync::Mutex<()>,
    /// Bucket name → the other account that owns it.
    foreign_buckets: Mutex<std::collections::HashMap<String, String>>,
    /// Amazon Connect, which moto lacks, answered by the gateway.
    connect: connect::Connect,
    log: Mutex<std::fs::File>,
}

/// Serves the gateway on `listener` until the future is dropped.
pub async fn serve(listener: tokio::net::TcpListener, config: GatewayConfig) -> anyhow::Result<()> {
    let evaluator = evaluator::Evaluator::start()
        .await
        .context("starting the IAM policy evaluator")?;
    let sdk = aws_reqwest::defaults()
        .endpoint_url(&config.moto_url)
        .region(aws_config::Region::new(config.region.clone()))
        .credentials_provider(aws_credential_types::Credentials::new(
            principals::DEPLOYER_ACCESS_KEY,
            principals::DEPLOYER_ACCESS_KEY,
            None,
            None,
            "aws-gateway",
        ))
        .load()
        .await;
    if let Some(parent) = config.decision_log.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&config.decision_log)
        .with_context(|| format!("opening {}", config.decision_log.display()))?;
    if !config.enforce {
        eprintln!(
            "aws-gateway: ENFORCEMENT IS OFF (debugging only): denials are logged and forwarded anyway; a green run proves nothing about AWS"
        );
    }
    let gateway = Arc::new(Gateway {
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?,
        principals: Principals::new(config.account_id.clone()),
        moto_secrets: aws_sdk_secretsmanager::Client::new(&sdk),
        moto_s3: aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .build(),
        ),
        moto_cloudformation: aws_sdk_cloudformation::Client::new(&sdk),
        moto_dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
        deletions: fidelity::Deletions::default(),
        throttle: fidelity::Throttle::new(config.throttle_every),
        propagation: fidelity::propagation::Propagation::default(),
        rollbacks: fidelity::rollback::Rollbacks::default(),
        lifecycle: fidelity::lifecycle::Lifecycle::default(),
        log_keys: fidelity::log_keys::LogKeys::default(),
        concurrency: fidelity::concurrency::Concurrency::default(),
        ttl: fidelity::ttl::Ttl::default(),
        schemas: fidelity::handlers::Schemas::default(),
        templates: fidelity::handlers::Templates::default(),
        conditional_writes: tokio::sync::Mutex::new(()),
        foreign_buckets: Mutex::new(std::collections::HashMap::new()),
        connect: connect::Connect::new(&config.account_id, &config.region),
        authorizer: Authorizer {
            evaluator,
            policies: policies::Policies::new(&sdk),
            account_id: config.account_id.clone(),
            region: config.region.clone(),
        },
        log: Mutex::new(log),
        config,
    });
    let app = axum::Router::new()
        .route(HEALTH_PATH, axum::routing::get(|| async { "ok" }))
        .route(
            SERVICE_INVOCATION_PATH,
            axum::routing::post(service_invocation),
        )
        .route(THROTTLE_PATH, axum::routing::post(force_throttling))
        .route(WEB_IDENTITY_PATH, axum::routing::post(web_identity))
        .route(CLOCK_PATH, axum::routing::post(advance_clock))
        .route(FAIL_UPDATE_PATH, axum::routing::post(force_update_failure))
        .route(FAIL_DELETE_PATH, axum::routing::post(force_delete_failure))
        .route(
            ACCOUNT_CONCURRENCY_PATH,
            axum::routing::post(set_account_concurrency),
        )
        .route(
            FOREIGN_BUCKET_PATH,
            axum::routing::post(make_foreign_bucket),
        )
        .fallback(handle)
        .with_state(gateway);
    axum::serve(listener, app)
        .await
        .context("serving the gateway")
}

async fn handle(State(gateway): State<Arc<Gateway>>, request: Request) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(body) => body,
        Err(_) => return plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
    };
    let header_text = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
    };
    let query = parts.uri.query();
    let credential = sigv4::credential(header_text("authorization"), query);
    let target = header_text("x-amz-target");
    let service = credential
        .as_ref()
        .map(|credential| credential.service.clone())
        .unwrap_or_default();
    let operation = table::operation(
        &service,
        parts.method.as_str(),
        parts.uri.path(),
        target,
        query,
        &body,
    );
    let protocol = operation.as_ref().map_or_else(
        || fallback_protocol(&service),
        |operation| operation.protocol,
    );
    let Some(principal) = credential
        .as_ref()
        .and_then(|credential| gateway.principals.lookup(&credential.access_key_id))
    else {
        gateway.write_log(&[Entry {
            principal: credential
                .as_ref()
                .map(|credential| credential.access_key_id.clone())
                .unwrap_or_else(|| "anonymous".to_string()),
            action: operation
                .as_ref()
                .map(table::Operation::action)
                .unwrap_or_default(),
            resource: String::new(),
            decision: "deny",
            deciding: vec![if credential.is_some() {
                "the access key was not issued by this cloud".to_string()
            } else {
                "the request is not signed".to_string()
            }],
        }]);
        return match credential {
            Some(_) => deny::unknown_key(protocol),
            None => deny::unsigned(protocol),
        };
    };

    let mut entries = Vec::new();
    let check = match &operation {
        Some(operation) => table::check(operation)
            .map(|check| match check {
                // A contact flow's tags, which only the local cloud's Connect knows.
                table::Check::Actions {
                    checks,
                    mut context,
                } => {
                    context.extend(gateway.connect.resource_tags(operation));
                    table::Check::Actions { checks, context }
                }
                check => check,
            })
            .map_err(|table::NotModelled(action)| action),
        None => Err(format!("{service}:{} {}", parts.method, parts.uri.path())),
    };
    let outcome = match check {
        Ok(check) => match gateway
            .authorizer
            .decide(&principal, &check, &mut entries)
            .await
        {
            Ok(outcome) => outcome,
            Err(error) => {
                return plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("aws-gateway: could not decide the request: {error:#}"),
                );
            }
        },
        Err(action) => {
            entries.push(Entry {
                principal: principal.arn().to_string(),
                action: action.clone(),
                resource: String::new(),
                decision: "deny",
                deciding: vec!["not modelled by the local cloud".to_string()],
            });
            Outcome::Deny(format!(
                "{action} by {} is not modelled by the local cloud, so it is refused (hint: add it to localcloud/aws-gateway/src/table.rs with the authorization AWS documents for it)",
                principal.arn()
            ))
        }
    };
    gateway.write_log(&entries);
    if let Outcome::Deny(message) = &outcome
        && gateway.config.enforce
    {
        return deny::access_denied(protocol, message);
    }
    if let Outcome::Fail { code, message } = &outcome {
        return deny::failure(protocol, code, message);
    }
    // STS answers who the caller is; moto knows only the sessions it issued itself.
    if let (Some(operation), Principal::RoleSession { session_arn, .. }) = (&operation, &principal)
        && operation.action() == "sts:GetCallerIdentity"
    {
        return xml_answer(format!(
            "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult><Arn>{session_arn}</Arn><UserId>{}</UserId><Account>{}</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>sfstack-gateway</RequestId></ResponseMetadata></GetCallerIdentityResponse>",
            credential
                .as_ref()
                .map(|credential| credential.access_key_id.as_str())
                .unwrap_or_default(),
            gateway.config.account_id
        ));
    }
    let by_deployer = matches!(principal, Principal::Deployer { .. });
    if let Some(operation) = &operation
        && operation.service == "connect"
    {
        return gateway.connect.answer(operation);
    }
    if let Some(answer) = operation.as_ref().and_then(|operation| {
        gateway
            .throttle
            .answer(operation, by_deployer)
            .or_else(|| gateway.deletions.answer(operation))
    }) {
        return answer;
    }
    if let Some(operation) = &operation {
        if operation.action() == "sts:AssumeRole"
            && matches!(principal, Principal::LambdaService)
            && let Some(role) = operation.parameters.get("RoleArn").and_then(|v| v.as_str())
            && gateway.propagation.too_new(role)
        {
            return deny::access_denied(
                protocol,
                &format!(
                    "User: lambda.amazonaws.com is not authorized to perform: sts:AssumeRole on resource: {role} (the role was created a moment ago and IAM has not propagated it yet)"
                ),
            );
        }
        let unusable_log_key = gateway.log_key_failure(operation).await;
        let handler_denied = gateway.handler_failure(&principal, operation).await;
        if let Some(execution) = gateway.rollbacks.execution(operation)
            && let Some(failure) = handler_denied
                .or_else(|| gateway.propagation.failure(operation))
                .or(unusable_log_key)
                .or_else(|| gateway.concurrency.failure(operation))
                .or_else(|| gateway.rollbacks.take_forced(&execution.stack))
        {
            // CloudFormation accepts the execution, fails it on the resource and rolls back; the
            // change set never reaches moto, which keeps the previous template and resources.
            let stuck = if execution.creates {
                Vec::new()
            } else {
                gateway.rollback_blockers(&execution, &failure).await
            };
            gateway.rollbacks.roll_back(&execution, failure, stuck);
            return xml_answer(
                "<ExecuteChangeSetResponse xmlns=\"http://cloudformation.amazonaws.com/doc/2010-05-15/\"><ExecuteChangeSetResult/><ResponseMetadata><RequestId>sfstack-gateway</RequestId></ResponseMetadata></ExecuteChangeSetResponse>",
            );
        }
        gateway.deletion_denied(&principal, operation).await;
        if gateway.rollbacks.fails_deletion(operation) {
            return xml_answer(
                "<DeleteStackResponse xmlns=\"http://cloudformation.amazonaws.com/doc/2010-05-15/\"><ResponseMetadata><RequestId>sfstack-gateway</RequestId></ResponseMetadata></DeleteStackResponse>",
            );
        }
        match gateway.rollbacks.continue_rollback(operation) {
            Some(Ok(())) => {
                return xml_answer(
                    "<ContinueUpdateRollbackResponse xmlns=\"http://cloudformation.amazonaws.com/doc/2010-05-15/\"><ContinueUpdateRollbackResult/><ResponseMetadata><RequestId>sfstack-gateway</RequestId></ResponseMetadata></ContinueUpdateRollbackResponse>",
                );
            }
            Some(Err(message)) => return deny::failure(protocol, "ValidationError", &message),
            None => {}
        }
    }
    let body = operation
        .as_ref()
        .and_then(fidelity::request_body)
        .unwrap_or(body);
    if let Some(answer) = gateway.foreign_bucket(protocol, &parts) {
        return answer;
    }
    // S3 decides a conditional write or delete atomically: of two writers racing to create
    // one key with `If-None-Match: *`, exactly one wins (S3 User Guide, "conditional writes").
    // moto checks, then writes, on separate threads; the gateway lets one such request
    // through at a time.
    let conditional = operation.as_ref().is_some_and(|operation| {
        operation.protocol == Protocol::RestXml
            && (parts.headers.contains_key(header::IF_NONE_MATCH)
                || parts.headers.contains_key(header::IF_MATCH))
    });
    let _one_at_a_time = if conditional {
        Some(gateway.conditional_writes.lock().await)
    } else {
        None
    };
    let answer = gateway
        .forward(&parts.method, &parts.uri, &parts.headers, body)
        .await;
    // Whatever a change did may change a later decision (with enforcement off, an operation
    // the table does not know is taken for a change).
    if operation
        .as_ref()
        .is_none_or(table::Operation::may_change_authorization)
    {
        gateway.authorizer.policies.invalidate();
    }
    let Some(operation) = operation.filter(|_| answer.status().is_success()) else {
        return answer;
    };
    // What a successful answer teaches the gateway, and the corrections that make it AWS's.
    let (mut parts, bytes) = {
        let (parts, body) = answer.into_parts();
        let bytes = axum::body::to_bytes(body, MAX_BODY)
            .await
            .unwrap_or_default();
        (parts, bytes)
    };
    gateway
        .propagation
        .record(&operation, &gateway.config.account_id);
    gateway.rollbacks.record(&operation);
    gateway.log_keys.record(&operation);
    gateway.concurrency.record(&operation);
    gateway.ttl.record(&operation);
    gateway.templates.record(&operation);
    fidelity::ttl::apply(
        &gateway.moto_dynamodb,
        &gateway.ttl.of_execution(&operation),
    )
    .await;
    let json = || serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or_default();
    let corrected = match operation.action().as_str() {
        "cloudformation:DescribeStacks" | "cloudformation:DescribeStackEvents" => gateway
            .rollbacks
            .answer(&operation, &String::from_utf8_lossy(&bytes))
            .map(Bytes::from),
        "lambda:GetPolicy" => function_policy_as_lambda_returns_it(&bytes),
        "logs:DescribeLogGroups" => gateway.log_keys.answer(&bytes).map(Bytes::from),
        "secretsmanager:DeleteSecret" => {
            gateway.deletions.record(&operation, &json());
            None
        }
        "sts:AssumeRole" => {
            // Learn the session the answer hands out; the answer passes on unchanged.
            gateway
                .principals
                .learn_from_assume_role(&String::from_utf8_lossy(&bytes));
            None
        }
        _ => fidelity::answer_body(&operation, &bytes),
    };
    if fidelity::may_leave_two_current_versions(&operation) {
        let answered = json();
        if let (Some(secret), Some(version)) =
            (answered["ARN"].as_str(), answered["VersionId"].as_str())
            && let Err(error) =
                fidelity::settle_current_version(&gateway.moto_secrets, secret, version).await
        {
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!(
                    "aws-gateway: {} stored the value but the labels could not be settled: {error:#}",
                    operation.action()
                ),
            );
        }
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(corrected.unwrap_or(bytes)))
}

#[derive(serde::Deserialize)]
struct ForcedThrottling {
    action: String,
    times: u32,
}

/// Tests: the next `times` requests of `action` are throttled.
async fn force_throttling(
    State(gateway): State<Arc<Gateway>>,
    axum::Json(forced): axum::Json<ForcedThrottling>,
) -> StatusCode {
    gateway.throttle.force(&forced.action, forced.times);
    StatusCode::NO_CONTENT
}

#[derive(serde::Deserialize)]
struct ClockAdvance {
    advance_days: i64,
}

/// Tests: the clock moves ahead, and S3's lifecycle rules apply at the new time.
async fn advance_clock(
    State(gateway): State<Arc<Gateway>>,
    axum::Json(advance): axum::Json<ClockAdvance>,
) -> Response<Body> {
    match gateway
        .lifecycle
        .advance(&gateway.moto_s3, advance.advance_days)
        .await
    {
        Ok(expired) => axum::Json(serde_json::json!({ "expired": expired })).into_response(),
        Err(error) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("aws-gateway: applying the lifecycle rules: {error:#}"),
        ),
    }
}

#[derive(serde::Deserialize)]
struct ForcedFailure {
    stack: String,
    #[serde(flatten)]
    failure: fidelity::rollback::Failure,
}

/// Tests: the next change set executed on a stack fails on one resource.
async fn force_update_failure(
    State(gateway): State<Arc<Gateway>>,
    axum::Json(forced): axum::Json<ForcedFailure>,
) -> StatusCode {
    gateway.rollbacks.force(&forced.stack, forced.failure);
    StatusCode::NO_CONTENT
}

/// Tests: the next deletion of a stack fails on one resource.
async fn force_delete_failure(
    State(gateway): State<Arc<Gateway>>,
    axum::Json(forced): axum::Json<ForcedFailure>,
) -> StatusCode {
    gateway
        .rollbacks
        .force_delete_failure(&forced.stack, forced.failure);
    StatusCode::NO_CONTENT
}

#[derive(serde::Deserialize)]
struct AccountConcurrency {
    limit: u32,
}

/// Tests: the account's concurrent-executions limit.
async fn set_account_concurrency(
    State(gateway): State<Arc<Gateway>>,
    axum::Json(account): axum::Json<AccountConcurrency>,
) -> Response<Body> {
    gateway.concurrency.set_account_limit(account.limit);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(serde::Deserialize)]
struct ForeignBucket {
    bucket: String,
    owner: String,
}

/// Tests: a bucket of this name exists and belongs to another account.
async fn make_foreign_bucket(
    State(gateway): State<Arc<Gateway>>,
    axum::Json(foreign): axum::Json<ForeignBucket>,
) -> Response<Body> {
    let created = gateway
        .moto_s3
        .create_bucket()
        .bucket(&foreign.bucket)
        .send()
        .await;
    if let Err(error) = created
        && !error
            .as_service_error()
            .is_some_and(|error| error.is_bucket_already_owned_by_you())
    {
        return plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("aws-gateway: creating {}: {error:?}", foreign.bucket),
        );
    }
    if let Ok(mut buckets) = gateway.foreign_buckets.lock() {
        buckets.insert(foreign.bucket, foreign.owner);
    }
    StatusCode::NO_CONTENT.into_response()
}

fn xml_answer(body: impl Into<Body>) -> Response<Body> {
    Response::builder()
        .header(header::CONTENT_TYPE, "text/xml")
        .body(body.into())
        .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "aws-gateway: bad answer"))
}

/// The local Lambda service asks before it runs a function for an AWS service or an anonymous
/// Function URL caller.
#[derive(serde::Deserialize)]
struct WebIdentity {
    role_arn: String,
    subject: String,
    session_name: String,
}

async fn web_identity(
    State(gateway): State<Arc<Gateway>>,
    axum::Json(request): axum::Json<WebIdentity>,
) -> Response<Body> {
    let mut entries = Vec::new();
    let outcome = gateway
        .authorizer
        .assume_role_with_web_identity(&request.role_arn, &request.subject, &mut entries)
        .await;
    gateway.write_log(&entries);
    let issued = || match gateway
        .principals
        .issue(&request.role_arn, &request.session_name)
    {
        Ok(issued) => (StatusCode::OK, serde_json::json!(issued)),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({"code": "InternalFailure", "message": format!("{error:#}")}),
        ),
    };
    let (status, answer) = match outcome {
        Ok(Outcome::Forward) => issued(),
        // Debugging only: the refusal is logged, the session issued anyway.
        Ok(Outcome::Deny(_)) if !gateway.config.enforce => issued(),
        Ok(Outcome::Deny(message)) => (
            StatusCode::FORBIDDEN,
            serde_json::json!({"code": "AccessDenied", "message": message}),
        ),
        Ok(Outcome::Fail { code, message }) => (
            StatusCode::BAD_REQUEST,
            serde_json::json!({"code": code, "message": message}),
        ),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({"code": "InternalFailure", "message": format!("could not decide: {error:#}")}),
        ),
    };
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(answer.to_string()))
        .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "aws-gateway: bad answer"))
}

async fn service_invocation(
    State(gateway): State<Arc<Gateway>>,
    axum::Json(invocation): axum::Json<authorize::ServiceInvocation>,
) -> Response<Body> {
    let mut entries = Vec::new();
    let outcome = match &invocation.access_key_id {
        None => {
            gateway
                .authorizer
                .service_invocation(&invocation, &mut entries)
                .await
        }
        Some(key) => match gateway.principals.lookup(key) {
            None => Ok(Outcome::Deny(
                "The security token included in the request is invalid.".to_string(),
            )),
            Some(principal) => {
                gateway
                    .authorizer
                    .decide(
                        &principal,
                        &table::Check::Function {
                            action: invocation.action.clone(),
                            function: invocation.function_arn.clone(),
                        },
                        &mut entries,
                    )
                    .await
            }
        },
    };
    // Amazon Connect invokes only the functions associated with the instance.
    let outcome = match outcome {
        Ok(Outcome::Forward) if invocation.principal == "connect.amazonaws.com" => {
            let instance = invocation
                .context
                .get("aws:SourceArn")
                .map(String::as_str)
                .unwrap_or_default();
            match gateway
                .connect
                .may_invoke(instance, &invocation.function_arn)
            {
                Ok(()) => Ok(Outcome::Forward),
                Err(reason) => {
                    entries.push(Entry {
                        principal: invocation.principal.clone(),
                        action: invocation.action.clone(),
                        resource: invocation.function_arn.clone(),
                        decision: "deny",
                        deciding: vec![reason.clone()],
                    });
                    Ok(Outcome::Deny(reason))
                }
            }
        }
        outcome => outcome,
    };
    gateway.write_log(&entries);
    let answer = match outcome {
        Ok(Outcome::Forward | Outcome::Fail { .. }) => serde_json::json!({ "allowed": true }),
        Ok(Outcome::Deny(message)) => serde_json::json!({
            "allowed": !gateway.config.enforce,
            "message": message,
        }),
        Err(error) => {
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("aws-gateway: could not decide the invocation: {error:#}"),
            );
        }
    };
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(answer.to_string()))
        .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "aws-gateway: bad answer"))
}

impl Gateway {
    /// S3 on a bucket another account owns (S3 User Guide, "Verifying bucket ownership with
    /// bucket owner condition"): with `x-amz-expected-bucket-owner` naming any other account,
    /// S3 refuses with 403 `AccessDenied`; `CreateBucket` of its name fails with
    /// `BucketAlreadyExists`. Without the header the owner's policy decides, and the squatter's
    /// lets anyone in: the request goes through. `None`: not such a bucket.
    fn foreign_bucket(
        &self,
        protocol: Protocol,
        parts: &axum::http::request::Parts,
    ) -> Option<Response<Body>> {
        if protocol != Protocol::RestXml {
            return None;
        }
        let bucket = parts.uri.path().trim_start_matches('/').split('/').next()?;
        let owner = self.foreign_buckets.lock().ok()?.get(bucket).cloned()?;
        let expected = parts
            .headers
            .get("x-amz-expected-bucket-owner")
            .and_then(|value| value.to_str().ok());
        let creates = parts.method == axum::http::Method::PUT
            && parts.uri.query().is_none()
            && parts.uri.path().trim_matches('/') == bucket;
        if creates {
            return Some(deny::failure(
                protocol,
                "BucketAlreadyExists",
                "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again.",
            ));
        }
        match expected {
            Some(expected) if expected != owner => {
                Some(deny::access_denied(protocol, "Access Denied"))
            }
            _ => None,
        }
    }

    /// The functions whose rollback cannot fetch their previous code: the stack's current
    /// template (moto never saw the failed change set) names code the update replaces, and that
    /// object is gone from S3.
    /// The first log group of the change set an `ExecuteChangeSet` runs whose key CloudWatch
    /// Logs may not use, as the stack resource's failure ([`fidelity::log_keys`]).
    async fn log_key_failure(
        &self,
        operation: &table::Operation,
    ) -> Option<fidelity::rollback::Failure> {
        let (region, account) = (&self.config.region, &self.config.account_id);
        for group in self.log_keys.of_execution(operation) {
            let mut entries = Vec::new();
            let outcome = self
                .authorizer
                .logs_may_use_key(&group.key, &group.arn(region, account), &mut entries)
                .await;
            self.write_log(&entries);
            match outcome {
                Ok(Outcome::Forward) => {}
                Ok(_) => return Some(group.failure(region, account)),
                Err(error) => {
                    eprintln!(
                        "aws-gateway: could not decide the key of log group {}: {error:#}",
                        group.name
                    );
                }
            }
        }
        None
    }

    /// The first resource of the change set an `ExecuteChangeSet` runs whose handler may not do
    /// what it needs as `principal` ([`fidelity::handlers`]).
    async fn handler_failure(
        &self,
        principal: &Principal,
        operation: &table::Operation,
    ) -> Option<fidelity::rollback::Failure> {
        let (stack, template) = self.templates.of_execution(operation)?;
        let previous = self.current_template(&stack).await;
        let changes = fidelity::handlers::changes(previous.as_deref(), &template);
        self.first_denied(principal, &changes).await
    }

    /// For a `DeleteStack` whose resources' delete handlers may not do what they need as
    /// `principal`: the deletion fails on the first of them (`DELETE_FAILED`).
    async fn deletion_denied(&self, principal: &Principal, operation: &table::Operation) {
        if operation.action() != "cloudformation:DeleteStack" {
            return;
        }
        let Some(stack) = operation
            .parameters
            .get("StackName")
            .and_then(serde_json::Value::as_str)
        else {
            return;
        };
        let Some(template) = self.current_template(stack).await else {
            return;
        };
        let changes = fidelity::handlers::deletions(&template);
        if let Some(failure) = self.first_denied(principal, &changes).await {
            self.rollbacks.force_delete_failure(stack, failure);
        }
    }

    async fn current_template(&self, stack: &str) -> Option<String> {
        let stacks = self
            .moto_cloudformation
            .describe_stacks()
            .stack_name(stack)
            .send()
            .await
            .ok()?;
        let status = stacks
            .stacks()
            .first()?
            .stack_status()?
            .as_str()
            .to_string();
        // A stack under review (made by a change set, never executed) or deleted has no
        // resources yet or any more.
        if matches!(status.as_str(), "REVIEW_IN_PROGRESS" | "DELETE_COMPLETE") {
            return None;
        }
        let template = self
            .moto_cloudformation
            .get_template()
            .stack_name(stack)
            .send()
            .await
            .ok()?;
        template.template_body().map(str::to_string)
    }

    async fn first_denied(
        &self,
        principal: &Principal,
        changes: &[fidelity::handlers::Change],
    ) -> Option<fidelity::rollback::Failure> {
        let (region, account) = (&self.config.region, &self.config.account_id);
        for change in changes {
            let needs = self
                .schemas
                .permissions(&change.resource_type, change.handler)
                .and_then(|permissions| {
                    fidelity::handlers::needs(change, &permissions, region, account)
                });
            let needs = match needs {
                Ok(needs) => needs,
                Err(reason) => {
                    return Some(fidelity::handlers::failure(
                        change,
                        &format!(
                            "{reason} by the local cloud, so it is refused (hint: model it in localcloud/aws-gateway/src/fidelity/handlers.rs)"
                        ),
                    ));
                }
            };
            for need in needs {
                if self
                    .schemas
                    .is_not_applicable(&change.resource_type, &need.action)
                {
                    continue;
                }
                let mut entries = Vec::new();
                let outcome = self
                    .authorizer
                    .decide_need(principal, &need, &mut entries)
                    .await;
                self.write_log(&entries);
                match outcome {
                    Ok(Outcome::Deny(message)) if self.config.enforce => {
                        return Some(fidelity::handlers::failure(change, &message));
                    }
                    Ok(_) => {}
                    // The action acts on another resource type than this resource's (a
                    // function's `lambda:GetLayerVersion` is on a layer) or on none, by the
                    // Service Authorization Reference the evaluator carries, or is newer than
                    // it: it serves a property that names another resource, which this
                    // resource does not set.
                    Err(error) if fidelity::handlers::not_applicable(&format!("{error:#}")) => {
                        self.schemas
                            .not_applicable(&change.resource_type, &need.action);
                    }
                    Err(error) => eprintln!(
                        "aws-gateway: could not decide {} for {}: {error:#}",
                        need.action, change.logical_id
                    ),
                }
            }
            if let Some(failure) = self.vpc_role_denied(change).await {
                return Some(failure);
            }
        }
        None
    }

    /// A function put in a VPC whose execution role may not make its network interfaces:
    /// Lambda refuses it ([`fidelity::handlers::vpc_role_needs`]).
    async fn vpc_role_denied(
        &self,
        change: &fidelity::handlers::Change,
    ) -> Option<fidelity::rollback::Failure> {
        let (region, account) = (&self.config.region, &self.config.account_id);
        let (role_name, needs) = fidelity::handlers::vpc_role_needs(change, region, account)?;
        let role = Principal::RoleSession {
            session_arn: format!(
                "arn:aws:sts::{account}:assumed-role/{role_name}/lambda-vpc-check"
            ),
            role_name,
        };
        for need in needs {
            let mut entries = Vec::new();
            let outcome = self
                .authorizer
                .decide_need(&role, &need, &mut entries)
                .await;
            self.write_log(&entries);
            match outcome {
                Ok(Outcome::Deny(_)) if self.config.enforce => {
                    return Some(fidelity::handlers::vpc_role_failure(change, &need.action));
                }
                Ok(_) => {}
                Err(error) => eprintln!(
                    "aws-gateway: could not decide {} for the role of {}: {error:#}",
                    need.action, change.logical_id
                ),
            }
        }
        None
    }

    async fn rollback_blockers(
        &self,
        execution: &fidelity::rollback::Execution,
        failure: &fidelity::rollback::Failure,
    ) -> Vec<fidelity::rollback::Failure> {
        let Ok(current) = self
            .moto_cloudformation
            .get_template()
            .stack_name(&execution.stack)
            .send()
            .await
        else {
            return Vec::new();
        };
        let previous = fidelity::rollback::function_code(current.template_body().unwrap_or(""));
        let mut stuck = Vec::new();
        for (logical_id, code) in
            fidelity::rollback::code_to_restore(execution, &previous, &failure.logical_id)
        {
            let found = self
                .moto_s3
                .head_object()
                .bucket(&code.bucket)
                .key(&code.key)
                .send()
                .await;
            if found.is_err_and(|error| error.as_service_error().is_some_and(|e| e.is_not_found()))
            {
                stuck.push(fidelity::rollback::missing_code(code, logical_id));
            }
        }
        stuck
    }

    async fn forward(
        &self,
        method: &axum::http::Method,
        uri: &axum::http::Uri,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Response<Body> {
        let url = format!(
            "{}{}",
            self.config.moto_url.trim_end_matches('/'),
            uri.path_and_query().map_or("/", |path| path.as_str())
        );
        let mut request = self.http.request(method.clone(), url).body(body);
        for (name, value) in headers {
            if name != header::HOST && name != header::CONTENT_LENGTH {
                request = request.header(name, value);
            }
        }
        let answer = match request.send().await {
            Ok(answer) => answer,
            Err(error) => {
                return plain(
                    StatusCode::BAD_GATEWAY,
                    &format!("aws-gateway: the moto server did not answer: {error}"),
                );
            }
        };
        let mut response = Response::builder().status(answer.status());
        for (name, value) in answer.headers() {
            if name != header::TRANSFER_ENCODING
                && name != header::CONTENT_LENGTH
                && name != header::CONNECTION
            {
                response = response.header(name, value);
            }
        }
        let bytes = answer.bytes().await.unwrap_or_default();
        response
            .body(Body::from(bytes))
            .unwrap_or_else(|_| plain(StatusCode::BAD_GATEWAY, "aws-gateway: bad answer"))
    }

    fn write_log(&self, entries: &[Entry]) {
        let Ok(mut file) = self.log.lock() else {
            return;
        };
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        for entry in entries {
            let mut line = serde_json::to_value(entry).unwrap_or_default();
            line["time"] = now.clone().into();
            let _ = writeln!(file, "{line}");
        }
    }
}

/// Lambda's `GetPolicy` answer with the function policy as Lambda keeps it (see
/// [`policies::with_function_url_conditions`]), so callers see what AWS would show them
/// (`None`: moto's answer stands).
fn function_policy_as_lambda_returns_it(answer: &[u8]) -> Option<Bytes> {
    let mut document = serde_json::from_slice::<serde_json::Value>(answer).ok()?;
    let policy = serde_json::from_str::<serde_json::Value>(document["Policy"].as_str()?).ok()?;
    document["Policy"] = policies::with_function_url_conditions(policy)
        .to_string()
        .into();
    Some(Bytes::from(document.to_string()))
}

/// How a service answers errors when the request could not be read as an operation.
fn fallback_protocol(service: &str) -> Protocol {
    match service {
        "s3" => Protocol::RestXml,
        "dynamodb" => Protocol::Json10,
        "secretsmanager" | "kms" | "logs" => Protocol::Json11,
        "sts" | "iam" | "cloudformation" => Protocol::Query,
        "ec2" => Protocol::Ec2,
        _ => Protocol::Rest,
    }
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(text.to_string()))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}
