//! The SOSL statement parser: `FIND {…} [IN … FIELDS] [RETURNING …] [LIMIT n]` into a
//! search plan, with Salesforce's `MALFORMED_SEARCH` error shapes.

use super::execute::{FieldGroup, MAX_RESULTS, Plan, Target, all_searchable};
use super::term::parse_term;
use crate::error::RestError;
use crate::schema::Schema;
use crate::soql::{self, FieldPath, Parser, Selection, Token, TokenKind, caret_message, is_name};

/// SOQL errors from a RETURNING clause or a `where` keep their wording but take SOSL's code.
pub(super) fn as_search_error(mut error: RestError) -> RestError {
    if error.error_code == "MALFORMED_QUERY" {
        error.error_code = "MALFORMED_SEARCH";
    }
    error
}

fn malformed_token(statement: &str, offset: usize, token: &str) -> RestError {
    let message = caret_message(
        statement,
        offset,
        &format!("Malformed search token: {token}"),
        true,
    );
    RestError::bad_request("MALFORMED_SEARCH", message)
}

fn malformed_at(parser: &Parser, token: &Token) -> RestError {
    malformed_token(parser.statement, token.offset, token.display())
}

/// Parses a whole SOSL statement into a plan.
pub(super) fn parse_statement<'s>(sosl: &str, schema: &'s Schema) -> Result<Plan<'s>, RestError> {
    let start = sosl.len() - sosl.trim_start().len();
    if sosl.trim().is_empty() {
        return Err(RestError::bad_request(
            "MALFORMED_SEARCH",
            "No search term found. The search term must be enclosed in braces.",
        ));
    }
    let word_at = |offset: usize| -> String {
        sosl.get(offset..)
            .unwrap_or("")
            .split_whitespace()
            .next()
            .unwrap_or("<EOF>")
            .to_string()
    };
    let find_ok = sosl
        .get(start..start + 4)
        .is_some_and(|word| word.eq_ignore_ascii_case("FIND"))
        && sosl
            .get(start + 4..)
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_whitespace() || c == '{'));
    if !find_ok {
        return Err(malformed_token(sosl, start, &word_at(start)));
    }
    let after_find = start + 4;
    let brace = after_find + (sosl.len() - after_find - sosl[after_find..].trim_start().len());
    if !sosl[brace..].starts_with('{') {
        // `FIND 'Acme'` is Apex-only syntax; the REST API needs braces.
        return Err(malformed_token(sosl, brace, &word_at(brace)));
    }
    let mut close = None;
    let mut escaped = false;
    for (index, c) in sosl[brace + 1..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '}' => {
                close = Some(brace + 1 + index);
                break;
            }
            _ => {}
        }
    }
    let Some(close) = close else {
        return Err(malformed_token(sosl, sosl.len(), "<EOF>"));
    };
    let term = parse_term(&sosl[brace + 1..close])?;

    let mut parser = Parser::for_search(sosl, close + 1)?;
    let mut group = FieldGroup::All;
    if parser.eat_keyword("IN") {
        let word = parser.advance();
        let parsed = (word.kind == TokenKind::Identifier).then(|| FieldGroup::parse(&word.text));
        let Some(Some(parsed)) = parsed else {
            return Err(malformed_at(&parser, &word));
        };
        group = parsed;
        let fields = parser.advance();
        if !fields.is_keyword("FIELDS") {
            return Err(malformed_at(&parser, &fields));
        }
    }
    let mut targets = Vec::new();
    let returning = parser.eat_keyword("RETURNING");
    if returning {
        loop {
            targets.push(parse_target(&mut parser, schema)?);
            if !parser.eat_symbol(",") {
                break;
            }
        }
    } else {
        targets = all_searchable(schema);
    }
    let mut limit = MAX_RESULTS;
    if parser.eat_keyword("LIMIT") {
        limit = soql::parse_count(&mut parser)?.min(MAX_RESULTS);
    }
    if !parser.at_end() {
        return Err(malformed_at(&parser, parser.peek()));
    }
    Ok(Plan {
        term,
        group,
        targets,
        limit,
    })
}

