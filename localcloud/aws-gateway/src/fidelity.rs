//! Where moto answers differently from AWS, the gateway corrects the request before moto sees
//! it, so that callers meet AWS's behaviour. Each correction cites what AWS documents.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{Response, header};
use serde_json::Value;

use crate::deny;
use crate::table::Operation;

pub mod concurrency;
pub mod handlers;
pub mod lifecycle;
pub mod log_keys;
pub mod propagation;
pub mod rollback;
pub mod ttl;

/// The `Properties` of a template's resources of `resource_type`, by logical id. A template
/// CloudFormation accepts may be JSON or YAML; YAML reads both.
pub(crate) fn template_resources(
    template: &str,
    resource_type: &str,
) -> Vec<(String, serde_yaml::Value)> {
    let Ok(template) = serde_yaml::from_str::<serde_yaml::Value>(template) else {
        return Vec::new();
    };
    let Some(resources) = template.get("Resources").and_then(|r| r.as_mapping()) else {
        return Vec::new();
    };
    resources
        .iter()
        .filter(|(_, resource)| {
            resource.get("Type").and_then(serde_yaml::Value::as_str) == Some(resource_type)
        })
        .filter_map(|(logical, resource)| {
            Some((
                logical.as_str()?.to_string(),
                resource.get("Properties")?.clone(),
            ))
        })
        .collect()
}

/// What a model reads from each change set's template when the change set is created
/// (`CreateChangeSet`, answered with success), looked up again when it executes.
pub struct ChangeSets<T> {
    by_name: Mutex<HashMap<(String, String), T>>,
}

impl<T> Default for ChangeSets<T> {
    fn default() -> Self {
        Self {
            by_name: Mutex::new(HashMap::new()),
        }
    }
}

impl<T: Clone> ChangeSets<T> {
    /// Keeps `read(template)` for a `CreateChangeSet`; ignores any other operation.
    pub fn record(&self, operation: &Operation, read: impl FnOnce(&str) -> T) {
        if operation.action() != "cloudformation:CreateChangeSet" {
            return;
        }
        let parameter = |name: &str| operation.parameters.get(name).and_then(Value::as_str);
        let (Some(stack), Some(name), Some(template)) = (
            parameter("StackName"),
            parameter("ChangeSetName"),
            parameter("TemplateBody"),
        ) else {
            return;
        };
        if let Ok(mut by_name) = self.by_name.lock() {
            by_name.insert((stack.to_string(), name.to_string()), read(template));
        }
    }

    /// What was kept for the change set an `ExecuteChangeSet` runs, with its stack's name.
    pub fn of_execution(&self, operation: &Operation) -> Option<(String, T)> {
        if operation.action() != "cloudformation:ExecuteChangeSet" {
            return None;
        }
        let parameter = |name: &str| operation.parameters.get(name).and_then(Value::as_str);
        let (stack, name) = (parameter("StackName")?, parameter("ChangeSetName")?);
        let by_name = self.by_name.lock().ok()?;
        let kept = by_name.get(&(stack.to_string(), name.to_string()))?.clone();
        Some((stack.to_string(), kept))
    }
}

/// Every how many of the deployer's requests one is throttled, by default.
pub const THROTTLE_EVERY: u64 = 25;

/// Throttling, as AWS's control planes throttle bursts of calls ("Rate exceeded"; each service's
/// API reference lists its throttling error, and the AWS SDKs' developer guides describe the
/// retries that absorb it).
///
/// By default one request in [`THROTTLE_EVERY`] of the deployer's is refused once, so every
/// deploy meets throttling and its retries. Tests force bursts on one action with
/// [`Throttle::force`] (`POST /__sfstack/throttle`), longer than the SDK's retries last, to
/// see what the caller does when they run out.
#[derive(Default)]
pub struct Throttle {
    every: u64,
    seen: AtomicU64,
    forced: Mutex<HashMap<String, u32>>,
}

