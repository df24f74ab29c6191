//! `bench`'s figures for the other three functions, each run as Lambda runs it (the release
//! `bootstrap` from its zip under a bench Runtime API, against moto and the emulator): cold
//! start (process start to the first answer), the part of it before the runtime asked for
//! its first event, and peak RSS after a run of warm invocations.
//!
//! - `sf-token-refresh`: the scheduled event; every invocation logs in (JWT bearer) and
//!   stores the session.
//! - `sf-oauth-callback`: `GET /start` with a signed sign-in link, answered with the
//!   confirmation page; the credentials are read in the init phase.
//! - `sf-secret-rotation`: whole rotations of a refresh-token secret, started as Secrets
//!   Manager starts them; the cold start is the first step, `createSecret` (a refresh-token
//!   grant and `PutSecretValue`), and the same process then runs the other three steps.

use std::path::Path;

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::{Value, json};

use super::{Bytes, ColdRun, Timing, cold_start, millis_median, peak_rss_kb, stop, warm_invoke};
use crate::cloud::LocalOrg;

const COLD_STARTS: usize = 20;

/// One function's figures.
#[derive(Debug, Serialize)]
pub struct FunctionFigures {
    pub function: &'static str,
    /// What one invocation does in this bench.
    pub workload: &'static str,
    pub cold_start_median_ms: f64,
    /// Process start to the runtime's first `next` (the init phase), median.
    pub runtime_ready_median_ms: f64,
    pub warm_invocations: usize,
    pub peak_rss_mb: f64,
}

/// What the three measurements share: the functions' AWS variables and a Secrets Manager
/// client for the set-up.
pub struct Setup<'a> {
    pub aws_environment: &'a [(String, String)],
    pub secrets: &'a aws_sdk_secretsmanager::Client,
    pub org: &'a LocalOrg,
    pub jwt_credentials_arn: &'a str,
    pub suffix: u32,
}

impl Setup<'_> {
    fn environment(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut environment = self.aws_environment.to_vec();
        environment.extend(
            extra
                .iter()
                .map(|(key, value)| ((*key).to_string(), (*value).to_string())),
        );
        environment
    }

    async fn create_secret(&self, name: &str, value: &str) -> anyhow::Result<String> {
        super::create_secret(self.secrets, self.suffix, name, value).await
    }
}

/// `COLD_STARTS` cold starts answering `event`, then one process through `warm` more
/// invocations; each answer must pass `check`. Returns the cold starts and the warm process's
/// peak RSS in KB.
async fn cold_then_warm(
    bootstrap: &Path,
    function: &str,
    environment: &[(String, String)],
    event: &Bytes,
    warm: usize,
    check: impl Fn(&Bytes) -> anyhow::Result<()>,
) -> anyhow::Result<(Vec<Timing>, u64)> {
    let mut cold = Vec::with_capacity(COLD_STARTS);
    for _ in 0..COLD_STARTS {
        let mut run = cold_start(bootstrap, function, environment, event).await?;
        stop(&mut run.child);
        check(&run.answer)?;
        cold.push(run.timing);
    }
    let ColdRun {
        mut runtime,
        mut child,
        ..
    } = cold_start(bootstrap, function, environment, event).await?;
    for _ in 0..warm {
        let checked = match warm_invoke(&mut runtime, event).await {
            Ok(body) => check(&body),
            Err(error) => Err(error),
        };
        if let Err(error) = checked {
            stop(&mut child);
            return Err(error);
        }
    }
    let rss = peak_rss_kb(child.id()).unwrap_or_default();
    stop(&mut child);
    Ok((cold, rss))
}

fn figures(
    function: &'static str,
    workload: &'static str,
    cold: &[Timing],
    warm_invocations: usize,
    peak_rss_kb: u64,
) -> FunctionFigures {
    FunctionFigures {
        function,
        workload,
        cold_start_median_ms: millis_median(cold.iter().map(|timing| timing.total)),
        runtime_ready_median_ms: millis_median(cold.iter().map(|timing| timing.ready)),
        warm_invocations,
        peak_rss_mb: peak_rss_kb as f64 / 1024.0,
    }
}

