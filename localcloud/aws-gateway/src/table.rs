//! The closed table from an AWS request to what IAM authorizes: which operation it is (from the
//! protocol: `X-Amz-Target` for the JSON services, `Action=` for the query services, the method
//! and path for the REST ones, see [`rest`]), then the action, the resource and the implicit
//! calls it makes for its caller. It lists every operation the project calls, whoever calls it
//! (the functions, the local Lambda service, the `xtask` commands and the tests); an operation
//! it does not list is refused ("not modelled by the local cloud"), so nothing slips through
//! unchecked.
//!
//! Resources are named as the Service Authorization Reference names them for each action:
//! a secret's ARN, a key's ARN, `role/NAME`, `stack/NAME/*`, `log-group:NAME`,
//! `arn:aws:s3:::BUCKET/KEY`, or `*` for the actions that take none (`List*`, `CreateKey`).
//!
//! Implicit calls follow AWS's documentation: Secrets Manager decrypts a secret's data key with
//! `kms:Decrypt` on `GetSecretValue`, and asks for a new one with `kms:GenerateDataKey` when a
//! value is stored (`CreateSecret`, `PutSecretValue`, `UpdateSecret` with a value), both as the
//! caller, through `secretsmanager.REGION.amazonaws.com`, with the secret's ARN in the
//! encryption context; DynamoDB decrypts a table's key with `kms:Decrypt` through
//! `dynamodb.REGION.amazonaws.com` when the table is encrypted with a customer managed key.

use serde_json::Value;

pub mod rest;
#[cfg(test)]
mod tests;

/// How a service's requests are framed, which is also how its errors must be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `application/x-amz-json-1.0` (DynamoDB): errors `{"__type", "message"}`.
    Json10,
    /// `application/x-amz-json-1.1` (Secrets Manager, KMS, Logs): errors `{"__type", "Message"}`.
    Json11,
    /// Query (STS, IAM, CloudFormation): form bodies, XML errors.
    Query,
    /// EC2's own query protocol: form bodies, `<Response><Errors><Error>` errors.
    Ec2,
    /// REST with JSON bodies (Lambda): JSON errors typed by a header.
    Rest,
    /// REST with XML bodies (S3): `<Error><Code>` errors.
    RestXml,
}

/// One AWS operation, as a request names it.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// The signing name: `secretsmanager`, `dynamodb`, `sts`, …
    pub service: String,
    /// The operation: `GetSecretValue`, `PutItem`, `AssumeRole`, …
    pub name: String,
    pub protocol: Protocol,
    /// The request's parameters: the JSON body, the form's fields as strings, or what a REST
    /// path names (`FunctionName`, `Bucket`, `Key`).
    pub parameters: Value,
}

impl Operation {
    /// `service:Name`, the IAM action of most operations.
    pub fn action(&self) -> String {
        format!("{}:{}", self.service, self.name)
    }

    fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters.get(name).and_then(Value::as_str)
    }

    /// Whether the operation may change what a later decision reads (a policy, a key, a
    /// resource's existence): anything but reads and writes of data, which leave the policies
    /// read for decisions valid.
    pub fn may_change_authorization(&self) -> bool {
        let reads = ["Get", "Describe", "List", "Head", "Filter", "Validate"]
            .iter()
            .any(|prefix| self.name.starts_with(prefix));
        let data = matches!(
            self.name.as_str(),
            "InvokeFunction"
                | "Decrypt"
                | "Encrypt"
                | "GenerateDataKey"
                | "ReEncrypt"
                | "PutItem"
                | "UpdateItem"
                | "DeleteItem"
                | "Query"
                | "Scan"
                | "PutSecretValue"
                | "UpdateSecretVersionStage"
                | "PutObject"
                | "CreateLogStream"
                | "PutLogEvents"
        );
        !reads && !data
    }
}

