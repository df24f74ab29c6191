//! Every operation, with events in the original's format, against the emulator's demo org.

use salesforce::safety::validate_id;

use crate::harness::{Fixture, event, fixture_event, get, invoke};

/// The guide's chain: phoneLookup → create a Case for the caller → close it.
#[tokio::test]
async fn phone_lookup_then_create_case_then_close_it() -> anyhow::Result<()> {
    let fixture = Fixture::start().await?;
    let state = fixture.state(&[])?;

    let caller = invoke(&state, &fixture_event("phoneLookup", &[])?).await?;
    assert_eq!(get(&caller, "sf_count")?, "1", "{caller:?}");
    assert_eq!(get(&caller, "Name")?, "Ada Lovelace");
    assert_eq!(get(&caller, "Email")?, "ada@example.com");
    let contact_id = get(&caller, "Id")?.to_owned();
    assert!(validate_id(&contact_id).is_ok(), "{contact_id}");
    assert!(
        caller.keys().all(|key| !key.contains("attributes")),
        "{caller:?}"
    );

    let created = invoke(
        &state,
        &fixture_event("createCase", &[("ContactId", &contact_id)])?,
    )
    .await?;
    let case_id = get(&created, "Id")?.to_owned();
    assert!(
        case_id.starts_with("500") && validate_id(&case_id).is_ok(),
        "{created:?}"
    );
    assert_eq!(created.len(), 1, "{created:?}");

    let closed = invoke(&state, &fixture_event("closeCase", &[("sf_id", &case_id)])?).await?;
    assert_eq!(closed.get("Status").map(String::as_str), Some("204"));

    let check = invoke(
        &state,
        &event(&[
            ("sf_operation", "queryOne"),
            (
                "query",
                "SELECT Status, Contact.Name FROM Case WHERE Id = 'CASE_ID'",
            ),
            ("CASE_ID", &case_id),
        ]),
    )
    .await?;
    assert_eq!(get(&check, "Status")?, "Closed");
    assert_eq!(get(&check, "Contact.Name")?, "Ada Lovelace");
    assert_eq!(get(&check, "sf_count")?, "1");
    // One login for the whole chain: the client is cached for the execution environment.
    assert_eq!(fixture.logins().await?, 1);
    Ok(())
}

