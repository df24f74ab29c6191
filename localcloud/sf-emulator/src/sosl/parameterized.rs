//! Parameterized search (`/parameterizedSearch`): the request, from a POSTed body or GET
//! parameters, and turning it into a search plan.

use serde_json::Value;

use super::execute::{
    FieldGroup, MAX_RESULTS, Plan, SearchOptions, Target, all_searchable, execute,
};
use super::parser::as_search_error;
use super::term::parse_term;
use crate::error::RestError;
use crate::schema::Schema;
use crate::soql::{self, FieldPath, Selection};
use crate::store::Store;

/// The body of a parameterized search, as POSTed (camelCase keys) or built from GET
/// parameters by [`ParameterizedSearch::from_query_pairs`].
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParameterizedSearch {
    /// The search text; SOSL clauses are not interpreted. Missing is an error at search time.
    #[serde(default)]
    pub q: String,
    /// Fields returned for every object without its own `fields`.
    pub fields: Option<Vec<String>>,
    pub sobjects: Option<Vec<SobjectSpec>>,
    /// `ALL` (default), `NAME`, `EMAIL`, `PHONE` or `SIDEBAR`, case-insensitive.
    pub r#in: Option<String>,
    pub overall_limit: Option<usize>,
    pub default_limit: Option<usize>,
}

/// One entry of a parameterized search's `sobjects`.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
pub struct SobjectSpec {
    pub name: String,
    pub fields: Option<Vec<String>>,
    pub r#where: Option<String>,
    pub limit: Option<usize>,
}

impl ParameterizedSearch {
    /// Builds a request from GET parameters: `q`, `sobject` (repeatable or a comma list),
    /// `in`, `fields`, `overallLimit`, `defaultLimit`, and per object `Account.fields`,
    /// `Account.limit`, `Account.where` (which apply to objects named in `sobject`).
    pub fn from_query_pairs(pairs: &[(String, String)]) -> Result<Self, RestError> {
        let mut request = Self::default();
        let mut names: Vec<String> = Vec::new();
        let mut per_object: Vec<(&str, String, &str)> = Vec::new();
        for (key, value) in pairs {
            match key.as_str() {
                "q" => request.q = value.clone(),
                "sobject" | "sobjects" => {
                    for name in split_list(value) {
                        if !names.iter().any(|known| known.eq_ignore_ascii_case(&name)) {
                            names.push(name);
                        }
                    }
                }
                "in" => request.r#in = Some(value.clone()),
                "fields" => request.fields = Some(split_list(value)),
                "overallLimit" => request.overall_limit = Some(parse_number(key, value)?),
                "defaultLimit" => request.default_limit = Some(parse_number(key, value)?),
                other => {
                    if let Some((object, setting)) = other.rsplit_once('.') {
                        per_object.push((object, setting.to_ascii_lowercase(), value));
                    }
                }
            }
        }
        let mut sobjects = Vec::new();
        for name in names {
            let mut spec = SobjectSpec {
                name,
                ..SobjectSpec::default()
            };
            for (object, setting, value) in &per_object {
                if !object.eq_ignore_ascii_case(&spec.name) {
                    continue;
                }
                match setting.as_str() {
                    "fields" => spec.fields = Some(split_list(value)),
                    "limit" => spec.limit = Some(parse_number(&format!("{object}.limit"), value)?),
                    "where" => spec.r#where = Some((*value).to_string()),
                    _ => {}
                }
            }
            sobjects.push(spec);
        }
        if !sobjects.is_empty() {
            request.sobjects = Some(sobjects);
        }
        Ok(request)
    }
}

fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_string)
        .collect()
}

fn parse_number(name: &str, value: &str) -> Result<usize, RestError> {
    value.trim().parse().map_err(|_| {
        RestError::bad_request(
            "INVALID_SEARCH",
            format!("Invalid value for parameter {name}: {value}"),
        )
    })
}