pub async fn token_refresh(
    bootstrap: &Path,
    setup: &Setup<'_>,
    event: &Bytes,
) -> anyhow::Result<FunctionFigures> {
    const FUNCTION: &str = "sf-token-refresh";
    const WARM: usize = 200;
    let session_arn = setup.create_secret("refresh-session", "{}").await?;
    let environment = setup.environment(&[
        ("SF_CREDENTIALS_SECRET_ARN", setup.jwt_credentials_arn),
        ("SF_SESSION_SECRET_ARN", &session_arn),
    ]);
    let (cold, rss) =
        cold_then_warm(bootstrap, FUNCTION, &environment, event, WARM, |_| Ok(())).await?;
    Ok(figures(
        FUNCTION,
        "scheduled refresh: JWT login + PutSecretValue",
        &cold,
        WARM,
        rss,
    ))
}

pub async fn oauth_callback(
    bootstrap: &Path,
    setup: &Setup<'_>,
) -> anyhow::Result<FunctionFigures> {
    const FUNCTION: &str = "sf-oauth-callback";
    const WARM: usize = 1000;
    let document = setup.org.demo_credentials("jwt").await?;
    let state_key = serde_json::from_str::<Value>(&document)?["StateSigningKey"]
        .as_str()
        .context("the demo credentials have no StateSigningKey")?
        .to_string();
    let credentials_arn = setup
        .create_secret("callback-credentials", &document)
        .await?;
    let environment = setup.environment(&[
        ("SF_CREDENTIALS_SECRET_ARN", &credentials_arn),
        ("OAUTH_REDIRECT_URI", sf_emulator::DEMO_CALLBACK_URL),
        ("OAUTH_TOKENS_TABLE", "sfstack-bench-tokens"),
        ("OAUTH_STATES_TABLE", "sfstack-bench-states"),
    ]);
    let now = chrono::Utc::now().timestamp();
    let link = sf_oauth_callback::sign_link(state_key.as_bytes(), "whatsapp:+15555550100", now)
        .context("signing the bench's sign-in link")?;
    let query: String = form_urlencoded_pair("link", &link);
    let event = Bytes::from(
        json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": "/start",
            "rawQueryString": query,
            "headers": {"host": "bench.lambda-url.us-east-1.on.aws", "accept": "text/html"},
            "queryStringParameters": {"link": link},
            "requestContext": {
                "accountId": "anonymous",
                "apiId": "bench",
                "domainName": "bench.lambda-url.us-east-1.on.aws",
                "domainPrefix": "bench",
                "http": {"method": "GET", "path": "/start", "protocol": "HTTP/1.1",
                         "sourceIp": "203.0.113.10", "userAgent": "bench"},
                "requestId": "bench",
                "routeKey": "$default",
                "stage": "$default",
                "time": "01/Jan/2026:00:00:00 +0000",
                "timeEpoch": now * 1000
            },
            "isBase64Encoded": false
        })
        .to_string(),
    );
    let check = |body: &Bytes| -> anyhow::Result<()> {
        let answer: Value =
            serde_json::from_slice(body).context("parsing the function's answer")?;
        if answer["statusCode"] != 200 {
            bail!("sf-oauth-callback answered {answer}");
        }
        Ok(())
    };
    let (cold, rss) =
        cold_then_warm(bootstrap, FUNCTION, &environment, &event, WARM, check).await?;
    Ok(figures(
        FUNCTION,
        "GET /start with a signed link: the confirmation page",
        &cold,
        WARM,
        rss,
    ))
}

