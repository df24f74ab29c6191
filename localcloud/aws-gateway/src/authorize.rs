//! Deciding a request as IAM would: the table's check, the policies it needs, the evaluator's
//! verdict for the action and for each call the service makes on the caller's behalf, and the
//! decision log entry of each.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::deny::{self, Reason};
use crate::evaluator::{self, Evaluator, Simulation, Verdict};
use crate::policies::{KeyFacts, Policies};
use crate::principals::Principal;
use crate::table::{Check, Implicit, Resource};

/// The local deployer's identity policy: AWS's `AdministratorAccess` managed policy, as the
/// account's administrator has it. Only a resource policy (a KMS key policy that leaves the
/// account out, an explicit deny) or the table can refuse it.
static DEPLOYER_POLICY: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]
    })
});

/// One line of the decision log.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Entry {
    pub principal: String,
    pub action: String,
    pub resource: String,
    /// `allow` or `deny`.
    pub decision: &'static str,
    /// The statements that decided (allow), or why nothing allowed (deny).
    pub deciding: Vec<String>,
}

/// An AWS service (or, through a public Function URL, anyone) invoking a function: what the
/// local Lambda service asks the gateway before it runs a function for such a caller, as
/// Lambda checks the function's resource policy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, Serialize)]
pub struct ServiceInvocation {
    /// `events.amazonaws.com`, `secretsmanager.amazonaws.com`, `connect.amazonaws.com`, or `*`
    /// for an anonymous caller of a Function URL.
    pub principal: String,
    /// `lambda:InvokeFunction` or `lambda:InvokeFunctionUrl`.
    pub action: String,
    /// The function's ARN.
    pub function_arn: String,
    /// `aws:SourceArn`, `aws:SourceAccount`, `lambda:FunctionUrlAuthType`, …
    #[serde(default)]
    pub context: BTreeMap<String, String>,
    /// For a caller invoking as itself (no service): the access key its request was signed
    /// with. The invocation is then decided for the principal behind the key, by its identity
    /// policies and the function's policy, as Lambda decides a signed `Invoke`.
    #[serde(default)]
    pub access_key_id: Option<String>,
}

/// What the gateway does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Forward,
    Deny(String),
    /// Allowed, but the service fails it as AWS would (a key that is disabled or pending
    /// deletion): the error's code and message.
    Fail {
        code: &'static str,
        message: String,
    },
}

/// KMS refuses cryptographic operations with a key that is not enabled (KMS Developer Guide,
/// "Key states of AWS KMS keys"): `DisabledException` for a disabled key,
/// `KMSInvalidStateException` for one pending deletion. moto uses such keys anyway.
fn unusable_key(key: &KeyFacts) -> Option<Outcome> {
    match key.state.as_str() {
        "Enabled" => None,
        "Disabled" => Some(Outcome::Fail {
            code: "DisabledException",
            message: format!("{} is disabled.", key.arn),
        }),
        "PendingDeletion" => Some(Outcome::Fail {
            code: "KMSInvalidStateException",
            message: format!("{} is pending deletion.", key.arn),
        }),
        other => Some(Outcome::Fail {
            code: "KMSInvalidStateException",
            message: format!("{} is {other}.", key.arn),
        }),
    }
}

/// A resource's tags as the condition keys AWS evaluates them by (`aws:ResourceTag/<key>`).
fn resource_tags(
    tags: &std::collections::BTreeMap<String, String>,
) -> impl Iterator<Item = (String, Vec<String>)> + '_ {
    tags.iter()
        .map(|(key, value)| (format!("aws:ResourceTag/{key}"), vec![value.clone()]))
}

/// GitHub Actions' OpenID Connect issuer: its tokens' claims are condition keys of a trust
/// policy (`token.actions.githubusercontent.com:sub`, `…:aud`).
pub const GITHUB_OIDC_HOST: &str = "token.actions.githubusercontent.com";

/// The KMS actions that use a key's material, which its state can refuse.
const CRYPTOGRAPHIC: &[&str] = &[
    "kms:Decrypt",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:ReEncrypt",
];

/// Everything a decision needs.
#[derive(Clone)]
pub struct Authorizer {
    pub evaluator: Evaluator,
    pub policies: Policies,
    pub account_id: String,
    pub region: String,
}