#[tokio::test]
async fn lookups_queries_and_searches_flatten_their_records() -> anyhow::Result<()> {
    let fixture = Fixture::start().await?;
    let state = fixture.state(&[])?;

    // (event, expected key/value pairs, keys that must be absent)
    type Pairs<'a> = Vec<(&'a str, &'a str)>;
    let cases: Vec<(Pairs, Pairs, Vec<&str>)> = vec![
        (
            vec![
                ("sf_operation", "lookup"),
                ("sf_object", "Contact"),
                ("sf_fields", "Id, Name, Account.Name"),
                ("LastName", "Hopper"),
            ],
            vec![
                ("sf_count", "1"),
                ("Name", "Grace Hopper"),
                ("Account.Name", "Globex Inc"),
            ],
            vec!["attributes", "Account.attributes.type"],
        ),
        (
            vec![
                ("sf_operation", "lookup"),
                ("sf_object", "Contact"),
                ("sf_fields", "Name"),
                ("HomePhone", "+1 555 555 0102"),
            ],
            vec![("sf_count", "1"), ("Name", "Katherine Johnson")],
            vec![],
        ),
        (
            vec![
                ("sf_operation", "lookup"),
                ("sf_object", "Contact"),
                ("sf_fields", "Name"),
                ("LastName", "Nobody"),
            ],
            vec![("sf_count", "0")],
            vec!["Name"],
        ),
        (
            vec![
                ("sf_operation", "lookup_all"),
                ("sf_object", "Contact"),
                ("sf_fields", "Name, Email"),
                ("Account.Name", "Acme Corporation"),
            ],
            vec![("sf_count", "2")],
            vec!["Name"],
        ),
        (
            vec![
                ("sf_operation", "query"),
                (
                    "query",
                    "SELECT Name, Account.Name FROM Contact WHERE Account.Name = 'ACCOUNT' ORDER BY Name",
                ),
                ("ACCOUNT", "Globex Inc"),
            ],
            vec![
                ("sf_count", "2"),
                ("sf_records_0_Name", "Edsger Dijkstra"),
                ("sf_records_0_Account.Name", "Globex Inc"),
                ("sf_records_1_Name", "Grace Hopper"),
            ],
            vec!["Name", "sf_records_2_Name"],
        ),
        (
            vec![
                ("sf_operation", "queryOne"),
                (
                    "query",
                    "SELECT Name FROM Contact WHERE Account.Name = 'ACCOUNT'",
                ),
                ("ACCOUNT", "Globex Inc"),
            ],
            vec![("sf_count", "2")],
            vec!["Name", "sf_records_0_Name"],
        ),
        (
            vec![
                ("sf_operation", "search"),
                ("q", "Lovelace"),
                ("sf_fields", "Id, Name"),
                ("sf_object", "Contact"),
                ("where", "Email != null"),
            ],
            vec![("sf_count", "1"), ("sf_records_0_Name", "Ada Lovelace")],
            vec![],
        ),
        (
            vec![
                ("sf_operation", "searchOne"),
                ("q", "Hopper"),
                ("sf_fields", "Name, Email"),
                ("sf_object", "Contact"),
            ],
            vec![
                ("sf_count", "1"),
                ("Name", "Grace Hopper"),
                ("Email", "grace@example.com"),
            ],
            vec![],
        ),
        (
            vec![
                ("sf_operation", "searchSOSL"),
                (
                    "query",
                    "FIND {CALLER} IN PHONE FIELDS RETURNING Contact(Name ORDER BY Name)",
                ),
                ("CALLER", "5555550100"),
            ],
            vec![("sf_count", "1"), ("sf_records_0_Name", "Grace Hopper")],
            vec![],
        ),
        (
            vec![
                ("sf_operation", "searchOneSOSL"),
                (
                    "query",
                    "FIND {TERM} IN NAME FIELDS RETURNING Contact(Id, Name, Email)",
                ),
                ("TERM", "Lovelace"),
            ],
            vec![
                ("sf_count", "1"),
                ("Name", "Ada Lovelace"),
                ("Email", "ada@example.com"),
            ],
            vec![],
        ),
    ];
    for (pairs, expected, absent) in cases {
        let output = invoke(&state, &event(&pairs)).await?;
        for (key, value) in expected {
            assert_eq!(
                output.get(key).map(String::as_str),
                Some(value),
                "{pairs:?} → {output:?}"
            );
        }
        for key in absent {
            assert!(!output.contains_key(key), "{pairs:?} → {output:?}");
        }
        assert!(
            output.keys().all(|key| !key.contains("attributes")),
            "{output:?}"
        );
    }

    // searchOneSOSL is a SOSL search (the original wrongly ran it as SOQL).
    let log = fixture.data_requests().await?;
    assert!(
        log.iter().any(|entry| entry["sosl"]
            == "FIND {Lovelace} IN NAME FIELDS RETURNING Contact(Id, Name, Email)"),
        "{log:#?}"
    );
    // phoneLookup-style searches restrict themselves to phone fields.
    let phone = invoke(
        &state,
        &fixture_event("phoneLookup", &[("sf_phone", "+1 (555) 555-0100")])?,
    )
    .await?;
    assert_eq!(get(&phone, "Name")?, "Grace Hopper");
    let log = fixture.data_requests().await?;
    let search = log
        .last()
        .map(|entry| entry["body"].clone())
        .unwrap_or_default();
    assert_eq!(
        search,
        serde_json::json!({"q": "5555550100", "in": "PHONE", "sobjects": [{"name": "Contact"}], "fields": ["Id", "Name", "Email"]})
    );
    Ok(())
}

