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

use serde_json::Value;

use crate::error::RestError;
use crate::schema::{FieldDef, FieldType, ObjectDef, Schema};
use crate::soql::{
    self, Condition, FieldPath, Parser, Selection, Token, TokenKind, Wildcard, caret_message,
    is_name, wildcard_match,
};
use crate::store::{Record, Store};

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchOptions {
    /// The API version of the request URL, without the leading `v` (`"62.0"`).
    pub api_version: String,
    pub phone_match: PhoneMatch,
}

/// Salesforce caps search results at 2,000 rows.
const MAX_RESULTS: usize = 2000;

/// Runs a SOSL statement; returns the flattened `searchRecords` list.
pub fn search(
    sosl: &str,
    schema: &Schema,
    store: &Store,
    options: &SearchOptions,
) -> Result<Vec<Value>, RestError> {
    let plan = parse_statement(sosl, schema).map_err(as_search_error)?;
    Ok(execute(&plan, schema, store, options))
}

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

/// SOSL's field groups (`IN … FIELDS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldGroup {
    /// Every text field, phones included. `SIDEBAR FIELDS` is treated the same.
    All,
    Name,
    Email,
    Phone,
}

impl FieldGroup {
    fn parse(word: &str) -> Option<Self> {
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
struct Target<'s> {
    object: &'s ObjectDef,
    selection: Selection,
    condition: Option<Condition>,
    order: Vec<soql::OrderItem>,
    limit: Option<usize>,
    offset: usize,
}

struct Plan<'s> {
    term: Term,
    group: FieldGroup,
    targets: Vec<Target<'s>>,
    limit: usize,
}

fn as_search_error(mut error: RestError) -> RestError {
    if error.error_code == "MALFORMED_QUERY" {
        error.error_code = "MALFORMED_SEARCH";
    }
    error
}

fn malformed_token(statement: &str, offset: usize, token: &str) -> RestError {
    let message = caret_message(
        statement,
        offset,
        &format!("Malformed search token: {token}"),
        true,
    );
    RestError::bad_request("MALFORMED_SEARCH", message)
}

fn malformed_at(parser: &Parser, token: &Token) -> RestError {
    malformed_token(parser.statement, token.offset, token.display())
}

fn all_searchable(schema: &Schema) -> Vec<Target<'_>> {
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

fn parse_statement<'s>(sosl: &str, schema: &'s Schema) -> Result<Plan<'s>, RestError> {
    let start = sosl.len() - sosl.trim_start().len();
    if sosl.trim().is_empty() {
        return Err(RestError::bad_request(
            "MALFORMED_SEARCH",
            "No search term found. The search term must be enclosed in braces.",
        ));
    }
    let word_at = |offset: usize| -> String {
        sosl.get(offset..)
            .unwrap_or("")
            .split_whitespace()
            .next()
            .unwrap_or("<EOF>")
            .to_string()
    };
    let find_ok = sosl
        .get(start..start + 4)
        .is_some_and(|word| word.eq_ignore_ascii_case("FIND"))
        && sosl
            .get(start + 4..)
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_whitespace() || c == '{'));
    if !find_ok {
        return Err(malformed_token(sosl, start, &word_at(start)));
    }
    let after_find = start + 4;
    let brace = after_find + (sosl.len() - after_find - sosl[after_find..].trim_start().len());
    if !sosl[brace..].starts_with('{') {
        // `FIND 'Acme'` is Apex-only syntax; the REST API needs braces.
        return Err(malformed_token(sosl, brace, &word_at(brace)));
    }
    let mut close = None;
    let mut escaped = false;
    for (index, c) in sosl[brace + 1..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '}' => {
                close = Some(brace + 1 + index);
                break;
            }
            _ => {}
        }
    }
    let Some(close) = close else {
        return Err(malformed_token(sosl, sosl.len(), "<EOF>"));
    };
    let term = parse_term(&sosl[brace + 1..close])?;

    let mut parser = Parser::for_search(sosl, close + 1)?;
    let mut group = FieldGroup::All;
    if parser.eat_keyword("IN") {
        let word = parser.advance();
        let parsed = (word.kind == TokenKind::Identifier).then(|| FieldGroup::parse(&word.text));
        let Some(Some(parsed)) = parsed else {
            return Err(malformed_at(&parser, &word));
        };
        group = parsed;
        let fields = parser.advance();
        if !fields.is_keyword("FIELDS") {
            return Err(malformed_at(&parser, &fields));
        }
    }
    let mut targets = Vec::new();
    let returning = parser.eat_keyword("RETURNING");
    if returning {
        loop {
            targets.push(parse_target(&mut parser, schema)?);
            if !parser.eat_symbol(",") {
                break;
            }
        }
    } else {
        targets = all_searchable(schema);
    }
    let mut limit = MAX_RESULTS;
    if parser.eat_keyword("LIMIT") {
        limit = soql::parse_count(&mut parser)?.min(MAX_RESULTS);
    }
    if !parser.at_end() {
        return Err(malformed_at(&parser, parser.peek()));
    }
    Ok(Plan {
        term,
        group,
        targets,
        limit,
    })
}

