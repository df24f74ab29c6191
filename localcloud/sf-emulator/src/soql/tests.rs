//! Tests of the SOQL parser and evaluator over the demo org's records.

use serde_json::json;

use super::fixture::{Org, org};
use super::*;

fn options(include_deleted: bool) -> QueryOptions {
    QueryOptions {
        include_deleted,
        api_version: "62.0".into(),
    }
}

fn query(org: &Org, soql: &str) -> Result<QueryOutput, RestError> {
    run(soql, &org.schema, &org.store, &options(false))
}

/// The values of one top-level field of every row, as strings (`null` for null).
fn column(output: &QueryOutput, field: &str) -> Vec<String> {
    output
        .records
        .iter()
        .map(|record| match &record[field] {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        })
        .collect()
}

const UNKNOWN_FIELD: &str = "\nSELECT Bacon__c FROM Account LIMIT 2\n       ^\nERROR at Row:1:Column:8\nNo such column 'Bacon__c' on entity 'Account'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.";
const UNKNOWN_TYPE: &str = "\nSELECT Id FROM Accountz LIMIT 2\n               ^\nERROR at Row:1:Column:16\nsObject type 'Accountz' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.";

#[test]
fn malformed_statements_get_salesforce_error_codes_and_messages() {
    let org = org();
    // (statement, error code, exact message or a fragment it must contain)
    let cases: &[(&str, &str, &str)] = &[
        (
            "SELECT Bacon__c FROM Account LIMIT 2",
            "INVALID_FIELD",
            UNKNOWN_FIELD,
        ),
        (
            "SELECT Id FROM Accountz LIMIT 2",
            "INVALID_TYPE",
            UNKNOWN_TYPE,
        ),
        (
            "SELECT Id, FROM Account",
            "MALFORMED_QUERY",
            "\nSELECT Id, FROM Account\n           ^\nERROR at Row:1:Column:12\nunexpected token: 'FROM'",
        ),
        (
            "",
            "MALFORMED_QUERY",
            "SOQL statements cannot be empty or null",
        ),
        (
            "   ",
            "MALFORMED_QUERY",
            "SOQL statements cannot be empty or null",
        ),
        ("invalid", "MALFORMED_QUERY", "unexpected token: 'invalid'"),
        (
            "SELEKT Id FROM Account",
            "MALFORMED_QUERY",
            "unexpected token: SELEKT",
        ),
        (
            "SELECT Name, name FROM Account",
            "MALFORMED_QUERY",
            "duplicate field selected: name",
        ),
        (
            "SELECT Id, Account.Name, account.name FROM Contact",
            "MALFORMED_QUERY",
            "duplicate field selected: account.name",
        ),
        (
            "SELECT Foo.Name FROM Contact",
            "INVALID_FIELD",
            "Didn't understand relationship 'Foo' in field path.",
        ),
        (
            "SELECT Account FROM Contact",
            "INVALID_FIELD",
            "No such column 'Account' on entity 'Contact'",
        ),
        (
            "SELECT Account.Bacon FROM Contact",
            "INVALID_FIELD",
            "No such column 'Bacon' on entity 'Account'",
        ),
        (
            "SELECT Who.Bacon FROM Task",
            "INVALID_FIELD",
            "No such column 'Bacon' on entity 'Name'",
        ),
        (
            "SELECT Id FROM Account WHERE Bacon = 1",
            "INVALID_FIELD",
            "Column:30\nNo such column 'Bacon'",
        ),
        (
            "SELECT Id FROM Account ORDER BY Bacon",
            "INVALID_FIELD",
            "No such column 'Bacon'",
        ),
        (
            "SELECT Id FROM Account WHERE Name = 'a' AND Name = 'b' OR Name = 'c'",
            "MALFORMED_QUERY",
            "Column:56\nunexpected token: 'OR'",
        ),
        (
            "SELECT Id FROM Account WHERE Name = 'a' OR Name = 'b' AND Name = 'c'",
            "MALFORMED_QUERY",
            "unexpected token: 'AND'",
        ),
        (
            "SELECT Id FROM Account WHERE",
            "MALFORMED_QUERY",
            "unexpected token: '<EOF>'",
        ),
        (
            "SELECT Id FROM Account WHERE Name = 'abc",
            "MALFORMED_QUERY",
            "unexpected token: '<EOF>'",
        ),
        (
            "SELECT Id FROM Account WHERE Name = 'a\\x'",
            "MALFORMED_QUERY",
            "Illegal character sequence '\\x' in string literal.",
        ),
        (
            "SELECT Id FROM Account WHERE Name == 'a'",
            "MALFORMED_QUERY",
            "unexpected token: '='",
        ),
        (
            "SELECT Id FROM Account WHERE Name = :name",
            "MALFORMED_QUERY",
            "unexpected token: ':'",
        ),
        (
            "SELECT Id FROM Account trailing",
            "MALFORMED_QUERY",
            "unexpected token: 'trailing'",
        ),
        (
            "SELECT Id FROM Account LIMIT -1",
            "MALFORMED_QUERY",
            "unexpected token: '-1'",
        ),
        (
            "SELECT Id FROM Account LIMIT 1.5",
            "MALFORMED_QUERY",
            "unexpected token: '1.5'",
        ),
        (
            "SELECT Id FROM Account LIMIT ten",
            "MALFORMED_QUERY",
            "unexpected token: 'ten'",
        ),
        (
            "SELECT Id FROM Account OFFSET 2001",
            "NUMBER_OUTSIDE_VALID_RANGE",
            "Maximum SOQL offset allowed is 2000",
        ),
        (
            "SELECT COUNT(), Name FROM Account",
            "MALFORMED_QUERY",
            "unexpected token: 'Name'",
        ),
        (
            "SELECT Id, COUNT() FROM Account",
            "MALFORMED_QUERY",
            "unexpected token: ')'",
        ),
        (
            "SELECT Id, (SELECT Id FROM Bacon) FROM Contact",
            "INVALID_TYPE",
            "\nSELECT Id, (SELECT Id FROM Bacon) FROM Contact\n                           ^\nERROR at Row:1:Column:28\nDidn't understand relationship 'Bacon' in FROM part of query call. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name.",
        ),
        (
            "SELECT Id, (SELECT Bacon FROM Cases) FROM Contact",
            "INVALID_FIELD",
            "No such column 'Bacon' on entity 'Case'",
        ),
        (
            "SELECT Id, (SELECT Id FROM Cases FROM Contact",
            "MALFORMED_QUERY",
            "unexpected token",
        ),
        (
            "SELECT Id, (SELECT Id, (SELECT Id FROM Tasks) FROM Cases) FROM Contact",
            "MALFORMED_QUERY",
            "Nesting of subqueries is not supported",
        ),
        (
            "SELECT Id, (SELECT Id FROM Cases), (SELECT Id FROM cases) FROM Contact",
            "MALFORMED_QUERY",
            "duplicate field selected: Cases",
        ),
        (
            "SELECT Subject, COUNT(Id) FROM Case GROUP BY Status",
            "MALFORMED_QUERY",
            "\nSELECT Subject, COUNT(Id) FROM Case GROUP BY Status\n       ^\nERROR at Row:1:Column:8\nField must be grouped or aggregated: Subject",
        ),
        (
            "SELECT SUM(Name) FROM Account",
            "MALFORMED_QUERY",
            "field Name does not support aggregate operator SUM",
        ),
        (
            "SELECT COUNT(IsDeleted) FROM Account",
            "MALFORMED_QUERY",
            "field IsDeleted does not support aggregate operator COUNT",
        ),
        (
            "SELECT Description FROM Case GROUP BY Description",
            "MALFORMED_QUERY",
            "field 'Description' can not be grouped in a query call",
        ),
        (
            "SELECT AnnualRevenue FROM Account GROUP BY AnnualRevenue",
            "MALFORMED_QUERY",
            "field 'AnnualRevenue' can not be grouped in a query call",
        ),
        (
            "SELECT Status, COUNT(Id) FROM Case GROUP BY Status ORDER BY Subject",
            "MALFORMED_QUERY",
            "Ordered field must be grouped or aggregated: Subject",
        ),
        (
            "SELECT Status FROM Case GROUP BY Status HAVING Subject = 'x'",
            "MALFORMED_QUERY",
            "Field must be grouped or aggregated: Subject",
        ),
        (
            "SELECT Status, COUNT(Id) FROM Case GROUP BY Status HAVING COUNT(Id) > 'x'",
            "INVALID_FIELD",
            "must be of type integer",
        ),
        (
            "SELECT Id FROM Case HAVING COUNT(Id) > 1",
            "MALFORMED_QUERY",
            "unexpected token: 'HAVING'",
        ),
        (
            "SELECT COUNT() FROM Case GROUP BY Status",
            "MALFORMED_QUERY",
            "use COUNT(fieldName)",
        ),
        (
            "SELECT Name n FROM Account",
            "MALFORMED_QUERY",
            "unexpected token: 'n'",
        ),
        (
            "SELECT Status, Status, COUNT(Id) FROM Case GROUP BY Status",
            "MALFORMED_QUERY",
            "duplicate field selected: Status",
        ),
        (
            "SELECT COUNT(Id) n, MAX(Name) n FROM Account",
            "MALFORMED_QUERY",
            "duplicate alias: n",
        ),
        (
            "SELECT (SELECT Id FROM Cases), COUNT(Id) FROM Contact",
            "MALFORMED_QUERY",
            "Aggregate query does not support subqueries",
        ),
        (
            "SELECT Id FROM Account WHERE NumberOfEmployees = 'ten'",
            "INVALID_FIELD",
            "value of filter criterion for field 'NumberOfEmployees' must be of type integer and should not be enclosed in quotes",
        ),
        (
            "SELECT Id FROM Account WHERE Name = 5",
            "INVALID_FIELD",
            "must be of type string and should be enclosed in quotes",
        ),
        (
            "SELECT Id FROM Account WHERE CreatedDate > 2024-01-01",
            "INVALID_FIELD",
            "must be of type dateTime",
        ),
        (
            "SELECT Id FROM Contact WHERE Birthdate > 2024-01-01T00:00:00Z",
            "INVALID_FIELD",
            "must be of type date",
        ),
        (
            "SELECT Id FROM Contact WHERE Birthdate > 2024-13-45",
            "MALFORMED_QUERY",
            "unexpected token: '2024-13-45'",
        ),
        (
            "SELECT Id FROM Account WHERE IsDeleted < true",
            "INVALID_FIELD",
            "invalid operator on boolean field",
        ),
        (
            "SELECT Id FROM Account WHERE NumberOfEmployees LIKE '1%'",
            "INVALID_FIELD",
            "invalid operator",
        ),
        (
            "SELECT Id FROM Account WHERE Id = 'xyz'",
            "INVALID_QUERY_FILTER_OPERATOR",
            "invalid ID field: xyz",
        ),
        (
            "SELECT Id FROM Contact WHERE AccountId IN ('001')",
            "INVALID_QUERY_FILTER_OPERATOR",
            "invalid ID field: 001",
        ),
        (
            "SELECT Id FROM Account WHERE Name IN ()",
            "MALFORMED_QUERY",
            "unexpected token: ')'",
        ),
        (
            "SELECT Id FROM Account ORDER BY Name NULLS MIDDLE",
            "MALFORMED_QUERY",
            "unexpected token: 'MIDDLE'",
        ),
        (
            "SELECT Id FROM Account WHERE CreatedDate = LAST_N_DAYS:x",
            "MALFORMED_QUERY",
            "unexpected token: 'x'",
        ),
        (
            "SELECT Id FROM Account WHERE Name = \"a\"",
            "MALFORMED_QUERY",
            "unexpected token: '\"'",
        ),
    ];
    for (soql, code, message) in cases {
        match query(&org, soql) {
            Ok(output) => panic!("{soql}: expected {code}, got {output:?}"),
            Err(error) => {
                assert_eq!(error.error_code, *code, "{soql}: {}", error.message);
                assert_eq!(error.status.as_u16(), 400, "{soql}");
                assert!(
                    error.message.contains(message),
                    "{soql}: {:?}",
                    error.message
                );
            }
        }
    }
}

