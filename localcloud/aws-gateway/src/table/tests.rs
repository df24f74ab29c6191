use super::*;

fn json(service: &str, target: &str, body: &str) -> Operation {
    operation(service, "POST", "/", Some(target), None, body.as_bytes()).expect("an operation")
}

fn rest(service: &str, method: &str, path: &str, query: Option<&str>) -> Option<Operation> {
    operation(service, method, path, None, query, b"")
}

fn own(service: &'static str, action: &str, resource: &str) -> Check {
    Check::Action {
        action: action.into(),
        resource: Resource::Own {
            service,
            resource: resource.into(),
        },
    }
}

#[test]
fn json_services_are_read_from_their_target() {
    let get = json(
        "secretsmanager",
        "secretsmanager.GetSecretValue",
        r#"{"SecretId":"sfstack-demo-sf-credentials"}"#,
    );
    assert_eq!(get.action(), "secretsmanager:GetSecretValue");
    assert_eq!(get.protocol, Protocol::Json11);
    assert_eq!(
        check(&get),
        Ok(Check::Secret {
            action: "secretsmanager:GetSecretValue".into(),
            secret_id: "sfstack-demo-sf-credentials".into(),
            implicit: Some(Implicit {
                action: "kms:Decrypt",
                via: "secretsmanager"
            }),
            key: None,
        })
    );
    let put = json(
        "dynamodb",
        "DynamoDB_20120810.PutItem",
        r#"{"TableName":"t","Item":{}}"#,
    );
    assert_eq!(put.protocol, Protocol::Json10);
    assert!(matches!(check(&put), Ok(Check::Table { table, .. }) if table == "t"));
}

#[test]
fn storing_a_secret_value_asks_for_a_data_key_from_the_key_the_request_names() {
    let create = json(
        "secretsmanager",
        "secretsmanager.CreateSecret",
        r#"{"Name":"s","KmsKeyId":"arn:aws:kms:r:1:key/k","SecretString":"{}"}"#,
    );
    assert_eq!(
        check(&create),
        Ok(Check::Secret {
            action: "secretsmanager:CreateSecret".into(),
            secret_id: "s".into(),
            implicit: Some(Implicit {
                action: "kms:GenerateDataKey",
                via: "secretsmanager"
            }),
            key: Some("arn:aws:kms:r:1:key/k".into()),
        })
    );
    // Changing only the description stores no value.
    let update = json(
        "secretsmanager",
        "secretsmanager.UpdateSecret",
        r#"{"SecretId":"s","Description":"d"}"#,
    );
    assert!(matches!(
        check(&update),
        Ok(Check::Secret { implicit: None, .. })
    ));
}

#[test]
fn query_services_are_read_from_their_action() {
    let assume = operation(
        "sts",
        "POST",
        "/",
        None,
        None,
        b"Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fr&RoleSessionName=s",
    )
    .expect("an operation");
    assert_eq!(
        check(&assume),
        Ok(Check::AssumeRole {
            role_arn: "arn:aws:iam::1:role/r".into()
        })
    );
    let identity = operation(
        "sts",
        "GET",
        "/",
        None,
        Some("Action=GetCallerIdentity"),
        b"",
    )
    .expect("an operation");
    assert_eq!(check(&identity), Ok(Check::Free));
    let put_policy = operation(
        "iam",
        "POST",
        "/",
        None,
        None,
        b"Action=PutRolePolicy&RoleName=sfstack-demo-sf-invoke-api-role&PolicyName=p",
    )
    .expect("an operation");
    assert_eq!(
        check(&put_policy),
        Ok(own(
            "iam",
            "iam:PutRolePolicy",
            "role/sfstack-demo-sf-invoke-api-role"
        ))
    );
    let change_set = operation(
        "cloudformation",
        "POST",
        "/",
        None,
        None,
        b"Action=CreateChangeSet&StackName=sfstack-demo&ChangeSetName=c",
    )
    .expect("an operation");
    assert_eq!(
        check(&change_set),
        Ok(own(
            "cloudformation",
            "cloudformation:CreateChangeSet",
            "stack/sfstack-demo/*"
        ))
    );
}

#[test]
fn log_streams_are_authorized_on_the_stream() {
    let put = json(
        "logs",
        "Logs_20140328.PutLogEvents",
        r#"{"logGroupName":"/aws/lambda/f","logStreamName":"2026/12/01/[$LATEST]abc","logEvents":[]}"#,
    );
    assert_eq!(
        check(&put),
        Ok(own(
            "logs",
            "logs:PutLogEvents",
            "log-group:/aws/lambda/f:log-stream:2026/12/01/[$LATEST]abc"
        ))
    );
}

