//! The closed table from an AWS request to what IAM authorizes: which operation it is (from the
//! protocol: `X-Amz-Target` for the JSON services, `Action=` for the query services, the path
//! for the REST ones), then the action, the resource and the implicit calls it makes for its
//! caller. An operation the table does not list is refused ("not modelled by the local
//! cloud"), so nothing a role session does slips through unchecked.
//!
//! Implicit calls follow AWS's documentation: Secrets Manager decrypts a secret's data key with
//! `kms:Decrypt` on `GetSecretValue`, and asks for a new one with `kms:GenerateDataKey` when a
//! value is stored (`PutSecretValue`), both as the caller, through
//! `secretsmanager.REGION.amazonaws.com`, with the secret's ARN in the encryption context;
//! DynamoDB decrypts a table's key with `kms:Decrypt` through `dynamodb.REGION.amazonaws.com`
//! when the table is encrypted with a customer managed key.

use serde_json::Value;

/// How a service's requests are framed, which is also how its errors must be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `application/x-amz-json-1.0` (DynamoDB): errors `{"__type", "message"}`.
    Json10,
    /// `application/x-amz-json-1.1` (Secrets Manager, KMS, Logs): errors `{"__type", "Message"}`.
    Json11,
    /// Query (STS, IAM, CloudFormation): form bodies, XML errors.
    Query,
    /// REST with JSON (Lambda) or XML (S3) bodies.
    Rest,
}

/// One AWS operation, as a request names it.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// The signing name: `secretsmanager`, `dynamodb`, `sts`, …
    pub service: String,
    /// The operation: `GetSecretValue`, `PutItem`, `AssumeRole`, …
    pub name: String,
    pub protocol: Protocol,
    /// The request's parameters: the JSON body, or the form's fields as strings.
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
}

/// Reads the operation of a REST request signed for `service` from its method and path: only
/// Lambda's `Invoke` is known (`POST /2015-03-31/functions/NAME/invocations`).
pub fn rest_operation(service: &str, method: &str, path: &str) -> Option<Operation> {
    let name = path
        .strip_prefix("/2015-03-31/functions/")?
        .strip_suffix("/invocations")?;
    (service == "lambda" && method == "POST" && !name.contains('/')).then(|| Operation {
        service: service.to_string(),
        name: "InvokeFunction".to_string(),
        protocol: Protocol::Rest,
        parameters: serde_json::json!({
            "FunctionName": percent_encoding::percent_decode_str(name).decode_utf8_lossy(),
        }),
    })
}

/// Reads the operation of a request signed for `service`; `None` when its framing is not one
/// the table knows (a REST path, or no target or action at all).
pub fn operation(
    service: &str,
    target: Option<&str>,
    query: Option<&str>,
    body: &[u8],
) -> Option<Operation> {
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
        protocol: Protocol::Query,
        parameters: Value::Object(fields),
    })
}

/// The KMS action a service performs as its caller, and through which service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Implicit {
    pub action: &'static str,
    pub via: &'static str,
}

/// What IAM must allow for an operation of a role session or of the Lambda service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// An action on a secret (named or ARN, as the request gave it), and the KMS action
    /// Secrets Manager performs as the caller when the secret has a customer managed key.
    Secret {
        action: String,
        secret_id: String,
        implicit: Option<Implicit>,
    },
    /// An action on a DynamoDB table, and the KMS action DynamoDB performs as the caller when
    /// the table has a customer managed key.
    Table {
        action: String,
        table: String,
        implicit: Option<Implicit>,
    },
    /// A KMS action called directly (not through a service), on a key named in the request.
    Key { action: String, key_id: String },
    /// `lambda:InvokeFunction` of a function (by name or ARN).
    Function { action: String, function: String },
    /// `sts:AssumeRole` of a role, decided by the role's trust policy.
    AssumeRole { role_arn: String },
    /// An operation that needs no permission (`sts:GetCallerIdentity`).
    Free,
}

/// Why an operation is refused before any policy is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotModelled(pub String);

