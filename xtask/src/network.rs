//! `functions.vpc`: the subnets and security groups checked before anything is made. Lambda
//! refuses a function whose subnets or security groups do not exist, or are not all in one VPC
//! (Lambda Developer Guide, "Giving Lambda functions access to resources in an Amazon VPC");
//! found at deploy time, that would fail the stack half-way and roll it back. Checked here
//! first, with the caller's `ec2:DescribeSubnets` and `ec2:DescribeSecurityGroups`, which
//! Lambda uses too.

use std::collections::BTreeSet;

use anyhow::bail;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::operation::describe_security_groups::DescribeSecurityGroupsError;
use aws_sdk_ec2::operation::describe_subnets::DescribeSubnetsError;
use aws_sdk_ec2::types::{SecurityGroup, Subnet};

use crate::aws_error;
use crate::cloud::Cloud;
use crate::config::Vpc;

type SdkError<E> = aws_sdk_ec2::error::SdkError<E, aws_sdk_ec2::config::http::HttpResponse>;

async fn describe_subnets(
    cloud: &Cloud,
    ids: &[String],
) -> Result<Vec<Subnet>, SdkError<DescribeSubnetsError>> {
    let answer = cloud
        .ec2
        .describe_subnets()
        .set_subnet_ids(Some(ids.to_vec()))
        .send()
        .await?;
    Ok(answer.subnets().to_vec())
}

async fn describe_groups(
    cloud: &Cloud,
    ids: &[String],
) -> Result<Vec<SecurityGroup>, SdkError<DescribeSecurityGroupsError>> {
    let answer = cloud
        .ec2
        .describe_security_groups()
        .set_group_ids(Some(ids.to_vec()))
        .send()
        .await?;
    Ok(answer.security_groups().to_vec())
}

fn code<E: ProvideErrorMetadata>(error: &SdkError<E>) -> Option<&str> {
    error
        .as_service_error()
        .and_then(ProvideErrorMetadata::code)
}

/// Checks that every subnet and security group of `vpc` exists, in one VPC.
pub async fn check(cloud: &Cloud, vpc: &Vpc) -> anyhow::Result<()> {
    let missing = |key: &str, absent: &[&String]| {
        anyhow::anyhow!(
            "functions.vpc.{key}: {} not found\nhint: check functions.vpc.{key} in sfstack.toml: the ids must exist in {} of account {}",
            absent
                .iter()
                .map(|id| id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            cloud.region,
            cloud.account_id
        )
    };
    let refused = |what: &str, action: &str, said: String| {
        anyhow::anyhow!(
            "checking the {what} of functions.vpc: {said}\nhint: the deployer needs ec2:{action} (`cargo xtask bootstrap` grants it when functions.vpc is set)"
        )
    };
    // A request naming an id that does not exist is refused whole; each id is then asked
    // alone, so that the message names every missing one.
    let subnets = match describe_subnets(cloud, &vpc.subnet_ids).await {
        Ok(subnets) => subnets,
        Err(error) if code(&error) == Some("InvalidSubnetID.NotFound") => {
            let mut absent = Vec::new();
            for id in &vpc.subnet_ids {
                if describe_subnets(cloud, std::slice::from_ref(id))
                    .await
                    .is_err()
                {
                    absent.push(id);
                }
            }
            return Err(missing("subnet_ids", &absent));
        }
        Err(error) => {
            return Err(refused(
                "subnets",
                "DescribeSubnets",
                aws_error::message(&error),
            ));
        }
    };
    let groups = match describe_groups(cloud, &vpc.security_group_ids).await {
        Ok(groups) => groups,
        Err(error) if code(&error) == Some("InvalidGroup.NotFound") => {
            let mut absent = Vec::new();
            for id in &vpc.security_group_ids {
                if describe_groups(cloud, std::slice::from_ref(id))
                    .await
                    .is_err()
                {
                    absent.push(id);
                }
            }
            return Err(missing("security_group_ids", &absent));
        }
        Err(error) => {
            return Err(refused(
                "security groups",
                "DescribeSecurityGroups",
                aws_error::message(&error),
            ));
        }
    };
    // An answer that leaves an id out (EC2 answers only what exists when filters are used).
    let found: BTreeSet<&str> = subnets
        .iter()
        .filter_map(|subnet| subnet.subnet_id())
        .collect();
    let absent: Vec<&String> = vpc
        .subnet_ids
        .iter()
        .filter(|id| !found.contains(id.as_str()))
        .collect();
    if !absent.is_empty() {
        return Err(missing("subnet_ids", &absent));
    }
    let found: BTreeSet<&str> = groups.iter().filter_map(|group| group.group_id()).collect();
    let absent: Vec<&String> = vpc
        .security_group_ids
        .iter()
        .filter(|id| !found.contains(id.as_str()))
        .collect();
    if !absent.is_empty() {
        return Err(missing("security_group_ids", &absent));
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
