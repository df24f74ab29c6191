//! SOQL WHERE conditions: parsing against an object's fields (with Salesforce's type checks)
//! and evaluation over stored records.

use std::cmp::Ordering;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::Value;

use super::lexer::{
    Parser, Token, TokenKind, Wildcard, is_name, lowercase_pattern, wildcard_match,
};
use super::path::{self, FieldPath, resolve_at};
use crate::error::RestError;
use crate::ids;
use crate::schema::{FieldType, ObjectDef, Schema};
use crate::store::{self, Record, Store};

/// A parsed WHERE (or HAVING) expression, its field paths already resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    expression: Expression,
}

/// What a comparison's left side names: a field path (WHERE), or one of the values an
/// aggregate query computes per group (HAVING: an aggregate function or a grouped field).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Subject {
    /// As the caller typed it, for error messages.
    pub typed: String,
    pub field_type: FieldType,
    pub source: Source,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Source {
    Path(FieldPath),
    /// The group's value at this index.
    Slot(usize),
}

impl Subject {
    fn path(path: FieldPath) -> Self {
        Self {
            typed: path.typed.clone(),
            field_type: path.field_type,
            source: Source::Path(path),
        }
    }
}

/// Reads a comparison's left side at the parser's position.
pub(crate) type Resolve<'r> = dyn FnMut(&mut Parser) -> Result<Subject, RestError> + 'r;

