//! SOQL: parsing and evaluation of the subset the emulator serves.
//!
//! Supported: `SELECT <fields, (subqueries) | aggregates | COUNT()> FROM <object> [WHERE …]
//! [GROUP BY …] [HAVING …] [ORDER BY …] [LIMIT n] [OFFSET n]` with parent relationship paths
//! anywhere a field may appear. A subquery is `(SELECT fields FROM <child relationship> [WHERE
//! …] [ORDER BY …] [LIMIT n])` (`subquery.rs`); aggregates are `COUNT(field)`,
//! `COUNT_DISTINCT`, `SUM`, `AVG`, `MIN` and `MAX`, with aliases (`aggregate.rs`). Not
//! supported: semi-joins (`Id IN (SELECT …)`), GROUP BY ROLLUP/CUBE, TYPEOF, bind variables,
//! `WITH`/`FOR` clauses, date functions, `INCLUDES`/`EXCLUDES`.
//!
//! Error messages follow Salesforce's shapes. Syntax errors are `MALFORMED_QUERY` with the
//! caret form and a quoted token (`unexpected token: 'FROM'`); a statement whose first word
//! is not SELECT gets the short form Salesforce returns: quoted for a lone word, as recorded for
//! `q=invalid` (`unexpected token: 'invalid'`), unquoted for the first word of a statement, as
//! recorded for `SELEKT Id FROM Account` (`unexpected token: SELEKT`).

mod aggregate;
mod condition;
#[cfg(test)]
pub(crate) mod fixture;
mod lexer;
mod path;
mod subquery;

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
    if let SelectList::Aggregate(plan) = &statement.fields {
        let records: Vec<Value> = plan
            .run(&rows, schema, store)
            .into_iter()
            .skip(statement.offset)
            .take(statement.limit.unwrap_or(usize::MAX))
            .collect();
        return Ok(QueryOutput {
            total_size: records.len(),
            records,
        });
    }
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
        SelectList::Fields {
            selection,
            subqueries,
        } => {
            let records: Vec<Value> = rows
                .map(|record| {
                    let rendered =
                        render_record(record, selection, schema, store, &options.api_version);
                    subquery::add_children(rendered, record, subqueries, schema, store, options)
                })
                .collect();
            Ok(QueryOutput {
                total_size: records.len(),
                records,
            })
        }
        SelectList::Aggregate(_) => Ok(QueryOutput {
            total_size: 0,
            records: Vec::new(),
        }),
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
    Fields {
        selection: Selection,
        /// Child subqueries, each with where its result goes among the record's keys.
        subqueries: Vec<subquery::Placed>,
    },
    Aggregate(aggregate::Plan),
}

/// One select-list item as written, resolved once the object is known.
enum Item {
    Field {
        token: Token,
        alias: Option<Token>,
    },
    Aggregate {
        function: aggregate::Function,
        argument: Token,
        alias: Option<Token>,
    },
    /// `(SELECT …)`: the parser position just after the `(`.
    Subquery {
        open: Token,
        start: usize,
    },
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
        // As recorded: `q=invalid` (a lone word) is quoted, the first word of a statement
        // (`SELEKT Id FROM Account`) is not.
        let lone = soql.split_whitespace().nth(1).is_none();
        let token = parser.peek().display();
        return Err(RestError::malformed_query(if lone {
            format!("unexpected token: '{token}'")
        } else {
            format!("unexpected token: {token}")
        }));
    }
    parser.advance();

    // Field names are checked once the object is known, as Salesforce reports an unknown
    // object before an unknown field.
    let mut count = false;
    let mut items = Vec::new();
    loop {
        let token = parser.peek().clone();
        let function = aggregate::Function::named(&token.text)
            .filter(|_| is_name(&token) && parser.peek_at(1).is_symbol("("));
        if token.is_keyword("COUNT")
            && parser.peek_at(1).is_symbol("(")
            && parser.peek_at(2).is_symbol(")")
            && items.is_empty()
            && !count
        {
            parser.advance();
            parser.advance();
            parser.expect_symbol(")")?;
            count = true;
        } else if let Some(function) = function.filter(|_| !count) {
            parser.advance();
            parser.advance();
            let argument = parser.advance();
            if !is_name(&argument) {
                return Err(parser.unexpected_token(&argument));
            }
            parser.expect_symbol(")")?;
            let alias = parse_alias(&mut parser);
            items.push(Item::Aggregate {
                function,
                argument,
                alias,
            });
        } else if token.is_symbol("(") && !count {
            parser.advance();
            let start = parser.position();
            subquery::skip(&mut parser)?;
            items.push(Item::Subquery { open: token, start });
        } else if is_name(&token) && !count {
            parser.advance();
            let alias = parse_alias(&mut parser);
            items.push(Item::Field { token, alias });
        } else {
            return Err(parser.unexpected());
        }
        if !parser.eat_symbol(",") {
            break;
        }
    }
    parser.expect_keyword("FROM")?;
    let object = parse_object(&mut parser, schema)?;
    let condition = if parser.eat_keyword("WHERE") {
        Some(condition::parse(&mut parser, object, schema)?)
    } else {
        None
    };
    let group_by = if parser.eat_keyword("GROUP") {
        parser.expect_keyword("BY")?;
        let tokens = parse_field_tokens(&mut parser)?;
        Some(aggregate::group_paths(&parser, &tokens, object, schema)?)
    } else {
        None
    };
    let aggregated = group_by.is_some()
        || items
            .iter()
            .any(|item| matches!(item, Item::Aggregate { .. }));
    let (fields, order) = if count {
        if group_by.is_some() {
            // The documentation: with GROUP BY, use COUNT(fieldName) instead of COUNT().
            return Err(RestError::malformed_query(
                "COUNT() cannot be used with GROUP BY; use COUNT(fieldName)",
            ));
        }
        (
            SelectList::Count,
            parse_order_by(&mut parser, object, schema)?,
        )
    } else if aggregated {
        let plan = aggregate::plan(
            &mut parser,
            &items,
            group_by.unwrap_or_default(),
            object,
            schema,
        )?;
        (SelectList::Aggregate(plan), Vec::new())
    } else {
        if parser.peek().is_keyword("HAVING") {
            return Err(parser.unexpected());
        }
        let fields = select_fields(&mut parser, &items, object, schema)?;
        (fields, parse_order_by(&mut parser, object, schema)?)
    };
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