/// `query` and `queryOne` over parent-to-child subqueries and aggregates: the nested query
/// result flattens to `<Relationship>.totalSize`, `.done` and `.records.<i>.<Field>` (an
/// empty string when the parent has no children); `AggregateResult` records to their grouped
/// fields and `exprN` or alias keys; every value a string. The whole output is pinned.
#[tokio::test]
async fn subqueries_and_aggregates_flatten_to_documented_keys() -> anyhow::Result<()> {
    let fixture = Fixture::start().await?;
    let state = fixture.state(&[])?;
    type Pairs<'a> = Vec<(&'a str, &'a str)>;
    let cases: Vec<(Pairs, Pairs)> = vec![
        (
            vec![
                ("sf_operation", "queryOne"),
                (
                    "query",
                    "SELECT Name, (SELECT Subject, Status FROM Cases) FROM Contact WHERE LastName = 'NAME'",
                ),
                ("NAME", "Hopper"),
            ],
            vec![
                ("Cases.done", "true"),
                ("Cases.records.0.Status", "Working"),
                ("Cases.records.0.Subject", "Printer on fire"),
                ("Cases.totalSize", "1"),
                ("Name", "Grace Hopper"),
                ("sf_count", "1"),
            ],
        ),
        (
            vec![
                ("sf_operation", "query"),
                (
                    "query",
                    "SELECT LastName, (SELECT Subject FROM Cases) FROM Contact WHERE Account.Name = 'ACCOUNT' ORDER BY LastName",
                ),
                ("ACCOUNT", "Acme Corporation"),
            ],
            vec![
                ("sf_count", "2"),
                ("sf_records_0_Cases", ""),
                ("sf_records_0_LastName", "Lovelace"),
                ("sf_records_1_Cases", ""),
                ("sf_records_1_LastName", "Turing"),
            ],
        ),
        (
            vec![
                ("sf_operation", "query"),
                (
                    "query",
                    "SELECT Status, COUNT(Id) n, COUNT_DISTINCT(ContactId) FROM Case GROUP BY Status",
                ),
            ],
            vec![
                ("sf_count", "1"),
                ("sf_records_0_Status", "Working"),
                ("sf_records_0_expr0", "1"),
                ("sf_records_0_n", "1"),
            ],
        ),
        (
            vec![
                ("sf_operation", "queryOne"),
                (
                    "query",
                    "SELECT COUNT(Id) total, MAX(LastName), MIN(LastName) FROM Contact WHERE Account.Name = 'ACCOUNT'",
                ),
                ("ACCOUNT", "Globex Inc"),
            ],
            vec![
                ("expr0", "Hopper"),
                ("expr1", "Dijkstra"),
                ("sf_count", "1"),
                ("total", "2"),
            ],
        ),
    ];
    for (pairs, expected) in cases {
        let output = invoke(&state, &event(&pairs)).await?;
        let actual: Vec<(&str, &str)> = output
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
            .collect();
        assert_eq!(actual, expected, "{pairs:?}");
    }
    Ok(())
}

