//! CloudWatch Logs encrypts a log group with a customer managed KMS key only if the key's
//! policy lets the Logs service use it for that log group (CloudWatch Logs User Guide,
//! "Encrypt log data in CloudWatch Logs using AWS Key Management Service": the key policy must
//! allow the principal `logs.REGION.amazonaws.com` `kms:Encrypt*`, `kms:Decrypt*`,
//! `kms:ReEncrypt*`, `kms:GenerateDataKey*` and `kms:Describe*`, and AWS recommends conditioning
//! it on `kms:EncryptionContext:aws:logs:arn`). Without it, `CreateLogGroup` and
//! `AssociateKmsKey` fail with "The specified KMS key does not exist or is not allowed to be
//! used with Arn '…'", and so does the stack resource that makes the log group.
//!
//! moto creates such a log group whatever the key policy says, and its stack resource drops the
//! `KmsKeyId` altogether. The gateway reads the log groups a change set encrypts when it is
//! created, and before it executes asks the policy evaluator whether the Logs service may use
//! each key for its log group; a refusal fails the change set on that resource and rolls it
//! back ([`super::rollback`]). Once a change set has executed, `DescribeLogGroups` answers
//! carry each log group's `kmsKeyId`, as CloudWatch Logs' do.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;

use super::ChangeSets;
use super::rollback::Failure;
use crate::table::Operation;

/// A log group a template encrypts with a KMS key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedLogGroup {
    pub logical_id: String,
    pub name: String,
    pub key: String,
}

impl EncryptedLogGroup {
    /// The log group's ARN as CloudWatch Logs puts it in the encryption context.
    pub fn arn(&self, region: &str, account_id: &str) -> String {
        format!("arn:aws:logs:{region}:{account_id}:log-group:{}", self.name)
    }

    /// The stack resource's failure when the key may not be used for this log group.
    pub fn failure(&self, region: &str, account_id: &str) -> Failure {
        Failure {
            logical_id: self.logical_id.clone(),
            resource_type: "AWS::Logs::LogGroup".to_string(),
            reason: format!(
                "Resource handler returned message: \"The specified KMS key does not exist or is not allowed to be used with Arn '{}' (Service: CloudWatchLogs, Status Code: 400)\" (HandlerErrorCode: InvalidRequest)",
                self.arn(region, account_id)
            ),
        }
    }
}

/// The encrypted log groups of the change sets the gateway saw created.
#[derive(Default)]
pub struct LogKeys {
    change_sets: ChangeSets<Vec<EncryptedLogGroup>>,
    /// Log group name → its key, from the change sets that executed.
    applied: Mutex<HashMap<String, String>>,
}

impl LogKeys {
    /// Notes a change set's encrypted log groups (`CreateChangeSet`, answered with success),
    /// and their keys once it executed (`ExecuteChangeSet`, answered with success).
    pub fn record(&self, operation: &Operation) {
        self.change_sets.record(operation, encrypted_log_groups);
        let groups = self.of_execution(operation);
        if let Ok(mut applied) = self.applied.lock() {
            for group in groups {
                applied.insert(group.name, group.key);
            }
        }
    }

    /// The encrypted log groups of the change set an `ExecuteChangeSet` runs.
    pub fn of_execution(&self, operation: &Operation) -> Vec<EncryptedLogGroup> {
        self.change_sets
            .of_execution(operation)
            .map(|(_, groups)| groups)
            .unwrap_or_default()
    }

    /// A `DescribeLogGroups` answer with the `kmsKeyId` of each log group a change set
    /// encrypted; `None` when nothing needs adding.
    pub fn answer(&self, body: &[u8]) -> Option<Vec<u8>> {
        let mut answer: Value = serde_json::from_slice(body).ok()?;
        let applied = self.applied.lock().ok()?;
        let mut changed = false;
        for group in answer.get_mut("logGroups")?.as_array_mut()? {
            let Some(name) = group.get("logGroupName").and_then(Value::as_str) else {
                continue;
            };
            if group.get("kmsKeyId").is_none()
                && let Some(key) = applied.get(name)
            {
                group["kmsKeyId"] = Value::String(key.clone());
                changed = true;
            }
        }
        changed.then(|| serde_json::to_vec(&answer).ok()).flatten()
    }
}

/// The `AWS::Logs::LogGroup` resources of a template with a literal `LogGroupName` and
/// `KmsKeyId`.
pub fn encrypted_log_groups(template: &str) -> Vec<EncryptedLogGroup> {
    super::template_resources(template, "AWS::Logs::LogGroup")
        .into_iter()
        .filter_map(|(logical_id, properties)| {
            Some(EncryptedLogGroup {
                logical_id,
                name: properties.get("LogGroupName")?.as_str()?.to_string(),
                key: properties.get("KmsKeyId")?.as_str()?.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_log_groups_with_a_key_are_read() {
        let template = r#"
Resources:
  AEncrypted:
    Type: AWS::Logs::LogGroup
    Properties:
      LogGroupName: "/aws/lambda/a"
      KmsKeyId: "arn:aws:kms:us-east-1:123456789012:key/k"
  BPlain:
    Type: AWS::Logs::LogGroup
    Properties:
      LogGroupName: "/aws/lambda/b"
  CTable:
    Type: AWS::DynamoDB::Table
    Properties:
      KmsKeyId: "arn:aws:kms:us-east-1:123456789012:key/k"
"#;
        let found = encrypted_log_groups(template);
        assert_eq!(
            found,
            [EncryptedLogGroup {
                logical_id: "AEncrypted".into(),
                name: "/aws/lambda/a".into(),
                key: "arn:aws:kms:us-east-1:123456789012:key/k".into(),
            }]
        );
        let failure = found[0].failure("us-east-1", "123456789012");
        assert_eq!(failure.resource_type, "AWS::Logs::LogGroup");
        assert!(
            failure.reason.contains(
                "is not allowed to be used with Arn 'arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/a'"
            ),
            "{}",
            failure.reason
        );
        assert!(encrypted_log_groups("not: [yaml").is_empty());
    }
}
