//! The REST services' operations, read from the method, the path and the query's
//! sub-resources, as their API references lay them out: Lambda (`/2015-03-31/functions/NAME/…`,
//! `/2021-10-31/functions/NAME/url`, `/2017-03-31/tags/ARN`) and S3 with path-style addressing
//! (`/BUCKET`, `/BUCKET/KEY`, `?encryption`, `?lifecycle`, …), and Amazon Connect
//! (`/instance/ID/lambda-function(s)`, `/contact-flows/ID[/FLOW]`, `/contact-flows-summary/ID`).
//! A path that matches nothing here is not an operation the table knows.

use serde_json::{Value, json};

use super::{Operation, Protocol};

/// The operation of a REST request signed for `service`.
pub fn operation(
    service: &str,
    method: &str,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> Option<Operation> {
    let segments: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(|segment| {
            percent_encoding::percent_decode_str(segment)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let query_keys: Vec<String> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(key, _)| key.into_owned())
        .collect();
    let (name, parameters, protocol) = match service {
        "lambda" => {
            let (name, parameters) = lambda(method, &segments)?;
            (name, parameters, Protocol::Rest)
        }
        "s3" => {
            let (name, parameters) = s3(method, &segments, &query_keys)?;
            (name, parameters, Protocol::RestXml)
        }
        "connect" => {
            let (name, parameters) = connect(method, &segments, query, body)?;
            (name, parameters, Protocol::Rest)
        }
        _ => return None,
    };
    Some(Operation {
        service: service.to_string(),
        name: name.to_string(),
        protocol,
        parameters,
    })
}

fn lambda(method: &str, segments: &[String]) -> Option<(&'static str, Value)> {
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let function = |name: &str| json!({ "FunctionName": name });
    Some(match (method, segments.as_slice()) {
        ("GET", [_, "functions", ""] | [_, "functions"]) => ("ListFunctions", json!({})),
        ("GET", [_, "tags", arn]) => ("ListTags", json!({ "Resource": arn })),
        ("POST", [_, "tags", arn]) => ("TagResource", json!({ "Resource": arn })),
        ("DELETE", [_, "tags", arn]) => ("UntagResource", json!({ "Resource": arn })),
        (method, [_, "functions", function_name, rest @ ..]) => {
            let name = match (method, rest) {
                ("GET", []) => "GetFunction",
                ("DELETE", []) => "DeleteFunction",
                ("GET", ["configuration"]) => "GetFunctionConfiguration",
                ("PUT", ["configuration"]) => "UpdateFunctionConfiguration",
                ("PUT", ["code"]) => "UpdateFunctionCode",
                ("GET", ["policy"]) => "GetPolicy",
                ("POST", ["policy"]) => "AddPermission",
                ("DELETE", ["policy", _]) => "RemovePermission",
                ("POST", ["invocations"]) => "InvokeFunction",
                ("GET", ["url"]) => "GetFunctionUrlConfig",
                ("POST", ["url"]) => "CreateFunctionUrlConfig",
                ("PUT", ["url"]) => "UpdateFunctionUrlConfig",
                ("DELETE", ["url"]) => "DeleteFunctionUrlConfig",
                ("GET", ["aliases"]) => "ListAliases",
                ("POST", ["aliases"]) => "CreateAlias",
                ("GET", ["versions"]) => "ListVersionsByFunction",
                ("POST", ["versions"]) => "PublishVersion",
                ("GET", ["concurrency"]) => "GetFunctionConcurrency",
                ("PUT", ["concurrency"]) => "PutFunctionConcurrency",
                ("DELETE", ["concurrency"]) => "DeleteFunctionConcurrency",
                _ => return None,
            };
            (name, function(function_name))
        }
        _ => return None,
    })
}

/// Amazon Connect's operations (Amazon Connect API Reference): the instance and flow from the
/// path, the query's `functionArn`, `maxResults` and `nextToken`, and the JSON body's fields.
fn connect(
    method: &str,
    segments: &[String],
    query: Option<&str>,
    body: &[u8],
) -> Option<(&'static str, Value)> {
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let (name, instance, flow) = match (method, segments.as_slice()) {
        ("GET", ["instance", instance]) => ("DescribeInstance", instance, None),
        ("PUT", ["instance", instance, "lambda-function"]) => {
            ("AssociateLambdaFunction", instance, None)
        }
        ("DELETE", ["instance", instance, "lambda-function"]) => {
            ("DisassociateLambdaFunction", instance, None)
        }
        ("GET", ["instance", instance, "lambda-functions"]) => {
            ("ListLambdaFunctions", instance, None)
        }
        ("PUT", ["contact-flows", instance]) => ("CreateContactFlow", instance, None),
        ("GET", ["contact-flows", instance, flow]) => ("DescribeContactFlow", instance, Some(flow)),
        ("DELETE", ["contact-flows", instance, flow]) => {
            ("DeleteContactFlow", instance, Some(flow))
        }
        ("POST", ["contact-flows", instance, flow, "content"]) => {
            ("UpdateContactFlowContent", instance, Some(flow))
        }
        ("GET", ["contact-flows-summary", instance]) => ("ListContactFlows", instance, None),
        _ => return None,
    };
    let mut parameters = if body.is_empty() {
        serde_json::Map::new()
    } else {
        serde_json::from_slice::<serde_json::Map<String, Value>>(body).ok()?
    };
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let key = match key.as_ref() {
            "functionArn" => "FunctionArn",
            "maxResults" => "MaxResults",
            "nextToken" => "NextToken",
            _ => continue,
        };
        parameters.insert(key.to_string(), Value::String(value.into_owned()));
    }
    parameters.insert("InstanceId".to_string(), json!(instance));
    if let Some(flow) = flow {
        parameters.insert("ContactFlowId".to_string(), json!(flow));
    }
    Some((name, Value::Object(parameters)))
}

/// The query keys that name a bucket's or an object's sub-resource (the rest are parameters
/// such as `prefix` or `max-keys`).
const SUB_RESOURCES: &[&str] = &[
    "delete",
    "encryption",
    "lifecycle",
    "list-type",
    "location",
    "ownershipControls",
    "policy",
    "publicAccessBlock",
    "tagging",
    "versioning",
    "versions",
];

fn s3(method: &str, segments: &[String], query_keys: &[String]) -> Option<(&'static str, Value)> {
    let sub = query_keys
        .iter()
        .map(String::as_str)
        .find(|key| SUB_RESOURCES.contains(key));
    let (bucket, key) = match segments {
        [root] if root.is_empty() => {
            return (method == "GET").then(|| ("ListBuckets", json!({})));
        }
        [bucket] => (bucket, None),
        [bucket, key] if key.is_empty() => (bucket, None),
        [bucket, key @ ..] => (bucket, Some(key.join("/"))),
        [] => return None,
    };
    let Some(key) = key else {
        let name = match (method, sub) {
            ("PUT", None) => "CreateBucket",
            ("HEAD", None) => "HeadBucket",
            ("DELETE", None) => "DeleteBucket",
            ("GET", None) => "ListObjects",
            ("GET", Some("list-type")) => "ListObjectsV2",
            ("GET", Some("versions")) => "ListObjectVersions",
            ("GET", Some("location")) => "GetBucketLocation",
            ("POST", Some("delete")) => "DeleteObjects",
            (method, Some(sub)) => bucket_sub_resource(method, sub)?,
            _ => return None,
        };
        return Some((name, json!({ "Bucket": bucket })));
    };
    let name = match (method, sub) {
        ("PUT", None) => "PutObject",
        ("GET", None) => "GetObject",
        ("HEAD", None) => "HeadObject",
        ("DELETE", None) => "DeleteObject",
        ("GET", Some("tagging")) => "GetObjectTagging",
        ("PUT", Some("tagging")) => "PutObjectTagging",
        _ => return None,
    };
    Some((name, json!({ "Bucket": bucket, "Key": key })))
}

fn bucket_sub_resource(method: &str, sub: &str) -> Option<&'static str> {
    Some(match (method, sub) {
        ("GET", "encryption") => "GetBucketEncryption",
        ("PUT", "encryption") => "PutBucketEncryption",
        ("DELETE", "encryption") => "DeleteBucketEncryption",
        ("GET", "publicAccessBlock") => "GetPublicAccessBlock",
        ("PUT", "publicAccessBlock") => "PutPublicAccessBlock",
        ("DELETE", "publicAccessBlock") => "DeletePublicAccessBlock",
        ("GET", "lifecycle") => "GetBucketLifecycleConfiguration",
        ("PUT", "lifecycle") => "PutBucketLifecycleConfiguration",
        ("DELETE", "lifecycle") => "DeleteBucketLifecycle",
        ("GET", "tagging") => "GetBucketTagging",
        ("PUT", "tagging") => "PutBucketTagging",
        ("DELETE", "tagging") => "DeleteBucketTagging",
        ("GET", "versioning") => "GetBucketVersioning",
        ("PUT", "versioning") => "PutBucketVersioning",
        ("GET", "policy") => "GetBucketPolicy",
        ("PUT", "policy") => "PutBucketPolicy",
        ("DELETE", "policy") => "DeleteBucketPolicy",
        ("GET", "ownershipControls") => "GetBucketOwnershipControls",
        ("PUT", "ownershipControls") => "PutBucketOwnershipControls",
        _ => return None,
    })
}

