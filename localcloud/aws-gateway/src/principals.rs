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

    /// Issues credentials for a session of `role_arn` named `session_name` (what
    /// `AssumeRoleWithWebIdentity` hands out once STS has allowed it), and records them.
    pub fn issue(&self, role_arn: &str, session_name: &str) -> anyhow::Result<Issued> {
        let role_name = role_arn.rsplit('/').next().unwrap_or(role_arn).to_string();
        let session_arn = format!(
            "arn:aws:sts::{}:assumed-role/{role_name}/{session_name}",
            self.account_id
        );
        let issued = Issued {
            access_key_id: format!("ASIA{}", random_text(16)?),
            secret_access_key: random_text(40)?,
            session_token: random_text(64)?,
            arn: session_arn.clone(),
        };
        self.sessions
            .lock()
            .map_err(|_| anyhow::anyhow!("the session registry is poisoned"))?
            .insert(
                issued.access_key_id.clone(),
                Principal::RoleSession {
                    session_arn,
                    role_name,
                },
            );
        Ok(issued)
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

/// Temporary credentials the gateway issued.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Issued {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub arn: String,
}

/// `length` characters of STS's access-key alphabet (`A`–`Z`, `2`–`7`), from the system's
/// randomness.
fn random_text(length: usize) -> anyhow::Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bytes = vec![0u8; length];
    getrandom::fill(&mut bytes).map_err(|error| anyhow::anyhow!("no randomness: {error}"))?;
    Ok(bytes
        .iter()
        .map(|byte| char::from(ALPHABET[usize::from(*byte) % ALPHABET.len()]))
        .collect())
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