#[test]
fn multi_line_errors_count_rows_and_columns() {
    let org = org();
    let error = query(&org, "SELECT Id,\n  Bacon__c\nFROM Account").err();
    let message = error.map(|error| error.message).unwrap_or_default();
    assert!(
        message
            .starts_with("\n  Bacon__c\n  ^\nERROR at Row:2:Column:3\nNo such column 'Bacon__c'"),
        "{message:?}"
    );
}

#[test]
fn filters_sorts_and_pages_accounts() {
    let org = org();
    // (statement, expected Name column)
    let cases: &[(&str, &[&str])] = &[
        ("SELECT Name FROM Account", &["Acme", "Globex", "Initech"]),
        ("select name from account where name = 'ACME'", &["Acme"]),
        (
            "SELECT Name FROM Account WHERE Name != 'acme'",
            &["Globex", "Initech"],
        ),
        (
            "SELECT Name FROM Account WHERE Name <> 'Acme'",
            &["Globex", "Initech"],
        ),
        ("SELECT Name FROM Account WHERE Name LIKE 'g%'", &["Globex"]),
        (
            "SELECT Name FROM Account WHERE Name LIKE '_NITECH'",
            &["Initech"],
        ),
        (
            "SELECT Name FROM Account WHERE Name LIKE '%x%'",
            &["Globex"],
        ),
        ("SELECT Name FROM Account WHERE Name LIKE 'Acm'", &[]),
        (
            "SELECT Name FROM Account WHERE Name > 'B'",
            &["Globex", "Initech"],
        ),
        (
            "SELECT Name FROM Account WHERE NumberOfEmployees > 10",
            &["Acme"],
        ),
        (
            "SELECT Name FROM Account WHERE NumberOfEmployees >= 10",
            &["Acme", "Globex"],
        ),
        (
            "SELECT Name FROM Account WHERE NumberOfEmployees <= 10.5",
            &["Globex"],
        ),
        (
            "SELECT Name FROM Account WHERE NumberOfEmployees = null",
            &["Initech"],
        ),
        (
            "SELECT Name FROM Account WHERE NumberOfEmployees != null",
            &["Acme", "Globex"],
        ),
        (
            "SELECT Name FROM Account WHERE NumberOfEmployees != 50",
            &["Globex", "Initech"],
        ),
        (
            "SELECT Name FROM Account WHERE Name IN ('acme', 'Initech')",
            &["Acme", "Initech"],
        ),
        (
            "SELECT Name FROM Account WHERE Name NOT IN ('acme', 'Initech')",
            &["Globex"],
        ),
        (
            "SELECT Name FROM Account WHERE NOT Name = 'Acme'",
            &["Globex", "Initech"],
        ),
        (
            "SELECT Name FROM Account WHERE (Name = 'Acme' OR Name = 'Globex') AND NumberOfEmployees < 20",
            &["Globex"],
        ),
        (
            "SELECT Name FROM Account WHERE Name = 'Acme' OR (Name = 'Globex' AND NumberOfEmployees > 20)",
            &["Acme"],
        ),
        (
            "SELECT Name FROM Account WHERE NOT (Name = 'Acme' OR Name = 'Globex')",
            &["Initech"],
        ),
        (
            "SELECT Name FROM Account WHERE Industry = 'technology'",
            &["Acme"],
        ),
        (
            "SELECT Name FROM Account WHERE Phone = '(555) 555-0100'",
            &["Globex"],
        ),
        (
            "SELECT Name FROM Account WHERE Phone LIKE '+44%'",
            &["Acme"],
        ),
        (
            "SELECT Name FROM Account WHERE Owner.Name = 'Guy Smiley'",
            &["Acme", "Initech"],
        ),
        ("SELECT Name FROM Account WHERE OwnerId = null", &["Globex"]),
        (
            "SELECT Name FROM Account WHERE IsDeleted = false",
            &["Acme", "Globex", "Initech"],
        ),
        (
            "SELECT Name FROM Account WHERE CreatedDate = TODAY",
            &["Acme", "Globex", "Initech"],
        ),
        (
            "SELECT Name FROM Account WHERE CreatedDate = YESTERDAY",
            &[],
        ),
        ("SELECT Name FROM Account WHERE CreatedDate = TOMORROW", &[]),
        (
            "SELECT Name FROM Account WHERE CreatedDate = LAST_N_DAYS:3",
            &["Acme", "Globex", "Initech"],
        ),
        (
            "SELECT Name FROM Account WHERE CreatedDate > 2000-01-01T00:00:00Z",
            &["Acme", "Globex", "Initech"],
        ),
        (
            "SELECT Name FROM Account WHERE CreatedDate < 2000-01-01T00:00:00+01:00",
            &[],
        ),
        (
            "SELECT Name FROM Account ORDER BY NumberOfEmployees",
            &["Initech", "Globex", "Acme"],
        ),
        (
            "SELECT Name FROM Account ORDER BY NumberOfEmployees DESC",
            &["Acme", "Globex", "Initech"],
        ),
        (
            "SELECT Name FROM Account ORDER BY NumberOfEmployees ASC NULLS LAST",
            &["Globex", "Acme", "Initech"],
        ),
        (
            "SELECT Name FROM Account ORDER BY NumberOfEmployees DESC NULLS FIRST",
            &["Initech", "Acme", "Globex"],
        ),
        (
            "SELECT Name FROM Account ORDER BY Industry DESC, Name DESC",
            &["Acme", "Initech", "Globex"],
        ),
        (
            "SELECT Name FROM Account ORDER BY Name DESC LIMIT 2",
            &["Initech", "Globex"],
        ),
        (
            "SELECT Name FROM Account ORDER BY Name LIMIT 2 OFFSET 1",
            &["Globex", "Initech"],
        ),
        ("SELECT Name FROM Account OFFSET 5", &[]),
        ("SELECT Name FROM Account LIMIT 0", &[]),
        (
            "SELECT Account.Name FROM Account WHERE Account.Name = 'Acme'",
            &["Acme"],
        ),
    ];
    for (soql, expected) in cases {
        match query(&org, soql) {
            Ok(output) => {
                assert_eq!(column(&output, "Name"), *expected, "{soql}");
                assert_eq!(output.total_size, expected.len(), "{soql}");
            }
            Err(error) => panic!("{soql}: {error}"),
        }
    }
}

