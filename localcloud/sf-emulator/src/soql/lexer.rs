//! SOQL tokens with their byte offsets, the token cursor the parsers share, and the caret
//! error format Salesforce uses for query and search errors.

use chrono::{DateTime, NaiveDate, Utc};

use crate::error::RestError;
use crate::store;

/// One character of a `LIKE` pattern (or of a SOSL search word, which reuses it for `*`/`?`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wildcard {
    /// `%` in LIKE, `*` in SOSL: any run of characters, possibly empty.
    Any,
    /// `_` in LIKE, `?` in SOSL: exactly one character.
    One,
    Literal(char),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenKind {
    Identifier,
    /// A quoted string: its unescaped value and the same text as a LIKE pattern (where an
    /// escaped `\%` or `\_` stays literal).
    Text {
        value: String,
        pattern: Vec<Wildcard>,
    },
    Number(f64),
    Date(NaiveDate),
    DateTime(DateTime<Utc>),
    Symbol,
    End,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub kind: TokenKind,
    /// The token as typed (for a string, including its quotes).
    pub text: String,
    /// Byte offset of the token's first character in the whole statement.
    pub offset: usize,
}

impl Token {
    pub fn is_keyword(&self, keyword: &str) -> bool {
        self.kind == TokenKind::Identifier && self.text.eq_ignore_ascii_case(keyword)
    }

    pub fn is_symbol(&self, symbol: &str) -> bool {
        self.kind == TokenKind::Symbol && self.text == symbol
    }

    /// The token as error messages name it.
    pub fn display(&self) -> &str {
        if self.kind == TokenKind::End {
            "<EOF>"
        } else {
            &self.text
        }
    }
}

/// Words that can never be a field or object name, so `SELECT FROM Account` fails on `FROM`.
const RESERVED: &[&str] = &[
    "AND", "ASC", "BY", "DESC", "FALSE", "FIRST", "FROM", "GROUP", "HAVING", "IN", "LAST", "LIKE",
    "LIMIT", "NOT", "NULL", "NULLS", "OFFSET", "OR", "ORDER", "SELECT", "TRUE", "USING", "WHERE",
    "WITH",
];

/// An identifier that may name a field, relationship path or object.
pub(crate) fn is_name(token: &Token) -> bool {
    token.kind == TokenKind::Identifier
        && !RESERVED
            .iter()
            .any(|word| token.text.eq_ignore_ascii_case(word))
}

/// Formats Salesforce's multi-line caret error: the offending line, a caret under the
/// offending character, `ERROR at Row:r:Column:c`, then the message.
///
/// For a multi-line statement only the offending line is shown, with the row and column
/// counted from the start of the statement (rows 1-based, columns in characters). SOQL
/// columns are 1-based; SOSL's are 0-based (`zero_based`), as Salesforce's recorded
/// `IN ALL TYPE` error shows: its caret sits one column left of the token.
pub(crate) fn caret_message(
    statement: &str,
    offset: usize,
    message: &str,
    zero_based: bool,
) -> String {
    let offset = offset.min(statement.len());
    let before = statement.get(..offset).unwrap_or(statement);
    let row = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |position| position + 1);
    let characters = statement
        .get(line_start..offset)
        .map_or(0, |text| text.chars().count());
    let characters = if zero_based {
        characters.saturating_sub(1)
    } else {
        characters
    };
    let column = characters + 1;
    let line_end = statement
        .get(offset..)
        .and_then(|rest| rest.find('\n'))
        .map_or(statement.len(), |position| offset + position);
    let line = statement
        .get(line_start..line_end)
        .unwrap_or("")
        .trim_end_matches('\r');
    format!(
        "\n{line}\n{}^\nERROR at Row:{row}:Column:{column}\n{message}",
        " ".repeat(characters)
    )
}