/// The check for an operation of a role session or of the Lambda service.
pub fn check(operation: &Operation) -> Result<Check, NotModelled> {
    let action = operation.action();
    let missing = |name: &str| NotModelled(format!("{} without {name}", operation.action()));
    match (operation.service.as_str(), operation.name.as_str()) {
        ("sts", "GetCallerIdentity") => Ok(Check::Free),
        ("sts", "AssumeRole") => Ok(Check::AssumeRole {
            role_arn: operation
                .parameter("RoleArn")
                .ok_or_else(|| missing("RoleArn"))?
                .to_string(),
        }),
        (
            "secretsmanager",
            name @ ("GetSecretValue"
            | "PutSecretValue"
            | "DescribeSecret"
            | "UpdateSecretVersionStage"),
        ) => {
            let implicit = match name {
                "GetSecretValue" => Some(Implicit {
                    action: "kms:Decrypt",
                    via: "secretsmanager",
                }),
                "PutSecretValue" => Some(Implicit {
                    action: "kms:GenerateDataKey",
                    via: "secretsmanager",
                }),
                _ => None,
            };
            Ok(Check::Secret {
                action,
                secret_id: operation
                    .parameter("SecretId")
                    .ok_or_else(|| missing("SecretId"))?
                    .to_string(),
                implicit,
            })
        }
        ("kms", "Decrypt" | "Encrypt" | "GenerateDataKey" | "ReEncrypt") => Ok(Check::Key {
            // Decrypt may leave the key to the ciphertext; the local cloud cannot read moto's
            // ciphertexts, so it needs the key named.
            key_id: operation
                .parameter("KeyId")
                .ok_or_else(|| missing("KeyId"))?
                .to_string(),
            action,
        }),
        ("lambda", "InvokeFunction") => Ok(Check::Function {
            function: operation
                .parameter("FunctionName")
                .ok_or_else(|| missing("FunctionName"))?
                .to_string(),
            action,
        }),
        ("dynamodb", "PutItem" | "GetItem" | "DeleteItem" | "UpdateItem") => Ok(Check::Table {
            action,
            table: operation
                .parameter("TableName")
                .ok_or_else(|| missing("TableName"))?
                .to_string(),
            implicit: Some(Implicit {
                action: "kms:Decrypt",
                via: "dynamodb",
            }),
        }),
        _ => Err(NotModelled(action)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_services_are_read_from_their_target() {
        let get = operation(
            "secretsmanager",
            Some("secretsmanager.GetSecretValue"),
            None,
            br#"{"SecretId":"sfstack-demo-sf-credentials"}"#,
        )
        .expect("an operation");
        assert_eq!(get.action(), "secretsmanager:GetSecretValue");
        assert_eq!(get.protocol, Protocol::Json11);
        assert_eq!(
            check(&get),
            Ok(Check::Secret {
                action: "secretsmanager:GetSecretValue".into(),
                secret_id: "sfstack-demo-sf-credentials".into(),
                implicit: Some(Implicit {
                    action: "kms:Decrypt",
                    via: "secretsmanager"
                }),
            })
        );
        let put = operation(
            "dynamodb",
            Some("DynamoDB_20120810.PutItem"),
            None,
            br#"{"TableName":"t","Item":{}}"#,
        )
        .expect("an operation");
        assert_eq!(put.protocol, Protocol::Json10);
        assert!(matches!(check(&put), Ok(Check::Table { table, .. }) if table == "t"));
    }

    #[test]
    fn query_services_are_read_from_their_action() {
        let assume = operation(
            "sts",
            None,
            None,
            b"Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fr&RoleSessionName=s",
        )
        .expect("an operation");
        assert_eq!(
            check(&assume),
            Ok(Check::AssumeRole {
                role_arn: "arn:aws:iam::1:role/r".into()
            })
        );
        let identity =
            operation("sts", None, Some("Action=GetCallerIdentity"), b"").expect("an operation");
        assert_eq!(check(&identity), Ok(Check::Free));
    }

    #[test]
    fn anything_else_is_not_modelled() {
        let delete = operation(
            "secretsmanager",
            Some("secretsmanager.DeleteSecret"),
            None,
            br#"{"SecretId":"x"}"#,
        )
        .expect("an operation");
        assert_eq!(
            check(&delete),
            Err(NotModelled("secretsmanager:DeleteSecret".into()))
        );
        let decrypt =
            operation("kms", Some("TrentService.Decrypt"), None, b"{}").expect("an operation");
        assert!(check(&decrypt).is_err());
        let missing = operation(
            "secretsmanager",
            Some("secretsmanager.GetSecretValue"),
            None,
            b"{}",
        )
        .expect("an operation");
        assert!(check(&missing).is_err());
        assert_eq!(operation("lambda", None, None, b""), None);
    }

    #[test]
    fn lambda_invoke_is_read_from_its_path() {
        let invoke = rest_operation(
            "lambda",
            "POST",
            "/2015-03-31/functions/sfstack-demo-sf-invoke-api/invocations",
        )
        .expect("an operation");
        assert_eq!(
            check(&invoke),
            Ok(Check::Function {
                action: "lambda:InvokeFunction".into(),
                function: "sfstack-demo-sf-invoke-api".into(),
            })
        );
        assert_eq!(
            rest_operation("lambda", "GET", "/2015-03-31/functions/f/invocations"),
            None
        );
        assert_eq!(
            rest_operation("s3", "POST", "/2015-03-31/functions/f/invocations"),
            None
        );
    }
}
