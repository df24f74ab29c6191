//! Amazon Connect, which moto does not implement: the instances of the local cloud, the Lambda
//! functions associated with each, and its contact flows. The gateway answers these operations
//! itself, once IAM has allowed them (the table decides them like any other).
//!
//! What is modelled, from the Amazon Connect API Reference and Administrator Guide:
//!
//! - An instance only exists if it was made: the local cloud has two, [`DEMO_INSTANCE_ID`]
//!   (alias `sfstack-local`) and [`SECOND_INSTANCE_ID`], in the gateway's account and region. Any other instance id is
//!   `ResourceNotFoundException` (404), as on AWS.
//! - `AssociateLambdaFunction` "allows the specified Amazon Connect instance to access the
//!   specified Lambda function"; `DisassociateLambdaFunction` removes it; `ListLambdaFunctions`
//!   pages the ARNs (`MaxResults` 1–25). A `FunctionArn` is 1–140 characters; an association
//!   made twice is refused with `ResourceConflictException` (409).
//! - A Connect instance invokes only the functions associated with it: the local Lambda service
//!   asks the gateway before it runs a function for `connect.amazonaws.com`
//!   ([`Connect::may_invoke`]).
//! - Contact flows (`CreateContactFlow`, `DescribeContactFlow`, `UpdateContactFlowContent`,
//!   `DeleteContactFlow`, `ListContactFlows`): a flow's `Content` is validated as Connect
//!   validates a published flow (the flow language: `Version` `2019-10-30`, a `StartAction`
//!   and every `NextAction` naming an action of the flow, unique identifiers, and an
//!   `InvokeLambdaFunction` only of a function associated with the instance), refused with
//!   `InvalidContactFlowException` and its `problems`; a second flow of one name is
//!   `DuplicateResourceException` (409).

use std::collections::BTreeMap;
use std::sync::Mutex;

use axum::body::Body;
use axum::http::{Response, StatusCode, header};
use serde_json::{Value, json};

use crate::table::Operation;

/// The local cloud's Amazon Connect instance.
pub const DEMO_INSTANCE_ID: &str = "5ca1ab1e-0000-4000-8000-00000000c0de";
/// A second instance (alias `sfstack-local-2`), to move to.
pub const SECOND_INSTANCE_ID: &str = "5ca1ab1e-0000-4000-8000-00000000c0df";

/// The most ARNs one `ListLambdaFunctions` page holds (Amazon Connect API Reference).
const MAX_FUNCTIONS_PAGE: usize = 25;
/// The longest `FunctionArn` Connect accepts.
const MAX_FUNCTION_ARN: usize = 140;
/// The only version of the flow language.
const FLOW_LANGUAGE_VERSION: &str = "2019-10-30";

struct Instance {
    arn: String,
    alias: String,
    /// The associated functions' ARNs, in the order they were associated.
    functions: Vec<String>,
    flows: BTreeMap<String, Flow>,
}

#[derive(Clone)]
struct Flow {
    id: String,
    arn: String,
    name: String,
    kind: String,
    description: String,
    content: String,
    status: String,
    tags: Value,
}

/// The local cloud's Amazon Connect.
pub struct Connect {
    instances: Mutex<BTreeMap<String, Instance>>,
}

/// An answer of Connect's: the JSON body, or an error (status, type, message, extra fields).
type Answer = Result<Value, Refusal>;

struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
    extra: Value,
}

fn refusal(status: StatusCode, code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        code,
        message: message.into(),
        extra: json!({}),
    }
}

fn invalid_parameter(message: impl Into<String>) -> Refusal {
    refusal(
        StatusCode::BAD_REQUEST,
        "InvalidParameterException",
        message,
    )
}

