//! SOQL: parsing and evaluation of the subset the emulator serves.
//!
//! Supported: `SELECT <fields | COUNT()> FROM <object> [WHERE …] [ORDER BY …] [LIMIT n]
//! [OFFSET n]` with parent relationship paths anywhere a field may appear. Not supported:
//! child subqueries, aggregate functions other than `COUNT()`, GROUP BY, TYPEOF, bind
//! variables, `WITH`/`FOR` clauses, date functions, `INCLUDES`/`EXCLUDES`.
//!
//! Error messages follow Salesforce's shapes. Syntax errors are `MALFORMED_QUERY` with the
//! caret form and a quoted token (`unexpected token: 'FROM'`); a statement whose first word
//! is not SELECT gets the short form Salesforce returns for `q=invalid`
//! (`unexpected token: 'invalid'`). Salesforce also answers `unexpected token: SELEKT`
//! unquoted in one recording; the quoted form is used everywhere for consistency.

mod condition;
#[cfg(test)]
pub(crate) mod fixture;
mod lexer;
mod path;

use std::cmp::Ordering;
use std::collections::HashSet;

use serde_json::Value;

pub use condition::Condition;
pub(crate) use lexer::{
    Parser, Token, TokenKind, Wildcard, caret_message, is_name, wildcard_match,
};
use path::resolve_at;
pub use path::{FieldPath, Selection, render_record};

use crate::error::RestError;
use crate::schema::{FieldType, ObjectDef, Schema};
use crate::store::{self, Record, Store};

/// How a query runs: `queryAll` includes deleted records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryOptions {
    pub include_deleted: bool,
    /// The API version of the request URL, without the leading `v` (`"62.0"`).
    pub api_version: String,
}

/// A query's rows. For `COUNT()` `records` is empty and `total_size` is the count.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryOutput {
    pub total_size: usize,
    pub records: Vec<Value>,
}

/// The largest OFFSET Salesforce accepts.
const MAX_OFFSET: usize = 2000;

/// Parses and runs a SOQL statement against the store.
pub fn run(
    soql: &str,
    schema: &Schema,
    store: &Store,
    options: &QueryOptions,
) -> Result<QueryOutput, RestError> {
    let statement = parse_statement(soql, schema)?;
    let mut rows: Vec<&Record> = store
        .records_of(statement.object.name)
        .filter(|record| options.include_deleted || !record.deleted)
        .filter(|record| {
            statement
                .condition
                .as_ref()
                .is_none_or(|condition| matches(condition, record, schema, store))
        })
        .collect();
    sort_records(&mut rows, &statement.order, schema, store);
    let rows = rows
        .into_iter()
        .skip(statement.offset)
        .take(statement.limit.unwrap_or(usize::MAX));
    match &statement.fields {
        SelectList::Count => Ok(QueryOutput {
            total_size: rows.count(),
            records: Vec::new(),
        }),
        SelectList::Fields(selection) => {
            let records: Vec<Value> = rows
                .map(|record| render_record(record, selection, schema, store, &options.api_version))
                .collect();
            Ok(QueryOutput {
                total_size: records.len(),
                records,
            })
        }
    }
}

/// Parses a stand-alone WHERE expression (SOSL `RETURNING … WHERE`, parameterized search
/// `where`). Caret positions in errors are relative to `text`.
pub fn parse_condition(
    text: &str,
    object: &ObjectDef,
    schema: &Schema,
) -> Result<Condition, RestError> {
    let mut parser = Parser::new(text, 0)?;
    let parsed = condition::parse(&mut parser, object, schema)?;
    if !parser.at_end() {
        return Err(parser.unexpected());
    }
    Ok(parsed)
}

/// Parses a condition inside a larger statement (SOSL's `RETURNING Object(… WHERE …)`).
pub(crate) fn parse_condition_at(
    parser: &mut Parser,
    object: &ObjectDef,
    schema: &Schema,
) -> Result<Condition, RestError> {
    condition::parse(parser, object, schema)
}

/// Whether a record satisfies a parsed condition.
pub fn matches(condition: &Condition, record: &Record, schema: &Schema, store: &Store) -> bool {
    condition::evaluate(condition, record, schema, store)
}

/// Resolves one field path outside a statement (parameterized search `fields`); the error
/// is INVALID_FIELD without the caret form.
pub fn resolve_field(
    text: &str,
    object: &ObjectDef,
    schema: &Schema,
) -> Result<FieldPath, RestError> {
    path::resolve(text.trim(), object, schema)
        .map_err(|problem| RestError::bad_request("INVALID_FIELD", problem.message()))
}

