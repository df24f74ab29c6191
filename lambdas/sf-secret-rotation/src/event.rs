//! The rotation event: which step Secrets Manager asks for, on which secret and version.

use aws_lambda_events::event::secretsmanager::SecretsManagerSecretRotationEvent;

use crate::error::Error;

/// The four steps of a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    CreateSecret,
    SetSecret,
    TestSecret,
    FinishSecret,
}

impl Step {
    pub fn parse(step: &str) -> Result<Self, Error> {
        match step {
            "createSecret" => Ok(Step::CreateSecret),
            "setSecret" => Ok(Step::SetSecret),
            "testSecret" => Ok(Step::TestSecret),
            "finishSecret" => Ok(Step::FinishSecret),
            other => Err(Error::InvalidEvent(format!(
                "unknown rotation step {other:?}; expected createSecret, setSecret, testSecret or finishSecret"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Step::CreateSecret => "createSecret",
            Step::SetSecret => "setSecret",
            Step::TestSecret => "testSecret",
            Step::FinishSecret => "finishSecret",
        }
    }
}

/// One step asked for by a rotation event, checked before anything is read or sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StepRequest<'a> {
    pub(crate) step: Step,
    pub(crate) secret_id: &'a str,
    /// The `ClientRequestToken`: the id of the version being rotated in.
    pub(crate) token: &'a str,
}

impl<'a> StepRequest<'a> {
    pub(crate) fn from_event(event: &'a SecretsManagerSecretRotationEvent) -> Result<Self, Error> {
        let step = Step::parse(&event.step)?;
        let secret_id = event.secret_id.as_str();
        let token = event.client_request_token.as_str();
        if secret_id.is_empty() || token.is_empty() {
            return Err(Error::InvalidEvent(
                "SecretId and ClientRequestToken are required".into(),
            ));
        }
        Ok(Self {
            step,
            secret_id,
            token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_parse_and_unknown_steps_are_invalid_events() {
        for step in [
            Step::CreateSecret,
            Step::SetSecret,
            Step::TestSecret,
            Step::FinishSecret,
        ] {
            assert_eq!(Step::parse(step.as_str()), Ok(step));
        }
        let error = Step::parse("rotateSecret").expect_err("unknown");
        assert_eq!(error.error_type(), "InvalidEvent");
    }
}
