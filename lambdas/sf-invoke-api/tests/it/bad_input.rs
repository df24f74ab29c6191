//! Malformed events and injection attempts: each gets its stable errorType and nothing of it
//! reaches Salesforce; values that are legitimately sent arrive escaped and match nothing.

use serde_json::{Value, json};

use crate::harness::{Fixture, event, get, invoke, try_invoke};

const VALID_CASE_ID: &str = "500D000000IqhSLIAZ";
/// `001D000000IqhSL` + the wrong checksum (the right one is `IAZ`).
const BROKEN_CHECKSUM: &str = "001D000000IqhSLIAB";

fn lookup(extra: &[(&str, &str)]) -> Value {
    let mut pairs = vec![
        ("sf_operation", "lookup"),
        ("sf_object", "Contact"),
        ("sf_fields", "Id, Name"),
    ];
    pairs.extend_from_slice(extra);
    event(&pairs)
}

fn with_parameters(parameters: Value) -> Value {
    json!({"Details": {"ContactData": {}, "Parameters": parameters}, "Name": "ContactFlowEvent"})
}

fn bad_events() -> Vec<(&'static str, Value, &'static str)> {
    let too_many: serde_json::Map<String, Value> = (0..101)
        .map(|index| (format!("Field{index}"), json!("x")))
        .collect();
    let oversized = "A".repeat(33 * 1024);
    vec![
        // The event's shape.
        ("event is an array", json!([]), "InvalidEvent"),
        ("event is a string", json!("lookup"), "InvalidEvent"),
        (
            "no Details",
            json!({"Name": "ContactFlowEvent"}),
            "InvalidEvent",
        ),
        (
            "Details is a string",
            json!({"Details": "x"}),
            "InvalidEvent",
        ),
        (
            "no Parameters",
            json!({"Details": {"ContactData": {}}}),
            "InvalidEvent",
        ),
        (
            "Parameters is an array",
            with_parameters(json!([["sf_operation", "lookup"]])),
            "InvalidEvent",
        ),
        (
            "Parameters is a string",
            with_parameters(json!("sf_operation=lookup")),
            "InvalidEvent",
        ),
        (
            "a number value",
            with_parameters(
                json!({"sf_operation": "lookup", "sf_object": "Contact", "sf_fields": "Id", "Phone": 5551234}),
            ),
            "InvalidEvent",
        ),
        (
            "a null value",
            with_parameters(json!({"sf_operation": "lookup", "sf_object": null})),
            "InvalidEvent",
        ),
        (
            "an object value",
            with_parameters(json!({"sf_operation": "lookup", "sf_object": {"name": "Contact"}})),
            "InvalidEvent",
        ),
        (
            "a boolean operation",
            with_parameters(json!({"sf_operation": true})),
            "InvalidEvent",
        ),
        (
            "101 parameters",
            with_parameters(Value::Object(too_many)),
            "InvalidEvent",
        ),
        (
            "an oversized value",
            lookup(&[("LastName", oversized.as_str())]),
            "InvalidParameter",
        ),
        // The operation.
        (
            "no sf_operation",
            event(&[("sf_object", "Contact")]),
            "MissingParameter",
        ),
        (
            "empty sf_operation",
            event(&[("sf_operation", "")]),
            "MissingParameter",
        ),
        (
            "unknown operation",
            event(&[("sf_operation", "describe")]),
            "UnknownOperation",
        ),
        (
            "wrong case Lookup",
            event(&[("sf_operation", "Lookup")]),
            "UnknownOperation",
        ),
        (
            "wrong case PHONELOOKUP",
            event(&[("sf_operation", "PHONELOOKUP")]),
            "UnknownOperation",
        ),
        (
            "operation with trailing space",
            event(&[("sf_operation", "query ")]),
            "UnknownOperation",
        ),
        (
            "operation injection",
            event(&[("sf_operation", "query; DROP")]),
            "UnknownOperation",
        ),
        // Missing parameters.
        (
            "lookup without sf_object",
            event(&[
                ("sf_operation", "lookup"),
                ("sf_fields", "Id"),
                ("Phone", "1"),
            ]),
            "MissingParameter",
        ),
        (
            "lookup without sf_fields",
            event(&[
                ("sf_operation", "lookup"),
                ("sf_object", "Contact"),
                ("Phone", "1"),
            ]),
            "MissingParameter",
        ),
        ("lookup without a filter", lookup(&[]), "MissingParameter"),
        (
            "update without sf_id",
            event(&[
                ("sf_operation", "update"),
                ("sf_object", "Case"),
                ("Status", "Closed"),
            ]),
            "MissingParameter",
        ),
        (
            "update without fields",
            event(&[
                ("sf_operation", "update"),
                ("sf_object", "Case"),
                ("sf_id", VALID_CASE_ID),
            ]),
            "MissingParameter",
        ),
        (
            "phoneLookup without sf_phone",
            event(&[("sf_operation", "phoneLookup"), ("sf_fields", "Id")]),
            "MissingParameter",
        ),
        (
            "query without query",
            event(&[("sf_operation", "query"), ("NAME", "x")]),
            "MissingParameter",
        ),
        (
            "search without q",
            event(&[
                ("sf_operation", "search"),
                ("sf_fields", "Id"),
                ("sf_object", "Contact"),
            ]),
            "MissingParameter",
        ),
        (
            "chatter post without message",
            event(&[
                ("sf_operation", "createChatterPost"),
                ("sf_feedElementType", "FeedItem"),
                ("sf_subjectId", "me"),
                ("sf_messageType", "Text"),
            ]),
            "MissingParameter",
        ),
        // Object and field names.
        (
            "lookup_all with a subquery in sf_fields",
            event(&[
                ("sf_operation", "lookup_all"),
                ("sf_object", "Contact"),
                ("sf_fields", "Id, (SELECT Id FROM Cases)"),
                ("LastName", "Hopper"),
            ]),
            "InvalidParameter",
        ),
        (
            "lookup_all with an aggregate in sf_fields",
            event(&[
                ("sf_operation", "lookup_all"),
                ("sf_object", "Contact"),
                ("sf_fields", "COUNT(Id)"),
                ("LastName", "Hopper"),
            ]),
            "InvalidParameter",
        ),
        (
            "sf_object with a WHERE",
            lookup(&[("sf_object", "Contact WHERE Name != null"), ("Phone", "1")]),
            "InvalidParameter",
        ),
        (
            "sf_object with a comment",
            lookup(&[("sf_object", "Contact--"), ("Phone", "1")]),
            "InvalidParameter",
        ),
        (
            "sf_fields with FROM",
            lookup(&[("sf_fields", "Id FROM User --"), ("Phone", "1")]),
            "InvalidParameter",
        ),
        (
            "sf_fields with a subquery",
            lookup(&[("sf_fields", "Id, (SELECT Id FROM Cases)"), ("Phone", "1")]),
            "InvalidParameter",
        ),
        (
            "filter name with an OR",
            lookup(&[("LastName != 'x' OR Name", "y")]),
            "InvalidParameter",
        ),
        (
            "filter name with parentheses",
            lookup(&[("Name) OR (Id", "y")]),
            "InvalidParameter",
        ),
        (
            "phone filter without digits",
            lookup(&[("MobilePhone", "' OR Id != '")]),
            "InvalidParameter",
        ),
        (
            "create field name with a quote",
            event(&[
                ("sf_operation", "create"),
                ("sf_object", "Case"),
                ("Subject'", "x"),
            ]),
            "InvalidParameter",
        ),
        (
            "create field path",
            event(&[
                ("sf_operation", "create"),
                ("sf_object", "Case"),
                ("Account.Name", "x"),
            ]),
            "InvalidParameter",
        ),
        (
            "create sf_object path traversal",
            event(&[
                ("sf_operation", "create"),
                ("sf_object", "Case/../../sobjects/User"),
                ("Subject", "x"),
            ]),
            "InvalidParameter",
        ),
        // Ids.
        (
            "update sf_id injection",
            event(&[
                ("sf_operation", "update"),
                ("sf_object", "Case"),
                ("sf_id", "500' OR Id != '"),
                ("Status", "Closed"),
            ]),
            "InvalidId",
        ),
        (
            "update sf_id with a broken checksum",
            event(&[
                ("sf_operation", "update"),
                ("sf_object", "Account"),
                ("sf_id", BROKEN_CHECKSUM),
                ("Name", "x"),
            ]),
            "InvalidId",
        ),
        (
            "delete sf_id too short",
            event(&[
                ("sf_operation", "delete"),
                ("sf_object", "Case"),
                ("sf_id", "001D000000IqhS"),
            ]),
            "InvalidId",
        ),
        (
            "delete sf_id path traversal",
            event(&[
                ("sf_operation", "delete"),
                ("sf_object", "Case"),
                ("sf_id", "../Contact/003D0"),
            ]),
            "InvalidId",
        ),
        (
            "delete sf_id with punctuation",
            event(&[
                ("sf_operation", "delete"),
                ("sf_object", "Case"),
                ("sf_id", "500D000000IqhSL-AZ"),
            ]),
            "InvalidId",
        ),
        // Query and SOSL placeholders.
        (
            "bare placeholder injection",
            event(&[
                ("sf_operation", "query"),
                ("query", "SELECT Id FROM Contact WHERE Id = CID"),
                ("CID", "x' OR Id != null"),
            ]),
            "InvalidParameter",
        ),
        (
            "bare placeholder with an OR",
            event(&[
                ("sf_operation", "queryOne"),
                ("query", "SELECT Id FROM Contact WHERE Id = CID"),
                ("CID", "003000000000001 OR Id != null"),
            ]),
            "InvalidParameter",
        ),
        (
            "bare LIMIT placeholder",
            event(&[
                ("sf_operation", "queryOne"),
                ("query", "SELECT Id FROM Contact LIMIT N"),
                ("N", "1 OFFSET 1"),
            ]),
            "InvalidParameter",
        ),
        (
            "query that deletes",
            event(&[("sf_operation", "query"), ("query", "DELETE FROM Contact")]),
            "InvalidParameter",
        ),
        (
            "query with an unterminated literal",
            event(&[
                ("sf_operation", "query"),
                ("query", "SELECT Id FROM Contact WHERE Name = 'x"),
            ]),
            "InvalidParameter",
        ),
        (
            "SOSL that is SOQL",
            event(&[
                ("sf_operation", "searchSOSL"),
                ("query", "SELECT Id FROM Contact"),
            ]),
            "InvalidParameter",
        ),
        (
            "bare SOSL placeholder breaking out of RETURNING",
            event(&[
                ("sf_operation", "searchOneSOSL"),
                ("query", "FIND {x} RETURNING Contact(Id WHERE Name = NAME)"),
                ("NAME", "'a') , User(Id, Username"),
            ]),
            "InvalidParameter",
        ),
        // Parameterized search.
        (
            "where breaking out of RETURNING",
            event(&[
                ("sf_operation", "search"),
                ("q", "Acme"),
                ("sf_fields", "Id"),
                ("sf_object", "Contact"),
                ("where", "Name = 'x') , User(Id, Username"),
            ]),
            "InvalidParameter",
        ),
        (
            "where with LIMIT",
            event(&[
                ("sf_operation", "searchOne"),
                ("q", "Acme"),
                ("sf_fields", "Id"),
                ("sf_object", "Contact"),
                ("where", "Name = 'x' LIMIT 1"),
            ]),
            "InvalidParameter",
        ),
        (
            "search sf_object breaking out",
            event(&[
                ("sf_operation", "search"),
                ("q", "Acme"),
                ("sf_fields", "Id"),
                ("sf_object", "Contact), User(Id"),
            ]),
            "InvalidParameter",
        ),
        (
            "search sf_fields injection",
            event(&[
                ("sf_operation", "search"),
                ("q", "Acme"),
                ("sf_fields", "Id) , User(Username"),
                ("sf_object", "Contact"),
            ]),
            "InvalidParameter",
        ),
        (
            "overallLimit too large",
            event(&[
                ("sf_operation", "search"),
                ("q", "Acme"),
                ("sf_fields", "Id"),
                ("sf_object", "Contact"),
                ("overallLimit", "100000"),
            ]),
            "InvalidParameter",
        ),
        (
            "overallLimit not a number",
            event(&[
                ("sf_operation", "search"),
                ("q", "Acme"),
                ("sf_fields", "Id"),
                ("sf_object", "Contact"),
                ("overallLimit", "10; x"),
            ]),
            "InvalidParameter",
        ),
        (
            "one-character search",
            event(&[
                ("sf_operation", "search"),
                ("q", "a"),
                ("sf_fields", "Id"),
                ("sf_object", "Contact"),
            ]),
            "InvalidParameter",
        ),
        // phoneLookup.
        (
            "phone injection",
            event(&[
                ("sf_operation", "phoneLookup"),
                ("sf_phone", "+44' OR Name != '"),
                ("sf_fields", "Id"),
            ]),
            "InvalidParameter",
        ),
        (
            "phone wildcard",
            event(&[
                ("sf_operation", "phoneLookup"),
                ("sf_phone", "+44*"),
                ("sf_fields", "Id"),
            ]),
            "InvalidParameter",
        ),
        (
            "phoneLookup fields injection",
            event(&[
                ("sf_operation", "phoneLookup"),
                ("sf_phone", "+441122334455"),
                ("sf_fields", "Id, Name FROM User"),
            ]),
            "InvalidParameter",
        ),
        // Relative dates.
        (
            "unknown date unit",
            event(&[
                ("sf_operation", "create"),
                ("sf_object", "Task"),
                ("ActivityDate", "2x|date"),
            ]),
            "InvalidParameter",
        ),
        (
            "date delta not a number",
            event(&[
                ("sf_operation", "create"),
                ("sf_object", "Task"),
                ("ActivityDate", "abc|datetime"),
            ]),
            "InvalidParameter",
        ),
        (
            "date delta out of range",
            event(&[
                ("sf_operation", "update"),
                ("sf_object", "Case"),
                ("sf_id", VALID_CASE_ID),
                ("ClosedDate", "999999999w|date"),
            ]),
            "InvalidParameter",
        ),
        // Chatter.
        (
            "chatter subject injection",
            event(&[
                ("sf_operation", "createChatterPost"),
                ("sf_feedElementType", "FeedItem"),
                ("sf_subjectId", "500 OR x"),
                ("sf_messageType", "Text"),
                ("sf_message", "hi"),
            ]),
            "InvalidId",
        ),
        (
            "chatter message with an unknown key",
            event(&[
                ("sf_operation", "createChatterPost"),
                ("sf_feedElementType", "FeedItem"),
                ("sf_subjectId", "me"),
                ("sf_messageType", "Text"),
                ("sf_message", "hi {{nobody}}"),
            ]),
            "InvalidParameter",
        ),
        (
            "chatter message type injection",
            event(&[
                ("sf_operation", "createChatterPost"),
                ("sf_feedElementType", "FeedItem"),
                ("sf_subjectId", "me"),
                ("sf_messageType", "Text\"}"),
                ("sf_message", "hi"),
            ]),
            "InvalidParameter",
        ),
        (
            "chatter mention with a broken checksum",
            event(&[
                ("sf_operation", "createChatterPost"),
                ("sf_feedElementType", "FeedItem"),
                ("sf_subjectId", "me"),
                ("sf_messageType", "Text"),
                ("sf_message", "hi"),
                ("sf_mention", BROKEN_CHECKSUM),
            ]),
            "InvalidId",
        ),
        (
            "chatter comment on a broken id",
            event(&[
                ("sf_operation", "createChatterComment"),
                ("sf_feedElementId", BROKEN_CHECKSUM),
                ("sf_commentType", "Text"),
                ("sf_commentMessage", "hi"),
            ]),
            "InvalidId",
        ),
    ]
}

