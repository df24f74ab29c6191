//! The phone-number matching rule ([`PhoneMatch`]): how a search term that is only a phone
//! number matches the digits of stored phone values.

use crate::soql::Wildcard;

/// How a phone-number term matches stored phone values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PhoneMatch {
    /// Digits only, ignoring formatting and extensions; a 1–3 digit country code on either
    /// side is tolerated (`+44 11 2233 4455` matches `1122334455`). Not Salesforce-documented:
    /// it is what CTI integrations that search national numbers need.
    #[default]
    Digits,
    /// The digit strings must be identical.
    Exact,
}

/// A search term that is a phone number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PhonePattern {
    digits: String,
    /// A trailing `*`: the digits are a prefix.
    prefix: bool,
    /// Written with a leading `+`, so its first 1–3 digits may be a country code.
    international: bool,
}

/// The digits of a term made only of digits and phone punctuation, with an optional
/// trailing `*`.
pub(super) fn phone_pattern(chars: &[Wildcard]) -> Option<PhonePattern> {
    let (prefix, body) = match chars.split_last() {
        Some((Wildcard::Any, body)) => (true, body),
        _ => (false, chars),
    };
    let mut digits = String::new();
    for c in body {
        match c {
            Wildcard::Literal(c) if c.is_ascii_digit() => digits.push(*c),
            Wildcard::Literal(c) if c.is_whitespace() || "+-().".contains(*c) => {}
            _ => return None,
        }
    }
    let international = body
        .iter()
        .find(|c| !matches!(c, Wildcard::Literal(c) if c.is_whitespace()))
        .is_some_and(|c| *c == Wildcard::Literal('+'));
    (!digits.is_empty()).then_some(PhonePattern {
        digits,
        prefix,
        international,
    })
}

/// A stored phone value's digits, without any extension (`x123`, `ext. 123`).
fn phone_digits(value: &str) -> String {
    let end = value
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(value.len());
    value[..end].chars().filter(char::is_ascii_digit).collect()
}

/// Whether `longer` is `shorter` with a 1–3 digit country code in front.
fn with_country_code(longer: &str, shorter: &str) -> bool {
    longer.len() > shorter.len() && longer.len() - shorter.len() <= 3 && longer.ends_with(shorter)
}

/// Digit strings a number may be written as once a possible country code is dropped: only
/// for numbers written with `+`, or 11-digit NANP numbers starting with 1.
fn national_forms(digits: &str, international: bool) -> Vec<&str> {
    let mut forms = vec![digits];
    if international {
        forms.extend(
            (1..=3)
                .filter_map(|skip| digits.get(skip..))
                .filter(|rest| !rest.is_empty()),
        );
    } else if digits.len() == 11 && digits.starts_with('1') {
        forms.extend(digits.get(1..));
    }
    forms
}

