//! Deploy step "permissions": what CloudFormation is not asked to make (the local cloud does not
//! implement these as resources), made through the SDK on both targets: the callback's
//! Function URL, the functions' resource permissions with fixed statement ids, rotation of the
//! credentials secret, the association of the contact-flow function with the Amazon Connect
//! instance ([`crate::connect`]), and on the local target the callback URL on the demo
//! connected app.
//! Each part reads before it writes, so a re-run changes nothing.

use crate::aws_error::AwsContext;
use crate::cloud::Cloud;
use crate::config::Settings;
use crate::connect;
use crate::infra::partition;
use crate::naming::Names;

/// Days between automatic rotations of the credentials secret.
const ROTATION_DAYS: i64 = 30;

/// Statement ids of the resource permissions this tool adds: fixed, so a re-run finds them.
pub const SID_SCHEDULE: &str = "sfstack-token-refresh-schedule";
pub const SID_ROTATION: &str = "sfstack-secrets-manager-rotation";
pub const SID_CONNECT: &str = "sfstack-amazon-connect";
pub const SID_URL: &str = "sfstack-function-url";
pub const SID_URL_INVOKE: &str = "sfstack-function-url-invoke";

/// Whether the credentials secret is rotated: only refresh-token credentials are (the rotation
/// function renews the token set); a JWT key, a password or a client secret is renewed by an
/// admin, not by a Lambda.
pub fn rotates(settings: &Settings) -> bool {
    settings.salesforce.auth_flow == "refresh_token"
}

/// Everything this step ensures; returns what it changed, one line each (never a value).
pub(super) async fn wire(
    cloud: &Cloud,
    names: &Names,
    settings: &Settings,
    credentials_secret_arn: &str,
    callback_url: &str,
    connect_instance_arn: Option<&str>,
    sample_flow: Option<&str>,
) -> anyhow::Result<Vec<String>> {
    let mut changes = Vec::new();
    let contact_flow_function = names.function("sf-invoke-api");
    // The instance the function was last associated with, from the permission that named it:
    // its sample flow and the association go before the permission is changed, so that a run
    // stopped half-way still finds them next time.
    let previous_instance =
        connect_instance_of(&policy_statements(cloud, &contact_flow_function).await?);
    let contact_flow_arn = cloud.arn("lambda", &format!("function:{contact_flow_function}"));
    if let Some(previous) = previous_instance
        .as_deref()
        .filter(|previous| Some(*previous) != connect_instance_arn)
    {
        changes.extend(leave_previous_instance(cloud, names, previous, &contact_flow_arn).await?);
    }
    let wanted = permissions(
        &cloud.region,
        &cloud.account_id,
        names,
        credentials_secret_arn,
        connect_instance_arn,
    );
    for (crate_name, permission) in wanted {
        let function = names.function(crate_name);
        if ensure_permission(cloud, &function, &permission).await? {
            changes.push(format!("permission {} on {function}", permission.sid));
        }
    }
    if connect_instance_arn.is_none()
        && remove_permission(cloud, &contact_flow_function, SID_CONNECT).await?
    {
        changes.push(format!(
            "permission {SID_CONNECT} removed from {contact_flow_function}"
        ));
    }
    if let Some(arn) = connect_instance_arn {
        let instance = connect::Instance::parse(arn)?;
        if connect::associate(cloud, &instance, &contact_flow_arn).await? {
            changes.push(format!("{contact_flow_function} associated with {arn}"));
        }
        // After the association: Connect publishes a flow only if the functions it invokes
        // are associated with the instance.
        match sample_flow {
            Some(content) => changes.extend(
                connect::ensure_flow(
                    cloud,
                    &instance,
                    &names.sample_flow(),
                    &names.environment,
                    content,
                )
                .await?,
            ),
            None => {
                if connect::delete_flow(cloud, &instance, &names.sample_flow()).await? {
                    changes.push(format!("contact flow {} deleted", names.sample_flow()));
                }
            }
        }
    }
    let rotation_function = names.function("sf-secret-rotation");
    let rotation_arn = cloud.arn("lambda", &format!("function:{rotation_function}"));
    let rotation_changed = converge_rotation(
        cloud,
        credentials_secret_arn,
        rotates(settings).then_some(rotation_arn.as_str()),
    )
    .await?;
    if rotation_changed {
        changes.push(format!(
            "rotation of {} {}",
            names.credentials_secret(),
            if rotates(settings) {
                "enabled"
            } else {
                "disabled"
            }
        ));
    }
    if let Some(org) = cloud.local_org() {
        org.register_callback_url(callback_url).await?;
    }
    Ok(changes)
}