/// The IAM action of an S3 operation (S3's actions are named for what they touch, not for the
/// operation: the Service Authorization Reference's "Actions defined by Amazon S3").
pub fn s3_action(operation: &str) -> Option<&'static str> {
    Some(match operation {
        "ListBuckets" => "s3:ListAllMyBuckets",
        "CreateBucket" => "s3:CreateBucket",
        "DeleteBucket" => "s3:DeleteBucket",
        "HeadBucket" | "ListObjects" | "ListObjectsV2" => "s3:ListBucket",
        "ListObjectVersions" => "s3:ListBucketVersions",
        "GetBucketLocation" => "s3:GetBucketLocation",
        "GetBucketEncryption" => "s3:GetEncryptionConfiguration",
        "PutBucketEncryption" | "DeleteBucketEncryption" => "s3:PutEncryptionConfiguration",
        "GetPublicAccessBlock" => "s3:GetBucketPublicAccessBlock",
        "PutPublicAccessBlock" | "DeletePublicAccessBlock" => "s3:PutBucketPublicAccessBlock",
        "GetBucketLifecycleConfiguration" => "s3:GetLifecycleConfiguration",
        "PutBucketLifecycleConfiguration" | "DeleteBucketLifecycle" => {
            "s3:PutLifecycleConfiguration"
        }
        "GetBucketTagging" => "s3:GetBucketTagging",
        "PutBucketTagging" | "DeleteBucketTagging" => "s3:PutBucketTagging",
        "GetBucketVersioning" => "s3:GetBucketVersioning",
        "PutBucketVersioning" => "s3:PutBucketVersioning",
        "GetBucketPolicy" => "s3:GetBucketPolicy",
        "PutBucketPolicy" => "s3:PutBucketPolicy",
        "DeleteBucketPolicy" => "s3:DeleteBucketPolicy",
        "GetBucketOwnershipControls" => "s3:GetBucketOwnershipControls",
        "PutBucketOwnershipControls" => "s3:PutBucketOwnershipControls",
        "PutObject" => "s3:PutObject",
        "GetObject" | "HeadObject" => "s3:GetObject",
        "DeleteObject" | "DeleteObjects" => "s3:DeleteObject",
        "GetObjectTagging" => "s3:GetObjectTagging",
        "PutObjectTagging" => "s3:PutObjectTagging",
        _ => return None,
    })
}