#[derive(Debug, Clone, PartialEq)]
enum Expression {
    All(Vec<Expression>),
    Any(Vec<Expression>),
    Not(Box<Expression>),
    Compare {
        subject: Subject,
        operator: Operator,
        operand: Operand,
    },
    Like {
        subject: Subject,
        pattern: Vec<Wildcard>,
    },
    In {
        subject: Subject,
        operands: Vec<Operand>,
        negated: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

/// A literal, already checked against the field's type.
#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Null,
    Text(String),
    /// An 18-character id.
    Id(String),
    Number(f64),
    Boolean(bool),
    Date(DateLiteral),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum DateLiteral {
    Day(NaiveDate),
    Instant(DateTime<Utc>),
    Today,
    Yesterday,
    Tomorrow,
    LastNDays(i64),
    NextNDays(i64),
}

/// Parses a condition at the parser's position; stops before the first token that cannot
/// continue it (ORDER, LIMIT, `)`, the end …).
pub(crate) fn parse(
    parser: &mut Parser,
    object: &ObjectDef,
    schema: &Schema,
) -> Result<Condition, RestError> {
    let mut resolve = |parser: &mut Parser| {
        let token = parser.advance();
        if !is_name(&token) {
            return Err(parser.unexpected_token(&token));
        }
        resolve_at(parser, &token, object, schema).map(Subject::path)
    };
    parse_with(parser, &mut resolve)
}

/// Parses a condition whose left sides `resolve` reads (HAVING's aggregates and groups).
pub(crate) fn parse_with(
    parser: &mut Parser,
    resolve: &mut Resolve<'_>,
) -> Result<Condition, RestError> {
    Ok(Condition {
        expression: parse_expression(parser, resolve)?,
    })
}

/// `a AND b AND c` or `a OR b OR c`; mixing AND and OR at one level is a syntax error in
/// SOQL (parentheses are required), reported at the operator that switches.
fn parse_expression(
    parser: &mut Parser,
    resolve: &mut Resolve<'_>,
) -> Result<Expression, RestError> {
    let first = parse_unary(parser, resolve)?;
    let mut rest = Vec::new();
    let mut conjunction: Option<bool> = None;
    loop {
        let is_and = if parser.peek().is_keyword("AND") {
            true
        } else if parser.peek().is_keyword("OR") {
            false
        } else {
            break;
        };
        if conjunction.is_some_and(|previous| previous != is_and) {
            return Err(parser.unexpected());
        }
        conjunction = Some(is_and);
        parser.advance();
        rest.push(parse_unary(parser, resolve)?);
    }
    Ok(match conjunction {
        None => first,
        Some(is_and) => {
            let mut all = vec![first];
            all.extend(rest);
            if is_and {
                Expression::All(all)
            } else {
                Expression::Any(all)
            }
        }
    })
}

fn parse_unary(parser: &mut Parser, resolve: &mut Resolve<'_>) -> Result<Expression, RestError> {
    if parser.eat_keyword("NOT") {
        return Ok(Expression::Not(Box::new(parse_unary(parser, resolve)?)));
    }
    if parser.eat_symbol("(") {
        let inner = parse_expression(parser, resolve)?;
        parser.expect_symbol(")")?;
        return Ok(inner);
    }
    parse_simple(parser, resolve)
}

fn parse_simple(parser: &mut Parser, resolve: &mut Resolve<'_>) -> Result<Expression, RestError> {
    let path = resolve(parser)?;
    let operator_token = parser.advance();
    if operator_token.is_keyword("LIKE") {
        let literal = parser.advance();
        let TokenKind::Text { pattern, .. } = &literal.kind else {
            return Err(parser.unexpected_token(&literal));
        };
        if !(path.field_type.is_text()
            || matches!(path.field_type, FieldType::Id | FieldType::Reference))
        {
            return Err(parser.error_at(
                operator_token.offset,
                "INVALID_FIELD",
                &format!("invalid operator on field '{}': LIKE", path.typed),
            ));
        }
        return Ok(Expression::Like {
            subject: path,
            pattern: lowercase_pattern(pattern),
        });
    }
    let negated = operator_token.is_keyword("NOT");
    if operator_token.is_keyword("IN") || (negated && parser.peek().is_keyword("IN")) {
        if negated {
            parser.advance();
        }
        parser.expect_symbol("(")?;
        let mut operands = Vec::new();
        loop {
            operands.push(parse_operand(parser, &path, Operator::Equal)?);
            if !parser.eat_symbol(",") {
                break;
            }
        }
        parser.expect_symbol(")")?;
        return Ok(Expression::In {
            subject: path,
            operands,
            negated,
        });
    }
    let operator = match operator_token.text.as_str() {
        _ if operator_token.kind != TokenKind::Symbol => None,
        "=" => Some(Operator::Equal),
        "!=" | "<>" => Some(Operator::NotEqual),
        "<" => Some(Operator::Less),
        "<=" => Some(Operator::LessOrEqual),
        ">" => Some(Operator::Greater),
        ">=" => Some(Operator::GreaterOrEqual),
        _ => None,
    };
    let Some(operator) = operator else {
        return Err(parser.unexpected_token(&operator_token));
    };
    let operand = parse_operand(parser, &path, operator)?;
    Ok(Expression::Compare {
        subject: path,
        operator,
        operand,
    })
}

/// Reads one literal and checks it against the field's type, as Salesforce does at parse time.
fn parse_operand(
    parser: &mut Parser,
    path: &Subject,
    operator: Operator,
) -> Result<Operand, RestError> {
    let token = parser.advance();
    let literal = match &token.kind {
        TokenKind::Text { value, .. } => Literal::Text(value.clone()),
        TokenKind::Number(number) => Literal::Number(*number),
        TokenKind::Date(day) => Literal::Date(DateLiteral::Day(*day)),
        TokenKind::DateTime(instant) => Literal::Date(DateLiteral::Instant(*instant)),
        TokenKind::Identifier => {
            let word = token.text.to_ascii_uppercase();
            match word.as_str() {
                "NULL" => Literal::Null,
                "TRUE" => Literal::Boolean(true),
                "FALSE" => Literal::Boolean(false),
                "TODAY" => Literal::Date(DateLiteral::Today),
                "YESTERDAY" => Literal::Date(DateLiteral::Yesterday),
                "TOMORROW" => Literal::Date(DateLiteral::Tomorrow),
                "LAST_N_DAYS" | "NEXT_N_DAYS" => {
                    parser.expect_symbol(":")?;
                    let count_token = parser.advance();
                    let count = match count_token.kind {
                        TokenKind::Number(n) if n >= 0.0 && n.fract() == 0.0 => n as i64,
                        _ => return Err(parser.unexpected_token(&count_token)),
                    };
                    if word == "LAST_N_DAYS" {
                        Literal::Date(DateLiteral::LastNDays(count))
                    } else {
                        Literal::Date(DateLiteral::NextNDays(count))
                    }
                }
                _ => return Err(parser.unexpected_token(&token)),
            }
        }
        _ => return Err(parser.unexpected_token(&token)),
    };
    typed_operand(parser, path, operator, literal, &token)
}

enum Literal {
    Null,
    Text(String),
    Number(f64),
    Boolean(bool),
    Date(DateLiteral),
}

fn typed_operand(
    parser: &Parser,
    path: &Subject,
    operator: Operator,
    literal: Literal,
    token: &Token,
) -> Result<Operand, RestError> {
    let wrong_type = |type_name: &str, quoted: bool| {
        let quotes = if quoted {
            "should be enclosed in quotes"
        } else {
            "should not be enclosed in quotes"
        };
        parser.error_at(
            token.offset,
            "INVALID_FIELD",
            &format!(
                "value of filter criterion for field '{}' must be of type {type_name} and {quotes}",
                path.typed
            ),
        )
    };
    let field_type = path.field_type;
    // Salesforce treats an empty string like null in filters.
    let literal = match literal {
        Literal::Text(text) if text.is_empty() => Literal::Null,
        other => other,
    };
    if let Literal::Null = literal {
        return Ok(Operand::Null);
    }
    let operand = match field_type {
        FieldType::Id | FieldType::Reference => match literal {
            Literal::Text(text) => match ids::to_18(&text) {
                Ok(id18) => Operand::Id(id18),
                Err(_) => {
                    return Err(parser.error_at(
                        token.offset,
                        "INVALID_QUERY_FILTER_OPERATOR",
                        &format!("invalid ID field: {text}"),
                    ));
                }
            },
            _ => return Err(wrong_type("id", true)),
        },
        FieldType::String
        | FieldType::TextArea
        | FieldType::Phone
        | FieldType::Email
        | FieldType::Url
        | FieldType::Picklist => match literal {
            Literal::Text(text) => Operand::Text(text),
            _ => return Err(wrong_type("string", true)),
        },
        FieldType::Double | FieldType::Currency | FieldType::Int => match literal {
            Literal::Number(number) => Operand::Number(number),
            _ => {
                let name = if field_type == FieldType::Int {
                    "integer"
                } else {
                    "double"
                };
                return Err(wrong_type(name, false));
            }
        },
        FieldType::Boolean => match literal {
            Literal::Boolean(flag) if matches!(operator, Operator::Equal | Operator::NotEqual) => {
                Operand::Boolean(flag)
            }
            Literal::Boolean(_) => {
                return Err(parser.error_at(
                    token.offset,
                    "INVALID_FIELD",
                    &format!("invalid operator on boolean field '{}'", path.typed),
                ));
            }
            _ => return Err(wrong_type("boolean", false)),
        },
        FieldType::Date => match literal {
            Literal::Date(DateLiteral::Instant(_)) => return Err(wrong_type("date", false)),
            Literal::Date(date) => Operand::Date(date),
            _ => return Err(wrong_type("date", false)),
        },
        FieldType::DateTime => match literal {
            Literal::Date(DateLiteral::Day(_)) => return Err(wrong_type("dateTime", false)),
            Literal::Date(date) => Operand::Date(date),
            _ => return Err(wrong_type("dateTime", false)),
        },
    };
    Ok(operand)
}

/// Whether a record satisfies the condition. Relative dates are taken from today (UTC).
pub(crate) fn evaluate(
    condition: &Condition,
    record: &Record,
    schema: &Schema,
    store: &Store,
) -> bool {
    let value = |subject: &Subject| match &subject.source {
        Source::Path(path) => path::value(path, record, schema, store),
        Source::Slot(_) => &Value::Null,
    };
    evaluate_with(condition, &value)
}

/// Whether a group's values (HAVING) satisfy the condition.
pub(crate) fn evaluate_group(condition: &Condition, values: &[Value]) -> bool {
    let value = |subject: &Subject| match &subject.source {
        Source::Slot(index) => values.get(*index).unwrap_or(&Value::Null),
        Source::Path(_) => &Value::Null,
    };
    evaluate_with(condition, &value)
}

fn evaluate_with<'v>(condition: &Condition, value: &dyn Fn(&Subject) -> &'v Value) -> bool {
    let today = Utc::now().date_naive();
    evaluate_expression(&condition.expression, value, today)
}

fn evaluate_expression<'v>(
    expression: &Expression,
    value_of: &dyn Fn(&Subject) -> &'v Value,
    today: NaiveDate,
) -> bool {
    let evaluate = |inner: &Expression| evaluate_expression(inner, value_of, today);
    match expression {
        Expression::All(items) => items.iter().all(evaluate),
        Expression::Any(items) => items.iter().any(evaluate),
        Expression::Not(inner) => !evaluate(inner),
        Expression::Compare {
            subject,
            operator,
            operand,
        } => compare(
            value_of(subject),
            subject.field_type,
            *operator,
            operand,
            today,
        ),
        Expression::Like { subject, pattern } => {
            let value = value_of(subject);
            value_text(value).is_some_and(|text| {
                let text: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();
                wildcard_match(pattern, &text)
            })
        }
        Expression::In {
            subject,
            operands,
            negated,
        } => {
            let value = value_of(subject);
            let found = operands
                .iter()
                .any(|operand| compare(value, subject.field_type, Operator::Equal, operand, today));
            found != *negated
        }
    }
}

