//! The fourteen operations: each event is validated and turned into a [`Plan`] (exactly what
//! will be sent to Salesforce) before anything is sent, and a plan's answer becomes the output.

use chrono::{DateTime, Utc};
use salesforce::Client;
use salesforce::safety::{
    escape_soql_string, parse_field_list, validate_field_path, validate_id, validate_identifier,
};
use serde_json::{Map, Value, json};

use crate::dates;
use crate::error::InvokeError;
use crate::event::{Parameters, shorten};
use crate::flatten::{self, Output};
use crate::phone::{self, PhoneQuery};
use crate::placeholders::{self, Language};
use crate::where_clause::validate_condition;

/// Every `sf_operation`, spelled as Amazon Connect flows use them.
pub const OPERATIONS: [&str; 14] = [
    "lookup",
    "phoneLookup",
    "create",
    "update",
    "delete",
    "lookup_all",
    "query",
    "queryOne",
    "search",
    "searchOne",
    "searchSOSL",
    "searchOneSOSL",
    "createChatterPost",
    "createChatterComment",
];

/// The default `overallLimit` of `search`, as in the original.
pub const DEFAULT_SEARCH_LIMIT: u32 = 100;
/// Salesforce returns at most 2,000 search results.
const MAX_SEARCH_LIMIT: u32 = 2000;

/// Which records of a result become the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// The first record's fields (`lookup`, `phoneLookup`).
    First,
    /// The record's fields only when exactly one matched (`queryOne`, `searchOne`,
    /// `searchOneSOSL`).
    ExactlyOne,
    /// Every record as `sf_records_<i>_<Field>` (`lookup_all`, `query`, `search`, `searchSOSL`).
    All,
}

impl Shape {
    fn render(self, records: &[Value]) -> Output {
        match self {
            Shape::First => flatten::first_record(records),
            Shape::ExactlyOne => flatten::only_record(records),
            Shape::All => flatten::all_records(records),
        }
    }
}

/// A validated request, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Nothing to ask Salesforce (`phoneLookup` for an anonymous caller).
    Answer(Output),
    Query {
        soql: String,
        shape: Shape,
    },
    Search {
        sosl: String,
        shape: Shape,
    },
    ParameterizedSearch {
        body: Value,
        shape: Shape,
    },
    Create {
        sobject: String,
        fields: Value,
    },
    Update {
        sobject: String,
        id: String,
        fields: Value,
    },
    Delete {
        sobject: String,
        id: String,
    },
    ChatterPost {
        body: Value,
    },
    ChatterComment {
        feed_element_id: String,
        body: Value,
    },
}

impl Plan {
    /// Validates the parameters of one event and builds its plan; `now` is the invocation's
    /// time for relative dates.
    pub fn from_parameters(
        parameters: &Parameters,
        now: DateTime<Utc>,
    ) -> Result<Self, InvokeError> {
        let operation = match parameters.get("sf_operation") {
            Some(operation) if !operation.is_empty() => operation,
            _ => {
                return Err(InvokeError::MissingParameter {
                    name: "sf_operation".into(),
                    operation: "every".into(),
                });
            }
        };
        let request = Request {
            parameters,
            operation,
        };
        match operation {
            "lookup" => request.lookup(Shape::First, true),
            "lookup_all" => request.lookup(Shape::All, false),
            "phoneLookup" => request.phone_lookup(),
            "create" => request.create(now),
            "update" => request.update(now),
            "delete" => request.delete(),
            "query" => request.query(Shape::All),
            "queryOne" => request.query(Shape::ExactlyOne),
            "search" => request.search(Shape::All),
            "searchOne" => request.search(Shape::ExactlyOne),
            "searchSOSL" => request.search_sosl(Shape::All),
            "searchOneSOSL" => request.search_sosl(Shape::ExactlyOne),
            "createChatterPost" => request.chatter_post(),
            "createChatterComment" => request.chatter_comment(),
            unknown => Err(unknown_operation(unknown)),
        }
    }