impl Throttle {
    /// Throttles one deployer request in `every` (0: none but forced ones).
    pub fn new(every: u64) -> Self {
        Self {
            every,
            ..Self::default()
        }
    }

    /// Refuses the next `times` requests of `action`, whoever makes them.
    pub fn force(&self, action: &str, times: u32) {
        if let Ok(mut forced) = self.forced.lock() {
            forced.insert(action.to_string(), times);
        }
    }

    /// The throttling answer to this request, if it is throttled.
    pub fn answer(&self, operation: &Operation, by_deployer: bool) -> Option<Response<Body>> {
        let action = operation.action();
        let forced =
            self.forced
                .lock()
                .ok()
                .is_some_and(|mut forced| match forced.get_mut(&action) {
                    Some(left) if *left > 0 => {
                        *left -= 1;
                        true
                    }
                    _ => false,
                });
        let periodic = by_deployer
            && self.every > 0
            && (self.seen.fetch_add(1, Ordering::Relaxed) + 1).is_multiple_of(self.every);
        (forced || periodic).then(|| deny::throttled(operation.protocol))
    }
}

/// The longest a force-deleted secret's name stays taken on the local cloud. AWS deletes
/// asynchronously and documents no bound ("it can take several seconds"). Locally the deletion
/// finishes once it has refused one `CreateSecret` or `RestoreSecret`, so that a caller always
/// meets it once, however slowly it gets there (a fixed window made a drill depend on the
/// machine's load), and a teardown followed by a deploy stays quick.
pub const SECRET_DELETION_BOUND: Duration = Duration::from_secs(30);

/// Secrets force-deleted a moment ago, whose deletion AWS would still be carrying out.
///
/// Secrets Manager API Reference, DeleteSecret: with `ForceDeleteWithoutRecovery`, "Secrets
/// Manager performs the actual deletion with an asynchronous and separate mechanism"; creating
/// a secret of the same name meanwhile fails ("You can't create this secret because a secret
/// with this name is already scheduled for deletion"), and the secret can still be described,
/// with its `DeletedDate`, but not restored. moto deletes at once; the gateway answers for the
/// window as AWS does.
#[derive(Default)]
pub struct Deletions {
    recent: Mutex<HashMap<String, Deleted>>,
}

#[derive(Clone)]
struct Deleted {
    arn: String,
    name: String,
    at: Instant,
    /// Seconds since the epoch, as `DeletedDate` is given.
    date: f64,
}

impl Deletions {
    /// Notes a successful `DeleteSecret` answer when the request forced the deletion.
    pub fn record(&self, operation: &Operation, answer: &Value) {
        let forced = operation
            .parameters
            .get("ForceDeleteWithoutRecovery")
            .and_then(Value::as_bool)
            == Some(true);
        let (Some(arn), Some(name)) = (answer["ARN"].as_str(), answer["Name"].as_str()) else {
            return;
        };
        if operation.action() != "secretsmanager:DeleteSecret" || !forced {
            return;
        }
        let date = answer["DeletionDate"]
            .as_f64()
            .unwrap_or_else(|| chrono::Utc::now().timestamp() as f64);
        if let Ok(mut recent) = self.recent.lock() {
            recent.insert(
                name.to_string(),
                Deleted {
                    arn: arn.to_string(),
                    name: name.to_string(),
                    at: Instant::now(),
                    date,
                },
            );
        }
    }