/// Removes the sample flow and the association from the instance the function was associated
/// with before; what the deployer may no longer do there is left, with a warning that says
/// how to do it by hand.
async fn leave_previous_instance(
    cloud: &Cloud,
    names: &Names,
    previous: &str,
    function_arn: &str,
) -> anyhow::Result<Vec<String>> {
    let Ok(instance) = connect::Instance::parse(previous) else {
        note!(
            "warning: the permission {SID_CONNECT} names {previous:?}, which is not an Amazon Connect instance ARN; nothing was removed from it"
        );
        return Ok(Vec::new());
    };
    let mut changes = Vec::new();
    let flow = names.sample_flow();
    let removed = async {
        if connect::delete_flow(cloud, &instance, &flow).await? {
            changes.push(format!("contact flow {flow} deleted from {previous}"));
        }
        if connect::disassociate(cloud, &instance, function_arn).await? {
            changes.push(format!(
                "{function_arn} no longer associated with {previous}"
            ));
        }
        anyhow::Ok(())
    }
    .await;
    match removed {
        Ok(()) => {}
        Err(error) if connect::access_denied(&error) => note!(
            "warning: {error:#}\nthe previous instance keeps them; to remove them by hand: aws connect disassociate-lambda-function --instance-id {} --function-arn {function_arn} (and delete the contact flow {flow} there)",
            instance.id
        ),
        Err(error) => return Err(error),
    }
    Ok(changes)
}

/// The callback's Function URL, if the function and its URL exist.
pub(super) async fn existing_function_url(
    cloud: &Cloud,
    function: &str,
) -> anyhow::Result<Option<String>> {
    match cloud
        .lambda
        .get_function_url_config()
        .function_name(function)
        .send()
        .await
    {
        Ok(output) => Ok(Some(output.function_url().to_string())),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|error| error.is_resource_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(error) => Err(error).aws_context(|| format!("reading the Function URL of {function}")),
    }
}

pub(super) async fn ensure_function_url(cloud: &Cloud, function: &str) -> anyhow::Result<String> {
    if let Some(url) = existing_function_url(cloud, function).await? {
        return Ok(url);
    }
    let output = cloud
        .lambda
        .create_function_url_config()
        .function_name(function)
        .auth_type(aws_sdk_lambda::types::FunctionUrlAuthType::None)
        .send()
        .await
        .aws_context(|| format!("creating the Function URL of {function}"))?;
    Ok(output.function_url().to_string())
}

/// One resource-based permission on a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    pub sid: &'static str,
    pub action: &'static str,
    pub principal: String,
    pub source_arn: Option<String>,
    pub source_account: Option<String>,
    pub url_auth_none: bool,
    pub via_function_url: bool,
}

/// The statements of a function's resource policy (none if it has no policy, or no function).
pub(crate) async fn policy_statements(
    cloud: &Cloud,
    function: &str,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let policy = match cloud
        .lambda
        .get_policy()
        .function_name(function)
        .send()
        .await
    {
        Ok(output) => output.policy().map(str::to_string),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|error| error.is_resource_not_found_exception()) =>
        {
            None
        }
        Err(error) => {
            return Err(error).aws_context(|| format!("reading the resource policy of {function}"));
        }
    };
    Ok(policy
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|document| document.get("Statement").cloned())
        .and_then(|statements| statements.as_array().cloned())
        .unwrap_or_default())
}

/// The Amazon Connect instance that [`SID_CONNECT`] admits, among a function's statements.
pub(crate) fn connect_instance_of(statements: &[serde_json::Value]) -> Option<String> {
    statements
        .iter()
        .find(|statement| statement.get("Sid").and_then(|sid| sid.as_str()) == Some(SID_CONNECT))
        .and_then(|statement| condition_value(statement, "aws:sourcearn"))
}

