//! Reads the Amazon Connect event: `Details.Parameters`, a flat map of strings, within limits.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::InvokeError;

/// The most parameters one event may carry.
pub const MAX_PARAMETERS: usize = 100;
/// The longest parameter value, in bytes (Connect itself caps attributes well below this).
pub const MAX_VALUE_BYTES: usize = 32 * 1024;
/// The longest parameter name, in bytes.
pub const MAX_KEY_BYTES: usize = 256;

/// `Details.Parameters`, checked: every value a string, within the limits above.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parameters {
    values: BTreeMap<String, String>,
}

impl Parameters {
    /// Reads the parameters of a Connect event (`{"Details": {"Parameters": {...}}}`). Only
    /// `Details.Parameters` matters; `ContactData` and the rest are ignored.
    pub fn from_event(event: &Value) -> Result<Self, InvokeError> {
        let Value::Object(event) = event else {
            return Err(InvokeError::InvalidEvent(format!(
                "the event must be a JSON object, got {}",
                kind(event)
            )));
        };
        let details = match event.get("Details") {
            Some(Value::Object(details)) => details,
            Some(other) => {
                return Err(InvokeError::InvalidEvent(format!(
                    "Details must be an object, got {}",
                    kind(other)
                )));
            }
            None => {
                return Err(InvokeError::InvalidEvent(
                    "the event has no Details; expected the Amazon Connect shape \
                     {\"Details\": {\"Parameters\": {...}}}"
                        .into(),
                ));
            }
        };
        let parameters = match details.get("Parameters") {
            Some(Value::Object(parameters)) => parameters,
            Some(other) => {
                return Err(InvokeError::InvalidEvent(format!(
                    "Details.Parameters must be an object of strings, got {}",
                    kind(other)
                )));
            }
            None => {
                return Err(InvokeError::InvalidEvent(
                    "the event has no Details.Parameters".into(),
                ));
            }
        };
        if parameters.len() > MAX_PARAMETERS {
            return Err(InvokeError::InvalidEvent(format!(
                "Details.Parameters has {} entries; at most {MAX_PARAMETERS} are accepted",
                parameters.len()
            )));
        }
        let mut values = BTreeMap::new();
        for (key, value) in parameters {
            if key.is_empty() || key.len() > MAX_KEY_BYTES {
                return Err(InvokeError::InvalidEvent(format!(
                    "parameter names must have 1 to {MAX_KEY_BYTES} bytes"
                )));
            }
            let Value::String(value) = value else {
                return Err(InvokeError::InvalidEvent(format!(
                    "parameter {} must be a string (Amazon Connect sends strings), got {}",
                    shorten(key),
                    kind(value)
                )));
            };
            if value.len() > MAX_VALUE_BYTES {
                return Err(InvokeError::InvalidParameter {
                    name: shorten(key),
                    reason: format!(
                        "the value has {} bytes; at most {MAX_VALUE_BYTES} are accepted",
                        value.len()
                    ),
                });
            }
            values.insert(key.clone(), value.clone());
        }
        Ok(Self { values })
    }

    /// Builds parameters from pairs (tests and internal use); no limits are checked.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            values: pairs
                .into_iter()
                .map(|(key, value)| (key.to_owned(), value.to_owned()))
                .collect(),
        }
    }

    /// The value of `name`, if present (possibly empty).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The value of `name`, which `operation` requires: absent or blank is
    /// [`InvokeError::MissingParameter`].
    pub fn required(&self, name: &str, operation: &str) -> Result<&str, InvokeError> {
        match self.get(name) {
            Some(value) if !value.trim().is_empty() => Ok(value),
            _ => Err(InvokeError::MissingParameter {
                name: name.to_owned(),
                operation: operation.to_owned(),
            }),
        }
    }

    /// The value of `name` unless it is absent or blank.
    pub fn optional(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|value| !value.trim().is_empty())
    }

    /// Every parameter, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A caller-supplied name or value for an error message: quoted, at most 64 characters.
pub(crate) fn shorten(value: &str) -> String {
    const LIMIT: usize = 64;
    if value.chars().count() <= LIMIT {
        format!("{value:?}")
    } else {
        let head: String = value.chars().take(LIMIT).collect();
        format!("{head:?}...")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn connect_events_yield_their_parameters() -> Result<(), InvokeError> {
        let event = json!({
            "Details": {
                "ContactData": {"CustomerEndpoint": {"Address": "+441122334455"}},
                "Parameters": {"sf_operation": "phoneLookup", "sf_phone": "+441122334455"}
            },
            "Name": "ContactFlowEvent"
        });
        let parameters = Parameters::from_event(&event)?;
        assert_eq!(parameters.get("sf_operation"), Some("phoneLookup"));
        assert_eq!(parameters.len(), 2);
        Ok(())
    }

    #[test]
    fn malformed_events_are_invalid_events() {
        let too_many: serde_json::Map<String, Value> = (0..=MAX_PARAMETERS)
            .map(|index| (format!("p{index}"), json!("x")))
            .collect();
        let cases = [
            (json!([]), "InvalidEvent"),
            (json!("Details"), "InvalidEvent"),
            (json!({}), "InvalidEvent"),
            (json!({"Details": null}), "InvalidEvent"),
            (json!({"Details": {}}), "InvalidEvent"),
            (json!({"Details": {"Parameters": []}}), "InvalidEvent"),
            (json!({"Details": {"Parameters": {"a": 1}}}), "InvalidEvent"),
            (
                json!({"Details": {"Parameters": {"a": null}}}),
                "InvalidEvent",
            ),
            (
                json!({"Details": {"Parameters": {"a": {"b": "c"}}}}),
                "InvalidEvent",
            ),
            (
                json!({"Details": {"Parameters": {"": "x"}}}),
                "InvalidEvent",
            ),
            (json!({"Details": {"Parameters": too_many}}), "InvalidEvent"),
            (
                json!({"Details": {"Parameters": {"a": "x".repeat(MAX_VALUE_BYTES + 1)}}}),
                "InvalidParameter",
            ),
        ];
        for (event, expected) in cases {
            let error = Parameters::from_event(&event).map(|_| ());
            assert_eq!(
                error.map_err(|error| error.error_type()),
                Err(expected),
                "{event}"
            );
        }
    }
}
