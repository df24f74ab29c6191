//! Decides one AWS request as IAM would, by asking the IAM simulator
//! (`@cloud-copilot/iam-simulate`, AGPL-3.0) that runs in a Node sidecar process
//! (`evaluator/sidecar.mjs`) speaking JSON lines over stdin/stdout. The library is never linked:
//! it is installed on first use by [`pytools::ensure_node_tools`] into `target/tools/iam-simulate`.
//!
//! One [`Evaluator`] (a cheap-to-clone handle) serves any number of concurrent
//! [`Evaluator::evaluate`] calls: each request line carries an id, a reader task hands each answer
//! line to the call waiting for that id (answers can come back out of order).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// The sidecar's source, carried by this crate so that the protocol always matches; written
/// next to the installed `node_modules` (ES modules resolve packages from the script's folder).
const SIDECAR_SOURCE: &str = include_str!("../evaluator/sidecar.mjs");
const SIDECAR_FILE: &str = "aws-gateway-sidecar.mjs";
/// How long the sidecar may take to load the library (a cold start takes well under a second).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one answer may take before the call gives up (one takes well under a millisecond).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Who makes the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An IAM user or role ARN, the account root, or an STS session such as
    /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
    Arn(String),
    /// An AWS service principal such as `lambda.amazonaws.com`.
    Service(String),
    /// An unsigned request (e.g. to a Lambda function URL with auth type `NONE`).
    Anonymous,
}

/// One request to decide, with the policies that apply to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Simulation {
    pub principal: Principal,
    /// `service:Action`, e.g. `secretsmanager:GetSecretValue`.
    pub action: String,
    /// The resource's ARN, or `*` for actions that take no resource (e.g. list actions).
    pub resource_arn: String,
    /// The account that owns the resource.
    pub resource_account: String,
    /// Request context keys (`aws:SourceArn`, `kms:ViaService`, ...); one value is sent as a
    /// string, several as an array. Keys that do not apply to the action are ignored and
    /// reported in [`Decision::ignored_context_keys`].
    pub context: BTreeMap<String, Vec<String>>,
    /// The principal's identity policies as (name, policy document).
    pub identity_policies: Vec<(String, Value)>,
    /// The resource's policy: the key policy for `kms:` actions (without one, KMS denies), the
    /// function policy for Lambda, the secret's resource policy, ...
    pub resource_policy: Option<Value>,
}

/// Serializes to the library's `Simulation` shape.
impl Serialize for Simulation {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Context<'a>(&'a BTreeMap<String, Vec<String>>);
        impl Serialize for Context<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(self.0.len()))?;
                for (key, values) in self.0 {
                    match values.as_slice() {
                        [single] => map.serialize_entry(key, single)?,
                        many => map.serialize_entry(key, many)?,
                    }
                }
                map.end()
            }
        }
        #[derive(Serialize)]
        struct Policy<'a> {
            name: &'a str,
            policy: &'a Value,
        }
        let principal = match &self.principal {
            Principal::Arn(name) | Principal::Service(name) => Value::from(name.as_str()),
            Principal::Anonymous => serde_json::json!({ "type": "Anonymous" }),
        };
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry(
            "request",
            &serde_json::json!({
                "principal": principal,
                "action": self.action,
                "resource": { "resource": self.resource_arn, "accountId": self.resource_account },
                "contextVariables": serde_json::to_value(Context(&self.context))
                    .map_err(serde::ser::Error::custom)?,
            }),
        )?;
        let identity_policies: Vec<Policy<'_>> = self
            .identity_policies
            .iter()
            .map(|(name, policy)| Policy { name, policy })
            .collect();
        map.serialize_entry("identityPolicies", &identity_policies)?;
        map.serialize_entry("serviceControlPolicies", &[(); 0])?;
        map.serialize_entry("resourceControlPolicies", &[(); 0])?;
        if let Some(policy) = &self.resource_policy {
            map.serialize_entry("resourcePolicy", policy)?;
        }
        map.end()
    }
}

