//! CloudFormation creates, updates and deletes a stack's resources with its caller's
//! permissions when the stack has no service role (CloudFormation User Guide, "AWS
//! CloudFormation service role": without one, "CloudFormation uses a temporary session that it
//! generates from your user credentials"). A deployer allowed `cloudformation:ExecuteChangeSet`
//! but not `lambda:CreateFunction` sees its change set accepted and the stack fail on the
//! function, then roll back; a deployer that may not delete a table leaves the stack
//! `DELETE_FAILED`. moto makes every resource whatever its caller may do.
//!
//! Which permissions each resource type's handlers use is published in the CloudFormation
//! registry's resource schemas (`handlers.create|update|delete.permissions`), which the pinned
//! cfn-lint ships (`cfnlint/data/schemas/resources/`). Before a change set executes, the gateway
//! works out which resources it creates, updates or deletes, and asks the policy evaluator, for
//! the caller, about the listed permissions of that handler:
//!
//! - every permission of the resource's own service (`lambda:*` for a function), on the
//!   resource's ARN. A handler calls some of them only for properties the template may not
//!   set; requiring all of them can only make the local cloud stricter than AWS, never more
//!   forgiving, and each is granted on the environment's own resources only;
//! - `iam:PassRole` on each role the resource names (`Role`, `RoleArn`, a target's `RoleArn`),
//!   with `iam:PassedToService` set to the resource's service (IAM User Guide, "Granting a
//!   user permissions to pass a role to an AWS service");
//! - `s3:GetObject` on a function's code object;
//! - the listed KMS permissions on the customer managed key a resource names, through the
//!   resource's service (`kms:ViaService`), decided with the key's policy as KMS decides.
//!
//! - with a function's `VpcConfig`, the handler's `ec2:Describe*` permissions, on `*`: Lambda
//!   verifies the subnets and security groups with the caller's permissions (Lambda Developer
//!   Guide, "User permissions": `ec2:DescribeSecurityGroups`, `ec2:DescribeSubnets`,
//!   `ec2:DescribeVpcs`). What Lambda needs of the function's *execution role* in a VPC is
//!   [`vpc_role_needs`].
//!
//! Other services' permissions in a handler's list serve properties this model does not know;
//! a resource with a property outside [`known_properties`] is refused as "not modelled", so
//! nothing slips through unchecked.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use serde::Deserialize;
use serde_yaml::Value as Yaml;

use super::ChangeSets;
use super::rollback::Failure;
use crate::table::Operation;

/// What a stack change asks of a resource's handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    Create,
    Update,
    Delete,
}

impl Handler {
    fn key(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }
}

/// One resource a change set (or a stack deletion) touches.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub logical_id: String,
    pub resource_type: String,
    pub properties: Yaml,
    pub handler: Handler,
}

/// One permission a handler needs of its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub action: String,
    pub resource: String,
    pub context: BTreeMap<String, Vec<String>>,
    /// A KMS key's permission: decided with the key's policy too.
    pub key: bool,
}

/// The handler permissions of the resource types, read from the registry schemas on first use.
pub struct Schemas {
    dir: Option<PathBuf>,
    /// Type name → its schema file.
    index: OnceLock<HashMap<String, PathBuf>>,
    handlers: Mutex<HashMap<String, HashMap<String, Vec<String>>>>,
    /// (resource type, action) pairs found not to act on that type's resources.
    inapplicable: Mutex<std::collections::HashSet<(String, String)>>,
}

impl Default for Schemas {
    fn default() -> Self {
        Self::new(pytools::cfn_lint_resource_schemas())
    }
}

#[derive(Deserialize)]
struct Schema {
    #[serde(default)]
    handlers: HashMap<String, HandlerSchema>,
}

#[derive(Deserialize)]
struct HandlerSchema {
    #[serde(default)]
    permissions: Vec<String>,
}