#[test]
fn relationship_paths_filter_and_sort_contacts() {
    let org = org();
    let ada_15 = org.id("ada").get(..15).unwrap_or_default().to_string();
    let acme = org.id("acme");
    let cases: Vec<(String, &[&str])> = vec![
        (
            "SELECT Subject FROM Task WHERE Who.Name = 'Ada Lovelace'".into(),
            &["Call Ada"],
        ),
        (
            "SELECT Name FROM Contact WHERE Account.Name = 'Acme'".into(),
            &["Ada Lovelace"],
        ),
        (
            "SELECT Name FROM Contact WHERE Account.Owner.LastName = 'smiley'".into(),
            &["Ada Lovelace"],
        ),
        (
            "SELECT Name FROM Contact WHERE Account.Name = null".into(),
            &["Carol Danvers"],
        ),
        (
            "SELECT Name FROM Contact ORDER BY Account.Name DESC NULLS LAST".into(),
            &["Bob O'Brien", "Ada Lovelace", "Carol Danvers"],
        ),
        (
            "SELECT Name FROM Contact WHERE LastName = 'O\\'Brien'".into(),
            &["Bob O'Brien"],
        ),
        (
            "SELECT Name FROM Contact WHERE Birthdate = 1815-12-10".into(),
            &["Ada Lovelace"],
        ),
        (
            "SELECT Name FROM Contact WHERE Birthdate < 1900-01-01".into(),
            &["Ada Lovelace"],
        ),
        (
            "SELECT Name FROM Contact WHERE Birthdate > 1815-12-10".into(),
            &[],
        ),
        (
            "SELECT Name FROM Contact WHERE Birthdate != null".into(),
            &["Ada Lovelace"],
        ),
        (
            format!("SELECT Name FROM Contact WHERE Id = '{ada_15}'"),
            &["Ada Lovelace"],
        ),
        (
            format!("SELECT Name FROM Contact WHERE AccountId = '{acme}'"),
            &["Ada Lovelace"],
        ),
        (
            format!(
                "SELECT Name FROM Contact WHERE AccountId = '{}'",
                acme.to_lowercase()
                    .get(..15)
                    .map(|_| acme.clone())
                    .unwrap_or_default()
            ),
            &["Ada Lovelace"],
        ),
        (
            format!("SELECT Name FROM Contact WHERE AccountId != '{acme}' ORDER BY Name"),
            &["Bob O'Brien", "Carol Danvers"],
        ),
        (
            "SELECT Name FROM Contact WHERE AccountId = ''".into(),
            &["Carol Danvers"],
        ),
        (
            "SELECT Name FROM Contact WHERE Email LIKE '%@ACME.com'".into(),
            &["Ada Lovelace"],
        ),
    ];
    for (soql, expected) in &cases {
        let field = if soql.contains("FROM Task") {
            "Subject"
        } else {
            "Name"
        };
        let output = query(&org, soql).map_err(|error| format!("{soql}: {error}"));
        let names = output.as_ref().map(|output| column(output, field));
        let expected: Vec<String> = expected.iter().map(|name| name.to_string()).collect();
        assert_eq!(names, Ok(expected), "{soql}");
    }
}