/// IAM's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Verdict {
    Allowed,
    /// A `Deny` statement matched.
    ExplicitlyDenied,
    /// No statement allowed the request (or one policy that must allow did not).
    ImplicitlyDenied,
}

/// The verdict with the statements that decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    /// The deciding statements as readable labels: for an allowed request the granting ones
    /// (`identity policy sfstack statement 2 (Sid ReadCredentials)`, `resource policy statement
    /// 1 (Sid EnableIAM)`), for a denied one the denying ones, or for an implicit denial the
    /// policies that did not allow (`identity policies: no statement allows`).
    pub statements: Vec<String>,
    /// Context keys of the request that do not apply to this action and were left out.
    pub ignored_context_keys: Vec<String>,
    /// The kinds of policy that denied, in the library's words (`identity`, `resource`, `pb`,
    /// `scp`, `rcp`, `vpce`, `s3-bpa`); empty when allowed.
    pub denied_by: Vec<String>,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        self.verdict == Verdict::Allowed
    }
}

/// A handle on the running sidecar; clones share it. The sidecar is killed when the last handle
/// is dropped.
#[derive(Clone)]
pub struct Evaluator {
    inner: Arc<Inner>,
}

struct Inner {
    /// Request lines for the writer task, which owns the sidecar's stdin (a call cancelled
    /// mid-write can thus never leave half a line behind).
    requests: mpsc::UnboundedSender<String>,
    waiting: Arc<Mutex<Waiting>>,
    next_id: AtomicU64,
    /// The sidecar's process id.
    pid: Option<u32>,
    /// Owns the child process (`kill_on_drop`): aborting it on drop ends the sidecar.
    reader: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

#[derive(Default)]
struct Waiting {
    calls: HashMap<u64, oneshot::Sender<Answer>>,
    /// Set once the sidecar's stdout ended: why it died.
    died: Option<String>,
}

/// One line of the sidecar's stdout.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    id: Option<u64>,
    #[serde(default)]
    ready: bool,
    #[serde(default)]
    ok: bool,
    decision: Option<Verdict>,
    #[serde(default)]
    grants: Vec<Reason>,
    #[serde(default)]
    denials: Vec<Reason>,
    #[serde(default)]
    ignored_context_keys: Vec<String>,
    error: Option<Value>,
}

/// A granting or denying reason from `getGrantReasons`/`getDenialReasons`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Reason {
    policy_type: String,
    policy_identifier: Option<String>,
    org_identifier: Option<String>,
    statement_id: Option<String>,
    statement_index: Option<u64>,
}

impl Reason {
    fn label(&self) -> String {
        let kind = match self.policy_type.as_str() {
            "identity" => "identity policy",
            "resource" => "resource policy",
            "pb" => "permissions boundary",
            "scp" => "service control policy",
            "rcp" => "resource control policy",
            "vpce" => "VPC endpoint policy",
            "s3-bpa" => "S3 Block Public Access",
            other => other,
        };
        let Some(index) = self.statement_index else {
            // An implicit denial: no statement of this kind of policy allows.
            let plural = if self.policy_type == "identity" {
                "identity policies"
            } else {
                kind
            };
            return format!("{plural}: no statement allows");
        };
        let mut label = kind.to_owned();
        for name in [&self.policy_identifier, &self.org_identifier]
            .into_iter()
            .flatten()
        {
            label.push(' ');
            label.push_str(name);
        }
        label.push_str(&format!(" statement {index}"));
        if let Some(sid) = &self.statement_id {
            label.push_str(&format!(" (Sid {sid})"));
        }
        label
    }
}

