//! Salesforce records to the flat map of strings Amazon Connect accepts.
//!
//! Rules:
//! - `attributes` is dropped at every level.
//! - Parent relationships become dotted keys: `Account.Name`, `Account.Owner.Name`.
//! - Child relationship results and other arrays get the element index: `Contacts.records.0.Name`,
//!   beside `Contacts.totalSize` and `Contacts.done`; a parent without children has `Contacts` = `""`.
//! - Aggregate results keep Salesforce's keys: grouped fields by name, `expr0`, … or the alias.
//! - Strings are copied; numbers and booleans are rendered as JSON renders them (`3`, `2.5`,
//!   `true`); `null` becomes the empty string, so every selected field has a key.
//! - Several records become `sf_records_<index>_<key>`, index from 0.

use std::collections::BTreeMap;

use serde_json::Value;

/// What the function returns: a flat JSON object of strings.
pub type Output = BTreeMap<String, String>;

/// The key prefix of record `index` in a multi-record result.
pub fn record_prefix(index: usize) -> String {
    format!("sf_records_{index}_")
}

/// Adds the fields of `record` to `output`, each key prefixed with `prefix`.
pub fn flatten_record(record: &Value, prefix: &str, output: &mut Output) {
    if let Value::Object(fields) = record {
        for (name, value) in fields {
            if name == "attributes" {
                continue;
            }
            flatten_value(value, &format!("{prefix}{name}"), output);
        }
    }
}

fn flatten_value(value: &Value, key: &str, output: &mut Output) {
    match value {
        Value::Object(fields) => {
            for (name, value) in fields {
                if name == "attributes" {
                    continue;
                }
                flatten_value(value, &format!("{key}.{name}"), output);
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                flatten_value(item, &format!("{key}.{index}"), output);
            }
        }
        Value::Null => {
            output.insert(key.to_owned(), String::new());
        }
        Value::Bool(flag) => {
            output.insert(key.to_owned(), flag.to_string());
        }
        Value::Number(number) => {
            output.insert(key.to_owned(), number.to_string());
        }
        Value::String(text) => {
            output.insert(key.to_owned(), text.clone());
        }
    }
}

/// Every record as `sf_records_<i>_<key>`, plus `sf_count`.
pub fn all_records(records: &[Value]) -> Output {
    let mut output = Output::new();
    for (index, record) in records.iter().enumerate() {
        flatten_record(record, &record_prefix(index), &mut output);
    }
    output.insert("sf_count".into(), records.len().to_string());
    output
}

/// The first record's fields (if any), plus `sf_count`.
pub fn first_record(records: &[Value]) -> Output {
    let mut output = Output::new();
    if let Some(record) = records.first() {
        flatten_record(record, "", &mut output);
    }
    output.insert("sf_count".into(), records.len().to_string());
    output
}

/// The record's fields when exactly one matched, plus `sf_count` either way.
pub fn only_record(records: &[Value]) -> Output {
    let mut output = Output::new();
    if let [record] = records {
        flatten_record(record, "", &mut output);
    }
    output.insert("sf_count".into(), records.len().to_string());
    output
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pairs(output: &Output) -> Vec<(&str, &str)> {
        output
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
            .collect()
    }

    #[test]
    fn records_flatten_to_strings_without_attributes() {
        let record = json!({
            "attributes": {"type": "Contact", "url": "/services/data/v62.0/sobjects/Contact/003"},
            "Id": "003000000000001AAA",
            "Name": "Ada Lovelace",
            "Email": null,
            "HasOptedOutOfEmail": false,
            "NumberOfEmployees": 12,
            "AnnualRevenue": 2.5,
            "Account": {
                "attributes": {"type": "Account", "url": "/x"},
                "Name": "Acme",
                "Owner": {"attributes": {"type": "User"}, "Name": "Demo User"}
            },
            "ReportsTo": null,
            "Cases": {"totalSize": 1, "done": true, "records": [
                {"attributes": {"type": "Case"}, "Subject": "Printer"}
            ]},
            "Tags": [],
            "Empty": {}
        });
        let mut output = Output::new();
        flatten_record(&record, "", &mut output);
        assert_eq!(
            pairs(&output),
            vec![
                ("Account.Name", "Acme"),
                ("Account.Owner.Name", "Demo User"),
                ("AnnualRevenue", "2.5"),
                ("Cases.done", "true"),
                ("Cases.records.0.Subject", "Printer"),
                ("Cases.totalSize", "1"),
                ("Email", ""),
                ("HasOptedOutOfEmail", "false"),
                ("Id", "003000000000001AAA"),
                ("Name", "Ada Lovelace"),
                ("NumberOfEmployees", "12"),
                ("ReportsTo", ""),
            ]
        );
    }

    #[test]
    fn result_shapes_follow_the_operation() {
        let one =
            json!({"attributes": {"type": "Case"}, "Id": "500A", "Account": {"Name": "Acme"}});
        let two = json!({"attributes": {"type": "Case"}, "Id": "500B", "Account": null});
        let records = vec![one.clone(), two];
        assert_eq!(
            pairs(&all_records(&records)),
            vec![
                ("sf_count", "2"),
                ("sf_records_0_Account.Name", "Acme"),
                ("sf_records_0_Id", "500A"),
                ("sf_records_1_Account", ""),
                ("sf_records_1_Id", "500B"),
            ]
        );
        assert_eq!(
            pairs(&first_record(&records)),
            vec![("Account.Name", "Acme"), ("Id", "500A"), ("sf_count", "2")]
        );
        assert_eq!(pairs(&only_record(&records)), vec![("sf_count", "2")]);
        assert_eq!(
            pairs(&only_record(&[one])),
            vec![("Account.Name", "Acme"), ("Id", "500A"), ("sf_count", "1")]
        );
        assert_eq!(pairs(&all_records(&[])), vec![("sf_count", "0")]);
        assert_eq!(pairs(&first_record(&[])), vec![("sf_count", "0")]);
    }
}