/// Splits `statement[start..]` into tokens; the last token is always `End`.
pub(crate) fn lex(
    statement: &str,
    start: usize,
    zero_based: bool,
) -> Result<Vec<Token>, RestError> {
    let caret_error = |offset: usize, error_code: &'static str, message: &str| {
        RestError::bad_request(
            error_code,
            caret_message(statement, offset, message, zero_based),
        )
    };
    let chars: Vec<(usize, char)> = statement
        .get(start..)
        .unwrap_or("")
        .char_indices()
        .map(|(index, c)| (index + start, c))
        .collect();
    let offset_at = |index: usize| {
        chars
            .get(index)
            .map_or(statement.len(), |(offset, _)| *offset)
    };
    let char_at = |index: usize| chars.get(index).map(|(_, c)| *c);
    let slice = |from: usize, to: usize| statement.get(from..to).unwrap_or("").to_string();
    let unexpected = |offset: usize, text: &str| {
        caret_error(
            offset,
            "MALFORMED_QUERY",
            &format!("unexpected token: '{text}'"),
        )
    };

    let mut tokens = Vec::new();
    let mut index = 0;
    while let Some(c) = char_at(index) {
        let offset = offset_at(index);
        if c.is_whitespace() {
            index += 1;
        } else if c.is_ascii_alphabetic() || c == '_' {
            while char_at(index).is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            {
                index += 1;
            }
            let text = slice(offset, offset_at(index));
            tokens.push(Token {
                kind: TokenKind::Identifier,
                text,
                offset,
            });
        } else if c.is_ascii_digit()
            || (c == '-' && char_at(index + 1).is_some_and(|next| next.is_ascii_digit()))
        {
            let rest = statement.get(offset..).unwrap_or("");
            if let Some((length, is_datetime)) = date_literal_length(rest) {
                let text = rest.get(..length).unwrap_or("").to_string();
                let kind = if is_datetime {
                    store::parse_datetime(&text).map(TokenKind::DateTime)
                } else {
                    NaiveDate::parse_from_str(&text, "%Y-%m-%d")
                        .ok()
                        .map(TokenKind::Date)
                };
                let Some(kind) = kind else {
                    return Err(unexpected(offset, &text));
                };
                index += text.chars().count();
                tokens.push(Token { kind, text, offset });
                continue;
            }
            index += 1;
            while char_at(index).is_some_and(|c| c.is_ascii_digit()) {
                index += 1;
            }
            if char_at(index) == Some('.') && char_at(index + 1).is_some_and(|c| c.is_ascii_digit())
            {
                index += 1;
                while char_at(index).is_some_and(|c| c.is_ascii_digit()) {
                    index += 1;
                }
            }
            let text = slice(offset, offset_at(index));
            let Ok(number) = text.parse::<f64>() else {
                return Err(unexpected(offset, &text));
            };
            tokens.push(Token {
                kind: TokenKind::Number(number),
                text,
                offset,
            });
        } else if c == '\'' {
            let mut value = String::new();
            let mut pattern = Vec::new();
            index += 1;
            loop {
                let Some(c) = char_at(index) else {
                    return Err(unexpected(statement.len(), "<EOF>"));
                };
                index += 1;
                match c {
                    '\'' => break,
                    '\\' => {
                        let escaped = char_at(index);
                        let literal = match escaped {
                            Some('n') => '\n',
                            Some('r') => '\r',
                            Some('t') => '\t',
                            Some('b') => '\u{8}',
                            Some('f') => '\u{c}',
                            Some(c @ ('\'' | '"' | '\\' | '%' | '_')) => c,
                            _ => {
                                let end = offset_at(index + 1);
                                let sequence = slice(offset_at(index - 1), end);
                                let literal = slice(offset, end);
                                return Err(caret_error(
                                    offset,
                                    "MALFORMED_QUERY",
                                    &format!(
                                        "Invalid string literal {literal}'. Illegal character sequence '{sequence}' in string literal."
                                    ),
                                ));
                            }
                        };
                        index += 1;
                        value.push(literal);
                        pattern.push(Wildcard::Literal(literal));
                    }
                    '%' => {
                        value.push(c);
                        pattern.push(Wildcard::Any);
                    }
                    '_' => {
                        value.push(c);
                        pattern.push(Wildcard::One);
                    }
                    _ => {
                        value.push(c);
                        pattern.push(Wildcard::Literal(c));
                    }
                }
            }
            let text = slice(offset, offset_at(index));
            tokens.push(Token {
                kind: TokenKind::Text { value, pattern },
                text,
                offset,
            });
        } else {
            let next = char_at(index + 1);
            let symbol = match (c, next) {
                ('!', Some('=')) => "!=",
                ('<', Some('>')) => "<>",
                ('<', Some('=')) => "<=",
                ('>', Some('=')) => ">=",
                ('=', _) => "=",
                ('<', _) => "<",
                ('>', _) => ">",
                ('(', _) => "(",
                (')', _) => ")",
                (',', _) => ",",
                (':', _) => ":",
                _ => return Err(unexpected(offset, &c.to_string())),
            };
            index += symbol.len();
            tokens.push(Token {
                kind: TokenKind::Symbol,
                text: symbol.to_string(),
                offset,
            });
        }
    }
    tokens.push(Token {
        kind: TokenKind::End,
        text: String::new(),
        offset: statement.len(),
    });
    Ok(tokens)
}