/// KMS's encryption-context condition keys are `kms:EncryptionContext:<key>`, the variable part
/// after a colon (`kms:EncryptionContext:aws:logs:arn`). iam-simulate 0.1.173 recognises
/// variable condition keys only after a slash (`aws:PrincipalTag/<key>`), so it would ignore the
/// request's encryption context and no policy conditioned on it could ever allow. The gateway
/// renames each such key, in the request's context and in every policy's conditions alike, to
/// a stand-in of the slash form the library evaluates (`aws:RequestTag/kms-encryption-context/
/// <key>`); the condition operators and values are untouched, so the decision is the one AWS
/// would make. `kms:EncryptionContextKeys` (no variable part) is left as it is. The claims of a
/// GitHub Actions token (`token.actions.githubusercontent.com:sub`, `…:aud`), which the library
/// does not know as condition keys of `sts:AssumeRoleWithWebIdentity`, get stand-ins the same
/// way (`aws:RequestTag/oidc/<key>`).
fn with_encryption_context_stand_ins(simulation: &Simulation) -> Simulation {
    const PREFIX: &str = "kms:encryptioncontext:";
    const OIDC: &str = "token.actions.githubusercontent.com:";
    fn stand_in(key: &str) -> Option<String> {
        let lower = key.to_ascii_lowercase();
        if lower.starts_with(OIDC) {
            return Some(format!("aws:RequestTag/oidc/{lower}"));
        }
        lower.starts_with(PREFIX).then(|| {
            format!(
                "aws:RequestTag/kms-encryption-context/{}",
                &key[PREFIX.len()..]
            )
        })
    }
    fn in_policy(policy: &Value) -> Value {
        let mut policy = policy.clone();
        let statements = match policy.get_mut("Statement") {
            Some(Value::Array(statements)) => statements.iter_mut().collect::<Vec<_>>(),
            Some(statement @ Value::Object(_)) => vec![statement],
            _ => Vec::new(),
        };
        for statement in statements {
            let Some(Value::Object(operators)) = statement.get_mut("Condition") else {
                continue;
            };
            for (_, keys) in operators.iter_mut() {
                let Value::Object(keys) = keys else { continue };
                let renamed: serde_json::Map<String, Value> = std::mem::take(keys)
                    .into_iter()
                    .map(|(key, value)| (stand_in(&key).unwrap_or(key), value))
                    .collect();
                *keys = renamed;
            }
        }
        policy
    }
    Simulation {
        principal: simulation.principal.clone(),
        action: simulation.action.clone(),
        resource_arn: simulation.resource_arn.clone(),
        resource_account: simulation.resource_account.clone(),
        context: simulation
            .context
            .iter()
            .map(|(key, values)| (stand_in(key).unwrap_or_else(|| key.clone()), values.clone()))
            .collect(),
        identity_policies: simulation
            .identity_policies
            .iter()
            .map(|(name, policy)| (name.clone(), in_policy(policy)))
            .collect(),
        resource_policy: simulation.resource_policy.as_ref().map(in_policy),
    }
}