/// `Object` or `Object(field, … [WHERE …] [ORDER BY …] [LIMIT n] [OFFSET n])`.
fn parse_target<'s>(parser: &mut Parser, schema: &'s Schema) -> Result<Target<'s>, RestError> {
    if !is_name(parser.peek()) {
        return Err(malformed_at(parser, parser.peek()));
    }
    let object = soql::parse_object(parser, schema)?;
    let mut target = Target {
        object,
        selection: Selection::new(&[FieldPath::id()]),
        condition: None,
        order: Vec::new(),
        limit: None,
        offset: 0,
    };
    if !parser.eat_symbol("(") {
        return Ok(target);
    }
    let tokens = soql::parse_field_tokens(parser)?;
    let paths = soql::resolve_field_list(parser, &tokens, object, schema)?;
    target.selection = Selection::new(&paths);
    if parser.eat_keyword("WHERE") {
        target.condition = Some(soql::parse_condition_at(parser, object, schema)?);
    }
    target.order = soql::parse_order_by(parser, object, schema)?;
    if parser.eat_keyword("LIMIT") {
        target.limit = Some(soql::parse_count(parser)?);
    }
    if parser.eat_keyword("OFFSET") {
        target.offset = soql::parse_count(parser)?;
    }
    if !parser.eat_symbol(")") {
        return Err(malformed_at(parser, parser.peek()));
    }
    Ok(target)
}

