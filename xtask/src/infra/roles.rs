//! The functions' IAM roles: assumable by Lambda, each with one inline policy `sfstack` rendered
//! from `policies/<function>.json.hbs`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use aws_sdk_iam::Client;
use aws_sdk_iam::types::Tag;
use serde_json::json;

use super::{KeyInfo, SecretsInfo, Tags, decode_policy_document, partition};
use crate::aws_error::AwsContext;
use crate::naming::{FUNCTIONS, Names};
use crate::render::{PolicyInput, render_policy};

/// The name of each role's only inline policy.
pub const POLICY_NAME: &str = "sfstack";

fn trust_policy() -> serde_json::Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }],
    })
}

fn iam_tags(tags: &BTreeMap<String, String>) -> anyhow::Result<Vec<Tag>> {
    tags.iter()
        .map(|(key, value)| {
            Tag::builder()
                .key(key)
                .value(value)
                .build()
                .context("building an IAM tag")
        })
        .collect()
}

/// The exact ARNs each function's policy names, from the key and secrets just ensured.
pub fn policy_inputs(
    names: &Names,
    region: &str,
    account_id: &str,
    key: &KeyInfo,
    secrets: &SecretsInfo,
    keeps_refresh_token: bool,
    vpc: Option<&crate::config::Vpc>,
) -> BTreeMap<&'static str, PolicyInput> {
    let partition = partition(region);
    let ec2 = |resource: &str| format!("arn:{partition}:ec2:{region}:{account_id}:{resource}");
    let network = vpc.map(|vpc| crate::render::NetworkInput {
        subnet_arns: vpc
            .subnet_ids
            .iter()
            .map(|id| ec2(&format!("subnet/{id}")))
            .collect(),
        security_group_arns: vpc
            .security_group_ids
            .iter()
            .map(|id| ec2(&format!("security-group/{id}")))
            .collect(),
        network_interfaces_arn: ec2("network-interface/*"),
    });
    let table_arn = format!(
        "arn:{partition}:dynamodb:{region}:{account_id}:table/{}",
        names.oauth_table()
    );
    let states_table_arn = format!(
        "arn:{partition}:dynamodb:{region}:{account_id}:table/{}",
        names.oauth_states_table()
    );
    FUNCTIONS
        .into_iter()
        .map(|function| {
            let input = PolicyInput {
                region: region.to_string(),
                log_group_arn: format!(
                    "arn:{partition}:logs:{region}:{account_id}:log-group:{}",
                    names.log_group(function)
                ),
                credentials_secret_arn: secrets.credentials_arn.clone(),
                oauth_client_secret_arn: secrets.oauth_client_arn.clone(),
                session_secret_arn: secrets.session_arn.clone(),
                kms_key_arn: key.key_arn.clone(),
                table_arn: table_arn.clone(),
                states_table_arn: states_table_arn.clone(),
                keeps_refresh_token,
                token_refresh_function_arn: format!(
                    "arn:{partition}:lambda:{region}:{account_id}:function:{}",
                    names.function("sf-token-refresh")
                ),
                network: network.clone(),
            };
            (function, input)
        })
        .collect()
}

/// Makes sure every function's role exists with the Lambda trust policy and the tags, without
/// touching its permissions. The first step of a deploy: the key policy needs the roles to
/// exist. Returns function → role ARN.
pub async fn ensure_role_identities(
    client: &Client,
    names: &Names,
    tags: &Tags,
) -> anyhow::Result<BTreeMap<&'static str, String>> {
    let mut arns = BTreeMap::new();
    for function in FUNCTIONS {
        let arn = ensure_role(client, &names.role(function), function, names, tags).await?;
        arns.insert(function, arn);
    }
    Ok(arns)
}

