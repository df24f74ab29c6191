//! Placeholder substitution for `query`, `queryOne`, `searchSOSL` and `searchOneSOSL`.
//!
//! As in the original, every parameter other than `sf_operation` and `query` is a placeholder:
//! its name, where it appears in the statement, is replaced by its value. Unlike the original
//! (a plain, repeated `str.replace`):
//!
//! - Names match as whole words only: a name made of letters, digits and `_` must not be
//!   preceded or followed by another such character, so `Id` does not match inside
//!   `AccountId`. Parameters whose names contain other characters are not placeholders.
//! - The statement is scanned once; at each position the longest matching name wins, and a
//!   substituted value is never scanned again (a value cannot smuggle in another placeholder).
//! - Values are escaped for where the placeholder stands in the statement:
//!   - inside a single-quoted literal: SOQL string escaping; after `LIKE` the wildcards
//!     `%` and `_` are escaped too;
//!   - inside a SOSL `{...}` search term: SOSL escaping (every reserved character, wildcards
//!     included, becomes literal);
//!   - anywhere else (bare): the value must be a record id, a number, a date or datetime
//!     literal, `true`/`false`/`null`, or a comma-separated list of field names; anything
//!     else is refused, since it could change the statement's structure.
//! - The statement must start with `SELECT` (SOQL) or `FIND` (SOSL) and its literals and
//!   braces must be closed.

use salesforce::safety::{
    escape_soql_like, escape_soql_string, escape_sosl, parse_field_list, validate_id,
};

use crate::error::InvokeError;

/// Which language the statement is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Soql,
    Sosl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    Bare,
    Literal { like: bool },
    SearchTerm,
}

/// Whether `name` can be a placeholder (letters, digits and `_`).
pub fn is_placeholder_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(is_word_char)
}

fn is_word_char(character: char) -> bool {
    character.is_ascii_alphanumeric() || character == '_'
}

/// Substitutes `values` (name, value) into `statement` (the `query` parameter).
pub fn substitute(
    statement: &str,
    values: &[(&str, &str)],
    language: Language,
) -> Result<String, InvokeError> {
    let mut placeholders: Vec<(Vec<char>, &str, &str)> = values
        .iter()
        .filter(|(name, _)| is_placeholder_name(name))
        .map(|(name, value)| (name.chars().collect(), *name, *value))
        .collect();
    // Longest first, so `CaseNumber2` wins over `CaseNumber` at the same position.
    placeholders.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(b.1)));

    let characters: Vec<char> = statement.chars().collect();
    let mut output = String::with_capacity(statement.len() + 32);
    let mut context = Context::Bare;
    let mut index = 0;
    while index < characters.len() {
        let character = characters[index];
        let at_word_start = index == 0 || !is_word_char(characters[index - 1]);
        if is_word_char(character) && at_word_start {
            let matched = placeholders.iter().find(|(name, _, _)| {
                characters[index..].starts_with(name)
                    && characters
                        .get(index + name.len())
                        .is_none_or(|next| !is_word_char(*next))
            });
            if let Some((name, key, value)) = matched {
                output.push_str(&escape_for(context, key, value)?);
                index += name.len();
                continue;
            }
        }
        match context {
            Context::Bare => match character {
                '\'' => {
                    context = Context::Literal {
                        like: preceded_by_like(&characters[..index]),
                    };
                }
                '{' if language == Language::Sosl => context = Context::SearchTerm,
                _ => {}
            },
            Context::Literal { .. } => match character {
                '\\' => {
                    output.push(character);
                    index += 1;
                    if let Some(escaped) = characters.get(index) {
                        output.push(*escaped);
                        index += 1;
                    }
                    continue;
                }
                '\'' => context = Context::Bare,
                _ => {}
            },
            Context::SearchTerm => match character {
                '\\' => {
                    output.push(character);
                    index += 1;
                    if let Some(escaped) = characters.get(index) {
                        output.push(*escaped);
                        index += 1;
                    }
                    continue;
                }
                '}' => context = Context::Bare,
                _ => {}
            },
        }
        output.push(character);
        index += 1;
    }
    match context {
        Context::Bare => {}
        Context::Literal { .. } => {
            return Err(InvokeError::invalid(
                "query",
                "the statement has an unterminated string literal",
            ));
        }
        Context::SearchTerm => {
            return Err(InvokeError::invalid(
                "query",
                "the statement has an unterminated {...} search term",
            ));
        }
    }
    let keyword = match language {
        Language::Soql => "SELECT",
        Language::Sosl => "FIND",
    };
    let starts_well = output
        .trim_start()
        .get(..keyword.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(keyword));
    if !starts_well {
        return Err(InvokeError::invalid(
            "query",
            format!("the statement must start with {keyword}"),
        ));
    }
    Ok(output)
}