impl Authorizer {
    /// Decides `check` for `principal`, appending what was decided to `log`.
    pub async fn decide(
        &self,
        principal: &Principal,
        check: &Check,
        log: &mut Vec<Entry>,
    ) -> anyhow::Result<Outcome> {
        match check {
            Check::Free => Ok(Outcome::Forward),
            Check::AssumeRole { role_arn } => self.assume_role(principal, role_arn, log).await,
            Check::Secret {
                action,
                secret_id,
                implicit,
                key,
            } => {
                let facts = self.policies.secret(secret_id).await?;
                let arn = match &facts {
                    Some(facts) => facts.arn.clone(),
                    // AWS authorizes a missing secret by the ARN the name would have.
                    None => self.arn("secretsmanager", &format!("secret:{secret_id}")),
                };
                let resource_policy = facts
                    .as_ref()
                    .and_then(|facts| facts.resource_policy.clone());
                let outcome = self
                    .evaluate(
                        principal,
                        action,
                        &arn,
                        BTreeMap::new(),
                        resource_policy,
                        log,
                    )
                    .await?;
                if outcome != Outcome::Forward {
                    return Ok(outcome);
                }
                // The key the request names, else the secret's own (none: the AWS managed key,
                // whose policy lets any caller in the account use it through Secrets Manager).
                let key_arn = match key {
                    Some(key) => Some(key.clone()),
                    None => facts.and_then(|facts| facts.key_arn),
                };
                match (implicit, key_arn) {
                    (Some(implicit), Some(key_arn)) => {
                        let context = BTreeMap::from([(
                            "kms:EncryptionContext:SecretARN".to_string(),
                            vec![arn.clone()],
                        )]);
                        self.implicit(principal, implicit, &key_arn, context, log)
                            .await
                            // Secrets Manager's own words when the key refuses its caller, or
                            // cannot be used (Secrets Manager API Reference: DecryptionFailure,
                            // EncryptionFailure).
                            .map(|outcome| match outcome {
                                Outcome::Deny(reason) => {
                                    Outcome::Deny(format!("Access to KMS is not allowed. {reason}"))
                                }
                                Outcome::Fail { .. } if implicit.action == "kms:Decrypt" => {
                                    Outcome::Fail {
                                        code: "DecryptionFailure",
                                        message: "Secrets Manager can't decrypt the protected secret text using the provided KMS key.".to_string(),
                                    }
                                }
                                Outcome::Fail { .. } => Outcome::Fail {
                                    code: "EncryptionFailure",
                                    message: "Secrets Manager can't encrypt the protected secret text using the provided KMS key. Check that the KMS key is available, enabled, and not in an invalid state.".to_string(),
                                },
                                forward => forward,
                            })
                    }
                    _ => Ok(Outcome::Forward),
                }
            }
            Check::Key { action, key_id } => self.decide_key(principal, action, key_id, log).await,
            Check::Alias {
                action,
                alias,
                key_id,
            } => {
                let arn = self.own("kms", alias);
                let outcome = self
                    .evaluate(principal, action, &arn, BTreeMap::new(), None, log)
                    .await?;
                if outcome != Outcome::Forward {
                    return Ok(outcome);
                }
                self.decide_key(principal, action, key_id, log).await
            }
            Check::Function { action, function } => {
                let arn = if function.starts_with("arn:") {
                    function.clone()
                } else {
                    self.arn("lambda", &format!("function:{function}"))
                };
                let resource_policy = self.policies.function_policy(&arn).await?;
                self.evaluate(
                    principal,
                    action,
                    &arn,
                    BTreeMap::new(),
                    resource_policy,
                    log,
                )
                .await
            }
            Check::Action { action, resource } => {
                let arn = self.resource_arn(resource);
                self.evaluate(principal, action, &arn, BTreeMap::new(), None, log)
                    .await
            }
            Check::Actions { checks, context } => {
                for (action, resource) in checks {
                    let arn = self.resource_arn(resource);
                    let outcome = self
                        .evaluate(principal, action, &arn, context.clone(), None, log)
                        .await?;
                    if outcome != Outcome::Forward {
                        return Ok(outcome);
                    }
                }
                Ok(Outcome::Forward)
            }
            Check::Table {
                action,
                table,
                implicit,
            } => {
                let arn = self.arn("dynamodb", &format!("table/{table}"));
                let outcome = self
                    .evaluate(principal, action, &arn, BTreeMap::new(), None, log)
                    .await?;
                if outcome != Outcome::Forward {
                    return Ok(outcome);
                }
                match (implicit, self.policies.table_key(table).await?) {
                    (Some(implicit), Some(key_arn)) => {
                        // DynamoDB's encryption context on every KMS call for a table.
                        let context = BTreeMap::from([
                            (
                                "kms:EncryptionContext:aws:dynamodb:tableName".to_string(),
                                vec![table.clone()],
                            ),
                            (
                                "kms:EncryptionContext:aws:dynamodb:subscriberId".to_string(),
                                vec![self.account_id.clone()],
                            ),
                        ]);
                        self.implicit(principal, implicit, &key_arn, context, log)
                            .await
                    }
                    _ => Ok(Outcome::Forward),
                }
            }
        }
    }