#[test]
fn escaped_quotes_and_wildcards_cannot_widen_a_filter() {
    let org = org();
    let cases: &[(&str, usize)] = &[
        // The classic injection: the whole thing is one literal, so nothing matches.
        (
            "SELECT Name FROM Account WHERE Name = 'x\\' OR Name LIKE \\'%'",
            0,
        ),
        (
            "SELECT Name FROM Account WHERE Name LIKE 'x\\' OR Name LIKE \\'%'",
            0,
        ),
        // Escaped wildcards are literal characters.
        ("SELECT Name FROM Account WHERE Name LIKE '\\%'", 0),
        ("SELECT Name FROM Account WHERE Name LIKE 'Acm\\_'", 0),
        ("SELECT Name FROM Account WHERE Name LIKE 'Acm_'", 1),
        ("SELECT Name FROM Contact WHERE LastName LIKE 'O\\'%'", 1),
        ("SELECT Name FROM Contact WHERE Name = 'Ada\\nLovelace'", 0),
        ("SELECT Name FROM Contact WHERE Name = 'Ada\\\\Lovelace'", 0),
        ("SELECT Name FROM Account WHERE Name = '\\\"Acme\\\"'", 0),
    ];
    for (soql, expected) in cases {
        let count = query(&org, soql)
            .map(|output| output.total_size)
            .map_err(|e| e.to_string());
        assert_eq!(count, Ok(*expected), "{soql}");
    }
}

