//! SOSL and parameterized search: `FIND {…} [IN … FIELDS] [RETURNING …] [LIMIT n]` over the
//! store's text fields, with the digit-based phone matching CTI lookups rely on.
//!
//! Term semantics: case-insensitive; words are ANDed unless joined by `OR` (or `AND NOT`);
//! `"a b"` is a phrase; `*` and `?` are wildcards; `\` escapes a reserved character. Stored
//! values and search words are split into tokens on spaces, punctuation and changes between
//! letters and digits, and a word matches a run of consecutive tokens. A term made only of
//! digits and phone punctuation (`+1 (555) 555-0100`) is one phone number: on phone fields
//! it matches by digits (see [`PhoneMatch`]). Results keep insertion order per object (no
//! relevance ranking) and follow the RETURNING order across objects.
//!
//! Errors: structural SOSL errors are `MALFORMED_SEARCH` in the caret form with
//! `Malformed search token: X` (as Salesforce's recorded `IN ALL TYPE` error); errors inside
//! a RETURNING `WHERE`/`ORDER BY` use SOQL's wording but the `MALFORMED_SEARCH` code.
//! Not supported: `WITH …` clauses, `USING`, `UPDATE TRACKING`, snippets, spell correction.

mod execute;
#[cfg(test)]
mod fixture;
mod parameterized;
mod parser;
mod phone;
mod term;

use serde_json::Value;

pub use execute::SearchOptions;
pub use parameterized::{ParameterizedSearch, SobjectSpec, parameterized};
pub use phone::PhoneMatch;

use crate::error::RestError;
use crate::schema::Schema;
use crate::store::Store;

/// Runs a SOSL statement; returns the flattened `searchRecords` list.
pub fn search(
    sosl: &str,
    schema: &Schema,
    store: &Store,
    options: &SearchOptions,
) -> Result<Vec<Value>, RestError> {
    let plan = parser::parse_statement(sosl, schema).map_err(parser::as_search_error)?;
    Ok(execute::execute(&plan, schema, store, options))
}
