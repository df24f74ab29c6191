//! Test helpers for the search tests: the demo org and shorthand for running a search and
//! labelling its results.

use serde_json::Value;

use super::{PhoneMatch, SearchOptions, search};
pub(super) use crate::soql::fixture::{Org, org};

pub(super) fn options(phone_match: PhoneMatch) -> SearchOptions {
    SearchOptions {
        api_version: "62.0".into(),
        phone_match,
    }
}

/// Each result as `Type:Name` (or `Type:Id` when Name was not returned).
pub(super) fn labels(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|record| {
            let kind = record["attributes"]["type"].as_str().unwrap_or_default();
            let name = record["Name"]
                .as_str()
                .or(record["Id"].as_str())
                .unwrap_or_default();
            format!("{kind}:{name}")
        })
        .collect()
}

pub(super) fn run(org: &Org, sosl: &str, phone_match: PhoneMatch) -> Result<Vec<String>, String> {
    search(sosl, &org.schema, &org.store, &options(phone_match))
        .map(|records| labels(&records))
        .map_err(|error| format!("{} {}", error.error_code, error.message))
}