/// Reads the operation of a request signed for `service`; `None` when its framing is not one
/// the table knows.
pub fn operation(
    service: &str,
    method: &str,
    path: &str,
    target: Option<&str>,
    query: Option<&str>,
    body: &[u8],
) -> Option<Operation> {
    if matches!(service, "lambda" | "s3" | "connect") {
        return rest::operation(service, method, path, query, body);
    }
    if let Some(target) = target {
        let (prefix, name) = target.rsplit_once('.')?;
        let protocol = if prefix.starts_with("DynamoDB_") {
            Protocol::Json10
        } else {
            Protocol::Json11
        };
        let parameters = if body.is_empty() {
            Value::Object(serde_json::Map::new())
        } else {
            serde_json::from_slice(body).ok()?
        };
        return Some(Operation {
            service: service.to_string(),
            name: name.to_string(),
            protocol,
            parameters,
        });
    }
    let mut fields = serde_json::Map::new();
    for source in [query.unwrap_or_default().as_bytes(), body] {
        for (key, value) in form_urlencoded::parse(source) {
            fields.insert(key.into_owned(), Value::String(value.into_owned()));
        }
    }
    let name = fields.get("Action")?.as_str()?.to_string();
    Some(Operation {
        service: service.to_string(),
        name,
        protocol: if service == "ec2" {
            Protocol::Ec2
        } else {
            Protocol::Query
        },
        parameters: Value::Object(fields),
    })
}

/// The KMS action a service performs as its caller, and through which service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Implicit {
    pub action: &'static str,
    pub via: &'static str,
}

/// A resource as an action names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// `*`: the action takes no resource (`List*`, `CreateKey`, `DescribeLogGroups`).
    Any,
    /// An ARN the request gave.
    Arn(String),
    /// A resource of the caller's account, completed into an ARN with the partition, region
    /// and account as the service writes them (`iam` has no region; `s3` neither region nor
    /// account): `role/NAME`, `stack/NAME/*`, `log-group:NAME`, `BUCKET/KEY`.
    Own {
        service: &'static str,
        resource: String,
    },
}

/// What IAM must allow for an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// An action on a secret (named or ARN, as the request gave it), and the KMS action
    /// Secrets Manager performs as the caller when the secret has a customer managed key
    /// (`key`, when the request names one, else the secret's).
    Secret {
        action: String,
        secret_id: String,
        implicit: Option<Implicit>,
        key: Option<String>,
    },
    /// An action on a DynamoDB table, and the KMS action DynamoDB performs as the caller when
    /// the table has a customer managed key.
    Table {
        action: String,
        table: String,
        implicit: Option<Implicit>,
    },
    /// A KMS action on a key named in the request (id, ARN or alias), decided with the key
    /// policy as KMS decides it.
    Key { action: String, key_id: String },
    /// A KMS alias action: on the alias (`alias/NAME`), by the caller's identity policies, and
    /// on the key it names, as [`Check::Key`].
    Alias {
        action: String,
        alias: String,
        key_id: String,
    },
    /// `lambda:InvokeFunction` of a function (by name or ARN), decided with its resource
    /// policy.
    Function { action: String, function: String },
    /// `sts:AssumeRole` of a role, decided by the role's trust policy.
    AssumeRole { role_arn: String },
    /// Any other action on a resource whose policy, if it has one, we never write: decided by
    /// the caller's identity policies.
    Action { action: String, resource: Resource },
    /// An action and the dependent actions the service performs as the caller (the Service
    /// Authorization Reference's "Dependent actions" column): each must be allowed, on its own
    /// resource, by the caller's identity policies, with the request's condition keys
    /// (`aws:RequestTag/…`, `aws:TagKeys`; `aws:ResourceTag/…` are added by the gateway, which
    /// knows the resource).
    Actions {
        checks: Vec<(String, Resource)>,
        context: std::collections::BTreeMap<String, Vec<String>>,
    },
    /// An operation that needs no permission (`sts:GetCallerIdentity`).
    Free,
}

/// Why an operation is refused before any policy is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotModelled(pub String);