/// Whether the text before an opening quote ends with the keyword `LIKE`.
fn preceded_by_like(before: &[char]) -> bool {
    let mut end = before.len();
    while end > 0 && before[end - 1].is_whitespace() {
        end -= 1;
    }
    let Some(start) = end.checked_sub(4) else {
        return false;
    };
    let word: String = before[start..end].iter().collect();
    word.eq_ignore_ascii_case("LIKE") && (start == 0 || !is_word_char(before[start - 1]))
}

fn escape_for(context: Context, name: &str, value: &str) -> Result<String, InvokeError> {
    match context {
        Context::Literal { like: false } => Ok(escape_soql_string(value)),
        Context::Literal { like: true } => Ok(escape_soql_like(value)),
        Context::SearchTerm => Ok(escape_sosl(value)),
        Context::Bare if is_safe_bare_value(value) => Ok(value.trim().to_owned()),
        Context::Bare => Err(InvokeError::invalid(
            name,
            "this placeholder stands outside quotes in the statement, where only a record id, \
             a number, a date, true/false/null or field names are accepted; put it inside \
             quotes to search for text",
        )),
    }
}

/// Values that cannot change a statement's structure when pasted outside quotes.
pub fn is_safe_bare_value(value: &str) -> bool {
    let value = value.trim();
    if value.is_empty() {
        return false;
    }
    validate_id(value).is_ok()
        || is_number(value)
        || is_date_or_datetime(value)
        || ["true", "false", "null"]
            .iter()
            .any(|word| value.eq_ignore_ascii_case(word))
        || parse_field_list(value).is_ok_and(|fields| fields.len() == value.split(',').count())
}

/// `-12`, `3.25`: an optional minus, up to 18 digits, an optional fraction.
pub fn is_number(value: &str) -> bool {
    let unsigned = value.strip_prefix('-').unwrap_or(value);
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    let digits = |text: &str| {
        !text.is_empty() && text.len() <= 18 && text.bytes().all(|b| b.is_ascii_digit())
    };
    digits(whole) && fraction.is_none_or(digits)
}