#[test]
fn rows_render_selected_fields_with_nested_parents() {
    let org = org();
    let output = query(
        &org,
        "SELECT id, NAME, account.name, Account.Owner.Name FROM contact WHERE Name LIKE '%a%' ORDER BY Name",
    )
    .map_err(|error| error.to_string());
    let url = |object: &str, id: &str| format!("/services/data/v62.0/sobjects/{object}/{id}");
    let (ada, carol, acme, guy) = (
        org.id("ada"),
        org.id("carol"),
        org.id("acme"),
        org.id("guy"),
    );
    let expected = vec![
        json!({
            "attributes": {"type": "Contact", "url": url("Contact", &ada)},
            "Id": ada,
            "Name": "Ada Lovelace",
            "Account": {
                "attributes": {"type": "Account", "url": url("Account", &acme)},
                "Name": "Acme",
                "Owner": {"attributes": {"type": "User", "url": url("User", &guy)}, "Name": "Guy Smiley"},
            },
        }),
        json!({
            "attributes": {"type": "Contact", "url": url("Contact", &carol)},
            "Id": carol,
            "Name": "Carol Danvers",
            "Account": null,
        }),
    ];
    assert_eq!(output.map(|output| output.records), Ok(expected));
}

#[test]
fn polymorphic_parents_render_as_their_actual_type() {
    let org = org();
    let output = query(
        &org,
        "SELECT Subject, Who.Name, Who.Title FROM Task ORDER BY Subject",
    )
    .map_err(|error| error.to_string());
    let who_types: Result<Vec<Value>, String> = output.map(|output| {
        output
            .records
            .iter()
            .map(|record| record["Who"]["attributes"]["type"].clone())
            .collect()
    });
    assert_eq!(who_types, Ok(vec![json!("Contact"), json!("Lead")]));
    let names = query(&org, "SELECT Who.Name FROM Task WHERE Who.Name LIKE 'Lou%'")
        .map(|output| {
            output
                .records
                .iter()
                .map(|r| r["Who"]["Name"].clone())
                .collect::<Vec<_>>()
        })
        .map_err(|error| error.to_string());
    assert_eq!(names, Ok(vec![json!("Lou Lead")]));
}