/// Null, and the empty string, which Salesforce stores as null.
pub(crate) fn is_blank(value: &Value) -> bool {
    value.is_null() || value.as_str() == Some("")
}

fn value_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

fn apply(operator: Operator, ordering: Ordering) -> bool {
    match operator {
        Operator::Equal => ordering == Ordering::Equal,
        Operator::NotEqual => ordering != Ordering::Equal,
        Operator::Less => ordering == Ordering::Less,
        Operator::LessOrEqual => ordering != Ordering::Greater,
        Operator::Greater => ordering == Ordering::Greater,
        Operator::GreaterOrEqual => ordering != Ordering::Less,
    }
}

/// Compares against a half-open range `[low, high)`: a date literal covers a whole day.
fn apply_range(operator: Operator, value: i64, low: i64, high: i64) -> bool {
    match operator {
        Operator::Equal => low <= value && value < high,
        Operator::NotEqual => !(low <= value && value < high),
        Operator::Less => value < low,
        Operator::LessOrEqual => value < high,
        Operator::Greater => value >= high,
        Operator::GreaterOrEqual => value >= low,
    }
}

fn compare(
    value: &Value,
    field_type: FieldType,
    operator: Operator,
    operand: &Operand,
    today: NaiveDate,
) -> bool {
    if let Operand::Null = operand {
        return match operator {
            Operator::Equal => is_blank(value),
            Operator::NotEqual => !is_blank(value),
            _ => false,
        };
    }
    // SOQL's `!=` keeps rows whose field is null; every other comparison drops them.
    if is_blank(value) {
        return operator == Operator::NotEqual;
    }
    match operand {
        Operand::Null => false,
        Operand::Text(text) => value_text(value)
            .is_some_and(|stored| apply(operator, stored.to_lowercase().cmp(&text.to_lowercase()))),
        Operand::Id(id18) => value.as_str().is_some_and(|stored| {
            let stored = ids::to_18(stored).unwrap_or_else(|_| stored.to_string());
            apply(
                operator,
                stored.to_ascii_lowercase().cmp(&id18.to_ascii_lowercase()),
            )
        }),
        Operand::Number(number) => value
            .as_f64()
            .or_else(|| value.as_str().and_then(|text| text.trim().parse().ok()))
            .and_then(|stored| stored.partial_cmp(number))
            .is_some_and(|ordering| apply(operator, ordering)),
        Operand::Boolean(flag) => value
            .as_bool()
            .is_some_and(|stored| apply(operator, stored.cmp(flag))),
        Operand::Date(literal) => {
            let Some(text) = value.as_str() else {
                return false;
            };
            if field_type == FieldType::Date {
                let Some(day) = text
                    .get(..10)
                    .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                else {
                    return false;
                };
                let (low, high) = match day_range(*literal, today) {
                    Some(range) => range,
                    None => match literal {
                        DateLiteral::Instant(instant) => {
                            let day = instant.date_naive();
                            (day, day + Duration::days(1))
                        }
                        _ => return false,
                    },
                };
                apply_range(operator, day_number(day), day_number(low), day_number(high))
            } else {
                let Some(stored) = store::parse_datetime(text) else {
                    return false;
                };
                let (low, high) = match (day_range(*literal, today), literal) {
                    (Some((low, high)), _) => (midnight_millis(low), midnight_millis(high)),
                    (None, DateLiteral::Instant(instant)) => {
                        (instant.timestamp_millis(), instant.timestamp_millis() + 1)
                    }
                    (None, _) => return false,
                };
                apply_range(operator, stored.timestamp_millis(), low, high)
            }
        }
    }
}

/// The days a date literal covers, as `[first, after_last)`.
fn day_range(literal: DateLiteral, today: NaiveDate) -> Option<(NaiveDate, NaiveDate)> {
    let day = Duration::days(1);
    Some(match literal {
        DateLiteral::Day(date) => (date, date + day),
        DateLiteral::Today => (today, today + day),
        DateLiteral::Yesterday => (today - day, today),
        DateLiteral::Tomorrow => (today + day, today + day + day),
        // Salesforce's LAST_N_DAYS:n includes today and the n days before it.
        DateLiteral::LastNDays(n) => (today - Duration::days(n), today + day),
        // NEXT_N_DAYS:n starts tomorrow and covers n days.
        DateLiteral::NextNDays(n) => (today + day, today + day + Duration::days(n)),
        DateLiteral::Instant(_) => return None,
    })
}

fn day_number(day: NaiveDate) -> i64 {
    i64::from(chrono::Datelike::num_days_from_ce(&day))
}

fn midnight_millis(day: NaiveDate) -> i64 {
    day.and_hms_opt(0, 0, 0)
        .map_or(0, |time| time.and_utc().timestamp_millis())
}