/// `2026-01-31`, `2026-01-31T10:00:00Z`, `2026-01-31T10:00:00.000+01:00`.
pub fn is_date_or_datetime(value: &str) -> bool {
    let (date, time) = match value.split_once('T') {
        Some((date, time)) => (date, Some(time)),
        None => (value, None),
    };
    chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok()
        && date.len() == 10
        && time.is_none_or(|_| chrono::DateTime::parse_from_rfc3339(value).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (statement, placeholder values, language, expected statement or parameter name)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Language, &'a str);

    #[test]
    fn placeholders_are_escaped_for_where_they_stand() {
        let cases: &[Case] = &[
            (
                "SELECT Id FROM Contact WHERE LastName = 'NAME'",
                &[("NAME", "O'Brien")],
                Language::Soql,
                r"SELECT Id FROM Contact WHERE LastName = 'O\'Brien'",
            ),
            (
                "SELECT Id FROM Contact WHERE LastName = 'NAME'",
                &[("NAME", r"x\' OR Name != \'")],
                Language::Soql,
                r"SELECT Id FROM Contact WHERE LastName = 'x\\\' OR Name != \\\''",
            ),
            (
                "SELECT Id FROM Contact WHERE Phone LIKE '%PHONE%'",
                &[("PHONE", "55_5%")],
                Language::Soql,
                r"SELECT Id FROM Contact WHERE Phone LIKE '%55\_5\%%'",
            ),
            (
                "SELECT Id, AccountId FROM Contact WHERE AccountId = ACCOUNT_ID AND Id != Id2",
                &[
                    ("ACCOUNT_ID", "001D000000IqhSLIAZ"),
                    ("Id2", "003RO0000035WQg"),
                ],
                Language::Soql,
                "SELECT Id, AccountId FROM Contact WHERE AccountId = 001D000000IqhSLIAZ AND Id != 003RO0000035WQg",
            ),
            (
                "SELECT Id FROM Case WHERE CaseNumber = 'CN' AND Subject = 'CN2' LIMIT N",
                &[("CN", "1"), ("CN2", "2"), ("N", "5")],
                Language::Soql,
                "SELECT Id FROM Case WHERE CaseNumber = '1' AND Subject = '2' LIMIT 5",
            ),
            (
                "SELECT FIELDS FROM Contact WHERE CreatedDate > SINCE",
                &[
                    ("FIELDS", "Id, Name, Account.Name"),
                    ("SINCE", "2026-01-01T00:00:00Z"),
                ],
                Language::Soql,
                "SELECT Id, Name, Account.Name FROM Contact WHERE CreatedDate > 2026-01-01T00:00:00Z",
            ),
            (
                // A value is never scanned again for other placeholders.
                "SELECT Id FROM Contact WHERE FirstName = 'A' AND LastName = 'B'",
                &[("A", "B"), ("B", "A")],
                Language::Soql,
                "SELECT Id FROM Contact WHERE FirstName = 'B' AND LastName = 'A'",
            ),
            (
                "FIND {CALLER} IN PHONE FIELDS RETURNING Contact(Id, Name WHERE LastName != 'CALLER')",
                &[("CALLER", "+44 11*")],
                Language::Sosl,
                r"FIND {\+44 11\*} IN PHONE FIELDS RETURNING Contact(Id, Name WHERE LastName != '+44 11*')",
            ),
            (
                "FIND {TERM} RETURNING Contact(Id)",
                &[("TERM", "x} RETURNING User(Id")],
                Language::Sosl,
                r"FIND {x\} RETURNING User\(Id} RETURNING Contact(Id)",
            ),
            (
                "select Id from Contact",
                &[("unused", "x"), ("bad-name", "y")],
                Language::Soql,
                "select Id from Contact",
            ),
        ];
        for (statement, values, language, expected) in cases {
            assert_eq!(
                substitute(statement, values, *language).as_deref(),
                Ok(*expected),
                "{statement}"
            );
        }
    }

    #[test]
    fn unsafe_statements_and_bare_values_are_refused() {
        let cases: &[Case] = &[
            (
                "SELECT Id FROM Contact WHERE Id = ID",
                &[("ID", "x' OR Id != null")],
                Language::Soql,
                "ID",
            ),
            (
                "SELECT Id FROM Contact WHERE Id = ID",
                &[("ID", "003000000000001 OR Id != null")],
                Language::Soql,
                "ID",
            ),
            (
                "SELECT Id FROM Contact LIMIT N",
                &[("N", "5; DELETE")],
                Language::Soql,
                "N",
            ),
            (
                "SELECT Id FROM Contact WHERE Id = ID",
                &[("ID", "")],
                Language::Soql,
                "ID",
            ),
            (
                "SELECT Id FROM Contact WHERE Name = 'x",
                &[],
                Language::Soql,
                "query",
            ),
            ("DELETE FROM Contact", &[], Language::Soql, "query"),
            ("SELECT Id FROM Contact", &[], Language::Sosl, "query"),
            ("FIND {abc RETURNING Contact", &[], Language::Sosl, "query"),
            (
                "FIND {x} RETURNING Contact(Id WHERE Name = NAME)",
                &[("NAME", "'a') , User(Id")],
                Language::Sosl,
                "NAME",
            ),
        ];
        for (statement, values, language, name) in cases {
            match substitute(statement, values, *language) {
                Err(InvokeError::InvalidParameter { name: actual, .. }) => {
                    assert_eq!(actual, *name, "{statement}");
                }
                other => panic!("{statement}: expected InvalidParameter, got {other:?}"),
            }
        }
    }

    #[test]
    fn bare_values_are_recognised() {
        let cases = [
            ("001D000000IqhSLIAZ", true),
            ("001D000000IqhSLXXX", false),
            ("42", true),
            ("-3.5", true),
            ("2026-02-28", true),
            ("2026-02-28T10:00:00Z", true),
            ("2026-02-28T10:00:00.000+01:00", true),
            ("2026-02-30", false),
            ("TRUE", true),
            ("Name", true),
            ("Id, Account.Name", true),
            ("Id,,Name", false),
            ("Id Name", false),
            ("1 OR 1", false),
            ("'x'", false),
            ("(Id)", false),
            ("", false),
        ];
        for (value, expected) in cases {
            assert_eq!(is_safe_bare_value(value), expected, "{value}");
        }
    }
}