#[test]
fn count_returns_only_a_total() {
    let org = org();
    let cases: &[(&str, bool, usize)] = &[
        ("SELECT COUNT() FROM Contact", false, 3),
        ("SELECT count() FROM Contact", true, 4),
        (
            "SELECT COUNT() FROM Contact WHERE AccountId != null",
            false,
            2,
        ),
        ("SELECT COUNT() FROM Contact LIMIT 1", false, 1),
        ("SELECT COUNT() FROM Lead WHERE Name = 'nobody'", false, 0),
    ];
    for (soql, include_deleted, expected) in cases {
        let output = run(soql, &org.schema, &org.store, &options(*include_deleted))
            .map_err(|error| error.to_string());
        assert_eq!(
            output,
            Ok(QueryOutput {
                total_size: *expected,
                records: Vec::new()
            }),
            "{soql}"
        );
    }
}

#[test]
fn query_all_includes_deleted_records_and_query_does_not() {
    let org = org();
    let soql = "SELECT Name, IsDeleted FROM Contact ORDER BY Name";
    let live = run(soql, &org.schema, &org.store, &options(false)).map(|o| column(&o, "Name"));
    let all = run(soql, &org.schema, &org.store, &options(true)).map(|o| column(&o, "IsDeleted"));
    assert_eq!(
        live.map_err(|e| e.to_string()),
        Ok(vec![
            "Ada Lovelace".into(),
            "Bob O'Brien".into(),
            "Carol Danvers".into()
        ])
    );
    assert_eq!(
        all.map_err(|e| e.to_string()),
        Ok(vec![
            "false".into(),
            "false".into(),
            "false".into(),
            "true".into()
        ])
    );
}