/// The `INVALID_TYPE` message for an unknown object name.
pub fn unsupported_type_message(name: &str) -> String {
    format!(
        "sObject type '{name}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names."
    )
}

enum SelectList {
    Count,
    Fields(Selection),
}

struct Statement<'s> {
    object: &'s ObjectDef,
    fields: SelectList,
    condition: Option<Condition>,
    order: Vec<OrderItem>,
    limit: Option<usize>,
    offset: usize,
}

/// One ORDER BY item.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OrderItem {
    path: FieldPath,
    descending: bool,
    nulls_first: bool,
}

fn parse_statement<'s>(soql: &str, schema: &'s Schema) -> Result<Statement<'s>, RestError> {
    if soql.trim().is_empty() {
        return Err(RestError::malformed_query(
            "SOQL statements cannot be empty or null",
        ));
    }
    let mut parser = Parser::new(soql, 0)?;
    if !parser.peek().is_keyword("SELECT") {
        return Err(RestError::malformed_query(format!(
            "unexpected token: '{}'",
            parser.peek().display()
        )));
    }
    parser.advance();

    // Field names are checked once the object is known, as Salesforce reports an unknown
    // object before an unknown field.
    let mut count = false;
    let mut field_tokens = Vec::new();
    loop {
        let token = parser.peek().clone();
        if token.is_keyword("COUNT")
            && parser.peek_at(1).is_symbol("(")
            && field_tokens.is_empty()
            && !count
        {
            parser.advance();
            parser.advance();
            parser.expect_symbol(")")?;
            count = true;
        } else if is_name(&token) && !count {
            parser.advance();
            field_tokens.push(token);
        } else {
            return Err(parser.unexpected());
        }
        if !parser.eat_symbol(",") {
            break;
        }
    }
    parser.expect_keyword("FROM")?;
    let object = parse_object(&mut parser, schema)?;
    let fields = if count {
        SelectList::Count
    } else {
        let paths = resolve_field_list(&parser, &field_tokens, object, schema)?;
        SelectList::Fields(Selection::new(&paths))
    };
    let condition = if parser.eat_keyword("WHERE") {
        Some(condition::parse(&mut parser, object, schema)?)
    } else {
        None
    };
    let order = parse_order_by(&mut parser, object, schema)?;
    let limit = if parser.eat_keyword("LIMIT") {
        Some(parse_count(&mut parser)?)
    } else {
        None
    };
    let offset = if parser.eat_keyword("OFFSET") {
        let token = parser.peek().clone();
        let offset = parse_count(&mut parser)?;
        if offset > MAX_OFFSET {
            return Err(parser.error_at(
                token.offset,
                "NUMBER_OUTSIDE_VALID_RANGE",
                &format!("Maximum SOQL offset allowed is {MAX_OFFSET}"),
            ));
        }
        offset
    } else {
        0
    };
    if !parser.at_end() {
        return Err(parser.unexpected());
    }
    Ok(Statement {
        object,
        fields,
        condition,
        order,
        limit,
        offset,
    })
}

/// Reads an object name and looks it up; an unknown one is INVALID_TYPE in caret form.
pub(crate) fn parse_object<'s>(
    parser: &mut Parser,
    schema: &'s Schema,
) -> Result<&'s ObjectDef, RestError> {
    let token = parser.advance();
    if !is_name(&token) {
        return Err(parser.unexpected_token(&token));
    }
    schema.object(&token.text).ok_or_else(|| {
        parser.error_at(
            token.offset,
            "INVALID_TYPE",
            &unsupported_type_message(&token.text),
        )
    })
}

/// Resolves the tokens of a field list; a field named twice is MALFORMED_QUERY.
pub(crate) fn resolve_field_list(
    parser: &Parser,
    tokens: &[Token],
    object: &ObjectDef,
    schema: &Schema,
) -> Result<Vec<FieldPath>, RestError> {
    let mut seen = HashSet::new();
    let mut paths = Vec::new();
    for token in tokens {
        let path = resolve_at(parser, token, object, schema)?;
        if !seen.insert(path.canonical().to_ascii_lowercase()) {
            return Err(RestError::malformed_query(format!(
                "duplicate field selected: {}",
                token.text
            )));
        }
        paths.push(path);
    }
    Ok(paths)
}