impl Schemas {
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self {
            dir,
            index: OnceLock::new(),
            handlers: Mutex::new(HashMap::new()),
            inapplicable: Mutex::new(Default::default()),
        }
    }

    fn index(&self) -> &HashMap<String, PathBuf> {
        self.index.get_or_init(|| {
            let mut index = HashMap::new();
            let Some(entries) = self
                .dir
                .as_ref()
                .and_then(|dir| std::fs::read_dir(dir).ok())
            else {
                return index;
            };
            for path in entries.filter_map(Result::ok).map(|entry| entry.path()) {
                let Ok(text) = std::fs::read_to_string(&path) else {
                    continue;
                };
                // The schema's own `"typeName": "AWS::Lambda::Function"`, a top-level key (one
                // space in), read without parsing the whole file: nested `typeName`s name the
                // types a property refers to.
                const KEY: &str = "\n \"typeName\"";
                let Some(start) = text.find(KEY) else {
                    continue;
                };
                let rest = &text[start + KEY.len()..];
                let Some(open) = rest.find('"') else { continue };
                let Some(close) = rest[open + 1..].find('"') else {
                    continue;
                };
                index.insert(rest[open + 1..open + 1 + close].to_string(), path);
            }
            index
        })
    }

    /// Remembers that `action` does not act on `resource_type`'s resources.
    pub fn not_applicable(&self, resource_type: &str, action: &str) {
        if let Ok(mut inapplicable) = self.inapplicable.lock() {
            inapplicable.insert((resource_type.to_string(), action.to_string()));
        }
    }

    pub fn is_not_applicable(&self, resource_type: &str, action: &str) -> bool {
        self.inapplicable.lock().is_ok_and(|inapplicable| {
            inapplicable.contains(&(resource_type.to_string(), action.to_string()))
        })
    }

    /// The permissions a resource type's handler lists.
    pub fn permissions(
        &self,
        resource_type: &str,
        handler: Handler,
    ) -> Result<Vec<String>, String> {
        if let Some(found) = self
            .handlers
            .lock()
            .ok()
            .and_then(|handlers| handlers.get(resource_type).cloned())
        {
            return Ok(found.get(handler.key()).cloned().unwrap_or_default());
        }
        let path = self.index().get(resource_type).ok_or_else(|| {
            format!(
                "no CloudFormation registry schema for {resource_type} (cfn-lint's schemas are read from {})",
                self.dir
                    .as_ref()
                    .map_or("nowhere: the pinned tools are not installed".to_string(), |dir| {
                        dir.display().to_string()
                    })
            )
        })?;
        let schema: Schema = std::fs::read_to_string(path)
            .map_err(|error| format!("reading {}: {error}", path.display()))
            .and_then(|text| {
                serde_json::from_str(&text)
                    .map_err(|error| format!("reading {}: {error}", path.display()))
            })?;
        let handlers: HashMap<String, Vec<String>> = schema
            .handlers
            .into_iter()
            .map(|(name, handler)| (name, handler.permissions))
            .collect();
        let found = handlers.get(handler.key()).cloned().unwrap_or_default();
        if let Ok(mut cache) = self.handlers.lock() {
            cache.insert(resource_type.to_string(), handlers);
        }
        Ok(found)
    }
}

/// The change sets' templates, kept from `CreateChangeSet` for their execution.
#[derive(Default)]
pub struct Templates {
    change_sets: ChangeSets<String>,
}

impl Templates {
    pub fn record(&self, operation: &Operation) {
        self.change_sets.record(operation, str::to_string);
    }

    /// The stack and template of the change set an `ExecuteChangeSet` runs.
    pub fn of_execution(&self, operation: &Operation) -> Option<(String, String)> {
        self.change_sets.of_execution(operation)
    }
}

