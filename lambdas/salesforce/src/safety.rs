//! Escaping and validation for everything that is pasted into SOQL, SOSL or a REST path.
//!
//! The original Amazon Connect Lambda pasted caller values straight into SOQL; every value that
//! reaches Salesforce from this crate's callers should pass through one of these functions.

use crate::error::{Error, Result};

/// Escapes a value for use inside a SOQL string literal (`'...'`).
///
/// Escapes backslash, single and double quotes, and the control characters SOQL knows
/// (`\n \r \t \b \f`). `%` and `_` are left alone: they are only special after `LIKE`, where
/// [`escape_soql_like`] must be used instead.
pub fn escape_soql_string(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len() + 8);
    for character in value.chars() {
        match character {
            '\\' => escaped.push_str("\\\\"),
            '\'' => escaped.push_str("\\'"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            '\u{8}' => escaped.push_str("\\b"),
            '\u{c}' => escaped.push_str("\\f"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// Escapes a value for use inside the string literal of a SOQL `LIKE`: everything
/// [`escape_soql_string`] escapes, plus the wildcards `%` and `_`.
pub fn escape_soql_like(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len() + 8);
    for character in escape_soql_string(value).chars() {
        match character {
            '%' => escaped.push_str("\\%"),
            '_' => escaped.push_str("\\_"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// Characters SOSL reserves inside a `FIND {...}` term.
const SOSL_RESERVED: &[char] = &[
    '?', '&', '|', '!', '{', '}', '[', ']', '(', ')', '^', '~', '*', ':', '\\', '"', '\'', '+', '-',
];

/// Escapes a search term for use inside SOSL `FIND {...}`: every reserved character
/// (`? & | ! { } [ ] ( ) ^ ~ * : \ " ' + -`) gets a backslash, so a caller's value is always a
/// literal term, never a wildcard or an operator.
pub fn escape_sosl(term: &str) -> String {
    let mut escaped = String::with_capacity(term.len() + 8);
    for character in term.chars() {
        if SOSL_RESERVED.contains(&character) {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

/// API-name suffixes Salesforce puts after a double underscore.
const NAME_SUFFIXES: &[&str] = &[
    "c", "r", "e", "s", "x", "b", "mdt", "kav", "ka", "share", "history", "feed", "tag", "pc",
    "pr", "chn",
];

/// The longest API name Salesforce allows (custom names are 40 plus suffix and namespace).
const MAX_NAME_LENGTH: usize = 80;

/// Validates an object or field API name: `Contact`, `Phone`, `Movie__c`, `Parent__r`,
/// `ns__Field__c`.
///
/// Allowed: ASCII letters, digits and single underscores, starting with a letter, not ending
/// with an underscore. A double underscore may only introduce a known suffix (`__c`, `__r`,
/// `__mdt`, ...) or follow a namespace prefix (`ns__Name__c`). Dots are refused here; use
/// [`validate_field_path`] for relationship paths.
pub fn validate_identifier(name: &str) -> Result<()> {
    if is_identifier(name) {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "{} is not a valid Salesforce object or field name",
            quoted(name)
        )))
    }
}

/// Validates a field reference that may follow relationships, e.g. `Account.Owner.Name` or
/// `Parent__r.Name__c`: one to six [`validate_identifier`] names joined by dots.
pub fn validate_field_path(path: &str) -> Result<()> {
    let segments: Vec<&str> = path.split('.').collect();
    if segments.len() <= 6 && segments.iter().all(|segment| is_identifier(segment)) {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "{} is not a valid Salesforce field name or relationship path",
            quoted(path)
        )))
    }
}

/// Splits a comma-separated field list (`"Id, Name, Account.Name"`), validates each entry with
/// [`validate_field_path`] and returns the trimmed names.
pub fn parse_field_list(list: &str) -> Result<Vec<String>> {
    let fields: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|field| !field.is_empty())
        .map(str::to_owned)
        .collect();
    if fields.is_empty() {
        return Err(Error::InvalidInput("the field list is empty".into()));
    }
    for field in &fields {
        validate_field_path(field)?;
    }
    Ok(fields)
}

fn is_identifier(name: &str) -> bool {
    if name.is_empty() || name.len() > MAX_NAME_LENGTH {
        return false;
    }
    let parts: Vec<&str> = name.split("__").collect();
    let plain_part = |part: &str| {
        let mut characters = part.chars();
        characters
            .next()
            .is_some_and(|first| first.is_ascii_alphabetic())
            && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !part.ends_with('_')
    };
    let suffix = |part: &str| NAME_SUFFIXES.contains(&part.to_ascii_lowercase().as_str());
    match parts.as_slice() {
        [name] => plain_part(name),
        [name, last] => plain_part(name) && suffix(last),
        // `ns__Name__c`, and compound geolocation parts such as `Location__Latitude__s`.
        [namespace, name, last] => plain_part(namespace) && plain_part(name) && suffix(last),
        _ => false,
    }
}

/// The alphabet of the three checksum characters of an 18-character id.
const CHECKSUM_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// Validates a record id: 15 or 18 ASCII letters and digits; for 18 characters the last three
/// must be the checksum of the first fifteen (compared case-insensitively).
pub fn validate_id(id: &str) -> Result<()> {
    let invalid = |reason: &str| {
        Err(Error::InvalidInput(format!(
            "{} is not a valid Salesforce id: {reason}",
            quoted(id)
        )))
    };
    if !id.bytes().all(|byte| byte.is_ascii_alphanumeric()) {
        return invalid("ids contain only letters and digits");
    }
    match id.len() {
        15 => Ok(()),
        18 => {
            let expected = checksum(&id[..15]);
            if id[15..].eq_ignore_ascii_case(&expected) {
                Ok(())
            } else {
                invalid("the checksum (last three characters) does not match")
            }
        }
        _ => invalid("ids have 15 or 18 characters"),
    }
}

/// Whether [`validate_id`] accepts `id`.
pub fn is_valid_id(id: &str) -> bool {
    validate_id(id).is_ok()
}

/// Converts a 15-character id to its 18-character form; a valid 18-character id is returned
/// unchanged (with an upper-case checksum).
pub fn to_id18(id: &str) -> Result<String> {
    validate_id(id)?;
    let base = &id[..15];
    Ok(format!("{base}{}", checksum(base)))
}

/// The three checksum characters of a 15-character id: each 5-character chunk becomes a 5-bit
/// number whose bit *i* (least significant = first character) is set when character *i* is an
/// upper-case letter.
fn checksum(id15: &str) -> String {
    id15.as_bytes()
        .chunks(5)
        .map(|chunk| {
            let bits = chunk
                .iter()
                .enumerate()
                .filter(|(_, byte)| byte.is_ascii_uppercase())
                .fold(0usize, |bits, (index, _)| bits | (1 << index));
            char::from(CHECKSUM_ALPHABET[bits])
        })
        .collect()
}

/// Quotes a caller's value for an error message, cut short so a huge input cannot flood logs.
fn quoted(value: &str) -> String {
    const LIMIT: usize = 64;
    if value.chars().count() <= LIMIT {
        format!("{value:?}")
    } else {
        let head: String = value.chars().take(LIMIT).collect();
        format!("{head:?}...")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soql_string_escaping_covers_quotes_backslash_and_control_characters() {
        let cases = [
            ("O'Brien", r"O\'Brien"),
            (r"back\slash", r"back\\slash"),
            ("say \"hi\"", r#"say \"hi\""#),
            ("a\nb\rc\td", r"a\nb\rc\td"),
            ("\u{8}\u{c}", r"\b\f"),
            ("100%_sure", "100%_sure"),
            ("' OR Name != '", r"\' OR Name != \'"),
            ("plain", "plain"),
        ];
        for (input, expected) in cases {
            assert_eq!(escape_soql_string(input), expected, "input {input:?}");
        }
    }

    #[test]
    fn soql_like_escaping_also_escapes_wildcards() {
        let cases = [
            ("100%_sure", r"100\%\_sure"),
            ("O'Brien%", r"O\'Brien\%"),
            (r"a\_b", r"a\\\_b"),
        ];
        for (input, expected) in cases {
            assert_eq!(escape_soql_like(input), expected, "input {input:?}");
        }
    }

    #[test]
    fn sosl_escaping_backslashes_every_reserved_character() {
        let cases = [
            ("+441122334455", r"\+441122334455"),
            ("Acme}", r"Acme\}"),
            ("a-b*c?", r"a\-b\*c\?"),
            (r#"x"y'z\"#, r#"x\"y\'z\\"#),
            ("{}[]()^~:&|!", r"\{\}\[\]\(\)\^\~\:\&\|\!"),
            ("plain words 123", "plain words 123"),
        ];
        for (input, expected) in cases {
            assert_eq!(escape_sosl(input), expected, "input {input:?}");
        }
    }

    #[test]
    fn identifiers_follow_salesforce_api_name_rules() {
        let cases = [
            ("Contact", true),
            ("Phone", true),
            ("Movie__c", true),
            ("Parent__r", true),
            ("ns__Field__c", true),
            ("Location__Latitude__s", true),
            ("Custom_Object__mdt", true),
            ("Account2", true),
            ("", false),
            ("1Account", false),
            ("_Account", false),
            ("Account_", false),
            ("Bad__Name", false),
            ("a__b__c__d", false),
            ("Field___c", false),
            ("Account.Name", false),
            ("Name FROM User", false),
            ("Name'", false),
            ("Naïve", false),
        ];
        for (name, valid) in cases {
            assert_eq!(validate_identifier(name).is_ok(), valid, "name {name:?}");
        }
    }

    #[test]
    fn field_paths_allow_dotted_relationships_only_of_valid_names() {
        let cases = [
            ("Name", true),
            ("Account.Name", true),
            ("Account.Owner.Name", true),
            ("Parent__r.Name__c", true),
            ("Account..Name", false),
            (".Name", false),
            ("Account.Name,Id", false),
            ("a.b.c.d.e.f.g", false),
            ("COUNT(Id)", false),
        ];
        for (path, valid) in cases {
            assert_eq!(validate_field_path(path).is_ok(), valid, "path {path:?}");
        }
    }

    #[test]
    fn field_lists_are_split_trimmed_and_validated() -> Result<()> {
        assert_eq!(
            parse_field_list(" Id, Name ,Account.Name,")?,
            vec!["Id", "Name", "Account.Name"]
        );
        assert!(parse_field_list("Id, Name FROM User").is_err());
        assert!(parse_field_list(" , ").is_err());
        Ok(())
    }

    #[test]
    fn checksum_reproduces_known_good_ids() -> Result<()> {
        let pairs = [
            ("001D000000IqhSL", "001D000000IqhSLIAZ"),
            ("003RO0000035WQg", "003RO0000035WQgYAM"),
            ("00D36000001HDi3", "00D36000001HDi3EAG"),
            ("00536000002Pmoe", "00536000002PmoeAAC"),
            ("0013600000SWmOT", "0013600000SWmOTAA1"),
            ("a00B000000FSkcv", "a00B000000FSkcvIAD"),
            ("0017Q00000EZlby", "0017Q00000EZlbyQAD"),
            ("00558000001N0Ke", "00558000001N0KeAAK"),
        ];
        for (id15, id18) in pairs {
            assert_eq!(to_id18(id15)?, id18, "id {id15}");
            assert_eq!(to_id18(id18)?, id18, "id {id18}");
            validate_id(id18)?;
        }
        Ok(())
    }

    #[test]
    fn ids_with_bad_length_characters_or_checksum_are_rejected() {
        let cases = [
            ("001D000000IqhSL", true),
            ("001D000000IqhSLIAZ", true),
            ("001D000000IqhSLiaz", true),
            ("a00B000000FSjVUIB1", false),
            ("001D000000IqhSLIAA", false),
            ("001D000000IqhS", false),
            ("001D000000IqhSLIA", false),
            ("001D000000IqhSLIAZ0", false),
            ("001D000000Iq'SL", false),
            ("001D000000Iq SL", false),
            ("", false),
        ];
        for (id, valid) in cases {
            assert_eq!(is_valid_id(id), valid, "id {id:?}");
        }
    }

    #[test]
    fn long_invalid_input_is_truncated_in_the_message() {
        let long = "x".repeat(500);
        let message = validate_identifier(&format!("1{long}"))
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert!(message.len() < 200, "{message}");
    }
}