    /// Sends the plan with `client` and renders the answer. Errors are Salesforce's, for the
    /// caller to map (and to retry once after an expired session).
    pub async fn execute(&self, client: &Client) -> salesforce::Result<Output> {
        match self {
            Plan::Answer(output) => Ok(output.clone()),
            Plan::Query { soql, shape } if *shape == Shape::All => {
                let result = client.query(soql).await?;
                Ok(shape.render(&result.records))
            }
            Plan::Query { soql, shape } => {
                // One record is all the output needs: the first page holds it, and the
                // query's total is the count. Following every page could run past the deadline.
                let result = client.query_page(soql).await?;
                let mut output = shape.render(&result.records);
                output.insert("sf_count".to_owned(), result.total_size.to_string());
                Ok(output)
            }
            Plan::Search { sosl, shape } => {
                let records = client.search(sosl).await?;
                Ok(shape.render(&records))
            }
            Plan::ParameterizedSearch { body, shape } => {
                let records = client.parameterized_search(body).await?;
                Ok(shape.render(&records))
            }
            Plan::Create { sobject, fields } => {
                let id = client.create(sobject, fields).await?;
                Ok(Output::from([("Id".to_owned(), id)]))
            }
            Plan::Update {
                sobject,
                id,
                fields,
            } => {
                client.update(sobject, id, fields).await?;
                Ok(Output::from([("Status".to_owned(), "204".to_owned())]))
            }
            Plan::Delete { sobject, id } => {
                client.delete(sobject, id).await?;
                Ok(Output::from([("Response".to_owned(), "204".to_owned())]))
            }
            Plan::ChatterPost { body } => {
                let answer = client.chatter_post(body).await?;
                Ok(id_of(&answer))
            }
            Plan::ChatterComment {
                feed_element_id,
                body,
            } => {
                let answer = client.chatter_comment(feed_element_id, body).await?;
                Ok(id_of(&answer))
            }
        }
    }
}

fn id_of(answer: &Value) -> Output {
    let id = answer
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Output::from([("Id".to_owned(), id)])
}

fn unknown_operation(operation: &str) -> InvokeError {
    let hint = match OPERATIONS
        .iter()
        .find(|known| known.eq_ignore_ascii_case(operation))
    {
        Some(known) => format!(" (operation names are case-sensitive: did you mean {known}?)"),
        None => format!("; expected one of {}", OPERATIONS.join(", ")),
    };
    InvokeError::UnknownOperation {
        operation: shorten(operation),
        hint,
    }
}

/// The parameters that are never Salesforce field names or placeholders of `lookup`,
/// `create` and `update`: every `sf_` parameter.
fn is_control_parameter(name: &str) -> bool {
    name.starts_with("sf_")
}

struct Request<'p> {
    parameters: &'p Parameters,
    operation: &'p str,
}

