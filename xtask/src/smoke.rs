//! `smoke-test`: drives a deployed environment with the events in `tests/events/`, through the
//! Lambda Invoke API (the local Lambda service, or Lambda itself), and checks each answer:
//! phoneLookup → createCase → closeCase → queryCase (Closed) → deleteCase, then the token
//! refresh, a full rotation of the credentials secret, and the OAuth callback.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_sdk_lambda::primitives::Blob;
use serde::Serialize;
use serde_json::{Value, json};

use crate::aws_error::AwsContext;
use crate::cloud::{Cloud, LocalOrg, RotationDriver, ServiceCaller, Target};
use crate::naming::Names;

/// One step's result.
#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    pub name: String,
    /// `passed`, `failed` or `skipped`.
    pub result: &'static str,
    pub millis: f64,
    /// What was checked, the failure, or why it was skipped. Never a secret or a token.
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SmokeReport {
    pub environment: String,
    pub target: Target,
    pub passed: bool,
    pub steps: Vec<StepResult>,
}

/// How long a rotation on AWS may take before the step fails.
const ROTATION_WAIT: Duration = Duration::from_secs(180);

struct Smoke<'a> {
    cloud: &'a Cloud,
    root: &'a Path,
    names: Names,
    /// The Amazon Connect instance of the settings (`connect.instance_arn`): the contact-flow
    /// steps are then invoked as that instance would, with its ARN in the events.
    connect_instance: Option<String>,
    /// The functions that ran (their output must reach their log groups).
    ran: std::sync::Mutex<std::collections::BTreeSet<&'static str>>,
}

/// The steps' results, in order.
#[derive(Default)]
struct Recorder {
    steps: Vec<StepResult>,
    /// The local AWS gateway's decision log: a failed step shows the denials it caused.
    decision_log: Option<std::path::PathBuf>,
}

impl Smoke<'_> {
    fn event(&self, name: &str) -> anyhow::Result<Value> {
        let path = self
            .root
            .join("tests")
            .join("events")
            .join(format!("{name}.json"));
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// A Connect event from `tests/events/` with parameters added (and the instance the
    /// function admits, when it admits one).
    fn connect_event(&self, name: &str, extra: &[(&str, &str)]) -> anyhow::Result<Value> {
        let mut event = self.event(name)?;
        if let Some(instance) = &self.connect_instance
            && let Some(contact) = event
                .pointer_mut("/Details/ContactData")
                .and_then(Value::as_object_mut)
        {
            contact.insert("InstanceARN".to_string(), json!(instance));
        }
        let parameters = event["Details"]["Parameters"]
            .as_object_mut()
            .with_context(|| format!("tests/events/{name}.json has no Details.Parameters"))?;
        for (key, value) in extra {
            parameters.insert((*key).to_string(), json!(value));
        }
        Ok(event)
    }

    /// Invokes the contact-flow function as Amazon Connect would when an instance is configured
    /// (`connect.amazonaws.com`, with the instance's ARN and account as the source), else as
    /// the deployer, as the console's or the CLI's test invocation does.
    async fn invoke_contact_flow(&self, event: &Value) -> anyhow::Result<Value> {
        let Some(instance) = &self.connect_instance else {
            return self.invoke("sf-invoke-api", event).await;
        };
        let connect = ServiceCaller {
            principal: "connect.amazonaws.com",
            action: "lambda:InvokeFunction",
            context: [
                ("aws:SourceArn", instance.clone()),
                ("aws:SourceAccount", self.cloud.account_id.clone()),
            ]
            .into(),
        };
        self.invoke_as("sf-invoke-api", event, &[connect]).await
    }

    /// Invokes a function and returns its JSON answer; a function error is an error naming the
    /// function and the error's type and message.
    async fn invoke(&self, crate_name: &'static str, payload: &Value) -> anyhow::Result<Value> {
        self.invoke_as(crate_name, payload, &[]).await
    }

    /// Invokes a function as `callers` would (EventBridge, Secrets Manager, a Function URL):
    /// on the local target the function's resource policy must allow each of them.
    async fn invoke_as(
        &self,
        crate_name: &'static str,
        payload: &Value,
        callers: &[ServiceCaller],
    ) -> anyhow::Result<Value> {
        let function = self.names.function(crate_name);
        let invoked_by = (!callers.is_empty())
            .then(|| self.cloud.invoked_by(callers))
            .flatten();
        let output = self
            .cloud
            .invoker
            .invoke()
            .function_name(&function)
            .payload(Blob::new(serde_json::to_vec(payload)?))
            .customize()
            .mutate_request(move |request| {
                if let Some((name, value)) = &invoked_by {
                    request.headers_mut().insert(*name, value.clone());
                }
            })
            .send()
            .await
            .aws_context(|| format!("invoking {function}"))?;
        if let Ok(mut ran) = self.ran.lock() {
            ran.insert(crate_name);
        }
        let body = output
            .payload()
            .map(|blob| blob.as_ref())
            .unwrap_or_default();
        let answer: Value = serde_json::from_slice(body).unwrap_or_else(
            |_| json!({"raw": String::from_utf8_lossy(body).chars().take(300).collect::<String>()}),
        );
        if let Some(kind) = output.function_error() {
            bail!(
                "{function} failed ({kind}): {}: {}",
                answer["errorType"].as_str().unwrap_or("unknown"),
                answer["errorMessage"]
                    .as_str()
                    .unwrap_or(&answer.to_string())
            );
        }
        Ok(answer)
    }
}