#[test]
fn anything_else_is_not_modelled() {
    let untouched = json(
        "secretsmanager",
        "secretsmanager.BatchGetSecretValue",
        r#"{"SecretIdList":["x"]}"#,
    );
    assert_eq!(
        check(&untouched),
        Err(NotModelled("secretsmanager:BatchGetSecretValue".into()))
    );
    let decrypt = json("kms", "TrentService.Decrypt", "{}");
    assert!(check(&decrypt).is_err());
    let missing = json("secretsmanager", "secretsmanager.GetSecretValue", "{}");
    assert!(check(&missing).is_err());
    assert_eq!(operation("ec2", "POST", "/", None, None, b""), None);
    assert_eq!(
        rest("lambda", "PATCH", "/2015-03-31/functions/f", None),
        None
    );
}

#[test]
fn lambda_operations_are_read_from_their_path() {
    let invoke = rest(
        "lambda",
        "POST",
        "/2015-03-31/functions/sfstack-demo-sf-invoke-api/invocations",
        None,
    )
    .expect("an operation");
    assert_eq!(
        check(&invoke),
        Ok(Check::Function {
            action: "lambda:InvokeFunction".into(),
            function: "sfstack-demo-sf-invoke-api".into(),
        })
    );
    let remove = rest(
        "lambda",
        "DELETE",
        "/2015-03-31/functions/f/policy/sfstack-connect",
        None,
    )
    .expect("an operation");
    assert_eq!(
        check(&remove),
        Ok(own("lambda", "lambda:RemovePermission", "function:f"))
    );
    let url = rest("lambda", "POST", "/2021-10-31/functions/f/url", None).expect("an operation");
    assert_eq!(url.name, "CreateFunctionUrlConfig");
    let by_arn = rest(
        "lambda",
        "GET",
        "/2015-03-31/functions/arn%3Aaws%3Alambda%3Ar%3A1%3Afunction%3Af/configuration",
        None,
    )
    .expect("an operation");
    assert_eq!(
        check(&by_arn),
        Ok(Check::Action {
            action: "lambda:GetFunctionConfiguration".into(),
            resource: Resource::Arn("arn:aws:lambda:r:1:function:f".into()),
        })
    );
    assert_eq!(
        rest("lambda", "GET", "/2015-03-31/functions/f/invocations", None),
        None
    );
}

#[test]
fn s3_operations_are_read_from_path_and_sub_resource_and_named_as_iam_names_them() {
    let cases = [
        ("GET", "/", None, "ListBuckets", "s3:ListAllMyBuckets", None),
        (
            "PUT",
            "/b",
            None,
            "CreateBucket",
            "s3:CreateBucket",
            Some("b"),
        ),
        ("HEAD", "/b", None, "HeadBucket", "s3:ListBucket", Some("b")),
        (
            "PUT",
            "/b",
            Some("encryption"),
            "PutBucketEncryption",
            "s3:PutEncryptionConfiguration",
            Some("b"),
        ),
        (
            "GET",
            "/b",
            Some("lifecycle"),
            "GetBucketLifecycleConfiguration",
            "s3:GetLifecycleConfiguration",
            Some("b"),
        ),
        (
            "GET",
            "/b",
            Some("prefix=x&list-type=2"),
            "ListObjectsV2",
            "s3:ListBucket",
            Some("b"),
        ),
        (
            "POST",
            "/b",
            Some("delete"),
            "DeleteObjects",
            "s3:DeleteObject",
            Some("b/*"),
        ),
        (
            "PUT",
            "/b/sf-invoke-api/abc.zip",
            Some("x-id=PutObject"),
            "PutObject",
            "s3:PutObject",
            Some("b/sf-invoke-api/abc.zip"),
        ),
        (
            "HEAD",
            "/b/k",
            None,
            "HeadObject",
            "s3:GetObject",
            Some("b/k"),
        ),
    ];
    for (method, path, query, name, action, resource) in cases {
        let operation = rest("s3", method, path, query)
            .unwrap_or_else(|| panic!("{method} {path} {query:?} is an operation"));
        assert_eq!(operation.name, name, "{method} {path} {query:?}");
        assert_eq!(operation.protocol, Protocol::RestXml);
        let expected = Check::Action {
            action: action.into(),
            resource: match resource {
                None => Resource::Any,
                Some(resource) => Resource::Own {
                    service: "s3",
                    resource: resource.into(),
                },
            },
        };
        assert_eq!(check(&operation), Ok(expected), "{method} {path} {query:?}");
    }
    assert_eq!(rest("s3", "PATCH", "/b", None), None);
}