#[test]
fn stand_alone_conditions_parse_and_match() {
    let org = org();
    let Some(contact) = org.schema.object("Contact") else {
        panic!("no Contact")
    };
    let condition = parse_condition(
        "Account.Name = 'Acme' AND Email != null",
        contact,
        &org.schema,
    )
    .map_err(|error| error.to_string());
    let Ok(condition) = condition else {
        panic!("{condition:?}")
    };
    let matching: Vec<&str> = org
        .store
        .records_of("Contact")
        .filter(|record| matches(&condition, record, &org.schema, &org.store))
        .map(|record| record.id.as_str())
        .collect();
    assert_eq!(matching, vec![org.id("ada").as_str()]);

    let error = parse_condition("Bacon = 1", contact, &org.schema).err();
    assert_eq!(error.as_ref().map(|e| e.error_code), Some("INVALID_FIELD"));
    let message = error.map(|e| e.message).unwrap_or_default();
    assert!(
        message.starts_with("\nBacon = 1\n^\nERROR at Row:1:Column:1\nNo such column"),
        "{message:?}"
    );
    let error = parse_condition("Name = 'a' LIMIT 1", contact, &org.schema).err();
    assert_eq!(error.map(|e| e.error_code), Some("MALFORMED_QUERY"));
}

#[test]
fn resolve_field_reports_plain_invalid_field() {
    let org = org();
    let Some(contact) = org.schema.object("Contact") else {
        panic!("no Contact")
    };
    let resolved = resolve_field("account.NAME", contact, &org.schema).map(|path| path.canonical());
    assert_eq!(
        resolved.map_err(|e| e.to_string()),
        Ok("Account.Name".to_string())
    );
    let error = resolve_field("Bacon", contact, &org.schema).err();
    assert_eq!(error.as_ref().map(|e| e.error_code), Some("INVALID_FIELD"));
    assert!(error.is_some_and(|e| {
        e.message
            .starts_with("No such column 'Bacon' on entity 'Contact'")
    }));
}

fn case_url(org: &Org, key: &str) -> String {
    format!("/services/data/v62.0/sobjects/Case/{}", org.id(key))
}