impl Request<'_> {
    fn required(&self, name: &str) -> Result<&str, InvokeError> {
        self.parameters.required(name, self.operation)
    }

    fn sobject(&self) -> Result<String, InvokeError> {
        let sobject = self.required("sf_object")?.trim();
        validate_identifier(sobject)
            .map_err(|error| InvokeError::from_safety("sf_object", error))?;
        Ok(sobject.to_owned())
    }

    fn fields(&self, name: &str) -> Result<Vec<String>, InvokeError> {
        let list = self.required(name)?;
        parse_field_list(list).map_err(|error| InvokeError::from_safety(name, error))
    }

    fn id(&self, name: &str) -> Result<String, InvokeError> {
        let id = self.required(name)?.trim();
        validate_id(id).map_err(|error| InvokeError::from_id(name, error))?;
        Ok(id.to_owned())
    }

    /// `lookup` and `lookup_all`: `SELECT sf_fields FROM sf_object WHERE f1 = 'v1' AND …`.
    fn lookup(&self, shape: Shape, needs_filter: bool) -> Result<Plan, InvokeError> {
        let sobject = self.sobject()?;
        let fields = self.fields("sf_fields")?;
        let mut conditions = Vec::new();
        for (name, value) in self.parameters.iter() {
            if is_control_parameter(name) {
                continue;
            }
            validate_field_path(name).map_err(|error| InvokeError::from_safety(name, error))?;
            conditions.push(filter_condition(name, value)?);
        }
        if needs_filter && conditions.is_empty() {
            return Err(InvokeError::MissingParameter {
                name: "a field to filter on (e.g. Phone)".into(),
                operation: self.operation.into(),
            });
        }
        let mut soql = format!("SELECT {} FROM {sobject}", fields.join(", "));
        if !conditions.is_empty() {
            soql.push_str(" WHERE ");
            soql.push_str(&conditions.join(" AND "));
        }
        Ok(Plan::Query { soql, shape })
    }

    fn phone_lookup(&self) -> Result<Plan, InvokeError> {
        let Some(phone) = self.parameters.get("sf_phone") else {
            return Err(InvokeError::MissingParameter {
                name: "sf_phone".into(),
                operation: self.operation.into(),
            });
        };
        let fields = self.fields("sf_fields")?;
        let national = match phone::national_number(phone)
            .map_err(|reason| InvokeError::invalid("sf_phone", reason))?
        {
            PhoneQuery::Anonymous => {
                return Ok(Plan::Answer(Output::from([(
                    "sf_count".to_owned(),
                    "0".to_owned(),
                )])));
            }
            PhoneQuery::National(digits) => digits,
        };
        let body = json!({
            "q": national,
            "in": "PHONE",
            "sobjects": [{"name": "Contact"}],
            "fields": fields,
        });
        Ok(Plan::ParameterizedSearch {
            body,
            shape: Shape::First,
        })
    }

    /// The record fields of `create`/`update`: every parameter not starting with `sf_`, with
    /// relative dates resolved.
    fn record_fields(&self, now: DateTime<Utc>) -> Result<Value, InvokeError> {
        let mut fields = Map::new();
        for (name, value) in self.parameters.iter() {
            if is_control_parameter(name) {
                continue;
            }
            validate_identifier(name).map_err(|error| InvokeError::from_safety(name, error))?;
            let value = dates::resolve(value, now)
                .map_err(|reason| InvokeError::invalid(name, reason))?
                .unwrap_or_else(|| value.to_owned());
            fields.insert(name.to_owned(), Value::String(value));
        }
        Ok(Value::Object(fields))
    }

    fn create(&self, now: DateTime<Utc>) -> Result<Plan, InvokeError> {
        let sobject = self.sobject()?;
        let fields = self.record_fields(now)?;
        Ok(Plan::Create { sobject, fields })
    }

    fn update(&self, now: DateTime<Utc>) -> Result<Plan, InvokeError> {
        let sobject = self.sobject()?;
        let id = self.id("sf_id")?;
        let fields = self.record_fields(now)?;
        if fields.as_object().is_none_or(Map::is_empty) {
            return Err(InvokeError::MissingParameter {
                name: "a field to update (e.g. Status)".into(),
                operation: self.operation.into(),
            });
        }
        Ok(Plan::Update {
            sobject,
            id,
            fields,
        })
    }

    fn delete(&self) -> Result<Plan, InvokeError> {
        let sobject = self.sobject()?;
        let id = self.id("sf_id")?;
        Ok(Plan::Delete { sobject, id })
    }

    /// The placeholder values of `query`-style operations: every parameter but `sf_operation`
    /// and `query`.
    fn placeholder_values(&self) -> Vec<(&str, &str)> {
        self.parameters
            .iter()
            .filter(|(name, _)| *name != "sf_operation" && *name != "query")
            .collect()
    }

    fn query(&self, shape: Shape) -> Result<Plan, InvokeError> {
        let statement = self.required("query")?;
        let soql = placeholders::substitute(statement, &self.placeholder_values(), Language::Soql)?;
        Ok(Plan::Query { soql, shape })
    }

    fn search_sosl(&self, shape: Shape) -> Result<Plan, InvokeError> {
        let statement = self.required("query")?;
        let sosl = placeholders::substitute(statement, &self.placeholder_values(), Language::Sosl)?;
        Ok(Plan::Search { sosl, shape })
    }

    /// `search`/`searchOne`: a parameterized search for `q` in `sf_object`.
    fn search(&self, shape: Shape) -> Result<Plan, InvokeError> {
        let q = self.required("q")?;
        if q.trim().chars().count() < 2 {
            return Err(InvokeError::invalid(
                "q",
                "search terms must be longer than one character",
            ));
        }
        let fields = self.fields("sf_fields")?;
        let sobject = self.sobject()?;
        let mut target = Map::new();
        target.insert("name".into(), Value::String(sobject));
        if let Some(condition) = self.parameters.optional("where") {
            validate_condition(condition)
                .map_err(|reason| InvokeError::invalid("where", reason))?;
            target.insert("where".into(), Value::String(condition.trim().to_owned()));
        }
        let mut body = json!({
            "q": q,
            "fields": fields,
            "sobjects": [Value::Object(target)],
        });
        if shape == Shape::All {
            let limit = match self.parameters.optional("overallLimit") {
                None => DEFAULT_SEARCH_LIMIT,
                Some(limit) => limit
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|limit| (1..=MAX_SEARCH_LIMIT).contains(limit))
                    .ok_or_else(|| {
                        InvokeError::invalid(
                            "overallLimit",
                            format!("expected a whole number from 1 to {MAX_SEARCH_LIMIT}"),
                        )
                    })?,
            };
            body["overallLimit"] = json!(limit);
        }
        Ok(Plan::ParameterizedSearch { body, shape })
    }

    fn chatter_post(&self) -> Result<Plan, InvokeError> {
        let element_type = self.required("sf_feedElementType")?.trim();
        segment_word("sf_feedElementType", element_type)?;
        let subject = self.required("sf_subjectId")?.trim();
        if subject != "me" {
            validate_id(subject).map_err(|error| InvokeError::from_id("sf_subjectId", error))?;
        }
        let message_type = self.required("sf_messageType")?.trim();
        segment_word("sf_messageType", message_type)?;
        let message = fill_message("sf_message", self.required("sf_message")?, self.parameters)?;
        let mut segments = vec![json!({"type": message_type, "text": message})];
        if let Some(mention) = self.parameters.optional("sf_mention") {
            let mention = mention.trim();
            validate_id(mention).map_err(|error| InvokeError::from_id("sf_mention", error))?;
            segments.push(json!({"type": "Mention", "id": mention}));
        }
        Ok(Plan::ChatterPost {
            body: json!({
                "body": {"messageSegments": segments},
                "feedElementType": element_type,
                "subjectId": subject,
            }),
        })
    }

    fn chatter_comment(&self) -> Result<Plan, InvokeError> {
        let feed_element_id = self.id("sf_feedElementId")?;
        let comment_type = self.required("sf_commentType")?.trim();
        segment_word("sf_commentType", comment_type)?;
        let message = fill_message(
            "sf_commentMessage",
            self.required("sf_commentMessage")?,
            self.parameters,
        )?;
        Ok(Plan::ChatterComment {
            feed_element_id,
            body: json!({"body": {"messageSegments": [{"type": comment_type, "text": message}]}}),
        })
    }
}

