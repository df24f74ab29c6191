//! `functions.vpc`: the subnets and security groups checked before anything is made. Lambda
//! refuses a function whose subnets or security groups do not exist, or are not all in one VPC
//! (Lambda Developer Guide, "Giving Lambda functions access to resources in an Amazon VPC");
//! found at deploy time, that would fail the stack half-way and roll it back. Checked here
//! first, with the caller's `ec2:DescribeSubnets` and `ec2:DescribeSecurityGroups`, which
//! Lambda uses too.

use std::collections::BTreeSet;

use anyhow::bail;
use aws_sdk_ec2::error::ProvideErrorMetadata;

use crate::aws_error;
use crate::cloud::Cloud;
use crate::config::Vpc;

/// Checks that every subnet and security group of `vpc` exists, in one VPC.
pub async fn check(cloud: &Cloud, vpc: &Vpc) -> anyhow::Result<()> {
    let hint = |what: &str| {
        format!(
            "hint: check functions.vpc.{what} in sfstack.toml: the ids must exist in {} of account {}",
            cloud.region, cloud.account_id
        )
    };
    let subnets = match cloud
        .ec2
        .describe_subnets()
        .set_subnet_ids(Some(vpc.subnet_ids.clone()))
        .send()
        .await
    {
        Ok(answer) => answer.subnets().to_vec(),
        Err(error) => {
            let missing = error
                .as_service_error()
                .and_then(ProvideErrorMetadata::code)
                == Some("InvalidSubnetID.NotFound");
            bail!(
                "checking the subnets of functions.vpc: {}\n{}",
                aws_error::message(&error),
                if missing {
                    hint("subnet_ids")
                } else {
                    "hint: the deployer needs ec2:DescribeSubnets (`cargo xtask bootstrap` grants it when functions.vpc is set)".to_string()
                }
            );
        }
    };
    let groups = match cloud
        .ec2
        .describe_security_groups()
        .set_group_ids(Some(vpc.security_group_ids.clone()))
        .send()
        .await
    {
        Ok(answer) => answer.security_groups().to_vec(),
        Err(error) => {
            let missing = error
                .as_service_error()
                .and_then(ProvideErrorMetadata::code)
                == Some("InvalidGroup.NotFound");
            bail!(
                "checking the security groups of functions.vpc: {}\n{}",
                aws_error::message(&error),
                if missing {
                    hint("security_group_ids")
                } else {
                    "hint: the deployer needs ec2:DescribeSecurityGroups (`cargo xtask bootstrap` grants it when functions.vpc is set)".to_string()
                }
            );
        }
    };
    let found: BTreeSet<&str> = subnets
        .iter()
        .filter_map(|subnet| subnet.subnet_id())
        .collect();
    if let Some(absent) = vpc
        .subnet_ids
        .iter()
        .find(|id| !found.contains(id.as_str()))
    {
        bail!(
            "functions.vpc.subnet_ids: {absent} was not found\n{}",
            hint("subnet_ids")
        );
    }
    let found: BTreeSet<&str> = groups.iter().filter_map(|group| group.group_id()).collect();
    if let Some(absent) = vpc
        .security_group_ids
        .iter()
        .find(|id| !found.contains(id.as_str()))
    {
        bail!(
            "functions.vpc.security_group_ids: {absent} was not found\n{}",
            hint("security_group_ids")
        );
    }
    let vpcs: BTreeSet<(&str, &str)> = subnets
        .iter()
        .map(|subnet| {
            (
                subnet.vpc_id().unwrap_or_default(),
                subnet.subnet_id().unwrap_or_default(),
            )
        })
        .chain(groups.iter().map(|group| {
            (
                group.vpc_id().unwrap_or_default(),
                group.group_id().unwrap_or_default(),
            )
        }))
        .collect();
    let distinct: BTreeSet<&str> = vpcs.iter().map(|(vpc, _)| *vpc).collect();
    if distinct.len() > 1 {
        let listed: Vec<String> = vpcs
            .iter()
            .map(|(vpc, id)| format!("{id} in {vpc}"))
            .collect();
        bail!(
            "functions.vpc: the subnets and security groups must all be in one VPC, as Lambda requires; they are in {}: {}\nhint: pick subnets and security groups of one VPC",
            distinct.len(),
            listed.join(", ")
        );
    }
    Ok(())
}
