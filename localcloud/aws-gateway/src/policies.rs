//! The policies and facts a decision needs, read from moto directly (as AWS's authorization
//! reads its own stores): a role's identity policies and trust policy, a secret's ARN, key and
//! resource policy, a table's key, a key's ARN and key policy. Kept in a cache that is emptied
//! whenever a request that may change them goes through, so a decision never uses a policy that was replaced;
//! the decisions themselves are cached the same way (the same request with the same policies
//! and context is decided the same: the gateway passes no time or network condition keys).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use serde_json::Value;

/// A secret as authorization sees it.
#[derive(Debug, Clone)]
pub struct SecretFacts {
    pub arn: String,
    /// The customer managed key's ARN; `None` for the AWS managed key.
    pub key_arn: Option<String>,
    pub resource_policy: Option<Value>,
}

/// A KMS key as authorization sees it.
#[derive(Debug, Clone)]
pub struct KeyFacts {
    pub arn: String,
    pub policy: Value,
    /// `Enabled`, `Disabled`, `PendingDeletion`, …
    pub state: String,
    /// The key's tags: `aws:ResourceTag/<key>` in its decisions.
    pub tags: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default)]
struct Cache {
    identity: HashMap<String, Vec<(String, Value)>>,
    trust: HashMap<String, Value>,
    secrets: HashMap<String, Option<SecretFacts>>,
    tables: HashMap<String, Option<String>>,
    keys: HashMap<String, Option<KeyFacts>>,
    /// Decisions by their whole simulation (principal, action, resource, context, policies).
    decisions: HashMap<String, crate::evaluator::Decision>,
}

/// Reads what decisions need from moto.
#[derive(Debug, Clone)]
pub struct Policies {
    iam: aws_sdk_iam::Client,
    secrets: aws_sdk_secretsmanager::Client,
    kms: aws_sdk_kms::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    lambda: aws_sdk_lambda::Client,
    cloudformation: aws_sdk_cloudformation::Client,
    cache: Arc<Mutex<Cache>>,
}