/// Reads `a, b.c, …` up to the first token that is not a name followed by a comma.
pub(crate) fn parse_field_tokens(parser: &mut Parser) -> Result<Vec<Token>, RestError> {
    let mut tokens = Vec::new();
    loop {
        let token = parser.advance();
        if !is_name(&token) {
            return Err(parser.unexpected_token(&token));
        }
        tokens.push(token);
        if !parser.eat_symbol(",") {
            return Ok(tokens);
        }
    }
}

/// `ORDER BY path [ASC|DESC] [NULLS FIRST|LAST], …` if present; nothing otherwise.
pub(crate) fn parse_order_by(
    parser: &mut Parser,
    object: &ObjectDef,
    schema: &Schema,
) -> Result<Vec<OrderItem>, RestError> {
    let mut order = Vec::new();
    if !parser.eat_keyword("ORDER") {
        return Ok(order);
    }
    parser.expect_keyword("BY")?;
    loop {
        let token = parser.advance();
        if !is_name(&token) {
            return Err(parser.unexpected_token(&token));
        }
        let path = resolve_at(parser, &token, object, schema)?;
        let descending = if parser.eat_keyword("DESC") {
            true
        } else {
            parser.eat_keyword("ASC");
            false
        };
        // Salesforce's default puts nulls first ascending and last descending.
        let mut nulls_first = !descending;
        if parser.eat_keyword("NULLS") {
            if parser.eat_keyword("FIRST") {
                nulls_first = true;
            } else {
                parser.expect_keyword("LAST")?;
                nulls_first = false;
            }
        }
        order.push(OrderItem {
            path,
            descending,
            nulls_first,
        });
        if !parser.eat_symbol(",") {
            return Ok(order);
        }
    }
}

/// A non-negative whole number (LIMIT, OFFSET).
pub(crate) fn parse_count(parser: &mut Parser) -> Result<usize, RestError> {
    let token = parser.advance();
    match token.kind {
        TokenKind::Number(number)
            if number >= 0.0 && number.fract() == 0.0 && !token.text.contains('.') =>
        {
            Ok(number as usize)
        }
        _ => Err(parser.unexpected_token(&token)),
    }
}

/// Sorts rows by ORDER BY items; a stable sort, so ties keep insertion order.
pub(crate) fn sort_records(
    rows: &mut [&Record],
    order: &[OrderItem],
    schema: &Schema,
    store: &Store,
) {
    if order.is_empty() {
        return;
    }
    rows.sort_by(|left, right| {
        order
            .iter()
            .map(|item| {
                let a = path::value(&item.path, left, schema, store);
                let b = path::value(&item.path, right, schema, store);
                compare_for_order(a, b, item)
            })
            .find(|ordering| *ordering != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
    });
}

fn compare_for_order(a: &Value, b: &Value, item: &OrderItem) -> Ordering {
    let nulls = if item.nulls_first {
        Ordering::Less
    } else {
        Ordering::Greater
    };
    match (condition::is_blank(a), condition::is_blank(b)) {
        (true, true) => Ordering::Equal,
        (true, false) => nulls,
        (false, true) => nulls.reverse(),
        (false, false) => {
            let ordering = compare_present(a, b, item.path.field_type);
            if item.descending {
                ordering.reverse()
            } else {
                ordering
            }
        }
    }
}

fn compare_present(a: &Value, b: &Value, field_type: FieldType) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::String(x), Value::String(y)) if field_type == FieldType::DateTime => {
            match (store::parse_datetime(x), store::parse_datetime(y)) {
                (Some(x), Some(y)) => x.cmp(&y),
                _ => x.cmp(y),
            }
        }
        (Value::String(x), Value::String(y)) => x.to_lowercase().cmp(&y.to_lowercase()),
        _ => a.to_string().cmp(&b.to_string()),
    }
}

#[cfg(test)]
mod tests {
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
                "unexpected token: 'SELEKT'",
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
                "unexpected token: '('",
            ),
            (
                "SELECT (SELECT Id FROM Contacts) FROM Account",
                "MALFORMED_QUERY",
                "unexpected token: '('",
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
            message.starts_with(
                "\n  Bacon__c\n  ^\nERROR at Row:2:Column:3\nNo such column 'Bacon__c'"
            ),
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
        let all =
            run(soql, &org.schema, &org.store, &options(true)).map(|o| column(&o, "IsDeleted"));
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
        let resolved =
            resolve_field("account.NAME", contact, &org.schema).map(|path| path.canonical());
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
}