    /// The condition keys every KMS request on `key` carries: `kms:CallerAccount`, and the key's
    /// tags as `aws:ResourceTag/<key>`, added to `context`.
    fn key_context(
        &self,
        key: &KeyFacts,
        mut context: BTreeMap<String, Vec<String>>,
    ) -> BTreeMap<String, Vec<String>> {
        context.insert(
            "kms:CallerAccount".to_string(),
            vec![self.account_id.clone()],
        );
        context.extend(resource_tags(&key.tags));
        context
    }

    /// A KMS action on a key named by id, ARN or alias, decided with the key policy as KMS
    /// decides it, the key's tags as `aws:ResourceTag/<key>`.
    async fn decide_key(
        &self,
        principal: &Principal,
        action: &str,
        key_id: &str,
        log: &mut Vec<Entry>,
    ) -> anyhow::Result<Outcome> {
        // No such key: KMS answers NotFoundException before it decides anything.
        let Some(key) = self.policies.key(key_id).await? else {
            return Ok(Outcome::Forward);
        };
        let context = self.key_context(&key, BTreeMap::new());
        let outcome = self
            .evaluate(
                principal,
                action,
                &key.arn,
                context,
                Some(key.policy.clone()),
                log,
            )
            .await?;
        Ok(match outcome {
            Outcome::Forward if CRYPTOGRAPHIC.contains(&action) => {
                unusable_key(&key).unwrap_or(Outcome::Forward)
            }
            outcome => outcome,
        })
    }

    /// A permission CloudFormation's handler needs of its caller ([`crate::fidelity::handlers`]):
    /// a KMS key's with the key's policy too, as KMS decides; any other by the caller's
    /// identity policies.
    pub async fn decide_need(
        &self,
        principal: &Principal,
        need: &crate::fidelity::handlers::Need,
        log: &mut Vec<Entry>,
    ) -> anyhow::Result<Outcome> {
        if !need.key {
            return self
                .evaluate(
                    principal,
                    &need.action,
                    &need.resource,
                    need.context.clone(),
                    None,
                    log,
                )
                .await;
        }
        let Some(key) = self.policies.key(&need.resource).await? else {
            return Ok(Outcome::Deny(format!(
                "KMS key {} does not exist",
                need.resource
            )));
        };
        let context = self.key_context(&key, need.context.clone());
        self.evaluate(
            principal,
            &need.action,
            &key.arn,
            context,
            Some(key.policy.clone()),
            log,
        )
        .await
    }

    /// `sts:AssumeRoleWithWebIdentity` of `role_arn` with a GitHub Actions token whose `sub`
    /// claim is `subject` and `aud` is `sts.amazonaws.com`, as STS decides it: the account must
    /// have GitHub's OIDC provider with that audience, and the role's trust policy must allow
    /// the provider with the token's claims as condition keys (IAM User Guide, "Create a role
    /// for OpenID Connect federation", and "Available keys for AWS OIDC federation").
    pub async fn assume_role_with_web_identity(
        &self,
        role_arn: &str,
        subject: &str,
        log: &mut Vec<Entry>,
    ) -> anyhow::Result<Outcome> {
        const AUDIENCE: &str = "sts.amazonaws.com";
        let provider = format!(
            "arn:aws:iam::{}:oidc-provider/{GITHUB_OIDC_HOST}",
            self.account_id
        );
        match self.policies.oidc_provider_audiences(&provider).await? {
            None => {
                return Ok(Outcome::Fail {
                    code: "InvalidIdentityToken",
                    message: format!(
                        "No OpenIDConnect provider found in your account for https://{GITHUB_OIDC_HOST}"
                    ),
                });
            }
            Some(audiences) if !audiences.iter().any(|audience| audience == AUDIENCE) => {
                return Ok(Outcome::Fail {
                    code: "InvalidIdentityToken",
                    message: format!(
                        "Incorrect token audience (the provider {provider} does not list {AUDIENCE})"
                    ),
                });
            }
            Some(_) => {}
        }
        let trust = self.policies.trust_policy(role_arn).await?;
        let simulation =
            Simulation {
                principal: evaluator::Principal::Arn(provider.clone()),
                action: "sts:AssumeRoleWithWebIdentity".to_string(),
                resource_arn: role_arn.to_string(),
                resource_account: self.account_id.clone(),
                context: BTreeMap::from([
                    (format!("{GITHUB_OIDC_HOST}:sub"), vec![subject.to_string()]),
                    (
                        format!("{GITHUB_OIDC_HOST}:aud"),
                        vec![AUDIENCE.to_string()],
                    ),
                ]),
                identity_policies: Vec::new(),
                resource_policy: Some(trust.unwrap_or_else(
                    || serde_json::json!({"Version": "2012-10-17", "Statement": []}),
                )),
            };
        let principal = Principal::Service { name: provider };
        Ok(match self.record(&principal, &simulation, log).await? {
            Outcome::Deny(_) => {
                Outcome::Deny("Not authorized to perform sts:AssumeRoleWithWebIdentity".to_string())
            }
            outcome => outcome,
        })
    }

