//! The org's records, and the validation Salesforce applies when they are written.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};

use crate::error::RestError;
use crate::ids;
use crate::schema::{FieldDef, FieldType, ObjectDef, Schema};

/// One record. Field names are canonical (as in the schema).
#[derive(Debug, Clone)]
pub struct Record {
    pub id: String,
    pub sobject: &'static str,
    pub fields: BTreeMap<&'static str, Value>,
    pub deleted: bool,
}

impl Record {
    /// A field's value, `Null` when unset.
    pub fn get(&self, field: &str) -> &Value {
        self.fields
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(field))
            .map_or(&Value::Null, |(_, value)| value)
    }
}

/// Every record of the org, in insertion order.
#[derive(Debug, Default)]
pub struct Store {
    records: Vec<Record>,
    index: HashMap<String, usize>,
    next_id: u64,
    next_case_number: u64,
}

/// Salesforce's datetime format on the wire.
pub fn format_datetime(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

impl Store {
    pub fn new() -> Self {
        Self {
            next_case_number: 1001,
            ..Self::default()
        }
    }

    /// A record by 18-character ID, deleted ones included.
    pub fn get(&self, id18: &str) -> Option<&Record> {
        self.index
            .get(id18)
            .and_then(|&position| self.records.get(position))
    }

    /// All records of one object type, deleted ones included, in insertion order.
    pub fn records_of<'a>(
        &'a self,
        sobject: &'a str,
    ) -> impl DoubleEndedIterator<Item = &'a Record> + 'a {
        self.records
            .iter()
            .filter(move |record| record.sobject == sobject)
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Creates a record after Salesforce's checks; returns its 18-character ID.
    pub fn create(
        &mut self,
        schema: &Schema,
        object: &ObjectDef,
        input: &Map<String, Value>,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<String, RestError> {
        let mut fields = self.validate_fields(schema, object, input, true)?;
        for field in &object.fields {
            if field.createable
                && !fields.contains_key(field.name)
                && let Some(default) = field.default
            {
                fields.insert(field.name, Value::String(default.to_string()));
            }
        }
        let missing: Vec<String> = object
            .fields
            .iter()
            .filter(|field| field.required && field.createable)
            .filter(|field| fields.get(field.name).is_none_or(is_blank))
            .map(|field| field.name.to_string())
            .collect();
        if !missing.is_empty() {
            return Err(RestError::bad_request(
                "REQUIRED_FIELD_MISSING",
                format!("Required fields are missing: [{}]", missing.join(", ")),
            )
            .with_fields(missing));
        }

        self.next_id += 1;
        let id = ids::generate(object.key_prefix, self.next_id);
        let stamp = Value::String(format_datetime(now));
        fields.insert("Id", Value::String(id.clone()));
        fields.insert("IsDeleted", Value::Bool(false));
        fields.insert("CreatedDate", stamp.clone());
        fields.insert("LastModifiedDate", stamp.clone());
        fields.insert("SystemModstamp", stamp);
        fields.insert("CreatedById", Value::String(user_id.to_string()));
        fields.insert("LastModifiedById", Value::String(user_id.to_string()));
        if object.field("OwnerId").is_some() && fields.get("OwnerId").is_none_or(Value::is_null) {
            fields.insert("OwnerId", Value::String(user_id.to_string()));
        }
        if object.name == "Case" {
            fields.insert(
                "CaseNumber",
                Value::String(format!("{:08}", self.next_case_number)),
            );
            self.next_case_number += 1;
        }
        let mut record = Record {
            id: id.clone(),
            sobject: object.name,
            fields,
            deleted: false,
        };
        derive_fields(&mut record, None, now);
        self.index.insert(id.clone(), self.records.len());
        self.records.push(record);
        Ok(id)
    }

    /// Updates a live record after Salesforce's checks.
    pub fn update(
        &mut self,
        schema: &Schema,
        object: &ObjectDef,
        id18: &str,
        input: &Map<String, Value>,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), RestError> {
        let changes = self.validate_fields(schema, object, input, false)?;
        let position = self.live_position(object, id18)?;
        let blanked: Vec<String> = object
            .fields
            .iter()
            .filter(|field| field.required)
            .filter(|field| changes.get(field.name).is_some_and(is_blank))
            .map(|field| field.name.to_string())
            .collect();
        if !blanked.is_empty() {
            return Err(RestError::bad_request(
                "REQUIRED_FIELD_MISSING",
                format!("Required fields are missing: [{}]", blanked.join(", ")),
            )
            .with_fields(blanked));
        }
        let record = &mut self.records[position];
        let before = record.clone();
        record.fields.extend(changes);
        let stamp = Value::String(format_datetime(now));
        record.fields.insert("LastModifiedDate", stamp.clone());
        record.fields.insert("SystemModstamp", stamp);
        record
            .fields
            .insert("LastModifiedById", Value::String(user_id.to_string()));
        derive_fields(record, Some(&before), now);
        Ok(())
    }

    /// The field checks of an update, without touching any record.
    pub fn check_update_fields(
        &self,
        schema: &Schema,
        object: &ObjectDef,
        input: &Map<String, Value>,
    ) -> Result<(), RestError> {
        self.validate_fields(schema, object, input, false)
            .map(|_| ())
    }

    /// Moves a live record to the recycle bin.
    pub fn delete(&mut self, object: &ObjectDef, id18: &str) -> Result<(), RestError> {
        let position = self.live_position(object, id18)?;
        let record = &mut self.records[position];
        record.deleted = true;
        record.fields.insert("IsDeleted", Value::Bool(true));
        Ok(())
    }

    /// Inserts a record exactly as given (seed data and users), bypassing field-level checks.
    pub fn insert_seed(
        &mut self,
        object: &ObjectDef,
        mut fields: BTreeMap<&'static str, Value>,
        user_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> String {
        self.next_id += 1;
        let id = ids::generate(object.key_prefix, self.next_id);
        let stamp = Value::String(format_datetime(now));
        fields.insert("Id", Value::String(id.clone()));
        fields.insert("IsDeleted", Value::Bool(false));
        for name in ["CreatedDate", "LastModifiedDate", "SystemModstamp"] {
            fields.insert(name, stamp.clone());
        }
        let creator = Value::String(user_id.unwrap_or(&id).to_string());
        fields.insert("CreatedById", creator.clone());
        fields.insert("LastModifiedById", creator.clone());
        if object.field("OwnerId").is_some() && !fields.contains_key("OwnerId") {
            fields.insert("OwnerId", creator);
        }
        for field in &object.fields {
            if let Some(default) = field.default {
                fields
                    .entry(field.name)
                    .or_insert_with(|| Value::String(default.to_string()));
            }
        }
        if object.name == "Case" && !fields.contains_key("CaseNumber") {
            fields.insert(
                "CaseNumber",
                Value::String(format!("{:08}", self.next_case_number)),
            );
            self.next_case_number += 1;
        }
        let mut record = Record {
            id: id.clone(),
            sobject: object.name,
            fields,
            deleted: false,
        };
        derive_fields(&mut record, None, now);
        self.index.insert(id.clone(), self.records.len());
        self.records.push(record);
        id
    }

    fn live_position(&self, object: &ObjectDef, id18: &str) -> Result<usize, RestError> {
        let position = *self.index.get(id18).ok_or_else(RestError::not_found)?;
        let record = &self.records[position];
        if record.sobject != object.name {
            return Err(RestError::not_found());
        }
        if record.deleted {
            return Err(RestError::new(
                axum::http::StatusCode::NOT_FOUND,
                "ENTITY_IS_DELETED",
                "entity is deleted",
            )
            .with_fields(vec![]));
        }
        Ok(position)
    }

    /// Checks every field of a create or update body and converts values to their stored form.
    fn validate_fields(
        &self,
        schema: &Schema,
        object: &ObjectDef,
        input: &Map<String, Value>,
        creating: bool,
    ) -> Result<BTreeMap<&'static str, Value>, RestError> {
        let mut fields = BTreeMap::new();
        let mut read_only = Vec::new();
        for (name, value) in input {
            if name == "attributes" {
                continue;
            }
            if name.eq_ignore_ascii_case("Id") {
                return Err(RestError::bad_request(
                    "INVALID_FIELD",
                    "The Id field should not be specified in the sobject data.",
                ));
            }
            let Some(field) = object.field(name) else {
                return Err(RestError::bad_request(
                    "INVALID_FIELD",
                    format!("No such column '{name}' on sobject of type {}", object.name),
                ));
            };
            let allowed = if creating {
                field.createable
            } else {
                field.updateable
            };
            if !allowed {
                read_only.push(field.name.to_string());
                continue;
            }
            fields.insert(field.name, self.convert_value(schema, field, value)?);
        }
        if !read_only.is_empty() {
            return Err(RestError::bad_request(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                format!(
                    "Unable to create/update fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
                    read_only.join(", ")
                ),
            )
            .with_fields(read_only));
        }
        Ok(fields)
    }

    fn convert_value(
        &self,
        schema: &Schema,
        field: &FieldDef,
        value: &Value,
    ) -> Result<Value, RestError> {
        if value.is_null() {
            return Ok(Value::Null);
        }
        let deserialize_error = || {
            RestError::bad_request(
                "JSON_PARSER_ERROR",
                format!(
                    "Cannot deserialize instance of {} from {} value {} or request may be missing a required field",
                    field.field_type.describe_name(),
                    json_token_name(value),
                    value
                ),
            )
        };
        let as_text = || match value {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            Value::Bool(flag) => Some(flag.to_string()),
            _ => None,
        };
        match field.field_type {
            FieldType::Boolean => match value {
                Value::Bool(_) => Ok(value.clone()),
                Value::String(text) if text.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
                Value::String(text) if text.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
                _ => Err(deserialize_error()),
            },
            FieldType::Double | FieldType::Currency | FieldType::Int => {
                let number = match value {
                    Value::Number(number) => number.as_f64(),
                    Value::String(text) => text.trim().parse::<f64>().ok(),
                    _ => None,
                }
                .ok_or_else(deserialize_error)?;
                if field.field_type == FieldType::Int {
                    if number.fract() != 0.0 {
                        return Err(deserialize_error());
                    }
                    Ok(Value::from(number as i64))
                } else {
                    Ok(serde_json::Number::from_f64(number).map_or(Value::Null, Value::Number))
                }
            }
            FieldType::Date => {
                let text = as_text().ok_or_else(deserialize_error)?;
                let date = NaiveDate::parse_from_str(text.get(..10).unwrap_or(&text), "%Y-%m-%d")
                    .map_err(|_| deserialize_error())?;
                Ok(Value::String(date.format("%Y-%m-%d").to_string()))
            }
            FieldType::DateTime => {
                let text = as_text().ok_or_else(deserialize_error)?;
                let time = parse_datetime(&text).ok_or_else(deserialize_error)?;
                Ok(Value::String(format_datetime(time)))
            }
            FieldType::Reference | FieldType::Id => {
                let text = as_text().ok_or_else(deserialize_error)?;
                if text.is_empty() {
                    return Ok(Value::Null);
                }
                let incorrect_type = || {
                    RestError::bad_request(
                        "MALFORMED_ID",
                        format!("{}: id value of incorrect type: {text}", field.label),
                    )
                    .with_fields(vec![field.name.to_string()])
                };
                let id18 = ids::to_18(&text).map_err(|_| incorrect_type())?;
                let target = schema.object_for_id(&id18).ok_or_else(incorrect_type)?;
                if !field.reference_to.contains(&target.name) {
                    return Err(RestError::bad_request(
                        "FIELD_INTEGRITY_EXCEPTION",
                        format!("{}: id value of incorrect type: {text}", field.label),
                    )
                    .with_fields(vec![field.name.to_string()]));
                }
                match self.get(&id18) {
                    Some(record) if !record.deleted => Ok(Value::String(id18)),
                    Some(_) => Err(RestError::bad_request(
                        "ENTITY_IS_DELETED",
                        "entity is deleted",
                    )
                    .with_fields(vec![field.name.to_string()])),
                    None => Err(RestError::bad_request(
                        "INVALID_CROSS_REFERENCE_KEY",
                        "invalid cross reference id",
                    )
                    .with_fields(vec![field.name.to_string()])),
                }
            }
            FieldType::Picklist => {
                let text = as_text().ok_or_else(deserialize_error)?;
                if field.restricted && !text.is_empty() && !field.picklist.contains(&text.as_str())
                {
                    return Err(RestError::bad_request(
                        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                        format!(
                            "{}: bad value for restricted picklist field: {text}",
                            field.label
                        ),
                    )
                    .with_fields(vec![field.name.to_string()]));
                }
                Ok(Value::String(text))
            }
            FieldType::Email => {
                let text = as_text().ok_or_else(deserialize_error)?;
                if !text.is_empty() && !looks_like_email(&text) {
                    return Err(RestError::bad_request(
                        "INVALID_EMAIL_ADDRESS",
                        format!("{}: invalid email address: {text}", field.label),
                    )
                    .with_fields(vec![field.name.to_string()]));
                }
                Ok(Value::String(text))
            }
            FieldType::String | FieldType::TextArea | FieldType::Phone | FieldType::Url => {
                let text = as_text().ok_or_else(deserialize_error)?;
                let length = text.chars().count();
                if length > field.length as usize {
                    return Err(RestError::bad_request(
                        "STRING_TOO_LONG",
                        format!(
                            "{}: data value too large: {} (max length={})",
                            field.label,
                            text.chars().take(40).collect::<String>(),
                            field.length
                        ),
                    )
                    .with_fields(vec![field.name.to_string()]));
                }
                Ok(Value::String(text))
            }
        }
    }
}

/// Parses the datetime forms clients send (`Z`, `+00:00`, `+0000`, with or without millis).
pub fn parse_datetime(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"] {
        if let Ok(time) = DateTime::parse_from_str(text, format) {
            return Some(time.with_timezone(&Utc));
        }
    }
    None
}

fn json_token_name(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "VALUE_STRING",
        Value::Number(_) => "VALUE_NUMBER_INT",
        Value::Bool(true) => "VALUE_TRUE",
        Value::Bool(false) => "VALUE_FALSE",
        Value::Array(_) => "START_ARRAY",
        Value::Object(_) => "START_OBJECT",
        Value::Null => "VALUE_NULL",
    }
}