    /// AWS's answer to `operation` while a secret it names is still being deleted (`None`:
    /// moto may answer).
    pub fn answer(&self, operation: &Operation) -> Option<Response<Body>> {
        let action = operation.action();
        let id = match action.as_str() {
            "secretsmanager:CreateSecret" => operation.parameters.get("Name"),
            "secretsmanager:DescribeSecret" | "secretsmanager:RestoreSecret" => {
                operation.parameters.get("SecretId")
            }
            _ => None,
        }?
        .as_str()?;
        let deleted = {
            let mut recent = self.recent.lock().ok()?;
            recent.retain(|_, deleted| deleted.at.elapsed() < SECRET_DELETION_BOUND);
            let deleted = recent
                .values()
                .find(|deleted| deleted.name == id || deleted.arn == id)
                .cloned()?;
            if action != "secretsmanager:DescribeSecret" {
                // Met once: the asynchronous deletion is over for the next attempt.
                recent.remove(&deleted.name);
            }
            deleted
        };
        Some(match action.as_str() {
            "secretsmanager:CreateSecret" => deny::invalid_request(
                operation.protocol,
                "You can't create this secret because a secret with this name is already scheduled for deletion.",
            ),
            "secretsmanager:RestoreSecret" => deny::invalid_request(
                operation.protocol,
                "You can't perform this operation on the secret because it was deleted.",
            ),
            _ => Response::builder()
                .header(header::CONTENT_TYPE, "application/x-amz-json-1.1")
                .body(Body::from(
                    serde_json::json!({
                        "ARN": deleted.arn,
                        "Name": deleted.name,
                        "DeletedDate": deleted.date,
                        "VersionIdsToStages": {},
                        "Tags": [],
                    })
                    .to_string(),
                ))
                .unwrap_or_else(|_| Response::new(Body::empty())),
        })
    }
}

/// The request body moto should get for `operation` (`None`: the body as sent).
pub fn request_body(operation: &Operation) -> Option<Bytes> {
    match operation.action().as_str() {
        "secretsmanager:GetSecretValue" => current_version_by_default(&operation.parameters),
        _ => None,
    }
}

/// `GetSecretValue` without `VersionId` or `VersionStage` returns the version labelled
/// `AWSCURRENT` (Secrets Manager API Reference, GetSecretValue: "If you don't specify either a
/// VersionStage or VersionId, Secrets Manager returns the AWSCURRENT version"). moto returns
/// the version it last made its default instead, and `RotateSecret` makes the new, still empty
/// pending version its default: after a rotation whose steps failed, moto answers "can't find
/// the specified secret value" where AWS answers with the unchanged current value.
fn current_version_by_default(parameters: &Value) -> Option<Bytes> {
    let names_a_version = ["VersionId", "VersionStage"]
        .iter()
        .any(|key| parameters.get(key).is_some_and(|value| !value.is_null()));
    if names_a_version {
        return None;
    }
    let mut parameters = parameters.clone();
    parameters
        .as_object_mut()?
        .insert("VersionStage".to_string(), "AWSCURRENT".into());
    Some(Bytes::from(parameters.to_string()))
}

/// Whether moto's answer to `operation` needs [`answer_body`].
pub fn corrects_answer(operation: &Operation) -> bool {
    matches!(
        operation.action().as_str(),
        "logs:FilterLogEvents" | "logs:GetLogEvents" | "secretsmanager:DescribeSecret"
    )
}

/// moto's answer to `operation` as AWS would give it (`None`: as moto gave it).
///
/// When `RotateSecret` names a rotation function, moto makes its own Lambda backend invoke it;
/// that backend needs Docker, fails, and writes `error running docker: …` into the function's
/// log group, with a fractional timestamp no AWS SDK can read. The local Lambda service runs
/// the functions, never moto's backend, and on AWS no such event exists: the gateway drops
/// those events from what it answers.
pub fn answer_body(operation: &Operation, body: &[u8]) -> Option<Bytes> {
    if !corrects_answer(operation) {
        return None;
    }
    let mut answer: Value = serde_json::from_slice(body).ok()?;
    if operation.action() == "secretsmanager:DescribeSecret" {
        return key_id_as_secrets_manager_gives_it(&mut answer)
            .then(|| Bytes::from(answer.to_string()));
    }
    let events = answer.get_mut("events")?.as_array_mut()?;
    let before = events.len();
    events.retain(|event| {
        !event["message"]
            .as_str()
            .is_some_and(|message| message.starts_with(MOTO_LAMBDA_BACKEND_ERROR))
    });
    (events.len() != before).then(|| Bytes::from(answer.to_string()))
}