/// `Object` or `Object(field, … [WHERE …] [ORDER BY …] [LIMIT n] [OFFSET n])`.
fn parse_target<'s>(parser: &mut Parser, schema: &'s Schema) -> Result<Target<'s>, RestError> {
    if !is_name(parser.peek()) {
        return Err(malformed_at(parser, parser.peek()));
    }
    let object = soql::parse_object(parser, schema)?;
    let mut target = Target {
        object,
        selection: Selection::new(&[FieldPath::id()]),
        condition: None,
        order: Vec::new(),
        limit: None,
        offset: 0,
    };
    if !parser.eat_symbol("(") {
        return Ok(target);
    }
    let tokens = soql::parse_field_tokens(parser)?;
    let paths = soql::resolve_field_list(parser, &tokens, object, schema)?;
    target.selection = Selection::new(&paths);
    if parser.eat_keyword("WHERE") {
        target.condition = Some(soql::parse_condition_at(parser, object, schema)?);
    }
    target.order = soql::parse_order_by(parser, object, schema)?;
    if parser.eat_keyword("LIMIT") {
        target.limit = Some(soql::parse_count(parser)?);
    }
    if parser.eat_keyword("OFFSET") {
        target.offset = soql::parse_count(parser)?;
    }
    if !parser.eat_symbol(")") {
        return Err(malformed_at(parser, parser.peek()));
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use crate::sosl::fixture::{options, org};
    use crate::sosl::{PhoneMatch, search};

    const MALFORMED_TYPE: &str = "\nFIND {name} IN ALL TYPE RETURNING Account(name)\n                  ^\nERROR at Row:1:Column:19\nMalformed search token: TYPE";

    #[test]
    fn malformed_searches_get_salesforce_error_codes_and_messages() {
        let org = org();
        let cases: &[(&str, &str, &str)] = &[
            (
                "FIND {name} IN ALL TYPE RETURNING Account(name)",
                "MALFORMED_SEARCH",
                MALFORMED_TYPE,
            ),
            (
                "FIND 'Acme'",
                "MALFORMED_SEARCH",
                "\nFIND 'Acme'\n    ^\nERROR at Row:1:Column:5\nMalformed search token: 'Acme'",
            ),
            (
                "FIND Acme",
                "MALFORMED_SEARCH",
                "Malformed search token: Acme",
            ),
            (
                "SEARCH {Acme}",
                "MALFORMED_SEARCH",
                "Column:1\nMalformed search token: SEARCH",
            ),
            (
                "FIND {Acme",
                "MALFORMED_SEARCH",
                "Malformed search token: <EOF>",
            ),
            ("", "MALFORMED_SEARCH", "No search term found"),
            (
                "FIND {a}",
                "MALFORMED_SEARCH",
                "search term must be longer than one character",
            ),
            (
                "FIND {a*}",
                "MALFORMED_SEARCH",
                "search term must be longer than one character",
            ),
            (
                "FIND {Acme} IN BOGUS FIELDS",
                "MALFORMED_SEARCH",
                "Malformed search token: BOGUS",
            ),
            (
                "FIND {Acme} RETURNING",
                "MALFORMED_SEARCH",
                "Malformed search token: <EOF>",
            ),
            (
                "FIND {Acme} RETURNING Account(Name",
                "MALFORMED_SEARCH",
                "Malformed search token: <EOF>",
            ),
            (
                "FIND {Acme} RETURNING Account(Name WHERE Name = )",
                "MALFORMED_SEARCH",
                "unexpected token: ')'",
            ),
            (
                "FIND {Acme} LIMIT x",
                "MALFORMED_SEARCH",
                "unexpected token: 'x'",
            ),
            (
                "FIND {Acme} WITH SNIPPET",
                "MALFORMED_SEARCH",
                "Malformed search token: WITH",
            ),
            (
                "FIND {(Acme}",
                "MALFORMED_SEARCH",
                "Malformed search token: (",
            ),
            (
                "FIND {Acme OR}",
                "MALFORMED_SEARCH",
                "Malformed search token: <EOF>",
            ),
            (
                "FIND {Acme} RETURNING Accountz",
                "INVALID_TYPE",
                "\nFIND {Acme} RETURNING Accountz\n                     ^\nERROR at Row:1:Column:22\nsObject type 'Accountz' is not supported.",
            ),
            (
                "FIND {Acme} RETURNING Account(Bacon__c)",
                "INVALID_FIELD",
                "Column:30\nNo such column 'Bacon__c' on entity 'Account'",
            ),
            (
                "FIND {Acme} RETURNING Account(Name WHERE Bacon = 1)",
                "INVALID_FIELD",
                "No such column 'Bacon'",
            ),
            (
                "FIND {Acme} RETURNING Account(Name, name)",
                "MALFORMED_SEARCH",
                "duplicate field selected: name",
            ),
        ];
        for (sosl, code, message) in cases {
            match search(sosl, &org.schema, &org.store, &options(PhoneMatch::Digits)) {
                Ok(records) => panic!("{sosl}: expected {code}, got {records:?}"),
                Err(error) => {
                    assert_eq!(error.error_code, *code, "{sosl}: {}", error.message);
                    assert!(
                        error.message.contains(message),
                        "{sosl}: {:?}",
                        error.message
                    );
                }
            }
        }
    }
}