impl Connect {
    /// The local cloud's Connect, with its one instance in `account_id` and `region`.
    pub fn new(account_id: &str, region: &str) -> Self {
        let mut instances = BTreeMap::new();
        for (id, alias) in [
            (DEMO_INSTANCE_ID, "sfstack-local"),
            (SECOND_INSTANCE_ID, "sfstack-local-2"),
        ] {
            instances.insert(
                id.to_string(),
                Instance {
                    arn: format!("arn:aws:connect:{region}:{account_id}:instance/{id}"),
                    alias: alias.to_string(),
                    functions: Vec::new(),
                    flows: BTreeMap::new(),
                },
            );
        }
        Self {
            instances: Mutex::new(instances),
        }
    }

    /// Whether the instance `source_arn` may invoke `function_arn`: it exists and the function
    /// is associated with it. `Err` says why not.
    pub fn may_invoke(&self, source_arn: &str, function_arn: &str) -> Result<(), String> {
        let instances = self.lock();
        let instance = instances
            .values()
            .find(|instance| instance.arn == source_arn)
            .ok_or_else(|| format!("there is no Amazon Connect instance {source_arn}"))?;
        if instance.functions.iter().any(|arn| arn == function_arn) {
            Ok(())
        } else {
            Err(format!(
                "{function_arn} is not associated with the Amazon Connect instance {source_arn} (AssociateLambdaFunction), so the instance cannot invoke it"
            ))
        }
    }

    /// The tags of the contact flow `operation` names, as `aws:ResourceTag/key` condition keys
    /// (empty when it names none, or none that exists).
    pub fn resource_tags(&self, operation: &Operation) -> BTreeMap<String, Vec<String>> {
        let parameter = |name: &str| operation.parameters.get(name).and_then(Value::as_str);
        let (Some(instance), Some(flow)) = (parameter("InstanceId"), parameter("ContactFlowId"))
        else {
            return BTreeMap::new();
        };
        self.lock()
            .get(instance)
            .and_then(|instance| instance.flows.get(flow))
            .and_then(|flow| flow.tags.as_object())
            .into_iter()
            .flatten()
            .filter_map(|(key, value)| {
                Some((
                    format!("aws:ResourceTag/{key}"),
                    vec![value.as_str()?.to_string()],
                ))
            })
            .collect()
    }