impl Policies {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self {
            iam: aws_sdk_iam::Client::new(config),
            secrets: aws_sdk_secretsmanager::Client::new(config),
            kms: aws_sdk_kms::Client::new(config),
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            lambda: aws_sdk_lambda::Client::new(config),
            cloudformation: aws_sdk_cloudformation::Client::new(config),
            cache: Arc::default(),
        }
    }

    /// Forgets everything read: something may have changed.
    pub fn invalidate(&self) {
        if let Ok(mut cache) = self.cache.lock() {
            *cache = Cache::default();
        }
    }

    fn cached<T: Clone>(&self, pick: impl FnOnce(&Cache) -> Option<T>) -> Option<T> {
        self.cache.lock().ok().and_then(|cache| pick(&cache))
    }

    fn remember(&self, store: impl FnOnce(&mut Cache)) {
        if let Ok(mut cache) = self.cache.lock() {
            store(&mut cache);
        }
    }

    /// A decision already made for exactly this simulation.
    pub fn decided(&self, simulation: &str) -> Option<crate::evaluator::Decision> {
        self.cached(|cache| cache.decisions.get(simulation).cloned())
    }

    /// Remembers a decision until something changes.
    pub fn remember_decision(&self, simulation: String, decision: crate::evaluator::Decision) {
        self.remember(|cache| {
            cache.decisions.insert(simulation, decision);
        });
    }

    /// A role's inline and attached managed policies, by name.
    pub async fn identity_policies(&self, role: &str) -> anyhow::Result<Vec<(String, Value)>> {
        if let Some(found) = self.cached(|cache| cache.identity.get(role).cloned()) {
            return Ok(found);
        }
        let mut policies = Vec::new();
        let names = self
            .iam
            .list_role_policies()
            .role_name(role)
            .send()
            .await
            .with_context(|| format!("listing the policies of role {role}"))?;
        for name in names.policy_names() {
            let policy = self
                .iam
                .get_role_policy()
                .role_name(role)
                .policy_name(name)
                .send()
                .await
                .with_context(|| format!("reading policy {name} of role {role}"))?;
            policies.push((name.clone(), document(policy.policy_document())?));
        }
        let attached = self
            .iam
            .list_attached_role_policies()
            .role_name(role)
            .send()
            .await
            .with_context(|| format!("listing the managed policies of role {role}"))?;
        for managed in attached.attached_policies() {
            let arn = managed.policy_arn().unwrap_or_default();
            let version = self
                .iam
                .get_policy()
                .policy_arn(arn)
                .send()
                .await
                .with_context(|| format!("reading policy {arn}"))?
                .policy()
                .and_then(|policy| policy.default_version_id().map(str::to_string))
                .unwrap_or_default();
            let text = self
                .iam
                .get_policy_version()
                .policy_arn(arn)
                .version_id(version)
                .send()
                .await
                .with_context(|| format!("reading the default version of {arn}"))?
                .policy_version()
                .and_then(|version| version.document().map(str::to_string))
                .unwrap_or_default();
            policies.push((arn.to_string(), document(&text)?));
        }
        self.remember(|cache| {
            cache.identity.insert(role.to_string(), policies.clone());
        });
        Ok(policies)
    }

    /// A role's trust policy, by ARN.
    pub async fn trust_policy(&self, role_arn: &str) -> anyhow::Result<Option<Value>> {
        if let Some(found) = self.cached(|cache| cache.trust.get(role_arn).cloned()) {
            return Ok(Some(found));
        }
        let name = role_arn.rsplit('/').next().unwrap_or(role_arn);
        let role = match self.iam.get_role().role_name(name).send().await {
            Ok(output) => output.role().cloned(),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|error| error.is_no_such_entity_exception()) =>
            {
                None
            }
            Err(error) => return Err(error).with_context(|| format!("reading role {name}")),
        };
        let Some(text) = role.and_then(|role| role.assume_role_policy_document) else {
            return Ok(None);
        };
        let policy = document(&text)?;
        self.remember(|cache| {
            cache.trust.insert(role_arn.to_string(), policy.clone());
        });
        Ok(Some(policy))
    }

    /// The audiences (client ids) of an IAM OIDC identity provider; `None` when the account has
    /// no such provider.
    pub async fn oidc_provider_audiences(
        &self,
        provider_arn: &str,
    ) -> anyhow::Result<Option<Vec<String>>> {
        match self
            .iam
            .get_open_id_connect_provider()
            .open_id_connect_provider_arn(provider_arn)
            .send()
            .await
        {
            Ok(output) => Ok(Some(output.client_id_list().to_vec())),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|error| error.is_no_such_entity_exception()) =>
            {
                Ok(None)
            }
            Err(error) => Err(error).with_context(|| format!("reading {provider_arn}")),
        }
    }

    /// A secret by the name or ARN a request gave; `None` when it does not exist.
    pub async fn secret(&self, secret_id: &str) -> anyhow::Result<Option<SecretFacts>> {
        if let Some(found) = self.cached(|cache| cache.secrets.get(secret_id).cloned()) {
            return Ok(found);
        }
        let facts = match self
            .secrets
            .describe_secret()
            .secret_id(secret_id)
            .send()
            .await
        {
            Ok(described) => {
                let key_arn = match described.kms_key_id() {
                    Some(key) if !key.is_empty() && key != "alias/aws/secretsmanager" => {
                        self.key(key).await?.map(|facts| facts.arn)
                    }
                    _ => None,
                };
                let resource_policy = self
                    .secrets
                    .get_resource_policy()
                    .secret_id(secret_id)
                    .send()
                    .await
                    .ok()
                    .and_then(|output| output.resource_policy().map(str::to_string))
                    .map(|text| document(&text))
                    .transpose()?;
                Some(SecretFacts {
                    arn: described.arn().unwrap_or_default().to_string(),
                    key_arn,
                    resource_policy,
                })
            }
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|error| error.is_resource_not_found_exception()) =>
            {
                None
            }
            Err(error) => {
                return Err(error).with_context(|| format!("describing secret {secret_id}"));
            }
        };
        self.remember(|cache| {
            cache.secrets.insert(secret_id.to_string(), facts.clone());
        });
        Ok(facts)
    }

    /// The ARN of a table's customer managed key, `None` when it has none or does not exist.
    pub async fn table_key(&self, table: &str) -> anyhow::Result<Option<String>> {
        if let Some(found) = self.cached(|cache| cache.tables.get(table).cloned()) {
            return Ok(found);
        }
        let key = match self
            .dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await
        {
            Ok(output) => match output
                .table()
                .and_then(|table| table.sse_description())
                .and_then(|sse| sse.kms_master_key_arn().map(str::to_string))
            {
                Some(key) => Some(key),
                None => self.table_key_from_its_stack(table).await?,
            },
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|error| error.is_resource_not_found_exception()) =>
            {
                None
            }
            Err(error) => return Err(error).with_context(|| format!("describing table {table}")),
        };
        self.remember(|cache| {
            cache.tables.insert(table.to_string(), key.clone());
        });
        Ok(key)
    }

    /// The customer managed key of a table CloudFormation made, from its stack's template.
    /// moto keeps a template's `SSESpecification` but reads it by the API's field name
    /// (`Enabled`) instead of the resource's (`SSEEnabled`), so `DescribeTable` never reports
    /// the key of such a table; the template says what AWS would have done.
    async fn table_key_from_its_stack(&self, table: &str) -> anyhow::Result<Option<String>> {
        let stacks = self
            .cloudformation
            .describe_stacks()
            .send()
            .await
            .context("listing the stacks")?;
        for stack in stacks.stacks() {
            let Some(name) = stack.stack_name() else {
                continue;
            };
            let resources = self
                .cloudformation
                .describe_stack_resources()
                .stack_name(name)
                .send()
                .await
                .with_context(|| format!("listing the resources of stack {name}"))?;
            let Some(logical_id) = resources
                .stack_resources()
                .iter()
                .find(|resource| {
                    resource.resource_type() == Some("AWS::DynamoDB::Table")
                        && resource.physical_resource_id() == Some(table)
                })
                .and_then(|resource| resource.logical_resource_id())
            else {
                continue;
            };
            let template = self
                .cloudformation
                .get_template()
                .stack_name(name)
                .send()
                .await
                .with_context(|| format!("reading the template of stack {name}"))?;
            let key = template
                .template_body()
                .and_then(|body| table_key_in_template(body, logical_id));
            return match key {
                Some(key) => Ok(self.key(&key).await?.map(|facts| facts.arn)),
                None => Ok(None),
            };
        }
        Ok(None)
    }

    /// A function's resource policy (by ARN), `None` when it has none or does not exist.
    pub async fn function_policy(&self, function_arn: &str) -> anyhow::Result<Option<Value>> {
        match self
            .lambda
            .get_policy()
            .function_name(function_arn)
            .send()
            .await
        {
            Ok(output) => Ok(output
                .policy()
                .map(document)
                .transpose()?
                .map(with_function_url_conditions)),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|error| error.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(error) => {
                Err(error).with_context(|| format!("reading the policy of {function_arn}"))
            }
        }
    }

    /// A key (by id, ARN or alias) with its key policy; `None` when there is no such key.
    pub async fn key(&self, key_id: &str) -> anyhow::Result<Option<KeyFacts>> {
        if let Some(found) = self.cached(|cache| cache.keys.get(key_id).cloned()) {
            return Ok(found);
        }
        let described = match self.kms.describe_key().key_id(key_id).send().await {
            Ok(described) => described,
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|error| error.is_not_found_exception()) =>
            {
                self.remember(|cache| {
                    cache.keys.insert(key_id.to_string(), None);
                });
                return Ok(None);
            }
            Err(error) => {
                return Err(error).with_context(|| format!("describing KMS key {key_id}"));
            }
        };
        let arn = described
            .key_metadata()
            .and_then(|metadata| metadata.arn().map(str::to_string))
            .with_context(|| format!("KMS key {key_id} has no ARN"))?;
        let state = described
            .key_metadata()
            .and_then(|metadata| metadata.key_state())
            .map_or("Enabled", |state| state.as_str())
            .to_string();
        let text = self
            .kms
            .get_key_policy()
            .key_id(&arn)
            .policy_name("default")
            .send()
            .await
            .with_context(|| format!("reading the key policy of {arn}"))?
            .policy()
            .unwrap_or_default()
            .to_string();
        let tags = self
            .kms
            .list_resource_tags()
            .key_id(&arn)
            .send()
            .await
            .with_context(|| format!("reading the tags of {arn}"))?
            .tags()
            .iter()
            .map(|tag| (tag.tag_key().to_string(), tag.tag_value().to_string()))
            .collect();
        let facts = KeyFacts {
            arn,
            policy: document(&text)?,
            state,
            tags,
        };
        self.remember(|cache| {
            cache.keys.insert(key_id.to_string(), Some(facts.clone()));
        });
        Ok(Some(facts))
    }
}