/// An alias after a select-list item (`COUNT(Id) total`, `Account.Name name`): a name that
/// is not the FROM keyword.
fn parse_alias(parser: &mut Parser) -> Option<Token> {
    let token = parser.peek();
    (is_name(token) && !token.is_keyword("FROM")).then(|| parser.advance())
}

/// The select list of a plain query: fields (no aliases: only aggregate queries take them) and
/// child subqueries, each placed after the keys the fields before it make.
fn select_fields(
    parser: &mut Parser,
    items: &[Item],
    object: &ObjectDef,
    schema: &Schema,
) -> Result<SelectList, RestError> {
    let mut field_tokens = Vec::new();
    let mut subqueries = Vec::new();
    for item in items {
        match item {
            Item::Field { token, alias } => {
                if let Some(alias) = alias {
                    return Err(parser.unexpected_token(alias));
                }
                field_tokens.push(token.clone());
            }
            Item::Subquery { start, .. } => {
                let resume = parser.position();
                parser.seek(*start);
                let parsed = subquery::parse(parser, object, schema);
                parser.seek(resume);
                subqueries.push((field_tokens.len(), parsed?));
            }
            Item::Aggregate { .. } => return Err(parser.unexpected()),
        }
    }
    let paths = resolve_field_list(parser, &field_tokens, object, schema)?;
    Ok(SelectList::Fields {
        subqueries: subquery::place(subqueries, &paths)?,
        selection: Selection::new(&paths),
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
        let (descending, nulls_first) = parse_direction(parser)?;
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

/// `[ASC|DESC] [NULLS FIRST|LAST]` after an ORDER BY item: whether descending, and whether
/// nulls come first (Salesforce's default: first ascending, last descending).
pub(crate) fn parse_direction(parser: &mut Parser) -> Result<(bool, bool), RestError> {
    let descending = if parser.eat_keyword("DESC") {
        true
    } else {
        parser.eat_keyword("ASC");
        false
    };
    let mut nulls_first = !descending;
    if parser.eat_keyword("NULLS") {
        if parser.eat_keyword("FIRST") {
            nulls_first = true;
        } else {
            parser.expect_keyword("LAST")?;
            nulls_first = false;
        }
    }
    Ok((descending, nulls_first))
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
    compare_values(
        a,
        b,
        item.path.field_type,
        item.descending,
        item.nulls_first,
    )
}

/// Orders two values as ORDER BY does: nulls first or last, present values by their type.
fn compare_values(
    a: &Value,
    b: &Value,
    field_type: FieldType,
    descending: bool,
    nulls_first: bool,
) -> Ordering {
    let nulls = if nulls_first {
        Ordering::Less
    } else {
        Ordering::Greater
    };
    match (condition::is_blank(a), condition::is_blank(b)) {
        (true, true) => Ordering::Equal,
        (true, false) => nulls,
        (false, true) => nulls.reverse(),
        (false, false) => {
            let ordering = compare_present(a, b, field_type);
            if descending {
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
mod tests;