impl Evaluator {
    /// Installs the simulator on first use, starts the sidecar and waits until it is ready.
    pub async fn start() -> anyhow::Result<Evaluator> {
        let script = tokio::task::spawn_blocking(|| -> anyhow::Result<_> {
            let dir = pytools::ensure_node_tools()?;
            let script = dir.join(SIDECAR_FILE);
            write_if_changed(&script, SIDECAR_SOURCE)?;
            Ok(script)
        })
        .await
        .context("installing the IAM evaluator")??;
        let mut child = Command::new("node")
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting `node` for the IAM evaluator\nhint: install Node.js 18 or newer (node and npm)")?;
        let stdin = child.stdin.take().context("the sidecar's stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().context("the sidecar's stdout")?);
        let mut line = String::new();
        let read = tokio::time::timeout(READY_TIMEOUT, stdout.read_line(&mut line))
            .await
            .with_context(|| format!("the IAM evaluator was not ready after {READY_TIMEOUT:?}"))?
            .context("reading the IAM evaluator's ready line")?;
        if read == 0 {
            let status = child.wait().await.ok();
            bail!(
                "the IAM evaluator ({}) exited before it was ready ({}); its stderr is above",
                script.display(),
                describe_exit(status)
            );
        }
        match serde_json::from_str::<Answer>(&line) {
            Ok(answer) if answer.ready => {}
            _ => bail!("the IAM evaluator's first line was not {{\"ready\":true}} but {line:?}"),
        }
        let waiting = Arc::new(Mutex::new(Waiting::default()));
        let pid = child.id();
        let reader = tokio::spawn(read_answers(child, stdout, waiting.clone()));
        let (requests, lines) = mpsc::unbounded_channel();
        tokio::spawn(write_requests(stdin, lines));
        Ok(Evaluator {
            inner: Arc::new(Inner {
                requests,
                waiting,
                next_id: AtomicU64::new(1),
                pid,
                reader,
            }),
        })
    }

    /// Decides one request. Errors when the simulator rejects the simulation (e.g. an unknown
    /// action: `invalid.action`) or when the sidecar is gone.
    pub async fn evaluate(&self, simulation: &Simulation) -> anyhow::Result<Decision> {
        let simulation = &with_encryption_context_stand_ins(simulation);
        let what = || format!("{} on {}", simulation.action, simulation.resource_arn);
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let mut line = serde_json::to_string(&Request { id, simulation })?;
        line.push('\n');
        let (sender, receiver) = oneshot::channel();
        {
            let mut waiting = self.waiting();
            if let Some(died) = &waiting.died {
                bail!(
                    "the IAM evaluator sidecar died ({died}); cannot decide {}",
                    what()
                );
            }
            waiting.calls.insert(id, sender);
        }
        if self.inner.requests.send(line).is_err() {
            self.waiting().calls.remove(&id);
            let died = self.waiting().died.clone();
            bail!(
                "the IAM evaluator sidecar died ({}); cannot decide {}",
                died.as_deref().unwrap_or("writing to its stdin failed"),
                what()
            );
        }
        let answer = match tokio::time::timeout(ANSWER_TIMEOUT, receiver).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => {
                let died = self.waiting().died.clone();
                bail!(
                    "the IAM evaluator sidecar died ({}) before deciding {}",
                    died.as_deref().unwrap_or("unknown reason"),
                    what()
                );
            }
            Err(_) => {
                self.waiting().calls.remove(&id);
                bail!(
                    "the IAM evaluator did not answer within {ANSWER_TIMEOUT:?} for {}",
                    what()
                );
            }
        };
        if !answer.ok {
            bail!(
                "the IAM simulator rejected {}: {}",
                what(),
                describe_error(answer.error.as_ref())
            );
        }
        let verdict = answer
            .decision
            .ok_or_else(|| anyhow!("the IAM evaluator's answer for {} has no decision", what()))?;
        let reasons = if verdict == Verdict::Allowed {
            &answer.grants
        } else {
            &answer.denials
        };
        let mut denied_by: Vec<String> = Vec::new();
        if verdict != Verdict::Allowed {
            for denial in &answer.denials {
                if !denied_by.contains(&denial.policy_type) {
                    denied_by.push(denial.policy_type.clone());
                }
            }
        }
        Ok(Decision {
            verdict,
            statements: reasons.iter().map(Reason::label).collect(),
            ignored_context_keys: answer.ignored_context_keys,
            denied_by,
        })
    }

    /// The sidecar's process id, for logs.
    pub fn pid(&self) -> Option<u32> {
        self.inner.pid
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.inner
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Serialize)]
struct Request<'a> {
    id: u64,
    simulation: &'a Simulation,
}

/// Writes the request lines to the sidecar's stdin; ends (closing stdin, which ends the sidecar)
/// when the last [`Evaluator`] handle is dropped or a write fails.
async fn write_requests(mut stdin: ChildStdin, mut lines: mpsc::UnboundedReceiver<String>) {
    while let Some(line) = lines.recv().await {
        if let Err(error) = stdin.write_all(line.as_bytes()).await {
            eprintln!("aws-gateway: writing to the IAM evaluator failed: {error}");
            return;
        }
    }
}