/// The check for an operation.
pub fn check(operation: &Operation) -> Result<Check, NotModelled> {
    let action = operation.action();
    let missing = |name: &str| NotModelled(format!("{} without {name}", operation.action()));
    let required = |name: &str| {
        operation
            .parameter(name)
            .map(str::to_string)
            .ok_or_else(|| missing(name))
    };
    let any = |action: String| {
        Ok(Check::Action {
            action,
            resource: Resource::Any,
        })
    };
    let own = |service: &'static str, resource: String| Check::Action {
        action: operation.action(),
        resource: Resource::Own { service, resource },
    };
    let name = operation.name.as_str();
    match operation.service.as_str() {
        "sts" => match name {
            "GetCallerIdentity" => Ok(Check::Free),
            "AssumeRole" => Ok(Check::AssumeRole {
                role_arn: required("RoleArn")?,
            }),
            _ => Err(NotModelled(action)),
        },
        "secretsmanager" => secrets_manager(operation, action),
        "kms" => match name {
            "CreateKey" | "ListKeys" | "ListAliases" => any(action),
            // An alias action needs the permission on the alias (IAM policy) and on the key
            // (key policy): KMS Developer Guide, "Controlling access to aliases".
            "CreateAlias" | "UpdateAlias" => Ok(Check::Alias {
                action,
                alias: required("AliasName")?,
                key_id: required("TargetKeyId")?,
            }),
            "DeleteAlias" => Ok(Check::Alias {
                action,
                alias: required("AliasName")?,
                key_id: required("AliasName")?,
            }),
            "Decrypt"
            | "Encrypt"
            | "GenerateDataKey"
            | "ReEncrypt"
            | "DescribeKey"
            | "GetKeyPolicy"
            | "PutKeyPolicy"
            | "EnableKeyRotation"
            | "GetKeyRotationStatus"
            | "DisableKeyRotation"
            | "EnableKey"
            | "DisableKey"
            | "ScheduleKeyDeletion"
            | "CancelKeyDeletion"
            | "ListResourceTags"
            | "TagResource"
            | "UntagResource" => {
                Ok(Check::Key {
                    // Decrypt may leave the key to the ciphertext; the local cloud cannot
                    // read moto's ciphertexts, so it needs the key named.
                    key_id: required("KeyId")?,
                    action,
                })
            }
            _ => Err(NotModelled(action)),
        },
        "dynamodb" => match name {
            "ListTables" => any(action),
            "PutItem" | "GetItem" | "DeleteItem" | "UpdateItem" | "Query" | "Scan" => {
                Ok(Check::Table {
                    action,
                    table: required("TableName")?,
                    implicit: Some(Implicit {
                        action: "kms:Decrypt",
                        via: "dynamodb",
                    }),
                })
            }
            "CreateTable" | "DeleteTable" | "DescribeTable" | "UpdateTable"
            | "DescribeTimeToLive" | "UpdateTimeToLive" => Ok(Check::Table {
                action,
                table: required("TableName")?,
                implicit: None,
            }),
            _ => Err(NotModelled(action)),
        },
        "lambda" => {
            let function = || required("FunctionName");
            match name {
                "ListFunctions" => any(action),
                "InvokeFunction" => Ok(Check::Function {
                    action,
                    function: function()?,
                }),
                "ListTags" | "TagResource" | "UntagResource" => Ok(Check::Action {
                    action,
                    resource: Resource::Arn(required("Resource")?),
                }),
                "GetFunction"
                | "DeleteFunction"
                | "GetFunctionConfiguration"
                | "UpdateFunctionConfiguration"
                | "UpdateFunctionCode"
                | "GetPolicy"
                | "AddPermission"
                | "RemovePermission"
                | "GetFunctionUrlConfig"
                | "CreateFunctionUrlConfig"
                | "UpdateFunctionUrlConfig"
                | "DeleteFunctionUrlConfig"
                | "ListAliases"
                | "CreateAlias"
                | "ListVersionsByFunction"
                | "PublishVersion"
                | "GetFunctionConcurrency"
                | "PutFunctionConcurrency"
                | "DeleteFunctionConcurrency" => {
                    let function = function()?;
                    Ok(if function.starts_with("arn:") {
                        Check::Action {
                            action,
                            resource: Resource::Arn(function),
                        }
                    } else {
                        own("lambda", format!("function:{function}"))
                    })
                }
                _ => Err(NotModelled(action)),
            }
        }
        "s3" => {
            let action = rest::s3_action(name)
                .ok_or_else(|| NotModelled(action.clone()))?
                .to_string();
            let resource = match (
                operation.parameter("Bucket"),
                operation.parameter("Key"),
                name,
            ) {
                (None, _, _) => Resource::Any,
                (Some(bucket), _, "DeleteObjects") => Resource::Own {
                    service: "s3",
                    resource: format!("{bucket}/*"),
                },
                (Some(bucket), Some(key), _) => Resource::Own {
                    service: "s3",
                    resource: format!("{bucket}/{key}"),
                },
                (Some(bucket), None, _) => Resource::Own {
                    service: "s3",
                    resource: bucket.to_string(),
                },
            };
            Ok(Check::Action { action, resource })
        }
        "iam" => match name {
            "ListRoles" | "ListPolicies" | "ListOpenIDConnectProviders" => any(action),
            "CreateOpenIDConnectProvider" => {
                let url = required("Url")?;
                let host = url.trim_start_matches("https://").trim_end_matches('/');
                Ok(own("iam", format!("oidc-provider/{host}")))
            }
            "GetOpenIDConnectProvider"
            | "DeleteOpenIDConnectProvider"
            | "TagOpenIDConnectProvider"
            | "AddClientIDToOpenIDConnectProvider" => Ok(Check::Action {
                action,
                resource: Resource::Arn(required("OpenIDConnectProviderArn")?),
            }),
            "CreateRole"
            | "GetRole"
            | "DeleteRole"
            | "TagRole"
            | "UntagRole"
            | "ListRoleTags"
            | "PutRolePolicy"
            | "GetRolePolicy"
            | "DeleteRolePolicy"
            | "ListRolePolicies"
            | "ListAttachedRolePolicies"
            | "AttachRolePolicy"
            | "DetachRolePolicy"
            | "UpdateAssumeRolePolicy"
            | "UpdateRole" => Ok(own("iam", format!("role/{}", required("RoleName")?))),
            "GetPolicy"
            | "GetPolicyVersion"
            | "ListPolicyVersions"
            | "DeletePolicy"
            | "CreatePolicyVersion"
            | "DeletePolicyVersion" => Ok(Check::Action {
                action,
                resource: Resource::Arn(required("PolicyArn")?),
            }),
            _ => Err(NotModelled(action)),
        },
        "cloudformation" => match name {
            "ListStacks" | "ValidateTemplate" => any(action),
            "DescribeStacks" if operation.parameter("StackName").is_none() => any(action),
            "CreateChangeSet"
            | "DescribeChangeSet"
            | "ExecuteChangeSet"
            | "DeleteChangeSet"
            | "ListChangeSets"
            | "DescribeStacks"
            | "DescribeStackEvents"
            | "DescribeStackResource"
            | "DescribeStackResources"
            | "DeleteStack"
            | "ContinueUpdateRollback"
            | "GetTemplate"
            | "CancelUpdateStack"
            | "ListStackResources" => {
                let stack = required("StackName")?;
                Ok(if stack.starts_with("arn:") {
                    Check::Action {
                        action,
                        resource: Resource::Arn(stack),
                    }
                } else {
                    own("cloudformation", format!("stack/{stack}/*"))
                })
            }
            _ => Err(NotModelled(action)),
        },
        "logs" => {
            let group = || required("logGroupName");
            match name {
                "DescribeLogGroups" => any(action),
                "CreateLogGroup"
                | "DeleteLogGroup"
                | "PutRetentionPolicy"
                | "DeleteRetentionPolicy"
                | "DescribeLogStreams"
                | "FilterLogEvents"
                | "GetLogEvents"
                | "TagLogGroup" => Ok(own("logs", format!("log-group:{}", group()?))),
                "CreateLogStream" | "PutLogEvents" => Ok(own(
                    "logs",
                    format!(
                        "log-group:{}:log-stream:{}",
                        group()?,
                        required("logStreamName")?
                    ),
                )),
                _ => Err(NotModelled(action)),
            }
        }
        "connect" => connect(operation, action),
        // What `functions.vpc` is checked with; these take no resource.
        "ec2" => match name {
            "DescribeSubnets" | "DescribeSecurityGroups" => any(action),
            _ => Err(NotModelled(action)),
        },
        _ => Err(NotModelled(action)),
    }
}