pub(super) fn phone_matches(stored: &str, pattern: &PhonePattern, mode: PhoneMatch) -> bool {
    let digits = phone_digits(stored);
    let term = pattern.digits.as_str();
    if digits.is_empty() {
        return false;
    }
    match (mode, pattern.prefix) {
        (PhoneMatch::Exact, false) => digits == term,
        (PhoneMatch::Exact, true) => digits.starts_with(term),
        (PhoneMatch::Digits, false) => {
            digits == term || with_country_code(&digits, term) || with_country_code(term, &digits)
        }
        (PhoneMatch::Digits, true) => {
            let stored_international = stored.trim_start().starts_with('+');
            national_forms(&digits, stored_international)
                .iter()
                .any(|form| form.starts_with(term))
                || national_forms(term, pattern.international)
                    .iter()
                    .any(|form| !form.is_empty() && digits.starts_with(form))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sosl::fixture::{org, run};

    #[test]
    fn phone_search_matches_every_demo_format_by_digits() {
        let org = org();
        let returning = "IN PHONE FIELDS RETURNING Contact(Name), Account(Name), Lead(Name)";
        // (term, mode, expected matches in RETURNING order)
        let cases: &[(&str, PhoneMatch, &[&str])] = &[
            (
                "1122334455",
                PhoneMatch::Digits,
                &["Contact:Ada Lovelace", "Account:Acme"],
            ),
            (
                "441122334455",
                PhoneMatch::Digits,
                &["Contact:Ada Lovelace", "Account:Acme"],
            ),
            (
                "\\+441122334455",
                PhoneMatch::Digits,
                &["Contact:Ada Lovelace", "Account:Acme"],
            ),
            (
                "+441122334455",
                PhoneMatch::Digits,
                &["Contact:Ada Lovelace", "Account:Acme"],
            ),
            (
                "+44 11 2233 4455",
                PhoneMatch::Digits,
                &["Contact:Ada Lovelace", "Account:Acme"],
            ),
            ("5555550100", PhoneMatch::Digits, &["Account:Globex"]),
            ("15555550100", PhoneMatch::Digits, &["Account:Globex"]),
            ("+1 (555) 555-0100", PhoneMatch::Digits, &["Account:Globex"]),
            ("555-555-0100", PhoneMatch::Digits, &["Account:Globex"]),
            ("5555550101", PhoneMatch::Digits, &["Contact:Ada Lovelace"]),
            (
                "555.555.0101",
                PhoneMatch::Digits,
                &["Contact:Ada Lovelace"],
            ),
            ("5555550102", PhoneMatch::Digits, &["Contact:Bob O'Brien"]),
            ("5555550103", PhoneMatch::Digits, &["Contact:Carol Danvers"]),
            (
                "15555550103",
                PhoneMatch::Digits,
                &["Contact:Carol Danvers"],
            ),
            ("5555550199", PhoneMatch::Digits, &["Lead:Lou Lead"]),
            ("5555550999", PhoneMatch::Digits, &[]),
            ("22334455", PhoneMatch::Digits, &[]),
            (
                "555555*",
                PhoneMatch::Digits,
                &[
                    "Contact:Ada Lovelace",
                    "Contact:Bob O'Brien",
                    "Contact:Carol Danvers",
                    "Account:Globex",
                    "Lead:Lou Lead",
                ],
            ),
            (
                "+1555555010*",
                PhoneMatch::Digits,
                &[
                    "Contact:Ada Lovelace",
                    "Contact:Bob O'Brien",
                    "Contact:Carol Danvers",
                    "Account:Globex",
                ],
            ),
            (
                "112233*",
                PhoneMatch::Digits,
                &["Contact:Ada Lovelace", "Account:Acme"],
            ),
            ("5555550101", PhoneMatch::Exact, &["Contact:Ada Lovelace"]),
            ("5555550103", PhoneMatch::Exact, &[]),
            ("1122334455", PhoneMatch::Exact, &[]),
            ("15555550103", PhoneMatch::Exact, &["Contact:Carol Danvers"]),
            (
                "555555*",
                PhoneMatch::Exact,
                &[
                    "Contact:Ada Lovelace",
                    "Contact:Bob O'Brien",
                    "Account:Globex",
                    "Lead:Lou Lead",
                ],
            ),
        ];
        for (term, mode, expected) in cases {
            let sosl = format!("FIND {{{term}}} {returning}");
            let expected: Vec<String> = expected.iter().map(|label| label.to_string()).collect();
            assert_eq!(run(&org, &sosl, *mode), Ok(expected), "{sosl} {mode:?}");
        }
    }

    #[test]
    fn phone_digits_drop_formatting_and_extensions() {
        let cases: &[(&str, &str)] = &[
            ("+44 11 2233 4455", "441122334455"),
            ("(555) 555-0100", "5555550100"),
            ("555.555.0101", "5555550101"),
            ("+1 555-555-0103", "15555550103"),
            ("555-555-0199 x12", "5555550199"),
            ("555-555-0199 ext. 12", "5555550199"),
            ("", ""),
        ];
        for (stored, digits) in cases {
            assert_eq!(phone_digits(stored), *digits, "{stored}");
        }
    }
}