fn looks_like_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !text.chars().any(char::is_whitespace)
}

fn is_blank(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(text) => text.trim().is_empty(),
        _ => false,
    }
}

/// Fields Salesforce computes: full names, closed flags, closed dates.
fn derive_fields(record: &mut Record, before: Option<&Record>, now: DateTime<Utc>) {
    match record.sobject {
        "Contact" | "Lead" | "User" => {
            let first = record
                .get("FirstName")
                .as_str()
                .unwrap_or_default()
                .to_string();
            let last = record
                .get("LastName")
                .as_str()
                .unwrap_or_default()
                .to_string();
            let name = [first.as_str(), last.as_str()]
                .iter()
                .filter(|part| !part.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(" ");
            record.fields.insert("Name", Value::String(name));
        }
        "Case" => {
            let closed = record.get("Status").as_str() == Some("Closed");
            let was_closed =
                before.is_some_and(|before| before.get("IsClosed") == &Value::Bool(true));
            record.fields.insert("IsClosed", Value::Bool(closed));
            if closed && !was_closed {
                record
                    .fields
                    .insert("ClosedDate", Value::String(format_datetime(now)));
            } else if !closed {
                record.fields.insert("ClosedDate", Value::Null);
            }
        }
        "Task" => {
            let closed = record.get("Status").as_str() == Some("Completed");
            record.fields.insert("IsClosed", Value::Bool(closed));
        }
        _ => {}
    }
}