fn resources(template: &str) -> Vec<(String, String, Yaml)> {
    let Ok(template) = serde_yaml::from_str::<Yaml>(template) else {
        return Vec::new();
    };
    let Some(resources) = template.get("Resources").and_then(Yaml::as_mapping) else {
        return Vec::new();
    };
    resources
        .iter()
        .filter_map(|(logical, resource)| {
            Some((
                logical.as_str()?.to_string(),
                resource.get("Type")?.as_str()?.to_string(),
                resource
                    .get("Properties")
                    .cloned()
                    .unwrap_or(Yaml::Mapping(Default::default())),
            ))
        })
        .collect()
}

/// What going from `previous` (none: a new stack) to `next` asks of each resource's handler:
/// a new logical id is created, one whose type or properties changed is updated (a changed
/// type replaces it), one gone is deleted.
pub fn changes(previous: Option<&str>, next: &str) -> Vec<Change> {
    let before: HashMap<String, (String, Yaml)> = previous
        .map(resources)
        .unwrap_or_default()
        .into_iter()
        .map(|(logical_id, kind, properties)| (logical_id, (kind, properties)))
        .collect();
    let after = resources(next);
    let mut changes = Vec::new();
    for (logical_id, resource_type, properties) in &after {
        let handler = match before.get(logical_id) {
            None => Handler::Create,
            Some((kind, _)) if kind != resource_type => Handler::Create,
            Some((_, old)) if old != properties => Handler::Update,
            Some(_) => continue,
        };
        changes.push(Change {
            logical_id: logical_id.clone(),
            resource_type: resource_type.clone(),
            properties: properties.clone(),
            handler,
        });
    }
    for (logical_id, (resource_type, properties)) in before {
        let kept = after
            .iter()
            .any(|(id, kind, _)| *id == logical_id && *kind == resource_type);
        if !kept {
            changes.push(Change {
                logical_id,
                resource_type,
                properties,
                handler: Handler::Delete,
            });
        }
    }
    changes
}

/// Deleting the stack of `template`: every resource's delete handler.
pub fn deletions(template: &str) -> Vec<Change> {
    resources(template)
        .into_iter()
        .map(|(logical_id, resource_type, properties)| Change {
            logical_id,
            resource_type,
            properties,
            handler: Handler::Delete,
        })
        .collect()
}

/// The resource types this model knows, each with its service, the property that names it,
/// how its ARN is written, and the properties whose permissions are modelled.
struct Kind {
    service: &'static str,
    name_property: &'static str,
    arn: fn(&str, &str, &str) -> String,
    properties: &'static [&'static str],
}

fn kind(resource_type: &str) -> Option<Kind> {
    Some(match resource_type {
        "AWS::Lambda::Function" => Kind {
            service: "lambda",
            name_property: "FunctionName",
            arn: |region, account, name| {
                format!("arn:aws:lambda:{region}:{account}:function:{name}")
            },
            properties: &[
                "FunctionName",
                "Description",
                "Runtime",
                "Handler",
                "Architectures",
                "MemorySize",
                "Timeout",
                "ReservedConcurrentExecutions",
                "Role",
                "Code",
                "LoggingConfig",
                "Environment",
                "KmsKeyArn",
                "VpcConfig",
                "Tags",
            ],
        },
        "AWS::DynamoDB::Table" => Kind {
            service: "dynamodb",
            name_property: "TableName",
            arn: |region, account, name| {
                format!("arn:aws:dynamodb:{region}:{account}:table/{name}")
            },
            properties: &[
                "TableName",
                "BillingMode",
                "AttributeDefinitions",
                "KeySchema",
                "SSESpecification",
                "PointInTimeRecoverySpecification",
                "TimeToLiveSpecification",
                "Tags",
            ],
        },
        "AWS::Logs::LogGroup" => Kind {
            service: "logs",
            name_property: "LogGroupName",
            arn: |region, account, name| {
                format!("arn:aws:logs:{region}:{account}:log-group:{name}")
            },
            properties: &["LogGroupName", "RetentionInDays", "KmsKeyId", "Tags"],
        },
        "AWS::Events::Rule" => Kind {
            service: "events",
            name_property: "Name",
            arn: |region, account, name| format!("arn:aws:events:{region}:{account}:rule/{name}"),
            properties: &[
                "Name",
                "Description",
                "ScheduleExpression",
                "State",
                "Targets",
            ],
        },
        _ => return None,
    })
}