async fn ensure_role(
    client: &Client,
    role: &str,
    function: &str,
    names: &Names,
    tags: &Tags,
) -> anyhow::Result<String> {
    let trust = trust_policy();
    let found = match client.get_role().role_name(role).send().await {
        Ok(output) => output.role,
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|error| error.is_no_such_entity_exception()) =>
        {
            None
        }
        Err(error) => return Err(error).aws_context(|| format!("reading IAM role {role}")),
    };
    let Some(found) = found else {
        let output = client
            .create_role()
            .role_name(role)
            .description(format!(
                "sfstack {}: execution role of {function}",
                names.environment
            ))
            .assume_role_policy_document(trust.to_string())
            .set_tags(Some(iam_tags(&tags.pairs())?))
            .send()
            .await
            .aws_context(|| format!("creating IAM role {role}"))?;
        super::changed(format!("created IAM role {role}"));
        let arn = output
            .role
            .map(|role| role.arn)
            .with_context(|| format!("creating IAM role {role}: no role returned"))?;
        return Ok(arn);
    };

    let current_trust = found
        .assume_role_policy_document()
        .and_then(decode_policy_document);
    if current_trust.as_ref() != Some(&trust) {
        client
            .update_assume_role_policy()
            .role_name(role)
            .policy_document(trust.to_string())
            .send()
            .await
            .aws_context(|| format!("updating the trust policy of IAM role {role}"))?;
        super::changed(format!("updated the trust policy of IAM role {role}"));
    }
    // GetRole's tags are not always complete; ListRoleTags is the reference.
    let existing: BTreeMap<String, String> = client
        .list_role_tags()
        .role_name(role)
        .send()
        .await
        .aws_context(|| format!("listing the tags of IAM role {role}"))?
        .tags()
        .iter()
        .map(|tag| (tag.key().to_string(), tag.value().to_string()))
        .collect();
    if let Some(desired) = tags.missing_from(&existing) {
        client
            .tag_role()
            .role_name(role)
            .set_tags(Some(iam_tags(&desired)?))
            .send()
            .await
            .aws_context(|| format!("tagging IAM role {role}"))?;
    }
    Ok(found.arn)
}

/// Makes sure every function's role exists (as [`ensure_role_identities`]) and carries the
/// inline policy `sfstack` rendered from `root/policies` with that function's `policy_inputs`.
/// The policy is written only when it differs from the current one. Returns function → role ARN.
pub async fn ensure_roles(
    client: &Client,
    names: &Names,
    tags: &Tags,
    root: &Path,
    policy_inputs: &BTreeMap<&'static str, PolicyInput>,
) -> anyhow::Result<BTreeMap<&'static str, String>> {
    // Render all first: a template error should stop the step before it changes anything.
    let mut policies = BTreeMap::new();
    for function in FUNCTIONS {
        let input = policy_inputs
            .get(function)
            .with_context(|| format!("no policy input for function {function}"))?;
        policies.insert(function, render_policy(root, function, input)?);
    }
    let arns = ensure_role_identities(client, names, tags).await?;
    for (function, policy) in &policies {
        let role = names.role(function);
        let current = match client
            .get_role_policy()
            .role_name(&role)
            .policy_name(POLICY_NAME)
            .send()
            .await
        {
            Ok(output) => decode_policy_document(output.policy_document()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|error| error.is_no_such_entity_exception()) =>
            {
                None
            }
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("reading policy {POLICY_NAME} of IAM role {role}"));
            }
        };
        if current.as_ref() != Some(policy) {
            client
                .put_role_policy()
                .role_name(&role)
                .policy_name(POLICY_NAME)
                .policy_document(policy.to_string())
                .send()
                .await
                .aws_context(|| format!("writing policy {POLICY_NAME} of IAM role {role}"))?;
            super::changed(format!("wrote policy {POLICY_NAME} of IAM role {role}"));
        }
    }
    Ok(arns)
}

/// Deletes every function's role, after its inline policies and any attached managed policy
/// (IAM refuses to delete a role that still has them). Returns the names of the roles deleted.
pub async fn delete_roles(client: &Client, names: &Names) -> anyhow::Result<Vec<String>> {
    let mut removed = Vec::new();
    for function in FUNCTIONS {
        let role = names.role(function);
        let inline = match client.list_role_policies().role_name(&role).send().await {
            Ok(output) => output.policy_names,
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|error| error.is_no_such_entity_exception()) =>
            {
                continue;
            }
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("listing the policies of IAM role {role}"));
            }
        };
        for policy in inline {
            match client
                .delete_role_policy()
                .role_name(&role)
                .policy_name(&policy)
                .send()
                .await
            {
                Ok(_) => {}
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|error| error.is_no_such_entity_exception()) => {}
                Err(error) => {
                    return Err(error)
                        .with_context(|| format!("deleting policy {policy} of IAM role {role}"));
                }
            }
        }
        let attached = client
            .list_attached_role_policies()
            .role_name(&role)
            .send()
            .await
            .aws_context(|| format!("listing the managed policies attached to IAM role {role}"))?;
        for policy in attached.attached_policies() {
            let Some(policy_arn) = policy.policy_arn() else {
                continue;
            };
            client
                .detach_role_policy()
                .role_name(&role)
                .policy_arn(policy_arn)
                .send()
                .await
                .aws_context(|| format!("detaching {policy_arn} from IAM role {role}"))?;
        }
        match client.delete_role().role_name(&role).send().await {
            Ok(_) => removed.push(role),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|error| error.is_no_such_entity_exception()) => {}
            Err(error) => return Err(error).aws_context(|| format!("deleting IAM role {role}")),
        }
    }
    Ok(removed)
}