/// A `lookup` filter: `Field = 'value'`; `Field LIKE 'value'` when the value has a `%`
/// (the caller's own wildcard, as in the original); and for `HomePhone`/`MobilePhone` a match
/// on the digits whatever the formatting.
fn filter_condition(name: &str, value: &str) -> Result<String, InvokeError> {
    if name.eq_ignore_ascii_case("homephone") || name.eq_ignore_ascii_case("mobilephone") {
        let digits: String = value.chars().filter(char::is_ascii_digit).collect();
        if digits.is_empty() {
            return Err(InvokeError::invalid(name, "expected a phone number"));
        }
        // The original matched the last ten digits as `%ddd%ddd%dddd%`, so formatted numbers
        // such as (555) 555-0100 match too. Shorter numbers match as one group.
        let pattern = if digits.len() >= 10 {
            let last = &digits[digits.len() - 10..];
            format!("%{}%{}%{}%", &last[..3], &last[3..6], &last[6..])
        } else {
            format!("%{digits}%")
        };
        return Ok(format!("{name} LIKE '{pattern}'"));
    }
    if value.contains('%') {
        return Ok(format!("{name} LIKE '{}'", escape_soql_string(value)));
    }
    Ok(format!("{name} = '{}'", escape_soql_string(value)))
}

/// Chatter segment and element types are single words (`Text`, `FeedItem`).
fn segment_word(name: &str, value: &str) -> Result<(), InvokeError> {
    if !value.is_empty() && value.len() <= 40 && value.bytes().all(|b| b.is_ascii_alphabetic()) {
        Ok(())
    } else {
        Err(InvokeError::invalid(
            name,
            format!(
                "expected a single word such as Text or FeedItem, got {}",
                shorten(value)
            ),
        ))
    }
}