    /// Whether CloudWatch Logs may use `key_arn` to encrypt log group `log_group_arn`: only the
    /// key's policy can allow the service ([`crate::fidelity::log_keys`]). A key that does not
    /// exist is refused as well.
    pub async fn logs_may_use_key(
        &self,
        key_arn: &str,
        log_group_arn: &str,
        log: &mut Vec<Entry>,
    ) -> anyhow::Result<Outcome> {
        let Some(key) = self.policies.key(key_arn).await? else {
            return Ok(Outcome::Deny(format!("KMS key {key_arn} does not exist")));
        };
        let principal = Principal::Service {
            name: format!("logs.{}.amazonaws.com", self.region),
        };
        let context = BTreeMap::from([(
            "kms:EncryptionContext:aws:logs:arn".to_string(),
            vec![log_group_arn.to_string()],
        )]);
        let outcome = self
            .evaluate(
                &principal,
                "kms:GenerateDataKey",
                &key.arn,
                context,
                Some(key.policy.clone()),
                log,
            )
            .await?;
        Ok(match outcome {
            Outcome::Forward => unusable_key(&key).unwrap_or(Outcome::Forward),
            outcome => outcome,
        })
    }

    /// Decides whether `invocation`'s caller may invoke the function: only the function's
    /// resource policy can allow a service principal or an anonymous caller.
    pub async fn service_invocation(
        &self,
        invocation: &ServiceInvocation,
        log: &mut Vec<Entry>,
    ) -> anyhow::Result<Outcome> {
        let resource_policy = self
            .policies
            .function_policy(&invocation.function_arn)
            .await?;
        let principal = match invocation.principal.as_str() {
            "*" => evaluator::Principal::Anonymous,
            service => evaluator::Principal::Service(service.to_string()),
        };
        let simulation =
            Simulation {
                principal,
                action: invocation.action.clone(),
                resource_arn: invocation.function_arn.clone(),
                resource_account: self.account_id.clone(),
                context: invocation
                    .context
                    .iter()
                    .map(|(key, value)| (key.clone(), vec![value.clone()]))
                    .collect(),
                identity_policies: Vec::new(),
                resource_policy: Some(resource_policy.unwrap_or_else(
                    || serde_json::json!({"Version": "2012-10-17", "Statement": []}),
                )),
            };
        let caller = Principal::Service {
            name: invocation.principal.clone(),
        };
        self.record(&caller, &simulation, log).await
    }

    fn resource_arn(&self, resource: &Resource) -> String {
        match resource {
            Resource::Any => "*".to_string(),
            Resource::Arn(arn) => arn.clone(),
            Resource::Own { service, resource } => self.own(service, resource),
        }
    }

    fn arn(&self, service: &str, resource: &str) -> String {
        format!(
            "arn:aws:{service}:{}:{}:{resource}",
            self.region, self.account_id
        )
    }

    /// A resource of the account as its service writes the ARN: IAM's are global (no region),
    /// S3's are named by bucket alone (neither region nor account).
    fn own(&self, service: &str, resource: &str) -> String {
        match service {
            "iam" => format!("arn:aws:iam::{}:{resource}", self.account_id),
            "s3" => format!("arn:aws:s3:::{resource}"),
            service => self.arn(service, resource),
        }
    }

    /// `sts:AssumeRole` by the Lambda service: only a trust policy can allow it.
    async fn assume_role(
        &self,
        principal: &Principal,
        role_arn: &str,
        log: &mut Vec<Entry>,
    ) -> anyhow::Result<Outcome> {
        let trust = self.policies.trust_policy(role_arn).await?;
        let simulation = Simulation {
            principal: self.simulated(principal),
            action: "sts:AssumeRole".to_string(),
            resource_arn: role_arn.to_string(),
            resource_account: self.account_id.clone(),
            context: BTreeMap::new(),
            identity_policies: Vec::new(),
            resource_policy: Some(trust.unwrap_or_else(|| {
                serde_json::json!({
                    "Version": "2012-10-17",
                    "Statement": []
                })
            })),
        };
        self.record(principal, &simulation, log).await
    }

