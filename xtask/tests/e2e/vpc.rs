//! `functions.vpc`: every function in the subnets and security groups, and each function role
//! allowed exactly what Lambda needs of it to make the function's network interfaces there.
//! Proven as the function policies are: each statement, action and resource of the network
//! statements is removed in turn, and Lambda (played by the gateway) then refuses an update of
//! the function with its own message.

use anyhow::Context;
use serde_json::Value;

use super::deployer::wait_for_stack;
use super::iam::{inline_policy, put_inline_policy, reductions};
use super::{Local, execute_by_hand};

/// The stack's current template with sf-invoke-api's description changed (an update of the
/// function, which Lambda checks as it checks a creation).
async fn template_updating_the_function(
    cloudformation: &aws_sdk_cloudformation::Client,
    stack: &str,
    round: usize,
) -> anyhow::Result<String> {
    let body = cloudformation
        .get_template()
        .stack_name(stack)
        .send()
        .await?
        .template_body()
        .context("no template")?
        .to_string();
    let mut template: serde_yaml::Value = serde_yaml::from_str(&body)?;
    let description = &mut template["Resources"]["SfInvokeApi"]["Properties"]["Description"];
    *description = serde_yaml::Value::String(format!("vpc round {round}"));
    Ok(serde_yaml::to_string(&template)?)
}

pub(crate) async fn functions_in_a_vpc_need_exactly_the_network_permissions_their_roles_have()
-> anyhow::Result<()> {
    let mut local = Local::new("vpc");
    let env = "e2e-vpc";
    let vpc = local.make_network().await?;
    let in_vpc = [("SFSTACK_FUNCTIONS_VPC", vpc.as_str())];
    let settings: toml::Table = toml::from_str(&format!("vpc = {vpc}"))?;
    let ids = |key: &str| -> Vec<String> {
        settings["vpc"][key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|id| id.as_str().map(str::to_string))
            .collect()
    };
    let (subnets, groups) = (ids("subnet_ids"), ids("security_group_ids"));

    // Subnets or security groups that do not exist are refused before anything is made.
    for (present, absent, key) in [
        (&subnets[1], "subnet-0f0f0f0f0f0f0f0f0", "subnet_ids"),
        (&groups[0], "sg-0f0f0f0f0f0f0f0f0", "security_group_ids"),
    ] {
        let refused = local.run(
            &["deploy", "--env", env],
            &[(
                "SFSTACK_FUNCTIONS_VPC",
                &vpc.replace(present.as_str(), absent),
            )],
        )?;
        assert_ne!(refused.code, 0);
        assert!(
            refused.stderr.contains(absent)
                && refused
                    .stderr
                    .contains(&format!("hint: check functions.vpc.{key}")),
            "{}",
            refused.stderr
        );
        assert!(!refused.stderr.contains("==> stack"), "{}", refused.stderr);
    }

    // A malformed setting is refused before anything is made, naming the key.
    let refused = local.run(
        &["deploy", "--env", env],
        &[(
            "SFSTACK_FUNCTIONS_VPC",
            r#"{ subnet_ids = ["subnet-1"], security_group_ids = ["sg-0c1d2e3f"] }"#,
        )],
    )?;
    assert_ne!(refused.code, 0);
    assert!(
        refused
            .stderr
            .contains("functions.vpc.subnet_ids: expected ids like"),
        "{}",
        refused.stderr
    );

    local.run(&["deploy", "--env", env], &in_vpc)?.ok()?;
    let sdk = local.sdk().await?;
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    for function in [
        "sf-invoke-api",
        "sf-token-refresh",
        "sf-secret-rotation",
        "sf-oauth-callback",
    ] {
        let configuration = lambda
            .get_function_configuration()
            .function_name(format!("sfstack-{env}-{function}"))
            .send()
            .await?;
        let config = configuration.vpc_config().context("a VpcConfig")?;
        assert_eq!(config.subnet_ids(), subnets, "{function}");
        assert_eq!(config.security_group_ids(), groups, "{function}");
    }
    local.run(&["smoke-test", "--env", env], &in_vpc)?.ok()?;

    let iam = aws_sdk_iam::Client::new(&sdk);
    let cloudformation = aws_sdk_cloudformation::Client::new(&sdk);
    let stack = format!("sfstack-{env}");
    let role = format!("sfstack-{env}-sf-invoke-api-role");
    let original = inline_policy(&iam, &role).await?;

    // The deploy above created the functions with the whole policy; each reduced policy makes
    // an update of the function fail (moto never sees these change sets: the gateway rolls
    // them back).
    let mut round = 0;
    for sid in [
        "ManageVpcNetworkInterfaces",
        "PlaceNetworkInterfacesInTheVpc",
        "DescribeNetworkInterfaces",
    ] {
        for (what, reduced) in reductions(&original, sid) {
            round += 1;
            put_inline_policy(&iam, &role, &reduced).await?;
            execute_by_hand(
                &cloudformation,
                &stack,
                &format!("vpc-round-{round}"),
                template_updating_the_function(&cloudformation, &stack, round).await?,
            )
            .await?;
            assert_eq!(
                wait_for_stack(&cloudformation, &stack).await?,
                "UPDATE_ROLLBACK_COMPLETE",
                "without {what}, Lambda refuses the function"
            );
            let events = cloudformation
                .describe_stack_events()
                .stack_name(&stack)
                .send()
                .await?;
            let reason = events
                .stack_events()
                .iter()
                .filter(|event| event.logical_resource_id() == Some("SfInvokeApi"))
                .find_map(|event| event.resource_status_reason())
                .unwrap_or_default();
            assert!(
                reason.contains("The provided execution role does not have permissions to call")
                    && reason.contains("on EC2"),
                "without {what}: {reason}"
            );
            let action = what
                .split('"')
                .nth(1)
                .filter(|value| value.starts_with("ec2:"))
                .map(|action| action.trim_start_matches("ec2:"));
            if let Some(action) = action {
                assert!(
                    reason.contains(&format!("call {action} on")),
                    "without {what}: {reason}"
                );
            }
            put_inline_policy(&iam, &role, &original).await?;
        }
    }
    let restored: Value = inline_policy(&iam, &role).await?;
    assert_eq!(restored, original);
    local.run(&["deploy", "--env", env], &in_vpc)?.ok()?;
    local.run(&["teardown", "--env", env], &in_vpc)?.ok()?;
    Ok(())
}