/// Hands each answer line to the call waiting for its id; when stdout ends, records why and
/// fails every waiting call (dropping its sender).
async fn read_answers(
    mut child: Child,
    stdout: BufReader<ChildStdout>,
    waiting: Arc<Mutex<Waiting>>,
) {
    let mut lines = stdout.lines();
    let ended = loop {
        match lines.next_line().await {
            Ok(Some(line)) => match serde_json::from_str::<Answer>(&line) {
                Ok(answer) => {
                    let sender = answer.id.and_then(|id| {
                        waiting
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .calls
                            .remove(&id)
                    });
                    match sender {
                        Some(sender) => {
                            let _ = sender.send(answer);
                        }
                        // A call that timed out, or an answer to a line it could not parse.
                        None => eprintln!("aws-gateway: unexpected IAM evaluator answer: {line}"),
                    }
                }
                Err(error) => {
                    eprintln!("aws-gateway: unreadable IAM evaluator line ({error}): {line}")
                }
            },
            Ok(None) => break "its stdout ended".to_owned(),
            Err(error) => break format!("reading its stdout failed: {error}"),
        }
    };
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .ok()
        .and_then(Result::ok);
    let mut waiting = waiting.lock().unwrap_or_else(PoisonError::into_inner);
    waiting.died = Some(format!("{ended}, {}", describe_exit(status)));
    waiting.calls.clear();
}

fn describe_exit(status: Option<ExitStatus>) -> String {
    match status {
        Some(status) => format!("exit status {status}"),
        None => "exit status unknown".to_owned(),
    }
}

/// The library's error object as text: its message (`invalid.action`, ...) and any details.
fn describe_error(error: Option<&Value>) -> String {
    let Some(Value::Object(fields)) = error else {
        return format!("{}", error.unwrap_or(&Value::Null));
    };
    let mut text = fields
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("no message")
        .to_owned();
    for (key, value) in fields.iter().filter(|(key, _)| *key != "message") {
        match value {
            // The stack of a sidecar.exception: its first line says what happened.
            Value::String(detail) => {
                text.push_str(&format!(
                    " ({key}: {})",
                    detail.lines().next().unwrap_or("")
                ));
            }
            other => text.push_str(&format!(" ({key}: {other})")),
        }
    }
    text
}