/// `DescribeSecret`'s `KmsKeyId` is "the key ID or alias ARN of the KMS key" (Secrets Manager
/// API Reference, DescribeSecret), not necessarily the form the key was given in; moto echoes
/// the form it was given. The gateway answers a key ARN with the bare key id, the other
/// documented form, so that a caller comparing it with the ARN it set sees the difference it
/// would meet on AWS.
fn key_id_as_secrets_manager_gives_it(answer: &mut Value) -> bool {
    let Some(key) = answer.get("KmsKeyId").and_then(Value::as_str) else {
        return false;
    };
    let Some((_, id)) = key.rsplit_once(":key/") else {
        return false;
    };
    answer["KmsKeyId"] = id.to_string().into();
    true
}

/// How moto's Lambda backend begins the log event it writes when it cannot run a function.
const MOTO_LAMBDA_BACKEND_ERROR: &str = "error running docker:";

/// The operations after which moto may leave `AWSCURRENT` on two versions (see
/// [`settle_current_version`]).
pub fn may_leave_two_current_versions(operation: &Operation) -> bool {
    let stores_a_value = ["SecretString", "SecretBinary"]
        .iter()
        .any(|key| operation.parameters.get(key).is_some());
    let labels_other_than_current = operation
        .parameters
        .get("VersionStages")
        .and_then(Value::as_array)
        .is_some_and(|stages| !stages.iter().any(|stage| stage == "AWSCURRENT"));
    matches!(
        operation.action().as_str(),
        "secretsmanager:PutSecretValue" | "secretsmanager:UpdateSecret"
    ) && stores_a_value
        && !labels_other_than_current
}