/// Runs a parameterized search; returns the flattened `searchRecords` list.
pub fn parameterized(
    request: &ParameterizedSearch,
    schema: &Schema,
    store: &Store,
    options: &SearchOptions,
) -> Result<Vec<Value>, RestError> {
    if request.q.trim().is_empty() {
        return Err(RestError::bad_request(
            "MISSING_ARGUMENT",
            "Missing required parameter q",
        ));
    }
    let term = parse_term(&request.q)?;
    let group = match &request.r#in {
        None => FieldGroup::All,
        Some(scope) => FieldGroup::parse(scope).ok_or_else(|| {
            RestError::bad_request(
                "INVALID_SEARCH",
                format!("Invalid value for parameter in: {scope}. Use ALL, NAME, EMAIL, PHONE or SIDEBAR."),
            )
        })?,
    };
    let specs = request.sobjects.as_deref().unwrap_or_default();
    let targets = if specs.is_empty() {
        all_searchable(schema)
    } else {
        let mut targets = Vec::new();
        for spec in specs {
            let object = schema.object(spec.name.trim()).ok_or_else(|| {
                RestError::bad_request("INVALID_TYPE", soql::unsupported_type_message(&spec.name))
            })?;
            let names = spec.fields.as_ref().or(request.fields.as_ref());
            let paths = match names {
                Some(names) if !names.is_empty() => names
                    .iter()
                    .map(|name| soql::resolve_field(name, object, schema))
                    .collect::<Result<Vec<FieldPath>, RestError>>()?,
                _ => vec![FieldPath::id()],
            };
            let condition = match &spec.r#where {
                Some(text) if !text.trim().is_empty() => {
                    Some(soql::parse_condition(text, object, schema).map_err(as_search_error)?)
                }
                _ => None,
            };
            targets.push(Target {
                object,
                selection: Selection::new(&paths),
                condition,
                order: Vec::new(),
                limit: spec.limit.or(request.default_limit),
                offset: 0,
            });
        }
        targets
    };
    let limit = request
        .overall_limit
        .unwrap_or(MAX_RESULTS)
        .min(MAX_RESULTS);
    let plan = Plan {
        term,
        group,
        targets,
        limit,
    };
    Ok(execute(&plan, schema, store, options))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::sosl::PhoneMatch;
    use crate::sosl::fixture::{labels, options, org};

    #[test]
    fn parameterized_search_serves_the_cti_phone_lookup() {
        let org = org();
        let body = json!({"q": "1122334455", "sobjects": [{"name": "Contact"}], "fields": ["Id", "Name", "Email"]});
        let request: Result<ParameterizedSearch, String> =
            serde_json::from_value(body).map_err(|error| error.to_string());
        let Ok(request) = request else {
            panic!("{request:?}")
        };
        let found = parameterized(
            &request,
            &org.schema,
            &org.store,
            &options(PhoneMatch::Digits),
        )
        .map_err(|error| error.to_string());
        let ada = org.id("ada");
        let expected = json!({
            "attributes": {"type": "Contact", "url": format!("/services/data/v62.0/sobjects/Contact/{ada}")},
            "Id": ada, "Name": "Ada Lovelace", "Email": "ada@acme.com",
        });
        assert_eq!(found, Ok(vec![expected]));
    }

    #[test]
    fn parameterized_search_options_shape_the_results() {
        let org = org();
        let cases: Vec<(serde_json::Value, Result<Vec<&str>, &str>)> = vec![
            (
                json!({"q": "555555*", "in": "phone", "sobjects": [{"name": "Contact", "fields": ["Name"]}, {"name": "account", "fields": ["name"]}]}),
                Ok(vec![
                    "Contact:Ada Lovelace",
                    "Contact:Bob O'Brien",
                    "Contact:Carol Danvers",
                    "Account:Globex",
                ]),
            ),
            (
                json!({"q": "555555*", "in": "PHONE", "fields": ["Name"], "sobjects": [{"name": "Contact", "limit": 1}, {"name": "Lead"}]}),
                Ok(vec!["Contact:Ada Lovelace", "Lead:Lou Lead"]),
            ),
            (
                json!({"q": "555555*", "fields": ["Name"], "defaultLimit": 1, "sobjects": [{"name": "Contact"}, {"name": "Account"}]}),
                Ok(vec!["Contact:Ada Lovelace", "Account:Globex"]),
            ),
            (
                json!({"q": "555555*", "fields": ["Name"], "overallLimit": 2, "sobjects": [{"name": "Contact"}, {"name": "Account"}]}),
                Ok(vec!["Contact:Ada Lovelace", "Contact:Bob O'Brien"]),
            ),
            (
                json!({"q": "555555*", "sobjects": [{"name": "Contact", "fields": ["Name"], "where": "Account.Name = 'Globex'"}]}),
                Ok(vec!["Contact:Bob O'Brien"]),
            ),
            (
                json!({"q": "acme", "in": "NAME", "sobjects": [{"name": "Contact"}, {"name": "Account", "fields": ["Name"]}]}),
                Ok(vec!["Account:Acme"]),
            ),
            // Without sobjects every searchable object is searched and only Id comes back.
            (json!({"q": "Lovelace"}), Ok(vec!["Contact:ADA"])),
            // SOSL clauses are not interpreted: they are just more words to find.
            (
                json!({"q": "Lovelace RETURNING Account", "sobjects": [{"name": "Contact"}]}),
                Ok(vec![]),
            ),
            (json!({"fields": ["Name"]}), Err("MISSING_ARGUMENT")),
            (json!({"q": "  "}), Err("MISSING_ARGUMENT")),
            (json!({"q": "a"}), Err("MALFORMED_SEARCH")),
            (
                json!({"q": "acme", "in": "everything"}),
                Err("INVALID_SEARCH"),
            ),
            (
                json!({"q": "acme", "sobjects": [{"name": "Accountz"}]}),
                Err("INVALID_TYPE"),
            ),
            (
                json!({"q": "acme", "sobjects": [{"name": "Account", "fields": ["Bacon"]}]}),
                Err("INVALID_FIELD"),
            ),
            (
                json!({"q": "acme", "sobjects": [{"name": "Account", "where": "Name = "}]}),
                Err("MALFORMED_SEARCH"),
            ),
        ];
        let ada = org.id("ada");
        for (body, expected) in cases {
            let request: Result<ParameterizedSearch, String> =
                serde_json::from_value(body.clone()).map_err(|error| error.to_string());
            let Ok(request) = request else {
                panic!("{body}: {request:?}")
            };
            let found = parameterized(
                &request,
                &org.schema,
                &org.store,
                &options(PhoneMatch::Digits),
            )
            .map(|records| {
                labels(&records)
                    .into_iter()
                    .map(|label| label.replace(&ada, "ADA"))
                    .collect::<Vec<_>>()
            })
            .map_err(|error| error.error_code);
            let expected = expected.map(|labels| {
                labels
                    .iter()
                    .map(|label| label.to_string())
                    .collect::<Vec<_>>()
            });
            assert_eq!(found, expected, "{body}");
        }
    }

    #[test]
    fn get_parameters_build_the_same_request_as_a_post_body() {
        let pairs: Vec<(String, String)> = [
            ("q", "Lovelace"),
            ("sobject", "Contact,Account"),
            ("sobject", "Lead"),
            ("Contact.fields", "Id,Name"),
            ("contact.limit", "1"),
            ("Account.where", "Name = 'Acme'"),
            ("in", "NAME"),
            ("overallLimit", "5"),
            ("defaultLimit", "3"),
            ("fields", "Id"),
            ("unrelated", "x"),
        ]
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
        let request = ParameterizedSearch::from_query_pairs(&pairs).map_err(|e| e.to_string());
        let expected = ParameterizedSearch {
            q: "Lovelace".into(),
            fields: Some(vec!["Id".into()]),
            sobjects: Some(vec![
                SobjectSpec {
                    name: "Contact".into(),
                    fields: Some(vec!["Id".into(), "Name".into()]),
                    r#where: None,
                    limit: Some(1),
                },
                SobjectSpec {
                    name: "Account".into(),
                    fields: None,
                    r#where: Some("Name = 'Acme'".into()),
                    limit: None,
                },
                SobjectSpec {
                    name: "Lead".into(),
                    ..SobjectSpec::default()
                },
            ]),
            r#in: Some("NAME".into()),
            overall_limit: Some(5),
            default_limit: Some(3),
        };
        assert_eq!(request, Ok(expected));

        let bad = [("overallLimit".to_string(), "lots".to_string())];
        let error = ParameterizedSearch::from_query_pairs(&bad)
            .err()
            .map(|e| e.error_code);
        assert_eq!(error, Some("INVALID_SEARCH"));
    }
}
