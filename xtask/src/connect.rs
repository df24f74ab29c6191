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
                if !region.is_empty()
                    && region
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && account.len() == 12
                    && account.chars().all(|c| c.is_ascii_digit()) =>
            {
                match resource.strip_prefix("instance/") {
                    Some(id) if !id.is_empty() && !id.contains(['/', '*', '?']) => Ok(Self {
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

/// A Connect call that failed on an instance: the message says what happened and what to do;
/// `missing` is whether the instance does not exist.
#[derive(Debug)]
struct ConnectError {
    message: String,
    missing: bool,
    denied: bool,
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.message)
    }
}

impl std::error::Error for ConnectError {}

/// Whether `error` says the instance does not exist (there is then nothing of it to remove).
fn instance_missing(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<ConnectError>()
        .is_some_and(|error| error.missing)
}

/// Whether `error` is Connect (or IAM) refusing the caller.
pub fn access_denied(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<ConnectError>()
        .is_some_and(|error| error.denied)
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
            "hint: the deployer needs connect:AssociateLambdaFunction, connect:DisassociateLambdaFunction and connect:ListLambdaFunctions on {} (and the contact-flow actions on its flows, for connect.sample_flow), and lambda:AddPermission and lambda:RemovePermission on the function (`cargo xtask bootstrap` grants them for the instance in sfstack.toml)",
            instance.arn
        ),
        Some("InvalidContactFlowException") => {
            "hint: fix templates/sample-contact-flow.json.hbs (Amazon Connect's flow language), then deploy again".to_string()
        }
        _ => "hint: run the command again; it picks up where it stopped".to_string(),
    };
    anyhow::Error::new(ConnectError {
        message: format!(
            "{doing} the Amazon Connect instance {}: {said}\n{hint}",
            instance.arn
        ),
        // Connect answers 404 for an instance it does not have; a flow that is gone is
        // answered the same way, and is then nothing to remove either.
        missing: code == Some("ResourceNotFoundException"),
        denied: matches!(code, Some("AccessDeniedException" | "AccessDenied")),
    })
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
    match is_associated(cloud, instance, function_arn).await {
        Ok(true) => {}
        Ok(false) => return Ok(false),
        Err(error) if instance_missing(&error) => return Ok(false),
        Err(error) => return Err(error),
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

/// A contact flow of the instance, found by name.
pub struct FlowRef {
    pub id: String,
    pub arn: String,
}

/// The contact flow named `name` in the instance, if there is one.
pub async fn find_flow(
    cloud: &Cloud,
    instance: &Instance<'_>,
    name: &str,
) -> anyhow::Result<Option<FlowRef>> {
    let mut pages = cloud
        .connect
        .list_contact_flows()
        .instance_id(instance.id)
        .contact_flow_types(aws_sdk_connect::types::ContactFlowType::ContactFlow)
        .into_paginator()
        .items()
        .send();
    while let Some(summary) = pages.next().await {
        let summary = summary
            .map_err(|error| connect_error(&error, "listing the contact flows of", instance))?;
        if summary.name() == Some(name) {
            return Ok(Some(FlowRef {
                id: summary.id().unwrap_or_default().to_string(),
                arn: summary.arn().unwrap_or_default().to_string(),
            }));
        }
    }
    Ok(None)
}

/// The content of a contact flow.
pub async fn flow_content(
    cloud: &Cloud,
    instance: &Instance<'_>,
    flow: &FlowRef,
) -> anyhow::Result<String> {
    let described = cloud
        .connect
        .describe_contact_flow()
        .instance_id(instance.id)
        .contact_flow_id(&flow.id)
        .send()
        .await
        .map_err(|error| {
            connect_error(
                &error,
                &format!("reading the contact flow {} of", flow.arn),
                instance,
            )
        })?;
    Ok(described
        .contact_flow()
        .and_then(|flow| flow.content())
        .unwrap_or_default()
        .to_string())
}

/// The flow problems Connect found, when it refused a flow's content.
fn flow_problems(error: &aws_sdk_connect::types::error::InvalidContactFlowException) -> String {
    error
        .problems()
        .iter()
        .filter_map(|problem| problem.message())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Creates the published contact flow `name` with `content`, or brings an existing one's
/// content back to it; returns what changed.
pub async fn ensure_flow(
    cloud: &Cloud,
    instance: &Instance<'_>,
    name: &str,
    environment: &str,
    content: &str,
) -> anyhow::Result<Option<String>> {
    let Some(flow) = find_flow(cloud, instance, name).await? else {
        let created = cloud
            .connect
            .create_contact_flow()
            .instance_id(instance.id)
            .name(name)
            .r#type(aws_sdk_connect::types::ContactFlowType::ContactFlow)
            .description("sfstack's sample flow: phoneLookup, then a Case for the caller")
            .content(content)
            .status(aws_sdk_connect::types::ContactFlowStatus::Published)
            // The deployer may touch only flows tagged with its environments.
            .tags(crate::infra::TAG_ENV, environment)
            .send()
            .await;
        return match created {
            Ok(created) => Ok(Some(format!(
                "contact flow {name} created ({})",
                created.contact_flow_arn().unwrap_or_default()
            ))),
            Err(error) => {
                let problems = match error.as_service_error() {
                    Some(aws_sdk_connect::operation::create_contact_flow::CreateContactFlowError::InvalidContactFlowException(invalid)) => {
                        format!(" ({})", flow_problems(invalid))
                    }
                    _ => String::new(),
                };
                Err(connect_error(
                    &error,
                    &format!("creating the contact flow {name}{problems} in"),
                    instance,
                ))
            }
        };
    };
    // Compared as JSON: Connect may give the content back laid out another way.
    let same = |a: &str, b: &str| {
        serde_json::from_str::<serde_json::Value>(a).ok()
            == serde_json::from_str::<serde_json::Value>(b).ok()
    };
    if same(&flow_content(cloud, instance, &flow).await?, content) {
        return Ok(None);
    }
    cloud
        .connect
        .update_contact_flow_content()
        .instance_id(instance.id)
        .contact_flow_id(&flow.id)
        .content(content)
        .send()
        .await
        .map_err(|error| {
            let problems = match error.as_service_error() {
                Some(aws_sdk_connect::operation::update_contact_flow_content::UpdateContactFlowContentError::InvalidContactFlowException(invalid)) => {
                    format!(" ({})", flow_problems(invalid))
                }
                _ => String::new(),
            };
            connect_error(&error, &format!("updating the contact flow {name}{problems} in"), instance)
        })?;
    Ok(Some(format!("contact flow {name} updated")))
}

/// Deletes the contact flow `name` if the instance has it (an instance that is gone has none);
/// returns whether it did.
pub async fn delete_flow(
    cloud: &Cloud,
    instance: &Instance<'_>,
    name: &str,
) -> anyhow::Result<bool> {
    let flow = match find_flow(cloud, instance, name).await {
        Ok(Some(flow)) => flow,
        Ok(None) => return Ok(false),
        Err(error) if instance_missing(&error) => return Ok(false),
        Err(error) => return Err(error),
    };
    match cloud
        .connect
        .delete_contact_flow()
        .instance_id(instance.id)
        .contact_flow_id(&flow.id)
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
            &format!("deleting the contact flow {name} of"),
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
            "arn:aws:connect:*:123456789012:instance/x",
            "arn:aws:connect:eu-west-2:*:instance/x",
            "arn:aws:connect:eu-west-2:123456789012:instance/*",
        ] {
            let error = Instance::parse(arn).expect_err(arn).to_string();
            assert!(error.starts_with("connect.instance_arn:"), "{error}");
        }
    }
}