/// The length of a date (`2024-01-31`) or datetime (`2024-01-31T10:00:00Z`,
/// `…T10:00:00.000+01:00`, `…+0100`) literal at the start of `text`, and whether it is a
/// datetime.
fn date_literal_length(text: &str) -> Option<(usize, bool)> {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        bytes
            .get(range)
            .is_some_and(|slice| slice.iter().all(u8::is_ascii_digit))
    };
    let byte = |index: usize| bytes.get(index).copied();
    if !(digits(0..4)
        && byte(4) == Some(b'-')
        && digits(5..7)
        && byte(7) == Some(b'-')
        && digits(8..10))
    {
        return None;
    }
    if byte(10) != Some(b'T') {
        return Some((10, false));
    }
    if !(digits(11..13)
        && byte(13) == Some(b':')
        && digits(14..16)
        && byte(16) == Some(b':')
        && digits(17..19))
    {
        return None;
    }
    let mut end = 19;
    if byte(end) == Some(b'.') {
        end += 1;
        while byte(end).is_some_and(|b| b.is_ascii_digit()) {
            end += 1;
        }
    }
    match byte(end) {
        Some(b'Z' | b'z') => Some((end + 1, true)),
        Some(b'+' | b'-') if digits(end + 1..end + 3) => {
            if byte(end + 3) == Some(b':') && digits(end + 4..end + 6) {
                Some((end + 6, true))
            } else if digits(end + 3..end + 5) {
                Some((end + 5, true))
            } else {
                None
            }
        }
        _ => None,
    }
}