/// Amazon Connect's resources, as the Service Authorization Reference names them: the
/// instance (`instance/ID`) for the instance's operations and its Lambda associations, a flow
/// (`instance/ID/contact-flow/FLOW`) for a flow's, `contact-flow/*` to create or list them.
/// Associating a function also adds to the function's resource policy, as the caller
/// (`lambda:AddPermission`, a dependent action), and removing it takes that away
/// (`lambda:RemovePermission`): the Administrator Guide lists both for adding and removing
/// functions.
fn connect(operation: &Operation, action: String) -> Result<Check, NotModelled> {
    let required = |name: &str| {
        operation
            .parameter(name)
            .map(str::to_string)
            .ok_or_else(|| NotModelled(format!("{} without {name}", operation.action())))
    };
    let instance = required("InstanceId")?;
    let own = |resource: String| Resource::Own {
        service: "connect",
        resource,
    };
    let instance_resource = own(format!("instance/{instance}"));
    let function =
        || -> Result<Resource, NotModelled> { Ok(Resource::Arn(required("FunctionArn")?)) };
    let checks = match operation.name.as_str() {
        "DescribeInstance" | "ListLambdaFunctions" => vec![(action, instance_resource)],
        "AssociateLambdaFunction" => vec![
            (action, instance_resource),
            ("lambda:AddPermission".to_string(), function()?),
        ],
        "DisassociateLambdaFunction" => vec![
            (action, instance_resource),
            ("lambda:RemovePermission".to_string(), function()?),
        ],
        "CreateContactFlow" | "ListContactFlows" => {
            vec![(action, own(format!("instance/{instance}/contact-flow/*")))]
        }
        "DescribeContactFlow" | "DeleteContactFlow" | "UpdateContactFlowContent" => vec![(
            action,
            own(format!(
                "instance/{instance}/contact-flow/{}",
                required("ContactFlowId")?
            )),
        )],
        _ => return Err(NotModelled(action)),
    };
    // The tags a request puts on what it creates (IAM User Guide, "Controlling access during
    // AWS requests": `aws:RequestTag/key`, `aws:TagKeys`).
    let mut context = std::collections::BTreeMap::new();
    if let Some(tags) = operation.parameters.get("Tags").and_then(Value::as_object) {
        for (key, value) in tags {
            if let Some(value) = value.as_str() {
                context.insert(format!("aws:RequestTag/{key}"), vec![value.to_string()]);
            }
        }
        context.insert("aws:TagKeys".to_string(), tags.keys().cloned().collect());
    }
    Ok(Check::Actions { checks, context })
}