/// Writes `text` to `path` unless it is already there, atomically (write to a temporary file,
/// then rename) so that parallel processes never start a half-written script.
fn write_if_changed(path: &Path, text: &str) -> anyhow::Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|current| current == text) {
        return Ok(());
    }
    let temporary = path.with_extension(format!("mjs.{}.tmp", std::process::id()));
    std::fs::write(&temporary, text).with_context(|| format!("writing {}", temporary.display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Instant;

    use serde_json::json;

    use super::*;

    const ACCOUNT: &str = "111122223333";
    const ROLE_SESSION: &str = "arn:aws:sts::111122223333:assumed-role/app-role/session-1";
    const SECRET: &str = "arn:aws:secretsmanager:us-east-1:111122223333:secret:db-pass-AbCdEf";
    const OTHER_SECRET: &str = "arn:aws:secretsmanager:us-east-1:111122223333:secret:other-XyZ123";
    const KEY: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    const FUNCTION: &str = "arn:aws:lambda:us-east-1:111122223333:function:sf-invoke-api";
    const RULE: &str = "arn:aws:events:us-east-1:111122223333:rule/sf-token-refresh";

    fn simulation(principal: Principal, action: &str, resource: &str) -> Simulation {
        Simulation {
            principal,
            action: action.to_owned(),
            resource_arn: resource.to_owned(),
            resource_account: ACCOUNT.to_owned(),
            context: BTreeMap::new(),
            identity_policies: Vec::new(),
            resource_policy: None,
        }
    }

    fn with_context(mut simulation: Simulation, key: &str, value: &str) -> Simulation {
        simulation
            .context
            .insert(key.to_owned(), vec![value.to_owned()]);
        simulation
    }

    fn read_secret(resource: &str) -> Simulation {
        let mut simulation = simulation(
            Principal::Arn(ROLE_SESSION.to_owned()),
            "secretsmanager:GetSecretValue",
            resource,
        );
        simulation.identity_policies.push((
            "sfstack".to_owned(),
            json!({ "Version": "2012-10-17", "Statement": [
                { "Sid": "Logs", "Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": "*" },
                { "Sid": "ReadCredentials", "Effect": "Allow",
                  "Action": "secretsmanager:GetSecretValue", "Resource": SECRET },
            ]}),
        ));
        simulation
    }

    fn decrypt(key_policy_statements: Vec<Value>) -> Simulation {
        let mut simulation =
            simulation(Principal::Arn(ROLE_SESSION.to_owned()), "kms:Decrypt", KEY);
        simulation.identity_policies.push((
            "sfstack".to_owned(),
            json!({ "Version": "2012-10-17", "Statement": [{
                "Sid": "DecryptViaSecretsManager", "Effect": "Allow", "Action": "kms:Decrypt",
                "Resource": KEY,
                "Condition": { "StringEquals": {
                    "kms:ViaService": "secretsmanager.us-east-1.amazonaws.com" } },
            }]}),
        ));
        simulation.resource_policy =
            Some(json!({ "Version": "2012-10-17", "Statement": key_policy_statements }));
        simulation
    }

    fn invoke_from_rule(rule: &str) -> Simulation {
        let mut simulation = simulation(
            Principal::Service("events.amazonaws.com".to_owned()),
            "lambda:InvokeFunction",
            FUNCTION,
        );
        simulation.resource_policy = Some(json!({ "Version": "2012-10-17", "Id": "default",
        "Statement": [{
            "Sid": "events-invoke", "Effect": "Allow",
            "Principal": { "Service": "events.amazonaws.com" },
            "Action": "lambda:InvokeFunction", "Resource": FUNCTION,
            "Condition": { "ArnLike": { "AWS:SourceArn": RULE } },
        }]}));
        with_context(
            with_context(simulation, "aws:SourceArn", rule),
            "aws:SourceAccount",
            ACCOUNT,
        )
    }

    #[test]
    fn serializes_to_the_library_shape() {
        let mut simulation = simulation(Principal::Anonymous, "lambda:InvokeFunctionUrl", FUNCTION);
        simulation
            .context
            .insert("lambda:FunctionUrlAuthType".into(), vec!["NONE".into()]);
        simulation
            .context
            .insert("aws:TagKeys".into(), vec!["a".into(), "b".into()]);
        simulation
            .identity_policies
            .push(("p".into(), json!({ "Statement": [] })));
        assert_eq!(
            serde_json::to_value(&simulation).unwrap(),
            json!({
                "request": {
                    "principal": { "type": "Anonymous" },
                    "action": "lambda:InvokeFunctionUrl",
                    "resource": { "resource": FUNCTION, "accountId": ACCOUNT },
                    "contextVariables": {
                        "aws:TagKeys": ["a", "b"], "lambda:FunctionUrlAuthType": "NONE" },
                },
                "identityPolicies": [{ "name": "p", "policy": { "Statement": [] } }],
                "serviceControlPolicies": [],
                "resourceControlPolicies": [],
            })
        );
        let service = Simulation {
            principal: Principal::Service("events.amazonaws.com".into()),
            ..simulation
        };
        let value = serde_json::to_value(&service).unwrap();
        assert_eq!(value["request"]["principal"], "events.amazonaws.com");
    }

    #[tokio::test]
    async fn identity_policy_allows_one_secret() {
        let evaluator = Evaluator::start().await.unwrap();
        let decision = evaluator.evaluate(&read_secret(SECRET)).await.unwrap();
        assert_eq!(decision.verdict, Verdict::Allowed);
        assert!(decision.allowed());
        assert_eq!(
            decision.statements,
            ["identity policy sfstack statement 2 (Sid ReadCredentials)"]
        );
        let decision = evaluator
            .evaluate(&read_secret(OTHER_SECRET))
            .await
            .unwrap();
        assert_eq!(decision.verdict, Verdict::ImplicitlyDenied, "{decision:?}");
        assert!(!decision.allowed());
        assert_eq!(
            decision.statements,
            ["identity policies: no statement allows"]
        );
        assert_eq!(decision.denied_by, ["identity"]);
    }

    #[tokio::test]
    async fn kms_key_policy_must_delegate_to_the_account_and_via_service_must_match() {
        let evaluator = Evaluator::start().await.unwrap();
        let enable_iam = json!({ "Sid": "EnableIAM", "Effect": "Allow",
            "Principal": { "AWS": format!("arn:aws:iam::{ACCOUNT}:root") },
            "Action": "kms:*", "Resource": "*" });
        let admin = json!({ "Sid": "Admin", "Effect": "Allow",
            "Principal": { "AWS": format!("arn:aws:iam::{ACCOUNT}:role/admin") },
            "Action": "kms:*", "Resource": "*" });
        let via = |simulation| {
            with_context(
                simulation,
                "kms:ViaService",
                "secretsmanager.us-east-1.amazonaws.com",
            )
        };

        let decision = evaluator
            .evaluate(&via(decrypt(vec![enable_iam.clone(), admin.clone()])))
            .await
            .unwrap();
        assert_eq!(decision.verdict, Verdict::Allowed, "{decision:?}");
        assert_eq!(
            decision.statements,
            [
                "identity policy sfstack statement 1 (Sid DecryptViaSecretsManager)",
                "resource policy statement 1 (Sid EnableIAM)",
            ]
        );
        assert!(decision.ignored_context_keys.is_empty());

        let decision = evaluator
            .evaluate(&decrypt(vec![enable_iam, admin.clone()]))
            .await
            .unwrap();
        assert_eq!(decision.verdict, Verdict::ImplicitlyDenied, "{decision:?}");

        let decision = evaluator
            .evaluate(&via(decrypt(vec![admin])))
            .await
            .unwrap();
        assert_eq!(decision.verdict, Verdict::ImplicitlyDenied, "{decision:?}");
        assert_eq!(
            decision.statements,
            ["resource policy: no statement allows"]
        );
        assert_eq!(decision.denied_by, ["resource"]);
    }

    /// CloudWatch Logs uses a key for a log group only if the key policy names the service and
    /// that log group in the encryption context.
    #[tokio::test]
    async fn the_logs_service_may_use_a_key_only_for_the_log_groups_its_policy_names() {
        let evaluator = Evaluator::start().await.unwrap();
        let group = format!("arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/aws/lambda/f");
        let logs = |log_group: &str, statements: Vec<Value>| {
            let mut simulation = simulation(
                Principal::Service("logs.us-east-1.amazonaws.com".to_owned()),
                "kms:GenerateDataKey",
                KEY,
            );
            simulation.resource_policy =
                Some(json!({ "Version": "2012-10-17", "Statement": statements }));
            with_context(simulation, "kms:EncryptionContext:aws:logs:arn", log_group)
        };
        let for_logs = json!({ "Sid": "Logs", "Effect": "Allow",
            "Principal": { "Service": "logs.us-east-1.amazonaws.com" },
            "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
            "Resource": "*",
            "Condition": { "ArnEquals": { "kms:EncryptionContext:aws:logs:arn": [group.clone()] } } });
        let decision = evaluator
            .evaluate(&logs(&group, vec![for_logs.clone()]))
            .await
            .unwrap();
        assert_eq!(decision.verdict, Verdict::Allowed, "{decision:?}");
        let other = format!("arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/aws/lambda/other");
        let decision = evaluator
            .evaluate(&logs(&other, vec![for_logs]))
            .await
            .unwrap();
        assert_eq!(decision.verdict, Verdict::ImplicitlyDenied, "{decision:?}");
        let decision = evaluator.evaluate(&logs(&group, Vec::new())).await.unwrap();
        assert_eq!(decision.verdict, Verdict::ImplicitlyDenied, "{decision:?}");
    }

    #[tokio::test]
    async fn lambda_resource_policy_allows_only_its_rule() {
        let evaluator = Evaluator::start().await.unwrap();
        let decision = evaluator.evaluate(&invoke_from_rule(RULE)).await.unwrap();
        assert_eq!(decision.verdict, Verdict::Allowed, "{decision:?}");
        assert_eq!(
            decision.statements,
            ["resource policy statement 1 (Sid events-invoke)"]
        );
        let other = "arn:aws:events:us-east-1:111122223333:rule/other";
        let decision = evaluator.evaluate(&invoke_from_rule(other)).await.unwrap();
        assert_eq!(decision.verdict, Verdict::ImplicitlyDenied, "{decision:?}");
    }

    #[tokio::test]
    async fn explicit_deny_wins_and_names_its_statement() {
        let evaluator = Evaluator::start().await.unwrap();
        let mut simulation = read_secret(SECRET);
        simulation.resource_policy = Some(json!({ "Version": "2012-10-17", "Statement": [{
            "Sid": "DenyAll", "Effect": "Deny", "Principal": { "AWS": "*" },
            "Action": "secretsmanager:*", "Resource": "*" }]}));
        let decision = evaluator.evaluate(&simulation).await.unwrap();
        assert_eq!(decision.verdict, Verdict::ExplicitlyDenied, "{decision:?}");
        assert_eq!(
            decision.statements,
            ["resource policy statement 1 (Sid DenyAll)"]
        );
    }

    #[tokio::test]
    async fn invalid_action_is_an_error_naming_it() {
        let evaluator = Evaluator::start().await.unwrap();
        let mut simulation = read_secret(SECRET);
        simulation.action = "secretsmanager:GetSecretValu".to_owned();
        let error = evaluator
            .evaluate(&simulation)
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("invalid.action"), "{error}");
        assert!(error.contains("secretsmanager:GetSecretValu on"), "{error}");
        // The sidecar is still serving.
        assert!(
            evaluator
                .evaluate(&read_secret(SECRET))
                .await
                .unwrap()
                .allowed()
        );
    }

    #[tokio::test]
    async fn unknown_context_keys_are_reported() {
        let evaluator = Evaluator::start().await.unwrap();
        let simulation = with_context(read_secret(SECRET), "kms:ViaService", "x");
        let decision = evaluator.evaluate(&simulation).await.unwrap();
        assert!(decision.allowed());
        assert_eq!(decision.ignored_context_keys, ["kms:ViaService"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_calls_get_their_own_answers() {
        let evaluator = Evaluator::start().await.unwrap();
        let calls = (0..50).map(|i| {
            let evaluator = evaluator.clone();
            tokio::spawn(async move {
                let (simulation, expected) = match i % 3 {
                    0 => (read_secret(SECRET), Verdict::Allowed),
                    1 => (read_secret(OTHER_SECRET), Verdict::ImplicitlyDenied),
                    _ => (invoke_from_rule(RULE), Verdict::Allowed),
                };
                (
                    evaluator.evaluate(&simulation).await.unwrap().verdict,
                    expected,
                )
            })
        });
        let calls: Vec<_> = calls.collect();
        for call in calls {
            let (verdict, expected) = call.await.unwrap();
            assert_eq!(verdict, expected);
        }
    }

    #[tokio::test]
    async fn a_dead_sidecar_is_an_error_saying_so() {
        let evaluator = Evaluator::start().await.unwrap();
        let pid = evaluator.pid().unwrap().to_string();
        assert!(
            std::process::Command::new("kill")
                .arg(&pid)
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while evaluator.waiting().died.is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let error = evaluator
            .evaluate(&read_secret(SECRET))
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("sidecar died"), "{error}");
    }

    /// Prints the latency of one `evaluate` round trip (run with `--nocapture` to see it).
    #[tokio::test]
    async fn evaluate_latency() {
        let evaluator = Evaluator::start().await.unwrap();
        let simulation = with_context(
            decrypt(vec![json!({ "Sid": "EnableIAM", "Effect": "Allow",
                "Principal": { "AWS": format!("arn:aws:iam::{ACCOUNT}:root") },
                "Action": "kms:*", "Resource": "*" })]),
            "kms:ViaService",
            "secretsmanager.us-east-1.amazonaws.com",
        );
        for _ in 0..50 {
            evaluator.evaluate(&simulation).await.unwrap();
        }
        let mut times: Vec<Duration> = Vec::new();
        for _ in 0..200 {
            let started = Instant::now();
            assert!(evaluator.evaluate(&simulation).await.unwrap().allowed());
            times.push(started.elapsed());
        }
        times.sort();
        println!(
            "evaluate latency over 200 calls: p50 {:?}, p90 {:?}, max {:?}",
            times[100], times[180], times[199]
        );
    }
}