/// Whether `text` (already lower-cased by the caller) matches a wildcard pattern (also
/// lower-cased): the classic two-pointer glob match with backtracking to the last `Any`.
pub(crate) fn wildcard_match(pattern: &[Wildcard], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(Wildcard::Any) => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(Wildcard::One) => {
                p += 1;
                t += 1;
            }
            Some(Wildcard::Literal(c)) if text.get(t) == Some(c) => {
                p += 1;
                t += 1;
            }
            _ => match backtrack {
                Some((star, matched)) => {
                    p = star + 1;
                    t = matched + 1;
                    backtrack = Some((star, matched + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|w| *w == Wildcard::Any))
}

/// Lower-cases a wildcard pattern's literal characters.
pub(crate) fn lowercase_pattern(pattern: &[Wildcard]) -> Vec<Wildcard> {
    pattern
        .iter()
        .flat_map(|w| match w {
            Wildcard::Literal(c) => c.to_lowercase().map(Wildcard::Literal).collect::<Vec<_>>(),
            other => vec![*other],
        })
        .collect()
}

/// A cursor over a statement's tokens.
#[derive(Debug)]
pub(crate) struct Parser<'a> {
    pub statement: &'a str,
    tokens: Vec<Token>,
    position: usize,
    end: Token,
    /// Report 0-based columns, as SOSL errors do.
    pub zero_based_columns: bool,
}

impl<'a> Parser<'a> {
    /// Tokenizes `statement[start..]`; errors keep offsets into the whole statement.
    pub fn new(statement: &'a str, start: usize) -> Result<Self, RestError> {
        Self::with_columns(statement, start, false)
    }

    /// A parser for the clauses of a SOSL statement, whose errors count columns from 0.
    pub fn for_search(statement: &'a str, start: usize) -> Result<Self, RestError> {
        Self::with_columns(statement, start, true)
    }

    fn with_columns(statement: &'a str, start: usize, zero_based: bool) -> Result<Self, RestError> {
        let tokens = lex(statement, start, zero_based)?;
        let end = Token {
            kind: TokenKind::End,
            text: String::new(),
            offset: statement.len(),
        };
        Ok(Self {
            statement,
            tokens,
            position: 0,
            end,
            zero_based_columns: zero_based,
        })
    }

    pub fn peek(&self) -> &Token {
        self.peek_at(0)
    }

    pub fn peek_at(&self, ahead: usize) -> &Token {
        self.tokens.get(self.position + ahead).unwrap_or(&self.end)
    }

    pub fn advance(&mut self) -> Token {
        let token = self.peek().clone();
        if token.kind != TokenKind::End {
            self.position += 1;
        }
        token
    }

    /// Where the parser is, for [`Parser::seek`].
    pub fn position(&self) -> usize {
        self.position
    }

    /// Goes back (or forward) to a position [`Parser::position`] gave.
    pub fn seek(&mut self, position: usize) {
        self.position = position.min(self.tokens.len());
    }

    pub fn at_end(&self) -> bool {
        self.peek().kind == TokenKind::End
    }

    pub fn eat_keyword(&mut self, keyword: &str) -> bool {
        let found = self.peek().is_keyword(keyword);
        if found {
            self.position += 1;
        }
        found
    }

    pub fn eat_symbol(&mut self, symbol: &str) -> bool {
        let found = self.peek().is_symbol(symbol);
        if found {
            self.position += 1;
        }
        found
    }

    pub fn expect_keyword(&mut self, keyword: &str) -> Result<Token, RestError> {
        if self.peek().is_keyword(keyword) {
            Ok(self.advance())
        } else {
            Err(self.unexpected())
        }
    }

    pub fn expect_symbol(&mut self, symbol: &str) -> Result<Token, RestError> {
        if self.peek().is_symbol(symbol) {
            Ok(self.advance())
        } else {
            Err(self.unexpected())
        }
    }

    /// `unexpected token: 'X'` at the next token.
    pub fn unexpected(&self) -> RestError {
        self.unexpected_token(self.peek())
    }

    pub fn unexpected_token(&self, token: &Token) -> RestError {
        self.error_at(
            token.offset,
            "MALFORMED_QUERY",
            &format!("unexpected token: '{}'", token.display()),
        )
    }

    pub fn error_at(&self, offset: usize, error_code: &'static str, message: &str) -> RestError {
        let message = caret_message(self.statement, offset, message, self.zero_based_columns);
        RestError::bad_request(error_code, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caret_points_at_the_offending_column_of_its_row() {
        let statement = "SELECT Id,\n  Bacon__c FROM Account";
        let message = caret_message(statement, 13, "boom", false);
        assert_eq!(
            message,
            "\n  Bacon__c FROM Account\n  ^\nERROR at Row:2:Column:3\nboom"
        );
    }

    #[test]
    fn literals_are_tokenized_with_their_offsets() {
        let tokens = lex(
            "x = 'a\\'b' AND d > 2024-01-31T10:00:00+01:00 AND n < -1.5",
            0,
            false,
        )
        .unwrap_or_default();
        let kinds: Vec<&TokenKind> = tokens.iter().map(|token| &token.kind).collect();
        assert!(matches!(kinds[2], TokenKind::Text { value, .. } if value == "a'b"));
        assert_eq!(tokens[2].offset, 4);
        assert!(matches!(kinds[6], TokenKind::DateTime(_)));
        assert_eq!(kinds[10], &TokenKind::Number(-1.5));
        assert_eq!(kinds[11], &TokenKind::End);
    }

    #[test]
    fn wildcards_match_like_sql_globs() {
        let cases: &[(&str, &str, bool)] = &[
            ("ac%", "acme", true),
            ("%me", "acme", true),
            ("a_me", "acme", true),
            ("a_e", "acme", false),
            ("%", "", true),
            ("%c%e", "acme", true),
            ("acme", "acm", false),
        ];
        for (pattern, text, expected) in cases {
            let pattern: Vec<Wildcard> = pattern
                .chars()
                .map(|c| match c {
                    '%' => Wildcard::Any,
                    '_' => Wildcard::One,
                    c => Wildcard::Literal(c),
                })
                .collect();
            let text: Vec<char> = text.chars().collect();
            assert_eq!(
                wildcard_match(&pattern, &text),
                *expected,
                "{pattern:?} {text:?}"
            );
        }
    }
}