#[tokio::test]
async fn records_are_created_updated_and_deleted() -> anyhow::Result<()> {
    let fixture = Fixture::start().await?;
    let state = fixture.state(&[])?;

    let created = invoke(
        &state,
        &event(&[
            ("sf_operation", "create"),
            ("sf_object", "Task"),
            ("Subject", "Call back | urgent"),
            ("ActivityDate", "1d|date"),
            ("Status", "Not Started"),
        ]),
    )
    .await?;
    let task_id = get(&created, "Id")?.to_owned();

    let updated = invoke(
        &state,
        &event(&[
            ("sf_operation", "update"),
            ("sf_object", "Task"),
            ("sf_id", &task_id),
            ("Status", "Completed"),
            ("ActivityDate", "-1w|date"),
        ]),
    )
    .await?;
    assert_eq!(get(&updated, "Status")?, "204");

    let read = |id: String| {
        event(&[
            ("sf_operation", "queryOne"),
            (
                "query",
                "SELECT Subject, Status, ActivityDate FROM Task WHERE Id = 'TASK'",
            ),
            ("TASK", id.as_str()),
        ])
    };
    let task = invoke(&state, &read(task_id.clone())).await?;
    assert_eq!(get(&task, "Subject")?, "Call back | urgent");
    assert_eq!(get(&task, "Status")?, "Completed");
    // The handler's clock says 2026-02-27 22:30:15 UTC.
    assert_eq!(get(&task, "ActivityDate")?, "2026-02-20");

    // The create sent the date computed from the clock, not the raw "1d|date".
    let log = fixture.data_requests().await?;
    assert!(
        log.iter().any(|entry| entry["method"] == "POST" && entry["body"]["ActivityDate"] == "2026-02-28"),
        "{log:#?}"
    );

    let deleted = invoke(
        &state,
        &event(&[
            ("sf_operation", "delete"),
            ("sf_object", "Task"),
            ("sf_id", &task_id),
        ]),
    )
    .await?;
    assert_eq!(get(&deleted, "Response")?, "204");
    let gone = invoke(&state, &read(task_id)).await?;
    assert_eq!(get(&gone, "sf_count")?, "0");
    Ok(())
}

#[tokio::test]
async fn chatter_posts_and_comments_return_their_ids() -> anyhow::Result<()> {
    let fixture = Fixture::start().await?;
    let state = fixture.state(&[])?;

    let user = invoke(
        &state,
        &event(&[
            ("sf_operation", "queryOne"),
            ("query", "SELECT Id FROM User WHERE Username = 'USER'"),
            ("USER", "demo@sfstack.local"),
        ]),
    )
    .await?;
    let user_id = get(&user, "Id")?.to_owned();
    let case = invoke(
        &state,
        &event(&[
            ("sf_operation", "queryOne"),
            (
                "query",
                "SELECT Id FROM Case WHERE Subject = 'Printer on fire'",
            ),
        ]),
    )
    .await?;
    let case_id = get(&case, "Id")?.to_owned();

    let post = invoke(
        &state,
        &event(&[
            ("sf_operation", "createChatterPost"),
            ("sf_feedElementType", "FeedItem"),
            ("sf_subjectId", &case_id),
            ("sf_messageType", "Text"),
            ("sf_message", "Caller {{phone}} is waiting in {{queue}}. "),
            ("sf_mention", &user_id),
            ("phone", "+441122334455"),
            ("queue", "BasicQueue"),
        ]),
    )
    .await?;
    let post_id = get(&post, "Id")?.to_owned();
    assert!(post_id.starts_with("0D5"), "{post:?}");

    let comment = invoke(
        &state,
        &event(&[
            ("sf_operation", "createChatterComment"),
            ("sf_feedElementId", &post_id),
            ("sf_commentType", "Text"),
            ("sf_commentMessage", "Resolved by {{agent}}"),
            ("agent", "Demo"),
        ]),
    )
    .await?;
    assert!(get(&comment, "Id")?.starts_with("0D7"), "{comment:?}");

    let log = fixture.data_requests().await?;
    let bodies: Vec<&serde_json::Value> = log
        .iter()
        .filter(|entry| {
            entry["path"]
                .as_str()
                .is_some_and(|path| path.contains("/chatter/"))
        })
        .map(|entry| &entry["body"])
        .collect();
    assert_eq!(
        bodies,
        vec![
            &serde_json::json!({
                "body": {"messageSegments": [
                    {"type": "Text", "text": "Caller +441122334455 is waiting in BasicQueue. "},
                    {"type": "Mention", "id": user_id},
                ]},
                "feedElementType": "FeedItem",
                "subjectId": case_id,
            }),
            &serde_json::json!({"body": {"messageSegments": [{"type": "Text", "text": "Resolved by Demo"}]}}),
        ]
    );
    Ok(())
}