/// The properties of `resource_type` whose handler permissions the model works out.
pub fn known_properties(resource_type: &str) -> &'static [&'static str] {
    kind(resource_type).map_or(&[], |kind| kind.properties)
}

fn text<'a>(value: &'a Yaml, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(value, |value, key| value.get(*key))?
        .as_str()
}

/// The permissions `change`'s handler needs of its caller, out of the handler's list;
/// `Err` when the resource is outside the model.
pub fn needs(
    change: &Change,
    permissions: &[String],
    region: &str,
    account: &str,
) -> Result<Vec<Need>, String> {
    let kind = kind(&change.resource_type)
        .ok_or_else(|| format!("{} resources are not modelled", change.resource_type))?;
    if let Some(mapping) = change.properties.as_mapping() {
        for key in mapping.keys().filter_map(Yaml::as_str) {
            if !kind.properties.contains(&key) {
                return Err(format!(
                    "the {key} property of {} is not modelled",
                    change.resource_type
                ));
            }
        }
    }
    let name = text(&change.properties, &[kind.name_property]).ok_or_else(|| {
        format!(
            "{} {} has no literal {}",
            change.resource_type, change.logical_id, kind.name_property
        )
    })?;
    let own = (kind.arn)(region, account, name);
    let passed_to = format!("{}.amazonaws.com", kind.service);
    let roles: Vec<&str> = match change.resource_type.as_str() {
        "AWS::Lambda::Function" => text(&change.properties, &["Role"]).into_iter().collect(),
        "AWS::Events::Rule" => change
            .properties
            .get("Targets")
            .and_then(Yaml::as_sequence)
            .into_iter()
            .flatten()
            .filter_map(|target| text(target, &["RoleArn"]))
            .collect(),
        _ => Vec::new(),
    };
    let key = match change.resource_type.as_str() {
        "AWS::Lambda::Function" => text(&change.properties, &["KmsKeyArn"]),
        "AWS::DynamoDB::Table" => text(&change.properties, &["SSESpecification", "KMSMasterKeyId"]),
        "AWS::Logs::LogGroup" => text(&change.properties, &["KmsKeyId"]),
        _ => None,
    };
    let code = (
        text(&change.properties, &["Code", "S3Bucket"]),
        text(&change.properties, &["Code", "S3Key"]),
    );
    let in_vpc = change.properties.get("VpcConfig").is_some();
    let mut needs = Vec::new();
    let plain = |action: &str, resource: String| Need {
        action: action.to_string(),
        resource,
        context: BTreeMap::new(),
        key: false,
    };
    for permission in permissions {
        let service = permission.split(':').next().unwrap_or_default();
        if service == kind.service {
            needs.push(plain(permission, own.clone()));
        } else if permission == "iam:PassRole" {
            needs.extend(roles.iter().map(|role| Need {
                action: permission.clone(),
                resource: (*role).to_string(),
                context: BTreeMap::from([(
                    "iam:PassedToService".to_string(),
                    vec![passed_to.clone()],
                )]),
                key: false,
            }));
        } else if in_vpc && permission.starts_with("ec2:Describe") {
            needs.push(plain(permission, "*".to_string()));
        } else if permission == "s3:GetObject"
            && let (Some(bucket), Some(object)) = code
        {
            needs.push(plain(permission, format!("arn:aws:s3:::{bucket}/{object}")));
        } else if service == "kms"
            && let Some(key) = key
        {
            if permission == "kms:ListAliases" {
                needs.push(plain(permission, "*".to_string()));
            } else {
                needs.push(Need {
                    action: permission.clone(),
                    resource: key.to_string(),
                    context: BTreeMap::from([(
                        "kms:ViaService".to_string(),
                        vec![format!("{}.{region}.amazonaws.com", kind.service)],
                    )]),
                    key: true,
                });
            }
        }
    }
    Ok(needs)
}

