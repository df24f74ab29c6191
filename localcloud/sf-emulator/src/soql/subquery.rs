//! Parent-to-child subqueries in a select list: `(SELECT fields FROM <child relationship>
//! [WHERE …] [ORDER BY …] [LIMIT n])`. Each parent record gets the children as a nested query
//! result (`{"totalSize", "done", "records"}`), or `null` when it has none, under the
//! relationship's name, at the place the subquery has in the select list.

use serde_json::{Map, Value, json};

use super::condition::{self, Condition};
use super::lexer::{Parser, TokenKind, is_name};
use super::path::{FieldPath, Selection, render_record};
use super::{
    OrderItem, QueryOptions, parse_count, parse_order_by, resolve_field_list, sort_records,
};
use crate::error::RestError;
use crate::schema::{ObjectDef, Schema};
use crate::store::{Record, Store};

/// A parsed subquery.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Subquery {
    /// The relationship's canonical name: the key of the nested result (`Cases`).
    relationship: &'static str,
    child: &'static str,
    /// The child's reference field holding the parent's id (`ContactId`).
    reference_field: &'static str,
    selection: Selection,
    condition: Option<Condition>,
    order: Vec<OrderItem>,
    limit: Option<usize>,
}

/// A subquery and how many of the record's keys (after `attributes`) come before it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Placed {
    after_keys: usize,
    subquery: Subquery,
}

/// Moves the parser past a subquery whose `(` it has just read, to just after its `)`; the
/// subquery is parsed once the outer object is known.
pub(crate) fn skip(parser: &mut Parser) -> Result<(), RestError> {
    let mut depth = 1;
    while depth > 0 {
        let token = parser.advance();
        match &token.kind {
            TokenKind::End => return Err(parser.unexpected_token(&token)),
            TokenKind::Symbol if token.text == "(" => depth += 1,
            TokenKind::Symbol if token.text == ")" => depth -= 1,
            _ => {}
        }
    }
    Ok(())
}

/// Parses a subquery of `parent` from just after its `(` through its `)`.
pub(crate) fn parse(
    parser: &mut Parser,
    parent: &ObjectDef,
    schema: &Schema,
) -> Result<Subquery, RestError> {
    parser.expect_keyword("SELECT")?;
    let mut field_tokens = Vec::new();
    loop {
        let token = parser.advance();
        if token.is_symbol("(") {
            // Salesforce nests parent-to-child subqueries one level deep only.
            return Err(parser.error_at(
                token.offset,
                "MALFORMED_QUERY",
                "Nesting of subqueries is not supported",
            ));
        }
        if !is_name(&token) {
            return Err(parser.unexpected_token(&token));
        }
        field_tokens.push(token);
        if !parser.eat_symbol(",") {
            break;
        }
    }
    parser.expect_keyword("FROM")?;
    let name = parser.advance();
    if !is_name(&name) {
        return Err(parser.unexpected_token(&name));
    }
    let relationship = schema.child_relationship(parent, &name.text).ok_or_else(|| {
        parser.error_at(
            name.offset,
            "INVALID_TYPE",
            &format!(
                "Didn't understand relationship '{}' in FROM part of query call. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names.",
                name.text
            ),
        )
    })?;
    let child = relationship.child;
    let paths = resolve_field_list(parser, &field_tokens, child, schema)?;
    let condition = if parser.eat_keyword("WHERE") {
        Some(condition::parse(parser, child, schema)?)
    } else {
        None
    };
    let order = parse_order_by(parser, child, schema)?;
    let limit = if parser.eat_keyword("LIMIT") {
        Some(parse_count(parser)?)
    } else {
        None
    };
    if !parser.eat_symbol(")") {
        return Err(parser.unexpected());
    }
    Ok(Subquery {
        relationship: relationship.name,
        child: child.name,
        reference_field: relationship.field,
        selection: Selection::new(&paths),
        condition,
        order,
        limit,
    })
}

/// Places each subquery after the distinct top-level keys (fields, or parent relationships)
/// that the `fields_before` fields before it make; a relationship selected twice is refused.
pub(crate) fn place(
    subqueries: Vec<(usize, Subquery)>,
    paths: &[FieldPath],
) -> Result<Vec<Placed>, RestError> {
    let top = |path: &FieldPath| {
        path.canonical()
            .split('.')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    let mut placed: Vec<Placed> = Vec::new();
    for (fields_before, subquery) in subqueries {
        if placed.iter().any(|other| {
            other
                .subquery
                .relationship
                .eq_ignore_ascii_case(subquery.relationship)
        }) {
            return Err(RestError::malformed_query(format!(
                "duplicate field selected: {}",
                subquery.relationship
            )));
        }
        let mut keys: Vec<String> = paths.iter().take(fields_before).map(top).collect();
        keys.sort();
        keys.dedup();
        placed.push(Placed {
            after_keys: keys.len(),
            subquery,
        });
    }
    Ok(placed)
}

/// Adds each subquery's children of `parent` to its rendered record.
pub(crate) fn add_children(
    rendered: Value,
    parent: &Record,
    subqueries: &[Placed],
    schema: &Schema,
    store: &Store,
    options: &QueryOptions,
) -> Value {
    if subqueries.is_empty() {
        return rendered;
    }
    let Value::Object(fields) = rendered else {
        return rendered;
    };
    let mut record = Map::new();
    let mut pending = subqueries.iter().peekable();
    // `attributes` is key 0; a subquery placed after n keys goes after key n.
    for (index, (key, value)) in fields.into_iter().enumerate() {
        record.insert(key, value);
        while let Some(placed) = pending.next_if(|placed| placed.after_keys == index) {
            record.insert(
                placed.subquery.relationship.to_string(),
                children(&placed.subquery, parent, schema, store, options),
            );
        }
    }
    for placed in pending {
        record.insert(
            placed.subquery.relationship.to_string(),
            children(&placed.subquery, parent, schema, store, options),
        );
    }
    Value::Object(record)
}

/// The nested query result of one parent's children, or `null` when there are none.
fn children(
    subquery: &Subquery,
    parent: &Record,
    schema: &Schema,
    store: &Store,
    options: &QueryOptions,
) -> Value {
    let mut rows: Vec<&Record> = store
        .records_of(subquery.child)
        .filter(|record| options.include_deleted || !record.deleted)
        .filter(|record| record.get(subquery.reference_field).as_str() == Some(parent.id.as_str()))
        .filter(|record| {
            subquery
                .condition
                .as_ref()
                .is_none_or(|condition| condition::evaluate(condition, record, schema, store))
        })
        .collect();
    sort_records(&mut rows, &subquery.order, schema, store);
    let records: Vec<Value> = rows
        .into_iter()
        .take(subquery.limit.unwrap_or(usize::MAX))
        .map(|record| {
            render_record(
                record,
                &subquery.selection,
                schema,
                store,
                &options.api_version,
            )
        })
        .collect();
    if records.is_empty() {
        return Value::Null;
    }
    json!({"totalSize": records.len(), "done": true, "records": records})
}