#[test]
fn changes_that_may_change_a_decision_are_told_from_reads_and_data() {
    let read = json("kms", "TrentService.DescribeKey", r#"{"KeyId":"k"}"#);
    assert!(!read.may_change_authorization());
    let data = json(
        "dynamodb",
        "DynamoDB_20120810.PutItem",
        r#"{"TableName":"t"}"#,
    );
    assert!(!data.may_change_authorization());
    let change = json("kms", "TrentService.PutKeyPolicy", r#"{"KeyId":"k"}"#);
    assert!(change.may_change_authorization());
}

#[test]
fn connect_operations_are_read_from_path_query_and_body_with_their_dependent_actions() {
    const INSTANCE: &str = "5ca1ab1e-0000-4000-8000-00000000c0de";
    const FUNCTION: &str = "arn:aws:lambda:us-east-1:123456789012:function:f";
    let instance = |resource: &str| Resource::Own {
        service: "connect",
        resource: format!("instance/{INSTANCE}{resource}"),
    };
    let associate = operation(
        "connect",
        "PUT",
        &format!("/instance/{INSTANCE}/lambda-function"),
        None,
        None,
        format!(r#"{{"FunctionArn":"{FUNCTION}"}}"#).as_bytes(),
    )
    .expect("associate");
    assert_eq!(associate.protocol, Protocol::Rest);
    assert_eq!(
        check(&associate),
        Ok(Check::Actions {
            checks: vec![
                ("connect:AssociateLambdaFunction".into(), instance("")),
                (
                    "lambda:AddPermission".into(),
                    Resource::Arn(FUNCTION.into())
                ),
            ],
            context: Default::default(),
        })
    );
    let disassociate = rest(
        "connect",
        "DELETE",
        &format!("/instance/{INSTANCE}/lambda-function"),
        Some(&format!("functionArn={}", FUNCTION.replace(':', "%3A"))),
    )
    .expect("disassociate");
    assert_eq!(
        check(&disassociate),
        Ok(Check::Actions {
            checks: vec![
                ("connect:DisassociateLambdaFunction".into(), instance("")),
                (
                    "lambda:RemovePermission".into(),
                    Resource::Arn(FUNCTION.into())
                ),
            ],
            context: Default::default(),
        })
    );
    let list = rest(
        "connect",
        "GET",
        &format!("/instance/{INSTANCE}/lambda-functions"),
        Some("maxResults=25&nextToken=abc"),
    )
    .expect("list");
    assert_eq!(list.parameters["MaxResults"], "25");
    assert_eq!(list.parameters["NextToken"], "abc");
    assert_eq!(
        check(&list),
        Ok(Check::Actions {
            checks: vec![("connect:ListLambdaFunctions".into(), instance(""))],
            context: Default::default(),
        })
    );
    let describe_flow = rest(
        "connect",
        "GET",
        &format!("/contact-flows/{INSTANCE}/flow-1"),
        None,
    )
    .expect("describe flow");
    assert_eq!(
        check(&describe_flow),
        Ok(Check::Actions {
            checks: vec![(
                "connect:DescribeContactFlow".into(),
                instance("/contact-flow/flow-1")
            )],
            context: Default::default(),
        })
    );
    let create_flow = operation(
        "connect",
        "PUT",
        &format!("/contact-flows/{INSTANCE}"),
        None,
        None,
        br#"{"Name":"n","Type":"CONTACT_FLOW","Content":"{}"}"#,
    )
    .expect("create flow");
    assert_eq!(
        check(&create_flow),
        Ok(Check::Actions {
            checks: vec![(
                "connect:CreateContactFlow".into(),
                instance("/contact-flow/*")
            )],
            context: Default::default(),
        })
    );
    assert!(rest("connect", "GET", "/users/x", None).is_none());
    assert!(
        rest(
            "connect",
            "DELETE",
            &format!("/instance/{INSTANCE}/lambda-function"),
            None
        )
        .is_some_and(|operation| check(&operation).is_err()),
        "a disassociation without a function is not modelled"
    );
}

#[test]
fn a_contact_flow_created_with_tags_is_decided_with_them_as_request_tags() {
    let create = operation(
        "connect",
        "PUT",
        "/contact-flows/i-1",
        None,
        None,
        br#"{"Name":"n","Type":"CONTACT_FLOW","Content":"{}","Tags":{"sfstack:env":"dev"}}"#,
    )
    .expect("create flow");
    let Ok(Check::Actions { context, .. }) = check(&create) else {
        panic!("a check with context");
    };
    assert_eq!(
        context["aws:RequestTag/sfstack:env"],
        vec!["dev".to_string()]
    );
    assert_eq!(context["aws:TagKeys"], vec!["sfstack:env".to_string()]);
}