    /// A KMS action the service performs as its caller, through `via`.
    async fn implicit(
        &self,
        principal: &Principal,
        implicit: &Implicit,
        key_arn: &str,
        mut context: BTreeMap<String, Vec<String>>,
        log: &mut Vec<Entry>,
    ) -> anyhow::Result<Outcome> {
        // A key that is gone fails in the service, as it does on AWS.
        let Some(key) = self.policies.key(key_arn).await? else {
            return Ok(Outcome::Forward);
        };
        context.insert(
            "kms:ViaService".to_string(),
            vec![format!("{}.{}.amazonaws.com", implicit.via, self.region)],
        );
        let context = self.key_context(&key, context);
        let outcome = self
            .evaluate(
                principal,
                implicit.action,
                &key.arn,
                context,
                Some(key.policy.clone()),
                log,
            )
            .await?;
        Ok(match outcome {
            Outcome::Forward => unusable_key(&key).unwrap_or(Outcome::Forward),
            outcome => outcome,
        })
    }

    async fn evaluate(
        &self,
        principal: &Principal,
        action: &str,
        resource_arn: &str,
        context: BTreeMap<String, Vec<String>>,
        resource_policy: Option<Value>,
        log: &mut Vec<Entry>,
    ) -> anyhow::Result<Outcome> {
        let identity_policies = match principal {
            Principal::RoleSession { role_name, .. } => {
                self.policies.identity_policies(role_name).await?
            }
            Principal::Deployer { .. } => {
                vec![("AdministratorAccess".to_string(), DEPLOYER_POLICY.clone())]
            }
            // Services have no identity policy: only a resource's policy can allow them.
            Principal::LambdaService | Principal::Service { .. } => Vec::new(),
        };
        let simulation = Simulation {
            principal: self.simulated(principal),
            action: action.to_string(),
            resource_arn: resource_arn.to_string(),
            resource_account: self.account_id.clone(),
            context,
            identity_policies,
            resource_policy,
        };
        self.record(principal, &simulation, log).await
    }

    fn simulated(&self, principal: &Principal) -> evaluator::Principal {
        match principal {
            Principal::LambdaService => {
                evaluator::Principal::Service("lambda.amazonaws.com".to_string())
            }
            Principal::Service { name } if name == "*" => evaluator::Principal::Anonymous,
            Principal::Service { name } => evaluator::Principal::Service(name.clone()),
            other => evaluator::Principal::Arn(other.arn().to_string()),
        }
    }

    async fn record(
        &self,
        principal: &Principal,
        simulation: &Simulation,
        log: &mut Vec<Entry>,
    ) -> anyhow::Result<Outcome> {
        let key = serde_json::to_string(simulation)?;
        let decision = match self.policies.decided(&key) {
            Some(decision) => decision,
            None => {
                let decision = self.evaluator.evaluate(simulation).await?;
                self.policies.remember_decision(key, decision.clone());
                decision
            }
        };
        let allowed = decision.verdict == Verdict::Allowed;
        // A service or the Lambda service has no identity policy: only the resource's policy
        // (a function policy, a trust policy) can allow it.
        let has_no_identity = matches!(
            principal,
            Principal::Service { .. } | Principal::LambdaService
        );
        let denied_by = |kind: &str| decision.denied_by.iter().any(|denier| denier == kind);
        let reason = match decision.verdict {
            Verdict::Allowed => None,
            Verdict::ExplicitlyDenied => Some(Reason::ExplicitDeny {
                resource_based: has_no_identity || denied_by("resource"),
            }),
            Verdict::ImplicitlyDenied => Some(Reason::NoPolicyAllows {
                resource_based: has_no_identity
                    || (denied_by("resource") && !denied_by("identity")),
            }),
        };
        let message = reason.as_ref().map(|reason| {
            deny::message(
                principal.arn(),
                &simulation.action,
                &simulation.resource_arn,
                reason,
            )
        });
        log.push(Entry {
            principal: principal.arn().to_string(),
            action: simulation.action.clone(),
            resource: simulation.resource_arn.clone(),
            decision: if allowed { "allow" } else { "deny" },
            deciding: if allowed {
                decision.statements.clone()
            } else {
                message.iter().cloned().collect()
            },
        });
        Ok(match message {
            None => Outcome::Forward,
            Some(message) => Outcome::Deny(message),
        })
    }
}