impl Recorder {
    /// Where the decision log ends now.
    fn log_end(&self) -> u64 {
        self.decision_log
            .as_deref()
            .map_or(0, crate::local::decision_log_end)
    }

    async fn run<T>(
        &mut self,
        name: &str,
        step: impl std::future::Future<Output = anyhow::Result<(T, String)>>,
    ) -> Option<T> {
        let from = self.log_end();
        self.run_from(name, from, None, step).await
    }

    /// Runs a step; when it fails, its detail lists the denials logged since `logged_before`
    /// (of actions starting with `only`, when given).
    async fn run_from<T>(
        &mut self,
        name: &str,
        logged_before: u64,
        only: Option<&str>,
        step: impl std::future::Future<Output = anyhow::Result<(T, String)>>,
    ) -> Option<T> {
        let started = Instant::now();
        let outcome = step.await;
        let millis = started.elapsed().as_secs_f64() * 1000.0;
        let (value, result, detail) = match outcome {
            Ok((value, detail)) => (Some(value), "passed", detail),
            Err(error) => {
                let mut detail = format!("{error:#}");
                let denials: Vec<String> = self
                    .decision_log
                    .as_deref()
                    .map(|log| crate::local::decisions(log, logged_before))
                    .unwrap_or_default()
                    .iter()
                    .filter(|decision| decision["decision"] == "deny")
                    .filter(|decision| {
                        only.is_none_or(|prefix| {
                            decision["action"]
                                .as_str()
                                .is_some_and(|action| action.starts_with(prefix))
                        })
                    })
                    .map(crate::local::decision_line)
                    .collect();
                if !denials.is_empty() {
                    detail.push_str("\ndenied by the local cloud's IAM:\n");
                    detail.push_str(&denials.join("\n"));
                }
                (None, "failed", detail)
            }
        };
        note!(
            "smoke: {name:<14} {result:<7} {millis:>8.1} ms  {}",
            detail.lines().next().unwrap_or_default()
        );
        self.steps.push(StepResult {
            name: name.to_string(),
            result,
            millis,
            detail,
        });
        value
    }

    fn skip(&mut self, name: &str, why: &str) {
        note!("smoke: {name:<14} skipped              {why}");
        self.steps.push(StepResult {
            name: name.to_string(),
            result: "skipped",
            millis: 0.0,
            detail: why.to_string(),
        });
    }
}

/// A string field of a sf-invoke-api answer (its values are strings, as in the original).
fn field<'a>(answer: &'a Value, name: &str) -> anyhow::Result<&'a str> {
    answer[name]
        .as_str()
        .with_context(|| format!("the answer has no {name}: {answer}"))
}