/// Replaces `{{key}}` in a Chatter message by the value of parameter `key`, as the original's
/// `text_replace_string` did: an unknown key or an unclosed `{{` is an error. Unlike the
/// original, values are inserted once and never scanned again.
fn fill_message(name: &str, message: &str, parameters: &Parameters) -> Result<String, InvokeError> {
    let mut output = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find("{{") {
        output.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(InvokeError::invalid(name, "a {{ is not closed by }}"));
        };
        let key = after[..end].trim();
        let value = parameters.get(key).ok_or_else(|| {
            InvokeError::invalid(
                name,
                format!(
                    "the message uses {{{{{}}}}} but there is no such parameter",
                    shorten(key)
                ),
            )
        })?;
        output.push_str(value);
        rest = &after[end + 2..];
    }
    output.push_str(rest);
    Ok(output)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 2, 27, 22, 30, 15)
            .single()
            .unwrap_or_default()
    }

    fn plan(pairs: &[(&str, &str)]) -> Result<Plan, InvokeError> {
        Plan::from_parameters(&Parameters::from_pairs(pairs.iter().copied()), now())
    }

    #[test]
    fn lookups_build_escaped_soql() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[
                    ("sf_operation", "lookup"),
                    ("sf_object", "Contact"),
                    ("sf_fields", "Id, Name, Account.Name"),
                    ("LastName", "O'Brien"),
                    ("Account.Name", "Acme"),
                ],
                r"SELECT Id, Name, Account.Name FROM Contact WHERE Account.Name = 'Acme' AND LastName = 'O\'Brien'",
            ),
            (
                &[
                    ("sf_operation", "lookup"),
                    ("sf_object", "Contact"),
                    ("sf_fields", "Id"),
                    ("MobilePhone", "+1 (555) 555-0101"),
                ],
                "SELECT Id FROM Contact WHERE MobilePhone LIKE '%555%555%0101%'",
            ),
            (
                &[
                    ("sf_operation", "lookup"),
                    ("sf_object", "Contact"),
                    ("sf_fields", "Id"),
                    ("Email", "%@example.com"),
                ],
                "SELECT Id FROM Contact WHERE Email LIKE '%@example.com'",
            ),
            (
                &[
                    ("sf_operation", "lookup_all"),
                    ("sf_object", "Case"),
                    ("sf_fields", "Id,Subject"),
                ],
                "SELECT Id, Subject FROM Case",
            ),
        ];
        for (pairs, expected) in cases {
            match plan(pairs) {
                Ok(Plan::Query { soql, .. }) => assert_eq!(soql, *expected),
                other => panic!("{pairs:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn creates_resolve_relative_dates_and_chatter_messages_fill_keys() {
        let created = plan(&[
            ("sf_operation", "create"),
            ("sf_object", "Task"),
            ("ActivityDate", "1d|date"),
            ("Subject", "Call | back"),
        ]);
        assert_eq!(
            created,
            Ok(Plan::Create {
                sobject: "Task".into(),
                fields: json!({"ActivityDate": "2026-02-28", "Subject": "Call | back"}),
            })
        );
        let post = plan(&[
            ("sf_operation", "createChatterPost"),
            ("sf_feedElementType", "FeedItem"),
            ("sf_subjectId", "me"),
            ("sf_messageType", "Text"),
            ("sf_message", "Call from {{phone}} about {{ case }}"),
            ("phone", "+44 {{x}}"),
            ("case", "00001001"),
        ]);
        assert_eq!(
            post,
            Ok(Plan::ChatterPost {
                body: json!({
                    "body": {"messageSegments": [{"type": "Text", "text": "Call from +44 {{x}} about 00001001"}]},
                    "feedElementType": "FeedItem",
                    "subjectId": "me",
                }),
            })
        );
    }

    #[test]
    fn operation_names_are_case_sensitive() {
        let error = plan(&[("sf_operation", "PhoneLookup")]);
        assert_eq!(
            error.map_err(|error| error.to_string()),
            Err("unknown sf_operation \"PhoneLookup\" (operation names are case-sensitive: did you mean phoneLookup?)".into())
        );
    }
}
