//! Amazon Connect: the association of `sf-invoke-api` with the configured instance. A Connect
//! instance invokes only the Lambda functions associated with it (Amazon Connect
//! Administrator Guide, "Invoke Lambda functions"; API `AssociateLambdaFunction`), so `deploy`
//! associates the function, `teardown` removes the association, and the smoke test checks it.
//! Each call reads before it writes, so a re-run changes nothing.

use anyhow::bail;
use aws_sdk_connect::error::ProvideErrorMetadata;

use crate::aws_error;
use crate::cloud::Cloud;

/// An instance ARN's parts: `arn:PARTITION:connect:REGION:ACCOUNT:instance/ID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance<'a> {
    pub arn: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub id: &'a str,
}

impl<'a> Instance<'a> {
    /// Reads an instance ARN; an error names what is wrong with it.
    pub fn parse(arn: &'a str) -> anyhow::Result<Self> {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        match parts.as_slice() {
            ["arn", _, "connect", region, account, resource]
                if !region.is_empty() && account.len() == 12 =>
            {
                match resource.strip_prefix("instance/") {
                    Some(id) if !id.is_empty() && !id.contains('/') => Ok(Self {
                        arn,
                        region,
                        account,
                        id,
                    }),
                    _ => bail!(
                        "connect.instance_arn: expected arn:aws:connect:REGION:ACCOUNT:instance/ID, got {arn:?}"
                    ),
                }
            }
            _ => bail!(
                "connect.instance_arn: expected arn:aws:connect:REGION:ACCOUNT:instance/ID, got {arn:?}"
            ),
        }
    }

    /// The instance must be where the functions are: Connect associates and invokes functions
    /// of its own account and Region.
    pub fn check_reachable(&self, cloud: &Cloud) -> anyhow::Result<()> {
        if self.region != cloud.region || self.account != cloud.account_id {
            bail!(
                "the Amazon Connect instance {} is in {} of account {}, but this deploy is in {} of account {}\nhint: deploy to the instance's account and region (--region, --profile), or set connect.instance_arn to an instance there",
                self.arn,
                self.region,
                self.account,
                cloud.region,
                cloud.account_id
            );
        }
        Ok(())
    }
}

/// What went wrong with a Connect call on `instance`, said so that a user can act on it.
fn connect_error<E, R>(
    error: &aws_sdk_connect::error::SdkError<E, R>,
    doing: &str,
    instance: &Instance<'_>,
) -> anyhow::Error
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    let said = aws_error::message(error);
    let code = error
        .as_service_error()
        .and_then(ProvideErrorMetadata::code);
    let hint = match code {
        Some("ResourceNotFoundException") => format!(
            "hint: check connect.instance_arn: no Amazon Connect instance {} exists in {} of account {} (the console shows an instance's ARN under its overview)",
            instance.id, instance.region, instance.account
        ),
        Some("AccessDeniedException" | "AccessDenied") => format!(
            "hint: the deployer needs connect:AssociateLambdaFunction, connect:DisassociateLambdaFunction and connect:ListLambdaFunctions on {}, and lambda:AddPermission and lambda:RemovePermission on the function (`cargo xtask bootstrap` grants them for the instances in sfstack.toml)",
            instance.arn
        ),
        _ => "hint: run the command again; it picks up where it stopped".to_string(),
    };
    anyhow::anyhow!(
        "{doing} the Amazon Connect instance {}: {said}\n{hint}",
        instance.arn
    )
}

type ListError = aws_sdk_connect::error::SdkError<
    aws_sdk_connect::operation::list_lambda_functions::ListLambdaFunctionsError,
    aws_sdk_connect::config::http::HttpResponse,
>;

/// Whether `function_arn` is associated with the instance, as Connect answered.
async fn listed(
    cloud: &Cloud,
    instance: &Instance<'_>,
    function_arn: &str,
) -> Result<bool, ListError> {
    let mut pages = cloud
        .connect
        .list_lambda_functions()
        .instance_id(instance.id)
        .into_paginator()
        .items()
        .send();
    while let Some(arn) = pages.next().await {
        if arn? == function_arn {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether `function_arn` is associated with the instance.
pub async fn is_associated(
    cloud: &Cloud,
    instance: &Instance<'_>,
    function_arn: &str,
) -> anyhow::Result<bool> {
    listed(cloud, instance, function_arn)
        .await
        .map_err(|error| connect_error(&error, "listing the functions associated with", instance))
}

/// Associates `function_arn` with the instance unless it is; returns whether it changed.
pub async fn associate(
    cloud: &Cloud,
    instance: &Instance<'_>,
    function_arn: &str,
) -> anyhow::Result<bool> {
    if is_associated(cloud, instance, function_arn).await? {
        return Ok(false);
    }
    match cloud
        .connect
        .associate_lambda_function()
        .instance_id(instance.id)
        .function_arn(function_arn)
        .send()
        .await
    {
        Ok(_) => Ok(true),
        // Associated meanwhile (another run): what was wanted.
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|error| error.is_resource_conflict_exception()) =>
        {
            Ok(false)
        }
        Err(error) => Err(connect_error(
            &error,
            &format!("associating {function_arn} with"),
            instance,
        )),
    }
}

/// Removes the association of `function_arn` with the instance if there is one (an instance
/// that no longer exists has none); returns whether it changed.
pub async fn disassociate(
    cloud: &Cloud,
    instance: &Instance<'_>,
    function_arn: &str,
) -> anyhow::Result<bool> {
    match listed(cloud, instance, function_arn).await {
        Ok(true) => {}
        Ok(false) => return Ok(false),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|error| error.is_resource_not_found_exception()) =>
        {
            return Ok(false);
        }
        Err(error) => {
            return Err(connect_error(
                &error,
                "listing the functions associated with",
                instance,
            ));
        }
    }
    match cloud
        .connect
        .disassociate_lambda_function()
        .instance_id(instance.id)
        .function_arn(function_arn)
        .send()
        .await
    {
        Ok(_) => Ok(true),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|error| error.is_resource_not_found_exception()) =>
        {
            Ok(false)
        }
        Err(error) => Err(connect_error(
            &error,
            &format!("removing the association of {function_arn} with"),
            instance,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_arn_is_read_into_its_parts() {
        let arn =
            "arn:aws:connect:eu-west-2:123456789012:instance/0c2a4b6e-e2e0-4c0a-9d3f-5a1b2c3d4e5f";
        assert_eq!(
            Instance::parse(arn).expect("an instance"),
            Instance {
                arn,
                region: "eu-west-2",
                account: "123456789012",
                id: "0c2a4b6e-e2e0-4c0a-9d3f-5a1b2c3d4e5f",
            }
        );
    }

    #[test]
    fn anything_else_is_refused_naming_the_setting() {
        for arn in [
            "0c2a4b6e",
            "arn:aws:connect:eu-west-2:123456789012:instance/",
            "arn:aws:connect:eu-west-2:123456789012:instance/x/queue/y",
            "arn:aws:connect:eu-west-2:1234:instance/x",
            "arn:aws:lambda:eu-west-2:123456789012:function:x",
        ] {
            let error = Instance::parse(arn).expect_err(arn).to_string();
            assert!(error.starts_with("connect.instance_arn:"), "{error}");
        }
    }
}
