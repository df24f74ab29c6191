//! Validation of the `where` parameter of `search`/`searchOne`.
//!
//! Salesforce pastes `where` into the search's `RETURNING Object(fields WHERE …)` clause, so a
//! crafted value such as `Name = 'x') , User(Id, Username` could break out of it and search
//! other objects. The value must therefore be a plain SOQL condition, checked here by a small
//! parser: comparisons `field op value`, `field [NOT] IN (values)`, `field INCLUDES/EXCLUDES
//! (strings)`, `field LIKE 'pattern'`, joined with `AND`/`OR`, negated with `NOT`, grouped
//! with parentheses. Values are quoted strings (closed, with SOQL escapes), numbers, dates,
//! datetimes, `TRUE`/`FALSE`/`NULL` and date literals such as `TODAY` or `LAST_N_DAYS:30`.
//! Nothing else (subqueries, `LIMIT`, stray commas or parentheses, semicolons) is accepted.

use salesforce::safety::validate_field_path;

use crate::placeholders::{is_date_or_datetime, is_number};

/// The deepest nesting of parentheses and `NOT` accepted.
const MAX_DEPTH: usize = 16;

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Text,
    Operator,
    Open,
    Close,
    Comma,
}

/// Checks that `condition` is a plain SOQL condition (see the module documentation).
pub fn validate_condition(condition: &str) -> Result<(), String> {
    let tokens = tokenize(condition)?;
    if tokens.is_empty() {
        return Err("the condition is empty".into());
    }
    let mut parser = Parser {
        tokens: &tokens,
        position: 0,
    };
    parser.condition(0)?;
    if parser.position != tokens.len() {
        return Err("unexpected text after the condition".into());
    }
    Ok(())
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let characters: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut index = 0;
    while let Some(&character) = characters.get(index) {
        match character {
            c if c.is_whitespace() => index += 1,
            '\'' => {
                index += 1;
                loop {
                    match characters.get(index) {
                        None => return Err("a string literal is not closed".into()),
                        Some('\\') => index += 2,
                        Some('\'') => {
                            index += 1;
                            break;
                        }
                        Some(_) => index += 1,
                    }
                }
                tokens.push(Token::Text);
            }
            '(' => {
                tokens.push(Token::Open);
                index += 1;
            }
            ')' => {
                tokens.push(Token::Close);
                index += 1;
            }
            ',' => {
                tokens.push(Token::Comma);
                index += 1;
            }
            '=' => {
                tokens.push(Token::Operator);
                index += 1;
            }
            '!' | '<' | '>' => {
                index += 1;
                let next = characters.get(index);
                let valid = match (character, next) {
                    ('!', Some('=')) | ('<', Some('=' | '>')) | ('>', Some('=')) => {
                        index += 1;
                        true
                    }
                    ('!', _) => false,
                    _ => true,
                };
                if !valid {
                    return Err("unexpected '!'".into());
                }
                tokens.push(Token::Operator);
            }
            c if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '+' => {
                let start = index;
                index += 1;
                while let Some(&next) = characters.get(index) {
                    let numeric_word = characters[start].is_ascii_digit()
                        || matches!(characters[start], '-' | '+');
                    let continues = next.is_ascii_alphanumeric()
                        || matches!(next, '_' | '.' | ':')
                        || (numeric_word && matches!(next, '-' | '+'));
                    if !continues {
                        break;
                    }
                    index += 1;
                }
                tokens.push(Token::Word(characters[start..index].iter().collect()));
            }
            other => return Err(format!("unexpected character {other:?}")),
        }
    }
    Ok(tokens)
}

struct Parser<'t> {
    tokens: &'t [Token],
    position: usize,
}

const RESERVED: &[&str] = &[
    "AND",
    "OR",
    "NOT",
    "IN",
    "LIKE",
    "INCLUDES",
    "EXCLUDES",
    "SELECT",
    "FROM",
    "WHERE",
    "LIMIT",
    "ORDER",
    "GROUP",
    "BY",
    "OFFSET",
    "RETURNING",
    "WITH",
    "HAVING",
    "FOR",
    "USING",
];