/// Adds `permission` unless a statement with its id and principal is there already; a
/// statement with the id but another principal or source is replaced.
async fn ensure_permission(
    cloud: &Cloud,
    function: &str,
    permission: &Permission,
) -> anyhow::Result<bool> {
    let statements = policy_statements(cloud, function).await?;
    let existing: Vec<&serde_json::Value> = statements
        .iter()
        .filter(|statement| {
            statement.get("Sid").and_then(|sid| sid.as_str()) == Some(permission.sid)
        })
        .collect();
    if existing.len() == 1 && statement_matches(existing[0], permission) {
        return Ok(false);
    }
    if !existing.is_empty() {
        cloud
            .lambda
            .remove_permission()
            .function_name(function)
            .statement_id(permission.sid)
            .send()
            .await
            .aws_context(|| format!("replacing permission {} of {function}", permission.sid))?;
    }
    let mut request = cloud
        .lambda
        .add_permission()
        .function_name(function)
        .statement_id(permission.sid)
        .action(permission.action)
        .principal(&permission.principal)
        .set_source_arn(permission.source_arn.clone())
        .set_source_account(permission.source_account.clone());
    if permission.url_auth_none {
        request = request.function_url_auth_type(aws_sdk_lambda::types::FunctionUrlAuthType::None);
    }
    if permission.via_function_url {
        request = request.invoked_via_function_url(true);
    }
    request.send().await.aws_context(|| {
        format!(
            "allowing {} to call {function} (permission {})",
            permission.principal, permission.sid
        )
    })?;
    Ok(true)
}

/// Removes a statement this tool added, if it is there (a setting that was turned off).
async fn remove_permission(cloud: &Cloud, function: &str, sid: &str) -> anyhow::Result<bool> {
    match cloud
        .lambda
        .remove_permission()
        .function_name(function)
        .statement_id(sid)
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
        Err(error) => {
            Err(error).aws_context(|| format!("removing permission {sid} from {function}"))
        }
    }
}

/// Whether a statement of the function's policy grants `permission`, no more and no less: same
/// principal, action, source ARN, source account and Function URL conditions
/// (`lambda:FunctionUrlAuthType`, `lambda:InvokedViaFunctionUrl`, which Lambda keeps as
/// conditions of the statement; so does the local cloud's gateway).
fn statement_matches(statement: &serde_json::Value, permission: &Permission) -> bool {
    let principal = match statement.get("Principal") {
        Some(serde_json::Value::String(text)) => text.clone(),
        Some(other) => other
            .get("Service")
            .or_else(|| other.get("AWS"))
            .and_then(|value| value.as_str())
            .unwrap_or_default()
            .to_string(),
        None => String::new(),
    };
    principal == permission.principal
        && statement.get("Action").and_then(|action| action.as_str()) == Some(permission.action)
        && condition_value(statement, "aws:sourcearn") == permission.source_arn
        && condition_value(statement, "aws:sourceaccount") == permission.source_account
        && condition_value(statement, "lambda:functionurlauthtype").as_deref()
            == permission.url_auth_none.then_some("NONE")
        && condition_value(statement, "lambda:invokedviafunctionurl").as_deref()
            == permission.via_function_url.then_some("true")
}

/// The value a statement's condition gives `key` (compared case-insensitively, as IAM does
/// for condition keys), under any operator.
fn condition_value(statement: &serde_json::Value, key: &str) -> Option<String> {
    statement
        .get("Condition")?
        .as_object()?
        .values()
        .filter_map(|operator| operator.as_object())
        .flat_map(|pairs| pairs.iter())
        .find(|(name, _)| name.eq_ignore_ascii_case(key))
        .and_then(|(_, value)| match value {
            serde_json::Value::String(text) => Some(text.clone()),
            serde_json::Value::Array(values) if values.len() == 1 => {
                values[0].as_str().map(str::to_string)
            }
            _ => None,
        })
}

/// The resource permissions the functions need, by function crate: EventBridge's rule may run
/// the token refresh, Secrets Manager (for this secret only) the rotation, anyone the callback
/// through its Function URL only, and Amazon Connect (this instance, this account) the
/// contact-flow function.
fn permissions(
    region: &str,
    account_id: &str,
    names: &Names,
    credentials_secret_arn: &str,
    connect_instance_arn: Option<&str>,
) -> Vec<(&'static str, Permission)> {
    let base = |sid, action, principal: &str| Permission {
        sid,
        action,
        principal: principal.to_string(),
        source_arn: None,
        source_account: None,
        url_auth_none: false,
        via_function_url: false,
    };
    let mut list = vec![
        (
            "sf-token-refresh",
            Permission {
                source_arn: Some(format!(
                    "arn:{}:events:{region}:{account_id}:rule/{}",
                    partition(region),
                    names.refresh_rule()
                )),
                ..base(
                    SID_SCHEDULE,
                    "lambda:InvokeFunction",
                    "events.amazonaws.com",
                )
            },
        ),
        (
            "sf-secret-rotation",
            Permission {
                source_arn: Some(credentials_secret_arn.to_string()),
                ..base(
                    SID_ROTATION,
                    "lambda:InvokeFunction",
                    "secretsmanager.amazonaws.com",
                )
            },
        ),
        (
            "sf-oauth-callback",
            Permission {
                url_auth_none: true,
                ..base(SID_URL, "lambda:InvokeFunctionUrl", "*")
            },
        ),
        (
            "sf-oauth-callback",
            Permission {
                via_function_url: true,
                ..base(SID_URL_INVOKE, "lambda:InvokeFunction", "*")
            },
        ),
    ];
    if let Some(instance) = connect_instance_arn {
        list.push((
            "sf-invoke-api",
            Permission {
                source_arn: Some(instance.to_string()),
                source_account: Some(account_id.to_string()),
                ..base(
                    SID_CONNECT,
                    "lambda:InvokeFunction",
                    "connect.amazonaws.com",
                )
            },
        ));
    }
    list
}