/// `cargo xtask smoke-test`.
pub async fn smoke_test(
    cloud: &Cloud,
    root: &Path,
    environment: &str,
    connect_instance: Option<&str>,
    sample_flow: bool,
) -> anyhow::Result<SmokeReport> {
    let smoke = Smoke {
        cloud,
        root,
        names: Names::new(environment),
        connect_instance: connect_instance.map(str::to_string),
        ran: std::sync::Mutex::default(),
    };
    let mut record = Recorder {
        decision_log: cloud.decision_log().map(Path::to_path_buf),
        ..Recorder::default()
    };
    let began = record.log_end();
    let slack = i64::try_from(cloud.log_delivery().clock_slack.as_millis()).unwrap_or_default();
    let began_at = chrono::Utc::now().timestamp_millis() - slack;
    if let Some(arn) = &smoke.connect_instance {
        record
            .run("association", async {
                let instance = crate::connect::Instance::parse(arn)?;
                let function = smoke.names.function("sf-invoke-api");
                let function_arn = cloud.arn("lambda", &format!("function:{function}"));
                if !crate::connect::is_associated(cloud, &instance, &function_arn).await? {
                    bail!(
                        "{function} is not associated with the Amazon Connect instance {arn}, so no contact flow of it can invoke the function\nhint: run `cargo xtask deploy` again with connect.instance_arn set"
                    );
                }
                Ok(((), format!("{function} is associated with {arn}")))
            })
            .await;
        if sample_flow {
            record
                .run("sampleFlow", async {
                    let instance = crate::connect::Instance::parse(arn)?;
                    let name = smoke.names.sample_flow();
                    let function = smoke.names.function("sf-invoke-api");
                    let function_arn = cloud.arn("lambda", &format!("function:{function}"));
                    let flow = crate::connect::find_flow(cloud, &instance, &name)
                        .await?
                        .with_context(|| {
                            format!("the instance {arn} has no contact flow {name}\nhint: run `cargo xtask deploy` again with connect.sample_flow = true")
                        })?;
                    let content: Value =
                        serde_json::from_str(&crate::connect::flow_content(cloud, &instance, &flow).await?)
                            .with_context(|| format!("the content of {} is not JSON", flow.arn))?;
                    let invoked = crate::render::sample_flow_functions(&content);
                    if invoked.is_empty() || invoked.iter().any(|invoked| *invoked != function_arn) {
                        bail!(
                            "the contact flow {} invokes {invoked:?}, not the deployed {function_arn}\nhint: run `cargo xtask deploy` again",
                            flow.arn
                        );
                    }
                    Ok(((), format!("{} invokes {function_arn}", flow.arn)))
                })
                .await;
        }
    }
    let contact = record
        .run("phoneLookup", async {
            let answer = &smoke
                .invoke_contact_flow(&smoke.connect_event("phoneLookup", &[])?)
                .await?;
            if field(answer, "sf_count")? != "1" {
                bail!("expected one contact, got {answer}");
            }
            let id = field(answer, "Id")?.to_string();
            Ok((id.clone(), format!("contact {id}")))
        })
        .await;
    let case = match contact {
        Some(contact) => {
            record
                .run("createCase", async {
                    let event = &smoke.connect_event("createCase", &[("ContactId", &contact)])?;
                    let answer = smoke.invoke_contact_flow(event).await?;
                    let id = field(&answer, "Id")?.to_string();
                    Ok((id.clone(), format!("case {id}")))
                })
                .await
        }
        None => {
            record.skip("createCase", "needs phoneLookup");
            None
        }
    };
    if let Some(case) = &case {
        record
            .run("closeCase", async {
                let event = smoke.connect_event("closeCase", &[("sf_id", case)])?;
                let answer = smoke.invoke_contact_flow(&event).await?;
                match field(&answer, "Status")? {
                    "204" => Ok(((), "Status 204".to_string())),
                    other => bail!("expected Status 204, got {other}"),
                }
            })
            .await;
        record
            .run("queryCase", async {
                let event = smoke.connect_event("queryCase", &[("CASE_ID", case)])?;
                let answer = smoke.invoke_contact_flow(&event).await?;
                match field(&answer, "Status")? {
                    "Closed" => Ok(((), "the case is Closed".to_string())),
                    other => bail!("expected the case to be Closed, it is {other}"),
                }
            })
            .await;
        record
            .run("deleteCase", async {
                let event = smoke.connect_event("deleteCase", &[("sf_id", case)])?;
                let answer = smoke.invoke_contact_flow(&event).await?;
                match field(&answer, "Response")? {
                    "204" => Ok(((), "deleted; nothing left behind".to_string())),
                    other => bail!("expected Status 204, got {other}"),
                }
            })
            .await;
    } else {
        for name in ["closeCase", "queryCase", "deleteCase"] {
            record.skip(name, "needs createCase");
        }
    }
    record.run("tokenRefresh", token_refresh(&smoke)).await;
    match rotation_enabled(cloud, &smoke.names.credentials_secret()).await {
        Ok(true) => {
            record.run("rotation", rotation(&smoke)).await;
        }
        Ok(false) => record.skip(
            "rotation",
            "rotation is off: only refresh_token credentials are rotated (salesforce.auth_flow)",
        ),
        Err(error) => {
            record
                .run("rotation", async { Err::<((), String), _>(error) })
                .await;
        }
    }
    match cloud.local_org() {
        Some(org) => {
            record
                .run("oauthCallback", oauth_callback(&smoke, &org))
                .await;
        }
        None => record.skip(
            "oauthCallback",
            "needs a browser sign-in on AWS: open the sign-in URL with a signed link (README, OAuth sign-in)",
        ),
    }
    record
        .run_from(
            "logs",
            began,
            Some("logs:"),
            function_logs(&smoke, began_at),
        )
        .await;
    let passed = record.steps.iter().all(|step| step.result != "failed");
    Ok(SmokeReport {
        environment: environment.to_string(),
        target: cloud.target,
        passed,
        steps: record.steps,
    })
}