/// The customer managed key a template gives a table (`SSESpecification` with `SSEEnabled`,
/// `SSEType: KMS` and a literal `KMSMasterKeyId`); `None` for the AWS owned or AWS managed key.
fn table_key_in_template(body: &str, logical_id: &str) -> Option<String> {
    let template: serde_yaml::Value = serde_yaml::from_str(body).ok()?;
    let sse = template
        .get("Resources")?
        .get(logical_id)?
        .get("Properties")?
        .get("SSESpecification")?;
    let enabled = match sse.get("SSEEnabled")? {
        serde_yaml::Value::Bool(enabled) => *enabled,
        serde_yaml::Value::String(text) => text.eq_ignore_ascii_case("true"),
        _ => false,
    };
    (enabled && sse.get("SSEType").and_then(serde_yaml::Value::as_str) == Some("KMS"))
        .then(|| sse.get("KMSMasterKeyId")?.as_str().map(str::to_string))
        .flatten()
}

/// A function policy as Lambda keeps it. `AddPermission` with `FunctionUrlAuthType` or
/// `InvokedViaFunctionUrl` becomes a condition of the statement (Lambda's documentation on
/// Function URL access control: `"Condition": {"StringEquals": {"lambda:FunctionUrlAuthType":
/// "NONE"}}` and `{"Bool": {"lambda:InvokedViaFunctionUrl": "true"}}`); moto keeps them as
/// top-level statement fields, which is not a policy at all. Moves them where Lambda puts them.
pub fn with_function_url_conditions(mut policy: Value) -> Value {
    let moved = [
        (
            "FunctionUrlAuthType",
            "StringEquals",
            "lambda:FunctionUrlAuthType",
        ),
        (
            "InvokedViaFunctionUrl",
            "Bool",
            "lambda:InvokedViaFunctionUrl",
        ),
    ];
    for statement in policy
        .get_mut("Statement")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        let Some(fields) = statement.as_object_mut() else {
            continue;
        };
        for (field, operator, key) in moved {
            let Some(value) = fields.remove(field) else {
                continue;
            };
            let value = match value {
                Value::Bool(flag) => Value::String(flag.to_string()),
                other => other,
            };
            let condition = fields
                .entry("Condition")
                .or_insert_with(|| Value::Object(serde_json::Map::new()));
            if let Some(condition) = condition.as_object_mut() {
                let operator = condition
                    .entry(operator)
                    .or_insert_with(|| Value::Object(serde_json::Map::new()));
                if let Some(operator) = operator.as_object_mut() {
                    operator.insert(key.to_string(), value);
                }
            }
        }
    }
    policy
}