/// What Lambda needs of a function's execution role to put it in a VPC, when a change creates
/// or updates a function with `VpcConfig`: the role name, and the permissions on their
/// resources. "Lambda uses your function's permissions to create and manage network
/// interfaces": `ec2:CreateNetworkInterface` (on the interface, the subnets and the security
/// groups), `ec2:DescribeNetworkInterfaces` ("only works if it's allowed on all resources"),
/// `ec2:DeleteNetworkInterface`, `ec2:AssignPrivateIpAddresses` and
/// `ec2:UnassignPrivateIpAddresses` (Lambda Developer Guide, "Execution role permissions").
/// Lambda refuses the function without them: "The provided execution role does not have
/// permissions to call CreateNetworkInterface on EC2".
pub fn vpc_role_needs(change: &Change, region: &str, account: &str) -> Option<(String, Vec<Need>)> {
    if change.resource_type != "AWS::Lambda::Function" || change.handler == Handler::Delete {
        return None;
    }
    let config = change.properties.get("VpcConfig")?;
    let role = text(&change.properties, &["Role"])?;
    let role_name = role
        .rsplit_once(":role/")?
        .1
        .rsplit('/')
        .next()?
        .to_string();
    let ec2 = |resource: &str| format!("arn:aws:ec2:{region}:{account}:{resource}");
    let ids = |key: &str| -> Vec<String> {
        config
            .get(key)
            .and_then(Yaml::as_sequence)
            .into_iter()
            .flatten()
            .filter_map(Yaml::as_str)
            .map(str::to_string)
            .collect()
    };
    let need = |action: &str, resource: String| Need {
        action: action.to_string(),
        resource,
        context: BTreeMap::new(),
        key: false,
    };
    let interfaces = ec2("network-interface/*");
    let mut needs = vec![need("ec2:CreateNetworkInterface", interfaces.clone())];
    needs.extend(
        ids("SubnetIds")
            .iter()
            .map(|id| need("ec2:CreateNetworkInterface", ec2(&format!("subnet/{id}")))),
    );
    needs.extend(ids("SecurityGroupIds").iter().map(|id| {
        need(
            "ec2:CreateNetworkInterface",
            ec2(&format!("security-group/{id}")),
        )
    }));
    needs.push(need("ec2:DescribeNetworkInterfaces", "*".to_string()));
    for action in [
        "ec2:DeleteNetworkInterface",
        "ec2:AssignPrivateIpAddresses",
        "ec2:UnassignPrivateIpAddresses",
    ] {
        needs.push(need(action, interfaces.clone()));
    }
    Some((role_name, needs))
}

/// The function's failure when Lambda finds its role short of `action` (`ec2:Name`).
pub fn vpc_role_failure(change: &Change, action: &str) -> Failure {
    let name = action.trim_start_matches("ec2:");
    Failure {
        logical_id: change.logical_id.clone(),
        resource_type: change.resource_type.clone(),
        reason: format!(
            "Resource handler returned message: \"The provided execution role does not have permissions to call {name} on EC2 (Service: Lambda, Status Code: 400)\" (HandlerErrorCode: InvalidRequest)"
        ),
    }
}

/// Whether the evaluator refused a simulation because the action does not act on the
/// resource's type (`no.resource.types`), acts on no resource (`must.use.wildcard`), or is
/// unknown to its copy of the Service Authorization Reference (`invalid.action`).
pub fn not_applicable(error: &str) -> bool {
    ["no.resource.types", "must.use.wildcard", "invalid.action"]
        .iter()
        .any(|reason| error.contains(reason))
}

