//! Who is behind an access key. The local cloud has three kinds of caller:
//!
//! - the **deployer**: the `xtask` commands, with moto's fixed key; an administrator of the
//!   account (its identity policy allows everything, so only resource and key policies can
//!   refuse it);
//! - the **Lambda service**: the local Lambda service, with a key of its own, which may only
//!   assume a function's execution role (and only if the role's trust policy lets
//!   `lambda.amazonaws.com` do so);
//! - **role sessions**: the temporary credentials an `AssumeRole` returned, learnt from the
//!   answer as it passes through the gateway; a function runs with these, as on Lambda.
//!
//! Any other key is refused, as AWS refuses a key it did not issue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The access key the `xtask` commands sign with (moto's documented default).
pub const DEPLOYER_ACCESS_KEY: &str = "testing";
/// The access key the local Lambda service signs with.
pub const LAMBDA_SERVICE_ACCESS_KEY: &str = "SFSTACKLAMBDASERVICE";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The account's administrator (`arn:aws:iam::ACCOUNT:user/sfstack-local-deployer`).
    Deployer { arn: String },
    /// `lambda.amazonaws.com`.
    LambdaService,
    /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
    RoleSession {
        session_arn: String,
        role_name: String,
    },
    /// An AWS service calling on its own behalf (`events.amazonaws.com`), or `*` for an
    /// anonymous caller; never behind an access key.
    Service { name: String },
}

impl Principal {
    /// The principal as AWS names it in an error message and in a policy evaluation.
    pub fn arn(&self) -> &str {
        match self {
            Self::Deployer { arn } => arn,
            Self::LambdaService => "lambda.amazonaws.com",
            Self::RoleSession { session_arn, .. } => session_arn,
            Self::Service { name } => name,
        }
    }
}

/// The access keys the gateway knows, shared by every request.
#[derive(Debug, Clone)]
pub struct Principals {
    account_id: String,
    sessions: Arc<Mutex<HashMap<String, Principal>>>,
}

impl Principals {
    pub fn new(account_id: impl Into<String>) -> Self {
        Self {
            account_id: account_id.into(),
            sessions: Arc::default(),
        }
    }

    /// The principal behind `access_key_id`, `None` for a key nobody issued.
    pub fn lookup(&self, access_key_id: &str) -> Option<Principal> {
        match access_key_id {
            DEPLOYER_ACCESS_KEY => Some(Principal::Deployer {
                arn: format!(
                    "arn:aws:iam::{}:user/sfstack-local-deployer",
                    self.account_id
                ),
            }),
            LAMBDA_SERVICE_ACCESS_KEY => Some(Principal::LambdaService),
            key => self
                .sessions
                .lock()
                .ok()
                .and_then(|sessions| sessions.get(key).cloned()),
        }
    }

    /// Records the credentials an `AssumeRole` answer handed out (STS's XML answer).
    pub fn learn_from_assume_role(&self, answer: &str) -> Option<Principal> {
        let access_key_id = element(answer, "AccessKeyId")?;
        let session_arn = element(answer, "Arn")?;
        // arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION
        let role_name = session_arn.split('/').nth(1)?.to_string();
        let principal = Principal::RoleSession {
            session_arn: session_arn.to_string(),
            role_name,
        };
        self.sessions
            .lock()
            .ok()?
            .insert(access_key_id.to_string(), principal.clone());
        Some(principal)
    }
}

/// The text of the first `<name>…</name>` element. STS answers are flat, generated XML; the
/// elements read here hold no markup or entities.
pub(crate) fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(xml[start..end].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <Credentials>
      <AccessKeyId>ASIAQWERTY</AccessKeyId>
      <SecretAccessKey>secret</SecretAccessKey>
      <SessionToken>token</SessionToken>
    </Credentials>
    <AssumedRoleUser>
      <AssumedRoleId>AROA:sfstack-demo-sf-invoke-api</AssumedRoleId>
      <Arn>arn:aws:sts::123456789012:assumed-role/sfstack-demo-sf-invoke-api-role/sfstack-demo-sf-invoke-api</Arn>
    </AssumedRoleUser>
  </AssumeRoleResult>
</AssumeRoleResponse>"#;

    #[test]
    fn keys_handed_out_by_assume_role_become_role_sessions() {
        let principals = Principals::new("123456789012");
        assert_eq!(principals.lookup("ASIAQWERTY"), None);
        principals.learn_from_assume_role(ANSWER);
        assert_eq!(
            principals.lookup("ASIAQWERTY"),
            Some(Principal::RoleSession {
                session_arn: "arn:aws:sts::123456789012:assumed-role/sfstack-demo-sf-invoke-api-role/sfstack-demo-sf-invoke-api".into(),
                role_name: "sfstack-demo-sf-invoke-api-role".into(),
            })
        );
    }

    #[test]
    fn the_fixed_keys_are_the_deployer_and_the_lambda_service() {
        let principals = Principals::new("123456789012");
        assert_eq!(
            principals
                .lookup(DEPLOYER_ACCESS_KEY)
                .map(|principal| principal.arn().to_string()),
            Some("arn:aws:iam::123456789012:user/sfstack-local-deployer".to_string())
        );
        assert_eq!(
            principals.lookup(LAMBDA_SERVICE_ACCESS_KEY),
            Some(Principal::LambdaService)
        );
        assert_eq!(principals.lookup("AKIAUNKNOWN"), None);
    }
}