/// A parent-to-child subquery answers a nested query result per parent, at its place in the
/// select list, with its own WHERE, ORDER BY and LIMIT; a parent without children gets null.
#[test]
fn child_subqueries_nest_query_results_in_select_list_order() -> Result<(), RestError> {
    let org = org();
    let output = query(
        &org,
        "SELECT FirstName, (SELECT Subject FROM Cases ORDER BY Subject), Email FROM Contact ORDER BY FirstName",
    )?;
    assert_eq!(column(&output, "FirstName"), ["Ada", "Bob", "Carol"]);
    let ada = &output.records[0];
    let keys: Vec<&str> = ada
        .as_object()
        .map(|fields| fields.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert_eq!(keys, ["attributes", "FirstName", "Cases", "Email"]);
    assert_eq!(
        ada["Cases"],
        json!({"totalSize": 2, "done": true, "records": [
            {"attributes": {"type": "Case", "url": case_url(&org, "login")}, "Subject": "Login trouble"},
            {"attributes": {"type": "Case", "url": case_url(&org, "jam")}, "Subject": "Printer jam"},
        ]})
    );
    assert_eq!(output.records[1]["Cases"]["totalSize"], json!(1));
    assert_eq!(output.records[2]["Cases"], Value::Null);

    let output = query(
        &org,
        "SELECT Name, (SELECT Subject, Contact.FirstName FROM Cases WHERE Status = 'New' LIMIT 1) FROM Account ORDER BY Name",
    )?;
    assert_eq!(column(&output, "Name"), ["Acme", "Globex", "Initech"]);
    assert_eq!(
        output.records[0]["Cases"]["records"][0]["Subject"],
        json!("Printer jam")
    );
    assert_eq!(
        output.records[0]["Cases"]["records"][0]["Contact"]["FirstName"],
        json!("Ada")
    );
    assert_eq!(output.records[0]["Cases"]["totalSize"], json!(1));
    assert_eq!(output.records[2]["Cases"], Value::Null);
    Ok(())
}

/// Aggregates with GROUP BY answer one AggregateResult per group: grouped fields under their
/// field name, unaliased aggregates as expr0, expr1, … and counts as integers.
#[test]
fn aggregates_answer_aggregate_results() -> Result<(), RestError> {
    let org = org();
    let output = query(
        &org,
        "SELECT AccountId, COUNT(Id) FROM Case GROUP BY AccountId ORDER BY COUNT(Id) DESC",
    )?;
    assert_eq!(output.total_size, 2);
    assert_eq!(
        output.records,
        [
            json!({"attributes": {"type": "AggregateResult"}, "AccountId": org.id("acme"), "expr0": 2}),
            json!({"attributes": {"type": "AggregateResult"}, "AccountId": org.id("globex"), "expr0": 1}),
        ]
    );

    let output = query(
        &org,
        "SELECT Status, COUNT(Id) total, COUNT_DISTINCT(ContactId) FROM Case GROUP BY Status HAVING COUNT(Id) > 1",
    )?;
    assert_eq!(
        output.records,
        [
            json!({"attributes": {"type": "AggregateResult"}, "Status": "New", "total": 2, "expr0": 2})
        ]
    );

    let output = query(
        &org,
        "SELECT SUM(NumberOfEmployees), AVG(NumberOfEmployees), MIN(Name), MAX(Name), COUNT(Id), COUNT(NumberOfEmployees) FROM Account",
    )?;
    assert_eq!(
        output.records,
        [json!({"attributes": {"type": "AggregateResult"},
                "expr0": 60.0, "expr1": 30.0, "expr2": "Acme", "expr3": "Initech",
                "expr4": 3, "expr5": 2})]
    );

    // Without GROUP BY there is one row even when nothing matches.
    let output = query(
        &org,
        "SELECT COUNT(Id), SUM(NumberOfEmployees) FROM Account WHERE Name = 'Nobody'",
    )?;
    assert_eq!(
        output.records,
        [json!({"attributes": {"type": "AggregateResult"}, "expr0": 0, "expr1": null})]
    );

    // A parent field groups under its own name; ORDER BY, HAVING on a group, LIMIT.
    let output = query(
        &org,
        "SELECT Account.Name, MAX(Subject) latest FROM Case GROUP BY Account.Name HAVING Account.Name != 'Initech' ORDER BY Account.Name DESC LIMIT 1",
    )?;
    assert_eq!(
        output.records,
        [
            json!({"attributes": {"type": "AggregateResult"}, "Name": "Globex", "latest": "Invoice query"})
        ]
    );

    // GROUP BY alone, and a null group of its own.
    let output = query(
        &org,
        "SELECT AccountId FROM Contact GROUP BY AccountId ORDER BY AccountId NULLS FIRST",
    )?;
    assert_eq!(output.total_size, 3);
    assert_eq!(output.records[0]["AccountId"], Value::Null);
    Ok(())
}