/// The stack resource's failure when its handler may not do `message`'s action.
pub fn failure(change: &Change, message: &str) -> Failure {
    let service = match change.resource_type.split("::").nth(1) {
        Some("Logs") => "CloudWatchLogs",
        Some("Events") => "EventBridge",
        Some(other) => other,
        None => "",
    };
    Failure {
        logical_id: change.logical_id.clone(),
        resource_type: change.resource_type.clone(),
        reason: format!(
            "Resource handler returned message: \"{message} (Service: {service}, Status Code: 403)\" (HandlerErrorCode: AccessDenied)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = r#"
Resources:
  Fn:
    Type: AWS::Lambda::Function
    Properties:
      FunctionName: sfstack-a-fn
      Role: arn:aws:iam::123456789012:role/sfstack-a-fn-role
      Code: {S3Bucket: bucket, S3Key: fn/abc.zip}
  Gone:
    Type: AWS::Logs::LogGroup
    Properties: {LogGroupName: /aws/lambda/gone}
"#;

    const AFTER: &str = r#"
Resources:
  Fn:
    Type: AWS::Lambda::Function
    Properties:
      FunctionName: sfstack-a-fn
      Role: arn:aws:iam::123456789012:role/sfstack-a-fn-role
      Code: {S3Bucket: bucket, S3Key: fn/def.zip}
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: sfstack-a-tokens
      SSESpecification: {SSEEnabled: true, SSEType: KMS, KMSMasterKeyId: "arn:aws:kms:us-east-1:123456789012:key/k"}
"#;

    #[test]
    fn changes_are_creates_updates_and_deletes_by_logical_id() {
        let changes = changes(Some(BEFORE), AFTER);
        let handlers: Vec<(&str, Handler)> = changes
            .iter()
            .map(|change| (change.logical_id.as_str(), change.handler))
            .collect();
        assert_eq!(
            handlers,
            [
                ("Fn", Handler::Update),
                ("Table", Handler::Create),
                ("Gone", Handler::Delete)
            ]
        );
        assert!(super::changes(Some(AFTER), AFTER).is_empty());
        assert_eq!(deletions(AFTER).len(), 2);
    }

    #[test]
    fn a_function_needs_its_own_service_its_role_passed_to_lambda_and_its_code() {
        let change = &changes(None, AFTER)[0];
        let permissions: Vec<String> = [
            "lambda:CreateFunction",
            "iam:PassRole",
            "s3:GetObject",
            "s3:GetObjectVersion",
            "ec2:DescribeVpcs",
            "kms:Decrypt",
        ]
        .map(String::from)
        .to_vec();
        let needs = needs(change, &permissions, "us-east-1", "123456789012").expect("as written");
        let got: Vec<(&str, &str)> = needs
            .iter()
            .map(|need| (need.action.as_str(), need.resource.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "lambda:CreateFunction",
                    "arn:aws:lambda:us-east-1:123456789012:function:sfstack-a-fn"
                ),
                (
                    "iam:PassRole",
                    "arn:aws:iam::123456789012:role/sfstack-a-fn-role"
                ),
                ("s3:GetObject", "arn:aws:s3:::bucket/fn/def.zip"),
            ]
        );
        assert_eq!(
            needs[1].context["iam:PassedToService"],
            ["lambda.amazonaws.com"]
        );
    }

    #[test]
    fn a_table_under_a_customer_managed_key_needs_the_key_through_dynamodb() {
        let change = &changes(None, AFTER)[1];
        let permissions = vec![
            "dynamodb:CreateTable".to_string(),
            "kms:CreateGrant".to_string(),
        ];
        let needs = needs(change, &permissions, "us-east-1", "123456789012").expect("as written");
        assert!(needs[1].key);
        assert_eq!(
            needs[1].context["kms:ViaService"],
            ["dynamodb.us-east-1.amazonaws.com"]
        );
    }

    #[test]
    fn a_function_in_a_vpc_needs_the_callers_ec2_describes_and_its_roles_interfaces() {
        let template = r#"
Resources:
  Fn:
    Type: AWS::Lambda::Function
    Properties:
      FunctionName: f
      Role: arn:aws:iam::123456789012:role/f-role
      VpcConfig: {SubnetIds: [subnet-01234567], SecurityGroupIds: [sg-01234567]}
"#;
        let changes = changes(None, template);
        let permissions = [
            "lambda:CreateFunction".to_string(),
            "ec2:DescribeSubnets".to_string(),
            "ec2:DescribeVpcs".to_string(),
        ];
        let needs =
            needs(&changes[0], &permissions, "us-east-1", "123456789012").expect("modelled");
        assert!(
            needs
                .iter()
                .any(|need| need.action == "ec2:DescribeSubnets" && need.resource == "*")
        );
        let (role, role_needs) =
            vpc_role_needs(&changes[0], "us-east-1", "123456789012").expect("a VPC function");
        assert_eq!(role, "f-role");
        let ec2 = |resource: &str| format!("arn:aws:ec2:us-east-1:123456789012:{resource}");
        let pairs: Vec<(&str, &str)> = role_needs
            .iter()
            .map(|need| (need.action.as_str(), need.resource.as_str()))
            .collect();
        for expected in [
            ("ec2:CreateNetworkInterface", ec2("network-interface/*")),
            ("ec2:CreateNetworkInterface", ec2("subnet/subnet-01234567")),
            (
                "ec2:CreateNetworkInterface",
                ec2("security-group/sg-01234567"),
            ),
            ("ec2:DescribeNetworkInterfaces", "*".to_string()),
            ("ec2:DeleteNetworkInterface", ec2("network-interface/*")),
            ("ec2:AssignPrivateIpAddresses", ec2("network-interface/*")),
            ("ec2:UnassignPrivateIpAddresses", ec2("network-interface/*")),
        ] {
            assert!(
                pairs.contains(&(expected.0, expected.1.as_str())),
                "{expected:?}"
            );
        }
        let outside = changes_without_vpc();
        assert!(vpc_role_needs(&outside[0], "us-east-1", "123456789012").is_none());
    }

    fn changes_without_vpc() -> Vec<Change> {
        changes(None, BEFORE)
    }

    #[test]
    fn an_unknown_property_or_type_is_not_modelled() {
        let template = r#"
Resources:
  Fn:
    Type: AWS::Lambda::Function
    Properties: {FunctionName: f, FileSystemConfigs: [{Arn: a, LocalMountPath: /mnt/x}]}
  Queue:
    Type: AWS::SQS::Queue
"#;
        let changes = changes(None, template);
        assert!(
            needs(&changes[0], &[], "r", "a")
                .expect_err("refused")
                .contains("FileSystemConfigs")
        );
        assert!(
            needs(&changes[1], &[], "r", "a")
                .expect_err("refused")
                .contains("AWS::SQS::Queue")
        );
    }

    #[test]
    fn the_pinned_schemas_list_the_handlers_permissions() {
        // Needs the pinned tools (cfn-lint ships the schemas): installed on first use.
        pytools::ensure_python_tools().expect("the pinned tools install");
        let schemas = Schemas::default();
        let create = schemas
            .permissions("AWS::Lambda::Function", Handler::Create)
            .expect("as written");
        assert!(create.iter().any(|p| p == "lambda:CreateFunction"));
        assert!(create.iter().any(|p| p == "iam:PassRole"));
        let delete = schemas
            .permissions("AWS::DynamoDB::Table", Handler::Delete)
            .expect("as written");
        assert!(delete.iter().any(|p| p == "dynamodb:DeleteTable"));
        assert!(
            schemas
                .permissions("AWS::No::Such", Handler::Create)
                .is_err()
        );
    }
}