/// Storing a value as `AWSCURRENT` moves the label from the version that had it, which becomes
/// `AWSPREVIOUS` (Secrets Manager API Reference, PutSecretValue: "Secrets Manager
/// automatically moves the staging label AWSCURRENT to this version … and AWSPREVIOUS to the
/// version that AWSCURRENT was removed from"). moto instead demotes the version it last made its
/// default, which after a `RotateSecret` whose steps failed is the empty pending version, and
/// the old current version keeps `AWSCURRENT` beside the new one. This takes the label off every
/// version but `new_version`, as AWS would have.
pub async fn settle_current_version(
    moto: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
    new_version: &str,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let versions = moto
        .list_secret_version_ids()
        .secret_id(secret_id)
        .send()
        .await
        .with_context(|| format!("listing the versions of {secret_id}"))?;
    for stale in versions.versions().iter().filter(|version| {
        version.version_id() != Some(new_version)
            && version
                .version_stages()
                .iter()
                .any(|stage| stage == "AWSCURRENT")
    }) {
        moto.update_secret_version_stage()
            .secret_id(secret_id)
            .version_stage("AWSCURRENT")
            .remove_from_version_id(stale.version_id().unwrap_or_default())
            .send()
            .await
            .with_context(|| format!("moving AWSCURRENT of {secret_id} off a stale version"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{self, Protocol};

    fn get(body: &str) -> Operation {
        table::operation(
            "secretsmanager",
            "POST",
            "/",
            Some("secretsmanager.GetSecretValue"),
            None,
            body.as_bytes(),
        )
        .expect("an operation")
    }

    #[test]
    fn a_secret_read_without_a_version_reads_the_current_one() {
        let body = request_body(&get(r#"{"SecretId":"s"}"#)).expect("a corrected body");
        let sent: Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(
            sent,
            serde_json::json!({"SecretId": "s", "VersionStage": "AWSCURRENT"})
        );
        assert_eq!(get(r#"{"SecretId":"s"}"#).protocol, Protocol::Json11);
    }

    #[test]
    fn only_stores_of_a_current_value_can_leave_two_current_versions() {
        let put = |body: &str| {
            table::operation(
                "secretsmanager",
                "POST",
                "/",
                Some("secretsmanager.PutSecretValue"),
                None,
                body.as_bytes(),
            )
            .expect("an operation")
        };
        assert!(may_leave_two_current_versions(&put(
            r#"{"SecretId":"s","SecretString":"{}"}"#
        )));
        assert!(!may_leave_two_current_versions(&put(
            r#"{"SecretId":"s","SecretString":"{}","VersionStages":["AWSPENDING"]}"#
        )));
        assert!(!may_leave_two_current_versions(&get(r#"{"SecretId":"s"}"#)));
    }

    #[test]
    fn moto_s_own_lambda_errors_are_not_a_function_s_output() {
        let filter = table::operation(
            "logs",
            "POST",
            "/",
            Some("Logs_20140328.FilterLogEvents"),
            None,
            br#"{"logGroupName":"/aws/lambda/f"}"#,
        )
        .expect("an operation");
        let answer = br#"{"events":[{"eventId":"1","timestamp":1796149025553.2,"message":"error running docker: no socket"},{"eventId":"2","timestamp":1796149025554,"message":"START RequestId: r"}],"searchedLogStreams":[]}"#;
        let corrected: Value =
            serde_json::from_slice(&answer_body(&filter, answer).expect("corrected"))
                .expect("JSON");
        assert_eq!(corrected["events"].as_array().map(Vec::len), Some(1));
        assert_eq!(corrected["events"][0]["eventId"], "2");
        let clean = br#"{"events":[{"eventId":"2","timestamp":1,"message":"START"}]}"#;
        assert_eq!(answer_body(&filter, clean), None);
    }

    #[test]
    fn a_secret_s_key_is_described_by_its_id() {
        let describe = table::operation(
            "secretsmanager",
            "POST",
            "/",
            Some("secretsmanager.DescribeSecret"),
            None,
            br#"{"SecretId":"s"}"#,
        )
        .expect("an operation");
        let answer = br#"{"Name":"s","KmsKeyId":"arn:aws:kms:us-east-1:1:key/k-1"}"#;
        let corrected: Value =
            serde_json::from_slice(&answer_body(&describe, answer).expect("corrected"))
                .expect("JSON");
        assert_eq!(corrected["KmsKeyId"], "k-1");
        assert_eq!(
            answer_body(
                &describe,
                br#"{"Name":"s","KmsKeyId":"alias/aws/secretsmanager"}"#
            ),
            None
        );
    }

    #[test]
    fn one_deployer_request_in_every_few_is_throttled_and_bursts_can_be_forced() {
        let throttle = Throttle::new(3);
        let describe = get(r#"{"SecretId":"s"}"#);
        let throttled: Vec<bool> = (0..6)
            .map(|_| throttle.answer(&describe, true).is_some())
            .collect();
        assert_eq!(throttled, [false, false, true, false, false, true]);
        assert!(
            (0..6).all(|_| throttle.answer(&describe, false).is_none()),
            "a role session's calls are only throttled when forced"
        );
        let quiet = Throttle::new(0);
        quiet.force("secretsmanager:GetSecretValue", 2);
        let forced: Vec<bool> = (0..3)
            .map(|_| quiet.answer(&describe, false).is_some())
            .collect();
        assert_eq!(forced, [true, true, false]);
        let answer = quiet.answer(&describe, false);
        assert!(answer.is_none());
        quiet.force("secretsmanager:GetSecretValue", 1);
        let answer = quiet.answer(&describe, true).expect("throttled");
        assert_eq!(
            answer
                .headers()
                .get("x-amzn-errortype")
                .and_then(|value| value.to_str().ok()),
            Some("ThrottlingException")
        );
    }

    #[test]
    fn a_named_version_is_left_alone() {
        assert_eq!(
            request_body(&get(r#"{"SecretId":"s","VersionStage":"AWSPENDING"}"#)),
            None
        );
        assert_eq!(
            request_body(&get(r#"{"SecretId":"s","VersionId":"v"}"#)),
            None
        );
    }
}