fn is_keyword(token: Option<&Token>, keyword: &str) -> bool {
    matches!(token, Some(Token::Word(word)) if word.eq_ignore_ascii_case(keyword))
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position)
    }

    fn next(&mut self) -> Option<&Token> {
        let token = self.tokens.get(self.position);
        self.position += 1;
        token
    }

    fn expect(&mut self, expected: Token, what: &str) -> Result<(), String> {
        match self.next() {
            Some(token) if *token == expected => Ok(()),
            _ => Err(format!("expected {what}")),
        }
    }

    fn condition(&mut self, depth: usize) -> Result<(), String> {
        self.unary(depth)?;
        while is_keyword(self.peek(), "AND") || is_keyword(self.peek(), "OR") {
            self.position += 1;
            self.unary(depth)?;
        }
        Ok(())
    }

    fn unary(&mut self, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("the condition is nested too deeply".into());
        }
        if is_keyword(self.peek(), "NOT") {
            self.position += 1;
            return self.unary(depth + 1);
        }
        if self.peek() == Some(&Token::Open) {
            self.position += 1;
            self.condition(depth + 1)?;
            return self.expect(Token::Close, "')'");
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<(), String> {
        match self.next() {
            Some(Token::Word(field))
                if validate_field_path(field).is_ok()
                    && !RESERVED.iter().any(|word| field.eq_ignore_ascii_case(word)) => {}
            _ => return Err("expected a field name".into()),
        }
        if self.peek() == Some(&Token::Operator) {
            self.position += 1;
            return self.value();
        }
        if is_keyword(self.peek(), "LIKE") {
            self.position += 1;
            return self.expect(Token::Text, "a quoted pattern after LIKE");
        }
        if is_keyword(self.peek(), "NOT") {
            self.position += 1;
            if !is_keyword(self.peek(), "IN") {
                return Err("expected IN after NOT".into());
            }
        }
        let strings_only =
            is_keyword(self.peek(), "INCLUDES") || is_keyword(self.peek(), "EXCLUDES");
        if !(strings_only || is_keyword(self.peek(), "IN")) {
            return Err("expected an operator".into());
        }
        self.position += 1;
        self.expect(Token::Open, "'(' to start a value list")?;
        loop {
            if strings_only {
                self.expect(Token::Text, "a quoted value")?;
            } else {
                self.value()?;
            }
            match self.next() {
                Some(Token::Comma) => {}
                Some(Token::Close) => return Ok(()),
                _ => return Err("expected ',' or ')' in a value list".into()),
            }
        }
    }

    fn value(&mut self) -> Result<(), String> {
        match self.next() {
            Some(Token::Text) => Ok(()),
            Some(Token::Word(word)) if is_value_word(word) => Ok(()),
            _ => Err("expected a value: a quoted string, number, date, TRUE, FALSE or NULL".into()),
        }
    }
}

/// Numbers, dates, datetimes, `TRUE`/`FALSE`/`NULL` and date literals (`TODAY`,
/// `LAST_N_DAYS:30`).
fn is_value_word(word: &str) -> bool {
    let unsigned = word.strip_prefix('+').unwrap_or(word);
    if is_number(unsigned) || is_date_or_datetime(word) {
        return true;
    }
    let (name, argument) = match word.split_once(':') {
        Some((name, argument)) => (name, Some(argument)),
        None => (word, None),
    };
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_')
        && !RESERVED
            .iter()
            .any(|reserved| name.eq_ignore_ascii_case(reserved))
        && argument.is_none_or(|digits| {
            !digits.is_empty() && digits.len() <= 6 && digits.bytes().all(|b| b.is_ascii_digit())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_conditions_are_accepted() {
        let cases = [
            "Name = 'Acme'",
            "Account.Name = 'Globex' AND Email != null",
            "(Status = 'New' OR Status = 'Working') AND NOT Priority = 'Low'",
            "CreatedDate > 2026-01-01T00:00:00Z AND CloseDate <= 2026-12-31",
            "CreatedDate = LAST_N_DAYS:30 OR CreatedDate = TODAY",
            "Industry IN ('Retail', 'Technology') AND Amount >= -5.5",
            "Id NOT IN ('001D000000IqhSLIAZ')",
            "Name LIKE 'Ac%' AND IsDeleted = false",
            "Interests__c INCLUDES ('a;b', 'c')",
            r"LastName = 'O\'Brien'",
        ];
        for condition in cases {
            assert_eq!(validate_condition(condition), Ok(()), "{condition}");
        }
    }

    #[test]
    fn anything_else_is_refused() {
        let cases = [
            "",
            "Name = 'x') , User(Id, Username",
            "Name = 'x' LIMIT 1",
            "Name = 'x'; DELETE",
            "Name = 'unterminated",
            "Id IN (SELECT ContactId FROM Case)",
            "Name = Other AND",
            "Name",
            "'a' = 'a'",
            "Name = 'x' ORDER BY Name",
            "Name = 'x')",
            "(Name = 'x'",
            "Name == 'x'",
            "Name = {x}",
            "Name = \"x\"",
            "LIMIT = 1",
            "Name INCLUDES (1)",
        ];
        for condition in cases {
            assert!(validate_condition(condition).is_err(), "{condition}");
        }
        let deep = format!("{}Name = 'x'{}", "(".repeat(100), ")".repeat(100));
        assert!(validate_condition(&deep).is_err());
    }
}
