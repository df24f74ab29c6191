//! The search plan the SOSL parser and parameterized search both build (which objects,
//! fields and limits), and running it over the store.

use serde_json::Value;

use super::phone::PhoneMatch;
use super::term::{Term, term_matches};
use crate::schema::{FieldDef, FieldType, ObjectDef, Schema};
use crate::soql::{self, Condition, FieldPath, Selection};
use crate::store::{Record, Store};

/// Per-request settings of a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchOptions {
    /// The API version of the request URL, without the leading `v` (`"62.0"`).
    pub api_version: String,
    pub phone_match: PhoneMatch,
}

/// Salesforce caps search results at 2,000 rows.
pub(super) const MAX_RESULTS: usize = 2000;

/// SOSL's field groups (`IN … FIELDS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FieldGroup {
    /// Every text field, phones included. `SIDEBAR FIELDS` is treated the same.
    All,
    Name,
    Email,
    Phone,
}

impl FieldGroup {
    pub(super) fn parse(word: &str) -> Option<Self> {
        match word.trim().to_ascii_uppercase().as_str() {
            "ALL" | "SIDEBAR" => Some(Self::All),
            "NAME" => Some(Self::Name),
            "EMAIL" => Some(Self::Email),
            "PHONE" => Some(Self::Phone),
            _ => None,
        }
    }

    fn includes(self, field: &FieldDef) -> bool {
        match self {
            Self::All => field.field_type.is_text(),
            Self::Name => field.name_field,
            Self::Email => field.field_type == FieldType::Email,
            Self::Phone => field.field_type == FieldType::Phone,
        }
    }
}

/// One object to search and how to return its rows.
pub(super) struct Target<'s> {
    pub(super) object: &'s ObjectDef,
    pub(super) selection: Selection,
    pub(super) condition: Option<Condition>,
    pub(super) order: Vec<soql::OrderItem>,
    pub(super) limit: Option<usize>,
    pub(super) offset: usize,
}

/// What to search for, where, and how many rows to return.
pub(super) struct Plan<'s> {
    pub(super) term: Term,
    pub(super) group: FieldGroup,
    pub(super) targets: Vec<Target<'s>>,
    pub(super) limit: usize,
}

/// Every searchable object, returning only `Id` (no RETURNING clause, no `sobjects`).
pub(super) fn all_searchable(schema: &Schema) -> Vec<Target<'_>> {
    schema
        .objects
        .iter()
        .filter(|object| object.searchable)
        .map(|object| Target {
            object,
            selection: Selection::new(&[FieldPath::id()]),
            condition: None,
            order: Vec::new(),
            limit: None,
            offset: 0,
        })
        .collect()
}

/// Runs a plan; returns the flattened `searchRecords` list.
pub(super) fn execute(
    plan: &Plan,
    schema: &Schema,
    store: &Store,
    options: &SearchOptions,
) -> Vec<Value> {
    let mut results = Vec::new();
    for target in &plan.targets {
        if results.len() >= plan.limit {
            break;
        }
        let fields: Vec<&FieldDef> = target
            .object
            .fields
            .iter()
            .filter(|field| plan.group.includes(field))
            .collect();
        let mut rows: Vec<&Record> = store
            .records_of(target.object.name)
            .filter(|record| !record.deleted)
            .filter(|record| term_matches(&plan.term, record, &fields, options.phone_match))
            .filter(|record| {
                target
                    .condition
                    .as_ref()
                    .is_none_or(|condition| soql::matches(condition, record, schema, store))
            })
            .collect();
        soql::sort_records(&mut rows, &target.order, schema, store);
        let per_object = target.limit.unwrap_or(MAX_RESULTS).min(MAX_RESULTS);
        for record in rows.into_iter().skip(target.offset).take(per_object) {
            if results.len() >= plan.limit {
                break;
            }
            results.push(soql::render_record(
                record,
                &target.selection,
                schema,
                store,
                &options.api_version,
            ));
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::sosl::fixture::{options, org, run};
    use crate::sosl::{PhoneMatch, search};

    #[test]
    fn returning_clauses_filter_sort_and_limit() {
        let org = org();
        let cases: &[(&str, &[&str])] = &[
            (
                "FIND {555555*} IN PHONE FIELDS RETURNING Contact(Name WHERE Account.Name != null ORDER BY Name DESC LIMIT 1)",
                &["Contact:Bob O'Brien"],
            ),
            (
                "FIND {555555*} IN PHONE FIELDS RETURNING Contact(Name ORDER BY Name DESC OFFSET 1)",
                &["Contact:Bob O'Brien", "Contact:Ada Lovelace"],
            ),
            (
                "FIND {555555*} IN PHONE FIELDS RETURNING Contact(Name), Account(Name) LIMIT 2",
                &["Contact:Ada Lovelace", "Contact:Bob O'Brien"],
            ),
            (
                "FIND {555555*} IN PHONE FIELDS RETURNING Account(Name), Contact(Name) LIMIT 2",
                &["Account:Globex", "Contact:Ada Lovelace"],
            ),
        ];
        for (sosl, expected) in cases {
            let expected: Vec<String> = expected.iter().map(|label| label.to_string()).collect();
            assert_eq!(run(&org, sosl, PhoneMatch::Digits), Ok(expected), "{sosl}");
        }
    }

    #[test]
    fn results_carry_attributes_and_only_the_selected_fields() {
        let org = org();
        let ada = org.id("ada");
        let acme = org.id("acme");
        let url = |object: &str, id: &str| format!("/services/data/v62.0/sobjects/{object}/{id}");
        let found = search(
            "FIND {Lovelace}",
            &org.schema,
            &org.store,
            &options(PhoneMatch::Digits),
        )
        .map_err(|error| error.to_string());
        assert_eq!(
            found,
            Ok(vec![
                json!({"attributes": {"type": "Contact", "url": url("Contact", &ada)}, "Id": ada})
            ])
        );
        let found = search(
            "FIND {Lovelace} RETURNING Contact(firstname, Account.Name)",
            &org.schema,
            &org.store,
            &options(PhoneMatch::Digits),
        )
        .map_err(|error| error.to_string());
        let expected = json!({
            "attributes": {"type": "Contact", "url": url("Contact", &ada)},
            "FirstName": "Ada",
            "Account": {"attributes": {"type": "Account", "url": url("Account", &acme)}, "Name": "Acme"},
        });
        assert_eq!(found, Ok(vec![expected]));
    }
}