#[tokio::test]
async fn bad_input_is_rejected_before_anything_is_sent() -> anyhow::Result<()> {
    let fixture = Fixture::start().await?;
    let state = fixture.state(&[])?;
    fixture.clear_log().await?;

    let cases = bad_events();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut failures = Vec::new();
    for (name, event, expected) in &cases {
        match try_invoke(&state, event).await {
            Ok(output) => failures.push(format!("{name}: succeeded with {output:?}")),
            Err(error) if error.error_type() != *expected => {
                failures.push(format!(
                    "{name}: expected {expected}, got {}: {error}",
                    error.error_type()
                ));
            }
            Err(error) => {
                // Messages stay short even for oversized values.
                assert!(error.to_string().len() < 600, "{name}: {error}");
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Nothing was sent, not even a login: validation happens before the client is built.
    let log = fixture.log().await?;
    assert!(log.is_empty(), "{log:#?}");
    Ok(())
}

#[tokio::test]
async fn hostile_values_that_are_sent_arrive_escaped_and_match_nothing() -> anyhow::Result<()> {
    let fixture = Fixture::start().await?;
    let state = fixture.state(&[])?;

    // (event, text the logged statement must contain, the log field holding it)
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            lookup(&[("LastName", "x' OR LastName != 'x")]),
            r"WHERE LastName = 'x\' OR LastName != \'x'",
            "soql",
        ),
        (
            lookup(&[("Email", r"\' OR Email != null OR Email = \'")]),
            r"WHERE Email = '\\\' OR Email != null OR Email = \\\''",
            "soql",
        ),
        (
            event(&[
                ("sf_operation", "query"),
                ("query", "SELECT Name FROM Contact WHERE LastName = 'NAME'"),
                ("NAME", "Lovelace' OR LastName != '"),
            ]),
            r"WHERE LastName = 'Lovelace\' OR LastName != \''",
            "soql",
        ),
        (
            event(&[
                ("sf_operation", "query"),
                ("query", "SELECT Name FROM Contact WHERE Email LIKE 'EMAIL'"),
                ("EMAIL", "%"),
            ]),
            r"WHERE Email LIKE '\%'",
            "soql",
        ),
        (
            event(&[
                ("sf_operation", "searchSOSL"),
                (
                    "query",
                    "FIND {CALLER} IN PHONE FIELDS RETURNING Contact(Name)",
                ),
                ("CALLER", "5555* OR 1122*"),
            ]),
            r"FIND {5555\* OR 1122\*} IN PHONE FIELDS",
            "sosl",
        ),
    ];
    for (event, expected, field) in cases {
        fixture.clear_log().await?;
        let output = invoke(&state, &event).await?;
        assert_eq!(get(&output, "sf_count")?, "0", "{event} → {output:?}");
        let log = fixture.data_requests().await?;
        assert_eq!(log.len(), 1, "{log:#?}");
        let statement = log[0][field].as_str().unwrap_or_default();
        assert!(
            statement.contains(expected),
            "{statement} does not contain {expected}"
        );
    }
    Ok(())
}