    /// Connect's answer to an allowed `operation`.
    pub fn answer(&self, operation: &Operation) -> Response<Body> {
        let parameter = |name: &str| {
            operation
                .parameters
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let instance_id = parameter("InstanceId");
        let mut instances = self.lock();
        let answer = match instances.get_mut(&instance_id) {
            None => Err(refusal(
                StatusCode::NOT_FOUND,
                "ResourceNotFoundException",
                format!("Instance not found: {instance_id}"),
            )),
            Some(instance) => match operation.name.as_str() {
                "DescribeInstance" => Ok(json!({ "Instance": {
                    "Id": instance_id,
                    "Arn": instance.arn,
                    "InstanceAlias": instance.alias,
                    "IdentityManagementType": "CONNECT_MANAGED",
                    "InstanceStatus": "ACTIVE",
                    "InboundCallsEnabled": true,
                    "OutboundCallsEnabled": false,
                }})),
                "AssociateLambdaFunction" => associate(instance, &parameter("FunctionArn")),
                "DisassociateLambdaFunction" => disassociate(instance, &parameter("FunctionArn")),
                "ListLambdaFunctions" => {
                    list_functions(instance, &parameter("MaxResults"), &parameter("NextToken"))
                }
                "CreateContactFlow" => create_flow(instance, &operation.parameters),
                "DescribeContactFlow" => flow(instance, &parameter("ContactFlowId")).map(|flow| {
                    json!({ "ContactFlow": {
                        "Arn": flow.arn,
                        "Id": flow.id,
                        "Name": flow.name,
                        "Type": flow.kind,
                        "Description": flow.description,
                        "Content": flow.content,
                        "State": "ACTIVE",
                        "Status": flow.status,
                        "Tags": flow.tags,
                    }})
                }),
                "UpdateContactFlowContent" => {
                    update_flow(instance, &parameter("ContactFlowId"), &parameter("Content"))
                }
                "DeleteContactFlow" => {
                    let id = parameter("ContactFlowId");
                    flow(instance, &id).map(|_| ()).map(|()| {
                        instance.flows.remove(&id);
                        json!({})
                    })
                }
                "ListContactFlows" => Ok(json!({
                    "ContactFlowSummaryList": instance.flows.values().map(|flow| json!({
                        "Arn": flow.arn,
                        "Id": flow.id,
                        "Name": flow.name,
                        "ContactFlowType": flow.kind,
                        "ContactFlowState": "ACTIVE",
                        "ContactFlowStatus": flow.status,
                    })).collect::<Vec<_>>(),
                })),
                other => Err(refusal(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestException",
                    format!("{other} is not modelled by the local cloud's Amazon Connect"),
                )),
            },
        };
        drop(instances);
        respond(answer)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Instance>> {
        self.instances
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn respond(answer: Answer) -> Response<Body> {
    let (status, body, code) = match answer {
        Ok(body) => (StatusCode::OK, body, None),
        Err(refusal) => {
            let mut body = json!({ "Message": refusal.message });
            if let (Some(body), Some(extra)) = (body.as_object_mut(), refusal.extra.as_object()) {
                body.extend(extra.clone());
            }
            (refusal.status, body, Some(refusal.code))
        }
    };
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(code) = code {
        response = response.header("x-amzn-ErrorType", code);
    }
    response
        .body(Body::from(body.to_string()))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

fn valid_function_arn(arn: &str) -> Result<(), Refusal> {
    let parts: Vec<&str> = arn.split(':').collect();
    let well_formed = parts.len() == 7
        && parts[0] == "arn"
        && parts[2] == "lambda"
        && parts[5] == "function"
        && !parts[6].is_empty();
    if arn.is_empty() || arn.len() > MAX_FUNCTION_ARN || !well_formed {
        return Err(invalid_parameter(format!(
            "FunctionArn must be the ARN of a Lambda function, at most {MAX_FUNCTION_ARN} characters: {arn:?}"
        )));
    }
    Ok(())
}

fn associate(instance: &mut Instance, function_arn: &str) -> Answer {
    valid_function_arn(function_arn)?;
    if instance.functions.iter().any(|arn| arn == function_arn) {
        return Err(refusal(
            StatusCode::CONFLICT,
            "ResourceConflictException",
            format!(
                "{function_arn} is already associated with instance {}",
                instance.arn
            ),
        ));
    }
    instance.functions.push(function_arn.to_string());
    Ok(json!({}))
}

fn disassociate(instance: &mut Instance, function_arn: &str) -> Answer {
    valid_function_arn(function_arn)?;
    let before = instance.functions.len();
    instance.functions.retain(|arn| arn != function_arn);
    if instance.functions.len() == before {
        return Err(refusal(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            format!(
                "{function_arn} is not associated with instance {}",
                instance.arn
            ),
        ));
    }
    Ok(json!({}))
}

fn list_functions(instance: &Instance, max_results: &str, next_token: &str) -> Answer {
    let size = if max_results.is_empty() {
        MAX_FUNCTIONS_PAGE
    } else {
        max_results
            .parse::<usize>()
            .ok()
            .filter(|size| (1..=MAX_FUNCTIONS_PAGE).contains(size))
            .ok_or_else(|| {
                invalid_parameter(format!(
                    "MaxResults must be from 1 to {MAX_FUNCTIONS_PAGE}: {max_results}"
                ))
            })?
    };
    let start = if next_token.is_empty() {
        0
    } else {
        next_token
            .parse::<usize>()
            .map_err(|_| invalid_parameter(format!("NextToken is not valid: {next_token}")))?
    };
    let page: Vec<&String> = instance.functions.iter().skip(start).take(size).collect();
    let mut answer = json!({ "LambdaFunctions": page });
    if start + size < instance.functions.len() {
        answer["NextToken"] = json!((start + size).to_string());
    }
    Ok(answer)
}

fn flow<'a>(instance: &'a Instance, id: &str) -> Result<&'a Flow, Refusal> {
    instance.flows.get(id).ok_or_else(|| {
        refusal(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            format!("Contact flow not found: {id}"),
        )
    })
}

fn create_flow(instance: &mut Instance, parameters: &Value) -> Answer {
    let text = |name: &str| {
        parameters
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let name = text("Name");
    let kind = text("Type");
    let content = text("Content");
    let status = match text("Status").as_str() {
        "" => "PUBLISHED".to_string(),
        status @ ("PUBLISHED" | "SAVED") => status.to_string(),
        other => return Err(invalid_parameter(format!("Status is not valid: {other}"))),
    };
    if name.is_empty() || kind.is_empty() || content.is_empty() {
        return Err(invalid_parameter("Name, Type and Content are required"));
    }
    if instance.flows.values().any(|flow| flow.name == name) {
        return Err(refusal(
            StatusCode::CONFLICT,
            "DuplicateResourceException",
            format!("a contact flow named {name} already exists"),
        ));
    }
    if status == "PUBLISHED" {
        validate_content(instance, &content)?;
    }
    let id = uuid();
    let arn = format!("{}/contact-flow/{id}", instance.arn);
    instance.flows.insert(
        id.clone(),
        Flow {
            id: id.clone(),
            arn: arn.clone(),
            name,
            kind,
            description: text("Description"),
            content,
            status,
            tags: parameters.get("Tags").cloned().unwrap_or_else(|| json!({})),
        },
    );
    Ok(json!({ "ContactFlowId": id, "ContactFlowArn": arn }))
}

fn update_flow(instance: &mut Instance, id: &str, content: &str) -> Answer {
    let status = flow(instance, id)?.status.clone();
    if status == "PUBLISHED" {
        validate_content(instance, content)?;
    }
    if let Some(flow) = instance.flows.get_mut(id) {
        flow.content = content.to_string();
    }
    Ok(json!({}))
}

/// The problems Connect finds in a flow's `Content` before it publishes it.
fn validate_content(instance: &Instance, content: &str) -> Result<(), Refusal> {
    let problems = content_problems(&instance.functions, content);
    if problems.is_empty() {
        return Ok(());
    }
    Err(Refusal {
        extra: json!({ "problems": problems.iter().map(|message| json!({ "message": message })).collect::<Vec<_>>() }),
        ..refusal(
            StatusCode::BAD_REQUEST,
            "InvalidContactFlowException",
            "The flow is not valid.",
        )
    })
}

fn content_problems(associated: &[String], content: &str) -> Vec<String> {
    let Ok(flow) = serde_json::from_str::<Value>(content) else {
        return vec!["Content is not JSON".to_string()];
    };
    let mut problems = Vec::new();
    if flow["Version"] != FLOW_LANGUAGE_VERSION {
        problems.push(format!("Version must be {FLOW_LANGUAGE_VERSION}"));
    }
    let actions = flow["Actions"].as_array().cloned().unwrap_or_default();
    if actions.is_empty() {
        problems.push("Actions must list at least one action".to_string());
    }
    let mut identifiers = std::collections::BTreeSet::new();
    for action in &actions {
        let identifier = action["Identifier"].as_str().unwrap_or_default();
        if identifier.is_empty() || !identifiers.insert(identifier.to_string()) {
            problems.push(format!(
                "action identifiers must be present and unique: {identifier:?}"
            ));
        }
    }
    let start = flow["StartAction"].as_str().unwrap_or_default();
    if !identifiers.contains(start) {
        problems.push(format!("StartAction {start:?} names no action"));
    }
    for action in &actions {
        let identifier = action["Identifier"].as_str().unwrap_or_default();
        let transitions = &action["Transitions"];
        let targets = std::iter::once(&transitions["NextAction"])
            .chain(
                transitions["Errors"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|error| &error["NextAction"]),
            )
            .chain(
                transitions["Conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|condition| &condition["NextAction"]),
            )
            .filter_map(Value::as_str);
        for target in targets {
            if !identifiers.contains(target) {
                problems.push(format!(
                    "action {identifier:?} goes to {target:?}, which is not an action"
                ));
            }
        }
        if action["Type"] == "InvokeLambdaFunction" {
            let function = action["Parameters"]["LambdaFunctionARN"]
                .as_str()
                .unwrap_or_default();
            if !associated.iter().any(|arn| arn == function) {
                problems.push(format!(
                    "action {identifier:?} invokes {function:?}, which is not associated with the instance"
                ));
            }
        }
    }
    problems
}

fn uuid() -> String {
    // A flow id only needs to be unique within the local cloud: random, and a counter in case
    // the system has no randomness to give.
    static MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).unwrap_or_default();
    let made = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    for (byte, count) in bytes[8..].iter_mut().zip(made.to_be_bytes()) {
        *byte ^= count;
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const FUNCTION: &str =
        "arn:aws:lambda:us-east-1:123456789012:function:sfstack-demo-sf-invoke-api";

    fn connect() -> Connect {
        Connect::new("123456789012", "us-east-1")
    }

    fn demo_arn() -> String {
        format!("arn:aws:connect:us-east-1:123456789012:instance/{DEMO_INSTANCE_ID}")
    }

    fn call(connect: &Connect, name: &str, parameters: Value) -> (StatusCode, Value) {
        let mut parameters = parameters;
        if parameters.get("InstanceId").is_none() {
            parameters["InstanceId"] = json!(DEMO_INSTANCE_ID);
        }
        let response = connect.answer(&Operation {
            service: "connect".to_string(),
            name: name.to_string(),
            protocol: crate::table::Protocol::Rest,
            parameters,
        });
        let status = response.status();
        let body = futures_body(response);
        (status, body)
    }

    fn futures_body(response: Response<Body>) -> Value {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let bytes = runtime
            .block_on(axum::body::to_bytes(response.into_body(), 1 << 20))
            .expect("body");
        serde_json::from_slice(&bytes).expect("JSON")
    }

    #[test]
    fn an_unknown_instance_is_not_found() {
        let (status, body) = call(
            &connect(),
            "ListLambdaFunctions",
            json!({"InstanceId": "0c2a4b6e-e2e0-4c0a-9d3f-5a1b2c3d4e5f"}),
        );
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(
            body["Message"]
                .as_str()
                .is_some_and(|m| m.contains("0c2a4b6e")),
            "{body}"
        );
    }

    #[test]
    fn an_instance_invokes_only_what_is_associated_with_it() {
        let connect = connect();
        assert!(connect.may_invoke(&demo_arn(), FUNCTION).is_err());
        let (status, _) = call(
            &connect,
            "AssociateLambdaFunction",
            json!({"FunctionArn": FUNCTION}),
        );
        assert_eq!(status, StatusCode::OK);
        assert_eq!(connect.may_invoke(&demo_arn(), FUNCTION), Ok(()));
        let (status, body) = call(
            &connect,
            "AssociateLambdaFunction",
            json!({"FunctionArn": FUNCTION}),
        );
        assert_eq!(
            (status, body["Message"].is_string()),
            (StatusCode::CONFLICT, true)
        );
        let (_, listed) = call(&connect, "ListLambdaFunctions", json!({}));
        assert_eq!(listed["LambdaFunctions"], json!([FUNCTION]));
        let (status, _) = call(
            &connect,
            "DisassociateLambdaFunction",
            json!({"FunctionArn": FUNCTION}),
        );
        assert_eq!(status, StatusCode::OK);
        assert!(connect.may_invoke(&demo_arn(), FUNCTION).is_err());
        let (status, _) = call(
            &connect,
            "DisassociateLambdaFunction",
            json!({"FunctionArn": FUNCTION}),
        );
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(
            connect
                .may_invoke(
                    "arn:aws:connect:us-east-1:123456789012:instance/other",
                    FUNCTION
                )
                .is_err()
        );
    }

    #[test]
    fn functions_are_listed_in_pages_of_at_most_25() {
        let connect = connect();
        for n in 0..30 {
            let arn = format!("{FUNCTION}-{n}");
            assert_eq!(
                call(
                    &connect,
                    "AssociateLambdaFunction",
                    json!({"FunctionArn": arn})
                )
                .0,
                StatusCode::OK
            );
        }
        let (_, first) = call(&connect, "ListLambdaFunctions", json!({}));
        assert_eq!(first["LambdaFunctions"].as_array().map(Vec::len), Some(25));
        let token = first["NextToken"]
            .as_str()
            .expect("a next page")
            .to_string();
        let (_, second) = call(&connect, "ListLambdaFunctions", json!({"NextToken": token}));
        assert_eq!(second["LambdaFunctions"].as_array().map(Vec::len), Some(5));
        assert!(second.get("NextToken").is_none());
        let (status, _) = call(&connect, "ListLambdaFunctions", json!({"MaxResults": "26"}));
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn a_function_arn_over_140_characters_or_not_a_function_is_refused() {
        let long = format!(
            "arn:aws:lambda:us-east-1:123456789012:function:{}",
            "f".repeat(100)
        );
        for arn in [
            long.as_str(),
            "sfstack-demo-sf-invoke-api",
            "arn:aws:s3:::bucket",
        ] {
            let (status, body) = call(
                &connect(),
                "AssociateLambdaFunction",
                json!({"FunctionArn": arn}),
            );
            assert_eq!(status, StatusCode::BAD_REQUEST, "{arn}: {body}");
        }
    }

    fn flow_content(function: &str) -> String {
        json!({
            "Version": "2019-10-30",
            "StartAction": "lookup",
            "Actions": [
                {"Identifier": "lookup", "Type": "InvokeLambdaFunction",
                 "Parameters": {"LambdaFunctionARN": function, "InvocationTimeLimitSeconds": "8"},
                 "Transitions": {"NextAction": "end", "Errors": [{"NextAction": "end", "ErrorType": "NoMatchingError"}]}},
                {"Identifier": "end", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}}
            ]
        })
        .to_string()
    }

    #[test]
    fn a_published_flow_may_invoke_only_an_associated_function() {
        let connect = connect();
        let create =
            json!({"Name": "sample", "Type": "CONTACT_FLOW", "Content": flow_content(FUNCTION)});
        let (status, body) = call(&connect, "CreateContactFlow", create.clone());
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body["problems"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("not associated")),
            "{body}"
        );
        call(
            &connect,
            "AssociateLambdaFunction",
            json!({"FunctionArn": FUNCTION}),
        );
        let (status, created) = call(&connect, "CreateContactFlow", create.clone());
        assert_eq!(status, StatusCode::OK, "{created}");
        let id = created["ContactFlowId"].as_str().expect("id").to_string();
        assert!(
            created["ContactFlowArn"]
                .as_str()
                .is_some_and(|arn| arn.ends_with(&format!("/contact-flow/{id}")))
        );
        assert_eq!(
            call(&connect, "CreateContactFlow", create).0,
            StatusCode::CONFLICT
        );
        let (_, described) = call(
            &connect,
            "DescribeContactFlow",
            json!({"ContactFlowId": id}),
        );
        assert_eq!(
            described["ContactFlow"]["Content"],
            json!(flow_content(FUNCTION))
        );
        let (status, body) = call(
            &connect,
            "UpdateContactFlowContent",
            json!({"ContactFlowId": id, "Content": flow_content(&format!("{FUNCTION}-gone"))}),
        );
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            call(&connect, "DeleteContactFlow", json!({"ContactFlowId": id})).0,
            StatusCode::OK
        );
        assert_eq!(
            call(
                &connect,
                "DescribeContactFlow",
                json!({"ContactFlowId": id})
            )
            .0,
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn a_flow_whose_transitions_name_no_action_is_refused() {
        let connect = connect();
        call(
            &connect,
            "AssociateLambdaFunction",
            json!({"FunctionArn": FUNCTION}),
        );
        let broken =
            flow_content(FUNCTION).replace("\"NextAction\":\"end\"", "\"NextAction\":\"nowhere\"");
        let (status, body) = call(
            &connect,
            "CreateContactFlow",
            json!({"Name": "broken", "Type": "CONTACT_FLOW", "Content": broken}),
        );
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.to_string().contains("nowhere"), "{body}");
    }
}