fn execute(plan: &Plan, schema: &Schema, store: &Store, options: &SearchOptions) -> Vec<Value> {
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

/// A parsed search term.
#[derive(Debug, Clone, PartialEq)]
enum Term {
    Leaf(Leaf),
    All(Vec<Term>),
    Any(Vec<Term>),
    Not(Box<Term>),
}

/// One word or phrase: its tokens (lower-cased, with wildcards) and, when it looks like a
/// phone number, its digits.
#[derive(Debug, Clone, PartialEq)]
struct Leaf {
    tokens: Vec<Vec<Wildcard>>,
    phone: Option<PhonePattern>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PhonePattern {
    digits: String,
    /// A trailing `*`: the digits are a prefix.
    prefix: bool,
    /// Written with a leading `+`, so its first 1–3 digits may be a country code.
    international: bool,
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
fn parse_term(text: &str) -> Result<Term, RestError> {
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

/// The digits of a term made only of digits and phone punctuation, with an optional
/// trailing `*`.
fn phone_pattern(chars: &[Wildcard]) -> Option<PhonePattern> {
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

fn term_matches(
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

fn phone_matches(stored: &str, pattern: &PhonePattern, mode: PhoneMatch) -> bool {
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
    use serde_json::json;

    use super::*;
    use crate::soql::fixture::{Org, org};

    fn options(phone_match: PhoneMatch) -> SearchOptions {
        SearchOptions {
            api_version: "62.0".into(),
            phone_match,
        }
    }

    /// Each result as `Type:Name` (or `Type:Id` when Name was not returned).
    fn labels(records: &[Value]) -> Vec<String> {
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

    fn run(org: &Org, sosl: &str, phone_match: PhoneMatch) -> Result<Vec<String>, String> {
        search(sosl, &org.schema, &org.store, &options(phone_match))
            .map(|records| labels(&records))
            .map_err(|error| format!("{} {}", error.error_code, error.message))
    }

    const MALFORMED_TYPE: &str = "\nFIND {name} IN ALL TYPE RETURNING Account(name)\n                  ^\nERROR at Row:1:Column:19\nMalformed search token: TYPE";

    #[test]
    fn malformed_searches_get_salesforce_error_codes_and_messages() {
        let org = org();
        let cases: &[(&str, &str, &str)] = &[
            (
                "FIND {name} IN ALL TYPE RETURNING Account(name)",
                "MALFORMED_SEARCH",
                MALFORMED_TYPE,
            ),
            (
                "FIND 'Acme'",
                "MALFORMED_SEARCH",
                "\nFIND 'Acme'\n    ^\nERROR at Row:1:Column:5\nMalformed search token: 'Acme'",
            ),
            (
                "FIND Acme",
                "MALFORMED_SEARCH",
                "Malformed search token: Acme",
            ),
            (
                "SEARCH {Acme}",
                "MALFORMED_SEARCH",
                "Column:1\nMalformed search token: SEARCH",
            ),
            (
                "FIND {Acme",
                "MALFORMED_SEARCH",
                "Malformed search token: <EOF>",
            ),
            ("", "MALFORMED_SEARCH", "No search term found"),
            (
                "FIND {a}",
                "MALFORMED_SEARCH",
                "search term must be longer than one character",
            ),
            (
                "FIND {a*}",
                "MALFORMED_SEARCH",
                "search term must be longer than one character",
            ),
            (
                "FIND {Acme} IN BOGUS FIELDS",
                "MALFORMED_SEARCH",
                "Malformed search token: BOGUS",
            ),
            (
                "FIND {Acme} RETURNING",
                "MALFORMED_SEARCH",
                "Malformed search token: <EOF>",
            ),
            (
                "FIND {Acme} RETURNING Account(Name",
                "MALFORMED_SEARCH",
                "Malformed search token: <EOF>",
            ),
            (
                "FIND {Acme} RETURNING Account(Name WHERE Name = )",
                "MALFORMED_SEARCH",
                "unexpected token: ')'",
            ),
            (
                "FIND {Acme} LIMIT x",
                "MALFORMED_SEARCH",
                "unexpected token: 'x'",
            ),
            (
                "FIND {Acme} WITH SNIPPET",
                "MALFORMED_SEARCH",
                "Malformed search token: WITH",
            ),
            (
                "FIND {(Acme}",
                "MALFORMED_SEARCH",
                "Malformed search token: (",
            ),
            (
                "FIND {Acme OR}",
                "MALFORMED_SEARCH",
                "Malformed search token: <EOF>",
            ),
            (
                "FIND {Acme} RETURNING Accountz",
                "INVALID_TYPE",
                "\nFIND {Acme} RETURNING Accountz\n                     ^\nERROR at Row:1:Column:22\nsObject type 'Accountz' is not supported.",
            ),
            (
                "FIND {Acme} RETURNING Account(Bacon__c)",
                "INVALID_FIELD",
                "Column:30\nNo such column 'Bacon__c' on entity 'Account'",
            ),
            (
                "FIND {Acme} RETURNING Account(Name WHERE Bacon = 1)",
                "INVALID_FIELD",
                "No such column 'Bacon'",
            ),
            (
                "FIND {Acme} RETURNING Account(Name, name)",
                "MALFORMED_SEARCH",
                "duplicate field selected: name",
            ),
        ];
        for (sosl, code, message) in cases {
            match search(sosl, &org.schema, &org.store, &options(PhoneMatch::Digits)) {
                Ok(records) => panic!("{sosl}: expected {code}, got {records:?}"),
                Err(error) => {
                    assert_eq!(error.error_code, *code, "{sosl}: {}", error.message);
                    assert!(
                        error.message.contains(message),
                        "{sosl}: {:?}",
                        error.message
                    );
                }
            }
        }
    }

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