async fn rotation_enabled(cloud: &Cloud, secret: &str) -> anyhow::Result<bool> {
    let described = cloud
        .clients
        .secrets
        .describe_secret()
        .secret_id(secret)
        .send()
        .await
        .aws_context(|| {
            format!(
                "describing {secret}\nhint: is the environment deployed? run `cargo xtask deploy`"
            )
        })?;
    Ok(described.rotation_enabled() == Some(true))
}

/// The AWSCURRENT version id of a secret (never its value).
async fn current_version(cloud: &Cloud, secret: &str) -> anyhow::Result<String> {
    let described = cloud
        .clients
        .secrets
        .describe_secret()
        .secret_id(secret)
        .send()
        .await
        .aws_context(|| format!("describing {secret}"))?;
    described
        .version_ids_to_stages()
        .into_iter()
        .flatten()
        .find(|(_, stages)| stages.iter().any(|stage| stage == "AWSCURRENT"))
        .map(|(version, _)| version.clone())
        .with_context(|| format!("{secret} has no AWSCURRENT version"))
}

async fn secret_json(cloud: &Cloud, secret: &str) -> anyhow::Result<Value> {
    let output = cloud
        .clients
        .secrets
        .get_secret_value()
        .secret_id(secret)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .aws_context(|| format!("reading {secret}"))?;
    serde_json::from_str(output.secret_string().unwrap_or_default())
        .with_context(|| format!("{secret} does not hold JSON"))
}

async fn token_refresh(smoke: &Smoke<'_>) -> anyhow::Result<((), String)> {
    let secret = smoke.names.session_secret();
    let before = current_version(smoke.cloud, &secret).await?;
    let answer = smoke
        .invoke_as(
            "sf-token-refresh",
            &smoke.event("tokenRefreshSchedule")?,
            &[ServiceCaller {
                principal: "events.amazonaws.com",
                action: "lambda:InvokeFunction",
                context: [
                    (
                        "aws:SourceArn",
                        smoke
                            .cloud
                            .arn("events", &format!("rule/{}", smoke.names.refresh_rule())),
                    ),
                    ("aws:SourceAccount", smoke.cloud.account_id.clone()),
                ]
                .into(),
            }],
        )
        .await?;
    let after = current_version(smoke.cloud, &secret).await?;
    if before == after {
        bail!("the session secret was not updated (answer: {answer})");
    }
    let session = secret_json(smoke.cloud, &secret).await?;
    for key in ["access_token", "instance_url"] {
        if session[key].as_str().is_none_or(str::is_empty) {
            bail!("the stored session has no {key}");
        }
    }
    Ok(((), "a new session is stored".to_string()))
}

