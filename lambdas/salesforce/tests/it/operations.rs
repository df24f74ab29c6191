//! Every REST operation against the demo org, including Salesforce's own validation errors.

use salesforce::safety::{escape_soql_string, escape_sosl, validate_id};
use salesforce::{Client, ClientConfig, Error};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::support::{Org, TestResult, fast_config};

fn field<'a>(record: &'a Value, name: &str) -> &'a str {
    record[name].as_str().unwrap_or_default()
}

#[tokio::test]
async fn query_returns_selected_fields_with_attributes() -> TestResult {
    let org = Org::start().await?;
    let client = org.jwt_client().await?;
    let result = client
        .query(&format!(
            "SELECT Id, FirstName, LastName, Phone FROM Contact WHERE LastName = '{}'",
            escape_soql_string("Lovelace")
        ))
        .await?;
    assert!(result.done);
    assert_eq!(result.total_size, 1);
    let record = &result.records[0];
    assert_eq!(record["attributes"]["type"], "Contact");
    assert_eq!(field(record, "FirstName"), "Ada");
    assert_eq!(field(record, "Phone"), "+44 11 2233 4455");
    validate_id(field(record, "Id"))?;
    Ok(())
}

#[tokio::test]
async fn query_follows_next_records_url_across_pages() -> TestResult {
    let org = Org::start().await?;
    let config = ClientConfig {
        query_batch_size: Some(200),
        ..fast_config()
    };
    let client = Client::new(org.jwt_credentials()?, config)?;
    let mut creates = JoinSet::new();
    for index in 0..205 {
        let client = client.clone();
        creates.spawn(async move {
            client
                .create(
                    "Contact",
                    &json!({"FirstName": format!("P{index}"), "LastName": "Pager"}),
                )
                .await
        });
    }
    while let Some(created) = creates.join_next().await {
        created??;
    }
    let soql = "SELECT Id, FirstName FROM Contact WHERE LastName = 'Pager'";

    let first = client.query_page(soql).await?;
    assert_eq!(first.total_size, 205);
    assert_eq!(first.records.len(), 200);
    assert!(!first.done);
    let next = first
        .next_records_url
        .clone()
        .ok_or("no nextRecordsUrl on page one")?;
    let second = client.query_more(&next).await?;
    assert_eq!(second.records.len(), 5);
    assert!(second.done);

    org.clear_requests().await?;
    let all = client.query(soql).await?;
    assert_eq!(all.total_size, 205);
    assert_eq!(all.records.len(), 205);
    assert!(all.done && all.next_records_url.is_none());
    let paths: Vec<String> = org
        .data_requests()
        .await?
        .iter()
        .map(|entry| entry["path"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(paths.len(), 2, "{paths:?}");
    assert!(
        paths[1].starts_with("/services/data/v62.0/query/"),
        "{paths:?}"
    );
    Ok(())
}

#[tokio::test]
async fn query_all_also_returns_deleted_records() -> TestResult {
    let org = Org::start().await?;
    let client = org.jwt_client().await?;
    let id = client
        .create("Contact", &json!({"LastName": "Deleted Later"}))
        .await?;
    client.delete("Contact", &id).await?;
    let soql = format!("SELECT Id FROM Contact WHERE Id = '{id}'");
    assert_eq!(client.query(&soql).await?.total_size, 0);
    assert_eq!(client.query_all(&soql).await?.total_size, 1);
    Ok(())
}

#[tokio::test]
async fn sosl_search_finds_phones_in_any_stored_format() -> TestResult {
    let org = Org::start().await?;
    let client = org.jwt_client().await?;
    let cases = [
        ("5555550100", "(555) 555-0100"),
        ("+441122334455", "+44 11 2233 4455"),
    ];
    for (number, stored) in cases {
        let sosl = format!(
            "FIND {{{}}} IN PHONE FIELDS RETURNING Contact(Id, Phone, LastName)",
            escape_sosl(number)
        );
        let records = client.search(&sosl).await?;
        assert!(
            records
                .iter()
                .any(|record| field(record, "Phone") == stored),
            "{number}: {records:?}"
        );
        assert!(
            records
                .iter()
                .all(|record| record["attributes"]["type"] == "Contact")
        );
    }
    let none = client
        .search("FIND {9999999999} IN PHONE FIELDS RETURNING Contact(Id)")
        .await?;
    assert!(none.is_empty());
    Ok(())
}

#[tokio::test]
async fn parameterized_search_finds_a_contact_by_national_number() -> TestResult {
    let org = Org::start().await?;
    let client = org.jwt_client().await?;
    let records = client
        .parameterized_search(&json!({
            "q": "1122334455",
            "sobjects": [{"name": "Contact"}],
            "fields": ["Id", "Name", "Phone"],
        }))
        .await?;
    assert!(
        records
            .iter()
            .any(|record| field(record, "Phone") == "+44 11 2233 4455"),
        "{records:?}"
    );
    Ok(())
}

#[tokio::test]
async fn records_can_be_created_read_updated_and_deleted() -> TestResult {
    let org = Org::start().await?;
    let client = org.jwt_client().await?;
    let id = client
        .create(
            "Contact",
            &json!({"FirstName": "Grace", "LastName": "Hopper"}),
        )
        .await?;
    assert_eq!(id.len(), 18);
    validate_id(&id)?;

    let record = client
        .get("Contact", &id, Some(&["FirstName", "LastName"]))
        .await?;
    assert_eq!(field(&record, "LastName"), "Hopper");
    let full = client.get("Contact", &id, None).await?;
    assert_eq!(field(&full, "FirstName"), "Grace");

    client
        .update("Contact", &id, &json!({"LastName": "Hopper-Murray"}))
        .await?;
    let updated = client.get("Contact", &id, Some(&["LastName"])).await?;
    assert_eq!(field(&updated, "LastName"), "Hopper-Murray");

    // A 15-character id works too.
    client
        .get("Contact", &id[..15], Some(&["LastName"]))
        .await?;

    client.delete("Contact", &id).await?;
    let gone = client.get("Contact", &id, None).await;
    assert_eq!(gone.err().and_then(|error| error.status()), Some(404));
    let again = client.delete("Contact", &id).await;
    assert_eq!(
        again.err().as_ref().and_then(Error::error_code),
        Some("ENTITY_IS_DELETED")
    );
    Ok(())
}

#[tokio::test]
async fn salesforce_validation_errors_surface_with_their_codes() -> TestResult {
    let org = Org::start().await?;
    let client = org.jwt_client().await?;
    let case_id = client
        .query("SELECT Id FROM Case LIMIT 1")
        .await?
        .records
        .first()
        .map(|record| field(record, "Id").to_owned())
        .ok_or("the demo org has no case")?;

    let missing_last_name = client.create("Contact", &json!({"FirstName": "No"})).await;
    assert_eq!(
        missing_last_name.err(),
        Some(Error::Api {
            status: 400,
            error_code: "REQUIRED_FIELD_MISSING".into(),
            message: "Required fields are missing: [LastName]".into(),
            fields: vec!["LastName".into()],
        })
    );
    let cases: Vec<(&str, Result<(), Error>, u16, &str)> = vec![
        (
            "bad picklist on create",
            client
                .create("Case", &json!({"Subject": "x", "Status": "Bogus"}))
                .await
                .map(drop),
            400,
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        ),
        (
            "bad picklist on update",
            client
                .update("Case", &case_id, &json!({"Status": "Bogus"}))
                .await,
            400,
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        ),
        (
            "malformed query",
            client.query("SELEKT Id FROM Contact").await.map(drop),
            400,
            "MALFORMED_QUERY",
        ),
        (
            "unknown field in query",
            client.query("SELECT Bacon__c FROM Contact").await.map(drop),
            400,
            "INVALID_FIELD",
        ),
        (
            "unknown object in query",
            client.query("SELECT Id FROM Accountz").await.map(drop),
            400,
            "INVALID_TYPE",
        ),
        (
            "unknown object on create",
            client
                .create("Nope__c", &json!({"Name": "x"}))
                .await
                .map(drop),
            404,
            "NOT_FOUND",
        ),
        (
            "unknown field on create",
            client
                .create(
                    "Contact",
                    &json!({"LastName": "x", "FavoritePet__c": "cat"}),
                )
                .await
                .map(drop),
            400,
            "INVALID_FIELD",
        ),
    ];
    for (name, result, status, error_code) in cases {
        let error = result.err();
        assert_eq!(
            error.as_ref().and_then(Error::status),
            Some(status),
            "{name}: {error:?}"
        );
        assert_eq!(
            error.as_ref().and_then(Error::error_code),
            Some(error_code),
            "{name}"
        );
    }
    client
        .update("Case", &case_id, &json!({"Status": "Escalated"}))
        .await?;
    Ok(())
}

#[tokio::test]
async fn invalid_names_and_ids_are_refused_before_anything_is_sent() -> TestResult {
    let org = Org::start().await?;
    let client = org.jwt_client().await?;
    client.session().await?;
    org.clear_requests().await?;
    let contact = json!({"LastName": "x"});
    let results: Vec<(&str, Result<(), Error>)> = vec![
        (
            "object name with sql",
            client.create("Contact; DELETE", &contact).await.map(drop),
        ),
        (
            "fields not an object",
            client.create("Contact", &json!(["x"])).await.map(drop),
        ),
        (
            "short id",
            client.get("Contact", "003abc", None).await.map(drop),
        ),
        (
            "bad checksum",
            client
                .get("Contact", "001D000000IqhSLIAA", None)
                .await
                .map(drop),
        ),
        (
            "path traversal id",
            client.delete("Contact", "../../sobjects/x").await,
        ),
        (
            "bad field name",
            client
                .get("Contact", "001D000000IqhSLIAZ", Some(&["Name FROM User"]))
                .await
                .map(drop),
        ),
        (
            "bad object on update",
            client
                .update("1Contact", "001D000000IqhSLIAZ", &contact)
                .await,
        ),
        (
            "bad object on describe",
            client.describe("Contact/../x").await.map(drop),
        ),
        (
            "bad feed element id",
            client.chatter_comment("0D5'--", &json!({})).await.map(drop),
        ),
        ("empty query", client.query("  ").await.map(drop)),
    ];
    for (name, result) in results {
        assert!(
            matches!(result, Err(Error::InvalidInput(_))),
            "{name}: {result:?}"
        );
    }
    assert_eq!(org.requests().await?.len(), 0);
    Ok(())
}

#[tokio::test]
async fn describe_lists_objects_and_their_fields() -> TestResult {
    let org = Org::start().await?;
    let client = org.jwt_client().await?;
    let global = client.describe_global().await?;
    let names: Vec<&str> = global["sobjects"]
        .as_array()
        .ok_or("no sobjects array")?
        .iter()
        .filter_map(|object| object["name"].as_str())
        .collect();
    for expected in ["Account", "Contact", "Case", "Lead"] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let case = client.describe("Case").await?;
    assert_eq!(case["name"], "Case");
    assert_eq!(case["keyPrefix"], "500");
    let has_status = case["fields"]
        .as_array()
        .is_some_and(|fields| fields.iter().any(|field| field["name"] == "Status"));
    assert!(has_status);
    Ok(())
}

#[tokio::test]
async fn chatter_posts_and_comments_return_their_ids() -> TestResult {
    let org = Org::start().await?;
    let client = org.jwt_client().await?;
    let contact_id = client
        .create("Contact", &json!({"LastName": "Chatty"}))
        .await?;
    let post = client
        .chatter_post(&json!({
            "feedElementType": "FeedItem",
            "subjectId": contact_id,
            "body": {"messageSegments": [{"type": "Text", "text": "Caller asked for a callback"}]},
        }))
        .await?;
    let post_id = post["id"].as_str().ok_or("the feed element has no id")?;
    validate_id(post_id)?;
    let comment = client
        .chatter_comment(
            post_id,
            &json!({"body": {"messageSegments": [{"type": "Text", "text": "Called back"}]}}),
        )
        .await?;
    validate_id(comment["id"].as_str().ok_or("the comment has no id")?)?;
    Ok(())
}

#[tokio::test]
async fn limits_and_api_usage_are_reported() -> TestResult {
    let org = Org::start().await?;
    let client = org.jwt_client().await?;
    assert_eq!(client.api_usage(), None);
    let limits = client.limits().await?;
    assert_eq!(limits["DailyApiRequests"]["Max"], 15000);
    let usage = client.api_usage().ok_or("no Sforce-Limit-Info seen")?;
    assert_eq!(usage.max, 15000);
    assert!(usage.used >= 1);
    client.query("SELECT Id FROM Account").await?;
    let later = client.api_usage().ok_or("no Sforce-Limit-Info seen")?;
    assert!(later.used > usage.used, "{usage:?} then {later:?}");
    Ok(())
}