fn form_urlencoded_pair(key: &str, value: &str) -> String {
    let encode = |text: &str| {
        percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    format!("{}={}", encode(key), encode(value))
}

pub async fn secret_rotation(
    bootstrap: &Path,
    setup: &Setup<'_>,
) -> anyhow::Result<FunctionFigures> {
    const FUNCTION: &str = "sf-secret-rotation";
    const WARM_ROTATIONS: usize = 50;
    let document = setup.org.demo_credentials("refresh_token").await?;
    let arn = setup
        .create_secret("rotating-credentials", &document)
        .await?;
    setup
        .secrets
        .rotate_secret()
        .secret_id(&arn)
        .rotation_rules(
            aws_sdk_secretsmanager::types::RotationRulesType::builder()
                .automatically_after_days(30)
                .build(),
        )
        .rotate_immediately(false)
        .send()
        .await
        .context("enabling rotation on the bench's secret")?;
    let environment = setup.environment(&[]);
    let mut rotation = 0;
    let mut next_rotation = || {
        rotation += 1;
        format!("{:032}-{rotation:08}", setup.suffix)
    };
    let mut cold = Vec::with_capacity(COLD_STARTS);
    for _ in 0..COLD_STARTS {
        let token = next_rotation();
        begin_rotation(setup.secrets, &arn, &token).await?;
        let mut run = cold_start(
            bootstrap,
            FUNCTION,
            &environment,
            &step_event(&arn, &token, "createSecret"),
        )
        .await?;
        let rest = finish_rotation(&mut run.runtime, &arn, &token).await;
        stop(&mut run.child);
        rest?;
        cold.push(run.timing);
    }
    let token = next_rotation();
    begin_rotation(setup.secrets, &arn, &token).await?;
    let ColdRun {
        mut runtime,
        mut child,
        ..
    } = cold_start(
        bootstrap,
        FUNCTION,
        &environment,
        &step_event(&arn, &token, "createSecret"),
    )
    .await?;
    let mut outcome = finish_rotation(&mut runtime, &arn, &token).await;
    for _ in 1..WARM_ROTATIONS {
        if outcome.is_err() {
            break;
        }
        let token = next_rotation();
        outcome = match begin_rotation(setup.secrets, &arn, &token).await {
            Ok(()) => {
                match warm_invoke(&mut runtime, &step_event(&arn, &token, "createSecret")).await {
                    Ok(_) => finish_rotation(&mut runtime, &arn, &token).await,
                    Err(error) => Err(error),
                }
            }
            Err(error) => Err(error),
        };
    }
    let rss = peak_rss_kb(child.id()).unwrap_or_default();
    stop(&mut child);
    outcome?;
    Ok(figures(
        FUNCTION,
        "whole rotations of a refresh-token secret (cold start: createSecret)",
        &cold,
        WARM_ROTATIONS * 4,
        rss,
    ))
}

fn step_event(arn: &str, token: &str, step: &str) -> Bytes {
    Bytes::from(json!({"Step": step, "SecretId": arn, "ClientRequestToken": token}).to_string())
}

/// Starts a rotation the way Secrets Manager does: a new version, staged `AWSPENDING`, whose
/// id is the token. moto stages it and then reports that it cannot invoke the rotation
/// function, which is expected here: the bench invokes it.
async fn begin_rotation(
    secrets: &aws_sdk_secretsmanager::Client,
    arn: &str,
    token: &str,
) -> anyhow::Result<()> {
    let _expected_failure = secrets
        .rotate_secret()
        .secret_id(arn)
        .client_request_token(token)
        .rotation_lambda_arn(
            "arn:aws:lambda:us-east-1:123456789012:function:sfstack-bench-rotation",
        )
        .send()
        .await;
    let described = secrets
        .describe_secret()
        .secret_id(arn)
        .send()
        .await
        .context("describing the bench's rotating secret")?;
    let staged = described
        .version_ids_to_stages()
        .and_then(|versions| versions.get(token))
        .is_some_and(|stages| stages.iter().any(|stage| stage == "AWSPENDING"));
    if !staged {
        bail!("moto did not stage the rotation's version {token} AWSPENDING");
    }
    Ok(())
}

async fn finish_rotation(
    runtime: &mut super::Runtime,
    arn: &str,
    token: &str,
) -> anyhow::Result<()> {
    for step in ["setSecret", "testSecret", "finishSecret"] {
        warm_invoke(runtime, &step_event(arn, token, step))
            .await
            .with_context(|| format!("rotation step {step}"))?;
    }
    Ok(())
}
