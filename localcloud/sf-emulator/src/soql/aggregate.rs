//! Aggregate queries: `COUNT(field)`, `COUNT_DISTINCT`, `SUM`, `AVG`, `MIN` and `MAX`, with
//! `GROUP BY` and `HAVING`, answered as `AggregateResult` records (see
//! `docs/salesforce-api.md` §3.2 for the shapes).
//!
//! A group's values sit in slots: first the GROUP BY fields, then each aggregate the query
//! computes (from the select list, HAVING and ORDER BY, each once). HAVING and ORDER BY read
//! the slots; the select list picks which slots to show and under which key.

use std::cmp::Ordering;

use serde_json::{Map, Value, json};

use super::condition::{self, Condition, Source, Subject};
use super::lexer::{Parser, Token, is_name};
use super::path::{self, FieldPath, resolve_at};
use super::{Item, parse_direction};
use crate::error::RestError;
use crate::schema::{FieldType, ObjectDef, Schema};
use crate::store::{Record, Store};

/// An aggregate function of SOQL (`COUNT()` without a field is the separate count query).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Function {
    Count,
    CountDistinct,
    Sum,
    Avg,
    Min,
    Max,
}

impl Function {
    /// The function a select-list word names, ignoring case.
    pub fn named(word: &str) -> Option<Self> {
        Some(match word.to_ascii_uppercase().as_str() {
            "COUNT" => Self::Count,
            "COUNT_DISTINCT" => Self::CountDistinct,
            "SUM" => Self::Sum,
            "AVG" => Self::Avg,
            "MIN" => Self::Min,
            "MAX" => Self::Max,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Count => "COUNT",
            Self::CountDistinct => "COUNT_DISTINCT",
            Self::Sum => "SUM",
            Self::Avg => "AVG",
            Self::Min => "MIN",
            Self::Max => "MAX",
        }
    }

    /// Whether Salesforce aggregates a field of this type with this function: sums and
    /// averages take numbers; nothing aggregates a checkbox or a long text area.
    fn accepts(self, field_type: FieldType) -> bool {
        match self {
            Self::Sum | Self::Avg => matches!(
                field_type,
                FieldType::Double | FieldType::Currency | FieldType::Int
            ),
            Self::Count | Self::CountDistinct | Self::Min | Self::Max => field_type.aggregatable(),
        }
    }

    /// The type of the function's value, for HAVING literals and ordering.
    fn result_type(self, field_type: FieldType) -> FieldType {
        match self {
            Self::Count | Self::CountDistinct => FieldType::Int,
            Self::Sum | Self::Avg => FieldType::Double,
            Self::Min | Self::Max => field_type,
        }
    }
}

/// Resolves the GROUP BY fields; each must be of a type Salesforce groups.
pub(crate) fn group_paths(
    parser: &Parser,
    tokens: &[Token],
    object: &ObjectDef,
    schema: &Schema,
) -> Result<Vec<FieldPath>, RestError> {
    tokens
        .iter()
        .map(|token| {
            let path = resolve_at(parser, token, object, schema)?;
            if path.field_type.groupable() {
                Ok(path)
            } else {
                Err(parser.error_at(
                    token.offset,
                    "MALFORMED_QUERY",
                    &format!("field '{}' can not be grouped in a query call", path.field),
                ))
            }
        })
        .collect()
}

/// The plan of an aggregate query from its select list, then its HAVING and ORDER BY clauses
/// (read here, at the parser's position). Every plain field must be grouped; an aggregate
/// without an alias is shown as `expr0`, `expr1`, … in select-list order.
pub(crate) fn plan(
    parser: &mut Parser,
    items: &[Item],
    group_by: Vec<FieldPath>,
    object: &ObjectDef,
    schema: &Schema,
) -> Result<Plan, RestError> {
    let mut plan = Plan::new(group_by);
    let mut unnamed = 0;
    for item in items {
        let (slot, key, alias) = match item {
            Item::Field { token, alias } => {
                let path = resolve_at(parser, token, object, schema)?;
                let slot = plan.group_slot(&path).ok_or_else(|| {
                    parser.error_at(
                        token.offset,
                        "MALFORMED_QUERY",
                        &format!("Field must be grouped or aggregated: {}", path.field),
                    )
                })?;
                (slot, path.field.to_string(), alias)
            }
            Item::Aggregate {
                function,
                argument,
                alias,
            } => {
                let path = resolve_at(parser, argument, object, schema)?;
                let slot = plan.aggregate_slot(parser, *function, argument, path)?;
                let key = format!("expr{unnamed}");
                if alias.is_none() {
                    unnamed += 1;
                }
                (slot, key, alias)
            }
            Item::Subquery { open, .. } => {
                return Err(parser.error_at(
                    open.offset,
                    "MALFORMED_QUERY",
                    "Aggregate query does not support subqueries",
                ));
            }
        };
        let key = alias.as_ref().map_or(key, |alias| alias.text.clone());
        if plan
            .columns
            .iter()
            .any(|column| column.key.eq_ignore_ascii_case(&key))
        {
            return Err(match alias {
                Some(alias) => parser.error_at(
                    alias.offset,
                    "MALFORMED_QUERY",
                    &format!("duplicate alias: {key}"),
                ),
                // As for plain queries: the same field selected twice.
                None => RestError::malformed_query(format!("duplicate field selected: {key}")),
            });
        }
        plan.columns.push(Column { key, slot });
    }
    if parser.eat_keyword("HAVING") {
        let mut resolve = |parser: &mut Parser| {
            let (slot, typed) = read_slot(parser, &mut plan, object, schema, "Field")?;
            Ok(Subject {
                typed,
                field_type: plan.slot_type(slot),
                source: Source::Slot(slot),
            })
        };
        let having = condition::parse_with(parser, &mut resolve)?;
        plan.set_having(having);
    }
    if parser.eat_keyword("ORDER") {
        parser.expect_keyword("BY")?;
        loop {
            let (slot, _) = read_slot(parser, &mut plan, object, schema, "Ordered field")?;
            let (descending, nulls_first) = parse_direction(parser)?;
            plan.order_by(slot, descending, nulls_first);
            if !parser.eat_symbol(",") {
                break;
            }
        }
    }
    Ok(plan)
}

/// Reads an aggregate function or a grouped field (HAVING, ORDER BY) and returns its slot and
/// its text as typed.
fn read_slot(
    parser: &mut Parser,
    plan: &mut Plan,
    object: &ObjectDef,
    schema: &Schema,
    what: &str,
) -> Result<(usize, String), RestError> {
    let token = parser.advance();
    if !is_name(&token) {
        return Err(parser.unexpected_token(&token));
    }
    if let Some(function) = Function::named(&token.text).filter(|_| parser.peek().is_symbol("(")) {
        parser.advance();
        let argument = parser.advance();
        if !is_name(&argument) {
            return Err(parser.unexpected_token(&argument));
        }
        parser.expect_symbol(")")?;
        let path = resolve_at(parser, &argument, object, schema)?;
        let typed = format!("{}({})", token.text, argument.text);
        return Ok((
            plan.aggregate_slot(parser, function, &argument, path)?,
            typed,
        ));
    }
    let path = resolve_at(parser, &token, object, schema)?;
    let slot = plan.group_slot(&path).ok_or_else(|| {
        parser.error_at(
            token.offset,
            "MALFORMED_QUERY",
            &format!("{what} must be grouped or aggregated: {}", path.field),
        )
    })?;
    Ok((slot, path.typed))
}

#[derive(Debug, Clone, PartialEq)]
struct Aggregate {
    function: Function,
    path: FieldPath,
}

/// One key of an `AggregateResult` record and the slot it shows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Column {
    pub key: String,
    pub slot: usize,
}

