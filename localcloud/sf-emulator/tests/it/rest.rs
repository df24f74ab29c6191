//! The REST API's wire format: statuses, headers and bodies, including every error body the
//! reference documents.

use reqwest::Method;
use serde_json::{Value, json};
use sf_emulator::OrgConfig;

use crate::{API, Org, assert_rest_error};

fn limit_info(headers: &reqwest::header::HeaderMap) -> (u64, u64) {
    let value = headers
        .get("sforce-limit-info")
        .expect("Sforce-Limit-Info header")
        .to_str()
        .expect("ascii");
    let usage = value.strip_prefix("api-usage=").expect("api-usage= prefix");
    let (used, max) = usage.split_once('/').expect("used/max");
    (used.parse().expect("used"), max.parse().expect("max"))
}

#[tokio::test]
async fn versions_need_no_session_and_carry_no_limit_header() {
    let org = Org::start().await;
    let response = org
        .http
        .get(org.url("/services/data/"))
        .send()
        .await
        .expect("versions");
    let (status, headers, body) = crate::split(response).await;
    assert_eq!(status, 200);
    assert!(headers.get("sforce-limit-info").is_none());
    assert_eq!(headers["content-type"], "application/json;charset=UTF-8");
    let versions = body.as_array().expect("array");
    assert!(versions.contains(
        &json!({"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"})
    ));
}

#[tokio::test]
async fn missing_or_bad_session_is_invalid_session_id() {
    let org = Org::start().await;
    let response = org
        .http
        .get(org.data("/limits"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.headers()["www-authenticate"], "Token");
    let (status, _, body) = crate::split(response).await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
    );
    let (status, _, body) = org.get("00D000000000001!bogus", "/limits").await;
    assert_eq!(status, 401);
    assert_rest_error(&body, "INVALID_SESSION_ID");
}

