//! The one way an AWS SDK error becomes a message: the service's error code and message (for a
//! request AWS answered) or the whole cause chain (for one it never answered: no network, a
//! timeout, bad credentials), with what we were doing as context.
//!
//! `anyhow`'s own conversion of an SDK error prints only "service error", which tells a user
//! nothing; every AWS call in `xtask` goes through [`AwsContext::aws_context`] instead.

use std::error::Error;
use std::fmt::{Debug, Display};

use anyhow::Context;
use aws_sdk_sts::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// `.aws_context(|| "reading secret X")` on the result of an SDK call.
pub trait AwsContext<T> {
    /// Turns the SDK error into an `anyhow::Error` carrying [`message`], with `context` on top.
    fn aws_context<C, F>(self, context: F) -> anyhow::Result<T>
    where
        C: Display + Send + Sync + 'static,
        F: FnOnce() -> C;
}

impl<T, E, R> AwsContext<T> for Result<T, SdkError<E, R>>
where
    E: Error + ProvideErrorMetadata + Send + Sync + 'static,
    R: Debug + Send + Sync + 'static,
{
    fn aws_context<C, F>(self, context: F) -> anyhow::Result<T>
    where
        C: Display + Send + Sync + 'static,
        F: FnOnce() -> C,
    {
        self.map_err(|error| anyhow::Error::msg(message(&error)))
            .with_context(context)
    }
}

/// What AWS said: `Code: message` for an answered request, the cause chain otherwise.
pub fn message<E, R>(error: &SdkError<E, R>) -> String
where
    E: Error + ProvideErrorMetadata + 'static,
    R: Debug,
{
    match error.as_service_error() {
        Some(service) => match (service.code(), service.message()) {
            (Some(code), Some(text)) => format!("{code}: {text}"),
            (Some(code), None) => code.to_string(),
            _ => DisplayErrorContext(error).to_string(),
        },
        None => DisplayErrorContext(error).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sts::error::ErrorMetadata;
    use aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityError;

    fn service_error(code: &str, text: &str) -> SdkError<GetCallerIdentityError, ()> {
        SdkError::service_error(
            GetCallerIdentityError::generic(
                ErrorMetadata::builder().code(code).message(text).build(),
            ),
            (),
        )
    }

    #[test]
    fn a_service_error_reads_as_its_code_and_message_under_the_context() {
        let result: Result<(), _> = Err(service_error(
            "AccessDenied",
            "User: arn:aws:iam::1:user/x is not authorized",
        ));
        let error = result
            .aws_context(|| "reading the caller")
            .expect_err("an error");
        assert_eq!(
            format!("{error:#}"),
            "reading the caller: AccessDenied: User: arn:aws:iam::1:user/x is not authorized"
        );
    }

    #[test]
    fn a_request_aws_never_answered_keeps_its_cause_chain() {
        let error: SdkError<GetCallerIdentityError, ()> =
            SdkError::timeout_error(std::io::Error::other("connect timed out"));
        let text = message(&error);
        assert!(text.contains("connect timed out"), "{text}");
    }
}