/// One ORDER BY item of an aggregate query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SlotOrder {
    slot: usize,
    field_type: FieldType,
    descending: bool,
    nulls_first: bool,
}

/// How an aggregate query groups, filters, orders and shows its groups.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Plan {
    group_by: Vec<FieldPath>,
    aggregates: Vec<Aggregate>,
    pub columns: Vec<Column>,
    having: Option<Condition>,
    order: Vec<SlotOrder>,
}

impl Plan {
    pub fn new(group_by: Vec<FieldPath>) -> Self {
        Self {
            group_by,
            ..Self::default()
        }
    }

    /// The slot of a GROUP BY field, if `path` is one.
    pub fn group_slot(&self, path: &FieldPath) -> Option<usize> {
        let canonical = path.canonical().to_ascii_lowercase();
        self.group_by
            .iter()
            .position(|group| group.canonical().to_ascii_lowercase() == canonical)
    }

    /// The slot of an aggregate, added the first time it is named; the function must accept
    /// the field's type.
    pub fn aggregate_slot(
        &mut self,
        parser: &Parser,
        function: Function,
        argument: &Token,
        path: FieldPath,
    ) -> Result<usize, RestError> {
        if !function.accepts(path.field_type) {
            return Err(parser.error_at(
                argument.offset,
                "MALFORMED_QUERY",
                &format!(
                    "field {} does not support aggregate operator {}",
                    path.typed,
                    function.name()
                ),
            ));
        }
        let canonical = path.canonical();
        let index = match self.aggregates.iter().position(|aggregate| {
            aggregate.function == function && aggregate.path.canonical() == canonical
        }) {
            Some(index) => index,
            None => {
                self.aggregates.push(Aggregate { function, path });
                self.aggregates.len() - 1
            }
        };
        Ok(self.group_by.len() + index)
    }