#[tokio::test]
async fn oauth_authorization_scheme_is_accepted_too() {
    let org = Org::start().await;
    let token = org.login().await;
    let response = org
        .http
        .get(org.data("/limits"))
        .header("Authorization", format!("OAuth {token}"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn expired_sessions_fail_until_a_new_login() {
    let org = Org::start().await;
    let token = org.login().await;
    assert_eq!(org.get(&token, "/limits").await.0, 200);
    assert_eq!(
        org.admin(Method::POST, "/sessions/expire", None)
            .await
            .status(),
        204
    );
    assert_eq!(org.get(&token, "/limits").await.0, 401);
    let fresh = org.login().await;
    assert_eq!(org.get(&fresh, "/limits").await.0, 200);
}

#[tokio::test]
async fn unsupported_api_version_is_not_found() {
    let org = Org::start().await;
    let token = org.login().await;
    let response = org
        .http
        .get(org.url("/services/data/v12.0/limits"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    let (status, _, body) = crate::split(response).await;
    assert_eq!(status, 404);
    assert_rest_error(&body, "NOT_FOUND");
}

#[tokio::test]
async fn every_data_call_counts_and_the_limit_is_enforced() {
    let org = Org::start().await;
    let token = org.login().await;
    let (_, headers, _) = org.get(&token, "/limits").await;
    let (used, max) = limit_info(&headers);
    assert_eq!((used, max), (1, 15000));
    let (_, headers, body) = org.get(&token, "/limits").await;
    assert_eq!(limit_info(&headers), (2, 15000));
    assert_eq!(
        (
            &body["DailyApiRequests"]["Max"],
            &body["DailyApiRequests"]["Remaining"]
        ),
        (&json!(15000), &json!(14998))
    );
    // Every limit is {Max, Remaining}, as the REST API reference lists them; no key a real org
    // never sends.
    let limits = body.as_object().expect("an object");
    assert!(limits.len() > 40, "{}", limits.len());
    for (name, limit) in limits {
        assert!(
            limit["Max"].is_u64() && limit["Remaining"].is_u64(),
            "{name}: {limit}"
        );
    }
    assert!(!limits.contains_key("ConcurrentSyncApexRequests"));
    assert_eq!(
        body["PermissionSets"]["CreateCustom"],
        json!({"Max": 1000, "Remaining": 1000})
    );

    org.admin(
        Method::PUT,
        "/limits",
        Some(json!({"used": 100, "max": 100})),
    )
    .await;
    let (status, headers, body) = org.get(&token, "/query?q=SELECT+Id+FROM+Account").await;
    assert_eq!(status, 403);
    assert_eq!(
        body,
        json!([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
    );
    assert_eq!(limit_info(&headers), (100, 100));
}

#[tokio::test]
async fn query_returns_selected_fields_with_attributes_and_parents() {
    let org = Org::start().await;
    let token = org.login().await;
    let soql = "SELECT Id, Name, Account.Name FROM Contact WHERE LastName = 'Lovelace'";
    let response = org
        .http
        .get(org.data("/query"))
        .query(&[("q", soql)])
        .bearer_auth(&token)
        .send()
        .await
        .expect("query");
    let (status, headers, body) = crate::split(response).await;
    assert_eq!(status, 200);
    assert!(headers.get("sforce-limit-info").is_some());
    assert_eq!(body["totalSize"], 1);
    assert_eq!(body["done"], true);
    let record = &body["records"][0];
    let id = record["Id"].as_str().expect("Id");
    assert_eq!(
        record["attributes"],
        json!({"type": "Contact", "url": format!("/services/data/{API}/sobjects/Contact/{id}")})
    );
    assert_eq!(record["Name"], "Ada Lovelace");
    assert_eq!(record["Account"]["Name"], "Acme Corporation");
    assert_eq!(record["Account"]["attributes"]["type"], "Account");
    let keys: Vec<&String> = record.as_object().expect("object").keys().collect();
    assert_eq!(
        keys.len(),
        4,
        "only selected fields plus attributes: {keys:?}"
    );
}

#[tokio::test]
async fn query_errors_match_salesforce() {
    let org = Org::start().await;
    let token = org.login().await;
    let cases = [
        (
            "SELECT Bacon__c FROM Account LIMIT 2",
            "INVALID_FIELD",
            "\nSELECT Bacon__c FROM Account LIMIT 2\n       ^\nERROR at Row:1:Column:8\nNo such column 'Bacon__c' on entity 'Account'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.",
        ),
        (
            "SELECT Id FROM Accountz LIMIT 2",
            "INVALID_TYPE",
            "\nSELECT Id FROM Accountz LIMIT 2\n               ^\nERROR at Row:1:Column:16\nsObject type 'Accountz' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.",
        ),
        ("invalid", "MALFORMED_QUERY", "unexpected token: 'invalid'"),
    ];
    for (soql, code, message) in cases {
        let response = org
            .http
            .get(org.data("/query"))
            .query(&[("q", soql)])
            .bearer_auth(&token)
            .send()
            .await
            .expect("query");
        let (status, _, body) = crate::split(response).await;
        assert_eq!(status, 400, "{soql}: {body}");
        assert_eq!(assert_rest_error(&body, code), message, "{soql}");
    }
    let (status, _, body) = org.get(&token, "/query").await;
    assert_eq!(status, 400);
    assert_rest_error(&body, "MALFORMED_QUERY");
}

#[tokio::test]
async fn query_pages_through_next_records_url() {
    let mut config = OrgConfig::demo();
    config.query_batch_size = 2;
    let org = Org::start_with(config).await;
    let token = org.login().await;
    let response = org
        .http
        .get(org.data("/query"))
        .query(&[("q", "SELECT Id FROM Contact ORDER BY LastName")])
        .bearer_auth(&token)
        .send()
        .await
        .expect("query");
    let (_, _, mut page) = crate::split(response).await;
    let total = page["totalSize"].as_u64().expect("totalSize");
    assert_eq!(total, 5);
    let mut seen = Vec::new();
    loop {
        assert_eq!(
            page["totalSize"], total,
            "every page repeats the grand total"
        );
        seen.extend(
            page["records"]
                .as_array()
                .expect("records")
                .iter()
                .map(|record| record["Id"].clone()),
        );
        if page["done"] == true {
            assert!(page.get("nextRecordsUrl").is_none());
            break;
        }
        let next = page["nextRecordsUrl"]
            .as_str()
            .expect("nextRecordsUrl")
            .to_string();
        assert!(
            next.starts_with(&format!("/services/data/{API}/query/01g")),
            "{next}"
        );
        let response = org
            .http
            .get(org.url(&next))
            .bearer_auth(&token)
            .send()
            .await
            .expect("next page");
        page = crate::split(response).await.2;
    }
    assert_eq!(seen.len(), 5);
    let (status, _, body) = org.get(&token, "/query/01gNOPE-2").await;
    assert_eq!(status, 400);
    assert_rest_error(&body, "INVALID_QUERY_LOCATOR");
}

#[tokio::test]
async fn search_finds_phones_in_any_stored_format() {
    let org = Org::start().await;
    let token = org.login().await;
    let cases = [
        ("1122334455", "Ada Lovelace"),
        ("5555550100", "Grace Hopper"),
        ("5555550101", "Alan Turing"),
        ("5555550102", "Katherine Johnson"),
        ("5555550103", "Edsger Dijkstra"),
    ];
    for (digits, name) in cases {
        let sosl = format!("FIND {{{digits}}} IN PHONE FIELDS RETURNING Contact(Id, Name)");
        let response = org
            .http
            .get(org.data("/search"))
            .query(&[("q", sosl.as_str())])
            .bearer_auth(&token)
            .send()
            .await
            .expect("search");
        let (status, _, body) = crate::split(response).await;
        assert_eq!(status, 200, "{body}");
        let records = body["searchRecords"].as_array().expect("searchRecords");
        assert_eq!(records.len(), 1, "{digits}: {body}");
        assert_eq!(records[0]["Name"], name);
        assert_eq!(records[0]["attributes"]["type"], "Contact");
    }
    let response = org
        .http
        .get(org.data("/search"))
        .query(&[(
            "q",
            "FIND {9999999999} IN PHONE FIELDS RETURNING Contact(Id)",
        )])
        .bearer_auth(&token)
        .send()
        .await
        .expect("search");
    assert_eq!(crate::split(response).await.2, json!({"searchRecords": []}));
}

#[tokio::test]
async fn malformed_search_matches_salesforce() {
    let org = Org::start().await;
    let token = org.login().await;
    let sosl = "FIND {name} IN ALL TYPE RETURNING Account(name)";
    let response = org
        .http
        .get(org.data("/search"))
        .query(&[("q", sosl)])
        .bearer_auth(&token)
        .send()
        .await
        .expect("search");
    let (status, _, body) = crate::split(response).await;
    assert_eq!(status, 400);
    assert_eq!(
        assert_rest_error(&body, "MALFORMED_SEARCH"),
        "\nFIND {name} IN ALL TYPE RETURNING Account(name)\n                  ^\nERROR at Row:1:Column:19\nMalformed search token: TYPE"
    );
}

#[tokio::test]
async fn parameterized_search_by_get_and_post() {
    let org = Org::start().await;
    let token = org.login().await;
    let body = json!({"q": "1122334455", "sobjects": [{"name": "Contact"}], "fields": ["Id", "Name", "Email"], "in": "PHONE"});
    let (status, _, result) = org
        .send(&token, Method::POST, "/parameterizedSearch", Some(body))
        .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["searchRecords"][0]["Email"], "ada@example.com");
    let response = org
        .http
        .get(org.data("/parameterizedSearch"))
        .query(&[
            ("q", "Hopper"),
            ("sobject", "Contact"),
            ("Contact.fields", "Id,Name"),
        ])
        .bearer_auth(&token)
        .send()
        .await
        .expect("search");
    let (status, _, result) = crate::split(response).await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["searchRecords"][0]["Name"], "Grace Hopper");
}

#[tokio::test]
async fn create_get_update_delete_round_trip() {
    let org = Org::start().await;
    let token = org.login().await;
    let (status, headers, body) = org
        .send(
            &token,
            Method::POST,
            "/sobjects/Case",
            Some(json!({"Subject": "Broken phone", "Origin": "Phone"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().expect("id").to_string();
    assert_eq!(body, json!({"id": id, "success": true, "errors": []}));
    assert_eq!(
        headers["location"],
        format!("/services/data/{API}/sobjects/Case/{id}").as_str()
    );
    assert_eq!(id.len(), 18);
    assert!(id.starts_with("500"));

    let (status, _, record) = org.get(&token, &format!("/sobjects/Case/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(record["Status"], "New", "picklist default");
    assert_eq!(record["Priority"], "Medium");
    assert_eq!(record["IsClosed"], false);
    assert!(
        record.get("ClosedDate").is_some_and(Value::is_null),
        "null fields appear as null"
    );
    assert_eq!(record["attributes"]["type"], "Case");

    let (status, _, body) = org
        .send(
            &token,
            Method::PATCH,
            &format!("/sobjects/Case/{id}"),
            Some(json!({"Status": "Closed"})),
        )
        .await;
    assert_eq!((status, body), (204, Value::Null));
    let (_, _, record) = org
        .get(
            &token,
            &format!("/sobjects/Case/{id}?fields=Status,IsClosed"),
        )
        .await;
    assert_eq!(record["Status"], "Closed");
    assert_eq!(record["IsClosed"], true);
    assert!(record.get("Subject").is_none(), "only requested fields");

    // A 15-character ID addresses the same record.
    let (status, _, _) = org
        .get(&token, &format!("/sobjects/Case/{}", &id[..15]))
        .await;
    assert_eq!(status, 200);

    let (status, _, _) = org
        .send(
            &token,
            Method::DELETE,
            &format!("/sobjects/Case/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _, body) = org
        .send(
            &token,
            Method::DELETE,
            &format!("/sobjects/Case/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!([{"message": "entity is deleted", "errorCode": "ENTITY_IS_DELETED", "fields": []}])
    );
}

#[tokio::test]
async fn write_errors_match_salesforce() {
    let org = Org::start().await;
    let token = org.login().await;
    let cases: Vec<(&str, Value, u16, Value)> = vec![
        (
            "/sobjects/Account",
            json!({"Id": "001000000000000", "Name": "x"}),
            400,
            json!([{"message": "The Id field should not be specified in the sobject data.", "errorCode": "INVALID_FIELD"}]),
        ),
        (
            "/sobjects/Account",
            json!({"Name": "x", "FavoritePet__c": "cat"}),
            400,
            json!([{"message": "No such column 'FavoritePet__c' on sobject of type Account", "errorCode": "INVALID_FIELD"}]),
        ),
        (
            "/sobjects/Contact",
            json!({"FirstName": "No"}),
            400,
            json!([{"message": "Required fields are missing: [LastName]", "errorCode": "REQUIRED_FIELD_MISSING", "fields": ["LastName"]}]),
        ),
        (
            "/sobjects/Case",
            json!({"Status": "Terrible"}),
            400,
            json!([{"message": "Status: bad value for restricted picklist field: Terrible", "errorCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "fields": ["Status"]}]),
        ),
        (
            "/sobjects/Contact",
            json!({"LastName": "x", "Email": "not an email"}),
            400,
            json!([{"message": "Email: invalid email address: not an email", "errorCode": "INVALID_EMAIL_ADDRESS", "fields": ["Email"]}]),
        ),
        (
            "/sobjects/Movie__c",
            json!({"Name": "x"}),
            404,
            json!([{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]),
        ),
    ];
    for (path, body, status, expected) in cases {
        let (got_status, _, got) = org
            .send(&token, Method::POST, path, Some(body.clone()))
            .await;
        assert_eq!((got_status, &got), (status, &expected), "{path} {body}");
    }
    let response = org
        .http
        .post(org.data("/sobjects/Account"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"Name\" \"x\"}")
        .send()
        .await
        .expect("post");
    let (status, _, body) = crate::split(response).await;
    assert_eq!(status, 400);
    assert_rest_error(&body, "JSON_PARSER_ERROR");
}

#[tokio::test]
async fn id_errors_match_salesforce() {
    let org = Org::start().await;
    let token = org.login().await;
    // Only the checksum differs from a valid ID: Salesforce validates it.
    let (status, _, body) = org
        .send(
            &token,
            Method::PATCH,
            "/sobjects/Case/500000000000001AAB",
            Some(json!({"Subject": "x"})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!([{"message": "Record ID: id value of incorrect type: 500000000000001AAB", "errorCode": "MALFORMED_ID", "fields": ["Id"]}])
    );
    // Field validation runs before ID validation.
    let (_, _, body) = org
        .send(
            &token,
            Method::PATCH,
            "/sobjects/Case/500000000000001AAB",
            Some(json!({"Bogus": "x"})),
        )
        .await;
    assert_rest_error(&body, "INVALID_FIELD");
    let (status, _, body) = org.get(&token, "/sobjects/Case/not-an-id").await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!([{"message": "Provided external ID field does not exist or is not accessible: not-an-id", "errorCode": "NOT_FOUND"}])
    );
    let (status, _, body) = org.get(&token, "/sobjects/Case/500000000000001AAA").await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!([{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}])
    );
}

#[tokio::test]
async fn wrong_method_is_method_not_allowed() {
    let org = Org::start().await;
    let token = org.login().await;
    let (status, _, body) = org
        .send(&token, Method::PATCH, "/sobjects/Account", Some(json!({})))
        .await;
    assert_eq!(status, 405);
    assert_eq!(
        assert_rest_error(&body, "METHOD_NOT_ALLOWED"),
        "HTTP Method 'PATCH' not allowed. Allowed are GET,HEAD,POST"
    );
}

#[tokio::test]
async fn describe_reports_key_prefixes_and_fields() {
    let org = Org::start().await;
    let token = org.login().await;
    let (status, _, body) = org.get(&token, "/sobjects").await;
    assert_eq!(status, 200);
    assert_eq!(body["encoding"], "UTF-8");
    let case = body["sobjects"]
        .as_array()
        .expect("sobjects")
        .iter()
        .find(|entry| entry["name"] == "Case")
        .expect("Case")
        .clone();
    assert_eq!(case["keyPrefix"], "500");
    assert_eq!(
        case["urls"]["rowTemplate"],
        format!("/services/data/{API}/sobjects/Case/{{ID}}").as_str()
    );
    let (status, _, body) = org.get(&token, "/sobjects/Case/describe").await;
    assert_eq!(status, 200);
    let status_field = body["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|field| field["name"] == "Status")
        .expect("Status")
        .clone();
    assert_eq!(status_field["type"], "picklist");
    assert_eq!(status_field["restrictedPicklist"], true);
    let contact_id = body["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|field| field["name"] == "ContactId")
        .expect("ContactId")
        .clone();
    assert_eq!(contact_id["referenceTo"], json!(["Contact"]));
    assert_eq!(contact_id["relationshipName"], "Contact");

    // As Salesforce sends a describe: every field carries the 57 keys of a field result, a
    // default is a plain value, the owner may be a user or a queue, audit fields are never
    // null; the object carries the keys only a full describe has.
    let field = |name: &str| {
        body["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .find(|field| field["name"] == name)
            .unwrap_or_else(|| panic!("{name}"))
            .clone()
    };
    for field in body["fields"].as_array().expect("fields") {
        assert_eq!(field.as_object().expect("a field").len(), 57, "{field}");
    }
    assert_eq!(status_field["defaultValue"], "New");
    assert_eq!(field("IsDeleted")["defaultValue"], false);
    assert_eq!(field("Subject")["defaultValue"], Value::Null);
    let owner = field("OwnerId");
    assert_eq!(owner["referenceTo"], json!(["Group", "User"]));
    assert_eq!(owner["polymorphicForeignKey"], true);
    for audit in [
        "CreatedDate",
        "CreatedById",
        "LastModifiedDate",
        "SystemModstamp",
    ] {
        assert_eq!(field(audit)["nillable"], false, "{audit}");
    }
    let keys = body.as_object().expect("an object");
    assert!(keys.len() >= 43, "{}", keys.len());
    for key in [
        "recordTypeInfos",
        "supportedScopes",
        "namedLayoutInfos",
        "childRelationships",
    ] {
        assert!(keys.contains_key(key), "{key}");
    }
    assert!(
        !keys.contains_key("encoding"),
        "only the global describe has it"
    );
    assert_eq!(body["recordTypeInfos"][0]["master"], true);
    let (_, _, account) = org.get(&token, "/sobjects/Account/describe").await;
    let revenue = account["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|field| field["name"] == "AnnualRevenue")
        .expect("AnnualRevenue")
        .clone();
    assert_eq!(revenue["type"], "currency");
    // Child relationships carry the eight keys of a ChildRelationship, and name what a
    // subquery may select from.
    let children = account["childRelationships"]
        .as_array()
        .expect("childRelationships");
    for child in children {
        assert_eq!(child.as_object().expect("an entry").len(), 8, "{child}");
    }
    let names: Vec<&str> = children
        .iter()
        .filter_map(|child| child["relationshipName"].as_str())
        .collect();
    for name in ["Contacts", "Cases", "Tasks"] {
        assert!(names.contains(&name), "{names:?}");
    }
}

/// Over HTTP, a subquery and an aggregate answer 200 with Salesforce's shapes.
#[tokio::test]
async fn subqueries_and_aggregates_answer_over_http() {
    let org = Org::start().await;
    let token = org.login().await;
    let (status, _, body) = org
        .get(
            &token,
            "/query?q=SELECT+Name,+(SELECT+LastName+FROM+Contacts+ORDER+BY+LastName)+FROM+Account+WHERE+Name+=+'Acme+Corporation'",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let contacts = &body["records"][0]["Contacts"];
    assert_eq!(contacts["totalSize"], 2, "{body}");
    assert_eq!(contacts["done"], true);
    assert_eq!(contacts["records"][0]["LastName"], "Lovelace");
    assert_eq!(contacts["records"][0]["attributes"]["type"], "Contact");
    let (status, _, body) = org
        .get(
            &token,
            "/query?q=SELECT+Account.Name,+COUNT(Id)+FROM+Contact+GROUP+BY+Account.Name+ORDER+BY+Account.Name",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let first = &body["records"][0];
    assert_eq!(first["attributes"], json!({"type": "AggregateResult"}));
    assert!(
        first.get("Name").is_some() && first["expr0"].is_u64(),
        "{body}"
    );
    let (status, _, body) = org
        .get(&token, "/query?q=SELECT+Name,+COUNT(Id)+FROM+Contact")
        .await;
    assert_eq!(status, 400);
    assert_eq!(body[0]["errorCode"], "MALFORMED_QUERY");
    assert!(
        body[0]["message"]
            .as_str()
            .is_some_and(|message| message.ends_with("Field must be grouped or aggregated: Name")),
        "{body}"
    );
}

#[tokio::test]
async fn chatter_post_and_comment() {
    let org = Org::start().await;
    let token = org.login().await;
    let (_, _, cases) = org
        .get(&token, "/query?q=SELECT+Id+FROM+Case+LIMIT+1")
        .await;
    let case_id = cases["records"][0]["Id"]
        .as_str()
        .expect("case id")
        .to_string();
    let post = json!({"feedElementType": "FeedItem", "subjectId": case_id,
                      "body": {"messageSegments": [{"type": "Text", "text": "Caller asked for an update"}]}});
    let (status, _, element) = org
        .send(&token, Method::POST, "/chatter/feed-elements", Some(post))
        .await;
    assert_eq!(status, 201, "{element}");
    let element_id = element["id"].as_str().expect("id").to_string();
    assert!(element_id.starts_with("0D5"));
    assert_eq!(element["body"]["text"], "Caller asked for an update");
    assert_eq!(element["parent"]["id"], json!(case_id));
    let comment = json!({"body": {"messageSegments": [{"type": "Text", "text": "Called back"}]}});
    let path = format!("/chatter/feed-elements/{element_id}/capabilities/comments/items");
    let (status, _, comment) = org.send(&token, Method::POST, &path, Some(comment)).await;
    assert_eq!(status, 201, "{comment}");
    assert!(
        comment["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("0D7"))
    );
    let (_, _, element) = org
        .get(&token, &format!("/chatter/feed-elements/{element_id}"))
        .await;
    assert_eq!(element["capabilities"]["comments"]["page"]["total"], 1);
    let missing = json!({"feedElementType": "FeedItem", "subjectId": case_id, "body": {"messageSegments": []}});
    let (status, _, _) = org
        .send(
            &token,
            Method::POST,
            "/chatter/feed-elements",
            Some(missing),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn injected_faults_fail_then_recover() {
    let org = Org::start().await;
    let token = org.login().await;
    org.admin(
        Method::POST,
        "/faults",
        Some(json!({"count": 2, "status": 503})),
    )
    .await;
    let (status, _, body) = org.get(&token, "/limits").await;
    assert_eq!(status, 503);
    assert_rest_error(&body, "SERVER_UNAVAILABLE");
    assert_eq!(org.get(&token, "/limits").await.0, 503);
    assert_eq!(org.get(&token, "/limits").await.0, 200);

    org.admin(Method::POST, "/faults", Some(json!({"status": 502})))
        .await;
    let response = org
        .http
        .get(org.data("/limits"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 502);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/html")
    );

    org.admin(Method::POST, "/faults", Some(json!({"delay_ms": 300})))
        .await;
    let started = std::time::Instant::now();
    assert_eq!(org.get(&token, "/limits").await.0, 200);
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(300),
        "the delay was applied"
    );

    let response = org
        .admin(Method::POST, "/faults", Some(json!({"status": 200})))
        .await;
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn request_log_shows_statements_but_never_credentials() {
    let org = Org::start().await;
    let token = org.login().await;
    let soql = "SELECT Id FROM Contact WHERE LastName = 'O\\'Brien'";
    org.http
        .get(org.data("/query"))
        .query(&[("q", soql)])
        .bearer_auth(&token)
        .send()
        .await
        .expect("query");
    let log = org.request_log().await;
    assert_eq!(log.len(), 2);
    assert_eq!(log[0]["grant_type"], "password");
    assert_eq!(log[0]["status"], 200);
    assert_eq!(log[1]["soql"], soql);
    let text = serde_json::to_string(&log).expect("json");
    assert!(!text.contains("demo-password"), "{text}");
    assert!(!text.contains(&token), "{text}");
    assert_eq!(
        org.admin(Method::DELETE, "/requests", None).await.status(),
        204
    );
    assert!(org.request_log().await.is_empty());
}

#[tokio::test]
async fn wrong_authorization_scheme_is_invalid_auth_header() {
    let org = Org::start().await;
    let response = org
        .http
        .get(org.data("/limits"))
        .header("Authorization", "Basic Zm9vOmJhcg==")
        .send()
        .await
        .expect("request");
    let (status, _, body) = crate::split(response).await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!([{"message": "INVALID_HEADER_TYPE", "errorCode": "INVALID_AUTH_HEADER"}])
    );
}

#[tokio::test]
async fn too_long_values_are_string_too_long() {
    let org = Org::start().await;
    let token = org.login().await;
    let long_name = "x".repeat(81);
    let (status, _, body) = org
        .send(
            &token,
            Method::POST,
            "/sobjects/Contact",
            Some(json!({"LastName": long_name})),
        )
        .await;
    assert_eq!(status, 400);
    let message = assert_rest_error(&body, "STRING_TOO_LONG");
    assert!(
        message.starts_with("Last Name: data value too large:"),
        "{message}"
    );
    assert_eq!(body[0]["fields"], json!(["LastName"]));
}

#[tokio::test]
async fn latest_version_alias_serves_the_newest_version() {
    let org = Org::start().await;
    let token = org.login().await;
    let response = org
        .http
        .get(org.url("/services/data/latest/limits"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn the_oldest_open_cursors_are_closed_past_the_limit() {
    let mut config = OrgConfig::demo();
    config.query_batch_size = 2;
    let org = Org::start_with(config).await;
    let token = org.login().await;
    let mut next_urls = Vec::new();
    for _ in 0..=sf_emulator::org::MAX_OPEN_CURSORS {
        let (_, _, page) = org.get(&token, "/query?q=SELECT+Id+FROM+Contact").await;
        next_urls.push(
            page["nextRecordsUrl"]
                .as_str()
                .expect("more pages")
                .to_string(),
        );
    }
    let oldest = org
        .http
        .get(org.url(&next_urls[0]))
        .bearer_auth(&token)
        .send()
        .await
        .expect("page");
    let (status, _, body) = crate::split(oldest).await;
    assert_eq!(status, 400);
    assert_rest_error(&body, "INVALID_QUERY_LOCATOR");
    let newest = org
        .http
        .get(org.url(next_urls.last().expect("one")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("page");
    assert_eq!(newest.status(), 200);
}