fn secrets_manager(operation: &Operation, action: String) -> Result<Check, NotModelled> {
    let parameter = |name: &str| operation.parameter(name).map(str::to_string);
    let has_value = parameter("SecretString").is_some() || parameter("SecretBinary").is_some();
    let generate = Some(Implicit {
        action: "kms:GenerateDataKey",
        via: "secretsmanager",
    });
    let (secret_id, implicit) = match operation.name.as_str() {
        "ListSecrets" => {
            return Ok(Check::Action {
                action,
                resource: Resource::Any,
            });
        }
        "CreateSecret" => (parameter("Name"), if has_value { generate } else { None }),
        "GetSecretValue" => (
            parameter("SecretId"),
            Some(Implicit {
                action: "kms:Decrypt",
                via: "secretsmanager",
            }),
        ),
        "PutSecretValue" => (parameter("SecretId"), generate),
        "UpdateSecret" => (
            parameter("SecretId"),
            if has_value { generate } else { None },
        ),
        "DescribeSecret"
        | "UpdateSecretVersionStage"
        | "DeleteSecret"
        | "RestoreSecret"
        | "RotateSecret"
        | "CancelRotateSecret"
        | "ListSecretVersionIds"
        | "GetResourcePolicy"
        | "PutResourcePolicy"
        | "DeleteResourcePolicy"
        | "TagResource"
        | "UntagResource" => (parameter("SecretId"), None),
        _ => return Err(NotModelled(action)),
    };
    let secret_id = secret_id.ok_or_else(|| NotModelled(format!("{action} without a secret")))?;
    Ok(Check::Secret {
        action,
        secret_id,
        implicit,
        key: parameter("KmsKeyId"),
    })
}