    /// The type of a slot's values.
    pub fn slot_type(&self, slot: usize) -> FieldType {
        match slot.checked_sub(self.group_by.len()) {
            None => self
                .group_by
                .get(slot)
                .map_or(FieldType::String, |path| path.field_type),
            Some(index) => self
                .aggregates
                .get(index)
                .map_or(FieldType::Double, |aggregate| {
                    aggregate.function.result_type(aggregate.path.field_type)
                }),
        }
    }

    pub fn set_having(&mut self, having: Condition) {
        self.having = Some(having);
    }

    pub fn order_by(&mut self, slot: usize, descending: bool, nulls_first: bool) {
        self.order.push(SlotOrder {
            slot,
            field_type: self.slot_type(slot),
            descending,
            nulls_first,
        });
    }

    /// The groups of `rows` as `AggregateResult` records: without GROUP BY one group of every
    /// row (even none), else one per distinct combination of the grouped values (text
    /// compared without case, null a value of its own), in the order rows first show them.
    pub fn run(&self, rows: &[&Record], schema: &Schema, store: &Store) -> Vec<Value> {
        let mut groups: Vec<(Vec<Value>, Vec<&Record>)> = Vec::new();
        if self.group_by.is_empty() {
            groups.push((Vec::new(), rows.to_vec()));
        } else {
            for record in rows {
                let key: Vec<Value> = self
                    .group_by
                    .iter()
                    .map(|path| {
                        let value = path::value(path, record, schema, store);
                        if condition::is_blank(value) {
                            Value::Null
                        } else {
                            value.clone()
                        }
                    })
                    .collect();
                match groups
                    .iter_mut()
                    .find(|(existing, _)| same_group(existing, &key))
                {
                    Some((_, members)) => members.push(record),
                    None => groups.push((key, vec![record])),
                }
            }
        }
        let mut results: Vec<Vec<Value>> = groups
            .into_iter()
            .map(|(mut values, members)| {
                values.extend(
                    self.aggregates
                        .iter()
                        .map(|aggregate| compute(aggregate, &members, schema, store)),
                );
                values
            })
            .filter(|values| {
                self.having
                    .as_ref()
                    .is_none_or(|having| condition::evaluate_group(having, values))
            })
            .collect();
        if !self.order.is_empty() {
            results.sort_by(|left, right| {
                self.order
                    .iter()
                    .map(|item| {
                        let a = left.get(item.slot).unwrap_or(&Value::Null);
                        let b = right.get(item.slot).unwrap_or(&Value::Null);
                        super::compare_values(
                            a,
                            b,
                            item.field_type,
                            item.descending,
                            item.nulls_first,
                        )
                    })
                    .find(|ordering| *ordering != Ordering::Equal)
                    .unwrap_or(Ordering::Equal)
            });
        }
        results
            .into_iter()
            .map(|values| {
                let mut record = Map::new();
                record.insert("attributes".into(), json!({"type": "AggregateResult"}));
                for column in &self.columns {
                    record.insert(
                        column.key.clone(),
                        values.get(column.slot).cloned().unwrap_or(Value::Null),
                    );
                }
                Value::Object(record)
            })
            .collect()
    }
}

fn same_group(left: &[Value], right: &[Value]) -> bool {
    left.iter().zip(right).all(|(a, b)| match (a, b) {
        (Value::String(a), Value::String(b)) => a.eq_ignore_ascii_case(b),
        _ => a == b,
    })
}

/// One aggregate over a group's rows; nulls are skipped, and a function over no values is
/// `0` for the counts and `null` for the others.
fn compute(aggregate: &Aggregate, rows: &[&Record], schema: &Schema, store: &Store) -> Value {
    let values: Vec<&Value> = rows
        .iter()
        .map(|record| path::value(&aggregate.path, record, schema, store))
        .filter(|value| !condition::is_blank(value))
        .collect();
    let numbers = || values.iter().filter_map(|value| value.as_f64());
    match aggregate.function {
        Function::Count => json!(values.len()),
        Function::CountDistinct => {
            let mut distinct: Vec<String> = values
                .iter()
                .map(|value| match value {
                    Value::String(text) => text.to_lowercase(),
                    other => other.to_string(),
                })
                .collect();
            distinct.sort();
            distinct.dedup();
            json!(distinct.len())
        }
        Function::Sum if values.is_empty() => Value::Null,
        Function::Sum => json!(numbers().sum::<f64>()),
        Function::Avg => {
            let count = numbers().count();
            if count == 0 {
                Value::Null
            } else {
                json!(numbers().sum::<f64>() / count as f64)
            }
        }
        Function::Min | Function::Max => {
            let field_type = aggregate.path.field_type;
            let pick = values.into_iter().reduce(|best, value| {
                let ordering = super::compare_present(value, best, field_type);
                let better = if aggregate.function == Function::Min {
                    ordering == Ordering::Less
                } else {
                    ordering == Ordering::Greater
                };
                if better { value } else { best }
            });
            pick.cloned().unwrap_or(Value::Null)
        }
    }
}