/// A full rotation of the credentials secret. Where Secrets Manager runs the four steps (AWS),
/// this waits for the new version; where nobody does (the local cloud), this plays Secrets
/// Manager's part: it stages the version (RotateSecret) and sends the four steps to the
/// function.
async fn rotation(smoke: &Smoke<'_>) -> anyhow::Result<((), String)> {
    let cloud = smoke.cloud;
    let secret = smoke.names.credentials_secret();
    let before = current_version(cloud, &secret).await?;
    let token = uuid_v4();
    let function_arn = cloud
        .lambda
        .get_function_configuration()
        .function_name(smoke.names.function("sf-secret-rotation"))
        .send()
        .await
        .aws_context(|| "reading the rotation function")?
        .function_arn()
        .unwrap_or_default()
        .to_string();
    let started = cloud
        .clients
        .secrets
        .rotate_secret()
        .secret_id(&secret)
        .client_request_token(&token)
        .rotation_lambda_arn(&function_arn)
        .send()
        .await;
    match cloud.rotation_driver() {
        RotationDriver::SecretsManager => {
            started.aws_context(|| "starting the rotation")?;
            let deadline = Instant::now() + ROTATION_WAIT;
            while current_version(cloud, &secret).await? != token {
                if Instant::now() > deadline {
                    bail!(
                        "the rotation did not finish within {} s\nhint: see the log group of the rotation function",
                        ROTATION_WAIT.as_secs()
                    );
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
        RotationDriver::Caller => {
            // The version is staged; the function was not run (expected).
            drop(started);
            let secret_arn = cloud
                .clients
                .secrets
                .describe_secret()
                .secret_id(&secret)
                .send()
                .await
                .aws_context(|| format!("describing {secret}"))?
                .arn()
                .unwrap_or_default()
                .to_string();
            // As Secrets Manager calls it: for this secret, from this account.
            let as_secrets_manager = [ServiceCaller {
                principal: "secretsmanager.amazonaws.com",
                action: "lambda:InvokeFunction",
                context: [
                    ("aws:SourceArn", secret_arn),
                    ("aws:SourceAccount", cloud.account_id.clone()),
                ]
                .into(),
            }];
            for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
                smoke
                    .invoke_as(
                        "sf-secret-rotation",
                        &json!({"Step": step, "SecretId": secret, "ClientRequestToken": token}),
                        &as_secrets_manager,
                    )
                    .await
                    .with_context(|| format!("rotation step {step}"))?;
            }
            let after = current_version(cloud, &secret).await?;
            if after != token {
                bail!("after finishSecret, AWSCURRENT is {after}, not the new version {token}");
            }
        }
    }
    if before == token {
        bail!("the credentials secret did not get a new version");
    }
    Ok(((), "the new version is AWSCURRENT and works".to_string()))
}

/// Every function that ran wrote to its log group since `since` (milliseconds), as Lambda
/// sends a function's output to CloudWatch Logs with the function's own role.
async fn function_logs(smoke: &Smoke<'_>, since: i64) -> anyhow::Result<((), String)> {
    let ran: Vec<&'static str> = smoke
        .ran
        .lock()
        .map(|ran| ran.iter().copied().collect())
        .unwrap_or_default();
    let wait = smoke.cloud.log_delivery().wait;
    let deadline = Instant::now() + wait;
    let mut missing: Vec<String> = Vec::new();
    for function in &ran {
        let group = smoke.names.log_group(function);
        loop {
            let events = smoke
                .cloud
                .logs
                .filter_log_events()
                .log_group_name(&group)
                .start_time(since)
                .into_paginator()
                .send()
                .collect::<Result<Vec<_>, _>>()
                .await
                .map(|pages| pages.iter().any(|page| !page.events().is_empty()));
            match events {
                Ok(true) => break,
                Ok(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Ok(_) => {
                    missing.push(group);
                    break;
                }
                Err(error) => {
                    return Err(error).aws_context(|| format!("reading the log group {group}"));
                }
            }
        }
    }
    if !missing.is_empty() {
        bail!(
            "no output reached {} within {} s of the invocations\nhint: the functions' roles need logs:CreateLogStream and logs:PutLogEvents on their log groups",
            missing.join(", "),
            wait.as_secs()
        );
    }
    Ok((
        (),
        format!("output of {} in CloudWatch Logs", ran.join(", ")),
    ))
}

/// The OAuth web-server flow as a browser runs it: the sign-in link opens `/start`, whose page
/// names the number and posts the link back (from the function's own origin); that sets the
/// nonce cookie and redirects to the emulator's authorize endpoint (PKCE S256); the demo
/// user approves; the callback, with the same browser's cookie, exchanges the code and stores
/// the tokens. The same state brought back again is refused (single-use); the row is then
/// removed.
async fn oauth_callback(smoke: &Smoke<'_>, org: &LocalOrg) -> anyhow::Result<((), String)> {
    let cloud = smoke.cloud;
    let function = smoke.names.function("sf-oauth-callback");
    let url = cloud
        .lambda
        .get_function_url_config()
        .function_name(&function)
        .send()
        .await
        .aws_context(|| format!("reading the Function URL of {function}"))?
        .function_url()
        .to_string();
    // The key the callback verifies links with: its own secret's, which deploy copies from the
    // credentials.
    let client = secret_json(cloud, &smoke.names.oauth_client_secret()).await?;
    let state_key = client["StateSigningKey"]
        .as_str()
        .context("the OAuth client secret has no StateSigningKey")?;
    let wa_id = "whatsapp:+15555550100";
    let now = chrono::Utc::now().timestamp();
    let link = sf_oauth_callback::sign_link(state_key.as_bytes(), wa_id, now)
        .map_err(|error| anyhow::anyhow!("signing the sign-in link: {error:?}"))?;
    let host = url
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    // Through its public Function URL: anyone, with auth type NONE, and only via the URL.
    let url_callers = [
        ServiceCaller {
            principal: "*",
            action: "lambda:InvokeFunctionUrl",
            context: [("lambda:FunctionUrlAuthType", "NONE".to_string())].into(),
        },
        ServiceCaller {
            principal: "*",
            action: "lambda:InvokeFunction",
            context: [("lambda:InvokedViaFunctionUrl", "true".to_string())].into(),
        },
    ];
    let request = |path: &str, query: &str, cookie: Option<&str>| -> anyhow::Result<Value> {
        let mut event = smoke.event("oauthCallback")?;
        event["rawPath"] = json!(path);
        event["requestContext"]["http"]["path"] = json!(path);
        event["rawQueryString"] = json!(query);
        event["queryStringParameters"] = Value::Object(
            url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .map(|(key, value)| (key, json!(value)))
                .collect(),
        );
        event["headers"]["host"] = json!(host);
        event["requestContext"]["domainName"] = json!(host);
        if let Some(cookie) = cookie {
            event["cookies"] = json!([cookie]);
        }
        Ok(event)
    };
    let body = |answer: &Value| {
        answer["body"]
            .as_str()
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect::<String>()
    };

    let link_query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("link", &link)
        .finish();
    let page = smoke
        .invoke_as(
            "sf-oauth-callback",
            &request("/start", &link_query, None)?,
            &url_callers,
        )
        .await?;
    let status = page["statusCode"].as_i64().unwrap_or_default();
    if status != 200 || !page["body"].as_str().unwrap_or_default().contains("<form") {
        bail!(
            "/start answered {status} without its confirmation form: {}",
            body(&page)
        );
    }
    // The button: the same link posted from the page's own origin.
    let mut confirm = request("/start", "", None)?;
    confirm["requestContext"]["http"]["method"] = json!("POST");
    let origin = url::Url::parse(&url)
        .map(|parsed| parsed.origin().ascii_serialization())
        .with_context(|| format!("the Function URL {url} is not a URL"))?;
    confirm["headers"]["origin"] = json!(origin);
    confirm["headers"]["content-type"] = json!("application/x-www-form-urlencoded");
    confirm["body"] = json!(link_query);
    confirm["isBase64Encoded"] = json!(false);
    let started = smoke
        .invoke_as("sf-oauth-callback", &confirm, &url_callers)
        .await?;
    let status = started["statusCode"].as_i64().unwrap_or_default();
    if status != 302 {
        bail!("/start answered {status}: {}", body(&started));
    }
    let location = started["headers"]["location"]
        .as_str()
        .context("/start answered 302 without a Location")?;
    let cookie = started["cookies"][0]
        .as_str()
        .and_then(|cookie| cookie.split(';').next())
        .filter(|cookie| cookie.starts_with(sf_oauth_callback::NONCE_COOKIE))
        .context("/start set no nonce cookie")?
        .to_string();
    let redirect = org.approve(location).await?;
    let query = redirect.query().unwrap_or_default().to_string();
    let callback = request(redirect.path(), &query, Some(&cookie))?;
    let answer = smoke
        .invoke_as("sf-oauth-callback", &callback, &url_callers)
        .await?;
    let status = answer["statusCode"].as_i64().unwrap_or_default();
    if status != 200 {
        bail!("the callback answered {status}: {}", body(&answer));
    }
    // Used states expire on their own: the table deletes an item after its `expires_at`.
    let states = smoke.names.oauth_states_table();
    let ttl = cloud
        .dynamodb
        .describe_time_to_live()
        .table_name(&states)
        .send()
        .await
        .aws_context(|| format!("reading the time to live of {states}"))?;
    let description = ttl.time_to_live_description();
    let status = description
        .and_then(|description| description.time_to_live_status())
        .map(|status| status.as_str().to_string())
        .unwrap_or_default();
    let attribute = description
        .and_then(|description| description.attribute_name())
        .unwrap_or_default();
    if !matches!(status.as_str(), "ENABLED" | "ENABLING") || attribute != "expires_at" {
        bail!(
            "{states} does not expire used sign-ins (time to live {status} on {attribute:?}, expected ENABLED on \"expires_at\")"
        );
    }
    let replay = smoke
        .invoke_as("sf-oauth-callback", &callback, &url_callers)
        .await?;
    let status = replay["statusCode"].as_i64().unwrap_or_default();
    if status != 400 {
        bail!(
            "the same sign-in brought back twice answered {status}, not 400: states are not single-use: {}",
            body(&replay)
        );
    }
    let table = smoke.names.oauth_table();
    let key = aws_sdk_dynamodb::types::AttributeValue::S(wa_id.to_string());
    let item = cloud
        .dynamodb
        .get_item()
        .table_name(&table)
        .key("wa_id", key.clone())
        .send()
        .await
        .aws_context(|| format!("reading {table}"))?;
    if item
        .item()
        .is_none_or(|item| !item.contains_key("access_token"))
    {
        bail!("the callback answered 200 but stored no tokens in {table}");
    }
    cloud
        .dynamodb
        .delete_item()
        .table_name(&table)
        .key("wa_id", key)
        .send()
        .await
        .aws_context(|| format!("removing the test row from {table}"))?;
    Ok((
        (),
        format!(
            "start → authorize (PKCE) → callback: tokens stored in {table} (test row removed); the replay was refused"
        ),
    ))
}

/// A random version id in UUID form, as Secrets Manager's ClientRequestToken.
fn uuid_v4() -> String {
    let bytes: [u8; 16] = rand::random();
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

/// The steps as a table (text output).
pub fn print_table(report: &SmokeReport) {
    println!("{:<14} {:<8} {:>10}  detail", "step", "result", "ms");
    for step in &report.steps {
        println!(
            "{:<14} {:<8} {:>10.1}  {}",
            step.name,
            step.result,
            step.millis,
            step.detail.lines().next().unwrap_or_default()
        );
    }
    println!(
        "{}: {}",
        report.environment,
        if report.passed { "passed" } else { "FAILED" }
    );
}

/// JUnit XML for CI.
pub fn junit(report: &SmokeReport) -> String {
    let escape = |text: &str| {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let failures = report
        .steps
        .iter()
        .filter(|step| step.result == "failed")
        .count();
    let skipped = report
        .steps
        .iter()
        .filter(|step| step.result == "skipped")
        .count();
    let total: f64 = report.steps.iter().map(|step| step.millis).sum::<f64>() / 1000.0;
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"sfstack smoke-test {}\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{total:.3}\">\n",
        escape(&report.environment),
        report.steps.len()
    );
    for step in &report.steps {
        xml.push_str(&format!(
            "  <testcase classname=\"smoke-test\" name=\"{}\" time=\"{:.3}\">",
            escape(&step.name),
            step.millis / 1000.0
        ));
        match step.result {
            "failed" => xml.push_str(&format!(
                "<failure message=\"{}\"/>",
                escape(step.detail.lines().next().unwrap_or_default())
            )),
            "skipped" => xml.push_str(&format!("<skipped message=\"{}\"/>", escape(&step.detail))),
            _ => {}
        }
        xml.push_str("</testcase>\n");
    }
    xml.push_str("</testsuite>\n");
    xml
}
