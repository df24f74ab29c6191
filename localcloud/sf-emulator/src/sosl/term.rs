//! Search terms (the text between SOSL's braces, or parameterized search's `q`): parsing
//! words, phrases, wildcards and `AND`/`OR`/`NOT`, and matching them against record fields.

use super::phone::{PhoneMatch, PhonePattern, phone_matches, phone_pattern};
use crate::error::RestError;
use crate::schema::{FieldDef, FieldType};
use crate::soql::{Wildcard, wildcard_match};
use crate::store::Record;

/// A parsed search term.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Term {
    Leaf(Leaf),
    All(Vec<Term>),
    Any(Vec<Term>),
    Not(Box<Term>),
}

/// One word or phrase: its tokens (lower-cased, with wildcards) and, when it looks like a
/// phone number, its digits.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Leaf {
    tokens: Vec<Vec<Wildcard>>,
    phone: Option<PhonePattern>,
}

/// One lexical element of a search term.
#[derive(Debug, Clone, PartialEq)]
enum TermToken {
    /// A word, and whether it was typed plainly (no escapes), so `AND`/`OR`/`NOT` are
    /// operators only when unescaped.
    Word(Vec<Wildcard>, Option<String>),
    Phrase(Vec<Wildcard>),
    Open,
    Close,
}

fn short_term() -> RestError {
    RestError::bad_request(
        "MALFORMED_SEARCH",
        "search term must be longer than one character",
    )
}

fn malformed_term(token: &str) -> RestError {
    RestError::bad_request(
        "MALFORMED_SEARCH",
        format!("Malformed search token: {token}"),
    )
}

/// Parses the text of a search term (between the braces, or parameterized search's `q`).
pub(super) fn parse_term(text: &str) -> Result<Term, RestError> {
    let whole = unescape(text);
    let significant = whole
        .iter()
        .filter(|c| matches!(c, Wildcard::Literal(c) if c.is_alphanumeric()))
        .count();
    if significant < 2 {
        return Err(short_term());
    }
    // A term that is just a phone number (`+1 (555) 555-0100`) is one word, not a group.
    if let Some(phone) = phone_pattern(&whole) {
        return Ok(Term::Leaf(Leaf {
            tokens: tokenize_pattern(&whole),
            phone: Some(phone),
        }));
    }
    let tokens = lex_term(text);
    let mut position = 0;
    let term = parse_or(&tokens, &mut position)?;
    match tokens.get(position) {
        None => Ok(term),
        Some(_) => Err(malformed_term(")")),
    }
}

/// The term's characters with escapes resolved and `*`/`?` as wildcards.
fn unescape(text: &str) -> Vec<Wildcard> {
    let mut chars = text.chars();
    let mut out = Vec::new();
    while let Some(c) = chars.next() {
        out.push(match c {
            '\\' => Wildcard::Literal(chars.next().unwrap_or('\\')),
            '*' => Wildcard::Any,
            '?' => Wildcard::One,
            c => Wildcard::Literal(c),
        });
    }
    out
}

fn lex_term(text: &str) -> Vec<TermToken> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut index = 0;
    while let Some(&c) = chars.get(index) {
        match c {
            _ if c.is_whitespace() => index += 1,
            '(' => {
                tokens.push(TermToken::Open);
                index += 1;
            }
            ')' => {
                tokens.push(TermToken::Close);
                index += 1;
            }
            '"' => {
                index += 1;
                let mut phrase = Vec::new();
                while let Some(&c) = chars.get(index) {
                    index += 1;
                    match c {
                        '"' => break,
                        '\\' => {
                            phrase
                                .push(Wildcard::Literal(chars.get(index).copied().unwrap_or('\\')));
                            index += 1;
                        }
                        '*' => phrase.push(Wildcard::Any),
                        '?' => phrase.push(Wildcard::One),
                        c => phrase.push(Wildcard::Literal(c)),
                    }
                }
                tokens.push(TermToken::Phrase(phrase));
            }
            _ => {
                let mut word = Vec::new();
                let mut plain = true;
                let begin = index;
                while let Some(&c) = chars.get(index) {
                    if c.is_whitespace() || matches!(c, '(' | ')' | '"') {
                        break;
                    }
                    index += 1;
                    match c {
                        '\\' => {
                            plain = false;
                            word.push(Wildcard::Literal(chars.get(index).copied().unwrap_or('\\')));
                            index += 1;
                        }
                        '*' => word.push(Wildcard::Any),
                        '?' => word.push(Wildcard::One),
                        c => word.push(Wildcard::Literal(c)),
                    }
                }
                let raw: String = chars.get(begin..index).unwrap_or_default().iter().collect();
                tokens.push(TermToken::Word(word, plain.then_some(raw)));
            }
        }
    }
    tokens
}