/// A policy document as IAM returns it: JSON, or URL-encoded JSON (real IAM encodes them).
fn document(text: &str) -> anyhow::Result<Value> {
    if let Ok(json) = serde_json::from_str(text) {
        return Ok(json);
    }
    let decoded = percent_encoding::percent_decode_str(text).decode_utf8_lossy();
    serde_json::from_str(&decoded).context("a policy document is not JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_url_permissions_become_the_conditions_lambda_gives_them() {
        let moto = serde_json::json!({"Statement": [
            {"Sid": "url", "Principal": "*", "Action": "lambda:InvokeFunctionUrl", "FunctionUrlAuthType": "NONE"},
            {"Sid": "invoke", "Principal": "*", "Action": "lambda:InvokeFunction", "InvokedViaFunctionUrl": true,
             "Condition": {"StringEquals": {"AWS:SourceAccount": "1"}}},
        ]});
        let lambda = with_function_url_conditions(moto);
        assert_eq!(
            lambda["Statement"][0]["Condition"],
            serde_json::json!({"StringEquals": {"lambda:FunctionUrlAuthType": "NONE"}})
        );
        assert_eq!(
            lambda["Statement"][1]["Condition"],
            serde_json::json!({
                "StringEquals": {"AWS:SourceAccount": "1"},
                "Bool": {"lambda:InvokedViaFunctionUrl": "true"}
            })
        );
        assert!(lambda["Statement"][0].get("FunctionUrlAuthType").is_none());
    }

    #[test]
    fn a_table_s_customer_managed_key_is_read_from_its_template() {
        let template = r#"
Resources:
  Tokens:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: t
      SSESpecification:
        SSEEnabled: true
        SSEType: KMS
        KMSMasterKeyId: "arn:aws:kms:us-east-1:1:key/k"
  Plain:
    Type: AWS::DynamoDB::Table
    Properties:
      SSESpecification:
        SSEEnabled: true
  Off:
    Type: AWS::DynamoDB::Table
    Properties:
      SSESpecification:
        SSEEnabled: false
        SSEType: KMS
        KMSMasterKeyId: k
"#;
        assert_eq!(
            table_key_in_template(template, "Tokens").as_deref(),
            Some("arn:aws:kms:us-east-1:1:key/k")
        );
        assert_eq!(table_key_in_template(template, "Plain"), None);
        assert_eq!(table_key_in_template(template, "Off"), None);
        assert_eq!(table_key_in_template(template, "Missing"), None);
    }

    #[test]
    fn documents_are_read_plain_or_url_encoded() {
        let plain = r#"{"Version":"2012-10-17","Statement":[]}"#;
        assert_eq!(
            document(plain).ok(),
            document("%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%5D%7D").ok()
        );
        assert!(document("not json").is_err());
    }
}