/// Makes the secret's rotation what is wanted: by `function_arn` every [`ROTATION_DAYS`] days,
/// or off (`None`: the flow changed away from refresh tokens). Returns whether it changed
/// anything.
async fn converge_rotation(
    cloud: &Cloud,
    secret_arn: &str,
    function_arn: Option<&str>,
) -> anyhow::Result<bool> {
    let secrets = &cloud.clients.secrets;
    let described = secrets
        .describe_secret()
        .secret_id(secret_arn)
        .send()
        .await
        .aws_context(|| format!("reading the rotation settings of {secret_arn}"))?;
    let enabled = described.rotation_enabled() == Some(true);
    let Some(function_arn) = function_arn else {
        if enabled {
            secrets
                .cancel_rotate_secret()
                .secret_id(secret_arn)
                .send()
                .await
                .aws_context(|| format!("turning off rotation of {secret_arn}"))?;
        }
        return Ok(enabled);
    };
    let days = described
        .rotation_rules()
        .and_then(|rules| rules.automatically_after_days());
    if enabled
        && described.rotation_lambda_arn() == Some(function_arn)
        && days == Some(ROTATION_DAYS)
    {
        return Ok(false);
    }
    secrets
        .rotate_secret()
        .secret_id(secret_arn)
        .rotation_lambda_arn(function_arn)
        .rotation_rules(
            aws_sdk_secretsmanager::types::RotationRulesType::builder()
                .automatically_after_days(ROTATION_DAYS)
                .build(),
        )
        .rotate_immediately(false)
        .send()
        .await
        .aws_context(|| format!("enabling rotation of {secret_arn} by {function_arn}"))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const REGION: &str = "eu-west-1";
    const ACCOUNT: &str = "123456789012";
    const SECRET: &str =
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:sfstack-demo-sf-credentials-AbCdEf";
    const INSTANCE: &str = "arn:aws:connect:eu-west-1:123456789012:instance/0a1b2c3d";

    fn wanted(connect: Option<&str>) -> Vec<(&'static str, Permission)> {
        permissions(REGION, ACCOUNT, &Names::new("demo"), SECRET, connect)
    }

    fn find(list: &[(&'static str, Permission)], sid: &str) -> (&'static str, Permission) {
        list.iter()
            .find(|(_, permission)| permission.sid == sid)
            .cloned()
            .unwrap_or_else(|| panic!("no permission {sid}"))
    }

    #[test]
    fn each_caller_is_scoped_to_its_own_source() {
        let list = wanted(None);
        let (function, schedule) = find(&list, SID_SCHEDULE);
        assert_eq!(function, "sf-token-refresh");
        assert_eq!(schedule.principal, "events.amazonaws.com");
        assert_eq!(
            schedule.source_arn.as_deref(),
            Some("arn:aws:events:eu-west-1:123456789012:rule/sfstack-demo-token-refresh")
        );
        let (function, rotation) = find(&list, SID_ROTATION);
        assert_eq!(function, "sf-secret-rotation");
        assert_eq!(rotation.principal, "secretsmanager.amazonaws.com");
        assert_eq!(rotation.source_arn.as_deref(), Some(SECRET));
        // The public callback may be called through its Function URL and in no other way.
        let (function, url) = find(&list, SID_URL);
        assert_eq!(function, "sf-oauth-callback");
        assert_eq!(
            (url.action, url.url_auth_none, url.via_function_url),
            ("lambda:InvokeFunctionUrl", true, false)
        );
        let (_, invoke) = find(&list, SID_URL_INVOKE);
        assert_eq!(
            (invoke.action, invoke.url_auth_none, invoke.via_function_url),
            ("lambda:InvokeFunction", false, true)
        );
        assert!(
            list.iter()
                .all(|(_, permission)| permission.sid != SID_CONNECT)
        );
    }

    #[test]
    fn amazon_connect_is_allowed_only_for_the_configured_instance_and_account() {
        let list = wanted(Some(INSTANCE));
        let (function, connect) = find(&list, SID_CONNECT);
        assert_eq!(function, "sf-invoke-api");
        assert_eq!(connect.principal, "connect.amazonaws.com");
        assert_eq!(connect.source_arn.as_deref(), Some(INSTANCE));
        assert_eq!(connect.source_account.as_deref(), Some(ACCOUNT));
    }

    #[test]
    fn events_in_a_china_region_use_that_partition() {
        let list = permissions("cn-north-1", ACCOUNT, &Names::new("demo"), SECRET, None);
        let (_, schedule) = find(&list, SID_SCHEDULE);
        assert!(
            schedule
                .source_arn
                .as_deref()
                .is_some_and(|arn| arn.starts_with("arn:aws-cn:events:cn-north-1:"))
        );
    }

    /// What Lambda's GetPolicy returns for a statement added with AddPermission.
    fn statement(
        principal: serde_json::Value,
        action: &str,
        source_arn: Option<&str>,
    ) -> serde_json::Value {
        let mut statement = json!({
            "Sid": SID_SCHEDULE,
            "Effect": "Allow",
            "Principal": principal,
            "Action": action,
            "Resource": "arn:aws:lambda:eu-west-1:123456789012:function:sfstack-demo-sf-token-refresh",
        });
        if let Some(arn) = source_arn {
            statement["Condition"] = json!({"ArnLike": {"AWS:SourceArn": arn}});
        }
        statement
    }

    #[test]
    fn a_statement_matches_only_with_the_same_principal_action_and_source() {
        let (_, schedule) = find(&wanted(None), SID_SCHEDULE);
        let rule = schedule.source_arn.clone().unwrap_or_default();
        let service = json!({"Service": "events.amazonaws.com"});
        assert!(statement_matches(
            &statement(service.clone(), "lambda:InvokeFunction", Some(&rule)),
            &schedule
        ));
        // Another rule, no condition at all, another action, another principal: replaced.
        assert!(!statement_matches(
            &statement(
                service.clone(),
                "lambda:InvokeFunction",
                Some("arn:aws:events:eu-west-1:123456789012:rule/other")
            ),
            &schedule
        ));
        assert!(!statement_matches(
            &statement(service.clone(), "lambda:InvokeFunction", None),
            &schedule
        ));
        assert!(!statement_matches(
            &statement(service, "lambda:GetFunction", Some(&rule)),
            &schedule
        ));
        assert!(!statement_matches(
            &statement(
                json!({"Service": "sns.amazonaws.com"}),
                "lambda:InvokeFunction",
                Some(&rule)
            ),
            &schedule
        ));
    }

    #[test]
    fn a_connect_statement_from_another_account_is_replaced() {
        let (_, connect) = find(&wanted(Some(INSTANCE)), SID_CONNECT);
        let mut granted = statement(
            json!({"Service": "connect.amazonaws.com"}),
            "lambda:InvokeFunction",
            Some(INSTANCE),
        );
        granted["Condition"]["StringEquals"] = json!({"AWS:SourceAccount": ACCOUNT});
        assert!(statement_matches(&granted, &connect));
        granted["Condition"]["StringEquals"] = json!({"AWS:SourceAccount": "210987654321"});
        assert!(!statement_matches(&granted, &connect));
    }

    #[test]
    fn a_public_statement_matches_in_both_principal_spellings_only_with_its_url_condition() {
        let (_, url) = find(&wanted(None), SID_URL);
        let with_auth_type = |principal: serde_json::Value| {
            let mut statement = statement(principal, "lambda:InvokeFunctionUrl", None);
            statement["Condition"] =
                json!({"StringEquals": {"lambda:FunctionUrlAuthType": "NONE"}});
            statement
        };
        assert!(statement_matches(&with_auth_type(json!("*")), &url));
        assert!(statement_matches(
            &with_auth_type(json!({"AWS": "*"})),
            &url
        ));
        // Without the auth-type condition the statement would open the URL to any auth type.
        assert!(!statement_matches(
            &statement(json!("*"), "lambda:InvokeFunctionUrl", None),
            &url
        ));
        let (_, invoke) = find(&wanted(None), SID_URL_INVOKE);
        let mut via_url = statement(json!("*"), "lambda:InvokeFunction", None);
        via_url["Condition"] = json!({"Bool": {"lambda:InvokedViaFunctionUrl": "true"}});
        assert!(statement_matches(&via_url, &invoke));
        // A public InvokeFunction without it would let anyone invoke the function directly.
        assert!(!statement_matches(
            &statement(json!("*"), "lambda:InvokeFunction", None),
            &invoke
        ));
    }
}