fn is_operator(token: Option<&TermToken>, operator: &str) -> bool {
    matches!(token, Some(TermToken::Word(_, Some(raw))) if raw.eq_ignore_ascii_case(operator))
}

/// `a OR b`: the loosest binding.
fn parse_or(tokens: &[TermToken], position: &mut usize) -> Result<Term, RestError> {
    let mut items = vec![parse_and(tokens, position)?];
    while is_operator(tokens.get(*position), "OR") {
        *position += 1;
        items.push(parse_and(tokens, position)?);
    }
    Ok(if items.len() == 1 {
        items.remove(0)
    } else {
        Term::Any(items)
    })
}

/// `a AND b`, `a AND NOT b`, and plain juxtaposition `a b` (also AND).
fn parse_and(tokens: &[TermToken], position: &mut usize) -> Result<Term, RestError> {
    let mut items = vec![parse_unary(tokens, position)?];
    loop {
        let next = tokens.get(*position);
        if next.is_none() || matches!(next, Some(TermToken::Close)) || is_operator(next, "OR") {
            break;
        }
        if is_operator(next, "AND") {
            *position += 1;
            if is_operator(tokens.get(*position), "NOT") {
                *position += 1;
                items.push(Term::Not(Box::new(parse_unary(tokens, position)?)));
                continue;
            }
        }
        items.push(parse_unary(tokens, position)?);
    }
    Ok(if items.len() == 1 {
        items.remove(0)
    } else {
        Term::All(items)
    })
}

fn parse_unary(tokens: &[TermToken], position: &mut usize) -> Result<Term, RestError> {
    let token = tokens.get(*position).cloned();
    *position += 1;
    match token {
        Some(TermToken::Open) => {
            let inner = parse_or(tokens, position)?;
            if tokens.get(*position) != Some(&TermToken::Close) {
                return Err(malformed_term("("));
            }
            *position += 1;
            Ok(inner)
        }
        Some(TermToken::Word(chars, raw)) => {
            if raw
                .as_deref()
                .is_some_and(|raw| ["AND", "OR"].iter().any(|op| raw.eq_ignore_ascii_case(op)))
            {
                return Err(malformed_term(raw.as_deref().unwrap_or_default()));
            }
            Ok(Term::Leaf(Leaf {
                tokens: tokenize_pattern(&chars),
                phone: phone_pattern(&chars),
            }))
        }
        Some(TermToken::Phrase(chars)) => Ok(Term::Leaf(Leaf {
            tokens: tokenize_pattern(&chars),
            phone: None,
        })),
        Some(TermToken::Close) => Err(malformed_term(")")),
        None => Err(malformed_term("<EOF>")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CharClass {
    Letter,
    Digit,
}

fn char_class(c: char) -> Option<CharClass> {
    if c.is_numeric() {
        Some(CharClass::Digit)
    } else if c.is_alphabetic() {
        Some(CharClass::Letter)
    } else {
        None
    }
}

/// Splits a search word into tokens as stored text is split; wildcards stay attached to
/// the token they follow.
fn tokenize_pattern(chars: &[Wildcard]) -> Vec<Vec<Wildcard>> {
    let mut tokens = Vec::new();
    let mut current: Vec<Wildcard> = Vec::new();
    let mut class = None;
    for c in chars {
        match c {
            Wildcard::Any | Wildcard::One => current.push(*c),
            Wildcard::Literal(c) => match char_class(*c) {
                None => {
                    if !current.is_empty() {
                        tokens.push(std::mem::take(&mut current));
                    }
                    class = None;
                }
                Some(kind) => {
                    if class.is_some_and(|previous| previous != kind) && !current.is_empty() {
                        tokens.push(std::mem::take(&mut current));
                    }
                    class = Some(kind);
                    current.extend(c.to_lowercase().map(Wildcard::Literal));
                }
            },
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

/// Splits stored text on spaces, punctuation and letter/digit changes, lower-cased.
fn tokenize_text(text: &str) -> Vec<Vec<char>> {
    let mut tokens = Vec::new();
    let mut current = Vec::new();
    let mut class = None;
    for c in text.chars() {
        match char_class(c) {
            None => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
                class = None;
            }
            Some(kind) => {
                if class.is_some_and(|previous| previous != kind) && !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
                class = Some(kind);
                current.extend(c.to_lowercase());
            }
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

pub(super) fn term_matches(
    term: &Term,
    record: &Record,
    fields: &[&FieldDef],
    phone_match: PhoneMatch,
) -> bool {
    match term {
        Term::Leaf(leaf) => fields.iter().any(|field| {
            let Some(value) = record.get(field.name).as_str() else {
                return false;
            };
            if field.field_type == FieldType::Phone
                && leaf
                    .phone
                    .as_ref()
                    .is_some_and(|pattern| phone_matches(value, pattern, phone_match))
            {
                return true;
            }
            text_matches(value, &leaf.tokens)
        }),
        Term::All(items) => items
            .iter()
            .all(|item| term_matches(item, record, fields, phone_match)),
        Term::Any(items) => items
            .iter()
            .any(|item| term_matches(item, record, fields, phone_match)),
        Term::Not(inner) => !term_matches(inner, record, fields, phone_match),
    }
}

/// Whether the word's tokens occur as consecutive tokens of the stored text.
fn text_matches(value: &str, pattern: &[Vec<Wildcard>]) -> bool {
    if pattern.is_empty() {
        return false;
    }
    let tokens = tokenize_text(value);
    tokens.windows(pattern.len()).any(|window| {
        window
            .iter()
            .zip(pattern)
            .all(|(token, pattern)| wildcard_match(pattern, token))
    })
}

#[cfg(test)]
mod tests {
    use crate::sosl::PhoneMatch;
    use crate::sosl::fixture::{org, run};

    #[test]
    fn text_search_follows_term_operators_and_field_groups() {
        let org = org();
        let cases: &[(&str, &[&str])] = &[
            (
                "FIND {acme} RETURNING Contact(Name), Account(Name)",
                &["Contact:Ada Lovelace", "Account:Acme"],
            ),
            (
                "FIND {ACME} IN NAME FIELDS RETURNING Contact(Name), Account(Name)",
                &["Account:Acme"],
            ),
            (
                "FIND {acme} IN EMAIL FIELDS RETURNING Contact(Name), Account(Name)",
                &["Contact:Ada Lovelace"],
            ),
            (
                "FIND {ada@acme.com} IN EMAIL FIELDS RETURNING Contact(Name)",
                &["Contact:Ada Lovelace"],
            ),
            (
                "FIND {acme.com} RETURNING Contact(Name)",
                &["Contact:Ada Lovelace"],
            ),
            (
                "FIND {Lovelace} RETURNING Contact(Name)",
                &["Contact:Ada Lovelace"],
            ),
            ("FIND {Love} RETURNING Contact(Name)", &[]),
            (
                "FIND {love*} RETURNING Contact(Name)",
                &["Contact:Ada Lovelace"],
            ),
            (
                "FIND {lovel?ce} RETURNING Contact(Name)",
                &["Contact:Ada Lovelace"],
            ),
            (
                "FIND {Ada Lovelace} RETURNING Contact(Name)",
                &["Contact:Ada Lovelace"],
            ),
            ("FIND {Ada Danvers} RETURNING Contact(Name)", &[]),
            (
                "FIND {Ada OR Carol} RETURNING Contact(Name)",
                &["Contact:Ada Lovelace", "Contact:Carol Danvers"],
            ),
            (
                "FIND {Ada AND Lovelace} RETURNING Contact(Name)",
                &["Contact:Ada Lovelace"],
            ),
            (
                "FIND {\"Ada Lovelace\"} RETURNING Contact(Name)",
                &["Contact:Ada Lovelace"],
            ),
            ("FIND {\"Lovelace Ada\"} RETURNING Contact(Name)", &[]),
            (
                "FIND {acme AND NOT Ada} RETURNING Contact(Name), Account(Name)",
                &["Account:Acme"],
            ),
            (
                "FIND {(Ada OR Bob) AND NOT Lovelace} RETURNING Contact(Name)",
                &["Contact:Bob O'Brien"],
            ),
            (
                "FIND {O'Brien} RETURNING Contact(Name)",
                &["Contact:Bob O'Brien"],
            ),
            (
                "FIND {O\\'Brien} RETURNING Contact(Name)",
                &["Contact:Bob O'Brien"],
            ),
            (
                "FIND {brien} RETURNING Contact(Name)",
                &["Contact:Bob O'Brien"],
            ),
            ("FIND {Leted} RETURNING Contact(Name)", &[]),
            (
                "find {lou} in all fields returning lead(name)",
                &["Lead:Lou Lead"],
            ),
            (
                "FIND {Lou} IN SIDEBAR FIELDS RETURNING Lead(Name)",
                &["Lead:Lou Lead"],
            ),
            ("FIND {Call} RETURNING Task(Subject)", &["Task:"]),
        ];
        for (sosl, expected) in cases {
            let expected: Vec<String> = expected.iter().map(|label| label.to_string()).collect();
            let labels = run(&org, sosl, PhoneMatch::Digits);
            if sosl.contains("Task") {
                assert_eq!(labels.map(|found| found.len()), Ok(2), "{sosl}");
            } else {
                assert_eq!(labels, Ok(expected), "{sosl}");
            }
        }
    }
}
